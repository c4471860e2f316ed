//! `wakili verify-recording`: a recording's media (or a session's track files) checked offline
//! against its signed manifest, with the public key from a file or fetched from the server.

use anyhow::{Context, bail};

use crate::cli::VerifyRecording;

/// Where the public key of `verify-recording` came from.
enum KeySource {
    /// A file the user obtained out of band.
    File(std::path::PathBuf),
    /// The signing-key endpoint of the server being checked.
    Online(String),
}

/// `wakili verify-recording`: checks the media against the signed manifest and prints what was
/// proven, or fails with the precise reason.
pub async fn verify_recording(flags: VerifyRecording) -> anyhow::Result<()> {
    let manifest_text = std::fs::read_to_string(&flags.manifest)
        .with_context(|| format!("--manifest: cannot read {}", flags.manifest.display()))?;
    let jws = jws_of(&manifest_text)
        .with_context(|| format!("--manifest {}", flags.manifest.display()))?;
    let (key, source) = match (&flags.key, &flags.url) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--key: cannot read {}", path.display()))?;
            let key = wakili_storage::parse_verifying_key(&text)
                .with_context(|| format!("--key {}", path.display()))?;
            (key, KeySource::File(path.clone()))
        }
        (None, Some(base)) => fetch_signing_key(base, flags.token_file.as_deref()).await?,
        (None, None) => bail!("give the public key with --key FILE, or --url BASE_URL"),
    };
    let key_id = wakili_storage::manifest::key_id_of(&key);
    if let KeySource::Online(url) = &source {
        eprintln!(
            "warning: the public key (key id {key_id}) was fetched from {url}, the service \
             whose recording is being checked. That proves the manifest was signed by the key \
             this server shows now, not that the key is the service's genuine one; a key \
             obtained out of band (published, or handed over with the evidence) and passed \
             with --key proves more."
        );
    }
    if !flags.tracks.is_empty() {
        return verify_session_files(&flags, &jws, key, &key_id, &source).await;
    }
    let Some(media_path) = flags.media.clone() else {
        bail!(
            "give the downloaded media file, or --track TRACK_ID=FILE for each track of a session"
        );
    };
    let media = std::fs::File::open(&media_path)
        .with_context(|| format!("cannot open the media {}", media_path.display()))?;
    let outcome = {
        let jws = jws.clone();
        tokio::task::spawn_blocking(move || {
            wakili_storage::verify_recording(&jws, &key, std::io::BufReader::new(media))
        })
        .await
        .context("the verification task failed")?
    };
    let verified = match outcome {
        Ok(verified) => verified,
        Err(e) => bail!(
            "verification FAILED: {}",
            explain_failure(&e, &jws, &key, &key_id, &media_path)
        ),
    };
    let audit = match &flags.audit {
        Some(path) => Some(verify_audit(path, &verified)?),
        None => None,
    };
    print!("{}", verification_summary(&verified, &source, &media_path));
    if let Some(line) = audit {
        println!("  audit log     {line}");
    }
    Ok(())
}

/// `verify-recording --track ID=FILE …`: a session's manifest against every track's file.
async fn verify_session_files(
    flags: &VerifyRecording,
    jws: &str,
    key: wakili_storage::VerifyingKey,
    key_id: &str,
    source: &KeySource,
) -> anyhow::Result<()> {
    use wakili_storage::{ManifestError, ManifestStatus, StorageError};
    let mut files = Vec::with_capacity(flags.tracks.len());
    for (id, path) in &flags.tracks {
        if files.iter().any(|(other, _)| other == id) {
            bail!("--track {id} is given twice");
        }
        let file = std::fs::File::open(path)
            .with_context(|| format!("--track {id}: cannot open {}", path.display()))?;
        files.push((id.clone(), std::io::BufReader::new(file)));
    }
    let outcome = {
        let jws = jws.to_owned();
        tokio::task::spawn_blocking(move || wakili_storage::verify_session(&jws, &key, files))
            .await
            .context("the verification task failed")?
    };
    let verified = match outcome {
        Ok(verified) => verified,
        Err(StorageError::Manifest(ManifestError::Track {
            recording_id,
            error,
        })) => {
            let file = flags
                .tracks
                .iter()
                .find(|(id, _)| id == &recording_id)
                .map_or(String::new(), |(_, p)| format!(" ({})", p.display()));
            bail!("verification FAILED: track {recording_id}{file}: {error}")
        }
        Err(StorageError::Manifest(ManifestError::BadSignature)) => bail!(
            "verification FAILED: the manifest's signature does not verify with key id \
             {key_id}: the manifest was altered, or signed with another key"
        ),
        Err(e) => bail!("verification FAILED: {e}"),
    };
    let audit = match &flags.audit {
        Some(path) => Some(verify_audit(path, &verified.session)?),
        None => None,
    };
    let v = &verified.session;
    let status = |s: ManifestStatus| match s {
        ManifestStatus::Completed => "completed",
        ManifestStatus::Incomplete => "INCOMPLETE",
    };
    let key = match source {
        KeySource::File(path) => format!("key file {}", path.display()),
        KeySource::Online(url) => format!("fetched from {url}, not out of band"),
    };
    println!(
        "OK: every track of session {rid} is exactly as its signed manifest describes it\n\
         \n  session       {rid}\
         \n  consultation  {consultation}\
         \n  status        {status}\
         \n  tracks        {n}\
         \n  signed by     key id {kid} (Ed25519; {key})",
        rid = v.recording_id,
        consultation = v.consultation_id,
        status = status(v.status),
        n = verified.tracks.len(),
        kid = v.key_id,
    );
    for (track, t) in &verified.tracks {
        let missing = if t.missing.is_empty() {
            String::new()
        } else {
            format!("; never received: {}", seq_ranges(&t.missing, 20))
        };
        println!(
            "  track         {id}: {label} ({kind}, {codec}) of {user} as {role}, from +{offset} ms; \
             {status}, {chunks} chunks, {bytes} bytes{missing}",
            id = track.recording_id,
            label = track.label,
            kind = track.kind,
            codec = track.codec,
            user = track.user_id,
            role = track.role,
            offset = track.start_offset_ms,
            status = status(t.status),
            chunks = t.chunks,
            bytes = t.bytes,
        );
    }
    if let Some(line) = audit {
        println!("  audit log     {line}");
    }
    Ok(())
}

/// Checks the exported audit log at `path` against the chain head the verified manifest signs;
/// what it established, in one line.
fn verify_audit(
    path: &std::path::Path,
    verified: &wakili_storage::Verified,
) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--audit: cannot read {}", path.display()))?;
    let entries: Vec<wakili_core::model::AuditEvent> =
        serde_json::from_str(&text).with_context(|| {
            format!(
                "--audit {}: not the audit log JSON the API returns",
                path.display()
            )
        })?;
    if let Some(other) = entries
        .iter()
        .find(|e| e.consultation_id.as_deref() != Some(verified.consultation_id.as_str()))
    {
        bail!(
            "audit verification FAILED: entry {} is not of consultation {}",
            other.id,
            verified.consultation_id
        );
    }
    let chained: Vec<_> = entries.iter().filter_map(|e| e.claimed()).collect();
    let unchained = entries.len() - chained.len();
    let head = verified.audit_head.as_ref();
    let report = wakili_core::audit_chain::verify(&chained, head)
        .map_err(|e| anyhow::anyhow!("audit verification FAILED: {e}"))?;
    let through = match head {
        Some(head) => format!("intact through the signed head (entry {})", head.seq),
        None => "intact; the manifest signs no head (recorded before the chain existed)".into(),
    };
    let last = report.last.map_or(0, |h| h.seq);
    let older = if unchained > 0 {
        format!("; {unchained} older entries predate the chain and are not covered")
    } else {
        String::new()
    };
    Ok(format!(
        "{} chained entries, {through}, last {last}{older}",
        report.entries
    ))
}

/// The compact JWS in a manifest file: the `jws` of the JSON the API returns, or the bare text.
fn jws_of(text: &str) -> anyhow::Result<String> {
    let text = text.trim();
    if !text.starts_with('{') {
        if text.split('.').count() != 3 {
            bail!("neither the manifest JSON (with a `jws` field) nor a compact JWS");
        }
        return Ok(text.to_owned());
    }
    let json: serde_json::Value = serde_json::from_str(text)
        .context("not valid JSON (expected the manifest API's answer)")?;
    json.get("jws")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .context("the JSON has no `jws` string field (expected the manifest API's answer)")
}

/// `GET BASE_URL/api/v1/recordings/signing-key`: the key and where it came from.
async fn fetch_signing_key(
    base: &str,
    token_file: Option<&std::path::Path>,
) -> anyhow::Result<(wakili_storage::VerifyingKey, KeySource)> {
    let url = format!(
        "{}/api/v1/recordings/signing-key",
        base.trim_end_matches('/')
    );
    let mut request = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?
        .get(&url);
    if let Some(path) = token_file {
        let token = std::fs::read_to_string(path)
            .with_context(|| format!("--token-file: cannot read {}", path.display()))?;
        request = request.bearer_auth(token.trim());
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("--url: cannot fetch {url}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status == reqwest::StatusCode::UNAUTHORIZED && token_file.is_none() {
        bail!("--url: {url} answered 401: pass a token with --token-file FILE");
    }
    if !status.is_success() {
        bail!("--url: {url} answered {status}: {}", body.trim());
    }
    let json: serde_json::Value =
        serde_json::from_str(&body).with_context(|| format!("--url: {url} did not answer JSON"))?;
    if let Some(algorithm) = json.get("algorithm").and_then(serde_json::Value::as_str)
        && algorithm != "Ed25519"
    {
        bail!("--url: {url} offers a {algorithm} key; manifests are signed with Ed25519");
    }
    let text = json
        .get("publicKeyPem")
        .or_else(|| json.get("publicKey"))
        .and_then(serde_json::Value::as_str)
        .with_context(|| format!("--url: {url} answered without publicKeyPem or publicKey"))?;
    let key = wakili_storage::parse_verifying_key(text).with_context(|| format!("--url: {url}"))?;
    let derived = wakili_storage::manifest::key_id_of(&key);
    if let Some(claimed) = json.get("keyId").and_then(serde_json::Value::as_str)
        && claimed != derived
    {
        bail!("--url: {url} names key id {claimed}, but the key it sent has id {derived}");
    }
    Ok((key, KeySource::Online(url)))
}

/// The reason a verification failed, with what the manifest says about it.
fn explain_failure(
    error: &wakili_storage::StorageError,
    jws: &str,
    key: &wakili_storage::VerifyingKey,
    key_id: &str,
    media: &std::path::Path,
) -> String {
    use wakili_storage::{ManifestError as E, StorageError};
    let media = media.display();
    let StorageError::Manifest(error) = error else {
        return error.to_string();
    };
    match error {
        E::BadSignature => {
            let named = jws_kid(jws).map_or(String::new(), |kid| {
                format!("; the manifest names key id {kid}")
            });
            format!(
                "the manifest's signature does not verify with key id {key_id}{named}: the \
                 manifest was altered, or signed with another key"
            )
        }
        E::ChunkMismatch { seq } => {
            // The signature was checked before any chunk was read.
            let span = wakili_storage::verify_manifest(jws, key)
                .ok()
                .and_then(|m| {
                    let mut start = 0u64;
                    m.chunks.iter().find_map(|c| {
                        let range = start..start + c.size;
                        start += c.size;
                        (c.seq == *seq).then_some(range)
                    })
                })
                .map_or(String::new(), |r| {
                    format!(" (bytes {}..{} of {media})", r.start, r.end)
                });
            format!(
                "chunk {seq}{span} does not match its SHA-256 in the manifest: the media differs \
                 from what was recorded there"
            )
        }
        E::LengthMismatch { expected, actual } => format!(
            "{media} holds {actual} bytes, the manifest accounts for {expected}: the media is \
             truncated, extended, or another file"
        ),
        E::WholeHashMismatch => format!(
            "every chunk matches, but the SHA-256 of {media} differs from the manifest's: the \
             manifest contradicts itself"
        ),
        E::ChainMismatch => {
            "the manifest's hash chain does not follow from its chunk hashes: the manifest \
             contradicts itself"
                .to_owned()
        }
        E::Io(e) => format!("cannot read {media}: {e}"),
        other => other.to_string(),
    }
}

/// The `kid` the JWS header names (not trusted; only to say which key signed it).
fn jws_kid(jws: &str) -> Option<String> {
    use base64::Engine;
    let header = jws.trim().split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    let json: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Some(json.get("kid")?.as_str()?.to_owned())
}

/// What a successful verification proved, for people.
fn verification_summary(
    v: &wakili_storage::Verified,
    source: &KeySource,
    media: &std::path::Path,
) -> String {
    let status = match v.status {
        wakili_storage::ManifestStatus::Completed => "completed",
        wakili_storage::ManifestStatus::Incomplete => "INCOMPLETE",
    };
    let chunks = if v.missing.is_empty() {
        format!("{} (none missing)", v.chunks)
    } else {
        format!(
            "{} present; {} never received: {}",
            v.chunks,
            v.missing.len(),
            seq_ranges(&v.missing, 20)
        )
    };
    let key = match source {
        KeySource::File(path) => format!("key file {}", path.display()),
        KeySource::Online(url) => format!("fetched from {url}, not out of band"),
    };
    format!(
        "OK: {media} is recording {rid} exactly as its signed manifest describes it\n\
         \n  recording     {rid}\
         \n  consultation  {consultation}\
         \n  status        {status}\
         \n  chunks        {chunks}\
         \n  bytes         {bytes}\
         \n  SHA-256       {sha}\
         \n  chain head    {chain}\
         \n  signed by     key id {kid} (Ed25519; {key})\n",
        media = media.display(),
        rid = v.recording_id,
        consultation = v.consultation_id,
        bytes = v.bytes,
        sha = v.sha256,
        chain = v.chain_head,
        kid = v.key_id,
    )
}

/// `1, 4–6, 9`, at most `limit` runs, then how many more.
fn seq_ranges(seqs: &[u32], limit: usize) -> String {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &seq in seqs {
        match runs.last_mut() {
            Some((_, end)) if end.checked_add(1) == Some(seq) => *end = seq,
            _ => runs.push((seq, seq)),
        }
    }
    let mut parts: Vec<String> = runs
        .iter()
        .take(limit)
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}–{b}")
            }
        })
        .collect();
    if runs.len() > limit {
        parts.push(format!("… ({} more runs)", runs.len() - limit));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_chunks_print_as_runs() {
        assert_eq!(seq_ranges(&[1, 4, 5, 6, 9], 10), "1, 4–6, 9");
        assert_eq!(seq_ranges(&[], 10), "");
        assert_eq!(seq_ranges(&[0, 2, 4, 6], 2), "0, 2, … (2 more runs)");
    }

    #[test]
    fn manifest_files_hold_json_or_a_bare_jws() {
        assert_eq!(jws_of(" a.b.c\n").ok().as_deref(), Some("a.b.c"));
        assert_eq!(
            jws_of(r#"{"manifest": {}, "jws": "x.y.z", "keyId": "k"}"#)
                .ok()
                .as_deref(),
            Some("x.y.z")
        );
        assert!(jws_of(r#"{"manifest": {}}"#).is_err());
        assert!(jws_of("hello").is_err());
    }
}

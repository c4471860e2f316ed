//! One recording through the API as a client app makes it: consent over signaling, then create,
//! chunk PUTs, complete, download and the signed manifest over REST.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wakili_client::{Client, Events};

use super::{
    data::{Media, hex},
    reference::MIB,
};

/// How long each signaling step may take.
const SIGNALING_LIMIT: Duration = Duration::from_secs(10);
/// Container format, codecs and resolution the recording is declared with.
const FORMAT: &str = "webm";
const CODEC: &str = "vp8,opus";
const RESOLUTION: &str = "1280x720";
/// Bit rate the declared duration assumes (the medium profile's ceiling).
const DECLARED_BITS_PER_SECOND: f64 = 1_000_000.0;

/// The two participants' connections, kept open (and the recording on) while the media is
/// uploaded.
pub struct Call {
    lawyer: Client,
    client: Client,
    /// The recording id signaling announced.
    pub recording_id: String,
}

impl Call {
    /// Lawyer and client join `consultation`; the lawyer starts recording, the client consents,
    /// and the lawyer sees `recording:state {active: true}`.
    pub async fn consent(
        url: &str,
        consultation: &str,
        lawyer_token: &str,
        client_token: &str,
    ) -> anyhow::Result<Self> {
        let join = json!({ "consultationId": consultation });
        let (lawyer, mut lawyer_events) = Client::connect(url, lawyer_token)
            .await
            .context("lawyer: connect")?;
        lawyer
            .call_ok("consultation:join", &join)
            .await
            .context("lawyer: consultation:join")?;
        let (client, mut client_events) = Client::connect(url, client_token)
            .await
            .context("client: connect")?;
        let joined = client
            .call_ok("consultation:join", &join)
            .await
            .context("client: consultation:join")?;
        if joined["waiting"] == true {
            bail!("client: consultation:join left the client in the waiting room: {joined}");
        }
        let started = lawyer
            .call_ok("recording:start", &json!({}))
            .await
            .context("lawyer: recording:start")?;
        let request = client_events
            .wait_for("recording:consent-request", SIGNALING_LIMIT)
            .await
            .context("client: waiting for recording:consent-request")?;
        let request: Value = request.parse()?;
        let recording_id = request["recordingId"]
            .as_str()
            .or_else(|| started["recordingId"].as_str())
            .with_context(|| format!("no recordingId in {request} nor in {started}"))?
            .to_owned();
        client
            .call_ok(
                "recording:consent",
                &json!({ "granted": true, "recordingId": recording_id }),
            )
            .await
            .context("client: recording:consent")?;
        wait_active(&mut lawyer_events)
            .await
            .context("lawyer: waiting for recording:state {active: true}")?;
        Ok(Self {
            lawyer,
            client,
            recording_id,
        })
    }

    /// Stops the recording (best effort) and leaves.
    pub async fn hang_up(self) {
        let _ = self.lawyer.call("recording:stop", &json!({})).await;
        self.client.close().await;
        self.lawyer.close().await;
    }
}

async fn wait_active(events: &mut Events) -> anyhow::Result<()> {
    let deadline = Instant::now() + SIGNALING_LIMIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let state: Value = events.wait_for("recording:state", left).await?.parse()?;
        if state["active"] == true {
            return Ok(());
        }
        if state["reason"] == "consent_refused" {
            bail!("consent refused: {state}");
        }
    }
}

/// The REST side, as the lawyer.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// `POST /api/v1/consultations/{id}/recordings` answered this.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    /// The recording.
    pub recording_id: String,
    /// Largest chunk the server takes.
    #[serde(default)]
    pub max_chunk_bytes: Option<u64>,
    /// Where chunk `{seq}` goes.
    #[serde(default)]
    pub chunk_url_template: Option<String>,
    /// Where to complete the recording.
    #[serde(default)]
    pub complete_url: Option<String>,
}

/// The chunk upload's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Upload {
    /// First PUT sent to the last 2xx received, seconds.
    pub seconds: f64,
    /// Media bytes per second over that time, MiB/s.
    pub mib_per_s: f64,
    /// PUTs answered 201 (stored now).
    pub stored: usize,
    /// PUTs answered 200 (that exact chunk was already stored).
    pub already_stored: usize,
    /// Time from sending a PUT to its answer: median, milliseconds.
    pub put_p50_ms: f64,
    /// 99th percentile, milliseconds.
    pub put_p99_ms: f64,
    /// Slowest, milliseconds.
    pub put_max_ms: f64,
}

/// `complete`'s figures.
#[derive(Debug, Clone, Serialize)]
pub struct Completed {
    /// Request to answer, seconds.
    pub seconds: f64,
    /// The recording's `status` in the answer.
    pub status: Option<String>,
}

/// The download's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Download {
    /// `POST …/download-url`, seconds.
    pub url_seconds: f64,
    /// `GET` sent to the last byte received, seconds.
    pub seconds: f64,
    /// Bytes received.
    pub bytes: u64,
    /// MiB/s over `seconds`.
    pub mib_per_s: f64,
    /// SHA-256 of what came back.
    pub sha256: String,
    /// Whether it is exactly the uploaded media (length and SHA-256).
    pub intact: bool,
}

/// The signed manifest, checked against the uploaded media.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestCheck {
    /// Id of the key that verified the signature (fetched from the same server).
    pub key_id: String,
    /// The manifest's status.
    pub status: String,
    /// Chunks it lists.
    pub chunks: usize,
    /// Whether chunks, sizes and SHA-256s match the uploaded media.
    pub matches: bool,
    /// What differs, when something does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mismatch: Option<String>,
}

impl Api {
    /// The API at `base`, called with `token`; up to `connections` keep-alive connections.
    pub fn new(base: &str, token: &str, connections: usize) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .timeout(Duration::from_secs(300))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        })
    }

    /// `url` made absolute against the base URL.
    fn absolute(&self, url: &str) -> String {
        if url.starts_with("http://") || url.starts_with("https://") {
            url.to_owned()
        } else if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            format!("{}/{url}", self.base)
        }
    }

    async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let url = self.absolute(path);
        let response = self
            .http
            .post(&url)
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        read_json("POST", &url, response).await
    }

    async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let url = self.absolute(path);
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        expect("GET", &url, read_json("GET", &url, response).await?, &[200])
    }

    /// Creates the recording of `consultation`.
    pub async fn create(&self, consultation: &str) -> anyhow::Result<Created> {
        let path = format!("/api/v1/consultations/{consultation}/recordings");
        let answer = expect(
            "POST",
            &path,
            self.post_json(&path, &json!({})).await?,
            // 200: this recording was created already.
            &[200, 201],
        )?;
        serde_json::from_value(answer.clone())
            .with_context(|| format!("POST {path}: unexpected answer {answer}"))
    }

    /// PUTs every chunk of `media`, `parallel` at a time, and times it.
    pub async fn upload(
        &self,
        created: &Created,
        media: &Media,
        parallel: usize,
    ) -> anyhow::Result<Upload> {
        if let Some(max) = created.max_chunk_bytes
            && media.chunk_bytes as u64 > max
        {
            bail!(
                "--chunk {}: the server takes chunks of at most {max} bytes",
                media.chunk_bytes
            );
        }
        let template = match &created.chunk_url_template {
            Some(t) if t.contains("{seq}") => self.absolute(t),
            _ => format!(
                "{}/api/v1/recordings/{}/chunks/{{seq}}",
                self.base, created.recording_id
            ),
        };
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let workers: Vec<_> = (0..parallel.min(media.chunk_count()))
            .map(|_| {
                let (api, media, next, template) =
                    (self.clone(), media.clone(), next.clone(), template.clone());
                tokio::spawn(async move {
                    let mut answers = Vec::new();
                    loop {
                        let seq = next.fetch_add(1, Ordering::Relaxed);
                        if seq >= media.chunk_count() {
                            return anyhow::Ok(answers);
                        }
                        answers.push(api.put_chunk(&template, &media, seq).await?);
                    }
                })
            })
            .collect();
        let mut answers = Vec::with_capacity(media.chunk_count());
        for worker in workers {
            answers.extend(worker.await.context("an upload task failed")??);
        }
        let seconds = started.elapsed().as_secs_f64();
        let mut latencies: Vec<f64> = answers.iter().map(|a| a.1).collect();
        latencies.sort_by(f64::total_cmp);
        let pick = |q: f64| {
            let at = ((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1);
            latencies.get(at).map_or(0.0, |s| s * 1e3)
        };
        Ok(Upload {
            seconds,
            mib_per_s: media.len() as f64 / MIB / seconds.max(1e-9),
            stored: answers.iter().filter(|a| a.0 == 201).count(),
            already_stored: answers.iter().filter(|a| a.0 == 200).count(),
            put_p50_ms: pick(0.5),
            put_p99_ms: pick(0.99),
            put_max_ms: pick(1.0),
        })
    }

    /// PUTs chunk `seq`; its status (200 or 201) and how long it took, seconds.
    async fn put_chunk(
        &self,
        template: &str,
        media: &Media,
        seq: usize,
    ) -> anyhow::Result<(u16, f64)> {
        let url = template.replace("{seq}", &seq.to_string());
        let sha256 = hex(&media.chunk_sha256[seq]);
        let sent = Instant::now();
        let response = self
            .http
            .put(&url)
            .bearer_auth(&self.token)
            .header("X-Content-SHA256", &sha256)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(media.chunk(seq))
            .send()
            .await
            .with_context(|| format!("PUT {url}"))?;
        let (status, answer) = read_json("PUT", &url, response).await?;
        let took = sent.elapsed().as_secs_f64();
        let answer = expect("PUT", &url, (status, answer), &[200, 201])?;
        if answer.get("sha256").and_then(Value::as_str) != Some(sha256.as_str()) {
            bail!("PUT {url}: the server acknowledged another SHA-256: {answer}");
        }
        Ok((status, took))
    }

    /// Completes the recording with all of `media`'s chunks.
    pub async fn complete(&self, created: &Created, media: &Media) -> anyhow::Result<Completed> {
        let path = created
            .complete_url
            .clone()
            .unwrap_or_else(|| format!("/api/v1/recordings/{}/complete", created.recording_id));
        let body = json!({
            "chunkCount": media.chunk_count(),
            "durationSeconds": (media.len() as f64 * 8.0 / DECLARED_BITS_PER_SECOND).round(),
            "format": FORMAT,
            "codec": CODEC,
            "resolution": RESOLUTION,
        });
        let started = Instant::now();
        let answer = self.post_json(&path, &body).await?;
        let seconds = started.elapsed().as_secs_f64();
        let answer = expect("POST", &path, answer, &[200])?;
        Ok(Completed {
            seconds,
            status: answer
                .get("status")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    /// Asks for a download URL, streams the whole download and compares it with `media`.
    pub async fn download(&self, recording_id: &str, media: &Media) -> anyhow::Result<Download> {
        let path = format!("/api/v1/recordings/{recording_id}/download-url");
        let started = Instant::now();
        let answer = expect(
            "POST",
            &path,
            self.post_json(&path, &json!({})).await?,
            &[200, 201],
        )?;
        let url_seconds = started.elapsed().as_secs_f64();
        let url = answer
            .get("url")
            .and_then(Value::as_str)
            .with_context(|| format!("POST {path}: no url in {answer}"))?;
        let url = self.absolute(url);
        // The signed URL is the credential: no bearer token, as a browser or player fetches it.
        let started = Instant::now();
        let mut response = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            bail!("GET {url}: {status}: {}", clip(&text));
        }
        let mut hash = Sha256::new();
        let mut bytes = 0u64;
        while let Some(piece) = response
            .chunk()
            .await
            .with_context(|| format!("GET {url}: after {bytes} bytes"))?
        {
            hash.update(&piece);
            bytes += piece.len() as u64;
        }
        let seconds = started.elapsed().as_secs_f64();
        let sha256: [u8; 32] = hash.finalize().into();
        Ok(Download {
            url_seconds,
            seconds,
            bytes,
            mib_per_s: bytes as f64 / MIB / seconds.max(1e-9),
            sha256: hex(&sha256),
            intact: bytes == media.len() && sha256 == media.sha256,
        })
    }

    /// Fetches the signed manifest and the signing key, verifies the signature and compares the
    /// manifest with `media`.
    pub async fn manifest(
        &self,
        recording_id: &str,
        media: &Media,
    ) -> anyhow::Result<ManifestCheck> {
        let signed = self
            .get_json(&format!("/api/v1/recordings/{recording_id}/manifest"))
            .await?;
        let jws = signed
            .get("jws")
            .and_then(Value::as_str)
            .with_context(|| format!("manifest: no jws in {}", clip(&signed.to_string())))?;
        let key = self.get_json("/api/v1/recordings/signing-key").await?;
        let pem = key
            .get("publicKeyPem")
            .or_else(|| key.get("publicKey"))
            .and_then(Value::as_str)
            .with_context(|| format!("signing-key: no publicKeyPem in {key}"))?;
        let key = wakili_storage::parse_verifying_key(pem).context("signing-key")?;
        let manifest =
            wakili_storage::verify_manifest(jws, &key).context("the manifest does not verify")?;
        let mismatch = manifest_mismatch(&manifest, media);
        Ok(ManifestCheck {
            key_id: wakili_storage::manifest::key_id_of(&key),
            status: serde_json::to_value(manifest.status)?
                .as_str()
                .unwrap_or("?")
                .to_owned(),
            chunks: manifest.chunks.len(),
            matches: mismatch.is_none(),
            mismatch,
        })
    }
}

/// What differs between a verified manifest and the uploaded media, if anything.
fn manifest_mismatch(manifest: &wakili_storage::Manifest, media: &Media) -> Option<String> {
    if manifest.chunks.len() != media.chunk_count() || !manifest.missing.is_empty() {
        return Some(format!(
            "{} chunks listed and {} missing, {} uploaded",
            manifest.chunks.len(),
            manifest.missing.len(),
            media.chunk_count()
        ));
    }
    if manifest.total_bytes != media.len() {
        return Some(format!(
            "{} bytes listed, {} uploaded",
            manifest.total_bytes,
            media.len()
        ));
    }
    for (seq, (listed, sha)) in manifest.chunks.iter().zip(&media.chunk_sha256).enumerate() {
        let size = media.chunk_range(seq).len() as u64;
        if listed.seq as usize != seq || listed.size != size || listed.sha256 != hex(sha) {
            return Some(format!("chunk {seq} differs: listed {listed:?}"));
        }
    }
    (manifest.sha256 != hex(&media.sha256)).then(|| "the whole SHA-256 differs".to_owned())
}

/// The status and JSON body of `response` (`null` for an empty body).
async fn read_json(
    method: &str,
    url: &str,
    response: reqwest::Response,
) -> anyhow::Result<(u16, Value)> {
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .with_context(|| format!("{method} {url}: reading the answer"))?;
    if text.trim().is_empty() {
        return Ok((status, Value::Null));
    }
    let value = serde_json::from_str(&text)
        .with_context(|| format!("{method} {url}: {status}, not JSON: {}", clip(&text)))?;
    Ok((status, value))
}

/// The body when the status is one of `wanted`, else an error naming both.
fn expect(
    method: &str,
    url: &str,
    (status, body): (u16, Value),
    wanted: &[u16],
) -> anyhow::Result<Value> {
    if wanted.contains(&status) {
        Ok(body)
    } else {
        bail!("{method} {url}: {status}: {}", clip(&body.to_string()))
    }
}

/// At most 500 characters of `text`, for error messages.
fn clip(text: &str) -> String {
    match text.char_indices().nth(500) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::Utc;
    use wakili_storage::{ChunkEntry, Manifest, ManifestDraft, ManifestStatus};

    use super::*;

    fn manifest_of(media: &Media) -> Manifest {
        let entries = (0..media.chunk_count())
            .map(|seq| ChunkEntry {
                seq: seq as u32,
                size: media.chunk_range(seq).len() as u64,
                sha256: media.chunk_sha256[seq],
            })
            .collect();
        let draft = ManifestDraft {
            recording_id: "r".into(),
            consultation_id: "c".into(),
            status: ManifestStatus::Completed,
            format: FORMAT.into(),
            codec: CODEC.into(),
            resolution: None,
            duration_seconds: None,
            started_at: Utc::now(),
            finalized_at: Utc::now(),
            consents: vec![],
            audit_head: None,
        };
        Manifest::build(draft, entries, media.chunk_count() as u32, media.sha256).unwrap()
    }

    #[test]
    fn a_manifest_of_the_media_matches_and_any_difference_is_named() {
        let media = Media::generate(10_000, 4_000, 1, 3);
        let good = manifest_of(&media);
        assert_eq!(manifest_mismatch(&good, &media), None);
        let mut bad = good.clone();
        bad.chunks[1].sha256 = hex(&[0; 32]);
        assert!(manifest_mismatch(&bad, &media).unwrap().contains("chunk 1"));
        let mut bad = good.clone();
        bad.chunks.pop();
        assert!(manifest_mismatch(&bad, &media).is_some());
        let mut bad = good;
        bad.sha256 = hex(&[0; 32]);
        assert!(manifest_mismatch(&bad, &media).is_some());
    }

    #[test]
    fn urls_resolve_against_the_base() {
        let api = Api::new("http://127.0.0.1:9/", "t", 1).unwrap();
        assert_eq!(api.absolute("/a/b"), "http://127.0.0.1:9/a/b");
        assert_eq!(api.absolute("a"), "http://127.0.0.1:9/a");
        assert_eq!(
            api.absolute("https://x.example/d?s=1"),
            "https://x.example/d?s=1"
        );
        assert_eq!(clip(&"é".repeat(600)).chars().count(), 501);
    }
}

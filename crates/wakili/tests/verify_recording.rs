//! `wakili verify-recording`, run as an expert would: a signed manifest, the service's public
//! key and the downloaded media in a directory, and the binary's exit code and words.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{Read, Write},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use chrono::{TimeZone, Utc};
use sha2::{Digest, Sha256};
use wakili_storage::{ChunkEntry, Manifest, ManifestDraft, ManifestSigner, ManifestStatus};

/// Chunk sizes: one bigger than the verifier's 64 KiB read buffer, one of a single byte.
const SIZES: [usize; 4] = [1000, 70_001, 1, 5000];

fn chunk(seq: usize) -> Vec<u8> {
    (0..SIZES[seq])
        .map(|i| (i * 31 + seq * 7 + i / 256) as u8)
        .collect()
}

/// A recording of `present` chunks out of `expected`, signed by `signer`: its compact JWS and
/// its media (the present chunks, in order).
fn recording(signer: &ManifestSigner, present: &[usize], expected: u32) -> (String, Vec<u8>) {
    let mut media = Vec::new();
    let mut entries = Vec::new();
    for &seq in present {
        let bytes = chunk(seq);
        entries.push(ChunkEntry {
            seq: seq as u32,
            size: bytes.len() as u64,
            sha256: Sha256::digest(&bytes).into(),
        });
        media.extend_from_slice(&bytes);
    }
    let draft = ManifestDraft {
        recording_id: "rec-7f3a".into(),
        consultation_id: "con-19".into(),
        status: ManifestStatus::Completed,
        format: "webm".into(),
        codec: "vp8,opus".into(),
        resolution: Some("1280x720".into()),
        duration_seconds: Some(42.0),
        started_at: Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap(),
        finalized_at: Utc.with_ymd_and_hms(2026, 11, 2, 9, 1, 0).unwrap(),
        consents: vec![],
        audit_head: None,
    };
    let manifest =
        Manifest::build(draft, entries, expected, Sha256::digest(&media).into()).unwrap();
    (signer.sign(&manifest).unwrap(), media)
}

/// Writes the manifest as the API returns it, the media and the public key (PEM) into `dir`.
fn write_evidence(dir: &Path, signer: &ManifestSigner, jws: &str, media: &[u8]) -> Evidence {
    let manifest = dir.join("manifest.json");
    let body = serde_json::json!({
        "manifest": {"recordingId": "rec-7f3a"},
        "jws": jws,
        "keyId": signer.key_id(),
    });
    std::fs::write(&manifest, body.to_string()).unwrap();
    let media_file = dir.join("recording.webm");
    std::fs::write(&media_file, media).unwrap();
    let key = dir.join("signing-key.pem");
    std::fs::write(&key, signer.public_key_pem().unwrap()).unwrap();
    Evidence {
        manifest,
        media: media_file,
        key,
    }
}

struct Evidence {
    manifest: PathBuf,
    media: PathBuf,
    key: PathBuf,
}

fn verify(args: &[&std::ffi::OsStr]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wakili"));
    // Verification must not depend on any server configuration.
    for (key, _) in std::env::vars() {
        if key.starts_with("WAKILI_") {
            cmd.env_remove(key);
        }
    }
    cmd.arg("verify-recording").args(args).output().unwrap()
}

fn verify_with_key(e: &Evidence) -> Output {
    verify(&[
        "--manifest".as_ref(),
        e.manifest.as_os_str(),
        "--key".as_ref(),
        e.key.as_os_str(),
        e.media.as_os_str(),
    ])
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn an_intact_recording_verifies_and_a_flipped_byte_names_its_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let signer = ManifestSigner::generate();
    let (jws, media) = recording(&signer, &[0, 1, 2, 3], 4);
    let e = write_evidence(dir.path(), &signer, &jws, &media);

    let out = verify_with_key(&e);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("rec-7f3a"), "{stdout}");
    assert!(stdout.contains("completed"), "{stdout}");
    assert!(stdout.contains("4 (none missing)"), "{stdout}");
    assert!(stdout.contains(&media.len().to_string()), "{stdout}");
    let sha: String = Sha256::digest(&media)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(stdout.contains(&sha), "{stdout}");
    assert!(stdout.contains(&signer.key_id()), "{stdout}");

    // One bit of chunk 1 (bytes 1000..71001) changed.
    let mut tampered = media.clone();
    tampered[1000 + 68_000] ^= 0x10;
    std::fs::write(&e.media, &tampered).unwrap();
    let out = verify_with_key(&e);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("chunk 1 "), "{stderr}");
    assert!(stderr.contains("bytes 1000..71001"), "{stderr}");
    assert!(text(&out.stdout).is_empty());

    // A truncated download says so with the lengths.
    std::fs::write(&e.media, &media[..media.len() - 3]).unwrap();
    let out = verify_with_key(&e);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "holds {} bytes, the manifest accounts for {}",
            media.len() - 3,
            media.len()
        )),
        "{stderr}"
    );
}

#[test]
fn a_bare_jws_and_a_base64_key_verify_an_incomplete_recording_with_its_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let signer = ManifestSigner::generate();
    let (jws, media) = recording(&signer, &[0, 3], 6);
    let e = write_evidence(dir.path(), &signer, &jws, &media);
    std::fs::write(&e.manifest, format!("{jws}\n")).unwrap();
    std::fs::write(&e.key, signer.public_key_base64()).unwrap();

    let out = verify_with_key(&e);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("INCOMPLETE"), "{stdout}");
    assert!(
        stdout.contains("2 present; 4 never received: 1–2, 4–5"),
        "{stdout}"
    );
}

#[test]
fn another_key_or_an_edited_manifest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let signer = ManifestSigner::generate();
    let (jws, media) = recording(&signer, &[0, 1], 2);
    let e = write_evidence(dir.path(), &signer, &jws, &media);

    let stranger = ManifestSigner::generate();
    std::fs::write(&e.key, stranger.public_key_pem().unwrap()).unwrap();
    let out = verify_with_key(&e);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("signature does not verify"), "{stderr}");
    assert!(stderr.contains(&stranger.key_id()), "{stderr}");
    assert!(stderr.contains(&signer.key_id()), "{stderr}");

    std::fs::write(&e.manifest, "not a manifest").unwrap();
    let out = verify_with_key(&e);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--manifest"),
        "{}",
        text(&out.stderr)
    );

    // Neither --key nor --url.
    let out = verify(&[
        "--manifest".as_ref(),
        e.manifest.as_os_str(),
        e.media.as_os_str(),
    ]);
    assert_ne!(out.status.code(), Some(0));
}

/// Serves one HTTP request with `body` as JSON; returns the base URL and the request line.
fn serve_once(body: String) -> (String, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "the request ended early");
            request.extend_from_slice(&buf[..n]);
        }
        write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        text(&request).lines().next().unwrap_or_default().to_owned()
    });
    (base, handle)
}

#[test]
fn a_key_fetched_from_the_server_works_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let signer = ManifestSigner::generate();
    let (jws, media) = recording(&signer, &[0, 1, 2], 3);
    let e = write_evidence(dir.path(), &signer, &jws, &media);
    let (base, request) = serve_once(
        serde_json::json!({
            "keyId": signer.key_id(),
            "algorithm": "Ed25519",
            "publicKeyPem": signer.public_key_pem().unwrap(),
            "publicKey": signer.public_key_base64(),
        })
        .to_string(),
    );

    let out = verify(&[
        "--manifest".as_ref(),
        e.manifest.as_os_str(),
        "--url".as_ref(),
        base.as_ref(),
        e.media.as_os_str(),
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(
        request.join().unwrap(),
        "GET /api/v1/recordings/signing-key HTTP/1.1"
    );
    assert!(stderr.contains("warning"), "{stderr}");
    assert!(stderr.contains(&signer.key_id()), "{stderr}");
    assert!(stderr.contains("out of band"), "{stderr}");
    assert!(stdout.contains("not out of band"), "{stdout}");
}

/// A session recorded by the server with two tracks (one with a gap): the session's compact JWS
/// and each track's `(id, file)`.
fn session(signer: &ManifestSigner) -> (String, Vec<(String, Vec<u8>)>) {
    use wakili_core::{
        ParticipantRole,
        recording::{TrackKind, TrackMeta},
    };
    let mut listed = Vec::new();
    let mut files = Vec::new();
    for (i, present) in [vec![0, 1, 2], vec![0, 3]].into_iter().enumerate() {
        let (jws, media) = recording(signer, &present, 4);
        let mut own = wakili_storage::verify_manifest(&jws, &signer.verifying_key()).unwrap();
        own.recording_id = format!("trk-{i}");
        let meta = TrackMeta {
            participant_id: format!("p-{i}"),
            user_id: if i == 0 { "lawyer-1" } else { "client-1" }.into(),
            role: if i == 0 {
                ParticipantRole::Lawyer
            } else {
                ParticipantRole::Client
            },
            kind: if i == 0 {
                TrackKind::Audio
            } else {
                TrackKind::Video
            },
            label: if i == 0 { "audio" } else { "screen" }.into(),
            codec: if i == 0 { "opus" } else { "vp8" }.into(),
            started_at: own.started_at,
            start_offset_ms: 1500 * i as i64,
        };
        listed.push(wakili_storage::ManifestTrack::of(&meta, &own));
        files.push((own.recording_id, media));
    }
    let draft = ManifestDraft {
        recording_id: "ses-51".into(),
        consultation_id: "con-19".into(),
        status: ManifestStatus::Incomplete,
        format: wakili_storage::SESSION_FORMAT.into(),
        codec: String::new(),
        resolution: None,
        duration_seconds: None,
        started_at: Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap(),
        finalized_at: Utc.with_ymd_and_hms(2026, 11, 2, 9, 1, 0).unwrap(),
        consents: vec![],
        audit_head: None,
    };
    let mut manifest = Manifest::build(draft, vec![], 0, Sha256::digest([]).into()).unwrap();
    manifest.tracks = listed;
    (signer.sign(&manifest).unwrap(), files)
}

#[test]
fn a_session_verifies_with_each_track_file_and_a_bad_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let signer = ManifestSigner::generate();
    let (jws, files) = session(&signer);
    let e = write_evidence(dir.path(), &signer, &jws, b"");
    let mut args: Vec<std::ffi::OsString> = vec![
        "--manifest".into(),
        e.manifest.clone().into(),
        "--key".into(),
        e.key.clone().into(),
    ];
    let mut paths = Vec::new();
    for (id, bytes) in &files {
        let path = dir.path().join(format!("{id}.webm"));
        std::fs::write(&path, bytes).unwrap();
        args.push("--track".into());
        args.push(format!("{id}={}", path.display()).into());
        paths.push(path);
    }
    let run = |args: &[std::ffi::OsString]| {
        verify(&args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>())
    };

    let out = run(&args);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("session       ses-51"), "{stdout}");
    assert!(stdout.contains("tracks        2"), "{stdout}");
    assert!(
        stdout.contains("trk-1: screen (video, vp8) of client-1 as client, from +1500 ms"),
        "{stdout}"
    );
    assert!(stdout.contains("never received: 1"), "{stdout}");

    // A single file for a session is refused with what to do instead.
    let out = verify_with_key(&e);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("session"),
        "{}",
        text(&out.stderr)
    );

    // Every listed track is needed.
    let out = run(&args[..args.len() - 2]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no file given for track trk-1"), "{stderr}");

    // One flipped bit in the screen share names the track, its file and its chunk.
    let mut tampered = files[1].1.clone();
    tampered[10] ^= 0x01;
    std::fs::write(&paths[1], &tampered).unwrap();
    let out = run(&args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("track trk-1"), "{stderr}");
    assert!(stderr.contains("trk-1.webm"), "{stderr}");
    assert!(stderr.contains("chunk 0 "), "{stderr}");
}

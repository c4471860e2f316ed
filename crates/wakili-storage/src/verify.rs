//! Offline verification of a downloaded recording against its signed manifest.
//!
//! What a court expert (or the `wakili` CLI) runs: given the signed manifest, the service's
//! public key and the downloaded media, it proves the media is exactly what the service
//! recorded, chunk by chunk.

use std::io::{ErrorKind, Read};

use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};

use crate::{
    error::{ManifestError, Result},
    manifest::{
        Chain, ChunkEntry, ManifestChunk, ManifestStatus, ManifestTrack, SESSION_FORMAT,
        decode_hash, key_id_of, verify_manifest,
    },
};

/// Bytes read from the media at a time.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The recording.
    pub recording_id: String,
    /// Its consultation.
    pub consultation_id: String,
    /// Completed or incomplete.
    pub status: ManifestStatus,
    /// Chunks present (and verified).
    pub chunks: usize,
    /// Media bytes verified.
    pub bytes: u64,
    /// Chunks the manifest lists as never received.
    pub missing: Vec<u32>,
    /// SHA-256 of the media, lowercase hex.
    pub sha256: String,
    /// The chain head, lowercase hex.
    pub chain_head: String,
    /// Id of the key that signed the manifest (derived from the key, not read from the JWS).
    pub key_id: String,
    /// The consultation's audit chain head the manifest vouches for, if any.
    pub audit_head: Option<crate::manifest::Head>,
}

/// Verifies `media` (the plaintext download) against the signed manifest `jws` and `key`.
///
/// Checks the signature, then reads the media once, in order, with a fixed buffer: each chunk
/// (by the manifest's sizes) must hash to its SHA-256, each chain value must follow, the chain
/// head and the whole SHA-256 must match, and the media must end exactly after the last chunk.
/// The first discrepancy is reported precisely. A session's manifest is refused: its media are
/// its tracks' files ([`verify_session`]).
pub fn verify_recording(jws: &str, key: &VerifyingKey, media: impl Read) -> Result<Verified> {
    let manifest = verify_manifest(jws, key)?;
    if manifest.format == SESSION_FORMAT {
        return Err(ManifestError::NotASession(
            "this is a session's manifest: verify it with each track's file".into(),
        )
        .into());
    }
    let chunks = manifest.chunk_entries()?;
    let bytes = check_media(
        &chunks,
        &manifest.chunks,
        &manifest.chain_head,
        &manifest.sha256,
        manifest.total_bytes,
        media,
    )?;
    Ok(Verified {
        recording_id: manifest.recording_id,
        consultation_id: manifest.consultation_id,
        status: manifest.status,
        chunks: chunks.len(),
        bytes,
        missing: manifest.missing,
        sha256: manifest.sha256,
        chain_head: manifest.chain_head,
        key_id: key_id_of(key),
        audit_head: manifest.audit_head,
    })
}

/// What a successful verification of a session established.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedSession {
    /// The session itself (no chunks and no bytes of its own).
    pub session: Verified,
    /// Each track as the manifest lists it, its file verified, in the manifest's order.
    pub tracks: Vec<(ManifestTrack, Verified)>,
}

/// Verifies a session's signed manifest `jws` with `key`, and each of its tracks' files:
/// `tracks` gives `(track recording id, its plaintext download)` for every track the manifest
/// lists (each file is checked like [`verify_recording`] checks a recording: chunk sizes and
/// hashes, the chain, the whole SHA-256, the length). A listed track without a file, or a file
/// for a track not listed, is an error: the session is only proven whole.
pub fn verify_session<R: Read>(
    jws: &str,
    key: &VerifyingKey,
    tracks: impl IntoIterator<Item = (String, R)>,
) -> Result<VerifiedSession> {
    let manifest = verify_manifest(jws, key)?;
    if manifest.format != SESSION_FORMAT {
        return Err(ManifestError::NotASession(format!(
            "this is the manifest of a single {} recording, not of a session",
            manifest.format
        ))
        .into());
    }
    let mut files: Vec<(String, R)> = tracks.into_iter().collect();
    if let Some((id, _)) = files
        .iter()
        .find(|(id, _)| !manifest.tracks.iter().any(|t| &t.recording_id == id))
    {
        return Err(ManifestError::TrackFiles(format!(
            "the session's manifest lists no track {id}"
        ))
        .into());
    }
    let mut verified = Vec::with_capacity(manifest.tracks.len());
    for track in &manifest.tracks {
        let Some(i) = files.iter().position(|(id, _)| id == &track.recording_id) else {
            return Err(ManifestError::TrackFiles(format!(
                "no file given for track {} ({} {} of {})",
                track.recording_id, track.label, track.kind, track.participant_id
            ))
            .into());
        };
        let (_, media) = files.swap_remove(i);
        let in_track = |e: crate::StorageError| match e {
            crate::StorageError::Manifest(error) => {
                crate::StorageError::Manifest(ManifestError::Track {
                    recording_id: track.recording_id.clone(),
                    error: Box::new(error),
                })
            }
            other => other,
        };
        let chunks = track.chunk_entries().map_err(in_track)?;
        let bytes = check_media(
            &chunks,
            &track.chunks,
            &track.chain_head,
            &track.sha256,
            track.total_bytes,
            media,
        )
        .map_err(in_track)?;
        verified.push((
            track.clone(),
            Verified {
                recording_id: track.recording_id.clone(),
                consultation_id: manifest.consultation_id.clone(),
                status: track.status,
                chunks: chunks.len(),
                bytes,
                missing: track.missing.clone(),
                sha256: track.sha256.clone(),
                chain_head: track.chain_head.clone(),
                key_id: key_id_of(key),
                audit_head: None,
            },
        ));
    }
    Ok(VerifiedSession {
        session: Verified {
            recording_id: manifest.recording_id,
            consultation_id: manifest.consultation_id,
            status: manifest.status,
            chunks: 0,
            bytes: 0,
            missing: manifest.missing,
            sha256: manifest.sha256,
            chain_head: manifest.chain_head,
            key_id: key_id_of(key),
            audit_head: manifest.audit_head,
        },
        tracks: verified,
    })
}

/// Reads `media` once against the decoded `chunks` (listed with their chain values in
/// `listed`), the chain head, the whole SHA-256 and the total length. Returns the bytes read.
fn check_media(
    chunks: &[ChunkEntry],
    listed: &[ManifestChunk],
    chain_head: &str,
    sha256: &str,
    expected_total: u64,
    mut media: impl Read,
) -> Result<u64> {
    let expected_head = decode_hash(chain_head)?;
    let expected_whole = decode_hash(sha256)?;
    let mut buf = vec![0u8; READ_BUFFER_BYTES];
    let mut whole = Sha256::new();
    let mut chain = Chain::new();
    let mut read_total: u64 = 0;
    for (entry, listed) in chunks.iter().zip(listed) {
        let mut chunk = Sha256::new();
        let mut left = entry.size;
        while left > 0 {
            let want = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
            let n = read_some(&mut media, &mut buf[..want])?;
            if n == 0 {
                return Err(ManifestError::LengthMismatch {
                    expected: expected_total,
                    actual: read_total,
                }
                .into());
            }
            chunk.update(&buf[..n]);
            whole.update(&buf[..n]);
            left -= n as u64;
            read_total += n as u64;
        }
        let sha: [u8; 32] = chunk.finalize().into();
        if sha != entry.sha256 {
            return Err(ManifestError::ChunkMismatch { seq: entry.seq }.into());
        }
        if chain.push(&sha) != decode_hash(&listed.chain)? {
            return Err(ManifestError::ChainMismatch.into());
        }
    }
    let mut trailing: u64 = 0;
    loop {
        match read_some(&mut media, &mut buf)? {
            0 => break,
            n => trailing += n as u64,
        }
    }
    if trailing > 0 {
        return Err(ManifestError::LengthMismatch {
            expected: expected_total,
            actual: read_total + trailing,
        }
        .into());
    }
    if chain.head() != expected_head {
        return Err(ManifestError::ChainMismatch.into());
    }
    if <[u8; 32]>::from(whole.finalize()) != expected_whole {
        return Err(ManifestError::WholeHashMismatch.into());
    }
    Ok(read_total)
}

/// One `read`, retried when interrupted.
fn read_some(media: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    loop {
        match media.read(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => return Ok(other?),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::StorageError;
    use crate::manifest::{ChunkEntry, Manifest, ManifestSigner, tests::draft};

    /// Chunks 0..=3 of odd sizes, chunk 3 bigger than the read buffer.
    fn chunks() -> Vec<(u32, Vec<u8>)> {
        [10usize, 1, 70_001, 140_000]
            .iter()
            .enumerate()
            .map(|(seq, &len)| {
                let bytes = (0..len).map(|i| (i * 7 + seq) as u8).collect();
                (seq as u32, bytes)
            })
            .collect()
    }

    fn signed(
        signer: &ManifestSigner,
        chunks: &[(u32, Vec<u8>)],
        expected: u32,
    ) -> (String, Vec<u8>) {
        let media: Vec<u8> = chunks.iter().flat_map(|(_, b)| b.clone()).collect();
        let entries = chunks
            .iter()
            .map(|(seq, b)| ChunkEntry {
                seq: *seq,
                size: b.len() as u64,
                sha256: Sha256::digest(b).into(),
            })
            .collect();
        let manifest =
            Manifest::build(draft(), entries, expected, Sha256::digest(&media).into()).unwrap();
        (signer.sign(&manifest).unwrap(), media)
    }

    /// Hands out at most 1000 bytes per read, like a slow socket.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(1000);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn an_intact_recording_verifies() {
        let signer = ManifestSigner::generate();
        let (jws, media) = signed(&signer, &chunks(), 4);
        let v = verify_recording(&jws, &signer.verifying_key(), media.as_slice()).unwrap();
        assert_eq!(v.recording_id, "rec-1");
        assert_eq!(v.status, ManifestStatus::Completed);
        assert_eq!(v.chunks, 4);
        assert_eq!(v.bytes, media.len() as u64);
        assert!(v.missing.is_empty());
        assert_eq!(v.key_id, signer.key_id());
        assert_eq!(
            verify_recording(&jws, &signer.verifying_key(), Trickle(&media)).unwrap(),
            v
        );
    }

    #[test]
    fn an_incomplete_recording_verifies_with_its_gaps() {
        let signer = ManifestSigner::generate();
        let mut present = chunks();
        present.remove(1);
        let (jws, media) = signed(&signer, &present, 6);
        let v = verify_recording(&jws, &signer.verifying_key(), media.as_slice()).unwrap();
        assert_eq!(v.status, ManifestStatus::Incomplete);
        assert_eq!(v.missing, [1, 4, 5]);
        assert_eq!(v.chunks, 3);
    }

    #[test]
    fn truncated_and_extended_media_fail_with_lengths() {
        let signer = ManifestSigner::generate();
        let key = signer.verifying_key();
        let (jws, media) = signed(&signer, &chunks(), 4);
        let total = media.len() as u64;
        let short = &media[..media.len() - 5];
        assert!(matches!(
            verify_recording(&jws, &key, short),
            Err(StorageError::Manifest(ManifestError::LengthMismatch { expected, actual })) if expected == total && actual == total - 5
        ));
        let mut long = media.clone();
        long.extend_from_slice(&[0; 3]);
        assert!(matches!(
            verify_recording(&jws, &key, long.as_slice()),
            Err(StorageError::Manifest(ManifestError::LengthMismatch { expected, actual })) if expected == total && actual == total + 3
        ));
        let mut one_more = media.clone();
        one_more.push(0);
        assert!(matches!(
            verify_recording(&jws, &key, one_more.as_slice()),
            Err(StorageError::Manifest(ManifestError::LengthMismatch { actual, .. })) if actual == total + 1
        ));
        assert!(matches!(
            verify_recording(&jws, &key, &[][..]),
            Err(StorageError::Manifest(ManifestError::LengthMismatch {
                actual: 0,
                ..
            }))
        ));
    }

    #[test]
    fn a_flipped_byte_names_its_chunk() {
        let signer = ManifestSigner::generate();
        let (jws, media) = signed(&signer, &chunks(), 4);
        let chunk2_start = 10 + 1;
        for offset in [0, 5, 70_000] {
            let mut bad = media.clone();
            bad[chunk2_start + offset] ^= 0x04;
            assert!(matches!(
                verify_recording(&jws, &signer.verifying_key(), bad.as_slice()),
                Err(StorageError::Manifest(ManifestError::ChunkMismatch {
                    seq: 2
                }))
            ));
        }
    }

    #[test]
    fn a_manifest_that_contradicts_itself_is_caught() {
        let signer = ManifestSigner::generate();
        let (jws, media) = signed(&signer, &chunks(), 4);
        let key = signer.verifying_key();
        let mut m = verify_manifest(&jws, &key).unwrap();
        m.sha256 = hex::encode([0u8; 32]);
        let bad_whole = signer.sign(&m).unwrap();
        assert!(matches!(
            verify_recording(&bad_whole, &key, media.as_slice()),
            Err(StorageError::Manifest(ManifestError::WholeHashMismatch))
        ));
        let mut m = verify_manifest(&jws, &key).unwrap();
        m.chunks[1].chain = hex::encode([1u8; 32]);
        assert!(matches!(
            verify_recording(&signer.sign(&m).unwrap(), &key, media.as_slice()),
            Err(StorageError::Manifest(ManifestError::ChainMismatch))
        ));
        let mut m = verify_manifest(&jws, &key).unwrap();
        m.chain_head = hex::encode([1u8; 32]);
        assert!(matches!(
            verify_recording(&signer.sign(&m).unwrap(), &key, media.as_slice()),
            Err(StorageError::Manifest(ManifestError::ChainMismatch))
        ));
        let mut m = verify_manifest(&jws, &key).unwrap();
        m.total_bytes += 1;
        assert!(matches!(
            verify_recording(&signer.sign(&m).unwrap(), &key, media.as_slice()),
            Err(StorageError::Manifest(ManifestError::MalformedManifest(_)))
        ));
    }

    #[test]
    fn another_key_is_refused_before_reading() {
        let signer = ManifestSigner::generate();
        let (jws, media) = signed(&signer, &chunks(), 4);
        assert!(matches!(
            verify_recording(
                &jws,
                &ManifestSigner::generate().verifying_key(),
                media.as_slice()
            ),
            Err(StorageError::Manifest(ManifestError::BadSignature))
        ));
    }

    /// A session over two tracks (chunks 0..=1 and 2..=3 of [`chunks`], renumbered): its
    /// manifest and each track's `(id, media)`.
    fn session(signer: &ManifestSigner) -> (String, Vec<(String, Vec<u8>)>) {
        use wakili_core::recording::{TrackKind, TrackMeta};
        let all = chunks();
        let mut tracks = Vec::new();
        let mut files = Vec::new();
        for (i, part) in all.chunks(2).enumerate() {
            let part: Vec<(u32, Vec<u8>)> = part
                .iter()
                .enumerate()
                .map(|(seq, (_, b))| (seq as u32, b.clone()))
                .collect();
            let (jws, media) = signed(signer, &part, 2);
            let mut own = verify_manifest(&jws, &signer.verifying_key()).unwrap();
            own.recording_id = format!("track-{i}");
            let meta = TrackMeta {
                participant_id: "p-1".into(),
                user_id: "u-1".into(),
                role: wakili_core::ParticipantRole::Client,
                kind: if i == 0 {
                    TrackKind::Audio
                } else {
                    TrackKind::Video
                },
                label: if i == 0 { "audio" } else { "video" }.into(),
                codec: if i == 0 { "opus" } else { "vp8" }.into(),
                started_at: own.started_at,
                start_offset_ms: 250 * i as i64,
            };
            tracks.push(ManifestTrack::of(&meta, &own));
            files.push((own.recording_id, media));
        }
        let mut d = draft();
        d.format = SESSION_FORMAT.into();
        let mut manifest = Manifest::build(d, Vec::new(), 0, Sha256::digest([]).into()).unwrap();
        manifest.tracks = tracks;
        (signer.sign(&manifest).unwrap(), files)
    }

    #[test]
    fn a_session_verifies_with_every_track_file_and_names_the_bad_one() {
        let signer = ManifestSigner::generate();
        let key = signer.verifying_key();
        let (jws, files) = session(&signer);
        let given = || files.iter().map(|(id, m)| (id.clone(), m.as_slice()));
        let v = verify_session(&jws, &key, given()).unwrap();
        assert_eq!(v.session.recording_id, "rec-1");
        assert_eq!(v.session.status, ManifestStatus::Completed);
        assert_eq!(v.tracks.len(), 2);
        assert_eq!(v.tracks[1].0.start_offset_ms, 250);
        assert_eq!(v.tracks[1].1.bytes, files[1].1.len() as u64);
        assert_eq!(v.tracks[0].1.chunks, 2);

        // The files in any order; a changed byte in one track names that track and chunk.
        let reversed: Vec<_> = given().rev().collect();
        assert!(verify_session(&jws, &key, reversed).is_ok());
        let mut bad = files.clone();
        bad[1].1[5] ^= 1;
        match verify_session(
            &jws,
            &key,
            bad.iter().map(|(id, m)| (id.clone(), m.as_slice())),
        ) {
            Err(StorageError::Manifest(ManifestError::Track {
                recording_id,
                error,
            })) => {
                assert_eq!(recording_id, "track-1");
                assert!(matches!(*error, ManifestError::ChunkMismatch { seq: 0 }));
            }
            other => panic!("{other:?}"),
        }
        // Every track must be given, and only tracks the manifest lists.
        assert!(matches!(
            verify_session(&jws, &key, given().take(1)),
            Err(StorageError::Manifest(ManifestError::TrackFiles(m))) if m.contains("track-1")
        ));
        let extra = given().chain([("track-9".to_owned(), &b"x"[..])]);
        assert!(matches!(
            verify_session(&jws, &key, extra),
            Err(StorageError::Manifest(ManifestError::TrackFiles(m))) if m.contains("track-9")
        ));
        // A session manifest is not a single recording, nor the other way round.
        assert!(matches!(
            verify_recording(&jws, &key, &b""[..]),
            Err(StorageError::Manifest(ManifestError::NotASession(_)))
        ));
        let (single, media) = signed(&signer, &chunks(), 4);
        assert!(matches!(
            verify_session(&single, &key, [("rec-1".to_owned(), media.as_slice())]),
            Err(StorageError::Manifest(ManifestError::NotASession(_)))
        ));
    }
}

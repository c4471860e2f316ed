//! The two references the ingest is compared with, measured on the same data in the same run:
//! sealing in this process with the server's own code, and writing to the server's disk.

use std::{
    fs::{self, File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::Context;
use serde::Serialize;
use wakili_storage::{DataKey, RecordingCipher, random_nonce_prefix};

use super::data::Media;

/// Bytes per `write` in the disk reference.
pub const DISK_WRITE_BYTES: usize = 1 << 20;
/// Bytes in a MiB.
pub const MIB: f64 = 1_048_576.0;

/// One timed pass over the data.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Pass {
    /// Threads that shared the work.
    pub threads: usize,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Bytes per second over the wall time, MiB/s.
    pub mib_per_s: f64,
}

impl Pass {
    fn new(threads: usize, bytes: u64, seconds: f64) -> Self {
        Self {
            threads,
            seconds,
            mib_per_s: bytes as f64 / MIB / seconds.max(1e-9),
        }
    }
}

/// Seals every chunk of `media` as the server seals an upload ([`wakili_storage::ChunkSealer`]:
/// AES-256-GCM STREAM in 64 KiB segments and the plaintext's SHA-256, in one pass), on `threads`
/// threads, each a contiguous share of the chunks with its own cipher of one recording's key.
/// Fails if a chunk's digest differs from the one computed when the data was generated.
pub fn crypto(media: &Media, threads: usize) -> anyhow::Result<Pass> {
    let threads = threads.clamp(1, media.chunk_count().max(1));
    let key = DataKey::generate();
    let prefix = random_nonce_prefix();
    let started = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let cipher = RecordingCipher::new(&key, prefix, "wakili-bench-reference");
                scope.spawn(move || -> anyhow::Result<u64> {
                    let mut out = Vec::with_capacity(wakili_storage::ciphertext_len(
                        media.chunk_bytes as u64,
                    ) as usize);
                    let mut sealed = 0u64;
                    let share = |t: usize| t * media.chunk_count() / threads;
                    for seq in share(t)..share(t + 1) {
                        let bytes = &media.bytes[media.chunk_range(seq)];
                        out.clear();
                        let mut sealer = cipher.chunk_sealer(u32::try_from(seq)?)?;
                        sealer.push(bytes, &mut out)?;
                        let digest = sealer.finish(&mut out)?;
                        anyhow::ensure!(
                            digest.sha256 == media.chunk_sha256[seq],
                            "the sealer's SHA-256 of chunk {seq} differs from the precomputed one"
                        );
                        sealed += out.len() as u64;
                    }
                    Ok(std::hint::black_box(sealed))
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a sealing thread panicked"))??;
        }
        anyhow::Ok(())
    })?;
    Ok(Pass::new(
        threads,
        media.len(),
        started.elapsed().as_secs_f64(),
    ))
}

/// The disk reference's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Disk {
    /// The file written (deleted afterwards).
    pub path: PathBuf,
    /// Writing and the final fsync, together.
    #[serde(flatten)]
    pub pass: Pass,
    /// Of which the fsync, seconds.
    pub fsync_seconds: f64,
}

/// Removes the file when dropped, whatever happened.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Writes `media` in [`DISK_WRITE_BYTES`] writes to a new file in `dir`, then fsyncs it, timing
/// both; deletes the file.
pub fn disk(dir: &Path, media: &Media) -> anyhow::Result<Disk> {
    let path = dir.join(format!(".wakili-bench-disk-{}.tmp", std::process::id()));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let scratch = Scratch(path.clone());
    let started = Instant::now();
    for piece in media.bytes.chunks(DISK_WRITE_BYTES) {
        file.write_all(piece)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let written = Instant::now();
    File::sync_all(&file).with_context(|| format!("cannot fsync {}", path.display()))?;
    let done = Instant::now();
    drop(file);
    drop(scratch);
    Ok(Disk {
        path,
        pass: Pass::new(1, media.len(), (done - started).as_secs_f64()),
        fsync_seconds: (done - written).as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn crypto_seals_everything_on_any_thread_count() {
        let media = Media::generate(300_000, 70_000, 2, 1);
        for threads in [1, 2, 16] {
            let pass = crypto(&media, threads).unwrap();
            assert!(pass.threads <= media.chunk_count());
            assert!(pass.mib_per_s > 0.0);
        }
    }

    #[test]
    fn a_wrong_precomputed_digest_is_caught() {
        let mut media = Media::generate(100_000, 40_000, 1, 1);
        media.chunk_sha256[2][0] ^= 1;
        let e = crypto(&media, 1).unwrap_err().to_string();
        assert!(e.contains("chunk 2"), "{e}");
    }

    #[test]
    fn disk_writes_syncs_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let media = Media::generate(3 * DISK_WRITE_BYTES + 5, 1 << 20, 1, 1);
        let d = disk(dir.path(), &media).unwrap();
        assert!(d.pass.seconds >= d.fsync_seconds);
        assert!(!d.path.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(disk(&dir.path().join("missing"), &media).is_err());
    }
}

//! Where chunks wait for storage: memory shared by every track up to a bound, then spool
//! files, sealed with a key that lives only in this process (what waits there is plaintext
//! media; a crash forgets the key and storage finalizes the recording with what it holds).

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use aes_gcm::{Aes256Gcm, Key, KeyInit, aead::AeadInOut};

/// Spool files carry this extension.
const SPOOL_EXTENSION: &str = "wakili-spool";

/// The shared bounds and counters.
pub(crate) struct Budget {
    memory_limit: u64,
    spool_limit: u64,
    pub(crate) memory_used: AtomicU64,
    pub(crate) spool_used: AtomicU64,
    pub(crate) sealed_bytes: AtomicU64,
    pub(crate) sealed_chunks: AtomicU64,
    pub(crate) overflow: AtomicU64,
    pub(crate) recorded_packets: AtomicU64,
    pub(crate) sessions: AtomicU64,
    pub(crate) tracks: AtomicU64,
    cipher: Aes256Gcm,
    next_nonce: AtomicU64,
}

impl Budget {
    pub(crate) fn new(memory_limit: u64, spool_limit: u64) -> Self {
        let key: [u8; 32] = rand::random();
        let key: &Key<Aes256Gcm> = (&key).into();
        Self {
            memory_limit,
            spool_limit,
            memory_used: AtomicU64::new(0),
            spool_used: AtomicU64::new(0),
            sealed_bytes: AtomicU64::new(0),
            sealed_chunks: AtomicU64::new(0),
            overflow: AtomicU64::new(0),
            recorded_packets: AtomicU64::new(0),
            sessions: AtomicU64::new(0),
            tracks: AtomicU64::new(0),
            cipher: Aes256Gcm::new(key),
            next_nonce: AtomicU64::new(1),
        }
    }

    /// Reserves `n` bytes of `used` under `limit`.
    fn reserve(used: &AtomicU64, limit: u64, n: u64) -> bool {
        used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
            (u + n <= limit).then_some(u + n)
        })
        .is_ok()
    }

    fn release(used: &AtomicU64, n: u64) {
        let _ = used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
            Some(u.saturating_sub(n))
        });
    }

    /// Places a chunk: in memory if it fits, else in a spool file under `dir` if that fits,
    /// else nowhere (`None`: the caller reports the overflow).
    pub(crate) async fn place(&self, bytes: Vec<u8>, dir: &Path) -> Option<Waiting> {
        let n = bytes.len() as u64;
        if Self::reserve(&self.memory_used, self.memory_limit, n) {
            return Some(Waiting::Memory(bytes));
        }
        if !Self::reserve(&self.spool_used, self.spool_limit, n) {
            return None;
        }
        let nonce = self.next_nonce.fetch_add(1, Ordering::Relaxed);
        let mut sealed = bytes;
        let nonce_bytes = nonce_of(nonce);
        if self
            .cipher
            .encrypt_in_place(&nonce_bytes.into(), b"", &mut sealed)
            .is_err()
        {
            Self::release(&self.spool_used, n);
            return None;
        }
        let path = dir.join(format!("{}.{SPOOL_EXTENSION}", wakili_core::new_id()));
        match tokio::fs::write(&path, &sealed).await {
            Ok(()) => Some(Waiting::Spool {
                path,
                len: n,
                nonce,
            }),
            Err(error) => {
                tracing::error!(%error, path = %path.display(), "spool write failed");
                Self::release(&self.spool_used, n);
                None
            }
        }
    }

    /// The bytes of a waiting chunk (read back and opened if spooled).
    pub(crate) async fn read(&self, waiting: &Waiting) -> std::io::Result<Vec<u8>> {
        match waiting {
            Waiting::Memory(bytes) => Ok(bytes.clone()),
            Waiting::Spool { path, nonce, .. } => {
                let mut sealed = tokio::fs::read(path).await?;
                self.cipher
                    .decrypt_in_place(&nonce_of(*nonce).into(), b"", &mut sealed)
                    .map_err(|_| std::io::Error::other("spool file does not authenticate"))?;
                Ok(sealed)
            }
        }
    }

    /// Gives back what a chunk held (it was stored, or given up).
    pub(crate) async fn free(&self, waiting: Waiting) {
        match waiting {
            Waiting::Memory(bytes) => Self::release(&self.memory_used, bytes.len() as u64),
            Waiting::Spool { path, len, .. } => {
                if let Err(error) = tokio::fs::remove_file(&path).await {
                    tracing::warn!(%error, path = %path.display(), "spool file not removed");
                }
                Self::release(&self.spool_used, len);
            }
        }
    }
}

fn nonce_of(counter: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&counter.to_be_bytes());
    nonce
}

/// A chunk waiting for storage.
pub(crate) enum Waiting {
    /// In memory.
    Memory(Vec<u8>),
    /// In a spool file.
    Spool { path: PathBuf, len: u64, nonce: u64 },
}

/// Creates the spool directory and removes spool files an earlier run left (unreadable now:
/// their key is gone).
pub(crate) fn clean_spool(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == SPOOL_EXTENSION) {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn chunks_wait_in_memory_then_in_sealed_spool_files_then_nowhere() {
        let dir = tempfile::tempdir().unwrap();
        let budget = Budget::new(100, 150);
        let a = budget.place(vec![1; 80], dir.path()).await.unwrap();
        assert!(matches!(a, Waiting::Memory(_)));
        let b = budget.place(vec![2; 80], dir.path()).await.unwrap();
        let Waiting::Spool { path, .. } = &b else {
            panic!("memory is full: spooled");
        };
        let on_disk = std::fs::read(path).unwrap();
        assert!(
            !on_disk.windows(8).any(|w| w == [2; 8]),
            "spooled media is sealed"
        );
        assert_eq!(budget.read(&b).await.unwrap(), vec![2; 80]);
        assert!(
            budget.place(vec![3; 80], dir.path()).await.is_none(),
            "spool full"
        );
        assert_eq!(budget.spool_used.load(Ordering::Relaxed), 80);
        budget.free(b).await;
        budget.free(a).await;
        assert_eq!(budget.memory_used.load(Ordering::Relaxed), 0);
        assert_eq!(budget.spool_used.load(Ordering::Relaxed), 0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn spool_files_of_an_earlier_run_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.wakili-spool"), b"old").unwrap();
        std::fs::write(dir.path().join("keep.txt"), b"other").unwrap();
        clean_spool(dir.path()).unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1);
    }
}

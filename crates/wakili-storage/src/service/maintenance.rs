//! Upkeep: legal hold, crypto-shredding and object deletes, master key re-wrapping, usage,
//! replication, and the background loop that runs them (with spool cleanup).

use std::time::{Duration, Instant};

use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::json;
use wakili_db::models::{Chunk, Recording};

use super::{RecordingStore, audit};
use crate::{
    ProviderError, StateError, StorageError, WrappedKey, placement::copy_targets,
    providers::ProviderStatus,
};

/// Provider health and holdings.
#[derive(Debug, Clone)]
pub struct Usage {
    /// Every provider in order, with what it holds.
    pub providers: Vec<(ProviderStatus, wakili_db::models::ProviderUsage)>,
    /// Chunks not yet on every wanted provider.
    pub replication_backlog: u64,
    /// Copies kept of each chunk.
    pub replicas: usize,
    /// Object deletes of shredded recordings still to be done (retried in the background).
    pub pending_deletes: u64,
    /// Recordings whose data key is still wrapped by a retired master key (re-wrapped in the
    /// background; at 0 the retired keys can be removed).
    pub keys_under_retired_master_keys: u64,
}

impl RecordingStore {
    /// Sets or clears the legal hold; a session's hold covers its tracks.
    pub async fn legal_hold(
        &self,
        recording: &Recording,
        hold: bool,
        reason: Option<String>,
        by: &str,
    ) -> Result<Recording, StorageError> {
        if recording.is_session() {
            for track in self.tracks(&recording.id).await? {
                if track.status != wakili_core::recording::RecordingStatus::Deleted {
                    self.hold_one(&track, hold, reason.clone(), by).await?;
                }
            }
        }
        self.hold_one(recording, hold, reason, by).await
    }

    async fn hold_one(
        &self,
        recording: &Recording,
        hold: bool,
        reason: Option<String>,
        by: &str,
    ) -> Result<Recording, StorageError> {
        let action = if hold {
            "recording.legal_hold_set"
        } else {
            "recording.legal_hold_cleared"
        };
        let audit = audit(
            &recording.consultation_id,
            by,
            action,
            json!({ "recordingId": recording.id, "reason": reason }),
        );
        self.inner
            .stores
            .records
            .set_legal_hold(&recording.id, hold, reason, audit, self.inner.clock.now())
            .await?
            .ok_or(StorageError::State(StateError::NotFound))
    }

    /// Crypto-shreds a recording (its wrapped key is destroyed first, so nothing is readable
    /// from that moment), then deletes its objects everywhere; a session's tracks go first.
    /// Refused under legal hold (of the session or any of its tracks).
    pub async fn delete(&self, recording: &Recording, by: &str) -> Result<(), StorageError> {
        if recording.is_session() {
            let tracks: Vec<Recording> = self
                .tracks(&recording.id)
                .await?
                .into_iter()
                .filter(|t| t.status != wakili_core::recording::RecordingStatus::Deleted)
                .collect();
            if recording.legal_hold || tracks.iter().any(|t| t.legal_hold) {
                return Err(StateError::LegalHold.into());
            }
            for track in &tracks {
                self.shred_one(track, by).await?;
            }
        }
        self.shred_one(recording, by).await
    }

    async fn shred_one(&self, recording: &Recording, by: &str) -> Result<(), StorageError> {
        let inner = &self.inner;
        if recording.legal_hold {
            return Err(StateError::LegalHold.into());
        }
        let audit = audit(
            &recording.consultation_id,
            by,
            "recording.deleted",
            json!({ "recordingId": recording.id, "method": "crypto-shredding" }),
        );
        if !inner
            .stores
            .records
            .shred_recording(&recording.id, inner.clock.now(), audit)
            .await?
        {
            return match inner.stores.records.recording(&recording.id).await? {
                Some(r) if r.legal_hold => Err(StorageError::State(StateError::LegalHold)),
                _ => Err(StorageError::State(StateError::NotFound)),
            };
        }
        self.purge(&recording.id).await;
        Ok(())
    }

    /// Queues the deletion of a shredded recording's objects on every provider and tries them
    /// now; what fails stays queued and is retried in the background (it is unreadable
    /// ciphertext meanwhile).
    async fn purge(&self, id: &str) {
        let inner = &self.inner;
        if let Err(e) = inner
            .stores
            .records
            .queue_object_deletes(id, &inner.providers.names(), inner.clock.now())
            .await
        {
            tracing::warn!(recording_id = id, error = %e, "queueing shredded objects for deletion failed; the background pass will");
            return;
        }
        if let Err(e) = self.process_deletes().await {
            tracing::warn!(recording_id = id, error = %e, "deleting shredded objects failed; will retry");
        }
    }

    /// One pass over the queued object deletes: shredded recordings whose objects were not
    /// queued yet are queued, then each provider deletes its queued objects until one fails
    /// (providers in parallel; one cooling down is skipped). Returns deletes done.
    pub async fn process_deletes(&self) -> Result<usize, StorageError> {
        let inner = &self.inner;
        let names = inner.providers.names();
        for id in inner.stores.records.shredded_with_chunks(16).await? {
            inner
                .stores
                .records
                .queue_object_deletes(&id, &names, inner.clock.now())
                .await?;
        }
        let queued = inner.stores.records.pending_deletes(512).await?;
        if queued.is_empty() {
            return Ok(0);
        }
        let now = Instant::now();
        let per_provider = names.iter().map(|name| {
            let keys: Vec<&String> = queued
                .iter()
                .filter(|(provider, _)| provider == name)
                .map(|(_, key)| key)
                .collect();
            async move {
                let mut done = 0;
                if keys.is_empty() || !inner.providers.available(name, now) {
                    return Ok::<usize, StorageError>(0);
                }
                for key in keys {
                    match inner.providers.delete(name, key).await {
                        Ok(()) => {
                            inner.stores.records.delete_attempted(name, key, true).await?;
                            done += 1;
                        }
                        Err(e) => {
                            tracing::warn!(provider = %name, key = %key, error = %e, "deleting a shredded object failed; will retry");
                            inner.stores.records.delete_attempted(name, key, false).await?;
                            break;
                        }
                    }
                }
                Ok(done)
            }
        });
        let mut done = 0;
        for outcome in futures_util::future::join_all(per_provider).await {
            done += outcome?;
        }
        // Objects of providers no longer configured can never be deleted from here.
        for (provider, key) in queued.iter().filter(|(p, _)| !names.contains(p)) {
            tracing::warn!(provider = %provider, key = %key, "queued delete for a provider that is no longer configured: dropped");
            inner
                .stores
                .records
                .delete_attempted(provider, key, true)
                .await?;
        }
        Ok(done)
    }

    /// Re-wraps every data key not wrapped by the current master key (after a rotation), so
    /// the retired keys can be removed once [`Usage::keys_under_retired_master_keys`] is 0.
    /// A key whose master key is not configured is left alone (and logged). Returns how many
    /// were re-wrapped.
    pub async fn rewrap_keys(&self) -> Result<usize, StorageError> {
        let inner = &self.inner;
        let current = inner.keyring.current().id().to_owned();
        let mut done = 0;
        loop {
            let batch = inner.stores.records.keys_to_rewrap(&current, 64).await?;
            let mut progressed = false;
            for (id, text, key_id) in batch {
                let Ok(bytes) = STANDARD.decode(&text) else {
                    tracing::error!(recording_id = %id, "stored data key does not decode");
                    continue;
                };
                let wrapped = WrappedKey { key_id, bytes };
                let key = match inner.keyring.unwrap(&wrapped, &id) {
                    Ok(key) => key,
                    Err(e) => {
                        tracing::warn!(recording_id = %id, master_key = %wrapped.key_id, error = %e, "data key cannot be re-wrapped");
                        continue;
                    }
                };
                let rewrapped = inner.keyring.wrap(&key, &id)?;
                if inner
                    .stores
                    .records
                    .rewrap_key(
                        &id,
                        &text,
                        &STANDARD.encode(&rewrapped.bytes),
                        &rewrapped.key_id,
                    )
                    .await?
                {
                    done += 1;
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
        if done > 0 {
            let left = inner.stores.records.keys_to_rewrap_count(&current).await?;
            tracing::info!(rewrapped = done, left, master_key = %current, "data keys re-wrapped under the current master key");
        }
        Ok(done)
    }

    /// Provider health and holdings, and the replication backlog.
    pub async fn usage(&self) -> Result<Usage, StorageError> {
        let inner = &self.inner;
        let held = inner.stores.records.storage_usage().await?;
        let providers = inner
            .providers
            .status(Instant::now())
            .into_iter()
            .map(|status| {
                let usage = held
                    .iter()
                    .find(|u| u.provider == status.name)
                    .cloned()
                    .unwrap_or(wakili_db::models::ProviderUsage {
                        provider: status.name.clone(),
                        recordings: 0,
                        objects: 0,
                        bytes: 0,
                    });
                (status, usage)
            })
            .collect();
        Ok(Usage {
            providers,
            replication_backlog: inner
                .stores
                .records
                .replication_backlog(&inner.providers.wanted())
                .await?,
            replicas: inner.providers.replicas(),
            pending_deletes: inner.stores.records.pending_delete_count().await?,
            keys_under_retired_master_keys: inner
                .stores
                .records
                .keys_to_rewrap_count(inner.keyring.current().id())
                .await?,
        })
    }

    /// One replication pass over everything under-replicated. Returns copies made.
    pub async fn replicate_once(&self) -> Result<usize, StorageError> {
        let inner = &self.inner;
        let wanted = inner.providers.wanted();
        let order = inner.providers.names();
        let mut made = 0;
        let mut offset = 0;
        loop {
            let page = inner
                .stores
                .records
                .under_replicated(&wanted, 64, offset)
                .await?;
            if page.is_empty() {
                return Ok(made);
            }
            offset += page.len() as u64;
            for chunk in page {
                let now = Instant::now();
                let targets = copy_targets(
                    &chunk.providers,
                    &order,
                    inner.providers.replicas(),
                    |name| inner.providers.available(name, now),
                );
                for target in targets {
                    match self.copy(&chunk, &target).await {
                        Ok(()) => made += 1,
                        Err(e) => {
                            tracing::debug!(recording_id = %chunk.recording_id, seq = chunk.seq, target, error = %e, "replication deferred")
                        }
                    }
                }
            }
        }
    }

    async fn copy(&self, chunk: &Chunk, target: &str) -> Result<(), StorageError> {
        let inner = &self.inner;
        let mut last =
            StorageError::Provider(ProviderError::ObjectMissing(chunk.object_key.clone()));
        for holder in &chunk.providers {
            match inner.providers.open_from(holder, &chunk.object_key).await {
                Ok(reader) => {
                    inner
                        .providers
                        .put_to(target, &chunk.object_key, reader)
                        .await?;
                    inner
                        .stores
                        .records
                        .add_copy(&chunk.recording_id, chunk.seq, target, inner.clock.now())
                        .await?;
                    return Ok(());
                }
                Err(StorageError::Provider(ProviderError::ObjectMissing(key))) => {
                    self.forget_gone(chunk, std::slice::from_ref(holder)).await;
                    last = StorageError::Provider(ProviderError::ObjectMissing(key));
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Runs until `shutdown` resolves: replication, finalization retries and queued deletes
    /// every pass; the abandoned-upload sweep, key re-wrapping and spool cleanup at start and
    /// every quarter of `abandon_after`.
    pub async fn run_background(self, shutdown: impl std::future::Future<Output = ()> + Send) {
        let interval = self.inner.config.replication_interval;
        let sweep_every = (self.inner.config.abandon_after / 4).max(Duration::from_secs(1));
        let work = async {
            let mut last_sweep = Instant::now();
            let mut first = true;
            loop {
                if let Err(e) = self.replicate_once().await {
                    tracing::warn!(error = %e, "replication pass failed");
                }
                if let Err(e) = self.retry_finalizations().await {
                    tracing::warn!(error = %e, "finalization retry pass failed");
                }
                if let Err(e) = self.process_deletes().await {
                    tracing::warn!(error = %e, "deleting shredded objects failed");
                }
                if first || last_sweep.elapsed() >= sweep_every {
                    if let Err(e) = self.rewrap_keys().await {
                        tracing::warn!(error = %e, "re-wrapping data keys failed");
                    }
                    let config = &self.inner.config;
                    clean_spool(&config.spool_dir, config.spool_max_age);
                }
                if last_sweep.elapsed() >= sweep_every {
                    last_sweep = Instant::now();
                    if let Err(e) = self.sweep_abandoned().await {
                        tracing::warn!(error = %e, "abandoned-upload sweep failed");
                    }
                }
                first = false;
                tokio::time::sleep(interval).await;
            }
        };
        tokio::select! {
            () = work => {}
            () = shutdown => {}
        }
    }
}

/// Removes the spool files in `dir` not modified for `max_age`: no upload lives that long, so
/// they were left by a crash. Returns how many were removed.
pub(super) fn clean_spool(dir: &std::path::Path, max_age: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let now = std::time::SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "part") {
            continue;
        }
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|at| now.duration_since(at).is_ok_and(|age| age > max_age));
        if stale && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn only_stale_spool_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join("a.part");
        let fresh = dir.path().join("b.part");
        let other = dir.path().join("notes.txt");
        for path in [&stale, &fresh, &other] {
            std::fs::write(path, b"x").unwrap();
        }
        let old = std::time::SystemTime::now() - Duration::from_secs(600);
        for path in [&stale, &other] {
            std::fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        assert_eq!(clean_spool(dir.path(), Duration::from_secs(60)), 1);
        assert!(!stale.exists());
        assert!(fresh.exists() && other.exists());
    }
}

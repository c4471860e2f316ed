//! The configured object stores, in order, with their health: writes go to the first healthy
//! one, reads try the holders in order, and failures start a cool-down.

use std::{
    ops::Range,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, aws::AmazonS3Builder,
    buffered::BufWriter, local::LocalFileSystem, path::Path as ObjectPath,
};
use tokio::io::{AsyncRead, AsyncWriteExt};
use wakili_settings::{ProviderKind, ProviderSettings};

use crate::{
    StorageError,
    health::{Health, HealthPolicy},
};

/// Objects up to this size are written with one PUT; larger ones stream as multipart parts of
/// this size (S3's smallest part is 5 MiB), so no upload is held in memory whole.
const PART_BYTES: usize = 5 * 1024 * 1024;

/// Reads from a spool file are this large (tokio's default copy buffer is 8 KiB, and every read
/// of a `tokio::fs::File` is a trip to the blocking pool).
const COPY_BYTES: usize = 1024 * 1024;

/// What a provider is given to store.
#[derive(Debug)]
pub enum Payload<'a> {
    /// Sealed bytes held in memory, written with one request.
    Memory(PutPayload),
    /// A spool file, streamed.
    File(&'a Path),
}

/// One object store.
pub struct Provider {
    name: String,
    kind: ProviderKind,
    store: Arc<dyn ObjectStore>,
    health: Mutex<Health>,
}

/// How a provider is doing, for `GET /api/v1/storage/usage`.
#[derive(Debug, Clone)]
pub struct ProviderStatus {
    /// Its name.
    pub name: String,
    /// `s3`, `r2` or `local`.
    pub kind: ProviderKind,
    /// Whether writes go to it now.
    pub healthy: bool,
    /// Failures since its last success.
    pub consecutive_failures: u32,
    /// Time left before it is tried again, when cooling down.
    pub cooldown_left: Option<Duration>,
    /// Its last error, until a success.
    pub last_error: Option<String>,
}

/// The providers in order of preference.
pub struct Providers {
    list: Vec<Provider>,
    policy: HealthPolicy,
    put_timeout: Duration,
    replicas: usize,
}

impl Providers {
    /// Opens every configured provider (local directories are created).
    pub fn open(
        settings: &[ProviderSettings],
        policy: HealthPolicy,
        put_timeout: Duration,
        replicas: usize,
    ) -> Result<Self, StorageError> {
        let list = settings
            .iter()
            .map(|p| {
                Ok(Provider {
                    name: p.name.clone(),
                    kind: p.kind,
                    store: open_store(p, put_timeout)?,
                    health: Mutex::new(Health::default()),
                })
            })
            .collect::<Result<Vec<_>, StorageError>>()?;
        if list.is_empty() {
            return Err(StorageError::Config(
                "no storage provider configured".into(),
            ));
        }
        let replicas = replicas.clamp(1, list.len());
        Ok(Self {
            list,
            policy,
            put_timeout,
            replicas,
        })
    }

    /// Provider names in order.
    pub fn names(&self) -> Vec<String> {
        self.list.iter().map(|p| p.name.clone()).collect()
    }

    /// The providers every chunk should end up on: the first `replicas`.
    pub fn wanted(&self) -> Vec<String> {
        self.list
            .iter()
            .take(self.replicas)
            .map(|p| p.name.clone())
            .collect()
    }

    /// Copies each chunk should have.
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    /// Whether `name` is configured and may be tried at `now`.
    pub fn available(&self, name: &str, now: Instant) -> bool {
        self.find(name).is_some_and(|p| health(p).available(now))
    }

    /// Health of every provider at `now`.
    pub fn status(&self, now: Instant) -> Vec<ProviderStatus> {
        self.list
            .iter()
            .map(|p| {
                let h = health(p);
                ProviderStatus {
                    name: p.name.clone(),
                    kind: p.kind,
                    healthy: h.available(now) && h.consecutive_failures() == 0,
                    consecutive_failures: h.consecutive_failures(),
                    cooldown_left: h.cooldown_left(now),
                    last_error: h.last_error().map(str::to_owned),
                }
            })
            .collect()
    }

    /// Writes the file at `source` as object `key` to the first provider that takes it, in order,
    /// skipping those cooling down (unless all are). Returns the provider's name. The object is
    /// durable when this returns (S3 acknowledges stored objects; local files are fsynced).
    pub async fn put_first(&self, key: &str, source: &Payload<'_>) -> Result<String, StorageError> {
        let now = Instant::now();
        let (ready, cooling): (Vec<&Provider>, Vec<&Provider>) =
            self.list.iter().partition(|p| health(p).available(now));
        let mut failures = Vec::new();
        for provider in ready.into_iter().chain(cooling) {
            let outcome = match source {
                Payload::Memory(bytes) => self.put_bytes(provider, key, bytes.clone()).await,
                Payload::File(path) => {
                    let file = tokio::fs::File::open(path)
                        .await
                        .map_err(|e| StorageError::Spool(e.to_string()))?;
                    self.put_with(provider, key, file).await
                }
            };
            match outcome {
                Ok(()) => return Ok(provider.name.clone()),
                Err(e) => failures.push(format!("{}: {e}", provider.name)),
            }
        }
        Err(StorageError::NoProvider(failures.join("; ")))
    }

    /// Writes `data` as object `key` to the provider `name`.
    pub async fn put_to(
        &self,
        name: &str,
        key: &str,
        data: impl AsyncRead + Unpin + Send,
    ) -> Result<(), StorageError> {
        let provider = self.get_provider(name)?;
        self.put_with(provider, key, data).await
    }

    /// Writes bytes already in memory with one request.
    async fn put_bytes(
        &self,
        provider: &Provider,
        key: &str,
        bytes: PutPayload,
    ) -> Result<(), StorageError> {
        let path = ObjectPath::from(key);
        let outcome =
            match tokio::time::timeout(self.put_timeout, provider.store.put(&path, bytes)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {:?}", self.put_timeout)),
            };
        self.settle(provider, key, outcome)
    }

    /// Streams `data` as object `key`: one request up to [`PART_BYTES`], multipart beyond.
    async fn put_with(
        &self,
        provider: &Provider,
        key: &str,
        mut data: impl AsyncRead + Unpin + Send,
    ) -> Result<(), StorageError> {
        let path = ObjectPath::from(key);
        let mut writer = BufWriter::with_capacity(Arc::clone(&provider.store), path, PART_BYTES);
        // `shutting_down` matters for cleanup: a writer whose shutdown began cannot be aborted.
        let mut shutting_down = false;
        let write = async {
            let mut reader = tokio::io::BufReader::with_capacity(COPY_BYTES, &mut data);
            tokio::io::copy_buf(&mut reader, &mut writer).await?;
            shutting_down = true;
            writer.shutdown().await
        };
        let outcome = match tokio::time::timeout(self.put_timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.put_timeout)),
        };
        if outcome.is_err() && !shutting_down {
            // Best effort: a multipart upload left behind costs space, not correctness.
            let _ = writer.abort().await;
        }
        self.settle(provider, key, outcome)
    }

    /// Records the outcome of a write in the provider's health.
    fn settle(
        &self,
        provider: &Provider,
        key: &str,
        outcome: Result<(), String>,
    ) -> Result<(), StorageError> {
        match outcome {
            Ok(()) => {
                health(provider).succeeded();
                Ok(())
            }
            Err(message) => {
                tracing::warn!(provider = %provider.name, key, error = %message, "provider write failed");
                health(provider).failed(Instant::now(), self.policy, message.clone());
                Err(StorageError::Provider {
                    provider: provider.name.clone(),
                    message,
                })
            }
        }
    }

    /// Reads object `key` (or `range` of it), trying `holders` in configuration order, then the
    /// other providers (a copy may exist that the database does not know of). Returns the bytes and
    /// the names of holders that turned out not to have it.
    pub async fn read(
        &self,
        key: &str,
        range: Option<Range<u64>>,
        holders: &[String],
    ) -> Result<(Bytes, Vec<String>), StorageError> {
        let path = ObjectPath::from(key);
        let (known, others): (Vec<&Provider>, Vec<&Provider>) =
            self.list.iter().partition(|p| holders.contains(&p.name));
        let mut gone = Vec::new();
        let mut failures = Vec::new();
        for provider in known.into_iter().chain(others) {
            let result = match &range {
                Some(range) => provider.store.get_range(&path, range.clone()).await,
                None => match provider.store.get(&path).await {
                    Ok(found) => found.bytes().await,
                    Err(e) => Err(e),
                },
            };
            match result {
                Ok(bytes) => {
                    health(provider).succeeded();
                    return Ok((bytes, gone));
                }
                Err(object_store::Error::NotFound { .. }) => {
                    if holders.contains(&provider.name) {
                        gone.push(provider.name.clone());
                    }
                }
                Err(e) => {
                    health(provider).failed(Instant::now(), self.policy, e.to_string());
                    failures.push(format!("{}: {e}", provider.name));
                }
            }
        }
        if failures.is_empty() {
            Err(StorageError::ObjectMissing(key.to_owned()))
        } else {
            Err(StorageError::NoProvider(failures.join("; ")))
        }
    }

    /// Streams object `key` from provider `name` into a reader (for replication).
    pub async fn open_from(
        &self,
        name: &str,
        key: &str,
    ) -> Result<impl AsyncRead + Unpin + Send + use<>, StorageError> {
        let provider = self.get_provider(name)?;
        match provider.store.get(&ObjectPath::from(key)).await {
            Ok(found) => {
                let stream = found.into_stream().map_err(std::io::Error::other);
                Ok(tokio_util::io::StreamReader::new(stream))
            }
            Err(object_store::Error::NotFound { .. }) => {
                Err(StorageError::ObjectMissing(key.to_owned()))
            }
            Err(e) => {
                health(provider).failed(Instant::now(), self.policy, e.to_string());
                Err(StorageError::Provider {
                    provider: name.to_owned(),
                    message: e.to_string(),
                })
            }
        }
    }

    /// Deletes object `key` from provider `name` (a missing object counts as deleted).
    pub async fn delete(&self, name: &str, key: &str) -> Result<(), StorageError> {
        let provider = self.get_provider(name)?;
        match provider.store.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StorageError::Provider {
                provider: name.to_owned(),
                message: e.to_string(),
            }),
        }
    }

    fn find(&self, name: &str) -> Option<&Provider> {
        self.list.iter().find(|p| p.name == name)
    }

    fn get_provider(&self, name: &str) -> Result<&Provider, StorageError> {
        self.find(name)
            .ok_or_else(|| StorageError::Config(format!("unknown provider {name:?}")))
    }
}

fn health(provider: &Provider) -> std::sync::MutexGuard<'_, Health> {
    // A panic while holding this lock cannot leave the record inconsistent: use it anyway.
    provider
        .health
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn open_store(
    p: &ProviderSettings,
    put_timeout: Duration,
) -> Result<Arc<dyn ObjectStore>, StorageError> {
    let invalid =
        |e: object_store::Error| StorageError::Config(format!("provider {:?}: {e}", p.name));
    match p.kind {
        ProviderKind::Local => {
            let dir = p
                .path
                .as_ref()
                .ok_or_else(|| StorageError::Config(format!("provider {:?}: no path", p.name)))?;
            std::fs::create_dir_all(dir).map_err(|e| {
                StorageError::Config(format!(
                    "provider {:?}: cannot create {}: {e}",
                    p.name,
                    dir.display()
                ))
            })?;
            let store = LocalFileSystem::new_with_prefix(dir)
                .map_err(invalid)?
                .with_fsync(true)
                .with_automatic_cleanup(true);
            Ok(Arc::new(store))
        }
        ProviderKind::S3 | ProviderKind::R2 => {
            // Failover is ours: the client retries once, briefly, then reports.
            let retry = RetryConfig {
                max_retries: 1,
                retry_timeout: Duration::from_secs(2),
                ..RetryConfig::default()
            };
            let options = ClientOptions::new()
                .with_allow_http(p.allow_http)
                .with_connect_timeout(Duration::from_secs(3))
                .with_timeout(put_timeout);
            let mut builder = AmazonS3Builder::new()
                .with_bucket_name(p.bucket.clone().unwrap_or_default())
                .with_retry(retry)
                .with_client_options(options)
                .with_allow_http(p.allow_http);
            builder = match p.kind {
                ProviderKind::R2 => builder.with_region("auto"),
                _ => builder.with_region(p.region.clone().unwrap_or_else(|| "us-east-1".into())),
            };
            if let Some(endpoint) = &p.endpoint {
                builder = builder.with_endpoint(endpoint.clone());
            }
            if let (Some(id), Some(secret)) = (&p.access_key_id, &p.secret_access_key) {
                builder = builder
                    .with_access_key_id(id.clone())
                    .with_secret_access_key(secret.expose().to_owned());
            }
            Ok(Arc::new(builder.build().map_err(invalid)?))
        }
    }
}

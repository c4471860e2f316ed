// Over 600 lines on purpose: one type whose write, read-race, hedging and cool-down paths share private per-provider state.
//! The configured object stores, in order, with their health and latency: writes go to the
//! first healthy one, reads try the holders in order, a provider slower than its recent p99 is
//! hedged to the next one, and failures (timeouts included) start a cool-down.

use std::{
    ops::Range,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::{TryStreamExt, future::BoxFuture};
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, aws::AmazonS3Builder,
    buffered::BufWriter, local::LocalFileSystem, path::Path as ObjectPath,
};
use tokio::{
    io::{AsyncRead, AsyncWriteExt},
    sync::mpsc,
};
use wakili_settings::{ProviderKind, ProviderSettings};

use crate::{
    ConfigError, ProviderError, StorageError,
    health::{Health, HealthPolicy},
    latency::{LatencyTracker, OpId},
};

/// Objects up to this size are written with one PUT; larger ones stream as multipart parts of
/// this size (S3's smallest part is 5 MiB), so no upload is held in memory whole.
const PART_BYTES: usize = 5 * 1024 * 1024;

/// Reads from a spool file are this large (tokio's default copy buffer is 8 KiB, and every read
/// of a `tokio::fs::File` is a trip to the blocking pool).
const COPY_BYTES: usize = 1024 * 1024;

/// What a provider is given to store.
#[derive(Debug, Clone)]
pub enum Payload {
    /// Sealed bytes held in memory, written with one request.
    Memory(PutPayload),
    /// A spool file, streamed (each attempt opens it).
    File(PathBuf),
}

/// How long one provider operation may take before it counts as a failure.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Storing one object.
    pub put: Duration,
    /// Reading (or starting to read), checking or deleting one object.
    pub read: Duration,
}

/// The kind of operation, for latency tracking and timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Put,
    Read,
}

/// One object store.
struct Provider {
    name: String,
    kind: ProviderKind,
    store: Arc<dyn ObjectStore>,
    state: Mutex<State>,
}

/// A provider's health and recent latencies.
#[derive(Default)]
struct State {
    health: Health,
    puts: LatencyTracker,
    reads: LatencyTracker,
}

impl State {
    fn tracker(&mut self, kind: Kind) -> &mut LatencyTracker {
        match kind {
            Kind::Put => &mut self.puts,
            Kind::Read => &mut self.reads,
        }
    }
}

impl Provider {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the record inconsistent: use it anyway.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records how an operation ended: answers are latency samples and clear the failure
    /// count; errors and timeouts count towards a cool-down.
    fn settle<T>(
        &self,
        kind: Kind,
        op: OpId,
        outcome: &Attempt<T>,
        policy: HealthPolicy,
        key: &str,
    ) {
        let now = Instant::now();
        let mut state = self.state();
        match outcome {
            Attempt::Done(_) | Attempt::Missing => {
                state.tracker(kind).end(op, now, true);
                state.health.succeeded();
            }
            Attempt::Failed(message) => {
                state.tracker(kind).end(op, now, false);
                state.health.failed(now, policy, message.clone());
                drop(state);
                tracing::warn!(provider = %self.name, key, error = %message, "provider operation failed");
            }
            Attempt::Local(_) => state.tracker(kind).end(op, now, false),
        }
    }

    /// How eagerly to use this provider now: 0 ready, 1 stuck on an earlier operation, 2
    /// cooling down.
    fn tier(&self, kind: Kind, timeout: Duration, now: Instant) -> u8 {
        let mut state = self.state();
        if !state.health.available(now) {
            2
        } else if state.tracker(kind).stalled(now, timeout) {
            1
        } else {
            0
        }
    }
}

/// How one attempt on one provider ended.
enum Attempt<T> {
    /// It answered with the result.
    Done(T),
    /// It answered that the object does not exist.
    Missing,
    /// It failed or did not answer in time (counts against its health).
    Failed(String),
    /// Something on our side failed (the spool file); says nothing about the provider.
    Local(String),
}

/// What a race over several providers produced.
struct Race<T> {
    /// Providers that delivered, in the order they did.
    wins: Vec<(String, T)>,
    /// Providers that answered "no such object".
    missing: Vec<String>,
    /// `name: error` of those that failed.
    failures: Vec<String>,
}

/// How a provider is doing, for `GET /api/v1/storage/usage`.
#[derive(Debug, Clone)]
pub struct ProviderStatus {
    /// Its name.
    pub name: String,
    /// `s3`, `r2` or `local`.
    pub kind: ProviderKind,
    /// Whether it is answering: not cooling down, no failure since its last success, and no
    /// operation overdue (past its recent p99).
    pub healthy: bool,
    /// Failures (errors and timeouts) since its last success.
    pub consecutive_failures: u32,
    /// Time left before it is tried again, when cooling down.
    pub cooldown_left: Option<Duration>,
    /// Its last error, until a success.
    pub last_error: Option<String>,
    /// Recent p99 latency of its writes, once enough are known.
    pub put_p99: Option<Duration>,
}

/// A read that succeeded.
#[derive(Debug)]
pub struct Read {
    /// The bytes.
    pub bytes: Bytes,
    /// The provider that served them.
    pub provider: String,
    /// Holders that turned out not to have the object.
    pub gone: Vec<String>,
}

/// The providers in order of preference.
pub struct Providers {
    list: Vec<Arc<Provider>>,
    policy: HealthPolicy,
    timeouts: Timeouts,
    replicas: usize,
}

impl Providers {
    /// Opens every configured provider (local directories are created).
    pub fn open(
        settings: &[ProviderSettings],
        policy: HealthPolicy,
        timeouts: Timeouts,
        replicas: usize,
    ) -> Result<Self, StorageError> {
        let list = settings
            .iter()
            .map(|p| {
                Ok(Arc::new(Provider {
                    name: p.name.clone(),
                    kind: p.kind,
                    store: open_store(p, timeouts)?,
                    state: Mutex::new(State::default()),
                }))
            })
            .collect::<Result<Vec<_>, StorageError>>()?;
        if list.is_empty() {
            return Err(ConfigError::Setting("no storage provider configured".into()).into());
        }
        let replicas = replicas.clamp(1, list.len());
        Ok(Self {
            list,
            policy,
            timeouts,
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
        self.find(name)
            .is_some_and(|p| p.state().health.available(now))
    }

    /// Health of every provider at `now`.
    pub fn status(&self, now: Instant) -> Vec<ProviderStatus> {
        self.list
            .iter()
            .map(|p| {
                let state = p.state();
                let h = &state.health;
                let stuck = state.puts.stalled(now, self.timeouts.put)
                    || state.reads.stalled(now, self.timeouts.read);
                ProviderStatus {
                    name: p.name.clone(),
                    kind: p.kind,
                    healthy: h.available(now) && h.consecutive_failures() == 0 && !stuck,
                    consecutive_failures: h.consecutive_failures(),
                    cooldown_left: h.cooldown_left(now),
                    last_error: h.last_error().map(str::to_owned),
                    put_p99: state.puts.p99(),
                }
            })
            .collect()
    }

    /// Providers in the order to try them for `kind`: those in `first` before the rest, and
    /// within each group ready ones, then stuck ones, then cooling ones (configuration order
    /// otherwise). Providers in `skip` are left out.
    fn ordered(&self, kind: Kind, first: &[String], skip: &[String]) -> Vec<Arc<Provider>> {
        let now = Instant::now();
        let timeout = self.timeout(kind);
        let mut list: Vec<(bool, u8, Arc<Provider>)> = self
            .list
            .iter()
            .filter(|p| !skip.contains(&p.name))
            .map(|p| {
                (
                    !first.contains(&p.name),
                    p.tier(kind, timeout, now),
                    Arc::clone(p),
                )
            })
            .collect();
        list.sort_by_key(|(later, tier, _)| (*later, *tier));
        list.into_iter().map(|(_, _, p)| p).collect()
    }

    fn timeout(&self, kind: Kind) -> Duration {
        match kind {
            Kind::Put => self.timeouts.put,
            Kind::Read => self.timeouts.read,
        }
    }

    /// Runs `launch` on the `candidates` in order until `needed` of them delivered: `needed`
    /// start at once; a failure starts the next candidate; and whenever the newest attempt has
    /// taken longer than its provider's recent p99, the next candidate starts alongside it
    /// (hedging). Attempts run as their own tasks: one that loses the race still ends (or
    /// times out) and is counted in its provider's health, so a frozen provider is found out.
    async fn race<T: Send + 'static>(
        &self,
        kind: Kind,
        key: &str,
        candidates: &[Arc<Provider>],
        needed: usize,
        launch: impl Fn(&Provider) -> BoxFuture<'static, Attempt<T>>,
    ) -> Race<T> {
        let timeout = self.timeout(kind);
        let policy = self.policy;
        let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Attempt<T>)>();
        let start = |i: usize| -> tokio::time::Instant {
            let provider = Arc::clone(&candidates[i]);
            let work = launch(&provider);
            let hedge = provider.state().tracker(kind).hedge_after(timeout);
            let tx = tx.clone();
            let key = key.to_owned();
            tokio::spawn(async move {
                let op = provider.state().tracker(kind).begin(Instant::now());
                let outcome = match tokio::time::timeout(timeout, work).await {
                    Ok(outcome) => outcome,
                    Err(_) => Attempt::Failed(format!("no answer within {timeout:?}")),
                };
                provider.settle(kind, op, &outcome, policy, &key);
                let _ = tx.send((i, outcome));
            });
            tokio::time::Instant::now() + hedge
        };
        let mut race = Race {
            wins: Vec::new(),
            missing: Vec::new(),
            failures: Vec::new(),
        };
        let mut next = 0;
        let mut running = 0;
        let mut hedge_at = tokio::time::Instant::now();
        while next < candidates.len() && next < needed {
            hedge_at = start(next);
            next += 1;
            running += 1;
        }
        while race.wins.len() < needed && running > 0 {
            tokio::select! {
                Some((i, outcome)) = rx.recv() => {
                    running -= 1;
                    let name = candidates[i].name.clone();
                    match outcome {
                        Attempt::Done(value) => race.wins.push((name, value)),
                        Attempt::Missing => race.missing.push(name),
                        Attempt::Failed(m) | Attempt::Local(m) => {
                            race.failures.push(format!("{name}: {m}"));
                        }
                    }
                    if race.wins.len() + running < needed && next < candidates.len() {
                        hedge_at = start(next);
                        next += 1;
                        running += 1;
                    }
                }
                () = tokio::time::sleep_until(hedge_at), if next < candidates.len() => {
                    tracing::debug!(key, slow = %candidates[next - 1].name, next = %candidates[next].name, "hedging a slow provider");
                    hedge_at = start(next);
                    next += 1;
                    running += 1;
                }
            }
        }
        race
    }

    /// Writes `payload` as object `key` until `copies` providers hold it (fewer if fewer are
    /// configured), preferring them in order and skipping stuck or cooling ones; a slow
    /// provider is hedged to the next one. Returns the holders. Each object is durable when
    /// this returns (S3 acknowledges stored objects; local files are fsynced).
    pub async fn put_copies(
        &self,
        key: &str,
        payload: &Payload,
        copies: usize,
    ) -> Result<Vec<String>, StorageError> {
        let candidates = self.ordered(Kind::Put, &[], &[]);
        let needed = copies.max(1).min(candidates.len().max(1));
        let timeout = self.timeouts.put;
        let race = self
            .race(Kind::Put, key, &candidates, needed, |provider| {
                let store = Arc::clone(&provider.store);
                let path = ObjectPath::from(key);
                let payload = payload.clone();
                Box::pin(async move {
                    match payload {
                        Payload::Memory(bytes) => match store.put(&path, bytes).await {
                            Ok(_) => Attempt::Done(()),
                            Err(e) => Attempt::Failed(e.to_string()),
                        },
                        Payload::File(file) => match tokio::fs::File::open(&file).await {
                            Ok(file) => stream_put(store, path, file, timeout).await,
                            Err(e) => Attempt::Local(format!("spool file: {e}")),
                        },
                    }
                })
            })
            .await;
        if race.wins.len() >= needed {
            return Ok(race.wins.into_iter().map(|(name, ())| name).collect());
        }
        let mut message = race.failures.join("; ");
        if !race.wins.is_empty() {
            message = format!(
                "only {} of {needed} copies stored; {message}",
                race.wins.len()
            );
        }
        Err(StorageError::Provider(ProviderError::NoProvider(message)))
    }

    /// Writes `data` as object `key` to the provider `name` (replication), within the put
    /// timeout.
    pub async fn put_to(
        &self,
        name: &str,
        key: &str,
        data: impl AsyncRead + Unpin + Send,
    ) -> Result<(), StorageError> {
        let provider = self.get_provider(name)?;
        let op = provider.state().puts.begin(Instant::now());
        let outcome = stream_put(
            Arc::clone(&provider.store),
            ObjectPath::from(key),
            data,
            self.timeouts.put,
        )
        .await;
        provider.settle(Kind::Put, op, &outcome, self.policy, key);
        into_result(name, key, outcome)
    }

    /// Reads object `key` (or `range` of it), trying `holders` first, then the other providers
    /// (a copy may exist that the database does not know of), never those in `skip` (copies
    /// found corrupt). Each attempt has the read timeout, and a holder slower than its recent
    /// p99 is hedged to the next one. Returns the bytes, who served them, and the holders that
    /// turned out not to have it.
    pub async fn read(
        &self,
        key: &str,
        range: Option<Range<u64>>,
        holders: &[String],
        skip: &[String],
    ) -> Result<Read, StorageError> {
        let candidates = self.ordered(Kind::Read, holders, skip);
        let race = self
            .race(Kind::Read, key, &candidates, 1, |provider| {
                let store = Arc::clone(&provider.store);
                let path = ObjectPath::from(key);
                let range = range.clone();
                Box::pin(async move {
                    let result = match range {
                        Some(range) => store.get_range(&path, range).await,
                        None => match store.get(&path).await {
                            Ok(found) => found.bytes().await,
                            Err(e) => Err(e),
                        },
                    };
                    match result {
                        Ok(bytes) => Attempt::Done(bytes),
                        Err(object_store::Error::NotFound { .. }) => Attempt::Missing,
                        Err(e) => Attempt::Failed(e.to_string()),
                    }
                })
            })
            .await;
        let gone = race
            .missing
            .into_iter()
            .filter(|name| holders.contains(name))
            .collect();
        match race.wins.into_iter().next() {
            Some((provider, bytes)) => Ok(Read {
                bytes,
                provider,
                gone,
            }),
            None if race.failures.is_empty() => Err(StorageError::Provider(
                ProviderError::ObjectMissing(key.to_owned()),
            )),
            None => Err(StorageError::Provider(ProviderError::NoProvider(
                race.failures.join("; "),
            ))),
        }
    }

    /// Streams object `key` from provider `name` into a reader (for replication); the read
    /// timeout applies to the provider's first answer.
    pub async fn open_from(
        &self,
        name: &str,
        key: &str,
    ) -> Result<impl AsyncRead + Unpin + Send + use<>, StorageError> {
        let provider = self.get_provider(name)?;
        let op = provider.state().reads.begin(Instant::now());
        let timeout = self.timeouts.read;
        let found =
            match tokio::time::timeout(timeout, provider.store.get(&ObjectPath::from(key))).await {
                Ok(Ok(found)) => Attempt::Done(found),
                Ok(Err(object_store::Error::NotFound { .. })) => Attempt::Missing,
                Ok(Err(e)) => Attempt::Failed(e.to_string()),
                Err(_) => Attempt::Failed(format!("no answer within {timeout:?}")),
            };
        provider.settle(Kind::Read, op, &found, self.policy, key);
        let found = into_result(name, key, found)?;
        let stream = found.into_stream().map_err(std::io::Error::other);
        Ok(tokio_util::io::StreamReader::new(stream))
    }

    /// Deletes object `key` from provider `name` (a missing object counts as deleted), within
    /// the read timeout. A provider cooling down is not asked.
    pub async fn delete(&self, name: &str, key: &str) -> Result<(), StorageError> {
        let provider = self.get_provider(name)?;
        if !provider.state().health.available(Instant::now()) {
            return Err(ProviderError::Provider {
                provider: name.to_owned(),
                message: "cooling down after failures".into(),
            }
            .into());
        }
        let op = provider.state().reads.begin(Instant::now());
        let timeout = self.timeouts.read;
        let outcome = match tokio::time::timeout(
            timeout,
            provider.store.delete(&ObjectPath::from(key)),
        )
        .await
        {
            Ok(Ok(())) => Attempt::Done(()),
            Ok(Err(object_store::Error::NotFound { .. })) => Attempt::Missing,
            Ok(Err(e)) => Attempt::Failed(e.to_string()),
            Err(_) => Attempt::Failed(format!("no answer within {timeout:?}")),
        };
        provider.settle(Kind::Read, op, &outcome, self.policy, key);
        match outcome {
            Attempt::Missing => Ok(()),
            other => into_result(name, key, other),
        }
    }

    fn find(&self, name: &str) -> Option<&Arc<Provider>> {
        self.list.iter().find(|p| p.name == name)
    }

    fn get_provider(&self, name: &str) -> Result<&Arc<Provider>, StorageError> {
        self.find(name).ok_or_else(|| {
            StorageError::Config(ConfigError::Setting(format!("unknown provider {name:?}")))
        })
    }
}

/// One provider's outcome as a result.
fn into_result<T>(name: &str, key: &str, outcome: Attempt<T>) -> Result<T, StorageError> {
    match outcome {
        Attempt::Done(value) => Ok(value),
        Attempt::Missing => Err(StorageError::Provider(ProviderError::ObjectMissing(
            key.to_owned(),
        ))),
        Attempt::Failed(message) | Attempt::Local(message) => {
            Err(StorageError::Provider(ProviderError::Provider {
                provider: name.to_owned(),
                message,
            }))
        }
    }
}

/// Streams `data` as object `path`: one request up to [`PART_BYTES`], multipart beyond; an
/// unfinished multipart upload is aborted when it fails or runs out of `timeout`.
async fn stream_put(
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    mut data: impl AsyncRead + Unpin + Send,
    timeout: Duration,
) -> Attempt<()> {
    let mut writer = BufWriter::with_capacity(store, path, PART_BYTES);
    // `shutting_down` matters for cleanup: a writer whose shutdown began cannot be aborted.
    let mut shutting_down = false;
    let write = async {
        let mut reader = tokio::io::BufReader::with_capacity(COPY_BYTES, &mut data);
        tokio::io::copy_buf(&mut reader, &mut writer).await?;
        shutting_down = true;
        writer.shutdown().await
    };
    // A little less than the attempt's own limit, so the abort below still runs.
    let outcome = match tokio::time::timeout(timeout.mul_f64(0.95), write).await {
        Ok(Ok(())) => Attempt::Done(()),
        Ok(Err(e)) => Attempt::Failed(e.to_string()),
        Err(_) => Attempt::Failed(format!("no answer within {timeout:?}")),
    };
    if !matches!(outcome, Attempt::Done(())) && !shutting_down {
        // Best effort: a multipart upload left behind costs space, not correctness.
        let _ = tokio::time::timeout(timeout / 20, writer.abort()).await;
    }
    outcome
}

fn open_store(
    p: &ProviderSettings,
    timeouts: Timeouts,
) -> Result<Arc<dyn ObjectStore>, StorageError> {
    let invalid = |e: object_store::Error| {
        StorageError::Config(ConfigError::Setting(format!("provider {:?}: {e}", p.name)))
    };
    match p.kind {
        ProviderKind::Local => {
            let dir = p.path.as_ref().ok_or_else(|| {
                StorageError::Config(ConfigError::Setting(format!(
                    "provider {:?}: no path",
                    p.name
                )))
            })?;
            std::fs::create_dir_all(dir).map_err(|e| {
                StorageError::Config(ConfigError::Setting(format!(
                    "provider {:?}: cannot create {}: {e}",
                    p.name,
                    dir.display()
                )))
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
                // A backstop: our own per-operation timeouts (shorter) decide.
                .with_timeout(timeouts.put.max(timeouts.read) + Duration::from_secs(5));
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

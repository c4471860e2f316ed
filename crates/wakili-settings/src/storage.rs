//! The `[storage]` section: recording providers, replication, keys and download URLs.

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use crate::Secret;

/// What kind of object store a provider is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// Amazon S3 or any S3-compatible server.
    S3,
    /// Cloudflare R2 (S3 API at `https://<account>.r2.cloudflarestorage.com`, region `auto`).
    R2,
    /// A directory on this machine.
    Local,
}

/// One place recordings are kept (`[[storage.providers]]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// Unique name, recorded with every copy (do not rename a provider that holds data).
    pub name: String,
    /// `s3`, `r2` or `local`.
    pub kind: ProviderKind,
    /// Bucket (s3, r2).
    #[serde(default)]
    pub bucket: Option<String>,
    /// Region (s3; r2 uses `auto`).
    #[serde(default)]
    pub region: Option<String>,
    /// Endpoint URL (r2, and S3-compatible servers).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Access key id (s3, r2).
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Secret access key (s3, r2).
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    /// Allow a plain `http://` endpoint (test servers only).
    #[serde(default)]
    pub allow_http: bool,
    /// Directory (local).
    #[serde(default)]
    pub path: Option<PathBuf>,
}

impl ProviderSettings {
    /// A `local` provider named `name` keeping its objects under `path`.
    pub fn local(name: &str, path: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            kind: ProviderKind::Local,
            bucket: None,
            region: None,
            endpoint: None,
            access_key_id: None,
            secret_access_key: None,
            allow_http: false,
            path: Some(path.into()),
        }
    }
}

/// Recording storage (`[storage]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Providers in order of preference. Empty: one local provider at `<data_dir>/recordings`.
    pub providers: Vec<ProviderSettings>,
    /// Copies of every chunk the replicator keeps. Unset: 2 when two or more providers are
    /// configured, else 1.
    pub replicas: Option<usize>,
    /// Largest chunk a client may upload.
    pub max_chunk_bytes: u64,
    /// Memory, across all uploads in flight, for sealed chunks waiting for a provider; a chunk
    /// that does not fit (or has no `Content-Length`) waits in a spool file instead. 0: always
    /// spool.
    pub upload_memory_bytes: u64,
    /// Longest a provider may take to store one chunk before it counts as failed (a slow
    /// provider is hedged to the next one much earlier, at its recent p99). Must be well below
    /// `request_timeout` (at most a third of it), so failover happens within the request.
    #[serde(with = "humantime_serde")]
    pub put_timeout: Duration,
    /// Longest a provider may take to answer a read, an existence check or a delete before it
    /// counts as failed and the next copy is read. At most a third of `request_timeout`.
    #[serde(with = "humantime_serde")]
    pub read_timeout: Duration,
    /// Providers that must hold a chunk before its upload is acknowledged (1 up to `replicas`).
    /// More copies cost upload latency (the slowest of them); with 1 an acknowledged chunk has
    /// one copy until the replicator's next pass.
    pub ack_copies: usize,
    /// Consecutive failures after which a provider is skipped…
    pub failure_threshold: u32,
    /// …for this long, then tried again.
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
    /// Pause between replication passes when there is nothing to do.
    #[serde(with = "humantime_serde")]
    pub replication_interval: Duration,
    /// An upload silent for this long is finalized with what arrived, flagged incomplete.
    #[serde(with = "humantime_serde")]
    pub abandon_after: Duration,
    /// Lifetime of a signed download URL.
    #[serde(with = "humantime_serde")]
    pub download_url_ttl: Duration,
    /// Whether a download URL only works for the user it was issued to (while they are still
    /// entitled).
    pub bind_download_to_user: bool,
    /// Master key (32 bytes, hex or base64) wrapping every recording's data key. Unset:
    /// generated into `<data_dir>/secrets/recording-master.key`.
    pub master_key_file: Option<PathBuf>,
    /// Earlier master keys, still able to unwrap the data keys they wrapped (key rotation).
    pub retired_master_key_files: Vec<PathBuf>,
    /// Ed25519 key (PKCS#8 PEM) signing manifests. Unset: generated into
    /// `<data_dir>/secrets/manifest-signing.pem`.
    pub signing_key_file: Option<PathBuf>,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            providers: Vec::new(),
            replicas: None,
            max_chunk_bytes: 16 * 1024 * 1024,
            upload_memory_bytes: 64 * 1024 * 1024,
            put_timeout: Duration::from_secs(8),
            read_timeout: Duration::from_secs(5),
            ack_copies: 1,
            failure_threshold: 3,
            cooldown: Duration::from_secs(30),
            replication_interval: Duration::from_secs(2),
            abandon_after: Duration::from_secs(600),
            download_url_ttl: Duration::from_secs(300),
            bind_download_to_user: true,
            master_key_file: None,
            retired_master_key_files: Vec::new(),
            signing_key_file: None,
        }
    }
}

/// An endpoint URL without any `user:password@` part.
fn strip_userinfo(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(host_end);
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if scheme.is_empty() {
        format!("{authority}{path}")
    } else {
        format!("{scheme}://{authority}{path}")
    }
}

/// Largest chunk the encryption layout allows (4,096 segments of 64 KiB).
pub const MAX_CHUNK_BYTES_LIMIT: u64 = 256 * 1024 * 1024;

/// Largest `upload_memory_bytes` accepted (16 GiB).
pub const UPLOAD_MEMORY_LIMIT: u64 = 16 * 1024 * 1024 * 1024;

impl StorageSettings {
    /// The replica count in effect for `providers` providers.
    pub fn replicas_for(&self, providers: usize) -> usize {
        self.replicas
            .unwrap_or(if providers >= 2 { 2 } else { 1 })
            .clamp(1, providers.max(1))
    }

    /// Problems with the provider timeouts against the HTTP `request_timeout`: a provider must
    /// time out well before the request does, or a frozen provider reaches clients as 408s.
    pub(crate) fn timeout_problems(&self, request_timeout: Duration) -> Vec<String> {
        let limit = request_timeout / 3;
        let mut bad = Vec::new();
        for (name, value) in [
            ("put_timeout", self.put_timeout),
            ("read_timeout", self.read_timeout),
        ] {
            if value > limit {
                bad.push(format!(
                    "storage.{name}: must be well below request_timeout ({request_timeout:?}): at most a third of it ({limit:?}), so the next provider is tried within the request"
                ));
            }
        }
        bad
    }

    /// Where recordings are kept, one line per provider for the start banner: name, kind and
    /// bucket (with endpoint) or directory. Never credentials.
    pub fn describe_providers(providers: &[ProviderSettings]) -> Vec<String> {
        providers
            .iter()
            .map(|p| match p.kind {
                ProviderKind::Local => format!(
                    "{} (local) {}",
                    p.name,
                    p.path
                        .as_ref()
                        .map_or_else(String::new, |d| d.display().to_string())
                ),
                kind => {
                    let kind = if kind == ProviderKind::R2 { "r2" } else { "s3" };
                    let mut line = format!(
                        "{} ({kind}) bucket {}",
                        p.name,
                        p.bucket.as_deref().unwrap_or("")
                    );
                    if let Some(endpoint) = &p.endpoint {
                        line.push_str(&format!(" at {}", strip_userinfo(endpoint)));
                    } else if let Some(region) = &p.region {
                        line.push_str(&format!(" in {region}"));
                    }
                    line
                }
            })
            .collect()
    }

    /// Problems, each naming the setting.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut bad = Vec::new();
        let mut names = std::collections::HashSet::new();
        for (i, p) in self.providers.iter().enumerate() {
            let at = format!("storage.providers[{i}]");
            let valid_name = !p.name.is_empty()
                && p.name.len() <= 32
                && p.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid_name {
                bad.push(format!(
                    "{at}.name: 1 to 32 letters, digits, '-' or '_' (got {:?})",
                    p.name
                ));
            }
            if !names.insert(p.name.as_str()) {
                bad.push(format!("{at}.name: {:?} is used twice", p.name));
            }
            match p.kind {
                ProviderKind::Local => {
                    if p.path.is_none() {
                        bad.push(format!("{at}.path: required for kind = \"local\""));
                    }
                }
                ProviderKind::S3 | ProviderKind::R2 => {
                    if p.bucket.as_deref().is_none_or(str::is_empty) {
                        bad.push(format!("{at}.bucket: required for kind = \"s3\" / \"r2\""));
                    }
                    if p.kind == ProviderKind::R2 && p.endpoint.is_none() {
                        bad.push(format!(
                            "{at}.endpoint: required for kind = \"r2\" (https://<account>.r2.cloudflarestorage.com)"
                        ));
                    }
                    if p.access_key_id.is_some() != p.secret_access_key.is_some() {
                        bad.push(format!(
                            "{at}.access_key_id / secret_access_key: give both or neither"
                        ));
                    }
                    if let Some(endpoint) = &p.endpoint
                        && endpoint.starts_with("http://")
                        && !p.allow_http
                    {
                        bad.push(format!(
                            "{at}.endpoint: plain http:// needs allow_http = true"
                        ));
                    }
                }
            }
        }
        let count = self.providers.len().max(1);
        if let Some(replicas) = self.replicas
            && (replicas == 0 || replicas > count)
        {
            bad.push(format!(
                "storage.replicas: must be between 1 and the number of providers ({count})"
            ));
        }
        if !(64 * 1024..=MAX_CHUNK_BYTES_LIMIT).contains(&self.max_chunk_bytes) {
            bad.push(format!(
                "storage.max_chunk_bytes: must be between 65536 and {MAX_CHUNK_BYTES_LIMIT}"
            ));
        }
        if self.upload_memory_bytes > UPLOAD_MEMORY_LIMIT {
            bad.push(format!(
                "storage.upload_memory_bytes: must be at most {UPLOAD_MEMORY_LIMIT}"
            ));
        }
        if self.put_timeout < Duration::from_secs(1) {
            bad.push("storage.put_timeout: at least 1s".into());
        }
        if self.read_timeout < Duration::from_millis(500) {
            bad.push("storage.read_timeout: at least 500ms".into());
        }
        let replicas = self.replicas_for(count);
        if self.ack_copies == 0 || self.ack_copies > replicas {
            bad.push(format!(
                "storage.ack_copies: must be between 1 and storage.replicas ({replicas})"
            ));
        }
        if self.failure_threshold == 0 {
            bad.push("storage.failure_threshold: at least 1".into());
        }
        if self.abandon_after < Duration::from_secs(10) {
            bad.push("storage.abandon_after: at least 10s".into());
        }
        if self.download_url_ttl < Duration::from_secs(10)
            || self.download_url_ttl > Duration::from_secs(3600)
        {
            bad.push(
                "storage.download_url_ttl: between 10s and 1h (URLs must expire in minutes)".into(),
            );
        }
        bad
    }
}

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use wakili_auth::{Algorithm, MIN_SECRET_BYTES, VerifierConfig, VerifyKey};
use wakili_core::webrtc::MediaPolicy;

use crate::{
    IceSettings, MobileSettings, ProviderSettings, Secret, SettingsError, SignalingSettings,
    StorageSettings, TurnSettings, WebSettings, secrets,
};

/// Everything `wakili serve` can be told.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// Where the SQLite file, recordings and generated secrets live.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://…`; empty: `sqlite://<data_dir>/wakili.db`.
    #[serde(serialize_with = "mask_url_password")]
    pub database_url: Option<String>,
    /// Base URL clients reach this server at (links in the summary); empty: from `listen`.
    pub public_url: Option<String>,
    /// `text` for people, `json` for log pipelines.
    pub log_format: LogFormat,
    /// Log filter (`info`, `wakili_server=debug,info`, …); `RUST_LOG` wins when set.
    pub log_level: String,
    /// Largest JSON request body, in bytes.
    pub max_body_bytes: usize,
    /// Longest a request may take before 408.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long shutdown waits for open requests.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// How long a stopping server first only drains: `/readyz` answers 503 `draining` so a load
    /// balancer stops sending new clients, while everything else still works. `0s`: no drain.
    #[serde(with = "humantime_serde")]
    pub shutdown_drain: Duration,
    /// Threads of the async runtime; `0`: one per core the process may use. Lower it when
    /// several nodes (or other busy services) share a host's cores: each node's idle threads
    /// otherwise wake each other up for every message and compete for the same cores.
    pub worker_threads: u32,
    /// HTTP connections: header and idle timeouts, caps in total and per client address.
    pub http: crate::HttpSettings,
    /// Database pool.
    pub database: DatabaseSettings,
    /// Bearer-token verification.
    pub auth: AuthSettings,
    /// Quality profiles, audio, simulcast, screen share, codecs.
    pub media: MediaPolicy,
    /// ICE servers handed to participants.
    pub ice: IceSettings,
    /// The embedded STUN/TURN server.
    pub turn: TurnSettings,
    /// The embedded SFU.
    pub sfu: crate::SfuSettings,
    /// The mobile start-up configuration.
    pub mobile: MobileSettings,
    /// Socket.IO signaling.
    pub signaling: SignalingSettings,
    /// Recording storage.
    pub storage: StorageSettings,
    /// The reference web client.
    pub web: WebSettings,
    /// `/metrics` and the dashboard's load tests.
    pub metrics: crate::MetricsSettings,
    /// Mobile push (FCM).
    pub push: crate::PushSettings,
    /// Signed webhooks to the platform's backend.
    pub webhooks: crate::WebhookSettings,
}

/// Database pool settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Most open connections.
    pub max_connections: u32,
    /// How long to wait for a connection.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
}

/// How the platform's JWTs are verified.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// `HS256`, `RS256` or `EdDSA`; tokens signed otherwise are refused.
    pub algorithm: Algorithm,
    /// HS256 shared secret (≥ 32 bytes). Empty: generated into `<data_dir>/secrets/`.
    pub secret: Option<Secret>,
    /// RS256/EdDSA: the platform's PEM public key, as a file…
    pub public_key_file: Option<PathBuf>,
    /// …or inline.
    pub public_key_pem: Option<String>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
    /// Tolerated clock skew for `exp`/`nbf`.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            public_url: None,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            shutdown_drain: Duration::ZERO,
            worker_threads: 0,
            http: crate::HttpSettings::default(),
            database: DatabaseSettings::default(),
            auth: AuthSettings::default(),
            media: MediaPolicy::default(),
            ice: IceSettings::default(),
            turn: TurnSettings::default(),
            sfu: crate::SfuSettings::default(),
            mobile: MobileSettings::default(),
            signaling: SignalingSettings::default(),
            storage: StorageSettings::default(),
            web: WebSettings::default(),
            metrics: crate::MetricsSettings::default(),
            push: crate::PushSettings::default(),
            webhooks: crate::WebhookSettings::default(),
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::Hs256,
            secret: None,
            public_key_file: None,
            public_key_pem: None,
            issuer: None,
            audience: None,
            leeway: Duration::from_secs(30),
        }
    }
}

fn mask_url_password<S: serde::Serializer>(
    url: &Option<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => serializer.serialize_some(&masked_url(url)),
        None => serializer.serialize_none(),
    }
}

/// `scheme://user:password@host/…` with the password replaced by the mask.
pub(crate) fn masked_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:{}@{host}{tail}", crate::secret::MASK),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl Settings {
    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        match self.database_url.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => url.to_owned(),
            _ => format!("sqlite://{}", self.data_dir.join("wakili.db").display()),
        }
    }

    /// The database URL in effect, password masked, for output.
    pub fn database_url_masked(&self) -> String {
        masked_url(&self.database_url())
    }

    /// Where recordings are kept on local disk.
    pub fn recordings_dir(&self) -> PathBuf {
        self.data_dir.join("recordings")
    }

    /// Where generated secrets are kept.
    pub fn secrets_dir(&self) -> PathBuf {
        self.data_dir.join("secrets")
    }

    /// The URL people and apps reach this server at.
    pub fn public_url(&self) -> String {
        match self.public_url.as_deref() {
            Some(url) if !url.trim().is_empty() => url.trim().trim_end_matches('/').to_owned(),
            _ => format!("http://{}", self.listen),
        }
    }

    /// The effective settings as TOML, secrets masked (`wakili config`).
    pub fn to_masked_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render settings: {e}\n"))
    }

    /// Checks values that parse but cannot work, naming each setting and its fix.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let mut problems = Vec::new();
        let url = self.database_url();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            problems.push(
                "database_url: unsupported scheme; use sqlite://PATH or postgres://USER@HOST/DB"
                    .into(),
            );
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.max_body_bytes) {
            problems.push("max_body_bytes: must be between 1024 and 67108864".into());
        }
        if self.request_timeout.is_zero() {
            problems.push("request_timeout: must be positive, e.g. \"30s\"".into());
        }
        if self.worker_threads > 1024 {
            problems.push("worker_threads: must be between 0 (one per core) and 1024".into());
        }
        problems.extend(self.http.problems());
        if !(1..=1000).contains(&self.database.max_connections) {
            problems.push("database.max_connections: must be between 1 and 1000".into());
        }
        if let Some(url) = &self.public_url
            && !url.is_empty()
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            problems.push("public_url: must start with http:// or https://".into());
        }
        let auth = &self.auth;
        match auth.algorithm {
            Algorithm::Hs256 => {
                if let Some(secret) = &auth.secret
                    && secret.expose().len() < MIN_SECRET_BYTES
                {
                    problems.push(format!(
                        "auth.secret: must be at least {MIN_SECRET_BYTES} bytes; generate one with `openssl rand -base64 48`, or leave it empty to use a generated one"
                    ));
                }
                if auth.public_key_file.is_some() || auth.public_key_pem.is_some() {
                    problems.push(
                        "auth.public_key_file / auth.public_key_pem: only used with auth.algorithm = \"RS256\" or \"EdDSA\"; remove it or change the algorithm".into(),
                    );
                }
            }
            alg @ (Algorithm::Rs256 | Algorithm::EdDsa) => {
                match (&auth.public_key_file, &auth.public_key_pem) {
                    (None, None) => problems.push(format!(
                        "auth.public_key_file: required when auth.algorithm = \"{alg}\"; set it to the platform's PEM public key (or give auth.public_key_pem)"
                    )),
                    (Some(_), Some(_)) => problems.push(
                        "auth.public_key_file and auth.public_key_pem: give only one".into(),
                    ),
                    _ => {}
                }
                if auth.secret.is_some() {
                    problems.push(format!(
                        "auth.secret: not used with auth.algorithm = \"{alg}\"; remove it"
                    ));
                }
            }
        }
        problems.extend(self.media.problems());
        problems.extend(self.sfu.problems());
        problems.extend(crate::media::problems(&self.ice, &self.turn, &self.mobile));
        problems.extend(self.signaling.problems());
        problems.extend(self.storage.problems());
        problems.extend(self.storage.timeout_problems(self.request_timeout));
        problems.extend(self.web.problems());
        if self.web.dev_login && self.auth.algorithm != Algorithm::Hs256 {
            problems.push(
                "web.dev_login: needs auth.algorithm = \"HS256\" (the server mints the tokens)"
                    .into(),
            );
        }
        problems.extend(self.push.problems());
        problems.extend(self.webhooks.problems());
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SettingsError::Invalid(problems))
        }
    }

    /// The HS256 secret in effect: configured, or generated once into the data dir.
    pub fn hs256_secret(&self) -> Result<Vec<u8>, SettingsError> {
        match &self.auth.secret {
            Some(secret) => Ok(secret.expose().as_bytes().to_vec()),
            None => secrets::load_or_create(&self.secrets_dir(), secrets::JWT_SECRET),
        }
    }

    /// The TURN REST shared secret in effect: configured, or generated once into the data dir.
    pub fn turn_secret(&self) -> Result<Vec<u8>, SettingsError> {
        match &self.turn.secret {
            Some(secret) => Ok(secret.expose().as_bytes().to_vec()),
            None => secrets::load_or_create(&self.secrets_dir(), secrets::TURN_SECRET),
        }
    }

    /// Recording providers in order: as configured, or one local directory in the data dir.
    pub fn recording_providers(&self) -> Vec<ProviderSettings> {
        if !self.storage.providers.is_empty() {
            return self.storage.providers.clone();
        }
        vec![ProviderSettings::local(
            "local",
            self.data_dir.join("recordings"),
        )]
    }

    /// The text of the recording master key (hex or base64 of 32 bytes): the configured file, or
    /// one generated once into the data dir.
    pub fn master_key_text(&self) -> Result<Vec<u8>, SettingsError> {
        match &self.storage.master_key_file {
            Some(path) => read(path),
            None => secrets::load_or_create(&self.secrets_dir(), secrets::MASTER_KEY),
        }
    }

    /// The texts of retired master keys (key rotation).
    pub fn retired_master_key_texts(&self) -> Result<Vec<Vec<u8>>, SettingsError> {
        self.storage
            .retired_master_key_files
            .iter()
            .map(|path| read(path))
            .collect()
    }

    /// The manifest signing key: a PKCS#8 PEM from the configured file, or a base64 Ed25519 seed
    /// generated once into the data dir.
    pub fn signing_key_text(&self) -> Result<Vec<u8>, SettingsError> {
        match &self.storage.signing_key_file {
            Some(path) => read(path),
            None => secrets::load_or_create(&self.secrets_dir(), secrets::SIGNING_KEY),
        }
    }

    /// The HMAC key of download URLs, generated once into the data dir (shared by every node
    /// through the data dir or a copied file).
    pub fn download_url_secret(&self) -> Result<Vec<u8>, SettingsError> {
        secrets::load_or_create(&self.secrets_dir(), secrets::DOWNLOAD_URL_SECRET)
    }

    /// What the token verifier needs, reading key files as configured.
    pub fn verifier_config(&self) -> Result<VerifierConfig, SettingsError> {
        let auth = &self.auth;
        let key = match auth.algorithm {
            Algorithm::Hs256 => VerifyKey::Secret(self.hs256_secret()?),
            Algorithm::Rs256 | Algorithm::EdDsa => {
                match (&auth.public_key_file, &auth.public_key_pem) {
                    (Some(path), _) => VerifyKey::PublicPem(read(path)?),
                    (None, Some(pem)) => VerifyKey::PublicPem(pem.as_bytes().to_vec()),
                    (None, None) => {
                        return Err(SettingsError::Invalid(vec![
                            "auth.public_key_file: required for RS256/EdDSA".into(),
                        ]));
                    }
                }
            }
        };
        Ok(VerifierConfig {
            algorithm: auth.algorithm,
            key,
            issuer: auth.issuer.clone().filter(|s| !s.is_empty()),
            audience: auth.audience.clone().filter(|s| !s.is_empty()),
            leeway: auth.leeway,
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, SettingsError> {
    std::fs::read(path).map_err(|source| SettingsError::Io {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProviderKind;

    #[test]
    fn defaults_are_valid_and_embedded() {
        let s = Settings::default();
        s.validate().unwrap();
        assert_eq!(s.database_url(), "sqlite://./data/wakili.db");
        assert_eq!(s.public_url(), "http://127.0.0.1:8080");
    }

    #[test]
    fn database_passwords_are_masked() {
        assert_eq!(
            masked_url("postgres://wakili:s3cret@db:5432/wakili?sslmode=require"),
            "postgres://wakili:********@db:5432/wakili?sslmode=require"
        );
        assert_eq!(masked_url("postgres://db/wakili"), "postgres://db/wakili");
        let s = Settings {
            database_url: Some("postgres://u:pw@h/d".into()),
            auth: AuthSettings {
                secret: Some(Secret::new("x".repeat(40))),
                ..Default::default()
            },
            ..Default::default()
        };
        let printed = s.to_masked_toml();
        assert!(
            !printed.contains("pw@") && !printed.contains(&"x".repeat(40)),
            "{printed}"
        );
        assert!(printed.contains("********"));
    }

    #[test]
    fn validation_names_the_setting_and_the_fix() {
        let s = Settings {
            database_url: Some("mysql://x".into()),
            auth: AuthSettings {
                algorithm: Algorithm::Rs256,
                ..Default::default()
            },
            ..Default::default()
        };
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("database_url: unsupported scheme"), "{err}");
        assert!(err.contains("auth.public_key_file: required"), "{err}");
        let short = Settings {
            auth: AuthSettings {
                secret: Some(Secret::new("short")),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(
            short
                .validate()
                .unwrap_err()
                .to_string()
                .contains("openssl rand")
        );
    }

    #[test]
    fn provider_timeouts_must_be_well_below_the_request_timeout() {
        let mut s = Settings::default();
        // The probe's configuration: a provider timeout equal to the request timeout means a
        // frozen provider answers clients with 408 before failover can happen.
        s.storage.put_timeout = s.request_timeout;
        s.storage.read_timeout = s.request_timeout / 2;
        let err = s.validate().unwrap_err().to_string();
        assert!(
            err.contains("storage.put_timeout: must be well below request_timeout"),
            "{err}"
        );
        assert!(
            err.contains("storage.read_timeout: must be well below request_timeout"),
            "{err}"
        );
        s.storage.put_timeout = s.request_timeout / 4;
        s.storage.read_timeout = s.request_timeout / 6;
        s.validate().unwrap();
        let defaults = StorageSettings::default();
        assert!(defaults.put_timeout * 3 <= s.request_timeout);
        assert!(defaults.read_timeout * 3 <= s.request_timeout);
    }

    #[test]
    fn ack_copies_is_between_one_and_the_replica_count() {
        let mut s = Settings::default();
        s.storage.ack_copies = 2;
        let err = s.validate().unwrap_err().to_string();
        assert!(
            err.contains("storage.ack_copies: must be between 1 and storage.replicas (1)"),
            "{err}"
        );
        s.storage.providers = vec![local("a"), local("b")];
        s.validate().unwrap();
        s.storage.ack_copies = 0;
        assert!(s.validate().is_err());
    }

    fn local(name: &str) -> ProviderSettings {
        ProviderSettings::local(name, format!("/srv/{name}"))
    }

    #[test]
    fn the_banner_lists_the_configured_providers_without_secrets() {
        let mut s = Settings::default();
        assert_eq!(
            StorageSettings::describe_providers(&s.recording_providers()),
            vec![format!("local (local) {}", s.recordings_dir().display())]
        );
        s.storage.providers = vec![
            ProviderSettings {
                name: "s3".into(),
                kind: ProviderKind::S3,
                bucket: Some("wakili-rec".into()),
                region: Some("eu-west-1".into()),
                endpoint: None,
                access_key_id: Some("AKIAEXAMPLE".into()),
                secret_access_key: Some(Secret::new("very-secret-key")),
                allow_http: false,
                path: None,
            },
            ProviderSettings {
                name: "r2".into(),
                kind: ProviderKind::R2,
                bucket: Some("rec".into()),
                region: None,
                endpoint: Some("https://user:pw@acct.r2.cloudflarestorage.com".into()),
                access_key_id: Some("AKIAEXAMPLE".into()),
                secret_access_key: Some(Secret::new("very-secret-key")),
                allow_http: false,
                path: None,
            },
            local("disk"),
        ];
        let lines = StorageSettings::describe_providers(&s.recording_providers());
        assert_eq!(
            lines,
            vec![
                "s3 (s3) bucket wakili-rec in eu-west-1".to_owned(),
                "r2 (r2) bucket rec at https://acct.r2.cloudflarestorage.com".to_owned(),
                "disk (local) /srv/disk".to_owned(),
            ]
        );
        let text = lines.join(" ");
        assert!(!text.contains("secret") && !text.contains("AKIA") && !text.contains("pw"));
    }
}

//! Wakili's configuration.
//!
//! Layers, later wins: built-in defaults → `wakili.toml` (or `--config FILE`) → `WAKILI_*`
//! environment variables (nested keys with `__`, e.g. `WAKILI_AUTH__ISSUER`) → command-line flags.
//! [`Settings::validate`] names every wrong setting and how to fix it. Secrets are [`Secret`]s: they
//! print as `********` in logs, `Debug` output and `wakili config`.

mod error;
mod http;
mod load;
mod media;
mod monitoring;
mod push;
mod secret;
pub mod secrets;
mod settings;
mod sfu;
mod signaling;
mod storage;
mod web;
mod webhooks;

pub use error::SettingsError;
pub use http::HttpSettings;
pub use load::{DEFAULT_CONFIG_FILE, Overrides, SfuOverride, TurnOverride, WebOverride, load};
pub use media::{ExternalTurn, ExternalTurnAuth, IceSettings, MobileSettings, TurnSettings};
pub use monitoring::MetricsSettings;
pub use push::PushSettings;
pub use secret::Secret;
pub use settings::{AuthSettings, DatabaseSettings, LogFormat, Settings};
pub use sfu::SfuSettings;
pub use signaling::{Admission, SignalingSettings};
pub use storage::{MAX_CHUNK_BYTES_LIMIT, ProviderKind, ProviderSettings, StorageSettings};
pub use web::WebSettings;
pub use webhooks::{EndpointSettings, WebhookSettings};

/// The commented default configuration file, printed by `wakili config --default`.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::Serialize;

use crate::{LogFormat, Settings, SettingsError};

/// The configuration file read from the working directory when present.
pub const DEFAULT_CONFIG_FILE: &str = "wakili.toml";

/// Command-line flags, the last layer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    /// `--listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// `--data-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--log-format`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// `--turn-listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turn: Option<TurnOverride>,
    /// `--sfu-listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sfu: Option<SfuOverride>,
    /// `--dev`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web: Option<WebOverride>,
}

/// Flags under `[web]`.
#[derive(Debug, Clone, Serialize)]
pub struct WebOverride {
    /// `--dev`: the login page that mints tokens.
    pub dev_login: bool,
}

/// Flags under `[turn]`.
#[derive(Debug, Clone, Serialize)]
pub struct TurnOverride {
    /// `--turn-listen`.
    pub listen: SocketAddr,
}

/// Flags under `[sfu]`.
#[derive(Debug, Clone, Serialize)]
pub struct SfuOverride {
    /// `--sfu-listen`.
    pub listen: SocketAddr,
}

/// Loads settings: defaults → config file → `WAKILI_*` env → `overrides`, then validates.
///
/// `config` is `--config FILE` (it must exist); without it `WAKILI_CONFIG` names the file, and
/// failing that `./wakili.toml` is read when present.
pub fn load(config: Option<&Path>, overrides: &Overrides) -> Result<Settings, SettingsError> {
    let env_config = std::env::var_os("WAKILI_CONFIG").map(PathBuf::from);
    let file = config.map(Path::to_path_buf).or(env_config);
    let mut figment = Figment::from(Serialized::defaults(Settings::default()));
    match file {
        Some(path) => {
            if !path.is_file() {
                return Err(SettingsError::Io {
                    path: path.display().to_string(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "configuration file not found (print a template with `wakili config --default`)",
                    ),
                });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
            figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_FILE));
        }
        None => {}
    }
    let settings: Settings = figment
        .merge(
            Env::prefixed("WAKILI_")
                .filter(|key| {
                    let key = key.as_str().to_ascii_lowercase();
                    key != "config" && !key.starts_with("test_")
                })
                .split("__"),
        )
        .merge(Serialized::globals(overrides))
        .extract()?;
    settings.validate()?;
    Ok(settings)
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature
mod tests {
    use figment::Jail;

    use super::*;
    use crate::DEFAULT_TOML;

    #[test]
    fn the_default_file_is_exactly_the_defaults() {
        let parsed: Settings = Figment::from(Toml::string(DEFAULT_TOML)).extract().unwrap();
        assert_eq!(
            toml::to_string(&parsed).unwrap(),
            toml::to_string(&Settings::default()).unwrap()
        );
    }

    #[test]
    fn precedence_is_defaults_file_env_flags() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "wakili.toml",
                "listen = \"127.0.0.1:9000\"\nlog_level = \"debug\"\n[auth]\nissuer = \"file\"\n",
            )?;
            let s = load(None, &Overrides::default()).unwrap();
            assert_eq!(s.listen.port(), 9000);
            assert_eq!(s.auth.issuer.as_deref(), Some("file"));

            jail.set_env("WAKILI_LISTEN", "127.0.0.1:9001");
            jail.set_env("WAKILI_AUTH__ISSUER", "env");
            jail.set_env("WAKILI_TEST_POSTGRES_URL", "ignored");
            let s = load(None, &Overrides::default()).unwrap();
            assert_eq!(s.listen.port(), 9001);
            assert_eq!(s.auth.issuer.as_deref(), Some("env"));
            assert_eq!(
                s.log_level, "debug",
                "file values the env does not set stay"
            );

            let flags = Overrides {
                listen: Some("127.0.0.1:9002".parse().unwrap()),
                data_dir: Some("/tmp/w".into()),
                log_format: Some(LogFormat::Json),
                turn: Some(TurnOverride {
                    listen: "127.0.0.1:13478".parse().unwrap(),
                }),
                sfu: Some(SfuOverride {
                    listen: "127.0.0.1:13479".parse().unwrap(),
                }),
                web: Some(WebOverride { dev_login: true }),
            };
            let s = load(None, &flags).unwrap();
            assert_eq!(s.listen.port(), 9002);
            assert_eq!(s.data_dir, PathBuf::from("/tmp/w"));
            assert_eq!(s.log_format, LogFormat::Json);
            assert_eq!(s.turn.listen.port(), 13478);
            assert_eq!(s.sfu.listen.port(), 13479);
            assert!(s.web.dev_login);
            assert_eq!(
                s.web.quality_report_seconds, 5,
                "--dev keeps the other [web] keys"
            );
            assert_eq!(
                s.turn.realm, "wakili",
                "a flag in a section keeps the section's other keys"
            );
            Ok(())
        });
    }

    #[test]
    fn mistakes_name_the_setting() {
        Jail::expect_with(|jail| {
            jail.set_env("WAKILI_LISTN", "127.0.0.1:1");
            let err = load(None, &Overrides::default()).unwrap_err().to_string();
            assert!(err.contains("listn"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("WAKILI_REQUEST_TIMEOUT", "soon");
            let err = load(None, &Overrides::default()).unwrap_err().to_string();
            assert!(err.to_lowercase().contains("request_timeout"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            let missing = jail.directory().join("nope.toml");
            let err = load(Some(&missing), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("nope.toml") && err.contains("config --default"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn numeric_looking_secrets_from_env_stay_text() {
        Jail::expect_with(|jail| {
            jail.set_env("WAKILI_AUTH__SECRET", "12345678901234567890123456789012345");
            let s = load(None, &Overrides::default()).unwrap();
            let secret = s.auth.secret.unwrap();
            assert_eq!(secret.expose(), "12345678901234567890123456789012345");
            Ok(())
        });
    }
}

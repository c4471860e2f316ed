use std::time::Duration;

use anyhow::{Context, bail};
use wakili_auth::{Algorithm, Minter, TokenRequest};
use wakili_core::{Role, UserId};
use wakili_settings::{LogFormat, Overrides, Settings, load};

use crate::cli::{Cli, Command, ConfigCmd, Loadtest, LogFormatArg, Token, VerifyRecording};

/// Longest lifetime `wakili token` signs.
const MAX_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// A parsed command line, with the settings of the commands that read them: loaded before the
/// async runtime starts, since they size it ([`Settings::worker_threads`]).
pub enum Prepared {
    /// A command that needs no settings: it must work wherever it runs, whatever the
    /// configuration there.
    Standalone(Standalone),
    /// A command that runs with the loaded settings.
    Configured(Box<Settings>, Configured),
}

/// The commands that need no settings.
pub enum Standalone {
    VerifyRecording(VerifyRecording),
    Loadtest(Loadtest),
    SignalingSchema,
    /// `config --default`: the built-in defaults, not the effective settings.
    DefaultConfig,
}

/// The commands that read the settings.
pub enum Configured {
    Serve,
    Token(Token),
    Migrate,
    /// `config`: the effective settings, secrets masked.
    Config,
}

impl Prepared {
    /// Threads the runtime should have; `None`: one per core.
    pub fn worker_threads(&self) -> Option<usize> {
        match self {
            Self::Configured(settings, _) => {
                Some(settings.worker_threads as usize).filter(|&n| n > 0)
            }
            Self::Standalone(_) => None,
        }
    }
}

/// Loads the settings `cli`'s command needs (none for the [`Standalone`] ones).
pub fn prepare(cli: Cli) -> anyhow::Result<Prepared> {
    let standalone = |command| Ok(Prepared::Standalone(command));
    let mut overrides = Overrides {
        data_dir: cli.common.data_dir.clone(),
        ..Default::default()
    };
    let command = match cli.command {
        Command::VerifyRecording(flags) => return standalone(Standalone::VerifyRecording(flags)),
        Command::Loadtest(flags) => return standalone(Standalone::Loadtest(flags)),
        Command::SignalingSchema => return standalone(Standalone::SignalingSchema),
        Command::Config(ConfigCmd { default: true }) => {
            return standalone(Standalone::DefaultConfig);
        }
        Command::Config(ConfigCmd { default: false }) => Configured::Config,
        Command::Token(token) => Configured::Token(token),
        Command::Migrate => Configured::Migrate,
        Command::Serve(serve) => {
            overrides.listen = serve.listen;
            overrides.turn = serve
                .turn_listen
                .map(|listen| wakili_settings::TurnOverride { listen });
            overrides.sfu = serve
                .sfu_listen
                .map(|listen| wakili_settings::SfuOverride { listen });
            if serve.dev {
                overrides.web = Some(wakili_settings::WebOverride { dev_login: true });
            }
            overrides.log_format = serve.log_format.map(|f| match f {
                LogFormatArg::Text => LogFormat::Text,
                LogFormatArg::Json => LogFormat::Json,
            });
            Configured::Serve
        }
    };
    let settings = load(cli.common.config.as_deref(), &overrides)?;
    Ok(Prepared::Configured(Box::new(settings), command))
}

pub async fn run(prepared: Prepared) -> anyhow::Result<()> {
    match prepared {
        Prepared::Standalone(command) => match command {
            Standalone::VerifyRecording(flags) => crate::verify::verify_recording(flags).await,
            Standalone::Loadtest(flags) => crate::loadtest::run(flags).await,
            Standalone::SignalingSchema => {
                print!("{}", wakili_signal::protocol::schema::document_text());
                Ok(())
            }
            Standalone::DefaultConfig => {
                print!("{}", wakili_settings::DEFAULT_TOML);
                Ok(())
            }
        },
        Prepared::Configured(settings, command) => match command {
            Configured::Serve => self::serve(*settings).await,
            Configured::Token(token) => self::token(&settings, &token),
            Configured::Migrate => migrate(&settings).await,
            Configured::Config => {
                print!("{}", settings.to_masked_toml());
                Ok(())
            }
        },
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    crate::logging::init(&settings)?;
    let backlog = settings.http.listen_backlog;
    let listener = wakili_net::listen(settings.listen, backlog).with_context(|| {
        format!(
            "cannot listen on {}; pass --listen with a free address, e.g. --listen 127.0.0.1:8081",
            settings.listen
        )
    })?;
    let state = wakili_server::prepare(settings, wakili_server::Clock::system()).await?;
    let local = listener.local_addr()?;
    print_summary(&state, local);
    tracing::info!(listen = %local, database = ?state.db.backend(), "wakili serving");
    wakili_server::serve(state, listener, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

fn print_summary(state: &wakili_server::AppState, local: std::net::SocketAddr) {
    let settings = &state.settings;
    let base = match settings.public_url.as_deref() {
        Some(url) if !url.trim().is_empty() => settings.public_url(),
        _ => format!("http://{local}"),
    };
    let auth = match settings.auth.algorithm {
        Algorithm::Hs256 if settings.auth.secret.is_some() => {
            "HS256, configured secret ********".to_owned()
        }
        Algorithm::Hs256 => format!(
            "HS256, generated secret in {}",
            settings
                .secrets_dir()
                .join(wakili_settings::secrets::JWT_SECRET.file)
                .display()
        ),
        alg => format!("{alg}, platform public key"),
    };
    let data_dir_flag = if settings.data_dir == Settings::default().data_dir {
        String::new()
    } else {
        format!(" --data-dir {}", settings.data_dir.display())
    };
    println!(
        "\nWakili {version} is running\n\
         \n  listen      {local}\
         \n  database    {db}\
         \n  data dir    {data}\
         \n  recordings  {rec}\
         \n  auth        {auth}\
         \n  STUN/TURN   {turn}\
         \n  SFU         {sfu}\
         \n  logs        {format}, {level}\
         \n\
         \n  Health      {base}/healthz  ·  {base}/readyz\
         \n  API         {base}/api/v1/openapi.json\
         \n\
         \n  Mint a token:  wakili token --sub u1 --role lawyer --name \"Amina W.\"{data_dir_flag}\
         \n  Try it:        curl -H \"Authorization: Bearer $TOKEN\" {base}/api/v1/consultations\
         \n  All settings:  wakili config   (secrets masked)\n",
        version = env!("CARGO_PKG_VERSION"),
        db = settings.database_url_masked(),
        turn = match state.ice.embedded() {
            Some(t) => format!(
                "udp {host}:{udp} · tcp {host}:{tcp}{tls} · realm {realm}",
                host = t.host,
                udp = t.udp_port,
                tcp = t.tcp_port,
                tls = t
                    .tls_port
                    .map(|p| format!(" · tls {}:{p}", t.host))
                    .unwrap_or_default(),
                realm = settings.turn.realm
            ),
            None => "embedded server off (external TURN configured)".into(),
        },
        sfu = match &state.sfu {
            Some((sfu, _)) => format!(
                "udp {addr}{tcp} · {recording}",
                addr = sfu.local_addr(),
                tcp = if settings.sfu.ice_tcp {
                    " + ICE-TCP"
                } else {
                    ""
                },
                recording = if state.recorder.is_some() {
                    "records consultations (server recording)"
                } else {
                    "browsers record"
                }
            ),
            None => "off: every call is peer to peer".into(),
        },
        data = settings.data_dir.display(),
        rec = wakili_settings::StorageSettings::describe_providers(&settings.recording_providers())
            .join("\n              "),
        format = match settings.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        },
        level = settings.log_level,
    );
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

fn token(settings: &Settings, flags: &Token) -> anyhow::Result<()> {
    let user_id = UserId::parse(flags.sub.clone()).context("--sub")?;
    let role: Role = flags.role.parse().context("--role")?;
    if flags.ttl.is_zero() || flags.ttl > MAX_TOKEN_TTL {
        bail!("--ttl: must be between 1s and 30d");
    }
    let minter = match (settings.auth.algorithm, &flags.private_key) {
        (Algorithm::Hs256, None) => Minter::hs256(&settings.hs256_secret()?)?,
        (Algorithm::Hs256, Some(_)) => {
            bail!("--private-key: not used with auth.algorithm = \"HS256\" (the secret signs)")
        }
        (alg, Some(path)) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("--private-key: cannot read {}", path.display()))?;
            Minter::from_private_pem(alg, &pem)?
        }
        (alg, None) => bail!(
            "--private-key: required with auth.algorithm = \"{alg}\" (the server only holds the public key)"
        ),
    }
    .with_issuer_audience(settings.auth.issuer.clone(), settings.auth.audience.clone());
    let token = minter.mint(
        &TokenRequest {
            name: flags.name.clone().unwrap_or_else(|| user_id.to_string()),
            user_id,
            role,
            ttl: flags.ttl,
        },
        chrono::Utc::now(),
    )?;
    println!("{token}");
    Ok(())
}

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating {}", settings.data_dir.display()))?;
    let db =
        wakili_db::connect(&settings.database_url(), &wakili_db::PoolOptions::default()).await?;
    db.ping().await?;
    println!(
        "{}: migrations applied, schema is current",
        settings.database_url_masked()
    );
    Ok(())
}

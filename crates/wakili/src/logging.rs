use tracing_subscriber::{EnvFilter, fmt, prelude::*};
use wakili_settings::{LogFormat, Settings};

/// Installs the global subscriber: `RUST_LOG` wins over `log_level`.
pub fn init(settings: &Settings) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(filter) if !filter.is_empty() => EnvFilter::try_new(filter)?,
        _ => EnvFilter::try_new(&settings.log_level).map_err(|e| {
            anyhow::anyhow!("log_level: {e}; use e.g. \"info\" or \"wakili_server=debug,info\"")
        })?,
    };
    let registry = tracing_subscriber::registry().with(filter);
    match settings.log_format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init()?,
        LogFormat::Text => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
            registry
                .with(fmt::layer().with_target(false).with_ansi(ansi))
                .try_init()?;
        }
    }
    Ok(())
}

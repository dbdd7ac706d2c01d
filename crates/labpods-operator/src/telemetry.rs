//! Logging: `tracing` with an env filter (RUST_LOG wins over the configured filter), text or
//! JSON lines on stderr.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::{LogFormat, LoggingConfig};

/// Installs the global subscriber. Fails if the filter does not parse or a subscriber is
/// already installed.
pub fn init(config: &LoggingConfig) -> Result<(), String> {
    let filter = match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(directives) if !directives.is_empty() => EnvFilter::try_new(&directives)
            .map_err(|e| format!("RUST_LOG `{directives}` is not a valid filter: {e}"))?,
        _ => EnvFilter::try_new(&config.filter).map_err(|e| {
            format!(
                "config field `logging.filter`: `{}` is not a valid filter: {e}",
                config.filter
            )
        })?,
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = match config.format {
        LogFormat::Text => registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init(),
    };
    result.map_err(|e| format!("cannot install the logger: {e}"))
}

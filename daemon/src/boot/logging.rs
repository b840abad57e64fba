//! Diagnostic logs: tracing to stderr, as readable lines or JSON.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. The filter comes from `RUST_LOG` when set, else `level`.
/// A bad filter is reported and replaced by `info` rather than stopping the daemon.
pub fn init(format: LogFormat, level: &str) {
    let (filter, bad) = match std::env::var("RUST_LOG") {
        Ok(env) if !env.trim().is_empty() => parse(&env),
        _ => parse(level),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if installed.is_ok()
        && let Some(bad) = bad
    {
        tracing::warn!(filter = %bad, "invalid log filter; using 'info'");
    }
}

fn parse(directives: &str) -> (EnvFilter, Option<String>) {
    match EnvFilter::try_new(directives) {
        Ok(f) => (f, None),
        Err(_) => (EnvFilter::new("info"), Some(directives.to_owned())),
    }
}

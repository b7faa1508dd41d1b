//! Diagnostic logs on stderr (`-v`, `RUST_LOG`), set up only when asked for so that the common
//! path pays nothing. Log lines name files, endpoints, statuses and timings, never secrets.

use tracing_subscriber::EnvFilter;

/// Installs the stderr logger when `-v` is given or `RUST_LOG` is set; otherwise does nothing.
pub(crate) fn init(verbose: u8) {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let filter = match (from_env, verbose) {
        (Some(spec), _) => EnvFilter::new(spec),
        (None, 0) => return,
        (None, 1) => EnvFilter::new("gemauth=debug"),
        (None, _) => EnvFilter::new("gemauth=trace"),
    };
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .with_target(false)
        .try_init();
}

//! The shim's log: lines on stderr, text or JSON, from this crate only.
//!
//! Dependencies (the HTTP stack, `vaultrs`) are filtered out at every level: their events
//! may carry response bodies. The shim's own lines name variables, paths and keys, never
//! values.

use crate::config::LogConfig;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

/// Installs the global subscriber.
pub fn init(config: LogConfig) {
    let filter = Targets::new().with_target(env!("CARGO_CRATE_NAME"), config.level);
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(false).with_target(false);
    let registry = tracing_subscriber::registry();
    let _ = if config.json {
        registry.with(layer.json().flatten_event(true).with_filter(filter)).try_init()
    } else {
        registry.with(layer.with_filter(filter)).try_init()
    };
}

//! `cargo xtask bench`: figures beside their baselines, measured in one run.

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Which benchmark: shim, webhook, guard (default: all).
    pub which: Option<String>,
}

pub fn run(_args: &Args) -> Result<()> {
    anyhow::bail!("benchmarks are not written yet")
}

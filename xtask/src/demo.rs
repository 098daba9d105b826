//! `cargo xtask demo`: Hush end to end on one machine, each step explained.

use anyhow::Result;

pub fn run() -> Result<()> {
    anyhow::bail!("the demo is not written yet")
}

//! `cargo xtask deny`: the dependency policy in `deny.toml` (licences, bans, duplicate
//! versions, sources), checked offline with a pinned cargo-deny.
//!
//! cargo-deny comes from crates.io through `cargo install --locked` at [`VERSION`], into
//! `target/tools/` (built once, then reused). The check runs with `--offline` against the
//! crates already fetched for the build: licences, bans and sources need nothing else.
//! Advisories are not checked here: they need the RustSec database, which is a download.

use crate::{cmd, tools};
use anyhow::Result;
use std::path::PathBuf;
use std::process::Command;

/// The cargo-deny release, exact.
const VERSION: &str = "0.20.2";

/// The pinned cargo-deny, installed on first use.
fn cargo_deny() -> Result<PathBuf> {
    let root = tools::target_dir().join("tools").join(format!("cargo-deny-{VERSION}"));
    let bin = root.join("bin").join("cargo-deny");
    if !bin.exists() {
        cmd::run(
            Command::new(env!("CARGO"))
                .args(["install", "--locked", "cargo-deny", "--version", VERSION, "--root"])
                .arg(&root)
                .arg("--target-dir")
                .arg(tools::target_dir().join("tools").join("cargo-deny-build")),
        )?;
    }
    Ok(bin)
}

pub fn run() -> Result<()> {
    let bin = cargo_deny()?;
    cmd::run(Command::new(bin).current_dir(tools::root()).args([
        "--offline",
        "--locked",
        "--all-features",
        "check",
        "licenses",
        "bans",
        "sources",
    ]))
}

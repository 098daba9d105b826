//! `cargo xtask deny`: the dependency policy in `deny.toml` (licences, bans, duplicate
//! versions, sources), checked offline with a pinned cargo-deny.
//!
//! cargo-deny comes from crates.io through `cargo install --locked` at [`VERSION`], into
//! `target/tools/` (built once, then reused). The check runs with `--offline` after
//! `cargo fetch --locked`: cargo-deny's metadata covers every target's dependencies (wasm,
//! android, windows), which a Linux build never downloads, so a fresh machine's cache lacks them
//! (seen: "failed to download `web-time v1.1.0`" in a clean CI run). Licences, bans and sources
//! need nothing else.
//! Advisories are not checked in `cargo xtask test`: they need the RustSec database, which is a
//! download (CI here reaches crates.io but not GitHub). `cargo xtask deny --advisories` checks
//! them too: with `--advisory-db DIR` against a local clone of github.com/rustsec/advisory-db
//! (offline), without it cargo-deny fetches the database itself.

use crate::{cmd, tools};
use anyhow::Result;
use std::path::{Path, PathBuf};
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

/// `cargo xtask deny` options.
#[derive(clap::Args, Default)]
pub struct Args {
    /// Also check RustSec advisories (needs the database: `--advisory-db`, or network access).
    #[arg(long)]
    pub advisories: bool,
    /// A local clone of github.com/rustsec/advisory-db to check against, offline.
    #[arg(long, value_name = "DIR", requires = "advisories")]
    pub advisory_db: Option<PathBuf>,
}

/// The offline policy check that `cargo xtask test` runs.
pub fn run() -> Result<()> {
    check(&Args::default())
}

pub fn check(args: &Args) -> Result<()> {
    let bin = cargo_deny()?;
    // Every target's crates, from the lockfile (a no-op once cached).
    cmd::run(Command::new(env!("CARGO")).current_dir(tools::root()).args(["fetch", "--locked"]))?;
    let mut deny = Command::new(bin);
    deny.current_dir(tools::root()).args(["--locked", "--all-features"]);
    if !args.advisories {
        return cmd::run(deny.args(["--offline", "check", "licenses", "bans", "sources"]));
    }
    if let Some(db) = &args.advisory_db {
        deny.arg("--offline").arg("--config").arg(advisory_config(db)?);
    }
    cmd::run(deny.args(["check", "licenses", "bans", "sources", "advisories"]))
}

/// deny.toml plus an `[advisories]` table naming a database directory laid out as cargo-deny
/// keeps its fetched copy (`<db-path>/advisory-db-<hash of the URL>`), holding a clone of `db`.
fn advisory_config(db: &Path) -> Result<PathBuf> {
    let dir = tools::target_dir().join("xtask").join("advisories");
    // The suffix is cargo-deny's hash of the URL below (seen in its "cannot change to" error).
    let copy = dir.join("advisory-db-3157b0e258782691");
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(&dir)?;
    cmd::run(Command::new("git").args(["clone", "--quiet"]).arg(db).arg(&copy))?;
    let policy = std::fs::read_to_string(tools::root().join("deny.toml"))?;
    let config = dir.join("deny.toml");
    std::fs::write(
        &config,
        format!(
            "[advisories]\ndb-path = {:?}\ndb-urls = [\"https://github.com/rustsec/advisory-db\"]\n\n{policy}",
            dir.display().to_string()
        ),
    )?;
    Ok(config)
}

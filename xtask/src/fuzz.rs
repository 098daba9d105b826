//! `cargo xtask fuzz`: every fuzz target for a while, with the installed nightly.
//!
//! Fuzz crates live beside the crate they test (`<crate>/fuzz`) and are kept out of the
//! stable workspace. cargo-fuzz is installed at a pinned version under `target/tools`.
//! A target's corpus grows under `target/fuzz/<target>`; checked-in seeds
//! (`<crate>/fuzz/seeds/<target>/`) and a libFuzzer dictionary (`<crate>/fuzz/<target>.dict`)
//! are used when they exist.

use crate::{cmd, tools};
use anyhow::Result;
use std::path::PathBuf;
use std::process::Command;

#[derive(clap::Args)]
pub struct Args {
    /// Seconds per target.
    #[arg(long, default_value_t = 60)]
    pub time: u64,
}

/// (crate directory, target) pairs.
const TARGETS: &[(&str, &str)] = &[
    ("contract", "reference"),
    ("contract", "landlock"),
    ("webhook", "annotations"),
    ("webhook", "admission"),
    ("webhook", "admitted_env"),
];

const CARGO_FUZZ_VERSION: &str = "0.13.2";

fn cargo_fuzz() -> Result<PathBuf> {
    let root = tools::target_dir().join("tools").join(format!("cargo-fuzz-{CARGO_FUZZ_VERSION}"));
    let bin = root.join("bin/cargo-fuzz");
    if !bin.exists() {
        cmd::run(
            Command::new(env!("CARGO"))
                .args(["install", "--locked", "--quiet", "cargo-fuzz", "--version", CARGO_FUZZ_VERSION, "--root"])
                .arg(&root),
        )?;
    }
    Ok(bin)
}

pub fn run(args: &Args) -> Result<()> {
    let cargo_fuzz = cargo_fuzz()?;
    for (dir, target) in TARGETS {
        let corpus = tools::target_dir().join("fuzz").join(target);
        std::fs::create_dir_all(&corpus)?;
        let fuzz_dir = tools::root().join(dir).join("fuzz");
        let mut command = Command::new(&cargo_fuzz);
        command.current_dir(tools::root().join(dir)).args(["fuzz", "run", target]).arg(&corpus);
        // Read-only: libFuzzer writes new inputs to the first directory only.
        let seeds = fuzz_dir.join("seeds").join(target);
        if seeds.is_dir() {
            command.arg(seeds);
        }
        command.arg("--").arg(format!("-max_total_time={}", args.time));
        let dict = fuzz_dir.join(format!("{target}.dict"));
        if dict.is_file() {
            command.arg(format!("-dict={}", dict.display()));
        }
        cmd::run(
            command
                .env("RUSTUP_TOOLCHAIN", "nightly")
                .env("CARGO_TARGET_DIR", tools::target_dir().join("fuzz-build"))
                .env_remove("CARGO")
                .env_remove("RUSTC")
                .env_remove("RUSTFLAGS"),
        )?;
    }
    Ok(())
}

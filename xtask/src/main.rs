//! `cargo xtask`: every build, test, benchmark and demo of Hush goes through here.
//!
//! It installs what it needs by itself (Debian packages through apt, Python tools into a
//! venv under `target/tools`), pinned, so that a fresh machine needs only `cargo`.
#![forbid(unsafe_code)]

mod bench;
mod cluster;
mod cmd;
mod demo;
mod deny;
mod e2e;
mod fuzz;
mod guard;
mod images;
mod openbao;
mod progress;
mod test;
mod tidy;
mod tools;
mod vm;
mod webhook;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Hush's task runner")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Run the whole suite: fmt, clippy, unit, property and integration tests against real services.
    Test(test::Args),
    /// The repository's rules, checked: pure modules, `unsafe` in `sys` only, exit codes, aliases, doc pointers.
    Tidy,
    /// The dependency policy (deny.toml: licences, bans, duplicates, sources), offline.
    Deny(deny::Args),
    /// Show Hush working end to end on this machine, explaining each step (tool output to a log).
    Demo(demo::Args),
    /// Run benchmarks and print each figure beside its baseline from the same run.
    Bench(bench::Args),
    /// Build the static shim binary and print its path.
    BuildShim,
    /// Run every fuzz target for a while (cargo-fuzz with the installed nightly).
    Fuzz(fuzz::Args),
    /// The guard's attack suite alone: host kernel (tracepoint) and qemu VMs (lsm, fallback).
    GuardTest(guard::Args),
    /// A one-node Kubernetes cluster on this machine (`up` / `down`), from HUSH_KUBE_BIN.
    Cluster(cluster::Args),
    /// Build Hush's images (and the cluster's pause and example app) and push them to the cluster's registry.
    Images,
    /// Hush on a real cluster: images, chart, the example app, the guard, rotation, a webhook rollout.
    E2e(e2e::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Test(args) => test::run(&args),
        Task::Tidy => tidy::run(),
        Task::Deny(args) => deny::check(&args),
        Task::Demo(args) => demo::run(&args),
        Task::Bench(args) => bench::run(&args),
        Task::Fuzz(args) => fuzz::run(&args),
        Task::GuardTest(args) => guard::run(&args),
        Task::Cluster(args) => cluster::run(&args),
        Task::Images => images::run(),
        Task::E2e(args) => e2e::run(&args),
        Task::BuildShim => {
            println!("{}", tools::build_static_shim()?.display());
            Ok(())
        }
    }
}

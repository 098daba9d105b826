//! `cargo xtask test`: the whole suite, as CI runs it.

use crate::{cmd, openbao::DevServer, tools};
use anyhow::Result;
use std::process::Command;

#[derive(clap::Args)]
pub struct Args {
    /// Skip `cargo fmt --check` and clippy (for a quick local loop).
    #[arg(long)]
    pub no_lint: bool,
    /// Only run tests whose name matches this filter.
    pub filter: Option<String>,
}

/// Debian packages the tests use: a static busybox is the app inside the scratch chroot,
/// openssl makes test certificates, setpriv (util-linux) runs tests as nobody, PostgreSQL\n/// backs the dynamic-secret tests.
const APT: &[&str] = &["busybox-static", "openssl", "util-linux", "python3", "postgresql"];

pub fn run(args: &Args) -> Result<()> {
    let root = tools::root();
    if !args.no_lint {
        cmd::run(Command::new(env!("CARGO")).current_dir(&root).args(["fmt", "--all", "--", "--check"]))?;
        cmd::run(Command::new(env!("CARGO")).current_dir(&root).args([
            "clippy",
            "--locked",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
    }
    tools::ensure_apt(APT)?;
    let shim = tools::build_static_shim()?;
    let server = DevServer::start("openbao-test")?;

    let mut nextest = Command::new(env!("CARGO"));
    nextest
        .current_dir(&root)
        .args(["nextest", "run", "--locked", "--workspace", "--run-ignored", "all", "--no-fail-fast"])
        .env("HUSH_TEST_VAULT_ADDR", &server.addr)
        .env("HUSH_TEST_VAULT_TOKEN", &server.root_token)
        .env("HUSH_TEST_BAO", &server.bao)
        .env("HUSH_TEST_STATIC_INJECTOR", &shim)
        .env("HUSH_TEST_BUSYBOX", "/bin/busybox")
        .env("HUSH_TEST_PG_BIN", tools::postgres_bin()?);
    crate::webhook::test_env(&mut nextest)?;
    if let Some(filter) = &args.filter {
        nextest.arg(filter);
    }
    cmd::run(&mut nextest)?;
    cmd::run(Command::new(env!("CARGO")).current_dir(&root).args(["test", "--locked", "--workspace", "--doc"]))?;
    crate::guard::test()?;
    drop(server);
    if args.filter.is_none() {
        // A short run: crashes found here become regression tests beside the parser.
        crate::fuzz::run(&crate::fuzz::Args { time: 15 })?;
    }
    Ok(())
}

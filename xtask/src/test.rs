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
    cmd::run(Command::new(env!("CARGO")).current_dir(&root).args(["test", "--locked", "--workspace", "--doc"]))?;
    let counts = run_counting(&mut nextest)?;
    crate::guard::test()?;
    drop(server);
    // The demo checks every step it shows; a demo that no longer tells the truth fails CI.
    // `--check` runs it as CI sees it (stdout not a terminal) and checks what it printed.
    crate::demo::run(&crate::demo::Args { check: true, ..Default::default() })?;
    // The same story on a real one-node cluster (issue 12), or one loud SKIPPED line.
    crate::e2e::run_in_suite()?;
    if args.filter.is_none() {
        // A short run: crashes found here become regression tests beside the parser.
        crate::fuzz::run(&crate::fuzz::Args { time: 15 })?;
    }
    // One closing line for whoever reads the log last (the guard and fuzz steps fail the run
    // themselves when they fail).
    println!("tests: {} passed, {} failed", counts.passed, counts.failed);
    Ok(())
}

#[derive(Default)]
struct Counts {
    passed: u64,
    failed: u64,
}

/// Runs nextest, passing its output through, and reads the counts off its summary line.
fn run_counting(nextest: &mut Command) -> Result<Counts> {
    use std::io::{BufRead, BufReader};
    eprintln!("xtask: $ {}", cmd::describe(nextest));
    let mut child = nextest.stderr(std::process::Stdio::piped()).spawn()?;
    let mut counts = Counts::default();
    for line in BufReader::new(child.stderr.take().expect("stderr is piped")).lines() {
        let line = line?;
        eprintln!("{line}");
        if line.trim_start().starts_with("Summary") {
            counts = Counts { passed: count_before(&line, " passed"), failed: count_before(&line, " failed") };
        }
    }
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "nextest failed: {status}");
    Ok(counts)
}

/// The number just before `word` in `line`, or 0.
fn count_before(line: &str, word: &str) -> u64 {
    line.find(word)
        .and_then(|end| line[..end].rsplit(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::count_before;

    #[test]
    fn reads_nextest_summary_counts() {
        let line = "     Summary [  36.346s] 164 tests run: 160 passed, 4 failed, 0 skipped";
        assert_eq!(count_before(line, " passed"), 160);
        assert_eq!(count_before(line, " failed"), 4);
        assert_eq!(count_before("     Summary [ 1s] 3 tests run: 3 passed, 0 skipped", " failed"), 0);
    }
}

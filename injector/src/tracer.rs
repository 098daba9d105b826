//! The shim's first step: refuse to run under a tracer (issue 13). Pure: `run` reads
//! `/proc/self/status` and hands the text here.
//!
//! A process traced before it exec'd the shim (`PTRACE_TRACEME`, `strace -f`, a seized
//! supervisor) would hand the tracer every secret the shim fetches: the tracer can read its
//! memory at any stop and the application's environment after exec. The guard refuses or kills
//! such a start on its nodes; this check refuses it everywhere, before Vault is contacted, with
//! a line naming the tracer.
//!
//! What it cannot see:
//! - `TracerPid` is the tracer's pid in the pid namespace of the procfs read; a tracer in an
//!   ancestor namespace (on the node, outside the container's) reads as 0, so the shim cannot
//!   see it. The guard reads the kernel's own flag and refuses such a start regardless.
//! - Perf events attached to the process before its exec leave no trace that the process can
//!   read about itself (the events live in the monitor's fd table); only the guard sees them.

/// The shim was started under a tracer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "started under a tracer (TracerPid {tracer} in /proc/self/status): refusing to fetch secrets it could read; \
     start the shim without strace, gdb or a ptrace-ing supervisor"
)]
pub struct Traced {
    /// The tracer's pid in this process's pid namespace.
    pub tracer: u32,
}

/// What `/proc/self/status` says.
#[derive(Debug, PartialEq, Eq)]
pub enum Tracing {
    /// `TracerPid: 0`.
    None,
    /// `TracerPid: N`, N > 0.
    By(Traced),
    /// No `TracerPid:` line that parses (not Linux procfs, or a sandbox that omits it).
    Unknown,
}

/// Reads the `TracerPid:` line of a `/proc/<pid>/status` text.
pub fn tracing(status: &str) -> Tracing {
    let Some(value) = status.lines().find_map(|l| l.strip_prefix("TracerPid:")) else {
        return Tracing::Unknown;
    };
    match value.trim().parse::<u32>() {
        Ok(0) => Tracing::None,
        Ok(tracer) => Tracing::By(Traced { tracer }),
        Err(_) => Tracing::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tracer_pid_line_decides() {
        let status = |tracer: &str| format!("Name:\tinjector\nState:\tR (running)\nTracerPid:\t{tracer}\nUid:\t0\n");
        assert_eq!(tracing(&status("0")), Tracing::None);
        assert_eq!(tracing(&status("4242")), Tracing::By(Traced { tracer: 4242 }));
        assert_eq!(tracing(&status("x")), Tracing::Unknown);
        assert_eq!(tracing("Name:\tinjector\n"), Tracing::Unknown);
        let e = Traced { tracer: 7 }.to_string();
        assert!(e.contains("TracerPid 7") && e.contains("tracer"), "{e}");
    }
}

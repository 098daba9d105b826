//! The shim's exit codes (sysexits.h, plus the shell's 126 and 127 for a program that cannot
//! run), and the name of its file: spelled here once, for the shim, its `--help`, the README
//! and the guard.

/// The shim's file name inside its volume: `injector install DIR` writes `DIR/injector`, the
/// webhook runs `DIR/injector -- CMD`, and the guard protects processes that exec a file of
/// this name (`injector-ebpf/bpf/guard.bpf.c`, checked by a test in this crate).
pub const SHIM_FILE: &str = "injector";

/// One exit code and its meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitCode {
    /// The code.
    pub code: u8,
    /// What it means.
    pub meaning: &'static str,
}

/// Usage: bad command line.
pub const USAGE: u8 = 64;
/// A reference does not parse, or a secret holds a NUL byte.
pub const DATA: u8 = 65;
/// A referenced secret, field or path does not exist; a credential file is missing.
pub const NO_INPUT: u8 = 66;
/// Vault unreachable, sealed or failing past `VAULT_CLIENT_TIMEOUT`.
pub const UNAVAILABLE: u8 = 69;
/// An operating-system call failed.
pub const OS: u8 = 71;
/// `injector install` could not write the binary.
pub const CANT_CREATE: u8 = 73;
/// Daemon mode with `HUSH_ROTATION=exit`: a secret rotated; the application was stopped so
/// that Kubernetes restarts the container.
pub const TEMP_FAIL: u8 = 75;
/// Vault answered something unexpected.
pub const PROTOCOL: u8 = 76;
/// Login refused, or permission denied.
pub const NO_PERM: u8 = 77;
/// A configuration variable is invalid or missing; a `required` Landlock policy cannot be enforced.
pub const CONFIG: u8 = 78;
/// The shim was started under a tracer (`TracerPid` in `/proc/self/status`): refused before
/// Vault is contacted.
pub const TRACED: u8 = 79;
/// The program exists but cannot be executed.
pub const CANNOT_EXECUTE: u8 = 126;
/// The program was not found.
pub const NOT_FOUND: u8 = 127;

/// Every exit code of the shim, in order.
pub const EXIT_CODES: &[ExitCode] = &[
    ExitCode { code: USAGE, meaning: "usage: bad command line" },
    ExitCode { code: DATA, meaning: "a reference does not parse, or a secret holds a NUL byte" },
    ExitCode {
        code: NO_INPUT,
        meaning: "a referenced secret, field or path does not exist; a credential file is missing",
    },
    ExitCode { code: UNAVAILABLE, meaning: "Vault unreachable, sealed or failing past VAULT_CLIENT_TIMEOUT" },
    ExitCode { code: OS, meaning: "an operating-system call failed" },
    ExitCode { code: CANT_CREATE, meaning: "`injector install` could not write the binary" },
    ExitCode {
        code: TEMP_FAIL,
        meaning: "daemon mode, HUSH_ROTATION=exit: a secret rotated and the application was stopped",
    },
    ExitCode { code: PROTOCOL, meaning: "Vault answered something unexpected" },
    ExitCode { code: NO_PERM, meaning: "login refused, or permission denied" },
    ExitCode {
        code: CONFIG,
        meaning: "a configuration variable is invalid or missing; a `required` Landlock policy cannot be enforced",
    },
    ExitCode {
        code: TRACED,
        meaning: "the shim was started under a tracer (strace, gdb, a ptrace-ing supervisor): refused before contacting Vault",
    },
    ExitCode { code: CANNOT_EXECUTE, meaning: "the program exists but cannot be executed" },
    ExitCode { code: NOT_FOUND, meaning: "the program was not found" },
];

/// The table for `--help`.
pub fn help_text() -> String {
    let mut out = String::from("Exit codes (the application's own once it runs):");
    for c in EXIT_CODES {
        out.push_str(&format!("\n  {:<3} {}", c.code, c.meaning));
    }
    out
}

/// The table as Markdown rows (`| code | meaning |`), as the README shows it.
pub fn markdown_rows() -> String {
    EXIT_CODES.iter().map(|c| format!("| {} | {} |\n", c.code, c.meaning)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_in_the_help_text_once() {
        let help = help_text();
        for c in EXIT_CODES {
            assert_eq!(help.matches(&format!("\n  {:<3} ", c.code)).count(), 1, "{}", c.code);
        }
        assert!(help.contains("  75  daemon mode"), "{help}");
    }

    #[test]
    fn the_readme_table_is_this_table() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
        assert!(readme.contains(&markdown_rows()), "README.md's exit-code table differs from:\n{}", markdown_rows());
    }

    #[test]
    fn the_guard_keys_on_the_shim_file_name() {
        // The BPF program compares the exec'd file's name, NUL included, with this name.
        let guard =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../injector-ebpf/bpf/guard.bpf.c")).unwrap();
        let check = format!("!= {}) /* \"{SHIM_FILE}\" + NUL */", SHIM_FILE.len() + 1);
        assert!(guard.contains(&check), "guard.bpf.c no longer checks for `{SHIM_FILE}`: expected `{check}`");
        for (i, c) in SHIM_FILE.chars().enumerate() {
            assert!(guard.contains(&format!("buf[{i}] == '{c}'")), "guard.bpf.c does not compare byte {i} with `{c}`");
        }
    }
}

//! Finding the program like a shell does, and replacing the shim with it.

use crate::envblock::EnvBlock;
use crate::sys;
use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The search path when `PATH` is unset, as in most shells.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why the program cannot be started.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// No such program in `PATH`, or no such file.
    #[error("{}: command not found", program.to_string_lossy())]
    NotFound {
        /// As given.
        program: OsString,
    },
    /// A file exists but cannot be executed.
    #[error("{}: {source}", program.display())]
    NotExecutable {
        /// The file.
        program: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An argument holds a NUL byte.
    #[error("argument {index} contains a NUL byte")]
    NulInArgument {
        /// Its position in the command line.
        index: usize,
    },
    /// `execve` failed for another reason.
    #[error("exec {}: {source}", program.display())]
    Exec {
        /// The file.
        program: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Resolves `program` like `execvp`: a name with a `/` is used as is; otherwise the first
/// executable regular file named so in `path` (the `PATH` value) wins.
pub fn find_program(program: &OsStr, path: Option<&OsStr>) -> Result<PathBuf, ExecError> {
    let not_found = || ExecError::NotFound { program: program.to_owned() };
    if program.is_empty() {
        return Err(not_found());
    }
    if program.as_bytes().contains(&b'/') {
        let candidate = PathBuf::from(program);
        return match std::fs::metadata(&candidate) {
            Ok(_) => Ok(candidate),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(not_found()),
            Err(source) => Err(ExecError::NotExecutable { program: candidate, source }),
        };
    }
    let path = path.unwrap_or(OsStr::new(DEFAULT_PATH));
    path.as_bytes()
        .split(|&b| b == b':')
        .map(|dir| if dir.is_empty() { Path::new(".") } else { Path::new(OsStr::from_bytes(dir)) })
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable_file(candidate))
        .ok_or_else(not_found)
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Replaces the shim with `program`. Returns only on failure; `env` is then dropped
/// (and wiped) by the caller.
pub fn exec(program: &Path, argv: &[OsString], env: &EnvBlock) -> ExecError {
    let Ok(c_program) = CString::new(program.as_os_str().as_bytes()) else {
        return ExecError::NulInArgument { index: 0 };
    };
    let mut c_args = Vec::with_capacity(argv.len());
    for (index, arg) in argv.iter().enumerate() {
        match CString::new(arg.clone().into_vec()) {
            Ok(c) => c_args.push(c),
            Err(_) => return ExecError::NulInArgument { index },
        }
    }
    let mut argv_ptrs: Vec<_> = c_args.iter().map(|c| c.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let source = sys::execve(&c_program, &argv_ptrs, &env.envp());
    classify(program, source)
}

/// What a failed `execve` of `program` means: not found, not executable, or another error.
/// The daemon's forked child maps errors through this too (via a table built before the
/// fork), so both paths give the same exit code.
pub fn classify(program: &Path, source: std::io::Error) -> ExecError {
    match source.raw_os_error() {
        Some(libc::ENOENT) => ExecError::NotFound { program: program.as_os_str().to_owned() },
        Some(libc::EACCES | libc::ENOEXEC | libc::EISDIR | libc::ETXTBSY) => {
            ExecError::NotExecutable { program: program.to_owned(), source }
        }
        _ => ExecError::Exec { program: program.to_owned(), source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn touch(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn searches_path_in_order_skipping_non_executables() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        touch(a.path(), "app", 0o644);
        let wanted = touch(b.path(), "app", 0o755);
        std::fs::create_dir(a.path().join("dir")).unwrap();
        let path = format!("{}:{}", a.path().display(), b.path().display());
        assert_eq!(find_program(OsStr::new("app"), Some(OsStr::new(&path))).unwrap(), wanted);
        assert!(matches!(find_program(OsStr::new("dir"), Some(OsStr::new(&path))), Err(ExecError::NotFound { .. })));
        assert!(matches!(find_program(OsStr::new("nope"), Some(OsStr::new(&path))), Err(ExecError::NotFound { .. })));
    }

    #[test]
    fn names_with_a_slash_are_used_as_given() {
        let dir = tempfile::tempdir().unwrap();
        let file = touch(dir.path(), "tool", 0o755);
        assert_eq!(find_program(file.as_os_str(), Some(OsStr::new(""))).unwrap(), file);
        assert!(matches!(find_program(dir.path().join("missing").as_os_str(), None), Err(ExecError::NotFound { .. })));
        assert!(matches!(find_program(OsStr::new(""), None), Err(ExecError::NotFound { .. })));
    }

    #[test]
    fn the_default_path_finds_sh() {
        assert!(find_program(OsStr::new("sh"), None).is_ok());
    }
}

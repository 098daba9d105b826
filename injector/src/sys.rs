//! Every `unsafe` block and raw syscall of the shim. Nothing else in the crate uses `unsafe`.
//!
//! Invariants kept here:
//! - [`LockedPages`] owns exactly one anonymous private mapping of `len` bytes; it is wiped
//!   with volatile writes before it is unmapped, so its contents never outlive it.
//! - [`execve`] is handed NUL-terminated pointer arrays whose strings outlive the call.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char};
use std::io;
use std::ptr::NonNull;

/// Anonymous memory for secrets: kept out of core dumps (`MADV_DONTDUMP`), not inherited
/// by `fork` (`MADV_WIPEONFORK`), locked in RAM when `RLIMIT_MEMLOCK` allows, and wiped
/// before it is returned to the kernel.
pub struct LockedPages {
    ptr: NonNull<u8>,
    len: usize,
    locked: bool,
}

impl LockedPages {
    /// Maps at least `len` bytes (at least one page), zero-filled. `wipe_on_fork: false`
    /// keeps the contents in a forked child (daemon mode execs the app from one).
    pub fn new(len: usize, wipe_on_fork: bool) -> io::Result<Self> {
        let len = len.max(1);
        // Safety: a fresh anonymous private mapping; no existing memory is touched.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned NULL"))?;
        // Safety: ptr/len describe the mapping made above. These are hardening hints: a
        // kernel without them (WIPEONFORK needs 4.14) leaves the memory as private as malloc.
        let locked = unsafe {
            libc::madvise(ptr.as_ptr().cast(), len, libc::MADV_DONTDUMP);
            if wipe_on_fork {
                libc::madvise(ptr.as_ptr().cast(), len, libc::MADV_WIPEONFORK);
            }
            libc::mlock(ptr.as_ptr().cast(), len) == 0
        };
        Ok(LockedPages { ptr, len, locked })
    }

    /// The memory, for writing.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // Safety: the mapping is `len` bytes, readable and writable, and exclusively ours.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// The memory, for reading.
    #[cfg(test)]
    pub fn as_slice(&self) -> &[u8] {
        // Safety: as above; shared borrow.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// Address of byte `offset`, for pointer arrays handed to the kernel.
    pub fn ptr_at(&self, offset: usize) -> *const c_char {
        assert!(offset < self.len, "offset {offset} outside the {}-byte mapping", self.len);
        // Safety: offset is within the mapping (checked above).
        unsafe { self.ptr.as_ptr().add(offset).cast_const().cast() }
    }

    /// Whether `mlock` succeeded.
    pub fn is_locked(&self) -> bool {
        self.locked
    }
}

impl Drop for LockedPages {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(self.as_mut_slice());
        // Safety: unmapping the mapping this value owns; nothing refers to it past drop.
        unsafe {
            if self.locked {
                libc::munlock(self.ptr.as_ptr().cast(), self.len);
            }
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// Replaces the process image. Returns only on failure.
///
/// `argv` and `envp` must end with a null pointer and point to NUL-terminated strings that
/// stay alive for the call (checked: the last element is null).
pub fn execve(program: &CStr, argv: &[*const c_char], envp: &[*const c_char]) -> io::Error {
    assert!(argv.last().is_some_and(|p| p.is_null()), "argv must be null-terminated");
    assert!(envp.last().is_some_and(|p| p.is_null()), "envp must be null-terminated");
    // Safety: all three point to NUL-terminated data that outlives the call (caller's
    // contract, terminators checked above).
    unsafe { libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    io::Error::last_os_error()
}

/// `prctl(PR_SET_DUMPABLE)`: a non-dumpable process cannot be ptraced or have its
/// `/proc/<pid>/{environ,mem}` read by same-uid processes without `CAP_SYS_PTRACE`.
pub fn set_dumpable(dumpable: bool) -> io::Result<()> {
    // Safety: PR_SET_DUMPABLE takes an integer argument and touches no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, libc::c_ulong::from(dumpable), 0, 0, 0) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`: exec can no longer raise privileges (setuid bits and
/// file capabilities are ignored). One-way, inherited by children.
pub fn set_no_new_privs() -> io::Result<()> {
    // Safety: PR_SET_NO_NEW_PRIVS takes integer arguments and touches no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Writes `0` to `/proc/self/coredump_filter` with raw calls (no allocation).
pub fn clear_coredump_filter() -> io::Result<()> {
    // Safety: a NUL-terminated literal path; the fd is closed before returning.
    unsafe {
        let fd = libc::open(c"/proc/self/coredump_filter".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let written = libc::write(fd, b"0".as_ptr().cast(), 1);
        let err = io::Error::last_os_error();
        libc::close(fd);
        if written == 1 { Ok(()) } else { Err(err) }
    }
}

/// Exit codes of a child that could not become the application, decided before the fork
/// (the child may not allocate: see [`spawn_hardened`]).
#[derive(Debug, Clone, Copy)]
pub struct ChildExits<'a> {
    /// When the hardening step fails.
    pub hardening: u8,
    /// `(errno, code)` for a failed `execve`, as the non-daemon path maps it.
    pub exec: &'a [(i32, u8)],
    /// For an `execve` errno not in `exec`.
    pub exec_other: u8,
}

impl ChildExits<'_> {
    /// The exit code for a failed `execve` (no allocation).
    pub fn for_exec(&self, errno: Option<i32>) -> u8 {
        self.exec.iter().find(|(e, _)| Some(*e) == errno).map_or(self.exec_other, |&(_, code)| code)
    }
}

/// Forks; the child runs `harden`, then `execve(program, argv, envp)`, and exits with a code
/// of `exits` if either fails. Returns the child's pid to the parent.
///
/// The child is a copy of a multi-threaded process: until `execve` it may only make
/// async-signal-safe calls, so `harden` must not allocate or take locks (it is
/// `harden::Prepared::enforce`, which makes system calls only on its success path), and
/// every exit code is decided before the fork. This is the only `fork` in the crate.
pub fn spawn_hardened(
    program: &CStr,
    argv: &[*const c_char],
    envp: &[*const c_char],
    harden: impl FnOnce() -> bool,
    exits: ChildExits<'_>,
) -> io::Result<i32> {
    // Safety: the child below runs only `harden` (system calls, see above), write(2),
    // execve(2) and _exit(2) before it is replaced or ends; the parent continues normally.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            if !harden() {
                write_stderr(b"injector: hardening the application failed\n");
                exit_now(i32::from(exits.hardening));
            }
            let err = execve(program, argv, envp);
            write_stderr(b"injector: exec of the application failed\n");
            exit_now(i32::from(exits.for_exec(err.raw_os_error())))
        }
        pid => Ok(pid),
    }
}

/// `_exit(code)`: leaves without running destructors or atexit handlers (forked child).
pub fn exit_now(code: i32) -> ! {
    // Safety: _exit never returns and touches no memory of ours.
    unsafe { libc::_exit(code) }
}

/// Writes a static message to stderr without allocating (forked child).
pub fn write_stderr(message: &[u8]) {
    // Safety: the slice is valid for its length; a short write is acceptable.
    unsafe { libc::write(2, message.as_ptr().cast(), message.len()) };
}

/// `kill(pid, signal)`.
pub fn kill(pid: i32, signal: i32) -> io::Result<()> {
    // Safety: kill takes integers only.
    if unsafe { libc::kill(pid, signal) } == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// `exit(code)`.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

impl Ended {
    /// The exit code a shell would report: the code, or 128 + the signal.
    pub fn code(self) -> i32 {
        match self {
            Ended::Exited(code) => code,
            Ended::Signaled(signal) => 128 + signal,
        }
    }
}

/// Reaps one ended child (`pid`, or any with -1) without blocking.
pub fn try_wait(pid: i32) -> io::Result<Option<(i32, Ended)>> {
    let mut status = 0;
    // Safety: waitpid writes the status into our local integer.
    let got = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    match got {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid if libc::WIFEXITED(status) => Ok(Some((pid, Ended::Exited(libc::WEXITSTATUS(status))))),
        pid if libc::WIFSIGNALED(status) => Ok(Some((pid, Ended::Signaled(libc::WTERMSIG(status))))),
        _ => Ok(None),
    }
}

/// `prctl(PR_SET_CHILD_SUBREAPER)`: orphaned descendants are re-parented to this process
/// (as they would be to PID 1), so that it can reap them.
pub fn become_subreaper() -> io::Result<()> {
    // Safety: integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// The effective user ID.
pub fn effective_uid() -> u32 {
    // Safety: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() }
}

/// Sets `RLIMIT_CORE` (soft and hard) to `bytes`.
pub fn set_core_limit(bytes: u64) -> io::Result<()> {
    let limit = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
    // Safety: setrlimit reads the struct we pass for the duration of the call.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_CORE, &limit) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_zeroed_writable_and_sized() {
        let mut pages = LockedPages::new(10, true).unwrap();
        assert_eq!(pages.as_slice().len(), 10);
        assert!(pages.as_slice().iter().all(|&b| b == 0));
        pages.as_mut_slice()[..3].copy_from_slice(b"abc");
        assert_eq!(&pages.as_slice()[..3], b"abc");
        assert!(!pages.ptr_at(9).is_null());
    }

    #[test]
    fn a_child_maps_exec_errors_through_the_table_decided_before_the_fork() {
        let exits = ChildExits { hardening: 71, exec: &[(libc::ENOENT, 127), (libc::ETXTBSY, 126)], exec_other: 71 };
        assert_eq!(exits.for_exec(Some(libc::ETXTBSY)), 126);
        assert_eq!(exits.for_exec(Some(libc::ENOENT)), 127);
        assert_eq!(exits.for_exec(Some(libc::E2BIG)), 71);
        assert_eq!(exits.for_exec(None), 71);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn pointers_past_the_end_are_refused() {
        let _ = LockedPages::new(4, true).unwrap().ptr_at(4);
    }
}

//! Every `unsafe` of the crate. Each function is a thin, typed wrapper over one libc call; the
//! invariants that make each block sound are stated beside it. Errors carry the call's name.

use crate::maps::{Protected, TidKeys, VpidKey};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// A failed system call, named.
#[derive(Debug, thiserror::Error)]
#[error("`{call}` failed")]
pub struct SyscallError {
    pub call: &'static str,
    #[source]
    pub io_error: io::Error,
}

fn check(call: &'static str, ret: libc::c_long) -> Result<libc::c_long, SyscallError> {
    if ret < 0 { Err(SyscallError { call, io_error: io::Error::last_os_error() }) } else { Ok(ret) }
}

// Safety: `Protected` and `VpidKey` are #[repr(C)], contain only integers (every bit pattern is
// valid), and have no implicit padding (explicit `pad`/`flags` fields; sizes asserted in maps.rs).
unsafe impl aya::Pod for Protected {}
// Safety: as above.
unsafe impl aya::Pod for VpidKey {}
// Safety: as above (an array of `VpidKey` and two u32s).
unsafe impl aya::Pod for TidKeys {}

/// `CLOCK_BOOTTIME` in nanoseconds (the clock of `bpf_ktime_get_boot_ns`).
pub fn boottime_ns() -> Result<i128, SyscallError> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // Safety: `ts` is a valid, writable timespec for the duration of the call.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    check("clock_gettime(CLOCK_BOOTTIME)", r.into())?;
    Ok(i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec))
}

/// Waits up to `timeout_ms` for `fd` to become readable; `Ok(false)` on timeout or EINTR.
pub fn poll_readable(fd: BorrowedFd<'_>, timeout_ms: i32) -> Result<bool, SyscallError> {
    let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // Safety: one valid pollfd, nfds = 1; `fd` is borrowed, so open for the call.
    let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
        return Ok(false);
    }
    Ok(check("poll", r.into())? > 0)
}

/// `kill(pid, sig)`.
pub fn kill(pid: i32, sig: i32) -> Result<(), SyscallError> {
    // Safety: integer arguments only.
    let r = unsafe { libc::kill(pid, sig) };
    check("kill", r.into()).map(drop)
}

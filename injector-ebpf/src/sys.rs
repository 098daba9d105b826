//! Every `unsafe` of the crate. Each function is a thin, typed wrapper over one libc call; the
//! invariants that make each block sound are stated beside it. Errors carry the call's name.

use crate::maps::{Protected, TidKeys, VpidKey};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

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
// valid), and have no implicit padding (explicit `pad` fields; sizes asserted in maps.rs).
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

// ---- BPF link pinning the aya 0.14 API does not offer ---------------------------------------

const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;

/// `BPF_RAW_TRACEPOINT_OPEN`: attaches a raw tracepoint program to `name`, or an LSM/tracing
/// program to its load-time target with `name = None`, returning the link fd. (aya 0.14 keeps
/// such links in an owned wrapper that cannot be converted to a pinnable `FdLink`.)
pub fn raw_tracepoint_open(prog: BorrowedFd<'_>, name: Option<&str>) -> Result<OwnedFd, SyscallError> {
    #[repr(C)]
    struct Attr {
        name: u64,
        prog_fd: u32,
        pad: u32,
        cookie: u64,
    }
    let cname = name
        .map(CString::new)
        .transpose()
        .map_err(|e| SyscallError { call: "bpf(BPF_RAW_TRACEPOINT_OPEN)", io_error: io::Error::other(e) })?;
    let attr = Attr {
        name: cname.as_ref().map_or(0, |c| c.as_ptr() as u64),
        prog_fd: prog.as_raw_fd() as u32,
        pad: 0,
        cookie: 0,
    };
    // Safety: `attr` is a fully initialised bpf_attr prefix for this command, `name` points to a
    // NUL-terminated string alive until the call returns, and the size passed is attr's size.
    let r = unsafe {
        libc::syscall(libc::SYS_bpf, BPF_RAW_TRACEPOINT_OPEN, &attr as *const Attr, size_of::<Attr>() as u32)
    };
    let fd = check("bpf(BPF_RAW_TRACEPOINT_OPEN)", r)? as RawFd;
    // Safety: a new fd the kernel installed for us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `BPF_OBJ_PIN`: pins a BPF object (here: a link) at `path` on bpffs.
pub fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> Result<(), SyscallError> {
    #[repr(C)]
    struct Attr {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
        path_fd: i32,
        pad: u32,
    }
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| SyscallError { call: "bpf(BPF_OBJ_PIN)", io_error: io::Error::other(e) })?;
    let attr = Attr { pathname: c.as_ptr() as u64, bpf_fd: fd.as_raw_fd() as u32, file_flags: 0, path_fd: 0, pad: 0 };
    // Safety: `attr` is fully initialised; `pathname` is NUL-terminated and alive for the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, BPF_OBJ_PIN, &attr as *const Attr, size_of::<Attr>() as u32) };
    check("bpf(BPF_OBJ_PIN)", r).map(drop)
}

/// `kill(pid, sig)`.
pub fn kill(pid: i32, sig: i32) -> Result<(), SyscallError> {
    // Safety: integer arguments only.
    let r = unsafe { libc::kill(pid, sig) };
    check("kill", r.into()).map(drop)
}

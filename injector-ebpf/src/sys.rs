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

// ---- used by the attack suite (guard-suite) -----------------------------------------------

/// `ptrace(PTRACE_ATTACH, pid)` then `waitpid` for the stop.
pub fn ptrace_attach(pid: i32) -> Result<(), SyscallError> {
    // Safety: PTRACE_ATTACH takes no pointers (addr and data are ignored, passed as null).
    let r = unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, std::ptr::null_mut::<libc::c_void>(), 0) };
    check("ptrace(PTRACE_ATTACH)", r)?;
    let mut status = 0;
    // Safety: `status` is a valid int to write; __WALL waits for a traced non-child.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
    check("waitpid", r.into())?;
    Ok(())
}

/// `ptrace(PTRACE_PEEKDATA)` of one word at `addr` in a stopped tracee.
pub fn ptrace_peek(pid: i32, addr: u64) -> Result<u64, SyscallError> {
    // Safety: PEEKDATA reads the tracee (not our memory); `addr` is an address in the tracee and
    // only interpreted by the kernel. errno distinguishes -1 data from failure.
    unsafe { *libc::__errno_location() = 0 };
    // Safety: as above.
    let r = unsafe { libc::ptrace(libc::PTRACE_PEEKDATA, pid, addr as *mut libc::c_void, 0) };
    if r == -1 && io::Error::last_os_error().raw_os_error() != Some(0) {
        return Err(SyscallError { call: "ptrace(PTRACE_PEEKDATA)", io_error: io::Error::last_os_error() });
    }
    Ok(r as u64)
}

/// `ptrace(PTRACE_DETACH, pid)`.
pub fn ptrace_detach(pid: i32) -> Result<(), SyscallError> {
    // Safety: DETACH takes no pointers (data 0: no signal).
    let r = unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, std::ptr::null_mut::<libc::c_void>(), 0) };
    check("ptrace(PTRACE_DETACH)", r).map(drop)
}

/// `process_vm_readv` of `buf.len()` bytes at `addr` in `pid`; returns the count read.
pub fn process_vm_read(pid: i32, addr: u64, buf: &mut [u8]) -> Result<usize, SyscallError> {
    let local = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: buf.len() };
    // Safety: `local` describes `buf`, exclusively borrowed and writable for its length; the
    // remote iovec is only dereferenced by the kernel in the other process.
    let r = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    Ok(check("process_vm_readv", r as libc::c_long)? as usize)
}

/// `pidfd_open(pid, 0)`.
pub fn pidfd_open(pid: i32) -> Result<OwnedFd, SyscallError> {
    // Safety: integer arguments only.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = check("pidfd_open", r)? as RawFd;
    // Safety: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `pidfd_getfd(pidfd, targetfd, 0)`: a duplicate of another process's fd.
pub fn pidfd_getfd(pidfd: BorrowedFd<'_>, targetfd: i32) -> Result<OwnedFd, SyscallError> {
    // Safety: integer arguments only; `pidfd` is open for the call.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), targetfd, 0) };
    let fd = check("pidfd_getfd", r)? as RawFd;
    // Safety: a new fd the kernel installed for us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat(dirfd, path, O_RDONLY|O_CLOEXEC)`.
pub fn openat(dirfd: BorrowedFd<'_>, path: &str) -> Result<OwnedFd, SyscallError> {
    let c = CString::new(path).map_err(|e| SyscallError { call: "openat", io_error: io::Error::other(e) })?;
    // Safety: `c` is a NUL-terminated string alive for the call; `dirfd` is open.
    let r = unsafe { libc::openat(dirfd.as_raw_fd(), c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    let fd = check("openat", r.into())? as RawFd;
    // Safety: a new fd the kernel installed for us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Enters a new mount namespace (so a second procfs mount stays private) and mounts procfs at
/// `dir`.
pub fn mount_private_procfs(dir: &Path) -> Result<(), SyscallError> {
    // Safety: integer flag argument only.
    let r = unsafe { libc::unshare(libc::CLONE_NEWNS) };
    check("unshare(CLONE_NEWNS)", r.into())?;
    let root = c"/";
    // Safety: valid NUL-terminated strings; MS_REC|MS_PRIVATE takes no data.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    check("mount(MS_PRIVATE)", r.into())?;
    let target = CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|e| SyscallError { call: "mount(proc)", io_error: io::Error::other(e) })?;
    // Safety: valid NUL-terminated strings alive for the call; no data argument.
    let r = unsafe { libc::mount(c"proc".as_ptr(), target.as_ptr(), c"proc".as_ptr(), 0, std::ptr::null()) };
    check("mount(proc)", r.into()).map(drop)
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

// ---- io_uring: one IORING_OP_OPENAT, for the suite's io_uring attack -------------------------

#[repr(C)]
#[derive(Default)]
struct SqOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    flags: u32,
    dropped: u32,
    array: u32,
    resv1: u32,
    user_addr: u64,
}

#[repr(C)]
#[derive(Default)]
struct CqOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    overflow: u32,
    cqes: u32,
    flags: u32,
    resv1: u32,
    user_addr: u64,
}

#[repr(C)]
#[derive(Default)]
struct UringParams {
    sq_entries: u32,
    cq_entries: u32,
    flags: u32,
    sq_thread_cpu: u32,
    sq_thread_idle: u32,
    features: u32,
    wq_fd: u32,
    resv: [u32; 3],
    sq_off: SqOffsets,
    cq_off: CqOffsets,
}

#[repr(C)]
#[derive(Default)]
struct Sqe {
    opcode: u8,
    flags: u8,
    ioprio: u16,
    fd: i32,
    off: u64,
    addr: u64,
    len: u32,
    open_flags: u32,
    user_data: u64,
    buf_index: u16,
    personality: u16,
    splice_fd_in: i32,
    addr3: u64,
    pad: u64,
}

const _: () = assert!(size_of::<UringParams>() == 120 && size_of::<Sqe>() == 64);

/// An mmap of an io_uring region, unmapped on drop.
struct Region {
    ptr: *mut u8,
    len: usize,
}

impl Region {
    fn map(fd: RawFd, len: usize, offset: i64) -> Result<Region, SyscallError> {
        // Safety: a fresh shared mapping of the ring fd at a kernel-defined offset; no existing
        // memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                offset,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(SyscallError { call: "mmap(io_uring)", io_error: io::Error::last_os_error() });
        }
        Ok(Region { ptr: p.cast(), len })
    }

    /// Pointer to a `T` at byte offset `off`; the caller keeps `off + size_of::<T>() <= len`.
    fn at<T>(&self, off: u32) -> *mut T {
        assert!(off as usize + size_of::<T>() <= self.len, "io_uring offset outside the mapping");
        // Safety: in bounds (asserted) of a live mapping.
        unsafe { self.ptr.add(off as usize).cast() }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // Safety: exactly the mapping made in `map`, not used after this.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Opens `path` read-only through an io_uring `IORING_OP_OPENAT`; the inner result is the
/// completion's: the new fd, or the errno the open failed with.
pub fn io_uring_openat(path: &str) -> Result<Result<OwnedFd, io::Error>, SyscallError> {
    use std::sync::atomic::{AtomicU32, Ordering};
    let mut p = UringParams::default();
    // Safety: `p` is a valid io_uring_params for the kernel to fill.
    let r = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, &mut p as *mut UringParams) };
    let ring = check("io_uring_setup", r)? as RawFd;
    // Safety: a new fd the kernel installed for us.
    let ring = unsafe { OwnedFd::from_raw_fd(ring) };
    let sq = Region::map(ring.as_raw_fd(), (p.sq_off.array + p.sq_entries * 4) as usize, 0)?;
    let cq = Region::map(ring.as_raw_fd(), (p.cq_off.cqes + p.cq_entries * 16) as usize, 0x800_0000)?;
    let sqes = Region::map(ring.as_raw_fd(), p.sq_entries as usize * size_of::<Sqe>(), 0x1000_0000)?;
    let cpath =
        CString::new(path).map_err(|e| SyscallError { call: "io_uring openat", io_error: io::Error::other(e) })?;
    // Safety: the ring offsets come from the kernel and lie inside the mappings (checked by
    // `at`); head/tail are shared with the kernel, so they are accessed atomically; `cpath`
    // outlives the io_uring_enter call that consumes the SQE.
    unsafe {
        let tail_p = &*sq.at::<AtomicU32>(p.sq_off.tail);
        let mask = *sq.at::<u32>(p.sq_off.ring_mask);
        let tail = tail_p.load(Ordering::Acquire);
        let idx = tail & mask;
        sqes.at::<Sqe>(idx * size_of::<Sqe>() as u32).write(Sqe {
            opcode: 18, // IORING_OP_OPENAT
            fd: libc::AT_FDCWD,
            addr: cpath.as_ptr() as u64,
            open_flags: (libc::O_RDONLY | libc::O_CLOEXEC) as u32,
            user_data: 7,
            ..Sqe::default()
        });
        sq.at::<u32>(p.sq_off.array + idx * 4).write(idx);
        tail_p.store(tail.wrapping_add(1), Ordering::Release);
    }
    // Safety: integer arguments only; no signal mask.
    let r = unsafe { libc::syscall(libc::SYS_io_uring_enter, ring.as_raw_fd(), 1u32, 1u32, 1u32, 0usize, 0usize) };
    check("io_uring_enter", r)?;
    // Safety: as above; the kernel published one CQE (min_complete = 1) before returning.
    let res = unsafe {
        let head_p = &*cq.at::<AtomicU32>(p.cq_off.head);
        let mask = *cq.at::<u32>(p.cq_off.ring_mask);
        let head = head_p.load(Ordering::Acquire);
        let res = *cq.at::<i32>(p.cq_off.cqes + (head & mask) * 16 + 8);
        head_p.store(head.wrapping_add(1), Ordering::Release);
        res
    };
    if res < 0 {
        return Ok(Err(io::Error::from_raw_os_error(-res)));
    }
    // Safety: the completion of our OPENAT installed this fd for us; nothing else owns it.
    Ok(Ok(unsafe { OwnedFd::from_raw_fd(res) }))
}

// ---- the suite's flood of killed attackers ---------------------------------------------------

/// Forks a child that opens `path` read-only and `_exit`s 0 if the open succeeded, 1 if not;
/// waits for it and returns its wait status. In tracepoint mode the guard kills the child inside
/// the open, so each call is one attempt by a fresh attacker.
pub fn fork_open(path: &std::ffi::CStr) -> Result<std::process::ExitStatus, SyscallError> {
    use std::os::unix::process::ExitStatusExt;
    // Safety: this process has threads, so the child may only make async-signal-safe calls:
    // it calls open(2) on `path` (in its copy of our memory) and _exit(2), never returning into
    // Rust code, running no destructor and taking no lock.
    let pid = unsafe { libc::fork() };
    check("fork", pid.into())?;
    if pid == 0 {
        // Safety: as above; `path` is NUL-terminated.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        // Safety: _exit takes an int and does not return.
        unsafe { libc::_exit(if fd >= 0 { 0 } else { 1 }) }
    }
    let mut status = 0;
    // Safety: `status` is a valid int to write; `pid` is our child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    check("waitpid", r.into())?;
    Ok(std::process::ExitStatus::from_raw(status))
}

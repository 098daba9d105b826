//! Every `unsafe` of the attack suite. Each function is a thin, typed wrapper over one libc call
//! (or one `int $0x80`); the invariants that make each block sound are stated beside it. Errors
//! carry the call's name. These are the attacks' system calls: the guard's own crate
//! (`injector-ebpf`) carries none of them.

pub use injector_ebpf::sys::{SyscallError, kill};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

fn check(call: &'static str, ret: libc::c_long) -> Result<libc::c_long, SyscallError> {
    if ret < 0 { Err(SyscallError { call, io_error: io::Error::last_os_error() }) } else { Ok(ret) }
}

// ---- ptrace, process_vm_readv, pidfds, a private procfs ----------------------------------

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

/// `openat2(AT_FDCWD, path, {O_RDONLY|O_CLOEXEC})`: the opening path with its own system call
/// (and its own tracepoint, `sys_exit_openat2`).
pub fn openat2(path: &str) -> Result<OwnedFd, SyscallError> {
    let c = CString::new(path).map_err(|e| SyscallError { call: "openat2", io_error: io::Error::other(e) })?;
    // Safety: a zeroed open_how is valid (all-integer struct); flags set below.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_CLOEXEC) as u64;
    // Safety: `c` is NUL-terminated and `how` a valid open_how, both alive for the call; the size
    // passed is the struct's.
    let r = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            c.as_ptr(),
            &how as *const libc::open_how,
            size_of::<libc::open_how>(),
        )
    };
    let fd = check("openat2", r)? as RawFd;
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

// ---- the suite's 32-bit system calls, shared fd tables, perf and traced execs ---------------

/// A page mapped below 4 GiB (`MAP_32BIT`), so its addresses fit the 32-bit registers of an
/// `int $0x80` system call; holds one NUL-terminated string at its start.
pub struct LowStr {
    addr: usize,
}

impl LowStr {
    pub fn new(s: &str) -> Result<LowStr, SyscallError> {
        let c = CString::new(s).map_err(|e| SyscallError { call: "mmap(MAP_32BIT)", io_error: io::Error::other(e) })?;
        let bytes = c.as_bytes_with_nul();
        if bytes.len() > 4096 {
            return Err(SyscallError { call: "mmap(MAP_32BIT)", io_error: io::Error::other("string over 4 KiB") });
        }
        // Safety: a fresh anonymous private mapping; no existing memory is touched.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(SyscallError { call: "mmap(MAP_32BIT)", io_error: io::Error::last_os_error() });
        }
        // Safety: `p` is a writable 4096-byte mapping we own; `bytes` fits (checked above).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p.cast::<u8>(), bytes.len()) };
        Ok(LowStr { addr: p as usize })
    }

    /// The string's address, which fits in 32 bits.
    pub fn addr32(&self) -> u32 {
        self.addr as u32
    }
}

impl Drop for LowStr {
    fn drop(&mut self) {
        // Safety: our own mapping of 4096 bytes, unmapped once.
        unsafe { libc::munmap(self.addr as *mut libc::c_void, 4096) };
    }
}

/// One i386 system call through `int $0x80` from this 64-bit process (IA32 emulation): the
/// kernel runs it as a 32-bit (compat) syscall. Returns the raw result (negative errno).
pub fn int80(nr: u32, a1: u32, a2: u32, a3: u32) -> i64 {
    let ret: i64;
    // Safety: the callers pass i386 syscall numbers whose pointer arguments (if any) point into a
    // LowStr or are 0, so the kernel reads only memory we own. rbx is reserved by LLVM, so the
    // first argument is swapped into it around the trap; the compat entry zeroes r8-r11 on return.
    unsafe {
        std::arch::asm!(
            "xchg {b}, rbx",
            "int 0x80",
            "xchg {b}, rbx",
            b = inout(reg) u64::from(a1) => _,
            inlateout("rax") u64::from(nr) => ret,
            in("rcx") u64::from(a2),
            in("rdx") u64::from(a3),
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
        );
    }
    ret
}

/// i386 `open(path, O_RDONLY)` through `int $0x80`.
pub fn int80_open(path: &str) -> Result<OwnedFd, SyscallError> {
    let s = LowStr::new(path)?;
    let r = int80(5, s.addr32(), 0, 0);
    if r < 0 {
        return Err(SyscallError { call: "i386 open", io_error: io::Error::from_raw_os_error(-r as i32) });
    }
    // Safety: a new fd the kernel installed for us.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// i386 `ptrace(PTRACE_ATTACH, pid)` through `int $0x80`, then `waitpid` for the stop.
pub fn int80_ptrace_attach(pid: i32) -> Result<(), SyscallError> {
    let r = int80(26, libc::PTRACE_ATTACH, pid as u32, 0);
    if r < 0 {
        return Err(SyscallError {
            call: "i386 ptrace(PTRACE_ATTACH)",
            io_error: io::Error::from_raw_os_error(-r as i32),
        });
    }
    let mut status = 0;
    // Safety: `status` is a valid int to write.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
    check("waitpid", r.into()).map(drop)
}

/// The bit that marks an x32 system call number (`__X32_SYSCALL_BIT`).
pub const X32_SYSCALL_BIT: libc::c_long = 0x4000_0000;

/// x32 `open(path, O_RDONLY)`: the shared number 2 with the x32 bit, from this 64-bit process.
/// `ENOSYS` where the kernel has no x32 (not built, or Debian's default `syscall.x32=n`).
pub fn x32_open(path: &str) -> Result<OwnedFd, SyscallError> {
    let s = LowStr::new(path)?;
    // Safety: the path is a NUL-terminated string in a LowStr mapping we own for the call (below
    // 4 GiB, as an x32 pointer is); open reads nothing else of ours.
    let r = unsafe { libc::syscall(X32_SYSCALL_BIT | libc::SYS_open, libc::c_ulong::from(s.addr32()), libc::O_RDONLY) };
    let fd = check("x32 open", r)?;
    // Safety: a new fd the kernel installed for us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// x32 `ptrace(PTRACE_ATTACH, pid)` (x32's own entry, 521), then `waitpid` for the stop.
pub fn x32_ptrace_attach(pid: i32) -> Result<(), SyscallError> {
    // Safety: PTRACE_ATTACH takes no pointers (addr and data are ignored, passed as 0).
    let r = unsafe { libc::syscall(X32_SYSCALL_BIT | 521, libc::PTRACE_ATTACH, pid, 0, 0) };
    check("x32 ptrace(PTRACE_ATTACH)", r)?;
    let mut status = 0;
    // Safety: `status` is a valid int to write.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
    check("waitpid", r.into()).map(drop)
}

/// i386 `pidfd_getfd(pidfd, targetfd, 0)` through `int $0x80`.
pub fn int80_pidfd_getfd(pidfd: BorrowedFd<'_>, targetfd: i32) -> Result<OwnedFd, SyscallError> {
    let r = int80(438, pidfd.as_raw_fd() as u32, targetfd as u32, 0);
    if r < 0 {
        return Err(SyscallError { call: "i386 pidfd_getfd", io_error: io::Error::from_raw_os_error(-r as i32) });
    }
    // Safety: a new fd the kernel installed for us.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// `clone(CLONE_FILES | SIGCHLD)` without a new stack (fork semantics, shared fd table):
/// `Ok(0)` in the child, the child's pid in the parent. Callers must be single-threaded.
pub fn fork_sharing_files() -> Result<i32, SyscallError> {
    // Safety: with a null stack the child continues on a copy-on-write copy of ours, like fork;
    // the caller is single-threaded, so no lock is held by a thread the child lacks.
    let r = unsafe { libc::syscall(libc::SYS_clone, libc::CLONE_FILES | libc::SIGCHLD, 0, 0, 0, 0) };
    Ok(check("clone(CLONE_FILES)", r)? as i32)
}

/// `perf_event_open` of a page-fault sampling event on `pid` whose samples carry 8 KiB of the
/// user stack (PERF_SAMPLE_STACK_USER): where a process's environment strings live.
pub fn perf_stack_sampler(pid: i32) -> Result<OwnedFd, SyscallError> {
    // struct perf_event_attr, PERF_ATTR_SIZE_VER5 (112 bytes), fields at their UAPI offsets.
    let mut attr = [0u8; 112];
    let mut put = |off: usize, v: &[u8]| attr[off..off + v.len()].copy_from_slice(v);
    put(0, &1u32.to_ne_bytes()); // type: PERF_TYPE_SOFTWARE
    put(4, &112u32.to_ne_bytes()); // size
    put(8, &2u64.to_ne_bytes()); // config: PERF_COUNT_SW_PAGE_FAULTS
    put(16, &1u64.to_ne_bytes()); // sample_period
    put(24, &(1u64 << 13).to_ne_bytes()); // sample_type: PERF_SAMPLE_STACK_USER
    put(40, &((1u64 << 5) | (1u64 << 6)).to_ne_bytes()); // exclude_kernel, exclude_hv
    put(88, &8192u32.to_ne_bytes()); // sample_stack_user
    // Safety: `attr` is a readable 112-byte perf_event_attr whose size field says so.
    let r = unsafe { libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), pid, -1, -1, 0) };
    let fd = check("perf_event_open", r)? as RawFd;
    // Safety: a new fd the kernel installed for us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Forks a child that calls `PTRACE_TRACEME` (this process becomes its tracer) and execs
/// `argv[0]` with `argv` and this process's environment; `_exit(126)` if the exec fails.
/// Returns the child's pid. Callers must be single-threaded.
pub fn fork_traceme_exec(argv: &[CString]) -> Result<i32, SyscallError> {
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // Safety: single-threaded caller; the child only calls ptrace, execv and _exit on memory
    // prepared before the fork (`ptrs` points into `argv`, both alive in the child's copy).
    let pid = unsafe { libc::fork() };
    check("fork", pid.into())?;
    if pid == 0 {
        // Safety: as above.
        unsafe {
            libc::ptrace(libc::PTRACE_TRACEME, 0, std::ptr::null_mut::<libc::c_void>(), 0);
            libc::execv(ptrs[0], ptrs.as_ptr());
            libc::_exit(126);
        }
    }
    Ok(pid)
}

/// `waitpid(pid, __WALL)`: the raw wait status.
pub fn wait_status(pid: i32) -> Result<i32, SyscallError> {
    let mut status = 0;
    // Safety: `status` is a valid int to write.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
    check("waitpid", r.into())?;
    Ok(status)
}

/// `ptrace(PTRACE_CONT, pid, 0, sig)`.
pub fn ptrace_cont(pid: i32, sig: i32) -> Result<(), SyscallError> {
    // Safety: CONT takes no pointers; `sig` is passed as data.
    let r = unsafe { libc::ptrace(libc::PTRACE_CONT, pid, std::ptr::null_mut::<libc::c_void>(), sig) };
    check("ptrace(PTRACE_CONT)", r).map(drop)
}

/// `ptrace(PTRACE_ATTACH, pid)` without waiting (the fork race tries pids that may not exist).
pub fn ptrace_attach_nowait(pid: i32) -> Result<(), SyscallError> {
    // Safety: PTRACE_ATTACH takes no pointers.
    let r = unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, std::ptr::null_mut::<libc::c_void>(), 0) };
    check("ptrace(PTRACE_ATTACH)", r).map(drop)
}

/// `waitpid(pid, WNOHANG | __WALL)`: `Some(status)` once it changed state.
pub fn wait_nohang(pid: i32) -> Result<Option<i32>, SyscallError> {
    let mut status = 0;
    // Safety: `status` is a valid int to write.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG | libc::__WALL) };
    Ok((check("waitpid", r.into())? > 0).then_some(status))
}

/// `pread(fd, buf, 0)` on a raw fd this process does not own (a table shared with CLONE_FILES).
pub fn pread_fd(fd: RawFd, buf: &mut [u8]) -> Result<usize, SyscallError> {
    // Safety: `buf` is exclusively borrowed and writable for its length; a stale fd only errs.
    let r = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    Ok(check("pread", r as libc::c_long)? as usize)
}

/// `_exit(code)`: ends a forked child without running the parent's destructors or atexit.
pub fn exit_now(code: i32) -> ! {
    // Safety: _exit takes an int and does not return.
    unsafe { libc::_exit(code) }
}

/// One `getpid` system call (not glibc's wrapper, which has cached the pid in some versions):
/// the cheapest syscall, for the benchmark's syscall-path cost.
pub fn getpid_syscall() -> i64 {
    // Safety: no arguments, no memory.
    unsafe { libc::syscall(libc::SYS_getpid) }
}

/// Forks a child that waits until the returned pipe end is written to (or closed), then execs
/// `argv[0]` with `argv`; `_exit(126)` if the exec fails. Lets the parent act on the child (e.g.
/// attach perf events) before the exec. Callers must be single-threaded.
pub fn fork_gated_exec(argv: &[CString]) -> Result<(i32, OwnedFd), SyscallError> {
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let mut fds = [0; 2];
    // Safety: `fds` is a writable array of two ints.
    check("pipe2", unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }.into())?;
    // Safety: single-threaded caller; the child only calls read, execv and _exit on memory
    // prepared before the fork.
    let pid = unsafe { libc::fork() };
    check("fork", pid.into())?;
    if pid == 0 {
        let mut b = [0u8; 1];
        // Safety: as above; `b` is a writable byte.
        unsafe {
            libc::close(fds[1]);
            libc::read(fds[0], b.as_mut_ptr().cast(), 1);
            libc::execv(ptrs[0], ptrs.as_ptr());
            libc::_exit(126);
        }
    }
    // Safety: our read end, closed once; the write end is handed to the caller.
    unsafe { libc::close(fds[0]) };
    // Safety: the write end was just created by pipe2 and nothing else owns it.
    Ok((pid, unsafe { OwnedFd::from_raw_fd(fds[1]) }))
}

/// Drops `CAP_SYS_ADMIN` and `CAP_PERFMON` from this process's effective and permitted sets
/// (uid unchanged): a root process of an ordinary container, whose perf_event_open of another
/// process goes through the ptrace access check instead of skipping it as `perfmon_capable()`.
pub fn drop_perf_capabilities() -> Result<(), SyscallError> {
    // struct __user_cap_header_struct { u32 version; int pid; } with _LINUX_CAPABILITY_VERSION_3,
    // and two struct __user_cap_data_struct { u32 effective, permitted, inheritable; }.
    let mut header: [u32; 2] = [0x2008_0522, 0];
    let mut data = [0u32; 6];
    // Safety: `header` and `data` are the sizes capget(2) reads and writes for version 3.
    check("capget", unsafe { libc::syscall(libc::SYS_capget, header.as_mut_ptr(), data.as_mut_ptr()) })?;
    for i in [0, 1] {
        data[i] &= !(1 << 21); // CAP_SYS_ADMIN (word 0)
    }
    for i in [3, 4] {
        data[i] &= !(1 << (38 - 32)); // CAP_PERFMON (word 1)
    }
    // Safety: as above; capset only reads them.
    check("capset", unsafe { libc::syscall(libc::SYS_capset, header.as_mut_ptr(), data.as_ptr()) }).map(drop)
}

/// `creat(path, 0600)`: `open(path, O_CREAT|O_WRONLY|O_TRUNC)` through its own system call (and
/// its own tracepoint, `sys_exit_creat`). On `/proc/P/environ` root's creat opens the file
/// write-only (procfs ignores the truncation): an open the guard judges, never a read.
pub fn creat(path: &str) -> Result<OwnedFd, SyscallError> {
    let c = CString::new(path).map_err(|e| SyscallError { call: "creat", io_error: io::Error::other(e) })?;
    // Safety: `c` is a NUL-terminated string alive for the call.
    let r = unsafe { libc::syscall(libc::SYS_creat, c.as_ptr(), 0o600 as libc::c_uint) };
    let fd = check("creat", r)? as RawFd;
    // Safety: a new fd the kernel installed for us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `name_to_handle_at(AT_FDCWD, path)`, then `open_by_handle_at(mount_fd, handle, O_RDONLY)`:
/// the opening path by file handle. procfs exports no file handles, so the first call fails
/// with EOPNOTSUPP and the kernel closes the path.
pub fn open_by_handle(path: &str, mount_fd: BorrowedFd) -> Result<OwnedFd, SyscallError> {
    let c =
        CString::new(path).map_err(|e| SyscallError { call: "name_to_handle_at", io_error: io::Error::other(e) })?;
    // struct file_handle { u32 handle_bytes; i32 handle_type; u8 f_handle[]; }, 128 bytes of
    // handle (MAX_HANDLE_SZ), u32-aligned.
    let mut h = [0u32; 2 + 32];
    h[0] = 128;
    let mut mount_id: libc::c_int = 0;
    // Safety: `c` is NUL-terminated, `h` a file_handle with room for handle_bytes, `mount_id`
    // an int, all alive for the call.
    let r = unsafe {
        libc::syscall(libc::SYS_name_to_handle_at, libc::AT_FDCWD, c.as_ptr(), h.as_mut_ptr(), &mut mount_id, 0)
    };
    check("name_to_handle_at", r)?;
    // Safety: `h` holds the handle the kernel filled in; `mount_fd` is open.
    let r = unsafe {
        libc::syscall(libc::SYS_open_by_handle_at, mount_fd.as_raw_fd(), h.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC)
    };
    let fd = check("open_by_handle_at", r)? as RawFd;
    // Safety: a new fd the kernel installed for us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `unshare(CLONE_NEWPID)`: this process's next children start in a new pid namespace.
pub fn unshare_pid() -> Result<(), SyscallError> {
    // Safety: integer flag argument only.
    let r = unsafe { libc::unshare(libc::CLONE_NEWPID) };
    check("unshare(CLONE_NEWPID)", r.into()).map(drop)
}

/// `setns(fd, CLONE_NEWPID)`: this process's next children start in the pid namespace of `fd`.
pub fn setns_pid(fd: BorrowedFd) -> Result<(), SyscallError> {
    // Safety: `fd` is an open namespace file; integer flag.
    let r = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWPID) };
    check("setns(CLONE_NEWPID)", r.into()).map(drop)
}

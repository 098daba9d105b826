//! Rust mirrors of the layouts in `bpf/guard.h`, asserted at compile time against the sizes and
//! offsets that `bpf/layout.c` printed (build.rs), and decoding of ring-buffer records.
//!
//! Decoding is safe code reading fixed offsets: a short or malformed record is `None`.

/// Constants printed from `guard.h` by `bpf/layout.c`.
#[cfg(hush_bpf)]
#[allow(dead_code, reason = "every constant is printed; only some are asserted")]
pub mod c {
    include!(concat!(env!("OUT_DIR"), "/layout.rs"));
}

/// Length of `comm` fields (`HUSH_COMM_LEN`).
pub const COMM_LEN: usize = 16;

/// Indexes of the pinned `hush_stats` array (`enum hush_stat`; cumulative since the maps were
/// pinned, across guard restarts).
pub const STAT_RINGBUF_FULL: u32 = 0;
pub const STAT_MAP_FULL: u32 = 1;
/// The protect/release part of [`STAT_RINGBUF_FULL`].
pub const STAT_RINGBUF_FULL_LIFECYCLE: u32 = 2;

/// `struct hush_proc`: one side (reader or target) of an event.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub pad: u32,
    pub cgroup_id: u64,
    pub comm: [u8; COMM_LEN],
}

/// `struct hush_event`: one ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    pub boot_ns: u64,
    pub reader: Proc,
    pub target: Proc,
    pub hook: u32,
    pub what: u32,
    pub action: u32,
    pub syscall: i32,
}

/// `struct hush_protected`: value of the pinned `hush_protected` map (key: global tgid).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Protected {
    pub since_boot_ns: u64,
    pub registered_tgid: u32,
    /// `HUSH_PROTECTED_DOOMED`: registered past `--max-protected`, killed on its return from fork.
    pub flags: u32,
}

/// `struct hush_vpid_key`: key of the pinned `hush_vpids` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VpidKey {
    pub ns_inum: u32,
    pub vpid: u32,
}

/// `HUSH_MAX_PID_LEVELS`: the deepest pid-namespace nesting indexed.
pub const MAX_PID_LEVELS: usize = 4;

/// `struct hush_tid_keys`: value of the pinned `hush_tids` map (key: a protected thread's global
/// tid): the `hush_vpids` keys that thread is indexed under.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TidKeys {
    pub keys: [VpidKey; MAX_PID_LEVELS],
    pub n: u32,
    pub pad: u32,
}

#[cfg(hush_bpf)]
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(c::HUSH_MAX_PID_LEVELS as usize == MAX_PID_LEVELS);
    assert!(size_of::<TidKeys>() == c::SIZEOF_HUSH_TID_KEYS);
    assert!(offset_of!(TidKeys, keys) == c::OFFSETOF_HUSH_TID_KEYS_KEYS);
    assert!(offset_of!(TidKeys, n) == c::OFFSETOF_HUSH_TID_KEYS_N);
    assert!(c::HUSH_COMM_LEN as usize == COMM_LEN);
    assert!(size_of::<Proc>() == c::SIZEOF_HUSH_PROC);
    assert!(offset_of!(Proc, pid) == c::OFFSETOF_HUSH_PROC_PID);
    assert!(offset_of!(Proc, tgid) == c::OFFSETOF_HUSH_PROC_TGID);
    assert!(offset_of!(Proc, uid) == c::OFFSETOF_HUSH_PROC_UID);
    assert!(offset_of!(Proc, cgroup_id) == c::OFFSETOF_HUSH_PROC_CGROUP_ID);
    assert!(offset_of!(Proc, comm) == c::OFFSETOF_HUSH_PROC_COMM);
    assert!(size_of::<Event>() == c::SIZEOF_HUSH_EVENT);
    assert!(offset_of!(Event, boot_ns) == c::OFFSETOF_HUSH_EVENT_BOOT_NS);
    assert!(offset_of!(Event, reader) == c::OFFSETOF_HUSH_EVENT_READER);
    assert!(offset_of!(Event, target) == c::OFFSETOF_HUSH_EVENT_TARGET);
    assert!(offset_of!(Event, hook) == c::OFFSETOF_HUSH_EVENT_HOOK);
    assert!(offset_of!(Event, what) == c::OFFSETOF_HUSH_EVENT_WHAT);
    assert!(offset_of!(Event, action) == c::OFFSETOF_HUSH_EVENT_ACTION);
    assert!(offset_of!(Event, syscall) == c::OFFSETOF_HUSH_EVENT_SYSCALL);
    assert!(size_of::<Protected>() == c::SIZEOF_HUSH_PROTECTED);
    assert!(offset_of!(Protected, since_boot_ns) == c::OFFSETOF_HUSH_PROTECTED_SINCE_BOOT_NS);
    assert!(offset_of!(Protected, registered_tgid) == c::OFFSETOF_HUSH_PROTECTED_REGISTERED_TGID);
    assert!(offset_of!(Protected, flags) == c::OFFSETOF_HUSH_PROTECTED_FLAGS);
    assert!(c::HUSH_PROTECTED_DOOMED == PROTECTED_DOOMED);
    assert!(size_of::<VpidKey>() == c::SIZEOF_HUSH_VPID_KEY);
    assert!(offset_of!(VpidKey, ns_inum) == c::OFFSETOF_HUSH_VPID_KEY_NS_INUM);
    assert!(offset_of!(VpidKey, vpid) == c::OFFSETOF_HUSH_VPID_KEY_VPID);
    // Enum values used by `audit` must be the ones the BPF side writes.
    assert!(c::HUSH_HOOK_SYS_EXIT_OPEN == Hook::SysExitOpen as u32);
    assert!(c::HUSH_HOOK_SYS_ENTER_PTRACE == Hook::SysEnterPtrace as u32);
    assert!(c::HUSH_HOOK_SYS_ENTER_VM_RW == Hook::SysEnterVmRw as u32);
    assert!(c::HUSH_HOOK_SYS_ENTER_PIDFD_GETFD == Hook::SysEnterPidfdGetfd as u32);
    assert!(c::HUSH_HOOK_LSM_FILE_OPEN == Hook::LsmFileOpen as u32);
    assert!(c::HUSH_HOOK_LSM_PTRACE_ACCESS == Hook::LsmPtraceAccess as u32);
    assert!(c::HUSH_HOOK_SCHED_EXEC == Hook::SchedExec as u32);
    assert!(c::HUSH_HOOK_SCHED_EXIT == Hook::SchedExit as u32);
    assert!(c::HUSH_HOOK_RAW_SYS_ENTER == Hook::RawSysEnter as u32);
    assert!(c::HUSH_HOOK_RAW_SYS_EXIT == Hook::RawSysExit as u32);
    assert!(c::HUSH_HOOK_SYS_EXIT_PTRACE == Hook::SysExitPtrace as u32);
    assert!(c::HUSH_HOOK_SYS_ENTER_PERF == Hook::SysEnterPerf as u32);
    assert!(c::HUSH_HOOK_SYS_ENTER_IO_URING == Hook::SysEnterIoUring as u32);
    assert!(c::HUSH_HOOK_LSM_FOLLOW_LINK == Hook::LsmFollowLink as u32);
    assert!(c::HUSH_HOOK_LSM_BPRM_CHECK == Hook::LsmBprmCheck as u32);
    assert!(c::HUSH_HOOK_FENTRY_FILE_OPEN == Hook::FentryFileOpen as u32);
    assert!(c::HUSH_HOOK_FENTRY_PTRACE_ACCESS == Hook::FentryPtraceAccess as u32);
    assert!(c::HUSH_HOOK_FENTRY_FOLLOW_LINK == Hook::FentryFollowLink as u32);
    assert!(c::HUSH_HOOK_LSM_TASK_ALLOC == Hook::LsmTaskAlloc as u32);
    assert!(c::HUSH_HOOK_FENTRY_TASK_ALLOC == Hook::FentryTaskAlloc as u32);
    assert!(c::HUSH_HOOK_SCHED_FORK == Hook::SchedFork as u32);
    assert!(c::HUSH_WHAT_ENVIRON == What::Environ as u32);
    assert!(c::HUSH_WHAT_MEM == What::Mem as u32);
    assert!(c::HUSH_WHAT_PTRACE == What::Ptrace as u32);
    assert!(c::HUSH_WHAT_VM_READ == What::VmRead as u32);
    assert!(c::HUSH_WHAT_VM_WRITE == What::VmWrite as u32);
    assert!(c::HUSH_WHAT_PIDFD_GETFD == What::PidfdGetfd as u32);
    assert!(c::HUSH_WHAT_ATTACH == What::Attach as u32);
    assert!(c::HUSH_WHAT_PROTECT == What::Protect as u32);
    assert!(c::HUSH_WHAT_RELEASE == What::Release as u32);
    assert!(c::HUSH_WHAT_FD_LINK == What::FdLink as u32);
    assert!(c::HUSH_WHAT_PERF == What::Perf as u32);
    assert!(c::HUSH_WHAT_IO_URING_SETUP == What::IoUringSetup as u32);
    assert!(c::HUSH_WHAT_TRACED_EXEC == What::TracedExec as u32);
    assert!(c::HUSH_WHAT_PERF_EXEC == What::PerfExec as u32);
    assert!(c::HUSH_WHAT_PROTECTED_SET_FULL == What::ProtectedSetFull as u32);
    assert!(c::HUSH_WHAT_COMPAT_SYSCALL == What::CompatSyscall as u32);
    assert!(c::HUSH_ACTION_DENIED == Action::Denied as u32);
    assert!(c::HUSH_ACTION_KILLED == Action::Killed as u32);
    assert!(c::HUSH_ACTION_AUDITED == Action::Audited as u32);
    assert!(c::HUSH_ACTION_ALLOWED == Action::Allowed as u32);
    assert!(c::HUSH_ACTION_PROTECTED == Action::Protected as u32);
    assert!(c::HUSH_ACTION_RELEASED == Action::Released as u32);
    assert!(c::HUSH_ACTION_EXPOSED == Action::Exposed as u32);
    assert!(c::HUSH_SYSCALL_IA32 == SYSCALL_IA32);
    assert!(c::HUSH_TARGET_IN_CREATION == TARGET_IN_CREATION);
    assert!(c::HUSH_MODE_AUDIT == 0 && c::HUSH_MODE_ENFORCE == 1);
    assert!(c::HUSH_STAT_RINGBUF_FULL == STAT_RINGBUF_FULL && c::HUSH_STAT_MAP_FULL == STAT_MAP_FULL);
    assert!(c::HUSH_STAT_RINGBUF_FULL_LIFECYCLE == STAT_RINGBUF_FULL_LIFECYCLE && c::HUSH_STAT_MAX == 3);
};

/// `enum hush_hook`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    SysExitOpen = 1,
    SysEnterPtrace = 2,
    SysEnterVmRw = 3,
    SysEnterPidfdGetfd = 4,
    LsmFileOpen = 5,
    LsmPtraceAccess = 6,
    SchedExec = 7,
    SchedExit = 8,
    RawSysEnter = 9,
    RawSysExit = 10,
    SysExitPtrace = 11,
    SysEnterPerf = 12,
    SysEnterIoUring = 13,
    LsmFollowLink = 14,
    LsmBprmCheck = 15,
    FentryFileOpen = 16,
    FentryPtraceAccess = 17,
    FentryFollowLink = 18,
    LsmTaskAlloc = 19,
    FentryTaskAlloc = 20,
    SchedFork = 21,
}

/// `HUSH_PROTECTED_DOOMED` in [`Protected::flags`].
pub const PROTECTED_DOOMED: u32 = 1;

/// `HUSH_SYSCALL_IA32`: marks an event's syscall number as i386 (int $0x80, sysenter).
pub const SYSCALL_IA32: u32 = 0x1000_0000;
/// `HUSH_TARGET_IN_CREATION` in an event target's `pad`: caught while still being created (the
/// fork window).
pub const TARGET_IN_CREATION: u32 = 1;
/// The kernel's `__X32_SYSCALL_BIT`: x32 syscall numbers carry it.
pub const SYSCALL_X32: u32 = 0x4000_0000;

/// `enum hush_what`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    Environ = 1,
    Mem = 2,
    Ptrace = 3,
    VmRead = 4,
    VmWrite = 5,
    PidfdGetfd = 6,
    Attach = 7,
    Protect = 8,
    Release = 9,
    FdLink = 10,
    Perf = 11,
    IoUringSetup = 12,
    TracedExec = 13,
    PerfExec = 14,
    ProtectedSetFull = 15,
    CompatSyscall = 16,
}

/// `enum hush_action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Denied = 1,
    Killed = 2,
    Audited = 3,
    Allowed = 4,
    Protected = 5,
    Released = 6,
    Exposed = 7,
}

impl Hook {
    pub fn from_u32(v: u32) -> Option<Self> {
        use Hook::*;
        [
            SysExitOpen,
            SysEnterPtrace,
            SysEnterVmRw,
            SysEnterPidfdGetfd,
            LsmFileOpen,
            LsmPtraceAccess,
            SchedExec,
            SchedExit,
            RawSysEnter,
            RawSysExit,
            SysExitPtrace,
            SysEnterPerf,
            SysEnterIoUring,
            LsmFollowLink,
            LsmBprmCheck,
            FentryFileOpen,
            FentryPtraceAccess,
            FentryFollowLink,
            LsmTaskAlloc,
            FentryTaskAlloc,
            SchedFork,
        ]
        .into_iter()
        .find(|h| *h as u32 == v)
    }

    pub fn name(self) -> &'static str {
        match self {
            Hook::SysExitOpen => "tracepoint/sys_exit_open",
            Hook::SysEnterPtrace => "tracepoint/sys_enter_ptrace",
            Hook::SysEnterVmRw => "tracepoint/sys_enter_process_vm_rw",
            Hook::SysEnterPidfdGetfd => "tracepoint/sys_enter_pidfd_getfd",
            Hook::LsmFileOpen => "lsm/file_open",
            Hook::LsmPtraceAccess => "lsm/ptrace_access_check",
            Hook::SchedExec => "tracepoint/sched_process_exec",
            Hook::SchedExit => "tracepoint/sched_process_exit",
            Hook::RawSysEnter => "raw_tp/sys_enter",
            Hook::RawSysExit => "raw_tp/sys_exit",
            Hook::SysExitPtrace => "tracepoint/sys_exit_ptrace",
            Hook::SysEnterPerf => "tracepoint/sys_enter_perf_event_open",
            Hook::SysEnterIoUring => "tracepoint/sys_enter_io_uring_setup",
            Hook::LsmFollowLink => "lsm/inode_follow_link",
            Hook::LsmBprmCheck => "lsm/bprm_check_security",
            Hook::FentryFileOpen => "fentry/security_file_open",
            Hook::FentryPtraceAccess => "fentry/security_ptrace_access_check",
            Hook::FentryFollowLink => "fentry/security_inode_follow_link",
            Hook::LsmTaskAlloc => "lsm/task_alloc",
            Hook::FentryTaskAlloc => "fentry/security_task_alloc",
            Hook::SchedFork => "raw_tp/sched_process_fork",
        }
    }
}

impl What {
    pub fn from_u32(v: u32) -> Option<Self> {
        use What::*;
        [
            Environ,
            Mem,
            Ptrace,
            VmRead,
            VmWrite,
            PidfdGetfd,
            Attach,
            Protect,
            Release,
            FdLink,
            Perf,
            IoUringSetup,
            TracedExec,
            PerfExec,
            ProtectedSetFull,
            CompatSyscall,
        ]
        .into_iter()
        .find(|w| *w as u32 == v)
    }

    pub fn name(self) -> &'static str {
        match self {
            What::Environ => "open environ",
            What::Mem => "open mem",
            What::Ptrace => "ptrace attach",
            What::VmRead => "process_vm_readv",
            What::VmWrite => "process_vm_writev",
            What::PidfdGetfd => "pidfd_getfd",
            What::Attach => "ptrace attach access",
            What::Protect => "protect",
            What::Release => "release",
            What::FdLink => "open fd link",
            What::Perf => "perf_event_open",
            What::IoUringSetup => "io_uring_setup",
            What::TracedExec => "exec of the shim while traced",
            What::PerfExec => "exec of the shim while perf-monitored",
            What::ProtectedSetFull => "protected_set_full",
            What::CompatSyscall => "32-bit syscall",
        }
    }
}

impl Action {
    pub fn from_u32(v: u32) -> Option<Self> {
        use Action::*;
        [Denied, Killed, Audited, Allowed, Protected, Released, Exposed].into_iter().find(|a| *a as u32 == v)
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::Denied => "denied",
            Action::Killed => "killed",
            Action::Audited => "audited",
            Action::Allowed => "allowed",
            Action::Protected => "protected",
            Action::Released => "released",
            Action::Exposed => "exposed",
        }
    }

    /// Lifecycle records (registration, release) rather than attempts.
    pub fn is_lifecycle(self) -> bool {
        matches!(self, Action::Protected | Action::Released)
    }
}

const PROC_SIZE: usize = 40;
const EVENT_SIZE: usize = 8 + 2 * PROC_SIZE + 16;

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

impl Proc {
    fn decode(b: &[u8]) -> Option<Self> {
        Some(Proc {
            pid: u32_at(b, 0)?,
            tgid: u32_at(b, 4)?,
            uid: u32_at(b, 8)?,
            pad: u32_at(b, 12)?,
            cgroup_id: u64_at(b, 16)?,
            comm: b.get(24..24 + COMM_LEN)?.try_into().ok()?,
        })
    }

    /// `comm` up to its first NUL, lossily decoded.
    pub fn comm(&self) -> String {
        let end = self.comm.iter().position(|&c| c == 0).unwrap_or(COMM_LEN);
        String::from_utf8_lossy(&self.comm[..end]).into_owned()
    }
}

impl Event {
    /// Decodes one ring-buffer record; `None` unless it is exactly one `struct hush_event`.
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != EVENT_SIZE {
            return None;
        }
        Some(Event {
            boot_ns: u64_at(b, 0)?,
            reader: Proc::decode(b.get(8..8 + PROC_SIZE)?)?,
            target: Proc::decode(b.get(8 + PROC_SIZE..8 + 2 * PROC_SIZE)?)?,
            hook: u32_at(b, 88)?,
            what: u32_at(b, 92)?,
            action: u32_at(b, 96)?,
            syscall: u32_at(b, 100)? as i32,
        })
    }

    /// Encodes like the BPF side does (used by tests and the decoder's round trip).
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(EVENT_SIZE);
        v.extend_from_slice(&self.boot_ns.to_ne_bytes());
        for p in [&self.reader, &self.target] {
            for x in [p.pid, p.tgid, p.uid, p.pad] {
                v.extend_from_slice(&x.to_ne_bytes());
            }
            v.extend_from_slice(&p.cgroup_id.to_ne_bytes());
            v.extend_from_slice(&p.comm);
        }
        for x in [self.hook, self.what, self.action, self.syscall as u32] {
            v.extend_from_slice(&x.to_ne_bytes());
        }
        v
    }
}

#[cfg(hush_bpf)]
const _: () = {
    assert!(PROC_SIZE == c::SIZEOF_HUSH_PROC);
    assert!(EVENT_SIZE == c::SIZEOF_HUSH_EVENT);
    assert!(c::OFFSETOF_HUSH_EVENT_HOOK == 88);
    assert!(c::OFFSETOF_HUSH_EVENT_WHAT == 92);
    assert!(c::OFFSETOF_HUSH_EVENT_ACTION == 96);
    assert!(c::OFFSETOF_HUSH_EVENT_SYSCALL == 100);
};

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        let mut comm = [0u8; COMM_LEN];
        comm[..3].copy_from_slice(b"cat");
        Event {
            boot_ns: 123,
            reader: Proc { pid: 10, tgid: 10, uid: 0, pad: 0, cgroup_id: 77, comm },
            target: Proc { pid: 20, tgid: 20, uid: 1000, pad: 0, cgroup_id: 88, comm: *b"sleep\0\0\0\0\0\0\0\0\0\0\0" },
            hook: Hook::SysExitOpen as u32,
            what: What::Environ as u32,
            action: Action::Killed as u32,
            syscall: 257,
        }
    }

    #[test]
    fn decode_round_trips_encode() {
        let e = sample();
        let bytes = e.encode();
        assert_eq!(bytes.len(), core::mem::size_of::<Event>());
        assert_eq!(Event::decode(&bytes), Some(e));
    }

    #[test]
    fn decode_rejects_wrong_length() {
        let bytes = sample().encode();
        assert_eq!(Event::decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(Event::decode(&[bytes.clone(), vec![0]].concat()), None);
        assert_eq!(Event::decode(&[]), None);
    }

    #[test]
    fn comm_stops_at_nul_and_tolerates_full_width() {
        assert_eq!(sample().reader.comm(), "cat");
        let p = Proc { comm: *b"abcdefghijklmnop", ..Proc::default() };
        assert_eq!(p.comm(), "abcdefghijklmnop");
    }

    #[test]
    fn enums_round_trip_and_reject_unknown() {
        for v in 0..40 {
            if let Some(h) = Hook::from_u32(v) {
                assert_eq!(h as u32, v);
            }
            if let Some(w) = What::from_u32(v) {
                assert_eq!(w as u32, v);
            }
            if let Some(a) = Action::from_u32(v) {
                assert_eq!(a as u32, v);
            }
        }
        assert_eq!(Hook::from_u32(0), None);
        assert_eq!(What::from_u32(17), None);
        assert_eq!(What::from_u32(15), Some(What::ProtectedSetFull));
        assert_eq!(What::from_u32(16), Some(What::CompatSyscall));
        assert_eq!(Action::from_u32(8), None);
        assert!(Action::Protected.is_lifecycle() && !Action::Killed.is_lifecycle());
    }
}

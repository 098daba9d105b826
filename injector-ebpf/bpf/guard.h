/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one definition of every layout shared between the BPF programs (guard.bpf.c) and the
 * guard's user space (src/maps.rs). build.rs compiles layout.c against this header and the
 * Rust side asserts its #[repr(C)] mirrors against the sizes and offsets it prints.
 *
 * Included by BPF code (types from vmlinux_min.h) and by host C (types from <linux/types.h>).
 */
#ifndef HUSH_GUARD_H
#define HUSH_GUARD_H

#define HUSH_COMM_LEN 16
/* Deepest pid namespace nesting whose numbers are indexed in `protected_vpids`. */
#define HUSH_MAX_PID_LEVELS 4

/* Which program saw the attempt (`hook` in the audit line). */
enum hush_hook {
	HUSH_HOOK_SYS_EXIT_OPEN = 1,	 /* tracepoint syscalls/sys_exit_open{,at,at2} */
	HUSH_HOOK_SYS_ENTER_PTRACE = 2,	 /* tracepoint syscalls/sys_enter_ptrace */
	HUSH_HOOK_SYS_ENTER_VM_RW = 3,	 /* tracepoint syscalls/sys_enter_process_vm_{readv,writev} */
	HUSH_HOOK_SYS_ENTER_PIDFD_GETFD = 4, /* tracepoint syscalls/sys_enter_pidfd_getfd */
	HUSH_HOOK_LSM_FILE_OPEN = 5,	 /* lsm/file_open */
	HUSH_HOOK_LSM_PTRACE_ACCESS = 6, /* lsm/ptrace_access_check (ATTACH mode only) */
	HUSH_HOOK_SCHED_EXEC = 7,	 /* registration: tracepoint sched/sched_process_exec */
	HUSH_HOOK_SCHED_EXIT = 8,	 /* release: tracepoint sched/sched_process_exit */
	HUSH_HOOK_RAW_SYS_ENTER = 9,	 /* raw_tp/sys_enter: 32-bit (int $0x80, sysenter) and x32 syscalls */
	HUSH_HOOK_RAW_SYS_EXIT = 10,	 /* raw_tp/sys_exit: the same ABIs' opens and ptrace (--allow-32bit) */
	HUSH_HOOK_SYS_EXIT_PTRACE = 11,	 /* tracepoint syscalls/sys_exit_ptrace: the newest tracee */
	HUSH_HOOK_SYS_ENTER_PERF = 12,	 /* tracepoint syscalls/sys_enter_perf_event_open */
	HUSH_HOOK_SYS_ENTER_IO_URING = 13, /* tracepoint syscalls/sys_enter_io_uring_setup */
	HUSH_HOOK_LSM_FOLLOW_LINK = 14,	 /* lsm/inode_follow_link: /proc/<pid>/fd/N, map_files/ */
	HUSH_HOOK_LSM_BPRM_CHECK = 15,	 /* lsm/bprm_check_security: exec of the shim while traced */
	HUSH_HOOK_FENTRY_FILE_OPEN = 16, /* fentry/security_file_open */
	HUSH_HOOK_FENTRY_PTRACE_ACCESS = 17, /* fentry/security_ptrace_access_check */
	HUSH_HOOK_FENTRY_FOLLOW_LINK = 18, /* fentry/security_inode_follow_link */
	HUSH_HOOK_LSM_TASK_ALLOC = 19,	 /* lsm/task_alloc: a fork by a protected process */
	HUSH_HOOK_FENTRY_TASK_ALLOC = 20, /* fentry/security_task_alloc */
	HUSH_HOOK_SCHED_FORK = 21,	 /* registration of a child: raw_tp/sched_process_fork */
};

/* What was attempted on the target. */
enum hush_what {
	HUSH_WHAT_ENVIRON = 1,	   /* open of /proc/<pid>/environ (any path to it) */
	HUSH_WHAT_MEM = 2,	   /* open of /proc/<pid>/mem (any path to it) */
	HUSH_WHAT_PTRACE = 3,	   /* ptrace attach or seize */
	HUSH_WHAT_VM_READ = 4,	   /* process_vm_readv */
	HUSH_WHAT_VM_WRITE = 5,	   /* process_vm_writev */
	HUSH_WHAT_PIDFD_GETFD = 6, /* pidfd_getfd */
	HUSH_WHAT_ATTACH = 7,	   /* LSM: a PTRACE_MODE_ATTACH access check (ptrace, vm_rw, getfd, mem) */
	HUSH_WHAT_PROTECT = 8,	   /* registration: the process exec'd the shim */
	HUSH_WHAT_RELEASE = 9,	   /* the protected thread group exited */
	HUSH_WHAT_FD_LINK = 10,	   /* open through /proc/<pid>/fd/N or map_files/ (the app's own files) */
	HUSH_WHAT_PERF = 11,	   /* perf_event_open on the target (samples carry its stack) */
	HUSH_WHAT_IO_URING_SETUP = 12, /* io_uring_setup (tracepoint mode cannot see io_uring's opens) */
	HUSH_WHAT_TRACED_EXEC = 13,  /* exec of the shim by a ptraced process */
	HUSH_WHAT_PERF_EXEC = 14,    /* exec of the shim with perf events attached to the process */
	HUSH_WHAT_PROTECTED_SET_FULL = 15, /* registration failed (the protected set is at --max-protected,
					    * or a map is full): the exec or fork is refused or killed */
	HUSH_WHAT_COMPAT_SYSCALL = 16, /* tracepoint mode: a 32-bit or x32 syscall (refused unless
					* --allow-32bit: only raw_tp/sys_enter would see it) */
};

enum hush_action {
	HUSH_ACTION_DENIED = 1,	   /* LSM returned -EPERM */
	HUSH_ACTION_KILLED = 2,	   /* tracepoint sent SIGKILL to the reader */
	HUSH_ACTION_AUDITED = 3,   /* audit mode: logged only */
	HUSH_ACTION_ALLOWED = 4,   /* reader is allowlisted: logged only */
	HUSH_ACTION_PROTECTED = 5, /* lifecycle: registration */
	HUSH_ACTION_RELEASED = 6,  /* lifecycle: exit */
	HUSH_ACTION_EXPOSED = 7,   /* reader SIGKILLed, but it shares its fd table with another
				    * process that may still read through the new fd: treat as read */
};

/* `syscall` of an event from a 32-bit (int $0x80/sysenter) task: the i386 number with this bit;
 * x32 numbers keep the kernel's __X32_SYSCALL_BIT (0x40000000). */
#define HUSH_SYSCALL_IA32 0x10000000

/* `_pad` of an event's target: it was caught while still being created (TASK_NEW, its pid
 * already visible in /proc, before sched_process_fork): the fork window. */
#define HUSH_TARGET_IN_CREATION 1

/* Values of the `mode` rodata constant. */
enum hush_mode {
	HUSH_MODE_AUDIT = 0,
	HUSH_MODE_ENFORCE = 1,
};

struct hush_proc {
	__u32 pid; /* thread id, global */
	__u32 tgid; /* process id, global */
	__u32 uid;
	__u32 _pad; /* target only: HUSH_TARGET_IN_CREATION */
	__u64 cgroup_id; /* cgroup v2 id (kernfs inode number) */
	char comm[HUSH_COMM_LEN];
};

/* Ring buffer record: one per attempt (and per registration/release). */
struct hush_event {
	__u64 boot_ns; /* bpf_ktime_get_boot_ns() */
	struct hush_proc reader;
	struct hush_proc target;
	__u32 hook;    /* enum hush_hook */
	__u32 what;    /* enum hush_what */
	__u32 action;  /* enum hush_action */
	__s32 syscall; /* syscall number of the reader (x86_64), -1 if unknown */
};

/* `flags` of a protected entry: registered beyond --max-protected (in the map's headroom, so
 * protected) and to be SIGKILLed on its return from fork, before its first instruction. */
#define HUSH_PROTECTED_DOOMED 1

/* Value of `protected_tgids`, keyed by global tgid. */
struct hush_protected {
	__u64 since_boot_ns;
	__u32 registered_tgid; /* tgid that exec'd the shim (itself, or the forking ancestor's) */
	__u32 flags;	       /* HUSH_PROTECTED_DOOMED */
};

/* Key of `protected_vpids`: a thread's number in one pid namespace; value: its global tgid. */
struct hush_vpid_key {
	__u32 ns_inum;
	__u32 vpid;
};

/* Value of `hush_tids`, keyed by a protected thread's global tid: the `hush_vpids` keys it was
 * indexed under, so they can be removed by tid (a thread that execs from outside the group
 * leader gives up its own tid for the leader's, and its pid struct goes with the old leader). */
struct hush_tid_keys {
	struct hush_vpid_key keys[HUSH_MAX_PID_LEVELS];
	__u32 n;
	__u32 _pad;
};

/* Indexes into the `stats` array. */
enum hush_stat {
	HUSH_STAT_RINGBUF_FULL = 0,	      /* events lost because the ring buffer was full */
	HUSH_STAT_MAP_FULL = 1,		      /* registrations refused or killed: a map full or --max-protected reached */
	HUSH_STAT_RINGBUF_FULL_LIFECYCLE = 2, /* the part of RINGBUF_FULL that were protect/release */
	HUSH_STAT_MAX = 3,
};

#endif

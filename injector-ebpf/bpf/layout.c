/* SPDX-License-Identifier: Apache-2.0 */
/* Host program run by build.rs: prints guard.h's layouts and constants as Rust constants, which
 * src/maps.rs asserts its #[repr(C)] mirrors against. */
#include <linux/types.h>
#include <stddef.h>
#include <stdio.h>
#include "guard.h"

#define SIZE(t) printf("pub const SIZEOF_%s: usize = %zu;\n", #t, sizeof(struct t))
#define OFF(t, f) printf("pub const OFFSETOF_%s_%s: usize = %zu;\n", #t, #f, offsetof(struct t, f))
#define VAL(c) printf("pub const %s: u32 = %u;\n", #c, (unsigned)(c))

int main(void)
{
	SIZE(hush_proc);
	OFF(hush_proc, pid);
	OFF(hush_proc, tgid);
	OFF(hush_proc, uid);
	OFF(hush_proc, cgroup_id);
	OFF(hush_proc, comm);
	SIZE(hush_event);
	OFF(hush_event, boot_ns);
	OFF(hush_event, reader);
	OFF(hush_event, target);
	OFF(hush_event, hook);
	OFF(hush_event, what);
	OFF(hush_event, action);
	OFF(hush_event, syscall);
	SIZE(hush_protected);
	OFF(hush_protected, since_boot_ns);
	OFF(hush_protected, registered_tgid);
	OFF(hush_protected, flags);
	SIZE(hush_vpid_key);
	OFF(hush_vpid_key, ns_inum);
	OFF(hush_vpid_key, vpid);
	SIZE(hush_tid_keys);
	OFF(hush_tid_keys, keys);
	OFF(hush_tid_keys, n);
	VAL(HUSH_MAX_PID_LEVELS);
	VAL(HUSH_COMM_LEN);
	VAL(HUSH_HOOK_SYS_EXIT_OPEN);
	VAL(HUSH_HOOK_SYS_ENTER_PTRACE);
	VAL(HUSH_HOOK_SYS_ENTER_VM_RW);
	VAL(HUSH_HOOK_SYS_ENTER_PIDFD_GETFD);
	VAL(HUSH_HOOK_LSM_FILE_OPEN);
	VAL(HUSH_HOOK_LSM_PTRACE_ACCESS);
	VAL(HUSH_HOOK_SCHED_EXEC);
	VAL(HUSH_HOOK_SCHED_EXIT);
	VAL(HUSH_HOOK_RAW_SYS_ENTER);
	VAL(HUSH_HOOK_RAW_SYS_EXIT);
	VAL(HUSH_HOOK_SYS_EXIT_PTRACE);
	VAL(HUSH_HOOK_SYS_ENTER_PERF);
	VAL(HUSH_HOOK_SYS_ENTER_IO_URING);
	VAL(HUSH_HOOK_LSM_FOLLOW_LINK);
	VAL(HUSH_HOOK_LSM_BPRM_CHECK);
	VAL(HUSH_HOOK_FENTRY_FILE_OPEN);
	VAL(HUSH_HOOK_FENTRY_PTRACE_ACCESS);
	VAL(HUSH_HOOK_FENTRY_FOLLOW_LINK);
	VAL(HUSH_HOOK_LSM_TASK_ALLOC);
	VAL(HUSH_HOOK_FENTRY_TASK_ALLOC);
	VAL(HUSH_HOOK_SCHED_FORK);
	VAL(HUSH_WHAT_ENVIRON);
	VAL(HUSH_WHAT_MEM);
	VAL(HUSH_WHAT_PTRACE);
	VAL(HUSH_WHAT_VM_READ);
	VAL(HUSH_WHAT_VM_WRITE);
	VAL(HUSH_WHAT_PIDFD_GETFD);
	VAL(HUSH_WHAT_ATTACH);
	VAL(HUSH_WHAT_PROTECT);
	VAL(HUSH_WHAT_RELEASE);
	VAL(HUSH_WHAT_FD_LINK);
	VAL(HUSH_WHAT_PERF);
	VAL(HUSH_WHAT_IO_URING_SETUP);
	VAL(HUSH_WHAT_TRACED_EXEC);
	VAL(HUSH_WHAT_PERF_EXEC);
	VAL(HUSH_WHAT_PROTECTED_SET_FULL);
	VAL(HUSH_WHAT_COMPAT_SYSCALL);
	VAL(HUSH_PROTECTED_DOOMED);
	VAL(HUSH_ACTION_DENIED);
	VAL(HUSH_ACTION_KILLED);
	VAL(HUSH_ACTION_AUDITED);
	VAL(HUSH_ACTION_ALLOWED);
	VAL(HUSH_ACTION_PROTECTED);
	VAL(HUSH_ACTION_RELEASED);
	VAL(HUSH_ACTION_EXPOSED);
	VAL(HUSH_SYSCALL_IA32);
	VAL(HUSH_TARGET_IN_CREATION);
	VAL(HUSH_MODE_AUDIT);
	VAL(HUSH_MODE_ENFORCE);
	VAL(HUSH_STAT_RINGBUF_FULL);
	VAL(HUSH_STAT_MAP_FULL);
	VAL(HUSH_STAT_RINGBUF_FULL_LIFECYCLE);
	VAL(HUSH_STAT_MAX);
	return 0;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * Hush guard: keeps /proc/<pid>/{environ,mem}, ptrace attach, process_vm_{readv,writev} and
 * pidfd_getfd of protected processes away from every other thread group.
 *
 * Protected set: a process is protected from the moment it execs a file named `injector`
 * (sched_process_exec, before the new image runs its first instruction), keeps that across
 * its own later execve (the key is the tgid, which execve keeps), passes it to children it
 * forks, and loses it when its last thread exits. See REGISTRATION.md.
 *
 * Three enforcement flavours share the detection code:
 *   - lsm: BPF LSM hooks (file_open, ptrace_access_check, inode_follow_link, task_alloc,
 *     bprm_check_security) return -EPERM;
 *   - fentry: the same security_* functions through fentry (kernels with BPF trampolines but
 *     without `bpf` in lsm=); the offender is SIGKILLed before it returns to user space;
 *   - tracepoint: syscall tracepoints (all ABIs: native ones through syscalls:*, 32-bit and x32
 *     ones through raw_tp/sys_{enter,exit}); SIGKILL as in fentry.
 * With `mode` = HUSH_MODE_AUDIT all only report.
 *
 * The file is identified from the opened `struct file` (procfs superblock magic, then the
 * f_op->read address from kallsyms or the kernel-made dentry name, and the target from the
 * proc inode's struct pid), never from a path string a process passed.
 */
#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "guard.h"

char LICENSE[] SEC("license") = "GPL";

#define EPERM 1
#define ENOMEM 12
#define CLONE_THREAD 0x00010000
#define SIGKILL 9
#define PROC_SUPER_MAGIC 0x9fa0
#define PIDFS_MAGIC 0x50494446
#define ANON_INODE_FS_MAGIC 0x09041934
#define PTRACE_MODE_ATTACH 0x02
#define PTRACE_ATTACH 16
#define PTRACE_SEIZE 0x4206
#define PIDTYPE_PID 0
#define TASK_NEW 0x0800		/* __state from sched_fork until wake_up_new_task */
#define TS_COMPAT 0x0002	/* x86 thread_info.status: in a 32-bit syscall */
#define X32_SYSCALL_BIT 0x40000000
#define PF_IO_WORKER 0x00000010
#define PTRACE_MODE_READ 0x01
#define PERF_FLAG_PID_CGROUP (1UL << 2)

/* Set by the loader before load (aya `override_global`). */
const volatile __u32 mode = HUSH_MODE_AUDIT;
const volatile __u64 environ_read_addr = 0; /* kallsyms `environ_read`, 0 if unknown */
const volatile __u64 mem_read_addr = 0;	    /* kallsyms `mem_read`, 0 if unknown */
/* Tracepoint mode: SIGKILL io_uring_setup by non-allowlisted processes (io_uring's opens run no
 * syscall tracepoint). 0 with `guard --allow-io-uring`. */
const volatile __u32 refuse_io_uring = 1;
/* Tracepoint mode: SIGKILL every 32-bit (int $0x80, sysenter) and x32 syscall by a process outside
 * --allow-cgroup, at entry, so raw_tp/sys_exit need not run on every syscall of the node. 0 with
 * `guard --allow-32bit` (and in audit mode): raw_tp/sys_{enter,exit} judge those ABIs in full. */
const volatile __u32 refuse_compat = 1;
/* `guard --max-protected`: registrations beyond it fail closed. The maps are sized by the loader
 * with HUSH_HEADROOM more entries, so a fork that passed the check concurrently with others (or
 * a doomed child, see below) still finds room and is protected. */
const volatile __u32 max_protected = 65536;
/* Tracepoint and audit modes: the syscall tracepoints are attached, decisions on pids go through
 * `hush_vpids`, and a doomed child is killed on its return from fork. */
const volatile __u32 syscall_hooks = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536 + 1024); /* loader: --max-protected + HUSH_HEADROOM */
	__type(key, __u32); /* global tgid */
	__type(value, struct hush_protected);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hush_protected SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, (65536 + 1024) * 2); /* loader: 2 x hush_protected's */
	__type(key, struct hush_vpid_key);
	__type(value, __u32); /* global tgid */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hush_vpids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, (65536 + 1024) * 2); /* loader: 2 x hush_protected's */
	__type(key, __u32); /* global tid of a protected thread */
	__type(value, struct hush_tid_keys);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hush_tids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64); /* cgroup v2 id of an allowlisted reader (node agent) */
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hush_allowed SEC(".maps");

/* lsm/fentry: tasks a protected process is creating, from security_task_alloc (before the new
 * pid is attached and visible) until sched_process_fork indexes them; keyed by task address. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u32); /* creator's tgid */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hush_newborn SEC(".maps");

/* The number of entries in hush_protected (kept by the programs: a hash map has no count). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __s64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hush_count SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hush_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, HUSH_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hush_stats SEC(".maps");

/* Tracepoint contexts: the syscalls/ event formats (stable across the kernels we support). */
struct sys_enter_ctx {
	__u64 common;
	__s32 syscall_nr;
	__u32 pad;
	unsigned long args[6];
};

struct sys_exit_ctx {
	__u64 common;
	__s32 syscall_nr;
	__u32 pad;
	long ret;
};

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&hush_stats, &idx);
	if (v)
		__sync_fetch_and_add(v, 1);
}

/* A record the ring buffer had no room for: counted per stream, so the audit log can say how
 * many attempt lines and how many lifecycle lines it never saw. */
static __always_inline void count_lost(__u32 action)
{
	stat_inc(HUSH_STAT_RINGBUF_FULL);
	if (action == HUSH_ACTION_PROTECTED || action == HUSH_ACTION_RELEASED)
		stat_inc(HUSH_STAT_RINGBUF_FULL_LIFECYCLE);
}

static __always_inline __u64 task_cgroup_id(struct task_struct *t)
{
	return BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id);
}

static __always_inline void fill_proc(struct hush_proc *p, struct task_struct *t)
{
	p->pid = BPF_CORE_READ(t, pid);
	p->tgid = BPF_CORE_READ(t, tgid);
	p->uid = BPF_CORE_READ(t, real_cred, uid.val);
	p->cgroup_id = task_cgroup_id(t);
	BPF_CORE_READ_STR_INTO(&p->comm, t, comm);
}

static __always_inline void emit_flagged(struct task_struct *reader, struct task_struct *target, __u32 hook,
					__u32 what, __u32 action, __s32 syscall, __u32 target_flags)
{
	struct hush_event *e = bpf_ringbuf_reserve(&hush_events, sizeof(*e), 0);
	if (!e) {
		count_lost(action);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->boot_ns = bpf_ktime_get_boot_ns();
	fill_proc(&e->reader, reader);
	if (target)
		fill_proc(&e->target, target);
	e->target._pad = target_flags;
	e->hook = hook;
	e->what = what;
	e->action = action;
	e->syscall = syscall;
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void emit_as(struct task_struct *reader, struct task_struct *target, __u32 hook, __u32 what,
				   __u32 action, __s32 syscall)
{
	emit_flagged(reader, target, hook, what, action, syscall, 0);
}

static __always_inline void emit(struct task_struct *target, __u32 hook, __u32 what, __u32 action, __s32 syscall)
{
	emit_as((struct task_struct *)bpf_get_current_task(), target, hook, what, action, syscall);
}

/* Number and namespace of `pid` at `level` (numbers[] is a flexible array: aya-obj 0.3 rejects
 * CO-RE access strings that index it, so compute the element address from relocated offsets). */
static __always_inline int upid_at(struct pid *pid, __u32 level, struct hush_vpid_key *key)
{
	void *upid = (void *)pid + bpf_core_field_offset(struct pid, numbers) + level * bpf_core_type_size(struct upid);
	struct pid_namespace *ns = 0;
	int nr = 0;

	if (bpf_probe_read_kernel(&nr, sizeof(nr), upid + bpf_core_field_offset(struct upid, nr)))
		return -1;
	if (bpf_probe_read_kernel(&ns, sizeof(ns), upid + bpf_core_field_offset(struct upid, ns)))
		return -1;
	if (!ns)
		return -1;
	key->ns_inum = BPF_CORE_READ(ns, ns.inum);
	key->vpid = nr;
	return 0;
}

/* Indexes thread `t` (of protected group `tgid`) under its number in every pid namespace it is
 * visible in, so ptrace/process_vm_* callers' namespaced pids can be resolved; remembers those
 * keys under its global tid for unindex_tid. */
static __always_inline int index_vpids(struct task_struct *t, __u32 tgid)
{
	struct pid *pid = BPF_CORE_READ(t, thread_pid);
	__u32 level = BPF_CORE_READ(pid, level);
	__u32 tid = BPF_CORE_READ(t, pid);
	struct hush_tid_keys all = {};
	struct hush_vpid_key key;

	for (__u32 i = 0; i < HUSH_MAX_PID_LEVELS; i++) {
		if (i > level)
			break;
		if (upid_at(pid, i, &key))
			break;
		if (bpf_map_update_elem(&hush_vpids, &key, &tgid, BPF_ANY)) {
			/* still record what was indexed, so that exit removes it */
			bpf_map_update_elem(&hush_tids, &tid, &all, BPF_ANY);
			return -1;
		}
		all.keys[i] = key;
		all.n = i + 1;
	}
	return bpf_map_update_elem(&hush_tids, &tid, &all, BPF_ANY) ? -1 : 0;
}

/* Removes what index_vpids recorded for global thread id `tid`. By tid, not from the task's
 * pid struct: after a non-leader execve the task carries the leader's pid struct. */
static __always_inline void unindex_tid(__u32 tid)
{
	struct hush_tid_keys *all = bpf_map_lookup_elem(&hush_tids, &tid);

	if (!all)
		return;
	for (__u32 i = 0; i < HUSH_MAX_PID_LEVELS; i++) {
		if (i >= all->n)
			break;
		bpf_map_delete_elem(&hush_vpids, &all->keys[i]);
	}
	bpf_map_delete_elem(&hush_tids, &tid);
}

static __always_inline int is_protected(__u32 tgid)
{
	return bpf_map_lookup_elem(&hush_protected, &tgid) != 0;
}

/* ---- capacity: a registration that cannot be made fails closed --------------------------- */

/* How a blocked attempt ends. */
enum enforcement {
	E_DENY = 0, /* lsm: the hook returns an errno */
	E_KILL = 1, /* tracepoint, fentry: SIGKILL before the task returns to user space */
};

static __always_inline __s64 *protected_count(void)
{
	__u32 k = 0;

	return bpf_map_lookup_elem(&hush_count, &k);
}

/* The protected set holds --max-protected entries (or more: the headroom). */
static __always_inline int at_capacity(void)
{
	__s64 *n = protected_count();

	return n && *n >= (__s64)max_protected;
}

/* Adds `tgid` to the protected set and counts it; nonzero if the map had no room. */
static __always_inline long protect_insert(__u32 tgid, struct hush_protected *v)
{
	__s64 *n;

	if (bpf_map_update_elem(&hush_protected, &tgid, v, BPF_NOEXIST))
		return -1;
	n = protected_count();
	if (n)
		__sync_fetch_and_add(n, 1);
	return 0;
}

/* A registration that cannot be made (the set is at --max-protected, a map is full): counted, one
 * line, and in enforce mode the registering task is refused (E_DENY: the caller returns an errno)
 * or SIGKILLed with its thread group before it returns to user space. 1 if blocked. */
static __always_inline int refuse_registration(struct task_struct *t, __u32 hook, enum enforcement how, __s32 sc)
{
	stat_inc(HUSH_STAT_MAP_FULL);
	if (mode != HUSH_MODE_ENFORCE) {
		emit(t, hook, HUSH_WHAT_PROTECTED_SET_FULL, HUSH_ACTION_AUDITED, sc);
		return 0;
	}
	if (how == E_KILL)
		bpf_send_signal(SIGKILL);
	emit(t, hook, HUSH_WHAT_PROTECTED_SET_FULL, how == E_KILL ? HUSH_ACTION_KILLED : HUSH_ACTION_DENIED, sc);
	return 1;
}

/* ---- registration, inheritance, release ---------------------------------------------- */

static __always_inline int exe_is_shim(struct task_struct *t)
{
	const unsigned char *name = BPF_CORE_READ(t, mm, exe_file, f_path.dentry, d_name.name);
	char buf[10] = {};

	if (bpf_probe_read_kernel_str(buf, sizeof(buf), name) != 9) /* "injector" + NUL */
		return 0;
	return buf[0] == 'i' && buf[1] == 'n' && buf[2] == 'j' && buf[3] == 'e' && buf[4] == 'c' && buf[5] == 't' &&
	       buf[6] == 'o' && buf[7] == 'r';
}

/* The sched/sched_process_exec event format (stable since Linux 3.4). */
struct sched_exec_ctx {
	__u64 common;
	__u32 filename_loc;
	__s32 pid;
	__s32 old_pid; /* the exec'ing thread's global tid before execve */
};

/* Perf events attached to `t` (by another process, or inherited from before the shim's exec):
 * their samples (PERF_SAMPLE_STACK_USER) would carry the app's stack, environment included. */
static __always_inline int perf_monitored(struct task_struct *t)
{
	struct perf_event_context *ctx = 0;

	if (bpf_core_field_exists(((struct task_struct___perf62 *)0)->perf_event_ctxp)) {
		ctx = BPF_CORE_READ((struct task_struct___perf62 *)t, perf_event_ctxp);
		return ctx && BPF_CORE_READ(ctx, nr_events) > 0;
	}
	if (bpf_core_field_exists(((struct task_struct___perf61 *)0)->perf_event_ctxp)) {
		for (int i = 0; i < 2; i++) {
			ctx = BPF_CORE_READ((struct task_struct___perf61 *)t, perf_event_ctxp[i]);
			if (ctx && BPF_CORE_READ(ctx, nr_events) > 0)
				return 1;
		}
	}
	return 0;
}

/* Why `t` may not start the shim: HUSH_WHAT_TRACED_EXEC, HUSH_WHAT_PERF_EXEC, or 0. A tracer
 * attached before the exec (PTRACE_TRACEME, a seized supervisor) would read the secrets the shim
 * fetches and the app's environment; the guard's attach checks only see attaches made later. */
static __always_inline __u32 monitored(struct task_struct *t)
{
	if (BPF_CORE_READ(t, ptrace))
		return HUSH_WHAT_TRACED_EXEC;
	if (perf_monitored(t))
		return HUSH_WHAT_PERF_EXEC;
	return 0;
}

SEC("tracepoint/sched/sched_process_exec")
int hush_sched_exec(struct sched_exec_ctx *ctx)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct hush_protected v = {};

	if (is_protected(tgid)) {
		/* A thread other than the leader exec'd: de_thread gave it the leader's tid (whose
		 * entries went when the leader exited) and its own tid is about to be freed, so its
		 * entries must go now, or a process that gets that tid next would be looked up as us. */
		if (ctx->old_pid != ctx->pid) {
			unindex_tid(ctx->old_pid);
			index_vpids(t, tgid);
		}
		return 0;
	}
	if (!exe_is_shim(t))
		return 0;
	v.since_boot_ns = bpf_ktime_get_boot_ns();
	v.registered_tgid = tgid;
	/* Fail closed: a shim that cannot be registered dies before its first instruction (it has
	 * fetched nothing yet). lsm mode refused most such execs in bprm_check_security already. */
	int full = at_capacity();
	long err = full && mode == HUSH_MODE_ENFORCE ? -1 : protect_insert(tgid, &v);
	if (full || err) {
		refuse_registration(t, HUSH_HOOK_SCHED_EXEC, E_KILL, -1);
		if (err)
			return 0;
	}
	/* execve left one thread, now the leader: index it (de_thread kept its pid numbers). The
	 * syscall modes find ptrace/process_vm_* targets only through this index. */
	if (index_vpids(t, tgid) && syscall_hooks && refuse_registration(t, HUSH_HOOK_SCHED_EXEC, E_KILL, -1))
		return 0;
	emit(t, HUSH_HOOK_SCHED_EXEC, HUSH_WHAT_PROTECT, HUSH_ACTION_PROTECTED, -1);
	/* Fail closed on a traced or perf-monitored start (lsm mode already refused the exec in
	 * bprm_check_security). Protected first, so no one else can open it while it dies; the
	 * SIGKILL lands before the shim's first instruction, and a pending SIGKILL also skips the
	 * PTRACE_EVENT_EXEC stop, so the tracer never sees it stopped. */
	__u32 why = monitored(t);
	if (why) {
		struct task_struct *tracer = why == HUSH_WHAT_TRACED_EXEC ? BPF_CORE_READ(t, parent) : t;
		__u32 action = mode == HUSH_MODE_ENFORCE ? HUSH_ACTION_KILLED : HUSH_ACTION_AUDITED;
		if (action == HUSH_ACTION_KILLED)
			bpf_send_signal(SIGKILL);
		emit_as(tracer, t, HUSH_HOOK_SCHED_EXEC, why, action, -1);
	}
	return 0;
}

/* raw tracepoint: gives the child task, which the sched_process_fork tracepoint does not. */
SEC("raw_tp/sched_process_fork")
int hush_sched_fork(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *parent = (struct task_struct *)ctx->args[0];
	struct task_struct *child = (struct task_struct *)ctx->args[1];
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	__u32 ctgid = BPF_CORE_READ(child, tgid);
	struct hush_protected *pv = bpf_map_lookup_elem(&hush_protected, &ptgid);
	struct hush_protected v = {};

	__u64 child_addr = (__u64)child;

	/* Indexed below: the task_alloc entry (lsm/fentry) has done its job. */
	bpf_map_delete_elem(&hush_newborn, &child_addr);
	if (!pv)
		return 0;
	if (ctgid != ptgid) { /* a new process: it inherits protection */
		v.since_boot_ns = bpf_ktime_get_boot_ns();
		v.registered_tgid = pv->registered_tgid;
		/* Past --max-protected. lsm and fentry refused such forks in task_alloc; what gets here
		 * (tracepoint mode, or forks racing that check) is registered in the headroom, so it is
		 * protected, and in the syscall modes doomed: SIGKILLed on its return from fork, before
		 * its first instruction (hush_exit_fork). */
		if (at_capacity() && syscall_hooks && mode == HUSH_MODE_ENFORCE)
			v.flags = HUSH_PROTECTED_DOOMED;
		if (protect_insert(ctgid, &v)) {
			/* Not even the headroom: the child is not protected. Said as it is. */
			stat_inc(HUSH_STAT_MAP_FULL);
			emit_as(parent, child, HUSH_HOOK_SCHED_FORK, HUSH_WHAT_PROTECTED_SET_FULL,
				mode == HUSH_MODE_ENFORCE ? HUSH_ACTION_EXPOSED : HUSH_ACTION_AUDITED, -1);
			return 0;
		}
	}
	/* a new process, or a new thread of a protected one */
	if (index_vpids(child, ctgid) && syscall_hooks && !(v.flags & HUSH_PROTECTED_DOOMED)) {
		/* Its pid is not findable by the ptrace/process_vm_* hooks: a new thread takes its group
		 * down with it (SIGKILL to the creator's group); a new process is doomed. */
		if (ctgid == ptgid)
			refuse_registration(parent, HUSH_HOOK_SCHED_FORK, E_KILL, -1);
		else if (mode == HUSH_MODE_ENFORCE) {
			struct hush_protected *cv = bpf_map_lookup_elem(&hush_protected, &ctgid);
			if (cv)
				cv->flags = HUSH_PROTECTED_DOOMED;
			v.flags = HUSH_PROTECTED_DOOMED;
		}
	}
	if (v.flags & HUSH_PROTECTED_DOOMED) {
		stat_inc(HUSH_STAT_MAP_FULL);
		emit_as(parent, child, HUSH_HOOK_SCHED_FORK, HUSH_WHAT_PROTECTED_SET_FULL, HUSH_ACTION_KILLED, -1);
	}
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int hush_sched_exit(void *ctx)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	struct hush_protected *v = bpf_map_lookup_elem(&hush_protected, &tgid);
	__u32 registered;

	if (!v)
		return 0;
	registered = v->registered_tgid == tgid;
	unindex_tid(BPF_CORE_READ(t, pid));
	/* signal->live is decremented before this tracepoint: 0 means the last thread is exiting.
	 * The tgid cannot be reused before this task is reaped, so no other process can ever be
	 * looked up under it while the entry exists. */
	if (BPF_CORE_READ(t, signal, live.counter) == 0) {
		if (bpf_map_delete_elem(&hush_protected, &tgid) == 0) {
			__s64 *n = protected_count();
			if (n)
				__sync_fetch_and_add(n, -1);
		}
		/* One release line per protect line: forked children exit silently. */
		if (registered)
			emit(t, HUSH_HOOK_SCHED_EXIT, HUSH_WHAT_RELEASE, HUSH_ACTION_RELEASED, -1);
	}
	return 0;
}

/* ---- identifying the file ------------------------------------------------------------- */

/* HUSH_WHAT_ENVIRON, HUSH_WHAT_MEM or 0. */
static __always_inline __u32 classify_proc_file(struct file *f)
{
	if (BPF_CORE_READ(f, f_inode, i_sb, s_magic) != PROC_SUPER_MAGIC)
		return 0;
	if (environ_read_addr || mem_read_addr) {
		__u64 rd = (__u64)BPF_CORE_READ(f, f_op, read);
		if (environ_read_addr && rd == environ_read_addr)
			return HUSH_WHAT_ENVIRON;
		if (mem_read_addr && rd == mem_read_addr)
			return HUSH_WHAT_MEM;
		return 0;
	}
	/* No kallsyms: procfs dentry names are made by the kernel, not by the opener. */
	char n[9] = {};
	bpf_probe_read_kernel_str(n, sizeof(n), BPF_CORE_READ(f, f_path.dentry, d_name.name));
	if (n[0] == 'e' && n[1] == 'n' && n[2] == 'v' && n[3] == 'i' && n[4] == 'r' && n[5] == 'o' && n[6] == 'n' &&
	    n[7] == 0)
		return HUSH_WHAT_ENVIRON;
	if (n[0] == 'm' && n[1] == 'e' && n[2] == 'm' && n[3] == 0)
		return HUSH_WHAT_MEM;
	return 0;
}

/* The live task a struct pid stands for (its PIDTYPE_PID task), or NULL. */
static __always_inline struct task_struct *pid_task0(struct pid *pid)
{
	struct hlist_node *first;

	if (!pid)
		return 0;
	first = BPF_CORE_READ(pid, tasks[PIDTYPE_PID].first);
	if (!first)
		return 0;
	return (struct task_struct *)((void *)first - bpf_core_field_offset(struct task_struct, pid_links));
}

/* The task behind /proc/<pid>/... or /proc/<pid>/task/<tid>/... (proc inode -> struct pid). */
static __always_inline struct task_struct *proc_file_task(struct file *f)
{
	struct inode *inode = BPF_CORE_READ(f, f_inode);
	struct proc_inode *pi = (void *)inode - bpf_core_field_offset(struct proc_inode, vfs_inode);

	return pid_task0(BPF_CORE_READ(pi, pid));
}

/* The task behind /proc/<pid>/fd/N or /proc/<pid>/map_files/R (also under task/<tid>/), for a
 * symlink being followed; NULL for every other link (ns/, cwd, root, exe stay usable: nsenter
 * and kubectl exec need them). Procfs makes these dentry names itself. */
static __always_inline struct task_struct *proc_fd_link_task(struct dentry *d, struct inode *inode)
{
	char n[10] = {};
	struct proc_inode *pi;

	if (!inode || BPF_CORE_READ(inode, i_sb, s_magic) != PROC_SUPER_MAGIC)
		return 0;
	bpf_probe_read_kernel_str(n, sizeof(n), BPF_CORE_READ(d, d_parent, d_name.name));
	if (!((n[0] == 'f' && n[1] == 'd' && n[2] == 0) ||
	      (n[0] == 'm' && n[1] == 'a' && n[2] == 'p' && n[3] == '_' && n[4] == 'f' && n[5] == 'i' && n[6] == 'l' &&
	       n[7] == 'e' && n[8] == 's' && n[9] == 0)))
		return 0;
	pi = (void *)inode - bpf_core_field_offset(struct proc_inode, vfs_inode);
	return pid_task0(BPF_CORE_READ(pi, pid));
}

static __always_inline struct file *fd_file(struct task_struct *t, long fd)
{
	struct fdtable *fdt = BPF_CORE_READ(t, files, fdt);
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = 0;

	if (fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

/* ---- the decision ---------------------------------------------------------------------- */

enum verdict {
	V_PASS = 0,
	V_BLOCK = 1, /* enforce: deny (lsm) or kill (tracepoint, fentry) */
};

static __always_inline int sigkill_pending(struct task_struct *t)
{
	return (BPF_CORE_READ(t, pending.signal.sig[0]) >> (SIGKILL - 1)) & 1;
}

/* The protected tgid `t` belongs to, or 0. Also a task still being created (TASK_NEW) by a
 * protected process: copy_process makes the new pid visible in /proc (attach_pid) before
 * sched_process_fork runs, and in that window the child's copy of the environment must already
 * be protected. The state is read before the map: sched_process_fork runs before
 * wake_up_new_task ends TASK_NEW, so a task seen past TASK_NEW is already in the map. */
static __always_inline __u32 protected_tgid(struct task_struct *t, __u32 *flags)
{
	__u32 state = BPF_CORE_READ(t, __state);
	__u32 tgid = BPF_CORE_READ(t, tgid);
	__u64 addr = (__u64)t;

	if (is_protected(tgid))
		return tgid;
	if (state != TASK_NEW)
		return 0;
	*flags = HUSH_TARGET_IN_CREATION;
	if (is_protected(BPF_CORE_READ(t, real_parent, tgid)))
		return tgid;
	/* CLONE_PARENT children have the creator's parent as real_parent: task_alloc recorded them. */
	if (bpf_map_lookup_elem(&hush_newborn, &addr))
		return tgid;
	return 0;
}

/* Whether the current task shares its fd table with another process (CLONE_FILES without
 * CLONE_THREAD): every task using the table holds a reference, threads included. */
static __always_inline int files_shared(void)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();

	return BPF_CORE_READ(t, files, count.counter) > BPF_CORE_READ(t, signal, nr_threads);
}

/* The action a kill-mode block reports: `killed`, or `exposed` when the attempt leaves an fd in
 * a table another (surviving) process shares, which could read through it. */
static __always_inline __u32 kill_action(int gives_fd)
{
	return gives_fd && files_shared() ? HUSH_ACTION_EXPOSED : HUSH_ACTION_KILLED;
}

/* Shared by every hook: is `target` protected from the current task, and what do we do. */
static __always_inline enum verdict judge(struct task_struct *target, __u32 hook, __u32 what, enum enforcement how,
					  int gives_fd, __s32 syscall)
{
	struct task_struct *cur = (struct task_struct *)bpf_get_current_task();
	__u32 me = bpf_get_current_pid_tgid() >> 32;
	__u32 ttgid, flags = 0;
	__u64 cg;

	if (!target)
		return V_PASS;
	ttgid = protected_tgid(target, &flags);
	if (!ttgid || BPF_CORE_READ(target, tgid) == me)
		return V_PASS;
	cg = bpf_get_current_cgroup_id();
	if (bpf_map_lookup_elem(&hush_allowed, &cg)) {
		emit_flagged(cur, target, hook, what, HUSH_ACTION_ALLOWED, syscall, flags);
		return V_PASS;
	}
	if (mode != HUSH_MODE_ENFORCE) {
		emit_flagged(cur, target, hook, what, HUSH_ACTION_AUDITED, syscall, flags);
		return V_PASS;
	}
	if (how == E_KILL) {
		/* Already dying from an earlier hook of the same attempt (e.g. file_open then the
		 * ptrace check inside mem_open): one line per attempt. */
		if (sigkill_pending(cur))
			return V_BLOCK;
		bpf_send_signal(SIGKILL);
		emit_flagged(cur, target, hook, what, kill_action(gives_fd), syscall, flags);
		return V_BLOCK;
	}
	emit_flagged(cur, target, hook, what, HUSH_ACTION_DENIED, syscall, flags);
	return V_BLOCK;
}

/* ---- syscall ABIs ----------------------------------------------------------------------- */

enum abi {
	ABI_NATIVE = 0,
	ABI_IA32 = 1, /* int $0x80, sysenter, 32-bit syscall: syscalls:* tracepoints skip these */
	ABI_X32 = 2,  /* x32: skipped too (the number carries __X32_SYSCALL_BIT) */
};

enum op {
	OP_NONE = 0,
	OP_OPEN,	/* open, creat, openat, openat2, open_by_handle_at */
	OP_PTRACE,
	OP_VM_READ,
	OP_VM_WRITE,
	OP_PIDFD_GETFD,
	OP_PERF,
	OP_IO_URING_SETUP,
};

static __always_inline enum abi abi_of(long nr)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();

	if (nr >= 0 && (nr & X32_SYSCALL_BIT))
		return ABI_X32;
	return (BPF_CORE_READ(t, thread_info.status) & TS_COMPAT) ? ABI_IA32 : ABI_NATIVE;
}

/* Syscall numbers per ABI (arch/x86/entry/syscalls/syscall_{64,32}.tbl). */
static __always_inline enum op op_of(enum abi abi, long nr)
{
	if (abi == ABI_IA32) {
		switch (nr) {
		case 5: case 8: case 295: case 437: case 342:
			return OP_OPEN;
		case 26:
			return OP_PTRACE;
		case 347:
			return OP_VM_READ;
		case 348:
			return OP_VM_WRITE;
		case 438:
			return OP_PIDFD_GETFD;
		case 336:
			return OP_PERF;
		case 425:
			return OP_IO_URING_SETUP;
		}
		return OP_NONE;
	}
	if (abi == ABI_X32)
		nr &= ~X32_SYSCALL_BIT;
	switch (nr) {
	case 2: case 85: case 257: case 437: case 304:
		return OP_OPEN;
	case 101: case 521: /* x32 has its own ptrace and process_vm_* entries */
		return OP_PTRACE;
	case 310: case 539:
		return OP_VM_READ;
	case 311: case 540:
		return OP_VM_WRITE;
	case 438:
		return OP_PIDFD_GETFD;
	case 298:
		return OP_PERF;
	case 425:
		return OP_IO_URING_SETUP;
	}
	return OP_NONE;
}

/* The syscall number as reported in events: i386 numbers marked with HUSH_SYSCALL_IA32. */
static __always_inline __s32 reported_nr(enum abi abi, long nr)
{
	return abi == ABI_IA32 ? (__s32)(nr | HUSH_SYSCALL_IA32) : (__s32)nr;
}

/* The current task's syscall, from its saved registers (lsm/fentry hooks), -1 outside one. */
static __always_inline long current_nr(void)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());

	return regs ? (long)BPF_CORE_READ(regs, orig_ax) : -1;
}

static __always_inline enum op current_op(void)
{
	long nr = current_nr();

	return nr < 0 ? OP_NONE : op_of(abi_of(nr), nr);
}

static __always_inline __s32 current_syscall(void)
{
	long nr = current_nr();

	return nr < 0 ? -1 : reported_nr(abi_of(nr), nr);
}

/* ---- tracepoint mode ------------------------------------------------------------------- */

static __always_inline void on_open_exit(long ret, __s32 sc, __u32 hook)
{
	struct file *f;
	__u32 what;

	if (ret < 0)
		return;
	f = fd_file((struct task_struct *)bpf_get_current_task(), ret);
	if (!f)
		return;
	what = classify_proc_file(f);
	if (!what)
		return;
	judge(proc_file_task(f), hook, what, E_KILL, 1, sc);
}

SEC("tracepoint/syscalls/sys_exit_open")
int hush_exit_open(struct sys_exit_ctx *ctx)
{
	on_open_exit(ctx->ret, ctx->syscall_nr, HUSH_HOOK_SYS_EXIT_OPEN);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_openat")
int hush_exit_openat(struct sys_exit_ctx *ctx)
{
	on_open_exit(ctx->ret, ctx->syscall_nr, HUSH_HOOK_SYS_EXIT_OPEN);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_openat2")
int hush_exit_openat2(struct sys_exit_ctx *ctx)
{
	on_open_exit(ctx->ret, ctx->syscall_nr, HUSH_HOOK_SYS_EXIT_OPEN);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_creat")
int hush_exit_creat(struct sys_exit_ctx *ctx)
{
	on_open_exit(ctx->ret, ctx->syscall_nr, HUSH_HOOK_SYS_EXIT_OPEN);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_open_by_handle_at")
int hush_exit_open_by_handle_at(struct sys_exit_ctx *ctx)
{
	on_open_exit(ctx->ret, ctx->syscall_nr, HUSH_HOOK_SYS_EXIT_OPEN);
	return 0;
}

/* The global tgid of the protected process a caller-namespaced pid names, or 0. */
static __always_inline __u32 protected_by_vpid(long vpid)
{
	struct task_struct *me = (struct task_struct *)bpf_get_current_task();
	struct pid *mypid = BPF_CORE_READ(me, thread_pid);
	__u32 level = BPF_CORE_READ(mypid, level);
	struct hush_vpid_key key;
	__u32 *tgid;

	if (level >= HUSH_MAX_PID_LEVELS || upid_at(mypid, level, &key))
		return 0;
	key.vpid = vpid;
	tgid = bpf_map_lookup_elem(&hush_vpids, &key);
	return tgid ? *tgid : 0;
}

/* Tracepoint hooks that take a pid: the target task is not at hand, only its tgid; the event's
 * target fields are filled from the map (tgid) and the reader stays the current task. */
static __always_inline void on_pid_enter(long vpid, __u32 hook, __u32 what, int gives_fd, __s32 sc)
{
	struct task_struct *cur = (struct task_struct *)bpf_get_current_task();
	__u32 me = bpf_get_current_pid_tgid() >> 32;
	__u32 ttgid = protected_by_vpid(vpid);
	struct hush_event *e;
	__u64 cg;
	__u32 action;

	if (!ttgid || ttgid == me)
		return;
	cg = bpf_get_current_cgroup_id();
	if (bpf_map_lookup_elem(&hush_allowed, &cg))
		action = HUSH_ACTION_ALLOWED;
	else if (mode != HUSH_MODE_ENFORCE)
		action = HUSH_ACTION_AUDITED;
	else if (sigkill_pending(cur))
		return;
	else
		action = kill_action(gives_fd);
	if (action == HUSH_ACTION_KILLED || action == HUSH_ACTION_EXPOSED)
		bpf_send_signal(SIGKILL);
	e = bpf_ringbuf_reserve(&hush_events, sizeof(*e), 0);
	if (!e) {
		count_lost(action);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->boot_ns = bpf_ktime_get_boot_ns();
	fill_proc(&e->reader, cur);
	/* target.pid/tgid from the map; user space completes comm/uid/cgroup from /proc */
	e->target.tgid = ttgid;
	e->target.pid = vpid;
	e->hook = hook;
	e->what = what;
	e->action = action;
	e->syscall = sc;
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void on_ptrace_enter(long request, long vpid, __u32 hook, __s32 sc)
{
	if (request != PTRACE_ATTACH && request != PTRACE_SEIZE)
		return;
	on_pid_enter(vpid, hook, HUSH_WHAT_PTRACE, 0, sc);
}

/* After a successful ptrace call: the newest tracee (ptrace_link adds at the head of ->ptraced).
 * Catches an attach the entry check could not resolve: a child of a protected process attached
 * in the window before sched_process_fork indexed its pid. The tracer dies before it returns to
 * user space, so it never issues a PEEK; its death detaches it. */
static __always_inline void on_ptrace_exit(long ret, __u32 hook, __s32 sc)
{
	struct task_struct *me = (struct task_struct *)bpf_get_current_task();
	struct list_head *head = (void *)me + bpf_core_field_offset(struct task_struct, ptraced);
	struct list_head *first;
	struct task_struct *tracee;

	if (ret != 0)
		return;
	first = BPF_CORE_READ(me, ptraced.next);
	if (!first || first == head)
		return;
	tracee = (void *)first - bpf_core_field_offset(struct task_struct, ptrace_entry);
	judge(tracee, hook, HUSH_WHAT_PTRACE, E_KILL, 0, sc);
}

/* pidfd_getfd(pidfd, targetfd): the pidfd file names the target through its struct pid, kept
 * in the pidfs inode's i_private since Linux 6.9 and in file->private_data of the "[pidfd]" anon
 * inode file before. */
static __always_inline void on_pidfd_getfd(long pidfd, __u32 hook, __s32 sc)
{
	struct file *f = fd_file((struct task_struct *)bpf_get_current_task(), pidfd);
	struct pid *pid;
	unsigned long magic;

	if (!f)
		return;
	magic = BPF_CORE_READ(f, f_inode, i_sb, s_magic);
	if (magic == PIDFS_MAGIC) {
		pid = BPF_CORE_READ(f, f_inode, i_private);
	} else if (magic == ANON_INODE_FS_MAGIC) {
		char n[8] = {};
		bpf_probe_read_kernel_str(n, sizeof(n), BPF_CORE_READ(f, f_path.dentry, d_name.name));
		if (!(n[0] == '[' && n[1] == 'p' && n[2] == 'i' && n[3] == 'd' && n[4] == 'f' && n[5] == 'd' && n[6] == ']'))
			return;
		pid = BPF_CORE_READ(f, private_data);
	} else {
		return;
	}
	judge(pid_task0(pid), hook, HUSH_WHAT_PIDFD_GETFD, E_KILL, 1, sc);
}

/* perf_event_open(attr, pid, cpu, group_fd, flags) on a protected process: its samples
 * (PERF_SAMPLE_STACK_USER, _REGS_USER) copy the app's stack, environment strings included.
 * pid <= 0 is the caller itself or every task on a CPU (CAP_PERFMON, out of scope: see
 * SECURITY.md); PERF_FLAG_PID_CGROUP makes pid a cgroup fd (per-CPU, CAP_PERFMON too). */
static __always_inline void on_perf_enter(long pid, unsigned long flags, __u32 hook, __s32 sc)
{
	if (pid <= 0 || (flags & PERF_FLAG_PID_CGROUP))
		return;
	on_pid_enter(pid, hook, HUSH_WHAT_PERF, 1, sc);
}

/* io_uring's opens run no syscall tracepoint, so tracepoint mode refuses new rings by
 * non-allowlisted processes (the kill lands before the ring's fd is usable). */
static __always_inline void on_io_uring_setup(__u32 hook, __s32 sc)
{
	struct task_struct *cur = (struct task_struct *)bpf_get_current_task();
	__u64 cg = bpf_get_current_cgroup_id();

	if (!refuse_io_uring || bpf_map_lookup_elem(&hush_allowed, &cg))
		return;
	if (mode != HUSH_MODE_ENFORCE) {
		emit(0, hook, HUSH_WHAT_IO_URING_SETUP, HUSH_ACTION_AUDITED, sc);
		return;
	}
	if (sigkill_pending(cur))
		return;
	bpf_send_signal(SIGKILL);
	emit(0, hook, HUSH_WHAT_IO_URING_SETUP, HUSH_ACTION_KILLED, sc);
}

/* A doomed child (registered past --max-protected, see hush_sched_fork) on its return from fork:
 * SIGKILL before its first instruction. The parent's return (ret != 0) passes at once. */
static __always_inline void on_fork_exit(long ret)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct hush_protected *v;

	if (ret != 0)
		return;
	v = bpf_map_lookup_elem(&hush_protected, &tgid);
	if (v && (v->flags & HUSH_PROTECTED_DOOMED) && mode == HUSH_MODE_ENFORCE)
		bpf_send_signal(SIGKILL);
}

SEC("tracepoint/syscalls/sys_exit_clone")
int hush_exit_clone(struct sys_exit_ctx *ctx)
{
	on_fork_exit(ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_clone3")
int hush_exit_clone3(struct sys_exit_ctx *ctx)
{
	on_fork_exit(ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_fork")
int hush_exit_fork(struct sys_exit_ctx *ctx)
{
	on_fork_exit(ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_vfork")
int hush_exit_vfork(struct sys_exit_ctx *ctx)
{
	on_fork_exit(ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_ptrace")
int hush_enter_ptrace(struct sys_enter_ctx *ctx)
{
	on_ptrace_enter(ctx->args[0], ctx->args[1], HUSH_HOOK_SYS_ENTER_PTRACE, ctx->syscall_nr);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_ptrace")
int hush_exit_ptrace(struct sys_exit_ctx *ctx)
{
	on_ptrace_exit(ctx->ret, HUSH_HOOK_SYS_EXIT_PTRACE, ctx->syscall_nr);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_process_vm_readv")
int hush_enter_vm_readv(struct sys_enter_ctx *ctx)
{
	on_pid_enter(ctx->args[0], HUSH_HOOK_SYS_ENTER_VM_RW, HUSH_WHAT_VM_READ, 0, ctx->syscall_nr);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_process_vm_writev")
int hush_enter_vm_writev(struct sys_enter_ctx *ctx)
{
	on_pid_enter(ctx->args[0], HUSH_HOOK_SYS_ENTER_VM_RW, HUSH_WHAT_VM_WRITE, 0, ctx->syscall_nr);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_pidfd_getfd")
int hush_enter_pidfd_getfd(struct sys_enter_ctx *ctx)
{
	on_pidfd_getfd(ctx->args[0], HUSH_HOOK_SYS_ENTER_PIDFD_GETFD, ctx->syscall_nr);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_perf_event_open")
int hush_enter_perf(struct sys_enter_ctx *ctx)
{
	on_perf_enter((int)ctx->args[1], ctx->args[4], HUSH_HOOK_SYS_ENTER_PERF, ctx->syscall_nr);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_io_uring_setup")
int hush_enter_io_uring_setup(struct sys_enter_ctx *ctx)
{
	on_io_uring_setup(HUSH_HOOK_SYS_ENTER_IO_URING, ctx->syscall_nr);
	return 0;
}

/* A 32-bit or x32 syscall with refuse_compat: SIGKILL at entry, one line per process (its other
 * threads find SIGKILL pending). Protected processes get no exemption: registration is by name,
 * and a protected 32-bit reader would open other protected processes unseen. */
static __always_inline void on_compat_syscall(__s32 sc)
{
	struct task_struct *cur = (struct task_struct *)bpf_get_current_task();
	__u64 cg = bpf_get_current_cgroup_id();

	if (bpf_map_lookup_elem(&hush_allowed, &cg) || sigkill_pending(cur))
		return;
	bpf_send_signal(SIGKILL);
	emit(0, HUSH_HOOK_RAW_SYS_ENTER, HUSH_WHAT_COMPAT_SYSCALL, HUSH_ACTION_KILLED, sc);
}

/* 32-bit and x32 syscalls: the syscalls:* tracepoints skip them (in_32bit_syscall()), the raw
 * sys_enter/sys_exit tracepoints do not. Native syscalls return at once: the tracepoints above
 * have them. With refuse_compat (the default) every such syscall is refused here and sys_exit is
 * not attached; with --allow-32bit they are judged like native ones, arguments taken from the
 * saved registers in each ABI's calling convention. */
SEC("raw_tp/sys_enter")
int hush_raw_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
	long nr = ctx->args[1];
	enum abi abi = abi_of(nr);
	unsigned long a0, a1, a4;
	__s32 sc;

	if (abi == ABI_NATIVE)
		return 0;
	sc = reported_nr(abi, nr);
	if (refuse_compat && mode == HUSH_MODE_ENFORCE) {
		on_compat_syscall(sc);
		return 0;
	}
	if (abi == ABI_IA32) {
		a0 = (__u32)BPF_CORE_READ(regs, bx);
		a1 = (__u32)BPF_CORE_READ(regs, cx);
		a4 = (__u32)BPF_CORE_READ(regs, di);
	} else {
		a0 = BPF_CORE_READ(regs, di);
		a1 = BPF_CORE_READ(regs, si);
		a4 = BPF_CORE_READ(regs, r8);
	}
	switch (op_of(abi, nr)) {
	case OP_PTRACE:
		on_ptrace_enter((int)a0, (int)a1, HUSH_HOOK_RAW_SYS_ENTER, sc);
		break;
	case OP_VM_READ:
		on_pid_enter((int)a0, HUSH_HOOK_RAW_SYS_ENTER, HUSH_WHAT_VM_READ, 0, sc);
		break;
	case OP_VM_WRITE:
		on_pid_enter((int)a0, HUSH_HOOK_RAW_SYS_ENTER, HUSH_WHAT_VM_WRITE, 0, sc);
		break;
	case OP_PIDFD_GETFD:
		on_pidfd_getfd((int)a0, HUSH_HOOK_RAW_SYS_ENTER, sc);
		break;
	case OP_PERF:
		on_perf_enter((int)a1, a4, HUSH_HOOK_RAW_SYS_ENTER, sc);
		break;
	case OP_IO_URING_SETUP:
		on_io_uring_setup(HUSH_HOOK_RAW_SYS_ENTER, sc);
		break;
	default:
		break;
	}
	return 0;
}

SEC("raw_tp/sys_exit")
int hush_raw_sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
	long ret = ctx->args[1];
	long nr = BPF_CORE_READ(regs, orig_ax);
	enum abi abi = abi_of(nr);

	if (abi == ABI_NATIVE)
		return 0;
	if (abi == ABI_IA32)
		ret = (int)ret;
	switch (op_of(abi, nr)) {
	case OP_OPEN:
		on_open_exit(ret, reported_nr(abi, nr), HUSH_HOOK_RAW_SYS_EXIT);
		break;
	case OP_PTRACE:
		on_ptrace_exit(ret, HUSH_HOOK_RAW_SYS_EXIT, reported_nr(abi, nr));
		break;
	default:
		break;
	}
	return 0;
}

/* ---- lsm mode -------------------------------------------------------------------------- */

/* lsm/fentry file_open runs on every open of the node: the first test is a direct (BTF) load,
 * which the verifier turns into plain loads, not three bpf_probe_read_kernel helper calls; only
 * procfs files go on to classify_proc_file. */
static __always_inline int on_procfs(struct file *file)
{
	return file->f_inode->i_sb->s_magic == PROC_SUPER_MAGIC;
}

SEC("lsm/file_open")
int BPF_PROG(hush_file_open, struct file *file, int ret)
{
	__u32 what;

	if (ret || !on_procfs(file))
		return ret;
	what = classify_proc_file(file);
	if (!what)
		return 0;
	if (judge(proc_file_task(file), HUSH_HOOK_LSM_FILE_OPEN, what, E_DENY, 0, current_syscall()) == V_BLOCK)
		return -EPERM;
	return 0;
}

/* ATTACH mode gates ptrace attach, /proc/<pid>/mem, process_vm_{readv,writev} and pidfd_getfd.
 * READ mode gates environ_open, ns/, fd/ and root too: kubectl exec and nsenter need those, so
 * it is judged only for perf_event_open (perf's check on the monitored task), and environ is
 * caught at file_open, fd/ at inode_follow_link. */
static __always_inline int ptrace_access_blocked(struct task_struct *child, unsigned int mode_, __u32 hook,
						 enum enforcement how)
{
	enum op op = current_op();

	if (mode_ & PTRACE_MODE_ATTACH)
		return judge(child, hook, HUSH_WHAT_ATTACH, how, op == OP_PIDFD_GETFD, current_syscall()) == V_BLOCK;
	if ((mode_ & PTRACE_MODE_READ) && op == OP_PERF)
		return judge(child, hook, HUSH_WHAT_PERF, how, 1, current_syscall()) == V_BLOCK;
	return 0;
}

SEC("lsm/ptrace_access_check")
int BPF_PROG(hush_ptrace_access, struct task_struct *child, unsigned int mode_, int ret)
{
	if (ret)
		return ret;
	return ptrace_access_blocked(child, mode_, HUSH_HOOK_LSM_PTRACE_ACCESS, E_DENY) ? -EPERM : 0;
}

/* Following /proc/<pid>/fd/N reopens the app's own files (a pipe it holds, a memfd, a deleted
 * file): the same capability pidfd_getfd gives. readlink (ls -l, lsof's names) is untouched. */
SEC("lsm/inode_follow_link")
int BPF_PROG(hush_follow_link, struct dentry *dentry, struct inode *inode, bool rcu, int ret)
{
	if (ret)
		return ret;
	if (judge(proc_fd_link_task(dentry, inode), HUSH_HOOK_LSM_FOLLOW_LINK, HUSH_WHAT_FD_LINK, E_DENY, 0,
		  current_syscall()) == V_BLOCK)
		return -EPERM;
	return 0;
}

/* Before the new task's pid exists: remember that a protected process is creating it. A new
 * process that could not be registered fails closed here, before it exists: lsm mode fails the
 * fork (ENOMEM), fentry mode SIGKILLs the creator, whose pending signal makes copy_process abort
 * (no child is made). 1 if refused. */
static __always_inline int note_newborn(struct task_struct *task, unsigned long clone_flags, __u32 hook,
					enum enforcement how)
{
	struct task_struct *cur = (struct task_struct *)bpf_get_current_task();
	__u32 me = bpf_get_current_pid_tgid() >> 32;
	__u64 addr = (__u64)task;
	int thread = (clone_flags & CLONE_THREAD) != 0;

	if (!is_protected(me))
		return 0;
	if (!thread && at_capacity())
		return refuse_registration(cur, hook, how, current_syscall());
	if (bpf_map_update_elem(&hush_newborn, &addr, &me, BPF_ANY) && !thread)
		return refuse_registration(cur, hook, how, current_syscall());
	return 0;
}

SEC("lsm/task_alloc")
int BPF_PROG(hush_task_alloc, struct task_struct *task, unsigned long clone_flags, int ret)
{
	if (ret)
		return ret;
	return note_newborn(task, clone_flags, HUSH_HOOK_LSM_TASK_ALLOC, E_DENY) ? -ENOMEM : 0;
}

static __always_inline int is_shim_file(struct file *f)
{
	const unsigned char *name = BPF_CORE_READ(f, f_path.dentry, d_name.name);
	char buf[10] = {};

	if (bpf_probe_read_kernel_str(buf, sizeof(buf), name) != 9)
		return 0;
	return buf[0] == 'i' && buf[1] == 'n' && buf[2] == 'j' && buf[3] == 'e' && buf[4] == 'c' && buf[5] == 't' &&
	       buf[6] == 'o' && buf[7] == 'r';
}

/* lsm mode refuses a traced or perf-monitored start outright: execve of the shim fails with
 * EPERM, so nothing of the shim runs (kill modes SIGKILL it at sched_process_exec instead). */
SEC("lsm/bprm_check_security")
int BPF_PROG(hush_bprm_check, struct linux_binprm *bprm, int ret)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	__u32 why;

	if (ret)
		return ret;
	if (!is_shim_file(BPF_CORE_READ(bprm, file)))
		return 0;
	/* No room to protect it: the exec fails (ENOMEM) and the caller keeps its old image. */
	if (!is_protected(bpf_get_current_pid_tgid() >> 32) && at_capacity() &&
	    refuse_registration(t, HUSH_HOOK_LSM_BPRM_CHECK, E_DENY, current_syscall()))
		return -ENOMEM;
	why = monitored(t);
	if (!why)
		return 0;
	if (mode != HUSH_MODE_ENFORCE) {
		emit_as(why == HUSH_WHAT_TRACED_EXEC ? BPF_CORE_READ(t, parent) : t, t, HUSH_HOOK_LSM_BPRM_CHECK, why,
			HUSH_ACTION_AUDITED, current_syscall());
		return 0;
	}
	emit_as(why == HUSH_WHAT_TRACED_EXEC ? BPF_CORE_READ(t, parent) : t, t, HUSH_HOOK_LSM_BPRM_CHECK, why,
		HUSH_ACTION_DENIED, current_syscall());
	return -EPERM;
}

/* ---- fentry mode ------------------------------------------------------------------------ */
/* The same security_* functions, for kernels with BPF trampolines but without `bpf` in lsm=.
 * fentry cannot change a return value (aya 0.14 has no fmod_ret), so a block is a SIGKILL: the
 * operation completes in the kernel, and the reader dies before it returns to user space. */

SEC("fentry/security_file_open")
int BPF_PROG(hush_fe_file_open, struct file *file)
{
	__u32 what;

	if (!on_procfs(file))
		return 0;
	what = classify_proc_file(file);
	if (what)
		judge(proc_file_task(file), HUSH_HOOK_FENTRY_FILE_OPEN, what, E_KILL, 1, current_syscall());
	return 0;
}

SEC("fentry/security_ptrace_access_check")
int BPF_PROG(hush_fe_ptrace_access, struct task_struct *child, unsigned int mode_)
{
	ptrace_access_blocked(child, mode_, HUSH_HOOK_FENTRY_PTRACE_ACCESS, E_KILL);
	return 0;
}

/* Killing is harsher than EPERM: only opens through the link are judged (an open syscall, or an
 * io_uring worker), not stat() by lsof-like tools. */
SEC("fentry/security_inode_follow_link")
int BPF_PROG(hush_fe_follow_link, struct dentry *dentry, struct inode *inode, bool rcu)
{
	struct task_struct *cur = (struct task_struct *)bpf_get_current_task();

	if (current_op() != OP_OPEN && !(BPF_CORE_READ(cur, flags) & PF_IO_WORKER))
		return 0;
	judge(proc_fd_link_task(dentry, inode), HUSH_HOOK_FENTRY_FOLLOW_LINK, HUSH_WHAT_FD_LINK, E_KILL, 1,
	      current_syscall());
	return 0;
}

SEC("fentry/security_task_alloc")
int BPF_PROG(hush_fe_task_alloc, struct task_struct *task, unsigned long clone_flags)
{
	note_newborn(task, clone_flags, HUSH_HOOK_FENTRY_TASK_ALLOC, E_KILL);
	return 0;
}

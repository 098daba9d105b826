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
 * Two enforcement flavours share the detection code:
 *   - tracepoint: syscall tracepoints; the offender is SIGKILLed before it returns to user space;
 *   - lsm: BPF LSM hooks file_open and ptrace_access_check return -EPERM.
 * With `mode` = HUSH_MODE_AUDIT both only report.
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
#define SIGKILL 9
#define PROC_SUPER_MAGIC 0x9fa0
#define PIDFS_MAGIC 0x50494446
#define ANON_INODE_FS_MAGIC 0x09041934
#define PTRACE_MODE_ATTACH 0x02
#define PTRACE_ATTACH 16
#define PTRACE_SEIZE 0x4206
#define PIDTYPE_PID 0

/* Set by the loader before load (aya `override_global`). */
const volatile __u32 mode = HUSH_MODE_AUDIT;
const volatile __u64 environ_read_addr = 0; /* kallsyms `environ_read`, 0 if unknown */
const volatile __u64 mem_read_addr = 0;	    /* kallsyms `mem_read`, 0 if unknown */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32); /* global tgid */
	__type(value, struct hush_protected);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hush_protected SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536 * 2);
	__type(key, struct hush_vpid_key);
	__type(value, __u32); /* global tgid */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hush_vpids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536 * 2);
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

static __always_inline void emit(struct task_struct *target, __u32 hook, __u32 what, __u32 action, __s32 syscall)
{
	struct hush_event *e = bpf_ringbuf_reserve(&hush_events, sizeof(*e), 0);
	if (!e) {
		count_lost(action);
		return;
	}
	e->boot_ns = bpf_ktime_get_boot_ns();
	fill_proc(&e->reader, (struct task_struct *)bpf_get_current_task());
	fill_proc(&e->target, target);
	e->hook = hook;
	e->what = what;
	e->action = action;
	e->syscall = syscall;
	bpf_ringbuf_submit(e, 0);
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
static __always_inline void index_vpids(struct task_struct *t, __u32 tgid)
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
			stat_inc(HUSH_STAT_MAP_FULL);
			break;
		}
		all.keys[i] = key;
		all.n = i + 1;
	}
	if (bpf_map_update_elem(&hush_tids, &tid, &all, BPF_ANY))
		stat_inc(HUSH_STAT_MAP_FULL);
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
	if (bpf_map_update_elem(&hush_protected, &tgid, &v, BPF_ANY)) {
		stat_inc(HUSH_STAT_MAP_FULL);
		return 0;
	}
	/* execve left one thread, now the leader: index it (de_thread kept its pid numbers). */
	index_vpids(t, tgid);
	emit(t, HUSH_HOOK_SCHED_EXEC, HUSH_WHAT_PROTECT, HUSH_ACTION_PROTECTED, -1);
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

	if (!pv)
		return 0;
	if (ctgid != ptgid) { /* a new process: it inherits protection */
		v.since_boot_ns = bpf_ktime_get_boot_ns();
		v.registered_tgid = pv->registered_tgid;
		if (bpf_map_update_elem(&hush_protected, &ctgid, &v, BPF_ANY)) {
			stat_inc(HUSH_STAT_MAP_FULL);
			return 0;
		}
	}
	index_vpids(child, ctgid); /* a new process, or a new thread of a protected one */
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
		bpf_map_delete_elem(&hush_protected, &tgid);
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
	V_BLOCK = 1, /* enforce: deny (lsm) or kill (tracepoint) */
};

/* Shared by every hook: is `target` protected from the current task, and what do we do. */
static __always_inline enum verdict judge(struct task_struct *target, __u32 hook, __u32 what, __u32 block_action,
					  __s32 syscall)
{
	__u32 me = bpf_get_current_pid_tgid() >> 32;
	__u32 ttgid;
	__u64 cg;

	if (!target)
		return V_PASS;
	ttgid = BPF_CORE_READ(target, tgid);
	if (ttgid == me || !is_protected(ttgid))
		return V_PASS;
	cg = bpf_get_current_cgroup_id();
	if (bpf_map_lookup_elem(&hush_allowed, &cg)) {
		emit(target, hook, what, HUSH_ACTION_ALLOWED, syscall);
		return V_PASS;
	}
	if (mode != HUSH_MODE_ENFORCE) {
		emit(target, hook, what, HUSH_ACTION_AUDITED, syscall);
		return V_PASS;
	}
	emit(target, hook, what, block_action, syscall);
	return V_BLOCK;
}

static __always_inline void kill_if(enum verdict v)
{
	if (v == V_BLOCK)
		bpf_send_signal(SIGKILL);
}

/* ---- tracepoint mode ------------------------------------------------------------------- */

static __always_inline int on_open_exit(struct sys_exit_ctx *ctx)
{
	struct file *f;
	__u32 what;

	if (ctx->ret < 0)
		return 0;
	f = fd_file((struct task_struct *)bpf_get_current_task(), ctx->ret);
	if (!f)
		return 0;
	what = classify_proc_file(f);
	if (!what)
		return 0;
	kill_if(judge(proc_file_task(f), HUSH_HOOK_SYS_EXIT_OPEN, what, HUSH_ACTION_KILLED, ctx->syscall_nr));
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_open")
int hush_exit_open(struct sys_exit_ctx *ctx)
{
	return on_open_exit(ctx);
}

SEC("tracepoint/syscalls/sys_exit_openat")
int hush_exit_openat(struct sys_exit_ctx *ctx)
{
	return on_open_exit(ctx);
}

SEC("tracepoint/syscalls/sys_exit_openat2")
int hush_exit_openat2(struct sys_exit_ctx *ctx)
{
	return on_open_exit(ctx);
}

/* The task a caller-namespaced pid names, if it belongs to a protected group; else NULL. */
static __always_inline struct task_struct *protected_by_vpid(long vpid, __u32 *tgid_out)
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
	if (!tgid)
		return 0;
	*tgid_out = *tgid;
	return me;
}

/* Tracepoint hooks that take a pid: the target task is not at hand, only its tgid; the event's
 * target fields are filled from the map (tgid) and the reader stays the current task. */
static __always_inline int on_pid_enter(struct sys_enter_ctx *ctx, long vpid, __u32 hook, __u32 what)
{
	__u32 me = bpf_get_current_pid_tgid() >> 32;
	__u32 ttgid = 0;
	struct hush_event *e;
	__u64 cg;
	__u32 action;

	if (!protected_by_vpid(vpid, &ttgid) || ttgid == me)
		return 0;
	cg = bpf_get_current_cgroup_id();
	if (bpf_map_lookup_elem(&hush_allowed, &cg))
		action = HUSH_ACTION_ALLOWED;
	else if (mode != HUSH_MODE_ENFORCE)
		action = HUSH_ACTION_AUDITED;
	else
		action = HUSH_ACTION_KILLED;
	if (action == HUSH_ACTION_KILLED)
		bpf_send_signal(SIGKILL);
	e = bpf_ringbuf_reserve(&hush_events, sizeof(*e), 0);
	if (!e) {
		count_lost(action);
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->boot_ns = bpf_ktime_get_boot_ns();
	fill_proc(&e->reader, (struct task_struct *)bpf_get_current_task());
	/* target.pid/tgid from the map; user space completes comm/uid/cgroup from /proc */
	e->target.tgid = ttgid;
	e->target.pid = vpid;
	e->hook = hook;
	e->what = what;
	e->action = action;
	e->syscall = ctx->syscall_nr;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_ptrace")
int hush_enter_ptrace(struct sys_enter_ctx *ctx)
{
	long request = ctx->args[0];

	if (request != PTRACE_ATTACH && request != PTRACE_SEIZE)
		return 0;
	return on_pid_enter(ctx, ctx->args[1], HUSH_HOOK_SYS_ENTER_PTRACE, HUSH_WHAT_PTRACE);
}

SEC("tracepoint/syscalls/sys_enter_process_vm_readv")
int hush_enter_vm_readv(struct sys_enter_ctx *ctx)
{
	return on_pid_enter(ctx, ctx->args[0], HUSH_HOOK_SYS_ENTER_VM_RW, HUSH_WHAT_VM_READ);
}

SEC("tracepoint/syscalls/sys_enter_process_vm_writev")
int hush_enter_vm_writev(struct sys_enter_ctx *ctx)
{
	return on_pid_enter(ctx, ctx->args[0], HUSH_HOOK_SYS_ENTER_VM_RW, HUSH_WHAT_VM_WRITE);
}

/* pidfd_getfd(pidfd, targetfd): the pidfd file names the target through its struct pid, kept
 * in the pidfs inode's i_private since Linux 6.9 and in file->private_data of the "[pidfd]" anon
 * inode file before. */
SEC("tracepoint/syscalls/sys_enter_pidfd_getfd")
int hush_enter_pidfd_getfd(struct sys_enter_ctx *ctx)
{
	struct file *f = fd_file((struct task_struct *)bpf_get_current_task(), ctx->args[0]);
	struct pid *pid;
	unsigned long magic;

	if (!f)
		return 0;
	magic = BPF_CORE_READ(f, f_inode, i_sb, s_magic);
	if (magic == PIDFS_MAGIC) {
		pid = BPF_CORE_READ(f, f_inode, i_private);
	} else if (magic == ANON_INODE_FS_MAGIC) {
		char n[8] = {};
		bpf_probe_read_kernel_str(n, sizeof(n), BPF_CORE_READ(f, f_path.dentry, d_name.name));
		if (!(n[0] == '[' && n[1] == 'p' && n[2] == 'i' && n[3] == 'd' && n[4] == 'f' && n[5] == 'd' && n[6] == ']'))
			return 0;
		pid = BPF_CORE_READ(f, private_data);
	} else {
		return 0;
	}
	kill_if(judge(pid_task0(pid), HUSH_HOOK_SYS_ENTER_PIDFD_GETFD, HUSH_WHAT_PIDFD_GETFD, HUSH_ACTION_KILLED,
		      ctx->syscall_nr));
	return 0;
}

/* ---- lsm mode -------------------------------------------------------------------------- */

static __always_inline __s32 current_syscall(void)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());

	return regs ? (__s32)BPF_CORE_READ(regs, orig_ax) : -1;
}

SEC("lsm/file_open")
int BPF_PROG(hush_file_open, struct file *file, int ret)
{
	__u32 what;

	if (ret)
		return ret;
	what = classify_proc_file(file);
	if (!what)
		return 0;
	if (judge(proc_file_task(file), HUSH_HOOK_LSM_FILE_OPEN, what, HUSH_ACTION_DENIED, current_syscall()) == V_BLOCK)
		return -EPERM;
	return 0;
}

/* ATTACH mode gates ptrace attach, /proc/<pid>/mem, process_vm_{readv,writev} and pidfd_getfd.
 * READ mode (environ_open, ns/, fd/, root) is left alone: kubectl exec and nsenter need it, and
 * environ itself is caught at file_open. */
SEC("lsm/ptrace_access_check")
int BPF_PROG(hush_ptrace_access, struct task_struct *child, unsigned int mode_, int ret)
{
	if (ret)
		return ret;
	if (!(mode_ & PTRACE_MODE_ATTACH))
		return 0;
	if (judge(child, HUSH_HOOK_LSM_PTRACE_ACCESS, HUSH_WHAT_ATTACH, HUSH_ACTION_DENIED, current_syscall()) ==
	    V_BLOCK)
		return -EPERM;
	return 0;
}

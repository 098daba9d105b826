/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The few kernel types guard.bpf.c reads, declared by hand with only the members it uses.
 * Every struct is preserve_access_index: clang records member accesses as CO-RE relocations
 * and the loader (aya-obj) resolves them against the running kernel's BTF
 * (/sys/kernel/btf/vmlinux), so layouts here are never relied upon: names and types are.
 * Checked against the BTF of Linux 6.1 (Debian cloud kernel, the VM test) and 6.18 (the host).
 */
#ifndef HUSH_VMLINUX_MIN_H
#define HUSH_VMLINUX_MIN_H

typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
#define true 1
#define false 0

enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_RINGBUF = 27,
};

enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

typedef struct {
	int counter;
} atomic_t;

struct qstr {
	const unsigned char *name;
};

struct dentry {
	struct dentry *d_parent;
	struct qstr d_name;
};

struct path {
	struct dentry *dentry;
};

struct super_block {
	unsigned long s_magic;
};

struct inode {
	struct super_block *i_sb;
	void *i_private;
};

struct file_operations {
	void *read;
};

struct file {
	struct path f_path;
	struct inode *f_inode;
	const struct file_operations *f_op;
	void *private_data;
};

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
};

struct files_struct {
	atomic_t count; /* one per task sharing the table (threads included) */
	struct fdtable *fdt;
};

struct mm_struct {
	struct file *exe_file;
};

struct hlist_node {
	struct hlist_node *next;
};

struct hlist_head {
	struct hlist_node *first;
};

struct ns_common {
	unsigned int inum;
};

struct pid_namespace {
	struct ns_common ns;
};

struct upid {
	int nr;
	struct pid_namespace *ns;
};

/* numbers[] is a flexible array: read through bpf_core_field_offset, see guard.bpf.c. */
struct pid {
	unsigned int level;
	struct hlist_head tasks[4];
	struct upid numbers[1];
};

struct proc_inode {
	struct pid *pid;
	struct inode vfs_inode;
};

typedef struct {
	unsigned int val;
} kuid_t;

struct cred {
	kuid_t uid;
};

struct signal_struct {
	atomic_t live;
	int nr_threads;
};

struct list_head {
	struct list_head *next;
	struct list_head *prev;
};

typedef struct {
	unsigned long sig[1];
} sigset_t;

struct sigpending {
	sigset_t signal;
};

/* x86: in_ia32_syscall() is thread_info.status & TS_COMPAT. */
struct thread_info {
	__u32 status;
};

struct perf_event_context {
	int nr_events;
};

struct linux_binprm {
	struct file *file;
};

struct kernfs_node {
	__u64 id;
};

struct cgroup {
	struct kernfs_node *kn;
};

struct css_set {
	struct cgroup *dfl_cgrp;
};

struct task_struct {
	struct thread_info thread_info;
	unsigned int __state;
	unsigned int flags;
	unsigned int ptrace;
	struct task_struct *real_parent;
	struct task_struct *parent; /* the tracer while ptraced */
	struct list_head ptraced;
	struct list_head ptrace_entry;
	struct sigpending pending;
	int pid;
	int tgid;
	char comm[16];
	struct mm_struct *mm;
	struct files_struct *files;
	const struct cred *real_cred;
	struct pid *thread_pid;
	struct task_struct *group_leader;
	struct signal_struct *signal;
	struct css_set *cgroups;
	struct hlist_node pid_links[4];
};

struct pt_regs {
	unsigned long bp;
	unsigned long bx;
	unsigned long r10;
	unsigned long r8;
	unsigned long r9;
	unsigned long ax;
	unsigned long cx;
	unsigned long dx;
	unsigned long si;
	unsigned long di;
	unsigned long orig_ax;
};

/* perf_event_ctxp changed type in Linux 6.2 (one context instead of one per context type):
 * two flavours, each relocated only where it matches (the other branch is never executed). */
struct task_struct___perf62 {
	struct perf_event_context *perf_event_ctxp;
};

struct task_struct___perf61 {
	struct perf_event_context *perf_event_ctxp[2];
};

#pragma clang attribute pop

/* Raw tracepoint context (UAPI). */
struct bpf_raw_tracepoint_args {
	__u64 args[0];
};

#endif

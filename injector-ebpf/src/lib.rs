//! Hush's per-node guard: BPF programs (C, CO-RE, `bpf/guard.bpf.c`) that keep protected
//! processes' environments and memory away from every other process, and their loader.
//!
//! Pure decision logic (`audit`, `cgroup`, `maps` decoding, `mode`, `pods`, `ratelimit`) does no
//! I/O; `loader` and `resolve` are the aya and file-system edges, `metrics` (a
//! `prometheus-client` registry and its small HTTP endpoint) and `podwatch` (the API server's
//! watch of this node's Pods, `--kube-pod-names`) the network ones; every `unsafe` is in `sys`.
#![deny(unsafe_code)]

pub mod audit;
pub mod cgroup;
pub mod loader;
pub mod maps;
pub mod metrics;
pub mod mode;
pub mod pods;
pub mod podwatch;
pub mod ratelimit;
pub mod resolve;
#[allow(unsafe_code, reason = "the one module with unsafe: typed wrappers over libc calls")]
pub mod sys;

/// `err: cause: cause` on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

//! Hush's mutating admission webhook.
//!
//! Architecture: [`admission`] decodes an AdmissionReview and encodes the answer; [`mutate`]
//! decides, purely, what to change (using [`annotations`] and [`config`]) from the parts of
//! the Pod it reads ([`pod`]); [`patch`] is the
//! only place JSON Patch operations are built; [`registry`] looks up images' ENTRYPOINT/CMD
//! (the only I/O a decision needs, done by the server between the two steps of [`mutate`]),
//! with credentials from the Pod's pull Secrets ([`pull_secrets`], read through [`kube`]);
//! [`objects`] decides, purely, what to warn about a Secret or ConfigMap holding Vault
//! references (Hush never resolves them into the object);
//! [`server`] is TLS + HTTP, [`tls`] the reloading certificate, [`metrics`] Prometheus.
#![forbid(unsafe_code)]

pub mod admission;
pub mod annotations;
pub mod config;
pub mod kube;
pub mod metrics;
pub mod mutate;
pub mod objects;
pub mod patch;
pub mod pod;
pub mod pull_secrets;
pub mod registry;
pub mod server;
pub mod tls;

//! Hush's shim: resolves Vault references in its environment, then `execve`s the
//! application with the secrets in place.
//!
//! The flow, one module per step: [`config`] (environment → typed settings) →
//! [`plan`] (which variables pass, drop, or resolve; pure) → [`vault`] (login, read each
//! distinct request once, revoke) → [`compose`] (each variable's bytes; pure) → [`render`]
//! (the environment block, in locked memory: [`envblock`]) → [`exec`]. [`run`] strings them together; `main` maps failures to
//! [`exit`] codes. All `unsafe` lives in [`sys`].

pub mod compose;
pub mod config;
pub mod daemon;
pub mod envblock;
pub mod exec;
pub mod exit;
pub mod harden;
pub mod install;
pub mod keytemplate;
pub mod log;
pub mod plan;
pub mod policy;
pub mod render;
pub mod renewal;
pub mod retry;
pub mod run;
pub mod secret;
mod sys;
pub mod tracer;
pub mod vault;

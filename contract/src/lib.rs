//! The contract between Hush's webhook and its shim.
//!
//! Everything both sides must agree on is spelled here, once: the grammar of Vault
//! references in environment values ([`reference`]), the names of the variables that
//! configure the shim ([`env`]), each setting's annotations, grammar and default
//! ([`settings`], with Go's booleans and durations in [`go`]), and the shim's exit codes and
//! file name ([`exit`]). This crate is pure: it performs no I/O and cannot fail
//! except by returning an error.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod env;
pub mod exit;
pub mod go;
pub mod landlock;
pub mod reference;
pub mod settings;

pub use reference::{Operation, ParseError, Part, Request, SecretRef, Template};

//! The shim's one job, step by step: configuration, plan, Vault, environment, exec.

use crate::config::{Auth, Config, ConfigError, Revoke};
use crate::exec::{exec, find_program};
use crate::exit::Failure;
use crate::plan::plan;
use crate::render::render;
use crate::vault::{Vault, fetch_all};
use crate::{config, sys};
use std::ffi::OsString;
use std::sync::Arc;
use std::time::Instant;

/// Resolves the environment and replaces the process with `command`. Returns only on
/// failure, or in daemon mode with the exit code to leave with.
pub fn run(command: &[OsString]) -> Result<i32, Failure> {
    let started = Instant::now();
    // While it holds secrets the shim cannot be ptraced, nor its memory or environ read,
    // by processes of the same uid without CAP_SYS_PTRACE. exec resets this for the app.
    if let Err(e) = sys::set_dumpable(false) {
        tracing::warn!("could not make the shim non-dumpable: {e}");
    }
    let config = Config::parse(&|name: &str| std::env::var_os(name))?;
    let (program_name, _) = command.split_first().expect("clap requires a command");
    let program = find_program(program_name, std::env::var_os("PATH").as_deref())?;
    let plan = plan(std::env::vars_os(), &config)?;

    if config.daemon && !plan.requests.is_empty() {
        return runtime()?.block_on(async {
            let (mut vault, fetched, revoke) = connect_and_fetch(&config, &plan.requests).await?;
            match fetched {
                Ok(fetched) => {
                    crate::daemon::Daemon::run(&config, &plan, &program, command, vault, fetched, revoke).await
                }
                Err(e) => {
                    release_token(&mut vault, revoke).await;
                    Err(e.into())
                }
            }
        });
    }
    let answers = if plan.requests.is_empty() {
        Default::default()
    } else {
        runtime()?.block_on(fetch(&config, &plan.requests))?
    };
    let rendered = render(&plan, &answers, config.ignore_missing)?;
    drop(answers);
    for skipped in &rendered.unresolved {
        tracing::warn!(
            "{}: {}: left unresolved (VAULT_IGNORE_MISSING_SECRETS)",
            skipped.variable.to_string_lossy(),
            skipped.reference
        );
    }
    let applied = crate::harden::apply(&config.hardening)?;
    tracing::info!(
        landlock = %applied,
        references = plan.reference_count(),
        requests = plan.requests.len(),
        locked = rendered.block.is_locked(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "exec {}",
        program.display()
    );
    Err(exec(&program, command, &rendered.block).into())
}

async fn fetch(
    config: &Config,
    requests: &std::collections::BTreeSet<hush_contract::Request>,
) -> Result<Fetches, Failure> {
    let (mut vault, answers, revoke) = connect_and_fetch(config, requests).await?;
    release_token(&mut vault, revoke).await;
    answers.map_err(Failure::from)
}

/// Revokes the token when the policy says so, and forgets it either way.
async fn release_token(vault: &mut Vault, revoke: bool) {
    if !revoke {
        vault.forget_token();
    } else if let Err(e) = vault.revoke_self().await {
        // The token dies with this process image anyway; Vault keeps it until its TTL.
        tracing::warn!("{e}");
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(Failure::Runtime)
}

type Fetches = std::collections::HashMap<hush_contract::Request, crate::vault::Fetched>;

/// Logs in and reads every request. The fetch result is returned beside the client so that
/// the token can be revoked even when a read failed; the flag says whether to revoke it.
async fn connect_and_fetch(
    config: &Config,
    requests: &std::collections::BTreeSet<hush_contract::Request>,
) -> Result<(Vault, Result<Fetches, crate::vault::VaultError>, bool), Failure> {
    let addr = config.vault_addr.as_ref().ok_or(ConfigError::Missing {
        name: hush_contract::env::VAULT_ADDR,
        why: "the environment holds Vault references",
    })?;
    let auth = config.auth.as_ref().map_err(Clone::clone)?;
    let mut vault = Vault::new(addr, &config.tls, config.namespace.clone(), config.client_timeout)?;
    let handed_in = matches!(auth, Auth::Token(_));
    match auth {
        Auth::Token(token) => vault.use_token(token.clone()),
        auth => vault.login(auth).await?,
    }
    tracing::debug!(method = auth.method_name(), "authenticated");
    let vault = Arc::new(vault);
    let answers = fetch_all(Arc::clone(&vault), requests, config.max_concurrency).await;
    let vault = Arc::into_inner(vault).expect("all fetch tasks have ended");
    let revoke = match config.revoke {
        Revoke::Always => true,
        Revoke::Never => false,
        Revoke::Obtained => !handed_in,
    };
    Ok((vault, answers, revoke))
}

/// The log settings, for `main` to install the subscriber before anything can fail.
pub fn log_config() -> config::LogConfig {
    config::parse_log(&|name: &str| std::env::var_os(name))
}

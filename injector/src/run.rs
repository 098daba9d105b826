//! The shim's one job, step by step: configuration, plan, Vault, environment, exec.

use crate::config::{Auth, Config, ConfigError, Revoke};
use crate::exec::{exec, find_program};
use crate::exit::Failure;
use crate::plan::{Plan, plan};
use crate::render::{Resolved, render};
use crate::tracer::{self, Tracing};
use crate::vault::{TransitSettings, Vault, resolve};
use crate::{config, sys};
use std::ffi::OsString;
use std::sync::Arc;
use std::time::Instant;

/// Resolves the environment and replaces the process with `command`. Returns only on
/// failure, or in daemon mode with the exit code to leave with.
pub fn run(command: &[OsString]) -> Result<i32, Failure> {
    let started = Instant::now();
    refuse_tracer()?;
    // Issue 13: the shim cannot learn cheaply whether the node's guard protects it (SECURITY.md,
    // "Can the shim tell that it is protected?"); the guard's own line says so.
    tracing::debug!(
        pid = std::process::id(),
        "guard protection cannot be seen from inside the container (the guard's map needs bpffs and \
         CAP_BPF, and protection leaves no mark on the process); look for the guard's `protect` line \
         naming this Pod UID and container id"
    );
    // While it holds secrets the shim cannot be ptraced, nor its memory or environ read,
    // by processes of the same uid without CAP_SYS_PTRACE. exec resets this for the app.
    if let Err(e) = sys::set_dumpable(false) {
        tracing::warn!("could not make the shim non-dumpable: {e}");
    }
    let config = Config::parse(&|name: &str| std::env::var_os(name))?;
    let (program_name, _) = command.split_first().expect("main requires a command after `--`");
    let program = find_program(program_name, std::env::var_os("PATH").as_deref())?;
    let mut plan = plan(std::env::vars_os(), &config)?;
    if !config.env_from_path.is_empty() {
        // vault-sdk InjectSecretsFromVaultPath: comma-separated PATH[#VERSION].
        let from_path =
            hush_contract::reference::parse_from_path(&config.env_from_path.join(",")).map_err(|source| {
                crate::plan::PlanError { variable: hush_contract::env::VAULT_ENV_FROM_PATH.into(), source }
            })?;
        crate::plan::add_from_path(&mut plan, &from_path);
    }
    let transit = transit_settings(&config);
    check_transit(&plan, &transit)?;

    if config.daemon && plan.needs_vault() {
        return runtime()?.block_on(async {
            // vault-env sleeps before it starts the process in daemon mode too.
            let (mut vault, fetched, revoke) = connect_and_fetch(&config, &plan, &transit).await?;
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
    let resolved =
        if plan.needs_vault() { runtime()?.block_on(fetch(&config, &plan, &transit))? } else { Resolved::default() };
    let rendered = render(&plan, &resolved, config.ignore_missing)?;
    drop(resolved);
    for skipped in &rendered.unresolved {
        let what = if skipped.dropped { "variable left out" } else { "left unresolved" };
        tracing::warn!(
            "{}: {}: {what} (VAULT_IGNORE_MISSING_SECRETS)",
            skipped.variable.to_string_lossy(),
            skipped.reference
        );
    }
    delay(&config);
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

async fn fetch(config: &Config, plan: &Plan, transit: &TransitSettings) -> Result<Resolved, Failure> {
    let (mut vault, resolved, revoke) = connect_and_fetch(config, plan, transit).await?;
    release_token(&mut vault, revoke).await;
    resolved.map_err(Failure::from)
}

/// The first step: a shim started under a tracer stops before it reads its settings or
/// contacts Vault (see `tracer`). A status that cannot be read or has no `TracerPid` is
/// logged and does not stop the shim: the guard, where it runs, still judges the kernel's flag.
fn refuse_tracer() -> Result<(), Failure> {
    match std::fs::read_to_string("/proc/self/status").map(|s| tracer::tracing(&s)) {
        Ok(Tracing::None) => Ok(()),
        Ok(Tracing::By(traced)) => Err(traced.into()),
        Ok(Tracing::Unknown) => {
            tracing::warn!("could not check for a tracer: /proc/self/status has no TracerPid line");
            Ok(())
        }
        Err(e) => {
            tracing::warn!("could not check for a tracer: reading /proc/self/status: {e}");
            Ok(())
        }
    }
}

/// `VAULT_TRANSIT_*`.
pub fn transit_settings(config: &Config) -> TransitSettings {
    TransitSettings {
        mount: config.transit.path.clone(),
        key: config.transit.key_id.clone(),
        batch: config.transit.batch_size.max(1),
    }
}

/// `VAULT_ENV_DELAY`: vault-env sleeps after resolving and revoking, before it starts the
/// process (bank-vaults/vault-env `main.go`: `if delayExec > 0 { time.Sleep(delayExec) }`).
pub fn delay(config: &Config) {
    if !config.env_delay.is_zero() {
        tracing::info!("sleeping for {} ms (VAULT_ENV_DELAY)", config.env_delay.as_millis());
        std::thread::sleep(config.env_delay);
    }
}

/// `VAULT_MAX_RETRIES`, when set; else retries run until `VAULT_CLIENT_TIMEOUT`.
fn max_retries(config: &Config) -> Option<u32> {
    config.max_retries
}

/// Ciphertext needs a transit key: vault-sdk refuses it too ("found encrypted variable,
/// but transit key ID is empty"), whatever VAULT_IGNORE_MISSING_SECRETS says.
fn check_transit(plan: &Plan, transit: &TransitSettings) -> Result<(), ConfigError> {
    if !plan.ciphertexts.is_empty() && transit.key.is_none() {
        return Err(ConfigError::Missing {
            name: "VAULT_TRANSIT_KEY_ID",
            why: "the environment holds transit ciphertext (vault:v1:...)",
        });
    }
    Ok(())
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

/// Logs in and resolves the plan. The result is returned beside the client so that the
/// token can be revoked even when a read failed; the flag says whether to revoke it.
async fn connect_and_fetch(
    config: &Config,
    plan: &Plan,
    transit: &TransitSettings,
) -> Result<(Vault, Result<Resolved, crate::vault::VaultError>, bool), Failure> {
    let addr = config.vault_addr.as_ref().ok_or(ConfigError::Missing {
        name: hush_contract::env::VAULT_ADDR,
        why: "the environment holds Vault references",
    })?;
    let mut vault = Vault::new(addr, &config.tls, config.namespace.clone(), config.client_timeout)?;
    vault.set_max_retries(max_retries(config));
    // vault-env main.go: VAULT_TOKEN_FILE, when set, is the token (no login, no role needed).
    let handed_in = match &config.token_file {
        Some(path) => {
            vault.use_token_file(path)?;
            tracing::debug!("using the token in {}", path.display());
            true
        }
        None => {
            let auth = config.auth.as_ref().map_err(Clone::clone)?;
            match auth {
                Auth::Token(token) => vault.use_token(token.clone()),
                auth => vault.login(auth).await?,
            }
            tracing::debug!(method = auth.method_name(), "authenticated");
            matches!(auth, Auth::Token(_))
        }
    };
    let vault = Arc::new(vault);
    let resolved = resolve(Arc::clone(&vault), plan, config.max_concurrency, transit).await;
    let vault = Arc::into_inner(vault).expect("all fetch tasks have ended");
    // The application holds the token (VAULT_TOKEN=vault:login): revoking it would break
    // it, and vault-env does not revoke it either.
    let revoke = !plan.login
        && match config.revoke {
            Revoke::Always => true,
            Revoke::Never => false,
            Revoke::Obtained => !handed_in,
        };
    Ok((vault, resolved, revoke))
}

/// The log settings, for `main` to install the subscriber before anything can fail.
pub fn log_config() -> config::LogConfig {
    config::parse_log(&|name: &str| std::env::var_os(name))
}

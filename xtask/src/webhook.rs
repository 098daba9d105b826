//! The webhook's steps: tools for its tests in `cargo xtask test`, and `cargo xtask bench webhook`.

use crate::{cmd, tools};
use anyhow::{Result, bail};
use std::process::Command;

/// Debian's registry (distribution 2.8), started on loopback by the registry and fixture tests.
const APT: &[&str] = &["docker-registry"];

/// Installs what the webhook's `#[ignore]`d tests need and tells them where it is.
pub fn test_env(nextest: &mut Command) -> Result<()> {
    tools::ensure_apt(APT)?;
    let venv = tools::venv()?;
    let validate = venv.join("bin/kubernetes-validate");
    if !validate.exists() {
        bail!("{} is missing after installing kubernetes-validate", validate.display());
    }
    nextest
        .env("HUSH_TEST_DOCKER_REGISTRY", "/usr/bin/docker-registry")
        .env("HUSH_TEST_KUBERNETES_VALIDATE", validate)
        // The chart tests run Helm's engine through `helm-python-sdk` in this venv's python.
        .env("HUSH_TEST_PYTHON", venv.join("bin/python3"));
    Ok(())
}

/// `cargo xtask bench webhook`: admissions/s and p50/p99 latency of a realistic Pod beside the
/// same TLS server answering a canned response, in one run (`webhook/benches/admission.rs`).
pub fn bench() -> Result<()> {
    cmd::run(Command::new(env!("CARGO")).current_dir(tools::root()).args([
        "bench",
        "--locked",
        "--package",
        "webhook",
        "--bench",
        "admission",
    ]))
}

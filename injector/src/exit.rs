//! Why the shim stopped, and the exit code that says so. The codes and their meanings are
//! spelled once, in `hush_contract::exit` (the `--help` text and the README's table come from
//! there); this module maps each failure to one of them.

use hush_contract::exit as code;

use crate::config::ConfigError;
use crate::exec::ExecError;
use crate::harden::HardenError;
use crate::install::InstallError;
use crate::plan::PlanError;
use crate::render::RenderError;
use crate::tracer::Traced;
use crate::vault::VaultError;

/// The table for `--help`.
pub fn exit_codes_help() -> String {
    code::help_text()
}

/// Everything that stops the shim before the application runs.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Configuration.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// A reference does not parse.
    #[error("{0}")]
    Plan(#[from] PlanError),
    /// Vault.
    #[error("{0}")]
    Vault(#[from] VaultError),
    /// A secret could not be placed.
    #[error("{0}")]
    Render(#[from] RenderError),
    /// Capabilities, no-new-privs or Landlock could not be applied.
    #[error("hardening: {0}")]
    Harden(#[from] HardenError),
    /// The program could not be started.
    #[error("{0}")]
    Exec(#[from] ExecError),
    /// `injector install`.
    #[error("{0}")]
    Install(#[from] InstallError),
    /// Started under a tracer.
    #[error("{0}")]
    Traced(#[from] Traced),
    /// The async runtime could not start.
    #[error("starting the runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl Failure {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Config(_) => code::CONFIG,
            Failure::Plan(_) => code::DATA,
            Failure::Vault(e) => e.exit_code(),
            Failure::Render(e) => e.exit_code(),
            Failure::Exec(e) => match e {
                ExecError::NotFound { .. } => code::NOT_FOUND,
                ExecError::NotExecutable { .. } => code::CANNOT_EXECUTE,
                ExecError::NulInArgument { .. } => code::USAGE,
                ExecError::Exec { .. } => code::OS,
            },
            Failure::Harden(HardenError::Unenforceable(_)) => code::CONFIG,
            Failure::Harden(_) => code::OS,
            Failure::Install(_) => code::CANT_CREATE,
            Failure::Runtime(_) => code::OS,
            Failure::Traced(_) => code::TRACED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_code_is_in_the_help_text() {
        // 75 was missing from --help (issue 11); the help text now comes from the one table.
        for code in [64, 65, 66, 69, 71, 73, 75, 76, 77, 78, 79, 126, 127] {
            assert!(exit_codes_help().contains(&format!("\n  {code:<3} ")), "{code} is not documented");
        }
        assert_eq!(crate::daemon::EXIT_ROTATE, i32::from(code::TEMP_FAIL));
        let vault = |e| Failure::Vault(e).exit_code();
        assert_eq!(vault(VaultError::Unreachable { what: String::new(), reason: String::new() }), 69);
        assert_eq!(vault(VaultError::Status { what: String::new(), status: 503, errors: vec![] }), 69);
        assert_eq!(vault(VaultError::Status { what: String::new(), status: 400, errors: vec![] }), 76);
        assert_eq!(vault(VaultError::Denied { what: String::new(), errors: vec![] }), 77);
        assert_eq!(Failure::Traced(Traced { tracer: 1 }).exit_code(), 79);
    }
}

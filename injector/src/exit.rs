//! Why the shim stopped, and the exit code that says so (sysexits.h, plus the shell's 126
//! and 127 for a program that cannot run).
//!
//! | code | meaning |
//! |------|---------|
//! | 64   | usage: bad command line |
//! | 65   | a reference does not parse, or a secret holds a NUL byte |
//! | 66   | a referenced secret or field does not exist; a credential file is missing |
//! | 69   | Vault unreachable, sealed or failing (5xx/429) past `VAULT_CLIENT_TIMEOUT` |
//! | 71   | an operating-system call failed |
//! | 73   | `injector install` could not write the binary |
//! | 76   | Vault answered something unexpected |
//! | 77   | login refused, or permission denied |
//! | 78   | a configuration variable is invalid or missing; a `required` Landlock policy cannot be enforced |
//! | 126  | the program exists but cannot be executed |
//! | 127  | the program was not found |

use crate::config::ConfigError;
use crate::exec::ExecError;
use crate::harden::HardenError;
use crate::install::InstallError;
use crate::plan::PlanError;
use crate::render::RenderError;
use crate::vault::VaultError;

/// The table above, for `--help`.
pub const EXIT_CODES: &str = "Exit codes (the application's own once it runs):
  64  usage: bad command line
  65  a reference does not parse, or a secret holds a NUL byte
  66  a referenced secret or field does not exist; a credential file is missing
  69  Vault unreachable, sealed or failing past VAULT_CLIENT_TIMEOUT
  71  an operating-system call failed
  73  `injector install` could not write the binary
  76  Vault answered something unexpected
  77  login refused, or permission denied
  78  a configuration variable is invalid or missing; a `required` Landlock policy cannot be enforced
  126 the program exists but cannot be executed
  127 the program was not found";

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
    /// The async runtime could not start.
    #[error("starting the runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl Failure {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Config(_) => 78,
            Failure::Plan(_) => 65,
            Failure::Vault(e) => e.exit_code(),
            Failure::Render(e) => e.exit_code(),
            Failure::Exec(e) => match e {
                ExecError::NotFound { .. } => 127,
                ExecError::NotExecutable { .. } => 126,
                ExecError::NulInArgument { .. } => 64,
                ExecError::Exec { .. } => 71,
            },
            Failure::Harden(HardenError::Unenforceable(_)) => 78,
            Failure::Harden(_) => 71,
            Failure::Install(_) => 73,
            Failure::Runtime(_) => 71,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_code_is_in_the_help_text() {
        let codes = [64, 65, 66, 69, 71, 73, 76, 77, 78, 126, 127];
        for code in codes {
            assert!(EXIT_CODES.contains(&format!("  {code} ")), "{code} is not documented");
        }
        let vault = |e| Failure::Vault(e).exit_code();
        assert_eq!(vault(VaultError::Unreachable { what: String::new(), reason: String::new() }), 69);
        assert_eq!(vault(VaultError::Status { what: String::new(), status: 503, errors: vec![] }), 69);
        assert_eq!(vault(VaultError::Status { what: String::new(), status: 400, errors: vec![] }), 76);
        assert_eq!(vault(VaultError::Denied { what: String::new(), errors: vec![] }), 77);
    }
}

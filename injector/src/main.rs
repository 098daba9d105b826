//! `injector`: see the crate documentation of `injector` (lib.rs) and `injector --help`.

use clap::{Parser, Subcommand};
use injector::exit::{Failure, exit_codes_help};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "injector",
    version,
    about = "Resolve Vault references in the environment, then exec CMD with the secrets in place.",
    long_about = "Resolve Vault references in the environment, then exec CMD with the secrets in place.\n\n\
        Values like vault:secret/data/app#password, >>vault:pki/issue/web#certificate or \
        text with ${vault:PATH#KEY} templates are replaced by the secrets they name. Settings \
        come from VAULT_* variables (VAULT_ADDR, VAULT_ROLE, VAULT_AUTH_METHOD, VAULT_TOKEN, ...), \
        which are removed from CMD's environment unless listed in VAULT_ENV_PASSTHROUGH.",
    after_help = exit_codes_help(),
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    action: Option<Action>,
    /// The program to run, and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

#[derive(Subcommand)]
enum Action {
    /// Copy this binary to DIR/injector (mode 0555), for an init container without a shell.
    Install {
        /// The directory to copy into (an emptyDir shared with the application's container).
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(hush_contract::exit::USAGE);
        }
    };
    injector::log::init(injector::run::log_config());
    let failure = match cli.action {
        Some(Action::Install { dir }) => match injector::install::install(&dir) {
            Ok(path) => {
                tracing::info!("installed {}", path.display());
                return ExitCode::SUCCESS;
            }
            Err(e) => Failure::from(e),
        },
        None => match injector::run::run(&cli.command) {
            // Daemon mode: the application's exit code, passed on.
            Ok(code) => return ExitCode::from(u8::try_from(code).unwrap_or(1)),
            Err(failure) => failure,
        },
    };
    tracing::error!("{failure}");
    ExitCode::from(failure.exit_code())
}

//! `injector`: see the crate documentation of `injector` (lib.rs) and `injector --help`.
//!
//! The command line is parsed by hand: it has three forms (`-- CMD`, `install DIR`, and
//! `--help`/`--version`), and a parser crate cost the static shim about 150 KB, which every
//! Pod copies.

use injector::exit::{Failure, exit_codes_help};
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "Usage: injector -- CMD [ARGS]...
       injector install DIR
       injector --help | --version";

const ABOUT: &str = "Resolve Vault references in the environment, then exec CMD with the secrets in place.

Values like vault:secret/data/app#password, >>vault:pki/issue/web#certificate or text with
${vault:PATH#KEY} templates are replaced by the secrets they name. Settings come from VAULT_*
variables (VAULT_ADDR, VAULT_ROLE, VAULT_AUTH_METHOD, VAULT_TOKEN, ...), which are removed from
CMD's environment unless listed in VAULT_ENV_PASSTHROUGH.

Commands:
  -- CMD [ARGS]...  Resolve the environment and exec CMD (the program to run, and its arguments)
  install DIR       Copy this binary to DIR/injector (mode 0555), for an init container without
                    a shell (DIR: an emptyDir shared with the application's container)

Options:
  -h, --help        Print help
  -V, --version     Print version";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Cli {
    Run(Vec<OsString>),
    Install(PathBuf),
    Help,
    Version,
}

/// Parses the arguments after the program name; `Err` is the usage error to print.
fn parse(args: &[OsString]) -> Result<Cli, String> {
    match args {
        [] => Err("a command is required after `--`".into()),
        [flag] if flag == OsStr::new("-h") || flag == OsStr::new("--help") => Ok(Cli::Help),
        [flag] if flag == OsStr::new("-V") || flag == OsStr::new("--version") => Ok(Cli::Version),
        [dashes] if dashes == OsStr::new("--") => Err("a command is required after `--`".into()),
        [dashes, command @ ..] if dashes == OsStr::new("--") => Ok(Cli::Run(command.to_vec())),
        [install, dir] if install == OsStr::new("install") => Ok(Cli::Install(PathBuf::from(dir))),
        [install] if install == OsStr::new("install") => Err("`install` needs a directory".into()),
        [first, ..] => Err(format!("unexpected argument `{}`; the command goes after `--`", first.to_string_lossy())),
    }
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let cli = match parse(&args) {
        Ok(Cli::Help) => {
            // The exit-code table from hush_contract::exit, as clap's `after_help` was.
            let after_help = exit_codes_help();
            println!("{ABOUT}\n\n{USAGE}\n\n{after_help}");
            return ExitCode::SUCCESS;
        }
        Ok(Cli::Version) => {
            println!("injector {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Ok(cli) => cli,
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}\n\nFor more information, try '--help'.");
            return ExitCode::from(hush_contract::exit::USAGE);
        }
    };
    injector::log::init(injector::run::log_config());
    let failure = match cli {
        Cli::Install(dir) => match injector::install::install(&dir) {
            Ok(path) => {
                tracing::info!("installed {}", path.display());
                return ExitCode::SUCCESS;
            }
            Err(e) => Failure::from(e),
        },
        Cli::Run(command) => match injector::run::run(&command) {
            // Daemon mode: the application's exit code, passed on.
            Ok(code) => return ExitCode::from(u8::try_from(code).unwrap_or(1)),
            Err(failure) => failure,
        },
        Cli::Help | Cli::Version => unreachable!("answered above"),
    };
    tracing::error!("{failure}");
    ExitCode::from(failure.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_three_forms_and_usage_errors() {
        assert_eq!(parse(&args(&["--", "env", "-0"])), Ok(Cli::Run(args(&["env", "-0"]))));
        assert_eq!(parse(&args(&["--", "--help"])), Ok(Cli::Run(args(&["--help"]))), "after -- all is CMD");
        assert_eq!(parse(&args(&["install", "/hush"])), Ok(Cli::Install("/hush".into())));
        assert_eq!(parse(&args(&["--help"])), Ok(Cli::Help));
        assert_eq!(parse(&args(&["-V"])), Ok(Cli::Version));
        for bad in [&[][..], &["--"], &["env"], &["install"], &["install", "a", "b"], &["--help", "x"]] {
            assert!(parse(&args(bad)).is_err(), "{bad:?}");
        }
    }
}

//! The shim's configuration: read once from its environment, typed, then never looked up again.
//!
//! Parsing is pure: it takes a lookup function, so tests pass a map and `main` passes the
//! process environment. Values that are secrets (a token, an AppRole secret ID) become
//! [`SecretString`]s here and nowhere else.

use crate::harden::{Hardening, parse_capabilities};
use hush_contract::env as names;
use secrecy::SecretString;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// Everything the shim needs to know, parsed.
#[derive(Debug)]
pub struct Config {
    /// Vault's address; `None` when unset (needed only if a value holds a reference).
    pub vault_addr: Option<Url>,
    /// How to obtain a token. A missing setting is an error only if Vault is needed, so
    /// it is kept here; an invalid one fails [`Config::parse`].
    pub auth: Result<Auth, ConfigError>,
    /// Namespace sent with every request.
    pub namespace: Option<String>,
    /// How to trust Vault's certificate.
    pub tls: Tls,
    /// Leave references to missing secrets unresolved instead of failing.
    pub ignore_missing: bool,
    /// Configuration variables to hand to the application all the same.
    pub passthrough: BTreeSet<String>,
    /// Log format and level.
    pub log: LogConfig,
    /// Deadline for all Vault traffic, retries included.
    pub client_timeout: Duration,
    /// Whether to revoke the token before exec.
    pub revoke: Revoke,
    /// Stay as the application's parent (daemon mode).
    pub daemon: bool,
    /// Daemon mode: renewal and rotation settings.
    pub supervision: Supervision,
    /// Vault requests in flight at once.
    pub max_concurrency: usize,
    /// What is locked down before exec.
    pub hardening: Hardening,
}

/// What a rotation does to the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// Stop it and start it again with the new secrets.
    Restart,
    /// Stop it and exit 75; Kubernetes restarts the container.
    Exit,
}

/// Daemon-mode settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Supervision {
    /// What a rotation does.
    pub rotation: Rotation,
    /// Time between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// How often KV v2 versions are checked; `None`: never.
    pub kv_poll: Option<Duration>,
}

/// How the shim obtains its Vault token.
#[derive(Debug)]
pub enum Auth {
    /// A token handed in through `VAULT_TOKEN`.
    Token(SecretString),
    /// Log in with a JWT read from a file: the `kubernetes` or `jwt` method.
    Jwt {
        /// Which of the two methods (they differ only in how Vault checks the JWT).
        method: JwtMethod,
        /// Auth mount, e.g. `kubernetes`.
        mount: String,
        /// The Vault role.
        role: String,
        /// The file holding the JWT.
        jwt_path: PathBuf,
    },
    /// Log in with an AppRole role ID and secret ID.
    AppRole {
        /// Auth mount, e.g. `approle`.
        mount: String,
        /// The role ID (not a secret on its own).
        role_id: String,
        /// Where the secret ID comes from.
        secret_id: SecretIdSource,
    },
}

impl Auth {
    /// The method's name as `VAULT_AUTH_METHOD` spells it.
    pub fn method_name(&self) -> &'static str {
        match self {
            Auth::Token(_) => "token",
            Auth::Jwt { method: JwtMethod::Kubernetes, .. } => "kubernetes",
            Auth::Jwt { method: JwtMethod::Jwt, .. } => "jwt",
            Auth::AppRole { .. } => "approle",
        }
    }
}

/// The two JWT-based login methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtMethod {
    /// Vault checks the JWT with the Kubernetes TokenReview API.
    Kubernetes,
    /// Vault checks the JWT's signature itself (OIDC discovery, JWKS or static keys).
    Jwt,
}

/// Where an AppRole secret ID comes from.
#[derive(Debug)]
pub enum SecretIdSource {
    /// `VAULT_SECRET_ID`.
    Value(SecretString),
    /// `VAULT_SECRET_ID_FILE`.
    File(PathBuf),
}

/// TLS settings for the connection to Vault.
#[derive(Debug, Default)]
pub struct Tls {
    /// PEM bundle of the CAs to trust instead of the system's.
    pub ca_cert: Option<PathBuf>,
    /// Accept any certificate (tests only; warned about).
    pub skip_verify: bool,
}

/// When the token is revoked before exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoke {
    /// Revoke tokens the shim obtained by logging in; keep a token handed in.
    Obtained,
    /// Always revoke.
    Always,
    /// Never revoke.
    Never,
}

/// Log settings; parsed leniently and first, so that config errors can be logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// JSON lines instead of text.
    pub json: bool,
    /// The most verbose level shown.
    pub level: tracing::Level,
}

/// A configuration variable with a value the shim cannot use.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The value does not parse.
    #[error("{name}: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Why, without the value if it may be secret.
        reason: String,
    },
    /// A variable the chosen setup needs is not set.
    #[error("{name} is not set, but {why}")]
    Missing {
        /// The variable.
        name: &'static str,
        /// What needs it.
        why: &'static str,
    },
}

/// The default for `VAULT_CLIENT_TIMEOUT`.
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_CONCURRENCY: usize = 8;

/// Reads one variable; `None` when unset.
pub trait Lookup {
    /// The variable's raw value.
    fn get(&self, name: &str) -> Option<OsString>;
}

impl<F: Fn(&str) -> Option<OsString>> Lookup for F {
    fn get(&self, name: &str) -> Option<OsString> {
        self(name)
    }
}

struct Vars<'a, L: Lookup>(&'a L);

impl<L: Lookup> Vars<'_, L> {
    /// A non-empty UTF-8 value.
    fn text(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(raw) => match raw.into_string() {
                Ok(s) if s.trim().is_empty() => Ok(None),
                Ok(s) => Ok(Some(s.trim().to_owned())),
                Err(_) => Err(invalid(name, "not UTF-8")),
            },
        }
    }

    fn secret(&self, name: &'static str) -> Result<Option<SecretString>, ConfigError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(raw) => match raw.into_string() {
                Ok(s) if s.is_empty() => Ok(None),
                Ok(s) => Ok(Some(SecretString::from(s))),
                Err(_) => Err(invalid(name, "not UTF-8")),
            },
        }
    }

    fn flag(&self, name: &'static str) -> Result<Option<bool>, ConfigError> {
        self.text(name)?
            .map(|s| parse_bool(&s).ok_or_else(|| invalid(name, &format!("`{s}` is not a boolean"))))
            .transpose()
    }
}

fn invalid(name: &'static str, reason: &str) -> ConfigError {
    ConfigError::Invalid { name, reason: reason.to_owned() }
}

/// `true`/`false` as Vault's and Go's tools spell them.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "y" | "yes" | "on" => Some(true),
        "0" | "f" | "false" | "n" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// `500ms`, `30s`, `2m`, `1h`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        _ => return None,
    };
    (!d.is_zero()).then_some(d)
}

/// Log settings, never failing: a bad value falls back to the default and is reported
/// again, as an error, by [`Config::parse`].
pub fn parse_log(lookup: &impl Lookup) -> LogConfig {
    let vars = Vars(lookup);
    LogConfig {
        json: vars.flag(names::VAULT_JSON_LOG).ok().flatten().unwrap_or(false),
        level: vars
            .text(names::VAULT_LOG_LEVEL)
            .ok()
            .flatten()
            .and_then(|s| parse_level(&s))
            .unwrap_or(tracing::Level::INFO),
    }
}

fn parse_level(s: &str) -> Option<tracing::Level> {
    match s.to_ascii_lowercase().as_str() {
        "error" => Some(tracing::Level::ERROR),
        "warn" | "warning" => Some(tracing::Level::WARN),
        "info" => Some(tracing::Level::INFO),
        "debug" | "trace" => Some(tracing::Level::DEBUG),
        _ => None,
    }
}

impl Config {
    /// Parses every configuration variable.
    pub fn parse(lookup: &impl Lookup) -> Result<Config, ConfigError> {
        let vars = Vars(lookup);
        let vault_addr = vars.text(names::VAULT_ADDR)?.map(|s| parse_addr(&s)).transpose()?;
        let level = vars.text(names::VAULT_LOG_LEVEL)?;
        if let Some(level) = &level {
            parse_level(level)
                .ok_or_else(|| invalid(names::VAULT_LOG_LEVEL, &format!("`{level}` is not a log level")))?;
        }
        let revoke = match vars.flag(names::VAULT_REVOKE_TOKEN)? {
            None => Revoke::Obtained,
            Some(true) => Revoke::Always,
            Some(false) => Revoke::Never,
        };
        let client_timeout = match vars.text(names::VAULT_CLIENT_TIMEOUT)? {
            None => DEFAULT_CLIENT_TIMEOUT,
            Some(s) => parse_duration(&s)
                .ok_or_else(|| invalid(names::VAULT_CLIENT_TIMEOUT, &format!("`{s}` is not a duration like 30s")))?,
        };
        let max_concurrency =
            match vars.text(names::HUSH_MAX_CONCURRENCY)? {
                None => DEFAULT_CONCURRENCY,
                Some(s) => s.parse::<usize>().ok().filter(|n| (1..=256).contains(n)).ok_or_else(|| {
                    invalid(names::HUSH_MAX_CONCURRENCY, &format!("`{s}` is not a number from 1 to 256"))
                })?,
            };
        let sa_token_path: PathBuf =
            vars.text(names::HUSH_SA_TOKEN_PATH)?.unwrap_or_else(|| names::DEFAULT_SA_TOKEN_PATH.to_owned()).into();
        let hardening = Hardening {
            policy: crate::policy::parse(&vars.text(names::HUSH_LANDLOCK)?.unwrap_or_default())
                .map_err(|e| invalid(names::HUSH_LANDLOCK, &e.to_string()))?,
            capabilities: parse_capabilities(&vars.text(names::HUSH_CAPABILITIES)?.unwrap_or_default())
                .map_err(|e| invalid(names::HUSH_CAPABILITIES, &e))?,
            clear_bounding_set: vars.flag(names::HUSH_CLEAR_BOUNDING_SET)?.unwrap_or(false),
            sa_dir: sa_token_path.parent().map(Path::to_path_buf),
        };
        Ok(Config {
            hardening,
            vault_addr,
            auth: match parse_auth(&vars) {
                Err(invalid @ ConfigError::Invalid { .. }) => return Err(invalid),
                other => other,
            },
            namespace: vars.text(names::VAULT_NAMESPACE)?,
            tls: Tls {
                ca_cert: vars.text(names::VAULT_CACERT)?.map(PathBuf::from),
                skip_verify: vars.flag(names::VAULT_SKIP_VERIFY)?.unwrap_or(false),
            },
            ignore_missing: vars.flag(names::VAULT_IGNORE_MISSING_SECRETS)?.unwrap_or(false),
            passthrough: vars
                .text(names::VAULT_ENV_PASSTHROUGH)?
                .map(|s| s.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default(),
            log: parse_log(lookup),
            client_timeout,
            revoke,
            daemon: vars.flag(names::VAULT_ENV_DAEMON)?.unwrap_or(false),
            supervision: parse_supervision(&vars)?,
            max_concurrency,
        })
    }

    /// Whether the application keeps configuration variable `name`.
    pub fn passes_through(&self, name: &str) -> bool {
        !names::is_config_variable(name) || self.passthrough.contains(name)
    }
}

fn parse_supervision<L: Lookup>(vars: &Vars<'_, L>) -> Result<Supervision, ConfigError> {
    let rotation = match vars.text(names::HUSH_ROTATION)?.as_deref() {
        None | Some("restart") => Rotation::Restart,
        Some("exit") => Rotation::Exit,
        Some(other) => return Err(invalid(names::HUSH_ROTATION, &format!("`{other}` is not restart or exit"))),
    };
    let duration =
        |name: &'static str, default: Duration, zero_is_off: bool| -> Result<Option<Duration>, ConfigError> {
            match vars.text(name)? {
                None => Ok(Some(default)),
                Some(s) if zero_is_off && s.trim_end_matches(|c: char| c.is_ascii_alphabetic()) == "0" => Ok(None),
                Some(s) => parse_duration(&s)
                    .map(Some)
                    .ok_or_else(|| invalid(name, &format!("`{s}` is not a duration like 30s"))),
            }
        };
    Ok(Supervision {
        rotation,
        grace: duration(names::HUSH_RESTART_GRACE, Duration::from_secs(10), false)?.unwrap_or(Duration::from_secs(10)),
        kv_poll: duration(names::HUSH_KV_POLL_INTERVAL, Duration::from_secs(60), true)?,
    })
}

fn parse_addr(s: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(s).map_err(|e| invalid(names::VAULT_ADDR, &format!("`{s}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid(names::VAULT_ADDR, &format!("`{s}` is not an http(s) address")));
    }
    Ok(url)
}

fn parse_auth<L: Lookup>(vars: &Vars<'_, L>) -> Result<Auth, ConfigError> {
    let token = vars.secret(names::VAULT_TOKEN)?;
    let method = vars.text(names::VAULT_AUTH_METHOD)?;
    let method = method.as_deref().unwrap_or(if token.is_some() { "token" } else { "kubernetes" });
    let mount = |default: &str| -> Result<String, ConfigError> {
        let mount = vars.text(names::VAULT_PATH)?.unwrap_or_else(|| default.to_owned());
        let mount = mount.trim_matches('/');
        let mount = mount.strip_prefix("auth/").unwrap_or(mount);
        if mount.is_empty() || mount.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
            return Err(invalid(names::VAULT_PATH, &format!("`{mount}` is not a mount path")));
        }
        Ok(mount.to_owned())
    };
    let jwt_path = || -> Result<PathBuf, ConfigError> {
        Ok(vars.text(names::HUSH_SA_TOKEN_PATH)?.unwrap_or_else(|| names::DEFAULT_SA_TOKEN_PATH.to_owned()).into())
    };
    let jwt = |method: JwtMethod, default_mount: &str| -> Result<Auth, ConfigError> {
        Ok(Auth::Jwt {
            method,
            mount: mount(default_mount)?,
            role: vars
                .text(names::VAULT_ROLE)?
                .ok_or(ConfigError::Missing { name: names::VAULT_ROLE, why: "kubernetes and jwt login need a role" })?,
            jwt_path: jwt_path()?,
        })
    };
    match method {
        "token" => token
            .map(Auth::Token)
            .ok_or(ConfigError::Missing { name: names::VAULT_TOKEN, why: "VAULT_AUTH_METHOD is token" }),
        "kubernetes" => jwt(JwtMethod::Kubernetes, "kubernetes"),
        "jwt" => jwt(JwtMethod::Jwt, "jwt"),
        "approle" => {
            let role_id = match vars.text(names::VAULT_ROLE_ID)? {
                Some(id) => id,
                None => vars
                    .text(names::VAULT_ROLE)?
                    .ok_or(ConfigError::Missing { name: names::VAULT_ROLE_ID, why: "approle login needs a role ID" })?,
            };
            let secret_id = match (vars.secret(names::VAULT_SECRET_ID)?, vars.text(names::VAULT_SECRET_ID_FILE)?) {
                (Some(value), None) => SecretIdSource::Value(value),
                (None, Some(path)) => SecretIdSource::File(path.into()),
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        names::VAULT_SECRET_ID,
                        "set VAULT_SECRET_ID or VAULT_SECRET_ID_FILE, not both",
                    ));
                }
                (None, None) => {
                    return Err(ConfigError::Missing {
                        name: names::VAULT_SECRET_ID_FILE,
                        why: "approle login needs a secret ID",
                    });
                }
            };
            Ok(Auth::AppRole { mount: mount("approle")?, role_id, secret_id })
        }
        other => {
            Err(invalid(names::VAULT_AUTH_METHOD, &format!("`{other}` is not one of kubernetes, jwt, token, approle")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, OsString> = vars.iter().map(|(k, v)| (k.to_string(), OsString::from(v))).collect();
        Config::parse(&|name: &str| map.get(name).cloned())
    }

    #[test]
    fn an_empty_environment_means_kubernetes_login_that_needs_a_role() {
        assert_eq!(
            parse(&[]).unwrap().auth.unwrap_err(),
            ConfigError::Missing { name: "VAULT_ROLE", why: "kubernetes and jwt login need a role" }
        );
        let config = parse(&[("VAULT_ROLE", "app")]).unwrap();
        match config.auth.unwrap() {
            Auth::Jwt { method: JwtMethod::Kubernetes, mount, role, jwt_path } => {
                assert_eq!((mount.as_str(), role.as_str()), ("kubernetes", "app"));
                assert_eq!(jwt_path, PathBuf::from(names::DEFAULT_SA_TOKEN_PATH));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(config.vault_addr, None);
        assert_eq!(config.client_timeout, DEFAULT_CLIENT_TIMEOUT);
        assert_eq!(config.revoke, Revoke::Obtained);
        assert!(!config.ignore_missing && !config.daemon);
    }

    #[test]
    fn a_token_selects_token_auth() {
        let config = parse(&[("VAULT_TOKEN", "s.abc"), ("VAULT_ADDR", "https://vault:8200")]).unwrap();
        assert!(matches!(config.auth.as_ref().unwrap(), Auth::Token(t) if t.expose_secret() == "s.abc"));
        assert_eq!(config.vault_addr.unwrap().as_str(), "https://vault:8200/");
    }

    #[test]
    fn jwt_and_approle() {
        let config = parse(&[
            ("VAULT_AUTH_METHOD", "jwt"),
            ("VAULT_ROLE", "r"),
            ("VAULT_PATH", "auth/jwt-k8s/"),
            ("HUSH_SA_TOKEN_PATH", "/t"),
        ])
        .unwrap();
        assert!(matches!(config.auth.unwrap(), Auth::Jwt { method: JwtMethod::Jwt, ref mount, ref jwt_path, .. }
            if mount == "jwt-k8s" && jwt_path == &PathBuf::from("/t")));
        let config =
            parse(&[("VAULT_AUTH_METHOD", "approle"), ("VAULT_ROLE", "rid"), ("VAULT_SECRET_ID_FILE", "/s")]).unwrap();
        assert!(
            matches!(config.auth.unwrap(), Auth::AppRole { ref mount, ref role_id, secret_id: SecretIdSource::File(_) }
            if mount == "approle" && role_id == "rid")
        );
        assert!(
            parse(&[
                ("VAULT_AUTH_METHOD", "approle"),
                ("VAULT_ROLE_ID", "r"),
                ("VAULT_SECRET_ID", "s"),
                ("VAULT_SECRET_ID_FILE", "/s")
            ])
            .is_err()
        );
    }

    #[test]
    fn bad_values_name_their_variable_and_never_echo_secrets() {
        let cases = [
            (vec![("VAULT_ADDR", "vault:8200")], "VAULT_ADDR"),
            (vec![("VAULT_ADDR", "ftp://vault")], "VAULT_ADDR"),
            // Host names are ASCII only (idna_adapter is pinned to its ASCII-only version).
            (vec![("VAULT_ADDR", "https://vaült.example:8200")], "VAULT_ADDR"),
            (vec![("VAULT_AUTH_METHOD", "ldap")], "VAULT_AUTH_METHOD"),
            (vec![("VAULT_TOKEN", "t"), ("VAULT_SKIP_VERIFY", "maybe")], "VAULT_SKIP_VERIFY"),
            (vec![("VAULT_TOKEN", "t"), ("VAULT_CLIENT_TIMEOUT", "soon")], "VAULT_CLIENT_TIMEOUT"),
            (vec![("VAULT_TOKEN", "t"), ("VAULT_CLIENT_TIMEOUT", "0s")], "VAULT_CLIENT_TIMEOUT"),
            (vec![("VAULT_TOKEN", "t"), ("HUSH_MAX_CONCURRENCY", "0")], "HUSH_MAX_CONCURRENCY"),
            (vec![("VAULT_TOKEN", "t"), ("VAULT_LOG_LEVEL", "loud")], "VAULT_LOG_LEVEL"),
            (vec![("VAULT_ROLE", "r"), ("VAULT_PATH", "a/../b")], "VAULT_PATH"),
        ];
        for (vars, name) in cases {
            let message = parse(&vars).unwrap_err().to_string();
            assert!(message.starts_with(name), "{message}");
        }
        let missing = parse(&[("VAULT_AUTH_METHOD", "token")]).unwrap().auth.unwrap_err();
        assert!(missing.to_string().starts_with("VAULT_TOKEN"), "{missing}");
        let map = HashMap::from([("VAULT_SECRET_ID".to_string(), OsString::from("hunter2-secret"))]);
        let err = Config::parse(&|n: &str| {
            if n == "VAULT_AUTH_METHOD" { Some("approle".into()) } else { map.get(n).cloned() }
        })
        .unwrap()
        .auth
        .unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn revoke_passthrough_and_durations() {
        let config = parse(&[
            ("VAULT_TOKEN", "t"),
            ("VAULT_REVOKE_TOKEN", "TRUE"),
            ("VAULT_ENV_PASSTHROUGH", " VAULT_ADDR, ,VAULT_ROLE "),
            ("VAULT_CLIENT_TIMEOUT", "1500ms"),
        ])
        .unwrap();
        assert_eq!(config.revoke, Revoke::Always);
        assert!(config.passes_through("VAULT_ADDR") && config.passes_through("VAULT_ROLE"));
        assert!(!config.passes_through("VAULT_TOKEN") && config.passes_through("HOME"));
        assert_eq!(config.client_timeout, Duration::from_millis(1500));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("1d"), None);
        assert_eq!(parse_duration("99999999999999999999h"), None);
    }

    #[test]
    fn log_settings_never_fail() {
        let log = parse_log(&|n: &str| (n == "VAULT_LOG_LEVEL").then(|| OsString::from("nonsense")));
        assert_eq!(log, LogConfig { json: false, level: tracing::Level::INFO });
        let log = parse_log(&|n: &str| Some(OsString::from(if n == "VAULT_JSON_LOG" { "1" } else { "debug" })));
        assert_eq!(log, LogConfig { json: true, level: tracing::Level::DEBUG });
    }
}

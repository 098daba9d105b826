//! The shim's configuration: read once from its environment, typed, then never looked up again.
//!
//! Parsing is pure: it takes a lookup function, so tests pass a map and `main` passes the
//! process environment. Values that are secrets (a token, an AppRole secret ID) become
//! [`SecretString`]s here and nowhere else.
//!
//! Every value is checked by the one rule in `hush_contract::settings` (the webhook checks
//! annotations with the same rule), then turned into a type here. A setting is read from its
//! variable, else from its Bank-Vaults / OpenBao aliases (`BAO_ADDR`, `SECRET_INIT_DAEMON`,
//! ...), the first one set winning.

use crate::policy::Policy;
use caps::{Capability, CapsHashSet};
use hush_contract::env as names;
use hush_contract::settings::{self as contract, Setting, Value};
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
    /// `VAULT_TOKEN=vault:login` (or `bao:login`): log in, and hand the token to the
    /// application as `VAULT_TOKEN` (not revoked), with the login variables
    /// ([`Setting::login`]) passed through.
    pub login: bool,
    /// `VAULT_TOKEN_FILE`: a file holding the token to use (read by the run step).
    pub token_file: Option<PathBuf>,
    /// `VAULT_MAX_RETRIES`: retries of a failed Vault request; `None` (unset): retry until
    /// `VAULT_CLIENT_TIMEOUT`.
    pub max_retries: Option<u32>,
    /// `VAULT_ENV_FROM_PATH`: Vault paths whose every key becomes a variable.
    pub env_from_path: Vec<String>,
    /// `VAULT_ENV_DELAY`: wait after resolving, before exec.
    pub env_delay: Duration,
    /// `VAULT_TRANSIT_*`: decrypting `vault:v1:...` ciphertext.
    pub transit: Transit,
}

/// Transit decryption settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transit {
    /// `VAULT_TRANSIT_KEY_ID`; `None`: ciphertext values are not decrypted.
    pub key_id: Option<String>,
    /// `VAULT_TRANSIT_PATH`, the engine's mount (default `transit`).
    pub path: String,
    /// `VAULT_TRANSIT_BATCH_SIZE` (default 25).
    pub batch_size: usize,
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
    /// Log in with the TLS client certificate (`VAULT_CLIENT_CERT`/`VAULT_CLIENT_KEY`):
    /// OpenBao's and Vault's `cert` method.
    Cert {
        /// Auth mount, e.g. `cert`.
        mount: String,
        /// The certificate role (`name`); `None`: every role the certificate matches.
        role: Option<String>,
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
            Auth::Cert { .. } => "cert",
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
    /// `VAULT_CAPATH`: a directory of PEM CA certificates.
    pub ca_path: Option<PathBuf>,
    /// `VAULT_CLIENT_CERT`: PEM client certificate (mTLS).
    pub client_cert: Option<PathBuf>,
    /// `VAULT_CLIENT_KEY`: PEM key of the client certificate.
    pub client_key: Option<PathBuf>,
    /// `VAULT_TLS_SERVER_NAME`: the name Vault's certificate is checked against.
    pub server_name: Option<String>,
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
/// Bank-Vaults' default transit batch size (`bank-vaults/vault-secrets-webhook`
/// `pkg/webhook/config.go`: `viper.SetDefault("transit_batch_size", 25)`).
const DEFAULT_TRANSIT_BATCH_SIZE: usize = 25;

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
    /// The first of the setting's variables that is set (and not blank), with its name.
    fn raw(&self, setting: &'static Setting) -> Result<Option<(&'static str, String)>, ConfigError> {
        for name in std::iter::once(&setting.env).chain(setting.env_aliases) {
            let Some(raw) = self.0.get(name) else { continue };
            let Ok(text) = raw.into_string() else { return Err(invalid(name, "not UTF-8")) };
            // Secrets are taken as they are; other values lose surrounding blanks.
            let text = if setting.grammar == contract::Grammar::Secret { text } else { text.trim().to_owned() };
            if !text.is_empty() {
                return Ok(Some((name, text)));
            }
        }
        Ok(None)
    }

    /// The setting's checked value; the error names the variable read (and never quotes a secret).
    fn get(&self, setting: &'static Setting) -> Result<Option<Value>, ConfigError> {
        match self.raw(setting)? {
            None => Ok(None),
            Some((name, text)) => setting.check(&text).map(Some).map_err(|e| {
                if setting.grammar == contract::Grammar::Secret {
                    invalid(name, &e.problem)
                } else {
                    invalid(name, &format!("`{text}`: {}", e.problem))
                }
            }),
        }
    }

    fn text(&self, setting: &'static Setting) -> Result<Option<String>, ConfigError> {
        Ok(self.get(setting)?.map(|v| v.canonical()))
    }

    fn secret(&self, setting: &'static Setting) -> Result<Option<SecretString>, ConfigError> {
        Ok(self.raw(setting)?.map(|(_, text)| SecretString::from(text)))
    }

    fn flag(&self, setting: &'static Setting) -> Result<Option<bool>, ConfigError> {
        Ok(self.get(setting)?.and_then(|v| match v {
            Value::Bool(b) => Some(b),
            _ => None,
        }))
    }

    /// A duration setting; `Some(None)` when zero turns it off.
    fn duration(&self, setting: &'static Setting) -> Result<Option<Option<Duration>>, ConfigError> {
        Ok(self.get(setting)?.and_then(|v| match v {
            Value::Duration(d) => Some(d),
            _ => None,
        }))
    }

    fn count(&self, setting: &'static Setting) -> Result<Option<u64>, ConfigError> {
        Ok(self.get(setting)?.and_then(|v| match v {
            Value::Count(n) => Some(n),
            _ => None,
        }))
    }

    fn list(&self, setting: &'static Setting) -> Result<Vec<String>, ConfigError> {
        Ok(match self.get(setting)? {
            Some(Value::List(items)) => items,
            _ => Vec::new(),
        })
    }
}

fn invalid(name: &'static str, reason: &str) -> ConfigError {
    ConfigError::Invalid { name, reason: reason.to_owned() }
}

/// Go's `strconv.ParseBool`, as Bank-Vaults reads its booleans (the contract's rule).
pub fn parse_bool(s: &str) -> Option<bool> {
    hush_contract::go::parse_bool(s)
}

/// Go's `time.ParseDuration` (`500ms`, `30s`, `1m30s`, `1.5h`), positive only.
pub fn parse_duration(s: &str) -> Option<Duration> {
    hush_contract::go::parse_duration(s).ok().filter(|d| !d.is_zero())
}

/// Log settings, never failing: a bad value falls back to the default and is reported
/// again, as an error, by [`Config::parse`].
pub fn parse_log(lookup: &impl Lookup) -> LogConfig {
    let vars = Vars(lookup);
    LogConfig {
        json: vars.flag(&contract::VAULT_JSON_LOG).ok().flatten().unwrap_or(false),
        level: vars
            .text(&contract::VAULT_LOG_LEVEL)
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
        let vault_addr = vars.text(&contract::VAULT_ADDR)?.map(|s| parse_addr(&s)).transpose()?;
        vars.get(&contract::VAULT_LOG_LEVEL)?;
        let revoke = match vars.flag(&contract::VAULT_REVOKE_TOKEN)? {
            None => Revoke::Obtained,
            Some(true) => Revoke::Always,
            Some(false) => Revoke::Never,
        };
        let client_timeout =
            vars.duration(&contract::VAULT_CLIENT_TIMEOUT)?.flatten().unwrap_or(DEFAULT_CLIENT_TIMEOUT);
        let max_concurrency = vars
            .count(&contract::HUSH_MAX_CONCURRENCY)?
            .map_or(DEFAULT_CONCURRENCY, |n| usize::try_from(n).unwrap_or(DEFAULT_CONCURRENCY));
        let sa_token_path: PathBuf =
            vars.text(&contract::HUSH_SA_TOKEN_PATH)?.unwrap_or_else(|| names::DEFAULT_SA_TOKEN_PATH.to_owned()).into();
        let hardening = Hardening {
            policy: crate::policy::parse(&vars.text(&contract::HUSH_LANDLOCK)?.unwrap_or_default())
                .map_err(|e| invalid(names::HUSH_LANDLOCK, &e.to_string()))?,
            capabilities: parse_capabilities(&vars.text(&contract::HUSH_CAPABILITIES)?.unwrap_or_default())
                .map_err(|e| invalid(names::HUSH_CAPABILITIES, &e))?,
            clear_bounding_set: vars.flag(&contract::HUSH_CLEAR_BOUNDING_SET)?.unwrap_or(false),
            sa_dir: sa_token_path.parent().map(Path::to_path_buf),
        };
        let login = matches!(
            vars.raw(&contract::VAULT_TOKEN)?.as_ref().map(|(_, t)| t.as_str()),
            Some(names::VAULT_LOGIN | names::BAO_LOGIN)
        );
        let transit = Transit {
            key_id: vars.text(&contract::VAULT_TRANSIT_KEY_ID)?,
            path: vars.text(&contract::VAULT_TRANSIT_PATH)?.unwrap_or_else(|| "transit".to_owned()),
            batch_size: vars
                .count(&contract::VAULT_TRANSIT_BATCH_SIZE)?
                .map_or(DEFAULT_TRANSIT_BATCH_SIZE, |n| usize::try_from(n).unwrap_or(DEFAULT_TRANSIT_BATCH_SIZE)),
        };
        let path = |setting: &'static Setting| -> Result<Option<PathBuf>, ConfigError> {
            Ok(vars.text(setting)?.map(PathBuf::from))
        };
        Ok(Config {
            hardening,
            vault_addr,
            auth: match parse_auth(&vars, login) {
                Err(invalid @ ConfigError::Invalid { .. }) => return Err(invalid),
                other => other,
            },
            namespace: vars.text(&contract::VAULT_NAMESPACE)?,
            tls: Tls {
                ca_cert: path(&contract::VAULT_CACERT)?,
                skip_verify: vars.flag(&contract::VAULT_SKIP_VERIFY)?.unwrap_or(false),
                ca_path: path(&contract::VAULT_CAPATH)?,
                client_cert: path(&contract::VAULT_CLIENT_CERT)?,
                client_key: path(&contract::VAULT_CLIENT_KEY)?,
                server_name: vars.text(&contract::VAULT_TLS_SERVER_NAME)?,
            },
            ignore_missing: vars.flag(&contract::VAULT_IGNORE_MISSING_SECRETS)?.unwrap_or(false),
            passthrough: vars.list(&contract::VAULT_ENV_PASSTHROUGH)?.into_iter().collect(),
            log: parse_log(lookup),
            client_timeout,
            revoke,
            daemon: vars.flag(&contract::VAULT_ENV_DAEMON)?.unwrap_or(false),
            supervision: parse_supervision(&vars)?,
            max_concurrency,
            login,
            token_file: path(&contract::VAULT_TOKEN_FILE)?,
            max_retries: vars.count(&contract::VAULT_MAX_RETRIES)?.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            env_from_path: vars.list(&contract::VAULT_ENV_FROM_PATH)?,
            env_delay: vars.duration(&contract::VAULT_ENV_DELAY)?.flatten().unwrap_or(Duration::ZERO),
            transit,
        })
    }

    /// Whether the application keeps configuration variable `name`.
    pub fn passes_through(&self, name: &str) -> bool {
        !names::is_config_variable(name) || self.passthrough.contains(name)
    }
}

fn parse_supervision<L: Lookup>(vars: &Vars<'_, L>) -> Result<Supervision, ConfigError> {
    let rotation = match vars.text(&contract::HUSH_ROTATION)?.as_deref() {
        Some("exit") => Rotation::Exit,
        _ => Rotation::Restart,
    };
    Ok(Supervision {
        rotation,
        grace: vars.duration(&contract::HUSH_RESTART_GRACE)?.flatten().unwrap_or(Duration::from_secs(10)),
        kv_poll: vars.duration(&contract::HUSH_KV_POLL_INTERVAL)?.unwrap_or(Some(Duration::from_secs(60))),
    })
}

fn parse_addr(s: &str) -> Result<Url, ConfigError> {
    // The contract checked it with this same parser; this cannot fail for a checked value.
    Url::parse(s).map_err(|e| invalid(names::VAULT_ADDR, &format!("`{s}` is not a URL: {e}")))
}

fn parse_auth<L: Lookup>(vars: &Vars<'_, L>, login: bool) -> Result<Auth, ConfigError> {
    // `vault:login` is not a token: the shim logs in (with the role and path) instead.
    let token = if login { None } else { vars.secret(&contract::VAULT_TOKEN)? };
    let method = vars.text(&contract::VAULT_AUTH_METHOD)?;
    let method = method.as_deref().unwrap_or(if token.is_some() { "token" } else { "kubernetes" });
    let mount = |default: &str| -> Result<String, ConfigError> {
        let mount = vars.text(&contract::VAULT_PATH)?.unwrap_or_else(|| default.to_owned());
        Ok(mount.strip_prefix("auth/").unwrap_or(&mount).to_owned())
    };
    let jwt_path = || -> Result<PathBuf, ConfigError> {
        Ok(match vars.text(&contract::VAULT_JWT_FILE)? {
            Some(file) => file,
            None => {
                vars.text(&contract::HUSH_SA_TOKEN_PATH)?.unwrap_or_else(|| names::DEFAULT_SA_TOKEN_PATH.to_owned())
            }
        }
        .into())
    };
    let jwt = |method: JwtMethod| -> Result<Auth, ConfigError> {
        Ok(Auth::Jwt {
            method,
            // Bank-Vaults logs in at auth/kubernetes for both methods unless told otherwise.
            mount: mount(contract::DEFAULT_JWT_MOUNT)?,
            role: vars
                .text(&contract::VAULT_ROLE)?
                .ok_or(ConfigError::Missing { name: names::VAULT_ROLE, why: "kubernetes and jwt login need a role" })?,
            jwt_path: jwt_path()?,
        })
    };
    match method {
        "token" => token
            .map(Auth::Token)
            .ok_or(ConfigError::Missing { name: names::VAULT_TOKEN, why: "VAULT_AUTH_METHOD is token" }),
        "kubernetes" => jwt(JwtMethod::Kubernetes),
        "jwt" => jwt(JwtMethod::Jwt),
        "approle" => {
            let role_id = match vars.text(&contract::VAULT_ROLE_ID)? {
                Some(id) => id,
                None => vars
                    .text(&contract::VAULT_ROLE)?
                    .ok_or(ConfigError::Missing { name: names::VAULT_ROLE_ID, why: "approle login needs a role ID" })?,
            };
            let secret_id =
                match (vars.secret(&contract::VAULT_SECRET_ID)?, vars.text(&contract::VAULT_SECRET_ID_FILE)?) {
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
            Ok(Auth::AppRole { mount: mount(contract::DEFAULT_APPROLE_MOUNT)?, role_id, secret_id })
        }
        "cert" => Ok(Auth::Cert { mount: mount("cert")?, role: vars.text(&contract::VAULT_ROLE)? }),
        // The contract's grammar admits only the methods above.
        other => Err(invalid(
            names::VAULT_AUTH_METHOD,
            &format!("`{other}` is not one of kubernetes, jwt, token, approle, cert"),
        )),
    }
}

/// Which capabilities the application keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capabilities {
    /// What the container gave the shim (ambient and inheritable are cleared regardless).
    Keep,
    /// Only these (an empty set drops all).
    Only(CapsHashSet),
}

/// Parses `HUSH_CAPABILITIES`: `keep`, `none`, or a comma list like `NET_BIND_SERVICE,CHOWN`.
pub fn parse_capabilities(text: &str) -> Result<Capabilities, String> {
    match text.trim() {
        "" | "keep" => Ok(Capabilities::Keep),
        "none" => Ok(Capabilities::Only(CapsHashSet::new())),
        list => list
            .split(',')
            .map(|name| {
                let canonical = caps::to_canonical(name.trim());
                canonical.parse::<Capability>().map_err(|_| format!("`{}` is not a capability", name.trim()))
            })
            .collect::<Result<CapsHashSet, String>>()
            .map(Capabilities::Only),
    }
}

/// What the hardening needs to know.
#[derive(Debug, Clone)]
pub struct Hardening {
    /// The Landlock policy.
    pub policy: Policy,
    /// Capabilities the application keeps.
    pub capabilities: Capabilities,
    /// Drop the bounding set to the kept capabilities, so exec cannot hand others back.
    pub clear_bounding_set: bool,
    /// The service-account token's directory (denied by default).
    pub sa_dir: Option<PathBuf>,
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
        // Go's time.ParseDuration, as Bank-Vaults: a bare number is not a duration.
        assert_eq!(parse_duration("7"), None);
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1d"), None);
        assert_eq!(parse_duration("99999999999999999999h"), None);
    }

    /// Issue 11: `jwt` without `VAULT_PATH` logs in at auth/kubernetes, as Bank-Vaults'
    /// vault-sdk does (`vault/client.go`: `o.authPath = "kubernetes"`).
    #[test]
    fn jwt_without_a_path_logs_in_at_kubernetes() {
        let config = parse(&[("VAULT_AUTH_METHOD", "jwt"), ("VAULT_ROLE", "r")]).unwrap();
        assert!(
            matches!(config.auth.unwrap(), Auth::Jwt { method: JwtMethod::Jwt, ref mount, .. } if mount == "kubernetes")
        );
        let config = parse(&[("VAULT_ROLE", "r"), ("VAULT_JWT_FILE", "/jwt"), ("HUSH_SA_TOKEN_PATH", "/sa")]).unwrap();
        assert!(matches!(config.auth.unwrap(), Auth::Jwt { ref jwt_path, .. } if jwt_path == &PathBuf::from("/jwt")));
    }

    /// Issue 11: the settings Bank-Vaults' vault-env and secret-init read, typed.
    #[test]
    fn bank_vaults_settings_and_their_openbao_aliases() {
        let config = parse(&[
            ("BAO_ADDR", "https://bao:8200"),
            ("BAO_TOKEN", "bao:login"),
            ("BAO_ROLE", "app"),
            ("VAULT_TOKEN_FILE", "/t"),
            ("VAULT_CAPATH", "/ca"),
            ("VAULT_CLIENT_CERT", "/c.pem"),
            ("VAULT_CLIENT_KEY", "/k.pem"),
            ("VAULT_TLS_SERVER_NAME", "vault.internal"),
            ("VAULT_MAX_RETRIES", "5"),
            ("VAULT_FROM_PATH", "secret/a, secret/b"),
            ("SECRET_INIT_DELAY", "1m30s"),
            ("VAULT_TRANSIT_KEY_ID", "k"),
            ("VAULT_TRANSIT_BATCH_SIZE", "10"),
            ("SECRET_INIT_DAEMON", "T"),
        ])
        .unwrap();
        assert_eq!(config.vault_addr.unwrap().as_str(), "https://bao:8200/");
        assert!(config.login);
        assert!(
            matches!(config.auth.unwrap(), Auth::Jwt { ref role, ref mount, .. } if role == "app" && mount == "kubernetes")
        );
        assert_eq!(config.token_file, Some(PathBuf::from("/t")));
        assert_eq!(config.tls.ca_path, Some(PathBuf::from("/ca")));
        assert_eq!(config.tls.client_cert, Some(PathBuf::from("/c.pem")));
        assert_eq!(config.tls.client_key, Some(PathBuf::from("/k.pem")));
        assert_eq!(config.tls.server_name.as_deref(), Some("vault.internal"));
        assert_eq!(config.max_retries, Some(5));
        assert_eq!(config.env_from_path, vec!["secret/a", "secret/b"]);
        assert_eq!(config.env_delay, Duration::from_secs(90));
        assert_eq!(config.transit, Transit { key_id: Some("k".into()), path: "transit".into(), batch_size: 10 });
        assert!(config.daemon);
        let defaults = parse(&[("VAULT_TOKEN", "t")]).unwrap();
        assert_eq!((defaults.max_retries, defaults.env_delay, defaults.transit.batch_size), (None, Duration::ZERO, 25));
        assert!(!defaults.login && defaults.env_from_path.is_empty());
        // Every Bank-Vaults setting variable is taken from the application.
        for name in ["VAULT_TRANSIT_KEY_ID", "VAULT_ENV_DELAY", "VAULT_MAX_RETRIES", "BAO_ADDR", "SECRET_INIT_DAEMON"] {
            assert!(!defaults.passes_through(name), "{name}");
        }
    }

    /// Issue 11: the values the webhook admitted and the shim then refused are refused here
    /// by the same rule the webhook now applies (hush_contract::settings).
    #[test]
    fn the_issue_11_values_fail_with_the_contract_rule() {
        for (name, value) in [
            ("VAULT_CLIENT_TIMEOUT", "0s"),
            ("HUSH_RESTART_GRACE", "0s"),
            ("HUSH_CAPABILITIES", "CAP_FLY"),
            ("VAULT_ADDR", "https://vaült.example:8200"),
            ("VAULT_PATH", "a/../b"),
            ("VAULT_SKIP_VERIFY", "yes"),
        ] {
            let err = parse(&[("VAULT_ROLE", "r"), (name, value)]).unwrap_err();
            let setting = hush_contract::settings::by_env(name).unwrap();
            let rule = setting.check(value).unwrap_err();
            assert!(err.to_string().starts_with(name) && err.to_string().contains(&rule.problem), "{err}");
        }
        assert_eq!(
            parse(&[("VAULT_TOKEN", "t"), ("VAULT_CLIENT_TIMEOUT", "1m30s")]).unwrap().client_timeout,
            Duration::from_secs(90)
        );
    }

    #[test]
    fn log_settings_never_fail() {
        let log = parse_log(&|n: &str| (n == "VAULT_LOG_LEVEL").then(|| OsString::from("nonsense")));
        assert_eq!(log, LogConfig { json: false, level: tracing::Level::INFO });
        let log = parse_log(&|n: &str| Some(OsString::from(if n == "VAULT_JSON_LOG" { "1" } else { "debug" })));
        assert_eq!(log, LogConfig { json: true, level: tracing::Level::DEBUG });
    }
    #[test]
    fn capability_lists_parse_with_or_without_prefix() {
        assert_eq!(parse_capabilities("keep"), Ok(Capabilities::Keep));
        assert_eq!(parse_capabilities(""), Ok(Capabilities::Keep));
        assert_eq!(parse_capabilities("none"), Ok(Capabilities::Only(CapsHashSet::new())));
        assert_eq!(
            parse_capabilities("net_bind_service, CAP_CHOWN"),
            Ok(Capabilities::Only([Capability::CAP_NET_BIND_SERVICE, Capability::CAP_CHOWN].into_iter().collect()))
        );
        assert_eq!(parse_capabilities("CAP_FLY"), Err("`CAP_FLY` is not a capability".into()));
    }
}

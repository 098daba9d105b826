//! Every setting of the shim, described once: its variable, its `hush.dev/` annotation, its
//! Bank-Vaults names (annotations under both of Bank-Vaults' prefixes, variables of
//! `vault-env`, `secret-init` and OpenBao), its value grammar, its default, and whether it is
//! handed to the application on `vault:login`.
//!
//! The webhook turns annotations into variables with [`Setting::check`] and writes
//! [`Value::canonical`]; the shim reads variables with the same [`Setting::check`]. So what
//! the webhook admits, the shim accepts (property-tested in `webhook/tests/contract.rs` and
//! fuzzed by `webhook/fuzz` `admitted_env`).
//!
//! Sources of the Bank-Vaults names (read, not recalled):
//! - legacy annotations: `bank-vaults/vault-secrets-webhook` `pkg/common/common.go`, parsed in
//!   `pkg/webhook/config.go`;
//! - current annotations: `bank-vaults/secrets-webhook` `pkg/common/common.go`
//!   (`WebhookAnnotationPrefix`, `bao-*`, `secret-init-*`);
//! - variables: `bank-vaults/vault-env` `main.go` (`sanitizeEnvmap`), `bank-vaults/vault-sdk`
//!   `vault/client.go`, `bank-vaults/secret-init` `pkg/provider/{vault,bao}/config.go` and
//!   `pkg/common/config.go`.

use std::time::Duration;

use crate::env as names;
use crate::go;

/// Prefix of Hush's own annotations.
pub const HUSH_PREFIX: &str = "hush.dev/";
/// Prefix of the legacy Bank-Vaults webhook (`bank-vaults/vault-secrets-webhook`).
pub const LEGACY_PREFIX: &str = "vault.security.banzaicloud.io/";
/// Prefix of the current Bank-Vaults webhook (`bank-vaults/secrets-webhook`).
pub const CURRENT_PREFIX: &str = "secrets-webhook.security.bank-vaults.io/";

/// What a zero duration means for a setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zero {
    /// Refused: the setting needs a positive duration.
    Refused,
    /// Zero is a valid duration.
    Allowed,
    /// Zero turns the feature off.
    Off,
}

/// How a setting's value is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grammar {
    /// Non-empty text without control characters.
    Text,
    /// Non-empty; a secret (never quoted in errors).
    Secret,
    /// A file or directory path: non-empty, without control characters.
    File,
    /// An `http://` or `https://` URL with an ASCII host name.
    Addr,
    /// Go's `strconv.ParseBool`.
    Bool,
    /// Go's `time.ParseDuration`, not negative.
    Duration(Zero),
    /// One of these words (compared ignoring ASCII case when `fold` is set).
    OneOf {
        /// The words, as written by [`Value::canonical`].
        words: &'static [&'static str],
        /// Compare ignoring ASCII case.
        fold: bool,
    },
    /// An auth or secrets engine mount path: `/`-separated segments, none empty, `.` or `..`.
    MountPath,
    /// Comma-separated environment variable names (C identifiers); blanks are dropped.
    EnvNames,
    /// Comma-separated Vault paths (each a [`Grammar::MountPath`]); blanks are dropped.
    VaultPaths,
    /// A whole number in `min..=max`.
    Count {
        /// Smallest value.
        min: u64,
        /// Largest value.
        max: u64,
    },
    /// `keep`, `none`, or comma-separated Linux capability names ([`CAPABILITIES`]).
    Capabilities,
    /// A Landlock policy ([`crate::landlock`]).
    Landlock,
}

/// A checked value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// Text, file paths, addresses, words, mount paths, Landlock policies: as written
    /// (words in their canonical case, mount paths without surrounding `/`, capabilities
    /// validated and kept as written).
    Text(String),
    /// A boolean.
    Bool(bool),
    /// A duration; `None` when zero turns the feature off.
    Duration(Option<Duration>),
    /// A whole number.
    Count(u64),
    /// Names or paths, blanks dropped.
    List(Vec<String>),
}

impl Value {
    /// The variable's value the webhook writes: [`Setting::check`] gives this same value back.
    pub fn canonical(&self) -> String {
        match self {
            Value::Text(text) => text.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Duration(None) => "0".into(),
            Value::Duration(Some(d)) => go::format_duration(*d),
            Value::Count(n) => n.to_string(),
            Value::List(items) => items.join(","),
        }
    }
}

/// Why a value does not fit its setting's grammar. Never holds the value of a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{problem}")]
pub struct ValueError {
    /// What is wrong, phrased for a person.
    pub problem: String,
}

fn problem(text: impl Into<String>) -> ValueError {
    ValueError { problem: text.into() }
}

/// One setting of the shim.
#[derive(Debug, PartialEq, Eq)]
pub struct Setting {
    /// The variable the webhook writes and the shim reads first.
    pub env: &'static str,
    /// Other variables the shim reads, in order, when [`Setting::env`] is unset: Bank-Vaults'
    /// `secret-init` and OpenBao spellings.
    pub env_aliases: &'static [&'static str],
    /// The name after `hush.dev/`, if the setting has an annotation.
    pub annotation: Option<&'static str>,
    /// Names after [`LEGACY_PREFIX`].
    pub legacy: &'static [&'static str],
    /// Names after [`CURRENT_PREFIX`] (`vault-*`, `bao-*`, `secret-init-*`).
    pub current: &'static [&'static str],
    /// How the value is written.
    pub grammar: Grammar,
    /// The default when unset, as documentation (`None`: unset means off or not needed).
    pub default: Option<&'static str>,
    /// Handed to the application with `VAULT_TOKEN=vault:login` (`bank-vaults/vault-env`
    /// `main.go` `sanitizeEnvmap`, `login: true`).
    pub login: bool,
    /// What it does.
    pub doc: &'static str,
}

/// Linux capability names the shim knows (`capability.h`, as the `caps` crate spells them).
pub const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The auth methods the shim logs in with.
pub const AUTH_METHODS: &[&str] = &["kubernetes", "jwt", "token", "approle", "cert"];
/// The default auth mount for `kubernetes` and `jwt`: Bank-Vaults' (`bank-vaults/vault-sdk`
/// `vault/client.go`: `if o.authPath == "" { o.authPath = "kubernetes" }`, for every method).
pub const DEFAULT_JWT_MOUNT: &str = "kubernetes";
/// The default auth mount for `approle`.
pub const DEFAULT_APPROLE_MOUNT: &str = "approle";

macro_rules! setting {
    ($name:ident, $env:expr, [$($alias:expr),*], $annotation:expr, [$($legacy:expr),*], [$($current:expr),*],
     $grammar:expr, $default:expr, $login:expr, $doc:expr) => {
        #[doc = $doc]
        pub static $name: Setting = Setting {
            env: $env,
            env_aliases: &[$($alias),*],
            annotation: $annotation,
            legacy: &[$($legacy),*],
            current: &[$($current),*],
            grammar: $grammar,
            default: $default,
            login: $login,
            doc: $doc,
        };
    };
}

use Grammar as G;

setting!(
    VAULT_ADDR,
    names::VAULT_ADDR,
    ["BAO_ADDR"],
    Some("vault-addr"),
    ["vault-addr"],
    ["vault-addr", "bao-addr"],
    G::Addr,
    None,
    true,
    "Vault's address, e.g. `https://vault.vault.svc:8200`."
);
setting!(
    VAULT_TOKEN,
    names::VAULT_TOKEN,
    ["BAO_TOKEN"],
    None,
    [],
    [],
    G::Secret,
    None,
    true,
    "A Vault token to use as is; `vault:login` (`bao:login`): log in and hand the token to the application."
);
setting!(
    VAULT_TOKEN_FILE,
    names::VAULT_TOKEN_FILE,
    ["BAO_TOKEN_FILE"],
    None,
    [],
    [],
    G::File,
    None,
    false,
    "A file holding the Vault token to use."
);
setting!(
    VAULT_ROLE,
    names::VAULT_ROLE,
    ["BAO_ROLE"],
    Some("role"),
    ["vault-role"],
    ["vault-role", "bao-role"],
    G::Text,
    Some("the Pod's ServiceAccount name (written by the webhook)"),
    false,
    "The role to log in as (`kubernetes`, `jwt`) or the AppRole role ID (`approle`)."
);
setting!(
    VAULT_AUTH_METHOD,
    names::VAULT_AUTH_METHOD,
    ["BAO_AUTH_METHOD"],
    Some("auth-method"),
    ["vault-auth-method"],
    ["vault-auth-method", "bao-auth-method"],
    G::OneOf { words: AUTH_METHODS, fold: false },
    Some("`token` when a token is given, else `kubernetes`"),
    false,
    "How to log in: `kubernetes`, `jwt`, `token` or `approle`."
);
setting!(
    VAULT_PATH,
    names::VAULT_PATH,
    ["BAO_PATH"],
    Some("auth-path"),
    ["vault-path"],
    ["vault-path", "bao-path"],
    G::MountPath,
    Some("`kubernetes` (for `kubernetes` and `jwt`, as Bank-Vaults), `approle`"),
    false,
    "The auth method's mount path, with or without `auth/`."
);
setting!(
    VAULT_NAMESPACE,
    names::VAULT_NAMESPACE,
    ["BAO_NAMESPACE"],
    Some("vault-namespace"),
    ["vault-namespace"],
    ["vault-namespace", "bao-namespace"],
    G::Text,
    None,
    true,
    "Vault Enterprise / OpenBao namespace."
);
setting!(
    VAULT_CACERT,
    names::VAULT_CACERT,
    ["BAO_CACERT"],
    None,
    [],
    [],
    G::File,
    None,
    true,
    "PEM file with the CA certificates for Vault (the webhook writes it for `tls-secret`)."
);
setting!(
    VAULT_CAPATH,
    names::VAULT_CAPATH,
    ["BAO_CAPATH"],
    None,
    [],
    [],
    G::File,
    None,
    true,
    "Directory of PEM files with CA certificates for Vault."
);
setting!(
    VAULT_CLIENT_CERT,
    names::VAULT_CLIENT_CERT,
    ["BAO_CLIENT_CERT"],
    None,
    [],
    [],
    G::File,
    None,
    true,
    "PEM client certificate for TLS to Vault."
);
setting!(
    VAULT_CLIENT_KEY,
    names::VAULT_CLIENT_KEY,
    ["BAO_CLIENT_KEY"],
    None,
    [],
    [],
    G::File,
    None,
    true,
    "PEM private key of the client certificate."
);
setting!(
    VAULT_TLS_SERVER_NAME,
    names::VAULT_TLS_SERVER_NAME,
    ["BAO_TLS_SERVER_NAME"],
    None,
    [],
    [],
    G::Text,
    None,
    true,
    "Name to verify Vault's certificate against instead of the address's host."
);
setting!(
    VAULT_SKIP_VERIFY,
    names::VAULT_SKIP_VERIFY,
    ["BAO_SKIP_VERIFY"],
    Some("skip-verify"),
    ["vault-skip-verify"],
    ["vault-skip-verify", "bao-skip-verify"],
    G::Bool,
    Some("false"),
    true,
    "Accept any certificate from Vault (tests only; warned about)."
);
setting!(
    VAULT_CLIENT_TIMEOUT,
    names::VAULT_CLIENT_TIMEOUT,
    ["BAO_CLIENT_TIMEOUT"],
    Some("client-timeout"),
    ["vault-client-timeout"],
    ["vault-client-timeout", "bao-client-timeout"],
    G::Duration(Zero::Refused),
    Some("30s"),
    true,
    "Deadline for all of the shim's Vault traffic, retries included."
);
setting!(
    VAULT_MAX_RETRIES,
    names::VAULT_MAX_RETRIES,
    ["BAO_MAX_RETRIES"],
    None,
    [],
    [],
    G::Count { min: 0, max: 100 },
    Some("2"),
    true,
    "How many times a failed Vault request is retried."
);
setting!(
    VAULT_IGNORE_MISSING_SECRETS,
    names::VAULT_IGNORE_MISSING_SECRETS,
    ["BAO_IGNORE_MISSING_SECRETS"],
    Some("ignore-missing-secrets"),
    ["vault-ignore-missing-secrets"],
    ["vault-ignore-missing-secrets", "bao-ignore-missing-secrets"],
    G::Bool,
    Some("false"),
    false,
    "A variable whose secret path is missing is dropped instead of failing (as Bank-Vaults)."
);
setting!(
    VAULT_ENV_PASSTHROUGH,
    names::VAULT_ENV_PASSTHROUGH,
    ["VAULT_PASSTHROUGH", "BAO_PASSTHROUGH"],
    Some("env-passthrough"),
    ["vault-env-passthrough"],
    ["vault-passthrough", "bao-passthrough"],
    G::EnvNames,
    None,
    false,
    "Configuration variables handed to the application all the same."
);
setting!(
    VAULT_ENV_FROM_PATH,
    names::VAULT_ENV_FROM_PATH,
    ["VAULT_FROM_PATH", "BAO_FROM_PATH"],
    Some("env-from-path"),
    ["vault-env-from-path"],
    ["vault-from-path", "bao-from-path"],
    G::VaultPaths,
    None,
    false,
    "Vault paths whose every key becomes a variable of the application; a missing path fails."
);
setting!(
    VAULT_ENV_DAEMON,
    names::VAULT_ENV_DAEMON,
    ["SECRET_INIT_DAEMON"],
    Some("env-daemon"),
    ["vault-env-daemon"],
    ["secret-init-daemon"],
    G::Bool,
    Some("false"),
    false,
    "Stay as the application's parent (daemon mode)."
);
setting!(
    VAULT_ENV_DELAY,
    names::VAULT_ENV_DELAY,
    ["SECRET_INIT_DELAY"],
    Some("env-delay"),
    ["vault-env-delay"],
    ["secret-init-delay"],
    G::Duration(Zero::Allowed),
    Some("0s"),
    false,
    "Wait this long after resolving, before the application starts."
);
setting!(
    VAULT_JSON_LOG,
    names::VAULT_JSON_LOG,
    ["SECRET_INIT_JSON_LOG"],
    Some("json-log"),
    ["enable-json-log"],
    ["secret-init-json-log"],
    G::Bool,
    Some("false"),
    false,
    "Write the shim's log lines as JSON."
);
setting!(
    VAULT_LOG_LEVEL,
    names::VAULT_LOG_LEVEL,
    ["SECRET_INIT_LOG_LEVEL", "BAO_LOG_LEVEL"],
    Some("log-level"),
    ["log-level"],
    ["vault-log-level", "bao-log-level"],
    G::OneOf { words: &["error", "warn", "warning", "info", "debug", "trace"], fold: true },
    Some("info"),
    false,
    "The shim's log level."
);
setting!(
    VAULT_REVOKE_TOKEN,
    names::VAULT_REVOKE_TOKEN,
    ["BAO_REVOKE_TOKEN"],
    None,
    [],
    [],
    G::Bool,
    Some("revoke tokens the shim logged in for, keep a token handed in"),
    false,
    "Revoke the token before exec."
);
setting!(
    VAULT_TRANSIT_KEY_ID,
    names::VAULT_TRANSIT_KEY_ID,
    ["BAO_TRANSIT_KEY_ID"],
    Some("transit-key-id"),
    ["transit-key-id"],
    ["vault-transit-key-id", "bao-transit-key-id"],
    G::Text,
    None,
    false,
    "Transit key that decrypts `vault:v1:…` ciphertext values."
);
setting!(
    VAULT_TRANSIT_PATH,
    names::VAULT_TRANSIT_PATH,
    ["BAO_TRANSIT_PATH"],
    Some("transit-path"),
    ["transit-path"],
    ["vault-transit-path", "bao-transit-path"],
    G::MountPath,
    Some("transit"),
    false,
    "Mount path of the transit engine."
);
setting!(
    VAULT_TRANSIT_BATCH_SIZE,
    names::VAULT_TRANSIT_BATCH_SIZE,
    ["BAO_TRANSIT_BATCH_SIZE"],
    Some("transit-batch-size"),
    ["transit-batch-size"],
    ["vault-transit-batch-size", "bao-transit-batch-size"],
    G::Count { min: 1, max: 1000 },
    Some("25"),
    false,
    "Ciphertexts decrypted per transit request."
);
setting!(
    VAULT_ROLE_ID,
    names::VAULT_ROLE_ID,
    [],
    None,
    [],
    [],
    G::Text,
    None,
    false,
    "AppRole role ID (falls back to `VAULT_ROLE`)."
);
setting!(
    VAULT_SECRET_ID,
    names::VAULT_SECRET_ID,
    [],
    None,
    [],
    [],
    G::Secret,
    None,
    false,
    "AppRole secret ID. Prefer `VAULT_SECRET_ID_FILE`."
);
setting!(
    VAULT_SECRET_ID_FILE,
    names::VAULT_SECRET_ID_FILE,
    [],
    None,
    [],
    [],
    G::File,
    None,
    false,
    "File holding the AppRole secret ID."
);
setting!(
    VAULT_JWT_FILE,
    names::VAULT_JWT_FILE,
    [],
    None,
    [],
    [],
    G::File,
    None,
    false,
    "File holding the JWT for `kubernetes` and `jwt` login (wins over `HUSH_SA_TOKEN_PATH`)."
);
setting!(
    HUSH_SA_TOKEN_PATH,
    names::HUSH_SA_TOKEN_PATH,
    [],
    None,
    [],
    [],
    G::File,
    Some(names::DEFAULT_SA_TOKEN_PATH),
    false,
    "The service-account token: the JWT for login, and its directory is denied to the application."
);
setting!(
    HUSH_MAX_CONCURRENCY,
    names::HUSH_MAX_CONCURRENCY,
    [],
    None,
    [],
    [],
    G::Count { min: 1, max: 256 },
    Some("8"),
    false,
    "How many Vault reads may be in flight at once."
);
setting!(
    HUSH_LANDLOCK,
    names::HUSH_LANDLOCK,
    [],
    Some("landlock"),
    [],
    [],
    G::Landlock,
    Some("deny the service-account token directory"),
    false,
    "The application's Landlock policy."
);
setting!(
    HUSH_CAPABILITIES,
    names::HUSH_CAPABILITIES,
    [],
    Some("capabilities"),
    [],
    [],
    G::Capabilities,
    Some("keep"),
    false,
    "Capabilities the application keeps: `keep`, `none`, or names."
);
setting!(
    HUSH_CLEAR_BOUNDING_SET,
    names::HUSH_CLEAR_BOUNDING_SET,
    [],
    Some("clear-bounding-set"),
    [],
    [],
    G::Bool,
    Some("false"),
    false,
    "Drop the bounding set to the kept capabilities."
);
setting!(
    HUSH_ROTATION,
    names::HUSH_ROTATION,
    [],
    Some("rotation"),
    [],
    [],
    G::OneOf { words: &["restart", "exit"], fold: false },
    Some("restart"),
    false,
    "Daemon mode: what a rotation does (`exit`: stop the app and exit 75)."
);
setting!(
    HUSH_RESTART_GRACE,
    names::HUSH_RESTART_GRACE,
    [],
    Some("restart-grace"),
    [],
    [],
    G::Duration(Zero::Refused),
    Some("10s"),
    false,
    "Daemon mode: time between SIGTERM and SIGKILL."
);
setting!(
    HUSH_KV_POLL_INTERVAL,
    names::HUSH_KV_POLL_INTERVAL,
    [],
    Some("kv-poll-interval"),
    [],
    [],
    G::Duration(Zero::Off),
    Some("60s"),
    false,
    "Daemon mode: how often KV v2 versions are checked; `0`: never."
);

/// Every setting, in the order the webhook writes them (the annotated ones first, in the
/// order of earlier releases, so that existing Pods' patches do not change).
pub static SETTINGS: &[&Setting] = &[
    &VAULT_ADDR,
    &VAULT_ROLE,
    &VAULT_AUTH_METHOD,
    &VAULT_PATH,
    &VAULT_NAMESPACE,
    &VAULT_SKIP_VERIFY,
    &VAULT_IGNORE_MISSING_SECRETS,
    &VAULT_ENV_PASSTHROUGH,
    &VAULT_ENV_DAEMON,
    &VAULT_JSON_LOG,
    &VAULT_LOG_LEVEL,
    &VAULT_CLIENT_TIMEOUT,
    &HUSH_LANDLOCK,
    &HUSH_CAPABILITIES,
    &HUSH_CLEAR_BOUNDING_SET,
    &HUSH_ROTATION,
    &HUSH_RESTART_GRACE,
    &HUSH_KV_POLL_INTERVAL,
    &VAULT_ENV_FROM_PATH,
    &VAULT_ENV_DELAY,
    &VAULT_TRANSIT_KEY_ID,
    &VAULT_TRANSIT_PATH,
    &VAULT_TRANSIT_BATCH_SIZE,
    &VAULT_TOKEN,
    &VAULT_TOKEN_FILE,
    &VAULT_CACERT,
    &VAULT_CAPATH,
    &VAULT_CLIENT_CERT,
    &VAULT_CLIENT_KEY,
    &VAULT_TLS_SERVER_NAME,
    &VAULT_MAX_RETRIES,
    &VAULT_REVOKE_TOKEN,
    &VAULT_ROLE_ID,
    &VAULT_SECRET_ID,
    &VAULT_SECRET_ID_FILE,
    &VAULT_JWT_FILE,
    &HUSH_SA_TOKEN_PATH,
    &HUSH_MAX_CONCURRENCY,
];

/// The setting a variable (its main name or an alias) belongs to.
pub fn by_env(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().copied().find(|s| s.env == name || s.env_aliases.contains(&name))
}

/// Which of the three prefixes an annotation key uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefix {
    /// `hush.dev/`.
    Hush,
    /// `vault.security.banzaicloud.io/`.
    Legacy,
    /// `secrets-webhook.security.bank-vaults.io/`.
    Current,
}

impl Prefix {
    /// Splits an annotation key into its prefix and the rest.
    pub fn split(key: &str) -> Option<(Prefix, &str)> {
        [(Prefix::Hush, HUSH_PREFIX), (Prefix::Legacy, LEGACY_PREFIX), (Prefix::Current, CURRENT_PREFIX)]
            .into_iter()
            .find_map(|(prefix, text)| key.strip_prefix(text).map(|rest| (prefix, rest)))
    }

    /// The prefix's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Prefix::Hush => HUSH_PREFIX,
            Prefix::Legacy => LEGACY_PREFIX,
            Prefix::Current => CURRENT_PREFIX,
        }
    }
}

/// The setting an annotation (split by [`Prefix::split`]) names, if any.
pub fn by_annotation(prefix: Prefix, name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().copied().find(|s| match prefix {
        Prefix::Hush => s.annotation == Some(name),
        Prefix::Legacy => s.legacy.contains(&name),
        Prefix::Current => s.current.contains(&name),
    })
}

impl Setting {
    /// Checks a value against the setting's grammar: the one rule both the webhook (for
    /// annotations) and the shim (for variables) apply.
    pub fn check(&self, value: &str) -> Result<Value, ValueError> {
        // The shim reads every value but a secret without surrounding blanks (a blank value is
        // an unset one), so the rule is applied to what it will read.
        let value = if self.grammar == G::Secret { value } else { value.trim() };
        let text = |value: &str, what: &str| -> Result<String, ValueError> {
            if value.is_empty() {
                return Err(problem("the value is empty"));
            }
            if value.chars().any(char::is_control) {
                return Err(problem(format!("{what} holds a control character")));
            }
            Ok(value.to_owned())
        };
        match self.grammar {
            G::Text => text(value, "the value").map(Value::Text),
            G::Secret if value.is_empty() => Err(problem("the value is empty")),
            G::Secret => Ok(Value::Text(value.to_owned())),
            G::File => text(value, "the path").map(Value::Text),
            G::Addr => check_addr(value).map(Value::Text),
            G::Bool => go::parse_bool(value)
                .map(Value::Bool)
                .ok_or_else(|| problem("expected a boolean as Go spells it: `true`, `false`, `1`, `0`, `t`, `f`")),
            G::Duration(zero) => {
                let d = go::parse_duration(value).map_err(|e| problem(e.to_string()))?;
                match (d.is_zero(), zero) {
                    (true, Zero::Refused) => Err(problem("the duration must be more than zero")),
                    (true, Zero::Off) => Ok(Value::Duration(None)),
                    _ => Ok(Value::Duration(Some(d))),
                }
            }
            G::OneOf { words, fold } => words
                .iter()
                .find(|w| if fold { w.eq_ignore_ascii_case(value) } else { **w == value })
                .map(|w| Value::Text((*w).to_owned()))
                .ok_or_else(|| {
                    problem(format!(
                        "expected one of {}",
                        words.iter().map(|w| format!("`{w}`")).collect::<Vec<_>>().join(", ")
                    ))
                }),
            G::MountPath => check_mount(value).map(Value::Text),
            G::EnvNames => {
                let names: Vec<String> = split_list(value);
                if let Some(bad) = names.iter().find(|n| !is_env_name(n)) {
                    return Err(problem(format!("`{bad}` is not an environment variable name")));
                }
                Ok(Value::List(names))
            }
            G::VaultPaths => {
                let paths: Vec<String> = split_list(value);
                if paths.is_empty() {
                    return Err(problem("expected one or more Vault paths, separated by commas"));
                }
                for path in &paths {
                    check_path(path).map_err(|e| problem(format!("`{path}`: {e}")))?;
                }
                Ok(Value::List(paths))
            }
            G::Count { min, max } => value
                .parse::<u64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .map(Value::Count)
                .ok_or_else(|| problem(format!("expected a whole number from {min} to {max}"))),
            G::Capabilities => check_capabilities(value),
            G::Landlock => {
                crate::landlock::parse(value).map_err(|e| problem(e.to_string()))?;
                Ok(Value::Text(value.to_owned()))
            }
        }
    }

    /// Every annotation key that names this setting, `hush.dev/` first.
    pub fn annotation_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.annotation.iter().map(|a| format!("{HUSH_PREFIX}{a}")).collect();
        keys.extend(self.legacy.iter().map(|a| format!("{LEGACY_PREFIX}{a}")));
        keys.extend(self.current.iter().map(|a| format!("{CURRENT_PREFIX}{a}")));
        keys
    }
}

fn split_list(value: &str) -> Vec<String> {
    value.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect()
}

/// A name the shim can pass through: a C identifier.
pub fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn check_addr(value: &str) -> Result<String, ValueError> {
    // The shim's URL parser is built ASCII-only (injector/Cargo.toml pins idna_adapter), and
    // Vault addresses are Kubernetes service or DNS names.
    if !value.is_ascii() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(problem("the address holds a space, a control or a non-ASCII character"));
    }
    let url = url::Url::parse(value).map_err(|e| problem(format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(problem("expected an `https://` or `http://` address"));
    }
    match url.host() {
        None => Err(problem("expected an address with a host, such as `https://vault.vault.svc:8200`")),
        Some(_) => Ok(value.to_owned()),
    }
}

/// A mount path: surrounding `/` and a leading `auth/` are dropped by the shim; what is left
/// must be segments that are not empty, `.` or `..`, without spaces or control characters.
fn check_mount(value: &str) -> Result<String, ValueError> {
    let trimmed = value.trim_matches('/');
    check_path(trimmed)?;
    Ok(trimmed.to_owned())
}

fn check_path(path: &str) -> Result<(), ValueError> {
    if path.is_empty() {
        return Err(problem("the path is empty"));
    }
    if path.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(problem("the path holds a space or a control character"));
    }
    if path.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(problem("the path has an empty, `.` or `..` segment"));
    }
    Ok(())
}

fn check_capabilities(value: &str) -> Result<Value, ValueError> {
    match value {
        "keep" | "none" => return Ok(Value::Text(value.to_owned())),
        _ => {}
    }
    for name in value.split(',').map(str::trim) {
        let upper = name.to_ascii_uppercase();
        let canonical = if upper.starts_with("CAP_") { upper } else { format!("CAP_{upper}") };
        if !CAPABILITIES.contains(&canonical.as_str()) {
            return Err(problem(format!(
                "`{name}` is not a capability; expected `keep`, `none` or names such as `NET_BIND_SERVICE,CHOWN`"
            )));
        }
    }
    // Kept as written: the shim's capability parser (`caps::to_canonical`) reads these names.
    Ok(Value::Text(value.to_owned()))
}

#[cfg(test)]
mod tests;

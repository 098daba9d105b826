//! The only reader of annotations: a Pod's (or a namespace default's, or a `--default` flag's)
//! `hush.dev/*` keys, and the Bank-Vaults `vault.security.banzaicloud.io/*` names that mean
//! the same thing, parsed once into [`Annotations`]. Pure: no I/O.
//!
//! | `hush.dev/…`                 | Bank-Vaults alias               | Value                                   |
//! |------------------------------|---------------------------------|-----------------------------------------|
//! | `inject`                     | `mutate` (`skip` = false)       | `true` / `false`                        |
//! | `vault-addr`                 | `vault-addr`                    | `http(s)://…` → `VAULT_ADDR`            |
//! | `role`                       | `vault-role`                    | → `VAULT_ROLE`                          |
//! | `auth-method`                | `vault-auth-method`             | `kubernetes` `jwt` `token` `approle`    |
//! | `auth-path`                  | `vault-path`                    | → `VAULT_PATH`                          |
//! | `vault-namespace`            | `vault-namespace`               | → `VAULT_NAMESPACE`                     |
//! | `skip-verify`                | `vault-skip-verify`             | bool → `VAULT_SKIP_VERIFY`              |
//! | `tls-secret`                 | `vault-tls-secret`              | Secret with `ca.crt` → `VAULT_CACERT`   |
//! | `ignore-missing-secrets`     | `vault-ignore-missing-secrets`  | bool                                    |
//! | `env-passthrough`            | `vault-env-passthrough`         | `NAME,NAME`                             |
//! | `env-daemon`                 | `vault-env-daemon`              | bool                                    |
//! | `json-log`                   | `enable-json-log`               | bool                                    |
//! | `log-level`                  | `log-level`                     | `error` `warn` `info` `debug`           |
//! | `client-timeout`             | `vault-client-timeout`          | `500ms`, `30s`, `2m`, `1h`              |
//! | `injector-image`             | `vault-env-image`               | image of the init container             |
//! | `injector-image-pull-policy` | `vault-env-image-pull-policy`   | `Always` `IfNotPresent` `Never`         |
//! | `landlock`                   | —                               | policy → `HUSH_LANDLOCK` (validated)    |
//! | `capabilities`               | —                               | `keep` `none` `NAME,NAME` → `HUSH_CAPABILITIES` |
//! | `clear-bounding-set`         | —                               | bool → `HUSH_CLEAR_BOUNDING_SET`        |
//! | `rotation`                   | —                               | `restart` `exit` → `HUSH_ROTATION`      |
//! | `restart-grace`              | —                               | duration → `HUSH_RESTART_GRACE`         |
//! | `kv-poll-interval`           | —                               | duration or `0` → `HUSH_KV_POLL_INTERVAL` |
//! | `command`                    | —                               | JSON `{"container": ["argv", …]}`       |
//! | `platform`                   | —                               | `os/arch[/variant]` for registry look-up |
//!
//! Any other `hush.dev/*` key is an error, and so is a Bank-Vaults key Hush does not support
//! (checked only for Pods Hush injects, see [`Annotations::unsupported`]).

use std::collections::BTreeMap;

use hush_contract::env as vars;

/// Prefix of Hush's own annotations.
pub const PREFIX: &str = "hush.dev/";
/// Prefix of Bank-Vaults' annotations, accepted as aliases.
pub const BANK_VAULTS_PREFIX: &str = "vault.security.banzaicloud.io/";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Inject,
    VaultAddr,
    Role,
    AuthMethod,
    AuthPath,
    VaultNamespace,
    SkipVerify,
    TlsSecret,
    IgnoreMissingSecrets,
    EnvPassthrough,
    EnvDaemon,
    JsonLog,
    LogLevel,
    ClientTimeout,
    InjectorImage,
    InjectorImagePullPolicy,
    Landlock,
    Capabilities,
    ClearBoundingSet,
    Rotation,
    RestartGrace,
    KvPollInterval,
    Command,
    Platform,
}

/// (key, name after `hush.dev/`, Bank-Vaults name after its prefix).
const KEYS: &[(Key, &str, Option<&str>)] = &[
    (Key::Inject, "inject", Some("mutate")),
    (Key::VaultAddr, "vault-addr", Some("vault-addr")),
    (Key::Role, "role", Some("vault-role")),
    (Key::AuthMethod, "auth-method", Some("vault-auth-method")),
    (Key::AuthPath, "auth-path", Some("vault-path")),
    (Key::VaultNamespace, "vault-namespace", Some("vault-namespace")),
    (Key::SkipVerify, "skip-verify", Some("vault-skip-verify")),
    (Key::TlsSecret, "tls-secret", Some("vault-tls-secret")),
    (Key::IgnoreMissingSecrets, "ignore-missing-secrets", Some("vault-ignore-missing-secrets")),
    (Key::EnvPassthrough, "env-passthrough", Some("vault-env-passthrough")),
    (Key::EnvDaemon, "env-daemon", Some("vault-env-daemon")),
    (Key::JsonLog, "json-log", Some("enable-json-log")),
    (Key::LogLevel, "log-level", Some("log-level")),
    (Key::ClientTimeout, "client-timeout", Some("vault-client-timeout")),
    (Key::InjectorImage, "injector-image", Some("vault-env-image")),
    (Key::InjectorImagePullPolicy, "injector-image-pull-policy", Some("vault-env-image-pull-policy")),
    (Key::Landlock, "landlock", None),
    (Key::Capabilities, "capabilities", None),
    (Key::ClearBoundingSet, "clear-bounding-set", None),
    (Key::Rotation, "rotation", None),
    (Key::RestartGrace, "restart-grace", None),
    (Key::KvPollInterval, "kv-poll-interval", None),
    (Key::Command, "command", None),
    (Key::Platform, "platform", None),
];

/// Why an annotation was rejected. Every message names the annotation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    /// A `hush.dev/*` key Hush does not know.
    #[error("unknown annotation `{0}`")]
    Unknown(String),
    /// A Bank-Vaults key Hush has no equivalent for.
    #[error("annotation `{0}` is not supported by Hush")]
    Unsupported(String),
    /// A value that does not parse.
    #[error("annotation `{key}` has an invalid value {value:?}: {problem}")]
    Invalid {
        /// The full annotation key.
        key: String,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The native key and its Bank-Vaults alias disagree.
    #[error("annotations `{native}` and `{alias}` disagree")]
    Conflict {
        /// The `hush.dev/*` key.
        native: String,
        /// The Bank-Vaults key.
        alias: String,
    },
    /// A key that is allowed on Pods only (e.g. `hush.dev/command`) in namespace defaults or flags.
    #[error("annotation `{0}` can only be set on a Pod")]
    PodOnly(String),
}

/// How the shim logs in to Vault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// Kubernetes service-account login.
    Kubernetes,
    /// JWT login.
    Jwt,
    /// A token handed in through `VAULT_TOKEN`.
    Token,
    /// AppRole.
    AppRole,
}

impl AuthMethod {
    fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Kubernetes => "kubernetes",
            AuthMethod::Jwt => "jwt",
            AuthMethod::Token => "token",
            AuthMethod::AppRole => "approle",
        }
    }
}

/// The init container's image pull policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    /// `Always`.
    Always,
    /// `IfNotPresent`.
    IfNotPresent,
    /// `Never`.
    Never,
}

impl PullPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// An image platform, `os/arch[/variant]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    /// e.g. `linux`.
    pub os: String,
    /// e.g. `amd64`.
    pub arch: String,
    /// e.g. `v8`.
    pub variant: Option<String>,
}

impl Platform {
    /// `linux/amd64`, the default: the node's architecture is unknown at admission.
    pub fn linux_amd64() -> Self {
        Platform { os: "linux".into(), arch: "amd64".into(), variant: None }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let good = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let parts: Vec<&str> = text.split('/').collect();
        match parts.as_slice() {
            [os, arch] if good(os) && good(arch) => {
                Ok(Platform { os: (*os).into(), arch: (*arch).into(), variant: None })
            }
            [os, arch, variant] if good(os) && good(arch) && good(variant) => {
                Ok(Platform { os: (*os).into(), arch: (*arch).into(), variant: Some((*variant).into()) })
            }
            _ => Err("expected `os/arch` or `os/arch/variant` in lower case, e.g. `linux/arm64`".into()),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The shim's settings. Each layer (Pod, namespace defaults, flags) may leave any unset;
/// [`Settings::over`] stacks them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// `VAULT_ADDR`.
    pub vault_addr: Option<String>,
    /// `VAULT_ROLE`.
    pub role: Option<String>,
    /// `VAULT_AUTH_METHOD`.
    pub auth_method: Option<AuthMethod>,
    /// `VAULT_PATH`.
    pub auth_path: Option<String>,
    /// `VAULT_NAMESPACE`.
    pub vault_namespace: Option<String>,
    /// `VAULT_SKIP_VERIFY`.
    pub skip_verify: Option<bool>,
    /// A Secret (same namespace) whose `ca.crt` becomes `VAULT_CACERT`.
    pub tls_secret: Option<String>,
    /// `VAULT_IGNORE_MISSING_SECRETS`.
    pub ignore_missing_secrets: Option<bool>,
    /// `VAULT_ENV_PASSTHROUGH`, names joined by commas.
    pub env_passthrough: Option<Vec<String>>,
    /// `VAULT_ENV_DAEMON`.
    pub env_daemon: Option<bool>,
    /// `VAULT_JSON_LOG`.
    pub json_log: Option<bool>,
    /// `VAULT_LOG_LEVEL`.
    pub log_level: Option<String>,
    /// `VAULT_CLIENT_TIMEOUT`, validated, as written.
    pub client_timeout: Option<String>,
    /// The init container's image.
    pub injector_image: Option<String>,
    /// The init container's pull policy.
    pub injector_image_pull_policy: Option<PullPolicy>,
    /// `HUSH_LANDLOCK`, validated with the shim's grammar, as written.
    pub landlock: Option<String>,
    /// `HUSH_CAPABILITIES`, as written.
    pub capabilities: Option<String>,
    /// `HUSH_CLEAR_BOUNDING_SET`.
    pub clear_bounding_set: Option<bool>,
    /// `HUSH_ROTATION`.
    pub rotation: Option<String>,
    /// `HUSH_RESTART_GRACE`, validated, as written.
    pub restart_grace: Option<String>,
    /// `HUSH_KV_POLL_INTERVAL`, validated, as written.
    pub kv_poll_interval: Option<String>,
}

impl Settings {
    /// `self`, with anything it leaves unset taken from `lower`.
    pub fn over(&self, lower: &Settings) -> Settings {
        fn pick<T: Clone>(a: &Option<T>, b: &Option<T>) -> Option<T> {
            a.clone().or_else(|| b.clone())
        }
        Settings {
            vault_addr: pick(&self.vault_addr, &lower.vault_addr),
            role: pick(&self.role, &lower.role),
            auth_method: pick(&self.auth_method, &lower.auth_method),
            auth_path: pick(&self.auth_path, &lower.auth_path),
            vault_namespace: pick(&self.vault_namespace, &lower.vault_namespace),
            skip_verify: pick(&self.skip_verify, &lower.skip_verify),
            tls_secret: pick(&self.tls_secret, &lower.tls_secret),
            ignore_missing_secrets: pick(&self.ignore_missing_secrets, &lower.ignore_missing_secrets),
            env_passthrough: pick(&self.env_passthrough, &lower.env_passthrough),
            env_daemon: pick(&self.env_daemon, &lower.env_daemon),
            json_log: pick(&self.json_log, &lower.json_log),
            log_level: pick(&self.log_level, &lower.log_level),
            client_timeout: pick(&self.client_timeout, &lower.client_timeout),
            injector_image: pick(&self.injector_image, &lower.injector_image),
            injector_image_pull_policy: pick(&self.injector_image_pull_policy, &lower.injector_image_pull_policy),
            landlock: pick(&self.landlock, &lower.landlock),
            capabilities: pick(&self.capabilities, &lower.capabilities),
            clear_bounding_set: pick(&self.clear_bounding_set, &lower.clear_bounding_set),
            rotation: pick(&self.rotation, &lower.rotation),
            restart_grace: pick(&self.restart_grace, &lower.restart_grace),
            kv_poll_interval: pick(&self.kv_poll_interval, &lower.kv_poll_interval),
        }
    }

    /// The shim's configuration variables these settings produce, in a fixed order.
    /// `VAULT_CACERT` (from [`Settings::tls_secret`]) is added by the mutation, which knows the mount.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let bool_str = |b: bool| if b { "true".to_owned() } else { "false".to_owned() };
        let mut out = Vec::new();
        let mut put = |name: &'static str, value: Option<String>| {
            if let Some(value) = value {
                out.push((name, value));
            }
        };
        put(vars::VAULT_ADDR, self.vault_addr.clone());
        put(vars::VAULT_ROLE, self.role.clone());
        put(vars::VAULT_AUTH_METHOD, self.auth_method.map(|m| m.as_str().to_owned()));
        put(vars::VAULT_PATH, self.auth_path.clone());
        put(vars::VAULT_NAMESPACE, self.vault_namespace.clone());
        put(vars::VAULT_SKIP_VERIFY, self.skip_verify.map(bool_str));
        put(vars::VAULT_IGNORE_MISSING_SECRETS, self.ignore_missing_secrets.map(bool_str));
        put(vars::VAULT_ENV_PASSTHROUGH, self.env_passthrough.as_ref().map(|names| names.join(",")));
        put(vars::VAULT_ENV_DAEMON, self.env_daemon.map(bool_str));
        put(vars::VAULT_JSON_LOG, self.json_log.map(bool_str));
        put(vars::VAULT_LOG_LEVEL, self.log_level.clone());
        put(vars::VAULT_CLIENT_TIMEOUT, self.client_timeout.clone());
        put(vars::HUSH_LANDLOCK, self.landlock.clone());
        put(vars::HUSH_CAPABILITIES, self.capabilities.clone());
        put(vars::HUSH_CLEAR_BOUNDING_SET, self.clear_bounding_set.map(bool_str));
        put(vars::HUSH_ROTATION, self.rotation.clone());
        put(vars::HUSH_RESTART_GRACE, self.restart_grace.clone());
        put(vars::HUSH_KV_POLL_INTERVAL, self.kv_poll_interval.clone());
        out
    }
}

/// Everything Hush reads from one set of annotations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Annotations {
    /// `Some(true)`: inject every container; `Some(false)`: inject none; `None`: decide by references.
    pub inject: Option<bool>,
    /// The shim's settings.
    pub settings: Settings,
    /// Per-container command to use instead of the image's ENTRYPOINT/CMD (Pods only).
    pub command: BTreeMap<String, Vec<String>>,
    /// Platform for registry look-ups.
    pub platform: Option<Platform>,
    /// Bank-Vaults keys that Hush does not support; an error only if the Pod is injected.
    pub unsupported: Vec<String>,
}

/// Where a set of annotations comes from: some keys are allowed on Pods only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A Pod's own annotations.
    Pod,
    /// Namespace defaults or the webhook's `--default` flags.
    Defaults,
}

impl Annotations {
    /// `self` over `lower`: the Pod over namespace defaults over flags.
    pub fn over(&self, lower: &Annotations) -> Annotations {
        Annotations {
            inject: self.inject.or(lower.inject),
            settings: self.settings.over(&lower.settings),
            command: if self.command.is_empty() { lower.command.clone() } else { self.command.clone() },
            platform: self.platform.clone().or_else(|| lower.platform.clone()),
            unsupported: self.unsupported.clone(),
        }
    }

    /// Parses the Hush and Bank-Vaults keys of `annotations`; other keys are ignored.
    pub fn parse<'a>(
        annotations: impl IntoIterator<Item = (&'a String, &'a String)>,
        source: Source,
    ) -> Result<Annotations, AnnotationError> {
        // (key, full annotation name, value), natives first so they win ties.
        let mut found: Vec<(Key, &'a str, &'a str, bool)> = Vec::new();
        let mut out = Annotations::default();
        for (name, value) in annotations {
            if let Some(short) = name.strip_prefix(PREFIX) {
                let key = KEYS
                    .iter()
                    .find(|(_, native, _)| *native == short)
                    .map(|(k, _, _)| *k)
                    .ok_or_else(|| AnnotationError::Unknown(name.clone()))?;
                found.push((key, name, value, true));
            } else if let Some(short) = name.strip_prefix(BANK_VAULTS_PREFIX) {
                match KEYS.iter().find(|(_, _, alias)| *alias == Some(short)) {
                    Some((key, _, _)) => found.push((*key, name, value, false)),
                    None => out.unsupported.push(name.clone()),
                }
            }
        }
        found.sort_by_key(|(_, _, _, native)| !native);
        let mut seen: Vec<(Key, &str, &str)> = Vec::new();
        for (key, name, value, _) in found {
            if let Some((_, first_name, first_value)) = seen.iter().find(|(k, _, _)| *k == key) {
                if normalize(key, first_value) != normalize(key, value) {
                    return Err(AnnotationError::Conflict { native: (*first_name).into(), alias: name.into() });
                }
                continue;
            }
            seen.push((key, name, value));
            out.set(key, name, value, source)?;
        }
        Ok(out)
    }

    fn set(&mut self, key: Key, name: &str, value: &str, source: Source) -> Result<(), AnnotationError> {
        let invalid = |problem: &str| AnnotationError::Invalid {
            key: name.to_owned(),
            value: value.to_owned(),
            problem: problem.to_owned(),
        };
        let s = &mut self.settings;
        match key {
            Key::Inject => {
                self.inject = Some(if name.starts_with(BANK_VAULTS_PREFIX) && value == "skip" {
                    false
                } else {
                    parse_bool(value).ok_or_else(|| invalid("expected `true` or `false`"))?
                })
            }
            Key::VaultAddr => s.vault_addr = Some(parse_addr(value).map_err(|p| invalid(&p))?),
            Key::Role => s.role = Some(parse_text(value).map_err(|p| invalid(&p))?),
            Key::AuthMethod => {
                s.auth_method = Some(match value {
                    "kubernetes" => AuthMethod::Kubernetes,
                    "jwt" => AuthMethod::Jwt,
                    "token" => AuthMethod::Token,
                    "approle" => AuthMethod::AppRole,
                    _ => return Err(invalid("expected `kubernetes`, `jwt`, `token` or `approle`")),
                })
            }
            Key::AuthPath => s.auth_path = Some(parse_text(value).map_err(|p| invalid(&p))?),
            Key::VaultNamespace => s.vault_namespace = Some(parse_text(value).map_err(|p| invalid(&p))?),
            Key::SkipVerify => s.skip_verify = Some(parse_bool(value).ok_or_else(|| invalid("expected a boolean"))?),
            Key::TlsSecret => {
                if !is_dns_subdomain(value) {
                    return Err(invalid("expected a Secret name (lower-case DNS subdomain)"));
                }
                s.tls_secret = Some(value.to_owned())
            }
            Key::IgnoreMissingSecrets => {
                s.ignore_missing_secrets = Some(parse_bool(value).ok_or_else(|| invalid("expected a boolean"))?)
            }
            Key::EnvPassthrough => {
                let names: Vec<String> =
                    value.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect();
                if let Some(bad) = names.iter().find(|n| !is_env_name(n)) {
                    return Err(invalid(&format!("`{bad}` is not an environment variable name")));
                }
                s.env_passthrough = Some(names)
            }
            Key::EnvDaemon => s.env_daemon = Some(parse_bool(value).ok_or_else(|| invalid("expected a boolean"))?),
            Key::JsonLog => s.json_log = Some(parse_bool(value).ok_or_else(|| invalid("expected a boolean"))?),
            Key::LogLevel => {
                if !matches!(value, "error" | "warn" | "info" | "debug") {
                    return Err(invalid("expected `error`, `warn`, `info` or `debug`"));
                }
                s.log_level = Some(value.to_owned())
            }
            Key::ClientTimeout => {
                if !is_duration(value) {
                    return Err(invalid("expected a duration such as `500ms`, `30s`, `2m` or `1h`"));
                }
                s.client_timeout = Some(value.to_owned())
            }
            Key::InjectorImage => {
                if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(invalid("expected an image reference"));
                }
                s.injector_image = Some(value.to_owned())
            }
            Key::InjectorImagePullPolicy => {
                s.injector_image_pull_policy = Some(match value {
                    "Always" => PullPolicy::Always,
                    "IfNotPresent" => PullPolicy::IfNotPresent,
                    "Never" => PullPolicy::Never,
                    _ => return Err(invalid("expected `Always`, `IfNotPresent` or `Never`")),
                })
            }
            Key::Landlock => {
                hush_contract::landlock::parse(value).map_err(|e| invalid(&e.to_string()))?;
                s.landlock = Some(value.to_owned())
            }
            Key::Capabilities => {
                let names_ok = value
                    .split(',')
                    .map(str::trim)
                    .all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                if !(matches!(value, "keep" | "none") || names_ok) {
                    return Err(invalid(
                        "expected `keep`, `none` or capability names such as `NET_BIND_SERVICE,CHOWN`",
                    ));
                }
                s.capabilities = Some(value.to_owned())
            }
            Key::ClearBoundingSet => {
                s.clear_bounding_set = Some(parse_bool(value).ok_or_else(|| invalid("expected a boolean"))?)
            }
            Key::Rotation => {
                if !matches!(value, "restart" | "exit") {
                    return Err(invalid("expected `restart` or `exit`"));
                }
                s.rotation = Some(value.to_owned())
            }
            Key::RestartGrace => {
                if !is_duration(value) {
                    return Err(invalid("expected a duration such as `500ms`, `30s`, `2m` or `1h`"));
                }
                s.restart_grace = Some(value.to_owned())
            }
            Key::KvPollInterval => {
                if value != "0" && !is_duration(value) {
                    return Err(invalid("expected a duration such as `30s` or `2m`, or `0` to turn it off"));
                }
                s.kv_poll_interval = Some(value.to_owned())
            }
            Key::Command => {
                if source != Source::Pod {
                    return Err(AnnotationError::PodOnly(name.to_owned()));
                }
                let map: BTreeMap<String, Vec<String>> = serde_json::from_str(value)
                    .map_err(|e| invalid(&format!("expected a JSON object of container name to argv array ({e})")))?;
                if let Some((container, _)) = map.iter().find(|(_, argv)| argv.is_empty()) {
                    return Err(invalid(&format!("the command for container `{container}` is empty")));
                }
                self.command = map
            }
            Key::Platform => self.platform = Some(Platform::parse(value).map_err(|p| invalid(&p))?),
        }
        Ok(())
    }
}

/// The value as it will be used, to compare a native key with its alias.
fn normalize(key: Key, value: &str) -> String {
    match key {
        Key::Inject if value == "skip" => "false".into(),
        Key::Inject
        | Key::SkipVerify
        | Key::IgnoreMissingSecrets
        | Key::EnvDaemon
        | Key::JsonLog
        | Key::ClearBoundingSet => parse_bool(value).map_or_else(|| value.to_owned(), |b| b.to_string()),
        _ => value.to_owned(),
    }
}

/// Go's `strconv.ParseBool`, which Bank-Vaults uses.
fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

fn parse_text(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err("the value is empty".into());
    }
    if value.chars().any(char::is_control) {
        return Err("the value holds a control character".into());
    }
    Ok(value.to_owned())
}

fn parse_addr(value: &str) -> Result<String, String> {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or("expected an `https://` or `http://` address")?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("expected an address such as `https://vault.vault.svc:8200`".into());
    }
    Ok(value.to_owned())
}

fn is_duration(value: &str) -> bool {
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && digits <= 9 && matches!(&value[digits..], "ms" | "s" | "m" | "h")
}

/// A Kubernetes DNS subdomain name (Secret names).
pub fn is_dns_subdomain(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A name the shim can pass through: a C identifier.
fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Annotations, AnnotationError> {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Annotations::parse(&map, Source::Pod)
    }

    #[test]
    fn hardening_and_daemon_keys_become_shim_variables() {
        let a = parse(&[
            ("hush.dev/landlock", "ro:/usr;rw:/tmp;connect:5432"),
            ("hush.dev/capabilities", "NET_BIND_SERVICE"),
            ("hush.dev/clear-bounding-set", "true"),
            ("hush.dev/rotation", "exit"),
            ("hush.dev/restart-grace", "5s"),
            ("hush.dev/kv-poll-interval", "0"),
        ])
        .unwrap();
        let env = a.settings.env();
        for (name, value) in [
            ("HUSH_LANDLOCK", "ro:/usr;rw:/tmp;connect:5432"),
            ("HUSH_CAPABILITIES", "NET_BIND_SERVICE"),
            ("HUSH_CLEAR_BOUNDING_SET", "true"),
            ("HUSH_ROTATION", "exit"),
            ("HUSH_RESTART_GRACE", "5s"),
            ("HUSH_KV_POLL_INTERVAL", "0"),
        ] {
            assert!(env.contains(&(name, value.to_owned())), "{name}: {env:?}");
        }
        for (key, value, says) in [
            ("hush.dev/landlock", "ro:usr", "is not an absolute path"),
            ("hush.dev/landlock", "write:/tmp", "unknown item"),
            ("hush.dev/capabilities", "NET BIND", "capability names"),
            ("hush.dev/rotation", "reboot", "`restart` or `exit`"),
            ("hush.dev/restart-grace", "soon", "duration"),
            ("hush.dev/kv-poll-interval", "often", "duration"),
        ] {
            let e = parse(&[(key, value)]).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains(says), "{e}");
        }
    }

    #[test]
    fn native_keys_become_settings() {
        let a = parse(&[
            ("hush.dev/inject", "true"),
            ("hush.dev/vault-addr", "https://vault:8200"),
            ("hush.dev/role", "app"),
            ("hush.dev/auth-method", "jwt"),
            ("hush.dev/env-passthrough", "VAULT_ADDR, VAULT_ROLE"),
            ("hush.dev/client-timeout", "30s"),
            ("hush.dev/platform", "linux/arm64/v8"),
            ("hush.dev/command", r#"{"app":["/app","serve"]}"#),
            ("unrelated.io/x", "anything"),
        ])
        .unwrap();
        assert_eq!(a.inject, Some(true));
        assert_eq!(
            a.settings.env(),
            vec![
                ("VAULT_ADDR", "https://vault:8200".to_owned()),
                ("VAULT_ROLE", "app".to_owned()),
                ("VAULT_AUTH_METHOD", "jwt".to_owned()),
                ("VAULT_ENV_PASSTHROUGH", "VAULT_ADDR,VAULT_ROLE".to_owned()),
                ("VAULT_CLIENT_TIMEOUT", "30s".to_owned()),
            ]
        );
        assert_eq!(a.platform.unwrap().to_string(), "linux/arm64/v8");
        assert_eq!(a.command["app"], vec!["/app", "serve"]);
    }

    #[test]
    fn bank_vaults_aliases_are_accepted() {
        let a = parse(&[
            ("vault.security.banzaicloud.io/vault-addr", "https://vault:8200"),
            ("vault.security.banzaicloud.io/vault-role", "app"),
            ("vault.security.banzaicloud.io/vault-path", "kubernetes"),
            ("vault.security.banzaicloud.io/vault-skip-verify", "True"),
            ("vault.security.banzaicloud.io/vault-env-daemon", "1"),
            ("vault.security.banzaicloud.io/vault-env-image", "hush/injector:1"),
            ("vault.security.banzaicloud.io/vault-tls-secret", "vault-tls"),
        ])
        .unwrap();
        assert_eq!(a.settings.auth_path.as_deref(), Some("kubernetes"));
        assert_eq!(a.settings.skip_verify, Some(true));
        assert_eq!(a.settings.env_daemon, Some(true));
        assert_eq!(a.settings.injector_image.as_deref(), Some("hush/injector:1"));
        assert_eq!(a.settings.tls_secret.as_deref(), Some("vault-tls"));
        assert_eq!(parse(&[("vault.security.banzaicloud.io/mutate", "skip")]).unwrap().inject, Some(false));
    }

    #[test]
    fn errors_name_the_annotation() {
        let e = parse(&[("hush.dev/injct", "true")]).unwrap_err();
        assert_eq!(e.to_string(), "unknown annotation `hush.dev/injct`");
        let e = parse(&[("hush.dev/inject", "yes")]).unwrap_err();
        assert!(e.to_string().starts_with("annotation `hush.dev/inject` has an invalid value \"yes\""), "{e}");
        let e = parse(&[("vault.security.banzaicloud.io/vault-skip-verify", "maybe")]).unwrap_err();
        assert!(e.to_string().contains("vault.security.banzaicloud.io/vault-skip-verify"), "{e}");
        for (k, v) in [
            ("hush.dev/vault-addr", "vault:8200"),
            ("hush.dev/client-timeout", "30"),
            ("hush.dev/auth-method", "ldap"),
            ("hush.dev/env-passthrough", "A-B"),
            ("hush.dev/tls-secret", "Bad_Name"),
            ("hush.dev/command", r#"{"app":[]}"#),
            ("hush.dev/command", "[]"),
            ("hush.dev/platform", "amd64"),
            ("hush.dev/role", ""),
        ] {
            let e = parse(&[(k, v)]).unwrap_err();
            assert!(e.to_string().contains(k), "{k}={v}: {e}");
        }
    }

    #[test]
    fn native_and_alias_must_agree() {
        assert!(parse(&[("hush.dev/role", "a"), ("vault.security.banzaicloud.io/vault-role", "a")]).is_ok());
        assert!(
            parse(&[("hush.dev/skip-verify", "true"), ("vault.security.banzaicloud.io/vault-skip-verify", "1")])
                .is_ok()
        );
        let e = parse(&[("hush.dev/role", "a"), ("vault.security.banzaicloud.io/vault-role", "b")]).unwrap_err();
        assert!(matches!(e, AnnotationError::Conflict { .. }), "{e}");
    }

    #[test]
    fn unsupported_bank_vaults_keys_are_collected() {
        let a = parse(&[("vault.security.banzaicloud.io/vault-agent", "true")]).unwrap();
        assert_eq!(a.unsupported, vec!["vault.security.banzaicloud.io/vault-agent"]);
    }

    #[test]
    fn command_is_for_pods_only() {
        let map = BTreeMap::from([("hush.dev/command".to_owned(), r#"{"a":["b"]}"#.to_owned())]);
        assert_eq!(
            Annotations::parse(&map, Source::Defaults).unwrap_err(),
            AnnotationError::PodOnly("hush.dev/command".into())
        );
    }

    #[test]
    fn layers_stack_pod_over_namespace_over_flags() {
        let flags = parse(&[("hush.dev/vault-addr", "https://a"), ("hush.dev/role", "r0")]).unwrap();
        let ns = parse(&[("hush.dev/role", "r1"), ("hush.dev/json-log", "true")]).unwrap();
        let pod = parse(&[("hush.dev/json-log", "false")]).unwrap();
        let s = pod.over(&ns.over(&flags)).settings;
        assert_eq!(s.vault_addr.as_deref(), Some("https://a"));
        assert_eq!(s.role.as_deref(), Some("r1"));
        assert_eq!(s.json_log, Some(false));
    }
}

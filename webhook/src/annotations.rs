//! The only reader of annotations: a Pod's (or a namespace default's, or a `--default` flag's)
//! `hush.dev/*` keys, and Bank-Vaults' names under both of its prefixes, parsed once into
//! [`Annotations`]. Pure: no I/O.
//!
//! The shim's settings (which annotation writes which variable, and each value's grammar)
//! are described once, in `hush_contract::settings`; this module looks every key up there and
//! checks its value with the contract's rule, so that what is admitted here the shim accepts.
//! The keys that configure the webhook itself are here: `inject` (`mutate`), `tls-secret`
//! (`vault-tls-secret`, `bao-tls-secret`), `injector-image` (`vault-env-image`,
//! `secret-init-image`), `injector-image-pull-policy`, `command`, `platform`, and the current
//! Bank-Vaults `provider`.
//!
//! Every other Bank-Vaults annotation has one outcome, whether or not the Pod holds a
//! reference ([`bank_vaults_outcome`]): accepted with a warning when it asks for what Hush
//! does anyway, refused with a message naming it when it asks for what Hush will not do.
//! Sources: `bank-vaults/vault-secrets-webhook` `pkg/common/common.go` (legacy prefix) and
//! `bank-vaults/secrets-webhook` `pkg/common/common.go` (current prefix).
//!
//! Any other `hush.dev/*` key is an error.

use std::collections::BTreeMap;

use hush_contract::settings::{self as contract, Prefix, Setting};

/// Prefix of Hush's own annotations.
pub const PREFIX: &str = contract::HUSH_PREFIX;
/// Prefix of the legacy Bank-Vaults webhook's annotations, accepted as aliases.
pub const BANK_VAULTS_PREFIX: &str = contract::LEGACY_PREFIX;
/// Prefix of the current Bank-Vaults webhook's annotations, accepted as aliases.
pub const BANK_VAULTS_CURRENT_PREFIX: &str = contract::CURRENT_PREFIX;

/// A key that configures the webhook rather than the shim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Own {
    Inject,
    TlsSecret,
    InjectorImage,
    InjectorImagePullPolicy,
    Command,
    Platform,
    Provider,
}

/// (key, `hush.dev/` name, legacy names, current names).
type OwnEntry = (Own, Option<&'static str>, &'static [&'static str], &'static [&'static str]);
const OWN: &[OwnEntry] = &[
    (Own::Inject, Some("inject"), &["mutate"], &["mutate"]),
    (Own::TlsSecret, Some("tls-secret"), &["vault-tls-secret"], &["vault-tls-secret", "bao-tls-secret"]),
    (Own::InjectorImage, Some("injector-image"), &["vault-env-image"], &["secret-init-image"]),
    (
        Own::InjectorImagePullPolicy,
        Some("injector-image-pull-policy"),
        &["vault-env-image-pull-policy"],
        &["secret-init-image-pull-policy"],
    ),
    (Own::Command, Some("command"), &[], &[]),
    (Own::Platform, Some("platform"), &[], &[]),
    (Own::Provider, None, &[], &["provider"]),
];

/// What a key names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Shim(&'static Setting),
    Own(Own),
}

fn lookup(prefix: Prefix, name: &str) -> Option<Key> {
    if let Some(setting) = contract::by_annotation(prefix, name) {
        return Some(Key::Shim(setting));
    }
    OWN.iter()
        .find(|(_, hush, legacy, current)| match prefix {
            Prefix::Hush => *hush == Some(name),
            Prefix::Legacy => legacy.contains(&name),
            Prefix::Current => current.contains(&name),
        })
        .map(|(own, ..)| Key::Own(*own))
}

/// What Hush does with a Bank-Vaults annotation that names no setting of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted; the client is warned with this text.
    Warn(String),
    /// Refused with this text.
    Refuse(String),
}

const SECURE_INIT: &str = "Hush's init container always runs as a non-root user with a read-only root \
    filesystem, no privilege escalation and every capability dropped, and the shim runs as the container's own user";

/// The outcome of a Bank-Vaults annotation (`name` after either prefix) that is not one of
/// Hush's settings. Read from `bank-vaults/vault-secrets-webhook` `pkg/webhook/config.go` and
/// `pkg/webhook/pod.go`, and `bank-vaults/secrets-webhook` `pkg/common/common.go`.
pub fn bank_vaults_outcome(key: &str, name: &str, value: &str) -> Outcome {
    let is_true = hush_contract::go::parse_bool(value).unwrap_or(false);
    let agent = |what: &str| {
        Outcome::Refuse(format!(
            "annotation `{key}` asks for {what}; Hush adds no sidecar and no agent: the shim resolves \
             secrets into the process environment at start (and, with hush.dev/env-daemon, renews them)"
        ))
    };
    let ignored = |why: &str| Outcome::Warn(format!("annotation `{key}` is ignored: {why}"));
    match name {
        // pod.go: the agent sidecar only when vault-agent is true (or a consul-template ConfigMap is set).
        "vault-agent" | "bao-agent" if !is_true => ignored("Hush never adds a Vault agent, as this value asks"),
        "vault-agent" | "bao-agent" => agent("a Vault agent sidecar"),
        n if n.starts_with("vault-agent-") || n.starts_with("bao-agent-") => agent("a Vault agent sidecar"),
        n if n.starts_with("vault-ct-") || n.starts_with("bao-ct-") => agent("a consul-template sidecar"),
        "vault-configfile-path" | "bao-configfile-path" => agent("a Vault agent or consul-template sidecar"),
        "vault-image" | "vault-image-pull-policy" | "bao-image" | "bao-image-pull-policy" => {
            ignored("it sets the Vault agent's image, and Hush adds no agent")
        }
        "service-account-token-volume-name"
        | "vault-service-account-token-volume-name"
        | "bao-service-account-token-volume-name" => {
            ignored("Bank-Vaults uses it for the agent and consul-template sidecars, which Hush does not add")
        }
        "run-as-non-root" | "run-as-user" | "run-as-group" | "readonly-root-fs" | "psp-allow-privilege-escalation" => {
            ignored(SECURE_INIT)
        }
        "mutate-probes" if !is_true => ignored("Hush leaves probes unchanged, as this value asks"),
        "mutate-probes" => Outcome::Refuse(format!(
            "annotation `{key}` asks to run probes through the secret injector; Hush leaves probes unchanged \
             (a probe that needs a secret can read it from the application)"
        )),
        "registry-skip-verify" if !is_true => ignored("Hush always verifies registry certificates"),
        "registry-skip-verify" => Outcome::Refuse(format!(
            "annotation `{key}` asks to skip TLS verification of image registries; Hush always verifies them \
             (set the container's `command`, or hush.dev/command, so that no registry look-up is needed)"
        )),
        "vault-serviceaccount" | "bao-serviceaccount" => Outcome::Refuse(format!(
            "annotation `{key}` asks the webhook to mint a token for another ServiceAccount; Hush logs in with \
             the Pod's own ServiceAccount token"
        )),
        "token-auth-mount" | "vault-token-auth-mount" | "bao-token-auth-mount" => Outcome::Refuse(format!(
            "annotation `{key}` asks for a token-copying init container; mount the Secret yourself and set \
             VAULT_TOKEN_FILE in the container"
        )),
        "credentials-namespace"
        | "credentials-secret-name"
        | "aws-load-from-secret"
        | "aws-region"
        | "aws-tls-secret-arn" => Outcome::Refuse(format!(
            "annotation `{key}` configures Bank-Vaults' AWS provider; Hush reads from Vault and OpenBao only"
        )),
        _ => Outcome::Refuse(format!("annotation `{key}` is not a Bank-Vaults annotation Hush knows")),
    }
}

/// Whether `image` is one of Bank-Vaults' own injector images (`vault-env`, `secret-init`),
/// which cannot run `/injector install`.
fn is_bank_vaults_image(image: &str) -> bool {
    let repository = image.split(['@']).next().unwrap_or(image);
    let repository = match repository.rfind(':') {
        Some(i) if !repository[i..].contains('/') => &repository[..i],
        _ => repository,
    };
    let last = repository.rsplit('/').next().unwrap_or(repository);
    matches!(last, "vault-env" | "secret-init")
        || repository.contains("bank-vaults/")
        || repository.contains("banzaicloud/")
}

/// Why an annotation was rejected. Every message names the annotation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    /// A `hush.dev/*` key Hush does not know.
    #[error("unknown annotation `{0}`")]
    Unknown(String),
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
        /// The first key.
        native: String,
        /// The other key.
        alias: String,
    },
    /// A key that is allowed on Pods only (e.g. `hush.dev/command`) in namespace defaults or flags.
    #[error("annotation `{0}` can only be set on a Pod")]
    PodOnly(String),
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

/// The shim's settings and the webhook's own. Each layer (Pod, namespace defaults, flags)
/// may leave any unset; [`Settings::over`] stacks them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// The shim's variables, by name (`hush_contract::settings`), with their canonical values.
    pub shim: BTreeMap<&'static str, String>,
    /// A Secret (same namespace) whose `ca.crt` becomes `VAULT_CACERT`.
    pub tls_secret: Option<String>,
    /// The init container's image.
    pub injector_image: Option<String>,
    /// The init container's pull policy.
    pub injector_image_pull_policy: Option<PullPolicy>,
}

impl Settings {
    /// `self`, with anything it leaves unset taken from `lower`.
    pub fn over(&self, lower: &Settings) -> Settings {
        let mut shim = lower.shim.clone();
        shim.extend(self.shim.iter().map(|(k, v)| (*k, v.clone())));
        Settings {
            shim,
            tls_secret: self.tls_secret.clone().or_else(|| lower.tls_secret.clone()),
            injector_image: self.injector_image.clone().or_else(|| lower.injector_image.clone()),
            injector_image_pull_policy: self.injector_image_pull_policy.or(lower.injector_image_pull_policy),
        }
    }

    /// The value of the shim's variable `env`, if set.
    pub fn get(&self, env: &str) -> Option<&str> {
        self.shim.get(env).map(String::as_str)
    }

    /// `VAULT_ADDR`.
    pub fn vault_addr(&self) -> Option<&str> {
        self.get(contract::VAULT_ADDR.env)
    }

    /// The shim's configuration variables these settings produce, in the contract's order.
    /// `VAULT_CACERT` (from [`Settings::tls_secret`]) is added by the mutation, which knows the mount.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        self.env_refs().map(|(name, value)| (name, value.to_owned())).collect()
    }

    /// [`Settings::env`], borrowed.
    pub fn env_refs(&self) -> impl Iterator<Item = (&'static str, &str)> {
        let settings = if self.shim.is_empty() { &[][..] } else { contract::SETTINGS };
        settings.iter().filter_map(|s| self.shim.get(s.env).map(|v| (s.env, v.as_str())))
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
    /// Bank-Vaults annotations Hush refuses, each message naming its annotation.
    pub refused: Vec<String>,
    /// Bank-Vaults annotations Hush accepts with a warning for the client.
    pub warnings: Vec<String>,
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
    /// `self` over `lower`: the Pod over namespace defaults over flags. Refusals and
    /// warnings are the top layer's own.
    pub fn over(&self, lower: &Annotations) -> Annotations {
        Annotations {
            inject: self.inject.or(lower.inject),
            settings: self.settings.over(&lower.settings),
            command: if self.command.is_empty() { lower.command.clone() } else { self.command.clone() },
            platform: self.platform.clone().or_else(|| lower.platform.clone()),
            refused: self.refused.clone(),
            warnings: self.warnings.clone(),
        }
    }

    /// Parses the Hush and Bank-Vaults keys of `annotations`; other keys are ignored.
    pub fn parse<'a>(
        annotations: impl IntoIterator<Item = (&'a String, &'a String)>,
        source: Source,
    ) -> Result<Annotations, AnnotationError> {
        // (key, full annotation name, value, prefix), `hush.dev/` first so that it wins ties
        // and is the one named in a conflict.
        let mut found: Vec<(Key, &'a str, &'a str, Prefix)> = Vec::new();
        let mut out = Annotations::default();
        for (name, value) in annotations {
            let Some((prefix, short)) = Prefix::split(name) else { continue };
            match (lookup(prefix, short), prefix) {
                (Some(key), _) => found.push((key, name, value, prefix)),
                (None, Prefix::Hush) => return Err(AnnotationError::Unknown(name.clone())),
                (None, _) => match bank_vaults_outcome(name, short, value) {
                    Outcome::Warn(text) => out.warnings.push(text),
                    Outcome::Refuse(text) => out.refused.push(text),
                },
            }
        }
        found.sort_by_key(|(_, _, _, prefix)| *prefix != Prefix::Hush);
        let mut seen: Vec<(Key, &str, String)> = Vec::new();
        for (key, name, value, prefix) in found {
            let Some(normalized) = out.set(key, name, value, prefix, source)? else { continue };
            if let Some((_, first_name, first)) = seen.iter().find(|(k, _, _)| *k == key) {
                if *first != normalized {
                    return Err(AnnotationError::Conflict { native: (*first_name).into(), alias: name.into() });
                }
                continue;
            }
            seen.push((key, name, normalized));
        }
        Ok(out)
    }

    /// Applies one annotation unless an earlier one set the same key; returns its value as used.
    fn set(
        &mut self,
        key: Key,
        name: &str,
        value: &str,
        prefix: Prefix,
        source: Source,
    ) -> Result<Option<String>, AnnotationError> {
        let invalid = |problem: &str| AnnotationError::Invalid {
            key: name.to_owned(),
            value: value.to_owned(),
            problem: problem.to_owned(),
        };
        let s = &mut self.settings;
        match key {
            Key::Shim(setting) => {
                let canonical = setting.check(value).map_err(|e| invalid(&e.problem))?.canonical();
                s.shim.entry(setting.env).or_insert_with(|| canonical.clone());
                Ok(Some(canonical))
            }
            Key::Own(Own::Inject) if prefix != Prefix::Hush => {
                // Bank-Vaults reads only `skip` (vault-secrets-webhook pkg/webhook/config.go:
                // `if val := annotations[common.MutateAnnotation]; val == "skip"`); any other
                // value leaves the decision to the references, as there.
                let skip = value == "skip";
                if skip {
                    self.inject.get_or_insert(false);
                }
                Ok(skip.then(|| "false".to_owned()))
            }
            Key::Own(Own::Inject) => {
                let b = hush_contract::go::parse_bool(value).ok_or_else(|| invalid("expected `true` or `false`"))?;
                self.inject.get_or_insert(b);
                Ok(Some(b.to_string()))
            }
            Key::Own(Own::TlsSecret) => {
                if !is_dns_subdomain(value) {
                    return Err(invalid("expected a Secret name (lower-case DNS subdomain)"));
                }
                s.tls_secret.get_or_insert_with(|| value.to_owned());
                Ok(Some(value.to_owned()))
            }
            Key::Own(Own::InjectorImage) => {
                if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(invalid("expected an image reference"));
                }
                if is_bank_vaults_image(value) {
                    return Err(invalid(
                        "this is a Bank-Vaults image, which cannot install Hush's shim; remove the annotation, \
                         or set `hush.dev/injector-image` to a Hush injector image",
                    ));
                }
                s.injector_image.get_or_insert_with(|| value.to_owned());
                Ok(Some(value.to_owned()))
            }
            Key::Own(Own::InjectorImagePullPolicy) => {
                // Bank-Vaults also takes the lower-case spellings (pkg/webhook/config.go getPullPolicy).
                let policy = match (value, prefix) {
                    ("Always", _) | ("always", Prefix::Legacy | Prefix::Current) => PullPolicy::Always,
                    ("IfNotPresent", _) | ("ifnotpresent", Prefix::Legacy | Prefix::Current) => {
                        PullPolicy::IfNotPresent
                    }
                    ("Never", _) | ("never", Prefix::Legacy | Prefix::Current) => PullPolicy::Never,
                    _ => return Err(invalid("expected `Always`, `IfNotPresent` or `Never`")),
                };
                s.injector_image_pull_policy.get_or_insert(policy);
                Ok(Some(policy.as_str().to_owned()))
            }
            Key::Own(Own::Provider) => match value {
                // Hush speaks the same API to both: the provider changes nothing.
                "vault" | "bao" => Ok(Some(value.to_owned())),
                _ => Err(invalid("Hush reads from Vault and OpenBao only: expected `vault` or `bao`")),
            },
            Key::Own(Own::Command) => {
                if source != Source::Pod {
                    return Err(AnnotationError::PodOnly(name.to_owned()));
                }
                let map: BTreeMap<String, Vec<String>> = serde_json::from_str(value)
                    .map_err(|e| invalid(&format!("expected a JSON object of container name to argv array ({e})")))?;
                if let Some((container, _)) = map.iter().find(|(_, argv)| argv.is_empty()) {
                    return Err(invalid(&format!("the command for container `{container}` is empty")));
                }
                self.command = map;
                Ok(Some(value.to_owned()))
            }
            Key::Own(Own::Platform) => {
                let platform = Platform::parse(value).map_err(|p| invalid(&p))?;
                let text = platform.to_string();
                self.platform.get_or_insert(platform);
                Ok(Some(text))
            }
        }
    }
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

#[cfg(test)]
mod tests;

//! The mutation: (Pod, namespace defaults, config, image configs) → JSON Patch. Pure: no I/O.
//!
//! It runs in two steps so that the caller can do the one piece of I/O, registry look-ups,
//! in between: [`plan`] decides which containers to inject and which images' ENTRYPOINT/CMD
//! it needs ([`Plan::images`]); [`Plan::patch`] builds the patch from the looked-up
//! [`ImageConfig`]s.
//!
//! Invariants (property-tested):
//! - idempotent: patching an already patched Pod yields an empty patch;
//! - the user's containers, init containers, volumes and env keep their order and content;
//!   the only change to a user container is its `command`, appended env and mounts.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use hush_contract::env as vars;
use hush_contract::reference;
use hush_contract::settings as contract;
use k8s_openapi::api::core::v1::{
    Capabilities, Container as NewContainer, EmptyDirVolumeSource, KeyToPath, ResourceRequirements, SeccompProfile,
    SecretVolumeSource, SecurityContext, Volume as NewVolume, VolumeMount as NewVolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::annotations::{AnnotationError, Annotations, Platform, Source};
use crate::config::{
    INIT_CONTAINER_NAME, MutationConfig, NO_TOKEN_VOLUME_NAME, SA_TOKEN_DIR, TLS_CA_KEY, TLS_VOLUME_NAME, VOLUME_NAME,
};
use crate::patch::{self, Builder, JsonPatch, List};
use crate::pod::{Container, Pod, Spec, Volume};

/// An image whose ENTRYPOINT/CMD the mutation needs, for one platform.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageKey {
    /// The image reference as written in the Pod.
    pub image: String,
    /// The platform to pick from a multi-platform index.
    pub platform: Platform,
}

/// An image's ENTRYPOINT and CMD.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
}

/// Why a Pod is rejected. Every message names what is wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum MutateError {
    /// An annotation of the Pod is unknown or malformed.
    #[error(transparent)]
    Annotation(#[from] AnnotationError),
    /// Bank-Vaults annotations that ask for what Hush will not do (refused whether or not
    /// the Pod holds a reference); each message names its annotation.
    #[error("{}", .0.join("; "))]
    Unsupported(Vec<String>),
    /// A literal env value that looks like a Vault reference but does not parse.
    #[error("container `{container}`, variable `{variable}`: {source}")]
    BadReference {
        /// The container's name.
        container: String,
        /// The variable's name.
        variable: String,
        /// The parse error (it quotes the reference, never a secret).
        #[source]
        source: reference::ParseError,
    },
    /// A name Hush needs is used by something of the Pod's own.
    #[error("the Pod already has a {what} named `{name}` that Hush did not add")]
    NameTaken {
        /// `container` or `volume`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A container already mounts something where Hush mounts its volume.
    #[error("container `{container}` already mounts a volume at `{path}`, where Hush mounts its own")]
    MountPathTaken {
        /// The container's name.
        container: String,
        /// The path.
        path: String,
    },
    /// `VAULT_ADDR` is not on the webhook's allow-list.
    #[error("Vault address `{0}` is not allowed by the webhook's --allowed-vault-addr list")]
    VaultAddrNotAllowed(String),
    /// Nothing says where Vault is.
    #[error(
        "container `{0}` needs a Vault address: set the annotation `hush.dev/vault-addr`, a namespace default or the webhook's `--default vault-addr=…`"
    )]
    NoVaultAddr(String),
    /// `hush.dev/command` names a container the Pod does not have (a typo would otherwise be silent).
    #[error("annotation `hush.dev/command` names container `{0}`, which the Pod does not have")]
    UnknownContainer(String),
    /// A container without `command` and without `image`.
    #[error("container `{0}` has neither a command nor an image")]
    NoImage(String),
    /// The image has neither ENTRYPOINT nor CMD, and the container no command.
    #[error(
        "container `{container}`: image `{image}` has no ENTRYPOINT or CMD; set the container's `command` or the `hush.dev/command` annotation"
    )]
    ImageHasNoCommand {
        /// The container's name.
        container: String,
        /// The image.
        image: String,
    },
    /// The caller did not supply an image config the plan asked for (a bug in the caller).
    #[error("image `{0}` was not looked up")]
    ImageNotResolved(String),
}

/// Where a container's original command comes from.
#[derive(Clone, Debug)]
enum Original<'a> {
    /// The container's own `command`: used as is.
    Command(&'a [String]),
    /// The `hush.dev/command` override for the container: used as is.
    Override,
    /// The image's ENTRYPOINT (and CMD when the container has no `args`).
    Image(ImageKey),
}

#[derive(Clone, Debug)]
struct Target<'a> {
    list: List,
    index: usize,
    container: &'a Container,
    /// `None` when the command is already rewritten.
    original: Option<Original<'a>>,
}

/// What [`plan`] decided.
#[derive(Debug)]
pub struct Plan<'a> {
    spec: Option<&'a Spec>,
    config: &'a MutationConfig,
    /// The stacked layers; borrowed from the config when the Pod and its namespace add none.
    annotations: Cow<'a, Annotations>,
    targets: Vec<Target<'a>>,
    /// Path of the shim in injected containers.
    shim: String,
}

/// Decides which containers of `pod` (in `namespace`) to inject. Fails on bad annotations or references.
pub fn plan<'a>(pod: &'a Pod, namespace: &str, config: &'a MutationConfig) -> Result<Plan<'a>, MutateError> {
    plan_with(pod, namespace, config, &BTreeSet::new())
}

/// As [`plan`], also injecting the containers named in `from_objects`: those whose
/// ConfigMaps or Secrets (`envFrom`, `valueFrom`) hold references, which the caller read
/// (`--read-referenced-objects`; decided by [`crate::objects::containers_with_references`]).
pub fn plan_with<'a>(
    pod: &'a Pod,
    namespace: &str,
    config: &'a MutationConfig,
    from_objects: &BTreeSet<String>,
) -> Result<Plan<'a>, MutateError> {
    let own = match &pod.metadata.annotations {
        Some(map) => Annotations::parse(map, Source::Pod)?,
        None => Annotations::default(),
    };
    let empty = Annotations::default();
    let namespace_defaults = config.namespace_defaults.get(namespace).unwrap_or(&empty);
    // A Bank-Vaults annotation Hush refuses is refused whatever the Pod holds, unless the Pod
    // opts out of injection altogether.
    if own.inject != Some(false) && !own.refused.is_empty() {
        return Err(MutateError::Unsupported(own.refused));
    }
    let annotations = stack(own, namespace_defaults, &config.defaults);
    let shim = config.shim_path();
    let mut plan = Plan { spec: pod.spec.as_ref(), config, annotations, targets: Vec::new(), shim };
    let Some(spec) = plan.spec else { return Ok(plan) };
    if plan.annotations.inject == Some(false) {
        return Ok(plan);
    }
    let lists = [
        (List::Init, spec.init_containers.as_deref().unwrap_or_default()),
        (List::App, spec.containers.as_deref().unwrap_or_default()),
    ];
    for (list, containers) in lists {
        for (index, container) in containers.iter().enumerate() {
            if list == List::Init && container.name == INIT_CONTAINER_NAME {
                continue;
            }
            let has_reference = literal_references(container)?;
            let wrapped = is_wrapped(container, &plan.shim);
            // As Bank-Vaults (vault-secrets-webhook pkg/webhook/pod.go: `if len(envVars) == 0 &&
            // vaultConfig.VaultEnvFromPath == ""` skips a container): `env-from-path` injects every container.
            let from_path = plan.annotations.settings.get(contract::VAULT_ENV_FROM_PATH.env).is_some();
            let from_objects = from_objects.contains(&container.name);
            if !(has_reference || wrapped || from_path || from_objects || plan.annotations.inject == Some(true)) {
                continue;
            }
            let original = if wrapped { None } else { Some(plan.original(container)?) };
            plan.targets.push(Target { list, index, container, original });
        }
    }
    if let Some(name) =
        plan.annotations.command.keys().find(|name| !lists.iter().any(|(_, l)| l.iter().any(|c| &c.name == *name)))
    {
        return Err(MutateError::UnknownContainer(name.clone()));
    }
    if !plan.targets.is_empty() {
        plan.check_settings()?;
    }
    Ok(plan)
}

/// The Pod's layer over the namespace's over the webhook's flags. A Pod without Hush
/// annotations in a namespace without defaults (the common case) gets the flags' layer
/// itself, not a copy: stacking empty layers changes nothing but the refusals and warnings,
/// which are the top layer's (empty here).
fn stack<'a>(own: Annotations, namespace: &Annotations, flags: &'a Annotations) -> Cow<'a, Annotations> {
    let empty = Annotations::default();
    if own == empty && *namespace == empty && flags.refused.is_empty() && flags.warnings.is_empty() {
        return Cow::Borrowed(flags);
    }
    Cow::Owned(own.over(&namespace.over(flags)))
}

/// Whether any literal env value may hold a reference; fails on one that does not parse.
/// The shim's own settings (`VAULT_ADDR`, `VAULT_PATH`, …) are never references: the shim
/// reads them as configuration and resolves nothing in them, and this webhook writes them
/// from annotations, so scanning them would make a second pass refuse what the first wrote.
fn literal_references(container: &Container) -> Result<bool, MutateError> {
    let mut found = false;
    for var in container.env.iter().flatten() {
        if vars::is_config_variable(&var.name) {
            continue;
        }
        let Some(value) = &var.value else { continue };
        // `check` gives `parse`'s answer without building the template.
        found |= reference::check(value.as_bytes()).map_err(|source| MutateError::BadReference {
            container: container.name.clone(),
            variable: var.name.clone(),
            source,
        })?;
    }
    Ok(found)
}

fn is_wrapped(container: &Container, shim: &str) -> bool {
    matches!(container.command.as_deref(), Some([first, second, ..]) if first == shim && second == "--")
}

/// `$` doubled, so that the kubelet's `$(VAR)` expansion gives back the text unchanged.
fn escape_expansion(text: &str) -> Cow<'_, str> {
    if text.contains('$') { Cow::Owned(text.replace('$', "$$")) } else { Cow::Borrowed(text) }
}

/// A mount of the volume `name` at `path`, read-only, as JSON text (k8s-openapi's
/// `VolumeMount` field order).
fn mount_json(name: &str, path: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + name.len() + path.len());
    out.extend_from_slice(br#"{"mountPath":"#);
    patch::write_string(&mut out, path);
    out.extend_from_slice(br#","name":"#);
    patch::write_string(&mut out, name);
    out.extend_from_slice(br#","readOnly":true}"#);
    out
}

impl<'a> Plan<'a> {
    fn original(&self, container: &'a Container) -> Result<Original<'a>, MutateError> {
        if let Some(command) = container.command.as_deref().filter(|c| !c.is_empty()) {
            return Ok(Original::Command(command));
        }
        if self.annotations.command.contains_key(&container.name) {
            return Ok(Original::Override);
        }
        let image = container.image.clone().ok_or_else(|| MutateError::NoImage(container.name.clone()))?;
        let platform = self.annotations.platform.clone().unwrap_or_else(|| self.config.default_platform.clone());
        Ok(Original::Image(ImageKey { image, platform }))
    }

    fn check_settings(&self) -> Result<(), MutateError> {
        match self.annotations.settings.vault_addr() {
            Some(addr) => {
                let allowed = &self.config.allowed_vault_addrs;
                if !allowed.is_empty() && !allowed.iter().any(|prefix| addr.starts_with(prefix.as_str())) {
                    return Err(MutateError::VaultAddrNotAllowed(addr.to_owned()));
                }
            }
            None => {
                for target in &self.targets {
                    let c = target.container;
                    let own = c.env.iter().flatten().any(|v| v.name == vars::VAULT_ADDR);
                    if !own && c.env_from.as_ref().is_none_or(Vec::is_empty) {
                        return Err(MutateError::NoVaultAddr(c.name.clone()));
                    }
                }
            }
        }
        Ok(())
    }

    /// Warnings for the client: Bank-Vaults annotations accepted though Hush ignores them.
    pub fn warnings(&self) -> &[String] {
        &self.annotations.warnings
    }

    /// Whether the Pod opts out (`hush.dev/inject: "false"` from any layer, or Bank-Vaults'
    /// `mutate: skip`): nothing is injected whatever it references.
    pub fn opted_out(&self) -> bool {
        self.annotations.inject == Some(false)
    }

    /// Whether there is nothing to inject.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Names of the containers to inject, init containers first.
    pub fn containers(&self) -> Vec<&str> {
        self.targets.iter().map(|t| t.container.name.as_str()).collect()
    }

    /// The images whose ENTRYPOINT/CMD [`Plan::patch`] needs.
    pub fn images(&self) -> BTreeSet<ImageKey> {
        self.targets
            .iter()
            .filter_map(|t| match &t.original {
                Some(Original::Image(key)) => Some(key.clone()),
                _ => None,
            })
            .collect()
    }

    /// The patch. `images` must hold every key of [`Plan::images`].
    pub fn patch(&self, images: &BTreeMap<ImageKey, ImageConfig>) -> Result<JsonPatch, MutateError> {
        let (Some(spec), false) = (self.spec, self.targets.is_empty()) else {
            return Ok(JsonPatch::empty());
        };
        let config = self.config;
        let settings = &self.annotations.settings;
        let mut out = Builder::default();

        // Our init container, if an earlier pass added it, and the volume it fills.
        let init_containers = spec.init_containers.as_deref().unwrap_or_default();
        let ours = init_containers.iter().find(|c| c.name == INIT_CONTAINER_NAME);
        let volumes = spec.volumes.as_deref().unwrap_or_default();
        let volume_name = match ours {
            Some(init) => match init.volume_mounts.as_deref() {
                Some([mount, ..]) if is_our_init(init, config) => mount.name.clone(),
                _ => return Err(MutateError::NameTaken { what: "init container", name: INIT_CONTAINER_NAME.into() }),
            },
            None if spec.containers.iter().flatten().any(|c| c.name == INIT_CONTAINER_NAME) => {
                return Err(MutateError::NameTaken { what: "container", name: INIT_CONTAINER_NAME.into() });
            }
            None => free_volume_name(volumes),
        };

        // As JSON text; the two fixed ones are made once per config (`fixed_volumes`).
        let mut new_volumes: Vec<Cow<'_, [u8]>> = Vec::new();
        if !volumes.iter().any(|v| v.name == volume_name) {
            new_volumes.push(if volume_name == VOLUME_NAME {
                Cow::Borrowed(&fixed_volumes(config).0)
            } else {
                Cow::Owned(patch::item(&shim_volume(config, &volume_name)))
            });
        }
        // Each mount as JSON text (k8s-openapi's field order: mountPath, name, readOnly).
        let mut mounts: Vec<(&str, &str, Vec<u8>)> =
            vec![(&volume_name, &config.dir, mount_json(&volume_name, &config.dir))];
        // Borrowed: the settings' values are written straight into the patch.
        let mut env: Vec<(&str, Cow<'_, str>)> =
            settings.env_refs().map(|(name, value)| (name, Cow::Borrowed(value))).collect();
        if let Some(role) = self.default_role() {
            let at = env.iter().position(|(name, _)| *name != vars::VAULT_ADDR).unwrap_or(env.len());
            env.insert(at, (vars::VAULT_ROLE, Cow::Borrowed(role)));
        }
        if let Some(secret) = &settings.tls_secret {
            // Only the CA certificate is projected: the Secret a Vault operator made (Bank-Vaults'
            // `vault-tls`) also holds `ca.key` and `server.key`, and this volume is mounted into
            // the application's container.
            match volumes.iter().find(|v| v.name == TLS_VOLUME_NAME) {
                Some(v) if projects_only_the_ca(v, secret) => {}
                Some(_) => return Err(MutateError::NameTaken { what: "volume", name: TLS_VOLUME_NAME.into() }),
                None => new_volumes.push(Cow::Owned(patch::item(&NewVolume {
                    name: TLS_VOLUME_NAME.into(),
                    secret: Some(SecretVolumeSource {
                        secret_name: Some(secret.clone()),
                        items: Some(vec![KeyToPath {
                            key: TLS_CA_KEY.into(),
                            path: TLS_CA_KEY.into(),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }),
                    ..NewVolume::default()
                }))),
            }
            mounts.push((TLS_VOLUME_NAME, &config.tls_dir, mount_json(TLS_VOLUME_NAME, &config.tls_dir)));
            env.push((
                vars::VAULT_CACERT,
                Cow::Owned(format!("{}/{TLS_CA_KEY}", config.tls_dir.trim_end_matches('/'))),
            ));
        }

        // Serialized once, as k8s-openapi's `EnvVar` writes them (name, value), into one
        // buffer, and written into each injected container that lacks them.
        let mut env_text = Vec::with_capacity(64 * env.len());
        let env: Vec<(&str, std::ops::Range<usize>)> = env
            .iter()
            .map(|(name, value)| {
                let start = env_text.len();
                env_text.extend_from_slice(br#"{"name":"#);
                patch::write_string(&mut env_text, name);
                env_text.extend_from_slice(br#","value":"#);
                patch::write_string(&mut env_text, &escape_expansion(value));
                env_text.push(b'}');
                (*name, start..env_text.len())
            })
            .collect();
        let mut items: Vec<&[u8]> = Vec::with_capacity(env.len().max(mounts.len()));
        for target in &self.targets {
            let c = target.container;
            if let Some(original) = &target.original {
                let shim = [self.shim.as_str(), "--"];
                match original {
                    Original::Command(argv) => {
                        out.set_command(
                            target.list,
                            target.index,
                            shim.into_iter().chain(argv.iter().map(String::as_str)),
                        );
                    }
                    Original::Override => {
                        let argv = self.annotations.command.get(&c.name).map(Vec::as_slice).unwrap_or_default();
                        out.set_command(
                            target.list,
                            target.index,
                            shim.into_iter().chain(argv.iter().map(String::as_str)),
                        );
                    }
                    Original::Image(key) => {
                        let image = images.get(key).ok_or_else(|| MutateError::ImageNotResolved(key.image.clone()))?;
                        let cmd: &[String] = if c.args.as_ref().is_none_or(Vec::is_empty) { &image.cmd } else { &[] };
                        if image.entrypoint.is_empty() && cmd.is_empty() {
                            return Err(MutateError::ImageHasNoCommand {
                                container: c.name.clone(),
                                image: key.image.clone(),
                            });
                        }
                        let argv: Vec<Cow<'_, str>> =
                            image.entrypoint.iter().chain(cmd).map(|a| escape_expansion(a)).collect();
                        out.set_command(
                            target.list,
                            target.index,
                            shim.into_iter().chain(argv.iter().map(|a| a.as_ref())),
                        );
                    }
                }
            }
            let existing = c.env.as_deref().unwrap_or_default();
            items.clear();
            items.extend(
                env.iter()
                    .filter(|(name, _)| !existing.iter().any(|v| v.name == *name))
                    .map(|(_, at)| &env_text[at.clone()]),
            );
            out.append_to_container(target.list, target.index, "env", c.env.is_some(), &items);
            let existing = c.volume_mounts.as_deref().unwrap_or_default();
            items.clear();
            for (name, path, json) in &mounts {
                if existing.iter().any(|m| m.name == *name) {
                    continue;
                }
                if existing.iter().any(|m| m.mount_path.trim_end_matches('/') == path.trim_end_matches('/')) {
                    return Err(MutateError::MountPathTaken { container: c.name.clone(), path: (*path).to_owned() });
                }
                items.push(json);
            }
            out.append_to_container(target.list, target.index, "volumeMounts", c.volume_mounts.is_some(), &items);
        }
        if ours.is_none() {
            // The init container's mount over the token directory (see NO_TOKEN_VOLUME_NAME).
            if volumes.iter().any(|v| v.name == NO_TOKEN_VOLUME_NAME) {
                return Err(MutateError::NameTaken { what: "volume", name: NO_TOKEN_VOLUME_NAME.into() });
            }
            new_volumes.push(Cow::Borrowed(&fixed_volumes(config).1));
        }
        let new_volumes: Vec<&[u8]> = new_volumes.iter().map(|v| v.as_ref()).collect();
        out.append_volume_items(spec.volumes.is_some(), &new_volumes);
        if ours.is_none() {
            let default = settings.injector_image.is_none()
                && settings.injector_image_pull_policy.is_none()
                && volume_name == VOLUME_NAME;
            if default {
                let init =
                    config.default_init_container.get_or_init(|| init_container_json(config, settings, VOLUME_NAME));
                out.prepend_init_container(spec.init_containers.is_some(), init);
            } else {
                out.prepend_init_container(
                    spec.init_containers.is_some(),
                    &init_container_json(config, settings, &volume_name),
                );
            }
        }
        Ok(out.finish())
    }
}

impl<'a> Plan<'a> {
    /// Bank-Vaults' role default, the Pod's ServiceAccount name (vault-secrets-webhook
    /// pkg/webhook/config.go: `vaultConfig.Role = p.Spec.ServiceAccountName`), for the login
    /// methods that take a role, when no layer names one.
    fn default_role(&self) -> Option<&'a str> {
        let settings = &self.annotations.settings;
        if settings.get(vars::VAULT_ROLE).is_some()
            || !matches!(settings.get(vars::VAULT_AUTH_METHOD), None | Some("kubernetes" | "jwt"))
        {
            return None;
        }
        let name = self.spec.and_then(|s| s.service_account_name.as_deref()).filter(|n| !n.is_empty());
        Some(name.unwrap_or("default"))
    }
}

/// The volume the init container fills with the shim, named `name`.
fn shim_volume(config: &MutationConfig, name: &str) -> NewVolume {
    NewVolume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(Quantity(config.volume_size_limit.clone())),
            ..EmptyDirVolumeSource::default()
        }),
        ..NewVolume::default()
    }
}

/// The empty volume mounted over the init container's token directory (see NO_TOKEN_VOLUME_NAME).
fn no_token_volume() -> NewVolume {
    NewVolume {
        name: NO_TOKEN_VOLUME_NAME.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(Quantity("1Ki".into())),
            ..EmptyDirVolumeSource::default()
        }),
        ..NewVolume::default()
    }
}

/// The shim's volume under its default name and the token-directory volume, as JSON text,
/// made on first use (they depend on the config alone, which does not change once built).
fn fixed_volumes(config: &MutationConfig) -> &(Vec<u8>, Vec<u8>) {
    config
        .fixed_volumes
        .get_or_init(|| (patch::item(&shim_volume(config, VOLUME_NAME)), patch::item(&no_token_volume())))
}

fn is_our_init(container: &Container, config: &MutationConfig) -> bool {
    matches!(container.command.as_deref(), Some([_, install, dir]) if install == "install" && *dir == config.dir)
}

/// Whether `volume` is the TLS volume an earlier pass added: `secret`, projecting `ca.crt` alone.
fn projects_only_the_ca(volume: &Volume, secret: &str) -> bool {
    volume.secret.as_ref().is_some_and(|s| {
        s.secret_name.as_deref() == Some(secret)
            && matches!(s.items.as_deref(), Some([item]) if item.key == TLS_CA_KEY && item.path == TLS_CA_KEY)
    })
}

/// `hush-injector`, or the first of `hush-injector-1`, `-2`, … that the Pod does not use.
fn free_volume_name(volumes: &[Volume]) -> String {
    let used = |name: &str| volumes.iter().any(|v| v.name == name);
    if !used(VOLUME_NAME) {
        return VOLUME_NAME.to_owned();
    }
    (1..).map(|n| format!("{VOLUME_NAME}-{n}")).find(|name| !used(name)).unwrap_or_default()
}

fn init_container_json(config: &MutationConfig, settings: &crate::annotations::Settings, volume: &str) -> Vec<u8> {
    // Invariant: k8s-openapi types always serialize.
    serde_json::to_vec(&init_container(config, settings, volume)).expect("a Container serializes")
}

/// The init container: `injector install DIR`, compliant with the "restricted" Pod Security Standard.
fn init_container(config: &MutationConfig, settings: &crate::annotations::Settings, volume: &str) -> NewContainer {
    let resources = |pick: fn(&(String, String)) -> &String| {
        BTreeMap::from([
            ("cpu".to_owned(), Quantity(pick(&config.init_cpu).clone())),
            ("memory".to_owned(), Quantity(pick(&config.init_memory).clone())),
        ])
    };
    NewContainer {
        name: INIT_CONTAINER_NAME.into(),
        image: Some(settings.injector_image.clone().unwrap_or_else(|| config.injector_image.clone())),
        image_pull_policy: settings
            .injector_image_pull_policy
            .or(config.injector_image_pull_policy)
            .map(|p| p.as_str().to_owned()),
        command: Some(vec![config.injector_binary.clone(), "install".into(), config.dir.clone()]),
        volume_mounts: Some(vec![
            NewVolumeMount { name: volume.to_owned(), mount_path: config.dir.clone(), ..NewVolumeMount::default() },
            // Something mounted here keeps the ServiceAccount admission plugin from mounting
            // the API token into the init container.
            NewVolumeMount {
                name: NO_TOKEN_VOLUME_NAME.into(),
                mount_path: SA_TOKEN_DIR.into(),
                read_only: Some(true),
                ..NewVolumeMount::default()
            },
        ]),
        resources: Some(ResourceRequirements {
            requests: Some(resources(|p| &p.0)),
            limits: Some(resources(|p| &p.1)),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(config.run_as_user),
            run_as_group: Some(config.run_as_user),
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None }),
            ..SecurityContext::default()
        }),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..NewContainer::default()
    }
}

#[cfg(test)]
mod tests;

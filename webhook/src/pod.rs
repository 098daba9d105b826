//! The parts of a Pod the mutation reads, decoded straight from the request (fields it does
//! not read are skipped, never re-encoded: the patch addresses the API server's own object).
//!
//! `Option<Vec<…>>` keeps "absent or null" apart from "empty", which decides between creating
//! an array and appending to it.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A Pod, as far as Hush is concerned.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Pod {
    /// `metadata`.
    #[serde(default)]
    pub metadata: Metadata,
    /// `spec`.
    pub spec: Option<Spec>,
}

/// `metadata`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// `name` (empty when the API server has not generated it yet).
    pub name: Option<String>,
    /// `generateName`.
    pub generate_name: Option<String>,
    /// `namespace`.
    pub namespace: Option<String>,
    /// `annotations`.
    pub annotations: Option<BTreeMap<String, String>>,
}

/// `spec`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// `containers`.
    pub containers: Option<Vec<Container>>,
    /// `initContainers`.
    pub init_containers: Option<Vec<Container>>,
    /// `volumes`.
    pub volumes: Option<Vec<Volume>>,
    /// `imagePullSecrets`.
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
    /// `serviceAccountName` (the ServiceAccount admission plugin sets `default` when absent).
    pub service_account_name: Option<String>,
}

/// An `imagePullSecrets` entry.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct LocalObjectReference {
    /// `name` (the API allows it empty; such an entry names nothing).
    #[serde(default)]
    pub name: String,
}

/// A container or init container.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// `name`.
    pub name: String,
    /// `image`.
    pub image: Option<String>,
    /// `command`.
    pub command: Option<Vec<String>>,
    /// `args`.
    pub args: Option<Vec<String>>,
    /// `env`.
    pub env: Option<Vec<EnvVar>>,
    /// `envFrom`.
    pub env_from: Option<Vec<EnvFromSource>>,
    /// `volumeMounts`.
    pub volume_mounts: Option<Vec<VolumeMount>>,
}

/// An `env` entry.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct EnvVar {
    /// `name`.
    pub name: String,
    /// `value` (absent with `valueFrom`).
    pub value: Option<String>,
    /// `valueFrom` (only its ConfigMap and Secret keys are read).
    #[serde(rename = "valueFrom")]
    pub value_from: Option<EnvVarSource>,
}

/// An `envFrom` entry: every key of a ConfigMap or Secret.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvFromSource {
    /// `configMapRef`.
    pub config_map_ref: Option<ObjectRef>,
    /// `secretRef`.
    pub secret_ref: Option<ObjectRef>,
}

/// `configMapRef` / `secretRef`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ObjectRef {
    /// `name`.
    #[serde(default)]
    pub name: String,
    /// `optional`.
    pub optional: Option<bool>,
}

/// `valueFrom`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVarSource {
    /// `configMapKeyRef`.
    pub config_map_key_ref: Option<KeyRef>,
    /// `secretKeyRef`.
    pub secret_key_ref: Option<KeyRef>,
}

/// `configMapKeyRef` / `secretKeyRef`: one key of a ConfigMap or Secret.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct KeyRef {
    /// `name`.
    #[serde(default)]
    pub name: String,
    /// `key`.
    #[serde(default)]
    pub key: String,
    /// `optional`.
    pub optional: Option<bool>,
}

/// A `volumeMounts` entry.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    /// `name`.
    pub name: String,
    /// `mountPath`.
    pub mount_path: String,
}

/// A `volumes` entry.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Volume {
    /// `name`.
    pub name: String,
    /// `secret`, if it is a Secret volume.
    pub secret: Option<SecretSource>,
}

/// `volumes[].secret`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretSource {
    /// `secretName`.
    pub secret_name: Option<String>,
    /// `items`: which keys are projected (absent: every key of the Secret).
    pub items: Option<Vec<KeyToPath>>,
}

/// `volumes[].secret.items[]`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct KeyToPath {
    /// `key` in the Secret.
    pub key: String,
    /// `path` of the file in the volume.
    pub path: String,
}

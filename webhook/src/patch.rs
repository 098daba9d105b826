//! The only place JSON Patch operations and pointers are built. Pure.
//!
//! Rules that keep the patch safe against the API server's raw Pod (fields this webhook's
//! types do not know are never touched):
//! - existing arrays are only appended to (`…/-`), except the one insertion of the init
//!   container at index 0, which is emitted **last** so that no later operation addresses
//!   a shifted index;
//! - an absent array is created whole with `add` (never `…/-` into a missing array);
//! - `command` is set with `add`, which creates or replaces the member;
//! - pointers hold only fixed names and indices, never user text.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use serde::Serialize;
use serde_json::Value;

/// Which list of containers a container is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum List {
    /// `spec.initContainers`.
    Init,
    /// `spec.containers`.
    App,
}

impl List {
    fn field(self) -> &'static str {
        match self {
            List::Init => "initContainers",
            List::App => "containers",
        }
    }
}

/// Collects operations; see the module documentation for the rules.
#[derive(Default)]
pub struct Builder {
    ops: Vec<PatchOperation>,
    prepend_init: Option<Value>,
}

fn pointer(parts: &[&str]) -> PointerBuf {
    PointerBuf::from_tokens(parts.iter().copied())
}

fn to_value<T: Serialize>(item: &T) -> Value {
    // Invariant: k8s-openapi types and string vectors always serialize.
    serde_json::to_value(item).expect("Kubernetes types serialize to JSON")
}

impl Builder {
    fn add(&mut self, path: PointerBuf, value: Value) {
        self.ops.push(PatchOperation::Add(AddOperation { path, value }));
    }

    /// Appends `items` to an array field of the Pod spec (`volumes`), creating it if `exists` is false.
    fn append(&mut self, base: &[&str], exists: bool, items: Vec<Value>) {
        if items.is_empty() {
            return;
        }
        if exists {
            for item in items {
                let mut parts = base.to_vec();
                parts.push("-");
                self.add(pointer(&parts), item);
            }
        } else {
            self.add(pointer(base), Value::Array(items));
        }
    }

    /// Sets the container's `command`.
    pub fn set_command(&mut self, list: List, index: usize, command: &[String]) {
        let i = index.to_string();
        self.add(pointer(&["spec", list.field(), &i, "command"]), to_value(&command));
    }

    /// Appends to a container's array field (`env`, `volumeMounts`), creating it when absent.
    pub fn append_to_container<T: Serialize>(
        &mut self,
        list: List,
        index: usize,
        field: &'static str,
        exists: bool,
        items: &[T],
    ) {
        let i = index.to_string();
        self.append(&["spec", list.field(), &i, field], exists, items.iter().map(to_value).collect());
    }

    /// Appends Pod volumes, creating `spec.volumes` when absent.
    pub fn append_volumes<T: Serialize>(&mut self, exists: bool, volumes: &[T]) {
        self.append(&["spec", "volumes"], exists, volumes.iter().map(to_value).collect());
    }

    /// Puts `container` first in `spec.initContainers` (creating the list when absent).
    pub fn prepend_init_container(&mut self, exists: bool, value: Value) {
        if exists {
            self.prepend_init = Some(value);
        } else {
            self.add(pointer(&["spec", "initContainers"]), Value::Array(vec![value]));
        }
    }

    /// The patch, with the init-container insertion last.
    pub fn finish(mut self) -> Patch {
        if let Some(init) = self.prepend_init.take() {
            self.add(pointer(&["spec", "initContainers", "0"]), init);
        }
        Patch(self.ops)
    }
}

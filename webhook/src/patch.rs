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
//!
//! Operations are written straight to JSON text (no `serde_json::Value` in between: that
//! was a fifth of an admission's CPU); [`JsonPatch::to_patch`] parses it back for tests.

use serde::Serialize;

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

/// A JSON Patch (RFC 6902) as JSON text: an array of `add` operations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JsonPatch {
    text: Vec<u8>,
    operations: usize,
}

impl JsonPatch {
    /// The empty patch.
    pub fn empty() -> Self {
        JsonPatch::default()
    }

    /// Whether there is no operation.
    pub fn is_empty(&self) -> bool {
        self.operations == 0
    }

    /// How many operations.
    pub fn len(&self) -> usize {
        self.operations
    }

    /// The JSON text, `[…]`.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.text.len() + 2);
        out.push(b'[');
        out.extend_from_slice(&self.text);
        out.push(b']');
        out
    }

    /// Parsed into json-patch's type (to apply it in tests).
    pub fn to_patch(&self) -> json_patch::Patch {
        // Invariant: the builder writes only well-formed `add` operations.
        serde_json::from_slice(&self.to_json()).expect("the builder writes a valid JSON Patch")
    }
}

/// Collects operations; see the module documentation for the rules.
#[derive(Default)]
pub struct Builder {
    patch: JsonPatch,
    prepend_init: Option<Vec<u8>>,
}

fn operation(out: &mut Vec<u8>, path: &str, value: &[u8]) {
    // Pointers are built from fixed names and indices only: nothing to escape.
    debug_assert!(path.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'-'));
    out.extend_from_slice(br#"{"op":"add","path":""#);
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(br#"","value":"#);
    out.extend_from_slice(value);
    out.push(b'}');
}

fn json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Invariant: k8s-openapi types and string slices always serialize.
    serde_json::to_vec(value).expect("Kubernetes types serialize to JSON")
}

impl Builder {
    fn add(&mut self, path: &str, value: &[u8]) {
        if self.patch.operations > 0 {
            self.patch.text.push(b',');
        }
        operation(&mut self.patch.text, path, value);
        self.patch.operations += 1;
    }

    /// Appends `items` to the array at `path`, creating it if `exists` is false.
    fn append<T: Serialize>(&mut self, path: &str, exists: bool, items: &[T]) {
        if items.is_empty() {
            return;
        }
        if exists {
            let path = format!("{path}/-");
            for item in items {
                self.add(&path, &json(item));
            }
        } else {
            self.add(path, &json(items));
        }
    }

    /// Sets the container's `command`.
    pub fn set_command(&mut self, list: List, index: usize, command: &[String]) {
        self.add(&format!("/spec/{}/{index}/command", list.field()), &json(command));
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
        self.append(&format!("/spec/{}/{index}/{field}", list.field()), exists, items);
    }

    /// Appends Pod volumes, creating `spec.volumes` when absent.
    pub fn append_volumes<T: Serialize>(&mut self, exists: bool, volumes: &[T]) {
        self.append("/spec/volumes", exists, volumes);
    }

    /// Puts the container (as JSON text) first in `spec.initContainers`, creating the list when absent.
    pub fn prepend_init_container(&mut self, exists: bool, container: &[u8]) {
        if exists {
            self.prepend_init = Some(container.to_vec());
        } else {
            let mut list = Vec::with_capacity(container.len() + 2);
            list.push(b'[');
            list.extend_from_slice(container);
            list.push(b']');
            self.add("/spec/initContainers", &list);
        }
    }

    /// The patch, with the init-container insertion last.
    pub fn finish(mut self) -> JsonPatch {
        if let Some(init) = self.prepend_init.take() {
            self.add("/spec/initContainers/0", &init);
        }
        self.patch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operations_are_json_patch_and_the_insertion_comes_last() {
        let mut b = Builder::default();
        b.prepend_init_container(true, br#"{"name":"init"}"#);
        b.set_command(List::Init, 0, &["/a".to_owned(), "\"q\"".to_owned()]);
        b.append_to_container(List::App, 1, "env", false, &[json!({"name": "A", "value": "1"})]);
        b.append_volumes(true, &[json!({"name": "v1"}), json!({"name": "v2"})]);
        let patch = b.finish();
        assert_eq!(patch.len(), 5);
        let value: serde_json::Value = serde_json::from_slice(&patch.to_json()).unwrap();
        assert_eq!(
            value,
            json!([
                {"op": "add", "path": "/spec/initContainers/0/command", "value": ["/a", "\"q\""]},
                {"op": "add", "path": "/spec/containers/1/env", "value": [{"name": "A", "value": "1"}]},
                {"op": "add", "path": "/spec/volumes/-", "value": {"name": "v1"}},
                {"op": "add", "path": "/spec/volumes/-", "value": {"name": "v2"}},
                {"op": "add", "path": "/spec/initContainers/0", "value": {"name": "init"}},
            ])
        );
        assert_eq!(patch.to_patch().0.len(), 5);
        assert!(JsonPatch::empty().is_empty());
        assert_eq!(JsonPatch::empty().to_json(), b"[]");
    }
}

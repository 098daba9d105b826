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

/// A pointer into the Pod: fixed names and indices only, so there is nothing to escape.
#[derive(Clone, Copy)]
enum Pointer {
    /// `/spec/<field>`.
    Spec(&'static str),
    /// `/spec/<list>/<index>/<field>`.
    Container(List, usize, &'static str),
}

impl Pointer {
    /// Written straight into the patch, `suffix` (`/-` or nothing) after it; no `format!`
    /// (formatting the paths was a sixth of the patch's instructions).
    fn write(self, out: &mut Vec<u8>, suffix: &[u8]) {
        out.extend_from_slice(b"/spec/");
        match self {
            Pointer::Spec(field) => out.extend_from_slice(field.as_bytes()),
            Pointer::Container(list, index, field) => {
                out.extend_from_slice(list.field().as_bytes());
                out.push(b'/');
                write_index(out, index);
                out.push(b'/');
                out.extend_from_slice(field.as_bytes());
            }
        }
        out.extend_from_slice(suffix);
    }
}

/// `index` in decimal.
fn write_index(out: &mut Vec<u8>, mut index: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (index % 10) as u8;
        index /= 10;
        if index == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// A JSON Patch (RFC 6902) as JSON text: an array of `add` operations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonPatch {
    /// The whole array, `[…]`.
    json: Vec<u8>,
    operations: usize,
}

impl Default for JsonPatch {
    fn default() -> Self {
        JsonPatch { json: b"[]".to_vec(), operations: 0 }
    }
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
    pub fn as_json(&self) -> &[u8] {
        &self.json
    }

    /// The JSON text, `[…]`, copied.
    pub fn to_json(&self) -> Vec<u8> {
        self.json.clone()
    }

    /// Parsed into json-patch's type (to apply it in tests).
    pub fn to_patch(&self) -> json_patch::Patch {
        // Invariant: the builder writes only well-formed `add` operations.
        serde_json::from_slice(&self.json).expect("the builder writes a valid JSON Patch")
    }
}

/// Collects operations; see the module documentation for the rules.
pub struct Builder {
    /// `[` and the operations so far, comma-separated; `]` is added by [`Builder::finish`].
    text: Vec<u8>,
    operations: usize,
    prepend_init: Option<Vec<u8>>,
}

impl Default for Builder {
    fn default() -> Self {
        // Room for a typical patch (about 2 KiB for three containers): no regrowth on the way.
        let mut text = Vec::with_capacity(4096);
        text.push(b'[');
        Builder { text, operations: 0, prepend_init: None }
    }
}

fn json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Invariant: k8s-openapi types and string slices always serialize.
    serde_json::to_vec(value).expect("Kubernetes types serialize to JSON")
}

/// `text` as a JSON string, as serde_json writes it.
pub fn write_string(out: &mut Vec<u8>, text: &str) {
    // Invariant: writing a string into a Vec cannot fail.
    serde_json::to_writer(out, text).expect("a string serializes");
}

/// An item of an array, serialized once and written into as many operations as need it.
pub fn item<T: Serialize>(value: &T) -> Vec<u8> {
    json(value)
}

impl Builder {
    /// One `add` operation. The path is written straight into the patch (no `String` per
    /// path); it holds fixed names and indices only, so there is nothing to escape.
    fn add(&mut self, path: Pointer, suffix: &[u8], value: &[u8]) {
        self.begin(path, suffix);
        self.text.extend_from_slice(value);
        self.text.push(b'}');
    }

    /// An `add` operation up to its value, which the caller writes, then `}`.
    fn begin(&mut self, path: Pointer, suffix: &[u8]) {
        if self.operations > 0 {
            self.text.push(b',');
        }
        self.text.extend_from_slice(br#"{"op":"add","path":""#);
        let at = self.text.len();
        path.write(&mut self.text, suffix);
        debug_assert!(self.text[at..].iter().all(|&b| b.is_ascii_alphanumeric() || b == b'/' || b == b'-'));
        self.text.extend_from_slice(br#"","value":"#);
        self.operations += 1;
    }

    /// Appends `items` (each JSON text) to the array at `path`, creating it if `exists` is false.
    fn append(&mut self, path: Pointer, exists: bool, items: &[&[u8]]) {
        if items.is_empty() {
            return;
        }
        if exists {
            for item in items {
                self.add(path, b"/-", item);
            }
        } else {
            let mut array = Vec::with_capacity(items.iter().map(|i| i.len() + 1).sum::<usize>() + 2);
            array.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    array.push(b',');
                }
                array.extend_from_slice(item);
            }
            array.push(b']');
            self.add(path, b"", &array);
        }
    }

    /// Sets the container's `command`, written straight into the patch as a JSON array.
    pub fn set_command<'s>(&mut self, list: List, index: usize, command: impl IntoIterator<Item = &'s str>) {
        self.begin(Pointer::Container(list, index, "command"), b"");
        self.text.push(b'[');
        for (i, arg) in command.into_iter().enumerate() {
            if i > 0 {
                self.text.push(b',');
            }
            write_string(&mut self.text, arg);
        }
        self.text.extend_from_slice(b"]}");
    }

    /// Appends to a container's array field (`env`, `volumeMounts`), creating it when absent;
    /// `items` are JSON text (see [`item`]).
    pub fn append_to_container(
        &mut self,
        list: List,
        index: usize,
        field: &'static str,
        exists: bool,
        items: &[&[u8]],
    ) {
        self.append(Pointer::Container(list, index, field), exists, items);
    }

    /// Appends Pod volumes, creating `spec.volumes` when absent.
    pub fn append_volumes<T: Serialize>(&mut self, exists: bool, volumes: &[T]) {
        let items: Vec<Vec<u8>> = volumes.iter().map(item).collect();
        let items: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
        self.append_volume_items(exists, &items);
    }

    /// As [`Builder::append_volumes`], the volumes already JSON text (see [`item`]).
    pub fn append_volume_items(&mut self, exists: bool, items: &[&[u8]]) {
        self.append(Pointer::Spec("volumes"), exists, items);
    }

    /// Puts the container (as JSON text) first in `spec.initContainers`, creating the list when absent.
    pub fn prepend_init_container(&mut self, exists: bool, container: &[u8]) {
        if exists {
            self.prepend_init = Some(container.to_vec());
        } else {
            self.append(Pointer::Spec("initContainers"), false, &[container]);
        }
    }

    /// The patch, with the init-container insertion last.
    pub fn finish(mut self) -> JsonPatch {
        if let Some(init) = self.prepend_init.take() {
            self.add(Pointer::Spec("initContainers/0"), b"", &init);
        }
        if self.operations == 0 {
            return JsonPatch::empty();
        }
        self.text.push(b']');
        JsonPatch { json: self.text, operations: self.operations }
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
        b.set_command(List::Init, 0, ["/a", "\"q\""]);
        b.append_to_container(List::App, 1, "env", false, &[&item(&json!({"name": "A", "value": "1"}))]);
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
        for (index, text) in [(0, "0"), (7, "7"), (10, "10"), (1234, "1234"), (usize::MAX, "18446744073709551615")] {
            let mut out = Vec::new();
            write_index(&mut out, index);
            assert_eq!(out, text.as_bytes());
        }
        assert_eq!(JsonPatch::empty().to_json(), b"[]");
    }
}

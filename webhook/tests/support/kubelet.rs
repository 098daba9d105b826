//! The kubelet's `$(VAR)` expansion of env values, command and args
//! (k8s.io/kubernetes `third_party/forked/golang/expansion`), for everything that runs a patched
//! Pod as the kubelet would without one: the webhook's tests, its `admitted_env` fuzz target
//! and the demo's kubelet emulation (`xtask/src/demo/kubelet.rs`) include this one file.

use std::collections::BTreeMap;

/// `$$` is `$`, `$(NAME)` is NAME's value when defined and stays as written otherwise; any
/// other `$` is literal.
pub fn expand(input: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match vars.get(name) {
                Some(value) => out.push_str(value),
                None => out.push_str(&format!("$({name})")),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

//! What to do with each variable of the shim's environment: pass it, drop it, or resolve it.
//! Pure: no I/O, no secrets (only references).

use crate::config::Config;
use hush_contract::reference::{self, ParseError, Request, Template};
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

/// One variable of the application's environment, in the original order.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    /// Handed on byte for byte.
    Pass {
        /// `NAME`.
        name: OsString,
        /// `VALUE`.
        value: OsString,
    },
    /// Handed on with its references replaced by secrets.
    Resolve {
        /// `NAME`.
        name: OsString,
        /// The parsed value.
        template: Template,
    },
}

impl Entry {
    /// The variable's name.
    pub fn name(&self) -> &OsString {
        match self {
            Entry::Pass { name, .. } | Entry::Resolve { name, .. } => name,
        }
    }
}

/// The application's environment to be, and the distinct Vault requests it needs.
#[derive(Debug, Default)]
pub struct Plan {
    /// Variables in their original order.
    pub entries: Vec<Entry>,
    /// Every distinct request, each to be sent once.
    pub requests: BTreeSet<Request>,
}

impl Plan {
    /// How many references the environment holds.
    pub fn reference_count(&self) -> usize {
        self.entries
            .iter()
            .map(|e| match e {
                Entry::Resolve { template, .. } => template.references().count(),
                Entry::Pass { .. } => 0,
            })
            .sum()
    }
}

/// A variable whose value holds a reference that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{}: {source}", variable.to_string_lossy())]
pub struct PlanError {
    /// The variable.
    pub variable: OsString,
    /// What is wrong with its reference.
    #[source]
    pub source: ParseError,
}

/// Sorts the environment: configuration variables are dropped (unless passed through),
/// values with references are parsed, the rest passes unchanged.
pub fn plan(vars: impl IntoIterator<Item = (OsString, OsString)>, config: &Config) -> Result<Plan, PlanError> {
    let mut plan = Plan::default();
    for (name, value) in vars {
        if let Some(utf8) = name.to_str()
            && !config.passes_through(utf8)
        {
            continue;
        }
        if let Some(utf8) = name.to_str()
            && hush_contract::env::is_config_variable(utf8)
        {
            // A passed-through configuration variable is the shim's own setting, not a reference.
            plan.entries.push(Entry::Pass { name, value });
            continue;
        }
        match reference::parse(value.as_bytes()) {
            Ok(None) => plan.entries.push(Entry::Pass { name, value }),
            Ok(Some(template)) => {
                plan.requests.extend(template.references().map(|r| r.request.clone()));
                plan.entries.push(Entry::Resolve { name, template });
            }
            Err(source) => return Err(PlanError { variable: name, source }),
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::os::unix::ffi::OsStringExt;

    fn config(extra: &[(&str, &str)]) -> Config {
        let vars: Vec<(String, OsString)> =
            [("VAULT_TOKEN", "t")].iter().chain(extra).map(|(k, v)| (k.to_string(), OsString::from(v))).collect();
        Config::parse(&|n: &str| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())).unwrap()
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))).collect()
    }

    #[test]
    fn sorts_the_environment_in_order() {
        let plan = plan(
            env(&[
                ("HOME", "/root"),
                ("VAULT_TOKEN", "t"),
                ("DB_PASS", "vault:secret/data/db#password"),
                ("DB_USER", "vault:secret/data/db#username"),
                ("DB_URL", "postgres://u:${vault:secret/data/db#password}@db/app"),
                ("CERT", ">>vault:pki/issue/web#certificate"),
            ]),
            &config(&[]),
        )
        .unwrap();
        let names: Vec<_> = plan.entries.iter().map(|e| e.name().to_str().unwrap()).collect();
        assert_eq!(names, ["HOME", "DB_PASS", "DB_USER", "DB_URL", "CERT"]);
        assert_eq!(plan.requests.len(), 2, "three references to one path are one request");
        assert_eq!(plan.reference_count(), 4);
    }

    #[test]
    fn config_variables_pass_only_when_asked_and_are_never_parsed() {
        let plan = plan(
            env(&[("VAULT_ADDR", "http://v"), ("VAULT_ROLE", "vault:odd"), ("VAULT_PATH", "k")]),
            &config(&[("VAULT_ENV_PASSTHROUGH", "VAULT_ADDR,VAULT_ROLE")]),
        )
        .unwrap();
        assert_eq!(
            plan.entries,
            [
                Entry::Pass { name: "VAULT_ADDR".into(), value: "http://v".into() },
                Entry::Pass { name: "VAULT_ROLE".into(), value: "vault:odd".into() },
            ]
        );
        assert!(plan.requests.is_empty());
    }

    #[test]
    fn non_utf8_passes_byte_for_byte() {
        let name = OsString::from_vec(b"N\xff".to_vec());
        let value = OsString::from_vec(b"\xfe\x80 vault:x#y".to_vec());
        let plan = plan([(name.clone(), value.clone())], &config(&[])).unwrap();
        assert_eq!(plan.entries, [Entry::Pass { name, value }]);
    }

    #[test]
    fn a_bad_reference_names_its_variable() {
        let err = plan(env(&[("OK", "1"), ("API_KEY", "vault:secret/data/api")]), &config(&[])).unwrap_err();
        assert_eq!(err.variable, "API_KEY");
        assert_eq!(
            err.to_string(),
            "API_KEY: invalid Vault reference `vault:secret/data/api`: no `#KEY` after the path"
        );
    }
}

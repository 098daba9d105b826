//! What to do with each variable of the shim's environment: pass it, drop it, or resolve it.
//! Pure: no I/O, no secrets (only references).

use crate::config::Config;
use hush_contract::reference::{self, ParseError, Request, Template};
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::ffi::OsStringExt;

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
    /// `VAULT_TOKEN=vault:login` (or `BAO_TOKEN=bao:login`): the token the shim logged in
    /// with, which is then not revoked.
    Token {
        /// `NAME`.
        name: OsString,
    },
}

impl Entry {
    /// The variable's name.
    pub fn name(&self) -> &OsString {
        match self {
            Entry::Pass { name, .. } | Entry::Resolve { name, .. } | Entry::Token { name } => name,
        }
    }
}

/// The settings vault-env hands to the application when it asks for the token
/// (`VAULT_TOKEN=vault:login`), so that the application can use it: the `login: true` rows
/// of vault-env's `sanitizeEnvmap` (bank-vaults/vault-env `main.go`) and of secret-init's
/// (`pkg/provider/bao/config.go`).
pub const LOGIN_SETTINGS: &[&str] = &[
    "VAULT_ADDR",
    "VAULT_AGENT_ADDR",
    "VAULT_CACERT",
    "VAULT_CAPATH",
    "VAULT_CLIENT_CERT",
    "VAULT_CLIENT_KEY",
    "VAULT_CLIENT_TIMEOUT",
    "VAULT_SRV_LOOKUP",
    "VAULT_SKIP_VERIFY",
    "VAULT_NAMESPACE",
    "VAULT_TLS_SERVER_NAME",
    "VAULT_WRAP_TTL",
    "VAULT_MFA",
    "VAULT_MAX_RETRIES",
    "BAO_ADDR",
    "BAO_AGENT_ADDR",
    "BAO_CACERT",
    "BAO_CAPATH",
    "BAO_CLIENT_CERT",
    "BAO_CLIENT_KEY",
    "BAO_CLIENT_TIMEOUT",
    "BAO_SRV_LOOKUP",
    "BAO_SKIP_VERIFY",
    "BAO_NAMESPACE",
    "BAO_TLS_SERVER_NAME",
    "BAO_WRAP_TTL",
    "BAO_MFA",
    "BAO_MAX_RETRIES",
];

/// The application's environment to be, and the distinct Vault requests it needs.
#[derive(Debug, Default)]
pub struct Plan {
    /// Variables in their original order.
    pub entries: Vec<Entry>,
    /// Every distinct request, each to be sent once (those of `from_path` included).
    pub requests: BTreeSet<Request>,
    /// Every distinct transit ciphertext, each decrypted once.
    pub ciphertexts: BTreeSet<String>,
    /// `VAULT_ENV_FROM_PATH`: every field of these responses becomes a variable, after the
    /// entries (a name the environment already has keeps its value).
    pub from_path: Vec<Request>,
    /// A variable asks for the shim's token: it is not revoked.
    pub login: bool,
}

impl Plan {
    /// How many references the environment holds.
    pub fn reference_count(&self) -> usize {
        self.entries
            .iter()
            .map(|e| match e {
                Entry::Resolve { template, .. } => template.references().count() + template.ciphertexts().count(),
                Entry::Token { .. } => 1,
                Entry::Pass { .. } => 0,
            })
            .sum::<usize>()
            + self.from_path.len()
    }

    /// Whether the shim must talk to Vault at all.
    pub fn needs_vault(&self) -> bool {
        !self.requests.is_empty() || !self.ciphertexts.is_empty() || self.login
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
    let vars: Vec<(OsString, OsString)> = vars.into_iter().collect();
    let login = vars.iter().any(|(name, value)| reference::is_login(name.as_bytes(), value.as_bytes()));
    let mut plan = Plan { login, ..Plan::default() };
    for (name, value) in vars {
        if reference::is_login(name.as_bytes(), value.as_bytes()) {
            plan.entries.push(Entry::Token { name });
            continue;
        }
        if let Some(utf8) = name.to_str()
            && !config.passes_through(utf8)
            && !(login && LOGIN_SETTINGS.contains(&utf8))
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
                plan.ciphertexts.extend(template.ciphertexts().map(str::to_owned));
                plan.entries.push(Entry::Resolve { name, template });
            }
            Err(source) => return Err(PlanError { variable: name, source }),
        }
    }
    Ok(plan)
}

/// Adds `VAULT_ENV_FROM_PATH`'s requests to the plan.
pub fn add_from_path(plan: &mut Plan, from_path: &[Request]) {
    plan.requests.extend(from_path.iter().cloned());
    plan.from_path.extend(from_path.iter().cloned());
}

/// Whether `name` may become a variable: not empty, no `=` and no NUL (a field name of a
/// `VAULT_ENV_FROM_PATH` secret becomes a variable name).
pub fn is_variable_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['=', '\0'])
}

/// The bytes of a name, for comparisons with entries.
pub fn name_bytes(name: &str) -> OsString {
    OsString::from_vec(name.as_bytes().to_vec())
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

//! Puts the plan and Vault's answers together into the application's environment: which
//! bytes make up each `NAME=VALUE` entry, and what a missing secret does. Pure: `render`
//! writes the entries into the locked block.
//!
//! What a secret that is not there does follows Bank-Vaults (vault-sdk
//! `injector/vault/injector.go`, `InjectSecretsFromVaultWithContext`):
//! - a whole-value reference to a missing path fails, or with `VAULT_IGNORE_MISSING_SECRETS`
//!   drops the variable (`continue` without `inject`);
//! - inside text (`${vault:...}`) a missing path fails, or with the setting keeps the
//!   reference's text (`GetDataFromVault` returns nothing, `ReplaceAll` replaces nothing);
//! - a missing field fails whatever the setting (`key '%s' not found under path`);
//! - transit ciphertext that cannot be decrypted fails, or with the setting drops the
//!   variable (`failed to decrypt variable` ... `continue`); inside text it keeps the text;
//! - `VAULT_ENV_FROM_PATH` with a missing path fails, or with the setting is skipped
//!   (`InjectSecretsFromVaultPath`).

use crate::keytemplate::{self, EvalError};
use crate::plan::{Entry, Plan};
use crate::secret::Fetched;
pub use crate::secret::{Answer, Plaintext};
use hush_contract::reference::{Key, Part, Request, SecretRef};
use secrecy::{ExposeSecret, SecretString};
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use zeroize::Zeroizing;

/// Why a reference could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The path holds no secret.
    #[error("{}: {reference}: no secret at this path", variable.to_string_lossy())]
    MissingPath {
        /// The variable.
        variable: OsString,
        /// The reference, canonical text.
        reference: String,
    },
    /// The secret has no such field.
    #[error("{}: {reference}: the secret has no field `{key}`", variable.to_string_lossy())]
    MissingKey {
        /// The variable.
        variable: OsString,
        /// The reference, canonical text.
        reference: String,
        /// The missing field.
        key: String,
    },
    /// A key template failed (a function's input is never shown).
    #[error("{}: {reference}: {reason}", variable.to_string_lossy())]
    Template {
        /// The variable.
        variable: OsString,
        /// The reference, canonical text.
        reference: String,
        /// What failed.
        reason: String,
    },
    /// Transit could not decrypt the ciphertext.
    #[error("{}: transit could not decrypt the ciphertext: {reason}", variable.to_string_lossy())]
    Decrypt {
        /// The variable.
        variable: OsString,
        /// Vault's reason.
        reason: String,
    },
    /// A `VAULT_ENV_FROM_PATH` secret has a field whose name cannot be a variable's.
    #[error("VAULT_ENV_FROM_PATH {path}: field `{field}` cannot be an environment variable name")]
    BadName {
        /// The path.
        path: String,
        /// The field's name (a name, not a value).
        field: String,
    },
    /// The resolved value holds a NUL byte.
    #[error("{}: the resolved value contains a NUL byte, which an environment variable cannot hold", variable.to_string_lossy())]
    NulByte {
        /// The variable.
        variable: OsString,
    },
    /// The block could not be allocated.
    #[error("allocating the environment block: {0}")]
    Alloc(#[source] std::io::Error),
}

impl RenderError {
    /// The exit code (see `hush_contract::exit`): 66 a secret, field or path that is not
    /// there (or transit refused the ciphertext), 65 bad data, 71 an allocation failed.
    pub fn exit_code(&self) -> u8 {
        use hush_contract::exit as code;
        match self {
            RenderError::MissingPath { .. } | RenderError::MissingKey { .. } | RenderError::Decrypt { .. } => {
                code::NO_INPUT
            }
            RenderError::Template { .. } | RenderError::BadName { .. } | RenderError::NulByte { .. } => code::DATA,
            RenderError::Alloc(_) => code::OS,
        }
    }
}

/// A reference left as it was or a variable dropped (`VAULT_IGNORE_MISSING_SECRETS`), for
/// a warning.
#[derive(Debug, PartialEq, Eq)]
pub struct Unresolved {
    /// The variable, or the `VAULT_ENV_FROM_PATH` path.
    pub variable: OsString,
    /// The reference, canonical text.
    pub reference: String,
    /// Whether the whole variable was left out (else its text keeps the reference).
    pub dropped: bool,
}

/// The environment's entries, in order, each as the pieces of its `NAME=VALUE` bytes.
pub struct Composed<'a> {
    /// Each variable's name and pieces (name, `=`, value pieces).
    pub entries: Vec<(OsString, Vec<Piece<'a>>)>,
    /// References left unresolved.
    pub unresolved: Vec<Unresolved>,
}

/// Where answers are looked up.
pub trait Answers {
    /// The answer to `request`, if it was sent.
    fn answer(&self, request: &Request) -> Option<&Answer>;
    /// The plaintext of a transit ciphertext, if it was sent.
    fn plaintext(&self, _ciphertext: &str) -> Option<&Plaintext> {
        None
    }
    /// The shim's token, for `VAULT_TOKEN=vault:login`.
    fn token(&self) -> Option<&SecretString> {
        None
    }
}

impl Answers for HashMap<Request, Answer> {
    fn answer(&self, request: &Request) -> Option<&Answer> {
        self.get(request)
    }
}

/// Everything Vault answered for one plan.
#[derive(Debug, Default)]
pub struct Resolved {
    /// Each request's response.
    pub fetched: HashMap<Request, Fetched>,
    /// Each ciphertext's plaintext.
    pub transit: HashMap<String, Plaintext>,
    /// The token, when a variable asks for it.
    pub token: Option<SecretString>,
}

impl Answers for Resolved {
    fn answer(&self, request: &Request) -> Option<&Answer> {
        self.fetched.get(request).map(|f| &f.answer)
    }
    fn plaintext(&self, ciphertext: &str) -> Option<&Plaintext> {
        self.transit.get(ciphertext)
    }
    fn token(&self) -> Option<&SecretString> {
        self.token.as_ref()
    }
}

/// A piece of an entry: borrowed from the plan or the answers, or computed (and wiped).
pub enum Piece<'a> {
    Borrowed(&'a [u8]),
    Owned(Zeroizing<Vec<u8>>),
}

impl AsRef<[u8]> for Piece<'_> {
    fn as_ref(&self) -> &[u8] {
        match self {
            Piece::Borrowed(bytes) => bytes,
            Piece::Owned(bytes) => bytes,
        }
    }
}

/// What one reference resolved to.
enum Lookup<'a> {
    Value(Piece<'a>),
    /// Missing path, or transit failure: what `VAULT_IGNORE_MISSING_SECRETS` may skip.
    Skippable(RenderError),
}

/// Every entry of `plan`, references replaced from `answers`.
pub fn compose<'a>(
    plan: &'a Plan,
    answers: &'a impl Answers,
    ignore_missing: bool,
) -> Result<Composed<'a>, RenderError> {
    let mut unresolved = Vec::new();
    let mut entries: Vec<(OsString, Vec<Piece<'_>>)> = Vec::with_capacity(plan.entries.len());
    for entry in &plan.entries {
        let name = entry.name();
        let mut pieces = vec![Piece::Borrowed(name.as_bytes()), Piece::Borrowed(b"=")];
        match entry {
            Entry::Pass { value, .. } => pieces.push(Piece::Borrowed(value.as_bytes())),
            Entry::Token { .. } => match answers.token() {
                Some(token) => pieces.push(Piece::Borrowed(token.expose_secret().as_bytes())),
                // The shim always has a token once it has talked to Vault; without one
                // the variable is left out rather than given the request text.
                None => continue,
            },
            Entry::Resolve { template, .. } => {
                let whole = template.is_whole();
                let mut dropped = false;
                for part in template.parts() {
                    let (looked_up, text) = match part {
                        Part::Literal(bytes) => {
                            pieces.push(Piece::Borrowed(bytes.as_slice()));
                            continue;
                        }
                        Part::Ref(reference) => (lookup(name, reference, answers)?, reference.to_string()),
                        Part::Transit(ciphertext) => (decrypt(name, ciphertext, answers), ciphertext.clone()),
                    };
                    match looked_up {
                        Lookup::Value(piece) => pieces.push(piece),
                        Lookup::Skippable(_) if ignore_missing && whole => {
                            unresolved.push(Unresolved { variable: name.clone(), reference: text, dropped: true });
                            dropped = true;
                        }
                        Lookup::Skippable(_) if ignore_missing => {
                            let kept = format!("${{{text}}}");
                            pieces.push(Piece::Owned(Zeroizing::new(kept.into_bytes())));
                            unresolved.push(Unresolved { variable: name.clone(), reference: text, dropped: false });
                        }
                        Lookup::Skippable(err) => return Err(err),
                    }
                }
                if dropped {
                    continue;
                }
            }
        }
        entries.push((name.clone(), pieces));
    }
    from_path(plan, answers, ignore_missing, &mut entries, &mut unresolved)?;
    Ok(Composed { entries, unresolved })
}

/// `VAULT_ENV_FROM_PATH`: every field of each response becomes a variable, unless the
/// environment (or an earlier path) already has that name: a variable written in the
/// manifest wins, as `env` wins over `envFrom` in Kubernetes. Fields are added in name
/// order, so the environment is the same on every start.
fn from_path<'a>(
    plan: &Plan,
    answers: &'a impl Answers,
    ignore_missing: bool,
    entries: &mut Vec<(OsString, Vec<Piece<'a>>)>,
    unresolved: &mut Vec<Unresolved>,
) -> Result<(), RenderError> {
    let mut taken: HashSet<OsString> = entries.iter().map(|(name, _)| name.clone()).collect();
    for request in &plan.from_path {
        let fields = match answers.answer(request) {
            Some(Answer::Found(fields)) => fields,
            Some(Answer::Missing) | None if ignore_missing => {
                unresolved.push(Unresolved {
                    variable: OsString::from("VAULT_ENV_FROM_PATH"),
                    reference: request.path.clone(),
                    dropped: true,
                });
                continue;
            }
            Some(Answer::Missing) | None => {
                return Err(RenderError::MissingPath {
                    variable: OsString::from("VAULT_ENV_FROM_PATH"),
                    reference: request.path.clone(),
                });
            }
        };
        let mut names: Vec<(&str, &SecretString)> = fields.iter().collect();
        names.sort_unstable_by_key(|(name, _)| *name);
        for (field, secret) in names {
            if !crate::plan::is_variable_name(field) {
                return Err(RenderError::BadName { path: request.path.clone(), field: field.to_owned() });
            }
            let name = crate::plan::name_bytes(field);
            if !taken.insert(name.clone()) {
                continue;
            }
            let pieces = vec![
                Piece::Owned(Zeroizing::new(field.as_bytes().to_vec())),
                Piece::Borrowed(b"="),
                Piece::Borrowed(secret.expose_secret().as_bytes()),
            ];
            entries.push((name, pieces));
        }
    }
    Ok(())
}

fn lookup<'a>(
    variable: &OsString,
    reference: &SecretRef,
    answers: &'a impl Answers,
) -> Result<Lookup<'a>, RenderError> {
    let fields = match answers.answer(&reference.request) {
        Some(Answer::Found(fields)) => fields,
        Some(Answer::Missing) | None => {
            return Ok(Lookup::Skippable(RenderError::MissingPath {
                variable: variable.clone(),
                reference: reference.to_string(),
            }));
        }
    };
    match &reference.key {
        Key::Field(key) => fields
            .get(key)
            .map(|s| Lookup::Value(Piece::Borrowed(s.expose_secret().as_bytes())))
            .ok_or_else(|| RenderError::MissingKey {
                variable: variable.clone(),
                reference: reference.to_string(),
                key: key.clone(),
            }),
        Key::Template(template) => match keytemplate::evaluate(template, fields) {
            Ok(value) => Ok(Lookup::Value(Piece::Owned(value))),
            Err(EvalError::MissingField(key)) => {
                Err(RenderError::MissingKey { variable: variable.clone(), reference: reference.to_string(), key })
            }
            Err(e @ EvalError::Function { .. }) => Err(RenderError::Template {
                variable: variable.clone(),
                reference: reference.to_string(),
                reason: e.to_string(),
            }),
        },
    }
}

fn decrypt<'a>(variable: &OsString, ciphertext: &str, answers: &'a impl Answers) -> Lookup<'a> {
    match answers.plaintext(ciphertext) {
        Some(Plaintext::Found(plain)) => Lookup::Value(Piece::Borrowed(plain.as_slice())),
        Some(Plaintext::Failed(reason)) => {
            Lookup::Skippable(RenderError::Decrypt { variable: variable.clone(), reason: reason.clone() })
        }
        None => Lookup::Skippable(RenderError::Decrypt {
            variable: variable.clone(),
            reason: "it was not sent to Vault".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::plan::plan;
    // The whole rendering, block included: what the application gets.
    use crate::render::render;
    use crate::secret::{Layout, parse_response};

    fn setup(env: &[(&str, &str)]) -> Plan {
        let config = Config::parse(&|n: &str| (n == "VAULT_TOKEN").then(|| OsString::from("t"))).unwrap();
        plan(env.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))), &config).unwrap()
    }

    fn answers(list: &[(&str, Option<&str>)]) -> HashMap<Request, Answer> {
        list.iter()
            .map(|(path, body)| {
                let request =
                    Request { path: (*path).into(), operation: hush_contract::Operation::Read { version: None } };
                // As the mount lookup would say for the dev server's `secret/` (KV v2).
                let layout = if path.starts_with("secret/data/") { Layout::Kv2 } else { Layout::Flat };
                let answer = match body {
                    Some(b) => Answer::Found(parse_response(b.as_bytes(), layout).unwrap().fields.unwrap()),
                    None => Answer::Missing,
                };
                (request, answer)
            })
            .collect()
    }

    #[test]
    fn replaces_references_and_keeps_the_rest() {
        let plan = setup(&[
            ("HOME", "/root"),
            ("PASS", "vault:secret/data/db#password"),
            ("URL", "pg://u:${vault:secret/data/db#password}@h/${vault:kv/app#name}"),
        ]);
        let answers = answers(&[
            ("secret/data/db", Some(r#"{"data":{"data":{"password":"pw"}}}"#)),
            ("kv/app", Some(r#"{"data":{"name":"app"}}"#)),
        ]);
        let rendered = render(&plan, &answers, false).unwrap();
        assert_eq!(rendered.block.entries(), [&b"HOME=/root"[..], b"PASS=pw", b"URL=pg://u:pw@h/app"]);
        assert!(rendered.unresolved.is_empty());
    }

    #[test]
    fn missing_secrets_fail_closed_naming_variable_and_reference() {
        let plan = setup(&[("PASS", "vault:secret/data/db#password")]);
        let err = render(&plan, &answers(&[("secret/data/db", None)]), false).err().unwrap();
        assert_eq!(err.to_string(), "PASS: vault:secret/data/db#password: no secret at this path");
        let err = render(&plan, &answers(&[("secret/data/db", Some(r#"{"data":{"data":{"user":"u"}}}"#))]), false)
            .err()
            .unwrap();
        assert_eq!(err.to_string(), "PASS: vault:secret/data/db#password: the secret has no field `password`");
    }

    #[test]
    fn ignore_missing_follows_bank_vaults() {
        // vault-sdk injector.go: a missing path drops a whole-value variable and leaves an
        // inline reference's text; a missing key fails even with the setting.
        let plan = setup(&[("A", "vault:secret/data/db#password"), ("B", "x${vault:kv/gone#k}y"), ("C", "c")]);
        let rendered = render(&plan, &answers(&[("secret/data/db", None), ("kv/gone", None)]), true).unwrap();
        assert_eq!(rendered.block.entries(), [&b"B=x${vault:kv/gone#k}y"[..], b"C=c"]);
        assert_eq!(
            rendered.unresolved,
            [
                Unresolved { variable: "A".into(), reference: "vault:secret/data/db#password".into(), dropped: true },
                Unresolved { variable: "B".into(), reference: "vault:kv/gone#k".into(), dropped: false },
            ]
        );
        let plan = setup(&[("A", "vault:kv/a#nope")]);
        let err = render(&plan, &answers(&[("kv/a", Some(r#"{"data":{"k":"v"}}"#))]), true).err().unwrap();
        assert_eq!(err.to_string(), "A: vault:kv/a#nope: the secret has no field `nope`");
        let plan = setup(&[("A", "x${vault:kv/a#nope}")]);
        assert!(render(&plan, &answers(&[("kv/a", Some(r#"{"data":{"k":"v"}}"#))]), true).is_err());
    }

    #[test]
    fn key_templates_and_transit() {
        let plan = setup(&[
            ("URL", "vault:kv/db#postgres://${.user}:${.password | urlquery}@db/app"),
            ("IN", "[${vault:kv/db#${.user | upper}}]"),
            ("T", "vault:v1:abc"),
            ("T2", "a=${vault:v1:def};"),
        ]);
        let mut resolved = Resolved::default();
        resolved.transit.insert("vault:v1:abc".into(), Plaintext::Found(Zeroizing::new(b"plain".to_vec())));
        resolved.transit.insert("vault:v1:def".into(), Plaintext::Found(Zeroizing::new(b"two".to_vec())));
        let with = |resolved: &Resolved| {
            struct Both<'a>(&'a Resolved, HashMap<Request, Answer>);
            impl Answers for Both<'_> {
                fn answer(&self, r: &Request) -> Option<&Answer> {
                    self.1.get(r)
                }
                fn plaintext(&self, c: &str) -> Option<&Plaintext> {
                    self.0.plaintext(c)
                }
            }
            let both = Both(resolved, answers(&[("kv/db", Some(r#"{"data":{"user":"app","password":"p@ss w"}}"#))]));
            render(&plan, &both, false).map(|r| r.block.entries().iter().map(|e| e.to_vec()).collect::<Vec<_>>())
        };
        assert_eq!(
            with(&resolved).unwrap(),
            [&b"URL=postgres://app:p%40ss+w@db/app"[..], b"IN=[APP]", b"T=plain", b"T2=a=two;"]
        );
        resolved
            .transit
            .insert("vault:v1:abc".into(), Plaintext::Failed("cipher: message authentication failed".into()));
        let err = with(&resolved).err().unwrap();
        assert_eq!(
            err.to_string(),
            "T: transit could not decrypt the ciphertext: cipher: message authentication failed"
        );
    }

    #[test]
    fn from_path_fields_become_variables_and_the_manifest_wins() {
        let mut plan = setup(&[("user", "manifest")]);
        let request = |p: &str| Request { path: p.into(), operation: hush_contract::Operation::Read { version: None } };
        crate::plan::add_from_path(&mut plan, &[request("kv/a"), request("kv/b")]);
        let answers = answers(&[
            ("kv/a", Some(r#"{"data":{"user":"from-a","password":"pa","b_only":"x"}}"#)),
            ("kv/b", Some(r#"{"data":{"password":"pb","b_only":"y"}}"#)),
        ]);
        let rendered = render(&plan, &answers, false).unwrap();
        assert_eq!(rendered.block.entries(), [&b"user=manifest"[..], b"b_only=x", b"password=pa"]);
        let mut plan = setup(&[]);
        crate::plan::add_from_path(&mut plan, &[request("kv/gone")]);
        let missing = self::answers(&[("kv/gone", None)]);
        assert_eq!(
            render(&plan, &missing, false).err().unwrap().to_string(),
            "VAULT_ENV_FROM_PATH: kv/gone: no secret at this path"
        );
        assert!(render(&plan, &missing, true).unwrap().block.entries().is_empty());
        let bad = self::answers(&[("kv/gone", Some(r#"{"data":{"A=B":"x"}}"#))]);
        assert!(matches!(render(&plan, &bad, false), Err(RenderError::BadName { .. })));
    }

    #[test]
    fn a_secret_with_a_nul_byte_is_refused_without_its_value() {
        let plan = setup(&[("A", "vault:kv/a#k")]);
        let err = render(&plan, &answers(&[("kv/a", Some(r#"{"data":{"k":"s3\u0000cret"}}"#))]), false).err().unwrap();
        assert_eq!(
            err.to_string(),
            "A: the resolved value contains a NUL byte, which an environment variable cannot hold"
        );
    }
}

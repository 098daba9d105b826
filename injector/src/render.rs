//! Puts the plan and Vault's answers together into the application's environment block.
//! Pure apart from allocating the block.

use crate::envblock::{EnvBlock, Measure};
use crate::plan::{Entry, Plan};
use crate::secret::Fields;
use hush_contract::reference::{Part, Request, SecretRef};
use secrecy::ExposeSecret;
use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

/// What Vault answered for one request.
#[derive(Debug)]
pub enum Answer {
    /// The response's fields.
    Found(Fields),
    /// Nothing at that path (404, or a deleted KV v2 version).
    Missing,
}

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

/// A reference left as it was (`VAULT_IGNORE_MISSING_SECRETS`), for a warning.
#[derive(Debug, PartialEq, Eq)]
pub struct Unresolved {
    /// The variable.
    pub variable: OsString,
    /// The reference, canonical text.
    pub reference: String,
}

/// The environment, ready for exec.
pub struct Rendered {
    /// The block `envp` points into.
    pub block: EnvBlock,
    /// References left unresolved.
    pub unresolved: Vec<Unresolved>,
}

/// Where answers are looked up.
pub trait Answers {
    /// The answer to `request`, if it was sent.
    fn answer(&self, request: &Request) -> Option<&Answer>;
}

impl Answers for HashMap<Request, Answer> {
    fn answer(&self, request: &Request) -> Option<&Answer> {
        self.get(request)
    }
}

impl Answers for HashMap<Request, crate::vault::Fetched> {
    fn answer(&self, request: &Request) -> Option<&Answer> {
        self.get(request).map(|f| &f.answer)
    }
}

/// Builds the environment: every entry of `plan`, references replaced from `answers`.
pub fn render(plan: &Plan, answers: &impl Answers, ignore_missing: bool) -> Result<Rendered, RenderError> {
    render_for(plan, answers, ignore_missing, false)
}

/// [`render`], for a child that will be forked (`for_child`) or not.
pub fn render_for(
    plan: &Plan,
    answers: &impl Answers,
    ignore_missing: bool,
    for_child: bool,
) -> Result<Rendered, RenderError> {
    let mut unresolved = Vec::new();
    let mut entries: Vec<(&OsString, Vec<Cow<'_, [u8]>>)> = Vec::with_capacity(plan.entries.len());
    for entry in &plan.entries {
        let pieces = match entry {
            Entry::Pass { name, value } => {
                vec![Cow::Borrowed(name.as_bytes()), Cow::Borrowed(&b"="[..]), Cow::Borrowed(value.as_bytes())]
            }
            Entry::Resolve { name, template } => {
                let mut pieces = vec![Cow::Borrowed(name.as_bytes()), Cow::Borrowed(&b"="[..])];
                let whole = template.parts().len() == 1;
                for part in template.parts() {
                    match part {
                        Part::Literal(bytes) => pieces.push(Cow::Borrowed(bytes.as_slice())),
                        Part::Ref(reference) => match lookup(name, reference, answers) {
                            Ok(secret) => pieces.push(Cow::Borrowed(secret)),
                            Err(err) if ignore_missing => {
                                let text = reference.to_string();
                                let kept = if whole { text.clone() } else { format!("${{{text}}}") };
                                pieces.push(Cow::Owned(kept.into_bytes()));
                                unresolved.push(Unresolved { variable: name.clone(), reference: text });
                                drop(err);
                            }
                            Err(err) => return Err(err),
                        },
                    }
                }
                pieces
            }
        };
        entries.push((entry.name(), pieces));
    }
    let mut measure = Measure::default();
    for (_, pieces) in &entries {
        measure.add(pieces.iter().map(|p| p.as_ref()));
    }
    let mut block = EnvBlock::new(&measure, for_child).map_err(RenderError::Alloc)?;
    for (name, pieces) in &entries {
        block
            .push(pieces.iter().map(|p| p.as_ref()))
            .map_err(|_| RenderError::NulByte { variable: (*name).clone() })?;
    }
    Ok(Rendered { block, unresolved })
}

fn lookup<'a>(variable: &OsString, reference: &SecretRef, answers: &'a impl Answers) -> Result<&'a [u8], RenderError> {
    match answers.answer(&reference.request) {
        Some(Answer::Found(fields)) => {
            fields.get(&reference.key).map(|s| s.expose_secret().as_bytes()).ok_or_else(|| RenderError::MissingKey {
                variable: variable.clone(),
                reference: reference.to_string(),
                key: reference.key.clone(),
            })
        }
        Some(Answer::Missing) | None => {
            Err(RenderError::MissingPath { variable: variable.clone(), reference: reference.to_string() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::plan::plan;
    use crate::secret::parse_response;

    fn setup(env: &[(&str, &str)]) -> Plan {
        let config = Config::parse(&|n: &str| (n == "VAULT_TOKEN").then(|| OsString::from("t"))).unwrap();
        plan(env.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))), &config).unwrap()
    }

    fn answers(list: &[(&str, Option<&str>)]) -> HashMap<Request, Answer> {
        list.iter()
            .map(|(path, body)| {
                let request =
                    Request { path: (*path).into(), operation: hush_contract::Operation::Read { version: None } };
                let kv2 = request.is_kv2();
                let answer = match body {
                    Some(b) => Answer::Found(parse_response(b.as_bytes(), kv2).unwrap().fields.unwrap()),
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
    fn ignore_missing_leaves_the_reference_text() {
        let plan = setup(&[("A", "vault:secret/data/db#password"), ("B", "x${vault:kv/a#k}y")]);
        let rendered =
            render(&plan, &answers(&[("secret/data/db", None), ("kv/a", Some(r#"{"data":{}}"#))]), true).unwrap();
        assert_eq!(rendered.block.entries(), [&b"A=vault:secret/data/db#password"[..], b"B=x${vault:kv/a#k}y"]);
        assert_eq!(rendered.unresolved.len(), 2);
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

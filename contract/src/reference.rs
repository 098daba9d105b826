//! The grammar of Vault references in environment values, and its parser.
//!
//! This is the one place the grammar is written down. An environment value either holds
//! no reference (it passes to the application byte for byte) or is parsed into a
//! [`Template`]: literal bytes and references, in order.
//!
//! ```text
//! value     = whole / text
//! whole     = reference                    ; the entire value, e.g. vault:secret/data/db#password
//! text      = *( literal / "${" reference "}" )
//! reference = [ ">>" ] "vault:" path "#" key [ "#" extra ]
//! path      = segment *( "/" segment )     ; one leading "/" is dropped; no "." or ".." segment
//! segment   = 1*( any character but "/" "#" "?" "%" "\" "{" "}", space or control )
//! key       = 1*( any character but "#" "}" or control )
//! extra     = version                      ; for vault:   — a KV v2 version pin, 1 or more
//!           / json-object                  ; for >>vault: — the body of the write request
//! ```
//!
//! - `vault:PATH#KEY` reads `PATH` (HTTP GET) and takes field `KEY`. A path with a `data`
//!   segment is KV v2 (`secret/data/app`), where the fields are under `data.data`; any
//!   other path's fields are under `data` (KV v1, `database/creds/ROLE`, ...).
//! - `vault:PATH#KEY#VERSION` pins a KV v2 version.
//! - `>>vault:PATH#KEY` and `>>vault:PATH#KEY#{"json":"body"}` *write* `PATH` (HTTP POST, body
//!   `{}` when none is given) and take field `KEY` of the response: requests that create a
//!   secret, such as `pki/issue/ROLE`.
//! - Every distinct [`Request`] (path plus version or body) is sent once, so the fields of
//!   one response, e.g. a certificate and its private key, or the username and password of
//!   one database lease, always belong together.
//! - A value is a whole reference when it starts with `vault:` or `>>vault:` and holds no
//!   `${vault:` template. Text with templates, e.g.
//!   `postgres://app:${vault:secret/data/db#password}@db:5432/app`, keeps its literal parts.
//! - Anything that looks like a reference but does not parse is an error: the shim fails
//!   closed rather than hand the application a half-resolved value.

use std::fmt;

const PREFIX_READ: &[u8] = b"vault:";
const PREFIX_WRITE: &[u8] = b">>vault:";
const OPEN: &[u8] = b"${";
const MAX_PATH_LEN: usize = 1024;

/// How a [`Request`] is sent.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// HTTP GET, optionally pinning a KV v2 version.
    Read {
        /// The KV v2 version; `None` for the latest.
        version: Option<u64>,
    },
    /// HTTP POST with this JSON object as the body.
    Write {
        /// The request body, exactly as written in the reference.
        body: String,
    },
}

/// One request to Vault. References that share a request share one response.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Request {
    /// The API path below `/v1/`, without a leading slash.
    pub path: String,
    /// How it is sent.
    pub operation: Operation,
}

impl Request {
    /// Whether the path addresses a KV v2 secret (it has a `data` segment).
    pub fn is_kv2(&self) -> bool {
        self.path.split('/').skip(1).any(|segment| segment == "data")
    }
}

/// A reference: one field of one request's response.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretRef {
    /// The request whose response holds the field.
    pub request: Request,
    /// The field's name.
    pub key: String,
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.request.operation {
            Operation::Read { version: None } => write!(f, "vault:{}#{}", self.request.path, self.key),
            Operation::Read { version: Some(v) } => {
                write!(f, "vault:{}#{}#{v}", self.request.path, self.key)
            }
            Operation::Write { body } => write!(f, ">>vault:{}#{}#{body}", self.request.path, self.key),
        }
    }
}

/// One piece of a parsed value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// Bytes passed through unchanged.
    Literal(Vec<u8>),
    /// A reference, replaced by the secret it names.
    Ref(SecretRef),
}

/// A value with at least one reference, as a sequence of [`Part`]s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// The parts in order. Never empty, holds at least one [`Part::Ref`], no empty literal
    /// and no two literals side by side.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The references in order of appearance.
    pub fn references(&self) -> impl Iterator<Item = &SecretRef> {
        self.parts.iter().filter_map(|part| match part {
            Part::Ref(r) => Some(r),
            Part::Literal(_) => None,
        })
    }

    /// The canonical text of this template; parsing it yields an equal template.
    pub fn to_bytes(&self) -> Vec<u8> {
        if let [Part::Ref(r)] = self.parts.as_slice() {
            return r.to_string().into_bytes();
        }
        let mut out = Vec::new();
        for part in &self.parts {
            match part {
                Part::Literal(bytes) => out.extend_from_slice(bytes),
                Part::Ref(r) => {
                    out.extend_from_slice(OPEN);
                    out.extend_from_slice(r.to_string().as_bytes());
                    out.push(b'}');
                }
            }
        }
        out
    }
}

/// Why a value that looks like a reference is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid Vault reference `{excerpt}`: {kind}")]
pub struct ParseError {
    /// Byte offset of the reference in the value.
    pub offset: usize,
    /// The start of the reference text, for the error message (never the secret).
    pub excerpt: String,
    /// What is wrong.
    pub kind: ErrorKind,
}

/// What is wrong with a reference.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `vault:PATH` with no `#KEY`.
    #[error("no `#KEY` after the path")]
    MissingKey,
    /// The path is empty.
    #[error("the path is empty")]
    EmptyPath,
    /// The key is empty.
    #[error("the key is empty")]
    EmptyKey,
    /// A path segment is empty, `.` or `..`.
    #[error("path segment `{0}` is not allowed")]
    BadSegment(String),
    /// A character the grammar does not allow where it stands.
    #[error("character {0:?} is not allowed in the {1}")]
    BadChar(char, &'static str),
    /// The path is longer than 1024 bytes.
    #[error("the path is longer than 1024 bytes")]
    PathTooLong,
    /// Path or key is not UTF-8.
    #[error("the {0} is not UTF-8")]
    NotUtf8(&'static str),
    /// The version after the key is not a whole number of at least 1.
    #[error("the version must be a whole number of at least 1")]
    BadVersion,
    /// A version pin on a path that is not KV v2.
    #[error("a version pin needs a KV v2 path (one with a `data` segment)")]
    VersionWithoutKv2,
    /// The body of a `>>vault:` write is not a JSON object.
    #[error("the write body is not a JSON object: {0}")]
    BadBody(String),
    /// A `${` template without its closing `}`.
    #[error("the `${{` template has no closing `}}`")]
    Unterminated,
}

/// Whether `value` may hold a reference: the cheap test the webhook uses to decide whether
/// a container needs the shim. A `true` does not mean the value parses.
pub fn may_hold_reference(value: &[u8]) -> bool {
    value.starts_with(PREFIX_READ) || value.starts_with(PREFIX_WRITE) || template_start(value, 0).is_some()
}

/// Parses an environment value. `Ok(None)`: no reference, the value passes unchanged.
pub fn parse(value: &[u8]) -> Result<Option<Template>, ParseError> {
    if template_start(value, 0).is_some() {
        return parse_text(value).map(Some);
    }
    if value.starts_with(PREFIX_READ) || value.starts_with(PREFIX_WRITE) {
        let reference = parse_whole(value)?;
        return Ok(Some(Template { parts: vec![Part::Ref(reference)] }));
    }
    Ok(None)
}

/// The offset of the next `${vault:` or `${>>vault:` at or after `from`.
fn template_start(value: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(found) = find(&value[at..], OPEN) {
        let start = at + found;
        let rest = &value[start + OPEN.len()..];
        if rest.starts_with(PREFIX_READ) || rest.starts_with(PREFIX_WRITE) {
            return Some(start);
        }
        at = start + 1;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

fn parse_text(value: &[u8]) -> Result<Template, ParseError> {
    let mut parts = Vec::new();
    let mut at = 0;
    while let Some(start) = template_start(value, at) {
        if start > at {
            parts.push(Part::Literal(value[at..start].to_vec()));
        }
        let body_start = start + OPEN.len();
        let (reference, end) = Scanner { value, origin: start, pos: body_start, mode: Mode::Template }.reference()?;
        if value.get(end) != Some(&b'}') {
            return Err(error(value, start, ErrorKind::Unterminated));
        }
        parts.push(Part::Ref(reference));
        at = end + 1;
    }
    if at < value.len() {
        parts.push(Part::Literal(value[at..].to_vec()));
    }
    Ok(Template { parts })
}

fn parse_whole(value: &[u8]) -> Result<SecretRef, ParseError> {
    let (reference, end) = Scanner { value, origin: 0, pos: 0, mode: Mode::Whole }.reference()?;
    debug_assert_eq!(end, value.len(), "a whole reference extends to the end of the value");
    Ok(reference)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The reference is the whole value: it ends at the end.
    Whole,
    /// The reference is inside `${ }`: it ends before the closing brace.
    Template,
}

struct Scanner<'a> {
    value: &'a [u8],
    /// Where the reference starts, `${` included: errors point here.
    origin: usize,
    pos: usize,
    mode: Mode,
}

impl Scanner<'_> {
    fn fail(&self, kind: ErrorKind) -> ParseError {
        error(self.value, self.origin, kind)
    }

    fn at_end(&self) -> bool {
        match self.mode {
            Mode::Whole => self.pos >= self.value.len(),
            Mode::Template => self.pos >= self.value.len() || self.value[self.pos] == b'}',
        }
    }

    /// Scans a reference; returns it and the offset just past it.
    fn reference(mut self) -> Result<(SecretRef, usize), ParseError> {
        let write = self.value[self.pos..].starts_with(PREFIX_WRITE);
        self.pos += if write { PREFIX_WRITE.len() } else { PREFIX_READ.len() };
        let path = self.path()?;
        if self.at_end() {
            return Err(self.fail(if self.pos >= self.value.len() && self.mode == Mode::Template {
                ErrorKind::Unterminated
            } else {
                ErrorKind::MissingKey
            }));
        }
        self.pos += 1; // the '#' that ended the path
        let key = self.key()?;
        let operation = if self.at_end() {
            if write { Operation::Write { body: "{}".to_owned() } } else { Operation::Read { version: None } }
        } else {
            self.pos += 1; // the '#' that ended the key
            if write {
                Operation::Write { body: self.body()? }
            } else {
                Operation::Read { version: Some(self.version()?) }
            }
        };
        let request = Request { path, operation };
        if matches!(request.operation, Operation::Read { version: Some(_) }) && !request.is_kv2() {
            return Err(self.fail(ErrorKind::VersionWithoutKv2));
        }
        Ok((SecretRef { request, key }, self.pos))
    }

    fn path(&mut self) -> Result<String, ParseError> {
        let begin = self.pos;
        while !self.at_end() && self.value[self.pos] != b'#' {
            self.pos += 1;
        }
        let raw =
            std::str::from_utf8(&self.value[begin..self.pos]).map_err(|_| self.fail(ErrorKind::NotUtf8("path")))?;
        let path = raw.strip_prefix('/').unwrap_or(raw);
        if path.is_empty() {
            return Err(self.fail(ErrorKind::EmptyPath));
        }
        if path.len() > MAX_PATH_LEN {
            return Err(self.fail(ErrorKind::PathTooLong));
        }
        for segment in path.split('/') {
            if segment.is_empty() || segment == "." || segment == ".." {
                return Err(self.fail(ErrorKind::BadSegment(segment.to_owned())));
            }
            if let Some(c) = segment.chars().find(|&c| !is_path_char(c)) {
                return Err(self.fail(ErrorKind::BadChar(c, "path")));
            }
        }
        Ok(path.to_owned())
    }

    fn key(&mut self) -> Result<String, ParseError> {
        let begin = self.pos;
        while !self.at_end() && self.value[self.pos] != b'#' {
            self.pos += 1;
        }
        let key =
            std::str::from_utf8(&self.value[begin..self.pos]).map_err(|_| self.fail(ErrorKind::NotUtf8("key")))?;
        if key.is_empty() {
            return Err(self.fail(ErrorKind::EmptyKey));
        }
        if let Some(c) = key.chars().find(|&c| c.is_control() || c == '}') {
            return Err(self.fail(ErrorKind::BadChar(c, "key")));
        }
        Ok(key.to_owned())
    }

    fn version(&mut self) -> Result<u64, ParseError> {
        let begin = self.pos;
        while !self.at_end() {
            self.pos += 1;
        }
        std::str::from_utf8(&self.value[begin..self.pos])
            .ok()
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u64>().ok())
            .filter(|&version| version >= 1)
            .ok_or_else(|| self.fail(ErrorKind::BadVersion))
    }

    fn body(&mut self) -> Result<String, ParseError> {
        let begin = self.pos;
        self.pos = match self.mode {
            Mode::Whole => self.value.len(),
            Mode::Template => json_object_end(self.value, begin).ok_or_else(|| self.fail(ErrorKind::Unterminated))?,
        };
        let text =
            std::str::from_utf8(&self.value[begin..self.pos]).map_err(|_| self.fail(ErrorKind::NotUtf8("body")))?;
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
            .map_err(|e| self.fail(ErrorKind::BadBody(e.to_string())))?;
        Ok(text.to_owned())
    }
}

fn is_path_char(c: char) -> bool {
    !(c.is_control() || c.is_whitespace() || matches!(c, '/' | '#' | '?' | '%' | '\\' | '{' | '}'))
}

/// The offset just past the JSON object starting at `begin` (braces balanced, strings
/// skipped), or `None` when it does not close.
fn json_object_end(value: &[u8], begin: usize) -> Option<usize> {
    if value.get(begin) != Some(&b'{') {
        // Not an object: let the JSON parser name the problem on the text up to the brace.
        return Some(begin + value[begin..].iter().position(|&b| b == b'}')?);
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in value.iter().enumerate().skip(begin) {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

fn error(value: &[u8], start: usize, kind: ErrorKind) -> ParseError {
    const MAX: usize = 80;
    let text = String::from_utf8_lossy(&value[start..]);
    let excerpt = match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    };
    ParseError { offset: start, excerpt, kind }
}

#[cfg(test)]
mod tests;

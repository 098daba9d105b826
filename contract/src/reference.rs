//! The grammar of Vault references in environment values, and its parser.
//!
//! This is the one place the grammar is written down. An environment value either holds
//! no reference (it passes to the application byte for byte) or is parsed into a
//! [`Template`]: literal bytes, references and transit ciphertexts, in order.
//!
//! ```text
//! value      = whole / text
//! whole      = reference / ciphertext      ; the entire value, e.g. vault:secret/data/db#password
//! text       = *( literal / "${" ( reference / ciphertext ) "}" )
//! reference  = [ ">>" ] prefix path "#" key [ "#" extra ]
//! prefix     = "vault:" / "bao:"           ; bao: is secret-init's spelling for OpenBao
//! ciphertext = "vault:v" 1*DIGIT ":" 1*char ; transit ciphertext, decrypted with the transit key
//! path       = segment *( "/" segment )     ; one leading "/" is dropped; no "." or ".." segment
//! segment    = 1*( any character but "/" "#" "?" "%" "\" "{" "}", space or control )
//! key        = field / key-template
//! field      = 1*( any character but "#" or control; not "}" inside "${ }" )
//! key-template = text holding "${" and "}"  ; see [`key`], e.g. ${.user}:${.password}
//! extra      = version                      ; for vault:   — a KV v2 version pin, 1 or more
//!            / json-object                  ; for >>vault: — the body of the write request
//! ```
//!
//! - `vault:PATH#KEY` reads `PATH` (HTTP GET) and takes field `KEY`. Whether the fields are
//!   under `data.data` (KV v2) or `data` is decided by the shim from the mount, as the Vault
//!   CLI does (`sys/internal/ui/mounts/PATH`), not from the path's spelling.
//! - `vault:PATH#KEY#VERSION` pins a KV v2 version (the shim refuses it on other mounts).
//! - `>>vault:PATH#KEY` and `>>vault:PATH#KEY#{"json":"body"}` *write* `PATH` (HTTP POST, body
//!   `{}` when none is given) and take field `KEY` of the response: requests that create a
//!   secret, such as `pki/issue/ROLE`.
//! - A `KEY` holding `${` and `}` is a template over the secret's fields (Bank-Vaults'
//!   `templater.IsGoTemplate`, vault-sdk `injector/vault/injector.go`), e.g.
//!   `vault:secret/data/app#${.user}:${.password}`: see [`key`].
//! - `vault:v1:BASE64` is transit ciphertext (vault-sdk `vault/transit.go`,
//!   `^vault:v\d+:.+$`), decrypted by the shim with `VAULT_TRANSIT_KEY_ID`.
//! - `bao:` and `>>bao:` are the same references under secret-init's OpenBao prefix; they
//!   share requests with the `vault:` spelling of the same path.
//! - `VAULT_TOKEN=vault:login` (`BAO_TOKEN=bao:login`) is not a reference but a request for
//!   the shim's own token: see [`is_login`].
//! - Every distinct [`Request`] (path plus version or body) is sent once, so the fields of
//!   one response, e.g. a certificate and its private key, or the username and password of
//!   one database lease, always belong together.
//! - A value is a whole reference when it starts with a prefix and holds no `${vault:` or
//!   `${bao:` template. Text with templates, e.g.
//!   `postgres://app:${vault:secret/data/db#password}@db:5432/app`, keeps its literal parts.
//! - Anything that looks like a reference but does not parse is an error: the shim fails
//!   closed rather than hand the application a half-resolved value.

pub mod key;

pub use key::KeyTemplate;

use std::fmt;

const PREFIXES: [&[u8]; 4] = [b"vault:", b">>vault:", b"bao:", b">>bao:"];
const OPEN: &[u8] = b"${";
/// What a transit ciphertext starts with (OpenBao keeps Vault's prefix).
const TRANSIT: &[u8] = b"vault:v";
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

/// How a reference is spelled: Bank-Vaults' `vault:` or secret-init's `bao:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Prefix {
    /// `vault:`.
    Vault,
    /// `bao:`.
    Bao,
}

impl Prefix {
    /// The prefix, colon included.
    pub fn as_str(self) -> &'static str {
        match self {
            Prefix::Vault => "vault:",
            Prefix::Bao => "bao:",
        }
    }
}

/// What a reference takes from its response.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// One field, by name.
    Field(String),
    /// A template over the fields.
    Template(KeyTemplate),
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Field(name) => f.write_str(name),
            Key::Template(template) => f.write_str(template.text()),
        }
    }
}

/// A reference: one field (or a template over the fields) of one request's response.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretRef {
    /// How it was spelled (for messages and canonical text; the request is the same).
    pub prefix: Prefix,
    /// The request whose response holds the field.
    pub request: Request,
    /// What to take from the response.
    pub key: Key,
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = self.prefix.as_str();
        match &self.request.operation {
            Operation::Read { version: None } => write!(f, "{prefix}{}#{}", self.request.path, self.key),
            Operation::Read { version: Some(v) } => {
                write!(f, "{prefix}{}#{}#{v}", self.request.path, self.key)
            }
            Operation::Write { body } => write!(f, ">>{prefix}{}#{}#{body}", self.request.path, self.key),
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
    /// Transit ciphertext (`vault:v1:...`), replaced by its plaintext.
    Transit(String),
}

/// A value with at least one reference, as a sequence of [`Part`]s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// The parts in order. Never empty, holds at least one [`Part::Ref`] or
    /// [`Part::Transit`], no empty literal and no two literals side by side.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The references in order of appearance.
    pub fn references(&self) -> impl Iterator<Item = &SecretRef> {
        self.parts.iter().filter_map(|part| match part {
            Part::Ref(r) => Some(r),
            Part::Literal(_) | Part::Transit(_) => None,
        })
    }

    /// The transit ciphertexts in order of appearance.
    pub fn ciphertexts(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            Part::Transit(c) => Some(c.as_str()),
            Part::Literal(_) | Part::Ref(_) => None,
        })
    }

    /// Whether the value is one reference or ciphertext and nothing else.
    pub fn is_whole(&self) -> bool {
        matches!(self.parts.as_slice(), [Part::Ref(_) | Part::Transit(_)])
    }

    /// The canonical text of this template; parsing it yields an equal template.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self.parts.as_slice() {
            [Part::Ref(r)] => return r.to_string().into_bytes(),
            [Part::Transit(c)] => return c.clone().into_bytes(),
            _ => {}
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
                Part::Transit(c) => {
                    out.extend_from_slice(OPEN);
                    out.extend_from_slice(c.as_bytes());
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
    /// A key template that does not parse.
    #[error("the key template is invalid: {0}")]
    BadTemplate(String),
    /// `vault:vN:` with nothing after it.
    #[error("the transit ciphertext is empty")]
    EmptyCiphertext,
    /// An empty entry in a comma-separated list of paths.
    #[error("an entry of the path list is empty")]
    EmptyEntry,
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
    starts_with_prefix(value) || template_start(value, 0).is_some()
}

fn starts_with_prefix(value: &[u8]) -> bool {
    PREFIXES.iter().any(|p| value.starts_with(p))
}

/// The name of the variable that may ask for the shim's own token, and the value that asks.
pub const LOGIN: [(&str, &[u8]); 2] = [("VAULT_TOKEN", b"vault:login"), ("BAO_TOKEN", b"bao:login")];

/// Whether `NAME=VALUE` asks for the shim's token: `VAULT_TOKEN=vault:login` (vault-env
/// `main.go`, vault-sdk `injector.go`: only under that name) or `BAO_TOKEN=bao:login`
/// (secret-init `pkg/provider/bao/config.go`). The application then receives the token the
/// shim logged in with, and the shim does not revoke it.
pub fn is_login(name: &[u8], value: &[u8]) -> bool {
    LOGIN.iter().any(|(n, v)| n.as_bytes() == name && *v == value)
}

/// Parses an environment value. `Ok(None)`: no reference, the value passes unchanged.
pub fn parse(value: &[u8]) -> Result<Option<Template>, ParseError> {
    if template_start(value, 0).is_some() {
        let mut parts = Vec::new();
        scan_text(value, |piece| {
            parts.push(match piece {
                Piece::Literal(bytes) => Part::Literal(bytes.to_vec()),
                Piece::Part(part) => part.into_owned(),
            })
        })?;
        return Ok(Some(Template { parts }));
    }
    if starts_with_prefix(value) {
        let part = scan_whole(value)?;
        return Ok(Some(Template { parts: vec![part.into_owned()] }));
    }
    Ok(None)
}

/// Whether `value` holds a reference, and an error where [`parse`] gives one (the same
/// error): `Ok(true)` where [`parse`] gives `Ok(Some(_))`. It keeps nothing, so it allocates
/// nothing for the common references (the webhook checks every literal env value this way).
pub fn check(value: &[u8]) -> Result<bool, ParseError> {
    if template_start(value, 0).is_some() {
        scan_text(value, |_| {})?;
        return Ok(true);
    }
    if starts_with_prefix(value) {
        scan_whole(value)?;
        return Ok(true);
    }
    Ok(false)
}

/// Parses `VAULT_ENV_FROM_PATH`: comma-separated `PATH[#VERSION]` (vault-sdk
/// `InjectSecretsFromVaultPath`), each a read request whose every field becomes a variable.
pub fn parse_from_path(value: &str) -> Result<Vec<Request>, ParseError> {
    let mut requests = Vec::new();
    let mut offset = 0;
    for entry in value.split(',') {
        let bytes = entry.as_bytes();
        if entry.trim().is_empty() {
            return Err(error(value.as_bytes(), offset, ErrorKind::EmptyEntry));
        }
        let mut scanner = Scanner { value: bytes, origin: 0, pos: 0, mode: Mode::Whole };
        let located = |mut e: ParseError| {
            e.offset += offset;
            e
        };
        let path = checked_utf8(scanner.path().map_err(located)?).to_owned();
        let version = if scanner.at_end() {
            None
        } else {
            scanner.pos += 1;
            Some(scanner.version().map_err(located)?)
        };
        requests.push(Request { path, operation: Operation::Read { version } });
        offset += entry.len() + 1;
    }
    Ok(requests)
}

/// The offset of the next `${vault:` or `${>>vault:` at or after `from`.
fn template_start(value: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(found) = find(&value[at..], OPEN) {
        let start = at + found;
        let rest = &value[start + OPEN.len()..];
        if starts_with_prefix(rest) {
            return Some(start);
        }
        at = start + 1;
    }
    None
}

/// The offset of the first `${` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    debug_assert_eq!(needle, OPEN);
    let mut at = 0;
    while let Some(found) = haystack[at..].iter().position(|&b| b == b'$') {
        let i = at + found;
        if haystack.get(i + 1) == Some(&b'{') {
            return Some(i);
        }
        at = i + 1;
    }
    None
}

/// A piece of a value as scanned, borrowing from it.
enum Piece<'a> {
    Literal(&'a [u8]),
    Part(Scanned<'a>),
}

/// A reference or ciphertext as scanned, borrowing from the value.
enum Scanned<'a> {
    /// `path` and a field `key` are checked UTF-8.
    Ref {
        prefix: Prefix,
        path: &'a [u8],
        key: ScannedKey<'a>,
        operation: ScannedOperation<'a>,
    },
    Transit(&'a str),
}

enum ScannedKey<'a> {
    Field(&'a [u8]),
    Template(KeyTemplate),
}

enum ScannedOperation<'a> {
    Read { version: Option<u64> },
    Write { body: &'a str },
}

impl Scanned<'_> {
    fn into_owned(self) -> Part {
        match self {
            Scanned::Transit(text) => Part::Transit(text.to_owned()),
            Scanned::Ref { prefix, path, key, operation } => Part::Ref(SecretRef {
                prefix,
                request: Request {
                    path: checked_utf8(path).to_owned(),
                    operation: match operation {
                        ScannedOperation::Read { version } => Operation::Read { version },
                        ScannedOperation::Write { body } => Operation::Write { body: body.to_owned() },
                    },
                },
                key: match key {
                    ScannedKey::Field(name) => Key::Field(checked_utf8(name).to_owned()),
                    ScannedKey::Template(template) => Key::Template(template),
                },
            }),
        }
    }
}

/// Text the scanner has checked to be UTF-8 (it was kept as bytes so that [`check`] need not
/// convert it).
fn checked_utf8(bytes: &[u8]) -> &str {
    // Invariant: the scanner keeps only text it has checked (ASCII, or converted).
    std::str::from_utf8(bytes).expect("the scanner checked this text")
}

/// Scans text holding `${…}` templates, handing each piece to `emit` in order.
fn scan_text<'a>(value: &'a [u8], mut emit: impl FnMut(Piece<'a>)) -> Result<(), ParseError> {
    let mut at = 0;
    while let Some(start) = template_start(value, at) {
        if start > at {
            emit(Piece::Literal(&value[at..start]));
        }
        let body_start = start + OPEN.len();
        let (part, end) = Scanner { value, origin: start, pos: body_start, mode: Mode::Template }.reference()?;
        if value.get(end) != Some(&b'}') {
            return Err(error(value, start, ErrorKind::Unterminated));
        }
        emit(Piece::Part(part));
        at = end + 1;
    }
    if at < value.len() {
        emit(Piece::Literal(&value[at..]));
    }
    Ok(())
}

fn scan_whole(value: &[u8]) -> Result<Scanned<'_>, ParseError> {
    let (part, end) = Scanner { value, origin: 0, pos: 0, mode: Mode::Whole }.reference()?;
    debug_assert_eq!(end, value.len(), "a whole reference extends to the end of the value");
    Ok(part)
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

impl<'a> Scanner<'a> {
    fn fail(&self, kind: ErrorKind) -> ParseError {
        error(self.value, self.origin, kind)
    }

    fn at_end(&self) -> bool {
        match self.mode {
            Mode::Whole => self.pos >= self.value.len(),
            Mode::Template => self.pos >= self.value.len() || self.value[self.pos] == b'}',
        }
    }

    /// Scans a reference or a ciphertext; returns it and the offset just past it.
    fn reference(mut self) -> Result<(Scanned<'a>, usize), ParseError> {
        let value = self.value;
        let rest = &value[self.pos..];
        if let Some(len) = transit_len(rest, self.mode) {
            let text = std::str::from_utf8(&rest[..len]).map_err(|_| self.fail(ErrorKind::NotUtf8("ciphertext")))?;
            if text.chars().any(char::is_control) {
                let c = text.chars().find(|c| c.is_control()).expect("found above");
                return Err(self.fail(ErrorKind::BadChar(c, "ciphertext")));
            }
            if text.split_once(':').and_then(|(_, r)| r.split_once(':')).is_some_and(|(_, data)| data.is_empty()) {
                return Err(self.fail(ErrorKind::EmptyCiphertext));
            }
            return Ok((Scanned::Transit(text), self.pos + len));
        }
        let write = rest.starts_with(b">>");
        let rest = if write { &rest[2..] } else { rest };
        let prefix = if rest.starts_with(b"bao:") { Prefix::Bao } else { Prefix::Vault };
        self.pos += usize::from(write) * 2 + prefix.as_str().len();
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
            if write { ScannedOperation::Write { body: "{}" } } else { ScannedOperation::Read { version: None } }
        } else {
            self.pos += 1; // the '#' that ended the key
            if write {
                ScannedOperation::Write { body: self.body()? }
            } else {
                ScannedOperation::Read { version: Some(self.version()?) }
            }
        };
        Ok((Scanned::Ref { prefix, path, key, operation }, self.pos))
    }

    fn path(&mut self) -> Result<&'a [u8], ParseError> {
        let begin = self.pos;
        let value = self.value;
        let template = self.mode == Mode::Template;
        // Up to the end, the `#` or, inside `${ }`, the closing brace (`at_end`).
        let len = value[begin..].iter().position(|&b| b == b'#' || (template && b == b'}'));
        self.pos = len.map_or(value.len(), |len| begin + len);
        // A path of printable ASCII whose segments are all allowed, the common case, needs
        // no conversion: the checks below would pass it unchanged.
        let raw = &value[begin..self.pos];
        let stripped = raw.strip_prefix(b"/").unwrap_or(raw);
        if !stripped.is_empty()
            && stripped.len() <= MAX_PATH_LEN
            && stripped.split(|&b| b == b'/').all(|segment| {
                !segment.is_empty()
                    && segment != b"."
                    && segment != b".."
                    && segment.iter().all(|&b| PATH_BYTES[usize::from(b)])
            })
        {
            return Ok(stripped);
        }
        let raw = std::str::from_utf8(&value[begin..self.pos]).map_err(|_| self.fail(ErrorKind::NotUtf8("path")))?;
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
        Ok(path.as_bytes())
    }

    fn key(&mut self) -> Result<ScannedKey<'a>, ParseError> {
        let begin = self.pos;
        let value = self.value;
        // A field of printable ASCII without `$` (so without a template action), the common
        // case, ends at the first `#` (or, inside `${ }`, `}`) and needs no further check.
        let template = self.mode == Mode::Template;
        let end = value[begin..]
            .iter()
            .position(|&b| b == b'#' || (template && b == b'}') || !(0x20..0x7f).contains(&b) || b == b'$');
        let end = end.map_or(value.len(), |len| begin + len);
        if end > begin && value.get(end).is_none_or(|&b| b == b'#' || b == b'}') {
            self.pos = end;
            return Ok(ScannedKey::Field(&value[begin..end]));
        }
        while !self.at_end() && self.value[self.pos] != b'#' {
            if self.value[self.pos..].starts_with(OPEN) {
                // A template action is one unit: a `}` or `#` inside it does not end the key.
                let len = key::action_len(&self.value[self.pos..])
                    .ok_or_else(|| self.fail(ErrorKind::BadTemplate("an action `${` has no closing `}`".into())))?;
                self.pos += len;
            } else {
                self.pos += 1;
            }
        }
        let key = std::str::from_utf8(&value[begin..self.pos]).map_err(|_| self.fail(ErrorKind::NotUtf8("key")))?;
        if key.is_empty() {
            return Err(self.fail(ErrorKind::EmptyKey));
        }
        if let Some(c) = key.chars().find(|&c| c.is_control()) {
            return Err(self.fail(ErrorKind::BadChar(c, "key")));
        }
        if key::is_template(key) {
            return key::parse(key)
                .map(ScannedKey::Template)
                .map_err(|reason| self.fail(ErrorKind::BadTemplate(reason)));
        }
        Ok(ScannedKey::Field(key.as_bytes()))
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

    fn body(&mut self) -> Result<&'a str, ParseError> {
        let begin = self.pos;
        self.pos = match self.mode {
            Mode::Whole => self.value.len(),
            Mode::Template => json_object_end(self.value, begin).ok_or_else(|| self.fail(ErrorKind::Unterminated))?,
        };
        let value = self.value;
        let text = std::str::from_utf8(&value[begin..self.pos]).map_err(|_| self.fail(ErrorKind::NotUtf8("body")))?;
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
            .map_err(|e| self.fail(ErrorKind::BadBody(e.to_string())))?;
        Ok(text)
    }
}

/// The length of the transit ciphertext at the start of `rest` (`vault:vN:...`, vault-sdk
/// `vault/transit.go`), up to the end of the value or, inside `${ }`, the closing brace.
fn transit_len(rest: &[u8], mode: Mode) -> Option<usize> {
    let after = rest.strip_prefix(TRANSIT)?;
    let digits = after.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || after.get(digits) != Some(&b':') {
        return None;
    }
    Some(match mode {
        Mode::Whole => rest.len(),
        Mode::Template => rest.iter().position(|&b| b == b'}').unwrap_or(rest.len()),
    })
}

/// [`is_path_char`] of each ASCII byte; false for the others (they are checked as text).
const PATH_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 128 {
        // Controls (whitespace below 0x20 included), space, DEL and the forbidden characters.
        table[b] = b > 0x20 && b != 0x7f && !matches!(b as u8, b'/' | b'#' | b'?' | b'%' | b'\\' | b'{' | b'}');
        b += 1;
    }
    table
};

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

//! Key templates: the `KEY` of a reference may be a template over the secret's fields, as in
//! Bank-Vaults, e.g. `vault:secret/data/app#${.user}:${.password}` or
//! `>>vault:transit/decrypt/k#${.plaintext | b64dec}#{"ciphertext":"..."}`.
//!
//! Bank-Vaults (vault-sdk `injector/vault/injector.go`) treats a key as a template when it
//! holds both `${` and `}` (`templater.IsGoTemplate`) and runs it through Go's
//! `text/template` with the delimiters `${` and `}` (`utils/templater/template.go`), the Sprig
//! functions and the secret's fields as the data. Hush parses the same syntax here, at
//! admission and at start, and evaluates it in the shim. It supports the part of that
//! language a key template needs:
//!
//! ```text
//! template = *( text / action )
//! action   = "${" pipeline "}"
//! pipeline = command *( "|" command )          ; the value of each command is the last
//!                                              ; argument of the next, as in Go
//! command  = operand / function *argument
//! argument = operand / "(" pipeline ")"
//! operand  = "." name                          ; a field of the secret, e.g. .password
//!          / "."                               ; the whole secret, only as `index`'s first argument
//!          / string                            ; "double-quoted" (Go escapes) or `raw`
//! ```
//!
//! The functions are the ones Bank-Vaults' documentation uses (`title`, `b64enc`, `b64dec`,
//! `urlquery`; bank-vaults.dev `docs/mutating-webhook/configuration.md` and vault-sdk's
//! `injector_test.go`) and the Sprig/Go string functions around them: see [`Func`]. Any other
//! function is refused when the reference is parsed, naming it, rather than failing at start.

use std::fmt;

/// A parsed key template. Its text is kept: it is the template's canonical spelling.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyTemplate {
    text: String,
    pieces: Vec<Piece>,
}

impl KeyTemplate {
    /// The template as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Literal text and actions, in order.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// Every field name the template reads (`.name` and `index . "name"`), in order.
    pub fn fields(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for piece in &self.pieces {
            if let Piece::Action(pipeline) = piece {
                pipeline.collect_fields(&mut out);
            }
        }
        out
    }
}

impl fmt::Display for KeyTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One piece of a key template.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Piece {
    /// Text copied as is.
    Text(String),
    /// `${ pipeline }`.
    Action(Pipeline),
}

/// Commands joined by `|`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pipeline(pub Vec<Command>);

impl Pipeline {
    fn collect_fields<'a>(&'a self, out: &mut Vec<&'a str>) {
        for command in &self.0 {
            match command {
                Command::Operand(arg) => arg.collect_fields(out),
                Command::Call(func, args) => {
                    if *func == Func::Index
                        && let [Arg::Dot, Arg::Str(name)] = args.as_slice()
                    {
                        out.push(name);
                    }
                    args.iter().for_each(|a| a.collect_fields(out));
                }
            }
        }
    }
}

/// One command of a pipeline.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Command {
    /// A value on its own, e.g. `.password`.
    Operand(Arg),
    /// A function and its written arguments (the piped value, if any, comes last).
    Call(Func, Vec<Arg>),
}

/// An argument.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arg {
    /// `.name`: a field of the secret.
    Field(String),
    /// `.`: the whole secret (only as the first argument of `index`).
    Dot,
    /// A string literal, unquoted.
    Str(String),
    /// `( pipeline )`.
    Sub(Pipeline),
}

impl Arg {
    fn collect_fields<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Arg::Field(name) => out.push(name),
            Arg::Sub(pipeline) => pipeline.collect_fields(out),
            Arg::Dot | Arg::Str(_) => {}
        }
    }
}

/// The functions a key template may call. Semantics follow Go's `text/template` builtins and
/// Sprig v3 (`strings.go`, `crypto`-free subset), which Bank-Vaults' templater installs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Func {
    /// Sprig `b64enc`: standard base64 with padding.
    B64enc,
    /// Sprig `b64dec`: standard base64 (Hush fails on bad input; Sprig returns the error text).
    B64dec,
    /// Sprig `title` (Go `strings.Title`): the first letter of each word in title case.
    Title,
    /// Sprig `upper`.
    Upper,
    /// Sprig `lower`.
    Lower,
    /// Sprig `trim` (`strings.TrimSpace`).
    Trim,
    /// Sprig `trimPrefix PREFIX S`.
    TrimPrefix,
    /// Sprig `trimSuffix SUFFIX S`.
    TrimSuffix,
    /// Sprig `trimAll CUTSET S` (`strings.Trim`).
    TrimAll,
    /// Sprig `replace OLD NEW S`.
    Replace,
    /// Sprig `quote`: each argument Go-quoted (`%q`), joined by spaces.
    Quote,
    /// Sprig `squote`: each argument in single quotes, joined by spaces.
    Squote,
    /// Go builtin `urlquery` (`url.QueryEscape` of the arguments joined).
    Urlquery,
    /// Go builtin `print`: the arguments joined (all are strings, so without spaces).
    Print,
    /// Go builtin `index . "name"`: a field whose name is not an identifier.
    Index,
}

impl Func {
    /// Every function, for error messages and tests.
    pub const ALL: &'static [Func] = &[
        Func::B64enc,
        Func::B64dec,
        Func::Title,
        Func::Upper,
        Func::Lower,
        Func::Trim,
        Func::TrimPrefix,
        Func::TrimSuffix,
        Func::TrimAll,
        Func::Replace,
        Func::Quote,
        Func::Squote,
        Func::Urlquery,
        Func::Print,
        Func::Index,
    ];

    /// The name templates use.
    pub fn name(self) -> &'static str {
        match self {
            Func::B64enc => "b64enc",
            Func::B64dec => "b64dec",
            Func::Title => "title",
            Func::Upper => "upper",
            Func::Lower => "lower",
            Func::Trim => "trim",
            Func::TrimPrefix => "trimPrefix",
            Func::TrimSuffix => "trimSuffix",
            Func::TrimAll => "trimAll",
            Func::Replace => "replace",
            Func::Quote => "quote",
            Func::Squote => "squote",
            Func::Urlquery => "urlquery",
            Func::Print => "print",
            Func::Index => "index",
        }
    }

    fn from_name(name: &str) -> Option<Func> {
        Func::ALL.iter().copied().find(|f| f.name() == name)
    }

    /// How many arguments it takes, piped one included: `(min, max)`.
    pub fn arity(self) -> (usize, usize) {
        match self {
            Func::B64enc | Func::B64dec | Func::Title | Func::Upper | Func::Lower | Func::Trim => (1, 1),
            Func::TrimPrefix | Func::TrimSuffix | Func::TrimAll | Func::Index => (2, 2),
            Func::Replace => (3, 3),
            Func::Quote | Func::Squote | Func::Urlquery => (1, usize::MAX),
            Func::Print => (0, usize::MAX),
        }
    }
}

/// Whether a key is a template: Bank-Vaults' `IsGoTemplate` (it holds `${` and `}`).
pub fn is_template(key: &str) -> bool {
    key.contains("${") && key.contains('}')
}

/// The length in bytes of the action starting at `value[0..2] == "${"`, closing brace
/// included: strings are skipped, so a `}` or `#` inside quotes does not end it. `None`
/// when it does not close.
pub fn action_len(value: &[u8]) -> Option<usize> {
    debug_assert!(value.starts_with(b"${"));
    let mut i = 2;
    while i < value.len() {
        match value[i] {
            b'}' => return Some(i + 1),
            b'"' => i = skip_string(value, i, b'"')?,
            b'`' => i = skip_string(value, i, b'`')?,
            _ => i += 1,
        }
    }
    None
}

/// The offset just past the string literal starting at `value[start] == quote`.
fn skip_string(value: &[u8], start: usize, quote: u8) -> Option<usize> {
    let mut i = start + 1;
    while i < value.len() {
        match value[i] {
            b'\\' if quote == b'"' => i += 2,
            b if b == quote => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Parses a key template; the error says what is wrong (never holds a secret: the template
/// is written in the manifest).
pub fn parse(text: &str) -> Result<KeyTemplate, String> {
    let bytes = text.as_bytes();
    let mut pieces = Vec::new();
    let mut at = 0;
    let mut literal = String::new();
    while at < bytes.len() {
        if bytes[at..].starts_with(b"${") {
            let len = action_len(&bytes[at..]).ok_or("an action `${` has no closing `}`")?;
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            let inner = &text[at + 2..at + len - 1];
            let mut parser = Parser { src: inner, pos: 0 };
            let pipeline = parser.pipeline()?;
            parser.skip_ws();
            if parser.pos != inner.len() {
                return Err(format!("unexpected `{}` in action `${{{inner}}}`", parser.rest_excerpt()));
            }
            check(&pipeline)?;
            pieces.push(Piece::Action(pipeline));
            at += len;
        } else {
            let c = text[at..].chars().next().expect("at < len");
            literal.push(c);
            at += c.len_utf8();
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    if !pieces.iter().any(|p| matches!(p, Piece::Action(_))) {
        return Err("no `${...}` action".into());
    }
    Ok(KeyTemplate { text: text.to_owned(), pieces })
}

/// Checks arities and where `.` may stand (a command after `|` gets the piped value last).
fn check(pipeline: &Pipeline) -> Result<(), String> {
    for (i, command) in pipeline.0.iter().enumerate() {
        let piped = usize::from(i > 0);
        match command {
            Command::Operand(arg) => {
                if i > 0 {
                    return Err("only a function can follow `|`".into());
                }
                check_arg(arg, false)?;
            }
            Command::Call(func, args) => {
                let (min, max) = func.arity();
                let n = args.len() + piped;
                if n < min || n > max {
                    let want = if min == max { format!("{min}") } else { format!("at least {min}") };
                    return Err(format!("`{}` takes {want} argument(s), not {n}", func.name()));
                }
                for (j, arg) in args.iter().enumerate() {
                    check_arg(arg, *func == Func::Index && j == 0)?;
                }
                if *func == Func::Index && !(matches!(args.first(), Some(Arg::Dot)) && piped == 0) {
                    return Err("`index` is only supported as `index . \"field\"`".into());
                }
            }
        }
    }
    Ok(())
}

fn check_arg(arg: &Arg, dot_allowed: bool) -> Result<(), String> {
    match arg {
        Arg::Dot if !dot_allowed => {
            Err("`.` is the whole secret; use `.field` or `index . \"field\"` for one field".into())
        }
        Arg::Sub(pipeline) => check(pipeline),
        _ => Ok(()),
    }
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn rest_excerpt(&self) -> String {
        self.rest().chars().take(20).collect()
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start_matches([' ', '\t', '\r', '\n']);
        self.pos = self.src.len() - trimmed.len();
    }

    fn pipeline(&mut self) -> Result<Pipeline, String> {
        let mut commands = vec![self.command()?];
        loop {
            self.skip_ws();
            if self.rest().starts_with('|') {
                self.pos += 1;
                commands.push(self.command()?);
            } else {
                return Ok(Pipeline(commands));
            }
        }
    }

    fn command(&mut self) -> Result<Command, String> {
        self.skip_ws();
        if let Some(name) = self.identifier() {
            let func = Func::from_name(name).ok_or_else(|| {
                let known: Vec<&str> = Func::ALL.iter().map(|f| f.name()).collect();
                format!("function `{name}` is not supported (supported: {})", known.join(", "))
            })?;
            let name = func.name();
            let mut args = Vec::new();
            loop {
                let before = self.pos;
                self.skip_ws();
                let rest = self.rest();
                if rest.is_empty() || rest.starts_with(['|', ')']) {
                    return Ok(Command::Call(func, args));
                }
                if self.pos == before {
                    // Arguments are separated by spaces; anything else glued on is an error.
                    return Err(format!("unexpected `{}` after `{name}`", self.rest_excerpt()));
                }
                args.push(self.arg()?);
            }
        }
        if self.rest().is_empty() {
            return Err("an empty command".into());
        }
        Ok(Command::Operand(self.arg()?))
    }

    fn identifier(&mut self) -> Option<&str> {
        let rest = self.rest();
        let first = rest.chars().next()?;
        if !(first.is_ascii_alphabetic() || first == '_') {
            return None;
        }
        let len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        let start = self.pos;
        self.pos += len;
        Some(&self.src[start..start + len])
    }

    fn arg(&mut self) -> Result<Arg, String> {
        let rest = self.rest();
        match rest.chars().next() {
            Some('.') => {
                self.pos += 1;
                let rest = self.rest();
                let len = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
                if len == 0 {
                    return Ok(Arg::Dot);
                }
                let name = rest[..len].to_owned();
                if name.starts_with(|c: char| c.is_ascii_digit()) {
                    return Err(format!("`.{name}` is not a field name; use `index . \"{name}\"`"));
                }
                self.pos += len;
                if self.rest().starts_with('.') {
                    return Err(format!("nested fields (`.{name}.…`) are not supported"));
                }
                Ok(Arg::Field(name))
            }
            Some('"') => {
                let end = skip_string(rest.as_bytes(), 0, b'"').ok_or("a string has no closing quote")?;
                let literal = unquote(&rest[..end])?;
                self.pos += end;
                Ok(Arg::Str(literal))
            }
            Some('`') => {
                let end = skip_string(rest.as_bytes(), 0, b'`').ok_or("a raw string has no closing `")?;
                let literal = rest[1..end - 1].to_owned();
                self.pos += end;
                Ok(Arg::Str(literal))
            }
            Some('(') => {
                self.pos += 1;
                let pipeline = self.pipeline()?;
                self.skip_ws();
                if !self.rest().starts_with(')') {
                    return Err("a `(` has no closing `)`".into());
                }
                self.pos += 1;
                Ok(Arg::Sub(pipeline))
            }
            Some(_) if self.identifier_ahead() => {
                Err(format!("`{}`: a function call as an argument needs parentheses", self.rest_excerpt()))
            }
            Some(_) => Err(format!("unexpected `{}`", self.rest_excerpt())),
            None => Err("an argument is missing".into()),
        }
    }

    fn identifier_ahead(&self) -> bool {
        self.rest().starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
    }
}

/// A Go interpreted string literal, quotes included, to its value.
fn unquote(quoted: &str) -> Result<String, String> {
    let inner = &quoted[1..quoted.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            if c == '\n' {
                return Err("a newline in a string".into());
            }
            out.push(c);
            continue;
        }
        let escaped = match chars.next() {
            Some('n') => '\n',
            Some('t') => '\t',
            Some('r') => '\r',
            Some('\\') => '\\',
            Some('"') => '"',
            Some('\'') => '\'',
            Some('a') => '\u{7}',
            Some('b') => '\u{8}',
            Some('f') => '\u{c}',
            Some('v') => '\u{b}',
            Some(c @ ('x' | 'u' | 'U')) => {
                let digits = match c {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex: String = chars.by_ref().take(digits).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == digits)
                    .ok_or_else(|| format!("bad escape `\\{c}{hex}`"))?;
                char::from_u32(code).ok_or_else(|| format!("bad escape `\\{c}{hex}`"))?
            }
            other => return Err(format!("unknown escape `\\{}`", other.map(String::from).unwrap_or_default())),
        };
        out.push(escaped);
    }
    Ok(out)
}

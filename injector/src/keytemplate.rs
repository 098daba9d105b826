//! Evaluates key templates (`vault:PATH#${.user}:${.password}`) over one response's fields.
//! Pure. Every intermediate value lives in a [`Zeroizing`] buffer; errors name fields and
//! functions, never values.
//!
//! Semantics follow Bank-Vaults' templater (vault-sdk `utils/templater/template.go`: Go
//! `text/template` with Sprig v3), with one deliberate difference: a field the secret does
//! not have is an error (Go prints `<no value>` and the application would start with it).

use crate::secret::Fields;
use base64::Engine as _;
use hush_contract::reference::key::{Arg, Command, Func, KeyTemplate, Piece, Pipeline};
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

type Value = Zeroizing<Vec<u8>>;

/// Why a template could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// The template reads a field the secret does not have.
    #[error("the secret has no field `{0}`")]
    MissingField(String),
    /// A function failed (its input is not shown: it may be secret).
    #[error("`{func}` failed: {reason}")]
    Function {
        /// The function.
        func: &'static str,
        /// Why, without the input.
        reason: &'static str,
    },
}

/// The template's value over `fields`.
pub fn evaluate(template: &KeyTemplate, fields: &Fields) -> Result<Value, EvalError> {
    let mut out = Zeroizing::new(Vec::new());
    let mut parts: Vec<Value> = Vec::with_capacity(template.pieces().len());
    for piece in template.pieces() {
        parts.push(match piece {
            Piece::Text(text) => Zeroizing::new(text.as_bytes().to_vec()),
            Piece::Action(pipeline) => pipe(pipeline, fields)?,
        });
    }
    // Sized once: growing would free a copy without wiping it.
    out.reserve_exact(parts.iter().map(|p| p.len()).sum());
    for part in &parts {
        out.extend_from_slice(part);
    }
    Ok(out)
}

fn pipe(pipeline: &Pipeline, fields: &Fields) -> Result<Value, EvalError> {
    let mut carried: Option<Value> = None;
    for command in &pipeline.0 {
        carried = Some(match command {
            Command::Operand(arg) => arg_value(arg, fields)?,
            Command::Call(func, args) => {
                let mut values = Vec::with_capacity(args.len() + 1);
                if *func == Func::Index {
                    // `index . "name"`: checked at parse time to be exactly this.
                    if let [Arg::Dot, Arg::Str(name)] = args.as_slice() {
                        values.push(field(name, fields)?);
                    }
                } else {
                    for arg in args {
                        values.push(arg_value(arg, fields)?);
                    }
                }
                values.extend(carried.take());
                call(*func, values)?
            }
        });
    }
    Ok(carried.unwrap_or_default())
}

fn arg_value(arg: &Arg, fields: &Fields) -> Result<Value, EvalError> {
    match arg {
        Arg::Field(name) => field(name, fields),
        Arg::Str(text) => Ok(Zeroizing::new(text.as_bytes().to_vec())),
        Arg::Sub(pipeline) => pipe(pipeline, fields),
        // Refused by the parser outside `index . "name"`.
        Arg::Dot => Err(EvalError::Function { func: "index", reason: "`.` is not a string" }),
    }
}

fn field(name: &str, fields: &Fields) -> Result<Value, EvalError> {
    fields
        .get(name)
        .map(|secret| Zeroizing::new(secret.expose_secret().as_bytes().to_vec()))
        .ok_or_else(|| EvalError::MissingField(name.to_owned()))
}

fn call(func: Func, mut args: Vec<Value>) -> Result<Value, EvalError> {
    let last = |args: &mut Vec<Value>| args.pop().unwrap_or_default();
    Ok(match func {
        Func::B64enc => {
            let input = last(&mut args);
            let mut out = Zeroizing::new(vec![0; base64::encoded_len(input.len(), true).unwrap_or(0)]);
            let n = base64::engine::general_purpose::STANDARD
                .encode_slice(&*input, &mut out)
                .map_err(|_| EvalError::Function { func: "b64enc", reason: "the input is too long" })?;
            out.truncate(n);
            out
        }
        Func::B64dec => {
            let input = last(&mut args);
            let mut out = Zeroizing::new(vec![0; input.len() / 4 * 3 + 3]);
            let n = base64::engine::general_purpose::STANDARD
                .decode_slice(&*input, &mut out)
                .map_err(|_| EvalError::Function { func: "b64dec", reason: "the input is not standard base64" })?;
            out.truncate(n);
            out
        }
        Func::Title => map_text(&last(&mut args), title),
        Func::Upper => map_text(&last(&mut args), |s, out| s.chars().for_each(|c| out.push(simple_case(c, true)))),
        Func::Lower => map_text(&last(&mut args), |s, out| s.chars().for_each(|c| out.push(simple_case(c, false)))),
        Func::Trim => map_text(&last(&mut args), |s, out| out.push_str(s.trim_matches(is_go_space))),
        Func::TrimPrefix => {
            let (s, prefix) = (last(&mut args), last(&mut args));
            Zeroizing::new(s.strip_prefix(prefix.as_slice()).unwrap_or(&s).to_vec())
        }
        Func::TrimSuffix => {
            let (s, suffix) = (last(&mut args), last(&mut args));
            Zeroizing::new(s.strip_suffix(suffix.as_slice()).unwrap_or(&s).to_vec())
        }
        Func::TrimAll => {
            let (s, cutset) = (last(&mut args), last(&mut args));
            let cutset = lossy(&cutset);
            map_text(&s, |s, out| out.push_str(s.trim_matches(|c| cutset.contains(c))))
        }
        Func::Replace => {
            let (s, new, old) = (last(&mut args), last(&mut args), last(&mut args));
            replace(&s, &old, &new)
        }
        Func::Quote => join(args.iter().map(|a| go_quote(a))),
        Func::Squote => join(args.iter().map(|a| {
            let mut q = Zeroizing::new(Vec::with_capacity(a.len() + 2));
            q.push(b'\'');
            q.extend_from_slice(a);
            q.push(b'\'');
            q
        })),
        Func::Urlquery => query_escape(&concat(&args)),
        Func::Print => concat(&args),
        Func::Index => last(&mut args),
    })
}

fn concat(args: &[Value]) -> Value {
    let mut out = Zeroizing::new(Vec::with_capacity(args.iter().map(|a| a.len()).sum()));
    args.iter().for_each(|a| out.extend_from_slice(a));
    out
}

fn join(items: impl Iterator<Item = Value>) -> Value {
    let items: Vec<Value> = items.collect();
    let mut out = Zeroizing::new(Vec::with_capacity(items.iter().map(|i| i.len() + 1).sum()));
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(item);
    }
    out
}

/// Applies a text function; invalid UTF-8 is read as U+FFFD, as Go's string functions do.
/// Buffers are sized once: a growing `String` would free copies of the secret unwiped.
fn map_text(input: &[u8], f: impl Fn(&str, &mut String)) -> Value {
    let text = lossy(input);
    // A rune's case mapping is at most 3 bytes longer per 2 (and U+FFFD is 3 bytes for 1).
    let mut out = Zeroizing::new(String::with_capacity(text.len() * 2 + 4));
    f(&text, &mut out);
    Zeroizing::new(std::mem::take(&mut *out).into_bytes())
}

/// `String::from_utf8_lossy` into a buffer sized once and wiped on drop.
fn lossy(input: &[u8]) -> Zeroizing<String> {
    let mut text = Zeroizing::new(String::with_capacity(input.len() * 3));
    for chunk in input.utf8_chunks() {
        text.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            text.push('\u{fffd}');
        }
    }
    text
}

/// Go's `unicode.ToUpper`/`ToLower` map one rune to one rune; Rust's full mappings may give
/// several (ß → SS), in which case the rune is kept, as Go keeps it. No allocation.
fn simple_case(c: char, upper: bool) -> char {
    fn single(mut it: impl Iterator<Item = char>, c: char) -> char {
        match (it.next(), it.next()) {
            (Some(mapped), None) => mapped,
            _ => c,
        }
    }
    if upper { single(c.to_uppercase(), c) } else { single(c.to_lowercase(), c) }
}

/// Go's `strings.Title`: a letter after a separator is upper-cased.
fn title(s: &str, out: &mut String) {
    let mut prev = ' ';
    for c in s.chars() {
        out.push(if is_separator(prev) { simple_case(c, true) } else { c });
        prev = c;
    }
}

/// Go's `strings.isSeparator`.
fn is_separator(c: char) -> bool {
    if c.is_ascii() {
        return !(c.is_ascii_alphanumeric() || c == '_');
    }
    if c.is_alphanumeric() {
        return false;
    }
    c.is_whitespace()
}

fn is_go_space(c: char) -> bool {
    c.is_whitespace()
}

/// Go's `strings.Replace(s, old, new, -1)`, on bytes; an empty `old` inserts `new` before
/// every rune and at the end.
fn replace(s: &[u8], old: &[u8], new: &[u8]) -> Value {
    let mut out = Zeroizing::new(Vec::new());
    if old.is_empty() {
        let text = lossy(s);
        let runes = text.chars().count();
        out.reserve_exact(s.len() + new.len() * (runes + 1) + 3 * runes);
        for c in text.chars() {
            out.extend_from_slice(new);
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
        out.extend_from_slice(new);
        return out;
    }
    let count = s.windows(old.len()).filter(|w| *w == old).count();
    out.reserve_exact(s.len() + count * new.len());
    let mut at = 0;
    while at < s.len() {
        if s[at..].starts_with(old) {
            out.extend_from_slice(new);
            at += old.len();
        } else {
            out.push(s[at]);
            at += 1;
        }
    }
    out
}

/// Go's `strconv.Quote` (what `%q` gives for a string).
fn go_quote(s: &[u8]) -> Value {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let text = lossy(s);
    // At most 10 bytes (\UXXXXXXXX) for a 4-byte rune, 4 (\xXX) for a 1-byte one.
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() * 4 + 2));
    out.push(b'"');
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{7}' => out.extend_from_slice(b"\\a"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{b}' => out.extend_from_slice(b"\\v"),
            c if c.is_control() => {
                // Hex digits pushed one by one: no formatted String holds them.
                let code = c as u32;
                // strconv's appendEscapedRune: \x below space and for DEL, else \u / \U.
                let (lead, digits): (&[u8], u32) = match code {
                    0..=0x1f | 0x7f => (b"\\x", 2),
                    0x80..=0xffff => (b"\\u", 4),
                    _ => (b"\\U", 8),
                };
                out.extend_from_slice(lead);
                for i in (0..digits).rev() {
                    out.push(HEX[((code >> (4 * i)) & 15) as usize]);
                }
            }
            c => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
    out
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &[u8]) -> Value {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Zeroizing::new(Vec::with_capacity(s.len() * 3));
    for &b in s {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b),
            b' ' => out.push(b'+'),
            _ => out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::parse_response;
    use hush_contract::reference::key::parse;

    fn fields(json: &str) -> Fields {
        parse_response(format!(r#"{{"data":{json}}}"#).as_bytes(), crate::secret::Layout::Flat).unwrap().fields.unwrap()
    }

    fn eval(template: &str, json: &str) -> Result<String, EvalError> {
        evaluate(&parse(template).unwrap(), &fields(json)).map(|v| String::from_utf8(v.to_vec()).unwrap())
    }

    #[test]
    fn bank_vaults_documented_templates() {
        // bank-vaults.dev docs/mutating-webhook/configuration.md
        assert_eq!(
            eval("AWS key in base64: ${.AWS_ACCESS_KEY_ID | b64enc}", r#"{"AWS_ACCESS_KEY_ID":"AKIA"}"#).unwrap(),
            "AWS key in base64: QUtJQQ=="
        );
        assert_eq!(
            eval("My username on DockerHub is: ${title .DOCKER_USERNAME}", r#"{"DOCKER_USERNAME":"jane doe-x"}"#)
                .unwrap(),
            "My username on DockerHub is: Jane Doe-X"
        );
        // vault-sdk injector_test.go: TRANSIT_SECRET and INLINE_SECRET_EMBEDDED_TEMPLATE
        assert_eq!(eval("${.plaintext | b64dec}", r#"{"plaintext":"c2VjcmV0"}"#).unwrap(), "secret");
        assert_eq!(eval("${.password | urlquery}", r#"{"password":"a b/c&d"}"#).unwrap(), "a+b%2Fc%26d");
        assert_eq!(eval("${.user}:${.password}", r#"{"user":"u","password":"p"}"#).unwrap(), "u:p");
    }

    #[test]
    fn sprig_string_functions() {
        let data = r#"{"s":"  Hello, wörld  ","k":"a-b-c","n":5432}"#;
        assert_eq!(eval("${upper .s}", data).unwrap(), "  HELLO, WÖRLD  ");
        assert_eq!(eval("${.s | lower | trim}", data).unwrap(), "hello, wörld");
        assert_eq!(eval(r#"${replace "-" "_" .k}"#, data).unwrap(), "a_b_c");
        assert_eq!(eval(r#"${.k | replace "-" ""}"#, data).unwrap(), "abc");
        assert_eq!(eval(r#"${trimPrefix "a-" .k}${trimSuffix "-c" .k}"#, data).unwrap(), "b-ca-b");
        assert_eq!(eval(r#"${trimAll "ac-" .k}"#, data).unwrap(), "b");
        assert_eq!(eval(r#"${quote .k "x\"y\n"}"#, data).unwrap(), r#""a-b-c" "x\"y\n""#);
        assert_eq!(eval("${squote .k}", data).unwrap(), "'a-b-c'");
        assert_eq!(eval(r#"${print .k ":" .n}"#, data).unwrap(), "a-b-c:5432");
        assert_eq!(eval(r#"${index . "k" | upper}"#, data).unwrap(), "A-B-C");
        assert_eq!(eval("${(trim .s) | b64enc | b64dec}", data).unwrap(), "Hello, wörld");
        assert_eq!(eval(r#"${replace "" "." "ab"}"#, data).unwrap(), ".a.b.");
        assert_eq!(eval("${title \"ß-straße\"}", data).unwrap(), "ß-Straße");
        assert_eq!(eval(r#"${quote "\u0001é\u0085"}"#, data).unwrap(), r#""\x01é\u0085""#);
    }

    #[test]
    fn failures_name_the_field_or_function_never_the_value() {
        let data = r#"{"k":"not base64 s3cr3t!"}"#;
        assert_eq!(eval("${.missing}", data), Err(EvalError::MissingField("missing".into())));
        assert_eq!(eval(r#"${index . "gone"}"#, data), Err(EvalError::MissingField("gone".into())));
        let err = eval("${.k | b64dec}", data).unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
        assert_eq!(err.to_string(), "`b64dec` failed: the input is not standard base64");
    }
}

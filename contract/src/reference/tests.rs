use super::*;
use proptest::prelude::*;

fn read(path: &str, key: &str, version: Option<u64>) -> SecretRef {
    SecretRef {
        prefix: Prefix::Vault,
        request: Request { path: path.into(), operation: Operation::Read { version } },
        key: Key::Field(key.into()),
    }
}

fn write(path: &str, key: &str, body: &str) -> SecretRef {
    SecretRef {
        prefix: Prefix::Vault,
        request: Request { path: path.into(), operation: Operation::Write { body: body.into() } },
        key: Key::Field(key.into()),
    }
}

fn bao(mut r: SecretRef) -> SecretRef {
    r.prefix = Prefix::Bao;
    r
}

fn templated(mut r: SecretRef, template: &str) -> SecretRef {
    r.key = Key::Template(key::parse(template).expect("template parses"));
    r
}

fn parts(value: &str) -> Vec<Part> {
    parse(value.as_bytes()).expect("parses").expect("has a reference").parts().to_vec()
}

fn kind(value: &str) -> ErrorKind {
    parse(value.as_bytes()).expect_err("must not parse").kind
}

#[test]
fn values_without_references_pass() {
    for value in
        ["", "plain", "vault", "VAULT:x#y", "${VAULT_ADDR}", "$(vault:x#y)", "a vault:x#y", "${vault", "${ vault:x#y}"]
    {
        assert_eq!(parse(value.as_bytes()), Ok(None), "{value}");
        assert!(!may_hold_reference(value.as_bytes()), "{value}");
    }
    assert_eq!(parse(b"\xff\xfe${not}"), Ok(None));
}

#[test]
fn whole_references() {
    assert_eq!(parts("vault:secret/data/app#password"), [Part::Ref(read("secret/data/app", "password", None))]);
    assert_eq!(parts("vault:secret/data/app#password#3"), [Part::Ref(read("secret/data/app", "password", Some(3)))]);
    assert_eq!(parts("vault:kv1/app#api key"), [Part::Ref(read("kv1/app", "api key", None))]);
    assert_eq!(parts("vault:/secret/data/app#k"), [Part::Ref(read("secret/data/app", "k", None))]);
    assert_eq!(parts("vault:database/creds/app#username"), [Part::Ref(read("database/creds/app", "username", None))]);
}

#[test]
fn write_references_default_to_an_empty_body() {
    assert_eq!(
        parts(">>vault:database/creds/app#password"),
        [Part::Ref(write("database/creds/app", "password", "{}"))]
    );
    assert_eq!(
        parts(r#">>vault:pki/issue/web#certificate#{"common_name":"a.example.com","ttl":"1h#2"}"#),
        [Part::Ref(write("pki/issue/web", "certificate", r#"{"common_name":"a.example.com","ttl":"1h#2"}"#))]
    );
}

#[test]
fn templates_keep_their_literal_parts() {
    assert_eq!(
        parts("postgres://u:${vault:secret/data/db#password}@db:5432/app"),
        [
            Part::Literal(b"postgres://u:".to_vec()),
            Part::Ref(read("secret/data/db", "password", None)),
            Part::Literal(b"@db:5432/app".to_vec()),
        ]
    );
    assert_eq!(
        parts("${vault:a/b#u}:${>>vault:c/d#p#{\"x\":\"}\"}}${vault:s/data/e#k#2}"),
        [
            Part::Ref(read("a/b", "u", None)),
            Part::Literal(b":".to_vec()),
            Part::Ref(write("c/d", "p", "{\"x\":\"}\"}")),
            Part::Ref(read("s/data/e", "k", Some(2))),
        ]
    );
    // A leading `vault:` is literal text once the value uses templates.
    assert_eq!(parts("vault:${vault:a/b#k}")[0], Part::Literal(b"vault:".to_vec()));
}

#[test]
fn templates_pass_non_utf8_literals_byte_for_byte() {
    let value = b"\xff\x00${vault:a/b#k}\xc3";
    let template = parse(value).unwrap().unwrap();
    assert_eq!(template.parts()[0], Part::Literal(b"\xff\x00".to_vec()));
    assert_eq!(template.parts()[2], Part::Literal(b"\xc3".to_vec()));
}

#[test]
fn malformed_references_fail_closed() {
    assert_eq!(kind("vault:secret/data/app"), ErrorKind::MissingKey);
    assert_eq!(kind("vault:"), ErrorKind::EmptyPath);
    assert_eq!(kind("vault:#k"), ErrorKind::EmptyPath);
    assert_eq!(kind("vault:a/b#"), ErrorKind::EmptyKey);
    assert_eq!(kind("vault:a//b#k"), ErrorKind::BadSegment(String::new()));
    assert_eq!(kind("vault:a/../sys#k"), ErrorKind::BadSegment("..".into()));
    assert_eq!(kind("vault:a/b/#k"), ErrorKind::BadSegment(String::new()));
    assert_eq!(kind("vault:a b#k"), ErrorKind::BadChar(' ', "path"));
    assert_eq!(kind("vault:a?x=1#k"), ErrorKind::BadChar('?', "path"));
    assert_eq!(kind("vault:a/data/b#k#0"), ErrorKind::BadVersion);
    assert_eq!(kind("vault:a/data/b#k#-1"), ErrorKind::BadVersion);
    assert_eq!(kind("vault:a/data/b#k#"), ErrorKind::BadVersion);
    assert_eq!(kind("vault:a/data/b#k#99999999999999999999999"), ErrorKind::BadVersion);
    assert_eq!(kind("vault:a/b#k\n"), ErrorKind::BadChar('\n', "key"));
    assert!(matches!(kind(">>vault:a/b#k#[1]"), ErrorKind::BadBody(_)));
    assert!(matches!(kind(">>vault:a/b#k#"), ErrorKind::BadBody(_)));
    assert_eq!(kind("x${vault:a/b#k"), ErrorKind::Unterminated);
    assert_eq!(kind("x${vault:a/b"), ErrorKind::Unterminated);
    assert_eq!(kind("x${vault:a/b}"), ErrorKind::MissingKey);
    assert_eq!(kind("x${>>vault:a/b#k#{\"a\":1}"), ErrorKind::Unterminated);
    assert_eq!(kind("x${vault:a/data/b#k#1"), ErrorKind::Unterminated);
    assert_eq!(kind("vault:a\u{ff}\u{0}#k"), ErrorKind::BadChar('\u{0}', "path"));
    assert_eq!(parse(b"vault:a\xff#k").unwrap_err().kind, ErrorKind::NotUtf8("path"));
    assert_eq!(kind(&format!("vault:{}#k", "a".repeat(1025))), ErrorKind::PathTooLong);
}

#[test]
fn errors_name_the_reference_and_offset() {
    let err = parse(b"url=${vault:a/b}").unwrap_err();
    assert_eq!(err.offset, 4);
    assert_eq!(err.to_string(), "invalid Vault reference `${vault:a/b}`: no `#KEY` after the path");
    let long = format!("vault:{}", "x".repeat(200));
    assert!(parse(long.as_bytes()).unwrap_err().excerpt.chars().count() <= 81);
}

#[test]
fn a_version_pin_is_not_judged_by_the_path() {
    // KV v2 is known from the mount at run time (the shim asks sys/internal/ui/mounts),
    // so a KV v2 mount without a `data` segment in its name is not refused here.
    assert_eq!(parts("vault:kv/b#k#2"), [Part::Ref(read("kv/b", "k", Some(2)))]);
}

// --- Bank-Vaults forms (issue 11 point 5). Each case cites where Bank-Vaults spells it.

#[test]
fn transit_ciphertext_is_its_own_part() {
    // bank-vaults.dev docs/mutating-webhook/transit-encryption.md; vault-sdk vault/transit.go
    // `^vault:v\d+:.+$`.
    let c = "vault:v1:8SDd3WHDOjf7mq69CyCqYjBXAiQQAVZRkFM13ok481zoCmHnSeDX9vyf7w==";
    assert_eq!(parts(c), [Part::Transit(c.into())]);
    assert_eq!(
        parts(&format!("k=${{{c}}};")),
        [Part::Literal(b"k=".to_vec()), Part::Transit(c.into()), Part::Literal(b";".to_vec())]
    );
    assert_eq!(parts("vault:v12:a/b+c="), [Part::Transit("vault:v12:a/b+c=".into())]);
    assert_eq!(kind("vault:v1:"), ErrorKind::EmptyCiphertext);
    assert_eq!(kind("x${vault:v1:abc"), ErrorKind::Unterminated);
    // Not ciphertext: no digits, or not the vault: prefix (bao injector's IsEncrypted only
    // matches vault:).
    assert_eq!(kind("vault:vx:abc"), ErrorKind::MissingKey);
    assert_eq!(kind("bao:v1:abc"), ErrorKind::MissingKey);
    let template = parse(c.as_bytes()).unwrap().unwrap();
    assert_eq!(template.ciphertexts().collect::<Vec<_>>(), [c]);
    assert_eq!(template.references().count(), 0);
}

#[test]
fn bao_prefix_is_the_same_request() {
    // secret-init pkg/provider/bao/bao.go `(bao:)(.*)#(.*)`; vault-sdk injector/bao/injector.go.
    assert_eq!(parts("bao:secret/data/app#password"), [Part::Ref(bao(read("secret/data/app", "password", None)))]);
    assert_eq!(parts(">>bao:pki/issue/web#certificate"), [Part::Ref(bao(write("pki/issue/web", "certificate", "{}")))]);
    assert_eq!(parts("u=${bao:kv/a#u}"), [Part::Literal(b"u=".to_vec()), Part::Ref(bao(read("kv/a", "u", None)))]);
    let both = parse(b"${vault:kv/a#u}${bao:kv/a#p}").unwrap().unwrap();
    let requests: std::collections::BTreeSet<_> = both.references().map(|r| &r.request).collect();
    assert_eq!(requests.len(), 1, "one request for both spellings");
    assert!(may_hold_reference(b"bao:x#y") && may_hold_reference(b">>bao:x#y") && may_hold_reference(b"a${bao:x#y}"));
}

#[test]
fn login_is_only_under_the_token_variable() {
    // vault-env main.go `vaultLogin`; vault-sdk injector.go: `name == "VAULT_TOKEN" && valuePath == "login"`.
    assert!(is_login(b"VAULT_TOKEN", b"vault:login"));
    assert!(is_login(b"BAO_TOKEN", b"bao:login"));
    assert!(!is_login(b"TOKEN", b"vault:login"));
    assert!(!is_login(b"VAULT_TOKEN", b"bao:login"));
    // Under any other name it is a reference without a key, as Bank-Vaults says
    // ("secret data key or template not defined").
    assert_eq!(kind("vault:login"), ErrorKind::MissingKey);
}

#[test]
fn key_templates() {
    // bank-vaults.dev docs/mutating-webhook/configuration.md and vault-sdk injector_test.go.
    let t = "AWS key in base64: ${.AWS_ACCESS_KEY_ID | b64enc}";
    assert_eq!(
        parts(&format!("vault:secret/data/accounts/aws#{t}")),
        [Part::Ref(templated(read("secret/data/accounts/aws", "", None), t))]
    );
    let t = "${.plaintext | b64dec}";
    let body = r#"{"ciphertext":"vault:v1:/DupSiSbX/ATkGmKAmhqD0tvukByrx6gmps7dVI="}"#;
    assert_eq!(
        parts(&format!(">>vault:transit/decrypt/mykey#{t}#{body}")),
        [Part::Ref(templated(write("transit/decrypt/mykey", "", body), t))]
    );
    let t = "My username on DockerHub is: ${title .DOCKER_USERNAME}";
    assert_eq!(
        parts(&format!("vault:secret/data/accounts/dockerhub#{t}")),
        [Part::Ref(templated(read("secret/data/accounts/dockerhub", "", None), t))]
    );
    // Inline, with an embedded template (injector_test.go INLINE_SECRET_EMBEDDED_TEMPLATE),
    // and with two actions, which Bank-Vaults' regex cannot split but Hush can.
    let v = "scheme://${vault:secret/data/account#username}:${vault:secret/data/account#${.password | urlquery}}@h";
    let p = parts(v);
    assert_eq!(p[3], Part::Ref(templated(read("secret/data/account", "", None), "${.password | urlquery}")));
    assert_eq!(p[4], Part::Literal(b"@h".to_vec()));
    let p = parts("x=${vault:kv/a#${.u}:${.p}#3};");
    assert_eq!(p[1], Part::Ref(templated(read("kv/a", "", Some(3)), "${.u}:${.p}")));
    // A `}` or `#` inside a string in an action does not end the key.
    let p = parts(r##"vault:kv/a#${replace "#" "}" .k}"##);
    assert!(matches!(&p[0], Part::Ref(SecretRef { key: Key::Template(_), .. })));
    // A plain key may hold `}` outside templates (not a template: no `${`).
    assert_eq!(parts("vault:kv/a#we}rd"), [Part::Ref(read("kv/a", "we}rd", None))]);
}

#[test]
fn bad_key_templates_name_the_problem() {
    let reason = |v: &str| match kind(v) {
        ErrorKind::BadTemplate(reason) => reason,
        other => panic!("{v}: {other:?}"),
    };
    assert!(reason("vault:kv/a#${sha512sum .k}").contains("function `sha512sum` is not supported"));
    assert!(reason("vault:kv/a#${.k").contains("no closing"));
    assert!(reason("vault:kv/a#${b64dec}").contains("takes 1 argument"));
    assert!(reason("vault:kv/a#${.k | .j}").contains("only a function"));
    assert!(reason("vault:kv/a#${title .}").contains("whole secret"));
    assert!(reason("vault:kv/a#${.a.b}").contains("nested"));
    assert!(reason("vault:kv/a#${}").contains("empty"));
    assert!(reason(r#"vault:kv/a#${replace "a" .k}"#).contains("takes 3"));
    assert!(reason("vault:kv/a#${title .k extra}").contains("parentheses"));
}

#[test]
fn key_template_syntax() {
    use key::{Arg, Command, Func, Piece, Pipeline};
    let t = key::parse(r#"a${ index . "api-key" | upper }b${print .x "\t\u00e9" `r\w`}${(trim .y) | quote}"#).unwrap();
    assert_eq!(t.fields(), ["api-key", "x", "y"]);
    assert_eq!(
        t.pieces()[1],
        Piece::Action(Pipeline(vec![
            Command::Call(Func::Index, vec![Arg::Dot, Arg::Str("api-key".into())]),
            Command::Call(Func::Upper, vec![]),
        ]))
    );
    assert_eq!(
        t.pieces()[3],
        Piece::Action(Pipeline(vec![Command::Call(
            Func::Print,
            vec![Arg::Field("x".into()), Arg::Str("\té".into()), Arg::Str("r\\w".into())]
        )]))
    );
    assert!(key::parse("no actions").is_err());
    assert!(key::parse("${title .x extra}").is_err());
    assert!(key::parse(r#"${print "\q"}"#).is_err());
}

#[test]
fn from_path_lists() {
    // vault-sdk InjectSecretsFromVaultPath: `PATH#VERSION`, comma-separated.
    let r = |path: &str, version| Request { path: path.into(), operation: Operation::Read { version } };
    assert_eq!(parse_from_path("secret/data/account1").unwrap(), [r("secret/data/account1", None)]);
    assert_eq!(
        parse_from_path("secret/data/account1#1,secret/data/account2").unwrap(),
        [r("secret/data/account1", Some(1)), r("secret/data/account2", None)]
    );
    let err = parse_from_path("a/b,,c/d").unwrap_err();
    assert_eq!((err.kind, err.offset), (ErrorKind::EmptyEntry, 4));
    assert_eq!(parse_from_path("a/b,c/../d").unwrap_err().kind, ErrorKind::BadSegment("..".into()));
    assert_eq!(parse_from_path("a/b#x").unwrap_err().kind, ErrorKind::BadVersion);
}

#[test]
fn display_is_the_canonical_text() {
    assert_eq!(read("a/data/b", "k", Some(4)).to_string(), "vault:a/data/b#k#4");
    assert_eq!(write("pki/issue/r", "certificate", "{}").to_string(), ">>vault:pki/issue/r#certificate#{}");
    assert_eq!(bao(read("a/b", "k", None)).to_string(), "bao:a/b#k");
    assert_eq!(templated(read("a/b", "", None), "${.u}:${.p}").to_string(), "vault:a/b#${.u}:${.p}");
}

// === properties ===

fn segment() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.:=@+-]{1,12}".prop_filter("not . or ..", |s| s != "." && s != "..")
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 1..5).prop_map(|segments| segments.join("/"))
}

fn field() -> impl Strategy<Value = String> {
    // Not a template (`${`), not ending in `$` (which would glue onto a following `{`).
    "[^#}\\p{Cc}]{1,16}".prop_filter("not a template", |k| !k.contains("${") && !k.ends_with('$'))
}

/// A key template built from pieces, as text.
fn key_template() -> impl Strategy<Value = String> {
    let name = "[a-zA-Z_][a-zA-Z0-9_]{0,8}";
    let string = "[a-z #}{|]{0,6}".prop_map(|s| format!("{s:?}"));
    let operand = prop_oneof![name.prop_map(|n| format!(".{n}")), string.clone()];
    let action = prop_oneof![
        operand.clone().prop_map(|o| format!("${{{o}}}")),
        (
            operand.clone(),
            prop::sample::select(vec!["b64enc", "b64dec", "title", "upper", "lower", "trim", "urlquery", "quote"])
        )
            .prop_map(|(o, f)| format!("${{ {o} | {f} }}")),
        (string.clone(), string, operand.clone()).prop_map(|(a, b, o)| format!("${{replace {a} {b} {o}}}")),
        "[a-z-]{1,8}".prop_map(|n| format!("${{index . \"{n}\"}}")),
    ];
    let text = "[a-zA-Z0-9 :@/=.-]{1,6}";
    (prop::collection::vec(prop_oneof![action.clone(), text.prop_map(String::from)], 0..4), action)
        .prop_map(|(pieces, last)| pieces.concat() + &last)
}

fn key() -> impl Strategy<Value = Key> {
    prop_oneof![
        field().prop_map(Key::Field),
        key_template().prop_map(|t| Key::Template(key::parse(&t).expect("generated templates parse"))),
    ]
}

fn reference() -> impl Strategy<Value = SecretRef> {
    let body = prop::collection::btree_map("[a-z_]{1,6}", "[^\"\\\\\\p{Cc}]{0,8}", 0..3)
        .prop_map(|map| serde_json::to_string(&map).expect("string map serialises"));
    let prefix = prop_oneof![Just(Prefix::Vault), Just(Prefix::Bao)];
    let with = |prefix: Prefix, key: Key, r: SecretRef| SecretRef { prefix, key, ..r };
    prop_oneof![
        (prefix.clone(), path(), key()).prop_map(move |(x, p, k)| with(x, k, read(&p, "", None))),
        (prefix.clone(), path(), key(), 1..u64::MAX).prop_map(move |(x, p, k, v)| with(x, k, read(&p, "", Some(v)))),
        (prefix, path(), key(), body).prop_map(move |(x, p, k, b)| with(x, k, write(&p, "", &b))),
    ]
    .prop_filter("a path starting v1: is transit ciphertext", |r| {
        !(r.prefix == Prefix::Vault
            && transit_len(format!("vault:{}", r.request.path).as_bytes(), Mode::Whole).is_some())
    })
}

fn ciphertext() -> impl Strategy<Value = String> {
    (1..20u32, "[A-Za-z0-9+/=]{1,40}").prop_map(|(v, data)| format!("vault:v{v}:{data}"))
}

fn literal() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 1..24).prop_filter("holds no template opener", |bytes| {
        !bytes.windows(2).any(|w| w == b"${") && bytes.last() != Some(&b'$')
    })
}

fn template() -> impl Strategy<Value = Template> {
    prop::collection::vec(
        prop_oneof![
            literal().prop_map(Part::Literal),
            reference().prop_map(Part::Ref),
            ciphertext().prop_map(Part::Transit)
        ],
        1..6,
    )
    .prop_filter_map("needs a reference", |raw| {
        let mut parts: Vec<Part> = Vec::new();
        for part in raw {
            match (parts.last_mut(), part) {
                (Some(Part::Literal(prev)), Part::Literal(next)) => prev.extend(next),
                (_, part) => parts.push(part),
            }
        }
        let template = Template { parts };
        (template.references().count() + template.ciphertexts().count() > 0).then_some(template)
    })
}

#[test]
fn the_path_byte_table_is_is_path_char() {
    for b in 0..=255u8 {
        assert_eq!(PATH_BYTES[usize::from(b)], b.is_ascii() && is_path_char(char::from(b)), "{b:#x}");
    }
}

proptest! {
    #[test]
    fn canonical_text_round_trips(template in template()) {
        let text = template.to_bytes();
        prop_assert!(may_hold_reference(&text));
        prop_assert_eq!(parse(&text), Ok(Some(template)));
    }

    #[test]
    fn parse_never_panics(value in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse(&value);
    }

    #[test]
    fn parse_never_panics_near_the_grammar(
        value in "(\\$\\{|>>|vault:|bao:|vault:v1:|#|\\}|\\{|\"|`|\\||\\.|\\(|\\)|/| |[a-z0-9]){0,24}"
    ) {
        if let Ok(Some(template)) = parse(value.as_bytes()) {
            prop_assert_eq!(parse(&template.to_bytes()), Ok(Some(template)));
        }
    }

    #[test]
    fn check_agrees_with_parse(value in prop::collection::vec(any::<u8>(), 0..64)) {
        prop_assert_eq!(check(&value), parse(&value).map(|t| t.is_some()));
    }

    #[test]
    fn check_agrees_with_parse_near_the_grammar(
        value in "(\\$\\{|>>|vault:|bao:|vault:v1:|#|\\}|\\{|\"|`|\\||\\.|\\(|\\)|/| |é|\t|\u{85}|[a-z0-9]){0,24}"
    ) {
        prop_assert_eq!(check(value.as_bytes()), parse(value.as_bytes()).map(|t| t.is_some()));
    }

    #[test]
    fn values_that_parse_were_flagged(value in prop::collection::vec(any::<u8>(), 0..48)) {
        if let Ok(Some(_)) | Err(_) = parse(&value) {
            prop_assert!(may_hold_reference(&value));
        }
    }
}

proptest! {
    #[test]
    fn key_templates_round_trip(text in key_template()) {
        let template = key::parse(&text).expect("generated templates parse");
        prop_assert_eq!(template.text(), text.as_str());
        let value = format!("vault:kv/a#{text}");
        let parsed = parse(value.as_bytes()).unwrap().unwrap();
        prop_assert_eq!(parsed.to_bytes(), value.into_bytes());
    }

    #[test]
    fn key_template_parser_never_panics(text in "(\\$\\{|\\}|\\||\\.|\\(|\\)|\"|`|\\\\| |index|print|b64dec|[a-z]){0,30}") {
        let _ = key::parse(&text);
    }

    #[test]
    fn from_path_never_panics(text in "([a-z/#,.]|\\.\\.|[0-9]){0,30}") {
        if let Err(e) = parse_from_path(&text) {
            prop_assert!(e.offset <= text.len());
        }
    }
}

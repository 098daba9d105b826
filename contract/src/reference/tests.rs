use super::*;
use proptest::prelude::*;

fn read(path: &str, key: &str, version: Option<u64>) -> SecretRef {
    SecretRef { request: Request { path: path.into(), operation: Operation::Read { version } }, key: key.into() }
}

fn write(path: &str, key: &str, body: &str) -> SecretRef {
    SecretRef {
        request: Request { path: path.into(), operation: Operation::Write { body: body.into() } },
        key: key.into(),
    }
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
    assert_eq!(kind("vault:kv/b#k#2"), ErrorKind::VersionWithoutKv2);
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
fn requests_tell_kv2_paths() {
    assert!(read("secret/data/app", "k", None).request.is_kv2());
    assert!(read("team/kv/data/app/x", "k", None).request.is_kv2());
    assert!(!read("data/app", "k", None).request.is_kv2(), "a mount named data is KV v1");
    assert!(!read("database/creds/app", "k", None).request.is_kv2());
}

#[test]
fn display_is_the_canonical_text() {
    assert_eq!(read("a/data/b", "k", Some(4)).to_string(), "vault:a/data/b#k#4");
    assert_eq!(write("pki/issue/r", "certificate", "{}").to_string(), ">>vault:pki/issue/r#certificate#{}");
}

// === properties ===

fn segment() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.:=@+-]{1,12}".prop_filter("not . or ..", |s| s != "." && s != "..")
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 1..5).prop_map(|segments| segments.join("/"))
}

fn key() -> impl Strategy<Value = String> {
    "[^#}\\p{Cc}]{1,16}"
}

fn reference() -> impl Strategy<Value = SecretRef> {
    let body = prop::collection::btree_map("[a-z_]{1,6}", "[^\"\\\\\\p{Cc}]{0,8}", 0..3)
        .prop_map(|map| serde_json::to_string(&map).expect("string map serialises"));
    prop_oneof![
        (path(), key()).prop_map(|(p, k)| read(&p, &k, None)),
        (path(), key(), 1..u64::MAX).prop_map(|(p, k, v)| read(&format!("{p}/data/x"), &k, Some(v))),
        (path(), key(), body).prop_map(|(p, k, b)| write(&p, &k, &b)),
    ]
}

fn literal() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 1..24).prop_filter("holds no template opener", |bytes| {
        !bytes.windows(2).any(|w| w == b"${") && bytes.last() != Some(&b'$')
    })
}

fn template() -> impl Strategy<Value = Template> {
    prop::collection::vec(prop_oneof![literal().prop_map(Part::Literal), reference().prop_map(Part::Ref)], 1..6)
        .prop_filter_map("needs a reference", |raw| {
            let mut parts: Vec<Part> = Vec::new();
            for part in raw {
                match (parts.last_mut(), part) {
                    (Some(Part::Literal(prev)), Part::Literal(next)) => prev.extend(next),
                    (_, part) => parts.push(part),
                }
            }
            let template = Template { parts };
            (template.references().count() > 0).then_some(template)
        })
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
    fn parse_never_panics_near_the_grammar(value in "(\\$\\{|>>|vault:|#|\\}|\\{|\"|/|[a-z0-9]){0,24}") {
        if let Ok(Some(template)) = parse(value.as_bytes()) {
            prop_assert_eq!(parse(&template.to_bytes()), Ok(Some(template)));
        }
    }

    #[test]
    fn values_that_parse_were_flagged(value in prop::collection::vec(any::<u8>(), 0..48)) {
        if let Ok(Some(_)) | Err(_) = parse(&value) {
            prop_assert!(may_hold_reference(&value));
        }
    }
}

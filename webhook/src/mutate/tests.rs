use super::*;
use proptest::prelude::*;
use serde_json::{Value, json};

fn config() -> MutationConfig {
    let mut config = MutationConfig::default();
    config.defaults.settings.shim.insert("VAULT_ADDR", "https://vault.vault.svc:8200".into());
    config
}

fn pod(value: Value) -> Pod {
    serde_json::from_value(value).unwrap()
}

/// Runs the mutation with every image answering `entrypoint`/`cmd`; returns the patch.
fn run(pod: &Pod, config: &MutationConfig) -> Result<json_patch::Patch, MutateError> {
    let plan = plan(pod, "default", config)?;
    let images = plan
        .images()
        .into_iter()
        .map(|key| (key, ImageConfig { entrypoint: vec!["/entry".into()], cmd: vec!["$(NOT_EXPANDED)".into()] }))
        .collect();
    plan.patch(&images).map(|p| p.to_patch())
}

fn apply(raw: &Value, patch: &json_patch::Patch) -> Value {
    let mut doc = raw.clone();
    json_patch::patch(&mut doc, patch).unwrap_or_else(|e| panic!("patch does not apply: {e}\n{patch:?}\n{raw:#}"));
    doc
}

fn app_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "app"},
        "spec": {"containers": [{
            "name": "app", "image": "app:1", "command": ["/app"], "args": ["--port", "$(PORT)"],
            "env": [{"name": "DB_PASSWORD", "value": "vault:secret/data/db#password"}],
        }]}
    })
}

#[test]
fn a_container_with_a_reference_starts_through_the_shim() {
    let raw = app_pod();
    let patch = run(&pod(raw.clone()), &config()).unwrap();
    let out = apply(&raw, &patch);
    let c = &out["spec"]["containers"][0];
    assert_eq!(c["command"], json!(["/hush/injector", "--", "/app"]));
    assert_eq!(c["args"], json!(["--port", "$(PORT)"]));
    assert_eq!(c["env"][0], json!({"name": "DB_PASSWORD", "value": "vault:secret/data/db#password"}));
    assert_eq!(c["env"][1], json!({"name": "VAULT_ADDR", "value": "https://vault.vault.svc:8200"}));
    // Bank-Vaults' role default: the ServiceAccount's name (`default` when the Pod names none).
    assert_eq!(c["env"][2], json!({"name": "VAULT_ROLE", "value": "default"}));
    assert_eq!(c["volumeMounts"], json!([{"name": "hush-injector", "mountPath": "/hush", "readOnly": true}]));
    assert_eq!(
        out["spec"]["volumes"],
        json!([
            {"name": "hush-injector", "emptyDir": {"medium": "Memory", "sizeLimit": "32Mi"}},
            {"name": "hush-injector-no-token", "emptyDir": {"medium": "Memory", "sizeLimit": "1Ki"}},
        ])
    );
    let init = &out["spec"]["initContainers"][0];
    assert_eq!(init["name"], "hush-injector-install");
    assert_eq!(init["command"], json!(["/injector", "install", "/hush"]));
    assert_eq!(
        init["volumeMounts"],
        json!([
            {"name": "hush-injector", "mountPath": "/hush"},
            {"name": "hush-injector-no-token", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true},
        ])
    );
    let sc = &init["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert!(init["resources"]["limits"]["memory"].is_string());
    // Second pass: nothing to do.
    assert!(run(&pod(out), &config()).unwrap().0.is_empty());
}

/// Found by the `admission` fuzz target: a setting written from an annotation whose value looks
/// like a broken reference (`hush.dev/auth-path: ">>vault:es"` became `VAULT_PATH`) made the
/// second pass refuse the Pod the first pass had patched.
#[test]
fn the_shims_settings_are_not_scanned_for_references() {
    let mut raw = app_pod();
    raw["metadata"]["annotations"] = json!({"hush.dev/auth-path": ">>vault:es"});
    let patch = run(&pod(raw.clone()), &config()).unwrap();
    let out = apply(&raw, &patch);
    assert!(
        out["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "VAULT_PATH", "value": ">>vault:es"}))
    );
    assert!(run(&pod(out), &config()).unwrap().0.is_empty(), "the second pass patches nothing");
    let mut only_settings = app_pod();
    only_settings["spec"]["containers"][0]["env"] = json!([{"name": "VAULT_ROLE", "value": "vault:not/a#reference"}]);
    assert!(run(&pod(only_settings), &config()).unwrap().0.is_empty(), "a setting alone injects nothing");
}

#[test]
fn no_reference_and_no_annotation_means_no_patch() {
    let raw = json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "a", "image": "a",
        "env": [{"name": "X", "value": "plain vault: text"}, {"name": "Y", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}]}});
    assert!(run(&pod(raw), &config()).unwrap().0.is_empty());
}

#[test]
fn the_annotation_injects_containers_whose_references_come_from_secrets() {
    let raw = json!({"metadata": {"annotations": {"hush.dev/inject": "true"}}, "spec": {"containers": [{"name": "a", "image": "a", "command": ["/a"],
        "envFrom": [{"secretRef": {"name": "app"}}]}]}});
    let out = apply(&raw, &run(&pod(raw.clone()), &config()).unwrap());
    assert_eq!(out["spec"]["containers"][0]["command"], json!(["/hush/injector", "--", "/a"]));
}

#[test]
fn opting_out_wins_over_references() {
    let mut raw = app_pod();
    raw["metadata"]["annotations"] = json!({"hush.dev/inject": "false"});
    assert!(run(&pod(raw), &config()).unwrap().0.is_empty());
}

#[test]
fn template_references_count() {
    let mut raw = app_pod();
    raw["spec"]["containers"][0]["env"][0]["value"] = json!("postgres://u:${vault:secret/data/db#pw}@db/app");
    assert!(!run(&pod(raw), &config()).unwrap().0.is_empty());
}

#[test]
fn image_entrypoint_and_cmd_are_used_and_escaped_when_there_is_no_command() {
    let mut raw = app_pod();
    let c = raw["spec"]["containers"][0].as_object_mut().unwrap();
    c.remove("command");
    c.remove("args");
    let p = pod(raw.clone());
    let cfg = config();
    let plan = plan(&p, "default", &cfg).unwrap();
    let keys: Vec<_> = plan.images().into_iter().collect();
    assert_eq!(keys, vec![ImageKey { image: "app:1".into(), platform: Platform::linux_amd64() }]);
    let out = apply(&raw, &run(&p, &config()).unwrap());
    assert_eq!(out["spec"]["containers"][0]["command"], json!(["/hush/injector", "--", "/entry", "$$(NOT_EXPANDED)"]));
    // With args, the image's CMD is not used (as the kubelet does).
    raw["spec"]["containers"][0]["args"] = json!(["serve"]);
    let out = apply(&raw, &run(&pod(raw.clone()), &config()).unwrap());
    assert_eq!(out["spec"]["containers"][0]["command"], json!(["/hush/injector", "--", "/entry"]));
    assert_eq!(out["spec"]["containers"][0]["args"], json!(["serve"]));
}

#[test]
fn the_command_annotation_replaces_the_registry() {
    let mut raw = app_pod();
    raw["spec"]["containers"][0].as_object_mut().unwrap().remove("command");
    raw["metadata"]["annotations"] = json!({"hush.dev/command": r#"{"app": ["/bin/app", "run"]}"#});
    let p = pod(raw.clone());
    assert!(plan(&p, "default", &config()).unwrap().images().is_empty());
    let out = apply(&raw, &run(&p, &config()).unwrap());
    assert_eq!(out["spec"]["containers"][0]["command"], json!(["/hush/injector", "--", "/bin/app", "run"]));
}

#[test]
fn the_command_annotation_must_name_a_container_of_the_pod() {
    let mut raw = app_pod();
    raw["metadata"]["annotations"] = json!({"hush.dev/command": r#"{"ap": ["/bin/app"]}"#});
    let e = run(&pod(raw), &config()).unwrap_err();
    assert_eq!(e.to_string(), "annotation `hush.dev/command` names container `ap`, which the Pod does not have");
}

#[test]
fn a_missing_image_config_is_an_error_not_a_broken_pod() {
    let mut raw = app_pod();
    raw["spec"]["containers"][0].as_object_mut().unwrap().remove("command");
    let p = pod(raw);
    let e = plan(&p, "default", &config()).unwrap().patch(&BTreeMap::new()).unwrap_err();
    assert!(matches!(e, MutateError::ImageNotResolved(_)), "{e}");
    let cfg = config();
    let plan = plan(&p, "default", &cfg).unwrap();
    let images = plan.images().into_iter().map(|k| (k, ImageConfig::default())).collect();
    let e = plan.patch(&images).unwrap_err();
    assert!(e.to_string().contains("has no ENTRYPOINT or CMD"), "{e}");
}

#[test]
fn init_containers_keep_their_order_after_ours() {
    let mut raw = app_pod();
    raw["spec"]["initContainers"] = json!([
        {"name": "migrate", "image": "m", "command": ["/m"], "env": [{"name": "P", "value": "vault:secret/data/db#password"}]},
        {"name": "plain", "image": "p"}
    ]);
    let out = apply(&raw, &run(&pod(raw.clone()), &config()).unwrap());
    let names: Vec<&str> =
        out["spec"]["initContainers"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["hush-injector-install", "migrate", "plain"]);
    assert_eq!(out["spec"]["initContainers"][1]["command"], json!(["/hush/injector", "--", "/m"]));
    assert!(out["spec"]["initContainers"][2].get("command").is_none());
    assert!(run(&pod(out), &config()).unwrap().0.is_empty());
}

#[test]
fn a_volume_named_like_ours_gets_another_name() {
    let mut raw = app_pod();
    raw["spec"]["volumes"] = json!([{"name": "hush-injector", "configMap": {"name": "c"}}]);
    let out = apply(&raw, &run(&pod(raw.clone()), &config()).unwrap());
    assert_eq!(out["spec"]["volumes"][0], json!({"name": "hush-injector", "configMap": {"name": "c"}}));
    assert_eq!(out["spec"]["volumes"][1]["name"], "hush-injector-1");
    assert_eq!(out["spec"]["containers"][0]["volumeMounts"][0]["name"], "hush-injector-1");
    assert!(run(&pod(out), &config()).unwrap().0.is_empty());
}

#[test]
fn conflicts_are_rejected_with_names() {
    let mut raw = app_pod();
    raw["spec"]["containers"][0]["volumeMounts"] = json!([{"name": "data", "mountPath": "/hush"}]);
    let e = run(&pod(raw), &config()).unwrap_err();
    assert_eq!(e.to_string(), "container `app` already mounts a volume at `/hush`, where Hush mounts its own");

    let mut raw = app_pod();
    raw["spec"]["initContainers"] = json!([{"name": "hush-injector-install", "image": "evil"}]);
    let e = run(&pod(raw), &config()).unwrap_err();
    assert!(e.to_string().contains("`hush-injector-install`"), "{e}");

    let mut raw = app_pod();
    raw["spec"]["containers"][0]["env"][0]["value"] = json!("vault:secret/data/db");
    let e = run(&pod(raw), &config()).unwrap_err();
    assert!(e.to_string().starts_with("container `app`, variable `DB_PASSWORD`: invalid Vault reference"), "{e}");

    let mut raw = app_pod();
    raw["metadata"]["annotations"] = json!({"vault.security.banzaicloud.io/vault-agent": "true"});
    let e = run(&pod(raw), &config()).unwrap_err();
    assert!(e.to_string().contains("vault.security.banzaicloud.io/vault-agent"), "{e}");
}

#[test]
fn vault_address_is_required_and_allow_listed() {
    let e = run(&pod(app_pod()), &MutationConfig::default()).unwrap_err();
    assert!(e.to_string().contains("hush.dev/vault-addr"), "{e}");
    let mut config = config();
    config.allowed_vault_addrs = vec!["https://vault.vault.svc".into()];
    assert!(run(&pod(app_pod()), &config).is_ok());
    let mut raw = app_pod();
    raw["metadata"]["annotations"] = json!({"hush.dev/vault-addr": "https://evil.example"});
    let e = run(&pod(raw), &config).unwrap_err();
    assert!(matches!(e, MutateError::VaultAddrNotAllowed(_)), "{e}");
}

#[test]
fn settings_come_from_pod_then_namespace_then_flags_and_never_override_the_containers_own() {
    let mut config = config();
    let ns = BTreeMap::from([("hush.dev/role".to_owned(), "ns-role".to_owned())]);
    config.namespace_defaults.insert("team".into(), Annotations::parse(&ns, Source::Defaults).unwrap());
    let mut raw = app_pod();
    raw["metadata"]["annotations"] = json!({"hush.dev/auth-method": "jwt", "hush.dev/tls-secret": "vault-ca"});
    raw["spec"]["containers"][0]["env"].as_array_mut().unwrap().push(json!({"name": "VAULT_ROLE", "value": "mine"}));
    let p = pod(raw.clone());
    let patch = plan(&p, "team", &config).unwrap().patch(&BTreeMap::new()).unwrap();
    let out = apply(&raw, &patch.to_patch());
    let env = &out["spec"]["containers"][0]["env"];
    assert_eq!(
        env,
        &json!([
            {"name": "DB_PASSWORD", "value": "vault:secret/data/db#password"},
            {"name": "VAULT_ROLE", "value": "mine"},
            {"name": "VAULT_ADDR", "value": "https://vault.vault.svc:8200"},
            {"name": "VAULT_AUTH_METHOD", "value": "jwt"},
            {"name": "VAULT_CACERT", "value": "/hush-tls/ca.crt"},
        ])
    );
    assert_eq!(
        out["spec"]["volumes"][1],
        json!({"name": "hush-vault-tls", "secret": {"secretName": "vault-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}})
    );
    assert_eq!(out["spec"]["containers"][0]["volumeMounts"][1]["mountPath"], "/hush-tls");
}

/// Bank-Vaults' operator makes a `vault-tls` Secret holding `ca.crt`, `ca.key`, `server.crt` and
/// `server.key`; the volume is mounted into the application's container, so only `ca.crt` may
/// be projected (the whole Secret was, before).
#[test]
fn the_tls_secret_projects_the_ca_certificate_alone() {
    let mut raw = app_pod();
    raw["metadata"]["annotations"] = json!({"vault.security.banzaicloud.io/vault-tls-secret": "vault-tls"});
    let out = apply(&raw, &run(&pod(raw.clone()), &config()).unwrap());
    let volume = out["spec"]["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "hush-vault-tls").unwrap();
    assert_eq!(volume["secret"]["items"], json!([{"key": "ca.crt", "path": "ca.crt"}]), "{volume}");
    // A second pass accepts its own volume and changes nothing.
    assert!(run(&pod(out.clone()), &config()).unwrap().0.is_empty());
    // A volume of that name that projects the whole Secret (or more keys) is not taken as ours.
    for items in [json!(null), json!([{"key": "ca.crt", "path": "ca.crt"}, {"key": "ca.key", "path": "ca.key"}])] {
        let mut taken = raw.clone();
        let mut secret = json!({"secretName": "vault-tls"});
        if !items.is_null() {
            secret["items"] = items;
        }
        taken["spec"]["volumes"] = json!([{"name": "hush-vault-tls", "secret": secret}]);
        let e = run(&pod(taken), &config()).unwrap_err();
        assert!(matches!(e, MutateError::NameTaken { .. }), "{e}");
    }
}

#[test]
fn dollar_signs_in_settings_survive_the_kubelet() {
    let mut raw = app_pod();
    raw["metadata"]["annotations"] = json!({"hush.dev/role": "a$(B)"});
    let out = apply(&raw, &run(&pod(raw.clone()), &config()).unwrap());
    let env = out["spec"]["containers"][0]["env"].as_array().unwrap();
    assert!(env.contains(&json!({"name": "VAULT_ROLE", "value": "a$$(B)"})));
}

#[test]
fn unknown_fields_of_the_raw_pod_are_kept() {
    let mut raw = app_pod();
    raw["spec"]["futureField"] = json!({"x": 1});
    raw["spec"]["containers"][0]["futureContainerField"] = json!(true);
    raw["spec"]["automountServiceAccountToken"] = json!(false);
    let out = apply(&raw, &run(&pod(raw.clone()), &config()).unwrap());
    assert_eq!(out["spec"]["futureField"], json!({"x": 1}));
    assert_eq!(out["spec"]["containers"][0]["futureContainerField"], json!(true));
}

// === Property tests ===

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9]{0,6}"
}

fn env_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[a-z :/]{0,12}".prop_map(|v| json!({"value": v})),
        Just(json!({"value": "vault:secret/data/app#key"})),
        Just(json!({"value": "x-${vault:secret/data/app#key}-y"})),
        Just(json!({"valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}})),
    ]
}

fn container() -> impl Strategy<Value = Value> {
    (
        proptest::option::of(proptest::collection::vec("[a-z/$()]{1,6}", 0..3)),
        proptest::option::of(proptest::collection::vec("[a-z$()]{1,6}", 0..3)),
        proptest::option::of(proptest::collection::vec((name(), env_value()), 0..4)),
        proptest::option::of(proptest::collection::vec(name(), 0..2)),
        any::<bool>(),
    )
        .prop_map(|(command, args, env, mounts, unknown)| {
            let mut c = json!({"image": "registry.local/app:1"});
            if let Some(command) = command {
                c["command"] = json!(command);
            }
            if let Some(args) = args {
                c["args"] = json!(args);
            }
            if let Some(env) = env {
                let env: Vec<Value> = env
                    .into_iter()
                    .map(|(n, mut v)| {
                        v["name"] = json!(n.to_uppercase());
                        v
                    })
                    .collect();
                c["env"] = json!(env);
            }
            if let Some(mounts) = mounts {
                let mounts: Vec<Value> =
                    mounts.iter().map(|m| json!({"name": m, "mountPath": format!("/m/{m}")})).collect();
                c["volumeMounts"] = json!(mounts);
            }
            if unknown {
                c["someFutureField"] = json!({"kept": true});
            }
            c
        })
}

fn raw_pod() -> impl Strategy<Value = Value> {
    (
        proptest::collection::vec(container(), 1..4),
        proptest::option::of(proptest::collection::vec(container(), 0..3)),
        proptest::option::of(proptest::collection::vec(prop_oneof![name(), Just("hush-injector".to_owned())], 0..3)),
        prop_oneof![Just(None), Just(Some("true")), Just(Some("false"))],
    )
        .prop_map(|(containers, init, volumes, inject)| {
            let named = |list: Vec<Value>, prefix: &str| -> Vec<Value> {
                list.into_iter()
                    .enumerate()
                    .map(|(i, mut c)| {
                        c["name"] = json!(format!("{prefix}{i}"));
                        c
                    })
                    .collect()
            };
            let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": named(containers, "c"), "automountServiceAccountToken": false}});
            if let Some(init) = init {
                pod["spec"]["initContainers"] = json!(named(init, "i"));
            }
            if let Some(mut volumes) = volumes {
                volumes.sort();
                volumes.dedup();
                let volumes: Vec<Value> = volumes.iter().map(|v| json!({"name": v, "emptyDir": {}})).collect();
                pod["spec"]["volumes"] = json!(volumes);
            }
            if let Some(inject) = inject {
                pod["metadata"]["annotations"] = json!({"hush.dev/inject": inject});
            }
            pod
        })
}

fn names(list: &Value) -> Vec<String> {
    list.as_array().map(|l| l.iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect()).unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn mutation_is_idempotent_and_keeps_the_users_things(raw in raw_pod()) {
        let config = config();
        let patch = run(&pod(raw.clone()), &config).unwrap();
        let out = apply(&raw, &patch);
        // Unknown fields are untouched, and the result still decodes as a full k8s-openapi Pod.
        prop_assert_eq!(&out["spec"]["automountServiceAccountToken"], &json!(false));
        let typed: Result<k8s_openapi::api::core::v1::Pod, _> = serde_json::from_value(out.clone());
        prop_assert!(typed.is_ok(), "{:?}", typed.err());
        let patched = pod(out.clone());

        // Containers: same names, same order; only command, env and volumeMounts may change.
        prop_assert_eq!(names(&out["spec"]["containers"]), names(&raw["spec"]["containers"]));
        let before_init = names(&raw["spec"]["initContainers"]);
        let after_init = names(&out["spec"]["initContainers"]);
        let after_user_init: Vec<String> = after_init.iter().filter(|n| *n != INIT_CONTAINER_NAME).cloned().collect();
        prop_assert_eq!(&after_user_init, &before_init);
        if !patch.0.is_empty() {
            prop_assert_eq!(after_init.first().map(String::as_str), Some(INIT_CONTAINER_NAME));
        }
        for list in ["containers", "initContainers"] {
            for (i, before) in raw["spec"][list].as_array().into_iter().flatten().enumerate() {
                let offset = usize::from(list == "initContainers" && !patch.0.is_empty());
                let after = &out["spec"][list][i + offset];
                for (field, value) in before.as_object().unwrap() {
                    match field.as_str() {
                        "env" | "volumeMounts" => {
                            let a = after[field].as_array().unwrap();
                            let b = value.as_array().unwrap();
                            prop_assert_eq!(&a[..b.len()], &b[..], "{} of {} must be a prefix", field, before["name"]);
                        }
                        "command" => {
                            let a = after["command"].as_array().unwrap();
                            let b = value.as_array().unwrap();
                            if !b.is_empty() {
                                prop_assert_eq!(&a[a.len() - b.len()..], &b[..], "original command is the tail");
                            }
                        }
                        _ => prop_assert_eq!(&after[field], value, "{} of {} changed", field, before["name"]),
                    }
                }
            }
        }
        // Volumes: the user's come first, unchanged.
        let before_volumes = raw["spec"]["volumes"].as_array().cloned().unwrap_or_default();
        let after_volumes = out["spec"]["volumes"].as_array().cloned().unwrap_or_default();
        prop_assert_eq!(&after_volumes[..before_volumes.len()], &before_volumes[..]);

        // Idempotent: a second pass has nothing to do.
        let again = run(&patched, &config).unwrap();
        prop_assert!(again.0.is_empty(), "second pass patched: {:?}", again);
    }
}

#[test]
fn the_cached_init_container_is_the_one_built_fresh() {
    let config = config();
    let first = run(&pod(app_pod()), &config).unwrap();
    let cached = run(&pod(app_pod()), &config).unwrap();
    assert_eq!(first, cached);
    let fresh = serde_json::to_vec(&init_container(&config, &config.defaults.settings, VOLUME_NAME)).unwrap();
    assert_eq!(config.default_init_container.get(), Some(&fresh));
    let volumes = (
        serde_json::to_vec(&shim_volume(&config, VOLUME_NAME)).unwrap(),
        serde_json::to_vec(&no_token_volume()).unwrap(),
    );
    assert_eq!(config.fixed_volumes.get(), Some(&volumes));
    // An annotation that changes the image bypasses the cache.
    let mut raw = app_pod();
    raw["metadata"]["annotations"] = json!({"hush.dev/injector-image": "other/injector:2"});
    let out = apply(&raw, &run(&pod(raw.clone()), &config).unwrap());
    assert_eq!(out["spec"]["initContainers"][0]["image"], "other/injector:2");
}

/// The ServiceAccount admission plugin mounts the API token into every container that has
/// nothing mounted at its directory; the init container has something there, the app does not.
#[test]
fn the_init_container_gets_no_service_account_token() {
    let raw = app_pod();
    let out = apply(&raw, &run(&pod(raw.clone()), &config()).unwrap());
    let token_dir = "/var/run/secrets/kubernetes.io/serviceaccount";
    let mounted_at = |c: &Value| c["volumeMounts"].as_array().unwrap().iter().any(|m| m["mountPath"] == token_dir);
    assert!(mounted_at(&out["spec"]["initContainers"][0]));
    assert!(!mounted_at(&out["spec"]["containers"][0]), "the app's token is the plugin's to mount");
    let volume = out["spec"]["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "hush-injector-no-token");
    assert_eq!(volume.unwrap()["emptyDir"]["medium"], "Memory", "an empty in-memory volume, no token");
    // A Pod that uses the name already is refused rather than given its volume.
    let mut taken = app_pod();
    taken["spec"]["volumes"] = json!([{"name": "hush-injector-no-token", "emptyDir": {}}]);
    assert!(matches!(run(&pod(taken), &config()), Err(MutateError::NameTaken { what: "volume", .. })));
}

/// Issue 11: a Pod relying on Bank-Vaults' role default was admitted, then the shim exited 78
/// ("VAULT_ROLE is not set").
#[test]
fn the_role_defaults_to_the_service_account_name() {
    let env_of = |raw: &Value| {
        let out = apply(raw, &run(&pod(raw.clone()), &config()).unwrap());
        out["spec"]["containers"][0]["env"].as_array().unwrap().clone()
    };
    let role = |env: &[Value]| env.iter().find(|v| v["name"] == "VAULT_ROLE").map(|v| v["value"].clone());
    let mut raw = app_pod();
    raw["spec"]["serviceAccountName"] = json!("payments");
    assert_eq!(role(&env_of(&raw)), Some(json!("payments")));
    raw["metadata"]["annotations"] = json!({"vault.security.banzaicloud.io/vault-role": "explicit"});
    assert_eq!(role(&env_of(&raw)), Some(json!("explicit")));
    raw["metadata"]["annotations"] = json!({"hush.dev/auth-method": "token"});
    assert_eq!(role(&env_of(&raw)), None, "token login takes no role");
    raw["metadata"]["annotations"] = json!({"hush.dev/auth-method": "jwt"});
    assert_eq!(role(&env_of(&raw)), Some(json!("payments")));
}

/// Issue 11: agent and consul-template annotations were admitted unchanged when the Pod had no
/// literal reference; now the outcome is the same with or without one.
#[test]
fn refused_bank_vaults_annotations_do_not_depend_on_references() {
    for key in [
        "vault.security.banzaicloud.io/vault-agent-configmap",
        "vault.security.banzaicloud.io/vault-ct-configmap",
        "secrets-webhook.security.bank-vaults.io/bao-agent-configmap",
    ] {
        for with_reference in [true, false] {
            let mut raw = app_pod();
            if !with_reference {
                raw["spec"]["containers"][0]["env"] = json!([{"name": "PLAIN", "value": "x"}]);
            }
            raw["metadata"]["annotations"] = json!({ key: "some-config" });
            match run(&pod(raw), &config()) {
                Err(e @ MutateError::Unsupported(_)) => assert!(e.to_string().contains(key), "{e}"),
                other => panic!("{key} (reference: {with_reference}): {other:?}"),
            }
        }
    }
    // Opting out of injection opts out of the check too.
    let mut raw = app_pod();
    raw["metadata"]["annotations"] =
        json!({"vault.security.banzaicloud.io/vault-agent": "true", "vault.security.banzaicloud.io/mutate": "skip"});
    assert!(run(&pod(raw), &config()).unwrap().0.is_empty());
}

/// Warned annotations reach the plan whether or not anything is injected.
#[test]
fn warned_bank_vaults_annotations_are_reported() {
    let mut raw = app_pod();
    raw["spec"]["containers"][0]["env"] = json!([]);
    raw["metadata"]["annotations"] = json!({"vault.security.banzaicloud.io/vault-agent": "false"});
    let pod = pod(raw);
    let config = config();
    let plan = plan(&pod, "default", &config).unwrap();
    assert!(plan.is_empty());
    assert!(matches!(plan.warnings(), [w] if w.contains("vault.security.banzaicloud.io/vault-agent")));
}

/// As Bank-Vaults: `vault-env-from-path` injects every container, references or not.
#[test]
fn env_from_path_injects_every_container() {
    let mut raw = app_pod();
    raw["spec"]["containers"][0]["env"] = json!([]);
    raw["metadata"]["annotations"] = json!({"vault.security.banzaicloud.io/vault-env-from-path": "secret/data/app"});
    let out = apply(&raw, &run(&pod(raw.clone()), &config()).unwrap());
    let c = &out["spec"]["containers"][0];
    assert_eq!(c["command"], json!(["/hush/injector", "--", "/app"]));
    assert!(c["env"].as_array().unwrap().contains(&json!({"name": "VAULT_ENV_FROM_PATH", "value": "secret/data/app"})));
}

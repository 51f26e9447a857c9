//! Broker tests against real files: entry shapes, no plaintext secrets, fail-closed logging,
//! reload and rotation, stdout, salts across restarts.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde_json::{json, Value};

use crate::*;

const ROOT_TOKEN: &str = "s.RootTokenPlain0123456789";
const ROOT_ACCESSOR: &str = "AccessorPlainXYZ987";
const PASSWORD: &str = "hunter2-very-secret";
const SECRET_VALUE: &str = "db-password-5f3c1e";
const SECRET_ID: &str = "7d3f0b2e-secret-id-value";
const NEW_TOKEN: &str = "s.NewLoginTokenPlain555";
const NEW_ACCESSOR: &str = "NewAccessorPlain444";
const WRAP_TOKEN: &str = "s.WrappingTokenPlain333";
const WRAP_ACCESSOR: &str = "WrapAccessorPlain222";

fn spec(path: &str, options: &[(&str, &str)], salt: &Salt) -> DeviceSpec {
    DeviceSpec {
        config: kura_config::AuditDeviceConfig {
            kind: "file".into(),
            path: path.into(),
            description: Some(format!("device {path}")),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        },
        salt: salt.clone(),
    }
}

fn file_spec(path: &str, file: &Path) -> DeviceSpec {
    spec(
        path,
        &[("file_path", file.to_str().unwrap())],
        &Salt::generate().unwrap(),
    )
}

fn root_auth() -> AuditAuth {
    AuditAuth {
        client_token: ROOT_TOKEN.into(),
        accessor: ROOT_ACCESSOR.into(),
        display_name: "token".into(),
        policies: vec!["root".into()],
        token_policies: vec!["root".into()],
        policy_results: Some(PolicyResults {
            allowed: true,
            granting_policies: vec![PolicyInfo {
                name: "root".into(),
                namespace_id: "root".into(),
                policy_type: "acl".into(),
                ..Default::default()
            }],
        }),
        token_type: "service".into(),
        token_issue_time: rfc3339_seconds(1_795_305_439),
        ..Default::default()
    }
}

fn obj(v: Value) -> Map {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

/// A kv v2 write by the root token, with a secret value and a password in its data.
fn kv_write() -> AuditRequest {
    AuditRequest {
        auth: Some(root_auth()),
        id: "2f4cc632-3291-e443-4eff-a7255053858a".into(),
        operation: "create".into(),
        mount_point: "secret/".into(),
        mount_type: "kv".into(),
        mount_accessor: "kv_09f592b9".into(),
        mount_class: "secret".into(),
        client_token: ROOT_TOKEN.into(),
        client_token_accessor: ROOT_ACCESSOR.into(),
        path: "secret/data/foo".into(),
        data: Some(obj(json!({
            "data": {"db": SECRET_VALUE, "password": PASSWORD, "num": 5, "flag": true},
            "options": {},
        }))),
        remote_address: "127.0.0.1".into(),
        remote_port: 43158,
        ..Default::default()
    }
}

fn kv_write_response() -> AuditResponse {
    AuditResponse {
        data: Some(obj(json!({
            "created_time": "2026-11-21T23:57:23.370673713Z",
            "custom_metadata": null,
            "destroyed": false,
            "version": 1,
        }))),
        ..Default::default()
    }
}

/// An approle login: the secret ID in the request, a new token in the response, wrapped.
fn login() -> (AuditRequest, AuditResponse) {
    let req = AuditRequest {
        id: "login-1".into(),
        operation: "update".into(),
        mount_point: "auth/approle/".into(),
        mount_type: "approle".into(),
        mount_class: "auth".into(),
        path: "auth/approle/login".into(),
        data: Some(obj(json!({"role_id": "role-id-1", "secret_id": SECRET_ID}))),
        wrap_ttl: 60,
        auth: Some(AuditAuth {
            policy_results: Some(PolicyResults {
                allowed: true,
                granting_policies: vec![],
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let new_auth = AuditAuth {
        client_token: NEW_TOKEN.into(),
        accessor: NEW_ACCESSOR.into(),
        display_name: "approle".into(),
        policies: vec!["default".into()],
        token_policies: vec!["default".into()],
        metadata: BTreeMap::from([("role_name".to_string(), "r".to_string())]),
        token_type: "service".into(),
        token_ttl: 2_764_800,
        ..Default::default()
    };
    let resp = AuditResponse {
        auth: Some(new_auth),
        wrap_info: Some(AuditWrapInfo {
            ttl: 60,
            token: WRAP_TOKEN.into(),
            accessor: WRAP_ACCESSOR.into(),
            creation_time: "2026-11-21T23:57:25.702324113Z".into(),
            creation_path: "auth/approle/login".into(),
            wrapped_accessor: NEW_ACCESSOR.into(),
        }),
        ..Default::default()
    };
    (req, resp)
}

fn lines(file: &Path) -> Vec<Value> {
    fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l}: {e}")))
        .collect()
}

fn settings() -> AuditSettings {
    AuditSettings::default()
}

#[test]
fn entries_have_openbaos_shape() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let broker = AuditBroker::new();
    broker
        .configure(vec![file_spec("file", &file)], settings())
        .unwrap();
    let req = kv_write();
    broker.log_request(&req).unwrap();
    broker.log_response(&req, &kv_write_response()).unwrap();

    let entries = lines(&file);
    assert_eq!(entries.len(), 2);
    let h = |s: &str| broker.hash("file", s).unwrap();

    let e = &entries[0];
    let keys: Vec<&String> = e.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["time", "type", "auth", "request"]);
    assert_eq!(e["type"], "request");
    let t = e["time"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).is_ok(),
        "{t}"
    );
    assert!(t.ends_with('Z'));
    assert_eq!(
        e["auth"],
        json!({
            "client_token": h(ROOT_TOKEN),
            "accessor": h(ROOT_ACCESSOR),
            "display_name": "token",
            "policies": ["root"],
            "token_policies": ["root"],
            "policy_results": {"allowed": true, "granting_policies": [
                {"name": "root", "namespace_id": "root", "type": "acl"}
            ]},
            "token_type": "service",
            "token_issue_time": "2026-11-21T23:57:19Z",
        })
    );
    assert_eq!(
        e["request"],
        json!({
            "id": "2f4cc632-3291-e443-4eff-a7255053858a",
            "operation": "create",
            "mount_point": "secret/",
            "mount_type": "kv",
            "mount_accessor": "kv_09f592b9",
            "mount_class": "secret",
            "client_token": h(ROOT_TOKEN),
            "client_token_accessor": h(ROOT_ACCESSOR),
            "namespace": {"id": "root"},
            "path": "secret/data/foo",
            "data": {"data": {"db": h(SECRET_VALUE), "flag": true, "num": 5, "password": h(PASSWORD)},
                     "options": {}},
            "remote_address": "127.0.0.1",
            "remote_port": 43158,
        })
    );

    let r = &entries[1];
    let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["time", "type", "auth", "request", "response"]);
    assert_eq!(r["type"], "response");
    assert_eq!(r["auth"], e["auth"]);
    assert_eq!(r["request"], e["request"]);
    assert_eq!(
        r["response"],
        json!({
            "mount_point": "secret/",
            "mount_type": "kv",
            "mount_accessor": "kv_09f592b9",
            "mount_class": "secret",
            "data": {
                "created_time": h("2026-11-21T23:57:23.370673713Z"),
                "custom_metadata": null,
                "destroyed": false,
                "version": 1,
            },
        })
    );

    // the entries also read back into the typed structs
    let back: ResponseEntry = serde_json::from_value(r.clone()).unwrap();
    assert_eq!(back.entry_type, "response");
    assert_eq!(back.request.path, "secret/data/foo");
}

#[test]
fn errors_secrets_warnings_and_forwarding_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let broker = AuditBroker::new();
    broker
        .configure(vec![file_spec("file", &file)], settings())
        .unwrap();
    let req = AuditRequest {
        operation: "read".into(),
        path: "secret/data/foo".into(),
        client_token: "bad-token-plain".into(),
        error: "permission denied".into(),
        forwarded_from: "10.0.0.2:8201".into(),
        ..Default::default()
    };
    broker.log_request(&req).unwrap();
    let resp = AuditResponse {
        secret: Some(AuditSecret {
            lease_id: "kv1/a/lease-1".into(),
        }),
        warnings: vec!["w1".into()],
        error: "1 error occurred:\n\t* permission denied\n\n".into(),
        ..Default::default()
    };
    broker.log_response(&req, &resp).unwrap();
    let entries = lines(&file);
    let h = |s: &str| broker.hash("file/", s).unwrap();
    assert_eq!(entries[0]["auth"], json!({"token_type": "default"}));
    assert_eq!(entries[0]["request"]["client_token"], h("bad-token-plain"));
    assert_eq!(entries[0]["error"], "permission denied");
    assert_eq!(entries[0]["forwarded_from"], "10.0.0.2:8201");
    assert_eq!(
        entries[1]["error"],
        "1 error occurred:\n\t* permission denied\n\n"
    );
    assert_eq!(entries[1]["forwarded"], true);
    assert_eq!(
        entries[1]["response"]["secret"],
        json!({"lease_id": "kv1/a/lease-1"})
    );
    assert_eq!(entries[1]["response"]["warnings"], json!(["w1"]));
}

#[test]
fn no_plaintext_secret_reaches_the_file_and_hashes_match_audit_hash() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let broker = AuditBroker::new();
    broker
        .configure(vec![file_spec("file", &file)], settings())
        .unwrap();
    let req = kv_write();
    broker.log_request(&req).unwrap();
    broker.log_response(&req, &kv_write_response()).unwrap();
    let (login_req, login_resp) = login();
    broker.log_request(&login_req).unwrap();
    // for a login's response entry the core puts the new token in the top-level auth
    let mut login_req_after = login_req.clone();
    login_req_after.auth = login_resp.auth.clone().map(|mut a| {
        a.entity_created = true;
        a
    });
    broker.log_response(&login_req_after, &login_resp).unwrap();

    let text = fs::read_to_string(&file).unwrap();
    let secrets = [
        ROOT_TOKEN,
        ROOT_ACCESSOR,
        PASSWORD,
        SECRET_VALUE,
        SECRET_ID,
        NEW_TOKEN,
        NEW_ACCESSOR,
        WRAP_TOKEN,
        WRAP_ACCESSOR,
    ];
    for secret in secrets {
        assert!(!text.contains(secret), "{secret} written in plaintext");
        let hashed = broker.hash("file", secret).unwrap();
        assert!(hashed.starts_with("hmac-sha256:") && hashed.len() == 12 + 64);
        assert!(text.contains(&hashed), "hash of {secret} missing");
    }
    let entries = lines(&file);
    let h = |s: &str| broker.hash("file", s).unwrap();
    let login_resp_entry = &entries[3];
    assert_eq!(login_resp_entry["auth"]["client_token"], h(NEW_TOKEN));
    assert_eq!(login_resp_entry["auth"]["entity_created"], true);
    assert_eq!(
        login_resp_entry["response"]["auth"]["accessor"],
        h(NEW_ACCESSOR)
    );
    assert_eq!(
        login_resp_entry["response"]["auth"]["metadata"],
        json!({"role_name": "r"})
    );
    assert_eq!(login_resp_entry["request"]["wrap_ttl"], 60);
    assert_eq!(
        login_resp_entry["response"]["wrap_info"],
        json!({
            "ttl": 60,
            "token": h(WRAP_TOKEN),
            "accessor": h(WRAP_ACCESSOR),
            "creation_time": "2026-11-21T23:57:25.702324113Z",
            "creation_path": "auth/approle/login",
            "wrapped_accessor": h(NEW_ACCESSOR),
        })
    );
}

#[test]
fn non_hmac_keys_of_the_mount_are_left_plain() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let broker = AuditBroker::new();
    broker
        .configure(vec![file_spec("file", &file)], settings())
        .unwrap();
    let mut req = kv_write();
    req.non_hmac_request_keys = vec!["num".into(), "db".into()];
    let mut resp = kv_write_response();
    resp.non_hmac_response_keys = vec!["created_time".into()];
    broker.log_response(&req, &resp).unwrap();
    let e = &lines(&file)[0];
    assert_eq!(e["request"]["data"]["data"]["db"], SECRET_VALUE);
    assert_eq!(
        e["request"]["data"]["data"]["password"],
        broker.hash("file", PASSWORD).unwrap()
    );
    assert_eq!(
        e["response"]["data"]["created_time"],
        "2026-11-21T23:57:23.370673713Z"
    );
}

#[test]
fn log_raw_writes_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("raw.log");
    let broker = AuditBroker::new();
    let salt = Salt::generate().unwrap();
    broker
        .configure(
            vec![spec(
                "raw",
                &[("file_path", file.to_str().unwrap()), ("log_raw", "true")],
                &salt,
            )],
            settings(),
        )
        .unwrap();
    let req = kv_write();
    broker.log_request(&req).unwrap();
    let (login_req, login_resp) = login();
    broker.log_response(&login_req, &login_resp).unwrap();
    let text = fs::read_to_string(&file).unwrap();
    for plain in [
        ROOT_TOKEN,
        ROOT_ACCESSOR,
        PASSWORD,
        SECRET_VALUE,
        SECRET_ID,
        NEW_TOKEN,
        WRAP_TOKEN,
    ] {
        assert!(text.contains(plain), "{plain} missing from the raw log");
    }
    assert!(!text.contains("hmac-sha256:"));
    // audit-hash still hashes on a raw device
    assert!(broker.hash("raw", "x").unwrap().starts_with("hmac-sha256:"));
}

#[test]
fn hmac_accessor_false_leaves_accessors_plain_but_hashes_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.log");
    let broker = AuditBroker::new();
    broker
        .configure(
            vec![spec(
                "a",
                &[
                    ("file_path", file.to_str().unwrap()),
                    ("hmac_accessor", "false"),
                ],
                &Salt::generate().unwrap(),
            )],
            settings(),
        )
        .unwrap();
    broker.log_request(&kv_write()).unwrap();
    let e = &lines(&file)[0];
    assert_eq!(e["auth"]["accessor"], ROOT_ACCESSOR);
    assert_eq!(e["request"]["client_token_accessor"], ROOT_ACCESSOR);
    assert_eq!(
        e["auth"]["client_token"],
        broker.hash("a", ROOT_TOKEN).unwrap()
    );
}

#[test]
fn prefix_needs_permission_and_is_written_before_each_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.log");
    let s = spec(
        "p",
        &[("file_path", file.to_str().unwrap()), ("prefix", "KURA ")],
        &Salt::generate().unwrap(),
    );
    let broker = AuditBroker::new();
    let err = broker.configure(vec![s.clone()], settings()).unwrap_err();
    assert!(matches!(err, AuditError::PrefixNotAllowed { .. }));
    assert!(broker.is_empty());
    broker
        .configure(
            vec![s],
            AuditSettings {
                allow_audit_log_prefixing: true,
            },
        )
        .unwrap();
    broker.log_request(&kv_write()).unwrap();
    let text = fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("KURA {\"time\":"), "{text}");
}

#[test]
fn no_device_means_nothing_to_record() {
    let broker = AuditBroker::new();
    assert!(broker.is_empty());
    broker.log_request(&kv_write()).unwrap();
    broker
        .log_response(&kv_write(), &kv_write_response())
        .unwrap();
}

#[test]
fn the_only_device_failing_refuses_and_a_working_second_device_allows() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.log");
    let good = dir.path().join("good.log");
    let broker = AuditBroker::new();
    let bad_spec = file_spec("bad", &bad);
    broker
        .configure(vec![bad_spec.clone()], settings())
        .unwrap();
    broker.log_request(&kv_write()).unwrap();

    // the file is replaced by a directory, and the device reopens (SIGHUP)
    fs::remove_file(&bad).unwrap();
    fs::create_dir(&bad).unwrap();
    let report = broker.reload(vec![bad_spec.clone()], settings());
    assert!(report.changes.is_ok());
    assert_eq!(report.reopen_errors.len(), 1);
    assert!(matches!(report.reopen_errors[0].1, AuditError::Open { .. }));

    match broker.log_request(&kv_write()) {
        Err(AuditError::NotRecorded { entry, failures }) => {
            assert_eq!(entry, "request");
            assert_eq!(failures.len(), 1);
            assert_eq!(failures[0].0, "bad/");
            assert!(matches!(failures[0].1, AuditError::Write { .. }));
        }
        other => panic!("expected NotRecorded, got {other:?}"),
    }
    assert!(matches!(
        broker.log_response(&kv_write(), &kv_write_response()),
        Err(AuditError::NotRecorded {
            entry: "response",
            ..
        })
    ));

    // a second, working device: the request is recorded there and allowed
    broker
        .configure(vec![bad_spec, file_spec("good", &good)], settings())
        .unwrap();
    broker.log_request(&kv_write()).unwrap();
    assert_eq!(lines(&good).len(), 1);

    // the broken device recovers once its file can be written again
    fs::remove_dir(&bad).unwrap();
    broker.log_request(&kv_write()).unwrap();
    assert_eq!(lines(&bad).len(), 1);
    assert_eq!(lines(&good).len(), 2);
}

#[test]
fn a_discard_device_records_nothing_but_counts() {
    let broker = AuditBroker::new();
    broker
        .configure(
            vec![spec(
                "d",
                &[("file_path", "discard")],
                &Salt::generate().unwrap(),
            )],
            settings(),
        )
        .unwrap();
    broker.log_request(&kv_write()).unwrap();
}

#[test]
fn a_device_whose_file_cannot_be_opened_is_refused_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.log");
    let not_a_dir = dir.path().join("plain-file");
    fs::write(&not_a_dir, b"x").unwrap();
    let broker = AuditBroker::new();
    broker
        .configure(vec![file_spec("good", &good)], settings())
        .unwrap();
    // a path under a regular file, and a path that is a directory
    for bad in [not_a_dir.join("audit.log"), dir.path().to_path_buf()] {
        let err = broker
            .configure(
                vec![file_spec("good", &good), file_spec("bad", &bad)],
                settings(),
            )
            .unwrap_err();
        assert!(matches!(err, AuditError::Open { .. }), "{err}");
        assert_eq!(broker.list().keys().collect::<Vec<_>>(), ["good/"]);
    }
}

#[test]
fn bad_configurations_are_refused_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    let broker = AuditBroker::new();
    broker
        .configure(vec![file_spec("a", &a)], settings())
        .unwrap();

    let jsonx = spec(
        "x",
        &[("file_path", "discard"), ("format", "jsonx")],
        &Salt::generate().unwrap(),
    );
    assert!(matches!(
        broker.configure(vec![file_spec("a", &a), jsonx], settings()),
        Err(AuditError::JsonxRemoved { .. })
    ));
    assert!(matches!(
        broker.configure(vec![file_spec("a", &a), file_spec("a/", &a)], settings()),
        Err(AuditError::DuplicatePath(p)) if p == "a/"
    ));
    let mut syslog = file_spec("s", &a);
    syslog.config.kind = "syslog".into();
    assert!(matches!(
        broker.configure(vec![syslog], settings()),
        Err(AuditError::UnsupportedType { .. })
    ));
    assert!(matches!(
        broker.configure(vec![file_spec("/", &a)], settings()),
        Err(AuditError::EmptyPath)
    ));
    assert!(matches!(
        broker.configure(
            vec![spec(
                "e",
                &[("file_path", "discard")],
                &Salt::from_bytes(Vec::new())
            )],
            settings()
        ),
        Err(AuditError::EmptySalt { .. })
    ));
    assert_eq!(broker.list().keys().collect::<Vec<_>>(), ["a/"]);
}

#[test]
fn reload_adds_removes_keeps_and_refuses_modifications() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a.log"),
        dir.path().join("b.log"),
        dir.path().join("c.log"),
    );
    let broker = AuditBroker::new();
    let spec_a = file_spec("a", &a);
    let spec_b = file_spec("b", &b);
    let changes = broker
        .configure(vec![spec_a.clone(), spec_b.clone()], settings())
        .unwrap();
    assert_eq!(changes.added, ["a/", "b/"]);
    let hash_a = broker.hash("a", ROOT_TOKEN).unwrap();

    // b's block is removed, c's added; a is kept (a new salt offered for it is not used)
    let mut spec_a_again = spec_a.clone();
    spec_a_again.salt = Salt::generate().unwrap();
    let report = broker.reload(vec![spec_a_again, file_spec("c", &c)], settings());
    let changes = report.changes.unwrap();
    assert_eq!(changes.added, ["c/"]);
    assert_eq!(changes.removed, ["b/"]);
    assert_eq!(changes.kept, ["a/"]);
    assert!(report.reopen_errors.is_empty());
    assert_eq!(broker.list().keys().collect::<Vec<_>>(), ["a/", "c/"]);
    assert_eq!(broker.hash("a", ROOT_TOKEN).unwrap(), hash_a);
    assert!(matches!(broker.hash("b", "x"), Err(AuditError::UnknownDevice(p)) if p == "b/"));

    broker.log_request(&kv_write()).unwrap();
    assert_eq!(lines(&a).len(), 1);
    assert_eq!(lines(&b).len(), 0);
    assert_eq!(lines(&c).len(), 1);

    // a changed option is refused; the set is unchanged and files are still reopened
    let mut modified = spec_a.clone();
    modified.config.options.insert(
        "file_path".into(),
        dir.path().join("a2.log").display().to_string(),
    );
    fs::rename(&a, dir.path().join("a.log.1")).unwrap();
    let report = broker.reload(vec![modified, file_spec("c", &c)], settings());
    match report.changes {
        Err(AuditError::Modified { path, what }) => {
            assert_eq!(path, "a/");
            assert_eq!(what, "option file_path");
        }
        other => panic!("expected Modified, got {other:?}"),
    }
    assert_eq!(broker.list().keys().collect::<Vec<_>>(), ["a/", "c/"]);
    broker.log_request(&kv_write()).unwrap();
    assert_eq!(lines(&a).len(), 1, "a was reopened at its file_path");

    let mut described = spec_a.clone();
    described.config.description = Some("other".into());
    assert!(matches!(
        broker.configure(vec![described], settings()),
        Err(AuditError::Modified { what, .. }) if what == "description"
    ));

    // an empty configuration removes every declarative device
    let changes = broker.configure(Vec::new(), settings()).unwrap();
    assert_eq!(changes.removed, ["a/", "c/"]);
    assert!(broker.is_empty());
}

#[test]
fn reload_reopens_files_after_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let rotated = dir.path().join("audit.log.1");
    let broker = AuditBroker::new();
    let s = file_spec("file", &file);
    broker.configure(vec![s.clone()], settings()).unwrap();
    broker.log_request(&kv_write()).unwrap();

    fs::rename(&file, &rotated).unwrap();
    // before the reload, lines still go to the renamed file (the open handle)
    broker.log_request(&kv_write()).unwrap();
    assert!(!file.exists());
    assert_eq!(lines(&rotated).len(), 2);

    let report = broker.reload(vec![s], settings());
    assert!(report.changes.is_ok() && report.reopen_errors.is_empty());
    broker.log_request(&kv_write()).unwrap();
    broker
        .log_response(&kv_write(), &kv_write_response())
        .unwrap();
    assert_eq!(lines(&rotated).len(), 2, "no new line in the rotated file");
    assert_eq!(
        lines(&file).len(),
        2,
        "new lines in a new file at file_path"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // reopen() alone does the same
    fs::rename(&file, dir.path().join("audit.log.2")).unwrap();
    assert!(broker.reopen().is_empty());
    broker.log_request(&kv_write()).unwrap();
    assert_eq!(lines(&file).len(), 1);
}

#[test]
fn api_devices_coexist_with_declarative_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (a, api) = (dir.path().join("a.log"), dir.path().join("api.log"));
    let broker = AuditBroker::new();
    broker
        .configure(vec![file_spec("a", &a)], settings())
        .unwrap();
    broker.enable(file_spec("api", &api), settings()).unwrap();
    assert!(matches!(
        broker.enable(file_spec("a", &api), settings()),
        Err(AuditError::AlreadyEnabled(p)) if p == "a/"
    ));
    // a configuration block cannot take an API device's path
    assert!(matches!(
        broker.configure(vec![file_spec("a", &a), file_spec("api", &api)], settings()),
        Err(AuditError::CreatedByApi(p)) if p == "api/"
    ));
    // reloads leave API devices alone
    let changes = broker
        .configure(vec![file_spec("a", &a)], settings())
        .unwrap();
    assert!(changes.removed.is_empty());
    assert!(broker.contains("api"));
    // only API devices can be disabled through the API
    assert!(matches!(broker.disable("a"), Err(AuditError::Declarative(p)) if p == "a/"));
    assert!(!broker.disable("nonexistent").unwrap());
    assert!(broker.disable("api/").unwrap());
    assert!(!broker.contains("api"));
    broker.clear();
    assert!(broker.is_empty());
}

#[test]
fn list_shows_devices_as_sys_audit_does() {
    let broker = AuditBroker::new();
    let mut s = spec(
        "to-stdout",
        &[("file_path", "stdout"), ("log_raw", "true")],
        &Salt::generate().unwrap(),
    );
    s.config.description = Some("This audit device should never fail.".into());
    broker.configure(vec![s], settings()).unwrap();
    let list = serde_json::to_value(broker.list()).unwrap();
    assert_eq!(
        list,
        json!({"to-stdout/": {
            "description": "This audit device should never fail.",
            "local": false,
            "options": {"file_path": "stdout", "log_raw": "true"},
            "path": "to-stdout/",
            "type": "file",
        }})
    );
    broker
        .validate(&broker_config("x", &[("file_path", "discard")]), settings())
        .unwrap();
    assert!(broker
        .validate(
            &broker_config("x", &[("file_path", "/a"), ("mode", "9")]),
            settings()
        )
        .is_err());
}

fn broker_config(path: &str, options: &[(&str, &str)]) -> kura_config::AuditDeviceConfig {
    spec(path, options, &Salt::from_bytes(b"s".to_vec())).config
}

#[test]
fn hashes_survive_a_restart_with_the_same_salt() {
    let salt = Salt::generate().unwrap();
    let stored = salt.as_bytes().to_vec();
    let first = AuditBroker::new();
    first
        .configure(
            vec![spec("f", &[("file_path", "discard")], &salt)],
            settings(),
        )
        .unwrap();
    let before = first.hash("f", ROOT_TOKEN).unwrap();
    drop(first);

    let restarted = AuditBroker::new();
    restarted
        .configure(
            vec![spec(
                "f",
                &[("file_path", "discard")],
                &Salt::from_bytes(stored),
            )],
            settings(),
        )
        .unwrap();
    assert_eq!(restarted.hash("f/", ROOT_TOKEN).unwrap(), before);

    let other = AuditBroker::new();
    other
        .configure(
            vec![spec(
                "f",
                &[("file_path", "discard")],
                &Salt::generate().unwrap(),
            )],
            settings(),
        )
        .unwrap();
    assert_ne!(other.hash("f", ROOT_TOKEN).unwrap(), before);
}

#[test]
fn concurrent_writers_produce_whole_lines() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let broker = std::sync::Arc::new(AuditBroker::new());
    broker
        .configure(vec![file_spec("file", &file)], settings())
        .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let b = broker.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    b.log_request(&kv_write()).unwrap();
                    b.log_response(&kv_write(), &kv_write_response()).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(lines(&file).len(), 400);
}

const STDOUT_CHILD: &str = "KURA_AUDIT_TEST_STDOUT_CHILD";

#[test]
fn stdout_device_writes_to_standard_output() {
    if std::env::var_os(STDOUT_CHILD).is_some() {
        // In the child process: log to the real standard output.
        let broker = AuditBroker::new();
        broker
            .configure(
                vec![spec(
                    "out",
                    &[("file_path", "stdout")],
                    &Salt::generate().unwrap(),
                )],
                settings(),
            )
            .unwrap();
        broker.log_request(&kv_write()).unwrap();
        broker
            .log_response(&kv_write(), &kv_write_response())
            .unwrap();
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "tests::stdout_device_writes_to_standard_output",
            "--test-threads=1",
        ])
        .env(STDOUT_CHILD, "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "child failed: {out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    // The test harness may print its own text on the same line before an entry.
    let entries: Vec<Value> = stdout
        .lines()
        .filter_map(|l| l.find("{\"time\"").map(|i| &l[i..]))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 2, "{stdout}");
    assert_eq!(entries[0]["type"], "request");
    assert_eq!(entries[1]["type"], "response");
    assert!(entries[0]["request"]["client_token"]
        .as_str()
        .unwrap()
        .starts_with("hmac-sha256:"));
    for secret in [ROOT_TOKEN, PASSWORD, SECRET_VALUE] {
        assert!(!stdout.contains(secret));
    }
}

/// Replaces every `hmac-sha256:<64 hex>` by `HMAC` and the entry's time by `TIME`, so lines
/// from devices with different salts, written at different times, compare.
fn mask(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find(HMAC_PREFIX) {
        out.push_str(&rest[..i]);
        out.push_str("HMAC");
        rest = &rest[i + HMAC_PREFIX.len() + 64..];
    }
    out.push_str(rest);
    let start = out.find("{\"time\":\"").unwrap() + 9;
    let end = start + out[start..].find('"').unwrap();
    out.replace_range(start..end, "TIME");
    out
}

/// Lines `bao server -dev` (OpenBao 2.7.2) wrote for a userpass login and a
/// `sys/wrapping/wrap` with a file audit device; Kura's lines for the same inputs must be the
/// same text once hashes and times are masked.
#[test]
fn lines_match_openbao_byte_for_byte_apart_from_hashes_and_time() {
    const BAO_LOGIN: &str = r#"{"time":"2026-11-21T23:57:28.9358854Z","type":"response","auth":{"client_token":"hmac-sha256:fc4b2bb9d5f43db0f70c6f4ace2bfcf85f470590d2f52687b39de1d3fedbfc18","accessor":"hmac-sha256:afeee8b2bf3803023f5c212f322ed9416803cd9fa19842746e78e03bbb0c06b5","display_name":"userpass-bob","policies":["default"],"token_policies":["default"],"metadata":{"username":"bob"},"entity_id":"bafeef8e-4adb-1566-cf66-775e1e094622","entity_created":true,"token_type":"service","token_ttl":2764800},"request":{"id":"3bb30bbb-e8f0-1a9c-c31a-577db4485b2d","operation":"update","mount_point":"auth/userpass/","mount_type":"userpass","mount_accessor":"auth_userpass_e9b10298","mount_running_version":"v2.7.2+builtin.bao","mount_class":"auth","namespace":{"id":"root"},"path":"auth/userpass/login/bob","data":{"password":"hmac-sha256:07dc0e79aecf23d65af8c85563d882e7437594f5ce54750f43d95bd6a65dbee2"},"remote_address":"127.0.0.1","remote_port":46352},"response":{"auth":{"client_token":"hmac-sha256:fc4b2bb9d5f43db0f70c6f4ace2bfcf85f470590d2f52687b39de1d3fedbfc18","accessor":"hmac-sha256:afeee8b2bf3803023f5c212f322ed9416803cd9fa19842746e78e03bbb0c06b5","display_name":"userpass-bob","policies":["default"],"token_policies":["default"],"metadata":{"username":"bob"},"entity_id":"bafeef8e-4adb-1566-cf66-775e1e094622","token_type":"service","token_ttl":2764800},"mount_point":"auth/userpass/","mount_type":"userpass","mount_accessor":"auth_userpass_e9b10298","mount_running_plugin_version":"v2.7.2+builtin.bao","mount_class":"auth"}}"#;
    const BAO_WRAP: &str = r#"{"time":"2026-11-21T23:57:25.703127389Z","type":"response","auth":{"client_token":"hmac-sha256:f2c44964c7824650e30942c3d8afb1bb8c62806c196cef7e922837cefc73b310","accessor":"hmac-sha256:2916dbbb5a2325e9b377519edd069ee841a18b6173cd658047a74387811a95a4","display_name":"token","policies":["root"],"token_policies":["root"],"policy_results":{"allowed":true,"granting_policies":[{"name":"root","namespace_id":"root","type":"acl"}]},"token_type":"service","token_issue_time":"2026-11-21T23:57:19Z"},"request":{"id":"987de0c2-1d33-a919-7a6f-20a0edb2935f","client_id":"0DHqvq2D77kL2/JTPSZkTMJbkFVmUu0TzMi0jiXcFy8=","operation":"update","mount_point":"sys/","mount_type":"system","mount_accessor":"system_107860ef","mount_running_version":"v2.7.2+builtin.bao","mount_class":"secret","client_token":"hmac-sha256:f2c44964c7824650e30942c3d8afb1bb8c62806c196cef7e922837cefc73b310","client_token_accessor":"hmac-sha256:2916dbbb5a2325e9b377519edd069ee841a18b6173cd658047a74387811a95a4","namespace":{"id":"root"},"path":"sys/wrapping/wrap","data":{"foo":"hmac-sha256:fba749a8f4c5d2ce75b8e4355a69213551322675b9c59f269209b1335ef81c3d"},"remote_address":"127.0.0.1","remote_port":43188,"wrap_ttl":60},"response":{"mount_point":"sys/","mount_type":"system","mount_accessor":"system_107860ef","mount_running_plugin_version":"v2.7.2+builtin.bao","mount_class":"secret","wrap_info":{"ttl":60,"token":"hmac-sha256:c9f091a416430466e9c296db4bdb096f8e34ec5034a2045eba7da333500d9e9b","accessor":"hmac-sha256:22ade4c7a80130c3ab09c0c4dac77a452223fb0c346a3ff10f7b3865a506528e","creation_time":"2026-11-21T23:57:25.702324113Z","creation_path":"sys/wrapping/wrap"}}}"#;

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    let broker = AuditBroker::new();
    broker
        .configure(vec![file_spec("file", &file)], settings())
        .unwrap();

    // userpass login: the new token is the response entry's top-level auth
    let new_token = AuditAuth {
        client_token: "s.yDEey9g35rAl2ygIPaOfMHcU".into(),
        accessor: "vqwgl8TJhYnmktKKW7x6MRQs".into(),
        display_name: "userpass-bob".into(),
        policies: vec!["default".into()],
        token_policies: vec!["default".into()],
        metadata: BTreeMap::from([("username".to_string(), "bob".to_string())]),
        entity_id: "bafeef8e-4adb-1566-cf66-775e1e094622".into(),
        token_type: "service".into(),
        token_ttl: 2_764_800,
        ..Default::default()
    };
    let login_req = AuditRequest {
        auth: Some(AuditAuth {
            entity_created: true,
            ..new_token.clone()
        }),
        id: "3bb30bbb-e8f0-1a9c-c31a-577db4485b2d".into(),
        operation: "update".into(),
        mount_point: "auth/userpass/".into(),
        mount_type: "userpass".into(),
        mount_accessor: "auth_userpass_e9b10298".into(),
        mount_running_version: "v2.7.2+builtin.bao".into(),
        mount_class: "auth".into(),
        path: "auth/userpass/login/bob".into(),
        data: Some(obj(json!({"password": "bobpw"}))),
        remote_address: "127.0.0.1".into(),
        remote_port: 46352,
        ..Default::default()
    };
    let login_resp = AuditResponse {
        auth: Some(new_token),
        ..Default::default()
    };
    broker.log_response(&login_req, &login_resp).unwrap();

    // sys/wrapping/wrap by the root token
    let wrap_req = AuditRequest {
        auth: Some(root_auth()),
        id: "987de0c2-1d33-a919-7a6f-20a0edb2935f".into(),
        client_id: "0DHqvq2D77kL2/JTPSZkTMJbkFVmUu0TzMi0jiXcFy8=".into(),
        operation: "update".into(),
        mount_point: "sys/".into(),
        mount_type: "system".into(),
        mount_accessor: "system_107860ef".into(),
        mount_running_version: "v2.7.2+builtin.bao".into(),
        mount_class: "secret".into(),
        client_token: ROOT_TOKEN.into(),
        client_token_accessor: ROOT_ACCESSOR.into(),
        path: "sys/wrapping/wrap".into(),
        data: Some(obj(json!({"foo": "bar"}))),
        remote_address: "127.0.0.1".into(),
        remote_port: 43188,
        wrap_ttl: 60,
        ..Default::default()
    };
    let wrap_resp = AuditResponse {
        wrap_info: Some(AuditWrapInfo {
            ttl: 60,
            token: WRAP_TOKEN.into(),
            accessor: WRAP_ACCESSOR.into(),
            creation_time: "2026-11-21T23:57:25.702324113Z".into(),
            creation_path: "sys/wrapping/wrap".into(),
            wrapped_accessor: String::new(),
        }),
        ..Default::default()
    };
    broker.log_response(&wrap_req, &wrap_resp).unwrap();

    let text = fs::read_to_string(&file).unwrap();
    let ours: Vec<&str> = text.lines().collect();
    assert_eq!(mask(ours[0]), mask(BAO_LOGIN));
    assert_eq!(mask(ours[1]), mask(BAO_WRAP));
}

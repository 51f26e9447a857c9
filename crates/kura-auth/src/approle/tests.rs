use super::*;
use crate::testutil::{config, from, req};
use kura_logical::{MemoryStorage, Operation as O};
use serde_json::{json, Value};

fn backend() -> (Arc<ApproleBackend>, Arc<MemoryStorage>) {
    let s = Arc::new(MemoryStorage::new());
    (
        Arc::new(ApproleBackend::new(config("approle", s.clone()))),
        s,
    )
}

async fn call(b: &ApproleBackend, op: O, path: &str, body: Value) -> Result<Option<Response>> {
    b.handle(&req(op, path, body)).await
}

async fn data(b: &ApproleBackend, op: O, path: &str, body: Value) -> Value {
    Value::Object(
        call(b, op, path, body)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .unwrap_or_else(|| panic!("{path}: no response"))
            .data
            .unwrap_or_default(),
    )
}

async fn role_id(b: &ApproleBackend, role: &str) -> String {
    data(b, O::Read, &format!("role/{role}/role-id"), json!({})).await["role_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Generates a secret ID; returns (secret_id, accessor).
async fn secret(b: &ApproleBackend, role: &str, body: Value) -> (String, String) {
    let d = data(b, O::Update, &format!("role/{role}/secret-id"), body).await;
    (
        d["secret_id"].as_str().unwrap().to_string(),
        d["secret_id_accessor"].as_str().unwrap().to_string(),
    )
}

async fn login(
    b: &ApproleBackend,
    rid: &str,
    sid: Option<&str>,
    ip: Option<&str>,
) -> Result<Option<Response>> {
    let body = match sid {
        Some(s) => json!({"role_id": rid, "secret_id": s}),
        None => json!({"role_id": rid, "secret_id": null}),
    };
    let r = req(O::Update, "login", body);
    let r = match ip {
        Some(ip) => from(r, ip),
        None => r,
    };
    b.handle(&r).await
}

/// Every stored key and value as one string.
async fn dump(s: &MemoryStorage) -> String {
    let mut out = String::new();
    for k in s.list_recursive("").await.unwrap() {
        out.push_str(&k);
        out.push('\n');
        out.push_str(&String::from_utf8_lossy(&s.get(&k).await.unwrap().unwrap()));
        out.push('\n');
    }
    out
}

async fn keys(s: &MemoryStorage) -> Vec<String> {
    s.list_recursive("").await.unwrap()
}

fn err_of(r: Result<Option<Response>>) -> (u16, String) {
    let e = r.expect_err("expected an error");
    (e.status(), e.to_string())
}

#[tokio::test]
async fn role_crud_matches_openbao_shapes() {
    let (b, _) = backend();
    let w = call(
        &b,
        O::Create,
        "role/MyRole",
        json!({"token_policies": "a,B", "secret_id_ttl": "10m", "token_ttl": "20m"}),
    )
    .await
    .unwrap();
    assert!(w.is_none());
    let d = data(&b, O::Read, "role/myrole", json!({})).await;
    assert_eq!(
        d,
        json!({
            "bind_secret_id": true, "local_secret_ids": false, "secret_id_bound_cidrs": null,
            "secret_id_num_uses": 0, "secret_id_ttl": 600, "token_bound_cidrs": [],
            "token_explicit_max_ttl": 0, "token_max_ttl": 0, "token_no_default_policy": false,
            "token_num_uses": 0, "token_period": 0, "token_policies": ["a", "B"],
            "token_strictly_bind_ip": false, "token_ttl": 1200, "token_type": "default"
        })
    );
    assert_eq!(data(&b, O::Read, "role/MYROLE", json!({})).await, d);
    call(
        &b,
        O::Create,
        "role/other",
        json!({"policies": "Zed, b,b", "period": "1h"}),
    )
    .await
    .unwrap();
    let d = data(&b, O::Read, "role/other", json!({})).await;
    assert_eq!(d["policies"], json!(["b", "zed"]));
    assert_eq!(d["token_policies"], json!(["b", "zed"]));
    assert_eq!(
        (d["period"].clone(), d["token_period"].clone()),
        (json!(3600), json!(3600))
    );
    let l = data(&b, O::List, "role", json!({})).await;
    assert_eq!(l["keys"], json!(["myrole", "other"]));
    let l = data(&b, O::List, "role/", json!({"limit": 1})).await;
    assert_eq!(l["keys"], json!(["myrole"]));
    let rid = role_id(&b, "myrole").await;
    assert_eq!(rid.len(), 36, "a UUID");

    // Warnings and validation as OpenBao.
    let r = call(
        &b,
        O::Update,
        "role/other",
        json!({"token_type": "default-service"}),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        r.warnings,
        vec!["default-service has no useful meaning; adjusting to service"]
    );
    let r = call(
        &b,
        O::Update,
        "role/other",
        json!({"token_max_ttl": "10000h"}),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        r.warnings[0].starts_with("token_max_ttl is greater than the backend mount's maximum TTL")
    );
    let cases = [
        (json!({"token_ttl": "20000h"}), 400, "'token_ttl' cannot be greater than 'token_max_ttl'"),
        (json!({"local_secret_ids": true}), 400, "local_secret_ids can only be modified during role creation"),
        (json!({"secret_id_num_uses": -1}), 400, "secret_id_num_uses cannot be negative"),
        (json!({"token_num_uses": -1}), 400, "'token_num_uses' cannot be negative"),
        (json!({"role_id": ""}), 400, "invalid role_id supplied, or failed to generate a role_id"),
        (
            json!({"period": "10000h"}),
            400,
            "period of \"10000h0m0s\" is greater than the backend's maximum lease TTL of \"768h0m0s\"",
        ),
        (
            json!({"secret_id_bound_cidrs": "bogus"}),
            500,
            "1 error occurred:\n\t* failed to validate CIDR blocks: invalid CIDR address: bogus\n\n",
        ),
        (
            json!({"bind_secret_id": false}),
            500,
            "1 error occurred:\n\t* at least one constraint should be enabled on the role\n\n",
        ),
    ];
    for (body, status, msg) in cases {
        assert_eq!(
            err_of(call(&b, O::Update, "role/other", body.clone()).await),
            (status, msg.to_string()),
            "{body}"
        );
    }
    let (st, msg) = err_of(call(&b, O::Update, "role/other", json!({"token_type": "batch"})).await);
    assert_eq!(st, 400);
    assert!(msg.contains("batch tokens are not supported"));

    // A role ID cannot be shared.
    assert_eq!(
        err_of(call(&b, O::Update, "role/other", json!({"role_id": rid})).await),
        (
            500,
            "1 error occurred:\n\t* role_id already in use\n\n".to_string()
        )
    );

    assert!(call(&b, O::Delete, "role/MyRole", json!({}))
        .await
        .unwrap()
        .is_none());
    assert!(call(&b, O::Read, "role/myrole", json!({}))
        .await
        .unwrap()
        .is_none());
    assert!(call(&b, O::Delete, "role/myrole", json!({}))
        .await
        .unwrap()
        .is_none());
    // The deleted role's ID is free again.
    call(&b, O::Update, "role/other", json!({"role_id": rid}))
        .await
        .unwrap();
    assert_eq!(role_id(&b, "other").await, rid);
}

#[tokio::test]
async fn login_with_secret_id() {
    let (b, s) = backend();
    call(
        &b,
        O::Create,
        "role/web",
        json!({"token_policies": "A,b", "token_ttl": "20m", "token_max_ttl": "1h"}),
    )
    .await
    .unwrap();
    let rid = role_id(&b, "web").await;
    let (sid, acc) = secret(&b, "web", json!({"metadata": "{\"team\":\"blue\"}"})).await;
    let resp = login(&b, &rid, Some(&sid), None).await.unwrap().unwrap();
    let auth = resp.auth.unwrap();
    assert_eq!(auth.policies, vec!["a", "b"]);
    assert_eq!(auth.token_policies, vec!["a", "b"]);
    let md = auth.metadata.unwrap();
    assert_eq!(
        (md["team"].as_str(), md["role_name"].as_str()),
        ("blue", "web")
    );
    assert_eq!(auth.internal_data.unwrap()["role_name"], "web");
    assert_eq!((auth.ttl, auth.max_ttl), (1200, 3600));
    assert!(auth.renewable && auth.display_name.is_empty());
    assert!(auth.client_token.is_empty() && auth.accessor.is_empty() && auth.lease_duration == 0);
    // Unlimited secret IDs stay usable.
    assert!(login(&b, &rid, Some(&sid), None).await.is_ok());

    // Neither the secret ID nor its accessor is stored in the clear; the salt exists once.
    let raw = dump(&s).await;
    assert!(!raw.contains(&sid), "secret ID in storage");
    assert!(
        !raw.contains(&format!("accessor/{acc}")),
        "accessor used as a key"
    );
    assert_eq!(keys(&s).await.iter().filter(|k| *k == "salt").count(), 1);
    let salt_before = s.get("salt").await.unwrap();
    secret(&b, "web", json!({})).await;
    assert_eq!(
        s.get("salt").await.unwrap(),
        salt_before,
        "salt generated once"
    );
}

#[tokio::test]
async fn failed_logins() {
    let (b, _) = backend();
    call(&b, O::Create, "role/web", json!({})).await.unwrap();
    let rid = role_id(&b, "web").await;
    let (sid, _) = secret(&b, "web", json!({})).await;
    let invalid = (400, "invalid role or secret ID".to_string());
    assert_eq!(err_of(login(&b, &rid, Some("wrong"), None).await), invalid);
    assert_eq!(err_of(login(&b, "wrong", Some(&sid), None).await), invalid);
    assert_eq!(
        err_of(login(&b, &rid, None, None).await),
        (400, "missing secret_id".to_string())
    );
    assert_eq!(
        err_of(login(&b, "", Some(&sid), None).await),
        (500, "missing role_id".to_string())
    );
    // A secret ID of another role does not open this one.
    call(&b, O::Create, "role/db", json!({})).await.unwrap();
    let rid_db = role_id(&b, "db").await;
    assert_eq!(err_of(login(&b, &rid_db, Some(&sid), None).await), invalid);
    // Nothing was spent by the failures.
    assert!(login(&b, &rid, Some(&sid), None).await.is_ok());
}

#[tokio::test]
async fn secret_id_uses_are_spent_and_exhausted() {
    let (b, s) = backend();
    call(&b, O::Create, "role/job", json!({"secret_id_num_uses": 2}))
        .await
        .unwrap();
    let rid = role_id(&b, "job").await;
    let (sid, _) = secret(&b, "job", json!({})).await;
    let d = data(
        &b,
        O::Update,
        "role/job/secret-id/lookup",
        json!({"secret_id": sid}),
    )
    .await;
    assert_eq!(d["secret_id_num_uses"], 2);
    login(&b, &rid, Some(&sid), None).await.unwrap();
    let d = data(
        &b,
        O::Update,
        "role/job/secret-id/lookup",
        json!({"secret_id": sid}),
    )
    .await;
    assert_eq!(d["secret_id_num_uses"], 1);
    assert_ne!(d["last_updated_time"], d["creation_time"]);
    login(&b, &rid, Some(&sid), None).await.unwrap();
    assert_eq!(
        err_of(login(&b, &rid, Some(&sid), None).await),
        (400, "invalid role or secret ID".to_string())
    );
    // The exhausted secret ID and its accessor are gone.
    assert!(call(&b, O::List, "role/job/secret-id", json!({}))
        .await
        .unwrap()
        .is_none());
    let left: Vec<String> = keys(&s).await;
    assert!(
        left.iter()
            .all(|k| !k.starts_with("secret_id/") && !k.starts_with("accessor/")),
        "{left:?}"
    );
}

#[tokio::test]
async fn concurrent_logins_never_spend_a_use_twice() {
    let s = Arc::new(MemoryStorage::new());
    let b = Arc::new(ApproleBackend::new(crate::testutil::yielding_config(
        "approle", s,
    )));
    call(&b, O::Create, "role/par", json!({"secret_id_num_uses": 5}))
        .await
        .unwrap();
    let rid = role_id(&b, "par").await;
    let (sid, _) = secret(&b, "par", json!({})).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (b, rid, sid) = (Arc::clone(&b), rid.clone(), sid.clone());
        tasks.push(tokio::spawn(async move {
            login(&b, &rid, Some(&sid), None).await.is_ok()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() {
            ok += 1;
        }
    }
    assert_eq!(ok, 5, "exactly the allowed number of logins");
}

#[tokio::test]
async fn expired_secret_ids_are_refused_and_tidied() {
    let (b, s) = backend();
    call(&b, O::Create, "role/short", json!({"secret_id_ttl": 1}))
        .await
        .unwrap();
    let rid = role_id(&b, "short").await;
    let (sid, acc) = secret(&b, "short", json!({})).await;
    let _also_expiring = secret(&b, "short", json!({"ttl": 1})).await;
    let d = data(
        &b,
        O::Update,
        "role/short/secret-id/lookup",
        json!({"secret_id": sid}),
    )
    .await;
    assert_eq!(d["secret_id_ttl"], 1);
    assert_ne!(d["expiration_time"], "0001-01-01T00:00:00Z");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        err_of(login(&b, &rid, Some(&sid), None).await),
        (400, "invalid role or secret ID".to_string())
    );
    assert!(call(
        &b,
        O::Update,
        "role/short/secret-id/lookup",
        json!({"secret_id": sid})
    )
    .await
    .unwrap()
    .is_none());
    assert!(call(
        &b,
        O::Update,
        "role/short/secret-id-accessor/lookup",
        json!({"secret_id_accessor": acc})
    )
    .await
    .unwrap()
    .is_none());

    // A non-expiring one survives the tidy.
    call(
        &b,
        O::Update,
        "role/short/secret-id-ttl",
        json!({"secret_id_ttl": 0}),
    )
    .await
    .unwrap();
    let (live, _) = secret(&b, "short", json!({})).await;
    let report = b.tidy_secret_ids().await.unwrap();
    assert_eq!(report.expired, 2);
    assert_eq!(report.checked, 3);
    let l = data(&b, O::List, "role/short/secret-id", json!({})).await;
    assert_eq!(l["keys"].as_array().unwrap().len(), 1);
    assert!(login(&b, &rid, Some(&live), None).await.is_ok());
    let left = keys(&s).await;
    assert_eq!(
        left.iter().filter(|k| k.starts_with("accessor/")).count(),
        1,
        "{left:?}"
    );
}

#[tokio::test]
async fn tidy_endpoint_runs_in_the_background_and_fixes_dangling_entries() {
    let (b, s) = backend();
    call(&b, O::Create, "role/t", json!({"secret_id_ttl": 1}))
        .await
        .unwrap();
    secret(&b, "t", json!({})).await;
    // A dangling accessor (its secret ID vanished) and a secret ID without accessor.
    call(
        &b,
        O::Update,
        "role/t/secret-id-ttl",
        json!({"secret_id_ttl": 0}),
    )
    .await
    .unwrap();
    secret(&b, "t", json!({})).await;
    secret(&b, "t", json!({})).await;
    let all = keys(&s).await;
    let secrets: Vec<&String> = all.iter().filter(|k| k.starts_with("secret_id/")).collect();
    let accessors: Vec<&String> = all.iter().filter(|k| k.starts_with("accessor/")).collect();
    assert_eq!((secrets.len(), accessors.len()), (3, 3));
    // Remove one accessor whose secret ID is not expired, and find its secret ID's sibling.
    let mut removed_secret = None;
    for a in &accessors {
        let acc: secret_id::AccessorEntry =
            serde_json::from_slice(&s.get(a).await.unwrap().unwrap()).unwrap();
        let sk = format!("secret_id/{}/{}", acc.role_name_hmac, acc.secret_id_hmac);
        let e: secret_id::SecretIdEntry =
            serde_json::from_slice(&s.get(&sk).await.unwrap().unwrap()).unwrap();
        if e.expiration_time == 0 {
            if removed_secret.is_none() {
                s.delete(a).await.unwrap();
                removed_secret = Some(sk);
            } else {
                s.delete(&sk).await.unwrap();
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = call(&b, O::Update, "tidy/secret-id", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, Some(202));
    assert_eq!(
        r.warnings,
        vec!["Tidy operation successfully started. Any information from the operation will be printed to OpenBao's server logs."]
    );
    // Wait for the background pass.
    let mut left = keys(&s).await;
    for _ in 0..100 {
        if !left
            .iter()
            .any(|k| k.starts_with("secret_id/") || k.starts_with("accessor/"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        left = keys(&s).await;
    }
    assert_eq!(left.len(), 3, "{left:?}");
    assert_eq!((left[0].as_str(), left[2].as_str()), ("role/t", "salt"));
    assert!(left[1].starts_with("role_id/"));
    assert!(!b
        .inner
        .tidy_running
        .load(std::sync::atomic::Ordering::Acquire));
    assert!(removed_secret.is_some());
}

#[tokio::test]
async fn cidr_restrictions() {
    let (b, _) = backend();
    call(
        &b,
        O::Create,
        "role/net",
        json!({"secret_id_bound_cidrs": "10.0.0.0/8", "secret_id_num_uses": 3}),
    )
    .await
    .unwrap();
    let rid = role_id(&b, "net").await;
    // A secret ID's blocks must lie inside the role's.
    let (st, msg) = err_of(
        call(
            &b,
            O::Update,
            "role/net/secret-id",
            json!({"cidr_list": "192.168.0.0/16"}),
        )
        .await,
    );
    assert_eq!(st, 500);
    assert!(msg.contains("failed to verify subset relationship between CIDR blocks on the role [\"10.0.0.0/8\"] and CIDR blocks on the secret ID [\"192.168.0.0/16\"]"), "{msg}");
    let (st, msg) = err_of(
        call(
            &b,
            O::Update,
            "role/net/secret-id",
            json!({"cidr_list": "bogus"}),
        )
        .await,
    );
    assert_eq!((st, msg.as_str()), (500, "1 error occurred:\n\t* failed to validate CIDR blocks: invalid CIDR address: bogus\n\n"));

    let (sid, _) = secret(&b, "net", json!({"cidr_list": "10.1.0.0/16"})).await;
    assert_eq!(
        err_of(login(&b, &rid, Some(&sid), Some("127.0.0.1")).await),
        (
            400,
            "source address \"127.0.0.1\" unauthorized by CIDR restrictions on the secret ID"
                .to_string()
        )
    );
    assert_eq!(
        err_of(login(&b, &rid, Some(&sid), Some("10.2.0.1")).await).0,
        400,
        "inside the role's block but outside the secret ID's"
    );
    assert_eq!(
        err_of(login(&b, &rid, Some(&sid), None).await),
        (500, "failed to get connection information".to_string())
    );
    // Refused logins spent nothing.
    let d = data(
        &b,
        O::Update,
        "role/net/secret-id/lookup",
        json!({"secret_id": sid}),
    )
    .await;
    assert_eq!(d["secret_id_num_uses"], 3);
    assert_eq!(d["cidr_list"], json!(["10.1.0.0/16"]));
    login(&b, &rid, Some(&sid), Some("10.1.2.3")).await.unwrap();

    // Role-level restriction, without a secret ID.
    call(
        &b,
        O::Create,
        "role/open",
        json!({"bind_secret_id": false, "secret_id_bound_cidrs": "10.0.0.0/8"}),
    )
    .await
    .unwrap();
    let rid2 = role_id(&b, "open").await;
    assert_eq!(
        err_of(login(&b, &rid2, None, Some("127.0.0.1")).await),
        (
            400,
            "source address \"127.0.0.1\" unauthorized by CIDR restrictions on the role"
                .to_string()
        )
    );
    let auth = login(&b, &rid2, None, Some("::ffff:10.9.9.9"))
        .await
        .unwrap()
        .unwrap()
        .auth
        .unwrap();
    assert_eq!(auth.metadata.unwrap().len(), 1, "only role_name");

    // Token-bound CIDRs: the role's pass to the core, a secret ID's override them.
    call(
        &b,
        O::Create,
        "role/tok",
        json!({"token_bound_cidrs": "10.0.0.0/8,127.0.0.1/32"}),
    )
    .await
    .unwrap();
    let rid3 = role_id(&b, "tok").await;
    let (plain, _) = secret(&b, "tok", json!({})).await;
    let auth = login(&b, &rid3, Some(&plain), None)
        .await
        .unwrap()
        .unwrap()
        .auth
        .unwrap();
    assert_eq!(auth.bound_cidrs, vec!["10.0.0.0/8", "127.0.0.1"]);
    let (narrow, _) = secret(&b, "tok", json!({"token_bound_cidrs": "10.5.0.0/16"})).await;
    let auth = login(&b, &rid3, Some(&narrow), None)
        .await
        .unwrap()
        .unwrap()
        .auth
        .unwrap();
    assert_eq!(auth.bound_cidrs, vec!["10.5.0.0/16"]);
    assert_eq!(
        err_of(
            call(
                &b,
                O::Update,
                "role/tok/secret-id",
                json!({"token_bound_cidrs": "192.168.0.0/16"})
            )
            .await
        )
        .0,
        500
    );
}

#[tokio::test]
async fn role_id_rotation() {
    let (b, _) = backend();
    call(&b, O::Create, "role/rot", json!({})).await.unwrap();
    let old = role_id(&b, "rot").await;
    let (sid, _) = secret(&b, "rot", json!({})).await;
    assert!(login(&b, &old, Some(&sid), None).await.is_ok());
    assert!(call(
        &b,
        O::Update,
        "role/rot/role-id",
        json!({"role_id": "custom-rid"})
    )
    .await
    .unwrap()
    .is_none());
    assert_eq!(role_id(&b, "rot").await, "custom-rid");
    assert_eq!(
        err_of(login(&b, &old, Some(&sid), None).await).0,
        400,
        "old role ID is dead"
    );
    assert!(login(&b, "custom-rid", Some(&sid), None).await.is_ok());
    assert_eq!(
        err_of(call(&b, O::Update, "role/rot/role-id", json!({})).await),
        (400, "missing role_id".to_string())
    );
    call(&b, O::Create, "role/other", json!({})).await.unwrap();
    assert_eq!(
        err_of(
            call(
                &b,
                O::Update,
                "role/other/role-id",
                json!({"role_id": "custom-rid"})
            )
            .await
        )
        .0,
        500
    );
    // Rotation through the role endpoint as well.
    call(&b, O::Update, "role/rot", json!({"role_id": "third"}))
        .await
        .unwrap();
    assert_eq!(
        err_of(login(&b, "custom-rid", Some(&sid), None).await).0,
        400
    );
    assert!(login(&b, "third", Some(&sid), None).await.is_ok());
    assert!(call(&b, O::Read, "role/nosuch/role-id", json!({}))
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        err_of(
            call(
                &b,
                O::Update,
                "role/nosuch/role-id",
                json!({"role_id": "x"})
            )
            .await
        ),
        (
            404,
            "1 error occurred:\n\t* unsupported path\n\n".to_string()
        )
    );
}

#[tokio::test]
async fn secret_id_management() {
    let (b, s) = backend();
    call(
        &b,
        O::Create,
        "role/m",
        json!({"secret_id_num_uses": 5, "secret_id_ttl": "1h"}),
    )
    .await
    .unwrap();
    let rid = role_id(&b, "m").await;
    let d = data(
        &b,
        O::Update,
        "role/m/secret-id",
        json!({"metadata": "a=b", "num_uses": 2, "ttl": 60}),
    )
    .await;
    assert_eq!(
        (d["secret_id_num_uses"].clone(), d["secret_id_ttl"].clone()),
        (json!(2), json!(60))
    );
    let sid = d["secret_id"].as_str().unwrap().to_string();
    let acc = d["secret_id_accessor"].as_str().unwrap().to_string();
    let cases = [
        (
            json!({"num_uses": 6}),
            "num_uses cannot be higher than the role's secret_id_num_uses",
        ),
        (
            json!({"num_uses": 0}),
            "num_uses cannot be higher than the role's secret_id_num_uses",
        ),
        (json!({"num_uses": -1}), "num_uses cannot be negative"),
        (
            json!({"ttl": "2h"}),
            "ttl cannot be longer than the role's secret_id_ttl",
        ),
        (
            json!({"metadata": "nope"}),
            "failed to parse metadata: invalid <key,value> format",
        ),
    ];
    for (body, msg) in cases {
        assert_eq!(
            err_of(call(&b, O::Update, "role/m/secret-id", body.clone()).await),
            (400, msg.to_string()),
            "{body}"
        );
    }
    let (st, _) = err_of(
        call(
            &b,
            O::Update,
            "role/m/secret-id",
            json!({"metadata": {"a": "b"}}),
        )
        .await,
    );
    assert_eq!(st, 400, "metadata must be a string, as in OpenBao");

    // Lookup by secret ID and by accessor.
    let d = data(
        &b,
        O::Update,
        "role/m/secret-id/lookup",
        json!({"secret_id": sid}),
    )
    .await;
    let keys_of = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys_of(&d),
        vec![
            "cidr_list",
            "creation_time",
            "expiration_time",
            "last_updated_time",
            "metadata",
            "secret_id_accessor",
            "secret_id_num_uses",
            "secret_id_ttl",
            "token_bound_cidrs"
        ]
    );
    assert_eq!(d["metadata"], json!({"a": "b"}));
    assert_eq!(d["secret_id_accessor"], acc);
    assert_eq!(d["cidr_list"], json!([]));
    let by_acc = data(
        &b,
        O::Update,
        "role/m/secret-id-accessor/lookup",
        json!({"secret_id_accessor": acc}),
    )
    .await;
    assert_eq!(by_acc, d);
    assert!(call(
        &b,
        O::Update,
        "role/m/secret-id/lookup",
        json!({"secret_id": "nope"})
    )
    .await
    .unwrap()
    .is_none());
    let nf = call(
        &b,
        O::Update,
        "role/m/secret-id-accessor/lookup",
        json!({"secret_id_accessor": "nope"}),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(nf.status, Some(404));
    assert_eq!(
        nf.data.unwrap()["error"],
        "failed to find accessor entry for secret_id_accessor: \"nope\""
    );
    assert_eq!(
        err_of(call(&b, O::Update, "role/m/secret-id-accessor/lookup", json!({})).await),
        (400, "missing secret_id_accessor".to_string())
    );
    assert_eq!(
        err_of(
            call(
                &b,
                O::Update,
                "role/nosuch/secret-id/lookup",
                json!({"secret_id": "x"})
            )
            .await
        ),
        (
            500,
            "1 error occurred:\n\t* role \"nosuch\" does not exist\n\n".to_string()
        )
    );
    assert_eq!(
        err_of(call(&b, O::Update, "role/nosuch/secret-id", json!({})).await),
        (404, "role \"nosuch\" does not exist".to_string())
    );
    assert_eq!(
        err_of(call(&b, O::List, "role/nosuch/secret-id", json!({})).await),
        (400, "role \"nosuch\" does not exist".to_string())
    );

    // Custom secret IDs.
    let d = data(
        &b,
        O::Update,
        "role/m/custom-secret-id",
        json!({"secret_id": "my-custom-secret"}),
    )
    .await;
    assert_eq!(d["secret_id"], "my-custom-secret");
    assert_eq!(d["secret_id_num_uses"], 5);
    assert!(!dump(&s).await.contains("my-custom-secret"));
    assert_eq!(
        err_of(
            call(
                &b,
                O::Update,
                "role/m/custom-secret-id",
                json!({"secret_id": "my-custom-secret"})
            )
            .await
        ),
        (
            500,
            "1 error occurred:\n\t* failed to store secret_id: SecretID is already registered\n\n"
                .to_string()
        )
    );
    assert_eq!(
        err_of(call(&b, O::Update, "role/m/custom-secret-id", json!({})).await),
        (400, "missing secret_id".to_string())
    );
    assert!(login(&b, &rid, Some("my-custom-secret"), None)
        .await
        .is_ok());
    let l = data(&b, O::List, "role/m/secret-id", json!({})).await;
    assert_eq!(l["keys"].as_array().unwrap().len(), 2);

    // Destroy by secret ID (twice is fine) and by accessor.
    assert!(call(
        &b,
        O::Update,
        "role/m/secret-id/destroy",
        json!({"secret_id": "my-custom-secret"})
    )
    .await
    .unwrap()
    .is_none());
    assert!(call(
        &b,
        O::Delete,
        "role/m/secret-id/destroy",
        json!({"secret_id": "my-custom-secret"})
    )
    .await
    .unwrap()
    .is_none());
    assert_eq!(
        err_of(login(&b, &rid, Some("my-custom-secret"), None).await).0,
        400
    );
    assert!(call(
        &b,
        O::Update,
        "role/m/secret-id-accessor/destroy",
        json!({"secret_id_accessor": acc})
    )
    .await
    .unwrap()
    .is_none());
    assert_eq!(
        err_of(call(&b, O::Update, "role/m/secret-id-accessor/destroy", json!({"secret_id_accessor": acc})).await),
        (500, format!("1 error occurred:\n\t* failed to find accessor entry for secret_id_accessor: {acc:?}\n\n"))
    );
    assert_eq!(err_of(login(&b, &rid, Some(&sid), None).await).0, 400);
    assert!(call(&b, O::List, "role/m/secret-id", json!({}))
        .await
        .unwrap()
        .is_none());

    // Roles without bind_secret_id issue no secret IDs.
    call(
        &b,
        O::Create,
        "role/nobind",
        json!({"bind_secret_id": false, "token_bound_cidrs": "127.0.0.1"}),
    )
    .await
    .unwrap();
    assert_eq!(
        err_of(call(&b, O::Update, "role/nobind/secret-id", json!({})).await),
        (400, "bind_secret_id is not set on the role".to_string())
    );
}

#[tokio::test]
async fn role_delete_removes_everything() {
    let (b, s) = backend();
    call(&b, O::Create, "role/gone", json!({})).await.unwrap();
    call(&b, O::Create, "role/kept", json!({})).await.unwrap();
    let rid = role_id(&b, "gone").await;
    let (sid, _) = secret(&b, "gone", json!({})).await;
    secret(&b, "gone", json!({})).await;
    let (kept_sid, _) = secret(&b, "kept", json!({})).await;
    call(&b, O::Delete, "role/gone", json!({})).await.unwrap();
    assert_eq!(err_of(login(&b, &rid, Some(&sid), None).await).0, 400);
    let left = keys(&s).await;
    assert_eq!(
        left.iter().filter(|k| k.starts_with("secret_id/")).count(),
        1,
        "{left:?}"
    );
    assert_eq!(
        left.iter().filter(|k| k.starts_with("accessor/")).count(),
        1,
        "{left:?}"
    );
    assert_eq!(
        left.iter().filter(|k| k.starts_with("role_id/")).count(),
        1,
        "{left:?}"
    );
    let rid_kept = role_id(&b, "kept").await;
    assert!(login(&b, &rid_kept, Some(&kept_sid), None).await.is_ok());
    // Recreated under the same name, the old secret IDs stay dead.
    call(&b, O::Create, "role/gone", json!({})).await.unwrap();
    let rid_new = role_id(&b, "gone").await;
    assert_eq!(err_of(login(&b, &rid_new, Some(&sid), None).await).0, 400);
}

#[tokio::test]
async fn field_sub_paths() {
    let (b, _) = backend();
    call(
        &b,
        O::Create,
        "role/f",
        json!({"token_bound_cidrs": "127.0.0.1/32"}),
    )
    .await
    .unwrap();
    let reads = [
        ("policies", json!({"token_policies": []})),
        ("secret-id-num-uses", json!({"secret_id_num_uses": 0})),
        ("secret-id-ttl", json!({"secret_id_ttl": 0})),
        ("token-ttl", json!({"token_ttl": 0})),
        ("token-max-ttl", json!({"token_max_ttl": 0})),
        ("token-num-uses", json!({"token_num_uses": 0})),
        ("bind-secret-id", json!({"bind_secret_id": true})),
        (
            "secret-id-bound-cidrs",
            json!({"secret_id_bound_cidrs": null}),
        ),
        ("bound-cidr-list", json!({"bound_cidr_list": null})),
        (
            "token-bound-cidrs",
            json!({"token_bound_cidrs": ["127.0.0.1"]}),
        ),
        ("period", json!({"token_period": 0})),
        ("local-secret-ids", json!({"local_secret_ids": false})),
    ];
    for (p, want) in reads {
        assert_eq!(
            data(&b, O::Read, &format!("role/f/{p}"), json!({})).await,
            want,
            "{p}"
        );
    }
    let w = call(&b, O::Read, "role/f/bound-cidr-list", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert!(w.warnings[0].contains("deprecated"));

    let updates = [
        (
            "policies",
            json!({"policies": "Q,b"}),
            json!({"policies": ["b", "q"], "token_policies": ["b", "q"]}),
        ),
        (
            "policies",
            json!({"token_policies": "Q,b"}),
            json!({"token_policies": ["b", "q"]}),
        ),
        (
            "secret-id-num-uses",
            json!({"secret_id_num_uses": 3}),
            json!({"secret_id_num_uses": 3}),
        ),
        (
            "secret-id-ttl",
            json!({"secret_id_ttl": "1m"}),
            json!({"secret_id_ttl": 60}),
        ),
        (
            "token-max-ttl",
            json!({"token_max_ttl": "1h"}),
            json!({"token_max_ttl": 3600}),
        ),
        (
            "token-ttl",
            json!({"token_ttl": "30m"}),
            json!({"token_ttl": 1800}),
        ),
        (
            "token-num-uses",
            json!({"token_num_uses": 4}),
            json!({"token_num_uses": 4}),
        ),
        (
            "secret-id-bound-cidrs",
            json!({"secret_id_bound_cidrs": "127.0.0.1/32,10.0.0.0/8"}),
            json!({"secret_id_bound_cidrs": ["127.0.0.1/32", "10.0.0.0/8"]}),
        ),
        (
            "bound-cidr-list",
            json!({"bound_cidr_list": "1.2.3.4/32"}),
            json!({"bound_cidr_list": ["1.2.3.4/32"]}),
        ),
        (
            "token-bound-cidrs",
            json!({"token_bound_cidrs": "10.0.0.1"}),
            json!({"token_bound_cidrs": ["10.0.0.1"]}),
        ),
        (
            "period",
            json!({"period": "1h"}),
            json!({"period": 3600, "token_period": 3600}),
        ),
        (
            "period",
            json!({"token_period": "2h"}),
            json!({"token_period": 7200}),
        ),
        (
            "bind-secret-id",
            json!({"bind_secret_id": false}),
            json!({"bind_secret_id": false}),
        ),
    ];
    for (p, body, want) in updates {
        let path = format!("role/f/{p}");
        assert!(
            call(&b, O::Update, &path, body.clone())
                .await
                .unwrap()
                .is_none(),
            "{p}"
        );
        assert_eq!(
            data(&b, O::Read, &path, json!({})).await,
            want,
            "{p} {body}"
        );
    }
    let d = data(&b, O::Read, "role/f", json!({})).await;
    assert_eq!(d["secret_id_bound_cidrs"], json!(["1.2.3.4/32"]));
    assert_eq!(d["token_ttl"], 1800);

    let errors = [
        ("policies", json!({}), "missing token_policies"),
        ("secret-id-num-uses", json!({}), "missing secret_id_num_uses"),
        ("secret-id-num-uses", json!({"secret_id_num_uses": -2}), "secret_id_num_uses cannot be negative"),
        ("secret-id-ttl", json!({}), "missing secret_id_ttl"),
        ("token-ttl", json!({}), "missing token_ttl"),
        ("token-ttl", json!({"token_ttl": "2h"}), "token_ttl should not be greater than token_max_ttl"),
        ("token-max-ttl", json!({}), "missing token_max_ttl"),
        ("token-max-ttl", json!({"token_max_ttl": "1m"}), "token_max_ttl should be greater than or equal to token_ttl"),
        ("token-num-uses", json!({}), "missing token_num_uses"),
        ("bind-secret-id", json!({}), "missing bind_secret_id"),
        ("period", json!({}), "missing period"),
        ("period", json!({"token_period": "10000h"}), "period of \"10000h0m0s\" is greater than the backend's maximum lease TTL of \"768h0m0s\""),
        ("secret-id-bound-cidrs", json!({"secret_id_bound_cidrs": ""}), "missing bound_cidr_list"),
        ("secret-id-bound-cidrs", json!({"secret_id_bound_cidrs": "bogus"}), "failed to validate CIDR blocks: invalid CIDR address: bogus"),
    ];
    for (p, body, msg) in errors {
        assert_eq!(
            err_of(call(&b, O::Update, &format!("role/f/{p}"), body.clone()).await),
            (400, msg.to_string()),
            "{p} {body}"
        );
    }
    let (st, msg) = err_of(
        call(
            &b,
            O::Update,
            "role/f/token-bound-cidrs",
            json!({"token_bound_cidrs": "bogus"}),
        )
        .await,
    );
    assert_eq!(st, 400);
    assert!(
        msg.starts_with("failed to parse token_bound_cidrs: "),
        "{msg}"
    );

    // Deletes reset to defaults.
    for p in [
        "policies",
        "secret-id-num-uses",
        "secret-id-ttl",
        "token-ttl",
        "token-max-ttl",
        "token-num-uses",
        "period",
        "bind-secret-id",
    ] {
        assert!(
            call(&b, O::Delete, &format!("role/f/{p}"), json!({}))
                .await
                .unwrap()
                .is_none(),
            "{p}"
        );
    }
    let d = data(&b, O::Read, "role/f", json!({})).await;
    for (k, v) in [
        ("token_policies", json!([])),
        ("secret_id_num_uses", json!(0)),
        ("secret_id_ttl", json!(0)),
        ("token_ttl", json!(0)),
        ("token_max_ttl", json!(0)),
        ("token_num_uses", json!(0)),
        ("token_period", json!(0)),
        ("bind_secret_id", json!(true)),
    ] {
        assert_eq!(d[k], v, "{k}");
    }
    assert!(d.get("period").is_none() && d.get("policies").is_none());
    call(&b, O::Delete, "role/f/secret-id-bound-cidrs", json!({}))
        .await
        .unwrap();
    call(&b, O::Delete, "role/f/token-bound-cidrs", json!({}))
        .await
        .unwrap();
    // Removing the last constraint is refused.
    assert_eq!(
        err_of(
            call(
                &b,
                O::Update,
                "role/f/bind-secret-id",
                json!({"bind_secret_id": false})
            )
            .await
        ),
        (
            500,
            "1 error occurred:\n\t* at least one constraint should be enabled on the role\n\n"
                .to_string()
        )
    );

    // A role that does not exist.
    assert!(call(&b, O::Read, "role/nosuch/policies", json!({}))
        .await
        .unwrap()
        .is_none());
    assert!(call(&b, O::Delete, "role/nosuch/policies", json!({}))
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        err_of(
            call(
                &b,
                O::Update,
                "role/nosuch/policies",
                json!({"policies": "a"})
            )
            .await
        ),
        (
            404,
            "1 error occurred:\n\t* unsupported path\n\n".to_string()
        )
    );
    assert!(matches!(
        call(&b, O::Update, "role/f/local-secret-ids", json!({})).await,
        Err(LogicalError::UnsupportedOperation)
    ));
}

#[tokio::test]
async fn local_secret_ids_use_their_own_prefix() {
    let (b, s) = backend();
    call(&b, O::Create, "role/loc", json!({"local_secret_ids": true}))
        .await
        .unwrap();
    assert_eq!(
        data(&b, O::Read, "role/loc/local-secret-ids", json!({})).await,
        json!({"local_secret_ids": true})
    );
    let rid = role_id(&b, "loc").await;
    let (sid, acc) = secret(&b, "loc", json!({})).await;
    let left = keys(&s).await;
    assert!(
        left.iter().any(|k| k.starts_with("secret_id_local/")),
        "{left:?}"
    );
    assert!(
        left.iter().any(|k| k.starts_with("accessor_local/")),
        "{left:?}"
    );
    assert!(login(&b, &rid, Some(&sid), None).await.is_ok());
    assert!(call(
        &b,
        O::Update,
        "role/loc/secret-id-accessor/lookup",
        json!({"secret_id_accessor": acc})
    )
    .await
    .unwrap()
    .is_some());
}

#[tokio::test]
async fn read_only_storage_refuses_writes_with_a_typed_error() {
    let (b, s) = backend();
    call(&b, O::Create, "role/ro", json!({})).await.unwrap();
    call(&b, O::Create, "role/lim", json!({"secret_id_num_uses": 3}))
        .await
        .unwrap();
    let rid = role_id(&b, "ro").await;
    let rid_lim = role_id(&b, "lim").await;
    let (sid, acc) = secret(&b, "ro", json!({})).await;
    let (sid_lim, _) = secret(&b, "lim", json!({})).await;
    s.set_read_only(true);
    let writes = [
        (O::Create, "role/new", json!({})),
        (O::Update, "role/ro", json!({"token_ttl": 5})),
        (O::Delete, "role/ro", json!({})),
        (O::Update, "role/ro/policies", json!({"policies": "x"})),
        (O::Delete, "role/ro/token-ttl", json!({})),
        (O::Update, "role/ro/role-id", json!({"role_id": "x"})),
        (O::Update, "role/ro/secret-id", json!({})),
        (
            O::Update,
            "role/ro/custom-secret-id",
            json!({"secret_id": "c"}),
        ),
        (
            O::Update,
            "role/ro/secret-id/destroy",
            json!({"secret_id": sid}),
        ),
        (
            O::Update,
            "role/ro/secret-id-accessor/destroy",
            json!({"secret_id_accessor": acc}),
        ),
    ];
    for (op, path, body) in writes {
        let err = call(&b, op, path, body).await.unwrap_err();
        assert!(err.is_read_only(), "{path}: {err}");
    }
    // A login that spends a use must write; one with an unlimited secret ID need not.
    assert!(login(&b, &rid_lim, Some(&sid_lim), None)
        .await
        .unwrap_err()
        .is_read_only());
    assert!(login(&b, &rid, Some(&sid), None).await.unwrap().is_some());
    assert!(call(&b, O::Read, "role/ro", json!({}))
        .await
        .unwrap()
        .is_some());
    assert!(call(
        &b,
        O::Update,
        "role/ro/secret-id/lookup",
        json!({"secret_id": sid})
    )
    .await
    .unwrap()
    .is_some());
    // The tidy pass writes nothing when there is nothing to remove.
    assert_eq!(b.tidy_secret_ids().await.unwrap().checked, 2);
    s.set_read_only(false);
    assert!(
        login(&b, &rid_lim, Some(&sid_lim), None).await.is_ok(),
        "nothing was spent"
    );
}

#[tokio::test]
async fn fresh_mount_reads_without_writing() {
    let (b, s) = backend();
    s.set_read_only(true);
    assert_eq!(err_of(login(&b, "x", Some("y"), None).await).0, 400);
    assert!(call(&b, O::List, "role", json!({}))
        .await
        .unwrap()
        .is_none());
    assert_eq!(b.tidy_secret_ids().await.unwrap(), TidyReport::default());
    assert!(keys(&s).await.is_empty());
}

#[tokio::test]
async fn backend_contract() {
    let (b, _) = backend();
    assert_eq!(b.backend_type(), "approle");
    assert_eq!(b.special_paths().unauthenticated, vec!["login", "login/*"]);
    assert!(b.forwards_on_standby("login", O::Update));
    assert!(b.forwards_on_standby("tidy/secret-id", O::Update));
    assert!(!b.forwards_on_standby("role/x", O::Update));
    assert_eq!(
        b.exists(&req(O::Update, "role/E", json!({})))
            .await
            .unwrap(),
        Some(false)
    );
    call(&b, O::Create, "role/e", json!({})).await.unwrap();
    assert_eq!(
        b.exists(&req(O::Update, "role/E", json!({})))
            .await
            .unwrap(),
        Some(true)
    );
    assert_eq!(
        b.exists(&req(O::Update, "role/e/policies", json!({})))
            .await
            .unwrap(),
        None
    );
    let h = call(&b, O::Help, "login", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert!(h.data.unwrap()["help"].as_str().unwrap().contains("token"));
    assert!(matches!(
        call(&b, O::Read, "nope", json!({})).await,
        Err(LogicalError::UnsupportedPath)
    ));
    assert!(matches!(
        call(&b, O::Read, "login", json!({})).await,
        Err(LogicalError::UnsupportedOperation)
    ));

    // The factory starts (and cleanup stops) the background tidy.
    let f = approle_factory(config("approle", Arc::new(MemoryStorage::new()))).unwrap();
    assert_eq!(f.backend_type(), "approle");
    f.cleanup().await;
    // Invalidating the salt drops the cached key; the stored one is read back.
    let rid = role_id(&b, "e").await;
    let (sid, _) = secret(&b, "e", json!({})).await;
    b.invalidate("salt").await;
    assert!(b.inner.salt.read().unwrap().is_none());
    assert!(login(&b, &rid, Some(&sid), None).await.is_ok());
}

/// hvac 2.4.0's approle calls send these field names; every one (but hvac's
/// `enable_local_secret_ids`, which OpenBao does not know either) is declared by the table, and
/// the calls succeed in the order hvac's integration tests make them.
#[tokio::test]
async fn hvac_request_shapes() {
    let (b, _) = backend();
    let t = table();
    let role_body = json!({
        "secret_id_bound_cidrs": "127.0.0.1/32", "token_policies": "default",
        "token_bound_cidrs": "127.0.0.1/32", "bind_secret_id": true,
        "secret_id_num_uses": 0, "secret_id_ttl": 0, "enable_local_secret_ids": false,
        "token_ttl": 0, "token_max_ttl": 0, "token_explicit_max_ttl": 0,
        "token_no_default_policy": false, "token_num_uses": 0, "token_period": 0,
        "token_type": "default"
    });
    let r = req(O::Update, "role/testrole", role_body.clone());
    assert_eq!(
        t.route(&r).unwrap().fields.unknown_fields(),
        vec!["enable_local_secret_ids"]
    );
    call(&b, O::Create, "role/testrole", role_body)
        .await
        .unwrap();
    call(
        &b,
        O::Update,
        "role/testrole/role-id",
        json!({"role_id": "test_role_id"}),
    )
    .await
    .unwrap();
    let gen = json!({"metadata": "{\"foo\": \"bar\"}", "cidr_list": "127.0.0.1/32", "token_bound_cidrs": "127.0.0.1/32"});
    let r = req(O::Update, "role/testrole/secret-id", gen.clone());
    assert!(t.route(&r).unwrap().fields.unknown_fields().is_empty());
    let d = data(&b, O::Update, "role/testrole/secret-id", gen).await;
    let sid = d["secret_id"].as_str().unwrap().to_string();
    let acc = d["secret_id_accessor"].as_str().unwrap().to_string();
    let custom = json!({"secret_id": "custom_secret", "metadata": "{\"foo\": \"bar\"}", "cidr_list": "127.0.0.1/32"});
    assert!(t
        .route(&req(
            O::Update,
            "role/testrole/custom-secret-id",
            custom.clone()
        ))
        .unwrap()
        .fields
        .unknown_fields()
        .is_empty());
    call(&b, O::Update, "role/testrole/custom-secret-id", custom)
        .await
        .unwrap();
    let d = data(
        &b,
        O::Update,
        "role/testrole/secret-id-accessor/lookup",
        json!({"secret_id_accessor": acc}),
    )
    .await;
    assert_eq!(d["cidr_list"][0], "127.0.0.1/32");
    let d = data(
        &b,
        O::Update,
        "role/testrole/secret-id/lookup",
        json!({"secret_id": sid}),
    )
    .await;
    assert_eq!(d["metadata"]["foo"], "bar");
    let auth = login(&b, "test_role_id", Some(&sid), Some("127.0.0.1"))
        .await
        .unwrap()
        .unwrap()
        .auth
        .unwrap();
    assert_eq!(auth.metadata.unwrap()["foo"], "bar");
    assert_eq!(
        data(&b, O::List, "role/testrole/secret-id", json!({})).await["keys"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    call(
        &b,
        O::Update,
        "role/testrole/secret-id/destroy",
        json!({"secret_id": sid}),
    )
    .await
    .unwrap();
    assert!(call(
        &b,
        O::Update,
        "role/testrole/secret-id/lookup",
        json!({"secret_id": sid})
    )
    .await
    .unwrap()
    .is_none());
    call(
        &b,
        O::Update,
        "role/testrole/secret-id-accessor/destroy",
        json!({"secret_id_accessor": "x"}),
    )
    .await
    .unwrap_err();
    let roles = data(&b, O::List, "role", json!({})).await;
    assert_eq!(roles["keys"], json!(["testrole"]));
    assert_eq!(
        data(&b, O::Read, "role/testrole", json!({})).await["token_type"],
        "default"
    );
    call(&b, O::Delete, "role/testrole", json!({}))
        .await
        .unwrap();
    assert!(call(&b, O::List, "role", json!({}))
        .await
        .unwrap()
        .is_none());
    // A role created with no fields at all (hvac's v1 tests do this) works end to end.
    call(&b, O::Create, "role/bare", json!({})).await.unwrap();
    let (sid, _) = secret(&b, "bare", json!({"metadata": "{\"foo\": \"bar\"}"})).await;
    let rid = role_id(&b, "bare").await;
    assert!(login(&b, &rid, Some(&sid), None).await.is_ok());
}

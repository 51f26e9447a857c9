use super::*;
use crate::testutil::{config, from, req};
use kura_logical::{MemoryStorage, Operation as O};
use serde_json::{json, Value};

fn backend() -> (UserpassBackend, Arc<MemoryStorage>) {
    let s = Arc::new(MemoryStorage::new());
    (UserpassBackend::new(config("userpass", s.clone())), s)
}

async fn call(b: &UserpassBackend, op: O, path: &str, body: Value) -> Result<Option<Response>> {
    b.handle(&req(op, path, body)).await
}

async fn data(b: &UserpassBackend, op: O, path: &str, body: Value) -> Value {
    Value::Object(
        call(b, op, path, body)
            .await
            .unwrap()
            .unwrap()
            .data
            .unwrap(),
    )
}

async fn login(
    b: &UserpassBackend,
    user: &str,
    pw: &str,
    ip: Option<&str>,
) -> Result<Option<Response>> {
    let r = req(O::Update, &format!("login/{user}"), json!({"password": pw}));
    let r = match ip {
        Some(ip) => from(r, ip),
        None => r,
    };
    b.handle(&r).await
}

/// Every stored byte, keys and values, as one string.
async fn dump(s: &MemoryStorage) -> String {
    let mut out = String::new();
    for k in s.list_recursive("").await.unwrap() {
        out.push_str(&k);
        out.push_str(&String::from_utf8_lossy(&s.get(&k).await.unwrap().unwrap()));
    }
    out
}

#[tokio::test]
async fn user_crud_matches_openbao_shapes() {
    let (b, _) = backend();
    let w = call(
        &b,
        O::Create,
        "users/Alice",
        json!({"password": "pw", "token_policies": "a,b", "token_ttl": "1h"}),
    )
    .await
    .unwrap();
    assert!(w.is_none(), "writes answer 204");
    let d = data(&b, O::Read, "users/alice", json!({})).await;
    assert_eq!(
        d,
        json!({
            "token_bound_cidrs": [], "token_explicit_max_ttl": 0, "token_max_ttl": 0,
            "token_no_default_policy": false, "token_num_uses": 0, "token_period": 0,
            "token_policies": ["a", "b"], "token_strictly_bind_ip": false, "token_ttl": 3600,
            "token_type": "default"
        })
    );
    assert_eq!(
        data(&b, O::Read, "users/ALICE", json!({})).await,
        d,
        "names are lowercased"
    );
    assert!(d.get("password").is_none() && d.get("password_hash").is_none());

    // Legacy aliases show up only when set.
    call(
        &b,
        O::Create,
        "users/bob",
        json!({"password": "pw", "policies": "X", "ttl": "10m", "max_ttl": "1h", "bound_cidrs": "127.0.0.1/32"}),
    )
    .await
    .unwrap();
    let d = data(&b, O::Read, "users/bob", json!({})).await;
    assert_eq!(d["policies"], json!(["x"]));
    assert_eq!(d["token_policies"], json!(["x"]));
    assert_eq!(
        (d["ttl"].clone(), d["token_ttl"].clone()),
        (json!(600), json!(600))
    );
    assert_eq!(d["max_ttl"], 3600);
    assert_eq!(d["bound_cidrs"], json!(["127.0.0.1"]));
    assert_eq!(d["token_bound_cidrs"], json!(["127.0.0.1"]));

    // Update keeps the password and changes only what is sent.
    call(&b, O::Update, "users/bob", json!({"token_type": "service"}))
        .await
        .unwrap();
    let d = data(&b, O::Read, "users/bob", json!({})).await;
    assert_eq!(d["token_type"], "service");
    assert_eq!(d["token_ttl"], 600);
    assert!(login(&b, "bob", "pw", Some("127.0.0.1")).await.is_ok());

    let l = data(&b, O::List, "users", json!({})).await;
    assert_eq!(l["keys"], json!(["alice", "bob"]));
    let l = data(&b, O::List, "users/", json!({"after": "alice", "limit": 5})).await;
    assert_eq!(l["keys"], json!(["bob"]));

    assert!(call(&b, O::Delete, "users/Alice", json!({}))
        .await
        .unwrap()
        .is_none());
    assert!(call(&b, O::Read, "users/alice", json!({}))
        .await
        .unwrap()
        .is_none());
    assert!(call(&b, O::Delete, "users/nobody", json!({}))
        .await
        .unwrap()
        .is_none());
    call(&b, O::Delete, "users/bob", json!({})).await.unwrap();
    assert!(
        call(&b, O::List, "users", json!({}))
            .await
            .unwrap()
            .is_none(),
        "empty list is 404"
    );
}

#[tokio::test]
async fn write_validation() {
    let (b, _) = backend();
    let cases = [
        (
            json!({"policies": "x"}),
            "must provide either password or password_hash",
        ),
        (
            json!({"password": ""}),
            "must provide either password or password_hash",
        ),
        (
            json!({"password": "a", "password_hash": "b"}),
            "only one of password or password_hash may be provided",
        ),
        (
            json!({"password_hash": "notbcrypt"}),
            "password_hash is not a valid bcrypt hash",
        ),
        (
            json!({"password": "a", "token_type": "bogus"}),
            "invalid 'token_type' value \"bogus\"",
        ),
        (
            json!({"password": "a", "token_type": "default-service"}),
            "invalid 'token_type' value \"default-service\"",
        ),
        (
            json!({"password": "a", "token_ttl": "2h", "token_max_ttl": "1h"}),
            "'token_ttl' cannot be greater than 'token_max_ttl'",
        ),
    ];
    for (body, msg) in cases {
        let err = call(&b, O::Create, "users/carl", body.clone())
            .await
            .unwrap_err();
        assert_eq!(
            (err.status(), err.to_string()),
            (400, msg.to_string()),
            "{body}"
        );
    }
    let err = call(
        &b,
        O::Create,
        "users/carl",
        json!({"password": "a", "token_type": "batch"}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(err.to_string().contains("batch tokens are not supported"));
    assert!(
        call(&b, O::Read, "users/carl", json!({}))
            .await
            .unwrap()
            .is_none(),
        "nothing written"
    );
    // Path shapes: bad names and wrong operations.
    assert!(matches!(
        call(&b, O::Create, "users/-bad", json!({"password": "x"})).await,
        Err(LogicalError::UnsupportedPath)
    ));
    assert!(matches!(
        call(&b, O::Read, "users/carl/policies", json!({})).await,
        Err(LogicalError::UnsupportedOperation)
    ));
}

#[tokio::test]
async fn login_issues_auth_for_the_core() {
    let (b, s) = backend();
    call(
        &b,
        O::Create,
        "users/Erin",
        json!({"password": "s3cret-pw", "token_policies": "Foo, bar", "token_ttl": 600,
               "token_max_ttl": "2h", "token_num_uses": 3, "token_period": "1h",
               "token_explicit_max_ttl": "3h", "token_no_default_policy": true}),
    )
    .await
    .unwrap();
    let resp = login(&b, "ERIN", "s3cret-pw", None).await.unwrap().unwrap();
    assert!(resp.data.is_none());
    let auth = resp.auth.unwrap();
    assert_eq!(auth.policies, vec!["bar", "foo"]);
    assert_eq!(auth.token_policies, vec!["bar", "foo"]);
    assert_eq!(auth.metadata.unwrap()["username"], "erin");
    assert_eq!(auth.display_name, "erin");
    assert_eq!(
        (auth.ttl, auth.max_ttl, auth.period, auth.explicit_max_ttl),
        (600, 7200, 3600, 10800)
    );
    assert_eq!(auth.num_uses, 3);
    assert!(auth.no_default_policy && auth.renewable);
    assert_eq!(auth.token_type, "service");
    assert!(auth.client_token.is_empty() && auth.accessor.is_empty() && auth.lease_duration == 0);

    // The password is stored only as an argon2id hash.
    let raw = dump(&s).await;
    assert!(!raw.contains("s3cret-pw"));
    assert!(raw.contains("$argon2id$v=19$m=19456,t=1,p=1$"));
}

#[tokio::test]
async fn failed_logins() {
    let (b, _) = backend();
    call(&b, O::Create, "users/dave", json!({"password": "right"}))
        .await
        .unwrap();
    for (user, pw) in [("dave", "wrong"), ("nobody", "right"), ("nobody", "wrong")] {
        let err = login(&b, user, pw, None).await.unwrap_err();
        assert_eq!(err.status(), 400, "{user}");
        assert_eq!(err.to_string(), "invalid username or password");
    }
    let err = b
        .handle(&req(O::Update, "login/dave", json!({})))
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.to_string()),
        (500, "missing password".to_string())
    );
}

#[tokio::test]
async fn token_bound_cidrs_are_checked_at_login_and_passed_on() {
    let (b, _) = backend();
    call(
        &b,
        O::Create,
        "users/fay",
        json!({"password": "x", "token_bound_cidrs": "10.0.0.0/8,192.0.2.1"}),
    )
    .await
    .unwrap();
    let err = login(&b, "fay", "x", Some("127.0.0.1")).await.unwrap_err();
    assert!(matches!(err, LogicalError::PermissionDenied));
    let err = login(&b, "fay", "x", None).await.unwrap_err();
    assert!(
        matches!(err, LogicalError::PermissionDenied),
        "no address, no login"
    );
    let auth = login(&b, "fay", "x", Some("10.1.2.3"))
        .await
        .unwrap()
        .unwrap()
        .auth
        .unwrap();
    assert_eq!(auth.bound_cidrs, vec!["10.0.0.0/8", "192.0.2.1"]);
    // A wrong password from a good address is still a 400.
    assert_eq!(
        login(&b, "fay", "y", Some("10.1.2.3"))
            .await
            .unwrap_err()
            .status(),
        400
    );

    call(
        &b,
        O::Create,
        "users/gil",
        json!({"password": "x", "token_strictly_bind_ip": true}),
    )
    .await
    .unwrap();
    let auth = login(&b, "gil", "x", Some("198.51.100.9"))
        .await
        .unwrap()
        .unwrap()
        .auth
        .unwrap();
    assert_eq!(auth.bound_cidrs, vec!["198.51.100.9"]);
    let err = call(
        &b,
        O::Update,
        "users/gil",
        json!({"token_bound_cidrs": "10.0.0.0/8"}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.status(), 400);
}

#[tokio::test]
async fn password_and_policies_sub_paths() {
    let (b, _) = backend();
    call(&b, O::Create, "users/hal", json!({"password": "old"}))
        .await
        .unwrap();
    assert!(call(
        &b,
        O::Update,
        "users/Hal/password",
        json!({"password": "new"})
    )
    .await
    .unwrap()
    .is_none());
    assert_eq!(
        login(&b, "hal", "old", None).await.unwrap_err().status(),
        400
    );
    assert!(login(&b, "hal", "new", None).await.is_ok());
    let err = call(&b, O::Update, "users/hal/password", json!({}))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "must provide either password or password_hash"
    );
    let err = call(
        &b,
        O::Update,
        "users/nobody/password",
        json!({"password": "x"}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        (err.status(), err.to_string()),
        (
            500,
            "1 error occurred:\n\t* username does not exist\n\n".to_string()
        )
    );

    // An OpenBao-style bcrypt pre-hash.
    let pre = bcrypt::hash("imported", 5).unwrap();
    call(
        &b,
        O::Update,
        "users/hal/password",
        json!({"password_hash": pre}),
    )
    .await
    .unwrap();
    assert!(login(&b, "hal", "imported", None).await.is_ok());
    assert_eq!(
        login(&b, "hal", "new", None).await.unwrap_err().status(),
        400
    );

    call(
        &b,
        O::Update,
        "users/hal/policies",
        json!({"token_policies": "P2, p1"}),
    )
    .await
    .unwrap();
    let d = data(&b, O::Read, "users/hal", json!({})).await;
    assert_eq!(d["token_policies"], json!(["p1", "p2"]));
    assert!(d.get("policies").is_none());
    call(
        &b,
        O::Update,
        "users/hal/policies",
        json!({"policies": "z"}),
    )
    .await
    .unwrap();
    let d = data(&b, O::Read, "users/hal", json!({})).await;
    assert_eq!(
        (d["token_policies"].clone(), d["policies"].clone()),
        (json!(["z"]), json!(["z"]))
    );
    let auth = login(&b, "hal", "imported", None)
        .await
        .unwrap()
        .unwrap()
        .auth
        .unwrap();
    assert_eq!(auth.policies, vec!["z"]);
    let err = call(
        &b,
        O::Update,
        "users/nobody/policies",
        json!({"policies": "z"}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.status(), 500);
}

#[tokio::test]
async fn read_only_storage_refuses_writes_with_a_typed_error() {
    let (b, s) = backend();
    call(&b, O::Create, "users/ivy", json!({"password": "pw"}))
        .await
        .unwrap();
    s.set_read_only(true);
    for (op, path, body) in [
        (O::Create, "users/jay", json!({"password": "pw"})),
        (O::Update, "users/ivy", json!({"token_ttl": 5})),
        (O::Update, "users/ivy/password", json!({"password": "x"})),
        (O::Update, "users/ivy/policies", json!({"policies": "x"})),
        (O::Delete, "users/ivy", json!({})),
    ] {
        let err = call(&b, op, path, body).await.unwrap_err();
        assert!(err.is_read_only(), "{path}: {err}");
    }
    // Reads and logins need no write and still work on a standby.
    assert!(call(&b, O::Read, "users/ivy", json!({}))
        .await
        .unwrap()
        .is_some());
    assert!(login(&b, "ivy", "pw", None).await.unwrap().is_some());
}

#[tokio::test]
async fn backend_contract() {
    let (b, _) = backend();
    assert_eq!(b.backend_type(), "userpass");
    let sp = b.special_paths();
    assert_eq!(sp.unauthenticated, vec!["login", "login/*"]);
    assert!(b.forwards_on_standby("login/alice", O::Update));
    assert!(!b.forwards_on_standby("users/alice", O::Update));
    assert_eq!(
        b.exists(&req(O::Update, "users/kim", json!({})))
            .await
            .unwrap(),
        Some(false)
    );
    call(&b, O::Create, "users/kim", json!({"password": "x"}))
        .await
        .unwrap();
    assert_eq!(
        b.exists(&req(O::Update, "users/KIM", json!({})))
            .await
            .unwrap(),
        Some(true)
    );
    assert_eq!(
        b.exists(&req(O::Update, "login/kim", json!({})))
            .await
            .unwrap(),
        None
    );
    let h = call(&b, O::Help, "users/kim", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert!(h.data.unwrap()["help"].as_str().unwrap().contains("users"));
    // Unknown parameters are reported on responses that have a body.
    let resp = login(&b, "kim", "x", None).await.unwrap().unwrap();
    assert!(resp.warnings.is_empty());
    let resp = b
        .handle(&req(
            O::Update,
            "login/kim",
            json!({"password": "x", "bogus": 1}),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        resp.warnings,
        vec!["Endpoint ignored these unrecognized parameters: [bogus]"]
    );
    let f = userpass_factory(config("userpass", Arc::new(MemoryStorage::new()))).unwrap();
    assert_eq!(f.backend_type(), "userpass");
}

/// hvac 2.4.0's userpass calls (`create_or_update_user`, `update_password_on_user`, `login`)
/// send only fields this table declares.
#[tokio::test]
async fn hvac_request_shapes() {
    let (b, _) = backend();
    let t = table();
    let shapes = [
        (
            "users/testuser",
            json!({"password": "testpass", "policies": "not_root", "ttl": "10s"}),
        ),
        ("users/testuser/password", json!({"password": "p2"})),
        ("login/testuser", json!({"password": "p2"})),
    ];
    for (path, body) in &shapes {
        let r = req(O::Update, path, body.clone());
        let route = t.route(&r).unwrap();
        assert!(route.fields.unknown_fields().is_empty(), "{path}");
    }
    for (path, body) in shapes {
        b.handle(&req(O::Update, path, body)).await.unwrap();
    }
    let auth = login(&b, "testuser", "p2", None)
        .await
        .unwrap()
        .unwrap()
        .auth
        .unwrap();
    assert_eq!(auth.ttl, 10, "hvac checks lease_duration == 10 for ttl=10s");
    assert_eq!(auth.policies, vec!["not_root"]);
}

//! Pipeline tests: seal, tokens, ACL, mounts — a core over in-memory storage with the real KV
//! engine.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kura_logical::{LogicalError, Map, Operation, Request, Response};
use kura_storage::InmemBackend;
use serde_json::{json, Value};

use crate::{BackendFactory, Core, CoreConfig, MountConfig, MountKind};

struct Harness {
    core: Arc<Core>,
    physical: Arc<InmemBackend>,
    root: String,
}

async fn harness() -> Harness {
    let physical = Arc::new(InmemBackend::new());
    let mut f: BTreeMap<String, BackendFactory> = BTreeMap::new();
    f.insert("kv".into(), Arc::new(kura_engines::kv_factory));
    f.insert(
        "cubbyhole".into(),
        Arc::new(kura_engines::cubbyhole_factory),
    );
    let core = Core::new(CoreConfig::default(), physical.clone(), f);
    let init = core.initialize(3, 2).await.unwrap();
    assert!(core.is_sealed());
    core.unseal_with_keys(&init.keys[1..]).await.unwrap();
    let mut opts = BTreeMap::new();
    opts.insert("version".to_string(), "2".to_string());
    core.mount(
        "secret/",
        "kv",
        "",
        MountConfig::default(),
        opts,
        MountKind::Secret,
    )
    .await
    .unwrap();
    Harness {
        core,
        physical,
        root: init.root_token,
    }
}

impl Harness {
    async fn call(
        &self,
        op: Operation,
        path: &str,
        token: &str,
        data: Value,
    ) -> Result<Response, LogicalError> {
        let mut req = Request::new(op, path);
        req.client_token = token.to_string();
        if let Value::Object(m) = data {
            req.data = m;
        }
        self.core.handle_request(req).await
    }

    async fn token(&self, data: Value) -> String {
        let r = self
            .call(Operation::Update, "auth/token/create", &self.root, data)
            .await
            .unwrap();
        r.auth.unwrap().client_token
    }

    async fn policy(&self, name: &str, text: &str) {
        self.call(
            Operation::Update,
            &format!("sys/policy/{name}"),
            &self.root,
            json!({ "policy": text }),
        )
        .await
        .unwrap();
    }
}

fn data(r: &Response) -> &Map {
    r.data.as_ref().expect("response data")
}

#[tokio::test]
async fn init_unseal_seal_cycle() {
    let physical = Arc::new(InmemBackend::new());
    let core = Core::new(CoreConfig::default(), physical, BTreeMap::new());
    assert!(!core.is_initialized().await.unwrap());
    let init = core.initialize(5, 3).await.unwrap();
    assert_eq!(init.keys.len(), 5);
    assert!(core.initialize(1, 1).await.is_err(), "second init refused");
    // Sealed: everything but the seal endpoints is 503.
    let err = core
        .handle_request(Request::new(Operation::Read, "secret/data/x"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 503);
    // A wrong key among the threshold fails and keeps the node sealed.
    let mut wrong = init.keys[0].to_vec();
    wrong[0] ^= 0xff;
    core.submit_unseal_key(&init.keys[1]).await.unwrap();
    core.submit_unseal_key(&init.keys[2]).await.unwrap();
    let err = core.submit_unseal_key(&wrong).await.unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(core.is_sealed());
    assert_eq!(
        core.unseal_progress().await.0,
        0,
        "progress reset after failure"
    );
    // The right keys unseal.
    assert!(!core.submit_unseal_key(&init.keys[4]).await.unwrap());
    assert_eq!(core.unseal_progress().await.0, 1);
    assert!(
        !core.submit_unseal_key(&init.keys[4]).await.unwrap(),
        "duplicate share ignored"
    );
    assert!(!core.submit_unseal_key(&init.keys[0]).await.unwrap());
    assert!(core.submit_unseal_key(&init.keys[3]).await.unwrap());
    assert!(!core.is_sealed());
    core.seal().await.unwrap();
    assert!(core.is_sealed());
}

#[tokio::test]
async fn secrets_never_reach_storage_in_plaintext() {
    let h = harness().await;
    let secret = "correct-horse-battery-staple-4242";
    h.call(
        Operation::Update,
        "secret/data/app",
        &h.root,
        json!({"data": {"password": secret}}),
    )
    .await
    .unwrap();
    let child = h.token(json!({"policies": ["default"]})).await;
    let r = h
        .call(Operation::Read, "secret/data/app", &h.root, json!({}))
        .await
        .unwrap();
    assert_eq!(data(&r)["data"]["password"], secret);
    for (key, value) in h.physical.dump() {
        let text = String::from_utf8_lossy(&value);
        assert!(!text.contains(secret), "secret in plaintext at {key}");
        assert!(!text.contains(&child), "token in plaintext at {key}");
        assert!(!text.contains(&h.root), "root token in plaintext at {key}");
        assert!(
            !key.contains(&child) && !key.contains(&h.root),
            "token in a key: {key}"
        );
    }
}

#[tokio::test]
async fn policy_matrix() {
    let h = harness().await;
    h.policy(
        "app",
        r#"
        path "secret/data/app/*" { capabilities = ["create", "read", "update"] }
        path "secret/data/app/locked" { capabilities = ["deny"] }
        path "secret/data/+/shared" { capabilities = ["read"] }
        path "secret/metadata/*" { capabilities = ["list"] }
        "#,
    )
    .await;
    h.policy(
        "locker",
        r#"path "secret/data/app/*" { capabilities = ["deny"] }"#,
    )
    .await;
    let t = h.token(json!({"policies": ["app"]})).await;
    let both = h.token(json!({"policies": ["app", "locker"]})).await;
    for p in ["secret/data/app/x", "secret/data/team/shared"] {
        h.call(Operation::Update, p, &h.root, json!({"data": {"v": 1}}))
            .await
            .unwrap();
    }
    let ok = |r: Result<Response, LogicalError>| r.is_ok();
    let denied =
        |r: Result<Response, LogicalError>| matches!(r, Err(LogicalError::PermissionDenied));
    assert!(ok(h
        .call(Operation::Read, "secret/data/app/x", &t, json!({}))
        .await));
    assert!(ok(h
        .call(
            Operation::Update,
            "secret/data/app/y",
            &t,
            json!({"data": {"v": 2}})
        )
        .await));
    assert!(denied(
        h.call(Operation::Delete, "secret/data/app/x", &t, json!({}))
            .await
    ));
    assert!(denied(
        h.call(
            Operation::Update,
            "secret/data/app/locked",
            &t,
            json!({"data": {}})
        )
        .await
    ));
    assert!(
        ok(
            h.call(Operation::Read, "secret/data/team/shared", &t, json!({}))
                .await
        ),
        "+ matches a segment"
    );
    assert!(
        denied(
            h.call(Operation::Read, "secret/data/team/a/shared", &t, json!({}))
                .await
        ),
        "+ is one segment"
    );
    assert!(denied(
        h.call(Operation::Read, "secret/data/other", &t, json!({}))
            .await
    ));
    assert!(ok(h
        .call(Operation::List, "secret/metadata/", &t, json!({}))
        .await));
    assert!(
        denied(
            h.call(Operation::Read, "secret/data/app/x", &both, json!({}))
                .await
        ),
        "deny wins"
    );
    assert!(denied(
        h.call(
            Operation::Read,
            "secret/data/app/x",
            "not-a-token",
            json!({})
        )
        .await
    ));
    assert!(denied(
        h.call(Operation::Read, "sys/mounts", &t, json!({})).await
    ));
    // Capabilities endpoint agrees.
    let r = h
        .call(
            Operation::Update,
            "sys/capabilities",
            &h.root,
            json!({"token": t, "path": "secret/data/app/x"}),
        )
        .await
        .unwrap();
    assert_eq!(
        data(&r)["capabilities"],
        json!(["create", "read", "update"])
    );
    // A policy that does not parse is a 400 with the reason.
    let err = h
        .call(
            Operation::Update,
            "sys/policy/bad",
            &h.root,
            json!({"policy": "path \"x\" { capabilities = [\"reed\"] }"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(err.to_string().contains("reed"), "{err}");
}

#[tokio::test]
async fn token_ttl_use_limits_and_child_revocation() {
    let h = harness().await;
    // TTL expiry.
    let short = h.token(json!({"ttl": "1s"})).await;
    h.call(Operation::Read, "auth/token/lookup-self", &short, json!({}))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(matches!(
        h.call(Operation::Read, "auth/token/lookup-self", &short, json!({}))
            .await,
        Err(LogicalError::PermissionDenied)
    ));
    // Use limit: two uses, then gone.
    let limited = h.token(json!({"num_uses": 2})).await;
    for _ in 0..2 {
        h.call(
            Operation::Read,
            "auth/token/lookup-self",
            &limited,
            json!({}),
        )
        .await
        .unwrap();
    }
    assert!(matches!(
        h.call(
            Operation::Read,
            "auth/token/lookup-self",
            &limited,
            json!({})
        )
        .await,
        Err(LogicalError::PermissionDenied)
    ));
    // Parent → child revocation; orphans survive.
    h.policy(
        "creator",
        r#"path "auth/token/create" { capabilities = ["update"] }"#,
    )
    .await;
    let parent = h.token(json!({"policies": ["creator"]})).await;
    let child = h
        .call(Operation::Update, "auth/token/create", &parent, json!({}))
        .await
        .unwrap()
        .auth
        .unwrap()
        .client_token;
    let orphan = h.token(json!({"no_parent": true})).await;
    h.call(
        Operation::Update,
        "auth/token/revoke",
        &h.root,
        json!({"token": parent}),
    )
    .await
    .unwrap();
    for t in [&parent, &child] {
        assert!(matches!(
            h.call(Operation::Read, "auth/token/lookup-self", t, json!({}))
                .await,
            Err(LogicalError::PermissionDenied)
        ));
    }
    h.call(
        Operation::Read,
        "auth/token/lookup-self",
        &orphan,
        json!({}),
    )
    .await
    .unwrap();
    // A child cannot get policies its parent lacks.
    let err = h
        .call(
            Operation::Update,
            "auth/token/create",
            &h.token(json!({"policies": ["creator"]})).await,
            json!({"policies": ["admin"]}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
}

#[tokio::test]
async fn mounts_enable_tune_remount_disable() {
    let h = harness().await;
    h.call(
        Operation::Update,
        "sys/mounts/kv1",
        &h.root,
        json!({"type": "kv"}),
    )
    .await
    .unwrap();
    let err = h
        .call(
            Operation::Update,
            "sys/mounts/kv1",
            &h.root,
            json!({"type": "kv"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    let err = h
        .call(
            Operation::Update,
            "sys/mounts/x",
            &h.root,
            json!({"type": "nope"}),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("plugin not found"));
    h.call(Operation::Update, "kv1/a", &h.root, json!({"k": "v"}))
        .await
        .unwrap();
    h.call(
        Operation::Update,
        "sys/mounts/kv1/tune",
        &h.root,
        json!({"default_lease_ttl": "1h", "max_lease_ttl": "2h"}),
    )
    .await
    .unwrap();
    let r = h
        .call(Operation::Read, "sys/mounts/kv1/tune", &h.root, json!({}))
        .await
        .unwrap();
    assert_eq!(data(&r)["default_lease_ttl"], 3600);
    assert_eq!(data(&r)["max_lease_ttl"], 7200);
    h.call(
        Operation::Update,
        "sys/remount",
        &h.root,
        json!({"from": "kv1", "to": "kv2"}),
    )
    .await
    .unwrap();
    let r = h
        .call(Operation::Read, "kv2/a", &h.root, json!({}))
        .await
        .unwrap();
    assert_eq!(data(&r)["k"], "v", "data moves with the mount");
    assert_eq!(
        h.call(Operation::Read, "kv1/a", &h.root, json!({}))
            .await
            .unwrap_err()
            .status(),
        404
    );
    h.call(Operation::Delete, "sys/mounts/kv2", &h.root, json!({}))
        .await
        .unwrap();
    let r = h
        .call(Operation::Read, "sys/mounts", &h.root, json!({}))
        .await
        .unwrap();
    assert!(data(&r).contains_key("secret/") && !data(&r).contains_key("kv2/"));
    // Mount state survives a seal/unseal cycle (it is read back from storage).
    h.call(
        Operation::Update,
        "sys/auth/tokens2",
        &h.root,
        json!({"type": "token"}),
    )
    .await
    .unwrap_err();
}

#[tokio::test]
async fn response_wrapping_is_single_use() {
    let h = harness().await;
    let mut req = Request::new(Operation::Update, "auth/token/create");
    req.client_token = h.root.clone();
    req.wrap_ttl = Some(Duration::from_secs(60));
    req.data = json!({"policies": ["default"]})
        .as_object()
        .cloned()
        .unwrap();
    let wrapped = h.core.handle_request(req).await.unwrap();
    assert!(wrapped.auth.is_none(), "the token is inside the wrapper");
    let info = wrapped.wrap_info.expect("wrap_info");
    assert_eq!(info.ttl, 60);
    assert_eq!(info.creation_path, "auth/token/create");
    assert!(!info.wrapped_accessor.is_empty());
    // Lookup does not consume it.
    let r = h
        .call(
            Operation::Update,
            "sys/wrapping/lookup",
            "",
            json!({"token": info.token}),
        )
        .await
        .unwrap();
    assert_eq!(data(&r)["creation_path"], "auth/token/create");
    // Unwrapping with the wrapping token itself.
    let r = h
        .call(
            Operation::Update,
            "sys/wrapping/unwrap",
            &info.token,
            json!({}),
        )
        .await
        .unwrap();
    let inner = r.auth.expect("wrapped auth");
    assert_eq!(inner.accessor, info.wrapped_accessor);
    h.call(
        Operation::Read,
        "auth/token/lookup-self",
        &inner.client_token,
        json!({}),
    )
    .await
    .unwrap();
    // A second unwrap fails, by either route.
    assert!(h
        .call(
            Operation::Update,
            "sys/wrapping/unwrap",
            &info.token,
            json!({})
        )
        .await
        .is_err());
    let err = h
        .call(
            Operation::Update,
            "sys/wrapping/unwrap",
            &h.root,
            json!({"token": info.token}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    // sys/wrapping/wrap wraps arbitrary data; unwrap by body token consumes it.
    let r = h
        .call(
            Operation::Update,
            "sys/wrapping/wrap",
            &h.root,
            json!({"k": "v"}),
        )
        .await
        .unwrap();
    let t = r.wrap_info.unwrap().token;
    let r = h
        .call(
            Operation::Update,
            "sys/wrapping/unwrap",
            &h.root,
            json!({"token": t}),
        )
        .await
        .unwrap();
    assert_eq!(data(&r)["k"], "v");
    assert!(h
        .call(
            Operation::Update,
            "sys/wrapping/unwrap",
            &h.root,
            json!({"token": t})
        )
        .await
        .is_err());
}

#[tokio::test]
async fn cubbyhole_is_private_and_dies_with_its_token() {
    let h = harness().await;
    let a = h.token(json!({"policies": ["default"]})).await;
    let b = h.token(json!({"policies": ["default"]})).await;
    h.call(
        Operation::Update,
        "cubbyhole/note",
        &a,
        json!({"secret": "only-a"}),
    )
    .await
    .unwrap();
    let r = h
        .call(Operation::Read, "cubbyhole/note", &a, json!({}))
        .await
        .unwrap();
    assert_eq!(data(&r)["secret"], "only-a");
    assert_eq!(
        h.call(Operation::Read, "cubbyhole/note", &b, json!({}))
            .await
            .unwrap_err()
            .status(),
        404
    );
    let before = h.physical.dump().len();
    h.call(Operation::Update, "auth/token/revoke-self", &a, json!({}))
        .await
        .unwrap();
    let after = h.physical.dump().len();
    assert!(
        after + 3 <= before,
        "token, accessor and cubbyhole entries removed ({before} → {after})"
    );
}

/// A test engine that issues leased secrets and records revocations (it exercises the lease
/// machinery; real leased engines such as PKI come with their own issue).
struct Leaser {
    revoked: Arc<std::sync::Mutex<Vec<String>>>,
}

#[async_trait::async_trait]
impl kura_logical::LogicalBackend for Leaser {
    fn backend_type(&self) -> &str {
        "leaser"
    }

    async fn handle(&self, req: &Request) -> kura_logical::Result<Option<Response>> {
        let ttl = req.data.get("ttl").and_then(|v| v.as_u64()).unwrap_or(60);
        let mut internal = Map::new();
        internal.insert("serial".into(), json!(req.relative_path));
        Ok(Some(Response {
            data: Some(json!({"user": "u1"}).as_object().cloned().unwrap()),
            lease: Some(kura_logical::LeaseInfo {
                ttl: Duration::from_secs(ttl),
                renewable: true,
                lease_id: String::new(),
                internal: Some(internal),
            }),
            ..Default::default()
        }))
    }

    async fn revoke_lease(
        &self,
        path: &str,
        lease: &kura_logical::LeaseInfo,
    ) -> kura_logical::Result<()> {
        let serial = lease.internal.as_ref().unwrap()["serial"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(serial, path);
        self.revoked.lock().unwrap().push(serial);
        Ok(())
    }

    async fn renew_lease(
        &self,
        _path: &str,
        lease: &kura_logical::LeaseInfo,
        increment: Duration,
    ) -> kura_logical::Result<kura_logical::LeaseInfo> {
        let mut l = lease.clone();
        l.ttl = increment;
        Ok(l)
    }
}

async fn lease_harness() -> (
    Harness,
    Arc<std::sync::Mutex<Vec<String>>>,
    Vec<zeroize::Zeroizing<Vec<u8>>>,
) {
    let physical = Arc::new(InmemBackend::new());
    let revoked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let r2 = revoked.clone();
    let mut f: BTreeMap<String, BackendFactory> = BTreeMap::new();
    f.insert(
        "cubbyhole".into(),
        Arc::new(kura_engines::cubbyhole_factory),
    );
    f.insert(
        "leaser".into(),
        Arc::new(move |_cfg| {
            Ok(Arc::new(Leaser {
                revoked: r2.clone(),
            }) as Arc<dyn kura_logical::LogicalBackend>)
        }),
    );
    let core = Core::new(CoreConfig::default(), physical.clone(), f);
    let init = core.initialize(1, 1).await.unwrap();
    core.unseal_with_keys(&init.keys).await.unwrap();
    core.mount(
        "creds/",
        "leaser",
        "",
        MountConfig::default(),
        BTreeMap::new(),
        MountKind::Secret,
    )
    .await
    .unwrap();
    (
        Harness {
            core,
            physical,
            root: init.root_token,
        },
        revoked,
        init.keys,
    )
}

#[tokio::test]
async fn leases_lookup_renew_revoke_and_expire() {
    let (h, revoked, keys) = lease_harness().await;
    let r = h
        .call(Operation::Read, "creds/a", &h.root, json!({}))
        .await
        .unwrap();
    let lease = r.lease.clone().unwrap();
    assert!(lease.lease_id.starts_with("creds/a/"), "{}", lease.lease_id);
    let r = h
        .call(
            Operation::Update,
            "sys/leases/lookup",
            &h.root,
            json!({"lease_id": lease.lease_id}),
        )
        .await
        .unwrap();
    assert_eq!(data(&r)["id"], json!(lease.lease_id));
    assert_eq!(data(&r)["renewable"], true);
    let r = h
        .call(
            Operation::List,
            "sys/leases/lookup/creds/",
            &h.root,
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(data(&r)["keys"], json!(["a/"]));
    let r = h
        .call(
            Operation::Update,
            "sys/leases/renew",
            &h.root,
            json!({"lease_id": lease.lease_id, "increment": 120}),
        )
        .await
        .unwrap();
    assert_eq!(r.lease.unwrap().ttl, Duration::from_secs(120));
    h.call(
        Operation::Update,
        "sys/leases/revoke",
        &h.root,
        json!({"lease_id": lease.lease_id}),
    )
    .await
    .unwrap();
    assert_eq!(revoked.lock().unwrap().as_slice(), ["a"]);
    let err = h
        .call(
            Operation::Update,
            "sys/leases/lookup",
            &h.root,
            json!({"lease_id": lease.lease_id}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400, "an expired or revoked lease is gone");

    // Expiry on time, and a pending revocation survives seal/unseal (reloaded from storage).
    h.call(Operation::Read, "creds/short", &h.root, json!({"ttl": 1}))
        .await
        .unwrap();
    h.call(Operation::Read, "creds/later", &h.root, json!({"ttl": 2}))
        .await
        .unwrap();
    h.core.seal().await.unwrap();
    h.core.unseal_with_keys(&keys).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let got = revoked.lock().unwrap().clone();
    assert!(
        got.contains(&"short".to_string()) && got.contains(&"later".to_string()),
        "{got:?}"
    );

    // Revoking a token revokes the leases it created.
    let t = h.token(json!({"policies": ["root"]})).await;
    h.call(Operation::Read, "creds/owned", &t, json!({}))
        .await
        .unwrap();
    h.call(
        Operation::Update,
        "auth/token/revoke",
        &h.root,
        json!({"token": t}),
    )
    .await
    .unwrap();
    assert!(revoked.lock().unwrap().contains(&"owned".to_string()));
    // Prefix revocation.
    h.call(Operation::Read, "creds/p/1", &h.root, json!({}))
        .await
        .unwrap();
    h.call(Operation::Read, "creds/p/2", &h.root, json!({}))
        .await
        .unwrap();
    h.call(
        Operation::Update,
        "sys/leases/revoke-prefix/creds/p",
        &h.root,
        json!({}),
    )
    .await
    .unwrap();
    let got = revoked.lock().unwrap().clone();
    assert!(
        got.contains(&"p/1".to_string()) && got.contains(&"p/2".to_string()),
        "{got:?}"
    );
}

#[tokio::test]
async fn login_tokens_follow_the_mount_and_expire() {
    let (h, _) = harness_with_auth().await;
    h.call(
        Operation::Update,
        "sys/auth/userpass",
        &h.root,
        json!({"type": "userpass"}),
    )
    .await
    .unwrap();
    h.call(
        Operation::Update,
        "auth/userpass/users/bob",
        &h.root,
        json!({"password": "pw", "token_policies": "app", "token_ttl": "1s"}),
    )
    .await
    .unwrap();
    let err = h
        .call(
            Operation::Update,
            "auth/userpass/login/bob",
            "",
            json!({"password": "nope"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400, "wrong password");
    let r = h
        .call(
            Operation::Update,
            "auth/userpass/login/bob",
            "",
            json!({"password": "pw"}),
        )
        .await
        .unwrap();
    let auth = r.auth.unwrap();
    assert_eq!(auth.policies, vec!["app", "default"]);
    assert_eq!(auth.lease_duration, 1);
    assert!(auth.orphan);
    let look = h
        .call(
            Operation::Read,
            "auth/token/lookup-self",
            &auth.client_token,
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(data(&look)["path"], "auth/userpass/login/bob");
    assert_eq!(data(&look)["display_name"], "userpass-bob");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert!(matches!(
        h.call(
            Operation::Read,
            "auth/token/lookup-self",
            &auth.client_token,
            json!({})
        )
        .await,
        Err(LogicalError::PermissionDenied)
    ));
}

async fn harness_with_auth() -> (Harness, Vec<String>) {
    let physical = Arc::new(InmemBackend::new());
    let mut f: BTreeMap<String, BackendFactory> = BTreeMap::new();
    f.insert("kv".into(), Arc::new(kura_engines::kv_factory));
    f.insert(
        "cubbyhole".into(),
        Arc::new(kura_engines::cubbyhole_factory),
    );
    f.insert("userpass".into(), Arc::new(kura_auth::userpass_factory));
    let config = CoreConfig {
        unauthed_rekey: true,
        unauthed_generate_root: true,
        ..Default::default()
    };
    let core = Core::new(config, physical.clone(), f);
    let init = core.initialize(3, 2).await.unwrap();
    core.unseal_with_keys(&init.keys).await.unwrap();
    let keys = init
        .keys
        .iter()
        .map(|k| hex::encode(k.as_slice()))
        .collect();
    (
        Harness {
            core,
            physical,
            root: init.root_token,
        },
        keys,
    )
}

#[tokio::test]
async fn generate_root_token_and_rekey() {
    let (h, keys) = harness_with_auth().await;
    // Generate a root token from two shares; decode it with the OTP.
    let r = h
        .call(
            Operation::Update,
            "sys/generate-root-token/attempt",
            &h.root,
            json!({}),
        )
        .await
        .unwrap();
    let otp = data(&r)["otp"].as_str().unwrap().to_string();
    let nonce = data(&r)["nonce"].as_str().unwrap().to_string();
    assert_eq!(otp.len(), 26);
    let mut last = Value::Null;
    for k in &keys[..2] {
        let r = h
            .call(
                Operation::Update,
                "sys/generate-root-token/update",
                &h.root,
                json!({"key": k, "nonce": nonce}),
            )
            .await
            .unwrap();
        last = Value::Object(data(&r).clone());
    }
    assert_eq!(last["complete"], true);
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD
        .decode(last["encoded_token"].as_str().unwrap())
        .unwrap();
    let token: String = encoded
        .iter()
        .zip(otp.bytes())
        .map(|(a, b)| (a ^ b) as char)
        .collect();
    let look = h
        .call(Operation::Read, "auth/token/lookup-self", &token, json!({}))
        .await
        .unwrap();
    assert_eq!(data(&look)["policies"], json!(["root"]));
    // Without sudo the authenticated endpoint is refused.
    let t = h.token(json!({"policies": ["default"]})).await;
    assert!(h
        .call(
            Operation::Read,
            "sys/generate-root-token/attempt",
            &t,
            json!({})
        )
        .await
        .is_err());

    // Rekey to 5/3 through the legacy endpoints (enabled in this core's config).
    let r = h
        .call(
            Operation::Update,
            "sys/rekey/init",
            "",
            json!({"secret_shares": 5, "secret_threshold": 3}),
        )
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&r.raw.unwrap().body).unwrap();
    let nonce = body["nonce"].as_str().unwrap().to_string();
    // A wrong share does not complete it.
    let mut new_keys = Vec::new();
    for k in &keys[..2] {
        let r = h
            .call(
                Operation::Update,
                "sys/rekey/update",
                "",
                json!({"key": k, "nonce": nonce}),
            )
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&r.raw.unwrap().body).unwrap();
        if body["complete"] == true {
            new_keys = body["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
        }
    }
    assert_eq!(new_keys.len(), 5);
    // Old shares no longer unseal; new ones do.
    h.core.seal().await.unwrap();
    for k in &keys[..2] {
        let _ = h.core.submit_unseal_key(&hex::decode(k).unwrap()).await;
    }
    assert!(h.core.is_sealed(), "old shares are void after a rekey");
    h.core.reset_unseal().await;
    for k in &new_keys[2..5] {
        h.core
            .submit_unseal_key(&hex::decode(k).unwrap())
            .await
            .unwrap();
    }
    assert!(!h.core.is_sealed());
}

#[tokio::test]
async fn unmount_revokes_the_mounts_leases() {
    let (h, revoked, _keys) = lease_harness().await;
    for p in ["creds/a", "creds/b"] {
        h.call(Operation::Read, p, &h.root, json!({}))
            .await
            .unwrap();
    }
    h.call(Operation::Delete, "sys/mounts/creds", &h.root, json!({}))
        .await
        .unwrap();
    let mut got = revoked.lock().unwrap().clone();
    got.sort();
    assert_eq!(got, vec!["a", "b"], "the backend undid both secrets");
    let r = h
        .call(
            Operation::List,
            "sys/leases/lookup/creds/",
            &h.root,
            json!({}),
        )
        .await;
    assert!(r.is_err() || r.unwrap().data.is_none(), "no leases left");
}

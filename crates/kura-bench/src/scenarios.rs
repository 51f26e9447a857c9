//! The table of scenarios, after HashiCorp's vault-benchmark test types. A scenario is a setup
//! function, run once per target through the HTTP API, that returns the request generator the
//! load generator then drives. Adding a scenario is adding a row to [`SCENARIOS`].

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};

use crate::api::{Api, ApiError};
use crate::loadgen::{RequestGen, RequestSpec};

/// Everything a setup function may use.
#[derive(Clone)]
pub struct SetupCtx {
    /// Client for the node under load, carrying the root token.
    pub root: Api,
    /// Token the load uses (policy-bound when the target supports it, else root).
    pub token: String,
    /// Number of keys KV scenarios spread over.
    pub keys: usize,
}

/// A prepared scenario: the request generator the load generator drives.
pub struct Prepared {
    /// Produces every request of the run.
    pub gen: Arc<dyn RequestGen>,
}

/// Why a scenario could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The target does not have an endpoint or feature the scenario needs.
    #[error("unsupported: {0}")]
    Unsupported(ApiError),
    /// Setup failed otherwise.
    #[error("setup failed: {0}")]
    Failed(ApiError),
    /// An answer lacked a field the scenario needs.
    #[error("setup failed: answer to {0} lacks a field")]
    Shape(String),
}

/// Maps an API error to "unsupported" when the target says the endpoint does not exist.
fn classify(e: ApiError) -> SetupError {
    if e.is_unsupported() {
        SetupError::Unsupported(e)
    } else {
        SetupError::Failed(e)
    }
}

/// Which nodes of a cluster the load goes to. On a single node every placement is that node, so
/// only [`Placement::Active`] scenarios run there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Only the active node.
    Active,
    /// Only the standby nodes, the connections split evenly between them (cluster only).
    Standbys,
    /// Every node, the connections split evenly between them (cluster only).
    AllNodes,
}

impl Placement {
    /// Short name for tables and JSON (`active`, `standbys`, `all`).
    pub fn name(self) -> &'static str {
        match self {
            Placement::Active => "active",
            Placement::Standbys => "standbys",
            Placement::AllNodes => "all",
        }
    }
}

/// A setup function.
pub type SetupFn = for<'a> fn(&'a SetupCtx) -> BoxFuture<'a, Result<Prepared, SetupError>>;

/// One row of the scenario table.
pub struct Scenario {
    /// Name used on the command line, in tables and JSON.
    pub name: &'static str,
    /// One line saying what a request does.
    pub description: &'static str,
    /// Prepares the target and returns the request generator.
    pub setup: SetupFn,
    /// Whether the HTTP ceiling runs beside this scenario (reads of a KV v2 secret).
    pub with_ceiling: bool,
    /// Whether the scenario runs by default.
    pub default: bool,
    /// Which nodes of a cluster the load goes to.
    pub placement: Placement,
}

impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scenario")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Every scenario, in the order they run.
pub static SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "seal_status",
        description: "GET sys/seal-status (unauthenticated)",
        setup: |ctx| Box::pin(setup_seal_status(ctx)),
        with_ceiling: false,
        default: true,
        placement: Placement::Active,
    },
    Scenario {
        name: "kvv1_read",
        description: "GET of one of 1,000 KV v1 secrets",
        setup: |ctx| Box::pin(setup_kv_read(ctx, 1, "bench-kv1-read")),
        with_ceiling: false,
        default: true,
        placement: Placement::Active,
    },
    Scenario {
        name: "kvv2_read",
        description: "GET of one of 1,000 KV v2 secrets",
        setup: |ctx| Box::pin(setup_kv_read(ctx, 2, "bench-kv2-read")),
        with_ceiling: true,
        default: true,
        placement: Placement::Active,
    },
    Scenario {
        name: "kvv1_write",
        description: "POST of a small value to one of 1,000 KV v1 keys",
        setup: |ctx| Box::pin(setup_kv_write(ctx, 1)),
        with_ceiling: false,
        default: true,
        placement: Placement::Active,
    },
    Scenario {
        name: "kvv2_write",
        description: "POST of a small value to one of 1,000 KV v2 keys (new version)",
        setup: |ctx| Box::pin(setup_kv_write(ctx, 2)),
        with_ceiling: false,
        default: true,
        placement: Placement::Active,
    },
    Scenario {
        name: "approle_login",
        description: "AppRole login (role_id + secret_id), service token issued",
        setup: |ctx| Box::pin(setup_approle(ctx)),
        with_ceiling: false,
        default: true,
        placement: Placement::Active,
    },
    Scenario {
        name: "userpass_login",
        description: "userpass login (bcrypt), service token issued",
        setup: |ctx| Box::pin(setup_userpass(ctx)),
        with_ceiling: false,
        default: true,
        placement: Placement::Active,
    },
    Scenario {
        name: "transit_encrypt",
        description: "transit encrypt of a 30-byte plaintext (aes256-gcm96 key)",
        setup: |ctx| Box::pin(setup_transit(ctx, "aes256-gcm96", "encrypt")),
        with_ceiling: false,
        default: true,
        placement: Placement::Active,
    },
    Scenario {
        name: "transit_sign",
        description: "transit sign of a 30-byte input (ed25519 key)",
        setup: |ctx| Box::pin(setup_transit(ctx, "ed25519", "sign")),
        with_ceiling: false,
        default: true,
        placement: Placement::Active,
    },
    Scenario {
        name: "pki_issue",
        description: "PKI issue: EC P-256 key and certificate from an EC P-256 root (no_store)",
        setup: |ctx| Box::pin(setup_pki(ctx)),
        with_ceiling: false,
        default: true,
        placement: Placement::Active,
    },
    Scenario {
        name: "kvv2_read_standbys",
        description: "GET of one of 1,000 KV v2 secrets, sent only to the two standbys",
        setup: |ctx| Box::pin(setup_kv_read(ctx, 2, "bench-kv2-standbys")),
        with_ceiling: false,
        default: false,
        placement: Placement::Standbys,
    },
    Scenario {
        name: "kvv2_read_spread",
        description: "GET of one of 1,000 KV v2 secrets, spread over all three nodes",
        setup: |ctx| Box::pin(setup_kv_read(ctx, 2, "bench-kv2-spread")),
        with_ceiling: false,
        default: false,
        placement: Placement::AllNodes,
    },
];

/// Looks a scenario up by name.
pub fn find(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

/// Scenarios run on nodes sharing one PostgreSQL database (`--pg-scenarios`), in the order they
/// run. The same setups and request generators as their raft counterparts; the first row is
/// the baseline that rows with other placements (the load on the standbys only, or spread over
/// every node) are compared with. Those need at least two nodes per target (`--pg-nodes`).
pub static PG_SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "pg_kvv2_read",
        description: "GET of one of 1,000 KV v2 secrets, on PostgreSQL, load on the active node",
        setup: |ctx| Box::pin(setup_kv_read(ctx, 2, "bench-kv2-read")),
        with_ceiling: false,
        default: true,
        placement: Placement::Active,
    },
    Scenario {
        name: "pg_kvv2_read_standbys",
        description: "GET of one of 1,000 KV v2 secrets, on PostgreSQL, load on the standbys only",
        setup: |ctx| Box::pin(setup_kv_read(ctx, 2, "bench-kv2-standbys")),
        with_ceiling: false,
        default: true,
        placement: Placement::Standbys,
    },
    Scenario {
        name: "pg_kvv2_read_spread",
        description: "GET of one of 1,000 KV v2 secrets, on PostgreSQL, load spread over \
                      every node",
        setup: |ctx| Box::pin(setup_kv_read(ctx, 2, "bench-kv2-spread")),
        with_ceiling: false,
        default: true,
        placement: Placement::AllNodes,
    },
    Scenario {
        name: "pg_kvv2_write",
        description: "POST of a small value to one of 1,000 KV v2 keys, on PostgreSQL, \
                      load on the active node",
        setup: |ctx| Box::pin(setup_kv_write(ctx, 2)),
        with_ceiling: false,
        default: true,
        placement: Placement::Active,
    },
];

/// Looks a PostgreSQL scenario up by name.
pub fn find_pg(name: &str) -> Option<&'static Scenario> {
    PG_SCENARIOS.iter().find(|s| s.name == name)
}

/// Name of the policy that the load token carries.
pub const POLICY: &str = "kura-bench";

/// Creates the `kura-bench` policy (all capabilities on the bench mounts) and a token bound to
/// it. Returns `None` when the target lacks policies or token creation, so the root token is
/// used instead.
pub async fn prepare_token(root: &Api) -> Result<Option<String>, ApiError> {
    let policy =
        r#"path "bench-*" { capabilities = ["create", "read", "update", "delete", "list"] }"#;
    let r = root
        .put(
            &format!("/v1/sys/policies/acl/{POLICY}"),
            &json!({ "policy": policy }),
        )
        .await;
    match r {
        Ok(_) => {}
        Err(e) if e.is_unsupported() => return Ok(None),
        Err(e) => return Err(e),
    }
    let created = match root
        .post(
            "/v1/auth/token/create",
            &json!({ "policies": [POLICY], "ttl": "72h", "no_default_policy": true }),
        )
        .await
    {
        Ok(v) => v,
        Err(e) if e.is_unsupported() => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(created["auth"]["client_token"].as_str().map(str::to_owned))
}

/// Creates a secrets or auth mount. `kind` is `mounts` or `auth`.
async fn mount(ctx: &SetupCtx, kind: &str, path: &str, body: Value) -> Result<(), SetupError> {
    ctx.root
        .post(&format!("/v1/sys/{kind}/{path}"), &body)
        .await
        .map(|_| ())
        .map_err(classify)
}

/// Value written to key `i`: 16 bytes.
fn value_for(i: usize) -> String {
    format!("value-{i:010}")
}

/// Writes one KV key, retrying for a while: a fresh KV v2 mount answers with an error until its
/// background upgrade is done.
async fn write_key(ctx: &SetupCtx, path: &str, body: &Value) -> Result<(), SetupError> {
    let mut attempt = 0;
    loop {
        match ctx.root.post(path, body).await {
            Ok(_) => return Ok(()),
            Err(e) if attempt < 100 && !matches!(e.status(), Some(s) if s == 404 || s == 405) => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => return Err(classify(e)),
        }
    }
}

fn kv_path(mount: &str, version: u8, key: usize) -> String {
    match version {
        1 => format!("/v1/{mount}/key-{key:04}"),
        _ => format!("/v1/{mount}/data/key-{key:04}"),
    }
}

fn kv_body(version: u8, value: &str) -> Value {
    match version {
        1 => json!({ "value": value }),
        _ => json!({ "data": { "value": value } }),
    }
}

async fn mount_kv(ctx: &SetupCtx, mount_path: &str, version: u8) -> Result<(), SetupError> {
    mount(
        ctx,
        "mounts",
        mount_path,
        json!({ "type": "kv", "options": { "version": version.to_string() } }),
    )
    .await?;
    // The first write also waits out a KV v2 mount's upgrade.
    write_key(
        ctx,
        &kv_path(mount_path, version, 0),
        &kv_body(version, &value_for(0)),
    )
    .await
}

/// Spreads requests over keys so that connections do not move in lockstep.
fn key_index(conn: usize, seq: u64, keys: usize) -> usize {
    ((conn as u64).wrapping_mul(7919).wrapping_add(seq) % keys as u64) as usize
}

async fn setup_seal_status(_ctx: &SetupCtx) -> Result<Prepared, SetupError> {
    Ok(Prepared {
        gen: Arc::new(|_conn: usize, _seq: u64| RequestSpec::get("/v1/sys/seal-status")),
    })
}

async fn setup_kv_read(
    ctx: &SetupCtx,
    version: u8,
    mount_path: &str,
) -> Result<Prepared, SetupError> {
    let mount_path = mount_path.to_owned();
    mount_kv(ctx, &mount_path, version).await?;
    futures::stream::iter(1..ctx.keys)
        .map(|i| {
            let path = kv_path(&mount_path, version, i);
            let body = kv_body(version, &value_for(i));
            async move { write_key(ctx, &path, &body).await }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    // Read one key back with the load token: a target that accepts writes but cannot serve
    // them back fails here, with its answer, rather than producing a run of errors.
    let probe = kv_path(&mount_path, version, ctx.keys - 1);
    ctx.root
        .with_token(&ctx.token)
        .get(&probe)
        .await
        .map_err(SetupError::Failed)?;
    let token = ctx.token.clone();
    let keys = ctx.keys;
    Ok(Prepared {
        gen: Arc::new(move |conn: usize, seq: u64| {
            RequestSpec::get(kv_path(&mount_path, version, key_index(conn, seq, keys)))
                .with_token(Some(&token))
        }),
    })
}

async fn setup_kv_write(ctx: &SetupCtx, version: u8) -> Result<Prepared, SetupError> {
    let mount_path = format!("bench-kv{version}-write");
    mount_kv(ctx, &mount_path, version).await?;
    let token = ctx.token.clone();
    let keys = ctx.keys;
    Ok(Prepared {
        gen: Arc::new(move |conn: usize, seq: u64| {
            let i = key_index(conn, seq, keys);
            let body = kv_body(version, &format!("w{:015}", seq % 1_000_000_000_000_000));
            RequestSpec::post(
                kv_path(&mount_path, version, i),
                serde_json::to_vec(&body).expect("JSON values serialize"),
            )
            .with_token(Some(&token))
        }),
    })
}

async fn setup_approle(ctx: &SetupCtx) -> Result<Prepared, SetupError> {
    mount(ctx, "auth", "bench-approle", json!({ "type": "approle" })).await?;
    ctx.root
        .post(
            "/v1/auth/bench-approle/role/bench",
            &json!({ "token_policies": ["default"], "token_ttl": "10m", "secret_id_num_uses": 0 }),
        )
        .await
        .map_err(classify)?;
    let role = ctx
        .root
        .get("/v1/auth/bench-approle/role/bench/role-id")
        .await
        .map_err(classify)?;
    let role_id = role["data"]["role_id"]
        .as_str()
        .ok_or_else(|| SetupError::Shape("role-id".into()))?
        .to_owned();
    let secret = ctx
        .root
        .post("/v1/auth/bench-approle/role/bench/secret-id", &json!({}))
        .await
        .map_err(classify)?;
    let secret_id = secret["data"]["secret_id"]
        .as_str()
        .ok_or_else(|| SetupError::Shape("secret-id".into()))?
        .to_owned();
    let body = bytes::Bytes::from(
        serde_json::to_vec(&json!({ "role_id": role_id, "secret_id": secret_id }))
            .expect("JSON values serialize"),
    );
    Ok(Prepared {
        gen: Arc::new(move |_conn: usize, _seq: u64| {
            RequestSpec::post("/v1/auth/bench-approle/login", body.clone())
        }),
    })
}

async fn setup_userpass(ctx: &SetupCtx) -> Result<Prepared, SetupError> {
    const PASSWORD: &str = "bench-password-not-secret";
    mount(ctx, "auth", "bench-userpass", json!({ "type": "userpass" })).await?;
    ctx.root
        .post(
            "/v1/auth/bench-userpass/users/bench",
            &json!({ "password": PASSWORD, "token_policies": ["default"], "token_ttl": "10m" }),
        )
        .await
        .map_err(classify)?;
    let body = bytes::Bytes::from(
        serde_json::to_vec(&json!({ "password": PASSWORD })).expect("JSON values serialize"),
    );
    Ok(Prepared {
        gen: Arc::new(move |_conn: usize, _seq: u64| {
            RequestSpec::post("/v1/auth/bench-userpass/login/bench", body.clone())
        }),
    })
}

/// Base64 of the plaintext and signing input the transit scenarios send.
const TRANSIT_INPUT_B64: &str = "c21hbGwgcGxhaW50ZXh0IGZvciBrdXJhLWJlbmNo";

async fn setup_transit(ctx: &SetupCtx, key_type: &str, op: &str) -> Result<Prepared, SetupError> {
    let mount_path = format!("bench-transit-{op}");
    mount(ctx, "mounts", &mount_path, json!({ "type": "transit" })).await?;
    ctx.root
        .post(
            &format!("/v1/{mount_path}/keys/bench"),
            &json!({ "type": key_type }),
        )
        .await
        .map_err(classify)?;
    let path = format!("/v1/{mount_path}/{op}/bench");
    let body = match op {
        "encrypt" => json!({ "plaintext": TRANSIT_INPUT_B64 }),
        _ => json!({ "input": TRANSIT_INPUT_B64 }),
    };
    // One request with the load token, so that a target that cannot do it fails in setup.
    ctx.root
        .with_token(&ctx.token)
        .post(&path, &body)
        .await
        .map_err(classify)?;
    let body = bytes::Bytes::from(serde_json::to_vec(&body).expect("JSON values serialize"));
    let token = ctx.token.clone();
    Ok(Prepared {
        gen: Arc::new(move |_conn: usize, _seq: u64| {
            RequestSpec::post(path.clone(), body.clone()).with_token(Some(&token))
        }),
    })
}

async fn setup_pki(ctx: &SetupCtx) -> Result<Prepared, SetupError> {
    let mount_path = "bench-pki";
    mount(
        ctx,
        "mounts",
        mount_path,
        json!({ "type": "pki", "config": { "max_lease_ttl": "87600h" } }),
    )
    .await?;
    ctx.root
        .post(
            &format!("/v1/{mount_path}/root/generate/internal"),
            &json!({
                "common_name": "kura-bench root",
                "key_type": "ec",
                "key_bits": 256,
                "ttl": "8760h",
            }),
        )
        .await
        .map_err(classify)?;
    ctx.root
        .post(
            &format!("/v1/{mount_path}/roles/bench"),
            &json!({
                "allow_any_name": true,
                "no_store": true,
                "key_type": "ec",
                "key_bits": 256,
                "ttl": "1h",
                "max_ttl": "24h",
            }),
        )
        .await
        .map_err(classify)?;
    let path = format!("/v1/{mount_path}/issue/bench");
    ctx.root
        .with_token(&ctx.token)
        .post(&path, &json!({ "common_name": "probe.bench.test" }))
        .await
        .map_err(classify)?;
    let token = ctx.token.clone();
    Ok(Prepared {
        gen: Arc::new(move |conn: usize, seq: u64| {
            let body = format!(
                r#"{{"common_name":"c{conn}-{}.bench.test"}}"#,
                seq % 1_000_000
            );
            RequestSpec::post(path.clone(), body.into_bytes()).with_token(Some(&token))
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found() {
        for (i, s) in SCENARIOS.iter().enumerate() {
            assert!(SCENARIOS[i + 1..].iter().all(|o| o.name != s.name));
            assert_eq!(find(s.name).unwrap().name, s.name);
        }
        assert!(find("nope").is_none());
    }

    #[test]
    fn pg_names_are_unique_prefixed_and_apart() {
        for (i, s) in PG_SCENARIOS.iter().enumerate() {
            assert!(s.name.starts_with("pg_"));
            assert!(PG_SCENARIOS[i + 1..].iter().all(|o| o.name != s.name));
            assert_eq!(find_pg(s.name).unwrap().name, s.name);
            assert!(find(s.name).is_none());
        }
        assert_eq!(PG_SCENARIOS[0].placement, Placement::Active);
        assert!(find_pg("kvv2_read").is_none());
        // The standby rows read what the raft ones read, on PostgreSQL.
        for (pg, raft) in [
            ("pg_kvv2_read_standbys", "kvv2_read_standbys"),
            ("pg_kvv2_read_spread", "kvv2_read_spread"),
        ] {
            assert_eq!(
                find_pg(pg).unwrap().placement,
                find(raft).unwrap().placement
            );
        }
    }

    #[test]
    fn key_index_stays_in_range_and_spreads() {
        let keys = 1000;
        let mut seen = std::collections::HashSet::new();
        for conn in 0..32 {
            for seq in 0..100 {
                let i = key_index(conn, seq, keys);
                assert!(i < keys);
                seen.insert(i);
            }
        }
        assert!(seen.len() > 500);
    }

    #[test]
    fn kv_paths_follow_engine_versions() {
        assert_eq!(kv_path("m", 1, 7), "/v1/m/key-0007");
        assert_eq!(kv_path("m", 2, 7), "/v1/m/data/key-0007");
        assert_eq!(kv_body(2, "x")["data"]["value"], "x");
        assert_eq!(kv_body(1, "x")["value"], "x");
        assert_eq!(value_for(3).len(), 16);
    }
}

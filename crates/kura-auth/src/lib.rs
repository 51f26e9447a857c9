//! Kura's auth methods (layer 3 in DESIGN.md), each a [`kura_logical::LogicalBackend`] built from
//! a declarative path table, as OpenBao 2.7 serves them:
//!
//! - [`userpass`]: users with passwords ([`userpass_factory`]);
//! - [`approle`]: roles, role IDs and secret IDs for machines ([`approle_factory`]).
//!
//! A login answers with an [`kura_logical::Auth`] whose `client_token`, `accessor` and
//! `lease_duration` are empty: the core creates the token from the policies, TTLs, limits and
//! bound CIDRs the method put there, applies the mount's TTL defaults and maximums, and fills
//! those fields in. Login paths are unauthenticated (`special_paths`) and always run on the
//! active node (`forwards_on_standby`).
//!
//! The token parameters both methods share (`token_policies`, `token_ttl`, ...) live in
//! [`token_params`]; password hashing (argon2id, parameters and measured cost) in [`password`].

pub mod approle;
pub mod cidr;
pub mod password;
pub mod token_params;
pub mod userpass;
mod util;

pub use approle::{approle_factory, ApproleBackend};
pub use userpass::{userpass_factory, UserpassBackend};

#[cfg(test)]
pub(crate) mod testutil {
    //! A backend configuration over [`MemoryStorage`] and request builders for the tests.

    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    use kura_logical::{
        BackendConfig, Map, MemoryStorage, MountInfo, Operation, Request, SystemView,
    };

    /// A system view with OpenBao's defaults (768h).
    pub struct TestSystem;

    impl SystemView for TestSystem {
        fn default_lease_ttl(&self) -> Duration {
            Duration::from_secs(768 * 3600)
        }
        fn max_lease_ttl(&self) -> Duration {
            Duration::from_secs(768 * 3600)
        }
        fn is_standby(&self) -> bool {
            false
        }
    }

    /// A configuration for a mount of `kind` over `storage`.
    pub fn config(kind: &str, storage: Arc<MemoryStorage>) -> BackendConfig {
        BackendConfig {
            mount: MountInfo {
                uuid: "00000000-0000-0000-0000-000000000000".into(),
                path: format!("auth/{kind}/"),
                backend_type: kind.into(),
                accessor: format!("auth_{kind}_00000000"),
                options: BTreeMap::new(),
            },
            storage,
            system: Arc::new(TestSystem),
        }
    }

    /// A request for `path` (relative to the mount) with a JSON body.
    pub fn req(op: Operation, path: &str, body: serde_json::Value) -> Request {
        let data: Map = body.as_object().cloned().unwrap_or_default();
        let mut r = Request::new(op, format!("auth/test/{path}")).with_data(data);
        r.relative_path = path.to_string();
        r.mount_point = "auth/test/".into();
        r
    }

    /// A storage that yields to the scheduler before every operation, so concurrent requests
    /// interleave at each storage access as they would over a real backend.
    pub struct YieldingStorage(pub Arc<MemoryStorage>);

    #[async_trait::async_trait]
    impl kura_logical::Storage for YieldingStorage {
        async fn get(&self, key: &str) -> kura_logical::Result<Option<Vec<u8>>> {
            tokio::task::yield_now().await;
            self.0.get(key).await
        }
        async fn put(&self, key: &str, value: Vec<u8>) -> kura_logical::Result<()> {
            tokio::task::yield_now().await;
            self.0.put(key, value).await
        }
        async fn delete(&self, key: &str) -> kura_logical::Result<()> {
            tokio::task::yield_now().await;
            self.0.delete(key).await
        }
        async fn list(&self, prefix: &str) -> kura_logical::Result<Vec<String>> {
            tokio::task::yield_now().await;
            self.0.list(prefix).await
        }
        async fn transaction(&self, ops: Vec<kura_storage::TxnOp>) -> kura_logical::Result<()> {
            tokio::task::yield_now().await;
            self.0.transaction(ops).await
        }
    }

    /// A configuration whose storage is `storage` behind [`YieldingStorage`].
    pub fn yielding_config(kind: &str, storage: Arc<MemoryStorage>) -> BackendConfig {
        let mut c = config(kind, storage.clone());
        c.storage = Arc::new(YieldingStorage(storage));
        c
    }

    /// The same request from a client address.
    pub fn from(mut r: Request, ip: &str) -> Request {
        r.remote_addr = Some(ip.parse().expect("test address"));
        r
    }
}

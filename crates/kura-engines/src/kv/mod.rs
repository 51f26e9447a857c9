//! The KV secrets engine, as OpenBao 2.7 serves it.
//!
//! - [`v1`]: pass-through storage. Each path holds one JSON object; a `ttl` (or `lease`) field
//!   in it is returned as the lease-duration hint.
//! - [`v2`]: versioned storage with `config`, `data/`, `metadata/`, `detailed-metadata/`,
//!   `delete/`, `undelete/`, `destroy/` and `subkeys/`.
//!
//! [`kv_factory`] picks the version from the mount option `version` (`"2"` → v2, absent, `""` or
//! `"1"` → v1), as OpenBao's factory does.

use std::sync::Arc;

use kura_logical::{BackendConfig, LogicalBackend, LogicalError};

mod util;
pub mod v1;
pub mod v2;

pub use v1::KvV1Backend;
pub use v2::KvV2Backend;

/// Creates the KV backend for a mount: version 2 when `options["version"]` is `"2"`, version 1
/// when it is absent, empty or `"1"`. Any other version is refused with OpenBao's message.
pub fn kv_factory(config: BackendConfig) -> Result<Arc<dyn LogicalBackend>, LogicalError> {
    match config.mount.options.get("version").map(String::as_str) {
        None | Some("") | Some("1") => Ok(Arc::new(KvV1Backend::new(config))),
        Some("2") => Ok(Arc::new(KvV2Backend::new(config))),
        Some(_) => Err(LogicalError::bad(
            "nil backend of type \"kv\" returned from factory",
        )),
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! A backend configuration over [`MemoryStorage`] for the engine tests.

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

    /// A configuration for a KV mount of the given version over `storage`.
    pub fn config(version: Option<&str>, storage: Arc<MemoryStorage>) -> BackendConfig {
        let mut options = BTreeMap::new();
        if let Some(v) = version {
            options.insert("version".to_string(), v.to_string());
        }
        BackendConfig {
            mount: MountInfo {
                uuid: "00000000-0000-0000-0000-000000000000".into(),
                path: "secret/".into(),
                backend_type: "kv".into(),
                accessor: "kv_00000000".into(),
                options,
            },
            storage,
            system: Arc::new(TestSystem),
        }
    }

    /// A request on `relative` (inside the mount) with `data`.
    pub fn req(op: Operation, relative: &str, data: serde_json::Value) -> Request {
        let data: Map = match data {
            serde_json::Value::Object(m) => m,
            _ => Map::new(),
        };
        let mut r = Request::new(op, format!("secret/{relative}")).with_data(data);
        r.mount_point = "secret/".into();
        r.relative_path = relative.to_string();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use kura_logical::{MemoryStorage, Operation};
    use serde_json::json;

    #[tokio::test]
    async fn factory_picks_the_version() {
        let s = Arc::new(MemoryStorage::new());
        let v1 = kv_factory(config(None, s.clone())).unwrap();
        let v1b = kv_factory(config(Some("1"), s.clone())).unwrap();
        let v2 = kv_factory(config(Some("2"), s.clone())).unwrap();
        assert_eq!(v1.backend_type(), "kv");
        assert_eq!(v2.backend_type(), "kv");
        // A v1 mount stores at the path itself; a v2 mount has a config endpoint.
        v1.handle(&req(Operation::Update, "a", json!({"x": 1})))
            .await
            .unwrap();
        assert!(v1b
            .handle(&req(Operation::Read, "a", json!({})))
            .await
            .unwrap()
            .is_some());
        let cfg = v2
            .handle(&req(Operation::Read, "config", json!({})))
            .await
            .unwrap();
        assert!(cfg.unwrap().data.unwrap().contains_key("max_versions"));
        let err = kv_factory(config(Some("3"), s)).err().unwrap();
        assert_eq!(err.status(), 400);
    }
}

//! KV version 1: pass-through storage.
//!
//! Every path inside the mount holds one JSON object, stored as written at the same key in the
//! mount's storage view. A read returns the object as `data`; when it has a `ttl` (or, failing
//! that, a `lease`) field that parses as a duration, that duration is returned as the lease
//! duration hint, otherwise the mount's default lease TTL is. No lease is registered: the hint
//! comes back with an empty lease ID and `renewable: false`, as OpenBao's non-leased
//! pass-through backend answers.

use std::sync::Arc;

use async_trait::async_trait;
use kura_logical::{
    BackendConfig, FieldSpec, FieldType, LeaseInfo, LogicalBackend, LogicalError, Map, Operation,
    PathSpec, PathTable, Request, Response, Result, Storage, SystemView,
};
use serde_json::Value;

use super::util;

/// The only path of a v1 mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum V1Path {
    Secret,
}

/// The KV version 1 backend.
pub struct KvV1Backend {
    storage: Arc<dyn Storage>,
    system: Arc<dyn SystemView>,
    table: PathTable<V1Path>,
}

impl KvV1Backend {
    /// A v1 backend over the mount's storage view.
    pub fn new(config: BackendConfig) -> Self {
        let table = PathTable::new(vec![(
            PathSpec::new(
                "(?P<path>.*)",
                &[
                    Operation::Read,
                    Operation::Update,
                    Operation::Delete,
                    Operation::List,
                ],
                "Pass-through secret storage to the storage backend, allowing you to read/write arbitrary data into secret storage.",
            )
            .fields(vec![FieldSpec::new(
                "path",
                FieldType::String,
                "Location of the secret.",
            )])
            .with_existence_check(),
            V1Path::Secret,
        )]);
        KvV1Backend {
            storage: config.storage,
            system: config.system,
            table,
        }
    }

    async fn read(&self, path: &str) -> Result<Option<Response>> {
        if path.is_empty() {
            return Ok(None);
        }
        let Some(raw) = self.storage.get(path).await? else {
            return Ok(None);
        };
        let data: Map = serde_json::from_slice(&raw)
            .map_err(|e| LogicalError::Internal(format!("json decoding failed: {e}")))?;
        let hint = data
            .get("ttl")
            .or_else(|| data.get("lease"))
            .and_then(|v| kura_config::duration::parse_duration_value(v).ok());
        let ttl = hint.unwrap_or_else(|| self.system.default_lease_ttl());
        Ok(Some(Response {
            data: Some(data),
            lease: Some(LeaseInfo {
                ttl,
                renewable: false,
                lease_id: String::new(),
                internal: None,
            }),
            ..Default::default()
        }))
    }

    async fn write(&self, path: &str, req: &Request) -> Result<Option<Response>> {
        util::check_write_path(path)?;
        if req.data.is_empty() {
            return Err(LogicalError::bad("missing data fields"));
        }
        let bytes = serde_json::to_vec(&Value::Object(req.data.clone()))
            .map_err(|e| LogicalError::Internal(format!("json encoding failed: {e}")))?;
        self.storage.put(path, bytes).await?;
        Ok(None)
    }

    async fn list(&self, path: &str) -> Result<Option<Response>> {
        let keys = self.storage.list(&util::list_prefix(path)).await?;
        Ok(util::list_response(keys))
    }
}

#[async_trait]
impl LogicalBackend for KvV1Backend {
    fn backend_type(&self) -> &str {
        "kv"
    }

    async fn handle(&self, req: &Request) -> Result<Option<Response>> {
        if req.operation == Operation::Help {
            let spec = self
                .table
                .lookup(&req.relative_path)
                .map(|(s, _, _)| s.synopsis);
            let mut data = Map::new();
            data.insert(
                "help".into(),
                Value::String(spec.unwrap_or_default().into()),
            );
            return Ok(Some(Response::with_data(data)));
        }
        let route = self.table.route(req)?;
        let path = route.fields.string("path")?;
        let resp = match req.operation {
            Operation::Read => self.read(&path).await?,
            Operation::Create | Operation::Update => self.write(&path, req).await?,
            Operation::Delete => {
                if !path.is_empty() {
                    self.storage.delete(&path).await?;
                }
                None
            }
            Operation::List => self.list(&path).await?,
            Operation::Patch | Operation::Help => return Err(LogicalError::UnsupportedOperation),
        };
        Ok(util::warn_unknown(resp, &route.fields, req.operation))
    }

    async fn exists(&self, req: &Request) -> Result<Option<bool>> {
        if !self.table.has_existence_check(&req.relative_path) {
            return Ok(None);
        }
        if req.relative_path.is_empty() {
            return Ok(Some(false));
        }
        Ok(Some(self.storage.get(&req.relative_path).await?.is_some()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{config, req};
    use super::*;
    use kura_logical::MemoryStorage;
    use serde_json::json;
    use std::time::Duration;

    fn backend() -> (KvV1Backend, Arc<MemoryStorage>) {
        let s = Arc::new(MemoryStorage::new());
        (KvV1Backend::new(config(None, s.clone())), s)
    }

    #[tokio::test]
    async fn write_read_list_delete() {
        let (b, _) = backend();
        let w = b
            .handle(&req(
                Operation::Create,
                "foo",
                json!({"a": "b", "n": {"x": [1, 2]}}),
            ))
            .await
            .unwrap();
        assert!(w.is_none(), "writes answer 204");
        b.handle(&req(Operation::Update, "dir/x", json!({"a": "c"})))
            .await
            .unwrap();
        let r = b
            .handle(&req(Operation::Read, "foo", json!({})))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            Value::Object(r.data.unwrap()),
            json!({"a": "b", "n": {"x": [1, 2]}})
        );
        let lease = r.lease.unwrap();
        assert_eq!(lease.ttl, Duration::from_secs(768 * 3600), "default TTL");
        assert!(!lease.renewable);
        assert!(lease.lease_id.is_empty());

        let l = b
            .handle(&req(Operation::List, "", json!({})))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(l.data.unwrap()["keys"], json!(["dir/", "foo"]));
        let l = b
            .handle(&req(Operation::List, "dir", json!({})))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(l.data.unwrap()["keys"], json!(["x"]));
        assert!(b
            .handle(&req(Operation::List, "nope/", json!({})))
            .await
            .unwrap()
            .is_none());

        assert!(b
            .handle(&req(Operation::Delete, "foo", json!({})))
            .await
            .unwrap()
            .is_none());
        assert!(b
            .handle(&req(Operation::Read, "foo", json!({})))
            .await
            .unwrap()
            .is_none());
        // Deleting a missing key is fine.
        b.handle(&req(Operation::Delete, "foo", json!({})))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn ttl_hint() {
        let (b, _) = backend();
        for (key, body, want) in [
            ("h", json!({"a": 1, "ttl": "1h"}), 3600),
            ("n", json!({"a": 1, "ttl": 90}), 90),
            ("d", json!({"a": 1, "ttl": "7d"}), 604_800),
            ("z", json!({"a": 1, "ttl": 0}), 0),
            ("l", json!({"a": 1, "lease": "30m"}), 1800),
            ("bad", json!({"a": 1, "ttl": "soon"}), 768 * 3600),
        ] {
            b.handle(&req(Operation::Update, key, body)).await.unwrap();
            let r = b
                .handle(&req(Operation::Read, key, json!({})))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(r.lease.unwrap().ttl, Duration::from_secs(want), "{key}");
            assert!(r.data.unwrap().contains_key("a"), "ttl stays in the data");
        }
    }

    #[tokio::test]
    async fn bad_writes_and_operations() {
        let (b, _) = backend();
        let e = b
            .handle(&req(Operation::Update, "empty", json!({})))
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "missing data fields");
        assert_eq!(e.status(), 400);
        let e = b
            .handle(&req(Operation::Update, "dir/", json!({"a": 1})))
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "cannot write to a path ending in '/'");
        let e = b
            .handle(&req(Operation::Patch, "x", json!({"a": 1})))
            .await
            .unwrap_err();
        assert_eq!(e.status(), 405);
    }

    #[tokio::test]
    async fn existence_and_warnings() {
        let (b, _) = backend();
        let mut r = req(Operation::Update, "foo", json!({"a": 1}));
        assert_eq!(b.exists(&r).await.unwrap(), Some(false));
        b.handle(&r).await.unwrap();
        assert_eq!(b.exists(&r).await.unwrap(), Some(true));
        r.operation = Operation::Read;
        r.data = json!({"zzz": "1"}).as_object().unwrap().clone();
        let resp = b.handle(&r).await.unwrap().unwrap();
        assert_eq!(
            resp.warnings,
            vec!["Endpoint ignored these unrecognized parameters: [zzz]"]
        );
    }

    #[tokio::test]
    async fn read_only_storage() {
        let (b, s) = backend();
        b.handle(&req(Operation::Update, "foo", json!({"a": 1})))
            .await
            .unwrap();
        s.set_read_only(true);
        let e = b
            .handle(&req(Operation::Update, "foo", json!({"a": 2})))
            .await
            .unwrap_err();
        assert!(e.is_read_only());
        let e = b
            .handle(&req(Operation::Delete, "foo", json!({})))
            .await
            .unwrap_err();
        assert!(e.is_read_only());
        let r = b
            .handle(&req(Operation::Read, "foo", json!({})))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.data.unwrap()["a"], 1);
        assert!(b
            .handle(&req(Operation::List, "", json!({})))
            .await
            .unwrap()
            .is_some());
    }
}

//! The cubbyhole engine: storage private to each token, destroyed with it (the core deletes a
//! token's cubbyhole when it revokes the token). Keys are stored under the token's
//! [`TokenContext::storage_id`](kura_logical::TokenContext), never under the token itself.

use std::sync::Arc;

use async_trait::async_trait;
use kura_logical::{
    BackendConfig, LogicalBackend, LogicalError, Operation, Request, Response, Result, Storage,
};
use serde_json::{json, Value};

/// Creates the cubbyhole backend for a mount.
pub fn cubbyhole_factory(config: BackendConfig) -> Result<Arc<dyn LogicalBackend>> {
    Ok(Arc::new(Cubbyhole {
        storage: config.storage,
    }))
}

/// Per-token private storage.
pub struct Cubbyhole {
    storage: Arc<dyn Storage>,
}

impl Cubbyhole {
    fn prefix(req: &Request) -> Result<String> {
        match &req.token {
            Some(t) if !t.storage_id.is_empty() => Ok(format!("{}/", t.storage_id)),
            _ => Err(LogicalError::bad("client token empty")),
        }
    }
}

#[async_trait]
impl LogicalBackend for Cubbyhole {
    fn backend_type(&self) -> &str {
        "cubbyhole"
    }

    async fn exists(&self, req: &Request) -> Result<Option<bool>> {
        let key = format!("{}{}", Self::prefix(req)?, req.relative_path);
        Ok(Some(self.storage.get(&key).await?.is_some()))
    }

    async fn handle(&self, req: &Request) -> Result<Option<Response>> {
        let prefix = Self::prefix(req)?;
        let path = req.relative_path.as_str();
        match req.operation {
            Operation::List => {
                let keys = self.storage.list(&format!("{prefix}{path}")).await?;
                if keys.is_empty() {
                    return Ok(None);
                }
                Ok(Some(Response::from_json(json!({ "keys": keys }))))
            }
            _ if path.is_empty() || path.ends_with('/') => Err(LogicalError::bad("missing path")),
            Operation::Read => match self.storage.get(&format!("{prefix}{path}")).await? {
                None => Ok(None),
                Some(bytes) => {
                    let data: Value = serde_json::from_slice(&bytes).map_err(|e| {
                        LogicalError::Internal(format!("decoding cubbyhole entry: {e}"))
                    })?;
                    Ok(Some(Response::from_json(data)))
                }
            },
            Operation::Create | Operation::Update => {
                if req.data.is_empty() {
                    return Err(LogicalError::bad("missing data fields"));
                }
                let bytes = serde_json::to_vec(&req.data)
                    .map_err(|e| LogicalError::Internal(e.to_string()))?;
                self.storage.put(&format!("{prefix}{path}"), bytes).await?;
                Ok(None)
            }
            Operation::Delete => {
                self.storage.delete(&format!("{prefix}{path}")).await?;
                Ok(None)
            }
            Operation::Patch | Operation::Help => Err(LogicalError::UnsupportedOperation),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kura_logical::{MemoryStorage, MountInfo, SystemView, TokenContext};
    use std::time::Duration;

    struct Sys;
    impl SystemView for Sys {
        fn default_lease_ttl(&self) -> Duration {
            Duration::from_secs(60)
        }
        fn max_lease_ttl(&self) -> Duration {
            Duration::from_secs(60)
        }
        fn is_standby(&self) -> bool {
            false
        }
    }

    fn req(op: Operation, path: &str, who: &str, data: Value) -> Request {
        let mut r = Request::new(op, format!("cubbyhole/{path}"));
        r.relative_path = path.to_string();
        r.data = data.as_object().cloned().unwrap_or_default();
        r.token = Some(Arc::new(TokenContext {
            storage_id: who.to_string(),
            ..Default::default()
        }));
        r
    }

    #[tokio::test]
    async fn private_per_token() {
        let b = cubbyhole_factory(BackendConfig {
            mount: MountInfo::default(),
            storage: Arc::new(MemoryStorage::new()),
            system: Arc::new(Sys),
        })
        .unwrap();
        b.handle(&req(Operation::Update, "a/b", "alice", json!({"k": "v"})))
            .await
            .unwrap();
        let r = b
            .handle(&req(Operation::Read, "a/b", "alice", json!({})))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.data.unwrap()["k"], "v");
        assert!(b
            .handle(&req(Operation::Read, "a/b", "bob", json!({})))
            .await
            .unwrap()
            .is_none());
        let r = b
            .handle(&req(Operation::List, "a/", "alice", json!({})))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.data.unwrap()["keys"], json!(["b"]));
        assert!(b
            .handle(&req(Operation::List, "a/", "bob", json!({})))
            .await
            .unwrap()
            .is_none());
        assert_eq!(
            b.handle(&req(Operation::Update, "x", "alice", json!({})))
                .await
                .unwrap_err()
                .status(),
            400
        );
        b.handle(&req(Operation::Delete, "a/b", "alice", json!({})))
            .await
            .unwrap();
        assert!(b
            .handle(&req(Operation::Read, "a/b", "alice", json!({})))
            .await
            .unwrap()
            .is_none());
        assert_eq!(
            b.exists(&req(Operation::Update, "zz", "alice", json!({})))
                .await
                .unwrap(),
            Some(false)
        );
    }
}

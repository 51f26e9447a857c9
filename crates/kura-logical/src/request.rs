//! The request a backend sees.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::Map;

/// A logical operation, as the ACL system knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Read (GET).
    Read,
    /// Create (PUT/POST on a path whose existence check says it does not exist).
    Create,
    /// Update (PUT/POST).
    Update,
    /// JSON merge patch (PATCH).
    Patch,
    /// Delete (DELETE).
    Delete,
    /// List (LIST, or GET with `list=true`).
    List,
    /// Help (`help=1`).
    Help,
}

impl Operation {
    /// The lowercase name used in audit logs and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Patch => "patch",
            Operation::Delete => "delete",
            Operation::List => "list",
            Operation::Help => "help",
        }
    }

    /// True for operations that never change state.
    pub fn is_read(self) -> bool {
        matches!(self, Operation::Read | Operation::List | Operation::Help)
    }
}

/// What the core knows about the token that made a request.
#[derive(Debug, Clone, Default)]
pub struct TokenContext {
    /// The token ID as presented (never logged; audit HMACs it).
    pub client_token: String,
    /// The token's accessor.
    pub accessor: String,
    /// Policies attached to the token.
    pub policies: Vec<String>,
    /// Display name.
    pub display_name: String,
    /// Entity ID (empty without identity).
    pub entity_id: String,
    /// Token metadata.
    pub meta: std::collections::BTreeMap<String, String>,
    /// True for the root policy.
    pub is_root: bool,
    /// A stable identifier of the token that is safe to use in storage keys (its salted hash);
    /// per-token storage such as the cubbyhole is keyed by it.
    pub storage_id: String,
}

/// One request, after the listener parsed it and the router picked a mount.
#[derive(Debug, Clone)]
pub struct Request {
    /// Unique request ID (also returned as `request_id`).
    pub id: String,
    /// The operation.
    pub operation: Operation,
    /// The full path as requested, without `/v1/` (e.g. `secret/data/foo`).
    pub path: String,
    /// The mount point that serves this request (e.g. `secret/`); empty before routing.
    pub mount_point: String,
    /// The path relative to the mount (e.g. `data/foo`); set by the router.
    pub relative_path: String,
    /// Body fields (JSON object) and, for GET/LIST/DELETE, query parameters.
    pub data: Map,
    /// The namespace path (`""` is the root namespace, the only one for now).
    pub namespace: String,
    /// HTTP headers, as received.
    pub headers: http::HeaderMap,
    /// Requested response-wrapping TTL (`X-Vault-Wrap-TTL`).
    pub wrap_ttl: Option<Duration>,
    /// The client's address.
    pub remote_addr: Option<IpAddr>,
    /// The token, once the core has looked it up.
    pub token: Option<Arc<TokenContext>>,
    /// The raw client token string as presented (empty if none).
    pub client_token: String,
    /// The body as received, for the few endpoints whose body is not JSON (a raft snapshot
    /// being restored); `None` otherwise.
    pub raw_body: Option<Arc<Vec<u8>>>,
    /// The certificate chain the client presented over TLS (DER, its own certificate first),
    /// also when a standby forwarded the request; `None` without one.
    pub client_cert_chain: Option<Arc<Vec<Vec<u8>>>>,
}

impl Request {
    /// A request with the given operation and path, and everything else empty.
    pub fn new(operation: Operation, path: impl Into<String>) -> Self {
        Request {
            id: String::new(),
            operation,
            path: path.into(),
            mount_point: String::new(),
            relative_path: String::new(),
            data: Map::new(),
            namespace: String::new(),
            headers: http::HeaderMap::new(),
            wrap_ttl: None,
            remote_addr: None,
            token: None,
            client_token: String::new(),
            raw_body: None,
            client_cert_chain: None,
        }
    }

    /// Builder: sets the request data.
    pub fn with_data(mut self, data: Map) -> Self {
        self.data = data;
        self
    }
}

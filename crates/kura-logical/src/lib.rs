//! The logical layer of Kura (layer 3 in DESIGN.md): what secrets engines and auth methods are
//! written against.
//!
//! A backend is a declarative [`PathTable`] — patterns, typed fields, operations, existence
//! checks, a forwarding flag — plus handlers, behind the [`LogicalBackend`] trait. It reads and
//! writes through a [`Storage`] view scoped to its mount, and learns about writes made elsewhere
//! (on the active node, seen from a standby) through [`LogicalBackend::invalidate`].

mod backend;
mod error;
mod fields;
pub mod helpers;
mod path;
mod request;
mod response;
mod storage;

pub use backend::{BackendConfig, LogicalBackend, MountInfo, SpecialPaths, SystemView};
pub use error::LogicalError;
pub use fields::{coerce_duration, FieldData, FieldSpec, FieldType};
pub use path::{PathSpec, PathTable, Route};
pub use request::{Operation, Request, TokenContext};
pub use response::{Auth, LeaseInfo, RawResponse, Response, WrapInfo};
pub use storage::{MemoryStorage, Storage, StorageExt};

/// A JSON object: request and response data.
pub type Map = serde_json::Map<String, serde_json::Value>;

/// Result type of logical operations.
pub type Result<T> = std::result::Result<T, LogicalError>;

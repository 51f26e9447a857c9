//! Kura's core (layer 2 in DESIGN.md): the request pipeline — namespace, token lookup, ACL,
//! routing to a mount, the backend — plus the seal, the mount tables, the token and policy
//! stores, the system endpoints and the HA state.

mod audit;
pub mod autopilot;
pub mod cluster;
mod core;
mod expiration;
mod ha;
pub mod invalidation;
mod leases;
mod mounts;
mod policy_store;
mod recovery;
mod snapshot_archive;
mod sys;
mod token;
mod token_backend;
mod util;
mod view;
mod wrapping;

#[cfg(test)]
mod tests;

pub use crate::core::{BackendFactory, ClusterInfo, Core, CoreConfig, HandledResponse, InitResult};
pub use audit::AuditOptions;
pub use ha::HaState;
pub use mounts::{MountConfig, MountEntry, MountKind};
pub use token::TokenEntry;

/// The version Kura reports: the OpenBao API level it implements, with Kura's own version as
/// build metadata (clients that compare versions see 2.7.2).
pub const VERSION: &str = concat!("2.7.2+kura.", env!("CARGO_PKG_VERSION"));

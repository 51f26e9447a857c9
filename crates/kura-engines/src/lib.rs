//! Kura's secrets engines (layer 3 in DESIGN.md), each a [`kura_logical::LogicalBackend`] built
//! from a declarative path table.
//!
//! - [`kv`]: the key/value engine, version 1 (pass-through) and version 2 (versioned), chosen
//!   by the mount option `version` through [`kv_factory`].
//! - [`cubbyhole`]: storage private to each token.

pub mod cubbyhole;
pub mod kv;

pub use cubbyhole::cubbyhole_factory;
pub use kv::kv_factory;

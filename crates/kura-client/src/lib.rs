//! `kura-client`: a small async client for the OpenBao / Vault HTTP API.
//!
//! It speaks plain HTTP/1.1 over hyper 1 (hyper-util's pooled client) with TLS through
//! tokio-rustls, using aws-lc-rs as the only crypto provider. It is used by the `kura` CLI,
//! the integration tests and the benchmark harness.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kura_client::ClientError> {
//! use kura_client::Client;
//! use serde_json::json;
//!
//! let client = Client::from_env()?;
//! client.write("secret/data/app", Some(json!({"data": {"password": "hunter2"}}))).await?;
//! if let Some(secret) = client.read("secret/data/app").await? {
//!     println!("{:?}", secret.data);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Configuration comes from [`ClientConfig`]; [`ClientConfig::from_env`] reads the same
//! environment variables as `bao`, with `KURA_*` taking precedence over `BAO_*`, which takes
//! precedence over `VAULT_*`.

mod client;
mod config;
mod error;
mod secret;
mod tls;

pub use client::{ApiResponse, Client, ResponseBody};
pub use config::{default_token_file, read_env, ClientConfig, DEFAULT_ADDRESS};
pub use error::{ApiError, ClientError};
pub use secret::{Secret, SecretAuth, WrapInfo};

/// Re-export of the HTTP method type used by [`Client::request`].
pub use http::Method;
/// Re-export of the HTTP status code type found in [`ApiResponse`].
pub use http::StatusCode;

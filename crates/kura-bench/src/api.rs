//! A small JSON-over-HTTP client for setting targets up (init, unseal, mounts, keys).
//! Load is never sent through it; see [`crate::loadgen`].

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Errors from an API call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request could not be sent or the answer not read.
    #[error("{method} {path}: transport error: {message}")]
    Transport {
        /// Method of the failed request.
        method: Method,
        /// Path of the failed request.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The server answered with a non-2xx status.
    #[error("{method} {path}: HTTP {status}: {body}")]
    Status {
        /// Method of the failed request.
        method: Method,
        /// Path of the failed request.
        path: String,
        /// Status returned.
        status: StatusCode,
        /// Body returned (truncated).
        body: String,
    },
    /// The call did not finish in time.
    #[error("{method} {path}: timed out")]
    Timeout {
        /// Method of the request.
        method: Method,
        /// Path of the request.
        path: String,
    },
}

impl ApiError {
    /// The HTTP status, if the server answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the answer says the endpoint or feature does not exist on this target
    /// (404 Not Found, 405 Method Not Allowed, 400 Bad Request for an unknown mount type, 501).
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self.status(),
            Some(
                StatusCode::NOT_FOUND
                    | StatusCode::METHOD_NOT_ALLOWED
                    | StatusCode::BAD_REQUEST
                    | StatusCode::NOT_IMPLEMENTED
            )
        )
    }
}

/// A pooled HTTP/1.1 client bound to one server.
#[derive(Clone)]
pub struct Api {
    addr: SocketAddr,
    token: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl Api {
    /// A client for the server at `addr`, without a token.
    pub fn new(addr: SocketAddr) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self {
            addr,
            token: None,
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout: Duration::from_secs(30),
        }
    }

    /// The same client sending `token` as `X-Vault-Token`.
    pub fn with_token(&self, token: &str) -> Self {
        let mut api = self.clone();
        api.token = Some(token.to_owned());
        api
    }

    /// Server address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends a request and returns status and raw body, whatever the status.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Bytes), ApiError> {
        self.raw_with_headers(method, path, body, &[]).await
    }

    /// Like [`Api::raw`], with extra request headers (name, value).
    pub async fn raw_with_headers(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<(StatusCode, Bytes), ApiError> {
        let transport = |message: String| ApiError::Transport {
            method: method.clone(),
            path: path.to_owned(),
            message,
        };
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(format!("http://{}{}", self.addr, path));
        if let Some(token) = &self.token {
            builder = builder.header("X-Vault-Token", token.as_str());
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let payload = match body {
            Some(v) => {
                builder = builder.header("Content-Type", "application/json");
                Bytes::from(serde_json::to_vec(v).expect("JSON values serialize"))
            }
            None => Bytes::new(),
        };
        let request = builder
            .body(Full::new(payload))
            .map_err(|e| transport(e.to_string()))?;
        let call = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| transport(e.to_string()))?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| transport(e.to_string()))?
                .to_bytes();
            Ok((status, bytes))
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| ApiError::Timeout {
                method: method.clone(),
                path: path.to_owned(),
            })?
    }

    /// Sends a request; a non-2xx answer is an error. An empty body reads as `Value::Null`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let (status, bytes) = self.raw(method.clone(), path, body).await?;
        if !status.is_success() {
            let n = bytes.len().min(500);
            return Err(ApiError::Status {
                method,
                path: path.to_owned(),
                status,
                body: String::from_utf8_lossy(&bytes[..n]).into_owned(),
            });
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.call(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.call(Method::PUT, path, Some(body)).await
    }
}

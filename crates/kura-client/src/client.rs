//! The client: raw requests plus the logical and `sys/` helpers the CLI needs.

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, LOCATION};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Map, Value};

use crate::config::ClientConfig;
use crate::error::{ApiError, ClientError};
use crate::secret::Secret;
use crate::tls::{rustls_config, HttpsConnector};

/// Body of an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseBody {
    /// No body (204, or an empty 200).
    Empty,
    /// A JSON body.
    Json(Value),
    /// A body that is not JSON, as received.
    Raw(Bytes),
}

/// One HTTP answer, whatever its status.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    /// Method of the request that produced it.
    pub method: Method,
    /// URL of the request, query string included.
    pub url: String,
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// Parsed body.
    pub body: ResponseBody,
    /// The body exactly as received.
    pub raw: Bytes,
}

impl ApiResponse {
    /// True for 2xx and 3xx answers, as the Go client counts success.
    pub fn is_success(&self) -> bool {
        (200..400).contains(&self.status.as_u16())
    }

    /// The JSON body, if the body was JSON.
    pub fn json(&self) -> Option<&Value> {
        match &self.body {
            ResponseBody::Json(v) => Some(v),
            _ => None,
        }
    }

    /// The body bytes exactly as received.
    pub fn bytes(&self) -> Bytes {
        self.raw.clone()
    }

    /// The error the Go client would report for this answer (meaningful for status >= 400).
    pub fn api_error(&self) -> ApiError {
        let (errors, raw) = match &self.body {
            ResponseBody::Json(Value::Object(m)) => {
                let errs = m.get("errors").and_then(Value::as_array).map(|a| {
                    a.iter()
                        .map(|e| e.as_str().map(str::to_string))
                        .collect::<Option<Vec<String>>>()
                });
                match errs {
                    Some(Some(v)) => (v, false),
                    Some(None) => (vec![self.bytes_text()], true),
                    None => (Vec::new(), false),
                }
            }
            _ => (vec![self.bytes_text()], true),
        };
        ApiError {
            method: self.method.to_string(),
            url: self.url.clone(),
            status: self.status.as_u16(),
            errors,
            raw,
            namespace: self
                .headers
                .get("X-Vault-Namespace")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        }
    }

    fn bytes_text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    /// `Ok(self)` for a successful answer, the [`ApiError`] otherwise.
    pub fn error_for_status(self) -> Result<ApiResponse, ApiError> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(self.api_error())
        }
    }

    /// Parses the body as a [`Secret`]; `None` for an empty body.
    pub fn secret(&self) -> Result<Option<Secret>, ClientError> {
        match &self.body {
            ResponseBody::Empty => Ok(None),
            ResponseBody::Json(v) => Ok(Some(Secret::from_value(v.clone())?)),
            ResponseBody::Raw(b) => {
                let v: Value = serde_json::from_slice(b)?;
                Ok(Some(Secret::from_value(v)?))
            }
        }
    }

    /// The Go client's reading of a logical answer: on 404 the answer counts as "no value"
    /// unless it carries data or warnings; other errors are errors.
    pub fn into_logical(self) -> Result<Option<Secret>, ClientError> {
        if self.status == StatusCode::NOT_FOUND {
            return Ok(self.secret()?.filter(Secret::has_data_or_warnings));
        }
        self.error_for_status()?.secret()
    }
}

/// An API client. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct Client {
    config: ClientConfig,
    base: String,
    http: HyperClient<HttpsConnector, Full<Bytes>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is deliberately left out.
        f.debug_struct("Client")
            .field("address", &self.base)
            .field("namespace", &self.config.namespace)
            .finish_non_exhaustive()
    }
}

/// Percent-encodes a URL path the way Go's `url.URL` does (keeps `/` and sub-delimiters).
fn escape_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for b in p.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b'/'
            | b'$'
            | b'&'
            | b'+'
            | b','
            | b':'
            | b';'
            | b'='
            | b'@' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Encodes a query component like Go's `url.QueryEscape`.
fn escape_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's spelling of a method in `url.Error` ("Get", "Put", ...).
fn go_method(m: &Method) -> String {
    let s = m.as_str();
    let mut out = s[..1].to_string();
    out.push_str(&s[1..].to_lowercase());
    out
}

/// Describes a transport failure; connection errors read like Go's (`dial tcp HOST:PORT:
/// connect: connection refused`), anything else as the error and its sources.
fn transport_message(e: &(dyn std::error::Error + 'static), url: &str) -> String {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            let authority = url
                .split("://")
                .nth(1)
                .and_then(|r| r.split('/').next())
                .unwrap_or_default();
            let what = match io.kind() {
                std::io::ErrorKind::ConnectionRefused => Some("connect: connection refused"),
                std::io::ErrorKind::TimedOut => Some("i/o timeout"),
                std::io::ErrorKind::HostUnreachable => Some("connect: no route to host"),
                std::io::ErrorKind::NetworkUnreachable => Some("connect: network is unreachable"),
                _ => None,
            };
            if let Some(w) = what {
                return format!("dial tcp {authority}: {w}");
            }
        }
        src = s.source();
    }
    error_chain(e)
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !msg.contains(&t) {
            msg.push_str(": ");
            msg.push_str(&t);
        }
        src = s.source();
    }
    msg
}

impl Client {
    /// Builds a client from a configuration. Fails on a malformed address or an unusable
    /// TLS setup (missing CA file, bad client key).
    pub fn new(config: ClientConfig) -> Result<Client, ClientError> {
        let address = config.address.trim().trim_end_matches('/').to_string();
        let bad = |reason| ClientError::InvalidAddress {
            address: config.address.clone(),
            reason,
        };
        let uri: http::Uri = address.parse().map_err(|_| bad("not a URL"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("the scheme must be http or https")),
        };
        if uri.host().is_none_or(str::is_empty) {
            return Err(bad("missing host"));
        }
        let wants_tls = https || config.skip_verify || config.ca_cert.is_some();
        let tls = if wants_tls {
            Some(rustls_config(&config)?)
        } else {
            None
        };
        let connector = HttpsConnector::new(tls, config.tls_server_name.clone());
        let http = HyperClient::builder(TokioExecutor::new()).build(connector);
        Ok(Client {
            config,
            base: address,
            http,
        })
    }

    /// [`ClientConfig::from_env`] followed by [`Client::new`].
    pub fn from_env() -> Result<Client, ClientError> {
        Client::new(ClientConfig::from_env()?)
    }

    /// The configuration in use.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The server address, without a trailing slash.
    pub fn address(&self) -> &str {
        &self.base
    }

    /// The token in use, if any.
    pub fn token(&self) -> Option<&str> {
        self.config.token.as_deref()
    }

    /// Replaces the token.
    pub fn set_token(&mut self, token: Option<String>) {
        self.config.token = token;
    }

    /// Replaces the namespace.
    pub fn set_namespace(&mut self, namespace: Option<String>) {
        self.config.namespace = namespace;
    }

    /// The URL of an API path: `secret/foo` becomes `<address>/v1/secret/foo`.
    pub fn url(&self, path: &str, query: &[(&str, &str)]) -> String {
        let p = path.strip_prefix("/v1/").unwrap_or(path);
        let mut url = format!(
            "{}/v1/{}",
            self.base,
            escape_path(p.trim_start_matches('/'))
        );
        if !query.is_empty() {
            let mut q: Vec<&(&str, &str)> = query.iter().collect();
            q.sort_by(|a, b| a.0.cmp(b.0));
            let enc: Vec<String> = q
                .iter()
                .map(|(k, v)| format!("{}={}", escape_query(k), escape_query(v)))
                .collect();
            url.push('?');
            url.push_str(&enc.join("&"));
        }
        url
    }

    /// Sends one request and returns the answer whatever its status; only transport
    /// failures are errors. `path` is relative to `/v1/`. A single 307/302 redirect to
    /// the active node is followed unless redirects are disabled.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<ApiResponse, ClientError> {
        self.request_with(method, path, query, body, "application/json", &[])
            .await
    }

    /// Like [`Client::request`], with a content type and extra headers for this request.
    pub async fn request_with(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
        content_type: &str,
        extra_headers: &[(&str, &str)],
    ) -> Result<ApiResponse, ClientError> {
        let payload = match &body {
            Some(v) => Some(Bytes::from(serde_json::to_vec(v)?)),
            None => None,
        };
        self.request_bytes(method, path, query, payload, content_type, extra_headers)
            .await
    }

    /// Like [`Client::request_with`], with a body of bytes sent as they are (a raft snapshot).
    pub async fn request_bytes(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Bytes>,
        content_type: &str,
        extra_headers: &[(&str, &str)],
    ) -> Result<ApiResponse, ClientError> {
        let payload = body.clone().unwrap_or_default();
        let mut url = self.url(path, query);
        let mut redirects = 0;
        loop {
            let mut builder = http::Request::builder()
                .method(method.clone())
                .uri(url.as_str())
                .header("X-Vault-Request", "true");
            if let Some(t) = self.config.token.as_deref() {
                builder = builder.header("X-Vault-Token", header_value(t)?);
            }
            if let Some(ns) = self.config.namespace.as_deref().filter(|n| !n.is_empty()) {
                builder = builder.header("X-Vault-Namespace", header_value(ns)?);
            }
            if body.is_some() {
                builder = builder.header(CONTENT_TYPE, header_value(content_type)?);
            }
            for (k, v) in self
                .config
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .chain(extra_headers.iter().copied())
            {
                let name = HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| ClientError::InvalidHeader(k.to_string()))?;
                builder = builder.header(name, header_value(v)?);
            }
            let req = builder.body(Full::new(payload.clone())).map_err(|_| {
                ClientError::InvalidAddress {
                    address: url.clone(),
                    reason: "not a valid request URL",
                }
            })?;
            let resp = self.send(&method, &url, req).await?;
            let redirect = matches!(
                resp.status,
                StatusCode::TEMPORARY_REDIRECT | StatusCode::FOUND
            );
            if redirect && !self.config.disable_redirects && redirects < 1 {
                if let Some(loc) = resp.headers.get(LOCATION).and_then(|l| l.to_str().ok()) {
                    url = loc.to_string();
                    redirects += 1;
                    continue;
                }
            }
            return Ok(resp);
        }
    }

    async fn send(
        &self,
        method: &Method,
        url: &str,
        req: http::Request<Full<Bytes>>,
    ) -> Result<ApiResponse, ClientError> {
        let transport = |message: String| ClientError::Transport {
            method: go_method(method),
            url: url.to_string(),
            message,
        };
        let work = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| transport(transport_message(&e, url)))?;
            let (parts, incoming) = resp.into_parts();
            let bytes = incoming
                .collect()
                .await
                .map_err(|e| transport(error_chain(&e)))?
                .to_bytes();
            Ok::<_, ClientError>((parts, bytes))
        };
        let (parts, bytes) = match tokio::time::timeout(self.config.timeout, work).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(ClientError::Timeout {
                    method: go_method(method),
                    url: url.to_string(),
                    secs: self.config.timeout.as_secs(),
                })
            }
        };
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            ResponseBody::Empty
        } else {
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) => ResponseBody::Json(v),
                Err(_) => ResponseBody::Raw(bytes.clone()),
            }
        };
        Ok(ApiResponse {
            method: method.clone(),
            url: url.to_string(),
            status: parts.status,
            headers: parts.headers,
            body,
            raw: bytes,
        })
    }

    /// Sends a request and turns an error status into [`ClientError::Api`].
    pub async fn send_checked(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<ApiResponse, ClientError> {
        Ok(self
            .request(method, path, &[], body)
            .await?
            .error_for_status()?)
    }

    // ----- logical operations (Go client semantics) -----

    /// `GET path`. `Ok(None)` when nothing is there (a 404 without data or warnings).
    pub async fn read(&self, path: &str) -> Result<Option<Secret>, ClientError> {
        self.read_with_query(path, &[]).await
    }

    /// `GET path?query`, with the semantics of [`Client::read`].
    pub async fn read_with_query(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Option<Secret>, ClientError> {
        self.request(Method::GET, path, query, None)
            .await?
            .into_logical()
    }

    /// `LIST path`. `Ok(None)` when there is nothing to list.
    pub async fn list(&self, path: &str) -> Result<Option<Secret>, ClientError> {
        let list = Method::from_bytes(b"LIST").expect("LIST is a valid method token");
        self.request(list, path, &[], None).await?.into_logical()
    }

    /// `PUT path` with a JSON body. `Ok(None)` when the server answers without a body.
    pub async fn write(
        &self,
        path: &str,
        body: Option<Value>,
    ) -> Result<Option<Secret>, ClientError> {
        let resp = self
            .request(
                Method::PUT,
                path,
                &[],
                Some(body.unwrap_or_else(|| json!({}))),
            )
            .await?;
        resp.error_for_status()?.secret()
    }

    /// `PATCH path` with a JSON merge-patch body.
    pub async fn patch(&self, path: &str, body: Value) -> Result<Option<Secret>, ClientError> {
        let resp = self
            .request_with(
                Method::PATCH,
                path,
                &[],
                Some(body),
                "application/merge-patch+json",
                &[],
            )
            .await?;
        resp.error_for_status()?.secret()
    }

    /// `DELETE path`. A 404 counts as success with no value.
    pub async fn delete(&self, path: &str) -> Result<Option<Secret>, ClientError> {
        self.request(Method::DELETE, path, &[], None)
            .await?
            .into_logical()
    }

    // ----- sys/ helpers -----

    async fn sys_json(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        let resp = self.send_checked(method, path, body).await?;
        Ok(resp.json().cloned().unwrap_or(Value::Null))
    }

    /// `GET sys/seal-status` (the raw JSON object).
    pub async fn seal_status(&self) -> Result<Value, ClientError> {
        self.sys_json(Method::GET, "sys/seal-status", None).await
    }

    /// `GET sys/leader` (the raw JSON object).
    pub async fn leader(&self) -> Result<Value, ClientError> {
        self.sys_json(Method::GET, "sys/leader", None).await
    }

    /// `GET sys/health`; every status is returned as is (standby 429, sealed 503, ...).
    pub async fn health(&self) -> Result<ApiResponse, ClientError> {
        self.request(Method::GET, "sys/health", &[], None).await
    }

    /// `GET sys/init`: whether the server is initialized.
    pub async fn init_status(&self) -> Result<bool, ClientError> {
        let v = self.sys_json(Method::GET, "sys/init", None).await?;
        Ok(v.get("initialized")
            .and_then(Value::as_bool)
            .unwrap_or(false))
    }

    /// `PUT sys/init` with an init request (`secret_shares`, `secret_threshold`, ...).
    pub async fn init(&self, request: Value) -> Result<Value, ClientError> {
        self.sys_json(Method::PUT, "sys/init", Some(request)).await
    }

    /// `PUT sys/unseal` with one key share; returns the seal status.
    pub async fn unseal(&self, key: &str) -> Result<Value, ClientError> {
        self.sys_json(Method::PUT, "sys/unseal", Some(json!({ "key": key })))
            .await
    }

    /// `PUT sys/unseal` with `reset`: discards the shares entered so far.
    pub async fn unseal_reset(&self) -> Result<Value, ClientError> {
        self.sys_json(Method::PUT, "sys/unseal", Some(json!({ "reset": true })))
            .await
    }

    /// `PUT sys/seal`.
    pub async fn seal(&self) -> Result<(), ClientError> {
        self.send_checked(Method::PUT, "sys/seal", None).await?;
        Ok(())
    }

    /// `GET sys/key-status`: the `data` of the answer (`term`, `install_time`, `encryptions`).
    pub async fn key_status(&self) -> Result<Map<String, Value>, ClientError> {
        let s = self.read("sys/key-status").await?;
        Ok(s.and_then(|s| s.data).unwrap_or_default())
    }

    /// `PUT sys/rotate`: adds a new encryption key to the keyring.
    pub async fn rotate(&self) -> Result<(), ClientError> {
        self.send_checked(Method::PUT, "sys/rotate", None).await?;
        Ok(())
    }

    async fn data_map(&self, path: &str) -> Result<Map<String, Value>, ClientError> {
        let resp = self.send_checked(Method::GET, path, None).await?;
        Ok(resp.secret()?.and_then(|s| s.data).unwrap_or_default())
    }

    /// `GET sys/mounts`: secrets engines by path.
    pub async fn mounts(&self) -> Result<Map<String, Value>, ClientError> {
        self.data_map("sys/mounts").await
    }

    /// `POST sys/mounts/<path>`: enables a secrets engine.
    pub async fn mount(&self, path: &str, input: Value) -> Result<(), ClientError> {
        self.send_checked(
            Method::POST,
            &format!("sys/mounts/{}", path.trim_end_matches('/')),
            Some(input),
        )
        .await?;
        Ok(())
    }

    /// `DELETE sys/mounts/<path>`: disables a secrets engine.
    pub async fn unmount(&self, path: &str) -> Result<(), ClientError> {
        self.send_checked(
            Method::DELETE,
            &format!("sys/mounts/{}", path.trim_end_matches('/')),
            None,
        )
        .await?;
        Ok(())
    }

    /// `POST sys/mounts/<path>/tune`.
    pub async fn tune_mount(&self, path: &str, config: Value) -> Result<(), ClientError> {
        let p = format!("sys/mounts/{}/tune", path.trim_end_matches('/'));
        self.send_checked(Method::POST, &p, Some(config)).await?;
        Ok(())
    }

    /// `GET sys/auth`: auth methods by path.
    pub async fn auth_methods(&self) -> Result<Map<String, Value>, ClientError> {
        self.data_map("sys/auth").await
    }

    /// `POST sys/auth/<path>`: enables an auth method.
    pub async fn enable_auth(&self, path: &str, input: Value) -> Result<(), ClientError> {
        self.send_checked(
            Method::POST,
            &format!("sys/auth/{}", path.trim_end_matches('/')),
            Some(input),
        )
        .await?;
        Ok(())
    }

    /// `DELETE sys/auth/<path>`: disables an auth method.
    pub async fn disable_auth(&self, path: &str) -> Result<(), ClientError> {
        self.send_checked(
            Method::DELETE,
            &format!("sys/auth/{}", path.trim_end_matches('/')),
            None,
        )
        .await?;
        Ok(())
    }

    /// `GET sys/policies/acl/<name>`: the policy text, `None` when there is no such policy.
    pub async fn policy(&self, name: &str) -> Result<Option<String>, ClientError> {
        let resp = self
            .request(Method::GET, &format!("sys/policies/acl/{name}"), &[], None)
            .await?;
        if resp.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let s = resp.error_for_status()?.secret()?;
        Ok(s.and_then(|s| s.get("policy").and_then(Value::as_str).map(str::to_string)))
    }

    /// `PUT sys/policies/acl/<name>`.
    pub async fn put_policy(&self, name: &str, rules: &str) -> Result<(), ClientError> {
        self.send_checked(
            Method::PUT,
            &format!("sys/policies/acl/{name}"),
            Some(json!({ "policy": rules })),
        )
        .await?;
        Ok(())
    }

    /// `DELETE sys/policies/acl/<name>`.
    pub async fn delete_policy(&self, name: &str) -> Result<(), ClientError> {
        self.send_checked(Method::DELETE, &format!("sys/policies/acl/{name}"), None)
            .await?;
        Ok(())
    }

    /// `LIST sys/policies/acl`: policy names.
    pub async fn policies(&self) -> Result<Vec<String>, ClientError> {
        let s = self.list("sys/policies/acl").await?;
        Ok(s.and_then(|s| s.get("keys").cloned())
            .and_then(|k| serde_json::from_value(k).ok())
            .unwrap_or_default())
    }

    // ----- tokens -----

    /// `POST auth/token/create[/<role>]`.
    pub async fn create_token(
        &self,
        request: Value,
        role: Option<&str>,
    ) -> Result<Secret, ClientError> {
        let path = match role {
            Some(r) => format!("auth/token/create/{r}"),
            None => "auth/token/create".to_string(),
        };
        let resp = self
            .send_checked(Method::POST, &path, Some(request))
            .await?;
        Ok(resp.secret()?.unwrap_or_default())
    }

    /// `GET auth/token/lookup-self`.
    pub async fn lookup_self(&self) -> Result<Option<Secret>, ClientError> {
        let resp = self
            .send_checked(Method::GET, "auth/token/lookup-self", None)
            .await?;
        resp.secret()
    }
}

fn header_value(v: &str) -> Result<HeaderValue, ClientError> {
    HeaderValue::from_str(v).map_err(|_| ClientError::InvalidHeader(v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(addr: &str) -> Client {
        Client::new(ClientConfig {
            address: addr.to_string(),
            ..ClientConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn urls_are_escaped_like_go() {
        let c = client("http://127.0.0.1:8200/");
        assert_eq!(
            c.url("secret/a b", &[]),
            "http://127.0.0.1:8200/v1/secret/a%20b"
        );
        assert_eq!(
            c.url("/v1/secret/data/x", &[("version", "2"), ("a", "x y")]),
            "http://127.0.0.1:8200/v1/secret/data/x?a=x+y&version=2"
        );
        assert_eq!(
            c.url("sys/mounts/kv:1", &[]),
            "http://127.0.0.1:8200/v1/sys/mounts/kv:1"
        );
    }

    #[test]
    fn bad_addresses_are_refused() {
        for a in ["127.0.0.1:8200", "ftp://x", "http://"] {
            let r = Client::new(ClientConfig {
                address: a.to_string(),
                ..ClientConfig::default()
            });
            assert!(matches!(r, Err(ClientError::InvalidAddress { .. })), "{a}");
        }
    }

    #[test]
    fn missing_ca_file_is_an_io_error() {
        let r = Client::new(ClientConfig {
            address: "https://127.0.0.1:8200".into(),
            ca_cert: Some("/nonexistent/ca.pem".into()),
            ..ClientConfig::default()
        });
        assert!(matches!(r, Err(ClientError::Io { .. })));
    }

    fn resp(status: u16, body: ResponseBody) -> ApiResponse {
        let raw = match &body {
            ResponseBody::Raw(b) => b.clone(),
            ResponseBody::Json(v) => Bytes::from(v.to_string()),
            ResponseBody::Empty => Bytes::new(),
        };
        ApiResponse {
            raw,
            method: Method::GET,
            url: "http://h/v1/p".into(),
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body,
        }
    }

    #[test]
    fn logical_404_semantics() {
        let empty = resp(404, ResponseBody::Json(json!({"errors": []})));
        assert_eq!(empty.into_logical().unwrap(), None);
        let with_data = resp(404, ResponseBody::Json(json!({"data": {"x": 1}})));
        assert!(with_data.into_logical().unwrap().is_some());
        let forbidden = resp(
            403,
            ResponseBody::Json(json!({"errors": ["permission denied"]})),
        );
        let err = forbidden.into_logical().unwrap_err();
        assert_eq!(err.status(), Some(403));
        let no_body = resp(204, ResponseBody::Empty);
        assert_eq!(no_body.into_logical().unwrap(), None);
    }

    #[test]
    fn api_error_from_bodies() {
        let e = resp(500, ResponseBody::Raw(Bytes::from_static(b"oops"))).api_error();
        assert!(e.raw);
        assert_eq!(e.errors, vec!["oops".to_string()]);
        let e = resp(400, ResponseBody::Json(json!({"errors": ["a", "b"]}))).api_error();
        assert!(!e.raw);
        assert_eq!(e.errors.len(), 2);
    }

    #[tokio::test]
    async fn transport_error_names_method_and_url() {
        // Bind then drop a listener to get a port that refuses connections.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let c = client(&format!("http://127.0.0.1:{port}"));
        let err = c.read("sys/mounts").await.unwrap_err();
        match err {
            ClientError::Transport {
                method,
                url,
                message,
            } => {
                assert_eq!(method, "Get");
                assert_eq!(url, format!("http://127.0.0.1:{port}/v1/sys/mounts"));
                assert_eq!(
                    message,
                    format!("dial tcp 127.0.0.1:{port}: connect: connection refused")
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    /// A plain HTTP server answering every request with `status`, `extra` headers and `body`.
    async fn http_server(status: &'static str, extra: String, body: &'static str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let extra = extra.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tcp.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let resp = format!(
                        "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tcp.write_all(resp.as_bytes()).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn follows_one_redirect_to_the_active_node() {
        let active = http_server("200 OK", String::new(), r#"{"data":{"node":"active"}}"#).await;
        let standby = http_server(
            "307 Temporary Redirect",
            format!("Location: {active}/v1/secret/x\r\n"),
            "",
        )
        .await;
        let c = client(&standby);
        let s = c.read("secret/x").await.unwrap().unwrap();
        assert_eq!(s.get("node"), Some(&json!("active")));
        let no_redirect = Client::new(ClientConfig {
            address: standby,
            disable_redirects: true,
            ..ClientConfig::default()
        })
        .unwrap();
        let resp = no_redirect
            .request(Method::GET, "secret/x", &[], None)
            .await
            .unwrap();
        assert_eq!(resp.status, StatusCode::TEMPORARY_REDIRECT);
    }
}

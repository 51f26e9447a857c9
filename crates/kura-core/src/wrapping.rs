//! Response wrapping: a response stored in the cubbyhole of a single-use token, handed out as
//! `wrap_info`; `sys/wrapping/{wrap,unwrap,lookup,rewrap}`.

use std::time::Duration;

use kura_logical::{Auth, LeaseInfo, LogicalError, Map, Response, Result, StorageExt, WrapInfo};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::core::{Core, Runtime};
use crate::token::{NewToken, TokenEntry};
use crate::util::rfc3339_secs;
use crate::view::BarrierView;

/// Name of the policy wrapping tokens carry.
pub(crate) const WRAPPING_POLICY: &str = "response-wrapping";
/// TTL used by `sys/wrapping/wrap` when the client asks for none.
pub(crate) const DEFAULT_WRAP_TTL: Duration = Duration::from_secs(300);
const RESPONSE_KEY: &str = "response";

/// What a wrapping token's cubbyhole holds.
#[derive(Serialize, Deserialize)]
struct WrappedResponse {
    data: Option<Map>,
    auth: Option<Auth>,
    warnings: Vec<String>,
    lease: Option<LeaseInfo>,
}

fn invalid() -> LogicalError {
    LogicalError::bad("wrapping token is not valid or does not exist")
}

fn cubbyhole(core: &Core, rt: &Runtime) -> Result<BarrierView> {
    rt.router()
        .all()
        .iter()
        .find(|m| m.entry.backend_type == "cubbyhole")
        .map(|m| BarrierView::new(core.barrier.clone(), m.entry.storage_prefix()))
        .ok_or_else(|| LogicalError::Internal("no cubbyhole mount".into()))
}

impl Core {
    /// Wraps `resp`: stores it in a new single-use token's cubbyhole and returns `wrap_info`.
    pub(crate) async fn wrap_response(
        &self,
        rt: &Runtime,
        resp: Response,
        ttl: Duration,
        creation_path: &str,
    ) -> Result<Response> {
        let wrapped_accessor = resp
            .auth
            .as_ref()
            .map(|a| a.accessor.clone())
            .unwrap_or_default();
        let (token, entry) = rt
            .tokens
            .create(NewToken {
                policies: vec![WRAPPING_POLICY.into()],
                path: creation_path.to_string(),
                display_name: WRAPPING_POLICY.into(),
                num_uses: 1,
                ttl,
                ..Default::default()
            })
            .await?;
        let stored = WrappedResponse {
            data: resp.data,
            auth: resp.auth,
            warnings: resp.warnings,
            lease: resp.lease,
        };
        cubbyhole(self, rt)?
            .put_json(&format!("{}/{RESPONSE_KEY}", entry.hash), &stored)
            .await?;
        rt.expiration.track_token(&entry.hash, ttl.as_secs());
        Ok(Response {
            wrap_info: Some(WrapInfo {
                token,
                accessor: entry.accessor,
                ttl: ttl.as_secs(),
                creation_time: rfc3339_secs(entry.creation_time),
                creation_path: creation_path.to_string(),
                wrapped_accessor,
            }),
            ..Default::default()
        })
    }

    async fn wrapping_entry(&self, rt: &Runtime, token: &str) -> Result<TokenEntry> {
        let entry = rt.tokens.lookup(token).await?.ok_or_else(invalid)?;
        if entry.policies != [WRAPPING_POLICY] {
            return Err(invalid());
        }
        Ok(entry)
    }

    /// `sys/wrapping/unwrap`: returns the wrapped response and destroys the wrapping token.
    pub(crate) async fn unwrap(&self, rt: &Runtime, token: &str) -> Result<Response> {
        let entry = self.wrapping_entry(rt, token).await?;
        let stored: WrappedResponse = cubbyhole(self, rt)?
            .get_json(&format!("{}/{RESPONSE_KEY}", entry.hash))
            .await?
            .ok_or_else(invalid)?;
        rt.tokens.revoke_tree(&entry.hash).await?;
        Ok(Response {
            data: stored.data,
            auth: stored.auth,
            warnings: stored.warnings,
            lease: stored.lease,
            ..Default::default()
        })
    }

    /// `sys/wrapping/lookup`: what a wrapping token holds, without consuming it.
    pub(crate) async fn wrapping_lookup(&self, rt: &Runtime, token: &str) -> Result<Response> {
        let entry = self.wrapping_entry(rt, token).await?;
        Ok(Response::from_json(json!({
            "creation_path": entry.path,
            "creation_time": rfc3339_secs(entry.creation_time),
            "creation_ttl": entry.creation_ttl,
        })))
    }

    /// `sys/wrapping/rewrap`: moves the wrapped response to a new token with the same TTL.
    pub(crate) async fn rewrap(&self, rt: &Runtime, token: &str) -> Result<Response> {
        let entry = self.wrapping_entry(rt, token).await?;
        let path = entry.path.clone();
        let ttl = Duration::from_secs(entry.creation_ttl.max(1) as u64);
        let inner = self.unwrap(rt, token).await?;
        self.wrap_response(rt, inner, ttl, &path).await
    }
}

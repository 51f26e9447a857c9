//! Root recovery: generating a new root token from unseal-key shares (`sys/generate-root-token`,
//! and the legacy unauthenticated `sys/generate-root` when a listener enables it) and rekeying
//! the root key into new shares (`sys/rekey`, legacy and unauthenticated, off by default as in
//! OpenBao 2.7).

use base64::Engine as _;
use kura_barrier::shamir;
use kura_logical::{LogicalError, Response, Result};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::core::{combine_shares, decode_key, Core, SealConfig};
use crate::token::NewToken;
use crate::util::{new_uuid, random_base62, random_bytes};

/// Length of the one-time pad used to encode a generated root token ("s." + 24 characters).
const OTP_LENGTH: usize = 26;

/// An in-progress root-token generation.
#[derive(Default)]
pub(crate) struct RootGeneration {
    nonce: String,
    otp: String,
    shares: Vec<Zeroizing<Vec<u8>>>,
}

/// An in-progress rekey.
#[derive(Default)]
pub(crate) struct Rekey {
    nonce: String,
    new_shares: u8,
    new_threshold: u8,
    shares: Vec<Zeroizing<Vec<u8>>>,
    verify: bool,
}

/// A rekey whose new key waits until holders of the new shares prove they have them.
pub(crate) struct PendingVerification {
    nonce: String,
    new_key: Zeroizing<Vec<u8>>,
    new_shares: u8,
    new_threshold: u8,
    shares: Vec<Zeroizing<Vec<u8>>>,
}

/// Unseal-key-share state shared by both flows.
#[derive(Default)]
pub(crate) struct RecoveryState {
    pub root: Option<RootGeneration>,
    pub rekey: Option<Rekey>,
    pub verification: Option<PendingVerification>,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl Core {
    async fn required_shares(&self) -> Result<SealConfig> {
        self.seal_config()
            .await?
            .ok_or_else(|| LogicalError::bad("Vault is not initialized"))
    }

    /// Combines shares and checks they rebuild this barrier's root key.
    async fn verify_shares(
        &self,
        cfg: &SealConfig,
        shares: &[Zeroizing<Vec<u8>>],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let key = combine_shares(cfg.secret_threshold, shares)?;
        self.barrier.unseal(&key).await.map_err(|_| {
            LogicalError::bad("the unseal key shares given do not rebuild the root key")
        })?;
        Ok(key)
    }

    /// Status of a root-token generation.
    pub(crate) async fn root_generation_status(&self) -> Result<Response> {
        let cfg = self.required_shares().await?;
        let st = self.recovery.lock().await;
        let (started, nonce, progress) = match &st.root {
            Some(g) => (true, g.nonce.clone(), g.shares.len()),
            None => (false, String::new(), 0),
        };
        Ok(Response::from_json(json!({
            "started": started,
            "nonce": nonce,
            "progress": progress,
            "required": cfg.secret_threshold,
            "complete": false,
            "encoded_token": "",
            "encoded_root_token": "",
            "pgp_fingerprint": "",
            "otp": "",
            "otp_length": OTP_LENGTH,
        })))
    }

    /// Starts a root-token generation; returns the OTP the caller decodes the token with.
    pub(crate) async fn root_generation_start(&self, otp: &str, pgp_key: &str) -> Result<Response> {
        if !pgp_key.is_empty() {
            return Err(LogicalError::bad(
                "PGP-encrypted root tokens are not supported by Kura yet",
            ));
        }
        let cfg = self.required_shares().await?;
        let mut st = self.recovery.lock().await;
        if st.root.is_some() {
            return Err(LogicalError::bad("root generation already in progress"));
        }
        let (otp, shown) = if otp.is_empty() {
            let o = random_base62(OTP_LENGTH);
            (o.clone(), o)
        } else {
            if otp.len() != OTP_LENGTH {
                return Err(LogicalError::bad(format!(
                    "OTP string has incorrect length: expected {OTP_LENGTH}, got {}",
                    otp.len()
                )));
            }
            (otp.to_string(), String::new())
        };
        let nonce = new_uuid();
        st.root = Some(RootGeneration {
            nonce: nonce.clone(),
            otp,
            shares: Vec::new(),
        });
        Ok(Response::from_json(json!({
            "started": true,
            "nonce": nonce,
            "progress": 0,
            "required": cfg.secret_threshold,
            "complete": false,
            "encoded_token": "",
            "encoded_root_token": "",
            "pgp_fingerprint": "",
            "otp": shown,
            "otp_length": OTP_LENGTH,
        })))
    }

    /// Cancels a root-token generation.
    pub(crate) async fn root_generation_cancel(&self) {
        self.recovery.lock().await.root = None;
    }

    /// Adds one share; on the last, creates a root token and returns it XOR-encoded with the OTP.
    pub(crate) async fn root_generation_update(&self, key: &str, nonce: &str) -> Result<Response> {
        if nonce.is_empty() {
            return Err(LogicalError::bad("nonce is required"));
        }
        let cfg = self.required_shares().await?;
        let share = Zeroizing::new(decode_key(key)?);
        let mut st = self.recovery.lock().await;
        let gen = st
            .root
            .as_mut()
            .ok_or_else(|| LogicalError::bad("no root generation in progress"))?;
        if gen.nonce != nonce {
            return Err(LogicalError::bad(format!(
                "nonce mismatch: {nonce} vs the running one"
            )));
        }
        if !gen.shares.iter().any(|s| s.as_slice() == share.as_slice()) {
            gen.shares.push(share);
        }
        let progress = gen.shares.len();
        let nonce = gen.nonce.clone();
        if progress < cfg.secret_threshold as usize {
            return Ok(Response::from_json(json!({
                "started": true, "nonce": nonce, "progress": progress,
                "required": cfg.secret_threshold, "complete": false,
                "encoded_token": "", "encoded_root_token": "", "pgp_fingerprint": "",
            })));
        }
        let gen = st.root.take().expect("root generation present");
        drop(st);
        self.verify_shares(&cfg, &gen.shares).await?;
        let rt = self.runtime().ok_or(LogicalError::Sealed)?;
        let (token, _) = rt
            .tokens
            .create(NewToken {
                policies: vec!["root".into()],
                path: "auth/token/root".into(),
                display_name: "root".into(),
                ..Default::default()
            })
            .await?;
        let encoded: Vec<u8> = token
            .bytes()
            .zip(gen.otp.bytes())
            .map(|(a, b)| a ^ b)
            .collect();
        let encoded = b64().encode(encoded);
        Ok(Response::from_json(json!({
            "started": true, "nonce": nonce, "progress": progress,
            "required": cfg.secret_threshold, "complete": true,
            "encoded_token": encoded, "encoded_root_token": encoded, "pgp_fingerprint": "",
        })))
    }

    /// Status of a rekey.
    pub(crate) async fn rekey_status(&self) -> Result<Value> {
        let cfg = self.required_shares().await?;
        let st = self.recovery.lock().await;
        Ok(match &st.rekey {
            Some(r) => json!({
                "started": true, "nonce": r.nonce, "t": r.new_threshold, "n": r.new_shares,
                "progress": r.shares.len(), "required": cfg.secret_threshold,
                "pgp_fingerprints": null, "backup": false, "verification_required": false,
            }),
            None => json!({
                "started": false, "nonce": "", "t": 0, "n": 0, "progress": 0,
                "required": cfg.secret_threshold, "pgp_fingerprints": null, "backup": false,
                "verification_required": false,
            }),
        })
    }

    /// Starts a rekey to `shares`/`threshold`.
    pub(crate) async fn rekey_start(
        &self,
        shares: i64,
        threshold: i64,
        pgp: bool,
        verify: bool,
    ) -> Result<Value> {
        if pgp {
            return Err(LogicalError::bad(
                "PGP-encrypted key shares are not supported by Kura yet",
            ));
        }
        if !(1..=255).contains(&shares)
            || threshold < 1
            || threshold > shares
            || (shares > 1 && threshold == 1)
        {
            return Err(LogicalError::bad(
                "invalid rekey configuration: check secret_shares and secret_threshold",
            ));
        }
        {
            let mut st = self.recovery.lock().await;
            if st.rekey.is_some() {
                return Err(LogicalError::bad("rekey already in progress"));
            }
            st.rekey = Some(Rekey {
                nonce: new_uuid(),
                new_shares: shares as u8,
                new_threshold: threshold as u8,
                shares: Vec::new(),
                verify,
            });
        }
        self.rekey_status().await
    }

    /// Cancels a rekey.
    pub(crate) async fn rekey_cancel(&self) {
        self.recovery.lock().await.rekey = None;
    }

    /// Adds one share; on the last, replaces the root key and returns the new shares.
    pub(crate) async fn rekey_update(&self, key: &str, nonce: &str) -> Result<Value> {
        let cfg = self.required_shares().await?;
        let share = Zeroizing::new(decode_key(key)?);
        let mut st = self.recovery.lock().await;
        let rk = st
            .rekey
            .as_mut()
            .ok_or_else(|| LogicalError::bad("no rekey in progress"))?;
        if rk.nonce != nonce {
            return Err(LogicalError::bad(format!(
                "nonce mismatch: {nonce} vs the running one"
            )));
        }
        if !rk.shares.iter().any(|s| s.as_slice() == share.as_slice()) {
            rk.shares.push(share);
        }
        if rk.shares.len() < cfg.secret_threshold as usize {
            let progress = rk.shares.len();
            let n = rk.nonce.clone();
            drop(st);
            let mut status = self.rekey_status().await?;
            status["progress"] = json!(progress);
            status["nonce"] = json!(n);
            return Ok(status);
        }
        let rk = st.rekey.take().expect("rekey present");
        drop(st);
        self.verify_shares(&cfg, &rk.shares).await?;
        let new_key = Zeroizing::new(random_bytes(32));
        let keys: Vec<Zeroizing<Vec<u8>>> = if rk.new_shares == 1 {
            vec![new_key.clone()]
        } else {
            shamir::split(&new_key, rk.new_shares, rk.new_threshold)
                .map_err(|e| LogicalError::Internal(e.to_string()))?
                .into_iter()
                .map(Zeroizing::new)
                .collect()
        };
        let hex_keys: Vec<String> = keys.iter().map(|k| hex::encode(k.as_slice())).collect();
        let b64_keys: Vec<String> = keys.iter().map(|k| b64().encode(k.as_slice())).collect();
        if rk.verify {
            let verification_nonce = new_uuid();
            self.recovery.lock().await.verification = Some(PendingVerification {
                nonce: verification_nonce.clone(),
                new_key,
                new_shares: rk.new_shares,
                new_threshold: rk.new_threshold,
                shares: Vec::new(),
            });
            return Ok(json!({
                "complete": true,
                "nonce": rk.nonce,
                "keys": hex_keys,
                "keys_base64": b64_keys,
                "pgp_fingerprints": null,
                "backup": false,
                "verification_required": true,
                "verification_nonce": verification_nonce,
            }));
        }
        self.apply_rekey(&new_key, rk.new_shares, rk.new_threshold)
            .await?;
        Ok(json!({
            "complete": true,
            "nonce": rk.nonce,
            "keys": hex_keys,
            "keys_base64": b64_keys,
            "pgp_fingerprints": null,
            "backup": false,
            "verification_required": false,
        }))
    }

    async fn apply_rekey(&self, new_key: &[u8], shares: u8, threshold: u8) -> Result<()> {
        let _guard = self.state_lock.lock().await;
        self.barrier
            .rekey_root(new_key)
            .await
            .map_err(crate::view::barrier_err)?;
        self.write_seal_config(&SealConfig {
            kind: "shamir".into(),
            secret_shares: shares,
            secret_threshold: threshold,
            nonce: String::new(),
        })
        .await
    }

    /// Status of a rekey verification.
    pub(crate) async fn rekey_verify_status(&self) -> Result<Value> {
        let st = self.recovery.lock().await;
        let v = st
            .verification
            .as_ref()
            .ok_or_else(|| LogicalError::bad("no rekey verification in progress"))?;
        Ok(json!({
            "started": true, "nonce": v.nonce, "t": v.new_threshold, "n": v.new_shares,
            "progress": v.shares.len(),
        }))
    }

    /// Restarts a rekey verification with a new nonce.
    pub(crate) async fn rekey_verify_cancel(&self) -> Result<Value> {
        {
            let mut st = self.recovery.lock().await;
            let v = st
                .verification
                .as_mut()
                .ok_or_else(|| LogicalError::bad("no rekey verification in progress"))?;
            v.nonce = new_uuid();
            v.shares.clear();
        }
        self.rekey_verify_status().await
    }

    /// Adds one of the new shares; on the last, checks them and makes the new key active.
    pub(crate) async fn rekey_verify_update(&self, key: &str, nonce: &str) -> Result<Value> {
        let share = Zeroizing::new(decode_key(key)?);
        let mut st = self.recovery.lock().await;
        let v = st
            .verification
            .as_mut()
            .ok_or_else(|| LogicalError::bad("no rekey verification in progress"))?;
        if v.nonce != nonce {
            return Err(LogicalError::bad(format!(
                "nonce mismatch: {nonce} vs the running one"
            )));
        }
        if !v.shares.iter().any(|s| s.as_slice() == share.as_slice()) {
            v.shares.push(share);
        }
        if v.shares.len() < v.new_threshold as usize {
            return Ok(json!({
                "started": true, "nonce": v.nonce, "t": v.new_threshold, "n": v.new_shares,
                "progress": v.shares.len(), "complete": false,
            }));
        }
        let v = st.verification.take().expect("verification present");
        drop(st);
        let combined = combine_shares(v.new_threshold, &v.shares)?;
        use subtle::ConstantTimeEq;
        if combined.len() != v.new_key.len() || !bool::from(combined.ct_eq(&v.new_key)) {
            let nonce = v.nonce.clone();
            self.recovery.lock().await.verification = Some(PendingVerification {
                shares: Vec::new(),
                ..v
            });
            return Err(LogicalError::bad(format!(
                "the new key shares do not rebuild the new key; verification {nonce} restarted"
            )));
        }
        self.apply_rekey(&v.new_key, v.new_shares, v.new_threshold)
            .await?;
        Ok(json!({ "nonce": v.nonce, "complete": true }))
    }
}

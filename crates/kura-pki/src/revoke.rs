//! Revocation and publication: `revoke`, CRLs, `ca`, `ca_chain`, `cert/:serial`, `certs`, `tidy`.

use std::time::Duration;

use kura_logical::{FieldData, LogicalError, Response, Result, StorageExt};
use rcgen::{CertificateRevocationListParams, RevokedCertParams};
use serde_json::json;

use crate::certutil::{self, now};
use crate::issuers::trim_pem;
use crate::model::{CertEntry, CrlEntry, RevokedEntry};
use crate::{data, raw, PkiBackend};

impl PkiBackend {
    /// `revoke`: by serial number or by certificate.
    pub(crate) async fn revoke(&self, f: &FieldData) -> Result<Option<Response>> {
        let mut serial = f.string("serial_number")?;
        let cert = f.string("certificate")?;
        if !serial.is_empty() && !cert.is_empty() {
            return Err(LogicalError::bad(
                "must provide either the certificate or the serial to revoke; not both",
            ));
        }
        if !cert.is_empty() {
            let der = certutil::cert_der_from_pem(&cert)?;
            let c = certutil::parse_cert(&der)?;
            serial = certutil::colon_hex(&certutil::serial_bytes(&c));
        }
        if serial.is_empty() {
            return Err(LogicalError::bad(
                "The serial number must be provided (or the certificate)",
            ));
        }
        let rec = self.revoke_serial(&serial, false).await?;
        Ok(data(json!({
            "revocation_time": rec.revocation_time,
            "revocation_time_rfc3339": rec.revocation_time_rfc3339,
            "state": "revoked",
        })))
    }

    /// Revokes a stored certificate and rebuilds its issuer's CRL. With `lenient` (lease
    /// revocation) an unknown serial is not an error.
    pub(crate) async fn revoke_serial(&self, serial: &str, lenient: bool) -> Result<RevokedEntry> {
        let serial = certutil::normalize_serial(serial);
        let key = certutil::serial_key(&serial);
        if let Some(r) = self
            .storage
            .get_json::<RevokedEntry>(&format!("revoked/{key}"))
            .await?
        {
            return Ok(r);
        }
        let Some(entry) = self
            .storage
            .get_json::<CertEntry>(&format!("certs/{key}"))
            .await?
        else {
            if lenient {
                return Ok(RevokedEntry {
                    serial_number: serial,
                    certificate: String::new(),
                    issuer_id: String::new(),
                    revocation_time: 0,
                    revocation_time_rfc3339: String::new(),
                });
            }
            return Err(LogicalError::bad(format!(
                "certificate with serial {serial} not found."
            )));
        };
        if let Some(i) = self
            .all_issuers()
            .await?
            .into_iter()
            .find(|i| i.serial_number == serial)
        {
            return Err(LogicalError::bad(format!(
                "adding issuer (id: {}) to its own CRL is not allowed",
                i.id
            )));
        }
        let der = certutil::cert_der_from_pem(&entry.certificate)?;
        let not_after = certutil::parse_cert(&der)?
            .validity()
            .not_after
            .to_datetime();
        let t = now();
        if not_after < t && !self.crl_config().await?.allow_expired_cert_revocation {
            if lenient {
                return Ok(RevokedEntry {
                    serial_number: serial,
                    certificate: entry.certificate,
                    issuer_id: entry.issuer_id,
                    revocation_time: 0,
                    revocation_time_rfc3339: String::new(),
                });
            }
            return Err(LogicalError::bad(format!(
                "certificate with serial {serial} is expired and cannot be revoked"
            )));
        }
        let rec = RevokedEntry {
            serial_number: serial,
            certificate: entry.certificate,
            issuer_id: entry.issuer_id.clone(),
            revocation_time: t.unix_timestamp(),
            revocation_time_rfc3339: kura_logical::helpers::rfc3339_nanos(
                i64::try_from(t.unix_timestamp_nanos()).unwrap_or(0),
            ),
        };
        self.storage
            .put_json(&format!("revoked/{key}"), &rec)
            .await?;
        if !self.crl_config().await?.disable {
            if entry.issuer_id.is_empty() {
                self.rebuild_all_crls().await?;
            } else if let Err(e) = self.rebuild_crl_for(&entry.issuer_id).await {
                tracing::warn!(error = %e, "rebuilding the CRL after a revocation failed");
            }
        }
        Ok(rec)
    }

    async fn revoked_for(
        &self,
        issuer_id: &str,
        issuer_subject: &[u8],
    ) -> Result<Vec<RevokedCertParams>> {
        let mut out = Vec::new();
        for k in self.storage.list("revoked/").await? {
            let Some(r) = self
                .storage
                .get_json::<RevokedEntry>(&format!("revoked/{k}"))
                .await?
            else {
                continue;
            };
            let belongs = if !r.issuer_id.is_empty() {
                r.issuer_id == issuer_id
            } else {
                // Issuer certificates revoked through issuer/:ref/revoke: list them on the
                // CRL of whichever issuer signed them.
                certutil::cert_der_from_pem(&r.certificate)
                    .ok()
                    .and_then(|d| {
                        certutil::parse_cert(&d).ok().map(|c| {
                            c.issuer().as_raw() == issuer_subject
                                && c.subject().as_raw() != issuer_subject
                        })
                    })
                    .unwrap_or(false)
            };
            if !belongs {
                continue;
            }
            let bytes: Vec<u8> = r
                .serial_number
                .split(':')
                .filter_map(|h| u8::from_str_radix(h, 16).ok())
                .collect();
            out.push(RevokedCertParams {
                serial_number: certutil::rcgen_serial(&bytes),
                revocation_time: ::time::OffsetDateTime::from_unix_timestamp(r.revocation_time)
                    .unwrap_or_else(|_| now()),
                reason_code: None,
                invalidity_date: None,
            });
        }
        Ok(out)
    }

    /// Builds the CRL of one issuer (not stored).
    async fn build_crl(&self, issuer_id: &str, number: u64) -> Result<String> {
        let signer = self.signer(issuer_id).await?;
        let subject = {
            let der = certutil::cert_der_from_pem(&signer.entry.certificate)?;
            certutil::parse_cert(&der)?.subject().as_raw().to_vec()
        };
        let cfg = self.crl_config().await?;
        let expiry = kura_logical::coerce_duration("expiry", &json!(cfg.expiry))
            .unwrap_or(Duration::from_secs(72 * 3600));
        let t = now();
        let params = CertificateRevocationListParams {
            this_update: t,
            next_update: t + expiry.max(Duration::from_secs(1)),
            crl_number: certutil::rcgen_serial(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs: self.revoked_for(&signer.entry.id, &subject).await?,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let crl = params
            .signed_by(&signer.issuer)
            .map_err(|e| LogicalError::Internal(format!("building CRL: {e}")))?;
        crl.pem()
            .map_err(|e| LogicalError::Internal(format!("encoding CRL: {e}")))
    }

    /// Rebuilds and stores the CRL of one issuer.
    pub(crate) async fn rebuild_crl_for(&self, issuer_id: &str) -> Result<()> {
        let key = format!("crls/{issuer_id}");
        let number = self
            .storage
            .get_json::<CrlEntry>(&key)
            .await?
            .map(|c| c.number + 1)
            .unwrap_or(1);
        let pem = self.build_crl(issuer_id, number).await?;
        self.storage.put_json(&key, &CrlEntry { number, pem }).await
    }

    /// Rebuilds the CRL of every issuer that holds a key.
    pub(crate) async fn rebuild_all_crls(&self) -> Result<()> {
        for i in self.all_issuers().await? {
            if i.key_id.is_empty() {
                continue;
            }
            if let Err(e) = self.rebuild_crl_for(&i.id).await {
                tracing::debug!(issuer = %i.id, error = %e, "CRL rebuild failed");
            }
        }
        Ok(())
    }

    /// The CRL of an issuer reference, PEM: stored, or built on the fly when none is stored.
    async fn crl_pem(&self, reference: &str) -> Result<String> {
        let e = self.issuer_entry(reference).await?;
        if let Some(c) = self
            .storage
            .get_json::<CrlEntry>(&format!("crls/{}", e.id))
            .await?
        {
            return Ok(c.pem);
        }
        self.build_crl(&e.id, 1).await
    }

    pub(crate) async fn crl_raw(&self, reference: &str, pem: bool) -> Result<Option<Response>> {
        let p = self.crl_pem(reference).await?;
        if pem {
            return Ok(raw("application/x-pem-file", p.into_bytes()));
        }
        let der = certutil::pem_blocks(&p)
            .into_iter()
            .next()
            .map(|(_, d)| d)
            .unwrap_or_default();
        Ok(raw("application/pkix-crl", der))
    }

    pub(crate) async fn issuer_crl(&self, reference: &str, fmt: &str) -> Result<Option<Response>> {
        match fmt {
            "/pem" => self.crl_raw(reference, true).await,
            "/der" => self.crl_raw(reference, false).await,
            _ => {
                let p = self.crl_pem(reference).await?;
                Ok(data(json!({"crl": trim_pem(&p)})))
            }
        }
    }

    pub(crate) async fn rotate_crl(&self) -> Result<Option<Response>> {
        self.rebuild_all_crls().await?;
        Ok(data(json!({"success": true})))
    }

    pub(crate) async fn ca_raw(&self, pem: bool) -> Result<Option<Response>> {
        let Ok(e) = self.issuer_entry("default").await else {
            return Ok(raw(
                if pem {
                    "application/pem-certificate-chain"
                } else {
                    "application/pkix-cert"
                },
                Vec::new(),
            ));
        };
        if pem {
            return Ok(raw(
                "application/pem-certificate-chain",
                trim_pem(&e.certificate).into_bytes(),
            ));
        }
        Ok(raw(
            "application/pkix-cert",
            certutil::cert_der_from_pem(&e.certificate)?,
        ))
    }

    pub(crate) async fn ca_chain(&self, json_form: bool) -> Result<Option<Response>> {
        let chain = match self.issuer_entry("default").await {
            Ok(e) => {
                let all = self.all_issuers().await?;
                Self::chain_of(&e, &all)
            }
            Err(_) => Vec::new(),
        };
        let mut text = chain.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        if json_form {
            return Ok(data(json!({"ca_chain": text, "certificate": text})));
        }
        Ok(raw("application/pkix-cert", text.into_bytes()))
    }

    pub(crate) async fn read_cert(&self, serial: &str, raw_fmt: &str) -> Result<Option<Response>> {
        let (pem, revoked): (String, Option<RevokedEntry>) = match serial {
            "ca" => match self.issuer_entry("default").await {
                Ok(e) => (e.certificate, None),
                Err(_) => return Ok(None),
            },
            "ca_chain" => return self.ca_chain(true).await,
            "crl" => {
                let p = match self.crl_pem("default").await {
                    Ok(p) => p,
                    Err(_) => return Ok(None),
                };
                return Ok(data(
                    json!({"certificate": trim_pem(&p), "revocation_time": 0, "revocation_time_rfc3339": ""}),
                ));
            }
            s => {
                let key = certutil::serial_key(s);
                let revoked: Option<RevokedEntry> =
                    self.storage.get_json(&format!("revoked/{key}")).await?;
                match self
                    .storage
                    .get_json::<CertEntry>(&format!("certs/{key}"))
                    .await?
                {
                    Some(c) => (c.certificate, revoked),
                    None => match revoked {
                        Some(r) => (r.certificate.clone(), Some(r)),
                        None => return Ok(None),
                    },
                }
            }
        };
        if raw_fmt == "/raw" {
            return Ok(raw(
                "application/pkix-cert",
                certutil::cert_der_from_pem(&pem)?,
            ));
        }
        if raw_fmt == "/raw/pem" {
            return Ok(raw(
                "application/pem-certificate-chain",
                trim_pem(&pem).into_bytes(),
            ));
        }
        let mut d = json!({
            "certificate": trim_pem(&pem),
            "revocation_time": 0,
            "revocation_time_rfc3339": "",
        });
        if let Some(r) = revoked {
            d["revocation_time"] = json!(r.revocation_time);
            d["revocation_time_rfc3339"] = json!(r.revocation_time_rfc3339);
            d["issuer_id"] = json!(r.issuer_id);
        }
        Ok(data(d))
    }

    pub(crate) async fn list_certs(&self, prefix: &str) -> Result<Option<Response>> {
        let keys: Vec<String> = self
            .storage
            .list(prefix)
            .await?
            .into_iter()
            .filter(|k| !k.ends_with('/'))
            .map(|k| k.replace('-', ":"))
            .collect();
        Ok(kura_logical::helpers::list_response(keys))
    }

    /// `tidy`: removes expired certificates (and their revocation records) older than the
    /// safety buffer. Runs inline and answers 202 as OpenBao does.
    pub(crate) async fn tidy(&self, f: &FieldData) -> Result<Option<Response>> {
        let store = f.bool("tidy_cert_store")?;
        let revoked = f.bool("tidy_revoked_certs")?;
        let mut resp = Response {
            status: Some(202),
            ..Default::default()
        };
        if !store
            && !revoked
            && !f.bool("tidy_expired_issuers")?
            && !f.bool("tidy_revoked_cert_issuer_associations")?
        {
            resp.warnings.push("Manual tidy requested but no tidy operations were set. Enable at least one tidy operation to be run (tidy_cert_store / tidy_revoked_certs / tidy_invalid_certs / tidy_revoked_cert_issuer_associations / tidy_expired_issuers / tidy_move_legacy_ca_bundle / tidy_acme).".into());
            return Ok(Some(resp));
        }
        let buffer = f
            .opt_duration("safety_buffer")?
            .unwrap_or(Duration::from_secs(72 * 3600));
        let cutoff = now() - buffer;
        let started = now();
        let (mut deleted, mut deleted_revoked) = (0u64, 0u64);
        let expired = |pem: &str| -> bool {
            certutil::cert_der_from_pem(pem)
                .ok()
                .and_then(|d| {
                    certutil::parse_cert(&d)
                        .ok()
                        .map(|c| c.validity().not_after.to_datetime() < cutoff)
                })
                .unwrap_or(false)
        };
        if store {
            for k in self.storage.list("certs/").await? {
                if let Some(c) = self
                    .storage
                    .get_json::<CertEntry>(&format!("certs/{k}"))
                    .await?
                {
                    if expired(&c.certificate) {
                        self.storage.delete(&format!("certs/{k}")).await?;
                        deleted += 1;
                    }
                }
            }
        }
        if revoked {
            let mut any = false;
            for k in self.storage.list("revoked/").await? {
                if let Some(r) = self
                    .storage
                    .get_json::<RevokedEntry>(&format!("revoked/{k}"))
                    .await?
                {
                    if expired(&r.certificate) {
                        self.storage.delete(&format!("revoked/{k}")).await?;
                        self.storage.delete(&format!("certs/{k}")).await?;
                        deleted_revoked += 1;
                        any = true;
                    }
                }
            }
            if any {
                self.rebuild_all_crls().await?;
            }
        }
        if let Ok(mut s) = self.tidy_status.lock() {
            *s = json!({
                "state": "Finished",
                "error": null,
                "time_started": started.to_string(),
                "time_finished": now().to_string(),
                "cert_store_deleted_count": deleted,
                "revoked_cert_deleted_count": deleted_revoked,
                "safety_buffer": buffer.as_secs(),
                "tidy_cert_store": store,
                "tidy_revoked_certs": revoked,
            })
            .as_object()
            .cloned()
            .unwrap_or_default();
        }
        resp.warnings.push("Tidy operation successfully started. Any information from the operation will be printed to OpenBao's server logs.".into());
        Ok(Some(resp))
    }

    pub(crate) fn read_tidy_status(&self) -> Result<Option<Response>> {
        let mut m = self
            .tidy_status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        if m.is_empty() {
            m.insert("state".into(), json!("Inactive"));
        }
        Ok(Some(Response::with_data(m)))
    }
}

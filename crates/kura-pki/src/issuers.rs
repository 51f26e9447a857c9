//! CA management: generating roots and intermediates, importing bundles, signing intermediates
//! and self-issued certificates, and the multi-issuer / key API with its configuration.

use std::sync::Arc;
use std::time::Duration;

use kura_logical::{FieldData, LogicalError, Response, Result, StorageExt};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, IsCa, KeyIdMethod, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde_json::{json, Value};
use x509_parser::prelude::*;

use crate::cache::Signer;
use crate::certutil::{self, build_dn, colon_hex, now, pem_encode, SubjectFields};
use crate::model::*;
use crate::{data, not_found_500, PkiBackend};

/// The warning OpenBao gives when no AIA URLs are configured.
pub(crate) const AIA_WARNING: &str = "This mount hasn't configured any authority information access (AIA) fields; this may make it harder for systems to find missing certificates in the chain or to validate revocation status of certificates. Consider updating /config/urls or the newly generated issuer with this information.";

pub(crate) fn trim_pem(p: &str) -> String {
    p.trim_end().to_string()
}

/// Subject fields of a request.
pub(crate) fn subject_fields(f: &FieldData) -> Result<SubjectFields> {
    Ok(SubjectFields {
        ou: f.strings("ou")?,
        organization: f.strings("organization")?,
        country: f.strings("country")?,
        locality: f.strings("locality")?,
        province: f.strings("province")?,
        street_address: f.strings("street_address")?,
        postal_code: f.strings("postal_code")?,
        serial_number: f.string("serial_number")?,
    })
}

/// SANs from a request's common name and `alt_names` / `ip_sans` / `uri_sans`.
pub(crate) fn request_sans(f: &FieldData, cn: &str) -> Result<Vec<SanType>> {
    let mut out = Vec::new();
    if !cn.is_empty() && !f.bool("exclude_cn_from_sans")? {
        out.push(name_san(cn)?);
    }
    for n in f.strings("alt_names")? {
        out.push(name_san(&n)?);
    }
    for ip in f.strings("ip_sans")? {
        let addr = ip.parse().map_err(|_| {
            LogicalError::bad(format!("the value {ip:?} is not a valid IP address"))
        })?;
        out.push(SanType::IpAddress(addr));
    }
    for u in f.strings("uri_sans")? {
        out.push(SanType::URI(u.as_str().try_into().map_err(|_| {
            LogicalError::bad(format!("invalid URI SAN {u}"))
        })?));
    }
    Ok(out)
}

/// A SAN for a name: an IP address, an email address or a DNS name.
pub(crate) fn name_san(n: &str) -> Result<SanType> {
    if let Ok(ip) = n.parse() {
        return Ok(SanType::IpAddress(ip));
    }
    let ia5 = n
        .try_into()
        .map_err(|_| LogicalError::bad(format!("invalid name {n:?}")))?;
    Ok(if n.contains('@') {
        SanType::Rfc822Name(ia5)
    } else {
        SanType::DnsName(ia5)
    })
}

/// Key usages from an X.509 certificate's KeyUsage extension.
fn key_usages_of(cert: &X509Certificate<'_>) -> Vec<KeyUsagePurpose> {
    let Ok(Some(ku)) = cert.key_usage() else {
        return Vec::new();
    };
    let ku = ku.value;
    let mut v = Vec::new();
    let pairs = [
        (ku.digital_signature(), KeyUsagePurpose::DigitalSignature),
        (ku.non_repudiation(), KeyUsagePurpose::ContentCommitment),
        (ku.key_encipherment(), KeyUsagePurpose::KeyEncipherment),
        (ku.data_encipherment(), KeyUsagePurpose::DataEncipherment),
        (ku.key_agreement(), KeyUsagePurpose::KeyAgreement),
        (ku.key_cert_sign(), KeyUsagePurpose::KeyCertSign),
        (ku.crl_sign(), KeyUsagePurpose::CrlSign),
        (ku.encipher_only(), KeyUsagePurpose::EncipherOnly),
        (ku.decipher_only(), KeyUsagePurpose::DecipherOnly),
    ];
    for (on, p) in pairs {
        if on {
            v.push(p);
        }
    }
    v
}

impl PkiBackend {
    // ---- storage helpers -------------------------------------------------------------------

    pub(crate) async fn all_issuers(&self) -> Result<Vec<IssuerEntry>> {
        let mut out = Vec::new();
        for id in self.storage.list("issuer/").await? {
            if let Some(e) = self
                .storage
                .get_json::<IssuerEntry>(&format!("issuer/{id}"))
                .await?
            {
                out.push(e);
            }
        }
        out.sort_by_key(|e| e.created);
        Ok(out)
    }

    pub(crate) async fn all_keys(&self) -> Result<Vec<KeyEntry>> {
        let mut out = Vec::new();
        for id in self.storage.list("key/").await? {
            if let Some(e) = self
                .storage
                .get_json::<KeyEntry>(&format!("key/{id}"))
                .await?
            {
                out.push(e);
            }
        }
        Ok(out)
    }

    async fn config_issuers(&self) -> Result<DefaultRef> {
        Ok(self
            .storage
            .get_json(CONFIG_ISSUERS)
            .await?
            .unwrap_or_default())
    }

    async fn config_keys(&self) -> Result<DefaultRef> {
        Ok(self
            .storage
            .get_json(CONFIG_KEYS)
            .await?
            .unwrap_or_default())
    }

    pub(crate) async fn urls(&self) -> Result<UrlsConfig> {
        Ok(self
            .storage
            .get_json(CONFIG_URLS)
            .await?
            .unwrap_or_default())
    }

    /// Resolves an issuer reference (`default`, id or name) to its id; `None` if unknown.
    pub(crate) async fn issuer_id(&self, reference: &str) -> Result<Option<String>> {
        let reference = if reference.is_empty() {
            "default"
        } else {
            reference
        };
        if reference == "default" {
            let d = self.config_issuers().await?.default;
            return Ok((!d.is_empty()).then_some(d));
        }
        if self
            .storage
            .get(&format!("issuer/{reference}"))
            .await?
            .is_some()
        {
            return Ok(Some(reference.to_string()));
        }
        Ok(self
            .all_issuers()
            .await?
            .into_iter()
            .find(|e| e.name == reference)
            .map(|e| e.id))
    }

    pub(crate) async fn issuer_entry(&self, reference: &str) -> Result<IssuerEntry> {
        let id = self
            .issuer_id(reference)
            .await?
            .ok_or_else(|| not_found_500("issuer", reference))?;
        self.storage
            .get_json(&format!("issuer/{id}"))
            .await?
            .ok_or_else(|| not_found_500("issuer", reference))
    }

    async fn key_id(&self, reference: &str) -> Result<Option<String>> {
        let reference = if reference.is_empty() {
            "default"
        } else {
            reference
        };
        if reference == "default" {
            let d = self.config_keys().await?.default;
            return Ok((!d.is_empty()).then_some(d));
        }
        if self
            .storage
            .get(&format!("key/{reference}"))
            .await?
            .is_some()
        {
            return Ok(Some(reference.to_string()));
        }
        Ok(self
            .all_keys()
            .await?
            .into_iter()
            .find(|e| e.name == reference)
            .map(|e| e.id))
    }

    async fn key_entry(&self, reference: &str) -> Result<KeyEntry> {
        let id = self
            .key_id(reference)
            .await?
            .ok_or_else(|| not_found_500("key", reference))?;
        self.storage
            .get_json(&format!("key/{id}"))
            .await?
            .ok_or_else(|| not_found_500("key", reference))
    }

    /// The chain of an issuer: its certificate, then its parents among the mount's issuers.
    pub(crate) fn chain_of(entry: &IssuerEntry, all: &[IssuerEntry]) -> Vec<String> {
        if let Some(manual) = &entry.manual_chain {
            let v: Vec<String> = manual
                .iter()
                .filter_map(|r| all.iter().find(|e| &e.id == r || &e.name == r))
                .map(|e| trim_pem(&e.certificate))
                .collect();
            if !v.is_empty() {
                return v;
            }
        }
        let mut chain = vec![trim_pem(&entry.certificate)];
        let parsed: Vec<(String, Vec<u8>)> = all
            .iter()
            .filter_map(|e| {
                certutil::cert_der_from_pem(&e.certificate)
                    .ok()
                    .map(|d| (e.id.clone(), d))
            })
            .collect();
        let names = |der: &[u8]| -> Option<(Vec<u8>, Vec<u8>)> {
            let c = certutil::parse_cert(der).ok()?;
            Some((c.subject().as_raw().to_vec(), c.issuer().as_raw().to_vec()))
        };
        let Ok(mut cur) = certutil::cert_der_from_pem(&entry.certificate) else {
            return chain;
        };
        let mut seen = vec![entry.id.clone()];
        for _ in 0..8 {
            let Some((subj, iss)) = names(&cur) else {
                break;
            };
            if subj == iss {
                break;
            }
            let parent = parsed
                .iter()
                .find(|(id, der)| !seen.contains(id) && names(der).is_some_and(|(s, _)| s == iss));
            let Some((pid, pder)) = parent else { break };
            seen.push(pid.clone());
            if let Some(e) = all.iter().find(|e| &e.id == pid) {
                chain.push(trim_pem(&e.certificate));
            }
            cur = pder.clone();
        }
        chain
    }

    /// The parsed signer for an issuer reference, from the cache or storage.
    pub(crate) async fn signer(&self, reference: &str) -> Result<Arc<Signer>> {
        let reference = if reference.is_empty() {
            "default"
        } else {
            reference
        };
        if let Some(s) = self.caches.signer(reference) {
            return Ok(s);
        }
        let generation = self.caches.generation();
        let entry = match self.issuer_entry(reference).await {
            Ok(e) => e,
            Err(_) if reference == "default" => {
                return Err(LogicalError::Coded {
                    status: 500,
                    message: "1 error occurred:\n\t* could not fetch the CA certificate (was one set?): no default issuer currently configured\n\n".into(),
                })
            }
            Err(e) => return Err(e),
        };
        if entry.key_id.is_empty() {
            return Err(LogicalError::bad(format!(
                "issuer {} has no private key and cannot issue certificates",
                entry.id
            )));
        }
        let key: KeyEntry = self
            .storage
            .get_json(&format!("key/{}", entry.key_id))
            .await?
            .ok_or_else(|| not_found_500("key", &entry.key_id))?;
        let kp = certutil::parse_private_key(&key.private_key)?;
        let key_type = certutil::key_type_of(kp.algorithm());
        let der = certutil::cert_der_from_pem(&entry.certificate)?;
        let not_after = {
            let c = certutil::parse_cert(&der)?;
            c.validity().not_after.to_datetime()
        };
        let issuer = rcgen::Issuer::from_ca_cert_der(&der.as_slice().into(), kp)
            .map_err(|e| LogicalError::Internal(format!("issuer certificate: {e}")))?;
        let all = self.all_issuers().await?;
        let chain = Self::chain_of(&entry, &all);
        let urls = self.urls().await?;
        let signer = Arc::new(Signer {
            entry,
            issuer,
            chain,
            not_after,
            key_type,
            urls,
        });
        self.caches
            .put_signer(generation, reference, signer.clone());
        Ok(signer)
    }

    /// Stores a new key; the first key becomes the default.
    async fn store_key(&self, kp: &KeyPair, name: &str) -> Result<KeyEntry> {
        let entry = KeyEntry {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_string(),
            key_type: certutil::key_type_of(kp.algorithm()).to_string(),
            private_key: certutil::private_key_pem(kp, false)?,
        };
        self.storage
            .put_json(&format!("key/{}", entry.id), &entry)
            .await?;
        let mut cfg = self.config_keys().await?;
        if cfg.default.is_empty() {
            cfg.default = entry.id.clone();
            self.storage.put_json(CONFIG_KEYS, &cfg).await?;
        }
        Ok(entry)
    }

    /// Stores a new issuer; the first (or, when configured, the latest) becomes the default.
    async fn store_issuer(&self, cert_pem: &str, key_id: &str, name: &str) -> Result<IssuerEntry> {
        let der = certutil::cert_der_from_pem(cert_pem)?;
        let cert = certutil::parse_cert(&der)?;
        let alg = match certutil::spki_kind(cert.public_key()).0 {
            "rsa" => "SHA256WithRSA",
            "ed25519" => "PureEd25519",
            _ => "ECDSAWithSHA256",
        };
        let entry = IssuerEntry {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_string(),
            key_id: key_id.to_string(),
            certificate: pem_encode("CERTIFICATE", &der),
            serial_number: colon_hex(&certutil::serial_bytes(&cert)),
            leaf_not_after_behavior: "err".into(),
            usage: default_usage(),
            manual_chain: None,
            revoked: false,
            revocation_time: 0,
            revocation_time_rfc3339: String::new(),
            issuing_certificates: Vec::new(),
            crl_distribution_points: Vec::new(),
            ocsp_servers: Vec::new(),
            revocation_signature_algorithm: alg.into(),
            created: kura_logical::helpers::now_nanos(),
        };
        self.storage
            .put_json(&format!("issuer/{}", entry.id), &entry)
            .await?;
        let mut cfg = self.config_issuers().await?;
        if cfg.default.is_empty() || cfg.default_follows_latest_issuer {
            cfg.default = entry.id.clone();
            self.storage.put_json(CONFIG_ISSUERS, &cfg).await?;
        }
        self.caches.clear();
        if !key_id.is_empty() {
            // A fresh issuer gets its (empty) CRL right away, as OpenBao builds one.
            if let Err(e) = self.rebuild_crl_for(&entry.id).await {
                tracing::debug!(error = %e, "building the initial CRL failed");
            }
        }
        Ok(entry)
    }

    async fn aia_warning(&self, warnings: &mut Vec<String>) -> Result<()> {
        let u = self.urls().await?;
        if u.issuing_certificates.is_empty()
            && u.crl_distribution_points.is_empty()
            && u.ocsp_servers.is_empty()
        {
            warnings.push(AIA_WARNING.into());
        }
        Ok(())
    }

    /// Adds AIA and CRL distribution point extensions from `config/urls`.
    pub(crate) async fn apply_urls(&self, params: &mut CertificateParams) -> Result<()> {
        apply_urls(&self.urls().await?, params);
        Ok(())
    }

    /// Validity for a CA certificate: the requested TTL or the mount default, capped at the
    /// mount maximum with a warning.
    fn ca_ttl(&self, f: &FieldData, warnings: &mut Vec<String>) -> Result<Duration> {
        Ok(crate::policy::effective_ttl(
            f.duration("ttl")?,
            Duration::ZERO,
            Duration::ZERO,
            self.system.default_lease_ttl(),
            self.system.max_lease_ttl(),
            warnings,
        ))
    }

    /// Subject, SANs, validity and CA flags of a CA certificate request.
    fn ca_params(&self, f: &FieldData, cn: &str, ttl: Duration) -> Result<CertificateParams> {
        let mut p = CertificateParams::default();
        p.distinguished_name = build_dn(cn, &subject_fields(f)?);
        p.subject_alt_names = request_sans(f, cn)?;
        let max_path = f.opt_int("max_path_length")?.unwrap_or(-1);
        p.is_ca = if max_path >= 0 {
            IsCa::Ca(BasicConstraints::Constrained(max_path.min(255) as u8))
        } else {
            IsCa::Ca(BasicConstraints::Unconstrained)
        };
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let n = now();
        p.not_before = n - Duration::from_secs(30);
        p.not_after = match f.opt_string("not_after")?.filter(|s| !s.is_empty()) {
            Some(s) => parse_not_after(&s)?,
            None => n + ttl,
        };
        p.serial_number = Some(certutil::rcgen_serial(&certutil::random_serial()));
        p.use_authority_key_identifier_extension = true;
        let domains = f.strings("permitted_dns_domains")?;
        if !domains.is_empty() {
            p.name_constraints = Some(rcgen::NameConstraints {
                permitted_subtrees: domains
                    .into_iter()
                    .map(rcgen::GeneralSubtree::DnsName)
                    .collect(),
                excluded_subtrees: Vec::new(),
            });
        }
        Ok(p)
    }

    // ---- root and intermediate generation ---------------------------------------------------

    pub(crate) async fn generate_root(&self, f: &FieldData) -> Result<Option<Response>> {
        let exported = f.string("exported")?;
        if exported == "kms" {
            return Err(LogicalError::bad("managed keys are not supported"));
        }
        let cn = f.string("common_name")?;
        if cn.is_empty() {
            return Err(LogicalError::bad("the common_name field is required"));
        }
        let mut warnings = Vec::new();
        let ttl = self.ca_ttl(f, &mut warnings)?;
        let (kp, key_entry) = if exported == "existing" {
            let k = self
                .key_entry(&f.opt_string("key_ref")?.unwrap_or_default())
                .await?;
            (certutil::parse_private_key(&k.private_key)?, Some(k))
        } else {
            let kt = f.opt_string("key_type")?.unwrap_or_else(|| "rsa".into());
            if kt == "any" {
                return Err(LogicalError::bad("key_type of 'any' is not allowed here"));
            }
            (
                certutil::generate_key(&kt, f.int("key_bits")? as u32)?,
                None,
            )
        };
        let mut params = self.ca_params(f, &cn, ttl)?;
        self.apply_urls(&mut params).await?;
        let cert = params
            .self_signed(&kp)
            .map_err(|e| LogicalError::Internal(format!("signing root: {e}")))?;
        let key_entry = match key_entry {
            Some(k) => k,
            None => self.store_key(&kp, &f.string("key_name")?).await?,
        };
        let pem = cert.pem();
        let issuer = self
            .store_issuer(&pem, &key_entry.id, &f.string("issuer_name")?)
            .await?;
        self.store_cert(&issuer.serial_number, &pem, &issuer.id)
            .await?;
        self.aia_warning(&mut warnings).await?;
        let mut d = json!({
            "certificate": trim_pem(&pem),
            "expiration": params.not_after.unix_timestamp(),
            "issuer_id": issuer.id,
            "issuer_name": issuer.name,
            "issuing_ca": trim_pem(&pem),
            "key_id": key_entry.id,
            "key_name": key_entry.name,
            "serial_number": issuer.serial_number,
        });
        if exported == "exported" {
            d["private_key"] = json!(trim_pem(&certutil::private_key_pem(
                &kp,
                f.string("private_key_format")? == "pkcs8"
            )?));
            d["private_key_type"] = json!(certutil::key_type_of(kp.algorithm()));
        }
        let mut resp = Response::from_json(d);
        resp.warnings = warnings;
        Ok(Some(resp))
    }

    pub(crate) async fn generate_intermediate(&self, f: &FieldData) -> Result<Option<Response>> {
        let exported = f.string("exported")?;
        if exported == "kms" {
            return Err(LogicalError::bad("managed keys are not supported"));
        }
        let cn = f.string("common_name")?;
        let (kp, key_entry) = if exported == "existing" {
            let k = self
                .key_entry(&f.opt_string("key_ref")?.unwrap_or_default())
                .await?;
            (certutil::parse_private_key(&k.private_key)?, k)
        } else {
            let kt = f.opt_string("key_type")?.unwrap_or_else(|| "rsa".into());
            let kp = certutil::generate_key(&kt, f.int("key_bits")? as u32)?;
            let e = self.store_key(&kp, &f.string("key_name")?).await?;
            (kp, e)
        };
        let mut p = CertificateParams::default();
        p.distinguished_name = build_dn(&cn, &subject_fields(f)?);
        p.subject_alt_names = request_sans(f, &cn)?;
        if f.bool("add_basic_constraints")? {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        let csr = p
            .serialize_request(&kp)
            .and_then(|c| c.pem())
            .map_err(|e| LogicalError::Internal(format!("creating CSR: {e}")))?;
        let mut warnings = Vec::new();
        self.aia_warning(&mut warnings).await?;
        let mut d = json!({
            "csr": trim_pem(&csr),
            "key_id": key_entry.id,
        });
        if exported == "exported" {
            d["private_key"] = json!(trim_pem(&certutil::private_key_pem(
                &kp,
                f.string("private_key_format")? == "pkcs8"
            )?));
            d["private_key_type"] = json!(certutil::key_type_of(kp.algorithm()));
        }
        let mut resp = Response::from_json(d);
        resp.warnings = warnings;
        Ok(Some(resp))
    }

    /// `config/ca`, `issuers/import/*` and `intermediate/set-signed`: imports keys and CA
    /// certificates, linking each certificate to a key the mount holds.
    pub(crate) async fn import_bundle(
        &self,
        bundle: &str,
        certs_only: bool,
    ) -> Result<Option<Response>> {
        let blocks = certutil::pem_blocks(bundle);
        if blocks.is_empty() {
            return Err(LogicalError::bad(if certs_only {
                "no certificate found in input"
            } else {
                "no data found in PEM bundle"
            }));
        }
        let mut keys = self.all_keys().await?;
        let (mut imported_keys, mut existing_keys) = (Vec::<String>::new(), Vec::<String>::new());
        let mut parsed_keys: Vec<(String, Vec<u8>)> = Vec::new();
        for k in &keys {
            if let Ok(kp) = certutil::parse_private_key(&k.private_key) {
                parsed_keys.push((k.id.clone(), kp.public_key_raw().to_vec()));
            }
        }
        for (label, der) in &blocks {
            if !label.ends_with("PRIVATE KEY") {
                continue;
            }
            if certs_only {
                return Err(LogicalError::bad("private keys are not accepted here"));
            }
            let kp = certutil::parse_private_key(&pem_encode(label, der))?;
            let raw = kp.public_key_raw().to_vec();
            if let Some((id, _)) = parsed_keys.iter().find(|(_, r)| *r == raw) {
                existing_keys.push(id.clone());
                continue;
            }
            let e = self.store_key(&kp, "").await?;
            parsed_keys.push((e.id.clone(), raw));
            imported_keys.push(e.id.clone());
            keys.push(e);
        }
        let existing: Vec<IssuerEntry> = self.all_issuers().await?;
        let (mut imported_issuers, mut existing_issuers) =
            (Vec::<String>::new(), Vec::<String>::new());
        let mut mapping = serde_json::Map::new();
        for (label, der) in &blocks {
            if label != "CERTIFICATE" {
                continue;
            }
            let cert = certutil::parse_cert(der)?;
            let is_ca = cert
                .basic_constraints()
                .ok()
                .flatten()
                .is_some_and(|bc| bc.value.ca);
            if !is_ca {
                continue;
            }
            let pub_bits = cert.public_key().subject_public_key.data.to_vec();
            let key_id = parsed_keys
                .iter()
                .find(|(_, r)| *r == pub_bits)
                .map(|(id, _)| id.clone())
                .unwrap_or_default();
            if let Some(e) = existing.iter().find(|e| {
                certutil::cert_der_from_pem(&e.certificate).ok().as_deref() == Some(der.as_slice())
            }) {
                existing_issuers.push(e.id.clone());
                if e.key_id.is_empty() && !key_id.is_empty() {
                    let mut e = e.clone();
                    e.key_id = key_id.clone();
                    self.storage
                        .put_json(&format!("issuer/{}", e.id), &e)
                        .await?;
                }
                continue;
            }
            let e = self
                .store_issuer(&pem_encode("CERTIFICATE", der), &key_id, "")
                .await?;
            mapping.insert(e.id.clone(), json!(key_id));
            imported_issuers.push(e.id);
        }
        if imported_issuers.is_empty() && existing_issuers.is_empty() && certs_only {
            return Err(LogicalError::bad("no CA certificate found in input"));
        }
        let opt = |v: Vec<String>| if v.is_empty() { Value::Null } else { json!(v) };
        let mut warnings = Vec::new();
        if !imported_issuers.is_empty() {
            self.aia_warning(&mut warnings).await?;
        }
        let mut resp = Response::from_json(json!({
            "existing_issuers": opt(existing_issuers),
            "existing_keys": opt(existing_keys),
            "imported_issuers": opt(imported_issuers),
            "imported_keys": opt(imported_keys),
            "mapping": mapping,
        }));
        resp.warnings = warnings;
        Ok(Some(resp))
    }

    pub(crate) async fn sign_intermediate(&self, f: &FieldData) -> Result<Option<Response>> {
        let signer = self.signer(&f.string("issuer_ref")?).await?;
        let csr = certutil::parse_csr(&f.string("csr")?)?;
        let use_csr = f.bool("use_csr_values")?;
        let mut cn = f.string("common_name")?;
        if cn.is_empty() || use_csr {
            cn = csr.common_name.clone();
        }
        let mut warnings = Vec::new();
        let ttl = self.ca_ttl(f, &mut warnings)?;
        let mut p = self.ca_params(f, &cn, ttl)?;
        if use_csr {
            p.distinguished_name = csr.subject.clone();
            for d in &csr.sans.0 {
                p.subject_alt_names.push(name_san(d)?);
            }
        }
        self.apply_urls(&mut p).await?;
        if p.not_after > signer.not_after {
            warnings.push("The expiration time for the signed certificate is after the CA's expiration time. If the new certificate is not treated as a root, validation paths with the certificate past the issuing CA's expiration time will fail.".into());
        }
        let cert = p
            .signed_by(&csr.public_key, &signer.issuer)
            .map_err(|e| LogicalError::Internal(format!("signing: {e}")))?;
        let serial = colon_hex(
            p.serial_number
                .as_ref()
                .map(|s| s.as_ref())
                .unwrap_or_default(),
        );
        let pem = cert.pem();
        self.store_cert(&serial, &pem, &signer.entry.id).await?;
        self.aia_warning(&mut warnings).await?;
        let mut chain = vec![trim_pem(&pem)];
        chain.extend(signer.chain.iter().cloned());
        let mut resp = Response::from_json(json!({
            "ca_chain": signer.chain,
            "certificate": trim_pem(&pem),
            "expiration": p.not_after.unix_timestamp(),
            "issuing_ca": signer.chain.first().cloned().unwrap_or_default(),
            "serial_number": serial,
        }));
        resp.warnings = warnings;
        Ok(Some(resp))
    }

    pub(crate) async fn sign_self_issued(&self, f: &FieldData) -> Result<Option<Response>> {
        let signer = self.signer(&f.string("issuer_ref")?).await?;
        let der = certutil::cert_der_from_pem(&f.string("certificate")?)
            .map_err(|_| LogicalError::bad("certificate could not be parsed"))?;
        let cert = certutil::parse_cert(&der)?;
        if cert.subject().as_raw() != cert.issuer().as_raw() {
            return Err(LogicalError::bad("given certificate is not self-issued"));
        }
        let bc = cert
            .basic_constraints()
            .ok()
            .flatten()
            .map(|b| b.value.clone());
        let Some(bc) = bc.filter(|b| b.ca) else {
            return Err(LogicalError::bad(
                "given certificate is not a CA certificate",
            ));
        };
        let mut p = CertificateParams::default();
        p.distinguished_name = certutil::dn_from_x509(cert.subject())?;
        p.serial_number = Some(certutil::rcgen_serial(&certutil::serial_bytes(&cert)));
        p.not_before = cert.validity().not_before.to_datetime();
        p.not_after = cert.validity().not_after.to_datetime();
        p.is_ca = match bc.path_len_constraint {
            Some(n) => IsCa::Ca(BasicConstraints::Constrained(n.min(255) as u8)),
            None => IsCa::Ca(BasicConstraints::Unconstrained),
        };
        p.key_usages = key_usages_of(&cert);
        if let Some(ski) = cert
            .iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                _ => None,
            })
        {
            p.key_identifier_method = KeyIdMethod::PreSpecified(ski);
        }
        p.use_authority_key_identifier_extension = true;
        let spki = certutil::spki_to_rcgen(cert.public_key().raw)?;
        let signed = p
            .signed_by(&spki, &signer.issuer)
            .map_err(|e| LogicalError::Internal(format!("signing: {e}")))?;
        Ok(data(json!({
            "certificate": trim_pem(&signed.pem()),
            "issuing_ca": signer.chain.first().cloned().unwrap_or_default(),
        })))
    }

    pub(crate) async fn delete_root(&self) -> Result<Option<Response>> {
        for id in self.storage.list("issuer/").await? {
            self.storage.delete(&format!("issuer/{id}")).await?;
            self.storage.delete(&format!("crls/{id}")).await?;
        }
        for id in self.storage.list("key/").await? {
            self.storage.delete(&format!("key/{id}")).await?;
        }
        self.storage.delete(CONFIG_ISSUERS).await?;
        self.storage.delete(CONFIG_KEYS).await?;
        self.caches.clear();
        Ok(Some(Response::default().warn("DELETE /root deletes all keys and issuers; prefer the new DELETE /key/:key_ref and DELETE /issuer/:issuer_ref for finer granularity, unless removal of all keys and issuers is desired.")))
    }

    // ---- issuers ----------------------------------------------------------------------------

    pub(crate) async fn list_issuers(&self) -> Result<Option<Response>> {
        let all = self.all_issuers().await?;
        if all.is_empty() {
            return Ok(None);
        }
        let def = self.config_issuers().await?.default;
        let mut info = serde_json::Map::new();
        let mut keys: Vec<String> = Vec::new();
        for e in &all {
            keys.push(e.id.clone());
            info.insert(
                e.id.clone(),
                json!({
                    "is_default": e.id == def,
                    "issuer_name": e.name,
                    "key_id": e.key_id,
                    "serial_number": e.serial_number,
                }),
            );
        }
        keys.sort();
        Ok(data(json!({"key_info": info, "keys": keys})))
    }

    fn issuer_data(e: &IssuerEntry, all: &[IssuerEntry]) -> Value {
        let mut d = json!({
            "ca_chain": Self::chain_of(e, all).into_iter().map(|p| format!("{p}\n")).collect::<Vec<_>>(),
            "certificate": format!("{}\n", trim_pem(&e.certificate)),
            "crl_distribution_points": e.crl_distribution_points,
            "delta_crl_distribution_points": [],
            "issuer_id": e.id,
            "issuer_name": e.name,
            "issuing_certificates": e.issuing_certificates,
            "key_id": e.key_id,
            "leaf_not_after_behavior": e.leaf_not_after_behavior,
            "manual_chain": e.manual_chain,
            "ocsp_servers": e.ocsp_servers,
            "revocation_signature_algorithm": e.revocation_signature_algorithm,
            "revoked": e.revoked,
            "usage": e.usage,
        });
        if e.revoked {
            d["revocation_time"] = json!(e.revocation_time);
            d["revocation_time_rfc3339"] = json!(e.revocation_time_rfc3339);
        }
        d
    }

    pub(crate) async fn read_issuer(&self, reference: &str) -> Result<Option<Response>> {
        let e = self.issuer_entry(reference).await?;
        let all = self.all_issuers().await?;
        Ok(data(Self::issuer_data(&e, &all)))
    }

    pub(crate) async fn update_issuer(&self, f: &FieldData) -> Result<Option<Response>> {
        let mut e = self.issuer_entry(&f.string("issuer_ref")?).await?;
        if let Some(name) = f.opt_string("issuer_name")? {
            if !name.is_empty() && name != e.name {
                if name == "default" {
                    return Err(LogicalError::bad(
                        "reserved keyword 'default' can not be used as issuer name",
                    ));
                }
                if self
                    .all_issuers()
                    .await?
                    .iter()
                    .any(|o| o.name == name && o.id != e.id)
                {
                    return Err(LogicalError::bad("issuer name already in use"));
                }
            }
            e.name = name;
        }
        if let Some(b) = f.opt_string("leaf_not_after_behavior")? {
            if !matches!(b.as_str(), "err" | "truncate" | "permit") {
                return Err(LogicalError::bad(format!("Unknown value for field `leaf_not_after_behavior`. Possible values are `err`, `truncate`, and `permit`, but got {b}")));
            }
            e.leaf_not_after_behavior = b;
        }
        if let Some(u) = f.opt_strings("usage")? {
            for x in &u {
                if !matches!(
                    x.as_str(),
                    "read-only" | "issuing-certificates" | "crl-signing" | "ocsp-signing"
                ) {
                    return Err(LogicalError::bad(format!("unknown usage: {x}")));
                }
            }
            let mut u = u;
            u.sort();
            if e.revoked && u.iter().any(|x| x == "issuing-certificates") {
                return Err(LogicalError::bad("This issuer was revoked; unable to modify its usage to include certificate signing again. Reissue this certificate (preferably with a new key) and modify that entry instead."));
            }
            e.usage = u.join(",");
        }
        if let Some(c) = f.opt_strings("manual_chain")? {
            e.manual_chain = if c.is_empty() || c == ["self"] {
                None
            } else {
                Some(c)
            };
        }
        if let Some(v) = f.opt_strings("issuing_certificates")? {
            e.issuing_certificates = v;
        }
        if let Some(v) = f.opt_strings("crl_distribution_points")? {
            e.crl_distribution_points = v;
        }
        if let Some(v) = f.opt_strings("ocsp_servers")? {
            e.ocsp_servers = v;
        }
        if let Some(v) = f.opt_string("revocation_signature_algorithm")? {
            if !v.is_empty() {
                e.revocation_signature_algorithm = v;
            }
        }
        self.storage
            .put_json(&format!("issuer/{}", e.id), &e)
            .await?;
        self.caches.clear();
        let all = self.all_issuers().await?;
        Ok(data(Self::issuer_data(&e, &all)))
    }

    pub(crate) async fn delete_issuer(&self, reference: &str) -> Result<Option<Response>> {
        let Some(id) = self.issuer_id(reference).await? else {
            return Ok(None);
        };
        self.storage.delete(&format!("issuer/{id}")).await?;
        self.storage.delete(&format!("crls/{id}")).await?;
        let mut resp = Response::default();
        let mut cfg = self.config_issuers().await?;
        if cfg.default == id {
            cfg.default.clear();
            self.storage.put_json(CONFIG_ISSUERS, &cfg).await?;
            resp.warnings.push(format!("Deleted issuer {id} (via issuer_ref {reference}); this was configured as the default issuer. Operations without an explicit issuer will not work until a new default is configured."));
        }
        self.caches.clear();
        Ok(Some(resp))
    }

    pub(crate) async fn issuer_raw(&self, reference: &str, fmt: &str) -> Result<Option<Response>> {
        let e = self.issuer_entry(reference).await?;
        match fmt {
            "der" => Ok(crate::raw(
                "application/pkix-cert",
                certutil::cert_der_from_pem(&e.certificate)?,
            )),
            "pem" => {
                let all = self.all_issuers().await?;
                let chain = Self::chain_of(&e, &all);
                Ok(crate::raw(
                    "application/pem-certificate-chain",
                    chain.join("\n").into_bytes(),
                ))
            }
            _ => {
                let all = self.all_issuers().await?;
                Ok(data(json!({
                    "ca_chain": Self::chain_of(&e, &all),
                    "certificate": trim_pem(&e.certificate),
                    "issuer_id": e.id,
                    "issuer_name": e.name,
                })))
            }
        }
    }

    pub(crate) async fn revoke_issuer(&self, reference: &str) -> Result<Option<Response>> {
        let mut e = self.issuer_entry(reference).await?;
        if !e.revoked {
            let t = now();
            e.revoked = true;
            e.revocation_time = t.unix_timestamp();
            e.revocation_time_rfc3339 = kura_logical::helpers::rfc3339_nanos(
                i64::try_from(t.unix_timestamp_nanos()).unwrap_or(0),
            );
            e.usage = e
                .usage
                .split(',')
                .filter(|u| *u != "issuing-certificates" && *u != "ocsp-signing")
                .collect::<Vec<_>>()
                .join(",");
            self.storage
                .put_json(&format!("issuer/{}", e.id), &e)
                .await?;
            // The revoked issuer goes on the CRLs of the other issuers.
            self.storage
                .put_json(
                    &format!("revoked/{}", certutil::serial_key(&e.serial_number)),
                    &RevokedEntry {
                        serial_number: e.serial_number.clone(),
                        certificate: e.certificate.clone(),
                        issuer_id: String::new(),
                        revocation_time: e.revocation_time,
                        revocation_time_rfc3339: e.revocation_time_rfc3339.clone(),
                    },
                )
                .await?;
            self.caches.clear();
            self.rebuild_all_crls().await?;
        }
        let all = self.all_issuers().await?;
        Ok(data(Self::issuer_data(&e, &all)))
    }

    // ---- keys -------------------------------------------------------------------------------

    pub(crate) async fn list_keys(&self) -> Result<Option<Response>> {
        let all = self.all_keys().await?;
        if all.is_empty() {
            return Ok(None);
        }
        let def = self.config_keys().await?.default;
        let mut info = serde_json::Map::new();
        let mut keys = Vec::new();
        for k in &all {
            keys.push(k.id.clone());
            info.insert(
                k.id.clone(),
                json!({"is_default": k.id == def, "key_name": k.name}),
            );
        }
        keys.sort();
        Ok(data(json!({"key_info": info, "keys": keys})))
    }

    pub(crate) async fn generate_key(&self, f: &FieldData) -> Result<Option<Response>> {
        let kt = f.opt_string("key_type")?.unwrap_or_else(|| "rsa".into());
        let kp = certutil::generate_key(&kt, f.int("key_bits")? as u32)?;
        let e = self.store_key(&kp, &f.string("key_name")?).await?;
        let mut d = json!({"key_id": e.id, "key_name": e.name, "key_type": e.key_type});
        if f.string("exported")? == "exported" {
            d["private_key"] = json!(trim_pem(&e.private_key));
        }
        Ok(data(d))
    }

    pub(crate) async fn read_key(&self, reference: &str) -> Result<Option<Response>> {
        let k = self.key_entry(reference).await?;
        let kp = certutil::parse_private_key(&k.private_key)?;
        Ok(data(json!({
            "key_id": k.id,
            "key_name": k.name,
            "key_type": k.key_type,
            "subject_key_id": certutil::subject_key_id(&kp),
        })))
    }

    pub(crate) async fn update_key(&self, f: &FieldData) -> Result<Option<Response>> {
        let mut k = self.key_entry(&f.string("key_ref")?).await?;
        k.name = f.string("key_name")?;
        self.storage.put_json(&format!("key/{}", k.id), &k).await?;
        Ok(data(
            json!({"key_id": k.id, "key_name": k.name, "key_type": k.key_type}),
        ))
    }

    pub(crate) async fn delete_key(&self, reference: &str) -> Result<Option<Response>> {
        let Some(id) = self.key_id(reference).await? else {
            return Ok(None);
        };
        if self.all_issuers().await?.iter().any(|e| e.key_id == id) {
            return Err(LogicalError::bad(format!(
                "unable to delete key as it is in use by an issuer: {id}"
            )));
        }
        self.storage.delete(&format!("key/{id}")).await?;
        let mut cfg = self.config_keys().await?;
        if cfg.default == id {
            cfg.default.clear();
            self.storage.put_json(CONFIG_KEYS, &cfg).await?;
        }
        Ok(None)
    }

    // ---- configuration ----------------------------------------------------------------------

    pub(crate) async fn read_config_issuers(&self) -> Result<Option<Response>> {
        let c = self.config_issuers().await?;
        Ok(data(
            json!({"default": c.default, "default_follows_latest_issuer": c.default_follows_latest_issuer}),
        ))
    }

    pub(crate) async fn write_config_issuers(&self, f: &FieldData) -> Result<Option<Response>> {
        let mut c = self.config_issuers().await?;
        if let Some(r) = f.opt_string("default")? {
            if !r.is_empty() {
                if r == "default" {
                    return Err(LogicalError::bad(
                        "Invalid issuer specification; must be non-empty and can't be 'default'.",
                    ));
                }
                c.default = self
                    .issuer_id(&r)
                    .await?
                    .ok_or_else(|| not_found_500("issuer", &r))?;
            }
        }
        if let Some(b) = f.opt_bool("default_follows_latest_issuer")? {
            c.default_follows_latest_issuer = b;
        }
        self.storage.put_json(CONFIG_ISSUERS, &c).await?;
        self.caches.clear();
        Ok(data(
            json!({"default": c.default, "default_follows_latest_issuer": c.default_follows_latest_issuer}),
        ))
    }

    pub(crate) async fn read_config_keys(&self) -> Result<Option<Response>> {
        Ok(data(json!({"default": self.config_keys().await?.default})))
    }

    pub(crate) async fn write_config_keys(&self, f: &FieldData) -> Result<Option<Response>> {
        let mut c = self.config_keys().await?;
        let r = f.string("default")?;
        if !r.is_empty() {
            c.default = self
                .key_id(&r)
                .await?
                .ok_or_else(|| not_found_500("key", &r))?;
        }
        self.storage.put_json(CONFIG_KEYS, &c).await?;
        Ok(data(json!({"default": c.default})))
    }

    pub(crate) async fn read_urls(&self) -> Result<Option<Response>> {
        Ok(data(
            serde_json::to_value(self.urls().await?).unwrap_or_default(),
        ))
    }

    pub(crate) async fn write_urls(&self, f: &FieldData) -> Result<Option<Response>> {
        let mut u = self.urls().await?;
        if let Some(v) = f.opt_strings("issuing_certificates")? {
            u.issuing_certificates = v;
        }
        if let Some(v) = f.opt_strings("crl_distribution_points")? {
            u.crl_distribution_points = v;
        }
        if let Some(v) = f.opt_strings("ocsp_servers")? {
            u.ocsp_servers = v;
        }
        if let Some(v) = f.opt_strings("delta_crl_distribution_points")? {
            u.delta_crl_distribution_points = v;
        }
        if let Some(v) = f.opt_bool("enable_templating")? {
            u.enable_templating = v;
        }
        for url in u
            .issuing_certificates
            .iter()
            .chain(&u.crl_distribution_points)
            .chain(&u.ocsp_servers)
        {
            if !url.contains("://") {
                return Err(LogicalError::bad(format!("invalid URL: {url}")));
            }
        }
        self.storage.put_json(CONFIG_URLS, &u).await?;
        Ok(data(serde_json::to_value(&u).unwrap_or_default()))
    }

    pub(crate) async fn crl_config(&self) -> Result<CrlConfig> {
        Ok(self.storage.get_json(CONFIG_CRL).await?.unwrap_or_default())
    }

    pub(crate) async fn read_crl_config(&self) -> Result<Option<Response>> {
        Ok(data(
            serde_json::to_value(self.crl_config().await?).unwrap_or_default(),
        ))
    }

    pub(crate) async fn write_crl_config(&self, f: &FieldData) -> Result<Option<Response>> {
        let mut c = self.crl_config().await?;
        for (name, slot) in [
            ("expiry", &mut c.expiry),
            ("ocsp_expiry", &mut c.ocsp_expiry),
            (
                "auto_rebuild_grace_period",
                &mut c.auto_rebuild_grace_period,
            ),
            ("delta_rebuild_interval", &mut c.delta_rebuild_interval),
        ] {
            if let Some(v) = f.opt_raw(name) {
                kura_logical::coerce_duration(name, &v)?;
                *slot = f.string(name)?;
            }
        }
        for (name, slot) in [
            ("disable", &mut c.disable),
            ("ocsp_disable", &mut c.ocsp_disable),
            ("auto_rebuild", &mut c.auto_rebuild),
            ("enable_delta", &mut c.enable_delta),
            (
                "allow_expired_cert_revocation",
                &mut c.allow_expired_cert_revocation,
            ),
        ] {
            if let Some(v) = f.opt_bool(name)? {
                *slot = v;
            }
        }
        self.storage.put_json(CONFIG_CRL, &c).await?;
        if !c.disable {
            self.rebuild_all_crls().await?;
        }
        Ok(data(serde_json::to_value(&c).unwrap_or_default()))
    }
}

/// Parses a `not_after` value (RFC 3339, e.g. `2030-01-01T00:00:00Z`).
pub(crate) fn parse_not_after(s: &str) -> Result<::time::OffsetDateTime> {
    ::time::OffsetDateTime::parse(s, &::time::format_description::well_known::Rfc3339)
        .map_err(|_| LogicalError::bad(format!("error parsing not_after: {s}")))
}

/// Adds AIA and CRL distribution point extensions for the given URLs.
pub(crate) fn apply_urls(u: &UrlsConfig, params: &mut CertificateParams) {
    if !u.issuing_certificates.is_empty() || !u.ocsp_servers.is_empty() {
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 5, 5, 7, 1, 1],
                certutil::aia_extension(&u.issuing_certificates, &u.ocsp_servers),
            ));
    }
    if !u.crl_distribution_points.is_empty() {
        params.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
            uris: u.crl_distribution_points.clone(),
        }];
    }
}

//! Roles and issuance: `roles/:name`, `issue/:role`, `sign/:role`, `sign-verbatim`.

use std::sync::Arc;
use std::time::Duration;

use kura_logical::{FieldData, LeaseInfo, LogicalError, Request, Response, Result, StorageExt};
use rcgen::{
    CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, PublicKeyData, SanType,
};
use serde_json::json;

use crate::cache::Signer;
use crate::certutil::{self, build_dn, colon_hex, now, SubjectFields};
use crate::issuers::{name_san, parse_not_after, trim_pem};
use crate::model::{CertEntry, Role};
use crate::policy;
use crate::PkiBackend;

fn key_usage(name: &str) -> Option<KeyUsagePurpose> {
    Some(match name.to_ascii_lowercase().as_str() {
        "digitalsignature" => KeyUsagePurpose::DigitalSignature,
        "contentcommitment" | "nonrepudiation" => KeyUsagePurpose::ContentCommitment,
        "keyencipherment" => KeyUsagePurpose::KeyEncipherment,
        "dataencipherment" => KeyUsagePurpose::DataEncipherment,
        "keyagreement" => KeyUsagePurpose::KeyAgreement,
        "certsign" | "keycertsign" => KeyUsagePurpose::KeyCertSign,
        "crlsign" => KeyUsagePurpose::CrlSign,
        "encipheronly" => KeyUsagePurpose::EncipherOnly,
        "decipheronly" => KeyUsagePurpose::DecipherOnly,
        _ => return None,
    })
}

fn ext_key_usage(name: &str) -> Option<ExtendedKeyUsagePurpose> {
    Some(match name.to_ascii_lowercase().as_str() {
        "any" => ExtendedKeyUsagePurpose::Any,
        "serverauth" => ExtendedKeyUsagePurpose::ServerAuth,
        "clientauth" => ExtendedKeyUsagePurpose::ClientAuth,
        "codesigning" => ExtendedKeyUsagePurpose::CodeSigning,
        "emailprotection" => ExtendedKeyUsagePurpose::EmailProtection,
        "timestamping" => ExtendedKeyUsagePurpose::TimeStamping,
        "ocspsigning" => ExtendedKeyUsagePurpose::OcspSigning,
        _ => return None,
    })
}

/// What a request asks for, once the role has been applied.
struct Plan {
    cn: String,
    dns_and_email: Vec<String>,
    ips: Vec<std::net::IpAddr>,
    uris: Vec<String>,
}

impl PkiBackend {
    // ---- roles ------------------------------------------------------------------------------

    /// A role by name, cached.
    pub(crate) async fn role(&self, name: &str) -> Result<Option<Arc<Role>>> {
        if let Some(r) = self.caches.role(name) {
            return Ok(Some(r));
        }
        let generation = self.caches.generation();
        let Some(r) = self
            .storage
            .get_json::<Role>(&format!("roles/{name}"))
            .await?
        else {
            return Ok(None);
        };
        let r = Arc::new(r);
        self.caches.put_role(generation, name, r.clone());
        Ok(Some(r))
    }

    pub(crate) async fn list_roles(&self) -> Result<Option<Response>> {
        let keys = self.storage.list("roles/").await?;
        Ok(kura_logical::helpers::list_response(keys))
    }

    pub(crate) async fn read_role(&self, name: &str) -> Result<Option<Response>> {
        Ok(self
            .storage
            .get_json::<Role>(&format!("roles/{name}"))
            .await?
            .map(|r| Response::with_data(r.to_data())))
    }

    pub(crate) async fn delete_role(&self, name: &str) -> Result<Option<Response>> {
        self.storage.delete(&format!("roles/{name}")).await?;
        self.caches.clear();
        Ok(None)
    }

    pub(crate) async fn write_role(&self, f: &FieldData, patch: bool) -> Result<Option<Response>> {
        let name = f.string("name")?;
        let existing: Option<Role> = self.storage.get_json(&format!("roles/{name}")).await?;
        if patch && existing.is_none() {
            return Ok(None);
        }
        let mut role = Role::from_fields(f, if patch { existing.as_ref() } else { None })?;
        if let Some(v) = f.opt_raw("lease").filter(|_| !f.is_set("ttl")) {
            role.ttl = kura_logical::coerce_duration("lease", &v)?.as_secs();
        }
        if let Some(v) = f.opt_raw("lease_max").filter(|_| !f.is_set("max_ttl")) {
            role.max_ttl = kura_logical::coerce_duration("lease_max", &v)?.as_secs();
        }
        if role.key_type != "any" {
            role.key_bits =
                certutil::validate_key(&role.key_type, role.key_bits.max(0) as u32)? as i64;
        }
        if role.max_ttl > 0 && role.ttl > role.max_ttl {
            return Err(LogicalError::bad(
                "\"ttl\" value must be less than \"max_ttl\" value",
            ));
        }
        for k in &role.key_usage {
            if key_usage(k).is_none() {
                return Err(LogicalError::bad(format!("unknown key usage: {k}")));
            }
        }
        for k in &role.ext_key_usage {
            if ext_key_usage(k).is_none() {
                return Err(LogicalError::bad(format!("unknown ext key usage: {k}")));
            }
        }
        self.storage
            .put_json(&format!("roles/{name}"), &role)
            .await?;
        self.caches.clear();
        Ok(Some(Response::with_data(role.to_data())))
    }

    async fn role_or_err(&self, name: &str) -> Result<Arc<Role>> {
        self.role(name)
            .await?
            .ok_or_else(|| LogicalError::bad(format!("unknown role: {name}")))
    }

    // ---- issuance ---------------------------------------------------------------------------

    /// Checks the names of a request against the role.
    fn plan(role: &Role, f: &FieldData, csr: Option<&certutil::Csr>) -> Result<Plan> {
        let mut cn = f.string("common_name")?;
        if cn.is_empty() {
            if let Some(c) = csr.filter(|_| role.use_csr_common_name) {
                cn = c.common_name.clone();
            }
        }
        if cn.is_empty() && role.require_cn {
            return Err(LogicalError::bad("the common_name field is required, or must be provided in a CSR with \"use_csr_common_name\" set to true, unless \"require_cn\" is set to false"));
        }
        let mut names: Vec<String> = f.strings("alt_names")?;
        let mut ips: Vec<std::net::IpAddr> = Vec::new();
        let mut uris = f.strings("uri_sans")?;
        if let Some(c) = csr.filter(|_| role.use_csr_sans) {
            if names.is_empty() {
                names.extend(c.sans.0.iter().cloned());
                names.extend(c.sans.1.iter().cloned());
            }
            ips.extend(c.sans.2.iter().cloned());
            if uris.is_empty() {
                uris.extend(c.sans.3.iter().cloned());
            }
        }
        for ip in f.strings("ip_sans")? {
            ips.push(ip.parse().map_err(|_| {
                LogicalError::bad(format!("the value {ip:?} is not a valid IP address"))
            })?);
        }
        if !cn.is_empty() {
            let cn_is_email = cn.contains('@');
            let check = (cn_is_email && role.cn_validations.iter().any(|v| v == "email"))
                || (!cn_is_email && role.cn_validations.iter().any(|v| v == "hostname"));
            if check && !policy::name_allowed(role, &cn) {
                return Err(LogicalError::bad(format!(
                    "common name {cn} not allowed by this role"
                )));
            }
        }
        if let Some(bad) = policy::first_disallowed(role, &names) {
            return Err(LogicalError::bad(format!(
                "subject alternate name {bad} not allowed by this role"
            )));
        }
        if !ips.is_empty() && !role.allow_ip_sans {
            return Err(LogicalError::bad(format!(
                "IP Subject Alternative Names are not allowed in this role, but was provided {}",
                ips[0]
            )));
        }
        if !uris.is_empty() && !role.allow_any_name {
            for u in &uris {
                if !role
                    .allowed_uri_sans
                    .iter()
                    .any(|p| policy::glob_match(p, u))
                {
                    return Err(LogicalError::bad(format!(
                        "URI Subject Alternative Names are not allowed in this role, but was provided {u}"
                    )));
                }
            }
        }
        let mut dns_and_email = Vec::new();
        if !cn.is_empty() && !f.bool("exclude_cn_from_sans")? {
            dns_and_email.push(cn.clone());
        }
        for n in names {
            if !dns_and_email.contains(&n) {
                dns_and_email.push(n);
            }
        }
        Ok(Plan {
            cn,
            dns_and_email,
            ips,
            uris,
        })
    }

    /// Builds the leaf parameters for a plan under a role and signer.
    fn leaf_params(
        &self,
        role: &Role,
        f: &FieldData,
        plan: &Plan,
        signer: &Signer,
        warnings: &mut Vec<String>,
    ) -> Result<CertificateParams> {
        let mut p = CertificateParams::default();
        let fields = SubjectFields {
            ou: role.ou.clone(),
            organization: role.organization.clone(),
            country: role.country.clone(),
            locality: role.locality.clone(),
            province: role.province.clone(),
            street_address: role.street_address.clone(),
            postal_code: role.postal_code.clone(),
            serial_number: f.string("serial_number")?,
        };
        p.distinguished_name = build_dn(&plan.cn, &fields);
        let mut sans = Vec::with_capacity(plan.dns_and_email.len() + plan.ips.len());
        for n in &plan.dns_and_email {
            sans.push(name_san(n)?);
        }
        sans.extend(plan.ips.iter().map(|ip| SanType::IpAddress(*ip)));
        for u in &plan.uris {
            sans.push(SanType::URI(
                u.as_str()
                    .try_into()
                    .map_err(|_| LogicalError::bad(format!("invalid URI SAN {u}")))?,
            ));
        }
        p.subject_alt_names = sans;
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = role.key_usage.iter().filter_map(|k| key_usage(k)).collect();
        let mut eku: Vec<ExtendedKeyUsagePurpose> = Vec::new();
        if role.server_flag {
            eku.push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if role.client_flag {
            eku.push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        if role.code_signing_flag {
            eku.push(ExtendedKeyUsagePurpose::CodeSigning);
        }
        if role.email_protection_flag {
            eku.push(ExtendedKeyUsagePurpose::EmailProtection);
        }
        for e in &role.ext_key_usage {
            if let Some(x) = ext_key_usage(e) {
                if !eku.contains(&x) {
                    eku.push(x);
                }
            }
        }
        p.extended_key_usages = eku;
        let n = now();
        p.not_before = n - Duration::from_secs(role.not_before_duration);
        let not_after = match f.opt_string("not_after")?.filter(|s| !s.is_empty()) {
            Some(s) => parse_not_after(&s)?,
            None => {
                let ttl = policy::effective_ttl(
                    f.duration("ttl")?,
                    Duration::from_secs(role.ttl),
                    Duration::from_secs(role.max_ttl),
                    self.system.default_lease_ttl(),
                    self.system.max_lease_ttl(),
                    warnings,
                );
                n + ttl
            }
        };
        p.not_after = not_after;
        if p.not_after > signer.not_after {
            match signer.entry.leaf_not_after_behavior.as_str() {
                "permit" => {}
                "truncate" => p.not_after = signer.not_after,
                _ => {
                    return Err(LogicalError::bad(format!(
                        "cannot satisfy request, as TTL would result in notAfter of {} that is beyond the expiration of the CA certificate at {}",
                        rfc3339(p.not_after),
                        rfc3339(signer.not_after)
                    )))
                }
            }
        }
        p.serial_number = Some(certutil::rcgen_serial(&certutil::random_serial()));
        p.use_authority_key_identifier_extension = true;
        crate::issuers::apply_urls(&signer.urls, &mut p);
        Ok(p)
    }

    fn check_issuing(signer: &Signer) -> Result<()> {
        if signer.entry.revoked
            || !signer
                .entry
                .usage
                .split(',')
                .any(|u| u == "issuing-certificates")
        {
            return Err(LogicalError::bad(format!(
                "cannot issue certificates from issuer {}: issuing-certificates usage is not allowed",
                signer.entry.id
            )));
        }
        Ok(())
    }

    async fn signer_for(&self, f: &FieldData, role: &Role) -> Result<Arc<Signer>> {
        let r = f
            .opt_string("issuer_ref")?
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| role.issuer_ref.clone());
        let s = self.signer(&r).await?;
        Self::check_issuing(&s)?;
        Ok(s)
    }

    /// Finishes an issued certificate: stores it unless the role says not to, attaches a
    /// lease when the role asks for one, and shapes the answer.
    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        role: Option<&Role>,
        f: &FieldData,
        signer: &Signer,
        params: &CertificateParams,
        der: &[u8],
        key: Option<&rcgen::KeyPair>,
        warnings: Vec<String>,
    ) -> Result<Option<Response>> {
        let serial = colon_hex(
            params
                .serial_number
                .as_ref()
                .map(|s| s.as_ref())
                .unwrap_or_default(),
        );
        let pem = certutil::pem_encode("CERTIFICATE", der);
        let no_store = role.is_some_and(|r| r.no_store);
        if !no_store {
            self.store_cert(&serial, &pem, &signer.entry.id).await?;
        }
        let format = f.string("format")?;
        let (cert_out, chain_out): (String, Vec<String>) = match format.as_str() {
            "der" => {
                use base64::Engine;
                let b = base64::engine::general_purpose::STANDARD;
                (
                    b.encode(der),
                    signer
                        .chain
                        .iter()
                        .filter_map(|p| certutil::cert_der_from_pem(p).ok())
                        .map(|d| b.encode(d))
                        .collect(),
                )
            }
            _ => (trim_pem(&pem), signer.chain.clone()),
        };
        let mut d = json!({
            "ca_chain": chain_out,
            "certificate": cert_out,
            "expiration": params.not_after.unix_timestamp(),
            "issuing_ca": chain_out.first().cloned().unwrap_or_default(),
            "serial_number": serial,
        });
        if format == "pem_bundle" {
            let mut bundle = trim_pem(&pem);
            if let Some(k) = key {
                bundle = format!(
                    "{}\n{bundle}",
                    trim_pem(&certutil::private_key_pem(k, false)?)
                );
            }
            for c in &signer.chain {
                bundle.push('\n');
                bundle.push_str(c);
            }
            d["certificate"] = json!(bundle);
        }
        if let Some(k) = key {
            let pk = certutil::private_key_pem(k, f.string("private_key_format")? == "pkcs8")?;
            d["private_key"] = json!(trim_pem(&pk));
            d["private_key_type"] = json!(certutil::key_type_of(k.algorithm()));
        }
        let mut resp = Response::from_json(d);
        resp.warnings = warnings;
        if role.is_some_and(|r| r.generate_lease) {
            let ttl = (params.not_after - now()).whole_seconds().max(1) as u64;
            let mut internal = kura_logical::Map::new();
            internal.insert("serial_number".into(), json!(serial));
            resp.lease = Some(LeaseInfo {
                ttl: Duration::from_secs(ttl),
                renewable: false,
                lease_id: String::new(),
                internal: Some(internal),
            });
        }
        Ok(Some(resp))
    }

    pub(crate) async fn issue(&self, f: &FieldData, _req: &Request) -> Result<Option<Response>> {
        let role = self.role_or_err(&f.string("role")?).await?;
        if role.key_type == "any" {
            return Err(LogicalError::bad(
                "role key type \"any\" not allowed for issuing certificates, only signing",
            ));
        }
        let plan = Self::plan(&role, f, None)?;
        let signer = self.signer_for(f, &role).await?;
        let mut warnings = Vec::new();
        let params = self.leaf_params(&role, f, &plan, &signer, &mut warnings)?;
        let key = certutil::generate_key(&role.key_type, role.key_bits.max(0) as u32)?;
        let cert = params
            .signed_by(&key, &signer.issuer)
            .map_err(|e| LogicalError::Internal(format!("signing: {e}")))?;
        self.finish(
            Some(&role),
            f,
            &signer,
            &params,
            cert.der(),
            Some(&key),
            warnings,
        )
        .await
    }

    pub(crate) async fn sign(
        &self,
        f: &FieldData,
        _req: &Request,
        verbatim: bool,
    ) -> Result<Option<Response>> {
        let role_name = f.string("role")?;
        let csr = certutil::parse_csr(&f.string("csr")?)?;
        let role: Arc<Role> = if verbatim && role_name.is_empty() {
            let mut base = Role::from_fields(
                &FieldData::new(
                    Default::default(),
                    Default::default(),
                    crate::model::role_field_specs(),
                ),
                None,
            )?;
            base.allow_any_name = true;
            base.enforce_hostnames = false;
            Arc::new(base)
        } else {
            self.role_or_err(&role_name).await?
        };
        if !verbatim && role.key_type != "any" {
            if csr.key_type != role.key_type {
                return Err(LogicalError::bad(format!(
                    "role requires keys of type {}",
                    role.key_type
                )));
            }
            if role.key_type == "rsa" && (csr.key_bits as i64) < role.key_bits {
                return Err(LogicalError::bad(format!(
                    "role requires a minimum of a {}-bit key, but CSR's key is {} bits",
                    role.key_bits, csr.key_bits
                )));
            }
            if role.key_type == "ec" && (csr.key_bits as i64) != role.key_bits {
                return Err(LogicalError::bad(format!(
                    "role requires a {}-bit key, but CSR's key is {} bits",
                    role.key_bits, csr.key_bits
                )));
            }
        }
        let signer = self.signer_for(f, &role).await?;
        let mut warnings = Vec::new();
        let mut params;
        if verbatim {
            let plan = Plan {
                cn: csr.common_name.clone(),
                dns_and_email: csr.sans.0.iter().chain(&csr.sans.1).cloned().collect(),
                ips: csr.sans.2.clone(),
                uris: csr.sans.3.clone(),
            };
            params = self.leaf_params(&role, f, &plan, &signer, &mut warnings)?;
            params.distinguished_name = csr.subject.clone();
            let ku = f.strings("key_usage")?;
            if !ku.is_empty() {
                params.key_usages = ku.iter().filter_map(|k| key_usage(k)).collect();
            }
            let eku = f.strings("ext_key_usage")?;
            if !eku.is_empty() {
                params.extended_key_usages = eku.iter().filter_map(|k| ext_key_usage(k)).collect();
            }
        } else {
            let plan = Self::plan(&role, f, Some(&csr))?;
            params = self.leaf_params(&role, f, &plan, &signer, &mut warnings)?;
        }
        let cert = params
            .signed_by(&csr.public_key, &signer.issuer)
            .map_err(|e| LogicalError::Internal(format!("signing: {e}")))?;
        let _ = csr.public_key.der_bytes();
        self.finish(Some(&role), f, &signer, &params, cert.der(), None, warnings)
            .await
    }

    /// Stores an issued certificate under its serial.
    pub(crate) async fn store_cert(&self, serial: &str, pem: &str, issuer_id: &str) -> Result<()> {
        self.storage
            .put_json(
                &format!("certs/{}", certutil::serial_key(serial)),
                &CertEntry {
                    certificate: pem.to_string(),
                    issuer_id: issuer_id.to_string(),
                },
            )
            .await
    }
}

fn rfc3339(t: ::time::OffsetDateTime) -> String {
    kura_logical::helpers::rfc3339_nanos(i64::try_from(t.unix_timestamp_nanos()).unwrap_or(0))
}

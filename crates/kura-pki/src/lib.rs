//! Kura's PKI secrets engine: an X.509 certificate authority that speaks OpenBao's `pki` API.
//!
//! - CA setup: `root/generate/:type`, `intermediate/generate/:type`, `intermediate/set-signed`,
//!   `config/ca` (import a bundle), `root/sign-intermediate`, `root/sign-self-issued`, `DELETE root`.
//! - Multi-issuer API: `issuers`, `issuer/:ref` (read, update, delete, `pem`, `der`, `json`, `crl`,
//!   `revoke`, `issue/:role`, `sign/:role`, `sign-verbatim`), `keys`, `key/:ref`,
//!   `config/issuers`, `config/keys`.
//! - Roles and issuance: `roles/:name`, `issue/:role`, `sign/:role`, `sign-verbatim(/:role)`.
//! - Revocation: `revoke`, `crl`, `crl/pem`, `crl/rotate`, `cert/:serial`, `certs`, `tidy`,
//!   and lease revocation for roles with `generate_lease`.
//! - Configuration: `config/urls`, `config/crl`.
//!
//! Keys and certificates are made with rcgen over aws-lc-rs and read back with x509-parser.
//! The issuing key and certificate of each issuer are parsed once and kept in a bounded cache
//! ([`cache`]), dropped on every write this node makes and on [`LogicalBackend::invalidate`],
//! so issuing from a `no_store` role reads storage only for its role and issuer and writes
//! nothing — a standby can serve it.

use std::sync::Arc;

use async_trait::async_trait;
use kura_logical::{
    helpers, BackendConfig, FieldData, FieldSpec, FieldType, LeaseInfo, LogicalBackend,
    LogicalError, Map, Operation, PathSpec, PathTable, Request, Response, Result, SpecialPaths,
    Storage, SystemView,
};
use serde_json::Value;

pub mod cache;
pub mod certutil;
mod issue;
mod issuers;
pub mod model;
pub mod policy;
mod revoke;
#[cfg(test)]
mod tests;

use cache::Caches;

/// Creates the PKI backend for a mount.
pub fn pki_factory(
    config: BackendConfig,
) -> std::result::Result<Arc<dyn LogicalBackend>, LogicalError> {
    Ok(Arc::new(PkiBackend::new(config)))
}

/// Every path of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum P {
    GenerateRoot,
    GenerateIntermediate,
    SetSigned,
    ImportBundle,
    SignIntermediate,
    SignSelfIssued,
    DeleteRoot,
    Issuers,
    Issuer,
    IssuerRaw,
    IssuerCrl,
    IssuerRevoke,
    Keys,
    Key,
    KeysGenerate,
    ConfigIssuers,
    ConfigKeys,
    ConfigUrls,
    ConfigCrl,
    Roles,
    Role,
    Issue,
    Sign,
    SignVerbatim,
    Revoke,
    CrlRotate,
    Ca,
    CaPem,
    CaChain,
    Crl,
    CrlPem,
    Cert,
    Certs,
    CertsRevoked,
    Tidy,
    TidyStatus,
}

fn s(name: &'static str) -> FieldSpec {
    FieldSpec::new(name, FieldType::String, "")
}
fn b(name: &'static str) -> FieldSpec {
    FieldSpec::new(name, FieldType::Bool, "")
}
fn l(name: &'static str) -> FieldSpec {
    FieldSpec::new(name, FieldType::CommaStringSlice, "")
}
fn d(name: &'static str) -> FieldSpec {
    FieldSpec::new(name, FieldType::Duration, "")
}
fn i(name: &'static str) -> FieldSpec {
    FieldSpec::new(name, FieldType::Int, "")
}

/// Fields every certificate-producing path shares.
fn cert_fields() -> Vec<FieldSpec> {
    vec![
        s("common_name"),
        l("alt_names"),
        l("ip_sans"),
        l("uri_sans"),
        l("other_sans"),
        d("ttl"),
        s("not_after"),
        s("format"),
        s("private_key_format"),
        b("exclude_cn_from_sans"),
        l("ou"),
        l("organization"),
        l("country"),
        l("locality"),
        l("province"),
        l("street_address"),
        l("postal_code"),
        s("serial_number"),
        s("key_type"),
        i("key_bits"),
        i("signature_bits"),
        i("max_path_length"),
        l("permitted_dns_domains"),
        s("issuer_name"),
        s("key_name"),
        s("key_ref"),
        s("issuer_ref"),
        s("csr"),
        b("use_csr_values"),
        b("use_csr_common_name"),
        b("use_csr_sans"),
        b("remove_roots_from_chain"),
        l("user_ids"),
        l("key_usage"),
        l("ext_key_usage"),
        l("ext_key_usage_oids"),
        b("use_pss"),
        b("add_basic_constraints"),
        s("exported"),
        s("role"),
        d("not_before_duration"),
    ]
}

fn issuer_fields() -> Vec<FieldSpec> {
    vec![
        s("issuer_ref"),
        s("issuer_name"),
        s("leaf_not_after_behavior"),
        l("usage"),
        l("manual_chain"),
        l("issuing_certificates"),
        l("crl_distribution_points"),
        l("ocsp_servers"),
        b("enable_aia_url_templating"),
        s("revocation_signature_algorithm"),
        s("fmt"),
        s("crlfmt"),
    ]
}

fn table() -> PathTable<P> {
    use Operation::*;
    let role_re = r"(?P<role>\w(([\w\-.@]+)?\w)?)";
    let _ = role_re;
    let export = r"(?P<exported>internal|exported|existing|kms)";
    let _ = export;
    PathTable::new(vec![
        (
            PathSpec::new(
                r"(?:root/generate|issuers/generate/root)/(?P<exported>internal|exported|existing|kms)",
                &[Update],
                "Generate a new CA certificate and private key used for signing.",
            )
            .fields(cert_fields()),
            P::GenerateRoot,
        ),
        (
            PathSpec::new(
                r"(?:intermediate/generate|issuers/generate/intermediate)/(?P<exported>internal|exported|existing|kms)",
                &[Update],
                "Generate a new CSR and private key used for signing.",
            )
            .fields(cert_fields()),
            P::GenerateIntermediate,
        ),
        (
            PathSpec::new("intermediate/set-signed", &[Update], "Provide the signed intermediate CA cert.")
                .fields(vec![s("certificate")]),
            P::SetSigned,
        ),
        (
            PathSpec::new(r"config/ca|issuers/import/(?:cert|bundle)", &[Update], "Import a PEM bundle of keys and certificates.")
                .fields(vec![s("pem_bundle")]),
            P::ImportBundle,
        ),
        (
            PathSpec::new(
                r"root/sign-intermediate|issuer/(?P<issuer_ref>[^/]+)/sign-intermediate",
                &[Update],
                "Issue an intermediate CA certificate based on the provided CSR.",
            )
            .fields(cert_fields()),
            P::SignIntermediate,
        ),
        (
            PathSpec::new(
                r"root/sign-self-issued|issuer/(?P<issuer_ref>[^/]+)/sign-self-issued",
                &[Update],
                "Signs another CA's self-issued certificate.",
            )
            .fields(vec![s("certificate"), s("issuer_ref"), b("require_matching_certificate_algorithms")]),
            P::SignSelfIssued,
        ),
        (
            PathSpec::new("root", &[Delete], "Deletes the root CA key to allow a new one to be generated."),
            P::DeleteRoot,
        ),
        (PathSpec::new("issuers/?", &[List], "List issuers."), P::Issuers),
        (
            PathSpec::new(r"issuer/(?P<issuer_ref>[^/]+)/(?P<fmt>pem|der|json)", &[Read], "Fetch an issuer's certificate.")
                .fields(issuer_fields()),
            P::IssuerRaw,
        ),
        (
            PathSpec::new(r"issuer/(?P<issuer_ref>[^/]+)/crl(?P<crlfmt>/pem|/der|)", &[Read], "Fetch an issuer's CRL.")
                .fields(issuer_fields()),
            P::IssuerCrl,
        ),
        (
            PathSpec::new(r"issuer/(?P<issuer_ref>[^/]+)/revoke", &[Update], "Revoke an issuer.")
                .fields(issuer_fields()),
            P::IssuerRevoke,
        ),
        (
            PathSpec::new(
                r"issuer/(?P<issuer_ref>[^/]+)/issue/(?P<role>\w(([\w\-.@]+)?\w)?)",
                &[Update],
                "Issue a certificate from a specific issuer.",
            )
            .fields(cert_fields()),
            P::Issue,
        ),
        (
            PathSpec::new(
                r"issuer/(?P<issuer_ref>[^/]+)/sign/(?P<role>\w(([\w\-.@]+)?\w)?)",
                &[Update],
                "Sign a CSR from a specific issuer.",
            )
            .fields(cert_fields()),
            P::Sign,
        ),
        (
            PathSpec::new(
                r"issuer/(?P<issuer_ref>[^/]+)/sign-verbatim(?:/(?P<role>\w(([\w\-.@]+)?\w)?))?",
                &[Update],
                "Sign a CSR verbatim from a specific issuer.",
            )
            .fields(cert_fields()),
            P::SignVerbatim,
        ),
        (
            PathSpec::new(r"issuer/(?P<issuer_ref>[^/]+)", &[Read, Update, Patch, Delete], "Manage an issuer.")
                .fields(issuer_fields()),
            P::Issuer,
        ),
        (PathSpec::new("keys/?", &[List], "List keys."), P::Keys),
        (
            PathSpec::new(r"keys/generate/(?P<exported>internal|exported|kms)", &[Update], "Generate a key.")
                .fields(vec![s("key_type"), i("key_bits"), s("key_name"), s("private_key_format"), s("exported")]),
            P::KeysGenerate,
        ),
        (
            PathSpec::new(r"key/(?P<key_ref>[^/]+)", &[Read, Update, Delete], "Manage a key.")
                .fields(vec![s("key_ref"), s("key_name")]),
            P::Key,
        ),
        (
            PathSpec::new(r"config/issuers|root/replace", &[Read, Update], "Default issuer configuration.")
                .fields(vec![s("default"), b("default_follows_latest_issuer")]),
            P::ConfigIssuers,
        ),
        (
            PathSpec::new("config/keys", &[Read, Update], "Default key configuration.")
                .fields(vec![s("default")]),
            P::ConfigKeys,
        ),
        (
            PathSpec::new("config/urls", &[Read, Update], "Set the URLs for the issuing CA, CRL distribution points, and OCSP servers.")
                .fields(vec![
                    l("issuing_certificates"),
                    l("crl_distribution_points"),
                    l("ocsp_servers"),
                    l("delta_crl_distribution_points"),
                    b("enable_templating"),
                ]),
            P::ConfigUrls,
        ),
        (
            PathSpec::new("config/crl", &[Read, Update], "Configure the CRL expiration.").fields(vec![
                s("expiry"),
                b("disable"),
                b("ocsp_disable"),
                s("ocsp_expiry"),
                b("auto_rebuild"),
                s("auto_rebuild_grace_period"),
                b("enable_delta"),
                s("delta_rebuild_interval"),
                b("allow_expired_cert_revocation"),
                b("cross_cluster_revocation"),
                b("unified_crl"),
                b("unified_crl_on_existing_paths"),
            ]),
            P::ConfigCrl,
        ),
        (PathSpec::new("roles/?", &[List], "List the existing roles in this backend"), P::Roles),
        (
            PathSpec::new(
                r"roles/(?P<name>\w(([\w\-.@]+)?\w)?)",
                &[Read, Update, Patch, Delete],
                "Manage the roles that can be created with this backend.",
            )
            .fields(model::role_field_specs())
            .with_existence_check(),
            P::Role,
        ),
        (
            PathSpec::new(r"issue/(?P<role>\w(([\w\-.@]+)?\w)?)", &[Update], "Request a certificate using a certain role with the provided details.")
                .fields(cert_fields()),
            P::Issue,
        ),
        (
            PathSpec::new(r"sign/(?P<role>\w(([\w\-.@]+)?\w)?)", &[Update], "Request certificates using a certain role with the provided details.")
                .fields(cert_fields()),
            P::Sign,
        ),
        (
            PathSpec::new(r"sign-verbatim(?:/(?P<role>\w(([\w\-.@]+)?\w)?))?", &[Update], "Request certificates using a certain role with the provided details.")
                .fields(cert_fields()),
            P::SignVerbatim,
        ),
        (
            PathSpec::new("revoke", &[Update], "Revoke a certificate by serial number.")
                .fields(vec![s("serial_number"), s("certificate")]),
            P::Revoke,
        ),
        (PathSpec::new("crl/rotate", &[Read], "Force a rebuild of the CRL."), P::CrlRotate),
        (PathSpec::new("ca", &[Read], "Fetch a CA certificate (DER)."), P::Ca),
        (PathSpec::new("ca/pem", &[Read], "Fetch a CA certificate (PEM)."), P::CaPem),
        (PathSpec::new("ca_chain|cert/ca_chain", &[Read], "Fetch the CA chain."), P::CaChain),
        (PathSpec::new("crl", &[Read], "Fetch the CRL (DER)."), P::Crl),
        (PathSpec::new("crl/pem", &[Read], "Fetch the CRL (PEM)."), P::CrlPem),
        (
            PathSpec::new(r"cert/(?P<serial>[0-9A-Za-z:_\-]+)(?P<raw>/raw(?:/pem)?)?", &[Read], "Fetch a certificate by serial number.")
                .fields(vec![s("serial"), s("raw")]),
            P::Cert,
        ),
        (PathSpec::new("certs/?", &[List], "List certificates."), P::Certs),
        (PathSpec::new("certs/revoked/?", &[List], "List revoked certificates."), P::CertsRevoked),
        (
            PathSpec::new("tidy", &[Update], "Tidy up the backend by removing expired certificates.").fields(vec![
                b("tidy_cert_store"),
                b("tidy_revoked_certs"),
                b("tidy_revoked_cert_issuer_associations"),
                b("tidy_expired_issuers"),
                b("tidy_move_legacy_ca_bundle"),
                b("tidy_acme"),
                b("tidy_revocation_list"),
                d("safety_buffer"),
                d("issuer_safety_buffer"),
                d("pause_duration"),
            ]),
            P::Tidy,
        ),
        (PathSpec::new("tidy-status", &[Read], "Status of the last tidy."), P::TidyStatus),
    ])
}

impl P {
    /// True for paths whose writes change issuers, keys, roles or configuration (and so
    /// invalidate the caches); issuing, signing and revoking do not.
    fn changes_config(self) -> bool {
        !matches!(
            self,
            P::Issue
                | P::Sign
                | P::SignVerbatim
                | P::SignIntermediate
                | P::SignSelfIssued
                | P::Revoke
                | P::Tidy
                | P::CrlRotate
        )
    }
}

/// The PKI backend of one mount.
pub struct PkiBackend {
    storage: Arc<dyn Storage>,
    system: Arc<dyn SystemView>,
    table: PathTable<P>,
    caches: Caches,
    tidy_status: std::sync::Mutex<Map>,
}

impl PkiBackend {
    /// A PKI backend over the mount's storage view.
    pub fn new(config: BackendConfig) -> Self {
        PkiBackend {
            storage: config.storage,
            system: config.system,
            table: table(),
            caches: Caches::default(),
            tidy_status: std::sync::Mutex::new(Map::new()),
        }
    }

    async fn dispatch(&self, id: P, req: &Request, f: &FieldData) -> Result<Option<Response>> {
        use Operation::*;
        let op = req.operation;
        match (id, op) {
            (P::GenerateRoot, _) => self.generate_root(f).await,
            (P::GenerateIntermediate, _) => self.generate_intermediate(f).await,
            (P::SetSigned, _) => self.import_bundle(&f.string("certificate")?, true).await,
            (P::ImportBundle, _) => self.import_bundle(&f.string("pem_bundle")?, false).await,
            (P::SignIntermediate, _) => self.sign_intermediate(f).await,
            (P::SignSelfIssued, _) => self.sign_self_issued(f).await,
            (P::DeleteRoot, _) => self.delete_root().await,
            (P::Issuers, _) => self.list_issuers().await,
            (P::Issuer, Read) => self.read_issuer(&f.string("issuer_ref")?).await,
            (P::Issuer, Delete) => self.delete_issuer(&f.string("issuer_ref")?).await,
            (P::Issuer, _) => self.update_issuer(f).await,
            (P::IssuerRaw, _) => {
                self.issuer_raw(&f.string("issuer_ref")?, &f.string("fmt")?)
                    .await
            }
            (P::IssuerCrl, _) => {
                self.issuer_crl(&f.string("issuer_ref")?, &f.string("crlfmt")?)
                    .await
            }
            (P::IssuerRevoke, _) => self.revoke_issuer(&f.string("issuer_ref")?).await,
            (P::Keys, _) => self.list_keys().await,
            (P::KeysGenerate, _) => self.generate_key(f).await,
            (P::Key, Read) => self.read_key(&f.string("key_ref")?).await,
            (P::Key, Delete) => self.delete_key(&f.string("key_ref")?).await,
            (P::Key, _) => self.update_key(f).await,
            (P::ConfigIssuers, Read) => self.read_config_issuers().await,
            (P::ConfigIssuers, _) => self.write_config_issuers(f).await,
            (P::ConfigKeys, Read) => self.read_config_keys().await,
            (P::ConfigKeys, _) => self.write_config_keys(f).await,
            (P::ConfigUrls, Read) => self.read_urls().await,
            (P::ConfigUrls, _) => self.write_urls(f).await,
            (P::ConfigCrl, Read) => self.read_crl_config().await,
            (P::ConfigCrl, _) => self.write_crl_config(f).await,
            (P::Roles, _) => self.list_roles().await,
            (P::Role, Read) => self.read_role(&f.string("name")?).await,
            (P::Role, Delete) => self.delete_role(&f.string("name")?).await,
            (P::Role, _) => self.write_role(f, op == Patch).await,
            (P::Issue, _) => self.issue(f, req).await,
            (P::Sign, _) => self.sign(f, req, false).await,
            (P::SignVerbatim, _) => self.sign(f, req, true).await,
            (P::Revoke, _) => self.revoke(f).await,
            (P::CrlRotate, _) => self.rotate_crl().await,
            (P::Ca, _) => self.ca_raw(false).await,
            (P::CaPem, _) => self.ca_raw(true).await,
            (P::CaChain, _) => self.ca_chain(req.relative_path.starts_with("cert/")).await,
            (P::Crl, _) => self.crl_raw("default", false).await,
            (P::CrlPem, _) => self.crl_raw("default", true).await,
            (P::Cert, _) => {
                self.read_cert(&f.string("serial")?, &f.string("raw")?)
                    .await
            }
            (P::Certs, _) => self.list_certs("certs/").await,
            (P::CertsRevoked, _) => self.list_certs("revoked/").await,
            (P::Tidy, _) => self.tidy(f).await,
            (P::TidyStatus, _) => self.read_tidy_status(),
        }
    }
}

/// A raw (non-JSON) answer.
pub(crate) fn raw(content_type: &str, body: Vec<u8>) -> Option<Response> {
    Some(Response {
        raw: Some(kura_logical::RawResponse {
            status: 200,
            content_type: content_type.into(),
            body,
        }),
        ..Default::default()
    })
}

/// A response from a JSON object.
pub(crate) fn data(v: Value) -> Option<Response> {
    Some(Response::from_json(v))
}

/// OpenBao answers a missing issuer or key with a 500 and this wording.
pub(crate) fn not_found_500(what: &str, reference: &str) -> LogicalError {
    LogicalError::Coded {
        status: 500,
        message: format!(
            "1 error occurred:\n\t* unable to find PKI {what} for reference: {reference}\n\n"
        ),
    }
}

#[async_trait]
impl LogicalBackend for PkiBackend {
    fn backend_type(&self) -> &str {
        "pki"
    }

    async fn handle(&self, req: &Request) -> Result<Option<Response>> {
        if req.operation == Operation::Help {
            let syn = self
                .table
                .lookup(&req.relative_path)
                .map(|(s, _, _)| s.synopsis)
                .unwrap_or_default();
            return Ok(data(serde_json::json!({ "help": syn })));
        }
        let route = self.table.route(req)?;
        let writes = !req.operation.is_read() && route.id.changes_config();
        let resp = self.dispatch(route.id, req, &route.fields).await;
        if writes {
            // Whatever configuration this node wrote, its parsed state is stale now.
            self.caches.clear();
        }
        Ok(helpers::warn_unknown(resp?, &route.fields, req.operation))
    }

    async fn exists(&self, req: &Request) -> Result<Option<bool>> {
        if !self.table.has_existence_check(&req.relative_path) {
            return Ok(None);
        }
        let name = req.relative_path.trim_start_matches("roles/");
        Ok(Some(
            self.storage.get(&format!("roles/{name}")).await?.is_some(),
        ))
    }

    fn forwards_on_standby(&self, path: &str, _op: Operation) -> bool {
        // Issuing from a role that stores certificates writes: when the role is known, send
        // the request to the active node up front instead of signing twice. Anything else that
        // writes fails with the typed ReadOnly error on a standby and is forwarded then.
        if self.table.forwards(path) {
            return true;
        }
        let segs: Vec<&str> = path.split('/').collect();
        let role = match segs.as_slice() {
            ["issue" | "sign", role] => Some(*role),
            ["issuer", _, "issue" | "sign", role] => Some(*role),
            _ => None,
        };
        role.and_then(|r| self.caches.role(r))
            .is_some_and(|r| !r.no_store)
    }

    fn special_paths(&self) -> SpecialPaths {
        SpecialPaths {
            unauthenticated: [
                "cert/*",
                "ca/pem",
                "ca_chain",
                "ca",
                "crl/delta",
                "crl/delta/pem",
                "crl/pem",
                "crl",
                "issuer/+/crl/der",
                "issuer/+/crl/pem",
                "issuer/+/crl",
                "issuer/+/pem",
                "issuer/+/der",
                "issuer/+/json",
                "issuers/",
                "ocsp",
                "ocsp/*",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            root: Vec::new(),
        }
    }

    async fn invalidate(&self, _key: &str) {
        self.caches.clear();
    }

    async fn revoke_lease(&self, _path: &str, lease: &LeaseInfo) -> Result<()> {
        let serial = lease
            .internal
            .as_ref()
            .and_then(|m| m.get("serial_number"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if serial.is_empty() {
            return Ok(());
        }
        self.revoke_serial(&serial, true).await.map(|_| ())?;
        self.caches.clear();
        Ok(())
    }
}

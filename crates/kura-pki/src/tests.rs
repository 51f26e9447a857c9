//! End-to-end tests of the PKI backend over in-memory storage. Chains are checked with the
//! `openssl verify` command (an independent verifier, not a linked library) and parsed with
//! x509-parser.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kura_logical::{
    BackendConfig, LogicalBackend, Map, MemoryStorage, MountInfo, Operation, Request, Response,
    Storage, SystemView,
};
use serde_json::{json, Value};
use x509_parser::prelude::*;

use crate::certutil;
use crate::PkiBackend;

struct TestSystem;

impl SystemView for TestSystem {
    fn default_lease_ttl(&self) -> Duration {
        Duration::from_secs(24 * 3600)
    }
    fn max_lease_ttl(&self) -> Duration {
        Duration::from_secs(8760 * 3600)
    }
    fn is_standby(&self) -> bool {
        false
    }
}

fn backend() -> (PkiBackend, Arc<MemoryStorage>) {
    let storage = Arc::new(MemoryStorage::new());
    let cfg = BackendConfig {
        mount: MountInfo {
            uuid: "u".into(),
            path: "pki/".into(),
            backend_type: "pki".into(),
            accessor: "pki_1".into(),
            options: BTreeMap::new(),
        },
        storage: storage.clone(),
        system: Arc::new(TestSystem),
    };
    (PkiBackend::new(cfg), storage)
}

fn req(op: Operation, path: &str, body: Value) -> Request {
    let data: Map = body.as_object().cloned().unwrap_or_default();
    let mut r = Request::new(op, format!("pki/{path}")).with_data(data);
    r.mount_point = "pki/".into();
    r.relative_path = path.into();
    r
}

async fn call(
    b: &PkiBackend,
    op: Operation,
    path: &str,
    body: Value,
) -> kura_logical::Result<Option<Response>> {
    b.handle(&req(op, path, body)).await
}

async fn write(b: &PkiBackend, path: &str, body: Value) -> Map {
    call(b, Operation::Update, path, body)
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .and_then(|r| r.data)
        .unwrap_or_default()
}

async fn write_err(b: &PkiBackend, path: &str, body: Value) -> String {
    match call(b, Operation::Update, path, body).await {
        Ok(_) => panic!("{path} should fail"),
        Err(e) => {
            assert_eq!(e.status(), 400, "{e}");
            e.to_string()
        }
    }
}

async fn read(b: &PkiBackend, path: &str) -> Option<Response> {
    call(b, Operation::Read, path, json!({})).await.unwrap()
}

fn s(m: &Map, k: &str) -> String {
    m.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn der(pem: &str) -> Vec<u8> {
    certutil::cert_der_from_pem(pem).unwrap()
}

async fn with_root(key_type: &str) -> (PkiBackend, Arc<MemoryStorage>, Map) {
    let (b, st) = backend();
    let root = write(
        &b,
        "root/generate/internal",
        json!({"common_name": "Kura Root", "key_type": key_type, "ttl": "8760h"}),
    )
    .await;
    (b, st, root)
}

#[tokio::test]
async fn root_generation_for_every_key_type() {
    for (kt, bits) in [
        ("rsa", 2048),
        ("rsa", 3072),
        ("ec", 256),
        ("ec", 384),
        ("ec", 521),
        ("ed25519", 0),
    ] {
        let (b, _) = backend();
        let d = write(
            &b,
            "root/generate/exported",
            json!({"common_name": "Root", "key_type": kt, "key_bits": bits, "ttl": "1h"}),
        )
        .await;
        let cert_der = der(&s(&d, "certificate"));
        let (_, c) = parse_x509_certificate(&cert_der).unwrap();
        assert_eq!(c.subject().to_string(), "CN=Root");
        assert_eq!(c.subject().as_raw(), c.issuer().as_raw());
        assert!(c.basic_constraints().unwrap().unwrap().value.ca);
        assert_eq!(s(&d, "private_key_type"), kt);
        assert_eq!(
            s(&d, "serial_number"),
            certutil::colon_hex(&certutil::serial_bytes(&c))
        );
        assert_eq!(
            certutil::spki_kind(c.public_key()).1,
            bits.max(if kt == "ed25519" { 0 } else { bits })
        );
        let key = certutil::parse_private_key(&s(&d, "private_key")).unwrap();
        assert_eq!(
            key.public_key_raw(),
            c.public_key().subject_public_key.data.as_ref()
        );
        // The self-signed certificate verifies against itself (x509-parser cannot check
        // ed25519 and P-521 signatures; openssl does in the chain test).
        if kt != "ed25519" && bits != 521 {
            c.verify_signature(None).unwrap();
        }
    }
    let (b, _) = backend();
    write_err(
        &b,
        "root/generate/internal",
        json!({"common_name": "R", "key_type": "rsa", "key_bits": 1024}),
    )
    .await;
    write_err(&b, "root/generate/internal", json!({"key_type": "ec"})).await;
}

#[tokio::test]
async fn internal_root_hides_key_and_caps_ttl() {
    let (b, _) = backend();
    let r = call(
        &b,
        Operation::Update,
        "root/generate/internal",
        json!({"common_name": "R", "key_type": "ec", "ttl": "9000h"}),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(r.warnings[0]
        .starts_with("TTL \"9000h0m0s\" is longer than permitted maxTTL \"8760h0m0s\""));
    let root = r.data.unwrap();
    assert!(!root.contains_key("private_key"));
    let c_der = der(&s(&root, "certificate"));
    let (_, c) = parse_x509_certificate(&c_der).unwrap();
    let life = c.validity().not_after.timestamp() - c.validity().not_before.timestamp();
    assert!(
        life <= 8760 * 3600 + 60,
        "root TTL capped at the mount max: {life}"
    );
}

#[tokio::test]
async fn issue_checks_names_and_caps_ttl() {
    let (b, _, _) = with_root("ec").await;
    write(
        &b,
        "roles/web",
        json!({"allowed_domains": "example.com", "allow_subdomains": true, "key_type": "ec", "max_ttl": "2h"}),
    )
    .await;
    let r = call(&b, Operation::Update, "issue/web", json!({"common_name": "a.example.com", "ttl": "5h", "alt_names": "b.example.com", "ip_sans": "10.0.0.1"}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        r.warnings,
        vec!["TTL \"5h0m0s\" is longer than permitted maxTTL \"2h0m0s\", so maxTTL is being used"]
    );
    let d = r.data.unwrap();
    let cd = der(&s(&d, "certificate"));
    let (_, c) = parse_x509_certificate(&cd).unwrap();
    let life = c.validity().not_after.timestamp() - c.validity().not_before.timestamp();
    assert_eq!(
        life,
        2 * 3600 + 30,
        "capped at max_ttl (plus the 30 s backdate)"
    );
    let (dns, _, ips, _) = certutil::sans_of(c.extensions());
    assert_eq!(dns, vec!["a.example.com", "b.example.com"]);
    assert_eq!(ips, vec!["10.0.0.1".parse::<std::net::IpAddr>().unwrap()]);
    assert_eq!(s(&d, "private_key_type"), "ec");
    assert!(s(&d, "private_key").starts_with("-----BEGIN EC PRIVATE KEY-----"));
    assert!(c.extended_key_usage().unwrap().unwrap().value.server_auth);
    assert_eq!(d["ca_chain"].as_array().unwrap().len(), 1);

    let e = write_err(&b, "issue/web", json!({"common_name": "a.other.com"})).await;
    assert_eq!(e, "common name a.other.com not allowed by this role");
    let e = write_err(
        &b,
        "issue/web",
        json!({"common_name": "a.example.com", "alt_names": "x.evil.com"}),
    )
    .await;
    assert_eq!(
        e,
        "subject alternate name x.evil.com not allowed by this role"
    );
    let e = write_err(&b, "issue/web", json!({})).await;
    assert!(e.starts_with("the common_name field is required"));
    let e = write_err(&b, "issue/nope", json!({"common_name": "a.example.com"})).await;
    assert_eq!(e, "unknown role: nope");
    write(
        &b,
        "roles/noip",
        json!({"allowed_domains": "example.com", "allow_subdomains": true, "allow_ip_sans": false}),
    )
    .await;
    let e = write_err(
        &b,
        "issue/noip",
        json!({"common_name": "a.example.com", "ip_sans": "1.2.3.4"}),
    )
    .await;
    assert!(e.starts_with("IP Subject Alternative Names are not allowed"));
    // The certificate is stored and listed under its serial.
    let list = call(&b, Operation::List, "certs/", json!({}))
        .await
        .unwrap()
        .unwrap();
    let keys = list.data.unwrap()["keys"].clone();
    assert!(keys
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k == &json!(s(&d, "serial_number"))));
    let got = read(&b, &format!("cert/{}", s(&d, "serial_number")))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(s(&got, "certificate"), s(&d, "certificate"));
    assert_eq!(got["revocation_time"], json!(0));
}

#[tokio::test]
async fn roles_validate_and_key_type_is_enforced_on_sign() {
    let (b, _, _) = with_root("rsa").await;
    write_err(&b, "roles/bad", json!({"key_type": "ec", "key_bits": 1024})).await;
    write_err(&b, "roles/bad", json!({"key_type": "dsa"})).await;
    write_err(&b, "roles/bad", json!({"ttl": "3h", "max_ttl": "1h"})).await;
    let r = write(
        &b,
        "roles/ec",
        json!({"allow_any_name": true, "key_type": "ec"}),
    )
    .await;
    assert_eq!(r["key_bits"], json!(256));
    let got = read(&b, "roles/ec").await.unwrap().data.unwrap();
    assert_eq!(got["key_type"], json!("ec"));
    assert_eq!(got["allow_localhost"], json!(true));
    let list = call(&b, Operation::List, "roles/", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(list.data.unwrap()["keys"], json!(["ec"]));

    // An RSA CSR against an EC role.
    let rsa = certutil::generate_key("rsa", 2048).unwrap();
    let mut p = rcgen::CertificateParams::new(vec!["x.example.com".to_string()]).unwrap();
    p.distinguished_name = certutil::build_dn("x.example.com", &Default::default());
    let csr = p.serialize_request(&rsa).unwrap().pem().unwrap();
    let e = write_err(&b, "sign/ec", json!({"csr": csr})).await;
    assert_eq!(e, "role requires keys of type ec");
    // A 2048-bit key against a role that wants 4096.
    write(
        &b,
        "roles/big",
        json!({"allow_any_name": true, "key_type": "rsa", "key_bits": 4096}),
    )
    .await;
    let e = write_err(&b, "sign/big", json!({"csr": csr})).await;
    assert!(e.contains("4096"), "{e}");
    // The right type signs, taking the CN from the CSR.
    write(
        &b,
        "roles/rsa",
        json!({"allow_any_name": true, "key_type": "rsa"}),
    )
    .await;
    let d = write(&b, "sign/rsa", json!({"csr": csr})).await;
    let c_der = der(&s(&d, "certificate"));
    let (_, c) = parse_x509_certificate(&c_der).unwrap();
    assert_eq!(c.subject().to_string(), "CN=x.example.com");
    assert!(!d.contains_key("private_key"));
    // sign-verbatim keeps the CSR subject whatever the role's names.
    let d = write(&b, "sign-verbatim", json!({"csr": csr})).await;
    let c_der = der(&s(&d, "certificate"));
    let (_, c) = parse_x509_certificate(&c_der).unwrap();
    assert_eq!(c.subject().to_string(), "CN=x.example.com");
    // A bad CSR.
    write_err(&b, "sign/rsa", json!({"csr": "nope"})).await;
    // Deleting a role.
    call(&b, Operation::Delete, "roles/rsa", json!({}))
        .await
        .unwrap();
    assert!(read(&b, "roles/rsa").await.is_none());
}

#[tokio::test]
async fn revoked_certificates_are_on_the_crl() {
    let (b, _, root) = with_root("ec").await;
    write(
        &b,
        "roles/any",
        json!({"allow_any_name": true, "key_type": "ec"}),
    )
    .await;
    let d1 = write(&b, "issue/any", json!({"common_name": "one.test"})).await;
    let d2 = write(&b, "issue/any", json!({"common_name": "two.test"})).await;
    let serial = s(&d1, "serial_number");
    let r = write(&b, "revoke", json!({"serial_number": serial})).await;
    assert_eq!(r["state"], json!("revoked"));
    assert!(r["revocation_time"].as_i64().unwrap() > 0);
    // Revoking twice answers the same record.
    let again = write(&b, "revoke", json!({"serial_number": serial})).await;
    assert_eq!(again["revocation_time"], r["revocation_time"]);
    let e = write_err(&b, "revoke", json!({"serial_number": "aa:bb"})).await;
    assert_eq!(e, "certificate with serial aa:bb not found.");
    let e = write_err(
        &b,
        "revoke",
        json!({"serial_number": s(&root, "serial_number")}),
    )
    .await;
    assert!(e.contains("to its own CRL is not allowed"));

    let crl = read(&b, "crl").await.unwrap().raw.unwrap();
    assert_eq!(crl.content_type, "application/pkix-crl");
    let (_, parsed) = x509_parser::parse_x509_crl(&crl.body).unwrap();
    let revoked: Vec<String> = parsed
        .iter_revoked_certificates()
        .map(|r| certutil::colon_hex(&r.user_certificate.to_bytes_be()))
        .collect();
    assert_eq!(revoked, vec![serial.clone()]);
    assert!(!revoked.contains(&s(&d2, "serial_number")));
    // Signed by the root.
    let rc_der = der(&s(&root, "certificate"));
    let (_, rc) = parse_x509_certificate(&rc_der).unwrap();
    parsed.verify_signature(rc.public_key()).unwrap();
    let pem = read(&b, "crl/pem").await.unwrap().raw.unwrap();
    assert!(String::from_utf8(pem.body)
        .unwrap()
        .starts_with("-----BEGIN X509 CRL-----"));
    // The certificate now shows its revocation, and crl/rotate works.
    let got = read(&b, &format!("cert/{serial}"))
        .await
        .unwrap()
        .data
        .unwrap();
    assert!(got["revocation_time"].as_i64().unwrap() > 0);
    let rot = read(&b, "crl/rotate").await.unwrap().data.unwrap();
    assert_eq!(rot["success"], json!(true));
    let list = call(&b, Operation::List, "certs/revoked/", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(list.data.unwrap()["keys"], json!([serial]));
}

fn openssl_verify(root: &str, intermediate: &str, leaf: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let w = |n: &str, c: &str| {
        let p = dir.path().join(n);
        std::fs::write(&p, format!("{}\n", c.trim_end())).unwrap();
        p
    };
    let (r, i, l) = (
        w("root.pem", root),
        w("intermediate.pem", intermediate),
        w("leaf.pem", leaf),
    );
    let out = std::process::Command::new("/usr/bin/openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(&r)
        .arg("-untrusted")
        .arg(&i)
        .arg(&l)
        .output()
        .expect("openssl runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn chain_verifies_with_openssl() {
    for (root_type, int_type, leaf_type) in [
        ("rsa", "ec", "ec"),
        ("ec", "rsa", "rsa"),
        ("ed25519", "ec", "ed25519"),
    ] {
        let (root_b, _, root) = with_root(root_type).await;
        let (int_b, _) = backend();
        let gen = write(
            &int_b,
            "intermediate/generate/internal",
            json!({"common_name": "Kura Intermediate", "key_type": int_type}),
        )
        .await;
        assert!(!gen.contains_key("private_key"));
        let signed = write(
            &root_b,
            "root/sign-intermediate",
            json!({"csr": s(&gen, "csr"), "common_name": "Kura Intermediate", "ttl": "8760h"}),
        )
        .await;
        let set = write(
            &int_b,
            "intermediate/set-signed",
            json!({"certificate": s(&signed, "certificate")}),
        )
        .await;
        assert_eq!(set["imported_issuers"].as_array().unwrap().len(), 1);
        write(&int_b, "roles/leaf", json!({"allowed_domains": "example.com", "allow_subdomains": true, "key_type": leaf_type, "ttl": "1h"})).await;
        let leaf = write(
            &int_b,
            "issue/leaf",
            json!({"common_name": "svc.example.com"}),
        )
        .await;
        let (ok, out) = openssl_verify(
            &s(&root, "certificate"),
            &s(&signed, "certificate"),
            &s(&leaf, "certificate"),
        );
        assert!(ok, "{root_type}/{int_type}/{leaf_type}: {out}");
        // A leaf from another root does not verify.
        let (_, _, other) = with_root("ec").await;
        let (ok, _) = openssl_verify(
            &s(&other, "certificate"),
            &s(&signed, "certificate"),
            &s(&leaf, "certificate"),
        );
        assert!(!ok);
        let lc_der = der(&s(&leaf, "certificate"));
        let (_, lc) = parse_x509_certificate(&lc_der).unwrap();
        let ic_der = der(&s(&signed, "certificate"));
        let (_, ic) = parse_x509_certificate(&ic_der).unwrap();
        lc.verify_signature(Some(ic.public_key())).unwrap();
        assert_eq!(lc.issuer().as_raw(), ic.subject().as_raw());
    }
}

#[tokio::test]
async fn no_store_issue_writes_nothing() {
    let (b, st, _) = with_root("ec").await;
    write(
        &b,
        "roles/fast",
        json!({"allow_any_name": true, "key_type": "ec", "no_store": true}),
    )
    .await;
    let before = st.list("certs/").await.unwrap().len();
    // Warm the caches, then issue with storage read-only, as on a standby.
    write(&b, "issue/fast", json!({"common_name": "a.test"})).await;
    st.set_read_only(true);
    let started = std::time::Instant::now();
    for _ in 0..50 {
        let d = write(&b, "issue/fast", json!({"common_name": "a.test"})).await;
        assert!(s(&d, "certificate").starts_with("-----BEGIN CERTIFICATE-----"));
    }
    eprintln!("50 no_store issues: {:?}", started.elapsed());
    st.set_read_only(false);
    assert_eq!(st.list("certs/").await.unwrap().len(), before);
    // A storing role fails with the typed read-only error on a standby.
    write(
        &b,
        "roles/store",
        json!({"allow_any_name": true, "key_type": "ec"}),
    )
    .await;
    st.set_read_only(true);
    let e = call(
        &b,
        Operation::Update,
        "issue/store",
        json!({"common_name": "a.test"}),
    )
    .await
    .unwrap_err();
    assert!(e.is_read_only());
    // Once the storing role is known, such requests go to the active node up front.
    assert!(b.forwards_on_standby("issue/store", Operation::Update));
    assert!(b.forwards_on_standby("issuer/default/sign/store", Operation::Update));
    assert!(!b.forwards_on_standby("issue/fast", Operation::Update));
    st.set_read_only(false);
}

#[tokio::test]
async fn leases_revoke_the_certificate() {
    let (b, _, _) = with_root("ec").await;
    write(
        &b,
        "roles/leased",
        json!({"allow_any_name": true, "key_type": "ec", "generate_lease": true, "ttl": "1h"}),
    )
    .await;
    let r = call(
        &b,
        Operation::Update,
        "issue/leased",
        json!({"common_name": "a.test"}),
    )
    .await
    .unwrap()
    .unwrap();
    let lease = r.lease.clone().unwrap();
    assert!(!lease.renewable);
    assert!(lease.ttl <= Duration::from_secs(3600) && lease.ttl >= Duration::from_secs(3500));
    let serial = s(r.data.as_ref().unwrap(), "serial_number");
    assert_eq!(
        lease.internal.as_ref().unwrap()["serial_number"],
        json!(serial)
    );
    b.revoke_lease("issue/leased", &lease).await.unwrap();
    let got = read(&b, &format!("cert/{serial}"))
        .await
        .unwrap()
        .data
        .unwrap();
    assert!(got["revocation_time"].as_i64().unwrap() > 0);
    // Roles without generate_lease return no lease.
    write(
        &b,
        "roles/plain",
        json!({"allow_any_name": true, "key_type": "ec"}),
    )
    .await;
    let r = call(
        &b,
        Operation::Update,
        "issue/plain",
        json!({"common_name": "a.test"}),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(r.lease.is_none());
}

#[tokio::test]
async fn issuers_keys_and_defaults() {
    let (b, _, root) = with_root("ec").await;
    let list = call(&b, Operation::List, "issuers/", json!({}))
        .await
        .unwrap()
        .unwrap()
        .data
        .unwrap();
    let id = list["keys"][0].as_str().unwrap().to_string();
    assert_eq!(id, s(&root, "issuer_id"));
    assert_eq!(list["key_info"][&id]["is_default"], json!(true));
    let iss = read(&b, &format!("issuer/{id}"))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(
        iss["usage"],
        json!("crl-signing,issuing-certificates,ocsp-signing,read-only")
    );
    assert_eq!(iss["revoked"], json!(false));
    write(&b, &format!("issuer/{id}"), json!({"issuer_name": "main"})).await;
    let iss = read(&b, "issuer/main").await.unwrap().data.unwrap();
    assert_eq!(iss["issuer_id"], json!(id));
    let cfg = read(&b, "config/issuers").await.unwrap().data.unwrap();
    assert_eq!(cfg["default"], json!(id));
    let keys = call(&b, Operation::List, "keys/", json!({}))
        .await
        .unwrap()
        .unwrap()
        .data
        .unwrap();
    let kid = keys["keys"][0].as_str().unwrap().to_string();
    let k = read(&b, &format!("key/{kid}")).await.unwrap().data.unwrap();
    assert_eq!(k["key_type"], json!("ec"));
    let e = call(&b, Operation::Delete, &format!("key/{kid}"), json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.status(), 400, "a key in use stays");
    // Raw forms.
    let pem = read(&b, &format!("issuer/{id}/pem"))
        .await
        .unwrap()
        .raw
        .unwrap();
    assert!(String::from_utf8(pem.body)
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    let derb = read(&b, "issuer/default/der").await.unwrap().raw.unwrap();
    assert_eq!(derb.body, der(&s(&root, "certificate")));
    let ca = read(&b, "ca").await.unwrap().raw.unwrap();
    assert_eq!(ca.body, derb.body);
    let chain = read(&b, "ca_chain").await.unwrap().raw.unwrap();
    assert!(!chain.body.is_empty());
    let crl = read(&b, &format!("issuer/{id}/crl"))
        .await
        .unwrap()
        .data
        .unwrap();
    assert!(s(&crl, "crl").starts_with("-----BEGIN X509 CRL-----"));
    // Revoking an issuer marks it and stops issuance.
    write(&b, "roles/any", json!({"allow_any_name": true})).await;
    let rv = write(&b, &format!("issuer/{id}/revoke"), json!({})).await;
    assert_eq!(rv["revoked"], json!(true));
    write_err(&b, "issue/any", json!({"common_name": "x.test"})).await;
    // Deleting the issuer clears the default; reading it is a 500 as in OpenBao.
    let del = call(&b, Operation::Delete, &format!("issuer/{id}"), json!({}))
        .await
        .unwrap()
        .unwrap();
    assert!(del.warnings[0].contains("default issuer"));
    let e = call(&b, Operation::Read, &format!("issuer/{id}"), json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.status(), 500);
    let e = call(
        &b,
        Operation::Update,
        "issue/any",
        json!({"common_name": "x.test"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.status(), 500);
}

#[tokio::test]
async fn import_bundle_and_sign_self_issued() {
    // An outside CA, made with rcgen directly.
    let key = certutil::generate_key("rsa", 2048).unwrap();
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name = certutil::build_dn(
        "",
        &certutil::SubjectFields {
            organization: vec!["Outside".into()],
            ..Default::default()
        },
    );
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let outside = p.self_signed(&key).unwrap().pem();
    let key_pem = certutil::private_key_pem(&key, false).unwrap();
    assert!(key_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));

    let (b, _) = backend();
    let d = write(
        &b,
        "config/ca",
        json!({"pem_bundle": format!("{key_pem}{outside}")}),
    )
    .await;
    assert_eq!(d["imported_issuers"].as_array().unwrap().len(), 1);
    assert_eq!(d["imported_keys"].as_array().unwrap().len(), 1);
    let iid = d["imported_issuers"][0].as_str().unwrap();
    assert_eq!(d["mapping"][iid], d["imported_keys"][0]);
    // Importing again finds the existing ones.
    let again = write(
        &b,
        "config/ca",
        json!({"pem_bundle": format!("{key_pem}{outside}")}),
    )
    .await;
    assert_eq!(again["imported_issuers"], Value::Null);
    assert_eq!(again["existing_issuers"].as_array().unwrap().len(), 1);
    // The imported CA issues.
    write(
        &b,
        "roles/any",
        json!({"allow_any_name": true, "key_type": "ec"}),
    )
    .await;
    let leaf = write(&b, "issue/any", json!({"common_name": "in.test"})).await;
    let lc_der = der(&s(&leaf, "certificate"));
    let (_, lc) = parse_x509_certificate(&lc_der).unwrap();
    let oc_der = der(&outside);
    let (_, oc) = parse_x509_certificate(&oc_der).unwrap();
    lc.verify_signature(Some(oc.public_key())).unwrap();

    // Cross-sign the outside CA with a Kura root.
    let (rb, _, root) = with_root("ec").await;
    let x = write(
        &rb,
        "root/sign-self-issued",
        json!({"certificate": outside}),
    )
    .await;
    let xc_der = der(&s(&x, "certificate"));
    let (_, xc) = parse_x509_certificate(&xc_der).unwrap();
    let rc_der = der(&s(&root, "certificate"));
    let (_, rc) = parse_x509_certificate(&rc_der).unwrap();
    xc.verify_signature(Some(rc.public_key())).unwrap();
    assert_eq!(xc.subject().as_raw(), oc.subject().as_raw());
    assert_eq!(xc.public_key().raw, oc.public_key().raw);
    // The outside leaf chains to the Kura root through the cross-signed certificate.
    let (ok, out) = openssl_verify(
        &s(&root, "certificate"),
        &s(&x, "certificate"),
        &s(&leaf, "certificate"),
    );
    assert!(ok, "{out}");
    // Not self-issued → refused.
    let e = write_err(
        &rb,
        "root/sign-self-issued",
        json!({"certificate": s(&leaf, "certificate")}),
    )
    .await;
    assert!(e.contains("not self-issued"));
}

#[tokio::test]
async fn config_paths_tidy_and_delete_root() {
    let (b, _, _) = with_root("ec").await;
    let u = write(&b, "config/urls", json!({"issuing_certificates": "http://127.0.0.1:8200/v1/pki/ca", "crl_distribution_points": ["http://127.0.0.1:8200/v1/pki/crl"]})).await;
    assert_eq!(
        u["issuing_certificates"],
        json!(["http://127.0.0.1:8200/v1/pki/ca"])
    );
    let got = read(&b, "config/urls").await.unwrap().data.unwrap();
    assert_eq!(
        got["crl_distribution_points"],
        json!(["http://127.0.0.1:8200/v1/pki/crl"])
    );
    write_err(&b, "config/urls", json!({"ocsp_servers": "not a url"})).await;
    // Issued certificates carry the URLs.
    write(
        &b,
        "roles/any",
        json!({"allow_any_name": true, "key_type": "ec"}),
    )
    .await;
    let leaf = write(&b, "issue/any", json!({"common_name": "a.test"})).await;
    let lc_der = der(&s(&leaf, "certificate"));
    let (_, lc) = parse_x509_certificate(&lc_der).unwrap();
    assert!(lc.extensions().iter().any(|e| matches!(
        e.parsed_extension(),
        ParsedExtension::AuthorityInfoAccess(_)
    )));
    assert!(lc.extensions().iter().any(|e| matches!(
        e.parsed_extension(),
        ParsedExtension::CRLDistributionPoints(_)
    )));

    let c = write(&b, "config/crl", json!({"expiry": "24h"})).await;
    assert_eq!(c["expiry"], json!("24h"));
    let c = read(&b, "config/crl").await.unwrap().data.unwrap();
    assert_eq!(c["disable"], json!(false));
    write_err(&b, "config/crl", json!({"expiry": "soon"})).await;

    let t = call(&b, Operation::Update, "tidy", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.status, Some(202));
    let t = call(
        &b,
        Operation::Update,
        "tidy",
        json!({"tidy_cert_store": true, "safety_buffer": 1}),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(t.status, Some(202));
    let st = read(&b, "tidy-status").await.unwrap().data.unwrap();
    assert_eq!(st["state"], json!("Finished"));

    let d = call(&b, Operation::Delete, "root", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.warnings.len(), 1);
    assert!(call(&b, Operation::List, "issuers/", json!({}))
        .await
        .unwrap()
        .is_none());
    // A new root after the delete is what issues (the cache was dropped).
    let root2 = write(
        &b,
        "root/generate/internal",
        json!({"common_name": "Second", "key_type": "ec", "ttl": "48h"}),
    )
    .await;
    let leaf = write(&b, "issue/any", json!({"common_name": "b.test"})).await;
    let lc_der = der(&s(&leaf, "certificate"));
    let (_, lc) = parse_x509_certificate(&lc_der).unwrap();
    let rc_der = der(&s(&root2, "certificate"));
    let (_, rc) = parse_x509_certificate(&rc_der).unwrap();
    lc.verify_signature(Some(rc.public_key())).unwrap();
}

#[tokio::test]
async fn invalidation_drops_cached_state() {
    let (b, st, _) = with_root("ec").await;
    write(
        &b,
        "roles/r",
        json!({"allow_any_name": true, "key_type": "ec"}),
    )
    .await;
    write(&b, "issue/r", json!({"common_name": "a.test"})).await;
    // Another node changes the role underneath: the cached copy goes on invalidate.
    let mut role: Value =
        serde_json::from_slice(&st.get("roles/r").await.unwrap().unwrap()).unwrap();
    role["allow_any_name"] = json!(false);
    st.put("roles/r", serde_json::to_vec(&role).unwrap())
        .await
        .unwrap();
    write(&b, "issue/r", json!({"common_name": "a.test"})).await;
    b.invalidate("roles/r").await;
    write_err(&b, "issue/r", json!({"common_name": "a.test"})).await;
}

#[test]
fn special_paths_and_backend_type() {
    let (b, _) = backend();
    assert_eq!(b.backend_type(), "pki");
    let sp = b.special_paths();
    for p in [
        "cert/*",
        "ca/pem",
        "ca",
        "crl",
        "crl/pem",
        "ca_chain",
        "issuer/+/pem",
    ] {
        assert!(sp.unauthenticated.iter().any(|x| x == p), "{p}");
    }
}

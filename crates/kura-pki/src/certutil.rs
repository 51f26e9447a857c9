//! Certificate plumbing shared by every PKI path: key generation and parsing, PEM, serial numbers
//! in OpenBao's colon-hex form, subject names, validity, and reading certificates and requests
//! with x509-parser.

use std::net::IpAddr;
use std::time::Duration;

use ::time::OffsetDateTime;
use base64::Engine;
use kura_logical::{LogicalError, Result};
use rcgen::{
    DistinguishedName, DnType, DnValue, KeyPair, PublicKeyData, RsaKeySize, SerialNumber,
    SignatureAlgorithm, SubjectPublicKeyInfo,
};
use x509_parser::prelude::*;

/// The key types OpenBao knows, with their default sizes.
pub fn default_key_bits(key_type: &str) -> u32 {
    match key_type {
        "rsa" => 2048,
        "ec" => 256,
        _ => 0,
    }
}

/// Checks a key type / size pair and returns the effective size (0 → the type's default), with
/// OpenBao's messages.
pub fn validate_key(key_type: &str, bits: u32) -> Result<u32> {
    let bits = if bits == 0 {
        default_key_bits(key_type)
    } else {
        bits
    };
    match key_type {
        "rsa" => match bits {
            2048 | 3072 | 4096 => Ok(bits),
            _ => Err(LogicalError::bad(format!(
                "unsupported bit length for RSA key: {bits}"
            ))),
        },
        "ec" => match bits {
            256 | 384 | 521 => Ok(bits),
            _ => Err(LogicalError::bad(format!(
                "unsupported bit length for EC key: {bits}"
            ))),
        },
        "ed25519" => Ok(0),
        "any" => Ok(bits),
        other => Err(LogicalError::bad(format!("unknown key type {other}"))),
    }
}

/// Generates a key pair of the given type and size.
pub fn generate_key(key_type: &str, bits: u32) -> Result<KeyPair> {
    let bits = validate_key(key_type, bits)?;
    let res = match key_type {
        "rsa" => {
            let size = match bits {
                3072 => RsaKeySize::_3072,
                4096 => RsaKeySize::_4096,
                _ => RsaKeySize::_2048,
            };
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size)
        }
        "ec" => KeyPair::generate_for(match bits {
            384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            521 => &rcgen::PKCS_ECDSA_P521_SHA512,
            _ => &rcgen::PKCS_ECDSA_P256_SHA256,
        }),
        "ed25519" => KeyPair::generate_for(&rcgen::PKCS_ED25519),
        other => return Err(LogicalError::bad(format!("unknown key type {other}"))),
    };
    res.map_err(|e| LogicalError::Internal(format!("generating key: {e}")))
}

/// The OpenBao key type name of a signature algorithm's key.
pub fn key_type_of(alg: &SignatureAlgorithm) -> &'static str {
    if alg == &rcgen::PKCS_ED25519 {
        "ed25519"
    } else if alg == &rcgen::PKCS_RSA_SHA256
        || alg == &rcgen::PKCS_RSA_SHA384
        || alg == &rcgen::PKCS_RSA_SHA512
    {
        "rsa"
    } else {
        "ec"
    }
}

/// Encodes DER bytes as PEM with the given label (64-column lines, trailing newline).
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 64);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Every PEM block in `text`: (label, DER).
pub fn pem_blocks(text: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = after[..label_end].to_string();
        let body_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = body_start.find(&end_marker) else {
            break;
        };
        let body: String = body_start[..end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(body.as_bytes()) {
            out.push((label, der));
        }
        rest = &body_start[end + end_marker.len()..];
    }
    out
}

/// DER of the first certificate in a PEM text.
pub fn cert_der_from_pem(text: &str) -> Result<Vec<u8>> {
    pem_blocks(text)
        .into_iter()
        .find(|(l, _)| l == "CERTIFICATE")
        .map(|(_, d)| d)
        .ok_or_else(|| LogicalError::bad("no data found in PEM block"))
}

/// The private key in OpenBao's default PEM form: PKCS#1 for RSA, SEC1 for EC, PKCS#8 for
/// ed25519 (or PKCS#8 for everything when `pkcs8` is set).
pub fn private_key_pem(key: &KeyPair, pkcs8: bool) -> Result<String> {
    let der = key.serialized_der();
    // Keys we generate are PKCS#8; imported ones keep the form they came in.
    let is_pkcs8 = pkcs8_inner(der).is_some();
    let kt = key_type_of(key.algorithm());
    if pkcs8 || kt == "ed25519" {
        if is_pkcs8 {
            return Ok(pem_encode("PRIVATE KEY", der));
        }
        return Ok(pem_encode(
            if kt == "rsa" {
                "RSA PRIVATE KEY"
            } else {
                "EC PRIVATE KEY"
            },
            der,
        ));
    }
    if !is_pkcs8 {
        return Ok(pem_encode(
            if kt == "rsa" {
                "RSA PRIVATE KEY"
            } else {
                "EC PRIVATE KEY"
            },
            der,
        ));
    }
    match kt {
        "rsa" => {
            let inner = pkcs8_inner(der).unwrap_or_default();
            Ok(pem_encode("RSA PRIVATE KEY", &inner))
        }
        _ => {
            use aws_lc_rs::encoding::AsDer;
            let alg = if key.algorithm() == &rcgen::PKCS_ECDSA_P384_SHA384 {
                &aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1_SIGNING
            } else if key.algorithm() == &rcgen::PKCS_ECDSA_P521_SHA512 {
                &aws_lc_rs::signature::ECDSA_P521_SHA512_ASN1_SIGNING
            } else {
                &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING
            };
            let kp = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(alg, der)
                .map_err(|e| LogicalError::Internal(format!("ec key: {e}")))?;
            let sec1 = kp
                .private_key()
                .as_der()
                .map_err(|e| LogicalError::Internal(format!("ec key: {e}")))?;
            Ok(pem_encode("EC PRIVATE KEY", sec1.as_ref()))
        }
    }
}

/// Reads one DER TLV: (tag, content, rest).
fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut len = 0usize;
        for b in &rest[..n] {
            len = (len << 8) | *b as usize;
        }
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The inner private key of a PKCS#8 structure, `None` if `der` is not PKCS#8.
fn pkcs8_inner(der: &[u8]) -> Option<Vec<u8>> {
    let (tag, body, _) = der_tlv(der)?;
    if tag != 0x30 {
        return None;
    }
    let (t1, _, rest) = der_tlv(body)?; // version
    if t1 != 0x02 {
        return None;
    }
    let (t2, _, rest) = der_tlv(rest)?; // algorithm
    if t2 != 0x30 {
        return None;
    }
    let (t3, key, _) = der_tlv(rest)?;
    if t3 != 0x04 {
        return None;
    }
    Some(key.to_vec())
}

/// Parses a private key from PEM (PKCS#8, PKCS#1 or SEC1).
pub fn parse_private_key(pem: &str) -> Result<KeyPair> {
    KeyPair::from_pem(pem).map_err(|e| LogicalError::bad(format!("error parsing private key: {e}")))
}

/// Fresh random serial number: 20 bytes, positive, no leading zero byte.
pub fn random_serial() -> Vec<u8> {
    let mut b = [0u8; 20];
    let _ = aws_lc_rs::rand::fill(&mut b);
    b[0] &= 0x7f;
    if b[0] == 0 {
        b[0] = 0x42;
    }
    b.to_vec()
}

/// Colon-separated lowercase hex (`7a:1b:...`), as OpenBao shows serial numbers.
pub fn colon_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Normalizes a serial given by a client (colons or hyphens, any case) to the colon form.
pub fn normalize_serial(s: &str) -> String {
    s.trim().to_ascii_lowercase().replace('-', ":")
}

/// Storage form of a serial (hyphens instead of colons).
pub fn serial_key(serial: &str) -> String {
    normalize_serial(serial).replace(':', "-")
}

/// Big-endian serial bytes of a parsed certificate, without a sign-padding zero byte.
pub fn serial_bytes(cert: &X509Certificate<'_>) -> Vec<u8> {
    let raw = cert.tbs_certificate.raw_serial();
    if raw.len() > 1 && raw[0] == 0 {
        raw[1..].to_vec()
    } else {
        raw.to_vec()
    }
}

/// Parses a DER certificate.
pub fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, c)| c)
        .map_err(|e| LogicalError::bad(format!("unable to parse certificate: {e}")))
}

/// Go's `time.Duration.String()` for whole seconds: `5h0m0s`, `30m0s`, `45s`.
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s == 0 {
        return "0s".into();
    }
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{h}h{m}m{sec}s")
    } else if m > 0 {
        format!("{m}m{sec}s")
    } else {
        format!("{sec}s")
    }
}

/// Now, in UTC.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Subject fields a role or request contributes besides the common name.
#[derive(Debug, Default, Clone)]
pub struct SubjectFields {
    /// Organizational units.
    pub ou: Vec<String>,
    /// Organizations.
    pub organization: Vec<String>,
    /// Countries.
    pub country: Vec<String>,
    /// Localities.
    pub locality: Vec<String>,
    /// Provinces / states.
    pub province: Vec<String>,
    /// Street addresses.
    pub street_address: Vec<String>,
    /// Postal codes.
    pub postal_code: Vec<String>,
    /// Subject serial number attribute.
    pub serial_number: String,
}

/// Builds a subject: country, organization, OU, locality, province, street, postal code, serial
/// number, common name — in the order Go's `pkix.Name` marshals them.
pub fn build_dn(cn: &str, f: &SubjectFields) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for v in &f.country {
        dn.push(DnType::CountryName, v.as_str());
    }
    for v in &f.organization {
        dn.push(DnType::OrganizationName, v.as_str());
    }
    for v in &f.ou {
        dn.push(DnType::OrganizationalUnitName, v.as_str());
    }
    for v in &f.locality {
        dn.push(DnType::LocalityName, v.as_str());
    }
    for v in &f.province {
        dn.push(DnType::StateOrProvinceName, v.as_str());
    }
    for v in &f.street_address {
        dn.push(DnType::CustomDnType(vec![2, 5, 4, 9]), v.as_str());
    }
    for v in &f.postal_code {
        dn.push(DnType::CustomDnType(vec![2, 5, 4, 17]), v.as_str());
    }
    if !f.serial_number.is_empty() {
        dn.push(
            DnType::CustomDnType(vec![2, 5, 4, 5]),
            DnValue::PrintableString(
                f.serial_number
                    .as_str()
                    .try_into()
                    .unwrap_or_else(|_| "0".try_into().expect("printable")),
            ),
        );
    }
    if !cn.is_empty() {
        dn.push(DnType::CommonName, cn);
    }
    dn
}

/// Converts a parsed X.509 name into rcgen's form, keeping string types.
pub fn dn_from_x509(name: &X509Name<'_>) -> Result<DistinguishedName> {
    use x509_parser::der_parser::asn1_rs::Tag;
    let mut dn = DistinguishedName::new();
    for rdn in name.iter() {
        for attr in rdn.iter() {
            let oid: Vec<u64> = attr
                .attr_type()
                .iter()
                .ok_or_else(|| LogicalError::bad("unsupported subject attribute"))?
                .collect();
            let ty = DnType::from_oid(&oid);
            let data = attr.attr_value().data;
            let s = String::from_utf8_lossy(data).to_string();
            let bad = |_| LogicalError::bad("unsupported subject string");
            let v = match attr.attr_value().header.tag() {
                Tag::PrintableString => {
                    DnValue::PrintableString(s.as_str().try_into().map_err(bad)?)
                }
                Tag::Ia5String => DnValue::Ia5String(s.as_str().try_into().map_err(bad)?),
                Tag::T61String => DnValue::TeletexString(s.as_str().try_into().map_err(bad)?),
                _ => DnValue::Utf8String(s),
            };
            dn.push(ty, v);
        }
    }
    Ok(dn)
}

/// The common name of a parsed name ("" if none).
pub fn common_name(name: &X509Name<'_>) -> String {
    name.iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Names found in a subject alternative name extension: (dns, emails, ips, uris).
pub type Sans = (Vec<String>, Vec<String>, Vec<IpAddr>, Vec<String>);

/// Reads the SANs of a list of parsed extensions.
pub fn sans_of(exts: &[X509Extension<'_>]) -> Sans {
    let mut out: Sans = Default::default();
    for ext in exts {
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for gn in &san.general_names {
                match gn {
                    GeneralName::DNSName(d) => out.0.push(d.to_string()),
                    GeneralName::RFC822Name(e) => out.1.push(e.to_string()),
                    GeneralName::IPAddress(b) => {
                        if b.len() == 4 {
                            let a: [u8; 4] = (*b).try_into().unwrap_or_default();
                            out.2.push(IpAddr::from(a));
                        } else if b.len() == 16 {
                            let a: [u8; 16] = (*b).try_into().unwrap_or_default();
                            out.2.push(IpAddr::from(a));
                        }
                    }
                    GeneralName::URI(u) => out.3.push(u.to_string()),
                    _ => {}
                }
            }
        }
    }
    out
}

/// A parsed, signature-checked certificate signing request.
pub struct Csr {
    /// Subject.
    pub subject: DistinguishedName,
    /// Subject common name.
    pub common_name: String,
    /// Requested SANs.
    pub sans: Sans,
    /// The public key.
    pub public_key: SubjectPublicKeyInfo,
    /// Key type (`rsa`, `ec`, `ed25519`).
    pub key_type: &'static str,
    /// Key size in bits (0 for ed25519).
    pub key_bits: u32,
    /// True if the request asks for a CA (basic constraints cA).
    pub wants_ca: bool,
}

/// Key type and size of an SPKI.
pub fn spki_kind(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> (&'static str, u32) {
    match spki.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(r)) => {
            let m = r.modulus;
            let m = if !m.is_empty() && m[0] == 0 {
                &m[1..]
            } else {
                m
            };
            ("rsa", (m.len() * 8) as u32)
        }
        Ok(x509_parser::public_key::PublicKey::EC(p)) => {
            let bits = match p.data().len() {
                65 => 256,
                97 => 384,
                133 => 521,
                n => (n as u32 / 2) * 8,
            };
            ("ec", bits)
        }
        _ => {
            if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" {
                ("ed25519", 0)
            } else {
                ("unknown", 0)
            }
        }
    }
}

/// rcgen's view of an SPKI, for signing a certificate over a foreign public key.
pub fn spki_to_rcgen(raw: &[u8]) -> Result<SubjectPublicKeyInfo> {
    SubjectPublicKeyInfo::from_der(raw)
        .map_err(|e| LogicalError::bad(format!("unsupported public key: {e}")))
}

/// Parses and verifies a PEM CSR.
pub fn parse_csr(pem: &str) -> Result<Csr> {
    let der = pem_blocks(pem)
        .into_iter()
        .find(|(l, _)| l.contains("CERTIFICATE REQUEST"))
        .map(|(_, d)| d)
        .ok_or_else(|| LogicalError::bad("certificate request could not be parsed"))?;
    let (_, csr) = X509CertificationRequest::from_der(&der)
        .map_err(|e| LogicalError::bad(format!("certificate request could not be parsed: {e}")))?;
    csr.verify_signature()
        .map_err(|_| LogicalError::bad("request signature invalid"))?;
    let info = &csr.certification_request_info;
    let mut sans: Sans = Default::default();
    let mut wants_ca = false;
    if let Some(reqs) = csr.requested_extensions() {
        for e in reqs {
            match e {
                ParsedExtension::SubjectAlternativeName(san) => {
                    for gn in &san.general_names {
                        match gn {
                            GeneralName::DNSName(d) => sans.0.push(d.to_string()),
                            GeneralName::RFC822Name(m) => sans.1.push(m.to_string()),
                            GeneralName::IPAddress(b) => {
                                if let Ok(a) = <[u8; 4]>::try_from(*b) {
                                    sans.2.push(IpAddr::from(a));
                                } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                                    sans.2.push(IpAddr::from(a));
                                }
                            }
                            GeneralName::URI(u) => sans.3.push(u.to_string()),
                            _ => {}
                        }
                    }
                }
                ParsedExtension::BasicConstraints(bc) => wants_ca = bc.ca,
                _ => {}
            }
        }
    }
    let (key_type, key_bits) = spki_kind(&info.subject_pki);
    Ok(Csr {
        subject: dn_from_x509(&info.subject)?,
        common_name: common_name(&info.subject),
        sans,
        public_key: spki_to_rcgen(info.subject_pki.raw)?,
        key_type,
        key_bits,
        wants_ca,
    })
}

/// SHA-1 of the subject public key bits, colon-hex (the key's `subject_key_id`).
pub fn subject_key_id(key: &impl PublicKeyData) -> String {
    let d = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        key.der_bytes(),
    );
    colon_hex(d.as_ref())
}

/// DER encoding of an Authority Information Access extension body.
pub fn aia_extension(issuing: &[String], ocsp: &[String]) -> Vec<u8> {
    let mut seq = Vec::new();
    for (oid_last, urls) in [(1u8, ocsp), (2u8, issuing)] {
        for u in urls {
            // id-ad-ocsp 1.3.6.1.5.5.7.48.1 / id-ad-caIssuers 1.3.6.1.5.5.7.48.2
            let mut ad = vec![
                0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, oid_last,
            ];
            ad.extend(der_wrap(0x86, u.as_bytes()));
            seq.extend(der_wrap(0x30, &ad));
        }
    }
    der_wrap(0x30, &seq)
}

/// Wraps `content` in a DER TLV.
pub fn der_wrap(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend([0x81, n as u8]);
    } else if n < 0x10000 {
        out.extend([0x82, (n >> 8) as u8, n as u8]);
    } else {
        out.extend([0x83, (n >> 16) as u8, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

/// rcgen serial from bytes.
pub fn rcgen_serial(b: &[u8]) -> SerialNumber {
    SerialNumber::from_slice(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_forms() {
        assert_eq!(colon_hex(&[0x7a, 0x01, 0xff]), "7a:01:ff");
        assert_eq!(normalize_serial("7A-01-FF"), "7a:01:ff");
        assert_eq!(serial_key("7a:01:ff"), "7a-01-ff");
        let s = random_serial();
        assert_eq!(s.len(), 20);
        assert!(s[0] > 0 && s[0] < 0x80);
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_secs(5 * 3600)), "5h0m0s");
        assert_eq!(go_duration(Duration::from_secs(1800)), "30m0s");
        assert_eq!(go_duration(Duration::from_secs(45)), "45s");
        assert_eq!(go_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn key_validation_and_forms() {
        assert_eq!(validate_key("rsa", 0).unwrap(), 2048);
        assert_eq!(validate_key("ec", 0).unwrap(), 256);
        assert!(validate_key("rsa", 1024).is_err());
        assert!(validate_key("ec", 255).is_err());
        assert!(validate_key("dsa", 0).is_err());
        let ec = generate_key("ec", 256).unwrap();
        let pem = private_key_pem(&ec, false).unwrap();
        assert!(pem.starts_with("-----BEGIN EC PRIVATE KEY-----"));
        let back = parse_private_key(&pem).unwrap();
        assert_eq!(back.public_key_raw(), ec.public_key_raw());
        let ed = generate_key("ed25519", 0).unwrap();
        assert!(private_key_pem(&ed, false)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----"));
        let blocks = pem_blocks(&format!("{pem}junk{}", pem_encode("CERTIFICATE", b"x")));
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[1].1, b"x");
    }
}

//! Small encoding helpers: lenient base64 (as Go's decoder accepts it), PEM armour, a minimal
//! DER reader, hash algorithm names and the `vault:vN:` prefix of ciphertexts and signatures.

use aws_lc_rs::digest;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

use kura_logical::{LogicalError, Result};

/// Standard base64 that, like Go's `encoding/base64`, accepts non-zero trailing bits and
/// missing padding.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// URL-safe base64 without padding (JWS signatures).
const URL_NO_PAD: GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Encodes bytes as standard padded base64.
pub fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Encodes bytes as URL-safe base64 without padding.
pub fn b64url(data: &[u8]) -> String {
    URL_NO_PAD.encode(data)
}

/// Decodes base64 leniently; the error text follows Go's
/// (`illegal base64 data at input byte N`).
pub fn unb64(s: &str) -> std::result::Result<Vec<u8>, String> {
    LENIENT.decode(s.as_bytes()).map_err(|e| {
        let at = match e {
            base64::DecodeError::InvalidByte(i, _) => i,
            base64::DecodeError::InvalidLastSymbol(i, _) => i,
            base64::DecodeError::InvalidLength(i) => i,
            base64::DecodeError::InvalidPadding => s.len(),
        };
        format!("illegal base64 data at input byte {at}")
    })
}

/// Decodes URL-safe base64 (padding optional).
pub fn unb64url(s: &str) -> std::result::Result<Vec<u8>, String> {
    const URL_LENIENT: GeneralPurpose = GeneralPurpose::new(
        &alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    URL_LENIENT
        .decode(s.as_bytes())
        .map_err(|_| "illegal base64 data".to_string())
}

/// Wraps DER bytes in PEM armour with the given label, 64 characters a line, with a trailing
/// newline when `trailing_newline` is set.
pub fn pem(label: &str, der: &[u8], trailing_newline: bool) -> String {
    let body = b64(der);
    let mut out = String::with_capacity(body.len() + body.len() / 64 + 64);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----");
    if trailing_newline {
        out.push('\n');
    }
    out
}

/// Reads one DER element at the start of `input`: returns (tag, content, rest).
pub fn der_next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | usize::from(b);
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// Extracts the PKCS#1 `RSAPrivateKey` from a PKCS#8 `PrivateKeyInfo`.
pub fn pkcs8_to_pkcs1(pkcs8: &[u8]) -> Option<&[u8]> {
    let (tag, seq, _) = der_next(pkcs8)?;
    if tag != 0x30 {
        return None;
    }
    let (_, _version, rest) = der_next(seq)?;
    let (_, _alg, rest) = der_next(rest)?;
    let (tag, key, _) = der_next(rest)?;
    (tag == 0x04).then_some(key)
}

/// Converts an ASN.1 `ECDSA-Sig-Value` to the fixed `r || s` form, each `width` bytes.
pub fn ecdsa_asn1_to_fixed(sig: &[u8], width: usize) -> Option<Vec<u8>> {
    let (tag, seq, _) = der_next(sig)?;
    if tag != 0x30 {
        return None;
    }
    let (_, r, rest) = der_next(seq)?;
    let (_, s, _) = der_next(rest)?;
    let mut out = vec![0u8; width * 2];
    for (i, int) in [r, s].into_iter().enumerate() {
        let int = strip_leading_zeros(int);
        if int.len() > width {
            return None;
        }
        let end = width * (i + 1);
        out[end - int.len()..end].copy_from_slice(int);
    }
    Some(out)
}

fn strip_leading_zeros(mut b: &[u8]) -> &[u8] {
    while let [0, rest @ ..] = b {
        b = rest;
    }
    b
}

/// Hash algorithms the engine accepts by OpenBao's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    /// SHA-1 (legacy; verification and HMAC only where a peer requires it).
    Sha1,
    /// SHA-224.
    Sha2_224,
    /// SHA-256.
    Sha2_256,
    /// SHA-384.
    Sha2_384,
    /// SHA-512.
    Sha2_512,
    /// SHA3-256.
    Sha3_256,
    /// SHA3-384.
    Sha3_384,
    /// SHA3-512.
    Sha3_512,
    /// No hashing: the input already is a digest (RSA PKCS#1 v1.5 with `prehashed` only).
    None,
}

impl HashAlg {
    /// Parses an OpenBao hash algorithm name.
    pub fn parse(name: &str) -> Option<HashAlg> {
        Some(match name {
            "sha1" => HashAlg::Sha1,
            "sha2-224" => HashAlg::Sha2_224,
            "sha2-256" => HashAlg::Sha2_256,
            "sha2-384" => HashAlg::Sha2_384,
            "sha2-512" => HashAlg::Sha2_512,
            "sha3-256" => HashAlg::Sha3_256,
            "sha3-384" => HashAlg::Sha3_384,
            "sha3-512" => HashAlg::Sha3_512,
            "none" => HashAlg::None,
            _ => return None,
        })
    }

    /// OpenBao's name of the algorithm.
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "sha1",
            HashAlg::Sha2_224 => "sha2-224",
            HashAlg::Sha2_256 => "sha2-256",
            HashAlg::Sha2_384 => "sha2-384",
            HashAlg::Sha2_512 => "sha2-512",
            HashAlg::Sha3_256 => "sha3-256",
            HashAlg::Sha3_384 => "sha3-384",
            HashAlg::Sha3_512 => "sha3-512",
            HashAlg::None => "none",
        }
    }

    /// The digest algorithm, `None` for [`HashAlg::None`].
    pub fn digest(self) -> Option<&'static digest::Algorithm> {
        Some(match self {
            HashAlg::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            HashAlg::Sha2_224 => &digest::SHA224,
            HashAlg::Sha2_256 => &digest::SHA256,
            HashAlg::Sha2_384 => &digest::SHA384,
            HashAlg::Sha2_512 => &digest::SHA512,
            HashAlg::Sha3_256 => &digest::SHA3_256,
            HashAlg::Sha3_384 => &digest::SHA3_384,
            HashAlg::Sha3_512 => &digest::SHA3_512,
            HashAlg::None => return None,
        })
    }

    /// The HMAC algorithm, if aws-lc-rs offers one for this hash.
    pub fn hmac(self) -> Option<aws_lc_rs::hmac::Algorithm> {
        use aws_lc_rs::hmac;
        Some(match self {
            HashAlg::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            HashAlg::Sha2_224 => hmac::HMAC_SHA224,
            HashAlg::Sha2_256 => hmac::HMAC_SHA256,
            HashAlg::Sha2_384 => hmac::HMAC_SHA384,
            HashAlg::Sha2_512 => hmac::HMAC_SHA512,
            _ => return None,
        })
    }

    /// Hashes `data` (for [`HashAlg::None`], returns it unchanged).
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self.digest() {
            Some(alg) => digest::digest(alg, data).as_ref().to_vec(),
            None => data.to_vec(),
        }
    }
}

/// Splits `vault:vN:payload` into (N, payload). `what` names the value in errors
/// (`ciphertext`, `signature`, `HMAC to verify`).
pub fn split_versioned<'a>(value: &'a str, what: &str) -> Result<(u32, &'a str)> {
    let Some(rest) = value.strip_prefix("vault:") else {
        return Err(LogicalError::bad(format!("invalid {what}: no prefix")));
    };
    let Some(rest) = rest.strip_prefix('v') else {
        return Err(LogicalError::bad(format!(
            "invalid {what}: version number could not be decoded"
        )));
    };
    let Some((num, payload)) = rest.split_once(':') else {
        return Err(LogicalError::bad(format!(
            "invalid {what}: wrong number of fields"
        )));
    };
    let version: u32 = num.parse().map_err(|_| {
        LogicalError::bad(format!(
            "invalid {what}: version number could not be decoded"
        ))
    })?;
    Ok((version, payload))
}

/// Formats `vault:v{version}:{base64(payload)}`.
pub fn versioned(version: u32, payload: &[u8]) -> String {
    let mut out = String::with_capacity(12 + payload.len().div_ceil(3) * 4);
    out.push_str("vault:v");
    out.push_str(&version.to_string());
    out.push(':');
    base64::engine::general_purpose::STANDARD.encode_string(payload, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_lenient_like_go() {
        assert_eq!(unb64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(unb64("aGVsbG9=").unwrap(), b"hello", "trailing bits");
        assert_eq!(unb64("aGVsbG8").unwrap(), b"hello", "no padding");
        assert_eq!(
            unb64("!!").unwrap_err(),
            "illegal base64 data at input byte 0"
        );
    }

    #[test]
    fn versioned_values_round_trip() {
        let s = versioned(7, b"abc");
        assert_eq!(s, "vault:v7:YWJj");
        assert_eq!(split_versioned(&s, "ciphertext").unwrap(), (7, "YWJj"));
        let e = split_versioned("nope", "ciphertext").unwrap_err();
        assert_eq!(e.to_string(), "invalid ciphertext: no prefix");
        let e = split_versioned("vault:vx:AA", "signature").unwrap_err();
        assert!(e.to_string().contains("version number"));
    }

    #[test]
    fn pem_and_der_helpers() {
        let p = pem("PUBLIC KEY", &[1u8; 70], true);
        assert!(p.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(p.ends_with("-----END PUBLIC KEY-----\n"));
        assert_eq!(p.lines().nth(1).unwrap().len(), 64);
        // SEQUENCE { INTEGER 0x00ff, INTEGER 0x01 } → fixed width 2.
        let sig = [0x30, 0x07, 0x02, 0x02, 0x00, 0xff, 0x02, 0x01, 0x01];
        assert_eq!(ecdsa_asn1_to_fixed(&sig, 2).unwrap(), vec![0, 0xff, 0, 1]);
        assert!(der_next(&[0x30, 0x05, 0x00]).is_none(), "short content");
    }

    #[test]
    fn hash_names() {
        assert_eq!(HashAlg::parse("sha2-256"), Some(HashAlg::Sha2_256));
        assert_eq!(HashAlg::parse("meow"), None);
        for n in ["sha1", "sha2-224", "sha3-512", "none"] {
            assert_eq!(HashAlg::parse(n).unwrap().name(), n);
        }
        assert_eq!(HashAlg::Sha2_512.hash(b"x").len(), 64);
        assert!(HashAlg::Sha3_256.hmac().is_none());
    }
}

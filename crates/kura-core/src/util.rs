//! Small helpers shared by the core modules: random identifiers, time formatting, salted hashes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `n` cryptographically random bytes.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut buf)
        .expect("system random source failed");
    buf
}

/// A random base62 string of length `n` (rejection sampling, no modulo bias).
pub fn random_base62(n: usize) -> String {
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for b in random_bytes(n * 2) {
            if (b as usize) < 62 * 4 && out.len() < n {
                out.push(BASE62[(b as usize) % 62] as char);
            }
        }
    }
    out
}

/// A random UUID in Vault's textual form.
pub fn new_uuid() -> String {
    let b = random_bytes(16);
    format!(
        "{}-{}-{}-{}-{}",
        hex::encode(&b[0..4]),
        hex::encode(&b[4..6]),
        hex::encode(&b[6..8]),
        hex::encode(&b[8..10]),
        hex::encode(&b[10..16])
    )
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64
}

/// Formats a Unix timestamp (seconds + nanos) as RFC 3339 with nanoseconds, UTC, like Go.
pub fn rfc3339(t: SystemTime) -> String {
    let odt = time::OffsetDateTime::from(t);
    odt.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// RFC 3339 for a Unix time in seconds.
pub fn rfc3339_secs(secs: i64) -> String {
    rfc3339(UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64))
}

/// True if `ip` lies inside `cidr` (`10.0.0.0/8`, `::1/128`, or a bare address).
pub fn cidr_contains(cidr: &str, ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    let (net, bits) = match cidr.trim().split_once('/') {
        Some((n, b)) => (n, b.parse::<u32>().ok()),
        None => (cidr.trim(), None),
    };
    let Ok(net) = net.parse::<IpAddr>() else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(n) & mask == u128::from(a) & mask
        }
        (IpAddr::V4(n), IpAddr::V6(a)) => a
            .to_ipv4_mapped()
            .is_some_and(|a| cidr_contains(&format!("{n}/{}", bits.unwrap_or(32)), IpAddr::V4(a))),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_right_shape() {
        let s = random_base62(24);
        assert_eq!(s.len(), 24);
        assert!(s.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(random_base62(24), s);
        assert_eq!(new_uuid().len(), 36);
        assert!(rfc3339_secs(0).starts_with("1970-01-01T00:00:00"));
    }

    #[test]
    fn cidr_matching() {
        let ip = |s: &str| s.parse().unwrap();
        assert!(cidr_contains("10.0.0.0/8", ip("10.1.2.3")));
        assert!(!cidr_contains("10.0.0.0/8", ip("11.1.2.3")));
        assert!(cidr_contains("127.0.0.1", ip("127.0.0.1")));
        assert!(cidr_contains("0.0.0.0/0", ip("8.8.8.8")));
        assert!(cidr_contains("::1/128", ip("::1")));
        assert!(!cidr_contains("garbage", ip("::1")));
    }
}

//! CIDR blocks: parsing (strict `addr/len`, or a bare address meaning a single host), membership
//! of a client address, and the subset relation OpenBao checks between a secret ID's blocks and
//! its role's.

use std::fmt;
use std::net::IpAddr;

/// One CIDR block. The address is kept as written (host bits may be set, as Go's
/// `net.ParseCIDR` allows); membership uses the masked network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a CIDR block did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Not `address/length` (strict form).
    #[error("invalid CIDR address: {0}")]
    InvalidCidr(String),
    /// Neither an address nor a block (lenient form).
    #[error("error parsing address {0:?}: not an IPv4 or IPv6 address or CIDR block")]
    InvalidAddress(String),
}

/// Maps `::ffff:a.b.c.d` to `a.b.c.d`, so a v4 client seen through a dual-stack socket matches
/// v4 blocks.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Cidr {
    /// Parses `address/length` only (Go's `net.ParseCIDR`): a bare address is an error.
    pub fn parse_strict(s: &str) -> Result<Cidr, CidrError> {
        let err = || CidrError::InvalidCidr(s.to_string());
        let (addr, len) = s.trim().split_once('/').ok_or_else(err)?;
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let prefix: u8 = len.parse().map_err(|_| err())?;
        if prefix > max_prefix(addr) {
            return Err(err());
        }
        Ok(Cidr { addr, prefix })
    }

    /// Parses a block or a bare address (a single host), as OpenBao's `parseutil.ParseAddrs`.
    pub fn parse_addr(s: &str) -> Result<Cidr, CidrError> {
        let t = s.trim();
        if t.contains('/') {
            return Cidr::parse_strict(t).map_err(|_| CidrError::InvalidAddress(s.to_string()));
        }
        let addr: IpAddr = t
            .parse()
            .map_err(|_| CidrError::InvalidAddress(s.to_string()))?;
        Ok(Cidr {
            addr,
            prefix: max_prefix(addr),
        })
    }

    /// The block covering exactly one address.
    pub fn host(ip: IpAddr) -> Cidr {
        let addr = canonical_ip(ip);
        Cidr {
            addr,
            prefix: max_prefix(addr),
        }
    }

    /// True if `ip` lies in this block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (canonical_ip(self.addr), canonical_ip(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask32(self.prefix.min(32));
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask128(self.prefix);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    /// True if every address of `other` lies in this block.
    pub fn contains_block(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }

    /// The form OpenBao shows for token-bound CIDRs: a single host as a bare address.
    pub fn display_addr(&self) -> String {
        if self.prefix == max_prefix(self.addr) {
            self.addr.to_string()
        } else {
            self.to_string()
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn mask32(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

fn mask128(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix.min(128)))
    }
}

/// Parses every block strictly (`addr/len`), with the first failure.
pub fn parse_strict_list(list: &[String]) -> Result<Vec<Cidr>, CidrError> {
    list.iter().map(|s| Cidr::parse_strict(s)).collect()
}

/// Parses every entry leniently (block or bare address), with the first failure.
pub fn parse_addr_list(list: &[String]) -> Result<Vec<Cidr>, CidrError> {
    list.iter().map(|s| Cidr::parse_addr(s)).collect()
}

/// True if `ip` lies in at least one of `blocks` (entries that do not parse never match).
pub fn ip_in_blocks(ip: IpAddr, blocks: &[String]) -> bool {
    blocks
        .iter()
        .filter_map(|b| Cidr::parse_addr(b).ok())
        .any(|c| c.contains(ip))
}

/// True if each block of `subset` lies inside at least one block of `superset`; an empty
/// `superset` places no restriction (OpenBao's `verifyCIDRRoleSecretIDSubset`).
pub fn is_subset(subset: &[String], superset: &[String]) -> bool {
    if subset.is_empty() || superset.is_empty() {
        return true;
    }
    let Ok(sup) = parse_addr_list(superset) else {
        return false;
    };
    subset.iter().all(|s| match Cidr::parse_addr(s) {
        Ok(block) => sup.iter().any(|p| p.contains_block(&block)),
        Err(_) => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_strict_and_lenient() {
        assert!(Cidr::parse_strict("10.0.0.0/8").is_ok());
        assert!(
            Cidr::parse_strict("10.1.2.3/8").is_ok(),
            "host bits allowed as in Go"
        );
        assert!(Cidr::parse_strict("::1/128").is_ok());
        for bad in [
            "127.0.0.1",
            "bogus",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "::/129",
        ] {
            assert_eq!(
                Cidr::parse_strict(bad).unwrap_err(),
                CidrError::InvalidCidr(bad.into()),
                "{bad}"
            );
        }
        assert_eq!(
            Cidr::parse_strict("bogus").unwrap_err().to_string(),
            "invalid CIDR address: bogus"
        );
        assert_eq!(
            Cidr::parse_addr("127.0.0.1").unwrap().display_addr(),
            "127.0.0.1"
        );
        assert_eq!(
            Cidr::parse_addr("127.0.0.1/32").unwrap().display_addr(),
            "127.0.0.1"
        );
        assert_eq!(
            Cidr::parse_addr("10.0.0.0/8").unwrap().display_addr(),
            "10.0.0.0/8"
        );
        assert!(Cidr::parse_addr("nope").is_err());
    }

    #[test]
    fn membership_and_subsets() {
        let b = Cidr::parse_strict("10.0.0.0/8").unwrap();
        assert!(b.contains("10.200.1.1".parse().unwrap()));
        assert!(!b.contains("11.0.0.1".parse().unwrap()));
        assert!(
            b.contains("::ffff:10.0.0.1".parse().unwrap()),
            "v4-mapped client"
        );
        assert!(!b.contains("::1".parse().unwrap()));
        let all = Cidr::parse_strict("0.0.0.0/0").unwrap();
        assert!(all.contains("1.2.3.4".parse().unwrap()));
        let v6 = Cidr::parse_strict("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::5".parse().unwrap()));
        assert!(ip_in_blocks(
            "127.0.0.1".parse().unwrap(),
            &s(&["10.0.0.0/8", "127.0.0.1"])
        ));
        assert!(!ip_in_blocks(
            "127.0.0.2".parse().unwrap(),
            &s(&["127.0.0.1"])
        ));

        assert!(is_subset(&s(&["10.1.0.0/16"]), &s(&["10.0.0.0/8"])));
        assert!(!is_subset(&s(&["192.168.0.0/16"]), &s(&["10.0.0.0/8"])));
        assert!(
            !is_subset(&s(&["10.0.0.0/7"]), &s(&["10.0.0.0/8"])),
            "wider block"
        );
        assert!(is_subset(&s(&["1.2.3.4/32"]), &[]), "no role restriction");
        assert!(
            is_subset(&s(&["127.0.0.1/32"]), &s(&["127.0.0.1"])),
            "bare host on role"
        );
        assert_eq!(
            Cidr::host("::ffff:1.2.3.4".parse().unwrap()).display_addr(),
            "1.2.3.4"
        );
    }
}

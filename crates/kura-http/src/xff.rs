//! `X-Forwarded-For` as OpenBao's listener options define it: when the connection comes from an
//! authorized address (`x_forwarded_for_authorized_addrs`), the client address is taken from
//! the header, `x_forwarded_for_hop_skips` entries from its end; a request without the header
//! (`x_forwarded_for_reject_not_present`) or from an address that is not authorized
//! (`x_forwarded_for_reject_not_authorized`) can be refused with 400. With no authorized
//! addresses configured the header is ignored.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

/// An address block (`10.0.0.0/8`; a bare address is a block of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrBlock {
    addr: IpAddr,
    prefix: u8,
}

impl AddrBlock {
    /// Parses `a.b.c.d/n`, `a:b::/n` or a bare address.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = ip
            .parse()
            .map_err(|_| format!("invalid address or CIDR block {s:?}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("invalid prefix length in {s:?}")),
            },
        };
        Ok(AddrBlock { addr, prefix })
    }

    /// Whether `ip` lies in the block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// A listener's `X-Forwarded-For` options.
#[derive(Debug, Clone, Default)]
pub struct XffSettings {
    /// `x_forwarded_for_authorized_addrs`; empty: the header is not used at all.
    pub authorized_addrs: Vec<AddrBlock>,
    /// `x_forwarded_for_hop_skips`.
    pub hop_skips: u64,
    /// `x_forwarded_for_reject_not_authorized`.
    pub reject_not_authorized: bool,
    /// `x_forwarded_for_reject_not_present`.
    pub reject_not_present: bool,
}

impl XffSettings {
    /// Settings from the configuration's strings (addresses or CIDR blocks).
    pub fn new(
        authorized_addrs: &[String],
        hop_skips: u64,
        reject_not_authorized: bool,
        reject_not_present: bool,
    ) -> Result<Self, String> {
        Ok(XffSettings {
            authorized_addrs: authorized_addrs
                .iter()
                .map(|a| AddrBlock::parse(a))
                .collect::<Result<_, _>>()?,
            hop_skips,
            reject_not_authorized,
            reject_not_present,
        })
    }

    /// The client's address for a connection from `peer` carrying `headers`, or the message
    /// of the 400 that refuses the request.
    pub fn client_addr(&self, peer: SocketAddr, headers: &HeaderMap) -> Result<SocketAddr, String> {
        if self.authorized_addrs.is_empty() {
            return Ok(peer);
        }
        let lines: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if lines.is_empty() {
            if self.reject_not_present {
                return Err(
                    "missing x-forwarded-for header and configured to reject when not present"
                        .into(),
                );
            }
            return Ok(peer);
        }
        if !self.authorized_addrs.iter().any(|b| b.contains(peer.ip())) {
            if self.reject_not_authorized {
                return Err(
                    "client address not authorized for x-forwarded-for and configured to reject connection"
                        .into(),
                );
            }
            return Ok(peer);
        }
        let chain: Vec<&str> = lines
            .iter()
            .flat_map(|l| l.split(','))
            .map(str::trim)
            .collect();
        let Some(pick) = (chain.len() as u64)
            .checked_sub(1 + self.hop_skips)
            .map(|i| chain[i as usize])
        else {
            // OpenBao reports the number of header lines as the chain length.
            return Err(format!(
                "malformed x-forwarded-for configuration or request, hops to skip ({}) would skip before earliest chain link (chain length {})",
                self.hop_skips,
                lines.len()
            ));
        };
        // The port stays the connection's, as in OpenBao.
        match pick.parse::<IpAddr>() {
            Ok(ip) => Ok(SocketAddr::new(ip, peer.port())),
            Err(_) => match pick.parse::<SocketAddr>() {
                Ok(sa) => Ok(SocketAddr::new(sa.ip(), peer.port())),
                Err(_) => Err(format!(
                    "malformed x-forwarded-for header: {pick:?} is not an IP address"
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append("x-forwarded-for", l.parse().unwrap());
        }
        h
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 5555)
    }

    #[test]
    fn blocks() {
        let b = AddrBlock::parse("10.0.0.0/8").unwrap();
        assert!(b.contains("10.1.2.3".parse().unwrap()));
        assert!(!b.contains("11.0.0.1".parse().unwrap()));
        assert!(b.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!(AddrBlock::parse("127.0.0.1")
            .unwrap()
            .contains("127.0.0.1".parse().unwrap()));
        assert!(AddrBlock::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(AddrBlock::parse("fd00::/8")
            .unwrap()
            .contains("fd12::1".parse().unwrap()));
        assert!(AddrBlock::parse("10.0.0.0/33").is_err());
        assert!(AddrBlock::parse("nope").is_err());
    }

    #[test]
    fn unconfigured_ignores_the_header() {
        let s = XffSettings::default();
        assert_eq!(
            s.client_addr(peer("127.0.0.1"), &headers(&["1.2.3.4"])),
            Ok(peer("127.0.0.1"))
        );
    }

    #[test]
    fn authorized_hop_skips_and_rejections() {
        let mut s = XffSettings::new(&["127.0.0.0/8".into()], 0, false, false).unwrap();
        let h = headers(&["1.2.3.4, 5.6.7.8", "9.9.9.9"]);
        assert_eq!(
            s.client_addr(peer("127.0.0.1"), &h).unwrap(),
            peer("9.9.9.9")
        );
        s.hop_skips = 2;
        assert_eq!(
            s.client_addr(peer("127.0.0.1"), &h).unwrap(),
            peer("1.2.3.4")
        );
        s.hop_skips = 3;
        assert_eq!(
            s.client_addr(peer("127.0.0.1"), &h).unwrap_err(),
            "malformed x-forwarded-for configuration or request, hops to skip (3) would skip before earliest chain link (chain length 2)"
        );
        // Not authorized: ignored, or refused.
        s.hop_skips = 0;
        assert_eq!(
            s.client_addr(peer("192.168.1.1"), &h).unwrap(),
            peer("192.168.1.1")
        );
        s.reject_not_authorized = true;
        assert!(s
            .client_addr(peer("192.168.1.1"), &h)
            .unwrap_err()
            .starts_with("client address not authorized"));
        // Not present: passed, or refused.
        assert_eq!(
            s.client_addr(peer("127.0.0.1"), &HeaderMap::new()).unwrap(),
            peer("127.0.0.1")
        );
        s.reject_not_present = true;
        assert!(s
            .client_addr(peer("127.0.0.1"), &HeaderMap::new())
            .unwrap_err()
            .starts_with("missing x-forwarded-for header"));
    }
}

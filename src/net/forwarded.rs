//! Who the client is behind a reverse proxy (`--trusted-proxies`).
//!
//! Behind nginx or Caddy every socket comes from the proxy, so the per-IP
//! cap and the logs would see one client. A proxy says who it forwards
//! for in `X-Forwarded-For`, which each hop appends to; but anyone can
//! send that header, so it is believed only when the socket's peer is a
//! proxy the operator named, and then only up to the first address that
//! is not itself a trusted proxy, read from the right (the rightmost
//! entries were added by the trusted hops; anything left of the first
//! untrusted one could have been written by the client).

use std::fmt;
use std::net::IpAddr;

/// A block of addresses, `10.0.0.0/8` or `::1/128` (a bare address is
/// the block of just it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Reads `text`, or says what is wrong with it.
    pub fn parse(text: &str) -> Result<Cidr, &'static str> {
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| "an IP address or CIDR block (127.0.0.1, 10.0.0.0/8, ::1/128)")?;
        let bits = match network {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix = match prefix {
            None => bits,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= bits)
                .ok_or("a CIDR prefix length of 0 to 32 (IPv4) or 0 to 128 (IPv6)")?,
        };
        Ok(Cidr { network, prefix })
    }

    /// Whether `address` is inside the block (an IPv4 address mapped into
    /// IPv6, as a dual-stack socket reports it, counts as IPv4).
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, address) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                same_prefix(u32::from(net).into(), u32::from(a).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                same_prefix(u128::from(net), u128::from(a), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn same_prefix(a: u128, b: u128, prefix: u8, bits: u32) -> bool {
    let ignored = bits - u32::from(prefix);
    // A shift by the whole width is not allowed: prefix 0 matches all.
    ignored >= bits || (a >> ignored) == (b >> ignored)
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The operator's trusted proxies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Reads a comma-separated list of blocks.
    pub fn parse(list: &str) -> Result<TrustedProxies, &'static str> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(Cidr::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    /// Whether none is named (the default: no header is believed).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|block| block.contains(address))
    }

    /// The client's address: `peer` itself, unless `peer` is a trusted
    /// proxy; then the rightmost address of `forwarded_for` (the
    /// `X-Forwarded-For` headers, in order) that is not a trusted proxy.
    /// An entry that is not an address ends the walk where it stands: the
    /// last trusted hop is then the best that is known.
    pub fn client(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        let entries = forwarded_for
            .iter()
            .flat_map(|header| header.split(','))
            .rev();
        for entry in entries {
            match parse_entry(entry) {
                Some(address) if self.trusts(address) => client = address,
                Some(address) => return address,
                None => return client,
            }
        }
        client
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let blocks: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&blocks.join(","))
    }
}

/// One `X-Forwarded-For` entry: an address, maybe bracketed or with a
/// port (`[::1]:443`, `1.2.3.4:5678`), as some proxies write them.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(address) = entry.parse() {
        return Some(address);
    }
    if let Some(rest) = entry.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    entry.rsplit_once(':')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn blocks_contain_their_addresses() {
        let block = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(block.contains(ip("10.1.200.3")));
        assert!(!block.contains(ip("10.2.0.1")));
        assert!(block.contains(ip("::ffff:10.1.0.9")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("::1").unwrap().contains(ip("::1")));
        assert!(!Cidr::parse("::1").unwrap().contains(ip("127.0.0.1")));
        assert!(Cidr::parse("fd00::/8").unwrap().contains(ip("fdab::1")));
        for bad in ["10.0.0.0/33", "nope", "::/129", "1.2.3.4/x", ""] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            TrustedProxies::parse("127.0.0.1, 10.0.0.0/8")
                .unwrap()
                .to_string(),
            "127.0.0.1/32,10.0.0.0/8"
        );
    }

    #[test]
    fn the_header_is_believed_only_from_a_trusted_peer() {
        let proxies = TrustedProxies::parse("127.0.0.1,10.0.0.0/8").unwrap();
        let peer = ip("127.0.0.1");
        assert_eq!(proxies.client(peer, &["203.0.113.7"]), ip("203.0.113.7"));
        // Untrusted peer: its header is ignored.
        assert_eq!(
            proxies.client(ip("198.51.100.1"), &["203.0.113.7"]),
            ip("198.51.100.1")
        );
        // The rightmost untrusted entry wins; what the client wrote to its
        // left is not believed.
        assert_eq!(
            proxies.client(peer, &["6.6.6.6, 203.0.113.7, 10.0.0.2"]),
            ip("203.0.113.7")
        );
        // Several headers count as one list, in order.
        assert_eq!(
            proxies.client(peer, &["6.6.6.6", "203.0.113.7"]),
            ip("203.0.113.7")
        );
        // Only trusted hops: the leftmost of them.
        assert_eq!(
            proxies.client(peer, &["10.0.0.3, 10.0.0.2"]),
            ip("10.0.0.3")
        );
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(proxies.client(peer, &["unknown, 10.0.0.2"]), ip("10.0.0.2"));
        assert_eq!(proxies.client(peer, &[]), peer);
        assert_eq!(
            proxies.client(peer, &["[2001:db8::1]:443"]),
            ip("2001:db8::1")
        );
        assert_eq!(
            proxies.client(peer, &["203.0.113.9:5000"]),
            ip("203.0.113.9")
        );
        assert_eq!(
            TrustedProxies::default().client(peer, &["203.0.113.7"]),
            peer
        );
    }
}

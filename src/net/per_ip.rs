//! The per-IP connection limit (`--max-connections-per-ip`): how many
//! WebSockets each peer address holds open, shared by every connection
//! thread.
//!
//! A connection's count is a [`PeerPlace`], given back when it is dropped,
//! so no way a connection can end leaks one; an address whose count falls
//! to zero is forgotten, so the table holds only addresses with open
//! connections.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

/// Open WebSockets by peer address. The cap is passed to each
/// [`admit`](PerIpLimit::admit) rather than kept here, so that a reload
/// changes it for the next connection.
#[derive(Debug, Default)]
pub struct PerIpLimit {
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIpLimit {
    /// An empty table.
    pub fn new() -> Arc<PerIpLimit> {
        Arc::default()
    }

    /// Counts one more connection from `ip` unless it already holds `max`;
    /// the count is given back when the returned place is dropped.
    pub fn admit(self: &Arc<PerIpLimit>, ip: IpAddr, max: usize) -> Option<PeerPlace> {
        // An IPv4 client of a dual-stack listener arrives as ::ffff:a.b.c.d;
        // it is the same peer as a.b.c.d.
        let ip = ip.to_canonical();
        let mut open = self.open.lock();
        let count = open.entry(ip).or_insert(0);
        if *count >= max {
            // Only a zero limit leaves a fresh entry at zero; drop it then too.
            if *count == 0 {
                open.remove(&ip);
            }
            return None;
        }
        *count += 1;
        Some(PeerPlace {
            limit: self.clone(),
            ip,
        })
    }

    /// The connections `ip` holds now.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.open
            .lock()
            .get(&ip.to_canonical())
            .copied()
            .unwrap_or(0)
    }

    /// How many addresses hold connections now.
    pub fn peers(&self) -> usize {
        self.open.lock().len()
    }

    fn release(&self, ip: IpAddr) {
        let mut open = self.open.lock();
        if let Some(count) = open.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&ip);
            }
        }
    }
}

/// One connection's place in its address's count, held for as long as the
/// connection lives.
#[derive(Debug)]
pub struct PeerPlace {
    limit: Arc<PerIpLimit>,
    ip: IpAddr,
}

impl Drop for PeerPlace {
    fn drop(&mut self) {
        self.limit.release(self.ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const HOME: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const AWAY: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

    #[test]
    fn each_address_holds_up_to_the_limit() {
        let limit = PerIpLimit::new();
        let first = limit.admit(HOME, 2);
        let second = limit.admit(HOME, 2);
        assert!(first.is_some() && second.is_some());
        assert!(limit.admit(HOME, 2).is_none());
        assert!(
            limit.admit(AWAY, 2).is_some(),
            "another address has its own count"
        );
        assert_eq!(limit.open_from(HOME), 2);
        drop(first);
        assert_eq!(limit.open_from(HOME), 1);
        assert!(limit.admit(HOME, 2).is_some());
    }

    #[test]
    fn an_address_without_connections_is_forgotten() {
        let limit = PerIpLimit::new();
        let places: Vec<PeerPlace> = (0..3).filter_map(|_| limit.admit(HOME, 3)).collect();
        let away = limit.admit(AWAY, 3);
        assert_eq!(limit.peers(), 2);
        drop(places);
        assert_eq!(limit.peers(), 1);
        drop(away);
        assert_eq!(limit.peers(), 0);
    }

    #[test]
    fn an_ipv4_mapped_address_counts_as_its_ipv4_address() {
        let limit = PerIpLimit::new();
        let mapped = IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped());
        let place = limit.admit(mapped, 1);
        assert!(place.is_some());
        assert!(limit.admit(HOME, 1).is_none());
        assert_eq!(limit.open_from(HOME), 1);
        assert!(limit.admit(IpAddr::V6(Ipv6Addr::LOCALHOST), 1).is_some());
        drop(place);
        assert_eq!(limit.open_from(mapped), 0);
    }

    #[test]
    fn a_refused_address_leaves_no_entry() {
        let limit = PerIpLimit::new();
        assert!(limit.admit(HOME, 0).is_none());
        assert_eq!(limit.peers(), 0);
    }
}

//! What the server reads from ferric's inventory ([`Backend`]) and where it
//! keeps leases ([`LeaseStore`]), with in-memory implementations.
//!
//! Both traits are synchronous and called from the protocol core, never
//! across socket I/O: implementations lock only inside each call.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::config::AddressRange;
use crate::packet::MacAddr;

/// What ferric knows about a MAC (a port of an enrolled node).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reservation {
    /// Fixed address; `None` leases one from the network's ranges.
    pub ip: Option<Ipv4Addr>,
    /// Host name (option 12).
    pub hostname: Option<String>,
    /// Whether the node should network-boot now (boot options sent).
    pub pxe_enabled: bool,
    /// Overrides the configured iPXE script URL template for this node.
    pub ipxe_script_url: Option<String>,
}

/// Narrow read interface to ferric's inventory.
pub trait Backend: Send + Sync {
    /// The reservation for `mac`; `None`: unknown, the server stays silent.
    fn lookup(&self, mac: MacAddr) -> Option<Reservation>;
}

/// A fixed map from MAC to reservation.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    reservations: HashMap<MacAddr, Reservation>,
}

impl MemoryBackend {
    /// An empty backend (every MAC unknown).
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }

    /// Adds or replaces a reservation.
    pub fn insert(&mut self, mac: MacAddr, reservation: Reservation) {
        self.reservations.insert(mac, reservation);
    }
}

impl Backend for MemoryBackend {
    fn lookup(&self, mac: MacAddr) -> Option<Reservation> {
        self.reservations.get(&mac).cloned()
    }
}

/// Relay agent information (option 82) seen with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayInfo {
    /// The relay's address.
    pub giaddr: Ipv4Addr,
    /// Sub-option 1.
    pub circuit_id: Option<Vec<u8>>,
    /// Sub-option 2.
    pub remote_id: Option<Vec<u8>>,
}

/// Where a lease is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// OFFERed, not yet REQUESTed.
    Offered,
    /// ACKed.
    Bound,
}

/// An address bound (or offered) to a MAC until `expires`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Client.
    pub mac: MacAddr,
    /// Address.
    pub ip: Ipv4Addr,
    /// Expiry, in seconds since the Unix epoch.
    pub expires: u64,
    /// Offered or bound.
    pub state: LeaseState,
    /// Host name given to the client, if any.
    pub hostname: Option<String>,
    /// Relay information, for relayed clients.
    pub relay: Option<RelayInfo>,
}

/// Why a lease was not recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// Another client holds the address (or it was declined).
    #[error("address {0} is in use")]
    InUse(Ipv4Addr),
    /// The store failed.
    #[error("lease store failed: {0}")]
    Store(String),
}

/// Lease bookkeeping. Each call must be atomic: two servers sharing a
/// database must never record the same address for two MACs.
pub trait LeaseStore: Send + Sync {
    /// The lease recorded for `mac`, active or expired.
    fn find(&self, mac: MacAddr) -> Option<Lease>;
    /// Records `lease` (replacing the MAC's previous one), unless another
    /// MAC's unexpired lease or a decline holds its address at `now`.
    fn claim(&self, lease: Lease, now: u64) -> Result<(), LeaseError>;
    /// Records `template` at the lowest address of `ranges` that is free at
    /// `now` and returns that address; `None` when the ranges are full.
    fn allocate(&self, ranges: &[AddressRange], template: Lease, now: u64) -> Option<Ipv4Addr>;
    /// Removes `mac`'s lease if it is for `ip`.
    fn release(&self, mac: MacAddr, ip: Ipv4Addr);
    /// Keeps `ip` out of use until `until` and drops `mac`'s lease of it.
    fn decline(&self, mac: MacAddr, ip: Ipv4Addr, until: u64);
}

#[derive(Debug, Default)]
struct MemoryState {
    by_mac: HashMap<MacAddr, Lease>,
    by_ip: HashMap<Ipv4Addr, MacAddr>,
    declined: HashMap<Ipv4Addr, u64>,
    /// Next-fit cursor per range (first, last): where the last search ended,
    /// so allocation does not rescan the leased prefix of a range each time.
    cursors: HashMap<(u32, u32), u32>,
}

impl MemoryState {
    fn free(&self, ip: Ipv4Addr, mac: MacAddr, now: u64) -> bool {
        if self.declined.get(&ip).is_some_and(|&until| until > now) {
            return false;
        }
        match self.by_ip.get(&ip).and_then(|holder| self.by_mac.get(holder)) {
            Some(lease) => lease.mac == mac || lease.expires <= now,
            None => true,
        }
    }

    fn record(&mut self, lease: Lease) {
        if let Some(old) = self.by_mac.get(&lease.mac) {
            if old.ip != lease.ip && self.by_ip.get(&old.ip) == Some(&lease.mac) {
                self.by_ip.remove(&old.ip);
            }
        }
        if let Some(previous) = self.by_ip.insert(lease.ip, lease.mac) {
            if previous != lease.mac {
                self.by_mac.remove(&previous);
            }
        }
        self.declined.remove(&lease.ip);
        self.by_mac.insert(lease.mac, lease);
    }
}

/// Leases in memory (lost on restart).
#[derive(Debug, Default)]
pub struct MemoryLeases {
    state: Mutex<MemoryState>,
}

impl MemoryLeases {
    /// An empty store.
    pub fn new() -> MemoryLeases {
        MemoryLeases::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every recorded lease, for inspection.
    pub fn all(&self) -> Vec<Lease> {
        self.lock().by_mac.values().cloned().collect()
    }

    /// Records `lease` without checking who holds its address: for loading
    /// leases saved by an earlier run, which were consistent when saved.
    pub fn restore(&self, lease: Lease) {
        self.lock().record(lease);
    }

    /// Keeps `ip` out of use until `until`: for loading declines saved by an
    /// earlier run.
    pub fn restore_decline(&self, ip: Ipv4Addr, until: u64) {
        self.lock().declined.insert(ip, until);
    }
}

impl LeaseStore for MemoryLeases {
    fn find(&self, mac: MacAddr) -> Option<Lease> {
        self.lock().by_mac.get(&mac).cloned()
    }

    fn claim(&self, lease: Lease, now: u64) -> Result<(), LeaseError> {
        let mut state = self.lock();
        if !state.free(lease.ip, lease.mac, now) {
            return Err(LeaseError::InUse(lease.ip));
        }
        state.record(lease);
        Ok(())
    }

    fn allocate(&self, ranges: &[AddressRange], template: Lease, now: u64) -> Option<Ipv4Addr> {
        let mut state = self.lock();
        for range in ranges {
            let (first, last) = (u32::from(range.first), u32::from(range.last));
            if first > last {
                continue;
            }
            // Next fit: from the cursor to the end, then from the start.
            let start =
                state.cursors.get(&(first, last)).copied().filter(|c| (first..=last).contains(c));
            let start = start.unwrap_or(first);
            for raw in (start..=last).chain(first..start) {
                let ip = Ipv4Addr::from(raw);
                if state.free(ip, template.mac, now) {
                    state.cursors.insert((first, last), raw.checked_add(1).unwrap_or(first));
                    state.record(Lease { ip, ..template });
                    return Some(ip);
                }
            }
        }
        None
    }

    fn release(&self, mac: MacAddr, ip: Ipv4Addr) {
        let mut state = self.lock();
        if state.by_mac.get(&mac).is_some_and(|l| l.ip == ip) {
            state.by_mac.remove(&mac);
            state.by_ip.remove(&ip);
        }
    }

    fn decline(&self, mac: MacAddr, ip: Ipv4Addr, until: u64) {
        let mut state = self.lock();
        if state.by_mac.get(&mac).is_some_and(|l| l.ip == ip) {
            state.by_mac.remove(&mac);
        }
        state.by_ip.remove(&ip);
        state.declined.insert(ip, until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(last: u8, ip: Ipv4Addr, expires: u64) -> Lease {
        Lease {
            mac: MacAddr([0x52, 0x54, 0, 0, 0, last]),
            ip,
            expires,
            state: LeaseState::Bound,
            hostname: None,
            relay: None,
        }
    }

    #[test]
    fn restored_leases_and_declines_hold_their_addresses() {
        let leases = MemoryLeases::new();
        let range = AddressRange {
            first: Ipv4Addr::new(198, 18, 0, 100),
            last: Ipv4Addr::new(198, 18, 0, 103),
        };
        leases.restore(lease(1, Ipv4Addr::new(198, 18, 0, 100), 1_000));
        leases.restore(lease(2, Ipv4Addr::new(198, 18, 0, 101), 1_000));
        leases.restore_decline(Ipv4Addr::new(198, 18, 0, 102), 1_000);
        assert_eq!(leases.find(MacAddr([0x52, 0x54, 0, 0, 0, 2])).map(|l| l.expires), Some(1_000));
        let template = lease(3, Ipv4Addr::UNSPECIFIED, 500);
        assert_eq!(
            leases.allocate(&[range], template.clone(), 10),
            Some(Ipv4Addr::new(198, 18, 0, 103))
        );
        assert_eq!(
            leases.claim(lease(4, Ipv4Addr::new(198, 18, 0, 101), 500), 10),
            Err(LeaseError::InUse(Ipv4Addr::new(198, 18, 0, 101)))
        );
    }
}

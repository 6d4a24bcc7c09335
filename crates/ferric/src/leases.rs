//! DHCP leases that survive a restart of `ferric serve`.
//!
//! [`PersistentLeases`] answers every [`LeaseStore`] call from a
//! [`MemoryLeases`] table, which stays the authority: the DHCP server calls
//! it synchronously on the packet path, which must never wait for the
//! database. Each successful change (claim, allocation, release, decline) is
//! sent on an unbounded channel to a writer task that applies it to the
//! store (`dhcp_leases`, `dhcp_declines`) in order. A failed write is logged
//! and skipped; the lease's next change writes it again. Where the store
//! still has another MAC on an address the table has given away (an expired
//! lease), the table wins and that row is removed.
//!
//! At start, [`PersistentLeases::load`] purges expired rows and loads the
//! remaining leases and declines into the table; the writer purges again
//! every [`PURGE_INTERVAL`]. Changes queued at shutdown are written once the
//! DHCP server has stopped; a crash can lose the last few milliseconds.
//!
//! **One DHCP server owns a provisioning network's leases.** The database
//! is a record, not a lock: two ferric DHCP servers on the same network
//! sharing one database would each answer from their own memory and could
//! give the same address to two machines. Run one per network.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferric_dhcp::{
    AddressRange, Lease, LeaseError, LeaseState, LeaseStore, MacAddr, MemoryLeases, RelayInfo,
};
use ferric_store::{DhcpLease, DhcpLeaseState, Store, StoreError};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How often expired leases and declines are deleted from the store.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(600);

/// One change of the memory table, to be written to the store.
#[derive(Debug)]
enum Change {
    /// The MAC holds this lease now.
    Upsert(Lease),
    /// The MAC holds no lease.
    Delete(MacAddr),
    /// Nobody holds `ip`, which is out of use until `until`.
    Decline { ip: Ipv4Addr, until: u64 },
}

/// A [`LeaseStore`] answering from memory and saving to the store.
#[derive(Debug)]
pub struct PersistentLeases {
    memory: MemoryLeases,
    changes: mpsc::UnboundedSender<Change>,
    /// Held across a change and its send, so changes are queued in the
    /// order the table applied them.
    order: Mutex<()>,
}

impl PersistentLeases {
    /// Purges expired rows, loads the rest and starts the writer, which
    /// ends (after writing what is queued) once the returned value is dropped.
    pub async fn load(store: Store) -> Result<(Arc<PersistentLeases>, JoinHandle<()>), StoreError> {
        let now = unix_now();
        let purged = store.dhcp_leases_expire(now).await?;
        let memory = MemoryLeases::new();
        let mut loaded = 0usize;
        for saved in store.dhcp_lease_list().await? {
            if saved.expires > now {
                memory.restore(from_stored(saved));
                loaded += 1;
            }
        }
        for decline in store.dhcp_decline_list().await? {
            if decline.until > now {
                memory.restore_decline(decline.ip, decline.until);
            }
        }
        tracing::info!(loaded, purged, "DHCP leases loaded from the store");
        let (changes, receiver) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write(store, receiver));
        Ok((Arc::new(PersistentLeases { memory, changes, order: Mutex::new(()) }), writer))
    }

    fn ordered(&self) -> MutexGuard<'_, ()> {
        self.order.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn send(&self, change: Change) {
        if let Err(error) = self.changes.send(change) {
            tracing::warn!(change = ?error.0, "DHCP lease writer has stopped; change not saved");
        }
    }
}

impl LeaseStore for PersistentLeases {
    fn find(&self, mac: MacAddr) -> Option<Lease> {
        self.memory.find(mac)
    }

    fn claim(&self, lease: Lease, now: u64) -> Result<(), LeaseError> {
        let _order = self.ordered();
        self.memory.claim(lease.clone(), now)?;
        self.send(Change::Upsert(lease));
        Ok(())
    }

    fn allocate(&self, ranges: &[AddressRange], template: Lease, now: u64) -> Option<Ipv4Addr> {
        let _order = self.ordered();
        let ip = self.memory.allocate(ranges, template.clone(), now)?;
        self.send(Change::Upsert(Lease { ip, ..template }));
        Some(ip)
    }

    fn release(&self, mac: MacAddr, ip: Ipv4Addr) {
        let _order = self.ordered();
        if self.memory.find(mac).is_some_and(|lease| lease.ip == ip) {
            self.memory.release(mac, ip);
            self.send(Change::Delete(mac));
        }
    }

    fn decline(&self, mac: MacAddr, ip: Ipv4Addr, until: u64) {
        let _order = self.ordered();
        self.memory.decline(mac, ip, until);
        self.send(Change::Decline { ip, until });
    }
}

/// The writer: applies changes in order and purges periodically, until
/// every sender is gone and the queue is empty.
async fn write(store: Store, mut changes: mpsc::UnboundedReceiver<Change>) {
    let start = tokio::time::Instant::now() + PURGE_INTERVAL;
    let mut purge = tokio::time::interval_at(start, PURGE_INTERVAL);
    purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            change = changes.recv() => match change {
                Some(change) => apply(&store, change).await,
                None => return,
            },
            _ = purge.tick() => match store.dhcp_leases_expire(unix_now()).await {
                Ok(purged) => tracing::debug!(purged, "expired DHCP leases purged"),
                Err(error) => tracing::warn!(%error, "purging expired DHCP leases failed"),
            },
        }
    }
}

async fn apply(store: &Store, change: Change) {
    let result = match &change {
        Change::Upsert(lease) => upsert(store, lease).await,
        Change::Delete(mac) => store.dhcp_lease_delete(mac.0).await.map(drop),
        Change::Decline { ip, until } => {
            async {
                store.dhcp_lease_delete_ip(*ip).await?;
                store.dhcp_decline_upsert(*ip, *until).await
            }
            .await
        }
    };
    if let Err(error) = result {
        tracing::warn!(%error, ?change, "saving a DHCP lease change failed");
    }
}

/// Writes `lease`; a row of another MAC on its address is stale (the memory
/// table gave the address away), so it goes.
async fn upsert(store: &Store, lease: &Lease) -> Result<(), StoreError> {
    let stored = to_stored(lease);
    match store.dhcp_lease_upsert(&stored).await {
        Err(StoreError::Duplicate { .. }) => {
            store.dhcp_lease_delete_ip(stored.ip).await?;
            store.dhcp_lease_upsert(&stored).await
        }
        other => other,
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn to_stored(lease: &Lease) -> DhcpLease {
    DhcpLease {
        mac: lease.mac.0,
        ip: lease.ip,
        expires: lease.expires,
        state: match lease.state {
            LeaseState::Offered => DhcpLeaseState::Offered,
            LeaseState::Bound => DhcpLeaseState::Bound,
        },
        hostname: lease.hostname.clone(),
        relay: lease.relay.as_ref().map(|relay| {
            json!({
                "giaddr": relay.giaddr.to_string(),
                "circuit_id": relay.circuit_id.as_deref().map(hex),
                "remote_id": relay.remote_id.as_deref().map(hex),
            })
        }),
    }
}

fn from_stored(saved: DhcpLease) -> Lease {
    let relay = saved.relay.as_ref().and_then(|relay| {
        let decoded = relay_from_json(relay);
        if decoded.is_none() {
            tracing::warn!(%relay, "stored DHCP relay information ignored: not understood");
        }
        decoded
    });
    Lease {
        mac: MacAddr(saved.mac),
        ip: saved.ip,
        expires: saved.expires,
        state: match saved.state {
            DhcpLeaseState::Offered => LeaseState::Offered,
            DhcpLeaseState::Bound => LeaseState::Bound,
        },
        hostname: saved.hostname,
        relay,
    }
}

fn relay_from_json(relay: &serde_json::Value) -> Option<RelayInfo> {
    let bytes = |key: &str| match relay.get(key) {
        None | Some(serde_json::Value::Null) => Some(None),
        Some(value) => unhex(value.as_str()?).map(Some),
    };
    Some(RelayInfo {
        giaddr: relay.get("giaddr")?.as_str()?.parse().ok()?,
        circuit_id: bytes("circuit_id")?,
        remote_id: bytes("remote_id")?,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(last: u8, ip: Ipv4Addr, expires: u64) -> Lease {
        Lease {
            mac: MacAddr([0x52, 0x54, 0, 0x18, 0, last]),
            ip,
            expires,
            state: LeaseState::Bound,
            hostname: Some(format!("node-{last}")),
            relay: None,
        }
    }

    const RANGE: AddressRange = AddressRange {
        first: Ipv4Addr::new(198, 18, 0, 100),
        last: Ipv4Addr::new(198, 18, 0, 110),
    };

    #[test]
    fn relay_information_round_trips() {
        let relay = RelayInfo {
            giaddr: Ipv4Addr::new(198, 18, 1, 1),
            circuit_id: Some(vec![0, 1, 0xfe]),
            remote_id: None,
        };
        let original = Lease { relay: Some(relay), ..lease(1, RANGE.first, 10) };
        assert_eq!(from_stored(to_stored(&original)), original);
    }

    #[tokio::test]
    async fn a_reload_sees_every_change() {
        let store = Store::connect("sqlite::memory:").await.expect("store");
        let now = unix_now();
        let later = now + 3600;
        let (leases, writer) = PersistentLeases::load(store.clone()).await.expect("load");
        let first = leases.allocate(&[RANGE], lease(1, Ipv4Addr::UNSPECIFIED, later), now);
        let second = leases.allocate(&[RANGE], lease(2, Ipv4Addr::UNSPECIFIED, later), now);
        assert_eq!((first, second), (Some(RANGE.first), Some(Ipv4Addr::new(198, 18, 0, 101))));
        let third = Ipv4Addr::new(198, 18, 0, 102);
        leases.claim(lease(3, third, later), now).expect("claim");
        leases.release(MacAddr([0x52, 0x54, 0, 0x18, 0, 3]), third);
        leases.decline(MacAddr([0x52, 0x54, 0, 0x18, 0, 4]), third, later);
        // An expired lease is not loaded again.
        leases.claim(lease(5, Ipv4Addr::new(198, 18, 0, 105), now), now).expect("claim");
        drop(leases);
        writer.await.expect("writer");

        let (reloaded, writer) = PersistentLeases::load(store.clone()).await.expect("reload");
        assert_eq!(
            reloaded.find(MacAddr([0x52, 0x54, 0, 0x18, 0, 2])),
            Some(lease(2, Ipv4Addr::new(198, 18, 0, 101), later))
        );
        assert_eq!(reloaded.find(MacAddr([0x52, 0x54, 0, 0x18, 0, 3])), None);
        assert_eq!(reloaded.find(MacAddr([0x52, 0x54, 0, 0x18, 0, 5])), None);
        let next = reloaded.allocate(&[RANGE], lease(6, Ipv4Addr::UNSPECIFIED, later), now);
        assert_eq!(next, Some(Ipv4Addr::new(198, 18, 0, 103)), "102 is declined");
        drop(reloaded);
        writer.await.expect("writer");
    }
}

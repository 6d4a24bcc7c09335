//! The API's cached view of the conductors: who is alive, which hardware
//! types each can drive, and so which one owns a node. Refreshed from the
//! store at most every [`REFRESH`], so a busy API does not query conductors
//! on every request.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferric_store::Store;
use ferric_types::{HardwareType, InterfaceSupport, Node, Timestamp};
use tokio::sync::RwLock;

use crate::error::ApiError;

const REFRESH: Duration = Duration::from_secs(2);

/// A snapshot of the live conductors.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Alive conductors by hostname, with their conductor group.
    pub alive: BTreeMap<String, String>,
    /// What alive conductors registered.
    pub support: Vec<(String, InterfaceSupport)>,
    /// Bumped whenever `alive` or `support` changes (cache keys use it).
    pub generation: u64,
}

impl Snapshot {
    /// Alive hosts in `group` that registered `driver`.
    pub fn hosts_for(&self, driver: HardwareType, group: &str) -> Vec<String> {
        let mut hosts: Vec<String> = self
            .support
            .iter()
            .filter(|(host, support)| {
                support.hardware_type == driver
                    && self.alive.get(host).is_some_and(|host_group| host_group == group)
            })
            .map(|(host, _)| host.clone())
            .collect();
        hosts.dedup();
        hosts
    }

    /// The conductor that owns `node`, if any can.
    pub fn owner(&self, node: &Node) -> Option<String> {
        let hosts = self.hosts_for(node.driver, &node.conductor_group);
        ferric_types::ring::owner(node.uuid, &hosts).map(str::to_owned)
    }

    /// Interface support for `driver` (from any alive conductor).
    pub fn driver_support(&self, driver: HardwareType) -> Vec<InterfaceSupport> {
        let mut seen = Vec::<InterfaceSupport>::new();
        for (_, support) in &self.support {
            if support.hardware_type == driver
                && !seen.iter().any(|s| s.interface == support.interface)
            {
                seen.push(support.clone());
            }
        }
        seen
    }

    /// Hardware types with the hosts that drive them.
    pub fn drivers(&self) -> BTreeMap<HardwareType, Vec<String>> {
        let mut drivers: BTreeMap<HardwareType, Vec<String>> = BTreeMap::new();
        for (host, support) in &self.support {
            if !self.alive.contains_key(host) {
                continue;
            }
            let hosts = drivers.entry(support.hardware_type).or_default();
            if !hosts.contains(host) {
                hosts.push(host.clone());
            }
        }
        drivers
    }

    /// 503 with no conductors at all, 400 when none drives this node.
    pub fn require_owner(&self, node: &Node) -> Result<String, ApiError> {
        if self.alive.is_empty() {
            return Err(ApiError::Unavailable(
                "No conductor service is running; the request cannot be handled now".into(),
            ));
        }
        self.owner(node).ok_or_else(|| {
            ApiError::bad(format!(
                "No valid host was found. Reason: No conductor service registered which supports \
                 driver {} for conductor group \"{}\".",
                node.driver, node.conductor_group
            ))
        })
    }
}

/// The cache.
pub struct Cluster {
    store: Store,
    heartbeat_timeout: Duration,
    cached: RwLock<(Option<Instant>, Arc<Snapshot>)>,
}

impl Cluster {
    pub fn new(store: Store, heartbeat_timeout: Duration) -> Self {
        Self {
            store,
            heartbeat_timeout,
            cached: RwLock::new((None, Arc::new(Snapshot::default()))),
        }
    }

    /// The current snapshot, refreshed when stale.
    pub async fn snapshot(&self) -> Result<Arc<Snapshot>, ApiError> {
        {
            let cached = self.cached.read().await;
            if cached.0.is_some_and(|at| at.elapsed() < REFRESH) {
                return Ok(cached.1.clone());
            }
        }
        let mut cached = self.cached.write().await;
        if cached.0.is_some_and(|at| at.elapsed() < REFRESH) {
            return Ok(cached.1.clone());
        }
        let mut fresh = self.load().await?;
        let previous = &cached.1;
        fresh.generation = if fresh.alive == previous.alive && fresh.support == previous.support {
            previous.generation
        } else {
            previous.generation + 1
        };
        let snapshot = Arc::new(fresh);
        *cached = (Some(Instant::now()), snapshot.clone());
        Ok(snapshot)
    }

    /// Forgets the cache (after a conductor registered, in tests).
    pub async fn invalidate(&self) {
        self.cached.write().await.0 = None;
    }

    /// Whether a conductor last seen at `updated_at` counts as alive.
    pub fn is_alive(&self, online: bool, updated_at: Option<Timestamp>) -> bool {
        let timeout = i64::try_from(self.heartbeat_timeout.as_secs()).unwrap_or(i64::MAX);
        online && updated_at.is_some_and(|seen| seen.plus_seconds(timeout) > Timestamp::now())
    }

    async fn load(&self) -> Result<Snapshot, ApiError> {
        let conductors = self.store.conductor_list(None, None).await?;
        let alive = conductors
            .into_iter()
            .filter(|c| self.is_alive(c.online, c.updated_at.or(Some(c.created_at))))
            .map(|c| (c.hostname, c.conductor_group))
            .collect();
        let support = self.store.hardware_interfaces().await?;
        Ok(Snapshot { alive, support, generation: 0 })
    }
}

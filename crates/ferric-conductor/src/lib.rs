//! The conductor: the only component that drives hardware.
//!
//! Work arrives as a *pending action* on a node that the API has already
//! moved into its new state and reserved for this conductor (one
//! conditional write; see `ferric-api`). The conductor picks such nodes up —
//! at once when woken through [`ConductorApi::notify`], otherwise by polling
//! the store — and runs each in its own task ([`ops`]): power changes, and
//! provision operations as ordered lists of driver steps. Finishing writes
//! the resulting state and releases the reservation in the same update.
//!
//! Reconcilers ([`periodic`]) keep the fleet honest: a liveness heartbeat,
//! wait-state timeouts, power-state sync, and recovery of nodes left
//! reserved by a crash (ours at start-up, or a dead peer's later), so that
//! no node stays locked or in a working state with nobody working on it.

mod cleaning;
pub mod config;
mod inspection_rules;
mod ops;
mod periodic;
mod record;
mod templates;
mod vifs;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferric_conductor_api::{
    BootDeviceInfo, ConductorApi, ConductorError, InterfaceValidation, ValidationReport, VifAttach,
};
use ferric_driver::hardware::SUPPORTED_HARDWARE_TYPES;
use ferric_driver::{hardware_type_support, DriverError, DriverSet};
use ferric_store::{PortQuery, Store, StoreError};
use ferric_types::{
    BootDevice, HardwareType, InterfaceKind, Node, VirtualMedia, VirtualMediaSlot, VmediaDevice,
};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use uuid::Uuid;

pub use config::{CleanStepSource, ConductorConfig, ImageCatalog};

/// Errors starting or stopping a conductor.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("registering conductor {hostname} failed")]
    Register {
        hostname: String,
        #[source]
        source: StoreError,
    },
    #[error("recovering nodes left by a previous run failed")]
    Recover(#[source] StoreError),
}

pub(crate) struct Inner {
    pub store: Store,
    pub config: ConductorConfig,
    /// Nodes with a task running in this process.
    pub running: Mutex<HashSet<Uuid>>,
    /// Bounds concurrent node operations.
    pub workers: Arc<Semaphore>,
    pub wake: mpsc::UnboundedSender<Uuid>,
    pub shutdown: watch::Receiver<bool>,
    /// Consecutive failed power reads per node.
    pub power_failures: Mutex<BTreeMap<Uuid, u32>>,
}

/// A running conductor. Cheap to clone.
#[derive(Clone)]
pub struct Conductor {
    inner: Arc<Inner>,
    stop: Arc<watch::Sender<bool>>,
    background: Arc<tokio::sync::Mutex<JoinSet<()>>>,
}

impl Conductor {
    /// Registers the conductor, recovers nodes a previous run left behind,
    /// and starts the work loop and reconcilers.
    pub async fn start(store: Store, config: ConductorConfig) -> Result<Conductor, StartError> {
        let interfaces: Vec<_> =
            SUPPORTED_HARDWARE_TYPES.iter().flat_map(|kind| hardware_type_support(*kind)).collect();
        store
            .conductor_register(&config.hostname, &config.conductor_group, &interfaces)
            .await
            .map_err(|source| StartError::Register { hostname: config.hostname.clone(), source })?;
        let (wake_tx, wake_rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = watch::channel(false);
        let inner = Arc::new(Inner {
            store,
            workers: Arc::new(Semaphore::new(config.workers.max(1))),
            config,
            running: Mutex::new(HashSet::new()),
            wake: wake_tx,
            shutdown: stop_rx,
            power_failures: Mutex::new(BTreeMap::new()),
        });
        periodic::recover_own_nodes(&inner).await.map_err(StartError::Recover)?;
        let mut background = JoinSet::new();
        background.spawn(periodic::work_loop(inner.clone(), wake_rx));
        background.spawn(periodic::heartbeat_loop(inner.clone()));
        background.spawn(periodic::sweep_loop(inner.clone()));
        background.spawn(periodic::power_sync_loop(inner.clone()));
        tracing::info!(hostname = %inner.config.hostname, "conductor started");
        Ok(Conductor {
            inner,
            stop: Arc::new(stop_tx),
            background: Arc::new(tokio::sync::Mutex::new(background)),
        })
    }

    pub fn hostname(&self) -> &str {
        &self.inner.config.hostname
    }

    /// Stops taking work, waits (bounded) for running operations, and marks
    /// the conductor offline. Operations still running when the grace period
    /// ends are abandoned; the next start recovers their nodes.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + self.inner.config.graceful_shutdown_timeout;
        loop {
            let busy = self.inner.running.lock().map(|set| set.len()).unwrap_or(0);
            if busy == 0 || tokio::time::Instant::now() >= deadline {
                if busy > 0 {
                    tracing::warn!(busy, "shutting down with operations still running");
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.background.lock().await.abort_all();
        if let Err(error) = self.inner.store.conductor_unregister(&self.inner.config.hostname).await
        {
            tracing::warn!(%error, "could not mark the conductor offline");
        }
    }

    /// Runs the reconcilers once, now (tests and operators' "sync now").
    pub async fn reconcile_now(&self) {
        periodic::sweep_once(&self.inner).await;
        periodic::power_sync_once(&self.inner).await;
    }

    async fn load(&self, node: Uuid) -> Result<Node, ConductorError> {
        self.inner.store.node_get_by_uuid(node).await.map_err(|error| match error {
            StoreError::NotFound { .. } => ConductorError::NodeNotFound { node },
            other => ConductorError::Internal(other.to_string()),
        })
    }

    /// Runs `work` holding the node's exclusive lock for the duration of a
    /// synchronous call (boot device changes).
    async fn with_lock<T, F, Fut>(&self, uuid: Uuid, work: F) -> Result<T, ConductorError>
    where
        F: FnOnce(Node) -> Fut,
        Fut: std::future::Future<Output = Result<(T, Node), ConductorError>>,
    {
        let host = self.inner.config.hostname.clone();
        let mut holder = None;
        let taken = record::update(&self.inner.store, uuid, |node| {
            if node.reservation.is_some() {
                holder = node.reservation.clone();
                return false;
            }
            node.reservation = Some(host.clone());
            true
        })
        .await
        .map_err(|error| match error {
            StoreError::NotFound { .. } => ConductorError::NodeNotFound { node: uuid },
            other => ConductorError::Internal(other.to_string()),
        })?;
        let Some(node) = taken else {
            return Err(ConductorError::NodeLocked {
                node: uuid,
                host: holder.unwrap_or_default(),
            });
        };
        let outcome = work(node).await;
        let changed = outcome.as_ref().ok().map(|(_, node)| node.clone());
        let released = record::update(&self.inner.store, uuid, |fresh| {
            if let Some(changed) = &changed {
                record::copy_driver_fields(changed, fresh);
            }
            if fresh.reservation.as_deref() == Some(host.as_str()) && fresh.pending_action.is_none()
            {
                fresh.reservation = None;
            }
            true
        })
        .await;
        if let Err(error) = released {
            tracing::error!(node = %uuid, %error, "could not release node lock");
        }
        outcome.map(|(value, _)| value)
    }
}

fn store_error(error: StoreError) -> ConductorError {
    ConductorError::Internal(error.to_string())
}

impl Conductor {
    /// The node's ports and portgroups.
    async fn port_likes(
        &self,
        node: Uuid,
    ) -> Result<(Vec<ferric_types::Port>, Vec<ferric_types::Portgroup>), ConductorError> {
        let query = PortQuery { node_uuid: Some(node), ..PortQuery::default() };
        let ports = self.inner.store.port_list(&query).await.map_err(store_error)?;
        let groups = self.inner.store.portgroup_list(&query).await.map_err(store_error)?;
        Ok((ports, groups))
    }

    /// Sets (`Some`) or clears the tenant VIF of a port or portgroup.
    async fn write_vif(
        &self,
        target: vifs::Target,
        vif: Option<&str>,
    ) -> Result<(), ConductorError> {
        let apply = |info: &mut ferric_types::JsonObject| match vif {
            Some(id) => {
                info.insert(vifs::TENANT_VIF_KEY.into(), id.into());
            }
            None => {
                info.remove(vifs::TENANT_VIF_KEY);
            }
        };
        let store = &self.inner.store;
        match target {
            vifs::Target::Port(uuid) => {
                // Conditional on the port being unchanged since it was read
                // (an operator's PATCH may land meanwhile): re-read on a
                // lost race.
                let mut attempts = 0;
                loop {
                    let mut port = store.port_get(uuid).await.map_err(store_error)?;
                    apply(&mut port.internal_info);
                    match store.ports_update_for_node(port.node_uuid, &[port]).await {
                        Err(StoreError::Stale { .. }) if attempts < 10 => {
                            attempts += 1;
                        }
                        other => {
                            other.map_err(store_error)?;
                            break;
                        }
                    }
                }
            }
            vifs::Target::Portgroup(uuid) => {
                // The same for a portgroup.
                let mut attempts = 0;
                loop {
                    let mut group =
                        store.portgroup_get(&uuid.to_string()).await.map_err(store_error)?;
                    apply(&mut group.internal_info);
                    match store.portgroup_update(&group).await {
                        Err(StoreError::Stale { .. }) if attempts < 10 => {
                            attempts += 1;
                        }
                        other => {
                            other.map_err(store_error)?;
                            break;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn driver_error(error: DriverError) -> ConductorError {
    match error {
        DriverError::Timeout(_) | DriverError::Hardware(_) => {
            ConductorError::HardwareUnavailable(error.to_string())
        }
        DriverError::Unsupported { .. } | DriverError::UnsupportedImplementation { .. } => {
            ConductorError::Unsupported(error.to_string())
        }
        DriverError::MissingInfo { .. }
        | DriverError::InvalidInfo { .. }
        | DriverError::InvalidStepArgs { .. } => ConductorError::Invalid(error.to_string()),
    }
}

#[async_trait::async_trait]
impl ConductorApi for Conductor {
    fn notify(&self, node: Uuid) {
        let _ = self.inner.wake.send(node);
    }

    async fn validate(&self, uuid: Uuid) -> Result<ValidationReport, ConductorError> {
        let node = self.load(uuid).await?;
        let mut report = ValidationReport::new();
        match DriverSet::load(&node) {
            Ok(drivers) => {
                for interface in drivers.all() {
                    let kind = interface.kind();
                    let implementation = node.interfaces.get(kind);
                    // `no-*` implementations mean "this node has no such
                    // interface": reported as not supported, like Ironic.
                    let entry = match implementation.filter(|i| i.as_str().starts_with("no-")) {
                        Some(none) => InterfaceValidation {
                            result: None,
                            reason: Some(format!("not supported: {kind} interface is {none}")),
                        },
                        None => match interface.validate(&node) {
                            Ok(()) => InterfaceValidation { result: Some(true), reason: None },
                            Err(error) => InterfaceValidation {
                                result: Some(false),
                                reason: Some(error.to_string()),
                            },
                        },
                    };
                    report.insert(kind, entry);
                }
            }
            Err(error) => {
                for kind in InterfaceKind::ALL {
                    report.insert(
                        kind,
                        InterfaceValidation {
                            result: Some(false),
                            reason: Some(error.to_string()),
                        },
                    );
                }
            }
        }
        Ok(report)
    }

    async fn get_boot_device(&self, uuid: Uuid) -> Result<BootDeviceInfo, ConductorError> {
        let node = self.load(uuid).await?;
        let drivers = DriverSet::load(&node).map_err(driver_error)?;
        let (boot_device, persistent) =
            drivers.management.get_boot_device(&node).await.map_err(driver_error)?;
        Ok(BootDeviceInfo { boot_device, persistent })
    }

    async fn set_boot_device(
        &self,
        uuid: Uuid,
        device: BootDevice,
        persistent: bool,
    ) -> Result<(), ConductorError> {
        self.with_lock(uuid, |mut node| async move {
            let drivers = DriverSet::load(&node).map_err(driver_error)?;
            if !drivers.management.supported_boot_devices(&node).contains(&device) {
                return Err(ConductorError::Invalid(format!(
                    "Boot device \"{device}\" is not supported by node {uuid}'s management interface"
                )));
            }
            drivers
                .management
                .set_boot_device(&mut node, device, persistent)
                .await
                .map_err(driver_error)?;
            Ok(((), node))
        })
        .await
    }

    async fn supported_boot_devices(&self, uuid: Uuid) -> Result<Vec<BootDevice>, ConductorError> {
        let node = self.load(uuid).await?;
        let drivers = DriverSet::load(&node).map_err(driver_error)?;
        Ok(drivers.management.supported_boot_devices(&node))
    }

    async fn driver_properties(
        &self,
        hardware_type: HardwareType,
    ) -> Result<BTreeMap<String, String>, ConductorError> {
        let node = Node::new(Uuid::nil(), hardware_type, ferric_types::ProvisionState::Enroll);
        let drivers = DriverSet::load(&node).map_err(driver_error)?;
        Ok(drivers
            .all()
            .iter()
            .flat_map(|interface| interface.properties())
            .map(|(key, description)| (key.to_owned(), description.to_owned()))
            .collect())
    }

    async fn vif_attach(&self, uuid: Uuid, vif: VifAttach) -> Result<(), ConductorError> {
        self.with_lock(uuid, |node| async move {
            let (ports, groups) = self.port_likes(uuid).await?;
            let target = vifs::choose(&vif, &ports, &groups)?;
            self.write_vif(target, Some(&vif.id)).await?;
            tracing::info!(node = %uuid, vif = %vif.id, ?target, "VIF attached");
            Ok(((), node))
        })
        .await
    }

    async fn vif_detach(&self, uuid: Uuid, vif_id: &str) -> Result<(), ConductorError> {
        self.with_lock(uuid, |node| async move {
            let (ports, groups) = self.port_likes(uuid).await?;
            let holder = ports
                .iter()
                .find(|p| vifs::list(std::slice::from_ref(*p), &[]).iter().any(|v| v == vif_id))
                .map(|p| vifs::Target::Port(p.uuid))
                .or_else(|| {
                    groups
                        .iter()
                        .find(|g| {
                            vifs::list(&[], std::slice::from_ref(*g)).iter().any(|v| v == vif_id)
                        })
                        .map(|g| vifs::Target::Portgroup(g.uuid))
                })
                .ok_or_else(|| {
                    ConductorError::Invalid(format!(
                        "Unable to detach VIF {vif_id} from node {uuid} because it is not \
                         attached to it."
                    ))
                })?;
            self.write_vif(holder, None).await?;
            tracing::info!(node = %uuid, vif = %vif_id, "VIF detached");
            Ok(((), node))
        })
        .await
    }

    async fn attach_virtual_media(
        &self,
        uuid: Uuid,
        media: VirtualMedia,
    ) -> Result<(), ConductorError> {
        self.with_lock(uuid, |mut node| async move {
            let drivers = DriverSet::load(&node).map_err(driver_error)?;
            drivers.management.validate(&node).map_err(driver_error)?;
            // Ironic accepts the request and fails later, in the background
            // (the error lands in the node's history); refusing at once
            // tells the caller.
            drivers
                .management
                .attach_virtual_media(&mut node, &media)
                .await
                .map_err(|error| vmedia_error(&node, "attach_virtual_media", error))?;
            Ok(((), node))
        })
        .await
    }

    async fn get_virtual_media(&self, uuid: Uuid) -> Result<Vec<VirtualMediaSlot>, ConductorError> {
        // A read: no exclusive lock, as in Ironic (a shared one there).
        let node = self.load(uuid).await?;
        let drivers = DriverSet::load(&node).map_err(driver_error)?;
        drivers.management.validate(&node).map_err(driver_error)?;
        drivers
            .management
            .get_virtual_media(&node)
            .await
            .map_err(|error| vmedia_error(&node, "get_virtual_media", error))
    }

    async fn detach_virtual_media(
        &self,
        uuid: Uuid,
        devices: Vec<VmediaDevice>,
    ) -> Result<(), ConductorError> {
        self.with_lock(uuid, |mut node| async move {
            let drivers = DriverSet::load(&node).map_err(driver_error)?;
            drivers.management.validate(&node).map_err(driver_error)?;
            drivers
                .management
                .detach_virtual_media(&mut node, &devices)
                .await
                .map_err(|error| vmedia_error(&node, "detach_virtual_media", error))?;
            Ok(((), node))
        })
        .await
    }
}

/// Ironic's wording for a driver without virtual media support.
fn vmedia_error(node: &Node, extension: &str, error: DriverError) -> ConductorError {
    match error {
        DriverError::Unsupported { .. } => ConductorError::Unsupported(format!(
            "Driver {} does not support {extension} (disabled or not implemented).",
            node.driver
        )),
        other => driver_error(other),
    }
}

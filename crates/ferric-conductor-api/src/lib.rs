//! The conductor as the API server sees it.
//!
//! The API server records intent in the store and returns; everything that
//! needs a driver goes through [`ConductorApi`]. In `ferric serve` the
//! conductor implements it in-process; a remote implementation can carry the
//! same calls between machines. **Invariant:** `ferric-api` depends on this
//! crate, never on `ferric-driver` or `ferric-conductor`.

use std::collections::BTreeMap;

use ferric_types::{
    BootDevice, HardwareType, InterfaceKind, VirtualMedia, VirtualMediaSlot, VmediaDevice,
};
use serde::Serialize;
use uuid::Uuid;

/// Result of validating one interface of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterfaceValidation {
    /// `Some(true)` valid, `Some(false)` invalid, `None` not supported.
    pub result: Option<bool>,
    /// Why it is invalid or unsupported.
    pub reason: Option<String>,
}

/// Validation of every interface of a node.
pub type ValidationReport = BTreeMap<InterfaceKind, InterfaceValidation>;

/// The boot device as the BMC reports it; `None` where it cannot tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootDeviceInfo {
    pub boot_device: Option<BootDevice>,
    pub persistent: Option<bool>,
}

/// Why a conductor call failed. The API server maps each to an HTTP status
/// in one place.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConductorError {
    #[error("node {node} could not be found")]
    NodeNotFound { node: Uuid },
    #[error(
        "node {node} is locked by host {host}, please retry after the current operation is completed"
    )]
    NodeLocked { node: Uuid, host: String },
    /// The request conflicts with the node's current configuration (a VIF
    /// already attached).
    #[error("{0}")]
    Conflict(String),
    /// The request is wrong for this node (bad argument, unsupported device).
    #[error("{0}")]
    Invalid(String),
    /// The driver does not support the operation.
    #[error("{0}")]
    Unsupported(String),
    /// The hardware failed or did not answer in time; retrying may help.
    #[error("{0}")]
    HardwareUnavailable(String),
    /// No conductor can take the node now.
    #[error("{0}")]
    NoConductor(String),
    /// Anything else: a bug or a store failure.
    #[error("{0}")]
    Internal(String),
}

/// A VIF to attach (`POST /v1/nodes/{node}/vifs`): its id, and optionally
/// the port or portgroup to attach it to (API 1.67).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VifAttach {
    pub id: String,
    pub port_uuid: Option<Uuid>,
    pub portgroup_uuid: Option<Uuid>,
}

/// The calls an API server makes to the conductor that owns a node.
#[async_trait::async_trait]
pub trait ConductorApi: Send + Sync {
    /// Work was recorded for `node` (a pending action, with the node reserved
    /// for this conductor): start it now rather than at the next poll.
    fn notify(&self, node: Uuid);

    /// Validates every interface of the node (no hardware is touched).
    async fn validate(&self, node: Uuid) -> Result<ValidationReport, ConductorError>;

    async fn get_boot_device(&self, node: Uuid) -> Result<BootDeviceInfo, ConductorError>;

    async fn set_boot_device(
        &self,
        node: Uuid,
        device: BootDevice,
        persistent: bool,
    ) -> Result<(), ConductorError>;

    async fn supported_boot_devices(&self, node: Uuid) -> Result<Vec<BootDevice>, ConductorError>;

    /// The `driver_info` keys a hardware type's default interfaces read,
    /// with descriptions (`GET /v1/drivers/{name}/properties`).
    async fn driver_properties(
        &self,
        hardware_type: HardwareType,
    ) -> Result<BTreeMap<String, String>, ConductorError>;

    /// Attaches a VIF to a free port or portgroup of the node (stored in
    /// its `internal_info.tenant_vif_port_id`), under the node's lock.
    async fn vif_attach(&self, node: Uuid, vif: VifAttach) -> Result<(), ConductorError>;

    /// Detaches a VIF from whichever port or portgroup of the node holds it.
    async fn vif_detach(&self, node: Uuid, vif_id: &str) -> Result<(), ConductorError>;

    /// Attaches an image as virtual media through the management interface.
    async fn attach_virtual_media(
        &self,
        node: Uuid,
        media: VirtualMedia,
    ) -> Result<(), ConductorError>;

    /// The virtual media slots of the node's BMC and what they hold
    /// (`GET /v1/nodes/{node}/vmedia`).
    async fn get_virtual_media(&self, node: Uuid) -> Result<Vec<VirtualMediaSlot>, ConductorError>;

    /// Detaches virtual media from `devices` (all when empty).
    async fn detach_virtual_media(
        &self,
        node: Uuid,
        devices: Vec<VmediaDevice>,
    ) -> Result<(), ConductorError>;
}

//! ferric's vocabulary, free of I/O: typed names for states, drivers and
//! interfaces, the records the store keeps, input checks, and the pure
//! provision state machine ([`provision`]). Every other crate speaks these
//! types; none of them is a string until it reaches the wire or the store.

pub mod agent;
pub mod allocation;
pub mod driver;
pub mod inspection;
pub mod power;
pub mod provision;
pub mod raid;
pub mod records;
pub mod ring;
pub mod settings;
pub mod templates;
pub mod validate;
pub mod volume;

pub use allocation::{Allocation, AllocationState};
pub use driver::{HardwareType, InterfaceImpl, InterfaceKind, InterfaceSupport};
pub use inspection::{InspectionRule, Phase};
pub use power::{BootDevice, Fault, PowerState, PowerTarget};
pub use provision::{
    apply_event, apply_verb, Event, InvalidTransition, ProvisionState, Transition, Verb,
};
pub use records::{
    Chassis, ConductorRecord, HistoryEvent, Interfaces, JsonObject, Node, PendingAction, Port,
    Portgroup, ProvisionRequest, Severity, Timestamp,
};
pub use settings::{
    BiosSetting, FirmwareComponent, ImageDownloadSource, VirtualMedia, VirtualMediaSlot,
    VmediaDevice,
};
pub use templates::{DeployTemplate, Runbook, RunbookStep, StepInterface, TemplateStep};
pub use volume::{ConnectorType, VolumeConnector, VolumeTarget};

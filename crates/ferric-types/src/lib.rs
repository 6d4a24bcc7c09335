//! ferric's vocabulary, free of I/O: typed names for states, drivers and
//! interfaces, the records the store keeps, input checks, and the pure
//! provision state machine ([`provision`]). Every other crate speaks these
//! types; none of them is a string until it reaches the wire or the store.

pub mod agent;
pub mod driver;
pub mod power;
pub mod provision;
pub mod records;
pub mod ring;
pub mod validate;

pub use driver::{HardwareType, InterfaceImpl, InterfaceKind, InterfaceSupport};
pub use power::{BootDevice, Fault, PowerState, PowerTarget};
pub use provision::{
    apply_event, apply_verb, Event, InvalidTransition, ProvisionState, Transition, Verb,
};
pub use records::{
    Chassis, ConductorRecord, HistoryEvent, Interfaces, JsonObject, Node, PendingAction, Port,
    Portgroup, ProvisionRequest, Severity, Timestamp,
};

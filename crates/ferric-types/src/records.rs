//! The records ferric keeps: nodes, ports, portgroups, chassis, conductors
//! and node history. These are the store's rows in Rust form; how they look
//! on the wire (masking, microversion gating, links) is the API's business.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::driver::{HardwareType, InterfaceImpl, InterfaceKind};
use crate::power::{Fault, PowerState, PowerTarget};
use crate::provision::{ProvisionState, Verb};

/// A JSON object, the type of Ironic's dict fields (`driver_info`, `extra`, ...).
pub type JsonObject = Map<String, Value>;

/// A point in time, always UTC, written the way Ironic writes it
/// (`2026-11-25T23:18:52.123456+00:00`). The text form has a fixed width, so
/// sorting the text sorts the times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    pub fn now() -> Self {
        let now = OffsetDateTime::now_utc();
        // Keep microseconds only, so a value survives a text round trip.
        let micros = now.microsecond();
        Self(now.replace_microsecond(micros).unwrap_or(now))
    }

    pub fn from_offset_date_time(value: OffsetDateTime) -> Self {
        Self(value.to_offset(time::UtcOffset::UTC))
    }

    pub fn as_offset_date_time(self) -> OffsetDateTime {
        self.0
    }

    pub fn unix_seconds(self) -> i64 {
        self.0.unix_timestamp()
    }

    /// The fixed-width text form used on the wire and in the store.
    pub fn to_text(self) -> String {
        let d = self.0;
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}+00:00",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            d.second(),
            d.microsecond()
        )
    }

    /// Parses RFC 3339 text (the form [`Timestamp::to_text`] writes, or any
    /// other offset).
    pub fn parse(text: &str) -> Option<Self> {
        OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(Self::from_offset_date_time)
    }

    pub fn plus_seconds(self, seconds: i64) -> Self {
        Self(self.0 + time::Duration::seconds(seconds))
    }

    pub fn plus_micros(self, micros: i64) -> Self {
        Self(self.0 + time::Duration::microseconds(micros))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_text())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| serde::de::Error::custom("invalid timestamp"))
    }
}

/// The implementation chosen for each interface of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interfaces(pub BTreeMap<InterfaceKind, InterfaceImpl>);

impl Interfaces {
    pub fn get(&self, kind: InterfaceKind) -> Option<InterfaceImpl> {
        self.0.get(&kind).copied()
    }

    pub fn set(&mut self, kind: InterfaceKind, implementation: InterfaceImpl) {
        self.0.insert(kind, implementation);
    }
}

/// Work the API accepted for a node and a conductor has yet to finish. It is
/// written in the same update that reserves the node, and cleared in the same
/// update that releases it, so a node is never reserved without a reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PendingAction {
    /// A provision verb, with the arguments the verb came with.
    Provision(ProvisionRequest),
    /// A power change.
    Power { target: PowerTarget, timeout_seconds: Option<u64> },
    /// The node's ramdisk agent called back (heartbeat) while the node waits
    /// for it: continue the operation that is waiting.
    AgentCallback,
}

/// A provision verb and its arguments, as accepted by the API.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProvisionRequest {
    pub verb: Option<Verb>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configdrive: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_steps: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_steps: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_steps: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescue_password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_ramdisk: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
}

/// A bare-metal node.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The store's row id: the default sort key, never shown.
    pub id: i64,
    /// Bumped by every write; updates are conditional on it, so two writers
    /// never silently overwrite each other.
    pub version: i64,
    pub uuid: Uuid,
    pub name: Option<String>,
    pub driver: HardwareType,
    pub driver_info: JsonObject,
    pub driver_internal_info: JsonObject,
    pub properties: JsonObject,
    pub instance_info: JsonObject,
    pub instance_uuid: Option<String>,
    pub instance_name: Option<String>,
    pub chassis_uuid: Option<Uuid>,
    pub extra: JsonObject,
    pub power_state: Option<PowerState>,
    pub target_power_state: Option<PowerTarget>,
    pub provision_state: ProvisionState,
    pub target_provision_state: Option<ProvisionState>,
    pub provision_updated_at: Option<Timestamp>,
    pub maintenance: bool,
    pub maintenance_reason: Option<String>,
    pub fault: Option<Fault>,
    pub last_error: Option<String>,
    /// The conductor holding the node's exclusive lock.
    pub reservation: Option<String>,
    pub console_enabled: bool,
    pub inspection_started_at: Option<Timestamp>,
    pub inspection_finished_at: Option<Timestamp>,
    pub clean_step: JsonObject,
    pub deploy_step: JsonObject,
    pub service_step: JsonObject,
    pub raid_config: JsonObject,
    pub target_raid_config: JsonObject,
    pub interfaces: Interfaces,
    pub resource_class: Option<String>,
    pub traits: Vec<String>,
    pub conductor_group: String,
    pub automated_clean: Option<bool>,
    pub protected: bool,
    pub protected_reason: Option<String>,
    pub owner: Option<String>,
    pub lessee: Option<String>,
    pub description: Option<String>,
    pub allocation_uuid: Option<Uuid>,
    pub retired: bool,
    pub retired_reason: Option<String>,
    pub network_data: JsonObject,
    pub boot_mode: Option<String>,
    pub secure_boot: Option<bool>,
    pub shard: Option<String>,
    pub parent_node: Option<String>,
    pub disable_power_off: bool,
    pub health: Option<String>,
    /// The conductor that last worked on the node.
    pub conductor_affinity: Option<String>,
    pub pending_action: Option<PendingAction>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

impl Node {
    /// A node as enrolled: everything empty but what identifies it.
    pub fn new(uuid: Uuid, driver: HardwareType, provision_state: ProvisionState) -> Self {
        Self {
            id: 0,
            version: 0,
            uuid,
            name: None,
            driver,
            driver_info: JsonObject::new(),
            driver_internal_info: JsonObject::new(),
            properties: JsonObject::new(),
            instance_info: JsonObject::new(),
            instance_uuid: None,
            instance_name: None,
            chassis_uuid: None,
            extra: JsonObject::new(),
            power_state: None,
            target_power_state: None,
            provision_state,
            target_provision_state: None,
            provision_updated_at: None,
            maintenance: false,
            maintenance_reason: None,
            fault: None,
            last_error: None,
            reservation: None,
            console_enabled: false,
            inspection_started_at: None,
            inspection_finished_at: None,
            clean_step: JsonObject::new(),
            deploy_step: JsonObject::new(),
            service_step: JsonObject::new(),
            raid_config: JsonObject::new(),
            target_raid_config: JsonObject::new(),
            interfaces: Interfaces::default(),
            resource_class: None,
            traits: Vec::new(),
            conductor_group: String::new(),
            automated_clean: None,
            protected: false,
            protected_reason: None,
            owner: None,
            lessee: None,
            description: None,
            allocation_uuid: None,
            retired: false,
            retired_reason: None,
            network_data: JsonObject::new(),
            boot_mode: None,
            secure_boot: None,
            shard: None,
            parent_node: None,
            disable_power_off: false,
            health: None,
            conductor_affinity: None,
            pending_action: None,
            created_at: Timestamp::now(),
            updated_at: None,
        }
    }
}

/// A network port of a node, known by its MAC address.
#[derive(Debug, Clone, PartialEq)]
pub struct Port {
    pub id: i64,
    pub uuid: Uuid,
    pub address: String,
    pub node_uuid: Uuid,
    pub portgroup_uuid: Option<Uuid>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub extra: JsonObject,
    pub internal_info: JsonObject,
    pub local_link_connection: JsonObject,
    pub pxe_enabled: bool,
    pub physical_network: Option<String>,
    pub is_smartnic: bool,
    pub vendor: Option<String>,
    pub category: Option<String>,
    pub available_for_dynamic_portgroup: bool,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

impl Port {
    pub fn new(uuid: Uuid, address: String, node_uuid: Uuid) -> Self {
        Self {
            id: 0,
            uuid,
            address,
            node_uuid,
            portgroup_uuid: None,
            name: None,
            description: None,
            extra: JsonObject::new(),
            internal_info: JsonObject::new(),
            local_link_connection: JsonObject::new(),
            pxe_enabled: true,
            physical_network: None,
            is_smartnic: false,
            vendor: None,
            category: None,
            available_for_dynamic_portgroup: true,
            created_at: Timestamp::now(),
            updated_at: None,
        }
    }
}

/// A group of ports bonded together.
#[derive(Debug, Clone, PartialEq)]
pub struct Portgroup {
    pub id: i64,
    pub uuid: Uuid,
    pub name: Option<String>,
    pub address: Option<String>,
    pub node_uuid: Uuid,
    pub extra: JsonObject,
    pub internal_info: JsonObject,
    pub standalone_ports_supported: bool,
    pub mode: Option<String>,
    pub properties: JsonObject,
    pub physical_network: Option<String>,
    pub category: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

impl Portgroup {
    pub fn new(uuid: Uuid, node_uuid: Uuid) -> Self {
        Self {
            id: 0,
            uuid,
            name: None,
            address: None,
            node_uuid,
            extra: JsonObject::new(),
            internal_info: JsonObject::new(),
            standalone_ports_supported: true,
            mode: None,
            properties: JsonObject::new(),
            physical_network: None,
            category: None,
            created_at: Timestamp::now(),
            updated_at: None,
        }
    }
}

/// A chassis: a grouping of nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Chassis {
    pub id: i64,
    pub uuid: Uuid,
    pub description: Option<String>,
    pub extra: JsonObject,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

/// A registered conductor.
#[derive(Debug, Clone, PartialEq)]
pub struct ConductorRecord {
    pub id: i64,
    pub hostname: String,
    pub conductor_group: String,
    pub online: bool,
    pub drivers: Vec<HardwareType>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

/// Severity of a node history event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "INFO",
            Self::Warning => "WARNING",
            Self::Error => "ERROR",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Info, Self::Warning, Self::Error].into_iter().find(|s| s.as_str() == text)
    }
}

/// One entry in a node's history: an error or a notable change.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEvent {
    pub id: i64,
    pub uuid: Uuid,
    pub node_uuid: Uuid,
    pub severity: Severity,
    pub event: String,
    pub event_type: String,
    pub conductor: Option<String>,
    pub user: Option<String>,
    pub state: Option<ProvisionState>,
    pub target_provision_state: Option<ProvisionState>,
    pub duration_seconds: Option<f64>,
    pub created_at: Timestamp,
}

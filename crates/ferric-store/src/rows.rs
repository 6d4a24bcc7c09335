//! The stored form of each record: one row struct per table (the columns as
//! the database sees them) and the conversions to and from the
//! `ferric-types` records. Enums are stored as their wire strings, JSON
//! values as text, UUIDs and timestamps as text; a stored value that does not
//! decode is [`StoreError::Corrupt`].

use std::fmt::Display;

use ferric_types::{
    AllocationState, Chassis, ConductorRecord, ConnectorType, Fault, HardwareType, HistoryEvent,
    InterfaceImpl, InterfaceKind, Interfaces, Node, Phase, Port, Portgroup, PowerState,
    PowerTarget, ProvisionState, Severity, Timestamp,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use crate::db::{Decodable, Value};
use crate::{Result, StoreError};

/// A column that references another table's `uuid`.
pub(crate) struct Reference {
    pub(crate) column: &'static str,
    /// What the referenced record is called in errors.
    pub(crate) kind: &'static str,
    pub(crate) table: &'static str,
}

/// A row struct of a table with an `id` key and a unique `uuid`.
pub(crate) trait Table: Decodable {
    const TABLE: &'static str;
    /// What the record is called in errors.
    const KIND: &'static str;
    /// Every column but `id`, which the database assigns.
    const COLUMNS: &'static [&'static str];
    const REFERENCES: &'static [Reference];
    fn id(&self) -> i64;
    /// The values of [`Table::COLUMNS`], in order.
    fn into_values(self) -> Vec<Value>;
}

/// Declares a row struct and its [`Table`] impl from one field list, so
/// the struct, the column list and the bind order cannot disagree.
macro_rules! table {
    (
        $(#[$meta:meta])*
        $name:ident in $table:literal, kind $kind:literal,
        references [$($column:literal -> $ref_kind:literal in $ref_table:literal),*],
        { $($field:ident: $ty:ty,)* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, sqlx::FromRow)]
        pub(crate) struct $name {
            pub(crate) id: i64,
            $(pub(crate) $field: $ty,)*
        }

        impl $crate::rows::Table for $name {
            const TABLE: &'static str = $table;
            const KIND: &'static str = $kind;
            const COLUMNS: &'static [&'static str] = &[$(stringify!($field)),*];
            const REFERENCES: &'static [$crate::rows::Reference] =
                &[$($crate::rows::Reference { column: $column, kind: $ref_kind, table: $ref_table }),*];

            fn id(&self) -> i64 {
                self.id
            }

            fn into_values(self) -> Vec<$crate::db::Value> {
                vec![$($crate::db::Value::from(self.$field)),*]
            }
        }
    };
}
pub(crate) use table;

table! {
    NodeRow in "nodes", kind "node",
    references ["chassis_uuid" -> "chassis" in "chassis"],
    {
        version: i64,
        uuid: String,
        name: Option<String>,
        driver: String,
        driver_info: String,
        driver_internal_info: String,
        properties: String,
        instance_info: String,
        instance_uuid: Option<String>,
        instance_name: Option<String>,
        chassis_uuid: Option<String>,
        extra: String,
        power_state: Option<String>,
        target_power_state: Option<String>,
        provision_state: String,
        target_provision_state: Option<String>,
        provision_updated_at: Option<String>,
        maintenance: bool,
        maintenance_reason: Option<String>,
        fault: Option<String>,
        last_error: Option<String>,
        reservation: Option<String>,
        console_enabled: bool,
        inspection_started_at: Option<String>,
        inspection_finished_at: Option<String>,
        clean_step: String,
        deploy_step: String,
        service_step: String,
        raid_config: String,
        target_raid_config: String,
        bios_interface: Option<String>,
        boot_interface: Option<String>,
        console_interface: Option<String>,
        deploy_interface: Option<String>,
        firmware_interface: Option<String>,
        inspect_interface: Option<String>,
        management_interface: Option<String>,
        network_interface: Option<String>,
        power_interface: Option<String>,
        raid_interface: Option<String>,
        rescue_interface: Option<String>,
        storage_interface: Option<String>,
        vendor_interface: Option<String>,
        resource_class: Option<String>,
        traits: String,
        conductor_group: String,
        automated_clean: Option<bool>,
        protected: bool,
        protected_reason: Option<String>,
        owner: Option<String>,
        lessee: Option<String>,
        description: Option<String>,
        allocation_uuid: Option<String>,
        retired: bool,
        retired_reason: Option<String>,
        network_data: String,
        boot_mode: Option<String>,
        secure_boot: Option<bool>,
        shard: Option<String>,
        parent_node: Option<String>,
        disable_power_off: bool,
        health: Option<String>,
        conductor_affinity: Option<String>,
        pending_action: Option<String>,
        created_at: String,
        updated_at: Option<String>,
    }
}

table! {
    PortRow in "ports", kind "port",
    references ["node_uuid" -> "node" in "nodes", "portgroup_uuid" -> "portgroup" in "portgroups"],
    {
        uuid: String,
        address: String,
        node_uuid: String,
        portgroup_uuid: Option<String>,
        name: Option<String>,
        description: Option<String>,
        extra: String,
        internal_info: String,
        local_link_connection: String,
        pxe_enabled: bool,
        physical_network: Option<String>,
        is_smartnic: bool,
        vendor: Option<String>,
        category: Option<String>,
        available_for_dynamic_portgroup: bool,
        created_at: String,
        updated_at: Option<String>,
    }
}

table! {
    PortgroupRow in "portgroups", kind "portgroup",
    references ["node_uuid" -> "node" in "nodes"],
    {
        uuid: String,
        name: Option<String>,
        address: Option<String>,
        node_uuid: String,
        extra: String,
        internal_info: String,
        standalone_ports_supported: bool,
        mode: Option<String>,
        properties: String,
        physical_network: Option<String>,
        category: Option<String>,
        created_at: String,
        updated_at: Option<String>,
    }
}

table! {
    ChassisRow in "chassis", kind "chassis",
    references [],
    {
        uuid: String,
        description: Option<String>,
        extra: String,
        created_at: String,
        updated_at: Option<String>,
    }
}

table! {
    HistoryRow in "node_history", kind "history event",
    references ["node_uuid" -> "node" in "nodes"],
    {
        uuid: String,
        node_uuid: String,
        severity: String,
        event: String,
        event_type: String,
        conductor: Option<String>,
        // `user` is a reserved word in PostgreSQL.
        user_name: Option<String>,
        state: Option<String>,
        target_provision_state: Option<String>,
        duration_seconds: Option<f64>,
        created_at: String,
    }
}

/// A `conductors` row (its drivers live in `conductor_hardware_interfaces`).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ConductorRow {
    pub(crate) id: i64,
    pub(crate) hostname: String,
    pub(crate) conductor_group: String,
    pub(crate) online: bool,
    pub(crate) created_at: String,
    pub(crate) updated_at: Option<String>,
}

pub(crate) const CONDUCTOR_COLUMNS: &str =
    "id, hostname, conductor_group, online, created_at, updated_at";

/// A `conductor_hardware_interfaces` row: one enabled implementation.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct HardwareInterfaceRow {
    pub(crate) conductor: String,
    pub(crate) hardware_type: String,
    pub(crate) interface_type: String,
    pub(crate) implementation: String,
    pub(crate) is_default: bool,
}

// ---- text forms ----

/// A type stored as text.
pub(crate) trait Text: Sized {
    fn to_text(&self) -> String;
    fn from_text(text: &str) -> Option<Self>;
}

macro_rules! wire_text {
    ($($ty:ty),*) => {$(
        impl Text for $ty {
            fn to_text(&self) -> String {
                self.as_str().to_owned()
            }
            fn from_text(text: &str) -> Option<Self> {
                <$ty>::parse(text)
            }
        }
    )*};
}

wire_text!(
    AllocationState,
    ConnectorType,
    Phase,
    HardwareType,
    ProvisionState,
    PowerState,
    PowerTarget,
    Fault,
    InterfaceKind,
    InterfaceImpl,
    Severity
);

impl Text for Uuid {
    fn to_text(&self) -> String {
        self.to_string()
    }
    fn from_text(text: &str) -> Option<Self> {
        Uuid::parse_str(text).ok()
    }
}

impl Text for Timestamp {
    fn to_text(&self) -> String {
        Timestamp::to_text(*self)
    }
    fn from_text(text: &str) -> Option<Self> {
        Timestamp::parse(text)
    }
}

/// A stored value of `what` that does not decode.
pub(crate) fn corrupt(what: &'static str, detail: impl Display) -> StoreError {
    StoreError::Corrupt { what, detail: detail.to_string() }
}

pub(crate) fn text<T: Text>(value: &T) -> String {
    value.to_text()
}

pub(crate) fn opt_text<T: Text>(value: &Option<T>) -> Option<String> {
    value.as_ref().map(Text::to_text)
}

/// Decodes a stored text column; `what` names it in the error.
pub(crate) fn parse<T: Text>(what: &'static str, text: &str) -> Result<T> {
    T::from_text(text).ok_or_else(|| corrupt(what, format!("unexpected value {text:?}")))
}

pub(crate) fn parse_opt<T: Text>(what: &'static str, text: Option<String>) -> Result<Option<T>> {
    text.map(|text| parse(what, &text)).transpose()
}

pub(crate) fn to_json<T: Serialize>(what: &'static str, value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|err| corrupt(what, format!("cannot be encoded: {err}")))
}

pub(crate) fn from_json<T: DeserializeOwned>(what: &'static str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|err| corrupt(what, err))
}

// ---- nodes ----

impl NodeRow {
    pub(crate) fn from_node(node: &Node) -> Result<Self> {
        let interface = |kind| node.interfaces.get(kind).map(|imp| text(&imp));
        Ok(Self {
            id: node.id,
            version: node.version,
            uuid: text(&node.uuid),
            name: node.name.clone(),
            driver: text(&node.driver),
            driver_info: to_json("node driver_info", &node.driver_info)?,
            driver_internal_info: to_json("node driver_internal_info", &node.driver_internal_info)?,
            properties: to_json("node properties", &node.properties)?,
            instance_info: to_json("node instance_info", &node.instance_info)?,
            instance_uuid: node.instance_uuid.clone(),
            instance_name: node.instance_name.clone(),
            chassis_uuid: opt_text(&node.chassis_uuid),
            extra: to_json("node extra", &node.extra)?,
            power_state: opt_text(&node.power_state),
            target_power_state: opt_text(&node.target_power_state),
            provision_state: text(&node.provision_state),
            target_provision_state: opt_text(&node.target_provision_state),
            provision_updated_at: opt_text(&node.provision_updated_at),
            maintenance: node.maintenance,
            maintenance_reason: node.maintenance_reason.clone(),
            fault: opt_text(&node.fault),
            last_error: node.last_error.clone(),
            reservation: node.reservation.clone(),
            console_enabled: node.console_enabled,
            inspection_started_at: opt_text(&node.inspection_started_at),
            inspection_finished_at: opt_text(&node.inspection_finished_at),
            clean_step: to_json("node clean_step", &node.clean_step)?,
            deploy_step: to_json("node deploy_step", &node.deploy_step)?,
            service_step: to_json("node service_step", &node.service_step)?,
            raid_config: to_json("node raid_config", &node.raid_config)?,
            target_raid_config: to_json("node target_raid_config", &node.target_raid_config)?,
            bios_interface: interface(InterfaceKind::Bios),
            boot_interface: interface(InterfaceKind::Boot),
            console_interface: interface(InterfaceKind::Console),
            deploy_interface: interface(InterfaceKind::Deploy),
            firmware_interface: interface(InterfaceKind::Firmware),
            inspect_interface: interface(InterfaceKind::Inspect),
            management_interface: interface(InterfaceKind::Management),
            network_interface: interface(InterfaceKind::Network),
            power_interface: interface(InterfaceKind::Power),
            raid_interface: interface(InterfaceKind::Raid),
            rescue_interface: interface(InterfaceKind::Rescue),
            storage_interface: interface(InterfaceKind::Storage),
            vendor_interface: interface(InterfaceKind::Vendor),
            resource_class: node.resource_class.clone(),
            traits: to_json("node traits", &node.traits)?,
            conductor_group: node.conductor_group.clone(),
            automated_clean: node.automated_clean,
            protected: node.protected,
            protected_reason: node.protected_reason.clone(),
            owner: node.owner.clone(),
            lessee: node.lessee.clone(),
            description: node.description.clone(),
            allocation_uuid: opt_text(&node.allocation_uuid),
            retired: node.retired,
            retired_reason: node.retired_reason.clone(),
            network_data: to_json("node network_data", &node.network_data)?,
            boot_mode: node.boot_mode.clone(),
            secure_boot: node.secure_boot,
            shard: node.shard.clone(),
            parent_node: node.parent_node.clone(),
            disable_power_off: node.disable_power_off,
            health: node.health.clone(),
            conductor_affinity: node.conductor_affinity.clone(),
            pending_action: node
                .pending_action
                .as_ref()
                .map(|action| to_json("node pending_action", action))
                .transpose()?,
            created_at: text(&node.created_at),
            updated_at: opt_text(&node.updated_at),
        })
    }

    pub(crate) fn into_node(self) -> Result<Node> {
        let mut interfaces = Interfaces::default();
        for (kind, implementation) in [
            (InterfaceKind::Bios, self.bios_interface),
            (InterfaceKind::Boot, self.boot_interface),
            (InterfaceKind::Console, self.console_interface),
            (InterfaceKind::Deploy, self.deploy_interface),
            (InterfaceKind::Firmware, self.firmware_interface),
            (InterfaceKind::Inspect, self.inspect_interface),
            (InterfaceKind::Management, self.management_interface),
            (InterfaceKind::Network, self.network_interface),
            (InterfaceKind::Power, self.power_interface),
            (InterfaceKind::Raid, self.raid_interface),
            (InterfaceKind::Rescue, self.rescue_interface),
            (InterfaceKind::Storage, self.storage_interface),
            (InterfaceKind::Vendor, self.vendor_interface),
        ] {
            if let Some(implementation) = parse_opt("node interface", implementation)? {
                interfaces.set(kind, implementation);
            }
        }
        Ok(Node {
            id: self.id,
            version: self.version,
            uuid: parse("node uuid", &self.uuid)?,
            name: self.name,
            driver: parse("node driver", &self.driver)?,
            driver_info: from_json("node driver_info", &self.driver_info)?,
            driver_internal_info: from_json(
                "node driver_internal_info",
                &self.driver_internal_info,
            )?,
            properties: from_json("node properties", &self.properties)?,
            instance_info: from_json("node instance_info", &self.instance_info)?,
            instance_uuid: self.instance_uuid,
            instance_name: self.instance_name,
            chassis_uuid: parse_opt("node chassis_uuid", self.chassis_uuid)?,
            extra: from_json("node extra", &self.extra)?,
            power_state: parse_opt("node power_state", self.power_state)?,
            target_power_state: parse_opt("node target_power_state", self.target_power_state)?,
            provision_state: parse("node provision_state", &self.provision_state)?,
            target_provision_state: parse_opt(
                "node target_provision_state",
                self.target_provision_state,
            )?,
            provision_updated_at: parse_opt(
                "node provision_updated_at",
                self.provision_updated_at,
            )?,
            maintenance: self.maintenance,
            maintenance_reason: self.maintenance_reason,
            fault: parse_opt("node fault", self.fault)?,
            last_error: self.last_error,
            reservation: self.reservation,
            console_enabled: self.console_enabled,
            inspection_started_at: parse_opt(
                "node inspection_started_at",
                self.inspection_started_at,
            )?,
            inspection_finished_at: parse_opt(
                "node inspection_finished_at",
                self.inspection_finished_at,
            )?,
            clean_step: from_json("node clean_step", &self.clean_step)?,
            deploy_step: from_json("node deploy_step", &self.deploy_step)?,
            service_step: from_json("node service_step", &self.service_step)?,
            raid_config: from_json("node raid_config", &self.raid_config)?,
            target_raid_config: from_json("node target_raid_config", &self.target_raid_config)?,
            interfaces,
            resource_class: self.resource_class,
            traits: from_json("node traits", &self.traits)?,
            conductor_group: self.conductor_group,
            automated_clean: self.automated_clean,
            protected: self.protected,
            protected_reason: self.protected_reason,
            owner: self.owner,
            lessee: self.lessee,
            description: self.description,
            allocation_uuid: parse_opt("node allocation_uuid", self.allocation_uuid)?,
            retired: self.retired,
            retired_reason: self.retired_reason,
            network_data: from_json("node network_data", &self.network_data)?,
            boot_mode: self.boot_mode,
            secure_boot: self.secure_boot,
            shard: self.shard,
            parent_node: self.parent_node,
            disable_power_off: self.disable_power_off,
            health: self.health,
            conductor_affinity: self.conductor_affinity,
            pending_action: self
                .pending_action
                .map(|text| from_json("node pending_action", &text))
                .transpose()?,
            created_at: parse("node created_at", &self.created_at)?,
            updated_at: parse_opt("node updated_at", self.updated_at)?,
        })
    }
}

// ---- ports, portgroups, chassis ----

impl PortRow {
    pub(crate) fn from_port(port: &Port) -> Result<Self> {
        Ok(Self {
            id: port.id,
            uuid: text(&port.uuid),
            address: port.address.clone(),
            node_uuid: text(&port.node_uuid),
            portgroup_uuid: opt_text(&port.portgroup_uuid),
            name: port.name.clone(),
            description: port.description.clone(),
            extra: to_json("port extra", &port.extra)?,
            internal_info: to_json("port internal_info", &port.internal_info)?,
            local_link_connection: to_json(
                "port local_link_connection",
                &port.local_link_connection,
            )?,
            pxe_enabled: port.pxe_enabled,
            physical_network: port.physical_network.clone(),
            is_smartnic: port.is_smartnic,
            vendor: port.vendor.clone(),
            category: port.category.clone(),
            available_for_dynamic_portgroup: port.available_for_dynamic_portgroup,
            created_at: text(&port.created_at),
            updated_at: opt_text(&port.updated_at),
        })
    }

    pub(crate) fn into_port(self) -> Result<Port> {
        Ok(Port {
            id: self.id,
            uuid: parse("port uuid", &self.uuid)?,
            address: self.address,
            node_uuid: parse("port node_uuid", &self.node_uuid)?,
            portgroup_uuid: parse_opt("port portgroup_uuid", self.portgroup_uuid)?,
            name: self.name,
            description: self.description,
            extra: from_json("port extra", &self.extra)?,
            internal_info: from_json("port internal_info", &self.internal_info)?,
            local_link_connection: from_json(
                "port local_link_connection",
                &self.local_link_connection,
            )?,
            pxe_enabled: self.pxe_enabled,
            physical_network: self.physical_network,
            is_smartnic: self.is_smartnic,
            vendor: self.vendor,
            category: self.category,
            available_for_dynamic_portgroup: self.available_for_dynamic_portgroup,
            created_at: parse("port created_at", &self.created_at)?,
            updated_at: parse_opt("port updated_at", self.updated_at)?,
        })
    }
}

impl PortgroupRow {
    pub(crate) fn from_portgroup(portgroup: &Portgroup) -> Result<Self> {
        Ok(Self {
            id: portgroup.id,
            uuid: text(&portgroup.uuid),
            name: portgroup.name.clone(),
            address: portgroup.address.clone(),
            node_uuid: text(&portgroup.node_uuid),
            extra: to_json("portgroup extra", &portgroup.extra)?,
            internal_info: to_json("portgroup internal_info", &portgroup.internal_info)?,
            standalone_ports_supported: portgroup.standalone_ports_supported,
            mode: portgroup.mode.clone(),
            properties: to_json("portgroup properties", &portgroup.properties)?,
            physical_network: portgroup.physical_network.clone(),
            category: portgroup.category.clone(),
            created_at: text(&portgroup.created_at),
            updated_at: opt_text(&portgroup.updated_at),
        })
    }

    pub(crate) fn into_portgroup(self) -> Result<Portgroup> {
        Ok(Portgroup {
            id: self.id,
            uuid: parse("portgroup uuid", &self.uuid)?,
            name: self.name,
            address: self.address,
            node_uuid: parse("portgroup node_uuid", &self.node_uuid)?,
            extra: from_json("portgroup extra", &self.extra)?,
            internal_info: from_json("portgroup internal_info", &self.internal_info)?,
            standalone_ports_supported: self.standalone_ports_supported,
            mode: self.mode,
            properties: from_json("portgroup properties", &self.properties)?,
            physical_network: self.physical_network,
            category: self.category,
            created_at: parse("portgroup created_at", &self.created_at)?,
            updated_at: parse_opt("portgroup updated_at", self.updated_at)?,
        })
    }
}

impl ChassisRow {
    pub(crate) fn from_chassis(chassis: &Chassis) -> Result<Self> {
        Ok(Self {
            id: chassis.id,
            uuid: text(&chassis.uuid),
            description: chassis.description.clone(),
            extra: to_json("chassis extra", &chassis.extra)?,
            created_at: text(&chassis.created_at),
            updated_at: opt_text(&chassis.updated_at),
        })
    }

    pub(crate) fn into_chassis(self) -> Result<Chassis> {
        Ok(Chassis {
            id: self.id,
            uuid: parse("chassis uuid", &self.uuid)?,
            description: self.description,
            extra: from_json("chassis extra", &self.extra)?,
            created_at: parse("chassis created_at", &self.created_at)?,
            updated_at: parse_opt("chassis updated_at", self.updated_at)?,
        })
    }
}

// ---- history ----

impl HistoryRow {
    pub(crate) fn from_event(event: &HistoryEvent) -> Self {
        Self {
            id: event.id,
            uuid: text(&event.uuid),
            node_uuid: text(&event.node_uuid),
            severity: text(&event.severity),
            event: event.event.clone(),
            event_type: event.event_type.clone(),
            conductor: event.conductor.clone(),
            user_name: event.user.clone(),
            state: opt_text(&event.state),
            target_provision_state: opt_text(&event.target_provision_state),
            duration_seconds: event.duration_seconds,
            created_at: text(&event.created_at),
        }
    }

    pub(crate) fn into_event(self) -> Result<HistoryEvent> {
        Ok(HistoryEvent {
            id: self.id,
            uuid: parse("history uuid", &self.uuid)?,
            node_uuid: parse("history node_uuid", &self.node_uuid)?,
            severity: parse("history severity", &self.severity)?,
            event: self.event,
            event_type: self.event_type,
            conductor: self.conductor,
            user: self.user_name,
            state: parse_opt("history state", self.state)?,
            target_provision_state: parse_opt(
                "history target_provision_state",
                self.target_provision_state,
            )?,
            duration_seconds: self.duration_seconds,
            created_at: parse("history created_at", &self.created_at)?,
        })
    }
}

// ---- conductors ----

impl ConductorRow {
    pub(crate) fn into_record(self, drivers: Vec<HardwareType>) -> Result<ConductorRecord> {
        Ok(ConductorRecord {
            id: self.id,
            hostname: self.hostname,
            conductor_group: self.conductor_group,
            online: self.online,
            drivers,
            created_at: parse("conductor created_at", &self.created_at)?,
            updated_at: parse_opt("conductor updated_at", self.updated_at)?,
        })
    }
}

pub(crate) fn parse_hardware_type(text: &str) -> Result<HardwareType> {
    parse("conductor hardware_type", text)
}

impl HardwareInterfaceRow {
    /// Decodes the row's hardware type, interface and implementation.
    pub(crate) fn decode(&self) -> Result<(HardwareType, InterfaceKind, InterfaceImpl)> {
        Ok((
            parse_hardware_type(&self.hardware_type)?,
            parse("conductor interface_type", &self.interface_type)?,
            parse("conductor implementation", &self.implementation)?,
        ))
    }
}

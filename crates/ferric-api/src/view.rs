//! Records → wire JSON: version gating, masking of secrets, links and
//! `fields` selection. Nothing here touches the store.

use ferric_types::validate::mask_secrets;
use ferric_types::{
    Chassis, InterfaceKind, JsonObject, Node, Port, Portgroup, ProvisionState, Timestamp,
};
use serde_json::{Map, Value};

use crate::ctx::Ctx;
use crate::error::ApiError;

/// Node fields and the minor version at which each appears.
pub const NODE_FIELDS: &[(&str, u16)] = &[
    ("uuid", 1),
    ("name", 5),
    ("driver", 1),
    ("driver_info", 1),
    ("driver_internal_info", 3),
    ("properties", 1),
    ("instance_info", 1),
    ("instance_uuid", 1),
    ("instance_name", 104),
    ("chassis_uuid", 1),
    ("extra", 1),
    ("power_state", 1),
    ("target_power_state", 1),
    ("provision_state", 1),
    ("target_provision_state", 1),
    ("provision_updated_at", 1),
    ("maintenance", 1),
    ("maintenance_reason", 1),
    ("fault", 42),
    ("last_error", 1),
    ("reservation", 1),
    ("console_enabled", 1),
    ("inspection_started_at", 6),
    ("inspection_finished_at", 6),
    ("clean_step", 7),
    ("deploy_step", 44),
    ("service_step", 87),
    ("raid_config", 12),
    ("target_raid_config", 12),
    ("bios_interface", 40),
    ("boot_interface", 31),
    ("console_interface", 31),
    ("deploy_interface", 31),
    ("firmware_interface", 86),
    ("inspect_interface", 31),
    ("management_interface", 31),
    ("network_interface", 20),
    ("power_interface", 31),
    ("raid_interface", 31),
    ("rescue_interface", 38),
    ("storage_interface", 33),
    ("vendor_interface", 31),
    ("resource_class", 21),
    ("traits", 37),
    ("conductor_group", 46),
    ("automated_clean", 47),
    ("protected", 48),
    ("protected_reason", 48),
    ("conductor", 49),
    ("owner", 50),
    ("description", 51),
    ("allocation_uuid", 52),
    ("retired", 61),
    ("retired_reason", 61),
    ("lessee", 65),
    ("network_data", 66),
    ("boot_mode", 75),
    ("secure_boot", 75),
    ("shard", 82),
    ("parent_node", 83),
    ("disable_power_off", 95),
    ("health", 109),
    ("created_at", 1),
    ("updated_at", 1),
];

/// Fields a non-detailed node listing shows.
pub const NODE_LIST_FIELDS: &[&str] =
    &["uuid", "name", "instance_uuid", "power_state", "provision_state", "maintenance"];

pub const PORT_FIELDS: &[(&str, u16)] = &[
    ("uuid", 1),
    ("address", 1),
    ("node_uuid", 1),
    ("portgroup_uuid", 24),
    ("extra", 1),
    ("internal_info", 18),
    ("local_link_connection", 19),
    ("pxe_enabled", 19),
    ("physical_network", 34),
    ("is_smartnic", 53),
    ("name", 88),
    ("description", 97),
    ("vendor", 100),
    ("category", 101),
    ("available_for_dynamic_portgroup", 111),
    ("created_at", 1),
    ("updated_at", 1),
];

pub const PORTGROUP_FIELDS: &[(&str, u16)] = &[
    ("uuid", 23),
    ("name", 23),
    ("address", 23),
    ("node_uuid", 23),
    ("extra", 23),
    ("internal_info", 23),
    ("standalone_ports_supported", 23),
    ("mode", 26),
    ("properties", 26),
    ("physical_network", 102),
    ("category", 103),
    ("dynamic_portgroup", 111),
    ("created_at", 23),
    ("updated_at", 23),
];

pub const CHASSIS_FIELDS: &[(&str, u16)] =
    &[("uuid", 1), ("description", 1), ("extra", 1), ("created_at", 1), ("updated_at", 1)];

/// Checks a `fields=` list: unknown → 400, too new → 406.
pub fn check_fields(fields: &[String], table: &[(&str, u16)], ctx: &Ctx) -> Result<(), ApiError> {
    for field in fields {
        match table.iter().find(|(name, _)| name == field) {
            None => {
                return Err(ApiError::bad(format!(
                    "Field(s) \"{field}\" are not valid; choose from {}",
                    table.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ")
                )))
            }
            Some((_, minor)) => ctx.version.require(*minor, &format!("The field {field}"))?,
        }
    }
    Ok(())
}

fn text(value: &Option<String>) -> Value {
    value.as_ref().map_or(Value::Null, |text| Value::String(text.clone()))
}

fn time(value: Option<Timestamp>) -> Value {
    value.map_or(Value::Null, |stamp| Value::String(stamp.to_text()))
}

fn object(value: &JsonObject) -> Value {
    Value::Object(value.clone())
}

/// Keeps the version-visible keys of `full`, then the `fields` selection.
fn finish(
    mut full: Map<String, Value>,
    table: &[(&str, u16)],
    ctx: &Ctx,
    fields: Option<&[String]>,
    links: Vec<(&str, Value)>,
) -> Value {
    let mut out = Map::new();
    for (name, minor) in table {
        if !ctx.version.at_least(*minor) {
            continue;
        }
        if let Some(fields) = fields {
            if !fields.iter().any(|field| field == name) {
                continue;
            }
        }
        if let Some(value) = full.remove(*name) {
            out.insert((*name).to_owned(), value);
        }
    }
    for (name, value) in links {
        out.insert(name.to_owned(), value);
    }
    Value::Object(out)
}

/// A provision state as a client at this version understands it.
pub fn provision_state_for(state: ProvisionState, ctx: &Ctx) -> Value {
    match state {
        ProvisionState::Available if !ctx.version.at_least(2) => Value::Null,
        ProvisionState::InspectWait if !ctx.version.at_least(39) => "inspecting".into(),
        other => other.as_str().into(),
    }
}

/// The full JSON of a node at the request's version. `conductor` is the
/// host the hash ring assigns it to. `fields`: only these (plus links when
/// no selection is made).
pub fn node(node: &Node, ctx: &Ctx, conductor: Option<&str>, fields: Option<&[String]>) -> Value {
    let mut map = Map::new();
    map.insert("uuid".into(), node.uuid.to_string().into());
    map.insert("name".into(), text(&node.name));
    map.insert("driver".into(), node.driver.as_str().into());
    map.insert("driver_info".into(), Value::Object(mask_secrets(&node.driver_info, &[])));
    map.insert(
        "driver_internal_info".into(),
        Value::Object(mask_secrets(&node.driver_internal_info, &[])),
    );
    map.insert("properties".into(), object(&node.properties));
    map.insert(
        "instance_info".into(),
        Value::Object(mask_secrets(&node.instance_info, &["configdrive", "image_url"])),
    );
    map.insert("instance_uuid".into(), text(&node.instance_uuid));
    map.insert("instance_name".into(), text(&node.instance_name));
    map.insert(
        "chassis_uuid".into(),
        node.chassis_uuid.map_or(Value::Null, |u| u.to_string().into()),
    );
    map.insert("extra".into(), object(&node.extra));
    map.insert("power_state".into(), node.power_state.map_or(Value::Null, |s| s.as_str().into()));
    map.insert(
        "target_power_state".into(),
        node.target_power_state.map_or(Value::Null, |s| s.as_str().into()),
    );
    map.insert("provision_state".into(), provision_state_for(node.provision_state, ctx));
    map.insert(
        "target_provision_state".into(),
        node.target_provision_state.map_or(Value::Null, |s| provision_state_for(s, ctx)),
    );
    map.insert("provision_updated_at".into(), time(node.provision_updated_at));
    map.insert("maintenance".into(), node.maintenance.into());
    map.insert("maintenance_reason".into(), text(&node.maintenance_reason));
    map.insert("fault".into(), node.fault.map_or(Value::Null, |f| f.as_str().into()));
    map.insert("last_error".into(), text(&node.last_error));
    map.insert("reservation".into(), text(&node.reservation));
    map.insert("console_enabled".into(), node.console_enabled.into());
    map.insert("inspection_started_at".into(), time(node.inspection_started_at));
    map.insert("inspection_finished_at".into(), time(node.inspection_finished_at));
    map.insert("clean_step".into(), object(&node.clean_step));
    map.insert("deploy_step".into(), object(&node.deploy_step));
    map.insert("service_step".into(), object(&node.service_step));
    map.insert("raid_config".into(), object(&node.raid_config));
    map.insert("target_raid_config".into(), object(&node.target_raid_config));
    for kind in InterfaceKind::ALL {
        map.insert(
            kind.node_field().into(),
            node.interfaces.get(kind).map_or(Value::Null, |i| i.as_str().into()),
        );
    }
    map.insert("resource_class".into(), text(&node.resource_class));
    map.insert("traits".into(), node.traits.clone().into());
    map.insert("conductor_group".into(), node.conductor_group.clone().into());
    map.insert("automated_clean".into(), node.automated_clean.map_or(Value::Null, Value::Bool));
    map.insert("protected".into(), node.protected.into());
    map.insert("protected_reason".into(), text(&node.protected_reason));
    map.insert("conductor".into(), conductor.map_or(Value::Null, |c| c.into()));
    map.insert("owner".into(), text(&node.owner));
    map.insert("description".into(), text(&node.description));
    map.insert(
        "allocation_uuid".into(),
        node.allocation_uuid.map_or(Value::Null, |u| u.to_string().into()),
    );
    map.insert("retired".into(), node.retired.into());
    map.insert("retired_reason".into(), text(&node.retired_reason));
    map.insert("lessee".into(), text(&node.lessee));
    map.insert("network_data".into(), object(&node.network_data));
    map.insert("boot_mode".into(), text(&node.boot_mode));
    map.insert("secure_boot".into(), node.secure_boot.map_or(Value::Null, Value::Bool));
    map.insert("shard".into(), text(&node.shard));
    map.insert("parent_node".into(), text(&node.parent_node));
    map.insert("disable_power_off".into(), node.disable_power_off.into());
    map.insert("health".into(), text(&node.health));
    map.insert("created_at".into(), Value::String(node.created_at.to_text()));
    map.insert("updated_at".into(), time(node.updated_at));

    let path = format!("nodes/{}", node.uuid);
    let mut links = vec![("links", ctx.links(&path))];
    if fields.is_none() {
        links.push(("ports", ctx.links(&format!("{path}/ports"))));
        if ctx.version.at_least(14) {
            links.push(("states", ctx.links(&format!("{path}/states"))));
        }
        if ctx.version.at_least(24) {
            links.push(("portgroups", ctx.links(&format!("{path}/portgroups"))));
        }
        if ctx.version.at_least(32) {
            links.push(("volume", ctx.links(&format!("{path}/volume"))));
        }
    }
    finish(map, NODE_FIELDS, ctx, fields, links)
}

pub fn port(port: &Port, ctx: &Ctx, fields: Option<&[String]>) -> Value {
    let mut map = Map::new();
    map.insert("uuid".into(), port.uuid.to_string().into());
    map.insert("address".into(), port.address.clone().into());
    map.insert("node_uuid".into(), port.node_uuid.to_string().into());
    map.insert(
        "portgroup_uuid".into(),
        port.portgroup_uuid.map_or(Value::Null, |u| u.to_string().into()),
    );
    map.insert("extra".into(), object(&port.extra));
    map.insert("internal_info".into(), object(&port.internal_info));
    map.insert("local_link_connection".into(), object(&port.local_link_connection));
    map.insert("pxe_enabled".into(), port.pxe_enabled.into());
    map.insert("physical_network".into(), text(&port.physical_network));
    map.insert("is_smartnic".into(), port.is_smartnic.into());
    map.insert("name".into(), text(&port.name));
    map.insert("description".into(), text(&port.description));
    map.insert("vendor".into(), text(&port.vendor));
    map.insert("category".into(), text(&port.category));
    map.insert(
        "available_for_dynamic_portgroup".into(),
        port.available_for_dynamic_portgroup.into(),
    );
    map.insert("created_at".into(), Value::String(port.created_at.to_text()));
    map.insert("updated_at".into(), time(port.updated_at));
    let links = vec![("links", ctx.links(&format!("ports/{}", port.uuid)))];
    finish(map, PORT_FIELDS, ctx, fields, links)
}

pub fn portgroup(group: &Portgroup, ctx: &Ctx, fields: Option<&[String]>) -> Value {
    let mut map = Map::new();
    map.insert("uuid".into(), group.uuid.to_string().into());
    map.insert("name".into(), text(&group.name));
    map.insert("address".into(), text(&group.address));
    map.insert("node_uuid".into(), group.node_uuid.to_string().into());
    map.insert("extra".into(), object(&group.extra));
    map.insert("internal_info".into(), object(&group.internal_info));
    map.insert("standalone_ports_supported".into(), group.standalone_ports_supported.into());
    map.insert("mode".into(), text(&group.mode));
    map.insert("properties".into(), object(&group.properties));
    map.insert("physical_network".into(), text(&group.physical_network));
    map.insert("category".into(), text(&group.category));
    map.insert("dynamic_portgroup".into(), false.into());
    map.insert("created_at".into(), Value::String(group.created_at.to_text()));
    map.insert("updated_at".into(), time(group.updated_at));
    let path = format!("portgroups/{}", group.uuid);
    let mut links = vec![("links", ctx.links(&path))];
    if fields.is_none() {
        links.push(("ports", ctx.links(&format!("{path}/ports"))));
    }
    finish(map, PORTGROUP_FIELDS, ctx, fields, links)
}

pub fn chassis(chassis: &Chassis, ctx: &Ctx, fields: Option<&[String]>) -> Value {
    let mut map = Map::new();
    map.insert("uuid".into(), chassis.uuid.to_string().into());
    map.insert("description".into(), text(&chassis.description));
    map.insert("extra".into(), object(&chassis.extra));
    map.insert("created_at".into(), Value::String(chassis.created_at.to_text()));
    map.insert("updated_at".into(), time(chassis.updated_at));
    let path = format!("chassis/{}", chassis.uuid);
    let mut links = vec![("links", ctx.links(&path))];
    if fields.is_none() {
        links.push(("nodes", ctx.links(&format!("{path}/nodes"))));
    }
    finish(map, CHASSIS_FIELDS, ctx, fields, links)
}

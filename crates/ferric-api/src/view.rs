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

/// [`check_fields`] for an optional selection.
pub fn check_selection(
    fields: Option<&[String]>,
    table: &[(&str, u16)],
    ctx: &Ctx,
) -> Result<(), ApiError> {
    fields.map_or(Ok(()), |fields| check_fields(fields, table, ctx))
}

/// The names of a field table (the fields a patch may name).
pub fn field_names(table: &[(&'static str, u16)]) -> Vec<&'static str> {
    table.iter().map(|(name, _)| *name).collect()
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
    // The running step's args may hold secrets (a BIOS password, ...).
    map.insert("clean_step".into(), Value::Object(mask_secrets(&node.clean_step, &[])));
    map.insert("deploy_step".into(), Value::Object(mask_secrets(&node.deploy_step, &[])));
    map.insert("service_step".into(), Value::Object(mask_secrets(&node.service_step, &[])));
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

/// Allocation fields and the minor version at which each appears.
pub const ALLOCATION_FIELDS: &[(&str, u16)] = &[
    ("uuid", 52),
    ("name", 52),
    ("node_uuid", 52),
    ("state", 52),
    ("last_error", 52),
    ("resource_class", 52),
    ("traits", 52),
    ("candidate_nodes", 52),
    ("extra", 52),
    ("owner", 60),
    ("created_at", 52),
    ("updated_at", 52),
];

pub fn allocation(
    allocation: &ferric_types::Allocation,
    ctx: &Ctx,
    fields: Option<&[String]>,
) -> Value {
    let mut map = Map::new();
    map.insert("uuid".into(), allocation.uuid.to_string().into());
    map.insert("name".into(), text(&allocation.name));
    map.insert(
        "node_uuid".into(),
        allocation.node_uuid.map_or(Value::Null, |u| u.to_string().into()),
    );
    map.insert("state".into(), allocation.state.as_str().into());
    map.insert("last_error".into(), text(&allocation.last_error));
    map.insert("resource_class".into(), text(&allocation.resource_class));
    map.insert("traits".into(), allocation.traits.clone().into());
    map.insert(
        "candidate_nodes".into(),
        allocation.candidate_nodes.iter().map(|u| Value::from(u.to_string())).collect(),
    );
    map.insert("extra".into(), object(&allocation.extra));
    map.insert("owner".into(), text(&allocation.owner));
    map.insert("created_at".into(), Value::String(allocation.created_at.to_text()));
    map.insert("updated_at".into(), time(allocation.updated_at));
    let links = vec![("links", ctx.links(&format!("allocations/{}", allocation.uuid)))];
    finish(map, ALLOCATION_FIELDS, ctx, fields, links)
}

pub const DEPLOY_TEMPLATE_FIELDS: &[(&str, u16)] = &[
    ("uuid", 55),
    ("name", 55),
    ("steps", 55),
    ("extra", 55),
    ("created_at", 55),
    ("updated_at", 55),
];

pub const RUNBOOK_FIELDS: &[(&str, u16)] = &[
    ("uuid", 92),
    ("name", 92),
    ("description", 112),
    ("steps", 92),
    ("disable_ramdisk", 92),
    ("public", 92),
    ("owner", 92),
    ("traits", 112),
    ("extra", 92),
    ("created_at", 92),
    ("updated_at", 92),
];

/// A template or runbook step on the wire: secrets in `args` masked.
fn step_json(
    interface: ferric_types::StepInterface,
    step: &str,
    args: &JsonObject,
    number: (&str, u32),
) -> Value {
    let mut map = Map::new();
    map.insert("interface".into(), interface.as_str().into());
    map.insert("step".into(), step.into());
    map.insert("args".into(), Value::Object(mask_secrets(args, &[])));
    map.insert(number.0.into(), number.1.into());
    Value::Object(map)
}

pub fn deploy_template(
    template: &ferric_types::DeployTemplate,
    ctx: &Ctx,
    fields: Option<&[String]>,
) -> Value {
    let mut map = Map::new();
    map.insert("uuid".into(), template.uuid.to_string().into());
    map.insert("name".into(), template.name.clone().into());
    let steps = template
        .steps
        .iter()
        .map(|s| step_json(s.interface, &s.step, &s.args, ("priority", s.priority)))
        .collect();
    map.insert("steps".into(), Value::Array(steps));
    map.insert("extra".into(), object(&template.extra));
    map.insert("created_at".into(), Value::String(template.created_at.to_text()));
    map.insert("updated_at".into(), time(template.updated_at));
    let links = vec![("links", ctx.links(&format!("deploy_templates/{}", template.uuid)))];
    finish(map, DEPLOY_TEMPLATE_FIELDS, ctx, fields, links)
}

pub fn runbook(runbook: &ferric_types::Runbook, ctx: &Ctx, fields: Option<&[String]>) -> Value {
    let mut map = Map::new();
    map.insert("uuid".into(), runbook.uuid.to_string().into());
    map.insert("name".into(), runbook.name.clone().into());
    map.insert("description".into(), text(&runbook.description));
    let steps = runbook
        .steps
        .iter()
        .map(|s| step_json(s.interface, &s.step, &s.args, ("order", s.order)))
        .collect();
    map.insert("steps".into(), Value::Array(steps));
    map.insert("disable_ramdisk".into(), runbook.disable_ramdisk.into());
    map.insert("public".into(), runbook.public.into());
    map.insert("owner".into(), text(&runbook.owner));
    map.insert("traits".into(), runbook.traits.clone().into());
    map.insert("extra".into(), object(&runbook.extra));
    map.insert("created_at".into(), Value::String(runbook.created_at.to_text()));
    map.insert("updated_at".into(), time(runbook.updated_at));
    let links = vec![("links", ctx.links(&format!("runbooks/{}", runbook.uuid)))];
    finish(map, RUNBOOK_FIELDS, ctx, fields, links)
}

pub const VOLUME_CONNECTOR_FIELDS: &[(&str, u16)] = &[
    ("uuid", 32),
    ("node_uuid", 32),
    ("type", 32),
    ("connector_id", 32),
    ("extra", 32),
    ("created_at", 32),
    ("updated_at", 32),
];

pub fn volume_connector(
    connector: &ferric_types::VolumeConnector,
    ctx: &Ctx,
    fields: Option<&[String]>,
) -> Value {
    let mut map = Map::new();
    map.insert("uuid".into(), connector.uuid.to_string().into());
    map.insert("node_uuid".into(), connector.node_uuid.to_string().into());
    map.insert("type".into(), connector.connector_type.as_str().into());
    map.insert("connector_id".into(), connector.connector_id.clone().into());
    map.insert("extra".into(), object(&connector.extra));
    map.insert("created_at".into(), Value::String(connector.created_at.to_text()));
    map.insert("updated_at".into(), time(connector.updated_at));
    let links = vec![("links", ctx.links(&format!("volume/connectors/{}", connector.uuid)))];
    finish(map, VOLUME_CONNECTOR_FIELDS, ctx, fields, links)
}

pub const VOLUME_TARGET_FIELDS: &[(&str, u16)] = &[
    ("uuid", 32),
    ("node_uuid", 32),
    ("volume_type", 32),
    ("properties", 32),
    ("boot_index", 32),
    ("volume_id", 32),
    ("extra", 32),
    ("created_at", 32),
    ("updated_at", 32),
];

/// A volume target; secrets in `properties` (CHAP passwords) are masked.
pub fn volume_target(
    target: &ferric_types::VolumeTarget,
    ctx: &Ctx,
    fields: Option<&[String]>,
) -> Value {
    let mut map = Map::new();
    map.insert("uuid".into(), target.uuid.to_string().into());
    map.insert("node_uuid".into(), target.node_uuid.to_string().into());
    map.insert("volume_type".into(), target.volume_type.clone().into());
    map.insert("properties".into(), Value::Object(mask_secrets(&target.properties, &[])));
    map.insert("boot_index".into(), target.boot_index.into());
    map.insert("volume_id".into(), target.volume_id.clone().into());
    map.insert("extra".into(), object(&target.extra));
    map.insert("created_at".into(), Value::String(target.created_at.to_text()));
    map.insert("updated_at".into(), time(target.updated_at));
    let links = vec![("links", ctx.links(&format!("volume/targets/{}", target.uuid)))];
    finish(map, VOLUME_TARGET_FIELDS, ctx, fields, links)
}

pub const INSPECTION_RULE_FIELDS: &[(&str, u16)] = &[
    ("uuid", 96),
    ("description", 96),
    ("priority", 96),
    ("sensitive", 96),
    ("phase", 96),
    ("conditions", 96),
    ("actions", 96),
    ("built_in", 96),
    ("created_at", 96),
    ("updated_at", 96),
];

/// An inspection rule; a `sensitive` rule shows its conditions and actions
/// as null.
pub fn inspection_rule(
    rule: &ferric_types::InspectionRule,
    ctx: &Ctx,
    fields: Option<&[String]>,
) -> Value {
    let mut map = Map::new();
    map.insert("uuid".into(), rule.uuid.to_string().into());
    map.insert("description".into(), text(&rule.description));
    map.insert("priority".into(), rule.priority.into());
    map.insert("sensitive".into(), rule.sensitive.into());
    map.insert("phase".into(), rule.phase.as_str().into());
    let (conditions, actions) = if rule.sensitive {
        (Value::Null, Value::Null)
    } else {
        (
            rule.conditions.iter().map(|c| c.to_json()).collect(),
            rule.actions.iter().map(|a| a.to_json()).collect(),
        )
    };
    map.insert("conditions".into(), conditions);
    map.insert("actions".into(), actions);
    map.insert("built_in".into(), rule.built_in.into());
    map.insert("created_at".into(), Value::String(rule.created_at.to_text()));
    map.insert("updated_at".into(), time(rule.updated_at));
    let links = vec![("links", ctx.links(&format!("inspection_rules/{}", rule.uuid)))];
    finish(map, INSPECTION_RULE_FIELDS, ctx, fields, links)
}

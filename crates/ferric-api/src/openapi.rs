//! The OpenAPI document, generated from the endpoint table the router is
//! built from ([`crate::handlers::ENDPOINTS`]) and the field tables the
//! views render from ([`crate::view`]). `openapi/ferric-api.json` is the
//! committed copy; a test fails when it drifts (regenerate with
//! `FERRIC_UPDATE_DOCS=1 cargo test -p ferric-api openapi`).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::handlers::ENDPOINTS;
use crate::version::{MAX_VERSION, MIN_VERSION};
use crate::view;

/// The JSON schema of one resource field, by name.
fn field_schema(name: &str) -> Value {
    let nullable_string = json!({"type": ["string", "null"]});
    match name {
        "uuid" => json!({"type": "string", "format": "uuid"}),
        "driver" | "address" | "hostname" | "conductor_group" | "provision_state" => {
            json!({"type": "string"})
        }
        "driver_info"
        | "driver_internal_info"
        | "properties"
        | "instance_info"
        | "extra"
        | "clean_step"
        | "deploy_step"
        | "service_step"
        | "raid_config"
        | "target_raid_config"
        | "network_data"
        | "internal_info"
        | "local_link_connection" => json!({"type": "object"}),
        "maintenance"
        | "console_enabled"
        | "protected"
        | "retired"
        | "disable_power_off"
        | "pxe_enabled"
        | "is_smartnic"
        | "available_for_dynamic_portgroup"
        | "standalone_ports_supported"
        | "dynamic_portgroup"
        | "alive" => json!({"type": "boolean"}),
        "automated_clean" | "secure_boot" => json!({"type": ["boolean", "null"]}),
        "traits" | "drivers" | "candidate_nodes" => {
            json!({"type": "array", "items": {"type": "string"}})
        }
        name if name.ends_with("_at") => json!({"type": ["string", "null"], "format": "date-time"}),
        _ => nullable_string,
    }
}

fn object_of(fields: &[(&str, u16)], with_links: bool) -> Value {
    let mut properties = Map::new();
    for (name, since) in fields {
        let mut schema = field_schema(name);
        if *since > 1 {
            if let Some(map) = schema.as_object_mut() {
                map.insert("x-since-microversion".into(), json!(format!("1.{since}")));
            }
        }
        properties.insert((*name).to_owned(), schema);
    }
    if with_links {
        properties.insert("links".into(), json!({"$ref": "#/components/schemas/Links"}));
    }
    json!({"type": "object", "properties": properties})
}

fn collection(key: &str, item: &str) -> Value {
    json!({
        "type": "object",
        "required": [key],
        "properties": {
            key: {"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}},
            "next": {"type": "string", "description": "The next page, present when this page is full"},
        },
    })
}

fn schemas() -> BTreeMap<&'static str, Value> {
    let conductor_fields: &[(&str, u16)] = &[
        ("hostname", 49),
        ("conductor_group", 49),
        ("alive", 49),
        ("drivers", 49),
        ("created_at", 49),
        ("updated_at", 49),
    ];
    let writable = |fields: &[(&str, u16)], read_only: &[&str]| -> Value {
        let kept: Vec<(&str, u16)> =
            fields.iter().copied().filter(|(name, _)| !read_only.contains(name)).collect();
        object_of(&kept, false)
    };
    let mut schemas = BTreeMap::new();
    schemas.insert(
        "Links",
        json!({"type": "array", "items": {"type": "object", "properties": {
        "href": {"type": "string"}, "rel": {"type": "string"}, "type": {"type": "string"}}}}),
    );
    schemas.insert(
        "Error",
        json!({"type": "object", "required": ["error_message"], "properties": {
        "error_message": {"type": "string", "description":
            "JSON text of {faultcode, faultstring, debuginfo}; faultstring is the message"}}}),
    );
    schemas.insert("Root", json!({"type": "object"}));
    schemas.insert("V1", json!({"type": "object"}));
    schemas.insert("Node", object_of(view::NODE_FIELDS, true));
    schemas.insert("NodeCreate", {
        let mut body = writable(
            view::NODE_FIELDS,
            &[
                "driver_internal_info",
                "power_state",
                "target_power_state",
                "provision_state",
                "target_provision_state",
                "provision_updated_at",
                "last_error",
                "reservation",
                "console_enabled",
                "inspection_started_at",
                "inspection_finished_at",
                "clean_step",
                "deploy_step",
                "service_step",
                "raid_config",
                "target_raid_config",
                "traits",
                "conductor",
                "allocation_uuid",
                "boot_mode",
                "secure_boot",
                "health",
                "fault",
                "maintenance",
                "maintenance_reason",
                "protected",
                "protected_reason",
                "created_at",
                "updated_at",
            ],
        );
        body["required"] = json!(["driver"]);
        body
    });
    schemas.insert("NodeCollection", collection("nodes", "Node"));
    schemas.insert(
        "NodeStates",
        object_of(
            &[
                ("power_state", 1),
                ("target_power_state", 1),
                ("provision_state", 1),
                ("target_provision_state", 1),
                ("provision_updated_at", 1),
                ("last_error", 1),
                ("console_enabled", 1),
                ("raid_config", 12),
                ("target_raid_config", 12),
                ("boot_mode", 75),
                ("secure_boot", 75),
            ],
            false,
        ),
    );
    schemas.insert("Port", object_of(view::PORT_FIELDS, true));
    schemas.insert("PortCreate", {
        let mut body = writable(
            view::PORT_FIELDS,
            &["internal_info", "created_at", "updated_at", "available_for_dynamic_portgroup"],
        );
        body["required"] = json!(["address", "node_uuid"]);
        body
    });
    schemas.insert("PortCollection", collection("ports", "Port"));
    schemas.insert("Portgroup", object_of(view::PORTGROUP_FIELDS, true));
    schemas.insert("PortgroupCreate", {
        let mut body = writable(
            view::PORTGROUP_FIELDS,
            &["internal_info", "dynamic_portgroup", "created_at", "updated_at"],
        );
        body["required"] = json!(["node_uuid"]);
        body
    });
    schemas.insert("PortgroupCollection", collection("portgroups", "Portgroup"));
    schemas.insert("Chassis", object_of(view::CHASSIS_FIELDS, true));
    schemas.insert("ChassisCreate", writable(view::CHASSIS_FIELDS, &["created_at", "updated_at"]));
    schemas.insert("ChassisCollection", collection("chassis", "Chassis"));
    schemas.insert("Allocation", object_of(view::ALLOCATION_FIELDS, true));
    schemas.insert("AllocationCreate", {
        let mut body = writable(
            view::ALLOCATION_FIELDS,
            &["node_uuid", "state", "last_error", "created_at", "updated_at"],
        );
        body["properties"]["node"] = json!({"type": "string", "x-since-microversion": "1.58",
            "description": "Backfill: the UUID or name of an already deployed node"});
        body["properties"]["candidate_nodes"]["description"] = json!("Node UUIDs or names");
        body
    });
    schemas.insert("AllocationCollection", collection("allocations", "Allocation"));
    schemas.insert(
        "Driver",
        json!({"type": "object", "properties": {
        "name": {"type": "string"}, "hosts": {"type": "array", "items": {"type": "string"}},
        "type": {"type": "string"}, "links": {"$ref": "#/components/schemas/Links"}},
        "additionalProperties": true}),
    );
    schemas.insert("DriverCollection", collection("drivers", "Driver"));
    schemas.insert(
        "DriverProperties",
        json!({"type": "object", "additionalProperties": {"type": "string"}}),
    );
    schemas.insert("Conductor", object_of(conductor_fields, true));
    schemas.insert("ConductorCollection", collection("conductors", "Conductor"));
    // Deploy templates and runbooks: steps are objects; flags are booleans.
    let step = |number: &str| {
        json!({"type": "object", "required": ["interface", "step", number], "properties": {
            "interface": {"type": "string", "enum": ferric_types::StepInterface::ALL.iter().map(|i| i.as_str()).collect::<Vec<_>>()},
            "step": {"type": "string", "minLength": 1}, "args": {"type": "object"},
            number: {"type": "integer", "minimum": 0}}})
    };
    let with_steps = |mut schema: Value, number: &str| {
        schema["properties"]["steps"] =
            json!({"type": "array", "minItems": 1, "items": step(number)});
        for flag in ["public", "disable_ramdisk"] {
            if let Some(field) = schema["properties"].get_mut(flag) {
                field["type"] = json!("boolean");
            }
        }
        schema
    };
    schemas.insert(
        "DeployTemplate",
        with_steps(object_of(view::DEPLOY_TEMPLATE_FIELDS, true), "priority"),
    );
    schemas.insert("DeployTemplateCreate", {
        let mut body = with_steps(
            writable(view::DEPLOY_TEMPLATE_FIELDS, &["created_at", "updated_at"]),
            "priority",
        );
        body["required"] = json!(["name", "steps"]);
        body
    });
    schemas.insert("DeployTemplateCollection", collection("deploy_templates", "DeployTemplate"));
    schemas.insert("Runbook", with_steps(object_of(view::RUNBOOK_FIELDS, true), "order"));
    schemas.insert("RunbookCreate", {
        let mut body = with_steps(
            writable(view::RUNBOOK_FIELDS, &["traits", "created_at", "updated_at"]),
            "order",
        );
        body["required"] = json!(["name", "steps"]);
        body
    });
    schemas.insert("RunbookCollection", collection("runbooks", "Runbook"));
    schemas.insert(
        "JsonPatch",
        json!({"type": "array", "items": {"type": "object",
        "required": ["op", "path"], "properties": {
            "op": {"type": "string", "enum": ["add", "replace", "remove"]},
            "path": {"type": "string"}, "value": {}}}}),
    );
    schemas.insert("ProvisionRequest", json!({"type": "object", "required": ["target"], "properties": {
        "target": {"type": "string", "enum": ferric_types::Verb::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>()},
        "configdrive": {"oneOf": [{"type": "string"}, {"type": "object"}]},
        "clean_steps": {"type": "array", "items": {"type": "object"}},
        "deploy_steps": {"type": "array", "items": {"type": "object"}},
        "service_steps": {"type": "array", "items": {"type": "object"}},
        "rescue_password": {"type": "string"},
        "disable_ramdisk": {"type": "boolean"},
        "runbook": {"type": "string"}}}));
    schemas.insert("PowerRequest", json!({"type": "object", "required": ["target"], "properties": {
        "target": {"type": "string", "enum": ferric_types::PowerTarget::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>()},
        "timeout": {"type": "integer", "minimum": 1}}}));
    schemas.insert(
        "MaintenanceRequest",
        json!({"type": "object", "properties": {"reason": {"type": "string"}}}),
    );
    schemas.insert("BootDevice", json!({"type": "object", "properties": {
        "boot_device": {"type": ["string", "null"], "enum": ferric_types::BootDevice::ALL.iter().map(|d| Value::from(d.as_str())).chain([Value::Null]).collect::<Vec<_>>()},
        "persistent": {"type": ["boolean", "null"]}}}));
    schemas.insert(
        "SupportedBootDevices",
        json!({"type": "object", "properties": {
        "supported_boot_devices": {"type": "array", "items": {"type": "string"}}}}),
    );
    schemas.insert("Validation", json!({"type": "object", "additionalProperties": {"type": "object",
        "properties": {"result": {"type": ["boolean", "null"]}, "reason": {"type": ["string", "null"]}}}}));
    schemas.insert(
        "Traits",
        json!({"type": "object", "required": ["traits"], "properties": {
        "traits": {"type": "array", "items": {"type": "string"}}}}),
    );
    schemas.insert("HistoryEvent", json!({"type": "object", "properties": {
        "uuid": {"type": "string", "format": "uuid"}, "created_at": {"type": "string"},
        "severity": {"type": "string"}, "event": {"type": "string"}, "event_type": {"type": "string"},
        "conductor": {"type": ["string", "null"]}, "user": {"type": ["string", "null"]},
        "links": {"$ref": "#/components/schemas/Links"}}}));
    schemas.insert("HistoryCollection", collection("history", "HistoryEvent"));
    schemas.insert(
        "Children",
        json!({"type": "object", "required": ["children"], "properties": {
        "children": {"type": "array", "items": {"type": "string", "format": "uuid"}}}}),
    );
    schemas.insert(
        "Inventory",
        json!({"type": "object", "required": ["inventory", "plugin_data"], "properties": {
        "inventory": {"type": "object"}, "plugin_data": {"type": "object"}}}),
    );
    schemas.insert(
        "Shards",
        json!({"type": "object", "required": ["shards"], "properties": {
        "shards": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "count": {"type": "integer"}}}}}}),
    );
    schemas.insert("Lookup", json!({"type": "object", "required": ["node", "config"], "properties": {
        "node": {"type": "object", "properties": {"uuid": {"type": "string", "format": "uuid"},
            "properties": {"type": "object"}, "instance_info": {"type": "object"},
            "driver_internal_info": {"type": "object"}, "links": {"$ref": "#/components/schemas/Links"}}},
        "config": {"type": "object", "properties": {"heartbeat_timeout": {"type": "integer"},
            "agent_token": {"type": ["string", "null"], "description": "Issued once; ****** afterwards"},
            "agent_token_required": {"type": "boolean"}}}}}));
    schemas.insert("Heartbeat", json!({"type": "object", "required": ["callback_url"], "properties": {
        "callback_url": {"type": "string"}, "agent_token": {"type": "string"},
        "agent_version": {"type": "string", "x-since-microversion": "1.36"},
        "agent_verify_ca": {"type": "string", "x-since-microversion": "1.68"},
        "agent_status": {"type": "string", "enum": ["start", "end", "error"], "x-since-microversion": "1.72"},
        "agent_status_message": {"type": "string", "x-since-microversion": "1.72"}}}));
    for (name, schema) in crate::handlers::volume_schemas()
        .into_iter()
        .chain(crate::handlers::inspection_rule_schemas())
        .chain(crate::handlers::node_extra_schemas())
        .chain(crate::handlers::event_schemas())
    {
        schemas.insert(name, schema);
    }
    schemas
}

/// The whole document.
pub fn document() -> Value {
    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for endpoint in ENDPOINTS {
        let mut operation = Map::new();
        operation.insert("operationId".into(), json!(endpoint.operation));
        operation.insert("summary".into(), json!(endpoint.summary));
        operation.insert("x-since-microversion".into(), json!(format!("1.{}", endpoint.since)));
        let parameters: Vec<Value> = endpoint
            .path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .chain(std::iter::once(json!({"$ref": "#/components/parameters/Microversion"})))
            .collect();
        operation.insert("parameters".into(), Value::Array(parameters));
        if let Some(request) = endpoint.request {
            operation.insert("requestBody".into(), json!({"required": true, "content": {
                "application/json": {"schema": {"$ref": format!("#/components/schemas/{request}")}}}}));
        }
        let mut success = json!({"description": "Success"});
        if let Some(response) = endpoint.response {
            success["content"] = json!({"application/json": {"schema": {
                "$ref": format!("#/components/schemas/{response}")}}});
        }
        operation.insert(
            "responses".into(),
            json!({
                endpoint.status.to_string(): success,
                "default": {"description": "An error in Ironic's envelope", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            }),
        );
        paths
            .entry(endpoint.path)
            .or_default()
            .insert(endpoint.method.as_str().to_lowercase(), Value::Object(operation));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "ferric API (OpenStack Ironic v1 compatible)",
            "version": MAX_VERSION,
            "description": format!(
                "Microversions {MIN_VERSION} to {MAX_VERSION}: send `X-OpenStack-Ironic-API-Version: 1.N` \
                 or `OpenStack-API-Version: baremetal 1.N`; without either the request is served at \
                 {MIN_VERSION}. Fields newer than the requested version are left out of responses."),
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "parameters": {"Microversion": {"name": "X-OpenStack-Ironic-API-Version", "in": "header",
                "required": false, "schema": {"type": "string", "example": MAX_VERSION}}},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi/ferric-api.json");
        let rendered =
            format!("{}\n", serde_json::to_string_pretty(&document()).unwrap_or_default());
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        if committed != rendered {
            if std::env::var_os("FERRIC_UPDATE_DOCS").is_some() {
                std::fs::write(path, &rendered).unwrap_or_else(|e| panic!("write {path}: {e}"));
            } else {
                panic!(
                    "openapi/ferric-api.json is stale: rerun with FERRIC_UPDATE_DOCS=1 \
                     cargo test -p ferric-api openapi and commit the result"
                );
            }
        }
    }

    #[test]
    fn every_operation_is_unique_and_named_resource_verb() {
        let mut seen = std::collections::HashSet::new();
        for endpoint in ENDPOINTS {
            assert!(
                seen.insert((endpoint.method.clone(), endpoint.path)),
                "{} {}",
                endpoint.method,
                endpoint.path
            );
            assert!(endpoint.operation.contains('_'), "{}", endpoint.operation);
        }
    }
}

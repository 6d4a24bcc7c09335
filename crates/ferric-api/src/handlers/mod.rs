//! Routes and handlers, one module per resource.

mod agent;
mod allocations;
mod chassis;
mod common;
mod conductors;
mod deploy_templates;
mod drivers;
mod events;
mod inspection_rules;
mod node_extras;
mod nodes;
mod portgroups;
mod ports;
mod root;
mod runbooks;
mod volume;

use axum::routing::{delete, get, patch, post, put, MethodRouter};
use axum::Router;
use tower_http::limit::RequestBodyLimitLayer;

use crate::error::ApiError;
use crate::ApiState;

/// Resources reachable without the `/v1` prefix.
pub const TOP_LEVEL_RESOURCES: &[&str] = &[
    "nodes",
    "ports",
    "portgroups",
    "chassis",
    "drivers",
    "conductors",
    "lookup",
    "heartbeat",
    "shards",
    "volume",
    "inspection_rules",
    "deploy_templates",
    "runbooks",
    "allocations",
    "events",
];

/// One API operation: where it is, what it does, and its handler. The
/// router and the OpenAPI document are both built from [`ENDPOINTS`], so
/// neither can list an operation the other lacks.
pub struct Endpoint {
    pub method: http::Method,
    pub path: &'static str,
    /// `<resource>_<verb>`.
    pub operation: &'static str,
    pub summary: &'static str,
    /// The microversion that introduced it.
    pub since: u16,
    /// The success status.
    pub status: u16,
    /// Request body schema (a name in the OpenAPI components), if any.
    pub request: Option<&'static str>,
    /// Response body schema, if any.
    pub response: Option<&'static str>,
    handler: fn() -> MethodRouter<ApiState>,
}

macro_rules! endpoint {
    ($method:ident $path:literal, $operation:literal, $summary:literal, since $since:literal,
     $status:literal, $request:expr, $response:expr, $router:ident($handler:path)) => {
        Endpoint {
            method: http::Method::$method,
            path: $path,
            operation: $operation,
            summary: $summary,
            since: $since,
            status: $status,
            request: $request,
            response: $response,
            handler: || $router($handler),
        }
    };
}

/// Every operation of the API.
pub static ENDPOINTS: &[Endpoint] = &[
    endpoint!(GET "/", "root_get", "API versions", since 1, 200, None, Some("Root"), get(root::root)),
    endpoint!(GET "/v1", "v1_get", "The v1 API and its resources", since 1, 200, None, Some("V1"), get(root::v1)),
    endpoint!(GET "/v1/nodes", "node_list", "List nodes", since 1, 200, None, Some("NodeCollection"), get(nodes::list)),
    endpoint!(POST "/v1/nodes", "node_create", "Enrol a node", since 1, 201, Some("NodeCreate"), Some("Node"), post(nodes::create)),
    endpoint!(GET "/v1/nodes/detail", "node_list_detail", "List nodes with every field", since 1, 200, None, Some("NodeCollection"), get(nodes::list_detail)),
    endpoint!(GET "/v1/nodes/{node}", "node_get", "Show a node (by UUID or name)", since 1, 200, None, Some("Node"), get(nodes::show)),
    endpoint!(PATCH "/v1/nodes/{node}", "node_update", "Update a node with a JSON patch", since 1, 200, Some("JsonPatch"), Some("Node"), patch(nodes::update)),
    endpoint!(DELETE "/v1/nodes/{node}", "node_delete", "Delete a node", since 1, 204, None, None, delete(nodes::delete)),
    endpoint!(GET "/v1/nodes/{node}/states", "node_states_get", "A node's states", since 1, 200, None, Some("NodeStates"), get(nodes::states)),
    endpoint!(PUT "/v1/nodes/{node}/states/provision", "node_provision_set", "Request a provision action", since 1, 202, Some("ProvisionRequest"), None, put(nodes::set_provision_state)),
    endpoint!(PUT "/v1/nodes/{node}/states/power", "node_power_set", "Request a power action", since 1, 202, Some("PowerRequest"), None, put(nodes::set_power_state)),
    endpoint!(PUT "/v1/nodes/{node}/maintenance", "node_maintenance_set", "Put a node into maintenance", since 1, 202, Some("MaintenanceRequest"), None, put(nodes::set_maintenance)),
    endpoint!(DELETE "/v1/nodes/{node}/maintenance", "node_maintenance_clear", "Take a node out of maintenance", since 1, 202, None, None, delete(nodes::clear_maintenance)),
    endpoint!(GET "/v1/nodes/{node}/management/boot_device", "node_boot_device_get", "The next boot device", since 1, 200, None, Some("BootDevice"), get(nodes::get_boot_device)),
    endpoint!(PUT "/v1/nodes/{node}/management/boot_device", "node_boot_device_set", "Set the next boot device", since 1, 204, Some("BootDevice"), None, put(nodes::set_boot_device)),
    endpoint!(GET "/v1/nodes/{node}/management/boot_device/supported", "node_boot_device_supported", "Boot devices the node supports", since 1, 200, None, Some("SupportedBootDevices"), get(nodes::supported_boot_devices)),
    endpoint!(GET "/v1/nodes/{node}/validate", "node_validate", "Validate every interface of a node", since 1, 200, None, Some("Validation"), get(nodes::validate)),
    endpoint!(GET "/v1/nodes/{node}/traits", "node_traits_list", "A node's traits", since 37, 200, None, Some("Traits"), get(nodes::traits_list)),
    endpoint!(PUT "/v1/nodes/{node}/traits", "node_traits_replace", "Replace a node's traits", since 37, 204, Some("Traits"), None, put(nodes::traits_replace)),
    endpoint!(DELETE "/v1/nodes/{node}/traits", "node_traits_clear", "Remove all traits", since 37, 204, None, None, delete(nodes::traits_clear)),
    endpoint!(PUT "/v1/nodes/{node}/traits/{name}", "node_trait_add", "Add one trait", since 37, 204, None, None, put(nodes::trait_add)),
    endpoint!(DELETE "/v1/nodes/{node}/traits/{name}", "node_trait_remove", "Remove one trait", since 37, 204, None, None, delete(nodes::trait_remove)),
    endpoint!(GET "/v1/nodes/{node}/history", "node_history_list", "A node's history", since 78, 200, None, Some("HistoryCollection"), get(nodes::history_list)),
    endpoint!(GET "/v1/nodes/{node}/history/{event}", "node_history_get", "One history event", since 78, 200, None, Some("HistoryEvent"), get(nodes::history_show)),
    endpoint!(GET "/v1/nodes/{node}/inventory", "node_inventory_get", "The hardware inventory inspection recorded", since 81, 200, None, Some("Inventory"), get(nodes::inventory)),
    endpoint!(GET "/v1/nodes/{node}/children", "node_children_list", "The UUIDs of a node's child nodes", since 83, 200, None, Some("Children"), get(nodes::children)),
    endpoint!(GET "/v1/nodes/{node}/vifs", "node_vif_list", "The VIFs attached to a node", since 28, 200, None, Some("VifCollection"), get(node_extras::vif_list)),
    endpoint!(POST "/v1/nodes/{node}/vifs", "node_vif_attach", "Attach a VIF to a free port or portgroup of a node", since 28, 204, Some("Vif"), None, post(node_extras::vif_attach)),
    endpoint!(DELETE "/v1/nodes/{node}/vifs/{vif}", "node_vif_detach", "Detach a VIF from a node", since 28, 204, None, None, delete(node_extras::vif_detach)),
    endpoint!(GET "/v1/nodes/{node}/vmedia", "node_vmedia_list", "The virtual media slots of a node's BMC and what they hold", since 93, 200, None, Some("VirtualMediaList"), get(node_extras::vmedia_list)),
    endpoint!(POST "/v1/nodes/{node}/vmedia", "node_vmedia_attach", "Attach an image as virtual media", since 89, 204, Some("VirtualMediaAttach"), None, post(node_extras::vmedia_attach)),
    endpoint!(DELETE "/v1/nodes/{node}/vmedia", "node_vmedia_detach", "Detach virtual media (?device_types=, all by default)", since 89, 204, None, None, delete(node_extras::vmedia_detach)),
    endpoint!(PUT "/v1/nodes/{node}/states/raid", "node_raid_set", "Set (or clear with {}) a node's target RAID configuration", since 12, 204, Some("TargetRaidConfig"), None, put(node_extras::set_target_raid)),
    endpoint!(GET "/v1/nodes/{node}/bios", "node_bios_list", "A node's BIOS settings", since 40, 200, None, Some("BiosCollection"), get(node_extras::bios_list)),
    endpoint!(GET "/v1/nodes/{node}/bios/{setting}", "node_bios_get", "One BIOS setting of a node", since 40, 200, None, Some("BiosSettingOne"), get(node_extras::bios_show)),
    endpoint!(GET "/v1/nodes/{node}/firmware", "node_firmware_list", "A node's firmware components", since 86, 200, None, Some("FirmwareCollection"), get(node_extras::firmware_list)),
    endpoint!(GET "/v1/shards", "shard_list", "Shards in use, with their node counts", since 82, 200, None, Some("Shards"), get(nodes::shards)),
    endpoint!(GET "/v1/nodes/{node}/ports", "node_port_list", "A node's ports", since 1, 200, None, Some("PortCollection"), get(ports::list_of_node)),
    endpoint!(GET "/v1/nodes/{node}/ports/detail", "node_port_list_detail", "A node's ports with every field", since 1, 200, None, Some("PortCollection"), get(ports::list_of_node_detail)),
    endpoint!(GET "/v1/nodes/{node}/portgroups", "node_portgroup_list", "A node's portgroups", since 24, 200, None, Some("PortgroupCollection"), get(portgroups::list_of_node)),
    endpoint!(GET "/v1/nodes/{node}/portgroups/detail", "node_portgroup_list_detail", "A node's portgroups with every field", since 24, 200, None, Some("PortgroupCollection"), get(portgroups::list_of_node_detail)),
    endpoint!(GET "/v1/ports", "port_list", "List ports", since 1, 200, None, Some("PortCollection"), get(ports::list)),
    endpoint!(POST "/v1/ports", "port_create", "Create a port", since 1, 201, Some("PortCreate"), Some("Port"), post(ports::create)),
    endpoint!(GET "/v1/ports/detail", "port_list_detail", "List ports with every field", since 1, 200, None, Some("PortCollection"), get(ports::list_detail)),
    endpoint!(GET "/v1/ports/{port}", "port_get", "Show a port", since 1, 200, None, Some("Port"), get(ports::show)),
    endpoint!(PATCH "/v1/ports/{port}", "port_update", "Update a port with a JSON patch", since 1, 200, Some("JsonPatch"), Some("Port"), patch(ports::update)),
    endpoint!(DELETE "/v1/ports/{port}", "port_delete", "Delete a port", since 1, 204, None, None, delete(ports::delete)),
    endpoint!(GET "/v1/portgroups", "portgroup_list", "List portgroups", since 23, 200, None, Some("PortgroupCollection"), get(portgroups::list)),
    endpoint!(POST "/v1/portgroups", "portgroup_create", "Create a portgroup", since 23, 201, Some("PortgroupCreate"), Some("Portgroup"), post(portgroups::create)),
    endpoint!(GET "/v1/portgroups/detail", "portgroup_list_detail", "List portgroups with every field", since 23, 200, None, Some("PortgroupCollection"), get(portgroups::list_detail)),
    endpoint!(GET "/v1/portgroups/{portgroup}", "portgroup_get", "Show a portgroup", since 23, 200, None, Some("Portgroup"), get(portgroups::show)),
    endpoint!(PATCH "/v1/portgroups/{portgroup}", "portgroup_update", "Update a portgroup with a JSON patch", since 23, 200, Some("JsonPatch"), Some("Portgroup"), patch(portgroups::update)),
    endpoint!(DELETE "/v1/portgroups/{portgroup}", "portgroup_delete", "Delete a portgroup", since 23, 204, None, None, delete(portgroups::delete)),
    endpoint!(GET "/v1/portgroups/{portgroup}/ports", "portgroup_port_list", "A portgroup's ports", since 24, 200, None, Some("PortCollection"), get(portgroups::ports)),
    endpoint!(GET "/v1/portgroups/{portgroup}/ports/detail", "portgroup_port_list_detail", "A portgroup's ports with every field", since 24, 200, None, Some("PortCollection"), get(portgroups::ports_detail)),
    endpoint!(GET "/v1/chassis", "chassis_list", "List chassis", since 1, 200, None, Some("ChassisCollection"), get(chassis::list)),
    endpoint!(POST "/v1/chassis", "chassis_create", "Create a chassis", since 1, 201, Some("ChassisCreate"), Some("Chassis"), post(chassis::create)),
    endpoint!(GET "/v1/chassis/detail", "chassis_list_detail", "List chassis with every field", since 1, 200, None, Some("ChassisCollection"), get(chassis::list_detail)),
    endpoint!(GET "/v1/chassis/{chassis}", "chassis_get", "Show a chassis", since 1, 200, None, Some("Chassis"), get(chassis::show)),
    endpoint!(PATCH "/v1/chassis/{chassis}", "chassis_update", "Update a chassis with a JSON patch", since 1, 200, Some("JsonPatch"), Some("Chassis"), patch(chassis::update)),
    endpoint!(DELETE "/v1/chassis/{chassis}", "chassis_delete", "Delete a chassis", since 1, 204, None, None, delete(chassis::delete)),
    endpoint!(GET "/v1/chassis/{chassis}/nodes", "chassis_node_list", "A chassis's nodes", since 1, 200, None, Some("NodeCollection"), get(chassis::nodes)),
    endpoint!(GET "/v1/chassis/{chassis}/nodes/detail", "chassis_node_list_detail", "A chassis's nodes with every field", since 1, 200, None, Some("NodeCollection"), get(chassis::nodes_detail)),
    endpoint!(GET "/v1/drivers", "driver_list", "List hardware types", since 1, 200, None, Some("DriverCollection"), get(drivers::list)),
    endpoint!(GET "/v1/drivers/{driver}", "driver_get", "Show a hardware type", since 1, 200, None, Some("Driver"), get(drivers::show)),
    endpoint!(GET "/v1/drivers/{driver}/properties", "driver_properties", "driver_info keys a hardware type reads", since 1, 200, None, Some("DriverProperties"), get(drivers::properties)),
    endpoint!(GET "/v1/drivers/{driver}/raid/logical_disk_properties", "driver_raid_logical_disk_properties", "Properties a logical disk of a target RAID configuration may have", since 12, 200, None, Some("RaidLogicalDiskProperties"), get(drivers::raid_logical_disk_properties)),
    endpoint!(POST "/v1/events", "event_create", "Report external (network) events", since 54, 204, Some("Events"), None, post(events::post)),
    endpoint!(GET "/v1/lookup", "agent_lookup", "A ramdisk agent looks its node up by MAC or UUID", since 22, 200, None, Some("Lookup"), get(agent::lookup)),
    endpoint!(POST "/v1/heartbeat/{node}", "agent_heartbeat", "A ramdisk agent reports in", since 22, 202, Some("Heartbeat"), None, post(agent::heartbeat)),
    endpoint!(GET "/v1/conductors", "conductor_list", "List conductors", since 49, 200, None, Some("ConductorCollection"), get(conductors::list)),
    endpoint!(GET "/v1/conductors/{hostname}", "conductor_get", "Show a conductor", since 49, 200, None, Some("Conductor"), get(conductors::show)),
    endpoint!(GET "/v1/deploy_templates", "deploy_template_list", "List deploy templates", since 55, 200, None, Some("DeployTemplateCollection"), get(deploy_templates::list)),
    endpoint!(POST "/v1/deploy_templates", "deploy_template_create", "Create a deploy template", since 55, 201, Some("DeployTemplateCreate"), Some("DeployTemplate"), post(deploy_templates::create)),
    endpoint!(GET "/v1/deploy_templates/{template}", "deploy_template_get", "Show a deploy template (by UUID or name)", since 55, 200, None, Some("DeployTemplate"), get(deploy_templates::show)),
    endpoint!(PATCH "/v1/deploy_templates/{template}", "deploy_template_update", "Update a deploy template with a JSON patch", since 55, 200, Some("JsonPatch"), Some("DeployTemplate"), patch(deploy_templates::update)),
    endpoint!(DELETE "/v1/deploy_templates/{template}", "deploy_template_delete", "Delete a deploy template", since 55, 204, None, None, delete(deploy_templates::delete)),
    endpoint!(GET "/v1/runbooks", "runbook_list", "List runbooks", since 92, 200, None, Some("RunbookCollection"), get(runbooks::list)),
    endpoint!(POST "/v1/runbooks", "runbook_create", "Create a runbook", since 92, 201, Some("RunbookCreate"), Some("Runbook"), post(runbooks::create)),
    endpoint!(GET "/v1/runbooks/{runbook}", "runbook_get", "Show a runbook (by UUID or name)", since 92, 200, None, Some("Runbook"), get(runbooks::show)),
    endpoint!(PATCH "/v1/runbooks/{runbook}", "runbook_update", "Update a runbook with a JSON patch", since 92, 200, Some("JsonPatch"), Some("Runbook"), patch(runbooks::update)),
    endpoint!(DELETE "/v1/runbooks/{runbook}", "runbook_delete", "Delete a runbook", since 92, 204, None, None, delete(runbooks::delete)),
    endpoint!(GET "/v1/runbooks/{runbook}/traits", "runbook_traits_list", "A runbook's traits", since 112, 200, None, Some("Traits"), get(runbooks::traits_list)),
    endpoint!(PUT "/v1/runbooks/{runbook}/traits", "runbook_traits_replace", "Replace a runbook's traits", since 112, 204, Some("Traits"), None, put(runbooks::traits_replace)),
    endpoint!(DELETE "/v1/runbooks/{runbook}/traits", "runbook_traits_clear", "Remove all of a runbook's traits", since 112, 204, None, None, delete(runbooks::traits_clear)),
    endpoint!(PUT "/v1/runbooks/{runbook}/traits/{name}", "runbook_trait_add", "Add one trait to a runbook", since 112, 204, None, None, put(runbooks::trait_add)),
    endpoint!(DELETE "/v1/runbooks/{runbook}/traits/{name}", "runbook_trait_remove", "Remove one trait from a runbook", since 112, 204, None, None, delete(runbooks::trait_remove)),
    endpoint!(GET "/v1/allocations", "allocation_list", "List allocations", since 52, 200, None, Some("AllocationCollection"), get(allocations::list)),
    endpoint!(POST "/v1/allocations", "allocation_create", "Request a node: reserve one of a resource class with traits, or backfill a deployed node", since 52, 201, Some("AllocationCreate"), Some("Allocation"), post(allocations::create)),
    endpoint!(GET "/v1/allocations/{allocation}", "allocation_get", "Show an allocation (by UUID or name)", since 52, 200, None, Some("Allocation"), get(allocations::show)),
    endpoint!(PATCH "/v1/allocations/{allocation}", "allocation_update", "Update an allocation's name or extra with a JSON patch", since 57, 200, Some("JsonPatch"), Some("Allocation"), patch(allocations::update)),
    endpoint!(DELETE "/v1/allocations/{allocation}", "allocation_delete", "Delete an allocation and free its node", since 52, 204, None, None, delete(allocations::delete)),
    endpoint!(GET "/v1/nodes/{node}/allocation", "node_allocation_get", "The allocation holding a node", since 52, 200, None, Some("Allocation"), get(allocations::of_node)),
    endpoint!(DELETE "/v1/nodes/{node}/allocation", "node_allocation_delete", "Delete the allocation holding a node", since 52, 204, None, None, delete(allocations::delete_of_node)),
    endpoint!(GET "/v1/volume", "volume_get", "Links to the volume connectors and targets", since 32, 200, None, Some("Volume"), get(volume::root)),
    endpoint!(GET "/v1/volume/connectors", "volume_connector_list", "List volume connectors", since 32, 200, None, Some("VolumeConnectorCollection"), get(volume::connector_list)),
    endpoint!(POST "/v1/volume/connectors", "volume_connector_create", "Create a volume connector", since 32, 201, Some("VolumeConnectorCreate"), Some("VolumeConnector"), post(volume::connector_create)),
    endpoint!(GET "/v1/volume/connectors/{connector}", "volume_connector_get", "Show a volume connector", since 32, 200, None, Some("VolumeConnector"), get(volume::connector_show)),
    endpoint!(PATCH "/v1/volume/connectors/{connector}", "volume_connector_update", "Update a volume connector with a JSON patch (node powered off)", since 32, 200, Some("JsonPatch"), Some("VolumeConnector"), patch(volume::connector_update)),
    endpoint!(DELETE "/v1/volume/connectors/{connector}", "volume_connector_delete", "Delete a volume connector", since 32, 204, None, None, delete(volume::connector_delete)),
    endpoint!(GET "/v1/volume/targets", "volume_target_list", "List volume targets", since 32, 200, None, Some("VolumeTargetCollection"), get(volume::target_list)),
    endpoint!(POST "/v1/volume/targets", "volume_target_create", "Create a volume target", since 32, 201, Some("VolumeTargetCreate"), Some("VolumeTarget"), post(volume::target_create)),
    endpoint!(GET "/v1/volume/targets/{target}", "volume_target_get", "Show a volume target", since 32, 200, None, Some("VolumeTarget"), get(volume::target_show)),
    endpoint!(PATCH "/v1/volume/targets/{target}", "volume_target_update", "Update a volume target with a JSON patch (node powered off)", since 32, 200, Some("JsonPatch"), Some("VolumeTarget"), patch(volume::target_update)),
    endpoint!(DELETE "/v1/volume/targets/{target}", "volume_target_delete", "Delete a volume target", since 32, 204, None, None, delete(volume::target_delete)),
    endpoint!(GET "/v1/nodes/{node}/volume", "node_volume_get", "Links to a node's volume connectors and targets", since 32, 200, None, Some("Volume"), get(volume::node_root)),
    endpoint!(GET "/v1/nodes/{node}/volume/connectors", "node_volume_connector_list", "A node's volume connectors", since 32, 200, None, Some("VolumeConnectorCollection"), get(volume::node_connector_list)),
    endpoint!(GET "/v1/nodes/{node}/volume/targets", "node_volume_target_list", "A node's volume targets", since 32, 200, None, Some("VolumeTargetCollection"), get(volume::node_target_list)),
    endpoint!(GET "/v1/inspection_rules", "inspection_rule_list", "List inspection rules", since 96, 200, None, Some("InspectionRuleCollection"), get(inspection_rules::list)),
    endpoint!(POST "/v1/inspection_rules", "inspection_rule_create", "Create an inspection rule", since 96, 201, Some("InspectionRuleCreate"), Some("InspectionRule"), post(inspection_rules::create)),
    endpoint!(GET "/v1/inspection_rules/{rule}", "inspection_rule_get", "Show an inspection rule (conditions and actions hidden when sensitive)", since 96, 200, None, Some("InspectionRule"), get(inspection_rules::show)),
    endpoint!(PATCH "/v1/inspection_rules/{rule}", "inspection_rule_update", "Update an inspection rule with a JSON patch", since 96, 200, Some("JsonPatch"), Some("InspectionRule"), patch(inspection_rules::update)),
    endpoint!(DELETE "/v1/inspection_rules/{rule}", "inspection_rule_delete", "Delete an inspection rule", since 96, 204, None, None, delete(inspection_rules::delete)),
];

// OpenAPI schemas the resource modules contribute.
pub(crate) use events::openapi_schemas as event_schemas;
pub(crate) use inspection_rules::openapi_schemas as inspection_rule_schemas;
pub(crate) use node_extras::openapi_schemas as node_extra_schemas;
pub(crate) use volume::openapi_schemas as volume_schemas;

pub fn router(state: ApiState) -> Router {
    let max_body = state.config.max_body_bytes;
    let mut router = Router::new();
    for endpoint in ENDPOINTS {
        router = router.route(endpoint.path, (endpoint.handler)());
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(RequestBodyLimitLayer::new(max_body))
        .layer(axum::middleware::from_fn(crate::version::version_layer))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("The resource could not be found.".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed("The method is not allowed for this resource.".into())
}

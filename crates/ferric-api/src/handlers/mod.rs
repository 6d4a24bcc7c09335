//! Routes and handlers, one module per resource.

mod agent;
mod chassis;
mod conductors;
mod drivers;
mod nodes;
mod portgroups;
mod ports;
mod root;

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
    endpoint!(GET "/v1/lookup", "agent_lookup", "A ramdisk agent looks its node up by MAC or UUID", since 22, 200, None, Some("Lookup"), get(agent::lookup)),
    endpoint!(POST "/v1/heartbeat/{node}", "agent_heartbeat", "A ramdisk agent reports in", since 22, 202, Some("Heartbeat"), None, post(agent::heartbeat)),
    endpoint!(GET "/v1/conductors", "conductor_list", "List conductors", since 49, 200, None, Some("ConductorCollection"), get(conductors::list)),
    endpoint!(GET "/v1/conductors/{hostname}", "conductor_get", "Show a conductor", since 49, 200, None, Some("Conductor"), get(conductors::show)),
];

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

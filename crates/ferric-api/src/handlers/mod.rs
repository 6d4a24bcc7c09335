//! Routes and handlers, one module per resource.

mod chassis;
mod conductors;
mod drivers;
mod nodes;
mod portgroups;
mod ports;
mod root;

use axum::routing::{get, put};
use axum::Router;
use tower_http::limit::RequestBodyLimitLayer;

use crate::error::ApiError;
use crate::ApiState;

/// Resources reachable without the `/v1` prefix.
pub const TOP_LEVEL_RESOURCES: &[&str] =
    &["nodes", "ports", "portgroups", "chassis", "drivers", "conductors", "lookup", "heartbeat"];

pub fn router(state: ApiState) -> Router {
    let max_body = state.config.max_body_bytes;
    Router::new()
        .route("/", get(root::root))
        .route("/v1", get(root::v1))
        .route("/v1/nodes", get(nodes::list).post(nodes::create))
        .route("/v1/nodes/detail", get(nodes::list_detail))
        .route("/v1/nodes/{node}", get(nodes::show).patch(nodes::update).delete(nodes::delete))
        .route("/v1/nodes/{node}/states", get(nodes::states))
        .route("/v1/nodes/{node}/states/provision", put(nodes::set_provision_state))
        .route("/v1/nodes/{node}/states/power", put(nodes::set_power_state))
        .route(
            "/v1/nodes/{node}/maintenance",
            put(nodes::set_maintenance).delete(nodes::clear_maintenance),
        )
        .route(
            "/v1/nodes/{node}/management/boot_device",
            get(nodes::get_boot_device).put(nodes::set_boot_device),
        )
        .route(
            "/v1/nodes/{node}/management/boot_device/supported",
            get(nodes::supported_boot_devices),
        )
        .route("/v1/nodes/{node}/validate", get(nodes::validate))
        .route(
            "/v1/nodes/{node}/traits",
            get(nodes::traits_list).put(nodes::traits_replace).delete(nodes::traits_clear),
        )
        .route("/v1/nodes/{node}/traits/{name}", put(nodes::trait_add).delete(nodes::trait_remove))
        .route("/v1/nodes/{node}/history", get(nodes::history_list))
        .route("/v1/nodes/{node}/history/{event}", get(nodes::history_show))
        .route("/v1/nodes/{node}/ports", get(ports::list_of_node))
        .route("/v1/nodes/{node}/ports/detail", get(ports::list_of_node_detail))
        .route("/v1/nodes/{node}/portgroups", get(portgroups::list_of_node))
        .route("/v1/nodes/{node}/portgroups/detail", get(portgroups::list_of_node_detail))
        .route("/v1/ports", get(ports::list).post(ports::create))
        .route("/v1/ports/detail", get(ports::list_detail))
        .route("/v1/ports/{port}", get(ports::show).patch(ports::update).delete(ports::delete))
        .route("/v1/portgroups", get(portgroups::list).post(portgroups::create))
        .route("/v1/portgroups/detail", get(portgroups::list_detail))
        .route(
            "/v1/portgroups/{portgroup}",
            get(portgroups::show).patch(portgroups::update).delete(portgroups::delete),
        )
        .route("/v1/portgroups/{portgroup}/ports", get(portgroups::ports))
        .route("/v1/portgroups/{portgroup}/ports/detail", get(portgroups::ports_detail))
        .route("/v1/chassis", get(chassis::list).post(chassis::create))
        .route("/v1/chassis/detail", get(chassis::list_detail))
        .route(
            "/v1/chassis/{chassis}",
            get(chassis::show).patch(chassis::update).delete(chassis::delete),
        )
        .route("/v1/chassis/{chassis}/nodes", get(chassis::nodes))
        .route("/v1/chassis/{chassis}/nodes/detail", get(chassis::nodes_detail))
        .route("/v1/drivers", get(drivers::list))
        .route("/v1/drivers/{driver}", get(drivers::show))
        .route("/v1/drivers/{driver}/properties", get(drivers::properties))
        .route("/v1/conductors", get(conductors::list))
        .route("/v1/conductors/{hostname}", get(conductors::show))
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

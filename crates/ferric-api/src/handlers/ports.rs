//! `/v1/ports`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use ferric_store::{PortQuery, StoreError};
use ferric_types::validate::normalize_mac;
use ferric_types::{JsonObject, Port};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::common::{
    body_object, created, duplicate, lost_races, newest_ctx, only, or_not_found,
    show_fields_of_listing, uuid_ident, PATCH_ATTEMPTS,
};
use super::nodes;
use crate::ctx::{Body, Ctx, Listing, Params};
use crate::error::{ApiError, ApiResult};
use crate::patch::{self, Fields};
use crate::view;
use crate::ApiState;

const WRITABLE: &[(&str, u16)] = &[
    ("uuid", 1),
    ("address", 1),
    ("node_uuid", 1),
    ("portgroup_uuid", 24),
    ("extra", 1),
    ("local_link_connection", 19),
    ("pxe_enabled", 19),
    ("physical_network", 34),
    ("is_smartnic", 53),
    ("name", 88),
    ("description", 97),
    ("vendor", 100),
    ("category", 101),
];

/// Duplicate labels of a port.
const DUPLICATE_LABELS: &[(&str, &str)] = &[("address", "MAC address"), ("uuid", "UUID")];

async fn load(state: &ApiState, ident: &str) -> ApiResult<Port> {
    let uuid = uuid_ident("Port", ident)?;
    state.store.port_get(uuid).await.map_err(or_not_found("Port", ident))
}

/// Validates `local_link_connection` as Ironic does.
pub(super) fn check_local_link(link: &JsonObject, ctx: &Ctx) -> ApiResult<()> {
    if link.is_empty() {
        return Ok(());
    }
    for (key, value) in link {
        let known = matches!(key.as_str(), "switch_id" | "port_id" | "switch_info" | "hostname")
            || (key == "network_type" && ctx.version.at_least(64));
        if !known {
            return Err(ApiError::bad(format!("Unknown key \"{key}\" in local_link_connection")));
        }
        if !value.is_string() {
            return Err(ApiError::bad(format!("local_link_connection {key} must be a string")));
        }
    }
    let get = |key: &str| link.get(key).and_then(Value::as_str);
    if let Some(kind) = get("network_type") {
        match kind {
            "unmanaged" => return Ok(()),
            "managed" => {}
            other => {
                return Err(ApiError::bad(format!(
                    "Invalid network_type \"{other}\": use managed or unmanaged"
                )))
            }
        }
    }
    if let Some(switch_id) = get("switch_id") {
        let hex = switch_id.trim_start_matches("0x");
        let datapath = hex.len() == 16 && hex.chars().all(|c| c.is_ascii_hexdigit());
        if normalize_mac(switch_id).is_none() && !datapath {
            return Err(ApiError::bad(format!(
                "Invalid switch_id \"{switch_id}\": expected a MAC address or an OpenFlow datapath ID"
            )));
        }
    }
    let complete = (get("switch_id").is_some() && get("port_id").is_some())
        || (get("port_id").is_some() && get("hostname").is_some());
    if !complete {
        return Err(ApiError::bad(
            "local_link_connection needs switch_id and port_id, or port_id and hostname, or \
             network_type unmanaged",
        ));
    }
    Ok(())
}

async fn assign(
    state: &ApiState,
    ctx: &Ctx,
    port: &mut Port,
    doc: &Map<String, Value>,
) -> ApiResult<()> {
    let fields = Fields(doc);
    let address =
        fields.opt_string("address")?.ok_or_else(|| ApiError::bad("address is required"))?;
    port.address = normalize_mac(&address)
        .ok_or_else(|| ApiError::bad(format!("Expected a MAC address but received {address}.")))?;
    let node_text =
        fields.opt_string("node_uuid")?.ok_or_else(|| ApiError::bad("node_uuid is required"))?;
    if Uuid::parse_str(&node_text).is_err() && !ctx.version.at_least(94) {
        return Err(ApiError::bad(format!(
            "Expected a UUID for node_uuid but received {node_text}."
        )));
    }
    let node = nodes::load(state, &node_text)
        .await
        .map_err(|_| ApiError::bad(format!("Node {node_text} could not be found.")))?;
    port.node_uuid = node.uuid;
    port.portgroup_uuid = match fields.opt_string("portgroup_uuid")? {
        None => None,
        Some(text) => {
            let group = state
                .store
                .portgroup_get(&text)
                .await
                .map_err(|_| ApiError::bad(format!("Portgroup {text} could not be found.")))?;
            if group.node_uuid != port.node_uuid {
                return Err(ApiError::bad(
                    "The port and its portgroup must belong to the same node",
                ));
            }
            Some(group.uuid)
        }
    };
    port.extra = fields.object("extra")?;
    port.local_link_connection = fields.object("local_link_connection")?;
    check_local_link(&port.local_link_connection, ctx)?;
    port.pxe_enabled = fields.bool_or("pxe_enabled", true)?;
    port.physical_network = fields.opt_string_max("physical_network", 64)?;
    port.is_smartnic = fields.bool_or("is_smartnic", false)?;
    port.name = fields.opt_string_max("name", 255)?;
    port.description = fields.opt_string_max("description", 255)?;
    port.vendor = fields.opt_string_max("vendor", 32)?;
    port.category = fields.opt_string_max("category", 80)?;
    Ok(())
}

pub async fn create(
    State(state): State<ApiState>,
    ctx: Ctx,
    Body(body): Body<Value>,
) -> ApiResult<Response> {
    let doc = body_object(body)?;
    for key in doc.keys() {
        match WRITABLE.iter().find(|(name, _)| name == key) {
            Some((_, minor)) => ctx.version.require(*minor, &format!("The attribute {key}"))?,
            None => return Err(ApiError::bad(format!("Unknown attribute for port: {key}"))),
        }
    }
    let uuid = Fields(&doc).opt_uuid("uuid")?.unwrap_or_else(Uuid::new_v4);
    let mut port = Port::new(uuid, String::new(), Uuid::nil());
    assign(&state, &ctx, &mut port, &doc).await?;
    let stored =
        state.store.port_create(&port).await.map_err(duplicate("A port", DUPLICATE_LABELS))?;
    Ok(created(&ctx, &format!("ports/{}", stored.uuid), view::port(&stored, &ctx, None)))
}

pub async fn show(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    mut params: Params,
) -> ApiResult<Json<Value>> {
    let fields = show_fields_of_listing(&mut params, &ctx, view::PORT_FIELDS)?;
    let port = load(&state, &ident).await?;
    Ok(Json(view::port(&port, &ctx, fields.as_deref())))
}

pub async fn update(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    Body(ops): Body<Value>,
) -> ApiResult<Json<Value>> {
    let patchable: Vec<&str> = WRITABLE
        .iter()
        .filter(|(name, minor)| *name != "uuid" && ctx.version.at_least(*minor))
        .map(|(n, _)| *n)
        .collect();
    let known = view::field_names(view::PORT_FIELDS);
    // The write is conditional on the port being unchanged since it was
    // read (the conductor writes VIFs and inspection-rule changes to ports
    // too); a lost race re-reads and re-applies the patch.
    for _ in 0..PATCH_ATTEMPTS {
        let mut port = load(&state, &ident).await?;
        let node_uuid = port.node_uuid;
        let before = only(view::port(&port, &newest_ctx(), None), &patchable);
        let after = patch::apply(&before, &ops, &patchable, &known)?;
        assign(&state, &ctx, &mut port, &after).await?;
        match state.store.ports_update_for_node(node_uuid, std::slice::from_ref(&port)).await {
            Ok(mut stored) if !stored.is_empty() => {
                return Ok(Json(view::port(&stored.remove(0), &ctx, None)))
            }
            Ok(_) | Err(StoreError::Stale { .. }) => {}
            Err(StoreError::NotFound { .. }) => {
                return Err(ApiError::NotFound(format!("Port {ident} could not be found.")))
            }
            Err(other) => return Err(duplicate("A port", DUPLICATE_LABELS)(other)),
        }
    }
    Err(lost_races("Port", &ident))
}

pub async fn delete(
    State(state): State<ApiState>,
    Path(ident): Path<String>,
) -> ApiResult<StatusCode> {
    let port = load(&state, &ident).await?;
    state.store.port_delete(port.uuid).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn list_ports(
    state: &ApiState,
    ctx: &Ctx,
    mut params: Params,
    force_detail: bool,
    mut query: PortQuery,
    path: &str,
) -> ApiResult<Json<Value>> {
    if let Some(node) = params.take("node").or(params.take("node_uuid")) {
        query.node_uuid = Some(nodes::load(state, &node).await?.uuid);
    }
    if let Some(address) = params.take("address") {
        query.address = Some(normalize_mac(&address).unwrap_or(address));
    }
    if let Some(group) = params.take_since("portgroup", ctx, 24)? {
        query.portgroup_uuid = Some(state.store.portgroup_get(&group).await?.uuid);
    }
    query.shard = params.take_since("shard", ctx, 82)?;
    let listing = Listing::parse(&mut params, ctx, true)?;
    params.finish()?;
    if let Some(key) = &listing.sort_key {
        if key != "id" {
            return Err(ApiError::bad(format!(
                "The sort_key value \"{key}\" is not supported for ports"
            )));
        }
    }
    let detail = force_detail || listing.detail;
    if detail && listing.fields.is_some() {
        return Err(ApiError::bad("Can not specify ?detail=True and fields in the same request."));
    }
    view::check_selection(listing.fields.as_deref(), view::PORT_FIELDS, ctx)?;
    query.page = listing.page.clone();
    let ports = state.store.port_list(&query).await.map_err(|error| match error {
        StoreError::NotFound { .. } => ApiError::bad("The marker does not name an existing port"),
        other => other.into(),
    })?;
    let fields = listing.selection(detail, &["uuid", "address"]);
    let items = ports.iter().map(|port| view::port(port, ctx, fields.as_deref())).collect();
    let marker = ports.last().map(|port| port.uuid.to_string());
    Ok(Json(listing.finish_collection(ctx, path, "ports", items, marker)))
}

pub async fn list(
    State(state): State<ApiState>,
    ctx: Ctx,
    params: Params,
) -> ApiResult<Json<Value>> {
    list_ports(&state, &ctx, params, false, PortQuery::default(), "ports").await
}

pub async fn list_detail(
    State(state): State<ApiState>,
    ctx: Ctx,
    params: Params,
) -> ApiResult<Json<Value>> {
    list_ports(&state, &ctx, params, true, PortQuery::default(), "ports/detail").await
}

pub async fn list_of_node(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let node = nodes::load(&state, &ident).await?;
    let query = PortQuery { node_uuid: Some(node.uuid), ..PortQuery::default() };
    list_ports(&state, &ctx, params, false, query, &format!("nodes/{}/ports", node.uuid)).await
}

pub async fn list_of_node_detail(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let node = nodes::load(&state, &ident).await?;
    let query = PortQuery { node_uuid: Some(node.uuid), ..PortQuery::default() };
    list_ports(&state, &ctx, params, true, query, &format!("nodes/{}/ports/detail", node.uuid))
        .await
}

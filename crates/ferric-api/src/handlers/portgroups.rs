//! `/v1/portgroups` (1.23).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use ferric_store::{PortQuery, StoreError};
use ferric_types::validate::{is_valid_logical_name, normalize_mac};
use ferric_types::Portgroup;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::common::{
    body_object, created, duplicate, lost_races, newest_ctx, only, or_not_found,
    show_fields_of_listing, unless_stale, PATCH_ATTEMPTS,
};
use super::{nodes, ports};
use crate::ctx::{Body, Ctx, Listing, Params};
use crate::error::{ApiError, ApiResult};
use crate::patch::{self, Fields};
use crate::view;
use crate::ApiState;

const WRITABLE: &[(&str, u16)] = &[
    ("uuid", 23),
    ("name", 23),
    ("address", 23),
    ("node_uuid", 23),
    ("extra", 23),
    ("standalone_ports_supported", 23),
    ("mode", 26),
    ("properties", 26),
    ("physical_network", 102),
    ("category", 103),
];

async fn load(state: &ApiState, ctx: &Ctx, ident: &str) -> ApiResult<Portgroup> {
    ctx.version.require_endpoint(23)?;
    state.store.portgroup_get(ident).await.map_err(or_not_found("Portgroup", ident))
}

/// Duplicate labels of a portgroup (its unique fields, by their own names).
const DUPLICATE_LABELS: &[(&str, &str)] =
    &[("uuid", "uuid"), ("name", "name"), ("address", "address")];

async fn assign(
    state: &ApiState,
    group: &mut Portgroup,
    doc: &Map<String, Value>,
) -> ApiResult<()> {
    let fields = Fields(doc);
    let node_text =
        fields.opt_string("node_uuid")?.ok_or_else(|| ApiError::bad("node_uuid is required"))?;
    let node = nodes::load(state, &node_text)
        .await
        .map_err(|_| ApiError::bad(format!("Node {node_text} could not be found.")))?;
    group.node_uuid = node.uuid;
    group.name = fields.opt_string("name")?;
    if let Some(name) = &group.name {
        if !is_valid_logical_name(name) || Uuid::parse_str(name).is_ok() {
            return Err(ApiError::bad(format!("Expected a logical name but received {name}.")));
        }
    }
    group.address = match fields.opt_string("address")? {
        None => None,
        Some(text) => Some(normalize_mac(&text).ok_or_else(|| {
            ApiError::bad(format!("Expected a MAC address but received {text}."))
        })?),
    };
    group.extra = fields.object("extra")?;
    group.standalone_ports_supported = fields.bool_or("standalone_ports_supported", true)?;
    group.mode = fields.opt_string_max("mode", 255)?;
    group.properties = fields.object("properties")?;
    group.physical_network = fields.opt_string_max("physical_network", 64)?;
    group.category = fields.opt_string_max("category", 80)?;
    Ok(())
}

pub async fn create(
    State(state): State<ApiState>,
    ctx: Ctx,
    Body(body): Body<Value>,
) -> ApiResult<Response> {
    ctx.version.require_endpoint(23)?;
    let doc = body_object(body)?;
    for key in doc.keys() {
        match WRITABLE.iter().find(|(name, _)| name == key) {
            Some((_, minor)) => ctx.version.require(*minor, &format!("The attribute {key}"))?,
            None => return Err(ApiError::bad(format!("Unknown attribute for portgroup: {key}"))),
        }
    }
    let uuid = Fields(&doc).opt_uuid("uuid")?.unwrap_or_else(Uuid::new_v4);
    let mut group = Portgroup::new(uuid, Uuid::nil());
    assign(&state, &mut group, &doc).await?;
    let stored = state
        .store
        .portgroup_create(&group)
        .await
        .map_err(duplicate("A portgroup", DUPLICATE_LABELS))?;
    let body = view::portgroup(&stored, &ctx, None);
    Ok(created(&ctx, &format!("portgroups/{}", stored.uuid), body))
}

pub async fn show(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    mut params: Params,
) -> ApiResult<Json<Value>> {
    let fields = show_fields_of_listing(&mut params, &ctx, view::PORTGROUP_FIELDS)?;
    let group = load(&state, &ctx, &ident).await?;
    Ok(Json(view::portgroup(&group, &ctx, fields.as_deref())))
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
        .map(|(name, _)| *name)
        .collect();
    let known = view::field_names(view::PORTGROUP_FIELDS);
    // Conditional on the portgroup being unchanged since it was read (the
    // conductor writes VIFs to portgroups too); a lost race re-reads and
    // re-applies the patch.
    for _ in 0..PATCH_ATTEMPTS {
        let mut group = load(&state, &ctx, &ident).await?;
        let before = only(view::portgroup(&group, &newest_ctx(), None), &patchable);
        let after = patch::apply(&before, &ops, &patchable, &known)?;
        assign(&state, &mut group, &after).await?;
        let stored = unless_stale(state.store.portgroup_update(&group).await)
            .map_err(duplicate("A portgroup", DUPLICATE_LABELS))?;
        if let Some(stored) = stored {
            return Ok(Json(view::portgroup(&stored, &ctx, None)));
        }
    }
    Err(lost_races("Portgroup", &ident))
}

pub async fn delete(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<StatusCode> {
    let group = load(&state, &ctx, &ident).await?;
    state.store.portgroup_delete(group.uuid).await.map_err(|error| match error {
        StoreError::InUse { .. } => ApiError::Conflict(format!(
            "Portgroup {} still has ports; delete or move them first.",
            group.uuid
        )),
        other => other.into(),
    })?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_groups(
    state: &ApiState,
    ctx: &Ctx,
    mut params: Params,
    force_detail: bool,
    mut query: PortQuery,
    path: &str,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(23)?;
    if let Some(node) = params.take("node") {
        query.node_uuid = Some(nodes::load(state, &node).await?.uuid);
    }
    if let Some(address) = params.take("address") {
        query.address = Some(normalize_mac(&address).unwrap_or(address));
    }
    query.shard = params.take_since("shard", ctx, 106)?;
    let listing = Listing::parse(&mut params, ctx, true)?;
    params.finish()?;
    let detail = force_detail || listing.detail;
    view::check_selection(listing.fields.as_deref(), view::PORTGROUP_FIELDS, ctx)?;
    query.page = listing.page.clone();
    let groups = state.store.portgroup_list(&query).await?;
    let fields = listing.selection(detail, &["uuid", "address", "name"]);
    let items = groups.iter().map(|group| view::portgroup(group, ctx, fields.as_deref())).collect();
    let marker = groups.last().map(|group| group.uuid.to_string());
    Ok(Json(listing.finish_collection(ctx, path, "portgroups", items, marker)))
}

pub async fn list(
    State(state): State<ApiState>,
    ctx: Ctx,
    params: Params,
) -> ApiResult<Json<Value>> {
    list_groups(&state, &ctx, params, false, PortQuery::default(), "portgroups").await
}

pub async fn list_detail(
    State(state): State<ApiState>,
    ctx: Ctx,
    params: Params,
) -> ApiResult<Json<Value>> {
    list_groups(&state, &ctx, params, true, PortQuery::default(), "portgroups/detail").await
}

pub async fn list_of_node(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(24)?;
    let node = nodes::load(&state, &ident).await?;
    let query = PortQuery { node_uuid: Some(node.uuid), ..PortQuery::default() };
    list_groups(&state, &ctx, params, false, query, &format!("nodes/{}/portgroups", node.uuid))
        .await
}

pub async fn list_of_node_detail(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(24)?;
    let node = nodes::load(&state, &ident).await?;
    let query = PortQuery { node_uuid: Some(node.uuid), ..PortQuery::default() };
    list_groups(
        &state,
        &ctx,
        params,
        true,
        query,
        &format!("nodes/{}/portgroups/detail", node.uuid),
    )
    .await
}

pub async fn ports(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(24)?;
    let group = load(&state, &ctx, &ident).await?;
    let query = PortQuery { portgroup_uuid: Some(group.uuid), ..PortQuery::default() };
    ports::list_ports(
        &state,
        &ctx,
        params,
        false,
        query,
        &format!("portgroups/{}/ports", group.uuid),
    )
    .await
}

pub async fn ports_detail(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(24)?;
    let group = load(&state, &ctx, &ident).await?;
    let query = PortQuery { portgroup_uuid: Some(group.uuid), ..PortQuery::default() };
    ports::list_ports(
        &state,
        &ctx,
        params,
        true,
        query,
        &format!("portgroups/{}/ports/detail", group.uuid),
    )
    .await
}

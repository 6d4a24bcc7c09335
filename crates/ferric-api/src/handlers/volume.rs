//! `/v1/volume`, `/v1/volume/connectors`, `/v1/volume/targets` and the
//! node's `/v1/nodes/{node}/volume[...]` (1.32): boot-from-volume records.
//!
//! As in Ironic, changing a connector or target needs its node powered off
//! (deleting one is also allowed while the node may itself be deleted:
//! enroll, manageable, adopt failed), and never while the node is locked;
//! creating one has no such rule.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use ferric_store::{ConnectorSortKey, StoreError, TargetSortKey, VolumeQuery};
use ferric_types::{
    ConnectorType, JsonObject, Node, PowerState, ProvisionState, Timestamp, VolumeConnector,
    VolumeTarget,
};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::common::{
    body_object, created, duplicate, lost_races, newest_ctx, only, or_not_found, unless_stale,
    uuid_ident, PATCH_ATTEMPTS, UUID_ONLY,
};
use super::nodes;
use crate::ctx::{Body, Ctx, Listing, Params};
use crate::error::{ApiError, ApiResult};
use crate::patch::{self, Fields};
use crate::view;
use crate::ApiState;

/// The microversion that introduced the volume API.
const SINCE: u16 = 32;

const CONNECTOR_WRITABLE: &[&str] = &["uuid", "node_uuid", "type", "connector_id", "extra"];
const CONNECTOR_PATCHABLE: &[&str] = &["node_uuid", "type", "connector_id", "extra"];
const TARGET_WRITABLE: &[&str] =
    &["uuid", "node_uuid", "volume_type", "properties", "boot_index", "volume_id", "extra"];
const TARGET_PATCHABLE: &[&str] =
    &["node_uuid", "volume_type", "properties", "boot_index", "volume_id", "extra"];

/// Which of the two collections a request is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Connector,
    Target,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Self::Connector => "volume connector",
            Self::Target => "volume target",
        }
    }
}

/// `{links, connectors, targets}` for `base` (`volume` or `nodes/{uuid}/volume`).
fn volume_links(ctx: &Ctx, base: &str) -> Value {
    json!({
        "links": ctx.links(&format!("{base}/")),
        "connectors": ctx.links(&format!("{base}/connectors")),
        "targets": ctx.links(&format!("{base}/targets")),
    })
}

pub async fn root(ctx: Ctx, params: Params) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(SINCE)?;
    params.finish()?;
    Ok(Json(volume_links(&ctx, "volume")))
}

pub async fn node_root(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(SINCE)?;
    params.finish()?;
    let node = nodes::load(&state, &ident).await?;
    Ok(Json(volume_links(&ctx, &format!("nodes/{}/volume", node.uuid))))
}

async fn load_connector(state: &ApiState, ident: &str) -> ApiResult<VolumeConnector> {
    let uuid = uuid_ident("Volume connector", ident)?;
    state.store.volume_connector_get(uuid).await.map_err(or_not_found("Volume connector", ident))
}

async fn load_target(state: &ApiState, ident: &str) -> ApiResult<VolumeTarget> {
    let uuid = uuid_ident("Volume target", ident)?;
    state.store.volume_target_get(uuid).await.map_err(or_not_found("Volume target", ident))
}

/// The node named by `node_uuid` in a body (a UUID; 400 if it is missing).
async fn node_of(state: &ApiState, fields: &Fields<'_>) -> ApiResult<Node> {
    let text =
        fields.opt_string("node_uuid")?.ok_or_else(|| ApiError::bad("node_uuid is required"))?;
    if Uuid::parse_str(&text).is_err() {
        return Err(ApiError::bad(format!("Expected a UUID for node_uuid, but received {text}.")));
    }
    nodes::load(state, &text)
        .await
        .map_err(|_| ApiError::bad(format!("Node {text} could not be found.")))
}

/// 409 while the node is locked; 400 unless it is powered off (or, when
/// deleting, in a state where the node itself could be deleted).
fn check_node(node: &Node, action: &str, deleting: bool) -> ApiResult<()> {
    if let Some(host) = &node.reservation {
        return Err(ApiError::Conflict(format!(
            "Node {} is locked by host {host}, please retry after the current operation is completed.",
            node.uuid
        )));
    }
    let deletable = matches!(
        node.provision_state,
        ProvisionState::Enroll | ProvisionState::Manageable | ProvisionState::AdoptFailed
    );
    if node.power_state == Some(PowerState::Off) || (deleting && deletable) {
        return Ok(());
    }
    let state = node.power_state.map_or("None", PowerState::as_str);
    Err(ApiError::bad(format!(
        "The requested action \"{action}\" can not be performed on node \"{}\" while it is in \
         state \"{state}\".",
        node.uuid
    )))
}

fn check_keys(doc: &Map<String, Value>, allowed: &[&str], kind: Kind) -> ApiResult<()> {
    match doc.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => Err(ApiError::bad(format!("Unknown attribute for {}: {key}", kind.noun()))),
        None => Ok(()),
    }
}

fn required_string(fields: &Fields<'_>, key: &str, max: usize) -> ApiResult<String> {
    match fields.opt_string_max(key, max)? {
        Some(text) if !text.is_empty() => Ok(text),
        _ => Err(ApiError::bad(format!("{key} is required"))),
    }
}

async fn assign_connector(
    state: &ApiState,
    connector: &mut VolumeConnector,
    doc: &Map<String, Value>,
) -> ApiResult<Node> {
    let fields = Fields(doc);
    let node = node_of(state, &fields).await?;
    connector.node_uuid = node.uuid;
    let kind = required_string(&fields, "type", 32)?;
    connector.connector_type = ConnectorType::parse(&kind).ok_or_else(|| {
        ApiError::bad(format!(
            "Invalid volume connector type \"{kind}\": use one of {}",
            ConnectorType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
        ))
    })?;
    let id = required_string(&fields, "connector_id", 255)?;
    connector.connector_id = connector.connector_type.normalize_id(&id).map_err(ApiError::bad)?;
    connector.extra = fields.object("extra")?;
    Ok(node)
}

async fn assign_target(
    state: &ApiState,
    target: &mut VolumeTarget,
    doc: &Map<String, Value>,
) -> ApiResult<Node> {
    let fields = Fields(doc);
    let node = node_of(state, &fields).await?;
    target.node_uuid = node.uuid;
    target.volume_type = required_string(&fields, "volume_type", 64)?;
    target.volume_id = required_string(&fields, "volume_id", 36)?;
    target.boot_index = match doc.get("boot_index") {
        None | Some(Value::Null) => return Err(ApiError::bad("boot_index is required")),
        Some(Value::Number(number)) => number.as_i64().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::bad(format!(
                "Invalid value for boot_index: expected a non-negative integer, got {number}"
            ))
        })?,
        Some(other) => {
            return Err(ApiError::bad(format!(
                "Invalid value for boot_index: expected a non-negative integer, got {other}"
            )))
        }
    };
    target.properties = fields.object("properties")?;
    target.extra = fields.object("extra")?;
    Ok(node)
}

fn target_duplicate(error: StoreError) -> ApiError {
    match error {
        StoreError::Duplicate { field: "boot_index", value, .. } => ApiError::Conflict(format!(
            "A volume target with boot index '{value}' for the same node already exists."
        )),
        other => duplicate("A volume target", UUID_ONLY)(other),
    }
}

fn connector_duplicate(connector: &VolumeConnector) -> impl Fn(StoreError) -> ApiError + '_ {
    move |error| match error {
        StoreError::Duplicate { field: "connector_id", .. } => ApiError::Conflict(format!(
            "A volume connector with type {} and connector ID {} already exists.",
            connector.connector_type, connector.connector_id
        )),
        other => duplicate("A volume connector", UUID_ONLY)(other),
    }
}

// ---- connectors ----

pub async fn connector_create(
    State(state): State<ApiState>,
    ctx: Ctx,
    Body(body): Body<Value>,
) -> ApiResult<Response> {
    ctx.version.require_endpoint(SINCE)?;
    let doc = body_object(body)?;
    check_keys(&doc, CONNECTOR_WRITABLE, Kind::Connector)?;
    let mut connector = VolumeConnector {
        id: 0,
        uuid: Fields(&doc).opt_uuid("uuid")?.unwrap_or_else(Uuid::new_v4),
        node_uuid: Uuid::nil(),
        connector_type: ConnectorType::Iqn,
        connector_id: String::new(),
        extra: JsonObject::new(),
        created_at: Timestamp::now(),
        updated_at: None,
    };
    assign_connector(&state, &mut connector, &doc).await?;
    let stored = state
        .store
        .volume_connector_create(&connector)
        .await
        .map_err(connector_duplicate(&connector))?;
    let body = view::volume_connector(&stored, &ctx, None);
    Ok(created(&ctx, &format!("volume/connectors/{}", stored.uuid), body))
}

pub async fn connector_show(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    mut params: Params,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(SINCE)?;
    let fields = take_fields(&mut params, &ctx, view::VOLUME_CONNECTOR_FIELDS)?;
    params.finish()?;
    let connector = load_connector(&state, &ident).await?;
    Ok(Json(view::volume_connector(&connector, &ctx, fields.as_deref())))
}

pub async fn connector_update(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    Body(ops): Body<Value>,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(SINCE)?;
    let known = view::field_names(view::VOLUME_CONNECTOR_FIELDS);
    // Conditional on the connector being unchanged since it was read; a
    // lost race re-reads and re-applies the patch.
    for _ in 0..PATCH_ATTEMPTS {
        let mut connector = load_connector(&state, &ident).await?;
        let before =
            only(view::volume_connector(&connector, &newest_ctx(), None), CONNECTOR_PATCHABLE);
        let after = patch::apply(&before, &ops, CONNECTOR_PATCHABLE, &known)?;
        let old_node = nodes::load(&state, &connector.node_uuid.to_string()).await?;
        let node = assign_connector(&state, &mut connector, &after).await?;
        check_node(&old_node, "volume connector update", false)?;
        check_node(&node, "volume connector update", false)?;
        let stored = unless_stale(state.store.volume_connector_update(&connector).await)
            .map_err(connector_duplicate(&connector))?;
        if let Some(stored) = stored {
            return Ok(Json(view::volume_connector(&stored, &ctx, None)));
        }
    }
    Err(lost_races("Volume connector", &ident))
}

pub async fn connector_delete(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.version.require_endpoint(SINCE)?;
    let connector = load_connector(&state, &ident).await?;
    let node = nodes::load(&state, &connector.node_uuid.to_string()).await?;
    check_node(&node, "volume connector deletion", true)?;
    state.store.volume_connector_delete(connector.uuid).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- targets ----

pub async fn target_create(
    State(state): State<ApiState>,
    ctx: Ctx,
    Body(body): Body<Value>,
) -> ApiResult<Response> {
    ctx.version.require_endpoint(SINCE)?;
    let doc = body_object(body)?;
    check_keys(&doc, TARGET_WRITABLE, Kind::Target)?;
    let mut target = VolumeTarget {
        id: 0,
        uuid: Fields(&doc).opt_uuid("uuid")?.unwrap_or_else(Uuid::new_v4),
        node_uuid: Uuid::nil(),
        volume_type: String::new(),
        properties: JsonObject::new(),
        boot_index: 0,
        volume_id: String::new(),
        extra: JsonObject::new(),
        created_at: Timestamp::now(),
        updated_at: None,
    };
    assign_target(&state, &mut target, &doc).await?;
    let stored = state.store.volume_target_create(&target).await.map_err(target_duplicate)?;
    let body = view::volume_target(&stored, &ctx, None);
    Ok(created(&ctx, &format!("volume/targets/{}", stored.uuid), body))
}

pub async fn target_show(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    mut params: Params,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(SINCE)?;
    let fields = take_fields(&mut params, &ctx, view::VOLUME_TARGET_FIELDS)?;
    params.finish()?;
    let target = load_target(&state, &ident).await?;
    Ok(Json(view::volume_target(&target, &ctx, fields.as_deref())))
}

pub async fn target_update(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    Body(ops): Body<Value>,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(SINCE)?;
    let known = view::field_names(view::VOLUME_TARGET_FIELDS);
    // Conditional on the target being unchanged since it was read; a lost
    // race re-reads and re-applies the patch.
    for _ in 0..PATCH_ATTEMPTS {
        let mut target = load_target(&state, &ident).await?;
        // The stored properties, not the masked view, are what a patch edits.
        let mut before = only(view::volume_target(&target, &newest_ctx(), None), TARGET_PATCHABLE);
        before.insert("properties".into(), Value::Object(target.properties.clone()));
        let after = patch::apply(&before, &ops, TARGET_PATCHABLE, &known)?;
        let old_node = nodes::load(&state, &target.node_uuid.to_string()).await?;
        let node = assign_target(&state, &mut target, &after).await?;
        check_node(&old_node, "volume target update", false)?;
        check_node(&node, "volume target update", false)?;
        let stored = unless_stale(state.store.volume_target_update(&target).await)
            .map_err(target_duplicate)?;
        if let Some(stored) = stored {
            return Ok(Json(view::volume_target(&stored, &ctx, None)));
        }
    }
    Err(lost_races("Volume target", &ident))
}

pub async fn target_delete(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.version.require_endpoint(SINCE)?;
    let target = load_target(&state, &ident).await?;
    let node = nodes::load(&state, &target.node_uuid.to_string()).await?;
    check_node(&node, "volume target deletion", true)?;
    state.store.volume_target_delete(target.uuid).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- listings ----

/// `fields=` for one resource (`detail` is not accepted there).
fn take_fields(
    params: &mut Params,
    ctx: &Ctx,
    table: &[(&str, u16)],
) -> ApiResult<Option<Vec<String>>> {
    let listing = Listing::parse(params, ctx, true)?;
    view::check_selection(listing.fields.as_deref(), table, ctx)?;
    Ok(listing.fields)
}

/// A parsed listing request: `node`, `detail` (accepted from 1.32 here),
/// paging, sorting and fields.
struct ListRequest {
    node_uuid: Option<Uuid>,
    listing: Listing,
    detail: bool,
}

async fn list_request(
    state: &ApiState,
    ctx: &Ctx,
    params: &mut Params,
    node: Option<Uuid>,
    table: &[(&str, u16)],
) -> ApiResult<ListRequest> {
    ctx.version.require_endpoint(SINCE)?;
    let filter = params.take("node");
    let node_uuid = match (node, filter) {
        (Some(uuid), _) => Some(uuid),
        (None, Some(ident)) => Some(nodes::load(state, &ident).await?.uuid),
        (None, None) => None,
    };
    let detail = params.take_bool("detail")?.unwrap_or(false);
    let listing = Listing::parse(params, ctx, true)?;
    params.finish()?;
    if detail && listing.fields.is_some() {
        return Err(ApiError::bad("Can't fetch a subset of fields with 'detail' set"));
    }
    view::check_selection(listing.fields.as_deref(), table, ctx)?;
    Ok(ListRequest { node_uuid, listing, detail })
}

fn sort_error(key: &str, unsortable: &[&str]) -> ApiError {
    if unsortable.contains(&key) {
        ApiError::bad(format!("The sort_key value {key} is an invalid field for sorting"))
    } else {
        ApiError::bad(format!("The sort_key value \"{key}\" is not a valid sort key"))
    }
}

fn marker_error(kind: Kind) -> impl Fn(StoreError) -> ApiError {
    move |error| match error {
        StoreError::NotFound { kind: "marker", ident } => {
            ApiError::bad(format!("The marker {ident} does not name an existing {}", kind.noun()))
        }
        other => other.into(),
    }
}

/// Default fields of a non-detailed listing, or the selection.
fn selection(request: &ListRequest, defaults: &[&str]) -> Option<Vec<String>> {
    request.listing.selection(request.detail, defaults)
}

async fn list_connectors(
    state: &ApiState,
    ctx: &Ctx,
    mut params: Params,
    node: Option<Uuid>,
    path: &str,
) -> ApiResult<Json<Value>> {
    let request =
        list_request(state, ctx, &mut params, node, view::VOLUME_CONNECTOR_FIELDS).await?;
    let sort_key = match &request.listing.sort_key {
        None => ConnectorSortKey::Id,
        Some(key) => ConnectorSortKey::parse(key).ok_or_else(|| sort_error(key, &["extra"]))?,
    };
    let query =
        VolumeQuery { node_uuid: request.node_uuid, sort_key, page: request.listing.page.clone() };
    let connectors =
        state.store.volume_connector_list(&query).await.map_err(marker_error(Kind::Connector))?;
    let fields = selection(&request, &["uuid", "node_uuid", "type", "connector_id"]);
    let items =
        connectors.iter().map(|c| view::volume_connector(c, ctx, fields.as_deref())).collect();
    let marker = connectors.last().map(|c| c.uuid.to_string());
    Ok(Json(request.listing.finish_collection(ctx, path, "connectors", items, marker)))
}

async fn list_targets(
    state: &ApiState,
    ctx: &Ctx,
    mut params: Params,
    node: Option<Uuid>,
    path: &str,
) -> ApiResult<Json<Value>> {
    let request = list_request(state, ctx, &mut params, node, view::VOLUME_TARGET_FIELDS).await?;
    let sort_key = match &request.listing.sort_key {
        None => TargetSortKey::Id,
        Some(key) => {
            TargetSortKey::parse(key).ok_or_else(|| sort_error(key, &["extra", "properties"]))?
        }
    };
    let query =
        VolumeQuery { node_uuid: request.node_uuid, sort_key, page: request.listing.page.clone() };
    let targets =
        state.store.volume_target_list(&query).await.map_err(marker_error(Kind::Target))?;
    let fields =
        selection(&request, &["uuid", "node_uuid", "volume_type", "boot_index", "volume_id"]);
    let items = targets.iter().map(|t| view::volume_target(t, ctx, fields.as_deref())).collect();
    let marker = targets.last().map(|t| t.uuid.to_string());
    Ok(Json(request.listing.finish_collection(ctx, path, "targets", items, marker)))
}

pub async fn connector_list(
    State(state): State<ApiState>,
    ctx: Ctx,
    params: Params,
) -> ApiResult<Json<Value>> {
    list_connectors(&state, &ctx, params, None, "volume/connectors").await
}

pub async fn target_list(
    State(state): State<ApiState>,
    ctx: Ctx,
    params: Params,
) -> ApiResult<Json<Value>> {
    list_targets(&state, &ctx, params, None, "volume/targets").await
}

pub async fn node_connector_list(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(SINCE)?;
    let node = nodes::load(&state, &ident).await?;
    let path = format!("nodes/{}/volume/connectors", node.uuid);
    list_connectors(&state, &ctx, params, Some(node.uuid), &path).await
}

pub async fn node_target_list(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(SINCE)?;
    let node = nodes::load(&state, &ident).await?;
    let path = format!("nodes/{}/volume/targets", node.uuid);
    list_targets(&state, &ctx, params, Some(node.uuid), &path).await
}

/// OpenAPI schemas of the volume resources.
pub(crate) fn openapi_schemas() -> Vec<(&'static str, Value)> {
    let links = json!({"$ref": "#/components/schemas/Links"});
    let stamp = json!({"type": ["string", "null"], "format": "date-time"});
    let since = "1.32";
    let connector = json!({"type": "object", "x-since-microversion": since, "properties": {
        "uuid": {"type": "string", "format": "uuid"},
        "node_uuid": {"type": "string", "format": "uuid"},
        "type": {"type": "string", "enum": ConnectorType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>()},
        "connector_id": {"type": "string", "maxLength": 255},
        "extra": {"type": "object"},
        "created_at": stamp, "updated_at": stamp, "links": links}});
    let target = json!({"type": "object", "x-since-microversion": since, "properties": {
        "uuid": {"type": "string", "format": "uuid"},
        "node_uuid": {"type": "string", "format": "uuid"},
        "volume_type": {"type": "string", "maxLength": 64},
        "properties": {"type": "object", "description": "Secrets (e.g. CHAP passwords) are masked"},
        "boot_index": {"type": "integer", "minimum": 0},
        "volume_id": {"type": "string", "maxLength": 36},
        "extra": {"type": "object"},
        "created_at": stamp, "updated_at": stamp, "links": links}});
    let writable = |schema: &Value, required: &[&str]| {
        let mut body = schema.clone();
        if let Some(properties) = body["properties"].as_object_mut() {
            for key in ["created_at", "updated_at", "links"] {
                properties.remove(key);
            }
        }
        body["required"] = json!(required);
        body
    };
    let collection = |key: &str, item: &str| {
        json!({"type": "object", "required": [key], "properties": {
            key: {"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}},
            "next": {"type": "string", "description": "The next page, present when this page is full"}}})
    };
    vec![
        (
            "Volume",
            json!({"type": "object", "properties": {
            "links": links, "connectors": links, "targets": links}}),
        ),
        ("VolumeConnectorCreate", writable(&connector, &["node_uuid", "type", "connector_id"])),
        (
            "VolumeTargetCreate",
            writable(&target, &["node_uuid", "volume_type", "boot_index", "volume_id"]),
        ),
        ("VolumeConnector", connector),
        ("VolumeTarget", target),
        ("VolumeConnectorCollection", collection("connectors", "VolumeConnector")),
        ("VolumeTargetCollection", collection("targets", "VolumeTarget")),
    ]
}

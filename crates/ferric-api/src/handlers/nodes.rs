//! `/v1/nodes` and everything under it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferric_store::{NodeFilters, NodeIdent, NodeQuery, NodeSortKey, StoreError};
use ferric_types::validate::{is_valid_logical_name, is_valid_trait};
use ferric_types::{
    apply_verb, BootDevice, Fault, HardwareType, InterfaceImpl, InterfaceKind, Node, PendingAction,
    PowerTarget, ProvisionRequest, ProvisionState, Timestamp, Verb,
};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::common::{body_object, created, duplicate, NAME_OR_UUID};
use crate::cache::{Shape, Variant};
use crate::ctx::{Body, Ctx, Listing, Params};
use crate::error::{ApiError, ApiResult};
use crate::patch::{self, Fields};
use crate::view;
use crate::ApiState;

/// How many times a write is retried after losing a race with another writer.
const WRITE_ATTEMPTS: usize = 5;

/// Most traits a node may have (as in Ironic).
const MAX_TRAITS: usize = 50;

/// Longest maintenance reason accepted (ferric's own reasons quote errors).
const MAX_REASON: usize = 4096;

pub(super) fn not_found(ident: &str) -> ApiError {
    ApiError::NotFound(format!("Node {ident} could not be found."))
}

pub(super) async fn load(state: &ApiState, ident: &str) -> ApiResult<Node> {
    match state.store.node_get(&NodeIdent::parse(ident)).await {
        Ok(node) => Ok(node),
        Err(StoreError::NotFound { .. }) => Err(not_found(ident)),
        Err(other) => Err(other.into()),
    }
}

pub(super) fn locked(node: &Node) -> Option<ApiError> {
    node.reservation.as_ref().map(|host| {
        ApiError::Conflict(format!(
            "Node {} is locked by host {host}, please retry after the current operation is completed.",
            node.uuid
        ))
    })
}

/// Loads the node, lets `change` modify it, and writes it back on condition
/// that nobody else wrote in between (retrying if someone did). `change`
/// sees the freshest node each time and may refuse with an error.
pub(super) async fn mutate<F>(state: &ApiState, ident: &str, mut change: F) -> ApiResult<Node>
where
    F: FnMut(&mut Node) -> ApiResult<()>,
{
    for _ in 0..WRITE_ATTEMPTS {
        let mut node = load(state, ident).await?;
        change(&mut node)?;
        match state.store.node_update(&node).await {
            Ok(stored) => return Ok(stored),
            Err(StoreError::Stale { .. }) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(ApiError::Conflict(format!("Node {ident} is being changed by others; please retry")))
}

async fn render(
    state: &ApiState,
    ctx: &Ctx,
    node: &Node,
    fields: Option<&[String]>,
) -> ApiResult<Value> {
    let snapshot = state.cluster.snapshot().await?;
    let owner = snapshot.owner(node);
    Ok(view::node(node, ctx, owner.as_deref(), fields))
}

// ---------------------------------------------------------------- listing

/// Node filters from the query. `None` when a filter can match no node
/// (an unknown driver name), so the listing is empty without a query.
pub(super) fn parse_filters(params: &mut Params, ctx: &Ctx) -> ApiResult<Option<NodeFilters>> {
    let mut filters = NodeFilters {
        instance_uuid: params.take("instance_uuid"),
        associated: params.take_bool("associated")?,
        maintenance: params.take_bool("maintenance")?,
        retired: params.take_bool_since("retired", ctx, 61)?,
        ..NodeFilters::default()
    };
    if let Some(text) = params.take_since("provision_state", ctx, 9)? {
        filters.provision_state = Some(
            ProvisionState::parse(&text)
                .ok_or_else(|| ApiError::bad(format!("Invalid provision state: {text}")))?,
        );
    }
    let mut matches_nothing = false;
    if let Some(text) = params.take_since("driver", ctx, 16)? {
        match HardwareType::parse(&text) {
            Some(driver) => filters.driver = Some(driver),
            None => matches_nothing = true,
        }
    }
    filters.resource_class = params.take_since("resource_class", ctx, 21)?;
    if let Some(text) = params.take_since("fault", ctx, 42)? {
        filters.fault = Some(
            Fault::parse(&text).ok_or_else(|| ApiError::bad(format!("Invalid fault: {text}")))?,
        );
    }
    filters.conductor_group =
        params.take_since("conductor_group", ctx, 46)?.map(|g| g.to_lowercase());
    filters.owner = params.take_since("owner", ctx, 50)?;
    filters.lessee = params.take_since("lessee", ctx, 65)?;
    filters.project = params.take_since("project", ctx, 65)?;
    filters.chassis_uuid = params.take_uuid("chassis_uuid")?;
    if let Some(text) = params.take_since("description_contains", ctx, 51)? {
        filters.description_contains = Some(text);
    }
    filters.shards = params
        .take_since("shard", ctx, 82)?
        .map(|text| text.split(',').map(|s| s.trim().to_owned()).collect());
    filters.sharded = params.take_bool_since("sharded", ctx, 82)?;
    filters.parent_node = params.take_since("parent_node", ctx, 83)?;
    let include_children = params.take_bool_since("include_children", ctx, 83)?;
    if ctx.version.at_least(83) && filters.parent_node.is_none() {
        filters.include_children = Some(include_children.unwrap_or(false));
    }
    // `conductor` is computed, not stored: filtered after the query.
    Ok((!matches_nothing).then_some(filters))
}

async fn list_nodes(
    state: &ApiState,
    ctx: &Ctx,
    mut params: Params,
    force_detail: bool,
    chassis: Option<Uuid>,
) -> ApiResult<Response> {
    let filters = parse_filters(&mut params, ctx)?;
    let conductor = params.take_since("conductor", ctx, 49)?;
    let listing = Listing::parse(&mut params, ctx, true)?;
    params.finish()?;
    let detail = force_detail || listing.detail;
    if detail && listing.fields.is_some() {
        return Err(ApiError::bad("Can not specify ?detail=True and fields in the same request."));
    }
    if let Some(fields) = &listing.fields {
        view::check_fields(fields, view::NODE_FIELDS, ctx)?;
    }
    let sort_key = match &listing.sort_key {
        None => NodeSortKey::Id,
        Some(key) => NodeSortKey::parse(key).ok_or_else(|| {
            ApiError::bad(format!("The sort_key value \"{key}\" is an invalid field for sorting"))
        })?,
    };
    let path = match chassis {
        Some(chassis) => format!("chassis/{chassis}/nodes"),
        None if force_detail => "nodes/detail".to_owned(),
        None => "nodes".to_owned(),
    };
    let filters = filters.map(|mut filters| {
        if chassis.is_some() {
            filters.chassis_uuid = chassis;
        }
        filters
    });
    let shape = if detail { Shape::Full } else { Shape::ListDefault };
    if listing.fields.is_none() && conductor.is_none() {
        return list_cached(state, ctx, filters, sort_key, &listing, shape, &path).await;
    }
    let nodes = match filters {
        None => Vec::new(),
        Some(filters) => {
            let query = NodeQuery { filters, sort_key, page: listing.page.clone() };
            match state.store.node_list(&query).await {
                Err(StoreError::NotFound { .. }) => {
                    return Err(ApiError::bad("The marker does not name an existing node"))
                }
                other => other?,
            }
        }
    };
    let snapshot = state.cluster.snapshot().await?;
    let mut items = Vec::with_capacity(nodes.len());
    for node in &nodes {
        let owner = snapshot.owner(node);
        if let Some(wanted) = &conductor {
            if owner.as_deref() != Some(wanted.as_str()) {
                continue;
            }
        }
        items.push(match &listing.fields {
            Some(fields) => view::node(node, ctx, owner.as_deref(), Some(fields)),
            None => shaped_view(node, ctx, owner.as_deref(), shape),
        });
    }
    let marker = nodes.last().map(|node| node.uuid.to_string());
    Ok(Json(listing.finish_collection(ctx, &path, "nodes", items, marker)).into_response())
}

/// A node's JSON in one of the cacheable shapes.
fn shaped_view(node: &Node, ctx: &Ctx, owner: Option<&str>, shape: Shape) -> Value {
    match shape {
        Shape::Full => view::node(node, ctx, owner, None),
        Shape::ListDefault => {
            let defaults: Vec<String> =
                view::NODE_LIST_FIELDS.iter().map(|field| (*field).to_owned()).collect();
            view::node(node, ctx, owner, Some(&defaults))
        }
    }
}

fn render_bytes(node: &Node, ctx: &Ctx, owner: Option<&str>, shape: Shape) -> bytes::Bytes {
    bytes::Bytes::from(
        serde_json::to_vec(&shaped_view(node, ctx, owner, shape)).unwrap_or_default(),
    )
}

fn variant_for(ctx: &Ctx, snapshot: &crate::cluster::Snapshot) -> Variant {
    Variant {
        minor: ctx.version.0,
        base_url: ctx.base_url.as_str().into(),
        cluster_generation: snapshot.generation,
    }
}

/// A listing served from the view cache: one cheap `(uuid, version)` query,
/// then only nodes that changed since they were last rendered are loaded.
async fn list_cached(
    state: &ApiState,
    ctx: &Ctx,
    filters: Option<NodeFilters>,
    sort_key: NodeSortKey,
    listing: &Listing,
    shape: Shape,
    path: &str,
) -> ApiResult<Response> {
    let keys = match filters {
        None => Vec::new(),
        Some(filters) => {
            let query = NodeQuery { filters, sort_key, page: listing.page.clone() };
            match state.store.node_list_versions(&query).await {
                Err(StoreError::NotFound { .. }) => {
                    return Err(ApiError::bad("The marker does not name an existing node"))
                }
                other => other?,
            }
        }
    };
    let snapshot = state.cluster.snapshot().await?;
    let variant = variant_for(ctx, &snapshot);
    let mut parts: Vec<Option<bytes::Bytes>> = keys
        .iter()
        .map(|(uuid, version)| state.views.get(*uuid, shape, *version, &variant))
        .collect();
    let missing: Vec<Uuid> = keys
        .iter()
        .zip(&parts)
        .filter(|(_, part)| part.is_none())
        .map(|((uuid, _), _)| *uuid)
        .collect();
    if !missing.is_empty() {
        let loaded: std::collections::HashMap<Uuid, Node> = state
            .store
            .node_get_many(&missing)
            .await?
            .into_iter()
            .map(|node| (node.uuid, node))
            .collect();
        for ((uuid, _), part) in keys.iter().zip(parts.iter_mut()) {
            if part.is_some() {
                continue;
            }
            // A node deleted between the two queries is simply left out.
            if let Some(node) = loaded.get(uuid) {
                let json = render_bytes(node, ctx, snapshot.owner(node).as_deref(), shape);
                state.views.put(node.uuid, shape, node.version, &variant, json.clone());
                *part = Some(json);
            }
        }
    }
    let size = parts.iter().flatten().map(|part| part.len() + 1).sum::<usize>() + 256;
    let mut body: Vec<u8> = Vec::with_capacity(size);
    body.extend_from_slice(b"{\"nodes\":[");
    for (index, part) in parts.iter().flatten().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        body.extend_from_slice(part);
    }
    body.push(b']');
    let last = keys.last().map(|(uuid, _)| uuid.to_string());
    if let Some(next) = listing.next_link(ctx, path, keys.len(), last) {
        body.extend_from_slice(b",\"next\":");
        body.extend_from_slice(&serde_json::to_vec(&next).unwrap_or_default());
    }
    body.push(b'}');
    Ok(([(http::header::CONTENT_TYPE, "application/json")], body).into_response())
}

pub async fn list(State(state): State<ApiState>, ctx: Ctx, params: Params) -> ApiResult<Response> {
    list_nodes(&state, &ctx, params, false, None).await
}

pub async fn list_detail(
    State(state): State<ApiState>,
    ctx: Ctx,
    params: Params,
) -> ApiResult<Response> {
    list_nodes(&state, &ctx, params, true, None).await
}

pub(super) async fn list_of_chassis(
    state: &ApiState,
    ctx: &Ctx,
    params: Params,
    chassis: Uuid,
    detail: bool,
) -> ApiResult<Response> {
    list_nodes(state, ctx, params, detail, Some(chassis)).await
}

pub async fn show(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    mut params: Params,
) -> ApiResult<Response> {
    let fields: Option<Vec<String>> = params
        .take_since("fields", &ctx, 8)?
        .map(|text| text.split(',').map(|f| f.trim().to_owned()).collect());
    params.finish()?;
    if let Some(fields) = &fields {
        view::check_fields(fields, view::NODE_FIELDS, &ctx)?;
        let node = load(&state, &ident).await?;
        return Ok(Json(render(&state, &ctx, &node, Some(fields)).await?).into_response());
    }
    // Served from the view cache when the node has not changed.
    let (uuid, version) = match state.store.node_version(&NodeIdent::parse(&ident)).await {
        Ok(key) => key,
        Err(StoreError::NotFound { .. }) => return Err(not_found(&ident)),
        Err(other) => return Err(other.into()),
    };
    let snapshot = state.cluster.snapshot().await?;
    let variant = variant_for(&ctx, &snapshot);
    let json = match state.views.get(uuid, Shape::Full, version, &variant) {
        Some(json) => json,
        None => {
            let node = match state.store.node_get_by_uuid(uuid).await {
                Ok(node) => node,
                Err(StoreError::NotFound { .. }) => return Err(not_found(&ident)),
                Err(other) => return Err(other.into()),
            };
            let json = render_bytes(&node, &ctx, snapshot.owner(&node).as_deref(), Shape::Full);
            state.views.put(node.uuid, Shape::Full, node.version, &variant, json.clone());
            json
        }
    };
    Ok(([(http::header::CONTENT_TYPE, "application/json")], json).into_response())
}

// ---------------------------------------------------------------- create / patch

/// Node attributes a user may set, with the version each appeared in.
const WRITABLE: &[(&str, u16)] = &[
    ("uuid", 1),
    ("name", 5),
    ("driver", 1),
    ("driver_info", 1),
    ("properties", 1),
    ("instance_info", 1),
    ("instance_uuid", 1),
    ("instance_name", 104),
    ("chassis_uuid", 1),
    ("extra", 1),
    ("maintenance", 1),
    ("maintenance_reason", 1),
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
    ("conductor_group", 46),
    ("automated_clean", 47),
    ("protected", 48),
    ("protected_reason", 48),
    ("owner", 50),
    ("description", 51),
    ("retired", 61),
    ("retired_reason", 61),
    ("lessee", 65),
    ("network_data", 66),
    ("shard", 82),
    ("parent_node", 83),
    ("disable_power_off", 95),
];

/// Attributes accepted on create but not by PATCH, and the reverse.
const CREATE_ONLY: &[&str] = &["uuid"];
const PATCH_ONLY: &[&str] = &["maintenance", "maintenance_reason", "protected", "protected_reason"];

/// States in which the driver and interfaces may change (outside maintenance).
const INTERFACE_CHANGE_STATES: &[ProvisionState] = &[
    ProvisionState::Enroll,
    ProvisionState::Inspecting,
    ProvisionState::InspectWait,
    ProvisionState::Manageable,
    ProvisionState::Available,
];

fn validate_conductor_group(group: &str) -> ApiResult<String> {
    if group.len() > 255
        || !group.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(ApiError::bad(format!(
            "Invalid conductor_group \"{group}\": at most 255 characters of a-z, 0-9, '-', '_' and '.'"
        )));
    }
    Ok(group.to_lowercase())
}

fn validate_name(name: &str) -> ApiResult<()> {
    if !is_valid_logical_name(name) || Uuid::parse_str(name).is_ok() {
        return Err(ApiError::bad(format!(
            "Cannot use \"{name}\" as a node name: expected a logical name (letters, digits, \
             '-', '.', '_', '~'; at most 255; not a UUID)"
        )));
    }
    Ok(())
}

/// Reads every writable attribute from `doc` onto `node`, validating as it
/// goes. Used by create (doc = body) and PATCH (doc = patched attributes).
async fn assign(state: &ApiState, node: &mut Node, doc: &Map<String, Value>) -> ApiResult<()> {
    let fields = Fields(doc);
    if let Some(name) = fields.opt_string("name")? {
        validate_name(&name)?;
        node.name = Some(name);
    } else {
        node.name = None;
    }
    let driver_text =
        fields.opt_string("driver")?.ok_or_else(|| ApiError::bad("The driver is required"))?;
    let snapshot = state.cluster.snapshot().await?;
    let driver = HardwareType::parse(&driver_text)
        .filter(|driver| !snapshot.driver_support(*driver).is_empty())
        .ok_or_else(|| {
            ApiError::bad(format!(
                "No valid host was found. Reason: No conductor service registered which supports \
                 driver {driver_text}."
            ))
        })?;
    node.driver = driver;
    let support = snapshot.driver_support(driver);
    for kind in InterfaceKind::ALL {
        let key = kind.node_field();
        let Some(entry) = support.iter().find(|entry| entry.interface == kind) else {
            continue;
        };
        let chosen = match fields.opt_string(key)? {
            None => entry.default,
            Some(text) => InterfaceImpl::parse(&text)
                .filter(|implementation| entry.enabled.contains(implementation))
                .ok_or_else(|| {
                    ApiError::bad(format!(
                        "Interface \"{text}\" is not supported by hardware type {driver} for {kind} \
                         interface; enabled: {}",
                        entry.enabled.iter().map(|i| i.as_str()).collect::<Vec<_>>().join(", ")
                    ))
                })?,
        };
        node.interfaces.set(kind, chosen);
    }
    node.driver_info = fields.object("driver_info")?;
    node.properties = fields.object("properties")?;
    node.instance_info = fields.object("instance_info")?;
    node.extra = fields.object("extra")?;
    node.network_data = fields.object("network_data")?;
    node.instance_uuid = match fields.opt_string("instance_uuid")? {
        None => None,
        Some(text) => Some(crate::ctx::parse_uuid("instance_uuid", &text)?.to_string()),
    };
    node.instance_name = fields.opt_string_max("instance_name", 255)?;
    node.chassis_uuid = fields.opt_uuid("chassis_uuid")?;
    if let Some(chassis) = node.chassis_uuid {
        if let Err(error) = state.store.chassis_get(chassis).await {
            return Err(match error {
                StoreError::NotFound { .. } => {
                    ApiError::bad(format!("Chassis {chassis} could not be found."))
                }
                other => other.into(),
            });
        }
    }
    node.resource_class = fields.opt_string_max("resource_class", 80)?;
    node.conductor_group = match fields.opt_string("conductor_group")? {
        None => String::new(),
        Some(group) => validate_conductor_group(&group)?,
    };
    node.automated_clean = fields.opt_bool("automated_clean")?;
    node.owner = fields.opt_string_max("owner", 255)?;
    node.lessee = fields.opt_string_max("lessee", 255)?;
    node.description = fields.opt_string_max("description", 4096)?;
    node.retired = fields.bool_or("retired", false)?;
    node.retired_reason = fields.opt_string_max("retired_reason", 4096)?;
    if node.retired_reason.is_some() && !node.retired {
        return Err(ApiError::bad("retired_reason can only be set on a retired node"));
    }
    node.shard = fields.opt_string_max("shard", 255)?;
    node.parent_node = match fields.opt_string("parent_node")? {
        None => None,
        Some(text) => {
            let parent = load(state, &text)
                .await
                .map_err(|_| ApiError::bad(format!("Parent node {text} could not be found.")))?;
            if parent.uuid == node.uuid {
                return Err(ApiError::bad("A node cannot be its own parent"));
            }
            Some(parent.uuid.to_string())
        }
    };
    node.disable_power_off = fields.bool_or("disable_power_off", false)?;
    Ok(())
}

/// The patchable attributes of `node` at their raw (unmasked) values.
fn patch_document(node: &Node) -> Map<String, Value> {
    let ctx = Ctx {
        version: crate::version::Version(crate::version::MAX_MINOR),
        base_url: String::new(),
    };
    let mut raw = match view::node(node, &ctx, None, None) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    raw.insert("driver_info".into(), Value::Object(node.driver_info.clone()));
    raw.insert("instance_info".into(), Value::Object(node.instance_info.clone()));
    raw.retain(|key, _| {
        WRITABLE.iter().any(|(name, _)| name == key) && !CREATE_ONLY.contains(&key.as_str())
    });
    raw
}

pub async fn create(
    State(state): State<ApiState>,
    ctx: Ctx,
    Body(body): Body<Value>,
) -> ApiResult<Response> {
    let doc = body_object(body)?;
    for key in doc.keys() {
        match WRITABLE.iter().find(|(name, _)| name == key) {
            Some(_) if PATCH_ONLY.contains(&key.as_str()) => {
                return Err(ApiError::bad(format!("The attribute {key} cannot be set on create")))
            }
            Some((_, minor)) => ctx.version.require(*minor, &format!("The attribute {key}"))?,
            None if view::NODE_FIELDS.iter().any(|(name, _)| name == key) => {
                return Err(ApiError::bad(format!(
                    "The attribute {key} is read-only and cannot be set"
                )))
            }
            None => return Err(ApiError::bad(format!("Unknown attribute for node: {key}"))),
        }
    }
    let uuid = Fields(&doc).opt_uuid("uuid")?.unwrap_or_else(Uuid::new_v4);
    let initial =
        if ctx.version.at_least(11) { ProvisionState::Enroll } else { ProvisionState::Available };
    let mut node = Node::new(uuid, HardwareType::FakeHardware, initial);
    assign(&state, &mut node, &doc).await?;
    node.provision_updated_at = Some(Timestamp::now());
    let stored = state.store.node_create(&node).await.map_err(duplicate_message)?;
    let body = render(&state, &ctx, &stored, None).await?;
    Ok(created(&ctx, &format!("nodes/{}", stored.uuid), body))
}

fn duplicate_message(error: StoreError) -> ApiError {
    match error {
        StoreError::Duplicate { field: "instance_uuid", value, .. } => ApiError::Conflict(format!(
            "Instance {value} is already associated with a node, it cannot be associated with this \
             other node."
        )),
        other => duplicate("A node", NAME_OR_UUID)(other),
    }
}

pub async fn update(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    mut params: Params,
    Body(ops): Body<Value>,
) -> ApiResult<Json<Value>> {
    let reset_interfaces = params.take_bool_since("reset_interfaces", &ctx, 45)?.unwrap_or(false);
    params.finish()?;
    let patchable: Vec<&str> = WRITABLE
        .iter()
        .filter(|(name, _)| !CREATE_ONLY.contains(name))
        .map(|(name, _)| *name)
        .collect();
    let known: Vec<&str> = view::NODE_FIELDS.iter().map(|(name, _)| *name).collect();
    for _ in 0..WRITE_ATTEMPTS {
        let mut node = load(&state, &ident).await?;
        if let Some(error) = locked(&node) {
            return Err(error);
        }
        let before = patch_document(&node);
        let mut after = patch::apply(&before, &ops, &patchable, &known)?;
        let changed: Vec<String> = after
            .iter()
            .filter(|(key, value)| before.get(*key) != Some(value))
            .map(|(k, _)| k.clone())
            .collect();
        for key in &changed {
            if let Some((_, minor)) = WRITABLE.iter().find(|(name, _)| name == key) {
                ctx.version.require(*minor, &format!("The attribute {key}"))?;
            }
        }
        let only_maintenance = changed.iter().all(|key| {
            matches!(key.as_str(), "maintenance" | "maintenance_reason" | "extra" | "description")
        });
        let settled = node.provision_state.is_stable()
            || node.provision_state.is_failure()
            || matches!(
                node.provision_state,
                ProvisionState::Verifying
                    | ProvisionState::Inspecting
                    | ProvisionState::InspectWait
                    | ProvisionState::Servicing
                    | ProvisionState::ServiceWait
                    | ProvisionState::ServiceHold
            );
        if !settled && !node.maintenance && !only_maintenance {
            return Err(ApiError::Conflict(format!(
                "Node {} can not be updated while a state transition is in progress (it is in \
                 state \"{}\").",
                node.uuid, node.provision_state
            )));
        }
        let driver_change =
            changed.iter().any(|key| key == "driver" || key.ends_with("_interface"));
        if driver_change
            && !node.maintenance
            && !INTERFACE_CHANGE_STATES.contains(&node.provision_state)
        {
            return Err(ApiError::Conflict(format!(
                "The driver and interfaces of node {} can not be changed in provision state \"{}\"; \
                 use maintenance mode or wait for a stable state.",
                node.uuid, node.provision_state
            )));
        }
        if reset_interfaces {
            if !changed.iter().any(|key| key == "driver") {
                return Err(ApiError::bad(
                    "reset_interfaces can only be used when changing the driver",
                ));
            }
            for kind in InterfaceKind::ALL {
                if !changed.iter().any(|key| key == kind.node_field()) {
                    after.remove(kind.node_field());
                }
            }
        }
        if changed.iter().any(|key| key == "instance_uuid") {
            if let (Some(current), Some(Value::String(wanted))) =
                (&node.instance_uuid, after.get("instance_uuid"))
            {
                if current != wanted {
                    return Err(ApiError::Conflict(format!(
                        "Node {} is associated with instance {current}.",
                        node.uuid
                    )));
                }
            }
        }
        if changed.iter().any(|key| key == "instance_uuid")
            && after.get("instance_uuid").is_none_or(Value::is_null)
            && node.allocation_uuid.is_some()
        {
            if super::allocations::release_for_instance_removal(&state, &node).await? {
                continue; // the allocation went, with the instance: look again
            }
            node.allocation_uuid = None;
        }
        if changed.iter().any(|key| key == "resource_class")
            && node.provision_state == ProvisionState::Active
            && !node.maintenance
        {
            return Err(ApiError::bad(
                "The resource_class of an active node can only be changed in maintenance mode",
            ));
        }
        assign(&state, &mut node, &after).await?;
        let fields = Fields(&after);
        let maintenance = fields.bool_or("maintenance", false)?;
        node.maintenance_reason = fields.opt_string_max("maintenance_reason", MAX_REASON)?;
        if !maintenance {
            node.maintenance_reason = None;
            node.fault = None;
        }
        node.maintenance = maintenance;
        let protected = fields.bool_or("protected", false)?;
        let protected_reason = fields.opt_string_max("protected_reason", 255)?;
        if protected && !node.protected && node.provision_state != ProvisionState::Active {
            return Err(ApiError::bad(format!(
                "Node {} can only be protected in the active state, not \"{}\".",
                node.uuid, node.provision_state
            )));
        }
        if protected_reason.is_some() && !protected {
            return Err(ApiError::bad("protected_reason can only be set on a protected node"));
        }
        node.protected = protected;
        node.protected_reason = protected_reason;
        match state.store.node_update(&node).await {
            Ok(stored) => return Ok(Json(render(&state, &ctx, &stored, None).await?)),
            Err(StoreError::Stale { .. }) => continue,
            Err(other) => return Err(duplicate_message(other)),
        }
    }
    Err(ApiError::Conflict(format!("Node {ident} is being changed by others; please retry")))
}

pub async fn delete(
    State(state): State<ApiState>,
    Path(ident): Path<String>,
) -> ApiResult<StatusCode> {
    let node = load(&state, &ident).await?;
    if let Some(error) = locked(&node) {
        return Err(error);
    }
    if node.protected {
        return Err(ApiError::Forbidden(format!(
            "Node {} is protected and cannot be undeployed, rebuilt or deleted",
            node.uuid
        )));
    }
    // In maintenance a node may go whatever holds it, as in Ironic (its
    // allocation, if any, goes with it).
    if let Some(instance) = node.instance_uuid.as_ref().filter(|_| !node.maintenance) {
        return Err(ApiError::Conflict(format!(
            "Node {} is associated with instance {instance}.",
            node.uuid
        )));
    }
    let deletable = matches!(
        node.provision_state,
        ProvisionState::Manageable | ProvisionState::Enroll | ProvisionState::AdoptFailed
    ) || (node.provision_state == ProvisionState::Available
        && state.config.allow_deleting_available_nodes)
        || node.maintenance;
    if !deletable {
        return Err(ApiError::bad(format!(
            "Can not delete node {} while it is in provision state \"{}\". Valid provision states \
             to start deletion are: enroll, manageable, available, adopt failed (or any state in \
             maintenance mode).",
            node.uuid, node.provision_state
        )));
    }
    state.store.node_delete(node.uuid).await?;
    state.views.forget(node.uuid);
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- states

pub async fn states(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    let node = load(&state, &ident).await?;
    let full = view::node(&node, &ctx, None, None);
    let mut out = Map::new();
    let mut keys = vec![
        "power_state",
        "target_power_state",
        "provision_state",
        "target_provision_state",
        "provision_updated_at",
        "last_error",
        "console_enabled",
    ];
    if ctx.version.at_least(12) {
        keys.extend(["raid_config", "target_raid_config"]);
    }
    if ctx.version.at_least(75) {
        keys.extend(["boot_mode", "secure_boot"]);
    }
    for key in keys {
        out.insert(key.into(), full.get(key).cloned().unwrap_or(Value::Null));
    }
    Ok(Json(Value::Object(out)))
}

fn accepted(ctx: &Ctx, node: &Node) -> Response {
    let location = format!("{}/v1/nodes/{}/states", ctx.base_url, node.uuid);
    (StatusCode::ACCEPTED, [(http::header::LOCATION, location)]).into_response()
}

fn steps_argument(
    body: &Map<String, Value>,
    key: &str,
    ctx: &Ctx,
    minor: u16,
    allowed_interfaces: &[&str],
    needs_priority: bool,
) -> ApiResult<Option<Vec<Value>>> {
    let Some(value) = body.get(key) else { return Ok(None) };
    if value.is_null() {
        return Ok(None);
    }
    ctx.version.require(minor, key)?;
    let list = value.as_array().ok_or_else(|| ApiError::bad(format!("{key} must be a list")))?;
    for step in list {
        let object = step
            .as_object()
            .ok_or_else(|| ApiError::bad(format!("Each of {key} must be an object")))?;
        let interface = object
            .get("interface")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad(format!("Each of {key} needs an \"interface\"")))?;
        if !allowed_interfaces.contains(&interface) {
            return Err(ApiError::bad(format!(
                "Invalid interface \"{interface}\" in {key}; allowed: {}",
                allowed_interfaces.join(", ")
            )));
        }
        if object.get("step").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(ApiError::bad(format!("Each of {key} needs a \"step\" name")));
        }
        if let Some(args) = object.get("args") {
            if !args.is_object() {
                return Err(ApiError::bad(format!("The args of each of {key} must be an object")));
            }
        }
        for field in object.keys() {
            if !matches!(field.as_str(), "interface" | "step" | "args" | "priority" | "order") {
                return Err(ApiError::bad(format!("Unknown field \"{field}\" in {key}")));
            }
        }
        if needs_priority {
            let priority = object.get("priority").and_then(Value::as_i64);
            if priority.is_none_or(|p| p < 0) || !object.contains_key("args") {
                return Err(ApiError::bad(format!(
                    "Each of {key} needs \"args\" and a non-negative integer \"priority\""
                )));
            }
        }
    }
    Ok(Some(list.clone()))
}

pub async fn set_provision_state(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult<Response> {
    let body = body_object(body)?;
    for key in body.keys() {
        if !matches!(
            key.as_str(),
            "target"
                | "configdrive"
                | "clean_steps"
                | "deploy_steps"
                | "service_steps"
                | "rescue_password"
                | "disable_ramdisk"
                | "runbook"
        ) {
            return Err(ApiError::bad(format!("Unknown argument: \"{key}\"")));
        }
    }
    let target = body
        .get("target")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad("\"target\" is required and must be a string"))?;
    let verb = Verb::parse(target).ok_or_else(|| {
        ApiError::bad(format!("\"{target}\" is not a valid provision state target"))
    })?;
    ctx.version.require(verb.min_microversion(), &format!("The provision action \"{verb}\""))?;
    let canonical = verb.canonical();
    let mut request = ProvisionRequest { verb: Some(verb), ..ProvisionRequest::default() };

    if let Some(configdrive) = body.get("configdrive").filter(|v| !v.is_null()) {
        let allowed =
            canonical == Verb::Active || (canonical == Verb::Rebuild && ctx.version.at_least(35));
        if !allowed {
            return Err(ApiError::bad(format!(
                "Adding a config drive is only supported when setting provision state to active \
                 or rebuild, not \"{verb}\""
            )));
        }
        match configdrive {
            Value::String(_) => {}
            Value::Object(map) => {
                ctx.version.require(56, "A configdrive given as a JSON object")?;
                for key in map.keys() {
                    let allowed_key =
                        matches!(key.as_str(), "meta_data" | "network_data" | "user_data")
                            || (key == "vendor_data" && ctx.version.at_least(59));
                    if !allowed_key {
                        return Err(ApiError::bad(format!("Invalid configdrive key \"{key}\"")));
                    }
                }
            }
            _ => return Err(ApiError::bad("configdrive must be a string or a JSON object")),
        }
        request.configdrive = Some(configdrive.clone());
    }
    const CLEAN_INTERFACES: &[&str] =
        &["deploy", "power", "management", "bios", "raid", "firmware", "vendor"];
    const SERVICE_INTERFACES: &[&str] =
        &["deploy", "power", "management", "bios", "raid", "firmware", "vendor", "network"];
    const DEPLOY_INTERFACES: &[&str] = &[
        "deploy",
        "power",
        "management",
        "bios",
        "raid",
        "firmware",
        "vendor",
        "boot",
        "network",
        "storage",
        "rescue",
        "console",
        "inspect",
    ];
    request.clean_steps = steps_argument(&body, "clean_steps", &ctx, 15, CLEAN_INTERFACES, false)?;
    request.service_steps =
        steps_argument(&body, "service_steps", &ctx, 87, SERVICE_INTERFACES, false)?;
    request.deploy_steps =
        steps_argument(&body, "deploy_steps", &ctx, 69, DEPLOY_INTERFACES, true)?;
    request.runbook = match body.get("runbook") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => {
            ctx.version.require(92, "runbook")?;
            Some(name.clone())
        }
        Some(_) => return Err(ApiError::bad("runbook must be a string")),
    };
    request.disable_ramdisk = match body.get("disable_ramdisk") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(flag)) => {
            let minor = if canonical == Verb::Service { 108 } else { 70 };
            ctx.version.require(minor, "disable_ramdisk")?;
            if !matches!(canonical, Verb::Clean | Verb::Service) {
                return Err(ApiError::bad("disable_ramdisk is only valid with clean or service"));
            }
            Some(*flag)
        }
        Some(_) => return Err(ApiError::bad("disable_ramdisk must be a boolean")),
    };
    if request.runbook.is_some() {
        let node = load(&state, &ident).await?;
        super::runbooks::apply_to_request(&state, &ctx, &node, canonical, &mut request).await?;
    }
    request.rescue_password = match body.get("rescue_password") {
        None | Some(Value::Null) => None,
        Some(Value::String(password)) => Some(password.clone()),
        Some(_) => return Err(ApiError::bad("rescue_password must be a string")),
    };
    match canonical {
        Verb::Clean if request.clean_steps.as_ref().is_none_or(Vec::is_empty) => {
            return Err(ApiError::bad("\"clean_steps\" is required when setting target provision state to clean"))
        }
        Verb::Service if request.service_steps.as_ref().is_none_or(Vec::is_empty) => {
            return Err(ApiError::bad("\"service_steps\" is required when setting target provision state to service"))
        }
        Verb::Rescue if request.rescue_password.as_deref().is_none_or(|p| p.trim().is_empty()) => {
            return Err(ApiError::bad("A non-empty \"rescue_password\" is required when setting target provision state to rescue"))
        }
        _ => {}
    }
    if request.clean_steps.is_some() && canonical != Verb::Clean {
        return Err(ApiError::bad(
            "\"clean_steps\" is only valid when setting target provision state to clean",
        ));
    }
    if request.service_steps.is_some() && canonical != Verb::Service {
        return Err(ApiError::bad(
            "\"service_steps\" is only valid when setting target provision state to service",
        ));
    }
    if request.deploy_steps.is_some() && !matches!(canonical, Verb::Active | Verb::Rebuild) {
        return Err(ApiError::bad("\"deploy_steps\" is only valid with active, deploy or rebuild"));
    }
    if request.rescue_password.is_some() && canonical != Verb::Rescue {
        return Err(ApiError::bad("\"rescue_password\" is only valid with rescue"));
    }

    let snapshot = state.cluster.snapshot().await?;
    let mut accepted_node = None;
    for _ in 0..WRITE_ATTEMPTS {
        let mut node = load(&state, &ident).await?;
        if let Some(error) = locked(&node) {
            return Err(error);
        }
        if node.maintenance && matches!(canonical, Verb::Active | Verb::Rebuild) {
            return Err(ApiError::bad(format!(
                "Node {} is in maintenance mode; it cannot be deployed or rebuilt.",
                node.uuid
            )));
        }
        if node.protected && matches!(canonical, Verb::Rebuild | Verb::Deleted | Verb::Rescue) {
            return Err(ApiError::Forbidden(format!(
                "Node {} is protected and cannot be undeployed, rebuilt or deleted",
                node.uuid
            )));
        }
        // Aborting these waits came later than abort itself (as in Ironic).
        if canonical == Verb::Abort {
            match node.provision_state {
                ProvisionState::DeployWait => {
                    ctx.version.require(110, "Aborting a deployment in \"wait call-back\"")?
                }
                ProvisionState::InspectWait => ctx.version.require(41, "Aborting inspection")?,
                _ => {}
            }
        }
        let transition = apply_verb(node.provision_state, verb, node.target_provision_state)
            .map_err(|_| {
                ApiError::bad(format!(
                    "The requested action \"{verb}\" can not be performed on node \"{}\" while it \
                     is in state \"{}\".",
                    node.uuid, node.provision_state
                ))
            })?;
        if matches!(canonical, Verb::Active | Verb::Rebuild) {
            super::deploy_templates::check_instance_traits(&node)?;
        }
        let owner = snapshot.require_owner(&node)?;
        node.provision_state = transition.to;
        node.target_provision_state = transition.target;
        node.provision_updated_at = Some(Timestamp::now());
        node.last_error = None;
        node.reservation = Some(owner);
        node.pending_action = Some(PendingAction::Provision(request.clone()));
        match state.store.node_update(&node).await {
            Ok(stored) => {
                accepted_node = Some(stored);
                break;
            }
            Err(StoreError::Stale { .. }) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    let node = accepted_node.ok_or_else(|| {
        ApiError::Conflict(format!("Node {ident} is being changed by others; please retry"))
    })?;
    state.conductor.notify(node.uuid);
    Ok(accepted(&ctx, &node))
}

pub async fn set_power_state(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult<Response> {
    let body = body_object(body)?;
    for key in body.keys() {
        if !matches!(key.as_str(), "target" | "timeout") {
            return Err(ApiError::bad(format!("Unknown argument: \"{key}\"")));
        }
    }
    let text = body
        .get("target")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad("\"target\" is required and must be a string"))?;
    let target = PowerTarget::parse(text).ok_or_else(|| {
        ApiError::bad(format!(
            "Invalid power state target \"{text}\"; use one of: power on, power off, rebooting, \
             soft rebooting, soft power off"
        ))
    })?;
    ctx.version.require(target.min_microversion(), &format!("The power target \"{target}\""))?;
    let timeout_seconds = match body.get("timeout") {
        None | Some(Value::Null) => None,
        Some(value) => {
            ctx.version.require(27, "timeout")?;
            match value.as_u64() {
                Some(seconds) if seconds > 0 => Some(seconds),
                _ => return Err(ApiError::bad("timeout must be a positive integer (seconds)")),
            }
        }
    };
    let snapshot = state.cluster.snapshot().await?;
    let mut accepted_node = None;
    for _ in 0..WRITE_ATTEMPTS {
        let mut node = load(&state, &ident).await?;
        if let Some(error) = locked(&node) {
            return Err(error);
        }
        if matches!(node.provision_state, ProvisionState::Cleaning | ProvisionState::CleanWait) {
            return Err(ApiError::bad(format!(
                "Can not change power state of node {} while it is in state \"{}\".",
                node.uuid, node.provision_state
            )));
        }
        if node.disable_power_off && target.powers_off() {
            return Err(ApiError::bad(format!(
                "Node {} has disable_power_off set; it cannot be powered off.",
                node.uuid
            )));
        }
        node.reservation = Some(snapshot.require_owner(&node)?);
        node.target_power_state = Some(target);
        node.last_error = None;
        node.pending_action = Some(PendingAction::Power { target, timeout_seconds });
        match state.store.node_update(&node).await {
            Ok(stored) => {
                accepted_node = Some(stored);
                break;
            }
            Err(StoreError::Stale { .. }) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    let node = accepted_node.ok_or_else(|| {
        ApiError::Conflict(format!("Node {ident} is being changed by others; please retry"))
    })?;
    state.conductor.notify(node.uuid);
    Ok(accepted(&ctx, &node))
}

// ---------------------------------------------------------------- maintenance

pub async fn set_maintenance(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    body: bytes::Bytes,
) -> ApiResult<Response> {
    let parsed: Option<Value> =
        if body.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            Some(serde_json::from_slice(&body).map_err(|error| {
                ApiError::bad(format!("Invalid JSON in the request body: {error}"))
            })?)
        };
    let reason = match parsed {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => {
            for key in map.keys() {
                if key != "reason" {
                    return Err(ApiError::bad(format!("Unknown argument: \"{key}\"")));
                }
            }
            Fields(&map).opt_string_max("reason", MAX_REASON)?
        }
        Some(_) => return Err(ApiError::bad("The request body must be a JSON object")),
    };
    // Maintenance may be set on a busy node: an operator must be able to
    // stop automation at any time. The write is conditional, so it cannot
    // clobber the conductor's work.
    let node = mutate(&state, &ident, |node| {
        node.maintenance = true;
        node.maintenance_reason = reason.clone();
        Ok(())
    })
    .await?;
    Ok(accepted(&ctx, &node))
}

pub async fn clear_maintenance(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<Response> {
    let node = mutate(&state, &ident, |node| {
        node.maintenance = false;
        node.maintenance_reason = None;
        node.fault = None;
        Ok(())
    })
    .await?;
    Ok(accepted(&ctx, &node))
}

// ---------------------------------------------------------------- management

pub async fn get_boot_device(
    State(state): State<ApiState>,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    let node = load(&state, &ident).await?;
    let info = state.conductor.get_boot_device(node.uuid).await?;
    Ok(Json(json!({
        "boot_device": info.boot_device.map(BootDevice::as_str),
        "persistent": info.persistent,
    })))
}

pub async fn set_boot_device(
    State(state): State<ApiState>,
    Path(ident): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult<StatusCode> {
    let body = body_object(body)?;
    for key in body.keys() {
        if !matches!(key.as_str(), "boot_device" | "persistent") {
            return Err(ApiError::bad(format!("Unknown argument: \"{key}\"")));
        }
    }
    let text = body
        .get("boot_device")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad("\"boot_device\" is required and must be a string"))?;
    let device = BootDevice::parse(text)
        .ok_or_else(|| ApiError::bad(format!("Invalid boot device \"{text}\"")))?;
    let persistent = Fields(&body).bool_or("persistent", false)?;
    let node = load(&state, &ident).await?;
    state.conductor.set_boot_device(node.uuid, device, persistent).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn supported_boot_devices(
    State(state): State<ApiState>,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    let node = load(&state, &ident).await?;
    let devices = state.conductor.supported_boot_devices(node.uuid).await?;
    let names: Vec<&str> = devices.into_iter().map(BootDevice::as_str).collect();
    Ok(Json(json!({ "supported_boot_devices": names })))
}

pub async fn validate(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    let node = load(&state, &ident).await?;
    let report = state.conductor.validate(node.uuid).await?;
    let mut out = Map::new();
    for (kind, result) in report {
        // The classic interfaces are always listed; newer ones from the
        // version that introduced them.
        if kind.min_microversion() > 31 && !ctx.version.at_least(kind.min_microversion()) {
            continue;
        }
        out.insert(kind.as_str().into(), json!({"result": result.result, "reason": result.reason}));
    }
    Ok(Json(Value::Object(out)))
}

// ---------------------------------------------------------------- traits

fn check_trait(name: &str) -> ApiResult<()> {
    if is_valid_trait(name) {
        Ok(())
    } else {
        Err(ApiError::bad(format!(
            "Invalid trait \"{name}\": use CUSTOM_ followed by A-Z, 0-9 and _, or a standard trait name"
        )))
    }
}

pub async fn traits_list(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(37)?;
    let node = load(&state, &ident).await?;
    Ok(Json(json!({ "traits": node.traits })))
}

async fn change_traits<F>(state: &ApiState, ident: &str, change: F) -> ApiResult<StatusCode>
where
    F: Fn(&mut Vec<String>) -> ApiResult<()>,
{
    mutate(state, ident, |node| {
        if let Some(error) = locked(node) {
            return Err(error);
        }
        change(&mut node.traits)?;
        if node.traits.len() > MAX_TRAITS {
            return Err(ApiError::bad(format!("A node can have at most {MAX_TRAITS} traits")));
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn traits_replace(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult<StatusCode> {
    ctx.version.require_endpoint(37)?;
    let list = body
        .get("traits")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad("The body must be {\"traits\": [...]}"))?;
    let mut wanted = Vec::new();
    for item in list {
        let name = item.as_str().ok_or_else(|| ApiError::bad("Traits must be strings"))?;
        check_trait(name)?;
        if !wanted.iter().any(|t: &String| t == name) {
            wanted.push(name.to_owned());
        }
    }
    change_traits(&state, &ident, |traits| {
        traits.clone_from(&wanted);
        Ok(())
    })
    .await
}

pub async fn traits_clear(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.version.require_endpoint(37)?;
    change_traits(&state, &ident, |traits| {
        traits.clear();
        Ok(())
    })
    .await
}

pub async fn trait_add(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path((ident, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    ctx.version.require_endpoint(37)?;
    check_trait(&name)?;
    change_traits(&state, &ident, |traits| {
        if !traits.contains(&name) {
            traits.push(name.clone());
        }
        Ok(())
    })
    .await
}

pub async fn trait_remove(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path((ident, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    ctx.version.require_endpoint(37)?;
    change_traits(&state, &ident, |traits| {
        let before = traits.len();
        traits.retain(|t| t != &name);
        if traits.len() == before {
            return Err(ApiError::NotFound(format!("Node {ident} has no trait {name}")));
        }
        Ok(())
    })
    .await
}

// ---------------------------------------------------------------- history

fn history_json(ctx: &Ctx, node: &Node, event: &ferric_types::HistoryEvent, detail: bool) -> Value {
    let mut out = json!({
        "uuid": event.uuid.to_string(),
        "created_at": event.created_at.to_text(),
        "severity": event.severity.as_str(),
        "event": event.event,
        "links": ctx.links(&format!("nodes/{}/history/{}", node.uuid, event.uuid)),
    });
    if detail {
        if let Some(map) = out.as_object_mut() {
            map.insert("event_type".into(), event.event_type.clone().into());
            map.insert("conductor".into(), event.conductor.clone().into());
            map.insert("user".into(), event.user.clone().into());
            if ctx.version.at_least(113) {
                map.insert("project".into(), Value::Null);
            }
            if ctx.version.at_least(115) {
                map.insert("state".into(), event.state.map(|s| s.as_str()).into());
                map.insert(
                    "target_provision_state".into(),
                    event.target_provision_state.map(|s| s.as_str()).into(),
                );
                map.insert("duration_seconds".into(), event.duration_seconds.into());
            }
        }
    }
    out
}

pub async fn history_list(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    mut params: Params,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(78)?;
    let listing = Listing::parse(&mut params, &ctx, true)?;
    params.finish()?;
    let node = load(&state, &ident).await?;
    let events = state.store.history_list(node.uuid, &listing.page).await?;
    let items: Vec<Value> =
        events.iter().map(|e| history_json(&ctx, &node, e, listing.detail)).collect();
    let marker = events.last().map(|e| e.uuid.to_string());
    Ok(Json(listing.finish_collection(
        &ctx,
        &format!("nodes/{}/history", node.uuid),
        "history",
        items,
        marker,
    )))
}

pub async fn history_show(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path((ident, event)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(78)?;
    let node = load(&state, &ident).await?;
    let event_uuid = crate::ctx::parse_uuid("event", &event)?;
    let event = state.store.history_get(node.uuid, event_uuid).await?;
    Ok(Json(history_json(&ctx, &node, &event, true)))
}

// ---------------------------------------------------------------- shards, children

pub async fn shards(State(state): State<ApiState>, ctx: Ctx) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(82)?;
    let shards: Vec<Value> = state
        .store
        .node_shard_counts()
        .await?
        .into_iter()
        .map(|(name, count)| json!({"name": name, "count": count}))
        .collect();
    Ok(Json(json!({ "shards": shards })))
}

/// `GET /v1/nodes/{node}/inventory` (1.81): what the last inspection
/// recorded, as ironic-python-agent's inventory format.
pub async fn inventory(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(81)?;
    let node = load(&state, &ident).await?;
    let stored = state.store.node_inventory_get(node.uuid).await?.ok_or_else(|| {
        ApiError::NotFound(format!("Inventory for node {} could not be found.", node.uuid))
    })?;
    Ok(Json(json!({ "inventory": stored.inventory, "plugin_data": stored.plugin_data })))
}

pub async fn children(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(83)?;
    let node = load(&state, &ident).await?;
    let query = NodeQuery {
        filters: NodeFilters { parent_node: Some(node.uuid.to_string()), ..NodeFilters::default() },
        ..NodeQuery::default()
    };
    let children: Vec<String> = state
        .store
        .node_list_versions(&query)
        .await?
        .into_iter()
        .map(|(uuid, _)| uuid.to_string())
        .collect();
    Ok(Json(json!({ "children": children })))
}

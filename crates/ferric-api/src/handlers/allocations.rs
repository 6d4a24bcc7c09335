//! `/v1/allocations` (1.52) and `/v1/nodes/{node}/allocation`: asking for a
//! node by resource class and traits.
//!
//! Ironic answers `201 allocating` and picks the node in the background;
//! ferric picks it before answering, so the `201` already says `active` (with
//! `node_uuid`) or `error` (with `last_error`). Clients poll until the state
//! is not `allocating`, so both work for them, and no allocation can be left
//! `allocating` by a crash. Reserving a node is one transaction, conditional
//! on the node's version ([`ferric_store::Store::allocation_create_claiming`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use ferric_store::{
    AllocationQuery, AllocationSortKey, NodeFilters, NodeIdent, NodeQuery, StoreError,
};
use ferric_types::allocation::{
    backfill_problems, claimed, deallocation_refusal, is_candidate, is_valid_allocation_name,
    prefer_named_node, traits_match, MAX_RESOURCE_CLASS_LEN,
};
use ferric_types::validate::is_valid_trait;
use ferric_types::{Allocation, AllocationState, Node, ProvisionState};
use http::Method;
use rand::seq::SliceRandom;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::common::{
    body_object, created, duplicate, gate, lost_races, not_found, or_not_found, unless_stale,
    NAME_OR_UUID, PATCH_ATTEMPTS,
};
use super::nodes;
use crate::ctx::{Body, Ctx, Listing, Params};
use crate::error::{ApiError, ApiResult};
use crate::patch::{self, Fields};
use crate::view;
use crate::ApiState;

/// Allocations appear.
const ALLOCATIONS: u16 = 52;
/// Allocations may be patched.
const PATCHING: u16 = 57;
/// `node` on create: backfilling an allocation for a deployed node.
const BACKFILL: u16 = 58;
/// The `owner` field.
const OWNER: u16 = 60;

/// How many times one node is re-read and retried after its record changed
/// under a reservation or release.
const WRITE_ATTEMPTS: usize = 5;

/// How often the nodes a conductor holds are tried (Ironic's
/// `node_locked_retry_attempts`), and how long apart.
const RESERVE_PASSES: usize = 3;
const LOCKED_RETRY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Sort keys Ironic refuses for allocations.
const UNSORTABLE: [&str; 3] = ["extra", "candidate_nodes", "traits"];

/// Longest owner accepted (the column size in Ironic).
const MAX_OWNER_LEN: usize = 255;

/// By UUID or name. (A malformed UUID is looked up as a name and so is not
/// found: Ironic accepts some malformed UUIDs here, ferric only the forms
/// `Uuid` parses.)
async fn load(state: &ApiState, ident: &str) -> ApiResult<Allocation> {
    state.store.allocation_get(ident).await.map_err(or_not_found("Allocation", ident))
}

/// Store write errors as Ironic words them.
fn write_error(error: StoreError) -> ApiError {
    match error {
        StoreError::Duplicate { kind: "node", field: "instance_uuid", value } => {
            ApiError::Conflict(format!(
                "Instance {value} is already associated with a node, it cannot be associated \
                 with another node"
            ))
        }
        StoreError::Duplicate { kind: "allocation", .. } => {
            duplicate("An allocation", NAME_OR_UUID)(error)
        }
        other => other.into(),
    }
}

/// A list of strings (`null` or missing: empty).
fn string_list(doc: &Map<String, Value>, key: &str) -> ApiResult<Vec<String>> {
    let wrong = || ApiError::bad(format!("Invalid value for {key}: expected a list of strings"));
    match doc.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            items.iter().map(|item| item.as_str().map(str::to_owned).ok_or_else(wrong)).collect()
        }
        Some(_) => Err(wrong()),
    }
}

/// `fields=` of a single-allocation GET (checked before the rest of the
/// query).
fn take_fields(params: &mut Params, ctx: &Ctx) -> ApiResult<Option<Vec<String>>> {
    let fields = params.take_fields(ctx)?;
    view::check_selection(fields.as_deref(), view::ALLOCATION_FIELDS, ctx)?;
    Ok(fields)
}

/// A node named in a request body or query: unknown → 400, as in Ironic.
async fn referenced_node(state: &ApiState, ident: &str) -> ApiResult<Node> {
    state.store.node_get(&NodeIdent::parse(ident)).await.map_err(|error| match error {
        StoreError::NotFound { .. } => ApiError::bad(format!("Node {ident} could not be found.")),
        other => other.into(),
    })
}

// ---------------------------------------------------------------- create

pub async fn create(
    State(state): State<ApiState>,
    ctx: Ctx,
    Body(body): Body<Value>,
) -> ApiResult<Response> {
    gate(&ctx, &Method::POST, ALLOCATIONS, "allocations")?;
    let doc = body_object(body)?;
    for key in doc.keys() {
        match key.as_str() {
            "uuid" | "name" | "resource_class" | "traits" | "candidate_nodes" | "extra" => {}
            "owner" => ctx.version.require(OWNER, "The attribute owner")?,
            "node" if !ctx.version.at_least(BACKFILL) => {
                return Err(ApiError::bad(
                    "Cannot set node when creating an allocation in this API version",
                ))
            }
            "node" => {}
            other => {
                return Err(ApiError::bad(format!("Unknown attribute for allocation: {other}")))
            }
        }
    }
    let fields = Fields(&doc);
    // The UUID is canonicalised (lower case, hyphens) whatever form it came in.
    let requested_uuid = fields.opt_uuid("uuid")?;
    let mut allocation = Allocation::new(requested_uuid.unwrap_or_else(Uuid::new_v4));
    allocation.name = fields.opt_string("name")?;
    if let Some(name) = &allocation.name {
        if !is_valid_allocation_name(name) {
            return Err(ApiError::bad(format!(
                "Cannot create allocation with invalid name '{name}'"
            )));
        }
    }
    allocation.resource_class = fields
        .opt_string_max("resource_class", MAX_RESOURCE_CLASS_LEN)?
        .filter(|class| !class.is_empty());
    allocation.traits = string_list(&doc, "traits")?;
    if let Some(bad) = allocation.traits.iter().find(|name| !is_valid_trait(name)) {
        return Err(ApiError::bad(format!(
            "Invalid trait {bad:?}: a trait is CUSTOM_ followed by upper-case letters, digits \
             and _, or a standard trait name"
        )));
    }
    allocation.extra = fields.object("extra")?;
    allocation.owner = fields.opt_string_max("owner", MAX_OWNER_LEN)?;

    let backfill_node = match fields.opt_string("node")? {
        Some(ident) => Some(referenced_node(&state, &ident).await?),
        None => None,
    };
    if allocation.resource_class.is_none() {
        match &backfill_node {
            Some(node) => allocation.resource_class = node.resource_class.clone(),
            None => {
                return Err(ApiError::bad(
                    "The resource_class field is mandatory when not backfilling",
                ))
            }
        }
    }
    for ident in string_list(&doc, "candidate_nodes")? {
        let uuid = referenced_node(&state, &ident).await?.uuid;
        if !allocation.candidate_nodes.contains(&uuid) {
            allocation.candidate_nodes.push(uuid);
        }
    }

    let stored = match backfill_node {
        Some(node) => {
            // Backfilling without a UUID: the node's instance UUID is the
            // allocation's, as in Ironic.
            if requested_uuid.is_none() {
                if let Some(instance) =
                    node.instance_uuid.as_deref().and_then(|text| Uuid::parse_str(text).ok())
                {
                    allocation.uuid = instance;
                }
            }
            backfill(&state, allocation, node).await?
        }
        None => allocate(&state, allocation).await?,
    };
    let body = view::allocation(&stored, &ctx, None);
    Ok(created(&ctx, &format!("allocations/{}", stored.uuid), body))
}

/// Finds and reserves a node for `allocation`, or records why none could be.
async fn allocate(state: &ApiState, allocation: Allocation) -> ApiResult<Allocation> {
    let class = allocation.resource_class.clone().unwrap_or_default();
    let query = NodeQuery {
        filters: NodeFilters {
            provision_state: Some(ProvisionState::Available),
            associated: Some(false),
            maintenance: Some(false),
            resource_class: Some(class.clone()),
            project: allocation.owner.clone(),
            ..NodeFilters::default()
        },
        ..NodeQuery::default()
    };
    let mut nodes: Vec<Node> = state
        .store
        .node_list(&query)
        .await?
        .into_iter()
        .filter(|node| {
            node.power_state.is_some()
                && (allocation.candidate_nodes.is_empty()
                    || allocation.candidate_nodes.contains(&node.uuid))
        })
        .collect();
    if nodes.is_empty() {
        let reason = if allocation.candidate_nodes.is_empty() {
            format!("no available nodes match the resource class {class}")
        } else {
            format!(
                "none of the requested nodes are available and match the resource class {class}"
            )
        };
        return record_failure(state, allocation, &reason).await;
    }
    nodes.retain(|node| traits_match(&node.traits, &allocation.traits));
    if nodes.is_empty() {
        let reason =
            format!("no suitable nodes have the requested traits {}", allocation.traits.join(", "));
        return record_failure(state, allocation, &reason).await;
    }
    // Parallel allocations must not all try the same node first.
    nodes.shuffle(&mut rand::thread_rng());
    prefer_named_node(&mut nodes, allocation.name.as_deref());
    // Nodes a conductor holds are tried again a little later, as in Ironic.
    let mut pending = nodes;
    let mut reason = "all nodes were filtered out during reservation".to_owned();
    for pass in 0..RESERVE_PASSES {
        let mut locked = Vec::new();
        for node in pending {
            match reserve(state, &allocation, node).await? {
                Reservation::Reserved(stored) => return Ok(*stored),
                Reservation::Locked(uuid) => locked.push(uuid),
                Reservation::Unsuitable => {}
            }
        }
        if locked.is_empty() {
            reason = "all nodes were filtered out during reservation".to_owned();
            break;
        }
        reason = format!("could not reserve any of {} suitable nodes", locked.len());
        if pass + 1 == RESERVE_PASSES {
            break;
        }
        tokio::time::sleep(LOCKED_RETRY_INTERVAL).await;
        pending = state.store.node_get_many(&locked).await?;
    }
    record_failure(state, allocation, &reason).await
}

/// What became of one attempt to reserve a node.
enum Reservation {
    Reserved(Box<Allocation>),
    /// A conductor holds the node: worth another try later.
    Locked(Uuid),
    /// The node is (or became) unsuitable, or another allocation got it.
    Unsuitable,
}

/// Tries to reserve `node` for `allocation`, re-reading it when it changed
/// under the attempt.
async fn reserve(
    state: &ApiState,
    allocation: &Allocation,
    mut node: Node,
) -> ApiResult<Reservation> {
    for _ in 0..WRITE_ATTEMPTS {
        if !is_candidate(&node, allocation) {
            return Ok(Reservation::Unsuitable);
        }
        if node.reservation.is_some() {
            return Ok(Reservation::Locked(node.uuid));
        }
        let mut active = allocation.clone();
        active.state = AllocationState::Active;
        active.node_uuid = Some(node.uuid);
        match state.store.allocation_create_claiming(&active, &claimed(&node, allocation)).await {
            Ok(Some(stored)) => return Ok(Reservation::Reserved(Box::new(stored))),
            // The node changed since it was read: look again.
            Ok(None) => {}
            // An older allocation still names this node.
            Err(StoreError::Duplicate { kind: "allocation", field: "node_uuid", .. }) => {
                return Ok(Reservation::Unsuitable)
            }
            Err(other) => return Err(write_error(other)),
        }
        node = match state.store.node_get_by_uuid(node.uuid).await {
            Ok(fresh) => fresh,
            Err(StoreError::NotFound { .. }) => return Ok(Reservation::Unsuitable),
            Err(other) => return Err(other.into()),
        };
    }
    Ok(Reservation::Unsuitable)
}

/// Records `allocation` as failed, with `reason` as its `last_error`.
async fn record_failure(
    state: &ApiState,
    mut allocation: Allocation,
    reason: &str,
) -> ApiResult<Allocation> {
    tracing::info!(allocation = %allocation.uuid, reason, "allocation failed");
    allocation.state = AllocationState::Error;
    allocation.node_uuid = None;
    allocation.last_error = Some(allocation.failure_message(reason));
    state.store.allocation_create(&allocation).await.map_err(write_error)
}

/// Records an allocation for a node that is already deployed.
async fn backfill(
    state: &ApiState,
    allocation: Allocation,
    mut node: Node,
) -> ApiResult<Allocation> {
    for _ in 0..WRITE_ATTEMPTS {
        if let Some(host) = &node.reservation {
            return Err(ApiError::Conflict(format!(
                "Node {} is locked by host {host}, please retry after the current operation is \
                 completed.",
                node.uuid
            )));
        }
        if let Some(existing) = node.allocation_uuid {
            return Err(ApiError::Conflict(format!(
                "Node {} already has allocation {existing}",
                node.uuid
            )));
        }
        if let Some(instance) = &node.instance_uuid {
            if Uuid::parse_str(instance).ok() != Some(allocation.uuid) {
                return Err(ApiError::Conflict(format!(
                    "Node {} is associated with instance {instance}.",
                    node.uuid
                )));
            }
        }
        let problems = backfill_problems(&node, &allocation);
        if !problems.is_empty() {
            return Err(ApiError::bad(format!(
                "Cannot backfill an allocation for node {}: {}",
                node.uuid,
                problems.join("; ")
            )));
        }
        let mut active = allocation.clone();
        active.state = AllocationState::Active;
        active.node_uuid = Some(node.uuid);
        match state.store.allocation_create_claiming(&active, &claimed(&node, &allocation)).await {
            Ok(Some(stored)) => return Ok(stored),
            Ok(None) => {}
            Err(other) => return Err(write_error(other)),
        }
        node = nodes::load(state, &node.uuid.to_string()).await?;
    }
    Err(ApiError::Conflict(format!("Node {} is being changed by others; please retry", node.uuid)))
}

// ---------------------------------------------------------------- read

pub async fn show(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    mut params: Params,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(ALLOCATIONS)?;
    let fields = take_fields(&mut params, &ctx)?;
    params.finish()?;
    let allocation = load(&state, &ident).await?;
    Ok(Json(view::allocation(&allocation, &ctx, fields.as_deref())))
}

pub async fn list(
    State(state): State<ApiState>,
    ctx: Ctx,
    mut params: Params,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(ALLOCATIONS)?;
    let listing = Listing::parse(&mut params, &ctx, true)?;
    let mut query = AllocationQuery { page: listing.page.clone(), ..AllocationQuery::default() };
    if let Some(key) = &listing.sort_key {
        if UNSORTABLE.contains(&key.as_str()) {
            return Err(ApiError::bad(format!(
                "The sort_key value {key} is an invalid field for sorting"
            )));
        }
        query.sort_key = AllocationSortKey::parse(key)
            .ok_or_else(|| ApiError::bad(format!("The sort_key value {key} is invalid")))?;
    }
    let node = params.take("node");
    query.resource_class = params.take("resource_class");
    // An unknown state matches no allocation (Ironic filters on the text).
    let mut matches_nothing = false;
    if let Some(text) = params.take("state") {
        match AllocationState::parse(&text) {
            Some(wanted) => query.state = Some(wanted),
            None => matches_nothing = true,
        }
    }
    query.owner = params.take_since("owner", &ctx, OWNER)?;
    params.finish()?;
    view::check_selection(listing.fields.as_deref(), view::ALLOCATION_FIELDS, &ctx)?;
    if let Some(ident) = node {
        query.node_uuid = Some(referenced_node(&state, &ident).await?.uuid);
    }
    let all =
        if matches_nothing { Vec::new() } else { state.store.allocation_list(&query).await? };
    let items =
        all.iter().map(|allocation| view::allocation(allocation, &ctx, listing.fields.as_deref()));
    let marker = all.last().map(|allocation| allocation.uuid.to_string());
    Ok(Json(listing.finish_collection(&ctx, "allocations", "allocations", items.collect(), marker)))
}

pub async fn of_node(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    mut params: Params,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(ALLOCATIONS)?;
    let fields = take_fields(&mut params, &ctx)?;
    params.finish()?;
    let node = nodes::load(&state, &ident).await?;
    let allocation =
        state.store.allocation_get_by_node(node.uuid).await?.ok_or_else(|| {
            ApiError::NotFound(format!("Allocation for node {ident} was not found"))
        })?;
    Ok(Json(view::allocation(&allocation, &ctx, fields.as_deref())))
}

// ---------------------------------------------------------------- update

pub async fn update(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    Body(ops): Body<Value>,
) -> ApiResult<Json<Value>> {
    gate(&ctx, &Method::PATCH, ALLOCATIONS, "allocations")?;
    gate(&ctx, &Method::PATCH, PATCHING, "updating allocations")?;
    let known = view::field_names(view::ALLOCATION_FIELDS);
    // Conditional on the allocation being unchanged since it was read; a
    // lost race re-reads and re-applies the patch.
    for _ in 0..PATCH_ATTEMPTS {
        let mut allocation = load(&state, &ident).await?;
        let mut before = Map::new();
        before.insert("name".into(), allocation.name.clone().into());
        before.insert("extra".into(), Value::Object(allocation.extra.clone()));
        let after = patch::apply(&before, &ops, &["name", "extra"], &known)?;
        let fields = Fields(&after);
        allocation.name = fields.opt_string("name")?;
        if let Some(name) = &allocation.name {
            if !is_valid_allocation_name(name) {
                return Err(ApiError::bad(format!(
                    "Cannot update allocation with invalid name '{name}'"
                )));
            }
        }
        allocation.extra = fields.object("extra")?;
        let stored =
            unless_stale(state.store.allocation_update(&allocation).await).map_err(write_error)?;
        if let Some(stored) = stored {
            return Ok(Json(view::allocation(&stored, &ctx, None)));
        }
    }
    Err(lost_races("Allocation", &ident))
}

// ---------------------------------------------------------------- delete

pub async fn delete(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<StatusCode> {
    gate(&ctx, &Method::DELETE, ALLOCATIONS, "allocations")?;
    let allocation = load(&state, &ident).await?;
    release(&state, allocation).await
}

pub async fn delete_of_node(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.version.require_endpoint(ALLOCATIONS)?;
    let node = nodes::load(&state, &ident).await?;
    let allocation =
        state.store.allocation_get_by_node(node.uuid).await?.ok_or_else(|| {
            ApiError::NotFound(format!("Allocation for node {ident} was not found"))
        })?;
    release(&state, allocation).await
}

/// Deletes `allocation` and frees its node, unless the node is deployed,
/// busy or locked (maintenance lifts the first two).
async fn release(state: &ApiState, allocation: Allocation) -> ApiResult<StatusCode> {
    for _ in 0..WRITE_ATTEMPTS {
        let node_version = match allocation.node_uuid {
            None => None,
            Some(uuid) => match state.store.node_get_by_uuid(uuid).await {
                Ok(node) => {
                    if let Some(host) = &node.reservation {
                        return Err(ApiError::Conflict(format!(
                            "Node {} is locked by host {host}, please retry after the current \
                             operation is completed.",
                            node.uuid
                        )));
                    }
                    if let Some(reason) = deallocation_refusal(&node, allocation.uuid) {
                        return Err(ApiError::Conflict(reason));
                    }
                    Some(node.version)
                }
                Err(StoreError::NotFound { .. }) => None,
                Err(other) => return Err(other.into()),
            },
        };
        match state.store.allocation_delete(&allocation, node_version).await {
            Ok(()) => return Ok(StatusCode::NO_CONTENT),
            Err(StoreError::Stale { .. }) => continue,
            Err(StoreError::NotFound { .. }) => {
                return Err(not_found("Allocation", &allocation.uuid.to_string()))
            }
            Err(other) => return Err(other.into()),
        }
    }
    Err(ApiError::Conflict(format!(
        "The node of allocation {} is being changed by others; please retry",
        allocation.uuid
    )))
}

/// Node states in which removing a node's instance also removes its
/// allocation (outside them only in maintenance), as in Ironic.
const INSTANCE_REMOVAL_STATES: [ProvisionState; 5] = [
    ProvisionState::Enroll,
    ProvisionState::Inspecting,
    ProvisionState::InspectWait,
    ProvisionState::Manageable,
    ProvisionState::Available,
];

/// A node PATCH removes the `instance_uuid` of a node with an allocation:
/// deletes the allocation, freeing the node, in one conditional write.
/// `true` if that happened (the caller re-reads the node); `false` if there
/// was no allocation after all or the node changed meanwhile.
pub(super) async fn release_for_instance_removal(state: &ApiState, node: &Node) -> ApiResult<bool> {
    if !node.maintenance && !INSTANCE_REMOVAL_STATES.contains(&node.provision_state) {
        let allowed: Vec<&str> = INSTANCE_REMOVAL_STATES.iter().map(|s| s.as_str()).collect();
        return Err(ApiError::Conflict(format!(
            "Node {} with an allocation can not have instance_uuid removed unless it is in one \
             of allowed ({}) states or in maintenance mode. Current state is '{}'.",
            node.uuid,
            allowed.join(", "),
            node.provision_state.as_str()
        )));
    }
    let Some(allocation) = state.store.allocation_get_by_node(node.uuid).await? else {
        return Ok(false);
    };
    match state.store.allocation_delete(&allocation, Some(node.version)).await {
        Ok(()) => Ok(true),
        Err(StoreError::Stale { .. } | StoreError::NotFound { .. }) => Ok(true),
        Err(other) => Err(other.into()),
    }
}

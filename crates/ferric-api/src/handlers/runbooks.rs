//! `/v1/runbooks` (1.92): named, ordered step lists a `clean` or `service`
//! request may name instead of listing its steps; from 1.112 the node traits
//! that approve a runbook are its own (`/v1/runbooks/{runbook}/traits`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferric_types::templates::{check_runbook_name, parse_runbook_steps, TemplateError};
use ferric_types::validate::is_valid_trait;
use ferric_types::{Node, ProvisionRequest, Runbook, Timestamp, Verb};
use http::Method;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::common::{
    body_object, created, duplicate, gate, lost_races, or_not_found, show_fields, unless_stale,
    NAME_OR_UUID, PATCH_ATTEMPTS,
};
use super::deploy_templates::{invalid, listing, shown};
use crate::ctx::{Body, Ctx, Params};
use crate::error::{ApiError, ApiResult};
use crate::patch::{self, Fields};
use crate::view;
use crate::ApiState;

/// The microversion that introduced runbooks.
const SINCE: u16 = 92;
/// Runbook traits, descriptions and logical names.
const TRAITS_SINCE: u16 = 112;

async fn load(state: &ApiState, ident: &str) -> ApiResult<Runbook> {
    state.store.runbook_get(ident).await.map_err(or_not_found("Runbook", ident))
}

/// Reads the writable fields from a create body or patched document.
fn assign(runbook: &mut Runbook, doc: &Map<String, Value>, logical_name: bool) -> ApiResult<()> {
    let fields = Fields(doc);
    let name = fields.opt_string("name")?.ok_or_else(|| ApiError::bad("A runbook needs a name"))?;
    check_runbook_name(&name, logical_name).map_err(invalid)?;
    let steps = doc.get("steps").ok_or_else(|| invalid(TemplateError::NoSteps))?;
    runbook.steps = parse_runbook_steps(steps).map_err(invalid)?;
    runbook.name = name;
    runbook.description = fields.opt_string_max("description", 255)?;
    runbook.disable_ramdisk = fields.bool_or("disable_ramdisk", false)?;
    runbook.public = fields.bool_or("public", false)?;
    runbook.owner = fields.opt_string_max("owner", 255)?;
    runbook.extra = fields.object("extra")?;
    Ok(())
}

pub async fn create(
    State(state): State<ApiState>,
    ctx: Ctx,
    Body(body): Body<Value>,
) -> ApiResult<Response> {
    gate(&ctx, &Method::POST, SINCE, "runbooks")?;
    let doc = body_object(body)?;
    for key in doc.keys() {
        match key.as_str() {
            "uuid" | "name" | "steps" | "disable_ramdisk" | "public" | "owner" | "extra" => {}
            "description" => ctx.version.require(TRAITS_SINCE, "description")?,
            "traits" if ctx.version.at_least(TRAITS_SINCE) => {
                return Err(ApiError::bad(
                    "Runbook traits are set with PUT /v1/runbooks/{runbook}/traits",
                ))
            }
            _ => return Err(ApiError::bad(format!("Unknown attribute for runbook: {key}"))),
        }
    }
    let uuid = Fields(&doc).opt_uuid("uuid")?.unwrap_or_else(Uuid::new_v4);
    let mut runbook = Runbook {
        id: 0,
        uuid,
        name: String::new(),
        description: None,
        steps: Vec::new(),
        disable_ramdisk: false,
        public: false,
        owner: None,
        traits: Vec::new(),
        extra: Map::new(),
        created_at: Timestamp::now(),
        updated_at: None,
    };
    let logical = ctx.version.at_least(TRAITS_SINCE);
    assign(&mut runbook, &doc, logical)?;
    if !logical {
        // Before 1.112 the name is the trait that approves the runbook; keep
        // it as one, so the runbook also works for newer clients.
        runbook.traits = vec![runbook.name.clone()];
    }
    let stored =
        state.store.runbook_create(&runbook).await.map_err(duplicate("A runbook", NAME_OR_UUID))?;
    Ok(created(&ctx, &format!("runbooks/{}", stored.uuid), view::runbook(&stored, &ctx, None)))
}

pub async fn show(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    mut params: Params,
) -> ApiResult<Json<Value>> {
    gate(&ctx, &Method::GET, SINCE, "runbooks")?;
    let fields = show_fields(&mut params, &ctx, view::RUNBOOK_FIELDS)?;
    let runbook = load(&state, &ident).await?;
    Ok(Json(view::runbook(&runbook, &ctx, fields.as_deref())))
}

/// The values `ops` sets at `path` (`add`/`replace`).
fn patched_values<'a>(ops: &'a Value, path: &str) -> Vec<&'a Value> {
    ops.as_array()
        .into_iter()
        .flatten()
        .filter(|op| op.get("path").and_then(Value::as_str) == Some(path))
        .filter(|op| op.get("op").and_then(Value::as_str) != Some("remove"))
        .filter_map(|op| op.get("value"))
        .collect()
}

pub async fn update(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    Body(ops): Body<Value>,
) -> ApiResult<Json<Value>> {
    gate(&ctx, &Method::PATCH, SINCE, "runbooks")?;
    let mut patchable = vec!["name", "steps", "disable_ramdisk", "public", "owner", "extra"];
    if ctx.version.at_least(TRAITS_SINCE) {
        patchable.push("description");
    }
    // A public runbook has no owner: setting one needs `public` made false
    // in the same patch; changing `public` clears the owner.
    let owners = patched_values(&ops, "/owner");
    let publics = patched_values(&ops, "/public");
    let owner_set = owners.iter().any(|value| !value.is_null());
    let known = view::field_names(view::RUNBOOK_FIELDS);
    // Conditional on the runbook being unchanged since it was read; a lost
    // race re-reads and re-applies the patch.
    for _ in 0..PATCH_ATTEMPTS {
        let mut runbook = load(&state, &ident).await?;
        if owner_set {
            let made_public = publics.first().is_some_and(|value| value.as_bool() == Some(true));
            if (runbook.public && publics.is_empty()) || made_public {
                return Err(ApiError::bad("There cannot be an owner for a public runbook"));
            }
        }
        let mut before = Map::new();
        before.insert("name".into(), runbook.name.clone().into());
        before.insert("description".into(), runbook.description.clone().into());
        before.insert("steps".into(), serde_json::to_value(&runbook.steps).unwrap_or_default());
        before.insert("disable_ramdisk".into(), runbook.disable_ramdisk.into());
        before.insert("public".into(), runbook.public.into());
        let owner = if publics.is_empty() { runbook.owner.clone() } else { None };
        before.insert("owner".into(), owner.into());
        before.insert("extra".into(), Value::Object(runbook.extra.clone()));
        let after = patch::apply(&before, &ops, &patchable, &known)?;
        // Any logical name is accepted here, so runbooks named at 1.112 stay
        // patchable from older clients (as in Ironic).
        assign(&mut runbook, &after, true)?;
        let stored = unless_stale(state.store.runbook_update(&runbook).await)
            .map_err(duplicate("A runbook", NAME_OR_UUID))?;
        if let Some(stored) = stored {
            return Ok(Json(view::runbook(&stored, &ctx, None)));
        }
    }
    Err(lost_races("Runbook", &ident))
}

pub async fn delete(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<StatusCode> {
    gate(&ctx, &Method::DELETE, SINCE, "runbooks")?;
    let runbook = load(&state, &ident).await?;
    state.store.runbook_delete(runbook.uuid).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list(
    State(state): State<ApiState>,
    ctx: Ctx,
    mut params: Params,
) -> ApiResult<Json<Value>> {
    gate(&ctx, &Method::GET, SINCE, "runbooks")?;
    let (listing, mut query) = listing(&mut params, &ctx, view::RUNBOOK_FIELDS, true)?;
    query.project = params.take("project").filter(|p| !p.is_empty());
    params.finish()?;
    let all = state.store.runbook_list(&query).await?;
    let fields = shown(&listing);
    let items = all.iter().map(|r| view::runbook(r, &ctx, fields.as_deref())).collect();
    let marker = all.last().map(|r| r.uuid.to_string());
    Ok(Json(listing.finish_collection(&ctx, "runbooks", "runbooks", items, marker)))
}

// ---- traits (1.112) ----

fn check_trait(name: &str) -> ApiResult<()> {
    if is_valid_trait(name) {
        Ok(())
    } else {
        Err(ApiError::bad(format!(
            "Invalid trait \"{name}\": use CUSTOM_ followed by upper-case letters, digits or _, \
             or a standard trait, at most 255 characters"
        )))
    }
}

/// Loads the runbook `ident` and writes `edit` of its traits, conditional on
/// the runbook being unchanged since it was read; a lost race re-reads and
/// re-applies the edit.
async fn edit_traits(
    state: &ApiState,
    ident: &str,
    edit: impl Fn(&[String]) -> Vec<String>,
) -> ApiResult<()> {
    for _ in 0..PATCH_ATTEMPTS {
        let mut runbook = load(state, ident).await?;
        runbook.traits = edit(&runbook.traits);
        if unless_stale(state.store.runbook_update(&runbook).await)?.is_some() {
            return Ok(());
        }
    }
    Err(lost_races("Runbook", ident))
}

pub async fn traits_list(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(TRAITS_SINCE)?;
    let runbook = load(&state, &ident).await?;
    Ok(Json(serde_json::json!({ "traits": runbook.traits })))
}

pub async fn traits_replace(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult<StatusCode> {
    ctx.version.require_endpoint(TRAITS_SINCE)?;
    let list = body
        .as_object()
        .filter(|map| map.len() == 1)
        .and_then(|map| map.get("traits"))
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad("The body must be {\"traits\": [...]}"))?;
    let mut traits = Vec::with_capacity(list.len());
    for item in list {
        let name = item.as_str().ok_or_else(|| ApiError::bad("Each trait must be a string"))?;
        check_trait(name)?;
        if !traits.iter().any(|t| t == name) {
            traits.push(name.to_owned());
        }
    }
    edit_traits(&state, &ident, |_| traits.clone()).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn traits_clear(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.version.require_endpoint(TRAITS_SINCE)?;
    edit_traits(&state, &ident, |_| Vec::new()).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn trait_add(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path((ident, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    ctx.version.require_endpoint(TRAITS_SINCE)?;
    check_trait(&name)?;
    edit_traits(&state, &ident, |traits| {
        let mut traits = traits.to_vec();
        if !traits.contains(&name) {
            traits.push(name.clone());
        }
        traits
    })
    .await?;
    let location = format!("{}/v1/runbooks/{ident}/traits/{name}", ctx.base_url);
    Ok((StatusCode::NO_CONTENT, [(http::header::LOCATION, location)]).into_response())
}

pub async fn trait_remove(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path((ident, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    ctx.version.require_endpoint(TRAITS_SINCE)?;
    // Removing a trait the runbook does not have is a no-op, as in Ironic.
    edit_traits(&state, &ident, |traits| traits.iter().filter(|t| **t != name).cloned().collect())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- use in provision requests ----

/// Resolves `request.runbook` for `node` into the request's clean or service
/// steps (in `order`) and `disable_ramdisk`, after checking that the node
/// approves it: before 1.112 the runbook's name must be a node trait; from
/// 1.112 the runbook and node must share a trait.
pub(super) async fn apply_to_request(
    state: &ApiState,
    ctx: &Ctx,
    node: &Node,
    verb: Verb,
    request: &mut ProvisionRequest,
) -> ApiResult<()> {
    let Some(ident) = request.runbook.clone() else { return Ok(()) };
    if !matches!(verb, Verb::Clean | Verb::Service) {
        return Err(ApiError::bad(
            "\"runbook\" is only valid when setting target provision state to clean or service",
        ));
    }
    let key = if verb == Verb::Clean { "clean_steps" } else { "service_steps" };
    let given = if verb == Verb::Clean { &request.clean_steps } else { &request.service_steps };
    if given.as_ref().is_some_and(|steps| !steps.is_empty()) {
        return Err(ApiError::bad(format!(
            "Please provide either \"{key}\" or a runbook, not both"
        )));
    }
    let runbook = load(state, &ident).await?;
    if ctx.version.at_least(TRAITS_SINCE) {
        if runbook.traits.is_empty() {
            return Err(ApiError::bad(format!(
                "Runbook {} has no traits, so no node approves it; ask an administrator to add \
                 traits to the runbook",
                runbook.uuid
            )));
        }
        if !runbook.traits.iter().any(|t| node.traits.contains(t)) {
            return Err(ApiError::bad(format!(
                "Runbook {} is not approved for node {}: the node has none of the runbook's \
                 traits ({}); ask an administrator to add a matching trait to the node",
                runbook.name,
                node.uuid,
                runbook.traits.join(", ")
            )));
        }
    } else if !node.traits.contains(&runbook.name) {
        return Err(ApiError::bad(format!(
            "Runbook {} is not approved for node {}: ask an administrator to add it to the \
             node's traits",
            runbook.name, node.uuid
        )));
    }
    let steps = runbook.ordered_steps().iter().map(|step| step.to_user_step()).collect();
    match verb {
        Verb::Clean => request.clean_steps = Some(steps),
        _ => request.service_steps = Some(steps),
    }
    // The runbook decides, as in Ironic.
    request.disable_ramdisk = runbook.disable_ramdisk.then_some(true);
    Ok(())
}

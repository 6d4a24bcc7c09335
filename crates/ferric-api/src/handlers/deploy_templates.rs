//! `/v1/deploy_templates` (1.55): named deploy step lists applied to a
//! deploy whose instance asks for the template's name as a trait. Also the
//! pieces runbooks share: gating, listing parameters, step errors.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use ferric_store::{TemplateQuery, TemplateSortKey};
use ferric_types::templates::{check_template_name, parse_template_steps, TemplateError};
use ferric_types::{DeployTemplate, Node, Timestamp};
use http::Method;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::common::{
    body_object, created, duplicate, gate, lost_races, or_not_found, show_fields, unless_stale,
    NAME_OR_UUID, PATCH_ATTEMPTS,
};
use crate::ctx::{Body, Ctx, Listing, Params};
use crate::error::{ApiError, ApiResult};
use crate::patch::{self, Fields};
use crate::view;
use crate::ApiState;

/// The microversion that introduced deploy templates.
const SINCE: u16 = 55;

pub(super) fn invalid(error: TemplateError) -> ApiError {
    ApiError::bad(error.to_string())
}

/// `limit`, `marker`, `sort_key`, `sort_dir`, `fields`, `detail` of a
/// template or runbook listing.
pub(super) fn listing(
    params: &mut Params,
    ctx: &Ctx,
    table: &[(&str, u16)],
    runbook: bool,
) -> ApiResult<(Listing, TemplateQuery)> {
    let listing = Listing::parse(params, ctx, true)?;
    view::check_selection(listing.fields.as_deref(), table, ctx)?;
    let sort_key = match listing.sort_key.as_deref() {
        None => TemplateSortKey::Id,
        Some(key) => TemplateSortKey::parse(key, runbook).ok_or_else(|| {
            ApiError::bad(format!("The sort_key value {key} is an invalid field for sorting"))
        })?,
    };
    let query = TemplateQuery { sort_key, page: listing.page.clone(), project: None };
    Ok((listing, query))
}

/// The fields a listing shows: the selection, everything (detail), or
/// `uuid` and `name`.
pub(super) fn shown(listing: &Listing) -> Option<Vec<String>> {
    listing.selection(listing.detail, &["uuid", "name"])
}

async fn load(state: &ApiState, ident: &str) -> ApiResult<DeployTemplate> {
    state.store.deploy_template_get(ident).await.map_err(or_not_found("Deploy template", ident))
}

/// Reads `name`, `steps` and `extra` from a create body or patched document.
fn assign(template: &mut DeployTemplate, doc: &Map<String, Value>) -> ApiResult<()> {
    let fields = Fields(doc);
    let name = fields
        .opt_string("name")?
        .ok_or_else(|| ApiError::bad("A deploy template needs a name"))?;
    check_template_name(&name).map_err(invalid)?;
    let steps = doc.get("steps").ok_or_else(|| invalid(TemplateError::NoSteps))?;
    template.steps = parse_template_steps(steps).map_err(invalid)?;
    template.name = name;
    template.extra = fields.object("extra")?;
    Ok(())
}

pub async fn create(
    State(state): State<ApiState>,
    ctx: Ctx,
    Body(body): Body<Value>,
) -> ApiResult<Response> {
    gate(&ctx, &Method::POST, SINCE, "deploy templates")?;
    let doc = body_object(body)?;
    for key in doc.keys() {
        if !matches!(key.as_str(), "uuid" | "name" | "steps" | "extra") {
            return Err(ApiError::bad(format!("Unknown attribute for deploy template: {key}")));
        }
    }
    let uuid = Fields(&doc).opt_uuid("uuid")?.unwrap_or_else(Uuid::new_v4);
    let mut template = DeployTemplate {
        id: 0,
        uuid,
        name: String::new(),
        steps: Vec::new(),
        extra: Map::new(),
        created_at: Timestamp::now(),
        updated_at: None,
    };
    assign(&mut template, &doc)?;
    let stored = state
        .store
        .deploy_template_create(&template)
        .await
        .map_err(duplicate("A deploy template", NAME_OR_UUID))?;
    let body = view::deploy_template(&stored, &ctx, None);
    Ok(created(&ctx, &format!("deploy_templates/{}", stored.uuid), body))
}

pub async fn show(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    mut params: Params,
) -> ApiResult<Json<Value>> {
    gate(&ctx, &Method::GET, SINCE, "deploy templates")?;
    let fields = show_fields(&mut params, &ctx, view::DEPLOY_TEMPLATE_FIELDS)?;
    let template = load(&state, &ident).await?;
    Ok(Json(view::deploy_template(&template, &ctx, fields.as_deref())))
}

pub async fn update(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    Body(ops): Body<Value>,
) -> ApiResult<Json<Value>> {
    gate(&ctx, &Method::PATCH, SINCE, "deploy templates")?;
    let known = view::field_names(view::DEPLOY_TEMPLATE_FIELDS);
    // Conditional on the template being unchanged since it was read; a lost
    // race re-reads and re-applies the patch.
    for _ in 0..PATCH_ATTEMPTS {
        let mut template = load(&state, &ident).await?;
        // The stored steps, not the view's: masked args would be saved masked.
        let mut before = Map::new();
        before.insert("name".into(), template.name.clone().into());
        before.insert("steps".into(), serde_json::to_value(&template.steps).unwrap_or_default());
        before.insert("extra".into(), Value::Object(template.extra.clone()));
        let after = patch::apply(&before, &ops, &["name", "steps", "extra"], &known)?;
        assign(&mut template, &after)?;
        let stored = unless_stale(state.store.deploy_template_update(&template).await)
            .map_err(duplicate("A deploy template", NAME_OR_UUID))?;
        if let Some(stored) = stored {
            return Ok(Json(view::deploy_template(&stored, &ctx, None)));
        }
    }
    Err(lost_races("Deploy template", &ident))
}

pub async fn delete(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<StatusCode> {
    gate(&ctx, &Method::DELETE, SINCE, "deploy templates")?;
    let template = load(&state, &ident).await?;
    state.store.deploy_template_delete(template.uuid).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list(
    State(state): State<ApiState>,
    ctx: Ctx,
    mut params: Params,
) -> ApiResult<Json<Value>> {
    gate(&ctx, &Method::GET, SINCE, "deploy templates")?;
    let (listing, query) = listing(&mut params, &ctx, view::DEPLOY_TEMPLATE_FIELDS, false)?;
    params.finish()?;
    let all = state.store.deploy_template_list(&query).await?;
    let fields = shown(&listing);
    let items = all.iter().map(|t| view::deploy_template(t, &ctx, fields.as_deref())).collect();
    let marker = all.last().map(|t| t.uuid.to_string());
    Ok(Json(listing.finish_collection(&ctx, "deploy_templates", "deploy_templates", items, marker)))
}

/// A deploy's instance traits (`instance_info.traits`) must be a list of
/// strings, each also a trait of the node — checked when the deploy is
/// requested, as Ironic does.
pub(super) fn check_instance_traits(node: &Node) -> ApiResult<()> {
    let Some(value) = node.instance_info.get("traits").filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let traits: Vec<&str> = value
        .as_array()
        .and_then(|list| list.iter().map(Value::as_str).collect())
        .ok_or_else(|| {
            ApiError::bad(format!(
                "Error parsing traits from node {} instance_info: a list of strings is expected.",
                node.uuid
            ))
        })?;
    let missing: Vec<&str> =
        traits.into_iter().filter(|t| !node.traits.iter().any(|have| have == t)).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad(format!(
            "Cannot specify instance traits that are not also set on the node. Node {} is \
             missing traits {}",
            node.uuid,
            missing.join(", ")
        )))
    }
}

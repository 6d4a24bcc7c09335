//! `/v1/inspection_rules` (1.96): rules checked against inspection data.
//! Conditions and actions are validated on create and after every patch
//! (operators, required and unexpected arguments, regexes, networks, traits,
//! log levels); a `sensitive` rule never shows them and cannot be made
//! non-sensitive again.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use ferric_store::{RuleQuery, RuleSortKey, StoreError};
use ferric_types::inspection::{parse_actions, parse_conditions, MAX_PRIORITY};
use ferric_types::{InspectionRule, Phase, Timestamp};
use http::Method;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::common::{
    body_object, created, duplicate, gate, lost_races, or_not_found, show_fields_of_listing,
    unless_stale, uuid_ident, PATCH_ATTEMPTS, UUID_ONLY,
};
use crate::ctx::{Body, Ctx, Listing, Params};
use crate::error::{ApiError, ApiResult};
use crate::patch::{self, Fields};
use crate::view;
use crate::ApiState;

/// The microversion that introduced inspection rules.
const SINCE: u16 = 96;

const WRITABLE: &[&str] =
    &["uuid", "description", "priority", "sensitive", "phase", "conditions", "actions"];
const PATCHABLE: &[&str] =
    &["description", "priority", "sensitive", "phase", "conditions", "actions"];

/// Reads below 1.96 are 404; writes (`method`) are 405, as in Ironic.
fn require_write(ctx: &Ctx, method: Method) -> ApiResult<()> {
    gate(ctx, &method, SINCE, "inspection rules")
}

async fn load(state: &ApiState, ident: &str) -> ApiResult<InspectionRule> {
    let uuid = uuid_ident("Inspection rule", ident)?;
    state.store.inspection_rule_get(uuid).await.map_err(or_not_found("Inspection rule", ident))
}

/// Fills `rule` from a create body or a patched document, collecting
/// every problem into one 400 as Ironic does.
fn assign(rule: &mut InspectionRule, doc: &Map<String, Value>) -> ApiResult<()> {
    let fields = Fields(doc);
    let mut errors = Vec::new();
    match fields.opt_string_max("description", 255) {
        Ok(description) => rule.description = description,
        Err(error) => errors.push(error.to_string()),
    }
    match fields.opt_string_max("phase", 16) {
        Ok(None) => rule.phase = Phase::Main,
        Ok(Some(text)) => match Phase::parse(&text) {
            Some(phase) => rule.phase = phase,
            None => errors.push(format!(
                "Invalid phase: {text}. Valid phases are: {}",
                Phase::ALL.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
            )),
        },
        Err(error) => errors.push(error.to_string()),
    }
    // `baremetal inspection rule create --priority N` sends the number as a
    // string (python-ironicclient gives the option no type); a string of
    // decimal digits is read as that integer so the real CLI works.
    let priority = match doc.get("priority") {
        Some(Value::String(text)) => match text.trim().parse::<i64>() {
            Ok(n) => Some(Value::from(n)),
            Err(_) => Some(Value::String(text.clone())),
        },
        other => other.cloned(),
    };
    match priority {
        None | Some(Value::Null) => rule.priority = 0,
        Some(Value::Number(number)) => match number.as_i64() {
            Some(n) if n < 0 => {
                errors.push("Priority cannot be negative for user-defined rules.".into())
            }
            Some(n) if n > MAX_PRIORITY => errors.push(format!(
                "Priority must be between 0 and {MAX_PRIORITY} for user-defined rules."
            )),
            Some(n) => rule.priority = n,
            None => errors
                .push(format!("Invalid value for priority: expected an integer, got {number}")),
        },
        Some(other) => {
            errors.push(format!("Invalid value for priority: expected an integer, got {other}"))
        }
    }
    match fields.opt_bool("sensitive") {
        Ok(flag) => rule.sensitive = flag.unwrap_or(false),
        Err(error) => errors.push(error.to_string()),
    }
    match parse_conditions(doc.get("conditions")) {
        Ok(conditions) => rule.conditions = conditions,
        Err(error) => errors.push(error.to_string()),
    }
    match parse_actions(doc.get("actions")) {
        Ok(actions) => rule.actions = actions,
        Err(error) => errors.push(error.to_string()),
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(ApiError::bad(errors.remove(0))),
        _ => Err(ApiError::bad(format!(
            "Multiple validation errors occurred: {}",
            errors.join("; ")
        ))),
    }
}

pub async fn create(
    State(state): State<ApiState>,
    ctx: Ctx,
    Body(body): Body<Value>,
) -> ApiResult<Response> {
    require_write(&ctx, Method::POST)?;
    let doc = body_object(body)?;
    if let Some(key) = doc.keys().find(|key| !WRITABLE.contains(&key.as_str())) {
        return Err(ApiError::bad(format!("Unknown attribute for inspection rule: {key}")));
    }
    let mut rule = InspectionRule {
        id: 0,
        uuid: Fields(&doc).opt_uuid("uuid")?.unwrap_or_else(Uuid::new_v4),
        description: None,
        priority: 0,
        sensitive: false,
        phase: Phase::Main,
        conditions: Vec::new(),
        actions: Vec::new(),
        built_in: false,
        created_at: Timestamp::now(),
        updated_at: None,
    };
    assign(&mut rule, &doc)?;
    let stored = state
        .store
        .inspection_rule_create(&rule)
        .await
        .map_err(duplicate("An inspection rule", UUID_ONLY))?;
    let body = view::inspection_rule(&stored, &ctx, None);
    Ok(created(&ctx, &format!("inspection_rules/{}", stored.uuid), body))
}

pub async fn show(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    mut params: Params,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(SINCE)?;
    let fields = show_fields_of_listing(&mut params, &ctx, view::INSPECTION_RULE_FIELDS)?;
    let rule = load(&state, &ident).await?;
    Ok(Json(view::inspection_rule(&rule, &ctx, fields.as_deref())))
}

fn built_in(rule: &InspectionRule) -> ApiError {
    ApiError::Forbidden(format!(
        "Inspection rule {} is built in and cannot be changed or deleted through the API.",
        rule.uuid
    ))
}

pub async fn update(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    Body(ops): Body<Value>,
) -> ApiResult<Json<Value>> {
    require_write(&ctx, Method::PATCH)?;
    let known = view::field_names(view::INSPECTION_RULE_FIELDS);
    // Conditional on the rule being unchanged since it was read; a lost race
    // re-reads and re-applies the patch.
    for _ in 0..PATCH_ATTEMPTS {
        let mut rule = load(&state, &ident).await?;
        if rule.built_in {
            return Err(built_in(&rule));
        }
        let mut before = Map::new();
        before.insert("description".into(), rule.description.clone().into());
        before.insert("priority".into(), rule.priority.into());
        before.insert("sensitive".into(), rule.sensitive.into());
        before.insert("phase".into(), rule.phase.as_str().into());
        before.insert(
            "conditions".into(),
            rule.conditions.iter().map(|c| c.to_json()).collect::<Vec<_>>().into(),
        );
        before.insert(
            "actions".into(),
            rule.actions.iter().map(|a| a.to_json()).collect::<Vec<_>>().into(),
        );
        let after = patch::apply(&before, &ops, PATCHABLE, &known)?;
        let was_sensitive = rule.sensitive;
        assign(&mut rule, &after)?;
        if was_sensitive && !rule.sensitive {
            return Err(ApiError::bad("Inspection rules cannot have the sensitive flag unset."));
        }
        let stored = unless_stale(state.store.inspection_rule_update(&rule).await)?;
        if let Some(stored) = stored {
            return Ok(Json(view::inspection_rule(&stored, &ctx, None)));
        }
    }
    Err(lost_races("Inspection rule", &ident))
}

pub async fn delete(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<StatusCode> {
    require_write(&ctx, Method::DELETE)?;
    let rule = load(&state, &ident).await?;
    if rule.built_in {
        return Err(built_in(&rule));
    }
    state.store.inspection_rule_delete(rule.uuid).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list(
    State(state): State<ApiState>,
    ctx: Ctx,
    mut params: Params,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(SINCE)?;
    let phase = match params.take("phase") {
        None => None,
        Some(text) => Some(Phase::parse(&text).ok_or_else(|| {
            ApiError::bad(format!("Invalid phase: {text}. Valid phases are: main"))
        })?),
    };
    let listing = Listing::parse(&mut params, &ctx, true)?;
    params.finish()?;
    if listing.detail && listing.fields.is_some() {
        return Err(ApiError::bad("Can't fetch a subset of fields with 'detail' set"));
    }
    view::check_selection(listing.fields.as_deref(), view::INSPECTION_RULE_FIELDS, &ctx)?;
    let sort_key = match &listing.sort_key {
        None => RuleSortKey::Id,
        Some(key) if key == "actions" || key == "conditions" => {
            return Err(ApiError::bad(format!(
                "The sort_key value {key} is an invalid field for sorting"
            )))
        }
        Some(key) => RuleSortKey::parse(key).ok_or_else(|| {
            ApiError::bad(format!("The sort_key value \"{key}\" is not a valid sort key"))
        })?,
    };
    let query = RuleQuery { phase, sort_key, page: listing.page.clone() };
    let rules = state.store.inspection_rule_list(&query).await.map_err(|error| match error {
        StoreError::NotFound { kind: "marker", ident } => {
            ApiError::bad(format!("The marker {ident} does not name an existing inspection rule"))
        }
        other => other.into(),
    })?;
    let fields = listing.selection(listing.detail, &["uuid", "priority", "phase", "description"]);
    let items =
        rules.iter().map(|rule| view::inspection_rule(rule, &ctx, fields.as_deref())).collect();
    let marker = rules.last().map(|rule| rule.uuid.to_string());
    Ok(Json(listing.finish_collection(&ctx, "inspection_rules", "inspection_rules", items, marker)))
}

/// OpenAPI schemas of inspection rules.
pub(crate) fn openapi_schemas() -> Vec<(&'static str, Value)> {
    use ferric_types::inspection::{ActionOp, ConditionOp, Multiple};
    let names = |all: Vec<&'static str>| Value::from(all);
    let condition_ops: Vec<String> =
        ConditionOp::ALL.iter().flat_map(|op| [op.as_str().to_owned(), format!("!{op}")]).collect();
    let condition = json!({"type": "object", "required": ["op", "args"], "properties": {
        "op": {"type": "string", "enum": condition_ops, "description": "A leading ! inverts the operator"},
        "args": {"type": ["object", "array"]},
        "loop": {"type": ["array", "object"]},
        "multiple": {"type": "string", "enum": names(Multiple::ALL.iter().map(|m| m.as_str()).collect())}}});
    let action = json!({"type": "object", "required": ["op", "args"], "properties": {
        "op": {"type": "string", "enum": names(ActionOp::ALL.iter().map(|op| op.as_str()).collect())},
        "args": {"type": ["object", "array"]},
        "loop": {"type": ["array", "object"]}}});
    let writable = json!({
        "uuid": {"type": "string", "format": "uuid"},
        "description": {"type": ["string", "null"], "maxLength": 255},
        "priority": {"type": "integer", "minimum": 0, "maximum": MAX_PRIORITY},
        "sensitive": {"type": ["boolean", "null"]},
        "phase": {"type": ["string", "null"], "enum": ["main", null]},
        "conditions": {"type": ["array", "null"], "items": condition},
        "actions": {"type": ["array", "null"], "minItems": 1, "items": action,
            "description": "null when the rule is sensitive"},
    });
    let mut shown = writable.clone();
    if let Some(map) = shown.as_object_mut() {
        map.insert("built_in".into(), json!({"type": "boolean"}));
        map.insert("created_at".into(), json!({"type": "string", "format": "date-time"}));
        map.insert("updated_at".into(), json!({"type": ["string", "null"], "format": "date-time"}));
        map.insert("links".into(), json!({"$ref": "#/components/schemas/Links"}));
    }
    vec![
        (
            "InspectionRuleCreate",
            json!({"type": "object", "required": ["actions"],
            "x-since-microversion": "1.96", "properties": writable}),
        ),
        (
            "InspectionRule",
            json!({"type": "object", "x-since-microversion": "1.96", "properties": shown}),
        ),
        (
            "InspectionRuleCollection",
            json!({"type": "object", "required": ["inspection_rules"], "properties": {
            "inspection_rules": {"type": "array", "items": {"$ref": "#/components/schemas/InspectionRule"}},
            "next": {"type": "string", "description": "The next page, present when this page is full"}}}),
        ),
    ]
}

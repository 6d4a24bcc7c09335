//! `/v1/chassis`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use ferric_store::StoreError;
use ferric_types::{Chassis, Timestamp};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::common::{body_object, created, or_not_found, show_fields_of_listing, uuid_ident};
use super::nodes;
use crate::ctx::{Body, Ctx, Listing, Params};
use crate::error::{ApiError, ApiResult};
use crate::patch::{self, Fields};
use crate::view;
use crate::ApiState;

async fn load(state: &ApiState, ident: &str) -> ApiResult<Chassis> {
    let uuid = uuid_ident("Chassis", ident)?;
    state.store.chassis_get(uuid).await.map_err(or_not_found("Chassis", ident))
}

fn assign(chassis: &mut Chassis, doc: &Map<String, Value>) -> ApiResult<()> {
    let fields = Fields(doc);
    chassis.description = fields.opt_string_max("description", 255)?;
    chassis.extra = fields.object("extra")?;
    Ok(())
}

pub async fn create(
    State(state): State<ApiState>,
    ctx: Ctx,
    Body(body): Body<Value>,
) -> ApiResult<Response> {
    let doc = body_object(body)?;
    for key in doc.keys() {
        if !matches!(key.as_str(), "uuid" | "description" | "extra") {
            return Err(ApiError::bad(format!("Unknown attribute for chassis: {key}")));
        }
    }
    let uuid = Fields(&doc).opt_uuid("uuid")?.unwrap_or_else(Uuid::new_v4);
    let mut chassis = Chassis {
        id: 0,
        uuid,
        description: None,
        extra: Map::new(),
        created_at: Timestamp::now(),
        updated_at: None,
    };
    assign(&mut chassis, &doc)?;
    let stored = state.store.chassis_create(&chassis).await?;
    Ok(created(&ctx, &format!("chassis/{}", stored.uuid), view::chassis(&stored, &ctx, None)))
}

pub async fn show(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    mut params: Params,
) -> ApiResult<Json<Value>> {
    let fields = show_fields_of_listing(&mut params, &ctx, view::CHASSIS_FIELDS)?;
    let chassis = load(&state, &ident).await?;
    Ok(Json(view::chassis(&chassis, &ctx, fields.as_deref())))
}

pub async fn update(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    Body(ops): Body<Value>,
) -> ApiResult<Json<Value>> {
    let mut chassis = load(&state, &ident).await?;
    let mut before = Map::new();
    before.insert("description".into(), chassis.description.clone().into());
    before.insert("extra".into(), Value::Object(chassis.extra.clone()));
    let known = view::field_names(view::CHASSIS_FIELDS);
    let after = patch::apply(&before, &ops, &["description", "extra"], &known)?;
    assign(&mut chassis, &after)?;
    let stored = state.store.chassis_update(&chassis).await?;
    Ok(Json(view::chassis(&stored, &ctx, None)))
}

pub async fn delete(
    State(state): State<ApiState>,
    Path(ident): Path<String>,
) -> ApiResult<StatusCode> {
    let chassis = load(&state, &ident).await?;
    state.store.chassis_delete(chassis.uuid).await.map_err(|error| match error {
        StoreError::InUse { .. } => {
            ApiError::bad(format!("Chassis {} contains nodes; remove them first.", chassis.uuid))
        }
        other => other.into(),
    })?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_chassis(
    state: &ApiState,
    ctx: &Ctx,
    mut params: Params,
    detail: bool,
) -> ApiResult<Json<Value>> {
    let listing = Listing::parse(&mut params, ctx, true)?;
    params.finish()?;
    view::check_selection(listing.fields.as_deref(), view::CHASSIS_FIELDS, ctx)?;
    let all = state.store.chassis_list(&listing.page).await?;
    let fields = listing.selection(detail || listing.detail, &["uuid", "description"]);
    let items = all.iter().map(|chassis| view::chassis(chassis, ctx, fields.as_deref())).collect();
    let marker = all.last().map(|chassis| chassis.uuid.to_string());
    Ok(Json(listing.finish_collection(ctx, "chassis", "chassis", items, marker)))
}

pub async fn list(
    State(state): State<ApiState>,
    ctx: Ctx,
    params: Params,
) -> ApiResult<Json<Value>> {
    list_chassis(&state, &ctx, params, false).await
}

pub async fn list_detail(
    State(state): State<ApiState>,
    ctx: Ctx,
    params: Params,
) -> ApiResult<Json<Value>> {
    list_chassis(&state, &ctx, params, true).await
}

pub async fn nodes(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    params: Params,
) -> ApiResult<axum::response::Response> {
    let chassis = load(&state, &ident).await?;
    nodes::list_of_chassis(&state, &ctx, params, chassis.uuid, false).await
}

pub async fn nodes_detail(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    params: Params,
) -> ApiResult<axum::response::Response> {
    let chassis = load(&state, &ident).await?;
    nodes::list_of_chassis(&state, &ctx, params, chassis.uuid, true).await
}

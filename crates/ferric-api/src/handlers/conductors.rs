//! `/v1/conductors` (1.49).

use axum::extract::{Path, State};
use axum::Json;
use ferric_store::StoreError;
use ferric_types::ConductorRecord;
use serde_json::{json, Value};

use crate::ctx::{Ctx, Listing, Params};
use crate::error::{ApiError, ApiResult};
use crate::ApiState;

const FIELDS: &[&str] =
    &["hostname", "conductor_group", "alive", "drivers", "created_at", "updated_at"];

fn conductor_json(
    state: &ApiState,
    ctx: &Ctx,
    record: &ConductorRecord,
    fields: Option<&[String]>,
) -> Value {
    let alive =
        state.cluster.is_alive(record.online, record.updated_at.or(Some(record.created_at)));
    let mut value = json!({
        "hostname": record.hostname,
        "conductor_group": record.conductor_group,
        "alive": alive,
        "drivers": record.drivers.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
        "created_at": record.created_at.to_text(),
        "updated_at": record.updated_at.map(|t| t.to_text()),
        "links": ctx.links(&format!("conductors/{}", record.hostname)),
    });
    if let (Some(fields), Some(map)) = (fields, value.as_object_mut()) {
        map.retain(|key, _| key == "links" || fields.iter().any(|field| field == key));
    }
    value
}

fn check(fields: &Option<Vec<String>>) -> ApiResult<()> {
    for field in fields.iter().flatten() {
        if !FIELDS.contains(&field.as_str()) {
            return Err(ApiError::bad(format!(
                "Field(s) \"{field}\" are not valid for conductors"
            )));
        }
    }
    Ok(())
}

pub async fn list(
    State(state): State<ApiState>,
    ctx: Ctx,
    mut params: Params,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(49)?;
    let marker = params.take("marker");
    let listing = Listing::parse(&mut params, &ctx, false)?;
    params.finish()?;
    check(&listing.fields)?;
    let records = state.store.conductor_list(Some(listing.limit), marker.as_deref()).await?;
    let defaults: Vec<String> =
        ["hostname", "conductor_group", "alive"].iter().map(|s| (*s).to_owned()).collect();
    let fields: Option<&[String]> = match (&listing.fields, listing.detail) {
        (Some(fields), _) => Some(fields),
        (None, true) => None,
        (None, false) => Some(&defaults),
    };
    let items = records.iter().map(|record| conductor_json(&state, &ctx, record, fields)).collect();
    let last = records.last().map(|record| record.hostname.clone());
    Ok(Json(listing.finish_collection(&ctx, "conductors", "conductors", items, last)))
}

pub async fn show(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(hostname): Path<String>,
    mut params: Params,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(49)?;
    let fields: Option<Vec<String>> =
        params.take("fields").map(|f| f.split(',').map(|s| s.trim().to_owned()).collect());
    params.finish()?;
    check(&fields)?;
    let record = state.store.conductor_get(&hostname).await.map_err(|error| match error {
        StoreError::NotFound { .. } => {
            ApiError::NotFound(format!("Conductor {hostname} could not be found."))
        }
        other => other.into(),
    })?;
    Ok(Json(conductor_json(&state, &ctx, &record, fields.as_deref())))
}

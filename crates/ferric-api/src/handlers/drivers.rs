//! `/v1/drivers`: the hardware types live conductors registered.

use axum::extract::{Path, State};
use axum::Json;
use ferric_types::{HardwareType, InterfaceKind};
use serde_json::{json, Map, Value};

use crate::cluster::Snapshot;
use crate::ctx::{Ctx, Params};
use crate::error::{ApiError, ApiResult};
use crate::ApiState;

fn driver_json(
    ctx: &Ctx,
    snapshot: &Snapshot,
    driver: HardwareType,
    hosts: &[String],
    detail: bool,
) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), driver.as_str().into());
    out.insert("hosts".into(), hosts.to_vec().into());
    out.insert("links".into(), ctx.links(&format!("drivers/{driver}")));
    if ctx.version.at_least(14) {
        out.insert("properties".into(), ctx.links(&format!("drivers/{driver}/properties")));
    }
    if ctx.version.at_least(30) {
        out.insert("type".into(), "dynamic".into());
    }
    if detail && ctx.version.at_least(30) {
        let support = snapshot.driver_support(driver);
        for kind in InterfaceKind::ALL {
            if kind.min_microversion() > 31 && !ctx.version.at_least(kind.min_microversion()) {
                continue;
            }
            let entry = support.iter().find(|entry| entry.interface == kind);
            out.insert(
                format!("default_{kind}_interface"),
                entry.map_or(Value::Null, |e| e.default.as_str().into()),
            );
            out.insert(
                format!("enabled_{kind}_interfaces"),
                entry.map_or(Value::Null, |e| {
                    e.enabled.iter().map(|i| i.as_str()).collect::<Vec<_>>().into()
                }),
            );
        }
    }
    Value::Object(out)
}

fn select(mut value: Value, fields: Option<&[String]>) -> Value {
    if let (Some(fields), Some(map)) = (fields, value.as_object_mut()) {
        map.retain(|key, _| fields.iter().any(|field| field == key));
    }
    value
}

pub async fn list(
    State(state): State<ApiState>,
    ctx: Ctx,
    mut params: Params,
) -> ApiResult<Json<Value>> {
    let kind = params.take_since("type", &ctx, 30)?;
    let detail = params.take_bool_since("detail", &ctx, 30)?.unwrap_or(false);
    let fields: Option<Vec<String>> = params
        .take_since("fields", &ctx, 77)?
        .map(|f| f.split(',').map(|s| s.trim().to_owned()).collect());
    params.finish()?;
    if detail && fields.is_some() {
        return Err(ApiError::bad("Can not specify ?detail=True and fields in the same request."));
    }
    match kind.as_deref() {
        None | Some("dynamic") => {}
        Some("classic") => return Ok(Json(json!({"drivers": []}))),
        Some(other) => {
            return Err(ApiError::bad(format!(
                "\"type\" filter must be one of \"classic\" or \"dynamic\", if specified \
                 (got \"{other}\")."
            )))
        }
    }
    let snapshot = state.cluster.snapshot().await?;
    let drivers = snapshot
        .drivers()
        .iter()
        .map(|(driver, hosts)| {
            select(driver_json(&ctx, &snapshot, *driver, hosts, detail), fields.as_deref())
        })
        .collect::<Vec<_>>();
    Ok(Json(json!({ "drivers": drivers })))
}

fn find(snapshot: &Snapshot, name: &str) -> ApiResult<(HardwareType, Vec<String>)> {
    HardwareType::parse(name)
        .and_then(|driver| snapshot.drivers().get(&driver).map(|hosts| (driver, hosts.clone())))
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "Could not find the following driver(s) or hardware type(s): {name}."
            ))
        })
}

pub async fn show(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(name): Path<String>,
    mut params: Params,
) -> ApiResult<Json<Value>> {
    let fields: Option<Vec<String>> = params
        .take_since("fields", &ctx, 77)?
        .map(|f| f.split(',').map(|s| s.trim().to_owned()).collect());
    params.finish()?;
    let snapshot = state.cluster.snapshot().await?;
    let (driver, hosts) = find(&snapshot, &name)?;
    Ok(Json(select(driver_json(&ctx, &snapshot, driver, &hosts, true), fields.as_deref())))
}

pub async fn properties(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let snapshot = state.cluster.snapshot().await?;
    let (driver, _) = find(&snapshot, &name)?;
    let properties = state.conductor.driver_properties(driver).await?;
    Ok(Json(json!(properties)))
}

/// `GET /v1/drivers/{driver}/raid/logical_disk_properties` (1.12): the
/// properties a logical disk of a target RAID configuration may have.
pub async fn raid_logical_disk_properties(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    // Ironic answers 406 below 1.12 here (the drivers controller exists).
    ctx.version.require(12, "RAID logical disk properties")?;
    let snapshot = state.cluster.snapshot().await?;
    find(&snapshot, &name)?;
    let properties: Map<String, Value> = ferric_types::raid::LOGICAL_DISK_PROPERTIES
        .iter()
        .map(|(key, description)| ((*key).to_owned(), Value::from(*description)))
        .collect();
    Ok(Json(Value::Object(properties)))
}

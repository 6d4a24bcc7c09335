//! A node's VIFs (API 1.28), virtual media (1.89, listed from 1.93), target RAID
//! configuration (1.12), BIOS settings (1.40) and firmware components
//! (1.86). Anything that needs the node's lock or its driver goes through
//! the conductor; the rest is read from the store.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use ferric_conductor_api::VifAttach;
use ferric_store::PortQuery;
use ferric_types::raid::validate_target_raid_config;
use ferric_types::validate::{is_secret_key, is_valid_logical_name, redact_url_credentials, MASK};
use ferric_types::{
    BiosSetting, FirmwareComponent, ImageDownloadSource, InterfaceImpl, InterfaceKind,
    VirtualMedia, VmediaDevice,
};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::nodes::{load, locked, mutate};
use crate::ctx::{Body, Ctx, Params};
use crate::error::{ApiError, ApiResult};
use crate::ApiState;

/// URL schemes a BMC can fetch virtual media from.
const VMEDIA_URL_SCHEMES: [&str; 5] = ["http", "https", "nfs", "cifs", "smb"];

fn uuid_or_name(key: &str, value: &str) -> ApiResult<()> {
    if is_valid_logical_name(value) || Uuid::parse_str(value).is_ok() {
        Ok(())
    } else {
        Err(ApiError::bad(format!("Expected UUID or name for {key}: {value}")))
    }
}

/// The scheme of a URL (lower case), empty when it has none.
fn url_scheme(url: &str) -> String {
    match url.split_once(':') {
        Some((scheme, _))
            if scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            scheme.to_ascii_lowercase()
        }
        _ => String::new(),
    }
}

fn object(body: Value) -> ApiResult<Map<String, Value>> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::bad("The request body must be a JSON object")),
    }
}

fn unexpected(key: &str) -> ApiError {
    ApiError::bad(format!("Additional properties are not allowed ('{key}' was unexpected)"))
}

// ---------------------------------------------------------------- VIFs

pub async fn vif_list(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(28)?;
    let node = load(&state, &ident).await?;
    let query = PortQuery { node_uuid: Some(node.uuid), ..PortQuery::default() };
    let ports = state.store.port_list(&query).await?;
    let groups = state.store.portgroup_list(&query).await?;
    let vifs: Vec<Value> = ports
        .iter()
        .map(|port| &port.internal_info)
        .chain(groups.iter().map(|group| &group.internal_info))
        .filter_map(|info| info.get("tenant_vif_port_id").and_then(Value::as_str))
        .map(|id| json!({ "id": id }))
        .collect();
    Ok(Json(json!({ "vifs": vifs })))
}

pub async fn vif_attach(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult<StatusCode> {
    ctx.version.require_endpoint(28)?;
    let body = object(body)?;
    let id = match body.get("id") {
        Some(Value::String(id)) => id.clone(),
        Some(other) => return Err(ApiError::bad(format!("{other} is not of type 'string' (id)"))),
        None => return Err(ApiError::bad("'id' is a required property")),
    };
    uuid_or_name("id", &id)?;
    // Other keys are ignored, as in Ironic (nova sends more than the id).
    let target = |key: &str| -> ApiResult<Option<Uuid>> {
        match body.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => {
                ctx.version.require(67, key)?;
                let text = value.as_str().unwrap_or_default();
                crate::ctx::parse_uuid(key, text).map(Some)
            }
        }
    };
    let port_uuid = target("port_uuid")?;
    let portgroup_uuid = target("portgroup_uuid")?;
    if port_uuid.is_some() && portgroup_uuid.is_some() {
        return Err(ApiError::bad("Cannot specify both port_uuid and portgroup_uuid"));
    }
    let node = load(&state, &ident).await?;
    state.conductor.vif_attach(node.uuid, VifAttach { id, port_uuid, portgroup_uuid }).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn vif_detach(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path((ident, vif)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    ctx.version.require_endpoint(28)?;
    uuid_or_name("vif_id", &vif)?;
    let node = load(&state, &ident).await?;
    state.conductor.vif_detach(node.uuid, &vif).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- virtual media

/// `GET /v1/nodes/{node}/vmedia`: the BMC's virtual media slots, as a bare
/// list of `{media_types, inserted, image}` (Ironic returns what its driver
/// reports, unwrapped).
pub async fn vmedia_list(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(93)?;
    let node = load(&state, &ident).await?;
    let slots = state.conductor.get_virtual_media(node.uuid).await?;
    let items: Vec<Value> = slots
        .into_iter()
        .map(|slot| {
            // A BMC reports the URL as given, with any credentials in it.
            let image = redact_url_credentials(&slot.image);
            json!({"media_types": slot.media_types, "inserted": slot.inserted, "image": image})
        })
        .collect();
    Ok(Json(Value::Array(items)))
}

pub async fn vmedia_attach(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult<StatusCode> {
    ctx.version.require_endpoint(89)?;
    let body = object(body)?;
    if let Some(key) = body
        .keys()
        .find(|key| !matches!(key.as_str(), "device_type" | "image_url" | "image_download_source"))
    {
        return Err(unexpected(key));
    }
    let text = |key: &str| -> ApiResult<Option<String>> {
        match body.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(ApiError::bad(format!("{other} is not of type 'string' ({key})"))),
        }
    };
    let device = text("device_type")?
        .ok_or_else(|| ApiError::bad("'device_type' is a required property"))?;
    let device_type = VmediaDevice::parse(&device).ok_or_else(|| {
        ApiError::bad(format!("'{device}' is not one of ['disk', 'cdrom', 'floppy'] (device_type)"))
    })?;
    let image_url =
        text("image_url")?.ok_or_else(|| ApiError::bad("'image_url' is a required property"))?;
    let image_download_source = match text("image_download_source")? {
        None => ImageDownloadSource::Local,
        Some(source) => ImageDownloadSource::parse(&source).ok_or_else(|| {
            ApiError::bad(format!(
                "'{source}' is not one of ['http', 'local', 'swift'] (image_download_source)"
            ))
        })?,
    };
    let scheme = url_scheme(&image_url);
    if !VMEDIA_URL_SCHEMES.contains(&scheme.as_str()) {
        return Err(ApiError::bad(format!("Unsupported or missing URL scheme: {scheme}")));
    }
    let node = load(&state, &ident).await?;
    let media = VirtualMedia { device_type, image_url, image_download_source };
    state.conductor.attach_virtual_media(node.uuid, media).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn vmedia_detach(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    mut params: Params,
) -> ApiResult<StatusCode> {
    ctx.version.require_endpoint(89)?;
    let wanted = params.take("device_types");
    params.finish()?;
    let mut devices = Vec::new();
    if let Some(list) = wanted {
        let names: Vec<&str> = list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        let invalid: Vec<&str> =
            names.iter().copied().filter(|name| VmediaDevice::parse(name).is_none()).collect();
        if !invalid.is_empty() {
            return Err(ApiError::bad(format!(
                "Invalid device type(s) {} (valid are disk, cdrom, floppy)",
                invalid.join(", ")
            )));
        }
        devices = names.into_iter().filter_map(VmediaDevice::parse).collect();
    }
    let node = load(&state, &ident).await?;
    state.conductor.detach_virtual_media(node.uuid, devices).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- RAID

/// `PUT /v1/nodes/{node}/states/raid`: stores the target RAID
/// configuration (an empty object clears it).
pub async fn set_target_raid(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult<StatusCode> {
    // Ironic answers 406 here, not 404: the states controller exists.
    ctx.version.require(12, "Setting a target RAID configuration")?;
    if !body.is_object() {
        return Err(ApiError::bad("The request body must be a JSON object"));
    }
    mutate(&state, &ident, |node| {
        if let Some(error) = locked(node) {
            return Err(error);
        }
        if !body.as_object().is_some_and(Map::is_empty)
            && matches!(
                node.interfaces.get(InterfaceKind::Raid),
                None | Some(InterfaceImpl::NoRaid)
            )
        {
            // Ironic reports a missing RAID interface as 404.
            return Err(ApiError::NotFound(format!(
                "Driver {} does not support raid (disabled or not implemented).",
                node.driver
            )));
        }
        node.target_raid_config =
            validate_target_raid_config(&body).map_err(|error| ApiError::bad(error.to_string()))?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- BIOS

/// BIOS fields a `fields=` selection may name (1.74).
const BIOS_FIELDS: [&str; 14] = [
    "allowable_values",
    "attribute_type",
    "created_at",
    "lower_bound",
    "links",
    "max_length",
    "min_length",
    "name",
    "node_uuid",
    "read_only",
    "reset_required",
    "unique",
    "updated_at",
    "value",
];

/// The registry fields `detail=true` adds (1.74).
const BIOS_REGISTRY_FIELDS: [&str; 9] = [
    "attribute_type",
    "allowable_values",
    "lower_bound",
    "max_length",
    "min_length",
    "read_only",
    "reset_required",
    "unique",
    "upper_bound",
];

fn bios_json(ctx: &Ctx, node: Uuid, setting: &BiosSetting, fields: &[&str]) -> Value {
    let time = |stamp: Option<ferric_types::Timestamp>| stamp.map(|s| s.to_text());
    let mut all = Map::new();
    all.insert("name".into(), setting.name.clone().into());
    // A password setting (e.g. `AdminPassword`) is shown masked.
    let value = match &setting.value {
        Some(_) if is_secret_key(&setting.name) => Some(MASK.to_owned()),
        other => other.clone(),
    };
    all.insert("value".into(), value.into());
    all.insert("node_uuid".into(), node.to_string().into());
    all.insert("attribute_type".into(), setting.attribute_type.clone().into());
    all.insert("allowable_values".into(), setting.allowable_values.clone().into());
    all.insert("lower_bound".into(), setting.lower_bound.into());
    all.insert("upper_bound".into(), setting.upper_bound.into());
    all.insert("min_length".into(), setting.min_length.into());
    all.insert("max_length".into(), setting.max_length.into());
    all.insert("read_only".into(), setting.read_only.into());
    all.insert("reset_required".into(), setting.reset_required.into());
    all.insert("unique".into(), setting.unique.into());
    let mut out = Map::new();
    out.insert("created_at".into(), time(setting.created_at).into());
    out.insert("updated_at".into(), time(setting.updated_at).into());
    for field in fields {
        if let Some(value) = all.remove(*field) {
            out.insert((*field).into(), value);
        }
    }
    out.insert("links".into(), ctx.links(&format!("nodes/{node}/bios/{}", setting.name)));
    Value::Object(out)
}

pub async fn bios_list(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    mut params: Params,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(40)?;
    let (detail, fields) = if ctx.version.at_least(74) {
        (params.take("detail"), params.take("fields"))
    } else {
        (None, None)
    };
    params.finish()?;
    let detail = detail.map(|text| crate::ctx::parse_bool("detail", &text)).transpose()?;
    let mut selected: Vec<&str> = vec!["name", "value"];
    if let Some(fields) = &fields {
        if detail == Some(true) {
            return Err(ApiError::bad(
                "Can not specify ?detail=True and fields in the same request.",
            ));
        }
        selected.clear();
        for field in fields.split(',').map(str::trim) {
            let known = BIOS_FIELDS.iter().find(|known| **known == field).ok_or_else(|| {
                ApiError::bad(format!(
                    "'{field}' is not one of {} (fields)",
                    BIOS_FIELDS.join(", ")
                ))
            })?;
            selected.push(known);
        }
    } else if detail == Some(true) {
        selected.extend(BIOS_REGISTRY_FIELDS);
    }
    let node = load(&state, &ident).await?;
    let settings = state.store.bios_settings_list(node.uuid).await?;
    let items: Vec<Value> =
        settings.iter().map(|setting| bios_json(&ctx, node.uuid, setting, &selected)).collect();
    Ok(Json(json!({ "bios": items })))
}

pub async fn bios_show(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path((ident, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(40)?;
    let node = load(&state, &ident).await?;
    let setting = state.store.bios_setting_get(node.uuid, &name).await?.ok_or_else(|| {
        ApiError::NotFound(format!("Node {} doesn't have a BIOS setting '{name}'", node.uuid))
    })?;
    let mut selected: Vec<&str> = vec!["name", "value"];
    if ctx.version.at_least(74) {
        selected.extend(BIOS_REGISTRY_FIELDS);
    }
    let mut out = Map::new();
    out.insert(name, bios_json(&ctx, node.uuid, &setting, &selected));
    Ok(Json(Value::Object(out)))
}

// ---------------------------------------------------------------- firmware

/// Firmware fields a `fields=` selection may name, with their version.
const FIRMWARE_FIELDS: [(&str, u16); 9] = [
    ("component", 86),
    ("initial_version", 86),
    ("current_version", 86),
    ("last_version_flashed", 86),
    ("vendor", 114),
    ("model", 114),
    ("serial_number", 114),
    ("created_at", 86),
    ("updated_at", 86),
];

fn firmware_json(component: &FirmwareComponent, fields: &[&str]) -> Value {
    let time = |stamp: Option<ferric_types::Timestamp>| stamp.map(|s| s.to_text());
    let mut all = Map::new();
    all.insert("component".into(), component.component.clone().into());
    all.insert("initial_version".into(), component.initial_version.clone().into());
    all.insert("current_version".into(), component.current_version.clone().into());
    all.insert("last_version_flashed".into(), component.last_version_flashed.clone().into());
    all.insert("vendor".into(), component.vendor.clone().into());
    all.insert("model".into(), component.model.clone().into());
    all.insert("serial_number".into(), component.serial_number.clone().into());
    let mut out = Map::new();
    out.insert("created_at".into(), time(component.created_at).into());
    out.insert("updated_at".into(), time(component.updated_at).into());
    for field in fields {
        if let Some(value) = all.remove(*field) {
            out.insert((*field).into(), value);
        }
    }
    Value::Object(out)
}

pub async fn firmware_list(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    mut params: Params,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(86)?;
    let fields = params.take("fields");
    params.finish()?;
    let visible = |minor: u16| ctx.version.at_least(minor);
    let selected: Vec<&str> = match &fields {
        None => FIRMWARE_FIELDS
            .iter()
            .filter(|(name, minor)| visible(*minor) && !name.ends_with("_at"))
            .map(|(name, _)| *name)
            .collect(),
        Some(fields) => {
            let mut selected = Vec::new();
            for field in fields.split(',').map(str::trim) {
                match FIRMWARE_FIELDS.iter().find(|(name, _)| *name == field) {
                    Some((name, minor)) if visible(*minor) => selected.push(*name),
                    Some((name, minor)) => {
                        return Err(ApiError::bad(format!(
                            "Fields {name} are not allowed in this API version. They require \
                             at least API version 1.{minor}."
                        )))
                    }
                    None => {
                        return Err(ApiError::bad(format!(
                            "'{field}' is not a firmware component field (fields)"
                        )))
                    }
                }
            }
            selected
        }
    };
    let node = load(&state, &ident).await?;
    let components = state.store.firmware_list(node.uuid).await?;
    let items: Vec<Value> = components.iter().map(|c| firmware_json(c, &selected)).collect();
    Ok(Json(json!({ "firmware": items })))
}

/// OpenAPI schemas of these endpoints.
pub(crate) fn openapi_schemas() -> Vec<(&'static str, Value)> {
    let stamp = json!({"type": ["string", "null"], "format": "date-time"});
    let text = json!({"type": ["string", "null"]});
    let int = json!({"type": ["integer", "null"]});
    let flag = json!({"type": ["boolean", "null"]});
    let mut bios = json!({"type": "object", "properties": {
        "name": {"type": "string"}, "value": text, "created_at": stamp, "updated_at": stamp,
        "links": {"$ref": "#/components/schemas/Links"}}});
    for (name, schema) in [
        ("attribute_type", &text),
        ("lower_bound", &int),
        ("upper_bound", &int),
        ("min_length", &int),
        ("max_length", &int),
        ("read_only", &flag),
        ("reset_required", &flag),
        ("unique", &flag),
    ] {
        let mut schema = schema.clone();
        schema["x-since-microversion"] = json!("1.74");
        bios["properties"][name] = schema;
    }
    bios["properties"]["allowable_values"] = json!({"type": ["array", "null"],
        "items": {"type": "string"}, "x-since-microversion": "1.74"});
    let mut firmware = json!({"type": "object", "properties": {
        "component": {"type": "string"}, "initial_version": {"type": "string"},
        "current_version": text, "last_version_flashed": text,
        "created_at": stamp, "updated_at": stamp}});
    for name in ["vendor", "model", "serial_number"] {
        let mut schema = text.clone();
        schema["x-since-microversion"] = json!("1.114");
        firmware["properties"][name] = schema;
    }
    let logical_disk_properties: Map<String, Value> = ferric_types::raid::LOGICAL_DISK_PROPERTIES
        .iter()
        .map(|(name, description)| ((*name).to_owned(), json!({"description": description})))
        .collect();
    vec![
        (
            "Vif",
            json!({"type": "object", "required": ["id"], "properties": {
            "id": {"type": "string", "description": "UUID or name of the VIF (network port)"},
            "port_uuid": {"type": "string", "format": "uuid", "x-since-microversion": "1.67"},
            "portgroup_uuid": {"type": "string", "format": "uuid", "x-since-microversion": "1.67"}},
            "additionalProperties": true}),
        ),
        (
            "VifCollection",
            json!({"type": "object", "required": ["vifs"], "properties": {
            "vifs": {"type": "array", "items": {"type": "object", "required": ["id"],
                "properties": {"id": {"type": "string"}}}}}}),
        ),
        (
            "VirtualMediaAttach",
            json!({"type": "object", "required": ["device_type", "image_url"],
            "additionalProperties": false, "properties": {
            "device_type": {"type": "string", "enum": VmediaDevice::ALL.iter().map(|d| d.as_str()).collect::<Vec<_>>()},
            "image_url": {"type": "string", "description": "http, https, nfs, cifs or smb URL"},
            "image_download_source": {"type": "string", "default": "local",
                "enum": ImageDownloadSource::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()}}}),
        ),
        (
            "VirtualMediaList",
            json!({"type": "array", "description": "The BMC's virtual media slots",
            "items": {"type": "object", "required": ["media_types", "inserted", "image"],
                "properties": {
                "media_types": {"type": "array", "items": {"type": "string"},
                    "description": "Redfish media types: CD, DVD, Floppy, USBStick, ..."},
                "inserted": {"type": "boolean"},
                "image": {"type": "string", "description": "The image URL; empty when none"}}}}),
        ),
        (
            "TargetRaidConfig",
            json!({"type": "object", "additionalProperties": false, "properties": {
            "logical_disks": {"type": "array", "minItems": 1, "items": {"type": "object",
                "required": ["raid_level", "size_gb"], "additionalProperties": false,
                "properties": logical_disk_properties}}}}),
        ),
        (
            "RaidLogicalDiskProperties",
            json!({"type": "object",
            "additionalProperties": {"type": "string"}}),
        ),
        ("BiosSetting", bios),
        (
            "BiosSettingOne",
            json!({"type": "object", "description": "{<setting name>: BiosSetting}",
            "additionalProperties": {"$ref": "#/components/schemas/BiosSetting"}}),
        ),
        (
            "BiosCollection",
            json!({"type": "object", "required": ["bios"], "properties": {
            "bios": {"type": "array", "items": {"$ref": "#/components/schemas/BiosSetting"}}}}),
        ),
        ("FirmwareComponent", firmware),
        (
            "FirmwareCollection",
            json!({"type": "object", "required": ["firmware"], "properties": {
            "firmware": {"type": "array", "items": {"$ref": "#/components/schemas/FirmwareComponent"}}}}),
        ),
    ]
}

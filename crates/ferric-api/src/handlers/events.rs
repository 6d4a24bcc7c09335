//! `POST /v1/events` (API 1.54): external events, so far Neutron's port
//! notifications. They are validated as Ironic validates them and logged;
//! nothing waits on them yet.

use axum::http::StatusCode;
use ferric_types::validate::normalize_mac;
use serde_json::Value;
use uuid::Uuid;

use crate::ctx::{Body, Ctx};
use crate::error::{ApiError, ApiResult};

const EVENT_TYPES: [&str; 3] = ["network.bind_port", "network.unbind_port", "network.delete_port"];

const EVENT_KEYS: [&str; 7] = [
    "event",
    "port_id",
    "mac_address",
    "status",
    "device_id",
    "binding:host_id",
    "binding:vnic_type",
];

fn bad(message: String) -> ApiError {
    ApiError::bad(message)
}

/// Checks one network event.
fn check_event(event: &Value) -> ApiResult<()> {
    let Value::Object(map) = event else {
        return Err(bad(format!("{event} is not of type 'object' (events)")));
    };
    if let Some(key) = map.keys().find(|key| !EVENT_KEYS.contains(&key.as_str())) {
        return Err(bad(format!("Additional properties are not allowed ('{key}' was unexpected)")));
    }
    for required in ["event", "port_id", "mac_address", "status"] {
        if !map.contains_key(required) {
            return Err(bad(format!("'{required}' is a required property")));
        }
    }
    let string = |key: &str| -> ApiResult<Option<&str>> {
        let nullable = matches!(key, "device_id" | "binding:host_id" | "binding:vnic_type");
        match map.get(key) {
            None => Ok(None),
            Some(Value::Null) if nullable => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(bad(format!("{other} is not of type 'string' ({key})"))),
        }
    };
    let kind = string("event")?.unwrap_or_default();
    if !EVENT_TYPES.contains(&kind) {
        return Err(bad(format!("'{kind}' is not one of {EVENT_TYPES:?} (event)")));
    }
    for key in ["port_id", "device_id", "binding:host_id"] {
        if let Some(text) = string(key)? {
            if Uuid::parse_str(text).is_err() {
                return Err(bad(format!("'{text}' is not a 'uuid' ({key})")));
            }
        }
    }
    if let Some(mac) = string("mac_address")? {
        if normalize_mac(mac).is_none() || mac.contains('-') {
            return Err(bad(format!("'{mac}' is not a 'mac-address' (mac_address)")));
        }
    }
    string("status")?;
    string("binding:vnic_type")?;
    Ok(())
}

pub async fn post(ctx: Ctx, Body(body): Body<Value>) -> ApiResult<StatusCode> {
    ctx.version.require_endpoint(54)?;
    let Value::Object(map) = &body else {
        return Err(bad(format!("{body} is not of type 'object'")));
    };
    if let Some(key) = map.keys().find(|key| key.as_str() != "events") {
        return Err(bad(format!("Additional properties are not allowed ('{key}' was unexpected)")));
    }
    let events = match map.get("events") {
        Some(Value::Array(events)) if !events.is_empty() => events,
        Some(Value::Array(_)) => return Err(bad("[] is too short (events)".into())),
        Some(other) => return Err(bad(format!("{other} is not of type 'array' (events)"))),
        None => return Err(bad("'events' is a required property".into())),
    };
    for event in events {
        check_event(event)?;
    }
    for event in events {
        tracing::debug!(%event, "received external event");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// OpenAPI schemas of this endpoint.
pub(crate) fn openapi_schemas() -> Vec<(&'static str, Value)> {
    let nullable_uuid = serde_json::json!({"type": ["string", "null"], "format": "uuid"});
    vec![(
        "Events",
        serde_json::json!({"type": "object", "required": ["events"],
            "additionalProperties": false, "properties": {
            "events": {"type": "array", "minItems": 1, "items": {"type": "object",
                "required": ["event", "port_id", "mac_address", "status"],
                "additionalProperties": false, "properties": {
                "event": {"type": "string", "enum": EVENT_TYPES},
                "port_id": {"type": "string", "format": "uuid"},
                "mac_address": {"type": "string", "format": "mac-address"},
                "status": {"type": "string"},
                "device_id": nullable_uuid,
                "binding:host_id": nullable_uuid,
                "binding:vnic_type": {"type": ["string", "null"]}}}}}}),
    )]
}

//! The ramdisk-facing endpoints: `GET /v1/lookup` and
//! `POST /v1/heartbeat/{node}` (1.22), with Ironic's one-time agent token
//! (1.62). These are how a deploy agent — ferric's own, or a real
//! ironic-python-agent — finds its node and reports in.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use base64::Engine;
use ferric_store::{NodeIdent, StoreError};
use ferric_types::validate::{mask_secrets, normalize_mac, MASK};
use ferric_types::{Node, PendingAction, ProvisionState, Timestamp};
use rand::RngCore;
use serde_json::{json, Map, Value};

use super::common::body_object;
use super::nodes;
use crate::ctx::{Body, Ctx, Params};
use crate::error::{ApiError, ApiResult};
use crate::ApiState;

/// Where an agent's token lives (masked in every other view).
const TOKEN_KEY: &str = "agent_secret_token";

/// How long an agent may go between heartbeats (`[api]ramdisk_heartbeat_timeout`).
const HEARTBEAT_TIMEOUT_SECONDS: u64 = 300;

/// A fresh token: 32 random bytes, URL-safe base64 (43 characters).
fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn lookup_not_found() -> ApiError {
    // Deliberately the same answer for "unknown" and "not expecting an agent".
    ApiError::NotFound("Node could not be found or is not waiting for an agent.".into())
}

pub async fn lookup(
    State(state): State<ApiState>,
    ctx: Ctx,
    mut params: Params,
) -> ApiResult<Json<Value>> {
    ctx.version.require_endpoint(22)?;
    let addresses: Vec<String> = params
        .take("addresses")
        .map(|text| text.split(',').filter_map(|mac| normalize_mac(mac.trim())).collect())
        .unwrap_or_default();
    let node_uuid = params.take_uuid("node_uuid")?;
    params.finish()?;
    if addresses.is_empty() && node_uuid.is_none() {
        return Err(ApiError::bad(
            "Lookup needs at least one valid MAC address in \"addresses\" or a \"node_uuid\"",
        ));
    }
    let found = match node_uuid {
        Some(uuid) => match state.store.node_get(&NodeIdent::Uuid(uuid)).await {
            Ok(node) => Some(node),
            Err(StoreError::NotFound { .. }) => None,
            Err(other) => return Err(other.into()),
        },
        None => state.store.node_by_port_addresses(&addresses).await?,
    };
    let node =
        found.filter(|node| node.provision_state.runs_ramdisk()).ok_or_else(lookup_not_found)?;
    let token =
        if ctx.version.at_least(62) { Some(issue_token(&state, &node).await?) } else { None };
    let node = state.store.node_get_by_uuid(node.uuid).await?;
    tracing::info!(node = %node.uuid, state = %node.provision_state, "agent looked its node up");
    Ok(Json(json!({
        "node": {
            "uuid": node.uuid.to_string(),
            "properties": node.properties,
            "instance_info": mask_secrets(&node.instance_info, &["configdrive", "image_url"]),
            "driver_internal_info": mask_secrets(&node.driver_internal_info, &[]),
            "links": ctx.links(&format!("nodes/{}", node.uuid)),
        },
        "config": {
            "heartbeat_timeout": HEARTBEAT_TIMEOUT_SECONDS,
            "agent_token": token,
            "agent_token_required": true,
        },
    })))
}

/// The token for the agent looking `node` up: a fresh one the first time,
/// `******` once one was issued (the agent that got it keeps it). A locked
/// node answers 409 so the agent retries.
async fn issue_token(state: &ApiState, node: &Node) -> ApiResult<String> {
    if node.driver_internal_info.contains_key(TOKEN_KEY) {
        return Ok(MASK.to_owned());
    }
    let token = new_token();
    let mut issued = false;
    nodes::mutate(state, &node.uuid.to_string(), |fresh| {
        // Another lookup may have won the race since the read above.
        issued = !fresh.driver_internal_info.contains_key(TOKEN_KEY);
        if !issued {
            return Ok(());
        }
        if let Some(host) = &fresh.reservation {
            return Err(ApiError::Conflict(format!(
                "Node {} is locked by host {host}, please retry after the current operation is completed.",
                fresh.uuid
            )));
        }
        fresh.driver_internal_info.insert(TOKEN_KEY.into(), Value::String(token.clone()));
        Ok(())
    })
    .await?;
    Ok(if issued { token } else { MASK.to_owned() })
}

/// The states in which a heartbeat moves the operation on (not the `*
/// hold` states: those wait for an operator's `unhold`).
fn waits_for_agent(state: ProvisionState) -> bool {
    matches!(
        state,
        ProvisionState::DeployWait
            | ProvisionState::CleanWait
            | ProvisionState::ServiceWait
            | ProvisionState::InspectWait
            | ProvisionState::RescueWait
    )
}

pub async fn heartbeat(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(ident): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult<StatusCode> {
    ctx.version.require_endpoint(22)?;
    let body = body_object(body)?;
    let text = |key: &str| -> ApiResult<Option<String>> {
        match body.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(value)) => Ok(Some(value.clone())),
            Some(_) => Err(ApiError::bad(format!("{key} must be a string"))),
        }
    };
    for (key, minor) in [
        ("agent_version", 36),
        ("agent_verify_ca", 68),
        ("agent_status", 72),
        ("agent_status_message", 72),
    ] {
        if body.contains_key(key) {
            ctx.version.require(minor, key).map_err(|_| {
                ApiError::bad(format!("{key} is not accepted below API version 1.{minor}"))
            })?;
        }
    }
    for key in body.keys() {
        if !matches!(
            key.as_str(),
            "callback_url"
                | "agent_version"
                | "agent_token"
                | "agent_verify_ca"
                | "agent_status"
                | "agent_status_message"
        ) {
            return Err(ApiError::bad(format!("Unknown argument: \"{key}\"")));
        }
    }
    let callback_url =
        text("callback_url")?.ok_or_else(|| ApiError::bad("callback_url is required"))?;
    let agent_version = text("agent_version")?;
    let agent_token = text("agent_token")?;
    let mut status_message = text("agent_status")?;
    if let Some(status) = &status_message {
        if !matches!(status.as_str(), "start" | "end" | "error") {
            return Err(ApiError::bad("agent_status must be start, end or error"));
        }
    }
    if let Some(message) = text("agent_status_message")? {
        status_message = Some(format!("{}: {message}", status_message.unwrap_or_default()));
    }
    let verify_ca = text("agent_verify_ca")?;
    let snapshot = state.cluster.snapshot().await?;
    let mut continues = false;
    let node = nodes::mutate(&state, &ident, |node| {
        continues = false;
        if !node.provision_state.runs_ramdisk() && !node.provision_state.is_stable() {
            return Err(ApiError::bad(format!(
                "Node {} is in state \"{}\" and does not expect an agent heartbeat.",
                node.uuid, node.provision_state
            )));
        }
        let stored = node.driver_internal_info.get(TOKEN_KEY).and_then(Value::as_str);
        match (stored, agent_token.as_deref()) {
            (Some(stored), Some(given)) if stored == given => {}
            _ => return Err(ApiError::bad("Invalid or missing agent token received.")),
        }
        let info: &mut Map<String, Value> = &mut node.driver_internal_info;
        if let Some(previous) = info.get("agent_url").and_then(Value::as_str) {
            if previous != callback_url {
                return Err(ApiError::bad(format!(
                    "The agent's callback URL changed from {previous} to {callback_url}; refusing the heartbeat."
                )));
            }
        } else if let Some(host) = &node.reservation {
            return Err(ApiError::Conflict(format!(
                "Node {} is locked by host {host}, please retry after the current operation is completed.",
                node.uuid
            )));
        }
        info.insert("agent_url".into(), Value::String(callback_url.clone()));
        info.insert("agent_last_heartbeat".into(), Value::String(Timestamp::now().to_text()));
        if let Some(version) = &agent_version {
            info.insert("agent_version".into(), Value::String(version.clone()));
        }
        if let Some(ca) = &verify_ca {
            info.insert("agent_verify_ca".into(), Value::String(ca.clone()));
        }
        if let Some(message) = &status_message {
            info.insert("agent_status".into(), Value::String(message.clone()));
        }
        // A node waiting for its agent goes on: the heartbeat becomes work
        // for the owning conductor, recorded with the reservation in this
        // same write (as for any verb). In maintenance the heartbeat is only
        // recorded, as in Ironic.
        if waits_for_agent(node.provision_state)
            && node.reservation.is_none()
            && node.pending_action.is_none()
            && !node.maintenance
        {
            node.reservation = Some(snapshot.require_owner(node)?);
            node.pending_action = Some(PendingAction::AgentCallback);
            continues = true;
        }
        Ok(())
    })
    .await?;
    if continues {
        state.conductor.notify(node.uuid);
    }
    Ok(StatusCode::ACCEPTED)
}

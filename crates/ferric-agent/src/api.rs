//! The agent's command API, as ironic-python-agent serves it:
//! `POST /v1/commands/` (`?agent_token=…&wait=true|false`),
//! `GET /v1/commands/`, `GET /v1/commands/{id}` and `GET /v1/status`.
//! Every command call must carry the token this agent got at lookup.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::commands::{Agent, CommandError};

type Params = Query<HashMap<String, String>>;

fn fault(status: StatusCode, message: impl Into<String>) -> Response {
    let code = if status.is_server_error() { "Server" } else { "Client" };
    (status, Json(json!({"faultcode": code, "faultstring": message.into()}))).into_response()
}

fn from_command_error(error: CommandError) -> Response {
    let status = match error {
        CommandError::Busy(_) => StatusCode::CONFLICT,
        CommandError::NotFound(_) => StatusCode::NOT_FOUND,
        CommandError::Unknown(_) | CommandError::InvalidParams { .. } => StatusCode::BAD_REQUEST,
    };
    fault(status, error.to_string())
}

/// `None` when the call carries this agent's token, else the refusal.
fn refuse_without_token(agent: &Agent, params: &HashMap<String, String>) -> Option<Response> {
    if agent.token_is_valid(params.get("agent_token").map(String::as_str)) {
        None
    } else {
        Some(fault(StatusCode::UNAUTHORIZED, "Token invalid."))
    }
}

fn wants_wait(params: &HashMap<String, String>) -> bool {
    params.get("wait").is_some_and(|wait| wait.eq_ignore_ascii_case("true"))
}

/// The router; `serve` it on the agent's port.
pub fn router(agent: Arc<Agent>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/v1/", get(root))
        .route("/v1/status", get(status))
        .route("/v1/commands/", get(list).post(run))
        .route("/v1/commands", get(list).post(run))
        .route("/v1/commands/{id}", get(one))
        .with_state(agent)
}

async fn root() -> Json<Value> {
    Json(json!({"name": "ferric deploy agent", "version": env!("CARGO_PKG_VERSION")}))
}

async fn status(State(agent): State<Arc<Agent>>) -> Json<Value> {
    Json(json!({
        "started_at": null,
        "version": env!("CARGO_PKG_VERSION"),
        "busy": agent.is_busy(),
    }))
}

async fn list(State(agent): State<Arc<Agent>>, Query(params): Params) -> Response {
    if let Some(refused) = refuse_without_token(&agent, &params) {
        return refused;
    }
    Json(json!({"commands": agent.list()})).into_response()
}

async fn one(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Response {
    if let Some(refused) = refuse_without_token(&agent, &params) {
        return refused;
    }
    let result = if wants_wait(&params) { agent.wait(&id).await } else { agent.get(&id) };
    match result {
        Ok(result) => Json(result).into_response(),
        Err(error) => from_command_error(error),
    }
}

async fn run(
    State(agent): State<Arc<Agent>>,
    Query(params): Params,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refused) = refuse_without_token(&agent, &params) {
        return refused;
    }
    let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(&body) else {
        return fault(StatusCode::BAD_REQUEST, "The body must be a JSON object");
    };
    let name = body.get("name").and_then(Value::as_str).map(str::to_owned);
    let params_value = body.remove("params");
    let (Some(name), Some(Value::Object(command_params))) = (name, params_value) else {
        return fault(StatusCode::BAD_REQUEST, "Missing or invalid name or params");
    };
    tracing::info!(command = %name, "command received");
    let started = match agent.execute(&name, command_params) {
        Ok(result) => result,
        Err(error) => return from_command_error(error),
    };
    if wants_wait(&params) {
        match agent.wait(&started.id).await {
            Ok(result) => Json(result).into_response(),
            Err(error) => from_command_error(error),
        }
    } else {
        Json(started).into_response()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::client::NodeInfo;
    use crate::commands::MachineConfig;

    fn agent() -> Arc<Agent> {
        let agent = Agent::new(MachineConfig::default());
        agent.set_node(Some(NodeInfo {
            uuid: "7d48845f-448a-4728-a956-d1a0a667826b".into(),
            properties: Value::Null,
            token: Some("the-token".into()),
            heartbeat_timeout: Duration::from_secs(300),
        }));
        agent
    }

    async fn call(agent: Arc<Agent>, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let response = router(agent).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn commands_need_this_agents_token() {
        let sync = r#"{"name": "standby.sync", "params": {}}"#;
        for uri in
            ["/v1/commands/", "/v1/commands/?agent_token=wrong", "/v1/commands/?agent_token="]
        {
            let (status, body) = call(agent(), "POST", uri, sync).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}: {body}");
            let (status, _) = call(agent(), "GET", uri, "").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        }
        let (status, body) =
            call(agent(), "POST", "/v1/commands/?agent_token=the-token", sync).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["command_status"], "SUCCEEDED");
        // No token issued (another agent took it): nothing is accepted.
        let tokenless = Agent::new(MachineConfig::default());
        let (status, _) = call(tokenless, "POST", "/v1/commands/?agent_token=", sync).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn bad_commands_get_clear_errors() {
        let token = "/v1/commands/?agent_token=the-token";
        let (status, body) = call(agent(), "POST", token, "not json").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, body) = call(agent(), "POST", token, r#"{"name": "standby.sync"}"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, body) =
            call(agent(), "POST", token, r#"{"name": "standby.format_the_moon", "params": {}}"#)
                .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["faultstring"].as_str().unwrap().contains("unknown command"), "{body}");
        let (status, body) = call(
            agent(),
            "POST",
            token,
            r#"{"name": "standby.write_image", "params": {"image_info": {"urls": []}}}"#,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["faultstring"].as_str().unwrap().contains("urls"), "{body}");
        let (status, body) = call(
            agent(),
            "POST",
            token,
            r#"{"name": "standby.write_image", "params": {"image_info":
                {"urls": ["http://127.0.0.1:9/x"], "os_hash_algo": "md5", "os_hash_value": "00"}}}"#,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, _) =
            call(agent(), "GET", "/v1/commands/no-such-id?agent_token=the-token", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

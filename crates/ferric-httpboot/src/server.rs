//! The HTTP boot server: `GET /boot/{mac}.ipxe` and `GET|HEAD /files/{path}`.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ferric_types::validate::normalize_mac;
use ferric_types::Node;
use http::{header, HeaderMap, Method, StatusCode};

use crate::script::{render, BootSettings};

/// What the boot server needs from ferric's inventory.
#[async_trait::async_trait]
pub trait BootBackend: Send + Sync {
    /// The node owning a port with this (normalised) MAC address.
    async fn node_by_mac(&self, mac: &str) -> Result<Option<Node>, String>;
}

#[derive(Clone)]
struct BootState {
    backend: Arc<dyn BootBackend>,
    settings: Arc<BootSettings>,
    root: Arc<PathBuf>,
}

/// The router: scripts for known MACs, files from `root`.
pub fn router(backend: Arc<dyn BootBackend>, settings: BootSettings, root: PathBuf) -> Router {
    let state = BootState { backend, settings: Arc::new(settings), root: Arc::new(root) };
    Router::new()
        .route("/boot/{name}", get(script))
        .route("/files/{*path}", get(file).head(file))
        .with_state(state)
}

async fn script(State(state): State<BootState>, Path(name): Path<String>) -> Response {
    let raw = name.strip_suffix(".ipxe").unwrap_or(&name);
    let Some(mac) = normalize_mac(raw) else {
        return (StatusCode::BAD_REQUEST, format!("not a MAC address: {raw}\n")).into_response();
    };
    match state.backend.node_by_mac(&mac).await {
        Ok(Some(node)) => {
            tracing::info!(%mac, node = %node.uuid, state = %node.provision_state, "iPXE script served");
            (
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                render(&node, &mac, &state.settings),
            )
                .into_response()
        }
        Ok(None) => {
            (StatusCode::NOT_FOUND, format!("no node has a port with MAC {mac}\n")).into_response()
        }
        Err(error) => {
            tracing::error!(%mac, %error, "boot script lookup failed");
            (StatusCode::SERVICE_UNAVAILABLE, "lookup failed; retry\n").into_response()
        }
    }
}

async fn file(
    State(state): State<BootState>,
    Path(path): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let response = crate::files::serve(&state.root, &path, &method, &headers).await;
    tracing::info!(%path, %method, status = response.status().as_u16(), "boot file requested");
    response
}

//! ferric's REST API, wire-compatible with OpenStack Ironic's v1 API, so the
//! `baremetal` CLI, openstacksdk, metalsmith and gophercloud work unchanged.
//!
//! Shape: thin handlers (one module per resource) over the store; anything
//! that needs hardware goes to a conductor through
//! [`ferric_conductor_api::ConductorApi`]. Provision and power requests are
//! accepted by recording intent — the new state, a pending action and the
//! owning conductor's reservation — in one conditional write, then 202.
//! Errors become HTTP in one place ([`error`]). **Invariant:** this crate
//! never links a driver.

pub mod cache;
pub mod cluster;
pub mod ctx;
pub mod error;
pub mod handlers;
pub mod openapi;
pub mod patch;
pub mod version;
pub mod view;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::Router;
use ferric_conductor_api::ConductorApi;
use ferric_store::Store;
use tower::Layer;

pub use cluster::Cluster;
pub use error::ApiError;

/// API settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Base URL for links (`[api]public_endpoint`); default: the request's Host.
    pub public_endpoint: Option<String>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// A conductor not heard from for this long is dead.
    pub conductor_heartbeat_timeout: Duration,
    /// Whether `available` nodes may be deleted (Ironic's default: yes).
    pub allow_deleting_available_nodes: bool,
    /// How many rendered node views to keep (see [`cache`]).
    pub view_cache_entries: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            public_endpoint: None,
            max_body_bytes: 8 * 1024 * 1024,
            conductor_heartbeat_timeout: Duration::from_secs(60),
            allow_deleting_available_nodes: true,
            view_cache_entries: 50_000,
        }
    }
}

/// Everything a handler can reach.
#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub conductor: Arc<dyn ConductorApi>,
    pub config: Arc<ApiConfig>,
    pub cluster: Arc<Cluster>,
    /// Rendered node JSON by node version.
    pub views: Arc<cache::ViewCache>,
}

impl ApiState {
    pub fn new(store: Store, conductor: Arc<dyn ConductorApi>, config: ApiConfig) -> Self {
        let cluster = Arc::new(Cluster::new(store.clone(), config.conductor_heartbeat_timeout));
        let views = Arc::new(cache::ViewCache::new(config.view_cache_entries));
        Self { store, conductor, config: Arc::new(config), cluster, views }
    }
}

/// The complete HTTP service: path normalisation in front of the router.
pub type App = tower::util::MapRequest<Router, fn(Request) -> Request>;

/// Builds the service for `state`.
pub fn app(state: ApiState) -> App {
    let normalize: fn(Request) -> Request = normalize_path;
    tower::util::MapRequestLayer::new(normalize).layer(handlers::router(state))
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = app(state);
    axum::serve(listener, axum::ServiceExt::<Request>::into_make_service(service))
        .with_graceful_shutdown(shutdown)
        .await
}

/// `/nodes` means `/v1/nodes`, and a trailing slash is ignored, as in Ironic.
fn normalize_path(mut request: Request) -> Request {
    let path = request.uri().path();
    let mut normalized = path.trim_end_matches('/').to_owned();
    if normalized.is_empty() {
        normalized.push('/');
    }
    let first = normalized.trim_start_matches('/').split('/').next().unwrap_or("");
    if handlers::TOP_LEVEL_RESOURCES.contains(&first) {
        normalized = format!("/v1{normalized}");
    }
    if normalized != path {
        let rebuilt = match request.uri().query() {
            Some(query) => format!("{normalized}?{query}"),
            None => normalized,
        };
        if let Ok(uri) = rebuilt.parse() {
            *request.uri_mut() = uri;
        }
    }
    request
}

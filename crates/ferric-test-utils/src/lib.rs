//! A whole ferric in one test: a fresh database (SQLite file or PostgreSQL
//! database), a conductor with fast reconcilers, and the API served over
//! real HTTP on port 0. [`for_each_backend`] runs a test body on both.

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ferric_api::{ApiConfig, ApiState};
use ferric_conductor::{Conductor, ConductorConfig};
use ferric_store::testing::{self, TempDatabase};
use ferric_store::Store;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;

/// The conductor hostname tests run with.
pub const HOST: &str = "test-conductor";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running ferric.
pub struct TestContext {
    pub backend: Backend,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub client: reqwest::Client,
    pub store: Store,
    pub conductor: Conductor,
    db: Option<TempDatabase>,
    stop_api: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// A response: status, headers and the body parsed as JSON (Null if empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `faultstring` of an Ironic error body.
    pub fn fault(&self) -> String {
        let inner = self.body["error_message"].as_str().unwrap_or("{}");
        let parsed: Value = serde_json::from_str(inner).unwrap_or(Value::Null);
        parsed["faultstring"].as_str().unwrap_or("").to_owned()
    }
}

/// Conductor settings for tests: fast loops, short timeouts.
pub fn test_conductor_config() -> ConductorConfig {
    ConductorConfig {
        hostname: HOST.into(),
        poll_interval: Duration::from_millis(200),
        sweep_interval: Duration::from_secs(3600),
        power_sync_interval: Duration::from_secs(3600),
        graceful_shutdown_timeout: Duration::from_secs(5),
        ..ConductorConfig::default()
    }
}

impl TestContext {
    /// Starts ferric on `backend`; `None` if that backend is unavailable
    /// here (never under CI=true: the helper panics there).
    pub async fn start(backend: Backend) -> Option<TestContext> {
        Self::start_with(backend, test_conductor_config()).await
    }

    pub async fn start_with(backend: Backend, config: ConductorConfig) -> Option<TestContext> {
        let db = match backend {
            Backend::Sqlite => testing::fresh_sqlite(),
            Backend::Postgres => testing::fresh_postgres().await?,
        };
        let store = Store::connect(db.url()).await.expect("connect to the test database");
        let mut context = Self::serve(backend, store, config).await;
        context.db = Some(db);
        Some(context)
    }

    /// Starts conductor and API on an existing store.
    pub async fn serve(backend: Backend, store: Store, config: ConductorConfig) -> TestContext {
        let conductor = Conductor::start(store.clone(), config).await.expect("start conductor");
        let state = ApiState::new(store.clone(), Arc::new(conductor.clone()), ApiConfig::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let (stop_api, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            ferric_api::serve(listener, state, async {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
        });
        TestContext {
            backend,
            base,
            client: reqwest::Client::new(),
            store,
            conductor,
            db: None,
            stop_api: Some(stop_api),
            server: Some(server),
        }
    }

    /// Sends a request at microversion `version` (`None`: no header).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        version: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(version) = version {
            request = request.header("X-OpenStack-Ironic-API-Version", version);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("send request");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("read body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply { status, headers, body }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, Some("latest"), None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.request(Method::POST, path, Some("latest"), Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.request(Method::PUT, path, Some("latest"), Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.request(Method::PATCH, path, Some("latest"), Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.request(Method::DELETE, path, Some("latest"), None).await
    }

    /// Fires `writers` concurrent PATCHes at `path` (a record with an
    /// `extra`), each adding its own key `k<index>` = index, and asserts
    /// that every key survived: a lost write shows as a missing key.
    pub async fn assert_concurrent_extra_patches(&self, path: &str, writers: usize) {
        let shown = self
            .concurrent_patches(path, writers, |index| {
                serde_json::json!([{"op": "add", "path": format!("/extra/k{index}"), "value": index}])
            })
            .await;
        for index in 0..writers {
            assert_eq!(shown["extra"][format!("k{index}")], index, "{shown}");
        }
    }

    /// Fires `writers` concurrent PATCHes at `path`, the one of `index`
    /// with the operations `patch(index)`; a PATCH answered 409 (every
    /// attempt lost its race) is sent again, anything but 200 fails. Returns
    /// the record as shown afterwards.
    pub async fn concurrent_patches(
        &self,
        path: &str,
        writers: usize,
        patch: impl Fn(usize) -> Value,
    ) -> Value {
        let mut tasks = Vec::with_capacity(writers);
        for index in 0..writers {
            let client = self.client.clone();
            let url = format!("{}{path}", self.base);
            let ops = patch(index);
            tasks.push(tokio::spawn(async move {
                for _ in 0..100 {
                    let response = client
                        .patch(&url)
                        .header("X-OpenStack-Ironic-API-Version", "latest")
                        .json(&ops)
                        .send()
                        .await
                        .expect("send PATCH");
                    match response.status() {
                        StatusCode::OK => return,
                        StatusCode::CONFLICT => continue,
                        other => panic!("PATCH {url}: {other}: {:?}", response.text().await),
                    }
                }
                panic!("PATCH {url} kept losing its races");
            }));
        }
        for task in tasks {
            task.await.expect("PATCH task");
        }
        let shown = self.get(path).await;
        assert_eq!(shown.status, StatusCode::OK, "{:?}", shown.body);
        shown.body
    }

    /// Creates a fake-hardware node and returns its JSON.
    pub async fn create_node(&self, name: &str) -> Value {
        let reply = self
            .post("/v1/nodes", serde_json::json!({"driver": "fake-hardware", "name": name}))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        reply.body
    }

    /// Requests a provision verb and waits until the node rests (no
    /// reservation and not in a working state); returns the node.
    pub async fn provision(&self, node: &str, verb: &str) -> Value {
        let reply = self
            .put(&format!("/v1/nodes/{node}/states/provision"), serde_json::json!({"target": verb}))
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{verb}: {:?}", reply.body);
        self.wait_until_idle(node).await
    }

    /// Polls until the node is unreserved and its state is not a working one.
    pub async fn wait_until_idle(&self, node: &str) -> Value {
        let working = [
            "verifying",
            "deploying",
            "cleaning",
            "deleting",
            "inspecting",
            "adopting",
            "rescuing",
            "unrescuing",
            "servicing",
        ];
        for _ in 0..600 {
            let body = self.get(&format!("/v1/nodes/{node}")).await.body;
            let state = body["provision_state"].as_str().unwrap_or("");
            if body["reservation"].is_null()
                && !working.contains(&state)
                && body["target_power_state"].is_null()
            {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("node {node} did not settle");
    }

    /// Stops everything and removes the database.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop_api.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.conductor.shutdown().await;
        self.store.close().await;
        if let Some(db) = self.db.take() {
            db.cleanup().await;
        }
    }
}

/// Runs `test` against SQLite, then PostgreSQL (skipped with a message where
/// PostgreSQL is unavailable outside CI).
pub async fn for_each_backend<F, Fut>(test: F)
where
    F: Fn(TestContext) -> Fut,
    Fut: Future<Output = TestContext>,
{
    for backend in [Backend::Sqlite, Backend::Postgres] {
        match TestContext::start(backend).await {
            Some(context) => test(context).await.stop().await,
            None => eprintln!("skipping the {backend:?} run: database unavailable"),
        }
    }
}

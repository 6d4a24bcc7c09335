//! The Redfish client: authentication, requests and the operations on one
//! computer system.
//!
//! A [`Client`] is cheap to share (`Arc`) and safe to use from many tasks:
//! logins are serialized by the authentication lock, and a session refused
//! with 401 is replaced once per request. The service root and the system's
//! path are looked up once and cached.

use reqwest::header::{HeaderMap, HeaderValue, ETAG, IF_MATCH, LOCATION};
use reqwest::{Method, StatusCode, Url};
use serde_json::{json, Value};
use tokio::sync::{Mutex, OnceCell};

use crate::config::{AuthType, Config, TlsVerify};
use crate::error::{error_message, excerpt, RedfishError};
use crate::model::{
    members, task_status, BootEnabled, BootMode, BootOverride, BootSource, PowerState, ResetType,
    ServiceRoot, System, TaskStatus,
};

/// The service root's path.
pub const SERVICE_ROOT: &str = "/redfish/v1/";
/// Where sessions are created when the service root does not say.
const DEFAULT_SESSIONS: &str = "/redfish/v1/SessionService/Sessions";
/// The header carrying a session token.
const AUTH_TOKEN: &str = "X-Auth-Token";

/// How requests are authenticated at the moment.
#[derive(Clone, Default)]
enum Auth {
    /// Not decided yet (no request made, or the session was closed).
    #[default]
    Unknown,
    /// No credentials configured.
    Anonymous,
    /// HTTP basic.
    Basic,
    /// A session: its token and, when known, its URL (for logging out).
    Session { token: String, location: Option<String> },
}

/// One HTTP exchange's result, of any status.
struct Reply {
    method: Method,
    url: String,
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: impl reqwest::header::AsHeaderName) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_string)
    }

    /// The body as JSON; an error naming the request if it is not.
    fn json(&self) -> Result<Value, RedfishError> {
        serde_json::from_slice(&self.body).map_err(|error| {
            let text = String::from_utf8_lossy(&self.body);
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            RedfishError::InvalidResponse {
                method: self.method.to_string(),
                url: self.url.clone(),
                detail: if text.is_empty() {
                    "an empty body where JSON was expected".to_string()
                } else {
                    format!("not JSON ({error}): {}", excerpt(&text, 200))
                },
            }
        })
    }

    /// The reply itself when its status is a success, else the error it
    /// stands for.
    fn check(self) -> Result<Reply, RedfishError> {
        let status = self.status.as_u16();
        if self.status.is_success() {
            return Ok(self);
        }
        let message = error_message(&self.body);
        let (method, url) = (self.method.to_string(), self.url);
        let suffix = message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
        Err(match status {
            401 | 403 => RedfishError::Auth { method, url, status, message: suffix },
            404 => RedfishError::NotFound { method, url, message: suffix },
            _ => RedfishError::Http {
                method,
                url,
                status,
                message: message.unwrap_or_else(|| {
                    self.status.canonical_reason().unwrap_or("no message").to_string()
                }),
            },
        })
    }
}

/// A client of one BMC and one of its systems.
pub struct Client {
    config: Config,
    base: Url,
    http: reqwest::Client,
    auth: Mutex<Auth>,
    root: OnceCell<ServiceRoot>,
    system: OnceCell<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config's Debug masks the password; the token is not shown.
        f.debug_struct("Client").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `config`; nothing is sent until the first call.
    pub fn new(config: Config) -> Result<Client, RedfishError> {
        let base = config.base_url()?;
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("ferric-redfish/", env!("CARGO_PKG_VERSION")));
        match &config.verify {
            TlsVerify::Enabled => {}
            TlsVerify::Disabled => builder = builder.danger_accept_invalid_certs(true),
            TlsVerify::CaBundle(path) => {
                let invalid = |reason: String| {
                    RedfishError::InvalidConfig(format!("CA bundle {}: {reason}", path.display()))
                };
                let pem = std::fs::read(path).map_err(|error| invalid(error.to_string()))?;
                let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|error| invalid(error.to_string()))?;
                if certificates.is_empty() {
                    return Err(invalid("no PEM certificate in it".to_string()));
                }
                builder = builder.tls_built_in_root_certs(false);
                for certificate in certificates {
                    builder = builder.add_root_certificate(certificate);
                }
            }
        }
        let http = builder
            .build()
            .map_err(|error| RedfishError::InvalidConfig(format!("HTTP client: {error}")))?;
        Ok(Client {
            config,
            base,
            http,
            auth: Mutex::new(Auth::Unknown),
            root: OnceCell::new(),
            system: OnceCell::new(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The full URL of `path` (a path on the BMC, or an absolute URL on the
    /// same BMC).
    fn url(&self, path: &str) -> Result<Url, RedfishError> {
        let url = self.base.join(path).map_err(|_| RedfishError::InvalidResponse {
            method: "GET".into(),
            url: self.base.to_string(),
            detail: format!("bad resource path {:?}", excerpt(path, 100)),
        })?;
        if url.origin() != self.base.origin() {
            // Never send credentials elsewhere.
            return Err(RedfishError::InvalidResponse {
                method: "GET".into(),
                url: self.base.to_string(),
                detail: format!("a link to another server: {}", url.origin().ascii_serialization()),
            });
        }
        Ok(url)
    }

    /// One HTTP exchange with `auth`; any status is returned as is.
    async fn send_once(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
        if_match: Option<&str>,
        auth: &Auth,
    ) -> Result<Reply, RedfishError> {
        let mut request =
            self.http.request(method.clone(), url.clone()).header("OData-Version", "4.0");
        request = match auth {
            Auth::Basic => request.basic_auth(
                self.config.username.as_deref().unwrap_or_default(),
                Some(self.config.password.expose()),
            ),
            Auth::Session { token, .. } => {
                let mut value =
                    HeaderValue::from_str(token).map_err(|_| RedfishError::InvalidResponse {
                        method: method.to_string(),
                        url: url.to_string(),
                        detail: "the session token is not a valid header value".into(),
                    })?;
                value.set_sensitive(true);
                request.header(AUTH_TOKEN, value)
            }
            Auth::Unknown | Auth::Anonymous => request,
        };
        if let Some(etag) = if_match {
            request = request.header(IF_MATCH, etag);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let transport = |error: reqwest::Error| self.transport_error(method, url, error);
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(transport)?.to_vec();
        tracing::debug!(%method, %url, status = status.as_u16(), "redfish request");
        Ok(Reply { method: method.clone(), url: url.to_string(), status, headers, body })
    }

    fn transport_error(&self, method: &Method, url: &Url, error: reqwest::Error) -> RedfishError {
        if error.is_timeout() {
            return RedfishError::Timeout {
                method: method.to_string(),
                url: url.to_string(),
                seconds: self.config.timeout.as_secs_f64(),
            };
        }
        // The innermost causes say what happened ("Connection refused",
        // "invalid peer certificate"); reqwest's own text repeats the URL.
        let mut causes = Vec::new();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !causes.contains(&text) {
                causes.push(text);
            }
            source = cause.source();
        }
        let detail =
            if causes.is_empty() { error.without_url().to_string() } else { causes.join(": ") };
        RedfishError::Connect { method: method.to_string(), url: url.to_string(), detail }
    }

    /// The authentication to use, logging in first if needed.
    async fn current_auth(&self) -> Result<Auth, RedfishError> {
        let mut auth = self.auth.lock().await;
        if matches!(*auth, Auth::Unknown) {
            *auth = self.establish().await?;
        }
        Ok(auth.clone())
    }

    /// Decides how to authenticate: by the configured type and, for `auto`,
    /// by whether a session can be had.
    async fn establish(&self) -> Result<Auth, RedfishError> {
        if self.config.username.is_none() {
            return Ok(Auth::Anonymous);
        }
        match self.config.auth {
            AuthType::Basic => Ok(Auth::Basic),
            AuthType::Session => self.login().await,
            AuthType::Auto => match self.login().await {
                Ok(session) => Ok(session),
                Err(error @ (RedfishError::Connect { .. } | RedfishError::Timeout { .. })) => {
                    Err(error)
                }
                Err(error) => {
                    tracing::debug!(bmc = %self.base, %error, "no Redfish session; using basic authentication");
                    Ok(Auth::Basic)
                }
            },
        }
    }

    /// Creates a session.
    async fn login(&self) -> Result<Auth, RedfishError> {
        let sessions = match self.root.get() {
            Some(root) => root.sessions.clone(),
            // The service root is readable without credentials.
            None => {
                let url = self.url(SERVICE_ROOT)?;
                match self.send_once(&Method::GET, &url, None, None, &Auth::Anonymous).await {
                    Ok(reply) if reply.status.is_success() => {
                        reply.json().ok().and_then(|value| ServiceRoot::from_json(&value).sessions)
                    }
                    Ok(_) => None,
                    Err(error) => return Err(error),
                }
            }
        };
        let url = self.url(sessions.as_deref().unwrap_or(DEFAULT_SESSIONS))?;
        let body = json!({
            "UserName": self.config.username.as_deref().unwrap_or_default(),
            "Password": self.config.password.expose(),
        });
        let reply =
            self.send_once(&Method::POST, &url, Some(&body), None, &Auth::Anonymous).await?;
        let reply = reply.check()?;
        let Some(token) = reply.header(AUTH_TOKEN) else {
            return Err(RedfishError::InvalidResponse {
                method: "POST".into(),
                url: url.to_string(),
                detail: "the session was created without an X-Auth-Token header".into(),
            });
        };
        let location = reply.header(LOCATION).or_else(|| {
            reply.json().ok().and_then(|value| {
                value.get("@odata.id").and_then(Value::as_str).map(str::to_string)
            })
        });
        tracing::debug!(bmc = %self.base, "Redfish session created");
        Ok(Auth::Session { token, location })
    }

    /// Replaces the session `failed` (refused with 401) by a new one,
    /// unless another task already did.
    async fn relogin(&self, failed: &Auth) -> Result<Auth, RedfishError> {
        let mut auth = self.auth.lock().await;
        let same = match (&*auth, failed) {
            (Auth::Session { token: a, .. }, Auth::Session { token: b, .. }) => a == b,
            _ => false,
        };
        if same {
            *auth = self.login().await?;
        }
        Ok(auth.clone())
    }

    /// A request with authentication (a refused session is renewed once);
    /// any status is returned.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Reply, RedfishError> {
        let url = self.url(path)?;
        let auth = self.current_auth().await?;
        let reply = self.send_once(&method, &url, body, if_match, &auth).await?;
        if reply.status == StatusCode::UNAUTHORIZED && matches!(auth, Auth::Session { .. }) {
            tracing::debug!(bmc = %self.base, "Redfish session refused; logging in again");
            let auth = self.relogin(&auth).await?;
            return self.send_once(&method, &url, body, if_match, &auth).await;
        }
        Ok(reply)
    }

    /// GETs a resource: its JSON and its ETag (header, else `@odata.etag`).
    pub async fn get(&self, path: &str) -> Result<(Value, Option<String>), RedfishError> {
        let reply = self.exchange(Method::GET, path, None, None).await?.check()?;
        let value = reply.json()?;
        let etag = reply
            .header(ETAG)
            .or_else(|| value.get("@odata.etag").and_then(Value::as_str).map(str::to_string));
        Ok((value, etag))
    }

    /// The service root (read once).
    pub async fn service_root(&self) -> Result<&ServiceRoot, RedfishError> {
        self.root
            .get_or_try_init(|| async {
                let (value, _) = self.get(SERVICE_ROOT).await?;
                Ok(ServiceRoot::from_json(&value))
            })
            .await
    }

    /// The path of the system driven: the configured one, else the only
    /// member of the Systems collection.
    pub async fn system_path(&self) -> Result<&str, RedfishError> {
        self.system
            .get_or_try_init(|| async {
                if let Some(path) = self.config.system_path() {
                    return Ok(path);
                }
                let root = self.service_root().await?;
                let collection =
                    root.systems.clone().unwrap_or_else(|| "/redfish/v1/Systems".into());
                let (value, _) = self.get(&collection).await?;
                let systems = members(&value);
                match systems.as_slice() {
                    [only] => Ok(only.clone()),
                    [] => Err(RedfishError::System(format!(
                        "the BMC at {} lists no system in {collection}",
                        self.base
                    ))),
                    several => Err(RedfishError::System(format!(
                        "the BMC at {} has {} systems ({}); choose one with the system id",
                        self.base,
                        several.len(),
                        several.join(", ")
                    ))),
                }
            })
            .await
            .map(String::as_str)
    }

    /// The system resource and its ETag.
    pub async fn system(&self) -> Result<(System, Option<String>), RedfishError> {
        let path = self.system_path().await?;
        let (value, etag) = self.get(path).await?;
        let system = System::from_json(path, &value);
        let etag = etag.or_else(|| system.etag.clone());
        Ok((system, etag))
    }

    /// The system's `PowerState`; None when it does not report one.
    pub async fn power_state(&self) -> Result<Option<PowerState>, RedfishError> {
        Ok(self.system().await?.0.power_state)
    }

    /// Runs `ComputerSystem.Reset` with `reset`, waiting for its task if the
    /// BMC answers with one.
    pub async fn reset(&self, reset: ResetType) -> Result<(), RedfishError> {
        let (system, _) = self.system().await?;
        if let Some(allowed) = &system.reset_allowed {
            if !allowed.iter().any(|value| value == reset.as_str()) {
                return Err(RedfishError::Unsupported(format!(
                    "system {} does not allow reset type {reset} (allowed: {})",
                    system.path,
                    allowed.join(", ")
                )));
            }
        }
        let target = system
            .reset_target
            .clone()
            .unwrap_or_else(|| format!("{}/Actions/ComputerSystem.Reset", system.path));
        let body = json!({ "ResetType": reset.as_str() });
        let reply = self.exchange(Method::POST, &target, Some(&body), None).await?.check()?;
        self.follow_task(reply).await
    }

    /// The system's boot override.
    pub async fn boot_override(&self) -> Result<BootOverride, RedfishError> {
        Ok(self.system().await?.0.boot)
    }

    /// Sets the boot override. `mode` is sent only when the system reports
    /// a boot mode and it differs. The PATCH carries `If-Match` when the
    /// system has an ETag, and is retried once with a fresh one on 412.
    pub async fn set_boot_override(
        &self,
        target: BootSource,
        enabled: BootEnabled,
        mode: Option<BootMode>,
    ) -> Result<(), RedfishError> {
        let mut retried = false;
        loop {
            let (system, etag) = self.system().await?;
            if let Some(allowed) = &system.boot.allowed_targets {
                if !allowed.iter().any(|value| value == target.as_str()) {
                    return Err(RedfishError::Unsupported(format!(
                        "system {} does not allow boot target {target} (allowed: {})",
                        system.path,
                        allowed.join(", ")
                    )));
                }
            }
            let mut boot = json!({
                "BootSourceOverrideTarget": target.as_str(),
                "BootSourceOverrideEnabled": enabled.as_str(),
            });
            if let Some(mode) = &mode {
                if system.has_boot_mode && system.boot.mode.as_ref() != Some(mode) {
                    boot["BootSourceOverrideMode"] = json!(mode.as_str());
                }
            }
            let body = json!({ "Boot": boot });
            let reply =
                self.exchange(Method::PATCH, &system.path, Some(&body), etag.as_deref()).await?;
            if reply.status == StatusCode::PRECONDITION_FAILED && !retried {
                tracing::debug!(system = %system.path, "ETag outdated; retrying with a fresh one");
                retried = true;
                continue;
            }
            return self.follow_task(reply.check()?).await;
        }
    }

    /// For a `202 Accepted` with a `Location`: polls the task monitor until
    /// the task ends or the task timeout passes. Other replies are final.
    async fn follow_task(&self, reply: Reply) -> Result<(), RedfishError> {
        if reply.status != StatusCode::ACCEPTED {
            return Ok(());
        }
        let Some(monitor) = reply.header(LOCATION) else { return Ok(()) };
        let url = self.url(&monitor)?.to_string();
        let deadline = tokio::time::Instant::now() + self.config.task_timeout;
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(RedfishError::TaskTimeout {
                    url,
                    seconds: self.config.task_timeout.as_secs_f64(),
                });
            }
            tokio::time::sleep(self.config.task_poll_interval.min(deadline - now)).await;
            let reply = self.exchange(Method::GET, &monitor, None, None).await?.check()?;
            let status = if reply.body.is_empty() {
                None
            } else {
                reply.json().ok().as_ref().and_then(task_status)
            };
            match (reply.status, status) {
                (_, Some(TaskStatus::Failed { state, message })) => {
                    return Err(RedfishError::TaskFailed { url, state, message })
                }
                (_, Some(TaskStatus::Completed)) => return Ok(()),
                (StatusCode::ACCEPTED, _) | (_, Some(TaskStatus::Running)) => continue,
                // The operation's own result: the task is over.
                _ => return Ok(()),
            }
        }
    }

    /// Ends the session, if one is open (the next call opens a new one).
    pub async fn close(&self) {
        let previous = std::mem::take(&mut *self.auth.lock().await);
        if let Auth::Session { token, location: Some(location) } = previous {
            if let Ok(url) = self.url(&location) {
                let auth = Auth::Session { token, location: None };
                match self.send_once(&Method::DELETE, &url, None, None, &auth).await {
                    Ok(reply) if reply.status.is_success() => {
                        tracing::debug!(bmc = %self.base, "Redfish session deleted")
                    }
                    Ok(reply) => {
                        tracing::debug!(bmc = %self.base, status = reply.status.as_u16(), "deleting the Redfish session failed")
                    }
                    Err(error) => tracing::debug!(%error, "deleting the Redfish session failed"),
                }
            }
        }
    }
}

impl Drop for Client {
    /// Deletes the session in the background, when a tokio runtime runs.
    fn drop(&mut self) {
        let Auth::Session { token, location: Some(location) } = std::mem::take(self.auth.get_mut())
        else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
        let Ok(url) = self.url(&location) else { return };
        let http = self.http.clone();
        handle.spawn(async move {
            let mut token = match HeaderValue::from_str(&token) {
                Ok(token) => token,
                Err(_) => return,
            };
            token.set_sensitive(true);
            let _ = http.delete(url).header(AUTH_TOKEN, token).send().await;
        });
    }
}

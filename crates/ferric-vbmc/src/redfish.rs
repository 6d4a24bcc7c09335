//! The Redfish front end: one small Redfish service per machine (what
//! sushy-tools' emulator does for Ironic), on axum, over a [`Machine`].
//!
//! Resources:
//!
//! - `GET /redfish`, `GET /redfish/v1`: the version document and the
//!   service root (readable without credentials, as the specification
//!   says), linking the Systems collection;
//! - `GET /redfish/v1/Systems`: a collection with the one system;
//! - `GET /redfish/v1/Systems/{name}`: `Id`, `Name`, `PowerState`, `Boot`
//!   (`BootSourceOverrideTarget`/`Enabled`/`Mode` with their
//!   `@Redfish.AllowableValues`) and the `#ComputerSystem.Reset` action,
//!   with an `ETag` header;
//! - `PATCH /redfish/v1/Systems/{name}`: `{"Boot": {...}}`, honouring
//!   `If-Match` (412 when it does not match the current ETag); 204;
//! - `POST /redfish/v1/Systems/{name}/Actions/ComputerSystem.Reset`:
//!   `{"ResetType": ...}`, mapped by [`run_reset`]; 204.
//!
//! Everything but the service root needs HTTP basic authentication with
//! the machine's username and password (401 with `WWW-Authenticate`
//! otherwise); the password is never logged. Errors use Redfish's error
//! format (`error.@Message.ExtendedInfo`). Requests run one at a time per
//! machine, so an `If-Match` check and the change it guards are atomic.
//!
//! Plain HTTP only, on 127.0.0.1 unless configured otherwise: TLS is left
//! for a later change. No SessionService: clients fall back to basic
//! authentication (`auth_type = auto` in ferric and sushy do).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::machine::{BootDevice, BootSetting, Machine, MachineError, PowerState};

/// The Redfish message registry the errors cite.
const BASE_REGISTRY: &str = "Base.1.8";
/// How often the power state is polled during a graceful restart.
const GRACEFUL_POLL: Duration = Duration::from_millis(100);

/// One Redfish endpoint.
#[derive(Clone)]
pub struct RedfishSettings {
    pub address: SocketAddr,
    pub username: String,
    pub password: String,
    /// How long one request's machine operations may take (503 after).
    pub command_timeout: Duration,
    /// How long a `GracefulRestart` waits for the guest to power off before
    /// it resets the machine instead.
    pub graceful_timeout: Duration,
}

impl std::fmt::Debug for RedfishSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedfishSettings")
            .field("address", &self.address)
            .field("username", &self.username)
            .field("password", &"******")
            .field("command_timeout", &self.command_timeout)
            .field("graceful_timeout", &self.graceful_timeout)
            .finish()
    }
}

impl RedfishSettings {
    /// 127.0.0.1:`port`, 30 s per request, 10 s of graceful shutdown.
    pub fn local(port: u16, username: &str, password: &str) -> Self {
        Self {
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            username: username.to_string(),
            password: password.to_string(),
            command_timeout: Duration::from_secs(30),
            graceful_timeout: Duration::from_secs(10),
        }
    }
}

/// A running Redfish service for one machine. Stops when dropped.
pub struct RedfishServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl RedfishServer {
    /// Binds `settings.address` and serves in the background.
    pub async fn start(
        settings: RedfishSettings,
        machine: Arc<dyn Machine>,
    ) -> std::io::Result<RedfishServer> {
        let listener = TcpListener::bind(settings.address).await?;
        let addr = listener.local_addr()?;
        let app = router(settings, machine);
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "Redfish server stopped");
            }
        });
        Ok(RedfishServer { addr, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://address:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for RedfishServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------
// The mapping between Redfish and the Machine trait (no HTTP here).

/// `ComputerSystem.ResetType` values served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetType {
    On,
    ForceOff,
    GracefulShutdown,
    ForceRestart,
    GracefulRestart,
    PowerCycle,
}

impl ResetType {
    pub const ALL: [ResetType; 6] = [
        Self::On,
        Self::ForceOff,
        Self::GracefulShutdown,
        Self::ForceRestart,
        Self::GracefulRestart,
        Self::PowerCycle,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::On => "On",
            Self::ForceOff => "ForceOff",
            Self::GracefulShutdown => "GracefulShutdown",
            Self::ForceRestart => "ForceRestart",
            Self::GracefulRestart => "GracefulRestart",
            Self::PowerCycle => "PowerCycle",
        }
    }

    /// Exact match, as the schema spells it.
    pub fn parse(text: &str) -> Option<ResetType> {
        Self::ALL.into_iter().find(|reset| reset.as_str() == text)
    }
}

/// Runs `reset` on `machine`:
///
/// - `On` → power on, `ForceOff` → hard off, `GracefulShutdown` → soft
///   off (ACPI), `ForceRestart` → reset, `PowerCycle` → power cycle;
/// - `GracefulRestart` → soft off, then on once the machine reports off;
///   if the soft off fails or the machine is still on after
///   `graceful_timeout`, a reset instead.
///
/// A restart of a machine that is off fails with
/// [`MachineError::PoweredOff`], as real BMCs refuse it.
pub async fn run_reset(
    machine: &dyn Machine,
    reset: ResetType,
    graceful_timeout: Duration,
) -> Result<(), MachineError> {
    match reset {
        ResetType::On => machine.power_on().await,
        ResetType::ForceOff => machine.power_off().await,
        ResetType::GracefulShutdown => machine.soft_off().await,
        ResetType::ForceRestart => machine.reset().await,
        ResetType::PowerCycle => machine.power_cycle().await,
        ResetType::GracefulRestart => {
            if !machine.power_state().await?.is_on() {
                return Err(MachineError::PoweredOff(machine.name().to_string()));
            }
            if let Err(error) = machine.soft_off().await {
                tracing::info!(machine = machine.name(), %error, "soft off failed; resetting");
                return machine.reset().await;
            }
            let deadline = tokio::time::Instant::now() + graceful_timeout;
            loop {
                if !machine.power_state().await?.is_on() {
                    return machine.power_on().await;
                }
                if tokio::time::Instant::now() >= deadline {
                    tracing::info!(
                        machine = machine.name(),
                        "still on after the graceful timeout; resetting"
                    );
                    return machine.reset().await;
                }
                tokio::time::sleep(GRACEFUL_POLL).await;
            }
        }
    }
}

/// `BootSourceOverrideTarget` values, in the order advertised.
pub const BOOT_TARGETS: [&str; 5] = ["None", "Pxe", "Hdd", "Cd", "BiosSetup"];
pub const BOOT_ENABLED: [&str; 3] = ["Disabled", "Once", "Continuous"];
pub const BOOT_MODES: [&str; 2] = ["UEFI", "Legacy"];

/// The Redfish name of a boot device.
pub fn boot_target(device: BootDevice) -> &'static str {
    match device {
        BootDevice::None => "None",
        BootDevice::Pxe => "Pxe",
        BootDevice::Disk => "Hdd",
        BootDevice::Cdrom => "Cd",
        BootDevice::Bios => "BiosSetup",
    }
}

/// The boot device of a Redfish target.
pub fn parse_boot_target(text: &str) -> Option<BootDevice> {
    match text {
        "None" => Some(BootDevice::None),
        "Pxe" => Some(BootDevice::Pxe),
        "Hdd" => Some(BootDevice::Disk),
        "Cd" => Some(BootDevice::Cdrom),
        "BiosSetup" => Some(BootDevice::Bios),
        _ => None,
    }
}

/// The `Boot` object of a setting: no override reads as `Disabled`.
pub fn boot_json(setting: BootSetting) -> Value {
    let enabled = match (setting.device, setting.persistent) {
        (BootDevice::None, _) => "Disabled",
        (_, true) => "Continuous",
        (_, false) => "Once",
    };
    json!({
        "BootSourceOverrideTarget": boot_target(setting.device),
        "BootSourceOverrideTarget@Redfish.AllowableValues": BOOT_TARGETS,
        "BootSourceOverrideEnabled": enabled,
        "BootSourceOverrideEnabled@Redfish.AllowableValues": BOOT_ENABLED,
        "BootSourceOverrideMode": if setting.uefi { "UEFI" } else { "Legacy" },
        "BootSourceOverrideMode@Redfish.AllowableValues": BOOT_MODES,
    })
}

/// Why a request body was refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the request body is not valid JSON")]
    Malformed,
    #[error("the property {0} is required")]
    Missing(String),
    #[error("the property {0} is unknown or cannot be changed")]
    Unknown(String),
    #[error("the value {value} of property {property} is not one of the allowed values")]
    NotInList { property: String, value: String },
    #[error("the property {0} has the wrong type")]
    Type(String),
}

impl BodyError {
    fn message_id(&self) -> &'static str {
        match self {
            Self::Malformed => "MalformedJSON",
            Self::Missing(_) => "PropertyMissing",
            Self::Unknown(_) => "PropertyNotWritable",
            Self::NotInList { .. } => "PropertyValueNotInList",
            Self::Type(_) => "PropertyValueTypeError",
        }
    }
}

fn string_property<'a>(
    object: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, BodyError> {
    match object.get(key) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(BodyError::Type(key.to_string())),
    }
}

/// The setting a PATCH body (`{"Boot": {...}}`) asks for, from `current`:
/// only the properties given change. `Enabled: Disabled` or target `None`
/// clears the override; a target given without `Enabled` while none is set
/// applies once.
pub fn patch_boot(current: BootSetting, body: &Value) -> Result<BootSetting, BodyError> {
    let object = body.as_object().ok_or(BodyError::Malformed)?;
    if let Some(key) = object.keys().find(|key| *key != "Boot" && !key.starts_with("@odata.")) {
        return Err(BodyError::Unknown(key.clone()));
    }
    let boot = match object.get("Boot") {
        None => return Err(BodyError::Missing("Boot".into())),
        Some(Value::Object(boot)) => boot,
        Some(_) => return Err(BodyError::Type("Boot".into())),
    };
    let known = ["BootSourceOverrideTarget", "BootSourceOverrideEnabled", "BootSourceOverrideMode"];
    if let Some(key) = boot.keys().find(|key| !known.contains(&key.as_str())) {
        return Err(BodyError::Unknown(format!("Boot/{key}")));
    }
    let not_in_list = |property: &str, value: &str| BodyError::NotInList {
        property: format!("Boot/{property}"),
        value: value.to_string(),
    };
    let target = string_property(boot, "BootSourceOverrideTarget")?
        .map(|text| {
            parse_boot_target(text).ok_or_else(|| not_in_list("BootSourceOverrideTarget", text))
        })
        .transpose()?;
    let enabled = string_property(boot, "BootSourceOverrideEnabled")?
        .map(|text| match text {
            "Disabled" => Ok(None),
            "Once" => Ok(Some(false)),
            "Continuous" => Ok(Some(true)),
            _ => Err(not_in_list("BootSourceOverrideEnabled", text)),
        })
        .transpose()?;
    let uefi = string_property(boot, "BootSourceOverrideMode")?
        .map(|text| match text {
            "UEFI" => Ok(true),
            "Legacy" => Ok(false),
            _ => Err(not_in_list("BootSourceOverrideMode", text)),
        })
        .transpose()?;

    let mut setting = current;
    if let Some(uefi) = uefi {
        setting.uefi = uefi;
    }
    if let Some(device) = target {
        if current.device == BootDevice::None {
            // A new override applies once unless said otherwise.
            setting.persistent = false;
        }
        setting.device = device;
    }
    match enabled {
        Some(None) => setting.device = BootDevice::None,
        Some(Some(persistent)) => setting.persistent = persistent,
        None => {}
    }
    Ok(setting)
}

/// The system's ETag: a hash of what it shows (power and boot override),
/// so it changes whenever the representation does.
pub fn system_etag(power: PowerState, boot: BootSetting) -> String {
    let text = format!(
        "{}|{}|{}|{}",
        if power.is_on() { "On" } else { "Off" },
        boot.device.as_str(),
        boot.persistent,
        boot.uefi
    );
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("\"{hash:016x}\"")
}

/// Whether an `If-Match` header value admits `etag` (`*`, or one of a
/// comma-separated list; weak tags compare by their opaque part).
pub fn if_match_allows(header: &str, etag: &str) -> bool {
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_string();
    let etag = opaque(etag);
    header.split(',').map(str::trim).any(|tag| tag == "*" || opaque(tag) == etag)
}

/// Whether an `Authorization` header carries `username`:`password` as
/// HTTP basic credentials (compared in constant time).
pub fn basic_auth_matches(header: Option<&str>, username: &str, password: &str) -> bool {
    let Some(encoded) = header.and_then(|value| {
        let (scheme, rest) = value.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("basic").then_some(rest.trim())
    }) else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
        return false;
    };
    let expected = format!("{username}:{password}");
    constant_time_eq(&decoded, expected.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `text` with everything but RFC 3986's unreserved characters
/// percent-encoded, for a path segment.
fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// HTTP.

/// A Redfish error response.
#[derive(Debug)]
pub struct RedfishReply {
    status: StatusCode,
    message_id: &'static str,
    message: String,
    resolution: &'static str,
}

impl RedfishReply {
    fn new(status: StatusCode, message_id: &'static str, message: impl Into<String>) -> Self {
        Self { status, message_id, message: message.into(), resolution: "None" }
    }

    fn resolution(mut self, resolution: &'static str) -> Self {
        self.resolution = resolution;
        self
    }

    fn not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ResourceMissingAtURI",
            format!("The resource at the URI {path} was not found."),
        )
        .resolution(
            "Place a valid resource at the URI or correct the URI and resubmit the request.",
        )
    }

    fn bad_body(error: &BodyError) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            error.message_id(),
            format!("{}.", capitalize(&error.to_string())),
        )
        .resolution("Correct the request body and resubmit the request if the operation failed.")
    }

    fn machine(error: &MachineError) -> Self {
        match error {
            MachineError::PoweredOff(_) => Self::new(
                StatusCode::CONFLICT,
                "OperationNotAllowed",
                "The operation is not allowed while the system is powered off.",
            )
            .resolution("Power the system on and resubmit the request."),
            MachineError::Unresponsive { .. } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceTemporarilyUnavailable",
                format!("The system does not respond: {error}."),
            )
            .resolution("Wait and resubmit the request."),
            MachineError::Failed { .. } | MachineError::Io { .. } => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                format!("The request failed: {error}."),
            )
            .resolution("Resubmit the request. If the problem persists, check the machine."),
        }
    }

    fn timeout() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceTemporarilyUnavailable",
            "The system did not complete the operation in time.",
        )
        .resolution("Wait and resubmit the request.")
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl IntoResponse for RedfishReply {
    fn into_response(self) -> Response {
        let message_id = format!("{BASE_REGISTRY}.{}", self.message_id);
        let severity = if self.status.is_server_error() { "Critical" } else { "Warning" };
        let body = json!({
            "error": {
                "code": message_id,
                "message": self.message,
                "@Message.ExtendedInfo": [{
                    "@odata.type": "#Message.v1_1_1.Message",
                    "MessageId": message_id,
                    "Message": self.message,
                    "Severity": severity,
                    "MessageSeverity": severity,
                    "Resolution": self.resolution,
                }],
            }
        });
        (self.status, axum::Json(body)).into_response()
    }
}

struct Service {
    settings: RedfishSettings,
    machine: Arc<dyn Machine>,
    /// One request at a time touches the machine.
    lock: Mutex<()>,
}

impl Service {
    fn system_path(&self) -> String {
        format!("/redfish/v1/Systems/{}", encode_segment(self.machine.name()))
    }

    /// Runs machine operations under the command timeout.
    async fn run<T>(
        &self,
        operation: impl std::future::Future<Output = Result<T, MachineError>>,
    ) -> Result<T, RedfishReply> {
        match tokio::time::timeout(self.settings.command_timeout, operation).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                tracing::warn!(machine = self.machine.name(), %error, "Redfish request failed");
                Err(RedfishReply::machine(&error))
            }
            Err(_) => {
                tracing::warn!(machine = self.machine.name(), "Redfish request timed out");
                Err(RedfishReply::timeout())
            }
        }
    }

    async fn state(&self) -> Result<(PowerState, BootSetting), RedfishReply> {
        self.run(async {
            let power = self.machine.power_state().await?;
            let boot = self.machine.boot_device().await?;
            Ok((power, boot))
        })
        .await
    }

    fn check_id(&self, id: &str) -> Result<(), RedfishReply> {
        if id == self.machine.name() {
            Ok(())
        } else {
            Err(RedfishReply::not_found(&format!("/redfish/v1/Systems/{}", encode_segment(id))))
        }
    }
}

type Shared = Arc<Service>;

/// The service's routes for `machine`.
pub fn router(settings: RedfishSettings, machine: Arc<dyn Machine>) -> Router {
    let service = Arc::new(Service { settings, machine, lock: Mutex::new(()) });
    let protected = Router::new()
        .route("/redfish/v1/Systems", get(systems))
        .route("/redfish/v1/Systems/", get(systems))
        .route("/redfish/v1/Systems/{id}", get(system).patch(patch_system))
        .route("/redfish/v1/Systems/{id}/", get(system).patch(patch_system))
        .route("/redfish/v1/Systems/{id}/Actions/ComputerSystem.Reset", post(reset))
        .route_layer(middleware::from_fn_with_state(service.clone(), authenticate));
    Router::new()
        .route("/redfish", get(versions))
        .route("/redfish/", get(versions))
        .route("/redfish/v1", get(service_root))
        .route("/redfish/v1/", get(service_root))
        .merge(protected)
        .fallback(fallback)
        .layer(middleware::from_fn(log_request))
        .with_state(service)
}

async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    tracing::debug!(%method, %path, status = response.status().as_u16(), "Redfish request");
    response
}

async fn authenticate(State(service): State<Shared>, request: Request, next: Next) -> Response {
    let header = request.headers().get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    let settings = &service.settings;
    if basic_auth_matches(header, &settings.username, &settings.password) {
        return next.run(request).await;
    }
    tracing::info!(machine = service.machine.name(), path = %request.uri().path(), "Redfish authentication refused");
    let mut response = RedfishReply::new(
        StatusCode::UNAUTHORIZED,
        "NoValidSession",
        "There is no valid session established with the implementation.",
    )
    .resolution("Establish a session or give valid basic authentication credentials.")
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"ferric-vbmc\""));
    response
}

async fn fallback(request: Request) -> RedfishReply {
    RedfishReply::not_found(request.uri().path())
}

async fn versions() -> axum::Json<Value> {
    axum::Json(json!({ "v1": "/redfish/v1/" }))
}

async fn service_root(State(service): State<Shared>) -> axum::Json<Value> {
    axum::Json(json!({
        "@odata.type": "#ServiceRoot.v1_5_0.ServiceRoot",
        "@odata.id": "/redfish/v1",
        "Id": "RedfishService",
        "Name": "ferric-vbmc Redfish Service",
        "RedfishVersion": "1.8.0",
        "UUID": service_uuid(service.machine.name()),
        "Systems": { "@odata.id": "/redfish/v1/Systems" },
    }))
}

/// A stable UUID-shaped identifier derived from the machine's name.
fn service_uuid(name: &str) -> String {
    let hash = |seed: u64| {
        name.bytes()
            .fold(seed, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3))
    };
    let (a, b) = (hash(0xcbf2_9ce4_8422_2325), hash(0x8422_2325_cbf2_9ce4));
    let hex = format!("{a:016x}{b:016x}");
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

async fn systems(State(service): State<Shared>) -> axum::Json<Value> {
    axum::Json(json!({
        "@odata.type": "#ComputerSystemCollection.ComputerSystemCollection",
        "@odata.id": "/redfish/v1/Systems",
        "Name": "Computer System Collection",
        "Members@odata.count": 1,
        "Members": [{ "@odata.id": service.system_path() }],
    }))
}

async fn system(
    State(service): State<Shared>,
    Path(id): Path<String>,
) -> Result<Response, RedfishReply> {
    service.check_id(&id)?;
    let _guard = service.lock.lock().await;
    let (power, boot) = service.state().await?;
    let etag = system_etag(power, boot);
    let path = service.system_path();
    let name = service.machine.name();
    let body = json!({
        "@odata.type": "#ComputerSystem.v1_10_0.ComputerSystem",
        "@odata.id": path,
        "@odata.etag": etag,
        "Id": name,
        "Name": name,
        "SystemType": "Virtual",
        "UUID": service_uuid(name),
        "PowerState": if power.is_on() { "On" } else { "Off" },
        "Status": { "State": "Enabled", "Health": "OK" },
        "Boot": boot_json(boot),
        "Actions": {
            "#ComputerSystem.Reset": {
                "target": format!("{path}/Actions/ComputerSystem.Reset"),
                "ResetType@Redfish.AllowableValues": ResetType::ALL.map(ResetType::as_str),
            }
        },
    });
    let mut response = axum::Json(body).into_response();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    Ok(response)
}

/// The body as JSON, or a 400.
fn json_body(body: &[u8]) -> Result<Value, RedfishReply> {
    serde_json::from_slice(body).map_err(|_| RedfishReply::bad_body(&BodyError::Malformed))
}

async fn patch_system(
    State(service): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<StatusCode, RedfishReply> {
    service.check_id(&id)?;
    let body = json_body(&body)?;
    let _guard = service.lock.lock().await;
    let (power, boot) = service.state().await?;
    if let Some(if_match) = headers.get(header::IF_MATCH) {
        let if_match = if_match.to_str().unwrap_or_default();
        if !if_match_allows(if_match, &system_etag(power, boot)) {
            return Err(RedfishReply::new(
                StatusCode::PRECONDITION_FAILED,
                "PreconditionFailed",
                "The ETag supplied did not match the ETag required to change this resource.",
            )
            .resolution("Try the operation again using the appropriate ETag."));
        }
    }
    let setting = patch_boot(boot, &body).map_err(|error| RedfishReply::bad_body(&error))?;
    if setting != boot {
        service.run(service.machine.set_boot_device(setting)).await?;
        tracing::info!(
            machine = service.machine.name(),
            device = setting.device.as_str(),
            persistent = setting.persistent,
            uefi = setting.uefi,
            "Redfish boot override set"
        );
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn reset(
    State(service): State<Shared>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<StatusCode, RedfishReply> {
    service.check_id(&id)?;
    let body = json_body(&body)?;
    let reset = match body.get("ResetType") {
        None => return Err(RedfishReply::bad_body(&BodyError::Missing("ResetType".into()))),
        Some(Value::String(text)) => ResetType::parse(text).ok_or_else(|| {
            RedfishReply::new(
                StatusCode::BAD_REQUEST,
                "ActionParameterValueNotInList",
                format!("The value {text} for the parameter ResetType in the action ComputerSystem.Reset is not in the list of acceptable values."),
            )
            .resolution("Choose a value from the enumeration list that the implementation can support and resubmit the request.")
        })?,
        Some(_) => return Err(RedfishReply::bad_body(&BodyError::Type("ResetType".into()))),
    };
    let _guard = service.lock.lock().await;
    let graceful = service.settings.graceful_timeout;
    service.run(run_reset(service.machine.as_ref(), reset, graceful)).await?;
    tracing::info!(machine = service.machine.name(), reset = reset.as_str(), "Redfish reset");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::simulated::SimulatedMachine;

    const LONG: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn resets_map_to_machine_operations() {
        let machine = SimulatedMachine::new("m");
        run_reset(&machine, ResetType::On, LONG).await.unwrap();
        assert_eq!(machine.counters().power_ons, 1);
        run_reset(&machine, ResetType::ForceRestart, LONG).await.unwrap();
        assert_eq!(machine.counters().resets, 1);
        run_reset(&machine, ResetType::PowerCycle, LONG).await.unwrap();
        assert_eq!(machine.counters().power_cycles, 1);
        run_reset(&machine, ResetType::GracefulShutdown, LONG).await.unwrap();
        assert_eq!(machine.counters().soft_offs, 1);
        assert_eq!(machine.power_state().await.unwrap(), PowerState::Off);
        assert!(matches!(
            run_reset(&machine, ResetType::ForceRestart, LONG).await,
            Err(MachineError::PoweredOff(_))
        ));
        assert!(matches!(
            run_reset(&machine, ResetType::GracefulRestart, LONG).await,
            Err(MachineError::PoweredOff(_))
        ));
        run_reset(&machine, ResetType::On, LONG).await.unwrap();
        run_reset(&machine, ResetType::ForceOff, LONG).await.unwrap();
        assert_eq!(machine.counters().power_offs, 1);
        assert_eq!(machine.power_state().await.unwrap(), PowerState::Off);
    }

    #[tokio::test]
    async fn graceful_restart_is_soft_off_then_on() {
        let machine = SimulatedMachine::new("m");
        machine.power_on().await.unwrap();
        let before = machine.counters();
        run_reset(&machine, ResetType::GracefulRestart, LONG).await.unwrap();
        let after = machine.counters();
        assert_eq!(after.soft_offs, before.soft_offs + 1);
        assert_eq!(after.power_ons, before.power_ons + 1);
        assert_eq!(after.starts, before.starts + 1);
        assert_eq!(after.resets, before.resets);
        assert_eq!(machine.power_state().await.unwrap(), PowerState::On);
    }

    /// A guest that ignores the power button.
    struct Stubborn(SimulatedMachine);

    #[async_trait::async_trait]
    impl Machine for Stubborn {
        fn name(&self) -> &str {
            self.0.name()
        }
        async fn power_state(&self) -> Result<PowerState, MachineError> {
            self.0.power_state().await
        }
        async fn power_on(&self) -> Result<(), MachineError> {
            self.0.power_on().await
        }
        async fn power_off(&self) -> Result<(), MachineError> {
            self.0.power_off().await
        }
        async fn soft_off(&self) -> Result<(), MachineError> {
            Ok(())
        }
        async fn reset(&self) -> Result<(), MachineError> {
            self.0.reset().await
        }
        async fn boot_device(&self) -> Result<BootSetting, MachineError> {
            self.0.boot_device().await
        }
        async fn set_boot_device(&self, setting: BootSetting) -> Result<(), MachineError> {
            self.0.set_boot_device(setting).await
        }
    }

    #[tokio::test]
    async fn graceful_restart_resets_a_guest_that_stays_on() {
        let inner = SimulatedMachine::new("m");
        inner.power_on().await.unwrap();
        let machine = Stubborn(inner.clone());
        run_reset(&machine, ResetType::GracefulRestart, Duration::from_millis(250)).await.unwrap();
        assert_eq!(inner.counters().resets, 1);
        assert_eq!(inner.power_state().await.unwrap(), PowerState::On);
    }

    #[test]
    fn reset_types_round_trip() {
        for reset in ResetType::ALL {
            assert_eq!(ResetType::parse(reset.as_str()), Some(reset));
        }
        assert_eq!(ResetType::parse("Nmi"), None);
        assert_eq!(ResetType::parse("on"), None);
    }

    #[test]
    fn boot_targets_round_trip() {
        for device in [
            BootDevice::None,
            BootDevice::Pxe,
            BootDevice::Disk,
            BootDevice::Cdrom,
            BootDevice::Bios,
        ] {
            let target = boot_target(device);
            assert!(BOOT_TARGETS.contains(&target));
            assert_eq!(parse_boot_target(target), Some(device));
        }
        assert_eq!(parse_boot_target("Usb"), None);
    }

    #[test]
    fn boot_json_reads_back() {
        let none = boot_json(BootSetting::default());
        assert_eq!(none["BootSourceOverrideEnabled"], "Disabled");
        assert_eq!(none["BootSourceOverrideMode"], "Legacy");
        let once = boot_json(BootSetting::new(BootDevice::Pxe, false, true));
        assert_eq!(once["BootSourceOverrideTarget"], "Pxe");
        assert_eq!(once["BootSourceOverrideEnabled"], "Once");
        assert_eq!(once["BootSourceOverrideMode"], "UEFI");
        let always = boot_json(BootSetting::new(BootDevice::Disk, true, false));
        assert_eq!(always["BootSourceOverrideTarget"], "Hdd");
        assert_eq!(always["BootSourceOverrideEnabled"], "Continuous");
    }

    #[test]
    fn boot_patches() {
        let none = BootSetting::default();
        let patch = |current, body: Value| patch_boot(current, &body);
        let pxe_once = patch(none, json!({"Boot": {"BootSourceOverrideTarget": "Pxe"}})).unwrap();
        assert_eq!(pxe_once, BootSetting::new(BootDevice::Pxe, false, false));
        let hdd = patch(
            pxe_once,
            json!({"Boot": {"BootSourceOverrideTarget": "Hdd", "BootSourceOverrideEnabled": "Continuous", "BootSourceOverrideMode": "UEFI"}}),
        )
        .unwrap();
        assert_eq!(hdd, BootSetting::new(BootDevice::Disk, true, true));
        // A new target keeps the persistence of the override in place.
        let cd = patch(hdd, json!({"Boot": {"BootSourceOverrideTarget": "Cd"}})).unwrap();
        assert_eq!(cd, BootSetting::new(BootDevice::Cdrom, true, true));
        let off = patch(cd, json!({"Boot": {"BootSourceOverrideEnabled": "Disabled"}})).unwrap();
        assert_eq!(off.device, BootDevice::None);
        let legacy = patch(cd, json!({"Boot": {"BootSourceOverrideMode": "Legacy"}})).unwrap();
        assert_eq!(legacy, BootSetting::new(BootDevice::Cdrom, true, false));

        assert_eq!(patch(none, json!([])), Err(BodyError::Malformed));
        assert_eq!(patch(none, json!({})), Err(BodyError::Missing("Boot".into())));
        assert!(matches!(patch(none, json!({"AssetTag": "x"})), Err(BodyError::Unknown(_))));
        assert!(matches!(
            patch(none, json!({"Boot": {"BootOrder": []}})),
            Err(BodyError::Unknown(_))
        ));
        assert!(matches!(
            patch(none, json!({"Boot": {"BootSourceOverrideTarget": "Usb"}})),
            Err(BodyError::NotInList { .. })
        ));
        assert!(matches!(
            patch(none, json!({"Boot": {"BootSourceOverrideEnabled": 1}})),
            Err(BodyError::Type(_))
        ));
    }

    #[test]
    fn etags_follow_the_representation() {
        let a = system_etag(PowerState::Off, BootSetting::default());
        assert_eq!(a, system_etag(PowerState::Off, BootSetting::default()));
        assert_ne!(a, system_etag(PowerState::On, BootSetting::default()));
        assert_ne!(
            a,
            system_etag(PowerState::Off, BootSetting::new(BootDevice::Pxe, false, false))
        );
        assert!(if_match_allows(&a, &a));
        assert!(if_match_allows("*", &a));
        assert!(if_match_allows(&format!("\"x\", W/{a}"), &a));
        assert!(!if_match_allows("\"x\"", &a));
    }

    #[test]
    fn basic_auth() {
        let header = |user: &str, password: &str| {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            format!("Basic {encoded}")
        };
        assert!(basic_auth_matches(Some(&header("admin", "secret")), "admin", "secret"));
        assert!(!basic_auth_matches(Some(&header("admin", "wrong")), "admin", "secret"));
        assert!(!basic_auth_matches(Some(&header("other", "secret")), "admin", "secret"));
        assert!(!basic_auth_matches(Some("Bearer abc"), "admin", "secret"));
        assert!(!basic_auth_matches(Some("Basic %%%"), "admin", "secret"));
        assert!(!basic_auth_matches(None, "admin", "secret"));
    }

    #[test]
    fn settings_hide_the_password() {
        let settings = RedfishSettings::local(0, "admin", "hunter2-secret");
        assert!(!format!("{settings:?}").contains("hunter2-secret"));
    }

    #[test]
    fn names_are_encoded_in_paths() {
        assert_eq!(encode_segment("node-0_a.b~"), "node-0_a.b~");
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
        assert_eq!(service_uuid("x").len(), 36);
    }
}

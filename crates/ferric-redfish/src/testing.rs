//! Test helpers (feature `testing`): [`MockBmc`], an in-process Redfish BMC
//! on axum with fault knobs, and [`SushyEmulator`], sushy-tools' emulator
//! (fake driver, no libvirt) installed into a pinned venv and run on
//! 127.0.0.1.
//!
//! Not for production: the mock keeps everything in one lock and answers
//! only what the client uses.

use std::collections::VecDeque;
use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// The mock BMC.

/// One system of the mock.
#[derive(Debug, Clone)]
pub struct MockSystem {
    pub id: String,
    /// "On" or "Off".
    pub power: String,
    /// A power state applied after this many more GETs of the system.
    pub pending: Option<(String, u32)>,
    /// The `Boot` object as served.
    pub boot: Value,
    /// `ResetType@Redfish.AllowableValues`; None: not advertised.
    pub allowed_resets: Option<Vec<String>>,
    /// Bumped on every change; the ETag is `W/"<n>"`.
    pub generation: u64,
}

impl MockSystem {
    pub fn new(id: &str) -> MockSystem {
        MockSystem {
            id: id.to_string(),
            power: "Off".into(),
            pending: None,
            boot: json!({
                "BootSourceOverrideEnabled": "Disabled",
                "BootSourceOverrideTarget": "None",
                "BootSourceOverrideMode": "UEFI",
                "BootSourceOverrideTarget@Redfish.AllowableValues":
                    ["None", "Pxe", "Hdd", "Cd", "BiosSetup", "UefiHttp"],
            }),
            allowed_resets: Some(
                ["On", "ForceOff", "GracefulShutdown", "ForceRestart", "GracefulRestart"]
                    .map(String::from)
                    .to_vec(),
            ),
            generation: 1,
        }
    }

    fn path(&self) -> String {
        format!("/redfish/v1/Systems/{}", self.id)
    }

    fn etag(&self) -> String {
        format!("W/\"{}\"", self.generation)
    }
}

/// The mock's state and knobs; change them through [`MockBmc::state`].
#[derive(Debug)]
pub struct MockState {
    pub username: String,
    pub password: String,
    /// Whether `POST /redfish/v1/SessionService/Sessions` exists.
    pub sessions_enabled: bool,
    /// Whether HTTP basic authentication is accepted.
    pub basic_enabled: bool,
    /// Live session tokens, with their ids.
    pub sessions: Vec<(String, u32)>,
    pub sessions_created: u32,
    pub sessions_deleted: u32,
    pub systems: Vec<MockSystem>,
    /// Whether systems carry an ETag (header) and PATCH checks `If-Match`.
    pub etags: bool,
    /// Answer this many PATCHes with 412, whatever their `If-Match`.
    pub fail_patches_412: u32,
    /// Canned answers (status, body) for the next authenticated requests.
    pub fail_next: VecDeque<(u16, String)>,
    /// Every request waits this long before being answered.
    pub delay: Duration,
    /// When set, a reset answers 202 with a task monitor that reports
    /// "Running" this many times, then `task_end`.
    pub reset_task_polls: Option<u32>,
    /// The final task state ("Completed", "Exception", ...).
    pub task_end: String,
    /// A reset's power state shows after this many GETs of the system.
    pub power_lag: u32,
    /// "METHOD path" of every request.
    pub requests: Vec<String>,
    /// Bodies of the PATCHes accepted, and the `If-Match` of every PATCH.
    pub patches: Vec<Value>,
    pub if_matches: Vec<Option<String>>,
    /// The reset types received.
    pub resets: Vec<String>,
    task_polls_left: u32,
    next_session: u32,
}

type Shared = Arc<Mutex<MockState>>;

/// An in-process Redfish BMC on 127.0.0.1 (plain HTTP); stops when dropped.
pub struct MockBmc {
    addr: SocketAddr,
    state: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl MockBmc {
    /// Starts a BMC with one system ("1"), user `admin`/`password`,
    /// sessions and basic authentication, and ETags.
    pub async fn start() -> std::io::Result<MockBmc> {
        Self::start_with(vec![MockSystem::new("1")]).await
    }

    /// Starts a BMC with these systems.
    pub async fn start_with(systems: Vec<MockSystem>) -> std::io::Result<MockBmc> {
        let state = Arc::new(Mutex::new(MockState {
            username: "admin".into(),
            password: "password".into(),
            sessions_enabled: true,
            basic_enabled: true,
            sessions: Vec::new(),
            sessions_created: 0,
            sessions_deleted: 0,
            systems,
            etags: true,
            fail_patches_412: 0,
            fail_next: VecDeque::new(),
            delay: Duration::ZERO,
            reset_task_polls: None,
            task_end: "Completed".into(),
            power_lag: 0,
            requests: Vec::new(),
            patches: Vec::new(),
            if_matches: Vec::new(),
            resets: Vec::new(),
            task_polls_left: 0,
            next_session: 1,
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = Router::new().fallback(handle).with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(MockBmc { addr, state, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The state, to read or to turn knobs.
    pub fn state(&self) -> MutexGuard<'_, MockState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Forgets every session (as a BMC reboot or session timeout would).
    pub fn expire_sessions(&self) {
        self.state().sessions.clear();
    }
}

impl Drop for MockBmc {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn redfish_error(status: StatusCode, message: &str) -> Response {
    let body = json!({"error": {
        "code": "Base.1.8.GeneralError",
        "message": "A general error has occurred. See ExtendedInfo for more information.",
        "@Message.ExtendedInfo": [{"MessageId": "Base.1.8.GeneralError", "Message": message}],
    }});
    (status, axum::Json(body)).into_response()
}

fn authorized(state: &MockState, headers: &HeaderMap) -> bool {
    if let Some(token) = headers.get("X-Auth-Token").and_then(|v| v.to_str().ok()) {
        return state.sessions.iter().any(|(live, _)| live == token);
    }
    if !state.basic_enabled {
        return false;
    }
    let expected = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", state.username, state.password));
    headers
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .is_some_and(|given| given == expected)
}

async fn handle(
    axum::extract::State(shared): axum::extract::State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let delay = shared.lock().map(|state| state.delay).unwrap_or_default();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut guard = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    answer(&mut guard, &method, uri.path().trim_end_matches('/'), &headers, &body)
}

fn answer(
    state: &mut MockState,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    state.requests.push(format!("{method} {path}"));
    const SESSIONS: &str = "/redfish/v1/SessionService/Sessions";
    if *method == Method::GET && path == "/redfish/v1" {
        let mut root = json!({
            "@odata.id": "/redfish/v1/", "RedfishVersion": "1.11.0",
            "Systems": {"@odata.id": "/redfish/v1/Systems"},
        });
        if state.sessions_enabled {
            root["Links"] = json!({"Sessions": {"@odata.id": SESSIONS}});
            root["SessionService"] = json!({"@odata.id": "/redfish/v1/SessionService"});
        }
        return axum::Json(root).into_response();
    }
    if *method == Method::POST && path == SESSIONS {
        if !state.sessions_enabled {
            return redfish_error(StatusCode::NOT_FOUND, "No session service.");
        }
        let given: Value = serde_json::from_slice(body).unwrap_or_default();
        if given["UserName"] != json!(state.username) || given["Password"] != json!(state.password)
        {
            return redfish_error(StatusCode::UNAUTHORIZED, "Invalid credentials.");
        }
        let id = state.next_session;
        state.next_session += 1;
        let token = format!("token-{id}-{}", state.sessions_created * 7919 + 13);
        state.sessions.push((token.clone(), id));
        state.sessions_created += 1;
        let location = format!("{SESSIONS}/{id}");
        let mut response =
            (StatusCode::CREATED, axum::Json(json!({"@odata.id": location, "Id": id.to_string()})))
                .into_response();
        let response_headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&token) {
            response_headers.insert("X-Auth-Token", value);
        }
        if let Ok(value) = HeaderValue::from_str(&location) {
            response_headers.insert("Location", value);
        }
        return response;
    }
    if !authorized(state, headers) {
        return redfish_error(StatusCode::UNAUTHORIZED, "The authentication token is invalid.");
    }
    if let Some((status, body)) = state.fail_next.pop_front() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (status, body).into_response();
    }
    if let Some(id) = path.strip_prefix(&format!("{SESSIONS}/")) {
        if *method == Method::DELETE {
            let before = state.sessions.len();
            state.sessions.retain(|(_, live)| live.to_string() != id);
            if state.sessions.len() < before {
                state.sessions_deleted += 1;
                return StatusCode::NO_CONTENT.into_response();
            }
        }
        return redfish_error(StatusCode::NOT_FOUND, "No such session.");
    }
    if *method == Method::GET && path == "/redfish/v1/Systems" {
        let members: Vec<Value> =
            state.systems.iter().map(|system| json!({"@odata.id": system.path()})).collect();
        return axum::Json(json!({
            "@odata.id": "/redfish/v1/Systems", "Members@odata.count": members.len(),
            "Members": members,
        }))
        .into_response();
    }
    if path.starts_with("/redfish/v1/TaskService/TaskMonitors/") {
        if state.task_polls_left > 0 {
            state.task_polls_left -= 1;
            return (StatusCode::ACCEPTED, axum::Json(json!({"TaskState": "Running"})))
                .into_response();
        }
        return axum::Json(json!({
            "TaskState": state.task_end,
            "Messages": [{"Message": format!("The task ended: {}.", state.task_end)}],
        }))
        .into_response();
    }
    let etags = state.etags;
    let reset_task = state.reset_task_polls;
    let power_lag = state.power_lag;
    let Some(index) = state.systems.iter().position(|system| {
        let system_path = system.path();
        path == system_path || path == format!("{system_path}/Actions/ComputerSystem.Reset")
    }) else {
        return redfish_error(StatusCode::NOT_FOUND, &format!("No resource at {path}."));
    };
    let is_action = path.ends_with("/Actions/ComputerSystem.Reset");
    match (method.clone(), is_action) {
        (Method::GET, false) => {
            let system = &mut state.systems[index];
            if let Some((power, reads)) = system.pending.take() {
                if reads == 0 {
                    system.power = power;
                    system.generation += 1;
                } else {
                    system.pending = Some((power, reads - 1));
                }
            }
            let mut reset =
                json!({"target": format!("{}/Actions/ComputerSystem.Reset", system.path())});
            if let Some(allowed) = &system.allowed_resets {
                reset["ResetType@Redfish.AllowableValues"] = json!(allowed);
            }
            let value = json!({
                "@odata.id": system.path(), "Id": system.id, "PowerState": system.power,
                "Boot": system.boot, "Actions": {"#ComputerSystem.Reset": reset},
            });
            let mut response = axum::Json(value).into_response();
            if etags {
                if let Ok(etag) = HeaderValue::from_str(&system.etag()) {
                    response.headers_mut().insert("ETag", etag);
                }
            }
            response
        }
        (Method::PATCH, false) => {
            let if_match =
                headers.get("If-Match").and_then(|v| v.to_str().ok()).map(str::to_string);
            state.if_matches.push(if_match.clone());
            if state.fail_patches_412 > 0 {
                state.fail_patches_412 -= 1;
                state.systems[index].generation += 1;
                return redfish_error(StatusCode::PRECONDITION_FAILED, "The ETag does not match.");
            }
            let system = &mut state.systems[index];
            if etags && if_match.as_deref() != Some(system.etag().as_str()) {
                return redfish_error(StatusCode::PRECONDITION_FAILED, "The ETag does not match.");
            }
            let Ok(patch) = serde_json::from_slice::<Value>(body) else {
                return redfish_error(StatusCode::BAD_REQUEST, "The request body is not JSON.");
            };
            let Some(boot) = patch.get("Boot").and_then(Value::as_object) else {
                return redfish_error(StatusCode::BAD_REQUEST, "Only Boot can be patched.");
            };
            for (key, value) in boot {
                if key == "BootSourceOverrideTarget" {
                    let allowed = &system.boot["BootSourceOverrideTarget@Redfish.AllowableValues"];
                    if !allowed.as_array().is_some_and(|values| values.contains(value)) {
                        return redfish_error(
                            StatusCode::BAD_REQUEST,
                            &format!("The value {value} for BootSourceOverrideTarget is not in the list of acceptable values."),
                        );
                    }
                }
                system.boot[key] = value.clone();
            }
            system.generation += 1;
            state.patches.push(patch);
            StatusCode::NO_CONTENT.into_response()
        }
        (Method::POST, true) => {
            let request: Value = serde_json::from_slice(body).unwrap_or_default();
            let reset = request["ResetType"].as_str().unwrap_or_default().to_string();
            let system = &mut state.systems[index];
            if let Some(allowed) = &system.allowed_resets {
                if !allowed.contains(&reset) {
                    return redfish_error(
                        StatusCode::BAD_REQUEST,
                        &format!("The value {reset} for ResetType is not allowed."),
                    );
                }
            }
            let power = match reset.as_str() {
                "ForceOff" | "GracefulShutdown" => "Off",
                _ => "On",
            };
            if power_lag == 0 {
                system.power = power.to_string();
                system.generation += 1;
            } else {
                system.pending = Some((power.to_string(), power_lag));
            }
            state.resets.push(reset);
            match reset_task {
                Some(polls) => {
                    state.task_polls_left = polls;
                    let mut response = StatusCode::ACCEPTED.into_response();
                    response.headers_mut().insert(
                        "Location",
                        HeaderValue::from_static("/redfish/v1/TaskService/TaskMonitors/1"),
                    );
                    response
                }
                None => StatusCode::NO_CONTENT.into_response(),
            }
        }
        _ => redfish_error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed."),
    }
}

// ---------------------------------------------------------------------------
// sushy-tools' emulator.

/// The pinned sushy-tools and its dependencies.
pub const SUSHY_REQUIREMENTS: &str = include_str!("../tests/sushy/requirements.txt");
/// Names a venv to use instead of the default one.
pub const SUSHY_VENV_ENV: &str = "FERRIC_SUSHY_VENV";
/// How long creating the venv may take.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(900);
/// How long the emulator may take to answer its service root.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The file in the venv recording which requirements were installed.
const MARKER_FILE: &str = ".ferric-requirements-hash";

/// Whether the CI environment forbids skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true") || value == "1")
}

/// FNV-1a: a hash that is the same on every Rust release.
fn fnv1a_64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The venv with sushy-tools (prepared once per process).
fn sushy_venv() -> Result<PathBuf, String> {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    VENV.get_or_init(prepare_venv).clone()
}

fn prepare_venv() -> Result<PathBuf, String> {
    python_venv(SUSHY_REQUIREMENTS, SUSHY_VENV_ENV, "ferric-sushy", "sushy-emulator")
}

/// A Python venv with `requirements` (pinned `pip` requirements text)
/// installed: at `$venv_env` if set, else `/var/tmp/<name>-venv-<hash>`,
/// reused while its marker records the same requirements hash and
/// `bin/<probe>` exists. Shared by every test that drives a Python peer.
pub fn python_venv(
    requirements: &str,
    venv_env: &str,
    name: &str,
    probe: &str,
) -> Result<PathBuf, String> {
    let hash = format!("{:016x}", fnv1a_64(requirements.as_bytes()));
    let venv = match std::env::var_os(venv_env) {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(format!("/var/tmp/{name}-venv-{hash}")),
    };
    let marker = venv.join(MARKER_FILE);
    let installed = std::fs::read_to_string(&marker).unwrap_or_default();
    if installed.trim() == hash && venv.join("bin").join(probe).exists() {
        return Ok(venv);
    }
    eprintln!("creating the Python venv {}", venv.display());
    let requirements_file =
        std::env::temp_dir().join(format!("{name}-requirements-{}-{hash}.txt", std::process::id()));
    std::fs::write(&requirements_file, requirements)
        .map_err(|error| format!("writing {}: {error}", requirements_file.display()))?;
    let mut create = Command::new("python3");
    create.arg("-m").arg("venv").arg(&venv);
    let result = run_step("python3 -m venv", create).and_then(|()| {
        let mut install = Command::new(venv.join("bin").join("python"));
        install
            .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-r"])
            .arg(&requirements_file);
        run_step("pip install", install)
    });
    let _ = std::fs::remove_file(&requirements_file);
    result?;
    std::fs::write(&marker, format!("{hash}\n"))
        .map_err(|error| format!("writing {}: {error}", marker.display()))?;
    Ok(venv)
}

/// Runs a set-up command in its own process group, killed after
/// [`INSTALL_TIMEOUT`]; its output goes into the error if it fails.
fn run_step(what: &str, mut command: Command) -> Result<(), String> {
    let output = std::env::temp_dir().join(format!(
        "ferric-sushy-step-{}-{}.log",
        std::process::id(),
        fnv1a_64(what.as_bytes())
    ));
    let log = std::fs::File::create(&output).map_err(|error| format!("{what}: {error}"))?;
    let log_err = log.try_clone().map_err(|error| format!("{what}: {error}"))?;
    command.stdin(Stdio::null()).stdout(log).stderr(log_err).process_group(0);
    let mut child = command.spawn().map_err(|error| format!("{what}: cannot start: {error}"))?;
    let deadline = Instant::now() + INSTALL_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(error) => return Err(format!("{what}: {error}")),
        }
    };
    if status.is_none() {
        kill_group(&mut child);
    }
    let mut text = String::new();
    let _ = std::fs::File::open(&output).and_then(|mut file| file.read_to_string(&mut text));
    let _ = std::fs::remove_file(&output);
    let tail: Vec<&str> = text.lines().rev().take(20).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    match status {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(format!("{what} failed ({status}):\n{}", tail.join("\n"))),
        None => Err(format!("{what} timed out:\n{}", tail.join("\n"))),
    }
}

/// SIGKILL to the child's process group, then reaps it.
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-KILL")
        .arg("--")
        .arg(format!("-{}", child.id()))
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// sushy-tools' `sushy-emulator --fake` on 127.0.0.1 (plain HTTP), with
/// one fake system; killed when dropped. Its fake driver applies a power
/// change 1 to 11 s after the request, and reports every boot override as
/// `Continuous`.
pub struct SushyEmulator {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl SushyEmulator {
    /// The emulator's `(user, password)` when started with basic auth.
    pub const USER: (&'static str, &'static str) = ("ferric", "sushy-password");

    /// Starts the emulator, installing sushy-tools first if needed. None
    /// (after printing why) when that cannot be done, except under
    /// `CI=true`, where it panics. With `basic_auth`, requests need
    /// [`Self::USER`]'s credentials (an htpasswd file).
    pub fn start(test: &str, basic_auth: bool) -> Option<SushyEmulator> {
        let venv = match sushy_venv() {
            Ok(venv) => venv,
            Err(reason) if in_ci() => {
                panic!("{test}: sushy-tools cannot be installed: {reason} (CI=true: no skipping)")
            }
            Err(reason) => {
                eprintln!("SKIPPED {test}: sushy-tools cannot be installed: {reason}");
                return None;
            }
        };
        match Self::launch(&venv, basic_auth) {
            Ok(emulator) => Some(emulator),
            Err(reason) => panic!("{test}: sushy-emulator did not start: {reason}"),
        }
    }

    fn launch(venv: &Path, basic_auth: bool) -> Result<SushyEmulator, String> {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ferric-sushy-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("state")).map_err(|error| error.to_string())?;
        let mut config = format!(
            "SUSHY_EMULATOR_FAKE_DRIVER = True\nSUSHY_EMULATOR_STATE_DIR = {:?}\n",
            dir.join("state").display().to_string()
        );
        if basic_auth {
            let htpasswd = dir.join("htpasswd");
            let hash = Command::new(venv.join("bin").join("python"))
                .args([
                    "-c",
                    "import bcrypt, sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(4)).decode())",
                    Self::USER.1,
                ])
                .output()
                .map_err(|error| format!("bcrypt: {error}"))?;
            let hash = String::from_utf8_lossy(&hash.stdout).trim().to_string();
            std::fs::write(&htpasswd, format!("{}:{hash}\n", Self::USER.0))
                .map_err(|error| error.to_string())?;
            config.push_str(&format!(
                "SUSHY_EMULATOR_AUTH_FILE = {:?}\n",
                htpasswd.display().to_string()
            ));
        }
        let config_file = dir.join("emulator.conf");
        std::fs::write(&config_file, config).map_err(|error| error.to_string())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|error| error.to_string())?
            .port();
        let log = std::fs::File::create(dir.join("emulator.log")).map_err(|e| e.to_string())?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(venv.join("bin").join("sushy-emulator"))
            .arg("--config")
            .arg(&config_file)
            .args(["--interface", "127.0.0.1", "--port", &port.to_string(), "--fake"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .spawn()
            .map_err(|error| format!("cannot start sushy-emulator: {error}"))?;
        let mut emulator = SushyEmulator { child, port, dir };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if emulator.answers() {
                return Ok(emulator);
            }
            if let Ok(Some(status)) = emulator.child.try_wait() {
                return Err(format!("it exited ({status}):\n{}", emulator.log()));
            }
            if Instant::now() >= deadline {
                return Err(format!("no answer within {START_TIMEOUT:?}:\n{}", emulator.log()));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Whether `GET /redfish/v1/` answers 200 (a plain HTTP/1.0 probe).
    fn answers(&self) -> bool {
        use std::io::Write;
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        if stream.write_all(b"GET /redfish/v1/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
            return false;
        }
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply);
        reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The emulator's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("emulator.log")).unwrap_or_default()
    }

    /// The fake system's path.
    pub const SYSTEM: &'static str = "/redfish/v1/Systems/27946b59-9e44-4fa7-8e91-f3527a1ef094";
}

impl Drop for SushyEmulator {
    fn drop(&mut self) {
        kill_group(&mut self.child);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

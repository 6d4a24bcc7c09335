//! The real OpenStack clients against a real `ferric serve`.
//!
//! Each test starts the `ferric` binary on a free port (SQLite in a temporary
//! data directory, or a fresh PostgreSQL database) and runs
//! `tests/clients/drive.py`, which drives python-ironicclient's `baremetal`
//! CLI and openstacksdk against it and checks what they report: nodes and
//! their provision states, ports, volume connectors and targets, allocations,
//! deploy templates, runbooks and inspection rules.
//!
//! The clients live in a virtualenv: `$FERRIC_CLIENT_VENV`, or by default
//! `/var/tmp/ferric-client-venv-<hash of tests/clients/requirements.txt>`.
//! It is created with `python3 -m venv` and filled with
//! `pip install -r tests/clients/requirements.txt`, and reused while its
//! marker file records the same requirements hash. If that cannot be done
//! (no python3, no venv module, no package index) the tests print why and
//! pass — except with `CI=true`, where they fail.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

use ferric_store::testing;

/// How long `ferric serve` may take to print its listening line.
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `ferric serve` may take to exit after SIGTERM.
const SERVER_STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long drive.py may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(600);
/// How long creating the venv and installing the clients may take.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(900);
/// Names an existing or wanted venv to use instead of the default one.
const VENV_ENV: &str = "FERRIC_CLIENT_VENV";
/// The file in the venv recording which requirements were installed.
const MARKER_FILE: &str = ".ferric-requirements-hash";
/// What `ferric serve` prints to stderr once it accepts requests.
const LISTENING_PREFIX: &str = "ferric API listening on ";

#[test]
fn real_clients_against_sqlite() {
    let Some(venv) = client_venv() else { return };
    drive_clients(venv, "sqlite", None);
}

#[test]
fn real_clients_against_postgres() {
    let Some(venv) = client_venv() else { return };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("building a tokio runtime for the database helper");
    // None: no PostgreSQL server here (the helper printed why; in CI it panics).
    let Some(database) = runtime.block_on(testing::fresh_postgres()) else { return };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        drive_clients(venv, "postgres", Some(database.url()))
    }));
    runtime.block_on(database.cleanup());
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Starts a server on `database` (None: SQLite in its data directory), runs
/// drive.py against it, stops it, and panics with the output on failure.
/// `backend` is the store's name for the database kind, as ferric reports it.
fn drive_clients(venv: &Path, backend: &str, database: Option<&str>) {
    let mut server = Server::start(backend, database);
    let endpoint = server.endpoint.clone();
    assert_eq!(server.backend, backend, "ferric reports another database backend than asked for");
    eprintln!("[{backend}] ferric is serving at {endpoint}; running drive.py");

    let mut script = Command::new(venv.join("bin").join("python"));
    script
        .arg(repo_root().join("tests").join("clients").join("drive.py"))
        .env("OS_ENDPOINT", &endpoint)
        .env("OS_AUTH_TYPE", "none")
        .env("PYTHONUNBUFFERED", "1")
        .env_remove("OS_CLOUD")
        .env_remove("OS_BAREMETAL_API_VERSION");
    let outcome = run_with_timeout(script, SCRIPT_TIMEOUT);
    let (server_status, server_log) = server.stop();

    let finished = match outcome {
        Ok(finished) => finished,
        Err(error) => panic!("[{backend}] drive.py did not finish: {error}\n{server_log}"),
    };
    assert!(
        finished.status.success(),
        "[{backend}] drive.py failed ({}):\n{}\n{}\n--- ferric log ---\n{server_log}",
        finished.status,
        finished.stdout,
        finished.stderr,
    );
    println!("[{backend}] drive.py output:\n{}", finished.stdout);
    if !finished.stderr.trim().is_empty() {
        println!("[{backend}] drive.py stderr:\n{}", finished.stderr);
    }
    assert!(
        matches!(server_status, Some(status) if status.success()),
        "[{backend}] ferric did not exit cleanly on SIGTERM ({server_status:?}):\n{server_log}"
    );
    println!("[{backend}] real clients passed");
}

fn repo_root() -> PathBuf {
    // crates/ferric -> the workspace root.
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().and_then(Path::parent).unwrap_or(manifest_dir).to_path_buf()
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true") || value == "1")
}

// ---------------------------------------------------------------------------
// The clients' virtualenv.

/// The venv with the clients installed (prepared once per test process), or
/// None when it cannot be had outside CI.
fn client_venv() -> Option<&'static Path> {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match VENV.get_or_init(prepare_venv) {
        Ok(path) => Some(path),
        Err(reason) if in_ci() => {
            panic!("the client venv is not usable: {reason} (CI=true: tests must not be skipped)")
        }
        Err(reason) => {
            eprintln!("skipping the real-clients test: {reason}");
            None
        }
    }
}

fn prepare_venv() -> Result<PathBuf, String> {
    let requirements = repo_root().join("tests").join("clients").join("requirements.txt");
    // A missing requirements file is a broken checkout, not a missing tool.
    let content = std::fs::read(&requirements)
        .unwrap_or_else(|error| panic!("reading {}: {error}", requirements.display()));
    let hash = format!("{:016x}", fnv1a_64(&content));
    let venv = match std::env::var_os(VENV_ENV) {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(format!("/var/tmp/ferric-client-venv-{hash}")),
    };
    let python = venv.join("bin").join("python");
    let marker = venv.join(MARKER_FILE);
    let installed = std::fs::read_to_string(&marker).unwrap_or_default();
    if installed.trim() == hash && python.exists() {
        eprintln!("reusing the client venv {}", venv.display());
        return Ok(venv);
    }

    eprintln!(
        "creating the client venv {} (pip install -r {})",
        venv.display(),
        requirements.display()
    );
    let mut create = Command::new("python3");
    create.arg("-m").arg("venv").arg(&venv);
    run_step("python3 -m venv", create)?;
    let mut install = Command::new(&python);
    install
        .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-r"])
        .arg(&requirements);
    run_step("pip install", install)?;
    std::fs::write(&marker, format!("{hash}\n"))
        .map_err(|error| format!("writing {}: {error}", marker.display()))?;
    Ok(venv)
}

/// Runs one setup command; its output goes into the error if it fails.
fn run_step(what: &str, command: Command) -> Result<(), String> {
    let finished =
        run_with_timeout(command, INSTALL_TIMEOUT).map_err(|error| format!("{what}: {error}"))?;
    if finished.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}):\n{}\n{}",
            finished.status,
            last_lines(&finished.stdout, 20),
            last_lines(&finished.stderr, 20)
        ))
    }
}

fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

/// FNV-1a: a hash that, unlike std's, is the same on every Rust release.
fn fnv1a_64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

// ---------------------------------------------------------------------------
// Running processes.

struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `command` in its own process group, collecting its output; after
/// `timeout` the whole group (children included) is killed.
fn run_with_timeout(mut command: Command, timeout: Duration) -> Result<Finished, String> {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child =
        command.spawn().map_err(|error| format!("cannot start {command:?}: {error}"))?;
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(error) => return Err(format!("waiting for {command:?}: {error}")),
        }
    };
    if status.is_none() {
        signal_group(child.id(), "KILL");
        let _ = child.wait();
    }
    let stdout = join_reader(stdout);
    let stderr = join_reader(stderr);
    match status {
        Some(status) => Ok(Finished { status, stdout, stderr }),
        None => Err(format!(
            "{command:?} timed out after {} s\nstdout:\n{stdout}\nstderr:\n{stderr}",
            timeout.as_secs()
        )),
    }
}

fn read_in_background(pipe: Option<impl Read + Send + 'static>) -> Option<JoinHandle<String>> {
    pipe.map(|mut pipe| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    })
}

fn join_reader(reader: Option<JoinHandle<String>>) -> String {
    reader.and_then(|handle| handle.join().ok()).unwrap_or_default()
}

/// Sends `signal` to the process group led by `pid` (`kill -SIGNAL -- -PID`).
fn signal_group(pid: u32, signal: &str) {
    let _ =
        Command::new("kill").arg(format!("-{signal}")).arg("--").arg(format!("-{pid}")).status();
}

/// Sends `signal` to one process.
fn signal_process(pid: u32, signal: &str) {
    let _ = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
}

// ---------------------------------------------------------------------------
// The ferric server.

/// A running `ferric serve`; stopped (SIGTERM, then SIGKILL) when dropped.
struct Server {
    child: Option<Child>,
    endpoint: String,
    /// The database backend from the listening line ("sqlite", "postgres").
    backend: String,
    data_dir: PathBuf,
    log_reader: Option<JoinHandle<String>>,
}

impl Server {
    /// Starts `ferric serve` on a free port and waits for it to listen.
    fn start(backend: &str, database: Option<&str>) -> Server {
        let data_dir = std::env::temp_dir()
            .join(format!("ferric-real-clients-{backend}-{}", std::process::id()));
        // Leftovers of an earlier run with the same pid are stale.
        let _ = std::fs::remove_dir_all(&data_dir);
        std::fs::create_dir_all(&data_dir)
            .unwrap_or_else(|error| panic!("creating {}: {error}", data_dir.display()));

        let mut command = Command::new(env!("CARGO_BIN_EXE_ferric"));
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--hostname", "real-clients-conductor"])
            .arg("--data-dir")
            .arg(&data_dir)
            .env("NO_COLOR", "1")
            .env_remove("FERRIC_CONFIG")
            .env_remove("FERRIC_PUBLIC_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(url) = database {
            command.arg("--database").arg(url);
        }
        let mut child = command.spawn().expect("starting the ferric binary");
        let stderr = child.stderr.take().expect("ferric's stderr is piped");

        // The reader forwards each line until the listening line is seen and
        // keeps the whole log for the report.
        let (lines, received) = mpsc::channel::<String>();
        let log_reader = std::thread::spawn(move || {
            let mut log = String::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = lines.send(line.clone());
                log.push_str(&line);
                log.push('\n');
            }
            log
        });
        let mut server = Server {
            child: Some(child),
            endpoint: String::new(),
            backend: String::new(),
            data_dir,
            log_reader: Some(log_reader),
        };

        let deadline = Instant::now() + SERVER_START_TIMEOUT;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match received.recv_timeout(remaining) {
                Ok(line) => {
                    if let Some((endpoint, backend)) = parse_listening_line(&line) {
                        server.endpoint = endpoint;
                        server.backend = backend;
                        return server;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let (_, log) = server.stop();
                    panic!(
                        "[{backend}] ferric did not report listening within {} s:\n{log}",
                        SERVER_START_TIMEOUT.as_secs()
                    );
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let (status, log) = server.stop();
                    panic!("[{backend}] ferric exited before listening ({status:?}):\n{log}");
                }
            }
        }
    }

    /// Stops the server: SIGTERM, then SIGKILL if it has not exited in time.
    /// Returns its exit status (None if it had to be killed) and its log.
    fn stop(&mut self) -> (Option<ExitStatus>, String) {
        let status = self.child.take().and_then(terminate);
        let log = self.log_reader.take().and_then(|reader| reader.join().ok()).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&self.data_dir);
        (status, log)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SIGTERM, then SIGKILL after [`SERVER_STOP_TIMEOUT`]; the clean exit
/// status, or None if the process had to be killed.
fn terminate(mut child: Child) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    signal_process(child.id(), "TERM");
    let deadline = Instant::now() + SERVER_STOP_TIMEOUT;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// The endpoint and database backend from ferric's
/// `ferric API listening on http://127.0.0.1:PORT (database: sqlite)`
/// (None for any other line, such as the log record of the same event).
fn parse_listening_line(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix(LISTENING_PREFIX)?;
    let (url, rest) = rest.split_once(' ')?;
    let backend = rest.strip_prefix("(database: ")?.strip_suffix(')')?;
    url.rsplit_once(':')?.1.parse::<u16>().ok()?;
    Some((url.to_owned(), backend.to_owned()))
}

#[test]
fn listening_line_is_parsed() {
    assert_eq!(
        parse_listening_line("ferric API listening on http://127.0.0.1:41835 (database: sqlite)"),
        Some(("http://127.0.0.1:41835".to_owned(), "sqlite".to_owned()))
    );
    assert_eq!(
        parse_listening_line(
            "2026-01-01T00:00:00Z INFO ferric: ferric API listening on http://127.0.0.1:1"
        ),
        None
    );
    assert_eq!(parse_listening_line("INFO ferric: database ready"), None);
}

//! The Redfish front end against a real client: OpenStack's Python `sushy`
//! library (what Ironic's redfish driver uses), pinned in
//! `tests/sushy/requirements.txt` and installed into a venv under /var/tmp
//! (`FERRIC_VBMC_SUSHY_VENV` names another). `tests/sushy/client.py`
//! discovers the system, powers it on, sets a one-time PXE boot, powers it
//! off and checks that a wrong password is refused. Skips with a message
//! when the venv cannot be made, except under `CI=true`.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferric_vbmc::redfish::{RedfishServer, RedfishSettings};
use ferric_vbmc::{BootDevice, Machine, PowerState, SimulatedMachine};

const REQUIREMENTS: &str = include_str!("sushy/requirements.txt");
const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sushy/client.py");
const VENV_ENV: &str = "FERRIC_VBMC_SUSHY_VENV";
const MARKER_FILE: &str = ".ferric-requirements-hash";
const INSTALL_TIMEOUT: Duration = Duration::from_secs(900);

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true") || value == "1")
}

/// FNV-1a: the same on every Rust release.
fn fnv1a_64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Runs a set-up command in its own process group, killed after
/// [`INSTALL_TIMEOUT`]; its output goes into the error if it fails.
fn run_step(what: &str, mut command: Command) -> Result<(), String> {
    let log_path = std::env::temp_dir().join(format!(
        "ferric-vbmc-sushy-step-{}-{:x}.log",
        std::process::id(),
        fnv1a_64(what.as_bytes())
    ));
    let log = std::fs::File::create(&log_path).map_err(|error| format!("{what}: {error}"))?;
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
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut text = String::new();
    let _ = std::fs::File::open(&log_path).and_then(|mut file| file.read_to_string(&mut text));
    let _ = std::fs::remove_file(&log_path);
    let tail: Vec<&str> =
        text.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
    match status {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(format!("{what} failed ({status}):\n{}", tail.join("\n"))),
        None => Err(format!("{what} timed out:\n{}", tail.join("\n"))),
    }
}

/// The venv's python, installing the pinned requirements when needed.
fn sushy_python() -> Result<PathBuf, String> {
    let hash = format!("{:016x}", fnv1a_64(REQUIREMENTS.as_bytes()));
    let venv = match std::env::var_os(VENV_ENV) {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(format!("/var/tmp/ferric-vbmc-sushy-venv-{hash}")),
    };
    let python = venv.join("bin").join("python");
    let marker = venv.join(MARKER_FILE);
    if std::fs::read_to_string(&marker).unwrap_or_default().trim() == hash && python.exists() {
        return Ok(python);
    }
    eprintln!("creating the sushy venv {}", venv.display());
    let requirements = std::env::temp_dir()
        .join(format!("ferric-vbmc-sushy-requirements-{}-{hash}.txt", std::process::id()));
    std::fs::write(&requirements, REQUIREMENTS)
        .map_err(|error| format!("writing {}: {error}", requirements.display()))?;
    let mut create = Command::new("python3");
    create.arg("-m").arg("venv").arg(&venv);
    let result = run_step("python3 -m venv", create).and_then(|()| {
        let mut install = Command::new(&python);
        install
            .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-r"])
            .arg(&requirements);
        run_step("pip install", install)
    });
    let _ = std::fs::remove_file(&requirements);
    result?;
    std::fs::write(&marker, format!("{hash}\n"))
        .map_err(|error| format!("writing {}: {error}", marker.display()))?;
    Ok(python)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sushy_drives_the_redfish_vbmc() {
    let python = match tokio::task::spawn_blocking(sushy_python).await.expect("venv task") {
        Ok(python) => python,
        Err(reason) => {
            let reason = format!("sushy client test: cannot install sushy: {reason}");
            if in_ci() {
                panic!("{reason}");
            }
            eprintln!("SKIPPED {reason}");
            return;
        }
    };
    let (user, password) = ("admin", "sushy-vbmc-pw");
    let machine = SimulatedMachine::new("vm-sushy");
    let server =
        RedfishServer::start(RedfishSettings::local(0, user, password), Arc::new(machine.clone()))
            .await
            .expect("start the Redfish server");
    let url = format!("{}/redfish/v1", server.url());
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(&python)
            .arg(CLIENT)
            .args([url.as_str(), user, password, "vm-sushy"])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("client.py within 2 minutes")
    .expect("run client.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("client.py:\n{stdout}{stderr}");
    assert!(output.status.success(), "client.py failed:\n{stdout}\n{stderr}");
    assert!(stdout.lines().any(|line| line == "ok"), "{stdout}");
    assert!(stdout.contains("refused 401"), "{stdout}");
    assert!(!stderr.contains(password), "the password leaked: {stderr}");
    // What sushy did reached the machine: on (with no override), a one-time
    // PXE override, off.
    let counters = machine.counters();
    assert_eq!(counters.power_ons, 1, "{counters:?}");
    assert_eq!(counters.power_offs, 1, "{counters:?}");
    let boot = machine.boot_device().await.expect("boot");
    assert_eq!((boot.device, boot.persistent), (BootDevice::Pxe, false));
    assert_eq!(machine.power_state().await.expect("power"), PowerState::Off);
}

//! The Redfish front end against a real client: OpenStack's Python `sushy`
//! library (what Ironic's redfish driver uses), pinned in
//! `tests/sushy/requirements.txt` and installed into a venv under /var/tmp
//! (`FERRIC_VBMC_SUSHY_VENV` names another). `tests/sushy/client.py`
//! discovers the system, powers it on, sets a one-time PXE boot, powers it
//! off and checks that a wrong password is refused. Skips with a message
//! when the venv cannot be made, except under `CI=true`.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use ferric_redfish::testing::{in_ci, python_venv};
use ferric_vbmc::redfish::{RedfishServer, RedfishSettings};
use ferric_vbmc::{BootDevice, Machine, PowerState, SimulatedMachine};

const REQUIREMENTS: &str = include_str!("sushy/requirements.txt");
const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sushy/client.py");
const VENV_ENV: &str = "FERRIC_VBMC_SUSHY_VENV";

/// The venv's python, installing the pinned requirements when needed.
fn sushy_python() -> Result<PathBuf, String> {
    python_venv(REQUIREMENTS, VENV_ENV, "ferric-vbmc-sushy", "python")
        .map(|venv| venv.join("bin").join("python"))
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

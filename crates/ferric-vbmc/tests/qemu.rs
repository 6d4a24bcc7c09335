//! A vbmc over a real QEMU (TCG, no disk, no network: it sits in its
//! firmware), driven with ipmitool: power on starts QEMU with the boot
//! order ipmitool set, power off ends it. Skips when QEMU or ipmitool is
//! missing or when not root, unless `CI=true`.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{ipmitool_ok, require};
use ferric_vbmc::qemu::Qmp;
use ferric_vbmc::{BootDevice, IpmiServer, IpmiSettings, Machine, QemuConfig, QemuMachine};

/// Kills a QEMU process if the test ends early.
struct KillOnDrop(Option<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            if Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::process::Command::new("kill").arg("-9").arg(pid.to_string()).status();
            }
        }
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find(|line| line.starts_with("Uid:"))
            .and_then(|line| line.split_whitespace().nth(1))
            == Some("0")
    })
}

fn running(pid: u32) -> bool {
    // A zombie is gone for our purposes.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

/// Waits (up to 10 s) until `pid` no longer runs; fails the test if it does.
async fn wait_gone(pid: u32) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while running(pid) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!running(pid), "QEMU {pid} still runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_power_through_ipmitool() {
    let root = is_root();
    if !require(
        "qemu_power_through_ipmitool",
        &["qemu-system-x86_64", "ipmitool"],
        (!root).then_some("not root"),
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let serial = dir.path().join("serial.log");
    let args = [
        "-accel",
        "tcg",
        "-nic",
        "none",
        "-display",
        "none",
        "-m",
        "128",
        "-nodefaults",
        "-serial",
    ]
    .iter()
    .map(|arg| arg.to_string())
    .chain([format!("file:{}", serial.display())])
    .collect();
    let config = QemuConfig::new(args, dir.path().join("qmp.sock"), dir.path().join("qemu.log"));
    let machine = Arc::new(QemuMachine::new("qemu-0", config).kill_on_drop(true));
    let server = IpmiServer::start(IpmiSettings::local(0, "u", "p"), machine.clone())
        .await
        .expect("start vbmc");
    let port = server.local_addr().port();
    let mut guard = KillOnDrop(None);

    assert!(ipmitool_ok(port, 17, &["power", "status"]).await.contains("Chassis Power is off"));
    ipmitool_ok(port, 17, &["chassis", "bootdev", "pxe"]).await;
    ipmitool_ok(port, 17, &["power", "on"]).await;
    let pid = machine.pid().await.expect("QEMU runs after power on");
    guard.0 = Some(pid);
    assert!(running(pid));
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(cmdline.contains("-boot order=n"), "{cmdline}");
    // The once-only override is used up by this start.
    assert_eq!(machine.boot_device().await.expect("boot device").device, BootDevice::None);
    {
        let mut qmp = Qmp::connect(&machine.config().qmp_socket).await.expect("QMP");
        assert_eq!(qmp.status().await.expect("query-status"), "running");
    }
    assert!(ipmitool_ok(port, 3, &["power", "status"]).await.contains("Chassis Power is on"));

    // A reset with a new boot device pending restarts QEMU with it.
    ipmitool_ok(port, 3, &["chassis", "bootdev", "disk", "options=persistent"]).await;
    ipmitool_ok(port, 3, &["power", "reset"]).await;
    let old = pid;
    let pid = machine.pid().await.expect("QEMU runs after reset");
    guard.0 = Some(pid);
    assert_ne!(pid, old);
    wait_gone(old).await;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    assert!(String::from_utf8_lossy(&cmdline).replace('\0', " ").contains("-boot order=c"));
    // Same device: a plain system_reset in the same process.
    ipmitool_ok(port, 3, &["power", "reset"]).await;
    assert_eq!(machine.pid().await, Some(pid));
    // A cycle is a new process; the persistent setting stays.
    ipmitool_ok(port, 17, &["power", "cycle"]).await;
    let old = pid;
    let pid = machine.pid().await.expect("QEMU runs after cycle");
    guard.0 = Some(pid);
    assert_ne!(pid, old);
    wait_gone(old).await;
    assert_eq!(machine.boot_device().await.expect("boot device").device, BootDevice::Disk);

    ipmitool_ok(port, 3, &["power", "off"]).await;
    wait_gone(pid).await;
    assert!(machine.pid().await.is_none());
    assert!(ipmitool_ok(port, 3, &["power", "status"]).await.contains("Chassis Power is off"));
    drop(server);
}

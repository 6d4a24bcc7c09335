//! ipmitool (lanplus, cipher suites 3 and 17) against a vbmc over a
//! simulated machine: power and boot device commands change the machine
//! as they should, and a wrong password is refused.

mod common;

use std::sync::Arc;

use common::{ipmitool, ipmitool_ok, require};
use ferric_vbmc::{BootDevice, IpmiServer, IpmiSettings, PowerState, SimulatedMachine};

async fn vbmc() -> (SimulatedMachine, IpmiServer, u16) {
    let machine = SimulatedMachine::new("sim-0");
    let server = IpmiServer::start(IpmiSettings::local(0, "u", "p"), Arc::new(machine.clone()))
        .await
        .expect("start vbmc");
    let port = server.local_addr().port();
    (machine, server, port)
}

async fn exercise(suite: u8) {
    let (machine, _server, port) = vbmc().await;
    let power = |machine: &SimulatedMachine| machine.state().power_state();

    assert!(ipmitool_ok(port, suite, &["power", "status"]).await.contains("Chassis Power is off"));
    ipmitool_ok(port, suite, &["power", "on"]).await;
    assert_eq!(power(&machine), PowerState::On);
    assert!(ipmitool_ok(port, suite, &["power", "status"]).await.contains("Chassis Power is on"));
    ipmitool_ok(port, suite, &["power", "off"]).await;
    assert_eq!(power(&machine), PowerState::Off);
    assert!(ipmitool_ok(port, suite, &["power", "status"]).await.contains("Chassis Power is off"));
    ipmitool_ok(port, suite, &["power", "cycle"]).await;
    assert_eq!(power(&machine), PowerState::On);
    assert_eq!(machine.counters().power_cycles, 1);

    ipmitool_ok(port, suite, &["chassis", "bootdev", "pxe"]).await;
    let boot = machine.state().boot;
    assert_eq!((boot.device, boot.persistent, boot.uefi), (BootDevice::Pxe, false, false));
    let shown = ipmitool_ok(port, suite, &["chassis", "bootparam", "get", "5"]).await;
    assert!(shown.contains("Force PXE"), "{shown}");
    assert!(shown.contains("only next boot"), "{shown}");

    ipmitool_ok(port, suite, &["chassis", "bootdev", "disk", "options=persistent"]).await;
    let boot = machine.state().boot;
    assert_eq!((boot.device, boot.persistent), (BootDevice::Disk, true));
    let shown = ipmitool_ok(port, suite, &["chassis", "bootparam", "get", "5"]).await;
    assert!(shown.contains("Hard-Drive"), "{shown}");
    assert!(shown.contains("all future boots"), "{shown}");

    ipmitool_ok(port, suite, &["chassis", "bootdev", "pxe", "options=efiboot"]).await;
    assert!(machine.state().boot.uefi);

    // A reset boots the once-only PXE override and uses it up.
    ipmitool_ok(port, suite, &["power", "reset"]).await;
    assert_eq!(machine.state().last_boot, Some(BootDevice::Pxe));
    assert_eq!(machine.state().boot.device, BootDevice::None);

    ipmitool_ok(port, suite, &["power", "soft"]).await;
    assert_eq!(power(&machine), PowerState::Off);
    assert_eq!(machine.counters().soft_offs, 1);

    let info = ipmitool_ok(port, suite, &["mc", "info"]).await;
    assert!(info.contains("IPMI Version              : 2.0"), "{info}");
    let status = ipmitool_ok(port, suite, &["chassis", "status"]).await;
    assert!(status.contains("System Power         : off"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipmitool_suite_3() {
    if require("ipmitool_suite_3", &["ipmitool"], None) {
        exercise(3).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipmitool_suite_17() {
    if require("ipmitool_suite_17", &["ipmitool"], None) {
        exercise(17).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_user_are_refused() {
    if !require("wrong_password_and_user_are_refused", &["ipmitool"], None) {
        return;
    }
    let (machine, _server, port) = vbmc().await;
    for suite in [3, 17] {
        let output = ipmitool(port, suite, "u", "wrong", &["power", "on"]).await;
        assert!(!output.status.success());
        let output = ipmitool(port, suite, "nobody", "p", &["power", "on"]).await;
        assert!(!output.status.success());
    }
    assert_eq!(machine.state().power_state(), PowerState::Off);
    assert_eq!(machine.counters().power_ons, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_commands_get_c1() {
    if !require("unknown_commands_get_c1", &["ipmitool"], None) {
        return;
    }
    let (_machine, _server, port) = vbmc().await;
    // Get SDR Repository Info (storage netfn 0x0A, 0x20).
    let output = ipmitool(port, 17, "u", "p", &["raw", "0x0a", "0x20"]).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("rsp=0xc1"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_power_cycle_is_not_repeated_by_retries() {
    if !require("slow_power_cycle_is_not_repeated_by_retries", &["ipmitool"], None) {
        return;
    }
    let (machine, _server, port) = vbmc().await;
    ipmitool_ok(port, 17, &["power", "on"]).await;
    // ipmitool waits 1 s (-N 1) before re-sending; the cycle takes 2.5 s.
    machine.set_faults(ferric_vbmc::Faults {
        delay: std::time::Duration::from_millis(2500),
        unresponsive: false,
    });
    let output = ipmitool(port, 17, "u", "p", &["power", "cycle"]).await;
    machine.set_faults(ferric_vbmc::Faults::default());
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(machine.counters().power_cycles, 1);
}

//! ferric's IPMI client against a real peer: OpenIPMI's `ipmi_sim` on
//! 127.0.0.1, cross-checked with `ipmitool -I lanplus -C 3`.
//!
//! ipmi_sim offers cipher suites 0–11 but not 17 (its Open Session Response
//! refuses RAKP-HMAC-SHA256 with "invalid authentication algorithm"), so
//! suite 3 is tested here and suite 17 against the in-process BMC
//! (`tests/mock_bmc.rs`). Skipped with a message when ipmi_sim or ipmitool
//! is missing, failed under `CI=true`.

use std::time::{Duration, Instant};

use ferric_ipmi::commands::Command;
use ferric_ipmi::testing::{tools_present, SimBmc};
use ferric_ipmi::{BootDevice, BootFlags, ChassisControl, Client, Config, IpmiError, Session};

fn start(test: &str) -> Option<SimBmc> {
    if !tools_present(test, &["ipmi_sim", "ipmitool"]) {
        return None;
    }
    Some(SimBmc::start().unwrap_or_else(|error| panic!("{test}: {error}")))
}

fn suite3(sim: &SimBmc) -> Config {
    Config { cipher_suite: Some(3), timeout: Duration::from_secs(3), ..sim.config() }
}

/// `ipmitool ... power status` → "on" / "off".
fn ipmitool_power(sim: &SimBmc) -> String {
    let output = sim.ipmitool(&["power", "status"]).expect("run ipmitool");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "ipmitool failed: {text} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    text.split_whitespace().last().unwrap_or_default().to_string()
}

fn ipmitool_ok(sim: &SimBmc, args: &[&str]) -> String {
    let output = sim.ipmitool(args).expect("run ipmitool");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "ipmitool {args:?} failed: {text} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_3_power_control_cross_checked_with_ipmitool() {
    let Some(sim) = start("suite_3_power_control") else { return };
    let client = Client::new(suite3(&sim)).expect("client");

    assert!(!client.power_is_on().await.expect("status"));
    assert_eq!(client.cipher_suite().await, Some(3));
    assert_eq!(ipmitool_power(&sim), "off");

    // ferric changes the state, ipmitool sees it.
    client.chassis_control(ChassisControl::PowerUp).await.expect("power up");
    assert!(client.power_is_on().await.expect("status"));
    assert_eq!(ipmitool_power(&sim), "on");
    assert!(sim.chassis_power_on());

    // ipmitool changes it, ferric (same session) sees it.
    ipmitool_ok(&sim, &["power", "off"]);
    assert!(!client.power_is_on().await.expect("status"));

    client.chassis_control(ChassisControl::PowerUp).await.expect("power up");
    let before = sim.chassis_calls().len();
    client.chassis_control(ChassisControl::PowerCycle).await.expect("cycle");
    client.chassis_control(ChassisControl::HardReset).await.expect("reset");
    let calls = sim.chassis_calls()[before..].join(" | ");
    eprintln!("ipmi_sim chassis_control calls for cycle + reset: {calls}");
    assert!(calls.contains("set reset 1"), "chassis calls: {calls}");
    assert!(client.power_is_on().await.expect("status"));
    assert_eq!(ipmitool_power(&sim), "on");

    client.chassis_control(ChassisControl::SoftShutdown).await.expect("soft");
    assert!(sim.chassis_calls().join(" | ").contains("set shutdown 1"));
    assert!(!client.power_is_on().await.expect("status"));
    assert_eq!(ipmitool_power(&sim), "off");

    client.chassis_control(ChassisControl::PowerUp).await.expect("on");
    client.chassis_control(ChassisControl::PowerDown).await.expect("off");
    assert_eq!(ipmitool_power(&sim), "off");
    client.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_3_boot_device_cross_checked_with_ipmitool() {
    let Some(sim) = start("suite_3_boot_device") else { return };
    let client = Client::new(suite3(&sim)).expect("client");

    client.disable_boot_flag_timeout().await.expect("parameter 3");
    for (device, ipmitool_text) in [
        (BootDevice::Pxe, "Force PXE"),
        (BootDevice::Disk, "Force Boot from default Hard-Drive"),
        (BootDevice::Cdrom, "Force Boot from CD/DVD"),
        (BootDevice::BiosSetup, "Force Boot into BIOS Setup"),
    ] {
        client.set_boot_flags(BootFlags::new(device, false, true)).await.expect("set boot");
        let flags = client.boot_flags().await.expect("get boot");
        assert_eq!(flags.device, device);
        let shown = ipmitool_ok(&sim, &["chassis", "bootparam", "get", "5"]);
        assert!(shown.contains(ipmitool_text), "{device:?}: {shown}");
    }
    // ipmi_sim keeps only the device: the valid, persistent and EFI bits read
    // back as zero whatever was written.
    client.set_boot_flags(BootFlags::new(BootDevice::Pxe, true, true)).await.expect("set");
    let flags = client.boot_flags().await.expect("get");
    assert_eq!((flags.device, flags.persistent, flags.efi), (BootDevice::Pxe, false, false));

    // ipmitool sets, ferric reads.
    ipmitool_ok(&sim, &["chassis", "bootdev", "disk"]);
    assert_eq!(client.boot_flags().await.expect("get").device, BootDevice::Disk);
    ipmitool_ok(&sim, &["chassis", "bootdev", "none"]);
    assert_eq!(client.boot_flags().await.expect("get").device, BootDevice::NoOverride);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiation_picks_suite_3_and_forcing_17_is_refused() {
    let Some(sim) = start("negotiation") else { return };

    let mut session = Session::open(&sim.config()).await.expect("negotiated session");
    assert_eq!(session.cipher_suite(), 3);
    let suites: Vec<u8> =
        session.cipher_suites().await.expect("cipher suites").iter().map(|s| s.id).collect();
    assert!(suites.contains(&3) && !suites.contains(&17), "ipmi_sim lists {suites:?}");
    session.close().await.expect("close");

    let forced = Config { cipher_suite: Some(17), ..sim.config() };
    match Session::open(&forced).await {
        Err(IpmiError::UnsupportedCipherSuite { suite: Some(17), reason }) => {
            assert!(reason.contains("invalid authentication algorithm"), "{reason}");
        }
        other => panic!("expected UnsupportedCipherSuite, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_auth_failed_without_the_password() {
    let Some(sim) = start("wrong_credentials") else { return };

    let wrong_password =
        Config { password: ferric_ipmi::Password::new("not-the-pw"), ..suite3(&sim) };
    let error = Session::open(&wrong_password).await.expect_err("wrong password");
    assert!(matches!(error, IpmiError::AuthFailed { .. }), "{error:?}");
    assert!(
        !error.to_string().contains("not-the-pw") && !format!("{error:?}").contains("not-the-pw")
    );

    let wrong_user = Config { username: "nobody".into(), ..suite3(&sim) };
    let error = Session::open(&wrong_user).await.expect_err("wrong user");
    assert!(matches!(error, IpmiError::AuthFailed { .. }), "{error:?}");
    assert!(!error.to_string().contains(SimBmc::PASSWORD));

    // The BMC still serves the right user afterwards.
    let client = Client::new(suite3(&sim)).expect("client");
    client.power_is_on().await.expect("status");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_codes_are_typed_and_keep_the_session() {
    let Some(sim) = start("completion_codes") else { return };
    let mut session = Session::open(&suite3(&sim)).await.expect("session");
    // Chassis NetFn, an unassigned command number.
    let error = session.execute(&Command::new(0x00, 0x7E, vec![])).await.expect_err("invalid");
    match &error {
        IpmiError::CompletionCode { code, meaning, .. } => {
            assert_eq!((*code, *meaning), (0xC1, "invalid command"), "{error}");
        }
        other => panic!("expected a completion code, got {other:?}"),
    }
    // Boot parameter 0x7F does not exist.
    let error = session
        .execute(&ferric_ipmi::commands::get_system_boot_options(0x7F))
        .await
        .expect_err("unsupported parameter");
    assert!(
        matches!(error, IpmiError::CompletionCode { cmd: "Get System Boot Options", .. }),
        "{error:?}"
    );
    // The same session goes on working, for many commands.
    for _ in 0..50 {
        session.chassis_status().await.expect("status");
    }
    session.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reopens_after_its_session_is_closed() {
    let Some(sim) = start("reopen") else { return };
    let client = Client::new(suite3(&sim)).expect("client");
    client.power_is_on().await.expect("status");
    client.close().await.expect("close");
    client.power_is_on().await.expect("status on a new session");
}

#[tokio::test]
async fn no_bmc_times_out_within_the_configured_time() {
    // A port where nothing listens (ICMP port unreachable), on loopback only.
    let port =
        std::net::UdpSocket::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let config = Config {
        timeout: Duration::from_millis(800),
        retries: 2,
        ..Config::new("127.0.0.1", port, "admin", "password")
    };
    let started = Instant::now();
    let error = Session::open(&config).await.expect_err("nobody there");
    let took = started.elapsed();
    assert!(matches!(error, IpmiError::Timeout { .. }), "{error:?}");
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_millis(1300),
        "took {took:?}"
    );
    let client = Client::new(config).expect("client");
    assert!(matches!(client.power_is_on().await, Err(IpmiError::Timeout { .. })));
}

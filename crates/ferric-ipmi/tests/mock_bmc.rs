//! The client against the in-process BMC (`ferric_ipmi::testing::MockBmc`):
//! cipher suite 17 (which ipmi_sim lacks), negotiation, lost packets and
//! retries, completion codes, expired and idle sessions, concurrency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferric_ipmi::commands::{cmd, netfn};
use ferric_ipmi::testing::MockBmc;
use ferric_ipmi::{BootDevice, BootFlags, ChassisControl, Client, Config, IpmiError, Session};

const USER: &str = "admin";
const PASSWORD: &str = "s3cret-pw";

async fn bmc(suites: &[u8]) -> MockBmc {
    MockBmc::start(USER, PASSWORD, suites).await.expect("mock BMC")
}

fn quick(config: Config) -> Config {
    Config { timeout: Duration::from_millis(700), retries: 2, ..config }
}

#[tokio::test]
async fn suite_17_runs_power_and_boot_commands() {
    let bmc = bmc(&[17, 3]).await;
    let config = Config { cipher_suite: Some(17), ..bmc.config(USER, PASSWORD) };
    let mut session = Session::open(&config).await.expect("session");
    assert_eq!(session.cipher_suite(), 17);
    assert!(!session.chassis_status().await.expect("status").power_on);
    session.chassis_control(ChassisControl::PowerUp).await.expect("up");
    assert!(session.chassis_status().await.expect("status").power_on);
    session.chassis_control(ChassisControl::PowerCycle).await.expect("cycle");
    session.chassis_control(ChassisControl::SoftShutdown).await.expect("soft off");
    assert!(!session.chassis_status().await.expect("status").power_on);
    assert_eq!(bmc.state().controls, vec![0x01, 0x02, 0x05]);

    session.set_boot_flags(BootFlags::new(BootDevice::Cdrom, true, true)).await.expect("set");
    assert_eq!(bmc.state().boot_flags, [0xE0, 0x14, 0, 0, 0]);
    let flags = session.boot_flags().await.expect("get");
    assert_eq!(
        (flags.device, flags.persistent, flags.efi, flags.valid),
        (BootDevice::Cdrom, true, true, true)
    );
    session.set_boot_flags(BootFlags::new(BootDevice::Pxe, false, false)).await.expect("set");
    assert_eq!(bmc.state().boot_flags, [0x80, 0x04, 0, 0, 0]);

    let ids: Vec<u8> =
        session.cipher_suites().await.expect("suites").iter().map(|s| s.id).collect();
    assert_eq!(ids, vec![17, 3]);
    session.close().await.expect("close");
    assert_eq!(bmc.state().sessions_active, 0);
}

#[tokio::test]
async fn negotiation_prefers_17_and_falls_back_to_3() {
    let both = bmc(&[3, 17]).await;
    assert_eq!(Session::open(&both.config(USER, PASSWORD)).await.expect("open").cipher_suite(), 17);

    let only3 = bmc(&[3]).await;
    assert_eq!(Session::open(&only3.config(USER, PASSWORD)).await.expect("open").cipher_suite(), 3);
    let forced = Config { cipher_suite: Some(17), ..only3.config(USER, PASSWORD) };
    assert!(matches!(
        Session::open(&forced).await,
        Err(IpmiError::UnsupportedCipherSuite { suite: Some(17), .. })
    ));

    let only17 = bmc(&[17]).await;
    let forced = Config { cipher_suite: Some(3), ..only17.config(USER, PASSWORD) };
    assert!(matches!(
        Session::open(&forced).await,
        Err(IpmiError::UnsupportedCipherSuite { suite: Some(3), .. })
    ));

    let none = bmc(&[]).await;
    match Session::open(&none.config(USER, PASSWORD)).await {
        Err(IpmiError::UnsupportedCipherSuite { suite: None, reason }) => {
            assert!(reason.contains("17") && reason.contains("3"), "{reason}");
        }
        other => panic!("expected no common suite, got {other:?}"),
    }
}

#[tokio::test]
async fn lost_packets_are_resent() {
    let bmc = bmc(&[17, 3]).await;
    let config = quick(bmc.config(USER, PASSWORD));
    // Lose Get Channel Authentication Capabilities twice (re-sent), then
    // RAKP 1 and RAKP 3 once each (the handshake restarts from Open Session).
    bmc.state().drop_next = 2;
    bmc.state().drop_payloads = vec![0x12, 0x14];
    let client = Client::new(config).expect("client");
    assert!(!client.power_is_on().await.expect("status despite losses"));
    assert_eq!(bmc.state().dropped, 4);
    // Lose two requests in a session: the third send is answered.
    bmc.state().drop_payloads = vec![0x00, 0x00];
    client.chassis_control(ChassisControl::PowerUp).await.expect("up despite losses");
    assert!(client.power_is_on().await.expect("status"));
    assert_eq!(bmc.state().dropped, 6);
    assert_eq!(bmc.state().sessions_opened, 1);
    assert_eq!(bmc.state().controls, vec![0x01]);
}

#[tokio::test]
async fn a_silent_bmc_times_out_within_the_budget() {
    let bmc = bmc(&[17, 3]).await;
    bmc.state().silent = true;
    let config =
        Config { timeout: Duration::from_millis(500), retries: 3, ..bmc.config(USER, PASSWORD) };
    let started = Instant::now();
    let error = Session::open(&config).await.expect_err("silent");
    let took = started.elapsed();
    assert!(matches!(error, IpmiError::Timeout { retries: 3, .. }), "{error:?}");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(900),
        "took {took:?}"
    );
    // One send and three re-sends.
    assert_eq!(bmc.state().received, 4);
}

#[tokio::test]
async fn wrong_credentials_fail_authentication() {
    let bmc = bmc(&[17, 3]).await;
    for suite in [17, 3] {
        let wrong_password = Config { cipher_suite: Some(suite), ..bmc.config(USER, "guessed-pw") };
        let error = Session::open(&wrong_password).await.expect_err("wrong password");
        assert!(matches!(error, IpmiError::AuthFailed { .. }), "{error:?}");
        assert!(!format!("{error} {error:?}").contains("guessed-pw"));
        let wrong_user = Config { cipher_suite: Some(suite), ..bmc.config("root", PASSWORD) };
        match Session::open(&wrong_user).await {
            Err(IpmiError::AuthFailed { reason }) => {
                assert!(reason.contains("unauthorized name"), "{reason}")
            }
            other => panic!("expected AuthFailed, got {other:?}"),
        }
    }
    assert_eq!(bmc.state().sessions_opened, 0);
}

#[tokio::test]
async fn completion_codes_become_typed_errors() {
    let bmc = bmc(&[17]).await;
    let client = Client::new(bmc.config(USER, PASSWORD)).expect("client");
    bmc.state().fail = Some((netfn::CHASSIS, cmd::CHASSIS_CONTROL, 0xD5));
    match client.chassis_control(ChassisControl::PowerUp).await {
        Err(IpmiError::CompletionCode { cmd, code, meaning }) => {
            assert_eq!(
                (cmd, code, meaning),
                ("Chassis Control", 0xD5, "command not supported in present state")
            );
        }
        other => panic!("expected a completion code, got {other:?}"),
    }
    bmc.state().fail = Some((netfn::CHASSIS, cmd::SET_SYSTEM_BOOT_OPTIONS, 0x80));
    let error = client
        .set_boot_flags(BootFlags::new(BootDevice::Pxe, false, false))
        .await
        .expect_err("refused");
    assert_eq!(
        error.to_string(),
        "Set System Boot Options failed with completion code 0x80: parameter not supported"
    );
    bmc.state().fail = None;
    client.power_is_on().await.expect("status");
    // Refusals do not cost the session.
    assert_eq!(bmc.state().sessions_opened, 1);
}

#[tokio::test]
async fn an_expired_session_is_replaced() {
    let bmc = bmc(&[17, 3]).await;
    let client = Client::new(quick(bmc.config(USER, PASSWORD))).expect("client");
    client.power_is_on().await.expect("status");
    bmc.state().expire_sessions = true;
    // The old session times out (700 ms), a new one answers.
    client.power_is_on().await.expect("status on a new session");
    assert_eq!(bmc.state().sessions_opened, 2);

    // Not for a power cycle: sending it twice could cycle twice.
    client.chassis_control(ChassisControl::PowerUp).await.expect("up");
    bmc.state().expire_sessions = true;
    let error = client.chassis_control(ChassisControl::PowerCycle).await.expect_err("timeout");
    assert!(matches!(error, IpmiError::Timeout { .. }), "{error:?}");
    assert_eq!(bmc.state().controls, vec![0x01]);
    // The next call opens a new session.
    client.chassis_control(ChassisControl::PowerCycle).await.expect("cycle");
    assert_eq!(bmc.state().sessions_opened, 3);
}

#[tokio::test]
async fn an_idle_session_is_closed_and_replaced() {
    let bmc = bmc(&[17]).await;
    let config = Config { idle_timeout: Duration::from_millis(50), ..bmc.config(USER, PASSWORD) };
    let client = Client::new(config).expect("client");
    client.power_is_on().await.expect("status");
    tokio::time::sleep(Duration::from_millis(120)).await;
    client.power_is_on().await.expect("status");
    let state = bmc.state();
    assert_eq!((state.sessions_opened, state.sessions_active), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_one_session() {
    let bmc = bmc(&[17]).await;
    let client = Arc::new(Client::new(bmc.config(USER, PASSWORD)).expect("client"));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                client.power_is_on().await.expect("status");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(bmc.state().sessions_opened, 1);
}

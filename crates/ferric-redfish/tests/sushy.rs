//! The client against a real peer: sushy-tools' Redfish emulator (pinned in
//! `tests/sushy/requirements.txt`, installed into a venv under /var/tmp)
//! with its fake driver, on 127.0.0.1. Skips with a message when the venv
//! cannot be made, except under `CI=true`.
//!
//! The fake driver applies a power change 1 to 11 s after the request and
//! always reports `BootSourceOverrideEnabled: Continuous`.

use std::time::{Duration, Instant};

use ferric_redfish::testing::SushyEmulator;
use ferric_redfish::{
    AuthType, BootEnabled, BootMode, BootSource, Client, Config, PowerState, RedfishError,
    ResetType,
};

/// Longer than the fake driver's longest power delay.
const POWER_WAIT: Duration = Duration::from_secs(30);

async fn wait_for(client: &Client, want: PowerState) {
    let deadline = Instant::now() + POWER_WAIT;
    loop {
        let state = client.power_state().await.expect("power state");
        if state.as_ref() == Some(&want) {
            return;
        }
        assert!(Instant::now() < deadline, "still {state:?} after {POWER_WAIT:?}, want {want}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_and_boot_override_against_sushy_tools() {
    let Some(emulator) = SushyEmulator::start("sushy-tools power and boot test", false) else {
        return;
    };
    // No session service and no credentials needed: auto ends up anonymous
    // or basic; with credentials configured it falls back to basic.
    let mut config = Config::new(&emulator.url()).with_credentials("any", "thing");
    config.timeout = Duration::from_secs(10);
    let client = Client::new(config).expect("client");
    // Discovery: the emulator has exactly one system.
    assert_eq!(client.system_path().await.expect("system"), SushyEmulator::SYSTEM);
    assert!(client.service_root().await.expect("root").redfish_version.is_some());

    assert_eq!(client.power_state().await.expect("power"), Some(PowerState::Off));
    client.reset(ResetType::On).await.expect("on");
    wait_for(&client, PowerState::On).await;
    client.reset(ResetType::ForceRestart).await.expect("reboot");
    wait_for(&client, PowerState::On).await;
    client.reset(ResetType::GracefulShutdown).await.expect("soft off");
    wait_for(&client, PowerState::Off).await;
    client.reset(ResetType::On).await.expect("on");
    wait_for(&client, PowerState::On).await;
    client.reset(ResetType::ForceOff).await.expect("off");
    wait_for(&client, PowerState::Off).await;

    for (target, enabled) in [
        (BootSource::Pxe, BootEnabled::Once),
        (BootSource::Hdd, BootEnabled::Once),
        (BootSource::Pxe, BootEnabled::Continuous),
        (BootSource::Hdd, BootEnabled::Continuous),
        (BootSource::Cd, BootEnabled::Once),
    ] {
        client
            .set_boot_override(target.clone(), enabled.clone(), Some(BootMode::Uefi))
            .await
            .expect("set boot");
        let boot = client.boot_override().await.expect("read boot");
        assert_eq!(boot.target, Some(target), "{boot:?}");
        // sushy-tools ignores BootSourceOverrideEnabled.
        assert_eq!(boot.enabled, Some(BootEnabled::Continuous), "{boot:?}");
        assert_eq!(boot.mode, Some(BootMode::Uefi));
    }
    // A target sushy does not list is refused with a clear message.
    let error =
        client.set_boot_override(BootSource::Usb, BootEnabled::Once, None).await.expect_err("usb");
    assert!(matches!(&error, RedfishError::Unsupported(text) if text.contains("Pxe")), "{error}");
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_against_sushy_tools() {
    let Some(emulator) = SushyEmulator::start("sushy-tools basic auth test", true) else {
        return;
    };
    let (user, password) = SushyEmulator::USER;
    for auth in [AuthType::Auto, AuthType::Basic] {
        let mut config = Config::new(&emulator.url()).with_credentials(user, password);
        config.auth = auth;
        let client = Client::new(config).expect("client");
        assert!(client.power_state().await.expect("power").is_some(), "{auth:?}");
        client.set_boot_override(BootSource::Pxe, BootEnabled::Once, None).await.expect("set boot");
        assert_eq!(client.boot_override().await.expect("boot").target, Some(BootSource::Pxe));
    }
    let config = Config::new(&emulator.url()).with_credentials(user, "wrong-password-xyz");
    let error = Client::new(config).expect("client").power_state().await.expect_err("wrong");
    assert!(matches!(error, RedfishError::Auth { status: 401, .. }), "{error:?}");
    assert!(!error.to_string().contains("wrong-password-xyz"), "{error}");
    // Session auth: sushy-tools has no session service.
    let mut config = Config::new(&emulator.url()).with_credentials(user, password);
    config.auth = AuthType::Session;
    let error = Client::new(config).expect("client").power_state().await.expect_err("session");
    assert!(error.status().is_some_and(|status| status == 404 || status == 401), "{error:?}");
    drop(emulator);
}

//! The client against the in-process mock BMC (`testing::MockBmc`): auth
//! modes, session renewal and logout, system discovery, resets (with task
//! monitors), the boot override with ETags, and error mapping.

use std::time::Duration;

use ferric_redfish::testing::{MockBmc, MockSystem};
use ferric_redfish::{
    AuthType, BootEnabled, BootMode, BootSource, Client, Config, PowerState, RedfishError,
    ResetType,
};
use serde_json::json;

fn config(bmc: &MockBmc, auth: AuthType) -> Config {
    let mut config = Config::new(&bmc.url()).with_credentials("admin", "password");
    config.auth = auth;
    config.timeout = Duration::from_secs(5);
    config.task_poll_interval = Duration::from_millis(10);
    config
}

fn client(bmc: &MockBmc, auth: AuthType) -> Client {
    Client::new(config(bmc, auth)).expect("client")
}

#[tokio::test]
async fn one_session_serves_every_call_and_is_renewed_after_401() {
    let bmc = MockBmc::start().await.expect("bmc");
    let client = client(&bmc, AuthType::Session);
    assert_eq!(client.power_state().await.expect("power"), Some(PowerState::Off));
    assert_eq!(client.system_path().await.expect("path"), "/redfish/v1/Systems/1");
    client.power_state().await.expect("power");
    assert_eq!(bmc.state().sessions_created, 1);
    // The BMC forgets the session: one 401, a new login, the call succeeds.
    bmc.expire_sessions();
    client.power_state().await.expect("power after 401");
    assert_eq!(bmc.state().sessions_created, 2);
    assert_eq!(bmc.state().sessions.len(), 1);
    client.close().await;
    {
        let state = bmc.state();
        assert_eq!((state.sessions_deleted, state.sessions.len()), (1, 0));
    }
    // A closed client logs in again when used.
    client.power_state().await.expect("power after close");
    assert_eq!(bmc.state().sessions_created, 3);
}

#[tokio::test]
async fn dropping_the_client_deletes_its_session() {
    let bmc = MockBmc::start().await.expect("bmc");
    let client = client(&bmc, AuthType::Auto);
    client.power_state().await.expect("power");
    assert_eq!(bmc.state().sessions.len(), 1);
    drop(client);
    for _ in 0..100 {
        if bmc.state().sessions.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(bmc.state().sessions_deleted, 1);
}

#[tokio::test]
async fn auto_falls_back_to_basic_without_a_session_service() {
    let bmc = MockBmc::start().await.expect("bmc");
    bmc.state().sessions_enabled = false;
    let auto = client(&bmc, AuthType::Auto);
    auto.power_state().await.expect("power over basic");
    assert_eq!(bmc.state().sessions_created, 0);
    // Basic only: no session is attempted.
    let requests_before = bmc.state().requests.len();
    client(&bmc, AuthType::Basic).power_state().await.expect("basic");
    assert!(!bmc.state().requests[requests_before..].iter().any(|r| r.contains("Sessions")));
    // Session only: its absence is an error.
    let error = client(&bmc, AuthType::Session).power_state().await.expect_err("no sessions");
    assert!(matches!(error, RedfishError::NotFound { .. }), "{error:?}");
}

#[tokio::test]
async fn wrong_credentials_are_auth_errors_without_the_password() {
    let bmc = MockBmc::start().await.expect("bmc");
    for auth in [AuthType::Basic, AuthType::Session, AuthType::Auto] {
        let mut config = config(&bmc, auth);
        config.password = ferric_redfish::Password::new("hunter2-secret");
        let error = Client::new(config).expect("client").power_state().await.expect_err("refused");
        assert!(matches!(error, RedfishError::Auth { status: 401, .. }), "{auth:?}: {error:?}");
        let text = error.to_string();
        assert!(!text.contains("hunter2") && text.contains("authentication failed"), "{text}");
        assert!(!error.is_retryable());
    }
}

#[tokio::test]
async fn the_system_is_discovered_only_when_unambiguous() {
    let bmc =
        MockBmc::start_with(vec![MockSystem::new("a"), MockSystem::new("b")]).await.expect("bmc");
    let error = client(&bmc, AuthType::Auto).power_state().await.expect_err("two systems");
    let text = error.to_string();
    assert!(
        text.contains("2 systems")
            && text.contains("/redfish/v1/Systems/a")
            && text.contains("/redfish/v1/Systems/b"),
        "{text}"
    );
    let mut config = config(&bmc, AuthType::Auto);
    config.system_id = Some("b".into());
    let client = Client::new(config).expect("client");
    client.reset(ResetType::On).await.expect("reset b");
    assert_eq!(bmc.state().systems[1].power, "On");
    assert_eq!(bmc.state().systems[0].power, "Off");

    let empty = MockBmc::start_with(vec![]).await.expect("bmc");
    let error = crate::client(&empty, AuthType::Auto).power_state().await.expect_err("none");
    assert!(error.to_string().contains("no system"), "{error}");
}

#[tokio::test]
async fn resets_use_the_action_and_respect_allowable_values() {
    let bmc = MockBmc::start().await.expect("bmc");
    let client = client(&bmc, AuthType::Auto);
    for (reset, power) in [
        (ResetType::On, PowerState::On),
        (ResetType::GracefulShutdown, PowerState::Off),
        (ResetType::ForceRestart, PowerState::On),
        (ResetType::GracefulRestart, PowerState::On),
        (ResetType::ForceOff, PowerState::Off),
    ] {
        client.reset(reset).await.expect("reset");
        assert_eq!(client.power_state().await.expect("power"), Some(power), "{reset}");
    }
    assert_eq!(
        bmc.state().resets,
        ["On", "GracefulShutdown", "ForceRestart", "GracefulRestart", "ForceOff"]
    );
    bmc.state().systems[0].allowed_resets = Some(vec!["On".into(), "ForceOff".into()]);
    let error = client.reset(ResetType::GracefulRestart).await.expect_err("not allowed");
    assert!(
        matches!(&error, RedfishError::Unsupported(text) if text.contains("On, ForceOff")),
        "{error:?}"
    );
    assert_eq!(bmc.state().resets.len(), 5, "nothing was sent");
    // Without AllowableValues, anything is tried.
    bmc.state().systems[0].allowed_resets = None;
    client.reset(ResetType::GracefulRestart).await.expect("reset");
}

#[tokio::test]
async fn task_monitors_are_followed_within_a_bound() {
    let bmc = MockBmc::start().await.expect("bmc");
    let client = client(&bmc, AuthType::Basic);
    bmc.state().reset_task_polls = Some(3);
    client.reset(ResetType::On).await.expect("reset through a task");
    let polls = bmc.state().requests.iter().filter(|r| r.contains("TaskMonitors")).count();
    assert_eq!(polls, 4);

    bmc.state().task_end = "Exception".into();
    let error = client.reset(ResetType::ForceOff).await.expect_err("task failed");
    assert!(
        matches!(&error, RedfishError::TaskFailed { state, message, .. }
            if state == "Exception" && message.contains("The task ended")),
        "{error:?}"
    );

    bmc.state().reset_task_polls = Some(u32::MAX);
    let mut config = config(&bmc, AuthType::Basic);
    config.task_timeout = Duration::from_millis(150);
    let bounded = Client::new(config).expect("client");
    let started = std::time::Instant::now();
    let error = bounded.reset(ResetType::On).await.expect_err("never ends");
    assert!(matches!(error, RedfishError::TaskTimeout { .. }), "{error:?}");
    assert!(error.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn boot_override_uses_if_match_and_retries_one_412() {
    let bmc = MockBmc::start().await.expect("bmc");
    let client = client(&bmc, AuthType::Session);
    client
        .set_boot_override(BootSource::Pxe, BootEnabled::Once, Some(BootMode::Uefi))
        .await
        .expect("set");
    {
        let state = bmc.state();
        assert_eq!(state.if_matches, [Some("W/\"1\"".to_string())]);
        // The mode already is UEFI: not sent.
        assert_eq!(
            state.patches,
            [
                json!({"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}})
            ]
        );
    }
    let boot = client.boot_override().await.expect("read back");
    assert_eq!(
        (boot.target, boot.enabled, boot.mode),
        (Some(BootSource::Pxe), Some(BootEnabled::Once), Some(BootMode::Uefi))
    );

    // One 412: re-read, retried with the new ETag.
    bmc.state().fail_patches_412 = 1;
    client
        .set_boot_override(BootSource::Hdd, BootEnabled::Continuous, Some(BootMode::Legacy))
        .await
        .expect("set after 412");
    {
        let state = bmc.state();
        assert_eq!(state.if_matches.len(), 3);
        assert_ne!(state.if_matches[1], state.if_matches[2]);
        assert_eq!(
            state.patches[1]["Boot"],
            json!({"BootSourceOverrideTarget": "Hdd", "BootSourceOverrideEnabled": "Continuous",
                   "BootSourceOverrideMode": "Legacy"})
        );
    }
    let boot = client.boot_override().await.expect("read back");
    assert_eq!((boot.target, boot.enabled), (Some(BootSource::Hdd), Some(BootEnabled::Continuous)));

    // Two 412s: the second is reported.
    bmc.state().fail_patches_412 = 2;
    let error = client
        .set_boot_override(BootSource::Cd, BootEnabled::Once, None)
        .await
        .expect_err("412 twice");
    assert_eq!(error.status(), Some(412), "{error:?}");
    assert!(error.to_string().contains("The ETag does not match."), "{error}");

    // No ETag: no If-Match.
    bmc.state().etags = false;
    client.set_boot_override(BootSource::BiosSetup, BootEnabled::Once, None).await.expect("set");
    assert_eq!(bmc.state().if_matches.last(), Some(&None));

    // A target the system does not list is refused before sending.
    let patches = bmc.state().patches.len();
    let error = client
        .set_boot_override(BootSource::Floppy, BootEnabled::Once, None)
        .await
        .expect_err("floppy");
    assert!(matches!(error, RedfishError::Unsupported(_)), "{error:?}");
    assert_eq!(bmc.state().patches.len(), patches);
}

#[tokio::test]
async fn bmc_errors_carry_the_extended_info_message() {
    let bmc = MockBmc::start().await.expect("bmc");
    let client = client(&bmc, AuthType::Basic);
    client.system_path().await.expect("discovered");
    let body = json!({"error": {"code": "Base.1.8.InternalError", "message": "generic",
        "@Message.ExtendedInfo": [{"MessageId": "Base.1.8.InternalError",
            "Message": "The request failed due to an internal service error.",
            "Resolution": "Resubmit the request."}]}});
    bmc.state().fail_next.push_back((500, body.to_string()));
    let error = client.reset(ResetType::On).await.expect_err("500");
    assert!(matches!(error, RedfishError::Http { status: 500, .. }), "{error:?}");
    assert!(error.is_retryable());
    let text = error.to_string();
    assert!(
        text.contains("The request failed due to an internal service error.")
            && text.contains("Resubmit the request.")
            && text.contains("/redfish/v1/Systems/1"),
        "{text}"
    );

    bmc.state().fail_next.push_back((400, "<html><body>Bad request</body></html>".into()));
    let error = client.power_state().await.expect_err("400");
    assert!(!error.is_retryable());
    assert!(error.to_string().contains("HTTP 400: <html><body>Bad request"), "{error}");

    bmc.state().fail_next.push_back((200, "<html>not json</html>".into()));
    let error = client.power_state().await.expect_err("not JSON");
    assert!(matches!(error, RedfishError::InvalidResponse { .. }), "{error:?}");
    assert!(error.to_string().contains("not JSON"), "{error}");

    bmc.state().fail_next.push_back((200, String::new()));
    let error = client.power_state().await.expect_err("empty");
    assert!(error.to_string().contains("empty body"), "{error}");

    bmc.state().fail_next.push_back((404, String::new()));
    let error = client.power_state().await.expect_err("404");
    assert!(matches!(error, RedfishError::NotFound { .. }), "{error:?}");

    bmc.state().fail_next.push_back((403, String::new()));
    let error = client.power_state().await.expect_err("403");
    assert!(matches!(error, RedfishError::Auth { status: 403, .. }), "{error:?}");

    // And then all is well again.
    client.power_state().await.expect("power");
}

#[tokio::test]
async fn slow_and_absent_bmcs_are_retryable() {
    let bmc = MockBmc::start().await.expect("bmc");
    bmc.state().delay = Duration::from_millis(600);
    let mut config = config(&bmc, AuthType::Basic);
    config.timeout = Duration::from_millis(150);
    let error = Client::new(config).expect("client").power_state().await.expect_err("slow");
    assert!(matches!(error, RedfishError::Timeout { .. }), "{error:?}");
    assert!(error.is_retryable());

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("port")
        .port();
    let config = Config::new(&format!("http://127.0.0.1:{port}")).with_credentials("u", "secretpw");
    let error = Client::new(config).expect("client").power_state().await.expect_err("refused");
    assert!(matches!(error, RedfishError::Connect { .. }), "{error:?}");
    assert!(error.is_retryable());
    let text = error.to_string();
    assert!(text.contains("refused") && !text.contains("secretpw"), "{text}");
}

#[tokio::test]
async fn tls_settings_are_checked_up_front() {
    let mut config = Config::new("127.0.0.1:1");
    config.verify = ferric_redfish::TlsVerify::CaBundle("/nonexistent/ca.pem".into());
    let error = Client::new(config).expect_err("missing bundle");
    assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    let dir = std::env::temp_dir().join(format!("ferric-redfish-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("empty.pem");
    std::fs::write(&path, "no certificates here\n").expect("write");
    let mut config = Config::new("127.0.0.1:1");
    config.verify = ferric_redfish::TlsVerify::CaBundle(path);
    assert!(Client::new(config).is_err());
    let _ = std::fs::remove_dir_all(&dir);
    // https to a plain-HTTP server fails as a connection error.
    let bmc = MockBmc::start().await.expect("bmc");
    let mut config = Config::new(&format!("https://{}", bmc.addr()));
    config.timeout = Duration::from_secs(5);
    let error = Client::new(config).expect("client").power_state().await.expect_err("tls");
    assert!(matches!(error, RedfishError::Connect { .. }), "{error:?}");
}

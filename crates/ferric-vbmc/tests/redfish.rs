//! The Redfish front end against ferric's own Redfish client
//! (`ferric-redfish`), over a simulated machine: discovery, power, boot
//! override read back and reflected in the machine, authentication, ETags.

use std::sync::Arc;

use ferric_redfish::{
    AuthType, BootEnabled, BootMode, BootSource, Client, Config as ClientConfig, PowerState,
    RedfishError, ResetType,
};
use ferric_vbmc::redfish::{RedfishServer, RedfishSettings};
use ferric_vbmc::{BootDevice, BootSetting, Machine, SimulatedMachine};

const USER: &str = "admin";
const PASSWORD: &str = "vbmc-secret-pw";

async fn serve(name: &str) -> (SimulatedMachine, RedfishServer) {
    let machine = SimulatedMachine::new(name);
    let server =
        RedfishServer::start(RedfishSettings::local(0, USER, PASSWORD), Arc::new(machine.clone()))
            .await
            .expect("start the Redfish server");
    (machine, server)
}

fn client(server: &RedfishServer, password: &str, auth: AuthType) -> Client {
    let mut config = ClientConfig::new(&server.url()).with_credentials(USER, password);
    config.auth = auth;
    config.timeout = std::time::Duration::from_secs(10);
    Client::new(config).expect("client")
}

#[tokio::test]
async fn ferric_client_drives_the_redfish_vbmc() {
    let (machine, server) = serve("node-0").await;
    let client = client(&server, PASSWORD, AuthType::Auto);

    // Discovery.
    let root = client.service_root().await.expect("root");
    assert_eq!(root.systems.as_deref(), Some("/redfish/v1/Systems"));
    assert_eq!(client.system_path().await.expect("system"), "/redfish/v1/Systems/node-0");
    let (system, etag) = client.system().await.expect("system");
    assert!(etag.is_some());
    assert_eq!(system.power_state, Some(PowerState::Off));
    assert_eq!(
        system.reset_allowed.as_deref().map(<[String]>::len),
        Some(6),
        "{:?}",
        system.reset_allowed
    );

    // Power.
    client.reset(ResetType::On).await.expect("on");
    assert_eq!(client.power_state().await.expect("power"), Some(PowerState::On));
    assert_eq!(machine.power_state().await.expect("machine power"), ferric_vbmc::PowerState::On);
    client.reset(ResetType::ForceRestart).await.expect("restart");
    assert_eq!(machine.counters().resets, 1);
    client.reset(ResetType::GracefulRestart).await.expect("graceful restart");
    assert_eq!(machine.counters().soft_offs, 1);
    assert_eq!(client.power_state().await.expect("power"), Some(PowerState::On));
    client.reset(ResetType::ForceOff).await.expect("off");
    assert_eq!(client.power_state().await.expect("power"), Some(PowerState::Off));
    // A restart of a machine that is off is refused, with the reason.
    let error = client.reset(ResetType::ForceRestart).await.expect_err("restart while off");
    assert_eq!(error.status(), Some(409), "{error}");
    assert!(error.to_string().contains("powered off"), "{error}");

    // Boot override: Pxe once, read back and in the machine.
    client
        .set_boot_override(BootSource::Pxe, BootEnabled::Once, Some(BootMode::Uefi))
        .await
        .expect("pxe once");
    let boot = client.boot_override().await.expect("boot");
    assert_eq!(boot.target, Some(BootSource::Pxe));
    assert_eq!(boot.enabled, Some(BootEnabled::Once));
    assert_eq!(boot.mode, Some(BootMode::Uefi));
    assert_eq!(
        machine.boot_device().await.expect("machine boot"),
        BootSetting::new(BootDevice::Pxe, false, true)
    );
    // The one start uses it up.
    client.reset(ResetType::On).await.expect("on");
    assert_eq!(machine.state().last_boot, Some(BootDevice::Pxe));
    assert_eq!(client.boot_override().await.expect("boot").enabled, Some(BootEnabled::Disabled));

    // Hdd continuous.
    client
        .set_boot_override(BootSource::Hdd, BootEnabled::Continuous, Some(BootMode::Legacy))
        .await
        .expect("hdd continuous");
    let boot = client.boot_override().await.expect("boot");
    assert_eq!(boot.target, Some(BootSource::Hdd));
    assert_eq!(boot.enabled, Some(BootEnabled::Continuous));
    assert_eq!(boot.mode, Some(BootMode::Legacy));
    assert_eq!(
        machine.boot_device().await.expect("machine boot"),
        BootSetting::new(BootDevice::Disk, true, false)
    );
    client.reset(ResetType::ForceRestart).await.expect("restart");
    assert_eq!(machine.state().last_boot, Some(BootDevice::Disk));
    assert_eq!(client.boot_override().await.expect("boot").target, Some(BootSource::Hdd));

    // A target the system does not list is refused by the client.
    let error =
        client.set_boot_override(BootSource::Usb, BootEnabled::Once, None).await.expect_err("usb");
    assert!(matches!(error, RedfishError::Unsupported(_)), "{error}");
}

#[tokio::test]
async fn wrong_password_is_an_auth_error() {
    let (machine, server) = serve("node-1").await;
    for auth in [AuthType::Auto, AuthType::Basic] {
        let client = client(&server, "not-the-password", auth);
        let error = client.power_state().await.expect_err("wrong password");
        assert!(matches!(error, RedfishError::Auth { status: 401, .. }), "{auth:?}: {error:?}");
        assert!(!error.to_string().contains("not-the-password"), "{error}");
        let error = client.reset(ResetType::On).await.expect_err("wrong password");
        assert!(matches!(error, RedfishError::Auth { .. }), "{error:?}");
    }
    assert_eq!(machine.counters().power_ons, 0);

    // Without credentials: 401 with a basic challenge.
    let http = reqwest::Client::new();
    let response =
        http.get(format!("{}/redfish/v1/Systems", server.url())).send().await.expect("request");
    assert_eq!(response.status().as_u16(), 401);
    let challenge = response.headers().get("www-authenticate").expect("challenge");
    assert!(challenge.to_str().expect("text").starts_with("Basic"), "{challenge:?}");
    // The service root needs none.
    let response = http.get(format!("{}/redfish/v1", server.url())).send().await.expect("root");
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn if_match_mismatch_is_412() {
    let (machine, server) = serve("node-2").await;
    let client = client(&server, PASSWORD, AuthType::Basic);
    let (_, etag) = client.system().await.expect("system");
    let etag = etag.expect("etag");
    let path = format!("{}/redfish/v1/Systems/node-2", server.url());
    let http = reqwest::Client::new();
    let patch = |if_match: String| {
        http.patch(&path)
            .basic_auth(USER, Some(PASSWORD))
            .header("If-Match", if_match)
            .json(&serde_json::json!({"Boot": {"BootSourceOverrideTarget": "Pxe"}}))
            .send()
    };

    // The machine changes behind the client's back: its ETag is stale.
    machine.power_on().await.expect("on");
    let response = patch(etag.clone()).await.expect("patch");
    assert_eq!(response.status().as_u16(), 412);
    let body = response.bytes().await.expect("body");
    let message = ferric_redfish::error::error_message(&body).expect("message");
    assert!(message.contains("ETag"), "{message}");
    let value: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        value["error"]["@Message.ExtendedInfo"][0]["MessageId"],
        "Base.1.8.PreconditionFailed"
    );
    assert_eq!(machine.boot_device().await.expect("boot").device, BootDevice::None);

    // With the fresh ETag it applies (and the client's own retry works).
    let (_, fresh) = client.system().await.expect("system");
    let fresh = fresh.expect("etag");
    assert_ne!(fresh, etag);
    let response = patch(fresh).await.expect("patch");
    assert_eq!(response.status().as_u16(), 204);
    assert_eq!(machine.boot_device().await.expect("boot").device, BootDevice::Pxe);

    // Bad bodies are 400s in Redfish's format.
    let response = http
        .post(format!("{path}/Actions/ComputerSystem.Reset"))
        .basic_auth(USER, Some(PASSWORD))
        .json(&serde_json::json!({"ResetType": "Nmi"}))
        .send()
        .await
        .expect("reset");
    assert_eq!(response.status().as_u16(), 400);
    let body = response.bytes().await.expect("body");
    assert!(ferric_redfish::error::error_message(&body).expect("message").contains("Nmi"));
    // An unknown system is a 404.
    let response = http
        .get(format!("{}/redfish/v1/Systems/other", server.url()))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status().as_u16(), 404);
}

#[tokio::test]
async fn the_fleet_serves_redfish_when_configured() {
    let config = ferric_vbmc::Config::parse(&format!(
        "[[machines]]\nname = \"a\"\nipmi_port = 0\nredfish_port = 0\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\nsimulated = true\n\n\
         [[machines]]\nname = \"b\"\nipmi_port = 0\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\nsimulated = true\n"
    ))
    .expect("config");
    let fleet = ferric_vbmc::start(&config).await.expect("fleet");
    assert!(fleet.get("b").expect("b").redfish.is_none());
    let vbmc = fleet.get("a").expect("a");
    let server = vbmc.redfish.as_ref().expect("redfish");
    assert!(server.local_addr().ip().is_loopback());
    let client = client(server, PASSWORD, AuthType::Auto);
    client.reset(ResetType::On).await.expect("on");
    assert!(vbmc.machine.power_state().await.expect("power").is_on());
}

//! A fleet from a TOML configuration: every machine gets its own BMC, and
//! `run` stops serving when its shutdown future completes.

use ferric_ipmi::{ChassisControl, Client};
use ferric_vbmc::{Config, PowerState};

const CONFIG: &str = r#"
[[machines]]
name = "a"
ipmi_port = 0
username = "admin"
password = "secret"
simulated = true

[[machines]]
name = "b"
ipmi_port = 0
username = "other"
password = "secret2"
cipher_suites = [17]
simulated = true
"#;

#[tokio::test]
async fn fleet_from_toml() {
    let config = Config::parse(CONFIG).expect("config");
    let fleet = ferric_vbmc::start(&config).await.expect("start");
    for (name, user, password) in [("a", "admin", "secret"), ("b", "other", "secret2")] {
        let vbmc = fleet.get(name).expect("machine");
        let port = vbmc.ipmi.local_addr().port();
        let client = Client::new(ferric_ipmi::Config::new("127.0.0.1", port, user, password))
            .expect("client");
        client.chassis_control(ChassisControl::PowerUp).await.expect("power on");
        assert_eq!(vbmc.machine.power_state().await.expect("state"), PowerState::On);
    }
    let b = fleet.get("b").expect("b").ipmi.local_addr().port();
    let mut suite3 = ferric_ipmi::Config::new("127.0.0.1", b, "other", "secret2");
    suite3.cipher_suite = Some(3);
    suite3.timeout = std::time::Duration::from_secs(1);
    assert!(Client::new(suite3).expect("client").power_is_on().await.is_err());
}

#[tokio::test]
async fn run_stops_on_shutdown() {
    let config = Config::parse(CONFIG).expect("config");
    ferric_vbmc::run(config, async {}).await.expect("run");
}

//! The `ipmi` hardware type end to end: `ferric vbmc` (a simulated machine
//! behind a real IPMI lanplus server) driven by `ferric serve` through the
//! API and the CLI — enrol, manage (credentials checked), power, boot device,
//! and a wrong password reported clearly without echoing it.

#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // Both kinds of port free; good enough for a test on loopback.
    let port = tcp.local_addr().unwrap().port();
    drop(socket);
    port
}

fn ferric(url: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ferric"))
        .arg("--url")
        .arg(url)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn ipmi_nodes_are_driven_through_ferric_vbmc() {
    let dir = std::env::temp_dir().join(format!("ferric-ipmi-vbmc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bmc_port = free_port();
    std::fs::write(
        dir.join("vbmc.toml"),
        format!(
            "[[machines]]\nname = \"rack1-node1\"\nipmi_port = {bmc_port}\nusername = \"admin\"\n\
             password = \"s3cret-pass\"\nsimulated = true\n"
        ),
    )
    .unwrap();
    let _vbmc = Process(
        Command::new(env!("CARGO_BIN_EXE_ferric"))
            .args(["vbmc", "--config"])
            .arg(dir.join("vbmc.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let api_port = free_port();
    let url = format!("http://127.0.0.1:{api_port}");
    let _server = Process(
        Command::new(env!("CARGO_BIN_EXE_ferric"))
            .args(["serve", "--listen", &format!("127.0.0.1:{api_port}"), "--data-dir"])
            .arg(dir.join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    while !ferric(&url, &["driver", "list"]).0 {
        assert!(started.elapsed() < Duration::from_secs(30), "ferric serve did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let port_text = bmc_port.to_string();
    let (ok, text) = ferric(
        &url,
        &[
            "node",
            "create",
            "--driver",
            "ipmi",
            "--name",
            "n1",
            "--driver-info",
            "ipmi_address=127.0.0.1",
            "--driver-info",
            &format!("ipmi_port={port_text}"),
            "--driver-info",
            "ipmi_username=admin",
            "--driver-info",
            "ipmi_password=s3cret-pass",
        ],
    );
    assert!(ok, "{text}");
    assert!(!text.contains("s3cret-pass"), "the password was echoed: {text}");
    let (ok, text) =
        ferric(&url, &["node", "validate", "n1", "-f", "value", "-c", "interface", "-c", "result"]);
    assert!(ok && text.contains("power True") && text.contains("management True"), "{text}");
    // Network boot (ipxe) needs the deploy ramdisk images.
    assert!(text.contains("boot False"), "{text}");
    assert!(
        ferric(
            &url,
            &[
                "node",
                "set",
                "n1",
                "--driver-info",
                "deploy_kernel=agent/vmlinuz",
                "--driver-info",
                "deploy_ramdisk=agent/initrd"
            ]
        )
        .0
    );
    let (ok, text) =
        ferric(&url, &["node", "validate", "n1", "-f", "value", "-c", "interface", "-c", "result"]);
    assert!(ok && text.contains("boot True"), "{text}");
    let (ok, text) = ferric(&url, &["node", "manage", "n1", "--wait", "60"]);
    assert!(ok, "{text}");
    let show = |field: &str| {
        ferric(&url, &["node", "show", "n1", "-f", "value", "-c", field]).1.trim().to_owned()
    };
    assert_eq!(show("power_state"), "power off");
    assert!(ferric(&url, &["node", "power", "on", "n1", "--wait", "60"]).0);
    assert_eq!(show("power_state"), "power on");
    assert!(ferric(&url, &["node", "boot-device", "set", "n1", "pxe"]).0);
    let (ok, text) =
        ferric(&url, &["node", "boot-device", "show", "n1", "-f", "value", "-c", "boot_device"]);
    assert!(ok && text.trim() == "pxe", "{text}");
    assert!(ferric(&url, &["node", "power", "reboot", "n1", "--wait", "60"]).0);
    assert!(ferric(&url, &["node", "power", "off", "n1", "--wait", "60"]).0);
    assert_eq!(show("power_state"), "power off");

    // A wrong password: a clear error, the password never shown, the
    // last known power state kept.
    assert!(ferric(&url, &["node", "set", "n1", "--driver-info", "ipmi_password=wrong-pass"]).0);
    let (ok, text) = ferric(&url, &["node", "power", "on", "n1", "--wait", "60"]);
    assert!(!ok, "{text}");
    let error = show("last_error");
    assert!(error.contains("authentication failed"), "{error}");
    assert!(!error.contains("wrong-pass") && !error.contains("s3cret"), "{error}");
    assert_eq!(show("power_state"), "power off");
    let _ = std::fs::remove_dir_all(&dir);
}

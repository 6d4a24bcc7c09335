//! DHCP leases survive a restart of `ferric serve`: two enrolled ports get
//! `.100` and `.101` from the range, the server restarts on the same data
//! directory, the second client's INIT-REBOOT request is acknowledged with
//! `.101` again and a third port gets `.102`. Runs in network namespaces
//! (198.18.9.0/24) it creates and removes; needs root, `ip` and `dhclient`,
//! skips elsewhere with a reason and fails under `CI=true`.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{sh, skip};

const TEST: &str = "the DHCP restart test";
const MACS: [&str; 3] = ["52:54:00:09:00:01", "52:54:00:09:00:02", "52:54:00:09:00:03"];

/// Removes the namespaces (and everything running in them) and the scratch
/// directory on drop.
struct Lab {
    server: String,
    client: String,
    dir: std::path::PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for namespace in [&self.server, &self.client] {
            let _ = sh(&format!(
                "ip netns pids {namespace} | xargs -r kill -9; ip netns del {namespace}"
            ));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn serve(lab: &Lab) -> Child {
    Command::new("ip")
        .args(["netns", "exec", &lab.server, env!("CARGO_BIN_EXE_ferric"), "serve", "--config"])
        .arg(lab.dir.join("ferric.toml"))
        .arg("--data-dir")
        .arg(&lab.dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn cli(lab: &Lab, args: &str) -> (bool, String) {
    sh(&format!(
        "ip netns exec {} {} --url http://127.0.0.1:6385 {args}",
        lab.server,
        env!("CARGO_BIN_EXE_ferric")
    ))
}

fn wait_for_api(lab: &Lab) {
    let started = Instant::now();
    while !cli(lab, "driver list").0 {
        assert!(started.elapsed() < Duration::from_secs(30), "ferric serve did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One dhclient run on client interface `index` (its lease file kept, so a
/// second run starts with INIT-REBOOT); its log.
fn dhclient(lab: &Lab, index: usize) -> String {
    let file = |name: &str| lab.dir.join(format!("{name}{index}"));
    let (_, text) = sh(&format!(
        "ip netns exec {c} timeout 30 dhclient -1 -v -sf /bin/true -lf {lease} -pf {pid} c{index}",
        c = lab.client,
        lease = file("lease").display(),
        pid = file("pid").display(),
    ));
    // dhclient stays in the background after a lease: stop it (no RELEASE).
    let _ = sh(&format!("kill $(cat {}) 2>/dev/null", file("pid").display()));
    text
}

fn write_config(dir: &Path) {
    std::fs::write(
        dir.join("ferric.toml"),
        "[api]\nlisten = \"127.0.0.1:6385\"\n[boot]\ninterface = \"br0\"\n\
         router_advertisements = false\n[boot.dhcp]\nserver_ip = \"198.18.9.1\"\n\
         subnet = \"198.18.9.0/24\"\nrange = [\"198.18.9.100\", \"198.18.9.120\"]\n",
    )
    .unwrap();
}

#[test]
fn dhcp_leases_survive_a_restart() {
    if sh("id -u").1.trim() != "0" {
        return skip(TEST, "not root");
    }
    for tool in ["ip", "dhclient"] {
        if !sh(&format!("command -v {tool}")).0 {
            return skip(TEST, &format!("{tool} is not installed"));
        }
    }
    let tag = format!("{:06x}", std::process::id() & 0xff_ffff);
    let lab = Lab {
        server: format!("fds{tag}"),
        client: format!("fdc{tag}"),
        dir: std::env::temp_dir().join(format!("ferric-dhcp-restart-{tag}")),
    };
    // The server's bridge br0 (198.18.9.1) with one veth per client MAC.
    let mut setup = format!(
        "set -e; ip netns add {s}; ip netns add {c}; ip -n {s} link set lo up; \
         ip -n {s} link add br0 type bridge; ip -n {s} addr add 198.18.9.1/24 dev br0; \
         ip -n {s} link set br0 up; ",
        s = lab.server,
        c = lab.client
    );
    for (index, mac) in MACS.iter().enumerate() {
        setup.push_str(&format!(
            "ip link add s{index}{tag} type veth peer name c{index}{tag}; \
             ip link set s{index}{tag} netns {s}; ip link set c{index}{tag} netns {c}; \
             ip -n {s} link set s{index}{tag} name s{index}; ip -n {s} link set s{index} master br0 up; \
             ip -n {c} link set c{index}{tag} name c{index}; ip -n {c} link set c{index} address {mac} up; ",
            s = lab.server,
            c = lab.client
        ));
    }
    let (ok, text) = sh(&setup);
    if !ok {
        return skip(TEST, &format!("cannot create network namespaces: {text}"));
    }
    std::fs::create_dir_all(&lab.dir).unwrap();
    write_config(&lab.dir);

    let mut server = serve(&lab);
    wait_for_api(&lab);
    let created = cli(&lab, "node create --driver fake-hardware --name dhcp-1");
    assert!(created.0, "{}", created.1);
    for mac in MACS {
        let port = cli(&lab, &format!("port create {mac} --node dhcp-1"));
        assert!(port.0, "{}", port.1);
    }
    // The DHCP server reads ports every 2 s.
    std::thread::sleep(Duration::from_millis(2500));
    for (index, last) in [(0, 100), (1, 101)] {
        let text = dhclient(&lab, index);
        assert!(text.contains(&format!("DHCPACK of 198.18.9.{last} from 198.18.9.1")), "{text}");
    }

    // Restart on the same data directory (SQLite).
    let (ok, text) = sh(&format!("kill -TERM {}", server.id()));
    assert!(ok, "{text}");
    assert!(server.wait().unwrap().success(), "ferric serve did not stop cleanly");
    server = serve(&lab);
    wait_for_api(&lab);

    // INIT-REBOOT: a server that forgot the lease stays silent (RFC 2131
    // §4.3.2) and the client falls back to DISCOVER; the third port would
    // then get .100.
    let text = dhclient(&lab, 1);
    assert!(text.contains("DHCPACK of 198.18.9.101 from 198.18.9.1"), "{text}");
    assert!(!text.contains("DHCPDISCOVER"), "the remembered lease was not acknowledged: {text}");
    let text = dhclient(&lab, 2);
    assert!(text.contains("DHCPACK of 198.18.9.102 from 198.18.9.1"), "{text}");

    let _ = sh(&format!("kill -TERM {}", server.id()));
    let _ = server.wait();
}

//! The agent's network bring-up for real, in network namespaces this test
//! creates (`fa-srv-<pid>-<n>` and `fa-cli-<pid>-<n>`, a veth pair between
//! them, 198.18.5.0/24 only): against dnsmasq, and against ferric's own
//! DHCP server in authoritative mode.
//!
//! The agent code runs inside the client namespace by re-running this test
//! binary there (`ip netns exec NS <this binary> --exact probe_helper`, the
//! job in env `FERRIC_AGENT_PROBE`): `ip netns exec` also mounts the
//! namespace's own `/sys`, so `list_interfaces` sees the namespace's links,
//! which a `setns` on a thread would not give. ferric's DHCP server runs the
//! same way in the server namespace (`server_helper`).
//!
//! Needs root, `ip` and dnsmasq (Debian `iproute2 dnsmasq-base`); without
//! them each test prints why it is skipped, unless `CI=true`, where it
//! fails. No DHCP server ever runs outside a namespace the test created;
//! namespaces and their processes are removed by a drop guard.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferric_agent::net::{self, Lease, MacAddr, Nic};

const SERVER_IP: &str = "198.18.5.1";

fn skip_or_fail(reason: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{reason}");
    }
    eprintln!("skipped: {reason}");
    false
}

fn works(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Root, `ip netns` and `programs`; else skip (fail under CI).
fn ready(programs: &[(&str, &[&str])]) -> bool {
    if !rustix::process::geteuid().is_root() {
        return skip_or_fail("needs root (network namespaces)");
    }
    if !works("ip", &["netns", "list"]) {
        return skip_or_fail("`ip netns` does not work here (apt-get install -y iproute2)");
    }
    for (program, probe) in programs {
        if !works(program, probe) {
            return skip_or_fail(&format!(
                "`{program}` is not installed (apt-get install -y dnsmasq-base)"
            ));
        }
    }
    true
}

fn run(program: &str, args: &[&str]) -> Output {
    let output = Command::new(program).args(args).stdin(Stdio::null()).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Server and client namespaces joined by a veth pair; everything in them
/// is killed and both are deleted on drop.
struct Netns {
    server: String,
    client: String,
    server_if: String,
    client_if: String,
}

impl Netns {
    fn create(client_mac: &str) -> Netns {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = format!("{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let short = id.replace('-', "");
        let ns = Netns {
            server: format!("fa-srv-{id}"),
            client: format!("fa-cli-{id}"),
            server_if: format!("fas{short}"),
            client_if: format!("fac{short}"),
        };
        run("ip", &["netns", "add", &ns.server]);
        run("ip", &["netns", "add", &ns.client]);
        run(
            "ip",
            &[
                "link",
                "add",
                "name",
                &ns.server_if,
                "netns",
                &ns.server,
                "type",
                "veth",
                "peer",
                "name",
                &ns.client_if,
                "netns",
                &ns.client,
            ],
        );
        run("ip", &["-n", &ns.server, "link", "set", "lo", "up"]);
        run("ip", &["-n", &ns.server, "link", "set", &ns.server_if, "up"]);
        run(
            "ip",
            &["-n", &ns.server, "addr", "add", &format!("{SERVER_IP}/24"), "dev", &ns.server_if],
        );
        // The client side stays down: the agent sets it up.
        run("ip", &["-n", &ns.client, "link", "set", &ns.client_if, "address", client_mac]);
        ns
    }

    /// A process in the server namespace, stdout piped, stderr to `log`.
    fn spawn_server(
        &self,
        program: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
        log: &Path,
    ) -> Proc {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.server])
            .arg(program)
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        Proc(child)
    }

    /// Runs the agent probe in the client namespace.
    fn probe(&self, job: &str) -> (Option<Probed>, String) {
        let output = Command::new("ip")
            .args(["netns", "exec", &self.client])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", "probe_helper", "--nocapture", "--test-threads=1"])
            .env("FERRIC_AGENT_PROBE", job)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = format!("{}{}", stdout(&output), String::from_utf8_lossy(&output.stderr));
        let probed = text
            .lines()
            .find_map(|l| l.find("PROBED ").map(|at| &l[at + 7..]))
            .map(|json| serde_json::from_str(json).unwrap());
        (probed, text)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for namespace in [&self.client, &self.server] {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", namespace]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", namespace]).status();
        }
    }
}

/// A child killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the probe reports.
#[derive(Debug, serde::Deserialize)]
struct Probed {
    /// `bring_up_network`'s result: `(nic, lease)` pairs, or the error text.
    configured: Result<Vec<(ProbedNic, ProbedLease)>, String>,
    /// Time `bring_up_network` took.
    bring_up_ms: u64,
    /// A second, bare `dhcp_discover` on the same interface, when asked.
    rediscover_ms: Option<u64>,
    /// The resolv.conf written from the leases.
    resolv_conf: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct ProbedNic {
    name: String,
    mac: String,
    has_carrier: bool,
}

#[derive(Debug, serde::Deserialize)]
struct ProbedLease {
    address: Ipv4Addr,
    prefix_len: u8,
    router: Option<Ipv4Addr>,
    dns: Vec<Ipv4Addr>,
    server_id: Ipv4Addr,
    lease_time: Option<u32>,
}

fn wait_for_port_67(ns: &Netns) {
    let started = Instant::now();
    while !stdout(&run("ip", &["netns", "exec", &ns.server, "ss", "-Hlnu", "sport = :67"]))
        .contains(":67")
    {
        assert!(started.elapsed() < Duration::from_secs(10), "no DHCP server listening on 67");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start_dnsmasq(ns: &Netns, dir: &Path) -> Proc {
    let args = [
        "--no-daemon".to_owned(),
        "--conf-file=/dev/null".to_owned(),
        format!("--interface={}", ns.server_if),
        "--bind-interfaces".to_owned(),
        "--dhcp-range=198.18.5.100,198.18.5.150,255.255.255.0,1h".to_owned(),
        "--dhcp-option=3,198.18.5.1".to_owned(),
        "--dhcp-option=6,198.18.5.53".to_owned(),
        format!("--dhcp-leasefile={}", dir.join("dnsmasq.leases").display()),
        "--no-ping".to_owned(),
        "--port=0".to_owned(),
        "--pid-file=".to_owned(),
        "--log-dhcp".to_owned(),
        "--log-facility=-".to_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let proc = ns.spawn_server(Path::new("dnsmasq"), &args, &[], &dir.join("dnsmasq.log"));
    wait_for_port_67(ns);
    proc
}

/// Asserts the client namespace has `address/24` on its veth and a default
/// route via the server.
fn assert_configured(ns: &Netns, lease: &ProbedLease) {
    let addr = stdout(&run("ip", &["-n", &ns.client, "-4", "addr", "show", "dev", &ns.client_if]));
    assert!(addr.contains(&format!("inet {}/24", lease.address)), "{addr}");
    let routes = stdout(&run("ip", &["-n", &ns.client, "-4", "route", "show", "default"]));
    assert!(routes.contains(&format!("default via {SERVER_IP} dev {}", ns.client_if)), "{routes}");
    // The kernel now routes to the server from the leased address.
    let get = stdout(&run("ip", &["-n", &ns.client, "-4", "route", "get", SERVER_IP]));
    assert!(get.contains(&format!("src {}", lease.address)), "{get}");
}

#[test]
fn bring_up_network_against_dnsmasq() {
    if !ready(&[("dnsmasq", &["--version"])]) {
        return;
    }
    let mac = "02:00:5e:fa:00:01";
    let ns = Netns::create(mac);
    let dir = tempfile::tempdir().unwrap();
    let _dnsmasq = start_dnsmasq(&ns, dir.path());
    let resolv = dir.path().join("resolv.conf");
    let (probed, text) = ns.probe(&format!("bootif,{mac},{},10,rediscover", resolv.display()));
    let log = std::fs::read_to_string(dir.path().join("dnsmasq.log")).unwrap_or_default();
    let context = format!("probe:\n{text}\ndnsmasq:\n{log}");
    let probed = probed.unwrap_or_else(|| panic!("probe printed nothing\n{context}"));
    let configured = probed.configured.as_ref().unwrap_or_else(|e| panic!("{e}\n{context}"));
    assert_eq!(configured.len(), 1, "{context}");
    let (nic, lease) = &configured[0];
    assert_eq!(
        (nic.name.as_str(), nic.mac.as_str(), nic.has_carrier),
        (ns.client_if.as_str(), mac, true)
    );
    let octets = lease.address.octets();
    assert!(octets[..3] == [198, 18, 5] && (100..=150).contains(&octets[3]), "{lease:?}");
    assert_eq!(lease.prefix_len, 24);
    assert_eq!(lease.router, Some(SERVER_IP.parse().unwrap()));
    assert_eq!(lease.dns, [Ipv4Addr::new(198, 18, 5, 53)]);
    assert_eq!(lease.server_id, SERVER_IP.parse::<Ipv4Addr>().unwrap());
    assert_eq!(lease.lease_time, Some(3600));
    assert_configured(&ns, lease);
    assert_eq!(
        probed.resolv_conf.as_deref().map(|r| r.contains("nameserver 198.18.5.53\n")),
        Some(true)
    );
    // dnsmasq saw our identity.
    assert!(log.contains("vendor class: ferric-agent"), "{context}");
    eprintln!(
        "dnsmasq: bring_up_network {} ms (link up, carrier, DISCOVER..ACK, configure); \
         second DISCOVER..ACK {} ms",
        probed.bring_up_ms,
        probed.rediscover_ms.unwrap_or_default()
    );
    assert!(probed.bring_up_ms < 3000, "bring-up took {} ms\n{context}", probed.bring_up_ms);
}

#[test]
fn bring_up_network_against_ferric_dhcp_authoritative() {
    if !ready(&[]) {
        return;
    }
    let mac = "02:00:5e:fa:00:02";
    let ns = Netns::create(mac);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("ferric-dhcp.log");
    let mut server = ns.spawn_server(
        &std::env::current_exe().unwrap(),
        &["--exact", "server_helper", "--nocapture", "--test-threads=1"],
        &[("FERRIC_AGENT_DHCP_SERVER", &format!("{},{mac}", ns.server_if))],
        &log,
    );
    let mut lines = BufReader::new(server.0.stdout.take().unwrap()).lines();
    let started = Instant::now();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("SERVER-READY") => break,
            Some(Ok(_)) => {}
            _ => panic!(
                "server did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        }
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    let resolv = dir.path().join("resolv.conf");
    // No BOOTIF: every interface with carrier (here the one veth).
    let (probed, text) = ns.probe(&format!("any,{mac},{},10,", resolv.display()));
    let context = format!(
        "probe:\n{text}\nferric-dhcp:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let probed = probed.unwrap_or_else(|| panic!("probe printed nothing\n{context}"));
    let configured = probed.configured.as_ref().unwrap_or_else(|e| panic!("{e}\n{context}"));
    assert_eq!(configured.len(), 1, "{context}");
    let (_, lease) = &configured[0];
    assert_eq!(lease.address, Ipv4Addr::new(198, 18, 5, 120), "reserved address\n{context}");
    assert_eq!((lease.prefix_len, lease.router), (24, Some(SERVER_IP.parse().unwrap())));
    assert_eq!(lease.dns, [Ipv4Addr::new(198, 18, 5, 53)]);
    assert_eq!(lease.lease_time, Some(600));
    assert_configured(&ns, lease);
    eprintln!("ferric-dhcp: bring_up_network {} ms", probed.bring_up_ms);
    assert!(probed.bring_up_ms < 3000, "bring-up took {} ms\n{context}", probed.bring_up_ms);
}

#[test]
fn no_server_times_out_cleanly() {
    if !ready(&[]) {
        return;
    }
    let mac = "02:00:5e:fa:00:03";
    let ns = Netns::create(mac);
    let dir = tempfile::tempdir().unwrap();
    let resolv = dir.path().join("resolv.conf");
    let started = Instant::now();
    let (probed, text) = ns.probe(&format!("bootif,{mac},{},2,", resolv.display()));
    let probed = probed.unwrap_or_else(|| panic!("probe printed nothing\n{text}"));
    let error = probed.configured.expect_err("a lease without a server");
    assert!(error.contains("no interface got a DHCP lease"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
    assert!(probed.bring_up_ms >= 2000 && probed.bring_up_ms < 3500, "{}", probed.bring_up_ms);
    assert!(!resolv.exists());
    let addr = stdout(&run("ip", &["-n", &ns.client, "-4", "addr", "show", "dev", &ns.client_if]));
    assert!(!addr.contains("inet "), "{addr}");
}

/// Not a test on its own: the agent side, run by the tests above inside the
/// client namespace. Env `FERRIC_AGENT_PROBE=MODE,MAC,RESOLV,TIMEOUT_S,EXTRA`
/// (MODE `bootif` passes MAC as BOOTIF, `any` does not; EXTRA `rediscover`
/// times a second bare DHCP exchange). Prints one `PROBED {json}` line.
#[test]
fn probe_helper() {
    let Ok(spec) = std::env::var("FERRIC_AGENT_PROBE") else { return };
    let _ =
        tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter("debug").try_init();
    let parts: Vec<&str> = spec.split(',').collect();
    let [mode, mac, resolv, timeout, extra] = parts[..] else { panic!("bad probe spec {spec}") };
    let mac: MacAddr = mac.parse().unwrap();
    let timeout = Duration::from_secs(timeout.parse().unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let report = runtime.block_on(async {
        let preferred = (mode == "bootif").then_some(mac);
        let started = Instant::now();
        let result = net::bring_up_network(Path::new("/sys"), preferred, timeout).await;
        let bring_up_ms = started.elapsed().as_millis() as u64;
        let mut rediscover_ms = None;
        let mut resolv_conf = None;
        if let Ok(configured) = &result {
            let leases: Vec<Lease> = configured.iter().map(|(_, l)| l.clone()).collect();
            if net::write_resolv_conf(Path::new(resolv), &leases).unwrap() {
                resolv_conf = std::fs::read_to_string(resolv).ok();
            }
            if extra == "rediscover" {
                let nic: &Nic = &configured[0].0;
                let started = Instant::now();
                net::dhcp_discover(&nic.name, nic.mac, timeout).await.unwrap();
                rediscover_ms = Some(started.elapsed().as_millis() as u64);
            }
        }
        serde_json::json!({
            "configured": match result {
                Ok(configured) => serde_json::json!({ "Ok": configured }),
                Err(error) => serde_json::json!({ "Err": error.to_string() }),
            },
            "bring_up_ms": bring_up_ms,
            "rediscover_ms": rediscover_ms,
            "resolv_conf": resolv_conf,
        })
    });
    println!("PROBED {report}");
}

/// Not a test on its own: ferric's DHCP server (authoritative, MAC reserved
/// to 198.18.5.120) in the server namespace. Env
/// `FERRIC_AGENT_DHCP_SERVER=IFACE,MAC`. Prints `SERVER-READY`, serves
/// until killed.
#[test]
fn server_helper() {
    let Ok(spec) = std::env::var("FERRIC_AGENT_DHCP_SERVER") else { return };
    let (iface, mac) = spec.split_once(',').unwrap();
    let mut config = ferric_dhcp::Config::new(
        ferric_dhcp::Mode::Authoritative,
        iface,
        SERVER_IP.parse().unwrap(),
    );
    let mut network = ferric_dhcp::Network::new(Ipv4Addr::new(198, 18, 5, 0), 24);
    network.ranges.push(ferric_dhcp::AddressRange {
        first: Ipv4Addr::new(198, 18, 5, 100),
        last: Ipv4Addr::new(198, 18, 5, 110),
    });
    network.routers.push(SERVER_IP.parse().unwrap());
    network.dns_servers.push(Ipv4Addr::new(198, 18, 5, 53));
    network.lease_time = 600;
    config.networks.push(network);
    let mut backend = ferric_dhcp::MemoryBackend::new();
    backend.insert(
        mac.parse().unwrap(),
        ferric_dhcp::Reservation {
            ip: Some(Ipv4Addr::new(198, 18, 5, 120)),
            ..ferric_dhcp::Reservation::default()
        },
    );
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let server = ferric_dhcp::DhcpServer::bind(
            config,
            Arc::new(backend),
            Arc::new(ferric_dhcp::MemoryLeases::new()),
        )
        .await
        .unwrap();
        println!("SERVER-READY");
        server.serve(std::future::pending::<()>()).await.unwrap();
    });
}

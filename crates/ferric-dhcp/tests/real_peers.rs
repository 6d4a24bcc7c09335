//! Real DHCP clients against `ferric-dhcp-testserver`, each side in its own
//! network namespace joined by a veth pair (addresses from 198.18.0.0/15
//! only): ISC `dhclient`, busybox `udhcpc`, and proxyDHCP next to dnsmasq
//! with a crafted PXE client (this test binary re-run inside the client
//! namespace, see [`probe_helper`]).
//!
//! Needs root, `ip netns` and the clients (Debian packages
//! `isc-dhcp-client busybox dnsmasq`); without them each test prints why it
//! is skipped, unless `CI=true`, where it fails. No server ever runs outside
//! a namespace the test created; namespaces and processes are removed by
//! drop guards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferric_dhcp::packet::{code, FLAG_BROADCAST};
use ferric_dhcp::{MacAddr, Packet};

const SERVER_IP: &str = "198.18.0.1";
const TESTSERVER: &str = env!("CARGO_BIN_EXE_ferric-dhcp-testserver");

fn skip_or_fail(reason: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{reason}");
    }
    eprintln!("skipped: {reason}");
    false
}

fn quiet(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Root, `ip netns` and `programs` available; else skip (fail under CI).
fn ready(programs: &[(&str, &[&str])]) -> bool {
    let uid = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0"))
    });
    if uid != Some(true) {
        return skip_or_fail("needs root (network namespaces)");
    }
    if !quiet("ip", &["netns", "list"]) {
        return skip_or_fail("`ip netns` does not work here");
    }
    for (program, probe) in programs {
        if Command::new(program)
            .args(*probe)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            return skip_or_fail(&format!(
                "`{program}` is not installed (apt-get install -y isc-dhcp-client busybox dnsmasq)"
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

fn suffix() -> String {
    format!("{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// A server namespace and a client namespace joined by a veth pair;
/// everything in them is killed and both are deleted on drop.
struct Netns {
    server: String,
    client: String,
    server_if: String,
    client_if: String,
}

impl Netns {
    fn create(client_mac: &str) -> Netns {
        let s = suffix();
        let ns = Netns {
            server: format!("fdhcp-s-{s}"),
            client: format!("fdhcp-c-{s}"),
            server_if: format!("fds{s}"),
            client_if: format!("fdc{s}"),
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
        for (n, iface) in [(&ns.server, &ns.server_if), (&ns.client, &ns.client_if)] {
            run("ip", &["-n", n, "link", "set", "lo", "up"]);
            run("ip", &["-n", n, "link", "set", iface, "up"]);
        }
        run(
            "ip",
            &["-n", &ns.server, "addr", "add", &format!("{SERVER_IP}/24"), "dev", &ns.server_if],
        );
        run("ip", &["-n", &ns.client, "link", "set", &ns.client_if, "address", client_mac]);
        ns
    }

    /// A process inside `namespace`.
    fn spawn(&self, namespace: &str, program: &str, args: &[&str], stderr: &Path) -> Proc {
        let child = Command::new("ip")
            .args(["netns", "exec", namespace, program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(stderr).unwrap())
            .spawn()
            .unwrap();
        Proc(child)
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

/// Starts ferric's server in the server namespace and waits for `ready`.
fn start_ferric(ns: &Netns, dir: &Path, extra: &[&str]) -> Proc {
    let mut args = vec![
        "--iface",
        &ns.server_if,
        "--server-ip",
        SERVER_IP,
        "--subnet",
        "198.18.0.0/24",
        "--router",
        SERVER_IP,
        "--dns",
        "198.18.0.53",
        "--lease-time",
        "600",
    ];
    args.extend_from_slice(extra);
    let log = dir.join("ferric.log");
    let mut server = ns.spawn(&ns.server, TESTSERVER, &args, &log);
    let mut line = String::new();
    let stdout = server.0.stdout.take().unwrap();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert_eq!(
        line.trim(),
        "ready",
        "server did not start: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    server
}

/// Runs a command in a namespace to completion (killed after `limit`).
fn run_in(namespace: &str, program: &str, args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new("ip")
        .args(["netns", "exec", namespace, program])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn dhclient_gets_reserved_address_and_bios_boot_file() {
    if !ready(&[("dhclient", &["--version"])]) {
        return;
    }
    let mac = "02:00:5e:10:00:01";
    let ns = Netns::create(mac);
    let dir = tempfile::tempdir().unwrap();
    let _server =
        start_ferric(&ns, dir.path(), &["--reserve", &format!("{mac}=198.18.0.10,node-1")]);
    let conf = dir.path().join("dhclient.conf");
    std::fs::write(
        &conf,
        "option pxe-arch code 93 = unsigned integer 16;\n\
         send vendor-class-identifier \"PXEClient:Arch:00000:UNDI:002001\";\n\
         send pxe-arch 0;\n\
         request subnet-mask, routers, domain-name-servers, host-name;\n",
    )
    .unwrap();
    let lease = dir.path().join("dhclient.leases");
    let pid = dir.path().join("dhclient.pid");
    let path = |p: &PathBuf| p.display().to_string();
    let out = run_in(
        &ns.client,
        "dhclient",
        &[
            "-1",
            "-v",
            "-sf",
            "/bin/true",
            "-cf",
            &path(&conf),
            "-lf",
            &path(&lease),
            "-pf",
            &path(&pid),
            &ns.client_if,
        ],
        Duration::from_secs(40),
    );
    let leases = std::fs::read_to_string(&lease).unwrap_or_default();
    let log = std::fs::read_to_string(dir.path().join("ferric.log")).unwrap_or_default();
    assert!(out.status.success(), "dhclient failed:\n{}\nferric:\n{log}", text(&out));
    eprintln!("dhclient:\n{}\nlease file:\n{leases}", text(&out));
    assert!(text(&out).contains("bound to 198.18.0.10"), "{}", text(&out));
    for expected in [
        "fixed-address 198.18.0.10;",
        "filename \"undionly.kpxe\";",
        "option subnet-mask 255.255.255.0;",
        "option routers 198.18.0.1;",
        "option domain-name-servers 198.18.0.53;",
        "option dhcp-server-identifier 198.18.0.1;",
        "option host-name \"node-1\";",
        "option dhcp-lease-time 600;",
    ] {
        assert!(leases.contains(expected), "missing {expected:?} in\n{leases}");
    }
}

fn udhcpc_env(ns: &Netns, dir: &Path, extra: &[&str]) -> (Output, HashMap<String, String>) {
    let script = dir.join("udhcpc.sh");
    let env_file = dir.join("udhcpc.env");
    std::fs::write(
        &script,
        format!("#!/bin/sh\n[ \"$1\" = bound ] && env > {}\nexit 0\n", env_file.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script_arg = script.display().to_string();
    let mut args = vec![
        "udhcpc",
        "-i",
        &ns.client_if,
        "-n",
        "-q",
        "-f",
        "-t",
        "5",
        "-T",
        "1",
        "-s",
        &script_arg,
    ];
    args.extend_from_slice(extra);
    let out = run_in(&ns.client, "busybox", &args, Duration::from_secs(30));
    let env = std::fs::read_to_string(&env_file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    (out, env)
}

#[test]
fn udhcpc_gets_dynamic_address_and_uefi_boot_file() {
    if !ready(&[("busybox", &["true"])]) {
        return;
    }
    let mac = "02:00:5e:10:00:02";
    let ns = Netns::create(mac);
    let dir = tempfile::tempdir().unwrap();
    let _server =
        start_ferric(&ns, dir.path(), &["--range", "198.18.0.100-198.18.0.110", "--reserve", mac]);
    let (out, env) =
        udhcpc_env(&ns, dir.path(), &["-V", "PXEClient:Arch:00007:UNDI:003016", "-x", "0x5d:0007"]);
    let log = std::fs::read_to_string(dir.path().join("ferric.log")).unwrap_or_default();
    assert!(out.status.success(), "udhcpc failed:\n{}\nferric:\n{log}", text(&out));
    eprintln!("udhcpc:\n{}\nenv: {env:?}", text(&out));
    let get = |k: &str| env.get(k).map(String::as_str);
    assert_eq!(get("ip"), Some("198.18.0.100"));
    assert_eq!(get("subnet"), Some("255.255.255.0"));
    assert_eq!(get("router"), Some(SERVER_IP));
    assert_eq!(get("dns"), Some("198.18.0.53"));
    assert_eq!(get("serverid"), Some(SERVER_IP));
    assert_eq!(get("lease"), Some("600"));
    assert_eq!(get("boot_file"), Some("snponly.efi"));
    assert_eq!(get("siaddr"), Some(SERVER_IP));
}

#[test]
fn udhcpc_as_ipxe_gets_script_url_and_unknown_mac_gets_nothing() {
    if !ready(&[("busybox", &["true"])]) {
        return;
    }
    let mac = "02:00:5e:10:00:03";
    let ns = Netns::create(mac);
    let dir = tempfile::tempdir().unwrap();
    let _server =
        start_ferric(&ns, dir.path(), &["--range", "198.18.0.100-198.18.0.110", "--reserve", mac]);
    // Option 77 "iPXE" in hex.
    let (out, env) = udhcpc_env(
        &ns,
        dir.path(),
        &["-V", "PXEClient:Arch:00007:UNDI:003016", "-x", "0x4d:69505845"],
    );
    assert!(out.status.success(), "udhcpc failed:\n{}", text(&out));
    assert_eq!(
        env.get("boot_file").map(String::as_str),
        Some(format!("http://{SERVER_IP}:8080/boot/{mac}.ipxe").as_str())
    );
    // A MAC ferric does not know: no lease.
    run("ip", &["-n", &ns.client, "link", "set", &ns.client_if, "address", "02:00:5e:10:00:99"]);
    let dir2 = tempfile::tempdir().unwrap();
    let (out, env) = udhcpc_env(&ns, dir2.path(), &["-t", "2"]);
    assert!(!out.status.success() && env.is_empty(), "unknown MAC got a lease: {}", text(&out));
}

/// One reply as the probe prints it.
#[derive(Debug)]
struct Seen {
    from: String,
    kind: u8,
    yiaddr: Ipv4Addr,
    siaddr: Ipv4Addr,
    file: String,
    vendor: String,
}

fn parse_seen(stdout: &str) -> Vec<Seen> {
    stdout
        .lines()
        // The test harness may print "test probe_helper ... " on the same line.
        .filter_map(|l| l.find("SEEN ").map(|at| &l[at + 5..]))
        .map(|l| {
            let f: HashMap<&str, &str> = l.split(' ').filter_map(|kv| kv.split_once('=')).collect();
            Seen {
                from: f["from"].to_owned(),
                kind: f["type"].parse().unwrap(),
                yiaddr: f["yiaddr"].parse().unwrap(),
                siaddr: f["siaddr"].parse().unwrap(),
                file: f["file"].to_owned(),
                vendor: f["vendor"].to_owned(),
            }
        })
        .collect()
}

#[test]
fn proxy_mode_next_to_dnsmasq() {
    if !ready(&[("dnsmasq", &["--version"])]) {
        return;
    }
    let mac = "02:00:5e:10:00:04";
    let ns = Netns::create(mac);
    let dir = tempfile::tempdir().unwrap();
    let leases = dir.path().join("dnsmasq.leases");
    let dnsmasq_args = [
        "--keep-in-foreground".to_owned(),
        "--port=0".to_owned(),
        "--no-resolv".to_owned(),
        "--no-hosts".to_owned(),
        "--no-ping".to_owned(),
        "--bind-interfaces".to_owned(),
        format!("--interface={}", ns.server_if),
        "--except-interface=lo".to_owned(),
        "--dhcp-range=198.18.0.50,198.18.0.99,255.255.255.0,10m".to_owned(),
        format!("--dhcp-leasefile={}", leases.display()),
        format!("--pid-file={}", dir.path().join("dnsmasq.pid").display()),
        "--log-dhcp".to_owned(),
        "--log-facility=-".to_owned(),
    ];
    let dnsmasq_args: Vec<&str> = dnsmasq_args.iter().map(String::as_str).collect();
    let _dnsmasq = ns.spawn(&ns.server, "dnsmasq", &dnsmasq_args, &dir.path().join("dnsmasq.log"));
    // Ready when dnsmasq listens on 67.
    let started = Instant::now();
    while !String::from_utf8_lossy(
        &run("ip", &["netns", "exec", &ns.server, "ss", "-Hlnu", "sport = :67"]).stdout,
    )
    .contains(":67")
    {
        assert!(started.elapsed() < Duration::from_secs(10), "dnsmasq did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ferric = start_ferric(&ns, dir.path(), &["--mode", "proxy", "--reserve", mac]);

    // DISCOVER as a BIOS PXE ROM: dnsmasq offers an address, ferric the boot file.
    let probe = |job: &str| {
        let output = Command::new("ip")
            .args(["netns", "exec", &ns.client])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", "probe_helper", "--nocapture", "--test-threads=1"])
            .env("FERRIC_DHCP_PROBE", format!("{job},{},{mac}", ns.client_if))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        (parse_seen(&stdout), text(&output))
    };
    let (seen, raw) = probe("discover");
    let ferric_log = std::fs::read_to_string(dir.path().join("ferric.log")).unwrap_or_default();
    let dnsmasq_log = std::fs::read_to_string(dir.path().join("dnsmasq.log")).unwrap_or_default();
    let context = format!("probe:\n{raw}\nferric:\n{ferric_log}\ndnsmasq:\n{dnsmasq_log}");
    let dnsmasq_offer = seen.iter().find(|s| s.kind == 2 && !s.yiaddr.is_unspecified());
    let ferric_offer = seen.iter().find(|s| s.kind == 2 && s.yiaddr.is_unspecified());
    let dnsmasq_offer = dnsmasq_offer.unwrap_or_else(|| panic!("no offer from dnsmasq\n{context}"));
    let ferric_offer =
        ferric_offer.unwrap_or_else(|| panic!("no proxy offer from ferric\n{context}"));
    let octets = dnsmasq_offer.yiaddr.octets();
    assert!(octets[..3] == [198, 18, 0] && (50..=99).contains(&octets[3]), "{dnsmasq_offer:?}");
    assert_eq!(ferric_offer.file, "undionly.kpxe", "{context}");
    assert_eq!(ferric_offer.siaddr.to_string(), SERVER_IP);
    assert_eq!(ferric_offer.vendor, "PXEClient");
    assert!(dnsmasq_offer.file.is_empty(), "dnsmasq should not have sent a boot file");

    // With the address (configured statically here), the PXE REQUEST to port 4011.
    run("ip", &["-n", &ns.client, "addr", "add", "198.18.0.60/24", "dev", &ns.client_if]);
    let (seen, raw) = probe("proxy-request");
    let ack = seen.iter().find(|s| s.kind == 5).unwrap_or_else(|| panic!("no ACK on 4011\n{raw}"));
    assert_eq!(ack.from, format!("{SERVER_IP}:4011"));
    assert_eq!(ack.file, "undionly.kpxe");
    assert!(ack.yiaddr.is_unspecified());
}

/// Not a test on its own: the PXE client that [`proxy_mode_next_to_dnsmasq`]
/// runs inside the client namespace (env `FERRIC_DHCP_PROBE=JOB,IFACE,MAC`).
/// Prints one `SEEN ...` line per reply received within 3 s.
#[test]
fn probe_helper() {
    let Ok(spec) = std::env::var("FERRIC_DHCP_PROBE") else { return };
    let mut parts = spec.split(',');
    let (job, iface, mac) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    socket.bind_device(Some(iface.as_bytes())).unwrap();
    socket.set_broadcast(true).unwrap();
    socket.set_reuse_address(true).unwrap();
    socket.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 68)).into()).unwrap();
    let socket: UdpSocket = socket.into();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut request = Packet { xid: rand::random(), flags: FLAG_BROADCAST, ..Packet::default() };
    request.set_mac(mac.parse::<MacAddr>().unwrap());
    request.set_option(code::VENDOR_CLASS, "PXEClient:Arch:00000:UNDI:002001");
    request.set_option(code::CLIENT_ARCH, [0, 0]);
    request.set_option(code::CLIENT_NDI, [1, 2, 1]);
    request.set_option(code::CLIENT_UUID, [0u8; 17]);
    request.set_option(code::PARAMETER_REQUEST_LIST, [1, 3, 6, 43, 60, 66, 67, 97]);
    let target = match job {
        "discover" => {
            request.set_option(code::MESSAGE_TYPE, [1]);
            SocketAddr::from((Ipv4Addr::BROADCAST, 67))
        }
        _ => {
            request.flags = 0;
            request.ciaddr = Ipv4Addr::new(198, 18, 0, 60);
            request.set_option(code::MESSAGE_TYPE, [3]);
            SocketAddr::from((Ipv4Addr::new(198, 18, 0, 1), 4011))
        }
    };
    socket.send_to(&request.encode(), target).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline {
        let Ok((len, from)) = socket.recv_from(&mut buf) else { continue };
        let Ok(reply) = Packet::decode(&buf[..len]) else { continue };
        if reply.xid != request.xid || reply.op != 2 {
            continue;
        }
        println!(
            "SEEN from={from} type={} yiaddr={} siaddr={} file={} vendor={}",
            reply.message_type().map(u8::from).unwrap_or(0),
            reply.yiaddr,
            reply.siaddr,
            String::from_utf8_lossy(&reply.file),
            String::from_utf8_lossy(reply.option(code::VENDOR_CLASS).unwrap_or_default()),
        );
    }
}

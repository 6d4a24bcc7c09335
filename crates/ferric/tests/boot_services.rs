//! `ferric serve` with its boot services in a network namespace: a port
//! enrolled through the API gets a DHCP lease (dhclient), its iPXE script
//! over HTTP (curl) and the iPXE binary over TFTP (tftp-hpa) — the path a
//! machine's firmware takes. Needs root and `ip netns`; skips elsewhere
//! with a reason, fails under `CI=true`.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn sh(command: &str) -> (bool, String) {
    let output = Command::new("sh").arg("-c").arg(command).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn skip(reason: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("cannot run the boot services test under CI: {reason}");
    }
    eprintln!("skipping the boot services test: {reason}");
}

/// Removes the namespaces (and everything running in them) on drop.
struct Namespaces {
    server: String,
    client: String,
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for namespace in [&self.server, &self.client] {
            let _ = sh(&format!(
                "ip netns pids {namespace} | xargs -r kill -9; ip netns del {namespace}"
            ));
        }
    }
}

#[test]
fn dhcp_http_and_tftp_from_ferric_serve() {
    let is_root = sh("id -u").1.trim() == "0";
    if !is_root {
        return skip("not root");
    }
    for tool in ["ip", "dhclient", "curl", "tftp"] {
        if !sh(&format!("command -v {tool}")).0 {
            return skip(&format!("{tool} is not installed"));
        }
    }
    let tag = format!("{:x}", std::process::id() ^ (Instant::now().elapsed().subsec_nanos()));
    let tag = &tag[tag.len().saturating_sub(6)..];
    let namespaces = Namespaces { server: format!("fbs{tag}"), client: format!("fbc{tag}") };
    let (server_if, client_if) = (format!("vbs{tag}"), format!("vbc{tag}"));
    let setup = format!(
        "set -e; ip netns add {s}; ip netns add {c}; \
         ip link add {si} type veth peer name {ci}; ip link set {si} netns {s}; ip link set {ci} netns {c}; \
         ip -n {s} addr add 198.18.7.1/24 dev {si}; ip -n {s} link set {si} up; ip -n {s} link set lo up; \
         ip -n {c} link set {ci} address 52:54:00:07:00:01; ip -n {c} link set {ci} up; ip -n {c} link set lo up",
        s = namespaces.server,
        c = namespaces.client,
        si = server_if,
        ci = client_if
    );
    let (ok, text) = sh(&setup);
    if !ok {
        return skip(&format!("cannot create network namespaces: {text}"));
    }
    let data = std::env::temp_dir().join(format!("ferric-boot-test-{tag}"));
    std::fs::create_dir_all(data.join("boot")).unwrap();
    std::fs::write(data.join("boot/undionly.kpxe"), b"not really ipxe\n").unwrap();
    std::fs::write(data.join("boot/ipxe.efi"), b"not really ipxe.efi\n").unwrap();
    std::fs::write(
        data.join("ferric.toml"),
        format!(
            "[api]\nlisten = \"127.0.0.1:6385\"\n[boot]\ninterface = \"{server_if}\"\n\
             http_listen = \"198.18.7.1:8080\"\ntftp_listen = \"198.18.7.1:69\"\n\
             api_url = \"http://198.18.7.1:6385\"\n[boot.dhcp]\nserver_ip = \"198.18.7.1\"\n\
             subnet = \"198.18.7.0/24\"\nrange = [\"198.18.7.100\", \"198.18.7.120\"]\n"
        ),
    )
    .unwrap();
    let binary = env!("CARGO_BIN_EXE_ferric");
    let mut server = Command::new("ip")
        .args(["netns", "exec", &namespaces.server, binary, "serve", "--config"])
        .arg(data.join("ferric.toml"))
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let cli = |args: &str| {
        sh(&format!(
            "ip netns exec {} {binary} --url http://127.0.0.1:6385 {args}",
            namespaces.server
        ))
    };
    let started = Instant::now();
    while !cli("driver list").0 {
        assert!(started.elapsed() < Duration::from_secs(30), "ferric serve did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let created = cli("node create --driver fake-hardware --name pxe-1 --driver-info deploy_kernel=agent/vmlinuz --driver-info deploy_ramdisk=agent/initrd");
    assert!(created.0, "{}", created.1);
    let port = cli("port create 52:54:00:07:00:01 --node pxe-1");
    assert!(port.0, "{}", port.1);
    // The DHCP server reads ports every 2 s.
    std::thread::sleep(Duration::from_millis(2500));

    // dhclient posing as a BIOS PXE client (client architecture 0).
    let conf = data.join("dhclient.conf");
    std::fs::write(
        &conf,
        "option pxe-arch code 93 = unsigned integer 16;\n\
         send vendor-class-identifier \"PXEClient:Arch:00000:UNDI:002001\";\n\
         send pxe-arch 0;\n",
    )
    .unwrap();
    let lease = data.join("client.lease");
    let (ok, text) = sh(&format!(
        "ip netns exec {c} timeout 20 dhclient -1 -v -cf {conf} -sf /bin/true -lf {lease} -pf {pid} {ci}",
        c = namespaces.client,
        conf = conf.display(),
        lease = lease.display(),
        pid = data.join("dhclient.pid").display(),
        ci = client_if
    ));
    let _ = sh(&format!("kill $(cat {}) 2>/dev/null", data.join("dhclient.pid").display()));
    assert!(ok && text.contains("DHCPACK of 198.18.7.100 from 198.18.7.1"), "{text}");
    let lease_text = std::fs::read_to_string(&lease).unwrap();
    assert!(lease_text.contains("filename \"undionly.kpxe\""), "{lease_text}");

    // dhclient posing as a UEFI HTTP boot client (vendor class HTTPClient,
    // architecture 16): the boot file is a URL that must serve iPXE.
    std::fs::write(
        &conf,
        "option pxe-arch code 93 = unsigned integer 16;\n\
         send vendor-class-identifier \"HTTPClient:Arch:00016:UNDI:003001\";\n\
         send pxe-arch 16;\n",
    )
    .unwrap();
    let http_lease = data.join("client-http.lease");
    let (ok, text) = sh(&format!(
        "ip netns exec {c} timeout 20 dhclient -1 -v -cf {conf} -sf /bin/true -lf {lease} -pf {pid} {ci}",
        c = namespaces.client,
        conf = conf.display(),
        lease = http_lease.display(),
        pid = data.join("dhclient.pid").display(),
        ci = client_if
    ));
    let _ = sh(&format!("kill $(cat {}) 2>/dev/null", data.join("dhclient.pid").display()));
    assert!(ok && text.contains("DHCPACK of 198.18.7.100"), "{text}");
    let lease_text = std::fs::read_to_string(&http_lease).unwrap();
    let url = lease_text
        .lines()
        .find_map(|line| line.trim().strip_prefix("filename \""))
        .and_then(|rest| rest.strip_suffix("\";"))
        .unwrap_or_else(|| panic!("no boot file for the HTTP boot client: {lease_text}"))
        .to_owned();
    assert!(url.starts_with("http://198.18.7.1:8080/"), "{lease_text}");

    // Configure the leased address, then fetch what firmware would.
    let (ok, text) =
        sh(&format!("ip -n {} addr add 198.18.7.100/24 dev {client_if}", namespaces.client));
    assert!(ok, "{text}");
    let (ok, script) = sh(&format!(
        "ip netns exec {} curl -s -f http://198.18.7.1:8080/boot/52:54:00:07:00:01.ipxe",
        namespaces.client
    ));
    assert!(ok && script.starts_with("#!ipxe"), "{script}");
    assert!(script.contains("is enroll: nothing to boot"), "{script}");
    let cleaned = cli("node manage pxe-1 --wait");
    assert!(cleaned.0, "{}", cleaned.1);
    let fetched = data.join("fetched.kpxe");
    let (ok, text) = sh(&format!(
        "ip netns exec {} tftp 198.18.7.1 -m binary -c get undionly.kpxe {}",
        namespaces.client,
        fetched.display()
    ));
    assert!(ok, "{text}");
    assert_eq!(std::fs::read(&fetched).unwrap(), b"not really ipxe\n");
    let (ok, text) = sh(&format!("ip netns exec {} curl -s -f {url}", namespaces.client));
    assert!(ok && text == "not really ipxe.efi\n", "HTTP boot file {url}: {text}");

    // A lifetime-0 router advertisement (no prefix) reaches the client, so
    // iPXE need not wait for IPv6.
    let listener = data.join("ra_listener.py");
    std::fs::write(
        &listener,
        "import socket\n\
         s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)\n\
         while True:\n    \
             data, source = s.recvfrom(1500)\n    \
             if data[0] == 134:\n        \
                 print('RA', source[0], 'lifetime', int.from_bytes(data[6:8], 'big'), 'length', len(data))\n        \
                 break\n",
    )
    .unwrap();
    let (ok, text) = sh(&format!(
        "ip netns exec {} timeout 20 python3 {}",
        namespaces.client,
        listener.display()
    ));
    assert!(ok && text.contains("lifetime 0 length 16") && text.contains("RA fe80::"), "{text}");

    let _ = sh(&format!("ip netns pids {} | xargs -r kill", namespaces.server));
    let _ = server.wait();
    drop(namespaces);
    let _ = std::fs::remove_dir_all(&data);
}

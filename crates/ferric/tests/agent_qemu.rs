//! The real deploy agent in a real (QEMU, TCG) machine: `ferric image
//! build-ramdisk` packs the static agent with the kernel's modules, the
//! machine boots it directly (`-kernel`/`-initrd`: firmware and PXE are the
//! end-to-end test's business), gets an address from `ferric serve`'s DHCP,
//! looks its node up, heartbeats, and erases its disk's metadata when
//! automated cleaning asks — all inside a network namespace this test
//! creates (198.18.8.0/24 only). Prints the agent's milestones (seconds
//! since the kernel started) as the ramdisk benchmark.
//!
//! Needs root, `ip`, QEMU, a kernel in /boot, sfdisk and the static agent
//! (`FERRIC_AGENT_BIN`, built by `.ci/run` with
//! `cargo build --profile agent --target x86_64-unknown-linux-musl -p ferric-agent`);
//! skips with a reason elsewhere, fails under `CI=true`.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;

use common::{milestones, sh, Lab};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MAC: &str = "52:54:00:08:00:01";
const SERVER: &str = "198.18.8.1";

fn skip_test(reason: &str) {
    common::skip("the agent-in-QEMU test", reason)
}

#[test]
fn the_agent_boots_in_qemu_and_cleans_its_disk() {
    if sh("id -u").1.trim() != "0" {
        return skip_test("not root");
    }
    for tool in ["ip", "qemu-system-x86_64", "sfdisk", "curl"] {
        if !sh(&format!("command -v {tool}")).0 {
            return skip_test(&format!("{tool} is not installed"));
        }
    }
    let (kernel, agent) = match common::kernel_and_agent() {
        Ok(found) => found,
        Err(reason) => return skip_test(&reason),
    };
    let (mut lab, bridge, tag) = match Lab::with_bridge("fqa", SERVER) {
        Ok(lab) => lab,
        Err(reason) => return skip_test(&reason),
    };
    let tap = format!("tq{tag}");
    lab.add_tap(&tap, &bridge);
    let dir = lab.dir.clone();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let ferric = env!("CARGO_BIN_EXE_ferric");

    // The ramdisk, built by the product's own command.
    let (ok, text) = sh(&format!(
        "{ferric} image build-ramdisk --kernel {} --agent {} --output-dir {}",
        kernel.display(),
        agent.display(),
        dir.join("ramdisk").display()
    ));
    assert!(ok, "build-ramdisk: {text}");
    let initramfs = dir.join("ramdisk/ferric-deploy.initramfs");
    let ramdisk_kernel = dir.join("ramdisk/ferric-deploy.kernel");
    eprintln!("ramdisk: {} bytes", std::fs::metadata(&initramfs).unwrap().len());

    // A disk with a partition table for cleaning to erase.
    let disk = dir.join("disk.raw");
    std::fs::File::create(&disk).unwrap().set_len(256 << 20).unwrap();
    let (ok, text) = sh(&format!("echo 'start=2048, type=83' | sfdisk -q {}", disk.display()));
    assert!(ok, "sfdisk: {text}");

    std::fs::write(
        dir.join("ferric.toml"),
        format!(
            "[api]\nlisten = \"{SERVER}:6385\"\n[boot]\ninterface = \"{bridge}\"\n\
             http_listen = \"{SERVER}:8080\"\napi_url = \"http://{SERVER}:6385\"\n\
             [boot.dhcp]\nserver_ip = \"{SERVER}\"\nsubnet = \"198.18.8.0/24\"\n\
             range = [\"198.18.8.100\", \"198.18.8.120\"]\n"
        ),
    )
    .unwrap();
    let server = Command::new("ip")
        .args(["netns", "exec", &lab.namespace, ferric, "serve", "--config"])
        .arg(dir.join("ferric.toml"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("serve.log")).unwrap())
        .spawn()
        .unwrap();
    lab.processes.push(server);
    let namespace = lab.namespace.clone();
    let api = |method: &str, path: &str, body: &str| {
        sh(&format!(
            "ip netns exec {namespace} curl -s -f -X {method} -H 'Content-Type: application/json' \
             -H 'X-OpenStack-Ironic-API-Version: 1.90' -d '{body}' http://{SERVER}:6385{path}"
        ))
    };
    let started = Instant::now();
    while !api("GET", "/v1/drivers", "").0 {
        assert!(started.elapsed() < Duration::from_secs(30), "ferric serve did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (ok, text) = api(
        "POST",
        "/v1/nodes",
        r#"{"name": "qemu-1", "driver": "fake-hardware", "deploy_interface": "direct", "boot_interface": "fake"}"#,
    );
    assert!(ok, "create node: {text}");
    let created: serde_json::Value = serde_json::from_str(&text).unwrap();
    let node_uuid = created["uuid"].as_str().unwrap();
    let (ok, text) =
        api("POST", "/v1/ports", &format!(r#"{{"node_uuid": "{node_uuid}", "address": "{MAC}"}}"#));
    assert!(ok, "create port: {text}");
    let state = || -> String {
        let (_, text) = api("GET", "/v1/nodes/qemu-1", "");
        let node: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        format!(
            "{}|{}",
            node["provision_state"].as_str().unwrap_or(""),
            node["last_error"].as_str().unwrap_or("")
        )
    };
    let wait_for = |wanted: &str, limit: Duration| {
        let since = Instant::now();
        loop {
            let now = state();
            if now.starts_with(&format!("{wanted}|")) {
                return;
            }
            assert!(since.elapsed() < limit, "node did not reach {wanted}: {now}");
            assert!(!now.contains("failed|"), "node failed: {now}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let (ok, text) = api("PUT", "/v1/nodes/qemu-1/states/provision", r#"{"target": "manage"}"#);
    assert!(ok, "manage: {text}");
    wait_for("manageable", Duration::from_secs(30));
    // The DHCP server picks ports up every 2 s.
    std::thread::sleep(Duration::from_millis(2500));
    let (ok, text) = api("PUT", "/v1/nodes/qemu-1/states/provision", r#"{"target": "provide"}"#);
    assert!(ok, "provide: {text}");
    wait_for("clean wait", Duration::from_secs(30));

    // Power the "machine" on: boot the ramdisk directly.
    let console = dir.join("console.log");
    let bootif = format!("01-{}", MAC.replace(':', "-"));
    let qemu = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.namespace,
            "qemu-system-x86_64",
            "-accel",
            "tcg",
            "-m",
            "1024",
            "-smp",
            "1",
        ])
        .args(["-display", "none", "-no-reboot", "-nic", "none"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-kernel")
        .arg(&ramdisk_kernel)
        .arg("-initrd")
        .arg(&initramfs)
        .arg("-append")
        .arg(format!("console=ttyS0 ipa-api-url=http://{SERVER}:6385 BOOTIF={bootif}"))
        .arg("-drive")
        .arg(format!("file={},if=virtio,format=raw", disk.display()))
        .args(["-netdev", &format!("tap,id=n0,ifname={tap},script=no,downscript=no")])
        .args(["-device", &format!("virtio-net-pci,netdev=n0,mac={MAC}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    lab.processes.push(qemu);
    let since = Instant::now();
    loop {
        let now = state();
        if now.starts_with("available|") {
            break;
        }
        let console_text = std::fs::read_to_string(&console).unwrap_or_default();
        assert!(
            since.elapsed() < Duration::from_secs(180),
            "cleaning did not finish: {now}\n--- console ---\n{console_text}\n--- serve ---\n{}",
            std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default()
        );
        assert!(
            !now.contains("failed|"),
            "cleaning failed: {now}\n--- console ---\n{console_text}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let cleaned_after = since.elapsed();
    let console_text = std::fs::read_to_string(&console).unwrap_or_default();
    let marks = milestones(&console_text);
    eprintln!("agent milestones (seconds since the kernel started):");
    for (marker, seconds) in &marks {
        eprintln!("  {marker:<16} {seconds:6.2}");
    }
    eprintln!("QEMU start → node available: {:.1} s", cleaned_after.as_secs_f64());
    for marker in ["FERRIC-AGENT-UP", "MODULES-LOADED", "DHCP-LEASE", "LOOKUP-OK", "HEARTBEAT-OK"] {
        assert!(
            marks.iter().any(|(m, _)| m == marker),
            "no {marker} on the console:\n{console_text}"
        );
    }
    // Stop the machine before reading its disk.
    for child in &mut lab.processes[1..] {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut head = vec![0u8; 1 << 20];
    std::fs::File::open(&disk).unwrap().read_exact(&mut head).unwrap();
    assert!(head.iter().all(|b| *b == 0), "the partition table was erased");
    let (_, table) = sh(&format!("sfdisk -d {} 2>&1", disk.display()));
    assert!(!table.contains("start="), "no partitions left: {table}");
}

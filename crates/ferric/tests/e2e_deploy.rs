//! End to end, the way a user meets ferric: `ferric lab up --mixed` builds
//! the deploy ramdisk and the demo image (`ferric image build-disk`), makes
//! a network namespace with two QEMU machines (TCG) — lab-0 BIOS (SeaBIOS +
//! iPXE ROM) behind IPMI, lab-1 UEFI (OVMF) behind Redfish, both `ferric
//! vbmc` — starts `ferric serve` there with DHCP and HTTP boot, enrols the
//! nodes, `manage`s them and cleans them through the agent (`--wait`).
//! Then, through the API forwarded to 127.0.0.1, both are deployed at once
//! with a config drive; each boots its image from its own disk (a marker
//! and the config drive's user data on its serial console). Undeploy
//! cleans again and leaves the disks without a partition table. Failure
//! paths: a wrong BMC password at `manage`, a wrong image checksum, `abort`
//! while waiting for the agent (lab-0), and an agent that never calls back
//! (lab-1 cut off its network) — each ends `deploy failed` with the reason
//! and the machine powered off. `ferric lab status` and `lab down` finish.
//!
//! Prints a per-phase timing table built from ferric's own log.
//!
//! Needs root, `ip`, QEMU with Debian's iPXE ROMs, OVMF, a kernel in /boot,
//! busybox-static, syslinux/mtools and the static agent (`FERRIC_AGENT_BIN`,
//! see `.ci/run`); skips with a reason elsewhere, fails under `CI=true`.
//! Everything lives in a namespace of its own (198.18.0.0/24 inside it).

#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/timeline.rs"]
mod timeline;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{milestones, sh};
use timeline::{first_after, last, LogEvent};

const USER_DATA: &str = "ferric-e2e-user-data-7f3a";
/// How long ferric waits for an agent to call back, in this lab.
const CALLBACK_TIMEOUT: u64 = 60;

struct Machine {
    name: &'static str,
    mac: &'static str,
    tap: &'static str,
    firmware: &'static str,
}

/// What `ferric lab up --mixed --nodes 2` makes.
const MACHINES: [Machine; 2] = [
    Machine { name: "lab-0", mac: "52:54:00:0f:00:00", tap: "lab-tap0", firmware: "BIOS+IPMI" },
    Machine { name: "lab-1", mac: "52:54:00:0f:00:01", tap: "lab-tap1", firmware: "UEFI+Redfish" },
];

/// Runs `work` for every machine at once; returns each one's time.
fn in_parallel<F>(work: F) -> Vec<Duration>
where
    F: Fn(&Machine) + Sync,
{
    std::thread::scope(|scope| {
        let handles: Vec<_> = MACHINES
            .iter()
            .map(|machine| {
                let work = &work;
                scope.spawn(move || {
                    let started = Instant::now();
                    work(machine);
                    started.elapsed()
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().unwrap()).collect()
    })
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn skip_test(reason: &str) {
    common::skip("the end-to-end deploy test", reason)
}

/// `ferric lab down` on drop, whatever happened; then makes sure the
/// namespace is gone and removes the lab directory.
struct LabGuard {
    dir: PathBuf,
    namespace: String,
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_ferric"))
            .args(["lab", "down", "--dir"])
            .arg(&self.dir)
            .output();
        let _ = sh(&format!(
            "ip netns pids {ns} 2>/dev/null | xargs -r kill -9; ip netns del {ns} 2>/dev/null",
            ns = self.namespace
        ));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The first MiB of a (powered-off) machine's disk: does it still carry an
/// MBR or GPT partition table?
fn has_partition_table(disk: &Path, scratch: &Path) -> bool {
    let (ok, text) = sh(&format!(
        "qemu-img dd -f qcow2 -O raw bs=1M count=1 if={} of={}",
        disk.display(),
        scratch.display()
    ));
    assert!(ok, "reading {}: {text}", disk.display());
    let head = std::fs::read(scratch).unwrap();
    let _ = std::fs::remove_file(scratch);
    head.get(510..512) == Some(&[0x55, 0xAA]) || head.get(512..520) == Some(b"EFI PART")
}

#[test]
fn deploy_qemu_machines_over_pxe_with_ferric_lab() {
    if sh("id -u").1.trim() != "0" {
        return skip_test("not root");
    }
    for tool in ["ip", "qemu-system-x86_64", "qemu-img", "syslinux", "mcopy"] {
        if !sh(&format!("command -v {tool}")).0 {
            return skip_test(&format!("{tool} is not installed"));
        }
    }
    if !Path::new("/usr/lib/ipxe/qemu/efi-virtio.rom").exists()
        && !Path::new("/usr/share/qemu/efi-virtio.rom").exists()
    {
        return skip_test("QEMU's iPXE ROMs are missing (apt-get install ipxe-qemu)");
    }
    if !Path::new("/usr/share/OVMF/OVMF_CODE_4M.fd").exists() {
        return skip_test("OVMF is missing (apt-get install ovmf)");
    }
    let (_kernel, agent) = match common::kernel_and_agent() {
        Ok(found) => found,
        Err(reason) => return skip_test(&reason),
    };
    let tag = format!("{:x}", std::process::id());
    let namespace = format!("fe2e{}", &tag[tag.len().saturating_sub(6)..]);
    let dir = std::env::temp_dir().join(format!("ferric-e2e-{tag}"));
    let guard = LabGuard { dir: dir.clone(), namespace: namespace.clone() };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let ferric = env!("CARGO_BIN_EXE_ferric");
    let cli = |args: &str| sh(&format!("{ferric} --url {url} {args}"));
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let console = |machine: &Machine| read(&format!("{}.console", machine.name));
    let logs = || {
        let mut text = String::new();
        for machine in &MACHINES {
            text.push_str(&format!("--- {} console ---\n{}\n", machine.name, console(machine)));
        }
        format!(
            "{text}--- lab.log ---\n{}\n--- serve.log ---\n{}\n--- vbmc.log ---\n{}",
            read("lab.log"),
            read("serve.log"),
            read("vbmc.log")
        )
    };
    let field = |node: &str, name: &str| {
        let (_, text) = cli(&format!("node show {node} -f value -c {name}"));
        text.trim().to_owned()
    };
    let wait_for_state = |node: &str, state: &str, limit: Duration| {
        let since = Instant::now();
        while field(node, "provision_state") != state {
            assert!(since.elapsed() < limit, "{node} never reached {state}\n{}", logs());
            std::thread::sleep(Duration::from_millis(250));
        }
    };

    // `ferric lab up`: images, namespace, machines, serve + vbmc, nodes
    // enrolled, managed and cleaned by the agent.
    let started = Instant::now();
    let output = Command::new(ferric)
        .args(["lab", "up", "--nodes", "2", "--mixed", "--wait", "--namespace", &namespace])
        .args(["--api-port", &port.to_string(), "--callback-timeout"])
        .arg(CALLBACK_TIMEOUT.to_string())
        .arg("--dir")
        .arg(&dir)
        .arg("--agent")
        .arg(&agent)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "lab up: {text}\n{}", logs());
    let lab_up = started.elapsed();
    for machine in &MACHINES {
        assert_eq!(field(machine.name, "provision_state"), "available", "{text}");
    }
    let (ok, status) = sh(&format!("{ferric} lab status --dir {}", dir.display()));
    assert!(ok && status.contains("running"), "lab status: {status}");
    assert!(status.contains("bios") && status.contains("uefi"), "lab status: {status}");
    assert!(status.contains("redfish http://127.0.0.1:8201"), "lab status: {status}");

    // A wrong BMC password is refused at manage, with a clear error.
    let (ok, text) =
        cli("node create --name bad-password --driver ipmi --driver-info ipmi_address=127.0.0.1 \
         --driver-info ipmi_port=6230 --driver-info ipmi_username=admin \
         --driver-info ipmi_password=wrong");
    assert!(ok, "node create: {text}");
    let (ok, text) = cli("node manage bad-password --wait 120");
    assert!(!ok, "manage with a wrong password must fail: {text}");
    assert_eq!(field("bad-password", "provision_state"), "enroll");
    let error = field("bad-password", "last_error");
    eprintln!("wrong BMC password at manage: {error}");
    assert!(!error.is_empty() && error != "None", "manage failed without saying why");

    // Deploy both at once, each with a config drive; then each machine
    // boots its own disk.
    let config_drive =
        format!(r#"{{"meta_data": {{"hostname": "e2e"}}, "user_data": "{USER_DATA}"}}"#);
    let deployed_from = now();
    let deploying = in_parallel(|machine| {
        let (ok, text) = cli(&format!(
            "node deploy {} --image demo --config-drive '{config_drive}' --wait 400",
            machine.name
        ));
        assert!(ok, "deploy {}: {text}\n{}", machine.name, logs());
    });
    let image_up: Vec<f64> = std::thread::scope(|scope| {
        let handles: Vec<_> = MACHINES
            .iter()
            .map(|machine| {
                scope.spawn(move || {
                    let since = Instant::now();
                    while !console(machine).contains(&format!("CONFIG-DRIVE {USER_DATA}")) {
                        assert!(
                            since.elapsed() < Duration::from_secs(180),
                            "{}: the image did not come up\n{}",
                            machine.name,
                            logs()
                        );
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    assert!(console(machine).contains("INSTANCE-UP"));
                    now()
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().unwrap()).collect()
    });

    let events = timeline::parse(&read("serve.log"));
    print_timings(&events, &MACHINES, &|m| field(m, "uuid"), deployed_from, &image_up, &deploying);
    eprintln!("lab up (images, machines, enrol, manage, clean) {:.1} s", lab_up.as_secs_f64());
    for machine in &MACHINES {
        eprintln!("  {} agent milestones (seconds since its kernel started):", machine.name);
        for (marker, seconds) in milestones(&console(machine)) {
            eprintln!("      {marker:<16} {seconds:6.2}");
        }
    }

    // Undeploy: cleaning through the agent again; the disks lose their
    // partition tables.
    in_parallel(|machine| {
        let (ok, text) = cli(&format!("node undeploy {} --wait 300", machine.name));
        assert!(ok, "undeploy {}: {text}\n{}", machine.name, logs());
        assert_eq!(field(machine.name, "power_state"), "power off");
        let disk = dir.join(format!("{}.qcow2", machine.name));
        let scratch = dir.join(format!("{}.head", machine.name));
        assert!(!has_partition_table(&disk, &scratch), "{}: cleaning left a table", machine.name);
    });

    // Failure paths, one machine each, at the same time.
    let image_file = dir.join("demo.qcow2");
    let bios = &MACHINES[0];
    let uefi = &MACHINES[1];
    std::thread::scope(|scope| {
        // lab-0: a wrong checksum, then abort while waiting for the agent.
        let checksum_and_abort = scope.spawn(|| {
            let (_, sum) = sh(&format!("sha256sum {}", image_file.display()));
            let sha256 = sum.split_whitespace().next().unwrap_or_default().to_owned();
            let (ok, text) = cli(&format!(
                "node deploy {} --image http://198.18.0.1:8080/images/{sha256} \
                 --image-checksum sha256:{} --wait 300",
                bios.name,
                "0".repeat(64)
            ));
            assert!(!ok, "a wrong checksum must fail the deploy: {text}");
            assert_eq!(field(bios.name, "provision_state"), "deploy failed", "{}", logs());
            assert!(field(bios.name, "last_error").contains("checksum"), "{}", logs());
            assert_eq!(field(bios.name, "power_state"), "power off");

            let (ok, text) = cli(&format!("node deploy {} --image demo", bios.name));
            assert!(ok, "deploy: {text}");
            wait_for_state(bios.name, "wait call-back", Duration::from_secs(60));
            let (ok, text) = cli(&format!("node abort {}", bios.name));
            assert!(ok, "abort: {text}");
            wait_for_state(bios.name, "deploy failed", Duration::from_secs(60));
            assert!(field(bios.name, "last_error").contains("abort"), "{}", logs());
            assert_eq!(field(bios.name, "power_state"), "power off");
        });
        // lab-1: cut off from the provisioning network, its ramdisk never
        // calls back: the deploy times out and the machine is powered off.
        let timeout = scope.spawn(|| {
            let (ok, text) = sh(&format!("ip -n {namespace} link set {} nomaster", uefi.tap));
            assert!(ok, "{text}");
            let (ok, text) = cli(&format!("node deploy {} --image demo", uefi.name));
            assert!(ok, "deploy: {text}");
            wait_for_state(uefi.name, "deploy failed", Duration::from_secs(CALLBACK_TIMEOUT + 90));
            let error = field(uefi.name, "last_error");
            assert!(error.contains("Timeout reached while waiting for callback"), "{error}");
            let since = Instant::now();
            while field(uefi.name, "power_state") != "power off" {
                assert!(since.elapsed() < Duration::from_secs(60), "left on\n{}", logs());
                std::thread::sleep(Duration::from_millis(250));
            }
            let (ok, text) = sh(&format!("ip -n {namespace} link set {} master br-lab", uefi.tap));
            assert!(ok, "{text}");
        });
        checksum_and_abort.join().unwrap();
        timeout.join().unwrap();
    });

    // `ferric lab down` removes the namespace and stops everything.
    let supervisor = read("lab.pid");
    let (ok, text) = sh(&format!("{ferric} lab down --dir {}", dir.display()));
    assert!(ok, "lab down: {text}");
    assert!(!Path::new("/run/netns").join(&namespace).exists(), "the namespace is still there");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", supervisor.trim())).unwrap_or_default();
    assert!(!String::from_utf8_lossy(&cmdline).contains("lab\0run"), "the supervisor still runs");
    drop(guard);
}

/// The per-phase table: for each machine, seconds from the deploy request
/// (as the conductor logged it) to each milestone, and ferric's own share.
fn print_timings(
    events: &[LogEvent],
    machines: &[Machine],
    uuid_of: &dyn Fn(&str) -> String,
    since: f64,
    image_up: &[f64],
    wall: &[Duration],
) {
    eprintln!(
        "per-phase deploy timings (TCG, 2 cores, both machines at once; seconds since the \
         conductor took the request):"
    );
    eprintln!(
        "  {:<7} {:<13} {:>8} {:>6} {:>7} {:>7} {:>7} {:>7} {:>8} {:>7} {:>7} {:>8} {:>9}",
        "node",
        "machine",
        "power on",
        "DHCP",
        "script",
        "kernel",
        "lookup",
        "write",
        "written",
        "active",
        "up",
        "ferric",
        "wall"
    );
    for (i, machine) in machines.iter().enumerate() {
        let uuid = uuid_of(machine.name);
        let node = [("node", uuid.as_str())];
        let mac = [("mac", machine.mac)];
        let Some(request) = events.iter().find(|e| {
            e.at >= since
                && e.is("operation started", &node)
                && e.field("verb").is_some_and(|v| v == "deploy" || v == "active")
        }) else {
            eprintln!("  {}: no deploy in the log", machine.name);
            continue;
        };
        let t0 = request.at;
        let at = |event: Option<&LogEvent>| event.map(|e| e.at);
        let powered =
            first_after(events, t0, "deploy ramdisk powered on; waiting for the agent", &node);
        let after_power = at(powered).unwrap_or(t0);
        let dhcp = first_after(events, after_power, "DHCP reply sent", &mac);
        let script = first_after(events, after_power, "iPXE script served", &mac);
        let kernel = first_after(
            events,
            at(script).unwrap_or(after_power),
            "boot file requested",
            &[("path", "agent/ferric-deploy.kernel")],
        );
        let lookup = first_after(events, after_power, "agent looked its node up", &node);
        let write = first_after(
            events,
            t0,
            "step running in the agent",
            &[("node", uuid.as_str()), ("step", "write_image")],
        );
        let written = first_after(
            events,
            t0,
            "agent step finished",
            &[("node", uuid.as_str()), ("step", "write_image")],
        );
        let active = first_after(
            events,
            t0,
            "provision state changed",
            &[("node", uuid.as_str()), ("to", "active")],
        );
        let cell = |event: Option<&LogEvent>| match event {
            Some(event) => format!("{:.1}", event.at - t0),
            None => "-".to_owned(),
        };
        // Ferric's own time: request → power-on call done, agent lookup →
        // image write command sent, image written → active (the last
        // includes powering the ramdisk off and the instance on through
        // the BMC).
        let overhead = match (at(powered), at(lookup), at(write), at(written), at(active)) {
            (Some(p), Some(l), Some(w), Some(d), Some(a)) => {
                format!("{:.2}", (p - t0) + (w - l) + (a - d))
            }
            _ => "-".to_owned(),
        };
        let bmc_ms: f64 = events
            .iter()
            .filter(|e| {
                e.at >= t0
                    && at(active).is_none_or(|a| e.at <= a)
                    && e.field("node") == Some(uuid.as_str())
                    && (e.message == "deploy ramdisk powered on; waiting for the agent"
                        || (e.message == "step finished"
                            && matches!(
                                e.field("step"),
                                Some("tear_down_agent" | "boot_instance")
                            )))
            })
            .filter_map(|e| e.field("elapsed_ms").and_then(|ms| ms.parse::<f64>().ok()))
            .sum();
        eprintln!(
            "  {:<7} {:<13} {:>8} {:>6} {:>7} {:>7} {:>7} {:>7} {:>8} {:>7} {:>7.1} {:>8} {:>8.1}s",
            machine.name,
            machine.firmware,
            cell(powered),
            cell(dhcp),
            cell(script),
            cell(kernel),
            cell(lookup),
            cell(write),
            cell(written),
            cell(active),
            image_up[i] - t0,
            overhead,
            wall[i].as_secs_f64(),
        );
        eprintln!(
            "          of ferric's share, BMC calls (power on/off, boot device) took {:.2} s",
            bmc_ms / 1000.0
        );
        let provide =
            last(events, "operation started", &[("node", uuid.as_str()), ("verb", "provide")]);
        let available = provide.and_then(|p| {
            first_after(
                events,
                p.at,
                "provision state changed",
                &[("node", uuid.as_str()), ("to", "available")],
            )
        });
        if let (Some(p), Some(a)) = (provide, available) {
            eprintln!(
                "          cleaning (provide → available, both at once): {:.1} s",
                a.at - p.at
            );
        }
    }
}

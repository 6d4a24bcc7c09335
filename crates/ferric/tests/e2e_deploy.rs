//! End to end: a QEMU machine (TCG, SeaBIOS + its iPXE ROM) behind `ferric
//! vbmc` (IPMI) is enrolled, cleaned and deployed by `ferric serve` alone —
//! DHCP, iPXE script and ramdisk over HTTP, the agent writing a stored
//! image built by `ferric image build-disk` with a config drive — then
//! boots that image from its own disk, which prints `INSTANCE-UP` and the
//! config drive's user data on its serial console. Everything runs in a
//! network namespace the test creates (198.18.9.0/24 only) and is removed
//! afterwards. Prints a per-phase timing table.
//!
//! Needs root, `ip`, QEMU with Debian's iPXE ROMs, a kernel in /boot,
//! busybox-static, syslinux/mtools and the static agent (`FERRIC_AGENT_BIN`,
//! see `.ci/run`); skips with a reason elsewhere, fails under `CI=true`.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{milestones, newest_kernel, sh, Lab};

const MAC: &str = "52:54:00:09:00:01";
const SERVER: &str = "198.18.9.1";
const IPMI_PORT: u16 = 6241;
const USER_DATA: &str = "ferric-e2e-user-data-7f3a";

fn skip_test(reason: &str) {
    common::skip("the end-to-end deploy test", reason)
}

/// The "user image": busybox as /init, which loads the disk and FAT
/// modules, prints the marker and the config drive's user data, and
/// powers off.
const INSTANCE_INIT: &str = r#"#!/bin/busybox sh
B=/bin/busybox
$B mkdir -p /proc /sys /dev /mnt
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
K=$($B uname -r)
for m in $($B cat /lib/modules/$K/load-order); do $B insmod /lib/modules/$K/$m 2>/dev/null; done
for i in 1 2 3 4 5 6 7 8 9 10; do [ -e /dev/vda ] && break; $B sleep 0.2; done
echo INSTANCE-UP
for p in /dev/vda2 /dev/vda3 /dev/vda4; do
  if $B mount -t vfat -o ro $p /mnt 2>/dev/null; then
    echo "CONFIG-DRIVE $($B cat /mnt/openstack/latest/user_data)"
    break
  fi
done
$B sync
$B poweroff -f
"#;

fn build_instance_image(ferric: &str, kernel: &Path, dir: &Path) -> std::path::PathBuf {
    let init = dir.join("instance-init");
    std::fs::write(&init, INSTANCE_INIT).unwrap();
    let (ok, text) = sh(&format!("chmod 755 {}", init.display()));
    assert!(ok, "{text}");
    // The instance's initramfs, made by the ramdisk builder with a shell
    // script as /init: only the disk and FAT modules.
    let (ok, text) = sh(&format!(
        "{ferric} image build-ramdisk --kernel {k} --agent {init} --output-dir {out} \
         --no-default-modules --module virtio_pci --module virtio_blk --module vfat \
         --module nls_cp437 --module nls_iso8859_1 --module nls_ascii --module nls_utf8 --extra /bin/busybox:/bin/busybox",
        k = kernel.display(),
        init = init.display(),
        out = dir.join("instance").display()
    ));
    assert!(ok, "instance initramfs: {text}");
    let image = dir.join("instance.qcow2");
    let (ok, text) = sh(&format!(
        "{ferric} image build-disk --output {img} --size-mib 64 --kernel {k} --initrd {initrd} \
         --cmdline 'console=ttyS0,115200n8 quiet'",
        img = image.display(),
        k = kernel.display(),
        initrd = dir.join("instance/ferric-deploy.initramfs").display()
    ));
    assert!(ok, "build-disk: {text}");
    image
}

#[test]
fn deploy_a_qemu_machine_over_pxe_and_boot_its_image() {
    if sh("id -u").1.trim() != "0" {
        return skip_test("not root");
    }
    for tool in ["ip", "qemu-system-x86_64", "qemu-img", "curl", "syslinux", "mcopy"] {
        if !sh(&format!("command -v {tool}")).0 {
            return skip_test(&format!("{tool} is not installed"));
        }
    }
    if !Path::new("/usr/lib/ipxe/qemu/efi-virtio.rom").exists()
        && !Path::new("/usr/share/qemu/efi-virtio.rom").exists()
    {
        return skip_test("QEMU's iPXE ROMs are missing (apt-get install ipxe-qemu)");
    }
    let Some(kernel) = newest_kernel() else { return skip_test("no kernel in /boot") };
    let Some(agent) =
        std::env::var_os("FERRIC_AGENT_BIN").map(std::path::PathBuf::from).filter(|p| p.exists())
    else {
        return skip_test("FERRIC_AGENT_BIN does not name the static agent (see .ci/run)");
    };
    let tag = format!("{:x}", std::process::id());
    let tag = &tag[tag.len().saturating_sub(6)..];
    let mut lab = Lab {
        namespace: format!("fe2e{tag}"),
        dir: std::env::temp_dir().join(format!("ferric-e2e-{tag}")),
        processes: Vec::new(),
    };
    let (bridge, tap) = (format!("bre{tag}"), format!("te{tag}"));
    let (ok, text) = sh(&format!(
        "set -e; ip netns add {ns}; ip -n {ns} link set lo up; \
         ip -n {ns} link add {bridge} type bridge; ip -n {ns} addr add {SERVER}/24 dev {bridge}; \
         ip -n {ns} link set {bridge} up; \
         ip -n {ns} tuntap add dev {tap} mode tap; ip -n {ns} link set {tap} master {bridge}; \
         ip -n {ns} link set {tap} up",
        ns = lab.namespace
    ));
    if !ok {
        return skip_test(&format!("cannot create the network namespace: {text}"));
    }
    let dir = lab.dir.clone();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let ferric = env!("CARGO_BIN_EXE_ferric");

    // The deploy ramdisk into the boot root, the user image into the store.
    let built = Instant::now();
    let (ok, text) = sh(&format!(
        "{ferric} image build-ramdisk --kernel {} --agent {} --output-dir {}",
        kernel.display(),
        agent.display(),
        data.join("boot/agent").display()
    ));
    assert!(ok, "build-ramdisk: {text}");
    let image = build_instance_image(ferric, &kernel, &dir);
    let (ok, text) = sh(&format!(
        "{ferric} image --store {} create --file {} --name demo",
        data.join("images").display(),
        image.display()
    ));
    assert!(ok, "image create: {text}");
    eprintln!("images built in {:.1} s", built.elapsed().as_secs_f64());

    // The machine's disk and its virtual BMC.
    let disk = dir.join("disk.qcow2");
    let (ok, text) = sh(&format!("qemu-img create -q -f qcow2 {} 8G", disk.display()));
    assert!(ok, "{text}");
    let console = dir.join("console.log");
    std::fs::write(
        dir.join("vbmc.toml"),
        format!(
            "[[machines]]\nname = \"e2e-1\"\nipmi_port = {IPMI_PORT}\nusername = \"admin\"\n\
             password = \"e2e-secret\"\n[machines.qemu]\n\
             args = [\"-accel\", \"tcg\", \"-m\", \"1024\", \"-smp\", \"1\", \"-display\", \"none\", \
             \"-nic\", \"none\", \"-chardev\", \"file,id=serial0,path={console},append=on\", \
             \"-serial\", \"chardev:serial0\", \
             \"-netdev\", \"tap,id=n0,ifname={tap},script=no,downscript=no\", \
             \"-device\", \"virtio-net-pci,netdev=n0,mac={MAC}\", \
             \"-drive\", \"file={disk},if=virtio,format=qcow2\"]\n\
             qmp_socket = \"{qmp}\"\nlog = \"{log}\"\n",
            console = console.display(),
            disk = disk.display(),
            qmp = dir.join("e2e-1.qmp").display(),
            log = dir.join("qemu.log").display(),
        ),
    )
    .unwrap();
    let vbmc = Command::new("ip")
        .args(["netns", "exec", &lab.namespace, ferric, "vbmc", "--config"])
        .arg(dir.join("vbmc.toml"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("vbmc.log")).unwrap())
        .spawn()
        .unwrap();
    lab.processes.push(vbmc);

    std::fs::write(
        dir.join("ferric.toml"),
        format!(
            "[api]\nlisten = \"{SERVER}:6385\"\n[conductor]\ndeploy_callback_timeout_seconds = 300\n\
             [boot]\ninterface = \"{bridge}\"\nhttp_listen = \"{SERVER}:8080\"\n\
             api_url = \"http://{SERVER}:6385\"\nkernel_append = \"console=ttyS0\"\n\
             [boot.dhcp]\nserver_ip = \"{SERVER}\"\nsubnet = \"198.18.9.0/24\"\n\
             range = [\"198.18.9.100\", \"198.18.9.120\"]\n"
        ),
    )
    .unwrap();
    let server = Command::new("ip")
        .args(["netns", "exec", &lab.namespace, ferric, "serve", "--config"])
        .arg(dir.join("ferric.toml"))
        .arg("--data-dir")
        .arg(&data)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("serve.log")).unwrap())
        .spawn()
        .unwrap();
    lab.processes.push(server);
    let namespace = lab.namespace.clone();
    let cli = |args: &str| {
        sh(&format!("ip netns exec {namespace} {ferric} --url http://{SERVER}:6385 {args}"))
    };
    let started = Instant::now();
    while !cli("driver list").0 {
        assert!(started.elapsed() < Duration::from_secs(30), "ferric serve did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs = || {
        format!(
            "--- console ---\n{}\n--- serve ---\n{}\n--- vbmc ---\n{}",
            std::fs::read_to_string(&console).unwrap_or_default(),
            std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default(),
            std::fs::read_to_string(dir.join("vbmc.log")).unwrap_or_default(),
        )
    };
    let (ok, text) = cli(&format!(
        "node create --driver ipmi --name e2e-1 \
         --driver-info ipmi_address=127.0.0.1 --driver-info ipmi_port={IPMI_PORT} \
         --driver-info ipmi_username=admin --driver-info ipmi_password=e2e-secret \
         --driver-info deploy_kernel=agent/ferric-deploy.kernel \
         --driver-info deploy_ramdisk=agent/ferric-deploy.initramfs"
    ));
    assert!(ok, "node create: {text}");
    let (ok, text) = cli(&format!("port create {MAC} --node e2e-1"));
    assert!(ok, "port create: {text}");
    let (ok, text) = cli("node manage e2e-1 --wait");
    assert!(ok, "manage: {text}\n{}", logs());
    // The DHCP server picks ports up every 2 s.
    std::thread::sleep(Duration::from_millis(2500));

    let phase = Instant::now();
    let (ok, text) = cli("node provide e2e-1 --wait 240");
    assert!(ok, "provide (cleaning through the agent): {text}\n{}", logs());
    let cleaning = phase.elapsed();

    let phase = Instant::now();
    let config_drive =
        format!(r#"{{"meta_data": {{"hostname": "e2e-1"}}, "user_data": "{USER_DATA}"}}"#);
    let (ok, text) =
        cli(&format!("node deploy e2e-1 --image demo --config-drive '{config_drive}' --wait 300"));
    assert!(ok, "deploy: {text}\n{}", logs());
    let deploying = phase.elapsed();

    // The machine now boots its own disk.
    let phase = Instant::now();
    loop {
        let text = std::fs::read_to_string(&console).unwrap_or_default();
        if text.contains(&format!("CONFIG-DRIVE {USER_DATA}")) {
            break;
        }
        assert!(
            phase.elapsed() < Duration::from_secs(120),
            "the image did not come up\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let instance_up = phase.elapsed();
    let console_text = std::fs::read_to_string(&console).unwrap_or_default();
    assert!(console_text.contains("INSTANCE-UP"), "{}", logs());

    eprintln!("end-to-end timings (TCG, this machine):");
    eprintln!(
        "  provide (PXE, agent, metadata erase, power off)  {:6.1} s",
        cleaning.as_secs_f64()
    );
    eprintln!(
        "  deploy request → active                          {:6.1} s",
        deploying.as_secs_f64()
    );
    eprintln!(
        "  active → image up with its config drive          {:6.1} s",
        instance_up.as_secs_f64()
    );
    eprintln!("  agent milestones (seconds since its kernel started; one block per ramdisk boot):");
    for (marker, seconds) in milestones(&console_text) {
        eprintln!("    {marker:<16} {seconds:6.2}");
    }

    // Undeploy: cleaning erases the partition table again.
    let (ok, text) = cli("node undeploy e2e-1 --wait 240");
    assert!(ok, "undeploy: {text}\n{}", logs());
    drop(lab);
}

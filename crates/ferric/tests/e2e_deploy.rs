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

use common::{milestones, sh, Lab};

const SERVER: &str = "198.18.9.1";
const PASSWORD: &str = "e2e-secret";
const USER_DATA: &str = "ferric-e2e-user-data-7f3a";

struct Machine {
    name: &'static str,
    mac: &'static str,
    tap: &'static str,
    uefi: bool,
    /// `ipmi` or `redfish`: which of its BMC's services ferric uses.
    driver: &'static str,
    ipmi_port: u16,
    redfish_port: u16,
}

const MACHINES: [Machine; 2] = [
    Machine {
        name: "bios-ipmi",
        mac: "52:54:00:09:00:01",
        tap: "tb",
        uefi: false,
        driver: "ipmi",
        ipmi_port: 6241,
        redfish_port: 8241,
    },
    Machine {
        name: "uefi-redfish",
        mac: "52:54:00:09:00:02",
        tap: "tu",
        uefi: true,
        driver: "redfish",
        ipmi_port: 6242,
        redfish_port: 8242,
    },
];

impl Machine {
    fn driver_args(&self, password: &str) -> String {
        let bmc = match self.driver {
            "ipmi" => format!(
                "--driver-info ipmi_address=127.0.0.1 --driver-info ipmi_port={} \
                 --driver-info ipmi_username=admin --driver-info ipmi_password={password}",
                self.ipmi_port
            ),
            _ => format!(
                "--driver-info redfish_address=http://127.0.0.1:{} \
                 --driver-info redfish_username=admin --driver-info redfish_password={password}",
                self.redfish_port
            ),
        };
        format!(
            "--driver {} {bmc} --driver-info deploy_kernel=agent/ferric-deploy.kernel \
             --driver-info deploy_ramdisk=agent/ferric-deploy.initramfs",
            self.driver
        )
    }
}

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
    let (kernel, agent) = match common::kernel_and_agent() {
        Ok(found) => found,
        Err(reason) => return skip_test(&reason),
    };
    let (mut lab, bridge, tag) = match Lab::with_bridge("fe2e", SERVER) {
        Ok(lab) => lab,
        Err(reason) => return skip_test(&reason),
    };
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

    // Two machines: BIOS behind IPMI, UEFI behind Redfish, each with a
    // disk, a tap on the bridge and its serial console in a file.
    let mut vbmc_config = String::new();
    for machine in &MACHINES {
        let disk = dir.join(format!("{}.qcow2", machine.name));
        let (ok, text) = sh(&format!("qemu-img create -q -f qcow2 {} 8G", disk.display()));
        assert!(ok, "{text}");
        let tap = format!("{}{tag}", machine.tap);
        lab.add_tap(&tap, &bridge);
        let mut args: Vec<String> =
            ["-accel", "tcg", "-m", "1024", "-smp", "1", "-display", "none", "-nic", "none"]
                .iter()
                .map(|a| a.to_string())
                .collect();
        args.extend([
            "-chardev".into(),
            format!(
                "file,id=serial0,path={},append=on",
                dir.join(format!("{}.console", machine.name)).display()
            ),
            "-serial".into(),
            "chardev:serial0".into(),
            "-netdev".into(),
            format!("tap,id=n0,ifname={tap},script=no,downscript=no"),
        ]);
        if machine.uefi {
            // OVMF ignores `-boot order`: the NIC comes first, and ferric's
            // iPXE script for a deployed node exits to the next entry, the
            // disk (netboot-first, as many real machines are set up).
            args.extend([
                "-device".into(),
                format!("virtio-net-pci,netdev=n0,mac={},bootindex=1", machine.mac),
                "-drive".into(),
                format!("file={},if=none,id=disk0,format=qcow2", disk.display()),
                "-device".into(),
                "virtio-blk-pci,drive=disk0,bootindex=2".into(),
            ]);
        } else {
            args.extend([
                "-device".into(),
                format!("virtio-net-pci,netdev=n0,mac={}", machine.mac),
                "-drive".into(),
                format!("file={},if=virtio,format=qcow2", disk.display()),
            ]);
        }
        if machine.uefi {
            let vars = dir.join(format!("{}.vars", machine.name));
            std::fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &vars).unwrap();
            args.extend([
                "-drive".into(),
                "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd".into(),
                "-drive".into(),
                format!("if=pflash,format=raw,file={}", vars.display()),
            ]);
        }
        let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
        vbmc_config.push_str(&format!(
            "[[machines]]\nname = \"{name}\"\nipmi_port = {ipmi}\nredfish_port = {redfish}\n\
             username = \"admin\"\npassword = \"{PASSWORD}\"\n[machines.qemu]\nargs = [{args}]\n\
             qmp_socket = \"{qmp}\"\nlog = \"{log}\"\n\n",
            name = machine.name,
            ipmi = machine.ipmi_port,
            redfish = machine.redfish_port,
            args = args.join(", "),
            qmp = dir.join(format!("{}.qmp", machine.name)).display(),
            log = dir.join(format!("{}.qemu.log", machine.name)).display(),
        ));
    }
    std::fs::write(dir.join("vbmc.toml"), vbmc_config).unwrap();
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
        let mut text = String::new();
        for machine in &MACHINES {
            text.push_str(&format!(
                "--- {} console ---\n{}\n",
                machine.name,
                std::fs::read_to_string(dir.join(format!("{}.console", machine.name)))
                    .unwrap_or_default()
            ));
        }
        format!(
            "{text}--- serve ---\n{}\n--- vbmc ---\n{}",
            std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default(),
            std::fs::read_to_string(dir.join("vbmc.log")).unwrap_or_default(),
        )
    };
    let console = |machine: &Machine| {
        std::fs::read_to_string(dir.join(format!("{}.console", machine.name))).unwrap_or_default()
    };
    let field = |node: &str, name: &str| {
        let (_, text) = cli(&format!("node show {node} -f value -c {name}"));
        text.trim().to_owned()
    };

    // A wrong BMC password is refused at manage, with a clear error.
    let (ok, text) =
        cli(&format!("node create --name bad-password {}", MACHINES[0].driver_args("wrong")));
    assert!(ok, "node create: {text}");
    let (ok, text) = cli("node manage bad-password --wait 120");
    assert!(!ok, "manage with a wrong password must fail: {text}");
    assert_eq!(field("bad-password", "provision_state"), "enroll");
    let error = field("bad-password", "last_error");
    eprintln!("wrong BMC password at manage: {error}");
    assert!(!error.is_empty() && error != "None", "manage failed without saying why");

    for machine in &MACHINES {
        let (ok, text) =
            cli(&format!("node create --name {} {}", machine.name, machine.driver_args(PASSWORD)));
        assert!(ok, "node create: {text}");
        let (ok, text) = cli(&format!("port create {} --node {}", machine.mac, machine.name));
        assert!(ok, "port create: {text}");
        let (ok, text) = cli(&format!("node manage {} --wait 120", machine.name));
        assert!(ok, "manage {}: {text}\n{}", machine.name, logs());
    }
    // The DHCP server picks ports up every 2 s.
    std::thread::sleep(Duration::from_millis(2500));

    // Cleaning (automated: the agent erases metadata), both at once.
    let cleaning = in_parallel(|machine| {
        let (ok, text) = cli(&format!("node provide {} --wait 300", machine.name));
        assert!(ok, "provide {}: {text}\n{}", machine.name, logs());
    });

    // Deploy both at once, each with a config drive.
    let config_drive =
        format!(r#"{{"meta_data": {{"hostname": "e2e"}}, "user_data": "{USER_DATA}"}}"#);
    let deploying = in_parallel(|machine| {
        let (ok, text) = cli(&format!(
            "node deploy {} --image demo --config-drive '{config_drive}' --wait 400",
            machine.name
        ));
        assert!(ok, "deploy {}: {text}\n{}", machine.name, logs());
    });
    // Each machine now boots its own disk.
    let booting = in_parallel(|machine| {
        let since = Instant::now();
        while !console(machine).contains(&format!("CONFIG-DRIVE {USER_DATA}")) {
            assert!(
                since.elapsed() < Duration::from_secs(180),
                "{}: the image did not come up\n{}",
                machine.name,
                logs()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        assert!(console(machine).contains("INSTANCE-UP"));
    });

    eprintln!("end-to-end timings (TCG, this machine, both machines at once):");
    for (i, machine) in MACHINES.iter().enumerate() {
        eprintln!(
            "  {:<13} provide {:5.1} s   deploy → active {:5.1} s   active → image up {:5.1} s",
            machine.name,
            cleaning[i].as_secs_f64(),
            deploying[i].as_secs_f64(),
            booting[i].as_secs_f64()
        );
        eprintln!(
            "    agent milestones (seconds since its kernel started; one block per ramdisk boot):"
        );
        for (marker, seconds) in milestones(&console(machine)) {
            eprintln!("      {marker:<16} {seconds:6.2}");
        }
    }

    // Undeploy: cleaning through the agent again.
    in_parallel(|machine| {
        let (ok, text) = cli(&format!("node undeploy {} --wait 300", machine.name));
        assert!(ok, "undeploy {}: {text}\n{}", machine.name, logs());
    });

    // A wrong checksum: deploy failed with the reason, machine left off.
    let bios = &MACHINES[0];
    let (_, sum) = sh(&format!("sha256sum {}", image.display()));
    let sha256 = sum.split_whitespace().next().unwrap_or_default().to_owned();
    let (ok, text) = cli(&format!(
        "node deploy {} --image http://{SERVER}:8080/images/{sha256} \
         --image-checksum sha256:{} --wait 300",
        bios.name,
        "0".repeat(64)
    ));
    assert!(!ok, "a wrong checksum must fail the deploy: {text}");
    assert_eq!(field(bios.name, "provision_state"), "deploy failed", "{}", logs());
    assert!(field(bios.name, "last_error").contains("checksum"), "{}", logs());
    assert_eq!(field(bios.name, "power_state"), "power off");

    // Abort while waiting for the agent: deploy failed, machine off.
    let (ok, text) = cli(&format!("node deploy {} --image demo", bios.name));
    assert!(ok, "deploy: {text}");
    let since = Instant::now();
    while field(bios.name, "provision_state") != "wait call-back" {
        assert!(since.elapsed() < Duration::from_secs(60), "no wait call-back\n{}", logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    let (ok, text) = cli(&format!("node abort {}", bios.name));
    assert!(ok, "abort: {text}");
    let since = Instant::now();
    while field(bios.name, "provision_state") != "deploy failed" {
        assert!(
            since.elapsed() < Duration::from_secs(60),
            "abort did not end the deploy\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(field(bios.name, "power_state"), "power off");
    drop(lab);
}

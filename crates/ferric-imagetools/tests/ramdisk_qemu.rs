//! The deploy ramdisk built from the installed kernel with the default
//! module set, booted in QEMU (TCG, no network). The init is the agent
//! from `FERRIC_AGENT_BIN` when set (the test then waits for the kernel's
//! "Run /init as init process"), else a busybox script that loads every
//! module in `load-order` with `insmod`, reports, and powers off.
//! Without QEMU, a kernel or busybox-static the test prints why it skips,
//! unless `CI=true`.
#![allow(clippy::unwrap_used)]

mod common;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use ferric_imagetools::ramdisk::{build_ramdisk, RamdiskSpec, DEFAULT_MODULES};

const MARKER: &str = "FERRIC-RAMDISK-UP";

const INIT_SCRIPT: &str = r#"#!/bin/busybox sh
export PATH=/bin
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev 2>/dev/null
dir=/lib/modules/$(/bin/busybox uname -r)
loaded=0; failed=""; nodev=""
for m in $(/bin/busybox cat $dir/load-order); do
  if out=$(/bin/busybox insmod $dir/$m 2>&1); then loaded=$((loaded+1))
  else case "$out" in *"No such device"*) nodev="$nodev $m";; *) failed="$failed $m: $out;";; esac
  fi
done
total=$(/bin/busybox wc -l < $dir/load-order)
echo "MODULES loaded=$loaded total=$total no-device=[$nodev ] failed=[$failed ]"
echo "FERRIC-RAMDISK-UP uptime=$(/bin/busybox cut -d' ' -f1 /proc/uptime)"
/bin/busybox poweroff -f
"#;

#[test]
fn default_ramdisk_boots_in_qemu() {
    let Some((kernel, modules_dir)) = common::installed_kernel() else {
        common::require(false, "an installed kernel (/boot/vmlinuz-*, /lib/modules)");
        return;
    };
    let agent_env = std::env::var_os("FERRIC_AGENT_BIN").map(PathBuf::from);
    let busybox = common::static_busybox();
    if agent_env.is_none() && !common::require(busybox.is_some(), "busybox-static (/bin/busybox)") {
        return;
    }
    let dir =
        tempfile::Builder::new().prefix("ferric-ramdisk-test").tempdir_in("/var/tmp").unwrap();
    let (agent, extra, marker) = match (&agent_env, &busybox) {
        (Some(agent), _) => (agent.clone(), Vec::new(), "Run /init as init process"),
        (None, Some(busybox)) => {
            let script = dir.path().join("init");
            std::fs::write(&script, INIT_SCRIPT).unwrap();
            (script, vec![(busybox.clone(), "/bin/busybox".to_owned())], MARKER)
        }
        (None, None) => unreachable!(),
    };
    let spec = RamdiskSpec {
        kernel: kernel.clone(),
        modules_dir,
        modules: DEFAULT_MODULES.iter().map(|name| (*name).to_owned()).collect(),
        agent,
        extra,
        output_dir: dir.path().join("out"),
    };
    let started = std::time::Instant::now();
    let report = build_ramdisk(&spec).unwrap();
    eprintln!(
        "built in {:.1}s: kernel {} ({} bytes), initramfs {} bytes ({:.1} MiB), {} modules: {}; built in: {}",
        started.elapsed().as_secs_f64(),
        report.kernel_version,
        report.kernel_bytes,
        report.initramfs_bytes,
        report.initramfs_bytes as f64 / 1048576.0,
        report.modules.len(),
        report.modules.join(" "),
        report.builtin.join(" "),
    );
    assert!(report.initramfs_bytes < 30 * 1024 * 1024, "initramfs over 30 MB");
    for wanted in ["virtio_net", "virtio_blk", "virtio_pci", "e1000e", "nvme", "ahci", "vfat"] {
        assert!(report.modules.iter().any(|name| name == wanted), "{wanted} missing");
    }

    if !common::require(common::which("qemu-system-x86_64").is_some(), "qemu-system-x86_64") {
        return;
    }
    let args: Vec<OsString> = vec![
        "-kernel".into(),
        report.kernel_path.clone().into(),
        "-initrd".into(),
        report.initramfs_path.clone().into(),
        "-append".into(),
        "console=ttyS0 panic=-1 rdinit=/init".into(),
    ];
    let boot = common::boot(&args, marker, Duration::from_secs(180));
    eprintln!("{}", boot.summary("ramdisk"));
    assert!(
        boot.marker.is_some(),
        "no {marker:?} on the console:\n{}",
        common::tail(&boot.console, 40)
    );
    if agent_env.is_none() {
        let line = boot.console.lines().find(|line| line.starts_with("MODULES ")).unwrap();
        eprintln!("{line}");
        // ENODEV is a module declining this (virtual) hardware, such as
        // crc32c-intel without SSE4.2 under TCG; anything else is a bad module.
        assert!(line.contains("failed=[ ]"), "modules failed to load: {line}");
        assert!(boot.console.contains("FERRIC-RAMDISK-UP uptime="));
    }
}

//! PID 1 duties for real, without a VM: this test binary is re-run as PID 1
//! of a new PID and mount namespace (`unshare --pid --fork --mount
//! --propagation private`), where it mounts `/proc`, `/sys`, `/dev`, ...
//! (`mount_early`, invisible outside), reaps an orphan (`spawn_reaper`)
//! while `Command::status()` still works, and calls `power_off()`, which in
//! a PID namespace ends the namespace's init with SIGINT instead of
//! stopping the machine.
//!
//! Needs root and `unshare` (util-linux); skips with a message otherwise,
//! unless `CI=true`, where it fails. Module loading (`finit_module`) is not
//! exercised here: it would change the host's kernel; the QEMU end-to-end
//! runs cover it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferric_agent::init;

fn skip_or_fail(reason: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{reason}");
    }
    eprintln!("skipped: {reason}");
    false
}

#[test]
fn pid1_mounts_reaps_and_powers_off_in_a_pid_namespace() {
    if !rustix::process::geteuid().is_root() {
        skip_or_fail("needs root (PID and mount namespaces)");
        return;
    }
    if !Command::new("unshare").arg("--version").output().is_ok_and(|o| o.status.success()) {
        skip_or_fail("`unshare` is not installed (apt-get install -y util-linux)");
        return;
    }
    let output = Command::new("unshare")
        .args(["--pid", "--fork", "--mount", "--propagation", "private"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "pid1_helper", "--nocapture", "--test-threads=1"])
        .env("FERRIC_AGENT_PID1", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for marker in ["PID1 yes", "MOUNTS-OK", "COMMAND-OK", "ORPHAN-REAPED", "POWERING-OFF"] {
        assert!(text.contains(marker), "missing {marker}:\n{text}");
    }
    assert!(!text.contains("POWER-OFF-RETURNED"), "{text}");
    // reboot(POWER_OFF) in a PID namespace kills its init "by SIGINT".
    assert_eq!(output.status.signal(), Some(2), "{:?}\n{text}", output.status);
}

/// Zombies whose parent is PID 1, from `/proc`.
fn zombies_of_pid1() -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some(rest) = stat.rfind(')').map(|at| &stat[at + 1..]) else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") && fields.get(1) == Some(&"1") {
            out.push(name);
        }
    }
    out
}

/// Not a test on its own: PID 1 of the namespace (env `FERRIC_AGENT_PID1`).
#[test]
fn pid1_helper() {
    if std::env::var("FERRIC_AGENT_PID1").is_err() {
        return;
    }
    println!("PID1 {}", if init::is_pid1() { "yes" } else { "no" });
    init::mount_early().unwrap();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    for (fstype, target) in [("proc", "/proc"), ("sysfs", "/sys"), ("devtmpfs", "/dev")] {
        assert!(mounts.contains(&format!(" {target} {fstype} ")), "{fstype}:\n{mounts}");
    }
    // Again: already mounted is fine.
    init::mount_early().unwrap();
    println!("MOUNTS-OK");
    // Milestones must not reach the host's console from here.
    init::set_console_device("null");
    init::milestone(init::AGENT_UP, "in a pid namespace");
    assert!(init::spawn_reaper().is_some());
    // The shell exits at once and its `sleep` becomes our orphan; the
    // owner's wait() is unaffected by the reaper.
    let status = Command::new("sh").args(["-c", "sleep 0.2 & exit 0"]).status().unwrap();
    assert!(status.success());
    for _ in 0..5 {
        assert!(Command::new("true").status().unwrap().success());
    }
    println!("COMMAND-OK");
    let started = Instant::now();
    let mut seen_zombie = false;
    loop {
        let zombies = zombies_of_pid1();
        seen_zombie |= !zombies.is_empty();
        if seen_zombie && zombies.is_empty() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(8), "orphan not reaped: {zombies:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("ORPHAN-REAPED after {:?}", started.elapsed());
    println!("POWERING-OFF");
    let error = init::power_off();
    println!("POWER-OFF-RETURNED {error}");
    std::process::exit(1);
}

//! `ferric lab`: `lab up` builds the images, starts the namespace, QEMU
//! machine, `ferric serve` and `ferric vbmc` and cleans the node; the API
//! forwarded to 127.0.0.1 deploys the demo image, which prints
//! `INSTANCE-UP` on the console; `lab down` removes the namespace.
//!
//! Needs root, `ip`, QEMU with Debian's iPXE ROMs, a kernel in /boot,
//! busybox-static, syslinux/mtools and the static agent (`FERRIC_AGENT_BIN`,
//! see `.ci/run`); skips with a reason elsewhere, fails under `CI=true`.
//! Uses the fixed namespace `ferric-lab` (other QEMU tests use their own).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::sh;

fn skip_test(reason: &str) {
    common::skip("the lab test", reason)
}

/// Runs `ferric lab down` on drop, whatever happened, and removes the directory.
struct Down<'a> {
    dir: &'a Path,
}

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_ferric"))
            .args(["lab", "down", "--dir"])
            .arg(self.dir)
            .output();
        let _ = sh("ip netns pids ferric-lab | xargs -r kill -9; ip netns del ferric-lab");
        let _ = std::fs::remove_dir_all(self.dir);
    }
}

#[test]
fn lab_up_deploy_down() {
    if sh("id -u").1.trim() != "0" {
        return skip_test("not root");
    }
    for tool in ["ip", "qemu-system-x86_64", "qemu-img", "syslinux", "mcopy"] {
        if !sh(&format!("command -v {tool}")).0 {
            return skip_test(&format!("{tool} is not installed"));
        }
    }
    let (_kernel, agent) = match common::kernel_and_agent() {
        Ok(found) => found,
        Err(reason) => return skip_test(&reason),
    };
    if Path::new("/run/netns/ferric-lab").exists() {
        return skip_test("a lab is already running here (ferric lab down)");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("ferric-lab-test-{}", std::process::id()));
    let down = Down { dir: &dir };
    let ferric = env!("CARGO_BIN_EXE_ferric");
    let url = format!("http://127.0.0.1:{port}");
    let logs = || {
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        format!(
            "--- console ---\n{}\n--- lab.log ---\n{}\n--- serve.log ---\n{}\n--- vbmc.log ---\n{}",
            read("lab-0.console"),
            read("lab.log"),
            read("serve.log"),
            read("vbmc.log")
        )
    };

    let started = Instant::now();
    let output = Command::new(ferric)
        .args(["lab", "up", "--nodes", "1", "--wait", "--api-port", &port.to_string(), "--dir"])
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
    let up = started.elapsed();
    assert!(text.contains("available"), "lab up did not leave lab-0 available: {text}");

    let (ok, text) = sh(&format!("{ferric} lab status --dir {}", dir.display()));
    assert!(ok && text.contains("running") && text.contains("lab-0"), "lab status: {text}");

    let started = Instant::now();
    let (ok, text) = sh(&format!("{ferric} --url {url} node deploy lab-0 --image demo --wait 300"));
    assert!(ok, "deploy: {text}\n{}", logs());
    let deploy = started.elapsed();
    let console = || std::fs::read_to_string(dir.join("lab-0.console")).unwrap_or_default();
    let started = Instant::now();
    while !console().contains("INSTANCE-UP") {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the image did not come up\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let boot = started.elapsed();
    eprintln!(
        "lab timings: up (with images and cleaning) {:.1} s, deploy {:.1} s, image up {:.1} s",
        up.as_secs_f64(),
        deploy.as_secs_f64(),
        boot.as_secs_f64()
    );

    let supervisor = std::fs::read_to_string(dir.join("lab.pid")).unwrap();
    let (ok, text) = sh(&format!("{ferric} lab down --dir {}", dir.display()));
    assert!(ok, "lab down: {text}");
    assert!(!Path::new("/run/netns/ferric-lab").exists(), "the namespace is still there");
    let proc = format!("/proc/{}/cmdline", supervisor.trim());
    let cmdline = std::fs::read(&proc).unwrap_or_default();
    assert!(!String::from_utf8_lossy(&cmdline).contains("lab\0run"), "the supervisor still runs");
    drop(down);
}

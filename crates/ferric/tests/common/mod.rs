//! What the QEMU tests share: shell helpers, the skip-or-fail rule, a
//! network namespace (and what runs in it) removed on drop, the newest
//! kernel in /boot, and console milestones.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Child, Command};

pub fn sh(command: &str) -> (bool, String) {
    let output = Command::new("sh").arg("-c").arg(command).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

pub fn skip(test: &str, reason: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("cannot run {test} under CI: {reason}");
    }
    eprintln!("skipping {test}: {reason}");
}

/// Removes the namespace (and everything running in it) and the scratch
/// directory on drop.
pub struct Lab {
    pub namespace: String,
    pub dir: PathBuf,
    pub processes: Vec<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = sh(&format!(
            "ip netns pids {ns} | xargs -r kill -9; ip netns del {ns}",
            ns = self.namespace
        ));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn newest_kernel() -> Option<PathBuf> {
    let mut kernels: Vec<PathBuf> = std::fs::read_dir("/boot")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .collect();
    kernels.sort();
    kernels.pop()
}

/// `MARKER … uptime=S` lines from the console, as (marker, seconds).
pub fn milestones(console: &str) -> Vec<(String, f64)> {
    console
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let (head, uptime) = line.rsplit_once(" uptime=")?;
            let marker = head.split_whitespace().next()?;
            let seconds: f64 = uptime.trim().parse().ok()?;
            marker
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '-')
                .then(|| (marker.to_owned(), seconds))
        })
        .collect()
}

/// The newest kernel in /boot and the static agent (`FERRIC_AGENT_BIN`),
/// or why a QEMU test cannot run here.
pub fn kernel_and_agent() -> Result<(PathBuf, PathBuf), String> {
    let kernel = newest_kernel().ok_or("no kernel in /boot (apt-get install linux-image-amd64)")?;
    let agent = std::env::var_os("FERRIC_AGENT_BIN")
        .map(PathBuf::from)
        .filter(|path| path.exists())
        .ok_or("FERRIC_AGENT_BIN does not name the static agent (see .ci/run)")?;
    Ok((kernel, agent))
}

impl Lab {
    /// A namespace `<prefix><tag>` holding a bridge `br<prefix><tag>` with
    /// `server`/24, and a scratch directory; `tag` is unique to this process.
    /// Returns the lab, the bridge's name and the tag.
    pub fn with_bridge(prefix: &str, server: &str) -> Result<(Lab, String, String), String> {
        let tag = format!("{:x}", std::process::id());
        let tag = tag[tag.len().saturating_sub(6)..].to_owned();
        let lab = Lab {
            namespace: format!("{prefix}{tag}"),
            dir: std::env::temp_dir().join(format!("ferric-{prefix}-{tag}")),
            processes: Vec::new(),
        };
        let bridge = format!("br{prefix}{tag}");
        let (ok, text) = sh(&format!(
            "set -e; ip netns add {ns}; ip -n {ns} link set lo up; \
             ip -n {ns} link add {bridge} type bridge; ip -n {ns} addr add {server}/24 dev {bridge}; \
             ip -n {ns} link set {bridge} up",
            ns = lab.namespace
        ));
        if !ok {
            return Err(format!("cannot create the network namespace: {text}"));
        }
        std::fs::create_dir_all(&lab.dir).map_err(|error| error.to_string())?;
        Ok((lab, bridge, tag))
    }

    /// Adds a tap `name` on `bridge`.
    pub fn add_tap(&self, name: &str, bridge: &str) {
        let (ok, text) = sh(&format!(
            "ip -n {ns} tuntap add dev {name} mode tap && ip -n {ns} link set {name} master {bridge} \
             && ip -n {ns} link set {name} up",
            ns = self.namespace
        ));
        assert!(ok, "tap {name}: {text}");
    }
}

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

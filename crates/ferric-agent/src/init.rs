//! PID 1 duties of the deploy ramdisk: early mounts, reaping orphans,
//! powering off, and milestone lines on the console.
//!
//! Everything that changes the system ([`mount_early`], [`power_off`],
//! [`reboot`]) refuses with [`InitError::NotPid1`] outside PID 1, so tests and
//! development runs cannot unmount or power off the host. [`console_log`]
//! writes to the console device as PID 1 and to stderr otherwise.
//!
//! The reaper ([`spawn_reaper`]) only reaps zombies that stayed unreaped for
//! [`REAPER_GRACE`]: a child started with `std::process::Command` or
//! `tokio::process::Command` is collected by its owner first, so the
//! reaper never steals an exit status (a blind `waitpid(-1)` would make the
//! owner's `wait()` fail with `ECHILD`).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::mount::MountFlags;

/// Milestone: the agent runs (first line it prints).
pub const AGENT_UP: &str = "FERRIC-AGENT-UP";
/// Milestone: kernel modules loaded.
pub const MODULES_LOADED: &str = "MODULES-LOADED";
/// Milestone: an interface got a lease (`DHCP-LEASE <iface> <addr>/<prefix>`).
pub const DHCP_LEASE: &str = "DHCP-LEASE";
/// Milestone: no interface got a lease.
pub const DHCP_FAILED: &str = "DHCP-FAILED";

/// How long a zombie may wait for its parent's `wait()` before the reaper
/// collects it.
pub const REAPER_GRACE: Duration = Duration::from_secs(2);

/// Errors of the PID 1 duties.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The call changes the whole system and this process is not PID 1.
    #[error("not PID 1: refusing to {0}")]
    NotPid1(&'static str),
    /// A required mount failed.
    #[error("mount {fstype} on {target}: {source}")]
    Mount {
        /// Filesystem type.
        fstype: &'static str,
        /// Mount point.
        target: &'static str,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
    /// The reboot system call failed.
    #[error("{action}: {source}")]
    Reboot {
        /// `power off` or `reboot`.
        action: &'static str,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
}

/// Whether this process is PID 1 (the ramdisk's init).
pub fn is_pid1() -> bool {
    rustix::process::getpid().is_init()
}

/// One early mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EarlyMount {
    /// Source name shown in `/proc/mounts`.
    pub source: &'static str,
    /// Mount point (created first).
    pub target: &'static str,
    /// Filesystem type.
    pub fstype: &'static str,
    /// Mount options (`data`).
    pub options: &'static str,
    /// Whether failure stops the agent.
    pub required: bool,
}

/// The early mounts, in order (`/dev` before `/dev/pts`).
pub const EARLY_MOUNTS: &[EarlyMount] = &[
    EarlyMount { source: "proc", target: "/proc", fstype: "proc", options: "", required: true },
    EarlyMount { source: "sysfs", target: "/sys", fstype: "sysfs", options: "", required: true },
    EarlyMount {
        source: "devtmpfs",
        target: "/dev",
        fstype: "devtmpfs",
        options: "mode=0755",
        required: true,
    },
    EarlyMount {
        source: "tmpfs",
        target: "/run",
        fstype: "tmpfs",
        options: "mode=0755",
        required: false,
    },
    EarlyMount {
        source: "tmpfs",
        target: "/tmp",
        fstype: "tmpfs",
        options: "mode=1777",
        required: false,
    },
    EarlyMount {
        source: "devpts",
        target: "/dev/pts",
        fstype: "devpts",
        options: "mode=0620,ptmxmode=0666",
        required: false,
    },
];

fn flags_for(fstype: &str) -> MountFlags {
    match fstype {
        "proc" | "sysfs" => MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        "devtmpfs" | "devpts" => MountFlags::NOSUID | MountFlags::NOEXEC,
        _ => MountFlags::NOSUID | MountFlags::NODEV,
    }
}

fn mount_one(m: &EarlyMount) -> std::io::Result<()> {
    std::fs::create_dir_all(m.target)?;
    let data = std::ffi::CString::new(m.options).unwrap_or_default();
    match rustix::mount::mount(m.source, m.target, m.fstype, flags_for(m.fstype), data.as_c_str()) {
        Ok(()) | Err(Errno::BUSY) => Ok(()),
        Err(errno) => Err(errno.into()),
    }
}

/// Mounts [`EARLY_MOUNTS`]; already mounted (`EBUSY`) is fine. Optional
/// mounts that fail are logged; a required one that fails is an error.
pub fn mount_early() -> Result<(), InitError> {
    if !is_pid1() {
        return Err(InitError::NotPid1("mount /proc, /sys and /dev"));
    }
    for m in EARLY_MOUNTS {
        if let Err(source) = mount_one(m) {
            if m.required {
                return Err(InitError::Mount { fstype: m.fstype, target: m.target, source });
            }
            console_log(&format!("mount {} on {} failed: {source}", m.fstype, m.target));
        }
    }
    Ok(())
}

/// Parses `/proc/<pid>/stat`: `(state, parent pid)`.
fn parse_stat(stat: &str) -> Option<(char, i32)> {
    // The command name is in parentheses and may contain anything.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Our children that are zombies, read from `proc_root` (normally `/proc`).
fn zombie_children(proc_root: &Path, parent: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir(proc_root) else { return Vec::new() };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat"))
                .ok()
                .and_then(|s| parse_stat(&s))
                .is_some_and(|(state, ppid)| state == 'Z' && ppid == parent)
        })
        .collect()
}

/// One reaper pass: remembers when each zombie was first seen and reaps
/// those older than `grace`. Returns the pids reaped.
fn reap_pass(
    proc_root: &Path,
    parent: i32,
    first_seen: &mut HashMap<i32, Instant>,
    grace: Duration,
) -> Vec<i32> {
    let now = Instant::now();
    let zombies = zombie_children(proc_root, parent);
    first_seen.retain(|pid, _| zombies.contains(pid));
    let mut reaped = Vec::new();
    for pid in zombies {
        let seen = *first_seen.entry(pid).or_insert(now);
        if now.duration_since(seen) < grace {
            continue;
        }
        let Some(raw) = rustix::process::Pid::from_raw(pid) else { continue };
        if let Ok(Some(_)) =
            rustix::process::waitpid(Some(raw), rustix::process::WaitOptions::NOHANG)
        {
            reaped.push(pid);
        }
        first_seen.remove(&pid);
    }
    reaped
}

/// Starts the zombie reaper thread when PID 1 (`None` otherwise): every
/// 500 ms it reaps children left as zombies for longer than
/// [`REAPER_GRACE`].
pub fn spawn_reaper() -> Option<std::thread::JoinHandle<()>> {
    if !is_pid1() {
        return None;
    }
    std::thread::Builder::new()
        .name("reaper".into())
        .spawn(|| {
            let mut first_seen = HashMap::new();
            loop {
                let reaped = reap_pass(Path::new("/proc"), 1, &mut first_seen, REAPER_GRACE);
                if !reaped.is_empty() {
                    tracing::debug!(?reaped, "reaped orphans");
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        })
        .ok()
}

fn reboot_with(action: &'static str, cmd: rustix::system::RebootCommand) -> InitError {
    if !is_pid1() {
        return InitError::NotPid1(action);
    }
    console_log(&format!(
        "FERRIC-AGENT-{}",
        if action == "reboot" { "REBOOT" } else { "POWEROFF" }
    ));
    rustix::fs::sync();
    match rustix::system::reboot(cmd) {
        Ok(()) => InitError::Reboot {
            action,
            source: std::io::Error::other("reboot system call returned"),
        },
        Err(errno) => InitError::Reboot { action, source: errno.into() },
    }
}

/// Syncs filesystems and powers the machine off. Returns only on failure
/// (or when not PID 1).
pub fn power_off() -> InitError {
    reboot_with("power off", rustix::system::RebootCommand::PowerOff)
}

/// Syncs filesystems and reboots. Returns only on failure (or when not PID 1).
pub fn reboot() -> InitError {
    reboot_with("reboot", rustix::system::RebootCommand::Restart)
}

/// Where [`console_log`] writes as PID 1 (default `/dev/console`).
static CONSOLE: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Sends console lines to `/dev/<device>` instead of `/dev/console`
/// (from `ferric.console=`).
pub fn set_console_device(device: &str) {
    let path = Path::new("/dev").join(device.trim_start_matches("/dev/"));
    if let Ok(mut console) = CONSOLE.lock() {
        *console = Some(path);
    }
}

/// Seconds since boot, from `/proc/uptime`.
pub fn uptime() -> Option<f64> {
    std::fs::read_to_string("/proc/uptime").ok()?.split_whitespace().next()?.parse().ok()
}

/// Appends `line` to `path`; the line ends with a newline.
pub fn write_line(path: &Path, line: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().append(true).create(false).open(path)?;
    file.write_all(format!("{line}\n").as_bytes())
}

/// Prints one line on the console (PID 1) or stderr (otherwise); never
/// fails (falls back to stderr).
pub fn console_log(line: &str) {
    if is_pid1() {
        let path = CONSOLE
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .unwrap_or_else(|| PathBuf::from("/dev/console"));
        if write_line(&path, line).is_ok() {
            return;
        }
    }
    eprintln!("{line}");
}

/// Formats a milestone line: `MARKER detail uptime=S.SS`.
pub fn milestone_line(marker: &str, detail: &str, uptime: Option<f64>) -> String {
    let mut line = marker.to_owned();
    if !detail.is_empty() {
        line.push(' ');
        line.push_str(detail);
    }
    if let Some(up) = uptime {
        line.push_str(&format!(" uptime={up:.2}"));
    }
    line
}

/// Prints a milestone (`FERRIC-AGENT-UP`, `MODULES-LOADED`,
/// `DHCP-LEASE eth0 198.18.0.100/24`, ...) with the uptime, for the
/// end-to-end tests that grep the serial console.
pub fn milestone(marker: &str, detail: &str) {
    console_log(&milestone_line(marker, detail, uptime()));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn not_pid1_refuses() {
        assert!(!is_pid1());
        assert!(matches!(power_off(), InitError::NotPid1(_)));
        assert!(matches!(reboot(), InitError::NotPid1(_)));
        assert!(matches!(mount_early(), Err(InitError::NotPid1(_))));
        assert!(spawn_reaper().is_none());
    }

    #[test]
    fn early_mounts_order() {
        let targets: Vec<&str> = EARLY_MOUNTS.iter().map(|m| m.target).collect();
        assert_eq!(targets, ["/proc", "/sys", "/dev", "/run", "/tmp", "/dev/pts"]);
        assert!(EARLY_MOUNTS.iter().take(3).all(|m| m.required));
    }

    #[test]
    fn stat_parsing() {
        assert_eq!(parse_stat("42 (sh) Z 1 42 42 0 -1"), Some(('Z', 1)));
        assert_eq!(parse_stat("42 (a) b) c) S 7 1"), Some(('S', 7)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x)"), None);
    }

    #[test]
    fn milestone_format_and_console_fallback() {
        assert_eq!(
            milestone_line(DHCP_LEASE, "eth0 198.18.0.100/24", Some(2.5)),
            "DHCP-LEASE eth0 198.18.0.100/24 uptime=2.50"
        );
        assert_eq!(milestone_line(AGENT_UP, "", None), "FERRIC-AGENT-UP");
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console");
        std::fs::write(&log, "").unwrap();
        write_line(&log, "MODULES-LOADED").unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "MODULES-LOADED\n");
        assert!(write_line(&dir.path().join("absent"), "x").is_err());
        // Not PID 1: goes to stderr, must not fail.
        milestone(AGENT_UP, "test");
    }

    #[test]
    fn reaper_waits_for_grace_then_reaps_only_listed_zombies() {
        // A fake /proc lists only our own child, so zombies of other tests
        // running in this process are never touched.
        let child = Command::new("true").stdout(Stdio::null()).spawn().unwrap();
        let pid = child.id() as i32;
        let me = rustix::process::getpid().as_raw_nonzero().get();
        let fake = tempfile::tempdir().unwrap();
        std::fs::create_dir(fake.path().join(pid.to_string())).unwrap();
        std::fs::write(
            fake.path().join(pid.to_string()).join("stat"),
            format!("{pid} (true) Z {me} 0"),
        )
        .unwrap();
        std::fs::create_dir(fake.path().join("self")).unwrap();
        assert_eq!(zombie_children(fake.path(), me), [pid]);
        let mut seen = HashMap::new();
        // Within the grace period: left for its owner.
        assert!(reap_pass(fake.path(), me, &mut seen, Duration::from_secs(60)).is_empty());
        assert!(seen.contains_key(&pid));
        // Past it: reaped (once the child has really exited).
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if reap_pass(fake.path(), me, &mut seen, Duration::ZERO) == [pid] {
                break;
            }
            assert!(Instant::now() < deadline, "child {pid} was not reaped");
            std::thread::sleep(Duration::from_millis(10));
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(parse_stat(&status).is_none_or(|(_, ppid)| ppid != me), "{status}");
        drop(child);
    }
}

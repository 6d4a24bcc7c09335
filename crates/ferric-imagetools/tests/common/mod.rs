//! Shared helpers: finding tools (skip, or fail under `CI=true`) and
//! booting QEMU (TCG, no network) until a marker shows on the serial console.
#![allow(dead_code, clippy::unwrap_used)]

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Whether `CI=true`: then a missing tool fails instead of skipping.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true")
}

/// Skips (returns false, printing why) or, under CI, panics.
pub fn require(condition: bool, what: &str) -> bool {
    if condition {
        return true;
    }
    if ci() {
        panic!("CI=true and {what} is missing");
    }
    eprintln!("SKIPPED: {what} is missing");
    false
}

/// `program` found on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
}

/// The installed kernel and its modules directory, if any.
pub fn installed_kernel() -> Option<(PathBuf, PathBuf)> {
    let kernel = ferric_imagetools::ramdisk::default_kernel().ok()?;
    let version = ferric_imagetools::ramdisk::kernel_version(&kernel).ok()?;
    let modules = Path::new("/lib/modules").join(version);
    (std::fs::File::open(&kernel).is_ok() && modules.join("modules.dep").is_file())
        .then_some((kernel, modules))
}

/// The static busybox (Debian's busybox-static installs it as /bin/busybox).
pub fn static_busybox() -> Option<PathBuf> {
    let path = PathBuf::from("/bin/busybox");
    let output = Command::new(&path).arg("--list").output().ok()?;
    let list = String::from_utf8_lossy(&output.stdout);
    // Only a static build runs in an initramfs without a libc.
    let bytes = std::fs::read(&path).ok()?;
    (ferric_imagetools::ramdisk::elf_interpreter(&bytes).is_none()
        && list.lines().any(|line| line == "poweroff"))
    .then_some(path)
}

/// What one QEMU boot showed.
#[derive(Debug)]
pub struct Boot {
    pub console: String,
    /// From QEMU's start to the kernel's first console line ("Linux version").
    pub kernel_start: Option<Duration>,
    /// From QEMU's start to the marker.
    pub marker: Option<Duration>,
    pub exited: bool,
}

impl Boot {
    pub fn summary(&self, label: &str) -> String {
        let fmt =
            |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{:.1}s", d.as_secs_f64()));
        let kernel_to_marker = match (self.kernel_start, self.marker) {
            (Some(start), Some(marker)) => format!("{:.1}s", (marker - start).as_secs_f64()),
            _ => "-".into(),
        };
        format!(
            "{label}: qemu start -> kernel {}; -> marker {}; kernel -> marker {kernel_to_marker}",
            fmt(self.kernel_start),
            fmt(self.marker)
        )
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `qemu-system-x86_64 -accel tcg -nic none -nographic -no-reboot`
/// plus `args` until `marker` appears on the console (then gives the
/// guest 10 s to power off) or `timeout` passes; QEMU is killed either way.
pub fn boot(args: &[OsString], marker: &str, timeout: Duration) -> Boot {
    let mut command = Command::new("qemu-system-x86_64");
    command
        .args(["-accel", "tcg", "-nic", "none", "-nographic", "-no-reboot", "-m", "512"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = KillOnDrop(command.spawn().expect("starting qemu-system-x86_64"));
    let (sender, receiver) = mpsc::channel::<(Instant, Vec<u8>)>();
    let mut stdout = child.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(read) = stdout.read(&mut buffer) {
            if read == 0 || sender.send((Instant::now(), buffer[..read].to_vec())).is_err() {
                break;
            }
        }
    });
    let mut console = Vec::new();
    let mut kernel_start: Option<Duration> = None;
    let mut marker_at: Option<Duration> = None;
    let deadline = started + timeout;
    let mut exited = false;
    loop {
        let now = Instant::now();
        let wait_until = match marker_at {
            Some(at) => (started + at + Duration::from_secs(10)).min(deadline.max(now)),
            None => deadline,
        };
        if now >= wait_until {
            break;
        }
        match receiver.recv_timeout((wait_until - now).min(Duration::from_millis(500))) {
            Ok((at, bytes)) => {
                console.extend_from_slice(&bytes);
                let text = String::from_utf8_lossy(&console);
                if kernel_start.is_none() && text.contains("Linux version") {
                    kernel_start = Some(at - started);
                }
                if marker_at.is_none() && text.contains(marker) {
                    marker_at = Some(at - started);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if child.0.try_wait().ok().flatten().is_some() {
                    exited = true;
                    // Drain what is left.
                    while let Ok((_, bytes)) = receiver.recv_timeout(Duration::from_millis(200)) {
                        console.extend_from_slice(&bytes);
                    }
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                exited = child.0.wait().is_ok();
                break;
            }
        }
    }
    if marker_at.is_none() {
        let text = String::from_utf8_lossy(&console);
        if text.contains(marker) {
            marker_at = Some(started.elapsed());
        }
    }
    if !exited {
        exited = child.0.try_wait().ok().flatten().is_some();
    }
    let mut stderr = String::new();
    if let Some(mut err) = child.0.stderr.take() {
        if exited {
            let _ = err.read_to_string(&mut stderr);
        }
    }
    drop(child);
    let _ = reader.join();
    let mut console = String::from_utf8_lossy(&console).into_owned();
    if !stderr.is_empty() {
        console.push_str("\n--- qemu stderr ---\n");
        console.push_str(&stderr);
    }
    Boot { console, kernel_start, marker: marker_at, exited }
}

/// The last `lines` lines of a console log, for failure messages.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `gzip -dc FILE` (the real gzip).
pub fn gunzip(path: &Path) -> Vec<u8> {
    let output = Command::new("gzip").arg("-dc").arg(path).output().unwrap();
    assert!(output.status.success(), "gzip -dc: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// Runs GNU cpio with `args` in `dir`, feeding it `archive`; returns stdout.
pub fn cpio(dir: &Path, args: &[&str], archive: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("cpio")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = archive.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(output.status.success(), "cpio {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

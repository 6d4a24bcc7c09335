//! [`QemuMachine`]: one QEMU process driven through QMP (its JSON monitor
//! on a unix socket).
//!
//! Power is the process: "on" means QEMU answers on the QMP socket, so a
//! vbmc restarted while its machines run finds them on. Power on starts
//! QEMU from the configured command line plus `-qmp` and, when a boot
//! override is set, `-boot order=…` — and, for machines whose devices carry
//! `bootindex=` (UEFI firmware reads only that), those indexes rewritten so
//! the chosen kind of device comes first ([`apply_boot_override`]). Restart
//! semantics: the override is used by the next start, and dropped after it
//! unless persistent.
//! QEMU runs in its own process group with stdout and stderr appended to
//! the log file, so stopping the vbmc does not stop the machines. Power off
//! is QMP `quit`, then a kill after [`QemuConfig::stop_timeout`]; soft off
//! is `system_powerdown` (the ACPI button); reset is `system_reset`, or a
//! restart when a boot override is pending.
//!
//! QEMU's QMP monitor serves one client at a time: the vbmc needs the
//! socket to itself (a second client makes operations wait, then fail as
//! unresponsive after 5 s).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use crate::machine::{BootDevice, BootSetting, Machine, MachineError, PowerState, Result};

fn default_binary() -> String {
    "qemu-system-x86_64".to_string()
}

fn default_stop_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_start_timeout() -> Duration {
    Duration::from_secs(15)
}

/// How to run one QEMU machine.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct QemuConfig {
    /// The QEMU binary (looked up on `PATH`).
    #[serde(default = "default_binary")]
    pub binary: String,
    /// Arguments: disks, NICs, firmware, memory, ... (`-qmp` and `-boot` are
    /// added by the vbmc).
    #[serde(default)]
    pub args: Vec<String>,
    /// The QMP unix socket (created by QEMU).
    pub qmp_socket: PathBuf,
    /// QEMU's stdout and stderr are appended here.
    pub log: PathBuf,
    /// How long `quit` may take before QEMU is killed.
    #[serde(default = "default_stop_timeout", with = "seconds")]
    pub stop_timeout: Duration,
    /// How long QEMU may take to open its QMP socket.
    #[serde(default = "default_start_timeout", with = "seconds")]
    pub start_timeout: Duration,
}

mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let seconds = f64::deserialize(deserializer)?;
        Duration::try_from_secs_f64(seconds).map_err(serde::de::Error::custom)
    }
}

impl QemuConfig {
    pub fn new(args: Vec<String>, qmp_socket: PathBuf, log: PathBuf) -> Self {
        Self {
            binary: default_binary(),
            args,
            qmp_socket,
            log,
            stop_timeout: default_stop_timeout(),
            start_timeout: default_start_timeout(),
        }
    }
}

/// A QMP connection: greeting read, capabilities negotiated.
pub struct Qmp {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Qmp {
    /// Connects and leaves capabilities negotiation mode.
    pub async fn connect(path: &Path) -> std::io::Result<Qmp> {
        let stream = UnixStream::connect(path).await?;
        let (read, writer) = stream.into_split();
        let mut qmp = Qmp { reader: BufReader::new(read), writer };
        let greeting = qmp.read_message().await?;
        if greeting.get("QMP").is_none() {
            return Err(std::io::Error::other(format!("not a QMP greeting: {greeting}")));
        }
        qmp.execute("qmp_capabilities", None).await?;
        Ok(qmp)
    }

    async fn read_message(&mut self) -> std::io::Result<Value> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line).await? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "QMP connection closed",
                ));
            }
            if line.trim().is_empty() {
                continue;
            }
            return serde_json::from_str(&line).map_err(std::io::Error::other);
        }
    }

    /// Runs one command; returns its `return` value. Events are skipped.
    pub async fn execute(
        &mut self,
        command: &str,
        arguments: Option<Value>,
    ) -> std::io::Result<Value> {
        let mut request = json!({ "execute": command });
        if let Some(arguments) = arguments {
            request["arguments"] = arguments;
        }
        let mut text = request.to_string();
        text.push('\n');
        self.writer.write_all(text.as_bytes()).await?;
        loop {
            let message = self.read_message().await?;
            if let Some(value) = message.get("return") {
                return Ok(value.clone());
            }
            if let Some(error) = message.get("error") {
                return Err(std::io::Error::other(format!("QMP {command}: {error}")));
            }
        }
    }

    /// `query-status`: the run state (`running`, `paused`, `prelaunch`, ...).
    pub async fn status(&mut self) -> std::io::Result<String> {
        let value = self.execute("query-status", None).await?;
        Ok(value.get("status").and_then(Value::as_str).unwrap_or("unknown").to_string())
    }
}

struct Inner {
    /// The QEMU process this vbmc started, if any.
    child: Option<Child>,
    boot: BootSetting,
    /// The device the running process was started with.
    running_boot: BootDevice,
}

/// A QEMU virtual machine.
pub struct QemuMachine {
    name: String,
    config: QemuConfig,
    /// Kill QEMU when this value is dropped (for tests).
    kill_on_drop: bool,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for QemuMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QemuMachine")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish()
    }
}

impl Drop for QemuMachine {
    fn drop(&mut self) {
        if !self.kill_on_drop {
            return;
        }
        if let Some(child) = self.inner.get_mut().child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_file(&self.config.qmp_socket);
    }
}

impl QemuMachine {
    pub fn new(name: impl Into<String>, config: QemuConfig) -> Self {
        Self {
            name: name.into(),
            config,
            kill_on_drop: false,
            inner: Mutex::new(Inner {
                child: None,
                boot: BootSetting::default(),
                running_boot: BootDevice::None,
            }),
        }
    }

    /// Kills QEMU (if this vbmc started it) when the machine is dropped.
    pub fn kill_on_drop(mut self, kill: bool) -> Self {
        self.kill_on_drop = kill;
        self
    }

    pub fn config(&self) -> &QemuConfig {
        &self.config
    }

    /// The process id of the QEMU this vbmc started and that still runs.
    pub async fn pid(&self) -> Option<u32> {
        let mut inner = self.inner.lock().await;
        Self::reap(&mut inner);
        inner.child.as_ref().and_then(Child::id)
    }

    fn failed(&self, reason: impl Into<String>) -> MachineError {
        MachineError::Failed { name: self.name.clone(), reason: reason.into() }
    }

    fn io(&self, source: std::io::Error) -> MachineError {
        MachineError::Io { name: self.name.clone(), source }
    }

    /// Forgets a child that exited.
    fn reap(inner: &mut Inner) {
        if let Some(child) = inner.child.as_mut() {
            if !matches!(child.try_wait(), Ok(None)) {
                inner.child = None;
            }
        }
    }

    /// A QMP connection, or `None` when nothing listens (off).
    async fn qmp(&self) -> Result<Option<Qmp>> {
        let connecting = Qmp::connect(&self.config.qmp_socket);
        match tokio::time::timeout(Duration::from_secs(5), connecting).await {
            Ok(Ok(qmp)) => Ok(Some(qmp)),
            Ok(Err(error))
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::NotFound
                        | std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::UnexpectedEof
                        | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                Ok(None)
            }
            Ok(Err(error)) => Err(self.io(error)),
            Err(_) => Err(MachineError::Unresponsive {
                name: self.name.clone(),
                reason: "QMP did not answer within 5 s".to_string(),
            }),
        }
    }

    async fn state(&self, inner: &mut Inner) -> Result<PowerState> {
        Self::reap(inner);
        Ok(if self.qmp().await?.is_some() { PowerState::On } else { PowerState::Off })
    }

    /// Runs one QMP command on the running machine.
    async fn command(&self, command: &str) -> Result<()> {
        let Some(mut qmp) = self.qmp().await? else {
            return Err(MachineError::PoweredOff(self.name.clone()));
        };
        match tokio::time::timeout(Duration::from_secs(5), qmp.execute(command, None)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(self.io(error)),
            Err(_) => Err(MachineError::Unresponsive {
                name: self.name.clone(),
                reason: format!("QMP {command} did not answer"),
            }),
        }
    }

    fn boot_args(device: BootDevice) -> Vec<String> {
        let order = match device {
            BootDevice::None => return vec![],
            BootDevice::Pxe => "order=n",
            BootDevice::Disk => "order=c",
            BootDevice::Cdrom => "order=d",
            BootDevice::Bios => "menu=on",
        };
        vec!["-boot".to_string(), order.to_string()]
    }

    async fn start(&self, inner: &mut Inner) -> Result<()> {
        if self.state(inner).await?.is_on() {
            return Ok(());
        }
        let socket = &self.config.qmp_socket;
        match std::fs::remove_file(socket) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(self.io(error)),
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.config.log)
            .map_err(|e| self.failed(format!("log {}: {e}", self.config.log.display())))?;
        let log_err = log.try_clone().map_err(|e| self.io(e))?;
        let device = inner.boot.device;
        let mut command = Command::new(&self.config.binary);
        command
            .args(apply_boot_override(&self.config.args, device))
            .arg("-name")
            .arg(&self.name)
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", socket.display()))
            .args(Self::boot_args(device))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .process_group(0);
        tracing::info!(machine = %self.name, boot = device.as_str(), "starting QEMU");
        let mut child = command
            .spawn()
            .map_err(|e| self.failed(format!("cannot start {}: {e}", self.config.binary)))?;
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(self.failed(format!(
                    "QEMU exited at start ({status}); see {}",
                    self.config.log.display()
                )));
            }
            if let Ok(Some(mut qmp)) = self.qmp().await {
                if qmp.status().await.is_ok() {
                    break;
                }
            }
            if started.elapsed() > self.config.start_timeout {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(self.failed("QEMU did not open its QMP socket in time"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        inner.child = Some(child);
        inner.running_boot = device;
        inner.boot = inner.boot.after_start();
        Ok(())
    }

    async fn stop(&self, inner: &mut Inner) -> Result<()> {
        if !self.state(inner).await?.is_on() {
            return Ok(());
        }
        tracing::info!(machine = %self.name, "stopping QEMU");
        // The connection drops as QEMU exits; the answer may not arrive.
        let _ = self.command("quit").await;
        let deadline = Instant::now() + self.config.stop_timeout;
        loop {
            if let Some(child) = inner.child.as_mut() {
                let remaining = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(remaining, child.wait()).await {
                    Ok(_) => {
                        inner.child = None;
                        break;
                    }
                    Err(_) => {
                        tracing::warn!(machine = %self.name, "QEMU ignored quit; killing it");
                        let _ = child.start_kill();
                        let _ = child.wait().await;
                        inner.child = None;
                        break;
                    }
                }
            }
            // Not our process (started by an earlier vbmc): wait for the
            // socket to go quiet.
            if self.qmp().await?.is_none() {
                break;
            }
            if Instant::now() > deadline {
                return Err(MachineError::Unresponsive {
                    name: self.name.clone(),
                    reason: "QEMU did not quit".to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = std::fs::remove_file(&self.config.qmp_socket);
        Ok(())
    }
}

/// What a `-device` is for booting, from its driver name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeviceKind {
    Nic,
    Disk,
    Cdrom,
    Other,
}

fn device_kind(driver: &str) -> DeviceKind {
    const NICS: [&str; 6] = ["e1000", "e1000e", "rtl8139", "vmxnet3", "pcnet", "ne2k_pci"];
    if driver.contains("-net") || NICS.contains(&driver) {
        DeviceKind::Nic
    } else if driver.ends_with("-cd") {
        DeviceKind::Cdrom
    } else if driver.contains("-blk") || driver.ends_with("-hd") || driver == "nvme" {
        DeviceKind::Disk
    } else {
        DeviceKind::Other
    }
}

/// `args` with the `bootindex=` of every `-device` rewritten so devices of
/// the override's kind boot first (in their configured order), then the
/// others (in theirs). UEFI firmware (OVMF) ignores `-boot order` and reads
/// only these indexes, so this is how a BMC's boot override reaches it.
/// Arguments are returned unchanged when no override is set, no device has
/// a `bootindex`, or none is of the wanted kind.
pub fn apply_boot_override(args: &[String], device: BootDevice) -> Vec<String> {
    let wanted = match device {
        BootDevice::Pxe => DeviceKind::Nic,
        BootDevice::Disk => DeviceKind::Disk,
        BootDevice::Cdrom => DeviceKind::Cdrom,
        BootDevice::None | BootDevice::Bios => return args.to_vec(),
    };
    // (argument position, kind, configured index) of every bootable -device.
    let mut bootable: Vec<(usize, DeviceKind, i64)> = Vec::new();
    for (position, window) in args.windows(2).enumerate() {
        if window[0] != "-device" {
            continue;
        }
        let mut options = window[1].split(',');
        let driver = options.next().unwrap_or_default();
        let driver = driver.strip_prefix("driver=").unwrap_or(driver);
        let index = options
            .filter_map(|option| option.strip_prefix("bootindex="))
            .find_map(|value| value.parse::<i64>().ok());
        if let Some(index) = index {
            bootable.push((position + 1, device_kind(driver), index));
        }
    }
    if !bootable.iter().any(|(_, kind, _)| *kind == wanted) {
        return args.to_vec();
    }
    bootable.sort_by_key(|(position, kind, index)| (*kind != wanted, *index, *position));
    let mut rewritten = args.to_vec();
    for (rank, (position, _, _)) in bootable.iter().enumerate() {
        let options: Vec<String> = rewritten[*position]
            .split(',')
            .map(|option| {
                if option.starts_with("bootindex=") {
                    format!("bootindex={}", rank + 1)
                } else {
                    option.to_string()
                }
            })
            .collect();
        rewritten[*position] = options.join(",");
    }
    rewritten
}

#[async_trait]
impl Machine for QemuMachine {
    fn name(&self) -> &str {
        &self.name
    }

    async fn power_state(&self) -> Result<PowerState> {
        let mut inner = self.inner.lock().await;
        self.state(&mut inner).await
    }

    async fn power_on(&self) -> Result<()> {
        let mut inner = self.inner.lock().await;
        self.start(&mut inner).await
    }

    async fn power_off(&self) -> Result<()> {
        let mut inner = self.inner.lock().await;
        self.stop(&mut inner).await
    }

    async fn soft_off(&self) -> Result<()> {
        let _inner = self.inner.lock().await;
        match self.command("system_powerdown").await {
            Err(MachineError::PoweredOff(_)) => Ok(()),
            other => other,
        }
    }

    async fn reset(&self) -> Result<()> {
        let mut inner = self.inner.lock().await;
        if !self.state(&mut inner).await?.is_on() {
            return Err(MachineError::PoweredOff(self.name.clone()));
        }
        let pending = inner.boot.device;
        if pending != BootDevice::None && pending != inner.running_boot {
            // A new boot order needs a new QEMU.
            self.stop(&mut inner).await?;
            return self.start(&mut inner).await;
        }
        if pending != BootDevice::None {
            inner.boot = inner.boot.after_start();
        }
        self.command("system_reset").await
    }

    async fn power_cycle(&self) -> Result<()> {
        let mut inner = self.inner.lock().await;
        self.stop(&mut inner).await?;
        self.start(&mut inner).await
    }

    async fn boot_device(&self) -> Result<BootSetting> {
        Ok(self.inner.lock().await.boot)
    }

    async fn set_boot_device(&self, setting: BootSetting) -> Result<()> {
        self.inner.lock().await.boot = setting;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|a| a.to_string()).collect()
    }

    const UEFI: [&str; 6] = [
        "-device",
        "virtio-net-pci,netdev=n0,mac=52:54:00:00:00:01,bootindex=1",
        "-drive",
        "file=d.qcow2,if=none,id=disk0",
        "-device",
        "virtio-blk-pci,drive=disk0,bootindex=2",
    ];

    #[test]
    fn a_disk_override_puts_the_disk_first() {
        let out = apply_boot_override(&args(&UEFI), BootDevice::Disk);
        assert_eq!(out[1], "virtio-net-pci,netdev=n0,mac=52:54:00:00:00:01,bootindex=2");
        assert_eq!(out[5], "virtio-blk-pci,drive=disk0,bootindex=1");
        assert_eq!(out[3], UEFI[3]);
    }

    #[test]
    fn a_pxe_override_keeps_the_nic_first() {
        let out = apply_boot_override(&args(&UEFI), BootDevice::Pxe);
        assert_eq!(out, args(&UEFI));
    }

    #[test]
    fn no_override_or_no_bootindex_leaves_args_alone() {
        assert_eq!(apply_boot_override(&args(&UEFI), BootDevice::None), args(&UEFI));
        assert_eq!(apply_boot_override(&args(&UEFI), BootDevice::Cdrom), args(&UEFI));
        let bios = ["-device", "virtio-net-pci,netdev=n0", "-drive", "file=d,if=virtio"];
        assert_eq!(apply_boot_override(&args(&bios), BootDevice::Disk), args(&bios));
    }

    #[test]
    fn several_devices_keep_their_relative_order() {
        let many = [
            "-device",
            "e1000,netdev=a,bootindex=3",
            "-device",
            "driver=scsi-hd,drive=x,bootindex=5",
            "-device",
            "virtio-net-pci,netdev=b,bootindex=1",
            "-device",
            "nvme,drive=y,bootindex=4",
        ];
        let out = apply_boot_override(&args(&many), BootDevice::Disk);
        assert_eq!(out[1], "e1000,netdev=a,bootindex=4");
        assert_eq!(out[3], "driver=scsi-hd,drive=x,bootindex=2");
        assert_eq!(out[5], "virtio-net-pci,netdev=b,bootindex=3");
        assert_eq!(out[7], "nvme,drive=y,bootindex=1");
    }
}

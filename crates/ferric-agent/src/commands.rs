//! The commands the conductor runs on the agent, and their bookkeeping.
//!
//! Names and shapes follow ironic-python-agent (`standby.write_image`,
//! `clean.execute_clean_step`, ...), so a conductor that drives IPA drives
//! this agent too. One long command runs at a time (a second gets "busy");
//! quick ones (`standby.sync`, `clean.get_clean_steps`) answer at once.
//! Every command's record stays listable until the agent stops.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use ferric_image::checksum::Checksum;
use ferric_image::format::ImageFormat;
use ferric_image::write::{ImageSource, Progress, WriteOptions};
use ferric_types::agent::{CommandResult, CommandStatus};
use serde_json::{json, Map, Value};
use tokio::sync::{watch, Notify};

use crate::client::NodeInfo;
use crate::configdrive::{self, ConfigDriveSource};
use crate::disks::{self, BlockDevice, RootDeviceHints};
use crate::erase;

/// Where the agent finds its machine (fixture trees and file-backed disks
/// in tests and development).
#[derive(Debug, Clone)]
pub struct MachineConfig {
    pub sys_root: PathBuf,
    pub proc_root: PathBuf,
    pub dev_root: PathBuf,
    /// When set, these are the machine's disks (files or devices) instead
    /// of what `/sys/block` lists.
    pub disks: Vec<PathBuf>,
    /// Scratch space for downloads that cannot be streamed.
    pub scratch: PathBuf,
}

impl Default for MachineConfig {
    fn default() -> Self {
        MachineConfig {
            sys_root: "/sys".into(),
            proc_root: "/proc".into(),
            dev_root: "/dev".into(),
            disks: Vec::new(),
            scratch: std::env::temp_dir(),
        }
    }
}

/// What the agent should do to the machine once a command asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    PowerOff,
    Reboot,
}

/// Why a command was not started.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("unknown command \"{0}\"")]
    Unknown(String),
    #[error("invalid parameters for {command}: {reason}")]
    InvalidParams { command: String, reason: String },
    #[error("the agent is busy running {0}; try again when it has finished")]
    Busy(String),
    #[error("no command with id {0}")]
    NotFound(String),
}

/// A failure while running a command: becomes the record's `command_error`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RunError {
    kind: &'static str,
    message: String,
}

impl RunError {
    fn new(kind: &'static str, message: impl Into<String>) -> Self {
        RunError { kind, message: message.into() }
    }
}

type Record = Arc<Mutex<CommandResult>>;

/// The agent's state as the command API sees it.
pub struct Agent {
    pub machine: MachineConfig,
    node: RwLock<Option<NodeInfo>>,
    records: Mutex<Vec<Record>>,
    /// The long command running now, and its progress.
    running: Mutex<Option<(String, Progress)>>,
    /// Signalled when a command finishes: the heartbeat goes out at once.
    pub finished: Notify,
    shutdown: watch::Sender<Option<Shutdown>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn invalid(command: &str, reason: impl Into<String>) -> CommandError {
    CommandError::InvalidParams { command: command.into(), reason: reason.into() }
}

impl Agent {
    pub fn new(machine: MachineConfig) -> Arc<Agent> {
        Arc::new(Agent {
            machine,
            node: RwLock::new(None),
            records: Mutex::new(Vec::new()),
            running: Mutex::new(None),
            finished: Notify::new(),
            shutdown: watch::channel(None).0,
        })
    }

    /// Records the node found at lookup (and its token).
    pub fn set_node(&self, node: Option<NodeInfo>) {
        *self.node.write().unwrap_or_else(|p| p.into_inner()) = node;
    }

    pub fn node(&self) -> Option<NodeInfo> {
        self.node.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether `token` is the one this agent was issued.
    pub fn token_is_valid(&self, token: Option<&str>) -> bool {
        match (self.node().and_then(|node| node.token), token) {
            (Some(ours), Some(given)) => constant_time_eq(ours.as_bytes(), given.as_bytes()),
            _ => false,
        }
    }

    /// Fires when a command asked for power off or reboot.
    pub fn shutdown_requests(&self) -> watch::Receiver<Option<Shutdown>> {
        self.shutdown.subscribe()
    }

    /// Whether a long command is running.
    pub fn is_busy(&self) -> bool {
        lock(&self.running).is_some()
    }

    pub fn list(&self) -> Vec<CommandResult> {
        lock(&self.records).iter().map(|record| self.snapshot(record)).collect()
    }

    pub fn get(&self, id: &str) -> Result<CommandResult, CommandError> {
        let records = lock(&self.records);
        let record = records
            .iter()
            .find(|record| lock(record).id == id)
            .ok_or_else(|| CommandError::NotFound(id.into()))?;
        Ok(self.snapshot(record))
    }

    /// Waits until command `id` is no longer running.
    pub async fn wait(&self, id: &str) -> Result<CommandResult, CommandError> {
        loop {
            let notified = self.finished.notified();
            let result = self.get(id)?;
            if result.command_status != CommandStatus::Running {
                return Ok(result);
            }
            notified.await;
        }
    }

    /// The record as reported: a running command shows its progress.
    fn snapshot(&self, record: &Record) -> CommandResult {
        let mut result = lock(record).clone();
        if result.command_status == CommandStatus::Running {
            if let Some((id, progress)) = lock(&self.running).as_ref() {
                if *id == result.id {
                    result.command_result = Some(json!({"progress": {
                        "written": progress.written(),
                        "total": progress.total(),
                    }}));
                }
            }
        }
        result
    }

    /// Runs `name`: quick commands finish before this returns; long ones
    /// are started and report `RUNNING`.
    pub fn execute(
        self: &Arc<Self>,
        name: &str,
        params: Map<String, Value>,
    ) -> Result<CommandResult, CommandError> {
        let (extension, command) =
            name.split_once('.').ok_or_else(|| CommandError::Unknown(name.to_owned()))?;
        match (extension, command) {
            ("standby", "write_image") => {
                let request = WriteRequest::parse(&params)?;
                self.start_long(command, move |agent, progress| async move {
                    agent.write_image(request, progress).await
                })
            }
            ("clean", "execute_clean_step") | ("service", "execute_service_step") => {
                let step = params
                    .get("step")
                    .and_then(|step| step.get("step"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(name, "\"step\" with a step name is required"))?
                    .to_owned();
                if !matches!(step.as_str(), "erase_devices_metadata" | "erase_devices") {
                    return Err(invalid(name, format!("this agent has no step \"{step}\"")));
                }
                let step_value = params.get("step").cloned().unwrap_or(Value::Null);
                self.start_long(command, move |agent, _progress| async move {
                    let result = agent.clean_step(&step).await?;
                    Ok(json!({"clean_result": result, "clean_step": step_value}))
                })
            }
            ("clean", "get_clean_steps") | ("service", "get_service_steps") => {
                let steps = json!([
                    {"step": "erase_devices_metadata", "priority": 99, "interface": "deploy",
                     "reboot_requested": false, "abortable": true},
                    {"step": "erase_devices", "priority": 0, "interface": "deploy",
                     "reboot_requested": false, "abortable": true},
                ]);
                self.finished_now(
                    command,
                    json!({"clean_steps": {"FerricHardwareManager": steps},
                           "hardware_manager_version": {"FerricHardwareManager": "1.0"}}),
                )
            }
            ("standby", "sync") => {
                rustix::fs::sync();
                self.finished_now(command, Value::Null)
            }
            ("standby", "power_off") | ("standby", "reboot") => {
                let what = if command == "reboot" { Shutdown::Reboot } else { Shutdown::PowerOff };
                rustix::fs::sync();
                let result = self.finished_now(command, Value::Null);
                // Answer first; the machine goes down right after.
                let _ = self.shutdown.send(Some(what));
                result
            }
            ("system", "get_inventory") => {
                let roots = crate::inventory::SystemRoots {
                    sys: self.machine.sys_root.clone(),
                    proc: self.machine.proc_root.clone(),
                    dev: self.machine.dev_root.clone(),
                };
                let inventory = crate::inventory::collect(&roots);
                let value = serde_json::to_value(inventory).unwrap_or(Value::Null);
                self.finished_now(command, json!({"inventory": value}))
            }
            _ => Err(CommandError::Unknown(name.to_owned())),
        }
    }

    fn push(&self, result: CommandResult) -> Record {
        let record = Arc::new(Mutex::new(result));
        lock(&self.records).push(record.clone());
        record
    }

    fn finished_now(&self, command: &str, result: Value) -> Result<CommandResult, CommandError> {
        let record = self.push(CommandResult {
            id: crate::fresh_uuid().to_string(),
            command_name: command.to_owned(),
            command_status: CommandStatus::Succeeded,
            command_error: None,
            command_result: Some(result),
        });
        let result = lock(&record).clone();
        self.finished.notify_waiters();
        Ok(result)
    }

    fn start_long<F, Fut>(
        self: &Arc<Self>,
        command: &str,
        work: F,
    ) -> Result<CommandResult, CommandError>
    where
        F: FnOnce(Arc<Agent>, Progress) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<Value, RunError>> + Send + 'static,
    {
        let id = crate::fresh_uuid().to_string();
        let progress = Progress::default();
        {
            let mut running = lock(&self.running);
            if let Some((busy, _)) = running.as_ref() {
                let name = self.get(busy).map(|r| r.command_name).unwrap_or_default();
                return Err(CommandError::Busy(name));
            }
            *running = Some((id.clone(), progress.clone()));
        }
        let record = self.push(CommandResult {
            id: id.clone(),
            command_name: command.to_owned(),
            command_status: CommandStatus::Running,
            command_error: None,
            command_result: None,
        });
        let agent = self.clone();
        let name = command.to_owned();
        tokio::spawn(async move {
            let outcome = work(agent.clone(), progress).await;
            {
                let mut done = lock(&record);
                match outcome {
                    Ok(value) => {
                        tracing::info!(command = %name, "command succeeded");
                        done.command_status = CommandStatus::Succeeded;
                        done.command_result = Some(value);
                    }
                    Err(error) => {
                        tracing::error!(command = %name, %error, "command failed");
                        done.command_status = CommandStatus::Failed;
                        done.command_error = Some(json!({
                            "type": error.kind, "message": error.message, "code": 500,
                        }));
                    }
                }
            }
            *lock(&agent.running) = None;
            agent.finished.notify_waiters();
        });
        let snapshot = lock(&self.records).last().map(|r| self.snapshot(r));
        snapshot.ok_or(CommandError::NotFound(id))
    }

    /// The machine's disks: the configured ones, or what the kernel lists.
    fn block_devices(&self) -> Result<Vec<BlockDevice>, RunError> {
        if self.machine.disks.is_empty() {
            return disks::list_block_devices(&self.machine.sys_root, &self.machine.dev_root)
                .map_err(|error| {
                    RunError::new("BlockDeviceError", format!("listing disks: {error}"))
                });
        }
        let mut devices = Vec::new();
        for path in &self.machine.disks {
            let size = ferric_image::write::device_size(path)
                .map_err(|error| RunError::new("BlockDeviceError", error.to_string()))?;
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("disk").to_owned();
            devices.push(BlockDevice {
                name,
                path: path.clone(),
                size,
                rotational: false,
                model: None,
                vendor: None,
                serial: None,
                wwn: None,
                removable: false,
                hctl: None,
                by_path: None,
                tran: None,
                logical_sector_size: None,
                physical_sector_size: None,
            });
        }
        Ok(devices)
    }

    fn root_device(&self, hints: Option<&RootDeviceHints>) -> Result<BlockDevice, RunError> {
        let devices = self.block_devices()?;
        if !self.machine.disks.is_empty() && hints.is_none() {
            // Configured disks: the first is the root disk.
            return devices
                .into_iter()
                .next()
                .ok_or_else(|| RunError::new("DeviceNotFound", "no disks configured"));
        }
        disks::select_root_device(&devices, hints)
            .cloned()
            .map_err(|error| RunError::new("DeviceNotFound", error.to_string()))
    }

    async fn write_image(
        &self,
        request: WriteRequest,
        progress: Progress,
    ) -> Result<Value, RunError> {
        let hints = match &request.root_device {
            Some(value) => Some(
                RootDeviceHints::parse(value)
                    .map_err(|error| RunError::new("InvalidRootDeviceHints", error.to_string()))?,
            ),
            None => None,
        };
        let device = self.root_device(hints.as_ref().filter(|h| !h.is_empty()))?;
        tracing::info!(device = %device.path.display(), url = %request.source.url, "writing image");
        let options =
            WriteOptions { scratch: Some(self.machine.scratch.clone()), ..WriteOptions::default() };
        let report =
            ferric_image::write::write_image(&request.source, &device.path, &options, &progress)
                .await
                .map_err(|error| RunError::new("ImageWriteError", error.to_string()))?;
        let mut result = json!({
            "device": device.dev_name(),
            "bytes_written": report.bytes_written,
            "bytes_downloaded": report.bytes_downloaded,
            "format": report.format.to_string(),
            "checksum": report.checksum.map(|c| c.to_string()),
        });
        if let Some(configdrive) = request.configdrive {
            let partition = self.write_configdrive(&device.path, &configdrive).await?;
            result["configdrive_partition"] = partition;
        }
        Ok(result)
    }

    async fn write_configdrive(&self, disk: &Path, value: &Value) -> Result<Value, RunError> {
        let bad = |error: configdrive::ConfigDriveError| {
            RunError::new("ConfigDriveError", error.to_string())
        };
        let source = match configdrive::decode(value) {
            Ok(source) => source,
            Err(configdrive::ConfigDriveError::IsUrl(url)) => {
                let bytes = fetch_small(&url, 64 << 20).await?;
                ConfigDriveSource::Image(configdrive::decode_downloaded(&bytes).map_err(bad)?)
            }
            Err(error) => return Err(bad(error)),
        };
        let image = match source {
            ConfigDriveSource::Image(bytes) => bytes,
            ConfigDriveSource::Contents(contents) => {
                configdrive::build_vfat(&contents).map_err(bad)?
            }
        };
        let disk = disk.to_owned();
        let partition = tokio::task::spawn_blocking(move || {
            let partition = configdrive::write_config_drive(&disk, &image)?;
            // Only for the kernel's view while the ramdisk runs: the
            // partition is on disk and the instance sees it at its boot.
            if let Err(error) = configdrive::reread_partition_table(&disk) {
                tracing::warn!(%error, "the kernel did not re-read the partition table");
            }
            Ok::<_, configdrive::ConfigDriveError>(partition)
        })
        .await
        .map_err(|error| RunError::new("ConfigDriveError", error.to_string()))?
        .map_err(bad)?;
        Ok(serde_json::to_value(partition).unwrap_or(Value::Null))
    }

    async fn clean_step(&self, step: &str) -> Result<Value, RunError> {
        let devices = self.block_devices()?;
        let step = step.to_owned();
        tokio::task::spawn_blocking(move || {
            let erased = std::sync::atomic::AtomicU64::new(0);
            let mut reports = Map::new();
            for device in devices {
                let report = match step.as_str() {
                    "erase_devices" => erase::erase_device(&device.path, &erased),
                    _ => erase::erase_devices_metadata(&device.path),
                }
                .map_err(|error| {
                    RunError::new("CleaningError", format!("{}: {error}", device.path.display()))
                })?;
                reports
                    .insert(device.dev_name(), serde_json::to_value(report).unwrap_or(Value::Null));
            }
            Ok(Value::Object(reports))
        })
        .await
        .map_err(|error| RunError::new("CleaningError", error.to_string()))?
    }
}

/// Downloads something small (a config drive) into memory.
async fn fetch_small(url: &str, limit: usize) -> Result<Vec<u8>, RunError> {
    let fail =
        |reason: String| RunError::new("ConfigDriveError", format!("downloading {url}: {reason}"));
    let response = reqwest::get(url).await.map_err(|e| fail(e.without_url().to_string()))?;
    if !response.status().is_success() {
        return Err(fail(format!("HTTP {}", response.status())));
    }
    let bytes = response.bytes().await.map_err(|e| fail(e.without_url().to_string()))?;
    if bytes.len() > limit {
        return Err(fail(format!("larger than {limit} bytes")));
    }
    Ok(bytes.to_vec())
}

/// `standby.write_image`'s parameters, checked before anything starts.
#[derive(Debug)]
struct WriteRequest {
    source: ImageSource,
    root_device: Option<Value>,
    configdrive: Option<Value>,
}

impl WriteRequest {
    fn parse(params: &Map<String, Value>) -> Result<WriteRequest, CommandError> {
        const NAME: &str = "standby.write_image";
        let info = params
            .get("image_info")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid(NAME, "\"image_info\" must be an object"))?;
        let url = info
            .get("urls")
            .and_then(Value::as_array)
            .and_then(|urls| urls.first())
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(NAME, "image_info.urls must list at least one URL"))?
            .to_owned();
        if info.get("image_type").and_then(Value::as_str) == Some("partition") {
            return Err(invalid(
                NAME,
                "partition images are not supported; use a whole-disk image",
            ));
        }
        let checksum = match (
            info.get("os_hash_algo").and_then(Value::as_str),
            info.get("os_hash_value").and_then(Value::as_str),
            info.get("checksum").and_then(Value::as_str),
        ) {
            (Some(algorithm), Some(value), _) => Some(format!("{algorithm}:{value}")),
            (_, _, Some(checksum)) => Some(checksum.to_owned()),
            _ => None,
        };
        let checksum = checksum
            .map(|text| Checksum::parse(&text))
            .transpose()
            .map_err(|error| invalid(NAME, error.to_string()))?;
        let format = match info.get("disk_format").and_then(Value::as_str) {
            None | Some("raw") | Some("") => None,
            Some("qcow2") => Some(ImageFormat::Qcow2),
            Some(other) => {
                return Err(invalid(
                    NAME,
                    format!("disk_format \"{other}\" is not supported (raw, qcow2)"),
                ))
            }
        };
        let root_device = info
            .get("root_device")
            .cloned()
            .or_else(|| {
                params.get("node").and_then(|n| n.pointer("/properties/root_device")).cloned()
            })
            .filter(|value| !value.is_null());
        let configdrive = params.get("configdrive").cloned().filter(|value| !value.is_null());
        Ok(WriteRequest { source: ImageSource { url, checksum, format }, root_device, configdrive })
    }
}

/// Compares secrets without leaking their common prefix through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

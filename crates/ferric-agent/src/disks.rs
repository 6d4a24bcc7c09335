//! Block devices, partition tables and root-device hints.
//!
//! - [`list_block_devices`] reads whole disks from a `/sys/block` tree
//!   (a fixture tree in tests), skipping loop, RAM, zram, device-mapper,
//!   md, optical, floppy, hidden (NVMe multipath paths) and empty devices.
//! - [`RootDeviceHints`] parses a node's `properties.root_device` with
//!   Ironic's rules: string values compare case-insensitively, `size` is in
//!   GiB and compares exactly against the device's size in bytes, and the
//!   operators `==`/`=`(means `>=`, as in Ironic)/`!=`/`>=`/`<=`/`>`/`<` for
//!   sizes and `s==`/`s!=`/`<in>`/`<or>` for strings are understood.
//! - [`select_root_device`] picks the install disk as the Ironic Python
//!   Agent does: the first device (by name) matching every hint, or without
//!   hints the smallest device of at least 4 GiB.
//! - [`read_partition_table`] parses MBR (with logical partitions) and GPT
//!   tables; [`GptHeader`] is shared with cleaning and the config drive.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One GiB, the unit of the `size` hint.
pub const GIB: u64 = 1 << 30;

/// Without hints, disks smaller than this are never chosen (as in IPA).
pub const MIN_ROOT_DEVICE_SIZE: u64 = 4 * GIB;

/// A whole disk as the kernel shows it in `/sys/block`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDevice {
    /// Kernel name, e.g. `sda`, `vda`, `nvme0n1`.
    pub name: String,
    /// The device node: `dev_root.join(name)`.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    pub rotational: bool,
    pub model: Option<String>,
    pub vendor: Option<String>,
    pub serial: Option<String>,
    /// World-wide name as lsblk shows it (`0x…` for NAA, `eui.…` for NVMe).
    pub wwn: Option<String>,
    pub removable: bool,
    /// SCSI address `host:channel:target:lun`.
    pub hctl: Option<String>,
    /// The `/dev/disk/by-path` link pointing at the device, if any.
    pub by_path: Option<PathBuf>,
    /// Transport as lsblk names it (`sata`, `nvme`, `usb`, `virtio`, ...).
    pub tran: Option<String>,
    /// Logical sector size in bytes (`queue/logical_block_size`).
    pub logical_sector_size: Option<u32>,
    /// Physical sector size in bytes (`queue/physical_block_size`).
    pub physical_sector_size: Option<u32>,
}

impl BlockDevice {
    /// The device's name as the agent API reports it: `/dev/<name>`.
    pub fn dev_name(&self) -> String {
        format!("/dev/{}", self.name)
    }

    fn by_path_name(&self) -> Option<String> {
        let file = self.by_path.as_ref()?.file_name()?.to_str()?;
        Some(format!("/dev/disk/by-path/{file}"))
    }
}

/// Errors choosing a disk.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("invalid root device hints: {0}")]
    InvalidHints(String),
    #[error("no block device matches the root device hints {hints}; devices seen: {seen}")]
    NoMatchingDevice { hints: String, seen: String },
    #[error(
        "no suitable root device: no root device hints were given and no disk is at least \
         4 GiB; devices seen: {seen}"
    )]
    NoLargeEnoughDevice { seen: String },
}

/// Kernel name prefixes of devices that are never install targets.
const SKIPPED_PREFIXES: &[&str] = &["loop", "ram", "zram", "dm-", "md", "sr", "fd", "nbd"];

/// Reads whole disks from `sys_root/block/*`; `dev_root` is where their
/// device nodes (and `disk/by-path`) live. The result is sorted by name.
pub fn list_block_devices(sys_root: &Path, dev_root: &Path) -> io::Result<Vec<BlockDevice>> {
    let block_dir = sys_root.join("block");
    let by_path = by_path_links(&dev_root.join("disk/by-path"));
    let mut devices = Vec::new();
    for entry in fs::read_dir(&block_dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if SKIPPED_PREFIXES.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let dir = block_dir.join(&name);
        if read_trimmed(&dir.join("hidden")).as_deref() == Some("1") {
            continue;
        }
        let sectors: u64 =
            read_trimmed(&dir.join("size")).and_then(|s| s.parse().ok()).unwrap_or(0);
        let size = sectors.saturating_mul(512);
        if size == 0 {
            continue;
        }
        let device_dir = dir.join("device");
        let serial = read_trimmed(&dir.join("serial"))
            .or_else(|| read_trimmed(&device_dir.join("serial")))
            .or_else(|| read_vpd_serial(&device_dir.join("vpd_pg80")));
        let wwid =
            read_trimmed(&dir.join("wwid")).or_else(|| read_trimmed(&device_dir.join("wwid")));
        devices.push(BlockDevice {
            path: dev_root.join(&name),
            size,
            rotational: read_trimmed(&dir.join("queue/rotational")).as_deref() == Some("1"),
            model: read_trimmed(&device_dir.join("model")),
            vendor: read_trimmed(&device_dir.join("vendor")),
            serial,
            wwn: wwid.as_deref().and_then(wwn_from_wwid),
            removable: read_trimmed(&dir.join("removable")).as_deref() == Some("1"),
            hctl: hctl_of(&device_dir),
            by_path: by_path.get(&name).cloned(),
            tran: transport_of(&dir),
            logical_sector_size: read_trimmed(&dir.join("queue/logical_block_size"))
                .and_then(|s| s.parse().ok()),
            physical_sector_size: read_trimmed(&dir.join("queue/physical_block_size"))
                .and_then(|s| s.parse().ok()),
            name,
        });
    }
    devices.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(devices)
}

/// A sysfs attribute, trimmed; `None` when missing, unreadable or empty.
pub(crate) fn read_trimmed(path: &Path) -> Option<String> {
    let raw = fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!text.is_empty()).then(|| text.to_owned())
}

/// The unit serial number from a SCSI VPD page 0x80 dump.
fn read_vpd_serial(path: &Path) -> Option<String> {
    let raw = fs::read(path).ok()?;
    if raw.len() < 4 || raw[1] != 0x80 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([raw[2], raw[3]]));
    let body = raw.get(4..(4 + len).min(raw.len()))?;
    let text = String::from_utf8_lossy(body);
    let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!text.is_empty()).then(|| text.to_owned())
}

/// lsblk's WWN form of a sysfs `wwid`: NAA ids as `0x…`, NVMe ids as they
/// are; T10 vendor ids are not WWNs.
fn wwn_from_wwid(wwid: &str) -> Option<String> {
    let wwid = wwid.trim();
    if let Some(naa) = wwid.strip_prefix("naa.") {
        return Some(format!("0x{}", naa.to_ascii_lowercase()));
    }
    if wwid.starts_with("t10.") || wwid.is_empty() {
        return None;
    }
    Some(wwid.to_owned())
}

fn is_hctl(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 4 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn hctl_of(device_dir: &Path) -> Option<String> {
    if let Ok(entries) = fs::read_dir(device_dir.join("scsi_device")) {
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| is_hctl(n))
            .collect();
        names.sort();
        if let Some(first) = names.into_iter().next() {
            return Some(first);
        }
    }
    let target = fs::read_link(device_dir).ok()?;
    let last = target.file_name()?.to_str()?;
    is_hctl(last).then(|| last.to_owned())
}

/// The transport, guessed from the device's place in the sysfs tree.
fn transport_of(block_dir: &Path) -> Option<String> {
    let real = fs::canonicalize(block_dir).ok()?;
    let real = real.to_string_lossy();
    let tran = if real.contains("/nvme") {
        "nvme"
    } else if real.contains("/usb") {
        "usb"
    } else if real.contains("/virtio") {
        "virtio"
    } else if real.contains("/ata") {
        "sata"
    } else {
        return None;
    };
    Some(tran.to_owned())
}

/// Kernel name → `/dev/disk/by-path/<link>` for whole-disk links.
fn by_path_links(dir: &Path) -> BTreeMap<String, PathBuf> {
    let mut map = BTreeMap::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return map;
    };
    let mut links: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
    links.sort();
    for link in links {
        let Ok(target) = fs::read_link(&link) else {
            continue;
        };
        let Some(name) = target.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        // Several links may point at one disk; keep the first by name.
        map.entry(name.to_owned()).or_insert(link);
    }
    map
}

// ---------------------------------------------------------------------------
// Root device hints
// ---------------------------------------------------------------------------

/// A numeric comparison of the `size` hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeOp {
    Eq,
    Ne,
    Ge,
    Le,
    Gt,
    Lt,
}

/// The `size` hint: compare the device's size with `gib` GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeHint {
    pub op: SizeOp,
    pub gib: u64,
}

impl SizeHint {
    pub fn matches(&self, size_bytes: u64) -> bool {
        let dev = u128::from(size_bytes);
        let want = u128::from(self.gib) * u128::from(GIB);
        match self.op {
            SizeOp::Eq => dev == want,
            SizeOp::Ne => dev != want,
            SizeOp::Ge => dev >= want,
            SizeOp::Le => dev <= want,
            SizeOp::Gt => dev > want,
            SizeOp::Lt => dev < want,
        }
    }
}

/// A string hint; values are lower-cased, comparisons case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StrHint {
    /// Plain value or `s== value`.
    Eq(String),
    /// `s!= value`.
    Ne(String),
    /// `<in> value`: the device's value contains it.
    Contains(String),
    /// `<or> a <or> b`: equal to one of them.
    AnyOf(Vec<String>),
}

impl StrHint {
    pub fn matches(&self, value: &str) -> bool {
        let value = value.trim().to_lowercase();
        match self {
            StrHint::Eq(want) => value == *want,
            StrHint::Ne(want) => value != *want,
            StrHint::Contains(want) => value.contains(want.as_str()),
            StrHint::AnyOf(wants) => wants.contains(&value),
        }
    }

    fn map_values(self, f: impl Fn(String) -> String) -> StrHint {
        match self {
            StrHint::Eq(v) => StrHint::Eq(f(v)),
            StrHint::Ne(v) => StrHint::Ne(f(v)),
            StrHint::Contains(v) => StrHint::Contains(v),
            StrHint::AnyOf(vs) => StrHint::AnyOf(vs.into_iter().map(f).collect()),
        }
    }
}

/// Ironic's root device hints (`properties.root_device` or
/// `instance_info.root_device`). Every given hint must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootDeviceHints {
    pub size: Option<SizeHint>,
    /// Compared with `/dev/<name>`; a value without `/dev/` gets it.
    pub name: Option<StrHint>,
    pub serial: Option<StrHint>,
    pub wwn: Option<StrHint>,
    pub model: Option<StrHint>,
    pub vendor: Option<StrHint>,
    pub rotational: Option<bool>,
    pub hctl: Option<StrHint>,
    /// Compared with `/dev/disk/by-path/<link>`.
    pub by_path: Option<StrHint>,
    pub tran: Option<StrHint>,
}

const KNOWN_HINTS: &[&str] =
    &["size", "name", "serial", "wwn", "model", "vendor", "rotational", "hctl", "by_path", "tran"];

impl RootDeviceHints {
    /// Parses the `root_device` JSON object. `null` and `{}` give empty
    /// hints (see [`RootDeviceHints::is_empty`]).
    pub fn parse(value: &Value) -> Result<Self, DiskError> {
        let map = match value {
            Value::Null => return Ok(Self::default()),
            Value::Object(map) => map,
            other => {
                return Err(DiskError::InvalidHints(format!(
                    "root_device must be a JSON object, got {other}"
                )))
            }
        };
        let mut hints = Self::default();
        for (key, value) in map {
            match key.as_str() {
                "size" => hints.size = Some(parse_size_hint(value)?),
                "rotational" => hints.rotational = Some(parse_bool_hint(key, value)?),
                "name" => {
                    hints.name = Some(parse_str_hint(key, value)?.map_values(|v| {
                        if v.starts_with("/dev/") {
                            v
                        } else {
                            format!("/dev/{v}")
                        }
                    }))
                }
                "by_path" => {
                    hints.by_path = Some(parse_str_hint(key, value)?.map_values(|v| {
                        if v.starts_with('/') {
                            v
                        } else {
                            format!("/dev/disk/by-path/{v}")
                        }
                    }))
                }
                "serial" => hints.serial = Some(parse_str_hint(key, value)?),
                "wwn" => hints.wwn = Some(parse_str_hint(key, value)?),
                "model" => hints.model = Some(parse_str_hint(key, value)?),
                "vendor" => hints.vendor = Some(parse_str_hint(key, value)?),
                "hctl" => hints.hctl = Some(parse_str_hint(key, value)?),
                "tran" => hints.tran = Some(parse_str_hint(key, value)?),
                "wwn_with_extension" | "wwn_vendor_extension" => {
                    return Err(DiskError::InvalidHints(format!(
                        "hint \"{key}\" is valid in Ironic but not supported by ferric-agent; \
                         use \"wwn\" or \"serial\""
                    )))
                }
                other => {
                    return Err(DiskError::InvalidHints(format!(
                        "unknown hint \"{other}\"; valid hints are: {}",
                        KNOWN_HINTS.join(", ")
                    )))
                }
            }
        }
        Ok(hints)
    }

    /// True when no hint is set (the device is then chosen by size).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Whether `device` satisfies every hint. A string hint never matches
    /// a device that lacks the attribute.
    pub fn matches(&self, device: &BlockDevice) -> bool {
        fn check(hint: &Option<StrHint>, value: Option<&str>) -> bool {
            match (hint, value) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(h), Some(v)) => h.matches(v),
            }
        }
        if let Some(size) = &self.size {
            if !size.matches(device.size) {
                return false;
            }
        }
        if let Some(rot) = self.rotational {
            if rot != device.rotational {
                return false;
            }
        }
        check(&self.name, Some(&device.dev_name()))
            && check(&self.serial, device.serial.as_deref())
            && check(&self.wwn, device.wwn.as_deref())
            && check(&self.model, device.model.as_deref())
            && check(&self.vendor, device.vendor.as_deref())
            && check(&self.hctl, device.hctl.as_deref())
            && check(&self.by_path, device.by_path_name().as_deref())
            && check(&self.tran, device.tran.as_deref())
    }
}

impl fmt::Display for RootDeviceHints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(s) = &self.size {
            parts.push(format!("size {:?} {} GiB", s.op, s.gib));
        }
        if let Some(r) = self.rotational {
            parts.push(format!("rotational={r}"));
        }
        for (name, hint) in [
            ("name", &self.name),
            ("serial", &self.serial),
            ("wwn", &self.wwn),
            ("model", &self.model),
            ("vendor", &self.vendor),
            ("hctl", &self.hctl),
            ("by_path", &self.by_path),
            ("tran", &self.tran),
        ] {
            if let Some(h) = hint {
                parts.push(format!("{name} {h:?}"));
            }
        }
        write!(f, "{{{}}}", parts.join(", "))
    }
}

fn hint_text(key: &str, value: &Value) -> Result<String, DiskError> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => {
            return Err(DiskError::InvalidHints(format!(
                "hint \"{key}\" has an unusable value {other}"
            )))
        }
    };
    let text = text.trim().to_lowercase();
    if text.is_empty() {
        return Err(DiskError::InvalidHints(format!("hint \"{key}\" is empty")));
    }
    Ok(text)
}

fn parse_size_hint(value: &Value) -> Result<SizeHint, DiskError> {
    let text = hint_text("size", value)?;
    // Longest operators first so that ">=" is not read as ">".
    const OPS: &[(&str, SizeOp)] = &[
        ("==", SizeOp::Eq),
        ("!=", SizeOp::Ne),
        (">=", SizeOp::Ge),
        ("<=", SizeOp::Le),
        ("=", SizeOp::Ge), // Ironic's `=` means "at least".
        (">", SizeOp::Gt),
        ("<", SizeOp::Lt),
    ];
    let (op, rest) = OPS
        .iter()
        .find_map(|(tok, op)| text.strip_prefix(tok).map(|rest| (*op, rest)))
        .unwrap_or((SizeOp::Eq, text.as_str()));
    let rest = rest.trim();
    let gib: u64 = rest.parse().map_err(|_| {
        DiskError::InvalidHints(format!(
            "hint \"size\" must be a positive integer number of GiB, optionally after one of \
             ==, !=, >=, <=, >, <; got {value}"
        ))
    })?;
    if gib == 0 {
        return Err(DiskError::InvalidHints(format!(
            "hint \"size\" must be a positive integer, got {value}"
        )));
    }
    Ok(SizeHint { op, gib })
}

fn parse_bool_hint(key: &str, value: &Value) -> Result<bool, DiskError> {
    let text = hint_text(key, value)?;
    match text.as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Ok(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Ok(false),
        _ => {
            Err(DiskError::InvalidHints(format!("hint \"{key}\" is not a Boolean value: {value}")))
        }
    }
}

fn parse_str_hint(key: &str, value: &Value) -> Result<StrHint, DiskError> {
    let Value::String(_) = value else {
        return Err(DiskError::InvalidHints(format!(
            "hint \"{key}\" must be a string, got {value}"
        )));
    };
    let text = hint_text(key, value)?;
    let need_value = |rest: &str| -> Result<String, DiskError> {
        let rest = rest.trim();
        if rest.is_empty() {
            Err(DiskError::InvalidHints(format!(
                "hint \"{key}\" has an operator but no value: {value}"
            )))
        } else {
            Ok(rest.to_owned())
        }
    };
    if text.starts_with("<or>") {
        let values: Vec<String> = text
            .split("<or>")
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect();
        if values.is_empty() {
            return Err(DiskError::InvalidHints(format!(
                "hint \"{key}\" has <or> without values: {value}"
            )));
        }
        return Ok(StrHint::AnyOf(values));
    }
    if let Some(rest) = text.strip_prefix("<in>") {
        return Ok(StrHint::Contains(need_value(rest)?));
    }
    if let Some(rest) = text.strip_prefix("s==") {
        return Ok(StrHint::Eq(need_value(rest)?));
    }
    if let Some(rest) = text.strip_prefix("s!=") {
        return Ok(StrHint::Ne(need_value(rest)?));
    }
    for op in ["<all-in>", "s>=", "s<=", "s>", "s<", "==", "!=", ">=", "<=", "="] {
        if text.starts_with(op) {
            return Err(DiskError::InvalidHints(format!(
                "hint \"{key}\" uses operator {op}, which ferric-agent does not support for \
                 strings (use s==, s!=, <in> or <or>)"
            )));
        }
    }
    Ok(StrHint::Eq(text))
}

/// Picks the install disk: with (non-empty) hints the first device, in name
/// order, that matches all of them; otherwise the smallest device of at
/// least 4 GiB (ties broken by name).
pub fn select_root_device<'a>(
    devices: &'a [BlockDevice],
    hints: Option<&RootDeviceHints>,
) -> Result<&'a BlockDevice, DiskError> {
    let seen = || {
        if devices.is_empty() {
            return "none".to_owned();
        }
        devices
            .iter()
            .map(|d| format!("/dev/{} ({})", d.name, human_size(d.size)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match hints.filter(|h| !h.is_empty()) {
        Some(hints) => {
            let mut sorted: Vec<&BlockDevice> = devices.iter().collect();
            sorted.sort_by(|a, b| a.name.cmp(&b.name));
            sorted.into_iter().find(|d| hints.matches(d)).ok_or_else(|| {
                DiskError::NoMatchingDevice { hints: hints.to_string(), seen: seen() }
            })
        }
        None => devices
            .iter()
            .filter(|d| d.size >= MIN_ROOT_DEVICE_SIZE)
            .min_by(|a, b| a.size.cmp(&b.size).then_with(|| a.name.cmp(&b.name)))
            .ok_or_else(|| DiskError::NoLargeEnoughDevice { seen: seen() }),
    }
}

/// `8.0 GiB`, `512.0 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

// ---------------------------------------------------------------------------
// Partition tables
// ---------------------------------------------------------------------------

/// Size of the device or file behind `file`, in bytes (works for block
/// devices, whose metadata length is 0).
pub fn device_size(file: &mut File) -> io::Result<u64> {
    let meta = file.metadata()?;
    if meta.file_type().is_block_device() {
        let end = file.seek(SeekFrom::End(0))?;
        file.seek(SeekFrom::Start(0))?;
        Ok(end)
    } else {
        Ok(meta.len())
    }
}

/// The logical sector size: `BLKSSZGET` on block devices, 512 otherwise.
pub fn logical_sector_size(file: &File) -> u64 {
    match file.metadata() {
        Ok(meta) if meta.file_type().is_block_device() => rustix::fs::ioctl_blksszget(file)
            .ok()
            .filter(|s| s.is_power_of_two() && *s >= 512)
            .map_or(512, u64::from),
        _ => 512,
    }
}

/// Which kind of table a disk has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableKind {
    Mbr,
    Gpt,
}

/// One partition, in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// 1-based number as the kernel numbers it (MBR logical ones from 5).
    pub number: u32,
    pub start: u64,
    pub size: u64,
    /// MBR type byte, or 0 for GPT.
    pub mbr_type: u8,
    /// GPT partition name, if any.
    pub name: Option<String>,
}

/// A disk's partition table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTable {
    pub kind: TableKind,
    pub sector_size: u64,
    pub partitions: Vec<Partition>,
    /// For GPT: the header found first (primary if valid, else backup).
    pub gpt: Option<GptHeader>,
    /// For GPT: the backup header, if it is valid.
    pub gpt_backup: Option<GptHeader>,
}

/// The fixed fields of a GPT header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptHeader {
    pub revision: u32,
    pub header_size: u32,
    pub my_lba: u64,
    pub alternate_lba: u64,
    pub first_usable: u64,
    pub last_usable: u64,
    pub disk_guid: [u8; 16],
    pub entries_lba: u64,
    pub num_entries: u32,
    pub entry_size: u32,
    pub entries_crc: u32,
}

/// Bytes in one GPT entry array with this header's geometry.
impl GptHeader {
    pub fn entries_bytes(&self) -> u64 {
        u64::from(self.num_entries) * u64::from(self.entry_size)
    }

    /// Parses and checks signature, size and header CRC.
    pub fn parse(sector: &[u8]) -> Option<GptHeader> {
        if sector.len() < 92 || &sector[0..8] != b"EFI PART" {
            return None;
        }
        let u32_at =
            |o: usize| u32::from_le_bytes([sector[o], sector[o + 1], sector[o + 2], sector[o + 3]]);
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&sector[o..o + 8]);
            u64::from_le_bytes(b)
        };
        let header_size = u32_at(12);
        let hs = usize::try_from(header_size).ok()?;
        if hs < 92 || hs > sector.len() {
            return None;
        }
        let mut copy = sector[..hs].to_vec();
        copy[16..20].fill(0);
        if crc32fast::hash(&copy) != u32_at(16) {
            return None;
        }
        let mut disk_guid = [0u8; 16];
        disk_guid.copy_from_slice(&sector[56..72]);
        let header = GptHeader {
            revision: u32_at(8),
            header_size,
            my_lba: u64_at(24),
            alternate_lba: u64_at(32),
            first_usable: u64_at(40),
            last_usable: u64_at(48),
            disk_guid,
            entries_lba: u64_at(72),
            num_entries: u32_at(80),
            entry_size: u32_at(84),
            entries_crc: u32_at(88),
        };
        if header.entry_size < 128
            || !header.entry_size.is_multiple_of(8)
            || header.num_entries == 0
            || header.entries_bytes() > 16 << 20
        {
            return None;
        }
        Some(header)
    }

    /// Serializes into a zero-padded sector with a fresh header CRC.
    pub fn to_sector(&self, sector_size: u64) -> Vec<u8> {
        let mut s = vec![0u8; usize::try_from(sector_size).unwrap_or(512).max(512)];
        s[0..8].copy_from_slice(b"EFI PART");
        s[8..12].copy_from_slice(&self.revision.to_le_bytes());
        s[12..16].copy_from_slice(&92u32.to_le_bytes());
        s[24..32].copy_from_slice(&self.my_lba.to_le_bytes());
        s[32..40].copy_from_slice(&self.alternate_lba.to_le_bytes());
        s[40..48].copy_from_slice(&self.first_usable.to_le_bytes());
        s[48..56].copy_from_slice(&self.last_usable.to_le_bytes());
        s[56..72].copy_from_slice(&self.disk_guid);
        s[72..80].copy_from_slice(&self.entries_lba.to_le_bytes());
        s[80..84].copy_from_slice(&self.num_entries.to_le_bytes());
        s[84..88].copy_from_slice(&self.entry_size.to_le_bytes());
        s[88..92].copy_from_slice(&self.entries_crc.to_le_bytes());
        let crc = crc32fast::hash(&s[..92]);
        s[16..20].copy_from_slice(&crc.to_le_bytes());
        s
    }
}

/// Reads exactly `len` bytes at `offset`.
pub(crate) fn read_at<F: Read + Seek>(f: &mut F, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(&mut buf)?;
    Ok(buf)
}

/// A GPT header at `lba` and its entry array, if both are valid.
pub(crate) fn read_gpt_at<F: Read + Seek>(
    f: &mut F,
    lba: u64,
    sector_size: u64,
    disk_size: u64,
) -> Option<(GptHeader, Vec<u8>)> {
    let offset = lba.checked_mul(sector_size)?;
    if offset.checked_add(sector_size)? > disk_size {
        return None;
    }
    let sector = read_at(f, offset, usize::try_from(sector_size).ok()?).ok()?;
    let header = GptHeader::parse(&sector)?;
    if header.my_lba != lba {
        return None;
    }
    let entries_off = header.entries_lba.checked_mul(sector_size)?;
    let len = header.entries_bytes();
    if entries_off.checked_add(len)? > disk_size {
        return None;
    }
    let entries = read_at(f, entries_off, usize::try_from(len).ok()?).ok()?;
    if crc32fast::hash(&entries) != header.entries_crc {
        return None;
    }
    Some((header, entries))
}

fn gpt_partitions(header: &GptHeader, entries: &[u8], sector_size: u64) -> Vec<Partition> {
    let es = usize::try_from(header.entry_size).unwrap_or(128);
    entries
        .chunks_exact(es)
        .enumerate()
        .filter_map(|(i, e)| {
            if e[0..16].iter().all(|b| *b == 0) {
                return None;
            }
            let first = u64::from_le_bytes(e[32..40].try_into().ok()?);
            let last = u64::from_le_bytes(e[40..48].try_into().ok()?);
            if last < first {
                return None;
            }
            let units: Vec<u16> = e[56..128]
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take_while(|u| *u != 0)
                .collect();
            let name = String::from_utf16_lossy(&units);
            Some(Partition {
                number: u32::try_from(i + 1).ok()?,
                start: first.checked_mul(sector_size)?,
                size: (last - first + 1).checked_mul(sector_size)?,
                mbr_type: 0,
                name: (!name.is_empty()).then_some(name),
            })
        })
        .collect()
}

/// One raw MBR entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MbrEntry {
    pub kind: u8,
    pub start_lba: u32,
    pub sectors: u32,
}

/// The four entries of an MBR (or EBR) sector. `None` without the 0x55AA
/// signature, or when the entries are not plausible (a boot flag other than
/// 0x00/0x80, a used entry starting at sector 0): a file system's boot
/// sector on an unpartitioned disk also ends in 0x55AA.
pub(crate) fn mbr_entries(sector0: &[u8]) -> Option<[MbrEntry; 4]> {
    if sector0.len() < 512 || sector0[510] != 0x55 || sector0[511] != 0xAA {
        return None;
    }
    let mut out = [MbrEntry { kind: 0, start_lba: 0, sectors: 0 }; 4];
    for (i, slot) in out.iter_mut().enumerate() {
        let e = &sector0[446 + 16 * i..446 + 16 * (i + 1)];
        if e[0] != 0 && e[0] != 0x80 {
            return None;
        }
        if e[4] != 0 && u32::from_le_bytes([e[8], e[9], e[10], e[11]]) == 0 {
            return None;
        }
        *slot = MbrEntry {
            kind: e[4],
            start_lba: u32::from_le_bytes([e[8], e[9], e[10], e[11]]),
            sectors: u32::from_le_bytes([e[12], e[13], e[14], e[15]]),
        };
    }
    Some(out)
}

/// A FAT, NTFS or exFAT boot sector (its 0x55AA is not an MBR's).
fn is_fs_boot_sector(s: &[u8]) -> bool {
    let jump = matches!(s.first(), Some(0xeb) | Some(0xe9));
    jump && (s.get(54..57) == Some(b"FAT")
        || s.get(82..87) == Some(b"FAT32")
        || s.get(3..11) == Some(b"NTFS    ")
        || s.get(3..11) == Some(b"EXFAT   "))
}

fn is_extended(kind: u8) -> bool {
    matches!(kind, 0x05 | 0x0f | 0x85)
}

/// Reads the partition table of a disk or disk image. `Ok(None)` when
/// there is none. A GPT is looked for at 512- and 4096-byte sectors
/// (`sector_size` first); when the primary header is damaged the backup at
/// the end of the disk is used.
pub fn read_partition_table<F: Read + Seek>(
    f: &mut F,
    sector_size: u64,
    disk_size: u64,
) -> io::Result<Option<PartitionTable>> {
    if disk_size < 512 {
        return Ok(None);
    }
    let sector0 = read_at(f, 0, 512)?;
    let mbr = mbr_entries(&sector0);
    let protective = mbr.is_some_and(|m| m.iter().any(|e| e.kind == 0xee));
    let other_size = if sector_size == 512 { 4096 } else { 512 };
    for ss in [sector_size, other_size] {
        // Room for the MBR, a header and at least one more sector.
        if disk_size / ss < 3 {
            continue;
        }
        let last_lba = disk_size / ss - 1;
        let primary = read_gpt_at(f, 1, ss, disk_size);
        let backup_lba = primary.as_ref().map_or(last_lba, |(h, _)| h.alternate_lba);
        let backup = read_gpt_at(f, backup_lba, ss, disk_size)
            .or_else(|| read_gpt_at(f, last_lba, ss, disk_size));
        let found = primary.clone().or_else(|| backup.clone());
        if let Some((header, entries)) = found {
            return Ok(Some(PartitionTable {
                kind: TableKind::Gpt,
                sector_size: ss,
                partitions: gpt_partitions(&header, &entries, ss),
                gpt: Some(header),
                gpt_backup: backup.map(|(h, _)| h),
            }));
        }
        if !protective {
            break;
        }
    }
    let Some(entries) = mbr else {
        return Ok(None);
    };
    if protective || is_fs_boot_sector(&sector0) {
        // A protective MBR without a readable GPT: nothing we can trust; or
        // a FAT/NTFS/exFAT file system on the whole, unpartitioned disk.
        return Ok(None);
    }
    // Only 512-byte MBRs are supported; sector_size is used for LBAs.
    let ss = sector_size;
    let mut partitions = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.kind == 0 || e.sectors == 0 {
            continue;
        }
        partitions.push(Partition {
            number: u32::try_from(i + 1).unwrap_or(1),
            start: u64::from(e.start_lba) * ss,
            size: u64::from(e.sectors) * ss,
            mbr_type: e.kind,
            name: None,
        });
        if is_extended(e.kind) {
            read_logical(f, u64::from(e.start_lba), ss, disk_size, &mut partitions)?;
        }
    }
    Ok(Some(PartitionTable {
        kind: TableKind::Mbr,
        sector_size: ss,
        partitions,
        gpt: None,
        gpt_backup: None,
    }))
}

/// Walks the EBR chain of an extended partition starting at `ext_start`.
fn read_logical<F: Read + Seek>(
    f: &mut F,
    ext_start: u64,
    ss: u64,
    disk_size: u64,
    out: &mut Vec<Partition>,
) -> io::Result<()> {
    let mut ebr = ext_start;
    let mut number = 5;
    let mut seen = std::collections::BTreeSet::new();
    while seen.insert(ebr) && seen.len() <= 128 {
        let Some(offset) = ebr.checked_mul(ss).filter(|o| o + 512 <= disk_size) else {
            break;
        };
        let sector = read_at(f, offset, 512)?;
        let Some(entries) = mbr_entries(&sector) else {
            break;
        };
        let logical = entries[0];
        if logical.kind != 0 && logical.sectors != 0 {
            out.push(Partition {
                number,
                start: (ebr + u64::from(logical.start_lba)) * ss,
                size: u64::from(logical.sectors) * ss,
                mbr_type: logical.kind,
                name: None,
            });
            number += 1;
        }
        let next = entries[1];
        if !is_extended(next.kind) || next.start_lba == 0 {
            break;
        }
        ebr = ext_start + u64::from(next.start_lba);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn dev(name: &str, gib: u64) -> BlockDevice {
        BlockDevice {
            name: name.into(),
            path: PathBuf::from("/dev").join(name),
            size: gib * GIB,
            rotational: false,
            model: Some("QEMU HARDDISK".into()),
            vendor: Some("QEMU".into()),
            serial: Some(format!("SER-{name}")),
            wwn: None,
            removable: false,
            hctl: Some("0:0:0:0".into()),
            by_path: Some(PathBuf::from(format!("/dev/disk/by-path/pci-{name}"))),
            tran: None,
            logical_sector_size: Some(512),
            physical_sector_size: Some(512),
        }
    }

    fn select(devs: &[BlockDevice], hints: Value) -> Result<&BlockDevice, DiskError> {
        let hints = RootDeviceHints::parse(&hints)?;
        select_root_device(devs, Some(&hints))
    }

    #[test]
    fn no_hints_picks_smallest_of_at_least_4_gib() {
        let devs = vec![dev("sdc", 100), dev("sda", 2), dev("sdb", 8), dev("vda", 8)];
        assert_eq!(select_root_device(&devs, None).unwrap().name, "sdb");
        let empty = RootDeviceHints::parse(&json!({})).unwrap();
        assert!(empty.is_empty());
        assert_eq!(select_root_device(&devs, Some(&empty)).unwrap().name, "sdb");
        let small = vec![dev("sda", 2), dev("sdb", 3)];
        let err = select_root_device(&small, None).unwrap_err().to_string();
        assert!(err.contains("/dev/sda (2.0 GiB)") && err.contains("/dev/sdb (3.0 GiB)"), "{err}");
        assert!(select_root_device(&[], None).unwrap_err().to_string().contains("none"));
    }

    #[test]
    fn size_operators() {
        let devs = vec![dev("sda", 100), dev("sdb", 50), dev("sdc", 200)];
        assert_eq!(select(&devs, json!({"size": 50})).unwrap().name, "sdb");
        assert_eq!(select(&devs, json!({"size": "50"})).unwrap().name, "sdb");
        assert_eq!(select(&devs, json!({"size": "== 200"})).unwrap().name, "sdc");
        assert_eq!(select(&devs, json!({"size": ">= 100"})).unwrap().name, "sda");
        assert_eq!(select(&devs, json!({"size": "> 100"})).unwrap().name, "sdc");
        assert_eq!(select(&devs, json!({"size": "<100"})).unwrap().name, "sdb");
        assert_eq!(select(&devs, json!({"size": "<= 100"})).unwrap().name, "sda");
        assert_eq!(select(&devs, json!({"size": "!= 100"})).unwrap().name, "sdb");
        assert_eq!(select(&devs, json!({"size": "= 150"})).unwrap().name, "sdc");
        let err = select(&devs, json!({"size": 51})).unwrap_err().to_string();
        assert!(err.contains("no block device matches") && err.contains("/dev/sdc"), "{err}");
        // 8.5 GiB is not == 8 GiB: sizes compare exactly, as in Ironic.
        let mut odd = dev("sdd", 8);
        odd.size += GIB / 2;
        assert!(select(&[odd], json!({"size": 8})).is_err());
    }

    #[test]
    fn string_hints_are_case_insensitive_with_operators() {
        let mut devs = vec![dev("sda", 10), dev("sdb", 10), dev("nvme0n1", 10)];
        devs[1].model = Some("Samsung SSD 860".into());
        devs[1].wwn = Some("0x5002538e40a1b2c3".into());
        devs[2].rotational = true;
        assert_eq!(select(&devs, json!({"model": "samsung ssd 860"})).unwrap().name, "sdb");
        assert_eq!(select(&devs, json!({"model": "s== SAMSUNG SSD 860"})).unwrap().name, "sdb");
        assert_eq!(select(&devs, json!({"model": "<in> ssd"})).unwrap().name, "sdb");
        assert_eq!(select(&devs, json!({"model": "s!= qemu harddisk"})).unwrap().name, "sdb");
        assert_eq!(select(&devs, json!({"vendor": "qemu"})).unwrap().name, "nvme0n1");
        assert_eq!(select(&devs, json!({"serial": "<or> nope <or> ser-sda"})).unwrap().name, "sda");
        assert_eq!(select(&devs, json!({"wwn": "0x5002538E40A1B2C3"})).unwrap().name, "sdb");
        assert_eq!(select(&devs, json!({"rotational": true})).unwrap().name, "nvme0n1");
        assert_eq!(select(&devs, json!({"rotational": "no", "name": "sdb"})).unwrap().name, "sdb");
        assert_eq!(select(&devs, json!({"name": "/dev/sda"})).unwrap().name, "sda");
        assert_eq!(select(&devs, json!({"hctl": "0:0:0:0"})).unwrap().name, "nvme0n1");
        assert_eq!(select(&devs, json!({"by_path": "pci-sdb"})).unwrap().name, "sdb");
        assert_eq!(
            select(&devs, json!({"by_path": "/dev/disk/by-path/pci-sda"})).unwrap().name,
            "sda"
        );
        // Every hint must match.
        assert!(select(&devs, json!({"name": "sda", "model": "<in> samsung"})).is_err());
        // A device without the attribute never matches.
        devs[0].serial = None;
        assert!(select(&devs[..1], json!({"serial": "s!= x"})).is_err());
    }

    #[test]
    fn invalid_hints_name_the_key() {
        for (hints, key) in [
            (json!({"color": "red"}), "color"),
            (json!({"size": "big"}), "size"),
            (json!({"size": 0}), "size"),
            (json!({"size": -5}), "size"),
            (json!({"size": 1.5}), "size"),
            (json!({"rotational": "maybe"}), "rotational"),
            (json!({"model": 5}), "model"),
            (json!({"model": ""}), "model"),
            (json!({"model": "s== "}), "model"),
            (json!({"serial": "== 5"}), "serial"),
            (json!({"vendor": "<all-in> a"}), "vendor"),
            (json!({"wwn_with_extension": "0x1"}), "wwn_with_extension"),
        ] {
            let err = RootDeviceHints::parse(&hints).unwrap_err();
            assert!(matches!(err, DiskError::InvalidHints(_)));
            assert!(err.to_string().contains(key), "{hints}: {err}");
        }
        assert!(RootDeviceHints::parse(&json!([1])).is_err());
        assert!(RootDeviceHints::parse(&Value::Null).unwrap().is_empty());
    }

    #[test]
    fn wwid_forms() {
        assert_eq!(wwn_from_wwid("naa.5000C500A1B2C3D4").as_deref(), Some("0x5000c500a1b2c3d4"));
        assert_eq!(wwn_from_wwid("eui.0025388b71b1c6e2").as_deref(), Some("eui.0025388b71b1c6e2"));
        assert_eq!(wwn_from_wwid("t10.ATA     QEMU HARDDISK"), None);
        assert!(is_hctl("2:0:0:0") && !is_hctl("target2:0:0") && !is_hctl("1:2:3"));
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(3 * GIB / 2), "1.5 GiB");
    }

    #[test]
    fn hostile_tables_do_not_panic() {
        use std::io::Cursor;
        // Tiny disks, with and without an MBR signature.
        for len in [0usize, 1, 511, 512, 600, 1500, 4096, 9000] {
            let mut data = vec![0u8; len];
            if len >= 512 {
                data[510] = 0x55;
                data[511] = 0xaa;
                data[446 + 4] = 0xee;
                data[446 + 8] = 1;
            }
            let _ = read_partition_table(&mut Cursor::new(&data), 512, len as u64);
            let _ = read_partition_table(&mut Cursor::new(&data), 4096, len as u64);
        }
        // A CRC-valid GPT header with absurd geometry.
        let mut disk = vec![0u8; 64 * 1024];
        let header = GptHeader {
            revision: 0x10000,
            header_size: 92,
            my_lba: 1,
            alternate_lba: u64::MAX,
            first_usable: 34,
            last_usable: u64::MAX,
            disk_guid: [7; 16],
            entries_lba: u64::MAX / 3,
            num_entries: 128,
            entry_size: 128,
            entries_crc: 0,
        };
        disk[512..1024].copy_from_slice(&header.to_sector(512));
        let len = disk.len() as u64;
        assert_eq!(read_partition_table(&mut Cursor::new(&disk), 512, len).unwrap(), None);
        // Pseudo-random sectors with an MBR signature and a looping EBR chain.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..200 {
            for b in disk.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            disk[510] = 0x55;
            disk[511] = 0xaa;
            for i in 0..4 {
                disk[446 + 16 * i] = 0;
            }
            disk[446 + 4] = 0x05;
            disk[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
            let _ = read_partition_table(&mut Cursor::new(&disk), 512, len);
        }
    }
}

//! The config drive: decoding what Ironic sends, building one, and writing
//! it to a partition at the end of the instance's disk.
//!
//! `instance_info.configdrive` is either a string — base64 of a gzipped
//! ISO9660 or vfat image (what Nova sends), or an http(s) URL of one, which
//! [`decode`] hands back as [`ConfigDriveError::IsUrl`] for the caller to
//! download and pass to [`decode_downloaded`] — or a JSON object with
//! `meta_data`, `user_data`, `network_data` and `vendor_data`, from which
//! [`build_vfat`] makes a FAT image labelled `config-2` with the
//! `openstack/{latest,2012-08-10}/` tree cloud-init reads. Images are capped
//! at 64 MiB, as in Ironic.
//!
//! [`write_config_drive`] follows the Ironic Python Agent: it reuses a
//! partition whose file system is labelled `config-2`, or creates one of
//! 64 MiB (less if only less is free) at the end of the disk — a primary
//! partition of type 0x0c on MBR disks (within the first 2 TiB; an error
//! when all four primaries are taken), a Linux-data partition named
//! `config-2` on GPT disks, after moving the backup GPT to the real end of
//! the disk (a whole-disk image is often smaller than the disk). The tables
//! are edited in place (only the new entry, the headers and their CRCs
//! change), so the image's partition numbers and boot code stay as they
//! were.

use std::fs::{File, OpenOptions};
use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::disks::{self, read_at, GptHeader, TableKind};

/// Largest config drive accepted (decoded), as in Ironic.
pub const MAX_CONFIG_DRIVE_SIZE: u64 = 64 << 20;
/// Size of a new config drive partition when the disk has room.
pub const CONFIG_DRIVE_PARTITION_SIZE: u64 = 64 << 20;
/// The file-system label cloud-init looks for.
pub const CONFIG_DRIVE_LABEL: &str = "config-2";

const MIB: u64 = 1 << 20;
/// GPT "Linux filesystem data", what `sgdisk -n` creates by default.
const LINUX_DATA_GUID: &str = "0fc63daf-8483-4772-8e79-3d69d8477de4";
/// MBR type of a new config drive partition (FAT32 with LBA, as parted
/// makes for `mkpart primary fat32`).
const MBR_CONFIG_DRIVE_TYPE: u8 = 0x0c;

/// What the agent builds a config drive from (Ironic API 1.56+).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigDriveContents {
    /// `meta_data.json`: always an object (`{}` when not given).
    pub meta_data: serde_json::Map<String, Value>,
    /// `user_data`, verbatim (a JSON object or array is serialized).
    pub user_data: Option<Vec<u8>>,
    /// `network_data.json`, written when given.
    pub network_data: Option<Value>,
    /// `vendor_data.json`, written when given.
    pub vendor_data: Option<Value>,
}

impl ConfigDriveContents {
    /// Adds `uuid` (and `name`, when the node has one) to `meta_data`
    /// unless present, as Ironic does when it builds a config drive.
    pub fn with_node_defaults(mut self, node_uuid: &str, node_name: Option<&str>) -> Self {
        self.meta_data.entry("uuid").or_insert_with(|| Value::String(node_uuid.to_owned()));
        if let Some(name) = node_name {
            self.meta_data.entry("name").or_insert_with(|| Value::String(name.to_owned()));
        }
        self
    }
}

/// A decoded `configdrive` value.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigDriveSource {
    /// An ISO9660 or vfat image, decoded (not compressed).
    Image(Vec<u8>),
    /// Contents for the agent to build an image from.
    Contents(ConfigDriveContents),
}

/// Where a config drive was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigDrivePartition {
    /// Partition number (`/dev/sda<number>`).
    pub number: u32,
    /// Offset of the partition in bytes.
    pub start: u64,
    /// Size of the partition in bytes.
    pub size: u64,
    pub table: TableKind,
    /// True when an existing `config-2` partition was overwritten.
    pub reused: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigDriveError {
    /// The value is a URL: download it and call [`decode_downloaded`].
    #[error("the config drive is a URL to download: {0}")]
    IsUrl(String),
    #[error("invalid config drive: {0}")]
    Invalid(String),
    #[error("the config drive is larger than the 64 MiB limit ({0})")]
    TooLarge(String),
    #[error("building the config drive image failed: {0}")]
    Build(io::Error),
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("writing the config drive to {path}: {what} failed: {source}")]
    Io { path: PathBuf, what: String, source: io::Error },
    #[error("cannot add a config drive partition to {path}: {reason}")]
    Partitioning { path: PathBuf, reason: String },
    #[error("re-reading the partition table of {path} failed: {reason}")]
    Reread { path: PathBuf, reason: String },
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

/// Decodes `instance_info.configdrive`.
pub fn decode(value: &Value) -> Result<ConfigDriveSource, ConfigDriveError> {
    match value {
        Value::String(s) => {
            let trimmed = s.trim();
            let lower = trimmed.get(..8).unwrap_or(trimmed).to_ascii_lowercase();
            if lower.starts_with("http://") || lower.starts_with("https://") {
                return Err(ConfigDriveError::IsUrl(trimmed.to_owned()));
            }
            let compressed = base64_decode(trimmed)?;
            gunzip_capped(&compressed).map(ConfigDriveSource::Image)
        }
        Value::Object(map) => contents_from_object(map).map(ConfigDriveSource::Contents),
        other => Err(ConfigDriveError::Invalid(format!(
            "expected a base64 string, a URL or an object with meta_data/user_data/\
             network_data/vendor_data, got {}",
            json_kind(other)
        ))),
    }
}

/// Decodes a downloaded config drive: base64 of gzip (as in the string
/// form), plain gzip, or else the image itself.
pub fn decode_downloaded(bytes: &[u8]) -> Result<Vec<u8>, ConfigDriveError> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return gunzip_capped(bytes);
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        if let Ok(compressed) = base64_decode(text.trim()) {
            if compressed.starts_with(&[0x1f, 0x8b]) {
                return gunzip_capped(&compressed);
            }
        }
    }
    if bytes.len() as u64 > MAX_CONFIG_DRIVE_SIZE {
        return Err(ConfigDriveError::TooLarge(format!("{} bytes", bytes.len())));
    }
    Ok(bytes.to_vec())
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn base64_decode(text: &str) -> Result<Vec<u8>, ConfigDriveError> {
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    // Encoders wrap lines; whitespace is not data.
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    // Base64 is 4/3 of the data; gzip rarely expands, so this bounds input.
    if compact.len() as u64 > MAX_CONFIG_DRIVE_SIZE / 3 * 4 + 1024 {
        return Err(ConfigDriveError::TooLarge(format!("{} bytes of base64", compact.len())));
    }
    ENGINE.decode(&compact).map_err(|e| {
        ConfigDriveError::Invalid(format!(
            "not base64-encoded ({e}); expected base64 of a gzipped ISO9660 or vfat image"
        ))
    })
}

fn gunzip_capped(compressed: &[u8]) -> Result<Vec<u8>, ConfigDriveError> {
    if !compressed.starts_with(&[0x1f, 0x8b]) {
        return Err(ConfigDriveError::Invalid(
            "the decoded config drive is not gzip-compressed".into(),
        ));
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(compressed)
        .take(MAX_CONFIG_DRIVE_SIZE + 1)
        .read_to_end(&mut out)
        .map_err(|e| ConfigDriveError::Invalid(format!("gzip data is corrupt: {e}")))?;
    if out.len() as u64 > MAX_CONFIG_DRIVE_SIZE {
        return Err(ConfigDriveError::TooLarge("after decompression".into()));
    }
    if out.is_empty() {
        return Err(ConfigDriveError::Invalid("the config drive image is empty".into()));
    }
    Ok(out)
}

fn contents_from_object(
    map: &serde_json::Map<String, Value>,
) -> Result<ConfigDriveContents, ConfigDriveError> {
    let mut contents = ConfigDriveContents::default();
    for (key, value) in map {
        match (key.as_str(), value) {
            (_, Value::Null) => {}
            ("meta_data", Value::Object(m)) => contents.meta_data = m.clone(),
            ("network_data", Value::Object(_)) => contents.network_data = Some(value.clone()),
            ("vendor_data", Value::Object(_)) => contents.vendor_data = Some(value.clone()),
            ("user_data", Value::String(s)) => contents.user_data = Some(s.clone().into_bytes()),
            ("user_data", Value::Object(_) | Value::Array(_)) => {
                contents.user_data = Some(value.to_string().into_bytes())
            }
            ("meta_data" | "network_data" | "vendor_data" | "user_data", other) => {
                return Err(ConfigDriveError::Invalid(format!(
                    "configdrive.{key} must be {}, got {}",
                    if key == "user_data" {
                        "a string, an object or an array"
                    } else {
                        "an object"
                    },
                    json_kind(other)
                )))
            }
            _ => {
                return Err(ConfigDriveError::Invalid(format!(
                    "unknown configdrive key \"{key}\" (expected meta_data, user_data, \
                     network_data, vendor_data)"
                )))
            }
        }
    }
    Ok(contents)
}

// ---------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------

/// The files of a config drive, relative to its root.
fn config_drive_files(
    contents: &ConfigDriveContents,
) -> Result<Vec<(String, Vec<u8>)>, ConfigDriveError> {
    let json = |v: &Value| serde_json::to_vec(v).map_err(|e| ConfigDriveError::Build(e.into()));
    let mut files = Vec::new();
    for version in ["latest", "2012-08-10"] {
        let dir = format!("openstack/{version}");
        files.push((
            format!("{dir}/meta_data.json"),
            json(&Value::Object(contents.meta_data.clone()))?,
        ));
        if let Some(user_data) = &contents.user_data {
            files.push((format!("{dir}/user_data"), user_data.clone()));
        }
        if let Some(network_data) = &contents.network_data {
            files.push((format!("{dir}/network_data.json"), json(network_data)?));
        }
        if let Some(vendor_data) = &contents.vendor_data {
            files.push((format!("{dir}/vendor_data.json"), json(vendor_data)?));
        }
    }
    Ok(files)
}

/// Builds a FAT image labelled `config-2`: at least 16 MiB, larger when the
/// contents need it, at most 64 MiB.
pub fn build_vfat(contents: &ConfigDriveContents) -> Result<Vec<u8>, ConfigDriveError> {
    let files = config_drive_files(contents)?;
    // Every file takes whole clusters (at most 4 KiB at these sizes), plus
    // room for the FATs and directories.
    let payload: u64 = files.iter().map(|(_, d)| (d.len() as u64).div_ceil(4096) * 4096).sum();
    let size = (payload + 4 * MIB).div_ceil(MIB) * MIB;
    let size = size.max(16 * MIB);
    if size > MAX_CONFIG_DRIVE_SIZE {
        return Err(ConfigDriveError::TooLarge(format!("the contents need {} bytes", payload)));
    }
    let mut image =
        vec![0u8; usize::try_from(size).map_err(|_| ConfigDriveError::TooLarge(String::new()))?];
    let mut label = [b' '; 11];
    label[..CONFIG_DRIVE_LABEL.len()].copy_from_slice(CONFIG_DRIVE_LABEL.as_bytes());
    fatfs::format_volume(
        Cursor::new(image.as_mut_slice()),
        fatfs::FormatVolumeOptions::new().volume_label(label),
    )
    .map_err(ConfigDriveError::Build)?;
    {
        let fs = fatfs::FileSystem::new(Cursor::new(image.as_mut_slice()), fatfs::FsOptions::new())
            .map_err(ConfigDriveError::Build)?;
        let root = fs.root_dir();
        for dir in ["openstack", "openstack/latest", "openstack/2012-08-10"] {
            root.create_dir(dir).map_err(ConfigDriveError::Build)?;
        }
        for (path, data) in &files {
            let mut file = root.create_file(path).map_err(ConfigDriveError::Build)?;
            file.truncate().map_err(ConfigDriveError::Build)?;
            file.write_all(data).map_err(ConfigDriveError::Build)?;
            file.flush().map_err(ConfigDriveError::Build)?;
        }
        drop(root);
        fs.unmount().map_err(ConfigDriveError::Build)?;
    }
    Ok(image)
}

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

/// The file-system label of a vfat or ISO9660 file system at `start`.
fn fs_label<F: Read + Seek>(f: &mut F, start: u64, size: u64) -> Option<String> {
    let trim = |b: &[u8]| {
        let s = String::from_utf8_lossy(b);
        let s = s.trim_matches(|c: char| c == ' ' || c == '\0');
        (!s.is_empty()).then(|| s.to_owned())
    };
    if size >= 512 {
        let bs = read_at(f, start, 512).ok()?;
        if bs[510] == 0x55 && bs[511] == 0xaa {
            if &bs[82..87] == b"FAT32" {
                return trim(&bs[71..82]);
            }
            if &bs[54..59] == b"FAT12" || &bs[54..59] == b"FAT16" || &bs[54..62] == b"FAT     " {
                return trim(&bs[43..54]);
            }
        }
    }
    if size >= 32768 + 2048 {
        let pvd = read_at(f, start + 32768, 2048).ok()?;
        if pvd[0] == 1 && &pvd[1..6] == b"CD001" {
            return trim(&pvd[40..72]);
        }
    }
    None
}

/// The path of partition `number` of `disk`: `/dev/sda` → `/dev/sda2`,
/// `/dev/nvme0n1` → `/dev/nvme0n1p2`.
pub fn partition_path(disk: &Path, number: u32) -> PathBuf {
    let s = disk.to_string_lossy();
    let sep = if s.ends_with(|c: char| c.is_ascii_digit()) { "p" } else { "" };
    PathBuf::from(format!("{s}{sep}{number}"))
}

/// Writes `image` to a config drive partition of `disk` (see the module
/// documentation), and fsyncs. On a block device the caller then calls
/// [`reread_partition_table`].
pub fn write_config_drive(
    disk: &Path,
    image: &[u8],
) -> Result<ConfigDrivePartition, ConfigDriveError> {
    let part_err =
        |reason: String| ConfigDriveError::Partitioning { path: disk.to_owned(), reason };
    let io_err = |what: &str| {
        let what = what.to_owned();
        move |source| ConfigDriveError::Io { path: disk.to_owned(), what, source }
    };
    if image.is_empty() {
        return Err(ConfigDriveError::Invalid("the config drive image is empty".into()));
    }
    if image.len() as u64 > MAX_CONFIG_DRIVE_SIZE {
        return Err(ConfigDriveError::TooLarge(format!("{} bytes", image.len())));
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(disk)
        .map_err(|source| ConfigDriveError::Open { path: disk.to_owned(), source })?;
    let size = disks::device_size(&mut file).map_err(io_err("reading the disk size"))?;
    let ss = disks::logical_sector_size(&file);
    let table = disks::read_partition_table(&mut file, ss, size)
        .map_err(io_err("reading the partition table"))?
        .ok_or_else(|| {
            part_err("the disk has no partition table (was an image written to it?)".into())
        })?;

    // An existing config-2 file system is reused, as IPA does.
    let labelled: Vec<_> = table
        .partitions
        .iter()
        .filter(|p| {
            fs_label(&mut file, p.start, p.size)
                .is_some_and(|l| l.eq_ignore_ascii_case(CONFIG_DRIVE_LABEL))
        })
        .cloned()
        .collect();
    let part = match labelled.as_slice() {
        [] => match table.kind {
            TableKind::Gpt => add_gpt_partition(&mut file, disk, size, &table, image.len() as u64)?,
            TableKind::Mbr => add_mbr_partition(&mut file, disk, size, &table, image.len() as u64)?,
        },
        [p] => {
            if (image.len() as u64) > p.size {
                return Err(part_err(format!(
                    "the existing config-2 partition {} ({} bytes) is smaller than the image \
                     ({} bytes)",
                    p.number,
                    p.size,
                    image.len()
                )));
            }
            ConfigDrivePartition {
                number: p.number,
                start: p.start,
                size: p.size,
                table: table.kind,
                reused: true,
            }
        }
        many => {
            let numbers: Vec<String> = many.iter().map(|p| p.number.to_string()).collect();
            return Err(part_err(format!(
                "more than one partition is labelled config-2: {}",
                numbers.join(", ")
            )));
        }
    };

    file.seek(SeekFrom::Start(part.start)).map_err(io_err("seeking to the partition"))?;
    file.write_all(image).map_err(io_err("writing the image"))?;
    file.sync_all().map_err(io_err("fsync"))?;
    Ok(part)
}

/// Chooses `[start, end]` (in sectors) at the end of the free space below
/// `end_incl`: 64 MiB, 1 MiB-aligned, or just enough for the image.
fn place_at_end(used_end: u64, end_incl: u64, ss: u64, image_len: u64) -> Option<(u64, u64)> {
    let align = (MIB / ss).max(1);
    for bytes in [CONFIG_DRIVE_PARTITION_SIZE, image_len.div_ceil(MIB) * MIB, image_len] {
        let sectors = bytes.div_ceil(ss);
        let Some(start) = (end_incl + 1).checked_sub(sectors) else {
            continue;
        };
        let aligned = start / align * align;
        for candidate in [aligned, start] {
            if candidate >= used_end && candidate <= end_incl {
                return Some((candidate, end_incl));
            }
        }
    }
    None
}

fn add_mbr_partition(
    file: &mut File,
    disk: &Path,
    size: u64,
    table: &disks::PartitionTable,
    image_len: u64,
) -> Result<ConfigDrivePartition, ConfigDriveError> {
    let part_err =
        |reason: String| ConfigDriveError::Partitioning { path: disk.to_owned(), reason };
    let io_err = |what: &'static str| {
        move |source| ConfigDriveError::Io { path: disk.to_owned(), what: what.into(), source }
    };
    let ss = table.sector_size;
    let mut sector0 = read_at(file, 0, 512).map_err(io_err("reading the MBR"))?;
    let entries = disks::mbr_entries(&sector0)
        .ok_or_else(|| part_err("the MBR signature vanished".into()))?;
    let slot = entries.iter().position(|e| e.kind == 0).ok_or_else(|| {
        part_err("the disk uses MBR partitioning and all four primary partitions are in use".into())
    })?;
    let used_end = entries
        .iter()
        .filter(|e| e.kind != 0)
        .map(|e| u64::from(e.start_lba) + u64::from(e.sectors))
        .max()
        .unwrap_or(1)
        .max(1);
    // MBR addresses 2^32 sectors: on larger disks the partition ends there.
    let end_incl = (size / ss).min(u64::from(u32::MAX)) - 1;
    let (start, end) = place_at_end(used_end, end_incl, ss, image_len).ok_or_else(|| {
        part_err(format!("no room for a {image_len}-byte config drive after the last partition"))
    })?;
    let (start32, count32) = match (u32::try_from(start), u32::try_from(end - start + 1)) {
        (Ok(s), Ok(c)) => (s, c),
        _ => return Err(part_err("partition outside MBR's 2 TiB range".into())),
    };
    let e = &mut sector0[446 + 16 * slot..446 + 16 * (slot + 1)];
    e.fill(0);
    // CHS fields saturated: LBA addressing only.
    e[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]);
    e[4] = MBR_CONFIG_DRIVE_TYPE;
    e[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
    e[8..12].copy_from_slice(&start32.to_le_bytes());
    e[12..16].copy_from_slice(&count32.to_le_bytes());
    file.seek(SeekFrom::Start(0)).map_err(io_err("seeking"))?;
    file.write_all(&sector0).map_err(io_err("writing the MBR"))?;
    Ok(ConfigDrivePartition {
        number: u32::try_from(slot + 1).unwrap_or(1),
        start: start * ss,
        size: (end - start + 1) * ss,
        table: TableKind::Mbr,
        reused: false,
    })
}

fn add_gpt_partition(
    file: &mut File,
    disk: &Path,
    size: u64,
    table: &disks::PartitionTable,
    image_len: u64,
) -> Result<ConfigDrivePartition, ConfigDriveError> {
    let part_err =
        |reason: String| ConfigDriveError::Partitioning { path: disk.to_owned(), reason };
    let io_err = |what: &'static str| {
        move |source| ConfigDriveError::Io { path: disk.to_owned(), what: what.into(), source }
    };
    let ss = table.sector_size;
    let old = table.gpt.clone().ok_or_else(|| part_err("GPT header missing".into()))?;
    let (_, mut entries) = disks::read_gpt_at(file, old.my_lba, ss, size)
        .ok_or_else(|| part_err("the GPT could not be re-read".into()))?;

    // Move the backup GPT to the real end of the disk.
    let last_lba = size / ss - 1;
    let entry_sectors = old.entries_bytes().div_ceil(ss);
    let backup_entries_lba = last_lba - entry_sectors;
    let last_usable = backup_entries_lba - 1;
    let used_end = table
        .partitions
        .iter()
        .map(|p| (p.start + p.size) / ss)
        .max()
        .unwrap_or(old.first_usable)
        .max(old.first_usable);
    if used_end > last_usable + 1 {
        return Err(part_err(format!(
            "partitions end at sector {used_end}, past the disk's last usable sector {last_usable}"
        )));
    }
    let es = usize::try_from(old.entry_size).unwrap_or(128);
    let slot = entries
        .chunks_exact(es)
        .position(|e| e[0..16].iter().all(|b| *b == 0))
        .ok_or_else(|| part_err("every GPT partition entry is in use".into()))?;
    let (start, end) = place_at_end(used_end, last_usable, ss, image_len).ok_or_else(|| {
        part_err(format!("no room for a {image_len}-byte config drive after the last partition"))
    })?;

    let entry = &mut entries[slot * es..(slot + 1) * es];
    entry.fill(0);
    let type_guid = uuid::Uuid::parse_str(LINUX_DATA_GUID)
        .map_err(|e| part_err(format!("bad partition type GUID: {e}")))?;
    entry[0..16].copy_from_slice(&type_guid.to_bytes_le());
    entry[16..32].copy_from_slice(&crate::fresh_uuid().to_bytes_le());
    entry[32..40].copy_from_slice(&start.to_le_bytes());
    entry[40..48].copy_from_slice(&end.to_le_bytes());
    for (i, unit) in CONFIG_DRIVE_LABEL.encode_utf16().enumerate() {
        entry[56 + 2 * i..58 + 2 * i].copy_from_slice(&unit.to_le_bytes());
    }
    let entries_crc = crc32fast::hash(&entries);

    let primary = GptHeader {
        revision: old.revision,
        header_size: 92,
        my_lba: 1,
        alternate_lba: last_lba,
        first_usable: old.first_usable,
        last_usable,
        disk_guid: old.disk_guid,
        entries_lba: if old.my_lba == 1 { old.entries_lba } else { 2 },
        num_entries: old.num_entries,
        entry_size: old.entry_size,
        entries_crc,
    };
    let backup = GptHeader {
        my_lba: last_lba,
        alternate_lba: 1,
        entries_lba: backup_entries_lba,
        ..primary.clone()
    };
    let mut write = |lba: u64, data: &[u8], what: &'static str| -> Result<(), ConfigDriveError> {
        file.seek(SeekFrom::Start(lba * ss)).map_err(io_err(what))?;
        file.write_all(data).map_err(io_err(what))
    };
    // The old backup header, when it sat inside the disk (a smaller image):
    // erase it so no tool mistakes it for the real one.
    let old_backup = if old.my_lba == 1 { old.alternate_lba } else { old.my_lba };
    if old_backup < last_lba && old_backup >= used_end {
        write(old_backup, &vec![0u8; ss as usize], "erasing the old backup GPT header")?;
    }
    write(backup_entries_lba, &entries, "writing the backup GPT entries")?;
    write(last_lba, &backup.to_sector(ss), "writing the backup GPT header")?;
    write(primary.entries_lba, &entries, "writing the GPT entries")?;
    write(1, &primary.to_sector(ss), "writing the GPT header")?;
    fix_protective_mbr(file, size, ss).map_err(io_err("updating the protective MBR"))?;
    Ok(ConfigDrivePartition {
        number: u32::try_from(slot + 1).unwrap_or(1),
        start: start * ss,
        size: (end - start + 1) * ss,
        table: TableKind::Gpt,
        reused: false,
    })
}

/// Grows a (non-hybrid) protective MBR entry to cover the whole disk.
fn fix_protective_mbr(file: &mut File, size: u64, ss: u64) -> io::Result<()> {
    let mut sector0 = read_at(file, 0, 512)?;
    let Some(entries) = disks::mbr_entries(&sector0) else {
        return Ok(());
    };
    let used: Vec<_> = entries.iter().enumerate().filter(|(_, e)| e.kind != 0).collect();
    let [(slot, e)] = used.as_slice() else {
        return Ok(());
    };
    if e.kind != 0xee || e.start_lba != 1 {
        return Ok(());
    }
    let sectors = u32::try_from((size / ss).saturating_sub(1)).unwrap_or(u32::MAX);
    let off = 446 + 16 * slot + 12;
    sector0[off..off + 4].copy_from_slice(&sectors.to_le_bytes());
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&sector0)
}

/// Asks the kernel to re-read `disk`'s partition table. A no-op on regular
/// files. rustix has no safe `BLKRRPART`, so this runs `blockdev
/// --rereadpt`, or `partprobe` when blockdev is missing.
pub fn reread_partition_table(disk: &Path) -> Result<(), ConfigDriveError> {
    let meta = std::fs::metadata(disk)
        .map_err(|source| ConfigDriveError::Open { path: disk.to_owned(), source })?;
    if !meta.file_type().is_block_device() {
        return Ok(());
    }
    let mut failures = Vec::new();
    for (tool, args) in [("blockdev", &["--rereadpt"][..]), ("partprobe", &[][..])] {
        match Command::new(tool).args(args).arg(disk).output() {
            Ok(out) if out.status.success() => return Ok(()),
            Ok(out) => {
                failures.push(format!("{tool}: {}", String::from_utf8_lossy(&out.stderr).trim()))
            }
            Err(e) => failures.push(format!("{tool}: {e}")),
        }
    }
    Err(ConfigDriveError::Reread { path: disk.to_owned(), reason: failures.join("; ") })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_are_handed_back() {
        for url in ["http://example.test/cd", " HTTPS://example.test/cd.gz "] {
            match decode(&json!(url)) {
                Err(ConfigDriveError::IsUrl(u)) => assert_eq!(u, url.trim()),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn bad_values_are_explained() {
        let err = decode(&json!(42)).unwrap_err().to_string();
        assert!(err.contains("a number"), "{err}");
        let err = decode(&json!("!!!not base64")).unwrap_err().to_string();
        assert!(err.contains("base64"), "{err}");
        let err = decode(&json!("aGVsbG8=")).unwrap_err().to_string();
        assert!(err.contains("gzip"), "{err}");
        let err = decode(&json!({"meta_data": "x"})).unwrap_err().to_string();
        assert!(err.contains("meta_data must be an object"), "{err}");
        let err = decode(&json!({"extra": {}})).unwrap_err().to_string();
        assert!(err.contains("unknown configdrive key \"extra\""), "{err}");
    }

    #[test]
    fn contents_from_object_forms() {
        let ConfigDriveSource::Contents(c) = decode(&json!({
            "meta_data": {"hostname": "h"},
            "user_data": {"a": 1},
            "network_data": null,
        }))
        .unwrap() else {
            panic!("expected contents")
        };
        assert_eq!(c.meta_data["hostname"], "h");
        assert_eq!(c.user_data.as_deref(), Some(&br#"{"a":1}"#[..]));
        assert_eq!(c.network_data, None);
        let c = c.with_node_defaults("1be26c0b", Some("node-1"));
        assert_eq!(c.meta_data["uuid"], "1be26c0b");
        assert_eq!(c.meta_data["name"], "node-1");
    }

    #[test]
    fn partition_paths() {
        assert_eq!(partition_path(Path::new("/dev/sda"), 2), PathBuf::from("/dev/sda2"));
        assert_eq!(partition_path(Path::new("/dev/nvme0n1"), 3), PathBuf::from("/dev/nvme0n1p3"));
    }

    #[test]
    fn placement() {
        // 512-byte sectors, 1 GiB disk, partitions up to sector 4096.
        let end = (1 << 30) / 512 - 34;
        let (s, e) = place_at_end(4096, end, 512, 1000).unwrap();
        assert_eq!(e, end);
        assert_eq!(s % 2048, 0);
        assert!((e - s + 1) * 512 >= 64 << 20);
        // Only 2 MiB free: shrink to the image.
        let (s, _) = place_at_end(end - 4095, end, 512, 1 << 20).unwrap();
        assert!(s >= end - 4095);
        assert!(place_at_end(end - 10, end, 512, 1 << 20).is_none());
    }
}

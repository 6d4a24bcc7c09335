//! Cleaning: erasing disk metadata, or whole disks.
//!
//! - [`erase_devices_metadata`] makes a disk look blank to partitioning
//!   tools and `blkid`: it reads the MBR (with logical partitions) or GPT
//!   itself, zeroes the first and last MiB of every partition found (file
//!   systems, LVM and md 1.1/1.2 superblocks sit at the start; md 0.90/1.0,
//!   ZFS labels and the like at the end), then the first and last MiB of the
//!   disk (MBR, primary GPT, backup GPT) — and, when a whole-disk image left
//!   the backup GPT in the middle of a larger disk, that backup too.
//! - [`erase_device`] erases everything: first with a zeroing discard
//!   (`fallocate(PUNCH_HOLE | KEEP_SIZE)`, which Linux only accepts on a
//!   block device when the device guarantees zeroes, and which punches holes
//!   in a regular file), falling back to writing zeroes in 4 MiB chunks.
//!
//! Both work on block devices and on regular files (disk images in tests)
//! and `fsync` before returning.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::FallocateFlags;
use serde::{Deserialize, Serialize};

use crate::disks::{self, Partition, TableKind};

const MIB: u64 = 1 << 20;
/// Write size of the zero fill.
const ZERO_CHUNK: u64 = 4 * MIB;
/// Discard in pieces of this size so that progress moves.
const DISCARD_CHUNK: u64 = 1 << 30;

/// How a device was erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EraseMethod {
    /// Only partition tables and signatures were zeroed.
    Metadata,
    /// Zeroing discard (`fallocate` punch hole) over the whole device.
    Discard,
    /// Zeroes written over the whole device (discard was refused, possibly
    /// after a part of the device had been discarded).
    ZeroFill,
}

/// What an erase did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EraseReport {
    pub device: PathBuf,
    pub method: EraseMethod,
    /// Size of the device in bytes.
    pub size: u64,
    /// The partition table found before erasing, if any.
    pub table: Option<TableKind>,
    /// Partitions found before erasing.
    pub partitions: Vec<Partition>,
    /// Byte ranges `[start, end)` that were zeroed (metadata erase) — for a
    /// whole-device erase, the one range of the device.
    pub zeroed: Vec<(u64, u64)>,
    /// Bytes discarded (whole-device erase).
    pub discarded_bytes: u64,
    /// Bytes overwritten with zeroes.
    pub written_bytes: u64,
}

/// Errors while erasing; each names the device.
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error("cannot open {path} for erasing: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("erasing {path}: {what} failed: {source}")]
    Io { path: PathBuf, what: String, source: io::Error },
    #[error("{path} is empty (size 0); nothing to erase")]
    Empty { path: PathBuf },
}

fn open(device: &Path) -> Result<(File, u64), EraseError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)
        .map_err(|source| EraseError::Open { path: device.to_owned(), source })?;
    let size = disks::device_size(&mut file).map_err(|source| EraseError::Io {
        path: device.to_owned(),
        what: "reading the size".into(),
        source,
    })?;
    if size == 0 {
        return Err(EraseError::Empty { path: device.to_owned() });
    }
    Ok((file, size))
}

/// Removes partition tables and file-system, RAID and LVM signatures.
pub fn erase_devices_metadata(device: &Path) -> Result<EraseReport, EraseError> {
    let io_err = |what: &str| {
        let what = what.to_owned();
        move |source| EraseError::Io { path: device.to_owned(), what, source }
    };
    let (mut file, size) = open(device)?;
    let sector = disks::logical_sector_size(&file);
    let table = disks::read_partition_table(&mut file, sector, size)
        .map_err(io_err("reading the partition table"))?;

    let mut ranges = Vec::new();
    let mut push = |start: u64, len: u64| {
        let end = start.saturating_add(len).min(size);
        if start < end {
            ranges.push((start, end));
        }
    };
    if let Some(t) = &table {
        for p in &t.partitions {
            let edge = p.size.min(MIB);
            push(p.start, edge);
            push(p.start.saturating_add(p.size).saturating_sub(edge), edge);
        }
        // A backup GPT away from the end of the device (an image written to
        // a larger disk): its header and entry array.
        if let Some(h) = &t.gpt {
            let ss = t.sector_size;
            let backup_entries_lba = t.gpt_backup.as_ref().map_or_else(
                || h.alternate_lba.saturating_sub(h.entries_bytes().div_ceil(ss)),
                |b| b.entries_lba,
            );
            let backup_header = t.gpt_backup.as_ref().map_or(h.alternate_lba, |b| b.my_lba);
            for (lba, len) in [
                (backup_entries_lba, h.entries_bytes()),
                (backup_header, ss),
                (h.my_lba, ss),
                (h.entries_lba, h.entries_bytes()),
            ] {
                push(lba.saturating_mul(ss), len);
            }
        }
    }
    let edge = size.min(MIB);
    push(0, edge);
    push(size - edge, edge);
    let ranges = merge(ranges);

    let zeros = vec![0u8; usize::try_from(MIB).unwrap_or(1 << 20)];
    let mut written = 0;
    for &(start, end) in &ranges {
        file.seek(SeekFrom::Start(start)).map_err(io_err("seeking"))?;
        let mut pos = start;
        while pos < end {
            let n = (end - pos).min(MIB);
            file.write_all(&zeros[..n as usize])
                .map_err(io_err(&format!("writing zeroes at byte {pos}")))?;
            pos += n;
            written += n;
        }
    }
    file.sync_all().map_err(io_err("fsync"))?;
    Ok(EraseReport {
        device: device.to_owned(),
        method: EraseMethod::Metadata,
        size,
        table: table.as_ref().map(|t| t.kind),
        partitions: table.map(|t| t.partitions).unwrap_or_default(),
        zeroed: ranges,
        discarded_bytes: 0,
        written_bytes: written,
    })
}

/// Sorts ranges and merges overlapping or touching ones.
fn merge(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Erases the whole device; `progress` counts the bytes done so far.
pub fn erase_device(device: &Path, progress: &AtomicU64) -> Result<EraseReport, EraseError> {
    let (mut file, size) = open(device)?;
    let sector = disks::logical_sector_size(&file);
    let table = disks::read_partition_table(&mut file, sector, size).ok().flatten();
    progress.store(0, Ordering::Relaxed);

    let mut pos = 0;
    while pos < size {
        let len = (size - pos).min(DISCARD_CHUNK);
        let flags = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
        match rustix::fs::fallocate(&file, flags, pos, len) {
            Ok(()) => {
                pos += len;
                progress.store(pos, Ordering::Relaxed);
            }
            Err(errno) => {
                tracing::info!(
                    device = %device.display(),
                    offset = pos,
                    error = %errno,
                    "zeroing discard refused; writing zeroes instead"
                );
                break;
            }
        }
    }
    let discarded = pos;
    let written = if pos < size {
        zero_fill(&mut file, pos, size, progress).map_err(|source| EraseError::Io {
            path: device.to_owned(),
            what: "writing zeroes".into(),
            source,
        })?
    } else {
        0
    };
    file.sync_all().map_err(|source| EraseError::Io {
        path: device.to_owned(),
        what: "fsync".into(),
        source,
    })?;
    Ok(EraseReport {
        device: device.to_owned(),
        method: if written > 0 { EraseMethod::ZeroFill } else { EraseMethod::Discard },
        size,
        table: table.as_ref().map(|t| t.kind),
        partitions: table.map(|t| t.partitions).unwrap_or_default(),
        zeroed: vec![(0, size)],
        discarded_bytes: discarded,
        written_bytes: written,
    })
}

/// Writes zeroes over `[from, to)` in 4 MiB writes, updating `progress`.
pub(crate) fn zero_fill(
    file: &mut File,
    from: u64,
    to: u64,
    progress: &AtomicU64,
) -> io::Result<u64> {
    let zeros = vec![0u8; usize::try_from(ZERO_CHUNK).unwrap_or(4 << 20)];
    file.seek(SeekFrom::Start(from))?;
    let mut pos = from;
    while pos < to {
        let n = (to - pos).min(ZERO_CHUNK);
        file.write_all(&zeros[..n as usize])?;
        pos += n;
        progress.store(pos, Ordering::Relaxed);
    }
    Ok(pos - from)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::Read;

    #[test]
    fn merges_ranges() {
        assert_eq!(
            merge(vec![(10, 20), (0, 5), (5, 8), (15, 30), (40, 50)]),
            vec![(0, 8), (10, 30), (40, 50)]
        );
        assert!(merge(vec![]).is_empty());
    }

    #[test]
    fn zero_fill_overwrites_and_reports_progress() {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        let size = 9 * MIB + 123;
        tmp.as_file().write_all(&vec![0xa5u8; size as usize]).unwrap();
        let mut f = OpenOptions::new().read(true).write(true).open(tmp.path()).unwrap();
        let progress = AtomicU64::new(0);
        assert_eq!(zero_fill(&mut f, MIB, size, &progress).unwrap(), size - MIB);
        assert_eq!(progress.load(Ordering::Relaxed), size);
        let mut data = Vec::new();
        File::open(tmp.path()).unwrap().read_to_end(&mut data).unwrap();
        assert_eq!(data.len() as u64, size);
        assert!(data[..MIB as usize].iter().all(|b| *b == 0xa5));
        assert!(data[MIB as usize..].iter().all(|b| *b == 0));
    }

    #[test]
    fn empty_and_missing_devices_are_errors() {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        let err = erase_devices_metadata(tmp.path()).unwrap_err();
        assert!(matches!(err, EraseError::Empty { .. }), "{err}");
        let err = erase_device(Path::new("/nonexistent/disk"), &AtomicU64::new(0)).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/disk"), "{err}");
    }
}

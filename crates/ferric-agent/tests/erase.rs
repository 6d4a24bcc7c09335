//! Cleaning against disk images made by real tools: `sfdisk` writes GPT and
//! MBR tables, `mkfs.ext4 -E offset=` puts file systems in partitions, and
//! `sfdisk -d` / `blkid -p` check that nothing is found after the erase.
//! Each test skips (with a reason) when a tool is missing, unless CI=true.

#![allow(clippy::unwrap_used)]

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use ferric_agent::disks::{read_partition_table, TableKind};
use ferric_agent::erase::{erase_device, erase_devices_metadata, EraseMethod};

const MIB: u64 = 1 << 20;

fn have(tools: &[&str]) -> bool {
    for tool in tools {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{tool} is required under CI=true");
            }
            eprintln!("skipping: {tool} is not installed");
            return false;
        }
    }
    true
}

fn sparse(path: &Path, size: u64) {
    File::create(path).unwrap().set_len(size).unwrap();
}

fn sfdisk(path: &Path, script: &str) {
    let mut child = Command::new("sfdisk")
        .args(["-q", "--no-reread", "--no-tell-kernel"])
        .arg(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "sfdisk failed on {script}");
}

fn mkfs_ext4_at(path: &Path, offset: u64, size: u64) {
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-E"])
        .arg(format!("offset={offset}"))
        .arg(path)
        .arg(format!("{}k", size / 1024))
        .output()
        .unwrap();
    assert!(out.status.success(), "mkfs.ext4: {}", String::from_utf8_lossy(&out.stderr));
}

/// `blkid -p` at an offset: Some(output) when something is found.
fn blkid_at(path: &Path, offset: u64) -> Option<String> {
    let out = Command::new("blkid")
        .args(["-p", "-O"])
        .arg(offset.to_string())
        .arg(path)
        .output()
        .unwrap();
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `sfdisk -d`: Some(dump) when a partition table is recognised.
fn sfdisk_dump(path: &Path) -> Option<String> {
    let out = Command::new("sfdisk").arg("-d").arg(path).output().unwrap();
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Sectors (512-byte aligned) that start with `needle`.
fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.chunks(512).filter(|s| s.starts_with(needle)).count()
}

#[test]
fn gpt_with_ext4_partitions_is_blank_afterwards() {
    if !have(&["sfdisk", "blkid", "mkfs.ext4"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("disk.img");
    sparse(&img, 64 * MIB);
    sfdisk(
        &img,
        "label: gpt\nsize=16MiB, type=linux, name=root\nsize=16MiB, type=linux\ntype=linux\n",
    );
    mkfs_ext4_at(&img, MIB, 16 * MIB);
    mkfs_ext4_at(&img, 33 * MIB, 16 * MIB);
    assert!(blkid_at(&img, MIB).unwrap().contains("TYPE=\"ext4\""));
    assert!(sfdisk_dump(&img).unwrap().contains("label: gpt"));

    let mut f = File::open(&img).unwrap();
    let table = read_partition_table(&mut f, 512, 64 * MIB).unwrap().unwrap();
    assert_eq!(table.kind, TableKind::Gpt);
    assert_eq!(table.partitions.len(), 3);
    assert_eq!(table.partitions[0].start, MIB);
    assert_eq!(table.partitions[0].name.as_deref(), Some("root"));

    let report = erase_devices_metadata(&img).unwrap();
    assert_eq!(report.method, EraseMethod::Metadata);
    assert_eq!(report.table, Some(TableKind::Gpt));
    assert_eq!(report.partitions.len(), 3);
    assert_eq!(fs::metadata(&img).unwrap().len(), 64 * MIB, "size kept");

    assert_eq!(sfdisk_dump(&img), None, "sfdisk still sees a table");
    assert_eq!(blkid_at(&img, 0), None);
    for p in &table.partitions {
        assert_eq!(blkid_at(&img, p.start), None, "signature left in partition {}", p.number);
    }
    let data = fs::read(&img).unwrap();
    assert_eq!(count(&data, b"EFI PART"), 0);
    let mut f = File::open(&img).unwrap();
    assert_eq!(read_partition_table(&mut f, 512, 64 * MIB).unwrap(), None);
}

#[test]
fn mbr_with_logical_partition_is_blank_afterwards() {
    if !have(&["sfdisk", "blkid", "mkfs.ext4"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("mbr.img");
    sparse(&img, 64 * MIB);
    sfdisk(
        &img,
        "label: dos\n\
         start=2048, size=16384, type=83\n\
         start=18432, size=16384, type=83\n\
         start=34816, size=90112, type=5\n\
         start=36864, size=16384, type=83\n",
    );
    let logical = 36864 * 512;
    mkfs_ext4_at(&img, logical, 8 * MIB);
    mkfs_ext4_at(&img, MIB, 8 * MIB);
    assert!(blkid_at(&img, logical).unwrap().contains("ext4"));

    let mut f = File::open(&img).unwrap();
    let table = read_partition_table(&mut f, 512, 64 * MIB).unwrap().unwrap();
    assert_eq!(table.kind, TableKind::Mbr);
    let numbers: Vec<u32> = table.partitions.iter().map(|p| p.number).collect();
    assert_eq!(numbers, [1, 2, 3, 5]);
    assert_eq!(table.partitions[3].start, logical);
    assert_eq!(table.partitions[3].size, 8 * MIB);

    erase_devices_metadata(&img).unwrap();
    assert_eq!(sfdisk_dump(&img), None);
    assert_eq!(blkid_at(&img, 0), None);
    assert_eq!(blkid_at(&img, MIB), None);
    assert_eq!(blkid_at(&img, logical), None, "logical partition's ext4 left");
}

#[test]
fn backup_gpt_in_the_middle_of_a_larger_disk_is_erased() {
    if !have(&["sfdisk", "blkid"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("grown.img");
    // A 32 MiB whole-disk image written to a 64 MiB disk.
    sparse(&img, 32 * MIB);
    sfdisk(&img, "label: gpt\nsize=8MiB, type=linux\n");
    OpenOptions::new().write(true).open(&img).unwrap().set_len(64 * MIB).unwrap();
    let before = fs::read(&img).unwrap();
    assert_eq!(count(&before, b"EFI PART"), 2, "primary and backup headers");
    let mut f = File::open(&img).unwrap();
    let table = read_partition_table(&mut f, 512, 64 * MIB).unwrap().unwrap();
    assert_eq!(table.gpt.as_ref().unwrap().alternate_lba, 32 * MIB / 512 - 1);

    erase_devices_metadata(&img).unwrap();
    let after = fs::read(&img).unwrap();
    assert_eq!(count(&after, b"EFI PART"), 0, "backup header in the middle survived");
    assert_eq!(sfdisk_dump(&img), None);
}

#[test]
fn whole_device_erase_leaves_only_zeroes() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("full.img");
    let size = 24 * MIB + 4096;
    fs::write(&img, vec![0xa5u8; size as usize]).unwrap();
    let progress = AtomicU64::new(0);
    let report = erase_device(&img, &progress).unwrap();
    eprintln!("erase method on this file system: {:?}", report.method);
    assert_eq!(report.size, size);
    assert_eq!(report.discarded_bytes + report.written_bytes, size);
    assert_eq!(progress.load(Ordering::Relaxed), size);
    let data = fs::read(&img).unwrap();
    assert_eq!(data.len() as u64, size, "size kept");
    assert!(data.iter().all(|b| *b == 0));
}

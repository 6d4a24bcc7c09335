//! Config drives: decoding, building a vfat image (read back with the
//! `fatfs` crate, mtools and `blkid`), and writing it to MBR and GPT disk
//! images made by `sfdisk` (checked with `sfdisk -d` and the crate's own
//! table reader). Tool checks skip with a reason when a tool is missing,
//! unless CI=true.

#![allow(clippy::unwrap_used)]

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine as _;
use ferric_agent::configdrive::{
    build_vfat, decode, decode_downloaded, reread_partition_table, write_config_drive,
    ConfigDriveContents, ConfigDriveError, ConfigDriveSource,
};
use ferric_agent::disks::{read_partition_table, TableKind};
use serde_json::json;

const MIB: u64 = 1 << 20;

fn have(tool: &str) -> bool {
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
        eprintln!("skipping the {tool} checks: {tool} is not installed");
    }
    found
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
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

fn sparse(path: &Path, size: u64) {
    File::create(path).unwrap().set_len(size).unwrap();
}

fn read_range(path: &Path, start: u64, len: usize) -> Vec<u8> {
    let mut f = File::open(path).unwrap();
    f.seek(SeekFrom::Start(start)).unwrap();
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf).unwrap();
    buf
}

fn contents() -> ConfigDriveContents {
    let ConfigDriveSource::Contents(c) = decode(&json!({
        "meta_data": {"uuid": "5d2d3e7c-5f2c-4a55-8d0a-1b0d1c8f3a11", "hostname": "node-1",
                      "public_keys": {"default": "ssh-ed25519 AAAA test"}},
        "user_data": "#cloud-config\nruncmd: [echo hi]\n",
        "network_data": {"links": [], "networks": [], "services": []},
        "vendor_data": {"ferric": true},
    }))
    .unwrap() else {
        panic!("expected contents");
    };
    c
}

#[test]
fn vfat_config_drive_reads_back() {
    let c = contents();
    let image = build_vfat(&c).unwrap();
    assert!(image.len() as u64 >= 16 * MIB && image.len() as u64 <= 64 * MIB);

    let fs = fatfs::FileSystem::new(std::io::Cursor::new(image.clone()), fatfs::FsOptions::new())
        .unwrap();
    assert_eq!(fs.volume_label(), "config-2");
    let root = fs.root_dir();
    for version in ["latest", "2012-08-10"] {
        let read = |name: &str| {
            let mut data = Vec::new();
            root.open_file(&format!("openstack/{version}/{name}"))
                .unwrap()
                .read_to_end(&mut data)
                .unwrap();
            data
        };
        let meta: serde_json::Value = serde_json::from_slice(&read("meta_data.json")).unwrap();
        assert_eq!(meta["hostname"], "node-1");
        assert_eq!(read("user_data"), c.user_data.clone().unwrap());
        let net: serde_json::Value = serde_json::from_slice(&read("network_data.json")).unwrap();
        assert_eq!(net["links"], json!([]));
        let vendor: serde_json::Value = serde_json::from_slice(&read("vendor_data.json")).unwrap();
        assert_eq!(vendor["ferric"], true);
    }

    // Without optional parts, only meta_data.json is written.
    let bare = build_vfat(&ConfigDriveContents::default()).unwrap();
    let fs = fatfs::FileSystem::new(std::io::Cursor::new(bare), fatfs::FsOptions::new()).unwrap();
    let names: Vec<String> = fs
        .root_dir()
        .open_dir("openstack/latest")
        .unwrap()
        .iter()
        .map(|e| e.unwrap().file_name())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(names, ["meta_data.json"]);

    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("cd.img");
    fs::write(&path, &image).unwrap();
    if have("blkid") {
        let out = run(Command::new("blkid").arg("-p").arg(&path));
        assert!(out.contains("LABEL=\"config-2\""), "{out}");
        assert!(out.contains("TYPE=\"vfat\""), "{out}");
    }
    if have("mdir") && have("mtype") {
        let listing = run(Command::new("mdir")
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(&path)
            .arg("::/openstack/latest"));
        assert!(listing.contains("meta_data.json") || listing.contains("meta_d~1"), "{listing}");
        let meta = run(Command::new("mtype")
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(&path)
            .arg("::/openstack/2012-08-10/meta_data.json"));
        let meta: serde_json::Value = serde_json::from_str(meta.trim()).unwrap();
        assert_eq!(meta["uuid"], "5d2d3e7c-5f2c-4a55-8d0a-1b0d1c8f3a11");
    }
}

#[test]
fn decodes_base64_gzip_blobs() {
    let image: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&image).unwrap();
    let gz = gz.finish().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&gz);
    // Line-wrapped, as some encoders emit it.
    let wrapped: String = b64
        .as_bytes()
        .chunks(76)
        .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
        .collect();
    for value in [json!(b64), json!(wrapped)] {
        assert_eq!(decode(&value).unwrap(), ConfigDriveSource::Image(image.clone()));
    }
    // Downloads: base64 text, plain gzip, or the raw image.
    assert_eq!(decode_downloaded(b64.as_bytes()).unwrap(), image);
    assert_eq!(decode_downloaded(&gz).unwrap(), image);
    assert_eq!(decode_downloaded(&image).unwrap(), image);

    // Over 64 MiB once decompressed.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&vec![0u8; (65 * MIB) as usize]).unwrap();
    let big = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
    let err = decode(&json!(big)).unwrap_err();
    assert!(matches!(err, ConfigDriveError::TooLarge(_)), "{err}");
}

#[test]
fn mbr_disk_gets_a_primary_partition_at_the_end() {
    if !have("sfdisk") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("mbr.img");
    sparse(&disk, 128 * MIB);
    sfdisk(&disk, "label: dos\nstart=2048, size=32MiB, type=83, bootable\n");
    let boot_code = b"ferric boot code";
    {
        let mut f = OpenOptions::new().write(true).open(&disk).unwrap();
        f.write_all(boot_code).unwrap();
    }
    let image = build_vfat(&contents()).unwrap();
    let part = write_config_drive(&disk, &image).unwrap();
    assert_eq!(part.number, 2);
    assert_eq!(part.table, TableKind::Mbr);
    assert!(!part.reused);
    assert_eq!(part.start + part.size, 128 * MIB, "ends at the end of the disk");
    assert_eq!(part.size, 64 * MIB);
    assert_eq!(part.start % MIB, 0, "aligned to 1 MiB");
    assert_eq!(read_range(&disk, part.start, image.len()), image);
    assert_eq!(read_range(&disk, 0, boot_code.len()), boot_code, "boot code kept");

    let dump = run(Command::new("sfdisk").arg("-d").arg(&disk));
    let line = dump
        .lines()
        .find(|l| l.contains("2 :"))
        .unwrap_or_else(|| panic!("{dump}"))
        .replace(' ', "");
    assert!(line.contains(&format!("start={}", part.start / 512)), "{line}");
    assert!(line.contains("type=c"), "{line}");
    assert!(dump.contains("bootable"), "partition 1 unchanged: {dump}");
    let mut f = File::open(&disk).unwrap();
    let table = read_partition_table(&mut f, 512, 128 * MIB).unwrap().unwrap();
    assert_eq!(table.partitions.len(), 2);
    assert_eq!(table.partitions[1].mbr_type, 0x0c);
    if have("blkid") {
        let out =
            run(Command::new("blkid").args(["-p", "-O"]).arg(part.start.to_string()).arg(&disk));
        assert!(out.contains("LABEL=\"config-2\""), "{out}");
    }

    // A second write reuses the labelled partition.
    let again = write_config_drive(&disk, &image).unwrap();
    assert!(again.reused);
    assert_eq!((again.number, again.start), (part.number, part.start));
    reread_partition_table(&disk).unwrap(); // a no-op on files
}

#[test]
fn four_primary_partitions_is_an_error() {
    if !have("sfdisk") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("full.img");
    sparse(&disk, 128 * MIB);
    sfdisk(
        &disk,
        "label: dos\nsize=8MiB, type=83\nsize=8MiB, type=83\nsize=8MiB, type=83\nsize=8MiB, type=83\n",
    );
    let err = write_config_drive(&disk, &build_vfat(&contents()).unwrap()).unwrap_err();
    assert!(matches!(err, ConfigDriveError::Partitioning { .. }), "{err}");
    assert!(err.to_string().contains("all four primary partitions"), "{err}");
}

#[test]
fn gpt_image_smaller_than_the_disk_gets_its_backup_moved() {
    if !have("sfdisk") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("gpt.img");
    // A 48 MiB whole-disk image written to a 256 MiB disk.
    sparse(&disk, 48 * MIB);
    sfdisk(
        &disk,
        "label: gpt\nsize=8MiB, type=uefi, name=esp\nsize=16MiB, type=linux, name=root\n",
    );
    OpenOptions::new().write(true).open(&disk).unwrap().set_len(256 * MIB).unwrap();

    let image = build_vfat(&contents()).unwrap();
    let part = write_config_drive(&disk, &image).unwrap();
    assert_eq!(part.number, 3);
    assert_eq!(part.table, TableKind::Gpt);
    assert!(part.size >= 64 * MIB && part.size < 65 * MIB, "{}", part.size);
    let last_lba = 256 * MIB / 512 - 1;
    let last_usable = last_lba - 33;
    assert_eq!(part.start + part.size, (last_usable + 1) * 512, "ends at the last usable sector");
    assert_eq!(part.start % MIB, 0);
    assert_eq!(read_range(&disk, part.start, image.len()), image);

    // Our reader: both headers valid, backup at the end.
    let mut f = File::open(&disk).unwrap();
    let table = read_partition_table(&mut f, 512, 256 * MIB).unwrap().unwrap();
    assert_eq!(table.partitions.len(), 3);
    assert_eq!(table.partitions[2].name.as_deref(), Some("config-2"));
    assert_eq!(table.gpt.as_ref().unwrap().alternate_lba, last_lba);
    assert_eq!(table.gpt.as_ref().unwrap().last_usable, last_usable);
    assert_eq!(table.gpt_backup.as_ref().unwrap().my_lba, last_lba);
    // The old backup header in the middle is gone.
    let data = fs::read(&disk).unwrap();
    assert_eq!(data.chunks(512).filter(|s| s.starts_with(b"EFI PART")).count(), 2);

    // sfdisk agrees, and its checks pass.
    let dump = run(Command::new("sfdisk").arg("-d").arg(&disk));
    assert!(dump.contains(&format!("last-lba: {last_usable}")), "{dump}");
    let line = dump
        .lines()
        .find(|l| l.contains("name=\"config-2\""))
        .unwrap_or_else(|| panic!("{dump}"))
        .replace(' ', "");
    assert!(line.contains(&format!("start={}", part.start / 512)), "{line}");
    assert!(line.contains("0FC63DAF-8483-4772-8E79-3D69D8477DE4"), "{line}");
    assert!(dump.contains("name=\"esp\"") && dump.contains("name=\"root\""), "{dump}");
    let verify = Command::new("sfdisk").arg("--verify").arg(&disk).output().unwrap();
    assert!(
        verify.status.success(),
        "sfdisk --verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[test]
fn disk_without_a_table_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("blank.img");
    sparse(&disk, 128 * MIB);
    let err = write_config_drive(&disk, &[1, 2, 3]).unwrap_err();
    assert!(err.to_string().contains("no partition table"), "{err}");
}

#[test]
fn unpartitioned_file_system_is_not_an_mbr() {
    // A bare FAT file system also ends its first sector with 0x55AA.
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("superfloppy.img");
    let mut image = build_vfat(&ConfigDriveContents::default()).unwrap();
    image.resize((128 * MIB) as usize, 0);
    fs::write(&disk, &image).unwrap();
    let mut f = File::open(&disk).unwrap();
    assert_eq!(read_partition_table(&mut f, 512, 128 * MIB).unwrap(), None);
    let err = write_config_drive(&disk, &[1, 2, 3]).unwrap_err();
    assert!(err.to_string().contains("no partition table"), "{err}");
}

//! Bootable whole-disk images for BIOS and UEFI at once, built as an
//! unprivileged user (no root, loop devices or mounts):
//!
//! - an MBR with syslinux's `mbr.bin` boot code and one bootable FAT
//!   partition from 1 MiB to the end (FAT32, FAT16 below 64 MiB);
//! - in it, syslinux for BIOS (`syslinux --install`, which goes through
//!   mtools) and `\EFI\BOOT\BOOTX64.EFI` (`syslinux.efi` + `ldlinux.e64`)
//!   for UEFI, each with a `syslinux.cfg` booting `/vmlinuz` and
//!   `/initrd.img` with the given command line;
//! - the filesystem is made by `mkfs.vfat` and filled by `mmd`/`mcopy`.
//!
//! With a root directory or tarball, the root is packed as the initramfs
//! (a newc cpio, see [`crate::cpio`]): the appliance runs from RAM and its
//! `/init` is PID 1. A persistent root filesystem (an ext4 partition the
//! kernel mounts) is future work.
//!
//! [`DiskFormat::Qcow2`] converts the raw image with `qemu-img convert`.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::cpio::Tree;
use crate::{run_tool, BuildError};

const MIB: u64 = 1024 * 1024;
const SECTOR: u64 = 512;
/// The partition starts at 1 MiB (LBA 2048).
const PARTITION_START_LBA: u64 = 2048;

/// Where the appliance's root comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootSource {
    Dir(PathBuf),
    /// A tar archive, optionally gzip/xz/zstd-compressed.
    Tar(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    #[default]
    Raw,
    Qcow2,
}

/// Which firmware the disk boots with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    #[default]
    Both,
    Bios,
    Uefi,
}

impl Firmware {
    fn bios(self) -> bool {
        matches!(self, Firmware::Both | Firmware::Bios)
    }

    fn uefi(self) -> bool {
        matches!(self, Firmware::Both | Firmware::Uefi)
    }
}

/// The syslinux files the image needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslinuxFiles {
    /// 440 bytes of MBR boot code.
    pub mbr: PathBuf,
    /// `syslinux.efi` (x86_64).
    pub efi: PathBuf,
    /// `ldlinux.e64`.
    pub ldlinux_e64: PathBuf,
}

impl SyslinuxFiles {
    /// The first existing location of each file among Debian's, Fedora's
    /// and Arch's layouts (Debian's when none exists, for the error).
    pub fn locate() -> SyslinuxFiles {
        fn first(candidates: &[&str]) -> PathBuf {
            candidates
                .iter()
                .map(PathBuf::from)
                .find(|path| path.is_file())
                .unwrap_or_else(|| PathBuf::from(candidates[0]))
        }
        SyslinuxFiles {
            mbr: first(&[
                "/usr/lib/syslinux/mbr/mbr.bin",
                "/usr/share/syslinux/mbr.bin",
                "/usr/lib/syslinux/bios/mbr.bin",
            ]),
            efi: first(&[
                "/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi",
                "/usr/share/syslinux/efi64/syslinux.efi",
                "/usr/lib/syslinux/efi64/syslinux.efi",
            ]),
            ldlinux_e64: first(&[
                "/usr/lib/syslinux/modules/efi64/ldlinux.e64",
                "/usr/share/syslinux/efi64/ldlinux.e64",
                "/usr/lib/syslinux/efi64/ldlinux.e64",
            ]),
        }
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct DiskSpec {
    pub output: PathBuf,
    /// Disk size; 0 picks the smallest comfortable size for the contents.
    pub size_mib: u64,
    pub kernel: PathBuf,
    /// An initramfs to boot with (exclusive with `root`).
    pub initrd: Option<PathBuf>,
    /// A root tree packed as the initramfs (exclusive with `initrd`).
    pub root: Option<RootSource>,
    pub cmdline: String,
    pub format: DiskFormat,
    pub firmware: Firmware,
    pub syslinux: SyslinuxFiles,
}

/// The default kernel command line: console on VGA and the first serial
/// port (the last `console=` gets `/dev/console`).
pub const DEFAULT_CMDLINE: &str = "console=tty0 console=ttyS0,115200n8";

impl DiskSpec {
    /// A spec with the default command line, raw format, both firmwares.
    pub fn new(output: PathBuf, kernel: PathBuf) -> DiskSpec {
        DiskSpec {
            output,
            size_mib: 0,
            kernel,
            initrd: None,
            root: None,
            cmdline: DEFAULT_CMDLINE.to_owned(),
            format: DiskFormat::Raw,
            firmware: Firmware::Both,
            syslinux: SyslinuxFiles::locate(),
        }
    }
}

/// What was built.
#[derive(Debug, Clone, Serialize)]
pub struct DiskReport {
    pub output: PathBuf,
    pub format: DiskFormat,
    pub firmware: Firmware,
    /// The disk's (virtual) size.
    pub disk_bytes: u64,
    /// Bytes the output file occupies on the host filesystem.
    pub file_bytes: u64,
    pub partition_offset: u64,
    pub partition_bytes: u64,
    /// `FAT32` or `FAT16`.
    pub filesystem: String,
    pub kernel_bytes: u64,
    pub initrd_bytes: Option<u64>,
}

/// Builds the disk image at `spec.output` (replaced atomically).
pub fn build_whole_disk(spec: &DiskSpec) -> Result<DiskReport, BuildError> {
    if spec.initrd.is_some() && spec.root.is_some() {
        return Err(BuildError::Input("give an initrd or a root, not both".into()));
    }
    if spec.cmdline.contains('\n') {
        return Err(BuildError::Input("the kernel command line must be one line".into()));
    }
    let kernel_bytes = file_size(&spec.kernel, "the kernel")?;
    let mut boot_files = vec![&spec.kernel];
    if spec.firmware.bios() {
        boot_files.push(&spec.syslinux.mbr);
    }
    if spec.firmware.uefi() {
        boot_files.push(&spec.syslinux.efi);
        boot_files.push(&spec.syslinux.ldlinux_e64);
    }
    let mut payload = 0;
    for path in boot_files {
        payload += file_size(path, "a boot file")?;
    }

    let out_dir = match spec.output.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&out_dir)
        .map_err(BuildError::io(format!("creating {}", out_dir.display())))?;
    let work = tempfile::Builder::new()
        .prefix(".ferric-disk-")
        .tempdir_in(&out_dir)
        .map_err(BuildError::io(format!("creating a work directory in {}", out_dir.display())))?;

    let initrd = match (&spec.initrd, &spec.root) {
        (Some(path), None) => Some(path.clone()),
        (None, Some(root)) => {
            let mut tree = Tree::new();
            match root {
                RootSource::Dir(dir) => {
                    if !dir.is_dir() {
                        return Err(BuildError::invalid(dir, "not a directory"));
                    }
                    tree.add_host_path(dir, "")?;
                }
                RootSource::Tar(tar) => tree.add_tar(tar)?,
            }
            // The kernel runs /init unless the command line names another (rdinit=).
            let rdinit = spec
                .cmdline
                .split_whitespace()
                .find_map(|word| word.strip_prefix("rdinit="))
                .unwrap_or("/init");
            if !matches!(
                tree.get(rdinit),
                Some(crate::cpio::Entry::File { .. } | crate::cpio::Entry::Symlink { .. })
            ) {
                return Err(BuildError::Input(format!(
                    "the root has no {rdinit} (the kernel runs it as PID 1 from the initramfs)"
                )));
            }
            for dir in ["dev", "proc", "sys"] {
                if tree.get(dir).is_none() {
                    tree.directory(dir, 0o755)?;
                }
            }
            if tree.get("dev/console").is_none() {
                tree.char_device("dev/console", 0o600, 5, 1)?;
            }
            let path = work.path().join("initrd.img");
            let file = std::fs::File::create(&path)
                .map_err(BuildError::io(format!("creating {}", path.display())))?;
            tree.write_cpio_gz(std::io::BufWriter::new(file), 0)?
                .flush()
                .map_err(BuildError::io(format!("writing {}", path.display())))?;
            Some(path)
        }
        _ => None,
    };
    let initrd_bytes = match &initrd {
        Some(path) => Some(file_size(path, "the initrd")?),
        None => None,
    };
    payload += initrd_bytes.unwrap_or(0);

    // Room for the files, FAT overhead and some headroom.
    let minimum_mib = 1 + (payload + payload / 8).div_ceil(MIB) + 8;
    let size_mib = match spec.size_mib {
        0 => minimum_mib.max(64),
        size if size < minimum_mib.max(16) => {
            return Err(BuildError::Input(format!(
                "{size} MiB is too small for these files; at least {} MiB",
                minimum_mib.max(16)
            )))
        }
        size => size,
    };
    // MBR partitions end at 2 TiB (32-bit sector numbers).
    if size_mib > (u64::from(u32::MAX) + PARTITION_START_LBA) * SECTOR / MIB {
        return Err(BuildError::Input(format!("{size_mib} MiB: MBR disks end at 2 TiB")));
    }
    let disk_bytes = size_mib * MIB;
    let partition_offset = PARTITION_START_LBA * SECTOR;
    let partition_bytes = disk_bytes - partition_offset;
    let fat32 = partition_bytes >= 63 * MIB;

    // The FAT filesystem, built in its own file.
    let part = work.path().join("partition.fat");
    std::fs::File::create(&part)
        .and_then(|file| file.set_len(partition_bytes))
        .map_err(BuildError::io(format!("creating {}", part.display())))?;
    let part_arg = part.as_os_str();
    run_tool(
        Command::new("mkfs.vfat")
            .args(["-F", if fat32 { "32" } else { "16" }, "-n", "FERRIC", "-h"])
            .arg(PARTITION_START_LBA.to_string())
            .arg(part_arg),
    )?;
    if spec.firmware.bios() {
        run_tool(
            Command::new("syslinux").arg("--install").arg(part_arg).env("MTOOLS_SKIP_CHECK", "1"),
        )?;
    }
    let config = syslinux_config(initrd.is_some(), &spec.cmdline);
    let config_path = work.path().join("syslinux.cfg");
    std::fs::write(&config_path, config)
        .map_err(BuildError::io(format!("writing {}", config_path.display())))?;
    let mut copies: Vec<(&Path, &str)> = vec![(&spec.kernel, "::/vmlinuz")];
    if let Some(initrd) = &initrd {
        copies.push((initrd, "::/initrd.img"));
    }
    if spec.firmware.bios() {
        copies.push((&config_path, "::/syslinux.cfg"));
    }
    if spec.firmware.uefi() {
        mtools(Command::new("mmd").arg("-i").arg(part_arg).args(["::/EFI", "::/EFI/BOOT"]))?;
        copies.push((&spec.syslinux.efi, "::/EFI/BOOT/BOOTX64.EFI"));
        copies.push((&spec.syslinux.ldlinux_e64, "::/EFI/BOOT/ldlinux.e64"));
        copies.push((&config_path, "::/EFI/BOOT/syslinux.cfg"));
    }
    for (source, dest) in copies {
        mtools(Command::new("mcopy").arg("-i").arg(part_arg).arg("-o").arg(source).arg(dest))?;
    }

    // The disk: MBR, then the partition at 1 MiB.
    let raw = work.path().join("disk.raw");
    {
        let mut disk = std::fs::File::create(&raw)
            .map_err(BuildError::io(format!("creating {}", raw.display())))?;
        disk.set_len(disk_bytes).map_err(BuildError::io(format!("sizing {}", raw.display())))?;
        let boot_code = if spec.firmware.bios() {
            let code = std::fs::read(&spec.syslinux.mbr)
                .map_err(BuildError::io(format!("reading {}", spec.syslinux.mbr.display())))?;
            if code.len() < 400 || code.len() > 512 {
                return Err(BuildError::invalid(&spec.syslinux.mbr, "not MBR boot code"));
            }
            code
        } else {
            Vec::new()
        };
        let partition_type = if fat32 { 0x0c } else { 0x0e };
        let mbr = mbr_sector(
            &boot_code,
            disk_signature(&spec.output),
            PARTITION_START_LBA,
            partition_bytes / SECTOR,
            partition_type,
        )?;
        disk.write_all(&mbr).map_err(BuildError::io(format!("writing {}", raw.display())))?;
        let mut source = std::fs::File::open(&part)
            .map_err(BuildError::io(format!("opening {}", part.display())))?;
        copy_sparse(&mut source, &mut disk, partition_offset)
            .map_err(BuildError::io(format!("writing the partition into {}", raw.display())))?;
        disk.sync_all().map_err(BuildError::io(format!("syncing {}", raw.display())))?;
    }
    std::fs::remove_file(&part).map_err(BuildError::io(format!("removing {}", part.display())))?;

    let finished = match spec.format {
        DiskFormat::Raw => raw,
        DiskFormat::Qcow2 => {
            let qcow2 = work.path().join("disk.qcow2");
            run_tool(
                Command::new("qemu-img")
                    .args(["convert", "-f", "raw", "-O", "qcow2"])
                    .arg(&raw)
                    .arg(&qcow2),
            )?;
            qcow2
        }
    };
    // Same directory, so the rename is atomic.
    std::fs::rename(&finished, &spec.output)
        .map_err(BuildError::io(format!("renaming into {}", spec.output.display())))?;
    let file_bytes = std::fs::metadata(&spec.output)
        .map(|meta| std::os::unix::fs::MetadataExt::blocks(&meta) * 512)
        .map_err(BuildError::io(format!("reading {}", spec.output.display())))?;

    Ok(DiskReport {
        output: spec.output.clone(),
        format: spec.format,
        firmware: spec.firmware,
        disk_bytes,
        file_bytes,
        partition_offset,
        partition_bytes,
        filesystem: if fat32 { "FAT32" } else { "FAT16" }.to_owned(),
        kernel_bytes,
        initrd_bytes,
    })
}

fn file_size(path: &Path, what: &str) -> Result<u64, BuildError> {
    let meta = std::fs::metadata(path)
        .map_err(BuildError::io(format!("reading {what} {}", path.display())))?;
    if !meta.is_file() {
        return Err(BuildError::invalid(path, format!("{what} is not a regular file")));
    }
    Ok(meta.len())
}

fn mtools(command: &mut Command) -> Result<String, BuildError> {
    run_tool(command.env("MTOOLS_SKIP_CHECK", "1"))
}

/// The `syslinux.cfg` for both loaders.
pub fn syslinux_config(initrd: bool, cmdline: &str) -> String {
    let mut out =
        String::from("DEFAULT linux\nPROMPT 0\nTIMEOUT 0\nLABEL linux\n  KERNEL /vmlinuz\n");
    if initrd {
        out.push_str("  INITRD /initrd.img\n");
    }
    out.push_str(&format!("  APPEND {cmdline}\n"));
    out
}

/// A stable disk signature derived from the output name (so rebuilding
/// the same image gives the same MBR).
fn disk_signature(output: &Path) -> u32 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(output.as_os_str().as_encoded_bytes());
    u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]) | 1
}

/// A 512-byte MBR: boot code (up to 440 bytes), disk signature, one
/// bootable primary partition, and the 0x55AA signature.
pub fn mbr_sector(
    boot_code: &[u8],
    signature: u32,
    start_lba: u64,
    sectors: u64,
    partition_type: u8,
) -> Result<[u8; 512], BuildError> {
    let start = u32::try_from(start_lba)
        .map_err(|_| BuildError::Input("partition start beyond 2 TiB".into()))?;
    let count =
        u32::try_from(sectors).map_err(|_| BuildError::Input("MBR disks end at 2 TiB".into()))?;
    let mut mbr = [0u8; 512];
    let code = &boot_code[..boot_code.len().min(440)];
    mbr[..code.len()].copy_from_slice(code);
    mbr[440..444].copy_from_slice(&signature.to_le_bytes());
    let entry = &mut mbr[446..462];
    entry[0] = 0x80;
    entry[1..4].copy_from_slice(&chs(start_lba));
    entry[4] = partition_type;
    entry[5..8].copy_from_slice(&chs(start_lba + sectors - 1));
    entry[8..12].copy_from_slice(&start.to_le_bytes());
    entry[12..16].copy_from_slice(&count.to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    Ok(mbr)
}

/// CHS address (255 heads, 63 sectors per track), saturated at 1023/254/63.
fn chs(lba: u64) -> [u8; 3] {
    let cylinder = lba / (255 * 63);
    if cylinder > 1023 {
        return [0xFE, 0xFF, 0xFF];
    }
    let head = (lba / 63) % 255;
    let sector = lba % 63 + 1;
    [head as u8, (sector as u8) | (((cylinder >> 2) & 0xC0) as u8), cylinder as u8]
}

/// Copies `source` into `dest` at `offset`, skipping all-zero blocks so the
/// destination (pre-sized, hence zero) stays sparse.
fn copy_sparse(
    source: &mut std::fs::File,
    dest: &mut std::fs::File,
    offset: u64,
) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 1024 * 1024];
    let mut position = offset;
    loop {
        let mut filled = 0;
        while filled < buffer.len() {
            let read = source.read(&mut buffer[filled..])?;
            if read == 0 {
                break;
            }
            filled += read;
        }
        if filled == 0 {
            return Ok(());
        }
        for (index, block) in buffer[..filled].chunks(4096).enumerate() {
            if block.iter().any(|byte| *byte != 0) {
                dest.seek(SeekFrom::Start(position + (index * 4096) as u64))?;
                dest.write_all(block)?;
            }
        }
        position += filled as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbr_layout() -> Result<(), BuildError> {
        let mbr = mbr_sector(&[0xEB; 440], 0x1234_5678, 2048, 129024, 0x0c)?;
        assert_eq!(&mbr[0..2], &[0xEB, 0xEB]);
        assert_eq!(&mbr[440..444], &0x1234_5678u32.to_le_bytes());
        assert_eq!(mbr[446], 0x80);
        assert_eq!(&mbr[447..450], &[32, 33, 0]); // LBA 2048 = C0 H32 S33
        assert_eq!(mbr[450], 0x0c);
        assert_eq!(&mbr[454..458], &2048u32.to_le_bytes());
        assert_eq!(&mbr[458..462], &129024u32.to_le_bytes());
        assert_eq!(&mbr[510..], &[0x55, 0xAA]);
        Ok(())
    }

    #[test]
    fn config() {
        let text = syslinux_config(true, "console=ttyS0 quiet");
        assert!(
            text.contains("KERNEL /vmlinuz\n  INITRD /initrd.img\n  APPEND console=ttyS0 quiet\n")
        );
        assert!(!syslinux_config(false, "x").contains("INITRD"));
    }
}

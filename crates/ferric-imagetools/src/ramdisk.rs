//! The deploy ramdisk: `ferric-deploy.kernel` (a copy of the kernel) and
//! `ferric-deploy.initramfs`, a gzip-compressed newc cpio holding
//!
//! - `/init`: the agent (mode 0755); the kernel runs it as PID 1;
//! - `/proc /sys /dev /tmp /run /mnt /etc`, `/dev/console` (c 5,1) and
//!   `/dev/null` (c 1,3);
//! - the requested kernel modules and their dependencies, decompressed
//!   (`.ko`, ready for `finit_module`), at their usual place under
//!   `/lib/modules/<KVER>/`, with a `modules.dep` covering just them;
//! - `/lib/modules/<KVER>/load-order`: one module path per line, relative
//!   to `/lib/modules/<KVER>/`, each after its dependencies — the agent
//!   loads them in that order;
//! - `/lib/modules/<KVER>/modules.alias`: the device patterns of just these
//!   modules (`alias pci:v00001AF4d*… virtio_pci`), when the kernel has
//!   any: the agent loads a module only when a device in sysfs announces a
//!   matching modalias (without the file, it loads them all);
//! - `/lib/modules/<KVER>/always`: the requested modules that drive no
//!   hardware (filesystems, code pages, crypto; names, one a line), which
//!   the agent always loads;
//! - any extra files.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cpio::{self, Tree};
use crate::kmod::{self, ModuleIndex};
use crate::BuildError;

/// File names written to the output directory.
pub const KERNEL_FILE: &str = "ferric-deploy.kernel";
pub const INITRAMFS_FILE: &str = "ferric-deploy.initramfs";
/// The load-order file, relative to `/lib/modules/<KVER>/`.
pub const LOAD_ORDER_FILE: &str = "load-order";
/// The restricted device alias file, relative to `/lib/modules/<KVER>/`.
pub const ALIAS_FILE: &str = "modules.alias";
/// The always-load list, relative to `/lib/modules/<KVER>/`.
pub const ALWAYS_FILE: &str = "always";

/// Modules the agent needs on common servers and VMs: NICs, disk
/// controllers, FAT (config drives, ESPs) and crc32c. Names built into the
/// kernel are accepted silently; aliases (such as `crc32c`) pull in every
/// module providing them.
pub const DEFAULT_MODULES: &[&str] = &[
    // virtio (QEMU/KVM)
    "virtio_pci",
    "virtio_net",
    "virtio_blk",
    "virtio_scsi",
    // NICs
    "e1000",
    "e1000e",
    "igb",
    "ixgbe",
    "i40e",
    "ice",
    "mlx5_core",
    "bnxt_en",
    "tg3",
    "af_packet",
    // disks
    "nvme",
    "ahci",
    "sd_mod",
    // FAT and its code pages
    "vfat",
    "nls_cp437",
    "nls_iso8859_1",
    "crc32c",
];

/// What to build.
#[derive(Debug, Clone)]
pub struct RamdiskSpec {
    /// The kernel image (bzImage).
    pub kernel: PathBuf,
    /// `/lib/modules/<KVER>` of that kernel.
    pub modules_dir: PathBuf,
    /// Module names (or plain aliases) to include with their dependencies.
    pub modules: Vec<String>,
    /// The static agent binary, installed as `/init`.
    pub agent: PathBuf,
    /// Extra host files or directories: (source, destination in the ramdisk).
    pub extra: Vec<(PathBuf, String)>,
    pub output_dir: PathBuf,
}

impl RamdiskSpec {
    /// A spec for `kernel` with its modules directory
    /// (`/lib/modules/<version>`) and the default module set.
    pub fn for_kernel(
        kernel: PathBuf,
        agent: PathBuf,
        output_dir: PathBuf,
    ) -> Result<RamdiskSpec, BuildError> {
        let version = kernel_version(&kernel)?;
        Ok(RamdiskSpec {
            kernel,
            modules_dir: Path::new("/lib/modules").join(version),
            modules: DEFAULT_MODULES.iter().map(|name| (*name).to_owned()).collect(),
            agent,
            extra: Vec::new(),
            output_dir,
        })
    }

    /// [`RamdiskSpec::for_kernel`] with the newest installed kernel.
    pub fn with_defaults(agent: PathBuf, output_dir: PathBuf) -> Result<RamdiskSpec, BuildError> {
        RamdiskSpec::for_kernel(default_kernel()?, agent, output_dir)
    }
}

/// What was built.
#[derive(Debug, Clone, Serialize)]
pub struct RamdiskReport {
    pub kernel_version: String,
    /// Modules in load order.
    pub modules: Vec<String>,
    /// Requested modules that are built into the kernel.
    pub builtin: Vec<String>,
    /// Modules without device aliases, loaded at every boot (the others
    /// load when their hardware is present).
    pub always: Vec<String>,
    pub kernel_path: PathBuf,
    pub initramfs_path: PathBuf,
    pub initramfs_bytes: u64,
    pub kernel_bytes: u64,
}

/// The newest `/boot/vmlinuz-<version>`, preferring kernels whose
/// `/lib/modules/<version>` exists.
pub fn default_kernel() -> Result<PathBuf, BuildError> {
    newest_kernel(Path::new("/boot"), Path::new("/lib/modules"))
}

fn newest_kernel(boot: &Path, modules: &Path) -> Result<PathBuf, BuildError> {
    let entries = std::fs::read_dir(boot)
        .map_err(|error| BuildError::NoKernel(format!("{}: {error}", boot.display())))?;
    let mut found: Vec<(bool, String)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name.strip_prefix("vmlinuz-")?.to_owned();
            Some((modules.join(&version).is_dir(), version))
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| compare_versions(&a.1, &b.1)));
    let (_, version) = found
        .pop()
        .ok_or_else(|| BuildError::NoKernel(format!("no vmlinuz-* in {}", boot.display())))?;
    Ok(boot.join(format!("vmlinuz-{version}")))
}

/// Orders version strings by their numeric runs (`6.10.2` > `6.9.12`).
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(text: &str) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        let mut digits = String::new();
        let mut other = String::new();
        for ch in text.chars() {
            if ch.is_ascii_digit() {
                if !other.is_empty() {
                    out.push((0, std::mem::take(&mut other)));
                }
                digits.push(ch);
            } else {
                if !digits.is_empty() {
                    out.push((digits.parse().unwrap_or(u64::MAX), String::new()));
                    digits.clear();
                }
                other.push(ch);
            }
        }
        if !digits.is_empty() {
            out.push((digits.parse().unwrap_or(u64::MAX), String::new()));
        }
        if !other.is_empty() {
            out.push((0, other));
        }
        out
    }
    chunks(a).cmp(&chunks(b))
}

/// The kernel's release string (`uname -r`): from the bzImage header, else
/// from a `vmlinuz-<version>` file name.
pub fn kernel_version(kernel: &Path) -> Result<String, BuildError> {
    let mut head = Vec::new();
    std::fs::File::open(kernel)
        .and_then(|file| file.take(64 * 1024).read_to_end(&mut head))
        .map_err(BuildError::io(format!("reading kernel {}", kernel.display())))?;
    if let Some(version) = bzimage_version(&head) {
        return Ok(version);
    }
    kernel
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_prefix("vmlinuz-"))
        .map(str::to_owned)
        .ok_or_else(|| {
            BuildError::invalid(
                kernel,
                "not a bzImage with a version string, nor named vmlinuz-<version>",
            )
        })
}

/// The version string a bzImage header points at (boot protocol ≥ 2.00).
pub fn bzimage_version(head: &[u8]) -> Option<String> {
    if head.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let pointer = u16::from_le_bytes([*head.get(0x20E)?, *head.get(0x20F)?]) as usize;
    if pointer == 0 {
        return None;
    }
    let start = pointer + 0x200;
    let text = head.get(start..(start + 256).min(head.len()))?;
    let end = text.iter().position(|byte| *byte == 0 || *byte == b' ').unwrap_or(text.len());
    let version = std::str::from_utf8(&text[..end]).ok()?;
    (!version.is_empty()).then(|| version.to_owned())
}

/// The program interpreter (`PT_INTERP`) of a 64-bit little-endian ELF
/// executable, if it has one within `head`.
pub fn elf_interpreter(head: &[u8]) -> Option<String> {
    if head.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |at: usize| -> Option<usize> {
        Some(u16::from_le_bytes(head.get(at..at + 2)?.try_into().ok()?) as usize)
    };
    let u64_at = |at: usize| -> Option<usize> {
        usize::try_from(u64::from_le_bytes(head.get(at..at + 8)?.try_into().ok()?)).ok()
    };
    let (phoff, phentsize, phnum) = (u64_at(0x20)?, u16_at(0x36)?, u16_at(0x38)?);
    (0..phnum).find_map(|index| {
        let header = phoff.checked_add(index.checked_mul(phentsize)?)?;
        if head.get(header..header + 4)? != 3u32.to_le_bytes() {
            return None;
        }
        let (offset, size) = (u64_at(header + 8)?, u64_at(header + 32)?);
        let text = head.get(offset..offset.checked_add(size)?)?;
        let end = text.iter().position(|byte| *byte == 0).unwrap_or(text.len());
        std::str::from_utf8(&text[..end]).ok().map(str::to_owned)
    })
}

/// Builds the kernel copy and the initramfs into `spec.output_dir`.
pub fn build_ramdisk(spec: &RamdiskSpec) -> Result<RamdiskReport, BuildError> {
    let version = kernel_version(&spec.kernel)?;
    if spec.modules_dir.file_name().and_then(|name| name.to_str()) != Some(version.as_str()) {
        tracing::warn!(
            kernel = %version,
            modules_dir = %spec.modules_dir.display(),
            "the modules directory is not named after the kernel's version"
        );
    }
    let agent_meta = std::fs::metadata(&spec.agent)
        .map_err(BuildError::io(format!("reading the agent {}", spec.agent.display())))?;
    if !agent_meta.is_file() {
        return Err(BuildError::invalid(&spec.agent, "the agent is not a regular file"));
    }
    let mut agent_head = Vec::new();
    std::fs::File::open(&spec.agent)
        .and_then(|file| file.take(64 * 1024).read_to_end(&mut agent_head))
        .map_err(BuildError::io(format!("reading the agent {}", spec.agent.display())))?;
    if let Some(interpreter) = elf_interpreter(&agent_head) {
        let provided = spec
            .extra
            .iter()
            .any(|(_, dest)| cpio::normalize(dest).ok() == cpio::normalize(&interpreter).ok());
        if !provided {
            return Err(BuildError::invalid(
                &spec.agent,
                format!(
                    "the agent is dynamically linked (interpreter {interpreter}) but the ramdisk \
                     has no libc; build it static (e.g. --target x86_64-unknown-linux-musl)"
                ),
            ));
        }
    }

    let mut tree = Tree::new();
    for dir in ["proc", "sys", "dev", "run", "mnt", "etc", "root"] {
        tree.directory(dir, 0o755)?;
    }
    tree.directory("tmp", 0o1777)?;
    tree.char_device("dev/console", 0o600, 5, 1)?;
    tree.char_device("dev/null", 0o666, 1, 3)?;
    tree.file_path("init", 0o755, &spec.agent)?;

    let module_root = format!("lib/modules/{version}");
    tree.directory(&module_root, 0o755)?;
    let mut alias_text = String::new();
    let mut always: Vec<String> = Vec::new();
    let (order, builtin) = if spec.modules.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        let index = ModuleIndex::load(&spec.modules_dir)?;
        let resolution = index.resolve(&spec.modules)?;
        for module in &resolution.order {
            let source = spec.modules_dir.join(&module.path);
            let data = std::fs::read(&source)
                .map_err(BuildError::io(format!("reading module {}", source.display())))?;
            let data = cpio::decompress(data, &source)?;
            if !data.starts_with(b"\x7fELF") {
                return Err(BuildError::invalid(&source, "not an ELF kernel module"));
            }
            let dest = format!("{module_root}/{}", kmod::uncompressed_path(&module.path));
            tree.file_bytes(&dest, 0o644, data)?;
        }
        alias_text = kmod::render_modules_alias(&index, &resolution.order);
        let wanted: Vec<String> =
            spec.modules.iter().flat_map(|name| index.targets(name)).collect();
        always = resolution
            .order
            .iter()
            .filter(|m| wanted.contains(&m.name) && index.device_aliases(&m.name).is_empty())
            .map(|m| m.name.clone())
            .collect();
        (resolution.order, resolution.builtin)
    };
    tree.file_bytes(
        &format!("{module_root}/modules.dep"),
        0o644,
        kmod::render_modules_dep(&order).into_bytes(),
    )?;
    let mut load_order = String::new();
    for module in &order {
        load_order.push_str(kmod::uncompressed_path(&module.path));
        load_order.push('\n');
    }
    tree.file_bytes(&format!("{module_root}/{LOAD_ORDER_FILE}"), 0o644, load_order.into_bytes())?;
    // Without device aliases (the kernel's modules.alias is missing) the
    // agent finds no alias file and loads every module.
    if !alias_text.is_empty() {
        tree.file_bytes(&format!("{module_root}/{ALIAS_FILE}"), 0o644, alias_text.into_bytes())?;
    }
    let always_text: String = always.iter().map(|name| format!("{name}\n")).collect();
    tree.file_bytes(&format!("{module_root}/{ALWAYS_FILE}"), 0o644, always_text.into_bytes())?;

    for (source, dest) in &spec.extra {
        tree.add_host_path(source, dest)?;
    }

    std::fs::create_dir_all(&spec.output_dir)
        .map_err(BuildError::io(format!("creating {}", spec.output_dir.display())))?;
    let initramfs_path = spec.output_dir.join(INITRAMFS_FILE);
    let initramfs_bytes = write_atomically(&initramfs_path, |file| {
        let out = tree.write_cpio_gz(std::io::BufWriter::new(file), 0)?;
        out.into_inner()
            .map_err(|error| BuildError::io("writing the initramfs")(error.into_error()))?;
        Ok(())
    })?;
    let kernel_path = spec.output_dir.join(KERNEL_FILE);
    let kernel_bytes = write_atomically(&kernel_path, |file| {
        let mut source = std::fs::File::open(&spec.kernel)
            .map_err(BuildError::io(format!("opening {}", spec.kernel.display())))?;
        std::io::copy(&mut source, file)
            .map_err(BuildError::io(format!("copying {}", spec.kernel.display())))?;
        Ok(())
    })?;

    Ok(RamdiskReport {
        kernel_version: version,
        modules: order.iter().map(|module| module.name.clone()).collect(),
        builtin,
        always,
        kernel_path,
        initramfs_path,
        initramfs_bytes,
        kernel_bytes,
    })
}

/// Writes `path` through a temporary file in the same directory, synced
/// and renamed into place; returns the final size.
pub(crate) fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> Result<(), BuildError>,
) -> Result<u64, BuildError> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".ferric-tmp-")
        .tempfile_in(dir)
        .map_err(BuildError::io(format!("creating a temporary file in {}", dir.display())))?;
    fill(temp.as_file_mut())?;
    let file = temp.as_file_mut();
    file.flush().map_err(BuildError::io(format!("writing {}", path.display())))?;
    file.sync_all().map_err(BuildError::io(format!("syncing {}", path.display())))?;
    let size =
        file.metadata().map_err(BuildError::io(format!("writing {}", path.display())))?.len();
    let mut permissions = file
        .metadata()
        .map_err(BuildError::io(format!("writing {}", path.display())))?
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o644);
    file.set_permissions(permissions)
        .map_err(BuildError::io(format!("setting permissions of {}", path.display())))?;
    temp.persist(path).map_err(|error| {
        BuildError::io(format!("renaming into {}", path.display()))(error.error)
    })?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_order() {
        use std::cmp::Ordering::*;
        assert_eq!(compare_versions("6.10.2-1-amd64", "6.9.12-1-amd64"), Greater);
        assert_eq!(compare_versions("6.1.0-56-amd64", "6.1.0-9-amd64"), Greater);
        assert_eq!(compare_versions("6.1.0", "6.1.0"), Equal);
    }

    #[test]
    fn newest_kernel_prefers_one_with_modules() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let boot = dir.path().join("boot");
        let modules = dir.path().join("modules");
        std::fs::create_dir_all(&boot)?;
        std::fs::create_dir_all(modules.join("6.1.0-9-amd64"))?;
        for version in ["6.1.0-9-amd64", "6.1.0-10-amd64"] {
            std::fs::write(boot.join(format!("vmlinuz-{version}")), b"")?;
        }
        assert_eq!(newest_kernel(&boot, &modules)?, boot.join("vmlinuz-6.1.0-9-amd64"));
        std::fs::create_dir_all(modules.join("6.1.0-10-amd64"))?;
        assert_eq!(newest_kernel(&boot, &modules)?, boot.join("vmlinuz-6.1.0-10-amd64"));
        Ok(())
    }

    #[test]
    fn bzimage_header() {
        let mut head = vec![0u8; 0x1000];
        head[0x202..0x206].copy_from_slice(b"HdrS");
        head[0x20E..0x210].copy_from_slice(&0x300u16.to_le_bytes());
        head[0x500..0x51f].copy_from_slice(b"6.1.0-56-amd64 (debian@x) #1 SM");
        assert_eq!(bzimage_version(&head).as_deref(), Some("6.1.0-56-amd64"));
        assert_eq!(bzimage_version(&[0u8; 16]), None);
    }
}

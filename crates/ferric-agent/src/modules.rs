//! Kernel module loading, in the order the ramdisk builder wrote.
//!
//! The builder lists the ramdisk's modules in
//! `/lib/modules/<release>/load-order`, one path relative to that directory
//! per line, dependencies first (blank lines and `#` comments are skipped,
//! duplicates load once). The lab's reference ramdisk writes
//! `/lib/modules/order` with paths relative to `/lib/modules`; that file is
//! used when `load-order` is absent.
//!
//! Each module is loaded with `finit_module(2)` (compressed `.ko.xz`,
//! `.ko.zst` and `.ko.gz` files with `MODULE_INIT_COMPRESSED_FILE`, which
//! needs kernel support). `EEXIST` (already loaded or built in) counts as
//! loaded; any other failure is recorded and loading goes on, so a missing
//! NIC driver does not stop the disk driver. The system call is exercised by
//! the QEMU end-to-end runs; the unit tests here cover the list and the
//! loop with a fake loader.

use std::io;
use std::path::{Component, Path, PathBuf};

/// `MODULE_INIT_COMPRESSED_FILE` (linux/module.h): the kernel decompresses.
const MODULE_INIT_COMPRESSED_FILE: i32 = 4;

/// What happened to each module.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ModuleReport {
    /// The list file read, if any.
    pub list: Option<PathBuf>,
    /// Modules loaded now, in order (paths as listed).
    pub loaded: Vec<String>,
    /// Modules the kernel already had (`EEXIST`).
    pub already_loaded: Vec<String>,
    /// Modules that failed, with the error text.
    pub failed: Vec<(String, String)>,
}

impl ModuleReport {
    /// Whether every listed module is now in the kernel.
    pub fn all_ok(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Why a load-order entry was refused before any system call.
fn check_entry(entry: &str) -> Result<(), &'static str> {
    let path = Path::new(entry);
    if path.is_absolute() {
        return Err("absolute path in load order");
    }
    if path.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err("`..` in load order");
    }
    Ok(())
}

/// Parses a load-order list: one relative path per line, in order, first
/// occurrence wins; blank lines and `#` comments are skipped.
pub fn parse_load_order(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() || out.iter().any(|seen| seen == line) {
            continue;
        }
        out.push(line.to_owned());
    }
    out
}

/// The module directory and list file for `release` under `modules_root`
/// (normally `/lib/modules`): `<release>/load-order`, else the lab's `order`.
pub fn find_load_order(modules_root: &Path, release: &str) -> Option<(PathBuf, PathBuf)> {
    let dir = modules_root.join(release);
    let list = dir.join("load-order");
    if !release.is_empty() && list.is_file() {
        return Some((dir, list));
    }
    let list = modules_root.join("order");
    list.is_file().then(|| (modules_root.to_path_buf(), list))
}

/// Loads `entries` (relative to `dir`) in order with `load`, which returns
/// `Ok(true)` when loaded, `Ok(false)` when already present.
pub fn load_with(
    dir: &Path,
    entries: &[String],
    mut load: impl FnMut(&Path) -> io::Result<bool>,
) -> ModuleReport {
    let mut report = ModuleReport::default();
    for entry in entries {
        if let Err(why) = check_entry(entry) {
            report.failed.push((entry.clone(), why.to_owned()));
            continue;
        }
        match load(&dir.join(entry)) {
            Ok(true) => report.loaded.push(entry.clone()),
            Ok(false) => report.already_loaded.push(entry.clone()),
            Err(error) => {
                tracing::warn!(module = %entry, %error, "module not loaded");
                report.failed.push((entry.clone(), error.to_string()));
            }
        }
    }
    report
}

/// Loads one module file with `finit_module(2)`; `Ok(false)` on `EEXIST`.
pub fn finit_module(path: &Path) -> io::Result<bool> {
    let file = std::fs::File::open(path)?;
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let flags = if [".ko.xz", ".ko.zst", ".ko.gz"].iter().any(|ext| name.ends_with(ext)) {
        MODULE_INIT_COMPRESSED_FILE
    } else {
        0
    };
    match rustix::system::finit_module(&file, c"", flags) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::EXIST) => Ok(false),
        Err(errno) => Err(io::Error::from(errno)),
    }
}

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> String {
    rustix::system::uname().release().to_string_lossy().into_owned()
}

/// Loads the ramdisk's modules for the running kernel from `modules_root`
/// (normally `/lib/modules`). No list file means nothing to load.
pub fn load_modules(modules_root: &Path) -> ModuleReport {
    let release = kernel_release();
    let Some((dir, list)) = find_load_order(modules_root, &release) else {
        tracing::info!(root = %modules_root.display(), %release, "no module load order");
        return ModuleReport::default();
    };
    let entries = match std::fs::read_to_string(&list) {
        Ok(text) => parse_load_order(&text),
        Err(error) => {
            let mut report = ModuleReport::default();
            report.failed.push((list.display().to_string(), error.to_string()));
            report.list = Some(list);
            return report;
        }
    };
    let mut report = load_with(&dir, &entries, finit_module);
    report.list = Some(list);
    report
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn load_order_keeps_order_and_skips_noise() {
        let text = "# virtio\nkernel/drivers/virtio/virtio_ring.ko\n\n  kernel/drivers/virtio/virtio.ko  \n\
                    kernel/drivers/virtio/virtio_ring.ko\nkernel/drivers/net/virtio_net.ko.xz # nic\n";
        assert_eq!(
            parse_load_order(text),
            [
                "kernel/drivers/virtio/virtio_ring.ko",
                "kernel/drivers/virtio/virtio.ko",
                "kernel/drivers/net/virtio_net.ko.xz"
            ]
        );
        assert!(parse_load_order("").is_empty());
    }

    #[test]
    fn failures_do_not_stop_loading() {
        let entries: Vec<String> =
            ["a.ko", "nic.ko", "builtin.ko", "/abs.ko", "../up.ko", "disk.ko"]
                .map(String::from)
                .to_vec();
        let mut calls = Vec::new();
        let report = load_with(Path::new("/m"), &entries, |path| {
            calls.push(path.to_path_buf());
            match path.file_name().and_then(|n| n.to_str()) {
                Some("nic.ko") => Err(io::Error::from_raw_os_error(2)),
                Some("builtin.ko") => Ok(false),
                _ => Ok(true),
            }
        });
        assert_eq!(
            calls,
            ["/m/a.ko", "/m/nic.ko", "/m/builtin.ko", "/m/disk.ko"].map(PathBuf::from).to_vec()
        );
        assert_eq!(report.loaded, ["a.ko", "disk.ko"]);
        assert_eq!(report.already_loaded, ["builtin.ko"]);
        let failed: Vec<&str> = report.failed.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(failed, ["nic.ko", "/abs.ko", "../up.ko"]);
        assert!(report.failed[0].1.contains("No such file"), "{:?}", report.failed[0]);
        assert!(!report.all_ok());
    }

    #[test]
    fn finds_release_list_then_lab_list() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(find_load_order(root.path(), "6.1.0-test"), None);
        std::fs::write(root.path().join("order"), "virtio.ko\n").unwrap();
        assert_eq!(
            find_load_order(root.path(), "6.1.0-test"),
            Some((root.path().to_path_buf(), root.path().join("order")))
        );
        let dir = root.path().join("6.1.0-test");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("load-order"), "kernel/virtio.ko\n").unwrap();
        assert_eq!(
            find_load_order(root.path(), "6.1.0-test"),
            Some((dir.clone(), dir.join("load-order")))
        );
    }

    #[test]
    fn missing_module_file_is_a_failure_not_a_panic() {
        let error = finit_module(Path::new("/nonexistent/ferric/x.ko")).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        assert!(!kernel_release().is_empty());
    }
}

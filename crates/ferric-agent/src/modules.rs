//! Kernel module loading: the modules the hardware needs, in the order the
//! ramdisk builder wrote.
//!
//! The builder lists the ramdisk's modules in
//! `/lib/modules/<release>/load-order`, one path relative to that directory
//! per line, dependencies first (blank lines and `#` comments are skipped,
//! duplicates load once). The lab's reference ramdisk writes
//! `/lib/modules/order` with paths relative to `/lib/modules`; that file is
//! used when `load-order` is absent.
//!
//! With a `modules.alias` (device patterns such as `pci:v00001AF4d*…`) and a
//! `modules.dep` next to `load-order`, loading is coldplug, as udev does it
//! ([`coldplug_with`]): the modalias of every device in sysfs
//! ([`scan_modaliases`]) is matched against the patterns (shell globs,
//! [`glob_match`]); the matching modules and their dependencies load in
//! load-order order; passes repeat while they load something, since new
//! drivers create new devices (`virtio_pci` → `virtio:d00000001v00001AF4`
//! → `virtio_net`). Then the modules named in the optional `always` file
//! (filesystems, code pages, crypto: no device announces them) load, and
//! after a short settle one last pass looks for stragglers. Devices
//! that appear later (a SCSI scan, a slow SATA link) are handled by a
//! background thread that keeps scanning for [`WATCH_FOR`]
//! ([`spawn_watcher`]). Without an alias file every listed module loads.
//!
//! Each module is loaded with `finit_module(2)` (compressed `.ko.xz`,
//! `.ko.zst` and `.ko.gz` files with `MODULE_INIT_COMPRESSED_FILE`, which
//! needs kernel support). `EEXIST` (already loaded or built in) counts as
//! loaded; any other failure is recorded and loading goes on, so a missing
//! NIC driver does not stop the disk driver. The system call is exercised by
//! the QEMU end-to-end runs; the unit tests here cover the lists, matching
//! and the passes with a fake loader and a fake sysfs.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

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
    /// Whether modules were chosen by device (coldplug) rather than all loaded.
    pub coldplug: bool,
    /// Distinct device modaliases seen (coldplug only).
    pub devices: usize,
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

/// The device alias file next to `load-order`.
pub const ALIAS_FILE: &str = "modules.alias";
/// The dependency file next to `load-order`.
pub const DEP_FILE: &str = "modules.dep";
/// The always-load list next to `load-order` (module names or paths).
pub const ALWAYS_FILE: &str = "always";
/// Most coldplug passes at boot.
pub const MAX_PASSES: usize = 8;
/// Once the devices are quiet, how long (counting the always-load list)
/// before one last pass for slower devices.
pub const SETTLE: Duration = Duration::from_millis(30);
/// How long the background watcher keeps looking for new devices.
pub const WATCH_FOR: Duration = Duration::from_secs(60);
/// How often the background watcher scans.
pub const WATCH_EVERY: Duration = Duration::from_millis(250);

/// Whether `text` matches the shell glob `pattern` (`*`, `?`, `[abc]`,
/// `[a-z]`, `[!a]`/`[^a]`), as `fnmatch(3)` without flags.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where to resume after the last `*`: (pattern after it, text position).
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let step = match p.get(pi) {
            Some(b'*') => {
                star = Some((pi + 1, ti));
                pi += 1;
                continue;
            }
            Some(b'?') => Some(1),
            Some(b'[') => class_match(&p[pi..], t[ti]),
            Some(&c) => (c == t[ti]).then_some(1),
            None => None,
        };
        match (step, star) {
            (Some(len), _) => {
                pi += len;
                ti += 1;
            }
            (None, Some((after, at))) => {
                pi = after;
                ti = at + 1;
                star = Some((after, at + 1));
            }
            (None, None) => return false,
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class at the start of `p` (`[`…`]`); the
/// class's length when it matches. An unclosed `[` is a literal.
fn class_match(p: &[u8], c: u8) -> Option<usize> {
    let literal = || (c == b'[').then_some(1);
    let mut i = 1;
    let negate = matches!(p.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let first = i;
    let mut hit = false;
    loop {
        let Some(&lo) = p.get(i) else { return literal() };
        if lo == b']' && i > first {
            break;
        }
        match (p.get(i + 1), p.get(i + 2)) {
            (Some(b'-'), Some(&hi)) if hi != b']' => {
                hit |= (lo..=hi).contains(&c);
                i += 3;
            }
            _ => {
                hit |= lo == c;
                i += 1;
            }
        }
    }
    (hit != negate).then_some(i + 1)
}

/// Device patterns from a `modules.alias` (`alias <pattern> <module>`),
/// each with its literal prefix for a cheap first check.
#[derive(Debug, Clone, Default)]
pub struct AliasTable {
    entries: Vec<(String, String, String)>,
}

impl AliasTable {
    /// Parses `modules.alias` text; other lines are skipped.
    pub fn parse(text: &str) -> AliasTable {
        let entries = text
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                match (words.next(), words.next(), words.next()) {
                    (Some("alias"), Some(pattern), Some(module)) => {
                        let literal = pattern.find(['*', '?', '[']).unwrap_or(pattern.len());
                        Some((
                            pattern[..literal].to_owned(),
                            pattern.to_owned(),
                            module_name(module),
                        ))
                    }
                    _ => None,
                }
            })
            .collect();
        AliasTable { entries }
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The modules whose patterns match `modalias`.
    pub fn matches<'a>(&'a self, modalias: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(literal, pattern, _)| {
                modalias.starts_with(literal.as_str()) && glob_match(pattern, modalias)
            })
            .map(|(_, _, module)| module.as_str())
    }
}

/// A module's name from its path: file name without `.ko[.xz|.zst|.gz]`,
/// `-` as `_` (how the kernel and `modules.alias` name it).
pub fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let base = [".ko.xz", ".ko.zst", ".ko.gz", ".ko"]
        .iter()
        .find_map(|suffix| base.strip_suffix(suffix))
        .unwrap_or(base);
    base.replace('-', "_")
}

/// The ramdisk's modules for coldplug: load order, dependencies, device
/// patterns and the always-load list.
#[derive(Debug, Clone, Default)]
pub struct ModuleTree {
    /// Load-order entries (paths relative to the module directory).
    pub order: Vec<String>,
    /// Dependencies of each entry, as indices into `order`.
    deps: Vec<Vec<usize>>,
    by_name: HashMap<String, usize>,
    aliases: AliasTable,
    always: Vec<usize>,
}

impl ModuleTree {
    /// Builds the tree from the texts of `load-order`, `modules.dep`,
    /// `modules.alias` and `always`. Dependencies, aliases and always
    /// entries that name no listed module are ignored (built in).
    pub fn parse(order: &str, dep: &str, alias: &str, always: &str) -> ModuleTree {
        let order = parse_load_order(order);
        let by_path: HashMap<&str, usize> =
            order.iter().enumerate().map(|(i, p)| (p.as_str(), i)).collect();
        let by_name: HashMap<String, usize> =
            order.iter().enumerate().map(|(i, p)| (module_name(p), i)).collect();
        let mut deps = vec![Vec::new(); order.len()];
        for line in dep.lines() {
            let Some((path, rest)) = line.split_once(':') else { continue };
            let Some(&index) = by_path.get(path.trim()) else { continue };
            deps[index] = rest.split_whitespace().filter_map(|d| by_path.get(d).copied()).collect();
        }
        let always = parse_load_order(always)
            .iter()
            .filter_map(|entry| {
                by_path.get(entry.as_str()).or_else(|| by_name.get(&module_name(entry))).copied()
            })
            .collect();
        ModuleTree { deps, by_name, aliases: AliasTable::parse(alias), always, order }
    }

    /// Whether coldplug is possible (there are device patterns).
    pub fn has_aliases(&self) -> bool {
        !self.aliases.is_empty()
    }

    /// Adds `index` and its dependencies (transitively) to `wanted`.
    fn close(&self, index: usize, wanted: &mut HashSet<usize>) {
        let mut stack = vec![index];
        while let Some(i) = stack.pop() {
            if wanted.insert(i) {
                stack.extend(self.deps.get(i).into_iter().flatten());
            }
        }
    }
}

/// Coldplug progress: the devices seen and the modules tried so far.
#[derive(Debug)]
pub struct Coldplug {
    tree: ModuleTree,
    dir: PathBuf,
    seen: HashSet<String>,
    tried: Vec<bool>,
    always_tried: bool,
    /// What was loaded so far.
    pub report: ModuleReport,
}

impl Coldplug {
    /// Starts with nothing seen or tried; modules live under `dir`.
    pub fn new(tree: ModuleTree, dir: &Path) -> Coldplug {
        let tried = vec![false; tree.order.len()];
        let report = ModuleReport { coldplug: true, ..ModuleReport::default() };
        Coldplug {
            tree,
            dir: dir.to_path_buf(),
            seen: HashSet::new(),
            tried,
            always_tried: false,
            report,
        }
    }

    /// One pass: loads the modules (and dependencies) matching the not yet
    /// seen `modaliases`, in load order. Returns how many were tried.
    pub fn pass(
        &mut self,
        modaliases: Vec<String>,
        load: &mut impl FnMut(&Path) -> io::Result<bool>,
    ) -> usize {
        let mut wanted = HashSet::new();
        for modalias in modaliases {
            if self.seen.contains(&modalias) {
                continue;
            }
            for module in self.tree.aliases.matches(&modalias) {
                if let Some(&index) = self.tree.by_name.get(module) {
                    self.tree.close(index, &mut wanted);
                }
            }
            self.seen.insert(modalias);
        }
        self.report.devices = self.seen.len();
        self.load_set(wanted, load)
    }

    /// Loads the always-load list (and dependencies), the first time only.
    /// Returns how many modules were tried.
    pub fn load_always(&mut self, load: &mut impl FnMut(&Path) -> io::Result<bool>) -> usize {
        if std::mem::replace(&mut self.always_tried, true) {
            return 0;
        }
        let mut wanted = HashSet::new();
        for &index in &self.tree.always {
            self.tree.close(index, &mut wanted);
        }
        self.load_set(wanted, load)
    }

    fn load_set(
        &mut self,
        wanted: HashSet<usize>,
        load: &mut impl FnMut(&Path) -> io::Result<bool>,
    ) -> usize {
        let mut wanted: Vec<usize> = wanted.into_iter().filter(|&i| !self.tried[i]).collect();
        wanted.sort_unstable();
        let entries: Vec<String> = wanted.iter().map(|&i| self.tree.order[i].clone()).collect();
        for &index in &wanted {
            self.tried[index] = true;
        }
        let part = load_with(&self.dir, &entries, load);
        self.report.loaded.extend(part.loaded);
        self.report.already_loaded.extend(part.already_loaded);
        self.report.failed.extend(part.failed);
        entries.len()
    }

    /// Whether every module has been tried.
    pub fn done(&self) -> bool {
        self.tried.iter().all(|&t| t)
    }
}

/// Coldplug at boot: device passes (at most [`MAX_PASSES`]) while one
/// loads something. When the devices are quiet, the always-load list, then
/// (if anything was loaded at all) `settle` (counting that list's time)
/// and one last pass.
pub fn coldplug_with(
    coldplug: &mut Coldplug,
    mut scan: impl FnMut() -> Vec<String>,
    mut load: impl FnMut(&Path) -> io::Result<bool>,
    settle: Duration,
) {
    let mut settled = false;
    for _ in 0..MAX_PASSES {
        if coldplug.pass(scan(), &mut load) > 0 {
            settled = false;
            continue;
        }
        if settled || coldplug.done() {
            break;
        }
        let quiet = Instant::now();
        coldplug.load_always(&mut load);
        if coldplug.report.loaded.is_empty() {
            break;
        }
        std::thread::sleep(settle.saturating_sub(quiet.elapsed()));
        settled = true;
    }
    coldplug.load_always(&mut load);
}

/// Lists device modaliases under a sysfs root (normally `/sys`):
/// `bus/*/devices/*/modalias` and the CPU's `devices/system/cpu/modalias`.
/// Each device is read once: a later [`Scanner::scan`] returns only the
/// modaliases of devices that appeared since.
#[derive(Debug)]
pub struct Scanner {
    sys_root: PathBuf,
    read: HashSet<PathBuf>,
}

impl Scanner {
    /// A scanner that has read nothing yet.
    pub fn new(sys_root: &Path) -> Scanner {
        Scanner { sys_root: sys_root.to_path_buf(), read: HashSet::new() }
    }

    /// The modaliases of the devices not read before, sorted, unique.
    pub fn scan(&mut self) -> Vec<String> {
        let mut files = vec![self.sys_root.join("devices/system/cpu/modalias")];
        let buses = std::fs::read_dir(self.sys_root.join("bus")).into_iter().flatten().flatten();
        for bus in buses {
            let devices =
                std::fs::read_dir(bus.path().join("devices")).into_iter().flatten().flatten();
            files.extend(devices.map(|device| device.path().join("modalias")));
        }
        let mut out: Vec<String> = files
            .into_iter()
            .filter_map(|file| {
                let text = (!self.read.contains(&file)).then(|| std::fs::read_to_string(&file));
                self.read.insert(file);
                text?.ok()
            })
            .map(|text| text.trim().to_owned())
            .filter(|text| !text.is_empty())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// The modaliases of all devices under `sys_root` (see [`Scanner`]).
pub fn scan_modaliases(sys_root: &Path) -> Vec<String> {
    Scanner::new(sys_root).scan()
}

/// Keeps loading modules for devices that appear after boot (scans every
/// [`WATCH_EVERY`] for [`WATCH_FOR`]), logging each module it loads.
pub fn spawn_watcher(
    mut coldplug: Coldplug,
    mut scanner: Scanner,
) -> Option<std::thread::JoinHandle<()>> {
    if coldplug.done() {
        return None;
    }
    let spawned = std::thread::Builder::new().name("coldplug".into()).spawn(move || {
        let until = Instant::now() + WATCH_FOR;
        while Instant::now() < until && !coldplug.done() {
            std::thread::sleep(WATCH_EVERY);
            let before = coldplug.report.loaded.len();
            coldplug.pass(scanner.scan(), &mut finit_module);
            for module in &coldplug.report.loaded[before..] {
                tracing::info!(%module, "module loaded for a new device");
            }
        }
    });
    spawned.map_err(|error| tracing::warn!(%error, "no module watcher")).ok()
}

/// Loads the ramdisk's modules for the running kernel from `modules_root`
/// (normally `/lib/modules`): coldplug against the devices under
/// `sys_root` when the ramdisk has device aliases and sysfs is there (and
/// then keeps watching in the background), else every listed module. No
/// list file means nothing to load.
pub fn load_modules(modules_root: &Path, sys_root: &Path) -> ModuleReport {
    let release = kernel_release();
    let Some((dir, list)) = find_load_order(modules_root, &release) else {
        tracing::info!(root = %modules_root.display(), %release, "no module load order");
        return ModuleReport::default();
    };
    let order = match std::fs::read_to_string(&list) {
        Ok(text) => text,
        Err(error) => {
            let mut report = ModuleReport::default();
            report.failed.push((list.display().to_string(), error.to_string()));
            report.list = Some(list);
            return report;
        }
    };
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    // Without sysfs no device could be seen: better every module than none.
    let sysfs = sys_root.join("bus").is_dir();
    let coldplug = match (read(ALIAS_FILE), read(DEP_FILE)) {
        (Some(alias), Some(dep)) if sysfs => {
            let always = read(ALWAYS_FILE).unwrap_or_default();
            Some(ModuleTree::parse(&order, &dep, &alias, &always)).filter(ModuleTree::has_aliases)
        }
        _ => None,
    };
    let mut report = match coldplug {
        Some(tree) => {
            let mut coldplug = Coldplug::new(tree, &dir);
            let mut scanner = Scanner::new(sys_root);
            coldplug_with(&mut coldplug, || scanner.scan(), finit_module, SETTLE);
            let report = coldplug.report.clone();
            spawn_watcher(coldplug, scanner);
            report
        }
        None => load_with(&dir, &parse_load_order(&order), finit_module),
    };
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

    #[test]
    fn globs() {
        assert!(glob_match("virtio:d00000001v*", "virtio:d00000001v00001AF4"));
        assert!(!glob_match("virtio:d00000001v*", "virtio:d00000002v00001AF4"));
        let pci = "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00";
        assert!(glob_match("pci:v00001AF4d00001000sv*sd*bc*sc*i*", pci));
        assert!(glob_match("pci:v*d*sv*sd*bc02sc00i*", pci));
        assert!(!glob_match("pci:v*d*sv*sd*bc01sc06i01*", pci));
        assert!(glob_match("*", "") && glob_match("a*b*c", "aXbYbc") && !glob_match("a*b", "ab c"));
        assert!(glob_match("a?c", "abc") && !glob_match("a?c", "ac"));
        assert!(glob_match("x[0-9]y", "x7y") && !glob_match("x[0-9]y", "xay"));
        assert!(glob_match("x[!0-9]y", "xay") && glob_match("x[^a]y", "xby"));
        assert!(glob_match("x[]a]y", "x]y") && glob_match("x[a-]y", "x-y"));
        assert!(glob_match("x[ab", "x[ab"), "an unclosed class is literal");
        assert!(!glob_match("abc", "abcd") && !glob_match("abcd", "abc"));
        let cpu = "cpu:type:x86,ven0000fam0006mod003D:feature:,0000,0001,0094,00C0";
        assert!(glob_match("cpu:type:x86,ven*fam*mod*:feature:*0094*", cpu));
        assert!(!glob_match("cpu:type:x86,ven*fam*mod*:feature:*0095*", cpu));
    }

    const ORDER: &str = "kernel/virtio_ring.ko\nkernel/virtio.ko\nkernel/virtio_pci.ko\n\
        kernel/failover.ko\nkernel/virtio_net.ko\nkernel/virtio_blk.ko\nkernel/e1000e.ko\n\
        kernel/fat.ko\nkernel/vfat.ko\nkernel/nls_iso8859-1.ko\n";
    const DEP: &str = "kernel/virtio_ring.ko:\nkernel/virtio.ko: kernel/virtio_ring.ko\n\
        kernel/virtio_pci.ko: kernel/virtio.ko kernel/virtio_ring.ko\nkernel/failover.ko:\n\
        kernel/virtio_net.ko: kernel/failover.ko kernel/virtio.ko kernel/virtio_ring.ko\n\
        kernel/virtio_blk.ko: kernel/virtio.ko kernel/virtio_ring.ko\nkernel/e1000e.ko:\n\
        kernel/fat.ko:\nkernel/vfat.ko: kernel/fat.ko kernel/builtin.ko\nkernel/nls_iso8859-1.ko:\n";
    const ALIAS: &str = "alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\n\
        alias virtio:d00000001v* virtio_net\nalias virtio:d00000002v* virtio_blk\n\
        alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e\n";

    #[test]
    fn coldplug_loads_what_the_devices_need_pass_by_pass() {
        let tree = ModuleTree::parse(ORDER, DEP, ALIAS, "vfat\nnls_iso8859_1\nno_such\n");
        assert!(tree.has_aliases());
        let mut coldplug = Coldplug::new(tree, Path::new("/m"));
        // What the fake sysfs shows before each scan: the PCI devices, then
        // the virtio devices virtio_pci created.
        let virtio_pci = "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00";
        let scans = [
            vec![virtio_pci.to_owned(), "acpi:PNP0A03:".into()],
            vec!["virtio:d00000001v00001AF4".into(), "virtio:d00000002v00001AF4".into()],
        ];
        let (mut scanned, mut loaded) = (0, Vec::new());
        coldplug_with(
            &mut coldplug,
            || {
                scanned += 1;
                scans.get(scanned - 1).cloned().unwrap_or_default()
            },
            |path| {
                loaded.push(path.to_string_lossy().replace("/m/kernel/", ""));
                Ok(!path.ends_with("virtio_ring.ko"))
            },
            Duration::from_millis(1),
        );
        assert_eq!(
            loaded,
            [
                "virtio_ring.ko",
                "virtio.ko",
                "virtio_pci.ko",
                "failover.ko",
                "virtio_net.ko",
                "virtio_blk.ko",
                "fat.ko",
                "vfat.ko",
                "nls_iso8859-1.ko"
            ]
        );
        // Two passes that found devices, one quiet pass, the always list,
        // the settle pass.
        assert_eq!(scanned, 4);
        let report = &coldplug.report;
        assert!(report.coldplug && report.failed.is_empty());
        assert_eq!(report.already_loaded, ["kernel/virtio_ring.ko"]);
        assert_eq!(report.devices, 4);
        assert!(!coldplug.done(), "e1000e has no device");
        // A device seen later (the watcher's passes) loads its driver once.
        let e1000e = "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00".to_owned();
        let mut later = Vec::new();
        let mut record = |path: &Path| {
            later.push(path.to_path_buf());
            Ok(true)
        };
        assert_eq!(coldplug.pass(vec![e1000e.clone()], &mut record), 1);
        assert_eq!(coldplug.pass(vec![e1000e], &mut record), 0);
        assert_eq!(later, [PathBuf::from("/m/kernel/e1000e.ko")]);
        assert!(coldplug.done());
    }

    #[test]
    fn coldplug_without_matches_loads_only_the_always_list() {
        let tree = ModuleTree::parse(ORDER, DEP, ALIAS, "");
        let mut coldplug = Coldplug::new(tree, Path::new("/m"));
        let mut scans = 0;
        coldplug_with(
            &mut coldplug,
            || {
                scans += 1;
                vec!["acpi:PNP0A03:".to_owned()]
            },
            |_| Ok(true),
            Duration::from_secs(60),
        );
        assert_eq!(scans, 1, "nothing loaded: no settle pass");
        assert!(coldplug.report.loaded.is_empty());
        assert!(!ModuleTree::parse(ORDER, DEP, "", "").has_aliases());
    }

    #[test]
    fn scanner_reads_each_device_once() {
        let root = tempfile::tempdir().unwrap();
        let device = |bus: &str, name: &str, modalias: Option<&str>| {
            let dir = root.path().join("bus").join(bus).join("devices").join(name);
            std::fs::create_dir_all(&dir).unwrap();
            if let Some(text) = modalias {
                std::fs::write(dir.join("modalias"), format!("{text}\n")).unwrap();
            }
        };
        device("pci", "0000:00:03.0", Some("pci:v00001AF4d00001000sv*"));
        device("pci", "0000:00:04.0", Some("pci:v00001AF4d00001000sv*"));
        device("platform", "serial8250", None);
        let cpu = root.path().join("devices/system/cpu");
        std::fs::create_dir_all(&cpu).unwrap();
        std::fs::write(cpu.join("modalias"), "cpu:type:x86,ven0000:feature:,0094\n").unwrap();
        let mut scanner = Scanner::new(root.path());
        assert_eq!(
            scanner.scan(),
            ["cpu:type:x86,ven0000:feature:,0094", "pci:v00001AF4d00001000sv*"]
        );
        assert!(scanner.scan().is_empty());
        device("virtio", "virtio0", Some("virtio:d00000001v00001AF4"));
        assert_eq!(scanner.scan(), ["virtio:d00000001v00001AF4"]);
        assert_eq!(scan_modaliases(root.path()).len(), 3);
        assert!(scan_modaliases(&root.path().join("missing")).is_empty());
    }
}

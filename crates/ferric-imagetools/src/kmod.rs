//! Kernel module metadata from `/lib/modules/<KVER>`: `modules.dep` (each
//! module's file and the files it depends on), `modules.builtin` (modules
//! compiled into the kernel) and `modules.alias` (plain names such as
//! `crc32c`, and the device patterns such as `pci:v00001AF4d*…` that say
//! which hardware a module drives); resolving a list of wanted modules into
//! a load order where every module comes after its dependencies; and the
//! restricted `modules.alias` the ramdisk carries for coldplug.
//!
//! Module names are compared the way the kernel does: `-` and `_` are the
//! same (`nls_iso8859-1.ko` is module `nls_iso8859_1`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use crate::BuildError;

/// A module's canonical name: file name without directory and `.ko[.xz|.zst|.gz]`,
/// with `-` as `_`.
pub fn module_name(path_or_name: &str) -> String {
    let base = path_or_name.rsplit('/').next().unwrap_or(path_or_name);
    let base = [".ko.xz", ".ko.zst", ".ko.gz", ".ko"]
        .iter()
        .find_map(|suffix| base.strip_suffix(suffix))
        .unwrap_or(base);
    base.replace('-', "_")
}

/// A module file's path with any compression suffix removed (`x.ko.xz` → `x.ko`).
pub fn uncompressed_path(path: &str) -> &str {
    [".xz", ".zst", ".gz"]
        .iter()
        .find_map(|suffix| path.strip_suffix(suffix).filter(|rest| rest.ends_with(".ko")))
        .unwrap_or(path)
}

/// One loadable module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub name: String,
    /// Relative to the modules directory, as in `modules.dep`.
    pub path: String,
    /// Names of the modules it needs.
    pub deps: Vec<String>,
}

/// What [`ModuleIndex::resolve`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Modules to load, each after its dependencies.
    pub order: Vec<Module>,
    /// Requested names that are built into the kernel.
    pub builtin: Vec<String>,
}

/// The module metadata of one kernel.
#[derive(Debug, Clone, Default)]
pub struct ModuleIndex {
    modules: HashMap<String, Module>,
    builtin: HashSet<String>,
    aliases: HashMap<String, Vec<String>>,
    /// Device patterns (`pci:v…*`, `virtio:d…`) per module, in file order.
    device_aliases: HashMap<String, Vec<String>>,
}

/// Whether a `modules.alias` pattern matches device modaliases (`bus:…`),
/// as opposed to a plain name (`fs-vfat`, `crc32c`) or a device node name
/// (`devname:…`), which no device in sysfs announces.
pub fn is_device_alias(alias: &str) -> bool {
    match alias.split_once(':') {
        Some((bus, _)) => !bus.is_empty() && !matches!(bus, "devname" | "symbol"),
        None => false,
    }
}

impl ModuleIndex {
    /// Reads `modules.dep` (required), `modules.builtin` and `modules.alias`
    /// (optional) from a modules directory.
    pub fn load(dir: &Path) -> Result<ModuleIndex, BuildError> {
        let read = |name: &str, required: bool| -> Result<String, BuildError> {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok(text),
                Err(error) if !required && error.kind() == std::io::ErrorKind::NotFound => {
                    Ok(String::new())
                }
                Err(source) => Err(BuildError::Io {
                    context: format!("reading {}", path.display()),
                    cause: source,
                }),
            }
        };
        let dep = read("modules.dep", true)?;
        let builtin = read("modules.builtin", false)?;
        let alias = read("modules.alias", false)?;
        ModuleIndex::parse(&dep, &builtin, &alias)
            .map_err(|message| BuildError::invalid(&dir.join("modules.dep"), message))
    }

    /// Parses the three files' texts.
    pub fn parse(dep: &str, builtin: &str, alias: &str) -> Result<ModuleIndex, String> {
        let mut modules = HashMap::new();
        for (number, line) in dep.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((path, deps)) = line.split_once(':') else {
                return Err(format!("line {}: no ':' in {line:?}", number + 1));
            };
            let path = path.trim();
            let name = module_name(path);
            let deps = deps.split_whitespace().map(module_name).collect();
            modules.insert(name.clone(), Module { name, path: path.to_owned(), deps });
        }
        let builtin = builtin
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(module_name)
            .collect();
        let mut aliases: HashMap<String, Vec<String>> = HashMap::new();
        let mut device_aliases: HashMap<String, Vec<String>> = HashMap::new();
        for line in alias.lines() {
            let mut words = line.split_whitespace();
            if let (Some("alias"), Some(alias), Some(module)) =
                (words.next(), words.next(), words.next())
            {
                if is_device_alias(alias) {
                    device_aliases.entry(module_name(module)).or_default().push(alias.to_owned());
                } else if !alias.contains(['*', '?', '[', ':']) {
                    // Plain names only: other patterns name nothing we can ask for.
                    aliases.entry(alias.replace('-', "_")).or_default().push(module_name(module));
                }
            }
        }
        Ok(ModuleIndex { modules, builtin, aliases, device_aliases })
    }

    /// The device patterns of module `name` (empty for modules that drive
    /// no hardware, such as filesystems and crypto).
    pub fn device_aliases(&self, name: &str) -> &[String] {
        self.device_aliases.get(&module_name(name)).map(Vec::as_slice).unwrap_or_default()
    }

    /// The loadable modules a wanted name stands for: the module itself,
    /// or every module an alias names; empty when built in or unknown.
    pub fn targets(&self, wanted: &str) -> Vec<String> {
        let name = module_name(wanted);
        if self.modules.contains_key(&name) {
            return vec![name];
        }
        if self.builtin.contains(&name) {
            return Vec::new();
        }
        let targets = self.aliases.get(&name).map(Vec::as_slice).unwrap_or_default();
        targets.iter().filter(|t| self.modules.contains_key(*t)).cloned().collect()
    }

    pub fn module(&self, name: &str) -> Option<&Module> {
        self.modules.get(&module_name(name))
    }

    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&module_name(name))
    }

    /// Resolves wanted module names into a load order. Built-in modules are
    /// reported, not loaded; a name that is neither a module, built in nor
    /// an alias of one is an error; an alias stands for all its modules.
    pub fn resolve(&self, wanted: &[String]) -> Result<Resolution, BuildError> {
        let mut resolution = Resolution::default();
        let mut state: HashMap<String, Visit> = HashMap::new();
        for name in wanted {
            let name = module_name(name);
            if self.modules.contains_key(&name) {
                self.visit(&name, &mut state, &mut Vec::new(), &mut resolution.order)?;
            } else if self.builtin.contains(&name) {
                if !resolution.builtin.contains(&name) {
                    resolution.builtin.push(name);
                }
            } else if let Some(targets) = self.aliases.get(&name) {
                for target in targets {
                    if self.modules.contains_key(target) {
                        self.visit(target, &mut state, &mut Vec::new(), &mut resolution.order)?;
                    } else if self.builtin.contains(target) && !resolution.builtin.contains(target)
                    {
                        resolution.builtin.push(target.clone());
                    }
                }
            } else {
                return Err(BuildError::UnknownModule(name));
            }
        }
        Ok(resolution)
    }

    fn visit(
        &self,
        name: &str,
        state: &mut HashMap<String, Visit>,
        stack: &mut Vec<String>,
        order: &mut Vec<Module>,
    ) -> Result<(), BuildError> {
        match state.get(name) {
            Some(Visit::Done) => return Ok(()),
            Some(Visit::Active) => {
                stack.push(name.to_owned());
                return Err(BuildError::DependencyCycle(stack.join(" -> ")));
            }
            None => {}
        }
        let module = match self.modules.get(name) {
            Some(module) => module,
            // A dependency listed in modules.dep but without its own line.
            None if self.builtin.contains(name) => return Ok(()),
            None => return Err(BuildError::UnknownModule(name.to_owned())),
        };
        state.insert(name.to_owned(), Visit::Active);
        stack.push(name.to_owned());
        for dep in &module.deps {
            self.visit(dep, state, stack, order)?;
        }
        stack.pop();
        state.insert(name.to_owned(), Visit::Done);
        order.push(module.clone());
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visit {
    Active,
    Done,
}

/// `modules.dep` text for exactly these modules (paths without compression
/// suffixes, since the ramdisk holds them decompressed).
pub fn render_modules_dep(order: &[Module]) -> String {
    let paths: BTreeMap<&str, &str> = order
        .iter()
        .map(|module| (module.name.as_str(), uncompressed_path(&module.path)))
        .collect();
    let mut out = String::new();
    for module in order {
        out.push_str(uncompressed_path(&module.path));
        out.push(':');
        for dep in &module.deps {
            if let Some(path) = paths.get(dep.as_str()) {
                out.push(' ');
                out.push_str(path);
            }
        }
        out.push('\n');
    }
    out
}

/// `modules.alias` text for exactly these modules: their device patterns
/// only (`alias <pattern> <module>`), in load order.
pub fn render_modules_alias(index: &ModuleIndex, order: &[Module]) -> String {
    let mut out = String::new();
    for module in order {
        for alias in index.device_aliases(&module.name) {
            out.push_str(&format!("alias {alias} {}\n", module.name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(module_name("kernel/fs/nls/nls_iso8859-1.ko"), "nls_iso8859_1");
        assert_eq!(module_name("kernel/a/b.ko.zst"), "b");
        assert_eq!(module_name("crc32c-intel"), "crc32c_intel");
        assert_eq!(uncompressed_path("kernel/a/b.ko.xz"), "kernel/a/b.ko");
        assert_eq!(uncompressed_path("kernel/a/b.ko"), "kernel/a/b.ko");
    }

    #[test]
    fn device_aliases() {
        assert!(is_device_alias("pci:v00008086d*sv*sd*bc*sc*i*"));
        assert!(is_device_alias("virtio:d00000001v*"));
        assert!(is_device_alias("cpu:type:x86,ven*fam*mod*:feature:*0094*"));
        assert!(!is_device_alias("devname:fuse"));
        assert!(!is_device_alias("fs-vfat"));
        assert!(!is_device_alias("crc32c"));
    }
}

//! Module dependency resolution on fixture `modules.dep` files, and a
//! ramdisk built from a fixture modules tree with xz/zstd/gzip-compressed
//! modules (decompressed into the initramfs, checked with GNU cpio).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use ferric_imagetools::kmod::ModuleIndex;
use ferric_imagetools::ramdisk::{build_ramdisk, RamdiskSpec};
use ferric_imagetools::BuildError;

const DEP: &str = "\
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/net/core/failover.ko:
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/fs/nls/nls_iso8859-1.ko:
kernel/arch/x86/crypto/crc32c-intel.ko.zst:
kernel/crypto/crc32c_generic.ko.xz:
kernel/x/loop_a.ko: kernel/x/loop_b.ko
kernel/x/loop_b.ko: kernel/x/loop_a.ko
";
const BUILTIN: &str = "kernel/net/packet/af_packet.ko\nkernel/fs/fat/fat.ko\n";
const ALIAS: &str = "\
# Aliases extracted from modules themselves.
alias crc32c crc32c_intel
alias crc32c crc32c_generic
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias virtio:d00000001v* virtio_net
alias cpu:type:x86,ven*fam*mod*:feature:*0094* crc32c_intel
alias devname:fuse fuse
alias fs-vfat vfat
";

fn index() -> ModuleIndex {
    ModuleIndex::parse(DEP, BUILTIN, ALIAS).unwrap()
}

fn names(wanted: &[&str]) -> Result<(Vec<String>, Vec<String>), BuildError> {
    let wanted: Vec<String> = wanted.iter().map(|name| (*name).to_owned()).collect();
    let resolution = index().resolve(&wanted)?;
    Ok((resolution.order.into_iter().map(|module| module.name).collect(), resolution.builtin))
}

fn position(order: &[String], name: &str) -> usize {
    order.iter().position(|entry| entry == name).unwrap_or_else(|| panic!("{name} missing"))
}

#[test]
fn every_module_comes_after_its_dependencies() {
    let (order, builtin) = names(&["virtio_net", "virtio_pci", "af_packet"]).unwrap();
    assert_eq!(
        order,
        [
            "failover",
            "net_failover",
            "virtio_ring",
            "virtio",
            "virtio_net",
            "virtio_pci_modern_dev",
            "virtio_pci"
        ]
    );
    assert_eq!(builtin, ["af_packet"]);
    let index = index();
    for name in &order {
        for dep in &index.module(name).unwrap().deps {
            assert!(position(&order, dep) < position(&order, name), "{dep} before {name}");
        }
    }
    // Each module once, even when asked twice or reached twice.
    let (again, _) = names(&["virtio", "virtio_net", "virtio"]).unwrap();
    assert_eq!(again, ["virtio_ring", "virtio", "failover", "net_failover", "virtio_net"]);
}

#[test]
fn dashes_underscores_aliases_and_unknowns() {
    let (order, _) = names(&["nls_iso8859_1", "nls-iso8859-1"]).unwrap();
    assert_eq!(order, ["nls_iso8859_1"]);
    let (order, _) = names(&["crc32c"]).unwrap();
    assert_eq!(order, ["crc32c_intel", "crc32c_generic"]);
    let (order, builtin) = names(&["fat"]).unwrap();
    assert!(order.is_empty());
    assert_eq!(builtin, ["fat"]);
    match names(&["virtio_net", "no_such_module"]) {
        Err(BuildError::UnknownModule(name)) => assert_eq!(name, "no_such_module"),
        other => panic!("{other:?}"),
    }
    // A wildcard alias is not a name.
    assert!(matches!(names(&["pci:v00001AF4d*sv*sd*bc*sc*i*"]), Err(BuildError::UnknownModule(_))));
    match names(&["loop_a"]) {
        Err(BuildError::DependencyCycle(cycle)) => assert_eq!(cycle, "loop_a -> loop_b -> loop_a"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn device_aliases_and_targets() {
    let index = index();
    assert_eq!(index.device_aliases("virtio-pci"), ["pci:v00001AF4d*sv*sd*bc*sc*i*"]);
    assert!(index.device_aliases("crc32c_generic").is_empty());
    assert!(index.device_aliases("fuse").is_empty(), "devname: is no device pattern");
    assert_eq!(index.targets("crc32c"), ["crc32c_intel", "crc32c_generic"]);
    assert_eq!(index.targets("nls-iso8859-1"), ["nls_iso8859_1"]);
    assert!(index.targets("fat").is_empty() && index.targets("nothing").is_empty());
}

#[test]
fn malformed_modules_dep_is_an_error() {
    assert!(ModuleIndex::parse("kernel/a.ko\n", "", "").is_err());
}

/// A fake bzImage whose header names `version`.
fn fake_kernel(path: &Path, version: &str) {
    let mut image = vec![0u8; 0x4000];
    image[0x202..0x206].copy_from_slice(b"HdrS");
    image[0x20E..0x210].copy_from_slice(&0x1000u16.to_le_bytes());
    let text = format!("{version} (builder@host) #1 SMP");
    image[0x1200..0x1200 + text.len()].copy_from_slice(text.as_bytes());
    std::fs::write(path, image).unwrap();
}

fn fake_module(name: &str) -> Vec<u8> {
    let mut data = b"\x7fELF\x02\x01\x01".to_vec();
    data.extend_from_slice(format!("fake module {name}").as_bytes());
    data.resize(5000, 0x5a);
    data
}

fn compress(tool: &str, data: &[u8]) -> Vec<u8> {
    let mut child = Command::new(tool)
        .args(["-c", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(data).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    output.stdout
}

#[test]
fn ramdisk_from_fixture_modules() {
    for tool in ["cpio", "gzip", "xz", "zstd"] {
        if !common::require(common::which(tool).is_some(), tool) {
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let version = "6.6.6-fixture";
    let modules_dir = dir.path().join("modules").join(version);
    std::fs::create_dir_all(&modules_dir).unwrap();
    std::fs::write(modules_dir.join("modules.dep"), DEP).unwrap();
    std::fs::write(modules_dir.join("modules.builtin"), BUILTIN).unwrap();
    std::fs::write(modules_dir.join("modules.alias"), ALIAS).unwrap();
    for line in DEP.lines() {
        let path = line.split(':').next().unwrap();
        let name = ferric_imagetools::kmod::module_name(path);
        let data = fake_module(&name);
        let data = if path.ends_with(".xz") {
            compress("xz", &data)
        } else if path.ends_with(".zst") {
            compress("zstd", &data)
        } else if name == "virtio" {
            compress("gzip", &data) // a .ko that is secretly gzip: sniffed by magic
        } else {
            data
        };
        let file = modules_dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, data).unwrap();
    }
    let kernel = dir.path().join("bzImage");
    fake_kernel(&kernel, version);
    let agent = dir.path().join("agent");
    std::fs::write(&agent, b"\x7fELF agent").unwrap();
    let extra = dir.path().join("extra.conf");
    std::fs::write(&extra, b"key=value\n").unwrap();

    let out = dir.path().join("out");
    let spec = RamdiskSpec {
        kernel: kernel.clone(),
        modules_dir: modules_dir.clone(),
        modules: ["virtio_net", "crc32c", "af_packet", "nls_iso8859_1"].map(String::from).to_vec(),
        agent,
        extra: vec![(extra, "/etc/ferric/extra.conf".into())],
        output_dir: out.clone(),
    };
    let report = build_ramdisk(&spec).unwrap();
    assert_eq!(report.kernel_version, version);
    assert_eq!(
        report.modules,
        [
            "failover",
            "net_failover",
            "virtio_ring",
            "virtio",
            "virtio_net",
            "crc32c_intel",
            "crc32c_generic",
            "nls_iso8859_1"
        ]
    );
    assert_eq!(report.builtin, ["af_packet"]);
    // crc32c_intel has a CPU feature alias: it loads when the CPU has it.
    assert_eq!(report.always, ["crc32c_generic", "nls_iso8859_1"]);
    assert_eq!(
        std::fs::read(out.join("ferric-deploy.kernel")).unwrap(),
        std::fs::read(&kernel).unwrap()
    );
    assert_eq!(
        report.initramfs_bytes,
        std::fs::metadata(out.join("ferric-deploy.initramfs")).unwrap().len()
    );

    let root = dir.path().join("extracted");
    std::fs::create_dir_all(&root).unwrap();
    let archive = common::gunzip(&out.join("ferric-deploy.initramfs"));
    common::cpio(&root, &["-idm", "--quiet", "--no-absolute-filenames"], &archive);
    let mods = root.join("lib/modules").join(version);
    let load_order = std::fs::read_to_string(mods.join("load-order")).unwrap();
    assert_eq!(
        load_order,
        "kernel/net/core/failover.ko\nkernel/drivers/net/net_failover.ko\nkernel/drivers/virtio/virtio_ring.ko\n\
         kernel/drivers/virtio/virtio.ko\nkernel/drivers/net/virtio_net.ko\nkernel/arch/x86/crypto/crc32c-intel.ko\n\
         kernel/crypto/crc32c_generic.ko\nkernel/fs/nls/nls_iso8859-1.ko\n"
    );
    for path in load_order.lines() {
        let name = ferric_imagetools::kmod::module_name(path);
        assert_eq!(
            std::fs::read(mods.join(path)).unwrap(),
            fake_module(&name),
            "{path} decompressed"
        );
    }
    let dep = std::fs::read_to_string(mods.join("modules.dep")).unwrap();
    assert!(dep.contains(
        "kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n"
    ));
    assert!(dep.contains("kernel/crypto/crc32c_generic.ko:\n"), "{dep}");
    assert!(!dep.contains("virtio_pci"), "only included modules: {dep}");
    assert!(!mods.join("kernel/drivers/virtio/virtio_pci.ko").exists());
    assert_eq!(
        std::fs::read_to_string(mods.join("modules.alias")).unwrap(),
        "alias virtio:d00000001v* virtio_net\n\
         alias cpu:type:x86,ven*fam*mod*:feature:*0094* crc32c_intel\n",
        "device patterns of included modules only"
    );
    assert_eq!(
        std::fs::read_to_string(mods.join("always")).unwrap(),
        "crc32c_generic\nnls_iso8859_1\n"
    );
    assert_eq!(std::fs::read(root.join("init")).unwrap(), b"\x7fELF agent");
    assert_eq!(std::fs::read(root.join("etc/ferric/extra.conf")).unwrap(), b"key=value\n");
    for dir in ["proc", "sys", "dev", "tmp", "run", "mnt", "etc"] {
        assert!(root.join(dir).is_dir(), "{dir}");
    }

    // A dynamically linked agent (this test binary) cannot run as /init.
    let dynamic = RamdiskSpec { agent: std::env::current_exe().unwrap(), ..spec.clone() };
    let error = build_ramdisk(&dynamic).unwrap_err().to_string();
    assert!(error.contains("dynamically linked (interpreter /"), "{error}");

    // An unknown module fails with its name and leaves no output behind.
    let out2 = dir.path().join("out2");
    let bad = RamdiskSpec {
        modules: vec!["virtio_net".into(), "bogus_nic".into()],
        output_dir: out2.clone(),
        ..spec
    };
    match build_ramdisk(&bad) {
        Err(BuildError::UnknownModule(name)) => assert_eq!(name, "bogus_nic"),
        other => panic!("{other:?}"),
    }
    assert!(!out2.join("ferric-deploy.initramfs").exists());
}

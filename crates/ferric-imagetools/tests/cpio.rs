//! The cpio writer against GNU cpio and gzip: archives list and extract
//! (`cpio -idm`) to exactly the tree that was written. Without the tools
//! the tests print why they skip, unless `CI=true`.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use ferric_imagetools::cpio::{CpioWriter, Tree};

fn tools() -> bool {
    common::require(common::which("cpio").is_some(), "cpio")
        && common::require(common::which("gzip").is_some(), "gzip")
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8).collect()
}

/// A tree with files of awkward sizes, modes, symlinks and nested dirs.
fn sample_tree(dir: &Path) -> Tree {
    let mut tree = Tree::new();
    tree.directory("etc", 0o755).unwrap();
    tree.directory("tmp", 0o1777).unwrap();
    tree.file_bytes("init", 0o755, b"#!/bin/sh\necho hi\n".to_vec()).unwrap();
    for (index, len) in [0usize, 1, 2, 3, 4, 5, 511, 512, 513, 4095, 100_003].iter().enumerate() {
        tree.file_bytes(&format!("data/size-{len}"), 0o640, pattern(*len, index as u8)).unwrap();
    }
    tree.file_bytes("/deep/a/b/c/d/e.txt", 0o600, b"deep".to_vec()).unwrap();
    // Names whose lengths exercise every header padding.
    for name in ["x", "xy", "xyz", "wxyz", "vwxyz"] {
        tree.file_bytes(&format!("pad/{name}"), 0o644, name.as_bytes().to_vec()).unwrap();
    }
    tree.symlink("bin/sh", "busybox").unwrap();
    tree.symlink("lib64", "/lib").unwrap();
    let host = dir.join("host.bin");
    std::fs::write(&host, pattern(70_000, 9)).unwrap();
    tree.file_path("from-host.bin", 0o755, &host).unwrap();
    tree
}

fn run(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Extracts `archive` with `cpio -idm` (through `gzip -dc` when gzipped).
fn extract(archive: &Path, into: &Path, gzipped: bool) {
    std::fs::create_dir_all(into).unwrap();
    let bytes = if gzipped { common::gunzip(archive) } else { std::fs::read(archive).unwrap() };
    common::cpio(into, &["-idm", "--quiet", "--no-absolute-filenames"], &bytes);
}

fn check_extracted(tree: &Tree, root: &Path) {
    use ferric_imagetools::cpio::{Content, Entry};
    for (name, entry) in tree.entries() {
        let path = root.join(name);
        let meta = std::fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        match entry {
            Entry::Directory { mode } => {
                assert!(meta.is_dir(), "{name}");
                assert_eq!(meta.permissions().mode() & 0o7777, *mode, "{name}");
            }
            Entry::File { mode, content } => {
                let expected = match content {
                    Content::Bytes(bytes) => bytes.clone(),
                    Content::Path(source) => std::fs::read(source).unwrap(),
                };
                assert_eq!(std::fs::read(&path).unwrap(), expected, "{name}");
                assert_eq!(meta.permissions().mode() & 0o7777, *mode, "{name}");
            }
            Entry::Symlink { target } => {
                assert_eq!(std::fs::read_link(&path).unwrap().to_str().unwrap(), target);
            }
            Entry::Special { .. } => {}
        }
        // (Directories get their mtime bumped as their children are extracted.)
        if meta.is_file() {
            assert_eq!(meta.mtime(), 1_700_000_000, "{name}: -m keeps our mtime");
        }
    }
}

#[test]
fn round_trip_through_gnu_cpio() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = sample_tree(dir.path());
    let archive = dir.path().join("plain.cpio");
    let file = std::fs::File::create(&archive).unwrap();
    tree.write_cpio(file, 1_700_000_000).unwrap();
    extract(&archive, &dir.path().join("out"), false);
    check_extracted(&tree, &dir.path().join("out"));
    // Nothing else was extracted.
    let listing = common::cpio(dir.path(), &["-it", "--quiet"], &std::fs::read(&archive).unwrap());
    let names: Vec<&str> = listing.lines().collect();
    let expected: Vec<&str> = tree.entries().map(|(name, _)| name).collect();
    assert_eq!(names, expected);
}

#[test]
fn gzip_round_trip_and_device_nodes() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut tree = sample_tree(dir.path());
    tree.char_device("dev/console", 0o600, 5, 1).unwrap();
    tree.char_device("dev/null", 0o666, 1, 3).unwrap();
    let archive = dir.path().join("tree.cpio.gz");
    tree.write_cpio_gz(std::fs::File::create(&archive).unwrap(), 1_700_000_000).unwrap();
    run(Command::new("gzip").arg("-t").arg(&archive));

    // The listing shows the device nodes with their numbers, owned by root.
    let verbose = common::cpio(
        dir.path(),
        &["-itv", "--quiet", "--numeric-uid-gid"],
        &common::gunzip(&archive),
    );
    let console = verbose.lines().find(|line| line.ends_with(" dev/console")).unwrap();
    assert!(console.starts_with("crw-------"), "{console}");
    assert!(
        console.contains(" 0 ") && console.contains("5,") && console.contains(" 1 "),
        "{console}"
    );
    let null = verbose.lines().find(|line| line.ends_with(" dev/null")).unwrap();
    assert!(null.starts_with("crw-rw-rw-") && null.contains("1,"), "{null}");
    let tmp = verbose.lines().find(|line| line.ends_with(" tmp")).unwrap();
    assert!(tmp.starts_with("drwxrwxrwt"), "{tmp}");

    // Extraction (device nodes need root to be created; drop them otherwise).
    let out = dir.path().join("out");
    extract(&archive, &out, true);
    check_extracted(&tree, &out);
    if std::fs::symlink_metadata(out.join("dev/console")).is_ok() {
        use std::os::unix::fs::FileTypeExt;
        let meta = std::fs::symlink_metadata(out.join("dev/console")).unwrap();
        assert!(meta.file_type().is_char_device());
        assert_eq!(meta.rdev(), (5 << 8) | 1);
    }
}

#[test]
fn writer_rejects_short_readers() {
    let mut writer = CpioWriter::new(Vec::new(), 0);
    let error = writer.file_from_reader("f", 0o644, 10, &mut &b"short"[..]).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
}

#[test]
fn host_directories_and_tarballs() {
    if !tools() || !common::require(common::which("tar").is_some(), "tar") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::write(root.join("init"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(root.join("init"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(root.join("bin/tool"), pattern(3000, 1)).unwrap();
    std::os::unix::fs::symlink("tool", root.join("bin/alias")).unwrap();

    let mut from_dir = Tree::new();
    from_dir.add_host_path(&root, "").unwrap();
    let names: Vec<&str> = from_dir.entries().map(|(name, _)| name).collect();
    assert_eq!(names, ["bin", "bin/alias", "bin/tool", "init"]);

    for (gzip, suffix) in [(false, "tar"), (true, "tar.gz")] {
        let tarball = dir.path().join(format!("root.{suffix}"));
        let mut command = Command::new("tar");
        command.args(["--create", "--file"]).arg(&tarball).arg("-C").arg(&root).arg(".");
        if gzip {
            command.arg("--gzip");
        }
        run(&mut command);
        let mut from_tar = Tree::new();
        from_tar.add_tar(&tarball).unwrap();
        let names: Vec<&str> = from_tar.entries().map(|(name, _)| name).collect();
        assert_eq!(names, ["bin", "bin/alias", "bin/tool", "init"], "{suffix}");
        let archive = dir.path().join(format!("{suffix}.cpio"));
        from_tar.write_cpio(std::fs::File::create(&archive).unwrap(), 1_700_000_000).unwrap();
        let out = dir.path().join(format!("out-{suffix}"));
        extract(&archive, &out, false);
        assert_eq!(std::fs::read(out.join("bin/tool")).unwrap(), pattern(3000, 1));
        assert_eq!(std::fs::read_link(out.join("bin/alias")).unwrap(), Path::new("tool"));
        assert_eq!(
            std::fs::metadata(out.join("init")).unwrap().permissions().mode() & 0o777,
            0o755
        );
    }
}

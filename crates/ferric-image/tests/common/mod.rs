//! Helpers shared by the integration tests.

#![allow(dead_code)]

pub mod server;

use std::path::{Path, PathBuf};
use std::process::Command;

use rand::{RngCore, SeedableRng};

pub const MIB: usize = 1 << 20;

/// A disk image of `size` bytes: random data with zero regions (whole
/// MiBs and odd partial ranges), so qcow2 images get unallocated clusters.
pub fn disk_image(size: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut data = vec![0u8; size];
    rng.fill_bytes(&mut data);
    for (index, block) in data.chunks_mut(MIB).enumerate() {
        if index % 3 == 1 {
            block.fill(0);
        } else if index % 3 == 2 {
            let len = block.len();
            block[len / 4..len / 2 + 12345.min(len / 2)].fill(0);
        }
    }
    data
}

/// A sparse file of `size` zero bytes.
pub fn sparse_target(dir: &Path, name: &str, size: u64) -> PathBuf {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(size).unwrap();
    path
}

/// Checks the target holds `image` followed by zeroes, and kept its size.
pub fn assert_target_holds(target: &Path, image: &[u8], size: u64) {
    let written = std::fs::read(target).unwrap();
    assert_eq!(written.len() as u64, size, "the target's size changed");
    assert!(written[..image.len()] == *image, "the target's content differs from the image");
    assert!(written[image.len()..].iter().all(|&b| b == 0), "bytes past the image are not zero");
}

/// `qemu-img`, or None (printing why) when it is missing outside CI.
pub fn qemu_img() -> Option<&'static str> {
    let found =
        Command::new("qemu-img").arg("--version").output().is_ok_and(|o| o.status.success());
    if found {
        return Some("qemu-img");
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("qemu-img is required under CI=true (install qemu-utils)");
    }
    eprintln!("skipping: qemu-img is not installed (apt-get install qemu-utils)");
    None
}

/// Converts a raw file to qcow2 with `qemu-img convert` and extra arguments.
pub fn to_qcow2(qemu_img: &str, raw: &Path, qcow2: &Path, extra: &[&str]) {
    let status = Command::new(qemu_img)
        .args(["convert", "-q", "-f", "raw", "-O", "qcow2"])
        .args(extra)
        .arg(raw)
        .arg(qcow2)
        .status()
        .unwrap();
    assert!(status.success(), "qemu-img convert {extra:?} failed");
}

pub fn sha256(data: &[u8]) -> ferric_image::Checksum {
    let mut hasher = ferric_image::Hasher::new(ferric_image::ChecksumAlgorithm::Sha256);
    hasher.update(data);
    hasher.finish()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

pub fn xz(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut writer =
        lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(1)).unwrap();
    writer.write_all(data).unwrap();
    writer.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

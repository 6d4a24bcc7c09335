//! `write_image` end to end: every format from a local HTTP server and
//! from files, onto sparse target files, with faults injected.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::server::{Faults, TestServer};
use common::*;
use ferric_image::{
    write_image, Checksum, ImageError, ImageFormat, ImageSource, Progress, WriteOptions,
};

const IMAGE_SIZE: usize = 5 * MIB + 4096;
const TARGET_SIZE: u64 = 8 * MIB as u64;

fn options() -> WriteOptions {
    WriteOptions { retries: 3, ..WriteOptions::default() }
}

fn source(url: &str, checksum: Option<Checksum>) -> ImageSource {
    ImageSource { url: url.to_owned(), checksum, format: None }
}

async fn write(
    source: &ImageSource,
    target: &Path,
    options: &WriteOptions,
) -> Result<ferric_image::WriteReport, ImageError> {
    write_image(source, target, options, &Progress::default()).await
}

#[tokio::test]
async fn raw_over_http_with_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let image = disk_image(IMAGE_SIZE, 1);
    let server = TestServer::start().await;
    let url = server.add("disk.raw", image.clone());
    let target = sparse_target(dir.path(), "target", TARGET_SIZE);
    let progress = Progress::default();
    let checksum = sha256(&image);
    let report = write_image(&source(&url, Some(checksum.clone())), &target, &options(), &progress)
        .await
        .unwrap();
    assert_eq!(report.format, ImageFormat::Raw);
    assert_eq!(report.bytes_downloaded, IMAGE_SIZE as u64);
    assert_eq!(report.bytes_written, IMAGE_SIZE as u64);
    assert_eq!(report.checksum, Some(checksum));
    assert_eq!(progress.written(), IMAGE_SIZE as u64);
    assert_eq!(progress.total(), Some(IMAGE_SIZE as u64));
    assert_target_holds(&target, &image, TARGET_SIZE);
}

#[tokio::test]
async fn compressed_streams_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let image = disk_image(IMAGE_SIZE, 2);
    let server = TestServer::start().await;
    for (name, format, data) in [
        ("disk.gz", ImageFormat::Gzip, gzip(&image)),
        ("disk.xz", ImageFormat::Xz, xz(&image)),
        ("disk.zst", ImageFormat::Zstd, zstd(&image)),
    ] {
        let url = server.add(name, data.clone());
        let target = sparse_target(dir.path(), name, TARGET_SIZE);
        let report = write(&source(&url, None), &target, &options()).await.unwrap();
        assert_eq!(report.format, format, "{name}");
        assert_eq!(report.bytes_downloaded, data.len() as u64, "{name}");
        // Without a given checksum, the sha256 of the file as downloaded.
        assert_eq!(report.checksum, Some(sha256(&data)), "{name}");
        assert_target_holds(&target, &image, TARGET_SIZE);
    }
}

#[tokio::test]
async fn zeroed_target_skips_zero_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let image = disk_image(IMAGE_SIZE, 3);
    let server = TestServer::start().await;
    let url = server.add("disk.zst", zstd(&image));
    let target = sparse_target(dir.path(), "target", TARGET_SIZE);
    let options = WriteOptions { target_zeroed: true, chunk: MIB, ..options() };
    let report = write(&source(&url, None), &target, &options).await.unwrap();
    assert!(report.bytes_written < IMAGE_SIZE as u64, "zero MiBs were written");
    assert_target_holds(&target, &image, TARGET_SIZE);
}

#[tokio::test]
async fn qcow2_variants_over_http_and_from_files() {
    let Some(qemu_img) = qemu_img() else { return };
    let dir = tempfile::tempdir().unwrap();
    let image = disk_image(IMAGE_SIZE, 4);
    let raw = dir.path().join("disk.raw");
    std::fs::write(&raw, &image).unwrap();
    let server = TestServer::start().await;
    let variants: [(&str, &[&str]); 4] = [
        ("plain.qcow2", &[]),
        ("small-clusters.qcow2", &["-o", "cluster_size=4096"]),
        ("deflate.qcow2", &["-c"]),
        ("zstd.qcow2", &["-c", "-o", "compression_type=zstd"]),
    ];
    for (name, args) in variants {
        let qcow2 = dir.path().join(name);
        to_qcow2(qemu_img, &raw, &qcow2, args);
        let data = std::fs::read(&qcow2).unwrap();
        let url = server.add(name, data.clone());
        let file_url = format!("file://{}", qcow2.display());
        let cases = [
            ("http, by ranges", source(&url, None), false),
            ("http, by ranges, zeroed target", source(&url, None), true),
            ("http, staged for the checksum", source(&url, Some(sha256(&data))), false),
            ("file", source(&file_url, None), false),
            ("file, checksum", source(qcow2.to_str().unwrap(), Some(sha256(&data))), true),
        ];
        for (case, source, target_zeroed) in cases {
            let target = sparse_target(dir.path(), "target", TARGET_SIZE);
            let options = WriteOptions { target_zeroed, ..options() };
            let progress = Progress::default();
            let report = write_image(&source, &target, &options, &progress)
                .await
                .unwrap_or_else(|e| panic!("{name}, {case}: {e}"));
            assert_eq!(report.format, ImageFormat::Qcow2, "{name}, {case}");
            assert_eq!(report.checksum, source.checksum, "{name}, {case}");
            assert_eq!(progress.total(), Some(IMAGE_SIZE as u64));
            assert_eq!(progress.written(), IMAGE_SIZE as u64);
            if target_zeroed {
                assert!(report.bytes_written < IMAGE_SIZE as u64, "{name}, {case}");
            } else {
                assert_eq!(report.bytes_written, IMAGE_SIZE as u64, "{name}, {case}");
            }
            assert_target_holds(&target, &image, TARGET_SIZE);
        }
    }
}

#[tokio::test]
async fn qcow2_over_http_reads_ranges_and_survives_cuts() {
    let Some(qemu_img) = qemu_img() else { return };
    let dir = tempfile::tempdir().unwrap();
    let image = disk_image(IMAGE_SIZE, 5);
    let raw = dir.path().join("disk.raw");
    std::fs::write(&raw, &image).unwrap();
    let qcow2 = dir.path().join("disk.qcow2");
    to_qcow2(qemu_img, &raw, &qcow2, &["-c"]);
    let server = TestServer::start().await;
    let url = server.add("disk.qcow2", std::fs::read(&qcow2).unwrap());
    // The first two answers are cut short: the range reads are retried.
    server.set_faults(Faults { cut_after: Some(10), cuts: 2, ..Faults::default() });
    let target = sparse_target(dir.path(), "target", TARGET_SIZE);
    write(&source(&url, None), &target, &options()).await.unwrap();
    assert_target_holds(&target, &image, TARGET_SIZE);
    assert!(server.range_requests() >= 4, "{} range requests", server.range_requests());
}

#[tokio::test]
async fn checksum_mismatch_wipes_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let image = disk_image(IMAGE_SIZE, 6);
    let server = TestServer::start().await;
    let url = server.add("disk.gz", gzip(&image));
    let target = sparse_target(dir.path(), "target", TARGET_SIZE);
    let wrong = sha256(b"something else");
    let err = write(&source(&url, Some(wrong.clone())), &target, &options()).await.unwrap_err();
    match &err {
        ImageError::ChecksumMismatch { expected, actual } => {
            assert_eq!(*expected, wrong.to_string());
            assert_eq!(*actual, sha256(&gzip(&image)).to_string());
        }
        other => panic!("expected a checksum mismatch, got {other}"),
    }
    assert!(err.to_string().contains(&wrong.hex), "{err}");
    let written = std::fs::read(&target).unwrap();
    assert_eq!(written.len() as u64, TARGET_SIZE);
    assert!(written[..MIB].iter().all(|&b| b == 0), "the first MiB was not wiped");
    assert!(written[written.len() - MIB..].iter().all(|&b| b == 0), "the last MiB was not wiped");
}

#[tokio::test]
async fn qcow2_checksum_mismatch_writes_nothing() {
    let Some(qemu_img) = qemu_img() else { return };
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("disk.raw");
    std::fs::write(&raw, disk_image(2 * MIB, 7)).unwrap();
    let qcow2 = dir.path().join("disk.qcow2");
    to_qcow2(qemu_img, &raw, &qcow2, &[]);
    let server = TestServer::start().await;
    let url = server.add("disk.qcow2", std::fs::read(&qcow2).unwrap());
    let scratch = tempfile::tempdir().unwrap();
    let target = sparse_target(dir.path(), "target", TARGET_SIZE);
    let options = WriteOptions { scratch: Some(scratch.path().to_owned()), ..options() };
    let err = write(&source(&url, Some(sha256(b"nope"))), &target, &options).await.unwrap_err();
    assert!(matches!(err, ImageError::ChecksumMismatch { .. }), "{err}");
    assert!(std::fs::read(&target).unwrap().iter().all(|&b| b == 0));
    // The staged copy is gone.
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn truncated_download_without_content_length() {
    let dir = tempfile::tempdir().unwrap();
    let image = disk_image(IMAGE_SIZE, 8);
    let server = TestServer::start().await;
    let gz = gzip(&image);
    let gz_url = server.add("disk.gz", gz.clone());
    let raw_url = server.add("disk.raw", image.clone());
    server.set_faults(Faults {
        no_content_length: true,
        cut_after: Some(MIB as u64),
        cuts: u32::MAX,
        ..Faults::default()
    });
    // The decoder notices the missing end.
    let target = sparse_target(dir.path(), "gz", TARGET_SIZE);
    let err = write(&source(&gz_url, None), &target, &options()).await.unwrap_err();
    assert!(matches!(err, ImageError::Decompress { format: ImageFormat::Gzip, .. }), "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");
    // For a raw image only the checksum can.
    let target = sparse_target(dir.path(), "raw", TARGET_SIZE);
    let err =
        write(&source(&raw_url, Some(sha256(&image))), &target, &options()).await.unwrap_err();
    assert!(matches!(err, ImageError::ChecksumMismatch { .. }), "{err}");
}

#[tokio::test]
async fn dropped_connections_resume_with_range() {
    let dir = tempfile::tempdir().unwrap();
    let image = disk_image(IMAGE_SIZE, 9);
    let server = TestServer::start().await;
    for (name, data) in [("disk.raw", image.clone()), ("disk.xz", xz(&image))] {
        let url = server.add(name, data.clone());
        // Two cuts: the first answer and the first resumption.
        server.set_faults(Faults { cut_after: Some(MIB as u64 / 2), cuts: 2, ..Faults::default() });
        let before = server.range_requests();
        let target = sparse_target(dir.path(), name, TARGET_SIZE);
        let report = write(&source(&url, Some(sha256(&data))), &target, &options()).await.unwrap();
        assert_eq!(report.bytes_downloaded, data.len() as u64);
        assert_eq!(server.range_requests() - before, 2, "{name}");
        assert_target_holds(&target, &image, TARGET_SIZE);
    }
}

#[tokio::test]
async fn gives_up_after_the_retries() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start().await;
    let url = server.add("disk.raw", disk_image(2 * MIB, 10));
    server.set_faults(Faults { cut_after: Some(1000), cuts: u32::MAX, ..Faults::default() });
    let target = sparse_target(dir.path(), "target", TARGET_SIZE);
    let options = WriteOptions { retries: 2, ..options() };
    let err = write(&source(&url, None), &target, &options).await.unwrap_err();
    assert!(matches!(err, ImageError::Download { .. }), "{err}");
    assert!(err.to_string().contains("gave up after 2 reconnects"), "{err}");
    assert!(err.to_string().contains(&url), "{err}");
}

#[tokio::test]
async fn server_refusing_ranges_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start().await;
    let url = server.add("disk.raw", disk_image(2 * MIB, 11));
    server.set_faults(Faults {
        refuse_ranges: true,
        cut_after: Some(1000),
        cuts: 1,
        ..Faults::default()
    });
    let target = sparse_target(dir.path(), "target", TARGET_SIZE);
    let err = write(&source(&url, None), &target, &options()).await.unwrap_err();
    assert!(matches!(err, ImageError::Download { .. }), "{err}");
    assert!(err.to_string().contains("cannot resume"), "{err}");
}

#[tokio::test]
async fn qcow2_over_http_needs_ranges_without_a_checksum() {
    let Some(qemu_img) = qemu_img() else { return };
    let dir = tempfile::tempdir().unwrap();
    let image = disk_image(2 * MIB, 12);
    let raw = dir.path().join("disk.raw");
    std::fs::write(&raw, &image).unwrap();
    let qcow2 = dir.path().join("disk.qcow2");
    to_qcow2(qemu_img, &raw, &qcow2, &[]);
    let data = std::fs::read(&qcow2).unwrap();
    let server = TestServer::start().await;
    let url = server.add("disk.qcow2", data.clone());
    server.set_faults(Faults { refuse_ranges: true, ..Faults::default() });
    let target = sparse_target(dir.path(), "target", TARGET_SIZE);
    let err = write(&source(&url, None), &target, &options()).await.unwrap_err();
    assert!(err.to_string().contains("does not support Range"), "{err}");
    // With a checksum it is staged, which needs no ranges.
    write(&source(&url, Some(sha256(&data))), &target, &options()).await.unwrap();
    assert_target_holds(&target, &image, TARGET_SIZE);
}

#[tokio::test]
async fn images_larger_than_the_target_are_refused() {
    let Some(qemu_img) = qemu_img() else { return };
    let dir = tempfile::tempdir().unwrap();
    let image = disk_image(3 * MIB, 13);
    let raw = dir.path().join("disk.raw");
    std::fs::write(&raw, &image).unwrap();
    let qcow2 = dir.path().join("disk.qcow2");
    to_qcow2(qemu_img, &raw, &qcow2, &[]);
    let server = TestServer::start().await;
    let small = 2 * MIB as u64;
    for (name, data) in [
        ("disk.raw", image.clone()),
        ("disk.zst", zstd(&image)),
        ("disk.qcow2", std::fs::read(&qcow2).unwrap()),
    ] {
        let url = server.add(name, data);
        let target = sparse_target(dir.path(), name, small);
        let err = write(&source(&url, None), &target, &options()).await.unwrap_err();
        match err {
            ImageError::TooLarge { needed, available, .. } => {
                assert!(needed > small, "{name}: needed {needed}");
                assert_eq!(available, small);
            }
            other => panic!("{name}: expected TooLarge, got {other}"),
        }
        assert_eq!(std::fs::metadata(&target).unwrap().len(), small, "{name} grew the target");
    }
    // Exactly the target's size fits.
    let url = server.add("exact.raw", image[..2 * MIB].to_vec());
    let target = sparse_target(dir.path(), "exact", small);
    write(&source(&url, None), &target, &options()).await.unwrap();
    assert_target_holds(&target, &image[..2 * MIB], small);
}

#[tokio::test]
async fn foreign_and_nested_formats_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start().await;
    let mut vmdk = b"KDMV\x01\0\0\0".to_vec();
    vmdk.resize(64 << 10, 0);
    let url = server.add("disk.vmdk", vmdk);
    let target = sparse_target(dir.path(), "target", TARGET_SIZE);
    let err = write(&source(&url, None), &target, &options()).await.unwrap_err();
    assert!(matches!(err, ImageError::UnsupportedFormat(_)), "{err}");
    assert!(err.to_string().contains("VMDK"), "{err}");

    if let Some(qemu_img) = qemu_img() {
        // A qcow2 inside gzip.
        let raw = dir.path().join("disk.raw");
        std::fs::write(&raw, disk_image(MIB, 14)).unwrap();
        let qcow2 = dir.path().join("disk.qcow2");
        to_qcow2(qemu_img, &raw, &qcow2, &[]);
        let url = server.add("disk.qcow2.gz", gzip(&std::fs::read(&qcow2).unwrap()));
        let err = write(&source(&url, None), &target, &options()).await.unwrap_err();
        assert!(err.to_string().contains("contains a qcow2 image"), "{err}");
        // A qcow2 with a backing file.
        let overlay = dir.path().join("overlay.qcow2");
        let status = std::process::Command::new(qemu_img)
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(&qcow2)
            .arg(&overlay)
            .status()
            .unwrap();
        assert!(status.success());
        let err =
            write(&source(overlay.to_str().unwrap(), None), &target, &options()).await.unwrap_err();
        assert!(matches!(err, ImageError::UnsupportedFormat(_)), "{err}");
        assert!(err.to_string().contains("backing file"), "{err}");
    }
    assert!(std::fs::read(&target).unwrap().iter().all(|&b| b == 0));
}

#[tokio::test]
async fn file_sources() {
    let dir = tempfile::tempdir().unwrap();
    let image = disk_image(IMAGE_SIZE, 15);
    let raw = dir.path().join("disk image.raw");
    std::fs::write(&raw, &image).unwrap();
    let zst = dir.path().join("disk.zst");
    std::fs::write(&zst, zstd(&image)).unwrap();
    let file_url = format!("file://{}", raw.display()).replace(' ', "%20");
    for url in [file_url.as_str(), raw.to_str().unwrap(), zst.to_str().unwrap()] {
        let target = sparse_target(dir.path(), "target", TARGET_SIZE);
        let report = write(&source(url, None), &target, &options()).await.unwrap();
        assert!(report.checksum.is_some());
        assert_target_holds(&target, &image, TARGET_SIZE);
    }
    let err = write(&source("/nonexistent/disk.raw", None), &dir.path().join("target"), &options())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/disk.raw"), "{err}");
}

#[tokio::test]
async fn explicit_format_and_http_errors() {
    let dir = tempfile::tempdir().unwrap();
    let image = disk_image(MIB, 16);
    let server = TestServer::start().await;
    let url = server.add("disk.gz", gzip(&image));
    let target = sparse_target(dir.path(), "target", TARGET_SIZE);
    // Told raw, a gzip file is written as it is.
    let mut given = source(&url, None);
    given.format = Some(ImageFormat::Raw);
    let report = write(&given, &target, &options()).await.unwrap();
    assert_eq!(report.format, ImageFormat::Raw);
    // Told gzip, a raw file fails to decode.
    let raw_url = server.add("disk.raw", image);
    given = source(&raw_url, None);
    given.format = Some(ImageFormat::Gzip);
    let err = write(&given, &target, &options()).await.unwrap_err();
    assert!(matches!(err, ImageError::Decompress { .. }), "{err}");
    // A missing file.
    let missing = format!("{}-missing", raw_url);
    let err = write(&source(&missing, None), &target, &options()).await.unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
}

//! Times `write_image` against the usual tools on the same data, served
//! over HTTP on 127.0.0.1 by a separate process (this example re-run as
//! `write_bench serve DIR`: a thread per connection, `Range` support, the
//! body sent by `std::io::copy`, i.e. sendfile), so that the server costs
//! ferric-image and curl the same and does not share ferric's runtime:
//! (a) a raw image vs `curl -s URL | dd of=FILE bs=4M conv=notrunc`, with
//!     and without fsync, and with a sha256 of the download on the side
//!     (`curl | tee >(sha256sum) | dd`), as ferric-image always hashes;
//! (b) the same content as gzip and zstd when `--compressed` is given;
//! (c) the same content as qcow2 (by HTTP ranges and from the file) vs
//!     `qemu-img convert -O raw`.
//! Prints MiB/s (of the image); asserts nothing. Files live under /var/tmp
//! and are removed.
//!
//! `cargo run --release -p ferric-image --example write_bench [SIZE_MIB] [--compressed] [--only-raw]`

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use ferric_image::{write_image, ImageSource, Progress, WriteOptions};
use rand::{RngCore, SeedableRng};

const MIB: u64 = 1 << 20;

fn report(name: &str, bytes: u64, seconds: f64) {
    println!("{name:<52} {:>8.1} MiB/s  ({seconds:.2} s)", bytes as f64 / MIB as f64 / seconds);
}

fn fresh_target(path: &Path, size: u64) {
    let _ = std::fs::remove_file(path);
    std::fs::File::create(path).unwrap().set_len(size).unwrap();
}

fn shell(command: &str) -> f64 {
    let start = Instant::now();
    let status = Command::new("bash").arg("-c").arg(command).status().unwrap();
    assert!(status.success(), "{command} failed");
    start.elapsed().as_secs_f64()
}

async fn ours(url: &str, target: &Path, size: u64) -> f64 {
    fresh_target(target, size);
    let source = ImageSource::new(url);
    let start = Instant::now();
    write_image(&source, target, &WriteOptions::default(), &Progress::default()).await.unwrap();
    start.elapsed().as_secs_f64()
}

/// `write_bench serve DIR`: serves the files of DIR until stdin closes;
/// prints the port first.
fn serve(dir: PathBuf) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    println!("{}", listener.local_addr().unwrap().port());
    std::io::stdout().flush().unwrap();
    std::thread::spawn(|| {
        // The parent holds our stdin: exit when it goes away.
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    for stream in listener.incoming().flatten() {
        let dir = dir.clone();
        std::thread::spawn(move || {
            let _ = serve_one(stream, &dir);
        });
    }
}

fn serve_one(mut stream: TcpStream, dir: &Path) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("range") {
                range = Some(value.trim().to_owned());
            }
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let name = parts.next().unwrap_or("/").trim_start_matches('/');
    let Ok(mut file) = std::fs::File::open(dir.join(name)) else {
        stream.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return Ok(());
    };
    let len = file.metadata()?.len();
    let range = range.and_then(|value| {
        let (start, end) = value.strip_prefix("bytes=")?.split_once('-')?;
        let start: u64 = start.parse().ok()?;
        let end: u64 = if end.is_empty() { len.saturating_sub(1) } else { end.parse().ok()? };
        Some((start, end.min(len.saturating_sub(1))))
    });
    let (head, start, body_len) = match range {
        Some((start, _)) if start >= len => {
            let head = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes())?;
            return Ok(());
        }
        Some((start, end)) => (
            format!(
                "HTTP/1.1 206 Partial Content\r\nAccept-Ranges: bytes\r\nContent-Range: bytes {start}-{end}/{len}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                end - start + 1
            ),
            start,
            end - start + 1,
        ),
        None => (
            format!("HTTP/1.1 200 OK\r\nAccept-Ranges: bytes\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"),
            0,
            len,
        ),
    };
    stream.write_all(head.as_bytes())?;
    if method != "HEAD" {
        file.seek(SeekFrom::Start(start))?;
        std::io::copy(&mut (&mut file).take(body_len), &mut stream)?;
    }
    stream.shutdown(std::net::Shutdown::Write)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        serve(PathBuf::from(&args[1]));
        return;
    }
    let size_mib: u64 = args.iter().find_map(|s| s.parse().ok()).unwrap_or(1024);
    let compressed = args.iter().any(|a| a == "--compressed");
    let only_raw = args.iter().any(|a| a == "--only-raw");
    let size = size_mib * MIB;
    let dir =
        tempfile::Builder::new().prefix("ferric-image-bench-").tempdir_in("/var/tmp").unwrap();
    let served = dir.path().join("served");
    std::fs::create_dir(&served).unwrap();
    let raw = served.join("image.raw");
    let target = dir.path().join("target");

    let mut data = vec![0u8; size as usize];
    rand::rngs::StdRng::seed_from_u64(42).fill_bytes(&mut data);
    std::fs::write(&raw, &data).unwrap();
    drop(data);

    let mut server = Command::new(std::env::current_exe().unwrap())
        .arg("serve")
        .arg(&served)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut port = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut port).unwrap();
    let base = format!("http://127.0.0.1:{}", port.trim());
    let url = |name: &str| format!("{base}/{name}");
    let raw_url = url("image.raw");
    println!("image: {size_mib} MiB of random data; targets are files on /var/tmp; server: a separate process");

    let seconds = ours(&raw_url, &target, size).await;
    report("raw, ferric-image over HTTP (sha256, fsync)", size, seconds);
    let t = target.display();
    for (name, pipeline) in [
        ("raw, curl | dd conv=notrunc", format!("curl -s {raw_url} | dd of={t} bs=4M iflag=fullblock conv=notrunc status=none")),
        ("raw, curl | dd conv=notrunc,fsync", format!("curl -s {raw_url} | dd of={t} bs=4M iflag=fullblock conv=notrunc,fsync status=none")),
        ("raw, curl | tee >(sha256sum) | dd notrunc", format!("curl -s {raw_url} | tee >(sha256sum >/dev/null) | dd of={t} bs=4M iflag=fullblock conv=notrunc status=none; wait")),
        ("raw, curl | tee >(sha256sum) | dd notrunc,fsync", format!("curl -s {raw_url} | tee >(sha256sum >/dev/null) | dd of={t} bs=4M iflag=fullblock conv=notrunc,fsync status=none; wait")),
    ] {
        fresh_target(&target, size);
        report(name, size, shell(&pipeline));
    }
    let seconds = ours(&raw_url, &target, size).await;
    report("raw, ferric-image over HTTP (sha256, fsync), again", size, seconds);
    if only_raw {
        return;
    }

    if compressed {
        for (name, tool) in [("gz", "gzip -1 -c"), ("zst", "zstd -q -1 -c")] {
            let file = served.join(format!("image.{name}"));
            let status = Command::new("bash")
                .arg("-c")
                .arg(format!("{tool} {} > {}", raw.display(), file.display()))
                .status();
            if !matches!(status, Ok(status) if status.success()) {
                println!("{name}: skipped, `{tool}` failed");
                continue;
            }
            let seconds = ours(&url(&format!("image.{name}")), &target, size).await;
            report(&format!("{name}, ferric-image over HTTP (sha256, fsync)"), size, seconds);
            let _ = std::fs::remove_file(&file);
        }
    }

    let has_qemu_img = Command::new("qemu-img").arg("--version").output().is_ok();
    if !has_qemu_img {
        println!("qcow2: skipped, qemu-img is not installed");
        return;
    }
    let qcow2 = served.join("image.qcow2");
    let status = Command::new("qemu-img")
        .args(["convert", "-q", "-f", "raw", "-O", "qcow2"])
        .arg(&raw)
        .arg(&qcow2)
        .status()
        .unwrap();
    assert!(status.success());
    let _ = std::fs::remove_file(&raw);
    let seconds = ours(&url("image.qcow2"), &target, size).await;
    report("qcow2, ferric-image over HTTP ranges (fsync)", size, seconds);
    let seconds = ours(qcow2.to_str().unwrap(), &target, size).await;
    report("qcow2, ferric-image from the file (fsync)", size, seconds);
    fresh_target(&target, size);
    let seconds = shell(&format!(
        "qemu-img convert -n -f qcow2 -O raw {} {}",
        qcow2.display(),
        target.display()
    ));
    report("qcow2, qemu-img convert -n -O raw (file)", size, seconds);
    fresh_target(&target, size);
    let seconds = shell(&format!(
        "qemu-img convert -n -f qcow2 -O raw {} {} && sync {}",
        qcow2.display(),
        target.display(),
        target.display()
    ));
    report("qcow2, qemu-img convert -n -O raw + sync", size, seconds);
    drop(server.stdin.take());
    let _ = server.wait();
    drop(dir);
}

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
//! `cargo run --release -p ferric-image --example write_bench [SIZE_MIB] [--runs=N] [--compressed] [--only-raw] [--only-ferric]`

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use ferric_image::{write_image, ImageSource, Progress, WriteOptions};
use rand::{RngCore, SeedableRng};

const MIB: u64 = 1 << 20;

/// One thing to time: ferric-image from a URL, or a shell pipeline.
enum Case {
    Ferric(String),
    Tool(String),
}

/// Times every case `runs` times, interleaved (so that a slow spell of the
/// machine or its disk does not fall on one case only), each after a
/// `sync` (so that writeback of an earlier run is not charged to this
/// one); reports the median and every run's MiB/s.
async fn bench(cases: &[(&str, Case)], target: &Path, size: u64, runs: usize) {
    let mut rates = vec![Vec::new(); cases.len()];
    for _ in 0..runs {
        for ((_, case), rates) in cases.iter().zip(&mut rates) {
            fresh_target(target, size);
            Command::new("sync").status().unwrap();
            let seconds = match case {
                Case::Ferric(url) => ours(url, target).await,
                Case::Tool(pipeline) => shell(pipeline),
            };
            rates.push(size as f64 / MIB as f64 / seconds);
        }
    }
    for ((name, _), mut rates) in cases.iter().zip(rates) {
        let all: Vec<String> = rates.iter().map(|rate| format!("{rate:.0}")).collect();
        rates.sort_by(f64::total_cmp);
        let median = rates[rates.len() / 2];
        println!("{name:<52} {median:>8.1} MiB/s  (median; runs: {})", all.join(" "));
    }
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

async fn ours(url: &str, target: &Path) -> f64 {
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
    run(&args, &base, &served, &target, size).await;
    // The server exits when its stdin closes.
    drop(server.stdin.take());
    let _ = server.wait();
    drop(dir);
}

/// The measurements, against the server at `base` serving `served`.
async fn run(args: &[String], base: &str, served: &Path, target: &Path, size: u64) {
    let size_mib = size / MIB;
    let compressed = args.iter().any(|a| a == "--compressed");
    let only_raw = args.iter().any(|a| a == "--only-raw");
    let runs: usize = args
        .iter()
        .find_map(|a| a.strip_prefix("--runs=").and_then(|n| n.parse().ok()))
        .unwrap_or(3);
    let raw = served.join("image.raw");
    let url = |name: &str| format!("{base}/{name}");
    let raw_url = url("image.raw");
    println!("image: {size_mib} MiB of random data; targets are files on /var/tmp; server: a separate process");

    let t = target.display();
    let dd = format!("dd of={t} bs=4M iflag=fullblock status=none conv=notrunc");
    let mut cases =
        vec![("raw, ferric-image over HTTP (sha256, fsync)", Case::Ferric(raw_url.clone()))];
    if !args.iter().any(|a| a == "--only-ferric") {
        cases.extend([
            ("raw, curl | dd conv=notrunc", Case::Tool(format!("curl -s {raw_url} | {dd}"))),
            (
                "raw, curl | dd conv=notrunc,fsync",
                Case::Tool(format!("curl -s {raw_url} | {dd},fsync")),
            ),
            (
                "raw, curl | tee >(sha256sum) | dd notrunc,fsync",
                Case::Tool(format!(
                    "curl -s {raw_url} | tee >(sha256sum >/dev/null) | {dd},fsync; wait"
                )),
            ),
            (
                "raw, curl | tee >(openssl sha256) | dd notrunc",
                Case::Tool(format!(
                    "curl -s {raw_url} | tee >(openssl dgst -sha256 >/dev/null) | {dd}; wait"
                )),
            ),
            (
                "raw, curl | tee >(openssl sha256) | dd notrunc,fsync",
                Case::Tool(format!(
                    "curl -s {raw_url} | tee >(openssl dgst -sha256 >/dev/null) | {dd},fsync; wait"
                )),
            ),
        ]);
    }
    bench(&cases, target, size, runs).await;
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
            let label = format!("{name}, ferric-image over HTTP (sha256, fsync)");
            bench(&[(&label, Case::Ferric(url(&format!("image.{name}"))))], target, size, runs)
                .await;
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
    let q = qcow2.display();
    let cases = [
        ("qcow2, ferric-image over HTTP ranges (fsync)", Case::Ferric(url("image.qcow2"))),
        ("qcow2, ferric-image from the file (fsync)", Case::Ferric(q.to_string())),
        (
            "qcow2, qemu-img convert -n -O raw (file)",
            Case::Tool(format!("qemu-img convert -n -f qcow2 -O raw {q} {t}")),
        ),
        (
            "qcow2, qemu-img convert -n -O raw + sync",
            Case::Tool(format!("qemu-img convert -n -f qcow2 -O raw {q} {t} && sync {t}")),
        ),
    ];
    bench(&cases, target, size, runs).await;
}

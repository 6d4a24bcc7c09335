//! Real TFTP clients against the ferric server on 127.0.0.1: tftp-hpa's
//! `tftp` and `atftp` (Debian packages `tftp-hpa` and `atftp`). Without the
//! clients each test prints why it is skipped, unless `CI=true`, where a
//! missing client fails the test.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{random_bytes, RunningServer};
use ferric_tftp::ServerConfig;

const THREE_MIB_AND_A_BIT: usize = 3 * 1024 * 1024 + 7;

/// Whether `program` can be run; if not, skips (or fails under CI).
fn require(program: &str) -> bool {
    if Command::new(program)
        .arg("-V")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
    {
        return true;
    }
    let reason = format!("`{program}` is not installed (apt-get install -y tftp-hpa atftp)");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{reason}");
    }
    eprintln!("skipped: {reason}");
    false
}

/// Runs a client to completion, killing it after `limit`.
async fn run(program: &str, args: Vec<String>, limit: Duration) -> Output {
    let program = program.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(&program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > limit {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}

/// `tftp -m MODE 127.0.0.1 PORT -c get REMOTE LOCAL`; tftp-hpa exits 0
/// even on errors, so the caller reads stderr.
async fn tftp_hpa_get(server: &RunningServer, mode: &str, remote: &str, local: &Path) -> Output {
    let args = vec![
        "-m".into(),
        mode.into(),
        "127.0.0.1".into(),
        server.address.port().to_string(),
        "-c".into(),
        "get".into(),
        remote.into(),
        path_text(local),
    ];
    run("tftp", args, Duration::from_secs(120)).await
}

async fn atftp_get(server: &RunningServer, options: &[&str], remote: &str, local: &Path) -> Output {
    let mut args = Vec::new();
    for option in options {
        args.push("--option".to_owned());
        args.push((*option).to_owned());
    }
    args.extend([
        "-g".into(),
        "-r".into(),
        remote.into(),
        "-l".into(),
        path_text(local),
        "127.0.0.1".into(),
        server.address.port().to_string(),
    ]);
    run("atftp", args, Duration::from_secs(120)).await
}

fn test_files() -> Vec<(String, Vec<u8>)> {
    [0, 511, 512, 513, THREE_MIB_AND_A_BIT]
        .into_iter()
        .map(|size| (format!("files/size-{size}.bin"), random_bytes(size, size as u64)))
        .collect()
}

async fn serve(files: &[(String, Vec<u8>)]) -> RunningServer {
    let borrowed: Vec<(&str, &[u8])> =
        files.iter().map(|(name, bytes)| (name.as_str(), bytes.as_slice())).collect();
    RunningServer::start(&borrowed, ServerConfig::default()).await
}

/// What a client printed, on either stream (tftp-hpa reports errors on stdout).
fn messages(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tftp_hpa_fetches_files_byte_for_byte() {
    if !require("tftp") {
        return;
    }
    let files = test_files();
    let server = serve(&files).await;
    let downloads = tempfile::tempdir().unwrap();
    for (name, bytes) in &files {
        let local = downloads.path().join(name.replace('/', "_"));
        let output = tftp_hpa_get(&server, "binary", name, &local).await;
        assert!(messages(&output).trim().is_empty(), "{name}: {}", messages(&output));
        assert!(std::fs::read(&local).unwrap() == *bytes, "{name} differs");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tftp_hpa_netascii_gives_back_the_text() {
    if !require("tftp") {
        return;
    }
    let text = b"#!ipxe\nkernel vmlinuz\r\nbare\rcarriage\n\n".repeat(100);
    let server = RunningServer::start(&[("boot.txt", &text)], ServerConfig::default()).await;
    let downloads = tempfile::tempdir().unwrap();
    let local = downloads.path().join("boot.txt");
    let output = tftp_hpa_get(&server, "netascii", "boot.txt", &local).await;
    assert!(messages(&output).trim().is_empty(), "{}", messages(&output));
    assert_eq!(std::fs::read(&local).unwrap(), text);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tftp_hpa_is_refused_missing_and_escaping_files() {
    if !require("tftp") {
        return;
    }
    let server = RunningServer::start(&[("f", b"x")], ServerConfig::default()).await;
    let downloads = tempfile::tempdir().unwrap();
    let local = downloads.path().join("out");
    for (remote, expected) in [
        ("missing", "Error code 1"),
        ("../etc/passwd", "Error code 2"),
        ("/etc/passwd", "Error code 2"),
    ] {
        let output = tftp_hpa_get(&server, "binary", remote, &local).await;
        assert!(messages(&output).contains(expected), "{remote}: {}", messages(&output));
        assert_eq!(std::fs::read(&local).unwrap_or_default(), b"");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tftp_hpa_follows_the_block_number_roll_over() {
    if !require("tftp") {
        return;
    }
    // More than 65535 blocks of 512 bytes: block numbers wrap to 0.
    let file = random_bytes(65_536 * 512 + 1000, 9);
    let server = RunningServer::start(&[("big", &file)], ServerConfig::default()).await;
    let downloads = tempfile::tempdir().unwrap();
    let local = downloads.path().join("big");
    let output = tftp_hpa_get(&server, "binary", "big", &local).await;
    assert!(messages(&output).trim().is_empty(), "{}", messages(&output));
    assert!(std::fs::read(&local).unwrap() == file, "roll-over broke the file");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atftp_fetches_files_byte_for_byte_with_and_without_options() {
    if !require("atftp") {
        return;
    }
    let files = test_files();
    let server = serve(&files).await;
    let downloads = tempfile::tempdir().unwrap();
    let option_sets: [&[&str]; 4] = [
        &[],
        &["blksize 1468", "tsize 0", "windowsize 16"],
        &["blksize 65464", "windowsize 4"],
        &["blksize 8", "timeout 2"],
    ];
    for options in option_sets {
        for (name, bytes) in &files {
            if options.contains(&"blksize 8") && bytes.len() > 1024 {
                continue;
            }
            let local = downloads.path().join(name.replace('/', "_"));
            let output = atftp_get(&server, options, name, &local).await;
            assert!(output.status.success(), "{name} {options:?}: {}", messages(&output));
            assert!(std::fs::read(&local).unwrap() == *bytes, "{name} {options:?} differs");
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atftp_is_refused_missing_and_escaping_files() {
    if !require("atftp") {
        return;
    }
    let server = RunningServer::start(&[("f", b"x")], ServerConfig::default()).await;
    let downloads = tempfile::tempdir().unwrap();
    let local = downloads.path().join("out");
    for (remote, expected) in [
        ("missing", "File not found"),
        ("../etc/passwd", "Access violation"),
        ("/etc/passwd", "Access violation"),
    ] {
        let output = atftp_get(&server, &["tsize 0"], remote, &local).await;
        assert!(!output.status.success(), "{remote} was served");
        assert!(messages(&output).contains(expected), "{remote}: {}", messages(&output));
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atftp_clients_fetch_in_parallel() {
    if !require("atftp") {
        return;
    }
    let file = random_bytes(THREE_MIB_AND_A_BIT, 11);
    let server = RunningServer::start(&[("kernel", &file)], ServerConfig::default()).await;
    let downloads = tempfile::tempdir().unwrap();
    let fetches = (0..8).map(|index| {
        let local = downloads.path().join(format!("kernel-{index}"));
        let server = &server;
        async move {
            let output =
                atftp_get(server, &["blksize 1468", "windowsize 16"], "kernel", &local).await;
            (output, local)
        }
    });
    for (output, local) in futures::future::join_all(fetches).await {
        assert!(output.status.success(), "{}", messages(&output));
        assert!(std::fs::read(&local).unwrap() == file);
    }
    server.stop().await;
}

//! Throughput of ferric's TFTP server against tftpd-hpa (`in.tftpd`), both
//! on 127.0.0.1, fetching the same random file with the same clients:
//! `atftp` and the small Rust client of the integration tests.
//!
//! ```text
//! cargo run --release -p ferric-tftp --example bench -- [SIZE_MIB] [RUNS]
//! ```
//!
//! tftpd-hpa runs in the foreground on a free loopback port and is stopped
//! at the end (also on panic). Missing programs are reported and skipped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[path = "../tests/common/client.rs"]
mod client;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferric_tftp::{ServerConfig, TftpServer};
use rand::{RngCore, SeedableRng};

const FILE_NAME: &str = "bench.bin";

/// One timed fetch of the benchmark file from a server.
type FetchFrom<'a> = dyn Fn(SocketAddr) -> Duration + 'a;

/// A client configuration to measure.
struct Case {
    label: &'static str,
    options: &'static [(&'static str, &'static str)],
}

const CASES: &[Case] = &[
    Case {
        label: "blksize 1468, windowsize 16",
        options: &[("blksize", "1468"), ("tsize", "0"), ("windowsize", "16")],
    },
    Case { label: "blksize 1468, lock-step", options: &[("blksize", "1468"), ("tsize", "0")] },
];

/// Stops tftpd-hpa however the benchmark ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let size_mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(8);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);

    let root = tempfile::tempdir().unwrap();
    // tftpd-hpa drops privileges to its own user: the tree must be readable.
    set_mode(root.path(), 0o755);
    let mut file = vec![0u8; size_mib * 1024 * 1024];
    rand::rngs::StdRng::seed_from_u64(42).fill_bytes(&mut file);
    let path = root.path().join(FILE_NAME);
    std::fs::write(&path, &file).unwrap();
    set_mode(&path, 0o644);

    // The server runs on its own thread and runtime, as in production:
    // FERRIC_BENCH_WORKERS worker threads (default 2), 0 for a
    // current-thread runtime. Clients use a separate runtime.
    let workers: usize =
        std::env::var("FERRIC_BENCH_WORKERS").ok().and_then(|w| w.parse().ok()).unwrap_or(2);
    let (stop_ferric, ferric_stopped) = tokio::sync::oneshot::channel::<()>();
    let (address_sender, address_receiver) = std::sync::mpsc::channel();
    let served_root = root.path().to_owned();
    let ferric_thread = std::thread::spawn(move || {
        let runtime = if workers == 0 {
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()
                .unwrap()
        };
        runtime.block_on(async move {
            let server = TftpServer::bind(
                "127.0.0.1:0".parse().unwrap(),
                &served_root,
                ServerConfig::default(),
            )
            .await
            .unwrap();
            address_sender.send(server.local_addr()).unwrap();
            server
                .serve(async {
                    let _ = ferric_stopped.await;
                })
                .await
                .unwrap();
        });
    });
    let ferric = address_receiver.recv().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    let tftpd = start_tftpd_hpa(root.path());
    let have_atftp = program_exists("atftp");
    if !have_atftp {
        println!("atftp not installed (apt-get install -y atftp): atftp rows skipped");
    }

    println!(
        "{size_mib} MiB file, best and median of {runs} runs, MB/s (10^6 bytes/s); \
         ferric on {} runtime",
        if workers == 0 { "a current-thread".to_owned() } else { format!("a {workers}-worker") }
    );
    println!("{:<30} {:<8} {:>24} {:>24}", "case", "client", "ferric", "tftpd-hpa");
    for case in CASES {
        let mut rows: Vec<(&str, Box<FetchFrom>)> = vec![(
            "rust",
            Box::new(|server| {
                let started = Instant::now();
                let fetched = runtime
                    .block_on(client::fetch(server, FILE_NAME, case.options))
                    .expect("fetch failed");
                let elapsed = started.elapsed();
                assert!(fetched.data == file, "rust client got different bytes");
                elapsed
            }),
        )];
        if have_atftp {
            rows.push((
                "atftp",
                Box::new(|server| atftp_fetch(server, case.options, root.path(), &file)),
            ));
        }
        for (client_name, fetch) in rows {
            let ferric_speed = measure(runs, file.len(), || fetch(ferric));
            let tftpd_speed =
                tftpd.as_ref().map(|(address, _)| measure(runs, file.len(), || fetch(*address)));
            println!(
                "{:<30} {:<8} {:>24} {:>24}",
                case.label,
                client_name,
                ferric_speed,
                tftpd_speed.unwrap_or_else(|| "not installed".into())
            );
        }
    }
    println!("(tftpd-hpa does not implement windowsize: it answers windowed requests lock-step)");

    drop(tftpd);
    let _ = stop_ferric.send(());
    ferric_thread.join().unwrap();
}

/// Runs `fetch` `runs` times; "best / median" in MB/s.
fn measure(runs: usize, bytes: usize, mut fetch: impl FnMut() -> Duration) -> String {
    let mut speeds: Vec<f64> =
        (0..runs).map(|_| bytes as f64 / fetch().as_secs_f64() / 1e6).collect();
    speeds.sort_by(|a, b| b.total_cmp(a));
    format!("{:.1} / {:.1}", speeds[0], speeds[speeds.len() / 2])
}

fn atftp_fetch(
    server: SocketAddr,
    options: &[(&str, &str)],
    directory: &Path,
    expected: &[u8],
) -> Duration {
    let local = directory.join("atftp-download");
    let mut command = Command::new("atftp");
    for (name, value) in options {
        command.arg("--option").arg(format!("{name} {value}"));
    }
    command
        .args(["-g", "-r", FILE_NAME, "-l"])
        .arg(&local)
        .arg(server.ip().to_string())
        .arg(server.port().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let started = Instant::now();
    let status = command.status().unwrap();
    let elapsed = started.elapsed();
    assert!(status.success(), "atftp failed against {server}");
    assert!(std::fs::read(&local).unwrap() == expected, "atftp got different bytes");
    std::fs::remove_file(&local).unwrap();
    elapsed
}

/// Starts `in.tftpd` in the foreground on a free 127.0.0.1 port.
fn start_tftpd_hpa(root: &Path) -> Option<(SocketAddr, ChildGuard)> {
    if !program_exists("in.tftpd") {
        println!("in.tftpd not installed (apt-get install -y tftpd-hpa): tftpd-hpa column skipped");
        return None;
    }
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    let child = Command::new("in.tftpd")
        .args(["-L", "-a", &address.to_string(), "-s"])
        .arg(root)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let guard = ChildGuard(child);
    // Wait until it answers.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for _ in 0..50 {
        if runtime.block_on(client::fetch(address, FILE_NAME, &[("blksize", "65464")])).is_ok() {
            return Some((address, guard));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("in.tftpd did not start on {address}");
}

fn program_exists(program: &str) -> bool {
    Command::new(program)
        .arg("-V")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

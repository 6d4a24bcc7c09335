//! The socket loop over real UDP on 127.0.0.1: transfer IDs, timeouts,
//! refusals, limits, shutdown and device binding.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::client::{fetch, FetchError};
use common::{random_bytes, RunningServer};
use ferric_tftp::packet::{ErrorCode, Mode, Packet, Request, RequestKind, TftpOption};
use ferric_tftp::{MemorySource, ServerConfig, TftpServer, TransferConfig};
use tokio::net::UdpSocket;

async fn client_socket() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

fn read_request(filename: &str, options: &[(&str, &str)]) -> Vec<u8> {
    Packet::Request(Request {
        kind: RequestKind::Read,
        filename: filename.into(),
        mode: Mode::Octet,
        options: options.iter().map(|(name, value)| TftpOption::new(*name, *value)).collect(),
    })
    .encode()
}

/// The next packet, or `None` after `wait`.
async fn receive_within(socket: &UdpSocket, wait: Duration) -> Option<(Packet, SocketAddr)> {
    let mut buffer = vec![0u8; 65_536];
    let (length, from) =
        tokio::time::timeout(wait, socket.recv_from(&mut buffer)).await.ok()?.unwrap();
    Some((Packet::decode(&buffer[..length]).unwrap(), from))
}

async fn receive(socket: &UdpSocket) -> (Packet, SocketAddr) {
    receive_within(socket, Duration::from_secs(5)).await.expect("no packet from the server")
}

fn error_code(packet: &Packet) -> Option<ErrorCode> {
    match packet {
        Packet::Error { code, .. } => Some(*code),
        _ => None,
    }
}

#[tokio::test]
async fn serves_a_file_from_its_own_transfer_id() {
    let file = random_bytes(70_000, 1);
    let server = RunningServer::start(&[("dir/boot.bin", &file)], ServerConfig::default()).await;
    let fetched = fetch(
        server.address,
        "dir/boot.bin",
        &[("blksize", "1468"), ("tsize", "0"), ("windowsize", "8")],
    )
    .await
    .unwrap();
    assert_eq!(fetched.data, file);
    assert_ne!(fetched.server_tid.port(), server.address.port());
    assert_eq!(fetched.server_tid.ip(), server.address.ip());
    assert_eq!(
        fetched.option_ack,
        vec![
            TftpOption::new("blksize", "1468"),
            TftpOption::new("tsize", "70000"),
            TftpOption::new("windowsize", "8"),
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn block_numbers_roll_over_on_the_wire() {
    let file = random_bytes(8 * 70_000 + 5, 2);
    let server = RunningServer::start(&[("big", &file)], ServerConfig::default()).await;
    let fetched =
        fetch(server.address, "big", &[("blksize", "8"), ("windowsize", "32")]).await.unwrap();
    assert_eq!(fetched.data.len(), file.len());
    assert!(fetched.data == file);
    server.stop().await;
}

#[tokio::test]
async fn a_stranger_gets_unknown_transfer_id_and_the_transfer_goes_on() {
    let file = random_bytes(1000, 3);
    let server = RunningServer::start(&[("f", &file)], ServerConfig::default()).await;
    let client = client_socket().await;
    client.send_to(&read_request("f", &[]), server.address).await.unwrap();
    let (first, tid) = receive(&client).await;
    assert_eq!(first, Packet::Data { block: 1, data: file[..512].to_vec() });

    let stranger = client_socket().await;
    stranger.send_to(&Packet::Ack { block: 1 }.encode(), tid).await.unwrap();
    let (answer, from) = receive(&stranger).await;
    assert_eq!(error_code(&answer), Some(ErrorCode::UNKNOWN_TRANSFER_ID));
    assert_eq!(from, tid);
    // An error from a stranger is not answered (no error ping-pong).
    stranger.send_to(&Packet::error(ErrorCode::NOT_DEFINED, "x").encode(), tid).await.unwrap();
    assert_eq!(receive_within(&stranger, Duration::from_millis(300)).await, None);

    client.send_to(&Packet::Ack { block: 1 }.encode(), tid).await.unwrap();
    let (second, from) = receive(&client).await;
    assert_eq!(from, tid);
    assert_eq!(second, Packet::Data { block: 2, data: file[512..].to_vec() });
    client.send_to(&Packet::Ack { block: 2 }.encode(), tid).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn unacknowledged_data_is_resent_then_abandoned() {
    let config = ServerConfig {
        transfer: TransferConfig {
            default_timeout: Duration::from_millis(200),
            max_retries: 2,
            ..TransferConfig::default()
        },
        ..ServerConfig::default()
    };
    let file = random_bytes(2000, 4);
    let server = RunningServer::start(&[("f", &file)], config).await;
    let client = client_socket().await;
    client.send_to(&read_request("f", &[]), server.address).await.unwrap();
    let started = Instant::now();
    let (first, tid) = receive(&client).await;
    let (again, _) = receive(&client).await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(again, first);
    let (third, _) = receive(&client).await;
    assert_eq!(third, first);
    let (gave_up, from) = receive(&client).await;
    assert_eq!(from, tid);
    assert_eq!(gave_up, Packet::error(ErrorCode::NOT_DEFINED, "Transfer timed out"));
    assert_eq!(receive_within(&client, Duration::from_millis(500)).await, None);
    server.stop().await;
}

#[tokio::test]
async fn an_unacknowledged_oack_is_resent_with_the_negotiated_timeout() {
    let file = random_bytes(2000, 5);
    let server = RunningServer::start(&[("f", &file)], ServerConfig::default()).await;
    let client = client_socket().await;
    client.send_to(&read_request("f", &[("timeout", "1")]), server.address).await.unwrap();
    let (oack, _) = receive(&client).await;
    let started = Instant::now();
    let (again, _) = receive(&client).await;
    assert!(started.elapsed() >= Duration::from_millis(800));
    assert_eq!(again, oack);
    server.stop().await;
}

#[tokio::test]
async fn refusals_come_from_the_listening_port_or_the_transfer_id() {
    let server = RunningServer::start(&[("f", b"x")], ServerConfig::default()).await;
    let client = client_socket().await;

    let write = Packet::Request(Request {
        kind: RequestKind::Write,
        filename: "f".into(),
        mode: Mode::Octet,
        options: vec![],
    });
    client.send_to(&write.encode(), server.address).await.unwrap();
    let (answer, from) = receive(&client).await;
    assert_eq!(error_code(&answer), Some(ErrorCode::ACCESS_VIOLATION));
    assert_eq!(from, server.address);

    client.send_to(b"\x00\x01f\x00binary\x00", server.address).await.unwrap();
    let (answer, _) = receive(&client).await;
    assert_eq!(error_code(&answer), Some(ErrorCode::ILLEGAL_OPERATION));

    // Stray ACKs and errors on the listening port are not answered.
    client.send_to(&Packet::Ack { block: 1 }.encode(), server.address).await.unwrap();
    assert_eq!(receive_within(&client, Duration::from_millis(300)).await, None);

    for (name, expected) in [
        ("missing", ErrorCode::FILE_NOT_FOUND),
        ("../etc/passwd", ErrorCode::ACCESS_VIOLATION),
        ("/etc/passwd", ErrorCode::ACCESS_VIOLATION),
    ] {
        assert!(
            matches!(
                fetch(server.address, name, &[]).await,
                Err(FetchError::Remote(code, _)) if code == expected
            ),
            "{name}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn the_transfer_limit_turns_excess_requests_away() {
    let config = ServerConfig { max_transfers: 1, ..ServerConfig::default() };
    let file = random_bytes(600, 6);
    let server = RunningServer::start(&[("f", &file)], config).await;
    let holder = client_socket().await;
    holder.send_to(&read_request("f", &[]), server.address).await.unwrap();
    let (_, tid) = receive(&holder).await;

    let turned_away = fetch(server.address, "f", &[]).await;
    assert!(
        matches!(&turned_away, Err(FetchError::Remote(ErrorCode::NOT_DEFINED, message)) if message.contains("busy")),
        "{turned_away:?}"
    );

    holder.send_to(&Packet::Ack { block: 1 }.encode(), tid).await.unwrap();
    let (_, _) = receive(&holder).await;
    holder.send_to(&Packet::Ack { block: 2 }.encode(), tid).await.unwrap();
    // The slot frees as soon as the task ends.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match fetch(server.address, "f", &[]).await {
            Ok(fetched) => {
                assert_eq!(fetched.data, file);
                break;
            }
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("slot never freed: {error:?}"),
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_transfers_run_concurrently() {
    let files: Vec<(String, Vec<u8>)> = (0..24)
        .map(|index| {
            (format!("node-{index}/kernel"), random_bytes(50_000 + index * 997, index as u64))
        })
        .collect();
    let borrowed: Vec<(&str, &[u8])> =
        files.iter().map(|(name, bytes)| (name.as_str(), bytes.as_slice())).collect();
    let server = RunningServer::start(&borrowed, ServerConfig::default()).await;
    let address = server.address;
    let fetches: Vec<_> = files
        .iter()
        .enumerate()
        .map(|(index, (name, _))| {
            let name = name.clone();
            let window = (index % 4 * 4 + 1).to_string();
            tokio::spawn(async move {
                fetch(address, &name, &[("blksize", "1024"), ("windowsize", &window)]).await
            })
        })
        .collect();
    for (handle, (name, bytes)) in fetches.into_iter().zip(&files) {
        let fetched = handle.await.unwrap().unwrap();
        assert!(fetched.data == *bytes, "{name} differs");
    }
    server.stop().await;
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let server = RunningServer::start(&[("f", b"x")], ServerConfig::default()).await;
    let address = server.address;
    assert_eq!(fetch(address, "f", &[]).await.unwrap().data, b"x");
    server.stop().await;
    let client = client_socket().await;
    client.send_to(&read_request("f", &[]), address).await.unwrap();
    assert_eq!(receive_within(&client, Duration::from_millis(300)).await, None);
}

#[tokio::test]
async fn generated_content_is_served_from_any_source() {
    let script = b"#!ipxe\nchain http://x/\n";
    let mut source = MemorySource::new();
    source.insert("nodes/abc/boot.ipxe", script.to_vec()).unwrap();
    let server = TftpServer::bind_with_source(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(source),
        ServerConfig::default(),
    )
    .await
    .unwrap();
    let address = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));
    let fetched = fetch(address, "/nodes/abc/boot.ipxe", &[("tsize", "0")]).await.unwrap();
    assert_eq!(fetched.data, script);
    assert_eq!(fetched.option_ack, vec![TftpOption::new("tsize", script.len().to_string())]);
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn serving_can_be_bound_to_a_device() {
    let root = tempfile::tempdir().unwrap();
    common::write_file(root.path(), "f", b"on lo only");
    let config = ServerConfig { bind_device: Some("lo".into()), ..ServerConfig::default() };
    let server = match TftpServer::bind("127.0.0.1:0".parse().unwrap(), root.path(), config).await {
        Ok(server) => server,
        Err(ferric_tftp::ServerError::BindDevice { source, .. })
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            eprintln!("skipped: SO_BINDTODEVICE needs CAP_NET_RAW ({source})");
            return;
        }
        Err(error) => panic!("{error}"),
    };
    let address = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));
    assert_eq!(fetch(address, "f", &[]).await.unwrap().data, b"on lo only");
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();

    let missing =
        ServerConfig { bind_device: Some("no-such-if0".into()), ..ServerConfig::default() };
    assert!(matches!(
        TftpServer::bind("127.0.0.1:0".parse().unwrap(), root.path(), missing).await,
        Err(ferric_tftp::ServerError::BindDevice { .. })
    ));
}

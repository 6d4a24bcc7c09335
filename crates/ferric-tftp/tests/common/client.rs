//! A minimal TFTP read client (RFC 1350 + options + RFC 7440 windows) for
//! tests and the benchmark: it talks only to the address it is given.

use std::net::SocketAddr;
use std::time::Duration;

use ferric_tftp::packet::{ErrorCode, Mode, Packet, Request, RequestKind, TftpOption};
use tokio::net::UdpSocket;

/// What a successful fetch returns.
#[derive(Debug)]
pub struct Fetched {
    /// The file's bytes as received.
    pub data: Vec<u8>,
    /// The options the server acknowledged (empty without an OACK).
    pub option_ack: Vec<TftpOption>,
    /// The server's transfer ID.
    pub server_tid: SocketAddr,
}

/// Why a fetch failed.
#[derive(Debug, PartialEq, Eq)]
pub enum FetchError {
    /// The server answered with an error packet.
    Remote(ErrorCode, String),
    /// No answer after several retries.
    TimedOut,
    /// Anything else.
    Other(String),
}

/// Fetches `filename` from `server` in octet mode with `options`.
pub async fn fetch(
    server: SocketAddr,
    filename: &str,
    options: &[(&str, &str)],
) -> Result<Fetched, FetchError> {
    let other = |error: std::io::Error| FetchError::Other(error.to_string());
    let socket = UdpSocket::bind("127.0.0.1:0").await.map_err(other)?;
    let request = Packet::Request(Request {
        kind: RequestKind::Read,
        filename: filename.to_owned(),
        mode: Mode::Octet,
        options: options.iter().map(|(name, value)| TftpOption::new(*name, *value)).collect(),
    });
    let mut last_sent = request.encode();
    let mut send_to = server;
    socket.send_to(&last_sent, send_to).await.map_err(other)?;

    let mut server_tid: Option<SocketAddr> = None;
    let mut block_size = 512usize;
    let mut window_size = 1u16;
    let mut option_ack = Vec::new();
    let mut expected: u16 = 1;
    let mut in_window = 0u16;
    let mut data = Vec::new();
    let mut retries = 0;
    let mut buffer = vec![0u8; 65_536];
    loop {
        let received =
            tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buffer)).await;
        let (length, from) = match received {
            Err(_) => {
                retries += 1;
                if retries > 5 {
                    return Err(FetchError::TimedOut);
                }
                socket.send_to(&last_sent, send_to).await.map_err(other)?;
                continue;
            }
            Ok(result) => result.map_err(other)?,
        };
        match server_tid {
            None => server_tid = Some(from),
            Some(tid) if tid != from => continue,
            Some(_) => {}
        }
        send_to = from;
        retries = 0;
        let reply = match Packet::decode(&buffer[..length]) {
            Ok(Packet::OptionAck { options }) => {
                for option in &options {
                    let value = option.value.parse().unwrap_or(0);
                    match option.name.as_str() {
                        "blksize" => block_size = value,
                        "windowsize" => window_size = u16::try_from(value).unwrap_or(1),
                        _ => {}
                    }
                }
                option_ack = options;
                Some(0)
            }
            Ok(Packet::Data { block, data: payload }) if block == expected => {
                data.extend_from_slice(&payload);
                expected = expected.wrapping_add(1);
                in_window += 1;
                let last = payload.len() < block_size;
                if last {
                    let ack = Packet::Ack { block }.encode();
                    socket.send_to(&ack, from).await.map_err(other)?;
                    return Ok(Fetched { data, option_ack, server_tid: from });
                }
                (in_window == window_size).then_some(block)
            }
            // Out of order or duplicate: acknowledge the last block in order.
            Ok(Packet::Data { .. }) => Some(expected.wrapping_sub(1)),
            Ok(Packet::Error { code, message }) => return Err(FetchError::Remote(code, message)),
            other => return Err(FetchError::Other(format!("unexpected {other:?}"))),
        };
        if let Some(block) = reply {
            in_window = 0;
            last_sent = Packet::Ack { block }.encode();
            socket.send_to(&last_sent, from).await.map_err(other)?;
        }
    }
}

//! A small HTTP/1.1 file server on 127.0.0.1 for tests and the benchmark:
//! serves named in-memory files with or without Content-Length, honours
//! `Range` (206 + Content-Range) unless told not to, and can cut responses
//! after N body bytes, once or always.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Misbehaviours, applied to every response while set.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Send no Content-Length on 200 answers (the body ends when the connection closes).
    pub no_content_length: bool,
    /// Ignore `Range` and answer 200 with the whole file.
    pub refuse_ranges: bool,
    /// Close the connection after this many body bytes ...
    pub cut_after: Option<u64>,
    /// ... in this many responses (u32::MAX: always).
    pub cuts: u32,
}

#[derive(Default)]
struct State {
    files: Mutex<HashMap<String, Bytes>>,
    faults: Mutex<Faults>,
    requests: AtomicU64,
    range_requests: AtomicU64,
}

pub struct TestServer {
    addr: SocketAddr,
    state: Arc<State>,
}

impl TestServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&shared)));
            }
        });
        Self { addr, state }
    }

    /// Serves `data` at `/name`; returns its URL.
    pub fn add(&self, name: &str, data: impl Into<Bytes>) -> String {
        self.state.files.lock().unwrap().insert(format!("/{name}"), data.into());
        format!("http://{}/{name}", self.addr)
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.state.faults.lock().unwrap() = faults;
    }

    #[allow(dead_code)]
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    #[allow(dead_code)]
    pub fn range_requests(&self) -> u64 {
        self.state.range_requests.load(Ordering::Relaxed)
    }
}

async fn serve(mut stream: TcpStream, state: Arc<State>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 << 10 {
            return;
        }
    }
    state.requests.fetch_add(1, Ordering::Relaxed);
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split_whitespace();
    let method = request_line.next().unwrap_or("").to_owned();
    let path = request_line.next().unwrap_or("").to_owned();
    let range = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("range"))
        .map(|(_, value)| value.trim().to_owned());
    if range.is_some() {
        state.range_requests.fetch_add(1, Ordering::Relaxed);
    }
    let file = state.files.lock().unwrap().get(&path).cloned();
    let Some(file) = file else {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        return;
    };
    let (cut, no_content_length, refuse_ranges) = {
        let mut faults = state.faults.lock().unwrap();
        let cut = match faults.cut_after {
            Some(after) if faults.cuts > 0 => {
                if faults.cuts != u32::MAX {
                    faults.cuts -= 1;
                }
                Some(after)
            }
            _ => None,
        };
        (cut, faults.no_content_length, faults.refuse_ranges)
    };
    let len = file.len() as u64;
    let parsed_range = range.filter(|_| !refuse_ranges).and_then(|value| {
        let spec = value.strip_prefix("bytes=")?;
        let (start, end) = spec.split_once('-')?;
        let start: u64 = start.parse().ok()?;
        let end: u64 = if end.is_empty() { u64::MAX } else { end.parse().ok()? };
        Some((start, end))
    });
    let (status, body, extra) = match parsed_range {
        Some((start, _)) if start >= len => {
            let head = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes()).await;
            return;
        }
        Some((start, end)) => {
            let end = end.min(len - 1);
            let body = file.slice(start as usize..=end as usize);
            let extra = format!(
                "Content-Range: bytes {start}-{end}/{len}\r\nContent-Length: {}\r\n",
                body.len()
            );
            ("206 Partial Content", body, extra)
        }
        None => {
            let extra = if no_content_length {
                String::new()
            } else {
                format!("Content-Length: {len}\r\n")
            };
            ("200 OK", file, extra)
        }
    };
    let accept = if refuse_ranges { "none" } else { "bytes" };
    let head =
        format!("HTTP/1.1 {status}\r\nAccept-Ranges: {accept}\r\n{extra}Connection: close\r\n\r\n");
    if stream.write_all(head.as_bytes()).await.is_err() || method == "HEAD" {
        return;
    }
    let body = match cut {
        Some(after) if after < body.len() as u64 => body.slice(..after as usize),
        _ => body,
    };
    let _ = stream.write_all(&body).await;
    let _ = stream.shutdown().await;
}

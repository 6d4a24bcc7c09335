//! The socket loop: one listening socket for requests, and per transfer a
//! tokio task with its own ephemeral socket (the server's transfer ID, as
//! RFC 1350 requires) driving a [`Transfer`].
//!
//! Nothing is shared between transfers but the file source and a semaphore
//! bounding how many run at once; no lock is held across I/O. Datagrams
//! from anyone but the transfer's client are answered with "unknown
//! transfer ID" and change nothing. File opening runs on tokio's blocking
//! pool; block reads happen inline, as short reads of at most
//! `blksize × windowsize` bytes, since boot files are normally in the page
//! cache.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::options::TransferConfig;
use crate::packet::{parse_request, ErrorCode, Packet, ParseError, Request};
use crate::source::{FileSource, FsSource};
use crate::transfer::{Transfer, TransferState};

/// Largest datagram read from a client. Requests are small; ACKs and
/// errors smaller still.
const RECEIVE_BUFFER_SIZE: usize = 64 * 1024;

/// How the server runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Limits and defaults of each transfer.
    pub transfer: TransferConfig,
    /// Transfers allowed at once; further requests get "server busy".
    pub max_transfers: usize,
    /// Network interface to serve on only (`SO_BINDTODEVICE`, Linux), so a
    /// deployment answers on the provisioning network and nowhere else.
    pub bind_device: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig { transfer: TransferConfig::default(), max_transfers: 128, bind_device: None }
    }
}

/// Why the server could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The TFTP root cannot be served.
    #[error("cannot serve {root}: {source}")]
    Root {
        /// The root directory.
        root: String,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
    /// Creating or binding a socket failed.
    #[error("cannot bind TFTP socket to {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
    /// `SO_BINDTODEVICE` failed (it needs `CAP_NET_RAW` and Linux).
    #[error("cannot bind TFTP socket to device {device}: {source}")]
    BindDevice {
        /// The interface name.
        device: String,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
}

/// A bound, read-only TFTP server.
pub struct TftpServer {
    socket: UdpSocket,
    local_address: SocketAddr,
    source: Arc<dyn FileSource>,
    config: ServerConfig,
}

impl std::fmt::Debug for TftpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TftpServer")
            .field("local_address", &self.local_address)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TftpServer {
    /// Binds `address` (port 0 picks a free one) and serves the files under
    /// `root` (see [`FsSource`] for which names are allowed).
    pub async fn bind(
        address: SocketAddr,
        root: impl AsRef<Path>,
        config: ServerConfig,
    ) -> Result<TftpServer, ServerError> {
        let root = root.as_ref();
        let source = FsSource::new(root)
            .map_err(|source| ServerError::Root { root: root.display().to_string(), source })?;
        TftpServer::bind_with_source(address, Arc::new(source), config).await
    }

    /// Binds `address` and serves files from any [`FileSource`].
    pub async fn bind_with_source(
        address: SocketAddr,
        source: Arc<dyn FileSource>,
        config: ServerConfig,
    ) -> Result<TftpServer, ServerError> {
        let socket = bind_udp(address, config.bind_device.as_deref())?;
        let local_address =
            socket.local_addr().map_err(|source| ServerError::Bind { address, source })?;
        Ok(TftpServer { socket, local_address, source, config })
    }

    /// The address the server listens on (with the port chosen, if 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_address
    }

    /// Serves requests until `shutdown` resolves, then stops transfers in
    /// progress and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let local_ip = self.local_address.ip();
        let transfer_slots = Arc::new(Semaphore::new(self.config.max_transfers));
        let mut transfers = JoinSet::new();
        let mut buffer = vec![0u8; RECEIVE_BUFFER_SIZE];
        let mut shutdown = std::pin::pin!(shutdown);
        tracing::info!(address = %self.local_address, "TFTP server listening");
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(finished) = transfers.join_next(), if !transfers.is_empty() => {
                    if let Err(error) = finished {
                        tracing::error!(%error, "TFTP transfer task failed");
                    }
                }
                received = self.socket.recv_from(&mut buffer) => {
                    let (length, client) = match received {
                        Ok(received) => received,
                        Err(error) => {
                            tracing::warn!(%error, "TFTP receive failed");
                            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                            continue;
                        }
                    };
                    let Some((request, slot)) = self.accept(&buffer[..length], client, &transfer_slots).await else {
                        continue;
                    };
                    let context = TransferContext {
                        request,
                        client,
                        local_ip,
                        source: Arc::clone(&self.source),
                        config: self.config.clone(),
                        _slot: slot,
                    };
                    transfers.spawn(context.run());
                }
            }
        }
        tracing::info!(active = transfers.len(), "TFTP server stopping");
        transfers.shutdown().await;
        Ok(())
    }

    /// Checks a datagram on the listening socket; answers refusals there
    /// and returns the requests to start a transfer for.
    async fn accept(
        &self,
        datagram: &[u8],
        client: SocketAddr,
        transfer_slots: &Arc<Semaphore>,
    ) -> Option<(Request, OwnedSemaphorePermit)> {
        let request = match parse_request(datagram) {
            Ok(request) => request,
            // Stray data, ACKs or errors: answering could start a loop.
            Err(ParseError::NotARequest(_) | ParseError::Truncated(_)) => return None,
            Err(error) => {
                tracing::debug!(%client, %error, "malformed TFTP request");
                let refusal = Packet::error(
                    ErrorCode::ILLEGAL_OPERATION,
                    format!("Illegal operation: {error}"),
                );
                self.reply(&refusal, client).await;
                return None;
            }
        };
        if let Some(refusal) = Transfer::refusal(&request) {
            tracing::info!(%client, file = %request.filename, kind = ?request.kind, "TFTP request refused");
            self.reply(&refusal, client).await;
            return None;
        }
        match Arc::clone(transfer_slots).try_acquire_owned() {
            Ok(slot) => Some((request, slot)),
            Err(_) => {
                tracing::warn!(%client, file = %request.filename, "TFTP server busy");
                let busy = Packet::error(ErrorCode::NOT_DEFINED, "Server busy, try again later");
                self.reply(&busy, client).await;
                None
            }
        }
    }

    async fn reply(&self, packet: &Packet, client: SocketAddr) {
        if let Err(error) = self.socket.send_to(&packet.encode(), client).await {
            tracing::debug!(%client, %error, "cannot send TFTP reply");
        }
    }
}

/// Creates a non-blocking UDP socket bound to `address`, optionally to a device.
fn bind_udp(address: SocketAddr, device: Option<&str>) -> Result<UdpSocket, ServerError> {
    let bind_error = |source| ServerError::Bind { address, source };
    let socket = Socket::new(Domain::for_address(address), Type::DGRAM, Some(Protocol::UDP))
        .map_err(bind_error)?;
    if let Some(device) = device {
        bind_to_device(&socket, device)
            .map_err(|source| ServerError::BindDevice { device: device.to_owned(), source })?;
    }
    socket.set_nonblocking(true).map_err(bind_error)?;
    socket.bind(&address.into()).map_err(bind_error)?;
    UdpSocket::from_std(socket.into()).map_err(bind_error)
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
fn bind_to_device(socket: &Socket, device: &str) -> io::Result<()> {
    socket.bind_device(Some(device.as_bytes()))
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "fuchsia")))]
fn bind_to_device(_socket: &Socket, _device: &str) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "binding to a device needs Linux"))
}

/// Everything one transfer task needs.
struct TransferContext {
    request: Request,
    client: SocketAddr,
    local_ip: IpAddr,
    source: Arc<dyn FileSource>,
    config: ServerConfig,
    /// Held for the task's lifetime: frees the slot when the task ends.
    _slot: OwnedSemaphorePermit,
}

impl TransferContext {
    async fn run(self) {
        let client = self.client;
        let filename = self.request.filename.clone();
        let started = Instant::now();
        let socket = match bind_udp(
            SocketAddr::new(self.local_ip, 0),
            self.config.bind_device.as_deref(),
        ) {
            Ok(socket) => socket,
            Err(error) => {
                tracing::error!(%client, file = %filename, %error, "cannot open a TFTP transfer socket");
                return;
            }
        };
        let mut sender =
            Sender { socket: &socket, client, buffer: Vec::with_capacity(RECEIVE_BUFFER_SIZE) };
        let request = self.request;
        let source = self.source;
        let transfer_config = self.config.transfer.clone();
        let opened = tokio::task::spawn_blocking(move || {
            Transfer::open(&request, source.as_ref(), &transfer_config)
        })
        .await;
        let (mut transfer, first) = match opened {
            Ok(Ok(started)) => started,
            Ok(Err(refusal)) => {
                tracing::info!(%client, file = %filename, response = ?refusal, "TFTP request refused");
                sender.send(&[refusal]).await;
                return;
            }
            Err(error) => {
                tracing::error!(%client, file = %filename, %error, "opening a TFTP file panicked");
                return;
            }
        };
        sender.send(&first).await;
        // The timer is re-armed lazily: progress only moves `deadline`, and
        // when the timer fires early it is pushed to the current deadline.
        // That keeps timer-wheel updates off the per-packet path.
        let mut deadline = Instant::now() + transfer.retransmit_timeout();
        let timer = tokio::time::sleep_until(deadline.into());
        let mut timer = std::pin::pin!(timer);
        let mut receive_buffer = vec![0u8; RECEIVE_BUFFER_SIZE];
        while !transfer.is_finished() {
            tokio::select! {
                received = socket.recv_from(&mut receive_buffer) => {
                    let (length, from) = match received {
                        Ok(received) => received,
                        Err(error) => {
                            tracing::debug!(%client, %error, "TFTP transfer receive failed");
                            continue;
                        }
                    };
                    let datagram = &receive_buffer[..length];
                    if from != client {
                        reject_unknown_transfer_id(&socket, datagram, from).await;
                        continue;
                    }
                    let replies = transfer.on_packet(datagram);
                    if !replies.is_empty() {
                        sender.send(&replies).await;
                        deadline = Instant::now() + transfer.retransmit_timeout();
                    }
                }
                () = &mut timer => {
                    if Instant::now() >= deadline {
                        let replies = transfer.on_timeout();
                        sender.send(&replies).await;
                        deadline = Instant::now() + transfer.retransmit_timeout();
                    }
                    timer.as_mut().reset(deadline.into());
                }
            }
        }
        let elapsed = started.elapsed();
        match transfer.state() {
            TransferState::Complete => tracing::info!(
                %client,
                file = %filename,
                bytes = transfer.bytes_acknowledged(),
                block_size = transfer.options().block_size,
                window_size = transfer.options().window_size,
                retransmissions = transfer.retransmissions(),
                elapsed_ms = elapsed.as_millis() as u64,
                "TFTP transfer complete"
            ),
            _ => tracing::warn!(
                %client,
                file = %filename,
                bytes = transfer.bytes_acknowledged(),
                error = %transfer
                    .failure()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                "TFTP transfer failed"
            ),
        }
    }
}

/// Sends a transfer's packets to its client through one reused buffer.
struct Sender<'a> {
    socket: &'a UdpSocket,
    client: SocketAddr,
    buffer: Vec<u8>,
}

impl Sender<'_> {
    async fn send(&mut self, packets: &[Packet]) {
        for packet in packets {
            packet.encode_into(&mut self.buffer);
            // A failed send is a lost packet: the retransmission timer copes.
            if let Err(error) = self.socket.send_to(&self.buffer, self.client).await {
                tracing::debug!(client = %self.client, %error, "TFTP send failed");
            }
        }
    }
}

/// Answers a datagram from a stranger on a transfer's socket, unless it is
/// an error itself (answering errors with errors can loop forever).
async fn reject_unknown_transfer_id(socket: &UdpSocket, datagram: &[u8], from: SocketAddr) {
    if matches!(Packet::decode(datagram), Ok(Packet::Error { .. })) {
        return;
    }
    tracing::debug!(%from, "TFTP datagram from an unknown transfer ID");
    let error = Packet::error(ErrorCode::UNKNOWN_TRANSFER_ID, "Unknown transfer ID");
    if let Err(error) = socket.send_to(&error.encode(), from).await {
        tracing::debug!(%from, %error, "cannot send TFTP error");
    }
}

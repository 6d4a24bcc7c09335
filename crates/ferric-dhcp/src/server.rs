//! The tokio socket loop: port 67 (and 4011 in proxy mode) on one
//! interface only, replies sent per [`Destination`].
//!
//! Each datagram is decoded, handed to [`handle`] (which locks the lease
//! store only inside its calls) and the reply sent afterwards: no lock is
//! held across socket I/O. Requests are served one at a time, in arrival
//! order; the core does no I/O, so this is not a bottleneck.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use crate::backend::{Backend, LeaseStore};
use crate::config::{Config, Mode};
use crate::handler::{handle, Context, Destination, Port, PROXY_PORT, SERVER_PORT};
use crate::packet::Packet;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// No interface configured: the server never serves every interface.
    #[error("no interface configured: the DHCP server serves exactly one interface")]
    NoInterface,
    /// Creating or binding a socket failed.
    #[error("cannot bind DHCP socket on {address}: {source}")]
    Bind {
        /// Address being bound.
        address: SocketAddr,
        /// Cause.
        source: io::Error,
    },
    /// `SO_BINDTODEVICE` failed (it needs `CAP_NET_RAW` and Linux).
    #[error("cannot bind DHCP socket to interface {device}: {source}")]
    BindDevice {
        /// Interface name.
        device: String,
        /// Cause.
        source: io::Error,
    },
    /// Receiving failed.
    #[error("DHCP socket receive failed: {0}")]
    Receive(io::Error),
}

/// A bound DHCP server; [`DhcpServer::serve`] runs it.
pub struct DhcpServer {
    config: Arc<Config>,
    backend: Arc<dyn Backend>,
    leases: Arc<dyn LeaseStore>,
    dhcp: UdpSocket,
    proxy: Option<UdpSocket>,
}

impl DhcpServer {
    /// Binds `0.0.0.0:67` (and `:4011` in proxy mode) on the configured
    /// interface only.
    pub async fn bind(
        config: Config,
        backend: Arc<dyn Backend>,
        leases: Arc<dyn LeaseStore>,
    ) -> Result<DhcpServer, ServerError> {
        if config.interface.is_empty() {
            return Err(ServerError::NoInterface);
        }
        let dhcp = bind_udp(SERVER_PORT, &config.interface)?;
        let proxy = match config.mode {
            Mode::Proxy => Some(bind_udp(PROXY_PORT, &config.interface)?),
            Mode::Authoritative => None,
        };
        tracing::info!(interface = %config.interface, server = %config.server_ip, mode = ?config.mode, "DHCP server bound");
        Ok(DhcpServer { config: Arc::new(config), backend, leases, dhcp, proxy })
    }

    /// Serves until `shutdown` resolves.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut dhcp_buf = vec![0u8; 4096];
        let mut proxy_buf = vec![0u8; 4096];
        loop {
            let (port, len, source) = tokio::select! {
                () = &mut shutdown => return Ok(()),
                received = self.dhcp.recv_from(&mut dhcp_buf) => {
                    let (len, source) = received_or_retry(received)?;
                    (Port::Dhcp, len, source)
                }
                received = recv_optional(self.proxy.as_ref(), &mut proxy_buf) => {
                    let (len, source) = received_or_retry(received)?;
                    (Port::Proxy, len, source)
                }
            };
            let bytes = match port {
                Port::Dhcp => &dhcp_buf[..len],
                Port::Proxy => &proxy_buf[..len],
            };
            self.process(port, bytes, source).await;
        }
    }

    async fn process(&self, port: Port, bytes: &[u8], source: Option<SocketAddr>) {
        let Some(SocketAddr::V4(source)) = source else { return };
        let request = match Packet::decode(bytes) {
            Ok(request) => request,
            Err(error) => {
                tracing::debug!(%source, %error, "undecodable DHCP packet ignored");
                return;
            }
        };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let ctx = Context { config: &self.config, leases: self.leases.as_ref(), now, source, port };
        let Some(reply) = handle(&request, &ctx, self.backend.as_ref()) else { return };
        let target = match reply.destination {
            Destination::Broadcast(port) => SocketAddrV4::new(Ipv4Addr::BROADCAST, port),
            Destination::Unicast(address) => address,
        };
        let socket = match (port, &self.proxy) {
            (Port::Proxy, Some(proxy)) => proxy,
            _ => &self.dhcp,
        };
        if let Err(error) = socket.send_to(&reply.packet.encode(), target).await {
            tracing::warn!(%target, %error, "cannot send DHCP reply");
            return;
        }
        let file = String::from_utf8_lossy(&reply.packet.file);
        tracing::info!(
            kind = ?reply.packet.message_type(),
            mac = %reply.packet.mac().map(|mac| mac.to_string()).unwrap_or_default(),
            address = %reply.packet.yiaddr,
            boot_file = %file.trim_end_matches('\0'),
            "DHCP reply sent"
        );
    }
}

/// Transient receive errors (ICMP port unreachable surfacing as
/// `ConnectionRefused`, ...) are skipped; `None` source means "skip".
fn received_or_retry(
    received: io::Result<(usize, SocketAddr)>,
) -> Result<(usize, Option<SocketAddr>), ServerError> {
    match received {
        Ok((len, source)) => Ok((len, Some(source))),
        Err(error)
            if matches!(
                error.kind(),
                io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::Interrupted
            ) =>
        {
            Ok((0, None))
        }
        Err(error) => Err(ServerError::Receive(error)),
    }
}

async fn recv_optional(
    socket: Option<&UdpSocket>,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr)> {
    match socket {
        Some(socket) => socket.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// A non-blocking UDP socket on `0.0.0.0:port`, bound to `device`, allowed
/// to broadcast.
fn bind_udp(port: u16, device: &str) -> Result<UdpSocket, ServerError> {
    let address = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let bind_error = |source| ServerError::Bind { address, source };
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(bind_error)?;
    bind_to_device(&socket, device)
        .map_err(|source| ServerError::BindDevice { device: device.to_owned(), source })?;
    socket.set_reuse_address(true).map_err(bind_error)?;
    // Lets a proxyDHCP server share port 67 with another server on the same
    // interface (dnsmasq sets SO_REUSEPORT); broadcasts reach both sockets.
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))))]
    if config_shares_port(port) {
        socket.set_reuse_port(true).map_err(bind_error)?;
    }
    socket.set_broadcast(true).map_err(bind_error)?;
    socket.set_nonblocking(true).map_err(bind_error)?;
    socket.bind(&address.into()).map_err(bind_error)?;
    UdpSocket::from_std(socket.into()).map_err(bind_error)
}

/// Only port 67 is shared; 4011 is ours alone.
fn config_shares_port(port: u16) -> bool {
    port == SERVER_PORT
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
fn bind_to_device(socket: &Socket, device: &str) -> io::Result<()> {
    socket.bind_device(Some(device.as_bytes()))
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "fuchsia")))]
fn bind_to_device(_socket: &Socket, _device: &str) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "binding to a device needs Linux"))
}

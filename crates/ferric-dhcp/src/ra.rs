//! A "not a router" IPv6 Router Advertisement on the provisioning interface.
//!
//! iPXE's network configuration also waits for IPv6 autoconfiguration and
//! gives up only after ~13 s when no router speaks. One RA with a router
//! lifetime of 0, no prefix and no M/O flags ends that wait at once while
//! announcing nothing: no default route, no addresses. It is sent to all
//! nodes every few seconds and in answer to each Router Solicitation.

use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

const ROUTER_SOLICITATION: u8 = 133;
const ROUTER_ADVERTISEMENT: u8 = 134;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

/// Why the advertiser could not start.
#[derive(Debug, thiserror::Error)]
pub enum RaError {
    #[error("interface {interface} not found")]
    NoInterface { interface: String },
    #[error("cannot open an ICMPv6 socket on {interface} (needs CAP_NET_RAW)")]
    Socket {
        interface: String,
        #[source]
        source: std::io::Error,
    },
}

/// The advertisement: ICMPv6 type 134, code 0, checksum left to the kernel,
/// current hop limit 64, no flags, router lifetime 0, reachable time and
/// retransmission timer unspecified, no options.
pub fn advertisement() -> [u8; 16] {
    let mut packet = [0u8; 16];
    packet[0] = ROUTER_ADVERTISEMENT;
    packet[4] = 64;
    packet
}

/// Sends lifetime-0 router advertisements on one interface.
pub struct RouterAdvertiser {
    /// The raw ICMPv6 socket, driven through tokio's datagram API (the
    /// send/receive calls are the same for raw and UDP sockets), which keeps
    /// this module free of `unsafe`.
    socket: UdpSocket,
    interface: String,
    index: u32,
}

fn interface_index(interface: &str) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{interface}/ifindex")).ok()?;
    text.trim().parse().ok()
}

impl RouterAdvertiser {
    /// Opens a raw ICMPv6 socket bound to `interface` (hop limit 255, as
    /// RFC 4861 requires, and listening for solicitations).
    pub fn bind(interface: &str) -> Result<RouterAdvertiser, RaError> {
        let index = interface_index(interface)
            .ok_or_else(|| RaError::NoInterface { interface: interface.to_owned() })?;
        let failed = |source| RaError::Socket { interface: interface.to_owned(), source };
        let socket =
            Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).map_err(failed)?;
        socket.bind_device(Some(interface.as_bytes())).map_err(failed)?;
        socket.set_multicast_hops_v6(255).map_err(failed)?;
        socket.set_unicast_hops_v6(255).map_err(failed)?;
        socket.set_multicast_if_v6(index).map_err(failed)?;
        socket.join_multicast_v6(&ALL_ROUTERS, index).map_err(failed)?;
        socket.set_nonblocking(true).map_err(failed)?;
        let socket = UdpSocket::from_std(std::net::UdpSocket::from(socket)).map_err(failed)?;
        Ok(RouterAdvertiser { socket, interface: interface.to_owned(), index })
    }

    fn send(&self) {
        let destination = SocketAddrV6::new(ALL_NODES, 0, 0, self.index);
        // Fails while the interface's link-local address is still in DAD;
        // the next tick retries.
        if let Err(error) = self.socket.try_send_to(&advertisement(), destination.into()) {
            tracing::debug!(interface = %self.interface, %error, "router advertisement not sent");
        }
    }

    /// Advertises every `interval` and on each solicitation until `shutdown`.
    pub async fn run(self, interval: Duration, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(interval);
        let mut buffer = [0u8; 1500];
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = tick.tick() => self.send(),
                received = self.socket.recv_from(&mut buffer) => {
                    if let Ok((length, _)) = received {
                        if length > 0 && buffer[0] == ROUTER_SOLICITATION {
                            self.send();
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advertisement_announces_nothing() {
        let packet = advertisement();
        assert_eq!(packet[0], 134);
        assert_eq!(packet[1], 0, "code");
        assert_eq!(packet[5], 0, "no managed/other flags");
        assert_eq!(u16::from_be_bytes([packet[6], packet[7]]), 0, "router lifetime");
        assert_eq!(packet.len(), 16, "no options, so no prefix");
    }
}

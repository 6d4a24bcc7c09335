//! Network bring-up in the deploy ramdisk: find the NICs, set them up, get
//! a DHCPv4 lease and configure address, default route and resolver.
//!
//! - [`list_interfaces`] reads `/sys/class/net` (physical = has a `device`
//!   link; `lo` and non-Ethernet links are skipped).
//! - [`set_link_up`] and [`configure`] speak rtnetlink (no `ip` binary in the
//!   ramdisk).
//! - [`dhcp_discover`] is a small DHCPv4 client on a UDP socket bound to
//!   `0.0.0.0:68` on one device (`SO_BINDTODEVICE`, `SO_BROADCAST`): DISCOVER,
//!   first OFFER, REQUEST, ACK, every message with the broadcast flag so the
//!   replies reach an interface that has no address yet. Retransmits after
//!   0.25, 0.5, 1, 2, 4, 8, 8… s; a NAK restarts; replies whose xid or `chaddr` differ,
//!   or that come from another server than the one chosen, are ignored.
//!   Packets use `ferric_dhcp`'s codec.
//! - [`bring_up_network`] ties it together, fast path first: the BOOTIF NIC
//!   alone when it is known and answers, else every NIC with carrier at once.
//!   DHCP starts as soon as the link has carrier (see [`wait_for_carrier`]).
//! - [`write_resolv_conf`] writes the DNS servers the leases named.
//!
//! Not done: lease renewal (a deploy is expected to finish within the lease;
//! the address stays configured after it expires), ARP conflict check
//! (DECLINE), IPv6.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferric_dhcp::packet::{code, BOOTREPLY, BOOTREQUEST, FLAG_BROADCAST};
pub use ferric_dhcp::MacAddr;
use ferric_dhcp::{MessageType, Packet};
use futures::stream::{FuturesUnordered, StreamExt, TryStreamExt};
use tokio::time::Instant;

/// DHCP client port.
pub const CLIENT_PORT: u16 = 68;
/// DHCP server port.
pub const SERVER_PORT: u16 = 67;
/// Vendor class identifier (option 60) the agent sends.
pub const VENDOR_CLASS: &str = "ferric-agent";
/// Parameter request list (option 55): subnet mask, router, DNS, domain
/// name, broadcast address, lease time, server id, T1, T2.
pub const PARAMETER_REQUEST_LIST: [u8; 9] = [1, 3, 6, 15, 28, 51, 54, 58, 59];
/// Largest DHCP message the agent accepts (option 57): a 1500-byte MTU
/// minus IP and UDP headers.
pub const MAX_MESSAGE_SIZE: u16 = 1472;
/// Longest wait for carrier after setting a link up.
pub const CARRIER_WAIT: Duration = Duration::from_secs(3);
/// After the first lease, how long other interfaces may still finish.
pub const EXTRA_LEASE_WAIT: Duration = Duration::from_secs(1);

/// A network interface as `/sys/class/net` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Nic {
    /// Kernel name (`eth0`, `enp1s0`).
    pub name: String,
    /// Hardware address.
    #[serde(serialize_with = "mac_as_string")]
    pub mac: MacAddr,
    /// Link detected (`carrier` reads 1).
    pub has_carrier: bool,
    /// Backed by a device (has a `device` link): not a bridge, veth, tunnel.
    pub is_physical: bool,
}

fn mac_as_string<S: serde::Serializer>(mac: &MacAddr, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(mac)
}

/// What a DHCP server granted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Lease {
    /// The address (`yiaddr`).
    pub address: Ipv4Addr,
    /// Prefix length from the subnet mask (classful default without one).
    pub prefix_len: u8,
    /// First router (option 3).
    pub router: Option<Ipv4Addr>,
    /// DNS servers (option 6).
    pub dns: Vec<Ipv4Addr>,
    /// Domain name (option 15).
    pub domain: Option<String>,
    /// The server that granted it (option 54, else the sender).
    pub server_id: Ipv4Addr,
    /// Lease time in seconds (option 51; `u32::MAX` = infinite).
    pub lease_time: Option<u32>,
}

/// Network errors.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A system call or file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// An rtnetlink request failed.
    #[error("netlink: {what}: {message}")]
    Netlink {
        /// What was being done.
        what: String,
        /// The kernel's or library's message.
        message: String,
    },
    /// No interface has this name.
    #[error("no network interface named {0}")]
    NoSuchInterface(String),
    /// No lease within the time allowed.
    #[error("no DHCP lease on {iface} within {after:?}")]
    Timeout {
        /// Interface.
        iface: String,
        /// Time allowed.
        after: Duration,
    },
    /// No interface to run DHCP on.
    #[error("no usable network interface")]
    NoInterfaces,
    /// DHCP failed on every interface tried.
    #[error("no interface got a DHCP lease ({0})")]
    NoLease(String),
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> NetError {
    let what = what.into();
    move |source| NetError::Io { what, source }
}

// ---------------------------------------------------------------- /sys

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

/// Whether `/sys/class/net/<name>/carrier` reads 1 (reading it fails while
/// the link is down: no carrier).
pub fn has_carrier(sys_root: &Path, name: &str) -> bool {
    read_trimmed(&sys_root.join("class/net").join(name).join("carrier")).as_deref() == Some("1")
}

/// Whether the kernel reports `name` operationally up: `operstate` is `up`
/// (or `unknown`, for drivers that do not report it, with carrier). It
/// follows carrier when the kernel handles the link event, which may be up
/// to a second later.
pub fn link_ready(sys_root: &Path, name: &str) -> bool {
    match read_trimmed(&sys_root.join("class/net").join(name).join("operstate")).as_deref() {
        Some("up") => true,
        Some("unknown") | None => has_carrier(sys_root, name),
        Some(_) => false,
    }
}

/// The Ethernet-like interfaces under `<sys_root>/class/net`, sorted by
/// name; `lo` and links without a 6-byte address are skipped.
pub fn list_interfaces(sys_root: &Path) -> Vec<Nic> {
    let class = sys_root.join("class/net");
    let Ok(dir) = std::fs::read_dir(&class) else { return Vec::new() };
    let mut nics: Vec<Nic> = dir
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().to_str()?.to_owned();
            if name == "lo" {
                return None;
            }
            let path = class.join(&name);
            // ARPHRD_ETHER only (skips tunnels, InfiniBand, ...).
            if read_trimmed(&path.join("type")).is_some_and(|t| t != "1") {
                return None;
            }
            let mac: MacAddr = read_trimmed(&path.join("address"))?.parse().ok()?;
            Some(Nic {
                has_carrier: has_carrier(sys_root, &name),
                is_physical: path.join("device").symlink_metadata().is_ok(),
                name,
                mac,
            })
        })
        .collect();
    nics.sort_by(|a, b| a.name.cmp(&b.name));
    nics
}

// ---------------------------------------------------------------- rtnetlink

/// An rtnetlink connection (its task stops when this is dropped).
pub struct Netlink {
    handle: rtnetlink::Handle,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn netlink_error(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetError {
    let what = what.into();
    move |error| NetError::Netlink { what, message: error.to_string() }
}

impl Netlink {
    /// Opens a connection; needs a tokio runtime.
    pub fn connect() -> Result<Netlink, NetError> {
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(io_error("open rtnetlink socket"))?;
        Ok(Netlink { handle, task: tokio::spawn(connection) })
    }

    /// The interface index of `name`.
    pub async fn index(&self, name: &str) -> Result<u32, NetError> {
        let mut links = self.handle.link().get().match_name(name.to_owned()).execute();
        match links.try_next().await {
            Ok(Some(link)) => Ok(link.header.index),
            Ok(None) => Err(NetError::NoSuchInterface(name.to_owned())),
            // The kernel answers ENODEV for an unknown name.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -19 => {
                Err(NetError::NoSuchInterface(name.to_owned()))
            }
            Err(error) => Err(netlink_error(format!("look up {name}"))(error)),
        }
    }

    /// Sets `name` administratively up.
    pub async fn set_link_up(&self, name: &str) -> Result<(), NetError> {
        let index = self.index(name).await?;
        self.handle
            .link()
            .set(rtnetlink::LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(netlink_error(format!("set {name} up")))
    }

    /// Adds `addr/prefix_len` to `name` (replacing the same address) and,
    /// with a router, a default route through it.
    pub async fn configure(
        &self,
        name: &str,
        addr: Ipv4Addr,
        prefix_len: u8,
        router: Option<Ipv4Addr>,
    ) -> Result<(), NetError> {
        let index = self.index(name).await?;
        self.handle
            .address()
            .add(index, IpAddr::V4(addr), prefix_len)
            .replace()
            .execute()
            .await
            .map_err(netlink_error(format!("add {addr}/{prefix_len} to {name}")))?;
        if let Some(router) = router {
            let route = rtnetlink::RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(router)
                .output_interface(index)
                .protocol(rtnetlink::packet_route::route::RouteProtocol::Dhcp)
                .build();
            self.handle
                .route()
                .add(route)
                .replace()
                .execute()
                .await
                .map_err(netlink_error(format!("default route via {router} on {name}")))?;
        }
        Ok(())
    }
}

/// Sets `name` up (one-shot rtnetlink connection).
pub async fn set_link_up(name: &str) -> Result<(), NetError> {
    Netlink::connect()?.set_link_up(name).await
}

/// Configures an address and default route on `name` (one-shot connection).
pub async fn configure(
    name: &str,
    addr: Ipv4Addr,
    prefix_len: u8,
    router: Option<Ipv4Addr>,
) -> Result<(), NetError> {
    Netlink::connect()?.configure(name, addr, prefix_len, router).await
}

/// The text of a `resolv.conf` for `leases` (`None` without DNS servers):
/// at most three name servers, in lease order, duplicates dropped.
pub fn resolv_conf(leases: &[Lease]) -> Option<String> {
    let mut servers: Vec<Ipv4Addr> = Vec::new();
    for server in leases.iter().flat_map(|l| &l.dns) {
        if !servers.contains(server) && servers.len() < 3 {
            servers.push(*server);
        }
    }
    if servers.is_empty() {
        return None;
    }
    let mut text = String::from("# written by ferric-agent from DHCP\n");
    let mut domains: Vec<&str> = leases.iter().filter_map(|l| l.domain.as_deref()).collect();
    domains.dedup();
    if !domains.is_empty() {
        text.push_str(&format!("search {}\n", domains.join(" ")));
    }
    for server in servers {
        text.push_str(&format!("nameserver {server}\n"));
    }
    Some(text)
}

/// Writes `path` (normally `/etc/resolv.conf`) from the leases' DNS
/// servers; returns whether there was anything to write.
pub fn write_resolv_conf(path: &Path, leases: &[Lease]) -> Result<bool, NetError> {
    let Some(text) = resolv_conf(leases) else { return Ok(false) };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_error(format!("create {}", dir.display())))?;
    }
    std::fs::write(path, text).map_err(io_error(format!("write {}", path.display())))?;
    Ok(true)
}

// ---------------------------------------------------------------- DHCP messages

fn base_request(kind: MessageType, xid: u32, mac: MacAddr, secs: u16) -> Packet {
    let mut packet =
        Packet { op: BOOTREQUEST, xid, secs, flags: FLAG_BROADCAST, ..Packet::default() };
    packet.set_mac(mac);
    packet.set_option(code::MESSAGE_TYPE, [u8::from(kind)]);
    let mut client_id = vec![1];
    client_id.extend_from_slice(&mac.0);
    packet.set_option(code::CLIENT_ID, client_id);
    packet.set_option(code::MAX_MESSAGE_SIZE, MAX_MESSAGE_SIZE.to_be_bytes());
    packet.set_option(code::VENDOR_CLASS, VENDOR_CLASS);
    packet.set_option(code::PARAMETER_REQUEST_LIST, PARAMETER_REQUEST_LIST);
    packet
}

/// A DHCPDISCOVER from `mac` (broadcast flag, client id, vendor class,
/// parameter request list).
pub fn build_discover(xid: u32, mac: MacAddr, secs: u16) -> Packet {
    base_request(MessageType::Discover, xid, mac, secs)
}

/// A DHCPREQUEST (SELECTING state) for `offered` from server `server_id`.
pub fn build_request(
    xid: u32,
    mac: MacAddr,
    secs: u16,
    offered: Ipv4Addr,
    server_id: Ipv4Addr,
) -> Packet {
    let mut packet = base_request(MessageType::Request, xid, mac, secs);
    packet.set_option(code::REQUESTED_IP, offered.octets());
    packet.set_option(code::SERVER_ID, server_id.octets());
    packet
}

/// A reply that belongs to our transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    Offer { address: Ipv4Addr, server_id: Ipv4Addr, packet: Packet },
    Ack { server_id: Ipv4Addr, packet: Packet },
    Nak { server_id: Ipv4Addr, message: String },
}

/// Decodes and checks a datagram from `from`: a BOOTREPLY with our xid and
/// MAC, and a message type the client cares about.
fn classify(bytes: &[u8], from: Ipv4Addr, xid: u32, mac: MacAddr) -> Option<Reply> {
    let packet = Packet::decode(bytes).ok()?;
    if packet.op != BOOTREPLY || packet.xid != xid || packet.mac() != Some(mac) {
        return None;
    }
    let server_id = packet.option_ipv4(code::SERVER_ID).unwrap_or(from);
    let usable = |a: Ipv4Addr| !(a.is_unspecified() || a.is_broadcast() || a.is_multicast());
    match packet.message_type()? {
        MessageType::Offer if usable(packet.yiaddr) => {
            Some(Reply::Offer { address: packet.yiaddr, server_id, packet })
        }
        MessageType::Ack if usable(packet.yiaddr) => Some(Reply::Ack { server_id, packet }),
        MessageType::Nak => {
            let message =
                String::from_utf8_lossy(packet.option(code::MESSAGE).unwrap_or_default()).into();
            Some(Reply::Nak { server_id, message })
        }
        _ => None,
    }
}

/// The prefix length of a contiguous subnet mask.
pub fn prefix_from_mask(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// The classful prefix of an address (RFC 2131 says to use it when the
/// server sends no subnet mask).
fn classful_prefix(address: Ipv4Addr) -> u8 {
    match address.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

fn ipv4_list(value: &[u8]) -> Vec<Ipv4Addr> {
    value.chunks_exact(4).map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3])).collect()
}

/// The lease an ACK grants; options missing from the ACK are taken from
/// the OFFER.
fn lease_from(ack: &Packet, offer: &Packet, server_id: Ipv4Addr) -> Lease {
    let option = |c: u8| ack.option(c).or_else(|| offer.option(c));
    let prefix_len = option(code::SUBNET_MASK)
        .and_then(|v| <[u8; 4]>::try_from(v).ok())
        .and_then(|m| prefix_from_mask(Ipv4Addr::from(m)))
        .unwrap_or_else(|| classful_prefix(ack.yiaddr));
    let router = option(code::ROUTER)
        .map(ipv4_list)
        .and_then(|r| r.into_iter().find(|a| !a.is_unspecified()));
    let dns = option(code::DNS).map(ipv4_list).unwrap_or_default();
    let domain = option(code::DOMAIN_NAME)
        .map(|d| String::from_utf8_lossy(d).trim_end_matches('\0').to_owned())
        .filter(|d| !d.is_empty());
    let lease_time =
        option(code::LEASE_TIME).and_then(|v| <[u8; 4]>::try_from(v).ok()).map(u32::from_be_bytes);
    Lease { address: ack.yiaddr, prefix_len, router, dns, domain, server_id, lease_time }
}

// ---------------------------------------------------------------- DHCP client

/// Sends and receives datagrams for one interface.
trait Transport {
    /// Broadcasts a message to the servers.
    fn send(&self, bytes: &[u8]) -> impl Future<Output = io::Result<()>>;
    /// Receives one datagram and its sender.
    fn recv(&self, buf: &mut [u8]) -> impl Future<Output = io::Result<(usize, Ipv4Addr)>>;
}

/// The UDP socket on `0.0.0.0:68`, bound to one device.
struct UdpTransport(tokio::net::UdpSocket);

impl UdpTransport {
    fn bind(iface: &str) -> io::Result<UdpTransport> {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_reuse_address(true)?;
        socket.set_broadcast(true)?;
        socket.bind_device(Some(iface.as_bytes()))?;
        socket.set_nonblocking(true)?;
        socket.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, CLIENT_PORT)).into())?;
        tokio::net::UdpSocket::from_std(socket.into()).map(UdpTransport)
    }
}

impl Transport for UdpTransport {
    async fn send(&self, bytes: &[u8]) -> io::Result<()> {
        self.0.send_to(bytes, SocketAddrV4::new(Ipv4Addr::BROADCAST, SERVER_PORT)).await.map(|_| ())
    }

    async fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, Ipv4Addr)> {
        let (len, from) = self.0.recv_from(buf).await?;
        let from = match from.ip() {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
        };
        Ok((len, from))
    }
}

/// Retransmission schedule.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    /// First wait; doubles after each try.
    first: Duration,
    /// Longest wait.
    max: Duration,
    /// REQUEST transmissions before starting over with a DISCOVER.
    request_tries: u32,
}

/// The client's schedule: 250 ms, 0.5, 1, 2, 4, 8, 8… s. Shorter than RFC
/// 2131's 4 s start: a message the kernel drops while the link comes up
/// costs a quarter second, and a server that answers at all answers fast.
const SCHEDULE: Schedule =
    Schedule { first: Duration::from_millis(250), max: Duration::from_secs(8), request_tries: 3 };

/// Sends `message` until `accept` takes a reply or `deadline` passes,
/// waiting `first`, `2 first`, ... (at most `max`) between sends; at most
/// `tries` sends.
async fn exchange<T: Transport, R>(
    transport: &T,
    message: &[u8],
    deadline: Instant,
    schedule: Schedule,
    tries: u32,
    mut accept: impl FnMut(&[u8], Ipv4Addr) -> Option<R>,
) -> io::Result<Option<R>> {
    let mut wait = schedule.first;
    let mut buf = vec![0u8; 4096];
    for _ in 0..tries {
        if Instant::now() >= deadline {
            break;
        }
        transport.send(message).await?;
        let until = deadline.min(Instant::now() + wait);
        loop {
            match tokio::time::timeout_at(until, transport.recv(&mut buf)).await {
                Err(_elapsed) => break,
                Ok(Err(error)) => {
                    tracing::debug!(%error, "DHCP receive failed");
                    tokio::time::sleep_until(until).await;
                    break;
                }
                Ok(Ok((len, from))) => {
                    if let Some(result) = accept(buf.get(..len).unwrap_or_default(), from) {
                        return Ok(Some(result));
                    }
                }
            }
        }
        wait = (wait * 2).min(schedule.max);
    }
    Ok(None)
}

/// A transaction id. Not a secret, so it must not wait for the kernel's
/// random generator, which at early boot on machines without a hardware
/// seed (no RDRAND, emulated CPUs) is ready only seconds later: std seeds
/// `RandomState` without blocking (`GRND_INSECURE`); the MAC and the clock
/// keep ids apart even if that seed were weak.
fn new_xid(mac: MacAddr) -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write(&mac.0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    hasher.write_u128(now.map(|d| d.as_nanos()).unwrap_or_default());
    (hasher.finish() & 0xffff_ffff) as u32
}

/// The DHCP state machine (SELECTING → REQUESTING → BOUND) over `transport`.
async fn run_client<T: Transport>(
    transport: &T,
    iface: &str,
    mac: MacAddr,
    timeout: Duration,
    schedule: Schedule,
) -> Result<Lease, NetError> {
    let started = Instant::now();
    let deadline = started + timeout;
    let secs = || u16::try_from(started.elapsed().as_secs()).unwrap_or(u16::MAX);
    let io = |what: &str| io_error(format!("DHCP on {iface}: {what}"));
    while Instant::now() < deadline {
        let xid = new_xid(mac);
        let discover = build_discover(xid, mac, secs()).encode();
        let offer = exchange(transport, &discover, deadline, schedule, u32::MAX, |bytes, from| {
            match classify(bytes, from, xid, mac) {
                Some(Reply::Offer { address, server_id, packet }) => {
                    Some((address, server_id, packet))
                }
                _ => None,
            }
        })
        .await
        .map_err(io("send DISCOVER"))?;
        let Some((offered, server_id, offer)) = offer else { break };
        tracing::debug!(%iface, %offered, %server_id, "DHCP offer");
        let request = build_request(xid, mac, secs(), offered, server_id).encode();
        let answer =
            exchange(transport, &request, deadline, schedule, schedule.request_tries, |b, from| {
                match classify(b, from, xid, mac) {
                    Some(Reply::Ack { server_id: s, packet }) if s == server_id => Some(Ok(packet)),
                    Some(Reply::Nak { server_id: s, message }) if s == server_id => {
                        Some(Err(message))
                    }
                    _ => None,
                }
            })
            .await
            .map_err(io("send REQUEST"))?;
        match answer {
            Some(Ok(ack)) => return Ok(lease_from(&ack, &offer, server_id)),
            Some(Err(message)) => {
                tracing::info!(%iface, %server_id, %message, "DHCP NAK, starting over");
                // Do not hammer a server that refuses at once.
                tokio::time::sleep_until(deadline.min(Instant::now() + schedule.first / 4)).await;
            }
            None => tracing::info!(%iface, %server_id, "no answer to REQUEST, starting over"),
        }
    }
    Err(NetError::Timeout { iface: iface.to_owned(), after: timeout })
}

/// Gets a lease for interface `iface` (whose MAC is `mac`) within
/// `timeout`. The interface must be up; nothing is configured.
pub async fn dhcp_discover(
    iface: &str,
    mac: MacAddr,
    timeout: Duration,
) -> Result<Lease, NetError> {
    let transport =
        UdpTransport::bind(iface).map_err(io_error(format!("DHCP socket on {iface}")))?;
    run_client(&transport, iface, mac, timeout, SCHEDULE).await
}

// ---------------------------------------------------------------- bring-up

/// Waits up to `limit` for `name` to have carrier (or `operstate` up, for
/// drivers without carrier reporting); returns whether it came.
///
/// DHCP starts at carrier, without waiting for `operstate`: the kernel's
/// link-event handling is rate-limited to one run a second, but a device
/// whose carrier is already on when it is opened sends at once, and one
/// whose carrier comes later gets an urgent (immediate) event. A message
/// lost in between costs one short first retransmission ([`SCHEDULE`]).
pub async fn wait_for_carrier(sys_root: &Path, name: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if has_carrier(sys_root, name) || link_ready(sys_root, name) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The interfaces worth trying: physical ones, or every listed one when
/// there is none (virtual machines with veth or similar).
fn candidates(nics: Vec<Nic>) -> Vec<Nic> {
    if nics.iter().any(|n| n.is_physical) {
        nics.into_iter().filter(|n| n.is_physical).collect()
    } else {
        nics
    }
}

/// Lists interfaces, waiting (≤ [`CARRIER_WAIT`]) for the preferred one,
/// or any one, to appear: drivers may still be registering them.
async fn wait_for_interfaces(sys_root: &Path, preferred: Option<MacAddr>) -> Vec<Nic> {
    let deadline = Instant::now() + CARRIER_WAIT;
    loop {
        let nics = list_interfaces(sys_root);
        let found = match preferred {
            Some(mac) => nics.iter().any(|n| n.mac == mac),
            None => !nics.is_empty(),
        };
        if found || Instant::now() >= deadline {
            return nics;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn lease_one(sys_root: &Path, nic: Nic, deadline: Instant) -> (Nic, Result<Lease, NetError>) {
    let wait = CARRIER_WAIT.min(deadline.saturating_duration_since(Instant::now()));
    let started = Instant::now();
    if !wait_for_carrier(sys_root, &nic.name, wait).await {
        let error = NetError::Timeout { iface: nic.name.clone(), after: wait };
        return (nic, Err(error));
    }
    tracing::debug!(iface = %nic.name, waited = ?started.elapsed(), "link ready, DHCP starts");
    let remaining = deadline.saturating_duration_since(Instant::now());
    let result = dhcp_discover(&nic.name, nic.mac, remaining).await;
    (Nic { has_carrier: true, ..nic }, result)
}

/// Brings the network up: sets `lo` and every candidate NIC up, runs DHCP
/// on the NIC with `preferred_mac` (BOOTIF) first, else — or if that one
/// gets no lease — on all NICs with carrier at once (those without carrier
/// after [`CARRIER_WAIT`] are skipped; after the first lease the others get
/// [`EXTRA_LEASE_WAIT`] more). Configures each leased interface (address and
/// default route) and prints a `DHCP-LEASE <iface> <addr>` milestone.
/// Does not write `/etc/resolv.conf` (see [`write_resolv_conf`]).
pub async fn bring_up_network(
    sys_root: &Path,
    preferred_mac: Option<MacAddr>,
    timeout: Duration,
) -> Result<Vec<(Nic, Lease)>, NetError> {
    let deadline = Instant::now() + timeout;
    let nics = candidates(wait_for_interfaces(sys_root, preferred_mac).await);
    let preferred = preferred_mac.and_then(|mac| nics.iter().find(|n| n.mac == mac).cloned());
    // The preferred NIC is used even when it is not physical.
    let nics: Vec<Nic> = match &preferred {
        Some(p) if !nics.iter().any(|n| n.name == p.name) => {
            nics.into_iter().chain([p.clone()]).collect()
        }
        _ => nics,
    };
    if nics.is_empty() {
        return Err(NetError::NoInterfaces);
    }
    let netlink = Netlink::connect()?;
    if let Err(error) = netlink.set_link_up("lo").await {
        tracing::warn!(%error, "loopback not up");
    }
    for nic in &nics {
        if let Err(error) = netlink.set_link_up(&nic.name).await {
            tracing::warn!(iface = %nic.name, %error, "link not up");
        }
    }
    let sys_root: PathBuf = sys_root.to_path_buf();
    let mut leased = Vec::new();
    let mut failures = Vec::new();
    if let Some(nic) = preferred.clone() {
        match lease_one(&sys_root, nic, deadline).await {
            (nic, Ok(lease)) => leased.push((nic, lease)),
            (nic, Err(error)) => {
                tracing::warn!(iface = %nic.name, %error, "no lease on the boot interface");
                failures.push(format!("{}: {error}", nic.name));
            }
        }
    }
    if leased.is_empty() {
        let others =
            nics.into_iter().filter(|n| Some(&n.name) != preferred.as_ref().map(|p| &p.name));
        let mut pending: FuturesUnordered<_> =
            others.map(|nic| lease_one(&sys_root, nic, deadline)).collect();
        let mut grace: Option<Instant> = None;
        loop {
            let next = async {
                match grace {
                    Some(at) => tokio::time::timeout_at(at, pending.next()).await.ok().flatten(),
                    None => pending.next().await,
                }
            };
            match next.await {
                None => break,
                Some((nic, Ok(lease))) => {
                    grace.get_or_insert_with(|| Instant::now() + EXTRA_LEASE_WAIT);
                    leased.push((nic, lease));
                }
                Some((nic, Err(error))) => failures.push(format!("{}: {error}", nic.name)),
            }
        }
    }
    if leased.is_empty() {
        return Err(NetError::NoLease(failures.join("; ")));
    }
    let mut configured = Vec::new();
    for (nic, lease) in leased {
        match netlink.configure(&nic.name, lease.address, lease.prefix_len, lease.router).await {
            Ok(()) => {
                crate::init::milestone(
                    crate::init::DHCP_LEASE,
                    &format!("{} {}/{}", nic.name, lease.address, lease.prefix_len),
                );
                configured.push((nic, lease));
            }
            Err(error) => failures.push(format!("{}: {error}", nic.name)),
        }
    }
    if configured.is_empty() {
        return Err(NetError::NoLease(failures.join("; ")));
    }
    Ok(configured)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 5, 1);

    #[test]
    fn sysfs_listing() {
        let root = tempfile::tempdir().unwrap();
        let net = root.path().join("class/net");
        let add = |name: &str, mac: &str, carrier: Option<&str>, kind: &str, physical: bool| {
            let dir = net.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("address"), format!("{mac}\n")).unwrap();
            std::fs::write(dir.join("type"), format!("{kind}\n")).unwrap();
            if let Some(c) = carrier {
                std::fs::write(dir.join("carrier"), format!("{c}\n")).unwrap();
            }
            if physical {
                std::os::unix::fs::symlink("../../../0000:00:03.0", dir.join("device")).unwrap();
            }
        };
        add("lo", "00:00:00:00:00:00", Some("1"), "772", false);
        add("eth1", "52:54:00:00:00:02", None, "1", true);
        add("eth0", "52:54:00:00:00:01", Some("1"), "1", true);
        add("veth0", "02:00:00:00:00:03", Some("0"), "1", false);
        add("tunl0", "0.0.0.0", None, "768", false);
        add("ib0", "80:00:00:48:fe:80:00:00:00:00:00:00:00:00:00:00:00:00:00:01", None, "1", true);
        let nics = list_interfaces(root.path());
        let names: Vec<(&str, bool, bool)> =
            nics.iter().map(|n| (n.name.as_str(), n.has_carrier, n.is_physical)).collect();
        assert_eq!(names, [("eth0", true, true), ("eth1", false, true), ("veth0", false, false)]);
        assert_eq!(nics[0].mac.to_string(), "52:54:00:00:00:01");
        assert_eq!(
            candidates(nics.clone()).iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
            ["eth0", "eth1"]
        );
        let virtual_only: Vec<Nic> = nics.into_iter().filter(|n| !n.is_physical).collect();
        assert_eq!(candidates(virtual_only).len(), 1);
        assert!(list_interfaces(&root.path().join("absent")).is_empty());
        // No operstate file: carrier decides; "down" wins over carrier.
        assert!(link_ready(root.path(), "eth0") && !link_ready(root.path(), "eth1"));
        std::fs::write(net.join("eth0/operstate"), "down\n").unwrap();
        assert!(!link_ready(root.path(), "eth0"));
        std::fs::write(net.join("eth1/operstate"), "up\n").unwrap();
        assert!(link_ready(root.path(), "eth1"));
        let json = serde_json::to_value(list_interfaces(root.path())).unwrap();
        assert_eq!(json[0]["mac"], "52:54:00:00:00:01");
    }

    #[tokio::test]
    async fn waits_for_carrier_or_operstate() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("class/net/eth0");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("operstate"), "down\n").unwrap();
        let started = Instant::now();
        assert!(!wait_for_carrier(root.path(), "eth0", Duration::from_millis(50)).await);
        assert!(started.elapsed() >= Duration::from_millis(50));
        std::fs::write(dir.join("operstate"), "up\n").unwrap();
        assert!(wait_for_carrier(root.path(), "eth0", Duration::ZERO).await);
        // Carrier while operstate lags: ready at once.
        std::fs::write(dir.join("operstate"), "down\n").unwrap();
        std::fs::write(dir.join("carrier"), "1\n").unwrap();
        assert!(wait_for_carrier(root.path(), "eth0", Duration::ZERO).await);
    }

    #[test]
    fn xids_differ() {
        let ids: std::collections::HashSet<u32> = (0..64).map(|_| new_xid(MAC)).collect();
        assert!(ids.len() > 60, "{ids:?}");
    }

    #[test]
    fn client_messages() {
        let discover = Packet::decode(&build_discover(7, MAC, 3).encode()).unwrap();
        assert_eq!(discover.message_type(), Some(MessageType::Discover));
        assert!(discover.broadcast());
        assert_eq!((discover.xid, discover.secs, discover.mac()), (7, 3, Some(MAC)));
        assert_eq!(
            discover.option(code::CLIENT_ID),
            Some(&[1, 0x52, 0x54, 0, 0x12, 0x34, 0x56][..])
        );
        assert_eq!(discover.option(code::VENDOR_CLASS), Some(&b"ferric-agent"[..]));
        assert_eq!(
            discover.option(code::PARAMETER_REQUEST_LIST),
            Some(&PARAMETER_REQUEST_LIST[..])
        );
        assert_eq!(discover.option(code::REQUESTED_IP), None);
        let offered = Ipv4Addr::new(198, 18, 5, 100);
        let request = Packet::decode(&build_request(7, MAC, 4, offered, SERVER).encode()).unwrap();
        assert_eq!(request.message_type(), Some(MessageType::Request));
        assert_eq!(request.option_ipv4(code::REQUESTED_IP), Some(offered));
        assert_eq!(request.option_ipv4(code::SERVER_ID), Some(SERVER));
        assert!(request.broadcast() && request.ciaddr.is_unspecified());
    }

    #[test]
    fn masks() {
        assert_eq!(prefix_from_mask(Ipv4Addr::new(255, 255, 255, 0)), Some(24));
        assert_eq!(prefix_from_mask(Ipv4Addr::new(255, 255, 254, 0)), Some(23));
        assert_eq!(prefix_from_mask(Ipv4Addr::new(255, 255, 255, 255)), Some(32));
        assert_eq!(prefix_from_mask(Ipv4Addr::UNSPECIFIED), Some(0));
        assert_eq!(prefix_from_mask(Ipv4Addr::new(255, 0, 255, 0)), None);
        assert_eq!(classful_prefix(Ipv4Addr::new(10, 1, 2, 3)), 8);
        assert_eq!(classful_prefix(Ipv4Addr::new(172, 16, 0, 1)), 16);
        assert_eq!(classful_prefix(Ipv4Addr::new(198, 18, 5, 1)), 24);
    }

    /// A reply to `request` as a server at `SERVER` would send it.
    fn reply(request: &Packet, kind: MessageType, yiaddr: [u8; 4]) -> Packet {
        let mut p = Packet {
            op: BOOTREPLY,
            xid: request.xid,
            flags: request.flags,
            yiaddr: yiaddr.into(),
            chaddr: request.chaddr,
            ..Packet::default()
        };
        p.set_option(code::MESSAGE_TYPE, [u8::from(kind)]);
        p.set_option(code::SERVER_ID, SERVER.octets());
        p
    }

    /// The scripted server: the n-th message sent → replies and their senders.
    type Script = Box<dyn FnMut(usize, &Packet) -> Vec<(Ipv4Addr, Packet)> + Send>;

    /// A scripted server: each sent message is answered by `answer`.
    struct Fake {
        answer: Mutex<Script>,
        sent: Mutex<Vec<(Duration, Packet)>>,
        inbox: Mutex<VecDeque<(Ipv4Addr, Vec<u8>)>>,
        notify: tokio::sync::Notify,
        started: Instant,
    }

    impl Fake {
        fn new(
            answer: impl FnMut(usize, &Packet) -> Vec<(Ipv4Addr, Packet)> + Send + 'static,
        ) -> Fake {
            Fake {
                answer: Mutex::new(Box::new(answer)),
                sent: Mutex::new(Vec::new()),
                inbox: Mutex::new(VecDeque::new()),
                notify: tokio::sync::Notify::new(),
                started: Instant::now(),
            }
        }

        fn sent(&self) -> Vec<(Duration, MessageType, u32)> {
            let sent = self.sent.lock().unwrap();
            sent.iter().map(|(at, p)| (*at, p.message_type().unwrap(), p.xid)).collect()
        }
    }

    impl Transport for Fake {
        async fn send(&self, bytes: &[u8]) -> io::Result<()> {
            let packet = Packet::decode(bytes).unwrap();
            let n = {
                let mut sent = self.sent.lock().unwrap();
                sent.push((self.started.elapsed(), packet.clone()));
                sent.len() - 1
            };
            let replies = (self.answer.lock().unwrap())(n, &packet);
            let mut inbox = self.inbox.lock().unwrap();
            inbox.extend(replies.into_iter().map(|(from, p)| (from, p.encode())));
            self.notify.notify_one();
            Ok(())
        }

        async fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, Ipv4Addr)> {
            loop {
                if let Some((from, bytes)) = self.inbox.lock().unwrap().pop_front() {
                    buf[..bytes.len()].copy_from_slice(&bytes);
                    return Ok((bytes.len(), from));
                }
                self.notify.notified().await;
            }
        }
    }

    const FAST: Schedule = Schedule {
        first: Duration::from_millis(40),
        max: Duration::from_millis(160),
        request_tries: 3,
    };

    fn full_ack(request: &Packet) -> Packet {
        let mut ack = reply(request, MessageType::Ack, [198, 18, 5, 100]);
        ack.set_option(code::SUBNET_MASK, [255, 255, 255, 0]);
        ack.set_option(code::ROUTER, [0, 0, 0, 0, 198, 18, 5, 1]);
        ack.set_option(code::DNS, [198, 18, 5, 53, 198, 18, 5, 54]);
        ack.set_option(code::DOMAIN_NAME, "lab.test");
        ack.set_option(code::LEASE_TIME, 3600u32.to_be_bytes());
        ack
    }

    #[tokio::test]
    async fn happy_path_ignores_strangers() {
        let fake = Fake::new(|_, request| {
            let mut wrong_xid = reply(request, MessageType::Offer, [198, 18, 5, 200]);
            wrong_xid.xid ^= 1;
            let mut wrong_mac = reply(request, MessageType::Offer, [198, 18, 5, 201]);
            wrong_mac.chaddr[5] ^= 1;
            let mut request_echo = request.clone();
            request_echo.yiaddr = Ipv4Addr::new(198, 18, 5, 202);
            match request.message_type() {
                Some(MessageType::Discover) => vec![
                    (SERVER, wrong_xid),
                    (SERVER, wrong_mac),
                    (SERVER, request_echo),
                    (SERVER, reply(request, MessageType::Offer, [198, 18, 5, 100])),
                    // A second, later offer is not taken.
                    (
                        Ipv4Addr::new(198, 18, 5, 2),
                        reply(request, MessageType::Offer, [198, 18, 5, 9]),
                    ),
                ],
                _ => {
                    // An ACK from another server is ignored.
                    let mut other = full_ack(request);
                    other.set_option(code::SERVER_ID, [198, 18, 5, 2]);
                    vec![(SERVER, other), (SERVER, full_ack(request))]
                }
            }
        });
        let lease = run_client(&fake, "eth0", MAC, Duration::from_secs(5), FAST).await.unwrap();
        assert_eq!(
            lease,
            Lease {
                address: Ipv4Addr::new(198, 18, 5, 100),
                prefix_len: 24,
                router: Some(SERVER),
                dns: vec![Ipv4Addr::new(198, 18, 5, 53), Ipv4Addr::new(198, 18, 5, 54)],
                domain: Some("lab.test".into()),
                server_id: SERVER,
                lease_time: Some(3600),
            }
        );
        let sent = fake.sent();
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert_eq!((sent[0].1, sent[1].1), (MessageType::Discover, MessageType::Request));
        assert_eq!(sent[0].2, sent[1].2, "REQUEST keeps the DISCOVER's xid");
        let request = &fake.sent.lock().unwrap()[1].1;
        assert_eq!(request.option_ipv4(code::REQUESTED_IP), Some(Ipv4Addr::new(198, 18, 5, 100)));
        let conf = resolv_conf(&[lease]).unwrap();
        assert!(conf.contains("search lab.test\nnameserver 198.18.5.53\nnameserver 198.18.5.54\n"));
    }

    #[tokio::test]
    async fn retransmits_with_backoff_and_restarts_after_nak() {
        // Silent for two DISCOVERs, NAKs the first REQUEST, then answers.
        let fake = Fake::new(|n, request| match (n, request.message_type()) {
            (0 | 1, _) => vec![],
            (_, Some(MessageType::Discover)) => {
                let mut offer = reply(request, MessageType::Offer, [198, 18, 5, 100]);
                // No subnet mask in the ACK: taken from the OFFER.
                offer.set_option(code::SUBNET_MASK, [255, 255, 0, 0]);
                vec![(SERVER, offer)]
            }
            (3, _) => vec![(SERVER, reply(request, MessageType::Nak, [0; 4]))],
            _ => vec![(SERVER, reply(request, MessageType::Ack, [198, 18, 5, 100]))],
        });
        let lease = run_client(&fake, "eth0", MAC, Duration::from_secs(5), FAST).await.unwrap();
        assert_eq!((lease.prefix_len, lease.router, lease.lease_time), (16, None, None));
        let sent = fake.sent();
        let kinds: Vec<MessageType> = sent.iter().map(|s| s.1).collect();
        use MessageType::{Discover, Request};
        assert_eq!(kinds, [Discover, Discover, Discover, Request, Discover, Request]);
        // 40 ms then 80 ms between the first DISCOVERs.
        let gap1 = sent[1].0 - sent[0].0;
        let gap2 = sent[2].0 - sent[1].0;
        assert!(gap1 >= Duration::from_millis(40) && gap2 >= Duration::from_millis(80), "{sent:?}");
        assert!(gap2 > gap1 + Duration::from_millis(20), "{sent:?}");
        // A new transaction after the NAK.
        assert_ne!(sent[3].2, sent[4].2);
    }

    #[tokio::test]
    async fn unanswered_requests_restart_and_silence_times_out() {
        let fake = Fake::new(|_, request| match request.message_type() {
            Some(MessageType::Discover) => {
                vec![(SERVER, reply(request, MessageType::Offer, [198, 18, 5, 100]))]
            }
            _ => vec![],
        });
        let started = Instant::now();
        let error = run_client(&fake, "eth9", MAC, Duration::from_millis(700), FAST).await;
        assert!(matches!(error, Err(NetError::Timeout { ref iface, .. }) if iface == "eth9"));
        assert!(started.elapsed() < Duration::from_millis(900));
        let kinds: Vec<MessageType> = fake.sent().iter().map(|s| s.1).collect();
        // DISCOVER, three REQUESTs (40 + 80 + 160 ms), DISCOVER again.
        assert_eq!(
            &kinds[..5],
            [
                MessageType::Discover,
                MessageType::Request,
                MessageType::Request,
                MessageType::Request,
                MessageType::Discover
            ]
        );
    }

    #[test]
    fn resolv_conf_limits_and_absence() {
        let lease = |dns: &[[u8; 4]]| Lease {
            address: Ipv4Addr::new(198, 18, 5, 100),
            prefix_len: 24,
            router: None,
            dns: dns.iter().map(|&a| a.into()).collect(),
            domain: None,
            server_id: SERVER,
            lease_time: None,
        };
        assert_eq!(resolv_conf(&[lease(&[])]), None);
        let conf = resolv_conf(&[
            lease(&[[1, 1, 1, 1], [2, 2, 2, 2]]),
            lease(&[[2, 2, 2, 2], [3, 3, 3, 3], [4, 4, 4, 4]]),
        ])
        .unwrap();
        assert_eq!(conf.matches("nameserver").count(), 3);
        assert!(!conf.contains("4.4.4.4") && !conf.contains("search"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/resolv.conf");
        assert!(write_resolv_conf(&path, &[lease(&[[1, 1, 1, 1]])]).unwrap());
        assert!(std::fs::read_to_string(&path).unwrap().contains("nameserver 1.1.1.1"));
        assert!(!write_resolv_conf(&dir.path().join("other"), &[]).unwrap());
    }

    #[test]
    fn classify_rejects_garbage() {
        assert_eq!(classify(b"short", SERVER, 1, MAC), None);
        let request = build_discover(1, MAC, 0);
        // A request is not a reply.
        assert_eq!(classify(&request.encode(), SERVER, 1, MAC), None);
        let offer = reply(&request, MessageType::Offer, [0, 0, 0, 0]);
        assert_eq!(classify(&offer.encode(), SERVER, 1, MAC), None, "offer without address");
        let mut offer = reply(&request, MessageType::Offer, [198, 18, 5, 7]);
        offer.options.retain(|(c, _)| *c != code::SERVER_ID);
        match classify(&offer.encode(), Ipv4Addr::new(198, 18, 5, 3), 1, MAC) {
            Some(Reply::Offer { server_id, .. }) => {
                assert_eq!(server_id, Ipv4Addr::new(198, 18, 5, 3))
            }
            other => panic!("{other:?}"),
        }
    }
}

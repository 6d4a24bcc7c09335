//! The protocol core: one request in, at most one reply out, no I/O.
//!
//! [`handle`] implements RFC 2131 server behaviour for known clients
//! (DISCOVER→OFFER, REQUEST→ACK/NAK, RELEASE, DECLINE, INFORM) in
//! [`Mode::Authoritative`], and the PXE specification's proxyDHCP in
//! [`Mode::Proxy`] (OFFER without an address on port 67, ACK on port 4011).
//! Relayed requests (`giaddr` set) choose their network by `giaddr`, are
//! answered to the relay on port 67, and have option 82 echoed and recorded
//! in the lease. Unknown MACs, foreign server identifiers, client-only
//! message types and unknown ones get silence.

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::backend::{Backend, Lease, LeaseState, LeaseStore, RelayInfo, Reservation};
use crate::boot::{self, BootChoice, ClientKind};
use crate::config::{Config, Mode, Network};
use crate::packet::{code, MacAddr, MessageType, Packet, BOOTREPLY, BOOTREQUEST, FLAG_BROADCAST};

/// DHCP server port.
pub const SERVER_PORT: u16 = 67;
/// DHCP client port.
pub const CLIENT_PORT: u16 = 68;
/// PXE proxyDHCP (boot server) port.
pub const PROXY_PORT: u16 = 4011;

/// PXE vendor options (option 43): discovery control (sub-option 6) = 8,
/// "use the boot file name in this offer, skip boot server discovery".
const PXE_DISCOVERY_CONTROL: [u8; 4] = [6, 1, 8, 255];

/// Which socket a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// Port 67.
    Dhcp,
    /// Port 4011 (proxyDHCP requests).
    Proxy,
}

/// Per-request context for [`handle`].
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// Server configuration.
    pub config: &'a Config,
    /// Lease bookkeeping.
    pub leases: &'a dyn LeaseStore,
    /// Now, in seconds since the Unix epoch.
    pub now: u64,
    /// The request's source address.
    pub source: SocketAddrV4,
    /// The socket it arrived on.
    pub port: Port,
}

/// Where a reply goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// To 255.255.255.255 on this port, out of the served interface.
    Broadcast(u16),
    /// To one address.
    Unicast(SocketAddrV4),
}

/// A reply and its destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The message.
    pub packet: Packet,
    /// Where to send it.
    pub destination: Destination,
}

/// Answers one request, or `None` for silence.
pub fn handle(request: &Packet, ctx: &Context, backend: &dyn Backend) -> Option<Reply> {
    if request.op != BOOTREQUEST {
        return None;
    }
    let mac = request.mac()?;
    let kind = request.message_type()?;
    if matches!(
        kind,
        MessageType::Other(_) | MessageType::Offer | MessageType::Ack | MessageType::Nak
    ) {
        return None;
    }
    let Some(reservation) = backend.lookup(mac) else {
        tracing::debug!(%mac, ?kind, "DHCP request from unknown MAC ignored");
        return None;
    };
    match (ctx.port, ctx.config.mode) {
        (Port::Proxy, _) => proxy_ack(request, ctx, mac, &reservation, kind),
        (Port::Dhcp, Mode::Proxy) => proxy_offer(request, ctx, mac, &reservation, kind),
        (Port::Dhcp, Mode::Authoritative) => match kind {
            MessageType::Discover => discover(request, ctx, mac, &reservation),
            MessageType::Request => request_(request, ctx, mac, &reservation),
            MessageType::Release => {
                if foreign_server(request, ctx) {
                    return None;
                }
                ctx.leases.release(mac, request.ciaddr);
                tracing::info!(%mac, ip = %request.ciaddr, "DHCP lease released");
                None
            }
            MessageType::Decline => {
                if foreign_server(request, ctx) {
                    return None;
                }
                let ip = request.option_ipv4(code::REQUESTED_IP)?;
                ctx.leases.decline(mac, ip, ctx.now + u64::from(ctx.config.decline_hold));
                tracing::warn!(%mac, %ip, "DHCP address declined by client");
                None
            }
            MessageType::Inform => inform(request, ctx, mac, &reservation),
            _ => None,
        },
    }
}

/// The client named another server (option 54).
fn foreign_server(request: &Packet, ctx: &Context) -> bool {
    request.option_ipv4(code::SERVER_ID).is_some_and(|id| id != ctx.config.server_ip)
}

/// A reply skeleton: header copied from the request, message type and
/// server identifier set.
fn base_reply(request: &Packet, kind: MessageType, ctx: &Context) -> Packet {
    let mut reply = Packet {
        op: BOOTREPLY,
        htype: request.htype,
        hlen: request.hlen,
        xid: request.xid,
        flags: request.flags,
        giaddr: request.giaddr,
        chaddr: request.chaddr,
        ..Packet::default()
    };
    reply.set_option(code::MESSAGE_TYPE, [u8::from(kind)]);
    reply.set_option(code::SERVER_ID, ctx.config.server_ip.octets());
    reply
}

/// RFC 2131 §4.1: relay, else broadcast for NAK, else ciaddr, else the
/// broadcast flag; a unicast to an unconfigured client would need an ARP
/// entry injected, so those are broadcast too (clients accept both).
fn destination(request: &Packet, nak: bool) -> Destination {
    if !request.giaddr.is_unspecified() {
        Destination::Unicast(SocketAddrV4::new(request.giaddr, SERVER_PORT))
    } else if nak || request.ciaddr.is_unspecified() {
        Destination::Broadcast(CLIENT_PORT)
    } else {
        Destination::Unicast(SocketAddrV4::new(request.ciaddr, CLIENT_PORT))
    }
}

fn relay_info(request: &Packet) -> Option<RelayInfo> {
    if request.giaddr.is_unspecified() {
        return None;
    }
    let mut info = RelayInfo { giaddr: request.giaddr, circuit_id: None, remote_id: None };
    let mut rest = request.option(code::RELAY_AGENT_INFO).unwrap_or_default();
    while let [sub, len, tail @ ..] = rest {
        let Some(value) = tail.get(..usize::from(*len)) else { break };
        match sub {
            1 => info.circuit_id = Some(value.to_vec()),
            2 => info.remote_id = Some(value.to_vec()),
            _ => {}
        }
        rest = &tail[usize::from(*len)..];
    }
    Some(info)
}

/// Network options (mask, routers, DNS, domain) and the host name.
fn add_network_options(reply: &mut Packet, network: &Network, reservation: &Reservation) {
    reply.set_option(code::SUBNET_MASK, network.mask().octets());
    if !network.routers.is_empty() {
        reply.set_option(
            code::ROUTER,
            network.routers.iter().flat_map(|r| r.octets()).collect::<Vec<_>>(),
        );
    }
    if !network.dns_servers.is_empty() {
        reply.set_option(
            code::DNS,
            network.dns_servers.iter().flat_map(|r| r.octets()).collect::<Vec<_>>(),
        );
    }
    if let Some(domain) = &network.domain_name {
        reply.set_option(code::DOMAIN_NAME, domain.as_bytes());
    }
    if let Some(hostname) = &reservation.hostname {
        reply.set_option(code::HOSTNAME, hostname.as_bytes());
    }
}

fn add_lease_times(reply: &mut Packet, lease_time: u32) {
    reply.set_option(code::LEASE_TIME, lease_time.to_be_bytes());
    reply.set_option(code::RENEWAL_TIME, (lease_time / 2).to_be_bytes());
    reply.set_option(code::REBINDING_TIME, (lease_time / 8 * 7).to_be_bytes());
}

/// `siaddr`/`file` and options 66, 67 (and 60 when `echo_vendor`).
fn add_boot(reply: &mut Packet, request: &Packet, choice: &BootChoice, echo_vendor: bool) {
    reply.file = choice.file.as_bytes().to_vec();
    if let Some(tftp) = choice.tftp_server {
        reply.siaddr = tftp;
        reply.set_option(code::TFTP_SERVER, tftp.to_string().as_bytes());
    }
    reply.set_option(code::BOOTFILE, choice.file.as_bytes());
    if let Some(vendor) = choice.vendor_class.filter(|_| echo_vendor) {
        reply.set_option(code::VENDOR_CLASS, vendor.as_bytes());
    }
    if let Some(uuid) = request.option(code::CLIENT_UUID) {
        reply.set_option(code::CLIENT_UUID, uuid);
    }
    if boot::classify(request) == ClientKind::Ipxe {
        // This server answers authoritatively (add_boot is not used for
        // proxyDHCP): tell iPXE not to wait for proxyDHCP offers, which it
        // otherwise does for ~3 s on every boot.
        reply.set_option(code::IPXE_ENCAP, IPXE_NO_PXEDHCP);
    }
}

/// iPXE's encapsulated option 175: suboption 176 (`no-pxedhcp`) = 1.
const IPXE_NO_PXEDHCP: [u8; 3] = [176, 1, 1];

/// Echoes option 82 to the relay (RFC 3046 §2.2), last.
fn finish(mut reply: Packet, request: &Packet, nak: bool) -> Reply {
    if !request.giaddr.is_unspecified() {
        if let Some(info) = request.option(code::RELAY_AGENT_INFO) {
            reply.set_option(code::RELAY_AGENT_INFO, info);
        }
        if nak {
            reply.flags |= FLAG_BROADCAST;
        }
    }
    Reply { destination: destination(request, nak), packet: reply }
}

fn lease_for(mac: MacAddr, ip: Ipv4Addr, request: &Packet, reservation: &Reservation) -> Lease {
    Lease {
        mac,
        ip,
        expires: 0,
        state: LeaseState::Offered,
        hostname: reservation.hostname.clone(),
        relay: relay_info(request),
    }
}

/// Whether `ip` may be leased to this client on `network`.
fn allowed(
    ip: Ipv4Addr,
    network: &Network,
    reservation: &Reservation,
    existing: Option<&Lease>,
) -> bool {
    if !network.assignable(ip) {
        return false;
    }
    match reservation.ip {
        Some(fixed) => ip == fixed,
        None => {
            network.ranges.iter().any(|r| r.contains(ip)) || existing.is_some_and(|l| l.ip == ip)
        }
    }
}

/// Picks and holds an address for an OFFER.
fn offer_address(
    request: &Packet,
    ctx: &Context,
    mac: MacAddr,
    reservation: &Reservation,
    network: &Network,
) -> Option<Ipv4Addr> {
    let existing = ctx.leases.find(mac);
    let hold = ctx.now + u64::from(ctx.config.offer_hold);
    let template = lease_for(mac, Ipv4Addr::UNSPECIFIED, request, reservation);
    // An OFFER must not shorten or demote a lease the client already holds.
    let try_claim = |ip: Ipv4Addr| {
        let mut lease = Lease { ip, expires: hold, ..template.clone() };
        if let Some(old) = existing.as_ref().filter(|l| l.ip == ip && l.expires > ctx.now) {
            lease.expires = old.expires.max(hold);
            lease.state = old.state;
        }
        ctx.leases.claim(lease, ctx.now).map(|()| ip)
    };
    if let Some(fixed) = reservation.ip {
        if !network.assignable(fixed) {
            tracing::warn!(%mac, %fixed, "reserved address is not on the client's network");
            return None;
        }
        return try_claim(fixed)
            .map_err(|error| tracing::warn!(%mac, %fixed, %error, "reserved address unavailable"))
            .ok();
    }
    let candidates = [existing.as_ref().map(|l| l.ip), request.option_ipv4(code::REQUESTED_IP)];
    for ip in candidates.into_iter().flatten() {
        if network.ranges.iter().any(|r| r.contains(ip))
            && network.assignable(ip)
            && try_claim(ip).is_ok()
        {
            return Some(ip);
        }
    }
    let ip = ctx.leases.allocate(&network.ranges, Lease { expires: hold, ..template }, ctx.now);
    if ip.is_none() {
        tracing::warn!(%mac, subnet = %network.subnet, "no free address in the network's ranges");
    }
    ip
}

fn discover(
    request: &Packet,
    ctx: &Context,
    mac: MacAddr,
    reservation: &Reservation,
) -> Option<Reply> {
    let Some(network) = ctx.config.network_for(request.giaddr) else {
        tracing::debug!(%mac, giaddr = %request.giaddr, "no configured network for the client");
        return None;
    };
    let ip = offer_address(request, ctx, mac, reservation, network)?;
    let mut reply = base_reply(request, MessageType::Offer, ctx);
    reply.yiaddr = ip;
    add_lease_times(&mut reply, network.lease_time);
    add_network_options(&mut reply, network, reservation);
    if let Some(choice) = boot::choose(request, ctx.config, mac, reservation) {
        add_boot(&mut reply, request, &choice, choice.vendor_class == Some("HTTPClient"));
    }
    tracing::debug!(%mac, %ip, "DHCPOFFER");
    Some(finish(reply, request, false))
}

fn nak(request: &Packet, ctx: &Context, mac: MacAddr, ip: Ipv4Addr, why: &str) -> Option<Reply> {
    tracing::info!(%mac, %ip, why, "DHCPNAK");
    let mut reply = base_reply(request, MessageType::Nak, ctx);
    reply.set_option(code::MESSAGE, why.as_bytes());
    Some(finish(reply, request, true))
}

fn request_(
    request: &Packet,
    ctx: &Context,
    mac: MacAddr,
    reservation: &Reservation,
) -> Option<Reply> {
    let server_id = request.option_ipv4(code::SERVER_ID);
    if server_id.is_some_and(|id| id != ctx.config.server_ip) {
        return None; // The client chose another server (SELECTING).
    }
    let requested = request.option_ipv4(code::REQUESTED_IP);
    let init_reboot = server_id.is_none() && requested.is_some();
    let ip = match requested {
        Some(ip) => ip,
        None if !request.ciaddr.is_unspecified() => request.ciaddr, // RENEWING/REBINDING
        None => return None,
    };
    let network = ctx.config.network_for(request.giaddr)?;
    let existing = ctx.leases.find(mac);
    if !allowed(ip, network, reservation, existing.as_ref()) {
        return nak(request, ctx, mac, ip, "address not valid for this client");
    }
    if init_reboot && reservation.ip.is_none() && existing.is_none() {
        return None; // RFC 2131 §4.3.2: no record of this client, stay silent.
    }
    if init_reboot && existing.as_ref().is_some_and(|l| l.ip != ip) && reservation.ip.is_none() {
        return nak(request, ctx, mac, ip, "address not leased to this client");
    }
    let lease = Lease {
        expires: ctx.now + u64::from(network.lease_time),
        state: LeaseState::Bound,
        ..lease_for(mac, ip, request, reservation)
    };
    if let Err(error) = ctx.leases.claim(lease, ctx.now) {
        return nak(request, ctx, mac, ip, &error.to_string());
    }
    let mut reply = base_reply(request, MessageType::Ack, ctx);
    reply.ciaddr = request.ciaddr;
    reply.yiaddr = ip;
    add_lease_times(&mut reply, network.lease_time);
    add_network_options(&mut reply, network, reservation);
    if let Some(choice) = boot::choose(request, ctx.config, mac, reservation) {
        add_boot(&mut reply, request, &choice, choice.vendor_class == Some("HTTPClient"));
    }
    tracing::debug!(%mac, %ip, "DHCPACK");
    Some(finish(reply, request, false))
}

fn inform(
    request: &Packet,
    ctx: &Context,
    mac: MacAddr,
    reservation: &Reservation,
) -> Option<Reply> {
    if request.ciaddr.is_unspecified() {
        return None;
    }
    let network = ctx.config.network_for(request.giaddr).filter(|n| n.contains(request.ciaddr))?;
    let mut reply = base_reply(request, MessageType::Ack, ctx);
    reply.ciaddr = request.ciaddr;
    add_network_options(&mut reply, network, reservation);
    if let Some(choice) = boot::choose(request, ctx.config, mac, reservation) {
        add_boot(&mut reply, request, &choice, choice.vendor_class == Some("HTTPClient"));
    }
    Some(finish(reply, request, false))
}

/// Whether a proxyDHCP server should answer: PXE spec clients identify
/// themselves with vendor class `PXEClient` (UEFI HTTP: `HTTPClient`).
fn pxe_vendor(request: &Packet) -> bool {
    let vendor = request.option(code::VENDOR_CLASS).unwrap_or_default();
    vendor.starts_with(b"PXEClient") || vendor.starts_with(b"HTTPClient")
}

fn proxy_reply(
    request: &Packet,
    ctx: &Context,
    mac: MacAddr,
    reservation: &Reservation,
    kind: MessageType,
) -> Option<Packet> {
    if !pxe_vendor(request) {
        return None;
    }
    let choice = boot::choose(request, ctx.config, mac, reservation)?;
    let mut reply = base_reply(request, kind, ctx);
    reply.ciaddr = request.ciaddr;
    add_boot(&mut reply, request, &choice, true);
    if boot::classify(request) != ClientKind::HttpClient {
        reply.set_option(code::VENDOR_CLASS, "PXEClient");
        reply.set_option(code::VENDOR_SPECIFIC, PXE_DISCOVERY_CONTROL);
    }
    Some(reply)
}

fn proxy_offer(
    request: &Packet,
    ctx: &Context,
    mac: MacAddr,
    reservation: &Reservation,
    kind: MessageType,
) -> Option<Reply> {
    if kind != MessageType::Discover {
        return None;
    }
    let reply = proxy_reply(request, ctx, mac, reservation, MessageType::Offer)?;
    tracing::info!(%mac, file = %String::from_utf8_lossy(&reply.file), "proxyDHCP OFFER");
    Some(finish(reply, request, false))
}

fn proxy_ack(
    request: &Packet,
    ctx: &Context,
    mac: MacAddr,
    reservation: &Reservation,
    kind: MessageType,
) -> Option<Reply> {
    if !matches!(kind, MessageType::Request | MessageType::Inform) {
        return None;
    }
    let reply = proxy_reply(request, ctx, mac, reservation, MessageType::Ack)?;
    tracing::info!(%mac, file = %String::from_utf8_lossy(&reply.file), "proxyDHCP ACK (port 4011)");
    let destination = if ctx.source.ip().is_unspecified() {
        Destination::Broadcast(CLIENT_PORT)
    } else {
        Destination::Unicast(ctx.source)
    };
    Some(Reply { packet: reply, destination })
}

//! Packet-in/packet-out tests of the protocol core: each request is built,
//! encoded and decoded, handed to `handle`, and the reply's header fields,
//! options and destination are checked.
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddrV4};

use ferric_dhcp::packet::{code, FLAG_BROADCAST};
use ferric_dhcp::{
    handle, AddressRange, Config, Context, Destination, LeaseState, LeaseStore, MacAddr,
    MemoryBackend, MemoryLeases, MessageType, Mode, Network, Packet, Port, Reply, Reservation,
};

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const NOW: u64 = 1_700_000_000;
const FIXED_MAC: &str = "52:54:00:00:00:01";
const DYN_MAC: &str = "52:54:00:00:00:02";
const DYN_MAC2: &str = "52:54:00:00:00:03";
const NOBOOT_MAC: &str = "52:54:00:00:00:04";
const UNKNOWN_MAC: &str = "52:54:00:00:00:99";

fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

fn mac(text: &str) -> MacAddr {
    text.parse().unwrap()
}

fn config(mode: Mode) -> Config {
    let mut config = Config::new(mode, "veth0", SERVER);
    let mut local = Network::new(ip(198, 18, 0, 0), 24);
    local.ranges = vec![AddressRange { first: ip(198, 18, 0, 100), last: ip(198, 18, 0, 102) }];
    local.routers = vec![SERVER];
    local.dns_servers = vec![ip(198, 18, 0, 53), ip(198, 18, 0, 54)];
    local.lease_time = 7200;
    let mut relayed = Network::new(ip(198, 19, 5, 0), 24);
    relayed.ranges = vec![AddressRange { first: ip(198, 19, 5, 10), last: ip(198, 19, 5, 20) }];
    relayed.routers = vec![ip(198, 19, 5, 1)];
    config.networks = vec![local, relayed];
    config
}

fn backend() -> MemoryBackend {
    let mut backend = MemoryBackend::new();
    backend.insert(
        mac(FIXED_MAC),
        Reservation {
            ip: Some(ip(198, 18, 0, 10)),
            hostname: Some("node-1".into()),
            pxe_enabled: true,
            ipxe_script_url: None,
        },
    );
    backend.insert(mac(DYN_MAC), Reservation { pxe_enabled: true, ..Reservation::default() });
    backend.insert(mac(DYN_MAC2), Reservation { pxe_enabled: true, ..Reservation::default() });
    backend.insert(mac(NOBOOT_MAC), Reservation { pxe_enabled: false, ..Reservation::default() });
    backend
}

/// A test harness: config, backend and leases.
struct Fixture {
    config: Config,
    backend: MemoryBackend,
    leases: MemoryLeases,
}

impl Fixture {
    fn new(mode: Mode) -> Fixture {
        Fixture { config: config(mode), backend: backend(), leases: MemoryLeases::new() }
    }

    fn send_from(&self, request: &Packet, port: Port, source: SocketAddrV4) -> Option<Reply> {
        // Through the codec, as on the wire.
        let request = Packet::decode(&request.encode()).unwrap();
        let ctx = Context { config: &self.config, leases: &self.leases, now: NOW, source, port };
        let reply = handle(&request, &ctx, &self.backend)?;
        // The reply must survive the codec too.
        assert_eq!(Packet::decode(&reply.packet.encode()).unwrap(), reply.packet);
        Some(reply)
    }

    fn send(&self, request: &Packet) -> Option<Reply> {
        self.send_from(request, Port::Dhcp, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68))
    }
}

fn request(kind: u8, client: &str) -> Packet {
    let mut p = Packet { xid: 0xdead_beef, ..Packet::default() };
    p.set_mac(mac(client));
    p.set_option(code::MESSAGE_TYPE, [kind]);
    p
}

fn with(mut p: Packet, option: u8, value: impl Into<Vec<u8>>) -> Packet {
    p.set_option(option, value);
    p
}

fn pxe(p: Packet, arch: u16) -> Packet {
    let p = with(p, code::VENDOR_CLASS, format!("PXEClient:Arch:{arch:05}:UNDI:002001"));
    with(p, code::CLIENT_ARCH, arch.to_be_bytes())
}

fn kind(reply: &Reply) -> MessageType {
    reply.packet.message_type().unwrap()
}

fn opt_str(reply: &Reply, option: u8) -> Option<String> {
    reply.packet.option(option).map(|v| String::from_utf8_lossy(v).into_owned())
}

const DISCOVER: u8 = 1;
const REQUEST: u8 = 3;
const DECLINE: u8 = 4;
const RELEASE: u8 = 7;
const INFORM: u8 = 8;

#[test]
fn discover_with_reservation_offers_fixed_address_and_options() {
    let f = Fixture::new(Mode::Authoritative);
    let r = f.send(&request(DISCOVER, FIXED_MAC)).unwrap();
    assert_eq!(kind(&r), MessageType::Offer);
    let p = &r.packet;
    assert_eq!(p.op, 2);
    assert_eq!(p.xid, 0xdead_beef);
    assert_eq!(p.yiaddr, ip(198, 18, 0, 10));
    assert_eq!(p.mac(), Some(mac(FIXED_MAC)));
    assert_eq!(p.option_ipv4(code::SERVER_ID), Some(SERVER));
    assert_eq!(p.option_ipv4(code::SUBNET_MASK), Some(ip(255, 255, 255, 0)));
    assert_eq!(p.option_ipv4(code::ROUTER), Some(SERVER));
    assert_eq!(p.option(code::DNS), Some(&[198, 18, 0, 53, 198, 18, 0, 54][..]));
    assert_eq!(p.option(code::LEASE_TIME), Some(&7200u32.to_be_bytes()[..]));
    assert_eq!(p.option(code::RENEWAL_TIME), Some(&3600u32.to_be_bytes()[..]));
    assert_eq!(p.option(code::REBINDING_TIME), Some(&6300u32.to_be_bytes()[..]));
    assert_eq!(opt_str(&r, code::HOSTNAME).as_deref(), Some("node-1"));
    // Not a PXE client: no boot options.
    assert!(p.file.is_empty() && p.option(code::BOOTFILE).is_none());
    assert_eq!(r.destination, Destination::Broadcast(68));
    let lease = f.leases.find(mac(FIXED_MAC)).unwrap();
    assert_eq!(
        (lease.ip, lease.state, lease.expires),
        (ip(198, 18, 0, 10), LeaseState::Offered, NOW + 60)
    );
}

#[test]
fn discover_allocates_from_ranges_and_honours_requested_ip() {
    let f = Fixture::new(Mode::Authoritative);
    assert_eq!(f.send(&request(DISCOVER, DYN_MAC)).unwrap().packet.yiaddr, ip(198, 18, 0, 100));
    // Same client again: same address.
    assert_eq!(f.send(&request(DISCOVER, DYN_MAC)).unwrap().packet.yiaddr, ip(198, 18, 0, 100));
    // Another client asks for .102 and gets it; a taken or foreign one is ignored.
    let asks = with(request(DISCOVER, DYN_MAC2), code::REQUESTED_IP, ip(198, 18, 0, 102).octets());
    assert_eq!(f.send(&asks).unwrap().packet.yiaddr, ip(198, 18, 0, 102));
    let f = Fixture::new(Mode::Authoritative);
    f.send(&request(DISCOVER, DYN_MAC)).unwrap();
    let asks = with(request(DISCOVER, DYN_MAC2), code::REQUESTED_IP, ip(198, 18, 0, 100).octets());
    assert_eq!(f.send(&asks).unwrap().packet.yiaddr, ip(198, 18, 0, 101));
    let asks = with(request(DISCOVER, NOBOOT_MAC), code::REQUESTED_IP, ip(10, 0, 0, 1).octets());
    assert_eq!(f.send(&asks).unwrap().packet.yiaddr, ip(198, 18, 0, 102));
}

#[test]
fn exhausted_ranges_give_silence() {
    let mut f = Fixture::new(Mode::Authoritative);
    f.config.networks[0].ranges =
        vec![AddressRange { first: ip(198, 18, 0, 100), last: ip(198, 18, 0, 100) }];
    assert!(f.send(&request(DISCOVER, DYN_MAC)).is_some());
    assert!(f.send(&request(DISCOVER, DYN_MAC2)).is_none());
    // After the offer hold expires, the address is free again.
    let ctx_later = Context {
        config: &f.config,
        leases: &f.leases,
        now: NOW + 61,
        source: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
        port: Port::Dhcp,
    };
    let r = handle(&request(DISCOVER, DYN_MAC2), &ctx_later, &f.backend).unwrap();
    assert_eq!(r.packet.yiaddr, ip(198, 18, 0, 100));
}

#[test]
fn unknown_mac_and_non_requests_get_silence() {
    let f = Fixture::new(Mode::Authoritative);
    assert!(f.send(&request(DISCOVER, UNKNOWN_MAC)).is_none());
    assert!(f.send(&pxe(request(DISCOVER, UNKNOWN_MAC), 0)).is_none());
    for kind in [2u8, 5, 6, 0, 9, 42, 255] {
        assert!(f.send(&request(kind, FIXED_MAC)).is_none(), "message type {kind}");
    }
    let mut no_type = request(DISCOVER, FIXED_MAC);
    no_type.options.clear();
    assert!(f.send(&no_type).is_none());
    let mut reply_op = request(DISCOVER, FIXED_MAC);
    reply_op.op = 2;
    assert!(f.send(&reply_op).is_none());
    let mut not_ethernet = request(DISCOVER, FIXED_MAC);
    not_ethernet.hlen = 8;
    assert!(f.send(&not_ethernet).is_none());
}

#[test]
fn malformed_packets_are_rejected_by_the_codec() {
    let good = request(DISCOVER, FIXED_MAC).encode();
    for cut in [0, 1, 100, 235, 236, 239] {
        assert!(Packet::decode(&good[..cut]).is_err(), "cut at {cut}");
    }
    // Option 53 with length 2, option 54 with length 3, an option running off the end.
    let mut bad = good.clone();
    bad[240..244].copy_from_slice(&[53, 2, 1, 1]);
    assert!(Packet::decode(&bad).is_err());
    let mut bad = good.clone();
    bad[240..246].copy_from_slice(&[54, 3, 1, 2, 3, 255]);
    assert!(Packet::decode(&bad).is_err());
    let mut bad = good[..242].to_vec();
    bad[240..242].copy_from_slice(&[61, 200]);
    assert!(Packet::decode(&bad).is_err());
}

#[test]
fn selecting_request_is_acked_and_binds() {
    let f = Fixture::new(Mode::Authoritative);
    let offer = f.send(&request(DISCOVER, DYN_MAC)).unwrap();
    let req = with(
        with(request(REQUEST, DYN_MAC), code::SERVER_ID, SERVER.octets()),
        code::REQUESTED_IP,
        offer.packet.yiaddr.octets(),
    );
    let ack = f.send(&req).unwrap();
    assert_eq!(kind(&ack), MessageType::Ack);
    assert_eq!(ack.packet.yiaddr, ip(198, 18, 0, 100));
    assert_eq!(ack.packet.option(code::LEASE_TIME), Some(&7200u32.to_be_bytes()[..]));
    assert_eq!(ack.destination, Destination::Broadcast(68));
    let lease = f.leases.find(mac(DYN_MAC)).unwrap();
    assert_eq!((lease.state, lease.expires), (LeaseState::Bound, NOW + 7200));
    // A later DISCOVER does not demote or shorten the bound lease.
    f.send(&request(DISCOVER, DYN_MAC)).unwrap();
    let lease = f.leases.find(mac(DYN_MAC)).unwrap();
    assert_eq!((lease.state, lease.expires), (LeaseState::Bound, NOW + 7200));
}

#[test]
fn request_for_another_server_is_ignored() {
    let f = Fixture::new(Mode::Authoritative);
    f.send(&request(DISCOVER, DYN_MAC)).unwrap();
    let req = with(
        with(request(REQUEST, DYN_MAC), code::SERVER_ID, ip(198, 18, 0, 2).octets()),
        code::REQUESTED_IP,
        ip(198, 18, 0, 100).octets(),
    );
    assert!(f.send(&req).is_none());
}

#[test]
fn wrong_address_is_naked_by_broadcast() {
    let f = Fixture::new(Mode::Authoritative);
    // The reserved client asks for something else.
    let req = with(
        with(request(REQUEST, FIXED_MAC), code::SERVER_ID, SERVER.octets()),
        code::REQUESTED_IP,
        ip(198, 18, 0, 11).octets(),
    );
    let nak = f.send(&req).unwrap();
    assert_eq!(kind(&nak), MessageType::Nak);
    assert_eq!(nak.packet.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(nak.destination, Destination::Broadcast(68));
    assert!(nak.packet.option(code::LEASE_TIME).is_none());
    // INIT-REBOOT on a foreign subnet.
    let req = with(request(REQUEST, DYN_MAC), code::REQUESTED_IP, ip(10, 1, 2, 3).octets());
    assert_eq!(kind(&f.send(&req).unwrap()), MessageType::Nak);
}

#[test]
fn init_reboot_without_record_is_silent_with_other_record_naks() {
    let f = Fixture::new(Mode::Authoritative);
    let req = with(request(REQUEST, DYN_MAC), code::REQUESTED_IP, ip(198, 18, 0, 101).octets());
    assert!(f.send(&req).is_none());
    f.send(&request(DISCOVER, DYN_MAC)).unwrap(); // holds .100
    assert_eq!(kind(&f.send(&req).unwrap()), MessageType::Nak);
    // The reserved client rebooting with its address gets it.
    let req = with(request(REQUEST, FIXED_MAC), code::REQUESTED_IP, ip(198, 18, 0, 10).octets());
    assert_eq!(f.send(&req).unwrap().packet.yiaddr, ip(198, 18, 0, 10));
}

#[test]
fn address_taken_by_another_client_is_naked() {
    let f = Fixture::new(Mode::Authoritative);
    f.send(&request(DISCOVER, DYN_MAC)).unwrap(); // .100 held for DYN_MAC
    let req = with(
        with(request(REQUEST, DYN_MAC2), code::SERVER_ID, SERVER.octets()),
        code::REQUESTED_IP,
        ip(198, 18, 0, 100).octets(),
    );
    assert_eq!(kind(&f.send(&req).unwrap()), MessageType::Nak);
}

#[test]
fn renewal_is_acked_by_unicast() {
    let f = Fixture::new(Mode::Authoritative);
    let mut renew = request(REQUEST, FIXED_MAC);
    renew.ciaddr = ip(198, 18, 0, 10);
    let ack = f.send(&renew).unwrap();
    assert_eq!(kind(&ack), MessageType::Ack);
    assert_eq!((ack.packet.yiaddr, ack.packet.ciaddr), (ip(198, 18, 0, 10), ip(198, 18, 0, 10)));
    assert_eq!(ack.destination, Destination::Unicast(SocketAddrV4::new(ip(198, 18, 0, 10), 68)));
    // A REQUEST with neither ciaddr nor option 50 is malformed: silence.
    assert!(f.send(&request(REQUEST, FIXED_MAC)).is_none());
}

#[test]
fn broadcast_flag_is_kept() {
    let f = Fixture::new(Mode::Authoritative);
    let mut discover = request(DISCOVER, FIXED_MAC);
    discover.flags = FLAG_BROADCAST;
    let offer = f.send(&discover).unwrap();
    assert_eq!(offer.packet.flags, FLAG_BROADCAST);
    assert_eq!(offer.destination, Destination::Broadcast(68));
}

#[test]
fn release_frees_and_decline_blocks() {
    let f = Fixture::new(Mode::Authoritative);
    f.send(&request(DISCOVER, DYN_MAC)).unwrap();
    let mut release = with(request(RELEASE, DYN_MAC), code::SERVER_ID, SERVER.octets());
    release.ciaddr = ip(198, 18, 0, 100);
    assert!(f.send(&release).is_none());
    assert!(f.leases.find(mac(DYN_MAC)).is_none());
    // Release naming another server is ignored.
    f.send(&request(DISCOVER, DYN_MAC)).unwrap();
    let mut foreign = with(request(RELEASE, DYN_MAC), code::SERVER_ID, ip(198, 18, 0, 9).octets());
    foreign.ciaddr = ip(198, 18, 0, 100);
    assert!(f.send(&foreign).is_none());
    assert!(f.leases.find(mac(DYN_MAC)).is_some());
    // Decline: .100 is not offered again (to anyone) during the hold.
    let decline = with(
        with(request(DECLINE, DYN_MAC), code::SERVER_ID, SERVER.octets()),
        code::REQUESTED_IP,
        ip(198, 18, 0, 100).octets(),
    );
    assert!(f.send(&decline).is_none());
    assert_eq!(f.send(&request(DISCOVER, DYN_MAC)).unwrap().packet.yiaddr, ip(198, 18, 0, 101));
    assert_eq!(f.send(&request(DISCOVER, DYN_MAC2)).unwrap().packet.yiaddr, ip(198, 18, 0, 102));
    // A DECLINE without option 50 is ignored.
    assert!(f.send(&request(DECLINE, DYN_MAC)).is_none());
}

#[test]
fn inform_gets_options_without_address() {
    let f = Fixture::new(Mode::Authoritative);
    let mut inform = pxe(request(INFORM, FIXED_MAC), 0);
    inform.ciaddr = ip(198, 18, 0, 10);
    let ack = f.send(&inform).unwrap();
    assert_eq!(kind(&ack), MessageType::Ack);
    assert_eq!(ack.packet.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert!(ack.packet.option(code::LEASE_TIME).is_none());
    assert_eq!(ack.packet.option_ipv4(code::SUBNET_MASK), Some(ip(255, 255, 255, 0)));
    assert_eq!(opt_str(&ack, code::BOOTFILE).as_deref(), Some("undionly.kpxe"));
    assert_eq!(ack.destination, Destination::Unicast(SocketAddrV4::new(ip(198, 18, 0, 10), 68)));
    assert!(f.leases.find(mac(FIXED_MAC)).is_none());
    // INFORM without ciaddr is malformed.
    assert!(f.send(&request(INFORM, FIXED_MAC)).is_none());
}

#[test]
fn relayed_requests_use_giaddr_and_record_option_82() {
    let f = Fixture::new(Mode::Authoritative);
    let relay_info = vec![1, 4, b'p', b'o', b'r', b't', 2, 3, b's', b'w', b'1'];
    let mut discover = with(request(DISCOVER, DYN_MAC), code::RELAY_AGENT_INFO, relay_info.clone());
    discover.giaddr = ip(198, 19, 5, 1);
    discover.hops = 1;
    let offer = f.send(&discover).unwrap();
    assert_eq!(offer.packet.yiaddr, ip(198, 19, 5, 10));
    assert_eq!(offer.packet.giaddr, ip(198, 19, 5, 1));
    assert_eq!(offer.packet.option_ipv4(code::ROUTER), Some(ip(198, 19, 5, 1)));
    assert_eq!(offer.destination, Destination::Unicast(SocketAddrV4::new(ip(198, 19, 5, 1), 67)));
    assert_eq!(offer.packet.option(code::RELAY_AGENT_INFO), Some(&relay_info[..]));
    assert_eq!(offer.packet.options.last().map(|(c, _)| *c), Some(code::RELAY_AGENT_INFO));
    let relay = f.leases.find(mac(DYN_MAC)).unwrap().relay.unwrap();
    assert_eq!(relay.giaddr, ip(198, 19, 5, 1));
    assert_eq!(relay.circuit_id.as_deref(), Some(&b"port"[..]));
    assert_eq!(relay.remote_id.as_deref(), Some(&b"sw1"[..]));
    // A NAK through the relay goes to the relay with the broadcast bit set.
    let mut req = with(request(REQUEST, DYN_MAC), code::REQUESTED_IP, ip(198, 18, 0, 100).octets());
    req.giaddr = ip(198, 19, 5, 1);
    let nak = f.send(&req).unwrap();
    assert_eq!(kind(&nak), MessageType::Nak);
    assert_eq!(nak.destination, Destination::Unicast(SocketAddrV4::new(ip(198, 19, 5, 1), 67)));
    assert_ne!(nak.packet.flags & FLAG_BROADCAST, 0);
    // Relay from a subnet we do not serve: silence.
    let mut stray = request(DISCOVER, DYN_MAC2);
    stray.giaddr = ip(198, 19, 9, 1);
    assert!(f.send(&stray).is_none());
}

#[test]
fn reserved_address_off_network_is_not_offered() {
    let f = Fixture::new(Mode::Authoritative);
    let mut discover = request(DISCOVER, FIXED_MAC);
    discover.giaddr = ip(198, 19, 5, 1);
    assert!(f.send(&discover).is_none());
}

/// Expected file, siaddr and option 60.
type Boot = (String, Ipv4Addr, Option<String>);

fn boot_case(f: &Fixture, req: Packet) -> Boot {
    let r = f.send(&req).unwrap();
    let file = String::from_utf8(r.packet.file.clone()).unwrap();
    assert_eq!(opt_str(&r, code::BOOTFILE).unwrap_or_default(), file);
    if r.packet.siaddr.is_unspecified() {
        assert!(r.packet.option(code::TFTP_SERVER).is_none());
    } else {
        assert_eq!(opt_str(&r, code::TFTP_SERVER), Some(r.packet.siaddr.to_string()));
    }
    (file, r.packet.siaddr, opt_str(&r, code::VENDOR_CLASS))
}

#[test]
fn boot_file_by_client_type() {
    let f = Fixture::new(Mode::Authoritative);
    let d = || request(DISCOVER, DYN_MAC);
    let script = format!("http://198.18.0.1:8080/boot/{DYN_MAC}.ipxe");
    let http_efi = "http://198.18.0.1:8080/files/ipxe.efi".to_owned();
    let cases: Vec<(&str, Packet, Boot)> = vec![
        ("bios", pxe(d(), 0), ("undionly.kpxe".into(), SERVER, None)),
        ("uefi 7", pxe(d(), 7), ("snponly.efi".into(), SERVER, None)),
        ("uefi 9", pxe(d(), 9), ("snponly.efi".into(), SERVER, None)),
        ("arch only", with(d(), code::CLIENT_ARCH, [0, 7]), ("snponly.efi".into(), SERVER, None)),
        (
            "http boot",
            with(
                with(d(), code::VENDOR_CLASS, "HTTPClient:Arch:00016:UNDI:003000"),
                code::CLIENT_ARCH,
                [0, 16],
            ),
            (http_efi, Ipv4Addr::UNSPECIFIED, Some("HTTPClient".into())),
        ),
        (
            "ipxe user class",
            with(pxe(d(), 0), code::USER_CLASS, "iPXE"),
            (script.clone(), Ipv4Addr::UNSPECIFIED, None),
        ),
        (
            "ipxe rfc3004",
            with(pxe(d(), 7), code::USER_CLASS, b"\x04iPXE".to_vec()),
            (script.clone(), Ipv4Addr::UNSPECIFIED, None),
        ),
        (
            "ipxe opt 175",
            with(pxe(d(), 7), code::IPXE_ENCAP, [19, 1, 1]),
            (script, Ipv4Addr::UNSPECIFIED, None),
        ),
        ("plain", d(), (String::new(), Ipv4Addr::UNSPECIFIED, None)),
        ("arm64 unsupported", pxe(d(), 11), (String::new(), Ipv4Addr::UNSPECIFIED, None)),
    ];
    for (name, req, expected) in cases {
        assert_eq!(boot_case(&f, req), expected, "{name}");
    }
    // Node not set to network boot: address, no boot options.
    let r = f.send(&pxe(request(DISCOVER, NOBOOT_MAC), 0)).unwrap();
    assert!(r.packet.file.is_empty() && !r.packet.yiaddr.is_unspecified());
}

#[test]
fn ipxe_is_told_not_to_wait_for_proxy_dhcp() {
    let f = Fixture::new(Mode::Authoritative);
    let ipxe = with(pxe(request(DISCOVER, DYN_MAC), 0), code::USER_CLASS, "iPXE");
    let r = f.send(&ipxe).unwrap();
    assert_eq!(r.packet.option(code::IPXE_ENCAP), Some([176u8, 1, 1].as_slice()));
    // Firmware PXE clients and plain clients get no iPXE options.
    let r = f.send(&pxe(request(DISCOVER, DYN_MAC), 0)).unwrap();
    assert_eq!(r.packet.option(code::IPXE_ENCAP), None);
    let r = f.send(&request(DISCOVER, DYN_MAC)).unwrap();
    assert_eq!(r.packet.option(code::IPXE_ENCAP), None);
}

#[test]
fn boot_files_and_templates_are_configurable() {
    let mut f = Fixture::new(Mode::Authoritative);
    f.config.boot.uefi_file = "ipxe.efi".into();
    f.config.boot.tftp_server = Some(ip(198, 18, 0, 5));
    f.config.boot.http_server = Some(ip(198, 18, 0, 6));
    f.config.boot.http_port = 80;
    f.config.boot.ipxe_script_url = "http://{server}:{port}/ipxe/{mac_hyphen}".into();
    let d = || request(DISCOVER, DYN_MAC);
    assert_eq!(boot_case(&f, pxe(d(), 7)), ("ipxe.efi".into(), ip(198, 18, 0, 5), None));
    let ipxe = with(pxe(d(), 7), code::USER_CLASS, "iPXE");
    assert_eq!(boot_case(&f, ipxe).0, "http://198.18.0.6:80/ipxe/52-54-00-00-00-02");
    // Per-node override.
    f.backend.insert(
        mac(DYN_MAC),
        Reservation {
            pxe_enabled: true,
            ipxe_script_url: Some("http://x/{mac}".into()),
            ..Reservation::default()
        },
    );
    let ipxe = with(pxe(d(), 7), code::USER_CLASS, "iPXE");
    assert_eq!(boot_case(&f, ipxe).0, format!("http://x/{DYN_MAC}"));
}

#[test]
fn ack_carries_boot_options_and_echoes_uuid() {
    let f = Fixture::new(Mode::Authoritative);
    let uuid = [0u8; 17];
    let req =
        with(pxe(request(REQUEST, FIXED_MAC), 0), code::REQUESTED_IP, ip(198, 18, 0, 10).octets());
    let req = with(req, code::CLIENT_UUID, uuid);
    let ack = f.send(&req).unwrap();
    assert_eq!(kind(&ack), MessageType::Ack);
    assert_eq!(ack.packet.file, b"undionly.kpxe");
    assert_eq!(ack.packet.siaddr, SERVER);
    assert_eq!(ack.packet.option(code::CLIENT_UUID), Some(&uuid[..]));
}

#[test]
fn proxy_offer_has_boot_options_but_no_address() {
    let f = Fixture::new(Mode::Proxy);
    let uuid = [1u8; 17];
    let offer = f.send(&with(pxe(request(DISCOVER, DYN_MAC), 7), code::CLIENT_UUID, uuid)).unwrap();
    let p = &offer.packet;
    assert_eq!(kind(&offer), MessageType::Offer);
    assert_eq!(p.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(p.siaddr, SERVER);
    assert_eq!(p.file, b"snponly.efi");
    assert_eq!(opt_str(&offer, code::VENDOR_CLASS).as_deref(), Some("PXEClient"));
    assert_eq!(p.option(code::VENDOR_SPECIFIC), Some(&[6, 1, 8, 255][..]));
    assert_eq!(p.option(code::CLIENT_UUID), Some(&uuid[..]));
    assert_eq!(p.option_ipv4(code::SERVER_ID), Some(SERVER));
    for none in [code::LEASE_TIME, code::SUBNET_MASK, code::ROUTER, code::DNS] {
        assert!(p.option(none).is_none(), "option {none}");
    }
    assert_eq!(offer.destination, Destination::Broadcast(68));
    assert!(f.leases.all().is_empty());
    // UEFI HTTP boot through the proxy: HTTPClient echoed, no option 43.
    let http =
        with(request(DISCOVER, DYN_MAC), code::VENDOR_CLASS, "HTTPClient:Arch:00016:UNDI:003000");
    let offer = f.send(&with(http, code::CLIENT_ARCH, [0, 16])).unwrap();
    assert_eq!(opt_str(&offer, code::VENDOR_CLASS).as_deref(), Some("HTTPClient"));
    assert!(offer.packet.option(code::VENDOR_SPECIFIC).is_none());
}

#[test]
fn proxy_ignores_non_pxe_clients_requests_on_67_and_unknown_macs() {
    let f = Fixture::new(Mode::Proxy);
    assert!(f.send(&request(DISCOVER, DYN_MAC)).is_none());
    assert!(f.send(&with(request(DISCOVER, DYN_MAC), code::VENDOR_CLASS, "MSFT 5.0")).is_none());
    assert!(f.send(&pxe(request(DISCOVER, UNKNOWN_MAC), 0)).is_none());
    assert!(f.send(&pxe(request(DISCOVER, NOBOOT_MAC), 0)).is_none());
    let req =
        with(pxe(request(REQUEST, DYN_MAC), 0), code::REQUESTED_IP, ip(198, 18, 0, 60).octets());
    assert!(f.send(&req).is_none());
    assert!(f.send(&pxe(request(RELEASE, DYN_MAC), 0)).is_none());
}

#[test]
fn proxy_request_on_4011_is_acked_to_its_source() {
    let f = Fixture::new(Mode::Proxy);
    let mut req = pxe(request(REQUEST, DYN_MAC), 0);
    req.ciaddr = ip(198, 18, 0, 60);
    let source = SocketAddrV4::new(ip(198, 18, 0, 60), 4011);
    let ack = f.send_from(&req, Port::Proxy, source).unwrap();
    assert_eq!(kind(&ack), MessageType::Ack);
    assert_eq!(ack.packet.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(ack.packet.ciaddr, ip(198, 18, 0, 60));
    assert_eq!(ack.packet.file, b"undionly.kpxe");
    assert_eq!(ack.destination, Destination::Unicast(source));
    // iPXE asking on 4011 gets its script.
    let req = with(pxe(request(REQUEST, DYN_MAC), 7), code::USER_CLASS, "iPXE");
    let ack = f.send_from(&req, Port::Proxy, source).unwrap();
    assert_eq!(ack.packet.file, format!("http://198.18.0.1:8080/boot/{DYN_MAC}.ipxe").as_bytes());
    // DISCOVER on 4011 is not part of the protocol.
    assert!(f.send_from(&pxe(request(DISCOVER, DYN_MAC), 0), Port::Proxy, source).is_none());
}

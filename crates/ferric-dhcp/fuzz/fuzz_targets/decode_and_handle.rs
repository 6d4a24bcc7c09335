//! Arbitrary bytes through the decoder and, when they decode, through the
//! handler in both modes and on both ports (with every MAC known), then
//! the reply through the codec again: nothing may panic.
#![no_main]

use std::net::{Ipv4Addr, SocketAddrV4};

use ferric_dhcp::{
    handle, AddressRange, Backend, Config, Context, MacAddr, MemoryLeases, Mode, Network, Packet,
    Port, Reservation,
};
use libfuzzer_sys::fuzz_target;

struct Everyone;

impl Backend for Everyone {
    fn lookup(&self, mac: MacAddr) -> Option<Reservation> {
        // Odd last byte: a fixed address (possibly off-network); even: dynamic.
        let ip = (mac.0[5] % 2 == 1).then(|| Ipv4Addr::new(198, 18, 0, mac.0[4]));
        Some(Reservation {
            ip,
            hostname: Some("n".into()),
            pxe_enabled: mac.0[3] != 0,
            ipxe_script_url: None,
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(request) = Packet::decode(data) else { return };
    let leases = MemoryLeases::new();
    for mode in [Mode::Authoritative, Mode::Proxy] {
        let mut config = Config::new(mode, "fuzz0", Ipv4Addr::new(198, 18, 0, 1));
        let mut network = Network::new(Ipv4Addr::new(198, 18, 0, 0), 24);
        network.ranges = vec![AddressRange {
            first: Ipv4Addr::new(198, 18, 0, 100),
            last: Ipv4Addr::new(198, 18, 0, 103),
        }];
        config.networks.push(network);
        for port in [Port::Dhcp, Port::Proxy] {
            let source = SocketAddrV4::new(request.ciaddr, 68);
            let ctx =
                Context { config: &config, leases: &leases, now: 1_700_000_000, source, port };
            if let Some(reply) = handle(&request, &ctx, &Everyone) {
                let _ = Packet::decode(&reply.packet.encode());
            }
        }
    }
});

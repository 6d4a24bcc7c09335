//! Fuzzes the TFTP request parser and the generic packet decoder: neither
//! may panic, and whatever decodes must encode and decode to the same value.
#![no_main]

use ferric_tftp::packet::{parse_request, Packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|datagram: &[u8]| {
    let _ = parse_request(datagram);
    if let Ok(packet) = Packet::decode(datagram) {
        let encoded = packet.encode();
        let decoded = Packet::decode(&encoded);
        assert_eq!(decoded.as_ref(), Ok(&packet));
    }
});

//! Property tests of the packet codecs: every encoder round-trips through
//! its decoder, and every decoder survives arbitrary bytes (returns an error
//! or a value, never panics).

use ferric_ipmi::commands::{
    self, AuthCapabilities, BootDevice, BootFlags, BootOption, ChassisControl, ChassisStatus,
};
use ferric_ipmi::crypto::{CipherSuite, SessionKeys};
use ferric_ipmi::rakp::{
    Algorithms, OpenSessionRequest, OpenSessionResponse, Rakp1, Rakp2, Rakp3, Rakp4,
};
use ferric_ipmi::wire::{self, Packet, PayloadType, ReplayWindow, Request, Response};
use proptest::prelude::*;

fn payload_type() -> impl Strategy<Value = PayloadType> {
    prop::sample::select(vec![
        PayloadType::Ipmi,
        PayloadType::OpenSessionRequest,
        PayloadType::OpenSessionResponse,
        PayloadType::Rakp1,
        PayloadType::Rakp2,
        PayloadType::Rakp3,
        PayloadType::Rakp4,
    ])
}

fn suite() -> impl Strategy<Value = CipherSuite> {
    prop::sample::select(CipherSuite::PREFERRED.to_vec())
}

fn algorithms() -> impl Strategy<Value = Algorithms> {
    (0u8..64, 0u8..64, 0u8..64).prop_map(|(auth, integrity, confidentiality)| Algorithms {
        auth,
        integrity,
        confidentiality,
    })
}

fn keys(suite: CipherSuite, sik: &[u8]) -> SessionKeys {
    SessionKeys::derive(suite, sik).expect("keys")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn requests_and_responses_round_trip(
        netfn in 0u8..64, cmd: u8, rq_seq in 0u8..64, code: u8,
        data in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let request = Request { netfn, cmd, rq_seq, data: data.clone() };
        prop_assert_eq!(wire::decode_request(&wire::encode_request(&request)).expect("request"), request);
        let response = Response { netfn, cmd, rq_seq, completion_code: code, data };
        prop_assert_eq!(wire::decode_response(&wire::encode_response(&response)).expect("response"), response);
    }

    #[test]
    fn v15_packets_round_trip(message in prop::collection::vec(any::<u8>(), 0..200)) {
        let packet = wire::encode_v15(&message).expect("encode");
        match wire::open(None, &packet).expect("open") {
            Packet::V15(v15) => prop_assert_eq!(v15.message, message),
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    #[test]
    fn plain_v2_packets_round_trip(
        kind in payload_type(), sid: u32, seq: u32,
        payload in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let packet = wire::seal(None, kind, sid, seq, &payload, [0; 16]).expect("seal");
        match wire::open(None, &packet).expect("open") {
            Packet::V2(v2) => {
                prop_assert_eq!((v2.payload_type, v2.session_id, v2.seq), (kind, sid, seq));
                prop_assert!(!v2.encrypted && !v2.authenticated);
                prop_assert_eq!(v2.payload, payload);
            }
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    #[test]
    fn protected_v2_packets_round_trip_and_detect_tampering(
        suite in suite(), sik in prop::collection::vec(any::<u8>(), 1..40),
        sid: u32, seq: u32, iv: [u8; 16],
        payload in prop::collection::vec(any::<u8>(), 0..200),
        flip in any::<prop::sample::Index>(), bit in 0u8..8,
    ) {
        let keys = keys(suite, &sik);
        let packet = wire::seal(Some(&keys), PayloadType::Ipmi, sid, seq, &payload, iv).expect("seal");
        match wire::open(Some(&keys), &packet).expect("open") {
            Packet::V2(v2) => {
                prop_assert!(v2.encrypted && v2.authenticated);
                prop_assert_eq!((v2.session_id, v2.seq), (sid, seq));
                prop_assert_eq!(v2.payload, payload);
            }
            other => prop_assert!(false, "unexpected {:?}", other),
        }
        // Any flipped bit after the RMCP header is caught: the packet is
        // refused, or (auth type byte) no longer reads as an RMCP+ packet.
        let mut tampered = packet.clone();
        let at = 4 + flip.index(packet.len() - 4);
        tampered[at] ^= 1 << bit;
        let opened = wire::open(Some(&keys), &tampered);
        prop_assert!(!matches!(opened, Ok(Packet::V2(_))), "accepted {:?}", opened);
    }

    #[test]
    fn setup_payloads_round_trip(
        tag: u8, privilege in 0u8..16, console_sid: u32, bmc_sid: u32, algs in algorithms(),
        random: [u8; 16], guid: [u8; 16], role: u8,
        name in prop::collection::vec(any::<u8>(), 0..17),
        code in prop::collection::vec(any::<u8>(), 0..33),
    ) {
        let open = OpenSessionRequest { tag, max_privilege: privilege, console_sid, algorithms: algs };
        prop_assert_eq!(OpenSessionRequest::decode(&open.encode()).expect("open"), open);
        let opened = OpenSessionResponse { tag, status: 0, max_privilege: privilege, console_sid, bmc_sid, algorithms: algs };
        prop_assert_eq!(OpenSessionResponse::decode(&opened.encode()).expect("opened"), opened);
        let rakp1 = Rakp1 { tag, bmc_sid, console_random: random, role, username: name };
        prop_assert_eq!(Rakp1::decode(&rakp1.encode()).expect("rakp1"), rakp1);
        let rakp2 = Rakp2 { tag, status: 0, console_sid, bmc_random: random, bmc_guid: guid, auth_code: code.clone() };
        prop_assert_eq!(Rakp2::decode(&rakp2.encode()).expect("rakp2"), rakp2);
        let rakp3 = Rakp3 { tag, status: 0, bmc_sid, auth_code: code.clone() };
        prop_assert_eq!(Rakp3::decode(&rakp3.encode()).expect("rakp3"), rakp3);
        let rakp4 = Rakp4 { tag, status: 0, console_sid, icv: code };
        prop_assert_eq!(Rakp4::decode(&rakp4.encode()).expect("rakp4"), rakp4);
    }

    #[test]
    fn command_payloads_round_trip(
        selector in 0u8..16, valid: bool, persistent: bool, efi: bool, extra: [u8; 3],
        power in 0u8..128, event: u8, misc: u8,
    ) {
        let flags = BootFlags { valid, persistent, efi, device: BootDevice::from_selector(selector), extra };
        prop_assert_eq!(BootFlags::decode(&flags.encode()).expect("flags"), flags);
        let option = BootOption { version: 1, parameter: 5, invalid: false, data: flags.encode().to_vec() };
        prop_assert_eq!(commands::decode_boot_flags_response(&option.encode()).expect("option"), flags);
        let status = ChassisStatus::decode(&[power, event, misc]).expect("status");
        prop_assert_eq!(ChassisStatus::decode(&status.encode()).expect("again"), status);
        for action in [ChassisControl::PowerDown, ChassisControl::PowerUp, ChassisControl::PowerCycle,
                       ChassisControl::HardReset, ChassisControl::SoftShutdown] {
            prop_assert_eq!(ChassisControl::from_number(action.number()), Some(action));
        }
    }

    #[test]
    fn every_decoder_survives_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..300), suite in suite(), sik: [u8; 20],
    ) {
        let keys = keys(suite, &sik);
        let _ = wire::open(None, &bytes);
        let _ = wire::open(Some(&keys), &bytes);
        let _ = wire::decode_request(&bytes);
        let _ = wire::decode_response(&bytes);
        let _ = keys.decrypt(&bytes);
        let _ = OpenSessionRequest::decode(&bytes);
        let _ = OpenSessionResponse::decode(&bytes);
        let _ = Rakp1::decode(&bytes);
        let _ = Rakp2::decode(&bytes);
        let _ = Rakp3::decode(&bytes);
        let _ = Rakp4::decode(&bytes);
        let _ = AuthCapabilities::decode(&bytes);
        let _ = ChassisStatus::decode(&bytes);
        let _ = BootFlags::decode(&bytes);
        let _ = BootOption::decode(&bytes);
        let _ = commands::decode_boot_flags_response(&bytes);
        let _ = commands::decode_cipher_suite_records(&bytes);
        let _ = commands::cipher_suite_block(&bytes);
        let mut window = ReplayWindow::default();
        for chunk in bytes.chunks(4) {
            let mut raw = [0u8; 4];
            raw[..chunk.len()].copy_from_slice(chunk);
            let _ = window.accept(u32::from_le_bytes(raw));
        }
    }

    #[test]
    fn decoders_survive_mutated_valid_packets(
        suite in suite(), sik: [u8; 20], payload in prop::collection::vec(any::<u8>(), 0..64),
        cut in any::<prop::sample::Index>(), junk in prop::collection::vec(any::<u8>(), 0..8),
        header_byte in any::<prop::sample::Index>(), value: u8,
    ) {
        // Valid packets, truncated or with a header byte replaced, reach
        // deeper code paths than random bytes do.
        let keys = keys(suite, &sik);
        let packet = wire::seal(Some(&keys), PayloadType::Ipmi, 1, 2, &payload, [0; 16]).expect("seal");
        let mut cut_packet = packet[..cut.index(packet.len() + 1)].to_vec();
        cut_packet.extend_from_slice(&junk);
        let _ = wire::open(Some(&keys), &cut_packet);
        let _ = wire::open(None, &cut_packet);
        let mut changed = packet.clone();
        let at = header_byte.index(16.min(changed.len()));
        changed[at] = value;
        let _ = wire::open(Some(&keys), &changed);
        let _ = wire::open(None, &changed);
        let v15 = wire::encode_v15(&payload).expect("v15");
        let _ = wire::open(None, &v15[..cut.index(v15.len() + 1)]);
    }
}

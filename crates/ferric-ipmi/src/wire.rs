//! Packet codecs: the RMCP header, the IPMI 1.5 session-less wrapper, the
//! IPMI 2.0 (RMCP+) session wrapper with its integrity trailer and encrypted
//! payloads, and IPMI request/response messages with their checksums.
//!
//! Plain functions over bytes, no I/O: every `decode_*`/`open` returns an
//! error on truncated or malformed input and never panics (a property test
//! feeds them arbitrary bytes).

use crate::crypto::SessionKeys;
use crate::error::{IpmiError, Result};

/// RMCP version 1.0.
pub const RMCP_VERSION: u8 = 0x06;
/// RMCP sequence number for messages that want no RMCP ACK.
pub const RMCP_NO_ACK: u8 = 0xFF;
/// RMCP message class: IPMI.
pub const RMCP_CLASS_IPMI: u8 = 0x07;
/// Session auth type: none (IPMI 1.5 session-less).
pub const AUTH_TYPE_NONE: u8 = 0x00;
/// Session auth type / format: RMCP+ (IPMI 2.0).
pub const AUTH_TYPE_RMCP_PLUS: u8 = 0x06;
/// The BMC's slave address.
pub const BMC_ADDRESS: u8 = 0x20;
/// Remote console software ID used as requester address.
pub const CONSOLE_ADDRESS: u8 = 0x81;
/// The "Next Header" byte of the integrity trailer.
const NEXT_HEADER: u8 = 0x07;

/// The RMCP+ payload types this crate uses (IPMI 2.0 table 13-16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadType {
    Ipmi,
    OpenSessionRequest,
    OpenSessionResponse,
    Rakp1,
    Rakp2,
    Rakp3,
    Rakp4,
}

impl PayloadType {
    pub fn number(self) -> u8 {
        match self {
            Self::Ipmi => 0x00,
            Self::OpenSessionRequest => 0x10,
            Self::OpenSessionResponse => 0x11,
            Self::Rakp1 => 0x12,
            Self::Rakp2 => 0x13,
            Self::Rakp3 => 0x14,
            Self::Rakp4 => 0x15,
        }
    }

    pub fn from_number(number: u8) -> Option<Self> {
        [
            Self::Ipmi,
            Self::OpenSessionRequest,
            Self::OpenSessionResponse,
            Self::Rakp1,
            Self::Rakp2,
            Self::Rakp3,
            Self::Rakp4,
        ]
        .into_iter()
        .find(|kind| kind.number() == number)
    }
}

/// Two's complement checksum: the bytes plus it sum to zero.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, byte| sum.wrapping_add(*byte)).wrapping_neg()
}

fn take<'a>(bytes: &'a [u8], at: usize, len: usize, what: &str) -> Result<&'a [u8]> {
    at.checked_add(len).and_then(|end| bytes.get(at..end)).ok_or_else(|| {
        IpmiError::malformed(format!(
            "{what}: need {len} bytes at offset {at}, have {}",
            bytes.len()
        ))
    })
}

fn byte(bytes: &[u8], at: usize, what: &str) -> Result<u8> {
    bytes.get(at).copied().ok_or_else(|| IpmiError::malformed(format!("{what}: truncated")))
}

fn u32_le(bytes: &[u8], at: usize, what: &str) -> Result<u32> {
    let raw = take(bytes, at, 4, what)?;
    Ok(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
}

/// An IPMI request message (LAN format, IPMI 2.0 section 13.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub netfn: u8,
    pub cmd: u8,
    /// 6-bit requester sequence number, matches the response to the request.
    pub rq_seq: u8,
    pub data: Vec<u8>,
}

/// An IPMI response message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The response NetFn (the request's plus one).
    pub netfn: u8,
    pub cmd: u8,
    pub rq_seq: u8,
    pub completion_code: u8,
    pub data: Vec<u8>,
}

fn encode_message(to: u8, netfn: u8, from: u8, rq_seq: u8, cmd: u8, body: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![to, (netfn & 0x3F) << 2];
    out.push(checksum(&out));
    let start = out.len();
    out.extend_from_slice(&[from, (rq_seq & 0x3F) << 2, cmd]);
    for part in body {
        out.extend_from_slice(part);
    }
    let sum = checksum(&out[start..]);
    out.push(sum);
    out
}

/// Header fields shared by requests and responses.
struct MessageParts<'a> {
    netfn: u8,
    rq_seq: u8,
    cmd: u8,
    body: &'a [u8],
}

fn decode_message(bytes: &[u8]) -> Result<MessageParts<'_>> {
    if bytes.len() < 7 {
        return Err(IpmiError::malformed(format!("IPMI message of {} bytes", bytes.len())));
    }
    if checksum(&bytes[..2]) != bytes[2] {
        return Err(IpmiError::malformed("IPMI message header checksum"));
    }
    let (rest, last) = bytes.split_at(bytes.len() - 1);
    if checksum(&rest[3..]) != last[0] {
        return Err(IpmiError::malformed("IPMI message data checksum"));
    }
    Ok(MessageParts {
        netfn: bytes[1] >> 2,
        rq_seq: bytes[4] >> 2,
        cmd: bytes[5],
        body: &rest[6..],
    })
}

/// Encodes a request from the console (0x81) to the BMC (0x20), LUN 0.
pub fn encode_request(request: &Request) -> Vec<u8> {
    encode_message(
        BMC_ADDRESS,
        request.netfn,
        CONSOLE_ADDRESS,
        request.rq_seq,
        request.cmd,
        &[&request.data],
    )
}

/// Decodes a request (the BMC's side; used by the test BMC and tests).
pub fn decode_request(bytes: &[u8]) -> Result<Request> {
    let parts = decode_message(bytes)?;
    Ok(Request {
        netfn: parts.netfn,
        cmd: parts.cmd,
        rq_seq: parts.rq_seq,
        data: parts.body.to_vec(),
    })
}

/// Encodes a response (the BMC's side; used by the test BMC and tests).
pub fn encode_response(response: &Response) -> Vec<u8> {
    encode_message(
        CONSOLE_ADDRESS,
        response.netfn,
        BMC_ADDRESS,
        response.rq_seq,
        response.cmd,
        &[&[response.completion_code], &response.data],
    )
}

/// Decodes a response from the BMC.
pub fn decode_response(bytes: &[u8]) -> Result<Response> {
    let parts = decode_message(bytes)?;
    let (&completion_code, data) = parts
        .body
        .split_first()
        .ok_or_else(|| IpmiError::malformed("IPMI response without completion code"))?;
    Ok(Response {
        netfn: parts.netfn,
        cmd: parts.cmd,
        rq_seq: parts.rq_seq,
        completion_code,
        data: data.to_vec(),
    })
}

fn rmcp_header() -> [u8; 4] {
    [RMCP_VERSION, 0x00, RMCP_NO_ACK, RMCP_CLASS_IPMI]
}

/// Wraps an IPMI message in an IPMI 1.5 session-less packet (auth type
/// none, session 0), as Get Channel Authentication Capabilities is sent.
pub fn encode_v15(message: &[u8]) -> Result<Vec<u8>> {
    let len = u8::try_from(message.len())
        .map_err(|_| IpmiError::InvalidConfig("IPMI 1.5 message over 255 bytes".into()))?;
    let mut out = rmcp_header().to_vec();
    out.push(AUTH_TYPE_NONE);
    out.extend_from_slice(&[0; 8]); // session sequence number and session ID
    out.push(len);
    out.extend_from_slice(message);
    Ok(out)
}

/// A decoded IPMI 1.5 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V15Packet {
    pub auth_type: u8,
    pub seq: u32,
    pub session_id: u32,
    pub message: Vec<u8>,
}

/// An RMCP+ (IPMI 2.0) packet, after integrity check and decryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Packet {
    pub payload_type: PayloadType,
    pub encrypted: bool,
    pub authenticated: bool,
    pub session_id: u32,
    pub seq: u32,
    pub payload: Vec<u8>,
}

/// Any datagram from the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    V15(V15Packet),
    V2(V2Packet),
    /// Not IPMI (an RMCP ACK or ASF message): ignored.
    Other,
}

/// Builds an RMCP+ packet. With `keys` the packet is encrypted (with `iv`)
/// and authenticated; without, it is plain (before a session exists).
pub fn seal(
    keys: Option<&SessionKeys>,
    payload_type: PayloadType,
    session_id: u32,
    seq: u32,
    payload: &[u8],
    iv: [u8; 16],
) -> Result<Vec<u8>> {
    let body = match keys {
        Some(keys) => keys.encrypt(iv, payload)?,
        None => payload.to_vec(),
    };
    let length = u16::try_from(body.len())
        .map_err(|_| IpmiError::InvalidConfig("RMCP+ payload over 65535 bytes".into()))?;
    let flags = if keys.is_some() { 0xC0 } else { 0x00 };
    let mut out = rmcp_header().to_vec();
    let session_start = out.len();
    out.push(AUTH_TYPE_RMCP_PLUS);
    out.push(flags | payload_type.number());
    out.extend_from_slice(&session_id.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&body);
    if let Some(keys) = keys {
        // Pad so that the covered range (auth type .. next header) is a
        // multiple of 4 bytes.
        let covered = out.len() - session_start + 2;
        let pad = (4 - covered % 4) % 4;
        out.extend(std::iter::repeat_n(0xFF, pad));
        out.push(pad as u8);
        out.push(NEXT_HEADER);
        let code = keys.integrity_code(&out[session_start..])?;
        out.extend_from_slice(&code);
    }
    Ok(out)
}

/// Decodes any datagram. RMCP+ packets flagged as authenticated or
/// encrypted need `keys`; with `keys`, unauthenticated RMCP+ packets are
/// refused (nothing in a session may skip the integrity check).
pub fn open(keys: Option<&SessionKeys>, datagram: &[u8]) -> Result<Packet> {
    let header = take(datagram, 0, 4, "RMCP header")?;
    if header[0] != RMCP_VERSION {
        return Err(IpmiError::malformed(format!("RMCP version {:#04x}", header[0])));
    }
    if header[3] & 0x80 != 0 || header[3] & 0x1F != RMCP_CLASS_IPMI {
        return Ok(Packet::Other);
    }
    let session = &datagram[4..];
    let auth_type = byte(session, 0, "session header")?;
    if auth_type & 0x0F != AUTH_TYPE_RMCP_PLUS {
        return open_v15(session).map(Packet::V15);
    }
    let flags = byte(session, 1, "RMCP+ header")?;
    let payload_type = PayloadType::from_number(flags & 0x3F).ok_or_else(|| {
        IpmiError::malformed(format!("unsupported payload type {:#04x}", flags & 0x3F))
    })?;
    let encrypted = flags & 0x80 != 0;
    let authenticated = flags & 0x40 != 0;
    let session_id = u32_le(session, 2, "RMCP+ session ID")?;
    let seq = u32_le(session, 6, "RMCP+ sequence number")?;
    let length = take(session, 10, 2, "RMCP+ payload length")?;
    let length = usize::from(u16::from_le_bytes([length[0], length[1]]));
    let body = take(session, 12, length, "RMCP+ payload")?;
    match (keys, authenticated, encrypted) {
        (None, false, false) => {}
        (None, _, _) => {
            return Err(IpmiError::malformed("protected RMCP+ packet outside a session"));
        }
        (Some(_), false, _) => {
            return Err(IpmiError::malformed("unauthenticated RMCP+ packet inside a session"));
        }
        (Some(_), true, _) => {}
    }
    if let Some(keys) = keys {
        let trailer_start = 12 + length;
        let code_len = keys.integrity.code_len();
        if session.len() < trailer_start + 2 + code_len {
            return Err(IpmiError::malformed("RMCP+ integrity trailer truncated"));
        }
        let code_start = session.len() - code_len;
        let (covered, code) = session.split_at(code_start);
        let pad_len = usize::from(covered[covered.len() - 2]);
        if covered[covered.len() - 1] != NEXT_HEADER
            || trailer_start + pad_len + 2 != covered.len()
            || covered.len() & 3 != 0
        {
            return Err(IpmiError::malformed("RMCP+ integrity trailer layout"));
        }
        let expected = keys.integrity_code(covered)?;
        if !crate::crypto::constant_time_eq(&expected, code) {
            return Err(IpmiError::malformed("RMCP+ integrity check failed"));
        }
    }
    let payload = match keys {
        Some(keys) if encrypted => keys.decrypt(body)?,
        _ => body.to_vec(),
    };
    Ok(Packet::V2(V2Packet { payload_type, encrypted, authenticated, session_id, seq, payload }))
}

fn open_v15(session: &[u8]) -> Result<V15Packet> {
    let auth_type = byte(session, 0, "IPMI 1.5 header")?;
    let seq = u32_le(session, 1, "IPMI 1.5 sequence number")?;
    let session_id = u32_le(session, 5, "IPMI 1.5 session ID")?;
    // An auth code of 16 bytes follows unless the auth type is none.
    let at = if auth_type == AUTH_TYPE_NONE { 9 } else { 25 };
    let len = usize::from(byte(session, at, "IPMI 1.5 message length")?);
    let message = take(session, at + 1, len, "IPMI 1.5 message")?.to_vec();
    Ok(V15Packet { auth_type, seq, session_id, message })
}

/// Tracks the BMC's session sequence numbers and refuses replays: a number
/// seen before, or more than 32 below the highest seen.
#[derive(Debug, Clone, Default)]
pub struct ReplayWindow {
    highest: u32,
    /// Bit `i` set: `highest - i` has been seen.
    seen: u64,
}

impl ReplayWindow {
    const WIDTH: u32 = 32;

    /// Records `seq` and tells whether it is new (0 is never valid inside a
    /// session).
    pub fn accept(&mut self, seq: u32) -> bool {
        if seq == 0 {
            return false;
        }
        if self.highest == 0 || seq > self.highest {
            let shift = seq.wrapping_sub(self.highest);
            self.seen = if self.highest == 0 || shift >= 64 { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.highest = seq;
            return true;
        }
        let behind = self.highest - seq;
        if behind >= Self::WIDTH {
            return false;
        }
        let bit = 1u64 << behind;
        if self.seen & bit != 0 {
            return false;
        }
        self.seen |= bit;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::CipherSuite;

    #[test]
    fn request_layout_matches_the_spec() {
        // Get Channel Authentication Capabilities, rqSeq 1, as ipmitool sends it.
        let bytes =
            encode_request(&Request { netfn: 0x06, cmd: 0x38, rq_seq: 1, data: vec![0x8E, 0x04] });
        assert_eq!(bytes, vec![0x20, 0x18, 0xC8, 0x81, 0x04, 0x38, 0x8E, 0x04, 0xB1]);
        assert_eq!(decode_request(&bytes).expect("decode").data, vec![0x8E, 0x04]);
    }

    #[test]
    fn sealed_packets_have_aligned_trailers_and_open_again() {
        for suite in CipherSuite::PREFERRED {
            let keys = SessionKeys::derive(suite, &[3u8; 20]).expect("keys");
            for len in 0..24 {
                let payload = vec![0xAB; len];
                let packet = seal(Some(&keys), PayloadType::Ipmi, 0x1234, 7, &payload, [1; 16])
                    .expect("seal");
                let covered = packet.len() - 4 - suite.integrity.code_len();
                assert_eq!(covered % 4, 0);
                match open(Some(&keys), &packet).expect("open") {
                    Packet::V2(v2) => {
                        assert_eq!(v2.payload, payload);
                        assert!(v2.encrypted && v2.authenticated);
                        assert_eq!((v2.session_id, v2.seq), (0x1234, 7));
                    }
                    other => panic!("unexpected {other:?}"),
                }
                let mut tampered = packet.clone();
                let last = tampered.len() - 1;
                tampered[last] ^= 1;
                assert!(open(Some(&keys), &tampered).is_err());
                assert!(open(None, &packet).is_err());
            }
        }
    }

    #[test]
    fn replay_window_refuses_repeats_and_old_numbers() {
        let mut window = ReplayWindow::default();
        assert!(!window.accept(0));
        assert!(window.accept(5));
        assert!(!window.accept(5));
        assert!(window.accept(3));
        assert!(window.accept(40));
        assert!(!window.accept(3));
        assert!(window.accept(39));
        assert!(window.accept(200));
        assert!(!window.accept(40));
    }
}

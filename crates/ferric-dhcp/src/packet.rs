//! DHCPv4 packet codec (RFC 2131 header, RFC 2132 options).
//!
//! [`Packet::decode`] is total: any byte string gives a packet or a
//! [`DecodeError`], never a panic (fuzzed in `fuzz/`). Options are kept as raw
//! `(code, bytes)` pairs in arrival order; repeated instances of one code are
//! concatenated (RFC 3396), and option overload (option 52) is honoured.
//! [`Packet::encode`] splits values longer than 255 bytes into several
//! instances and pads the result to the 300-byte BOOTP minimum.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// The magic cookie that starts the options field (RFC 2131 §3).
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Length of the fixed BOOTP header, before the magic cookie.
pub const HEADER_LEN: usize = 236;
/// Smallest message a BOOTP relay or client must accept; replies are padded to it.
pub const MIN_MESSAGE_LEN: usize = 300;
/// `flags` bit asking for a broadcast reply (RFC 2131 §2).
pub const FLAG_BROADCAST: u16 = 0x8000;

/// BOOTP `op` values.
pub const BOOTREQUEST: u8 = 1;
/// BOOTP `op` value of server replies.
pub const BOOTREPLY: u8 = 2;

/// Option codes used by ferric (RFC 2132 unless noted).
pub mod code {
    /// Padding.
    pub const PAD: u8 = 0;
    /// Subnet mask.
    pub const SUBNET_MASK: u8 = 1;
    /// Routers.
    pub const ROUTER: u8 = 3;
    /// Domain name servers.
    pub const DNS: u8 = 6;
    /// Host name.
    pub const HOSTNAME: u8 = 12;
    /// Domain name.
    pub const DOMAIN_NAME: u8 = 15;
    /// Broadcast address.
    pub const BROADCAST: u8 = 28;
    /// Vendor-specific information (PXE sub-options for PXE clients).
    pub const VENDOR_SPECIFIC: u8 = 43;
    /// Requested IP address.
    pub const REQUESTED_IP: u8 = 50;
    /// IP address lease time.
    pub const LEASE_TIME: u8 = 51;
    /// Option overload.
    pub const OVERLOAD: u8 = 52;
    /// DHCP message type.
    pub const MESSAGE_TYPE: u8 = 53;
    /// Server identifier.
    pub const SERVER_ID: u8 = 54;
    /// Parameter request list.
    pub const PARAMETER_REQUEST_LIST: u8 = 55;
    /// Message (error text).
    pub const MESSAGE: u8 = 56;
    /// Maximum DHCP message size.
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    /// Renewal (T1) time.
    pub const RENEWAL_TIME: u8 = 58;
    /// Rebinding (T2) time.
    pub const REBINDING_TIME: u8 = 59;
    /// Vendor class identifier.
    pub const VENDOR_CLASS: u8 = 60;
    /// Client identifier.
    pub const CLIENT_ID: u8 = 61;
    /// TFTP server name.
    pub const TFTP_SERVER: u8 = 66;
    /// Boot file name.
    pub const BOOTFILE: u8 = 67;
    /// User class (RFC 3004; iPXE sends the plain string `iPXE`).
    pub const USER_CLASS: u8 = 77;
    /// Relay agent information (RFC 3046).
    pub const RELAY_AGENT_INFO: u8 = 82;
    /// Client system architecture (RFC 4578).
    pub const CLIENT_ARCH: u8 = 93;
    /// Client network device interface (RFC 4578).
    pub const CLIENT_NDI: u8 = 94;
    /// Client machine identifier, UUID/GUID (RFC 4578).
    pub const CLIENT_UUID: u8 = 97;
    /// iPXE encapsulated options; present means the client is iPXE.
    pub const IPXE_ENCAP: u8 = 175;
    /// End of options.
    pub const END: u8 = 255;
}

/// Why bytes are not a DHCP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the fixed header plus magic cookie.
    #[error("packet is {0} bytes, shorter than the 240-byte DHCP minimum")]
    TooShort(usize),
    /// The magic cookie is missing: plain BOOTP or garbage.
    #[error("no DHCP magic cookie")]
    NoMagicCookie,
    /// `hlen` larger than the 16-byte `chaddr` field.
    #[error("hardware address length {0} exceeds 16")]
    BadHardwareLength(u8),
    /// An option's length runs past the end of its field.
    #[error("option {code} claims {len} bytes but the field ends first")]
    TruncatedOption {
        /// Option code.
        code: u8,
        /// Length byte as sent.
        len: u8,
    },
    /// An option with a fixed size has another size.
    #[error("option {code} has length {len}, expected {expected}")]
    BadOptionLength {
        /// Option code.
        code: u8,
        /// Actual length.
        len: usize,
        /// Expected length.
        expected: usize,
    },
}

/// A 48-bit Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

/// A MAC address that is not six hex pairs separated by `:` or `-`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?}")]
pub struct MacParseError(pub String);

impl FromStr for MacAddr {
    type Err = MacParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || MacParseError(text.to_owned());
        let mut out = [0u8; 6];
        let mut parts = text.split([':', '-']);
        for byte in &mut out {
            let part = parts.next().ok_or_else(error)?;
            if part.len() != 2 {
                return Err(error());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| error())?;
        }
        if parts.next().is_some() {
            return Err(error());
        }
        Ok(MacAddr(out))
    }
}

/// DHCP message types (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Client looks for servers.
    Discover,
    /// Server offers parameters.
    Offer,
    /// Client asks for offered (or known) parameters.
    Request,
    /// Client found the address in use.
    Decline,
    /// Server commits the lease.
    Ack,
    /// Server refuses the request.
    Nak,
    /// Client gives the address back.
    Release,
    /// Client with an address asks for configuration only.
    Inform,
    /// Any other value (answered with silence).
    Other(u8),
}

impl From<u8> for MessageType {
    fn from(value: u8) -> Self {
        match value {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            4 => MessageType::Decline,
            5 => MessageType::Ack,
            6 => MessageType::Nak,
            7 => MessageType::Release,
            8 => MessageType::Inform,
            other => MessageType::Other(other),
        }
    }
}

impl From<MessageType> for u8 {
    fn from(value: MessageType) -> Self {
        match value {
            MessageType::Discover => 1,
            MessageType::Offer => 2,
            MessageType::Request => 3,
            MessageType::Decline => 4,
            MessageType::Ack => 5,
            MessageType::Nak => 6,
            MessageType::Release => 7,
            MessageType::Inform => 8,
            MessageType::Other(other) => other,
        }
    }
}

/// One DHCPv4 message: the BOOTP header and its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// 1 = request, 2 = reply.
    pub op: u8,
    /// Hardware type (1 = Ethernet).
    pub htype: u8,
    /// Hardware address length (≤ 16).
    pub hlen: u8,
    /// Relay hops.
    pub hops: u8,
    /// Transaction id.
    pub xid: u32,
    /// Seconds since the client started.
    pub secs: u16,
    /// Flags (bit 15: broadcast).
    pub flags: u16,
    /// Client's current address.
    pub ciaddr: Ipv4Addr,
    /// "Your" address: the one offered or assigned.
    pub yiaddr: Ipv4Addr,
    /// Next server (TFTP) address.
    pub siaddr: Ipv4Addr,
    /// Relay agent address.
    pub giaddr: Ipv4Addr,
    /// Client hardware address (first `hlen` bytes meaningful).
    pub chaddr: [u8; 16],
    /// Server host name (NUL-padded), unless overloaded.
    pub sname: Vec<u8>,
    /// Boot file name (NUL-padded), unless overloaded.
    pub file: Vec<u8>,
    /// Options in order, each code once (repeats concatenated); no pad/end.
    pub options: Vec<(u8, Vec<u8>)>,
}

impl Default for Packet {
    fn default() -> Self {
        Packet {
            op: BOOTREQUEST,
            htype: 1,
            hlen: 6,
            hops: 0,
            xid: 0,
            secs: 0,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr: [0; 16],
            sname: Vec::new(),
            file: Vec::new(),
            options: Vec::new(),
        }
    }
}

fn ipv4_at(bytes: &[u8], at: usize) -> Ipv4Addr {
    match bytes.get(at..at + 4) {
        Some(&[a, b, c, d]) => Ipv4Addr::new(a, b, c, d),
        _ => Ipv4Addr::UNSPECIFIED,
    }
}

/// Bytes up to the first NUL.
fn until_nul(field: &[u8]) -> Vec<u8> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    field[..end].to_vec()
}

/// Parses one options area into `out`; returns whether an END was seen.
fn parse_options(area: &[u8], out: &mut Vec<(u8, Vec<u8>)>) -> Result<(), DecodeError> {
    let mut at = 0;
    while let Some(&code) = area.get(at) {
        match code {
            code::PAD => at += 1,
            code::END => return Ok(()),
            _ => {
                let len = *area.get(at + 1).ok_or(DecodeError::TruncatedOption { code, len: 0 })?;
                let value = area
                    .get(at + 2..at + 2 + usize::from(len))
                    .ok_or(DecodeError::TruncatedOption { code, len })?;
                match out.iter_mut().find(|(c, _)| *c == code) {
                    Some((_, existing)) => existing.extend_from_slice(value),
                    None => out.push((code, value.to_vec())),
                }
                at += 2 + usize::from(len);
            }
        }
    }
    // A missing END option is tolerated: several clients omit it.
    Ok(())
}

/// Sizes of the fixed-length options whose values ferric reads.
fn check_fixed_lengths(options: &[(u8, Vec<u8>)]) -> Result<(), DecodeError> {
    for (option, value) in options {
        let expected = match *option {
            code::MESSAGE_TYPE | code::OVERLOAD => 1,
            code::REQUESTED_IP | code::SERVER_ID | code::LEASE_TIME => 4,
            code::MAX_MESSAGE_SIZE => 2,
            _ => continue,
        };
        if value.len() != expected {
            return Err(DecodeError::BadOptionLength { code: *option, len: value.len(), expected });
        }
    }
    Ok(())
}

impl Packet {
    /// Decodes a DHCP message. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Packet, DecodeError> {
        if bytes.len() < HEADER_LEN + 4 {
            return Err(DecodeError::TooShort(bytes.len()));
        }
        if bytes[HEADER_LEN..HEADER_LEN + 4] != MAGIC_COOKIE {
            return Err(DecodeError::NoMagicCookie);
        }
        let hlen = bytes[2];
        if hlen > 16 {
            return Err(DecodeError::BadHardwareLength(hlen));
        }
        let mut chaddr = [0u8; 16];
        chaddr.copy_from_slice(&bytes[28..44]);
        let sname_field = &bytes[44..108];
        let file_field = &bytes[108..236];
        let mut options = Vec::new();
        parse_options(&bytes[HEADER_LEN + 4..], &mut options)?;
        let overload = options
            .iter()
            .find(|(c, _)| *c == code::OVERLOAD)
            .and_then(|(_, v)| v.first().copied())
            .unwrap_or(0);
        let mut file = until_nul(file_field);
        let mut sname = until_nul(sname_field);
        if overload & 1 != 0 {
            parse_options(file_field, &mut options)?;
            file.clear();
        }
        if overload & 2 != 0 {
            parse_options(sname_field, &mut options)?;
            sname.clear();
        }
        options.retain(|(c, _)| *c != code::OVERLOAD);
        check_fixed_lengths(&options)?;
        Ok(Packet {
            op: bytes[0],
            htype: bytes[1],
            hlen,
            hops: bytes[3],
            xid: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            secs: u16::from_be_bytes([bytes[8], bytes[9]]),
            flags: u16::from_be_bytes([bytes[10], bytes[11]]),
            ciaddr: ipv4_at(bytes, 12),
            yiaddr: ipv4_at(bytes, 16),
            siaddr: ipv4_at(bytes, 20),
            giaddr: ipv4_at(bytes, 24),
            chaddr,
            sname,
            file,
            options,
        })
    }

    /// Encodes the message; `sname` and `file` are truncated to their fields.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MIN_MESSAGE_LEN + 64);
        out.extend_from_slice(&[self.op, self.htype, self.hlen, self.hops]);
        out.extend_from_slice(&self.xid.to_be_bytes());
        out.extend_from_slice(&self.secs.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        for address in [self.ciaddr, self.yiaddr, self.siaddr, self.giaddr] {
            out.extend_from_slice(&address.octets());
        }
        out.extend_from_slice(&self.chaddr);
        let mut sname = [0u8; 64];
        let n = self.sname.len().min(63);
        sname[..n].copy_from_slice(&self.sname[..n]);
        out.extend_from_slice(&sname);
        let mut file = [0u8; 128];
        let n = self.file.len().min(127);
        file[..n].copy_from_slice(&self.file[..n]);
        out.extend_from_slice(&file);
        out.extend_from_slice(&MAGIC_COOKIE);
        for (option, value) in &self.options {
            if matches!(*option, code::PAD | code::END) {
                continue;
            }
            if value.is_empty() {
                out.extend_from_slice(&[*option, 0]);
            }
            for chunk in value.chunks(255) {
                out.push(*option);
                out.push(chunk.len() as u8);
                out.extend_from_slice(chunk);
            }
        }
        out.push(code::END);
        if out.len() < MIN_MESSAGE_LEN {
            out.resize(MIN_MESSAGE_LEN, 0);
        }
        out
    }

    /// The raw value of option `option`.
    pub fn option(&self, option: u8) -> Option<&[u8]> {
        self.options.iter().find(|(c, _)| *c == option).map(|(_, v)| v.as_slice())
    }

    /// Sets (replacing) option `option`.
    pub fn set_option(&mut self, option: u8, value: impl Into<Vec<u8>>) {
        let value = value.into();
        match self.options.iter_mut().find(|(c, _)| *c == option) {
            Some((_, existing)) => *existing = value,
            None => self.options.push((option, value)),
        }
    }

    /// The message type (option 53), if present.
    pub fn message_type(&self) -> Option<MessageType> {
        self.option(code::MESSAGE_TYPE).and_then(|v| v.first()).map(|&b| MessageType::from(b))
    }

    /// An option holding one IPv4 address.
    pub fn option_ipv4(&self, option: u8) -> Option<Ipv4Addr> {
        match self.option(option)? {
            &[a, b, c, d] => Some(Ipv4Addr::new(a, b, c, d)),
            _ => None,
        }
    }

    /// The client's MAC, when the hardware is Ethernet-like (hlen 6).
    pub fn mac(&self) -> Option<MacAddr> {
        if self.hlen != 6 {
            return None;
        }
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&self.chaddr[..6]);
        Some(MacAddr(mac))
    }

    /// Sets `chaddr` (and `htype`/`hlen`) from a MAC.
    pub fn set_mac(&mut self, mac: MacAddr) {
        self.htype = 1;
        self.hlen = 6;
        self.chaddr = [0; 16];
        self.chaddr[..6].copy_from_slice(&mac.0);
    }

    /// Whether the client asked for a broadcast reply.
    pub fn broadcast(&self) -> bool {
        self.flags & FLAG_BROADCAST != 0
    }

    /// The client architecture (option 93, first entry), if sent.
    pub fn client_arch(&self) -> Option<u16> {
        match self.option(code::CLIENT_ARCH)? {
            [hi, lo, ..] => Some(u16::from_be_bytes([*hi, *lo])),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Packet {
        let mut p = Packet { xid: 0x1234_5678, flags: FLAG_BROADCAST, ..Packet::default() };
        p.set_mac("52:54:00:12:34:56".parse().unwrap());
        p.set_option(code::MESSAGE_TYPE, [1]);
        p.set_option(code::PARAMETER_REQUEST_LIST, [1, 3, 6, 67]);
        p
    }

    #[test]
    fn round_trip_and_padding() {
        let bytes = sample().encode();
        assert_eq!(bytes.len(), MIN_MESSAGE_LEN);
        assert_eq!(Packet::decode(&bytes).unwrap(), sample());
    }

    #[test]
    fn mac_parse_and_display() {
        let mac: MacAddr = "52-54-00-AB-cd-01".parse().unwrap();
        assert_eq!(mac.to_string(), "52:54:00:ab:cd:01");
        for bad in
            ["", "52:54:00:ab:cd", "52:54:00:ab:cd:01:02", "5:54:00:ab:cd:01", "zz:54:00:ab:cd:01"]
        {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn truncated_and_short() {
        let bytes = sample().encode();
        assert_eq!(Packet::decode(&bytes[..239]), Err(DecodeError::TooShort(239)));
        assert_eq!(Packet::decode(&[]), Err(DecodeError::TooShort(0)));
        // Cut in the middle of option 55's value.
        assert_eq!(
            Packet::decode(&bytes[..246]),
            Err(DecodeError::TruncatedOption { code: 55, len: 4 })
        );
        // Cut right after an option code.
        assert_eq!(
            Packet::decode(&bytes[..244]),
            Err(DecodeError::TruncatedOption { code: 55, len: 0 })
        );
        // Cut exactly after the last option: no END is fine.
        assert!(Packet::decode(&bytes[..249]).is_ok());
    }

    #[test]
    fn bad_cookie_and_hlen() {
        let mut bytes = sample().encode();
        bytes[236] = 0;
        assert_eq!(Packet::decode(&bytes), Err(DecodeError::NoMagicCookie));
        let mut bytes = sample().encode();
        bytes[2] = 17;
        assert_eq!(Packet::decode(&bytes), Err(DecodeError::BadHardwareLength(17)));
    }

    #[test]
    fn bad_fixed_option_lengths() {
        for (option, value) in
            [(53u8, vec![1, 2]), (50, vec![1, 2, 3]), (54, vec![]), (51, vec![0; 5])]
        {
            let mut p = sample();
            p.set_option(option, value.clone());
            assert_eq!(
                Packet::decode(&p.encode()),
                Err(DecodeError::BadOptionLength {
                    code: option,
                    len: value.len(),
                    expected: if option == 53 { 1 } else { 4 }
                })
            );
        }
    }

    #[test]
    fn long_options_split_and_concatenate() {
        let mut p = sample();
        let long: Vec<u8> = (0..600u32).map(|i| i as u8).collect();
        p.set_option(code::VENDOR_SPECIFIC, long.clone());
        let bytes = p.encode();
        assert_eq!(Packet::decode(&bytes).unwrap().option(code::VENDOR_SPECIFIC), Some(&long[..]));
    }

    #[test]
    fn option_overload_reads_file_and_sname() {
        let mut bytes = sample().encode();
        // Option 52 = 3 (file and sname), placed over the padding after END.
        let end = bytes.iter().rposition(|&b| b == code::END).unwrap();
        bytes.truncate(end);
        bytes.extend_from_slice(&[code::OVERLOAD, 1, 3, code::END]);
        bytes[108..112].copy_from_slice(&[code::HOSTNAME, 2, b'h', b'1']);
        bytes[112] = code::END;
        bytes[44..48].copy_from_slice(&[code::BOOTFILE, 2, b'f', b'1']);
        let p = Packet::decode(&bytes).unwrap();
        assert_eq!(p.option(code::HOSTNAME), Some(&b"h1"[..]));
        assert_eq!(p.option(code::BOOTFILE), Some(&b"f1"[..]));
        assert!(p.file.is_empty() && p.sname.is_empty());
        assert_eq!(p.option(code::OVERLOAD), None);
    }

    fn arb_packet() -> impl Strategy<Value = Packet> {
        let options = proptest::collection::vec(
            (1u8..=254, proptest::collection::vec(any::<u8>(), 0..300)),
            0..8,
        )
        .prop_map(|raw| {
            let mut out: Vec<(u8, Vec<u8>)> = Vec::new();
            for (c, v) in raw {
                // Fixed-size options get a valid size; each code once; no overload.
                let v = match c {
                    53 | 52 => vec![v.first().copied().unwrap_or(1)],
                    50 | 51 | 54 => [v.as_slice(), &[0; 4]].concat()[..4].to_vec(),
                    57 => [v.as_slice(), &[0; 2]].concat()[..2].to_vec(),
                    _ => v,
                };
                if c != code::OVERLOAD && !out.iter().any(|(k, _)| *k == c) {
                    out.push((c, v));
                }
            }
            out
        });
        (
            any::<(u8, u8, u32, u16, u16, [u8; 4], [u8; 4], [u8; 4], [u8; 4])>(),
            0u8..=16,
            any::<[u8; 16]>(),
            proptest::collection::vec(1u8..=255, 0..63),
            proptest::collection::vec(1u8..=255, 0..127),
            options,
        )
            .prop_map(
                |(
                    (op, htype, xid, secs, flags, c, y, s, g),
                    hlen,
                    chaddr,
                    sname,
                    file,
                    options,
                )| {
                    Packet {
                        op,
                        htype,
                        hlen,
                        hops: 0,
                        xid,
                        secs,
                        flags,
                        ciaddr: c.into(),
                        yiaddr: y.into(),
                        siaddr: s.into(),
                        giaddr: g.into(),
                        chaddr,
                        sname,
                        file,
                        options,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
            let _ = Packet::decode(&bytes);
        }

        #[test]
        fn decode_never_panics_with_cookie(mut bytes in proptest::collection::vec(any::<u8>(), 240..800)) {
            bytes[236..240].copy_from_slice(&MAGIC_COOKIE);
            bytes[2] %= 17;
            let _ = Packet::decode(&bytes);
        }

        #[test]
        fn encode_decode_round_trip(packet in arb_packet()) {
            let decoded = Packet::decode(&packet.encode()).unwrap();
            prop_assert_eq!(decoded, packet);
        }
    }
}

//! TFTP packets on the wire: decoding and encoding of every opcode of
//! RFC 1350 plus the option acknowledgement of RFC 2347.
//!
//! Decoding is total: any byte slice yields a [`Packet`] or a
//! [`ParseError`], never a panic. It is lenient where real clients are
//! sloppy (NUL padding after the last option, an error message without its
//! terminating NUL) and strict where it matters (a file name must be UTF-8
//! and NUL-terminated). Decoding normalises, so encoding a decoded packet and
//! decoding it again gives the same value.

use std::fmt;

/// Smallest block size a client may ask for (RFC 2348).
pub const MIN_BLOCK_SIZE: u16 = 8;
/// Largest block size a client may ask for (RFC 2348).
pub const MAX_BLOCK_SIZE: u16 = 65464;
/// Block size when none is negotiated (RFC 1350).
pub const DEFAULT_BLOCK_SIZE: u16 = 512;

const OPCODE_READ_REQUEST: u16 = 1;
const OPCODE_WRITE_REQUEST: u16 = 2;
const OPCODE_DATA: u16 = 3;
const OPCODE_ACK: u16 = 4;
const OPCODE_ERROR: u16 = 5;
const OPCODE_OPTION_ACK: u16 = 6;

/// Why a datagram is not a valid TFTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Fewer bytes than the opcode needs.
    #[error("packet of {0} bytes is too short")]
    Truncated(usize),
    /// An opcode outside 1..=6.
    #[error("unknown opcode {0}")]
    UnknownOpcode(u16),
    /// A valid packet, but not a read or write request.
    #[error("opcode {0} is not a read or write request")]
    NotARequest(u16),
    /// A string field runs to the end of the packet without its NUL.
    #[error("{0} is not terminated by a NUL byte")]
    Unterminated(&'static str),
    /// The file name is not UTF-8.
    #[error("{0} is not valid UTF-8")]
    NotUtf8(&'static str),
    /// A mode other than netascii, octet or mail.
    #[error("unknown transfer mode {0:?}")]
    UnknownMode(String),
    /// An option name without a value.
    #[error("option {0:?} has no value")]
    OptionWithoutValue(String),
}

/// Whether a request reads from or writes to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// RRQ: the client downloads a file.
    Read,
    /// WRQ: the client uploads a file (this server refuses these).
    Write,
}

/// Transfer mode of a request (RFC 1350 section 1), matched case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Text: line ends are sent as CR LF and a bare CR as CR NUL.
    Netascii,
    /// Raw bytes.
    Octet,
    /// Obsolete mail delivery; parsed so it can be refused politely.
    Mail,
}

impl Mode {
    /// The mode's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Netascii => "netascii",
            Mode::Octet => "octet",
            Mode::Mail => "mail",
        }
    }

    fn parse(text: &str) -> Result<Self, ParseError> {
        if text.eq_ignore_ascii_case("netascii") {
            Ok(Mode::Netascii)
        } else if text.eq_ignore_ascii_case("octet") {
            Ok(Mode::Octet)
        } else if text.eq_ignore_ascii_case("mail") {
            Ok(Mode::Mail)
        } else {
            Err(ParseError::UnknownMode(text.to_owned()))
        }
    }
}

/// One option of a request or an option acknowledgement (RFC 2347), kept
/// as sent; names are compared case-insensitively by the negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TftpOption {
    /// The option's name, e.g. `blksize`.
    pub name: String,
    /// The option's value, e.g. `1468`.
    pub value: String,
}

impl TftpOption {
    /// An option from its name and value.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        TftpOption { name: name.into(), value: value.into() }
    }
}

/// A read or write request (RRQ/WRQ).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Read or write.
    pub kind: RequestKind,
    /// The requested file, as the client wrote it.
    pub filename: String,
    /// The transfer mode.
    pub mode: Mode,
    /// Options in the order the client sent them.
    pub options: Vec<TftpOption>,
}

/// A TFTP error code (RFC 1350 section 5, RFC 2347 for code 8). A newtype
/// rather than an enum so that codes this crate does not name survive a
/// decode/encode round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// 0: see the message.
    pub const NOT_DEFINED: ErrorCode = ErrorCode(0);
    /// 1: file not found.
    pub const FILE_NOT_FOUND: ErrorCode = ErrorCode(1);
    /// 2: access violation.
    pub const ACCESS_VIOLATION: ErrorCode = ErrorCode(2);
    /// 3: disk full or allocation exceeded.
    pub const DISK_FULL: ErrorCode = ErrorCode(3);
    /// 4: illegal TFTP operation.
    pub const ILLEGAL_OPERATION: ErrorCode = ErrorCode(4);
    /// 5: unknown transfer ID.
    pub const UNKNOWN_TRANSFER_ID: ErrorCode = ErrorCode(5);
    /// 6: file already exists.
    pub const FILE_EXISTS: ErrorCode = ErrorCode(6);
    /// 7: no such user.
    pub const NO_SUCH_USER: ErrorCode = ErrorCode(7);
    /// 8: option negotiation refused (RFC 2347).
    pub const OPTION_REFUSED: ErrorCode = ErrorCode(8);
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Any TFTP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// RRQ or WRQ.
    Request(Request),
    /// One block of file data; the last block is shorter than the block size.
    Data {
        /// Block number (wraps from 65535 to 0).
        block: u16,
        /// The block's bytes.
        data: Vec<u8>,
    },
    /// Acknowledgement of a data block, or of the option acknowledgement (block 0).
    Ack {
        /// The acknowledged block number.
        block: u16,
    },
    /// An error; ends the transfer.
    Error {
        /// What went wrong.
        code: ErrorCode,
        /// A human-readable explanation.
        message: String,
    },
    /// Option acknowledgement (RFC 2347): the options the server accepted.
    OptionAck {
        /// Accepted options with their final values.
        options: Vec<TftpOption>,
    },
}

impl Packet {
    /// An error packet.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Packet::Error { code, message: message.into() }
    }

    /// Decodes one datagram.
    pub fn decode(datagram: &[u8]) -> Result<Packet, ParseError> {
        let (opcode, body) = split_opcode(datagram)?;
        match opcode {
            OPCODE_READ_REQUEST | OPCODE_WRITE_REQUEST => {
                parse_request(datagram).map(Packet::Request)
            }
            OPCODE_DATA => {
                let (block, data) = split_u16(body, datagram.len())?;
                Ok(Packet::Data { block, data: data.to_vec() })
            }
            // Trailing bytes after the block number are padding some clients add.
            OPCODE_ACK => Ok(Packet::Ack { block: split_u16(body, datagram.len())?.0 }),
            OPCODE_ERROR => {
                let (code, rest) = split_u16(body, datagram.len())?;
                // Lenient: a message without its NUL runs to the end.
                let message = match rest.iter().position(|&byte| byte == 0) {
                    Some(end) => &rest[..end],
                    None => rest,
                };
                Ok(Packet::Error {
                    code: ErrorCode(code),
                    message: String::from_utf8_lossy(message).into_owned(),
                })
            }
            OPCODE_OPTION_ACK => Ok(Packet::OptionAck { options: parse_options(body)? }),
            other => Err(ParseError::UnknownOpcode(other)),
        }
    }

    /// Encodes the packet into a new buffer.
    pub fn encode(&self) -> Vec<u8> {
        let mut buffer = Vec::new();
        self.encode_into(&mut buffer);
        buffer
    }

    /// Encodes the packet into `buffer`, replacing its contents (so one
    /// buffer can be reused for every packet of a transfer). Strings are
    /// cut at their first NUL byte, which the wire format cannot carry.
    pub fn encode_into(&self, buffer: &mut Vec<u8>) {
        buffer.clear();
        match self {
            Packet::Request(request) => {
                let opcode = match request.kind {
                    RequestKind::Read => OPCODE_READ_REQUEST,
                    RequestKind::Write => OPCODE_WRITE_REQUEST,
                };
                buffer.extend_from_slice(&opcode.to_be_bytes());
                put_string(buffer, &request.filename);
                put_string(buffer, request.mode.as_str());
                put_options(buffer, &request.options);
            }
            Packet::Data { block, data } => {
                buffer.extend_from_slice(&OPCODE_DATA.to_be_bytes());
                buffer.extend_from_slice(&block.to_be_bytes());
                buffer.extend_from_slice(data);
            }
            Packet::Ack { block } => {
                buffer.extend_from_slice(&OPCODE_ACK.to_be_bytes());
                buffer.extend_from_slice(&block.to_be_bytes());
            }
            Packet::Error { code, message } => {
                buffer.extend_from_slice(&OPCODE_ERROR.to_be_bytes());
                buffer.extend_from_slice(&code.0.to_be_bytes());
                put_string(buffer, message);
            }
            Packet::OptionAck { options } => {
                buffer.extend_from_slice(&OPCODE_OPTION_ACK.to_be_bytes());
                put_options(buffer, options);
            }
        }
    }
}

/// Parses a datagram received on the server's listening port as a read or
/// write request.
pub fn parse_request(datagram: &[u8]) -> Result<Request, ParseError> {
    let (opcode, body) = split_opcode(datagram)?;
    let kind = match opcode {
        OPCODE_READ_REQUEST => RequestKind::Read,
        OPCODE_WRITE_REQUEST => RequestKind::Write,
        OPCODE_DATA | OPCODE_ACK | OPCODE_ERROR | OPCODE_OPTION_ACK => {
            return Err(ParseError::NotARequest(opcode))
        }
        other => return Err(ParseError::UnknownOpcode(other)),
    };
    let (filename, rest) = take_string(body, "file name")?;
    let filename =
        std::str::from_utf8(filename).map_err(|_| ParseError::NotUtf8("file name"))?.to_owned();
    let (mode, rest) = take_string(rest, "mode")?;
    let mode = Mode::parse(&String::from_utf8_lossy(mode))?;
    let options = parse_options(rest)?;
    Ok(Request { kind, filename, mode, options })
}

fn split_opcode(datagram: &[u8]) -> Result<(u16, &[u8]), ParseError> {
    split_u16(datagram, datagram.len())
}

fn split_u16(bytes: &[u8], packet_len: usize) -> Result<(u16, &[u8]), ParseError> {
    match bytes {
        [high, low, rest @ ..] => Ok((u16::from_be_bytes([*high, *low]), rest)),
        _ => Err(ParseError::Truncated(packet_len)),
    }
}

/// Splits off a NUL-terminated string.
fn take_string<'a>(
    bytes: &'a [u8],
    field: &'static str,
) -> Result<(&'a [u8], &'a [u8]), ParseError> {
    let end = bytes.iter().position(|&byte| byte == 0).ok_or(ParseError::Unterminated(field))?;
    Ok((&bytes[..end], &bytes[end + 1..]))
}

/// Parses `name NUL value NUL` pairs up to the end of the packet. Trailing
/// NUL padding is ignored.
fn parse_options(mut rest: &[u8]) -> Result<Vec<TftpOption>, ParseError> {
    let mut options = Vec::new();
    while rest.iter().any(|&byte| byte != 0) {
        let (name, after_name) = take_string(rest, "option name")?;
        let name = String::from_utf8_lossy(name).into_owned();
        let (value, after_value) = match take_string(after_name, "option value") {
            Ok(split) => split,
            Err(_) if after_name.is_empty() => return Err(ParseError::OptionWithoutValue(name)),
            Err(error) => return Err(error),
        };
        options.push(TftpOption { name, value: String::from_utf8_lossy(value).into_owned() });
        rest = after_value;
    }
    Ok(options)
}

fn put_string(buffer: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let end = bytes.iter().position(|&byte| byte == 0).unwrap_or(bytes.len());
    buffer.extend_from_slice(&bytes[..end]);
    buffer.push(0);
}

fn put_options(buffer: &mut Vec<u8>, options: &[TftpOption]) {
    for option in options {
        put_string(buffer, &option.name);
        put_string(buffer, &option.value);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_a_plain_read_request() {
        let request = parse_request(b"\x00\x01pxelinux.0\x00octet\x00").unwrap();
        assert_eq!(
            request,
            Request {
                kind: RequestKind::Read,
                filename: "pxelinux.0".into(),
                mode: Mode::Octet,
                options: vec![],
            }
        );
    }

    #[test]
    fn parses_options_mode_case_insensitively_and_tolerates_padding() {
        let request =
            parse_request(b"\x00\x01a/b\x00NetASCII\x00blksize\x001468\x00TSIZE\x000\x00\x00\x00")
                .unwrap();
        assert_eq!(request.mode, Mode::Netascii);
        assert_eq!(
            request.options,
            vec![TftpOption::new("blksize", "1468"), TftpOption::new("TSIZE", "0")]
        );
    }

    #[test]
    fn parses_a_write_request_as_such() {
        let request = parse_request(b"\x00\x02upload\x00octet\x00").unwrap();
        assert_eq!(request.kind, RequestKind::Write);
    }

    #[test]
    fn refuses_malformed_requests() {
        assert_eq!(parse_request(b""), Err(ParseError::Truncated(0)));
        assert_eq!(parse_request(b"\x00"), Err(ParseError::Truncated(1)));
        assert_eq!(parse_request(b"\x00\x04\x00\x01"), Err(ParseError::NotARequest(4)));
        assert_eq!(parse_request(b"\x00\x09x\x00octet\x00"), Err(ParseError::UnknownOpcode(9)));
        assert_eq!(parse_request(b"\x00\x01file"), Err(ParseError::Unterminated("file name")));
        assert_eq!(parse_request(b"\x00\x01file\x00octet"), Err(ParseError::Unterminated("mode")));
        assert_eq!(
            parse_request(b"\x00\x01file\x00binary\x00"),
            Err(ParseError::UnknownMode("binary".into()))
        );
        assert_eq!(
            parse_request(b"\x00\x01\xff\xfe\x00octet\x00"),
            Err(ParseError::NotUtf8("file name"))
        );
        assert_eq!(
            parse_request(b"\x00\x01f\x00octet\x00blksize\x00"),
            Err(ParseError::OptionWithoutValue("blksize".into()))
        );
        assert_eq!(
            parse_request(b"\x00\x01f\x00octet\x00blksize\x00512"),
            Err(ParseError::Unterminated("option value"))
        );
    }

    #[test]
    fn encodes_packets_as_rfc_1350_lays_them_out() {
        assert_eq!(
            Packet::Data { block: 0x0102, data: b"abc".to_vec() }.encode(),
            b"\x00\x03\x01\x02abc"
        );
        assert_eq!(Packet::Ack { block: 7 }.encode(), b"\x00\x04\x00\x07");
        assert_eq!(
            Packet::error(ErrorCode::FILE_NOT_FOUND, "nope").encode(),
            b"\x00\x05\x00\x01nope\x00"
        );
        assert_eq!(
            Packet::OptionAck { options: vec![TftpOption::new("blksize", "1468")] }.encode(),
            b"\x00\x06blksize\x001468\x00"
        );
    }

    #[test]
    fn decodes_an_error_without_its_nul() {
        assert_eq!(
            Packet::decode(b"\x00\x05\x00\x02denied"),
            Ok(Packet::error(ErrorCode::ACCESS_VIOLATION, "denied"))
        );
    }

    fn text() -> impl Strategy<Value = String> {
        "[^\u{0}]{0,24}"
    }

    fn option() -> impl Strategy<Value = TftpOption> {
        ("[^\u{0}]{1,12}", text()).prop_map(|(name, value)| TftpOption { name, value })
    }

    fn packet() -> impl Strategy<Value = Packet> {
        let mode = prop_oneof![Just(Mode::Netascii), Just(Mode::Octet), Just(Mode::Mail)];
        let kind = prop_oneof![Just(RequestKind::Read), Just(RequestKind::Write)];
        prop_oneof![
            (kind, text(), mode, prop::collection::vec(option(), 0..5)).prop_map(
                |(kind, filename, mode, options)| Packet::Request(Request {
                    kind,
                    filename,
                    mode,
                    options
                })
            ),
            (any::<u16>(), prop::collection::vec(any::<u8>(), 0..600))
                .prop_map(|(block, data)| Packet::Data { block, data }),
            any::<u16>().prop_map(|block| Packet::Ack { block }),
            (any::<u16>(), text())
                .prop_map(|(code, message)| Packet::Error { code: ErrorCode(code), message }),
            prop::collection::vec(option(), 0..5).prop_map(|options| Packet::OptionAck { options }),
        ]
    }

    proptest! {
        #[test]
        fn parser_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..700)) {
            let _ = parse_request(&bytes);
            let _ = Packet::decode(&bytes);
        }

        #[test]
        fn parser_never_panics_on_request_shaped_bytes(
            opcode in 0u16..8,
            fields in prop::collection::vec("[a-z0-9./]{0,8}", 0..8),
            trailing_nul in any::<bool>(),
        ) {
            let mut bytes = opcode.to_be_bytes().to_vec();
            bytes.extend(fields.join("\0").into_bytes());
            if trailing_nul {
                bytes.push(0);
            }
            let _ = parse_request(&bytes);
            let _ = Packet::decode(&bytes);
        }

        #[test]
        fn encode_then_decode_is_identity(packet in packet()) {
            prop_assert_eq!(Packet::decode(&packet.encode()), Ok(packet));
        }

        #[test]
        fn decode_normalises_so_a_second_round_trip_is_stable(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(packet) = Packet::decode(&bytes) {
                prop_assert_eq!(Packet::decode(&packet.encode()), Ok(packet));
            }
        }
    }
}

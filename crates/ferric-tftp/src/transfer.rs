//! The per-transfer state machine: fed with what the client sent (or the
//! news that the retransmission timer fired), it answers with the packets to
//! send. It owns no socket and no clock — the server drives it — so every
//! protocol behaviour can be tested packet in, packet out.
//!
//! Acknowledgement rules (RFC 1350, RFC 7440):
//! - Blocks are numbered from 1 and wrap from 65535 to 0 on the wire;
//!   internally they are counted in `u64` so files of any length work.
//! - The server sends a window of `windowsize` blocks and waits. An ACK for
//!   the last block of the window moves it on; an ACK for an earlier block
//!   of the window means the client lost what followed, so the next window
//!   starts right after the acknowledged block (lost-packet recovery).
//! - An ACK that acknowledges nothing new (a duplicate, or a stale one from
//!   an older window) is ignored: only the retransmission timer resends.
//!   Answering duplicates with data is the Sorcerer's Apprentice bug, where
//!   every later block goes out twice.
//! - A timeout resends the whole unacknowledged window (or the OACK); after
//!   `max_retries` timeouts without progress the transfer is abandoned.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::time::Duration;

use crate::netascii::NetasciiReader;
use crate::options::{negotiate, NegotiatedOptions, TransferConfig};
use crate::packet::{ErrorCode, Mode, Packet, Request, RequestKind};
use crate::source::{FileSource, OpenedFile};

/// Where a transfer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferState {
    /// An OACK was sent; waiting for the client's ACK of block 0.
    AwaitingOptionAck,
    /// Data is flowing.
    Sending,
    /// The last block was acknowledged.
    Complete,
    /// The transfer was abandoned; see [`Transfer::failure`].
    Failed,
}

/// Why a transfer was abandoned.
#[derive(Debug, thiserror::Error)]
pub enum TransferFailure {
    /// The client stopped acknowledging.
    #[error("no acknowledgement after {0} retransmissions")]
    TimedOut(u32),
    /// The client sent an error packet.
    #[error("client sent error {code}: {message}")]
    PeerError {
        /// The client's error code.
        code: ErrorCode,
        /// The client's message.
        message: String,
    },
    /// The client sent something other than an ACK or an error.
    #[error("unexpected packet from the client: {0}")]
    UnexpectedPacket(String),
    /// Reading the file failed part-way.
    #[error("reading the file failed: {0}")]
    ReadFailed(#[source] io::Error),
}

/// One read transfer, from the first response to the last acknowledgement.
pub struct Transfer {
    options: NegotiatedOptions,
    max_retries: u32,
    reader: Box<dyn Read + Send>,
    state: TransferState,
    failure: Option<TransferFailure>,
    /// The OACK, kept for retransmission while it is unacknowledged.
    option_ack: Option<Packet>,
    /// Highest block the client acknowledged (0: none yet).
    acknowledged: u64,
    /// Blocks `acknowledged + 1 ..` that were sent and are not acknowledged.
    window: VecDeque<Vec<u8>>,
    /// The number of the final (short) block, once it has been read.
    last_block: Option<u64>,
    /// Timeouts since the last progress.
    retries: u32,
    bytes_acknowledged: u64,
    retransmissions: u64,
}

impl std::fmt::Debug for Transfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transfer")
            .field("options", &self.options)
            .field("state", &self.state)
            .field("acknowledged", &self.acknowledged)
            .field("unacknowledged_blocks", &self.window.len())
            .field("last_block", &self.last_block)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

/// A block number as it appears on the wire (wraps to 0 after 65535).
fn wire_block(block: u64) -> u16 {
    (block & 0xFFFF) as u16
}

impl Transfer {
    /// The error to answer a request with before any file is opened: write
    /// requests (this server is read-only) and the obsolete mail mode.
    pub fn refusal(request: &Request) -> Option<Packet> {
        if request.kind == RequestKind::Write {
            return Some(Packet::error(
                ErrorCode::ACCESS_VIOLATION,
                "Access violation: this server is read-only",
            ));
        }
        if request.mode == Mode::Mail {
            return Some(Packet::error(
                ErrorCode::ILLEGAL_OPERATION,
                "Illegal operation: mail mode is not supported",
            ));
        }
        None
    }

    /// Answers a request: opens the file from `source` and starts the
    /// transfer, or gives the error packet to send instead.
    pub fn open(
        request: &Request,
        source: &dyn FileSource,
        config: &TransferConfig,
    ) -> Result<(Transfer, Vec<Packet>), Packet> {
        if let Some(refusal) = Transfer::refusal(request) {
            return Err(refusal);
        }
        let file = source.open(&request.filename).map_err(|error| error.to_packet())?;
        Ok(Transfer::start(request, file, config))
    }

    /// Starts a read transfer of an opened file: negotiates the options and
    /// returns the first packets (the OACK, or the first window of data).
    pub fn start(
        request: &Request,
        file: OpenedFile,
        config: &TransferConfig,
    ) -> (Transfer, Vec<Packet>) {
        let (reader, transfer_size): (Box<dyn Read + Send>, Option<u64>) = match request.mode {
            Mode::Netascii => (Box::new(NetasciiReader::new(file.reader)), None),
            Mode::Octet | Mode::Mail => (file.reader, file.size),
        };
        let options = negotiate(&request.options, transfer_size, config);
        let option_ack = (!options.acknowledged.is_empty())
            .then(|| Packet::OptionAck { options: options.acknowledged.clone() });
        let mut transfer = Transfer {
            options,
            max_retries: config.max_retries,
            reader,
            state: TransferState::Sending,
            failure: None,
            option_ack,
            acknowledged: 0,
            window: VecDeque::new(),
            last_block: None,
            retries: 0,
            bytes_acknowledged: 0,
            retransmissions: 0,
        };
        let first = match &transfer.option_ack {
            Some(option_ack) => {
                transfer.state = TransferState::AwaitingOptionAck;
                vec![option_ack.clone()]
            }
            None => transfer.send_window(),
        };
        (transfer, first)
    }

    /// Handles a datagram from the client's transfer ID.
    pub fn on_packet(&mut self, datagram: &[u8]) -> Vec<Packet> {
        if self.is_finished() {
            return Vec::new();
        }
        match Packet::decode(datagram) {
            Ok(Packet::Ack { block }) => self.on_ack(block),
            Ok(Packet::Error { code, message }) => {
                self.fail(TransferFailure::PeerError { code, message });
                Vec::new()
            }
            Ok(other) => self.illegal(format!("{other:?}")),
            Err(error) => self.illegal(error.to_string()),
        }
    }

    /// Handles an acknowledgement of `block`.
    pub fn on_ack(&mut self, block: u16) -> Vec<Packet> {
        match self.state {
            TransferState::AwaitingOptionAck if block == 0 => {
                self.state = TransferState::Sending;
                self.retries = 0;
                self.send_window()
            }
            TransferState::Sending => {
                let outstanding = self.window.len() as u64;
                let advance = u64::from(block.wrapping_sub(wire_block(self.acknowledged)));
                if advance == 0 || advance > outstanding {
                    // Duplicate or stale: acknowledges nothing new.
                    return Vec::new();
                }
                for data in self.window.drain(..advance as usize) {
                    self.bytes_acknowledged += data.len() as u64;
                }
                self.acknowledged += advance;
                self.retries = 0;
                if self.last_block == Some(self.acknowledged) {
                    self.state = TransferState::Complete;
                    return Vec::new();
                }
                self.send_window()
            }
            _ => Vec::new(),
        }
    }

    /// Handles the retransmission timer firing: resends the OACK or the
    /// unacknowledged window, or gives up after too many tries.
    pub fn on_timeout(&mut self) -> Vec<Packet> {
        if self.is_finished() {
            return Vec::new();
        }
        self.retries += 1;
        if self.retries > self.max_retries {
            self.fail(TransferFailure::TimedOut(self.max_retries));
            return vec![Packet::error(ErrorCode::NOT_DEFINED, "Transfer timed out")];
        }
        self.retransmissions += 1;
        match (&self.state, &self.option_ack) {
            (TransferState::AwaitingOptionAck, Some(option_ack)) => vec![option_ack.clone()],
            _ => self.window_packets(),
        }
    }

    /// Where the transfer stands.
    pub fn state(&self) -> TransferState {
        self.state
    }

    /// Whether the transfer ended, successfully or not.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, TransferState::Complete | TransferState::Failed)
    }

    /// Why the transfer failed, if it did.
    pub fn failure(&self) -> Option<&TransferFailure> {
        self.failure.as_ref()
    }

    /// The negotiated parameters.
    pub fn options(&self) -> &NegotiatedOptions {
        &self.options
    }

    /// How long to wait for an acknowledgement before calling
    /// [`Transfer::on_timeout`].
    pub fn retransmit_timeout(&self) -> Duration {
        self.options.timeout
    }

    /// File bytes the client has acknowledged (after netascii encoding).
    pub fn bytes_acknowledged(&self) -> u64 {
        self.bytes_acknowledged
    }

    /// How many times a window or the OACK was resent.
    pub fn retransmissions(&self) -> u64 {
        self.retransmissions
    }

    fn fail(&mut self, failure: TransferFailure) {
        self.state = TransferState::Failed;
        self.failure = Some(failure);
        self.window.clear();
    }

    fn illegal(&mut self, what: String) -> Vec<Packet> {
        self.fail(TransferFailure::UnexpectedPacket(what));
        vec![Packet::error(
            ErrorCode::ILLEGAL_OPERATION,
            "Illegal operation: expected an acknowledgement",
        )]
    }

    /// Tops the window up to `windowsize` blocks and returns all of it.
    fn send_window(&mut self) -> Vec<Packet> {
        let block_size = usize::from(self.options.block_size);
        while self.window.len() < usize::from(self.options.window_size) && self.last_block.is_none()
        {
            let mut data = Vec::with_capacity(block_size);
            if let Err(error) = (&mut self.reader).take(block_size as u64).read_to_end(&mut data) {
                self.fail(TransferFailure::ReadFailed(error));
                return vec![Packet::error(ErrorCode::NOT_DEFINED, "Cannot read file")];
            }
            let is_last = data.len() < block_size;
            self.window.push_back(data);
            if is_last {
                self.last_block = Some(self.acknowledged + self.window.len() as u64);
            }
        }
        self.window_packets()
    }

    fn window_packets(&self) -> Vec<Packet> {
        let first = self.acknowledged + 1;
        self.window
            .iter()
            .zip(first..)
            .map(|(data, block)| Packet::Data { block: wire_block(block), data: data.clone() })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::packet::{parse_request, TftpOption};
    use crate::source::{FsSource, MemorySource};
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|index| (index * 7 % 251) as u8).collect()
    }

    fn source_with(name: &str, bytes: Vec<u8>) -> MemorySource {
        let mut source = MemorySource::new();
        source.insert(name, bytes).unwrap();
        source
    }

    fn read_request(filename: &str, mode: Mode, options: &[(&str, &str)]) -> Request {
        Request {
            kind: RequestKind::Read,
            filename: filename.into(),
            mode,
            options: options.iter().map(|(name, value)| TftpOption::new(*name, *value)).collect(),
        }
    }

    fn open(source: &dyn FileSource, request: &Request) -> (Transfer, Vec<Packet>) {
        Transfer::open(request, source, &TransferConfig::default()).unwrap()
    }

    fn ack(block: u16) -> Vec<u8> {
        Packet::Ack { block }.encode()
    }

    fn data(block: u16, bytes: &[u8]) -> Packet {
        Packet::Data { block, data: bytes.to_vec() }
    }

    fn blocks(packets: &[Packet]) -> Vec<u16> {
        packets
            .iter()
            .map(|packet| match packet {
                Packet::Data { block, .. } => *block,
                other => panic!("expected data, got {other:?}"),
            })
            .collect()
    }

    #[test]
    fn plain_read_request_is_answered_block_by_block() {
        let file = pattern(1000);
        let source = source_with("pxelinux.0", file.clone());
        let request = parse_request(b"\x00\x01pxelinux.0\x00octet\x00").unwrap();
        let (mut transfer, first) = open(&source, &request);
        assert_eq!(first, vec![data(1, &file[..512])]);
        assert_eq!(transfer.on_packet(&ack(1)), vec![data(2, &file[512..])]);
        assert_eq!(transfer.state(), TransferState::Sending);
        assert_eq!(transfer.on_packet(&ack(2)), vec![]);
        assert_eq!(transfer.state(), TransferState::Complete);
        assert_eq!(transfer.bytes_acknowledged(), 1000);
        assert_eq!(transfer.on_timeout(), vec![]);
    }

    #[test]
    fn a_file_of_whole_blocks_ends_with_an_empty_block() {
        let file = pattern(512);
        let source = source_with("f", file.clone());
        let (mut transfer, first) = open(&source, &read_request("f", Mode::Octet, &[]));
        assert_eq!(first, vec![data(1, &file)]);
        assert_eq!(transfer.on_ack(1), vec![data(2, b"")]);
        assert_eq!(transfer.on_ack(2), vec![]);
        assert!(transfer.is_finished());
    }

    #[test]
    fn an_empty_file_is_one_empty_block() {
        let source = source_with("empty", Vec::new());
        let (mut transfer, first) = open(&source, &read_request("empty", Mode::Octet, &[]));
        assert_eq!(first, vec![data(1, b"")]);
        assert_eq!(transfer.on_ack(1), vec![]);
        assert_eq!(transfer.state(), TransferState::Complete);
    }

    #[test]
    fn options_are_acknowledged_before_data() {
        let file = pattern(10_000);
        let source = source_with("kernel", file.clone());
        let request = parse_request(
            b"\x00\x01kernel\x00octet\x00blksize\x001468\x00tsize\x000\x00rollover\x000\x00windowsize\x004\x00timeout\x002\x00",
        )
        .unwrap();
        let (mut transfer, first) = open(&source, &request);
        assert_eq!(
            first,
            vec![Packet::OptionAck {
                options: vec![
                    TftpOption::new("blksize", "1468"),
                    TftpOption::new("tsize", "10000"),
                    TftpOption::new("windowsize", "4"),
                    TftpOption::new("timeout", "2"),
                ]
            }]
        );
        assert_eq!(transfer.retransmit_timeout(), Duration::from_secs(2));
        assert_eq!(transfer.state(), TransferState::AwaitingOptionAck);
        // Only ACK 0 acknowledges the OACK.
        assert_eq!(transfer.on_ack(1), vec![]);
        let window = transfer.on_ack(0);
        assert_eq!(blocks(&window), vec![1, 2, 3, 4]);
        assert_eq!(window[0], data(1, &file[..1468]));
        assert_eq!(blocks(&transfer.on_ack(4)), vec![5, 6, 7]);
        assert_eq!(transfer.on_ack(7), vec![]);
        assert_eq!(transfer.state(), TransferState::Complete);
    }

    #[test]
    fn block_size_is_clamped_and_unknown_options_alone_mean_no_oack() {
        let source = source_with("f", pattern(70_000));
        let (_, first) = open(&source, &read_request("f", Mode::Octet, &[("blksize", "100000")]));
        assert_eq!(
            first,
            vec![Packet::OptionAck { options: vec![TftpOption::new("blksize", "65464")] }]
        );
        let config = TransferConfig { max_block_size: 1024, ..TransferConfig::default() };
        let request = read_request("f", Mode::Octet, &[("blksize", "1468")]);
        let (mut transfer, first) = Transfer::open(&request, &source, &config).unwrap();
        assert_eq!(
            first,
            vec![Packet::OptionAck { options: vec![TftpOption::new("blksize", "1024")] }]
        );
        match transfer.on_ack(0).as_slice() {
            [Packet::Data { block: 1, data }] => assert_eq!(data.len(), 1024),
            other => panic!("unexpected {other:?}"),
        }
        let (_, first) =
            open(&source, &read_request("f", Mode::Octet, &[("multicast", ""), ("x", "1")]));
        assert_eq!(blocks(&first), vec![1]);
    }

    #[test]
    fn netascii_is_converted_and_tsize_left_out() {
        let source = source_with("text", b"line\nbare\r".to_vec());
        let (mut transfer, first) = open(
            &source,
            &read_request("text", Mode::Netascii, &[("tsize", "0"), ("blksize", "8")]),
        );
        assert_eq!(
            first,
            vec![Packet::OptionAck { options: vec![TftpOption::new("blksize", "8")] }]
        );
        assert_eq!(transfer.on_ack(0), vec![data(1, b"line\r\nba")]);
        assert_eq!(transfer.on_ack(1), vec![data(2, b"re\r\0")]);
        assert_eq!(transfer.on_ack(2), vec![]);
        assert_eq!(transfer.state(), TransferState::Complete);
    }

    #[test]
    fn a_missing_file_is_error_1() {
        let source = MemorySource::new();
        let error = Transfer::open(
            &read_request("nope", Mode::Octet, &[]),
            &source,
            &TransferConfig::default(),
        )
        .unwrap_err();
        assert!(matches!(error, Packet::Error { code: ErrorCode::FILE_NOT_FOUND, .. }));
    }

    #[test]
    fn paths_escaping_the_root_are_error_2() {
        let outside = tempfile::tempdir().unwrap();
        let root = outside.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(outside.path().join("secret"), b"secret").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.join("link")).unwrap();
        let source = FsSource::new(&root).unwrap();
        let secret = outside.path().join("secret").display().to_string();
        for name in ["../secret", "../etc/passwd", "/etc/passwd", &secret, "link"] {
            let error = Transfer::open(
                &read_request(name, Mode::Octet, &[]),
                &source,
                &TransferConfig::default(),
            )
            .unwrap_err();
            assert!(
                matches!(error, Packet::Error { code: ErrorCode::ACCESS_VIOLATION, .. }),
                "{name}: {error:?}"
            );
        }
    }

    #[test]
    fn write_requests_and_mail_mode_are_refused() {
        let source = source_with("f", pattern(10));
        let write = parse_request(b"\x00\x02f\x00octet\x00").unwrap();
        assert!(matches!(
            Transfer::open(&write, &source, &TransferConfig::default()),
            Err(Packet::Error { code: ErrorCode::ACCESS_VIOLATION, .. })
        ));
        let mail = read_request("f", Mode::Mail, &[]);
        assert!(matches!(
            Transfer::open(&mail, &source, &TransferConfig::default()),
            Err(Packet::Error { code: ErrorCode::ILLEGAL_OPERATION, .. })
        ));
    }

    #[test]
    fn duplicate_acks_are_not_answered() {
        let file = pattern(2000);
        let source = source_with("f", file.clone());
        let (mut transfer, _) = open(&source, &read_request("f", Mode::Octet, &[]));
        assert_eq!(transfer.on_ack(1), vec![data(2, &file[512..1024])]);
        // The client's copy of ACK 1 (delayed, or resent on its timeout)
        // must not make block 2 go out twice.
        assert_eq!(transfer.on_ack(1), vec![]);
        assert_eq!(transfer.on_ack(1), vec![]);
        assert_eq!(blocks(&transfer.on_ack(2)), vec![3]);
        assert_eq!(transfer.on_ack(2), vec![]);
        // Stale and future ACKs are ignored too.
        assert_eq!(transfer.on_ack(0), vec![]);
        assert_eq!(transfer.on_ack(9), vec![]);
        assert_eq!(blocks(&transfer.on_ack(3)), vec![4]);
        assert_eq!(transfer.on_ack(4), vec![]);
        assert_eq!(transfer.state(), TransferState::Complete);
        assert_eq!(transfer.retransmissions(), 0);
    }

    #[test]
    fn a_partial_window_ack_resends_from_the_block_after_it() {
        let file = pattern(512 * 10 + 1);
        let source = source_with("f", file.clone());
        let (mut transfer, _) =
            open(&source, &read_request("f", Mode::Octet, &[("windowsize", "4")]));
        assert_eq!(blocks(&transfer.on_ack(0)), vec![1, 2, 3, 4]);
        // Block 3 was lost: the client acknowledges 2.
        let resent = transfer.on_ack(2);
        assert_eq!(blocks(&resent), vec![3, 4, 5, 6]);
        assert_eq!(resent[0], data(3, &file[1024..1536]));
        // Its second ACK 2 (for block 4 out of order) is a duplicate.
        assert_eq!(transfer.on_ack(2), vec![]);
        assert_eq!(blocks(&transfer.on_ack(6)), vec![7, 8, 9, 10]);
        assert_eq!(blocks(&transfer.on_ack(10)), vec![11]);
        assert_eq!(transfer.on_ack(11), vec![]);
        assert_eq!(transfer.state(), TransferState::Complete);
    }

    #[test]
    fn timeouts_resend_the_window_then_give_up() {
        let source = source_with("f", pattern(5000));
        let config = TransferConfig { max_retries: 2, ..TransferConfig::default() };
        let request = read_request("f", Mode::Octet, &[("windowsize", "3")]);
        let (mut transfer, first) = Transfer::open(&request, &source, &config).unwrap();
        assert!(matches!(first.as_slice(), [Packet::OptionAck { .. }]));
        assert_eq!(transfer.on_timeout(), first);
        assert_eq!(blocks(&transfer.on_ack(0)), vec![1, 2, 3]);
        assert_eq!(blocks(&transfer.on_timeout()), vec![1, 2, 3]);
        assert_eq!(blocks(&transfer.on_timeout()), vec![1, 2, 3]);
        assert_eq!(
            transfer.on_timeout(),
            vec![Packet::error(ErrorCode::NOT_DEFINED, "Transfer timed out")]
        );
        assert_eq!(transfer.state(), TransferState::Failed);
        assert!(matches!(transfer.failure(), Some(TransferFailure::TimedOut(2))));
        assert_eq!(transfer.on_ack(3), vec![]);
    }

    #[test]
    fn progress_resets_the_retry_count() {
        let source = source_with("f", pattern(5000));
        let config = TransferConfig { max_retries: 1, ..TransferConfig::default() };
        let (mut transfer, _) =
            Transfer::open(&read_request("f", Mode::Octet, &[]), &source, &config).unwrap();
        assert_eq!(blocks(&transfer.on_timeout()), vec![1]);
        assert_eq!(blocks(&transfer.on_ack(1)), vec![2]);
        assert_eq!(blocks(&transfer.on_timeout()), vec![2]);
        assert_eq!(blocks(&transfer.on_ack(2)), vec![3]);
        assert_eq!(transfer.retransmissions(), 2);
    }

    #[test]
    fn client_errors_end_the_transfer_silently() {
        let source = source_with("f", pattern(5000));
        let (mut transfer, _) = open(&source, &read_request("f", Mode::Octet, &[("tsize", "0")]));
        let abort = Packet::error(ErrorCode::OPTION_REFUSED, "tsize only").encode();
        assert_eq!(transfer.on_packet(&abort), vec![]);
        assert_eq!(transfer.state(), TransferState::Failed);
        assert!(matches!(
            transfer.failure(),
            Some(TransferFailure::PeerError { code: ErrorCode::OPTION_REFUSED, .. })
        ));
    }

    #[test]
    fn anything_but_an_ack_from_the_client_is_illegal() {
        let source = source_with("f", pattern(5000));
        for datagram in [data(1, b"x").encode(), b"\x00\x04\x00".to_vec(), b"\x00\x09".to_vec()] {
            let (mut transfer, _) = open(&source, &read_request("f", Mode::Octet, &[]));
            assert!(matches!(
                transfer.on_packet(&datagram).as_slice(),
                [Packet::Error { code: ErrorCode::ILLEGAL_OPERATION, .. }]
            ));
            assert_eq!(transfer.state(), TransferState::Failed);
        }
    }

    #[test]
    fn a_read_error_is_reported_to_the_client() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let opened = OpenedFile { reader: Box::new(Broken), size: Some(10) };
        let (transfer, first) = Transfer::start(
            &read_request("f", Mode::Octet, &[]),
            opened,
            &TransferConfig::default(),
        );
        assert_eq!(first, vec![Packet::error(ErrorCode::NOT_DEFINED, "Cannot read file")]);
        assert!(matches!(transfer.failure(), Some(TransferFailure::ReadFailed(_))));
    }

    /// Fetches with a well-behaved RFC 7440 client, one block number at a time.
    fn fetch_all(transfer: &mut Transfer, first: Vec<Packet>, window: u16) -> (Vec<u8>, Vec<u16>) {
        let mut received = Vec::new();
        let mut numbers = Vec::new();
        let mut pending = first;
        let mut in_window = 0;
        while !transfer.is_finished() {
            let mut replies = Vec::new();
            for packet in pending.drain(..) {
                if let Packet::Data { block, data } = packet {
                    numbers.push(block);
                    received.extend_from_slice(&data);
                    in_window += 1;
                    if in_window == window
                        || data.len() < usize::from(transfer.options().block_size)
                    {
                        in_window = 0;
                        replies.extend(transfer.on_ack(block));
                    }
                }
            }
            pending = replies;
        }
        (received, numbers)
    }

    #[test]
    fn block_numbers_roll_over_to_zero() {
        // 8-byte blocks make 65537 full blocks cheap: the roll-over happens
        // after 65535, inside a window.
        let file = pattern(8 * 65_537 + 3);
        let source = source_with("big", file.clone());
        let (mut transfer, first) = open(
            &source,
            &read_request("big", Mode::Octet, &[("blksize", "8"), ("windowsize", "7")]),
        );
        assert!(matches!(first.as_slice(), [Packet::OptionAck { .. }]));
        let first = transfer.on_ack(0);
        let (received, numbers) = fetch_all(&mut transfer, first, 7);
        assert_eq!(transfer.state(), TransferState::Complete);
        assert_eq!(received, file);
        assert_eq!(numbers.len(), 65_538);
        assert_eq!(&numbers[65_533..], &[65_534, 65_535, 0, 1, 2]);
    }

    /// Simulates a lossy, duplicating network between the transfer and an
    /// RFC 7440 client; returns what the client assembled and how many data
    /// packets the server sent.
    fn simulate(
        file: &[u8],
        block_size: u16,
        window: u16,
        loss_percent: u32,
        duplicate_acks: bool,
        seed: u64,
    ) -> (Transfer, Vec<u8>, usize) {
        let mut random = rand::rngs::StdRng::seed_from_u64(seed);
        let source = source_with("f", file.to_vec());
        let config = TransferConfig { max_retries: 10_000, ..TransferConfig::default() };
        let request = read_request(
            "f",
            Mode::Octet,
            &[("blksize", &block_size.to_string()), ("windowsize", &window.to_string())],
        );
        let (mut transfer, first) = Transfer::open(&request, &source, &config).unwrap();
        let mut to_client: VecDeque<Packet> = first.into();
        let mut to_server: VecDeque<Vec<u8>> = VecDeque::new();
        let mut received = Vec::new();
        let mut expected: u64 = 1;
        let mut in_window = 0;
        let mut data_sent = 0;
        let mut option_acked = false;
        let mut steps = 0;
        while !transfer.is_finished() {
            steps += 1;
            assert!(steps < 1_000_000, "simulation does not converge");
            let lost = random.gen_range(0..100) < loss_percent;
            if let Some(packet) = to_client.pop_front() {
                if matches!(packet, Packet::Data { .. }) {
                    data_sent += 1;
                }
                if lost {
                    continue;
                }
                let acknowledgement = match packet {
                    Packet::OptionAck { .. } => {
                        option_acked = true;
                        Some(0)
                    }
                    Packet::Data { block, data } if block == wire_block(expected) => {
                        received.extend_from_slice(&data);
                        expected += 1;
                        in_window += 1;
                        let last = data.len() < usize::from(block_size);
                        (last || in_window == window).then(|| {
                            in_window = 0;
                            block
                        })
                    }
                    // Out of order or a duplicate: acknowledge the last
                    // block received in order (or the OACK).
                    Packet::Data { .. } if option_acked => {
                        in_window = 0;
                        Some(wire_block(expected - 1))
                    }
                    _ => None,
                };
                if let Some(block) = acknowledgement {
                    to_server.push_back(ack(block));
                    if duplicate_acks {
                        to_server.push_back(ack(block));
                    }
                }
            } else if let Some(datagram) = to_server.pop_front() {
                if !lost {
                    to_client.extend(transfer.on_packet(&datagram));
                }
            } else {
                to_client.extend(transfer.on_timeout());
            }
        }
        (transfer, received, data_sent)
    }

    #[test]
    fn duplicated_acks_cost_no_extra_data_packets() {
        let file = pattern(100 * 512 + 17);
        for window in [1, 4] {
            let (transfer, received, data_sent) = simulate(&file, 512, window, 0, true, 1);
            assert_eq!(transfer.state(), TransferState::Complete);
            assert_eq!(received, file);
            assert_eq!(data_sent, 101, "window {window}");
        }
    }

    #[test]
    fn a_lossy_network_is_recovered_from_by_retransmission() {
        let file = pattern(50_000);
        let (transfer, received, _) = simulate(&file, 512, 8, 20, false, 7);
        assert_eq!(transfer.state(), TransferState::Complete);
        assert_eq!(received, file);
        assert!(transfer.retransmissions() > 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn lossy_networks_still_deliver_the_exact_file(
            length in 0usize..20_000,
            block_size in prop_oneof![Just(8u16), Just(512), Just(1468)],
            window in 1u16..9,
            loss_percent in 0u32..30,
            duplicate_acks in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let file = pattern(length);
            let (transfer, received, data_sent) =
                simulate(&file, block_size, window, loss_percent, duplicate_acks, seed);
            prop_assert_eq!(transfer.state(), TransferState::Complete);
            prop_assert_eq!(received, file);
            let blocks = length / usize::from(block_size) + 1;
            if loss_percent == 0 {
                prop_assert_eq!(data_sent, blocks);
            }
        }
    }
}

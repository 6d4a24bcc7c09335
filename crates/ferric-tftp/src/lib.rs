//! A read-only TFTP server for network boot (PXE/iPXE), part of ferric's
//! boot infrastructure.
//!
//! Layers, from the wire up:
//! - [`packet`]: decoding and encoding of every TFTP packet; total (never
//!   panics), fuzzed in `fuzz/`.
//! - [`options`]: negotiation of `blksize`, `tsize`, `timeout` and
//!   `windowsize` (RFC 2347, 2348, 2349, 7440).
//! - [`netascii`]: on-the-fly netascii encoding.
//! - [`source`]: where files come from ([`FileSource`]), with path
//!   normalisation and refusal of anything outside the root.
//! - [`transfer`]: the per-transfer state machine — packets in, packets
//!   out, no sockets, no clock.
//! - [`server`]: the tokio socket loop, one task and one ephemeral socket
//!   per transfer.
//!
//! Write requests are refused: ferric generates boot files itself and never
//! accepts uploads over TFTP.

pub mod netascii;
pub mod options;
pub mod packet;
pub mod server;
pub mod source;
pub mod transfer;

pub use options::TransferConfig;
pub use packet::{parse_request, ErrorCode, Mode, Packet, ParseError, Request, RequestKind};
pub use server::{ServerConfig, ServerError, TftpServer};
pub use source::{AbsolutePaths, FileSource, FsSource, MemorySource, OpenedFile, SourceError};
pub use transfer::{Transfer, TransferFailure, TransferState};

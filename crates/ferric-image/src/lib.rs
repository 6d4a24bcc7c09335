//! Disk images as data: which format a file is, its checksum, and writing
//! it to a disk (a block device or a file) while it streams in.
//!
//! The entry point is [`write_image`]: raw, gzip, xz and zstd images are
//! streamed from HTTP(S) or a file through a decoder onto the target with
//! the checksum computed on the way, resuming dropped downloads with
//! `Range`; qcow2 images are converted by ranges with this crate's own
//! reader ([`qcow2`]). Everything is pure Rust.

pub mod access;
pub mod checksum;
pub mod decompress;
pub mod error;
pub mod format;
mod http;
pub mod qcow2;
mod target;
pub mod write;

pub use access::{FileAccess, HttpAccess, MemoryAccess, RandomAccess};
pub use checksum::{Checksum, ChecksumAlgorithm, Hasher};
pub use error::ImageError;
pub use format::{detect, detect_supported, ImageFormat};
pub use http::{default_client, error_chain};
pub use write::{
    device_size, wipe_partition_tables, write_image, ImageSource, Progress, WriteOptions,
    WriteReport,
};

//! The one error type of this crate, worded for the operator who reads it
//! in a node's `last_error`: which URL or disk, which sizes, which checksums.

use std::path::PathBuf;

/// Everything that can go wrong while inspecting or writing an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A format (or a feature of a format) this crate deliberately does not
    /// handle: VMDK, VHD, VHDX, qcow version 1, qcow2 backing files, encryption, ...
    #[error("unsupported image: {0}")]
    UnsupportedFormat(String),

    /// The image claims a supported format but its content is inconsistent
    /// (a corrupt or truncated qcow2, bad compressed data).
    #[error("invalid image: {0}")]
    InvalidImage(String),

    /// Compressed data (gzip, xz, zstd) could not be decoded; a truncated
    /// download usually shows up here.
    #[error("cannot decompress {format} image: {message} (corrupt or truncated download?)")]
    Decompress { format: crate::ImageFormat, message: String },

    /// A checksum string could not be understood.
    #[error("invalid checksum {text:?}: {reason}")]
    InvalidChecksum { text: String, reason: String },

    /// The image's checksum (over the bytes as downloaded) is not the expected one.
    /// Both are in `algorithm:hex` form.
    #[error("checksum mismatch: expected {expected}, got {actual}")]
    ChecksumMismatch { expected: String, actual: String },

    /// The image does not fit on the target. `needed` is a lower bound when
    /// the image's size was only found out while writing.
    #[error("image is too large for {}: it needs at least {needed} bytes, the target has {available}", target.display())]
    TooLarge { target: PathBuf, needed: u64, available: u64 },

    /// Fetching the image failed (HTTP status, connection lost beyond the
    /// retries, a server that cannot resume or serve ranges, a missing file).
    #[error("download of {url} failed: {message}")]
    Download { url: String, message: String },

    /// The image location is not something this crate can read.
    #[error("invalid image source {url:?}: {message}")]
    InvalidSource { url: String, message: String },

    /// Reading or writing a local file or device.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl ImageError {
    /// An [`ImageError::Io`] with a description of what was being done.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { context: context.into(), source }
    }

    pub(crate) fn download(url: &str, message: impl Into<String>) -> Self {
        Self::Download { url: url.to_owned(), message: message.into() }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidImage(message.into())
    }

    pub(crate) fn unsupported(message: impl Into<String>) -> Self {
        Self::UnsupportedFormat(message.into())
    }
}

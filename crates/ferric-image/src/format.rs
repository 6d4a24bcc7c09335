//! Image formats and their detection from the first bytes of a file.
//!
//! [`detect`] is total: anything it does not recognise is [`ImageFormat::Raw`].
//! [`detect_supported`] additionally refuses formats that would otherwise be
//! written to a disk byte for byte by mistake (VMDK, VHD, VHDX, qcow v1).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ImageError;

/// How many leading bytes [`detect`] and [`detect_supported`] look at.
pub const DETECT_LEN: usize = 512;

/// The on-disk formats an image can be written from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// A plain disk image, written byte for byte.
    Raw,
    /// A gzip-compressed raw image (one or more members).
    Gzip,
    /// An xz-compressed raw image (one or more streams).
    Xz,
    /// A zstd-compressed raw image (one or more frames).
    Zstd,
    /// QEMU's copy-on-write format, versions 2 and 3.
    Qcow2,
}

impl ImageFormat {
    /// The lowercase name, as in serde and [`fmt::Display`].
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Gzip => "gzip",
            Self::Xz => "xz",
            Self::Zstd => "zstd",
            Self::Qcow2 => "qcow2",
        }
    }

    /// Whether the format is a compressed stream around a raw image.
    pub fn is_compressed_stream(self) -> bool {
        matches!(self, Self::Gzip | Self::Xz | Self::Zstd)
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ImageFormat {
    type Err = ImageError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "raw" | "img" => Ok(Self::Raw),
            "gzip" | "gz" => Ok(Self::Gzip),
            "xz" => Ok(Self::Xz),
            "zstd" | "zst" => Ok(Self::Zstd),
            "qcow2" => Ok(Self::Qcow2),
            other => Err(ImageError::unsupported(format!("unknown image format {other:?}"))),
        }
    }
}

const QCOW_MAGIC: &[u8] = b"QFI\xfb";
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const XZ_MAGIC: &[u8] = &[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const VMDK_SPARSE_MAGIC: &[u8] = b"KDMV";
const VMDK_DESCRIPTOR: &[u8] = b"# Disk DescriptorFile";
const VHDX_MAGIC: &[u8] = b"vhdxfile";
const VHD_MAGIC: &[u8] = b"conectix";

/// The format of an image, judged by its first bytes (at least 8 are needed
/// to tell anything; give [`DETECT_LEN`] when available). Unknown → `Raw`.
pub fn detect(first_bytes: &[u8]) -> ImageFormat {
    if first_bytes.starts_with(QCOW_MAGIC) {
        ImageFormat::Qcow2
    } else if first_bytes.starts_with(GZIP_MAGIC) {
        ImageFormat::Gzip
    } else if first_bytes.starts_with(XZ_MAGIC) {
        ImageFormat::Xz
    } else if first_bytes.starts_with(ZSTD_MAGIC) {
        ImageFormat::Zstd
    } else {
        ImageFormat::Raw
    }
}

/// Like [`detect`], but refuses formats this crate cannot write and would
/// otherwise treat as raw: VMDK (sparse or descriptor), VHDX, VHD (dynamic
/// disks carry the footer copy at offset 0) and qcow version 1.
pub fn detect_supported(first_bytes: &[u8]) -> Result<ImageFormat, ImageError> {
    if let Some(name) = unsupported_format_name(first_bytes) {
        return Err(ImageError::unsupported(format!(
            "{name} images are not supported; convert to raw or qcow2 first (qemu-img convert)"
        )));
    }
    Ok(detect(first_bytes))
}

fn unsupported_format_name(first_bytes: &[u8]) -> Option<&'static str> {
    if first_bytes.starts_with(QCOW_MAGIC) {
        let version = first_bytes.get(4..8).map(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
        return match version {
            Some(1) => Some("qcow version 1"),
            _ => None,
        };
    }
    if first_bytes.starts_with(VMDK_SPARSE_MAGIC) || first_bytes.starts_with(VMDK_DESCRIPTOR) {
        Some("VMDK")
    } else if first_bytes.starts_with(VHDX_MAGIC) {
        Some("VHDX")
    } else if first_bytes.starts_with(VHD_MAGIC) {
        Some("VHD")
    } else {
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_magic() {
        assert_eq!(detect(b"QFI\xfb\0\0\0\x03rest"), ImageFormat::Qcow2);
        assert_eq!(detect(&[0x1f, 0x8b, 8, 0]), ImageFormat::Gzip);
        assert_eq!(detect(&[0xfd, b'7', b'z', b'X', b'Z', 0, 0, 4]), ImageFormat::Xz);
        assert_eq!(detect(&[0x28, 0xb5, 0x2f, 0xfd, 0x24]), ImageFormat::Zstd);
        assert_eq!(detect(&[0u8; 512]), ImageFormat::Raw);
        assert_eq!(detect(b""), ImageFormat::Raw);
        // A prefix of a magic is not the magic.
        assert_eq!(detect(&[0xfd, b'7', b'z']), ImageFormat::Raw);
        assert_eq!(detect(b"QFI"), ImageFormat::Raw);
    }

    #[test]
    fn refuses_foreign_formats() {
        for bytes in [
            &b"KDMV\x01\0\0\0"[..],
            b"# Disk DescriptorFile\nversion=1",
            b"vhdxfile\0\0",
            b"conectix\0\0\0\x02",
            b"QFI\xfb\0\0\0\x01",
        ] {
            let err = detect_supported(bytes).unwrap_err();
            assert!(matches!(err, ImageError::UnsupportedFormat(_)), "{err}");
        }
        assert_eq!(detect_supported(b"QFI\xfb\0\0\0\x02").unwrap(), ImageFormat::Qcow2);
        assert_eq!(detect_supported(b"QFI\xfb\0\0\0\x03").unwrap(), ImageFormat::Qcow2);
        assert_eq!(detect_supported(b"hello").unwrap(), ImageFormat::Raw);
    }

    #[test]
    fn names_round_trip() {
        for format in [
            ImageFormat::Raw,
            ImageFormat::Gzip,
            ImageFormat::Xz,
            ImageFormat::Zstd,
            ImageFormat::Qcow2,
        ] {
            let json = serde_json::to_string(&format).unwrap();
            assert_eq!(json, format!("\"{format}\""));
            assert_eq!(serde_json::from_str::<ImageFormat>(&json).unwrap(), format);
            assert_eq!(format.to_string().parse::<ImageFormat>().unwrap(), format);
        }
        assert!("vmdk".parse::<ImageFormat>().is_err());
    }
}

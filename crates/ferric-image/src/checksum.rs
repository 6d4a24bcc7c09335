//! Image checksums: parsing what an operator or Glance gives
//! (`sha256:<hex>`, `sha512:<hex>`, or bare hex whose length names the
//! algorithm) and a streaming [`Hasher`]. MD5 is refused on purpose.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::ImageError;

/// The hash functions accepted for images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumAlgorithm {
    Sha256,
    Sha512,
}

impl ChecksumAlgorithm {
    /// The lowercase name used as the prefix in `sha256:<hex>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    /// The digest length in hex digits.
    pub fn hex_len(self) -> usize {
        match self {
            Self::Sha256 => 64,
            Self::Sha512 => 128,
        }
    }
}

impl fmt::Display for ChecksumAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A digest of an image file: an algorithm and lowercase hex digits.
/// Displays and serialises as `algorithm:hex`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    /// Lowercase hex, of exactly [`ChecksumAlgorithm::hex_len`] digits.
    pub hex: String,
}

impl Checksum {
    /// Parses `sha256:<hex>`, `sha512:<hex>` or bare hex (64 digits: sha256,
    /// 128: sha512), ignoring case and surrounding whitespace.
    pub fn parse(text: &str) -> Result<Self, ImageError> {
        let invalid =
            |reason: String| ImageError::InvalidChecksum { text: text.to_owned(), reason };
        let trimmed = text.trim();
        let (algorithm, digits) = match trimmed.split_once(':') {
            Some((name, digits)) => {
                let algorithm = match name.to_ascii_lowercase().as_str() {
                    "sha256" => ChecksumAlgorithm::Sha256,
                    "sha512" => ChecksumAlgorithm::Sha512,
                    "md5" => {
                        return Err(invalid("md5 is not accepted; use sha256 or sha512".into()))
                    }
                    other => {
                        return Err(invalid(format!(
                            "unknown algorithm {other:?}; use sha256 or sha512"
                        )))
                    }
                };
                (algorithm, digits)
            }
            None => {
                let algorithm = match trimmed.len() {
                    64 => ChecksumAlgorithm::Sha256,
                    128 => ChecksumAlgorithm::Sha512,
                    32 => {
                        return Err(invalid(
                            "32 hex digits is an md5 digest, and md5 is not accepted; use sha256 or sha512".into(),
                        ))
                    }
                    n => {
                        return Err(invalid(format!(
                            "{n} characters: expected 64 (sha256) or 128 (sha512) hex digits, or an `algorithm:` prefix"
                        )))
                    }
                };
                (algorithm, trimmed)
            }
        };
        if digits.len() != algorithm.hex_len() {
            return Err(invalid(format!(
                "a {algorithm} digest has {} hex digits, this has {}",
                algorithm.hex_len(),
                digits.len()
            )));
        }
        if let Some(bad) = digits.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(invalid(format!("{bad:?} is not a hex digit")));
        }
        Ok(Self { algorithm, hex: digits.to_ascii_lowercase() })
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl std::str::FromStr for Checksum {
    type Err = ImageError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl TryFrom<String> for Checksum {
    type Error = ImageError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<Checksum> for String {
    fn from(checksum: Checksum) -> Self {
        checksum.to_string()
    }
}

/// Incremental hashing of a byte stream.
#[derive(Clone)]
pub struct Hasher {
    state: HasherState,
}

#[derive(Clone)]
enum HasherState {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn new(algorithm: ChecksumAlgorithm) -> Self {
        let state = match algorithm {
            ChecksumAlgorithm::Sha256 => HasherState::Sha256(sha2::Sha256::new()),
            ChecksumAlgorithm::Sha512 => HasherState::Sha512(sha2::Sha512::new()),
        };
        Self { state }
    }

    pub fn algorithm(&self) -> ChecksumAlgorithm {
        match self.state {
            HasherState::Sha256(_) => ChecksumAlgorithm::Sha256,
            HasherState::Sha512(_) => ChecksumAlgorithm::Sha512,
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.state {
            HasherState::Sha256(state) => state.update(bytes),
            HasherState::Sha512(state) => state.update(bytes),
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Checksum {
        let algorithm = self.algorithm();
        let digest: Vec<u8> = match self.state {
            HasherState::Sha256(state) => state.finalize().to_vec(),
            HasherState::Sha512(state) => state.finalize().to_vec(),
        };
        Checksum { algorithm, hex: to_hex(&digest) }
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_prefixed_and_bare() {
        let bare = Checksum::parse(EMPTY_SHA256).unwrap();
        assert_eq!(bare.algorithm, ChecksumAlgorithm::Sha256);
        let prefixed = Checksum::parse(&format!("SHA256:{}", EMPTY_SHA256.to_uppercase())).unwrap();
        assert_eq!(prefixed, bare);
        assert_eq!(prefixed.to_string(), format!("sha256:{EMPTY_SHA256}"));
        let long = "ab".repeat(64);
        assert_eq!(Checksum::parse(&long).unwrap().algorithm, ChecksumAlgorithm::Sha512);
        assert_eq!(
            Checksum::parse(&format!(" sha512:{long}\n")).unwrap().algorithm,
            ChecksumAlgorithm::Sha512
        );
    }

    #[test]
    fn refuses_md5_and_garbage() {
        let md5 = Checksum::parse("d41d8cd98f00b204e9800998ecf8427e").unwrap_err();
        assert!(md5.to_string().contains("md5 is not accepted"), "{md5}");
        let md5 = Checksum::parse("md5:d41d8cd98f00b204e9800998ecf8427e").unwrap_err();
        assert!(md5.to_string().contains("md5 is not accepted"), "{md5}");
        assert!(Checksum::parse(&"g".repeat(64)).is_err());
        assert!(Checksum::parse(&format!("sha512:{EMPTY_SHA256}")).is_err());
        assert!(Checksum::parse("crc32:00000000").is_err());
        assert!(Checksum::parse("").is_err());
        assert!(Checksum::parse("sha256:").is_err());
    }

    #[test]
    fn hashes_streams() {
        let hasher = Hasher::new(ChecksumAlgorithm::Sha256);
        assert_eq!(hasher.finish().hex, EMPTY_SHA256);
        let mut whole = Hasher::new(ChecksumAlgorithm::Sha512);
        whole.update(b"hello world");
        let mut parts = Hasher::new(ChecksumAlgorithm::Sha512);
        parts.update(b"hello");
        parts.update(b" world");
        assert_eq!(whole.finish(), parts.finish());
    }

    #[test]
    fn serialises_as_a_string() {
        let checksum = Checksum::parse(EMPTY_SHA256).unwrap();
        let json = serde_json::to_string(&checksum).unwrap();
        assert_eq!(json, format!("\"sha256:{EMPTY_SHA256}\""));
        assert_eq!(serde_json::from_str::<Checksum>(&json).unwrap(), checksum);
        assert!(serde_json::from_str::<Checksum>("\"md5:00\"").is_err());
    }
}

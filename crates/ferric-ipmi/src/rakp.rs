//! Session setup payloads: RMCP+ Open Session Request/Response and RAKP
//! messages 1–4 (IPMI 2.0 sections 13.17–13.23), encoded and decoded as
//! plain functions. Decoders never panic on short or odd input.

use crate::error::{IpmiError, Result};

fn field<'a>(bytes: &'a [u8], at: usize, len: usize, what: &str) -> Result<&'a [u8]> {
    bytes.get(at..at + len).ok_or_else(|| {
        IpmiError::malformed(format!("{what}: {} bytes, need {}", bytes.len(), at + len))
    })
}

fn u32_at(bytes: &[u8], at: usize, what: &str) -> Result<u32> {
    let raw = field(bytes, at, 4, what)?;
    Ok(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
}

fn array16(bytes: &[u8], at: usize, what: &str) -> Result<[u8; 16]> {
    let mut out = [0u8; 16];
    out.copy_from_slice(field(bytes, at, 16, what)?);
    Ok(out)
}

/// The algorithm proposal of an Open Session Request, or the choice in its
/// response: authentication, integrity, confidentiality numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Algorithms {
    pub auth: u8,
    pub integrity: u8,
    pub confidentiality: u8,
}

impl Algorithms {
    fn encode(&self, out: &mut Vec<u8>) {
        for (kind, number) in [(0u8, self.auth), (1, self.integrity), (2, self.confidentiality)] {
            out.extend_from_slice(&[kind, 0, 0, 8, number & 0x3F, 0, 0, 0]);
        }
    }

    fn decode(bytes: &[u8], what: &str) -> Result<Algorithms> {
        let raw = field(bytes, 0, 24, what)?;
        let mut numbers = [0u8; 3];
        for (index, number) in numbers.iter_mut().enumerate() {
            let record = &raw[index * 8..index * 8 + 8];
            if usize::from(record[0]) != index {
                return Err(IpmiError::malformed(format!("{what}: algorithm record {index}")));
            }
            *number = record[4] & 0x3F;
        }
        Ok(Algorithms { auth: numbers[0], integrity: numbers[1], confidentiality: numbers[2] })
    }
}

/// RMCP+ Open Session Request (payload type 0x10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSessionRequest {
    pub tag: u8,
    /// 0 = the highest level the proposed algorithms allow.
    pub max_privilege: u8,
    pub console_sid: u32,
    pub algorithms: Algorithms,
}

impl OpenSessionRequest {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.tag, self.max_privilege & 0x0F, 0, 0];
        out.extend_from_slice(&self.console_sid.to_le_bytes());
        self.algorithms.encode(&mut out);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let head = field(bytes, 0, 8, "Open Session Request")?;
        Ok(Self {
            tag: head[0],
            max_privilege: head[1] & 0x0F,
            console_sid: u32_at(bytes, 4, "Open Session Request")?,
            algorithms: Algorithms::decode(
                bytes.get(8..).unwrap_or_default(),
                "Open Session Request",
            )?,
        })
    }
}

/// RMCP+ Open Session Response (payload type 0x11). On an error status a BMC
/// may send only the first bytes; the missing fields then read as zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSessionResponse {
    pub tag: u8,
    pub status: u8,
    pub max_privilege: u8,
    pub console_sid: u32,
    pub bmc_sid: u32,
    pub algorithms: Algorithms,
}

impl OpenSessionResponse {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.tag, self.status, self.max_privilege, 0];
        out.extend_from_slice(&self.console_sid.to_le_bytes());
        out.extend_from_slice(&self.bmc_sid.to_le_bytes());
        self.algorithms.encode(&mut out);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let head = field(bytes, 0, 2, "Open Session Response")?;
        let (tag, status) = (head[0], head[1]);
        if status != 0 {
            return Ok(Self {
                tag,
                status,
                max_privilege: bytes.get(2).copied().unwrap_or(0),
                console_sid: u32_at(bytes, 4, "").unwrap_or(0),
                bmc_sid: 0,
                algorithms: Algorithms { auth: 0, integrity: 0, confidentiality: 0 },
            });
        }
        Ok(Self {
            tag,
            status,
            max_privilege: field(bytes, 2, 1, "Open Session Response")?[0] & 0x0F,
            console_sid: u32_at(bytes, 4, "Open Session Response")?,
            bmc_sid: u32_at(bytes, 8, "Open Session Response")?,
            algorithms: Algorithms::decode(
                bytes.get(12..).unwrap_or_default(),
                "Open Session Response",
            )?,
        })
    }
}

/// RAKP Message 1 (payload type 0x12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rakp1 {
    pub tag: u8,
    pub bmc_sid: u32,
    pub console_random: [u8; 16],
    /// Requested privilege (bits 3:0) and name-only lookup (bit 4).
    pub role: u8,
    pub username: Vec<u8>,
}

impl Rakp1 {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.tag, 0, 0, 0];
        out.extend_from_slice(&self.bmc_sid.to_le_bytes());
        out.extend_from_slice(&self.console_random);
        out.extend_from_slice(&[self.role, 0, 0, self.username.len().min(255) as u8]);
        out.extend_from_slice(&self.username);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let head = field(bytes, 0, 28, "RAKP 1")?;
        let name_len = usize::from(head[27]);
        Ok(Self {
            tag: head[0],
            bmc_sid: u32_at(bytes, 4, "RAKP 1")?,
            console_random: array16(bytes, 8, "RAKP 1")?,
            role: head[24],
            username: field(bytes, 28, name_len, "RAKP 1 user name")?.to_vec(),
        })
    }
}

/// RAKP Message 2 (payload type 0x13). On an error status only the tag and
/// status are trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rakp2 {
    pub tag: u8,
    pub status: u8,
    pub console_sid: u32,
    pub bmc_random: [u8; 16],
    pub bmc_guid: [u8; 16],
    pub auth_code: Vec<u8>,
}

impl Rakp2 {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.tag, self.status, 0, 0];
        out.extend_from_slice(&self.console_sid.to_le_bytes());
        out.extend_from_slice(&self.bmc_random);
        out.extend_from_slice(&self.bmc_guid);
        out.extend_from_slice(&self.auth_code);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let head = field(bytes, 0, 2, "RAKP 2")?;
        if head[1] != 0 {
            return Ok(Self {
                tag: head[0],
                status: head[1],
                console_sid: u32_at(bytes, 4, "").unwrap_or(0),
                bmc_random: [0; 16],
                bmc_guid: [0; 16],
                auth_code: Vec::new(),
            });
        }
        Ok(Self {
            tag: head[0],
            status: head[1],
            console_sid: u32_at(bytes, 4, "RAKP 2")?,
            bmc_random: array16(bytes, 8, "RAKP 2")?,
            bmc_guid: array16(bytes, 24, "RAKP 2")?,
            auth_code: bytes.get(40..).unwrap_or_default().to_vec(),
        })
    }
}

/// RAKP Message 3 (payload type 0x14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rakp3 {
    pub tag: u8,
    pub status: u8,
    pub bmc_sid: u32,
    pub auth_code: Vec<u8>,
}

impl Rakp3 {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.tag, self.status, 0, 0];
        out.extend_from_slice(&self.bmc_sid.to_le_bytes());
        out.extend_from_slice(&self.auth_code);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let head = field(bytes, 0, 8, "RAKP 3")?;
        Ok(Self {
            tag: head[0],
            status: head[1],
            bmc_sid: u32_at(bytes, 4, "RAKP 3")?,
            auth_code: bytes.get(8..).unwrap_or_default().to_vec(),
        })
    }
}

/// RAKP Message 4 (payload type 0x15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rakp4 {
    pub tag: u8,
    pub status: u8,
    pub console_sid: u32,
    pub icv: Vec<u8>,
}

impl Rakp4 {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.tag, self.status, 0, 0];
        out.extend_from_slice(&self.console_sid.to_le_bytes());
        out.extend_from_slice(&self.icv);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let head = field(bytes, 0, 2, "RAKP 4")?;
        if head[1] != 0 {
            return Ok(Self {
                tag: head[0],
                status: head[1],
                console_sid: u32_at(bytes, 4, "").unwrap_or(0),
                icv: Vec::new(),
            });
        }
        Ok(Self {
            tag: head[0],
            status: head[1],
            console_sid: u32_at(bytes, 4, "RAKP 4")?,
            icv: bytes.get(8..).unwrap_or_default().to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_session_request_layout() {
        let request = OpenSessionRequest {
            tag: 0,
            max_privilege: 0,
            console_sid: 0xA0A2A3A4,
            algorithms: Algorithms { auth: 3, integrity: 4, confidentiality: 1 },
        };
        let bytes = request.encode();
        assert_eq!(bytes.len(), 32);
        assert_eq!(&bytes[4..8], &[0xA4, 0xA3, 0xA2, 0xA0]);
        assert_eq!(&bytes[8..16], &[0, 0, 0, 8, 3, 0, 0, 0]);
        assert_eq!(&bytes[16..24], &[1, 0, 0, 8, 4, 0, 0, 0]);
        assert_eq!(&bytes[24..32], &[2, 0, 0, 8, 1, 0, 0, 0]);
        assert_eq!(OpenSessionRequest::decode(&bytes).expect("decode"), request);
    }

    #[test]
    fn short_error_responses_decode() {
        let response = OpenSessionResponse::decode(&[5, 0x04]).expect("decode");
        assert_eq!((response.tag, response.status), (5, 0x04));
        assert!(OpenSessionResponse::decode(&[5, 0, 4]).is_err());
        assert_eq!(Rakp2::decode(&[1, 0x0D, 0, 0]).expect("decode").status, 0x0D);
        assert!(Rakp2::decode(&[1, 0, 0, 0]).is_err());
    }
}

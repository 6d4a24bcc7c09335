//! Cipher suites and the cryptography of RMCP+: the RAKP key-exchange codes,
//! session key derivation (SIK, K1, K2), per-packet integrity codes and
//! AES-CBC-128 payload encryption. Pure functions over byte slices, built on
//! the RustCrypto crates.
//!
//! Supported cipher suites: 17 (RAKP-HMAC-SHA256, HMAC-SHA256-128,
//! AES-CBC-128) and 3 (RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128).

use std::fmt;

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

use crate::error::{IpmiError, Result};

/// Authentication (RAKP) algorithm numbers (IPMI 2.0 table 13-17).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthAlg {
    HmacSha1,
    HmacSha256,
}

impl AuthAlg {
    pub fn number(self) -> u8 {
        match self {
            Self::HmacSha1 => 0x01,
            Self::HmacSha256 => 0x03,
        }
    }

    /// Length of the RAKP 4 integrity check value.
    pub fn icv_len(self) -> usize {
        match self {
            Self::HmacSha1 => 12,
            Self::HmacSha256 => 16,
        }
    }

    /// Length of a full HMAC output (RAKP 2 and RAKP 3 codes, SIK, K1, K2).
    pub fn mac_len(self) -> usize {
        match self {
            Self::HmacSha1 => 20,
            Self::HmacSha256 => 32,
        }
    }
}

/// Integrity algorithm numbers (table 13-18).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrityAlg {
    HmacSha1_96,
    HmacSha256_128,
}

impl IntegrityAlg {
    pub fn number(self) -> u8 {
        match self {
            Self::HmacSha1_96 => 0x01,
            Self::HmacSha256_128 => 0x04,
        }
    }

    /// Length of the AuthCode field that ends every authenticated packet.
    pub fn code_len(self) -> usize {
        match self {
            Self::HmacSha1_96 => 12,
            Self::HmacSha256_128 => 16,
        }
    }

    fn hash(self) -> AuthAlg {
        match self {
            Self::HmacSha1_96 => AuthAlg::HmacSha1,
            Self::HmacSha256_128 => AuthAlg::HmacSha256,
        }
    }
}

/// Confidentiality algorithm numbers (table 13-19).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfAlg {
    AesCbc128,
}

impl ConfAlg {
    pub fn number(self) -> u8 {
        match self {
            Self::AesCbc128 => 0x01,
        }
    }
}

/// A cipher suite: the three algorithms a session uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CipherSuite {
    pub id: u8,
    pub auth: AuthAlg,
    pub integrity: IntegrityAlg,
    pub confidentiality: ConfAlg,
}

impl CipherSuite {
    /// RAKP-HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128.
    pub const SUITE_17: CipherSuite = CipherSuite {
        id: 17,
        auth: AuthAlg::HmacSha256,
        integrity: IntegrityAlg::HmacSha256_128,
        confidentiality: ConfAlg::AesCbc128,
    };
    /// RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128.
    pub const SUITE_3: CipherSuite = CipherSuite {
        id: 3,
        auth: AuthAlg::HmacSha1,
        integrity: IntegrityAlg::HmacSha1_96,
        confidentiality: ConfAlg::AesCbc128,
    };
    /// The suites this client speaks, best first: the negotiation order.
    pub const PREFERRED: [CipherSuite; 2] = [Self::SUITE_17, Self::SUITE_3];

    pub fn from_id(id: u8) -> Option<CipherSuite> {
        Self::PREFERRED.into_iter().find(|suite| suite.id == id)
    }

    /// The suite with exactly these algorithm numbers, if supported.
    pub fn from_algorithms(auth: u8, integrity: u8, confidentiality: u8) -> Option<CipherSuite> {
        Self::PREFERRED.into_iter().find(|suite| {
            suite.auth.number() == auth
                && suite.integrity.number() == integrity
                && suite.confidentiality.number() == confidentiality
        })
    }
}

/// HMAC over the concatenation of `parts`.
pub fn hmac(alg: AuthAlg, key: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>> {
        let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
            .map_err(|_| IpmiError::InvalidConfig("HMAC key length".into()))?;
        for part in parts {
            mac.update(part);
        }
        Ok(mac.finalize().into_bytes().to_vec())
    }
    match alg {
        AuthAlg::HmacSha1 => run::<Hmac<Sha1>>(key, parts),
        AuthAlg::HmacSha256 => run::<Hmac<Sha256>>(key, parts),
    }
}

/// Compares two byte strings without an early exit.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The user key Kuid: the password, zero-padded to 20 bytes (IPMI 2.0
/// passwords are at most 20 bytes; the caller checks).
pub fn user_key(password: &[u8]) -> Vec<u8> {
    let mut key = password.to_vec();
    if key.len() < 20 {
        key.resize(20, 0);
    }
    key
}

/// Everything the RAKP codes are computed over.
#[derive(Clone)]
pub struct RakpContext<'a> {
    pub console_sid: u32,
    pub bmc_sid: u32,
    pub console_random: [u8; 16],
    pub bmc_random: [u8; 16],
    pub bmc_guid: [u8; 16],
    /// The whole requested-role byte of RAKP 1 (privilege and lookup bit).
    pub role: u8,
    pub username: &'a [u8],
}

impl fmt::Debug for RakpContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RakpContext")
            .field("console_sid", &format_args!("{:#010x}", self.console_sid))
            .field("bmc_sid", &format_args!("{:#010x}", self.bmc_sid))
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl RakpContext<'_> {
    fn name_len(&self) -> [u8; 1] {
        // Usernames are at most 16 bytes (checked by the caller).
        [self.username.len().min(255) as u8]
    }

    /// The BMC's proof in RAKP 2: HMAC(Kuid, SIDm, SIDc, Rm, Rc, GUIDc,
    /// ROLEm, ULENGTHm, UNAMEm).
    pub fn rakp2_code(&self, alg: AuthAlg, kuid: &[u8]) -> Result<Vec<u8>> {
        hmac(
            alg,
            kuid,
            &[
                &self.console_sid.to_le_bytes(),
                &self.bmc_sid.to_le_bytes(),
                &self.console_random,
                &self.bmc_random,
                &self.bmc_guid,
                &[self.role],
                &self.name_len(),
                self.username,
            ],
        )
    }

    /// The console's proof in RAKP 3: HMAC(Kuid, Rc, SIDm, ROLEm, ULENGTHm,
    /// UNAMEm).
    pub fn rakp3_code(&self, alg: AuthAlg, kuid: &[u8]) -> Result<Vec<u8>> {
        hmac(
            alg,
            kuid,
            &[
                &self.bmc_random,
                &self.console_sid.to_le_bytes(),
                &[self.role],
                &self.name_len(),
                self.username,
            ],
        )
    }

    /// The session integrity key: HMAC(Kg or Kuid, Rm, Rc, ROLEm, ULENGTHm,
    /// UNAMEm).
    pub fn sik(&self, alg: AuthAlg, key: &[u8]) -> Result<Vec<u8>> {
        hmac(
            alg,
            key,
            &[
                &self.console_random,
                &self.bmc_random,
                &[self.role],
                &self.name_len(),
                self.username,
            ],
        )
    }

    /// RAKP 4's integrity check value: HMAC(SIK, Rm, SIDc, GUIDc), truncated.
    pub fn rakp4_icv(&self, alg: AuthAlg, sik: &[u8]) -> Result<Vec<u8>> {
        let mut icv =
            hmac(alg, sik, &[&self.console_random, &self.bmc_sid.to_le_bytes(), &self.bmc_guid])?;
        icv.truncate(alg.icv_len());
        Ok(icv)
    }
}

/// The keys of an established session. Never printed.
#[derive(Clone)]
pub struct SessionKeys {
    pub integrity: IntegrityAlg,
    pub confidentiality: ConfAlg,
    k1: Vec<u8>,
    aes_key: [u8; 16],
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKeys")
            .field("integrity", &self.integrity)
            .field("confidentiality", &self.confidentiality)
            .finish_non_exhaustive()
    }
}

impl SessionKeys {
    /// K1 = HMAC(SIK, 20 × 0x01) keys integrity; the first 16 bytes of
    /// K2 = HMAC(SIK, 20 × 0x02) key AES (IPMI 2.0 section 13.32: the
    /// constants are 20 bytes whatever the hash).
    pub fn derive(suite: CipherSuite, sik: &[u8]) -> Result<SessionKeys> {
        let k1 = hmac(suite.auth, sik, &[&[0x01; 20]])?;
        let k2 = hmac(suite.auth, sik, &[&[0x02; 20]])?;
        let mut aes_key = [0u8; 16];
        let head = k2.get(..16).ok_or_else(|| IpmiError::malformed("K2 shorter than 16 bytes"))?;
        aes_key.copy_from_slice(head);
        Ok(SessionKeys {
            integrity: suite.integrity,
            confidentiality: suite.confidentiality,
            k1,
            aes_key,
        })
    }

    /// The AuthCode of an authenticated packet, over `covered` (from the
    /// session header's auth type through the Next Header byte).
    pub fn integrity_code(&self, covered: &[u8]) -> Result<Vec<u8>> {
        let mut code = hmac(self.integrity.hash(), &self.k1, &[covered])?;
        code.truncate(self.integrity.code_len());
        Ok(code)
    }

    /// Encrypts a payload: IV, then AES-CBC-128 of the payload followed by
    /// the confidentiality trailer (pad bytes 1, 2, ..., N and N).
    pub fn encrypt(&self, iv: [u8; 16], payload: &[u8]) -> Result<Vec<u8>> {
        let pad = (16 - (payload.len() + 1) % 16) % 16;
        let mut buffer = Vec::with_capacity(16 + payload.len() + pad + 1);
        buffer.extend_from_slice(payload);
        buffer.extend((1..=pad).map(|n| n as u8));
        buffer.push(pad as u8);
        let length = buffer.len();
        let cipher = cbc::Encryptor::<aes::Aes128>::new_from_slices(&self.aes_key, &iv)
            .map_err(|_| IpmiError::InvalidConfig("AES key length".into()))?;
        cipher
            .encrypt_padded_mut::<NoPadding>(&mut buffer, length)
            .map_err(|_| IpmiError::malformed("encryption input not block-aligned"))?;
        let mut out = iv.to_vec();
        out.extend_from_slice(&buffer);
        Ok(out)
    }

    /// Decrypts an encrypted payload (IV and ciphertext) and strips the
    /// confidentiality trailer.
    pub fn decrypt(&self, data: &[u8]) -> Result<Vec<u8>> {
        if data.len() < 32 || data.len() & 15 != 0 {
            return Err(IpmiError::malformed(format!(
                "encrypted payload of {} bytes is not an IV plus whole AES blocks",
                data.len()
            )));
        }
        let (iv, ciphertext) = data.split_at(16);
        let cipher = cbc::Decryptor::<aes::Aes128>::new_from_slices(&self.aes_key, iv)
            .map_err(|_| IpmiError::InvalidConfig("AES key length".into()))?;
        let mut buffer = ciphertext.to_vec();
        let plain = cipher
            .decrypt_padded_mut::<NoPadding>(&mut buffer)
            .map_err(|_| IpmiError::malformed("ciphertext not block-aligned"))?;
        let (&pad, rest) =
            plain.split_last().ok_or_else(|| IpmiError::malformed("empty decrypted payload"))?;
        let pad = usize::from(pad);
        if pad > 15 || pad > rest.len() {
            return Err(IpmiError::malformed("bad confidentiality pad length"));
        }
        Ok(rest[..rest.len() - pad].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn hmac_matches_rfc_vectors() {
        // RFC 2202 test case 2 and RFC 4231 test case 2 ("Jefe").
        let data = b"what do ya want for nothing?";
        assert_eq!(
            hmac(AuthAlg::HmacSha1, b"Jefe", &[&data[..10], &data[10..]]).expect("hmac"),
            hex("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
        );
        assert_eq!(
            hmac(AuthAlg::HmacSha256, b"Jefe", &[data]).expect("hmac"),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }

    #[test]
    fn aes_round_trips_with_ipmi_padding() {
        let keys = SessionKeys::derive(CipherSuite::SUITE_17, &[7u8; 32]).expect("keys");
        for len in 0..40 {
            let payload: Vec<u8> = (0..len as u8).collect();
            let sealed = keys.encrypt([9u8; 16], &payload).expect("encrypt");
            assert_eq!(sealed.len() % 16, 0);
            assert_eq!(&sealed[..16], &[9u8; 16]);
            assert_eq!(keys.decrypt(&sealed).expect("decrypt"), payload);
        }
    }

    #[test]
    fn suites_are_looked_up_by_id_and_algorithms() {
        assert_eq!(CipherSuite::from_id(17), Some(CipherSuite::SUITE_17));
        assert_eq!(CipherSuite::from_id(1), None);
        assert_eq!(CipherSuite::from_algorithms(1, 1, 1), Some(CipherSuite::SUITE_3));
        assert_eq!(CipherSuite::from_algorithms(3, 4, 1), Some(CipherSuite::SUITE_17));
        assert_eq!(CipherSuite::from_algorithms(3, 4, 0), None);
    }

    #[test]
    fn keys_never_print() {
        let keys = SessionKeys::derive(CipherSuite::SUITE_3, b"secret-sik").expect("keys");
        let shown = format!("{keys:?}");
        assert!(!shown.contains("k1") && !shown.contains("aes_key"), "{shown}");
    }
}

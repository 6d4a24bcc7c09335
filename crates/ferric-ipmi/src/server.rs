//! The BMC side of RMCP+ (IPMI 2.0 lanplus), without I/O: session setup
//! (Get Channel Authentication Capabilities, Open Session, RAKP 1–4 for
//! cipher suites 17 and 3), integrity and confidentiality inside sessions,
//! and the session-level commands (Set Session Privilege Level, Close
//! Session, Get Channel Cipher Suites).
//!
//! [`BmcSessions::receive`] takes one datagram and either answers it itself
//! ([`Incoming::Reply`]) or hands out an IPMI command
//! ([`Incoming::Command`]) for the caller to run, possibly asynchronously;
//! [`BmcSessions::reply`] then seals the caller's answer for that session.
//! The test BMC ([`crate::testing::MockBmc`]) and virtual BMCs are built on
//! it. It knows one user, who may use any privilege up to administrator.

use std::collections::HashMap;
use std::fmt;

use crate::commands::{cmd, netfn};
use crate::crypto::{self, CipherSuite, RakpContext, SessionKeys};
use crate::rakp::{
    Algorithms, OpenSessionRequest, OpenSessionResponse, Rakp1, Rakp2, Rakp3, Rakp4,
};
use crate::wire::{self, Packet, PayloadType, Response};

/// Completion code: command not supported (invalid command).
pub const CC_INVALID_COMMAND: u8 = 0xC1;
/// Completion code: request data length invalid.
pub const CC_INVALID_LENGTH: u8 = 0xC7;
/// Completion code: invalid data field in request.
pub const CC_INVALID_DATA: u8 = 0xCC;

/// A command received from a console, to be answered with
/// [`BmcSessions::reply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingCommand {
    pub netfn: u8,
    pub cmd: u8,
    pub rq_seq: u8,
    pub data: Vec<u8>,
    /// The BMC's session id, or 0 for a command outside a session (only Get
    /// Channel Cipher Suites is accepted so).
    pub session: u32,
}

/// What to do with a received datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// Send these bytes back to the sender.
    Reply(Vec<u8>),
    /// Run this command, then answer through [`BmcSessions::reply`].
    Command(IncomingCommand),
    /// Send nothing (malformed, unknown session, failed integrity check).
    Ignore,
}

struct Pending {
    console_sid: u32,
    suite: CipherSuite,
    rakp1: Option<(Rakp1, [u8; 16])>,
}

struct Active {
    console_sid: u32,
    keys: SessionKeys,
    out_seq: u32,
}

/// The sessions of one BMC with one user.
pub struct BmcSessions {
    username: Vec<u8>,
    kuid: Vec<u8>,
    suites: Vec<u8>,
    guid: [u8; 16],
    pending: HashMap<u32, Pending>,
    active: HashMap<u32, Active>,
    opened: usize,
}

impl fmt::Debug for BmcSessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BmcSessions")
            .field("username", &String::from_utf8_lossy(&self.username))
            .field("suites", &self.suites)
            .field("active", &self.active.len())
            .finish_non_exhaustive()
    }
}

fn peek_session_id(datagram: &[u8]) -> u32 {
    match datagram.get(4..10) {
        Some(raw) if raw[0] == wire::AUTH_TYPE_RMCP_PLUS => {
            u32::from_le_bytes([raw[2], raw[3], raw[4], raw[5]])
        }
        _ => 0,
    }
}

/// The RMCP+ payload type of a datagram, if it is an RMCP+ packet.
pub fn peek_payload_type(datagram: &[u8]) -> Option<u8> {
    match datagram.get(4..6) {
        Some(raw) if raw[0] == wire::AUTH_TYPE_RMCP_PLUS => Some(raw[1] & 0x3F),
        _ => None,
    }
}

/// Get Channel Cipher Suites records (standard format) for `suites`.
pub fn cipher_suite_records(suites: &[u8]) -> Vec<u8> {
    let mut records = Vec::new();
    for suite in suites.iter().filter_map(|id| CipherSuite::from_id(*id)) {
        records.extend_from_slice(&[
            0xC0,
            suite.id,
            suite.auth.number(),
            0x40 | suite.integrity.number(),
            0x80 | suite.confidentiality.number(),
        ]);
    }
    records
}

fn plain(kind: PayloadType, payload: &[u8]) -> Option<Vec<u8>> {
    wire::seal(None, kind, 0, 0, payload, [0; 16]).ok()
}

fn or_ignore(reply: Option<Vec<u8>>) -> Incoming {
    reply.map_or(Incoming::Ignore, Incoming::Reply)
}

impl BmcSessions {
    /// A BMC with one user that offers cipher suites `suites` (any of 3 and
    /// 17).
    pub fn new(username: &str, password: &str, suites: &[u8]) -> BmcSessions {
        BmcSessions {
            username: username.as_bytes().to_vec(),
            kuid: crypto::user_key(password.as_bytes()),
            suites: suites.to_vec(),
            guid: *b"ferric-mock-bmc!",
            pending: HashMap::new(),
            active: HashMap::new(),
            opened: 0,
        }
    }

    /// Sets the BMC's GUID (used in RAKP).
    pub fn with_guid(mut self, guid: [u8; 16]) -> BmcSessions {
        self.guid = guid;
        self
    }

    /// Changes the cipher suites offered to new sessions.
    pub fn set_suites(&mut self, suites: &[u8]) {
        if self.suites != suites {
            self.suites = suites.to_vec();
        }
    }

    pub fn suites(&self) -> &[u8] {
        &self.suites
    }

    /// Sessions that completed RAKP since the start.
    pub fn sessions_opened(&self) -> usize {
        self.opened
    }

    /// Sessions currently established.
    pub fn sessions_active(&self) -> usize {
        self.active.len()
    }

    /// Forgets every session (as a BMC that restarted).
    pub fn clear_sessions(&mut self) {
        self.pending.clear();
        self.active.clear();
    }

    /// Handles one datagram from a console.
    pub fn receive(&mut self, datagram: &[u8]) -> Incoming {
        let session_id = peek_session_id(datagram);
        if session_id != 0 {
            return self.receive_in_session(session_id, datagram);
        }
        match wire::open(None, datagram) {
            Ok(Packet::V15(v15)) => {
                let Ok(request) = wire::decode_request(&v15.message) else {
                    return Incoming::Ignore;
                };
                if (request.netfn, request.cmd) != (netfn::APP, cmd::GET_CHANNEL_AUTH_CAPABILITIES)
                {
                    return Incoming::Ignore;
                }
                let response = Response {
                    netfn: request.netfn | 1,
                    cmd: request.cmd,
                    rq_seq: request.rq_seq,
                    completion_code: 0,
                    data: Self::auth_capabilities(),
                };
                or_ignore(wire::encode_v15(&wire::encode_response(&response)).ok())
            }
            Ok(Packet::V2(v2)) => self.receive_setup(v2.payload_type, &v2.payload),
            _ => Incoming::Ignore,
        }
    }

    /// Get Channel Authentication Capabilities data: channel 1, IPMI 2.0
    /// extended data, non-null usernames, IPMI 2.0 connections.
    fn auth_capabilities() -> Vec<u8> {
        vec![0x01, 0x80, 0x04, 0x02, 0, 0, 0, 0]
    }

    fn receive_setup(&mut self, kind: PayloadType, payload: &[u8]) -> Incoming {
        match kind {
            PayloadType::OpenSessionRequest => or_ignore(self.open_session(payload)),
            PayloadType::Rakp1 => or_ignore(self.rakp1(payload)),
            PayloadType::Rakp3 => or_ignore(self.rakp3(payload)),
            PayloadType::Ipmi => {
                // Session-less Get Channel Cipher Suites only.
                let Ok(request) = wire::decode_request(payload) else { return Incoming::Ignore };
                if (request.netfn, request.cmd) != (netfn::APP, cmd::GET_CHANNEL_CIPHER_SUITES) {
                    return Incoming::Ignore;
                }
                Incoming::Command(IncomingCommand {
                    netfn: request.netfn,
                    cmd: request.cmd,
                    rq_seq: request.rq_seq,
                    data: request.data,
                    session: 0,
                })
            }
            _ => Incoming::Ignore,
        }
    }

    fn open_session(&mut self, payload: &[u8]) -> Option<Vec<u8>> {
        let request = OpenSessionRequest::decode(payload).ok()?;
        let algorithms = request.algorithms;
        let suite = CipherSuite::from_algorithms(
            algorithms.auth,
            algorithms.integrity,
            algorithms.confidentiality,
        )
        .filter(|suite| self.suites.contains(&suite.id));
        let Some(suite) = suite else {
            let auth_known = self
                .suites
                .iter()
                .filter_map(|id| CipherSuite::from_id(*id))
                .any(|suite| suite.auth.number() == algorithms.auth);
            let refusal = OpenSessionResponse {
                tag: request.tag,
                status: if auth_known { 0x11 } else { 0x04 },
                max_privilege: 0,
                console_sid: request.console_sid,
                bmc_sid: 0,
                algorithms: Algorithms { auth: 0, integrity: 0, confidentiality: 0 },
            };
            return plain(PayloadType::OpenSessionResponse, &refusal.encode());
        };
        let bmc_sid = loop {
            let sid: u32 = rand::random();
            if sid != 0 && !self.pending.contains_key(&sid) && !self.active.contains_key(&sid) {
                break sid;
            }
        };
        // Abandoned handshakes must not pile up.
        if self.pending.len() >= 64 {
            self.pending.clear();
        }
        self.pending
            .insert(bmc_sid, Pending { console_sid: request.console_sid, suite, rakp1: None });
        let response = OpenSessionResponse {
            tag: request.tag,
            status: 0,
            max_privilege: 4,
            console_sid: request.console_sid,
            bmc_sid,
            algorithms,
        };
        plain(PayloadType::OpenSessionResponse, &response.encode())
    }

    fn rakp1(&mut self, payload: &[u8]) -> Option<Vec<u8>> {
        let rakp1 = Rakp1::decode(payload).ok()?;
        let pending = self.pending.get_mut(&rakp1.bmc_sid)?;
        if rakp1.username != self.username {
            let refusal = Rakp2 {
                tag: rakp1.tag,
                status: 0x0D,
                console_sid: pending.console_sid,
                bmc_random: [0; 16],
                bmc_guid: [0; 16],
                auth_code: vec![],
            };
            return plain(PayloadType::Rakp2, &refusal.encode());
        }
        let bmc_random: [u8; 16] = rand::random();
        let context = RakpContext {
            console_sid: pending.console_sid,
            bmc_sid: rakp1.bmc_sid,
            console_random: rakp1.console_random,
            bmc_random,
            bmc_guid: self.guid,
            role: rakp1.role,
            username: &rakp1.username,
        };
        let auth_code = context.rakp2_code(pending.suite.auth, &self.kuid).ok()?;
        let reply = Rakp2 {
            tag: rakp1.tag,
            status: 0,
            console_sid: pending.console_sid,
            bmc_random,
            bmc_guid: self.guid,
            auth_code,
        };
        pending.rakp1 = Some((rakp1, bmc_random));
        plain(PayloadType::Rakp2, &reply.encode())
    }

    fn rakp3(&mut self, payload: &[u8]) -> Option<Vec<u8>> {
        let rakp3 = Rakp3::decode(payload).ok()?;
        let pending = self.pending.remove(&rakp3.bmc_sid)?;
        if rakp3.status != 0 {
            return None;
        }
        let (rakp1, bmc_random) = pending.rakp1?;
        let context = RakpContext {
            console_sid: pending.console_sid,
            bmc_sid: rakp3.bmc_sid,
            console_random: rakp1.console_random,
            bmc_random,
            bmc_guid: self.guid,
            role: rakp1.role,
            username: &rakp1.username,
        };
        let auth = pending.suite.auth;
        let expected = context.rakp3_code(auth, &self.kuid).ok()?;
        if !crypto::constant_time_eq(&expected, &rakp3.auth_code) {
            let refusal = Rakp4 {
                tag: rakp3.tag,
                status: 0x0F,
                console_sid: pending.console_sid,
                icv: vec![],
            };
            return plain(PayloadType::Rakp4, &refusal.encode());
        }
        let sik = context.sik(auth, &self.kuid).ok()?;
        let icv = context.rakp4_icv(auth, &sik).ok()?;
        let keys = SessionKeys::derive(pending.suite, &sik).ok()?;
        self.active
            .insert(rakp3.bmc_sid, Active { console_sid: pending.console_sid, keys, out_seq: 0 });
        self.opened += 1;
        let reply = Rakp4 { tag: rakp3.tag, status: 0, console_sid: pending.console_sid, icv };
        plain(PayloadType::Rakp4, &reply.encode())
    }

    fn receive_in_session(&mut self, bmc_sid: u32, datagram: &[u8]) -> Incoming {
        let Some(session) = self.active.get(&bmc_sid) else { return Incoming::Ignore };
        let Ok(Packet::V2(packet)) = wire::open(Some(&session.keys), datagram) else {
            return Incoming::Ignore;
        };
        if packet.payload_type != PayloadType::Ipmi {
            return Incoming::Ignore;
        }
        let Ok(request) = wire::decode_request(&packet.payload) else { return Incoming::Ignore };
        Incoming::Command(IncomingCommand {
            netfn: request.netfn,
            cmd: request.cmd,
            rq_seq: request.rq_seq,
            data: request.data,
            session: bmc_sid,
        })
    }

    /// Answers the session-level commands (Set Session Privilege Level,
    /// Close Session, Get Channel Cipher Suites, Get Channel Authentication
    /// Capabilities); `None` for any other command.
    pub fn builtin(&self, command: &IncomingCommand) -> Option<(u8, Vec<u8>)> {
        let data = &command.data;
        Some(match (command.netfn, command.cmd) {
            (netfn::APP, cmd::SET_SESSION_PRIVILEGE_LEVEL) => match data.first() {
                Some(level @ 1..=4) => (0, vec![*level]),
                // 0 asks for the current level.
                Some(0) => (0, vec![4]),
                _ => (CC_INVALID_DATA, vec![]),
            },
            (netfn::APP, cmd::CLOSE_SESSION) => {
                let wanted =
                    data.get(..4).map(|raw| u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]));
                if wanted == Some(command.session) {
                    (0, vec![])
                } else {
                    (0x87, vec![])
                }
            }
            (netfn::APP, cmd::GET_CHANNEL_CIPHER_SUITES) => {
                let records = cipher_suite_records(&self.suites);
                let index = usize::from(data.get(2).copied().unwrap_or(0) & 0x3F);
                let block: Vec<u8> = records.iter().skip(index * 16).take(16).copied().collect();
                let mut out = vec![0x01];
                out.extend_from_slice(&block);
                (0, out)
            }
            (netfn::APP, cmd::GET_CHANNEL_AUTH_CAPABILITIES) => (0, Self::auth_capabilities()),
            _ => return None,
        })
    }

    /// Seals the answer to `command`; `None` when its session is gone. A
    /// successful Close Session ends the session after this answer.
    pub fn reply(&mut self, command: &IncomingCommand, code: u8, data: Vec<u8>) -> Option<Vec<u8>> {
        let response = Response {
            netfn: command.netfn | 1,
            cmd: command.cmd,
            rq_seq: command.rq_seq,
            completion_code: code,
            data,
        };
        if command.session == 0 {
            return plain(PayloadType::Ipmi, &wire::encode_response(&response));
        }
        let closing = (command.netfn, command.cmd) == (netfn::APP, cmd::CLOSE_SESSION) && code == 0;
        let session = self.active.get_mut(&command.session)?;
        session.out_seq = session.out_seq.wrapping_add(1).max(1);
        let reply = wire::seal(
            Some(&session.keys),
            PayloadType::Ipmi,
            session.console_sid,
            session.out_seq,
            &wire::encode_response(&response),
            rand::random(),
        )
        .ok();
        if closing {
            self.active.remove(&command.session);
        }
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_datagrams_never_panic(datagram in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut sessions = BmcSessions::new("admin", "password", &[3, 17]);
            let _ = sessions.receive(&datagram);
            // Also with the RMCP+ header in place, to reach the decoders.
            let mut framed = vec![0x06, 0x00, 0xFF, 0x07, 0x06];
            framed.extend_from_slice(&datagram);
            let _ = sessions.receive(&framed);
        }
    }

    #[test]
    fn builtin_answers_session_commands_only() {
        let sessions = BmcSessions::new("admin", "password", &[17]);
        let command =
            |netfn, cmd, data: Vec<u8>| IncomingCommand { netfn, cmd, rq_seq: 1, data, session: 7 };
        assert_eq!(
            sessions.builtin(&command(netfn::APP, cmd::CLOSE_SESSION, 7u32.to_le_bytes().to_vec())),
            Some((0, vec![]))
        );
        assert_eq!(
            sessions.builtin(&command(netfn::APP, cmd::CLOSE_SESSION, 8u32.to_le_bytes().to_vec())),
            Some((0x87, vec![]))
        );
        let suites = sessions.builtin(&command(
            netfn::APP,
            cmd::GET_CHANNEL_CIPHER_SUITES,
            vec![0x0E, 0x00, 0x80],
        ));
        assert_eq!(suites, Some((0, vec![0x01, 0xC0, 17, 0x03, 0x44, 0x81])));
        assert_eq!(
            sessions.builtin(&command(netfn::CHASSIS, cmd::GET_CHASSIS_STATUS, vec![])),
            None
        );
    }
}

//! An RMCP+ session: the socket loop (send, wait, re-send with growing
//! waits), session setup (Get Channel Authentication Capabilities, Open
//! Session, RAKP 1–4, Set Session Privilege Level) with cipher suite
//! negotiation, and authenticated, encrypted commands over the session.
//!
//! A [`Session`] is used through `&mut self`: one command at a time, so its
//! sequence numbers never interleave. Share one behind a lock (or use
//! [`crate::Client`]).

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use crate::commands::{self, BootFlags, ChassisControl, ChassisStatus, CipherSuiteRecord, Command};
use crate::config::{Config, Timing};
use crate::crypto::{self, CipherSuite, RakpContext, SessionKeys};
use crate::error::{self, completion_code_meaning, IpmiError, Result};
use crate::rakp::{
    Algorithms, OpenSessionRequest, OpenSessionResponse, Rakp1, Rakp2, Rakp3, Rakp4,
};
use crate::wire::{self, Packet, PayloadType, ReplayWindow, Request, Response};

/// Name-only lookup bit of the RAKP 1 role byte.
const NAME_ONLY_LOOKUP: u8 = 0x10;
/// Largest datagram we read.
const MAX_DATAGRAM: usize = 1024;

/// Sends what `build` makes and waits for a datagram that `accept` takes
/// (`None`: not ours, keep waiting). Re-sends after each wait of `timing`.
/// An ICMP "port unreachable" counts as no reply.
async fn exchange<T>(
    socket: &UdpSocket,
    timing: Timing,
    what: &'static str,
    mut build: impl FnMut() -> Result<Vec<u8>>,
    mut accept: impl FnMut(&[u8]) -> Option<Result<T>>,
) -> Result<T> {
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    for wait in timing.waits() {
        let packet = build()?;
        let deadline = tokio::time::Instant::now() + wait;
        match socket.send(&packet).await {
            Ok(_) => {}
            Err(error) if error.kind() == ErrorKind::ConnectionRefused => {
                tokio::time::sleep_until(deadline).await;
                continue;
            }
            Err(error) => return Err(error.into()),
        }
        loop {
            match tokio::time::timeout_at(deadline, socket.recv(&mut buffer)).await {
                Err(_elapsed) => break,
                Ok(Err(error)) if error.kind() == ErrorKind::ConnectionRefused => {
                    tokio::time::sleep_until(deadline).await;
                    break;
                }
                Ok(Err(error)) => return Err(error.into()),
                Ok(Ok(len)) => {
                    if let Some(result) = accept(&buffer[..len]) {
                        return result;
                    }
                }
            }
        }
        tracing::debug!(what, ?wait, "no reply from the BMC, re-sending");
    }
    Err(IpmiError::Timeout { what, after: timing.total, retries: timing.retries })
}

/// Checks a response's completion code.
fn completed(command: &Command, response: Response) -> Result<Vec<u8>> {
    match response.completion_code {
        0 => Ok(response.data),
        code => Err(IpmiError::CompletionCode {
            cmd: command.name(),
            code,
            meaning: completion_code_meaning(command.netfn, command.cmd, code),
        }),
    }
}

fn matches(command: &Command, rq_seq: u8, response: &Response) -> bool {
    response.rq_seq == rq_seq && response.cmd == command.cmd && response.netfn == command.netfn | 1
}

/// Sends a command outside any session, in an IPMI 1.5 wrapper.
async fn sessionless(socket: &UdpSocket, timing: Timing, command: &Command) -> Result<Vec<u8>> {
    let request =
        Request { netfn: command.netfn, cmd: command.cmd, rq_seq: 0, data: command.data.clone() };
    let packet = wire::encode_v15(&wire::encode_request(&request))?;
    let response = exchange(
        socket,
        timing,
        command.name(),
        || Ok(packet.clone()),
        |datagram| match wire::open(None, datagram) {
            Ok(Packet::V15(v15)) => wire::decode_response(&v15.message)
                .ok()
                .filter(|response| matches(command, 0, response))
                .map(Ok),
            _ => None,
        },
    )
    .await?;
    completed(command, response)
}

async fn connect(config: &Config) -> Result<(UdpSocket, SocketAddr)> {
    let peer = tokio::net::lookup_host((config.host.as_str(), config.port))
        .await?
        .next()
        .ok_or_else(|| IpmiError::InvalidConfig(format!("{} has no address", config.host)))?;
    let local: SocketAddr =
        if peer.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(peer).await?;
    Ok((socket, peer))
}

/// What a successful RAKP exchange yields.
struct Established {
    console_sid: u32,
    bmc_sid: u32,
    keys: SessionKeys,
}

fn random_sid() -> u32 {
    loop {
        let sid: u32 = rand::random();
        if sid != 0 {
            return sid;
        }
    }
}

fn rakp_payload(datagram: &[u8], kind: PayloadType) -> Option<Vec<u8>> {
    match wire::open(None, datagram) {
        Ok(Packet::V2(v2)) if v2.payload_type == kind && v2.session_id == 0 => Some(v2.payload),
        _ => None,
    }
}

/// One run of Open Session and RAKP 1–4, each message waiting `wait` once.
async fn handshake(
    socket: &UdpSocket,
    config: &Config,
    suite: CipherSuite,
    wait: Duration,
    tag: u8,
) -> Result<Established> {
    let timing = Timing::once(wait);
    let console_sid = random_sid();
    let wanted = Algorithms {
        auth: suite.auth.number(),
        integrity: suite.integrity.number(),
        confidentiality: suite.confidentiality.number(),
    };
    let privilege = config.privilege;
    let open_request = OpenSessionRequest {
        tag,
        // 0 asks for the highest level the algorithms allow, as ipmitool
        // does for administrators.
        max_privilege: if privilege == commands::Privilege::Administrator {
            0
        } else {
            privilege.number()
        },
        console_sid,
        algorithms: wanted,
    }
    .encode();
    let opened = exchange(
        socket,
        timing,
        "RMCP+ Open Session Request",
        || wire::seal(None, PayloadType::OpenSessionRequest, 0, 0, &open_request, [0; 16]),
        |datagram| {
            let payload = rakp_payload(datagram, PayloadType::OpenSessionResponse)?;
            let response = OpenSessionResponse::decode(&payload).ok()?;
            (response.tag == tag && (response.console_sid == console_sid || response.status != 0))
                .then_some(Ok(response))
        },
    )
    .await?;
    if opened.status != 0 {
        return Err(error::status_error(opened.status, suite.id));
    }
    if opened.algorithms != wanted {
        return Err(IpmiError::UnsupportedCipherSuite {
            suite: Some(suite.id),
            reason: format!("the BMC chose other algorithms ({:?})", opened.algorithms),
        });
    }
    let bmc_sid = opened.bmc_sid;

    let console_random: [u8; 16] = rand::random();
    let role = privilege.number() | NAME_ONLY_LOOKUP;
    let username = config.username.as_bytes();
    let rakp1 = Rakp1 { tag, bmc_sid, console_random, role, username: username.to_vec() }.encode();
    let rakp2 = exchange(
        socket,
        timing,
        "RAKP Message 1",
        || wire::seal(None, PayloadType::Rakp1, 0, 0, &rakp1, [0; 16]),
        |datagram| {
            let payload = rakp_payload(datagram, PayloadType::Rakp2)?;
            let message = Rakp2::decode(&payload).ok()?;
            (message.tag == tag && (message.console_sid == console_sid || message.status != 0))
                .then_some(Ok(message))
        },
    )
    .await?;
    if rakp2.status != 0 {
        return Err(error::status_error(rakp2.status, suite.id));
    }
    let context = RakpContext {
        console_sid,
        bmc_sid,
        console_random,
        bmc_random: rakp2.bmc_random,
        bmc_guid: rakp2.bmc_guid,
        role,
        username,
    };
    let kuid = crypto::user_key(config.password.bytes());
    let expected = context.rakp2_code(suite.auth, &kuid)?;
    if !crypto::constant_time_eq(&expected, &rakp2.auth_code) {
        // Tell the BMC, so it frees the session; no reply is awaited.
        let refusal = Rakp3 { tag, status: 0x0F, bmc_sid, auth_code: vec![] }.encode();
        if let Ok(packet) = wire::seal(None, PayloadType::Rakp3, 0, 0, &refusal, [0; 16]) {
            let _ = socket.send(&packet).await;
        }
        return Err(IpmiError::AuthFailed {
            reason: format!(
                "wrong password for user {:?}: the BMC's RAKP 2 key exchange code does not verify",
                config.username
            ),
        });
    }
    let sik = context.sik(suite.auth, &kuid)?;
    let rakp3 =
        Rakp3 { tag, status: 0, bmc_sid, auth_code: context.rakp3_code(suite.auth, &kuid)? }
            .encode();
    let rakp4 = exchange(
        socket,
        timing,
        "RAKP Message 3",
        || wire::seal(None, PayloadType::Rakp3, 0, 0, &rakp3, [0; 16]),
        |datagram| {
            let payload = rakp_payload(datagram, PayloadType::Rakp4)?;
            let message = Rakp4::decode(&payload).ok()?;
            (message.tag == tag && (message.console_sid == console_sid || message.status != 0))
                .then_some(Ok(message))
        },
    )
    .await?;
    if rakp4.status != 0 {
        return Err(error::status_error(rakp4.status, suite.id));
    }
    let icv = context.rakp4_icv(suite.auth, &sik)?;
    if !crypto::constant_time_eq(&icv, &rakp4.icv) {
        return Err(IpmiError::AuthFailed {
            reason: "the BMC's RAKP 4 integrity check value does not verify".into(),
        });
    }
    Ok(Established { console_sid, bmc_sid, keys: SessionKeys::derive(suite, &sik)? })
}

/// An active RMCP+ session with one BMC.
#[derive(Debug)]
pub struct Session {
    socket: UdpSocket,
    peer: SocketAddr,
    timing: Timing,
    suite: CipherSuite,
    keys: SessionKeys,
    console_sid: u32,
    bmc_sid: u32,
    out_seq: u32,
    rq_seq: u8,
    inbound: ReplayWindow,
    last_used: Instant,
}

impl Session {
    /// Opens a session: checks the BMC speaks IPMI 2.0, then sets up RMCP+
    /// with the configured cipher suite, or with 17 and else 3.
    pub async fn open(config: &Config) -> Result<Session> {
        config.validate()?;
        let (socket, peer) = connect(config).await?;
        let timing = config.timing();
        let capabilities = commands::AuthCapabilities::decode(
            &sessionless(
                &socket,
                timing,
                &commands::get_channel_auth_capabilities(config.privilege),
            )
            .await?,
        )?;
        if !capabilities.ipmi20 {
            return Err(IpmiError::UnsupportedCipherSuite {
                suite: None,
                reason: "the BMC does not support IPMI 2.0 / RMCP+".into(),
            });
        }
        let candidates: Vec<CipherSuite> = match config.cipher_suite {
            Some(id) => {
                vec![CipherSuite::from_id(id).ok_or(IpmiError::UnsupportedCipherSuite {
                    suite: Some(id),
                    reason: "this client speaks cipher suites 17 and 3".into(),
                })?]
            }
            None => CipherSuite::PREFERRED.to_vec(),
        };
        let mut refusals = Vec::new();
        for (index, suite) in candidates.iter().enumerate() {
            let last = index + 1 == candidates.len();
            match Self::establish(&socket, config, *suite).await {
                Ok(established) => {
                    let mut session = Session {
                        socket,
                        peer,
                        timing,
                        suite: *suite,
                        keys: established.keys,
                        console_sid: established.console_sid,
                        bmc_sid: established.bmc_sid,
                        out_seq: 0,
                        rq_seq: 0,
                        inbound: ReplayWindow::default(),
                        last_used: Instant::now(),
                    };
                    let privilege = commands::set_session_privilege_level(config.privilege);
                    if let Err(error) = session.execute(&privilege).await {
                        if error.session_still_valid() {
                            session.close_within(Duration::from_millis(500)).await;
                        }
                        return Err(error);
                    }
                    tracing::debug!(
                        bmc = %peer, user = %config.username, suite = suite.id,
                        "IPMI session opened"
                    );
                    return Ok(session);
                }
                Err(
                    error @ (IpmiError::UnsupportedCipherSuite { .. } | IpmiError::Timeout { .. }),
                ) if !last => {
                    tracing::debug!(bmc = %peer, suite = suite.id, %error, "trying the next cipher suite");
                    refusals.push(format!("{}: {error}", suite.id));
                }
                Err(IpmiError::UnsupportedCipherSuite { suite: id, reason })
                    if !refusals.is_empty() =>
                {
                    refusals.push(format!("{}: {reason}", id.unwrap_or(suite.id)));
                    return Err(IpmiError::UnsupportedCipherSuite {
                        suite: None,
                        reason: format!("no common cipher suite ({})", refusals.join("; ")),
                    });
                }
                Err(error) => return Err(error),
            }
        }
        Err(IpmiError::UnsupportedCipherSuite {
            suite: None,
            reason: "no cipher suite to try".into(),
        })
    }

    /// Runs the handshake; a timeout anywhere restarts it from Open Session
    /// (RAKP messages are not individually re-sendable), with the next wait.
    async fn establish(
        socket: &UdpSocket,
        config: &Config,
        suite: CipherSuite,
    ) -> Result<Established> {
        let timing = config.timing();
        let base: u8 = rand::random();
        for (attempt, wait) in timing.waits().into_iter().enumerate() {
            let tag = base.wrapping_add(attempt as u8);
            match handshake(socket, config, suite, wait, tag).await {
                Err(IpmiError::Timeout { what, .. }) => {
                    tracing::debug!(
                        suite = suite.id,
                        what,
                        ?wait,
                        "session setup timed out, restarting"
                    );
                }
                other => return other,
            }
        }
        Err(IpmiError::Timeout {
            what: "RMCP+ session setup",
            after: timing.total,
            retries: timing.retries,
        })
    }

    /// The cipher suite in use.
    pub fn cipher_suite(&self) -> u8 {
        self.suite.id
    }

    /// The BMC's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// When the session last completed a command.
    pub fn last_used(&self) -> Instant {
        self.last_used
    }

    /// Sends `command` and returns its response data; a non-zero completion
    /// code is an [`IpmiError::CompletionCode`].
    pub async fn execute(&mut self, command: &Command) -> Result<Vec<u8>> {
        self.rq_seq = (self.rq_seq + 1) & 0x3F;
        let rq_seq = self.rq_seq;
        let message = wire::encode_request(&Request {
            netfn: command.netfn,
            cmd: command.cmd,
            rq_seq,
            data: command.data.clone(),
        });
        let Session { socket, keys, bmc_sid, console_sid, out_seq, inbound, timing, .. } = self;
        let response = exchange(
            socket,
            *timing,
            command.name(),
            || {
                *out_seq = out_seq.checked_add(1).ok_or_else(|| {
                    IpmiError::InvalidConfig("session sequence numbers exhausted".into())
                })?;
                wire::seal(
                    Some(keys),
                    PayloadType::Ipmi,
                    *bmc_sid,
                    *out_seq,
                    &message,
                    rand::random(),
                )
            },
            |datagram| {
                let packet = match wire::open(Some(keys), datagram) {
                    Ok(Packet::V2(packet)) => packet,
                    Ok(_) => return None,
                    Err(error) => {
                        tracing::debug!(%error, "ignoring a datagram");
                        return None;
                    }
                };
                if packet.payload_type != PayloadType::Ipmi || packet.session_id != *console_sid {
                    return None;
                }
                let response = wire::decode_response(&packet.payload).ok()?;
                if !matches(command, rq_seq, &response) || !inbound.accept(packet.seq) {
                    return None;
                }
                Some(Ok(response))
            },
        )
        .await?;
        self.last_used = Instant::now();
        completed(command, response)
    }

    /// Get Chassis Status.
    pub async fn chassis_status(&mut self) -> Result<ChassisStatus> {
        ChassisStatus::decode(&self.execute(&commands::get_chassis_status()).await?)
    }

    /// Chassis Control.
    pub async fn chassis_control(&mut self, action: ChassisControl) -> Result<()> {
        self.execute(&commands::chassis_control(action)).await.map(drop)
    }

    /// Set System Boot Options parameter 5 (boot flags).
    pub async fn set_boot_flags(&mut self, flags: BootFlags) -> Result<()> {
        let command =
            commands::set_system_boot_options(commands::BOOT_PARAM_BOOT_FLAGS, &flags.encode());
        self.execute(&command).await.map(drop)
    }

    /// Get System Boot Options parameter 5 (boot flags).
    pub async fn boot_flags(&mut self) -> Result<BootFlags> {
        let data = self
            .execute(&commands::get_system_boot_options(commands::BOOT_PARAM_BOOT_FLAGS))
            .await?;
        commands::decode_boot_flags_response(&data)
    }

    /// Get Channel Cipher Suites for the current channel, all blocks.
    pub async fn cipher_suites(&mut self) -> Result<Vec<CipherSuiteRecord>> {
        let mut bytes = Vec::new();
        for index in 0..64u8 {
            let data = self.execute(&commands::get_channel_cipher_suites(index)).await?;
            let block = commands::cipher_suite_block(&data)?;
            bytes.extend_from_slice(block);
            if block.len() < 16 {
                break;
            }
        }
        commands::decode_cipher_suite_records(&bytes)
    }

    /// Close Session.
    pub async fn close(mut self) -> Result<()> {
        let command = commands::close_session(self.bmc_sid);
        self.execute(&command).await.map(drop)
    }

    /// Closes the session, waiting at most `wait` once; errors are ignored
    /// (the BMC will expire the session anyway).
    pub async fn close_within(mut self, wait: Duration) {
        self.timing = Timing::once(wait);
        if let Err(error) = self.close().await {
            tracing::debug!(%error, "closing the IPMI session failed");
        }
    }
}

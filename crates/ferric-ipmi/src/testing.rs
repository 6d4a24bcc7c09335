//! Test helpers, for this crate's tests and for crates that drive BMCs:
//!
//! - [`MockBmc`]: an in-process BMC on 127.0.0.1 that speaks RMCP+ with
//!   cipher suites 17 and 3 (the BMC side of this crate's codecs), keeps a
//!   power state and boot flags, and can lose packets or refuse commands on
//!   demand. It exists because `ipmi_sim` has no cipher suite 17.
//! - [`SimBmc`]: OpenIPMI's `ipmi_sim` started on 127.0.0.1 and a free UDP
//!   port with a generated configuration, killed on drop; plus
//!   [`tools_present`] to skip (or, under `CI=true`, fail) when `ipmi_sim` or
//!   `ipmitool` is not installed.
//!
//! Nothing here binds or sends anywhere but the loopback address.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Output, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::commands::{self, cmd, netfn, ChassisStatus};
use crate::config::Config;
use crate::crypto::{self, CipherSuite, RakpContext, SessionKeys};
use crate::rakp::{
    Algorithms, OpenSessionRequest, OpenSessionResponse, Rakp1, Rakp2, Rakp3, Rakp4,
};
use crate::wire::{self, Packet, PayloadType, Response};

// ---- The in-process BMC ----------------------------------------------------------

/// What the mock BMC holds and records. Tests read and change it through
/// [`MockBmc::state`].
#[derive(Debug, Clone)]
pub struct MockState {
    /// Cipher suites offered (ids, any of 3 and 17).
    pub suites: Vec<u8>,
    pub power_on: bool,
    /// Boot parameter 5 as last written.
    pub boot_flags: [u8; 5],
    /// Chassis Control actions received, in order.
    pub controls: Vec<u8>,
    /// Datagrams received (including dropped ones).
    pub received: usize,
    /// Drop this many of the next datagrams without answering.
    pub drop_next: usize,
    /// Drop the next RMCP+ packet of each of these payload types (0x10 Open
    /// Session Request, 0x12 RAKP 1, 0x14 RAKP 3, 0x00 IPMI), once each.
    pub drop_payloads: Vec<u8>,
    /// Datagrams dropped so far.
    pub dropped: usize,
    /// Answer this (netfn, cmd) with this completion code.
    pub fail: Option<(u8, u8, u8)>,
    /// Sessions that completed RAKP.
    pub sessions_opened: usize,
    /// Sessions currently active.
    pub sessions_active: usize,
    /// Never answer anything.
    pub silent: bool,
    /// Forget every session (as a BMC that restarted or expired them) when
    /// the next datagram arrives.
    pub expire_sessions: bool,
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

/// An in-process RMCP+ BMC on 127.0.0.1. Stops when dropped.
pub struct MockBmc {
    addr: SocketAddr,
    state: Arc<Mutex<MockState>>,
    task: JoinHandle<()>,
}

impl Drop for MockBmc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const MOCK_GUID: [u8; 16] = *b"ferric-mock-bmc!";

impl MockBmc {
    /// Starts a BMC that knows one user and offers `suites`.
    pub async fn start(username: &str, password: &str, suites: &[u8]) -> std::io::Result<MockBmc> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let addr = socket.local_addr()?;
        let state = Arc::new(Mutex::new(MockState {
            suites: suites.to_vec(),
            power_on: false,
            boot_flags: [0; 5],
            controls: Vec::new(),
            received: 0,
            drop_next: 0,
            drop_payloads: Vec::new(),
            dropped: 0,
            fail: None,
            sessions_opened: 0,
            sessions_active: 0,
            silent: false,
            expire_sessions: false,
        }));
        let bmc = Responder {
            username: username.as_bytes().to_vec(),
            kuid: crypto::user_key(password.as_bytes()),
            state: state.clone(),
            pending: HashMap::new(),
            active: HashMap::new(),
        };
        let task = tokio::spawn(bmc.serve(socket));
        Ok(MockBmc { addr, state, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A client configuration for this BMC.
    pub fn config(&self, username: &str, password: &str) -> Config {
        Config::new(self.addr.ip().to_string(), self.addr.port(), username, password)
    }

    pub fn state(&self) -> MutexGuard<'_, MockState> {
        // A panic while holding the lock only happens in a failing test.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct Responder {
    username: Vec<u8>,
    kuid: Vec<u8>,
    state: Arc<Mutex<MockState>>,
    pending: HashMap<u32, Pending>,
    active: HashMap<u32, Active>,
}

fn peek_session_id(datagram: &[u8]) -> u32 {
    match datagram.get(4..10) {
        Some(raw) if raw[0] == wire::AUTH_TYPE_RMCP_PLUS => {
            u32::from_le_bytes([raw[2], raw[3], raw[4], raw[5]])
        }
        _ => 0,
    }
}

fn peek_payload_type(datagram: &[u8]) -> Option<u8> {
    match datagram.get(4..6) {
        Some(raw) if raw[0] == wire::AUTH_TYPE_RMCP_PLUS => Some(raw[1] & 0x3F),
        _ => None,
    }
}

fn cipher_suite_records(suites: &[u8]) -> Vec<u8> {
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

impl Responder {
    fn lock(&self) -> MutexGuard<'_, MockState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn serve(mut self, socket: UdpSocket) {
        let mut buffer = vec![0u8; 2048];
        loop {
            let Ok((len, from)) = socket.recv_from(&mut buffer).await else { return };
            {
                let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if state.expire_sessions {
                    state.expire_sessions = false;
                    self.active.clear();
                    state.sessions_active = 0;
                }
                state.received += 1;
                if state.silent {
                    continue;
                }
                if state.drop_next > 0 {
                    state.drop_next -= 1;
                    state.dropped += 1;
                    continue;
                }
                if let Some(kind) = peek_payload_type(&buffer[..len]) {
                    if let Some(at) = state.drop_payloads.iter().position(|k| *k == kind) {
                        state.drop_payloads.remove(at);
                        state.dropped += 1;
                        continue;
                    }
                }
            }
            if let Some(reply) = self.handle(&buffer[..len]) {
                let _ = socket.send_to(&reply, from).await;
            }
        }
    }

    fn handle(&mut self, datagram: &[u8]) -> Option<Vec<u8>> {
        let session_id = peek_session_id(datagram);
        if session_id != 0 {
            return self.handle_in_session(session_id, datagram);
        }
        match wire::open(None, datagram).ok()? {
            Packet::V15(v15) => {
                let request = wire::decode_request(&v15.message).ok()?;
                if (request.netfn, request.cmd) != (netfn::APP, cmd::GET_CHANNEL_AUTH_CAPABILITIES)
                {
                    return None;
                }
                let response = Response {
                    netfn: request.netfn | 1,
                    cmd: request.cmd,
                    rq_seq: request.rq_seq,
                    completion_code: 0,
                    data: vec![0x01, 0x80, 0x04, 0x02, 0, 0, 0, 0],
                };
                wire::encode_v15(&wire::encode_response(&response)).ok()
            }
            Packet::V2(v2) => self.handle_setup(v2.payload_type, &v2.payload),
            Packet::Other => None,
        }
    }

    fn plain(kind: PayloadType, payload: &[u8]) -> Option<Vec<u8>> {
        wire::seal(None, kind, 0, 0, payload, [0; 16]).ok()
    }

    fn handle_setup(&mut self, kind: PayloadType, payload: &[u8]) -> Option<Vec<u8>> {
        match kind {
            PayloadType::OpenSessionRequest => {
                let request = OpenSessionRequest::decode(payload).ok()?;
                let algorithms = request.algorithms;
                let offered = self.lock().suites.clone();
                let suite = CipherSuite::from_algorithms(
                    algorithms.auth,
                    algorithms.integrity,
                    algorithms.confidentiality,
                )
                .filter(|suite| offered.contains(&suite.id));
                let Some(suite) = suite else {
                    let auth_known = offered
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
                    return Self::plain(PayloadType::OpenSessionResponse, &refusal.encode());
                };
                let bmc_sid = loop {
                    let sid: u32 = rand::random();
                    if sid != 0
                        && !self.pending.contains_key(&sid)
                        && !self.active.contains_key(&sid)
                    {
                        break sid;
                    }
                };
                self.pending.insert(
                    bmc_sid,
                    Pending { console_sid: request.console_sid, suite, rakp1: None },
                );
                let response = OpenSessionResponse {
                    tag: request.tag,
                    status: 0,
                    max_privilege: 4,
                    console_sid: request.console_sid,
                    bmc_sid,
                    algorithms,
                };
                Self::plain(PayloadType::OpenSessionResponse, &response.encode())
            }
            PayloadType::Rakp1 => {
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
                    return Self::plain(PayloadType::Rakp2, &refusal.encode());
                }
                let bmc_random: [u8; 16] = rand::random();
                let context = RakpContext {
                    console_sid: pending.console_sid,
                    bmc_sid: rakp1.bmc_sid,
                    console_random: rakp1.console_random,
                    bmc_random,
                    bmc_guid: MOCK_GUID,
                    role: rakp1.role,
                    username: &rakp1.username,
                };
                let auth_code = context.rakp2_code(pending.suite.auth, &self.kuid).ok()?;
                let reply = Rakp2 {
                    tag: rakp1.tag,
                    status: 0,
                    console_sid: pending.console_sid,
                    bmc_random,
                    bmc_guid: MOCK_GUID,
                    auth_code,
                };
                pending.rakp1 = Some((rakp1, bmc_random));
                Self::plain(PayloadType::Rakp2, &reply.encode())
            }
            PayloadType::Rakp3 => {
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
                    bmc_guid: MOCK_GUID,
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
                    return Self::plain(PayloadType::Rakp4, &refusal.encode());
                }
                let sik = context.sik(auth, &self.kuid).ok()?;
                let icv = context.rakp4_icv(auth, &sik).ok()?;
                let keys = SessionKeys::derive(pending.suite, &sik).ok()?;
                self.active.insert(
                    rakp3.bmc_sid,
                    Active { console_sid: pending.console_sid, keys, out_seq: 0 },
                );
                {
                    let mut state = self.lock();
                    state.sessions_opened += 1;
                    state.sessions_active = self.active.len();
                }
                let reply =
                    Rakp4 { tag: rakp3.tag, status: 0, console_sid: pending.console_sid, icv };
                Self::plain(PayloadType::Rakp4, &reply.encode())
            }
            PayloadType::Ipmi => {
                // Session-less Get Channel Cipher Suites.
                let request = wire::decode_request(payload).ok()?;
                if (request.netfn, request.cmd) != (netfn::APP, cmd::GET_CHANNEL_CIPHER_SUITES) {
                    return None;
                }
                let (code, data) = self.execute(request.netfn, request.cmd, &request.data, 0);
                let response = Response {
                    netfn: request.netfn | 1,
                    cmd: request.cmd,
                    rq_seq: request.rq_seq,
                    completion_code: code,
                    data,
                };
                Self::plain(PayloadType::Ipmi, &wire::encode_response(&response))
            }
            _ => None,
        }
    }

    fn handle_in_session(&mut self, bmc_sid: u32, datagram: &[u8]) -> Option<Vec<u8>> {
        let session = self.active.get(&bmc_sid)?;
        let Packet::V2(packet) = wire::open(Some(&session.keys), datagram).ok()? else {
            return None;
        };
        if packet.payload_type != PayloadType::Ipmi {
            return None;
        }
        let request = wire::decode_request(&packet.payload).ok()?;
        let (code, data) = self.execute(request.netfn, request.cmd, &request.data, bmc_sid);
        let response = Response {
            netfn: request.netfn | 1,
            cmd: request.cmd,
            rq_seq: request.rq_seq,
            completion_code: code,
            data,
        };
        let closing = (request.netfn, request.cmd) == (netfn::APP, cmd::CLOSE_SESSION) && code == 0;
        let session = self.active.get_mut(&bmc_sid)?;
        session.out_seq += 1;
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
            self.active.remove(&bmc_sid);
            self.lock().sessions_active = self.active.len();
        }
        reply
    }

    /// Runs one command; returns the completion code and data.
    fn execute(&mut self, net: u8, command: u8, data: &[u8], bmc_sid: u32) -> (u8, Vec<u8>) {
        let mut state = self.lock();
        if let Some((fail_netfn, fail_cmd, code)) = state.fail {
            if (fail_netfn, fail_cmd) == (net, command) {
                return (code, vec![]);
            }
        }
        match (net, command) {
            (netfn::APP, cmd::SET_SESSION_PRIVILEGE_LEVEL) => match data.first() {
                Some(level @ 1..=4) => (0, vec![*level]),
                _ => (0xCC, vec![]),
            },
            (netfn::APP, cmd::CLOSE_SESSION) => {
                let wanted =
                    data.get(..4).map(|raw| u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]));
                if wanted == Some(bmc_sid) {
                    (0, vec![])
                } else {
                    (0x87, vec![])
                }
            }
            (netfn::APP, cmd::GET_CHANNEL_CIPHER_SUITES) => {
                let records = cipher_suite_records(&state.suites);
                let index = usize::from(data.get(2).copied().unwrap_or(0) & 0x3F);
                let block: Vec<u8> = records.iter().skip(index * 16).take(16).copied().collect();
                let mut out = vec![0x01];
                out.extend_from_slice(&block);
                (0, out)
            }
            (netfn::CHASSIS, cmd::GET_CHASSIS_STATUS) => {
                let status = ChassisStatus {
                    power_on: state.power_on,
                    power_overload: false,
                    interlock: false,
                    power_fault: false,
                    power_control_fault: false,
                    restore_policy: 0,
                    last_power_event: 0,
                    misc: 0,
                };
                (0, status.encode())
            }
            (netfn::CHASSIS, cmd::CHASSIS_CONTROL) => {
                let Some(action) = data.first().copied() else { return (0xC7, vec![]) };
                match action {
                    0x00 | 0x05 => state.power_on = false,
                    0x01 => state.power_on = true,
                    0x02 | 0x03 => {
                        if !state.power_on {
                            return (0xD5, vec![]);
                        }
                    }
                    _ => return (0xCC, vec![]),
                }
                state.controls.push(action);
                (0, vec![])
            }
            (netfn::CHASSIS, cmd::SET_SYSTEM_BOOT_OPTIONS) => match data.split_first() {
                Some((&5, flags)) if flags.len() == 5 => {
                    state.boot_flags.copy_from_slice(flags);
                    (0, vec![])
                }
                Some((&3, [_])) => (0, vec![]),
                Some((&5, _)) => (0xC7, vec![]),
                _ => (0x80, vec![]),
            },
            (netfn::CHASSIS, cmd::GET_SYSTEM_BOOT_OPTIONS) => match data.first() {
                Some(&5) => {
                    let mut out = vec![0x01, 0x05];
                    out.extend_from_slice(&state.boot_flags);
                    (0, out)
                }
                _ => (0x80, vec![]),
            },
            _ => (0xC1, vec![]),
        }
    }
}

// ---- ipmi_sim ---------------------------------------------------------------------

/// Whether `program` is on `PATH`.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Whether all `programs` are installed. If not: under `CI=true` this
/// panics (CI must install them); otherwise it prints why the test is
/// skipped and returns false.
pub fn tools_present(test: &str, programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs.iter().copied().filter(|program| !on_path(program)).collect();
    if missing.is_empty() {
        return true;
    }
    let reason = format!(
        "{test}: {} not installed (apt-get install openipmi ipmitool)",
        missing.join(" and ")
    );
    if std::env::var("CI").is_ok_and(|value| value == "true") {
        panic!("{reason}");
    }
    eprintln!("SKIPPED {reason}");
    false
}

/// The chassis for ipmi_sim's `chassis_control`: power and boot device kept
/// in files of the state directory; every call is logged to `calls`.
const CHASSIS_SCRIPT: &str = r#"#!/bin/sh
# chassis_control for ipmi_sim: STATE_DIR get power|boot ... | set power 0|1 | reset 1 | shutdown 1 | boot DEV
# Shell builtins only (no cat): ipmi_sim runs this for every status read.
D=$1; op=$2; shift 2
echo "$op $*" >> "$D/calls"
value() { v=$2; [ -f "$D/$1" ] && read -r v < "$D/$1"; echo "$1:$v"; }
case $op in
  get) for p in "$@"; do case $p in
         power) value power 0;;
         boot) value boot default;;
         *) echo "Invalid parameter: $p"; exit 1;; esac; done;;
  set) while [ $# -gt 0 ]; do p=$1; v=${2:-}; shift; [ $# -gt 0 ] && shift; case $p in
         power) echo "$v" > "$D/power";;
         reset) echo 1 > "$D/power";;
         shutdown) echo 0 > "$D/power";;
         boot) echo "$v" > "$D/boot";;
         identify) [ $# -gt 0 ] && shift;;
         *) echo "Invalid parameter: $p"; exit 1;; esac; done;;
  *) exit 1;;
esac
exit 0
"#;

/// One BMC at IPMB 0x20 with chassis support (device support 0x9f).
const EMU_COMMANDS: &str = "mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
sel_enable 0x20 1000 0x0a
mc_enable 0x20
";

/// OpenIPMI's `ipmi_sim` on 127.0.0.1, killed (and its files removed) on
/// drop. It knows user [`SimBmc::USER`] / [`SimBmc::PASSWORD`] (admin) and
/// offers cipher suites 0–11 (3 among them, 17 not).
pub struct SimBmc {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Drop for SimBmc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_udp_port() -> std::io::Result<u16> {
    Ok(StdUdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl SimBmc {
    pub const USER: &'static str = "admin";
    pub const PASSWORD: &'static str = "password";

    /// Writes a configuration into a fresh temporary directory, starts
    /// `ipmi_sim` on a free port and waits until it answers.
    pub fn start() -> Result<SimBmc, String> {
        Self::start_with(true)
    }

    /// Like [`SimBmc::start`], but without a chassis behind the BMC: ipmi_sim
    /// answers Get Chassis Status from memory (power off) instead of running
    /// the chassis script, and refuses Chassis Control and boot options.
    /// For measuring the IPMI exchange alone.
    pub fn start_without_chassis() -> Result<SimBmc, String> {
        Self::start_with(false)
    }

    fn start_with(chassis: bool) -> Result<SimBmc, String> {
        let mut last_error = String::new();
        for _ in 0..3 {
            match Self::try_start(chassis) {
                Ok(sim) => return Ok(sim),
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    fn try_start(chassis: bool) -> Result<SimBmc, String> {
        let port = free_udp_port().map_err(|e| format!("no free UDP port: {e}"))?;
        let dir = std::env::temp_dir().join(format!(
            "ferric-ipmi-sim-{}-{}-{:08x}",
            std::process::id(),
            port,
            rand::random::<u32>()
        ));
        let write = |name: &str, text: &str| -> Result<PathBuf, String> {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
            Ok(path)
        };
        std::fs::create_dir_all(dir.join("state")).map_err(|e| format!("temp dir: {e}"))?;
        let script = write("chassis-control.sh", CHASSIS_SCRIPT)?;
        make_executable(&script)?;
        let config = format!(
            "name \"ferric-test\"\n\
             set_working_mc 0x20\n\
             \x20 startlan 1\n\
             \x20   addr 127.0.0.1 {port}\n\
             \x20   priv_limit admin\n\
             \x20   allowed_auths_callback none md2 md5 straight\n\
             \x20   allowed_auths_user none md2 md5 straight\n\
             \x20   allowed_auths_operator none md2 md5 straight\n\
             \x20   allowed_auths_admin none md2 md5 straight\n\
             \x20   guid a123456789abcdefa123456789abcdef\n\
             \x20 endlan\n\
             {chassis_line}\
             \x20 user 1 true \"\" \"test\" user 10 none md2 md5 straight\n\
             \x20 user 2 true \"{user}\" \"{password}\" admin 10 none md2 md5 straight\n",
            chassis_line = if chassis {
                format!("  chassis_control \"{} {}\"\n", script.display(), dir.display())
            } else {
                String::new()
            },
            user = Self::USER,
            password = Self::PASSWORD,
        );
        let config = write("lan.conf", &config)?;
        let emu = write("bmc.emu", EMU_COMMANDS)?;
        let log = std::fs::File::create(dir.join("ipmi_sim.log")).map_err(|e| e.to_string())?;
        let child = Process::new("ipmi_sim")
            .arg("-c")
            .arg(&config)
            .arg("-f")
            .arg(&emu)
            .arg("-s")
            .arg(dir.join("state"))
            .arg("-n")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().map_err(|e| e.to_string())?))
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("cannot start ipmi_sim: {e}"))?;
        let mut sim = SimBmc { child, dir, port };
        sim.wait_ready(Duration::from_secs(10))?;
        Ok(sim)
    }

    /// Polls with Get Channel Authentication Capabilities until ipmi_sim
    /// answers.
    fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let socket = StdUdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        socket.connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        socket.set_read_timeout(Some(Duration::from_millis(100))).map_err(|e| e.to_string())?;
        let command = commands::get_channel_auth_capabilities(commands::Privilege::Administrator);
        let request =
            wire::Request { netfn: command.netfn, cmd: command.cmd, rq_seq: 0, data: command.data };
        let packet =
            wire::encode_v15(&wire::encode_request(&request)).map_err(|e| e.to_string())?;
        let started = Instant::now();
        let mut buffer = [0u8; 512];
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("ipmi_sim exited ({status}): {}", self.log()));
            }
            let _ = socket.send(&packet);
            if socket.recv(&mut buffer).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("ipmi_sim did not answer on 127.0.0.1:{}: {}", self.port, self.log()))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A client configuration for the admin user.
    pub fn config(&self) -> Config {
        Config::new("127.0.0.1", self.port, Self::USER, Self::PASSWORD)
    }

    /// ipmi_sim's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("ipmi_sim.log")).unwrap_or_default()
    }

    /// Every chassis_control call so far, one per line (`set power 1`, ...).
    pub fn chassis_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The chassis' power as the simulated hardware holds it.
    pub fn chassis_power_on(&self) -> bool {
        std::fs::read_to_string(self.dir.join("power")).is_ok_and(|text| text.trim() == "1")
    }

    /// Runs `ipmitool -I lanplus -C 3` against this BMC with `args`.
    pub fn ipmitool(&self, args: &[&str]) -> std::io::Result<Output> {
        Process::new("ipmitool")
            .args(["-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .args(["-U", Self::USER, "-P", Self::PASSWORD, "-N", "1", "-R", "2"])
            .args(args)
            .stdin(Stdio::null())
            .output()
    }

    /// The state directory (for debugging).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn make_executable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}

//! Test helpers, for this crate's tests and for crates that drive BMCs:
//!
//! - [`MockBmc`]: an in-process BMC on 127.0.0.1 that speaks RMCP+ with
//!   cipher suites 17 and 3 (on [`crate::server`]), keeps a
//!   power state and boot flags, and can lose packets or refuse commands on
//!   demand. It exists because `ipmi_sim` has no cipher suite 17.
//! - [`SimBmc`]: OpenIPMI's `ipmi_sim` started on 127.0.0.1 and a free UDP
//!   port with a generated configuration, killed on drop; plus
//!   [`tools_present`] to skip (or, under `CI=true`, fail) when `ipmi_sim` or
//!   `ipmitool` is not installed.
//!
//! Nothing here binds or sends anywhere but the loopback address.

use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Output, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::commands::{self, cmd, netfn, ChassisStatus};
use crate::config::Config;
use crate::server::{self, BmcSessions, Incoming, IncomingCommand};
use crate::wire;

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
            core: BmcSessions::new(username, password, suites).with_guid(MOCK_GUID),
            state: state.clone(),
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
    core: BmcSessions,
    state: Arc<Mutex<MockState>>,
}

impl Responder {
    async fn serve(mut self, socket: UdpSocket) {
        let mut buffer = vec![0u8; 2048];
        loop {
            let Ok((len, from)) = socket.recv_from(&mut buffer).await else { return };
            if let Some(reply) = self.step(&buffer[..len]) {
                let _ = socket.send_to(&reply, from).await;
            }
        }
    }

    fn step(&mut self, datagram: &[u8]) -> Option<Vec<u8>> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.expire_sessions {
            state.expire_sessions = false;
            self.core.clear_sessions();
            state.sessions_active = 0;
        }
        state.received += 1;
        if state.silent {
            return None;
        }
        if state.drop_next > 0 {
            state.drop_next -= 1;
            state.dropped += 1;
            return None;
        }
        if let Some(kind) = server::peek_payload_type(datagram) {
            if let Some(at) = state.drop_payloads.iter().position(|k| *k == kind) {
                state.drop_payloads.remove(at);
                state.dropped += 1;
                return None;
            }
        }
        self.core.set_suites(&state.suites);
        let opened = self.core.sessions_opened();
        let reply = match self.core.receive(datagram) {
            Incoming::Reply(reply) => Some(reply),
            Incoming::Command(command) => {
                let (code, data) = execute(&self.core, &mut state, &command);
                self.core.reply(&command, code, data)
            }
            Incoming::Ignore => None,
        };
        state.sessions_opened += self.core.sessions_opened() - opened;
        state.sessions_active = self.core.sessions_active();
        reply
    }
}

/// Runs one command; returns the completion code and data.
fn execute(core: &BmcSessions, state: &mut MockState, command: &IncomingCommand) -> (u8, Vec<u8>) {
    let (net, code, data) = (command.netfn, command.cmd, &command.data);
    if let Some((fail_netfn, fail_cmd, fail_code)) = state.fail {
        if (fail_netfn, fail_cmd) == (net, code) {
            return (fail_code, vec![]);
        }
    }
    if let Some(answer) = core.builtin(command) {
        return answer;
    }
    match (net, code) {
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

//! `ferric lab up|down|status`: a throwaway lab on this machine — QEMU
//! machines (TCG; BIOS or UEFI) behind `ferric vbmc` (IPMI or Redfish) and a
//! `ferric serve` with DHCP and HTTP boot, all inside a network namespace
//! (`ferric-lab` unless `--namespace`; bridge `br-lab`, 198.18.0.1/24; host
//! interfaces are never touched). A detached
//! supervisor (`ferric lab run`, hidden) keeps `serve` and `vbmc` running
//! and forwards 127.0.0.1:PORT on the host to the API inside the namespace.
//! Built images stay in the lab directory and are reused by the next `up`.

use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

const DEFAULT_NAMESPACE: &str = "ferric-lab";
const BRIDGE: &str = "br-lab";
const SERVER: &str = "198.18.0.1";
const SUBNET: &str = "198.18.0.0/24";
const API_PORT_INSIDE: u16 = 6385;
const BMC_PASSWORD: &str = "lab-secret";
const FIRST_IPMI_PORT: u16 = 6230;
const FIRST_REDFISH_PORT: u16 = 8200;
const DEFAULT_DIR: &str = "/var/tmp/ferric-lab";
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

#[derive(Args)]
pub struct LabArgs {
    #[command(subcommand)]
    command: LabCommand,
}

#[derive(Subcommand)]
enum LabCommand {
    /// Create the lab: namespace, QEMU machines, ferric serve + vbmc, enrolled nodes.
    Up(UpArgs),
    /// Stop everything in the lab and delete its namespace (images are kept).
    Down(DirArgs),
    /// Show the lab's machines and whether its supervisor runs.
    Status(DirArgs),
    /// The lab's supervisor (started by `lab up`).
    #[command(hide = true)]
    Run(DirArgs),
}

#[derive(Args)]
struct UpArgs {
    /// How many QEMU machines (nodes lab-0 … lab-N-1).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=32))]
    nodes: u16,
    /// Boot the machines with UEFI (OVMF) instead of BIOS.
    #[arg(long, conflicts_with = "mixed")]
    uefi: bool,
    /// How ferric reaches the machines' BMCs.
    #[arg(long, value_enum, default_value_t = Bmc::Ipmi, conflicts_with = "mixed")]
    bmc: Bmc,
    /// Alternate the machines: even ones BIOS behind IPMI, odd ones UEFI
    /// behind Redfish.
    #[arg(long)]
    mixed: bool,
    /// The network namespace holding the lab (one lab per namespace).
    #[arg(long, default_value = DEFAULT_NAMESPACE, value_parser = parse_namespace)]
    namespace: String,
    /// How long ferric waits for the deploy ramdisk to call back (deploy and
    /// cleaning) before failing the operation.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(30..=86_400))]
    callback_timeout: u32,
    /// Host port (127.0.0.1) forwarded to the API inside the lab.
    #[arg(long, default_value_t = 6385)]
    api_port: u16,
    /// Where the lab keeps its images, disks, logs and consoles.
    #[arg(long, default_value = DEFAULT_DIR)]
    dir: PathBuf,
    /// The static deploy agent [default: $FERRIC_AGENT_BIN, else ferric-agent next to ferric].
    #[arg(long)]
    agent: Option<PathBuf>,
    /// Wait until the nodes are available (cleaning done) before returning.
    #[arg(long)]
    wait: bool,
}

/// A BMC protocol the lab's virtual BMCs speak to ferric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Bmc {
    Ipmi,
    Redfish,
}

/// Namespace names become paths under /run/netns and interface-free
/// arguments to `ip`: keep them short and plain.
fn parse_namespace(name: &str) -> Result<String, String> {
    let plain = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if name.is_empty() || name.len() > 32 || !plain || name.starts_with('-') {
        return Err("a namespace name is 1–32 letters, digits, '-' or '_'".into());
    }
    Ok(name.to_owned())
}

#[derive(Args)]
struct DirArgs {
    /// The lab directory.
    #[arg(long, default_value = DEFAULT_DIR)]
    dir: PathBuf,
}

/// What `lab up` decided, for `status`, `down` and the supervisor.
#[derive(Serialize, Deserialize)]
struct LabState {
    nodes: u16,
    uefi: bool,
    #[serde(default = "default_bmc")]
    bmc: Bmc,
    #[serde(default)]
    mixed: bool,
    #[serde(default = "default_namespace")]
    namespace: String,
    api_port: u16,
}

fn default_bmc() -> Bmc {
    Bmc::Ipmi
}

fn default_namespace() -> String {
    DEFAULT_NAMESPACE.to_owned()
}

struct Machine {
    name: String,
    mac: String,
    tap: String,
    uefi: bool,
    bmc: Bmc,
    ipmi_port: u16,
    redfish_port: u16,
}

impl Machine {
    fn bmc_address(&self) -> String {
        match self.bmc {
            Bmc::Ipmi => format!("ipmi 127.0.0.1:{}", self.ipmi_port),
            Bmc::Redfish => format!("redfish http://127.0.0.1:{}", self.redfish_port),
        }
    }
}

fn machines(state: &LabState) -> Vec<Machine> {
    (0..state.nodes)
        .map(|i| {
            let odd = i % 2 == 1;
            Machine {
                name: format!("lab-{i}"),
                mac: format!("52:54:00:0f:00:{i:02x}"),
                tap: format!("lab-tap{i}"),
                uefi: if state.mixed { odd } else { state.uefi },
                bmc: match (state.mixed, odd) {
                    (true, true) => Bmc::Redfish,
                    (true, false) => Bmc::Ipmi,
                    (false, _) => state.bmc,
                },
                ipmi_port: FIRST_IPMI_PORT + i,
                redfish_port: FIRST_REDFISH_PORT + i,
            }
        })
        .collect()
}

pub fn run(args: LabArgs) -> anyhow::Result<()> {
    match args.command {
        LabCommand::Up(args) => up(args),
        LabCommand::Down(args) => down(&args.dir),
        LabCommand::Status(args) => status(&args.dir),
        LabCommand::Run(args) => supervise(&args.dir),
    }
}

fn netns_path(namespace: &str) -> PathBuf {
    Path::new("/run/netns").join(namespace)
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// Runs a command to completion; its output goes into the error.
fn run_command(command: &mut Command) -> anyhow::Result<String> {
    let output =
        command.stdin(Stdio::null()).output().with_context(|| format!("running {command:?}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(
        output.status.success(),
        "{command:?} failed: {}{}",
        stdout,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(stdout)
}

fn ip(args: &[&str]) -> anyhow::Result<String> {
    run_command(Command::new("ip").args(args))
}

fn state_file(dir: &Path) -> PathBuf {
    dir.join("lab.json")
}

fn load_state(dir: &Path) -> anyhow::Result<LabState> {
    let path = state_file(dir);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (was `ferric lab up` run?)", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn find_agent(given: Option<PathBuf>, exe: &Path) -> anyhow::Result<PathBuf> {
    if let Some(agent) = given {
        ensure!(agent.is_file(), "--agent {}: no such file", agent.display());
        return Ok(agent);
    }
    if let Some(agent) = std::env::var_os("FERRIC_AGENT_BIN").map(PathBuf::from) {
        ensure!(agent.is_file(), "FERRIC_AGENT_BIN={}: no such file", agent.display());
        return Ok(agent);
    }
    let sibling = exe.with_file_name("ferric-agent");
    ensure!(
        sibling.is_file(),
        "no deploy agent: give --agent PATH or set FERRIC_AGENT_BIN, or put ferric-agent next to \
         {}. Build the static agent with:\n  CC_x86_64_unknown_linux_musl=musl-gcc cargo build \
         --profile agent --target x86_64-unknown-linux-musl -p ferric-agent\n(it lands in \
         target/x86_64-unknown-linux-musl/agent/ferric-agent)",
        exe.display()
    );
    Ok(sibling)
}

fn check_tools(uefi: bool) -> anyhow::Result<()> {
    for (tool, package) in [
        ("ip", "iproute2"),
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("qemu-img", "qemu-utils"),
        ("syslinux", "syslinux"),
        ("mcopy", "mtools"),
    ] {
        ensure!(on_path(tool), "{tool} is not installed (apt-get install {package})");
    }
    ensure!(
        Path::new("/usr/lib/ipxe/qemu/efi-virtio.rom").exists()
            || Path::new("/usr/share/qemu/efi-virtio.rom").exists(),
        "QEMU's iPXE ROMs are missing (apt-get install ipxe-qemu)"
    );
    ensure!(
        Path::new("/bin/busybox").is_file(),
        "/bin/busybox is missing, the demo image needs it (apt-get install busybox-static)"
    );
    if uefi {
        ensure!(
            Path::new(OVMF_CODE).is_file() && Path::new(OVMF_VARS).is_file(),
            "--uefi needs {OVMF_CODE} and {OVMF_VARS} (apt-get install ovmf)"
        );
    }
    Ok(())
}

fn up(args: UpArgs) -> anyhow::Result<()> {
    ensure!(
        rustix::process::getuid().is_root(),
        "ferric lab up must run as root (it creates a network namespace, taps and QEMU machines)"
    );
    let namespace = args.namespace.as_str();
    ensure!(
        !netns_path(namespace).exists(),
        "the namespace {namespace} already exists: run ferric lab down first (or pick another \
         --namespace)"
    );
    check_tools(args.uefi || args.mixed)?;
    let exe = std::env::current_exe().context("locating the ferric binary")?;
    let agent = find_agent(args.agent.clone(), &exe)?;
    let kernel = ferric_imagetools::ramdisk::default_kernel()
        .context("finding a kernel in /boot (apt-get install linux-image-amd64)")?;
    let dir = std::path::absolute(&args.dir)
        .with_context(|| format!("resolving {}", args.dir.display()))?;
    let data = dir.join("data");
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let started = Instant::now();

    // A fresh database each time; the images stay.
    for name in ["ferric.db", "ferric.db-wal", "ferric.db-shm"] {
        let _ = std::fs::remove_file(data.join(name));
    }
    build_images(&exe, &kernel, &agent, &dir)?;
    eprintln!("images ready in {:.1} s", started.elapsed().as_secs_f64());

    let state = LabState {
        nodes: args.nodes,
        uefi: args.uefi,
        bmc: args.bmc,
        mixed: args.mixed,
        namespace: args.namespace.clone(),
        api_port: args.api_port,
    };
    if let Err(error) = prepare_lab(&dir, &state, args.callback_timeout) {
        teardown_namespace(namespace);
        return Err(error);
    }
    let url = format!("http://127.0.0.1:{}", args.api_port);
    if let Err(error) = start_supervisor(&exe, &dir, &url) {
        let _ = stop(&dir, namespace);
        return Err(error);
    }
    eprintln!("ferric serve and vbmc running; API on {url}");

    enroll(&exe, &url, &state, args.wait)
        .context("enrolling the nodes (the lab keeps running: ferric lab down stops it)")?;
    eprintln!("lab up in {:.1} s", started.elapsed().as_secs_f64());

    let dir_flag = if dir == Path::new(DEFAULT_DIR) {
        String::new()
    } else {
        format!(" --dir {}", dir.display())
    };
    let url_flag = if args.api_port == 6385 { String::new() } else { format!(" --url {url}") };
    println!("The lab is up. Try:");
    if !args.wait {
        println!(
            "  ferric{url_flag} node list   # until 'available' (cleaning takes a minute or two)"
        );
    }
    println!("  ferric{url_flag} node deploy lab-0 --image demo --wait");
    println!("  tail -f {}        # its serial console", dir.join("lab-0.console").display());
    println!("  ferric lab status{dir_flag}");
    println!("  ferric lab down{dir_flag}");
    println!();
    print!("{}", status_table(&exe, &dir, &state));
    Ok(())
}

/// The deploy ramdisk into the boot root (rebuilt when the agent is newer)
/// and the demo image into the store (built once).
fn build_images(exe: &Path, kernel: &Path, agent: &Path, dir: &Path) -> anyhow::Result<()> {
    let data = dir.join("data");
    let boot_agent = data.join("boot/agent");
    let initramfs = boot_agent.join("ferric-deploy.initramfs");
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let stale = match (modified(&initramfs), modified(agent)) {
        (Some(built), Some(agent)) => agent > built,
        _ => true,
    };
    if stale || !boot_agent.join("ferric-deploy.kernel").exists() {
        eprintln!("building the deploy ramdisk");
        run_command(
            Command::new(exe)
                .args(["image", "build-ramdisk", "--kernel"])
                .arg(kernel)
                .arg("--agent")
                .arg(agent)
                .arg("--output-dir")
                .arg(&boot_agent),
        )
        .context("building the deploy ramdisk")?;
    }

    let demo = dir.join("demo.qcow2");
    if !demo.exists() {
        eprintln!("building the demo image");
        let work = dir.join("demo-build");
        std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
        let init = work.join("init");
        std::fs::write(&init, INSTANCE_INIT).context("writing the demo image's /init")?;
        run_command(Command::new("chmod").arg("755").arg(&init))?;
        run_command(
            Command::new(exe)
                .args(["image", "build-ramdisk", "--kernel"])
                .arg(kernel)
                .arg("--agent")
                .arg(&init)
                .arg("--output-dir")
                .arg(work.join("initramfs"))
                .args(["--no-default-modules", "--module", "virtio_pci", "--module", "virtio_blk"])
                .args(["--module", "vfat", "--module", "nls_cp437", "--module", "nls_iso8859_1"])
                .args(["--module", "nls_ascii", "--module", "nls_utf8"])
                .args(["--extra", "/bin/busybox:/bin/busybox"]),
        )
        .context("building the demo image's initramfs")?;
        let partial = work.join("demo.qcow2");
        run_command(
            Command::new(exe)
                .args(["image", "build-disk", "--output"])
                .arg(&partial)
                .args(["--size-mib", "64", "--kernel"])
                .arg(kernel)
                .arg("--initrd")
                .arg(work.join("initramfs/ferric-deploy.initramfs"))
                .args(["--cmdline", "console=ttyS0,115200n8 quiet"]),
        )
        .context("building the demo disk image")?;
        std::fs::rename(&partial, &demo).context("keeping the demo image")?;
        let _ = std::fs::remove_dir_all(&work);
    }
    let store = data.join("images");
    let image = |args: &[&str]| {
        let mut command = Command::new(exe);
        command.arg("image").arg("--store").arg(&store).args(args);
        command
    };
    if run_command(&mut image(&["show", "demo"])).is_err() {
        run_command(image(&["create", "--name", "demo", "--file"]).arg(&demo))
            .context("storing the demo image")?;
    }
    Ok(())
}

/// The "user image": busybox as /init, which loads the disk and FAT
/// modules, prints `INSTANCE-UP` (and the config drive's user data, if
/// any) on its serial console and idles.
const INSTANCE_INIT: &str = r#"#!/bin/busybox sh
B=/bin/busybox
$B mkdir -p /proc /sys /dev /mnt
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
K=$($B uname -r)
for m in $($B cat /lib/modules/$K/load-order); do $B insmod /lib/modules/$K/$m 2>/dev/null; done
for i in 1 2 3 4 5 6 7 8 9 10; do [ -e /dev/vda ] && break; $B sleep 0.2; done
echo INSTANCE-UP
for p in /dev/vda2 /dev/vda3 /dev/vda4; do
  if $B mount -t vfat -o ro $p /mnt 2>/dev/null; then
    echo "CONFIG-DRIVE $($B cat /mnt/openstack/latest/user_data)"
    break
  fi
done
$B sync
while :; do $B sleep 3600; done
"#;

/// The namespace, bridge and taps; disks and the vbmc and ferric configs.
fn prepare_lab(dir: &Path, state: &LabState, callback_timeout: u32) -> anyhow::Result<()> {
    let ns = state.namespace.as_str();
    ip(&["netns", "add", ns])?;
    ip(&["-n", ns, "link", "set", "lo", "up"])?;
    ip(&["-n", ns, "link", "add", BRIDGE, "type", "bridge"])?;
    ip(&["-n", ns, "addr", "add", &format!("{SERVER}/24"), "dev", BRIDGE])?;
    ip(&["-n", ns, "link", "set", BRIDGE, "up"])?;

    let mut vbmc = String::new();
    for machine in machines(state) {
        let tap = machine.tap.as_str();
        ip(&["-n", ns, "tuntap", "add", "dev", tap, "mode", "tap"])?;
        ip(&["-n", ns, "link", "set", tap, "master", BRIDGE])?;
        ip(&["-n", ns, "link", "set", tap, "up"])?;
        let disk = dir.join(format!("{}.qcow2", machine.name));
        run_command(
            Command::new("qemu-img").args(["create", "-q", "-f", "qcow2"]).arg(&disk).arg("8G"),
        )?;
        let console = dir.join(format!("{}.console", machine.name));
        let _ = std::fs::remove_file(&console);
        let mut args: Vec<String> =
            ["-accel", "tcg", "-m", "1024", "-smp", "1", "-display", "none", "-nic", "none"]
                .iter()
                .map(|a| a.to_string())
                .collect();
        args.extend([
            "-chardev".into(),
            format!("file,id=serial0,path={},append=on", console.display()),
            "-serial".into(),
            "chardev:serial0".into(),
            "-netdev".into(),
            format!("tap,id=n0,ifname={tap},script=no,downscript=no"),
        ]);
        if machine.uefi {
            // OVMF ignores `-boot order` and reads `bootindex`: the NIC
            // first, then the disk (netboot-first, as many real machines are
            // set up). The vbmc reorders the indexes for a boot override.
            let vars = dir.join(format!("{}.vars", machine.name));
            std::fs::copy(OVMF_VARS, &vars).with_context(|| format!("copying {OVMF_VARS}"))?;
            args.extend([
                "-device".into(),
                format!("virtio-net-pci,netdev=n0,mac={},bootindex=1", machine.mac),
                "-drive".into(),
                format!("file={},if=none,id=disk0,format=qcow2", disk.display()),
                "-device".into(),
                "virtio-blk-pci,drive=disk0,bootindex=2".into(),
                "-drive".into(),
                format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"),
                "-drive".into(),
                format!("if=pflash,format=raw,file={}", vars.display()),
            ]);
        } else {
            args.extend([
                "-device".into(),
                format!("virtio-net-pci,netdev=n0,mac={}", machine.mac),
                "-drive".into(),
                format!("file={},if=virtio,format=qcow2", disk.display()),
            ]);
        }
        let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
        vbmc.push_str(&format!(
            "[[machines]]\nname = \"{name}\"\nipmi_port = {ipmi}\nredfish_port = {redfish}\n\
             username = \"admin\"\npassword = \"{BMC_PASSWORD}\"\n\
             [machines.qemu]\nargs = [{args}]\n\
             qmp_socket = \"{qmp}\"\nlog = \"{log}\"\n\n",
            name = machine.name,
            ipmi = machine.ipmi_port,
            redfish = machine.redfish_port,
            args = args.join(", "),
            qmp = dir.join(format!("{}.qmp", machine.name)).display(),
            log = dir.join(format!("{}.qemu.log", machine.name)).display(),
        ));
    }
    std::fs::write(dir.join("vbmc.toml"), vbmc).context("writing vbmc.toml")?;
    std::fs::write(
        dir.join("ferric.toml"),
        format!(
            "[api]\nlisten = \"{SERVER}:{API_PORT_INSIDE}\"\n\
             [conductor]\ndeploy_callback_timeout_seconds = {callback_timeout}\n\
             clean_callback_timeout_seconds = {callback_timeout}\n\
             [boot]\ninterface = \"{BRIDGE}\"\nhttp_listen = \"{SERVER}:8080\"\n\
             api_url = \"http://{SERVER}:{API_PORT_INSIDE}\"\nkernel_append = \"console=ttyS0\"\n\
             [boot.dhcp]\nserver_ip = \"{SERVER}\"\nsubnet = \"{SUBNET}\"\n\
             range = [\"198.18.0.100\", \"198.18.0.199\"]\n"
        ),
    )
    .context("writing ferric.toml")?;
    std::fs::write(state_file(dir), serde_json::to_string_pretty(state)?)
        .context("writing lab.json")?;
    Ok(())
}

fn pid_file(dir: &Path) -> PathBuf {
    dir.join("lab.pid")
}

/// The supervisor's pid, if it runs.
fn supervisor_pid(dir: &Path) -> Option<rustix::process::Pid> {
    let text = std::fs::read_to_string(pid_file(dir)).ok()?;
    let raw: i32 = text.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{raw}/cmdline")).ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline);
    if !cmdline.contains("lab\0run\0") {
        return None;
    }
    rustix::process::Pid::from_raw(raw)
}

fn start_supervisor(exe: &Path, dir: &Path, url: &str) -> anyhow::Result<()> {
    let log_path = dir.join("lab.log");
    let log =
        File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let child = Command::new(exe)
        .args(["lab", "run", "--dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("starting the lab supervisor")?;
    std::fs::write(pid_file(dir), format!("{}\n", child.id())).context("writing lab.pid")?;
    // The supervisor outlives this process; it is reaped by init.
    drop(child);

    let started = Instant::now();
    loop {
        if run_command(Command::new(exe).args(["--url", url, "driver", "list"])).is_ok() {
            return Ok(());
        }
        if supervisor_pid(dir).is_none() || started.elapsed() > Duration::from_secs(60) {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let serve = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
            bail!(
                "the lab's API did not come up on {url}\n--- lab.log ---\n{log}\n\
                 --- serve.log ---\n{serve}"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn enroll(exe: &Path, url: &str, state: &LabState, wait: bool) -> anyhow::Result<()> {
    let cli = |args: &[&str]| run_command(Command::new(exe).args(["--url", url]).args(args));
    let all = machines(state);
    for machine in &all {
        let bmc = match machine.bmc {
            Bmc::Ipmi => vec![
                ("--driver", "ipmi".to_owned()),
                ("--driver-info", "ipmi_address=127.0.0.1".to_owned()),
                ("--driver-info", format!("ipmi_port={}", machine.ipmi_port)),
                ("--driver-info", "ipmi_username=admin".to_owned()),
                ("--driver-info", format!("ipmi_password={BMC_PASSWORD}")),
            ],
            Bmc::Redfish => vec![
                ("--driver", "redfish".to_owned()),
                (
                    "--driver-info",
                    format!("redfish_address=http://127.0.0.1:{}", machine.redfish_port),
                ),
                ("--driver-info", "redfish_username=admin".to_owned()),
                ("--driver-info", format!("redfish_password={BMC_PASSWORD}")),
            ],
        };
        let mut args = vec!["node", "create", "--name", &machine.name];
        for (flag, value) in &bmc {
            args.extend([*flag, value.as_str()]);
        }
        args.extend([
            "--driver-info",
            "deploy_kernel=agent/ferric-deploy.kernel",
            "--driver-info",
            "deploy_ramdisk=agent/ferric-deploy.initramfs",
        ]);
        cli(&args)?;
        cli(&["port", "create", &machine.mac, "--node", &machine.name])?;
        cli(&["node", "manage", &machine.name, "--wait", "120"])?;
    }
    // The DHCP server picks new ports up every 2 s.
    std::thread::sleep(Duration::from_millis(2500));
    if wait {
        eprintln!("cleaning the nodes (--wait)");
        std::thread::scope(|scope| {
            let handles: Vec<_> = all
                .iter()
                .map(|machine| {
                    let cli = &cli;
                    scope.spawn(move || cli(&["node", "provide", &machine.name, "--wait", "600"]))
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().unwrap_or_else(|_| Err(anyhow::anyhow!("panicked"))))
                .collect::<anyhow::Result<Vec<_>>>()
        })?;
    } else {
        for machine in &all {
            cli(&["node", "provide", &machine.name])?;
        }
    }
    Ok(())
}

fn status_table(exe: &Path, dir: &Path, state: &LabState) -> String {
    let url = format!("http://127.0.0.1:{}", state.api_port);
    let mut table = format!(
        "{:<8} {:<5} {:<19} {:<30} {:<16} {}\n",
        "NODE",
        "BOOT",
        "MAC",
        format!("BMC (in {})", state.namespace),
        "STATE",
        "CONSOLE"
    );
    for machine in machines(state) {
        let provision = run_command(Command::new(exe).args([
            "--url",
            &url,
            "node",
            "show",
            &machine.name,
            "-f",
            "value",
            "-c",
            "provision_state",
        ]))
        .map(|text| text.trim().to_owned())
        .unwrap_or_else(|_| "?".to_owned());
        table.push_str(&format!(
            "{:<8} {:<5} {:<19} {:<30} {:<16} {}\n",
            machine.name,
            if machine.uefi { "uefi" } else { "bios" },
            machine.mac,
            machine.bmc_address(),
            provision,
            dir.join(format!("{}.console", machine.name)).display()
        ));
    }
    table
}

fn status(dir: &Path) -> anyhow::Result<()> {
    let state = load_state(dir)?;
    let exe = std::env::current_exe().context("locating the ferric binary")?;
    match supervisor_pid(dir) {
        Some(pid) => println!(
            "supervisor: running (pid {}), API http://127.0.0.1:{}, logs in {}",
            pid.as_raw_nonzero(),
            state.api_port,
            dir.display()
        ),
        None => println!("supervisor: not running (ferric lab up starts the lab)"),
    }
    let present = netns_path(&state.namespace).exists();
    println!("namespace {}: {}", state.namespace, if present { "present" } else { "absent" });
    print!("{}", status_table(&exe, dir, &state));
    Ok(())
}

/// Stops the supervisor, then whatever is left in the namespace, and
/// deletes the namespace.
fn stop(dir: &Path, namespace: &str) -> anyhow::Result<()> {
    if let Some(pid) = supervisor_pid(dir) {
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)
            .context("signalling the lab supervisor")?;
        let started = Instant::now();
        while supervisor_pid(dir).is_some() && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Some(pid) = supervisor_pid(dir) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
    let _ = std::fs::remove_file(pid_file(dir));
    teardown_namespace(namespace);
    ensure!(!netns_path(namespace).exists(), "could not delete the namespace {namespace}");
    Ok(())
}

fn teardown_namespace(namespace: &str) {
    if !netns_path(namespace).exists() {
        return;
    }
    if let Ok(pids) = ip(&["netns", "pids", namespace]) {
        for pid in pids.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let _ = ip(&["netns", "del", namespace]);
}

fn down(dir: &Path) -> anyhow::Result<()> {
    ensure!(rustix::process::getuid().is_root(), "ferric lab down must run as root");
    let namespace =
        load_state(dir).map(|state| state.namespace).unwrap_or_else(|_| default_namespace());
    stop(dir, &namespace)?;
    println!(
        "lab stopped, namespace {namespace} deleted; images kept in {} (the next `ferric lab up` \
         reuses them; delete the directory to rebuild)",
        dir.display()
    );
    Ok(())
}

// ---- the supervisor ----

type Connect = tokio::sync::oneshot::Sender<std::io::Result<std::net::TcpStream>>;

/// A thread inside the lab's namespace that opens TCP connections to the
/// API there for the forwarder (sockets keep the namespace they were made in).
fn spawn_connector(namespace: &str) -> anyhow::Result<std::sync::mpsc::Sender<Connect>> {
    let path = netns_path(namespace);
    let (requests, incoming) = std::sync::mpsc::channel::<Connect>();
    let (ready, entered) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("netns-connector".into())
        .spawn(move || {
            let enter = || -> std::io::Result<()> {
                let namespace = File::open(&path)?;
                rustix::thread::move_into_link_name_space(
                    namespace.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )?;
                Ok(())
            };
            let result = enter();
            let failed = result.is_err();
            let _ = ready.send(result);
            if failed {
                return;
            }
            let api = SocketAddr::from(([198, 18, 0, 1], API_PORT_INSIDE));
            for reply in incoming {
                let _ =
                    reply.send(std::net::TcpStream::connect_timeout(&api, Duration::from_secs(5)));
            }
        })
        .context("starting the namespace connector thread")?;
    entered
        .recv()
        .context("the namespace connector thread died")?
        .with_context(|| format!("entering the namespace {namespace}"))?;
    Ok(requests)
}

async fn forward(mut inbound: tokio::net::TcpStream, connector: std::sync::mpsc::Sender<Connect>) {
    let (reply, answer) = tokio::sync::oneshot::channel();
    if connector.send(reply).is_err() {
        return;
    }
    let stream = match answer.await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            eprintln!("forwarder: cannot reach the API in the lab's namespace: {error}");
            return;
        }
        Err(_) => return,
    };
    let outbound =
        stream.set_nonblocking(true).and_then(|()| tokio::net::TcpStream::from_std(stream));
    match outbound {
        Ok(mut outbound) => {
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        }
        Err(error) => eprintln!("forwarder: {error}"),
    }
}

fn spawn_in_namespace(
    namespace: &str,
    exe: &Path,
    args: &[&std::ffi::OsStr],
    log: &Path,
) -> anyhow::Result<Child> {
    let log = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    Command::new("ip")
        .args(["netns", "exec", namespace])
        .arg(exe)
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting ferric {:?} in {namespace}", args.first()))
}

fn supervise(dir: &Path) -> anyhow::Result<()> {
    let state = load_state(dir)?;
    let exe = std::env::current_exe().context("locating the ferric binary")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut children = Vec::new();
    let result = runtime.block_on(async {
        let listen = SocketAddr::from(([127, 0, 0, 1], state.api_port));
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding the API forwarder to {listen}"))?;
        let connector = spawn_connector(&state.namespace)?;
        let config = dir.join("ferric.toml");
        let data = dir.join("data");
        children.push(spawn_in_namespace(
            &state.namespace,
            &exe,
            &[
                "serve".as_ref(),
                "--config".as_ref(),
                config.as_os_str(),
                "--data-dir".as_ref(),
                data.as_os_str(),
            ],
            &dir.join("serve.log"),
        )?);
        let vbmc = dir.join("vbmc.toml");
        children.push(spawn_in_namespace(
            &state.namespace,
            &exe,
            &["vbmc".as_ref(), "--config".as_ref(), vbmc.as_os_str()],
            &dir.join("vbmc.log"),
        )?);
        eprintln!(
            "lab supervisor: serve and vbmc started; forwarding {listen} to \
             {SERVER}:{API_PORT_INSIDE} in {}",
            state.namespace
        );
        let shutdown = crate::shutdown_signal();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => { tokio::spawn(forward(stream, connector.clone())); }
                    Err(error) => eprintln!("forwarder: accept: {error}"),
                },
                _ = &mut shutdown => break,
            }
        }
        anyhow::Ok(())
    });
    eprintln!("lab supervisor: stopping serve and vbmc");
    for child in &children {
        let pid = rustix::process::Pid::from_child(child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let started = Instant::now();
    for child in &mut children {
        while matches!(child.try_wait(), Ok(None)) && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    result
}

//! `ferric-agent`: the deploy ramdisk's agent.
//!
//! As PID 1 of the ramdisk it mounts the early filesystems, loads the
//! kernel modules, brings the network up by DHCP and reads the API URL from
//! the kernel command line. Run by hand (development, tests) it takes the
//! same settings as flags and uses the MACs and disks it is given.
//! Either way it then looks its node up, heartbeats, and serves the command
//! API the conductor drives.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ferric_agent::client::{ApiClient, ClientError};
use ferric_agent::cmdline::KernelArgs;
use ferric_agent::commands::{Agent, MachineConfig, Shutdown};
use ferric_agent::{api, init, modules, net};

/// How often an idle agent heartbeats, and how often while it runs a
/// command (so the node shows live progress).
const IDLE_HEARTBEAT: Duration = Duration::from_secs(10);
const BUSY_HEARTBEAT: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
struct Options {
    api_url: Option<String>,
    macs: Vec<String>,
    disks: Vec<PathBuf>,
    listen: Option<SocketAddr>,
    advertise: Option<IpAddr>,
    sys_root: Option<PathBuf>,
    proc_root: Option<PathBuf>,
    dev_root: Option<PathBuf>,
    insecure: bool,
}

const USAGE: &str = "usage: ferric-agent [--api-url URL] [--mac MAC]... [--disk PATH]... \
[--listen ADDR:PORT] [--advertise-address IP] [--sys-root DIR] [--proc-root DIR] [--dev-root DIR] \
[--insecure]\n\
As the ramdisk's /init, settings come from the kernel command line (ipa-api-url=, BOOTIF=).";

fn parse_options() -> anyhow::Result<Options> {
    let mut options = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value =
            |name: &str| args.next().with_context(|| format!("{name} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--api-url" => options.api_url = Some(value("--api-url")?),
            "--mac" => options.macs.push(value("--mac")?),
            "--disk" => options.disks.push(value("--disk")?.into()),
            "--listen" => options.listen = Some(value("--listen")?.parse().context("--listen")?),
            "--advertise-address" => {
                options.advertise =
                    Some(value("--advertise-address")?.parse().context("--advertise-address")?)
            }
            "--sys-root" => options.sys_root = Some(value("--sys-root")?.into()),
            "--proc-root" => options.proc_root = Some(value("--proc-root")?.into()),
            "--dev-root" => options.dev_root = Some(value("--dev-root")?.into()),
            "--insecure" => options.insecure = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    Ok(options)
}

fn main() {
    let pid1 = init::is_pid1();
    if pid1 {
        if let Err(error) = init::mount_early() {
            init::console_log(&format!("ferric-agent: mounting early filesystems failed: {error}"));
        }
        init::spawn_reaper();
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
            Ok(runtime) => runtime,
            Err(error) => fatal(pid1, &format!("cannot start the runtime: {error}")),
        };
    if let Err(error) = runtime.block_on(run(pid1)) {
        fatal(pid1, &format!("{error:#}"));
    }
}

/// Reports a fatal error. As PID 1 there is nothing to return to: stay up
/// (so the console shows why) until the conductor's timeout powers us off.
fn fatal(pid1: bool, message: &str) -> ! {
    init::console_log(&format!("FERRIC-AGENT-FAILED {message}"));
    if pid1 {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    std::process::exit(1)
}

async fn run(pid1: bool) -> anyhow::Result<()> {
    let options = parse_options()?;
    let kernel = if pid1 {
        KernelArgs::read(std::path::Path::new("/proc/cmdline")).unwrap_or_default()
    } else {
        KernelArgs::default()
    };
    if let Some(console) = &kernel.console {
        init::set_console_device(console);
    }
    init::milestone("FERRIC-AGENT-UP", env!("CARGO_PKG_VERSION"));
    let sys_root = options.sys_root.clone().unwrap_or_else(|| "/sys".into());

    let mut advertise = options.advertise;
    let mut macs = options.macs.clone();
    if pid1 {
        let report = modules::load_modules(std::path::Path::new("/lib/modules"), &sys_root);
        let names: Vec<String> =
            report.loaded.iter().map(|path| modules::module_name(path)).collect();
        init::milestone(
            "MODULES-LOADED",
            &format!(
                "loaded={} failed={} devices={} [{}]",
                report.loaded.len(),
                report.failed.len(),
                report.devices,
                names.join(" ")
            ),
        );
        for (module, error) in &report.failed {
            init::console_log(&format!("module {module}: {error}"));
        }
        let leases = net::bring_up_network(&sys_root, kernel.boot_mac, Duration::from_secs(60))
            .await
            .context("bringing the network up")?;
        let only: Vec<net::Lease> = leases.iter().map(|(_, lease)| lease.clone()).collect();
        let _ = net::write_resolv_conf(std::path::Path::new("/etc/resolv.conf"), &only);
        if advertise.is_none() {
            advertise = leases.first().map(|(_, lease)| IpAddr::V4(lease.address));
        }
    }
    if macs.is_empty() {
        macs = net::list_interfaces(&sys_root).iter().map(|nic| nic.mac.to_string()).collect();
    }
    anyhow::ensure!(!macs.is_empty(), "no network interfaces to look the node up by");

    let api_url = options
        .api_url
        .clone()
        .or(kernel.api_url.clone())
        .context("no API URL: pass --api-url or boot with ipa-api-url=")?;
    let client = ApiClient::new(&api_url, options.insecure || kernel.insecure)?;
    let defaults = MachineConfig::default();
    let machine = MachineConfig {
        sys_root: sys_root.clone(),
        proc_root: options.proc_root.clone().unwrap_or(defaults.proc_root),
        dev_root: options.dev_root.clone().unwrap_or(defaults.dev_root),
        disks: options.disks.clone(),
        scratch: if pid1 { "/tmp".into() } else { std::env::temp_dir() },
    };
    let agent = Agent::new(machine);

    // The command API first, so the conductor can reach us as soon as it
    // knows our address.
    let listen = options
        .listen
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], ferric_types::agent::AGENT_PORT)));
    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    let bound = listener.local_addr()?;
    let host = match advertise {
        Some(ip) => ip,
        None => local_address_towards(&api_url).await.unwrap_or(bound.ip()),
    };
    let callback_url = match host {
        IpAddr::V6(v6) => format!("http://[{v6}]:{}", bound.port()),
        IpAddr::V4(v4) => format!("http://{v4}:{}", bound.port()),
    };
    let router = api::router(agent.clone());
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "command API stopped");
        }
    });
    tracing::info!(%callback_url, api = %client.base(), "agent serving commands");

    let mut shutdown = agent.shutdown_requests();
    tokio::select! {
        () = lookup_and_heartbeat(&client, &agent, &macs, &callback_url) => Ok(()),
        _ = shutdown.changed() => {
            let what = *shutdown.borrow();
            // Let the answer to the power command reach the conductor.
            tokio::time::sleep(Duration::from_millis(200)).await;
            go_down(pid1, what)
        }
    }
}

/// Lookup until a node claims us, then heartbeat; back to lookup when the
/// node stops expecting us (a new operation issues a new token).
async fn lookup_and_heartbeat(
    client: &ApiClient,
    agent: &Arc<Agent>,
    macs: &[String],
    callback_url: &str,
) {
    let mut announced = false;
    loop {
        let node = match client.lookup(macs).await {
            Ok(node) => node,
            Err(error) => {
                if !matches!(error, ClientError::NotFound) || !announced {
                    tracing::info!(%error, "lookup: retrying");
                    announced = true;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        init::milestone("LOOKUP-OK", &node.uuid);
        if node.token.is_none() {
            tracing::warn!(node = %node.uuid, "another agent already took this node's token; waiting");
            tokio::time::sleep(Duration::from_secs(10)).await;
            continue;
        }
        agent.set_node(Some(node.clone()));
        let idle = IDLE_HEARTBEAT.min(node.heartbeat_timeout / 3);
        let mut first = true;
        loop {
            match client.heartbeat(&node, callback_url, None).await {
                Ok(()) => {
                    if first {
                        init::milestone("HEARTBEAT-OK", &node.uuid);
                        first = false;
                    }
                }
                Err(ClientError::Locked) => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                Err(ClientError::Unreachable { reason, .. }) => {
                    tracing::warn!(%reason, "heartbeat failed; retrying");
                }
                Err(error) => {
                    tracing::warn!(%error, "the node no longer expects this agent; looking it up again");
                    agent.set_node(None);
                    break;
                }
            }
            let interval = if agent.is_busy() { BUSY_HEARTBEAT } else { idle };
            let finished = agent.finished.notified();
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = finished => {}
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The address this host uses to reach the API (what the conductor can
/// reach us at, when nothing better is known).
async fn local_address_towards(api_url: &str) -> Option<IpAddr> {
    let rest = api_url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let target =
        if authority.contains(':') { authority.to_owned() } else { format!("{authority}:80") };
    let address = tokio::net::lookup_host(target).await.ok()?.next()?;
    let socket =
        std::net::UdpSocket::bind(if address.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }).ok()?;
    socket.connect(address).ok()?;
    Some(socket.local_addr().ok()?.ip())
}

fn go_down(pid1: bool, what: Option<Shutdown>) -> anyhow::Result<()> {
    let what = what.unwrap_or(Shutdown::PowerOff);
    init::milestone(if what == Shutdown::Reboot { "REBOOTING" } else { "POWERING-OFF" }, "");
    if !pid1 {
        // Run by hand: "powering off" ends the process.
        return Ok(());
    }
    let error = match what {
        Shutdown::Reboot => init::reboot(),
        Shutdown::PowerOff => init::power_off(),
    };
    Err(error.into())
}

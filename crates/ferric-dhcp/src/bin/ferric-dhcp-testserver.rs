//! A small command-line front end to [`ferric_dhcp::DhcpServer`] for the
//! real-peer tests and benchmarks (run it inside a network namespace):
//!
//! ```text
//! ferric-dhcp-testserver --iface IF --server-ip IP --subnet NET/PREFIX
//!     [--mode authoritative|proxy] [--range FIRST-LAST] [--router IP] [--dns IP]
//!     [--lease-time SECS] [--http-port PORT] [--reserve MAC[=IP][,HOSTNAME]]... [--any-mac]
//! ```
//!
//! `--any-mac` answers every MAC (dynamic address, network boot enabled),
//! for load generators. Prints `ready` on stdout once bound; stops on
//! SIGTERM or SIGINT.

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::Arc;

use ferric_dhcp::{
    AddressRange, Backend, Config, DhcpServer, MacAddr, MemoryBackend, MemoryLeases, Mode, Network,
    Reservation,
};

/// Answers configured reservations, and any other MAC when `any` is set.
struct TestBackend {
    known: MemoryBackend,
    any: bool,
}

impl Backend for TestBackend {
    fn lookup(&self, mac: MacAddr) -> Option<Reservation> {
        self.known.lookup(mac).or_else(|| {
            self.any.then(|| Reservation { pxe_enabled: true, ..Reservation::default() })
        })
    }
}

fn parse_args(args: &[String]) -> Result<(Config, TestBackend), String> {
    let mut mode = Mode::Authoritative;
    let mut iface = String::new();
    let mut server_ip = None;
    let mut network: Option<Network> = None;
    let mut ranges = Vec::new();
    let mut routers = Vec::new();
    let mut dns = Vec::new();
    let mut lease_time = 3600;
    let mut http_port = 8080;
    let mut backend = TestBackend { known: MemoryBackend::new(), any: false };
    let ip = |s: &str| s.parse::<Ipv4Addr>().map_err(|e| format!("{s}: {e}"));
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--any-mac" {
            backend.any = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--mode" => {
                mode = match value.as_str() {
                    "authoritative" => Mode::Authoritative,
                    "proxy" => Mode::Proxy,
                    other => return Err(format!("unknown mode {other}")),
                }
            }
            "--iface" => iface = value.clone(),
            "--server-ip" => server_ip = Some(ip(value)?),
            "--subnet" => {
                let (net, prefix) = value.split_once('/').ok_or("--subnet wants NET/PREFIX")?;
                let prefix = prefix.parse().map_err(|e| format!("{value}: {e}"))?;
                network = Some(Network::new(ip(net)?, prefix));
            }
            "--range" => {
                let (first, last) = value.split_once('-').ok_or("--range wants FIRST-LAST")?;
                ranges.push(AddressRange { first: ip(first)?, last: ip(last)? });
            }
            "--router" => routers.push(ip(value)?),
            "--dns" => dns.push(ip(value)?),
            "--lease-time" => lease_time = value.parse().map_err(|e| format!("{value}: {e}"))?,
            "--http-port" => http_port = value.parse().map_err(|e| format!("{value}: {e}"))?,
            "--reserve" => {
                let (spec, hostname) = match value.split_once(',') {
                    Some((spec, host)) => (spec, Some(host.to_owned())),
                    None => (value.as_str(), None),
                };
                let (mac, fixed) = match spec.split_once('=') {
                    Some((mac, fixed)) => (mac, Some(ip(fixed)?)),
                    None => (spec, None),
                };
                let mac: MacAddr = mac.parse().map_err(|e| format!("{e}"))?;
                backend.known.insert(
                    mac,
                    Reservation { ip: fixed, hostname, pxe_enabled: true, ipxe_script_url: None },
                );
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let server_ip = server_ip.ok_or("--server-ip is required")?;
    let mut config = Config::new(mode, iface, server_ip);
    config.boot.http_port = http_port;
    if let Some(mut network) = network {
        network.ranges = ranges;
        network.routers = routers;
        network.dns_servers = dns;
        network.lease_time = lease_time;
        config.networks.push(network);
    }
    Ok((config, backend))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (config, backend) = match parse_args(&args) {
        Ok(parsed) => parsed,
        Err(error) => {
            eprintln!("ferric-dhcp-testserver: {error}");
            return ExitCode::from(2);
        }
    };
    let server =
        match DhcpServer::bind(config, Arc::new(backend), Arc::new(MemoryLeases::new())).await {
            Ok(server) => server,
            Err(error) => {
                eprintln!("ferric-dhcp-testserver: {error}");
                return ExitCode::FAILURE;
            }
        };
    println!("ready");
    let shutdown = async {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    match server.serve(shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ferric-dhcp-testserver: {error}");
            ExitCode::FAILURE
        }
    }
}

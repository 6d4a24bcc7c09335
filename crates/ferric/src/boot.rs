//! The boot services `ferric serve` can run beside the API: TFTP (iPXE
//! binaries) and HTTP boot (per-node iPXE scripts and boot files), bound to
//! the provisioning network only when configured. Node lookups read the
//! store directly, so a node's boot script changes the moment its state does.
//! DHCP answers from memory and saves its leases to the store behind the
//! packet path (`leases.rs`), so a restart keeps them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use ferric_httpboot::{BootBackend, BootSettings};
use ferric_store::Store;
use ferric_types::Node;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What to run, from the `[boot]` config section and flags.
#[derive(Debug, Clone, Default)]
pub struct BootOptions {
    /// TFTP listen address (off when `None`).
    pub tftp: Option<SocketAddr>,
    /// HTTP boot listen address (off when `None`).
    pub http: Option<SocketAddr>,
    /// Serve only on this interface (`SO_BINDTODEVICE`).
    pub interface: Option<String>,
    /// Boot files (iPXE binaries, kernels, ramdisks).
    pub root: PathBuf,
    /// The image store, served by content at `/images/{sha256}`.
    pub images: PathBuf,
    /// The API URL ramdisks call back to.
    pub api_url: String,
    /// Appended to every ramdisk kernel command line.
    pub kernel_append: String,
    /// DHCP (requires `interface`).
    pub dhcp: Option<ferric_dhcp::Config>,
    /// Send lifetime-0 IPv6 router advertisements on `interface`.
    pub router_advertisements: bool,
}

/// Builds the DHCP configuration from `[boot.dhcp]`.
pub fn dhcp_config(
    section: &crate::config::DhcpSection,
    interface: Option<&str>,
    http: Option<SocketAddr>,
) -> anyhow::Result<ferric_dhcp::Config> {
    let interface = interface
        .context("[boot.dhcp] needs [boot] interface: ferric serves DHCP on one interface only")?;
    let mode = match section.mode.as_str() {
        "authoritative" => ferric_dhcp::Mode::Authoritative,
        "proxy" => ferric_dhcp::Mode::Proxy,
        other => anyhow::bail!("[boot.dhcp] mode must be authoritative or proxy, not {other:?}"),
    };
    let mut config = ferric_dhcp::Config::new(mode, interface, section.server_ip);
    if let Some(http) = http {
        config.boot.http_port = http.port();
    }
    if mode == ferric_dhcp::Mode::Authoritative {
        let subnet = section
            .subnet
            .as_deref()
            .context("[boot.dhcp] subnet is required in authoritative mode")?;
        let (address, prefix) = subnet
            .split_once('/')
            .and_then(|(address, prefix)| Some((address.parse().ok()?, prefix.parse().ok()?)))
            .filter(|(_, prefix): &(std::net::Ipv4Addr, u8)| *prefix <= 32)
            .with_context(|| format!("[boot.dhcp] subnet {subnet:?} is not ADDRESS/PREFIX"))?;
        let mut network = ferric_dhcp::Network::new(address, prefix);
        if let Some([first, last]) = section.range {
            network.ranges.push(ferric_dhcp::AddressRange { first, last });
        }
        network.routers.extend(section.router);
        network.dns_servers.clone_from(&section.dns_servers);
        if let Some(lease_time) = section.lease_time_seconds {
            network.lease_time = lease_time;
        }
        config.networks.push(network);
    }
    Ok(config)
}

/// The DHCP server's view of the inventory: every port's MAC, refreshed
/// from the store every [`PORT_REFRESH`], so that lookups (on the packet
/// path) never wait for the database.
struct PortSnapshot {
    ports: std::sync::RwLock<
        std::collections::HashMap<ferric_dhcp::MacAddr, ferric_dhcp::Reservation>,
    >,
}

const PORT_REFRESH: std::time::Duration = std::time::Duration::from_secs(2);

/// How often the unsolicited router advertisement repeats.
const RA_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3);

impl ferric_dhcp::Backend for PortSnapshot {
    fn lookup(&self, mac: ferric_dhcp::MacAddr) -> Option<ferric_dhcp::Reservation> {
        self.ports.read().ok()?.get(&mac).cloned()
    }
}

async fn refresh_ports(store: &Store, snapshot: &PortSnapshot) {
    match store.port_list(&ferric_store::PortQuery::default()).await {
        Ok(ports) => {
            let map = ports
                .into_iter()
                .filter_map(|port| {
                    let mac = port.address.parse::<ferric_dhcp::MacAddr>().ok()?;
                    let reservation = ferric_dhcp::Reservation {
                        pxe_enabled: port.pxe_enabled,
                        ..ferric_dhcp::Reservation::default()
                    };
                    Some((mac, reservation))
                })
                .collect();
            if let Ok(mut ports) = snapshot.ports.write() {
                *ports = map;
            }
        }
        Err(error) => tracing::warn!(%error, "refreshing the DHCP port list failed"),
    }
}

/// iPXE binaries Debian's `ipxe` package installs, copied into the boot
/// root when it lacks them (the TFTP server refuses links leaving its root).
const IPXE_BINARIES: [&str; 3] = ["undionly.kpxe", "ipxe.efi", "snponly.efi"];
const IPXE_SYSTEM_DIR: &str = "/usr/lib/ipxe";

fn seed_ipxe_binaries(root: &Path) {
    for name in IPXE_BINARIES {
        let target = root.join(name);
        let source = Path::new(IPXE_SYSTEM_DIR).join(name);
        if !target.exists() && source.exists() {
            match std::fs::copy(&source, &target) {
                Ok(_) => {
                    tracing::info!(file = %target.display(), "copied iPXE binary into the boot root")
                }
                Err(error) => {
                    tracing::warn!(%error, file = %source.display(), "could not copy iPXE binary")
                }
            }
        }
    }
}

struct StoreBackend(Store);

#[async_trait::async_trait]
impl BootBackend for StoreBackend {
    async fn node_by_mac(&self, mac: &str) -> Result<Option<Node>, String> {
        self.0.node_by_port_addresses(&[mac.to_owned()]).await.map_err(|error| error.to_string())
    }
}

/// Starts the configured services; they stop when `stop` turns true.
pub async fn start(
    store: Store,
    options: BootOptions,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let mut tasks = Vec::new();
    if options.tftp.is_none() && options.http.is_none() && options.dhcp.is_none() {
        return Ok(tasks);
    }
    std::fs::create_dir_all(&options.root)
        .with_context(|| format!("creating the boot root {}", options.root.display()))?;
    seed_ipxe_binaries(&options.root);
    let stopped = |mut stop: watch::Receiver<bool>| async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    if let Some(address) = options.tftp {
        let config = ferric_tftp::ServerConfig {
            bind_device: options.interface.clone(),
            ..ferric_tftp::ServerConfig::default()
        };
        let server = ferric_tftp::TftpServer::bind(address, &options.root, config)
            .await
            .with_context(|| format!("starting TFTP on {address}"))?;
        tracing::info!(address = %server.local_addr(), "TFTP serving {}", options.root.display());
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(error) = server.serve(stopped(stop)).await {
                tracing::error!(%error, "TFTP server stopped");
            }
        }));
    }
    if let (Some(interface), true) = (&options.interface, options.router_advertisements) {
        match ferric_dhcp::ra::RouterAdvertiser::bind(interface) {
            Ok(advertiser) => {
                tracing::info!(%interface, "sending lifetime-0 IPv6 router advertisements");
                let stop = stop.clone();
                tasks.push(tokio::spawn(advertiser.run(RA_INTERVAL, stopped(stop))));
            }
            // Not fatal: iPXE only boots slower without it.
            Err(error) => tracing::warn!(%error, "no IPv6 router advertisements"),
        }
    }
    if let Some(config) = options.dhcp.clone() {
        let snapshot = Arc::new(PortSnapshot { ports: std::sync::RwLock::default() });
        refresh_ports(&store, &snapshot).await;
        // The writer ends once the server (holding the leases) has stopped
        // and every queued change is saved.
        let (leases, lease_writer) = crate::leases::PersistentLeases::load(store.clone())
            .await
            .context("loading DHCP leases")?;
        let server = ferric_dhcp::DhcpServer::bind(config, snapshot.clone(), leases)
            .await
            .context("starting DHCP")?;
        let refresher_store = store.clone();
        let refresher_stop = stopped(stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(PORT_REFRESH);
            tokio::pin!(refresher_stop);
            loop {
                tokio::select! {
                    () = &mut refresher_stop => return,
                    _ = tick.tick() => refresh_ports(&refresher_store, &snapshot).await,
                }
            }
        }));
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(error) = server.serve(stopped(stop)).await {
                tracing::error!(%error, "DHCP server stopped");
            }
        }));
        tasks.push(lease_writer);
    }
    if let Some(address) = options.http {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("starting HTTP boot on {address}"))?;
        let local = listener.local_addr()?;
        let settings = BootSettings {
            api_url: options.api_url.clone(),
            file_base_url: format!("http://{local}"),
            kernel_append: options.kernel_append.clone(),
        };
        let blobs = Arc::new(options.images.join("sha256"));
        let app =
            ferric_httpboot::router(Arc::new(StoreBackend(store)), settings, options.root.clone())
                .merge(
                    axum::Router::new()
                        .route(
                            "/images/{sha256}",
                            axum::routing::get(stored_image).head(stored_image),
                        )
                        .with_state(blobs),
                );
        tracing::info!(address = %local, "HTTP boot serving scripts and {}", options.root.display());
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(error) =
                axum::serve(listener, app).with_graceful_shutdown(stopped(stop)).await
            {
                tracing::error!(%error, "HTTP boot server stopped");
            }
        }));
    }
    Ok(tasks)
}

/// `GET|HEAD /images/{sha256}`: stored image content, with Range and ETag.
async fn stored_image(
    axum::extract::State(blobs): axum::extract::State<Arc<PathBuf>>,
    axum::extract::Path(sha256): axum::extract::Path<String>,
    method: axum::http::Method,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return (axum::http::StatusCode::NOT_FOUND, "images are addressed by their sha256\n")
            .into_response();
    }
    let response =
        ferric_httpboot::files::serve(&blobs, &sha256.to_ascii_lowercase(), &method, &headers)
            .await;
    let range = headers.get(axum::http::header::RANGE).and_then(|v| v.to_str().ok());
    tracing::info!(%sha256, %method, range, status = response.status().as_u16(), "image requested");
    response
}

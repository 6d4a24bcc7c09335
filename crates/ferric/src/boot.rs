//! The boot services `ferric serve` can run beside the API: TFTP (iPXE
//! binaries) and HTTP boot (per-node iPXE scripts and boot files), bound to
//! the provisioning network only when configured. Node lookups read the
//! store directly, so a node's boot script changes the moment its state does.

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
    /// The API URL ramdisks call back to.
    pub api_url: String,
    /// Appended to every ramdisk kernel command line.
    pub kernel_append: String,
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
    if options.tftp.is_none() && options.http.is_none() {
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
        let app =
            ferric_httpboot::router(Arc::new(StoreBackend(store)), settings, options.root.clone());
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

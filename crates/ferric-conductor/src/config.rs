//! Conductor settings, with Ironic's defaults where Ironic has one.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ConductorConfig {
    /// This conductor's name in the cluster (`reservation`, `conductor`).
    pub hostname: String,
    pub conductor_group: String,
    /// How often the conductor refreshes its liveness row.
    pub heartbeat_interval: Duration,
    /// A conductor silent for this long is dead and its nodes are taken over.
    pub heartbeat_timeout: Duration,
    /// How often to look for work queued by API servers in other processes.
    pub poll_interval: Duration,
    /// How often wait-state timeouts and orphaned nodes are checked.
    pub sweep_interval: Duration,
    /// How often power states are read from the hardware.
    pub power_sync_interval: Duration,
    /// Failed power reads in a row before a node goes into maintenance.
    pub power_sync_max_failures: u32,
    /// How many power reads run at once.
    pub power_sync_concurrency: usize,
    /// Timeout for a power action to reach its state.
    pub power_state_change_timeout: Duration,
    pub deploy_callback_timeout: Duration,
    pub clean_callback_timeout: Duration,
    pub inspect_wait_timeout: Duration,
    pub rescue_callback_timeout: Duration,
    pub service_callback_timeout: Duration,
    /// Most node operations running at once.
    pub workers: usize,
    /// Run automated cleaning on provide and undeploy unless a node says otherwise.
    pub automated_clean: bool,
    /// How long shutdown waits for running operations.
    pub graceful_shutdown_timeout: Duration,
    /// ferric's own image store, for `instance_info.image_source` given as
    /// an image name or id rather than a URL.
    pub images: Option<ImageCatalog>,
}

/// Where the conductor finds stored images and where nodes download them.
#[derive(Debug, Clone)]
pub struct ImageCatalog {
    /// The image store's root (`ferric image create` writes there).
    pub store: std::path::PathBuf,
    /// The URL under which the boot HTTP server serves the store's content
    /// by SHA-256 (`<url_base>/<sha256>`).
    pub url_base: String,
}

impl Default for ConductorConfig {
    fn default() -> Self {
        Self {
            images: None,
            hostname: "localhost".into(),
            conductor_group: String::new(),
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(60),
            poll_interval: Duration::from_secs(2),
            sweep_interval: Duration::from_secs(10),
            power_sync_interval: Duration::from_secs(60),
            power_sync_max_failures: 3,
            power_sync_concurrency: 64,
            power_state_change_timeout: Duration::from_secs(60),
            deploy_callback_timeout: Duration::from_secs(1800),
            clean_callback_timeout: Duration::from_secs(1800),
            inspect_wait_timeout: Duration::from_secs(1800),
            rescue_callback_timeout: Duration::from_secs(1800),
            service_callback_timeout: Duration::from_secs(1800),
            workers: 256,
            automated_clean: true,
            graceful_shutdown_timeout: Duration::from_secs(30),
        }
    }
}

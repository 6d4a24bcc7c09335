//! The `ferric` binary. `ferric serve` runs the API and a conductor in one
//! process on embedded SQLite (or PostgreSQL with `--database`); the other
//! subcommands are the operator CLI (`ferric-cli`).

mod boot;
mod config;
mod image_cmd;
mod lab;
mod leases;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ferric_api::{ApiConfig, ApiState};
use ferric_conductor::{Conductor, ConductorConfig};
use ferric_store::Store;

#[derive(Parser)]
#[command(name = "ferric", version, about = "Bare metal as a service")]
struct Cli {
    #[command(flatten)]
    options: ferric_cli::GlobalOptions,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size difference between variants is irrelevant.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the API server and a conductor.
    Serve(ServeArgs),
    /// Run virtual BMCs (IPMI lanplus) for QEMU or simulated machines.
    Vbmc {
        /// TOML file listing the machines (`[[machines]]`).
        #[arg(long)]
        config: PathBuf,
    },
    /// Build the deploy ramdisk and disk images; manage the image store.
    Image(image_cmd::ImageArgs),
    /// A throwaway lab on this machine: QEMU machines, ferric serve and vbmc in a network namespace.
    Lab(lab::LabArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completion { shell: clap_complete::Shell },
    #[command(flatten)]
    Api(ferric_cli::Command),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "FERRIC_CONFIG")]
    config: Option<PathBuf>,
    /// Address for the API [default: 127.0.0.1:6385].
    #[arg(long, env = "FERRIC_LISTEN")]
    listen: Option<SocketAddr>,
    /// Where ferric keeps its data (the SQLite database) [default:
    /// $XDG_DATA_HOME/ferric or ./ferric-data].
    #[arg(long, env = "FERRIC_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: SQLite in the data dir].
    #[arg(long, env = "FERRIC_DATABASE")]
    database: Option<String>,
    /// This conductor's hostname in the cluster [default: the machine's hostname].
    #[arg(long, env = "FERRIC_HOSTNAME")]
    hostname: Option<String>,
    /// Base URL for links in API responses [default: from the request's Host].
    #[arg(long, env = "FERRIC_PUBLIC_ENDPOINT")]
    public_endpoint: Option<String>,
    /// Serve TFTP (iPXE binaries) on this address, e.g. 198.18.0.1:69 [default: off].
    #[arg(long, env = "FERRIC_BOOT_TFTP")]
    boot_tftp: Option<SocketAddr>,
    /// Serve HTTP boot (iPXE scripts, boot files) on this address [default: off].
    #[arg(long, env = "FERRIC_BOOT_HTTP")]
    boot_http: Option<SocketAddr>,
    /// Serve boot protocols only on this network interface.
    #[arg(long, env = "FERRIC_BOOT_INTERFACE")]
    boot_interface: Option<String>,
    /// Directory of boot files [default: DATA_DIR/boot].
    #[arg(long, env = "FERRIC_BOOT_ROOT")]
    boot_root: Option<PathBuf>,
    /// The API URL ramdisks call back to [default: http://LISTEN].
    #[arg(long, env = "FERRIC_API_URL")]
    api_url: Option<String>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => run_server(args),
        Command::Vbmc { config } => run_vbmc(&config),
        Command::Image(args) => image_cmd::run(&cli.options, args),
        Command::Lab(args) => lab::run(args),
        Command::Completion { shell } => {
            print!(
                "{}",
                ferric_cli::completions(shell, &mut <Cli as clap::CommandFactory>::command())
            );
            Ok(())
        }
        Command::Api(command) => run_cli(&cli.options, command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_cli(
    options: &ferric_cli::GlobalOptions,
    command: ferric_cli::Command,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let output = runtime.block_on(ferric_cli::execute(options, command))?;
    print!("{output}");
    Ok(())
}

fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: log files and journald get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn run_vbmc(path: &std::path::Path) -> anyhow::Result<()> {
    init_logging();
    let config = ferric_vbmc::Config::load(path)
        .with_context(|| format!("loading the vBMC config {}", path.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(ferric_vbmc::run(config, shutdown_signal())).context("running the vBMCs")
}

fn run_server(args: ServeArgs) -> anyhow::Result<()> {
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(args))
}

fn machine_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => config::FileConfig::load(path)?,
        None => config::FileConfig::default(),
    };
    let data_dir = args.data_dir.or(file.data_dir).unwrap_or_else(config::default_data_dir);
    let database = match args.database.or(file.database.url) {
        Some(url) => url,
        None => {
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("creating data directory {}", data_dir.display()))?;
            config::sqlite_url(&data_dir)
        }
    };
    let listen =
        args.listen.or(file.api.listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 6385)));

    let store = Store::connect(&database).await.context("opening the database")?;
    tracing::info!(backend = store.backend_name(), "database ready");

    let mut conductor_config = ConductorConfig {
        hostname: args
            .hostname
            .or_else(|| file.conductor.hostname.clone())
            .unwrap_or_else(machine_hostname),
        conductor_group: file.conductor.conductor_group.clone().unwrap_or_default(),
        ..ConductorConfig::default()
    };
    if let Some(flag) = file.conductor.automated_clean {
        conductor_config.automated_clean = flag;
    }
    if let Some(interval) = config::seconds(file.conductor.power_sync_interval_seconds) {
        conductor_config.power_sync_interval = interval;
    }
    if let Some(timeout) = config::seconds(file.conductor.deploy_callback_timeout_seconds) {
        conductor_config.deploy_callback_timeout = timeout;
    }
    if let Some(timeout) = config::seconds(file.conductor.clean_callback_timeout_seconds) {
        conductor_config.clean_callback_timeout = timeout;
    }
    if let Some(workers) = file.conductor.workers {
        conductor_config.workers = workers;
    }
    file.conductor.apply_cleaning(&mut conductor_config)?;
    // With HTTP boot on, the boot server also serves the image store by
    // content, and deploys may name stored images instead of URLs.
    let images_dir = data_dir.join("images");
    if let Some(http) = args.boot_http.or(file.boot.http_listen) {
        conductor_config.images = Some(ferric_conductor::ImageCatalog {
            store: images_dir.clone(),
            url_base: format!("http://{http}/images"),
        });
    }
    let heartbeat_timeout = conductor_config.heartbeat_timeout;
    let conductor = Conductor::start(store.clone(), conductor_config)
        .await
        .context("starting the conductor")?;

    let mut api_config = ApiConfig {
        public_endpoint: args.public_endpoint.or(file.api.public_endpoint),
        conductor_heartbeat_timeout: heartbeat_timeout,
        ..ApiConfig::default()
    };
    if let Some(max) = file.api.max_body_bytes {
        api_config.max_body_bytes = max;
    }
    let state = ApiState::new(store.clone(), Arc::new(conductor.clone()), api_config);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the API to {listen}"))?;
    let bound = listener.local_addr()?;

    let boot_interface = args.boot_interface.or(file.boot.interface);
    let boot_http = args.boot_http.or(file.boot.http_listen);
    let dhcp = match &file.boot.dhcp {
        Some(section) => Some(boot::dhcp_config(section, boot_interface.as_deref(), boot_http)?),
        None => None,
    };
    let boot_options = boot::BootOptions {
        tftp: args.boot_tftp.or(file.boot.tftp_listen),
        http: boot_http,
        interface: boot_interface,
        dhcp,
        router_advertisements: file.boot.router_advertisements.unwrap_or(true),
        root: args.boot_root.or(file.boot.root).unwrap_or_else(|| data_dir.join("boot")),
        images: images_dir,
        api_url: args.api_url.or(file.boot.api_url).unwrap_or_else(|| format!("http://{bound}")),
        kernel_append: file.boot.kernel_append.unwrap_or_default(),
    };
    let (stop_boot, boot_stopped) = tokio::sync::watch::channel(false);
    let boot_tasks = boot::start(store.clone(), boot_options, boot_stopped).await?;
    tracing::info!("ferric API listening on http://{bound}");
    eprintln!("ferric API listening on http://{bound} (database: {})", store.backend_name());

    ferric_api::serve(listener, state, shutdown_signal()).await.context("serving the API")?;
    tracing::info!("shutting down");
    let _ = stop_boot.send(true);
    for task in boot_tasks {
        let _ = task.await;
    }
    conductor.shutdown().await;
    store.close().await;
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(error) => {
                    tracing::error!(%error, "cannot listen for SIGTERM");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

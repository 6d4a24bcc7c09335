//! The operator CLI: `ferric node|port|portgroup|chassis|driver|conductor`,
//! `allocation`, `deploy-template`, `runbook`, `volume` and `inspection rule`
//! commands over ferric's API, so operators need no Python.
//!
//! Output follows the `openstack` CLI's conventions (`-f table|json|yaml|value`,
//! `-c COLUMN`); a failed call exits non-zero with the server's message.
//! Nodes are named by name or UUID everywhere. Commands return their output
//! as text ([`execute`]) so transcripts can be tested; live progress for
//! `--wait` and `--watch` goes to stderr.

pub mod client;
mod commands;
pub mod output;
mod resources;

use std::io::IsTerminal;

use clap::{Args, Subcommand};

pub use client::{Client, ClientError};
pub use commands::{
    ChassisCommand, ConductorCommand, DriverCommand, NodeCommand, PortCommand, PortgroupCommand,
};
use output::{Format, Printer};
pub use resources::{
    AllocationCommand, DeployTemplateCommand, InspectionCommand, RunbookCommand, VolumeCommand,
};

/// Options every API command shares.
#[derive(Debug, Clone, Args)]
pub struct GlobalOptions {
    /// API endpoint [env: FERRIC_URL, OS_ENDPOINT; config: ~/.config/ferric/cli.toml `url`;
    /// default: http://127.0.0.1:6385].
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// API microversion to request.
    #[arg(long, global = true, env = "FERRIC_API_VERSION")]
    pub api_version: Option<String>,
    /// Auth token, sent as X-Auth-Token (ready for when auth is enabled).
    #[arg(long, global = true, env = "FERRIC_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Output format.
    #[arg(short = 'f', long = "format", global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Show only this column (by heading or field name); repeatable.
    #[arg(short = 'c', long = "column", global = true)]
    pub columns: Vec<String>,
}

/// The API commands.
// Parsed once per process: the size difference between variants is irrelevant.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage nodes.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Manage ports.
    #[command(subcommand)]
    Port(PortCommand),
    /// Manage portgroups.
    #[command(subcommand)]
    Portgroup(PortgroupCommand),
    /// Manage chassis.
    #[command(subcommand)]
    Chassis(ChassisCommand),
    /// Inspect hardware types.
    #[command(subcommand)]
    Driver(DriverCommand),
    /// Inspect conductors.
    #[command(subcommand)]
    Conductor(ConductorCommand),
    /// Request nodes by resource class and traits (allocations).
    #[command(subcommand)]
    Allocation(AllocationCommand),
    /// Manage deploy templates (deploy steps chosen by instance traits).
    #[command(subcommand, name = "deploy-template")]
    DeployTemplate(DeployTemplateCommand),
    /// Manage runbooks (named clean and service steps).
    #[command(subcommand)]
    Runbook(RunbookCommand),
    /// Manage volume connectors and targets (boot from volume).
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Manage inspection rules.
    #[command(subcommand)]
    Inspection(InspectionCommand),
}

/// The endpoint: flag, then `FERRIC_URL`, `OS_ENDPOINT`, the config file,
/// then the default.
pub fn resolve_url(flag: Option<&str>) -> String {
    if let Some(url) = flag {
        return url.to_owned();
    }
    for name in ["FERRIC_URL", "OS_ENDPOINT"] {
        if let Ok(url) = std::env::var(name) {
            if !url.is_empty() {
                return url;
            }
        }
    }
    if let Some(url) = config_file_url() {
        return url;
    }
    "http://127.0.0.1:6385".to_owned()
}

fn config_file_url() -> Option<String> {
    let base = std::env::var_os("XDG_CONFIG_HOME").map(std::path::PathBuf::from).or_else(|| {
        std::env::var_os("HOME").map(|home| std::path::PathBuf::from(home).join(".config"))
    })?;
    let text = std::fs::read_to_string(base.join("ferric").join("cli.toml")).ok()?;
    text.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "url").then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// Runs one command and returns what it prints on stdout.
pub async fn execute(options: &GlobalOptions, command: Command) -> anyhow::Result<String> {
    let client = Client::new(
        &resolve_url(options.url.as_deref()),
        options.api_version.as_deref(),
        options.token.clone(),
    );
    let printer = Printer { format: options.format, columns: options.columns.clone() };
    let progress = Progress { live: std::io::stderr().is_terminal() };
    commands::run(&client, &printer, &progress, command).await
}

/// Where `--wait` and `--watch` report while they wait.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Rewrite one line on a terminal instead of printing a line per change.
    pub live: bool,
}

impl Progress {
    pub fn report(&self, line: &str, changed: bool) {
        if self.live {
            eprint!("\r\x1b[2K{line}");
        } else if changed {
            eprintln!("{line}");
        }
    }

    pub fn finish(&self) {
        if self.live {
            eprintln!();
        }
    }
}

/// Writes shell completions for the given clap command.
pub fn completions(shell: clap_complete::Shell, command: &mut clap::Command) -> String {
    let mut buffer = Vec::new();
    let name = command.get_name().to_owned();
    clap_complete::generate(shell, command, name, &mut buffer);
    String::from_utf8_lossy(&buffer).into_owned()
}

//! The commands: arguments (clap) and what each does over the API.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Map, Value};

use crate::client::Client;
use crate::output::{Column, Printer};
use crate::{resources, Command, Progress};

// ------------------------------------------------------------------ args

/// `--wait [SECONDS]`: wait for the operation to finish (0 or no value: no limit).
#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// Wait until the operation finishes, at most SECONDS (no value: no limit).
    #[arg(long, num_args = 0..=1, default_missing_value = "0", value_name = "SECONDS")]
    pub wait: Option<u64>,
}

#[derive(Debug, Clone, Args, Default)]
pub struct NodeFieldArgs {
    /// Unique name.
    #[arg(long)]
    pub name: Option<String>,
    /// driver_info key=value (repeatable).
    #[arg(long = "driver-info", value_name = "KEY=VALUE")]
    pub driver_info: Vec<String>,
    /// properties key=value (repeatable).
    #[arg(long = "property", value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
    /// extra key=value (repeatable).
    #[arg(long = "extra", value_name = "KEY=VALUE")]
    pub extra: Vec<String>,
    /// instance_info key=value (repeatable).
    #[arg(long = "instance-info", value_name = "KEY=VALUE")]
    pub instance_info: Vec<String>,
    #[arg(long = "resource-class")]
    pub resource_class: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    #[arg(long)]
    pub owner: Option<String>,
    #[arg(long)]
    pub lessee: Option<String>,
    #[arg(long = "conductor-group")]
    pub conductor_group: Option<String>,
    #[arg(long = "chassis-uuid")]
    pub chassis_uuid: Option<String>,
    #[arg(long)]
    pub shard: Option<String>,
    /// An interface implementation, INTERFACE=IMPL (e.g. power=ipmitool); repeatable.
    #[arg(long = "interface", value_name = "INTERFACE=IMPL")]
    pub interfaces: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Enrol a node.
    Create {
        #[arg(long)]
        driver: String,
        #[arg(long)]
        uuid: Option<String>,
        #[command(flatten)]
        fields: NodeFieldArgs,
    },
    /// List nodes.
    List {
        /// Show every field.
        #[arg(long)]
        long: bool,
        /// Fields to show (comma separated).
        #[arg(long, value_delimiter = ',')]
        fields: Vec<String>,
        #[arg(long = "provision-state")]
        provision_state: Option<String>,
        #[arg(long)]
        maintenance: Option<bool>,
        #[arg(long)]
        driver: Option<String>,
        #[arg(long = "resource-class")]
        resource_class: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        /// At most this many nodes.
        #[arg(long)]
        limit: Option<u32>,
        /// Sort by KEY[:asc|desc].
        #[arg(long)]
        sort: Option<String>,
        /// Refresh every SECONDS until interrupted.
        #[arg(long, num_args = 0..=1, default_missing_value = "2", value_name = "SECONDS")]
        watch: Option<u64>,
    },
    /// Show a node.
    Show {
        node: String,
        #[arg(long, value_delimiter = ',')]
        fields: Vec<String>,
    },
    /// Change node fields.
    Set {
        node: String,
        #[arg(long)]
        driver: Option<String>,
        #[command(flatten)]
        fields: NodeFieldArgs,
    },
    /// Remove node fields (or keys of their dicts).
    Unset {
        node: String,
        #[arg(long)]
        name: bool,
        #[arg(long = "driver-info", value_name = "KEY")]
        driver_info: Vec<String>,
        #[arg(long = "property", value_name = "KEY")]
        properties: Vec<String>,
        #[arg(long = "extra", value_name = "KEY")]
        extra: Vec<String>,
        #[arg(long = "instance-info", value_name = "KEY")]
        instance_info: Vec<String>,
        #[arg(long = "resource-class")]
        resource_class: bool,
        #[arg(long)]
        description: bool,
        #[arg(long)]
        owner: bool,
        #[arg(long)]
        lessee: bool,
        #[arg(long = "chassis-uuid")]
        chassis_uuid: bool,
    },
    /// Delete nodes.
    Delete {
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// enroll → manageable (verifies the BMC credentials).
    Manage {
        node: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// manageable → available (runs automated cleaning).
    Provide {
        node: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Inspect the hardware (manageable).
    Inspect {
        node: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Manual cleaning with the given steps or a runbook's (manageable).
    Clean {
        node: String,
        /// JSON list of steps, @FILE, or - (stdin).
        #[arg(
            long = "clean-steps",
            required_unless_present = "runbook",
            conflicts_with = "runbook"
        )]
        clean_steps: Option<String>,
        /// Run this runbook's steps (name or UUID).
        #[arg(long)]
        runbook: Option<String>,
        /// Run the steps without booting the ramdisk.
        #[arg(long = "disable-ramdisk")]
        disable_ramdisk: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Service an active node with the given steps or a runbook's.
    Service {
        node: String,
        /// JSON list of steps, @FILE, or - (stdin).
        #[arg(
            long = "service-steps",
            required_unless_present = "runbook",
            conflicts_with = "runbook"
        )]
        service_steps: Option<String>,
        /// Run this runbook's steps (name or UUID).
        #[arg(long)]
        runbook: Option<String>,
        /// Run the steps without booting the ramdisk.
        #[arg(long = "disable-ramdisk")]
        disable_ramdisk: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Deploy (available → active).
    Deploy {
        node: String,
        /// The image: an http(s) URL, or the name or id of an image in the
        /// conductor's image store (`ferric image create`). Sets
        /// `instance_info.image_source`.
        #[arg(long)]
        image: Option<String>,
        /// The image's checksum (`sha256:…`, `sha512:…` or bare hex); not
        /// needed for stored images.
        #[arg(long = "image-checksum")]
        image_checksum: Option<String>,
        /// Config drive: a JSON object, a URL or base64 text, or @FILE.
        #[arg(long = "config-drive")]
        config_drive: Option<String>,
        /// JSON list of deploy steps, or @FILE.
        #[arg(long = "deploy-steps")]
        deploy_steps: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Undeploy (active → cleaning → available).
    Undeploy {
        node: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Redeploy the instance.
    Rebuild {
        node: String,
        #[arg(long = "config-drive")]
        config_drive: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Abort the operation waiting in a wait state.
    Abort { node: String },
    /// Power control.
    #[command(subcommand)]
    Power(PowerCommand),
    /// Boot device.
    #[command(subcommand, name = "boot-device")]
    BootDevice(BootDeviceCommand),
    /// Maintenance mode.
    #[command(subcommand)]
    Maintenance(MaintenanceCommand),
    /// Check each interface's configuration.
    Validate { node: String },
    /// The node's event history.
    History {
        node: String,
        #[arg(long)]
        long: bool,
    },
    /// Tenant VIFs attached to the node's ports.
    #[command(subcommand)]
    Vif(resources::VifCommand),
    /// The node's traits.
    #[command(subcommand, name = "trait")]
    Trait(resources::TraitCommand),
    /// Add traits (`node add trait NODE TRAIT...`).
    #[command(subcommand)]
    Add(resources::AddCommand),
    /// Remove traits (`node remove trait NODE TRAIT...|--all`).
    #[command(subcommand)]
    Remove(resources::RemoveCommand),
    /// BIOS settings.
    #[command(subcommand)]
    Bios(resources::BiosCommand),
    /// Firmware components.
    #[command(subcommand)]
    Firmware(resources::FirmwareCommand),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PowerAction {
    On,
    Off,
    Reboot,
}

#[derive(Debug, Subcommand)]
pub enum PowerCommand {
    On(PowerArgs),
    Off(PowerArgs),
    Reboot(PowerArgs),
}

#[derive(Debug, Args)]
pub struct PowerArgs {
    node: String,
    /// Ask the OS to shut down / reboot (ACPI).
    #[arg(long)]
    soft: bool,
    /// Seconds the BMC gets to reach the state.
    #[arg(long = "power-timeout")]
    power_timeout: Option<u64>,
    #[command(flatten)]
    wait: WaitArgs,
}

#[derive(Debug, Subcommand)]
pub enum BootDeviceCommand {
    /// Set the next boot device.
    Set {
        node: String,
        device: String,
        #[arg(long)]
        persistent: bool,
    },
    /// Show the boot device.
    Show {
        node: String,
        /// Show the supported devices instead.
        #[arg(long)]
        supported: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum MaintenanceCommand {
    Set {
        node: String,
        #[arg(long)]
        reason: Option<String>,
    },
    Unset {
        node: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PortCommand {
    Create {
        address: String,
        #[arg(long)]
        node: String,
        #[arg(long = "local-link-connection", value_name = "KEY=VALUE")]
        local_link_connection: Vec<String>,
        #[arg(long = "pxe-enabled")]
        pxe_enabled: Option<bool>,
        #[arg(long = "physical-network")]
        physical_network: Option<String>,
        #[arg(long = "port-group")]
        portgroup: Option<String>,
        #[arg(long = "extra", value_name = "KEY=VALUE")]
        extra: Vec<String>,
    },
    List {
        #[arg(long)]
        node: Option<String>,
        #[arg(long)]
        address: Option<String>,
        #[arg(long)]
        long: bool,
    },
    Show {
        port: String,
    },
    Set {
        port: String,
        #[arg(long)]
        address: Option<String>,
        #[arg(long = "pxe-enabled")]
        pxe_enabled: Option<bool>,
        #[arg(long = "physical-network")]
        physical_network: Option<String>,
        #[arg(long = "extra", value_name = "KEY=VALUE")]
        extra: Vec<String>,
        #[arg(long = "local-link-connection", value_name = "KEY=VALUE")]
        local_link_connection: Vec<String>,
    },
    Unset {
        port: String,
        #[arg(long = "extra", value_name = "KEY")]
        extra: Vec<String>,
        #[arg(long = "physical-network")]
        physical_network: bool,
    },
    Delete {
        #[arg(required = true)]
        ports: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PortgroupCommand {
    Create {
        #[arg(long)]
        node: String,
        #[arg(long)]
        address: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        mode: Option<String>,
        #[arg(long = "extra", value_name = "KEY=VALUE")]
        extra: Vec<String>,
    },
    List {
        #[arg(long)]
        node: Option<String>,
        #[arg(long)]
        long: bool,
    },
    Show {
        portgroup: String,
    },
    Set {
        portgroup: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        mode: Option<String>,
        #[arg(long = "extra", value_name = "KEY=VALUE")]
        extra: Vec<String>,
    },
    Unset {
        portgroup: String,
        #[arg(long = "extra", value_name = "KEY")]
        extra: Vec<String>,
    },
    Delete {
        #[arg(required = true)]
        portgroups: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChassisCommand {
    Create {
        #[arg(long)]
        description: Option<String>,
        #[arg(long = "extra", value_name = "KEY=VALUE")]
        extra: Vec<String>,
    },
    List {
        #[arg(long)]
        long: bool,
    },
    Show {
        chassis: String,
    },
    Set {
        chassis: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long = "extra", value_name = "KEY=VALUE")]
        extra: Vec<String>,
    },
    Unset {
        chassis: String,
        #[arg(long)]
        description: bool,
        #[arg(long = "extra", value_name = "KEY")]
        extra: Vec<String>,
    },
    Delete {
        #[arg(required = true)]
        chassis: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DriverCommand {
    List {
        #[arg(long)]
        long: bool,
    },
    Show {
        driver: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConductorCommand {
    List {
        #[arg(long)]
        long: bool,
    },
    Show {
        hostname: String,
    },
}

// ------------------------------------------------------------------ helpers

pub(crate) fn key_values(pairs: &[String], what: &str) -> anyhow::Result<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .filter(|(key, _)| !key.is_empty())
                .with_context(|| format!("{what} takes KEY=VALUE, got {pair:?}"))
        })
        .collect()
}

pub(crate) fn object_of(pairs: &[String], what: &str) -> anyhow::Result<Map<String, Value>> {
    Ok(key_values(pairs, what)?.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
}

/// Escapes a key for a JSON pointer.
fn pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

pub(crate) fn add_ops(
    ops: &mut Vec<Value>,
    root: &str,
    pairs: &[String],
    what: &str,
) -> anyhow::Result<()> {
    for (key, value) in key_values(pairs, what)? {
        ops.push(
            json!({"op": "add", "path": format!("/{root}/{}", pointer(&key)), "value": value}),
        );
    }
    Ok(())
}

pub(crate) fn remove_ops(ops: &mut Vec<Value>, root: &str, keys: &[String]) {
    for key in keys {
        ops.push(json!({"op": "remove", "path": format!("/{root}/{}", pointer(key))}));
    }
}

pub(crate) fn replace_op(ops: &mut Vec<Value>, field: &str, value: &Option<String>) {
    if let Some(value) = value {
        ops.push(json!({"op": "add", "path": format!("/{field}"), "value": value}));
    }
}

pub(crate) fn remove_field(ops: &mut Vec<Value>, field: &str, flag: bool) {
    if flag {
        ops.push(json!({"op": "remove", "path": format!("/{field}")}));
    }
}

/// Reads inline JSON, `@FILE`, or `-` (standard input).
pub(crate) fn json_argument(text: &str, what: &str) -> anyhow::Result<Value> {
    let content = match text.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {what} from {path}"))?
        }
        None if text == "-" => std::io::read_to_string(std::io::stdin())
            .with_context(|| format!("reading {what} from standard input"))?,
        None => text.to_owned(),
    };
    serde_json::from_str(&content).with_context(|| format!("{what} must be JSON"))
}

/// A config drive argument: JSON object, or a string (URL / base64), or @FILE.
fn config_drive(text: &str) -> anyhow::Result<Value> {
    let content = match text.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the config drive from {path}"))?,
        None => text.to_owned(),
    };
    Ok(match serde_json::from_str::<Value>(&content) {
        Ok(value @ Value::Object(_)) => value,
        _ => Value::String(content.trim().to_owned()),
    })
}

pub(crate) fn node_path(node: &str) -> String {
    format!("/v1/nodes/{node}")
}

pub(crate) fn columns(fields: &[&str]) -> Vec<Column> {
    fields.iter().map(|field| Column::new(field)).collect()
}

pub(crate) fn to_error(message: String) -> anyhow::Error {
    anyhow::anyhow!(message)
}

// ------------------------------------------------------------------ dispatch

pub(crate) async fn run(
    client: &Client,
    printer: &Printer,
    progress: &Progress,
    command: Command,
) -> anyhow::Result<String> {
    match command {
        Command::Node(command) => node(client, printer, progress, command).await,
        Command::Port(command) => port(client, printer, command).await,
        Command::Portgroup(command) => portgroup(client, printer, command).await,
        Command::Chassis(command) => chassis(client, printer, command).await,
        Command::Driver(command) => driver(client, printer, command).await,
        Command::Conductor(command) => conductor(client, printer, command).await,
        Command::Allocation(command) => {
            resources::allocation(client, printer, progress, command).await
        }
        Command::DeployTemplate(command) => {
            resources::deploy_template(client, printer, command).await
        }
        Command::Runbook(command) => resources::runbook(client, printer, command).await,
        Command::Volume(command) => resources::volume(client, printer, command).await,
        Command::Inspection(command) => resources::inspection(client, printer, command).await,
    }
}

const NODE_LIST: &[&str] =
    &["uuid", "name", "instance_uuid", "power_state", "provision_state", "maintenance"];
const NODE_LONG: &[&str] = &[
    "uuid",
    "name",
    "driver",
    "resource_class",
    "instance_uuid",
    "power_state",
    "provision_state",
    "target_provision_state",
    "maintenance",
    "maintenance_reason",
    "last_error",
    "conductor",
    "traits",
    "owner",
    "created_at",
    "updated_at",
];

fn node_fields_body(fields: &NodeFieldArgs, body: &mut Map<String, Value>) -> anyhow::Result<()> {
    let strings = [
        ("name", &fields.name),
        ("resource_class", &fields.resource_class),
        ("description", &fields.description),
        ("owner", &fields.owner),
        ("lessee", &fields.lessee),
        ("conductor_group", &fields.conductor_group),
        ("chassis_uuid", &fields.chassis_uuid),
        ("shard", &fields.shard),
    ];
    for (key, value) in strings {
        if let Some(value) = value {
            body.insert(key.into(), Value::String(value.clone()));
        }
    }
    for (key, pairs, what) in [
        ("driver_info", &fields.driver_info, "--driver-info"),
        ("properties", &fields.properties, "--property"),
        ("extra", &fields.extra, "--extra"),
        ("instance_info", &fields.instance_info, "--instance-info"),
    ] {
        if !pairs.is_empty() {
            body.insert(key.into(), Value::Object(object_of(pairs, what)?));
        }
    }
    for (interface, implementation) in key_values(&fields.interfaces, "--interface")? {
        body.insert(format!("{interface}_interface"), Value::String(implementation));
    }
    Ok(())
}

async fn node(
    client: &Client,
    printer: &Printer,
    progress: &Progress,
    command: NodeCommand,
) -> anyhow::Result<String> {
    match command {
        NodeCommand::Create { driver, uuid, fields } => {
            let mut body = Map::new();
            body.insert("driver".into(), Value::String(driver));
            if let Some(uuid) = uuid {
                body.insert("uuid".into(), Value::String(uuid));
            }
            node_fields_body(&fields, &mut body)?;
            let created = client.post("/v1/nodes", &Value::Object(body)).await?;
            printer.show(&created).map_err(to_error)
        }
        NodeCommand::List {
            long,
            fields,
            provision_state,
            maintenance,
            driver,
            resource_class,
            owner,
            limit,
            sort,
            watch,
        } => {
            let mut query: Vec<(String, String)> = Vec::new();
            let shown: Vec<String> = if !fields.is_empty() {
                query.push(("fields".into(), fields.join(",")));
                fields.clone()
            } else if long {
                query.push(("detail".into(), "true".into()));
                NODE_LONG.iter().map(|f| (*f).to_owned()).collect()
            } else {
                NODE_LIST.iter().map(|f| (*f).to_owned()).collect()
            };
            for (key, value) in [
                ("provision_state", provision_state),
                ("maintenance", maintenance.map(|m| m.to_string())),
                ("driver", driver),
                ("resource_class", resource_class),
                ("owner", owner),
                ("limit", limit.map(|l| l.to_string())),
            ] {
                if let Some(value) = value {
                    query.push((key.into(), value));
                }
            }
            if let Some(sort) = sort {
                let (key, dir) = sort.split_once(':').unwrap_or((&sort, "asc"));
                query.push(("sort_key".into(), key.into()));
                query.push(("sort_dir".into(), dir.into()));
            }
            let encoded: Vec<String> =
                query.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
            let path = if encoded.is_empty() {
                "/v1/nodes".to_owned()
            } else {
                format!("/v1/nodes?{}", encoded.join("&"))
            };
            let columns: Vec<Column> = shown.iter().map(|field| Column::new(field)).collect();
            let fetch = || async {
                if limit.is_some() {
                    Ok::<_, anyhow::Error>(
                        client.get(&path).await?["nodes"].as_array().cloned().unwrap_or_default(),
                    )
                } else {
                    Ok(client.list_all(&path, "nodes").await?)
                }
            };
            match watch {
                None => printer.list(&columns, &fetch().await?).map_err(to_error),
                Some(seconds) => loop {
                    let rendered = printer.list(&columns, &fetch().await?).map_err(to_error)?;
                    print!("\x1b[2J\x1b[H{rendered}");
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => return Ok(String::new()),
                        _ = tokio::time::sleep(Duration::from_secs(seconds.max(1))) => {}
                    }
                },
            }
        }
        NodeCommand::Show { node, fields } => {
            let path = if fields.is_empty() {
                node_path(&node)
            } else {
                format!("{}?fields={}", node_path(&node), fields.join(","))
            };
            printer.show(&client.get(&path).await?).map_err(to_error)
        }
        NodeCommand::Set { node, driver, fields } => {
            let mut ops = Vec::new();
            replace_op(&mut ops, "driver", &driver);
            for (field, value) in [
                ("name", &fields.name),
                ("resource_class", &fields.resource_class),
                ("description", &fields.description),
                ("owner", &fields.owner),
                ("lessee", &fields.lessee),
                ("conductor_group", &fields.conductor_group),
                ("chassis_uuid", &fields.chassis_uuid),
                ("shard", &fields.shard),
            ] {
                replace_op(&mut ops, field, value);
            }
            add_ops(&mut ops, "driver_info", &fields.driver_info, "--driver-info")?;
            add_ops(&mut ops, "properties", &fields.properties, "--property")?;
            add_ops(&mut ops, "extra", &fields.extra, "--extra")?;
            add_ops(&mut ops, "instance_info", &fields.instance_info, "--instance-info")?;
            for (interface, implementation) in key_values(&fields.interfaces, "--interface")? {
                ops.push(json!({"op": "add", "path": format!("/{interface}_interface"), "value": implementation}));
            }
            if ops.is_empty() {
                bail!("nothing to set: give at least one field");
            }
            client.patch(&node_path(&node), &Value::Array(ops)).await?;
            Ok(String::new())
        }
        NodeCommand::Unset {
            node,
            name,
            driver_info,
            properties,
            extra,
            instance_info,
            resource_class,
            description,
            owner,
            lessee,
            chassis_uuid,
        } => {
            let mut ops = Vec::new();
            remove_field(&mut ops, "name", name);
            remove_field(&mut ops, "resource_class", resource_class);
            remove_field(&mut ops, "description", description);
            remove_field(&mut ops, "owner", owner);
            remove_field(&mut ops, "lessee", lessee);
            remove_field(&mut ops, "chassis_uuid", chassis_uuid);
            remove_ops(&mut ops, "driver_info", &driver_info);
            remove_ops(&mut ops, "properties", &properties);
            remove_ops(&mut ops, "extra", &extra);
            remove_ops(&mut ops, "instance_info", &instance_info);
            if ops.is_empty() {
                bail!("nothing to unset: give at least one field");
            }
            client.patch(&node_path(&node), &Value::Array(ops)).await?;
            Ok(String::new())
        }
        NodeCommand::Delete { nodes } => delete_each(client, "node", "/v1/nodes", &nodes).await,
        NodeCommand::Manage { node, wait } => {
            provision(client, progress, &node, "manage", Map::new(), wait.wait, &["manageable"])
                .await
        }
        NodeCommand::Provide { node, wait } => {
            provision(client, progress, &node, "provide", Map::new(), wait.wait, &["available"])
                .await
        }
        NodeCommand::Inspect { node, wait } => {
            provision(client, progress, &node, "inspect", Map::new(), wait.wait, &["manageable"])
                .await
        }
        NodeCommand::Clean { node, clean_steps, runbook, disable_ramdisk, wait } => {
            let body =
                steps_body("clean_steps", clean_steps, "--clean-steps", runbook, disable_ramdisk)?;
            provision(client, progress, &node, "clean", body, wait.wait, &["manageable"]).await
        }
        NodeCommand::Service { node, service_steps, runbook, disable_ramdisk, wait } => {
            let body = steps_body(
                "service_steps",
                service_steps,
                "--service-steps",
                runbook,
                disable_ramdisk,
            )?;
            provision(client, progress, &node, "service", body, wait.wait, &["active"]).await
        }
        NodeCommand::Vif(command) => resources::node_vif(client, printer, command).await,
        NodeCommand::Trait(command) => resources::node_traits(client, printer, command).await,
        NodeCommand::Add(command) => resources::node_add(client, command).await,
        NodeCommand::Remove(command) => resources::node_remove(client, command).await,
        NodeCommand::Bios(command) => resources::node_bios(client, printer, command).await,
        NodeCommand::Firmware(command) => resources::node_firmware(client, printer, command).await,
        NodeCommand::Deploy {
            node,
            image,
            image_checksum,
            config_drive: drive,
            deploy_steps,
            wait,
        } => {
            let mut ops = Vec::new();
            if let Some(image) = image {
                ops.push(
                    json!({"op": "add", "path": "/instance_info/image_source", "value": image}),
                );
                // A checksum left from an earlier image must not apply to this one.
                ops.push(match image_checksum {
                    Some(checksum) => {
                        json!({"op": "add", "path": "/instance_info/image_checksum", "value": checksum})
                    }
                    None => json!({"op": "add", "path": "/instance_info/image_checksum", "value": null}),
                });
            } else if let Some(checksum) = image_checksum {
                ops.push(json!({"op": "add", "path": "/instance_info/image_checksum", "value": checksum}));
            }
            if !ops.is_empty() {
                client.patch(&node_path(&node), &Value::Array(ops)).await?;
            }
            let mut body = Map::new();
            if let Some(drive) = drive {
                body.insert("configdrive".into(), config_drive(&drive)?);
            }
            if let Some(steps) = deploy_steps {
                body.insert("deploy_steps".into(), json_argument(&steps, "--deploy-steps")?);
            }
            provision(client, progress, &node, "active", body, wait.wait, &["active"]).await
        }
        NodeCommand::Undeploy { node, wait } => {
            provision(
                client,
                progress,
                &node,
                "deleted",
                Map::new(),
                wait.wait,
                &["available", "manageable"],
            )
            .await
        }
        NodeCommand::Rebuild { node, config_drive: drive, wait } => {
            let mut body = Map::new();
            if let Some(drive) = drive {
                body.insert("configdrive".into(), config_drive(&drive)?);
            }
            provision(client, progress, &node, "rebuild", body, wait.wait, &["active"]).await
        }
        NodeCommand::Abort { node } => {
            provision(client, progress, &node, "abort", Map::new(), None, &[]).await
        }
        NodeCommand::Power(command) => {
            let (args, target) = match command {
                PowerCommand::On(args) => (args, "power on"),
                PowerCommand::Off(args) => {
                    let target = if args.soft { "soft power off" } else { "power off" };
                    (args, target)
                }
                PowerCommand::Reboot(args) => {
                    let target = if args.soft { "soft rebooting" } else { "rebooting" };
                    (args, target)
                }
            };
            let mut body = json!({"target": target});
            if let Some(timeout) = args.power_timeout {
                body["timeout"] = json!(timeout);
            }
            client.put(&format!("{}/states/power", node_path(&args.node)), &body).await?;
            if let Some(limit) = args.wait.wait {
                let expected = if target.contains("off") { "power off" } else { "power on" };
                wait_power(client, progress, &args.node, expected, limit).await?;
            }
            Ok(String::new())
        }
        NodeCommand::BootDevice(BootDeviceCommand::Set { node, device, persistent }) => {
            client
                .put(
                    &format!("{}/management/boot_device", node_path(&node)),
                    &json!({"boot_device": device, "persistent": persistent}),
                )
                .await?;
            Ok(String::new())
        }
        NodeCommand::BootDevice(BootDeviceCommand::Show { node, supported }) => {
            let path = if supported {
                format!("{}/management/boot_device/supported", node_path(&node))
            } else {
                format!("{}/management/boot_device", node_path(&node))
            };
            printer.show(&client.get(&path).await?).map_err(to_error)
        }
        NodeCommand::Maintenance(MaintenanceCommand::Set { node, reason }) => {
            let body = match reason {
                Some(reason) => json!({"reason": reason}),
                None => json!({}),
            };
            client.put(&format!("{}/maintenance", node_path(&node)), &body).await?;
            Ok(String::new())
        }
        NodeCommand::Maintenance(MaintenanceCommand::Unset { node }) => {
            client.delete(&format!("{}/maintenance", node_path(&node))).await?;
            Ok(String::new())
        }
        NodeCommand::Validate { node } => {
            let report = client.get(&format!("{}/validate", node_path(&node))).await?;
            let rows: Vec<Value> = report
                .as_object()
                .map(|map| {
                    map.iter()
                        .map(|(interface, result)| {
                            json!({"interface": interface, "result": result["result"], "reason": result["reason"]})
                        })
                        .collect()
                })
                .unwrap_or_default();
            printer.list(&columns(&["interface", "result", "reason"]), &rows).map_err(to_error)
        }
        NodeCommand::History { node, long } => {
            let path =
                format!("{}/history{}", node_path(&node), if long { "?detail=true" } else { "" });
            let events = client.list_all(&path, "history").await?;
            let fields: &[&str] = if long {
                &["uuid", "created_at", "severity", "event_type", "conductor", "event"]
            } else {
                &["uuid", "created_at", "severity", "event"]
            };
            printer.list(&columns(fields), &events).map_err(to_error)
        }
    }
}

/// The body of a clean or service request: steps, or a runbook.
fn steps_body(
    key: &str,
    steps: Option<String>,
    what: &str,
    runbook: Option<String>,
    disable_ramdisk: bool,
) -> anyhow::Result<Map<String, Value>> {
    let mut body = Map::new();
    if let Some(steps) = steps {
        body.insert(key.into(), json_argument(&steps, what)?);
    }
    if let Some(runbook) = runbook {
        body.insert("runbook".into(), Value::String(runbook));
    }
    if disable_ramdisk {
        body.insert("disable_ramdisk".into(), Value::Bool(true));
    }
    Ok(body)
}

pub(crate) fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b',' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

const FAILED_STATES: &[&str] = &[
    "deploy failed",
    "clean failed",
    "inspect failed",
    "adopt failed",
    "rescue failed",
    "unrescue failed",
    "service failed",
    "error",
    "enroll",
];

/// Requests a verb; with `wait`, follows the node until it reaches one of
/// `done_states` (success) or a failure state (error with `last_error`).
async fn provision(
    client: &Client,
    progress: &Progress,
    node: &str,
    verb: &str,
    mut body: Map<String, Value>,
    wait: Option<u64>,
    done_states: &[&str],
) -> anyhow::Result<String> {
    let before = client.get(&format!("{}?fields=provision_state", node_path(node))).await?;
    let starting = before["provision_state"].as_str().unwrap_or("").to_owned();
    body.insert("target".into(), Value::String(verb.into()));
    client.put(&format!("{}/states/provision", node_path(node)), &Value::Object(body)).await?;
    let Some(limit) = wait else {
        return Ok(String::new());
    };
    let started = Instant::now();
    let mut last_state = starting.clone();
    progress.report(&format!("[{:>6.1}s] {node}: {starting}", 0.0), true);
    loop {
        let current = client.get(&node_path(node)).await?;
        let state = current["provision_state"].as_str().unwrap_or("").to_owned();
        let idle = current["reservation"].is_null() && current["target_provision_state"].is_null();
        let percent = current["driver_internal_info"]["deploy_progress"].as_f64();
        let mut line = format!("[{:>6.1}s] {node}: {state}", started.elapsed().as_secs_f64());
        if let Some(percent) = percent {
            line.push_str(&format!(" ({percent:.0}% written)"));
        }
        progress.report(&line, state != last_state);
        last_state = state.clone();
        if done_states.contains(&state.as_str()) && idle {
            progress.finish();
            return Ok(String::new());
        }
        if FAILED_STATES.contains(&state.as_str())
            && state != starting
            && current["reservation"].is_null()
        {
            progress.finish();
            let error = current["last_error"].as_str().unwrap_or("no error recorded");
            bail!("node {node} failed: {state}: {error}");
        }
        if limit > 0 && started.elapsed() > Duration::from_secs(limit) {
            progress.finish();
            bail!("timed out after {limit} s waiting for node {node} (now \"{state}\")");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn wait_power(
    client: &Client,
    progress: &Progress,
    node: &str,
    expected: &str,
    limit: u64,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let current = client.get(&node_path(node)).await?;
        let state = current["power_state"].as_str().unwrap_or("None");
        progress
            .report(&format!("[{:>6.1}s] {node}: {state}", started.elapsed().as_secs_f64()), false);
        if current["target_power_state"].is_null() {
            progress.finish();
            if state == expected {
                return Ok(());
            }
            let error = current["last_error"].as_str().unwrap_or("no error recorded");
            bail!("node {node} is {state}, not {expected}: {error}");
        }
        if limit > 0 && started.elapsed() > Duration::from_secs(limit) {
            progress.finish();
            bail!("timed out after {limit} s waiting for node {node} to be {expected}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// ------------------------------------------------------------------ ports etc.

pub(crate) async fn resolve_node_uuid(client: &Client, node: &str) -> anyhow::Result<String> {
    let found = client.get(&format!("{}?fields=uuid", node_path(node))).await?;
    found["uuid"].as_str().map(str::to_owned).context("the node has no uuid")
}

pub(crate) async fn patch_and_done(
    client: &Client,
    path: &str,
    ops: Vec<Value>,
) -> anyhow::Result<String> {
    if ops.is_empty() {
        bail!("nothing to change: give at least one field");
    }
    client.patch(path, &Value::Array(ops)).await?;
    Ok(String::new())
}

/// Deletes each resource, going on after a failure; fails at the end with
/// every failure (as `openstack baremetal … delete` does).
pub(crate) async fn delete_each(
    client: &Client,
    kind: &str,
    collection: &str,
    idents: &[String],
) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut failed = Vec::new();
    for ident in idents {
        match client.delete(&format!("{collection}/{ident}")).await {
            Ok(_) => out.push_str(&format!("Deleted {kind} {ident}\n")),
            Err(error) => failed.push(format!("Failed to delete {kind} {ident}: {error}")),
        }
    }
    if failed.is_empty() {
        Ok(out)
    } else {
        out.push_str(&failed.join("\n"));
        bail!(out)
    }
}

async fn delete_all(
    client: &Client,
    kind: &str,
    collection: &str,
    idents: &[String],
) -> anyhow::Result<String> {
    let mut out = String::new();
    for ident in idents {
        client
            .delete(&format!("/v1/{collection}/{ident}"))
            .await
            .with_context(|| format!("Failed to delete {kind} {ident}"))?;
        out.push_str(&format!("Deleted {kind} {ident}\n"));
    }
    Ok(out)
}

async fn port(client: &Client, printer: &Printer, command: PortCommand) -> anyhow::Result<String> {
    match command {
        PortCommand::Create {
            address,
            node,
            local_link_connection,
            pxe_enabled,
            physical_network,
            portgroup,
            extra,
        } => {
            let mut body =
                json!({"address": address, "node_uuid": resolve_node_uuid(client, &node).await?});
            if !local_link_connection.is_empty() {
                body["local_link_connection"] =
                    Value::Object(object_of(&local_link_connection, "--local-link-connection")?);
            }
            if let Some(flag) = pxe_enabled {
                body["pxe_enabled"] = json!(flag);
            }
            if let Some(network) = physical_network {
                body["physical_network"] = json!(network);
            }
            if let Some(group) = portgroup {
                body["portgroup_uuid"] = json!(group);
            }
            if !extra.is_empty() {
                body["extra"] = Value::Object(object_of(&extra, "--extra")?);
            }
            printer.show(&client.post("/v1/ports", &body).await?).map_err(to_error)
        }
        PortCommand::List { node, address, long } => {
            let mut query = vec![if long { "detail=true".to_owned() } else { String::new() }];
            if let Some(node) = node {
                query.push(format!("node={}", encode(&node)));
            }
            if let Some(address) = address {
                query.push(format!("address={}", encode(&address)));
            }
            query.retain(|part| !part.is_empty());
            let ports = client.list_all(&format!("/v1/ports?{}", query.join("&")), "ports").await?;
            let fields: &[&str] = if long {
                &[
                    "uuid",
                    "address",
                    "node_uuid",
                    "portgroup_uuid",
                    "pxe_enabled",
                    "physical_network",
                    "local_link_connection",
                    "extra",
                ]
            } else {
                &["uuid", "address"]
            };
            printer.list(&columns(fields), &ports).map_err(to_error)
        }
        PortCommand::Show { port } => {
            printer.show(&client.get(&format!("/v1/ports/{port}")).await?).map_err(to_error)
        }
        PortCommand::Set {
            port,
            address,
            pxe_enabled,
            physical_network,
            extra,
            local_link_connection,
        } => {
            let mut ops = Vec::new();
            replace_op(&mut ops, "address", &address);
            if let Some(flag) = pxe_enabled {
                ops.push(json!({"op": "replace", "path": "/pxe_enabled", "value": flag}));
            }
            replace_op(&mut ops, "physical_network", &physical_network);
            add_ops(&mut ops, "extra", &extra, "--extra")?;
            add_ops(
                &mut ops,
                "local_link_connection",
                &local_link_connection,
                "--local-link-connection",
            )?;
            patch_and_done(client, &format!("/v1/ports/{port}"), ops).await
        }
        PortCommand::Unset { port, extra, physical_network } => {
            let mut ops = Vec::new();
            remove_ops(&mut ops, "extra", &extra);
            remove_field(&mut ops, "physical_network", physical_network);
            patch_and_done(client, &format!("/v1/ports/{port}"), ops).await
        }
        PortCommand::Delete { ports } => delete_all(client, "port", "ports", &ports).await,
    }
}

async fn portgroup(
    client: &Client,
    printer: &Printer,
    command: PortgroupCommand,
) -> anyhow::Result<String> {
    match command {
        PortgroupCommand::Create { node, address, name, mode, extra } => {
            let mut body = json!({"node_uuid": resolve_node_uuid(client, &node).await?});
            for (key, value) in [("address", address), ("name", name), ("mode", mode)] {
                if let Some(value) = value {
                    body[key] = json!(value);
                }
            }
            if !extra.is_empty() {
                body["extra"] = Value::Object(object_of(&extra, "--extra")?);
            }
            printer.show(&client.post("/v1/portgroups", &body).await?).map_err(to_error)
        }
        PortgroupCommand::List { node, long } => {
            let mut query = Vec::new();
            if long {
                query.push("detail=true".to_owned());
            }
            if let Some(node) = node {
                query.push(format!("node={}", encode(&node)));
            }
            let groups = client
                .list_all(&format!("/v1/portgroups?{}", query.join("&")), "portgroups")
                .await?;
            let fields: &[&str] = if long {
                &[
                    "uuid",
                    "name",
                    "address",
                    "node_uuid",
                    "mode",
                    "standalone_ports_supported",
                    "extra",
                ]
            } else {
                &["uuid", "address", "name"]
            };
            printer.list(&columns(fields), &groups).map_err(to_error)
        }
        PortgroupCommand::Show { portgroup } => printer
            .show(&client.get(&format!("/v1/portgroups/{portgroup}")).await?)
            .map_err(to_error),
        PortgroupCommand::Set { portgroup, name, mode, extra } => {
            let mut ops = Vec::new();
            replace_op(&mut ops, "name", &name);
            replace_op(&mut ops, "mode", &mode);
            add_ops(&mut ops, "extra", &extra, "--extra")?;
            patch_and_done(client, &format!("/v1/portgroups/{portgroup}"), ops).await
        }
        PortgroupCommand::Unset { portgroup, extra } => {
            let mut ops = Vec::new();
            remove_ops(&mut ops, "extra", &extra);
            patch_and_done(client, &format!("/v1/portgroups/{portgroup}"), ops).await
        }
        PortgroupCommand::Delete { portgroups } => {
            delete_all(client, "portgroup", "portgroups", &portgroups).await
        }
    }
}

async fn chassis(
    client: &Client,
    printer: &Printer,
    command: ChassisCommand,
) -> anyhow::Result<String> {
    match command {
        ChassisCommand::Create { description, extra } => {
            let mut body = json!({});
            if let Some(description) = description {
                body["description"] = json!(description);
            }
            if !extra.is_empty() {
                body["extra"] = Value::Object(object_of(&extra, "--extra")?);
            }
            printer.show(&client.post("/v1/chassis", &body).await?).map_err(to_error)
        }
        ChassisCommand::List { long } => {
            let all = client
                .list_all(
                    &format!("/v1/chassis{}", if long { "?detail=true" } else { "" }),
                    "chassis",
                )
                .await?;
            let fields: &[&str] =
                if long { &["uuid", "description", "extra"] } else { &["uuid", "description"] };
            printer.list(&columns(fields), &all).map_err(to_error)
        }
        ChassisCommand::Show { chassis } => {
            printer.show(&client.get(&format!("/v1/chassis/{chassis}")).await?).map_err(to_error)
        }
        ChassisCommand::Set { chassis, description, extra } => {
            let mut ops = Vec::new();
            replace_op(&mut ops, "description", &description);
            add_ops(&mut ops, "extra", &extra, "--extra")?;
            patch_and_done(client, &format!("/v1/chassis/{chassis}"), ops).await
        }
        ChassisCommand::Unset { chassis, description, extra } => {
            let mut ops = Vec::new();
            remove_field(&mut ops, "description", description);
            remove_ops(&mut ops, "extra", &extra);
            patch_and_done(client, &format!("/v1/chassis/{chassis}"), ops).await
        }
        ChassisCommand::Delete { chassis } => {
            delete_all(client, "chassis", "chassis", &chassis).await
        }
    }
}

async fn driver(
    client: &Client,
    printer: &Printer,
    command: DriverCommand,
) -> anyhow::Result<String> {
    match command {
        DriverCommand::List { long } => {
            let drivers = client
                .get(&format!("/v1/drivers{}", if long { "?detail=true" } else { "" }))
                .await?;
            let rows = drivers["drivers"].as_array().cloned().unwrap_or_default();
            let fields: &[&str] = if long {
                &[
                    "name",
                    "hosts",
                    "default_boot_interface",
                    "default_deploy_interface",
                    "default_management_interface",
                    "default_power_interface",
                ]
            } else {
                &["name", "hosts"]
            };
            let rows: Vec<Value> = rows
                .into_iter()
                .map(|mut row| {
                    if let Some(hosts) = row["hosts"].as_array() {
                        let joined =
                            hosts.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ");
                        row["hosts"] = Value::String(joined);
                    }
                    row
                })
                .collect();
            let mut columns = columns(fields);
            if let Some(first) = columns.first_mut() {
                first.heading = "Supported driver(s)".into();
            }
            if let Some(hosts) = columns.get_mut(1) {
                hosts.heading = "Active host(s)".into();
            }
            printer.list(&columns, &rows).map_err(to_error)
        }
        DriverCommand::Show { driver } => {
            printer.show(&client.get(&format!("/v1/drivers/{driver}")).await?).map_err(to_error)
        }
    }
}

async fn conductor(
    client: &Client,
    printer: &Printer,
    command: ConductorCommand,
) -> anyhow::Result<String> {
    match command {
        ConductorCommand::List { long } => {
            let all = client
                .list_all(
                    &format!("/v1/conductors{}", if long { "?detail=true" } else { "" }),
                    "conductors",
                )
                .await?;
            let fields: &[&str] = if long {
                &["hostname", "conductor_group", "alive", "drivers", "created_at", "updated_at"]
            } else {
                &["hostname", "conductor_group", "alive"]
            };
            printer.list(&columns(fields), &all).map_err(to_error)
        }
        ConductorCommand::Show { hostname } => printer
            .show(&client.get(&format!("/v1/conductors/{hostname}")).await?)
            .map_err(to_error),
    }
}

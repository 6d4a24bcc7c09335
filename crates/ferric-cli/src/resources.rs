//! Commands for the resources beyond nodes, ports and chassis: allocations,
//! deploy templates, runbooks, volume connectors and targets, inspection
//! rules, and the node sub-resources (VIFs, traits, BIOS settings, firmware
//! components). Same shapes as `openstack baremetal …`, same output
//! machinery as the node commands.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use crate::client::Client;
use crate::commands::{
    add_ops, columns, delete_each, encode, json_argument, node_path, object_of, patch_and_done,
    remove_field, remove_ops, replace_op, resolve_node_uuid, to_error, WaitArgs,
};
use crate::output::{Column, Printer};
use crate::Progress;

// ------------------------------------------------------------------ shared

/// `--limit`, `--marker`, `--sort` of a listing.
#[derive(Debug, Clone, Args, Default)]
pub struct PageArgs {
    /// At most this many items (one page).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Start after this UUID (the last one of a previous page).
    #[arg(long)]
    pub marker: Option<String>,
    /// Sort by KEY[:asc|desc].
    #[arg(long)]
    pub sort: Option<String>,
}

impl PageArgs {
    fn push(&self, query: &mut Vec<(String, String)>) {
        if let Some(limit) = self.limit {
            query.push(("limit".into(), limit.to_string()));
        }
        if let Some(marker) = &self.marker {
            query.push(("marker".into(), marker.clone()));
        }
        if let Some(sort) = &self.sort {
            let (key, dir) = sort.split_once(':').unwrap_or((sort, "asc"));
            query.push(("sort_key".into(), key.into()));
            query.push(("sort_dir".into(), dir.into()));
        }
    }
}

fn with_query(path: &str, query: &[(String, String)]) -> String {
    if query.is_empty() {
        return path.to_owned();
    }
    let encoded: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
    format!("{path}?{}", encoded.join("&"))
}

/// One page with `--limit`, every page otherwise.
async fn fetch(
    client: &Client,
    path: &str,
    key: &str,
    limit: Option<u32>,
) -> anyhow::Result<Vec<Value>> {
    if limit.is_some() {
        Ok(client.get(path).await?[key].as_array().cloned().unwrap_or_default())
    } else {
        Ok(client.list_all(path, key).await?)
    }
}

async fn show(client: &Client, printer: &Printer, path: &str) -> anyhow::Result<String> {
    printer.show(&client.get(path).await?).map_err(to_error)
}

fn insert_string(body: &mut Map<String, Value>, key: &str, value: Option<String>) {
    if let Some(value) = value {
        body.insert(key.into(), Value::String(value));
    }
}

fn insert_extra(body: &mut Map<String, Value>, extra: &[String]) -> anyhow::Result<()> {
    if !extra.is_empty() {
        body.insert("extra".into(), Value::Object(object_of(extra, "--extra")?));
    }
    Ok(())
}

/// `op add` of any JSON value.
fn set_value(ops: &mut Vec<Value>, field: &str, value: Option<Value>) {
    if let Some(value) = value {
        ops.push(json!({"op": "add", "path": format!("/{field}"), "value": value}));
    }
}

// ------------------------------------------------------------------ allocations

#[derive(Debug, Subcommand)]
pub enum AllocationCommand {
    /// Request a node of a resource class with traits, or (with --node)
    /// record an allocation for a node that is already deployed.
    Create {
        #[arg(long = "resource-class")]
        resource_class: Option<String>,
        /// A trait the node must have (repeatable).
        #[arg(long = "trait", value_name = "TRAIT")]
        traits: Vec<String>,
        /// Only consider this node, by name or UUID (repeatable).
        #[arg(long = "candidate-node", value_name = "NODE")]
        candidate_nodes: Vec<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        uuid: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        /// extra key=value (repeatable).
        #[arg(long = "extra", value_name = "KEY=VALUE")]
        extra: Vec<String>,
        /// Backfill: the deployed node this allocation is for.
        #[arg(long)]
        node: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// List allocations.
    List {
        #[arg(long)]
        state: Option<String>,
        /// Only the allocation of this node (name or UUID).
        #[arg(long)]
        node: Option<String>,
        #[arg(long = "resource-class")]
        resource_class: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        /// Show every field.
        #[arg(long)]
        long: bool,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show an allocation (by name or UUID).
    Show { allocation: String },
    /// Change an allocation's name or extra.
    Set {
        allocation: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long = "extra", value_name = "KEY=VALUE")]
        extra: Vec<String>,
    },
    /// Remove an allocation's name or extra keys.
    Unset {
        allocation: String,
        #[arg(long)]
        name: bool,
        #[arg(long = "extra", value_name = "KEY")]
        extra: Vec<String>,
    },
    /// Delete allocations (frees their nodes).
    Delete {
        #[arg(required = true)]
        allocations: Vec<String>,
    },
}

const ALLOCATION_LIST: &[&str] = &["uuid", "name", "resource_class", "state", "node_uuid"];
const ALLOCATION_LONG: &[&str] = &[
    "uuid",
    "name",
    "resource_class",
    "state",
    "node_uuid",
    "last_error",
    "traits",
    "candidate_nodes",
    "owner",
    "extra",
    "created_at",
    "updated_at",
];

pub(crate) async fn allocation(
    client: &Client,
    printer: &Printer,
    progress: &Progress,
    command: AllocationCommand,
) -> anyhow::Result<String> {
    match command {
        AllocationCommand::Create {
            resource_class,
            traits,
            candidate_nodes,
            name,
            uuid,
            owner,
            extra,
            node,
            wait,
        } => {
            let mut body = Map::new();
            insert_string(&mut body, "resource_class", resource_class);
            insert_string(&mut body, "name", name);
            insert_string(&mut body, "uuid", uuid);
            insert_string(&mut body, "owner", owner);
            insert_string(&mut body, "node", node);
            if !traits.is_empty() {
                body.insert("traits".into(), json!(traits));
            }
            if !candidate_nodes.is_empty() {
                body.insert("candidate_nodes".into(), json!(candidate_nodes));
            }
            insert_extra(&mut body, &extra)?;
            let created = client.post("/v1/allocations", &Value::Object(body)).await?;
            let shown = match wait.wait {
                None => created,
                Some(limit) => {
                    let ident = created["uuid"].as_str().context("the allocation has no uuid")?;
                    wait_allocation(client, progress, ident, limit).await?
                }
            };
            printer.show(&shown).map_err(to_error)
        }
        AllocationCommand::List { state, node, resource_class, owner, long, page } => {
            let mut query = Vec::new();
            for (key, value) in [
                ("state", state),
                ("node", node),
                ("resource_class", resource_class),
                ("owner", owner),
            ] {
                if let Some(value) = value {
                    query.push((key.to_owned(), value));
                }
            }
            page.push(&mut query);
            let path = with_query("/v1/allocations", &query);
            let all = fetch(client, &path, "allocations", page.limit).await?;
            let fields = if long { ALLOCATION_LONG } else { ALLOCATION_LIST };
            printer.list(&columns(fields), &all).map_err(to_error)
        }
        AllocationCommand::Show { allocation } => {
            show(client, printer, &format!("/v1/allocations/{allocation}")).await
        }
        AllocationCommand::Set { allocation, name, extra } => {
            let mut ops = Vec::new();
            replace_op(&mut ops, "name", &name);
            add_ops(&mut ops, "extra", &extra, "--extra")?;
            patch_and_done(client, &format!("/v1/allocations/{allocation}"), ops).await
        }
        AllocationCommand::Unset { allocation, name, extra } => {
            let mut ops = Vec::new();
            remove_field(&mut ops, "name", name);
            remove_ops(&mut ops, "extra", &extra);
            patch_and_done(client, &format!("/v1/allocations/{allocation}"), ops).await
        }
        AllocationCommand::Delete { allocations } => {
            delete_each(client, "allocation", "/v1/allocations", &allocations).await
        }
    }
}

/// Follows an allocation until it leaves `allocating`; an allocation that
/// ends in `error` fails with its `last_error`.
async fn wait_allocation(
    client: &Client,
    progress: &Progress,
    ident: &str,
    limit: u64,
) -> anyhow::Result<Value> {
    let started = Instant::now();
    loop {
        let current = client.get(&format!("/v1/allocations/{ident}")).await?;
        let state = current["state"].as_str().unwrap_or("").to_owned();
        progress.report(
            &format!("[{:>6.1}s] allocation {ident}: {state}", started.elapsed().as_secs_f64()),
            false,
        );
        match state.as_str() {
            "allocating" => {}
            "error" => {
                progress.finish();
                // Ironic's last_error already names the allocation.
                match current["last_error"].as_str() {
                    Some(error) => bail!("{error}"),
                    None => bail!("Allocation {ident} failed: no error recorded"),
                }
            }
            _ => {
                progress.finish();
                return Ok(current);
            }
        }
        if limit > 0 && started.elapsed() > Duration::from_secs(limit) {
            progress.finish();
            bail!("timed out after {limit} s waiting for allocation {ident} (still allocating)");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// ------------------------------------------------------------------ deploy templates

#[derive(Debug, Subcommand)]
pub enum DeployTemplateCommand {
    /// Create a deploy template (NAME is a trait, e.g. CUSTOM_RAID1).
    Create {
        name: String,
        /// JSON list of deploy steps (interface, step, args, priority), @FILE, or - (stdin).
        #[arg(long)]
        steps: String,
        #[arg(long)]
        uuid: Option<String>,
        #[arg(long = "extra", value_name = "KEY=VALUE")]
        extra: Vec<String>,
    },
    /// List deploy templates.
    List {
        /// Show every field.
        #[arg(long)]
        long: bool,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show a deploy template (by name or UUID).
    Show { template: String },
    /// Change a deploy template.
    Set {
        template: String,
        #[arg(long)]
        name: Option<String>,
        /// JSON list of deploy steps, @FILE, or - (stdin).
        #[arg(long)]
        steps: Option<String>,
        #[arg(long = "extra", value_name = "KEY=VALUE")]
        extra: Vec<String>,
    },
    /// Remove extra keys of a deploy template.
    Unset {
        template: String,
        #[arg(long = "extra", value_name = "KEY")]
        extra: Vec<String>,
    },
    /// Delete deploy templates.
    Delete {
        #[arg(required = true)]
        templates: Vec<String>,
    },
}

pub(crate) async fn deploy_template(
    client: &Client,
    printer: &Printer,
    command: DeployTemplateCommand,
) -> anyhow::Result<String> {
    const PATH: &str = "/v1/deploy_templates";
    match command {
        DeployTemplateCommand::Create { name, steps, uuid, extra } => {
            let mut body = Map::new();
            body.insert("name".into(), Value::String(name));
            body.insert("steps".into(), json_argument(&steps, "--steps")?);
            insert_string(&mut body, "uuid", uuid);
            insert_extra(&mut body, &extra)?;
            printer.show(&client.post(PATH, &Value::Object(body)).await?).map_err(to_error)
        }
        DeployTemplateCommand::List { long, page } => {
            let mut query = Vec::new();
            if long {
                query.push(("detail".to_owned(), "true".to_owned()));
            }
            page.push(&mut query);
            let all =
                fetch(client, &with_query(PATH, &query), "deploy_templates", page.limit).await?;
            let fields: &[&str] = if long {
                &["uuid", "name", "steps", "extra", "created_at", "updated_at"]
            } else {
                &["uuid", "name"]
            };
            printer.list(&columns(fields), &all).map_err(to_error)
        }
        DeployTemplateCommand::Show { template } => {
            show(client, printer, &format!("{PATH}/{template}")).await
        }
        DeployTemplateCommand::Set { template, name, steps, extra } => {
            let mut ops = Vec::new();
            replace_op(&mut ops, "name", &name);
            if let Some(steps) = steps {
                set_value(&mut ops, "steps", Some(json_argument(&steps, "--steps")?));
            }
            add_ops(&mut ops, "extra", &extra, "--extra")?;
            patch_and_done(client, &format!("{PATH}/{template}"), ops).await
        }
        DeployTemplateCommand::Unset { template, extra } => {
            let mut ops = Vec::new();
            remove_ops(&mut ops, "extra", &extra);
            patch_and_done(client, &format!("{PATH}/{template}"), ops).await
        }
        DeployTemplateCommand::Delete { templates } => {
            delete_each(client, "deploy template", PATH, &templates).await
        }
    }
}

// ------------------------------------------------------------------ runbooks

#[derive(Debug, Subcommand)]
pub enum RunbookCommand {
    /// Create a runbook: named clean or service steps.
    Create {
        /// The runbook's name (or give --name, as `openstack baremetal` does).
        #[arg(required_unless_present = "name_option", conflicts_with = "name_option")]
        name: Option<String>,
        #[arg(long = "name", value_name = "NAME")]
        name_option: Option<String>,
        /// JSON list of steps (interface, step, args, order), @FILE, or - (stdin).
        #[arg(long)]
        steps: String,
        #[arg(long)]
        uuid: Option<String>,
        /// Whether every project may use it (--public or --public=false).
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
        public: Option<bool>,
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Run the steps out of band, without booting the ramdisk.
        #[arg(long = "disable-ramdisk")]
        disable_ramdisk: bool,
        /// A trait that approves the runbook for nodes having it (repeatable).
        #[arg(long = "trait", value_name = "TRAIT")]
        traits: Vec<String>,
        #[arg(long = "extra", value_name = "KEY=VALUE")]
        extra: Vec<String>,
    },
    /// List runbooks.
    List {
        /// Show every field.
        #[arg(long)]
        long: bool,
        /// Only runbooks this project may use.
        #[arg(long)]
        project: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show a runbook (by name or UUID).
    Show { runbook: String },
    /// Change a runbook.
    Set {
        runbook: String,
        #[arg(long)]
        name: Option<String>,
        /// JSON list of steps, @FILE, or - (stdin).
        #[arg(long)]
        steps: Option<String>,
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
        public: Option<bool>,
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long = "disable-ramdisk", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
        disable_ramdisk: Option<bool>,
        /// Add a trait (repeatable).
        #[arg(long = "trait", value_name = "TRAIT")]
        traits: Vec<String>,
        #[arg(long = "extra", value_name = "KEY=VALUE")]
        extra: Vec<String>,
    },
    /// Remove runbook fields, traits or extra keys.
    Unset {
        runbook: String,
        #[arg(long)]
        owner: bool,
        #[arg(long)]
        public: bool,
        #[arg(long)]
        description: bool,
        /// Remove a trait (repeatable).
        #[arg(long = "trait", value_name = "TRAIT")]
        traits: Vec<String>,
        #[arg(long = "extra", value_name = "KEY")]
        extra: Vec<String>,
    },
    /// Delete runbooks.
    Delete {
        #[arg(required = true)]
        runbooks: Vec<String>,
    },
}

pub(crate) async fn runbook(
    client: &Client,
    printer: &Printer,
    command: RunbookCommand,
) -> anyhow::Result<String> {
    const PATH: &str = "/v1/runbooks";
    match command {
        RunbookCommand::Create {
            name,
            name_option,
            steps,
            uuid,
            public,
            owner,
            description,
            disable_ramdisk,
            traits,
            extra,
        } => {
            let mut body = Map::new();
            insert_string(&mut body, "name", name.or(name_option));
            body.insert("steps".into(), json_argument(&steps, "--steps")?);
            insert_string(&mut body, "uuid", uuid);
            insert_string(&mut body, "owner", owner);
            insert_string(&mut body, "description", description);
            if let Some(public) = public {
                body.insert("public".into(), Value::Bool(public));
            }
            if disable_ramdisk {
                body.insert("disable_ramdisk".into(), Value::Bool(true));
            }
            insert_extra(&mut body, &extra)?;
            let created = client.post(PATH, &Value::Object(body)).await?;
            if traits.is_empty() {
                return printer.show(&created).map_err(to_error);
            }
            let uuid = created["uuid"].as_str().context("the runbook has no uuid")?;
            client.put(&format!("{PATH}/{uuid}/traits"), &json!({ "traits": traits })).await?;
            show(client, printer, &format!("{PATH}/{uuid}")).await
        }
        RunbookCommand::List { long, project, page } => {
            let mut query = Vec::new();
            if long {
                query.push(("detail".to_owned(), "true".to_owned()));
            }
            if let Some(project) = project {
                query.push(("project".to_owned(), project));
            }
            page.push(&mut query);
            let all = fetch(client, &with_query(PATH, &query), "runbooks", page.limit).await?;
            let fields: &[&str] = if long {
                &[
                    "uuid",
                    "name",
                    "description",
                    "public",
                    "owner",
                    "disable_ramdisk",
                    "traits",
                    "steps",
                    "extra",
                    "created_at",
                    "updated_at",
                ]
            } else {
                &["uuid", "name"]
            };
            printer.list(&columns(fields), &all).map_err(to_error)
        }
        RunbookCommand::Show { runbook } => {
            show(client, printer, &format!("{PATH}/{runbook}")).await
        }
        RunbookCommand::Set {
            runbook,
            name,
            steps,
            public,
            owner,
            description,
            disable_ramdisk,
            traits,
            extra,
        } => {
            let mut ops = Vec::new();
            replace_op(&mut ops, "name", &name);
            if let Some(steps) = steps {
                set_value(&mut ops, "steps", Some(json_argument(&steps, "--steps")?));
            }
            set_value(&mut ops, "public", public.map(Value::Bool));
            replace_op(&mut ops, "owner", &owner);
            replace_op(&mut ops, "description", &description);
            set_value(&mut ops, "disable_ramdisk", disable_ramdisk.map(Value::Bool));
            add_ops(&mut ops, "extra", &extra, "--extra")?;
            if ops.is_empty() && traits.is_empty() {
                bail!("nothing to change: give at least one field");
            }
            if !ops.is_empty() {
                client.patch(&format!("{PATH}/{runbook}"), &Value::Array(ops)).await?;
            }
            for name in traits {
                client.call(reqwest::Method::PUT, &trait_path(PATH, &runbook, &name), None).await?;
            }
            Ok(String::new())
        }
        RunbookCommand::Unset { runbook, owner, public, description, traits, extra } => {
            let mut ops = Vec::new();
            remove_field(&mut ops, "owner", owner);
            remove_field(&mut ops, "description", description);
            if public {
                ops.push(json!({"op": "replace", "path": "/public", "value": false}));
            }
            remove_ops(&mut ops, "extra", &extra);
            if ops.is_empty() && traits.is_empty() {
                bail!("nothing to unset: give at least one field");
            }
            if !ops.is_empty() {
                client.patch(&format!("{PATH}/{runbook}"), &Value::Array(ops)).await?;
            }
            for name in traits {
                client.delete(&trait_path(PATH, &runbook, &name)).await?;
            }
            Ok(String::new())
        }
        RunbookCommand::Delete { runbooks } => {
            delete_each(client, "runbook", PATH, &runbooks).await
        }
    }
}

fn trait_path(collection: &str, ident: &str, name: &str) -> String {
    format!("{collection}/{ident}/traits/{}", encode(name))
}

// ------------------------------------------------------------------ volume

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Volume connectors: how a node reaches remote volumes (iqn, ip, mac, wwnn, wwpn, ...).
    #[command(subcommand)]
    Connector(VolumeConnectorCommand),
    /// Volume targets: the remote volumes a node boots from or uses.
    #[command(subcommand)]
    Target(VolumeTargetCommand),
}

#[derive(Debug, Subcommand)]
pub enum VolumeConnectorCommand {
    /// Create a volume connector.
    Create {
        /// The node (name or UUID).
        #[arg(long)]
        node: String,
        /// The connector type: iqn, ip, mac, wwnn, wwpn, port or portgroup.
        #[arg(long = "type")]
        connector_type: String,
        #[arg(long = "connector-id")]
        connector_id: String,
        #[arg(long)]
        uuid: Option<String>,
        #[arg(long = "extra", value_name = "KEY=VALUE")]
        extra: Vec<String>,
    },
    /// List volume connectors.
    List {
        /// Only this node's connectors (name or UUID).
        #[arg(long)]
        node: Option<String>,
        /// Show every field.
        #[arg(long)]
        long: bool,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show a volume connector.
    Show { connector: String },
    /// Change a volume connector (its node must be powered off).
    Set {
        connector: String,
        #[arg(long)]
        node: Option<String>,
        #[arg(long = "type")]
        connector_type: Option<String>,
        #[arg(long = "connector-id")]
        connector_id: Option<String>,
        #[arg(long = "extra", value_name = "KEY=VALUE")]
        extra: Vec<String>,
    },
    /// Remove extra keys of a volume connector.
    Unset {
        connector: String,
        #[arg(long = "extra", value_name = "KEY")]
        extra: Vec<String>,
    },
    /// Delete volume connectors.
    Delete {
        #[arg(required = true)]
        connectors: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum VolumeTargetCommand {
    /// Create a volume target.
    Create {
        /// The node (name or UUID).
        #[arg(long)]
        node: String,
        /// The volume type, e.g. iscsi or fibre_channel.
        #[arg(long = "type")]
        volume_type: String,
        /// Boot order of the volume (0 boots first).
        #[arg(long = "boot-index")]
        boot_index: u32,
        #[arg(long = "volume-id")]
        volume_id: String,
        /// properties key=value (repeatable).
        #[arg(long = "property", value_name = "KEY=VALUE")]
        properties: Vec<String>,
        #[arg(long)]
        uuid: Option<String>,
        #[arg(long = "extra", value_name = "KEY=VALUE")]
        extra: Vec<String>,
    },
    /// List volume targets.
    List {
        /// Only this node's targets (name or UUID).
        #[arg(long)]
        node: Option<String>,
        /// Show every field.
        #[arg(long)]
        long: bool,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show a volume target.
    Show { target: String },
    /// Change a volume target (its node must be powered off).
    Set {
        target: String,
        #[arg(long)]
        node: Option<String>,
        #[arg(long = "type")]
        volume_type: Option<String>,
        #[arg(long = "boot-index")]
        boot_index: Option<u32>,
        #[arg(long = "volume-id")]
        volume_id: Option<String>,
        #[arg(long = "property", value_name = "KEY=VALUE")]
        properties: Vec<String>,
        #[arg(long = "extra", value_name = "KEY=VALUE")]
        extra: Vec<String>,
    },
    /// Remove properties or extra keys of a volume target.
    Unset {
        target: String,
        #[arg(long = "property", value_name = "KEY")]
        properties: Vec<String>,
        #[arg(long = "extra", value_name = "KEY")]
        extra: Vec<String>,
    },
    /// Delete volume targets.
    Delete {
        #[arg(required = true)]
        targets: Vec<String>,
    },
}

fn volume_list_query(node: Option<String>, long: bool, page: &PageArgs) -> Vec<(String, String)> {
    let mut query = Vec::new();
    if let Some(node) = node {
        query.push(("node".to_owned(), node));
    }
    if long {
        query.push(("detail".to_owned(), "true".to_owned()));
    }
    page.push(&mut query);
    query
}

pub(crate) async fn volume(
    client: &Client,
    printer: &Printer,
    command: VolumeCommand,
) -> anyhow::Result<String> {
    const CONNECTORS: &str = "/v1/volume/connectors";
    const TARGETS: &str = "/v1/volume/targets";
    match command {
        VolumeCommand::Connector(command) => match command {
            VolumeConnectorCommand::Create { node, connector_type, connector_id, uuid, extra } => {
                let mut body = Map::new();
                body.insert("node_uuid".into(), resolve_node_uuid(client, &node).await?.into());
                body.insert("type".into(), connector_type.into());
                body.insert("connector_id".into(), connector_id.into());
                insert_string(&mut body, "uuid", uuid);
                insert_extra(&mut body, &extra)?;
                printer
                    .show(&client.post(CONNECTORS, &Value::Object(body)).await?)
                    .map_err(to_error)
            }
            VolumeConnectorCommand::List { node, long, page } => {
                let path = with_query(CONNECTORS, &volume_list_query(node, long, &page));
                let all = fetch(client, &path, "connectors", page.limit).await?;
                let fields: &[&str] = if long {
                    &[
                        "uuid",
                        "node_uuid",
                        "type",
                        "connector_id",
                        "extra",
                        "created_at",
                        "updated_at",
                    ]
                } else {
                    &["uuid", "node_uuid", "type", "connector_id"]
                };
                printer.list(&columns(fields), &all).map_err(to_error)
            }
            VolumeConnectorCommand::Show { connector } => {
                show(client, printer, &format!("{CONNECTORS}/{connector}")).await
            }
            VolumeConnectorCommand::Set {
                connector,
                node,
                connector_type,
                connector_id,
                extra,
            } => {
                let mut ops = Vec::new();
                if let Some(node) = node {
                    let uuid = resolve_node_uuid(client, &node).await?;
                    replace_op(&mut ops, "node_uuid", &Some(uuid));
                }
                replace_op(&mut ops, "type", &connector_type);
                replace_op(&mut ops, "connector_id", &connector_id);
                add_ops(&mut ops, "extra", &extra, "--extra")?;
                patch_and_done(client, &format!("{CONNECTORS}/{connector}"), ops).await
            }
            VolumeConnectorCommand::Unset { connector, extra } => {
                let mut ops = Vec::new();
                remove_ops(&mut ops, "extra", &extra);
                patch_and_done(client, &format!("{CONNECTORS}/{connector}"), ops).await
            }
            VolumeConnectorCommand::Delete { connectors } => {
                delete_each(client, "volume connector", CONNECTORS, &connectors).await
            }
        },
        VolumeCommand::Target(command) => match command {
            VolumeTargetCommand::Create {
                node,
                volume_type,
                boot_index,
                volume_id,
                properties,
                uuid,
                extra,
            } => {
                let mut body = Map::new();
                body.insert("node_uuid".into(), resolve_node_uuid(client, &node).await?.into());
                body.insert("volume_type".into(), volume_type.into());
                body.insert("boot_index".into(), boot_index.into());
                body.insert("volume_id".into(), volume_id.into());
                if !properties.is_empty() {
                    body.insert(
                        "properties".into(),
                        Value::Object(object_of(&properties, "--property")?),
                    );
                }
                insert_string(&mut body, "uuid", uuid);
                insert_extra(&mut body, &extra)?;
                printer.show(&client.post(TARGETS, &Value::Object(body)).await?).map_err(to_error)
            }
            VolumeTargetCommand::List { node, long, page } => {
                let path = with_query(TARGETS, &volume_list_query(node, long, &page));
                let all = fetch(client, &path, "targets", page.limit).await?;
                let fields: &[&str] = if long {
                    &[
                        "uuid",
                        "node_uuid",
                        "volume_type",
                        "boot_index",
                        "volume_id",
                        "properties",
                        "extra",
                        "created_at",
                        "updated_at",
                    ]
                } else {
                    &["uuid", "node_uuid", "volume_type", "boot_index", "volume_id"]
                };
                printer.list(&columns(fields), &all).map_err(to_error)
            }
            VolumeTargetCommand::Show { target } => {
                show(client, printer, &format!("{TARGETS}/{target}")).await
            }
            VolumeTargetCommand::Set {
                target,
                node,
                volume_type,
                boot_index,
                volume_id,
                properties,
                extra,
            } => {
                let mut ops = Vec::new();
                if let Some(node) = node {
                    let uuid = resolve_node_uuid(client, &node).await?;
                    replace_op(&mut ops, "node_uuid", &Some(uuid));
                }
                replace_op(&mut ops, "volume_type", &volume_type);
                set_value(&mut ops, "boot_index", boot_index.map(Value::from));
                replace_op(&mut ops, "volume_id", &volume_id);
                add_ops(&mut ops, "properties", &properties, "--property")?;
                add_ops(&mut ops, "extra", &extra, "--extra")?;
                patch_and_done(client, &format!("{TARGETS}/{target}"), ops).await
            }
            VolumeTargetCommand::Unset { target, properties, extra } => {
                let mut ops = Vec::new();
                remove_ops(&mut ops, "properties", &properties);
                remove_ops(&mut ops, "extra", &extra);
                patch_and_done(client, &format!("{TARGETS}/{target}"), ops).await
            }
            VolumeTargetCommand::Delete { targets } => {
                delete_each(client, "volume target", TARGETS, &targets).await
            }
        },
    }
}

// ------------------------------------------------------------------ inspection rules

#[derive(Debug, Subcommand)]
pub enum InspectionCommand {
    /// Inspection rules: conditions on the inventory and actions on the node.
    #[command(subcommand)]
    Rule(InspectionRuleCommand),
}

#[derive(Debug, Subcommand)]
pub enum InspectionRuleCommand {
    /// Create an inspection rule.
    Create {
        /// JSON list of actions, @FILE, or - (stdin).
        #[arg(long)]
        actions: String,
        /// JSON list of conditions, @FILE, or - (stdin) (none: always).
        #[arg(long)]
        conditions: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Higher runs first.
        #[arg(long)]
        priority: Option<i64>,
        /// Hide conditions and actions (--sensitive or --sensitive=false).
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
        sensitive: Option<bool>,
        /// The processing phase the rule runs in (main).
        #[arg(long)]
        phase: Option<String>,
        #[arg(long)]
        uuid: Option<String>,
    },
    /// List inspection rules.
    List {
        /// Show every field.
        #[arg(long)]
        long: bool,
        /// Only rules of this phase.
        #[arg(long)]
        phase: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show an inspection rule.
    Show { rule: String },
    /// Change an inspection rule.
    Set {
        rule: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        priority: Option<i64>,
        #[arg(long)]
        phase: Option<String>,
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
        sensitive: Option<bool>,
        /// JSON list of conditions, @FILE, or - (stdin).
        #[arg(long)]
        conditions: Option<String>,
        /// JSON list of actions, @FILE, or - (stdin).
        #[arg(long)]
        actions: Option<String>,
    },
    /// Remove fields of an inspection rule.
    Unset {
        rule: String,
        #[arg(long)]
        description: bool,
        #[arg(long)]
        priority: bool,
        #[arg(long)]
        phase: bool,
    },
    /// Delete inspection rules.
    Delete {
        #[arg(required = true)]
        rules: Vec<String>,
    },
}

pub(crate) async fn inspection(
    client: &Client,
    printer: &Printer,
    command: InspectionCommand,
) -> anyhow::Result<String> {
    const PATH: &str = "/v1/inspection_rules";
    let InspectionCommand::Rule(command) = command;
    match command {
        InspectionRuleCommand::Create {
            actions,
            conditions,
            description,
            priority,
            sensitive,
            phase,
            uuid,
        } => {
            let mut body = Map::new();
            body.insert("actions".into(), json_argument(&actions, "--actions")?);
            if let Some(conditions) = conditions {
                body.insert("conditions".into(), json_argument(&conditions, "--conditions")?);
            }
            insert_string(&mut body, "description", description);
            if let Some(priority) = priority {
                body.insert("priority".into(), priority.into());
            }
            if let Some(sensitive) = sensitive {
                body.insert("sensitive".into(), sensitive.into());
            }
            insert_string(&mut body, "phase", phase);
            insert_string(&mut body, "uuid", uuid);
            printer.show(&client.post(PATH, &Value::Object(body)).await?).map_err(to_error)
        }
        InspectionRuleCommand::List { long, phase, page } => {
            let mut query = Vec::new();
            if long {
                query.push(("detail".to_owned(), "true".to_owned()));
            }
            if let Some(phase) = phase {
                query.push(("phase".to_owned(), phase));
            }
            page.push(&mut query);
            let all =
                fetch(client, &with_query(PATH, &query), "inspection_rules", page.limit).await?;
            let fields: &[&str] = if long {
                &[
                    "uuid",
                    "description",
                    "phase",
                    "priority",
                    "sensitive",
                    "built_in",
                    "conditions",
                    "actions",
                    "created_at",
                    "updated_at",
                ]
            } else {
                &["uuid", "description", "phase", "priority"]
            };
            printer.list(&columns(fields), &all).map_err(to_error)
        }
        InspectionRuleCommand::Show { rule } => {
            show(client, printer, &format!("{PATH}/{rule}")).await
        }
        InspectionRuleCommand::Set {
            rule,
            description,
            priority,
            phase,
            sensitive,
            conditions,
            actions,
        } => {
            let mut ops = Vec::new();
            replace_op(&mut ops, "description", &description);
            set_value(&mut ops, "priority", priority.map(Value::from));
            replace_op(&mut ops, "phase", &phase);
            set_value(&mut ops, "sensitive", sensitive.map(Value::Bool));
            if let Some(conditions) = conditions {
                set_value(
                    &mut ops,
                    "conditions",
                    Some(json_argument(&conditions, "--conditions")?),
                );
            }
            if let Some(actions) = actions {
                set_value(&mut ops, "actions", Some(json_argument(&actions, "--actions")?));
            }
            patch_and_done(client, &format!("{PATH}/{rule}"), ops).await
        }
        InspectionRuleCommand::Unset { rule, description, priority, phase } => {
            let mut ops = Vec::new();
            remove_field(&mut ops, "description", description);
            remove_field(&mut ops, "priority", priority);
            remove_field(&mut ops, "phase", phase);
            patch_and_done(client, &format!("{PATH}/{rule}"), ops).await
        }
        InspectionRuleCommand::Delete { rules } => {
            delete_each(client, "inspection rule", PATH, &rules).await
        }
    }
}

// ------------------------------------------------------------------ node sub-resources

#[derive(Debug, Subcommand)]
pub enum VifCommand {
    /// The VIFs attached to a node.
    List { node: String },
    /// Attach a VIF to a free port or portgroup of the node.
    Attach {
        node: String,
        vif: String,
        /// Attach to this port.
        #[arg(long = "port-uuid")]
        port_uuid: Option<String>,
        /// Attach to this portgroup.
        #[arg(long = "portgroup-uuid", conflicts_with = "port_uuid")]
        portgroup_uuid: Option<String>,
        /// More VIF information, key=value (repeatable).
        #[arg(long = "vif-info", value_name = "KEY=VALUE")]
        vif_info: Vec<String>,
    },
    /// Detach a VIF from a node.
    Detach { node: String, vif: String },
}

#[derive(Debug, Subcommand)]
pub enum TraitCommand {
    /// A node's traits.
    List { node: String },
}

#[derive(Debug, Subcommand)]
pub enum AddCommand {
    /// Add traits to a node.
    Trait {
        node: String,
        #[arg(required = true)]
        traits: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RemoveCommand {
    /// Remove traits from a node (or all of them with --all).
    Trait {
        node: String,
        #[arg(required_unless_present = "all")]
        traits: Vec<String>,
        #[arg(long, conflicts_with = "traits")]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum BiosCommand {
    /// BIOS settings as the BMC last reported them.
    #[command(subcommand)]
    Setting(BiosSettingCommand),
}

#[derive(Debug, Subcommand)]
pub enum BiosSettingCommand {
    /// List a node's BIOS settings.
    List {
        node: String,
        /// Show the registry fields too.
        #[arg(long)]
        long: bool,
    },
    /// Show one BIOS setting.
    Show { node: String, setting: String },
}

#[derive(Debug, Subcommand)]
pub enum FirmwareCommand {
    /// Firmware components as the BMC last reported them.
    #[command(subcommand)]
    Component(FirmwareComponentCommand),
}

#[derive(Debug, Subcommand)]
pub enum FirmwareComponentCommand {
    /// List a node's firmware components.
    List { node: String },
}

pub(crate) async fn node_vif(
    client: &Client,
    printer: &Printer,
    command: VifCommand,
) -> anyhow::Result<String> {
    match command {
        VifCommand::List { node } => {
            let vifs = client.get(&format!("{}/vifs", node_path(&node))).await?;
            let rows = vifs["vifs"].as_array().cloned().unwrap_or_default();
            printer.list(&columns(&["id"]), &rows).map_err(to_error)
        }
        VifCommand::Attach { node, vif, port_uuid, portgroup_uuid, vif_info } => {
            let mut body = object_of(&vif_info, "--vif-info")?;
            body.insert("id".into(), Value::String(vif));
            insert_string(&mut body, "port_uuid", port_uuid);
            insert_string(&mut body, "portgroup_uuid", portgroup_uuid);
            client.post(&format!("{}/vifs", node_path(&node)), &Value::Object(body)).await?;
            Ok(String::new())
        }
        VifCommand::Detach { node, vif } => {
            client.delete(&format!("{}/vifs/{}", node_path(&node), encode(&vif))).await?;
            Ok(String::new())
        }
    }
}

pub(crate) async fn node_traits(
    client: &Client,
    printer: &Printer,
    command: TraitCommand,
) -> anyhow::Result<String> {
    let TraitCommand::List { node } = command;
    let traits = client.get(&format!("{}/traits", node_path(&node))).await?;
    let rows: Vec<Value> = traits["traits"]
        .as_array()
        .map(|names| names.iter().map(|name| json!({ "trait": name })).collect())
        .unwrap_or_default();
    printer.list(&columns(&["trait"]), &rows).map_err(to_error)
}

pub(crate) async fn node_add(client: &Client, command: AddCommand) -> anyhow::Result<String> {
    let AddCommand::Trait { node, traits } = command;
    for name in traits {
        client.call(reqwest::Method::PUT, &trait_path("/v1/nodes", &node, &name), None).await?;
    }
    Ok(String::new())
}

pub(crate) async fn node_remove(client: &Client, command: RemoveCommand) -> anyhow::Result<String> {
    let RemoveCommand::Trait { node, traits, all } = command;
    if all {
        client.delete(&format!("{}/traits", node_path(&node))).await?;
    }
    for name in traits {
        client.delete(&trait_path("/v1/nodes", &node, &name)).await?;
    }
    Ok(String::new())
}

pub(crate) async fn node_bios(
    client: &Client,
    printer: &Printer,
    command: BiosCommand,
) -> anyhow::Result<String> {
    let BiosCommand::Setting(command) = command;
    match command {
        BiosSettingCommand::List { node, long } => {
            let path =
                format!("{}/bios{}", node_path(&node), if long { "?detail=true" } else { "" });
            let rows = client.get(&path).await?["bios"].as_array().cloned().unwrap_or_default();
            let mut shown = vec![Column { field: "name".into(), heading: "BIOS setting".into() }];
            if long {
                shown.extend(columns(&[
                    "attribute_type",
                    "allowable_values",
                    "lower_bound",
                    "upper_bound",
                    "min_length",
                    "max_length",
                    "read_only",
                    "reset_required",
                    "unique",
                ]));
            }
            shown.push(Column { field: "value".into(), heading: "BIOS setting value".into() });
            printer.list(&shown, &rows).map_err(to_error)
        }
        BiosSettingCommand::Show { node, setting } => {
            let path = format!("{}/bios/{}", node_path(&node), encode(&setting));
            let mut found = client.get(&path).await?;
            let one = found.get_mut(&setting).map(Value::take).unwrap_or(found);
            printer.show(&one).map_err(to_error)
        }
    }
}

pub(crate) async fn node_firmware(
    client: &Client,
    printer: &Printer,
    command: FirmwareCommand,
) -> anyhow::Result<String> {
    let FirmwareCommand::Component(FirmwareComponentCommand::List { node }) = command;
    let fields = [
        "component",
        "initial_version",
        "current_version",
        "last_version_flashed",
        "created_at",
        "updated_at",
    ];
    let path = format!("{}/firmware?fields={}", node_path(&node), fields.join(","));
    let rows = client.get(&path).await?["firmware"].as_array().cloned().unwrap_or_default();
    printer.list(&columns(&fields), &rows).map_err(to_error)
}

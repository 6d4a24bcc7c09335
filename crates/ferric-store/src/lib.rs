//! ferric's durable store. One [`Store`] type answers for both backends:
//! embedded SQLite (WAL mode; the default, for labs) and PostgreSQL (for data
//! centres with many conductors). Every query is written once, with `$N`
//! placeholders that both dialects accept, and dispatched to the right pool.
//!
//! Concurrency contract: every node write is conditional on the node's
//! `version` (optimistic locking). A writer that lost the race gets
//! [`StoreError::Stale`], re-reads and decides again. The conductor's
//! exclusive lock (`reservation`) is an ordinary field written this way, so
//! taking the lock is one conditional update and can never be lost.
//! Records without a `version` are written on condition that their
//! `updated_at` is unchanged (`Store::update_unchanged`), with the same
//! `Stale` for the loser.

mod allocations;
mod db;
mod error;
mod inspection_rules;
mod query;
mod rows;
mod settings;
mod sql;
mod templates;
pub mod testing;
mod volumes;

pub use allocations::{AllocationQuery, AllocationSortKey};
pub use error::StoreError;
pub use inspection_rules::{RuleQuery, RuleSortKey};
pub use query::{NodeFilters, NodeQuery, NodeSortKey, Page, PortQuery, SortDir};
pub use templates::{TemplateQuery, TemplateSortKey};
pub use volumes::{ConnectorSortKey, TargetSortKey, VolumeQuery};

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ferric_types::{
    Chassis, ConductorRecord, HardwareType, HistoryEvent, InterfaceSupport, Node, Port, Portgroup,
    Timestamp,
};
use uuid::Uuid;

use db::{Conn, Decodable, Dialect, Sql, Value};
use rows::{
    ChassisRow, ConductorRow, HardwareInterfaceRow, HistoryRow, NodeRow, PortRow, PortgroupRow,
    Table, CONDUCTOR_COLUMNS,
};
use sql::{Binds, Filter};

/// How a node is named by a caller: its UUID, or its logical name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeIdent {
    Uuid(Uuid),
    Name(String),
}

impl NodeIdent {
    /// A UUID if the text parses as one, a name otherwise.
    pub fn parse(text: &str) -> Self {
        match Uuid::parse_str(text) {
            Ok(uuid) => Self::Uuid(uuid),
            Err(_) => Self::Name(text.to_owned()),
        }
    }
}

/// The store. Cheap to clone (the pools are shared).
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend_name()).finish()
    }
}

#[derive(Clone)]
enum Backend {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

type Result<T> = std::result::Result<T, StoreError>;

/// Columns no update rewrites: the identity, the creation time, and the
/// columns the store itself maintains.
const IMMUTABLE_COLUMNS: [&str; 4] = ["uuid", "created_at", "updated_at", "version"];

impl Store {
    /// Opens `url` (`sqlite://PATH` — created if missing, WAL, foreign keys on —
    /// `sqlite::memory:`, or `postgres://...`) and applies migrations.
    pub async fn connect(url: &str) -> Result<Store> {
        Ok(Store { backend: db::connect(url).await? })
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Closes the pools (waits for connections to be returned).
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(pool) => pool.close().await,
            Backend::Postgres(pool) => pool.close().await,
        }
    }

    // ---- nodes ----

    /// Inserts a node. `id` and `version` of the argument are ignored; the
    /// stored node (with its id and version 1) is returned. Duplicate uuid,
    /// name or instance_uuid → `Duplicate`.
    pub async fn node_create(&self, node: &Node) -> Result<Node> {
        let mut row = NodeRow::from_node(node)?;
        row.version = 1;
        self.insert(row).await?.into_node()
    }

    pub async fn node_get(&self, ident: &NodeIdent) -> Result<Node> {
        match ident {
            NodeIdent::Uuid(uuid) => self.node_get_by_uuid(*uuid).await,
            NodeIdent::Name(name) => self.get::<NodeRow>("name", name).await?.into_node(),
        }
    }

    pub async fn node_get_by_uuid(&self, uuid: Uuid) -> Result<Node> {
        self.get::<NodeRow>("uuid", &uuid.to_string()).await?.into_node()
    }

    /// Writes every field of `node`, on condition that the stored version
    /// still equals `node.version`; returns the stored node (version + 1,
    /// `updated_at` set). Lost race → `Stale`; unique violations → `Duplicate`.
    pub async fn node_update(&self, node: &Node) -> Result<Node> {
        let row = NodeRow::from_node(node)?;
        match self.update(row, node.uuid, Some(node.version)).await? {
            Some(row) => row.into_node(),
            None => Err(match self.id_of("nodes", "uuid", &node.uuid.to_string()).await? {
                Some(_) => StoreError::Stale { kind: "node", ident: node.uuid.to_string() },
                None => not_found("node", node.uuid),
            }),
        }
    }

    /// Deletes a node with its ports, portgroups and history.
    pub async fn node_delete(&self, uuid: Uuid) -> Result<()> {
        let ident = uuid.to_string();
        let mut tx = Conn::begin(&self.backend).await.map_err(StoreError::Database)?;
        for table in
            ["ports", "portgroups", "node_history", "node_inventory", "allocations", "nodes"]
        {
            let column = if table == "nodes" { "uuid" } else { "node_uuid" };
            let sql = Sql::new(
                format!("DELETE FROM {table} WHERE {column} = $1"),
                vec![ident.as_str().into()],
            );
            let deleted = tx.execute(sql).await.map_err(StoreError::Database)?;
            if table == "nodes" && deleted == 0 {
                return Err(not_found("node", uuid)); // rolls back
            }
        }
        tx.commit().await.map_err(StoreError::Database)
    }

    /// Like [`Store::node_list`], but only each node's `(uuid, version)`:
    /// cheap enough to run on every listing, so that callers can serve
    /// unchanged nodes from a cache keyed by version.
    pub async fn node_list_versions(&self, query: &NodeQuery) -> Result<Vec<(Uuid, i64)>> {
        let mut filter = sql::node_filter(&query.filters, self.dialect());
        let sort = sql::node_sort(query.sort_key);
        if let Some(marker) = query.page.marker {
            let id = self.marker_id("nodes", "uuid", &marker.to_string()).await?;
            filter.after("nodes", sort, query.page.sort_dir, id);
        }
        let sql = filter.into_sql(
            "SELECT uuid, version FROM nodes",
            sort,
            query.page.sort_dir,
            query.page.limit,
        );
        let rows: Vec<(String, i64)> = self.fetch_all(sql).await?;
        rows.into_iter()
            .map(|(uuid, version)| rows::parse("node uuid", &uuid).map(|uuid| (uuid, version)))
            .collect()
    }

    /// Every shard in use with its node count, by shard name.
    pub async fn node_shard_counts(&self) -> Result<Vec<(String, i64)>> {
        let sql = Sql::new(
            "SELECT shard, COUNT(*) FROM nodes WHERE shard IS NOT NULL GROUP BY shard ORDER BY shard",
            Vec::new(),
        );
        self.fetch_all(sql).await
    }

    /// The `(uuid, version)` of one node, by UUID or name.
    pub async fn node_version(&self, ident: &NodeIdent) -> Result<(Uuid, i64)> {
        let (column, value) = match ident {
            NodeIdent::Uuid(uuid) => ("uuid", uuid.to_string()),
            NodeIdent::Name(name) => ("name", name.clone()),
        };
        let sql = Sql::new(
            format!("SELECT uuid, version FROM nodes WHERE {column} = $1"),
            vec![value.as_str().into()],
        );
        let row: Option<(String, i64)> = self.fetch_optional(sql).await?;
        let (uuid, version) =
            row.ok_or_else(|| StoreError::NotFound { kind: "node", ident: value.clone() })?;
        let uuid = rows::parse("node uuid", &uuid)?;
        Ok((uuid, version))
    }

    /// The nodes with these UUIDs (in no particular order; missing ones are
    /// left out).
    pub async fn node_get_many(&self, uuids: &[Uuid]) -> Result<Vec<Node>> {
        let mut nodes = Vec::with_capacity(uuids.len());
        for chunk in uuids.chunks(500) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
            let values = chunk.iter().map(|uuid| uuid.to_string().into()).collect();
            let sql = Sql::new(
                format!("{} WHERE uuid IN ({})", select::<NodeRow>(), placeholders.join(", ")),
                values,
            );
            let rows: Vec<NodeRow> = self.fetch_all(sql).await?;
            for row in rows {
                nodes.push(row.into_node()?);
            }
        }
        Ok(nodes)
    }

    pub async fn node_list(&self, query: &NodeQuery) -> Result<Vec<Node>> {
        let filter = sql::node_filter(&query.filters, self.dialect());
        let rows: Vec<NodeRow> =
            self.list(filter, sql::node_sort(query.sort_key), &query.page).await?;
        rows.into_iter().map(NodeRow::into_node).collect()
    }

    /// The node owning a port with one of these (normalised) MAC addresses.
    /// Like Ironic, `None` also when the addresses belong to several nodes.
    pub async fn node_by_port_addresses(&self, addresses: &[String]) -> Result<Option<Node>> {
        if addresses.is_empty() {
            return Ok(None);
        }
        let mut filter = Filter::default();
        let list = filter.list(addresses.iter().map(String::as_str));
        filter.and(format!("uuid IN (SELECT node_uuid FROM ports WHERE address IN ({list}))"));
        let sql = filter.into_sql(&select::<NodeRow>(), "id", SortDir::Asc, Some(2));
        let mut rows: Vec<NodeRow> = self.fetch_all(sql).await?;
        if rows.len() > 1 {
            tracing::warn!(?addresses, "MAC addresses belong to more than one node");
            return Ok(None);
        }
        rows.pop().map(NodeRow::into_node).transpose()
    }

    // ---- ports ----

    pub async fn port_create(&self, port: &Port) -> Result<Port> {
        self.insert(PortRow::from_port(port)?).await?.into_port()
    }

    pub async fn port_get(&self, uuid: Uuid) -> Result<Port> {
        self.get::<PortRow>("uuid", &uuid.to_string()).await?.into_port()
    }

    pub async fn port_get_by_address(&self, address: &str) -> Result<Port> {
        self.get::<PortRow>("address", address).await?.into_port()
    }

    /// Writes every field of `port` (by id); returns the stored port.
    pub async fn port_update(&self, port: &Port) -> Result<Port> {
        self.update_existing(PortRow::from_port(port)?, port.uuid).await?.into_port()
    }

    /// Writes several ports of `node_uuid` in one transaction, all or
    /// nothing, each on condition that the stored port still belongs to the
    /// node and was not written since it was read: its `updated_at` must
    /// still equal the given port's (ports have no `version`; `updated_at`,
    /// to the microsecond, stands in for one). A port changed or moved
    /// meanwhile → `Stale` (re-read and re-apply), deleted → `NotFound`, an
    /// address or name taken → `Duplicate`. Returns the stored ports.
    pub async fn ports_update_for_node(
        &self,
        node_uuid: Uuid,
        ports: &[Port],
    ) -> Result<Vec<Port>> {
        let mut tx = Conn::begin(&self.backend).await.map_err(StoreError::Database)?;
        let mut stored = Vec::with_capacity(ports.len());
        for port in ports {
            let guards = vec![
                ("node_uuid", node_uuid.to_string().into()),
                ("updated_at", port.updated_at.map(Timestamp::to_text).into()),
            ];
            let stamp = stamp_after(port.updated_at);
            let row = PortRow::from_port(port)?;
            let (sql, values) = update_sql(row, port.uuid, None, guards, stamp);
            let result = tx.fetch_optional::<PortRow>(sql).await;
            // Each failure rolls the transaction back (dropping it) before
            // looking further: an in-memory SQLite pool has one connection.
            match result {
                Ok(Some(row)) => stored.push(row.into_port()?),
                Ok(None) => {
                    drop(tx);
                    let ident = port.uuid.to_string();
                    return Err(match self.id_of("ports", "uuid", &ident).await? {
                        Some(_) => StoreError::Stale { kind: PortRow::KIND, ident },
                        None => not_found(PortRow::KIND, port.uuid),
                    });
                }
                Err(err) => {
                    drop(tx);
                    return Err(self.write_error::<PortRow>(err, &values).await);
                }
            }
        }
        tx.commit().await.map_err(StoreError::Database)?;
        Ok(stored)
    }

    pub async fn port_delete(&self, uuid: Uuid) -> Result<()> {
        self.delete::<PortRow>(uuid, None).await
    }

    pub async fn port_list(&self, query: &PortQuery) -> Result<Vec<Port>> {
        let filter = sql::port_filter(query, "portgroup_uuid");
        let rows: Vec<PortRow> = self.list(filter, "id", &query.page).await?;
        rows.into_iter().map(PortRow::into_port).collect()
    }

    // ---- portgroups ----

    pub async fn portgroup_create(&self, portgroup: &Portgroup) -> Result<Portgroup> {
        self.insert(PortgroupRow::from_portgroup(portgroup)?).await?.into_portgroup()
    }

    /// By UUID or name.
    pub async fn portgroup_get(&self, ident: &str) -> Result<Portgroup> {
        let column = if Uuid::parse_str(ident).is_ok() { "uuid" } else { "name" };
        self.get::<PortgroupRow>(column, ident).await?.into_portgroup()
    }

    /// Writes every field of `portgroup`, on condition that it was not
    /// written since it was read (its `updated_at` unchanged); returns the
    /// stored portgroup. A lost race → `Stale` (re-read and re-apply),
    /// deleted → `NotFound`, a name or address taken → `Duplicate`.
    pub async fn portgroup_update(&self, portgroup: &Portgroup) -> Result<Portgroup> {
        let row = PortgroupRow::from_portgroup(portgroup)?;
        self.update_unchanged(row, portgroup.uuid, portgroup.updated_at).await?.into_portgroup()
    }

    /// `InUse` while ports belong to it.
    pub async fn portgroup_delete(&self, uuid: Uuid) -> Result<()> {
        let in_use =
            InUse { table: "ports", column: "portgroup_uuid", reason: "ports belong to it" };
        self.delete::<PortgroupRow>(uuid, Some(in_use)).await
    }

    /// Filters on `node_uuid`, `address` and `shard`; `portgroup_uuid`
    /// selects the portgroup with that UUID.
    pub async fn portgroup_list(&self, query: &PortQuery) -> Result<Vec<Portgroup>> {
        let filter = sql::port_filter(query, "uuid");
        let rows: Vec<PortgroupRow> = self.list(filter, "id", &query.page).await?;
        rows.into_iter().map(PortgroupRow::into_portgroup).collect()
    }

    // ---- chassis ----

    pub async fn chassis_create(&self, chassis: &Chassis) -> Result<Chassis> {
        self.insert(ChassisRow::from_chassis(chassis)?).await?.into_chassis()
    }

    pub async fn chassis_get(&self, uuid: Uuid) -> Result<Chassis> {
        self.get::<ChassisRow>("uuid", &uuid.to_string()).await?.into_chassis()
    }

    pub async fn chassis_update(&self, chassis: &Chassis) -> Result<Chassis> {
        self.update_existing(ChassisRow::from_chassis(chassis)?, chassis.uuid).await?.into_chassis()
    }

    /// `InUse` while nodes belong to it.
    pub async fn chassis_delete(&self, uuid: Uuid) -> Result<()> {
        let in_use = InUse { table: "nodes", column: "chassis_uuid", reason: "nodes belong to it" };
        self.delete::<ChassisRow>(uuid, Some(in_use)).await
    }

    pub async fn chassis_list(&self, page: &Page) -> Result<Vec<Chassis>> {
        let rows: Vec<ChassisRow> = self.list(Filter::default(), "id", page).await?;
        rows.into_iter().map(ChassisRow::into_chassis).collect()
    }

    // ---- conductors ----

    /// Registers (or re-registers) a conductor as online, replacing the
    /// hardware interfaces it supports.
    pub async fn conductor_register(
        &self,
        hostname: &str,
        conductor_group: &str,
        interfaces: &[InterfaceSupport],
    ) -> Result<ConductorRecord> {
        let now = Timestamp::now().to_text();
        let upsert = Sql::new(
            format!(
                "INSERT INTO conductors (hostname, conductor_group, online, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $4) \
                 ON CONFLICT (hostname) DO UPDATE SET conductor_group = excluded.conductor_group, \
                 online = excluded.online, updated_at = excluded.updated_at \
                 RETURNING {CONDUCTOR_COLUMNS}"
            ),
            vec![hostname.into(), conductor_group.into(), true.into(), now.into()],
        );
        let clear = Sql::new(
            "DELETE FROM conductor_hardware_interfaces WHERE conductor = $1",
            vec![hostname.into()],
        );
        let mut tx = Conn::begin(&self.backend).await.map_err(StoreError::Database)?;
        let row: ConductorRow = tx.fetch_one(upsert).await.map_err(StoreError::Database)?;
        tx.execute(clear).await.map_err(StoreError::Database)?;
        if let Some(insert) = insert_hardware_interfaces(hostname, interfaces) {
            tx.execute(insert).await.map_err(StoreError::Database)?;
        }
        tx.commit().await.map_err(StoreError::Database)?;
        row.into_record(drivers_of(interfaces))
    }

    /// Refreshes `updated_at` (the liveness signal) and marks the conductor
    /// online.
    pub async fn conductor_heartbeat(&self, hostname: &str) -> Result<()> {
        let sql = Sql::new(
            "UPDATE conductors SET updated_at = $1, online = $2 WHERE hostname = $3",
            vec![Timestamp::now().to_text().into(), true.into(), hostname.into()],
        );
        self.update_conductor(hostname, sql).await
    }

    /// Marks the conductor offline (clean shutdown).
    pub async fn conductor_unregister(&self, hostname: &str) -> Result<()> {
        let sql = Sql::new(
            "UPDATE conductors SET online = $1 WHERE hostname = $2",
            vec![false.into(), hostname.into()],
        );
        self.update_conductor(hostname, sql).await
    }

    pub async fn conductor_get(&self, hostname: &str) -> Result<ConductorRecord> {
        let sql = Sql::new(
            format!("SELECT {CONDUCTOR_COLUMNS} FROM conductors WHERE hostname = $1"),
            vec![hostname.into()],
        );
        let row: ConductorRow = self.fetch_optional(sql).await?.ok_or_else(|| {
            StoreError::NotFound { kind: "conductor", ident: hostname.to_owned() }
        })?;
        let drivers = self.drivers(Some(hostname)).await?.remove(hostname).unwrap_or_default();
        row.into_record(drivers)
    }

    /// All conductors ordered by hostname, paginated by hostname (`marker`
    /// is a hostname here).
    pub async fn conductor_list(
        &self,
        limit: Option<u32>,
        marker: Option<&str>,
    ) -> Result<Vec<ConductorRecord>> {
        let mut filter = Filter::default();
        if let Some(marker) = marker {
            let id = self.marker_id("conductors", "hostname", marker).await?;
            filter.after("conductors", "hostname", SortDir::Asc, id);
        }
        let head = format!("SELECT {CONDUCTOR_COLUMNS} FROM conductors");
        let rows: Vec<ConductorRow> =
            self.fetch_all(filter.into_sql(&head, "hostname", SortDir::Asc, limit)).await?;
        let mut drivers = self.drivers(None).await?;
        rows.into_iter()
            .map(|row| {
                let drivers = drivers.remove(&row.hostname).unwrap_or_default();
                row.into_record(drivers)
            })
            .collect()
    }

    /// What every online conductor registered: (hostname, support) pairs.
    pub async fn hardware_interfaces(&self) -> Result<Vec<(String, InterfaceSupport)>> {
        let sql = Sql::new(
            "SELECT h.conductor, h.hardware_type, h.interface_type, h.implementation, h.is_default \
             FROM conductor_hardware_interfaces h JOIN conductors c ON c.hostname = h.conductor \
             WHERE c.online = $1 ORDER BY h.conductor, h.id",
            vec![true.into()],
        );
        let rows: Vec<HardwareInterfaceRow> = self.fetch_all(sql).await?;
        // Rows come in registration order, so each support's rows are adjacent.
        let mut out: Vec<(String, InterfaceSupport)> = Vec::new();
        for row in rows {
            let (hardware_type, interface, implementation) = row.decode()?;
            match out.last_mut() {
                Some((host, support))
                    if *host == row.conductor
                        && support.hardware_type == hardware_type
                        && support.interface == interface =>
                {
                    support.enabled.push(implementation);
                    if row.is_default {
                        support.default = implementation;
                    }
                }
                _ => out.push((
                    row.conductor,
                    InterfaceSupport {
                        hardware_type,
                        interface,
                        enabled: vec![implementation],
                        default: implementation,
                    },
                )),
            }
        }
        Ok(out)
    }

    // ---- history ----

    pub async fn history_add(&self, event: &HistoryEvent) -> Result<HistoryEvent> {
        self.insert(HistoryRow::from_event(event)).await?.into_event()
    }

    /// Oldest first (with the default ascending `sort_dir`).
    pub async fn history_list(&self, node_uuid: Uuid, page: &Page) -> Result<Vec<HistoryEvent>> {
        let mut filter = Filter::default();
        filter.eq("node_uuid", node_uuid.to_string());
        let rows: Vec<HistoryRow> = self.list(filter, "created_at", page).await?;
        rows.into_iter().map(HistoryRow::into_event).collect()
    }

    pub async fn history_get(&self, node_uuid: Uuid, uuid: Uuid) -> Result<HistoryEvent> {
        let sql = Sql::new(
            format!("{} WHERE node_uuid = $1 AND uuid = $2", select::<HistoryRow>()),
            vec![node_uuid.to_string().into(), uuid.to_string().into()],
        );
        let row: Option<HistoryRow> = self.fetch_optional(sql).await?;
        row.ok_or_else(|| not_found(HistoryRow::KIND, uuid))?.into_event()
    }
}

/// A node's inventory as inspection recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInventory {
    pub inventory: serde_json::Value,
    pub plugin_data: serde_json::Value,
    pub created_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct InventoryRow {
    inventory: String,
    plugin_data: String,
    created_at: String,
}

impl Store {
    /// Records (or replaces) the inventory of `node_uuid`.
    pub async fn node_inventory_put(
        &self,
        node_uuid: Uuid,
        inventory: &serde_json::Value,
        plugin_data: &serde_json::Value,
    ) -> Result<()> {
        let sql = Sql::new(
            "INSERT INTO node_inventory (node_uuid, inventory, plugin_data, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (node_uuid) DO UPDATE SET \
             inventory = excluded.inventory, plugin_data = excluded.plugin_data, \
             created_at = excluded.created_at",
            vec![
                node_uuid.to_string().into(),
                inventory.to_string().into(),
                plugin_data.to_string().into(),
                Timestamp::now().to_text().into(),
            ],
        );
        self.execute(sql).await.map(|_| ())
    }

    /// Replaces the plugin data recorded with the inventory of `node_uuid`
    /// (the inventory itself is kept); `NotFound` if inspection recorded
    /// none.
    pub async fn node_plugin_data_set(
        &self,
        node_uuid: Uuid,
        plugin_data: &serde_json::Value,
    ) -> Result<()> {
        let sql = Sql::new(
            "UPDATE node_inventory SET plugin_data = $1 WHERE node_uuid = $2",
            vec![plugin_data.to_string().into(), node_uuid.to_string().into()],
        );
        match self.execute(sql).await? {
            0 => Err(StoreError::NotFound { kind: "node inventory", ident: node_uuid.to_string() }),
            _ => Ok(()),
        }
    }

    /// The inventory of `node_uuid`, if inspection recorded one.
    pub async fn node_inventory_get(&self, node_uuid: Uuid) -> Result<Option<NodeInventory>> {
        let sql = Sql::new(
            "SELECT inventory, plugin_data, created_at FROM node_inventory WHERE node_uuid = $1",
            vec![node_uuid.to_string().into()],
        );
        let row: Option<InventoryRow> = self.fetch_optional(sql).await?;
        let Some(row) = row else { return Ok(None) };
        let decode = |text: &str, what: &'static str| {
            serde_json::from_str(text).map_err(|error| StoreError::Corrupt {
                what,
                detail: format!("node {node_uuid}: {error}"),
            })
        };
        Ok(Some(NodeInventory {
            inventory: decode(&row.inventory, "inventory")?,
            plugin_data: decode(&row.plugin_data, "plugin_data")?,
            created_at: Timestamp::parse(&row.created_at).ok_or_else(|| StoreError::Corrupt {
                what: "inventory time",
                detail: format!("node {node_uuid}: {}", row.created_at),
            })?,
        }))
    }
}

/// Where a DHCP lease is in its life, as the store keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpLeaseState {
    /// Offered, not yet requested.
    Offered,
    /// Acknowledged.
    Bound,
}

impl DhcpLeaseState {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            DhcpLeaseState::Offered => "offered",
            DhcpLeaseState::Bound => "bound",
        }
    }

    fn parse(text: &str) -> Option<DhcpLeaseState> {
        match text {
            "offered" => Some(DhcpLeaseState::Offered),
            "bound" => Some(DhcpLeaseState::Bound),
            _ => None,
        }
    }
}

/// A DHCP lease (`dhcp_leases`): `ip` belongs to `mac` until `expires`.
/// Plain data; ferric's DHCP server converts its own lease type.
#[derive(Debug, Clone, PartialEq)]
pub struct DhcpLease {
    /// The client's MAC address (stored as lower-case `aa:bb:...`).
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
    /// Unix seconds.
    pub expires: u64,
    pub state: DhcpLeaseState,
    pub hostname: Option<String>,
    /// Relay information (option 82), as the DHCP server encodes it.
    pub relay: Option<serde_json::Value>,
}

/// An address a client declined, kept out of use until `until` (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpDecline {
    pub ip: Ipv4Addr,
    pub until: u64,
}

#[derive(sqlx::FromRow)]
struct DhcpLeaseRow {
    mac: String,
    ip: String,
    expires: i64,
    state: String,
    hostname: Option<String>,
    relay: Option<String>,
}

impl DhcpLeaseRow {
    fn into_lease(self) -> Result<DhcpLease> {
        let corrupt = |detail: String| StoreError::Corrupt { what: "DHCP lease", detail };
        let mac = parse_mac(&self.mac).ok_or_else(|| corrupt(format!("MAC {:?}", self.mac)))?;
        let ip =
            self.ip.parse().map_err(|_| corrupt(format!("{}: address {:?}", self.mac, self.ip)))?;
        let state = DhcpLeaseState::parse(&self.state)
            .ok_or_else(|| corrupt(format!("{}: state {:?}", self.mac, self.state)))?;
        let relay = match self.relay {
            Some(text) => Some(
                serde_json::from_str(&text)
                    .map_err(|error| corrupt(format!("{}: relay: {error}", self.mac)))?,
            ),
            None => None,
        };
        Ok(DhcpLease {
            mac,
            ip,
            expires: from_unix(self.expires),
            state,
            hostname: self.hostname,
            relay,
        })
    }
}

/// `aa:bb:cc:dd:ee:ff`.
fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter().map(|byte| format!("{byte:02x}")).collect::<Vec<_>>().join(":")
}

fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next().filter(|part| part.len() == 2)?;
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Unix seconds as stored (saturating: BIGINT is signed).
fn to_unix(seconds: u64) -> i64 {
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

fn from_unix(seconds: i64) -> u64 {
    u64::try_from(seconds).unwrap_or(0)
}

impl Store {
    /// Records `lease`, replacing the MAC's previous one. `Duplicate` (field
    /// `ip`) if another MAC's row holds the address, expired or not: the
    /// caller decides whether that row may go ([`Store::dhcp_lease_delete_ip`]).
    pub async fn dhcp_lease_upsert(&self, lease: &DhcpLease) -> Result<()> {
        let ip = lease.ip.to_string();
        let sql = Sql::new(
            "INSERT INTO dhcp_leases (mac, ip, expires, state, hostname, relay, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (mac) DO UPDATE SET \
             ip = excluded.ip, expires = excluded.expires, state = excluded.state, \
             hostname = excluded.hostname, relay = excluded.relay, \
             updated_at = excluded.updated_at",
            vec![
                mac_text(&lease.mac).into(),
                ip.as_str().into(),
                to_unix(lease.expires).into(),
                lease.state.as_str().into(),
                lease.hostname.clone().into(),
                lease.relay.as_ref().map(|relay| relay.to_string()).into(),
                Timestamp::now().to_text().into(),
            ],
        );
        match self.execute(sql).await {
            Ok(_) => Ok(()),
            Err(StoreError::Database(err)) if is_unique_violation(&err) => {
                Err(StoreError::Duplicate { kind: "DHCP lease", field: "ip", value: ip })
            }
            Err(err) => Err(err),
        }
    }

    /// Removes `mac`'s lease; whether there was one.
    pub async fn dhcp_lease_delete(&self, mac: [u8; 6]) -> Result<bool> {
        let sql = Sql::new("DELETE FROM dhcp_leases WHERE mac = $1", vec![mac_text(&mac).into()]);
        Ok(self.execute(sql).await? > 0)
    }

    /// Removes the lease of `ip`, whoever holds it; whether there was one.
    pub async fn dhcp_lease_delete_ip(&self, ip: Ipv4Addr) -> Result<bool> {
        let sql = Sql::new("DELETE FROM dhcp_leases WHERE ip = $1", vec![ip.to_string().into()]);
        Ok(self.execute(sql).await? > 0)
    }

    /// Every lease, expired ones included, by MAC.
    pub async fn dhcp_lease_list(&self) -> Result<Vec<DhcpLease>> {
        let sql = Sql::new(
            "SELECT mac, ip, expires, state, hostname, relay FROM dhcp_leases ORDER BY mac",
            vec![],
        );
        let rows: Vec<DhcpLeaseRow> = self.fetch_all(sql).await?;
        rows.into_iter().map(DhcpLeaseRow::into_lease).collect()
    }

    /// Keeps `ip` out of use until `until` (replacing an earlier decline).
    pub async fn dhcp_decline_upsert(&self, ip: Ipv4Addr, until: u64) -> Result<()> {
        let sql = Sql::new(
            "INSERT INTO dhcp_declines (ip, until) VALUES ($1, $2) \
             ON CONFLICT (ip) DO UPDATE SET until = excluded.until",
            vec![ip.to_string().into(), to_unix(until).into()],
        );
        self.execute(sql).await.map(|_| ())
    }

    /// Every decline, expired ones included, by address text.
    pub async fn dhcp_decline_list(&self) -> Result<Vec<DhcpDecline>> {
        let sql = Sql::new("SELECT ip, until FROM dhcp_declines ORDER BY ip", vec![]);
        let rows: Vec<(String, i64)> = self.fetch_all(sql).await?;
        rows.into_iter()
            .map(|(ip, until)| {
                let parsed = ip.parse().map_err(|_| StoreError::Corrupt {
                    what: "DHCP decline",
                    detail: format!("address {ip:?}"),
                })?;
                Ok(DhcpDecline { ip: parsed, until: from_unix(until) })
            })
            .collect()
    }

    /// Deletes the leases and declines that expired at or before `before`
    /// (Unix seconds); how many rows went.
    pub async fn dhcp_leases_expire(&self, before: u64) -> Result<u64> {
        let before = to_unix(before);
        let leases = self
            .execute(Sql::new("DELETE FROM dhcp_leases WHERE expires <= $1", vec![before.into()]))
            .await?;
        let declines = self
            .execute(Sql::new("DELETE FROM dhcp_declines WHERE until <= $1", vec![before.into()]))
            .await?;
        Ok(leases + declines)
    }
}

/// A referencing table that keeps a record from being deleted.
struct InUse {
    table: &'static str,
    column: &'static str,
    reason: &'static str,
}

// Generic helpers over the row types.
impl Store {
    fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }

    async fn conn(&self) -> Result<Conn> {
        Conn::acquire(&self.backend).await.map_err(StoreError::Database)
    }

    async fn execute(&self, sql: Sql) -> Result<u64> {
        self.conn().await?.execute(sql).await.map_err(StoreError::Database)
    }

    async fn fetch_all<T: Decodable>(&self, sql: Sql) -> Result<Vec<T>> {
        self.conn().await?.fetch_all(sql).await.map_err(StoreError::Database)
    }

    async fn fetch_optional<T: Decodable>(&self, sql: Sql) -> Result<Option<T>> {
        self.conn().await?.fetch_optional(sql).await.map_err(StoreError::Database)
    }

    /// The id of the row of `table` whose `column` equals `value`.
    async fn id_of(&self, table: &str, column: &str, value: &str) -> Result<Option<i64>> {
        let sql =
            Sql::new(format!("SELECT id FROM {table} WHERE {column} = $1"), vec![value.into()]);
        let row: Option<(i64,)> = self.fetch_optional(sql).await?;
        Ok(row.map(|(id,)| id))
    }

    /// The id of a pagination marker; `NotFound` if it does not exist.
    async fn marker_id(&self, table: &str, column: &str, marker: &str) -> Result<i64> {
        self.id_of(table, column, marker)
            .await?
            .ok_or_else(|| StoreError::NotFound { kind: "marker", ident: marker.to_owned() })
    }

    /// The row whose `column` equals `value`.
    async fn get<R: Table>(&self, column: &str, value: &str) -> Result<R> {
        let sql = Sql::new(format!("{} WHERE {column} = $1", select::<R>()), vec![value.into()]);
        self.fetch_optional(sql)
            .await?
            .ok_or_else(|| StoreError::NotFound { kind: R::KIND, ident: value.to_owned() })
    }

    /// The row with this UUID (any spelling `Uuid` parses) or, failing
    /// that, this name.
    async fn get_by_uuid_or_name<R: Table>(&self, ident: &str) -> Result<R> {
        match Uuid::parse_str(ident) {
            Ok(uuid) => self.get("uuid", &uuid.to_string()).await,
            Err(_) => self.get("name", ident).await,
        }
    }

    /// A page of rows matching `filter`, in `(sort, id)` order.
    async fn list<R: Table>(&self, mut filter: Filter, sort: &str, page: &Page) -> Result<Vec<R>> {
        if let Some(marker) = page.marker {
            let id = self.marker_id(R::TABLE, "uuid", &marker.to_string()).await?;
            filter.after(R::TABLE, sort, page.sort_dir, id);
        }
        self.fetch_all(filter.into_sql(&select::<R>(), sort, page.sort_dir, page.limit)).await
    }

    /// Inserts a row; returns it as stored.
    async fn insert<R: Table>(&self, row: R) -> Result<R> {
        let values = row.into_values();
        let columns = R::COLUMNS.join(", ");
        let placeholders: Vec<String> = (1..=values.len()).map(|n| format!("${n}")).collect();
        let sql = Sql::new(
            format!(
                "INSERT INTO {} ({columns}) VALUES ({}) RETURNING id, {columns}",
                R::TABLE,
                placeholders.join(", ")
            ),
            values.clone(),
        );
        // (The connection goes back to the pool before errors are examined:
        // an in-memory SQLite pool has only one.)
        let result = self.conn().await?.fetch_one(sql).await;
        match result {
            Ok(row) => Ok(row),
            Err(err) => Err(self.write_error::<R>(err, &values).await),
        }
    }

    /// Rewrites every mutable column of the row with `row.id()` and `uuid`
    /// (and `version`, which is then bumped), setting `updated_at`. `None`
    /// if no row matched.
    async fn update<R: Table>(
        &self,
        row: R,
        uuid: Uuid,
        version: Option<i64>,
    ) -> Result<Option<R>> {
        let (sql, all) = update_sql(row, uuid, version, Vec::new(), Timestamp::now());
        // (The connection goes back to the pool before errors are examined.)
        let result = self.conn().await?.fetch_optional(sql).await;
        match result {
            Ok(row) => Ok(row),
            Err(err) => Err(self.write_error::<R>(err, &all).await),
        }
    }

    /// [`Store::update`] without a version condition; `NotFound` if no row
    /// has `uuid`.
    async fn update_existing<R: Table>(&self, row: R, uuid: Uuid) -> Result<R> {
        self.update(row, uuid, None).await?.ok_or_else(|| not_found(R::KIND, uuid))
    }

    /// The conditional update of the records without a `version`: rewrites
    /// the row like [`Store::update`] on condition that its `updated_at`
    /// still holds `expected` (the value the caller read; `None`, a row never
    /// updated, matches only NULL). Timestamps are compared as the stored
    /// microsecond text, exact on both backends. A row changed meanwhile →
    /// `Stale` (re-read and re-apply), no row with `uuid` → `NotFound`.
    async fn update_unchanged<R: Table>(
        &self,
        row: R,
        uuid: Uuid,
        expected: Option<Timestamp>,
    ) -> Result<R> {
        let guards = vec![("updated_at", expected.map(Timestamp::to_text).into())];
        let (sql, all) = update_sql(row, uuid, None, guards, stamp_after(expected));
        // (The connection goes back to the pool before errors are examined.)
        let result = self.conn().await?.fetch_optional(sql).await;
        match result {
            Ok(Some(row)) => Ok(row),
            Ok(None) => {
                let ident = uuid.to_string();
                Err(match self.id_of(R::TABLE, "uuid", &ident).await? {
                    Some(_) => StoreError::Stale { kind: R::KIND, ident },
                    None => not_found(R::KIND, uuid),
                })
            }
            Err(err) => Err(self.write_error::<R>(err, &all).await),
        }
    }

    /// Deletes the row with `uuid`; with `in_use`, only while no row of
    /// another table references it.
    async fn delete<R: Table>(&self, uuid: Uuid, in_use: Option<InUse>) -> Result<()> {
        let ident = uuid.to_string();
        let mut text = format!("DELETE FROM {} WHERE uuid = $1", R::TABLE);
        if let Some(InUse { table, column, .. }) = &in_use {
            text.push_str(&format!(" AND NOT EXISTS (SELECT 1 FROM {table} WHERE {column} = $1)"));
        }
        match self.execute(Sql::new(text, vec![ident.as_str().into()])).await {
            Ok(0) => {}
            Ok(_) => return Ok(()),
            // A referencing row appeared concurrently.
            Err(StoreError::Database(err)) if is_foreign_key_violation(&err) => {}
            Err(err) => return Err(err),
        }
        match (in_use, self.id_of(R::TABLE, "uuid", &ident).await?) {
            (Some(in_use), Some(_)) => {
                Err(StoreError::InUse { kind: R::KIND, ident, reason: in_use.reason.to_owned() })
            }
            _ => Err(not_found(R::KIND, uuid)),
        }
    }

    /// Turns a failed insert or update of `values` into `Duplicate` (unique
    /// violation) or `NotFound` (a referenced record is missing) where it can
    /// tell which field is at fault.
    async fn write_error<R: Table>(&self, err: sqlx::Error, values: &[Value]) -> StoreError {
        let Some(db_err) = err.as_database_error() else {
            return StoreError::Database(err);
        };
        if db_err.is_unique_violation() {
            // PostgreSQL names the constraint (`nodes_name_key`, the default
            // name of a column's UNIQUE); SQLite says
            // "UNIQUE constraint failed: nodes.name".
            let constraint = db_err.constraint().map(str::to_owned);
            let message = db_err.message().to_owned();
            for (column, value) in R::COLUMNS.iter().zip(values) {
                let pg_name = format!("{}_{column}_key", R::TABLE);
                let sqlite_suffix = format!(": {}.{column}", R::TABLE);
                if constraint.as_deref() == Some(pg_name.as_str())
                    || message.ends_with(&sqlite_suffix)
                {
                    return StoreError::Duplicate {
                        kind: R::KIND,
                        field: column,
                        value: value.to_string(),
                    };
                }
            }
        } else if db_err.is_foreign_key_violation() {
            // SQLite does not say which reference failed: look them up.
            for reference in R::REFERENCES {
                let Some(position) = R::COLUMNS.iter().position(|c| *c == reference.column) else {
                    continue;
                };
                if let Some(Value::Text(Some(ident))) = values.get(position) {
                    if let Ok(None) = self.id_of(reference.table, "uuid", ident).await {
                        return StoreError::NotFound { kind: reference.kind, ident: ident.clone() };
                    }
                }
            }
        }
        StoreError::Database(err)
    }

    /// Applies a conductor update; `NotFound` if no such conductor.
    async fn update_conductor(&self, hostname: &str, sql: Sql) -> Result<()> {
        match self.execute(sql).await? {
            0 => Err(StoreError::NotFound { kind: "conductor", ident: hostname.to_owned() }),
            _ => Ok(()),
        }
    }

    /// The hardware types each conductor (or just `hostname`) registered.
    async fn drivers(&self, hostname: Option<&str>) -> Result<BTreeMap<String, Vec<HardwareType>>> {
        let mut text =
            "SELECT DISTINCT conductor, hardware_type FROM conductor_hardware_interfaces"
                .to_owned();
        let mut values = Vec::new();
        if let Some(hostname) = hostname {
            text.push_str(" WHERE conductor = $1");
            values.push(hostname.into());
        }
        let rows: Vec<(String, String)> = self.fetch_all(Sql::new(text, values)).await?;
        let mut drivers: BTreeMap<String, Vec<HardwareType>> = BTreeMap::new();
        for (conductor, hardware_type) in rows {
            drivers.entry(conductor).or_default().push(rows::parse_hardware_type(&hardware_type)?);
        }
        for list in drivers.values_mut() {
            list.sort();
        }
        Ok(drivers)
    }
}

/// `SELECT id, <columns> FROM <table>`.
fn select<R: Table>() -> String {
    format!("SELECT id, {} FROM {}", R::COLUMNS.join(", "), R::TABLE)
}

/// The `updated_at` a write conditional on `expected` stamps: now, but
/// always later than `expected`, so that every such write changes the value
/// the next one compares with — even two writes within one microsecond, or
/// a writer whose clock is behind the last one's.
fn stamp_after(expected: Option<Timestamp>) -> Timestamp {
    let now = Timestamp::now();
    match expected {
        Some(expected) if now <= expected => expected.plus_micros(1),
        _ => now,
    }
}

/// The statement behind [`Store::update`]: every mutable column of `row`
/// set, `updated_at` = `stamp`, for the row with `row.id()` and `uuid` (and
/// `version`, then bumped) whose `guards` columns still hold their values (a
/// NULL value: `IS NULL`). Also returns the row's values, for
/// [`Store::write_error`].
fn update_sql<R: Table>(
    row: R,
    uuid: Uuid,
    version: Option<i64>,
    guards: Vec<(&'static str, Value)>,
    stamp: Timestamp,
) -> (Sql, Vec<Value>) {
    let id = row.id();
    let all = row.into_values();
    let mut binds = Binds::default();
    let mut set = Vec::with_capacity(all.len() + 1);
    for (column, value) in R::COLUMNS.iter().zip(&all) {
        if !IMMUTABLE_COLUMNS.contains(column) {
            set.push(format!("{column} = {}", binds.arg(value.clone())));
        }
    }
    set.push(format!("updated_at = {}", binds.arg(stamp.to_text())));
    let mut condition =
        format!("id = {} AND uuid = {}", binds.arg(id), binds.arg(uuid.to_string()));
    if let Some(version) = version {
        set.push("version = version + 1".to_owned());
        condition.push_str(&format!(" AND version = {}", binds.arg(version)));
    }
    for (column, value) in guards {
        match value {
            Value::Text(None) | Value::Int(None) | Value::Bool(None) | Value::Float(None) => {
                condition.push_str(&format!(" AND {column} IS NULL"));
            }
            value => condition.push_str(&format!(" AND {column} = {}", binds.arg(value))),
        }
    }
    let columns = R::COLUMNS.join(", ");
    let sql = Sql::new(
        format!(
            "UPDATE {} SET {} WHERE {condition} RETURNING id, {columns}",
            R::TABLE,
            set.join(", ")
        ),
        binds.into_values(),
    );
    (sql, all)
}

fn not_found(kind: &'static str, uuid: Uuid) -> StoreError {
    StoreError::NotFound { kind, ident: uuid.to_string() }
}

pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error().is_some_and(|db_err| db_err.is_unique_violation())
}

fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    err.as_database_error().is_some_and(|db_err| db_err.is_foreign_key_violation())
}

/// One multi-row INSERT of every implementation `interfaces` enables (and
/// each default, should it be missing from its list); `None` if there are none.
fn insert_hardware_interfaces(hostname: &str, interfaces: &[InterfaceSupport]) -> Option<Sql> {
    let mut binds = Binds::default();
    let mut tuples = Vec::new();
    for support in interfaces {
        let mut implementations = support.enabled.clone();
        if !implementations.contains(&support.default) {
            implementations.insert(0, support.default);
        }
        for implementation in implementations {
            let row: [Value; 5] = [
                hostname.into(),
                support.hardware_type.as_str().into(),
                support.interface.as_str().into(),
                implementation.as_str().into(),
                (implementation == support.default).into(),
            ];
            tuples.push(format!("({})", binds.list(row)));
        }
    }
    if tuples.is_empty() {
        return None;
    }
    let text = format!(
        "INSERT INTO conductor_hardware_interfaces \
         (conductor, hardware_type, interface_type, implementation, is_default) \
         VALUES {} ON CONFLICT DO NOTHING",
        tuples.join(", ")
    );
    Some(Sql::new(text, binds.into_values()))
}

/// Hardware types a conductor registered, deduplicated.
pub fn drivers_of(interfaces: &[InterfaceSupport]) -> Vec<HardwareType> {
    let mut drivers: Vec<HardwareType> = interfaces.iter().map(|s| s.hardware_type).collect();
    drivers.sort();
    drivers.dedup();
    drivers
}

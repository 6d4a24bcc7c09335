//! Building `SELECT`s for listings: a WHERE clause with numbered binds,
//! keyset pagination and ordering.

use crate::db::{Dialect, Sql, Value};
use crate::query::{NodeFilters, NodeSortKey, PortQuery, SortDir};

/// Bind values, numbered in the order they are added.
#[derive(Debug, Default)]
pub(crate) struct Binds(Vec<Value>);

impl Binds {
    /// Adds a bind value; returns its placeholder (`$N`).
    pub(crate) fn arg(&mut self, value: impl Into<Value>) -> String {
        self.0.push(value.into());
        format!("${}", self.0.len())
    }

    /// Adds bind values; returns their placeholders, comma-separated.
    pub(crate) fn list<V: Into<Value>>(&mut self, values: impl IntoIterator<Item = V>) -> String {
        values.into_iter().map(|v| self.arg(v)).collect::<Vec<_>>().join(", ")
    }

    pub(crate) fn into_values(self) -> Vec<Value> {
        self.0
    }
}

/// The conditions of a listing, ANDed together, and their bind values.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    conditions: Vec<String>,
    binds: Binds,
}

impl Filter {
    /// Adds a bind value; returns its placeholder.
    pub(crate) fn arg(&mut self, value: impl Into<Value>) -> String {
        self.binds.arg(value)
    }

    /// Adds bind values; returns their placeholders, comma-separated.
    pub(crate) fn list<V: Into<Value>>(&mut self, values: impl IntoIterator<Item = V>) -> String {
        self.binds.list(values)
    }

    /// Adds a condition (with placeholders from [`Filter::arg`]).
    pub(crate) fn and(&mut self, condition: String) {
        self.conditions.push(condition);
    }

    pub(crate) fn eq(&mut self, column: &str, value: impl Into<Value>) {
        let p = self.arg(value);
        self.and(format!("{column} = {p}"));
    }

    pub(crate) fn is_null(&mut self, column: &str, null: bool) {
        self.and(format!("{column} IS {}NULL", if null { "" } else { "NOT " }));
    }

    /// `column` is one of `values` (nothing matches an empty list).
    pub(crate) fn any_of<V: Into<Value>>(
        &mut self,
        column: &str,
        values: impl IntoIterator<Item = V>,
    ) {
        let list = self.list(values);
        self.and(if list.is_empty() {
            "1 = 0".to_owned()
        } else {
            format!("{column} IN ({list})")
        });
    }

    /// `column` is none of `values`; rows where it is NULL do not match.
    pub(crate) fn none_of<V: Into<Value>>(
        &mut self,
        column: &str,
        values: impl IntoIterator<Item = V>,
    ) {
        let list = self.list(values);
        self.and(if list.is_empty() {
            format!("{column} IS NOT NULL")
        } else {
            format!("{column} NOT IN ({list})")
        });
    }

    /// `column` contains `text` (case-sensitive substring).
    pub(crate) fn contains(&mut self, dialect: Dialect, column: &str, text: &str) {
        let p = self.arg(text);
        self.and(match dialect {
            Dialect::Sqlite => format!("instr({column}, {p}) > 0"),
            Dialect::Postgres => format!("strpos({column}, {p}) > 0"),
        });
    }

    /// Keyset pagination: only rows after the row `marker_id` of `table` in
    /// the order `(sort, id)`. `sort` must never be NULL (wrap nullable
    /// columns in `COALESCE`), or the row comparison would be unknown.
    pub(crate) fn after(&mut self, table: &str, sort: &str, dir: SortDir, marker_id: i64) {
        let op = match dir {
            SortDir::Asc => ">",
            SortDir::Desc => "<",
        };
        let p = self.arg(marker_id);
        self.and(if sort == "id" {
            format!("id {op} {p}")
        } else {
            format!("({sort}, id) {op} (SELECT {sort}, id FROM {table} WHERE id = {p})")
        });
    }

    /// `head` (a `SELECT ... FROM ...`) with the conditions, ordered by
    /// `(sort, id)` and limited.
    pub(crate) fn into_sql(
        mut self,
        head: &str,
        sort: &str,
        dir: SortDir,
        limit: Option<u32>,
    ) -> Sql {
        let mut text = head.to_owned();
        if !self.conditions.is_empty() {
            text.push_str(" WHERE ");
            text.push_str(&self.conditions.join(" AND "));
        }
        let dir = match dir {
            SortDir::Asc => "ASC",
            SortDir::Desc => "DESC",
        };
        if sort == "id" {
            text.push_str(&format!(" ORDER BY id {dir}"));
        } else {
            text.push_str(&format!(" ORDER BY {sort} {dir}, id {dir}"));
        }
        if let Some(limit) = limit {
            let p = self.arg(i64::from(limit));
            text.push_str(&format!(" LIMIT {p}"));
        }
        Sql::new(text, self.binds.into_values())
    }
}

/// The expression a node listing sorts on. Nullable columns are wrapped in
/// `COALESCE` so that NULLs sort first in both dialects and keyset
/// comparisons never meet a NULL.
pub(crate) fn node_sort(key: NodeSortKey) -> &'static str {
    match key {
        NodeSortKey::Id => "id",
        NodeSortKey::Uuid => "uuid",
        NodeSortKey::Name => "COALESCE(name, '')",
        NodeSortKey::Driver => "driver",
        NodeSortKey::ProvisionState => "provision_state",
        NodeSortKey::PowerState => "COALESCE(power_state, '')",
        NodeSortKey::Maintenance => "maintenance",
        NodeSortKey::ResourceClass => "COALESCE(resource_class, '')",
        NodeSortKey::ConductorGroup => "conductor_group",
        NodeSortKey::Owner => "COALESCE(owner, '')",
        NodeSortKey::Lessee => "COALESCE(lessee, '')",
        NodeSortKey::InstanceUuid => "COALESCE(instance_uuid, '')",
        NodeSortKey::CreatedAt => "created_at",
        NodeSortKey::UpdatedAt => "COALESCE(updated_at, '')",
        NodeSortKey::ProvisionUpdatedAt => "COALESCE(provision_updated_at, '')",
    }
}

/// The WHERE clause of a node listing.
pub(crate) fn node_filter(f: &NodeFilters, dialect: Dialect) -> Filter {
    let mut w = Filter::default();
    if let Some(instance_uuid) = &f.instance_uuid {
        w.eq("instance_uuid", instance_uuid.as_str());
    }
    if let Some(associated) = f.associated {
        w.is_null("instance_uuid", !associated);
    }
    if let Some(maintenance) = f.maintenance {
        w.eq("maintenance", maintenance);
    }
    if let Some(retired) = f.retired {
        w.eq("retired", retired);
    }
    if let Some(state) = f.provision_state {
        w.eq("provision_state", state.as_str());
    }
    if let Some(states) = &f.provision_states {
        w.any_of("provision_state", states.iter().map(|state| state.as_str()));
    }
    if let Some(driver) = f.driver {
        w.eq("driver", driver.as_str());
    }
    if let Some(resource_class) = &f.resource_class {
        w.eq("resource_class", resource_class.as_str());
    }
    if let Some(fault) = f.fault {
        w.eq("fault", fault.as_str());
    }
    if let Some(group) = &f.conductor_group {
        w.eq("conductor_group", group.as_str());
    }
    if let Some(owner) = &f.owner {
        w.eq("owner", owner.as_str());
    }
    if let Some(lessee) = &f.lessee {
        w.eq("lessee", lessee.as_str());
    }
    if let Some(project) = &f.project {
        let p = w.arg(project.as_str());
        w.and(format!("(owner = {p} OR lessee = {p})"));
    }
    if let Some(chassis) = f.chassis_uuid {
        w.eq("chassis_uuid", chassis.to_string());
    }
    if let Some(text) = &f.description_contains {
        w.contains(dialect, "description", text);
    }
    if let Some(shards) = &f.shards {
        w.any_of("shard", shards.iter().map(String::as_str));
    }
    if let Some(sharded) = f.sharded {
        w.is_null("shard", !sharded);
    }
    if let Some(parent) = &f.parent_node {
        w.eq("parent_node", parent.as_str());
    }
    if f.include_children == Some(false) {
        w.is_null("parent_node", true);
    }
    match &f.reservation {
        Some(Some(host)) => w.eq("reservation", host.as_str()),
        Some(None) => w.is_null("reservation", true),
        None => {}
    }
    if let Some(hosts) = &f.reserved_by_none_of {
        w.none_of("reservation", hosts.iter().map(String::as_str));
    }
    if let Some(pending) = f.has_pending_action {
        w.is_null("pending_action", !pending);
    }
    if let Some(before) = f.provision_updated_before {
        let p = w.arg(before.to_text());
        w.and(format!("provision_updated_at < {p}"));
    }
    if let Some(in_progress) = f.power_change_in_progress {
        w.is_null("target_power_state", !in_progress);
    }
    w
}

/// The WHERE clause of a port or portgroup listing. `uuid_column` is the
/// column `portgroup_uuid` filters on (`portgroup_uuid` for ports, `uuid`
/// for portgroups).
pub(crate) fn port_filter(q: &PortQuery, uuid_column: &str) -> Filter {
    let mut w = Filter::default();
    if let Some(node) = q.node_uuid {
        w.eq("node_uuid", node.to_string());
    }
    if let Some(portgroup) = q.portgroup_uuid {
        w.eq(uuid_column, portgroup.to_string());
    }
    if let Some(address) = &q.address {
        w.eq("address", address.as_str());
    }
    if let Some(shard) = &q.shard {
        let p = w.arg(shard.as_str());
        w.and(format!("node_uuid IN (SELECT uuid FROM nodes WHERE shard = {p})"));
    }
    w
}

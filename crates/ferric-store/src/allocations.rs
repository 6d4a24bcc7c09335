//! Allocations (`allocations`): their rows, listings, and the two writes
//! that touch a node as well — reserving a node for an allocation and
//! releasing it. Each is one transaction whose node update is conditional
//! on the node's `version` (and on the node having no instance), so two
//! allocations can never reserve the same node, on SQLite or PostgreSQL.

use ferric_types::{Allocation, AllocationState, Node, Timestamp};
use uuid::Uuid;

use crate::db::{Conn, Sql, Value};
use crate::query::Page;
use crate::rows::{from_json, opt_text, parse, parse_opt, table, text, to_json, Table};
use crate::sql::Filter;
use crate::{is_unique_violation, Result, Store, StoreError};

/// The allocation columns a listing may be sorted on (Ironic refuses
/// `extra`, `candidate_nodes` and `traits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AllocationSortKey {
    #[default]
    Id,
    Uuid,
    Name,
    NodeUuid,
    State,
    LastError,
    ResourceClass,
    Owner,
    CreatedAt,
    UpdatedAt,
}

impl AllocationSortKey {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "id" => Self::Id,
            "uuid" => Self::Uuid,
            "name" => Self::Name,
            "node_uuid" => Self::NodeUuid,
            "state" => Self::State,
            "last_error" => Self::LastError,
            "resource_class" => Self::ResourceClass,
            "owner" => Self::Owner,
            "created_at" => Self::CreatedAt,
            "updated_at" => Self::UpdatedAt,
            _ => return None,
        })
    }

    /// The sort expression; nullable columns are wrapped so that keyset
    /// comparisons never meet a NULL.
    fn expression(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Uuid => "uuid",
            Self::Name => "COALESCE(name, '')",
            Self::NodeUuid => "COALESCE(node_uuid, '')",
            Self::State => "state",
            Self::LastError => "COALESCE(last_error, '')",
            Self::ResourceClass => "COALESCE(resource_class, '')",
            Self::Owner => "COALESCE(owner, '')",
            Self::CreatedAt => "created_at",
            Self::UpdatedAt => "COALESCE(updated_at, '')",
        }
    }
}

/// An allocation listing; `None` filters are not applied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllocationQuery {
    pub node_uuid: Option<Uuid>,
    pub resource_class: Option<String>,
    pub state: Option<AllocationState>,
    pub owner: Option<String>,
    pub sort_key: AllocationSortKey,
    pub page: Page,
}

table! {
    /// An `allocations` row.
    AllocationRow in "allocations", kind "allocation",
    references ["node_uuid" -> "node" in "nodes"],
    {
        uuid: String,
        name: Option<String>,
        node_uuid: Option<String>,
        state: String,
        last_error: Option<String>,
        resource_class: Option<String>,
        traits: String,
        candidate_nodes: String,
        extra: String,
        owner: Option<String>,
        created_at: String,
        updated_at: Option<String>,
    }
}

impl AllocationRow {
    fn from_allocation(allocation: &Allocation) -> Result<Self> {
        Ok(Self {
            id: allocation.id,
            uuid: text(&allocation.uuid),
            name: allocation.name.clone(),
            node_uuid: opt_text(&allocation.node_uuid),
            state: text(&allocation.state),
            last_error: allocation.last_error.clone(),
            resource_class: allocation.resource_class.clone(),
            traits: to_json("allocation traits", &allocation.traits)?,
            candidate_nodes: to_json("allocation candidate_nodes", &allocation.candidate_nodes)?,
            extra: to_json("allocation extra", &allocation.extra)?,
            owner: allocation.owner.clone(),
            created_at: text(&allocation.created_at),
            updated_at: opt_text(&allocation.updated_at),
        })
    }

    fn into_allocation(self) -> Result<Allocation> {
        Ok(Allocation {
            id: self.id,
            uuid: parse("allocation uuid", &self.uuid)?,
            name: self.name,
            node_uuid: parse_opt("allocation node_uuid", self.node_uuid)?,
            state: parse("allocation state", &self.state)?,
            last_error: self.last_error,
            resource_class: self.resource_class,
            traits: from_json("allocation traits", &self.traits)?,
            candidate_nodes: from_json("allocation candidate_nodes", &self.candidate_nodes)?,
            extra: from_json("allocation extra", &self.extra)?,
            owner: self.owner,
            created_at: parse("allocation created_at", &self.created_at)?,
            updated_at: parse_opt("allocation updated_at", self.updated_at)?,
        })
    }
}

/// Which statement of a two-statement write failed.
enum Step {
    Node,
    Allocation,
}

impl Store {
    /// Records an allocation as it is (no node is touched). Duplicate uuid
    /// or name → `Duplicate`.
    pub async fn allocation_create(&self, allocation: &Allocation) -> Result<Allocation> {
        self.insert(AllocationRow::from_allocation(allocation)?).await?.into_allocation()
    }

    /// By UUID (any spelling `Uuid` parses) or, failing that, by name.
    pub async fn allocation_get(&self, ident: &str) -> Result<Allocation> {
        self.get_by_uuid_or_name::<AllocationRow>(ident).await?.into_allocation()
    }

    /// The allocation holding `node_uuid`, if any.
    pub async fn allocation_get_by_node(&self, node_uuid: Uuid) -> Result<Option<Allocation>> {
        match self.get::<AllocationRow>("node_uuid", &node_uuid.to_string()).await {
            Ok(row) => row.into_allocation().map(Some),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(other) => Err(other),
        }
    }

    pub async fn allocation_list(&self, query: &AllocationQuery) -> Result<Vec<Allocation>> {
        let mut filter = Filter::default();
        if let Some(node) = query.node_uuid {
            filter.eq("node_uuid", node.to_string());
        }
        if let Some(class) = &query.resource_class {
            filter.eq("resource_class", class.as_str());
        }
        if let Some(state) = query.state {
            filter.eq("state", state.as_str());
        }
        if let Some(owner) = &query.owner {
            filter.eq("owner", owner.as_str());
        }
        let rows: Vec<AllocationRow> =
            self.list(filter, query.sort_key.expression(), &query.page).await?;
        rows.into_iter().map(AllocationRow::into_allocation).collect()
    }

    /// Writes the allocation's own fields (name, extra, ...); never touches
    /// a node. Conditional on the allocation being unchanged since it was
    /// read (its `updated_at`): a lost race → `Stale`. Duplicate name →
    /// `Duplicate`.
    pub async fn allocation_update(&self, allocation: &Allocation) -> Result<Allocation> {
        let row = AllocationRow::from_allocation(allocation)?;
        self.update_unchanged(row, allocation.uuid, allocation.updated_at).await?.into_allocation()
    }

    /// Records `allocation` (already `active` on `claimed.uuid`) and reserves
    /// the node in one transaction: the node gets `claimed`'s
    /// `instance_uuid`, `allocation_uuid` and `instance_info`, on condition
    /// that its version is still `claimed.version`, no conductor holds it, and
    /// it has no instance (or, for a backfill, already has this allocation's
    /// UUID as instance).
    /// `None` when the node changed since it was read (nothing is written);
    /// a duplicate allocation uuid/name, or the allocation's UUID being
    /// another node's instance, → `Duplicate`.
    pub async fn allocation_create_claiming(
        &self,
        allocation: &Allocation,
        claimed: &Node,
    ) -> Result<Option<Allocation>> {
        let row = AllocationRow::from_allocation(allocation)?;
        let values = row.into_values();
        let instance_uuid = allocation.uuid.to_string();
        let claim = Sql::new(
            "UPDATE nodes SET instance_uuid = $1, allocation_uuid = $1, instance_info = $2, \
             version = version + 1, updated_at = $3 \
             WHERE uuid = $4 AND version = $5 AND reservation IS NULL \
             AND (instance_uuid IS NULL OR instance_uuid = $1)",
            vec![
                instance_uuid.as_str().into(),
                to_json("node instance_info", &claimed.instance_info)?.into(),
                Timestamp::now().to_text().into(),
                claimed.uuid.to_string().into(),
                claimed.version.into(),
            ],
        );
        let columns = AllocationRow::COLUMNS.join(", ");
        let placeholders: Vec<String> = (1..=values.len()).map(|n| format!("${n}")).collect();
        let insert = Sql::new(
            format!(
                "INSERT INTO allocations ({columns}) VALUES ({}) RETURNING id, {columns}",
                placeholders.join(", ")
            ),
            values.clone(),
        );
        let outcome = async {
            let mut tx = Conn::begin(&self.backend).await.map_err(|e| (Step::Node, e))?;
            if tx.execute(claim).await.map_err(|e| (Step::Node, e))? == 0 {
                return Ok(None); // dropping the transaction rolls it back
            }
            let stored: AllocationRow =
                tx.fetch_one(insert).await.map_err(|e| (Step::Allocation, e))?;
            tx.commit().await.map_err(|e| (Step::Allocation, e))?;
            Ok(Some(stored))
        }
        .await;
        // (The transaction is gone before errors are examined: examining
        // them may need a connection.)
        match outcome {
            Ok(Some(row)) => row.into_allocation().map(Some),
            Ok(None) => Ok(None),
            Err((Step::Node, err)) if is_unique_violation(&err) => Err(StoreError::Duplicate {
                kind: "node",
                field: "instance_uuid",
                value: instance_uuid,
            }),
            Err((Step::Node, err)) => Err(StoreError::Database(err)),
            Err((Step::Allocation, err)) => {
                Err(self.write_error::<AllocationRow>(err, &values).await)
            }
        }
    }

    /// Deletes `allocation` and, when it holds a node, releases the node
    /// (clears `instance_uuid` and `allocation_uuid`) in the same
    /// transaction. `node_version`: the version of the node the caller
    /// checked; if the node changed since, nothing is written → `Stale`.
    pub async fn allocation_delete(
        &self,
        allocation: &Allocation,
        node_version: Option<i64>,
    ) -> Result<()> {
        let ident = allocation.uuid.to_string();
        let release = allocation.node_uuid.map(|node| {
            let mut values: Vec<Value> = vec![
                Timestamp::now().to_text().into(),
                node.to_string().into(),
                ident.as_str().into(),
            ];
            let mut text = "UPDATE nodes SET instance_uuid = NULL, allocation_uuid = NULL, \
                            version = version + 1, updated_at = $1 \
                            WHERE uuid = $2 AND allocation_uuid = $3"
                .to_owned();
            if let Some(version) = node_version {
                text.push_str(" AND version = $4");
                values.push(version.into());
            }
            (node, Sql::new(text, values))
        });
        let delete =
            Sql::new("DELETE FROM allocations WHERE uuid = $1", vec![ident.as_str().into()]);
        let mut tx = Conn::begin(&self.backend).await.map_err(StoreError::Database)?;
        if let Some((node, release)) = release {
            let released = tx.execute(release).await.map_err(StoreError::Database)?;
            if released == 0 && node_version.is_some() {
                return Err(StoreError::Stale { kind: "node", ident: node.to_string() });
            }
        }
        if tx.execute(delete).await.map_err(StoreError::Database)? == 0 {
            return Err(StoreError::NotFound { kind: "allocation", ident });
        }
        tx.commit().await.map_err(StoreError::Database)
    }
}

impl Store {
    /// Deletes the allocation holding `node_uuid`, leaving the node alone
    /// (for the conductor, which writes the node itself when it tears an
    /// instance down); whether there was one.
    pub async fn allocation_delete_of_node(&self, node_uuid: Uuid) -> Result<bool> {
        let sql = Sql::new(
            "DELETE FROM allocations WHERE node_uuid = $1",
            vec![node_uuid.to_string().into()],
        );
        Ok(self.execute(sql).await? > 0)
    }
}

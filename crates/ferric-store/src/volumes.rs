//! Volume connectors and targets (boot from volume, API 1.32): their rows,
//! listings and store methods. Both go with their node (`ON DELETE CASCADE`).
//! A second connector with the same `(type, connector_id)`, or a second
//! target of a node with the same `boot_index`, is [`StoreError::Duplicate`]
//! on field `connector_id` / `boot_index`.

use ferric_types::{VolumeConnector, VolumeTarget};
use uuid::Uuid;

use crate::query::Page;
use crate::rows::{from_json, opt_text, parse, parse_opt, table, text, to_json};
use crate::sql::Filter;
use crate::{is_unique_violation, Result, Store, StoreError};

/// The columns a connector listing may be sorted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnectorSortKey {
    #[default]
    Id,
    Uuid,
    Type,
    ConnectorId,
    CreatedAt,
    UpdatedAt,
}

impl ConnectorSortKey {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "id" => Self::Id,
            "uuid" => Self::Uuid,
            "type" => Self::Type,
            "connector_id" => Self::ConnectorId,
            "created_at" => Self::CreatedAt,
            "updated_at" => Self::UpdatedAt,
            _ => return None,
        })
    }

    fn column(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Uuid => "uuid",
            Self::Type => "connector_type",
            Self::ConnectorId => "connector_id",
            Self::CreatedAt => "created_at",
            Self::UpdatedAt => "COALESCE(updated_at, '')",
        }
    }
}

/// The columns a target listing may be sorted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetSortKey {
    #[default]
    Id,
    Uuid,
    VolumeType,
    VolumeId,
    BootIndex,
    CreatedAt,
    UpdatedAt,
}

impl TargetSortKey {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "id" => Self::Id,
            "uuid" => Self::Uuid,
            "volume_type" => Self::VolumeType,
            "volume_id" => Self::VolumeId,
            "boot_index" => Self::BootIndex,
            "created_at" => Self::CreatedAt,
            "updated_at" => Self::UpdatedAt,
            _ => return None,
        })
    }

    fn column(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Uuid => "uuid",
            Self::VolumeType => "volume_type",
            Self::VolumeId => "volume_id",
            Self::BootIndex => "boot_index",
            Self::CreatedAt => "created_at",
            Self::UpdatedAt => "COALESCE(updated_at, '')",
        }
    }
}

/// A connector or target listing: optionally one node's, sorted, paged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeQuery<K> {
    pub node_uuid: Option<Uuid>,
    pub sort_key: K,
    pub page: Page,
}

table! {
    ConnectorRow in "volume_connectors", kind "volume connector",
    references ["node_uuid" -> "node" in "nodes"],
    {
        uuid: String,
        node_uuid: String,
        connector_type: String,
        connector_id: String,
        extra: String,
        created_at: String,
        updated_at: Option<String>,
    }
}

table! {
    TargetRow in "volume_targets", kind "volume target",
    references ["node_uuid" -> "node" in "nodes"],
    {
        uuid: String,
        node_uuid: String,
        volume_type: String,
        properties: String,
        boot_index: i64,
        volume_id: String,
        extra: String,
        created_at: String,
        updated_at: Option<String>,
    }
}

impl ConnectorRow {
    fn from_record(c: &VolumeConnector) -> Result<Self> {
        Ok(Self {
            id: c.id,
            uuid: text(&c.uuid),
            node_uuid: text(&c.node_uuid),
            connector_type: text(&c.connector_type),
            connector_id: c.connector_id.clone(),
            extra: to_json("volume connector extra", &c.extra)?,
            created_at: text(&c.created_at),
            updated_at: opt_text(&c.updated_at),
        })
    }

    fn into_record(self) -> Result<VolumeConnector> {
        Ok(VolumeConnector {
            id: self.id,
            uuid: parse("volume connector uuid", &self.uuid)?,
            node_uuid: parse("volume connector node_uuid", &self.node_uuid)?,
            connector_type: parse("volume connector type", &self.connector_type)?,
            connector_id: self.connector_id,
            extra: from_json("volume connector extra", &self.extra)?,
            created_at: parse("volume connector created_at", &self.created_at)?,
            updated_at: parse_opt("volume connector updated_at", self.updated_at)?,
        })
    }
}

impl TargetRow {
    fn from_record(t: &VolumeTarget) -> Result<Self> {
        Ok(Self {
            id: t.id,
            uuid: text(&t.uuid),
            node_uuid: text(&t.node_uuid),
            volume_type: t.volume_type.clone(),
            properties: to_json("volume target properties", &t.properties)?,
            boot_index: t.boot_index,
            volume_id: t.volume_id.clone(),
            extra: to_json("volume target extra", &t.extra)?,
            created_at: text(&t.created_at),
            updated_at: opt_text(&t.updated_at),
        })
    }

    fn into_record(self) -> Result<VolumeTarget> {
        Ok(VolumeTarget {
            id: self.id,
            uuid: parse("volume target uuid", &self.uuid)?,
            node_uuid: parse("volume target node_uuid", &self.node_uuid)?,
            volume_type: self.volume_type,
            properties: from_json("volume target properties", &self.properties)?,
            boot_index: self.boot_index,
            volume_id: self.volume_id,
            extra: from_json("volume target extra", &self.extra)?,
            created_at: parse("volume target created_at", &self.created_at)?,
            updated_at: parse_opt("volume target updated_at", self.updated_at)?,
        })
    }
}

/// SQLite names only the last column of a failed composite UNIQUE after a
/// comma, which the generic mapping does not read: name the field here.
fn composite_duplicate(
    error: StoreError,
    kind: &'static str,
    field: &'static str,
    value: String,
) -> StoreError {
    match error {
        StoreError::Database(err) if is_unique_violation(&err) => {
            StoreError::Duplicate { kind, field, value }
        }
        other => other,
    }
}

fn node_filter(node_uuid: Option<Uuid>) -> Filter {
    let mut filter = Filter::default();
    if let Some(node) = node_uuid {
        filter.eq("node_uuid", node.to_string());
    }
    filter
}

impl Store {
    // ---- volume connectors ----

    /// Duplicate uuid or `(type, connector_id)` → `Duplicate`; a missing
    /// node → `NotFound`.
    pub async fn volume_connector_create(&self, c: &VolumeConnector) -> Result<VolumeConnector> {
        self.insert(ConnectorRow::from_record(c)?)
            .await
            .map_err(|e| {
                composite_duplicate(e, "volume connector", "connector_id", c.connector_id.clone())
            })?
            .into_record()
    }

    pub async fn volume_connector_get(&self, uuid: Uuid) -> Result<VolumeConnector> {
        self.get::<ConnectorRow>("uuid", &uuid.to_string()).await?.into_record()
    }

    /// Writes every field of `c` (by id and uuid), on condition that it is
    /// unchanged since it was read (its `updated_at`; a lost race → `Stale`).
    pub async fn volume_connector_update(&self, c: &VolumeConnector) -> Result<VolumeConnector> {
        self.update_unchanged(ConnectorRow::from_record(c)?, c.uuid, c.updated_at)
            .await
            .map_err(|e| {
                composite_duplicate(e, "volume connector", "connector_id", c.connector_id.clone())
            })?
            .into_record()
    }

    pub async fn volume_connector_delete(&self, uuid: Uuid) -> Result<()> {
        self.delete::<ConnectorRow>(uuid, None).await
    }

    pub async fn volume_connector_list(
        &self,
        query: &VolumeQuery<ConnectorSortKey>,
    ) -> Result<Vec<VolumeConnector>> {
        let rows: Vec<ConnectorRow> =
            self.list(node_filter(query.node_uuid), query.sort_key.column(), &query.page).await?;
        rows.into_iter().map(ConnectorRow::into_record).collect()
    }

    // ---- volume targets ----

    /// Duplicate uuid or `(node, boot_index)` → `Duplicate`; a missing
    /// node → `NotFound`.
    pub async fn volume_target_create(&self, t: &VolumeTarget) -> Result<VolumeTarget> {
        self.insert(TargetRow::from_record(t)?)
            .await
            .map_err(|e| {
                composite_duplicate(e, "volume target", "boot_index", t.boot_index.to_string())
            })?
            .into_record()
    }

    pub async fn volume_target_get(&self, uuid: Uuid) -> Result<VolumeTarget> {
        self.get::<TargetRow>("uuid", &uuid.to_string()).await?.into_record()
    }

    /// Writes every field of `t` (by id and uuid), on condition that it is
    /// unchanged since it was read (its `updated_at`; a lost race → `Stale`).
    pub async fn volume_target_update(&self, t: &VolumeTarget) -> Result<VolumeTarget> {
        self.update_unchanged(TargetRow::from_record(t)?, t.uuid, t.updated_at)
            .await
            .map_err(|e| {
                composite_duplicate(e, "volume target", "boot_index", t.boot_index.to_string())
            })?
            .into_record()
    }

    pub async fn volume_target_delete(&self, uuid: Uuid) -> Result<()> {
        self.delete::<TargetRow>(uuid, None).await
    }

    pub async fn volume_target_list(
        &self,
        query: &VolumeQuery<TargetSortKey>,
    ) -> Result<Vec<VolumeTarget>> {
        let rows: Vec<TargetRow> =
            self.list(node_filter(query.node_uuid), query.sort_key.column(), &query.page).await?;
        rows.into_iter().map(TargetRow::into_record).collect()
    }
}

//! Volume connectors and targets (boot from volume, API 1.32): their rows,
//! listings and store methods. Both go with their node (`ON DELETE CASCADE`).
//! A second connector with the same `(type, connector_id)`, or a second
//! target of a node with the same `boot_index`, is [`StoreError::Duplicate`]
//! on field `connector_id` / `boot_index`.

use ferric_types::{ConnectorType, Timestamp, VolumeConnector, VolumeTarget};
use uuid::Uuid;

use crate::db::Value;
use crate::query::Page;
use crate::rows::{to_json, Reference, Table};
use crate::sql::Filter;
use crate::{Result, Store, StoreError};

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

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ConnectorRow {
    id: i64,
    uuid: String,
    node_uuid: String,
    connector_type: String,
    connector_id: String,
    extra: String,
    created_at: String,
    updated_at: Option<String>,
}

impl Table for ConnectorRow {
    const TABLE: &'static str = "volume_connectors";
    const KIND: &'static str = "volume connector";
    const COLUMNS: &'static [&'static str] = &[
        "uuid",
        "node_uuid",
        "connector_type",
        "connector_id",
        "extra",
        "created_at",
        "updated_at",
    ];
    const REFERENCES: &'static [Reference] =
        &[Reference { column: "node_uuid", kind: "node", table: "nodes" }];

    fn id(&self) -> i64 {
        self.id
    }

    fn into_values(self) -> Vec<Value> {
        vec![
            self.uuid.into(),
            self.node_uuid.into(),
            self.connector_type.into(),
            self.connector_id.into(),
            self.extra.into(),
            self.created_at.into(),
            self.updated_at.into(),
        ]
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct TargetRow {
    id: i64,
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

impl Table for TargetRow {
    const TABLE: &'static str = "volume_targets";
    const KIND: &'static str = "volume target";
    const COLUMNS: &'static [&'static str] = &[
        "uuid",
        "node_uuid",
        "volume_type",
        "properties",
        "boot_index",
        "volume_id",
        "extra",
        "created_at",
        "updated_at",
    ];
    const REFERENCES: &'static [Reference] =
        &[Reference { column: "node_uuid", kind: "node", table: "nodes" }];

    fn id(&self) -> i64 {
        self.id
    }

    fn into_values(self) -> Vec<Value> {
        vec![
            self.uuid.into(),
            self.node_uuid.into(),
            self.volume_type.into(),
            self.properties.into(),
            self.boot_index.into(),
            self.volume_id.into(),
            self.extra.into(),
            self.created_at.into(),
            self.updated_at.into(),
        ]
    }
}

fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { what, detail: detail.to_string() }
}

fn uuid(what: &'static str, text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|err| corrupt(what, err))
}

fn time(what: &'static str, text: &str) -> Result<Timestamp> {
    Timestamp::parse(text).ok_or_else(|| corrupt(what, format!("unexpected value {text:?}")))
}

fn opt_time(what: &'static str, text: Option<String>) -> Result<Option<Timestamp>> {
    text.map(|text| time(what, &text)).transpose()
}

fn object(what: &'static str, text: &str) -> Result<ferric_types::JsonObject> {
    serde_json::from_str(text).map_err(|err| corrupt(what, err))
}

impl ConnectorRow {
    fn from_record(c: &VolumeConnector) -> Result<Self> {
        Ok(Self {
            id: c.id,
            uuid: c.uuid.to_string(),
            node_uuid: c.node_uuid.to_string(),
            connector_type: c.connector_type.as_str().to_owned(),
            connector_id: c.connector_id.clone(),
            extra: to_json("volume connector extra", &c.extra)?,
            created_at: c.created_at.to_text(),
            updated_at: c.updated_at.map(Timestamp::to_text),
        })
    }

    fn into_record(self) -> Result<VolumeConnector> {
        Ok(VolumeConnector {
            id: self.id,
            uuid: uuid("volume connector uuid", &self.uuid)?,
            node_uuid: uuid("volume connector node_uuid", &self.node_uuid)?,
            connector_type: ConnectorType::parse(&self.connector_type)
                .ok_or_else(|| corrupt("volume connector type", &self.connector_type))?,
            connector_id: self.connector_id,
            extra: object("volume connector extra", &self.extra)?,
            created_at: time("volume connector created_at", &self.created_at)?,
            updated_at: opt_time("volume connector updated_at", self.updated_at)?,
        })
    }
}

impl TargetRow {
    fn from_record(t: &VolumeTarget) -> Result<Self> {
        Ok(Self {
            id: t.id,
            uuid: t.uuid.to_string(),
            node_uuid: t.node_uuid.to_string(),
            volume_type: t.volume_type.clone(),
            properties: to_json("volume target properties", &t.properties)?,
            boot_index: t.boot_index,
            volume_id: t.volume_id.clone(),
            extra: to_json("volume target extra", &t.extra)?,
            created_at: t.created_at.to_text(),
            updated_at: t.updated_at.map(Timestamp::to_text),
        })
    }

    fn into_record(self) -> Result<VolumeTarget> {
        Ok(VolumeTarget {
            id: self.id,
            uuid: uuid("volume target uuid", &self.uuid)?,
            node_uuid: uuid("volume target node_uuid", &self.node_uuid)?,
            volume_type: self.volume_type,
            properties: object("volume target properties", &self.properties)?,
            boot_index: self.boot_index,
            volume_id: self.volume_id,
            extra: object("volume target extra", &self.extra)?,
            created_at: time("volume target created_at", &self.created_at)?,
            updated_at: opt_time("volume target updated_at", self.updated_at)?,
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
        StoreError::Database(err)
            if err.as_database_error().is_some_and(|e| e.is_unique_violation()) =>
        {
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

    /// Writes every field of `c` (by id and uuid).
    pub async fn volume_connector_update(&self, c: &VolumeConnector) -> Result<VolumeConnector> {
        let stored =
            self.update(ConnectorRow::from_record(c)?, c.uuid, None).await.map_err(|e| {
                composite_duplicate(e, "volume connector", "connector_id", c.connector_id.clone())
            })?;
        stored
            .ok_or_else(|| StoreError::NotFound {
                kind: "volume connector",
                ident: c.uuid.to_string(),
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

    pub async fn volume_target_update(&self, t: &VolumeTarget) -> Result<VolumeTarget> {
        let stored = self.update(TargetRow::from_record(t)?, t.uuid, None).await.map_err(|e| {
            composite_duplicate(e, "volume target", "boot_index", t.boot_index.to_string())
        })?;
        stored
            .ok_or_else(|| StoreError::NotFound {
                kind: "volume target",
                ident: t.uuid.to_string(),
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

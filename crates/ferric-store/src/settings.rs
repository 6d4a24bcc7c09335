//! BIOS settings and firmware components of nodes (migration 0007): what
//! the BMC last reported, replaced as a whole by the driver that reads it.
//! Both go with their node (`ON DELETE CASCADE`).

use ferric_types::{BiosSetting, FirmwareComponent, Timestamp};
use uuid::Uuid;

use crate::db::{Conn, Sql, Value};
use crate::rows::{from_json, parse, parse_opt, to_json};
use crate::{Result, Store, StoreError};

const BIOS_COLUMNS: &str = "node_uuid, name, value, attribute_type, allowable_values, \
     lower_bound, upper_bound, min_length, max_length, read_only, reset_required, is_unique, \
     created_at, updated_at";

const FIRMWARE_COLUMNS: &str = "node_uuid, component, initial_version, current_version, \
     last_version_flashed, vendor, model, serial_number, created_at, updated_at";

#[derive(Debug, sqlx::FromRow)]
struct BiosRow {
    node_uuid: String,
    name: String,
    value: Option<String>,
    attribute_type: Option<String>,
    allowable_values: Option<String>,
    lower_bound: Option<i64>,
    upper_bound: Option<i64>,
    min_length: Option<i64>,
    max_length: Option<i64>,
    read_only: Option<bool>,
    reset_required: Option<bool>,
    is_unique: Option<bool>,
    created_at: String,
    updated_at: Option<String>,
}

#[derive(Debug, sqlx::FromRow)]
struct FirmwareRow {
    node_uuid: String,
    component: String,
    initial_version: String,
    current_version: Option<String>,
    last_version_flashed: Option<String>,
    vendor: Option<String>,
    model: Option<String>,
    serial_number: Option<String>,
    created_at: String,
    updated_at: Option<String>,
}

impl BiosRow {
    fn into_record(self) -> Result<BiosSetting> {
        let allowable_values = self
            .allowable_values
            .map(|text| from_json("bios_settings.allowable_values", &text))
            .transpose()?;
        Ok(BiosSetting {
            node_uuid: parse("bios_settings.node_uuid", &self.node_uuid)?,
            name: self.name,
            value: self.value,
            attribute_type: self.attribute_type,
            allowable_values,
            lower_bound: self.lower_bound,
            upper_bound: self.upper_bound,
            min_length: self.min_length,
            max_length: self.max_length,
            read_only: self.read_only,
            reset_required: self.reset_required,
            unique: self.is_unique,
            created_at: Some(parse("bios_settings.created_at", &self.created_at)?),
            updated_at: parse_opt("bios_settings.updated_at", self.updated_at)?,
        })
    }
}

impl FirmwareRow {
    fn into_record(self) -> Result<FirmwareComponent> {
        Ok(FirmwareComponent {
            node_uuid: parse("firmware_components.node_uuid", &self.node_uuid)?,
            component: self.component,
            initial_version: self.initial_version,
            current_version: self.current_version,
            last_version_flashed: self.last_version_flashed,
            vendor: self.vendor,
            model: self.model,
            serial_number: self.serial_number,
            created_at: Some(parse("firmware_components.created_at", &self.created_at)?),
            updated_at: parse_opt("firmware_components.updated_at", self.updated_at)?,
        })
    }
}

impl Store {
    /// The BIOS settings of `node_uuid`, in the order they were first stored.
    pub async fn bios_settings_list(&self, node_uuid: Uuid) -> Result<Vec<BiosSetting>> {
        let sql = Sql::new(
            format!("SELECT {BIOS_COLUMNS} FROM bios_settings WHERE node_uuid = $1 ORDER BY id"),
            vec![node_uuid.to_string().into()],
        );
        let rows: Vec<BiosRow> = self.fetch_all(sql).await?;
        rows.into_iter().map(BiosRow::into_record).collect()
    }

    /// One BIOS setting of `node_uuid`, if it has one of that name.
    pub async fn bios_setting_get(
        &self,
        node_uuid: Uuid,
        name: &str,
    ) -> Result<Option<BiosSetting>> {
        let sql = Sql::new(
            format!("SELECT {BIOS_COLUMNS} FROM bios_settings WHERE node_uuid = $1 AND name = $2"),
            vec![node_uuid.to_string().into(), name.into()],
        );
        let row: Option<BiosRow> = self.fetch_optional(sql).await?;
        row.map(BiosRow::into_record).transpose()
    }

    /// Makes `settings` the BIOS settings of `node_uuid`: new names are
    /// created, changed ones updated (keeping `created_at`), and names not
    /// in `settings` removed, in one transaction. An empty list removes all.
    pub async fn bios_settings_replace(
        &self,
        node_uuid: Uuid,
        settings: &[BiosSetting],
    ) -> Result<()> {
        let node = node_uuid.to_string();
        let now = Timestamp::now().to_text();
        let mut tx = Conn::begin(&self.backend).await.map_err(StoreError::Database)?;
        let existing: Vec<(String,)> = tx
            .fetch_all(Sql::new(
                "SELECT name FROM bios_settings WHERE node_uuid = $1",
                vec![node.as_str().into()],
            ))
            .await
            .map_err(StoreError::Database)?;
        for (name,) in existing {
            if !settings.iter().any(|setting| setting.name == name) {
                tx.execute(Sql::new(
                    "DELETE FROM bios_settings WHERE node_uuid = $1 AND name = $2",
                    vec![node.as_str().into(), name.into()],
                ))
                .await
                .map_err(StoreError::Database)?;
            }
        }
        for setting in settings {
            let allowable = setting
                .allowable_values
                .as_ref()
                .map(|values| to_json("bios_settings.allowable_values", values))
                .transpose()?;
            let values: Vec<Value> = vec![
                node.as_str().into(),
                setting.name.as_str().into(),
                setting.value.clone().into(),
                setting.attribute_type.clone().into(),
                allowable.into(),
                setting.lower_bound.into(),
                setting.upper_bound.into(),
                setting.min_length.into(),
                setting.max_length.into(),
                setting.read_only.into(),
                setting.reset_required.into(),
                setting.unique.into(),
                now.as_str().into(),
            ];
            let sql = Sql::new(
                format!(
                    "INSERT INTO bios_settings ({BIOS_COLUMNS}) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL) \
                     ON CONFLICT (node_uuid, name) DO UPDATE SET value = excluded.value, \
                     attribute_type = excluded.attribute_type, \
                     allowable_values = excluded.allowable_values, \
                     lower_bound = excluded.lower_bound, upper_bound = excluded.upper_bound, \
                     min_length = excluded.min_length, max_length = excluded.max_length, \
                     read_only = excluded.read_only, reset_required = excluded.reset_required, \
                     is_unique = excluded.is_unique, updated_at = excluded.created_at"
                ),
                values,
            );
            tx.execute(sql).await.map_err(|error| foreign_key(error, node_uuid))?;
        }
        tx.commit().await.map_err(StoreError::Database)
    }

    /// The firmware components of `node_uuid`, in the order first stored.
    pub async fn firmware_list(&self, node_uuid: Uuid) -> Result<Vec<FirmwareComponent>> {
        let sql = Sql::new(
            format!(
                "SELECT {FIRMWARE_COLUMNS} FROM firmware_components WHERE node_uuid = $1 \
                 ORDER BY id"
            ),
            vec![node_uuid.to_string().into()],
        );
        let rows: Vec<FirmwareRow> = self.fetch_all(sql).await?;
        rows.into_iter().map(FirmwareRow::into_record).collect()
    }

    /// Records firmware components of `node_uuid`: new ones are created;
    /// known ones keep their `initial_version` and take the new current and
    /// flashed versions and identity.
    pub async fn firmware_put(
        &self,
        node_uuid: Uuid,
        components: &[FirmwareComponent],
    ) -> Result<()> {
        let node = node_uuid.to_string();
        let now = Timestamp::now().to_text();
        let mut tx = Conn::begin(&self.backend).await.map_err(StoreError::Database)?;
        for component in components {
            let sql = Sql::new(
                format!(
                    "INSERT INTO firmware_components ({FIRMWARE_COLUMNS}) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL) \
                     ON CONFLICT (node_uuid, component) DO UPDATE SET \
                     current_version = excluded.current_version, \
                     last_version_flashed = excluded.last_version_flashed, \
                     vendor = excluded.vendor, model = excluded.model, \
                     serial_number = excluded.serial_number, updated_at = excluded.created_at"
                ),
                vec![
                    node.as_str().into(),
                    component.component.as_str().into(),
                    component.initial_version.as_str().into(),
                    component.current_version.clone().into(),
                    component.last_version_flashed.clone().into(),
                    component.vendor.clone().into(),
                    component.model.clone().into(),
                    component.serial_number.clone().into(),
                    now.as_str().into(),
                ],
            );
            tx.execute(sql).await.map_err(|error| foreign_key(error, node_uuid))?;
        }
        tx.commit().await.map_err(StoreError::Database)
    }
}

/// A write for a node that does not exist is `NotFound`, not a database error.
fn foreign_key(error: sqlx::Error, node_uuid: Uuid) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::NotFound { kind: "node", ident: node_uuid.to_string() }
        }
        _ => StoreError::Database(error),
    }
}

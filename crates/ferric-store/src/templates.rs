//! Deploy templates and runbooks: one row each, steps (and a runbook's
//! traits) as JSON text. Names are unique (`Duplicate` on a clash); both are
//! found by UUID or by name.

use ferric_types::{DeployTemplate, Runbook, Timestamp};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use crate::db::Value;
use crate::query::Page;
use crate::rows::{Reference, Table};
use crate::sql::Filter;
use crate::{Result, Store, StoreError};

/// The columns a template or runbook listing may be sorted on (Ironic
/// refuses `extra` and `steps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TemplateSortKey {
    #[default]
    Id,
    Uuid,
    Name,
    CreatedAt,
    UpdatedAt,
    /// Runbooks only.
    Owner,
    /// Runbooks only.
    Public,
    /// Runbooks only.
    DisableRamdisk,
}

impl TemplateSortKey {
    /// The key named `text`; `runbook` admits the runbook-only columns.
    pub fn parse(text: &str, runbook: bool) -> Option<Self> {
        Some(match text {
            "id" => Self::Id,
            "uuid" => Self::Uuid,
            "name" => Self::Name,
            "created_at" => Self::CreatedAt,
            "updated_at" => Self::UpdatedAt,
            "owner" if runbook => Self::Owner,
            "public" if runbook => Self::Public,
            "disable_ramdisk" if runbook => Self::DisableRamdisk,
            _ => return None,
        })
    }

    /// The sort expression (nullable columns wrapped, as keyset paging needs).
    fn column(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Uuid => "uuid",
            Self::Name => "name",
            Self::CreatedAt => "created_at",
            Self::UpdatedAt => "COALESCE(updated_at, '')",
            Self::Owner => "COALESCE(owner, '')",
            Self::Public => "public",
            Self::DisableRamdisk => "disable_ramdisk",
        }
    }
}

/// A deploy template or runbook listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateQuery {
    pub sort_key: TemplateSortKey,
    pub page: Page,
    /// Runbooks only: those owned by this project, or public.
    pub project: Option<String>,
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct TemplateRow {
    id: i64,
    uuid: String,
    name: String,
    steps: String,
    extra: String,
    created_at: String,
    updated_at: Option<String>,
}

impl Table for TemplateRow {
    const TABLE: &'static str = "deploy_templates";
    const KIND: &'static str = "deploy template";
    const COLUMNS: &'static [&'static str] =
        &["uuid", "name", "steps", "extra", "created_at", "updated_at"];
    const REFERENCES: &'static [Reference] = &[];

    fn id(&self) -> i64 {
        self.id
    }

    fn into_values(self) -> Vec<Value> {
        vec![
            self.uuid.into(),
            self.name.into(),
            self.steps.into(),
            self.extra.into(),
            self.created_at.into(),
            self.updated_at.into(),
        ]
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RunbookRow {
    id: i64,
    uuid: String,
    name: String,
    description: Option<String>,
    steps: String,
    disable_ramdisk: bool,
    public: bool,
    owner: Option<String>,
    traits: String,
    extra: String,
    created_at: String,
    updated_at: Option<String>,
}

impl Table for RunbookRow {
    const TABLE: &'static str = "runbooks";
    const KIND: &'static str = "runbook";
    const COLUMNS: &'static [&'static str] = &[
        "uuid",
        "name",
        "description",
        "steps",
        "disable_ramdisk",
        "public",
        "owner",
        "traits",
        "extra",
        "created_at",
        "updated_at",
    ];
    const REFERENCES: &'static [Reference] = &[];

    fn id(&self) -> i64 {
        self.id
    }

    fn into_values(self) -> Vec<Value> {
        vec![
            self.uuid.into(),
            self.name.into(),
            self.description.into(),
            self.steps.into(),
            self.disable_ramdisk.into(),
            self.public.into(),
            self.owner.into(),
            self.traits.into(),
            self.extra.into(),
            self.created_at.into(),
            self.updated_at.into(),
        ]
    }
}

fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { what, detail: detail.to_string() }
}

fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|error| corrupt(what, error))
}

fn decode<T: DeserializeOwned>(what: &'static str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|error| corrupt(what, error))
}

fn uuid(what: &'static str, text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|_| corrupt(what, format!("unexpected value {text:?}")))
}

fn time(what: &'static str, text: &str) -> Result<Timestamp> {
    Timestamp::parse(text).ok_or_else(|| corrupt(what, format!("unexpected value {text:?}")))
}

impl TemplateRow {
    fn from_template(template: &DeployTemplate) -> Result<Self> {
        Ok(Self {
            id: template.id,
            uuid: template.uuid.to_string(),
            name: template.name.clone(),
            steps: encode("deploy template steps", &template.steps)?,
            extra: encode("deploy template extra", &template.extra)?,
            created_at: template.created_at.to_text(),
            updated_at: template.updated_at.map(Timestamp::to_text),
        })
    }

    fn into_template(self) -> Result<DeployTemplate> {
        Ok(DeployTemplate {
            id: self.id,
            uuid: uuid("deploy template uuid", &self.uuid)?,
            name: self.name,
            steps: decode("deploy template steps", &self.steps)?,
            extra: decode("deploy template extra", &self.extra)?,
            created_at: time("deploy template created_at", &self.created_at)?,
            updated_at: self
                .updated_at
                .map(|text| time("deploy template updated_at", &text))
                .transpose()?,
        })
    }
}

impl RunbookRow {
    fn from_runbook(runbook: &Runbook) -> Result<Self> {
        Ok(Self {
            id: runbook.id,
            uuid: runbook.uuid.to_string(),
            name: runbook.name.clone(),
            description: runbook.description.clone(),
            steps: encode("runbook steps", &runbook.steps)?,
            disable_ramdisk: runbook.disable_ramdisk,
            public: runbook.public,
            owner: runbook.owner.clone(),
            traits: encode("runbook traits", &runbook.traits)?,
            extra: encode("runbook extra", &runbook.extra)?,
            created_at: runbook.created_at.to_text(),
            updated_at: runbook.updated_at.map(Timestamp::to_text),
        })
    }

    fn into_runbook(self) -> Result<Runbook> {
        Ok(Runbook {
            id: self.id,
            uuid: uuid("runbook uuid", &self.uuid)?,
            name: self.name,
            description: self.description,
            steps: decode("runbook steps", &self.steps)?,
            disable_ramdisk: self.disable_ramdisk,
            public: self.public,
            owner: self.owner,
            traits: decode("runbook traits", &self.traits)?,
            extra: decode("runbook extra", &self.extra)?,
            created_at: time("runbook created_at", &self.created_at)?,
            updated_at: self
                .updated_at
                .map(|text| time("runbook updated_at", &text))
                .transpose()?,
        })
    }
}

/// The column and value to find `ident` by: its UUID if it parses as one,
/// its name otherwise.
fn lookup(ident: &str) -> (&'static str, String) {
    match Uuid::parse_str(ident) {
        Ok(uuid) => ("uuid", uuid.to_string()),
        Err(_) => ("name", ident.to_owned()),
    }
}

impl Store {
    // ---- deploy templates ----

    /// Inserts a template; a taken uuid or name → `Duplicate`.
    pub async fn deploy_template_create(
        &self,
        template: &DeployTemplate,
    ) -> Result<DeployTemplate> {
        self.insert(TemplateRow::from_template(template)?).await?.into_template()
    }

    /// The template with this UUID or name.
    pub async fn deploy_template_get(&self, ident: &str) -> Result<DeployTemplate> {
        let (column, value) = lookup(ident);
        self.get::<TemplateRow>(column, &value).await?.into_template()
    }

    /// Rewrites a template (`updated_at` set); a taken name → `Duplicate`.
    pub async fn deploy_template_update(
        &self,
        template: &DeployTemplate,
    ) -> Result<DeployTemplate> {
        let row = TemplateRow::from_template(template)?;
        let stored = self.update(row, template.uuid, None).await?;
        stored
            .ok_or_else(|| StoreError::NotFound {
                kind: "deploy template",
                ident: template.uuid.to_string(),
            })?
            .into_template()
    }

    pub async fn deploy_template_delete(&self, uuid: Uuid) -> Result<()> {
        self.delete::<TemplateRow>(uuid, None).await
    }

    pub async fn deploy_template_list(&self, query: &TemplateQuery) -> Result<Vec<DeployTemplate>> {
        let rows: Vec<TemplateRow> =
            self.list(Filter::default(), query.sort_key.column(), &query.page).await?;
        rows.into_iter().map(TemplateRow::into_template).collect()
    }

    /// The templates named by any of `names` (instance traits), by id.
    pub async fn deploy_templates_named(&self, names: &[String]) -> Result<Vec<DeployTemplate>> {
        let mut filter = Filter::default();
        filter.any_of("name", names.iter().map(String::as_str));
        let page = Page::default();
        let rows: Vec<TemplateRow> = self.list(filter, "id", &page).await?;
        rows.into_iter().map(TemplateRow::into_template).collect()
    }

    // ---- runbooks ----

    /// Inserts a runbook; a taken uuid or name → `Duplicate`.
    pub async fn runbook_create(&self, runbook: &Runbook) -> Result<Runbook> {
        self.insert(RunbookRow::from_runbook(runbook)?).await?.into_runbook()
    }

    /// The runbook with this UUID or name.
    pub async fn runbook_get(&self, ident: &str) -> Result<Runbook> {
        let (column, value) = lookup(ident);
        self.get::<RunbookRow>(column, &value).await?.into_runbook()
    }

    /// Rewrites a runbook (`updated_at` set); a taken name → `Duplicate`.
    pub async fn runbook_update(&self, runbook: &Runbook) -> Result<Runbook> {
        let row = RunbookRow::from_runbook(runbook)?;
        let stored = self.update(row, runbook.uuid, None).await?;
        stored
            .ok_or_else(|| StoreError::NotFound {
                kind: "runbook",
                ident: runbook.uuid.to_string(),
            })?
            .into_runbook()
    }

    pub async fn runbook_delete(&self, uuid: Uuid) -> Result<()> {
        self.delete::<RunbookRow>(uuid, None).await
    }

    /// Filters on `project` (owned by it, or public).
    pub async fn runbook_list(&self, query: &TemplateQuery) -> Result<Vec<Runbook>> {
        let mut filter = Filter::default();
        if let Some(project) = &query.project {
            let p = filter.arg(project.as_str());
            let yes = filter.arg(true);
            filter.and(format!("(owner = {p} OR public = {yes})"));
        }
        let rows: Vec<RunbookRow> = self.list(filter, query.sort_key.column(), &query.page).await?;
        rows.into_iter().map(RunbookRow::into_runbook).collect()
    }
}

//! Deploy templates and runbooks: one row each, steps (and a runbook's
//! traits) as JSON text. Names are unique (`Duplicate` on a clash); both are
//! found by UUID or by name.

use ferric_types::{DeployTemplate, Runbook};
use uuid::Uuid;

use crate::query::Page;
use crate::rows::{from_json, opt_text, parse, parse_opt, table, text, to_json};
use crate::sql::Filter;
use crate::{Result, Store};

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

table! {
    TemplateRow in "deploy_templates", kind "deploy template",
    references [],
    {
        uuid: String,
        name: String,
        steps: String,
        extra: String,
        created_at: String,
        updated_at: Option<String>,
    }
}

table! {
    RunbookRow in "runbooks", kind "runbook",
    references [],
    {
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
}

impl TemplateRow {
    fn from_template(template: &DeployTemplate) -> Result<Self> {
        Ok(Self {
            id: template.id,
            uuid: text(&template.uuid),
            name: template.name.clone(),
            steps: to_json("deploy template steps", &template.steps)?,
            extra: to_json("deploy template extra", &template.extra)?,
            created_at: text(&template.created_at),
            updated_at: opt_text(&template.updated_at),
        })
    }

    fn into_template(self) -> Result<DeployTemplate> {
        Ok(DeployTemplate {
            id: self.id,
            uuid: parse("deploy template uuid", &self.uuid)?,
            name: self.name,
            steps: from_json("deploy template steps", &self.steps)?,
            extra: from_json("deploy template extra", &self.extra)?,
            created_at: parse("deploy template created_at", &self.created_at)?,
            updated_at: parse_opt("deploy template updated_at", self.updated_at)?,
        })
    }
}

impl RunbookRow {
    fn from_runbook(runbook: &Runbook) -> Result<Self> {
        Ok(Self {
            id: runbook.id,
            uuid: text(&runbook.uuid),
            name: runbook.name.clone(),
            description: runbook.description.clone(),
            steps: to_json("runbook steps", &runbook.steps)?,
            disable_ramdisk: runbook.disable_ramdisk,
            public: runbook.public,
            owner: runbook.owner.clone(),
            traits: to_json("runbook traits", &runbook.traits)?,
            extra: to_json("runbook extra", &runbook.extra)?,
            created_at: text(&runbook.created_at),
            updated_at: opt_text(&runbook.updated_at),
        })
    }

    fn into_runbook(self) -> Result<Runbook> {
        Ok(Runbook {
            id: self.id,
            uuid: parse("runbook uuid", &self.uuid)?,
            name: self.name,
            description: self.description,
            steps: from_json("runbook steps", &self.steps)?,
            disable_ramdisk: self.disable_ramdisk,
            public: self.public,
            owner: self.owner,
            traits: from_json("runbook traits", &self.traits)?,
            extra: from_json("runbook extra", &self.extra)?,
            created_at: parse("runbook created_at", &self.created_at)?,
            updated_at: parse_opt("runbook updated_at", self.updated_at)?,
        })
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
        self.get_by_uuid_or_name::<TemplateRow>(ident).await?.into_template()
    }

    /// Rewrites a template (`updated_at` set) on condition that it is
    /// unchanged since it was read (a lost race → `Stale`); a taken name →
    /// `Duplicate`.
    pub async fn deploy_template_update(
        &self,
        template: &DeployTemplate,
    ) -> Result<DeployTemplate> {
        let row = TemplateRow::from_template(template)?;
        self.update_unchanged(row, template.uuid, template.updated_at).await?.into_template()
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
        self.get_by_uuid_or_name::<RunbookRow>(ident).await?.into_runbook()
    }

    /// Rewrites a runbook (`updated_at` set) on condition that it is
    /// unchanged since it was read (a lost race → `Stale`); a taken name →
    /// `Duplicate`.
    pub async fn runbook_update(&self, runbook: &Runbook) -> Result<Runbook> {
        let row = RunbookRow::from_runbook(runbook)?;
        self.update_unchanged(row, runbook.uuid, runbook.updated_at).await?.into_runbook()
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

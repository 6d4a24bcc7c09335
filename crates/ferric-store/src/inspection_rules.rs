//! Inspection rules (API 1.96): rows, listings and store methods.
//! Conditions and actions are stored as their wire JSON and re-validated
//! when read, so a stored rule is always a typed one.

use ferric_types::inspection::{parse_actions, parse_conditions};
use ferric_types::{InspectionRule, Phase};
use serde_json::Value as Json;
use uuid::Uuid;

use crate::query::Page;
use crate::rows::{corrupt, from_json, opt_text, parse, parse_opt, table, text, to_json};
use crate::sql::Filter;
use crate::{Result, Store};

/// The columns a rule listing may be sorted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuleSortKey {
    #[default]
    Id,
    Uuid,
    Priority,
    Description,
    Phase,
    Sensitive,
    CreatedAt,
    UpdatedAt,
}

impl RuleSortKey {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "id" => Self::Id,
            "uuid" => Self::Uuid,
            "priority" => Self::Priority,
            "description" => Self::Description,
            "phase" => Self::Phase,
            "sensitive" => Self::Sensitive,
            "created_at" => Self::CreatedAt,
            "updated_at" => Self::UpdatedAt,
            _ => return None,
        })
    }

    fn column(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Uuid => "uuid",
            Self::Priority => "priority",
            Self::Description => "COALESCE(description, '')",
            Self::Phase => "phase",
            Self::Sensitive => "sensitive",
            Self::CreatedAt => "created_at",
            Self::UpdatedAt => "COALESCE(updated_at, '')",
        }
    }
}

/// A rule listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleQuery {
    pub phase: Option<Phase>,
    pub sort_key: RuleSortKey,
    pub page: Page,
}

table! {
    RuleRow in "inspection_rules", kind "inspection rule",
    references [],
    {
        uuid: String,
        description: Option<String>,
        priority: i64,
        sensitive: bool,
        phase: String,
        conditions: String,
        actions: String,
        built_in: bool,
        created_at: String,
        updated_at: Option<String>,
    }
}

impl RuleRow {
    fn from_record(rule: &InspectionRule) -> Result<Self> {
        let conditions: Vec<Json> = rule.conditions.iter().map(|c| c.to_json()).collect();
        let actions: Vec<Json> = rule.actions.iter().map(|a| a.to_json()).collect();
        Ok(Self {
            id: rule.id,
            uuid: text(&rule.uuid),
            description: rule.description.clone(),
            priority: rule.priority,
            sensitive: rule.sensitive,
            phase: text(&rule.phase),
            conditions: to_json("inspection rule conditions", &conditions)?,
            actions: to_json("inspection rule actions", &actions)?,
            built_in: rule.built_in,
            created_at: text(&rule.created_at),
            updated_at: opt_text(&rule.updated_at),
        })
    }

    fn into_record(self) -> Result<InspectionRule> {
        let conditions: Json = from_json("inspection rule conditions", &self.conditions)?;
        let actions: Json = from_json("inspection rule actions", &self.actions)?;
        Ok(InspectionRule {
            id: self.id,
            uuid: parse("inspection rule uuid", &self.uuid)?,
            description: self.description,
            priority: self.priority,
            sensitive: self.sensitive,
            phase: parse("inspection rule phase", &self.phase)?,
            conditions: parse_conditions(Some(&conditions))
                .map_err(|e| corrupt("inspection rule conditions", e))?,
            actions: parse_actions(Some(&actions))
                .map_err(|e| corrupt("inspection rule actions", e))?,
            built_in: self.built_in,
            created_at: parse("inspection rule created_at", &self.created_at)?,
            updated_at: parse_opt("inspection rule updated_at", self.updated_at)?,
        })
    }
}

impl Store {
    /// Duplicate uuid → `Duplicate`.
    pub async fn inspection_rule_create(&self, rule: &InspectionRule) -> Result<InspectionRule> {
        self.insert(RuleRow::from_record(rule)?).await?.into_record()
    }

    pub async fn inspection_rule_get(&self, uuid: Uuid) -> Result<InspectionRule> {
        self.get::<RuleRow>("uuid", &uuid.to_string()).await?.into_record()
    }

    /// Writes every field of `rule` (by id and uuid), on condition that it
    /// is unchanged since it was read (its `updated_at`; a lost race →
    /// `Stale`).
    pub async fn inspection_rule_update(&self, rule: &InspectionRule) -> Result<InspectionRule> {
        let row = RuleRow::from_record(rule)?;
        self.update_unchanged(row, rule.uuid, rule.updated_at).await?.into_record()
    }

    pub async fn inspection_rule_delete(&self, uuid: Uuid) -> Result<()> {
        self.delete::<RuleRow>(uuid, None).await
    }

    pub async fn inspection_rule_list(&self, query: &RuleQuery) -> Result<Vec<InspectionRule>> {
        let mut filter = Filter::default();
        if let Some(phase) = query.phase {
            filter.eq("phase", phase.as_str());
        }
        let rows: Vec<RuleRow> = self.list(filter, query.sort_key.column(), &query.page).await?;
        rows.into_iter().map(RuleRow::into_record).collect()
    }

    /// Every rule of `phase`, in creation order (for the inspection that
    /// evaluates them).
    pub async fn inspection_rules_for_phase(&self, phase: Phase) -> Result<Vec<InspectionRule>> {
        let query = RuleQuery { phase: Some(phase), ..RuleQuery::default() };
        let page = Page { limit: None, ..query.page.clone() };
        self.inspection_rule_list(&RuleQuery { page, ..query }).await
    }
}

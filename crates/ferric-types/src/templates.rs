//! Deploy templates (1.55) and runbooks (1.92): named step lists an operator
//! writes once and applies to many nodes. A deploy template adds its steps to
//! a deploy when the instance asks for the template's name as a trait; a
//! runbook stands in for `clean_steps`/`service_steps`. Here are the records
//! and the checks Ironic makes on their input; storing and applying them is
//! the store's and the conductor's business.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::driver::InterfaceKind;
use crate::records::{JsonObject, Timestamp};
use crate::validate::{is_valid_logical_name, is_valid_trait};

/// The interfaces whose steps a template or runbook may name (Ironic's
/// deploying and cleaning interface priorities: the same seven).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepInterface {
    Bios,
    Deploy,
    Firmware,
    Management,
    Power,
    Raid,
    Vendor,
}

impl StepInterface {
    pub const ALL: [StepInterface; 7] = [
        Self::Bios,
        Self::Deploy,
        Self::Firmware,
        Self::Management,
        Self::Power,
        Self::Raid,
        Self::Vendor,
    ];

    pub fn kind(self) -> InterfaceKind {
        match self {
            Self::Bios => InterfaceKind::Bios,
            Self::Deploy => InterfaceKind::Deploy,
            Self::Firmware => InterfaceKind::Firmware,
            Self::Management => InterfaceKind::Management,
            Self::Power => InterfaceKind::Power,
            Self::Raid => InterfaceKind::Raid,
            Self::Vendor => InterfaceKind::Vendor,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.kind().as_str()
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|interface| interface.as_str() == text)
    }
}

impl fmt::Display for StepInterface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A deploy template's step: it runs at `priority` among the driver's deploy
/// steps; priority 0 disables the driver's step of that name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateStep {
    pub interface: StepInterface,
    pub step: String,
    pub args: JsonObject,
    pub priority: u32,
}

/// A runbook's step: runbooks run their steps by ascending `order`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunbookStep {
    pub interface: StepInterface,
    pub step: String,
    #[serde(default)]
    pub args: JsonObject,
    pub order: u32,
}

impl RunbookStep {
    /// The step as a user-requested clean or service step.
    pub fn to_user_step(&self) -> Value {
        serde_json::json!({
            "interface": self.interface,
            "step": self.step,
            "args": self.args,
            "order": self.order,
        })
    }
}

/// A deploy template.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployTemplate {
    pub id: i64,
    pub uuid: Uuid,
    /// A trait name: the template applies when the instance asks for it.
    pub name: String,
    pub steps: Vec<TemplateStep>,
    pub extra: JsonObject,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

/// A runbook.
#[derive(Debug, Clone, PartialEq)]
pub struct Runbook {
    pub id: i64,
    pub uuid: Uuid,
    pub name: String,
    /// Shown from 1.112.
    pub description: Option<String>,
    pub steps: Vec<RunbookStep>,
    /// Run the steps without booting the deploy ramdisk.
    pub disable_ramdisk: bool,
    /// Usable by every project (a public runbook has no owner).
    pub public: bool,
    /// The project that owns it.
    pub owner: Option<String>,
    /// The node traits that approve its use (1.112); older versions match
    /// the name against the node's traits instead.
    pub traits: Vec<String>,
    pub extra: JsonObject,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

impl Runbook {
    /// The steps in the order they run: ascending `order`, ties as listed.
    pub fn ordered_steps(&self) -> Vec<RunbookStep> {
        let mut steps = self.steps.clone();
        steps.sort_by_key(|step| step.order);
        steps
    }
}

/// Why a template or runbook was refused. The messages are what API clients
/// see (as 400s).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("Invalid name \"{0}\": it must be a valid trait (CUSTOM_ followed by upper-case letters, digits or _, or a standard trait), at most 255 characters")]
    NameNotTrait(String),
    #[error("Invalid name \"{0}\": use 1 to 255 letters, digits, '-', '.', '_' or '~'")]
    NameNotLogical(String),
    #[error("steps must be a list with at least one step")]
    NoSteps,
    #[error("Step {index} must be a JSON object")]
    StepNotObject { index: usize },
    #[error("Step {index} has no \"{field}\"; every step needs {required}")]
    MissingField { index: usize, field: &'static str, required: &'static str },
    #[error("Step {index} has an unknown field \"{field}\"; allowed: {allowed}")]
    UnknownField { index: usize, field: String, allowed: &'static str },
    #[error("Step {index}: invalid interface {value}; allowed: bios, deploy, firmware, management, power, raid, vendor")]
    UnknownInterface { index: usize, value: String },
    #[error("Step {index}: \"step\" must be a non-empty string")]
    BadStepName { index: usize },
    #[error("Step {index}: \"args\" must be a JSON object")]
    ArgsNotObject { index: usize },
    #[error("Step {index}: \"{field}\" must be a non-negative integer, got {value}")]
    BadNumber { index: usize, field: &'static str, value: String },
    #[error("Duplicate steps: a step list cannot name the same interface and step twice ({0})")]
    Duplicate(String),
}

/// Checks a deploy template's name: a trait, as Ironic requires.
pub fn check_template_name(name: &str) -> Result<(), TemplateError> {
    if is_valid_trait(name) {
        Ok(())
    } else {
        Err(TemplateError::NameNotTrait(name.to_owned()))
    }
}

/// Checks a runbook's name: a trait before 1.112, a logical name from 1.112.
pub fn check_runbook_name(name: &str, logical: bool) -> Result<(), TemplateError> {
    match logical {
        true if is_valid_logical_name(name) => Ok(()),
        true => Err(TemplateError::NameNotLogical(name.to_owned())),
        false => check_template_name(name),
    }
}

/// One step as the wire gives it, before the number field is named.
struct RawStep {
    interface: StepInterface,
    step: String,
    args: JsonObject,
    number: u32,
}

fn parse_steps(
    value: &Value,
    number_field: &'static str,
    args_required: bool,
    required: &'static str,
    allowed: &'static str,
) -> Result<Vec<RawStep>, TemplateError> {
    let list = value.as_array().filter(|list| !list.is_empty()).ok_or(TemplateError::NoSteps)?;
    let mut steps = Vec::with_capacity(list.len());
    let mut seen = BTreeSet::new();
    let mut duplicates = BTreeSet::new();
    for (index, item) in list.iter().enumerate() {
        let object = item.as_object().ok_or(TemplateError::StepNotObject { index })?;
        for field in object.keys() {
            if !matches!(field.as_str(), "interface" | "step" | "args")
                && field.as_str() != number_field
            {
                return Err(TemplateError::UnknownField { index, field: field.clone(), allowed });
            }
        }
        let missing = |field| TemplateError::MissingField { index, field, required };
        let interface = object.get("interface").ok_or_else(|| missing("interface"))?;
        let interface = interface.as_str().and_then(StepInterface::parse).ok_or_else(|| {
            TemplateError::UnknownInterface { index, value: interface.to_string() }
        })?;
        let step = object.get("step").ok_or_else(|| missing("step"))?;
        let step = step
            .as_str()
            .filter(|name| !name.is_empty())
            .ok_or(TemplateError::BadStepName { index })?;
        let args = match object.get("args") {
            None if args_required => return Err(missing("args")),
            None => JsonObject::new(),
            Some(Value::Object(args)) => args.clone(),
            Some(_) => return Err(TemplateError::ArgsNotObject { index }),
        };
        let number = object.get(number_field).ok_or_else(|| missing(number_field))?;
        let parsed = match number {
            Value::Number(n) => n.as_u64(),
            // Ironic also takes a string of digits.
            Value::String(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
                text.parse::<u64>().ok()
            }
            _ => None,
        };
        let number = parsed
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| i32::try_from(*n).is_ok())
            .ok_or_else(|| TemplateError::BadNumber {
                index,
                field: number_field,
                value: number.to_string(),
            })?;
        if !seen.insert((interface, step.to_owned())) {
            duplicates.insert(format!("interface: {interface}, step: {step}"));
        }
        steps.push(RawStep { interface, step: step.to_owned(), args, number });
    }
    if !duplicates.is_empty() {
        return Err(TemplateError::Duplicate(
            duplicates.into_iter().collect::<Vec<_>>().join("; "),
        ));
    }
    Ok(steps)
}

/// Parses and checks a deploy template's `steps`: each needs `interface`,
/// `step`, `args` (an object) and `priority` (an integer ≥ 0); no
/// interface/step pair twice.
pub fn parse_template_steps(value: &Value) -> Result<Vec<TemplateStep>, TemplateError> {
    let steps = parse_steps(
        value,
        "priority",
        true,
        "interface, step, args and priority",
        "interface, step, args, priority",
    )?;
    Ok(steps
        .into_iter()
        .map(|raw| TemplateStep {
            interface: raw.interface,
            step: raw.step,
            args: raw.args,
            priority: raw.number,
        })
        .collect())
}

/// Parses and checks a runbook's `steps`: each needs `interface`, `step`
/// and `order` (an integer ≥ 0); `args`, if given, is an object.
pub fn parse_runbook_steps(value: &Value) -> Result<Vec<RunbookStep>, TemplateError> {
    let steps = parse_steps(
        value,
        "order",
        false,
        "interface, step and order",
        "interface, step, args, order",
    )?;
    Ok(steps
        .into_iter()
        .map(|raw| RunbookStep {
            interface: raw.interface,
            step: raw.step,
            args: raw.args,
            order: raw.number,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn template_steps_parse_and_reject() {
        let steps = parse_template_steps(&json!([
            {"interface": "bios", "step": "apply_configuration", "args": {"x": 1}, "priority": 150},
            {"interface": "deploy", "step": "deploy", "args": {}, "priority": "0"},
        ]))
        .expect("valid");
        assert_eq!(steps[0].interface, StepInterface::Bios);
        assert_eq!(steps[1].priority, 0);
        let cases = [
            (json!([]), TemplateError::NoSteps),
            (json!({}), TemplateError::NoSteps),
            (json!([1]), TemplateError::StepNotObject { index: 0 }),
            (
                json!([{"interface": "boot", "step": "x", "args": {}, "priority": 1}]),
                TemplateError::UnknownInterface { index: 0, value: "\"boot\"".into() },
            ),
            (
                json!([{"interface": "bios", "args": {}, "priority": 1}]),
                TemplateError::MissingField {
                    index: 0,
                    field: "step",
                    required: "interface, step, args and priority",
                },
            ),
            (
                json!([{"interface": "bios", "step": "x", "args": [], "priority": 1}]),
                TemplateError::ArgsNotObject { index: 0 },
            ),
            (
                json!([{"interface": "bios", "step": "x", "args": {}, "priority": -1}]),
                TemplateError::BadNumber { index: 0, field: "priority", value: "-1".into() },
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_template_steps(&input).err(), Some(expected), "{input}");
        }
        let duplicate = json!([
            {"interface": "bios", "step": "x", "args": {}, "priority": 1},
            {"interface": "bios", "step": "x", "args": {}, "priority": 2},
        ]);
        assert!(matches!(parse_template_steps(&duplicate), Err(TemplateError::Duplicate(_))));
    }

    #[test]
    fn runbook_steps_need_order_not_priority() {
        let steps = parse_runbook_steps(&json!([
            {"interface": "raid", "step": "create_configuration", "order": 2},
            {"interface": "bios", "step": "apply", "args": {"a": 1}, "order": 1},
        ]))
        .expect("valid");
        let book = Runbook {
            id: 0,
            uuid: Uuid::nil(),
            name: "CUSTOM_X".into(),
            description: None,
            steps,
            disable_ramdisk: false,
            public: false,
            owner: None,
            traits: vec![],
            extra: JsonObject::new(),
            created_at: Timestamp::now(),
            updated_at: None,
        };
        let names: Vec<String> = book.ordered_steps().into_iter().map(|s| s.step).collect();
        assert_eq!(names, ["apply", "create_configuration"]);
        let with_priority = json!([{"interface": "raid", "step": "x", "priority": 1}]);
        assert!(matches!(
            parse_runbook_steps(&with_priority),
            Err(TemplateError::UnknownField { .. })
        ));
    }

    #[test]
    fn names() {
        assert!(check_template_name("CUSTOM_RAID1").is_ok());
        assert!(check_template_name("custom_raid").is_err());
        assert!(check_runbook_name("my-runbook", true).is_ok());
        assert!(check_runbook_name("my-runbook", false).is_err());
        assert!(check_runbook_name("my runbook", true).is_err());
    }
}

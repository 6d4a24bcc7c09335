//! Inspection rules (API 1.96): conditions checked against what inspection
//! found, and actions to run on the node when they all hold.
//!
//! Three parts, all pure: the record and its typed operators; validation
//! of user input ([`parse_conditions`], [`parse_actions`]) with Ironic's
//! operator names and argument lists; and the evaluator ([`evaluate`]) that
//! turns rules plus inventory, plugin data and node fields into the list of
//! actions to apply ([`PlannedAction`]), which [`apply_to_node`],
//! [`apply_to_ports`] and [`apply_to_plugin_data`] apply to a [`Node`], its
//! [`Port`]s and its plugin data.

use std::cmp::Ordering;
use std::fmt;
use std::net::IpAddr;

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::records::{JsonObject, Node, Port, Timestamp};
use crate::validate::{is_valid_trait, normalize_mac};

/// Errors in a rule as submitted (each message is shown to the user).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(pub String);

impl RuleError {
    /// One error, or Ironic's "Multiple validation errors occurred: a; b".
    fn from_list(errors: Vec<String>) -> Option<Self> {
        match errors.len() {
            0 => None,
            1 => errors.into_iter().next().map(RuleError),
            _ => Some(RuleError(format!(
                "Multiple validation errors occurred: {}",
                errors.join("; ")
            ))),
        }
    }
}

/// Why evaluating or applying a rule failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// A condition could not be checked (wrong types, bad network, ...).
    #[error("condition {op} of inspection rule {rule} could not be checked: {reason}")]
    Condition { rule: Uuid, op: &'static str, reason: String },
    /// A `fail` action ran: inspection must fail with this message.
    #[error("{0}")]
    Failed(String),
    /// An action could not be applied to the node.
    #[error("action {op} could not be applied: {reason}")]
    Action { op: &'static str, reason: String },
    /// A condition (`what` = "condition") or action ("action") of a
    /// sensitive rule failed. Its reason would quote argument values, which
    /// may be secrets, so it names only the operator.
    #[error(
        "{what} {op} of sensitive inspection rule {rule} failed (details withheld: the rule is \
         sensitive)"
    )]
    Withheld { rule: Uuid, what: &'static str, op: &'static str },
}

impl EvalError {
    /// The error as `action` may report it: for an action of a sensitive
    /// rule, without argument values (the operator and rule only; a `fail`
    /// action's message is withheld too).
    pub fn withheld_for(self, action: &PlannedAction) -> EvalError {
        if !action.sensitive {
            return self;
        }
        match self {
            EvalError::Action { op, .. } => {
                EvalError::Withheld { rule: action.rule, what: "action", op }
            }
            EvalError::Failed(_) => EvalError::Failed(failed_withheld(action.rule)),
            other => other,
        }
    }
}

/// What a `fail` action of the sensitive rule `rule` reports instead of its
/// message.
pub fn failed_withheld(rule: Uuid) -> String {
    format!("Inspection failed by sensitive inspection rule {rule} (message withheld)")
}

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)*
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$(Self::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }

            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|value| value.as_str() == text)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// A condition operator (`!op` inverts it).
    ConditionOp {
        Eq => "eq",
        Lt => "lt",
        Gt => "gt",
        IsEmpty => "is-empty",
        InNet => "in-net",
        Matches => "matches",
        Contains => "contains",
        OneOf => "one-of",
        IsNone => "is-none",
        IsTrue => "is-true",
        IsFalse => "is-false",
    }
);

wire_enum!(
    /// An action operator.
    ActionOp {
        Fail => "fail",
        Log => "log",
        SetAttribute => "set-attribute",
        ExtendAttribute => "extend-attribute",
        DelAttribute => "del-attribute",
        SetCapability => "set-capability",
        UnsetCapability => "unset-capability",
        AddTrait => "add-trait",
        RemoveTrait => "remove-trait",
        SetPluginData => "set-plugin-data",
        ExtendPluginData => "extend-plugin-data",
        UnsetPluginData => "unset-plugin-data",
        SetPortAttribute => "set-port-attribute",
        ExtendPortAttribute => "extend-port-attribute",
        DelPortAttribute => "del-port-attribute",
        ApiCall => "api-call",
    }
);

wire_enum!(
    /// How the results of a looped condition combine.
    Multiple {
        Any => "any",
        All => "all",
        First => "first",
        Last => "last",
    }
);

wire_enum!(
    /// When a rule runs. Ironic knows one phase.
    Phase {
        Main => "main",
    }
);

/// Argument names: (required, optional), in positional order.
type Signature = (&'static [&'static str], &'static [&'static str]);

impl ConditionOp {
    fn signature(self) -> Signature {
        match self {
            Self::Eq | Self::Lt | Self::Gt => (&["values"], &["force_strings"]),
            Self::IsEmpty | Self::IsNone | Self::IsTrue | Self::IsFalse => (&["value"], &[]),
            Self::InNet => (&["address", "subnet"], &[]),
            Self::Matches | Self::Contains => (&["value", "regex"], &[]),
            Self::OneOf => (&["value"], &["values"]),
        }
    }

    /// Arguments interpolated outside loops.
    fn formatted(self) -> &'static [&'static str] {
        match self {
            Self::Eq | Self::Lt | Self::Gt => &["values"],
            Self::InNet => &["address", "subnet"],
            _ => &["value"],
        }
    }
}

impl ActionOp {
    fn signature(self) -> Signature {
        match self {
            Self::Fail => (&["msg"], &[]),
            Self::Log => (&["msg"], &["level"]),
            Self::SetAttribute | Self::SetPluginData => (&["path", "value"], &[]),
            Self::ExtendAttribute | Self::ExtendPluginData => (&["path", "value"], &["unique"]),
            Self::DelAttribute | Self::UnsetPluginData => (&["path"], &[]),
            Self::SetCapability => (&["name", "value"], &[]),
            Self::UnsetCapability | Self::AddTrait | Self::RemoveTrait => (&["name"], &[]),
            Self::SetPortAttribute => (&["port_id", "path", "value"], &[]),
            Self::ExtendPortAttribute => (&["port_id", "path", "value"], &["unique"]),
            Self::DelPortAttribute => (&["port_id", "path"], &[]),
            Self::ApiCall => {
                (&["url"], &["headers", "proxies", "timeout", "retries", "backoff_factor"])
            }
        }
    }

    /// Arguments interpolated outside loops.
    fn formatted(self) -> &'static [&'static str] {
        match self {
            Self::Log => &["msg"],
            Self::ApiCall => &["url"],
            Self::SetAttribute
            | Self::ExtendAttribute
            | Self::SetCapability
            | Self::SetPluginData
            | Self::ExtendPluginData
            | Self::SetPortAttribute
            | Self::ExtendPortAttribute => &["value"],
            _ => &[],
        }
    }
}

/// One condition of a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub op: ConditionOp,
    /// Written `!op` on the wire.
    pub invert: bool,
    /// Named arguments (the deprecated list form is converted on input).
    pub args: JsonObject,
    /// Items to check the condition for (`{item}` in arguments).
    pub loop_items: Option<Value>,
    pub multiple: Option<Multiple>,
}

/// One action of a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub op: ActionOp,
    pub args: JsonObject,
    pub loop_items: Option<Value>,
}

/// An inspection rule.
#[derive(Debug, Clone, PartialEq)]
pub struct InspectionRule {
    pub id: i64,
    pub uuid: Uuid,
    pub description: Option<String>,
    /// Higher runs first; 0..=9999 for rules created through the API.
    pub priority: i64,
    /// Conditions and actions are never shown.
    pub sensitive: bool,
    pub phase: Phase,
    pub conditions: Vec<Condition>,
    pub actions: Vec<Action>,
    /// Shipped with ferric's configuration rather than created by a user:
    /// it cannot be changed or deleted through the API.
    pub built_in: bool,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

/// The largest priority a user-defined rule may have.
pub const MAX_PRIORITY: i64 = 9999;

impl Condition {
    /// The wire form: `{"op", "args"}` plus `loop` and `multiple` when looped.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        let op = if self.invert { format!("!{}", self.op) } else { self.op.to_string() };
        map.insert("op".into(), op.into());
        map.insert("args".into(), Value::Object(self.args.clone()));
        if let Some(items) = &self.loop_items {
            map.insert("loop".into(), items.clone());
            map.insert("multiple".into(), self.multiple.unwrap_or(Multiple::Any).as_str().into());
        }
        Value::Object(map)
    }
}

impl Action {
    /// The wire form: `{"op", "args"}` plus `loop` when looped.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("op".into(), self.op.as_str().into());
        map.insert("args".into(), Value::Object(self.args.clone()));
        if let Some(items) = &self.loop_items {
            map.insert("loop".into(), items.clone());
        }
        Value::Object(map)
    }
}

// ---- validation ----

/// Parses and validates the `conditions` of a rule (`null` or missing: none).
pub fn parse_conditions(value: Option<&Value>) -> Result<Vec<Condition>, RuleError> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(RuleError("conditions must be a list".into())),
    };
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match parse_condition(item) {
            Ok(condition) => out.push(condition),
            Err(error) => errors.push(format!("condition {index}: {error}")),
        }
    }
    match RuleError::from_list(errors) {
        Some(error) => Err(error),
        None => Ok(out),
    }
}

/// Parses and validates the `actions` of a rule (at least one).
pub fn parse_actions(value: Option<&Value>) -> Result<Vec<Action>, RuleError> {
    let items = match value {
        None | Some(Value::Null) => return Err(RuleError("actions is required".into())),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(RuleError("actions must be a list".into())),
    };
    if items.is_empty() {
        return Err(RuleError("actions must contain at least one action".into()));
    }
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match parse_action(item) {
            Ok(action) => out.push(action),
            Err(error) => errors.push(format!("action {index}: {error}")),
        }
    }
    match RuleError::from_list(errors) {
        Some(error) => Err(error),
        None => Ok(out),
    }
}

fn parse_condition(item: &Value) -> Result<Condition, String> {
    let map = item.as_object().ok_or("each condition must be an object")?;
    let text =
        map.get("op").and_then(Value::as_str).ok_or("\"op\" is required and must be a string")?;
    let trimmed = text.trim();
    if trimmed.matches('!').count() > 1 {
        return Err(format!(
            "invalid operator {text:?}: invert an operator with one leading \"!\", e.g. !eq"
        ));
    }
    let (bang, name) = match trimmed.strip_prefix('!') {
        Some(rest) => (true, rest.trim()),
        None => (false, trimmed),
    };
    let op = ConditionOp::parse(name).ok_or_else(|| {
        format!(
            "Unsupported condition operator: {name}. Supported operators are: {}",
            ConditionOp::ALL.iter().map(|op| op.as_str()).collect::<Vec<_>>().join(", ")
        )
    })?;
    let invert = match map.get("invert") {
        None | Some(Value::Null) => bang,
        Some(Value::Bool(flag)) => bang || *flag,
        Some(_) => return Err("\"invert\" must be a boolean".into()),
    };
    let args = normalize_args(map.get("args"), op.signature())
        .map_err(|error| format!("Invalid parameters for condition operator {op}: {error}"))?;
    check_condition_args(op, &args)
        .map_err(|error| format!("Invalid parameters for condition operator {op}: {error}"))?;
    let loop_items = parse_loop(map.get("loop"))?;
    let multiple = match map.get("multiple") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(
            Multiple::parse(text)
                .ok_or_else(|| format!("invalid multiple {text:?}: use any, all, first or last"))?,
        ),
        Some(_) => return Err("\"multiple\" must be one of any, all, first, last".into()),
    };
    Ok(Condition { op, invert, args, loop_items, multiple })
}

fn parse_action(item: &Value) -> Result<Action, String> {
    let map = item.as_object().ok_or("each action must be an object")?;
    let name =
        map.get("op").and_then(Value::as_str).ok_or("\"op\" is required and must be a string")?;
    let op = ActionOp::parse(name.trim()).ok_or_else(|| {
        format!(
            "Unsupported action operator: {name}. Supported actions are: {}",
            ActionOp::ALL.iter().map(|op| op.as_str()).collect::<Vec<_>>().join(", ")
        )
    })?;
    let args = normalize_args(map.get("args"), op.signature())
        .map_err(|error| format!("Invalid parameters for action operator {op}: {error}"))?;
    check_action_args(op, &args)
        .map_err(|error| format!("Invalid parameters for action operator {op}: {error}"))?;
    let loop_items = parse_loop(map.get("loop"))?;
    Ok(Action { op, args, loop_items })
}

fn parse_loop(value: Option<&Value>) -> Result<Option<Value>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) if items.is_empty() => Ok(None),
        Some(Value::Object(map)) if map.is_empty() => Ok(None),
        Some(items @ (Value::Array(_) | Value::Object(_))) => Ok(Some(items.clone())),
        Some(_) => Err("\"loop\" must be a list or an object".into()),
    }
}

/// Named arguments from `args` (an object, or the deprecated positional list).
fn normalize_args(
    value: Option<&Value>,
    (required, optional): Signature,
) -> Result<JsonObject, String> {
    let args = match value {
        None => return Err("\"args\" is required".into()),
        Some(Value::Object(map)) => map.clone(),
        Some(Value::Array(list)) => {
            if list.len() < required.len() {
                return Err(format!(
                    "not enough arguments provided; missing: {}",
                    required[list.len()..].join(", ")
                ));
            }
            if list.len() > required.len() + optional.len() {
                return Err(format!(
                    "too many arguments: expected at most {}",
                    required.len() + optional.len()
                ));
            }
            required
                .iter()
                .chain(optional)
                .zip(list)
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect()
        }
        Some(_) => return Err("args must be either a list or dictionary".into()),
    };
    let missing: Vec<&str> =
        required.iter().copied().filter(|name| !args.contains_key(*name)).collect();
    let unexpected: Vec<&str> = args
        .keys()
        .map(String::as_str)
        .filter(|name| !required.contains(name) && !optional.contains(name))
        .collect();
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!("missing required argument(s): {}", missing.join(", ")));
    }
    if !unexpected.is_empty() {
        problems.push(format!("unexpected argument(s): {}", unexpected.join(", ")));
    }
    if problems.is_empty() {
        Ok(args)
    } else {
        Err(problems.join("; "))
    }
}

/// A string with a replacement field is only known at inspection time.
fn is_template(value: &Value) -> bool {
    value.as_str().is_some_and(|text| text.contains('{'))
}

fn check_condition_args(op: ConditionOp, args: &JsonObject) -> Result<(), String> {
    let fixed = |name: &str| args.get(name).filter(|value| !is_template(value));
    if let Some(value) = fixed("force_strings") {
        if !value.is_boolean() {
            return Err("force_strings must be a boolean".into());
        }
    }
    match op {
        ConditionOp::Eq | ConditionOp::Lt | ConditionOp::Gt | ConditionOp::OneOf => {
            if let Some(values) = fixed("values") {
                if !values.is_array() {
                    return Err("values must be a list".into());
                }
            }
        }
        ConditionOp::InNet => {
            if let Some(subnet) = fixed("subnet") {
                let text = subnet.as_str().ok_or("subnet must be a string")?;
                parse_network(text).ok_or_else(|| format!("invalid subnet {text:?}"))?;
            }
            if let Some(address) = fixed("address") {
                let text = address.as_str().ok_or("address must be a string")?;
                text.parse::<IpAddr>().map_err(|_| format!("invalid address {text:?}"))?;
            }
        }
        ConditionOp::Matches | ConditionOp::Contains => {
            let regex = args.get("regex").ok_or("missing required argument(s): regex")?;
            let text = regex.as_str().ok_or("regex must be a string")?;
            if !is_template(regex) {
                compile(text)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn check_action_args(op: ActionOp, args: &JsonObject) -> Result<(), String> {
    let fixed = |name: &str| args.get(name).filter(|value| !is_template(value));
    for name in ["path", "name", "port_id"] {
        if let Some(value) = args.get(name) {
            match value.as_str() {
                Some(text) if !text.trim().trim_matches('/').is_empty() => {}
                _ => return Err(format!("{name} must be a non-empty string")),
            }
        }
    }
    if let Some(value) = fixed("unique") {
        if !value.is_boolean() {
            return Err("unique must be a boolean".into());
        }
    }
    match op {
        ActionOp::Log => {
            if let Some(level) = fixed("level") {
                let text = level.as_str().unwrap_or("");
                if !LOG_LEVELS.contains(&text.to_ascii_lowercase().as_str()) {
                    return Err(format!(
                        "invalid log level {level}: choose from {}",
                        LOG_LEVELS.join(", ")
                    ));
                }
            }
        }
        ActionOp::AddTrait | ActionOp::RemoveTrait => {
            if let Some(name) = fixed("name") {
                let text = name.as_str().unwrap_or("");
                if !is_valid_trait(text) {
                    return Err(format!(
                        "invalid trait {text:?}: use CUSTOM_[A-Z0-9_]+ or a standard trait name"
                    ));
                }
            }
        }
        ActionOp::ApiCall => {
            if let Some(url) = fixed("url") {
                let text = url.as_str().unwrap_or("");
                if !(text.starts_with("http://") || text.starts_with("https://")) {
                    return Err(format!("url must be an http:// or https:// URL, got {url}"));
                }
            }
            if let Some(timeout) = fixed("timeout") {
                if !timeout.as_f64().is_some_and(|t| t > 0.0) {
                    return Err("timeout must be a number greater than zero".into());
                }
            }
            if let Some(retries) = fixed("retries") {
                if retries.as_u64().is_none() {
                    return Err("retries must be a non-negative integer".into());
                }
            }
            for name in ["headers", "proxies"] {
                if fixed(name).is_some_and(|value| !value.is_object()) {
                    return Err(format!("{name} must be an object"));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

const LOG_LEVELS: [&str; 5] = ["debug", "info", "warning", "error", "critical"];

fn compile(pattern: &str) -> Result<regex_automata::meta::Regex, String> {
    regex_automata::meta::Regex::new(pattern)
        .map_err(|error| format!("invalid regular expression {pattern:?}: {error}"))
}

/// `a.b.c.d/n`, `x::y/n` or a single address (a /32 or /128).
fn parse_network(text: &str) -> Option<(IpAddr, u8)> {
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text, None),
    };
    let address: IpAddr = address.trim().parse().ok()?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(text) => text.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
    };
    Some((address, prefix))
}

fn in_network(address: IpAddr, (network, prefix): (IpAddr, u8)) -> bool {
    match (address, network) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix)) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

// ---- evaluation ----

/// What rules are evaluated against.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The node's fields (`{node.driver}`, `{node.properties[...]}`).
    pub node: &'a Value,
    /// The agent's inventory (`{inventory[cpu][architecture]}`).
    pub inventory: &'a Value,
    /// Plugin data (`{plugin_data[...]}`).
    pub plugin_data: &'a Value,
}

/// An action whose rule matched, with its arguments interpolated (one per
/// loop item for looped actions).
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedAction {
    pub rule: Uuid,
    pub op: ActionOp,
    pub args: JsonObject,
    /// The rule is sensitive: its arguments (interpolated, perhaps with
    /// secrets) appear in no log or error.
    pub sensitive: bool,
}

impl PlannedAction {
    /// What a `log` action writes to the log: its message; for a sensitive
    /// rule, whose message may quote secrets, only that it ran.
    pub fn log_line(&self) -> String {
        if self.sensitive {
            return "log action of a sensitive rule ran (message withheld)".to_owned();
        }
        self.args.get("msg").map(python_str).unwrap_or_default()
    }
}

/// Evaluates `rules` (highest priority first; ties in the given order) and
/// returns the actions of every rule whose conditions all hold.
pub fn evaluate(
    rules: &[InspectionRule],
    facts: Facts<'_>,
) -> Result<Vec<PlannedAction>, EvalError> {
    let mut ordered: Vec<&InspectionRule> = rules.iter().collect();
    ordered.sort_by_key(|rule| std::cmp::Reverse(rule.priority));
    let mut planned = Vec::new();
    for rule in ordered {
        if !rule_matches(rule, facts)? {
            continue;
        }
        for action in &rule.actions {
            for item in loop_items(action.loop_items.as_ref()) {
                let env = Env { facts, item };
                let formatted = action.op.formatted();
                let args = action
                    .args
                    .iter()
                    .map(|(key, value)| {
                        let value = if item.is_some() || formatted.contains(&key.as_str()) {
                            interpolate(value, &env, false)
                        } else {
                            value.clone()
                        };
                        (key.clone(), value)
                    })
                    .collect();
                planned.push(PlannedAction {
                    rule: rule.uuid,
                    op: action.op,
                    args,
                    sensitive: rule.sensitive,
                });
            }
        }
    }
    Ok(planned)
}

/// Whether every condition of `rule` holds (a rule without conditions always matches).
pub fn rule_matches(rule: &InspectionRule, facts: Facts<'_>) -> Result<bool, EvalError> {
    for condition in &rule.conditions {
        let failure = |reason: String| match rule.sensitive {
            true => EvalError::Withheld {
                rule: rule.uuid,
                what: "condition",
                op: condition.op.as_str(),
            },
            false => EvalError::Condition { rule: rule.uuid, op: condition.op.as_str(), reason },
        };
        let holds = match &condition.loop_items {
            None => check(condition, facts, None).map_err(failure)?,
            Some(items) => {
                let multiple = condition.multiple.unwrap_or(Multiple::Any);
                let mut results = Vec::new();
                for item in loop_items(Some(items)) {
                    results.push(check(condition, facts, item).map_err(failure)?);
                }
                match multiple {
                    Multiple::Any => results.iter().any(|r| *r),
                    Multiple::All => results.iter().all(|r| *r),
                    Multiple::First => results.first().copied().unwrap_or(false),
                    Multiple::Last => results.last().copied().unwrap_or(false),
                }
            }
        };
        if !holds {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The items of a loop: `[None]` without one, each element of a list, or
/// the object itself.
fn loop_items(items: Option<&Value>) -> Vec<Option<&Value>> {
    match items {
        Some(Value::Array(list)) if !list.is_empty() => list.iter().map(Some).collect(),
        Some(object @ Value::Object(map)) if !map.is_empty() => vec![Some(object)],
        _ => vec![None],
    }
}

/// The variables a replacement field may name.
struct Env<'a> {
    facts: Facts<'a>,
    item: Option<&'a Value>,
}

fn check(condition: &Condition, facts: Facts<'_>, item: Option<&Value>) -> Result<bool, String> {
    let env = Env { facts, item };
    let formatted = condition.op.formatted();
    let empty_if_missing = condition.op == ConditionOp::IsEmpty;
    let mut args = JsonObject::new();
    for (key, value) in &condition.args {
        let value = if item.is_some() || formatted.contains(&key.as_str()) {
            interpolate(value, &env, empty_if_missing)
        } else {
            value.clone()
        };
        args.insert(key.clone(), value);
    }
    let null = Value::Null;
    let arg = |name: &str| args.get(name).unwrap_or(&null);
    let result = match condition.op {
        ConditionOp::Eq | ConditionOp::Lt | ConditionOp::Gt => {
            let Value::Array(values) = arg("values") else {
                return Err(format!("expected a list for values, got {}", arg("values")));
            };
            let force = item.is_some() || arg("force_strings").as_bool().unwrap_or(false);
            let values: Vec<Value> = if force {
                values.iter().map(|v| Value::String(python_str(v))).collect()
            } else {
                values.clone()
            };
            let mut holds = true;
            for pair in values.windows(2) {
                let ok = match condition.op {
                    ConditionOp::Eq => json_eq(&pair[0], &pair[1]),
                    ConditionOp::Lt => compare(&pair[0], &pair[1])? == Ordering::Less,
                    _ => compare(&pair[0], &pair[1])? == Ordering::Greater,
                };
                holds &= ok;
            }
            holds
        }
        ConditionOp::IsEmpty => match arg("value") {
            Value::Null => true,
            Value::String(text) => matches!(text.as_str(), "" | "None" | "[]" | "{}"),
            Value::Array(list) => list.is_empty(),
            Value::Object(map) => map.is_empty(),
            _ => false,
        },
        ConditionOp::InNet => {
            let subnet = python_str(arg("subnet"));
            let network =
                parse_network(&subnet).ok_or_else(|| format!("invalid subnet {subnet:?}"))?;
            let address = python_str(arg("address"));
            let address: IpAddr =
                address.parse().map_err(|_| format!("invalid address {address:?}"))?;
            in_network(address, network)
        }
        ConditionOp::Matches => {
            let regex = compile(&format!("^(?:{})$", python_str(arg("regex"))))?;
            regex.is_match(python_str(arg("value")).as_str())
        }
        ConditionOp::Contains => {
            let regex = compile(&python_str(arg("regex")))?;
            regex.is_match(python_str(arg("value")).as_str())
        }
        ConditionOp::OneOf => match arg("values") {
            Value::Array(values) => values.iter().any(|v| json_eq(v, arg("value"))),
            Value::Null => false,
            other => return Err(format!("expected a list for values, got {other}")),
        },
        ConditionOp::IsNone => arg("value").is_null(),
        ConditionOp::IsTrue => match arg("value") {
            Value::Bool(flag) => *flag,
            Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
            Value::String(text) => matches!(text.to_ascii_lowercase().as_str(), "yes" | "true"),
            _ => false,
        },
        ConditionOp::IsFalse => match arg("value") {
            Value::Bool(flag) => !flag,
            Value::Number(n) => n.as_f64().is_some_and(|n| n == 0.0),
            Value::String(text) => matches!(text.to_ascii_lowercase().as_str(), "no" | "false"),
            Value::Null => true,
            _ => false,
        },
    };
    Ok(result != condition.invert)
}

/// Equality with numbers compared by value (`1 == 1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Ordering of two numbers, two strings, or a number and a numeric string.
fn compare(a: &Value, b: &Value) -> Result<Ordering, String> {
    let number = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match (a, b) {
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        _ => match (number(a), number(b)) {
            (Some(x), Some(y)) => x.partial_cmp(&y).ok_or_else(|| "cannot compare NaN".to_owned()),
            _ => Err(format!("cannot compare {a} with {b}")),
        },
    }
}

/// A value as Python's `str()` writes it (what interpolation produces).
fn python_str(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        other => other.to_string(),
    }
}

/// Interpolates replacement fields in every string of `value` (keys of
/// objects too). A field that cannot be resolved leaves its string as it
/// was (or null, with `null_if_missing`, for `is-empty`).
fn interpolate(value: &Value, env: &Env<'_>, null_if_missing: bool) -> Value {
    match value {
        Value::String(text) => match format_fields(text, env) {
            // A loop item may itself hold replacement fields: one more pass.
            Ok(Value::String(again)) if env.item.is_some() && again != *text => {
                match format_fields(&again, env) {
                    Ok(value) => value,
                    Err(Unresolved::Missing) if null_if_missing => Value::Null,
                    Err(_) => Value::String(again),
                }
            }
            Ok(value) => value,
            Err(Unresolved::Missing) if null_if_missing => Value::Null,
            Err(_) => value.clone(),
        },
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| interpolate(v, env, null_if_missing)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match format_fields(k, env) {
                        Ok(value) => python_str(&value),
                        Err(_) => k.clone(),
                    };
                    (key, interpolate(v, env, null_if_missing))
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

#[derive(Debug, PartialEq)]
enum Unresolved {
    /// A name or key does not exist.
    Missing,
    /// The text is not a valid format string.
    Syntax,
}

/// Python `str.format`-style interpolation of `{name[key].attr}` fields
/// (`{{`/`}}` escape braces). A string that is exactly one field keeps the
/// field's JSON type.
fn format_fields(text: &str, env: &Env<'_>) -> Result<Value, Unresolved> {
    if !text.contains(['{', '}']) {
        return Ok(Value::String(text.to_owned()));
    }
    let mut out = String::new();
    let mut fields: Vec<Value> = Vec::new();
    let mut literal = false;
    let mut chars = text.char_indices().peekable();
    while let Some((index, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|(_, c)| *c) == Some('{') => {
                chars.next();
                out.push('{');
                literal = true;
            }
            '}' if chars.peek().map(|(_, c)| *c) == Some('}') => {
                chars.next();
                out.push('}');
                literal = true;
            }
            '{' => {
                let rest = &text[index + 1..];
                let end = rest.find('}').ok_or(Unresolved::Syntax)?;
                let value = resolve(&rest[..end], env)?;
                out.push_str(&python_str(&value));
                fields.push(value);
                for _ in 0..=rest[..end].chars().count() {
                    chars.next();
                }
            }
            '}' => return Err(Unresolved::Syntax),
            other => {
                out.push(other);
                literal = true;
            }
        }
    }
    if fields.len() == 1 && !literal {
        return Ok(fields.pop().unwrap_or(Value::Null));
    }
    Ok(Value::String(out))
}

/// Resolves `name(.attr|[key])*`.
fn resolve(field: &str, env: &Env<'_>) -> Result<Value, Unresolved> {
    if field.contains(['!', ':']) {
        return Err(Unresolved::Syntax); // conversions and format specs
    }
    let name_end = field.find(['.', '[']).unwrap_or(field.len());
    let mut current: &Value = match &field[..name_end] {
        "node" => env.facts.node,
        "inventory" => env.facts.inventory,
        "plugin_data" => env.facts.plugin_data,
        "item" => env.item.ok_or(Unresolved::Missing)?,
        "" => return Err(Unresolved::Syntax),
        _ => return Err(Unresolved::Missing),
    };
    let mut rest = &field[name_end..];
    while !rest.is_empty() {
        let (key, remaining) = if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            (&after[..end], &after[end..])
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']').ok_or(Unresolved::Syntax)?;
            (&after[..end], &after[end + 1..])
        } else {
            return Err(Unresolved::Syntax);
        };
        if key.is_empty() {
            return Err(Unresolved::Syntax);
        }
        current = match current {
            Value::Object(map) => map.get(key).ok_or(Unresolved::Missing)?,
            Value::Array(list) => {
                let index: usize = key.parse().map_err(|_| Unresolved::Missing)?;
                list.get(index).ok_or(Unresolved::Missing)?
            }
            _ => return Err(Unresolved::Missing),
        };
        rest = remaining;
    }
    Ok(current.clone())
}

// ---- applying to the node record ----

/// What [`apply_to_node`] did with an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The node record was changed (or already was as asked).
    Node,
    /// The action is not about the node record (log, plugin data, ports,
    /// API calls): the caller handles or skips it.
    NotNode,
}

/// The node fields rules can read, as JSON (secrets included: rules run
/// inside ferric).
pub fn node_facts(node: &Node) -> Value {
    let mut map = Map::new();
    let text = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
    map.insert("uuid".into(), node.uuid.to_string().into());
    map.insert("name".into(), text(&node.name));
    map.insert("driver".into(), node.driver.as_str().into());
    map.insert("driver_info".into(), Value::Object(node.driver_info.clone()));
    map.insert("properties".into(), Value::Object(node.properties.clone()));
    map.insert("instance_info".into(), Value::Object(node.instance_info.clone()));
    map.insert("extra".into(), Value::Object(node.extra.clone()));
    map.insert("resource_class".into(), text(&node.resource_class));
    map.insert("traits".into(), node.traits.clone().into());
    map.insert("conductor_group".into(), node.conductor_group.clone().into());
    map.insert("owner".into(), text(&node.owner));
    map.insert("lessee".into(), text(&node.lessee));
    map.insert("description".into(), text(&node.description));
    map.insert("provision_state".into(), node.provision_state.as_str().into());
    map.insert("power_state".into(), node.power_state.map_or(Value::Null, |s| s.as_str().into()));
    map.insert("shard".into(), text(&node.shard));
    Value::Object(map)
}

/// Applies one planned action to `node`: set/extend/delete attributes under
/// `properties`, `extra`, `driver_info`, `instance_info` and `network_data`
/// (or the plain text fields `name`, `description`, `resource_class`,
/// `owner`, `lessee`), traits and capabilities. `fail` is an error.
pub fn apply_to_node(node: &mut Node, action: &PlannedAction) -> Result<Applied, EvalError> {
    node_action(node, action).map_err(|error| error.withheld_for(action))
}

fn node_action(node: &mut Node, action: &PlannedAction) -> Result<Applied, EvalError> {
    let op = action.op.as_str();
    let err = |reason: String| EvalError::Action { op, reason };
    let null = Value::Null;
    let arg = |name: &str| action.args.get(name).unwrap_or(&null);
    let string = |name: &str| {
        arg(name).as_str().map(str::to_owned).ok_or_else(|| err(format!("{name} must be a string")))
    };
    match action.op {
        ActionOp::Fail => Err(EvalError::Failed(python_str(arg("msg")))),
        ActionOp::AddTrait => {
            let name = string("name")?;
            if !is_valid_trait(&name) {
                return Err(err(format!("invalid trait {name:?}")));
            }
            if !node.traits.contains(&name) {
                node.traits.push(name);
            }
            Ok(Applied::Node)
        }
        ActionOp::RemoveTrait => {
            let name = string("name")?;
            node.traits.retain(|t| *t != name);
            Ok(Applied::Node)
        }
        ActionOp::SetCapability | ActionOp::UnsetCapability => {
            let name = string("name")?;
            let mut caps = capabilities(node.properties.get("capabilities"));
            caps.retain(|(k, _)| *k != name);
            if action.op == ActionOp::SetCapability {
                caps.push((name, python_str(arg("value"))));
            }
            let text: Vec<String> = caps.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            node.properties.insert("capabilities".into(), text.join(",").into());
            Ok(Applied::Node)
        }
        ActionOp::SetAttribute | ActionOp::ExtendAttribute | ActionOp::DelAttribute => {
            let path = string("path")?;
            edit_node_path(node, action, &path_parts(&path)).map_err(err)?;
            Ok(Applied::Node)
        }
        _ => Ok(Applied::NotNode),
    }
}

/// `properties.capabilities` (`"k:v,k2:v2"` or an object) as pairs.
fn capabilities(value: Option<&Value>) -> Vec<(String, String)> {
    match value {
        Some(Value::String(text)) => text
            .split(',')
            .filter_map(|pair| pair.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect(),
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), python_str(v))).collect(),
        _ => Vec::new(),
    }
}

fn edit_node_path(node: &mut Node, action: &PlannedAction, parts: &[&str]) -> Result<(), String> {
    let (root, rest) = parts.split_first().ok_or("empty path")?;
    let value = action.args.get("value").cloned().unwrap_or(Value::Null);
    let text_field = match *root {
        "name" => Some(&mut node.name),
        "description" => Some(&mut node.description),
        "resource_class" => Some(&mut node.resource_class),
        "owner" => Some(&mut node.owner),
        "lessee" => Some(&mut node.lessee),
        _ => None,
    };
    if let Some(field) = text_field {
        return edit_text(field, root, rest, action.op, value);
    }
    let object = match *root {
        "properties" => &mut node.properties,
        "extra" => &mut node.extra,
        "driver_info" => &mut node.driver_info,
        "instance_info" => &mut node.instance_info,
        "network_data" => &mut node.network_data,
        other => return Err(format!("the node attribute {other} cannot be changed by rules")),
    };
    edit_object(object, root, rest, action, value)
}

/// Sets (`set-*`), clears (`del-*`) or refuses (`extend-*`) an optional text field.
fn edit_text(
    field: &mut Option<String>,
    root: &str,
    rest: &[&str],
    op: ActionOp,
    value: Value,
) -> Result<(), String> {
    if !rest.is_empty() {
        return Err(format!("{root} has no sub-fields"));
    }
    *field = match (op, value) {
        (ActionOp::DelAttribute | ActionOp::DelPortAttribute, _) | (_, Value::Null) => None,
        (ActionOp::SetAttribute | ActionOp::SetPortAttribute, Value::String(text)) => Some(text),
        (ActionOp::SetAttribute | ActionOp::SetPortAttribute, other) => Some(python_str(&other)),
        _ => return Err(format!("cannot extend non-list attribute {root}")),
    };
    Ok(())
}

/// Edits the JSON object field `root` at the path `rest` below it (the
/// whole object when `rest` is empty): set, extend a list, or delete. A
/// missing key on the way is created (set, extend) or ignored (delete).
fn edit_object(
    object: &mut JsonObject,
    root: &str,
    rest: &[&str],
    action: &PlannedAction,
    value: Value,
) -> Result<(), String> {
    let deleting = matches!(action.op, ActionOp::DelAttribute | ActionOp::DelPortAttribute);
    let Some((last, middle)) = rest.split_last() else {
        // The whole dict.
        match (action.op, value) {
            _ if deleting => object.clear(),
            (ActionOp::SetAttribute | ActionOp::SetPortAttribute, Value::Object(map)) => {
                *object = map
            }
            (ActionOp::SetAttribute | ActionOp::SetPortAttribute, _) => {
                return Err(format!("{root} must be an object"))
            }
            _ => return Err(format!("cannot extend non-list attribute {root}")),
        }
        return Ok(());
    };
    let mut current = object;
    for part in middle {
        let entry = current.entry((*part).to_owned()).or_insert_with(|| Value::Object(Map::new()));
        current = match entry {
            Value::Object(map) => map,
            _ if deleting => return Ok(()),
            _ => return Err(format!("{part} is not an object")),
        };
    }
    match action.op {
        ActionOp::SetAttribute | ActionOp::SetPortAttribute => {
            current.insert((*last).to_owned(), value);
        }
        _ if deleting => {
            current.remove(*last);
        }
        _ => {
            let unique = action.args.get("unique").and_then(Value::as_bool).unwrap_or(false);
            let list =
                current.entry((*last).to_owned()).or_insert_with(|| Value::Array(Vec::new()));
            let Value::Array(items) = list else {
                return Err(format!("cannot extend non-list attribute {last}"));
            };
            if !unique || !items.contains(&value) {
                items.push(value);
            }
        }
    }
    Ok(())
}

/// An attribute path as Ironic splits it: on `/` when it has one
/// (`/extra/foo`), on `.` otherwise (`extra.foo`).
fn path_parts(path: &str) -> Vec<&str> {
    if path.contains('/') {
        path.trim_matches('/').split('/').collect()
    } else {
        path.split('.').collect()
    }
}

// ---- applying to ports ----

impl ActionOp {
    /// `set-`, `extend-` and `del-port-attribute`.
    pub fn is_port_action(self) -> bool {
        matches!(self, Self::SetPortAttribute | Self::ExtendPortAttribute | Self::DelPortAttribute)
    }

    /// `set-`, `extend-` and `unset-plugin-data`.
    pub fn is_plugin_data_action(self) -> bool {
        matches!(self, Self::SetPluginData | Self::ExtendPluginData | Self::UnsetPluginData)
    }
}

/// The port a port action names with its `port_id` argument: a port UUID,
/// as in Ironic, or (a ferric extension, for ports inspection has just
/// created) a MAC address. Only the node's own `ports` are searched.
pub fn find_port(ports: &[Port], port_id: &str) -> Option<usize> {
    let wanted = port_id.trim();
    if let Ok(uuid) = Uuid::parse_str(wanted) {
        return ports.iter().position(|port| port.uuid == uuid);
    }
    let mac = normalize_mac(wanted)?;
    ports.iter().position(|port| port.address.eq_ignore_ascii_case(&mac))
}

/// Applies a port action to the one of the node's `ports` it names;
/// returns that port's UUID, or `None` for an action that is not about
/// ports. A port that is not the node's is an error, as in Ironic.
pub fn apply_to_ports(
    ports: &mut [Port],
    action: &PlannedAction,
) -> Result<Option<Uuid>, EvalError> {
    ports_action(ports, action).map_err(|error| error.withheld_for(action))
}

fn ports_action(ports: &mut [Port], action: &PlannedAction) -> Result<Option<Uuid>, EvalError> {
    if !action.op.is_port_action() {
        return Ok(None);
    }
    let op = action.op.as_str();
    let port_id = match action.args.get("port_id") {
        Some(Value::String(text)) => text.clone(),
        Some(other) => python_str(other),
        None => return Err(EvalError::Action { op, reason: "port_id is required".into() }),
    };
    let index = find_port(ports, &port_id).ok_or_else(|| EvalError::Action {
        op,
        reason: format!("Port {port_id} could not be found"),
    })?;
    let port = &mut ports[index];
    apply_to_port(port, action)?;
    Ok(Some(port.uuid))
}

/// Applies one port action to `port`: set/extend/delete under `extra` and
/// `local_link_connection` (`extra/foo`, `local_link_connection.switch_id`,
/// or the whole object), or set/clear `physical_network`, `pxe_enabled`,
/// `is_smartnic`, `available_for_dynamic_portgroup`, `name`,
/// `description`, `vendor`, `category`. A port's identity (`uuid`,
/// `address`, `node_uuid`) and its `portgroup_uuid` and `internal_info`
/// cannot be changed by rules.
pub fn apply_to_port(port: &mut Port, action: &PlannedAction) -> Result<(), EvalError> {
    port_action(port, action).map_err(|error| error.withheld_for(action))
}

fn port_action(port: &mut Port, action: &PlannedAction) -> Result<(), EvalError> {
    let op = action.op.as_str();
    let err = |reason: String| EvalError::Action { op, reason };
    if !action.op.is_port_action() {
        return Err(err("not a port action".into()));
    }
    let path = match action.args.get("path") {
        Some(Value::String(text)) => text.clone(),
        _ => return Err(err("path must be a string".into())),
    };
    let value = action.args.get("value").cloned().unwrap_or(Value::Null);
    let parts = path_parts(&path);
    let (root, rest) = parts.split_first().ok_or_else(|| err("empty path".into()))?;
    let failed = |reason: String| err(format!("attribute {path} of port {}: {reason}", port.uuid));
    let result = match *root {
        "extra" => edit_object(&mut port.extra, root, rest, action, value),
        "local_link_connection" => {
            edit_object(&mut port.local_link_connection, root, rest, action, value)
        }
        "physical_network" => edit_text(&mut port.physical_network, root, rest, action.op, value),
        "name" => edit_text(&mut port.name, root, rest, action.op, value),
        "description" => edit_text(&mut port.description, root, rest, action.op, value),
        "vendor" => edit_text(&mut port.vendor, root, rest, action.op, value),
        "category" => edit_text(&mut port.category, root, rest, action.op, value),
        "pxe_enabled" => edit_flag(&mut port.pxe_enabled, root, rest, action.op, &value),
        "is_smartnic" => edit_flag(&mut port.is_smartnic, root, rest, action.op, &value),
        "available_for_dynamic_portgroup" => {
            edit_flag(&mut port.available_for_dynamic_portgroup, root, rest, action.op, &value)
        }
        "uuid" | "address" | "node_uuid" | "node_id" | "id" => {
            Err(format!("{root} identifies the port and cannot be changed by rules"))
        }
        other => Err(format!("the port attribute {other} cannot be changed by rules")),
    };
    result.map_err(failed)
}

/// Sets a boolean field (`true`/`false`, or their usual spellings).
fn edit_flag(
    field: &mut bool,
    root: &str,
    rest: &[&str],
    op: ActionOp,
    value: &Value,
) -> Result<(), String> {
    if !rest.is_empty() {
        return Err(format!("{root} has no sub-fields"));
    }
    if op != ActionOp::SetPortAttribute {
        return Err(format!("{root} can only be set, to true or false"));
    }
    *field = match value {
        Value::Bool(flag) => *flag,
        Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => true,
            "false" | "no" | "off" | "0" => false,
            _ => return Err(format!("{root} must be true or false, got {value}")),
        },
        Value::Number(n) if n.as_f64() == Some(1.0) => true,
        Value::Number(n) if n.as_f64() == Some(0.0) => false,
        _ => return Err(format!("{root} must be true or false, got {value}")),
    };
    Ok(())
}

// ---- applying to plugin data ----

/// Applies a plugin-data action to `plugin_data` (an object). Paths are
/// split on `.` only, as Ironic does. `set` creates missing objects on the
/// way; `extend` appends to the list there (an absent or empty value starts
/// one; `unique` skips a value already present); `unset` removes the key
/// and, when that leaves its parent object empty, the parent too (a missing
/// path is no error). Returns whether the action was a plugin-data action.
pub fn apply_to_plugin_data(
    plugin_data: &mut Value,
    action: &PlannedAction,
) -> Result<bool, EvalError> {
    plugin_data_action(plugin_data, action).map_err(|error| error.withheld_for(action))
}

fn plugin_data_action(plugin_data: &mut Value, action: &PlannedAction) -> Result<bool, EvalError> {
    if !action.op.is_plugin_data_action() {
        return Ok(false);
    }
    let op = action.op.as_str();
    let path = match action.args.get("path") {
        Some(Value::String(text)) => text.clone(),
        _ => return Err(EvalError::Action { op, reason: "path must be a string".into() }),
    };
    let err = |reason: String| EvalError::Action {
        op,
        reason: format!("plugin data at {path}: {reason}"),
    };
    if plugin_data.is_null() {
        *plugin_data = Value::Object(Map::new());
    }
    let Value::Object(root) = plugin_data else {
        return Err(err("plugin data is not an object".into()));
    };
    let keys: Vec<&str> = path.split('.').collect();
    let (last, middle) = keys.split_last().ok_or_else(|| err("empty path".into()))?;
    let value = action.args.get("value").cloned().unwrap_or(Value::Null);
    match action.op {
        ActionOp::UnsetPluginData => {
            unset_nested(root, &keys);
            Ok(true)
        }
        _ => {
            let mut current = root;
            for key in middle {
                let entry =
                    current.entry((*key).to_owned()).or_insert_with(|| Value::Object(Map::new()));
                current = match entry {
                    Value::Object(map) => map,
                    _ => return Err(err(format!("{key} is not an object"))),
                };
            }
            if action.op == ActionOp::SetPluginData {
                current.insert((*last).to_owned(), value);
                return Ok(true);
            }
            let unique = action.args.get("unique").and_then(Value::as_bool).unwrap_or(false);
            let slot = current.entry((*last).to_owned()).or_insert(Value::Null);
            if is_falsy(slot) {
                *slot = Value::Array(Vec::new());
            }
            let Value::Array(items) = slot else {
                return Err(err(format!("cannot extend non-list value {slot}")));
            };
            if !unique || !items.contains(&value) {
                items.push(value);
            }
            Ok(true)
        }
    }
}

/// Python's falsiness for JSON.
fn is_falsy(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(flag) => !flag,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
    }
}

/// Removes `keys` from `object`; when that empties the object holding the
/// key, that object goes too (one level, as in Ironic). Whether there was
/// anything to remove.
fn unset_nested(object: &mut JsonObject, keys: &[&str]) -> bool {
    let Some((last, middle)) = keys.split_last() else { return false };
    let Some((parent, above)) = middle.split_last() else {
        return object.remove(*last).is_some();
    };
    let mut grandparent = object;
    for key in above {
        grandparent = match grandparent.get_mut(*key) {
            Some(Value::Object(map)) => map,
            _ => return false,
        };
    }
    let Some(Value::Object(container)) = grandparent.get_mut(*parent) else { return false };
    if container.remove(*last).is_none() {
        return false;
    }
    if container.is_empty() {
        grandparent.remove(*parent);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(priority: i64, conditions: Value, actions: Value) -> InspectionRule {
        InspectionRule {
            id: 0,
            uuid: Uuid::new_v4(),
            description: None,
            priority,
            sensitive: false,
            phase: Phase::Main,
            conditions: parse_conditions(Some(&conditions)).expect("conditions"),
            actions: parse_actions(Some(&actions)).expect("actions"),
            built_in: false,
            created_at: Timestamp::now(),
            updated_at: None,
        }
    }

    fn inventory() -> Value {
        json!({
            "cpu": {"architecture": "x86_64", "count": 16},
            "memory": {"physical_mb": 65536},
            "bmc_address": "10.1.2.3",
            "system_vendor": {"manufacturer": "Dell Inc.", "product_name": "PowerEdge R640"},
            "interfaces": [{"name": "eth0", "mac_address": "aa:bb:cc:dd:ee:ff"}],
            "disks": []
        })
    }

    fn run(rules: &[InspectionRule]) -> Result<Vec<PlannedAction>, EvalError> {
        let node = json!({"name": "n1", "driver": "ipmi", "properties": {}});
        let inventory = inventory();
        let plugin_data = json!({"auto_discovered": true});
        evaluate(rules, Facts { node: &node, inventory: &inventory, plugin_data: &plugin_data })
    }

    fn matches(conditions: Value) -> bool {
        let r = rule(0, conditions, json!([{"op": "log", "args": {"msg": "x"}}]));
        !run(&[r]).expect("evaluates").is_empty()
    }

    #[test]
    fn operators() {
        assert!(matches(
            json!([{"op": "eq", "args": {"values": ["{inventory[cpu][architecture]}", "x86_64"]}}])
        ));
        assert!(!matches(
            json!([{"op": "eq", "args": {"values": ["{inventory[cpu][architecture]}", "aarch64"]}}])
        ));
        assert!(matches(
            json!([{"op": "!eq", "args": {"values": ["{inventory[cpu][architecture]}", "aarch64"]}}])
        ));
        assert!(matches(
            json!([{"op": "eq", "args": {"values": ["{inventory[cpu][architecture]}", "aarch64"]}, "invert": true}])
        ));
        assert!(matches(
            json!([{"op": "gt", "args": {"values": ["{inventory[memory][physical_mb]}", 4096]}}])
        ));
        assert!(matches(json!([{"op": "lt", "args": {"values": [1, 2, 3]}}])));
        assert!(!matches(json!([{"op": "lt", "args": {"values": [1, 3, 2]}}])));
        assert!(matches(json!([{"op": "eq", "args": {"values": [1, 1.0]}}])));
        assert!(matches(
            json!([{"op": "eq", "args": {"values": ["{inventory[cpu][count]}", "16"], "force_strings": true}}])
        ));
        assert!(matches(json!([{"op": "is-empty", "args": {"value": "{inventory[disks]}"}}])));
        assert!(matches(json!([{"op": "is-empty", "args": {"value": "{inventory[missing]}"}}])));
        assert!(!matches(
            json!([{"op": "is-empty", "args": {"value": "{inventory[bmc_address]}"}}])
        ));
        assert!(matches(
            json!([{"op": "in-net", "args": {"address": "{inventory[bmc_address]}", "subnet": "10.1.0.0/16"}}])
        ));
        assert!(!matches(
            json!([{"op": "in-net", "args": {"address": "{inventory[bmc_address]}", "subnet": "10.2.0.0/16"}}])
        ));
        assert!(matches(
            json!([{"op": "in-net", "args": {"address": "fe80::1", "subnet": "fe80::/10"}}])
        ));
        assert!(matches(
            json!([{"op": "contains", "args": {"value": "{inventory[system_vendor][manufacturer]}", "regex": "(?i)dell"}}])
        ));
        assert!(matches(
            json!([{"op": "matches", "args": {"value": "{inventory[system_vendor][product_name]}", "regex": "PowerEdge R\\d+"}}])
        ));
        assert!(!matches(
            json!([{"op": "matches", "args": {"value": "{inventory[system_vendor][product_name]}", "regex": "PowerEdge"}}])
        ));
        assert!(matches(
            json!([{"op": "one-of", "args": {"value": "{inventory[cpu][architecture]}", "values": ["x86_64", "aarch64"]}}])
        ));
        assert!(matches(json!([{"op": "is-none", "args": {"value": null}}])));
        assert!(!matches(json!([{"op": "is-none", "args": {"value": "{inventory[missing]}"}}])));
        assert!(matches(
            json!([{"op": "is-true", "args": {"value": "{plugin_data[auto_discovered]}"}}])
        ));
        assert!(matches(json!([{"op": "is-true", "args": {"value": "Yes"}}])));
        assert!(matches(json!([{"op": "is-false", "args": {"value": 0}}])));
        assert!(matches(json!([{"op": "is-false", "args": {"value": null}}])));
        assert!(matches(json!([{"op": "eq", "args": {"values": ["{node.driver}", "ipmi"]}}])));
        assert!(matches(
            json!([{"op": "eq", "args": {"values": ["{inventory[interfaces][0][name]}", "eth0"]}}])
        ));
        // All conditions must hold; none means always.
        assert!(!matches(json!([
            {"op": "is-true", "args": {"value": true}},
            {"op": "is-true", "args": {"value": false}}
        ])));
        assert!(matches(json!([])));
    }

    #[test]
    fn loops_combine_with_multiple() {
        let models = json!(["Cisco UCS", "PowerEdge R640"]);
        let condition = |multiple: &str| {
            json!([{"op": "eq", "args": {"values": ["{inventory[system_vendor][product_name]}", "{item}"]},
                    "loop": models, "multiple": multiple}])
        };
        assert!(matches(condition("any")));
        assert!(!matches(condition("all")));
        assert!(!matches(condition("first")));
        assert!(matches(condition("last")));
    }

    #[test]
    fn actions_are_planned_in_priority_order_with_interpolation_and_loops() {
        let low = rule(1, json!([]), json!([{"op": "add-trait", "args": {"name": "CUSTOM_LOW"}}]));
        let high = rule(
            50,
            json!([{"op": "eq", "args": {"values": ["{inventory[cpu][architecture]}", "x86_64"]}}]),
            json!([
                {"op": "set-attribute", "args": {"path": "/driver_info/ipmi_address", "value": "{inventory[bmc_address]}"}},
                {"op": "set-attribute", "args": {"path": "{item[path]}", "value": "{item[value]}"},
                 "loop": [{"path": "/properties/cpus", "value": "{inventory[cpu][count]}"},
                          {"path": "extra.vendor", "value": "v-{inventory[system_vendor][manufacturer]}"}]}
            ]),
        );
        let skipped = rule(
            99,
            json!([{"op": "is-false", "args": {"value": true}}]),
            json!([{"op": "fail", "args": {"msg": "no"}}]),
        );
        let planned = run(&[low.clone(), high.clone(), skipped]).expect("evaluates");
        assert_eq!(planned.len(), 4);
        assert_eq!(planned[0].rule, high.uuid);
        assert_eq!(planned[0].args["value"], "10.1.2.3");
        assert_eq!(planned[1].args["path"], "/properties/cpus");
        assert_eq!(planned[1].args["value"], 16, "a lone field keeps its JSON type");
        assert_eq!(planned[2].args["value"], "v-Dell Inc.");
        assert_eq!(planned[3].rule, low.uuid);

        let mut node = Node::new(
            Uuid::new_v4(),
            crate::HardwareType::FakeHardware,
            crate::ProvisionState::Manageable,
        );
        for action in &planned {
            assert_eq!(apply_to_node(&mut node, action), Ok(Applied::Node));
        }
        assert_eq!(node.driver_info["ipmi_address"], "10.1.2.3");
        assert_eq!(node.properties["cpus"], 16);
        assert_eq!(node.extra["vendor"], "v-Dell Inc.");
        assert_eq!(node.traits, vec!["CUSTOM_LOW".to_owned()]);
    }

    #[test]
    fn node_edits_capabilities_traits_and_failures() {
        let mut node = Node::new(
            Uuid::new_v4(),
            crate::HardwareType::FakeHardware,
            crate::ProvisionState::Manageable,
        );
        node.properties.insert("capabilities".into(), "boot_mode:bios,x:1".into());
        let action = |op: ActionOp, args: Value| PlannedAction {
            rule: Uuid::nil(),
            op,
            args: args.as_object().cloned().unwrap_or_default(),
            sensitive: false,
        };
        apply_to_node(
            &mut node,
            &action(ActionOp::SetCapability, json!({"name": "boot_mode", "value": "uefi"})),
        )
        .expect("set");
        apply_to_node(&mut node, &action(ActionOp::UnsetCapability, json!({"name": "x"})))
            .expect("unset");
        assert_eq!(node.properties["capabilities"], "boot_mode:uefi");
        apply_to_node(
            &mut node,
            &action(
                ActionOp::ExtendAttribute,
                json!({"path": "extra/tags", "value": "a", "unique": true}),
            ),
        )
        .expect("extend");
        apply_to_node(
            &mut node,
            &action(
                ActionOp::ExtendAttribute,
                json!({"path": "extra/tags", "value": "a", "unique": true}),
            ),
        )
        .expect("extend");
        assert_eq!(node.extra["tags"], json!(["a"]));
        apply_to_node(&mut node, &action(ActionOp::DelAttribute, json!({"path": "extra.tags"})))
            .expect("del");
        assert!(node.extra.get("tags").is_none());
        apply_to_node(
            &mut node,
            &action(ActionOp::SetAttribute, json!({"path": "/name", "value": "found"})),
        )
        .expect("name");
        assert_eq!(node.name.as_deref(), Some("found"));
        apply_to_node(&mut node, &action(ActionOp::AddTrait, json!({"name": "CUSTOM_A"})))
            .expect("trait");
        apply_to_node(&mut node, &action(ActionOp::RemoveTrait, json!({"name": "CUSTOM_A"})))
            .expect("trait");
        assert!(node.traits.is_empty());
        assert!(matches!(
            apply_to_node(
                &mut node,
                &action(ActionOp::SetAttribute, json!({"path": "/provision_state", "value": "x"}))
            ),
            Err(EvalError::Action { .. })
        ));
        assert_eq!(
            apply_to_node(&mut node, &action(ActionOp::Fail, json!({"msg": "bad hardware"}))),
            Err(EvalError::Failed("bad hardware".into()))
        );
        assert_eq!(
            apply_to_node(&mut node, &action(ActionOp::Log, json!({"msg": "m"}))),
            Ok(Applied::NotNode)
        );
    }

    fn planned(op: ActionOp, args: Value) -> PlannedAction {
        PlannedAction {
            rule: Uuid::nil(),
            op,
            args: args.as_object().cloned().unwrap_or_default(),
            sensitive: false,
        }
    }

    #[test]
    fn port_actions_find_the_port_by_uuid_or_mac_and_edit_it() {
        let node = Uuid::new_v4();
        let first = crate::Port::new(Uuid::new_v4(), "52:54:00:00:00:01".into(), node);
        let second = crate::Port::new(Uuid::new_v4(), "52:54:00:00:00:02".into(), node);
        let mut ports = vec![first.clone(), second.clone()];
        let id = second.uuid.to_string();

        let set = |path: &str, value: Value| {
            planned(
                ActionOp::SetPortAttribute,
                json!({"port_id": id, "path": path, "value": value}),
            )
        };
        for action in [
            set("extra/rack", json!("r1")),
            set("local_link_connection.switch_id", json!("0a:1b:2c:3d:4e:5f")),
            set("/local_link_connection/port_id", json!("Ethernet1/7")),
            set("physical_network", json!("physnet1")),
            set("pxe_enabled", json!("false")),
            set("name", json!("eth1")),
        ] {
            assert_eq!(apply_to_ports(&mut ports, &action), Ok(Some(second.uuid)), "{action:?}");
        }
        let port = &ports[1];
        assert_eq!(port.extra["rack"], "r1");
        assert_eq!(
            Value::Object(port.local_link_connection.clone()),
            json!({"switch_id": "0a:1b:2c:3d:4e:5f", "port_id": "Ethernet1/7"})
        );
        assert_eq!(port.physical_network.as_deref(), Some("physnet1"));
        assert!(!port.pxe_enabled);
        assert_eq!(port.name.as_deref(), Some("eth1"));
        assert_eq!(ports[0], first, "the other port is untouched");

        // By MAC address (any case or separator), extend and delete.
        let extend = planned(
            ActionOp::ExtendPortAttribute,
            json!({"port_id": "52-54-00-00-00-01", "path": "extra.tags", "value": "a", "unique": true}),
        );
        apply_to_ports(&mut ports, &extend).expect("extend");
        apply_to_ports(&mut ports, &extend).expect("extend again");
        assert_eq!(ports[0].extra["tags"], json!(["a"]));
        let del = planned(
            ActionOp::DelPortAttribute,
            json!({"port_id": "52:54:00:00:00:01", "path": "extra/tags"}),
        );
        apply_to_ports(&mut ports, &del).expect("del");
        assert!(ports[0].extra.is_empty());
        let clear =
            planned(ActionOp::DelPortAttribute, json!({"port_id": id, "path": "physical_network"}));
        apply_to_ports(&mut ports, &clear).expect("clear");
        assert_eq!(ports[1].physical_network, None);

        // Not a port action: nothing to do.
        let log = planned(ActionOp::Log, json!({"msg": "m"}));
        assert_eq!(apply_to_ports(&mut ports, &log), Ok(None));
    }

    #[test]
    fn port_actions_refuse_unknown_ports_and_identity_fields() {
        let mut ports =
            vec![crate::Port::new(Uuid::new_v4(), "52:54:00:00:00:01".into(), Uuid::new_v4())];
        let before = ports.clone();
        let unknown = Uuid::new_v4().to_string();
        let error = apply_to_ports(
            &mut ports,
            &planned(
                ActionOp::SetPortAttribute,
                json!({"port_id": unknown, "path": "extra/x", "value": 1}),
            ),
        )
        .expect_err("unknown port");
        assert!(
            error.to_string().contains(&format!("Port {unknown} could not be found")),
            "{error}"
        );
        let id = ports[0].uuid.to_string();
        for (path, value, expected) in [
            ("uuid", json!(Uuid::new_v4().to_string()), "identifies the port"),
            ("address", json!("52:54:00:00:00:09"), "identifies the port"),
            ("/node_uuid", json!(Uuid::new_v4().to_string()), "identifies the port"),
            ("internal_info/x", json!(1), "cannot be changed by rules"),
            ("portgroup_uuid", json!(null), "cannot be changed by rules"),
            ("pxe_enabled", json!("maybe"), "must be true or false"),
            ("extra", json!("text"), "must be an object"),
            ("physical_network/x", json!("a"), "no sub-fields"),
        ] {
            let error = apply_to_ports(
                &mut ports,
                &planned(
                    ActionOp::SetPortAttribute,
                    json!({"port_id": id, "path": path, "value": value}),
                ),
            )
            .expect_err(path);
            assert!(matches!(error, EvalError::Action { op: "set-port-attribute", .. }));
            assert!(error.to_string().contains(expected), "{path}: {error}");
        }
        let error = apply_to_ports(
            &mut ports,
            &planned(
                ActionOp::ExtendPortAttribute,
                json!({"port_id": id, "path": "physical_network", "value": "a"}),
            ),
        )
        .expect_err("extend a text field");
        assert!(error.to_string().contains("non-list"), "{error}");
        assert_eq!(ports, before);
    }

    #[test]
    fn plugin_data_actions() {
        let mut data = json!({"source": "agent", "a": {"b": {"c": 1}}});
        let act = |data: &mut Value, op: ActionOp, args: Value| {
            apply_to_plugin_data(data, &planned(op, args))
        };
        assert_eq!(
            act(&mut data, ActionOp::SetPluginData, json!({"path": "x.y", "value": [1]})),
            Ok(true)
        );
        assert_eq!(data["x"], json!({"y": [1]}));
        act(&mut data, ActionOp::ExtendPluginData, json!({"path": "x.y", "value": 2}))
            .expect("applies");
        act(
            &mut data,
            ActionOp::ExtendPluginData,
            json!({"path": "x.y", "value": 2, "unique": true}),
        )
        .expect("applies");
        act(&mut data, ActionOp::ExtendPluginData, json!({"path": "tags", "value": "t"}))
            .expect("applies");
        assert_eq!(data["x"]["y"], json!([1, 2]));
        assert_eq!(data["tags"], json!(["t"]));
        // Paths are dotted only: a slash is part of the key, as in Ironic.
        act(&mut data, ActionOp::SetPluginData, json!({"path": "/k", "value": 1}))
            .expect("applies");
        assert_eq!(data["/k"], 1);
        // Unsetting the last key of an object removes that object (one level).
        act(&mut data, ActionOp::UnsetPluginData, json!({"path": "a.b.c"})).expect("applies");
        assert_eq!(data["a"], json!({}));
        act(&mut data, ActionOp::UnsetPluginData, json!({"path": "source"})).expect("applies");
        assert!(data.get("source").is_none());
        // A missing path is not an error.
        assert_eq!(act(&mut data, ActionOp::UnsetPluginData, json!({"path": "no.such"})), Ok(true));
        // Extending something that is not a list, or going through a non-object, fails.
        assert!(
            act(&mut data, ActionOp::ExtendPluginData, json!({"path": "/k", "value": 2})).is_err()
        );
        assert!(
            act(&mut data, ActionOp::SetPluginData, json!({"path": "tags.z", "value": 2})).is_err()
        );
        // Null plugin data starts as an object; other actions are not ours.
        let mut empty = Value::Null;
        act(&mut empty, ActionOp::SetPluginData, json!({"path": "k", "value": true}))
            .expect("applies");
        assert_eq!(empty, json!({"k": true}));
        assert_eq!(act(&mut empty, ActionOp::Log, json!({"msg": "m"})), Ok(false));
    }

    #[test]
    fn condition_errors_name_the_rule() {
        let r = rule(
            0,
            json!([{"op": "lt", "args": {"values": ["a", 1]}}]),
            json!([{"op": "log", "args": {"msg": "x"}}]),
        );
        assert!(matches!(run(&[r]), Err(EvalError::Condition { op: "lt", .. })));
    }

    #[test]
    fn sensitive_rules_fail_without_quoting_arguments() {
        // A condition that cannot be checked names its operator, not the
        // values it compared.
        let mut r = rule(
            0,
            json!([{"op": "lt", "args": {"values": ["{inventory[bmc_address]}", 1]}}]),
            json!([{"op": "log", "args": {"msg": "x"}}]),
        );
        let open = run(std::slice::from_ref(&r)).expect_err("fails").to_string();
        assert!(open.contains("10.1.2.3"), "{open}");
        r.sensitive = true;
        let error = run(std::slice::from_ref(&r)).expect_err("fails");
        assert_eq!(error, EvalError::Withheld { rule: r.uuid, what: "condition", op: "lt" });
        let text = error.to_string();
        assert!(text.contains("condition lt") && text.contains(&r.uuid.to_string()), "{text}");
        assert!(!text.contains("10.1.2.3"), "{text}");

        // Its planned actions carry the flag.
        let actions =
            json!([{"op": "add-trait", "args": {"name": "{item}"}, "loop": ["secret s3cret"]}]);
        let r = InspectionRule { sensitive: true, ..rule(0, json!([]), actions) };
        let planned = run(std::slice::from_ref(&r)).expect("evaluates");
        assert!(planned[0].sensitive);

        // Node, port and plugin-data actions name the operator only.
        let mut node = Node::new(
            Uuid::new_v4(),
            crate::HardwareType::FakeHardware,
            crate::ProvisionState::Manageable,
        );
        let error = apply_to_node(&mut node, &planned[0]).expect_err("invalid trait");
        assert_eq!(error, EvalError::Withheld { rule: r.uuid, what: "action", op: "add-trait" });
        assert!(!error.to_string().contains("s3cret"), "{error}");
        let open = PlannedAction { sensitive: false, ..planned[0].clone() };
        let shown = apply_to_node(&mut node, &open).expect_err("invalid trait").to_string();
        assert!(shown.contains("s3cret"), "{shown}");

        let sensitive = |op: ActionOp, args: Value| PlannedAction {
            rule: r.uuid,
            op,
            args: args.as_object().cloned().unwrap_or_default(),
            sensitive: true,
        };
        let mut ports = vec![Port::new(Uuid::new_v4(), "52:54:00:00:00:01".into(), node.uuid)];
        let unknown = sensitive(
            ActionOp::SetPortAttribute,
            json!({"port_id": "52:54:00:5e:c2:e7", "path": "extra/k", "value": 1}),
        );
        let error = apply_to_ports(&mut ports, &unknown).expect_err("unknown port").to_string();
        assert!(error.contains("set-port-attribute") && !error.contains("5e:c2:e7"), "{error}");
        let flag = sensitive(
            ActionOp::SetPortAttribute,
            json!({"port_id": "52:54:00:00:00:01", "path": "pxe_enabled", "value": "hunter2"}),
        );
        let error = apply_to_ports(&mut ports, &flag).expect_err("not a flag").to_string();
        assert!(!error.contains("hunter2"), "{error}");
        let mut data = json!({"k": "v"});
        let bad = sensitive(ActionOp::ExtendPluginData, json!({"path": "k", "value": "hunter2"}));
        let error = apply_to_plugin_data(&mut data, &bad).expect_err("not a list").to_string();
        assert!(error.contains("extend-plugin-data") && !error.contains("hunter2"), "{error}");

        // So is a log action's message.
        let log = sensitive(ActionOp::Log, json!({"msg": "password hunter2"}));
        assert!(!log.log_line().contains("hunter2"), "{}", log.log_line());
        assert!(log.log_line().contains("sensitive"), "{}", log.log_line());
        let open = PlannedAction { sensitive: false, ..log };
        assert_eq!(open.log_line(), "password hunter2");

        // A fail action's message is withheld too.
        let fail = sensitive(ActionOp::Fail, json!({"msg": "password hunter2 is wrong"}));
        let error = apply_to_node(&mut node, &fail).expect_err("fails");
        assert_eq!(error, EvalError::Failed(failed_withheld(r.uuid)));
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    #[test]
    fn validation_messages() {
        let bad = |conditions: Value, actions: Value| -> String {
            match (parse_conditions(Some(&conditions)), parse_actions(Some(&actions))) {
                (Err(e), _) | (_, Err(e)) => e.0,
                _ => panic!("accepted {conditions} {actions}"),
            }
        };
        let ok = json!([{"op": "log", "args": {"msg": "m"}}]);
        assert!(bad(json!([{"op": "bogus", "args": {}}]), ok.clone())
            .contains("Unsupported condition operator: bogus"));
        assert!(bad(json!([{"op": "!!eq", "args": {"values": []}}]), ok.clone())
            .contains("one leading"));
        assert!(bad(json!([{"op": "eq", "args": {}}]), ok.clone())
            .contains("missing required argument(s): values"));
        assert!(bad(json!([{"op": "eq", "args": {"values": [], "bogus": 1}}]), ok.clone())
            .contains("unexpected argument(s): bogus"));
        assert!(bad(json!([{"op": "eq", "args": {"values": 3}}]), ok.clone())
            .contains("values must be a list"));
        assert!(bad(
            json!([{"op": "in-net", "args": {"address": "1.2.3.4", "subnet": "10.0.0.0/40"}}]),
            ok.clone()
        )
        .contains("invalid subnet"));
        assert!(bad(json!([{"op": "matches", "args": {"value": "x", "regex": "("}}]), ok.clone())
            .contains("invalid regular expression"));
        assert!(bad(json!([{"op": "eq", "args": {"values": []}, "multiple": "some"}]), ok.clone())
            .contains("invalid multiple"));
        assert!(bad(json!([{"op": "eq", "args": {"values": []}, "loop": 3}]), ok.clone())
            .contains("\"loop\" must be"));
        assert!(bad(json!([]), json!([])).contains("at least one action"));
        assert!(bad(json!([]), json!([{"op": "explode", "args": {}}]))
            .contains("Unsupported action operator: explode"));
        assert!(bad(json!([]), json!([{"op": "set-attribute", "args": {"path": "/extra/x"}}]))
            .contains("missing required argument(s): value"));
        assert!(bad(json!([]), json!([{"op": "log", "args": {"msg": "m", "level": "loud"}}]))
            .contains("invalid log level"));
        assert!(bad(json!([]), json!([{"op": "add-trait", "args": {"name": "lower"}}]))
            .contains("invalid trait"));
        assert!(bad(json!([]), json!([{"op": "api-call", "args": {"url": "ftp://x"}}]))
            .contains("http://"));
        assert!(bad(json!([]), json!([{"op": "log", "args": "m"}])).contains("list or dictionary"));
        let two = bad(json!([]), json!([{"op": "log", "args": {}}, {"op": "fail", "args": {}}]));
        assert!(two.starts_with("Multiple validation errors occurred"), "{two}");

        // The deprecated list form becomes named arguments; templated
        // arguments are only checked at inspection time.
        let conditions = parse_conditions(Some(&json!([
            {"op": "contains", "args": ["{inventory[x]}", "a+"]},
            {"op": " ! eq ", "args": {"values": "{inventory[list]}"}}
        ])))
        .expect("valid");
        assert_eq!(
            conditions[0].args,
            json!({"value": "{inventory[x]}", "regex": "a+"})
                .as_object()
                .cloned()
                .unwrap_or_default()
        );
        assert!(conditions[1].invert);
        assert_eq!(conditions[1].to_json()["op"], "!eq");
    }
}

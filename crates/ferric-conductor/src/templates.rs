//! Deploy templates at deploy time: the templates an instance asks for (by
//! name, in `instance_info.traits`), checked against the node's drivers and
//! turned into deploy steps for the conductor to merge with the driver's.

use std::collections::BTreeSet;

use ferric_driver::{DriverSet, Step, StepPhase};
use ferric_store::{Store, StoreError};
use ferric_types::Node;

/// Why the template steps could not be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TemplateFailure {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The instance traits or a template's steps do not fit the node.
    #[error("{0}")]
    Invalid(String),
}

/// The step names the conductor itself runs, whatever the interface.
fn is_core(name: &str) -> bool {
    matches!(name, "hold" | "wait" | "power_on" | "power_off" | "reboot")
}

/// The instance traits: a list of strings, each also a node trait.
fn instance_traits(node: &Node) -> Result<Vec<String>, TemplateFailure> {
    let Some(value) = node.instance_info.get("traits").filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let traits: Vec<String> = value
        .as_array()
        .and_then(|list| list.iter().map(|t| t.as_str().map(str::to_owned)).collect())
        .ok_or_else(|| {
            TemplateFailure::Invalid(format!(
                "Error parsing traits from node {} instance_info: a list of strings is expected",
                node.uuid
            ))
        })?;
    let missing: Vec<&str> =
        traits.iter().filter(|t| !node.traits.contains(t)).map(String::as_str).collect();
    if !missing.is_empty() {
        return Err(TemplateFailure::Invalid(format!(
            "Cannot specify instance traits that are not also set on the node. Node {} is \
             missing traits {}",
            node.uuid,
            missing.join(", ")
        )));
    }
    Ok(traits)
}

/// The steps of the deploy templates matching the node's instance traits,
/// each checked against the node's interfaces (a step the driver lacks, or a
/// template that would re-run the core `deploy.deploy` step, fails the
/// deploy). Priority-0 steps are kept: they disable the driver's step.
pub(crate) async fn deploy_template_steps(
    store: &Store,
    node: &Node,
    drivers: &DriverSet,
) -> Result<Vec<Step>, TemplateFailure> {
    let traits = instance_traits(node)?;
    if traits.is_empty() {
        return Ok(Vec::new());
    }
    let templates = store.deploy_templates_named(&traits).await?;
    let mut steps = Vec::new();
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for template in &templates {
        for step in &template.steps {
            let kind = step.interface.kind();
            let name = step.step.as_str();
            if !seen.insert((kind, name)) {
                errors.push(format!("duplicate deploy step {kind}.{name}"));
                continue;
            }
            if kind == ferric_types::InterfaceKind::Deploy && name == "deploy" && step.priority > 0
            {
                errors.push(
                    "deploy step deploy on interface deploy is a core step and cannot be \
                     overridden by a template; it may be disabled with priority 0"
                        .to_owned(),
                );
                continue;
            }
            if !is_core(name)
                && !drivers.interface(kind).is_some_and(|i| i.accepts_step(StepPhase::Deploy, name))
            {
                errors.push(format!("no deploy step \"{name}\" on the {kind} interface"));
                continue;
            }
            let mut converted = Step::new(kind, name, i64::from(step.priority));
            converted.args = step.args.clone();
            steps.push(converted);
        }
    }
    if !errors.is_empty() {
        let names: Vec<&str> = templates.iter().map(|t| t.name.as_str()).collect();
        return Err(TemplateFailure::Invalid(format!(
            "Validation of deploy steps from deploy templates matching this node's instance \
             traits failed. Matching deploy templates: {}. Errors: {}",
            names.join(","),
            errors.join("; ")
        )));
    }
    Ok(steps)
}

//! Inspection rules at the end of agent inspection: evaluate the `main`
//! phase rules against the inventory (pure, `ferric_types::inspection`),
//! then apply the node actions (attributes, traits, capabilities) in one
//! conflict-free write. `log` actions are logged; plugin-data, port and
//! API-call actions are not supported yet and are skipped with a warning.

use ferric_store::{Store, StoreError};
use ferric_types::inspection::{self, ActionOp, Applied, EvalError, Facts, PlannedAction};
use ferric_types::{Node, Phase};
use serde_json::Value;

use crate::record;

/// Why inspection rules stopped an inspection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RulesError {
    #[error("inspection rules could not be loaded")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Eval(#[from] EvalError),
}

/// The actions of every matching rule; a `fail` action is an error.
pub(crate) async fn plan(
    store: &Store,
    node: &Node,
    inventory: &Value,
    plugin_data: &Value,
) -> Result<Vec<PlannedAction>, RulesError> {
    let rules = store.inspection_rules_for_phase(Phase::Main).await?;
    if rules.is_empty() {
        return Ok(Vec::new());
    }
    let facts = inspection::node_facts(node);
    let planned = inspection::evaluate(&rules, Facts { node: &facts, inventory, plugin_data })?;
    if let Some(fail) = planned.iter().find(|action| action.op == ActionOp::Fail) {
        let message = fail.args.get("msg").and_then(Value::as_str).unwrap_or("failed by a rule");
        return Err(RulesError::Eval(EvalError::Failed(message.to_owned())));
    }
    Ok(planned)
}

/// Applies the node actions of `planned` to the stored node; returns the
/// node as stored (unchanged `node` when there is nothing to apply).
pub(crate) async fn apply(
    store: &Store,
    node: Node,
    planned: &[PlannedAction],
) -> Result<Node, RulesError> {
    if planned.is_empty() {
        return Ok(node);
    }
    let mut failure = None;
    let updated = record::update(store, node.uuid, |fresh| {
        for action in planned {
            match inspection::apply_to_node(fresh, action) {
                Ok(Applied::Node) => {}
                Ok(Applied::NotNode) if action.op == ActionOp::Log => {
                    let msg = action.args.get("msg").and_then(Value::as_str).unwrap_or("");
                    tracing::info!(node = %fresh.uuid, rule = %action.rule, "inspection rule: {msg}");
                }
                Ok(Applied::NotNode) => {
                    tracing::warn!(node = %fresh.uuid, rule = %action.rule, op = %action.op,
                        "inspection rule action not supported yet; skipped");
                }
                Err(error) => {
                    failure = Some(error);
                    return false;
                }
            }
        }
        true
    })
    .await?;
    match failure {
        Some(error) => Err(RulesError::Eval(error)),
        None => Ok(updated.unwrap_or(node)),
    }
}

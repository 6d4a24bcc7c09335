//! Inspection rules at the end of agent inspection: evaluate the `main`
//! phase rules against the inventory (pure, `ferric_types::inspection`),
//! then apply what they ask for: the node actions (attributes, traits,
//! capabilities) in one conflict-free node write, then the port actions in
//! one transaction over the node's ports (each port conditional on not
//! having changed since it was read; re-read and re-applied otherwise), then
//! the plugin-data actions to the plugin data stored with the inventory.
//! Port and plugin-data actions are tried on what is stored before anything
//! is written, so a rule naming a port the node does not have fails the
//! inspection without having changed anything. `log` actions are logged
//! (a sensitive rule's without its message); `api-call` actions are not
//! supported yet and are skipped with a warning. A sensitive rule's failures
//! name the operator, never its arguments (`EvalError::withheld_for`).

use std::collections::BTreeSet;

use ferric_store::{PortQuery, Store, StoreError};
use ferric_types::inspection::{self, ActionOp, Applied, EvalError, Facts, PlannedAction};
use ferric_types::{Node, Phase, Port};
use serde_json::Value;
use uuid::Uuid;

use crate::record;

/// How often a port write that lost a race is re-read and re-applied.
const PORT_ATTEMPTS: usize = 10;

/// Why inspection rules stopped an inspection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RulesError {
    #[error("inspection rules could not be loaded")]
    Store(#[from] StoreError),
    #[error("the changes of inspection rules could not be stored: {0}")]
    Write(#[source] StoreError),
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
        let error = EvalError::Failed(message.to_owned()).withheld_for(fail);
        return Err(RulesError::Eval(error));
    }
    Ok(planned)
}

/// Whether `apply_to_node` handles the action.
fn is_node_action(op: ActionOp) -> bool {
    !(op == ActionOp::Log
        || op == ActionOp::ApiCall
        || op.is_port_action()
        || op.is_plugin_data_action())
}

/// Applies `planned` to the stored node, its ports and its plugin data;
/// returns the node as stored (unchanged `node` when no node action applies).
pub(crate) async fn apply(
    store: &Store,
    node: Node,
    planned: &[PlannedAction],
) -> Result<Node, RulesError> {
    if planned.is_empty() {
        return Ok(node);
    }
    for action in planned {
        match action.op {
            ActionOp::Log => {
                let line = action.log_line();
                tracing::info!(node = %node.uuid, rule = %action.rule, "inspection rule: {line}");
            }
            ActionOp::ApiCall => {
                tracing::warn!(node = %node.uuid, rule = %action.rule, op = %action.op,
                    "inspection rule action not supported yet; skipped");
            }
            _ => {}
        }
    }
    let port_actions: Vec<&PlannedAction> =
        planned.iter().filter(|action| action.op.is_port_action()).collect();
    let plugin_actions: Vec<&PlannedAction> =
        planned.iter().filter(|action| action.op.is_plugin_data_action()).collect();

    // Try the port and plugin-data actions first: a failure changes nothing.
    if !port_actions.is_empty() {
        let mut ports = node_ports(store, node.uuid).await?;
        apply_to_ports(&mut ports, &port_actions)?;
    }
    let plugin_data = match plugin_actions.is_empty() {
        true => None,
        false => {
            let stored = store.node_inventory_get(node.uuid).await?;
            let mut data = stored.map_or(Value::Null, |stored| stored.plugin_data);
            for action in &plugin_actions {
                inspection::apply_to_plugin_data(&mut data, action)?;
            }
            Some(data)
        }
    };

    let node = if planned.iter().any(|action| is_node_action(action.op)) {
        apply_to_node(store, node, planned).await?
    } else {
        node
    };
    if !port_actions.is_empty() {
        write_ports(store, node.uuid, &port_actions).await?;
    }
    if let Some(data) = plugin_data {
        store.node_plugin_data_set(node.uuid, &data).await.map_err(RulesError::Write)?;
    }
    Ok(node)
}

/// The node actions, in one conflict-free write.
async fn apply_to_node(
    store: &Store,
    node: Node,
    planned: &[PlannedAction],
) -> Result<Node, RulesError> {
    let mut failure = None;
    let updated = record::update(store, node.uuid, |fresh| {
        for action in planned.iter().filter(|action| is_node_action(action.op)) {
            match inspection::apply_to_node(fresh, action) {
                Ok(Applied::Node | Applied::NotNode) => {}
                Err(error) => {
                    failure = Some(error);
                    return false;
                }
            }
        }
        true
    })
    .await
    .map_err(RulesError::Write)?;
    match failure {
        Some(error) => Err(RulesError::Eval(error)),
        None => Ok(updated.unwrap_or(node)),
    }
}

/// Every port of the node.
async fn node_ports(store: &Store, node_uuid: Uuid) -> Result<Vec<Port>, StoreError> {
    store.port_list(&PortQuery { node_uuid: Some(node_uuid), ..PortQuery::default() }).await
}

/// Applies the port actions in order; the UUIDs of the ports they named.
fn apply_to_ports(
    ports: &mut [Port],
    actions: &[&PlannedAction],
) -> Result<BTreeSet<Uuid>, EvalError> {
    let mut named = BTreeSet::new();
    for action in actions {
        if let Some(uuid) = inspection::apply_to_ports(ports, action)? {
            named.insert(uuid);
        }
    }
    Ok(named)
}

/// Applies the port actions to fresh copies of the node's ports and writes
/// the ports they changed in one transaction; when another writer changed
/// one of them meanwhile, re-reads and re-applies.
async fn write_ports(
    store: &Store,
    node_uuid: Uuid,
    actions: &[&PlannedAction],
) -> Result<(), RulesError> {
    let mut last = None;
    for _ in 0..PORT_ATTEMPTS {
        let before = node_ports(store, node_uuid).await?;
        let mut ports = before.clone();
        let named = apply_to_ports(&mut ports, actions)?;
        let changed: Vec<Port> = ports
            .into_iter()
            .zip(&before)
            .filter(|(after, before)| named.contains(&after.uuid) && after != *before)
            .map(|(after, _)| after)
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        match store.ports_update_for_node(node_uuid, &changed).await {
            Ok(stored) => {
                for port in &stored {
                    tracing::info!(node = %node_uuid, port = %port.uuid, address = %port.address,
                        "inspection rules updated a port");
                }
                return Ok(());
            }
            // Changed, moved or deleted meanwhile: re-read (a port that is
            // gone then fails its action as unknown).
            Err(error @ (StoreError::Stale { .. } | StoreError::NotFound { .. })) => {
                last = Some(error)
            }
            Err(error) => return Err(RulesError::Write(error)),
        }
    }
    Err(RulesError::Write(
        last.unwrap_or(StoreError::Stale { kind: "port", ident: node_uuid.to_string() }),
    ))
}

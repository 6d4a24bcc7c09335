//! Writing a node from the conductor: every write re-reads the node and
//! re-applies the change, so the conductor never overwrites what the API
//! wrote meanwhile (maintenance, say), and never loses its own change.

use ferric_store::{Store, StoreError};
use ferric_types::{HistoryEvent, Node, Severity, Timestamp};
use uuid::Uuid;

const ATTEMPTS: usize = 10;

/// Applies `change` to the freshest copy of the node and stores it,
/// retrying when another writer got in between. `change` returning `false`
/// means "nothing to do" (no write).
pub async fn update<F>(store: &Store, uuid: Uuid, mut change: F) -> Result<Option<Node>, StoreError>
where
    F: FnMut(&mut Node) -> bool,
{
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let mut node = store.node_get_by_uuid(uuid).await?;
        if !change(&mut node) {
            return Ok(None);
        }
        match store.node_update(&node).await {
            Ok(stored) => return Ok(Some(stored)),
            Err(error @ StoreError::Stale { .. }) => last = Some(error),
            Err(other) => return Err(other),
        }
    }
    Err(last.unwrap_or(StoreError::Stale { kind: "node", ident: uuid.to_string() }))
}

/// Copies the fields a driver may change from the conductor's working copy.
pub fn copy_driver_fields(from: &Node, to: &mut Node) {
    to.driver_internal_info = from.driver_internal_info.clone();
    to.instance_info = from.instance_info.clone();
    to.properties = from.properties.clone();
    to.raid_config = from.raid_config.clone();
    to.boot_mode = from.boot_mode.clone();
    to.secure_boot = from.secure_boot;
    to.clean_step = from.clean_step.clone();
    to.deploy_step = from.deploy_step.clone();
    to.service_step = from.service_step.clone();
    to.inspection_started_at = from.inspection_started_at;
    to.inspection_finished_at = from.inspection_finished_at;
}

/// Records an event in the node's history (best effort: a failure to record
/// is logged, never fatal).
pub async fn history(
    store: &Store,
    node: &Node,
    host: &str,
    severity: Severity,
    event_type: &str,
    message: &str,
) {
    let event = HistoryEvent {
        id: 0,
        uuid: Uuid::new_v4(),
        node_uuid: node.uuid,
        severity,
        event: message.to_owned(),
        event_type: event_type.to_owned(),
        conductor: Some(host.to_owned()),
        user: None,
        state: Some(node.provision_state),
        target_provision_state: node.target_provision_state,
        duration_seconds: None,
        created_at: Timestamp::now(),
    };
    if let Err(error) = store.history_add(&event).await {
        tracing::warn!(node = %node.uuid, %error, "could not record node history");
    }
}

//! Allocations (API 1.52): a request for one node of a resource class with
//! some traits, and the pure rules for choosing, backfilling and releasing
//! its node. The store makes the claim atomic; the API orders the candidates.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::provision::ProvisionState;
use crate::records::{JsonObject, Node, Timestamp};
use crate::validate::is_valid_logical_name;

/// Longest resource class an allocation may ask for (as in Ironic).
pub const MAX_RESOURCE_CLASS_LEN: usize = 80;

/// Where an allocation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllocationState {
    /// Accepted, no node chosen yet.
    Allocating,
    /// A node is reserved for it (`node_uuid`).
    Active,
    /// No node could be reserved (`last_error` says why).
    Error,
}

impl AllocationState {
    pub const ALL: [AllocationState; 3] = [Self::Allocating, Self::Active, Self::Error];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allocating => "allocating",
            Self::Active => "active",
            Self::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == text)
    }
}

/// An allocation.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    /// The store's row id: the default sort key, never shown.
    pub id: i64,
    pub uuid: Uuid,
    pub name: Option<String>,
    /// The node reserved for it, once `active`.
    pub node_uuid: Option<Uuid>,
    pub state: AllocationState,
    pub last_error: Option<String>,
    pub resource_class: Option<String>,
    /// Traits the node must have (all of them).
    pub traits: Vec<String>,
    /// When not empty, the node must be one of these.
    pub candidate_nodes: Vec<Uuid>,
    pub extra: JsonObject,
    /// The project the allocation is for; candidates are limited to nodes
    /// it owns or leases.
    pub owner: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

impl Allocation {
    /// A new allocation, still `allocating`, with nothing but its identity.
    pub fn new(uuid: Uuid) -> Self {
        Self {
            id: 0,
            uuid,
            name: None,
            node_uuid: None,
            state: AllocationState::Allocating,
            last_error: None,
            resource_class: None,
            traits: Vec::new(),
            candidate_nodes: Vec::new(),
            extra: JsonObject::new(),
            owner: None,
            created_at: Timestamp::now(),
            updated_at: None,
        }
    }

    /// The `last_error` of an allocation that could not be processed, worded
    /// as Ironic words it.
    pub fn failure_message(&self, reason: &str) -> String {
        format!("Failed to process allocation {}: {reason}.", self.uuid)
    }
}

/// An allocation name: a logical name (RFC 3986 unreserved characters, at
/// most 255) that does not look like a UUID. Ironic accepts UUID-shaped
/// names, but they could never be looked up by name; ferric refuses them.
pub fn is_valid_allocation_name(name: &str) -> bool {
    is_valid_logical_name(name) && Uuid::parse_str(name).is_err()
}

/// Whether `node_traits` include every one of `requested`.
pub fn traits_match(node_traits: &[String], requested: &[String]) -> bool {
    requested.iter().all(|wanted| node_traits.contains(wanted))
}

/// Whether `node` may be reserved for `allocation` right now: available,
/// out of maintenance, with a known power state, no instance, the requested
/// resource class and traits, owned or leased by the allocation's owner (if
/// any), and among the candidate nodes (if any).
pub fn is_candidate(node: &Node, allocation: &Allocation) -> bool {
    node.provision_state == ProvisionState::Available
        && !node.maintenance
        && node.power_state.is_some()
        && node.instance_uuid.is_none()
        && node.resource_class.is_some()
        && node.resource_class == allocation.resource_class
        && traits_match(&node.traits, &allocation.traits)
        && allocation.owner.as_ref().is_none_or(|owner| {
            node.owner.as_ref() == Some(owner) || node.lessee.as_ref() == Some(owner)
        })
        && (allocation.candidate_nodes.is_empty()
            || allocation.candidate_nodes.contains(&node.uuid))
}

/// Moves the node named like the allocation (if any) to the front, so that
/// allocations named after their nodes get them (Ironic 1.79).
pub fn prefer_named_node(nodes: &mut [Node], allocation_name: Option<&str>) {
    let Some(name) = allocation_name else { return };
    if let Some(index) = nodes.iter().position(|node| node.name.as_deref() == Some(name)) {
        nodes[..=index].rotate_right(1);
    }
}

/// Why `node` cannot be backfilled into `allocation` (empty: it can). A
/// backfill records an allocation for a node that is already deployed.
pub fn backfill_problems(node: &Node, allocation: &Allocation) -> Vec<String> {
    let mut problems = Vec::new();
    if node.provision_state != ProvisionState::Active {
        problems.push(format!(
            "Node must be in the \"active\" state, but the current state is \"{}\"",
            node.provision_state.as_str()
        ));
    }
    if let Some(wanted) = &allocation.resource_class {
        if node.resource_class.as_ref() != Some(wanted) {
            problems.push(format!(
                "Resource class {} does not match the requested resource class {wanted}",
                node.resource_class.as_deref().unwrap_or("None")
            ));
        }
    }
    if !traits_match(&node.traits, &allocation.traits) {
        problems.push(format!(
            "List of traits {:?} does not match the requested traits {:?}",
            node.traits, allocation.traits
        ));
    }
    if !allocation.candidate_nodes.is_empty() && !allocation.candidate_nodes.contains(&node.uuid) {
        let candidates: Vec<String> =
            allocation.candidate_nodes.iter().map(Uuid::to_string).collect();
        problems.push(format!(
            "Candidate nodes must be empty or contain the target node, but got {candidates:?}"
        ));
    }
    problems
}

/// `node` as it looks once reserved for `allocation`: the allocation's UUID
/// is its instance UUID, and its traits go to `instance_info.traits` (which
/// deploy templates read), as in Ironic.
pub fn claimed(node: &Node, allocation: &Allocation) -> Node {
    let mut claimed = node.clone();
    claimed.instance_uuid = Some(allocation.uuid.to_string());
    claimed.allocation_uuid = Some(allocation.uuid);
    claimed.instance_info.insert(
        "traits".into(),
        Value::Array(allocation.traits.iter().cloned().map(Value::String).collect()),
    );
    claimed
}

/// States in which a node may be changed although an operation is in
/// flight (Ironic's `UPDATE_ALLOWED_STATES`).
fn updates_allowed(state: ProvisionState) -> bool {
    use ProvisionState::*;
    matches!(
        state,
        DeployFailed
            | Inspecting
            | InspectFailed
            | InspectWait
            | CleanFailed
            | Error
            | Verifying
            | AdoptFailed
            | RescueFailed
            | UnrescueFailed
            | Servicing
            | ServiceHold
            | ServiceFailed
    )
}

/// Why the allocation of `node` may not be removed now (`None`: it may).
/// In maintenance it always may; otherwise not while the node is deployed
/// or in the middle of an operation.
pub fn deallocation_refusal(node: &Node, allocation_uuid: Uuid) -> Option<String> {
    if node.maintenance {
        return None;
    }
    if node.target_provision_state.is_some() && !updates_allowed(node.provision_state) {
        return Some(format!(
            "Cannot remove allocation {allocation_uuid} for node {}, because the node is in \
             state {} where updates are not allowed (and maintenance mode is off)",
            node.uuid,
            node.provision_state.as_str()
        ));
    }
    if node.provision_state == ProvisionState::Active {
        return Some(format!(
            "Cannot remove allocation {allocation_uuid} for node {}, because the node is active \
             (and maintenance mode is off)",
            node.uuid
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::HardwareType;
    use crate::power::PowerState;

    fn available(name: &str, class: &str, traits: &[&str]) -> Node {
        let mut node =
            Node::new(Uuid::new_v4(), HardwareType::FakeHardware, ProvisionState::Available);
        node.name = Some(name.into());
        node.power_state = Some(PowerState::Off);
        node.resource_class = Some(class.into());
        node.traits = traits.iter().map(|t| (*t).to_owned()).collect();
        node
    }

    fn wanting(class: &str, traits: &[&str]) -> Allocation {
        let mut allocation = Allocation::new(Uuid::new_v4());
        allocation.resource_class = Some(class.into());
        allocation.traits = traits.iter().map(|t| (*t).to_owned()).collect();
        allocation
    }

    #[test]
    fn states_round_trip() {
        for state in AllocationState::ALL {
            assert_eq!(AllocationState::parse(state.as_str()), Some(state));
        }
        assert_eq!(AllocationState::parse("deleted"), None);
    }

    #[test]
    fn names() {
        assert!(is_valid_allocation_name("host-1.example_a~b"));
        assert!(!is_valid_allocation_name("host 1"));
        assert!(!is_valid_allocation_name(""));
        assert!(!is_valid_allocation_name(&Uuid::new_v4().to_string()));
    }

    #[test]
    fn candidates_need_every_condition() {
        let allocation = wanting("gold", &["CUSTOM_A"]);
        let good = available("n", "gold", &["CUSTOM_A", "CUSTOM_B"]);
        assert!(is_candidate(&good, &allocation));
        let mut node = good.clone();
        node.maintenance = true;
        assert!(!is_candidate(&node, &allocation));
        let mut node = good.clone();
        node.power_state = None;
        assert!(!is_candidate(&node, &allocation));
        let mut node = good.clone();
        node.instance_uuid = Some("x".into());
        assert!(!is_candidate(&node, &allocation));
        let mut node = good.clone();
        node.provision_state = ProvisionState::Manageable;
        assert!(!is_candidate(&node, &allocation));
        assert!(!is_candidate(&available("n", "silver", &["CUSTOM_A"]), &allocation));
        assert!(!is_candidate(&available("n", "gold", &["CUSTOM_B"]), &allocation));

        let mut owned = allocation.clone();
        owned.owner = Some("p1".into());
        assert!(!is_candidate(&good, &owned));
        let mut node = good.clone();
        node.lessee = Some("p1".into());
        assert!(is_candidate(&node, &owned));

        let mut restricted = allocation.clone();
        restricted.candidate_nodes = vec![Uuid::new_v4()];
        assert!(!is_candidate(&good, &restricted));
        restricted.candidate_nodes.push(good.uuid);
        assert!(is_candidate(&good, &restricted));
    }

    #[test]
    fn the_named_node_comes_first() {
        let mut nodes: Vec<Node> =
            ["a", "b", "c", "d"].iter().map(|name| available(name, "x", &[])).collect();
        prefer_named_node(&mut nodes, Some("c"));
        let names: Vec<_> = nodes.iter().filter_map(|n| n.name.clone()).collect();
        assert_eq!(names, ["c", "a", "b", "d"]);
        prefer_named_node(&mut nodes, Some("zzz"));
        prefer_named_node(&mut nodes, None);
        let again: Vec<_> = nodes.iter().filter_map(|n| n.name.clone()).collect();
        assert_eq!(again, names);
    }

    #[test]
    fn backfill_and_deallocation_rules() {
        let mut node = available("n", "gold", &[]);
        let allocation = wanting("silver", &["CUSTOM_A"]);
        let problems = backfill_problems(&node, &allocation);
        assert_eq!(problems.len(), 3, "{problems:?}");
        node.provision_state = ProvisionState::Active;
        node.resource_class = Some("silver".into());
        node.traits = vec!["CUSTOM_A".into()];
        assert!(backfill_problems(&node, &allocation).is_empty());

        let claimed = claimed(&node, &allocation);
        assert_eq!(claimed.instance_uuid, Some(allocation.uuid.to_string()));
        assert_eq!(claimed.allocation_uuid, Some(allocation.uuid));
        assert_eq!(claimed.instance_info["traits"], serde_json::json!(["CUSTOM_A"]));

        assert!(deallocation_refusal(&node, allocation.uuid).is_some());
        node.maintenance = true;
        assert!(deallocation_refusal(&node, allocation.uuid).is_none());
        node.maintenance = false;
        node.provision_state = ProvisionState::Deploying;
        node.target_provision_state = Some(ProvisionState::Active);
        assert!(deallocation_refusal(&node, allocation.uuid).is_some());
        node.provision_state = ProvisionState::DeployFailed;
        assert!(deallocation_refusal(&node, allocation.uuid).is_none());
        node.provision_state = ProvisionState::Available;
        node.target_provision_state = None;
        assert!(deallocation_refusal(&node, allocation.uuid).is_none());
    }
}

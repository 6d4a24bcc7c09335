//! Query descriptions: filters, sorting and pagination, as plain data.

use ferric_types::{Fault, HardwareType, ProvisionState, Timestamp};
use uuid::Uuid;

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortDir {
    #[default]
    Asc,
    Desc,
}

/// Pagination: at most `limit` rows after the row with uuid `marker` in the
/// chosen order (keyset pagination on the sort key, ties broken by row id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub limit: Option<u32>,
    pub marker: Option<Uuid>,
    pub sort_dir: SortDir,
}

/// The node columns a listing may be sorted on (Ironic rejects JSON columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NodeSortKey {
    #[default]
    Id,
    Uuid,
    Name,
    Driver,
    ProvisionState,
    PowerState,
    Maintenance,
    ResourceClass,
    ConductorGroup,
    Owner,
    Lessee,
    InstanceUuid,
    CreatedAt,
    UpdatedAt,
    ProvisionUpdatedAt,
}

impl NodeSortKey {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "id" => Self::Id,
            "uuid" => Self::Uuid,
            "name" => Self::Name,
            "driver" => Self::Driver,
            "provision_state" => Self::ProvisionState,
            "power_state" => Self::PowerState,
            "maintenance" => Self::Maintenance,
            "resource_class" => Self::ResourceClass,
            "conductor_group" => Self::ConductorGroup,
            "owner" => Self::Owner,
            "lessee" => Self::Lessee,
            "instance_uuid" => Self::InstanceUuid,
            "created_at" => Self::CreatedAt,
            "updated_at" => Self::UpdatedAt,
            "provision_updated_at" => Self::ProvisionUpdatedAt,
            _ => return None,
        })
    }
}

/// Node filters; `None` means "don't filter on this".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeFilters {
    pub instance_uuid: Option<String>,
    /// `Some(true)`: only nodes with an instance; `Some(false)`: only without.
    pub associated: Option<bool>,
    pub maintenance: Option<bool>,
    pub retired: Option<bool>,
    pub provision_state: Option<ProvisionState>,
    /// Any of these states (used by the conductor's sweeps).
    pub provision_states: Option<Vec<ProvisionState>>,
    pub driver: Option<HardwareType>,
    pub resource_class: Option<String>,
    pub fault: Option<Fault>,
    pub conductor_group: Option<String>,
    pub owner: Option<String>,
    pub lessee: Option<String>,
    /// Owner or lessee equals this project.
    pub project: Option<String>,
    pub chassis_uuid: Option<Uuid>,
    /// Substring match on `description`.
    pub description_contains: Option<String>,
    /// `shard` is any of these.
    pub shards: Option<Vec<String>>,
    /// `Some(true)`: shard set; `Some(false)`: shard not set.
    pub sharded: Option<bool>,
    pub parent_node: Option<String>,
    /// `Some(false)`: leave out nodes that have a `parent_node`.
    pub include_children: Option<bool>,
    /// `Some(Some(host))`: reserved by host; `Some(None)`: not reserved.
    pub reservation: Option<Option<String>>,
    /// Reserved by anyone other than these hosts (for orphan sweeps).
    pub reserved_by_none_of: Option<Vec<String>>,
    /// `Some(true)`: only nodes with a pending action.
    pub has_pending_action: Option<bool>,
    /// `provision_updated_at` earlier than this.
    pub provision_updated_before: Option<Timestamp>,
    /// Only nodes with a power state change in progress (`target_power_state` set).
    pub power_change_in_progress: Option<bool>,
}

/// A node listing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeQuery {
    pub filters: NodeFilters,
    pub sort_key: NodeSortKey,
    pub page: Page,
}

/// A port listing (also used for portgroups where the fields apply).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortQuery {
    pub node_uuid: Option<Uuid>,
    pub portgroup_uuid: Option<Uuid>,
    pub address: Option<String>,
    /// Only ports of nodes in this shard.
    pub shard: Option<String>,
    pub page: Page,
}

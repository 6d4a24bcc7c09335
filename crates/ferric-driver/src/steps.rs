//! Steps: the unit of work of deploying, cleaning, servicing and verifying.

use ferric_types::{InterfaceKind, JsonObject};
use serde::{Deserialize, Serialize};

/// Which operation a step belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepPhase {
    Deploy,
    Clean,
    Service,
    Verify,
}

/// A step as declared by an interface or requested by a user. Stored on the
/// node (`driver_internal_info.<phase>_steps`) while an operation runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub interface: InterfaceKind,
    pub step: String,
    #[serde(default)]
    pub args: JsonObject,
    /// Higher runs first; 0 means "only when asked for". User-given manual
    /// steps carry no priority and run in the order given.
    #[serde(default)]
    pub priority: i64,
    #[serde(default)]
    pub abortable: bool,
}

impl Step {
    pub fn new(interface: InterfaceKind, step: &str, priority: i64) -> Self {
        Self {
            interface,
            step: step.to_owned(),
            args: JsonObject::new(),
            priority,
            abortable: false,
        }
    }

    /// Ironic's tie-break between equal priorities.
    pub fn interface_rank(interface: InterfaceKind) -> u8 {
        match interface {
            InterfaceKind::Network => 8,
            InterfaceKind::Vendor => 7,
            InterfaceKind::Power => 6,
            InterfaceKind::Management => 5,
            InterfaceKind::Firmware => 4,
            InterfaceKind::Deploy => 3,
            InterfaceKind::Bios => 2,
            InterfaceKind::Raid => 1,
            _ => 0,
        }
    }
}

/// Orders automated steps: priority descending, then interface rank, and
/// drops disabled (priority 0) ones.
pub fn order_automated(mut steps: Vec<Step>) -> Vec<Step> {
    steps.retain(|step| step.priority > 0);
    steps.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(Step::interface_rank(b.interface).cmp(&Step::interface_rank(a.interface)))
    });
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automated_order_is_priority_then_interface() {
        let steps = vec![
            Step::new(InterfaceKind::Deploy, "erase_devices", 10),
            Step::new(InterfaceKind::Deploy, "disabled", 0),
            Step::new(InterfaceKind::Raid, "raid_thing", 99),
            Step::new(InterfaceKind::Deploy, "erase_devices_metadata", 99),
        ];
        let names: Vec<String> = order_automated(steps).into_iter().map(|s| s.step).collect();
        assert_eq!(names, ["erase_devices_metadata", "raid_thing", "erase_devices"]);
    }
}

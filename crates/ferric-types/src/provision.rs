//! The provision state machine: every state a node can be in, every verb a
//! user can ask for and every event a conductor reports, and the one pure
//! function per kind that says where a node goes next.
//!
//! Two tables, not one: API verbs ([`Verb`]) are what a user may request;
//! internal events ([`Event`]) are what a conductor reports while working.
//! Keeping them apart means a user can never send a `done` or `fail`, and
//! a conductor never needs a microversion.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A node's provision state, spelled on the wire exactly as Ironic spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ProvisionState {
    #[serde(rename = "enroll")]
    Enroll,
    #[serde(rename = "verifying")]
    Verifying,
    #[serde(rename = "manageable")]
    Manageable,
    #[serde(rename = "available")]
    Available,
    #[serde(rename = "active")]
    Active,
    #[serde(rename = "deploying")]
    Deploying,
    #[serde(rename = "wait call-back")]
    DeployWait,
    #[serde(rename = "deploy hold")]
    DeployHold,
    #[serde(rename = "deploy failed")]
    DeployFailed,
    #[serde(rename = "deleting")]
    Deleting,
    #[serde(rename = "cleaning")]
    Cleaning,
    #[serde(rename = "clean wait")]
    CleanWait,
    #[serde(rename = "clean hold")]
    CleanHold,
    #[serde(rename = "clean failed")]
    CleanFailed,
    #[serde(rename = "error")]
    Error,
    #[serde(rename = "inspecting")]
    Inspecting,
    #[serde(rename = "inspect wait")]
    InspectWait,
    #[serde(rename = "inspect failed")]
    InspectFailed,
    #[serde(rename = "adopting")]
    Adopting,
    #[serde(rename = "adopt failed")]
    AdoptFailed,
    #[serde(rename = "rescuing")]
    Rescuing,
    #[serde(rename = "rescue wait")]
    RescueWait,
    #[serde(rename = "rescue")]
    Rescue,
    #[serde(rename = "rescue failed")]
    RescueFailed,
    #[serde(rename = "unrescuing")]
    Unrescuing,
    #[serde(rename = "unrescue failed")]
    UnrescueFailed,
    #[serde(rename = "servicing")]
    Servicing,
    #[serde(rename = "service wait")]
    ServiceWait,
    #[serde(rename = "service hold")]
    ServiceHold,
    #[serde(rename = "service failed")]
    ServiceFailed,
}

impl ProvisionState {
    /// Every state, in the order the documentation lists them.
    pub const ALL: [ProvisionState; 30] = [
        Self::Enroll,
        Self::Verifying,
        Self::Manageable,
        Self::Available,
        Self::Active,
        Self::Deploying,
        Self::DeployWait,
        Self::DeployHold,
        Self::DeployFailed,
        Self::Deleting,
        Self::Cleaning,
        Self::CleanWait,
        Self::CleanHold,
        Self::CleanFailed,
        Self::Error,
        Self::Inspecting,
        Self::InspectWait,
        Self::InspectFailed,
        Self::Adopting,
        Self::AdoptFailed,
        Self::Rescuing,
        Self::RescueWait,
        Self::Rescue,
        Self::RescueFailed,
        Self::Unrescuing,
        Self::UnrescueFailed,
        Self::Servicing,
        Self::ServiceWait,
        Self::ServiceHold,
        Self::ServiceFailed,
    ];

    /// The wire spelling (`"wait call-back"`, `"clean failed"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enroll => "enroll",
            Self::Verifying => "verifying",
            Self::Manageable => "manageable",
            Self::Available => "available",
            Self::Active => "active",
            Self::Deploying => "deploying",
            Self::DeployWait => "wait call-back",
            Self::DeployHold => "deploy hold",
            Self::DeployFailed => "deploy failed",
            Self::Deleting => "deleting",
            Self::Cleaning => "cleaning",
            Self::CleanWait => "clean wait",
            Self::CleanHold => "clean hold",
            Self::CleanFailed => "clean failed",
            Self::Error => "error",
            Self::Inspecting => "inspecting",
            Self::InspectWait => "inspect wait",
            Self::InspectFailed => "inspect failed",
            Self::Adopting => "adopting",
            Self::AdoptFailed => "adopt failed",
            Self::Rescuing => "rescuing",
            Self::RescueWait => "rescue wait",
            Self::Rescue => "rescue",
            Self::RescueFailed => "rescue failed",
            Self::Unrescuing => "unrescuing",
            Self::UnrescueFailed => "unrescue failed",
            Self::Servicing => "servicing",
            Self::ServiceWait => "service wait",
            Self::ServiceHold => "service hold",
            Self::ServiceFailed => "service failed",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == text)
    }

    /// Stable states are where a node rests with nobody working on it.
    pub fn is_stable(self) -> bool {
        matches!(
            self,
            Self::Enroll
                | Self::Manageable
                | Self::Available
                | Self::Active
                | Self::Error
                | Self::Rescue
        )
    }

    /// Failure states: the operation ended badly and the node waits for an
    /// operator. Nobody is working on it, so these are resting states too.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Self::DeployFailed
                | Self::CleanFailed
                | Self::InspectFailed
                | Self::AdoptFailed
                | Self::RescueFailed
                | Self::UnrescueFailed
                | Self::ServiceFailed
        )
    }

    /// Wait and hold states: the conductor holds no lock and waits for
    /// something outside it (the agent's call-back, an operator's `unhold`).
    /// A timeout applies to the wait states.
    pub fn is_waiting(self) -> bool {
        matches!(
            self,
            Self::DeployWait
                | Self::DeployHold
                | Self::CleanWait
                | Self::CleanHold
                | Self::InspectWait
                | Self::RescueWait
                | Self::ServiceWait
                | Self::ServiceHold
        )
    }

    /// States in which a conductor must be actively working on the node. A
    /// node found in one of these with nobody holding its lock was abandoned
    /// (a crash), and gets the `fail` event.
    pub fn is_working(self) -> bool {
        !self.is_stable() && !self.is_failure() && !self.is_waiting()
    }

    /// The state a node in this state is heading to when the table alone
    /// decides it (cleaning decides by how it began: see [`apply_verb`]).
    pub fn implied_target(self) -> Option<ProvisionState> {
        use ProvisionState::*;
        match self {
            Enroll | Manageable | Available | Active | Error | Rescue => None,
            Verifying | Inspecting | InspectWait | InspectFailed => Some(Manageable),
            Deploying | DeployWait | DeployHold | DeployFailed => Some(Active),
            Adopting | AdoptFailed | Unrescuing | UnrescueFailed => Some(Active),
            Servicing | ServiceWait | ServiceHold | ServiceFailed => Some(Active),
            Deleting | Cleaning | CleanWait | CleanHold | CleanFailed => Some(Available),
            Rescuing | RescueWait | RescueFailed => Some(Rescue),
        }
    }

    /// States in which the node runs ferric's ramdisk: it network-boots the
    /// deploy (or rescue) kernel, and its agent may look the node up and
    /// heartbeat.
    pub fn runs_ramdisk(self) -> bool {
        matches!(
            self,
            Self::Deploying
                | Self::DeployWait
                | Self::Cleaning
                | Self::CleanWait
                | Self::Inspecting
                | Self::InspectWait
                | Self::Rescuing
                | Self::RescueWait
                | Self::Servicing
                | Self::ServiceWait
        )
    }

    fn is_cleaning_family(self) -> bool {
        matches!(self, Self::Cleaning | Self::CleanWait | Self::CleanHold | Self::CleanFailed)
    }
}

impl fmt::Display for ProvisionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a user may ask for with `PUT /v1/nodes/{node}/states/provision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    /// `active`: deploy.
    Active,
    /// `deploy` (1.73): the same as `active`.
    Deploy,
    Rebuild,
    /// `deleted`: undeploy.
    Deleted,
    /// `undeploy` (1.73): the same as `deleted`.
    Undeploy,
    Manage,
    Provide,
    Inspect,
    Abort,
    Clean,
    Adopt,
    Rescue,
    Unrescue,
    Unhold,
    Service,
}

impl Verb {
    pub const ALL: [Verb; 15] = [
        Self::Active,
        Self::Deploy,
        Self::Rebuild,
        Self::Deleted,
        Self::Undeploy,
        Self::Manage,
        Self::Provide,
        Self::Inspect,
        Self::Abort,
        Self::Clean,
        Self::Adopt,
        Self::Rescue,
        Self::Unrescue,
        Self::Unhold,
        Self::Service,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Deploy => "deploy",
            Self::Rebuild => "rebuild",
            Self::Deleted => "deleted",
            Self::Undeploy => "undeploy",
            Self::Manage => "manage",
            Self::Provide => "provide",
            Self::Inspect => "inspect",
            Self::Abort => "abort",
            Self::Clean => "clean",
            Self::Adopt => "adopt",
            Self::Rescue => "rescue",
            Self::Unrescue => "unrescue",
            Self::Unhold => "unhold",
            Self::Service => "service",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|verb| verb.as_str() == text)
    }

    /// The API microversion that introduced the verb.
    pub fn min_microversion(self) -> u16 {
        match self {
            Self::Active | Self::Rebuild | Self::Deleted => 1,
            Self::Manage | Self::Provide => 4,
            Self::Inspect => 6,
            Self::Abort => 13,
            Self::Clean => 15,
            Self::Adopt => 17,
            Self::Rescue | Self::Unrescue => 38,
            Self::Deploy | Self::Undeploy => 73,
            Self::Unhold => 85,
            Self::Service => 87,
        }
    }

    /// Collapses the 1.73 aliases onto the verbs they stand for.
    pub fn canonical(self) -> Verb {
        match self {
            Self::Deploy => Self::Active,
            Self::Undeploy => Self::Deleted,
            other => other,
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a conductor reports about the work it does on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    /// The work of this state finished successfully.
    Done,
    /// The work failed (or timed out, or was abandoned by a crash).
    Fail,
    /// The conductor handed over to something outside it and waits.
    Wait,
    /// The awaited call-back arrived; work continues.
    Resume,
    /// A `hold` step was reached; the node waits for `unhold`.
    Hold,
}

impl Event {
    pub const ALL: [Event; 5] = [Self::Done, Self::Fail, Self::Wait, Self::Resume, Self::Hold];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Fail => "fail",
            Self::Wait => "wait",
            Self::Resume => "resume",
            Self::Hold => "hold",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a verb or event takes a node: the new state and the new target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub to: ProvisionState,
    pub target: Option<ProvisionState>,
}

/// The verb or event is not allowed from the node's current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the requested action \"{action}\" cannot be performed on a node in state \"{from}\"")]
pub struct InvalidTransition {
    pub from: ProvisionState,
    pub action: &'static str,
}

/// The transition a user's verb causes from `from`, if the verb is legal
/// there. `current_target` is the node's present target, used to keep a
/// manual clean heading back to `manageable`.
pub fn apply_verb(
    from: ProvisionState,
    verb: Verb,
    current_target: Option<ProvisionState>,
) -> Result<Transition, InvalidTransition> {
    use ProvisionState::*;
    let verb = verb.canonical();
    let to = match (from, verb) {
        (Enroll, Verb::Manage) => Verifying,

        (Manageable, Verb::Provide) => Cleaning,
        (Manageable, Verb::Clean) => Cleaning,
        (Manageable, Verb::Inspect) => Inspecting,
        (Manageable, Verb::Adopt) => Adopting,

        (Available, Verb::Active) => Deploying,
        (Available, Verb::Manage) => Manageable,

        (DeployWait, Verb::Abort) => DeployFailed,
        (DeployWait, Verb::Deleted) => Deleting,
        (DeployHold, Verb::Unhold) => DeployWait,
        (DeployHold, Verb::Abort) => DeployFailed,
        (DeployFailed, Verb::Rebuild | Verb::Active) => Deploying,
        (DeployFailed, Verb::Deleted) => Deleting,

        (Active, Verb::Rebuild) => Deploying,
        (Active, Verb::Deleted) => Deleting,
        (Active, Verb::Rescue) => Rescuing,
        (Active, Verb::Service) => Servicing,

        (CleanWait, Verb::Abort) => CleanFailed,
        (CleanHold, Verb::Unhold) => CleanWait,
        (CleanHold, Verb::Abort) => CleanFailed,
        (CleanFailed, Verb::Manage) => Manageable,

        (Error, Verb::Rebuild) => Deploying,
        (Error, Verb::Deleted) => Deleting,

        (InspectWait, Verb::Abort) => InspectFailed,
        (InspectFailed, Verb::Manage) => Manageable,
        (InspectFailed, Verb::Inspect) => Inspecting,

        (AdoptFailed, Verb::Adopt) => Adopting,
        (AdoptFailed, Verb::Manage) => Manageable,

        (RescueWait, Verb::Abort) => RescueFailed,
        (RescueWait, Verb::Deleted) => Deleting,
        (Rescue | RescueFailed | UnrescueFailed, Verb::Rescue) => Rescuing,
        (Rescue | RescueFailed | UnrescueFailed, Verb::Unrescue) => Unrescuing,
        (Rescue | RescueFailed | UnrescueFailed, Verb::Deleted) => Deleting,

        (ServiceWait, Verb::Abort) => ServiceFailed,
        (ServiceWait, Verb::Deleted) => Deleting,
        (ServiceHold, Verb::Service) => Servicing,
        (ServiceHold, Verb::Unhold) => ServiceWait,
        (ServiceHold, Verb::Abort) => ServiceFailed,
        (ServiceFailed, Verb::Service) => Servicing,
        (ServiceFailed, Verb::Rescue) => Rescuing,
        (ServiceFailed, Verb::Deleted) => Deleting,
        (ServiceFailed, Verb::Abort) => Active,

        _ => return Err(InvalidTransition { from, action: verb.as_str() }),
    };
    let target = match (from, verb) {
        (Manageable, Verb::Clean) => Some(Manageable),
        (Manageable, Verb::Provide) => Some(Available),
        _ => target_after(from, to, current_target),
    };
    Ok(Transition { to, target })
}

/// The transition an internal event causes from `from`, if it is legal there.
pub fn apply_event(
    from: ProvisionState,
    event: Event,
    current_target: Option<ProvisionState>,
) -> Result<Transition, InvalidTransition> {
    use ProvisionState::*;
    let cleaning_done = match current_target {
        Some(Manageable) => Manageable,
        _ => Available,
    };
    let to = match (from, event) {
        (Verifying, Event::Done) => Manageable,
        (Verifying, Event::Fail) => Enroll,

        (Deploying, Event::Wait) => DeployWait,
        (Deploying, Event::Hold) => DeployHold,
        (Deploying, Event::Done) => Active,
        (Deploying, Event::Fail) => DeployFailed,
        (DeployWait, Event::Resume) => Deploying,
        (DeployWait, Event::Hold) => DeployHold,
        (DeployWait, Event::Fail) => DeployFailed,

        (Deleting, Event::Done) => Cleaning,
        (Deleting, Event::Fail) => Error,

        (Cleaning, Event::Wait) => CleanWait,
        (Cleaning, Event::Hold) => CleanHold,
        (Cleaning, Event::Done) => cleaning_done,
        (Cleaning, Event::Fail) => CleanFailed,
        (CleanWait, Event::Resume) => Cleaning,
        (CleanWait, Event::Hold) => CleanHold,
        (CleanWait, Event::Fail) => CleanFailed,

        (Inspecting, Event::Done) => Manageable,
        (Inspecting, Event::Wait) => InspectWait,
        (Inspecting, Event::Fail) => InspectFailed,
        (InspectWait, Event::Done) => Manageable,
        (InspectWait, Event::Resume) => Inspecting,
        (InspectWait, Event::Fail) => InspectFailed,

        (Adopting, Event::Done) => Active,
        (Adopting, Event::Fail) => AdoptFailed,

        (Rescuing, Event::Wait) => RescueWait,
        (Rescuing, Event::Done) => Rescue,
        (Rescuing, Event::Fail) => RescueFailed,
        (RescueWait, Event::Resume) => Rescuing,
        (RescueWait, Event::Fail) => RescueFailed,

        (Unrescuing, Event::Done) => Active,
        (Unrescuing, Event::Fail) => UnrescueFailed,

        (Servicing, Event::Done) => Active,
        (Servicing, Event::Wait) => ServiceWait,
        (Servicing, Event::Hold) => ServiceHold,
        (Servicing, Event::Fail) => ServiceFailed,
        (ServiceWait, Event::Resume) => Servicing,
        (ServiceWait, Event::Hold) => ServiceHold,
        (ServiceWait, Event::Fail) => ServiceFailed,
        (ServiceHold, Event::Fail) => ServiceFailed,
        (ServiceFailed, Event::Wait) => ServiceWait,
        (ServiceFailed, Event::Hold) => ServiceHold,

        _ => return Err(InvalidTransition { from, action: event.as_str() }),
    };
    Ok(Transition { to, target: target_after(from, to, current_target) })
}

/// The target after moving `from` → `to`: none once stable; a cleaning run
/// keeps the target it began with; otherwise the state's implied target.
fn target_after(
    from: ProvisionState,
    to: ProvisionState,
    current_target: Option<ProvisionState>,
) -> Option<ProvisionState> {
    if to.is_stable() {
        return None;
    }
    if to.is_cleaning_family() && from.is_cleaning_family() {
        return current_target.or(to.implied_target());
    }
    to.implied_target()
}

/// Renders both transition tables as Markdown: the source of
/// `docs/node-states.md`, which a test keeps in step with this code.
pub fn render_markdown() -> String {
    let mut out = String::new();
    out.push_str("# Node provision states\n\n");
    out.push_str(
        "Generated from `crates/ferric-types/src/provision.rs` by \
         `cargo test -p ferric-types`; do not edit by hand.\n\n",
    );
    out.push_str("## States\n\n| State | Kind | Implied target |\n|---|---|---|\n");
    for state in ProvisionState::ALL {
        let kind = if state.is_stable() {
            "stable"
        } else if state.is_failure() {
            "failure"
        } else if state.is_waiting() {
            "waiting"
        } else {
            "working"
        };
        let target = state.implied_target().map_or("—", ProvisionState::as_str);
        out.push_str(&format!("| `{state}` | {kind} | {target} |\n"));
    }
    out.push_str(
        "\n## API verbs\n\n`PUT /v1/nodes/{node}/states/provision` with `{\"target\": verb}`. \
         Anything not listed is refused with 400 (409 if the node is locked).\n\n\
         | From | Verb (min. microversion) | To |\n|---|---|---|\n",
    );
    for from in ProvisionState::ALL {
        for verb in Verb::ALL {
            if let Ok(transition) = apply_verb(from, verb, from.implied_target()) {
                out.push_str(&format!(
                    "| `{from}` | **{verb}** (1.{}) | `{}` |\n",
                    verb.min_microversion(),
                    transition.to
                ));
            }
        }
    }
    out.push_str(
        "\n## Conductor events\n\nReported by the conductor as it works; never accepted from \
         the API. From `cleaning`, `done` leads to `manageable` after a manual clean and to \
         `available` otherwise.\n\n| From | Event | To |\n|---|---|---|\n",
    );
    for from in ProvisionState::ALL {
        for event in Event::ALL {
            if let Ok(transition) = apply_event(from, event, from.implied_target()) {
                out.push_str(&format!("| `{from}` | {event} | `{}` |\n", transition.to));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProvisionState::*;

    #[test]
    fn wire_names_round_trip() {
        for state in ProvisionState::ALL {
            let json = serde_json::to_string(&state).expect("serialize");
            assert_eq!(json, format!("\"{}\"", state.as_str()));
            assert_eq!(ProvisionState::parse(state.as_str()), Some(state));
        }
        for verb in Verb::ALL {
            assert_eq!(Verb::parse(verb.as_str()), Some(verb));
        }
    }

    #[test]
    fn every_state_has_exactly_one_kind() {
        for state in ProvisionState::ALL {
            let kinds =
                [state.is_stable(), state.is_failure(), state.is_waiting(), state.is_working()];
            assert_eq!(kinds.iter().filter(|kind| **kind).count(), 1, "{state}");
        }
    }

    #[test]
    fn the_lifecycle_enroll_to_active_and_back() {
        let step = |from, verb| apply_verb(from, verb, None).expect("legal").to;
        let verifying = step(Enroll, Verb::Manage);
        assert_eq!(verifying, Verifying);
        let manageable = apply_event(verifying, Event::Done, Some(Manageable)).expect("done");
        assert_eq!(manageable.to, Manageable);
        assert_eq!(manageable.target, None);
        let cleaning = apply_verb(Manageable, Verb::Provide, None).expect("provide");
        assert_eq!(cleaning, Transition { to: Cleaning, target: Some(Available) });
        assert_eq!(
            apply_event(Cleaning, Event::Done, cleaning.target).expect("done").to,
            Available
        );
        assert_eq!(step(Available, Verb::Deploy), Deploying);
        assert_eq!(apply_event(Deploying, Event::Done, Some(Active)).expect("done").to, Active);
        let deleting = step(Active, Verb::Undeploy);
        assert_eq!(deleting, Deleting);
        let cleaning = apply_event(Deleting, Event::Done, Some(Available)).expect("done");
        assert_eq!(cleaning.target, Some(Available));
        assert_eq!(
            apply_event(Cleaning, Event::Done, cleaning.target).expect("done").to,
            Available
        );
    }

    #[test]
    fn manual_clean_returns_to_manageable_even_through_waits() {
        let start = apply_verb(Manageable, Verb::Clean, None).expect("clean");
        assert_eq!(start.target, Some(Manageable));
        let wait = apply_event(Cleaning, Event::Wait, start.target).expect("wait");
        assert_eq!(wait, Transition { to: CleanWait, target: Some(Manageable) });
        let resumed = apply_event(CleanWait, Event::Resume, wait.target).expect("resume");
        let done = apply_event(Cleaning, Event::Done, resumed.target).expect("done");
        assert_eq!(done.to, Manageable);
    }

    #[test]
    fn illegal_verbs_are_refused() {
        assert!(apply_verb(Enroll, Verb::Provide, None).is_err());
        assert!(apply_verb(Available, Verb::Provide, None).is_err());
        assert!(apply_verb(Active, Verb::Active, None).is_err());
        assert!(apply_verb(Cleaning, Verb::Manage, None).is_err());
        let err = apply_verb(Deploying, Verb::Abort, None).expect_err("illegal");
        assert_eq!(
            err.to_string(),
            "the requested action \"abort\" cannot be performed on a node in state \"deploying\""
        );
    }

    #[test]
    fn stable_states_take_no_events_and_working_states_can_fail() {
        for state in ProvisionState::ALL {
            for event in Event::ALL {
                if state.is_stable() {
                    assert!(apply_event(state, event, None).is_err(), "{state} {event}");
                }
            }
            if state.is_working() {
                assert!(apply_event(state, Event::Fail, state.implied_target()).is_ok(), "{state}");
            }
        }
    }

    #[test]
    fn docs_node_states_md_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/node-states.md");
        let rendered = render_markdown();
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        if committed != rendered {
            if std::env::var_os("FERRIC_UPDATE_DOCS").is_some() {
                std::fs::write(path, &rendered).expect("write docs/node-states.md");
            } else {
                panic!(
                    "docs/node-states.md is stale: rerun with FERRIC_UPDATE_DOCS=1 \
                     cargo test -p ferric-types and commit the result"
                );
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn transitions_never_leave_a_target_on_a_stable_state(
            from_index in 0usize..30, verb_index in 0usize..15, event_index in 0usize..5
        ) {
            let from = ProvisionState::ALL[from_index];
            if let Ok(transition) = apply_verb(from, Verb::ALL[verb_index], from.implied_target()) {
                proptest::prop_assert_eq!(transition.to.is_stable(), transition.target.is_none());
            }
            if let Ok(transition) = apply_event(from, Event::ALL[event_index], from.implied_target()) {
                proptest::prop_assert_eq!(transition.to.is_stable(), transition.target.is_none());
            }
        }
    }
}

//! The few Redfish resources the client uses, parsed tolerantly from JSON:
//! a missing, `null` or oddly typed property is "unknown", never an error
//! or a panic; enumeration values the client does not know are kept as
//! text.

use std::fmt;

use serde_json::Value;

fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str).map(str::trim).filter(|text| !text.is_empty())
}

/// `@odata.id` of the object at `key`.
fn link(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(|object| text(object, "@odata.id")).map(str::to_string)
}

fn strings(value: Option<&Value>) -> Option<Vec<String>> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).map(str::to_string).collect())
}

macro_rules! redfish_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $wire:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)*
            /// A value this client does not know, as the BMC sent it.
            Other(String),
        }

        impl $name {
            /// The Redfish name.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $wire,)*
                    Self::Other(text) => text,
                }
            }

            /// From the Redfish name (exact, as the schema spells it; a
            /// case-insensitive match is accepted too).
            pub fn parse(text: &str) -> Self {
                let text = text.trim();
                $(if text.eq_ignore_ascii_case($wire) { return Self::$variant; })*
                Self::Other(text.to_string())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

redfish_enum!(
    /// `ComputerSystem.PowerState`.
    PowerState {
        On = "On",
        Off = "Off",
        PoweringOn = "PoweringOn",
        PoweringOff = "PoweringOff",
        Paused = "Paused",
    }
);

redfish_enum!(
    /// `BootSourceOverrideTarget` values the client sets or reads.
    BootSource {
        None = "None",
        Pxe = "Pxe",
        Hdd = "Hdd",
        Cd = "Cd",
        BiosSetup = "BiosSetup",
        UefiHttp = "UefiHttp",
        Floppy = "Floppy",
        Usb = "Usb",
    }
);

redfish_enum!(
    /// `BootSourceOverrideEnabled`.
    BootEnabled {
        Disabled = "Disabled",
        Once = "Once",
        Continuous = "Continuous",
    }
);

redfish_enum!(
    /// `BootSourceOverrideMode`.
    BootMode {
        Uefi = "UEFI",
        Legacy = "Legacy",
    }
);

/// `ResetType` values of `ComputerSystem.Reset` the client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResetType {
    On,
    ForceOff,
    GracefulShutdown,
    ForceRestart,
    GracefulRestart,
}

impl ResetType {
    pub const ALL: [ResetType; 5] = [
        Self::On,
        Self::ForceOff,
        Self::GracefulShutdown,
        Self::ForceRestart,
        Self::GracefulRestart,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::On => "On",
            Self::ForceOff => "ForceOff",
            Self::GracefulShutdown => "GracefulShutdown",
            Self::ForceRestart => "ForceRestart",
            Self::GracefulRestart => "GracefulRestart",
        }
    }

    pub fn parse(text: &str) -> Option<ResetType> {
        Self::ALL.into_iter().find(|reset| reset.as_str() == text)
    }
}

impl fmt::Display for ResetType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The boot override of a system (its `Boot` object).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootOverride {
    pub target: Option<BootSource>,
    pub enabled: Option<BootEnabled>,
    pub mode: Option<BootMode>,
    /// `BootSourceOverrideTarget@Redfish.AllowableValues`, when given.
    pub allowed_targets: Option<Vec<String>>,
}

impl BootOverride {
    pub fn from_json(boot: &Value) -> BootOverride {
        BootOverride {
            target: text(boot, "BootSourceOverrideTarget").map(BootSource::parse),
            enabled: text(boot, "BootSourceOverrideEnabled").map(BootEnabled::parse),
            mode: text(boot, "BootSourceOverrideMode").map(BootMode::parse),
            allowed_targets: strings(boot.get("BootSourceOverrideTarget@Redfish.AllowableValues")),
        }
    }
}

/// What the client needs of a `ComputerSystem`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct System {
    /// Its path (`@odata.id`, else the path it was read from).
    pub path: String,
    pub power_state: Option<PowerState>,
    pub boot: BootOverride,
    /// Whether the system reports `Boot.BootSourceOverrideMode` (so setting
    /// it is supported).
    pub has_boot_mode: bool,
    /// `Actions.#ComputerSystem.Reset.target`.
    pub reset_target: Option<String>,
    /// `ResetType@Redfish.AllowableValues` of that action, when given.
    pub reset_allowed: Option<Vec<String>>,
    /// `@odata.etag` of the body (the `ETag` header takes precedence).
    pub etag: Option<String>,
}

impl System {
    pub fn from_json(path: &str, value: &Value) -> System {
        let boot = value.get("Boot").filter(|boot| boot.is_object());
        let reset = value.get("Actions").and_then(|actions| actions.get("#ComputerSystem.Reset"));
        System {
            path: text(value, "@odata.id").unwrap_or(path).to_string(),
            power_state: text(value, "PowerState").map(PowerState::parse),
            boot: boot.map(BootOverride::from_json).unwrap_or_default(),
            has_boot_mode: boot.is_some_and(|boot| boot.get("BootSourceOverrideMode").is_some()),
            reset_target: reset.and_then(|reset| text(reset, "target")).map(str::to_string),
            reset_allowed: reset
                .and_then(|reset| strings(reset.get("ResetType@Redfish.AllowableValues"))),
            etag: text(value, "@odata.etag").map(str::to_string),
        }
    }
}

/// The links of the service root the client follows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceRoot {
    pub systems: Option<String>,
    pub sessions: Option<String>,
    pub redfish_version: Option<String>,
}

impl ServiceRoot {
    pub fn from_json(value: &Value) -> ServiceRoot {
        ServiceRoot {
            systems: link(value, "Systems"),
            sessions: value.get("Links").and_then(|links| link(links, "Sessions")),
            redfish_version: text(value, "RedfishVersion").map(str::to_string),
        }
    }
}

/// The `@odata.id` of each member of a collection.
pub fn members(value: &Value) -> Vec<String> {
    value
        .get("Members")
        .and_then(Value::as_array)
        .map(|members| {
            members
                .iter()
                .filter_map(|member| text(member, "@odata.id"))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// How a task reported by a task monitor stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskStatus {
    /// Still running (or no `TaskState` at all, but a 202).
    Running,
    /// Ended well.
    Completed,
    /// Ended badly: the state and the task's messages.
    Failed { state: String, message: String },
}

/// The status of a task resource body (`TaskState`, `Messages`); None when
/// the body is no task (the operation's own result).
pub fn task_status(value: &Value) -> Option<TaskStatus> {
    let state = text(value, "TaskState")?;
    Some(match state {
        "Completed" => {
            // A completed task can still carry a failed status.
            match text(value, "TaskStatus") {
                Some(status @ "Critical") => failed(state, status, value),
                _ => TaskStatus::Completed,
            }
        }
        "Exception" | "Killed" | "Cancelled" | "Interrupted" => failed(state, "", value),
        _ => TaskStatus::Running,
    })
}

fn failed(state: &str, status: &str, value: &Value) -> TaskStatus {
    let messages = crate::error::extended_info_messages(value);
    let message = if messages.is_empty() {
        if status.is_empty() {
            "no message".to_string()
        } else {
            format!("status {status}")
        }
    } else {
        messages.join("; ")
    };
    TaskStatus::Failed { state: state.to_string(), message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn a_typical_system_parses() {
        let value = json!({
            "@odata.id": "/redfish/v1/Systems/1", "@odata.etag": "W/\"3\"",
            "PowerState": "On",
            "Boot": {
                "BootSourceOverrideEnabled": "Once", "BootSourceOverrideTarget": "Pxe",
                "BootSourceOverrideMode": "UEFI",
                "BootSourceOverrideTarget@Redfish.AllowableValues": ["Pxe", "Hdd", 3]
            },
            "Actions": {"#ComputerSystem.Reset": {
                "target": "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
                "ResetType@Redfish.AllowableValues": ["On", "ForceOff"]
            }}
        });
        let system = System::from_json("/x", &value);
        assert_eq!(system.path, "/redfish/v1/Systems/1");
        assert_eq!(system.power_state, Some(PowerState::On));
        assert_eq!(system.boot.target, Some(BootSource::Pxe));
        assert_eq!(system.boot.enabled, Some(BootEnabled::Once));
        assert_eq!(system.boot.mode, Some(BootMode::Uefi));
        assert!(system.has_boot_mode);
        assert_eq!(system.boot.allowed_targets, Some(vec!["Pxe".to_string(), "Hdd".to_string()]));
        assert_eq!(system.reset_allowed, Some(vec!["On".to_string(), "ForceOff".to_string()]));
        assert_eq!(system.etag.as_deref(), Some("W/\"3\""));
    }

    #[test]
    fn odd_but_valid_shapes_parse_as_unknown() {
        let value = json!({
            "PowerState": null, "Boot": {"BootSourceOverrideTarget": 7,
            "BootSourceOverrideEnabled": "", "BootSourceOverrideMode": null},
            "Actions": {"#ComputerSystem.Reset": {"target": ["not", "a", "string"]}}
        });
        let system = System::from_json("/redfish/v1/Systems/x", &value);
        assert_eq!(system.path, "/redfish/v1/Systems/x");
        assert_eq!(system.power_state, None);
        assert_eq!(system.boot, BootOverride::default());
        // Present even if null: the BMC knows the property.
        assert!(system.has_boot_mode);
        assert_eq!(system.reset_target, None);
        let system = System::from_json("/s", &json!({"Boot": "Pxe", "PowerState": "paused"}));
        assert_eq!(system.power_state, Some(PowerState::Paused));
        assert!(!system.has_boot_mode);
        assert_eq!(
            System::from_json("/s", &json!({"PowerState": "Hibernating"})).power_state,
            Some(PowerState::Other("Hibernating".into()))
        );
        assert_eq!(BootSource::parse("usb"), BootSource::Usb);
        assert_eq!(BootMode::parse("uefi").as_str(), "UEFI");
    }

    #[test]
    fn roots_collections_and_tasks() {
        let root = ServiceRoot::from_json(&json!({
            "RedfishVersion": "1.6.0", "Systems": {"@odata.id": "/redfish/v1/Systems"},
            "Links": {"Sessions": {"@odata.id": "/redfish/v1/SessionService/Sessions"}}
        }));
        assert_eq!(root.systems.as_deref(), Some("/redfish/v1/Systems"));
        assert_eq!(root.sessions.as_deref(), Some("/redfish/v1/SessionService/Sessions"));
        assert_eq!(ServiceRoot::from_json(&json!([])), ServiceRoot::default());
        assert_eq!(
            members(&json!({"Members": [{"@odata.id": "/a"}, {}, 5, {"@odata.id": "/b"}]})),
            ["/a", "/b"]
        );
        assert!(members(&json!({"Members": {"@odata.id": "/a"}})).is_empty());
        assert_eq!(task_status(&json!({"TaskState": "Running"})), Some(TaskStatus::Running));
        assert_eq!(task_status(&json!({"TaskState": "Completed"})), Some(TaskStatus::Completed));
        assert_eq!(
            task_status(&json!({"TaskState": "Exception",
                "Messages": [{"Message": "Power supply failed."}]})),
            Some(TaskStatus::Failed {
                state: "Exception".into(),
                message: "Power supply failed.".into()
            })
        );
        assert_eq!(task_status(&json!({"PowerState": "On"})), None);
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[A-Za-z@#./ ]{0,12}".prop_map(Value::String),
            prop_oneof![Just("On"), Just("Boot"), Just("Pxe"), Just("Members"), Just("@odata.id")]
                .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            let keys = prop_oneof![
                Just("PowerState".to_string()),
                Just("Boot".to_string()),
                Just("BootSourceOverrideTarget".to_string()),
                Just("Actions".to_string()),
                Just("#ComputerSystem.Reset".to_string()),
                Just("target".to_string()),
                Just("Members".to_string()),
                Just("@odata.id".to_string()),
                Just("TaskState".to_string()),
                Just("Messages".to_string()),
                Just("error".to_string()),
                Just("@Message.ExtendedInfo".to_string()),
                Just("Message".to_string()),
                "[a-z]{1,4}",
            ];
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(keys, inner, 0..5)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_json_parses_without_panic(value in json_value()) {
            let _ = System::from_json("/s", &value);
            let _ = ServiceRoot::from_json(&value);
            let _ = members(&value);
            let _ = task_status(&value);
            let _ = crate::error::json_error_message(&value);
        }
    }
}

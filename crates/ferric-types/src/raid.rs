//! Target RAID configurations (`PUT /v1/nodes/{node}/states/raid`, API
//! 1.12): the logical-disk properties a driver accepts and the checks a
//! configuration must pass before it is stored as `target_raid_config`.

use serde_json::Value;

use crate::records::JsonObject;

/// The RAID levels a logical disk may ask for.
pub const RAID_LEVELS: [&str; 9] = ["JBOD", "0", "1", "2", "5", "6", "1+0", "5+0", "6+0"];

/// Every property a logical disk may have, with its description
/// (`GET /v1/drivers/{driver}/raid/logical_disk_properties`).
pub const LOGICAL_DISK_PROPERTIES: [(&str, &str); 10] = [
    ("raid_level", "RAID level for the logical disk. Valid values are 'JBOD', '0', '1', '2', '5', '6', '1+0', '5+0' and '6+0'. Required."),
    ("size_gb", "Size in GiB (Integer) for the logical disk. Use 'MAX' as size_gb if this logical disk is supposed to use the rest of the space available. Required."),
    ("volume_name", "Name of the volume to be created. If this is not specified, it will be auto-generated. Optional."),
    ("is_root_volume", "Specifies whether this disk is a root volume. By default, this is False. Optional."),
    ("share_physical_disks", "Specifies whether other logical disks can share physical disks with this logical disk. By default, this is False. Optional."),
    ("disk_type", "The type of disk preferred. Valid values are 'hdd' and 'ssd'. If this is not specified, disk type will not be a selection criterion for choosing backing physical disks. Optional."),
    ("interface_type", "The interface type of disk. Valid values are 'sata', 'scsi' and 'sas'. If this is not specified, interface type will not be a selection criterion for choosing backing physical disks. Optional."),
    ("number_of_physical_disks", "Number of physical disks to use for this logical disk. By default, the driver uses the minimum number of disks required for that RAID level. Optional."),
    ("controller", "Controller to use for this logical disk. If not specified, the driver will choose a suitable RAID controller on the bare metal node. Optional."),
    ("physical_disks", "The physical disks to use for this logical disk. If not specified, the driver will choose suitable physical disks to use. Optional."),
];

/// Why a target RAID configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("RAID config validation error: {0}")]
pub struct RaidConfigError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, RaidConfigError> {
    Err(RaidConfigError(message.into()))
}

fn check_enum(disk: &JsonObject, key: &str, allowed: &[&str]) -> Result<(), RaidConfigError> {
    match disk.get(key) {
        None => Ok(()),
        Some(Value::String(text)) if allowed.contains(&text.as_str()) => Ok(()),
        Some(other) => fail(format!("{other} is not one of {allowed:?} (logical disk {key})")),
    }
}

fn check_type(
    disk: &JsonObject,
    key: &str,
    ok: fn(&Value) -> bool,
    what: &str,
) -> Result<(), RaidConfigError> {
    match disk.get(key) {
        Some(value) if !ok(value) => fail(format!("{value} is not of type '{what}' ({key})")),
        _ => Ok(()),
    }
}

fn check_disk(disk: &Value) -> Result<(), RaidConfigError> {
    let Value::Object(disk) = disk else {
        return fail(format!("{disk} is not of type 'object' (logical disk)"));
    };
    for key in disk.keys() {
        if !LOGICAL_DISK_PROPERTIES.iter().any(|(name, _)| name == key) {
            return fail(format!("Additional properties are not allowed ('{key}' was unexpected)"));
        }
    }
    for required in ["raid_level", "size_gb"] {
        if !disk.contains_key(required) {
            return fail(format!("'{required}' is a required property"));
        }
    }
    check_enum(disk, "raid_level", &RAID_LEVELS)?;
    match &disk["size_gb"] {
        Value::Number(number) if number.as_u64().is_some() => {}
        Value::String(text) if text == "MAX" => {}
        other => return fail(format!("{other} is not an integer >= 0 or \"MAX\" (size_gb)")),
    }
    check_type(disk, "volume_name", Value::is_string, "string")?;
    check_type(disk, "is_root_volume", Value::is_boolean, "boolean")?;
    check_type(disk, "share_physical_disks", Value::is_boolean, "boolean")?;
    check_enum(disk, "disk_type", &["hdd", "ssd"])?;
    check_enum(disk, "interface_type", &["sata", "scsi", "sas"])?;
    if let Some(count) = disk.get("number_of_physical_disks") {
        if count.as_u64().is_none_or(|n| n == 0) {
            return fail(format!(
                "{count} is not an integer greater than 0 (number_of_physical_disks)"
            ));
        }
    }
    check_type(disk, "controller", Value::is_string, "string")?;
    if let Some(disks) = disk.get("physical_disks") {
        let valid = match disks.as_array() {
            Some(items) if items.iter().all(Value::is_string) => true,
            Some(items) => items.len() >= 2 && items.iter().all(Value::is_object),
            None => false,
        };
        if !valid {
            return fail(format!(
                "{disks} is not a list of disk names or of at least two disk objects \
                 (physical_disks)"
            ));
        }
        if !disk.contains_key("controller") {
            return fail("'controller' is a dependency of 'physical_disks'");
        }
    }
    Ok(())
}

/// Checks a target RAID configuration and returns it as stored. An empty
/// object is valid: it clears the target.
pub fn validate_target_raid_config(config: &Value) -> Result<JsonObject, RaidConfigError> {
    let Value::Object(map) = config else {
        return fail(format!("{config} is not of type 'object'"));
    };
    if map.is_empty() {
        return Ok(JsonObject::new());
    }
    for key in map.keys() {
        if key != "logical_disks" {
            return fail(format!("Additional properties are not allowed ('{key}' was unexpected)"));
        }
    }
    let disks = match map.get("logical_disks") {
        Some(Value::Array(disks)) if !disks.is_empty() => disks,
        Some(Value::Array(_)) => return fail("[] is too short (logical_disks)"),
        Some(other) => return fail(format!("{other} is not of type 'array' (logical_disks)")),
        None => return fail("'logical_disks' is a required property"),
    };
    for disk in disks {
        check_disk(disk)?;
    }
    let roots = disks.iter().filter(|disk| disk["is_root_volume"] == Value::Bool(true)).count();
    if roots > 1 {
        return Err(RaidConfigError(format!(
            "Raid config cannot have more than one root volume. {roots} root volumes were \
             specified"
        )));
    }
    Ok(map.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn valid_configurations_pass() {
        for config in [
            json!({}),
            json!({"logical_disks": [{"size_gb": 100, "raid_level": "1", "is_root_volume": true}]}),
            json!({"logical_disks": [
                {"size_gb": "MAX", "raid_level": "5", "volume_name": "data",
                 "share_physical_disks": false, "disk_type": "ssd", "interface_type": "sas",
                 "number_of_physical_disks": 3, "controller": "RAID.1",
                 "physical_disks": ["d1", "d2", "d3"]},
                {"size_gb": 0, "raid_level": "JBOD"}]}),
        ] {
            assert_eq!(validate_target_raid_config(&config).map(|_| ()), Ok(()), "{config}");
        }
    }

    #[test]
    fn invalid_configurations_fail_with_a_reason() {
        let disk = |extra: Value| {
            let mut base = json!({"size_gb": 10, "raid_level": "1"});
            if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
                base.extend(extra.clone());
            }
            json!({"logical_disks": [base]})
        };
        let cases = [
            (json!([]), "is not of type 'object'"),
            (json!({"bogus": 1}), "'bogus' was unexpected"),
            (json!({"logical_disks": []}), "too short"),
            (json!({"logical_disks": {}}), "not of type 'array'"),
            (json!({"logical_disks": [{"size_gb": 1}]}), "'raid_level' is a required property"),
            (json!({"logical_disks": [{"raid_level": "1"}]}), "'size_gb' is a required"),
            (disk(json!({"raid_level": "7"})), "raid_level"),
            (disk(json!({"size_gb": -1})), "size_gb"),
            (disk(json!({"size_gb": "10"})), "size_gb"),
            (disk(json!({"is_root_volume": "yes"})), "is_root_volume"),
            (disk(json!({"disk_type": "nvme"})), "disk_type"),
            (disk(json!({"interface_type": "usb"})), "interface_type"),
            (disk(json!({"number_of_physical_disks": 0})), "number_of_physical_disks"),
            (disk(json!({"physical_disks": ["a"]})), "'controller' is a dependency"),
            (disk(json!({"physical_disks": [{}], "controller": "c"})), "physical_disks"),
            (disk(json!({"colour": "red"})), "'colour' was unexpected"),
            (
                json!({"logical_disks": [
                    {"size_gb": 1, "raid_level": "1", "is_root_volume": true},
                    {"size_gb": 1, "raid_level": "1", "is_root_volume": true}]}),
                "more than one root volume",
            ),
        ];
        for (config, expected) in cases {
            let error = validate_target_raid_config(&config).expect_err("invalid");
            assert!(error.to_string().contains(expected), "{config}: {error}");
            assert!(error.to_string().starts_with("RAID config validation error: "));
        }
    }
}

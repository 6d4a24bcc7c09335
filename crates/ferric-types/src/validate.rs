//! Checks on user-supplied names, MAC addresses and traits, and the masking
//! of secrets. Pure functions, shared by the API and the conductor.

use serde_json::Value;

use crate::records::JsonObject;

/// What secrets are replaced with whenever they leave ferric.
pub const MASK: &str = "******";

/// A logical name: RFC 3986 unreserved characters (1.10), at most 255.
pub fn is_valid_logical_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'))
}

/// A trait: `CUSTOM_` followed by `[A-Z0-9_]`, or a standard os-traits name
/// (upper case, digits and `_`), at most 255 characters.
pub fn is_valid_trait(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && name != "CUSTOM_"
}

/// Normalises a MAC address to lower-case colon form, or `None` if the text
/// is not a 48-bit MAC (`aa:bb:cc:dd:ee:ff`, `AA-BB-...` are accepted).
pub fn normalize_mac(text: &str) -> Option<String> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut out = String::with_capacity(17);
    for (index, part) in parts.iter().enumerate() {
        if part.len() != 2 || !part.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        if index > 0 {
            out.push(':');
        }
        out.push_str(&part.to_ascii_lowercase());
    }
    Some(out)
}

/// Whether a dict key names a secret (`ipmi_password`, `redfish_password`,
/// `agent_secret_token`, `ipmi_hex_kg_key`, ...).
pub fn is_secret_key(key: &str) -> bool {
    const MARKERS: [&str; 11] = [
        "password",
        "passwd",
        "pswd",
        "secret",
        "token",
        "kg_key",
        "private_key",
        "ssh_key",
        "encryption_key",
        "auth_key",
        "credential",
    ];
    let lower = key.to_ascii_lowercase();
    MARKERS.iter().any(|marker| lower.contains(marker))
}

/// Replaces every secret value in `object` (recursively) with [`MASK`].
/// `extra_keys` are also masked wherever they appear (e.g. `configdrive`,
/// `image_url` in `instance_info`).
pub fn mask_secrets(object: &JsonObject, extra_keys: &[&str]) -> JsonObject {
    object
        .iter()
        .map(|(key, value)| {
            let masked = if is_secret_key(key) || extra_keys.contains(&key.as_str()) {
                if value.is_null() {
                    Value::Null
                } else {
                    Value::String(MASK.to_owned())
                }
            } else {
                match value {
                    Value::Object(inner) => Value::Object(mask_secrets(inner, extra_keys)),
                    other => other.clone(),
                }
            };
            (key.clone(), masked)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn macs_are_normalised() {
        assert_eq!(normalize_mac("AA:bb:0C:dd:ee:FF").as_deref(), Some("aa:bb:0c:dd:ee:ff"));
        assert_eq!(normalize_mac("aa-bb-cc-dd-ee-ff").as_deref(), Some("aa:bb:cc:dd:ee:ff"));
        for bad in ["", "aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:fg", "aabb.ccdd.eeff", "a:bb:cc:dd:ee:ff"]
        {
            assert_eq!(normalize_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_and_traits() {
        assert!(is_valid_logical_name("node-1.rack_2~a"));
        assert!(!is_valid_logical_name("node 1"));
        assert!(!is_valid_logical_name("node/1"));
        assert!(is_valid_trait("CUSTOM_GPU_A100"));
        assert!(is_valid_trait("HW_CPU_X86_AVX2"));
        assert!(!is_valid_trait("custom_gpu"));
        assert!(!is_valid_trait("CUSTOM_"));
        assert!(!is_valid_trait("CUSTOM-GPU"));
    }

    #[test]
    fn secrets_are_masked_recursively() {
        let info = json!({
            "ipmi_address": "10.0.0.1",
            "ipmi_password": "hunter2",
            "nested": {"redfish_password": "x", "user": "root"},
            "agent_secret_token": null
        });
        let masked = mask_secrets(info.as_object().expect("object"), &[]);
        assert_eq!(
            Value::Object(masked),
            json!({
                "ipmi_address": "10.0.0.1",
                "ipmi_password": "******",
                "nested": {"redfish_password": "******", "user": "root"},
                "agent_secret_token": null
            })
        );
    }

    proptest::proptest! {
        #[test]
        fn normalize_mac_never_panics_and_is_idempotent(text in ".{0,24}") {
            if let Some(mac) = normalize_mac(&text) {
                proptest::prop_assert_eq!(normalize_mac(&mac), Some(mac.clone()));
            }
        }
    }
}

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

/// Replaces every secret value in `object` (recursively, through nested
/// objects and lists) with [`MASK`]. `extra_keys` are also masked wherever
/// they appear (e.g. `configdrive`, `image_url` in `instance_info`). A
/// `{"name": <secret key>, "value": ...}` pair (a BIOS setting in step
/// arguments, e.g. `AdminPassword`) has its `value` masked.
pub fn mask_secrets(object: &JsonObject, extra_keys: &[&str]) -> JsonObject {
    let named_secret = object
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|name| is_secret_key(name) || extra_keys.contains(&name));
    object
        .iter()
        .map(|(key, value)| {
            let secret = is_secret_key(key)
                || extra_keys.contains(&key.as_str())
                || (named_secret && key == "value");
            let masked = if secret {
                if value.is_null() {
                    Value::Null
                } else {
                    Value::String(MASK.to_owned())
                }
            } else {
                mask_value(value, extra_keys)
            };
            (key.clone(), masked)
        })
        .collect()
}

/// [`mask_secrets`] for any JSON value.
fn mask_value(value: &Value, extra_keys: &[&str]) -> Value {
    match value {
        Value::Object(inner) => Value::Object(mask_secrets(inner, extra_keys)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|item| mask_value(item, extra_keys)).collect())
        }
        Value::String(text) => Value::String(redact_url_credentials(text)),
        other => other.clone(),
    }
}

/// A URL with the password of its user information replaced by [`MASK`]
/// (`http://user:******@host/x.iso`; a user without password, often a
/// token, is masked whole). Text that is not such a URL is returned as is.
pub fn redact_url_credentials(text: &str) -> String {
    let Some(start) = text.find("://").map(|index| index + 3) else {
        return text.to_owned();
    };
    let authority_end =
        text[start..].find(['/', '?', '#']).map_or(text.len(), |index| start + index);
    let Some(at) = text[start..authority_end].rfind('@').map(|index| start + index) else {
        return text.to_owned();
    };
    let userinfo = &text[start..at];
    let masked = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:{MASK}"),
        None => MASK.to_owned(),
    };
    format!("{}{masked}{}", &text[..start], &text[at..])
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

    #[test]
    fn secrets_in_lists_and_named_settings_are_masked() {
        let args = json!({
            "settings": [
                {"name": "AdminPassword", "value": "hunter2"},
                {"name": "BootMode", "value": "Uefi"}
            ],
            "steps": [{"args": {"bmc_password": "x", "keep": [1, 2]}}],
            "name": "ipmi_password",
            "value": "not-a-pair-of-a-setting?"
        });
        let masked = mask_secrets(args.as_object().expect("object"), &[]);
        assert_eq!(
            Value::Object(masked),
            json!({
                "settings": [
                    {"name": "AdminPassword", "value": "******"},
                    {"name": "BootMode", "value": "Uefi"}
                ],
                "steps": [{"args": {"bmc_password": "******", "keep": [1, 2]}}],
                "name": "ipmi_password",
                "value": "******"
            })
        );
    }

    #[test]
    fn url_credentials_are_redacted() {
        assert_eq!(
            redact_url_credentials("http://admin:s3cret@10.0.0.5/boot.iso"),
            "http://admin:******@10.0.0.5/boot.iso"
        );
        assert_eq!(redact_url_credentials("https://tok@h/x?a=b@c"), "https://******@h/x?a=b@c");
        assert_eq!(redact_url_credentials("nfs://host/f.img"), "nfs://host/f.img");
        assert_eq!(redact_url_credentials("user@example.com"), "user@example.com");
        assert_eq!(redact_url_credentials("http://ü:ä@h"), "http://ü:******@h");
        let info = json!({"fake_vmedia": {"cdrom": {"image_url": "http://u:p@h/x.iso"}}});
        let masked = mask_secrets(info.as_object().expect("object"), &[]);
        assert_eq!(masked["fake_vmedia"]["cdrom"]["image_url"], "http://u:******@h/x.iso");
    }

    proptest::proptest! {
        #[test]
        fn redact_url_credentials_never_panics(text in ".{0,40}") {
            let _ = redact_url_credentials(&text);
        }
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

//! RFC 6902 JSON patches the way Ironic applies them: only `add`,
//! `replace` and `remove`; only whitelisted root attributes; removing a root
//! attribute resets it to its default; and typed read-back of the result.

use ferric_types::JsonObject;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// Applies `ops` to `doc` (the patchable attributes of a resource, with
/// their current values). `known` lists every attribute of the resource, so
/// a read-only one gets a clearer error than an unknown one.
pub fn apply(
    doc: &Map<String, Value>,
    ops: &Value,
    patchable: &[&str],
    known: &[&str],
) -> Result<Map<String, Value>, ApiError> {
    let list = ops.as_array().ok_or_else(|| ApiError::bad("The patch must be a JSON list"))?;
    if list.is_empty() {
        return Err(ApiError::bad("The patch must not be empty"));
    }
    let mut cleaned = Vec::with_capacity(list.len());
    for op in list {
        let object = op
            .as_object()
            .ok_or_else(|| ApiError::bad("Each patch operation must be an object"))?;
        let kind = object
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad("Patch operation has no \"op\""))?;
        if !matches!(kind, "add" | "replace" | "remove") {
            return Err(ApiError::bad(format!(
                "Invalid patch operation \"{kind}\": use add, replace or remove"
            )));
        }
        let path = object
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad("Patch operation has no \"path\""))?;
        if !path.starts_with('/') || path.len() < 2 {
            return Err(ApiError::bad(format!("Invalid patch path \"{path}\"")));
        }
        if kind != "remove" && !object.contains_key("value") {
            return Err(ApiError::bad(format!(
                "Patch operation \"{kind}\" on {path} needs a value"
            )));
        }
        let root = unescape(path.trim_start_matches('/').split('/').next().unwrap_or(""));
        if !patchable.contains(&root.as_str()) {
            return Err(if known.contains(&root.as_str()) {
                ApiError::bad(format!("'/{root}' is an internal attribute and can not be updated"))
            } else if kind == "add" {
                ApiError::bad(format!(
                    "Adding a new attribute (/{root}) to the root of the resource is not allowed"
                ))
            } else {
                ApiError::bad(format!("Can't {kind} non-existent attribute '/{root}'"))
            });
        }
        let is_root = !path.trim_start_matches('/').contains('/');
        // Root attributes always exist (maybe as null): `add` replaces, and
        // `remove` resets to the default.
        let normalized = match (kind, is_root) {
            ("remove", true) => serde_json::json!({"op": "replace", "path": path, "value": null}),
            ("add", true) => {
                serde_json::json!({"op": "replace", "path": path, "value": object["value"]})
            }
            _ => op.clone(),
        };
        cleaned.push(normalized);
    }
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(cleaned))
        .map_err(|error| ApiError::bad(format!("Invalid patch: {error}")))?;
    let mut document = Value::Object(doc.clone());
    json_patch::patch(&mut document, &patch)
        .map_err(|error| ApiError::bad(format!("Patch could not be applied: {error}")))?;
    match document {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::bad("The patch replaced the whole resource")),
    }
}

fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

/// Typed reads of a patched document (or a create body).
pub struct Fields<'a>(pub &'a Map<String, Value>);

impl Fields<'_> {
    fn wrong(key: &str, expected: &str) -> ApiError {
        ApiError::bad(format!("Invalid value for {key}: expected {expected}"))
    }

    pub fn opt_string(&self, key: &str) -> Result<Option<String>, ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(Self::wrong(key, "a string")),
        }
    }

    /// A string no longer than `max` characters.
    pub fn opt_string_max(&self, key: &str, max: usize) -> Result<Option<String>, ApiError> {
        let value = self.opt_string(key)?;
        if value.as_ref().is_some_and(|text| text.chars().count() > max) {
            return Err(ApiError::bad(format!(
                "Invalid value for {key}: longer than {max} characters"
            )));
        }
        Ok(value)
    }

    pub fn object(&self, key: &str) -> Result<JsonObject, ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(JsonObject::new()),
            Some(Value::Object(map)) => Ok(map.clone()),
            Some(_) => Err(Self::wrong(key, "a JSON object")),
        }
    }

    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool, ApiError> {
        Ok(self.opt_bool(key)?.unwrap_or(default))
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(Value::String(text)) => crate::ctx::parse_bool(key, text).map(Some),
            Some(_) => Err(Self::wrong(key, "a boolean")),
        }
    }

    pub fn opt_uuid(&self, key: &str) -> Result<Option<uuid::Uuid>, ApiError> {
        self.opt_string(key)?.map(|text| crate::ctx::parse_uuid(key, &text)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Map<String, Value> {
        json!({"name": "a", "extra": {"k": 1}, "driver_info": {}})
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    const PATCHABLE: &[&str] = &["name", "extra", "driver_info"];
    const KNOWN: &[&str] = &["name", "extra", "driver_info", "provision_state"];

    #[test]
    fn add_replace_remove() {
        let ops = json!([
            {"op": "replace", "path": "/name", "value": "b"},
            {"op": "add", "path": "/extra/new", "value": [1]},
            {"op": "remove", "path": "/extra/k"},
            {"op": "add", "path": "/driver_info", "value": {"x": 1}},
        ]);
        let out = apply(&doc(), &ops, PATCHABLE, KNOWN).expect("applies");
        assert_eq!(
            Value::Object(out),
            json!({"name": "b", "extra": {"new": [1]}, "driver_info": {"x": 1}})
        );
        let removed = apply(&doc(), &json!([{"op": "remove", "path": "/name"}]), PATCHABLE, KNOWN)
            .expect("applies");
        assert_eq!(removed["name"], Value::Null);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_patches_never_panic(ops in arbitrary_json(3)) {
            let _ = apply(&doc(), &ops, PATCHABLE, KNOWN);
        }
    }

    fn arbitrary_json(depth: u32) -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            prop_oneof![
                Just("add".to_owned()),
                Just("remove".to_owned()),
                Just("replace".to_owned()),
                Just("/name".to_owned()),
                Just("/extra/k".to_owned()),
                Just("/extra/-".to_owned()),
                Just("/driver_info/~1x".to_owned()),
                Just("op".to_owned()),
                Just("path".to_owned()),
                Just("value".to_owned()),
                ".{0,8}",
            ]
            .prop_map(Value::String),
        ];
        leaf.prop_recursive(depth, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("op".to_owned()),
                        Just("path".to_owned()),
                        Just("value".to_owned()),
                        ".{0,4}"
                    ],
                    inner,
                    0..4,
                )
                .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    #[test]
    fn bad_patches_are_400() {
        for ops in [
            json!({}),
            json!([]),
            json!([{"op": "move", "path": "/name", "from": "/extra"}]),
            json!([{"op": "replace", "path": "/provision_state", "value": "active"}]),
            json!([{"op": "add", "path": "/bogus", "value": 1}]),
            json!([{"op": "replace", "path": "/name"}]),
            json!([{"op": "remove", "path": "/extra/missing"}]),
            json!([{"op": "replace", "path": "name", "value": 1}]),
        ] {
            assert!(
                matches!(apply(&doc(), &ops, PATCHABLE, KNOWN), Err(ApiError::BadRequest(_))),
                "{ops}"
            );
        }
    }
}

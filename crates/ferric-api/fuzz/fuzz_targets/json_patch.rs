//! Arbitrary bytes as a JSON patch against a node-like document: applying it
//! must return a result or a 400, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(ops) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let doc = serde_json::json!({"name": "n", "extra": {"a": [1, 2]}, "driver_info": {}})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let _ = ferric_api::patch::apply(
        &doc,
        &ops,
        &["name", "extra", "driver_info"],
        &["name", "extra", "driver_info", "uuid"],
    );
});

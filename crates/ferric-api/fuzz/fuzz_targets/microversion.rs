//! Arbitrary version headers: negotiation returns a version or a 406.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut headers = http::HeaderMap::new();
    for name in ["x-openstack-ironic-api-version", "openstack-api-version"] {
        if let Ok(value) = http::HeaderValue::from_bytes(data) {
            headers.insert(name, value);
        }
    }
    let _ = ferric_api::version::negotiate(&headers);
});

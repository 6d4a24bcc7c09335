//! Everything a BMC can send back, parsed from arbitrary bytes: datagrams
//! (RMCP/RMCP+ framing, with and without session keys), IPMI responses,
//! session-setup messages and command payloads. Each must return a value
//! or an error, never panic.
#![no_main]

use ferric_ipmi::{commands, rakp, wire};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wire::open(None, data);
    let _ = wire::decode_response(data);
    let _ = rakp::OpenSessionResponse::decode(data);
    let _ = rakp::Rakp2::decode(data);
    let _ = rakp::Rakp4::decode(data);
    let _ = commands::AuthCapabilities::decode(data);
    let _ = commands::cipher_suite_block(data);
});

//! Feeds arbitrary bytes through the qcow2 header, L1 and L2 parsing and
//! cluster decompression (over an in-memory `RandomAccess`): none of it may
//! panic, whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let data = bytes::Bytes::copy_from_slice(data);
    let _ = futures::executor::block_on(ferric_image::qcow2::walk(data, 1 << 16));
});

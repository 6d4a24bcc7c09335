//! The ferric deploy agent, as a library: everything the `ferric-agent`
//! binary does in the deploy ramdisk, in modules that can be tested against
//! files, fixture `/sys` trees and local servers.
//!
//! The agent finds its node through the API (`GET /v1/lookup` with its MAC
//! addresses), heartbeats with the one-time agent token, and serves an
//! IPA-compatible command API (`/v1/commands/` on port 9999) through which
//! the conductor drives it: write an image, erase disks, report inventory,
//! power off.
pub mod api;
pub mod client;
pub mod cmdline;
pub mod commands;
pub mod configdrive;
pub mod disks;
pub mod erase;
pub mod init;
pub mod inventory;
pub mod modules;
pub mod net;

/// A random (version 4) UUID that never waits for the kernel's entropy pool.
///
/// Command ids and partition GUIDs need to be unique, not secret. In a
/// ramdisk that has just booted on hardware without a CPU random number
/// generator the pool can take a second or more to initialise, and a plain
/// `getrandom` blocks until it has: `GRND_INSECURE` does not. Falls back to
/// the clock and a counter where the kernel lacks `GRND_INSECURE` (< 5.6).
pub fn fresh_uuid() -> uuid::Uuid {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut bytes = [0u8; 16];
    let filled = rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::INSECURE)
        .is_ok_and(|n| n == bytes.len());
    if !filled {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        bytes[..8].copy_from_slice(&nanos.to_le_bytes());
        bytes[8..].copy_from_slice(&(count ^ u64::from(std::process::id()) << 32).to_le_bytes());
    }
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    #[test]
    fn fresh_uuids_are_version_4_and_distinct() {
        let ids: std::collections::HashSet<uuid::Uuid> =
            (0..1000).map(|_| super::fresh_uuid()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| id.get_version_num() == 4));
    }
}

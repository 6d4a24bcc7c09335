//! Which conductor owns a node: rendezvous (highest-random-weight) hashing
//! over the live conductors. Every API server and conductor computes the
//! same answer from the same list, with no coordination; when a conductor
//! joins or leaves, only the nodes it gains or loses move.

use uuid::Uuid;

/// The owner of `node` among `conductors`, or `None` if there are none.
pub fn owner(node: Uuid, conductors: &[String]) -> Option<&str> {
    conductors.iter().max_by_key(|host| (weight(node, host), host.as_str())).map(String::as_str)
}

fn weight(node: Uuid, host: &str) -> u64 {
    // FNV-1a over both, then a splitmix64 finaliser: stable across builds
    // and platforms, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in node.as_bytes().iter().chain(host.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn no_conductors_no_owner() {
        assert_eq!(owner(Uuid::new_v4(), &[]), None);
    }

    #[test]
    fn leaving_moves_only_the_leavers_nodes_and_spreads_the_rest() {
        let three = hosts(&["c1", "c2", "c3"]);
        let two = hosts(&["c1", "c3"]);
        let mut counts = [0usize; 3];
        for _ in 0..3000 {
            let node = Uuid::new_v4();
            let before = owner(node, &three).expect("owner");
            let after = owner(node, &two).expect("owner");
            if before != "c2" {
                assert_eq!(before, after);
            }
            counts[three.iter().position(|h| h == before).expect("known")] += 1;
        }
        assert!(counts.iter().all(|count| *count > 700), "{counts:?}");
    }
}

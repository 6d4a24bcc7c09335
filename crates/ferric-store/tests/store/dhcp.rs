//! DHCP leases and declines kept for ferric's DHCP server.

use std::net::Ipv4Addr;

use ferric_store::{DhcpDecline, DhcpLease, DhcpLeaseState, Store};
use serde_json::json;

use crate::assert_duplicate;

backend_tests!(
    lease_upsert_replace_list_and_delete,
    lease_address_held_by_another_mac_is_duplicate,
    declines_upsert_and_list,
    expire_removes_only_expired_rows,
);

fn lease(last: u8, ip: Ipv4Addr, expires: u64) -> DhcpLease {
    DhcpLease {
        mac: [0x52, 0x54, 0x00, 0xab, 0xcd, last],
        ip,
        expires,
        state: DhcpLeaseState::Offered,
        hostname: None,
        relay: None,
    }
}

const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 101);

async fn lease_upsert_replace_list_and_delete(store: Store) {
    assert_eq!(store.dhcp_lease_list().await.expect("list"), vec![]);
    let offered = lease(1, A, 1_000);
    store.dhcp_lease_upsert(&offered).await.expect("insert");
    let bound = DhcpLease {
        state: DhcpLeaseState::Bound,
        expires: 5_000,
        hostname: Some("node-1".into()),
        relay: Some(json!({"giaddr": "198.18.1.1", "circuit_id": "0a0b"})),
        ..offered.clone()
    };
    store.dhcp_lease_upsert(&bound).await.expect("replace");
    // The same MAC moving to another address frees the old one.
    let other = lease(2, B, 2_000);
    store.dhcp_lease_upsert(&other).await.expect("second MAC");
    assert_eq!(store.dhcp_lease_list().await.expect("list"), vec![bound.clone(), other.clone()]);
    let moved = DhcpLease { ip: Ipv4Addr::new(198, 18, 0, 102), ..bound.clone() };
    store.dhcp_lease_upsert(&moved).await.expect("move");
    store.dhcp_lease_upsert(&lease(3, A, 3_000)).await.expect("old address reusable");

    assert!(store.dhcp_lease_delete(moved.mac).await.expect("delete"));
    assert!(!store.dhcp_lease_delete(moved.mac).await.expect("delete again"));
    assert!(store.dhcp_lease_delete_ip(B).await.expect("delete by address"));
    assert_eq!(store.dhcp_lease_list().await.expect("list"), vec![lease(3, A, 3_000)]);
}

async fn lease_address_held_by_another_mac_is_duplicate(store: Store) {
    store.dhcp_lease_upsert(&lease(1, A, 1_000)).await.expect("first");
    let result = store.dhcp_lease_upsert(&lease(2, A, 2_000)).await;
    assert_duplicate(result, "DHCP lease", "ip", "198.18.0.100");
    // Moving an existing MAC onto a held address fails the same way.
    store.dhcp_lease_upsert(&lease(2, B, 2_000)).await.expect("second");
    let result = store.dhcp_lease_upsert(&lease(2, A, 2_000)).await;
    assert_duplicate(result, "DHCP lease", "ip", "198.18.0.100");
    // Nothing changed, and the store still works after the failure.
    assert_eq!(
        store.dhcp_lease_list().await.expect("list"),
        vec![lease(1, A, 1_000), lease(2, B, 2_000)]
    );
}

async fn declines_upsert_and_list(store: Store) {
    store.dhcp_decline_upsert(B, 100).await.expect("decline");
    store.dhcp_decline_upsert(A, 200).await.expect("decline");
    store.dhcp_decline_upsert(B, 300).await.expect("decline again");
    assert_eq!(
        store.dhcp_decline_list().await.expect("list"),
        vec![DhcpDecline { ip: A, until: 200 }, DhcpDecline { ip: B, until: 300 }]
    );
}

async fn expire_removes_only_expired_rows(store: Store) {
    store.dhcp_lease_upsert(&lease(1, A, 1_000)).await.expect("lease");
    store.dhcp_lease_upsert(&lease(2, B, 2_000)).await.expect("lease");
    store.dhcp_decline_upsert(Ipv4Addr::new(198, 18, 0, 110), 1_000).await.expect("decline");
    store.dhcp_decline_upsert(Ipv4Addr::new(198, 18, 0, 111), 2_000).await.expect("decline");
    assert_eq!(store.dhcp_leases_expire(999).await.expect("expire"), 0);
    assert_eq!(store.dhcp_leases_expire(1_000).await.expect("expire"), 2);
    assert_eq!(store.dhcp_lease_list().await.expect("list"), vec![lease(2, B, 2_000)]);
    assert_eq!(
        store.dhcp_decline_list().await.expect("list"),
        vec![DhcpDecline { ip: Ipv4Addr::new(198, 18, 0, 111), until: 2_000 }]
    );
}

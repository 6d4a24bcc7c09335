//! Conductor registration, heartbeats and the hardware interfaces table.

use ferric_store::{Store, StoreError};
use ferric_types::{HardwareType, InterfaceImpl, InterfaceKind, InterfaceSupport};

use crate::assert_not_found;

backend_tests!(register_heartbeat_unregister, conductor_list_pages);

fn support(
    hardware_type: HardwareType,
    interface: InterfaceKind,
    enabled: &[InterfaceImpl],
) -> InterfaceSupport {
    InterfaceSupport { hardware_type, interface, enabled: enabled.to_vec(), default: enabled[0] }
}

async fn register_heartbeat_unregister(store: Store) {
    let first = vec![
        support(HardwareType::Ipmi, InterfaceKind::Power, &[InterfaceImpl::Ipmitool]),
        support(
            HardwareType::Ipmi,
            InterfaceKind::Boot,
            &[InterfaceImpl::Ipxe, InterfaceImpl::Pxe],
        ),
        support(HardwareType::FakeHardware, InterfaceKind::Power, &[InterfaceImpl::Fake]),
        support(
            HardwareType::FakeHardware,
            InterfaceKind::Deploy,
            &[InterfaceImpl::Fake, InterfaceImpl::Direct],
        ),
    ];
    let one = store.conductor_register("one", "", &first).await.expect("register");
    assert_eq!(one.hostname, "one");
    assert_eq!(one.conductor_group, "");
    assert!(one.online);
    assert_eq!(one.drivers, [HardwareType::FakeHardware, HardwareType::Ipmi]);
    assert_eq!(store.conductor_get("one").await.expect("get"), one);

    let second = vec![
        support(HardwareType::Redfish, InterfaceKind::Power, &[InterfaceImpl::Redfish]),
        // The default need not be listed first.
        InterfaceSupport {
            hardware_type: HardwareType::Redfish,
            interface: InterfaceKind::Boot,
            enabled: vec![InterfaceImpl::Pxe, InterfaceImpl::Ipxe, InterfaceImpl::Http],
            default: InterfaceImpl::Ipxe,
        },
    ];
    let two = store.conductor_register("two", "g1", &second).await.expect("register");
    assert_eq!(two.drivers, [HardwareType::Redfish]);

    let expected: Vec<(String, InterfaceSupport)> = first
        .iter()
        .map(|s| ("one".to_owned(), s.clone()))
        .chain(second.iter().map(|s| ("two".to_owned(), s.clone())))
        .collect();
    assert_eq!(store.hardware_interfaces().await.expect("interfaces"), expected);

    // Heartbeat refreshes updated_at only.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store.conductor_heartbeat("one").await.expect("heartbeat");
    let beaten = store.conductor_get("one").await.expect("get");
    assert!(beaten.updated_at > one.updated_at);
    assert_eq!(beaten.created_at, one.created_at);
    assert_not_found(store.conductor_heartbeat("nobody").await, "conductor");
    assert_not_found(store.conductor_get("nobody").await, "conductor");

    // Re-registration replaces the interfaces (and may move the group).
    let fewer =
        vec![support(HardwareType::ManualManagement, InterfaceKind::Power, &[InterfaceImpl::Fake])];
    let again = store.conductor_register("one", "g2", &fewer).await.expect("re-register");
    assert_eq!(again.id, one.id);
    assert_eq!(again.created_at, one.created_at);
    assert_eq!(again.conductor_group, "g2");
    assert_eq!(again.drivers, [HardwareType::ManualManagement]);
    let interfaces = store.hardware_interfaces().await.expect("interfaces");
    assert_eq!(interfaces[0], ("one".to_owned(), fewer[0].clone()));
    assert_eq!(interfaces.len(), 1 + second.len());

    // Offline conductors' interfaces are not offered.
    store.conductor_unregister("two").await.expect("unregister");
    let two = store.conductor_get("two").await.expect("get");
    assert!(!two.online);
    assert_eq!(two.drivers, [HardwareType::Redfish]);
    assert_eq!(
        store.hardware_interfaces().await.expect("interfaces"),
        [("one".to_owned(), fewer[0].clone())]
    );
    assert_not_found(store.conductor_unregister("nobody").await, "conductor");

    // A heartbeat brings it back.
    store.conductor_heartbeat("two").await.expect("heartbeat");
    assert!(store.conductor_get("two").await.expect("get").online);
    assert_eq!(store.hardware_interfaces().await.expect("interfaces").len(), 1 + second.len());

    // Registering with nothing clears the interfaces.
    let empty = store.conductor_register("two", "g1", &[]).await.expect("register");
    assert!(empty.drivers.is_empty());
    assert_eq!(store.conductor_get("two").await.expect("get").drivers, []);
}

async fn conductor_list_pages(store: Store) {
    let fake = [support(HardwareType::FakeHardware, InterfaceKind::Power, &[InterfaceImpl::Fake])];
    for host in ["delta", "alpha", "charlie", "bravo"] {
        store.conductor_register(host, "", &fake).await.expect("register");
    }
    store.conductor_unregister("charlie").await.expect("unregister");
    let all = store.conductor_list(None, None).await.expect("list");
    let hosts: Vec<&str> = all.iter().map(|c| c.hostname.as_str()).collect();
    assert_eq!(hosts, ["alpha", "bravo", "charlie", "delta"]);
    assert!(all.iter().all(|c| c.drivers == [HardwareType::FakeHardware]));
    assert!(!all[2].online);

    let page = store.conductor_list(Some(2), Some("alpha")).await.expect("page");
    assert_eq!(page, all[1..3]);
    let page = store.conductor_list(Some(2), Some("charlie")).await.expect("page");
    assert_eq!(page, all[3..]);
    assert_eq!(store.conductor_list(Some(1), None).await.expect("page"), all[..1]);
    match store.conductor_list(Some(2), Some("zulu")).await {
        Err(StoreError::NotFound { kind: "marker", ident }) => assert_eq!(ident, "zulu"),
        other => panic!("expected marker NotFound, got {other:?}"),
    }
}

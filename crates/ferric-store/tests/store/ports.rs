//! Ports, portgroups and chassis.

use ferric_store::{Page, PortQuery, SortDir, Store, StoreError};
use ferric_types::{Chassis, JsonObject, Port, Portgroup, Timestamp};
use serde_json::json;
use uuid::Uuid;

use crate::{assert_duplicate, assert_not_found, stored_node};

backend_tests!(
    port_crud,
    port_references_must_exist,
    port_list_filters_and_pages,
    ports_update_for_node_is_conditional_and_atomic,
    portgroup_crud,
    chassis_crud
);

fn object(value: serde_json::Value) -> JsonObject {
    match value {
        serde_json::Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

async fn port_crud(store: Store) {
    let node = stored_node(&store, |_| {}).await;
    let mut port = Port::new(Uuid::new_v4(), "52:54:00:12:34:56".into(), node.uuid);
    port.name = Some("eth0".into());
    port.description = Some("first".into());
    port.extra = object(json!({"vif_port_id": "abc", "n": [1, 2]}));
    port.internal_info = object(json!({"tenant_vif_port_id": "def"}));
    port.local_link_connection =
        object(json!({"switch_id": "0a:1b:2c:3d:4e:5f", "port_id": "Ethernet3/1"}));
    port.physical_network = Some("physnet1".into());
    port.is_smartnic = true;
    port.vendor = Some("acme".into());
    port.category = Some("fast".into());
    port.available_for_dynamic_portgroup = false;
    let created = store.port_create(&port).await.expect("create");
    assert!(created.id > 0);
    assert_eq!(created, Port { id: created.id, ..port.clone() });
    assert_eq!(store.port_get(port.uuid).await.expect("get"), created);
    assert_eq!(store.port_get_by_address("52:54:00:12:34:56").await.expect("by mac"), created);
    assert_not_found(store.port_get(Uuid::new_v4()).await, "port");
    assert_not_found(store.port_get_by_address("00:00:00:00:00:00").await, "port");

    // Duplicates.
    let same_mac = Port::new(Uuid::new_v4(), "52:54:00:12:34:56".into(), node.uuid);
    assert_duplicate(store.port_create(&same_mac).await, "port", "address", "52:54:00:12:34:56");
    let same_uuid = Port::new(port.uuid, "52:54:00:00:00:99".into(), node.uuid);
    assert_duplicate(store.port_create(&same_uuid).await, "port", "uuid", &port.uuid.to_string());

    // Update every mutable field.
    let portgroup =
        store.portgroup_create(&Portgroup::new(Uuid::new_v4(), node.uuid)).await.expect("pg");
    let mut change = created.clone();
    change.address = "52:54:00:ff:ff:ff".into();
    change.portgroup_uuid = Some(portgroup.uuid);
    change.name = None;
    change.extra = JsonObject::new();
    change.pxe_enabled = false;
    change.is_smartnic = false;
    let updated = store.port_update(&change).await.expect("update");
    assert!(updated.updated_at.is_some());
    assert_eq!(updated, Port { updated_at: updated.updated_at, ..change });
    assert_eq!(store.port_get(port.uuid).await.expect("get"), updated);
    assert_not_found(store.port_get_by_address("52:54:00:12:34:56").await, "port");

    // Taking another port's MAC.
    let second = store
        .port_create(&Port::new(Uuid::new_v4(), "52:54:00:00:00:02".into(), node.uuid))
        .await
        .expect("second");
    let mut steal = second.clone();
    steal.address = "52:54:00:ff:ff:ff".into();
    assert_duplicate(store.port_update(&steal).await, "port", "address", "52:54:00:ff:ff:ff");

    store.port_delete(port.uuid).await.expect("delete");
    assert_not_found(store.port_get(port.uuid).await, "port");
    assert_not_found(store.port_delete(port.uuid).await, "port");
    assert_not_found(store.port_update(&updated).await, "port");
}

async fn port_references_must_exist(store: Store) {
    let node = stored_node(&store, |_| {}).await;
    let missing_node = Uuid::new_v4();
    let orphan = Port::new(Uuid::new_v4(), "52:54:00:00:00:01".into(), missing_node);
    match store.port_create(&orphan).await {
        Err(StoreError::NotFound { kind: "node", ident }) => {
            assert_eq!(ident, missing_node.to_string())
        }
        other => panic!("expected node NotFound, got {other:?}"),
    }
    let mut bad_group = Port::new(Uuid::new_v4(), "52:54:00:00:00:02".into(), node.uuid);
    bad_group.portgroup_uuid = Some(Uuid::new_v4());
    assert_not_found(store.port_create(&bad_group).await, "portgroup");
    let orphan_group = Portgroup::new(Uuid::new_v4(), missing_node);
    assert_not_found(store.portgroup_create(&orphan_group).await, "node");
}

async fn port_list_filters_and_pages(store: Store) {
    let a = stored_node(&store, |n| n.shard = Some("s1".into())).await;
    let b = stored_node(&store, |_| {}).await;
    let group = store.portgroup_create(&Portgroup::new(Uuid::new_v4(), a.uuid)).await.expect("pg");
    let mut ports = Vec::new();
    for i in 0..7u8 {
        let node = if i % 3 == 0 { &b } else { &a };
        let mut port = Port::new(Uuid::new_v4(), format!("52:54:00:00:00:{i:02x}"), node.uuid);
        if i % 3 == 1 {
            port.portgroup_uuid = Some(group.uuid);
        }
        ports.push(store.port_create(&port).await.expect("port"));
    }
    let list = |query: PortQuery| {
        let store = store.clone();
        async move {
            store
                .port_list(&query)
                .await
                .expect("list")
                .into_iter()
                .map(|p| p.uuid)
                .collect::<Vec<_>>()
        }
    };
    let uuids = |pick: &dyn Fn(usize) -> bool| {
        ports.iter().enumerate().filter(|(i, _)| pick(*i)).map(|(_, p)| p.uuid).collect::<Vec<_>>()
    };

    assert_eq!(list(PortQuery::default()).await, uuids(&|_| true));
    assert_eq!(
        list(PortQuery { node_uuid: Some(b.uuid), ..Default::default() }).await,
        uuids(&|i| i % 3 == 0)
    );
    assert_eq!(
        list(PortQuery { portgroup_uuid: Some(group.uuid), ..Default::default() }).await,
        uuids(&|i| i % 3 == 1)
    );
    assert_eq!(
        list(PortQuery { address: Some("52:54:00:00:00:04".into()), ..Default::default() }).await,
        uuids(&|i| i == 4)
    );
    assert_eq!(
        list(PortQuery { shard: Some("s1".into()), ..Default::default() }).await,
        uuids(&|i| i % 3 != 0)
    );
    assert_eq!(
        list(PortQuery { shard: Some("s9".into()), ..Default::default() }).await,
        uuids(&|_| false)
    );
    let both = PortQuery {
        node_uuid: Some(a.uuid),
        portgroup_uuid: Some(group.uuid),
        ..Default::default()
    };
    assert_eq!(list(both).await, uuids(&|i| i % 3 == 1));

    for dir in [SortDir::Asc, SortDir::Desc] {
        let mut expected = uuids(&|_| true);
        if dir == SortDir::Desc {
            expected.reverse();
        }
        let page = |limit, marker| PortQuery {
            page: Page { limit: Some(limit), marker, sort_dir: dir },
            ..Default::default()
        };
        assert_eq!(
            list(PortQuery {
                page: Page { sort_dir: dir, ..Page::default() },
                ..Default::default()
            })
            .await,
            expected
        );
        for limit in [1, 2, 3] {
            let mut walked = Vec::new();
            let mut marker = None;
            loop {
                let got = list(page(limit, marker)).await;
                if got.is_empty() {
                    break;
                }
                marker = got.last().copied();
                walked.extend(got);
                assert!(walked.len() <= expected.len(), "{dir:?}: pages overlap");
            }
            assert_eq!(walked, expected, "{dir:?} limit {limit}");
        }
    }
    match store
        .port_list(&PortQuery {
            page: Page { marker: Some(Uuid::new_v4()), ..Page::default() },
            ..Default::default()
        })
        .await
    {
        Err(StoreError::NotFound { kind: "marker", .. }) => {}
        other => panic!("expected marker NotFound, got {other:?}"),
    }

    // Portgroup listing shares the query.
    let other_group =
        store.portgroup_create(&Portgroup::new(Uuid::new_v4(), b.uuid)).await.expect("pg");
    let groups = |query: PortQuery| {
        let store = store.clone();
        async move {
            store
                .portgroup_list(&query)
                .await
                .expect("list")
                .into_iter()
                .map(|p| p.uuid)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(groups(PortQuery::default()).await, [group.uuid, other_group.uuid]);
    assert_eq!(
        groups(PortQuery { node_uuid: Some(b.uuid), ..Default::default() }).await,
        [other_group.uuid]
    );
    assert_eq!(
        groups(PortQuery { shard: Some("s1".into()), ..Default::default() }).await,
        [group.uuid]
    );
    assert_eq!(
        groups(PortQuery { portgroup_uuid: Some(other_group.uuid), ..Default::default() }).await,
        [other_group.uuid]
    );
    let after = PortQuery {
        page: Page { limit: Some(1), marker: Some(group.uuid), sort_dir: SortDir::Asc },
        ..Default::default()
    };
    assert_eq!(groups(after).await, [other_group.uuid]);
}

async fn portgroup_crud(store: Store) {
    let node = stored_node(&store, |_| {}).await;
    let mut portgroup = Portgroup::new(Uuid::new_v4(), node.uuid);
    portgroup.name = Some("bond0".into());
    portgroup.address = Some("52:54:00:aa:aa:aa".into());
    portgroup.extra = object(json!({"a": {"b": [true]}}));
    portgroup.internal_info = object(json!({"x": 1}));
    portgroup.standalone_ports_supported = false;
    portgroup.mode = Some("802.3ad".into());
    portgroup.properties = object(json!({"miimon": "100"}));
    portgroup.physical_network = Some("physnet1".into());
    portgroup.category = Some("lag".into());
    let created = store.portgroup_create(&portgroup).await.expect("create");
    assert_eq!(created, Portgroup { id: created.id, ..portgroup.clone() });
    assert_eq!(store.portgroup_get(&portgroup.uuid.to_string()).await.expect("by uuid"), created);
    assert_eq!(store.portgroup_get("bond0").await.expect("by name"), created);
    assert_not_found(store.portgroup_get("bond9").await, "portgroup");

    let mut same_name = Portgroup::new(Uuid::new_v4(), node.uuid);
    same_name.name = Some("bond0".into());
    assert_duplicate(store.portgroup_create(&same_name).await, "portgroup", "name", "bond0");
    let mut same_mac = Portgroup::new(Uuid::new_v4(), node.uuid);
    same_mac.address = Some("52:54:00:aa:aa:aa".into());
    assert_duplicate(
        store.portgroup_create(&same_mac).await,
        "portgroup",
        "address",
        "52:54:00:aa:aa:aa",
    );
    // Unnamed, address-less portgroups do not collide.
    store.portgroup_create(&Portgroup::new(Uuid::new_v4(), node.uuid)).await.expect("unnamed");
    store.portgroup_create(&Portgroup::new(Uuid::new_v4(), node.uuid)).await.expect("unnamed");

    let mut change = created.clone();
    change.name = Some("bond1".into());
    change.mode = None;
    let updated = store.portgroup_update(&change).await.expect("update");
    assert_eq!(updated, Portgroup { updated_at: updated.updated_at, ..change });
    assert!(updated.updated_at.is_some());
    assert_eq!(store.portgroup_get("bond1").await.expect("renamed"), updated);

    // Writes are conditional on `updated_at`: the copy read before that
    // write (never updated: NULL) is stale, and so is a copy of an earlier
    // write; a fresh copy goes through and moves `updated_at` on.
    let mut late = created.clone();
    late.extra = object(json!({"late": true}));
    let result = store.portgroup_update(&late).await;
    assert!(matches!(result, Err(StoreError::Stale { kind: "portgroup", .. })), "{result:?}");
    let mut again = updated.clone();
    again.extra = object(json!({"again": true}));
    let second = store.portgroup_update(&again).await.expect("fresh copy");
    assert!(second.updated_at > updated.updated_at, "{second:?}");
    assert_eq!(second.name.as_deref(), Some("bond1"));
    let result = store.portgroup_update(&again).await;
    assert!(matches!(result, Err(StoreError::Stale { .. })), "{result:?}");

    // In use while a port belongs to it.
    let mut port = Port::new(Uuid::new_v4(), "52:54:00:00:00:01".into(), node.uuid);
    port.portgroup_uuid = Some(portgroup.uuid);
    let port = store.port_create(&port).await.expect("port");
    match store.portgroup_delete(portgroup.uuid).await {
        Err(StoreError::InUse { kind: "portgroup", ident, .. }) => {
            assert_eq!(ident, portgroup.uuid.to_string())
        }
        other => panic!("expected InUse, got {other:?}"),
    }
    store.port_update(&Port { portgroup_uuid: None, ..port }).await.expect("detach");
    store.portgroup_delete(portgroup.uuid).await.expect("delete");
    assert_not_found(store.portgroup_get(&portgroup.uuid.to_string()).await, "portgroup");
    assert_not_found(store.portgroup_update(&second).await, "portgroup");
    assert_not_found(store.portgroup_delete(portgroup.uuid).await, "portgroup");
}

async fn chassis_crud(store: Store) {
    let mut all = Vec::new();
    for i in 0..5 {
        let chassis = Chassis {
            id: 0,
            uuid: Uuid::new_v4(),
            description: (i % 2 == 0).then(|| format!("chassis {i}")),
            extra: object(json!({"i": i})),
            created_at: Timestamp::now(),
            updated_at: None,
        };
        let created = store.chassis_create(&chassis).await.expect("create");
        assert_eq!(created, Chassis { id: created.id, ..chassis });
        all.push(created);
    }
    let first = all[0].clone();
    assert_eq!(store.chassis_get(first.uuid).await.expect("get"), first);
    assert_not_found(store.chassis_get(Uuid::new_v4()).await, "chassis");
    assert_duplicate(
        store.chassis_create(&first).await,
        "chassis",
        "uuid",
        &first.uuid.to_string(),
    );

    assert_eq!(store.chassis_list(&Page::default()).await.expect("list"), all);
    let page = Page { limit: Some(2), marker: Some(all[1].uuid), sort_dir: SortDir::Asc };
    assert_eq!(store.chassis_list(&page).await.expect("page"), all[2..4]);
    let page = Page { limit: Some(2), marker: Some(all[1].uuid), sort_dir: SortDir::Desc };
    assert_eq!(store.chassis_list(&page).await.expect("page"), [all[0].clone()]);

    let mut change = first.clone();
    change.description = Some("renamed".into());
    change.extra = JsonObject::new();
    let updated = store.chassis_update(&change).await.expect("update");
    assert_eq!(updated, Chassis { updated_at: updated.updated_at, ..change });

    let node = stored_node(&store, |n| n.chassis_uuid = Some(first.uuid)).await;
    match store.chassis_delete(first.uuid).await {
        Err(StoreError::InUse { kind: "chassis", .. }) => {}
        other => panic!("expected InUse, got {other:?}"),
    }
    store.node_update(&ferric_types::Node { chassis_uuid: None, ..node }).await.expect("unassign");
    store.chassis_delete(first.uuid).await.expect("delete");
    assert_not_found(store.chassis_get(first.uuid).await, "chassis");
    assert_not_found(store.chassis_delete(first.uuid).await, "chassis");
}

async fn ports_update_for_node_is_conditional_and_atomic(store: Store) {
    let node = stored_node(&store, |_| {}).await;
    let other = stored_node(&store, |_| {}).await;
    let create = |mac: &str, node: Uuid| {
        let store = store.clone();
        let port = Port::new(Uuid::new_v4(), mac.into(), node);
        async move { store.port_create(&port).await.expect("create") }
    };
    let first = create("52:54:00:00:01:01", node.uuid).await;
    let second = create("52:54:00:00:01:02", node.uuid).await;
    let foreign = create("52:54:00:00:01:03", other.uuid).await;

    // Both written in one go; each gets a new updated_at.
    let mut a = first.clone();
    a.extra = object(json!({"rack": "r1"}));
    let mut b = second.clone();
    b.physical_network = Some("physnet1".into());
    let stored =
        store.ports_update_for_node(node.uuid, &[a.clone(), b.clone()]).await.expect("update");
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].extra, a.extra);
    assert_eq!(stored[1].physical_network.as_deref(), Some("physnet1"));
    assert!(stored.iter().all(|port| port.updated_at.is_some()));
    assert_eq!(store.port_get(first.uuid).await.expect("get"), stored[0]);

    // A copy read before that write is stale: nothing of the batch is written.
    let mut late = stored[0].clone();
    late.extra = object(json!({"late": true}));
    let mut old = b.clone(); // still carries the updated_at of before
    old.physical_network = Some("physnet2".into());
    let result = store.ports_update_for_node(node.uuid, &[late, old]).await;
    assert!(matches!(result, Err(StoreError::Stale { kind: "port", .. })), "{result:?}");
    assert_eq!(store.port_get(first.uuid).await.expect("get"), stored[0], "rolled back");
    assert_eq!(store.port_get(second.uuid).await.expect("get"), stored[1]);

    // Another writer in between (port_update stamps updated_at) makes ours stale.
    let mut theirs = stored[1].clone();
    theirs.description = Some("theirs".into());
    store.port_update(&theirs).await.expect("their write");
    let result = store.ports_update_for_node(node.uuid, &[stored[1].clone()]).await;
    assert!(matches!(result, Err(StoreError::Stale { .. })), "{result:?}");
    let fresh = store.port_get(second.uuid).await.expect("get");
    assert_eq!(fresh.description.as_deref(), Some("theirs"));
    // Re-read and re-applied, it goes through and keeps their change.
    let mut again = fresh.clone();
    again.pxe_enabled = false;
    let stored = store.ports_update_for_node(node.uuid, &[again]).await.expect("retry");
    assert_eq!(stored[0].description.as_deref(), Some("theirs"));
    assert!(!stored[0].pxe_enabled);

    // Another node's port is not this node's to write.
    let result = store.ports_update_for_node(node.uuid, std::slice::from_ref(&foreign)).await;
    assert!(matches!(result, Err(StoreError::Stale { .. })), "{result:?}");
    // A deleted port, and a taken address.
    let mut gone = create("52:54:00:00:01:04", node.uuid).await;
    store.port_delete(gone.uuid).await.expect("delete");
    gone.name = Some("gone".into());
    assert_not_found(store.ports_update_for_node(node.uuid, &[gone]).await, "port");
    let mut steal = store.port_get(first.uuid).await.expect("get");
    steal.address = foreign.address.clone();
    assert_duplicate(
        store.ports_update_for_node(node.uuid, &[steal]).await,
        "port",
        "address",
        &foreign.address,
    );
    // An empty batch is a no-op.
    assert!(store.ports_update_for_node(node.uuid, &[]).await.expect("empty").is_empty());
}

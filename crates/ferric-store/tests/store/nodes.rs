//! Nodes: create/get/update (optimistic locking), duplicates, listing
//! (filters, sorting, keyset pagination), deletion, lookup by MAC.

use std::collections::BTreeSet;

use ferric_store::{
    NodeFilters, NodeIdent, NodeQuery, NodeSortKey, Page, SortDir, Store, StoreError,
};
use ferric_types::{
    Chassis, Fault, HardwareType, HistoryEvent, InterfaceImpl, InterfaceKind, JsonObject, Node,
    PendingAction, Port, Portgroup, PowerState, PowerTarget, ProvisionRequest, ProvisionState,
    Severity, Timestamp, Verb,
};
use serde_json::json;
use uuid::Uuid;

use crate::{assert_duplicate, assert_not_found, new_node, stored_node};

backend_tests!(
    create_and_get,
    every_field_round_trips,
    update_is_conditional,
    concurrent_updates_one_wins,
    duplicates_are_reported,
    list_filters,
    list_sorts_and_pages,
    unknown_marker_is_not_found,
    delete_cascades,
    lookup_by_port_addresses,
);

/// An empty listing.
const NONE: [Uuid; 0] = [];

fn object(value: serde_json::Value) -> JsonObject {
    match value {
        serde_json::Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

async fn create_and_get(store: Store) {
    let mut node = new_node();
    node.name = Some("node-1".into());
    node.id = 99;
    node.version = 42;
    let created = store.node_create(&node).await.expect("create");
    assert!(created.id > 0);
    assert_eq!(created.version, 1);
    assert_eq!(created, Node { id: created.id, version: 1, ..node.clone() });

    assert_eq!(store.node_get_by_uuid(node.uuid).await.expect("by uuid"), created);
    assert_eq!(store.node_get(&NodeIdent::Uuid(node.uuid)).await.expect("ident uuid"), created);
    assert_eq!(store.node_get(&NodeIdent::parse("node-1")).await.expect("by name"), created);
    assert_eq!(
        store.node_get(&NodeIdent::parse(&node.uuid.to_string())).await.expect("parsed uuid"),
        created
    );

    assert_not_found(store.node_get_by_uuid(Uuid::new_v4()).await, "node");
    assert_not_found(store.node_get(&NodeIdent::Name("nope".into())).await, "node");
}

/// A node with every optional field set and nested JSON everywhere.
fn full_node(chassis: Uuid) -> Node {
    let mut node = new_node();
    node.name = Some("full".into());
    node.driver = HardwareType::Redfish;
    node.driver_info = object(json!({
        "redfish_address": "https://bmc.example.com",
        "redfish_password": "s3cr3t",
        "nested": {"list": [1, 2.5, "x", null, true], "empty": {}},
        "unicode": "nœud ✓",
    }));
    node.driver_internal_info = object(json!({"clean_steps": [{"step": "erase", "priority": 10}]}));
    node.properties =
        object(json!({"cpus": 8, "memory_mb": 65536, "capabilities": "boot_mode:uefi"}));
    node.instance_info = object(json!({"image_source": "http://images/x.qcow2", "root_gb": 10}));
    node.instance_uuid = Some(Uuid::new_v4().to_string());
    node.instance_name = Some("vm-1".into());
    node.chassis_uuid = Some(chassis);
    node.extra = object(json!({"rack": "A1", "quote": "it's \"quoted\""}));
    node.power_state = Some(PowerState::On);
    node.target_power_state = Some(PowerTarget::SoftReboot);
    node.provision_state = ProvisionState::DeployWait;
    node.target_provision_state = Some(ProvisionState::Active);
    node.provision_updated_at = Some(Timestamp::now().plus_seconds(-60));
    node.maintenance = true;
    node.maintenance_reason = Some("fan".into());
    node.fault = Some(Fault::PowerFailure);
    node.last_error = Some("boom".into());
    node.reservation = Some("conductor-1".into());
    node.console_enabled = true;
    node.inspection_started_at = Some(Timestamp::now().plus_seconds(-3600));
    node.inspection_finished_at = Some(Timestamp::now().plus_seconds(-3500));
    node.clean_step = object(json!({"step": "erase_devices", "interface": "deploy"}));
    node.deploy_step = object(json!({"step": "write_image", "args": {"force": true}}));
    node.service_step = object(json!({"step": "hold"}));
    node.raid_config = object(json!({"logical_disks": [{"size_gb": 100, "raid_level": "1"}]}));
    node.target_raid_config = object(json!({"logical_disks": []}));
    for (kind, implementation) in InterfaceKind::ALL.into_iter().zip(InterfaceImpl::ALL) {
        node.interfaces.set(kind, implementation);
    }
    node.resource_class = Some("baremetal.gold".into());
    node.traits = vec!["CUSTOM_A".into(), "HW_CPU_X86_VMX".into()];
    node.conductor_group = "group-1".into();
    node.automated_clean = Some(false);
    node.protected = true;
    node.protected_reason = Some("important".into());
    node.owner = Some("project-a".into());
    node.lessee = Some("project-b".into());
    node.description = Some("a node with everything".into());
    node.allocation_uuid = Some(Uuid::new_v4());
    node.retired = true;
    node.retired_reason = Some("old".into());
    node.network_data = object(json!({"links": [], "networks": [], "services": []}));
    node.boot_mode = Some("uefi".into());
    node.secure_boot = Some(true);
    node.shard = Some("shard-1".into());
    node.parent_node = Some(Uuid::new_v4().to_string());
    node.disable_power_off = true;
    node.health = Some("OK".into());
    node.conductor_affinity = Some("conductor-1".into());
    node.pending_action = Some(PendingAction::Provision(ProvisionRequest {
        verb: Some(Verb::Clean),
        configdrive: Some(json!({"meta_data": {"hostname": "x"}})),
        clean_steps: Some(vec![json!({"interface": "deploy", "step": "erase_devices"})]),
        deploy_steps: None,
        service_steps: Some(vec![]),
        rescue_password: Some("pw".into()),
        disable_ramdisk: Some(true),
        runbook: None,
    }));
    node.updated_at = Some(Timestamp::now());
    node
}

async fn every_field_round_trips(store: Store) {
    let chassis = chassis(&store).await;
    let node = full_node(chassis.uuid);
    let created = store.node_create(&node).await.expect("create");
    assert_eq!(created, Node { id: created.id, version: 1, ..node.clone() });
    let fetched = store.node_get_by_uuid(node.uuid).await.expect("get");
    assert_eq!(fetched, created);
    let listed = store.node_list(&NodeQuery::default()).await.expect("list");
    assert_eq!(listed, vec![created.clone()]);

    // The other pending action variant, and everything optional cleared.
    let mut cleared = Node::new(node.uuid, HardwareType::Ipmi, ProvisionState::Available);
    cleared.id = created.id;
    cleared.version = created.version;
    cleared.created_at = created.created_at;
    cleared.pending_action =
        Some(PendingAction::Power { target: PowerTarget::Off, timeout_seconds: Some(30) });
    let updated = store.node_update(&cleared).await.expect("update");
    assert!(updated.updated_at.is_some());
    assert_eq!(updated, Node { version: 2, updated_at: updated.updated_at, ..cleared });
    assert_eq!(store.node_get_by_uuid(node.uuid).await.expect("get"), updated);
}

async fn update_is_conditional(store: Store) {
    let created = stored_node(&store, |_| {}).await;
    assert_eq!(created.updated_at, None);

    let mut reserve = created.clone();
    reserve.reservation = Some("conductor-1".into());
    let reserved = store.node_update(&reserve).await.expect("update");
    assert_eq!(reserved.version, 2);
    assert_eq!(reserved.reservation.as_deref(), Some("conductor-1"));
    assert!(reserved.updated_at.is_some());

    // A writer holding the old version loses, and changes nothing.
    let mut stale = created.clone();
    stale.maintenance = true;
    stale.reservation = Some("conductor-2".into());
    match store.node_update(&stale).await {
        Err(StoreError::Stale { kind: "node", ident }) => {
            assert_eq!(ident, created.uuid.to_string())
        }
        other => panic!("expected Stale, got {other:?}"),
    }
    assert_eq!(store.node_get_by_uuid(created.uuid).await.expect("get"), reserved);

    // Re-read and retry wins.
    let mut release = reserved.clone();
    release.reservation = None;
    let released = store.node_update(&release).await.expect("retry");
    assert_eq!(released.version, 3);
    assert_eq!(released.reservation, None);

    // The uuid and creation time are not rewritten.
    let mut renamed = released.clone();
    renamed.created_at = Timestamp::now().plus_seconds(1000);
    let kept = store.node_update(&renamed).await.expect("update");
    assert_eq!(kept.created_at, created.created_at);

    store.node_delete(created.uuid).await.expect("delete");
    assert_not_found(store.node_update(&kept).await, "node");
}

async fn concurrent_updates_one_wins(store: Store) {
    let node = stored_node(&store, |_| {}).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let mut node = node.clone();
        node.reservation = Some(format!("conductor-{i}"));
        tasks.push(tokio::spawn(async move { store.node_update(&node).await }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            Ok(node) => winners.push(node),
            Err(StoreError::Stale { .. }) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one writer wins");
    assert_eq!(store.node_get_by_uuid(node.uuid).await.expect("get"), winners[0]);
}

async fn duplicates_are_reported(store: Store) {
    let instance = Uuid::new_v4().to_string();
    let first = stored_node(&store, |n| {
        n.name = Some("dup".into());
        n.instance_uuid = Some(instance.clone());
    })
    .await;

    let mut same_uuid = new_node();
    same_uuid.uuid = first.uuid;
    assert_duplicate(store.node_create(&same_uuid).await, "node", "uuid", &first.uuid.to_string());

    let mut same_name = new_node();
    same_name.name = Some("dup".into());
    assert_duplicate(store.node_create(&same_name).await, "node", "name", "dup");

    let mut same_instance = new_node();
    same_instance.instance_uuid = Some(instance.clone());
    assert_duplicate(store.node_create(&same_instance).await, "node", "instance_uuid", &instance);

    // Many nodes may have no name and no instance.
    let second = stored_node(&store, |_| {}).await;
    stored_node(&store, |_| {}).await;

    let mut rename = second.clone();
    rename.name = Some("dup".into());
    assert_duplicate(store.node_update(&rename).await, "node", "name", "dup");
    let mut claim = second.clone();
    claim.instance_uuid = Some(instance.clone());
    assert_duplicate(store.node_update(&claim).await, "node", "instance_uuid", &instance);
    assert_eq!(store.node_get_by_uuid(second.uuid).await.expect("get"), second);

    // A chassis that does not exist.
    let mut orphan = new_node();
    let missing = Uuid::new_v4();
    orphan.chassis_uuid = Some(missing);
    match store.node_create(&orphan).await {
        Err(StoreError::NotFound { kind: "chassis", ident }) => {
            assert_eq!(ident, missing.to_string())
        }
        other => panic!("expected chassis NotFound, got {other:?}"),
    }
}

async fn chassis(store: &Store) -> Chassis {
    let chassis = Chassis {
        id: 0,
        uuid: Uuid::new_v4(),
        description: Some("rack".into()),
        extra: JsonObject::new(),
        created_at: Timestamp::now(),
        updated_at: None,
    };
    store.chassis_create(&chassis).await.expect("chassis")
}

/// The uuids a listing with `filters` returns, in id order.
async fn listed(store: &Store, filters: NodeFilters) -> Vec<Uuid> {
    let query = NodeQuery { filters, ..NodeQuery::default() };
    store.node_list(&query).await.expect("list").into_iter().map(|n| n.uuid).collect()
}

async fn list_filters(store: Store) {
    let chassis = chassis(&store).await;
    let old = Timestamp::now().plus_seconds(-7200);
    let recent = Timestamp::now().plus_seconds(-10);
    let a = stored_node(&store, |n| {
        n.name = Some("a".into());
        n.provision_state = ProvisionState::Available;
        n.owner = Some("p1".into());
        n.resource_class = Some("gold".into());
        n.description = Some("Rack A, 100% busy".into());
        n.shard = Some("s1".into());
        n.provision_updated_at = Some(old);
    })
    .await;
    let b = stored_node(&store, |n| {
        n.provision_state = ProvisionState::Active;
        n.instance_uuid = Some("instance-b".into());
        n.owner = Some("p2".into());
        n.lessee = Some("p1".into());
        n.reservation = Some("c1".into());
        n.shard = Some("s2".into());
        n.maintenance = true;
        n.fault = Some(Fault::PowerFailure);
        n.chassis_uuid = Some(chassis.uuid);
        n.provision_updated_at = Some(recent);
    })
    .await;
    let c = stored_node(&store, |n| {
        n.provision_state = ProvisionState::Manageable;
        n.parent_node = Some(a.uuid.to_string());
        n.retired = true;
        n.driver = HardwareType::Ipmi;
        n.conductor_group = "g1".into();
        n.description = Some("rack a".into());
    })
    .await;
    let d = stored_node(&store, |n| {
        n.provision_state = ProvisionState::CleanWait;
        n.reservation = Some("c2".into());
        n.target_power_state = Some(PowerTarget::On);
        n.pending_action =
            Some(PendingAction::Power { target: PowerTarget::On, timeout_seconds: None });
        n.provision_updated_at = Some(old);
        n.lessee = Some("p3".into());
    })
    .await;
    let (a, b, c, d) = (a.uuid, b.uuid, c.uuid, d.uuid);
    let f = NodeFilters::default;

    assert_eq!(listed(&store, f()).await, [a, b, c, d]);
    assert_eq!(
        listed(&store, NodeFilters { instance_uuid: Some("instance-b".into()), ..f() }).await,
        [b]
    );
    assert_eq!(listed(&store, NodeFilters { associated: Some(true), ..f() }).await, [b]);
    assert_eq!(listed(&store, NodeFilters { associated: Some(false), ..f() }).await, [a, c, d]);
    assert_eq!(listed(&store, NodeFilters { maintenance: Some(true), ..f() }).await, [b]);
    assert_eq!(listed(&store, NodeFilters { maintenance: Some(false), ..f() }).await, [a, c, d]);
    assert_eq!(listed(&store, NodeFilters { retired: Some(true), ..f() }).await, [c]);
    assert_eq!(
        listed(&store, NodeFilters { provision_state: Some(ProvisionState::Active), ..f() }).await,
        [b]
    );
    let states = vec![ProvisionState::Available, ProvisionState::CleanWait];
    assert_eq!(listed(&store, NodeFilters { provision_states: Some(states), ..f() }).await, [a, d]);
    assert_eq!(listed(&store, NodeFilters { provision_states: Some(vec![]), ..f() }).await, NONE);
    assert_eq!(listed(&store, NodeFilters { driver: Some(HardwareType::Ipmi), ..f() }).await, [c]);
    assert_eq!(
        listed(&store, NodeFilters { resource_class: Some("gold".into()), ..f() }).await,
        [a]
    );
    assert_eq!(listed(&store, NodeFilters { fault: Some(Fault::PowerFailure), ..f() }).await, [b]);
    assert_eq!(
        listed(&store, NodeFilters { conductor_group: Some("g1".into()), ..f() }).await,
        [c]
    );
    assert_eq!(
        listed(&store, NodeFilters { conductor_group: Some(String::new()), ..f() }).await,
        [a, b, d]
    );
    assert_eq!(listed(&store, NodeFilters { owner: Some("p1".into()), ..f() }).await, [a]);
    assert_eq!(listed(&store, NodeFilters { lessee: Some("p1".into()), ..f() }).await, [b]);
    assert_eq!(listed(&store, NodeFilters { project: Some("p1".into()), ..f() }).await, [a, b]);
    assert_eq!(listed(&store, NodeFilters { chassis_uuid: Some(chassis.uuid), ..f() }).await, [b]);
    // Substring match: case-sensitive, and `%`/`_` are not wildcards.
    let contains = |text: &str| NodeFilters { description_contains: Some(text.into()), ..f() };
    assert_eq!(listed(&store, contains("Rack")).await, [a]);
    assert_eq!(listed(&store, contains("ack")).await, [a, c]);
    assert_eq!(listed(&store, contains("100% b")).await, [a]);
    assert_eq!(listed(&store, contains("%")).await, [a]);
    assert_eq!(listed(&store, contains("_")).await, NONE);
    let shards = vec!["s1".to_owned(), "s2".to_owned()];
    assert_eq!(listed(&store, NodeFilters { shards: Some(shards), ..f() }).await, [a, b]);
    assert_eq!(listed(&store, NodeFilters { shards: Some(vec!["s2".into()]), ..f() }).await, [b]);
    assert_eq!(listed(&store, NodeFilters { sharded: Some(true), ..f() }).await, [a, b]);
    assert_eq!(listed(&store, NodeFilters { sharded: Some(false), ..f() }).await, [c, d]);
    assert_eq!(listed(&store, NodeFilters { parent_node: Some(a.to_string()), ..f() }).await, [c]);
    assert_eq!(
        listed(&store, NodeFilters { include_children: Some(false), ..f() }).await,
        [a, b, d]
    );
    assert_eq!(
        listed(&store, NodeFilters { include_children: Some(true), ..f() }).await,
        [a, b, c, d]
    );
    assert_eq!(listed(&store, NodeFilters { reservation: Some(None), ..f() }).await, [a, c]);
    assert_eq!(
        listed(&store, NodeFilters { reservation: Some(Some("c2".into())), ..f() }).await,
        [d]
    );
    let alive = vec!["c1".to_owned()];
    assert_eq!(listed(&store, NodeFilters { reserved_by_none_of: Some(alive), ..f() }).await, [d]);
    assert_eq!(
        listed(&store, NodeFilters { reserved_by_none_of: Some(vec![]), ..f() }).await,
        [b, d]
    );
    assert_eq!(listed(&store, NodeFilters { has_pending_action: Some(true), ..f() }).await, [d]);
    assert_eq!(
        listed(&store, NodeFilters { has_pending_action: Some(false), ..f() }).await,
        [a, b, c]
    );
    let before = Some(Timestamp::now().plus_seconds(-3600));
    assert_eq!(
        listed(&store, NodeFilters { provision_updated_before: before, ..f() }).await,
        [a, d]
    );
    assert_eq!(
        listed(&store, NodeFilters { power_change_in_progress: Some(true), ..f() }).await,
        [d]
    );
    assert_eq!(
        listed(&store, NodeFilters { power_change_in_progress: Some(false), ..f() }).await,
        [a, b, c]
    );

    // Several filters at once are ANDed.
    let combined = NodeFilters {
        provision_updated_before: before,
        reservation: Some(None),
        maintenance: Some(false),
        provision_states: Some(vec![ProvisionState::Available, ProvisionState::CleanWait]),
        ..f()
    };
    assert_eq!(listed(&store, combined).await, [a]);
    let combined = NodeFilters { project: Some("p1".into()), associated: Some(true), ..f() };
    assert_eq!(listed(&store, combined).await, [b]);
}

/// The key a sort orders by, as the store compares it (NULL as '').
fn sort_value(node: &Node, key: NodeSortKey) -> String {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let time = |value: Option<Timestamp>| value.map(Timestamp::to_text).unwrap_or_default();
    match key {
        NodeSortKey::Id => format!("{:020}", node.id),
        NodeSortKey::Uuid => node.uuid.to_string(),
        NodeSortKey::Name => text(&node.name),
        NodeSortKey::Driver => node.driver.as_str().into(),
        NodeSortKey::ProvisionState => node.provision_state.as_str().into(),
        NodeSortKey::PowerState => text(&node.power_state.map(|s| s.as_str().to_owned())),
        NodeSortKey::Maintenance => u8::from(node.maintenance).to_string(),
        NodeSortKey::ResourceClass => text(&node.resource_class),
        NodeSortKey::ConductorGroup => node.conductor_group.clone(),
        NodeSortKey::Owner => text(&node.owner),
        NodeSortKey::Lessee => text(&node.lessee),
        NodeSortKey::InstanceUuid => text(&node.instance_uuid),
        NodeSortKey::CreatedAt => node.created_at.to_text(),
        NodeSortKey::UpdatedAt => time(node.updated_at),
        NodeSortKey::ProvisionUpdatedAt => time(node.provision_updated_at),
    }
}

const SORT_KEYS: [NodeSortKey; 15] = [
    NodeSortKey::Id,
    NodeSortKey::Uuid,
    NodeSortKey::Name,
    NodeSortKey::Driver,
    NodeSortKey::ProvisionState,
    NodeSortKey::PowerState,
    NodeSortKey::Maintenance,
    NodeSortKey::ResourceClass,
    NodeSortKey::ConductorGroup,
    NodeSortKey::Owner,
    NodeSortKey::Lessee,
    NodeSortKey::InstanceUuid,
    NodeSortKey::CreatedAt,
    NodeSortKey::UpdatedAt,
    NodeSortKey::ProvisionUpdatedAt,
];

async fn list_sorts_and_pages(store: Store) {
    // There are ties and NULLs to exercise the id tie-break, and mixed case
    // and spaces that locale-aware collations would order differently.
    let names = [
        Some("delta"),
        None,
        Some("alpha"),
        Some("Charlie"),
        None,
        Some("bravo x"),
        Some("bravo-a"),
    ];
    let mut all = Vec::new();
    for (i, name) in names.into_iter().enumerate() {
        let mut node = stored_node(&store, |n| {
            n.name = name.map(str::to_owned);
            n.driver = [HardwareType::Ipmi, HardwareType::Redfish][i % 2];
            n.provision_state =
                [ProvisionState::CleanWait, ProvisionState::Active, ProvisionState::Cleaning]
                    [i % 3];
            n.power_state = [None, Some(PowerState::On), Some(PowerState::Off)][i % 3];
            n.maintenance = i % 2 == 1;
            n.resource_class = ["gold", "silver"].get(i % 3).map(|s| (*s).to_owned());
            n.conductor_group = ["", "g1", "g2"][i % 3].into();
            n.owner = [Some("p1"), None][i % 2].map(str::to_owned);
            n.lessee = [None, Some("p2"), Some("p1")][i % 3].map(str::to_owned);
            n.instance_uuid = (i % 2 == 0).then(|| format!("instance-{}", 7 - i));
            n.provision_updated_at =
                (i % 3 != 0).then(|| Timestamp::now().plus_seconds(-(i as i64 % 2) * 60));
        })
        .await;
        if i % 2 == 0 {
            node = store.node_update(&node).await.expect("touch");
        }
        all.push(node);
    }
    let ids: BTreeSet<i64> = all.iter().map(|n| n.id).collect();

    for key in SORT_KEYS {
        for dir in [SortDir::Asc, SortDir::Desc] {
            let query = |limit, marker| NodeQuery {
                filters: NodeFilters::default(),
                sort_key: key,
                page: Page { limit, marker, sort_dir: dir },
            };
            let full = store.node_list(&query(None, None)).await.expect("list");
            assert_eq!(full.iter().map(|n| n.id).collect::<BTreeSet<_>>(), ids, "{key:?}");
            // Both backends compare text byte-wise (PostgreSQL columns are
            // COLLATE "C"), as Rust does.
            for pair in full.windows(2) {
                let left = (sort_value(&pair[0], key), pair[0].id);
                let right = (sort_value(&pair[1], key), pair[1].id);
                match dir {
                    SortDir::Asc => assert!(left < right, "{key:?} asc: {left:?} {right:?}"),
                    SortDir::Desc => assert!(left > right, "{key:?} desc: {left:?} {right:?}"),
                }
            }
            for limit in [1, 2, 3, 7, 10] {
                let mut walked = Vec::new();
                let mut marker = None;
                loop {
                    let page = store.node_list(&query(Some(limit), marker)).await.expect("page");
                    assert!(page.len() <= limit as usize);
                    let done = page.len() < limit as usize;
                    marker = page.last().map(|n| n.uuid);
                    walked.extend(page);
                    if done || marker.is_none() {
                        break;
                    }
                    assert!(walked.len() <= full.len(), "{key:?} {dir:?}: pages overlap");
                }
                assert_eq!(walked, full, "{key:?} {dir:?} limit {limit}");
            }
        }
    }

    // Filters and pagination together.
    let query = NodeQuery {
        filters: NodeFilters { maintenance: Some(false), ..NodeFilters::default() },
        sort_key: NodeSortKey::Name,
        page: Page { limit: Some(2), marker: None, sort_dir: SortDir::Asc },
    };
    let first = store.node_list(&query).await.expect("page 1");
    let names: Vec<_> = first.iter().map(|n| n.name.clone()).collect();
    assert_eq!(names, [None, Some("alpha".to_owned())]);
    let next =
        NodeQuery { page: Page { marker: Some(first[1].uuid), ..query.page.clone() }, ..query };
    let second = store.node_list(&next).await.expect("page 2");
    let names: Vec<_> = second.iter().map(|n| n.name.clone()).collect();
    assert_eq!(names, [Some("bravo-a".to_owned()), Some("delta".to_owned())]);
}

async fn unknown_marker_is_not_found(store: Store) {
    stored_node(&store, |_| {}).await;
    let missing = Uuid::new_v4();
    let query = NodeQuery {
        page: Page { limit: Some(5), marker: Some(missing), sort_dir: SortDir::Asc },
        ..NodeQuery::default()
    };
    match store.node_list(&query).await {
        Err(StoreError::NotFound { kind: "marker", ident }) => {
            assert_eq!(ident, missing.to_string())
        }
        other => panic!("expected marker NotFound, got {other:?}"),
    }
}

fn event(node: Uuid, text: &str) -> HistoryEvent {
    HistoryEvent {
        id: 0,
        uuid: Uuid::new_v4(),
        node_uuid: node,
        severity: Severity::Info,
        event: text.into(),
        event_type: "provisioning".into(),
        conductor: None,
        user: None,
        state: None,
        target_provision_state: None,
        duration_seconds: None,
        created_at: Timestamp::now(),
    }
}

async fn delete_cascades(store: Store) {
    let doomed = stored_node(&store, |_| {}).await;
    let kept = stored_node(&store, |_| {}).await;
    let portgroup = store
        .portgroup_create(&Portgroup::new(Uuid::new_v4(), doomed.uuid))
        .await
        .expect("portgroup");
    let mut in_group = Port::new(Uuid::new_v4(), "52:54:00:00:00:01".into(), doomed.uuid);
    in_group.portgroup_uuid = Some(portgroup.uuid);
    let in_group = store.port_create(&in_group).await.expect("port");
    let loose = store
        .port_create(&Port::new(Uuid::new_v4(), "52:54:00:00:00:02".into(), doomed.uuid))
        .await
        .expect("port");
    let other = store
        .port_create(&Port::new(Uuid::new_v4(), "52:54:00:00:00:03".into(), kept.uuid))
        .await
        .expect("port");
    store.history_add(&event(doomed.uuid, "one")).await.expect("history");
    store.history_add(&event(doomed.uuid, "two")).await.expect("history");
    let kept_event = store.history_add(&event(kept.uuid, "kept")).await.expect("history");

    store.node_delete(doomed.uuid).await.expect("delete");

    assert_not_found(store.node_get_by_uuid(doomed.uuid).await, "node");
    assert_not_found(store.port_get(in_group.uuid).await, "port");
    assert_not_found(store.port_get(loose.uuid).await, "port");
    assert_not_found(store.portgroup_get(&portgroup.uuid.to_string()).await, "portgroup");
    assert!(store.history_list(doomed.uuid, &Page::default()).await.expect("history").is_empty());
    assert_eq!(store.port_get(other.uuid).await.expect("other port"), other);
    assert_eq!(
        store.history_list(kept.uuid, &Page::default()).await.expect("history"),
        vec![kept_event]
    );
    assert_eq!(store.node_get_by_uuid(kept.uuid).await.expect("kept"), kept);
    assert_not_found(store.node_delete(doomed.uuid).await, "node");
}

async fn lookup_by_port_addresses(store: Store) {
    let a = stored_node(&store, |_| {}).await;
    let b = stored_node(&store, |_| {}).await;
    for (node, mac) in
        [(&a, "aa:00:00:00:00:01"), (&a, "aa:00:00:00:00:02"), (&b, "bb:00:00:00:00:01")]
    {
        store.port_create(&Port::new(Uuid::new_v4(), mac.into(), node.uuid)).await.expect("port");
    }
    let lookup = |macs: &[&str]| {
        let macs: Vec<String> = macs.iter().map(|m| (*m).to_owned()).collect();
        let store = store.clone();
        async move { store.node_by_port_addresses(&macs).await.expect("lookup") }
    };
    assert_eq!(lookup(&["aa:00:00:00:00:02"]).await, Some(a.clone()));
    assert_eq!(lookup(&["aa:00:00:00:00:01", "aa:00:00:00:00:02", "zz"]).await, Some(a.clone()));
    assert_eq!(lookup(&["bb:00:00:00:00:01"]).await, Some(b));
    assert_eq!(lookup(&["cc:00:00:00:00:01"]).await, None);
    assert_eq!(lookup(&[]).await, None);
    // Addresses of two different nodes: ambiguous.
    assert_eq!(lookup(&["aa:00:00:00:00:01", "bb:00:00:00:00:01"]).await, None);
}

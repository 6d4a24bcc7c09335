//! Node history.

use ferric_store::{Page, SortDir, Store};
use ferric_types::{HistoryEvent, ProvisionState, Severity, Timestamp};
use uuid::Uuid;

use crate::{assert_not_found, stored_node};

backend_tests!(history_add_list_get);

async fn history_add_list_get(store: Store) {
    let node = stored_node(&store, |_| {}).await;
    let other = stored_node(&store, |_| {}).await;
    let base = Timestamp::now().plus_seconds(-100);
    let mut events = Vec::new();
    // Added out of time order: listing is by created_at.
    for (i, offset) in [30, 10, 20, 10].into_iter().enumerate() {
        let event = HistoryEvent {
            id: 0,
            uuid: Uuid::new_v4(),
            node_uuid: node.uuid,
            severity: [Severity::Info, Severity::Warning, Severity::Error][i % 3],
            event: format!("event {i}"),
            event_type: "provisioning".into(),
            conductor: (i % 2 == 0).then(|| "conductor-1".to_owned()),
            user: (i % 2 == 1).then(|| "admin".to_owned()),
            state: (i % 2 == 0).then_some(ProvisionState::DeployFailed),
            target_provision_state: (i % 2 == 0).then_some(ProvisionState::Active),
            duration_seconds: (i != 3).then_some(0.1 + i as f64 / 3.0),
            created_at: base.plus_seconds(offset),
        };
        let stored = store.history_add(&event).await.expect("add");
        assert!(stored.id > 0);
        assert_eq!(stored, HistoryEvent { id: stored.id, ..event });
        events.push(stored);
    }
    store
        .history_add(&HistoryEvent {
            uuid: Uuid::new_v4(),
            node_uuid: other.uuid,
            ..events[0].clone()
        })
        .await
        .expect("other node");

    // Oldest first; ties in time by insertion.
    let expected = vec![events[1].clone(), events[3].clone(), events[2].clone(), events[0].clone()];
    assert_eq!(store.history_list(node.uuid, &Page::default()).await.expect("list"), expected);
    let desc = Page { sort_dir: SortDir::Desc, ..Page::default() };
    let mut reversed = expected.clone();
    reversed.reverse();
    assert_eq!(store.history_list(node.uuid, &desc).await.expect("list"), reversed);

    let page = Page { limit: Some(2), marker: Some(expected[0].uuid), sort_dir: SortDir::Asc };
    assert_eq!(store.history_list(node.uuid, &page).await.expect("page"), expected[1..3]);
    let page = Page { limit: Some(2), marker: Some(expected[2].uuid), sort_dir: SortDir::Asc };
    assert_eq!(store.history_list(node.uuid, &page).await.expect("page"), expected[3..]);

    assert_eq!(store.history_get(node.uuid, events[2].uuid).await.expect("get"), events[2]);
    assert_not_found(store.history_get(other.uuid, events[2].uuid).await, "history event");
    assert_not_found(store.history_get(node.uuid, Uuid::new_v4()).await, "history event");

    // History of a node that does not exist.
    let orphan =
        HistoryEvent { uuid: Uuid::new_v4(), node_uuid: Uuid::new_v4(), ..events[0].clone() };
    assert_not_found(store.history_add(&orphan).await, "node");
}

//! Node inventories recorded by inspection.

use ferric_store::{Store, StoreError};
use serde_json::json;

use crate::stored_node;

backend_tests!(inventory_put_replace_get_and_delete_with_node, plugin_data_set_keeps_the_inventory);

async fn inventory_put_replace_get_and_delete_with_node(store: Store) {
    let node = stored_node(&store, |_| {}).await;
    assert_eq!(store.node_inventory_get(node.uuid).await.expect("get"), None);
    let first = json!({"cpu": {"count": 2}, "interfaces": [{"mac_address": "52:54:00:00:00:01"}]});
    store.node_inventory_put(node.uuid, &first, &json!({})).await.expect("put");
    let second = json!({"cpu": {"count": 4}, "memory": {"physical_mb": 8192}});
    store
        .node_inventory_put(node.uuid, &second, &json!({"source": "agent"}))
        .await
        .expect("replace");
    let stored = store.node_inventory_get(node.uuid).await.expect("get").expect("recorded");
    assert_eq!(stored.inventory, second);
    assert_eq!(stored.plugin_data, json!({"source": "agent"}));
    store.node_delete(node.uuid).await.expect("delete node with an inventory");
    assert_eq!(store.node_inventory_get(node.uuid).await.expect("get"), None);
}

async fn plugin_data_set_keeps_the_inventory(store: Store) {
    let node = stored_node(&store, |_| {}).await;
    let missing = store.node_plugin_data_set(node.uuid, &json!({"a": 1})).await;
    assert!(matches!(missing, Err(StoreError::NotFound { .. })), "{missing:?}");
    let inventory = json!({"cpu": {"count": 2}});
    store
        .node_inventory_put(node.uuid, &inventory, &json!({"source": "agent"}))
        .await
        .expect("put");
    store
        .node_plugin_data_set(node.uuid, &json!({"source": "agent", "rack": "r1"}))
        .await
        .expect("set");
    let stored = store.node_inventory_get(node.uuid).await.expect("get").expect("recorded");
    assert_eq!(stored.inventory, inventory);
    assert_eq!(stored.plugin_data, json!({"source": "agent", "rack": "r1"}));
}

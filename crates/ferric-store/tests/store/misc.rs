//! Connecting, and what the store does with values it cannot decode.

use ferric_store::testing::{self, TempDatabase};
use ferric_store::{NodeIdent, NodeQuery, Store, StoreError};
use sqlx::Connection;

use ferric_types::Port;
use uuid::Uuid;

use crate::{assert_duplicate, assert_not_found, new_node, stored_node};

#[tokio::test]
async fn sqlite_memory_keeps_one_database() {
    let store = Store::connect("sqlite::memory:").await.expect("connect");
    assert_eq!(store.backend_name(), "sqlite");
    let node = stored_node(&store, |n| n.name = Some("mem".into())).await;
    // Many calls, one database.
    for _ in 0..5 {
        assert_eq!(store.node_get(&NodeIdent::parse("mem")).await.expect("get"), node);
    }
    // Explaining a failed write needs a second query on the one connection.
    let mut twin = new_node();
    twin.name = Some("mem".into());
    assert_duplicate(store.node_create(&twin).await, "node", "name", "mem");
    let orphan = Port::new(Uuid::new_v4(), "52:54:00:00:00:01".into(), Uuid::new_v4());
    assert_not_found(store.port_create(&orphan).await, "node");
    store.close().await;
}

#[tokio::test]
async fn sqlite_file_is_created_in_wal_mode() {
    let db = testing::fresh_sqlite();
    let store = Store::connect(db.url()).await.expect("connect");
    stored_node(&store, |_| {}).await;
    let mut conn = sqlx::SqliteConnection::connect(db.url()).await.expect("raw connect");
    let (mode,): (String,) =
        sqlx::query_as("PRAGMA journal_mode").fetch_one(&mut conn).await.expect("pragma");
    assert_eq!(mode, "wal");
    conn.close().await.expect("close");
    // Reopening sees the data and re-running migrations is a no-op.
    store.close().await;
    let store = Store::connect(db.url()).await.expect("reconnect");
    assert_eq!(store.node_list(&NodeQuery::default()).await.expect("list").len(), 1);
    store.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    for url in ["mysql://localhost/ironic", "ironic.db", ""] {
        match Store::connect(url).await {
            Err(StoreError::UnsupportedUrl(got)) => assert_eq!(got, url),
            Err(other) => panic!("{url}: expected UnsupportedUrl, got {other:?}"),
            Ok(_) => panic!("{url}: expected UnsupportedUrl, got a store"),
        }
    }
}

#[tokio::test]
async fn postgres_is_named() {
    if let Some(db) = testing::fresh_postgres().await {
        let store = Store::connect(db.url()).await.expect("connect");
        assert_eq!(store.backend_name(), "postgres");
        store.close().await;
        db.cleanup().await;
    }
}

/// Corrupts one column of a stored node behind the store's back, then reads.
async fn corrupt_values_are_reported(db: TempDatabase) {
    let store = Store::connect(db.url()).await.expect("connect");
    for (column, value) in [
        ("provision_state", "'sleeping'"),
        ("driver", "'abacus'"),
        ("extra", "'{not json'"),
        ("traits", "'{\"an\": \"object\"}'"),
        ("pending_action", "'{\"kind\": \"dance\"}'"),
        ("boot_interface", "'warp'"),
        ("created_at", "'yesterday'"),
    ] {
        let node = store.node_create(&new_node()).await.expect("create");
        let sql = format!("UPDATE nodes SET {column} = {value} WHERE id = {}", node.id);
        raw_execute(db.url(), &sql).await;
        match store.node_get_by_uuid(node.uuid).await {
            Err(StoreError::Corrupt { what, detail }) => {
                assert!(what.starts_with("node "), "{column}: {what}: {detail}");
            }
            other => panic!("{column}: expected Corrupt, got {other:?}"),
        }
        store.node_delete(node.uuid).await.expect("delete");
    }
    store.close().await;
    db.cleanup().await;
}

async fn raw_execute(url: &str, sql: &str) {
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.expect("raw connect");
        sqlx::query(sql).execute(&mut conn).await.expect("raw update");
        conn.close().await.expect("close");
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.expect("raw connect");
        sqlx::query(sql).execute(&mut conn).await.expect("raw update");
        conn.close().await.expect("close");
    }
}

mod sqlite {
    #[tokio::test]
    async fn corrupt_values_are_reported() {
        super::corrupt_values_are_reported(ferric_store::testing::fresh_sqlite()).await;
    }
}

mod postgres {
    #[tokio::test]
    async fn corrupt_values_are_reported() {
        if let Some(db) = ferric_store::testing::fresh_postgres().await {
            super::corrupt_values_are_reported(db).await;
        }
    }
}

/// The API serves requests on a multi-threaded runtime: every store future
/// must be `Send`.
#[allow(dead_code, clippy::let_underscore_future)]
fn store_futures_are_send(store: &Store) {
    fn send<T: Send>(_: T) {}
    let node = new_node();
    send(store.node_create(&node));
    send(store.node_update(&node));
    send(store.node_list(&NodeQuery::default()));
    send(store.node_delete(node.uuid));
    send(store.conductor_register("h", "", &[]));
    send(store.hardware_interfaces());
    send(store.node_by_port_addresses(&[]));
}

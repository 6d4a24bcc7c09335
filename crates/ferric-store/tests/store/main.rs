//! Integration tests of the store. Each scenario is an `async fn(Store)` run
//! twice, as `<module>::sqlite::<name>` and `<module>::postgres::<name>`,
//! each time on a fresh database (see `ferric_store::testing`).

use std::future::Future;

use ferric_store::testing::{self, TempDatabase};
use ferric_store::{Store, StoreError};
use ferric_types::{HardwareType, Node, ProvisionState};
use uuid::Uuid;

/// Declares a SQLite and a PostgreSQL test for each scenario named.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    crate::on_sqlite(super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    crate::on_postgres(super::$name).await;
                }
            )*
        }
    };
}

mod conductors;
mod dhcp;
mod history;
mod inventory;
mod misc;
mod nodes;
mod ports;

/// Runs `test` on a store over a fresh SQLite file.
pub async fn on_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    run(testing::fresh_sqlite(), test).await;
}

/// Runs `test` on a store over a fresh PostgreSQL database (skipped, with a
/// message, if there is no server and not in CI).
pub async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    if let Some(db) = testing::fresh_postgres().await {
        run(db, test).await;
    }
}

/// Runs the test as a task (so its futures must be `Send`, as the API's
/// are), then removes the database even if the test panicked.
async fn run<F, Fut>(db: TempDatabase, test: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let store = Store::connect(db.url()).await.expect("connect");
    let outcome = tokio::spawn(test(store.clone())).await;
    store.close().await;
    db.cleanup().await;
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

/// A fresh enrolled fake-hardware node (not stored).
pub fn new_node() -> Node {
    Node::new(Uuid::new_v4(), HardwareType::FakeHardware, ProvisionState::Enroll)
}

/// A stored node built by `edit`.
pub async fn stored_node(store: &Store, edit: impl FnOnce(&mut Node)) -> Node {
    let mut node = new_node();
    edit(&mut node);
    store.node_create(&node).await.expect("node_create")
}

#[track_caller]
pub fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, expected_kind: &str) {
    match result {
        Err(StoreError::NotFound { kind, .. }) if kind == expected_kind => {}
        other => panic!("expected {expected_kind} NotFound, got {other:?}"),
    }
}

#[track_caller]
pub fn assert_duplicate<T: std::fmt::Debug>(
    result: Result<T, StoreError>,
    expected_kind: &str,
    expected_field: &str,
    expected_value: &str,
) {
    match result {
        Err(StoreError::Duplicate { kind, field, value })
            if kind == expected_kind && field == expected_field && value == expected_value => {}
        other => panic!(
            "expected {expected_kind} Duplicate on {expected_field}={expected_value}, got {other:?}"
        ),
    }
}

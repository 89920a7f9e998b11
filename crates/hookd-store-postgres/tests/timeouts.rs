//! `statement_timeout` from [`PgOptions`]: a statement stuck behind another session's lock is
//! cancelled and reported as `Unavailable` (the API answers 503 with `Retry-After`), and the
//! store serves again once the lock is gone. Needs `HOOKD_TEST_DATABASE_URL`, like the
//! conformance tests.

use std::time::Duration;

use hookd_core::store::{Page, Store, StoreError};
use hookd_store_postgres::{testing, PgOptions, PgStore};
use hookd_store_sql::secrets::Keys;
use sqlx::{Connection, PgConnection};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_stuck_behind_a_lock_is_cut_off_and_the_store_recovers() {
    let Some(base) = testing::test_database_url("the PostgreSQL timeout test") else {
        return;
    };
    let suffix = format!("{:016x}", rand::random::<u64>());
    let url = testing::fresh_schema_url(&base, &suffix).await.unwrap();
    let options = PgOptions {
        statement_timeout: Some(Duration::from_secs(1)),
        ..PgOptions::default()
    };
    let store = PgStore::connect_with(&url, options, Keys::ephemeral())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let page = Page {
        limit: 10,
        before: None,
    };

    let mut locker = PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("LOCK TABLE webhooks IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    // The guard only keeps a broken timeout from hanging the suite.
    let stuck = tokio::time::timeout(Duration::from_secs(30), store.list_webhooks(&page))
        .await
        .expect("the statement timeout ends the statement");
    match stuck {
        Err(StoreError::Unavailable(why)) => assert!(why.contains("statement timeout"), "{why}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }

    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    assert_eq!(store.list_webhooks(&page).await.unwrap(), vec![]);
    store.close().await;
    testing::drop_schema(&base, &format!("hookd_test_{suffix}"))
        .await
        .unwrap();
}

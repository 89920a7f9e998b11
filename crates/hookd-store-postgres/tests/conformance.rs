//! Runs hookd-core's `Store` conformance suite against PostgreSQL, each case in a new schema of
//! the database named by `HOOKD_TEST_DATABASE_URL` (for example
//! `postgres://postgres@127.0.0.1:5432/test`). Without that variable every case says it was
//! skipped and passes, so the workspace's tests run on machines without PostgreSQL.

use async_trait::async_trait;
use hookd_core::conformance::TestDatabase;
use hookd_core::store::{Store, Work};
use hookd_store_postgres::{testing, PgStore};
use hookd_store_sql::secrets::{Keys, MasterKey};
use sqlx::postgres::{PgPool, PgPoolOptions};

/// A schema of its own, dropped after a passing case.
struct Schema {
    admin: PgPool,
    base_url: String,
    name: String,
    /// The master key every opening seals with, as a deployment's processes share one.
    key: String,
}

async fn fresh() -> Option<Schema> {
    let base_url = testing::test_database_url("the PostgreSQL conformance case")?;
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&base_url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to HOOKD_TEST_DATABASE_URL: {e}"));
    let name = format!("hookd_test_{:016x}", rand::random::<u64>());
    sqlx::query(&format!("CREATE SCHEMA {name}"))
        .execute(&admin)
        .await
        .expect("create the test schema");
    Some(Schema {
        admin,
        base_url,
        name,
        key: MasterKey::generate_text(),
    })
}

#[async_trait]
impl TestDatabase for Schema {
    /// Connects with `search_path` set to the case's schema, as a deployment would.
    async fn open(&self) -> Box<dyn Store> {
        let url = testing::with_search_path(&self.base_url, &self.name);
        let keys = Keys::new(MasterKey::parse(&self.key).expect("key"), Vec::new());
        Box::new(
            PgStore::connect(&url, keys)
                .await
                .expect("connect to PostgreSQL"),
        )
    }

    async fn remove(&self) {
        let drop_schema = format!("DROP SCHEMA {} CASCADE", self.name);
        let _ = sqlx::query(&drop_schema).execute(&self.admin).await;
    }
}

hookd_core::conformance_tests!(fresh());

/// PostgreSQL's notifications say what was queued: a publish wakes other workers' first-attempt
/// lanes only, a queued execution their execution runners only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_ups_name_the_work_queued() {
    use hookd_core::conformance::{self as c, TestDatabase as _};
    for case in [Work::FIRST, Work::EXECUTIONS] {
        let Some(db) = fresh().await else { return };
        let (store, other) = (db.open().await, db.open().await);
        let work = if case == Work::FIRST {
            c::wait_for_work_wakes_when_another_handle_enqueues(&*store, &*other).await
        } else {
            c::wait_for_work_wakes_when_another_handle_queues_an_execution(&*store, &*other).await
        };
        assert_eq!(work, case);
        drop((store, other));
        db.remove().await;
    }
}

/// A publish names the webhooks it queued first attempts for: a worker that owns none of them
/// is not woken to look ([`hookd_core::share`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_ups_for_another_workers_webhooks_name_no_work() {
    use hookd_core::conformance::{self as c, TestDatabase as _};
    let Some(db) = fresh().await else { return };
    let (store, other) = (db.open().await, db.open().await);
    let work = c::a_wake_up_for_another_workers_webhooks(&*store, &*other).await;
    assert_eq!(work, Work::ELSEWHERE, "nothing of its own was queued");
    drop((store, other));
    db.remove().await;
}

/// A publish for more webhooks than a notification can name says so (`first`): every worker
/// looks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_ups_for_too_many_webhooks_to_name_are_for_every_worker() {
    use hookd_core::conformance::{self as c, TestDatabase as _};
    let Some(db) = fresh().await else { return };
    let (store, other) = (db.open().await, db.open().await);
    let work = c::a_wake_up_for_too_many_webhooks_to_name(&*store, &*other).await;
    assert_eq!(work, Work::FIRST);
    drop((store, other));
    db.remove().await;
}

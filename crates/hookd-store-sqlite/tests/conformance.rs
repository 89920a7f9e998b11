//! Runs hookd-core's `Store` conformance suite against SQLite, each case on a new file in the
//! system temp directory.

use std::path::PathBuf;

use async_trait::async_trait;
use hookd_core::conformance::TestDatabase;
use hookd_core::store::Store;
use hookd_store_sql::secrets::{Keys, MasterKey};
use hookd_store_sqlite::SqliteStore;

/// A database file of its own; removed with its WAL and shared-memory files after a passing case.
struct TempFile {
    path: PathBuf,
    /// The master key every opening seals with, as a deployment's processes share one.
    key: String,
}

impl TempFile {
    fn keys(&self) -> Keys {
        Keys::new(MasterKey::parse(&self.key).expect("key"), Vec::new())
    }
}

async fn fresh() -> Option<TempFile> {
    let name = format!("hookd-conformance-{:016x}.db", rand::random::<u64>());
    Some(TempFile {
        path: std::env::temp_dir().join(name),
        key: MasterKey::generate_text(),
    })
}

#[async_trait]
impl TestDatabase for TempFile {
    async fn open(&self) -> Box<dyn Store> {
        let url = format!("sqlite://{}", self.path.display());
        Box::new(
            SqliteStore::connect(&url, self.keys())
                .await
                .expect("open the SQLite file"),
        )
    }

    async fn remove(&self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

hookd_core::conformance_tests!(fresh());

/// Processes started together on a new file (`serve` and workers on a fresh volume) all open
/// and migrate it: switching the file to WAL can fail with `SQLITE_BUSY` without a retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_opening_a_new_file_together_all_succeed() {
    for _ in 0..10 {
        let db = fresh().await.expect("a temp file");
        let url = format!("sqlite://{}", db.path.display());
        let mut opening = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let (url, keys) = (url.clone(), db.keys());
            opening.spawn(async move {
                let store = SqliteStore::connect(&url, keys).await?;
                store.migrate().await
            });
        }
        while let Some(opened) = opening.join_next().await {
            opened.expect("task").expect("open and migrate");
        }
        db.remove().await;
    }
}

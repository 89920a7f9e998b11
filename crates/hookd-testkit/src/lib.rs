//! What hookd's integration tests share: the database a test runs on ([`Backend`]), a fresh
//! database of it that is removed when the test ends ([`TempDb`]), and [`backend_test!`], which
//! runs one test body on SQLite and on PostgreSQL.
//!
//! PostgreSQL runs when `HOOKD_TEST_DATABASE_URL` names a database the tests may create schemas
//! in; `HOOKD_TEST_POSTGRES=required` makes its absence a failure instead of a skip.

use std::path::PathBuf;
use std::time::Duration;

/// Which database a test runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    /// The database `HOOKD_TEST_DATABASE_URL` names; each test makes a schema in it.
    Postgres(String),
}

impl Backend {
    /// PostgreSQL when `HOOKD_TEST_DATABASE_URL` is set (see [`hookd_store_postgres::testing`]).
    pub fn postgres() -> Option<Self> {
        hookd_store_postgres::testing::test_database_url("the PostgreSQL case").map(Self::Postgres)
    }

    /// The URL of a fresh, empty database on this backend (a new SQLite file, or a new
    /// PostgreSQL schema), and the guard that removes it at the end of the test.
    pub async fn fresh_db(&self) -> (String, Option<TempDb>) {
        let suffix = random_suffix();
        match self {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("hookd-test-{suffix}.db"));
                let url = format!("sqlite://{}", path.display());
                (url, Some(TempDb::File(path)))
            }
            Backend::Postgres(base) => {
                let url = hookd_store_postgres::testing::fresh_schema_url(base, &suffix)
                    .await
                    .expect("a fresh PostgreSQL schema");
                let schema = TempDb::Schema {
                    base: base.clone(),
                    name: format!("hookd_test_{suffix}"),
                };
                (url, Some(schema))
            }
        }
    }
}

/// A test's database, removed when dropped: a SQLite file with its WAL files and the key file
/// hookd makes beside it, or a PostgreSQL schema with everything in it.
#[derive(Debug)]
pub enum TempDb {
    File(PathBuf),
    Schema { base: String, name: String },
}

impl TempDb {
    /// A SQLite file made by the test itself.
    pub fn new(path: PathBuf) -> Self {
        Self::File(path)
    }

    /// The key file hookd makes beside a SQLite database when no key is configured.
    pub fn key_file(&self) -> PathBuf {
        match self {
            Self::File(path) => PathBuf::from(format!("{}.key", path.display())),
            Self::Schema { .. } => panic!("a PostgreSQL schema has no key file"),
        }
    }
}

/// How long dropping a schema waits for a lock a store still running at the test's end holds.
const DROP_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

impl Drop for TempDb {
    fn drop(&mut self) {
        match self {
            Self::File(path) => {
                for ext in ["", "-wal", "-shm", ".key"] {
                    let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
                }
            }
            Self::Schema { base, name } => {
                // Drop runs inside the test's runtime, which cannot be blocked on: the schema is
                // dropped from a thread with a runtime of its own, and the test waits for it.
                let (base, name) = (base.clone(), name.clone());
                let dropped = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime to drop the test schema");
                    runtime.block_on(hookd_store_postgres::testing::drop_schema_within(
                        &base,
                        &name,
                        DROP_LOCK_TIMEOUT,
                    ))
                })
                .join();
                match dropped {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => eprintln!("the test schema was not dropped: {e}"),
                    Err(_) => eprintln!("dropping the test schema panicked"),
                }
            }
        }
    }
}

/// 16 random hex digits, for names no other test picks.
pub fn random_suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Runs one test body, an `async fn(Backend)`, as two tests: on SQLite, and on PostgreSQL when
/// `HOOKD_TEST_DATABASE_URL` is set.
#[macro_export]
macro_rules! backend_test {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::Backend::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(b) = $crate::Backend::postgres() {
                    super::$name(b).await
                }
            }
        }
    };
}

//! The migration runner keeps a checksum of every migration it applied, and refuses to start on
//! a database whose applied migrations differ from this build's.

use std::sync::Arc;

use hookd_core::Store;
use hookd_store_sql::secrets::{Keys, MasterKey};
use sqlx::Connection as _;

use crate::backend_test;
use crate::support::Backend;

/// The one master key of these tests (every start must open the secrets sealed before).
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn keys() -> Keys {
    Keys::new(MasterKey::parse(KEY).unwrap(), Vec::new())
}

/// Opens and migrates a store on `url`.
async fn open(b: &Backend, url: &str) -> Result<Arc<dyn Store>, String> {
    let store: Arc<dyn Store> = match b {
        Backend::Sqlite => Arc::new(
            hookd_store_sqlite::SqliteStore::connect(url, keys())
                .await
                .map_err(|e| e.to_string())?,
        ),
        Backend::Postgres(_) => Arc::new(
            hookd_store_postgres::PgStore::connect(url, keys())
                .await
                .map_err(|e| e.to_string())?,
        ),
    };
    store.migrate().await.map_err(|e| e.to_string())?;
    Ok(store)
}

/// Runs `sql` on the database directly.
async fn execute(b: &Backend, url: &str, sql: &str) {
    match b {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        }
        Backend::Postgres(_) => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        }
    }
}

/// The recorded `(version, checksum)` rows, in order.
async fn recorded(b: &Backend, url: &str) -> Vec<(i64, Option<String>)> {
    let sql = "SELECT version, checksum FROM hookd_migrations ORDER BY version";
    match b {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap()
        }
        Backend::Postgres(_) => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap()
        }
    }
}

backend_test!(an_applied_migration_that_changed_stops_the_start_naming_its_version);
async fn an_applied_migration_that_changed_stops_the_start_naming_its_version(b: Backend) {
    let (url, _temp) = b.fresh_db().await;
    drop(open(&b, &url).await.expect("a fresh database migrates"));
    let first = recorded(&b, &url).await;
    assert!(first.len() >= 6, "{first:?}");
    assert!(
        first
            .iter()
            .all(|(_, c)| c.as_ref().is_some_and(|c| c.len() == 64)),
        "every migration has its SHA-256: {first:?}"
    );
    // Opening again checks them and changes nothing.
    drop(open(&b, &url).await.expect("a second start"));
    assert_eq!(recorded(&b, &url).await, first);

    // As if migration 2 had been edited after it was applied.
    execute(
        &b,
        &url,
        "UPDATE hookd_migrations SET checksum = 'edited' WHERE version = 2",
    )
    .await;
    let error = match open(&b, &url).await {
        Ok(_) => panic!("a changed migration was accepted"),
        Err(e) => e,
    };
    assert!(
        error.contains("migration 2 differs") && error.contains("edited"),
        "{error}"
    );

    // A database migrated before checksums were kept: the column is added and filled.
    let drop_column = "ALTER TABLE hookd_migrations DROP COLUMN checksum";
    execute(&b, &url, drop_column).await;
    drop(
        open(&b, &url)
            .await
            .expect("a database from before checksums"),
    );
    assert_eq!(recorded(&b, &url).await, first);
}

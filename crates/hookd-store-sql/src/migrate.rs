//! The schema migration runner, once the backend holds a transaction that keeps other
//! processes from migrating at the same time (how it does that is the backend's business).

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

/// Applies, in order, the `(version, SQL)` migrations not yet recorded in `hookd_migrations`,
/// recording each with the SHA-256 of its SQL. `create_table` creates `hookd_migrations
/// (version, applied_at, checksum)` if missing, with the dialect's integer types (a table made
/// before checksums has had its `checksum` column added by the backend); `backend` names the
/// database in the log and in errors.
///
/// A migration already applied must be the one this build holds: a recorded checksum that
/// differs (its file was edited after release) stops the start with [`Drift`]. Versions recorded
/// before checksums were kept get this build's checksum. A recorded version this build does not
/// know (a newer hookd migrated the database) is logged and left alone.
pub async fn apply<DB>(
    conn: &mut DB::Connection,
    create_table: &str,
    migrations: &[(i64, &str)],
    backend: &str,
    now_ms: i64,
) -> sqlx::Result<()>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    i64: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<String>: for<'r> Decode<'r, DB>,
    &'static str: ColumnIndex<DB::Row>,
{
    conn.execute(sqlx::raw_sql(create_table)).await?;
    let applied: Vec<(i64, Option<String>)> =
        sqlx::query("SELECT version, checksum FROM hookd_migrations")
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| Ok((row.try_get("version")?, row.try_get("checksum")?)))
            .collect::<sqlx::Result<_>>()?;
    for (version, recorded) in &applied {
        let Some((_, sql)) = migrations.iter().find(|(v, _)| v == version) else {
            tracing::warn!(
                version,
                "the database holds a {backend} migration this hookd does not know: a newer \
                 hookd migrated it"
            );
            continue;
        };
        let checksum = checksum(sql);
        match recorded {
            Some(recorded) if *recorded == checksum => {}
            Some(recorded) => {
                return Err(sqlx::Error::Protocol(
                    Drift {
                        backend: backend.to_owned(),
                        version: *version,
                        recorded: recorded.clone(),
                        built: checksum,
                    }
                    .to_string(),
                ))
            }
            None => {
                sqlx::query("UPDATE hookd_migrations SET checksum = $1 WHERE version = $2")
                    .bind(checksum)
                    .bind(*version)
                    .execute(&mut *conn)
                    .await?;
            }
        }
    }
    for (version, sql) in migrations {
        if applied.iter().any(|(v, _)| v == version) {
            continue;
        }
        tracing::info!(version, "applying {backend} migration");
        conn.execute(sqlx::raw_sql(sql)).await?;
        sqlx::query(
            "INSERT INTO hookd_migrations (version, applied_at, checksum) VALUES ($1, $2, $3)",
        )
        .bind(version)
        .bind(now_ms)
        .bind(checksum(sql))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// A migration applied to the database differs from the one of the same version in this build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{backend} migration {version} differs from the one applied to this database (checksum \
     {built} in this build, {recorded} applied): released migrations must never change; run \
     the hookd that applied it, or restore its migration file"
)]
pub struct Drift {
    pub backend: String,
    pub version: i64,
    pub recorded: String,
    pub built: String,
}

/// The SHA-256 of a migration's SQL, in hex.
pub fn checksum(sql: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(sql.as_bytes()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_checksum_is_the_sha256_of_the_sql() {
        assert_eq!(
            super::checksum(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}

//! Waking workers with LISTEN/NOTIFY: writes that queue pending deliveries `pg_notify` the
//! store's channel in their transaction (delivered at commit); [`Waker::wait`] listens on it.
//!
//! The channel name includes the current schema, so installations (or parallel tests) in
//! different schemas of one database do not wake each other.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Row};
use tokio::sync::Mutex;
use tokio::time::{sleep_until, timeout_at, Instant};

/// How long to wait for the listening connection before sleeping instead.
const LISTENER_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// `hookd_work_<schema>`, or `hookd_work_<md5 of schema>` when that would exceed PostgreSQL's
/// 63-byte identifier limit.
pub(crate) async fn channel_name(pool: &PgPool) -> sqlx::Result<String> {
    sqlx::query(
        "SELECT 'hookd_work_' || CASE WHEN octet_length(s) <= 52 THEN s ELSE md5(s) END AS channel
         FROM (SELECT coalesce(current_schema(), '') AS s) AS schema",
    )
    .fetch_one(pool)
    .await?
    .try_get("channel")
}

/// Queues a notification on `channel`; PostgreSQL sends it when the transaction commits.
pub(crate) async fn notify(conn: &mut PgConnection, channel: &str) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(channel)
        .execute(conn)
        .await?;
    Ok(())
}

/// The listening side: one connection, opened on first use, dropped on error.
#[derive(Debug)]
pub(crate) struct Waker {
    options: PgConnectOptions,
    channel: String,
    listener: Mutex<Option<PgListener>>,
}

impl Waker {
    pub(crate) fn new(options: PgConnectOptions, channel: String) -> Self {
        Self {
            options,
            channel,
            listener: Mutex::new(None),
        }
    }

    /// Returns on the first notification (one sent since the previous wait counts), when the
    /// listening connection had to be re-established (notifications may have been lost), or at
    /// `max_wait`. Without a working listener it sleeps out `max_wait`.
    pub(crate) async fn wait(&self, max_wait: Duration) {
        let deadline = Instant::now() + max_wait;
        let Ok(mut slot) = timeout_at(deadline, self.listener.lock()).await else {
            return;
        };
        if slot.is_none() {
            match self.listen().await {
                Ok(listener) => *slot = Some(listener),
                Err(e) => {
                    drop(slot);
                    return give_up(e, deadline).await;
                }
            }
        }
        let listener = slot.as_mut().expect("set above");
        if let Ok(Err(e)) = timeout_at(deadline, listener.try_recv()).await {
            *slot = None;
            drop(slot);
            give_up(e, deadline).await;
        }
    }

    async fn listen(&self) -> sqlx::Result<PgListener> {
        // A pool of its own, so the listening connection does not take one of the store's.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(LISTENER_CONNECT_TIMEOUT)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(self.options.clone());
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(&self.channel).await?;
        Ok(listener)
    }
}

async fn give_up(e: sqlx::Error, deadline: Instant) {
    tracing::warn!(error = %e, "cannot LISTEN for new deliveries; sleeping instead");
    sleep_until(deadline).await;
}

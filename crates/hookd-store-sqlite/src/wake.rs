//! Waking workers when another process commits to the file.
//!
//! SQLite has no notifications between processes. `PRAGMA data_version` on a connection changes
//! whenever a *different* connection commits to the file, never for its own commits, and
//! reading it touches no disk. It is read on the store's writer connection, which makes every
//! write of this process: so only other processes' commits wake a waiter, and this process's own
//! publishes (which wake its worker directly) do not wake it a second time. The last value seen
//! is kept between calls: a commit made while nobody was waiting still wakes the next waiter, so
//! work queued between a worker's last claim and its next wait is not slept through. When the
//! writer connection is replaced, the value changes once (a spurious wake, harmless).

use std::time::Duration;

use sqlx::{Row, SqlitePool};
use tokio::sync::Mutex;
use tokio::time::{sleep, sleep_until, timeout_at, Instant};

/// How often the change counter is read: cheap (no IO), and short next to a delivery's latency.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The writer pool and the value it last showed.
#[derive(Debug)]
pub(crate) struct Watcher {
    writer: SqlitePool,
    last_seen: Mutex<Option<i64>>,
}

impl Watcher {
    pub(crate) fn new(writer: SqlitePool) -> Self {
        Self {
            writer,
            last_seen: Mutex::new(None),
        }
    }

    /// Returns once another process has committed since the last value seen, or at the
    /// deadline. Falls back to sleeping out `max_wait` when the file cannot be watched.
    pub(crate) async fn wait(&self, max_wait: Duration) {
        let deadline = Instant::now() + max_wait;
        let seen = *self.last_seen.lock().await;
        let baseline = match seen {
            Some(v) => v,
            None => match self.read(deadline).await {
                Ok(Some(v)) => v,
                Ok(None) => return,
                Err(e) => return give_up(e, deadline).await,
            },
        };
        loop {
            match self.read(deadline).await {
                Ok(Some(v)) if v != baseline => return,
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(e) => return give_up(e, deadline).await,
            }
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            sleep(POLL_INTERVAL.min(deadline - now)).await;
        }
    }

    /// The current value, remembered as seen; `None` when the writer stayed busy until the
    /// deadline.
    async fn read(&self, deadline: Instant) -> sqlx::Result<Option<i64>> {
        let read = sqlx::query("PRAGMA data_version").fetch_one(&self.writer);
        let Ok(row) = timeout_at(deadline, read).await else {
            return Ok(None);
        };
        let v: i64 = row?.try_get(0)?;
        *self.last_seen.lock().await = Some(v);
        Ok(Some(v))
    }
}

async fn give_up(e: sqlx::Error, deadline: Instant) {
    tracing::warn!(error = %e, "cannot watch the SQLite file for changes; sleeping instead");
    sleep_until(deadline).await;
}

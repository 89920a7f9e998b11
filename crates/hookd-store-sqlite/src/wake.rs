//! Waking workers when another connection commits, usually another process sharing the file.
//!
//! SQLite has no notifications between processes. `PRAGMA data_version` on a connection changes
//! whenever a *different* connection commits to the file, and reading it touches no disk, so one
//! dedicated connection polls it. The last value seen is kept between calls: a commit made while
//! nobody was waiting still wakes the next waiter, so work queued between a worker's last claim
//! and its next wait is not slept through. Commits from this process's writer pool count too
//! (a spurious wake now and then is harmless).

use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Row};
use tokio::sync::Mutex;
use tokio::time::{sleep, sleep_until, Instant};

/// How often the change counter is read: cheap (no IO), and short next to a delivery's latency.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The dedicated connection and what it last saw; created on first use, dropped on error.
#[derive(Debug)]
pub(crate) struct Watcher {
    options: SqliteConnectOptions,
    state: Mutex<Option<Watch>>,
}

#[derive(Debug)]
struct Watch {
    conn: SqliteConnection,
    last_seen: i64,
}

impl Watcher {
    pub(crate) fn new(options: SqliteConnectOptions) -> Self {
        Self {
            options,
            state: Mutex::new(None),
        }
    }

    /// Returns once another connection has committed since the last value seen, or at the
    /// deadline. Falls back to sleeping out `max_wait` when the file cannot be watched.
    pub(crate) async fn wait(&self, max_wait: Duration) {
        let deadline = Instant::now() + max_wait;
        let baseline = match self.last_seen().await {
            Ok(v) => v,
            Err(e) => return self.give_up(e, deadline).await,
        };
        loop {
            match self.read().await {
                Ok(v) if v != baseline => return,
                Ok(_) => {}
                Err(e) => return self.give_up(e, deadline).await,
            }
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            sleep(POLL_INTERVAL.min(deadline - now)).await;
        }
    }

    /// The value to compare against: the last one seen, or the current one on a new connection.
    async fn last_seen(&self) -> sqlx::Result<i64> {
        let mut state = self.state.lock().await;
        Ok(watch(&mut state, &self.options).await?.last_seen)
    }

    async fn read(&self) -> sqlx::Result<i64> {
        let mut state = self.state.lock().await;
        let watch = watch(&mut state, &self.options).await?;
        match data_version(&mut watch.conn).await {
            Ok(v) => {
                watch.last_seen = v;
                Ok(v)
            }
            Err(e) => {
                *state = None;
                Err(e)
            }
        }
    }

    async fn give_up(&self, e: sqlx::Error, deadline: Instant) {
        tracing::warn!(error = %e, "cannot watch the SQLite file for changes; sleeping instead");
        *self.state.lock().await = None;
        sleep_until(deadline).await;
    }
}

/// The open watch, connecting (and taking the current value as seen) if there is none.
async fn watch<'a>(
    state: &'a mut Option<Watch>,
    options: &SqliteConnectOptions,
) -> sqlx::Result<&'a mut Watch> {
    if state.is_none() {
        let mut conn = SqliteConnection::connect_with(options).await?;
        let last_seen = data_version(&mut conn).await?;
        *state = Some(Watch { conn, last_seen });
    }
    Ok(state.as_mut().expect("set above"))
}

async fn data_version(conn: &mut SqliteConnection) -> sqlx::Result<i64> {
    sqlx::query("PRAGMA data_version")
        .fetch_one(conn)
        .await?
        .try_get(0)
}

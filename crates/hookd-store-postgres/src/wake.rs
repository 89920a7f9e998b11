//! Waking workers with LISTEN/NOTIFY: writes that queue pending deliveries `pg_notify` the
//! store's channel in their transaction (delivered at commit), with the kind of work as payload
//! ([`Kind`]); [`Waker::wait`] listens on it and says which kinds came, so a worker wakes only
//! the loops that take them.
//!
//! The channel name includes the current schema, so installations (or parallel tests) in
//! different schemas of one database do not wake each other.

use std::time::Duration;

use hookd_core::ids::WebhookId;
use hookd_core::store::{Mine, Work};
use sqlx::postgres::{PgConnectOptions, PgListener, PgNotification, PgPoolOptions};
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

/// What a notification says was queued (its payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// New deliveries: first attempts.
    First,
    /// Deliveries made due by hand or recovered: either lane.
    Deliveries,
    /// Inbound executions.
    Executions,
}

impl Kind {
    fn payload(self) -> &'static str {
        match self {
            Self::First => "first",
            Self::Deliveries => "deliveries",
            Self::Executions => "executions",
        }
    }
}

/// Longest payload, in bytes, that names webhooks (`first:<id>,<id>`, made by `hookd_publish`);
/// a publish for more says `first` alone (PostgreSQL's payloads stop at 8,000 bytes).
pub(crate) const MAX_NAMED: usize = 4_000;

/// The work a notification's payload names, for a worker that looks first at the webhooks
/// `mine` accepts: `first:<id>,<id>…` (first attempts of those webhooks) is nothing for it when
/// it owns none of them but [`Work::elsewhere`]. Anything else (an older hookd sends none) may
/// be anything.
fn work(payload: &str, mine: &Mine) -> Work {
    match payload {
        "first" => Work::FIRST,
        "deliveries" => Work::FIRST.and(Work::RETRY),
        "executions" => Work::EXECUTIONS,
        _ => match payload.strip_prefix("first:") {
            Some(ids)
                if !ids
                    .split(',')
                    .any(|id| mine(&WebhookId::from_trusted(id.into()))) =>
            {
                Work::ELSEWHERE
            }
            Some(_) => Work::FIRST,
            None => Work::ALL,
        },
    }
}

/// Queues a notification of `kind` on `channel`; PostgreSQL sends it when the transaction
/// commits (one per transaction, channel and payload).
pub(crate) async fn notify(conn: &mut PgConnection, channel: &str, kind: Kind) -> sqlx::Result<()> {
    send(conn, channel, kind.payload()).await
}

async fn send(conn: &mut PgConnection, channel: &str, payload: &str) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
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

    /// Returns on the first notification (one sent since the previous wait counts) with the
    /// work it and those already received with it name; [`Work::ALL`] when the listening
    /// connection had to be re-established (notifications may have been lost) or at
    /// `max_wait`. Without a working listener it sleeps out `max_wait`.
    pub(crate) async fn wait(&self, max_wait: Duration, mine: &Mine) -> Work {
        let deadline = Instant::now() + max_wait;
        let Ok(mut slot) = timeout_at(deadline, self.listener.lock()).await else {
            return Work::ALL;
        };
        if slot.is_none() {
            match self.listen().await {
                Ok(listener) => *slot = Some(listener),
                Err(e) => {
                    drop(slot);
                    give_up(e, deadline).await;
                    return Work::ALL;
                }
            }
        }
        let listener = slot.as_mut().expect("set above");
        match timeout_at(deadline, listener.try_recv()).await {
            Ok(Ok(Some(first))) => received(first, listener, mine),
            // The connection was lost and is re-established on the next receive: what was sent
            // meanwhile is gone.
            Ok(Ok(None)) => Work::ALL,
            Ok(Err(e)) => {
                *slot = None;
                drop(slot);
                give_up(e, deadline).await;
                Work::ALL
            }
            Err(_) => Work::ALL,
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

/// The work `first` names, with that of the notifications already buffered behind it.
fn received(first: PgNotification, listener: &mut PgListener, mine: &Mine) -> Work {
    let mut work_named = work(first.payload(), mine);
    while let Some(more) = listener.next_buffered() {
        work_named = work_named.and(work(more.payload(), mine));
    }
    work_named
}

async fn give_up(e: sqlx::Error, deadline: Instant) {
    tracing::warn!(error = %e, "cannot LISTEN for new deliveries; sleeping instead");
    sleep_until(deadline).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(_: &WebhookId) -> bool {
        true
    }

    #[test]
    fn payloads_name_the_work_and_unknown_ones_mean_anything() {
        for kind in [Kind::First, Kind::Deliveries, Kind::Executions] {
            assert_ne!(work(kind.payload(), &any), Work::ALL, "{kind:?}");
        }
        assert_eq!(work(Kind::First.payload(), &any), Work::FIRST);
        assert!(work(Kind::Deliveries.payload(), &any).retry);
        assert_eq!(work(Kind::Executions.payload(), &any), Work::EXECUTIONS);
        assert_eq!(work("", &any), Work::ALL, "an older hookd's notification");
    }

    #[test]
    fn first_attempts_of_named_webhooks_are_work_only_for_a_worker_owning_one() {
        let payload = "first:wh_a,wh_b";
        let owns_b = |id: &WebhookId| id.as_str() == "wh_b";
        let owns_c = |id: &WebhookId| id.as_str() == "wh_c";
        assert_eq!(work(payload, &owns_b), Work::FIRST);
        assert_eq!(work(payload, &owns_c), Work::ELSEWHERE, "not its webhooks");
        assert_eq!(
            work("first", &owns_c),
            Work::FIRST,
            "too many to name: for every worker"
        );
    }
}

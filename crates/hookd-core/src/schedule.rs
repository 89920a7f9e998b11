//! Schedules (VergeOS tasks): a message sent to one webhook on a cron expression in a time zone,
//! or every N seconds.
//!
//! A schedule keeps `next_run_at`, the occurrence it fires next. The scheduler (in every worker)
//! fires a due schedule by moving `next_run_at` on *conditionally* (only if it still holds the
//! value the scheduler read) in the transaction that stores the occurrence's event and delivery,
//! so each occurrence fires once however many workers race for it. After downtime the missed
//! occurrences collapse into one: [`Timing::catch_up`] picks the latest due occurrence and the
//! first one after now.
//!
//! Each firing is a `schedule.fired` event ([`fired_data`]) with one delivery to the schedule's
//! webhook; the delivery carries the schedule's `message` template, which replaces the webhook's
//! body when it is sent.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{TimeZone, Timelike as _, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::ids::{ScheduleId, WebhookId};
use crate::time::rfc3339;

/// The type of the events schedules fire.
pub const SCHEDULE_FIRED: &str = "schedule.fired";

/// Longest interval accepted (a year): longer ones are almost certainly a unit mistake.
pub const MAX_EVERY_SECONDS: u64 = 366 * 24 * 3600;

/// Steps [`Timing::catch_up`] walks through missed cron occurrences before it jumps to now.
const MAX_CATCH_UP_STEPS: u32 = 100_000;

/// When a schedule fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Timing {
    /// A five-field cron expression in a time zone.
    Cron(CronTiming),
    /// Every `seconds` seconds, counted from the previous occurrence.
    Every { seconds: u64 },
}

/// A five-field cron expression (minute hour day-of-month month day-of-week), read in
/// `timezone` (an IANA name such as `Europe/Paris`), parsed once (by croner) when it is made or
/// read from the database. Stored as `{"expression", "timezone"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "CronFields", into = "CronFields")]
pub struct CronTiming {
    expression: String,
    timezone: String,
    /// `None` only for a stored expression this version cannot read: it never fires.
    parsed: Option<Arc<(croner::Cron, Tz)>>,
}

#[derive(Serialize, Deserialize)]
struct CronFields {
    expression: String,
    timezone: String,
}

impl From<CronFields> for CronTiming {
    fn from(f: CronFields) -> Self {
        let parsed = parse_cron(&f.expression)
            .ok()
            .zip(Tz::from_str(&f.timezone).ok())
            .map(Arc::new);
        Self {
            expression: f.expression,
            timezone: f.timezone,
            parsed,
        }
    }
}

impl From<CronTiming> for CronFields {
    fn from(c: CronTiming) -> Self {
        Self {
            expression: c.expression,
            timezone: c.timezone,
        }
    }
}

impl CronTiming {
    pub fn expression(&self) -> &str {
        &self.expression
    }

    pub fn timezone(&self) -> &str {
        &self.timezone
    }
}

/// Five fields as croner reads them (numbers, `*`, ranges, lists, steps, `JAN`-`DEC`,
/// `SUN`-`SAT`, 0 or 7 for Sunday, `L`, `W`, `#`), with day-of-month and day-of-week both
/// required to match when both are restricted (as hookd has always read them).
fn parse_cron(expression: &str) -> Result<croner::Cron, croner::errors::CronError> {
    use croner::parser::{CronParser, Seconds, Year};
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .dom_and_dow(true)
        .build()
        .parse(expression)
}

/// What is wrong with a schedule field; `field` is the API field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct TimingError {
    pub field: &'static str,
    pub message: String,
}

impl TimingError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Which occurrence to fire now, and the one after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatchUp {
    /// The latest occurrence at or before now: the one that fires.
    pub occurrence: i64,
    /// Earlier due occurrences folded into this one (0 when nothing was missed).
    pub skipped: u64,
    /// The first occurrence after now: the new `next_run_at`.
    pub next: i64,
}

impl Timing {
    /// A cron timing, checked: five fields that some date matches, and a known time zone.
    pub fn cron(expression: &str, timezone: &str) -> Result<Self, TimingError> {
        let tz = parse_timezone(timezone)?;
        let expression = expression.split_whitespace().collect::<Vec<_>>().join(" ");
        let fields = expression.split(' ').filter(|f| !f.is_empty()).count();
        if fields != 5 {
            return Err(TimingError::new(
                "cron",
                format!(
                    "needs 5 fields (minute hour day-of-month month day-of-week), found {fields}"
                ),
            ));
        }
        let parsed = parse_cron(&expression).map_err(|e| {
            TimingError::new(
                "cron",
                format!("{expression:?} is not a cron expression: {e}"),
            )
        })?;
        let probe = Utc::now().with_timezone(&tz).naive_local();
        if parsed.find_next_occurrence(&probe, false).is_err() {
            return Err(TimingError::new(
                "cron",
                format!("{expression:?} is not a cron expression any date matches"),
            ));
        }
        Ok(Self::Cron(CronTiming {
            expression,
            timezone: tz.name().to_owned(),
            parsed: Some(Arc::new((parsed, tz))),
        }))
    }

    /// An interval timing, checked: 1 second to a year.
    pub fn every(seconds: i64) -> Result<Self, TimingError> {
        match u64::try_from(seconds) {
            Ok(s) if (1..=MAX_EVERY_SECONDS).contains(&s) => Ok(Self::Every { seconds: s }),
            _ => Err(TimingError::new(
                "every_seconds",
                format!("must be between 1 and {MAX_EVERY_SECONDS}"),
            )),
        }
    }

    /// The first occurrence strictly after `after_ms`; `None` only for a stored cron expression
    /// that no longer parses (checked at save, so in practice never).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        match self {
            Self::Every { seconds } => Some(after_ms + (*seconds as i64) * 1000),
            Self::Cron(cron) => {
                let (parsed, tz) = cron.parsed.as_deref()?;
                next_cron(parsed, *tz, after_ms)
            }
        }
    }

    /// The next `n` occurrences after `after_ms`.
    pub fn upcoming(&self, after_ms: i64, n: usize) -> Vec<i64> {
        let mut out = Vec::with_capacity(n);
        let mut at = after_ms;
        while out.len() < n {
            match self.next_after(at) {
                Some(next) => {
                    out.push(next);
                    at = next;
                }
                None => break,
            }
        }
        out
    }

    /// For a schedule due at `due_ms` (its `next_run_at`, at or before `now_ms`): the occurrence
    /// to fire (the latest one not after now, so a long downtime fires once) and the next one.
    pub fn catch_up(&self, due_ms: i64, now_ms: i64) -> Option<CatchUp> {
        if due_ms > now_ms {
            return None;
        }
        match self {
            Self::Every { seconds } => {
                let period = (*seconds as i64) * 1000;
                let skipped = (now_ms - due_ms) / period;
                let occurrence = due_ms + skipped * period;
                Some(CatchUp {
                    occurrence,
                    skipped: skipped as u64,
                    next: occurrence + period,
                })
            }
            Self::Cron(_) => {
                let mut occurrence = due_ms;
                let mut skipped = 0;
                for _ in 0..MAX_CATCH_UP_STEPS {
                    let next = self.next_after(occurrence)?;
                    if next > now_ms {
                        return Some(CatchUp {
                            occurrence,
                            skipped,
                            next,
                        });
                    }
                    occurrence = next;
                    skipped += 1;
                }
                // Down for longer than the walk: fire the last occurrence walked to and go on
                // from now.
                let next = self.next_after(now_ms)?;
                Some(CatchUp {
                    occurrence,
                    skipped,
                    next,
                })
            }
        }
    }
}

fn parse_timezone(name: &str) -> Result<Tz, TimingError> {
    Tz::from_str(name.trim()).map_err(|_| {
        TimingError::new(
            "timezone",
            format!("{name:?} is not a known time zone (use an IANA name such as \"Europe/Paris\" or \"UTC\")"),
        )
    })
}

/// What a schedule does, as the API sets it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub webhook_id: WebhookId,
    /// A template (SPEC §6) rendered as the request body; `None` sends the webhook's own body
    /// for the `schedule.fired` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub timing: Timing,
}

/// A stored schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub id: ScheduleId,
    pub active: bool,
    pub spec: ScheduleSpec,
    /// The occurrence it fires next; `None` while inactive.
    pub next_run_at: Option<i64>,
    /// When it last fired (scheduled or run by hand).
    pub last_run_at: Option<i64>,
    /// Why its last firing cannot be sent as it says (its message does not render, its webhook
    /// is gone); `None` when it can. Set by each firing; an edit of the message or webhook
    /// clears it.
    pub last_error: Option<String>,
    /// Bumped by every write, firings included: updates are conditional on it.
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The `data` of a `schedule.fired` event: which schedule, which occurrence, and how many
/// missed occurrences it stands for.
pub fn fired_data(
    schedule: &Schedule,
    occurrence: i64,
    skipped: u64,
    manual: bool,
) -> serde_json::Value {
    let mut data = json!({
        "schedule_id": schedule.id.as_str(),
        "name": schedule.spec.name,
        "occurrence": rfc3339(occurrence),
        "skipped": skipped,
        "manual": manual,
    });
    if let (Some(d), Value::Object(map)) = (&schedule.spec.description, &mut data) {
        map.insert("description".into(), Value::String(d.clone()));
    }
    data
}

/// The first instant strictly after `after_ms` at which `cron` fires in `tz`. The fields are
/// matched against the wall clock, then the wall time is placed in the zone:
/// - a wall time that happens twice (clocks go back) fires once, at its first instant (at its
///   second one only when the first is already past);
/// - a wall time that does not exist (clocks go forward) fires once, right after the gap;
///   occurrences inside one gap collapse into that single firing.
///
/// (Matching the zone's instants instead steps over a day whose time falls in a gap: with
/// cron-parser, `30 2 * * *` in Europe/Paris skipped the spring-forward day.)
fn next_cron(cron: &croner::Cron, tz: Tz, after_ms: i64) -> Option<i64> {
    let after = tz.timestamp_millis_opt(after_ms).single()?;
    // The wall clock, with no zone and so no gap.
    let mut wall = after.naive_local();
    // Enough for the wall clock of `after` to be behind it by the overlap (at most a few hours),
    // plus one real occurrence.
    for _ in 0..1000 {
        wall = cron.find_next_occurrence(&wall, false).ok()?;
        let at = match tz.from_local_datetime(&wall) {
            chrono::LocalResult::Single(t) => t.timestamp_millis(),
            chrono::LocalResult::Ambiguous(first, second) => {
                if first.timestamp_millis() > after_ms {
                    first.timestamp_millis()
                } else {
                    second.timestamp_millis()
                }
            }
            chrono::LocalResult::None => gap_end(tz, wall)?,
        };
        if at > after_ms {
            return Some(at);
        }
    }
    None
}

/// The first instant after the DST gap that `local` (a wall time that does not exist) falls in.
fn gap_end(tz: Tz, local: chrono::NaiveDateTime) -> Option<i64> {
    let mut probe = local;
    // Gaps are whole minutes, at most a few hours.
    for _ in 0..(24 * 60) {
        probe += chrono::Duration::minutes(1);
        let probe_start = probe.with_second(0)?.with_nanosecond(0)?;
        if let Some(t) = tz.from_local_datetime(&probe_start).earliest() {
            return Some(t.timestamp_millis());
        }
    }
    None
}

/// `ms` as RFC 3339 in the schedule's time zone (cron timings; `+01:00`) or UTC (`Z`).
pub fn local_rfc3339(timing: &Timing, ms: i64) -> String {
    let local = match timing {
        Timing::Cron(cron) => cron
            .parsed
            .as_deref()
            .and_then(|(_, tz)| tz.timestamp_millis_opt(ms).single())
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        Timing::Every { .. } => None,
    };
    local.unwrap_or_else(|| rfc3339(ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;

    fn at(s: &str) -> i64 {
        parse_rfc3339(s).unwrap()
    }

    #[test]
    fn cron_is_read_in_its_time_zone() {
        let t = Timing::cron("0 2 * * *", "Europe/Paris").unwrap();
        // 02:00 in Paris in winter is 01:00 UTC.
        let next = t.next_after(at("2026-01-10T12:00:00Z")).unwrap();
        assert_eq!(next, at("2026-01-11T01:00:00Z"));
        let utc = Timing::cron("0 2 * * *", "UTC").unwrap();
        assert_eq!(
            utc.next_after(at("2026-01-10T12:00:00Z")),
            Some(at("2026-01-11T02:00:00Z"))
        );
    }

    #[test]
    fn a_time_in_a_spring_forward_gap_fires_once_right_after_it() {
        // Paris: 2026-03-29 02:00 CET jumps to 03:00 CEST (01:00 UTC).
        let t = Timing::cron("30 2 * * *", "Europe/Paris").unwrap();
        let days = t.upcoming(at("2026-03-27T12:00:00Z"), 4);
        assert_eq!(
            days,
            vec![
                at("2026-03-28T01:30:00Z"),
                at("2026-03-29T01:00:00Z"),
                at("2026-03-30T00:30:00Z"),
                at("2026-03-31T00:30:00Z"),
            ],
            "no day skipped: on the gap day, 03:00 CEST"
        );
        // New York: 2026-03-08 02:00 EST jumps to 03:00 EDT (07:00 UTC); every 20 minutes.
        let t = Timing::cron("*/20 * * * *", "America/New_York").unwrap();
        assert_eq!(
            t.upcoming(at("2026-03-08T06:30:00Z"), 4),
            vec![
                at("2026-03-08T06:40:00Z"),
                at("2026-03-08T07:00:00Z"),
                at("2026-03-08T07:20:00Z"),
                at("2026-03-08T07:40:00Z"),
            ],
            "01:40 EST, then the gap's occurrences as one at 03:00 EDT, then 03:20"
        );
    }

    #[test]
    fn a_time_in_a_repeated_hour_fires_once() {
        // Paris: 2026-10-25 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
        let t = Timing::cron("30 2 * * *", "Europe/Paris").unwrap();
        assert_eq!(
            t.upcoming(at("2026-10-24T12:00:00Z"), 3),
            vec![
                at("2026-10-25T00:30:00Z"),
                at("2026-10-26T01:30:00Z"),
                at("2026-10-27T01:30:00Z"),
            ],
            "the first 02:30 (CEST) only"
        );
        // New York: 2026-11-01 02:00 EDT goes back to 01:00 EST; hourly at :15.
        let t = Timing::cron("15 * * * *", "America/New_York").unwrap();
        assert_eq!(
            t.upcoming(at("2026-11-01T04:30:00Z"), 3),
            vec![
                at("2026-11-01T05:15:00Z"),
                at("2026-11-01T07:15:00Z"),
                at("2026-11-01T08:15:00Z"),
            ],
            "01:15 EDT fires, the repeated 01:15 EST does not, then 02:15 EST"
        );
        // A schedule looking from inside the second pass still fires at the next wall time.
        assert_eq!(
            t.next_after(at("2026-11-01T06:20:00Z")),
            Some(at("2026-11-01T07:15:00Z"))
        );
    }

    #[test]
    fn next_is_strictly_after() {
        let t = Timing::cron("*/5 * * * *", "UTC").unwrap();
        let on = at("2026-03-01T10:05:00Z");
        assert_eq!(t.next_after(on), Some(at("2026-03-01T10:10:00Z")));
        assert_eq!(
            t.upcoming(on, 3),
            vec![
                at("2026-03-01T10:10:00Z"),
                at("2026-03-01T10:15:00Z"),
                at("2026-03-01T10:20:00Z")
            ]
        );
    }

    #[test]
    fn bad_cron_and_time_zones_name_their_field() {
        assert_eq!(Timing::cron("0 2 * *", "UTC").unwrap_err().field, "cron");
        assert_eq!(Timing::cron("61 * * * *", "UTC").unwrap_err().field, "cron");
        assert_eq!(Timing::cron("0 0 30 2 *", "UTC").unwrap_err().field, "cron");
        assert_eq!(
            Timing::cron("0 2 * * *", "Mars/Olympus").unwrap_err().field,
            "timezone"
        );
        assert_eq!(Timing::every(0).unwrap_err().field, "every_seconds");
        assert_eq!(Timing::every(-5).unwrap_err().field, "every_seconds");
        assert!(Timing::every(300).is_ok());
    }

    #[test]
    fn missed_cron_occurrences_fire_once() {
        let t = Timing::cron("0 2 * * *", "UTC").unwrap();
        // Due on the 1st at 02:00, back on the 4th at 10:00: the 4th's 02:00 fires, standing
        // for three missed ones, and the next is the 5th.
        let c = t
            .catch_up(at("2026-05-01T02:00:00Z"), at("2026-05-04T10:00:00Z"))
            .unwrap();
        assert_eq!(c.occurrence, at("2026-05-04T02:00:00Z"));
        assert_eq!(c.skipped, 3);
        assert_eq!(c.next, at("2026-05-05T02:00:00Z"));
        // On time: nothing skipped.
        let c = t
            .catch_up(at("2026-05-01T02:00:00Z"), at("2026-05-01T02:00:00.300Z"))
            .unwrap();
        assert_eq!((c.occurrence, c.skipped), (at("2026-05-01T02:00:00Z"), 0));
        assert!(t
            .catch_up(at("2026-05-01T02:00:00Z"), at("2026-05-01T01:00:00Z"))
            .is_none());
    }

    #[test]
    fn missed_intervals_fire_once_and_keep_their_phase() {
        let t = Timing::every(60).unwrap();
        let c = t
            .catch_up(1_000_000, 1_000_000 + 10 * 60_000 + 5_000)
            .unwrap();
        assert_eq!(c.occurrence, 1_000_000 + 10 * 60_000);
        assert_eq!(c.skipped, 10);
        assert_eq!(c.next, 1_000_000 + 11 * 60_000);
    }

    #[test]
    fn cron_fields_read_as_they_always_have() {
        let next = |expr: &str, after: &str| {
            let t = Timing::cron(expr, "UTC").unwrap();
            rfc3339(t.next_after(at(after)).unwrap())
        };
        // 2026-03-01 is a Sunday. Both day fields restricted: both must match (the 13th that
        // is a Friday), as cron-parser read them.
        assert_eq!(
            next("0 0 13 * 5", "2026-03-01T00:00:00Z"),
            "2026-03-13T00:00:00Z"
        );
        assert_eq!(
            next("0 0 13 * FRI", "2026-03-14T00:00:00Z"),
            "2026-11-13T00:00:00Z"
        );
        // Names, ranges, steps and lists.
        assert_eq!(
            next("*/20 9-10 * * MON-FRI", "2026-03-01T00:00:00Z"),
            "2026-03-02T09:00:00Z"
        );
        assert_eq!(
            next("5,35 * * JAN *", "2026-03-01T00:00:00Z"),
            "2027-01-01T00:05:00Z"
        );
        // Sunday is 0 or 7.
        assert_eq!(
            next("0 12 * * 7", "2026-03-02T00:00:00Z"),
            "2026-03-08T12:00:00Z"
        );
        assert_eq!(
            next("0 12 * * 0", "2026-03-02T00:00:00Z"),
            "2026-03-08T12:00:00Z"
        );
        // Six or seven fields (seconds, years) are not cron here.
        assert_eq!(
            Timing::cron("0 0 2 * * *", "UTC").unwrap_err().field,
            "cron"
        );
    }

    #[test]
    fn a_stored_expression_that_no_longer_parses_still_loads_and_never_fires() {
        let text = r#"{"kind":"cron","expression":"0 2 * * * * * *","timezone":"UTC"}"#;
        let t: Timing = serde_json::from_str(text).unwrap();
        assert_eq!(t.next_after(at("2026-03-01T00:00:00Z")), None);
        assert_eq!(serde_json::to_string(&t).unwrap(), text, "kept as it was");
    }

    #[test]
    fn timing_round_trips_as_json() {
        let t = Timing::cron("0  2 * * MON", "Europe/Paris").unwrap();
        let text = serde_json::to_string(&t).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"cron","expression":"0 2 * * MON","timezone":"Europe/Paris"}"#
        );
        assert_eq!(serde_json::from_str::<Timing>(&text).unwrap(), t);
    }
}

//! Timestamps are milliseconds since the Unix epoch (`i64`) everywhere in hookd: one integer column
//! in both databases, no time-zone ambiguity. This module formats them for the wire.

use chrono::{DateTime, SecondsFormat, Utc};

/// Formats `ms` as RFC 3339 with millisecond precision and a `Z` suffix
/// (`2020-01-10T08:47:36.649Z`, Strapi's `created_at`).
pub fn rfc3339_ms(ms: i64) -> String {
    to_datetime(ms).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Formats `ms` as RFC 3339, with fractional seconds only when there are any.
pub fn rfc3339(ms: i64) -> String {
    to_datetime(ms).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Parses an RFC 3339 timestamp into epoch milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.timestamp_millis())
}

fn to_datetime(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        let ms = 1_578_646_056_649;
        assert_eq!(rfc3339_ms(ms), "2020-01-10T08:47:36.649Z");
        assert_eq!(parse_rfc3339("2020-01-10T08:47:36.649Z"), Some(ms));
        assert_eq!(rfc3339(1_578_646_056_000), "2020-01-10T08:47:36Z");
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}

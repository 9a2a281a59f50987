//! Schedules: RFC 3339 instants read once, then compared as Unix seconds passed in by callers.

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Reads an RFC 3339 date-time with an offset (`2026-11-11T00:00:00+08:00`) as Unix seconds.
pub fn parse_rfc3339(text: &str) -> Result<i64, String> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map(OffsetDateTime::unix_timestamp)
        .map_err(|e| {
            format!("{text:?} is not an RFC 3339 date-time with offset, like 2026-11-11T20:00:00+08:00 ({e})")
        })
}

/// When a campaign runs: from `start` (inclusive) to `end` (exclusive); either may be open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Schedule {
    pub start_unix_secs: Option<i64>,
    pub end_unix_secs: Option<i64>,
}

impl Schedule {
    pub fn is_active(&self, now_unix_secs: i64) -> bool {
        self.start_unix_secs.is_none_or(|s| now_unix_secs >= s)
            && self.end_unix_secs.is_none_or(|e| now_unix_secs < e)
    }
}

/// `HH:MM:SS` left until `to` (hours may exceed 24), `00:00:00` once it has passed.
pub fn countdown_text(to_unix_secs: i64, now_unix_secs: i64) -> String {
    let left = to_unix_secs.saturating_sub(now_unix_secs).max(0);
    format!(
        "{:02}:{:02}:{:02}",
        left / 3600,
        (left / 60) % 60,
        left % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc3339_with_offsets() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339("1970-01-01T08:00:00+08:00"), Ok(0));
        assert_eq!(
            parse_rfc3339("2026-11-11T00:00:00+08:00"),
            Ok(1_794_326_400)
        );
        assert!(parse_rfc3339("2026-11-11T00:00:00").is_err(), "no offset");
        assert!(parse_rfc3339("2026-13-01T00:00:00Z").is_err());
        assert!(parse_rfc3339("tomorrow").unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn countdown_counts_down_and_stops_at_zero() {
        assert_eq!(countdown_text(3_723, 0), "01:02:03");
        assert_eq!(countdown_text(100 * 3600, 0), "100:00:00");
        assert_eq!(countdown_text(10, 20), "00:00:00");
    }

    proptest! {
        #[test]
        fn a_schedule_is_active_exactly_from_start_until_end(
            start in proptest::option::of(-1000i64..1000),
            end in proptest::option::of(-1000i64..1000),
            now in -2000i64..2000,
        ) {
            let s = Schedule { start_unix_secs: start, end_unix_secs: end };
            let after_start = start.is_none_or(|v| now >= v);
            let before_end = end.is_none_or(|v| now < v);
            prop_assert_eq!(s.is_active(now), after_start && before_end);
            if let Some(e) = end { prop_assert!(!s.is_active(e)); }
            if let Some(st) = start { prop_assert_eq!(s.is_active(st), end.is_none_or(|e| st < e)); }
        }
    }
}

//! Countdown text of a product card. The caller passes the time left (campaign end minus its
//! own clock), so the formatting is a pure function tested without a clock.

use std::time::Duration;

/// Formats time left as `mm:ss` under an hour and `h:mm:ss` from an hour on.
///
/// Partial seconds round up, the way countdowns read: with 0.2 s left the card still shows
/// `00:01`, and `00:00` appears only once the time is over.
pub fn format_countdown(remaining: Duration) -> String {
    let whole_seconds = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
    let hours = whole_seconds / 3600;
    let minutes = whole_seconds / 60 % 60;
    let seconds = whole_seconds % 60;
    if hours == 0 {
        format!("{minutes:02}:{seconds:02}")
    } else {
        format!("{hours}:{minutes:02}:{seconds:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn under_an_hour_is_minutes_and_seconds() {
        assert_eq!(format_countdown(Duration::ZERO), "00:00");
        assert_eq!(format_countdown(Duration::from_secs(5)), "00:05");
        assert_eq!(format_countdown(Duration::from_secs(65)), "01:05");
        assert_eq!(format_countdown(Duration::from_secs(3599)), "59:59");
    }

    #[test]
    fn from_an_hour_on_hours_lead() {
        assert_eq!(format_countdown(Duration::from_secs(3600)), "1:00:00");
        assert_eq!(format_countdown(Duration::from_secs(3661)), "1:01:01");
        assert_eq!(
            format_countdown(Duration::from_secs(100 * 3600)),
            "100:00:00"
        );
    }

    #[test]
    fn partial_seconds_round_up() {
        assert_eq!(format_countdown(Duration::from_millis(200)), "00:01");
        assert_eq!(format_countdown(Duration::from_millis(59_001)), "01:00");
        assert_eq!(
            format_countdown(Duration::from_millis(3_599_500)),
            "1:00:00"
        );
    }

    /// Reads a formatted countdown back into seconds.
    fn parse(text: &str) -> u64 {
        text.split(':')
            .map(|part| part.parse::<u64>().expect("digits only"))
            .fold(0, |total, part| total * 60 + part)
    }

    proptest! {
        #[test]
        fn round_trips_whole_seconds(secs in 0u64..1_000_000) {
            let text = format_countdown(Duration::from_secs(secs));
            prop_assert_eq!(parse(&text), secs);
            let fields: Vec<&str> = text.split(':').collect();
            prop_assert_eq!(fields.len(), if secs < 3600 { 2 } else { 3 });
            // Every field after the first is two digits below 60.
            for field in &fields[1..] {
                prop_assert_eq!(field.len(), 2);
                prop_assert!(field.parse::<u64>().unwrap() < 60);
            }
            if secs < 3600 {
                prop_assert_eq!(fields[0].len(), 2);
            }
        }

        #[test]
        fn never_shows_less_than_is_left(millis in 0u64..10_000_000) {
            let shown = parse(&format_countdown(Duration::from_millis(millis)));
            prop_assert!(shown * 1000 >= millis);
            prop_assert!(shown * 1000 < millis + 1000);
        }
    }
}

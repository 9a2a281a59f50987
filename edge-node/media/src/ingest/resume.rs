//! Where a damaged file is read on from.
//!
//! Damage in a file's container can stall its demuxer, or make it give up before the end.
//! Starting such a file again from zero would show viewers its first seconds over and over,
//! so the next attempt starts past the last picture that came out. The damage may reach
//! further than the next keyframe: while an attempt shows nothing new, each retry jumps twice
//! as far past the damage as the one before.

use std::time::Duration;

/// The first jump past the last good picture (the seek then snaps on to the next keyframe).
const FIRST_SKIP: Duration = Duration::from_millis(250);
/// The furthest one jump goes when the file's length is unknown.
const MAX_SKIP: Duration = Duration::from_secs(64);
/// An end of stream this close to the file's length is its end, not damage.
pub(crate) const END_TOLERANCE: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Resume {
    /// Where the next attempt starts; `None` for the start of the file.
    target: Option<Duration>,
    /// The jump that led to `target`.
    skip: Duration,
}

impl Resume {
    /// Where the next attempt starts reading; `None` for the start of the file.
    pub(crate) fn target(&self) -> Option<Duration> {
        self.target
    }

    /// An attempt ended before the file did. `reached` is the file position of the last
    /// picture it delivered (`None` if none), `length` the file's duration when known.
    pub(crate) fn after_damage(&mut self, reached: Option<Duration>, length: Option<Duration>) {
        let progressed = match (reached, self.target) {
            (Some(reached), Some(target)) => reached > target,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let (from, skip) = if progressed {
            (reached.unwrap_or_default(), FIRST_SKIP)
        } else {
            let skip = if self.target.is_some() {
                (self.skip * 2).min(MAX_SKIP)
            } else {
                FIRST_SKIP
            };
            (self.target.unwrap_or_default(), skip)
        };
        let target = from + skip;
        if length.is_some_and(|length| target >= length) {
            // Nothing good left after the damage: the file plays again from its start.
            *self = Self::default();
        } else {
            *self = Self {
                target: Some(target),
                skip,
            };
        }
    }

    /// The file ended where it should: the next attempt starts from the beginning.
    pub(crate) fn at_end(&mut self) {
        *self = Self::default();
    }
}

/// Whether an end of stream at `reached` came before the file's `length`: damage, not the end.
pub(crate) fn ended_early(reached: Option<Duration>, length: Option<Duration>) -> bool {
    match (reached, length) {
        (Some(reached), Some(length)) => reached + END_TOLERANCE < length,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(seconds: f64) -> Duration {
        Duration::from_secs_f64(seconds)
    }

    #[test]
    fn reads_on_past_the_last_good_picture() {
        let mut r = Resume::default();
        assert_eq!(r.target(), None);
        r.after_damage(Some(s(3.24)), Some(s(10.0)));
        assert_eq!(r.target(), Some(s(3.49)));
    }

    #[test]
    fn jumps_twice_as_far_while_nothing_new_comes_out() {
        let mut r = Resume::default();
        r.after_damage(Some(s(3.0)), Some(s(60.0)));
        // The retry showed nothing past the target: the damage reaches further.
        r.after_damage(None, Some(s(60.0)));
        assert_eq!(r.target(), Some(s(3.75)));
        r.after_damage(Some(s(3.2)), Some(s(60.0)));
        assert_eq!(r.target(), Some(s(4.75)));
        r.after_damage(None, Some(s(60.0)));
        assert_eq!(r.target(), Some(s(6.75)));
        // Past the damage, a later stall starts over with a short jump.
        r.after_damage(Some(s(20.0)), Some(s(60.0)));
        assert_eq!(r.target(), Some(s(20.25)));
    }

    #[test]
    fn damage_to_the_end_plays_the_file_from_its_start() {
        let mut r = Resume::default();
        r.after_damage(Some(s(9.9)), Some(s(10.0)));
        assert_eq!(r.target(), None);
        r.after_damage(Some(s(5.0)), Some(s(10.0)));
        r.at_end();
        assert_eq!(r.target(), None);
    }

    #[test]
    fn unknown_length_bounds_the_jump() {
        let mut r = Resume::default();
        r.after_damage(Some(s(1.0)), None);
        for _ in 0..20 {
            r.after_damage(None, None);
        }
        assert_eq!(r.skip, MAX_SKIP);
    }

    #[test]
    fn an_end_of_stream_well_before_the_length_is_damage() {
        assert!(ended_early(Some(s(3.24)), Some(s(10.0))));
        assert!(!ended_early(Some(s(9.96)), Some(s(10.0))));
        assert!(!ended_early(Some(s(3.0)), None));
        assert!(!ended_early(None, Some(s(10.0))));
    }
}

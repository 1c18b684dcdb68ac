//! Heartbeat policy: when an idle stream is due a keep-alive write, and what to write.
//!
//! Intermediaries cut idle responses (nginx and AWS ALB after 60 s, Cloudflare after 100 s), and a
//! write is also how the hub notices a dead client. The policy is pure: the caller passes the
//! current time and the time of its last write, and schedules its next wake-up from the answer.
//! Heartbeats never carry `id:`: they must not move the client's cursor.

use alloc::format;
use alloc::string::String;
use core::fmt::{self, Write as _};

use bytes::Bytes;

use crate::{EventName, Frame};

/// Default heartbeat interval: 15 s, what SQLMesh, sluice and mosaic use, and well under the 60 s
/// idle timeouts that are the common minimum.
pub const HEARTBEAT_MS_DEFAULT: u64 = 15_000;

/// Which wire format heartbeats take, to match what existing clients expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeartbeatProfile {
    /// SQLMesh: `event: ping` with data `{"timestamp":<epoch ms>}` (valid JSON, unlike SQLMesh's
    /// own Python repr).
    SqlMeshPing,
    /// sluice.sh: `event: heartbeat` with data `{"timestamp":"<ISO 8601 UTC with milliseconds>"}`.
    SluiceHeartbeat,
    /// A comment, `: heartbeat`, which no client dispatches.
    Comment,
}

impl HeartbeatProfile {
    /// The profile a subscriber asked for with `heartbeat=<value>`, or `default` (its family's)
    /// when it did not ask.
    ///
    /// `event` is the named `heartbeat` event of [`HeartbeatProfile::SluiceHeartbeat`]: EventSource
    /// never dispatches comments, so a page that wants to notice a silent connection asks for
    /// this and listens for `heartbeat`. `comment` is [`HeartbeatProfile::Comment`]. Anything
    /// else is an error naming the value.
    ///
    /// ```
    /// use herald_core::heartbeat::HeartbeatProfile;
    /// let default = HeartbeatProfile::Comment;
    /// assert_eq!(HeartbeatProfile::requested(None, default), Ok(default));
    /// assert_eq!(HeartbeatProfile::requested(Some("event"), default), Ok(HeartbeatProfile::SluiceHeartbeat));
    /// assert!(HeartbeatProfile::requested(Some("loud"), default).is_err());
    /// ```
    pub fn requested(
        value: Option<&str>,
        default: HeartbeatProfile,
    ) -> Result<HeartbeatProfile, UnknownHeartbeat> {
        match value {
            None => Ok(default),
            Some("event") => Ok(HeartbeatProfile::SluiceHeartbeat),
            Some("comment") => Ok(HeartbeatProfile::Comment),
            Some(other) => Err(UnknownHeartbeat {
                value: other.chars().take(64).collect(),
            }),
        }
    }

    /// Whether this heartbeat comes on a fixed clock, every interval whatever else is written
    /// (SQLMesh's `ping`, which sse-starlette sends every 15 s regardless of traffic and whose
    /// absence for 20 s makes SQLMesh's UI tear its connection down; sluice's `heartbeat`,
    /// documented as "every 15 seconds"), rather than after an interval of silence (the
    /// comment, which only keeps proxies from cutting an idle stream).
    ///
    /// ```
    /// use herald_core::heartbeat::HeartbeatProfile;
    /// assert!(HeartbeatProfile::SqlMeshPing.on_fixed_clock());
    /// assert!(!HeartbeatProfile::Comment.on_fixed_clock());
    /// ```
    pub const fn on_fixed_clock(self) -> bool {
        matches!(
            self,
            HeartbeatProfile::SqlMeshPing | HeartbeatProfile::SluiceHeartbeat
        )
    }
}

/// A `heartbeat=` value other than `event` or `comment`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownHeartbeat {
    /// The value given (at most its first 64 characters).
    pub value: String,
}

impl fmt::Display for UnknownHeartbeat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "heartbeat {:?} is not one of: event, comment",
            self.value
        )
    }
}

impl core::error::Error for UnknownHeartbeat {}

/// What heartbeat a stream gets, and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatPolicy {
    /// The wire format.
    pub profile: HeartbeatProfile,
    /// The longest a stream may stay silent; 0 is treated as 1 so that a schedule always moves
    /// forward.
    pub interval_ms: u64,
}

impl Default for HeartbeatPolicy {
    /// A comment every [`HEARTBEAT_MS_DEFAULT`].
    fn default() -> Self {
        HeartbeatPolicy {
            profile: HeartbeatProfile::Comment,
            interval_ms: HEARTBEAT_MS_DEFAULT,
        }
    }
}

/// The answer of [`HeartbeatPolicy::poll`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeartbeatDue {
    /// Write `frame` now; if nothing else is written, poll again at `next_at_ms`.
    Now {
        /// The heartbeat frame, stamped with the poll time.
        frame: Bytes,
        /// When the following heartbeat is due if this is the last write.
        next_at_ms: u64,
    },
    /// Nothing to write yet; poll again at `at_ms`.
    Later {
        /// When the next heartbeat is due.
        at_ms: u64,
    },
}

impl HeartbeatPolicy {
    /// A policy with this profile and interval.
    #[must_use]
    pub const fn new(profile: HeartbeatProfile, interval_ms: u64) -> Self {
        HeartbeatPolicy {
            profile,
            interval_ms,
        }
    }

    /// Decides whether a heartbeat is due at `now_ms` for a stream last written at `last_write_ms`
    /// (both Unix epoch ms). Any write counts, not only heartbeats: an active stream needs none.
    #[must_use]
    pub fn poll(&self, now_ms: u64, last_write_ms: u64) -> HeartbeatDue {
        let interval_ms = self.interval_ms.max(1);
        let due_at_ms = last_write_ms.saturating_add(interval_ms);
        if now_ms >= due_at_ms {
            HeartbeatDue::Now {
                frame: self.frame(now_ms),
                next_at_ms: now_ms.saturating_add(interval_ms),
            }
        } else {
            HeartbeatDue::Later { at_ms: due_at_ms }
        }
    }

    /// The heartbeat frame for this profile, stamped with `now_ms`.
    #[must_use]
    pub fn frame(&self, now_ms: u64) -> Bytes {
        match self.profile {
            HeartbeatProfile::SqlMeshPing => {
                let name = EventName::from_static("ping");
                Frame::new()
                    .event(&name)
                    .data(&format!("{{\"timestamp\":{now_ms}}}"))
                    .to_bytes()
            }
            HeartbeatProfile::SluiceHeartbeat => {
                let name = EventName::from_static("heartbeat");
                let data = format!("{{\"timestamp\":\"{}\"}}", iso8601_utc_ms(now_ms));
                Frame::new().event(&name).data(&data).to_bytes()
            }
            HeartbeatProfile::Comment => Frame::new().comment("heartbeat").to_bytes(),
        }
    }
}

/// Formats Unix epoch milliseconds as ISO 8601 UTC with milliseconds: `2026-02-27T10:30:15.000Z`.
///
/// Years after 9999 get more digits (that is about 8000 years away, but the input is any `u64`).
pub(crate) fn iso8601_utc_ms(epoch_ms: u64) -> String {
    const MS_PER_DAY: u64 = 86_400_000;
    let days = epoch_ms / MS_PER_DAY;
    let ms_of_day = epoch_ms % MS_PER_DAY;
    let (year, month, day) = civil_from_days(days);
    let (hour, minute) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60);
    let (second, milli) = (ms_of_day / 1000 % 60, ms_of_day % 1000);
    let mut text = String::with_capacity(24);
    // Writing to a String cannot fail.
    let _ = write!(
        text,
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z"
    );
    text
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day).
///
/// Shift the calendar to start on 0000-03-01 so the leap day is the last day of a "year", then
/// split the day count into 400-year eras (146 097 days each, which repeat exactly), years within
/// the era, and days within the year; months from March have lengths that follow `(153 * m + 2) /
/// 5`. Unsigned arithmetic suffices because the input is never before 1970.
fn civil_from_days(days_since_1970: u64) -> (u64, u64, u64) {
    // Days from 0000-03-01 to 1970-01-01.
    const SHIFT_DAYS: u64 = 719_468;
    const DAYS_PER_ERA: u64 = 146_097;
    let days = days_since_1970 + SHIFT_DAYS;
    let era = days / DAYS_PER_ERA;
    let day_of_era = days % DAYS_PER_ERA; // 0..=146_096
                                          // Drop the extra day of every 4th year (but not every 100th, except the 400th) to count whole
                                          // years.
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // 0..=399
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // 0..=365
    let month_from_march = (5 * day_of_year + 2) / 153; // 0..=11
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn formats_known_instants() {
        // Expected values from GNU `date -u -d @<s>`.
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (999, "1970-01-01T00:00:00.999Z"),
            (86_399_999, "1970-01-01T23:59:59.999Z"),
            (86_400_000, "1970-01-02T00:00:00.000Z"),
            (94_694_399_000, "1972-12-31T23:59:59.000Z"), // first leap year after 1970: day 366
            (951_868_799_999, "2000-02-29T23:59:59.999Z"), // century divisible by 400 is leap
            (951_868_800_000, "2000-03-01T00:00:00.000Z"),
            (1_712_345_678_901, "2024-04-05T19:34:38.901Z"),
            (1_735_603_200_000, "2024-12-31T00:00:00.000Z"), // day 366 of a leap year
            (1_772_188_215_000, "2026-02-27T10:30:15.000Z"),
            (4_107_542_400_000, "2100-03-01T00:00:00.000Z"), // 2100 is not leap: Feb 28 -> Mar 1
            (4_107_542_399_999, "2100-02-28T23:59:59.999Z"),
            (13_574_606_400_000, "2400-02-29T12:00:00.000Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
            (253_402_300_800_000, "10000-01-01T00:00:00.000Z"),
        ];
        for (epoch_ms, expected) in cases {
            assert_eq!(iso8601_utc_ms(epoch_ms), expected, "{epoch_ms}");
        }
        // The largest input does not overflow.
        assert!(iso8601_utc_ms(u64::MAX).ends_with('Z'));
    }

    #[test]
    fn requested_profile_is_the_default_or_one_of_two_names() {
        for default in [
            HeartbeatProfile::SqlMeshPing,
            HeartbeatProfile::SluiceHeartbeat,
            HeartbeatProfile::Comment,
        ] {
            assert_eq!(HeartbeatProfile::requested(None, default), Ok(default));
            assert_eq!(
                HeartbeatProfile::requested(Some("comment"), default),
                Ok(HeartbeatProfile::Comment)
            );
            let event = HeartbeatProfile::requested(Some("event"), default).unwrap();
            let frame = HeartbeatPolicy::new(event, 1).frame(0);
            assert_eq!(
                &frame[..],
                b"event: heartbeat\ndata: {\"timestamp\":\"1970-01-01T00:00:00.000Z\"}\n\n"
            );
        }
        // Values are exact: no case folding, no empty value, no list.
        for bad in ["Event", "", "event,comment", "ping"] {
            let error =
                HeartbeatProfile::requested(Some(bad), HeartbeatProfile::Comment).unwrap_err();
            assert_eq!(error.value, bad);
            assert_eq!(
                error.to_string(),
                alloc::format!("heartbeat {bad:?} is not one of: event, comment")
            );
        }
        let long = "x".repeat(1000);
        let error =
            HeartbeatProfile::requested(Some(&long), HeartbeatProfile::Comment).unwrap_err();
        assert_eq!(error.value.len(), 64);
    }

    #[cfg(not(target_arch = "wasm32"))]
    mod prop {
        use super::super::civil_from_days;
        use proptest::prelude::*;

        /// Walks the calendar a year and a month at a time: slow, obviously right.
        fn naive_civil_from_days(mut days: u64) -> (u64, u64, u64) {
            let is_leap = |year: u64| {
                (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
            };
            let mut year = 1970;
            loop {
                let year_days = if is_leap(year) { 366 } else { 365 };
                if days < year_days {
                    break;
                }
                days -= year_days;
                year += 1;
            }
            let february = if is_leap(year) { 29 } else { 28 };
            let lengths = [31, february, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
            let mut month = 1;
            for length in lengths {
                if days < length {
                    break;
                }
                days -= length;
                month += 1;
            }
            (year, month, days + 1)
        }

        proptest! {
            #[test]
            fn matches_naive_calendar(days in 0u64..3_000_000) {
                prop_assert_eq!(civil_from_days(days), naive_civil_from_days(days));
            }
        }
    }
}

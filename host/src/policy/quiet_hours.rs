//! Quiet hours in the recipient's own time zone.
//!
//! A window is two minutes of the local day, `start_minute` and `end_minute`, and BOTH are
//! inclusive: they are the first and the last minute in which the recipient must not be
//! disturbed. Storing the last quiet minute rather than the first free one means no window ever
//! needs a "24:00", every window fits in `0..=1439`, and a single quiet minute is expressible.
//! It also fixes what "the end" of a window is: the minute after `end_minute`, which is when
//! [`QuietHours::next_eligible`] lets a delivery go. `start > end` is a window that crosses
//! midnight (22:00–06:59 is quiet until 07:00 the next morning).
//!
//! Everything is wall-clock time in the recipient's zone, not a duration: "quiet until 07:00"
//! means until the clock on their wall says 07:00, so a quiet night is an hour shorter or longer
//! when the clocks change. Seconds are ignored because windows are configured in minutes; a
//! delivery at 06:59:30 is inside the 06:59 minute the recipient asked to keep quiet.
//!
//! Two wall-clock times do not name exactly one instant, and [`resolve_local`] settles both:
//!
//! * a time skipped when the clocks go forward (the spring-forward gap) resolves to the instant
//!   the clocks jump, the first moment the wall clock reads later than the requested time.
//!   Converting with the offset from before the gap would release the delivery up to an hour
//!   late; converting with the offset from after it would release it before the clock has
//!   reached the end of the window, i.e. still inside quiet hours.
//! * a time that happens twice when the clocks go back (the repeated hour) resolves to the
//!   LATER of the two instants. After the first reading the clock is set back and may re-enter
//!   the window, so only the second reading is certainly past it; an hour's delay in the middle
//!   of the night is cheaper than a message inside quiet hours. A consequence worth knowing:
//!   during the first pass of the repeated hour [`QuietHours::is_quiet`], which only looks at
//!   the wall clock, may say "not quiet" while `next_eligible` (asked earlier) points past it.

use chrono::{
    DateTime, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;

const MINUTES_PER_DAY: u16 = 24 * 60;
const SECONDS_PER_DAY: i64 = 24 * 60 * 60;

/// Why a recipient's quiet-hours settings were refused. Every message carries the settings
/// field it is about, so it can be shown as-is next to that field or in a plan explanation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuietHoursError {
    #[error("{field} must be a minute of the day from 0 (00:00) to 1439 (23:59), got {value}")]
    MinuteOutOfRange {
        /// `quiet_hours.start` or `quiet_hours.end`.
        field: &'static str,
        value: u16,
    },
    #[error(
        "quiet_hours.start ({start}, {}) and quiet_hours.end ({end}, {}) cover the whole day, so \
         a delivery would never become eligible; leave at least one minute outside quiet hours",
        clock(*.start),
        clock(*.end)
    )]
    WholeDay { start: u16, end: u16 },
    #[error("time_zone `{0}` is not a known IANA time zone name (for example `Europe/London`)")]
    UnknownZone(String),
}

/// A recipient's quiet window in minutes of their local day, both ends inclusive (see the
/// module documentation). The fields are public so stored settings can be read back without
/// ceremony; build from untrusted input with [`QuietHours::new`], which refuses windows that
/// would hold a delivery for ever.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QuietHours {
    /// First quiet minute of the local day (0 = 00:00, 1439 = 23:59).
    pub start_minute: u16,
    /// Last quiet minute of the local day; a delivery may go from the minute after it.
    pub end_minute: u16,
}

impl QuietHours {
    pub fn new(start_minute: u16, end_minute: u16) -> Result<QuietHours, QuietHoursError> {
        for (field, value) in [
            ("quiet_hours.start", start_minute),
            ("quiet_hours.end", end_minute),
        ] {
            if value >= MINUTES_PER_DAY {
                return Err(QuietHoursError::MinuteOutOfRange { field, value });
            }
        }
        // With both ends inclusive, the only way to cover all 1440 minutes is for the window to
        // end the minute before it starts (0–1439, 420–419, ...). Such a window has no end
        // instant, so a deferred delivery would wait for ever rather than fail visibly.
        if (end_minute + 1) % MINUTES_PER_DAY == start_minute {
            return Err(QuietHoursError::WholeDay {
                start: start_minute,
                end: end_minute,
            });
        }
        Ok(QuietHours {
            start_minute,
            end_minute,
        })
    }

    /// Whether a minute of the local day is quiet. Takes a bare minute so callers that already
    /// hold local time (digests, previews) need not round-trip through an instant.
    pub fn contains_minute(&self, minute: u16) -> bool {
        if self.crosses_midnight() {
            minute >= self.start_minute || minute <= self.end_minute
        } else {
            (self.start_minute..=self.end_minute).contains(&minute)
        }
    }

    /// Whether `at` falls in quiet hours for someone in `tz`. Decided by the wall clock alone,
    /// the way the recipient experiences it, so the answer follows the clocks when they change.
    pub fn is_quiet(&self, tz: Tz, at: DateTime<Utc>) -> bool {
        self.contains_minute(minute_of_day(at.with_timezone(&tz).time()))
    }

    /// When a delivery held at `at` may go: `None` if `at` is not in quiet hours (nothing to
    /// wait for), otherwise the instant the window ends — the local minute after `end_minute`,
    /// on the date that window actually ends, resolved with the DST rules of [`resolve_local`].
    ///
    /// The result is always later than `at`: the end is later on the wall clock, a gap resolves
    /// to the clock jump (which `at` cannot be past, as the end lies beyond it), and an
    /// ambiguous end resolves to its later reading.
    pub fn next_eligible(&self, tz: Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&tz);
        let minute = minute_of_day(local.time());
        if !self.contains_minute(minute) {
            return None;
        }
        // A window crossing midnight that was entered before midnight ends tomorrow; one entered
        // after midnight (or one within a day) ends today. The local date matters here, not the
        // UTC one: at 00:30 in Kolkata it is still the previous day in UTC.
        let mut end_date = local.date_naive();
        if self.crosses_midnight() && minute >= self.start_minute {
            end_date = end_date + Days::new(1);
        }
        // `end_minute + 1` is 1440 for a window ending at 23:59, which `resolve_local` reads as
        // the following midnight.
        Some(resolve_local(tz, end_date, self.end_minute + 1))
    }

    fn crosses_midnight(&self) -> bool {
        self.start_minute > self.end_minute
    }
}

/// Validates a recipient's `time_zone` setting. IANA names only, because offsets such as
/// `+02:00` cannot follow a recipient through daylight-saving changes.
pub fn parse_zone(name: &str) -> Result<Tz, QuietHoursError> {
    name.parse::<Tz>()
        .map_err(|_| QuietHoursError::UnknownZone(name.to_owned()))
}

/// The instant at which the wall clock in `tz` reads `minute_of_day` on `date`, settling the two
/// DST cases as the module documentation describes: a skipped time becomes the instant the
/// clocks jump; a repeated time becomes its later reading. Shared by everything that schedules
/// by the recipient's clock (quiet hours, digest windows) so they all agree on those cases.
///
/// `minute_of_day` may be 1440 or more and then counts on into the following days, so "the
/// minute after 23:59" needs no special case at the call site.
///
/// Panics only for dates within a day of the limits of chrono's calendar (about ±262,000 years).
pub fn resolve_local(tz: Tz, date: NaiveDate, minute_of_day: u16) -> DateTime<Utc> {
    let wall = date.and_time(NaiveTime::MIN) + TimeDelta::minutes(i64::from(minute_of_day));
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(instant) => instant.with_timezone(&Utc),
        LocalResult::Ambiguous(a, b) => a.max(b).with_timezone(&Utc),
        LocalResult::None => first_instant_reaching(tz, wall),
    }
}

/// The first instant at which the wall clock in `tz` reads `wall` or later, found by bisection
/// over UTC seconds. Not "step through local minutes until one exists": bisection lands on the
/// jump itself even if a gap does not end on a whole minute, and needs no guess at how long a
/// gap can be (Lord Howe's is 30 minutes; Samoa skipped all of 2011-12-30).
///
/// The bracket is a day either side of `wall` read as UTC: every UTC offset is less than a day,
/// so the clock reads earlier than `wall` at the low end and later at the high end. tz
/// transitions fall on whole seconds, so second resolution gives the exact transition instant.
fn first_instant_reaching(tz: Tz, wall: NaiveDateTime) -> DateTime<Utc> {
    let instant = |seconds: i64| {
        DateTime::from_timestamp(seconds, 0).expect("a day from a valid date is in chrono's range")
    };
    let reached = |seconds: i64| instant(seconds).with_timezone(&tz).naive_local() >= wall;
    let as_utc = wall.and_utc().timestamp();
    let (mut before, mut after) = (as_utc - SECONDS_PER_DAY, as_utc + SECONDS_PER_DAY);
    while after - before > 1 {
        let middle = before + (after - before) / 2;
        if reached(middle) {
            after = middle;
        } else {
            before = middle;
        }
    }
    instant(after)
}

fn minute_of_day(time: NaiveTime) -> u16 {
    // hour < 24 and minute < 60, so this is below 1440 and fits.
    (time.hour() * 60 + time.minute()) as u16
}

/// `HH:MM` for error messages, so a misconfigured window reads the way it was meant.
fn clock(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

#[cfg(test)]
mod tests;

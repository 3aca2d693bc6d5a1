//! Digest windows: how a digest rule cuts time into half-open windows `[start, end)`, and which
//! window an instant falls in.
//!
//! Two kinds:
//!
//! * [`Window::Fixed`]: every `minutes` minutes, counted from the Unix epoch in UTC. A 60-minute
//!   window runs from one UTC hour to the next, a 1440-minute window from UTC midnight to UTC
//!   midnight, and a week-long one from Thursday 00:00 UTC (the epoch was a Thursday). Widths
//!   that do not divide a day are still aligned to the epoch, not to the day. No time zone is
//!   involved, so every window is exactly `minutes` long.
//! * [`Window::Boundary`]: from a time of day on the recipient's wall clock to the same time the
//!   next day. The boundary on local date `D` is [`resolve_local`]`(zone, D, minute_of_day)`, so
//!   the daylight-saving rules are the ones quiet hours use: a boundary in a spring-forward gap
//!   is the instant the clocks jump, a repeated one is its later reading. Windows therefore
//!   follow the clocks: one containing a spring-forward is shorter than 24 hours (23 hours for
//!   a one-hour shift), one containing a fall-back longer (25 hours). A boundary inside the gap
//!   splits the lost time between two windows (a 02:30 boundary in New York gives two windows of
//!   23½ hours around 2026-03-08).
//!
//! The window containing an instant `at` runs from the latest boundary at or before `at` to the
//! first one after it, so `start <= at < end` always. Finding it starts from the boundary on
//! `at`'s local date and steps a day back or forward as needed. Usually one step at most is
//! enough, but not always: where the clocks fall back across midnight, the wall clock first
//! reads the new date, then is set back into the old one and passes the boundary a second time.
//! The boundary of the old date is that second reading, so it lies *after* an instant that
//! already reads the new date. America/St_Johns did this every autumn from 1987 to 2010
//! (00:01 NDT back to 23:01 NST): with a 23:30 boundary, 2010-11-07 00:00:30 NDT is before the
//! 23:30 boundary of 2010-11-06, and its window starts the day before. [`Window::bucket_at`]
//! keeps stepping until the invariant holds rather than trusting the first candidate.

use chrono::{DateTime, Datelike, Days, NaiveDate, TimeDelta, Utc, Weekday};
use chrono_tz::Tz;
use std::num::NonZeroU32;

use crate::policy::quiet_hours::{parse_zone, resolve_local};

const MINUTES_PER_DAY: i64 = 24 * 60;

/// How a digest rule cuts time into windows. Windows are half-open [start, end).
///
/// Build from untrusted input with [`Window::fixed`], [`Window::boundary`] or
/// [`Window::from_stored`], which validate; the variants are public so a window can be matched
/// on (a fixed window's width is a `NonZeroU32`, so even a hand-built one has windows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Window {
    /// Every `minutes` minutes, aligned to the Unix epoch in UTC (60 → on the hour, UTC).
    Fixed { minutes: NonZeroU32 },
    /// From one local time of day to the same time the next day, in `zone`.
    Boundary { minute_of_day: u16, zone: Tz },
    /// From a local time on one weekday to the same time a week later, in `zone` (a
    /// recipient's weekly digest cadence).
    Weekly {
        weekday: Weekday,
        minute_of_day: u16,
        zone: Tz,
    },
}

/// Why a digest window was refused. Every message names the rule field it is about
/// (`window.minutes`, `window.at`, `window.zone`, or `window.kind` for a stored window of an
/// unknown kind), so it can be shown as-is next to that field.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum WindowError {
    #[error(
        "window.minutes must be from 1 to {max} (one week), got {0}",
        max = Window::MAX_FIXED_MINUTES
    )]
    MinutesOutOfRange(i64),
    #[error(
        "window.minutes must be a whole number of minutes from 1 to {max}, got `{0}`",
        max = Window::MAX_FIXED_MINUTES
    )]
    MinutesNotANumber(String),
    #[error("window.at must be a minute of the day from 0 (00:00) to 1439 (23:59), got {0}")]
    AtOutOfRange(i64),
    #[error("window.at must be a time of day written HH:MM, from 00:00 to 23:59, got `{0}`")]
    AtNotATime(String),
    #[error("window.zone `{0}` is not a known IANA time zone name (for example `Europe/London`)")]
    UnknownZone(String),
    #[error("window.zone is missing: a boundary window is written `HH:MM Area/City`, got `{0}`")]
    MissingZone(String),
    #[error("window.day must be a weekday (mon, tue, … sun), got `{0}`")]
    UnknownWeekday(String),
    #[error("window.kind must be `fixed`, `boundary` or `weekly`, got `{0}`")]
    UnknownKind(String),
}

impl Window {
    /// The longest fixed window: one week.
    pub const MAX_FIXED_MINUTES: u32 = 7 * 24 * 60;

    /// 1..=MAX_FIXED_MINUTES, else WindowError naming `window.minutes` and the value.
    pub fn fixed(minutes: i64) -> Result<Window, WindowError> {
        match u32::try_from(minutes) {
            Ok(minutes @ 1..=Window::MAX_FIXED_MINUTES) => Ok(Window::Fixed {
                minutes: NonZeroU32::new(minutes).expect("at least 1"),
            }),
            _ => Err(WindowError::MinutesOutOfRange(minutes)),
        }
    }

    /// minute_of_day 0..=1439 (`window.at`), zone an IANA name (`window.zone`).
    pub fn boundary(minute_of_day: i64, zone: &str) -> Result<Window, WindowError> {
        let minute_of_day = match u16::try_from(minute_of_day) {
            Ok(minute) if i64::from(minute) < MINUTES_PER_DAY => minute,
            _ => return Err(WindowError::AtOutOfRange(minute_of_day)),
        };
        let zone = parse_zone(zone).map_err(|_| WindowError::UnknownZone(zone.to_owned()))?;
        Ok(Window::Boundary {
            minute_of_day,
            zone,
        })
    }

    /// weekday, minute_of_day 0..=1439 (`window.at`), zone an IANA name (`window.zone`).
    pub fn weekly(weekday: Weekday, minute_of_day: i64, zone: &str) -> Result<Window, WindowError> {
        match Window::boundary(minute_of_day, zone)? {
            Window::Boundary {
                minute_of_day,
                zone,
            } => Ok(Window::Weekly {
                weekday,
                minute_of_day,
                zone,
            }),
            _ => unreachable!("boundary() builds a boundary window"),
        }
    }

    /// The window containing `at`: start <= at < end.
    ///
    /// Panics for instants within a week of the limits of chrono's calendar (about ±262,000
    /// years).
    pub fn bucket_at(&self, at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        match *self {
            Window::Fixed { minutes } => fixed_bucket(minutes, at),
            Window::Boundary {
                minute_of_day,
                zone,
            } => boundary_bucket(minute_of_day, zone, at),
            Window::Weekly {
                weekday,
                minute_of_day,
                zone,
            } => weekly_bucket(weekday, minute_of_day, zone, at),
        }
    }

    /// e.g. "every 60 min (aligned to the Unix epoch, UTC)" / "daily from 09:00 in Europe/London".
    pub fn describe(&self) -> String {
        match self {
            Window::Fixed { minutes } => {
                format!("every {minutes} min (aligned to the Unix epoch, UTC)")
            }
            Window::Boundary {
                minute_of_day,
                zone,
            } => format!("daily from {} in {}", clock(*minute_of_day), zone.name()),
            Window::Weekly {
                weekday,
                minute_of_day,
                zone,
            } => format!(
                "weekly from {} {} in {}",
                day_name(*weekday),
                clock(*minute_of_day),
                zone.name()
            ),
        }
    }

    /// Stored form: kind ("fixed"|"boundary") and spec ("60" | "09:00 Europe/London"), and back.
    pub fn kind(&self) -> &'static str {
        match self {
            Window::Fixed { .. } => "fixed",
            Window::Boundary { .. } => "boundary",
            Window::Weekly { .. } => "weekly",
        }
    }

    /// The stored spec: the minutes of a fixed window (`60`), or the boundary's time of day and
    /// zone (`09:00 Europe/London`). Read back with [`Window::from_stored`].
    pub fn spec(&self) -> String {
        match self {
            Window::Fixed { minutes } => minutes.to_string(),
            Window::Boundary {
                minute_of_day,
                zone,
            } => format!("{} {}", clock(*minute_of_day), zone.name()),
            Window::Weekly {
                weekday,
                minute_of_day,
                zone,
            } => format!(
                "{} {} {}",
                day_name(*weekday),
                clock(*minute_of_day),
                zone.name()
            ),
        }
    }

    /// The window [`Window::kind`] and [`Window::spec`] describe, validated as the constructors
    /// validate. The spec must be exactly what `spec` writes: no surrounding spaces, `HH:MM`
    /// with two digits each, one space before the zone.
    pub fn from_stored(kind: &str, spec: &str) -> Result<Window, WindowError> {
        match kind {
            "fixed" => {
                let minutes = spec
                    .parse::<i64>()
                    .map_err(|_| WindowError::MinutesNotANumber(spec.to_owned()))?;
                Window::fixed(minutes)
            }
            "boundary" => {
                let (at, zone) = spec
                    .split_once(' ')
                    .ok_or_else(|| WindowError::MissingZone(spec.to_owned()))?;
                let minute_of_day =
                    parse_clock(at).ok_or_else(|| WindowError::AtNotATime(at.to_owned()))?;
                Window::boundary(minute_of_day, zone)
            }
            "weekly" => {
                let (day, rest) = spec
                    .split_once(' ')
                    .ok_or_else(|| WindowError::MissingZone(spec.to_owned()))?;
                let weekday = parse_day(day)?;
                match Window::from_stored("boundary", rest)? {
                    Window::Boundary {
                        minute_of_day,
                        zone,
                    } => Ok(Window::Weekly {
                        weekday,
                        minute_of_day,
                        zone,
                    }),
                    _ => unreachable!("a boundary spec reads back as a boundary window"),
                }
            }
            other => Err(WindowError::UnknownKind(other.to_owned())),
        }
    }
}

/// Epoch-aligned: the start is `at` rounded down to a multiple of the width since 1970-01-01
/// 00:00 UTC. `timestamp` is already the floor of `at` in whole seconds (also before the epoch,
/// where the nanoseconds still count forward), and the width is whole seconds, so flooring the
/// seconds floors the instant.
fn fixed_bucket(minutes: NonZeroU32, at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let width = i64::from(minutes.get()) * 60;
    let start_seconds = at.timestamp().div_euclid(width) * width;
    let start =
        DateTime::from_timestamp(start_seconds, 0).expect("a window start is in chrono's range");
    (start, start + TimeDelta::seconds(width))
}

/// The latest boundary at or before `at` and the first one after it; see the module
/// documentation for why this may need more than one step from `at`'s local date.
fn boundary_bucket(
    minute_of_day: u16,
    zone: Tz,
    at: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let date = at.with_timezone(&zone).date_naive();
    stepped_bucket(zone, minute_of_day, date, Days::new(1), at)
}

/// Like [`boundary_bucket`], with boundaries only on `weekday`, a week apart.
fn weekly_bucket(
    weekday: Weekday,
    minute_of_day: u16,
    zone: Tz,
    at: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let local = at.with_timezone(&zone).date_naive();
    let back = (7 + local.weekday().num_days_from_monday() - weekday.num_days_from_monday()) % 7;
    // The most recent `weekday` on or before `at`'s local date.
    let date = local - Days::new(u64::from(back));
    stepped_bucket(zone, minute_of_day, date, Days::new(7), at)
}

/// The window around `at` whose boundaries are `minute_of_day` in `zone` on the dates `date`
/// + k × `step`, starting the search from `date`.
fn stepped_bucket(
    zone: Tz,
    minute_of_day: u16,
    mut date: NaiveDate,
    step: Days,
    at: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let boundary = |date: NaiveDate| resolve_local(zone, date, minute_of_day);
    // Invariant from here on: start = boundary(date), end = boundary(date + step).
    let candidate = boundary(date);
    let (mut start, mut end) = if candidate <= at {
        (candidate, boundary(date + step))
    } else {
        date = date - step;
        (boundary(date), candidate)
    };
    // Only a fall-back across midnight gets past the first step (the wall clock has read
    // `at`'s date before being set back into the day before); step until start <= at < end.
    // Boundaries grow by about a step per date, so each loop ends within a step or two.
    while start > at {
        date = date - step;
        end = start;
        start = boundary(date);
    }
    while end <= at {
        date = date + step;
        start = end;
        end = boundary(date + step);
    }
    (start, end)
}

/// `mon` … `sun`, as stored in a spec.
fn day_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}

/// A weekday by its English name or three-letter abbreviation, any case.
pub fn parse_day(text: &str) -> Result<Weekday, WindowError> {
    text.parse::<Weekday>()
        .map_err(|_| WindowError::UnknownWeekday(text.to_owned()))
}

/// `HH:MM`, as stored in a spec and shown in descriptions.
fn clock(minute_of_day: u16) -> String {
    format!("{:02}:{:02}", minute_of_day / 60, minute_of_day % 60)
}

/// The minute of the day a strict `HH:MM` names (two digits each, 00:00 to 23:59), or `None`.
fn parse_clock(text: &str) -> Option<i64> {
    let (hours, minutes) = text.split_once(':')?;
    let two_digits = |part: &str| {
        (part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse::<i64>().ok())
            .flatten()
    };
    let (hours, minutes) = (two_digits(hours)?, two_digits(minutes)?);
    (hours < 24 && minutes < 60).then_some(hours * 60 + minutes)
}

#[cfg(test)]
mod tests;

//! The one bound on every duration and instant that comes from outside (API bodies, CLI
//! flags, settings), and checked arithmetic for the ones already stored.
//!
//! chrono panics when a `TimeDelta` or a time plus one leaves its range (±292 million years
//! for a delta, ±262,000 years for a date). A cooldown of `i64::MAX` seconds, accepted and
//! stored, once made every later trigger of its tenant panic. So a span or an instant is
//! checked against [`MAX_SPAN_SECS`] where it enters, and a stored one (which may predate the
//! check) is only ever added with [`after`]/[`before`], which answer an error rather than
//! panic.

use chrono::{DateTime, TimeDelta, Utc};

/// The longest span belfry takes from outside, and how far from now an instant may be: ten
/// years (3,653 days). No cooldown, cap window, deferral, suppression or lease means more;
/// and any time within it of now is so far inside chrono's range that sums and differences
/// of such values cannot overflow.
pub const MAX_SPAN_SECS: i64 = 3_653 * 86_400;

/// [`MAX_SPAN_SECS`] as a `std` duration (for leases, polls and retries).
pub const MAX_SPAN: std::time::Duration = std::time::Duration::from_secs(MAX_SPAN_SECS as u64);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BoundsError {
    /// A span outside `min..=MAX_SPAN_SECS`.
    #[error("{field} must be between {min} and {MAX_SPAN_SECS} seconds (ten years), got {value}")]
    Span {
        field: String,
        value: i128,
        min: i64,
    },
    /// An instant more than ten years from now.
    #[error("{field} must be within ten years of now, got {at}")]
    Instant { field: String, at: String },
    /// A stored span or time whose sum leaves the range of times.
    #[error("{field}: {at} {op} {secs} s is outside the range of times")]
    Overflow {
        field: String,
        at: String,
        op: char,
        secs: i64,
    },
}

impl BoundsError {
    /// The field (or flag) the value was given as.
    pub fn field(&self) -> &str {
        match self {
            BoundsError::Span { field, .. }
            | BoundsError::Instant { field, .. }
            | BoundsError::Overflow { field, .. } => field,
        }
    }
}

/// `value` seconds given as `field`, if it lies in `min..=MAX_SPAN_SECS`. Takes any integer
/// width so a caller never truncates before checking.
pub fn span_secs(field: &str, value: impl Into<i128>, min: i64) -> Result<i64, BoundsError> {
    let value = value.into();
    if value < i128::from(min) || value > i128::from(MAX_SPAN_SECS) {
        return Err(BoundsError::Span {
            field: field.to_string(),
            value,
            min,
        });
    }
    Ok(value as i64)
}

/// A `std` duration given as `field`, if it lies in `min..=MAX_SPAN` (a fraction of a second
/// counts as its whole seconds for the upper bound).
pub fn span(
    field: &str,
    value: std::time::Duration,
    min: std::time::Duration,
) -> Result<std::time::Duration, BoundsError> {
    if value < min || value > MAX_SPAN {
        return Err(BoundsError::Span {
            field: field.to_string(),
            value: i128::from(value.as_secs()),
            min: min.as_secs() as i64,
        });
    }
    Ok(value)
}

/// `at`, if it lies within ten years of `now` either way.
pub fn instant(
    field: &str,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, BoundsError> {
    let within = at
        .signed_duration_since(now)
        .num_seconds()
        .checked_abs()
        .is_some_and(|s| s <= MAX_SPAN_SECS);
    if !within {
        return Err(BoundsError::Instant {
            field: field.to_string(),
            at: at.to_rfc3339(),
        });
    }
    Ok(at)
}

/// `at + secs`, or an error naming `field` when the sum leaves the range of times.
pub fn after(field: &str, at: DateTime<Utc>, secs: i64) -> Result<DateTime<Utc>, BoundsError> {
    TimeDelta::try_seconds(secs)
        .and_then(|d| at.checked_add_signed(d))
        .ok_or_else(|| overflow(field, at, '+', secs))
}

/// `at - secs`, or an error naming `field` when the difference leaves the range of times.
pub fn before(field: &str, at: DateTime<Utc>, secs: i64) -> Result<DateTime<Utc>, BoundsError> {
    TimeDelta::try_seconds(secs)
        .and_then(|d| at.checked_sub_signed(d))
        .ok_or_else(|| overflow(field, at, '-', secs))
}

/// `at + d` with `d` taken as at most ten years: for waits a plugin or a provider asks for
/// (a `retry-after`), where asking for longer means "much later", not an error.
pub fn later(at: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    let d = TimeDelta::from_std(d.min(MAX_SPAN)).unwrap_or(TimeDelta::MAX);
    // Ten years from any time belfry handles is inside chrono's range; the fallback is for a
    // caller passing a time near the end of it.
    at.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn overflow(field: &str, at: DateTime<Utc>, op: char, secs: i64) -> BoundsError {
    BoundsError::Overflow {
        field: field.to_string(),
        at: at.to_rfc3339(),
        op,
        secs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_checked_before_any_conversion() {
        assert_eq!(span_secs("cooldown", 600, 1), Ok(600));
        assert_eq!(span_secs("cooldown", MAX_SPAN_SECS, 1), Ok(MAX_SPAN_SECS));
        for bad in [
            0i128,
            -1,
            i128::from(MAX_SPAN_SECS) + 1,
            i128::from(i64::MAX),
        ] {
            let e = span_secs("cooldown", bad, 1).unwrap_err();
            assert_eq!(e.field(), "cooldown");
            assert!(e.to_string().contains("ten years"), "{e}");
        }
        assert!(span_secs("x", u64::MAX, 0).is_err());
        assert!(span("lease", MAX_SPAN * 2, std::time::Duration::ZERO).is_err());
    }

    #[test]
    fn arithmetic_on_any_stored_value_is_an_error_not_a_panic() {
        let now = Utc::now();
        assert!(after("cooldown", now, i64::MAX).is_err());
        assert!(before("cooldown", now, i64::MAX).is_err());
        assert!(before("cooldown", now, i64::MIN).is_err());
        assert!(after("cooldown", DateTime::<Utc>::MAX_UTC, 1).is_err());
        assert_eq!(
            before("cooldown", now, 60).unwrap(),
            now - TimeDelta::seconds(60)
        );
        assert!(instant("until", now + TimeDelta::days(3_654), now).is_err());
        assert!(instant("until", now - TimeDelta::days(3_654), now).is_err());
        assert!(instant("until", DateTime::<Utc>::MAX_UTC, now).is_err());
        assert!(instant("until", now + TimeDelta::days(3_652), now).is_ok());
        assert_eq!(
            later(now, std::time::Duration::MAX),
            now + TimeDelta::seconds(MAX_SPAN_SECS)
        );
    }
}

//! Providers' timestamps as milliseconds since the Unix epoch: RFC 3339 (Resend's webhooks,
//! most JSON APIs) and RFC 2822 (Twilio's API resources).
//!
//! Hand-written rather than a date crate: the adapters only ever turn a provider's instant
//! into an `s64`, and a full calendar library would dominate the size of every component.
//! Both parsers are strict about the fields they read and return `None` on anything else,
//! so a provider changing its format shows up as a missing `occurred-at`, not a wrong one.

/// Milliseconds since the epoch for an RFC 3339 date-time: `2026-12-02T10:00:00.123Z`,
/// `2026-12-02T10:00:00+01:00`, `2026-12-02 10:00:00.894719+00:00`. Fractions beyond
/// milliseconds are truncated; `t`, `z` and a space separator are accepted as RFC 3339 allows.
pub fn rfc3339_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    let bytes = text.as_bytes();
    if bytes.len() < 20 {
        return None;
    }
    let year = digits(bytes, 0, 4)?;
    let month = digits(bytes, 5, 2)?;
    let day = digits(bytes, 8, 2)?;
    let hour = digits(bytes, 11, 2)?;
    let minute = digits(bytes, 14, 2)?;
    let second = digits(bytes, 17, 2)?;
    if bytes[4] != b'-'
        || bytes[7] != b'-'
        || !matches!(bytes[10], b'T' | b't' | b' ')
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }

    let mut rest = &text[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let len = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return None;
        }
        // Pad or truncate to three digits: "5" is 500 ms, "894719" is 894 ms.
        let padded = format!("{:0<3}", &fraction[..len.min(3)]);
        millis = padded.parse::<i64>().ok()?;
        rest = &fraction[len..];
    }

    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ => numeric_offset(rest, true)?,
    };

    let seconds = epoch_seconds(year, month, day, hour, minute, second)?;
    Some((seconds - offset_minutes * 60) * 1000 + millis)
}

/// Milliseconds since the epoch for an RFC 2822 date: `Wed, 02 Dec 2026 10:00:00 +0000`, as
/// Twilio writes `date_created`. The day name is optional (and not checked against the
/// date), seconds are optional, and the zone is numeric or `UT`/`UTC`/`GMT`/`Z`.
pub fn rfc2822_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    // The day name, when present, ends with a comma.
    let text = match text.split_once(',') {
        Some((name, rest)) if name.trim().len() == 3 => rest,
        Some(_) => return None,
        None => text,
    };
    let mut parts = text.split_whitespace();
    let day = number(parts.next()?, 1, 2)?;
    let month = month_number(parts.next()?)?;
    let year = number(parts.next()?, 4, 4)?;
    let time = parts.next()?;
    let zone = parts.next()?;
    if parts.next().is_some() {
        return None;
    }

    let mut clock = time.split(':');
    let hour = number(clock.next()?, 2, 2)?;
    let minute = number(clock.next()?, 2, 2)?;
    let second = match clock.next() {
        Some(second) => number(second, 2, 2)?,
        None => 0,
    };
    if clock.next().is_some() {
        return None;
    }

    let offset_minutes = match zone {
        "UT" | "UTC" | "GMT" | "Z" => 0,
        _ => numeric_offset(zone, false)?,
    };

    let seconds = epoch_seconds(year, month, day, hour, minute, second)?;
    Some((seconds - offset_minutes * 60) * 1000)
}

/// Minutes east of UTC for `+hh:mm` (RFC 3339, `colon`) or `+hhmm` (RFC 2822).
fn numeric_offset(zone: &str, colon: bool) -> Option<i64> {
    let bytes = zone.as_bytes();
    let sign = match bytes.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let minutes_at = if colon { 4 } else { 3 };
    if bytes.len() != minutes_at + 2 || (colon && bytes[3] != b':') {
        return None;
    }
    let hours = digits(bytes, 1, 2)?;
    let minutes = digits(bytes, minutes_at, 2)?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some(sign * (hours * 60 + minutes))
}

/// Seconds since the epoch for a UTC civil date and time, after range checks. A leap second
/// (`:60`) is accepted and lands on the next minute's first second.
fn epoch_seconds(
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
) -> Option<i64> {
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_since_epoch(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given date in the proleptic Gregorian calendar: whole 400-year
/// eras (146 097 days each) counted from 0000-03-01, so February's leap day ends each year.
fn days_since_epoch(year: i64, month: i64, day: i64) -> i64 {
    // Count years from March, so the leap day is the last day of the (shifted) year.
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719 468 days lie between 0000-03-01 and 1970-01-01.
    era * 146_097 + day_of_era - 719_468
}

/// The `len` ASCII digits at `start` of `bytes`, as a number.
fn digits(bytes: &[u8], start: usize, len: usize) -> Option<i64> {
    let slice = bytes.get(start..start + len)?;
    slice.iter().try_fold(0i64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
    })
}

/// `text` as a number of `min..=max` ASCII digits.
fn number(text: &str, min: usize, max: usize) -> Option<i64> {
    if !(min..=max).contains(&text.len()) {
        return None;
    }
    digits(text.as_bytes(), 0, text.len())
}

fn month_number(name: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let name = name.to_ascii_lowercase();
    MONTHS
        .iter()
        .position(|month| *month == name)
        .map(|index| index as i64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-02T10:00:00Z: 20 789 days after the epoch (`date -ud 2026-12-02T10:00:00Z +%s`
    /// is 1796205600).
    const DEC_2_2026_10H: i64 = 1_796_205_600_000;

    #[test]
    fn rfc3339_reads_utc_offsets_and_fractions() {
        assert_eq!(rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_ms("2026-12-02T10:00:00Z"), Some(DEC_2_2026_10H));
        assert_eq!(
            rfc3339_ms("2026-12-02T10:00:00.123Z"),
            Some(DEC_2_2026_10H + 123)
        );
        assert_eq!(
            rfc3339_ms("2026-12-02T10:00:00.5z"),
            Some(DEC_2_2026_10H + 500)
        );
        assert_eq!(
            rfc3339_ms("2026-12-02 10:00:00.894719+00:00"),
            Some(DEC_2_2026_10H + 894)
        );
        assert_eq!(
            rfc3339_ms("2026-12-02T11:00:00+01:00"),
            Some(DEC_2_2026_10H)
        );
        assert_eq!(
            rfc3339_ms("2026-12-02T10:00:00+01:00"),
            Some(DEC_2_2026_10H - 3_600_000)
        );
        assert_eq!(
            rfc3339_ms("2026-12-02T04:30:00-05:30"),
            Some(DEC_2_2026_10H)
        );
        // Before the epoch, and a leap day.
        assert_eq!(rfc3339_ms("1969-12-31T23:59:59Z"), Some(-1000));
        assert_eq!(rfc3339_ms("2024-02-29T00:00:00Z"), Some(1_709_164_800_000));
        assert_eq!(rfc3339_ms("2000-03-01T00:00:00Z"), Some(951_868_800_000));
    }

    #[test]
    fn rfc3339_refuses_what_it_cannot_read() {
        for bad in [
            "",
            "2026-12-02",
            "2026-12-02T10:00:00",
            "2026-12-02T10:00:00+0100",
            "2026-12-02T10:00:00.Z",
            "2026-13-02T10:00:00Z",
            "2026-02-29T10:00:00Z",
            "2026-12-02T24:00:00Z",
            "2026-12-02T10:60:00Z",
            "2026/12/02T10:00:00Z",
            "Wed, 02 Dec 2026 10:00:00 +0000",
            "2026-12-02T10:00:00Zjunk",
        ] {
            assert_eq!(rfc3339_ms(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn rfc2822_reads_twilio_dates() {
        assert_eq!(
            rfc2822_ms("Wed, 02 Dec 2026 10:00:00 +0000"),
            Some(DEC_2_2026_10H)
        );
        assert_eq!(
            rfc2822_ms("2 Dec 2026 11:00:00 +0100"),
            Some(DEC_2_2026_10H)
        );
        assert_eq!(
            rfc2822_ms("Wed, 02 dec 2026 05:00 -0500"),
            Some(DEC_2_2026_10H)
        );
        assert_eq!(
            rfc2822_ms("Wed, 02 Dec 2026 10:00:00 GMT"),
            Some(DEC_2_2026_10H)
        );
        assert_eq!(rfc2822_ms("Thu, 01 Jan 1970 00:00:01 UT"), Some(1000));
    }

    #[test]
    fn rfc2822_refuses_what_it_cannot_read() {
        for bad in [
            "",
            "Wed, 02 Dec 2026",
            "Wed, 02 Dek 2026 10:00:00 +0000",
            "Wed, 31 Nov 2026 10:00:00 +0000",
            "Wed, 02 Dec 26 10:00:00 +0000",
            "Wed, 02 Dec 2026 10:00:00 +00:00",
            "Wed, 02 Dec 2026 10:00:00 PST",
            "Wed, 02 Dec 2026 10:00:00 +0000 extra",
            "Wednesday, 02 Dec 2026 10:00:00 +0000",
            "2026-12-02T10:00:00Z",
        ] {
            assert_eq!(rfc2822_ms(bad), None, "{bad:?}");
        }
    }
}

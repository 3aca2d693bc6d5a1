use super::*;
use chrono::{Offset, TimeZone};
use chrono_tz::{America, Antarctica, Asia, Australia, Europe, Pacific};

const NY: Tz = America::New_York;
const LONDON: Tz = Europe::London;
/// UTC+5:30 all year.
const KOLKATA: Tz = Asia::Kolkata;
/// UTC+10:30, +11:00 in the southern summer: a 30-minute shift.
const LORD_HOWE: Tz = Australia::Lord_Howe;
/// UTC+12:45, +13:45 in the southern summer.
const CHATHAM: Tz = Pacific::Chatham;
/// Fell back from 00:01 NDT (-2:30) to 23:01 NST (-3:30) the day before, until 2010.
const ST_JOHNS: Tz = America::St_Johns;

fn utc(text: &str) -> DateTime<Utc> {
    text.parse()
        .unwrap_or_else(|e| panic!("bad test instant {text}: {e}"))
}

fn fixed(minutes: i64) -> Window {
    Window::fixed(minutes).expect("test window is valid")
}

fn daily(hour: i64, minute: i64, zone: Tz) -> Window {
    Window::boundary(hour * 60 + minute, zone.name()).expect("test window is valid")
}

/// The offsets the boundary rows below are worked out with, checked against the tz database
/// rather than trusted. Rows are (label, zone, transition instant, offset before in minutes,
/// offset after in minutes).
#[test]
fn hard_coded_transitions_match_the_tz_database() {
    #[rustfmt::skip]
    let rows: &[(&str, Tz, &str, i32, i32)] = &[
        ("New York spring 2026", NY, "2026-03-08T07:00:00Z", -300, -240),
        ("New York fall 2026", NY, "2026-11-01T06:00:00Z", -240, -300),
        ("London spring 2026", LONDON, "2026-03-29T01:00:00Z", 0, 60),
        ("London fall 2026", LONDON, "2026-10-25T01:00:00Z", 60, 0),
        ("Lord Howe fall 2026", LORD_HOWE, "2026-04-04T15:00:00Z", 660, 630),
        ("Lord Howe spring 2026", LORD_HOWE, "2026-10-03T15:30:00Z", 630, 660),
        ("Chatham fall 2026", CHATHAM, "2026-04-04T14:00:00Z", 825, 765),
        ("Chatham spring 2026", CHATHAM, "2026-09-26T14:00:00Z", 765, 825),
        ("Kolkata (no DST)", KOLKATA, "2026-03-29T01:00:00Z", 330, 330),
        // 00:01 NDT on 2010-11-07 became 23:01 NST on 2010-11-06.
        ("St Johns fall 2010", ST_JOHNS, "2010-11-07T02:31:00Z", -150, -210),
        // 02:00 +11 on 2010-03-05 became 23:00 +08 on 2010-03-04.
        ("Casey 2010", Antarctica::Casey, "2010-03-04T15:00:00Z", 660, 480),
    ];
    let offset_minutes = |tz: Tz, at: DateTime<Utc>| {
        tz.offset_from_utc_datetime(&at.naive_utc())
            .fix()
            .local_minus_utc()
            / 60
    };
    for &(label, tz, at, before, after) in rows {
        let at = utc(at);
        assert_eq!(
            offset_minutes(tz, at - TimeDelta::seconds(1)),
            before,
            "{label}: offset before"
        );
        assert_eq!(offset_minutes(tz, at), after, "{label}: offset after");
    }
}

/// Rows are (label, window, at, expected start, expected end).
#[test]
fn fixed_windows_are_aligned_to_the_epoch() {
    #[rustfmt::skip]
    let rows: Vec<(&str, Window, &str, &str, &str)> = vec![
        ("1 min: at == start",
            fixed(1), "2026-05-17T10:23:00Z", "2026-05-17T10:23:00Z", "2026-05-17T10:24:00Z"),
        ("1 min: last nanosecond",
            fixed(1), "2026-05-17T10:23:59.999999999Z",
            "2026-05-17T10:23:00Z", "2026-05-17T10:24:00Z"),
        ("1 min: at == end is the next window",
            fixed(1), "2026-05-17T10:24:00Z", "2026-05-17T10:24:00Z", "2026-05-17T10:25:00Z"),
        ("15 min: at == start",
            fixed(15), "2026-05-17T10:15:00Z", "2026-05-17T10:15:00Z", "2026-05-17T10:30:00Z"),
        ("15 min: inside",
            fixed(15), "2026-05-17T10:29:59Z", "2026-05-17T10:15:00Z", "2026-05-17T10:30:00Z"),
        ("15 min: at == end is the next window",
            fixed(15), "2026-05-17T10:30:00Z", "2026-05-17T10:30:00Z", "2026-05-17T10:45:00Z"),
        ("60 min: on the UTC hour",
            fixed(60), "2026-05-17T10:00:00Z", "2026-05-17T10:00:00Z", "2026-05-17T11:00:00Z"),
        ("60 min: last nanosecond of the hour",
            fixed(60), "2026-05-17T10:59:59.999999999Z",
            "2026-05-17T10:00:00Z", "2026-05-17T11:00:00Z"),
        ("60 min: at == end is the next window",
            fixed(60), "2026-05-17T11:00:00Z", "2026-05-17T11:00:00Z", "2026-05-17T12:00:00Z"),
        ("60 min: the epoch itself",
            fixed(60), "1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "1970-01-01T01:00:00Z"),
        ("1440 min: UTC midnight",
            fixed(1440), "2026-05-17T00:00:00Z", "2026-05-17T00:00:00Z", "2026-05-18T00:00:00Z"),
        ("1440 min: last second of the UTC day",
            fixed(1440), "2026-05-17T23:59:59Z", "2026-05-17T00:00:00Z", "2026-05-18T00:00:00Z"),
        ("1440 min: at == end is the next window",
            fixed(1440), "2026-05-18T00:00:00Z", "2026-05-18T00:00:00Z", "2026-05-19T00:00:00Z"),
        // Minutes since the epoch at 10:23 are 1 mod 7, so the window began at 10:22.
        ("7 min: epoch-aligned, not hour-aligned",
            fixed(7), "2026-05-17T10:23:00Z", "2026-05-17T10:22:00Z", "2026-05-17T10:29:00Z"),
        // The epoch was a Thursday, and so was 2026-05-14.
        ("one week: Thursday 00:00 UTC",
            fixed(10080), "2026-05-17T10:23:00Z", "2026-05-14T00:00:00Z", "2026-05-21T00:00:00Z"),
        ("one week: at == end is the next window",
            fixed(10080), "2026-05-21T00:00:00Z", "2026-05-21T00:00:00Z", "2026-05-28T00:00:00Z"),
    ];
    for (label, window, at, start, end) in &rows {
        assert_eq!(window.bucket_at(utc(at)), (utc(start), utc(end)), "{label}");
    }
}

/// Rows are (label, window, at, expected start, expected end). Local times in the labels;
/// the instants were worked out from the offsets checked above (and `TZ=... date -d`).
#[test]
fn boundary_windows_follow_the_local_clock() {
    #[rustfmt::skip]
    let rows: Vec<(&str, Window, &str, &str, &str)> = vec![
        // New York, 02:30: inside the 2026-03-08 gap, so that day's boundary is the jump,
        // 03:00 EDT = 07:00Z; the lost hour is split between two 23½-hour windows.
        ("NY 02:30 winter: an ordinary 24 h window",
            daily(2, 30, NY), "2026-01-15T12:00:00Z",
            "2026-01-15T07:30:00Z", "2026-01-16T07:30:00Z"),
        ("NY 02:30 spring: 01:00 EST is before the jump",
            daily(2, 30, NY), "2026-03-08T06:00:00Z",
            "2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z"),
        ("NY 02:30 spring: last nanosecond before the jump",
            daily(2, 30, NY), "2026-03-08T06:59:59.999999999Z",
            "2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z"),
        ("NY 02:30 spring: the jump (03:00 EDT) starts the next window",
            daily(2, 30, NY), "2026-03-08T07:00:00Z",
            "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"),
        ("NY 02:30 spring: the day after ends at 02:30 EDT",
            daily(2, 30, NY), "2026-03-09T06:29:59Z",
            "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"),
        // 2026-11-01: 02:30 exists once (EST, 07:30Z), after the repeated 01:00-01:59.
        ("NY 02:30 fall: 01:30 EDT (first reading) is in the 25 h window",
            daily(2, 30, NY), "2026-11-01T05:30:00Z",
            "2026-10-31T06:30:00Z", "2026-11-01T07:30:00Z"),
        ("NY 02:30 fall: 01:30 EST (second reading) too",
            daily(2, 30, NY), "2026-11-01T06:30:00Z",
            "2026-10-31T06:30:00Z", "2026-11-01T07:30:00Z"),
        ("NY 02:30 fall: 02:30 EST starts the next window",
            daily(2, 30, NY), "2026-11-01T07:30:00Z",
            "2026-11-01T07:30:00Z", "2026-11-02T07:30:00Z"),
        // New York, 01:30: before the spring gap; repeated on 2026-11-01, where the boundary
        // is the later reading, 01:30 EST = 06:30Z (not 01:30 EDT = 05:30Z).
        ("NY 01:30 spring: 23 h window from 01:30 EST",
            daily(1, 30, NY), "2026-03-08T06:30:00Z",
            "2026-03-08T06:30:00Z", "2026-03-09T05:30:00Z"),
        ("NY 01:30 spring: the day before is 24 h",
            daily(1, 30, NY), "2026-03-08T06:29:59Z",
            "2026-03-07T06:30:00Z", "2026-03-08T06:30:00Z"),
        ("NY 01:30 fall: the first 01:30 (EDT) is not a boundary",
            daily(1, 30, NY), "2026-11-01T05:30:00Z",
            "2026-10-31T05:30:00Z", "2026-11-01T06:30:00Z"),
        ("NY 01:30 fall: 01:45 EDT, first pass",
            daily(1, 30, NY), "2026-11-01T05:45:00Z",
            "2026-10-31T05:30:00Z", "2026-11-01T06:30:00Z"),
        ("NY 01:30 fall: 01:15 EST, second pass, still before the boundary",
            daily(1, 30, NY), "2026-11-01T06:15:00Z",
            "2026-10-31T05:30:00Z", "2026-11-01T06:30:00Z"),
        ("NY 01:30 fall: the second 01:30 (EST) starts a window",
            daily(1, 30, NY), "2026-11-01T06:30:00Z",
            "2026-11-01T06:30:00Z", "2026-11-02T06:30:00Z"),
        // London, midnight.
        ("London 00:00 winter: GMT midnight",
            daily(0, 0, LONDON), "2026-01-15T00:00:00Z",
            "2026-01-15T00:00:00Z", "2026-01-16T00:00:00Z"),
        ("London 00:00 spring: 23 h day",
            daily(0, 0, LONDON), "2026-03-29T12:00:00Z",
            "2026-03-29T00:00:00Z", "2026-03-29T23:00:00Z"),
        ("London 00:00 summer: BST midnight is 23:00Z",
            daily(0, 0, LONDON), "2026-07-01T22:59:59Z",
            "2026-06-30T23:00:00Z", "2026-07-01T23:00:00Z"),
        ("London 00:00 fall: 25 h day, 01:30 GMT (second pass)",
            daily(0, 0, LONDON), "2026-10-25T01:30:00Z",
            "2026-10-24T23:00:00Z", "2026-10-26T00:00:00Z"),
        ("London 00:00 fall: first instant of the 25 h day",
            daily(0, 0, LONDON), "2026-10-24T23:00:00Z",
            "2026-10-24T23:00:00Z", "2026-10-26T00:00:00Z"),
        ("London 00:00 fall: last second of the day before",
            daily(0, 0, LONDON), "2026-10-24T22:59:59Z",
            "2026-10-23T23:00:00Z", "2026-10-24T23:00:00Z"),
        // Kolkata: local midnight is 18:30Z the UTC day before.
        ("Kolkata 00:00: 23:59:59 IST",
            daily(0, 0, KOLKATA), "2026-01-15T18:29:59Z",
            "2026-01-14T18:30:00Z", "2026-01-15T18:30:00Z"),
        ("Kolkata 00:00: midnight IST starts a window",
            daily(0, 0, KOLKATA), "2026-01-15T18:30:00Z",
            "2026-01-15T18:30:00Z", "2026-01-16T18:30:00Z"),
        ("Kolkata 09:00 = 03:30Z",
            daily(9, 0, KOLKATA), "2026-06-01T03:30:00Z",
            "2026-06-01T03:30:00Z", "2026-06-02T03:30:00Z"),
        // Lord Howe, 2026-04-05 02:00 +11 -> 01:30 +10:30: 01:45 is repeated; the boundary
        // is its later reading, 01:45 +10:30 = 15:15Z, and that window is 24½ h.
        ("Lord Howe 01:45 fall: first 01:45 (+11) is not a boundary",
            daily(1, 45, LORD_HOWE), "2026-04-04T14:45:00Z",
            "2026-04-03T14:45:00Z", "2026-04-04T15:15:00Z"),
        ("Lord Howe 01:45 fall: second 01:45 (+10:30) starts a window",
            daily(1, 45, LORD_HOWE), "2026-04-04T15:15:00Z",
            "2026-04-04T15:15:00Z", "2026-04-05T15:15:00Z"),
        // 2026-10-04 02:00 +10:30 -> 02:30 +11: 02:15 is skipped, the boundary is the jump
        // (15:30Z) and the 30 minutes lost are split between two 23¾-hour windows.
        ("Lord Howe 02:15 spring: before the jump",
            daily(2, 15, LORD_HOWE), "2026-10-03T15:29:59Z",
            "2026-10-02T15:45:00Z", "2026-10-03T15:30:00Z"),
        ("Lord Howe 02:15 spring: the jump starts a window",
            daily(2, 15, LORD_HOWE), "2026-10-03T15:30:00Z",
            "2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z"),
        ("Lord Howe 00:00 spring: 23½ h day",
            daily(0, 0, LORD_HOWE), "2026-10-04T00:00:00Z",
            "2026-10-03T13:30:00Z", "2026-10-04T13:00:00Z"),
        // Chatham.
        ("Chatham 09:00 winter (+12:45)",
            daily(9, 0, CHATHAM), "2026-07-01T00:00:00Z",
            "2026-06-30T20:15:00Z", "2026-07-01T20:15:00Z"),
        ("Chatham 00:00 spring: 23 h day",
            daily(0, 0, CHATHAM), "2026-09-26T14:00:00Z",
            "2026-09-26T11:15:00Z", "2026-09-27T10:15:00Z"),
        // 2026-04-05 03:45 +13:45 -> 02:45 +12:45: 03:00 is repeated, boundary 14:15Z.
        ("Chatham 03:00 fall: 25 h window, first 03:00 (+13:45) inside",
            daily(3, 0, CHATHAM), "2026-04-04T13:15:00Z",
            "2026-04-03T13:15:00Z", "2026-04-04T14:15:00Z"),
        ("Chatham 03:00 fall: second 03:00 (+12:45) starts a window",
            daily(3, 0, CHATHAM), "2026-04-04T14:15:00Z",
            "2026-04-04T14:15:00Z", "2026-04-05T14:15:00Z"),
        // St John's, 2010-11-07: 00:01 NDT -> 23:01 NST on 2010-11-06, so 23:30 on 11-06 is
        // read at 02:00Z (NDT) and 03:00Z (NST), and the boundary is 03:00Z. 00:00:30 NDT on
        // 11-07 reads the new date but comes before that boundary: the first candidate (the
        // 11-06 boundary) is after it, and the window is the one from 11-05 23:30 NDT.
        ("St Johns 23:30: new date read before the old date's boundary",
            daily(23, 30, ST_JOHNS), "2010-11-07T02:30:30Z",
            "2010-11-06T02:00:00Z", "2010-11-07T03:00:00Z"),
        ("St Johns 23:30: the second 23:30 starts a 24 h window",
            daily(23, 30, ST_JOHNS), "2010-11-07T03:00:00Z",
            "2010-11-07T03:00:00Z", "2010-11-08T03:00:00Z"),
        // The repeated 00:00 on 2010-11-07 (02:30Z NDT, 03:30Z NST) is read later, too.
        ("St Johns 00:00: the first 00:00 (NDT) is not a boundary",
            daily(0, 0, ST_JOHNS), "2010-11-07T02:30:00Z",
            "2010-11-06T02:30:00Z", "2010-11-07T03:30:00Z"),
    ];
    for (label, window, at, start, end) in &rows {
        assert_eq!(window.bucket_at(utc(at)), (utc(start), utc(end)), "{label}");
    }
}

/// What a constructor returned.
type Built = Result<Window, WindowError>;

/// Rows are (label, result, expected error, field the message must name, value it must
/// show), then (label, result, expected window) for the limits that are accepted.
#[test]
fn constructors_refuse_bad_values_and_name_the_field() {
    let max = i64::from(Window::MAX_FIXED_MINUTES);
    #[rustfmt::skip]
    let rows: Vec<(&str, Built, WindowError, &str, &str)> = vec![
        ("0 minutes", Window::fixed(0),
            WindowError::MinutesOutOfRange(0), "window.minutes", "got 0"),
        ("negative minutes", Window::fixed(-60),
            WindowError::MinutesOutOfRange(-60), "window.minutes", "got -60"),
        ("more than a week", Window::fixed(max + 1),
            WindowError::MinutesOutOfRange(10081), "window.minutes", "got 10081"),
        ("beyond u32", Window::fixed(i64::from(u32::MAX) + 1),
            WindowError::MinutesOutOfRange(4_294_967_296), "window.minutes", "4294967296"),
        ("minute of day 1440", Window::boundary(1440, "Europe/London"),
            WindowError::AtOutOfRange(1440), "window.at", "got 1440"),
        ("minute of day -1", Window::boundary(-1, "Europe/London"),
            WindowError::AtOutOfRange(-1), "window.at", "got -1"),
        ("minute of day beyond u16", Window::boundary(65_536 + 60, "Europe/London"),
            WindowError::AtOutOfRange(65_596), "window.at", "got 65596"),
        ("unknown zone", Window::boundary(540, "Europe/Lundon"),
            WindowError::UnknownZone("Europe/Lundon".into()), "window.zone", "Europe/Lundon"),
        ("offset is not a zone", Window::boundary(540, "+02:00"),
            WindowError::UnknownZone("+02:00".into()), "window.zone", "+02:00"),
        ("minute of day checked before zone", Window::boundary(1440, "Nowhere"),
            WindowError::AtOutOfRange(1440), "window.at", "1440"),
    ];
    for (label, result, error, field, value) in rows {
        assert_eq!(result, Err(error.clone()), "{label}");
        let message = error.to_string();
        assert!(message.starts_with(field), "{label}: {message}");
        assert!(message.contains(value), "{label}: {message}");
    }
    #[rustfmt::skip]
    let accepted: &[(&str, Built, Window)] = &[
        ("1 minute", Window::fixed(1), Window::Fixed { minutes: NonZeroU32::MIN }),
        ("one week", Window::fixed(max), Window::Fixed { minutes: NonZeroU32::new(10080).unwrap() }),
        ("00:00", Window::boundary(0, "Asia/Kolkata"),
            Window::Boundary { minute_of_day: 0, zone: KOLKATA }),
        ("23:59", Window::boundary(1439, "UTC"),
            Window::Boundary { minute_of_day: 1439, zone: Tz::UTC }),
    ];
    for (label, result, window) in accepted {
        assert_eq!(result.as_ref(), Ok(window), "{label}");
    }
}

#[test]
fn describe_kind_and_spec() {
    #[rustfmt::skip]
    let rows: Vec<(Window, &str, &str, &str)> = vec![
        (fixed(60), "fixed", "60", "every 60 min (aligned to the Unix epoch, UTC)"),
        (fixed(1), "fixed", "1", "every 1 min (aligned to the Unix epoch, UTC)"),
        (daily(9, 0, LONDON), "boundary", "09:00 Europe/London",
            "daily from 09:00 in Europe/London"),
        (daily(0, 5, KOLKATA), "boundary", "00:05 Asia/Kolkata",
            "daily from 00:05 in Asia/Kolkata"),
        (daily(23, 59, CHATHAM), "boundary", "23:59 Pacific/Chatham",
            "daily from 23:59 in Pacific/Chatham"),
    ];
    for (window, kind, spec, description) in &rows {
        assert_eq!(window.kind(), *kind, "{window:?}");
        assert_eq!(window.spec(), *spec, "{window:?}");
        assert_eq!(window.describe(), *description, "{window:?}");
    }
}

#[test]
fn stored_form_round_trips() {
    let mut windows = vec![fixed(1), fixed(15), fixed(60), fixed(1440), fixed(10080)];
    for zone in [
        NY,
        LONDON,
        KOLKATA,
        LORD_HOWE,
        CHATHAM,
        Tz::UTC,
        Tz::America__Argentina__Buenos_Aires,
    ] {
        for minute in [0, 1, 90, 150, 540, 1439] {
            windows.push(Window::boundary(minute, zone.name()).expect("valid"));
        }
    }
    // A deprecated alias is kept as written, not swapped for its canonical zone.
    windows.push(Window::boundary(540, "US/Eastern").expect("valid"));
    for window in windows {
        assert_eq!(
            Window::from_stored(window.kind(), &window.spec()),
            Ok(window.clone()),
            "{window:?} as {} {:?}",
            window.kind(),
            window.spec()
        );
    }
    assert_eq!(
        Window::boundary(540, "US/Eastern").expect("valid").spec(),
        "09:00 US/Eastern"
    );
}

/// Rows are (label, kind, spec, expected error, field the message must name).
#[test]
fn from_stored_refuses_malformed_specs() {
    #[rustfmt::skip]
    let rows: &[(&str, &str, &str, WindowError, &str)] = &[
        ("unknown kind", "monthly", "60",
            WindowError::UnknownKind("monthly".into()), "window.kind"),
        ("weekly, bad day", "weekly", "someday 09:00 UTC",
            WindowError::UnknownWeekday("someday".into()), "window.day"),
        ("kind is case-sensitive", "Fixed", "60",
            WindowError::UnknownKind("Fixed".into()), "window.kind"),
        ("fixed, not a number", "fixed", "sixty",
            WindowError::MinutesNotANumber("sixty".into()), "window.minutes"),
        ("fixed, empty", "fixed", "",
            WindowError::MinutesNotANumber("".into()), "window.minutes"),
        ("fixed, fraction", "fixed", "1.5",
            WindowError::MinutesNotANumber("1.5".into()), "window.minutes"),
        ("fixed, zero", "fixed", "0",
            WindowError::MinutesOutOfRange(0), "window.minutes"),
        ("fixed, too large", "fixed", "10081",
            WindowError::MinutesOutOfRange(10081), "window.minutes"),
        ("boundary, no zone", "boundary", "09:00",
            WindowError::MissingZone("09:00".into()), "window.zone"),
        ("boundary, one-digit hour", "boundary", "9:00 Europe/London",
            WindowError::AtNotATime("9:00".into()), "window.at"),
        ("boundary, 24:00", "boundary", "24:00 Europe/London",
            WindowError::AtNotATime("24:00".into()), "window.at"),
        ("boundary, minute 60", "boundary", "09:60 Europe/London",
            WindowError::AtNotATime("09:60".into()), "window.at"),
        ("boundary, sign", "boundary", "+9:00 Europe/London",
            WindowError::AtNotATime("+9:00".into()), "window.at"),
        ("boundary, no colon", "boundary", "0900 Europe/London",
            WindowError::AtNotATime("0900".into()), "window.at"),
        ("boundary, unknown zone", "boundary", "09:00 Europe/Lundon",
            WindowError::UnknownZone("Europe/Lundon".into()), "window.zone"),
        ("boundary, two spaces", "boundary", "09:00  Europe/London",
            WindowError::UnknownZone(" Europe/London".into()), "window.zone"),
    ];
    for (label, kind, spec, error, field) in rows {
        assert_eq!(
            Window::from_stored(kind, spec),
            Err(error.clone()),
            "{label}"
        );
        assert!(error.to_string().starts_with(field), "{label}: {error}");
    }
}

/// Checks `start <= at < end`, the length (a boundary window within `shift` of 24 hours),
/// and that the windows tile time: `start` maps to the same window, `end` to the window
/// starting there, and `start` is a boundary.
fn check_window(window: &Window, at: DateTime<Utc>, shift: TimeDelta) {
    let (start, end) = window.bucket_at(at);
    let label = format!("{} at {at}", window.describe());
    assert!(start <= at && at < end, "{label}: [{start}, {end})");
    assert_eq!(window.bucket_at(start), (start, end), "{label}: from start");
    assert_eq!(window.bucket_at(end).0, end, "{label}: from end");
    assert_eq!(
        window.bucket_at(end - TimeDelta::nanoseconds(1)),
        (start, end),
        "{label}: last nanosecond"
    );
    match *window {
        Window::Fixed { minutes } => {
            let minutes = i64::from(minutes.get());
            assert_eq!(end - start, TimeDelta::minutes(minutes), "{label}");
            assert_eq!(start.timestamp() % (minutes * 60), 0, "{label}");
        }
        Window::Boundary {
            minute_of_day,
            zone,
        } => {
            let length = end - start;
            let day = TimeDelta::hours(24);
            assert!(
                day - shift <= length && length <= day + shift,
                "{label}: [{start}, {end}) is {length}"
            );
            // The boundary of its own local date, or of the day before when a gap across
            // midnight moved it to the next date.
            let date = start.with_timezone(&zone).date_naive();
            let is_boundary = |d: NaiveDate| resolve_local(zone, d, minute_of_day) == start;
            assert!(
                is_boundary(date) || is_boundary(date - Days::new(1)),
                "{label}: start {start} is not a boundary"
            );
        }
        Window::Weekly { .. } => {
            let length = end - start;
            let week = TimeDelta::hours(7 * 24);
            assert!(
                week - shift <= length && length <= week + shift,
                "{label}: [{start}, {end}) is {length}"
            );
        }
    }
}

/// Every 37 minutes through 2026 (so the instants drift across every minute of the hour and
/// hit both transitions in each zone), in three zones with DST, for boundaries before,
/// inside and after each zone's gap and repeated hour.
#[test]
fn invariants_hold_through_a_year() {
    let mut windows = vec![fixed(1), fixed(15), fixed(60), fixed(1440), fixed(7)];
    for zone in [NY, LORD_HOWE, CHATHAM] {
        for (hour, minute) in [(0, 0), (1, 30), (1, 45), (2, 15), (2, 30), (3, 0), (23, 30)] {
            windows.push(daily(hour, minute, zone));
        }
    }
    let from = utc("2026-01-01T00:00:00Z");
    let to = utc("2027-01-01T00:00:00Z");
    let mut at = from;
    while at < to {
        for window in &windows {
            check_window(window, at, TimeDelta::hours(1));
        }
        at += TimeDelta::minutes(37);
    }
}

/// Every minute of the days around fall-backs that cross midnight, where the first boundary
/// tried can be after `at`: St John's (one hour) and Casey (three hours, 02:00 +11 back to
/// 23:00 +08 the day before). Rows are (zone, transition, size of the shift in hours).
#[test]
fn invariants_hold_where_the_clocks_fall_back_across_midnight() {
    let zones = [
        (ST_JOHNS, "2010-11-07T02:31:00Z", 1),
        (ST_JOHNS, "2009-11-01T02:31:00Z", 1),
        (Antarctica::Casey, "2010-03-04T15:00:00Z", 3),
    ];
    for (zone, transition, shift) in zones {
        let mut windows = Vec::new();
        for minute in (0..MINUTES_PER_DAY)
            .step_by(15)
            .chain([1381, 1409, 1410, 1439])
        {
            windows.push(Window::boundary(minute, zone.name()).expect("valid"));
        }
        let transition = utc(transition);
        for step in -36 * 60..36 * 60 {
            let at = transition + TimeDelta::minutes(step);
            for window in &windows {
                check_window(window, at, TimeDelta::hours(shift));
            }
        }
    }
}

#[test]
fn weekly_windows_run_from_a_weekday_boundary_to_the_next() {
    let w = Window::weekly(Weekday::Mon, 9 * 60, "Europe/London").unwrap();
    // Wednesday 2026-11-25 12:00 UTC lies in the week from Monday 23rd 09:00 (GMT).
    assert_eq!(
        w.bucket_at(utc("2026-11-25T12:00:00Z")),
        (utc("2026-11-23T09:00:00Z"), utc("2026-11-30T09:00:00Z"))
    );
    // Exactly on a boundary: the window starting there (half-open).
    assert_eq!(
        w.bucket_at(utc("2026-11-30T09:00:00Z")).0,
        utc("2026-11-30T09:00:00Z")
    );
    // Monday before 09:00 belongs to the previous week.
    assert_eq!(
        w.bucket_at(utc("2026-11-30T08:59:00Z")),
        (utc("2026-11-23T09:00:00Z"), utc("2026-11-30T09:00:00Z"))
    );
    // The week in which clocks spring forward is an hour shorter (BST from 29 March 2026).
    let (start, end) = w.bucket_at(utc("2026-03-31T12:00:00Z"));
    assert_eq!(start, utc("2026-03-30T08:00:00Z"));
    let (prev_start, prev_end) = w.bucket_at(utc("2026-03-28T12:00:00Z"));
    assert_eq!(prev_end, start);
    assert_eq!(start - prev_start, TimeDelta::hours(7 * 24 - 1));
    assert_eq!(end - start, TimeDelta::hours(7 * 24));
    assert_eq!(Window::from_stored(w.kind(), &w.spec()).unwrap(), w);
    assert_eq!(w.spec(), "mon 09:00 Europe/London");
    assert!(
        parse_day("someday")
            .unwrap_err()
            .to_string()
            .contains("window.day")
    );
    for at in [
        "2026-10-20T00:00:00Z",
        "2026-10-25T00:30:00Z",
        "2026-10-25T01:30:00Z",
    ] {
        check_window(&w, utc(at), TimeDelta::hours(1));
    }
}

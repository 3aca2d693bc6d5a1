use super::*;
use chrono::Offset;
use chrono_tz::{America, Asia, Australia, Europe, Pacific};

const NY: Tz = America::New_York;
const LONDON: Tz = Europe::London;
/// UTC+5:30 all year.
const KOLKATA: Tz = Asia::Kolkata;
/// UTC+10:30, +11:00 in the southern summer: a 30-minute shift.
const LORD_HOWE: Tz = Australia::Lord_Howe;
/// UTC+12:45, +13:45 in the southern summer.
const CHATHAM: Tz = Pacific::Chatham;

/// 22:00–06:59: quiet until 07:00 the next morning.
const NIGHT: (u16, u16) = (22 * 60, 6 * 60 + 59);
/// 13:00–14:59: a window inside one day.
const LUNCH: (u16, u16) = (13 * 60, 14 * 60 + 59);

fn utc(text: &str) -> DateTime<Utc> {
    text.parse()
        .unwrap_or_else(|e| panic!("bad test instant {text}: {e}"))
}

fn window((start, end): (u16, u16)) -> QuietHours {
    QuietHours::new(start, end).expect("test window is valid")
}

fn hm(hour: u16, minute: u16) -> u16 {
    hour * 60 + minute
}

fn date(text: &str) -> NaiveDate {
    text.parse().expect("test date")
}

/// The transition instants every other table relies on, checked against the tz database
/// rather than trusted: the UTC offset one second before and at each instant. Rows are
/// (label, zone, transition instant, offset before in minutes, offset after in minutes).
#[test]
fn hard_coded_transitions_match_the_tz_database() {
    #[rustfmt::skip]
    let rows: &[(&str, Tz, &str, i32, i32)] = &[
        ("New York spring 2026", NY, "2026-03-08T07:00:00Z", -300, -240),
        ("New York fall 2026", NY, "2026-11-01T06:00:00Z", -240, -300),
        ("New York spring 2027", NY, "2027-03-14T07:00:00Z", -300, -240),
        ("New York fall 2027", NY, "2027-11-07T06:00:00Z", -240, -300),
        ("London spring 2026", LONDON, "2026-03-29T01:00:00Z", 0, 60),
        ("London fall 2026", LONDON, "2026-10-25T01:00:00Z", 60, 0),
        ("London spring 2027", LONDON, "2027-03-28T01:00:00Z", 0, 60),
        ("London fall 2027", LONDON, "2027-10-31T01:00:00Z", 60, 0),
        ("Lord Howe fall 2026", LORD_HOWE, "2026-04-04T15:00:00Z", 660, 630),
        ("Lord Howe spring 2026", LORD_HOWE, "2026-10-03T15:30:00Z", 630, 660),
        ("Lord Howe fall 2027", LORD_HOWE, "2027-04-03T15:00:00Z", 660, 630),
        ("Lord Howe spring 2027", LORD_HOWE, "2027-10-02T15:30:00Z", 630, 660),
        ("Chatham fall 2026", CHATHAM, "2026-04-04T14:00:00Z", 825, 765),
        ("Chatham spring 2026", CHATHAM, "2026-09-26T14:00:00Z", 765, 825),
        ("Chatham fall 2027", CHATHAM, "2027-04-03T14:00:00Z", 825, 765),
        ("Chatham spring 2027", CHATHAM, "2027-09-25T14:00:00Z", 765, 825),
        // Kolkata has no DST: the same offset on both sides of an arbitrary instant.
        ("Kolkata (no DST)", KOLKATA, "2026-03-29T01:00:00Z", 330, 330),
        // Samoa crossed the date line: 2011-12-29 23:59:59 -10 was followed by 2011-12-31.
        ("Apia skipped day 2011", Pacific::Apia, "2011-12-30T10:00:00Z", -600, 840),
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

#[test]
fn new_validates_minutes_and_whole_day_windows() {
    let rows: &[(&str, u16, u16, Result<QuietHours, QuietHoursError>)] = &[
        (
            "start 1440",
            1440,
            419,
            Err(QuietHoursError::MinuteOutOfRange {
                field: "quiet_hours.start",
                value: 1440,
            }),
        ),
        (
            "end 1440",
            1320,
            1440,
            Err(QuietHoursError::MinuteOutOfRange {
                field: "quiet_hours.end",
                value: 1440,
            }),
        ),
        (
            "both out of range names start first",
            u16::MAX,
            2000,
            Err(QuietHoursError::MinuteOutOfRange {
                field: "quiet_hours.start",
                value: u16::MAX,
            }),
        ),
        (
            "00:00-23:59 whole day",
            0,
            1439,
            Err(QuietHoursError::WholeDay {
                start: 0,
                end: 1439,
            }),
        ),
        (
            "07:00-06:59 whole day across midnight",
            420,
            419,
            Err(QuietHoursError::WholeDay {
                start: 420,
                end: 419,
            }),
        ),
        (
            "23:59-23:58 whole day",
            1439,
            1438,
            Err(QuietHoursError::WholeDay {
                start: 1439,
                end: 1438,
            }),
        ),
        (
            "00:00-23:58 leaves 23:59",
            0,
            1438,
            Ok(QuietHours {
                start_minute: 0,
                end_minute: 1438,
            }),
        ),
        (
            "single minute 23:59",
            1439,
            1439,
            Ok(QuietHours {
                start_minute: 1439,
                end_minute: 1439,
            }),
        ),
        (
            "night",
            1320,
            419,
            Ok(QuietHours {
                start_minute: 1320,
                end_minute: 419,
            }),
        ),
    ];
    for (label, start, end, expected) in rows {
        assert_eq!(&QuietHours::new(*start, *end), expected, "{label}");
    }
}

#[test]
fn error_messages_name_the_field_and_value() {
    let rows: &[(&str, QuietHoursError, &[&str])] = &[
        (
            "start out of range",
            QuietHours::new(1440, 419).unwrap_err(),
            &["quiet_hours.start", "1440"],
        ),
        (
            "end out of range",
            QuietHours::new(1320, 1440).unwrap_err(),
            &["quiet_hours.end", "1440"],
        ),
        (
            "whole day",
            QuietHours::new(420, 419).unwrap_err(),
            &[
                "quiet_hours.start (420, 07:00)",
                "quiet_hours.end (419, 06:59)",
                "never become eligible",
            ],
        ),
        (
            "unknown zone",
            parse_zone("Mars/Olympus").unwrap_err(),
            &["time_zone", "`Mars/Olympus`"],
        ),
    ];
    for (label, error, needles) in rows {
        let message = error.to_string();
        for needle in *needles {
            assert!(
                message.contains(needle),
                "{label}: {message:?} lacks {needle:?}"
            );
        }
    }
}

#[test]
fn parse_zone_accepts_iana_names_only() {
    let unknown = |name: &str| Err(QuietHoursError::UnknownZone(name.to_owned()));
    #[rustfmt::skip]
    let rows: &[(&str, &str, Result<Tz, QuietHoursError>)] = &[
        ("New York", "America/New_York", Ok(NY)),
        ("Kolkata", "Asia/Kolkata", Ok(KOLKATA)),
        ("Chatham", "Pacific/Chatham", Ok(CHATHAM)),
        ("Mars", "Mars/Olympus", unknown("Mars/Olympus")),
        ("empty", "", unknown("")),
        ("fixed offset", "+02:00", unknown("+02:00")),
        ("lower case", "europe/london", unknown("europe/london")),
    ];
    for (label, name, expected) in rows {
        assert_eq!(&parse_zone(name), expected, "{label}");
    }
}

#[test]
fn contains_minute_is_inclusive_at_both_ends() {
    #[rustfmt::skip]
    let rows: &[(&str, (u16, u16), u16, bool)] = &[
        ("night: 21:59 before start", NIGHT, hm(21, 59), false),
        ("night: 22:00 first minute", NIGHT, hm(22, 0), true),
        ("night: 23:59", NIGHT, hm(23, 59), true),
        ("night: 00:00", NIGHT, 0, true),
        ("night: 06:59 last minute", NIGHT, hm(6, 59), true),
        ("night: 07:00 after end", NIGHT, hm(7, 0), false),
        ("night: noon", NIGHT, hm(12, 0), false),
        ("lunch: 12:59 before start", LUNCH, hm(12, 59), false),
        ("lunch: 13:00 first minute", LUNCH, hm(13, 0), true),
        ("lunch: 14:59 last minute", LUNCH, hm(14, 59), true),
        ("lunch: 15:00 after end", LUNCH, hm(15, 0), false),
        ("lunch: midnight", LUNCH, 0, false),
        ("single 05:00: 05:00", (300, 300), 300, true),
        ("single 05:00: 04:59", (300, 300), 299, false),
        ("single 05:00: 05:01", (300, 300), 301, false),
        ("23:59-00:00: 23:59", (1439, 0), 1439, true),
        ("23:59-00:00: 00:00", (1439, 0), 0, true),
        ("23:59-00:00: 00:01", (1439, 0), 1, false),
        ("23:59-00:00: 23:58", (1439, 0), 1438, false),
        ("to 23:59: 23:59", (1260, 1439), 1439, true),
        ("to 23:59: 00:00", (1260, 1439), 0, false),
    ];
    for &(label, w, minute, expected) in rows {
        assert_eq!(window(w).contains_minute(minute), expected, "{label}");
    }
}

/// Each row gives the local reading of the UTC instant in its label, worked out by hand.
#[test]
fn is_quiet_reads_the_local_wall_clock() {
    type Row = (&'static str, Tz, (u16, u16), &'static str, bool);
    #[rustfmt::skip]
    let rows: &[Row] = &[
        // New York in winter (EST, UTC-5) and summer (EDT, UTC-4).
        ("NY 21:59 EST", NY, NIGHT, "2026-01-16T02:59:00Z", false),
        ("NY 21:59:59 EST", NY, NIGHT, "2026-01-16T02:59:59Z", false),
        ("NY 22:00 EST", NY, NIGHT, "2026-01-16T03:00:00Z", true),
        ("NY 00:00 EST", NY, NIGHT, "2026-01-16T05:00:00Z", true),
        ("NY 06:59 EST", NY, NIGHT, "2026-01-16T11:59:00Z", true),
        ("NY 06:59:59 EST", NY, NIGHT, "2026-01-16T11:59:59Z", true),
        ("NY 07:00 EST", NY, NIGHT, "2026-01-16T12:00:00Z", false),
        ("NY lunch 12:59 EDT", NY, LUNCH, "2026-07-01T16:59:00Z", false),
        ("NY lunch 13:00 EDT", NY, LUNCH, "2026-07-01T17:00:00Z", true),
        ("NY lunch 14:59 EDT", NY, LUNCH, "2026-07-01T18:59:00Z", true),
        ("NY lunch 15:00 EDT", NY, LUNCH, "2026-07-01T19:00:00Z", false),
        ("NY lunch 00:00 EDT", NY, LUNCH, "2026-07-02T04:00:00Z", false),
        // Spring forward 2026-03-08: 06:59 UTC is 01:59 EST, 07:00 UTC is 03:00 EDT.
        ("NY spring 03:00 EDT", NY, NIGHT, "2026-03-08T07:00:00Z", true),
        ("NY spring 06:59 EDT", NY, NIGHT, "2026-03-08T10:59:00Z", true),
        ("NY spring 07:00 EDT", NY, NIGHT, "2026-03-08T11:00:00Z", false),
        // Fall back 2026-11-01: 06:59 EST is 11:59 UTC.
        ("NY fall 06:59 EST", NY, NIGHT, "2026-11-01T11:59:00Z", true),
        ("NY fall 07:00 EST", NY, NIGHT, "2026-11-01T12:00:00Z", false),
        // Spring forward 2027-03-14 and fall back 2027-11-07.
        ("NY spring27 06:59 EDT", NY, NIGHT, "2027-03-14T10:59:00Z", true),
        ("NY spring27 07:00 EDT", NY, NIGHT, "2027-03-14T11:00:00Z", false),
        ("NY fall27 21:59 EST", NY, NIGHT, "2027-11-08T02:59:00Z", false),
        ("NY fall27 22:00 EST", NY, NIGHT, "2027-11-08T03:00:00Z", true),
        // 01:00-01:59 happens twice on 2026-11-01; a window 01:00-01:29 is quiet in both.
        ("NY 01:10 EDT 1st", NY, (60, 89), "2026-11-01T05:10:00Z", true),
        ("NY 01:45 EDT 1st", NY, (60, 89), "2026-11-01T05:45:00Z", false),
        ("NY 01:10 EST 2nd", NY, (60, 89), "2026-11-01T06:10:00Z", true),
        ("NY 01:45 EST 2nd", NY, (60, 89), "2026-11-01T06:45:00Z", false),
        // London: GMT in winter, BST (UTC+1) in summer.
        ("London 21:59 GMT", LONDON, NIGHT, "2026-01-15T21:59:00Z", false),
        ("London 22:00 GMT", LONDON, NIGHT, "2026-01-15T22:00:00Z", true),
        ("London 06:59 GMT", LONDON, NIGHT, "2026-01-16T06:59:00Z", true),
        ("London 07:00 GMT", LONDON, NIGHT, "2026-01-16T07:00:00Z", false),
        ("London lunch 12:59 BST", LONDON, LUNCH, "2026-07-01T11:59:00Z", false),
        ("London lunch 13:00 BST", LONDON, LUNCH, "2026-07-01T12:00:00Z", true),
        ("London lunch 14:59 BST", LONDON, LUNCH, "2026-07-01T13:59:00Z", true),
        ("London lunch 15:00 BST", LONDON, LUNCH, "2026-07-01T14:00:00Z", false),
        ("London spring 02:30 BST", LONDON, NIGHT, "2026-03-29T01:30:00Z", true),
        ("London spring 06:59 BST", LONDON, NIGHT, "2026-03-29T05:59:00Z", true),
        ("London spring 07:00 BST", LONDON, NIGHT, "2026-03-29T06:00:00Z", false),
        ("London fall 06:59 GMT", LONDON, NIGHT, "2026-10-25T06:59:00Z", true),
        ("London fall 07:00 GMT", LONDON, NIGHT, "2026-10-25T07:00:00Z", false),
        ("London fall lunch 12:59 GMT", LONDON, LUNCH, "2026-10-25T12:59:00Z", false),
        ("London fall lunch 13:00 GMT", LONDON, LUNCH, "2026-10-25T13:00:00Z", true),
        ("London spring27 07:00 BST", LONDON, NIGHT, "2027-03-28T06:00:00Z", false),
        ("London fall27 07:00 GMT", LONDON, NIGHT, "2027-10-31T07:00:00Z", false),
        // Kolkata, UTC+5:30, no DST: the local day starts at 18:30 UTC.
        ("Kolkata 21:59", KOLKATA, NIGHT, "2026-01-15T16:29:00Z", false),
        ("Kolkata 22:00", KOLKATA, NIGHT, "2026-01-15T16:30:00Z", true),
        ("Kolkata 06:59", KOLKATA, NIGHT, "2026-01-16T01:29:00Z", true),
        ("Kolkata 07:00", KOLKATA, NIGHT, "2026-01-16T01:30:00Z", false),
        ("Kolkata lunch 12:59", KOLKATA, LUNCH, "2026-01-16T07:29:00Z", false),
        ("Kolkata lunch 13:00", KOLKATA, LUNCH, "2026-01-16T07:30:00Z", true),
        ("Kolkata lunch 14:59", KOLKATA, LUNCH, "2026-01-16T09:29:00Z", true),
        ("Kolkata lunch 15:00", KOLKATA, LUNCH, "2026-01-16T09:30:00Z", false),
        // Lord Howe: UTC+11 in the southern summer, UTC+10:30 in winter.
        ("Lord Howe 21:59 +11", LORD_HOWE, NIGHT, "2026-01-15T10:59:00Z", false),
        ("Lord Howe 22:00 +11", LORD_HOWE, NIGHT, "2026-01-15T11:00:00Z", true),
        ("Lord Howe 06:59 +11", LORD_HOWE, NIGHT, "2026-01-15T19:59:00Z", true),
        ("Lord Howe 07:00 +11", LORD_HOWE, NIGHT, "2026-01-15T20:00:00Z", false),
        ("Lord Howe lunch 12:59 +10:30", LORD_HOWE, LUNCH, "2026-04-10T02:29:00Z", false),
        ("Lord Howe lunch 13:00 +10:30", LORD_HOWE, LUNCH, "2026-04-10T02:30:00Z", true),
        ("Lord Howe lunch 14:59 +10:30", LORD_HOWE, LUNCH, "2026-04-10T04:29:00Z", true),
        ("Lord Howe lunch 15:00 +10:30", LORD_HOWE, LUNCH, "2026-04-10T04:30:00Z", false),
        // Fall back 2026-04-05 (02:00 +11 -> 01:30 +10:30), spring 2026-10-04 (02:00 -> 02:30).
        ("Lord Howe fall 01:30 +10:30", LORD_HOWE, NIGHT, "2026-04-04T15:00:00Z", true),
        ("Lord Howe fall 06:59 +10:30", LORD_HOWE, NIGHT, "2026-04-04T20:29:00Z", true),
        ("Lord Howe fall 07:00 +10:30", LORD_HOWE, NIGHT, "2026-04-04T20:30:00Z", false),
        ("Lord Howe spring 06:59 +11", LORD_HOWE, NIGHT, "2026-10-03T19:59:00Z", true),
        ("Lord Howe spring 07:00 +11", LORD_HOWE, NIGHT, "2026-10-03T20:00:00Z", false),
        ("Lord Howe fall27 07:00 +10:30", LORD_HOWE, NIGHT, "2027-04-03T20:30:00Z", false),
        ("Lord Howe spring27 07:00 +11", LORD_HOWE, NIGHT, "2027-10-02T20:00:00Z", false),
        // Chatham: UTC+13:45 in the southern summer, UTC+12:45 in winter.
        ("Chatham 21:59 +13:45", CHATHAM, NIGHT, "2026-01-15T08:14:00Z", false),
        ("Chatham 22:00 +13:45", CHATHAM, NIGHT, "2026-01-15T08:15:00Z", true),
        ("Chatham 06:59 +13:45", CHATHAM, NIGHT, "2026-01-15T17:14:00Z", true),
        ("Chatham 07:00 +13:45", CHATHAM, NIGHT, "2026-01-15T17:15:00Z", false),
        ("Chatham lunch 12:59 +12:45", CHATHAM, LUNCH, "2026-07-01T00:14:00Z", false),
        ("Chatham lunch 13:00 +12:45", CHATHAM, LUNCH, "2026-07-01T00:15:00Z", true),
        ("Chatham lunch 14:59 +12:45", CHATHAM, LUNCH, "2026-07-01T02:14:00Z", true),
        ("Chatham lunch 15:00 +12:45", CHATHAM, LUNCH, "2026-07-01T02:15:00Z", false),
        ("Chatham fall 07:00 +12:45", CHATHAM, NIGHT, "2026-04-04T18:15:00Z", false),
        ("Chatham fall 06:59 +12:45", CHATHAM, NIGHT, "2026-04-04T18:14:00Z", true),
        ("Chatham spring 07:00 +13:45", CHATHAM, NIGHT, "2026-09-26T17:15:00Z", false),
        ("Chatham spring 06:59 +13:45", CHATHAM, NIGHT, "2026-09-26T17:14:00Z", true),
        ("Chatham fall27 07:00 +12:45", CHATHAM, NIGHT, "2027-04-03T18:15:00Z", false),
        ("Chatham spring27 07:00 +13:45", CHATHAM, NIGHT, "2027-09-25T17:15:00Z", false),
    ];
    for &(label, tz, w, at, expected) in rows {
        assert_eq!(window(w).is_quiet(tz, utc(at)), expected, "{label}");
    }
}

/// Rows are (label, zone, window, at, expected end). The label gives `at` and the expected
/// end in local time; the UTC literals were converted by hand.
#[test]
fn next_eligible_is_the_local_end_of_the_window() {
    type Row = (
        &'static str,
        Tz,
        (u16, u16),
        &'static str,
        Option<&'static str>,
    );
    #[rustfmt::skip]
    let rows: &[Row] = &[
        // New York, plain winter night (EST).
        ("NY 22:00 first minute -> 07:00",
            NY, NIGHT, "2026-01-16T03:00:00Z", Some("2026-01-16T12:00:00Z")),
        ("NY 23:30 -> 07:00 next day",
            NY, NIGHT, "2026-01-16T04:30:00Z", Some("2026-01-16T12:00:00Z")),
        ("NY 03:00 -> 07:00 same day",
            NY, NIGHT, "2026-01-16T08:00:00Z", Some("2026-01-16T12:00:00Z")),
        ("NY 06:59 last minute -> 07:00",
            NY, NIGHT, "2026-01-16T11:59:00Z", Some("2026-01-16T12:00:00Z")),
        ("NY 06:59:59 -> 07:00:00",
            NY, NIGHT, "2026-01-16T11:59:59Z", Some("2026-01-16T12:00:00Z")),
        ("NY 07:00 not quiet", NY, NIGHT, "2026-01-16T12:00:00Z", None),
        ("NY 21:59 not quiet", NY, NIGHT, "2026-01-16T02:59:00Z", None),
        // New York, lunch in summer (EDT).
        ("NY lunch 13:00 -> 15:00",
            NY, LUNCH, "2026-07-01T17:00:00Z", Some("2026-07-01T19:00:00Z")),
        ("NY lunch 13:45 -> 15:00",
            NY, LUNCH, "2026-07-01T17:45:00Z", Some("2026-07-01T19:00:00Z")),
        ("NY lunch 14:59 -> 15:00",
            NY, LUNCH, "2026-07-01T18:59:00Z", Some("2026-07-01T19:00:00Z")),
        ("NY lunch 12:59 not quiet", NY, LUNCH, "2026-07-01T16:59:00Z", None),
        ("NY lunch 15:00 not quiet", NY, LUNCH, "2026-07-01T19:00:00Z", None),
        // New York across each transition: the night is 7 h in spring, 9 h in autumn.
        ("NY spring26 23:00 EST -> 07:00 EDT",
            NY, NIGHT, "2026-03-08T04:00:00Z", Some("2026-03-08T11:00:00Z")),
        ("NY fall26 23:00 EDT -> 07:00 EST",
            NY, NIGHT, "2026-11-01T03:00:00Z", Some("2026-11-01T12:00:00Z")),
        ("NY fall26 01:30 EST 2nd -> 07:00 EST",
            NY, NIGHT, "2026-11-01T06:30:00Z", Some("2026-11-01T12:00:00Z")),
        ("NY spring27 22:30 EST -> 07:00 EDT",
            NY, NIGHT, "2027-03-14T03:30:00Z", Some("2027-03-14T11:00:00Z")),
        ("NY fall27 22:30 EDT -> 07:00 EST",
            NY, NIGHT, "2027-11-07T02:30:00Z", Some("2027-11-07T12:00:00Z")),
        // Gap rule: 22:00-02:29 ends at 02:30, which 2027-03-14 skips -> 03:00 EDT.
        ("NY gap27 23:00 EST -> 03:00 EDT",
            NY, (1320, 149), "2027-03-14T04:00:00Z", Some("2027-03-14T07:00:00Z")),
        ("NY gap27 01:59 EST -> 03:00 EDT",
            NY, (1320, 149), "2027-03-14T06:59:00Z", Some("2027-03-14T07:00:00Z")),
        ("NY gap27 03:00 EDT not quiet", NY, (1320, 149), "2027-03-14T07:00:00Z", None),
        // Gap rule at the gap's first minute: 01:00-01:59 ends at 02:00 on 2026-03-08.
        ("NY gap26 01:30 EST -> 03:00 EDT",
            NY, (60, 119), "2026-03-08T06:30:00Z", Some("2026-03-08T07:00:00Z")),
        // Ambiguous rule: 22:00-01:29 ends at 01:30, read twice on 2026-11-01; the later
        // 01:30 EST = 06:30 UTC, not 01:30 EDT = 05:30 UTC.
        ("NY amb26 23:00 EDT -> 2nd 01:30",
            NY, (1320, 89), "2026-11-01T03:00:00Z", Some("2026-11-01T06:30:00Z")),
        ("NY amb26 01:10 EDT 1st -> 2nd 01:30",
            NY, (1320, 89), "2026-11-01T05:10:00Z", Some("2026-11-01T06:30:00Z")),
        ("NY amb26 01:45 EDT 1st not quiet", NY, (1320, 89), "2026-11-01T05:45:00Z", None),
        ("NY amb26 01:10 EST 2nd -> 2nd 01:30",
            NY, (1320, 89), "2026-11-01T06:10:00Z", Some("2026-11-01T06:30:00Z")),
        // Ambiguous end at the repeated hour's first minute: 00:00-00:59 ends at 01:00,
        // later reading 01:00 EST = 06:00 UTC on 2027-11-07.
        ("NY amb27 00:30 EDT -> 2nd 01:00",
            NY, (0, 59), "2027-11-07T04:30:00Z", Some("2027-11-07T06:00:00Z")),
        // London.
        ("London 23:00 GMT -> 07:00 GMT",
            LONDON, NIGHT, "2026-01-15T23:00:00Z", Some("2026-01-16T07:00:00Z")),
        ("London lunch 14:00 BST -> 15:00 BST",
            LONDON, LUNCH, "2026-07-01T13:00:00Z", Some("2026-07-01T14:00:00Z")),
        ("London spring26 23:00 GMT -> 07:00 BST",
            LONDON, NIGHT, "2026-03-28T23:00:00Z", Some("2026-03-29T06:00:00Z")),
        ("London fall26 23:00 BST -> 07:00 GMT",
            LONDON, NIGHT, "2026-10-24T22:00:00Z", Some("2026-10-25T07:00:00Z")),
        ("London spring27 22:00 GMT -> 07:00 BST",
            LONDON, NIGHT, "2027-03-27T22:00:00Z", Some("2027-03-28T06:00:00Z")),
        ("London fall27 02:00 GMT -> 07:00 GMT",
            LONDON, NIGHT, "2027-10-31T02:00:00Z", Some("2027-10-31T07:00:00Z")),
        // Gap: 00:00-01:14 ends at 01:15, skipped on 2027-03-28 -> 02:00 BST = 01:00 UTC.
        ("London gap27 00:30 GMT -> 02:00 BST",
            LONDON, (0, 74), "2027-03-28T00:30:00Z", Some("2027-03-28T01:00:00Z")),
        // Ambiguous: 23:00-01:44 ends at 01:45 on 2026-10-25; later = 01:45 GMT.
        ("London amb26 23:30 BST -> 01:45 GMT",
            LONDON, (1380, 104), "2026-10-24T22:30:00Z", Some("2026-10-25T01:45:00Z")),
        // Kolkata (UTC+5:30): the local date is a day ahead of the UTC date from 18:30 UTC.
        ("Kolkata 22:00 -> 07:00",
            KOLKATA, NIGHT, "2026-01-15T16:30:00Z", Some("2026-01-16T01:30:00Z")),
        ("Kolkata 00:00 (UTC day before) -> 07:00",
            KOLKATA, NIGHT, "2026-01-15T18:30:00Z", Some("2026-01-16T01:30:00Z")),
        ("Kolkata 06:59 -> 07:00",
            KOLKATA, NIGHT, "2026-01-16T01:29:00Z", Some("2026-01-16T01:30:00Z")),
        ("Kolkata 07:00 not quiet", KOLKATA, NIGHT, "2026-01-16T01:30:00Z", None),
        ("Kolkata lunch 14:00 -> 15:00",
            KOLKATA, LUNCH, "2026-01-16T08:30:00Z", Some("2026-01-16T09:30:00Z")),
        ("Kolkata 21:00-23:59 at 23:30 -> 00:00",
            KOLKATA, (1260, 1439), "2026-01-15T18:00:00Z", Some("2026-01-15T18:30:00Z")),
        ("Kolkata 21:00-23:59 at 23:59 -> 00:00",
            KOLKATA, (1260, 1439), "2026-01-15T18:29:00Z", Some("2026-01-15T18:30:00Z")),
        ("Kolkata 00:00-05:59 at 00:00 -> 06:00",
            KOLKATA, (0, 359), "2026-01-15T18:30:00Z", Some("2026-01-16T00:30:00Z")),
        // Lord Howe: the clocks move by 30 minutes.
        ("Lord Howe 22:00 +11 -> 07:00 +11",
            LORD_HOWE, NIGHT, "2026-01-15T11:00:00Z", Some("2026-01-15T20:00:00Z")),
        ("Lord Howe fall26 22:00 +11 -> 07:00 +10:30",
            LORD_HOWE, NIGHT, "2026-04-04T11:00:00Z", Some("2026-04-04T20:30:00Z")),
        ("Lord Howe spring26 23:00 +10:30 -> 07:00 +11",
            LORD_HOWE, NIGHT, "2026-10-03T12:30:00Z", Some("2026-10-03T20:00:00Z")),
        ("Lord Howe fall27 22:00 +11 -> 07:00 +10:30",
            LORD_HOWE, NIGHT, "2027-04-03T11:00:00Z", Some("2027-04-03T20:30:00Z")),
        ("Lord Howe spring27 22:00 +10:30 -> 07:00 +11",
            LORD_HOWE, NIGHT, "2027-10-02T11:30:00Z", Some("2027-10-02T20:00:00Z")),
        // Gap: 22:00-02:09 ends at 02:10, inside the 02:00-02:29 gap of 2026-10-04, so the
        // end is the jump, 02:30 +11 = 15:30 UTC (not 15:40 nor 15:10).
        ("Lord Howe gap26 23:00 +10:30 -> 02:30 +11",
            LORD_HOWE, (1320, 129), "2026-10-03T12:30:00Z", Some("2026-10-03T15:30:00Z")),
        // Ambiguous: 22:00-01:39 ends at 01:40, read at 14:40 and 15:10 UTC on 2026-04-05.
        ("Lord Howe amb26 23:00 +11 -> 01:40 +10:30",
            LORD_HOWE, (1320, 99), "2026-04-04T12:00:00Z", Some("2026-04-04T15:10:00Z")),
        // Chatham (+12:45 / +13:45).
        ("Chatham 22:00 +13:45 -> 07:00 +13:45",
            CHATHAM, NIGHT, "2026-01-15T08:15:00Z", Some("2026-01-15T17:15:00Z")),
        ("Chatham lunch 13:30 +12:45 -> 15:00",
            CHATHAM, LUNCH, "2026-07-01T00:45:00Z", Some("2026-07-01T02:15:00Z")),
        ("Chatham fall26 22:00 +13:45 -> 07:00 +12:45",
            CHATHAM, NIGHT, "2026-04-04T08:15:00Z", Some("2026-04-04T18:15:00Z")),
        ("Chatham spring26 22:00 +12:45 -> 07:00 +13:45",
            CHATHAM, NIGHT, "2026-09-26T09:15:00Z", Some("2026-09-26T17:15:00Z")),
        ("Chatham fall27 23:00 +13:45 -> 07:00 +12:45",
            CHATHAM, NIGHT, "2027-04-03T09:15:00Z", Some("2027-04-03T18:15:00Z")),
        ("Chatham spring27 23:00 +12:45 -> 07:00 +13:45",
            CHATHAM, NIGHT, "2027-09-25T10:15:00Z", Some("2027-09-25T17:15:00Z")),
        // Gap: 22:00-02:59 ends at 03:00, inside the 02:45-03:44 gap of 2027-09-26 -> the
        // jump at 03:45 +13:45 = 14:00 UTC.
        ("Chatham gap27 23:00 +12:45 -> 03:45 +13:45",
            CHATHAM, (1320, 179), "2027-09-25T10:15:00Z", Some("2027-09-25T14:00:00Z")),
        // Ambiguous: same window on 2027-04-04, 03:00 read at 13:15 and 14:15 UTC.
        ("Chatham amb27 23:00 +13:45 -> 03:00 +12:45",
            CHATHAM, (1320, 179), "2027-04-03T09:15:00Z", Some("2027-04-03T14:15:00Z")),
    ];
    for &(label, tz, w, at, expected) in rows {
        assert_eq!(
            window(w).next_eligible(tz, utc(at)),
            expected.map(utc),
            "{label}"
        );
    }
}

/// Rows are (label, zone, local date, local minute, expected instant).
#[test]
fn resolve_local_settles_gaps_and_repeats() {
    #[rustfmt::skip]
    let rows: &[(&str, Tz, &str, u16, &str)] = &[
        ("NY plain 07:00 EST", NY, "2026-01-16", hm(7, 0), "2026-01-16T12:00:00Z"),
        ("NY 01:59 EST before gap", NY, "2027-03-14", hm(1, 59), "2027-03-14T06:59:00Z"),
        ("NY 02:00 gap start -> jump", NY, "2027-03-14", hm(2, 0), "2027-03-14T07:00:00Z"),
        ("NY 02:30 gap -> jump", NY, "2027-03-14", hm(2, 30), "2027-03-14T07:00:00Z"),
        ("NY 02:59 gap end -> jump", NY, "2027-03-14", hm(2, 59), "2027-03-14T07:00:00Z"),
        ("NY 03:00 EDT after gap", NY, "2027-03-14", hm(3, 0), "2027-03-14T07:00:00Z"),
        ("NY 00:59 EDT before repeat", NY, "2026-11-01", hm(0, 59), "2026-11-01T04:59:00Z"),
        ("NY 01:00 repeated -> EST", NY, "2026-11-01", hm(1, 0), "2026-11-01T06:00:00Z"),
        ("NY 01:30 repeated -> EST", NY, "2026-11-01", hm(1, 30), "2026-11-01T06:30:00Z"),
        ("NY 01:59 repeated -> EST", NY, "2026-11-01", hm(1, 59), "2026-11-01T06:59:00Z"),
        ("NY 02:00 EST after repeat", NY, "2026-11-01", hm(2, 0), "2026-11-01T07:00:00Z"),
        ("London 01:30 gap -> 02:00 BST",
            LONDON, "2026-03-29", hm(1, 30), "2026-03-29T01:00:00Z"),
        ("London 01:30 repeated -> GMT",
            LONDON, "2026-10-25", hm(1, 30), "2026-10-25T01:30:00Z"),
        ("London 01:00 repeated -> GMT",
            LONDON, "2027-10-31", hm(1, 0), "2027-10-31T01:00:00Z"),
        ("Kolkata midnight", KOLKATA, "2026-06-01", 0, "2026-05-31T18:30:00Z"),
        ("Kolkata minute 1440 = next midnight",
            KOLKATA, "2026-06-01", 1440, "2026-06-01T18:30:00Z"),
        ("Lord Howe 01:59 +10:30 before gap",
            LORD_HOWE, "2026-10-04", hm(1, 59), "2026-10-03T15:29:00Z"),
        ("Lord Howe 02:00 gap -> 02:30 +11",
            LORD_HOWE, "2026-10-04", hm(2, 0), "2026-10-03T15:30:00Z"),
        ("Lord Howe 02:10 gap -> 02:30 +11",
            LORD_HOWE, "2026-10-04", hm(2, 10), "2026-10-03T15:30:00Z"),
        ("Lord Howe 02:29 gap -> 02:30 +11",
            LORD_HOWE, "2026-10-04", hm(2, 29), "2026-10-03T15:30:00Z"),
        ("Lord Howe 02:30 +11 after gap",
            LORD_HOWE, "2026-10-04", hm(2, 30), "2026-10-03T15:30:00Z"),
        ("Lord Howe 02:15 gap 2027",
            LORD_HOWE, "2027-10-03", hm(2, 15), "2027-10-02T15:30:00Z"),
        ("Lord Howe 01:29 +11 before repeat",
            LORD_HOWE, "2026-04-05", hm(1, 29), "2026-04-04T14:29:00Z"),
        ("Lord Howe 01:30 repeated -> +10:30",
            LORD_HOWE, "2026-04-05", hm(1, 30), "2026-04-04T15:00:00Z"),
        ("Lord Howe 01:45 repeated -> +10:30",
            LORD_HOWE, "2026-04-05", hm(1, 45), "2026-04-04T15:15:00Z"),
        ("Lord Howe 02:00 +10:30 after repeat",
            LORD_HOWE, "2026-04-05", hm(2, 0), "2026-04-04T15:30:00Z"),
        ("Lord Howe 01:45 repeated 2027",
            LORD_HOWE, "2027-04-04", hm(1, 45), "2027-04-03T15:15:00Z"),
        ("Chatham 02:44 +12:45 before gap",
            CHATHAM, "2026-09-27", hm(2, 44), "2026-09-26T13:59:00Z"),
        ("Chatham 02:45 gap -> 03:45 +13:45",
            CHATHAM, "2026-09-27", hm(2, 45), "2026-09-26T14:00:00Z"),
        ("Chatham 03:00 gap -> 03:45 +13:45",
            CHATHAM, "2026-09-27", hm(3, 0), "2026-09-26T14:00:00Z"),
        ("Chatham 03:45 +13:45 after gap",
            CHATHAM, "2026-09-27", hm(3, 45), "2026-09-26T14:00:00Z"),
        ("Chatham 02:45 repeated -> +12:45",
            CHATHAM, "2026-04-05", hm(2, 45), "2026-04-04T14:00:00Z"),
        ("Chatham 03:00 repeated -> +12:45",
            CHATHAM, "2026-04-05", hm(3, 0), "2026-04-04T14:15:00Z"),
        ("Chatham 03:44 repeated -> +12:45",
            CHATHAM, "2026-04-05", hm(3, 44), "2026-04-04T14:59:00Z"),
        ("Chatham 03:45 +12:45 after repeat",
            CHATHAM, "2026-04-05", hm(3, 45), "2026-04-04T15:00:00Z"),
        ("Apia 12:00 on the skipped day -> 2011-12-31 00:00 +14",
            Pacific::Apia, "2011-12-30", hm(12, 0), "2011-12-30T10:00:00Z"),
    ];
    for &(label, tz, day, minute, expected) in rows {
        assert_eq!(
            resolve_local(tz, date(day), minute),
            utc(expected),
            "{label}"
        );
    }
}

/// Invariants over every minute of each transition day and the day before it, for windows
/// whose ends land before, inside and after each zone's gap or repeated hour. Catches what
/// the hand-written rows might miss (panics, an end not after `at`, an end still quiet).
#[test]
fn next_eligible_invariants_hold_around_every_transition() {
    #[rustfmt::skip]
    let days: &[(Tz, &str)] = &[
        (NY, "2026-03-08"),
        (NY, "2026-11-01"),
        (NY, "2027-03-14"),
        (NY, "2027-11-07"),
        (LONDON, "2026-03-29"),
        (LONDON, "2026-10-25"),
        (LONDON, "2027-03-28"),
        (LONDON, "2027-10-31"),
        (KOLKATA, "2026-03-29"),
        (LORD_HOWE, "2026-04-05"),
        (LORD_HOWE, "2026-10-04"),
        (LORD_HOWE, "2027-04-04"),
        (LORD_HOWE, "2027-10-03"),
        (CHATHAM, "2026-04-05"),
        (CHATHAM, "2026-09-27"),
        (CHATHAM, "2027-04-04"),
        (CHATHAM, "2027-09-26"),
    ];
    let windows = [
        NIGHT,
        LUNCH,
        (0, 59),
        (60, 89),
        (1320, 99),
        (1320, 129),
        (1320, 149),
        (1320, 179),
        (1380, 104),
        (1260, 1439),
    ];
    for &(tz, day) in days {
        // 72 hours from 38 h before UTC midnight: covers the local day before and the
        // transition day itself in every zone here, from UTC-5 to UTC+13:45.
        let from = utc(&format!("{day}T00:00:00Z")) - TimeDelta::hours(38);
        for step in 0..(3 * 24 * 60) {
            let at = from + TimeDelta::minutes(step);
            for w in windows {
                let quiet = window(w);
                let label = format!("{tz} {w:?} at {at}");
                match quiet.next_eligible(tz, at) {
                    None => assert!(!quiet.is_quiet(tz, at), "{label}: quiet but no end"),
                    Some(end) => {
                        assert!(quiet.is_quiet(tz, at), "{label}: end but not quiet");
                        assert!(end > at, "{label}: end {end} not after at");
                        assert!(
                            end - at <= TimeDelta::hours(25),
                            "{label}: end {end} too far"
                        );
                        assert!(!quiet.is_quiet(tz, end), "{label}: end {end} still quiet");
                        assert_eq!(end.second(), 0, "{label}: end {end} not on a minute");
                    }
                }
            }
        }
    }
}

//! An RFC 5322 message with MIME bodies, built as text with CRLF line endings.
//!
//! Headers are US-ASCII: a non-ASCII subject or display name becomes RFC 2047 encoded-words
//! (`=?UTF-8?B?…?=`), long header lines are folded at spaces. Bodies are UTF-8 in
//! quoted-printable, so every body line is ASCII and at most 76 characters; text and HTML
//! together are a `multipart/alternative` whose boundary starts with `=_`, which
//! quoted-printable output can never contain. Dot-stuffing belongs to the SMTP `DATA` phase
//! ([`crate::session`]), not here.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Headers the builder writes itself; a required header may not replace one.
const OWN_HEADERS: &[&str] = &[
    "date",
    "from",
    "to",
    "subject",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
];

/// The longest line quoted-printable writes, soft break included (RFC 2045).
const QP_LINE: usize = 76;
/// Where a header line is folded when it can be (RFC 5322's "should").
const FOLD_AT: usize = 78;
/// Bytes of UTF-8 per encoded-word: 45 bytes are 60 base64 characters, 72 with the
/// `=?UTF-8?B?` and `?=` around them, within RFC 2047's 75.
const ENCODED_WORD_BYTES: usize = 45;

/// An address, with the display name it may have had: `Name <a@example.com>` or
/// `a@example.com`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub display: Option<String>,
    pub address: String,
}

impl Mailbox {
    pub fn parse(text: &str) -> Result<Mailbox, String> {
        let text = text.trim();
        let (display, address) = match (text.rfind('<'), text.ends_with('>')) {
            (Some(open), true) => {
                let name = text[..open].trim();
                let name = name
                    .strip_prefix('"')
                    .and_then(|n| n.strip_suffix('"'))
                    .unwrap_or(name)
                    .trim();
                let name = (!name.is_empty()).then(|| name.to_string());
                (name, text[open + 1..text.len() - 1].trim())
            }
            _ => (None, text),
        };
        if let Some(name) = &display
            && name.chars().any(char::is_control)
        {
            return Err(format!("{text:?} has control characters in its name"));
        }
        let valid = match address.rsplit_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.is_empty()
                    && !local.contains('@')
                    && !address
                        .chars()
                        .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"\\".contains(c))
            }
            None => false,
        };
        if !valid {
            return Err(format!("{text:?} is not an email address"));
        }
        Ok(Mailbox {
            display,
            address: address.to_string(),
        })
    }

    /// The part after the `@`.
    pub fn domain(&self) -> &str {
        self.address.rsplit_once('@').map_or("", |(_, d)| d)
    }

    /// As a header value: `=?UTF-8?B?…?= <a@example.com>`, `"Doe, Jane" <a@example.com>`,
    /// `Jane <a@example.com>` or `a@example.com`.
    pub fn header_value(&self) -> String {
        let Some(name) = &self.display else {
            return self.address.clone();
        };
        let phrase = if !name.is_ascii() {
            encoded_words(name)
        } else if name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == ' ' || "!#$%&'*+-/=?^_`{|}~".contains(c))
        {
            name.clone()
        } else {
            let escaped: String = name
                .chars()
                .flat_map(|c| match c {
                    '"' | '\\' => vec!['\\', c],
                    c => vec![c],
                })
                .collect();
            format!("\"{escaped}\"")
        };
        format!("{phrase} <{}>", self.address)
    }
}

/// What goes into one message.
#[derive(Debug, Clone)]
pub struct Email<'a> {
    pub from: &'a Mailbox,
    pub to: &'a Mailbox,
    pub subject: &'a str,
    pub text: Option<&'a str>,
    pub html: Option<&'a str>,
    /// With its angle brackets: `<id@domain>`.
    pub message_id: &'a str,
    /// RFC 5322 date-time, see [`rfc5322_date`].
    pub date: &'a str,
    /// Headers the host requires (List-Unsubscribe, …), written in order.
    pub headers: &'a [(String, String)],
}

/// The message: headers, a blank line, the body; every line ends in CRLF.
pub fn build(email: &Email<'_>) -> Result<String, String> {
    let mut out = String::new();
    push_header(&mut out, "Date", email.date);
    push_header(&mut out, "From", &email.from.header_value());
    push_header(&mut out, "To", &email.to.header_value());
    push_header(&mut out, "Subject", &subject_value(email.subject));
    push_header(&mut out, "Message-ID", email.message_id);
    push_header(&mut out, "MIME-Version", "1.0");
    for (name, value) in email.headers {
        check_header(name, value)?;
        push_header(&mut out, name, value.trim());
    }
    let text = email.text.filter(|t| !t.is_empty());
    let html = email.html.filter(|h| !h.is_empty());
    match (text, html) {
        (Some(text), Some(html)) => {
            let boundary = boundary(email.message_id);
            push_header(
                &mut out,
                "Content-Type",
                &format!("multipart/alternative; boundary=\"{boundary}\""),
            );
            out.push_str("\r\n");
            out.push_str("This is a multi-part message in MIME format.\r\n");
            for (subtype, body) in [("plain", text), ("html", html)] {
                out.push_str(&format!("--{boundary}\r\n"));
                push_header(
                    &mut out,
                    "Content-Type",
                    &format!("text/{subtype}; charset=utf-8"),
                );
                push_header(&mut out, "Content-Transfer-Encoding", "quoted-printable");
                out.push_str("\r\n");
                out.push_str(&quoted_printable(body));
            }
            out.push_str(&format!("--{boundary}--\r\n"));
        }
        (text, html) => {
            let (subtype, body) = match (text, html) {
                (_, Some(html)) => ("html", html),
                (text, None) => ("plain", text.unwrap_or_default()),
            };
            push_header(
                &mut out,
                "Content-Type",
                &format!("text/{subtype}; charset=utf-8"),
            );
            push_header(&mut out, "Content-Transfer-Encoding", "quoted-printable");
            out.push_str("\r\n");
            out.push_str(&quoted_printable(body));
        }
    }
    Ok(out)
}

/// A required header must be a valid field (printable ASCII name without `:`, ASCII value
/// on one line) that the builder does not write itself.
fn check_header(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty() || !name.bytes().all(|b| (33..=126).contains(&b) && b != b':') {
        return Err(format!(
            "required header name {name:?} is not a header field name"
        ));
    }
    if OWN_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "required header {name} would replace one the smtp adapter writes"
        ));
    }
    if !value.is_ascii() || value.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
        return Err(format!(
            "required header {name} has a value that is not one line of ASCII"
        ));
    }
    Ok(())
}

/// `Name: value` folded at spaces so lines stay within 78 characters where they can, CRLF.
fn push_header(out: &mut String, name: &str, value: &str) {
    let mut line = format!("{name}:");
    // Runs of spaces are kept (an empty word is one more space); a fold goes only before a
    // word, so no continuation line is blank.
    for (i, word) in value.trim().split(' ').enumerate() {
        if i > 0 && !word.is_empty() && line.len() + 1 + word.len() > FOLD_AT {
            out.push_str(&line);
            out.push_str("\r\n");
            line.clear();
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push_str("\r\n");
}

/// The subject on one line: as it is when ASCII, else as encoded-words.
fn subject_value(subject: &str) -> String {
    let one_line: String = subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let one_line = one_line.trim();
    if one_line.is_ascii() {
        one_line.to_string()
    } else {
        encoded_words(one_line)
    }
}

/// RFC 2047 `B` encoded-words, split on character boundaries, separated by spaces (which a
/// reader drops between adjacent encoded-words, so the header may be folded there).
pub fn encoded_words(text: &str) -> String {
    let mut words = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + ENCODED_WORD_BYTES).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        words.push(format!(
            "=?UTF-8?B?{}?=",
            STANDARD.encode(&text.as_bytes()[start..end])
        ));
        start = end;
    }
    words.join(" ")
}

/// A multipart boundary unique to the message: `=_` (never in quoted-printable output) and
/// the Message-ID's letters and digits.
fn boundary(message_id: &str) -> String {
    let tail: String = message_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(50)
        .collect();
    format!("=_belfry_{tail}")
}

/// `text` (any line endings) as quoted-printable UTF-8 with CRLF line endings, ending in
/// CRLF. Soft line breaks keep lines within 76 characters; trailing spaces and tabs are
/// encoded so transports that strip them change nothing.
pub fn quoted_printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    for line in normalized.split('\n') {
        let bytes = line.as_bytes();
        let mut width = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let last = i + 1 == bytes.len();
            let literal = match b {
                b'=' => false,
                b' ' | b'\t' => !last,
                33..=126 => true,
                _ => false,
            };
            let piece_len = if literal { 1 } else { 3 };
            // Room for the piece and, unless this is the line's end, a soft break's `=`.
            let room = if last { QP_LINE } else { QP_LINE - 1 };
            if width + piece_len > room {
                out.push_str("=\r\n");
                width = 0;
            }
            if literal {
                out.push(b as char);
            } else {
                out.push_str(&format!("={b:02X}"));
            }
            width += piece_len;
        }
        out.push_str("\r\n");
    }
    out
}

/// `secs` since the Unix epoch as an RFC 5322 date-time in UTC:
/// `Thu, 01 Jan 1970 00:00:00 +0000`.
pub fn rfc5322_date(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} +0000",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// The proleptic Gregorian (year, month, day) of a day count from 1970-01-01, computed over
/// 400-year eras of 146 097 days that start on 1 March.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468; // days from 0000-03-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_qp(text: &str) -> String {
        let mut bytes = Vec::new();
        let joined = text.replace("=\r\n", "");
        let raw = joined.as_bytes();
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'=' {
                let hex = std::str::from_utf8(&raw[i + 1..i + 3]).unwrap();
                bytes.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                bytes.push(raw[i]);
                i += 1;
            }
        }
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn mailboxes_parse_and_render() {
        let plain = Mailbox::parse(" zoe@example.com ").unwrap();
        assert_eq!(plain.display, None);
        assert_eq!(plain.domain(), "example.com");
        assert_eq!(plain.header_value(), "zoe@example.com");
        let named = Mailbox::parse("Belfry Alerts <alerts@belfry.example>").unwrap();
        assert_eq!(named.address, "alerts@belfry.example");
        assert_eq!(
            named.header_value(),
            "Belfry Alerts <alerts@belfry.example>"
        );
        let quoted = Mailbox::parse("\"Doe, Jane\" <j@x.example>").unwrap();
        assert_eq!(quoted.display.as_deref(), Some("Doe, Jane"));
        assert_eq!(quoted.header_value(), "\"Doe, Jane\" <j@x.example>");
        let utf8 = Mailbox::parse("Zoë <z@x.example>").unwrap();
        assert_eq!(utf8.header_value(), "=?UTF-8?B?Wm/Dqw==?= <z@x.example>");
        for bad in [
            "",
            "nobody",
            "@x",
            "a@",
            "a b@x",
            "a@x\r\nBcc: y@z",
            "<a@b@c>",
        ] {
            assert!(Mailbox::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn encoded_words_split_on_characters_and_stay_short() {
        let text = "Ünïcödé ".repeat(20);
        let words = encoded_words(&text);
        let mut decoded = Vec::new();
        for word in words.split(' ') {
            assert!(word.len() <= 75, "{word}");
            let b64 = word
                .strip_prefix("=?UTF-8?B?")
                .and_then(|w| w.strip_suffix("?="))
                .unwrap();
            let chunk = STANDARD.decode(b64).unwrap();
            assert!(
                std::str::from_utf8(&chunk).is_ok(),
                "a word splits a character"
            );
            decoded.extend(chunk);
        }
        assert_eq!(String::from_utf8(decoded).unwrap(), text);
    }

    #[test]
    fn quoted_printable_round_trips_and_keeps_lines_short() {
        let text = "Hé = 1 \r\nline two\t\n.dot start\n\n".to_string()
            + &"long words ".repeat(30)
            + &"é".repeat(60);
        let encoded = quoted_printable(&text);
        for line in encoded.split("\r\n") {
            assert!(line.len() <= QP_LINE, "{} > 76: {line}", line.len());
            assert!(line.is_ascii());
            assert!(!line.ends_with(' ') && !line.ends_with('\t'), "{line:?}");
        }
        assert!(encoded.ends_with("\r\n"));
        assert!(encoded.starts_with("H=C3=A9 =3D 1=20\r\nline two=09\r\n.dot start\r\n\r\n"));
        assert_eq!(
            decode_qp(&encoded).replace("\r\n", "\n"),
            text.replace("\r\n", "\n") + "\n"
        );
        assert!(
            !encoded.contains("=_"),
            "a multipart boundary could collide"
        );
    }

    #[test]
    fn dates_are_rfc5322_in_utc() {
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_700_000_000),
            "Tue, 14 Nov 2023 22:13:20 +0000"
        );
        assert_eq!(
            rfc5322_date(4_133_980_799),
            "Fri, 31 Dec 2100 23:59:59 +0000"
        );
    }

    fn email<'a>(
        from: &'a Mailbox,
        to: &'a Mailbox,
        text: Option<&'a str>,
        html: Option<&'a str>,
        headers: &'a [(String, String)],
    ) -> Email<'a> {
        Email {
            from,
            to,
            subject: "Your order shipped",
            text,
            html,
            message_id: "<belfry-0192@shop.example>",
            date: "Tue, 14 Nov 2023 22:13:20 +0000",
            headers,
        }
    }

    #[test]
    fn a_text_message_has_every_header_and_crlf_lines() {
        let from = Mailbox::parse("Shop <orders@shop.example>").unwrap();
        let to = Mailbox::parse("zoe@example.com").unwrap();
        let headers = vec![
            (
                "List-Unsubscribe".to_string(),
                "<https://belfry.example/u/abc>".to_string(),
            ),
            (
                "List-Unsubscribe-Post".to_string(),
                "List-Unsubscribe=One-Click".to_string(),
            ),
        ];
        let message = build(&email(&from, &to, Some("Hi Zoe\n"), None, &headers)).unwrap();
        assert_eq!(
            message,
            "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n\
             From: Shop <orders@shop.example>\r\n\
             To: zoe@example.com\r\n\
             Subject: Your order shipped\r\n\
             Message-ID: <belfry-0192@shop.example>\r\n\
             MIME-Version: 1.0\r\n\
             List-Unsubscribe: <https://belfry.example/u/abc>\r\n\
             List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\
             \r\n\
             Hi Zoe\r\n\
             \r\n"
        );
        assert!(!message.replace("\r\n", "").contains('\n'));
    }

    #[test]
    fn text_and_html_are_multipart_alternative() {
        let from = Mailbox::parse("orders@shop.example").unwrap();
        let to = Mailbox::parse("zoe@example.com").unwrap();
        let message = build(&email(&from, &to, Some("Hi"), Some("<p>Hi</p>"), &[])).unwrap();
        let boundary = "=_belfry_belfry0192shopexample";
        assert!(message.contains(&format!(
            "Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n"
        )));
        let plain = message
            .find("Content-Type: text/plain; charset=utf-8")
            .unwrap();
        let html = message
            .find("Content-Type: text/html; charset=utf-8")
            .unwrap();
        assert!(plain < html, "the preferred part comes last");
        assert_eq!(message.matches(&format!("--{boundary}\r\n")).count(), 2);
        assert!(message.ends_with(&format!("<p>Hi</p>\r\n--{boundary}--\r\n")));
        let html_only = build(&email(&from, &to, None, Some("<b>x</b>"), &[])).unwrap();
        assert!(html_only.contains("Content-Type: text/html; charset=utf-8\r\n"));
        assert!(!html_only.contains("multipart"));
    }

    #[test]
    fn subjects_and_headers_cannot_break_the_header_block() {
        let from = Mailbox::parse("orders@shop.example").unwrap();
        let to = Mailbox::parse("zoe@example.com").unwrap();
        let mut e = email(&from, &to, Some("x"), None, &[]);
        e.subject = "Hello\r\nBcc: evil@example.com";
        let message = build(&e).unwrap();
        assert!(message.contains("Subject: Hello  Bcc: evil@example.com\r\n"));
        e.subject = "Déjà vu";
        assert!(
            build(&e)
                .unwrap()
                .contains("Subject: =?UTF-8?B?RMOpasOgIHZ1?=\r\n")
        );
        let long = "word ".repeat(40);
        e.subject = &long;
        let message = build(&e).unwrap();
        let header_block = &message[..message.find("\r\n\r\n").unwrap()];
        assert!(header_block.split("\r\n").all(|l| l.len() <= FOLD_AT));
        assert!(message.contains("\r\n word"), "folded with a leading space");
        for headers in [
            vec![("Bad Name".to_string(), "x".to_string())],
            vec![("X-A".to_string(), "one\r\nBcc: y@z".to_string())],
            vec![("From".to_string(), "x@y".to_string())],
            vec![("X-A".to_string(), "é".to_string())],
        ] {
            let e = email(&from, &to, Some("x"), None, &headers);
            assert!(build(&e).is_err(), "{headers:?}");
        }
    }
}

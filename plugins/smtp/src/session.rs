//! One SMTP client session (RFC 5321) over any line transport: greeting, `EHLO` (or `HELO`),
//! `AUTH`, `MAIL FROM`, `RCPT TO`, `DATA`, `QUIT`, and what each reply means for a retry.
//!
//! The session is pure: it reads lines from and writes bytes to a [`LineTransport`], so the
//! whole dialogue is tested on the host against scripted servers. The adapter's transport
//! ([`crate::net`]) is a TCP connection over WASI sockets, upgraded to TLS by the host.
//!
//! TLS ([`TlsMode`]): with `StartTls` the session says `EHLO`, then `STARTTLS`, has the
//! transport shake hands, and says `EHLO` again (RFC 3207: what the server said before TLS is
//! forgotten); a server that does not offer `STARTTLS` fails the delivery for good. With
//! `Implicit` the transport is TLS before the greeting. Credentials are only ever sent over
//! TLS.
//!
//! Replies: 2xx/3xx where expected go on; 4xx are transient (421 closing, 450/451/452 try
//! later); 5xx are permanent (550 no such user, 553, 554, 535 bad credentials…), each failure
//! naming the command and the server's text.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use belfry_plugin_sdk::adapter::SendError;

/// The most lines one reply may have, and bytes one line: a server past these is broken.
pub const MAX_REPLY_LINES: usize = 256;
pub const MAX_LINE_BYTES: usize = 8192;

/// Lines in, bytes out. `read_line` returns one line without its CRLF (or LF).
pub trait LineTransport {
    fn write_all(&mut self, data: &[u8]) -> Result<(), SendError>;
    fn read_line(&mut self) -> Result<String, SendError>;
    /// Turns the connection into TLS in place, verifying the server's certificate and name;
    /// a refused certificate is a permanent failure naming the reason.
    fn start_tls(&mut self) -> Result<(), SendError>;
}

/// How the connection is secured: the config key `tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain TCP, then `STARTTLS` (submission, port 587); required, never skipped.
    StartTls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// Plain text throughout: only when the operator says so, for a relay on a trusted
    /// network. No credentials are sent.
    None,
}

impl TlsMode {
    pub fn parse(text: &str) -> Option<TlsMode> {
        match text.trim().to_ascii_lowercase().as_str() {
            "starttls" => Some(TlsMode::StartTls),
            "implicit" => Some(TlsMode::Implicit),
            "none" => Some(TlsMode::None),
            _ => None,
        }
    }

    /// `implicit` on 465 (SMTPS, RFC 8314), `starttls` everywhere else.
    pub fn default_for(port: u16) -> TlsMode {
        if port == 465 {
            TlsMode::Implicit
        } else {
            TlsMode::StartTls
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::StartTls => "starttls",
            TlsMode::Implicit => "implicit",
            TlsMode::None => "none",
        }
    }
}

/// How to talk to the server.
#[derive(Debug, Clone)]
pub struct Settings<'a> {
    /// `host:port`, for messages.
    pub server: &'a str,
    pub helo_name: &'a str,
    pub credentials: Option<(&'a str, &'a str)>,
    /// With `Implicit`, the transport is TLS already.
    pub tls: TlsMode,
}

/// One message for one recipient.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    pub from: &'a str,
    pub to: &'a str,
    /// The message with CRLF line endings, not yet dot-stuffed.
    pub message: &'a str,
}

/// A message the server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The server's text after `DATA` (`2.0.0 Ok: queued as 4F1A2B3C`).
    pub reply: String,
    /// The queue id in that text, when the server names one.
    pub queued_as: Option<String>,
}

/// A reply: its code and the text of each line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn text(&self) -> String {
        self.lines
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What the server said it supports in its `EHLO` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    pub starttls: bool,
    pub smtputf8: bool,
    /// `AUTH` mechanisms, upper case.
    pub auth: Vec<String>,
    /// `SIZE`'s limit; 0 or absent is no limit.
    pub size: Option<u64>,
}

impl Extensions {
    /// The EHLO reply's lines after the first (which is the server's greeting).
    pub fn parse(reply: &Reply) -> Extensions {
        let mut ext = Extensions::default();
        for line in reply.lines.iter().skip(1) {
            let line = line.trim().to_ascii_uppercase();
            let mut words = line.split([' ', '=']).filter(|w| !w.is_empty());
            match words.next() {
                Some("STARTTLS") => ext.starttls = true,
                Some("SMTPUTF8") => ext.smtputf8 = true,
                Some("AUTH") => {
                    for mechanism in words {
                        if !ext.auth.iter().any(|m| m == mechanism) {
                            ext.auth.push(mechanism.to_string());
                        }
                    }
                }
                Some("SIZE") => ext.size = words.next().and_then(|n| n.parse().ok()),
                _ => {}
            }
        }
        ext
    }
}

/// Runs the session; on a failure it still says `QUIT` (best effort).
/// `warn` gets what the operator should know (`tls = none` with a server that offers TLS).
pub fn deliver(
    transport: &mut impl LineTransport,
    settings: &Settings<'_>,
    envelope: &Envelope<'_>,
    warn: &mut dyn FnMut(String),
) -> Result<Accepted, SendError> {
    let mut session = Session {
        transport,
        server: settings.server,
    };
    let greeting = session.read_reply()?;
    if let Err(failure) = session.expect(&greeting, &[220], "the greeting") {
        // A server that will not talk (554) still waits for QUIT (RFC 5321 3.1).
        let _ = session.command("QUIT");
        return Err(failure);
    }
    let result = session.run(settings, envelope, warn);
    match &result {
        Ok(_) => {
            // The message is accepted: what QUIT gets back does not matter.
            if session.command("QUIT").is_ok() {
                let _ = session.read_reply();
            }
        }
        Err(_) => {
            let _ = session.command("QUIT");
        }
    }
    result
}

struct Session<'t, T: LineTransport> {
    transport: &'t mut T,
    server: &'t str,
}

impl<T: LineTransport> Session<'_, T> {
    fn run(
        &mut self,
        settings: &Settings<'_>,
        envelope: &Envelope<'_>,
        warn: &mut dyn FnMut(String),
    ) -> Result<Accepted, SendError> {
        let mut ext = self.hello(settings.helo_name)?;
        match settings.tls {
            TlsMode::StartTls => {
                if !ext.starttls {
                    return Err(SendError::Permanent(format!(
                        "{} does not offer STARTTLS, which `tls = starttls` requires (a server \
                         that speaks TLS from the first byte, usually on port 465, wants \
                         `tls = implicit`)",
                        self.server
                    )));
                }
                // 454 (TLS not available for now) is transient, 5xx permanent.
                self.exchange("STARTTLS", &[220], "STARTTLS")?;
                self.transport.start_tls()?;
                ext = self.hello(settings.helo_name)?;
            }
            TlsMode::Implicit => {}
            TlsMode::None => {
                if ext.starttls {
                    warn(format!(
                        "{} offers STARTTLS, but `tls = none`: sending in plain text",
                        self.server
                    ));
                }
            }
        }
        if let Some((user, password)) = settings.credentials {
            if settings.tls == TlsMode::None {
                // The config refuses this pairing already; this is the session's own guard.
                return Err(no_credentials_in_plain_text());
            }
            self.authenticate(&ext, user, password)?;
        }

        let needs_utf8 = !envelope.from.is_ascii() || !envelope.to.is_ascii();
        if needs_utf8 && !ext.smtputf8 {
            return Err(SendError::Permanent(format!(
                "{} does not offer SMTPUTF8, which the non-ASCII address {} needs",
                self.server,
                if envelope.from.is_ascii() {
                    envelope.to
                } else {
                    envelope.from
                }
            )));
        }
        let data = dot_stuff(envelope.message);
        let mut mail = format!("MAIL FROM:<{}>", envelope.from);
        if let Some(limit) = ext.size {
            let size = data.len() as u64;
            if limit > 0 && size > limit {
                return Err(SendError::Permanent(format!(
                    "the message is {size} bytes; {} accepts at most {limit}",
                    self.server
                )));
            }
            mail.push_str(&format!(" SIZE={size}"));
        }
        if needs_utf8 {
            mail.push_str(" SMTPUTF8");
        }
        self.exchange(&mail, &[250], "MAIL FROM")?;
        self.exchange(
            &format!("RCPT TO:<{}>", envelope.to),
            &[250, 251],
            "RCPT TO",
        )?;
        self.exchange("DATA", &[354], "DATA")?;
        self.transport.write_all(data.as_bytes())?;
        self.transport.write_all(b".\r\n")?;
        let reply = self.read_reply()?;
        self.expect(&reply, &[250], "the message data")?;
        let text = reply.text();
        Ok(Accepted {
            queued_as: queue_id(&text),
            reply: text,
        })
    }

    /// `EHLO`, or `HELO` (and no extensions) from a server that does not know `EHLO`.
    fn hello(&mut self, helo_name: &str) -> Result<Extensions, SendError> {
        self.command(&format!("EHLO {helo_name}"))?;
        let reply = self.read_reply()?;
        if matches!(reply.code, 500 | 502) {
            self.exchange(&format!("HELO {helo_name}"), &[250], "HELO")?;
            return Ok(Extensions::default());
        }
        self.expect(&reply, &[250], "EHLO")?;
        Ok(Extensions::parse(&reply))
    }

    /// `AUTH PLAIN` when offered, else `AUTH LOGIN`.
    fn authenticate(
        &mut self,
        ext: &Extensions,
        user: &str,
        password: &str,
    ) -> Result<(), SendError> {
        let offers = |m: &str| ext.auth.iter().any(|a| a == m);
        if offers("PLAIN") {
            let token = STANDARD.encode(format!("\0{user}\0{password}"));
            self.command(&format!("AUTH PLAIN {token}"))?;
            let mut reply = self.read_reply()?;
            if reply.code == 334 {
                // A server that wants the initial response on its own line.
                self.command(&token)?;
                reply = self.read_reply()?;
            }
            return self.expect(&reply, &[235], "AUTH PLAIN");
        }
        if offers("LOGIN") {
            self.exchange("AUTH LOGIN", &[334], "AUTH LOGIN")?;
            self.exchange(&STANDARD.encode(user), &[334], "AUTH LOGIN (user name)")?;
            self.exchange(&STANDARD.encode(password), &[235], "AUTH LOGIN (password)")?;
            return Ok(());
        }
        Err(SendError::Permanent(if ext.auth.is_empty() {
            format!(
                "{} offers no AUTH, but `username` and `password` are set",
                self.server
            )
        } else {
            format!(
                "{} offers AUTH {} but neither PLAIN nor LOGIN, the mechanisms this adapter has",
                self.server,
                ext.auth.join(" ")
            )
        }))
    }

    fn command(&mut self, line: &str) -> Result<(), SendError> {
        self.transport.write_all(format!("{line}\r\n").as_bytes())
    }

    fn exchange(&mut self, line: &str, ok: &[u16], what: &str) -> Result<Reply, SendError> {
        self.command(line)?;
        let reply = self.read_reply()?;
        self.expect(&reply, ok, what)?;
        Ok(reply)
    }

    fn expect(&self, reply: &Reply, ok: &[u16], what: &str) -> Result<(), SendError> {
        if ok.contains(&reply.code) {
            return Ok(());
        }
        let message = format!(
            "{} answered {} to {what}: {}",
            self.server,
            reply.code,
            reply.text()
        );
        Err(match reply.code {
            500..=599 => SendError::Permanent(message),
            // 4xx, and anything out of order: worth another try on a fresh connection.
            _ => SendError::Transient(message),
        })
    }

    fn read_reply(&mut self) -> Result<Reply, SendError> {
        let mut lines = Vec::new();
        loop {
            let line = self.transport.read_line()?;
            let malformed = || {
                SendError::Transient(format!(
                    "{} sent a malformed SMTP reply line: {}",
                    self.server,
                    belfry_plugin_sdk::http::excerpt(&line)
                ))
            };
            let code = line
                .get(..3)
                .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| (200..600).contains(c))
                .ok_or_else(malformed)?;
            let (more, text) = match line.as_bytes().get(3) {
                None => (false, ""),
                Some(b' ') => (false, &line[4..]),
                Some(b'-') => (true, &line[4..]),
                Some(_) => return Err(malformed()),
            };
            if lines
                .first()
                .is_some_and(|(first, _): &(u16, String)| *first != code)
            {
                return Err(malformed());
            }
            lines.push((code, text.to_string()));
            if !more {
                break;
            }
            if lines.len() >= MAX_REPLY_LINES {
                return Err(SendError::Transient(format!(
                    "{} sent a reply of more than {MAX_REPLY_LINES} lines",
                    self.server
                )));
            }
        }
        Ok(Reply {
            code: lines[0].0,
            lines: lines.into_iter().map(|(_, t)| t).collect(),
        })
    }
}

/// Credentials go over TLS only.
pub fn no_credentials_in_plain_text() -> SendError {
    SendError::Permanent(
        "config keys `username` and `password` need TLS: with `tls = none` they would cross the \
         network in plain text (use `tls = starttls` or `implicit`)"
            .to_string(),
    )
}

/// A line starting with `.` gets another (RFC 5321 4.5.2); the result ends in CRLF, so
/// `.\r\n` after it ends the data.
pub fn dot_stuff(message: &str) -> String {
    let mut out = String::with_capacity(message.len() + 64);
    for line in message.split_inclusive("\r\n") {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
    }
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out
}

/// The queue id in a reply to the data: `queued as 4F1A2B3C` (Postfix, aiosmtpd's
/// `250 Message accepted for delivery` has none), or `id=…` (Exim).
pub fn queue_id(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let start = if let Some(i) = lower.find("queued as ") {
        i + "queued as ".len()
    } else if let Some(i) = lower.find("id=") {
        i + "id=".len()
    } else {
        return None;
    };
    let id: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "-_.@<>".contains(*c))
        .collect();
    let id = id.trim_matches(|c| c == '<' || c == '>' || c == '.');
    (!id.is_empty()).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A server that answers each command from a script and records what it was sent; a
    /// TLS handshake shows in `sent` as the line `<TLS>`, and fails with `tls_failure`.
    struct Scripted {
        replies: VecDeque<&'static str>,
        sent: String,
        tls_failure: Option<SendError>,
    }

    impl Scripted {
        fn new(replies: &[&'static str]) -> Self {
            Scripted {
                replies: replies.iter().copied().collect(),
                sent: String::new(),
                tls_failure: None,
            }
        }

        fn commands(&self) -> Vec<&str> {
            self.sent.split("\r\n").filter(|l| !l.is_empty()).collect()
        }
    }

    impl LineTransport for Scripted {
        fn write_all(&mut self, data: &[u8]) -> Result<(), SendError> {
            self.sent.push_str(std::str::from_utf8(data).unwrap());
            Ok(())
        }

        fn read_line(&mut self) -> Result<String, SendError> {
            self.replies
                .pop_front()
                .map(str::to_string)
                .ok_or_else(|| SendError::Transient("connection closed".to_string()))
        }

        fn start_tls(&mut self) -> Result<(), SendError> {
            self.sent.push_str("<TLS>\r\n");
            self.tls_failure.take().map_or(Ok(()), Err)
        }
    }

    const SETTINGS: Settings<'static> = Settings {
        server: "mail.example:587",
        helo_name: "belfry.localdomain",
        credentials: None,
        tls: TlsMode::None,
    };
    const ENVELOPE: Envelope<'static> = Envelope {
        from: "orders@shop.example",
        to: "zoe@example.com",
        message: "Subject: x\r\n\r\n.hidden\r\nbody\r\n",
    };

    fn run(
        script: &[&'static str],
        settings: &Settings<'_>,
        envelope: &Envelope<'_>,
    ) -> (Result<Accepted, SendError>, Scripted, Vec<String>) {
        run_with(Scripted::new(script), settings, envelope)
    }

    fn run_with(
        mut server: Scripted,
        settings: &Settings<'_>,
        envelope: &Envelope<'_>,
    ) -> (Result<Accepted, SendError>, Scripted, Vec<String>) {
        let mut warnings = Vec::new();
        let result = deliver(&mut server, settings, envelope, &mut |w| warnings.push(w));
        (result, server, warnings)
    }

    #[test]
    fn a_plain_session_sends_one_dot_stuffed_message() {
        let (result, server, warnings) = run(
            &[
                "220 mail.example ESMTP",
                "250-mail.example",
                "250-SIZE 1000",
                "250-8BITMIME",
                "250 HELP",
                "250 2.1.0 Ok",
                "250 2.1.5 Ok",
                "354 End data with <CR><LF>.<CR><LF>",
                "250 2.0.0 Ok: queued as 4F1A2B3C",
                "221 2.0.0 Bye",
            ],
            &SETTINGS,
            &ENVELOPE,
        );
        let accepted = result.unwrap();
        assert_eq!(accepted.queued_as.as_deref(), Some("4F1A2B3C"));
        assert_eq!(
            server.commands(),
            [
                "EHLO belfry.localdomain",
                "MAIL FROM:<orders@shop.example> SIZE=30",
                "RCPT TO:<zoe@example.com>",
                "DATA",
                "Subject: x",
                "..hidden",
                "body",
                ".",
                "QUIT",
            ]
        );
        assert!(warnings.is_empty());
    }

    #[test]
    fn starttls_upgrades_then_says_ehlo_again() {
        let starttls = Settings {
            tls: TlsMode::StartTls,
            credentials: Some(("bel", "s3cret")),
            ..SETTINGS
        };
        let (result, server, warnings) = run(
            &[
                "220 mail.example ESMTP",
                "250-mail.example",
                "250 STARTTLS",
                "220 2.0.0 Ready to start TLS",
                "250-mail.example",
                "250 AUTH PLAIN",
                "235 2.7.0 Authentication successful",
                "250 Ok",
                "250 Ok",
                "354 Go ahead",
                "250 Ok",
                "221 Bye",
            ],
            &starttls,
            &ENVELOPE,
        );
        assert!(result.is_ok(), "{result:?}");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            &server.commands()[..5],
            [
                "EHLO belfry.localdomain",
                "STARTTLS",
                "<TLS>",
                "EHLO belfry.localdomain",
                "AUTH PLAIN AGJlbABzM2NyZXQ="
            ]
        );
    }

    #[test]
    fn starttls_missing_refused_or_failing_stops_the_session() {
        let starttls = Settings {
            tls: TlsMode::StartTls,
            credentials: Some(("bel", "s3cret")),
            ..SETTINGS
        };
        // Not offered: permanent, and nothing but QUIT follows (no credentials, no mail).
        let (result, server, _) = run(
            &["220 hi", "250-mail.example", "250 AUTH PLAIN"],
            &starttls,
            &ENVELOPE,
        );
        assert!(
            matches!(&result, Err(SendError::Permanent(m)) if m.contains("does not offer STARTTLS")),
            "{result:?}"
        );
        assert_eq!(server.commands(), ["EHLO belfry.localdomain", "QUIT"]);
        // 454: not now.
        let (result, _, _) = run(
            &[
                "220 hi",
                "250-mail.example",
                "250 STARTTLS",
                "454 4.7.0 TLS not available due to temporary reason",
            ],
            &starttls,
            &ENVELOPE,
        );
        assert!(
            matches!(&result, Err(SendError::Transient(m)) if m.contains("454 to STARTTLS")),
            "{result:?}"
        );
        // The handshake's failure is the delivery's, as it came.
        let mut server = Scripted::new(&["220 hi", "250-mail.example", "250 STARTTLS", "220 Go"]);
        server.tls_failure = Some(SendError::Permanent("certificate refused".to_string()));
        let (result, server, _) = run_with(server, &starttls, &ENVELOPE);
        assert_eq!(
            result,
            Err(SendError::Permanent("certificate refused".to_string()))
        );
        assert!(!server.sent.contains("AUTH"), "{}", server.sent);
    }

    #[test]
    fn plain_text_only_when_asked_and_never_with_credentials() {
        let script = [
            "220 mail.example ESMTP",
            "250-mail.example",
            "250 STARTTLS",
            "250 Ok",
            "250 Ok",
            "354 Go ahead",
            "250 Message accepted for delivery",
            "221 Bye",
        ];
        let (result, server, warnings) = run(&script, &SETTINGS, &ENVELOPE);
        assert_eq!(result.unwrap().queued_as, None);
        assert!(!server.sent.contains("<TLS>"));
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("plain text"), "{warnings:?}");

        let with_credentials = Settings {
            credentials: Some(("bel", "s3cret")),
            ..SETTINGS
        };
        let (result, server, _) = run(&script, &with_credentials, &ENVELOPE);
        assert_eq!(result, Err(no_credentials_in_plain_text()));
        assert!(!server.sent.contains("AUTH"));

        // Implicit TLS: the transport is TLS already; no STARTTLS.
        let implicit = Settings {
            tls: TlsMode::Implicit,
            ..SETTINGS
        };
        let (result, server, warnings) = run(&script, &implicit, &ENVELOPE);
        assert!(result.is_ok(), "{result:?}");
        assert!(warnings.is_empty());
        assert!(!server.sent.contains("STARTTLS"));
    }

    #[test]
    fn tls_modes_parse_and_default_by_port() {
        assert_eq!(TlsMode::parse(" STARTTLS "), Some(TlsMode::StartTls));
        assert_eq!(TlsMode::parse("implicit"), Some(TlsMode::Implicit));
        assert_eq!(TlsMode::parse("none"), Some(TlsMode::None));
        assert_eq!(TlsMode::parse("required"), None);
        assert_eq!(TlsMode::default_for(465), TlsMode::Implicit);
        assert_eq!(TlsMode::default_for(587), TlsMode::StartTls);
        assert_eq!(TlsMode::default_for(25), TlsMode::StartTls);
    }

    #[test]
    fn auth_prefers_plain_and_falls_back_to_login() {
        let with_auth = Settings {
            credentials: Some(("bel", "s3cret")),
            tls: TlsMode::Implicit,
            ..SETTINGS
        };
        let (result, server, _) = run(
            &[
                "220 hi",
                "250-mail.example",
                "250-AUTH LOGIN PLAIN",
                "250 AUTH=LOGIN PLAIN",
                "235 2.7.0 Authentication successful",
                "250 Ok",
                "250 Ok",
                "354 Go",
                "250 Ok",
                "221 Bye",
            ],
            &with_auth,
            &ENVELOPE,
        );
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(server.commands()[1], "AUTH PLAIN AGJlbABzM2NyZXQ=");

        let (result, server, _) = run(
            &[
                "220 hi",
                "250-mail.example",
                "250 AUTH LOGIN",
                "334 VXNlcm5hbWU6",
                "334 UGFzc3dvcmQ6",
                "235 Ok",
                "250 Ok",
                "250 Ok",
                "354 Go",
                "250 Ok",
                "221 Bye",
            ],
            &with_auth,
            &ENVELOPE,
        );
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(&server.commands()[1..4], ["AUTH LOGIN", "YmVs", "czNjcmV0"]);

        let (result, _, _) = run(
            &[
                "220 hi",
                "250-mail.example",
                "250 AUTH PLAIN",
                "535 5.7.8 Authentication credentials invalid",
            ],
            &with_auth,
            &ENVELOPE,
        );
        assert_eq!(
            result,
            Err(SendError::Permanent(
                "mail.example:587 answered 535 to AUTH PLAIN: 5.7.8 Authentication credentials invalid"
                    .to_string()
            ))
        );
        let (result, _, _) = run(&["220 hi", "250 mail.example"], &with_auth, &ENVELOPE);
        assert!(matches!(result, Err(SendError::Permanent(m)) if m.contains("offers no AUTH")));
        let (result, _, _) = run(
            &["220 hi", "250-mail.example", "250 AUTH CRAM-MD5"],
            &with_auth,
            &ENVELOPE,
        );
        assert!(matches!(result, Err(SendError::Permanent(m)) if m.contains("CRAM-MD5")));
    }

    #[test]
    fn reply_codes_map_onto_retry_semantics() {
        let head = ["220 hi", "250 mail.example", "250 Ok"];
        let (result, server, _) = run(
            &[
                head[0],
                head[1],
                head[2],
                "550 5.1.1 <zoe@example.com>: Recipient address rejected: User unknown",
            ],
            &SETTINGS,
            &ENVELOPE,
        );
        assert_eq!(
            result,
            Err(SendError::Permanent(
                "mail.example:587 answered 550 to RCPT TO: 5.1.1 <zoe@example.com>: Recipient address rejected: User unknown"
                    .to_string()
            ))
        );
        assert_eq!(server.commands().last(), Some(&"QUIT"));
        let (result, _, _) = run(
            &[
                head[0],
                head[1],
                head[2],
                "451-4.7.1 Greylisted,",
                "451 4.7.1 try again later",
            ],
            &SETTINGS,
            &ENVELOPE,
        );
        assert_eq!(
            result,
            Err(SendError::Transient(
                "mail.example:587 answered 451 to RCPT TO: 4.7.1 Greylisted, 4.7.1 try again later"
                    .to_string()
            ))
        );
        let (result, _, _) = run(&["421 4.3.2 Service not available"], &SETTINGS, &ENVELOPE);
        assert!(
            matches!(result, Err(SendError::Transient(m)) if m.contains("421 to the greeting"))
        );
        let (result, _, _) = run(&["554 5.7.1 go away"], &SETTINGS, &ENVELOPE);
        assert!(matches!(result, Err(SendError::Permanent(_))));
        let (result, _, _) = run(
            &[
                head[0],
                head[1],
                head[2],
                "250 Ok",
                "354 Go",
                "554 5.6.0 Message rejected",
            ],
            &SETTINGS,
            &ENVELOPE,
        );
        assert!(
            matches!(result, Err(SendError::Permanent(m)) if m.contains("554 to the message data"))
        );
        let (result, _, _) = run(&[head[0], head[1]], &SETTINGS, &ENVELOPE);
        assert_eq!(
            result,
            Err(SendError::Transient("connection closed".to_string()))
        );
        let (result, _, _) = run(&["hello"], &SETTINGS, &ENVELOPE);
        assert!(matches!(result, Err(SendError::Transient(m)) if m.contains("malformed")));
        let (result, _, _) = run(&["220-a", "221 b"], &SETTINGS, &ENVELOPE);
        assert!(matches!(result, Err(SendError::Transient(m)) if m.contains("malformed")));
    }

    #[test]
    fn helo_size_and_smtputf8() {
        let (result, server, _) = run(
            &[
                "220 hi",
                "502 5.5.2 Error: command not recognized",
                "250 mail.example",
                "250 Ok",
                "250 Ok",
                "354 Go",
                "250 Ok",
                "221 Bye",
            ],
            &SETTINGS,
            &ENVELOPE,
        );
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(server.commands()[1], "HELO belfry.localdomain");
        assert_eq!(server.commands()[2], "MAIL FROM:<orders@shop.example>");

        let (result, _, _) = run(
            &["220 hi", "250-mail.example", "250 SIZE 10"],
            &SETTINGS,
            &ENVELOPE,
        );
        assert!(matches!(result, Err(SendError::Permanent(m)) if m.contains("at most 10")));

        let utf8 = Envelope {
            to: "zoë@example.com",
            ..ENVELOPE
        };
        let (result, _, _) = run(&["220 hi", "250 mail.example"], &SETTINGS, &utf8);
        assert!(matches!(result, Err(SendError::Permanent(m)) if m.contains("SMTPUTF8")));
        let (result, server, _) = run(
            &[
                "220 hi",
                "250-mail.example",
                "250 SMTPUTF8",
                "250 Ok",
                "250 Ok",
                "354 Go",
                "250 Ok",
                "221 Bye",
            ],
            &SETTINGS,
            &utf8,
        );
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(
            server.commands()[1],
            "MAIL FROM:<orders@shop.example> SMTPUTF8"
        );
    }

    #[test]
    fn dot_stuffing_and_queue_ids() {
        assert_eq!(dot_stuff(".a\r\nb\r\n..c\r\n"), "..a\r\nb\r\n...c\r\n");
        assert_eq!(dot_stuff("a"), "a\r\n");
        assert_eq!(
            queue_id("2.0.0 Ok: queued as 4F1A2B3C").as_deref(),
            Some("4F1A2B3C")
        );
        assert_eq!(
            queue_id("OK id=1qRs7x-0004Zk-2b").as_deref(),
            Some("1qRs7x-0004Zk-2b")
        );
        assert_eq!(queue_id("Message accepted for delivery"), None);
    }

    #[test]
    fn extensions_parse() {
        let reply = Reply {
            code: 250,
            lines: vec![
                "mail.example Hello".to_string(),
                "auth plain login".to_string(),
                "SIZE 35882577".to_string(),
                "STARTTLS".to_string(),
                "SMTPUTF8".to_string(),
            ],
        };
        assert_eq!(
            Extensions::parse(&reply),
            Extensions {
                starttls: true,
                smtputf8: true,
                auth: vec!["PLAIN".to_string(), "LOGIN".to_string()],
                size: Some(35_882_577),
            }
        );
    }
}

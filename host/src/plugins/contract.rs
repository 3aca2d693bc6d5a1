//! The host-side types of the plugin contract: what the engine hands a plugin and reads back,
//! whichever contract version the plugin was built against (`versions.rs` converts). Features
//! above (dispatch, feedback, workflows) use these; the plugins know nothing of them.

use super::workflow::Workflow;
use crate::content::{Channel, Content, Recipient};
use crate::policy::Severity;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What an adapter's `send` said.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SendError {
    Transient {
        message: String,
    },
    RateLimited {
        retry_after_ms: u64,
        message: String,
    },
    Permanent {
        message: String,
    },
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Transient { message } => write!(f, "transient: {message}"),
            SendError::RateLimited {
                retry_after_ms,
                message,
            } => write!(
                f,
                "rate-limited (retry after {retry_after_ms} ms): {message}"
            ),
            SendError::Permanent { message } => write!(f, "permanent: {message}"),
        }
    }
}

/// The message handed to an adapter's `send`.
#[derive(Clone, Debug)]
pub struct OutgoingMessage {
    pub delivery_id: String,
    pub notification_id: String,
    pub tenant: String,
    pub idempotency_key: String,
    pub attempt: u32,
    pub channel: Channel,
    pub recipient: Recipient,
    pub content: Content,
    /// Headers the host requires on the message (email: one-click unsubscribe).
    pub headers: Vec<(String, String)>,
}

/// What a notifier says about itself.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NotifierDescription {
    pub key: String,
    pub version: String,
    pub category: String,
    pub channels: Vec<Channel>,
    pub description: String,
    /// The severity of its notifications when the trigger names none (`normal` before WIT
    /// 0.2.0).
    pub severity: Severity,
    /// Channels sent only if the in-app item is still unread after a while (WIT 0.2.0).
    pub fallbacks: Vec<Fallback>,
    /// Deliveries that quiet hours or a cap would defer may be folded into the recipient's
    /// digest instead (WIT 0.3.0).
    pub fold_deferred: bool,
    /// A journey of steps run once per notification (WIT 0.4.0).
    pub workflow: Option<Workflow>,
}

/// "Send on `channel` only if the in-app item is unread `after_ms` after planning."
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Fallback {
    pub channel: Channel,
    pub after_ms: u64,
}

/// The longest a fallback may wait.
pub const MAX_FALLBACK_MS: u64 = 30 * 24 * 3600 * 1000;

impl NotifierDescription {
    /// The fallback for `channel`, if it is one.
    pub fn fallback_for(&self, channel: Channel) -> Option<Fallback> {
        self.fallbacks
            .iter()
            .find(|f| f.channel == channel)
            .copied()
    }

    /// What `describe` must satisfy before the notifier is accepted: a load-time check, so a
    /// bad declaration fails the load with its field named, not a trigger later.
    pub fn validate(&self) -> Result<(), String> {
        if self.key.trim().is_empty() {
            return Err("describe().key is empty".into());
        }
        if self.channels.is_empty() {
            return Err("describe().channels is empty".into());
        }
        let mut seen = Vec::new();
        for f in &self.fallbacks {
            let c = f.channel;
            if c == Channel::InApp {
                return Err("describe().fallbacks: in-app cannot be its own fallback".into());
            }
            if !self.channels.contains(&c) {
                return Err(format!(
                    "describe().fallbacks: {c} is not among describe().channels"
                ));
            }
            if !self.channels.contains(&Channel::InApp) {
                return Err(format!(
                    "describe().fallbacks: {c} falls back from in-app, which is not among describe().channels"
                ));
            }
            if f.after_ms == 0 || f.after_ms > MAX_FALLBACK_MS {
                return Err(format!(
                    "describe().fallbacks: {c} after-ms must be 1 to {MAX_FALLBACK_MS} (30 days), got {}",
                    f.after_ms
                ));
            }
            if seen.contains(&c) {
                return Err(format!("describe().fallbacks: {c} appears twice"));
            }
            seen.push(c);
        }
        if let Some(w) = &self.workflow {
            if self.fold_deferred {
                return Err(
                    "describe(): a workflow notifier cannot fold deferred deliveries into digests (its steps wait on each delivery's outcome)"
                        .into(),
                );
            }
            if !self.fallbacks.is_empty() {
                return Err(
                    "describe(): a workflow notifier declares no fallbacks (its steps wait instead)"
                        .into(),
                );
            }
            w.validate(&self.channels)?;
        }
        Ok(())
    }
}

/// What a notifier's `channels` says about one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientPlan {
    pub channels: Vec<Channel>,
    /// Raises the notification's severity for this recipient (WIT 0.2.0).
    pub severity: Option<Severity>,
    /// Channels held for digest rather than sent at once (WIT 0.3.0).
    pub held: Vec<Hold>,
}

/// A channel held for digest, and the digest key its items group under.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Hold {
    pub channel: Channel,
    pub digest_key: Option<String>,
}

/// The longest digest key a notifier may give.
pub const MAX_DIGEST_KEY: usize = 200;

// --- what an adapter reads from a provider's webhook -----------------------------------------

/// The normalized taxonomy every adapter maps its provider's events onto.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FeedbackKind {
    Accepted,
    Delivered,
    Deferred,
    BouncedHard,
    BouncedSoft,
    Complained,
    Rejected,
    Failed,
    Opened,
    Clicked,
    Unsubscribed,
}

impl FeedbackKind {
    pub const ALL: [FeedbackKind; 11] = [
        FeedbackKind::Accepted,
        FeedbackKind::Delivered,
        FeedbackKind::Deferred,
        FeedbackKind::BouncedHard,
        FeedbackKind::BouncedSoft,
        FeedbackKind::Complained,
        FeedbackKind::Rejected,
        FeedbackKind::Failed,
        FeedbackKind::Opened,
        FeedbackKind::Clicked,
        FeedbackKind::Unsubscribed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackKind::Accepted => "accepted",
            FeedbackKind::Delivered => "delivered",
            FeedbackKind::Deferred => "deferred",
            FeedbackKind::BouncedHard => "bounced_hard",
            FeedbackKind::BouncedSoft => "bounced_soft",
            FeedbackKind::Complained => "complained",
            FeedbackKind::Rejected => "rejected",
            FeedbackKind::Failed => "failed",
            FeedbackKind::Opened => "opened",
            FeedbackKind::Clicked => "clicked",
            FeedbackKind::Unsubscribed => "unsubscribed",
        }
    }

    pub fn parse(s: &str) -> Option<FeedbackKind> {
        FeedbackKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for FeedbackKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event an adapter read from a provider's webhook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FeedbackEvent {
    pub kind: FeedbackKind,
    pub provider_event_id: String,
    pub provider_message_id: String,
    pub occurred_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

/// A provider's webhook request, exactly as received.
#[derive(Clone, Debug)]
pub struct WebhookRequest {
    pub method: String,
    /// The absolute URL the provider called.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub received_at: DateTime<Utc>,
}

/// Why an adapter refused a webhook request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookRejection {
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mention() -> NotifierDescription {
        NotifierDescription {
            key: "mention".into(),
            version: "1".into(),
            category: "activity".into(),
            channels: vec![Channel::Email, Channel::InApp],
            description: String::new(),
            severity: Severity::Normal,
            fallbacks: vec![Fallback {
                channel: Channel::Email,
                after_ms: 900_000,
            }],
            fold_deferred: false,
            workflow: None,
        }
    }

    #[test]
    fn a_description_is_checked_at_load_naming_what_is_wrong() {
        assert_eq!(mention().validate(), Ok(()));
        type Break = fn(&mut NotifierDescription);
        let cases: [(Break, &str); 6] = [
            (|d| d.key = " ".into(), "describe().key is empty"),
            (|d| d.channels.clear(), "describe().channels is empty"),
            (
                |d| d.fallbacks[0].channel = Channel::InApp,
                "in-app cannot be its own fallback",
            ),
            (
                |d| d.fallbacks[0].channel = Channel::Sms,
                "sms is not among describe().channels",
            ),
            (
                |d| d.channels.retain(|c| *c != Channel::InApp),
                "email falls back from in-app, which is not among describe().channels",
            ),
            (|d| d.fallbacks[0].after_ms = 0, "after-ms must be 1 to"),
        ];
        for (break_it, expected) in cases {
            let mut d = mention();
            break_it(&mut d);
            let err = d.validate().unwrap_err();
            assert!(err.contains(expected), "{err} should say {expected}");
        }
        let mut d = mention();
        d.fallbacks[0].after_ms = MAX_FALLBACK_MS + 1;
        assert!(d.validate().unwrap_err().contains("after-ms"));
        d.fallbacks = vec![d.fallbacks[0]; 2];
        d.fallbacks[0].after_ms = 1;
        d.fallbacks[1].after_ms = 1;
        assert!(d.validate().unwrap_err().contains("email appears twice"));
    }
}

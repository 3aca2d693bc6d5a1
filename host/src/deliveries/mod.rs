//! Deliveries: one recipient's notification on one channel, from planned to its final status.
//!
//! This module owns the tables `events`, `notifications` and `deliveries` (what was asked, for
//! whom, and what is planned): the statuses and reasons stored in them ([`Status`],
//! [`Reason`]), the one insert of each row that trigger, digests and workflows use
//! ([`rows`]), the updates and the reads.

mod digested;
pub mod reads;
pub mod rows;
pub mod transitions;
mod vocab;

pub use digested::mark_bucket_digested;
pub use reads::{
    AttemptRecord, DeliveryFilter, DeliveryRecord, MAX_PAGE, deliveries_page, tenant_of,
};
pub use rows::{
    NewDelivery, NewEvent, NewNotification, idempotency_key_for, insert_delivery, insert_event,
    insert_notification,
};
pub use vocab::{Reason, Status, UnknownValue};

/// Stable status reasons (stored; do not rename): the strings of [`Reason`], for code that
/// compares or binds them as text.
pub mod reason {
    use super::Reason;

    pub const NOTIFIER_MISSING: &str = Reason::NotifierMissing.as_str();
    pub const BUILD_FAILED: &str = Reason::BuildFailed.as_str();
    pub const RENDER_FAILED: &str = Reason::RenderFailed.as_str();
    pub const CONTENT_INVALID: &str = Reason::ContentInvalid.as_str();
    pub const NO_ADAPTER: &str = Reason::NoAdapter.as_str();
    /// The one-click unsubscribe link of an email could not be made (a database error).
    pub const UNSUBSCRIBE_LINK: &str = Reason::UnsubscribeLink.as_str();
    pub const SEND_PERMANENT: &str = Reason::SendPermanent.as_str();
    pub const SEND_TRANSIENT: &str = Reason::SendTransient.as_str();
    pub const SEND_RATE_LIMITED: &str = Reason::SendRateLimited.as_str();
    pub const ADAPTER_FAILED: &str = Reason::AdapterFailed.as_str();
    pub const RETRIES_EXHAUSTED: &str = Reason::RetriesExhausted.as_str();
    pub const CANCELLED: &str = Reason::Cancelled.as_str();
    pub const SCHEDULED: &str = Reason::Scheduled.as_str();
    /// belfry itself failed on the job (see [`Reason::InternalError`]).
    pub const INTERNAL_ERROR: &str = Reason::InternalError.as_str();
}

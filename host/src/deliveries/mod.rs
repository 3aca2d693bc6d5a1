//! Deliveries: one recipient's notification on one channel, from planned to its final status.
//!
//! This module owns the `deliveries` table: the statuses and reasons stored in it, the one
//! insert that trigger, digests and workflows use, the updates and the reads.

mod transitions;

/// Stable status reasons (stored; do not rename).
pub mod reason {
    pub const NOTIFIER_MISSING: &str = "notifier_missing";
    pub const BUILD_FAILED: &str = "build_failed";
    pub const RENDER_FAILED: &str = "render_failed";
    pub const CONTENT_INVALID: &str = "content_invalid";
    pub const NO_ADAPTER: &str = "no_adapter";
    /// The one-click unsubscribe link of an email could not be made (a database error).
    pub const UNSUBSCRIBE_LINK: &str = "unsubscribe_link_failed";
    pub const SEND_PERMANENT: &str = "send_permanent";
    pub const SEND_TRANSIENT: &str = "send_transient";
    pub const SEND_RATE_LIMITED: &str = "send_rate_limited";
    pub const ADAPTER_FAILED: &str = "adapter_failed";
    pub const RETRIES_EXHAUSTED: &str = "retries_exhausted";
    pub const CANCELLED: &str = "cancelled_by_request";
    pub const SCHEDULED: &str = "scheduled";
    /// belfry itself failed on the job: a panic, or an error reading or writing its rows,
    /// while preparing, running or committing it. The detail says where and why; the job is
    /// retried like a transient failure, and fails with this reason when no attempt is left.
    pub const INTERNAL_ERROR: &str = "internal_error";
}

/// The idempotency key every send of a delivery carries: stable across attempts, so a
/// provider can drop a repeat after a crash between its send and our commit.
pub fn idempotency_key_for(delivery_id: &str) -> String {
    format!("belfry-{delivery_id}")
}

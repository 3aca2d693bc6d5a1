//! The stored vocabularies of a delivery: its status and the reasons belfry itself gives.
//! Each value is stored as the exact string below; renaming one would orphan stored rows.

pub use crate::vocabulary::UnknownValue;
use crate::vocabulary::stored_vocabulary;

stored_vocabulary! {
    /// Where a delivery stands. `pending` and `deferred` wait for a job; `held` waits in a
    /// digest bucket; the rest are final.
    Status ("delivery status") {
        Pending => "pending",
        /// Waits until a later time (quiet hours, a cooldown, a fallback's wait, a schedule).
        Deferred => "deferred",
        /// Held in a digest bucket until its window closes.
        Held => "held",
        /// Sent as part of a digest delivery (final).
        Digested => "digested",
        Suppressed => "suppressed",
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
    }
}

/// A new delivery starts pending unless its plan says otherwise.
impl Default for Status {
    fn default() -> Self {
        Status::Pending
    }
}

impl Status {
    /// Still waiting for its job: a cancel or a defer may move it.
    pub fn is_waiting(self) -> bool {
        matches!(self, Status::Pending | Status::Deferred)
    }
}

stored_vocabulary! {
    /// Why dispatch gave a delivery its status. Policy, digests and workflows store their own
    /// reasons in the same column (`policy::reason`, `digests::buckets::reason`,
    /// `workflows::runs::reason`).
    Reason ("delivery reason") {
        NotifierMissing => "notifier_missing",
        BuildFailed => "build_failed",
        RenderFailed => "render_failed",
        ContentInvalid => "content_invalid",
        NoAdapter => "no_adapter",
        /// The one-click unsubscribe link of an email could not be made (a database error).
        UnsubscribeLink => "unsubscribe_link_failed",
        SendPermanent => "send_permanent",
        SendTransient => "send_transient",
        SendRateLimited => "send_rate_limited",
        AdapterFailed => "adapter_failed",
        RetriesExhausted => "retries_exhausted",
        Cancelled => "cancelled_by_request",
        Scheduled => "scheduled",
        /// belfry itself failed on the job: a panic, or an error reading or writing its rows,
        /// while preparing, running or committing it. The detail says where and why; the job is
        /// retried like a transient failure, and fails with this reason when no attempt is left.
        InternalError => "internal_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips_through_its_stored_string() {
        crate::vocabulary::check_round_trips(Status::ALL);
        crate::vocabulary::check_round_trips(Reason::ALL);
        assert!(Status::parse("sent").is_err());
        assert_eq!(Reason::Cancelled.as_str(), "cancelled_by_request");
    }
}

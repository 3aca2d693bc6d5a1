//! The words a run stores: its transition kinds, statuses and reasons (do not rename).

/// Transition kinds (stored; do not rename).
pub mod transition {
    pub const STARTED: &str = "started";
    pub const STEP_ACTIVATED: &str = "step_activated";
    pub const PROGRESSED: &str = "progressed";
    pub const WAITING: &str = "waiting";
    pub const REACTIVATED: &str = "reactivated";
    pub const SIGNAL_RECEIVED: &str = "signal_received";
    pub const COMPLETED: &str = "completed";
    pub const STOPPED: &str = "stopped";
}

/// Run status reasons and the reasons of what runs write elsewhere (stored; do not rename).
pub mod reason {
    /// The last step's delivery reached its outcome and no branch stopped the run.
    pub const LAST_STEP_DONE: &str = "last_step_done";
    /// A branch of the step said `stop`.
    pub const STOPPED_BY_BRANCH: &str = "stopped_by_branch";
    /// A cancel signal ended a wait: the run completed without the waiting step.
    pub const CANCELLED_BY_SIGNAL: &str = "cancelled_by_signal";
    /// The step's delivery was cancelled by request: the run ends with it.
    pub const STEP_CANCELLED: &str = "step_cancelled";
    /// A step's channel was not among those the notifier planned for the recipient.
    pub const CHANNEL_NOT_PLANNED: &str = "channel_not_planned";
    /// A delivery planned by a run reaching its step.
    pub const WORKFLOW_STEP: &str = "workflow_step";
    /// A `workflow_wake` job's deferral reason.
    pub const WORKFLOW_WAIT: &str = "workflow_wait";
}

/// Run statuses (stored; do not rename).
pub mod status {
    /// A step's delivery is under way (or its channel was skipped and the run moves on).
    pub const RUNNING: &str = "running";
    pub const WAITING: &str = "waiting";
    pub const COMPLETED: &str = "completed";
    pub const STOPPED: &str = "stopped";
}

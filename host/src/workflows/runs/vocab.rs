//! The words a run stores: its statuses, transition kinds and reasons. Each value is stored as
//! the exact string its `as_str` gives; renaming one would orphan stored rows.

use crate::vocabulary::stored_vocabulary;

stored_vocabulary! {
    /// Where a run stands (column `workflow_runs.status`).
    RunStatus ("workflow run status") {
        /// A step's delivery is under way (or its channel was skipped and the run moves on).
        Running => "running",
        Waiting => "waiting",
        Completed => "completed",
        Stopped => "stopped",
    }
}

stored_vocabulary! {
    /// What a run's move was (column `workflow_transitions.kind`).
    TransitionKind ("workflow transition kind") {
        Started => "started",
        StepActivated => "step_activated",
        Progressed => "progressed",
        Waiting => "waiting",
        Reactivated => "reactivated",
        SignalReceived => "signal_received",
        Completed => "completed",
        Stopped => "stopped",
    }
}

stored_vocabulary! {
    /// Why a run ended, and the reasons of what runs write elsewhere (a delivery's reason, a
    /// `workflow_wake` job's deferral). A transition's reason may also be a step outcome,
    /// which is not one of these.
    Reason ("workflow run reason") {
        /// The last step's delivery reached its outcome and no branch stopped the run.
        LastStepDone => "last_step_done",
        /// A branch of the step said `stop`.
        StoppedByBranch => "stopped_by_branch",
        /// A cancel signal ended a wait: the run completed without the waiting step.
        CancelledBySignal => "cancelled_by_signal",
        /// The step's delivery was cancelled by request: the run ends with it.
        StepCancelled => "step_cancelled",
        /// A step's channel was not among those the notifier planned for the recipient.
        ChannelNotPlanned => "channel_not_planned",
        /// A delivery planned by a run reaching its step.
        WorkflowStep => "workflow_step",
        /// A `workflow_wake` job's deferral reason.
        WorkflowWait => "workflow_wait",
    }
}

/// Transition kinds as text: the strings of [`TransitionKind`], for code that compares or
/// binds them as text.
pub mod transition {
    use super::TransitionKind;

    pub const STARTED: &str = TransitionKind::Started.as_str();
    pub const STEP_ACTIVATED: &str = TransitionKind::StepActivated.as_str();
    pub const PROGRESSED: &str = TransitionKind::Progressed.as_str();
    pub const WAITING: &str = TransitionKind::Waiting.as_str();
    pub const REACTIVATED: &str = TransitionKind::Reactivated.as_str();
    pub const SIGNAL_RECEIVED: &str = TransitionKind::SignalReceived.as_str();
    pub const COMPLETED: &str = TransitionKind::Completed.as_str();
    pub const STOPPED: &str = TransitionKind::Stopped.as_str();
}

/// Run reasons as text: the strings of [`Reason`](super::Reason).
pub mod reason {
    use super::Reason;

    pub const LAST_STEP_DONE: &str = Reason::LastStepDone.as_str();
    pub const STOPPED_BY_BRANCH: &str = Reason::StoppedByBranch.as_str();
    pub const CANCELLED_BY_SIGNAL: &str = Reason::CancelledBySignal.as_str();
    pub const STEP_CANCELLED: &str = Reason::StepCancelled.as_str();
    pub const CHANNEL_NOT_PLANNED: &str = Reason::ChannelNotPlanned.as_str();
    pub const WORKFLOW_STEP: &str = Reason::WorkflowStep.as_str();
    pub const WORKFLOW_WAIT: &str = Reason::WorkflowWait.as_str();
}

/// Run statuses as text: the strings of [`RunStatus`].
pub mod status {
    use super::RunStatus;

    pub const RUNNING: &str = RunStatus::Running.as_str();
    pub const WAITING: &str = RunStatus::Waiting.as_str();
    pub const COMPLETED: &str = RunStatus::Completed.as_str();
    pub const STOPPED: &str = RunStatus::Stopped.as_str();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips_through_its_distinct_stored_string() {
        crate::vocabulary::check_round_trips(RunStatus::ALL);
        crate::vocabulary::check_round_trips(TransitionKind::ALL);
        crate::vocabulary::check_round_trips(Reason::ALL);
        assert!(RunStatus::parse("ended").is_err());
        assert_eq!(status::RUNNING, "running");
        assert_eq!(transition::SIGNAL_RECEIVED, "signal_received");
        assert_eq!(reason::WORKFLOW_WAIT, "workflow_wait");
    }
}

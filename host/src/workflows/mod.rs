//! Workflows: multi-step journeys a notifier declares (WIT 0.4.0), run once per notification.
//!
//! - [`definition`]: the declaration and its load-time checks.
//! - [`runs`]: a run's life in the database: started in the trigger transaction, advanced
//!   after each step delivery's final outcome, waiting on `workflow_wake` jobs, ended by
//!   signals; every transition appended to `workflow_transitions`.
//! - [`signals`]: `signal(tenant, actor, name, payload)`.

pub mod definition;
pub mod runs;
pub mod signals;
pub mod wake;

pub use definition::{Branch, Step, StepOutcome, Target, Wait, Workflow};
pub use runs::{Effect, RunRecord, TransitionRecord};
pub use signals::{SignalEffect, SignalError, SignalOutcome};

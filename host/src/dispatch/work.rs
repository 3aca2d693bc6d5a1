//! What one job run did and decided ([`Work`]), handed from the pipeline to the completer,
//! and how a retry or a fault is settled before it is written.

use super::retry::RetryPolicy;
use crate::content::Content;
use crate::deliveries::reason;
use crate::deliveries::transitions::{Attempt, ToSend};
use crate::digests::buckets::DigestItems;
use crate::jobs::{Leased, Ran, Registered, job_kind};
use crate::plugins::pins::Pins;
use crate::policy::{Decision, Severity};
use crate::store::{self, StoreError};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// The delivery a job is about, as loaded when its job ran, with its stored severity and pins
/// parsed.
pub(super) struct Loaded {
    row: ToSend,
    pub severity: Severity,
    /// The builds its workflow run or digest bucket began with (none for other deliveries).
    pub pins: Pins,
}

impl Loaded {
    pub(super) fn parse(row: ToSend) -> Result<Loaded, StoreError> {
        let severity = row
            .severity
            .parse()
            .map_err(|e: crate::policy::UnknownSeverity| StoreError::Corrupt(e.to_string()))?;
        let pins = Pins::from_json(row.pins.as_deref())
            .map_err(|e| StoreError::Corrupt(format!("pins of {}: {e}", row.id)))?;
        Ok(Loaded {
            row,
            severity,
            pins,
        })
    }
}

impl std::ops::Deref for Loaded {
    type Target = ToSend;
    fn deref(&self) -> &ToSend {
        &self.row
    }
}

/// A step worth telling in `explain`, kept until the commit.
pub(super) struct Step {
    pub at: DateTime<Utc>,
    pub kind: &'static str,
    pub detail: String,
    pub plugin: Option<String>,
}

pub(super) enum Verdict {
    Succeeded,
    Failed {
        reason: &'static str,
        detail: String,
        plugin: Option<String>,
    },
    /// A failure worth another try, no earlier than `retry_after` if the provider gave one.
    Retry {
        reason: &'static str,
        detail: String,
        plugin: Option<String>,
        retry_after: Option<Duration>,
    },
    /// The delivery is no longer waiting (cancelled, finished, gone): drop the job.
    Skip(String),
    /// The send-time policy said no: no attempt, the adapter is not called.
    Suppressed {
        reason: &'static str,
        detail: String,
    },
    /// The send-time policy said not yet (quiet hours): the job waits until `until`, and this
    /// lease does not count as an attempt.
    Deferred {
        reason: &'static str,
        until: DateTime<Utc>,
    },
    /// A job of a kind with its own [`crate::jobs::Handler`] (digest emit, workflow wake, endpoint
    /// post): what it ran, written by its handler's commit.
    Handled {
        handler: Arc<dyn Registered>,
        ran: Ran,
    },
    /// belfry failed on the job (see [`reason::INTERNAL_ERROR`]): retried, or failed when no
    /// attempt is left; written from the job alone, since what failed may be the reading of
    /// its delivery.
    Fault {
        detail: String,
    },
}

/// What one job run did and decided; written by [`super::Executor::commit`].
pub struct Work {
    pub(super) job: Leased,
    pub(super) delivery: Option<Loaded>,
    pub(super) steps: Vec<Step>,
    pub(super) content: Option<(Content, String)>,
    pub(super) attempt: Option<Attempt>,
    pub(super) sent_by: Option<String>,
    /// Policy checkpoint 2, taken before any plugin ran, and when (its trace is dated then,
    /// not at the commit, so `explain` shows it before the build it preceded).
    pub(super) policy: Option<(Decision, DateTime<Utc>)>,
    pub(super) verdict: Verdict,
    /// When a retry or a deferral puts the job back in the queue; set by [`settle`].
    pub(super) retry_at: Option<DateTime<Utc>>,
}

/// What [`super::Executor::prepare`] read for one job.
pub struct Prepared(pub(super) Preloaded);

pub(super) enum Preloaded {
    /// Not a delivery job: it reads what it needs itself.
    NotDelivery,
    /// The delivery is no longer waiting to be sent.
    Gone,
    /// The delivery, its send-time policy decision, and a digest's items.
    Ready(Box<(Loaded, Decision, Option<DigestItems>, DateTime<Utc>)>),
    /// Its rows could not be read, or its policy not decided: the job is a
    /// [`Verdict::Fault`], retried with the error as its reason.
    Failed(StoreError),
    /// Preparing it failed or panicked when tried alone: the job is a [`Verdict::Fault`].
    Fault(String),
}

impl Work {
    /// A job run that has decided nothing yet.
    pub(super) fn new(job: Leased, verdict: Verdict) -> Work {
        Work {
            job,
            delivery: None,
            steps: Vec::new(),
            content: None,
            attempt: None,
            sent_by: None,
            policy: None,
            verdict,
            retry_at: None,
        }
    }

    /// A job belfry failed on, with why (see [`reason::INTERNAL_ERROR`]).
    pub(crate) fn fault(job: Leased, detail: String) -> Work {
        Work::new(job, Verdict::Fault { detail })
    }

    /// Whether committing this job deletes it (rather than putting it back for later, or
    /// leaving it to its own commit).
    pub(super) fn finishes_job(&self) -> bool {
        match &self.verdict {
            Verdict::Handled { handler, .. } => handler.finished_by_batch(),
            Verdict::Retry { .. } | Verdict::Deferred { .. } | Verdict::Fault { .. } => {
                self.retry_at.is_none()
            }
            _ => true,
        }
    }
}

/// Turns a retry the policy has no more attempts for into the final failure, and fixes when
/// a retried or deferred job runs again.
pub(super) fn settle(policy: &RetryPolicy, work: &mut Work) {
    let attempt = work.job.attempt;
    match std::mem::replace(&mut work.verdict, Verdict::Succeeded) {
        Verdict::Retry {
            reason,
            detail,
            plugin,
            retry_after,
        } => match policy.next_delay(attempt as u32, retry_after) {
            Some(delay) => {
                // A provider's retry-after is not bounded; ten years is as late as it gets.
                let at = crate::time_bounds::later(store::now(), delay);
                work.retry_at = Some(at);
                work.verdict = Verdict::Retry {
                    reason,
                    detail,
                    plugin,
                    retry_after,
                };
            }
            None => {
                work.verdict = Verdict::Failed {
                    reason: reason::RETRIES_EXHAUSTED,
                    detail: format!("gave up after {attempt} attempts; last: {reason}: {detail}"),
                    plugin,
                }
            }
        },
        Verdict::Deferred { reason, until } => {
            work.retry_at = Some(until);
            work.verdict = Verdict::Deferred { reason, until };
        }
        Verdict::Fault { detail } => {
            // A delivery ends failed when no attempt is left. Other jobs are never dropped:
            // a digest bucket, a workflow run or an endpoint message would be stranded
            // without one, so they keep trying at the longest wait.
            let delay = policy
                .next_delay(attempt as u32, None)
                .or_else(|| (work.job.kind != job_kind::DELIVER).then_some(policy.max_delay));
            work.retry_at = delay.map(|delay| crate::time_bounds::later(store::now(), delay));
            work.verdict = Verdict::Fault { detail };
        }
        other => work.verdict = other,
    }
}

pub(super) fn failed(reason: &'static str, detail: String, plugin: Option<String>) -> Verdict {
    Verdict::Failed {
        reason,
        detail,
        plugin,
    }
}

pub(super) fn retry(
    reason: &'static str,
    detail: String,
    plugin: Option<String>,
    retry_after: Option<Duration>,
) -> Verdict {
    Verdict::Retry {
        reason,
        detail,
        plugin,
        retry_after,
    }
}

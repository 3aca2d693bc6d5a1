//! The completer: a batch of job outcomes written in one transaction, each only if its job's
//! lease still holds (else the outcome is kept as a fact but changes nothing).
//!
//! A batch costs a handful of statements, not a handful per job: the jobs it finishes are
//! deleted in one statement, and the attempts, delivery updates, traces and feedback
//! look-ups of plain outcomes wait in [`Pending`] and go in together. Anything that reads
//! what came before it (a workflow's next step, a digest emission, a lost lease) first
//! writes what is waiting, so each job still sees the batch as if written one by one.

use super::retry::RetryPolicy;
use super::work::{Loaded, Verdict, Work, settle};
use super::{Dispatched, Executor};
use crate::content::Channel;
use crate::deliveries::transitions::{self, Attempt, Update};
use crate::deliveries::{Status, reason};
use crate::feedback;
use crate::inbox;
use crate::jobs::{self, Leased, job_kind, job_state};
use crate::store::{self, Conn, StoreError};
use crate::traces::{NewTrace, kind};
use crate::workflows;
use std::collections::HashSet;

impl Executor {
    /// One transaction for `works` (see [`Executor::commit`]). Safe to call again with the
    /// same outcomes after it failed: settling them again changes nothing that matters, and
    /// nothing of them is consumed.
    pub(super) async fn commit_batch(
        &self,
        works: &mut [Work],
    ) -> Result<Vec<Dispatched>, StoreError> {
        let _turn = self.gate.enter(&self.db).await;
        let mut tx = self.db.begin().await?;
        for work in works.iter_mut() {
            settle(&self.retry, work);
        }
        let works: &[Work] = works;
        let finishing: Vec<&Leased> = works
            .iter()
            .filter(|w| w.finishes_job())
            .map(|w| &w.job)
            .collect();
        let held = jobs::finish_all(&mut tx, &finishing).await?;
        let mut out = Vec::with_capacity(works.len());
        let mut rescheduled = false;
        let mut pending = Pending::default();
        for work in works {
            let again = match &work.verdict {
                Verdict::Handled { handler, ran } => {
                    pending.flush(&mut tx).await?;
                    let held = held.contains(&work.job.id);
                    handler.commit(&mut tx, &work.job, ran, held).await?
                }
                Verdict::Fault { .. } => {
                    pending.flush(&mut tx).await?;
                    let (dispatched, again) =
                        commit_fault(&mut tx, &self.retry, work, &held).await?;
                    out.extend(dispatched);
                    again
                }
                _ => {
                    self.faults.check_committing(&work.job.tenant);
                    let (dispatched, again) =
                        commit_one(&mut tx, &mut pending, &self.retry, work, &held).await?;
                    out.extend(dispatched);
                    again
                }
            };
            rescheduled |= again;
        }
        pending.flush(&mut tx).await?;
        if rescheduled {
            jobs::announce(&mut tx, store::backend(&self.db)).await?;
        }
        tx.commit().await?;
        Ok(out)
    }
}

/// A delivery's final standing, as written and traced.
struct Final {
    status: Status,
    reason: Option<&'static str>,
    detail: Option<String>,
    kind: &'static str,
    plugin: Option<String>,
}

/// One delivery job's outcome inside the batch transaction. Returns the delivery's new
/// standing (none when the job was only dropped) and whether something was put in the queue.
async fn commit_one<'a>(
    tx: &mut Conn,
    pending: &mut Pending<'a>,
    policy: &RetryPolicy,
    work: &'a Work,
    finished: &HashSet<String>,
) -> Result<(Option<Dispatched>, bool), StoreError> {
    let job = &work.job;
    // First the lease: everything else is written only if this worker still holds the job.
    let held = hold(tx, work, finished).await?;
    let Some(d) = &work.delivery else {
        if let Verdict::Skip(why) = &work.verdict {
            tracing::info!(job = %job.id, %why, "job dropped");
        }
        return Ok((None, false));
    };
    if !held {
        lost_lease(pending, work, d);
        return Ok((None, false));
    }
    let mut story = story_so_far(work, d);
    let content = content_and_inbox(tx, pending, work, d, &mut story).await?;
    if let Some(a) = &work.attempt {
        pending.attempts.push((&d.id, job.attempt, a));
        story.push(attempt_trace(d, job.attempt, a));
    }
    let Some(f) = final_of(policy, work) else {
        return Ok((None, false));
    };
    // In-app deliveries are "sent" when their inbox item is written: caps count them too.
    let (content, rendered_by) = content.unzip();
    pending.updates.push(Update {
        id: &d.id,
        status: f.status,
        reason: f.reason,
        detail: f.detail.clone(),
        sent_by: work.sent_by.as_deref(),
        provider_message_id: work
            .attempt
            .as_ref()
            .and_then(|a| a.provider_message_id.as_deref()),
        attempted: work.attempt.is_some() as i64,
        content,
        rendered_by,
        sent: f.status == Status::Succeeded,
    });
    story.push(NewTrace {
        plugin: f.plugin,
        attempt: Some(job.attempt),
        ..trace(d, f.kind, f.reason, f.detail)
    });
    pending.traces.extend(story);
    if let Some(a) = &work.attempt {
        pending.claims.push((d, a));
    }
    tracing::info!(delivery = %d.id, status = f.status.as_str(), reason = ?f.reason, "delivery outcome");
    // A workflow step that reached its final outcome moves its run on, in this transaction,
    // after its own outcome is written.
    let mut moved = false;
    if let Some((run_id, step)) = &d.workflow
        && let Some(outcome) = workflows::runs::outcome_of(f.status.as_str(), f.reason)
    {
        pending.flush(tx).await?;
        let evidence = evidence(&d.id, f.status, f.reason);
        moved = advance_workflow(tx, run_id, step, &d.id, outcome, evidence).await?;
    }
    Ok((
        Some(Dispatched {
            delivery_id: d.id.clone(),
            status: f.status.as_str().into(),
            reason: f.reason.map(str::to_string),
            retry_at: work.retry_at.map(store::time_text),
        }),
        work.retry_at.is_some() || moved,
    ))
}

/// Whether this worker still holds the job: a retry or a deferral puts it back (if held), any
/// other outcome was finished with the batch.
async fn hold(tx: &mut Conn, work: &Work, finished: &HashSet<String>) -> Result<bool, StoreError> {
    let job = &work.job;
    match (&work.verdict, work.retry_at) {
        (Verdict::Retry { detail, .. }, Some(at)) => {
            jobs::reschedule(tx, job, at, job_state::RETRYING, None, Some(detail), false).await
        }
        (Verdict::Deferred { reason, until }, _) => {
            jobs::reschedule(
                tx,
                job,
                *until,
                job_state::DEFERRED,
                Some(reason),
                None,
                true,
            )
            .await
        }
        _ => Ok(finished.contains(&job.id)),
    }
}

/// The lease expired and another worker took the job (or it was cancelled). What this worker
/// did is still a fact worth keeping; its verdict is not.
fn lost_lease<'a>(pending: &mut Pending<'a>, work: &'a Work, d: &'a Loaded) {
    let job = &work.job;
    if let Some(a) = &work.attempt {
        pending.attempts.push((&d.id, job.attempt, a));
    }
    pending.traces.push(NewTrace {
        attempt: Some(job.attempt),
        ..trace(
            d,
            kind::LEASE_LOST,
            Some("lease_lost"),
            Some(format!(
                "worker {} lost its lease before committing; its outcome was not applied",
                job.owner
            )),
        )
    });
    if let Some(a) = &work.attempt {
        pending.claims.push((d, a));
    }
    tracing::warn!(job = %job.id, delivery = %d.id, "lease lost before commit");
}

/// The story of this run up to its plugin calls: the lease, the policy check and each step.
fn story_so_far<'a>(work: &'a Work, d: &'a Loaded) -> Vec<NewTrace<'a>> {
    let job = &work.job;
    let attempt_no = job.attempt;
    let mut leased = format!("attempt {attempt_no} leased by {}", job.owner);
    if let Some(previous) = &job.rescued_from {
        leased.push_str(&format!(", taken over from {previous} whose lease expired"));
    }
    if job.from_state == job_state::DEFERRED {
        leased.push_str(&format!(
            ", due after deferral ({})",
            job.reason.as_deref().unwrap_or("no reason")
        ));
    }
    let mut story = vec![NewTrace {
        at: Some(job.leased_at),
        attempt: Some(attempt_no),
        ..trace(d, kind::DELIVERY_DISPATCHED, None, Some(leased))
    }];
    if let Some((decision, decided_at)) = &work.policy {
        story.push(NewTrace {
            at: Some(*decided_at),
            attempt: Some(attempt_no),
            ..trace(
                d,
                kind::POLICY_CHECKED,
                Some(decision.code()),
                Some(decision.to_string()),
            )
        });
    }
    for step in &work.steps {
        story.push(NewTrace {
            at: Some(step.at),
            plugin: step.plugin.clone(),
            attempt: Some(attempt_no),
            ..trace(d, step.kind, None, Some(step.detail.clone()))
        });
    }
    story
}

/// The rendered content as stored (JSON) and its renderer; for an in-app delivery that
/// succeeded, its inbox item is written now, after everything the batch holds so far.
async fn content_and_inbox<'a>(
    tx: &mut Conn,
    pending: &mut Pending<'a>,
    work: &'a Work,
    d: &'a Loaded,
    story: &mut Vec<NewTrace<'a>>,
) -> Result<Option<(String, &'a str)>, StoreError> {
    let Some((content, rendered_by)) = &work.content else {
        return Ok(None);
    };
    let json = serde_json::to_string(content).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    if d.channel == Channel::InApp && matches!(work.verdict, Verdict::Succeeded) {
        pending.flush(tx).await?;
        let item = inbox::write(
            tx,
            &d.tenant,
            &d.recipient.id,
            &d.notification_id,
            &d.id,
            content,
        )
        .await?;
        story.push(trace(
            d,
            kind::INBOX_WRITTEN,
            None,
            Some(format!("inbox item {item}")),
        ));
    }
    Ok(Some((json, rendered_by.as_str())))
}

fn attempt_trace<'a>(d: &'a Loaded, attempt_no: i64, a: &Attempt) -> NewTrace<'a> {
    let summary = match (&a.provider_message_id, &a.error) {
        (Some(id), _) => format!(
            "{} in {} ms, provider message {id}",
            a.outcome, a.duration_ms
        ),
        (None, Some(e)) => format!("{} in {} ms: {e}", a.outcome, a.duration_ms),
        (None, None) => format!("{} in {} ms", a.outcome, a.duration_ms),
    };
    NewTrace {
        at: Some(a.started_at),
        attempt: Some(attempt_no),
        plugin: Some(a.adapter.clone()),
        ..trace(d, kind::ATTEMPT, Some(a.reason()), Some(summary))
    }
}

/// Where the verdict leaves the delivery; `None` for a job that is only dropped, or one
/// written elsewhere.
fn final_of(policy: &RetryPolicy, work: &Work) -> Option<Final> {
    let f = |status, reason: &'static str, detail: String, kind, plugin: &Option<String>| Final {
        status,
        reason: Some(reason),
        detail: Some(detail),
        kind,
        plugin: plugin.clone(),
    };
    Some(match &work.verdict {
        Verdict::Succeeded => Final {
            status: Status::Succeeded,
            reason: None,
            detail: None,
            kind: kind::DELIVERY_SUCCEEDED,
            plugin: None,
        },
        Verdict::Failed {
            reason,
            detail,
            plugin,
        } if *reason == reason::RETRIES_EXHAUSTED => f(
            Status::Cancelled,
            reason,
            detail.clone(),
            kind::DELIVERY_CANCELLED,
            plugin,
        ),
        Verdict::Failed {
            reason,
            detail,
            plugin,
        } => f(
            Status::Failed,
            reason,
            detail.clone(),
            kind::DELIVERY_FAILED,
            plugin,
        ),
        Verdict::Retry {
            reason,
            detail,
            plugin,
            ..
        } => {
            let at = work.retry_at.expect("a retry has a time");
            let detail = format!(
                "{detail}; attempt {} of {} at {}",
                work.job.attempt + 1,
                policy.max_attempts,
                store::time_text(at)
            );
            f(
                Status::Pending,
                reason,
                detail,
                kind::RETRY_SCHEDULED,
                plugin,
            )
        }
        Verdict::Suppressed { reason, detail } => f(
            Status::Suppressed,
            reason,
            detail.clone(),
            kind::DELIVERY_SUPPRESSED,
            &None,
        ),
        Verdict::Deferred { reason, until } => f(
            Status::Deferred,
            reason,
            format!("until {}", store::time_text(*until)),
            kind::DELIVERY_DEFERRED,
            &None,
        ),
        Verdict::Skip(why) => {
            tracing::info!(job = %work.job.id, %why, "job dropped");
            return None;
        }
        // Written by their handlers and by `commit_fault`.
        Verdict::Handled { .. } | Verdict::Fault { .. } => return None,
    })
}

/// Why a workflow step moved on: its delivery's final standing.
fn evidence(delivery_id: &str, status: Status, reason: Option<&str>) -> String {
    format!(
        "delivery {delivery_id} {status}{}",
        reason.map(|r| format!(" ({r})")).unwrap_or_default()
    )
}

/// Moves a workflow run on from the step whose delivery reached `outcome`; returns whether
/// that put a job in the queue.
async fn advance_workflow(
    tx: &mut Conn,
    run_id: &str,
    step: &str,
    delivery_id: &str,
    outcome: workflows::StepOutcome,
    evidence: String,
) -> Result<bool, StoreError> {
    Ok(
        workflows::runs::advance(tx, run_id, step, Some(delivery_id), outcome, evidence)
            .await?
            .is_some_and(|m| m.enqueued),
    )
}

/// A job belfry failed on ([`Verdict::Fault`]): retried with the reason, or, for a delivery
/// with no attempt left, failed with it. The delivery's identity is read here, not taken from
/// the job's preparation: that may be what failed.
async fn commit_fault(
    tx: &mut Conn,
    policy: &RetryPolicy,
    work: &Work,
    finished: &HashSet<String>,
) -> Result<(Option<Dispatched>, bool), StoreError> {
    let (job, retry_at) = (&work.job, work.retry_at);
    let Verdict::Fault { detail } = &work.verdict else {
        return Ok((None, false));
    };
    let held = match retry_at {
        Some(at) => {
            jobs::reschedule(tx, job, at, job_state::RETRYING, None, Some(detail), false).await?
        }
        None => finished.contains(&job.id),
    };
    tracing::error!(job = %job.id, kind = %job.kind, tenant = %job.tenant, %detail, held, "job failed inside belfry");
    if !held || job.kind != job_kind::DELIVER {
        return Ok((None, held && retry_at.is_some()));
    }
    let Some(d) = transitions::standing(tx, &job.subject_id).await? else {
        return Ok((None, retry_at.is_some()));
    };
    if !transitions::is_waiting(&d.status) {
        return Ok((None, retry_at.is_some()));
    }
    let (status, final_kind, detail) = match retry_at {
        Some(at) => (
            Status::Pending,
            kind::RETRY_SCHEDULED,
            format!(
                "{detail}; attempt {} of {} at {}",
                job.attempt + 1,
                policy.max_attempts,
                store::time_text(at)
            ),
        ),
        None => (
            Status::Failed,
            kind::DELIVERY_FAILED,
            format!("gave up after {} attempts; last: {detail}", job.attempt),
        ),
    };
    transitions::set_status(tx, &d.id, status, reason::INTERNAL_ERROR, &detail).await?;
    let trace = |kind, reason: Option<&'static str>, detail: String| NewTrace {
        tenant: &d.tenant,
        event_id: &d.event_id,
        notification_id: Some(&d.notification_id),
        delivery_id: Some(&job.subject_id),
        kind,
        reason,
        detail: Some(detail),
        attempt: Some(job.attempt),
        ..Default::default()
    };
    crate::endpoints::events::append_all(
        tx,
        vec![
            NewTrace {
                at: Some(job.leased_at),
                ..trace(
                    kind::DELIVERY_DISPATCHED,
                    None,
                    format!("attempt {} leased by {}", job.attempt, job.owner),
                )
            },
            trace(final_kind, Some(reason::INTERNAL_ERROR), detail.clone()),
        ],
    )
    .await?;
    // A workflow step that failed for good moves its run on, as any final outcome does.
    let mut moved = false;
    if let (Some(run_id), Some(step)) = (&d.workflow_run_id, &d.workflow_step)
        && let Some(outcome) =
            workflows::runs::outcome_of(status.as_str(), Some(reason::INTERNAL_ERROR))
    {
        let evidence = evidence(&job.subject_id, status, Some(reason::INTERNAL_ERROR));
        moved = advance_workflow(tx, run_id, step, &job.subject_id, outcome, evidence).await?;
    }
    Ok((
        Some(Dispatched {
            delivery_id: job.subject_id.clone(),
            status: status.as_str().into(),
            reason: Some(reason::INTERNAL_ERROR.into()),
            retry_at: retry_at.map(store::time_text),
        }),
        retry_at.is_some() || moved,
    ))
}

/// A trace of the delivery `d`.
fn trace<'a>(
    d: &'a Loaded,
    kind: &'static str,
    reason: Option<&'static str>,
    detail: Option<String>,
) -> NewTrace<'a> {
    NewTrace {
        tenant: &d.tenant,
        event_id: &d.event_id,
        notification_id: Some(&d.notification_id),
        delivery_id: Some(&d.id),
        kind,
        reason,
        detail,
        ..Default::default()
    }
}

/// Rows of a batch's outcomes not yet written: attempts, delivery updates, traces, and the
/// sends whose orphan feedback must be claimed. [`Pending::flush`] writes them in a few
/// statements, in that order, which is the order one job's rows were always written in.
#[derive(Default)]
struct Pending<'a> {
    attempts: Vec<(&'a str, i64, &'a Attempt)>,
    updates: Vec<Update<'a>>,
    traces: Vec<NewTrace<'a>>,
    claims: Vec<(&'a Loaded, &'a Attempt)>,
}

impl Pending<'_> {
    /// Writes everything waiting.
    async fn flush(&mut self, tx: &mut Conn) -> Result<(), StoreError> {
        transitions::insert_attempts(tx, &std::mem::take(&mut self.attempts)).await?;
        transitions::update_all(tx, &std::mem::take(&mut self.updates)).await?;
        crate::endpoints::events::append_all(tx, std::mem::take(&mut self.traces)).await?;
        let claims: Vec<(feedback::DeliveryRef, &str, &str)> = std::mem::take(&mut self.claims)
            .into_iter()
            .filter_map(|(d, a)| {
                a.provider_message_id
                    .as_deref()
                    .map(|m| (delivery_ref(d), a.adapter.as_str(), m))
            })
            .collect();
        feedback::claim_orphans_all(tx, &claims).await?;
        Ok(())
    }
}

fn delivery_ref(d: &Loaded) -> feedback::DeliveryRef {
    feedback::DeliveryRef {
        id: d.id.clone(),
        tenant: d.tenant.clone(),
        event_id: d.event_id.clone(),
        notification_id: d.notification_id.clone(),
        channel: d.channel,
        recipient: d.recipient.clone(),
    }
}

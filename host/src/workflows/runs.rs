//! A workflow run's life in the database.
//!
//! - [`start`] writes the run in the trigger's transaction, at its first step (whose delivery
//!   the trigger plans like any other).
//! - [`advance`] runs after a step's delivery reached a final outcome, inside the transaction
//!   that recorded it: the step's branches (or the order of steps) say what follows, and the
//!   run moves there — a next delivery planned at once, a wait (a `workflow_wake` job), or
//!   the end.
//! - [`wake`] runs the `workflow_wake` job; [`resume`] and [`cancel`] are what signals do.
//! - [`on_feedback`]: a hard bounce or complaint reported after a step was delivered takes
//!   the step's `bounced` branch while the run waits right after it.
//!
//! Every move first *claims* the run: an update guarded by the run's `version`, so that of
//! any number of repeated or concurrent moves from the same state exactly one writes; the
//! others see the run already moved and change nothing. Every move is appended to
//! `workflow_transitions` with its evidence.

mod record;
mod state;
mod steps;
mod vocab;

pub(crate) use record::outcome_of;
pub use record::{RunRecord, TransitionRecord, record};
pub(crate) use state::{Moved, Run, load, waiting_for};
pub use steps::humanize_ms;
pub(crate) use steps::reaches;
pub use vocab::{Reason, RunStatus, TransitionKind, reason, status, transition};

use super::definition::{Step, StepOutcome, Target, Workflow};
use crate::content::Channel;
use crate::jobs as queue;
use crate::store::{self, Conn, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use state::{NewTransition, append, claim, corrupt};
use steps::{cancelled_already, describe_step, end, enter, not_planned, wait};

/// A run to start in the trigger's transaction.
pub(crate) struct Start<'a> {
    pub id: &'a str,
    pub tenant: &'a str,
    pub event_id: &'a str,
    pub notification_id: &'a str,
    pub recipient_id: &'a str,
    pub workflow: &'a Workflow,
    pub notifier_plugin: &'a str,
    /// The builds every step delivery uses (JSON of [`crate::plugins::pins::Pins`]).
    pub pins: Option<&'a str>,
    /// The channels the notifier planned for the recipient.
    pub channels: &'a [Channel],
    /// The first step's delivery, when its channel was planned.
    pub first_delivery: Option<&'a str>,
}

/// Writes a run at its first step. A first step with no delivery (its channel not planned)
/// moves on at once, as if suppressed.
pub(crate) async fn start(conn: &mut Conn, s: &Start<'_>) -> Result<(String, Moved), StoreError> {
    let id = s.id.to_string();
    let now = store::time_text(store::now());
    let first = &s.workflow.steps[0];
    sqlx::query(
        "INSERT INTO workflow_runs (id, tenant, event_id, notification_id, recipient_id, workflow_key,
                                    workflow_version, definition, notifier_plugin, channels, status,
                                    step_key, step_delivery_id, created_at, updated_at, pins)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15)",
    )
    .bind(&id)
    .bind(s.tenant)
    .bind(s.event_id)
    .bind(s.notification_id)
    .bind(s.recipient_id)
    .bind(&s.workflow.key)
    .bind(&s.workflow.version)
    .bind(serde_json::to_string(s.workflow).map_err(|e| corrupt("definition", e))?)
    .bind(s.notifier_plugin)
    .bind(serde_json::to_string(s.channels).map_err(|e| corrupt("channels", e))?)
    .bind(status::RUNNING)
    .bind(&first.key)
    .bind(s.first_delivery)
    .bind(&now)
    .bind(s.pins)
    .execute(&mut *conn)
    .await?;
    append(
        conn,
        &id,
        NewTransition {
            kind: TransitionKind::Started,
            step: None,
            delivery_id: None,
            reason: None,
            evidence: format!(
                "workflow {} v{} of {} for recipient {}: {}",
                s.workflow.key,
                s.workflow.version,
                s.notifier_plugin,
                s.recipient_id,
                s.workflow
                    .steps
                    .iter()
                    .map(describe_step)
                    .collect::<Vec<_>>()
                    .join(" → ")
            ),
        },
    )
    .await?;
    let Some(delivery) = s.first_delivery else {
        let skipped = not_planned(first, s.recipient_id);
        append(
            conn,
            &id,
            NewTransition {
                kind: TransitionKind::StepActivated,
                step: Some(&first.key),
                delivery_id: None,
                reason: Some(reason::CHANNEL_NOT_PLANNED),
                evidence: skipped.clone(),
            },
        )
        .await?;
        // The run as just written; no need to read it back.
        let run = Run {
            id: id.clone(),
            tenant: s.tenant.to_string(),
            event_id: s.event_id.to_string(),
            notification_id: s.notification_id.to_string(),
            recipient_id: s.recipient_id.to_string(),
            definition: s.workflow.clone(),
            notifier_plugin: s.notifier_plugin.to_string(),
            channels: s.channels.to_vec(),
            status: status::RUNNING.to_string(),
            step_key: first.key.clone(),
            step_delivery_id: None,
            wait_until: None,
            cancel_on: Vec::new(),
            resume_on: Vec::new(),
            version: 0,
            created_at: now.clone(),
        };
        let moved = drive(
            conn,
            &run,
            &first.key,
            StepOutcome::Suppressed,
            None,
            skipped,
        )
        .await?;
        return Ok((id, moved));
    };
    append(
        conn,
        &id,
        NewTransition {
            kind: TransitionKind::StepActivated,
            step: Some(&first.key),
            delivery_id: Some(delivery),
            reason: None,
            evidence: format!(
                "{} delivery {delivery} planned with the trigger",
                first.channel
            ),
        },
    )
    .await?;
    Ok((id, Moved::default()))
}

/// After the step `step_key`'s delivery (or, with `None`, the step itself) reached `outcome`:
/// moves the run on. Returns `None` when the run had already moved past that step, which makes
/// any repeat of the same progression a no-op.
pub(crate) async fn advance(
    conn: &mut Conn,
    run_id: &str,
    step_key: &str,
    delivery_id: Option<&str>,
    outcome: StepOutcome,
    evidence: String,
) -> Result<Option<Moved>, StoreError> {
    let Some(run) = load(conn, run_id).await? else {
        return Ok(None);
    };
    if run.status != status::RUNNING
        || run.step_key != step_key
        || run.step_delivery_id.as_deref() != delivery_id
    {
        tracing::debug!(run = %run_id, step = step_key, "workflow already moved past this step");
        return Ok(None);
    }
    if !claim(conn, &run, &store::time_text(store::now())).await? {
        return Ok(None);
    }
    Ok(Some(
        drive(conn, &run, step_key, outcome, delivery_id, evidence).await?,
    ))
}

/// Where a run goes after a step.
enum Next<'w> {
    Stop(String),
    Complete,
    Step(&'w Step, String),
}

/// The state machine, from "step `from` ended with `outcome`" to the run's next resting
/// place. The caller has claimed the run. Steps whose channel is not planned are passed
/// through as suppressed; gotos only go forward, so this ends within one pass of the steps.
async fn drive(
    conn: &mut Conn,
    run: &Run,
    from: &str,
    outcome: StepOutcome,
    delivery_id: Option<&str>,
    evidence: String,
) -> Result<Moved, StoreError> {
    let wf = &run.definition;
    let mut from = from.to_string();
    let mut outcome = outcome;
    let mut delivery_id = delivery_id.map(str::to_string);
    let mut evidence = evidence;
    loop {
        let (i, step) = wf
            .step(&from)
            .ok_or_else(|| corrupt("step", format!("`{from}` is not in its definition")))?;
        let branch = step
            .on_outcome
            .iter()
            .enumerate()
            .find(|(_, b)| b.outcome.takes(outcome));
        let next = match branch {
            Some((b, br)) => match &br.then {
                Target::Stop => Next::Stop(format!("on-outcome[{b}]: {} → stop", br.outcome)),
                Target::Goto(t) => Next::Step(
                    wf.step(t)
                        .ok_or_else(|| corrupt("goto", format!("`{t}` is not a step")))?
                        .1,
                    format!("on-outcome[{b}]: {} → goto {t}", br.outcome),
                ),
            },
            None => match wf.steps.get(i + 1) {
                Some(s) => Next::Step(s, format!("no branch for {outcome}: the next step")),
                None => Next::Complete,
            },
        };
        let via = match &next {
            Next::Stop(why) | Next::Step(_, why) => why.clone(),
            Next::Complete => format!("no branch for {outcome}, and {from} is the last step"),
        };
        append(
            conn,
            &run.id,
            NewTransition {
                kind: TransitionKind::Progressed,
                step: Some(&from),
                delivery_id: delivery_id.as_deref(),
                reason: Some(outcome.as_str()),
                evidence: format!("{evidence}; {via}"),
            },
        )
        .await?;
        match next {
            Next::Stop(why) => {
                end(
                    conn,
                    run,
                    RunStatus::Stopped,
                    Reason::StoppedByBranch,
                    format!("step {from} ended {outcome}, {why}"),
                )
                .await?;
                return Ok(Moved::default());
            }
            Next::Complete => {
                end(
                    conn,
                    run,
                    RunStatus::Completed,
                    Reason::LastStepDone,
                    format!("the last step, {from}, ended {outcome}"),
                )
                .await?;
                return Ok(Moved::default());
            }
            Next::Step(step, _) => {
                if let Some(w) = &step.wait {
                    return begin_wait(conn, run, step, w).await;
                }
                match enter(conn, run, step).await? {
                    Some(_) => return Ok(Moved { enqueued: true }),
                    None => {
                        from = step.key.clone();
                        outcome = StepOutcome::Suppressed;
                        delivery_id = None;
                        evidence = not_planned(step, &run.recipient_id);
                    }
                }
            }
        }
    }
}

/// Puts a claimed run to wait before `step`, unless a signal in its cancel-on came already:
/// waiting for something that already happened would send what the signal meant to prevent,
/// so the wait ends before it begins.
async fn begin_wait(
    conn: &mut Conn,
    run: &Run,
    step: &Step,
    w: &super::definition::Wait,
) -> Result<Moved, StoreError> {
    let Some((signal, name)) = cancelled_already(conn, run, &w.cancel_on).await? else {
        wait(conn, run, step, w.after_ms).await?;
        return Ok(Moved { enqueued: true });
    };
    append(
        conn,
        &run.id,
        NewTransition {
            kind: TransitionKind::SignalReceived,
            step: Some(&step.key),
            delivery_id: None,
            reason: Some(&name),
            evidence: format!(
                "signal {signal} `{name}`, listed in the cancel-on of step {}, was received before the wait began",
                step.key
            ),
        },
    )
    .await?;
    end(
        conn,
        run,
        RunStatus::Completed,
        Reason::CancelledBySignal,
        format!(
            "signal `{name}` came before the wait before step {}: it will not be sent",
            step.key
        ),
    )
    .await?;
    Ok(Moved::default())
}

/// What running a `workflow_wake` job did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    Moved(Moved),
    /// The wait ends later than now (a clock ahead of this one wrote the job).
    NotDue(DateTime<Utc>),
    /// The run is no longer waiting: a signal ended or resumed the wait first.
    NotWaiting,
}

/// Ends a run's wait because its time came: the waiting step is activated.
pub(crate) async fn wake(conn: &mut Conn, run_id: &str) -> Result<Wake, StoreError> {
    let Some(run) = load(conn, run_id).await? else {
        return Ok(Wake::NotWaiting);
    };
    if run.status != status::WAITING {
        return Ok(Wake::NotWaiting);
    }
    let until = run.wait_until.unwrap_or_else(store::now);
    if until > store::now() {
        return Ok(Wake::NotDue(until));
    }
    if !claim(conn, &run, &store::time_text(store::now())).await? {
        return Ok(Wake::NotWaiting);
    }
    reactivate(
        conn,
        &run,
        format!(
            "the wait before step {} ended at {}",
            run.step_key,
            store::time_text(until)
        ),
    )
    .await
    .map(Wake::Moved)
}

/// Activates the waiting step of a claimed run.
async fn reactivate(conn: &mut Conn, run: &Run, evidence: String) -> Result<Moved, StoreError> {
    append(
        conn,
        &run.id,
        NewTransition {
            kind: TransitionKind::Reactivated,
            step: Some(&run.step_key),
            delivery_id: None,
            reason: None,
            evidence,
        },
    )
    .await?;
    let (_, step) = run
        .definition
        .step(&run.step_key)
        .ok_or_else(|| corrupt("step", format!("`{}` is not a step", run.step_key)))?;
    match enter(conn, run, step).await? {
        Some(_) => Ok(Moved { enqueued: true }),
        None => {
            let evidence = not_planned(step, &run.recipient_id);
            drive(
                conn,
                run,
                &step.key,
                StepOutcome::Suppressed,
                None,
                evidence,
            )
            .await
        }
    }
}

/// A signal's effect on one waiting run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// The wait ended for good: the run completed (`cancelled_by_signal`).
    Cancelled,
    /// The wait ended early: the waiting step was activated.
    Resumed,
}

/// Applies a signal to a run loaded as waiting. `None` when the run moved meanwhile.
pub(crate) async fn on_signal(
    conn: &mut Conn,
    run: &Run,
    effect: Effect,
    signal_id: &str,
    name: &str,
) -> Result<Option<Moved>, StoreError> {
    if !claim(conn, run, &store::time_text(store::now())).await? {
        return Ok(None);
    }
    // The wait's job goes with the wait. A worker holding it right now finds the run no longer
    // waiting and drops it.
    queue::remove(conn, queue::job_kind::WORKFLOW_WAKE, &run.id).await?;
    append(
        conn,
        &run.id,
        NewTransition {
            kind: TransitionKind::SignalReceived,
            step: Some(&run.step_key),
            delivery_id: None,
            reason: Some(name),
            evidence: format!(
                "signal {signal_id} `{name}` from {} while waiting before step {}: {}",
                run.recipient_id,
                run.step_key,
                match effect {
                    Effect::Cancelled => "listed in cancel-on",
                    Effect::Resumed => "listed in resume-on",
                }
            ),
        },
    )
    .await?;
    match effect {
        Effect::Cancelled => {
            end(
                conn,
                run,
                RunStatus::Completed,
                Reason::CancelledBySignal,
                format!(
                    "signal `{name}` ended the wait before step {}: it will not be sent",
                    run.step_key
                ),
            )
            .await?;
            Ok(Some(Moved::default()))
        }
        Effect::Resumed => reactivate(conn, run, format!("signal `{name}` ended the wait early"))
            .await
            .map(Some),
    }
}

/// A provider's late word on a step's delivery: `outcome` is a hard bounce or a complaint
/// (see `feedback::ledger`) about `delivery_id`, which the run took as delivered.
/// While the run waits right after that step (no later step's delivery planned yet), the
/// step's first branch that takes the outcome decides again: `stop` ends the run, `goto` moves
/// it there, and the wait's job goes. A step without such a branch, a run that has moved on
/// to a later delivery or ended, and a repeat after the move change nothing.
#[tracing::instrument(skip(conn, evidence), fields(run, step))]
pub(crate) async fn on_feedback(
    conn: &mut Conn,
    delivery_id: &str,
    outcome: StepOutcome,
    evidence: String,
) -> Result<Moved, StoreError> {
    let Some(origin) = crate::deliveries::reads::origin(conn, delivery_id, None).await? else {
        return Ok(Moved::default());
    };
    let (Some(run_id), Some(step_key)) = (origin.workflow_run_id, origin.workflow_step) else {
        return Ok(Moved::default());
    };
    tracing::Span::current()
        .record("run", run_id.as_str())
        .record("step", step_key.as_str());
    let Some(run) = load(conn, &run_id).await? else {
        return Ok(Moved::default());
    };
    if run.status != status::WAITING {
        tracing::debug!(status = %run.status, "the run is not waiting: the feedback changes nothing");
        return Ok(Moved::default());
    }
    // Step deliveries are planned in step order with time-ordered ids: the newest is the step
    // the run last passed.
    let newest = crate::deliveries::reads::newest_of_run(conn, &run.id).await?;
    if newest.as_deref() != Some(delivery_id) {
        tracing::debug!("a later step was planned since: the feedback changes nothing");
        return Ok(Moved::default());
    }
    let Some((_, step)) = run.definition.step(&step_key) else {
        return Err(corrupt("step", format!("`{step_key}` is not a step")));
    };
    if !step.on_outcome.iter().any(|b| b.outcome.takes(outcome)) {
        tracing::debug!("the step has no branch for it: the run keeps waiting");
        return Ok(Moved::default());
    }
    if !claim(conn, &run, &store::time_text(store::now())).await? {
        return Ok(Moved::default());
    }
    queue::remove(conn, queue::job_kind::WORKFLOW_WAKE, &run.id).await?;
    tracing::info!("provider feedback takes the step's branch");
    drive(conn, &run, &step_key, outcome, Some(delivery_id), evidence).await
}

/// The step delivery of a run was cancelled by request: the run ends with it.
pub(crate) async fn step_cancelled(
    conn: &mut Conn,
    run_id: &str,
    delivery_id: &str,
    why: &str,
) -> Result<(), StoreError> {
    let Some(run) = load(conn, run_id).await? else {
        return Ok(());
    };
    if run.status != status::RUNNING || run.step_delivery_id.as_deref() != Some(delivery_id) {
        return Ok(());
    }
    if claim(conn, &run, &store::time_text(store::now())).await? {
        end(
            conn,
            &run,
            RunStatus::Stopped,
            Reason::StepCancelled,
            format!(
                "the delivery {delivery_id} of step {} was cancelled: {why}",
                run.step_key
            ),
        )
        .await?;
    }
    Ok(())
}

/// Moves a run whose current step's delivery already reached a final outcome but which has
/// not moved on (for hosts that reconcile, and to prove progression is duplicate-safe): the
/// same move the executor makes at that delivery's commit, and a no-op after it.
pub async fn reconcile(db: &store::Db, run_id: &str) -> Result<bool, StoreError> {
    let mut tx = db.begin().await?;
    // Write first: on SQLite a transaction that reads before it writes fails (busy) when
    // another writer commits in between, instead of waiting its turn.
    sqlx::query("UPDATE workflow_runs SET version = version WHERE id = $1")
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
    let Some(run) = load(&mut tx, run_id).await? else {
        return Ok(false);
    };
    let Some(delivery_id) = run.step_delivery_id.clone() else {
        return Ok(false);
    };
    if run.status != status::RUNNING {
        return Ok(false);
    }
    let (st, why) = crate::deliveries::reads::status_of(&mut tx, &delivery_id).await?;
    let Some(outcome) = outcome_of(&st, why.as_deref()) else {
        return Ok(false);
    };
    let moved = advance(
        &mut tx,
        run_id,
        &run.step_key,
        Some(&delivery_id),
        outcome,
        format!("reconciled: delivery {delivery_id} is {st}"),
    )
    .await?;
    if let Some(m) = moved
        && m.enqueued
    {
        queue::announce(&mut tx, store::backend(db)).await?;
    }
    tx.commit().await?;
    Ok(moved.is_some())
}

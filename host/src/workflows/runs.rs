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

use super::definition::{Step, StepOutcome, Target, Workflow};
use super::signals;
use crate::content::Channel;
use crate::jobs::{self as queue, NewJob};
use crate::store::{self, Conn, StoreError};
use crate::traces::{NewTrace, kind};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

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

/// A run as stored, for explain and the API.
#[derive(Clone, Debug, Serialize)]
pub struct RunRecord {
    pub id: String,
    pub tenant: String,
    pub event_id: String,
    pub notification_id: String,
    pub recipient_id: String,
    pub workflow_key: String,
    pub workflow_version: String,
    pub notifier_plugin: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub step_key: String,
    pub step_delivery_id: Option<String>,
    pub wait_until: Option<String>,
    pub cancel_on: Vec<String>,
    pub resume_on: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub ended_at: Option<String>,
    pub transitions: Vec<TransitionRecord>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TransitionRecord {
    pub at: String,
    pub kind: String,
    pub step_key: Option<String>,
    pub delivery_id: Option<String>,
    pub reason: Option<String>,
    pub evidence: String,
}

/// A run as the state machine needs it.
pub(crate) struct Run {
    pub id: String,
    pub tenant: String,
    pub event_id: String,
    pub notification_id: String,
    pub recipient_id: String,
    pub definition: Workflow,
    pub notifier_plugin: String,
    pub channels: Vec<Channel>,
    pub status: String,
    pub step_key: String,
    pub step_delivery_id: Option<String>,
    pub wait_until: Option<DateTime<Utc>>,
    pub cancel_on: Vec<String>,
    pub resume_on: Vec<String>,
    pub version: i64,
    pub created_at: String,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("workflow run {what}: {e}"))
}

fn names(text: Option<String>) -> Result<Vec<String>, StoreError> {
    text.map_or(Ok(Vec::new()), |t| {
        serde_json::from_str(&t).map_err(|e| corrupt("signal list", e))
    })
}

const STATE_COLUMNS: &str = "id, tenant, event_id, notification_id, recipient_id, definition,
    notifier_plugin, channels, status, step_key, step_delivery_id, wait_until, cancel_on,
    resume_on, version, created_at";

pub(crate) async fn load(conn: &mut Conn, run_id: &str) -> Result<Option<Run>, StoreError> {
    sqlx::query(&format!(
        "SELECT {STATE_COLUMNS} FROM workflow_runs WHERE id = $1"
    ))
    .bind(run_id)
    .fetch_optional(&mut *conn)
    .await?
    .map(|r| run_from_row(&r))
    .transpose()
}

/// The waiting runs of `tenant` whose recipient is `actor`, oldest first: what a signal may
/// reach.
pub(crate) async fn waiting_for(
    conn: &mut Conn,
    tenant: &str,
    actor: &str,
) -> Result<Vec<Run>, StoreError> {
    sqlx::query(&format!(
        "SELECT {STATE_COLUMNS} FROM workflow_runs
         WHERE tenant = $1 AND recipient_id = $2 AND status = 'waiting' ORDER BY id"
    ))
    .bind(tenant)
    .bind(actor)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(run_from_row)
    .collect()
}

fn run_from_row(r: &sqlx::any::AnyRow) -> Result<Run, StoreError> {
    let definition: String = r.get("definition");
    let channels: String = r.get("channels");
    let wait_until: Option<String> = r.get("wait_until");
    Ok(Run {
        id: r.get("id"),
        tenant: r.get("tenant"),
        event_id: r.get("event_id"),
        notification_id: r.get("notification_id"),
        recipient_id: r.get("recipient_id"),
        definition: serde_json::from_str(&definition).map_err(|e| corrupt("definition", e))?,
        notifier_plugin: r.get("notifier_plugin"),
        channels: serde_json::from_str(&channels).map_err(|e| corrupt("channels", e))?,
        status: r.get("status"),
        step_key: r.get("step_key"),
        step_delivery_id: r.get("step_delivery_id"),
        wait_until: wait_until.as_deref().map(store::parse_time).transpose()?,
        cancel_on: names(r.get("cancel_on"))?,
        resume_on: names(r.get("resume_on"))?,
        version: r.get("version"),
        created_at: r.get("created_at"),
    })
}

/// What a run's move wrote that others must know of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Moved {
    /// A job was written: workers in other processes should be told at commit.
    pub enqueued: bool,
}

/// Takes the run for one move: only the first of any repeated or concurrent movers from
/// `run.version` gets `true`.
async fn claim(conn: &mut Conn, run: &Run, now: &str) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE workflow_runs SET version = version + 1, updated_at = $3
         WHERE id = $1 AND version = $2",
    )
    .bind(&run.id)
    .bind(run.version)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

struct NewTransition<'a> {
    kind: &'static str,
    step: Option<&'a str>,
    delivery_id: Option<&'a str>,
    reason: Option<&'a str>,
    evidence: String,
}

async fn append(conn: &mut Conn, run_id: &str, t: NewTransition<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO workflow_transitions (id, run_id, at, kind, step_key, delivery_id, reason, evidence)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(store::new_id())
    .bind(run_id)
    .bind(store::time_text(store::now()))
    .bind(t.kind)
    .bind(t.step)
    .bind(t.delivery_id)
    .bind(t.reason)
    .bind(&t.evidence)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn describe_step(s: &Step) -> String {
    match &s.wait {
        Some(w) => format!(
            "{} ({}, after {})",
            s.key,
            s.channel,
            humanize_ms(w.after_ms)
        ),
        None => format!("{} ({})", s.key, s.channel),
    }
}

/// `90 min`, `2 h`, `1500 ms`: waits as people declare them.
pub fn humanize_ms(ms: u64) -> String {
    const H: u64 = 3_600_000;
    const M: u64 = 60_000;
    if ms >= H && ms.is_multiple_of(H) {
        format!("{} h", ms / H)
    } else if ms >= M && ms.is_multiple_of(M) {
        format!("{} min", ms / M)
    } else if ms >= 1000 && ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

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
            kind: transition::STARTED,
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
                kind: transition::STEP_ACTIVATED,
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
            kind: transition::STEP_ACTIVATED,
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

fn not_planned(step: &Step, recipient_id: &str) -> String {
    format!(
        "no delivery: {} is not among the channels the notifier planned for recipient {recipient_id}",
        step.channel
    )
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
                kind: transition::PROGRESSED,
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
                    status::STOPPED,
                    reason::STOPPED_BY_BRANCH,
                    format!("step {from} ended {outcome}, {why}"),
                )
                .await?;
                return Ok(Moved::default());
            }
            Next::Complete => {
                end(
                    conn,
                    run,
                    status::COMPLETED,
                    reason::LAST_STEP_DONE,
                    format!("the last step, {from}, ended {outcome}"),
                )
                .await?;
                return Ok(Moved::default());
            }
            Next::Step(step, _) => {
                if let Some(w) = &step.wait {
                    if let Some((signal, name)) = cancelled_already(conn, run, &w.cancel_on).await?
                    {
                        // Waiting for something that already happened would send what the
                        // signal meant to prevent: the wait ends before it begins.
                        append(
                            conn,
                            &run.id,
                            NewTransition {
                                kind: transition::SIGNAL_RECEIVED,
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
                            status::COMPLETED,
                            reason::CANCELLED_BY_SIGNAL,
                            format!(
                                "signal `{name}` came before the wait before step {}: it will not be sent",
                                step.key
                            ),
                        )
                        .await?;
                        return Ok(Moved::default());
                    }
                    wait(conn, run, step, w.after_ms).await?;
                    return Ok(Moved { enqueued: true });
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

/// A cancel signal for this run received since it started, if any: its id and name.
async fn cancelled_already(
    conn: &mut Conn,
    run: &Run,
    cancel_on: &[String],
) -> Result<Option<(String, String)>, StoreError> {
    if cancel_on.is_empty() {
        return Ok(None);
    }
    let rows = sqlx::query(
        "SELECT id, name, payload FROM signals
         WHERE tenant = $1 AND actor = $2 AND created_at >= $3 ORDER BY id",
    )
    .bind(&run.tenant)
    .bind(&run.recipient_id)
    .bind(&run.created_at)
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let name: String = r.get("name");
        if !cancel_on.contains(&name) {
            continue;
        }
        let payload: String = r.get("payload");
        let payload: serde_json::Value = serde_json::from_str(&payload).unwrap_or_default();
        if signals::reaches(&payload, &run.notification_id) {
            return Ok(Some((r.get("id"), name)));
        }
    }
    Ok(None)
}

/// Ends a claimed run.
async fn end(
    conn: &mut Conn,
    run: &Run,
    status: &'static str,
    why: &'static str,
    evidence: String,
) -> Result<(), StoreError> {
    let now = store::time_text(store::now());
    sqlx::query(
        "UPDATE workflow_runs SET status = $2, status_reason = $3, wait_until = NULL,
                cancel_on = NULL, resume_on = NULL, updated_at = $4, ended_at = $4
         WHERE id = $1",
    )
    .bind(&run.id)
    .bind(status)
    .bind(why)
    .bind(&now)
    .execute(&mut *conn)
    .await?;
    let kind = if status == status::STOPPED {
        transition::STOPPED
    } else {
        transition::COMPLETED
    };
    append(
        conn,
        &run.id,
        NewTransition {
            kind,
            step: None,
            delivery_id: None,
            reason: Some(why),
            evidence,
        },
    )
    .await?;
    tracing::info!(run = %run.id, status, reason = why, "workflow run ended");
    Ok(())
}

/// Puts a claimed run to wait before `step`, with the job that wakes it.
async fn wait(conn: &mut Conn, run: &Run, step: &Step, after_ms: u64) -> Result<(), StoreError> {
    let now = store::now();
    // Bounded when the workflow is loaded; a stored definition from before waits at most ten
    // years rather than overflowing.
    let until = crate::time_bounds::later(now, std::time::Duration::from_millis(after_ms));
    let w = step.wait.as_ref().expect("a waiting step has a wait");
    let json = |v: &Vec<String>| serde_json::to_string(v).map_err(|e| corrupt("signals", e));
    sqlx::query(
        "UPDATE workflow_runs SET status = $2, step_key = $3, step_delivery_id = NULL,
                wait_until = $4, cancel_on = $5, resume_on = $6, updated_at = $7
         WHERE id = $1",
    )
    .bind(&run.id)
    .bind(status::WAITING)
    .bind(&step.key)
    .bind(store::time_text(until))
    .bind(json(&w.cancel_on)?)
    .bind(json(&w.resume_on)?)
    .bind(store::time_text(now))
    .execute(&mut *conn)
    .await?;
    queue::enqueue(
        conn,
        NewJob {
            kind: queue::job_kind::WORKFLOW_WAKE,
            subject_id: &run.id,
            tenant: &run.tenant,
            run_at: until,
            deferred: Some(reason::WORKFLOW_WAIT),
        },
    )
    .await?;
    let mut evidence = format!(
        "{} before step {} ({}), until {}",
        humanize_ms(after_ms),
        step.key,
        step.channel,
        store::time_text(until)
    );
    if !w.cancel_on.is_empty() {
        evidence.push_str(&format!("; cancelled by {}", w.cancel_on.join(", ")));
    }
    if !w.resume_on.is_empty() {
        evidence.push_str(&format!("; sent early on {}", w.resume_on.join(", ")));
    }
    append(
        conn,
        &run.id,
        NewTransition {
            kind: transition::WAITING,
            step: Some(&step.key),
            delivery_id: None,
            reason: Some(reason::WORKFLOW_WAIT),
            evidence,
        },
    )
    .await
}

/// Activates `step` of a claimed run: plans its delivery (and the job that sends it) and
/// returns its id, or `None` when the step's channel was not planned for the recipient.
async fn enter(conn: &mut Conn, run: &Run, step: &Step) -> Result<Option<String>, StoreError> {
    let now_time = store::now();
    let now = store::time_text(now_time);
    if !run.channels.contains(&step.channel) {
        sqlx::query(
            "UPDATE workflow_runs SET status = $2, step_key = $3, step_delivery_id = NULL,
                    wait_until = NULL, cancel_on = NULL, resume_on = NULL, updated_at = $4
             WHERE id = $1",
        )
        .bind(&run.id)
        .bind(status::RUNNING)
        .bind(&step.key)
        .bind(&now)
        .execute(&mut *conn)
        .await?;
        append(
            conn,
            &run.id,
            NewTransition {
                kind: transition::STEP_ACTIVATED,
                step: Some(&step.key),
                delivery_id: None,
                reason: Some(reason::CHANNEL_NOT_PLANNED),
                evidence: not_planned(step, &run.recipient_id),
            },
        )
        .await?;
        return Ok(None);
    }
    let delivery_id = store::new_id();
    let detail = format!(
        "step {} of workflow {} v{} (run {})",
        step.key, run.definition.key, run.definition.version, run.id
    );
    sqlx::query(
        "INSERT INTO deliveries (id, notification_id, event_id, tenant, channel, status, status_reason,
                                 status_detail, idempotency_key, planned_by, created_at, updated_at,
                                 workflow_run_id, workflow_step)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9, $10, $10, $11, $12)",
    )
    .bind(&delivery_id)
    .bind(&run.notification_id)
    .bind(&run.event_id)
    .bind(&run.tenant)
    .bind(step.channel.as_str())
    .bind(reason::WORKFLOW_STEP)
    .bind(&detail)
    .bind(crate::deliveries::idempotency_key_for(&delivery_id))
    .bind(&run.notifier_plugin)
    .bind(&now)
    .bind(&run.id)
    .bind(&step.key)
    .execute(&mut *conn)
    .await?;
    queue::enqueue(
        conn,
        NewJob {
            kind: queue::job_kind::DELIVER,
            subject_id: &delivery_id,
            tenant: &run.tenant,
            run_at: now_time,
            deferred: None,
        },
    )
    .await?;
    crate::endpoints::events::append(
        conn,
        NewTrace {
            tenant: &run.tenant,
            event_id: &run.event_id,
            notification_id: Some(&run.notification_id),
            delivery_id: Some(&delivery_id),
            kind: kind::DELIVERY_PLANNED,
            reason: Some(reason::WORKFLOW_STEP),
            detail: Some(format!(
                "{} for recipient {}, {detail}; the send-time policy decides",
                step.channel, run.recipient_id
            )),
            plugin: Some(run.notifier_plugin.clone()),
            ..Default::default()
        },
    )
    .await?;
    sqlx::query(
        "UPDATE workflow_runs SET status = $2, step_key = $3, step_delivery_id = $4,
                wait_until = NULL, cancel_on = NULL, resume_on = NULL, updated_at = $5
         WHERE id = $1",
    )
    .bind(&run.id)
    .bind(status::RUNNING)
    .bind(&step.key)
    .bind(&delivery_id)
    .bind(&now)
    .execute(&mut *conn)
    .await?;
    append(
        conn,
        &run.id,
        NewTransition {
            kind: transition::STEP_ACTIVATED,
            step: Some(&step.key),
            delivery_id: Some(&delivery_id),
            reason: None,
            evidence: format!("{} delivery {delivery_id} planned", step.channel),
        },
    )
    .await?;
    Ok(Some(delivery_id))
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
            kind: transition::REACTIVATED,
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
            kind: transition::SIGNAL_RECEIVED,
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
                status::COMPLETED,
                reason::CANCELLED_BY_SIGNAL,
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
    let Some(row) =
        sqlx::query("SELECT workflow_run_id, workflow_step FROM deliveries WHERE id = $1")
            .bind(delivery_id)
            .fetch_optional(&mut *conn)
            .await?
    else {
        return Ok(Moved::default());
    };
    let (Some(run_id), Some(step_key)) = (
        row.get::<Option<String>, _>("workflow_run_id"),
        row.get::<Option<String>, _>("workflow_step"),
    ) else {
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
    let newest: Option<String> = sqlx::query_scalar(
        "SELECT id FROM deliveries WHERE workflow_run_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(&run.id)
    .fetch_optional(&mut *conn)
    .await?;
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
            status::STOPPED,
            reason::STEP_CANCELLED,
            format!(
                "the delivery {delivery_id} of step {} was cancelled: {why}",
                run.step_key
            ),
        )
        .await?;
    }
    Ok(())
}

impl std::fmt::Display for RunRecord {
    /// The human form: where the run stands, then every transition with its evidence.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "workflow run {} ({} v{}, recipient {}): {}",
            self.id, self.workflow_key, self.workflow_version, self.recipient_id, self.status
        )?;
        if let Some(r) = &self.status_reason {
            write!(f, " ({r})")?;
        }
        match (self.status.as_str(), &self.wait_until) {
            (status::WAITING, Some(until)) => {
                writeln!(f, ", before step {} until {until}", self.step_key)?
            }
            (status::RUNNING, _) => writeln!(f, ", at step {}", self.step_key)?,
            _ => writeln!(f)?,
        }
        for t in &self.transitions {
            write!(f, "  {}  {:<16}", t.at, t.kind)?;
            if let Some(s) = &t.step_key {
                write!(f, " step {s}")?;
            }
            if let Some(r) = &t.reason {
                write!(f, " [{r}]")?;
            }
            writeln!(f, " {}", t.evidence)?;
        }
        Ok(())
    }
}

const RUN_COLUMNS: &str = "id, tenant, event_id, notification_id, recipient_id, workflow_key,
    workflow_version, notifier_plugin, status, status_reason, step_key, step_delivery_id,
    wait_until, cancel_on, resume_on, created_at, updated_at, ended_at";

/// A run and its transitions, by the run's id, its notification's, or one of its deliveries'.
pub async fn record(db: &store::Db, id: &str) -> Result<Option<RunRecord>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {RUN_COLUMNS} FROM workflow_runs
         WHERE id = $1 OR notification_id = $1
            OR id = (SELECT workflow_run_id FROM deliveries WHERE id = $1)"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let run_id: String = r.get("id");
    let transitions = sqlx::query(
        "SELECT at, kind, step_key, delivery_id, reason, evidence FROM workflow_transitions
         WHERE run_id = $1 ORDER BY id",
    )
    .bind(&run_id)
    .fetch_all(db)
    .await?
    .iter()
    .map(|t| TransitionRecord {
        at: t.get("at"),
        kind: t.get("kind"),
        step_key: t.get("step_key"),
        delivery_id: t.get("delivery_id"),
        reason: t.get("reason"),
        evidence: t.get("evidence"),
    })
    .collect();
    Ok(Some(RunRecord {
        id: run_id,
        tenant: r.get("tenant"),
        event_id: r.get("event_id"),
        notification_id: r.get("notification_id"),
        recipient_id: r.get("recipient_id"),
        workflow_key: r.get("workflow_key"),
        workflow_version: r.get("workflow_version"),
        notifier_plugin: r.get("notifier_plugin"),
        status: r.get("status"),
        status_reason: r.get("status_reason"),
        step_key: r.get("step_key"),
        step_delivery_id: r.get("step_delivery_id"),
        wait_until: r.get("wait_until"),
        cancel_on: names(r.get("cancel_on"))?,
        resume_on: names(r.get("resume_on"))?,
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
        ended_at: r.get("ended_at"),
        transitions,
    }))
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
    let row = sqlx::query("SELECT status, status_reason FROM deliveries WHERE id = $1")
        .bind(&delivery_id)
        .fetch_one(&mut *tx)
        .await?;
    let (st, why): (String, Option<String>) = (row.get("status"), row.get("status_reason"));
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

/// A delivery's final status as a workflow outcome; `None` while it is not final (or was
/// cancelled by request, which ends the run instead).
pub(crate) fn outcome_of(status: &str, reason: Option<&str>) -> Option<StepOutcome> {
    use crate::deliveries::reason as r;
    match (status, reason) {
        ("succeeded", _) => Some(StepOutcome::Delivered),
        ("suppressed", _) => Some(StepOutcome::Suppressed),
        ("cancelled", Some(r::RETRIES_EXHAUSTED)) => Some(StepOutcome::RetriesExhausted),
        ("failed", Some(r::SEND_PERMANENT | r::CONTENT_INVALID)) => {
            Some(StepOutcome::PermanentlyFailed)
        }
        ("failed", _) => Some(StepOutcome::Failed),
        _ => None,
    }
}

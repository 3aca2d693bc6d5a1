//! What a claimed run does at a step: waits before it, plans its delivery, or ends.

use super::state::{NewTransition, Run, append, corrupt};
use super::vocab::{Reason, RunStatus, TransitionKind, reason, status};
use crate::deliveries::{self, NewDelivery, Status};
use crate::jobs::{self as queue, NewJob};
use crate::store::{self, Conn, StoreError};
use crate::traces::{NewTrace, kind};
use crate::workflows::definition::Step;
use sqlx::Row;

pub(super) fn describe_step(s: &Step) -> String {
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

pub(super) fn not_planned(step: &Step, recipient_id: &str) -> String {
    format!(
        "no delivery: {} is not among the channels the notifier planned for recipient {recipient_id}",
        step.channel
    )
}

/// A cancel signal for this run received since it started, if any: its id and name.
pub(super) async fn cancelled_already(
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
        if reaches(&payload, &run.notification_id) {
            return Ok(Some((r.get("id"), name)));
        }
    }
    Ok(None)
}

/// Ends a claimed run.
pub(super) async fn end(
    conn: &mut Conn,
    run: &Run,
    status: RunStatus,
    why: Reason,
    evidence: String,
) -> Result<(), StoreError> {
    let now = store::time_text(store::now());
    sqlx::query(
        "UPDATE workflow_runs SET status = $2, status_reason = $3, wait_until = NULL,
                cancel_on = NULL, resume_on = NULL, updated_at = $4, ended_at = $4
         WHERE id = $1",
    )
    .bind(&run.id)
    .bind(status.as_str())
    .bind(why.as_str())
    .bind(&now)
    .execute(&mut *conn)
    .await?;
    let kind = match status {
        RunStatus::Stopped => TransitionKind::Stopped,
        _ => TransitionKind::Completed,
    };
    append(
        conn,
        &run.id,
        NewTransition {
            kind,
            step: None,
            delivery_id: None,
            reason: Some(why.as_str()),
            evidence,
        },
    )
    .await?;
    tracing::info!(run = %run.id, status = status.as_str(), reason = why.as_str(), "workflow run ended");
    Ok(())
}

/// Puts a claimed run to wait before `step`, with the job that wakes it.
pub(super) async fn wait(
    conn: &mut Conn,
    run: &Run,
    step: &Step,
    after_ms: u64,
) -> Result<(), StoreError> {
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
            kind: TransitionKind::Waiting,
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
pub(super) async fn enter(
    conn: &mut Conn,
    run: &Run,
    step: &Step,
) -> Result<Option<String>, StoreError> {
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
                kind: TransitionKind::StepActivated,
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
    deliveries::insert_delivery(
        conn,
        &NewDelivery {
            id: &delivery_id,
            notification_id: &run.notification_id,
            event_id: &run.event_id,
            tenant: &run.tenant,
            channel: step.channel.as_str(),
            status: Status::Pending,
            reason: Some(reason::WORKFLOW_STEP),
            detail: Some(&detail),
            planned_by: &run.notifier_plugin,
            created_at: &now,
            workflow_run_id: Some(&run.id),
            workflow_step: Some(&step.key),
            ..Default::default()
        },
    )
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
            kind: TransitionKind::StepActivated,
            step: Some(&step.key),
            delivery_id: Some(&delivery_id),
            reason: None,
            evidence: format!("{} delivery {delivery_id} planned", step.channel),
        },
    )
    .await?;
    Ok(Some(delivery_id))
}

/// Whether a signal with this payload is meant for the run of `notification_id`: a payload
/// that names a notification reaches only that one's run.
pub(crate) fn reaches(payload: &serde_json::Value, notification_id: &str) -> bool {
    payload
        .get("notification_id")
        .and_then(|v| v.as_str())
        .is_none_or(|n| n == notification_id)
}

//! A run as explain and the API read it, and the reconciling move for hosts that check runs.

use super::state::names;
use super::vocab::status;
use crate::deliveries::{Reason, Status};
use crate::store::{self, StoreError};
use crate::workflows::definition::StepOutcome;
use serde::Serialize;
use sqlx::Row;

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

/// A delivery's final status as a workflow outcome; `None` while it is not final (or was
/// cancelled by request, which ends the run instead).
pub(crate) fn outcome_of(status: &str, reason: Option<&str>) -> Option<StepOutcome> {
    let reason = reason.and_then(|r| Reason::parse(r).ok());
    match (Status::parse(status).ok()?, reason) {
        (Status::Succeeded, _) => Some(StepOutcome::Delivered),
        (Status::Suppressed, _) => Some(StepOutcome::Suppressed),
        (Status::Cancelled, Some(Reason::RetriesExhausted)) => Some(StepOutcome::RetriesExhausted),
        (Status::Failed, Some(Reason::SendPermanent | Reason::ContentInvalid)) => {
            Some(StepOutcome::PermanentlyFailed)
        }
        (Status::Failed, _) => Some(StepOutcome::Failed),
        _ => None,
    }
}

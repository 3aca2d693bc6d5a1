//! A run's stored state: loading it, claiming it for one move, and appending its
//! transitions.

use super::vocab::TransitionKind;
use crate::content::Channel;
use crate::store::{self, Conn, StoreError};
use crate::workflows::definition::Workflow;
use chrono::{DateTime, Utc};
use sqlx::Row;

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

pub(super) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("workflow run {what}: {e}"))
}

pub(super) fn names(text: Option<String>) -> Result<Vec<String>, StoreError> {
    text.map_or(Ok(Vec::new()), |t| {
        serde_json::from_str(&t).map_err(|e| corrupt("signal list", e))
    })
}

pub(super) const STATE_COLUMNS: &str =
    "id, tenant, event_id, notification_id, recipient_id, definition,
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
pub(super) async fn claim(conn: &mut Conn, run: &Run, now: &str) -> Result<bool, StoreError> {
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

pub(super) struct NewTransition<'a> {
    pub(super) kind: TransitionKind,
    pub(super) step: Option<&'a str>,
    pub(super) delivery_id: Option<&'a str>,
    pub(super) reason: Option<&'a str>,
    pub(super) evidence: String,
}

pub(super) async fn append(
    conn: &mut Conn,
    run_id: &str,
    t: NewTransition<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO workflow_transitions (id, run_id, at, kind, step_key, delivery_id, reason, evidence)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(store::new_id())
    .bind(run_id)
    .bind(store::time_text(store::now()))
    .bind(t.kind.as_str())
    .bind(t.step)
    .bind(t.delivery_id)
    .bind(t.reason)
    .bind(&t.evidence)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

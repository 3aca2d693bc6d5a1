//! The policy decision for one delivery, taken at plan time (inside the trigger transaction)
//! and again at send time (re-reading every input).
//!
//! Three steps: the recipient's stored inputs are read beforehand, for many recipients at
//! once ([`Inputs::load_many`]); [`decide`] counts past deliveries when a cooldown or cap rule
//! will look at them ([`History::load`]); then the rules judge it all, without I/O
//! ([`rules::decide`], where their order is written down).

pub use super::decision::{Checkpoint, Decision, Outcome, RuleCheck};
pub use super::facts::{Facts, History, Inputs, StoredPref, Subject};
pub use super::load::LOAD_CHUNK;
use super::rules;
use crate::store::{Conn, StoreError};
use chrono::{DateTime, Utc};

/// Decides for one delivery. Reads the past (cooldown, cap) through `conn`, which may be the
/// trigger's transaction, so deliveries planned earlier in it count.
#[tracing::instrument(skip_all, fields(checkpoint = checkpoint.as_str(), channel = %s.channel, recipient = %s.recipient.id))]
pub async fn decide(
    conn: &mut Conn,
    checkpoint: Checkpoint,
    inputs: &Inputs,
    s: &Subject<'_>,
    now: DateTime<Utc>,
) -> Result<Decision, StoreError> {
    let mut facts = Facts {
        checkpoint,
        inputs,
        subject: s,
        history: History::default(),
    };
    if rules::reads_history(&facts) {
        facts.history = History::load(conn, &facts, now).await?;
    }
    let decision = rules::decide(&facts, now).map_err(|e| stored_error(s, &e.problem))?;
    tracing::debug!(outcome = decision.code(), "policy decided");
    Ok(decision)
}

/// A stored span out of range fails this delivery's decision with an error naming it and how
/// to put it right.
fn stored_error(s: &Subject<'_>, problem: &str) -> StoreError {
    tracing::warn!(tenant = s.tenant, recipient = %s.recipient.id, problem, "stored policy settings out of range");
    StoreError::OutOfRange(format!(
        "the policy settings stored for recipient `{}` of tenant `{}` (or its `*` defaults) are out of range: {problem}; set them again (`belfry settings set` or PATCH /v1/recipients/{{id}}/settings)",
        s.recipient.id, s.tenant
    ))
}

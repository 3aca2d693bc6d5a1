//! Replay: recorded events run again through a candidate plugin and through the build that
//! planned them, and what differs between the two: recipients, channels, severity, holds,
//! the workflow, and the rendered content of every delivery. Nothing is written and nothing
//! is sent: every call is on a fresh instance, and content stops after validation
//! ([`crate::plugins::preview::render_one`]).
//!
//! - A notifier candidate replays the events of its key. The baseline is the recorded build
//!   when the registry still knows it, else the notifier in force with that key (said in the
//!   report's notes).
//! - A renderer candidate replays the events of every notifier in force that renders with a
//!   renderer of its name; the baseline is that renderer. Only content can differ.
//! - A channel adapter is refused: a replay sends nothing, so it has nothing to compare.

mod compare;

use crate::deliveries::reads::{self, EventFilter, RecordedEvent};
use crate::plugins::{Plugin, PluginKind, PluginRuntime, Registry};
use crate::store::{Db, StoreError};
use futures_util::StreamExt;
use serde::Serialize;
use std::sync::Arc;

/// How many events a replay reads when no limit is given.
pub const DEFAULT_LIMIT: usize = 1000;
/// The most events one replay reads.
pub const MAX_LIMIT: usize = 100_000;
/// Events replayed at once, each in a task of its own: each holds up to two fresh instances.
const CONCURRENCY: usize = 8;

/// Which recorded events to replay: newest first, at most `limit`.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub tenant: Option<String>,
    pub limit: usize,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            since: None,
            tenant: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

/// What a replay found.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplayReport {
    /// The candidate build, `name@version#hash`.
    pub candidate: String,
    /// Events replayed.
    pub events: usize,
    /// Events where anything differed (an error on one side only included).
    pub changed: usize,
    /// Events where the candidate failed somewhere (planning, building, rendering or
    /// validating).
    pub candidate_errors: usize,
    /// Events where the baseline failed somewhere.
    pub baseline_errors: usize,
    /// What the comparison rests on, said once each (e.g. a recorded build no longer loaded).
    pub notes: Vec<String>,
    /// The changed events, newest first.
    pub differences: Vec<EventDifference>,
}

/// One changed event.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventDifference {
    pub event_id: String,
    pub tenant: String,
    /// The build compared against, `name@version#hash`.
    pub baseline: String,
    pub changes: Vec<Change>,
}

/// One difference: `before` is the baseline's, `after` the candidate's (JSON; `null` for
/// absent).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Change {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    pub what: What,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
}

/// What a [`Change`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum What {
    Recipients,
    Channels,
    Severity,
    Holds,
    Workflow,
    Content,
    Error,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The candidate cannot be replayed (an adapter) or the options are out of range.
    #[error("{0}")]
    Invalid(String),
}

/// Replays the events `options` select through `candidate` and the baseline `registry` gives
/// for each, and reports what differs.
pub async fn replay(
    db: &Db,
    runtime: &Arc<PluginRuntime>,
    registry: &Arc<Registry>,
    candidate: &Plugin,
    options: &ReplayOptions,
) -> Result<ReplayReport, ReplayError> {
    if options.limit == 0 || options.limit > MAX_LIMIT {
        return Err(ReplayError::Invalid(format!(
            "limit must be 1 to {MAX_LIMIT}, got {}",
            options.limit
        )));
    }
    let keys = match candidate.kind() {
        PluginKind::Notifier => candidate
            .description()
            .map(|d| vec![d.key.clone()])
            .unwrap_or_default(),
        PluginKind::Renderer => registry
            .plugins()
            .iter()
            .filter(|p| p.kind() == PluginKind::Notifier)
            .filter(|p| {
                registry
                    .renderer_for(p)
                    .is_ok_and(|r| r.name() == candidate.name())
            })
            .filter_map(|p| p.description().map(|d| d.key.clone()))
            .collect(),
        PluginKind::ChannelAdapter => {
            return Err(ReplayError::Invalid(format!(
                "{} is a channel adapter: a replay sends nothing, so an adapter has nothing to \
                 compare; try it with `belfry plugin test` (its fake provider) instead",
                candidate.reference()
            )));
        }
    };
    let events = reads::recorded_events(
        db,
        &EventFilter {
            notifier_keys: keys,
            tenant: options.tenant.clone(),
            since: options.since,
            limit: options.limit,
        },
    )
    .await?;
    let replayer = Arc::new(compare::Replayer {
        runtime: runtime.clone(),
        registry: registry.clone(),
        candidate: candidate.clone(),
    });
    // Plugin calls are CPU-bound: tasks of their own let events run on every core.
    let outcomes: Vec<Result<(RecordedEvent, compare::EventOutcome), tokio::task::JoinError>> =
        futures_util::stream::iter(events)
            .map(|event| {
                let replayer = replayer.clone();
                tokio::spawn(async move {
                    let outcome = replayer.event(&event).await;
                    (event, outcome)
                })
            })
            .buffered(CONCURRENCY)
            .collect()
            .await;
    let mut report = ReplayReport {
        candidate: candidate.reference().to_string(),
        events: outcomes.len(),
        changed: 0,
        candidate_errors: 0,
        baseline_errors: 0,
        notes: Vec::new(),
        differences: Vec::new(),
    };
    for joined in outcomes {
        let (event, outcome) = joined.map_err(|e| {
            ReplayError::Invalid(format!("replaying an event stopped unexpectedly: {e}"))
        })?;
        report.candidate_errors += usize::from(outcome.candidate_failed);
        report.baseline_errors += usize::from(outcome.baseline_failed);
        if let Some(note) = outcome.note
            && !report.notes.contains(&note)
        {
            report.notes.push(note);
        }
        if !outcome.changes.is_empty() {
            report.changed += 1;
            report.differences.push(EventDifference {
                event_id: event.id,
                tenant: event.tenant,
                baseline: outcome.baseline,
                changes: outcome.changes,
            });
        }
    }
    Ok(report)
}

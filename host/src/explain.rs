//! Explanations: the ordered story of a delivery, notification or event, told from the trace
//! log together with the stored facts (deliveries, attempts, workflow runs); and the listing
//! of a tenant's events.
//!
//! A read view above everything: it writes nothing, and any module may be read here, so no
//! lower module has to know how its rows are shown.

use crate::deliveries::reads::{self as deliveries, AttemptRecord, DeliveryRecord, MAX_PAGE};
use crate::store::{self, StoreError};
use crate::traces::{self, TraceEntry, kind};
use serde::Serialize;
use sqlx::Row;
use std::fmt;

/// What `explain` was asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    Event,
    Notification,
    Delivery,
}

#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Explanation {
    pub subject: Subject,
    pub id: String,
    pub tenant: String,
    pub event_id: String,
    pub notifier_key: String,
    pub notifier_plugin: String,
    pub deliveries: Vec<DeliveryRecord>,
    pub attempts: Vec<AttemptRecord>,
    pub timeline: Vec<TraceEntry>,
    /// The workflow runs in the story: a notification's or a step delivery's run, or every
    /// run of an event.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub workflows: Vec<crate::workflows::RunRecord>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("no event, notification, delivery or workflow run has the id `{0}`")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ExplainError {
    fn from(e: sqlx::Error) -> Self {
        ExplainError::Store(e.into())
    }
}

/// An event as listed: what was triggered, and how much it fanned out.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventListing {
    pub id: String,
    pub tenant: String,
    pub notifier: String,
    pub created_at: String,
    pub notifications: i64,
    pub deliveries: i64,
}

/// A tenant's newest events first; `limit` is clamped to 1..=[`MAX_PAGE`].
pub async fn recent_events(
    db: &store::Db,
    tenant: &str,
    limit: i64,
) -> Result<Vec<EventListing>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT e.id, e.tenant, e.notifier_key, e.created_at,
                (SELECT COUNT(*) FROM notifications n WHERE n.event_id = e.id) AS notifications,
                (SELECT COUNT(*) FROM deliveries d WHERE d.event_id = e.id) AS deliveries
         FROM events e WHERE e.tenant = $1 ORDER BY e.created_at DESC, e.id DESC LIMIT {}",
        limit.clamp(1, MAX_PAGE)
    ))
    .bind(tenant)
    .fetch_all(db)
    .await?;
    Ok(rows
        .iter()
        .map(|r| EventListing {
            id: r.get("id"),
            tenant: r.get("tenant"),
            notifier: r.get("notifier_key"),
            created_at: r.get("created_at"),
            notifications: r.get("notifications"),
            deliveries: r.get("deliveries"),
        })
        .collect())
}

/// Orders a story by when each step happened. Rows are appended in id order, but not always
/// in time order: a job's commit appends steps it took earlier (the send-time policy check, the
/// build, the render, the attempt) with the times they were taken. The sort is stable, so
/// entries of the same instant (one statement's rows share it) keep their append order, the
/// order they were taken in; a time that does not parse keeps the place of the entry before it.
fn in_time_order(timeline: &mut Vec<TraceEntry>) {
    let mut last = None;
    let mut keyed: Vec<(Option<chrono::DateTime<chrono::Utc>>, TraceEntry)> = timeline
        .drain(..)
        .map(|t| {
            if let Ok(at) = store::parse_time(&t.at) {
                last = Some(at);
            }
            (last, t)
        })
        .collect();
    keyed.sort_by_key(|(at, _)| *at);
    timeline.extend(keyed.into_iter().map(|(_, t)| t));
}

/// What an id names: the subject, its event, and its notification (none for an event).
struct Found {
    subject: Subject,
    id: String,
    event_id: String,
    notification_id: Option<String>,
}

/// Finds what `id` is. A workflow run is explained as its notification, whose story is the
/// run's journey.
async fn find(db: &store::Db, id: &str) -> Result<Found, ExplainError> {
    let run_notification: Option<String> =
        sqlx::query_scalar("SELECT notification_id FROM workflow_runs WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await?;
    let (subject, id) = match run_notification {
        Some(n) => (Some(Subject::Notification), n),
        None => (None, id.to_string()),
    };
    let (subject, event_id, notification_id) =
        if let Some(d) = deliveries::delivery(db, &id).await? {
            (Subject::Delivery, d.event_id, Some(d.notification_id))
        } else if let Some(r) = sqlx::query("SELECT event_id FROM notifications WHERE id = $1")
            .bind(&id)
            .fetch_optional(db)
            .await?
        {
            (
                subject.unwrap_or(Subject::Notification),
                r.get("event_id"),
                Some(id.clone()),
            )
        } else if sqlx::query("SELECT id FROM events WHERE id = $1")
            .bind(&id)
            .fetch_optional(db)
            .await?
            .is_some()
        {
            (Subject::Event, id.clone(), None)
        } else {
            return Err(ExplainError::NotFound(id));
        };
    Ok(Found {
        subject,
        id,
        event_id,
        notification_id,
    })
}

impl Found {
    /// Whether a delivery is part of this story.
    fn tells_delivery(&self, journey: bool, d: &DeliveryRecord) -> bool {
        match self.subject {
            Subject::Delivery if journey => {
                Some(&d.notification_id) == self.notification_id.as_ref()
            }
            Subject::Delivery => d.id == self.id,
            Subject::Notification => Some(&d.notification_id) == self.notification_id.as_ref(),
            Subject::Event => true,
        }
    }

    /// Whether a step is part of this story. Event-level entries belong to every story;
    /// notification-level ones to their notification's deliveries; delivery-level ones only
    /// to their delivery.
    fn tells_step(&self, journey: bool, t: &TraceEntry) -> bool {
        let of_notification =
            t.notification_id.is_none() || t.notification_id == self.notification_id;
        match self.subject {
            Subject::Event => true,
            Subject::Notification => of_notification,
            Subject::Delivery if journey => of_notification,
            Subject::Delivery => {
                of_notification
                    && (t.delivery_id.is_none()
                        || t.delivery_id.as_deref() == Some(self.id.as_str()))
            }
        }
    }
}

/// The ordered story of a delivery, notification or event.
pub async fn explain(db: &store::Db, id: &str) -> Result<Explanation, ExplainError> {
    let found = find(db, id).await?;
    let event =
        sqlx::query("SELECT tenant, notifier_key, notifier_plugin FROM events WHERE id = $1")
            .bind(&found.event_id)
            .fetch_one(db)
            .await?;

    let run_ids: Vec<String> = match &found.notification_id {
        Some(n) => {
            sqlx::query_scalar("SELECT id FROM workflow_runs WHERE notification_id = $1")
                .bind(n)
                .fetch_all(db)
                .await?
        }
        None => {
            sqlx::query_scalar("SELECT id FROM workflow_runs WHERE event_id = $1 ORDER BY id")
                .bind(&found.event_id)
                .fetch_all(db)
                .await?
        }
    };
    // Every delivery of a workflow's notification is one of its steps: a step delivery is
    // explained with the whole journey.
    let journey = found.subject == Subject::Delivery && !run_ids.is_empty();
    let mut deliveries = deliveries::deliveries_of_event(db, &found.event_id).await?;
    deliveries.retain(|d| found.tells_delivery(journey, d));
    let mut workflows = Vec::with_capacity(run_ids.len());
    for run in &run_ids {
        workflows.extend(crate::workflows::runs::record(db, run).await?);
    }

    let mut timeline = traces::of_event(db, &found.event_id).await?;
    timeline.retain(|t| found.tells_step(journey, t));
    in_time_order(&mut timeline);

    let mut attempts = Vec::new();
    for d in &deliveries {
        attempts.extend(deliveries::attempts_of(db, &d.id).await?);
    }

    Ok(Explanation {
        subject: found.subject,
        id: found.id,
        tenant: event.get("tenant"),
        event_id: found.event_id,
        notifier_key: event.get("notifier_key"),
        notifier_plugin: event.get("notifier_plugin"),
        deliveries,
        attempts,
        timeline,
        workflows,
    })
}

impl fmt::Display for Explanation {
    /// The human form: what it is, where it ended, and the timeline that got it there.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let subject = match self.subject {
            Subject::Event => "event",
            Subject::Notification => "notification",
            Subject::Delivery => "delivery",
        };
        writeln!(f, "{subject} {}", self.id)?;
        writeln!(
            f,
            "  event {} (tenant {}), notifier {} planned by {}",
            self.event_id, self.tenant, self.notifier_key, self.notifier_plugin
        )?;
        for d in &self.deliveries {
            write!(
                f,
                "  delivery {} -> {} via {}: {}",
                d.id, d.recipient_id, d.channel, d.status
            )?;
            if let Some(r) = &d.status_reason {
                write!(f, " ({r})")?;
            }
            writeln!(f)?;
        }
        writeln!(f, "timeline:")?;
        for t in &self.timeline {
            write!(f, "  {}  {:<20}", t.at, t.kind)?;
            if let Some(a) = t.attempt {
                write!(f, " #{a}")?;
            }
            if let Some(r) = &t.reason {
                write!(f, " [{r}]")?;
            }
            match &t.detail {
                // A policy decision lists one rule after another: one line each reads better.
                Some(d) if t.kind == kind::POLICY_CHECKED => {
                    let mut rules = d.split("; ");
                    write!(f, " {}", rules.next().unwrap_or_default())?;
                    for rule in rules {
                        write!(f, "\n{:<50}{rule}", "")?;
                    }
                }
                Some(d) => write!(f, " {d}")?,
                None => {}
            }
            if let Some(p) = &t.plugin {
                write!(f, "  by {p}")?;
            }
            if (self.subject == Subject::Event || !self.workflows.is_empty())
                && let Some(d) = &t.delivery_id
            {
                write!(f, "  (delivery {})", &d[d.len().saturating_sub(12)..])?;
            }
            writeln!(f)?;
        }
        for run in &self.workflows {
            write!(f, "{run}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(
        at: &str,
        kind: &str,
        notification: Option<&str>,
        delivery: Option<&str>,
    ) -> TraceEntry {
        TraceEntry {
            at: at.into(),
            kind: kind.into(),
            reason: None,
            detail: None,
            plugin: None,
            attempt: None,
            notification_id: notification.map(str::to_string),
            delivery_id: delivery.map(str::to_string),
        }
    }

    #[test]
    fn steps_appended_late_go_back_to_when_they_happened() {
        let mut timeline = vec![
            step("2026-01-01T00:00:02.000Z", "a", None, None),
            step("2026-01-01T00:00:02.000Z", "b", None, None),
            step("2026-01-01T00:00:01.000Z", "c", None, None),
            step("not a time", "d", None, None),
        ];
        in_time_order(&mut timeline);
        let kinds: Vec<&str> = timeline.iter().map(|t| t.kind.as_str()).collect();
        // `c` happened first; `a` and `b` keep their append order; `d`'s time does not parse,
        // so it stays right after `c`, the entry appended before it.
        assert_eq!(kinds, ["c", "d", "a", "b"]);
    }

    #[test]
    fn a_delivery_story_holds_its_event_its_notification_and_itself() {
        let found = Found {
            subject: Subject::Delivery,
            id: "d1".into(),
            event_id: "e".into(),
            notification_id: Some("n1".into()),
        };
        let event = step("t", "event.received", None, None);
        let notification = step("t", "notification.created", Some("n1"), None);
        let mine = step("t", "attempt", Some("n1"), Some("d1"));
        let sibling = step("t", "attempt", Some("n1"), Some("d2"));
        let other = step("t", "notification.created", Some("n2"), None);
        let told = |journey| {
            [&event, &notification, &mine, &sibling, &other]
                .into_iter()
                .map(|t| found.tells_step(journey, t))
                .collect::<Vec<_>>()
        };
        assert_eq!(told(false), [true, true, true, false, false]);
        // A workflow step delivery is told with its whole journey.
        assert_eq!(told(true), [true, true, true, true, false]);
    }
}

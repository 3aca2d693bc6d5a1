//! A delivery's feedback, folded from all of its ledger events. The fold is a pure function of
//! the set of events (not of their arrival order), so a late or repeated webhook can only make
//! the projection more complete, never reorder it:
//! - a terminal latch (complained, bounced_hard, rejected, failed) wins over every progress
//!   event, whenever either arrived; of several latches the most severe is kept;
//! - otherwise the status is the furthest progress reached (accepted < deferred or
//!   bounced_soft < delivered < opened < clicked);
//! - first delivered/opened/clicked are the earliest times of those kinds (set once: a later
//!   event of the same kind cannot move them).

use crate::plugins::FeedbackKind;
use crate::store::{self, Conn, Db, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

/// What the ledger says about one delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Projection {
    pub delivery_id: String,
    pub status: FeedbackKind,
    pub last_event: FeedbackKind,
    pub last_event_at: String,
    pub first_delivered_at: Option<String>,
    pub first_opened_at: Option<String>,
    pub first_clicked_at: Option<String>,
    /// The terminal latch, once a bounce, complaint, rejection or failure arrived.
    pub terminal: Option<FeedbackKind>,
    pub terminal_at: Option<String>,
    pub events: i64,
}

/// One event as the fold sees it: kind, when it happened (the provider's time, else when it
/// was received) and its ledger id to break ties.
type Point = (FeedbackKind, DateTime<Utc>, String);

fn latch_severity(k: FeedbackKind) -> Option<u8> {
    match k {
        FeedbackKind::Complained => Some(4),
        FeedbackKind::BouncedHard => Some(3),
        FeedbackKind::Rejected => Some(2),
        FeedbackKind::Failed => Some(1),
        _ => None,
    }
}

fn progress(k: FeedbackKind) -> u8 {
    match k {
        FeedbackKind::Accepted => 1,
        FeedbackKind::Deferred | FeedbackKind::BouncedSoft => 2,
        FeedbackKind::Delivered => 3,
        FeedbackKind::Opened => 4,
        FeedbackKind::Clicked => 5,
        _ => 0,
    }
}

/// Folds a non-empty set of events.
fn fold(delivery_id: &str, points: &[Point]) -> Option<Projection> {
    let last = points.iter().max_by(|a, b| (a.1, &a.2).cmp(&(b.1, &b.2)))?;
    let terminal = points
        .iter()
        .filter_map(|p| latch_severity(p.0).map(|s| (s, p)))
        // Most severe; of equals, the earliest.
        .max_by(|(sa, a), (sb, b)| sa.cmp(sb).then((b.1, &b.2).cmp(&(a.1, &a.2))))
        .map(|(_, p)| p);
    let status = match terminal {
        Some(t) => t.0,
        None => points
            .iter()
            // Furthest progress; of equals (deferred vs bounced_soft), the latest.
            .max_by(|a, b| {
                progress(a.0)
                    .cmp(&progress(b.0))
                    .then((a.1, &a.2).cmp(&(b.1, &b.2)))
            })
            .map(|p| p.0)?,
    };
    let first = |kind: FeedbackKind| {
        points
            .iter()
            .filter(|p| p.0 == kind)
            .map(|p| p.1)
            .min()
            .map(store::time_text)
    };
    Some(Projection {
        delivery_id: delivery_id.to_string(),
        status,
        last_event: last.0,
        last_event_at: store::time_text(last.1),
        first_delivered_at: first(FeedbackKind::Delivered),
        first_opened_at: first(FeedbackKind::Opened),
        first_clicked_at: first(FeedbackKind::Clicked),
        terminal: terminal.map(|t| t.0),
        terminal_at: terminal.map(|t| store::time_text(t.1)),
        events: points.len() as i64,
    })
}

/// Folds the delivery's ledger again and stores the result.
pub(super) async fn refresh(
    conn: &mut Conn,
    tenant: &str,
    delivery_id: &str,
) -> Result<(), StoreError> {
    let rows = sqlx::query(
        "SELECT id, kind, occurred_at, received_at FROM feedback_events WHERE delivery_id = $1",
    )
    .bind(delivery_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut points = Vec::with_capacity(rows.len());
    for r in &rows {
        let kind: String = r.get("kind");
        let kind = FeedbackKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("feedback kind `{kind}`")))?;
        let at: Option<String> = r.get("occurred_at");
        let at = store::parse_time(at.as_deref().unwrap_or(&r.get::<String, _>("received_at")))?;
        points.push((kind, at, r.get::<String, _>("id")));
    }
    let Some(p) = fold(delivery_id, &points) else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO delivery_feedback (delivery_id, tenant, status, last_event, last_event_at, first_delivered_at,
                first_opened_at, first_clicked_at, terminal, terminal_at, events, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (delivery_id) DO UPDATE SET status = excluded.status, last_event = excluded.last_event,
                last_event_at = excluded.last_event_at, first_delivered_at = excluded.first_delivered_at,
                first_opened_at = excluded.first_opened_at, first_clicked_at = excluded.first_clicked_at,
                terminal = excluded.terminal, terminal_at = excluded.terminal_at, events = excluded.events,
                updated_at = excluded.updated_at",
    )
    .bind(delivery_id)
    .bind(tenant)
    .bind(p.status.as_str())
    .bind(p.last_event.as_str())
    .bind(&p.last_event_at)
    .bind(&p.first_delivered_at)
    .bind(&p.first_opened_at)
    .bind(&p.first_clicked_at)
    .bind(p.terminal.map(FeedbackKind::as_str))
    .bind(&p.terminal_at)
    .bind(p.events)
    .bind(store::time_text(store::now()))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The stored projection of a delivery in `tenant`, if any feedback reached it.
pub async fn projection(
    db: &Db,
    tenant: &str,
    delivery_id: &str,
) -> Result<Option<Projection>, StoreError> {
    let Some(r) = sqlx::query(
        "SELECT delivery_id, status, last_event, last_event_at, first_delivered_at, first_opened_at,
                first_clicked_at, terminal, terminal_at, events
         FROM delivery_feedback WHERE tenant = $1 AND delivery_id = $2",
    )
    .bind(tenant)
    .bind(delivery_id)
    .fetch_optional(db)
    .await?
    else {
        return Ok(None);
    };
    let kind = |col: &str| -> Result<Option<FeedbackKind>, StoreError> {
        let text: Option<String> = r.get(col);
        text.map(|t| {
            FeedbackKind::parse(&t).ok_or_else(|| StoreError::Corrupt(format!("{col} `{t}`")))
        })
        .transpose()
    };
    Ok(Some(Projection {
        delivery_id: r.get("delivery_id"),
        status: kind("status")?.expect("status is NOT NULL"),
        last_event: kind("last_event")?.expect("last_event is NOT NULL"),
        last_event_at: r.get("last_event_at"),
        first_delivered_at: r.get("first_delivered_at"),
        first_opened_at: r.get("first_opened_at"),
        first_clicked_at: r.get("first_clicked_at"),
        terminal: kind("terminal")?,
        terminal_at: r.get("terminal_at"),
        events: r.get("events"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use FeedbackKind as K;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn points(list: &[(K, i64)]) -> Vec<Point> {
        list.iter()
            .enumerate()
            .map(|(i, (k, s))| (*k, at(*s), format!("e{i}")))
            .collect()
    }

    /// Every order of the same events folds to the same projection.
    fn all_orders(list: &[(K, i64)]) -> Projection {
        let base = points(list);
        let expected = fold("d", &base).unwrap();
        let n = base.len();
        let mut idx: Vec<usize> = (0..n).collect();
        // Heap's algorithm, small n.
        fn permute(k: usize, idx: &mut Vec<usize>, base: &[Point], expected: &Projection) {
            if k == 1 {
                let order: Vec<Point> = idx.iter().map(|i| base[*i].clone()).collect();
                assert_eq!(&fold("d", &order).unwrap(), expected, "order {idx:?}");
                return;
            }
            for i in 0..k {
                permute(k - 1, idx, base, expected);
                let j = if k.is_multiple_of(2) { i } else { 0 };
                idx.swap(j, k - 1);
            }
        }
        permute(n, &mut idx, &base, &expected);
        expected
    }

    #[test]
    fn a_bounce_after_delivered_wins_and_a_late_delivered_does_not_undo_it() {
        let p = all_orders(&[(K::Accepted, 0), (K::Delivered, 5), (K::BouncedHard, 10)]);
        assert_eq!(p.status, K::BouncedHard);
        assert_eq!(p.terminal, Some(K::BouncedHard));
        assert_eq!(p.first_delivered_at, Some(store::time_text(at(5))));
        let p = all_orders(&[(K::BouncedHard, 1), (K::Delivered, 9)]);
        assert_eq!(p.status, K::BouncedHard);
        assert_eq!(p.last_event, K::Delivered);
    }

    #[test]
    fn progress_is_the_furthest_reached_and_first_times_are_set_once() {
        let p = all_orders(&[
            (K::Delivered, 2),
            (K::Opened, 8),
            (K::Opened, 4),
            (K::Accepted, 1),
            (K::Clicked, 9),
        ]);
        assert_eq!(p.status, K::Clicked);
        assert_eq!(p.terminal, None);
        assert_eq!(p.first_opened_at, Some(store::time_text(at(4))));
        assert_eq!(p.first_clicked_at, Some(store::time_text(at(9))));
        assert_eq!(p.events, 5);
    }

    #[test]
    fn a_complaint_outranks_a_bounce_and_soft_bounces_do_not_latch() {
        let p = all_orders(&[(K::BouncedHard, 1), (K::Complained, 3), (K::Delivered, 0)]);
        assert_eq!(p.terminal, Some(K::Complained));
        let p = all_orders(&[(K::BouncedSoft, 1), (K::Delivered, 3)]);
        assert_eq!(p.status, K::Delivered);
        assert_eq!(p.terminal, None);
    }
}

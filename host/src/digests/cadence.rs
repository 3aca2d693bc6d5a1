//! Recipient cadences: a recipient's own choice, per category, of how often their digests
//! come — `instant` (never held), `hourly`, `daily` at a local time, or `weekly` on a day at a
//! local time. A cadence overrides the window of whichever rule takes the recipient's held
//! deliveries of that category; the rule still decides *whether* they are digested and how
//! they group. Local times are read in the recipient's time zone (their settings, else the
//! tenant's default, else UTC) when a delivery joins its bucket.

use super::window::{self, Window};
use crate::store::{self, Conn, Db, StoreError};
use chrono::Weekday;
use chrono_tz::Tz;
use serde::Serialize;
use sqlx::Row;
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "cadence", rename_all = "snake_case")]
pub enum Cadence {
    /// Never held: sent at once.
    Instant,
    /// On the hour (UTC-aligned, which is local too in every whole-hour zone).
    Hourly,
    /// From one local time of day to the next.
    Daily { at_minute: u16 },
    /// From a local time on one weekday to the same a week later.
    Weekly {
        #[serde(serialize_with = "weekday_name")]
        weekday: Weekday,
        at_minute: u16,
    },
}

fn weekday_name<S: serde::Serializer>(d: &Weekday, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&d.to_string().to_lowercase())
}

#[derive(Debug, thiserror::Error)]
pub enum CadenceError {
    #[error("invalid cadence: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CadenceError {
    fn from(e: sqlx::Error) -> Self {
        CadenceError::Store(e.into())
    }
}

impl Cadence {
    /// From its parts as given on the command line or stored: `kind` is instant, hourly, daily
    /// or weekly; daily needs `at` (minute of the day), weekly `at` and `day`.
    pub fn parse(kind: &str, at: Option<i64>, day: Option<&str>) -> Result<Cadence, CadenceError> {
        let minute = |at: Option<i64>| -> Result<u16, CadenceError> {
            let at = at.ok_or_else(|| {
                CadenceError::Invalid(format!("cadence.at is required for a {kind} cadence"))
            })?;
            u16::try_from(at).ok().filter(|m| *m < 1440).ok_or_else(|| {
                CadenceError::Invalid(format!(
                    "cadence.at must be a minute of the day from 0 to 1439, got {at}"
                ))
            })
        };
        let unexpected = |what: &str| {
            CadenceError::Invalid(format!("cadence.{what} does not apply to a {kind} cadence"))
        };
        match kind {
            "instant" | "hourly" => {
                if at.is_some() {
                    return Err(unexpected("at"));
                }
                if day.is_some() {
                    return Err(unexpected("day"));
                }
                Ok(if kind == "instant" {
                    Cadence::Instant
                } else {
                    Cadence::Hourly
                })
            }
            "daily" => {
                if day.is_some() {
                    return Err(unexpected("day"));
                }
                Ok(Cadence::Daily {
                    at_minute: minute(at)?,
                })
            }
            "weekly" => {
                let day = day.ok_or_else(|| {
                    CadenceError::Invalid("cadence.day is required for a weekly cadence".into())
                })?;
                Ok(Cadence::Weekly {
                    weekday: window::parse_day(day).map_err(|_| {
                        CadenceError::Invalid(format!(
                            "cadence.day must be a weekday (mon, tue, … sun), got `{day}`"
                        ))
                    })?,
                    at_minute: minute(at)?,
                })
            }
            other => Err(CadenceError::Invalid(format!(
                "cadence must be instant, hourly, daily or weekly, got `{other}`"
            ))),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Cadence::Instant => "instant",
            Cadence::Hourly => "hourly",
            Cadence::Daily { .. } => "daily",
            Cadence::Weekly { .. } => "weekly",
        }
    }

    /// The window that replaces the rule's, in the recipient's zone; `None` for instant.
    pub fn window(&self, zone: Tz) -> Option<Window> {
        match *self {
            Cadence::Instant => None,
            Cadence::Hourly => Some(Window::fixed(60).expect("60 minutes is a valid window")),
            Cadence::Daily { at_minute } => Some(Window::Boundary {
                minute_of_day: at_minute,
                zone,
            }),
            Cadence::Weekly { weekday, at_minute } => Some(Window::Weekly {
                weekday,
                minute_of_day: at_minute,
                zone,
            }),
        }
    }

    fn parts(&self) -> (Option<i64>, Option<String>) {
        match self {
            Cadence::Instant | Cadence::Hourly => (None, None),
            Cadence::Daily { at_minute } => (Some(i64::from(*at_minute)), None),
            Cadence::Weekly { weekday, at_minute } => (
                Some(i64::from(*at_minute)),
                Some(weekday.to_string().to_lowercase()),
            ),
        }
    }
}

/// One recipient's cadence for one category.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CadenceSetting {
    pub tenant: String,
    pub recipient_id: String,
    pub category: String,
    #[serde(flatten)]
    pub cadence: Cadence,
    pub updated_at: String,
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<CadenceSetting, StoreError> {
    let kind: String = r.get("cadence");
    let day: Option<String> = r.get("weekday");
    let cadence = Cadence::parse(&kind, r.get("at_minute"), day.as_deref())
        .map_err(|e| StoreError::Corrupt(format!("stored digest cadence: {e}")))?;
    Ok(CadenceSetting {
        tenant: r.get("tenant"),
        recipient_id: r.get("recipient_id"),
        category: r.get("category"),
        cadence,
        updated_at: r.get("updated_at"),
    })
}

/// Sets (or replaces) a recipient's cadence for a category.
pub async fn set(
    db: &Db,
    tenant: &str,
    recipient_id: &str,
    category: &str,
    cadence: Cadence,
) -> Result<CadenceSetting, CadenceError> {
    // The rules every edge shares (`crate::tenants::check_id`, `crate::text::identifier`).
    crate::tenants::check_id(tenant).map_err(|e| CadenceError::Invalid(e.to_string()))?;
    for (field, value) in [("recipient", recipient_id), ("category", category)] {
        crate::text::identifier(field, value).map_err(|e| CadenceError::Invalid(e.to_string()))?;
    }
    let (at, day) = cadence.parts();
    let now = store::time_text(store::now());
    sqlx::query(
        "INSERT INTO digest_cadences (tenant, recipient_id, category, cadence, at_minute, weekday, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (tenant, recipient_id, category)
         DO UPDATE SET cadence = $4, at_minute = $5, weekday = $6, updated_at = $7",
    )
    .bind(tenant)
    .bind(recipient_id)
    .bind(category)
    .bind(cadence.kind())
    .bind(at)
    .bind(day)
    .bind(&now)
    .execute(db)
    .await?;
    Ok(CadenceSetting {
        tenant: tenant.into(),
        recipient_id: recipient_id.into(),
        category: category.into(),
        cadence,
        updated_at: now,
    })
}

/// Removes a recipient's cadence for a category (their rules' windows apply again); `false`
/// when there was none.
pub async fn clear(
    db: &Db,
    tenant: &str,
    recipient_id: &str,
    category: &str,
) -> Result<bool, CadenceError> {
    let done = sqlx::query(
        "DELETE FROM digest_cadences WHERE tenant = $1 AND recipient_id = $2 AND category = $3",
    )
    .bind(tenant)
    .bind(recipient_id)
    .bind(category)
    .execute(db)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// A recipient's cadences, by category.
pub async fn list(
    db: &Db,
    tenant: &str,
    recipient_id: &str,
) -> Result<Vec<CadenceSetting>, CadenceError> {
    let rows = sqlx::query(
        "SELECT * FROM digest_cadences WHERE tenant = $1 AND recipient_id = $2 ORDER BY category",
    )
    .bind(tenant)
    .bind(recipient_id)
    .fetch_all(db)
    .await?;
    Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
}

/// The cadences of these recipients of one tenant, by (recipient, category): read once per
/// trigger before its transaction, like the policy inputs.
pub(crate) async fn load_many(
    conn: &mut Conn,
    tenant: &str,
    recipient_ids: &[&str],
) -> Result<HashMap<(String, String), Cadence>, StoreError> {
    let mut out = HashMap::new();
    for chunk in recipient_ids.chunks(500) {
        let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT * FROM digest_cadences WHERE tenant = $1 AND recipient_id IN ({})",
            marks.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(tenant);
        for id in chunk {
            q = q.bind(*id);
        }
        for r in q.fetch_all(&mut *conn).await? {
            let s = from_row(&r)?;
            out.insert((s.recipient_id, s.category), s.cadence);
        }
    }
    Ok(out)
}

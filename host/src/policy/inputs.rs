//! Policy inputs: preferences, recipient settings and suppressions, per tenant.
//!
//! A row whose recipient is [`TENANT_DEFAULT`] (`*`) holds the tenant's default; a recipient's
//! own row overrides it (preferences per scope, settings field by field, caps and cooldowns per
//! key). A missing preference means enabled. Every write validates everything first and then
//! writes in one transaction, so a bad value leaves what was stored untouched.

use super::Severity;
use super::quiet_hours::{self, QuietHours, QuietHoursError};
use crate::content::Channel;
use crate::store::{self, Conn, Db, StoreError};
use crate::time_bounds::{self, BoundsError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::collections::BTreeMap;
use std::fmt;

/// The recipient id of a tenant's default rows.
pub const TENANT_DEFAULT: &str = "*";

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A value was rejected; nothing was written.
    #[error("invalid {field}: {problem}")]
    Invalid { field: String, problem: String },
    #[error(transparent)]
    QuietHours(#[from] QuietHoursError),
    #[error("tenant `{tenant}` has no suppression with the id `{id}`")]
    NotFound { tenant: String, id: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for PolicyError {
    fn from(e: sqlx::Error) -> Self {
        PolicyError::Store(e.into())
    }
}

fn invalid(field: &str, problem: impl Into<String>) -> PolicyError {
    PolicyError::Invalid {
        field: field.to_string(),
        problem: problem.into(),
    }
}

/// A value out of [`time_bounds`]' range, as the field it was given as.
impl From<BoundsError> for PolicyError {
    fn from(e: BoundsError) -> Self {
        let field = e.field().to_string();
        let problem = e.to_string();
        // The bound's message starts with the field; the error adds it again.
        let problem = problem
            .strip_prefix(&field)
            .map_or(problem.as_str(), str::trim_start)
            .to_string();
        PolicyError::Invalid { field, problem }
    }
}

/// The rules every edge shares: a tenant's name ([`crate::tenants::check_id`]), any other
/// name or id as an identifier ([`crate::text::identifier`]).
fn check_name(field: &str, value: &str) -> Result<(), PolicyError> {
    let checked = match field {
        "tenant" => crate::tenants::check_id(value).map_err(|e| match e {
            crate::tenants::TenantError::Invalid(problem) => problem,
            e => e.to_string(),
        }),
        _ => crate::text::identifier(field, value).map_err(|e| e.problem.to_string()),
    };
    checked.map_err(|problem| invalid(field, problem))
}

/// What a preference is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrefScope {
    Channel(Channel),
    Category(String),
    Notifier(String),
    /// One notifier on one channel.
    NotifierChannel(String, Channel),
}

impl PrefScope {
    pub fn scope(&self) -> &'static str {
        match self {
            PrefScope::Channel(_) => "channel",
            PrefScope::Category(_) => "category",
            PrefScope::Notifier(_) => "notifier",
            PrefScope::NotifierChannel(..) => "notifier_channel",
        }
    }

    pub fn target(&self) -> String {
        match self {
            PrefScope::Channel(c) => c.as_str().to_string(),
            PrefScope::Category(c) => c.clone(),
            PrefScope::Notifier(n) => n.clone(),
            PrefScope::NotifierChannel(n, c) => format!("{n}/{}", c.as_str()),
        }
    }

    fn validate(&self) -> Result<(), PolicyError> {
        match self {
            PrefScope::Channel(_) => Ok(()),
            PrefScope::Category(c) => check_name("category", c),
            PrefScope::Notifier(n) | PrefScope::NotifierChannel(n, _) => {
                check_name("notifier", n)?;
                if n.contains('/') {
                    return Err(invalid("notifier", "must not contain `/`"));
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for PrefScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrefScope::Channel(c) => write!(f, "channel {c}"),
            PrefScope::Category(c) => write!(f, "category {c}"),
            PrefScope::Notifier(n) => write!(f, "notifier {n}"),
            PrefScope::NotifierChannel(n, c) => write!(f, "notifier {n} on {c}"),
        }
    }
}

/// One stored preference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Preference {
    /// `*` for the tenant's default.
    pub recipient_id: String,
    pub scope: String,
    pub target: String,
    pub enabled: bool,
    pub updated_at: String,
}

/// Sets (`Some`) or clears (`None`, back to the default) one preference of a recipient, or of
/// the tenant when `recipient_id` is `*`.
#[tracing::instrument(skip(db))]
pub async fn set_preference(
    db: &Db,
    tenant: &str,
    recipient_id: &str,
    scope: &PrefScope,
    enabled: Option<bool>,
) -> Result<(), PolicyError> {
    let mut conn = db.acquire().await?;
    set_preference_in(&mut conn, tenant, recipient_id, scope, enabled).await
}

/// [`set_preference`] inside the caller's transaction (a one-click unsubscribe records the
/// preference and its explanation together).
pub(crate) async fn set_preference_in(
    conn: &mut store::Conn,
    tenant: &str,
    recipient_id: &str,
    scope: &PrefScope,
    enabled: Option<bool>,
) -> Result<(), PolicyError> {
    check_name("tenant", tenant)?;
    check_name("recipient", recipient_id)?;
    scope.validate()?;
    let target = scope.target();
    match enabled {
        Some(on) => {
            sqlx::query(
                "INSERT INTO preferences (tenant, recipient_id, scope, target, enabled, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (tenant, recipient_id, scope, target)
                 DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at",
            )
            .bind(tenant)
            .bind(recipient_id)
            .bind(scope.scope())
            .bind(&target)
            .bind(on as i64)
            .bind(store::time_text(store::now()))
            .execute(&mut *conn)
            .await?;
        }
        None => {
            sqlx::query(
                "DELETE FROM preferences WHERE tenant = $1 AND recipient_id = $2 AND scope = $3 AND target = $4",
            )
            .bind(tenant)
            .bind(recipient_id)
            .bind(scope.scope())
            .bind(&target)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

/// The stored preferences of a recipient (or of the tenant, for `*`), by scope and target.
pub async fn preferences(
    db: &Db,
    tenant: &str,
    recipient_id: &str,
) -> Result<Vec<Preference>, PolicyError> {
    let rows = sqlx::query(
        "SELECT recipient_id, scope, target, enabled, updated_at FROM preferences
         WHERE tenant = $1 AND recipient_id = $2 ORDER BY scope, target",
    )
    .bind(tenant)
    .bind(recipient_id)
    .fetch_all(db)
    .await?;
    Ok(rows
        .iter()
        .map(|r| Preference {
            recipient_id: r.get("recipient_id"),
            scope: r.get("scope"),
            target: r.get("target"),
            enabled: r.get::<i64, _>("enabled") != 0,
            updated_at: r.get("updated_at"),
        })
        .collect())
}

/// At most `max` deliveries on a channel within any `window_secs`-long window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Cap {
    pub max: u32,
    pub window_secs: u64,
}

impl Cap {
    /// Rejects a cap that could never let anything through, or whose window is under a
    /// second or over [`time_bounds::MAX_SPAN_SECS`].
    pub fn new(max: i64, window_secs: i64) -> Result<Cap, PolicyError> {
        if max <= 0 {
            return Err(invalid("cap.max", format!("must be at least 1, got {max}")));
        }
        let window_secs = time_bounds::span_secs("cap.window", window_secs, 1)?;
        Ok(Cap {
            max: u32::try_from(max).map_err(|_| {
                invalid(
                    "cap.max",
                    format!("must be at most {}, got {max}", u32::MAX),
                )
            })?,
            window_secs: window_secs as u64,
        })
    }
}

/// A recipient's settings (or the tenant's defaults). Unset fields fall back to the tenant's
/// defaults, then to: UTC, no quiet hours, no severity floor, no caps, no cooldowns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Settings {
    pub time_zone: Option<String>,
    /// Local minutes of day, both inclusive.
    pub quiet_start: Option<u16>,
    pub quiet_end: Option<u16>,
    pub severity_floor: Option<Severity>,
    pub caps: BTreeMap<Channel, Cap>,
    /// Seconds per notifier key; `*` applies to every notifier without its own.
    pub cooldowns: BTreeMap<String, u64>,
    pub updated_at: Option<String>,
}

impl Settings {
    /// These settings over `defaults`: a field set here wins, a map entry here wins.
    pub fn over(&self, defaults: &Settings) -> Settings {
        let mut caps = defaults.caps.clone();
        caps.extend(self.caps.iter().map(|(k, v)| (*k, *v)));
        let mut cooldowns = defaults.cooldowns.clone();
        cooldowns.extend(self.cooldowns.iter().map(|(k, v)| (k.clone(), *v)));
        let quiet = if self.quiet_start.is_some() {
            (self.quiet_start, self.quiet_end)
        } else {
            (defaults.quiet_start, defaults.quiet_end)
        };
        Settings {
            time_zone: self
                .time_zone
                .clone()
                .or_else(|| defaults.time_zone.clone()),
            quiet_start: quiet.0,
            quiet_end: quiet.1,
            severity_floor: self.severity_floor.or(defaults.severity_floor),
            caps,
            cooldowns,
            updated_at: self
                .updated_at
                .clone()
                .or_else(|| defaults.updated_at.clone()),
        }
    }

    /// The zone to read quiet hours in.
    pub fn zone(&self) -> chrono_tz::Tz {
        self.time_zone
            .as_deref()
            .and_then(|z| z.parse().ok())
            .unwrap_or(chrono_tz::UTC)
    }

    pub fn quiet_hours(&self) -> Option<QuietHours> {
        match (self.quiet_start, self.quiet_end) {
            (Some(s), Some(e)) => QuietHours::new(s, e).ok(),
            _ => None,
        }
    }

    /// The cooldown for a notifier, its own or the `*` one.
    pub fn cooldown_for(&self, notifier: &str) -> Option<u64> {
        self.cooldowns
            .get(notifier)
            .or_else(|| self.cooldowns.get("*"))
            .copied()
    }
}

/// A change to settings: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct SettingsPatch {
    pub time_zone: Option<Option<String>>,
    /// Start and end minute, both inclusive.
    pub quiet_hours: Option<Option<(i64, i64)>>,
    pub severity_floor: Option<Option<Severity>>,
    pub caps: Vec<(Channel, Option<Cap>)>,
    /// Seconds; `None` removes the notifier's cooldown.
    pub cooldowns: Vec<(String, Option<i64>)>,
}

impl SettingsPatch {
    pub fn is_empty(&self) -> bool {
        self.time_zone.is_none()
            && self.quiet_hours.is_none()
            && self.severity_floor.is_none()
            && self.caps.is_empty()
            && self.cooldowns.is_empty()
    }
}

/// Applies a patch to a recipient's settings (or the tenant's, for `*`). Every value is
/// checked before anything is written; returns the stored result.
#[tracing::instrument(skip(db, patch))]
pub async fn set_settings(
    db: &Db,
    tenant: &str,
    recipient_id: &str,
    patch: &SettingsPatch,
) -> Result<Settings, PolicyError> {
    check_name("tenant", tenant)?;
    check_name("recipient", recipient_id)?;
    if let Some(Some(zone)) = &patch.time_zone {
        quiet_hours::parse_zone(zone)?;
    }
    let quiet = match patch.quiet_hours {
        Some(Some((start, end))) => {
            let minute = |field: &str, v: i64| {
                u16::try_from(v).ok().filter(|m| *m < 1440).ok_or_else(|| {
                    invalid(
                        field,
                        format!("must be a minute of the day 0..=1439, got {v}"),
                    )
                })
            };
            let (s, e) = (
                minute("quiet_hours.start", start)?,
                minute("quiet_hours.end", end)?,
            );
            QuietHours::new(s, e)?;
            Some(Some((s, e)))
        }
        Some(None) => Some(None),
        None => None,
    };
    let mut cooldowns = Vec::with_capacity(patch.cooldowns.len());
    for (notifier, secs) in &patch.cooldowns {
        if notifier != "*" {
            check_name("cooldown notifier", notifier)?;
        }
        let secs = match secs {
            Some(s) => {
                Some(time_bounds::span_secs(&format!("cooldowns.{notifier}"), *s, 1)? as u64)
            }
            None => None,
        };
        cooldowns.push((notifier.clone(), secs));
    }

    let now = store::time_text(store::now());
    let mut tx = db.begin().await?;
    // Insert first: from here on this transaction owns the row (SQLite's write lock,
    // PostgreSQL's row lock), so two patches at once cannot lose one another's fields.
    sqlx::query(
        "INSERT INTO recipient_settings (tenant, recipient_id, caps, cooldowns, updated_at)
         VALUES ($1, $2, '{}', '{}', $3) ON CONFLICT (tenant, recipient_id) DO NOTHING",
    )
    .bind(tenant)
    .bind(recipient_id)
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    let lock = match store::backend(db) {
        store::Backend::Postgres => " FOR UPDATE",
        store::Backend::Sqlite => "",
    };
    let mut current = read_settings(&mut tx, tenant, recipient_id, lock)
        .await?
        .unwrap_or_default();
    if let Some(zone) = &patch.time_zone {
        current.time_zone = zone.clone();
    }
    if let Some(q) = quiet {
        current.quiet_start = q.map(|q| q.0);
        current.quiet_end = q.map(|q| q.1);
    }
    if let Some(floor) = patch.severity_floor {
        current.severity_floor = floor;
    }
    for (channel, cap) in &patch.caps {
        match cap {
            Some(c) => current.caps.insert(*channel, *c),
            None => current.caps.remove(channel),
        };
    }
    for (notifier, secs) in cooldowns {
        match secs {
            Some(s) => current.cooldowns.insert(notifier, s),
            None => current.cooldowns.remove(&notifier),
        };
    }
    current.updated_at = Some(now.clone());
    sqlx::query(
        "UPDATE recipient_settings SET time_zone = $1, quiet_start = $2, quiet_end = $3,
                severity_floor = $4, caps = $5, cooldowns = $6, updated_at = $7
         WHERE tenant = $8 AND recipient_id = $9",
    )
    .bind(&current.time_zone)
    .bind(current.quiet_start.map(i64::from))
    .bind(current.quiet_end.map(i64::from))
    .bind(current.severity_floor.map(Severity::as_str))
    .bind(to_json(&current.caps)?)
    .bind(to_json(&current.cooldowns)?)
    .bind(&now)
    .bind(tenant)
    .bind(recipient_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(current)
}

/// A settings map as its JSON column.
fn to_json<T: Serialize>(value: &T) -> Result<String, PolicyError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()).into())
}

/// A recipient's own stored settings (not merged with the tenant's defaults).
pub async fn settings(db: &Db, tenant: &str, recipient_id: &str) -> Result<Settings, PolicyError> {
    let mut conn = db.acquire().await?;
    Ok(read_settings(&mut conn, tenant, recipient_id, "")
        .await?
        .unwrap_or_default())
}

/// What applies to a recipient: their own settings over the tenant's defaults.
pub async fn effective_settings(
    db: &Db,
    tenant: &str,
    recipient_id: &str,
) -> Result<Settings, PolicyError> {
    let own = settings(db, tenant, recipient_id).await?;
    let defaults = settings(db, tenant, TENANT_DEFAULT).await?;
    Ok(own.over(&defaults))
}

async fn read_settings(
    conn: &mut Conn,
    tenant: &str,
    recipient_id: &str,
    lock: &str,
) -> Result<Option<Settings>, PolicyError> {
    let sql = format!(
        "SELECT time_zone, quiet_start, quiet_end, severity_floor, caps, cooldowns, updated_at
         FROM recipient_settings WHERE tenant = $1 AND recipient_id = $2{lock}"
    );
    let Some(r) = sqlx::query(&sql)
        .bind(tenant)
        .bind(recipient_id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(settings_from_columns(
        r.get("time_zone"),
        r.get("quiet_start"),
        r.get("quiet_end"),
        r.get("severity_floor"),
        r.get("caps"),
        r.get("cooldowns"),
        r.get("updated_at"),
    )?))
}

/// Settings from their stored columns (shared with the decision's one-query load).
pub(super) fn settings_from_columns(
    time_zone: Option<String>,
    quiet_start: Option<i64>,
    quiet_end: Option<i64>,
    severity_floor: Option<String>,
    caps: Option<String>,
    cooldowns: Option<String>,
    updated_at: Option<String>,
) -> Result<Settings, StoreError> {
    let corrupt = |what: &str, e: &dyn fmt::Display| StoreError::Corrupt(format!("{what}: {e}"));
    Ok(Settings {
        time_zone,
        quiet_start: quiet_start.map(|m| m as u16),
        quiet_end: quiet_end.map(|m| m as u16),
        severity_floor: severity_floor
            .map(|s| s.parse())
            .transpose()
            .map_err(|e| corrupt("severity_floor", &e))?,
        caps: serde_json::from_str(caps.as_deref().unwrap_or("{}"))
            .map_err(|e| corrupt("caps", &e))?,
        cooldowns: serde_json::from_str(cooldowns.as_deref().unwrap_or("{}"))
            .map_err(|e| corrupt("cooldowns", &e))?,
        updated_at,
    })
}

/// Why an address or a recipient must not be sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SuppressionReason {
    Bounce,
    Complaint,
    Manual,
    Unsubscribe,
}

impl SuppressionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionReason::Bounce => "bounce",
            SuppressionReason::Complaint => "complaint",
            SuppressionReason::Manual => "manual",
            SuppressionReason::Unsubscribe => "unsubscribe",
        }
    }
}

impl std::str::FromStr for SuppressionReason {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "bounce" => SuppressionReason::Bounce,
            "complaint" => SuppressionReason::Complaint,
            "manual" => SuppressionReason::Manual,
            "unsubscribe" => SuppressionReason::Unsubscribe,
            other => {
                return Err(invalid(
                    "reason",
                    format!("`{other}` is not one of bounce, complaint, manual, unsubscribe"),
                ));
            }
        })
    }
}

/// What a suppression stops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SuppressionTarget {
    /// An email address or phone number, on every channel that sends to it.
    Address(String),
    /// One recipient on one channel.
    Recipient { id: String, channel: Channel },
}

/// Email addresses compare without case; phone numbers without spaces, dashes or brackets.
pub fn normalise_address(address: &str) -> String {
    let a = address.trim();
    if a.contains('@') {
        a.to_lowercase()
    } else {
        a.chars()
            .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
            .collect()
    }
}

/// One stored suppression.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Suppression {
    pub id: String,
    pub tenant: String,
    pub address: Option<String>,
    pub recipient_id: Option<String>,
    pub channel: Option<String>,
    pub reason: String,
    pub note: Option<String>,
    pub expires_at: Option<String>,
    pub created_at: String,
}

impl Suppression {
    /// What it stops, for messages.
    pub fn describe(&self) -> String {
        let what = match (&self.address, &self.recipient_id, &self.channel) {
            (Some(a), _, _) => format!("address {a}"),
            (None, Some(r), Some(c)) => format!("recipient {r} on {c}"),
            _ => "?".to_string(),
        };
        let until = self
            .expires_at
            .as_ref()
            .map(|t| format!(" until {t}"))
            .unwrap_or_default();
        format!("{what} suppressed ({}{until}, {})", self.reason, self.id)
    }
}

/// Adds a suppression, or updates the reason, note and expiry of the same one.
#[tracing::instrument(skip(db))]
pub async fn add_suppression(
    db: &Db,
    tenant: &str,
    target: &SuppressionTarget,
    reason: SuppressionReason,
    note: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<Suppression, PolicyError> {
    let mut conn = db.acquire().await?;
    add_suppression_in(&mut conn, tenant, target, reason, note, expires_at).await
}

/// [`add_suppression`] inside the caller's transaction (feedback suppresses the address of a
/// hard bounce in the transaction that records the bounce).
pub(crate) async fn add_suppression_in(
    conn: &mut store::Conn,
    tenant: &str,
    target: &SuppressionTarget,
    reason: SuppressionReason,
    note: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<Suppression, PolicyError> {
    check_name("tenant", tenant)?;
    if let Some(note) = note {
        crate::text::free_text("note", note).map_err(|e| invalid("note", e.problem.to_string()))?;
    }
    let now = store::now();
    if let Some(at) = expires_at {
        if at <= now {
            return Err(invalid(
                "expires_at",
                format!("{} is not in the future", store::time_text(at)),
            ));
        }
        // Stored as text and compared as text: a time past year 9999 would sort before today.
        time_bounds::instant("expires_at", at, now)?;
    }
    let (subject, address, recipient_id, channel) = match target {
        SuppressionTarget::Address(a) => {
            let a = normalise_address(a);
            check_name("address", &a)?;
            (format!("address:{a}"), Some(a), None, None)
        }
        SuppressionTarget::Recipient { id, channel } => {
            check_name("recipient", id)?;
            (
                format!("recipient:{id}/{}", channel.as_str()),
                None,
                Some(id.clone()),
                Some(channel.as_str().to_string()),
            )
        }
    };
    sqlx::query(
        "INSERT INTO suppressions (id, tenant, subject, address, recipient_id, channel, reason, note, expires_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (tenant, subject) DO UPDATE SET reason = excluded.reason, note = excluded.note,
                expires_at = excluded.expires_at",
    )
    .bind(store::new_id())
    .bind(tenant)
    .bind(&subject)
    .bind(&address)
    .bind(&recipient_id)
    .bind(&channel)
    .bind(reason.as_str())
    .bind(note)
    .bind(expires_at.map(store::time_text))
    .bind(store::time_text(now))
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query(&format!(
        "{SUPPRESSION_COLUMNS} WHERE tenant = $1 AND subject = $2"
    ))
    .bind(tenant)
    .bind(&subject)
    .fetch_one(&mut *conn)
    .await?;
    Ok(suppression_from_row(&row))
}

const SUPPRESSION_COLUMNS: &str = "SELECT id, tenant, address, recipient_id, channel, reason, note, expires_at, created_at FROM suppressions";

pub(super) fn suppression_from_row(r: &sqlx::any::AnyRow) -> Suppression {
    Suppression {
        id: r.get("id"),
        tenant: r.get("tenant"),
        address: r.get("address"),
        recipient_id: r.get("recipient_id"),
        channel: r.get("channel"),
        reason: r.get("reason"),
        note: r.get("note"),
        expires_at: r.get("expires_at"),
        created_at: r.get("created_at"),
    }
}

/// A tenant's suppressions, newest first; expired ones only when asked for.
pub async fn suppressions(
    db: &Db,
    tenant: &str,
    include_expired: bool,
) -> Result<Vec<Suppression>, PolicyError> {
    let rows = sqlx::query(&format!(
        "{SUPPRESSION_COLUMNS} WHERE tenant = $1 AND ($2 = 1 OR expires_at IS NULL OR expires_at > $3)
         ORDER BY created_at DESC, id DESC"
    ))
    .bind(tenant)
    .bind(include_expired as i64)
    .bind(store::time_text(store::now()))
    .fetch_all(db)
    .await?;
    Ok(rows.iter().map(suppression_from_row).collect())
}

/// Removes a suppression by id, within its tenant only.
pub async fn remove_suppression(db: &Db, tenant: &str, id: &str) -> Result<(), PolicyError> {
    let done = sqlx::query("DELETE FROM suppressions WHERE tenant = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(db)
        .await?;
    if done.rows_affected() == 0 {
        return Err(PolicyError::NotFound {
            tenant: tenant.to_string(),
            id: id.to_string(),
        });
    }
    Ok(())
}

//! Digest rules: which held deliveries a rule takes, how it groups them and over which window.
//!
//! A rule is identified by a stable key and a version. Upserting a (key, version) that exists
//! with the same content changes nothing; with different content it is refused, naming the
//! fields that differ: a published version is immutable, because open buckets were cut by it.
//! A change is a new version, and lookups use each key's highest version.
//!
//! Matching a held delivery ([`find_matching`]): among the tenant's rules on the delivery's
//! channel whose every stated match (notifier key, category, digest key) equals the
//! delivery's, the most specific wins — a digest-key match counts 4, a notifier match 2, a
//! category match 1 — and a tie goes to the rule whose key sorts first.

use super::window::{Window, WindowError};
use crate::content::Channel;
use crate::store::{self, Db, StoreError};
use serde::Serialize;
use sqlx::Row;
use std::fmt;
use std::str::FromStr;

/// What a rule's held deliveries are grouped by inside one recipient's bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Notifier,
    Category,
    DigestKey,
}

impl GroupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Notifier => "notifier",
            GroupBy::Category => "category",
            GroupBy::DigestKey => "digest_key",
        }
    }
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GroupBy {
    type Err = RuleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "notifier" => Ok(GroupBy::Notifier),
            "category" => Ok(GroupBy::Category),
            "digest_key" | "digest-key" => Ok(GroupBy::DigestKey),
            other => Err(RuleError::Invalid {
                field: "group_by",
                problem: format!("expected notifier, category or digest_key, got `{other}`"),
            }),
        }
    }
}

/// What a rule says; everything an upsert writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleSpec {
    pub key: String,
    pub version: i64,
    pub channel: Channel,
    /// Matches; `None` matches anything.
    pub notifier_key: Option<String>,
    pub category: Option<String>,
    pub digest_key: Option<String>,
    pub group_by: GroupBy,
    #[serde(serialize_with = "window_text")]
    pub window: Window,
    /// Closes a bucket early when it holds this many items.
    pub max_items: Option<i64>,
    /// Send the first item of a window at once and digest the rest.
    pub first_now: bool,
}

fn window_text<S: serde::Serializer>(w: &Window, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&w.describe())
}

/// A stored rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DigestRule {
    pub id: String,
    pub tenant: String,
    #[serde(flatten)]
    pub spec: RuleSpec,
    pub created_at: String,
}

/// The most items a bucket may be limited to.
pub const MAX_ITEMS_LIMIT: i64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("invalid {field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    #[error(transparent)]
    Window(#[from] WindowError),
    #[error(
        "digest rule `{key}` version {version} is published and cannot change ({}); upsert it as a new version",
        differs.join(", ")
    )]
    Immutable {
        key: String,
        version: i64,
        /// The fields that differ from the stored version.
        differs: Vec<&'static str>,
    },
    #[error("tenant `{tenant}` has no digest rule `{key}`{}", version.map(|v| format!(" version {v}")).unwrap_or_default())]
    NotFound {
        tenant: String,
        key: String,
        version: Option<i64>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RuleError {
    fn from(e: sqlx::Error) -> Self {
        RuleError::Store(e.into())
    }
}

/// Whether an upsert wrote a new version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Upserted {
    Created,
    /// The same content was already published under this (key, version).
    Unchanged,
}

fn invalid(field: &'static str, problem: impl Into<String>) -> RuleError {
    RuleError::Invalid {
        field,
        problem: problem.into(),
    }
}

/// Keys and match values: short, printable, no surrounding space.
fn check_name(field: &'static str, value: &str) -> Result<(), RuleError> {
    if value.is_empty() || value.len() > 200 {
        return Err(invalid(field, "must be 1 to 200 characters"));
    }
    if value.trim() != value || value.chars().any(char::is_control) {
        return Err(invalid(
            field,
            format!("`{value}` has surrounding space or a control character"),
        ));
    }
    Ok(())
}

impl RuleSpec {
    /// Every field checked; the error names the first that is wrong.
    pub fn validate(&self) -> Result<(), RuleError> {
        check_name("key", &self.key)?;
        if self.version < 1 {
            return Err(invalid(
                "version",
                format!("must be at least 1, got {}", self.version),
            ));
        }
        for (field, value) in [
            ("notifier_key", &self.notifier_key),
            ("category", &self.category),
            ("digest_key", &self.digest_key),
        ] {
            if let Some(v) = value {
                check_name(field, v)?;
            }
        }
        if let Some(n) = self.max_items
            && !(2..=MAX_ITEMS_LIMIT).contains(&n)
        {
            return Err(invalid(
                "max_items",
                format!("must be 2 to {MAX_ITEMS_LIMIT}, got {n}"),
            ));
        }
        Ok(())
    }

    /// The fields in which `self` and `other` differ (the key and version aside).
    fn differences(&self, other: &RuleSpec) -> Vec<&'static str> {
        let mut d = Vec::new();
        let mut check = |field, same: bool| {
            if !same {
                d.push(field)
            }
        };
        check("channel", self.channel == other.channel);
        check("notifier_key", self.notifier_key == other.notifier_key);
        check("category", self.category == other.category);
        check("digest_key", self.digest_key == other.digest_key);
        check("group_by", self.group_by == other.group_by);
        check("window", self.window == other.window);
        check("max_items", self.max_items == other.max_items);
        check("first_now", self.first_now == other.first_now);
        d
    }
}

/// Publishes a rule version, or confirms it is already published with the same content.
#[tracing::instrument(skip(db, spec), fields(key = %spec.key, version = spec.version))]
pub async fn upsert(
    db: &Db,
    tenant: &str,
    spec: &RuleSpec,
) -> Result<(DigestRule, Upserted), RuleError> {
    crate::tenants::check_id(tenant).map_err(|e| invalid("tenant", e.to_string()))?;
    spec.validate()?;
    // Insert-or-nothing, then compare: two upserts racing for the same version cannot both
    // publish different content.
    let inserted = sqlx::query(
        "INSERT INTO digest_rules (id, tenant, rule_key, version, channel, notifier_key, category, digest_key,
                                   group_by, window_kind, window_spec, max_items, first_now, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (tenant, rule_key, version) DO NOTHING",
    )
    .bind(store::new_id())
    .bind(tenant)
    .bind(&spec.key)
    .bind(spec.version)
    .bind(spec.channel.as_str())
    .bind(&spec.notifier_key)
    .bind(&spec.category)
    .bind(&spec.digest_key)
    .bind(spec.group_by.as_str())
    .bind(spec.window.kind())
    .bind(spec.window.spec())
    .bind(spec.max_items)
    .bind(spec.first_now as i64)
    .bind(store::time_text(store::now()))
    .execute(db)
    .await?
    .rows_affected();
    let stored = get(db, tenant, &spec.key, Some(spec.version)).await?;
    if inserted == 1 {
        tracing::info!("digest rule published");
        return Ok((stored, Upserted::Created));
    }
    let differs = stored.spec.differences(spec);
    if differs.is_empty() {
        Ok((stored, Upserted::Unchanged))
    } else {
        Err(RuleError::Immutable {
            key: spec.key.clone(),
            version: spec.version,
            differs,
        })
    }
}

const COLUMNS: &str =
    "id, tenant, rule_key, version, channel, notifier_key, category, digest_key, group_by,
                       window_kind, window_spec, max_items, first_now, created_at";

fn from_row(r: &sqlx::any::AnyRow) -> Result<DigestRule, RuleError> {
    let corrupt = |what: String| RuleError::Store(StoreError::Corrupt(what));
    let key: String = r.get("rule_key");
    let channel: String = r.get("channel");
    let group_by: String = r.get("group_by");
    Ok(DigestRule {
        id: r.get("id"),
        tenant: r.get("tenant"),
        spec: RuleSpec {
            version: r.get("version"),
            channel: channel
                .parse()
                .map_err(|e: crate::content::UnknownChannel| corrupt(format!("rule {key}: {e}")))?,
            notifier_key: r.get("notifier_key"),
            category: r.get("category"),
            digest_key: r.get("digest_key"),
            group_by: group_by
                .parse()
                .map_err(|e: RuleError| corrupt(format!("rule {key}: {e}")))?,
            window: Window::from_stored(
                &r.get::<String, _>("window_kind"),
                &r.get::<String, _>("window_spec"),
            )
            .map_err(|e| corrupt(format!("rule {key}: {e}")))?,
            max_items: r.get("max_items"),
            first_now: r.get::<i64, _>("first_now") != 0,
            key,
        },
        created_at: r.get("created_at"),
    })
}

/// One version of a rule, or its highest when `version` is `None`.
pub async fn get(
    db: &Db,
    tenant: &str,
    key: &str,
    version: Option<i64>,
) -> Result<DigestRule, RuleError> {
    let row = match version {
        Some(v) => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM digest_rules WHERE tenant = $1 AND rule_key = $2 AND version = $3"
            ))
            .bind(tenant)
            .bind(key)
            .bind(v)
            .fetch_optional(db)
            .await?
        }
        None => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM digest_rules WHERE tenant = $1 AND rule_key = $2
                 ORDER BY version DESC LIMIT 1"
            ))
            .bind(tenant)
            .bind(key)
            .fetch_optional(db)
            .await?
        }
    };
    match row {
        Some(r) => from_row(&r),
        None => Err(RuleError::NotFound {
            tenant: tenant.to_string(),
            key: key.to_string(),
            version,
        }),
    }
}

/// Exact-match filters for [`list`]; `None` filters nothing. A match filter of `Some("")`
/// finds rules that leave that match open.
#[derive(Clone, Debug, Default)]
pub struct RuleFilter {
    pub key: Option<String>,
    pub channel: Option<Channel>,
    pub notifier_key: Option<String>,
    pub category: Option<String>,
    pub digest_key: Option<String>,
    pub group_by: Option<GroupBy>,
    /// Only each key's highest version.
    pub latest_only: bool,
}

/// The tenant's rules that pass `filter`, by key then version.
pub async fn list(
    db: &Db,
    tenant: &str,
    filter: &RuleFilter,
) -> Result<Vec<DigestRule>, RuleError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM digest_rules WHERE tenant = $1 ORDER BY rule_key, version"
    ))
    .bind(tenant)
    .fetch_all(db)
    .await?;
    let mut rules = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    if filter.latest_only {
        keep_latest(&mut rules);
    }
    let matches = |want: &Option<String>, have: &Option<String>| match want.as_deref() {
        None => true,
        Some("") => have.is_none(),
        Some(w) => have.as_deref() == Some(w),
    };
    rules.retain(|r| {
        let s = &r.spec;
        filter.key.as_ref().is_none_or(|k| *k == s.key)
            && filter.channel.is_none_or(|c| c == s.channel)
            && matches(&filter.notifier_key, &s.notifier_key)
            && matches(&filter.category, &s.category)
            && matches(&filter.digest_key, &s.digest_key)
            && filter.group_by.is_none_or(|g| g == s.group_by)
    });
    Ok(rules)
}

/// Keeps each key's highest version; `rules` must be sorted by key then version.
fn keep_latest(rules: &mut Vec<DigestRule>) {
    // `dedup_by` keeps the first of each run, so walk from the highest version down.
    rules.reverse();
    rules.dedup_by(|a, b| a.spec.key == b.spec.key);
    rules.reverse();
}

/// What a held delivery is matched on.
#[derive(Clone, Copy, Debug)]
pub struct Lookup<'a> {
    pub channel: Channel,
    pub notifier_key: Option<&'a str>,
    pub category: Option<&'a str>,
    pub digest_key: Option<&'a str>,
}

/// How specific a rule is for `lookup`, or `None` when one of its matches fails.
fn specificity(spec: &RuleSpec, lookup: &Lookup<'_>) -> Option<u8> {
    if spec.channel != lookup.channel {
        return None;
    }
    let mut score = 0;
    for (want, have, weight) in [
        (&spec.digest_key, lookup.digest_key, 4),
        (&spec.notifier_key, lookup.notifier_key, 2),
        (&spec.category, lookup.category, 1),
    ] {
        match want {
            None => {}
            Some(w) if Some(w.as_str()) == have => score += weight,
            Some(_) => return None,
        }
    }
    Some(score)
}

/// The rule that takes a held delivery: the most specific of each key's highest version (see
/// the module's documentation), or `None` when no rule matches.
#[tracing::instrument(skip(db))]
pub async fn find_matching(
    db: &Db,
    tenant: &str,
    lookup: &Lookup<'_>,
) -> Result<Option<DigestRule>, RuleError> {
    let rules = list(
        db,
        tenant,
        &RuleFilter {
            channel: Some(lookup.channel),
            latest_only: true,
            ..Default::default()
        },
    )
    .await?;
    Ok(best_match(&rules, lookup).cloned())
}

/// The rule of `rules` (each key's highest version, sorted by key) that takes `lookup`: the
/// most specific, the first key on a tie.
pub fn best_match<'r>(rules: &'r [DigestRule], lookup: &Lookup<'_>) -> Option<&'r DigestRule> {
    let mut best: Option<(u8, &DigestRule)> = None;
    for rule in rules {
        if let Some(score) = specificity(&rule.spec, lookup)
            && best.is_none_or(|(b, _)| score > b)
        {
            best = Some((score, rule));
        }
    }
    best.map(|(_, r)| r)
}

//! Trigger: an event goes in, the notifier plugin decides who gets it on which channels, and
//! one transaction writes the event, a notification per distinct recipient and a pending
//! delivery per (notification, channel), with the trace of every decision.
//!
//! Plugin calls happen *before* the transaction: they may take milliseconds, and a write
//! transaction held across them would serialise every trigger behind the slowest plugin.
//! Uniqueness (tenant + idempotency key, event + recipient, notification + channel) is
//! enforced by the database's unique indexes, not by look-ups.

use crate::content::{Channel, Recipient};
use crate::digests::buckets::{self, Join};
use crate::digests::cadence::{self, Cadence};
use crate::digests::rules::{self, DigestRule, Lookup};
use crate::digests::window::Window;
use crate::deliveries::{idempotency_key_for, reason};
use crate::jobs::{self as queue, NewJob};
use crate::plugins::{CallError, PluginRuntime, Registry, RegistryError, Reuse};
use crate::policy::{self, Checkpoint, Decision, Outcome, Severity};
use crate::store::{self, Db, StoreError};
use crate::traces::{self, DeliveryRecord, NewTrace, kind};
use crate::workflows::runs;
use serde::Serialize;
use sqlx::Row;
use std::collections::HashMap;

/// The tenant used when none is given.
pub const DEFAULT_TENANT: &str = "default";

#[derive(Clone, Debug)]
pub struct TriggerRequest {
    pub notifier: String,
    pub payload: serde_json::Value,
    pub tenant: String,
    pub idempotency_key: Option<String>,
    /// Send no earlier than this: the deliveries are planned now and deferred until then
    /// (reason `scheduled`). `None` or a past time sends as soon as a worker is free. More than
    /// ten years from now either way is refused ([`crate::time_bounds`]).
    pub deliver_at: Option<chrono::DateTime<chrono::Utc>>,
    /// How much it matters: a recipient's severity floor suppresses what is below it, and
    /// `critical` bypasses preferences, cooldowns, caps and quiet hours. `None` takes the
    /// notifier's declared severity (`normal` for WIT 0.1.0 notifiers); the notifier may still
    /// raise it for a recipient, never lower it.
    pub severity: Option<Severity>,
}

impl TriggerRequest {
    pub fn new(notifier: impl Into<String>, payload: serde_json::Value) -> Self {
        TriggerRequest {
            notifier: notifier.into(),
            payload,
            tenant: DEFAULT_TENANT.to_string(),
            idempotency_key: None,
            deliver_at: None,
            severity: None,
        }
    }
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = Some(severity);
        self
    }
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = tenant.into();
        self
    }
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
    pub fn deliver_at(mut self, at: chrono::DateTime<chrono::Utc>) -> Self {
        self.deliver_at = Some(at);
        self
    }
}

#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TriggerOutcome {
    pub event_id: String,
    /// True when the idempotency key had been used: nothing was written, these are the
    /// original ids.
    pub duplicate: bool,
    pub notifications: Vec<NotificationSummary>,
}

#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationSummary {
    pub id: String,
    pub recipient_id: String,
    pub deliveries: Vec<DeliveryRecord>,
}

#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error("invalid trigger: {0}")]
    Invalid(String),
    /// A field of the request breaks the rule for its kind (see [`check_request`]).
    #[error("invalid trigger: {message}")]
    InvalidField { field: String, message: String },
    #[error(transparent)]
    UnknownNotifier(#[from] RegistryError),
    #[error("notifier `{notifier}` rejected the payload: {source}")]
    Plan { notifier: String, source: CallError },
    #[error("request {index} of the batch: {source}")]
    InBatch {
        index: usize,
        source: Box<TriggerError>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::digests::BucketError> for TriggerError {
    fn from(e: crate::digests::BucketError) -> Self {
        match e {
            crate::digests::BucketError::Store(e) => TriggerError::Store(e),
            other => TriggerError::Store(StoreError::Corrupt(other.to_string())),
        }
    }
}

impl From<crate::digests::RuleError> for TriggerError {
    fn from(e: crate::digests::RuleError) -> Self {
        match e {
            crate::digests::RuleError::Store(e) => TriggerError::Store(e),
            other => TriggerError::Store(StoreError::Corrupt(other.to_string())),
        }
    }
}

impl From<sqlx::Error> for TriggerError {
    fn from(e: sqlx::Error) -> Self {
        TriggerError::Store(e.into())
    }
}

impl From<crate::text::TextError> for TriggerError {
    fn from(e: crate::text::TextError) -> Self {
        TriggerError::InvalidField {
            field: e.field.clone(),
            message: e.to_string(),
        }
    }
}

impl From<crate::time_bounds::BoundsError> for TriggerError {
    fn from(e: crate::time_bounds::BoundsError) -> Self {
        TriggerError::InvalidField {
            field: e.field().to_string(),
            message: e.to_string(),
        }
    }
}

impl From<crate::tenants::TenantError> for TriggerError {
    fn from(e: crate::tenants::TenantError) -> Self {
        match e {
            crate::tenants::TenantError::Store(e) => TriggerError::Store(e),
            e => TriggerError::InvalidField {
                field: "tenant".into(),
                message: e.to_string(),
            },
        }
    }
}

/// A request's own fields, by the rules every edge shares: the tenant's name
/// ([`crate::tenants::check_id`]), an idempotency key and the payload's text
/// ([`crate::text`]), and `deliver_at` within ten years of now ([`crate::time_bounds`]).
/// Checked here, where the CLI, the HTTP API and embedding programs all pass, so none of
/// them can store what another refuses.
fn check_request(req: &TriggerRequest) -> Result<(), TriggerError> {
    crate::tenants::check_id(&req.tenant)?;
    if !req.payload.is_object() {
        return Err(TriggerError::Invalid(
            "payload must be a JSON object".into(),
        ));
    }
    crate::text::json("payload", &req.payload)?;
    if let Some(key) = &req.idempotency_key {
        crate::text::idempotency_key(key)?;
    }
    // A time is stored as RFC 3339 text and compared as text, which orders times only for
    // four-digit years: `+12026-…` once sorted before today and was sent at once.
    if let Some(at) = req.deliver_at {
        crate::time_bounds::instant("deliver_at", at, store::now())?;
    }
    Ok(())
}

struct PlannedRecipient {
    recipient: Recipient,
    channels: Vec<Channel>,
    notification_id: String,
    /// One per channel, in the same order.
    delivery_ids: Vec<String>,
    /// The notification's severity and where it came from.
    severity: Severity,
    severity_from: &'static str,
    /// Per channel, in the same order: for a fallback channel, the in-app delivery it waits on
    /// and for how long (as declared; see [`plan_time_decisions`] for when it is dropped).
    fallbacks: Vec<FallbackWait>,
    /// Per channel, in the same order: `Some(digest key)` when the notifier holds it for
    /// digest (never for a critical notification).
    held: Vec<Option<Option<String>>>,
    /// A workflow notifier's run for this recipient: its id and every channel the notifier
    /// planned (`channels` then holds only the first step's, if planned).
    workflow: Option<(String, Vec<Channel>)>,
}

/// A fallback channel's wait: the in-app delivery it waits on, and for how long.
type FallbackWait = Option<(String, chrono::Duration)>;

/// When a delivery would go out: after its fallback wait, if it has one, from `start`.
fn send_at(
    fallback: &FallbackWait,
    start: chrono::DateTime<chrono::Utc>,
) -> chrono::DateTime<chrono::Utc> {
    fallback.as_ref().map_or(start, |(_, wait)| start + *wait)
}

/// Why a delivery waits even when the policy allows it: a fallback's wait for the in-app item
/// to be read, or a scheduled send.
fn wait_of(
    fallback: &FallbackWait,
    scheduled: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Wait> {
    match (fallback, scheduled) {
        (Some((in_app, _)), _) => Some(Wait {
            until: send_at(fallback, scheduled.unwrap_or(now)),
            reason: policy::reason::FALLBACK_WAIT,
            unless: Some(format!(" unless in-app delivery {in_app} is read by then")),
        }),
        (None, Some(at)) => Some(Wait {
            until: at,
            reason: reason::SCHEDULED,
            unless: None,
        }),
        (None, None) => None,
    }
}

/// The most requests one [`trigger_many`] takes.
pub const MAX_BATCH: usize = 1000;

/// The most recipients one trigger fans out to: the notifier is asked for recipients before
/// anything is written, so a bigger audience fails the trigger whole, and is split by the
/// caller into several triggers.
pub const MAX_RECIPIENTS: usize = 1000;

/// An event planned by its notifier, ready to be written.
struct PlannedEvent<'r> {
    req: &'r TriggerRequest,
    /// The notifier build, `name@version#hash12`.
    plugin: String,
    category: String,
    payload: String,
    recipients: Vec<PlannedRecipient>,
    /// The notifier lets deliveries that quiet hours or a cap hold back join a digest.
    fold_deferred: bool,
    /// The notifier's workflow: one run per notification, starting at its first step.
    workflow: Option<crate::workflows::Workflow>,
    /// The builds in force now, which a workflow run or a digest bucket this event starts
    /// keeps to the end (JSON of [`crate::plugins::pins::Pins`]; `None` when the event can
    /// start neither).
    pins: Option<String>,
}

enum Plan<'r> {
    New(PlannedEvent<'r>),
    /// The idempotency key was used before: the original event's id.
    Duplicate(String),
}

/// Plans an event and writes it in one transaction: the event, a notification per distinct
/// recipient, a delivery and its job per (notification, channel), and the traces.
#[tracing::instrument(skip_all, fields(notifier = %req.notifier, tenant = %req.tenant))]
pub async fn trigger(
    db: &Db,
    runtime: &PluginRuntime,
    registry: &Registry,
    gate: &queue::WriteGate,
    req: &TriggerRequest,
) -> Result<TriggerOutcome, TriggerError> {
    let planned = match plan(db, runtime, registry, req).await? {
        Plan::Duplicate(existing) => return summary(db, &existing, true).await,
        Plan::New(p) => p,
    };
    let inputs = policy_inputs(db, &[&planned]).await?;
    let rules = digest_rules(db, &[&planned]).await?;
    // In turn with this process's other writers (the workers' leases and commits), rather than
    // in SQLite's busy handler, which is not first come first served: with a few large triggers
    // and busy workers one writer could wait out the busy timeout ("database is locked").
    let turn = gate.enter(db).await;
    let mut tx = db.begin().await?;
    lock_counted_recipients(&mut tx, store::backend(db), &inputs).await?;
    let written = write(&mut tx, &planned, &inputs, &rules).await?;
    queue::announce(&mut tx, store::backend(db)).await?;
    tx.commit().await?;
    drop(turn);
    match written {
        Some(outcome) => Ok(outcome),
        None => duplicate_of(db, req).await,
    }
}

/// Plans every request, then writes them all in one transaction: all are written or none.
/// A request whose idempotency key was used before (or earlier in the batch) comes back as a
/// duplicate of the original. Any invalid request fails the batch, naming its index.
#[tracing::instrument(skip_all, fields(requests = reqs.len()))]
pub async fn trigger_many(
    db: &Db,
    runtime: &PluginRuntime,
    registry: &Registry,
    gate: &queue::WriteGate,
    reqs: &[TriggerRequest],
) -> Result<Vec<TriggerOutcome>, TriggerError> {
    if reqs.len() > MAX_BATCH {
        return Err(TriggerError::Invalid(format!(
            "a batch holds at most {MAX_BATCH} requests, got {}",
            reqs.len()
        )));
    }
    let mut plans = Vec::with_capacity(reqs.len());
    for (index, req) in reqs.iter().enumerate() {
        let planned =
            plan(db, runtime, registry, req)
                .await
                .map_err(|e| TriggerError::InBatch {
                    index,
                    source: Box::new(e),
                })?;
        plans.push(planned);
    }
    let new: Vec<&PlannedEvent> = plans
        .iter()
        .filter_map(|p| match p {
            Plan::New(p) => Some(p),
            Plan::Duplicate(_) => None,
        })
        .collect();
    let inputs = policy_inputs(db, &new).await?;
    let rules = digest_rules(db, &new).await?;
    // In turn, as in `trigger`.
    let turn = gate.enter(db).await;
    let mut tx = db.begin().await?;
    lock_counted_recipients(&mut tx, store::backend(db), &inputs).await?;
    let mut written = Vec::with_capacity(plans.len());
    for p in &plans {
        written.push(match p {
            Plan::New(p) => write(&mut tx, p, &inputs, &rules).await?,
            Plan::Duplicate(_) => None,
        });
    }
    queue::announce(&mut tx, store::backend(db)).await?;
    tx.commit().await?;
    drop(turn);
    let mut out = Vec::with_capacity(plans.len());
    for ((p, w), req) in plans.iter().zip(written).zip(reqs) {
        out.push(match (p, w) {
            (_, Some(outcome)) => outcome,
            (Plan::Duplicate(existing), None) => summary(db, existing, true).await?,
            (Plan::New(_), None) => duplicate_of(db, req).await?,
        });
    }
    Ok(out)
}

/// What a trigger would do, per recipient and channel, with the plan-time policy's reasons.
#[derive(Clone, Debug, Serialize)]
pub struct DryRun {
    pub notifier: String,
    /// The event an earlier trigger with the same idempotency key created: a real trigger
    /// would do nothing.
    pub duplicate_of: Option<String>,
    pub recipients: Vec<DryRunRecipient>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DryRunRecipient {
    pub recipient_id: String,
    pub channels: Vec<DryRunChannel>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DryRunChannel {
    pub channel: Channel,
    /// `send`, `defer`, `suppress` or `hold` (for digest).
    pub would: &'static str,
    /// What the digest side would do: held by which rule over which window, or why a held
    /// channel would go on its own.
    pub digest: Option<String>,
    /// Why a delivery the policy allows would still wait (`fallback_wait`, `scheduled`), and
    /// until when.
    pub wait_reason: Option<&'static str>,
    pub wait_until: Option<String>,
    pub decision: Decision,
}

/// Plans a trigger and runs the plan-time policy, writing nothing.
#[tracing::instrument(skip_all, fields(notifier = %req.notifier, tenant = %req.tenant))]
pub async fn dry_run(
    db: &Db,
    runtime: &PluginRuntime,
    registry: &Registry,
    req: &TriggerRequest,
) -> Result<DryRun, TriggerError> {
    let planned = match plan(db, runtime, registry, req).await? {
        Plan::Duplicate(existing) => {
            return Ok(DryRun {
                notifier: req.notifier.clone(),
                duplicate_of: Some(existing),
                recipients: Vec::new(),
            });
        }
        Plan::New(p) => p,
    };
    let now = store::now();
    let scheduled = req.deliver_at.filter(|at| *at > now);
    let inputs = policy_inputs(db, &[&planned]).await?;
    let rules = digest_rules(db, &[&planned]).await?;
    let mut conn = db.acquire().await?;
    let mut recipients = Vec::with_capacity(planned.recipients.len());
    for p in &planned.recipients {
        let (decisions, fallbacks) = plan_time_decisions(
            &mut conn,
            p,
            req,
            &planned.category,
            &inputs,
            now,
            scheduled,
        )
        .await?;
        let mut channels = Vec::with_capacity(p.channels.len());
        for (i, (channel, decision)) in p.channels.iter().zip(decisions).enumerate() {
            let wait = match decision.outcome {
                Outcome::Allow => wait_of(&fallbacks[i], scheduled, now),
                _ => None,
            };
            let zone = inputs
                .get(&(req.tenant.clone(), p.recipient.id.clone()))
                .map_or(chrono_tz::UTC, |i| i.zone());
            let (held, digest) = match digest_route(p, i, &decision, &planned, &rules, zone) {
                DigestRoute::Direct => (false, None),
                DigestRoute::NoRule { .. } => (
                    false,
                    Some(format!(
                        "held for digest, but no digest rule takes it: sent on its own ({})",
                        buckets::reason::NO_DIGEST_RULE
                    )),
                ),
                DigestRoute::Instant { rule } => (
                    false,
                    Some(format!(
                        "taken by rule {} v{}, but the recipient chose instant delivery ({})",
                        rule.spec.key,
                        rule.spec.version,
                        buckets::reason::CADENCE_INSTANT
                    )),
                ),
                DigestRoute::Join {
                    rule,
                    folded,
                    window,
                    cadence,
                    ..
                } => {
                    let (_, end) = window.bucket_at(scheduled.unwrap_or(now));
                    let said = format!(
                        "{} by rule {} v{} until {} ({}{}){}",
                        if folded.is_some() {
                            "folded into a digest"
                        } else {
                            "held for digest"
                        },
                        rule.spec.key,
                        rule.spec.version,
                        store::time_text(end),
                        cadence.map_or("the rule's window", |_| "the recipient's cadence"),
                        if rule.spec.first_now {
                            ", sent at once if it is its window's first"
                        } else {
                            ""
                        },
                        folded
                            .map(|f| format!(", instead of {f}"))
                            .unwrap_or_default()
                    );
                    (true, Some(said))
                }
            };
            let would = match decision.outcome {
                _ if held => "hold",
                Outcome::Allow if wait.is_none() => "send",
                Outcome::Allow | Outcome::Defer { .. } => "defer",
                Outcome::Suppress { .. } => "suppress",
            };
            channels.push(DryRunChannel {
                channel: *channel,
                would,
                digest,
                wait_reason: wait.as_ref().map(|w| w.reason),
                wait_until: wait.map(|w| store::time_text(w.until)),
                decision,
            });
        }
        recipients.push(DryRunRecipient {
            recipient_id: p.recipient.id.clone(),
            channels,
        });
    }
    Ok(DryRun {
        notifier: req.notifier.clone(),
        duplicate_of: None,
        recipients,
    })
}

/// Policy inputs by (tenant, recipient id) for every recipient of the planned events.
type PolicyInputs = HashMap<(String, String), policy::decide::Inputs>;

/// Reads the policy inputs of all planned recipients, a query per tenant, just before the
/// write transaction begins: that is what a read inside it would see under PostgreSQL's READ
/// COMMITTED, and it keeps SQLite's single writer lock shorter. The decisions themselves, and
/// the counts behind cooldowns and caps, are taken inside the transaction.
async fn policy_inputs(
    db: &Db,
    planned: &[&PlannedEvent<'_>],
) -> Result<PolicyInputs, TriggerError> {
    let mut by_tenant: HashMap<&str, Vec<&Recipient>> = HashMap::new();
    for p in planned {
        by_tenant
            .entry(p.req.tenant.as_str())
            .or_default()
            .extend(p.recipients.iter().map(|r| &r.recipient));
    }
    let now = store::now();
    let mut out = HashMap::new();
    let mut conn = db.acquire().await?;
    for (tenant, recipients) in by_tenant {
        for (id, inputs) in
            policy::decide::Inputs::load_many(&mut conn, tenant, &recipients, now).await?
        {
            out.insert((tenant.to_string(), id), inputs);
        }
    }
    Ok(out)
}

/// What routing a delivery to a digest reads: each tenant's digest rules (each key's highest
/// version) and its recipients' cadences, for the events that may hold or fold a delivery;
/// read before the write transaction like the policy inputs.
#[derive(Default)]
struct DigestRules {
    rules: HashMap<String, Vec<DigestRule>>,
    /// By (tenant, recipient id, category).
    cadences: HashMap<(String, String, String), Cadence>,
}

async fn digest_rules(db: &Db, planned: &[&PlannedEvent<'_>]) -> Result<DigestRules, TriggerError> {
    let mut out = DigestRules::default();
    let mut recipients: HashMap<&str, Vec<&str>> = HashMap::new();
    for p in planned {
        let may_digest = p.fold_deferred
            || p.recipients
                .iter()
                .any(|r| r.held.iter().any(Option::is_some));
        if !may_digest {
            continue;
        }
        if !out.rules.contains_key(&p.req.tenant) {
            let filter = rules::RuleFilter {
                latest_only: true,
                ..Default::default()
            };
            let found = rules::list(db, &p.req.tenant, &filter).await?;
            out.rules.insert(p.req.tenant.clone(), found);
        }
        // Without a rule nothing is held, whatever the recipient's cadence.
        if out.rules[&p.req.tenant].is_empty() {
            continue;
        }
        recipients
            .entry(&p.req.tenant)
            .or_default()
            .extend(p.recipients.iter().map(|r| r.recipient.id.as_str()));
    }
    if recipients.is_empty() {
        return Ok(out);
    }
    let mut conn = db.acquire().await?;
    for (tenant, ids) in recipients {
        for ((recipient, category), c) in cadence::load_many(&mut conn, tenant, &ids).await? {
            out.cadences
                .insert((tenant.to_string(), recipient, category), c);
        }
    }
    Ok(out)
}

/// What the digest side does with one planned delivery.
enum DigestRoute<'a> {
    /// Not held for digest: the policy's standing stands.
    Direct,
    /// Held by the notifier, or folded instead of a quiet-hours or cap decision (`folded`
    /// says which), and `rule` takes it, over `window` (the rule's, or the recipient's
    /// cadence: `cadence` says which).
    Join {
        rule: &'a DigestRule,
        digest_key: Option<&'a str>,
        folded: Option<String>,
        window: Window,
        cadence: Option<Cadence>,
    },
    /// Held by the notifier and a rule takes it, but the recipient chose `instant` for its
    /// category: sent at once.
    Instant { rule: &'a DigestRule },
    /// Held by the notifier, but no rule of the tenant takes it: sent on its own.
    NoRule { digest_key: Option<&'a str> },
}

/// Routes one planned delivery: a held one joins its rule's bucket unless the policy
/// suppressed it; one that quiet hours would defer or a cap would suppress joins a digest
/// instead when the notifier allows folding and a rule takes it. Fallback channels and
/// critical notifications are never held.
fn digest_route<'a>(
    p: &'a PlannedRecipient,
    i: usize,
    decision: &Decision,
    planned: &PlannedEvent<'_>,
    rules: &'a DigestRules,
    zone: chrono_tz::Tz,
) -> DigestRoute<'a> {
    let tenant_rules = rules
        .rules
        .get(&planned.req.tenant)
        .map_or(&[][..], Vec::as_slice);
    let cadence = rules
        .cadences
        .get(&(
            planned.req.tenant.clone(),
            p.recipient.id.clone(),
            planned.category.clone(),
        ))
        .copied();
    // The recipient's cadence replaces the rule's window; `instant` keeps it out of digests.
    let join = |rule: &'a DigestRule, digest_key, folded| match cadence {
        Some(Cadence::Instant) => None,
        Some(c) => Some(DigestRoute::Join {
            rule,
            digest_key,
            folded,
            window: c.window(zone).unwrap_or_else(|| rule.spec.window.clone()),
            cadence: Some(c),
        }),
        None => Some(DigestRoute::Join {
            rule,
            digest_key,
            folded,
            window: rule.spec.window.clone(),
            cadence: None,
        }),
    };
    let lookup = |digest_key: Option<&'a str>| Lookup {
        channel: p.channels[i],
        notifier_key: Some(&planned.req.notifier),
        category: Some(&planned.category),
        digest_key,
    };
    match (&p.held[i], &decision.outcome) {
        (Some(_), Outcome::Suppress { .. }) => DigestRoute::Direct,
        (Some(key), _) => {
            let digest_key = key.as_deref();
            match rules::best_match(tenant_rules, &lookup(digest_key)) {
                Some(rule) => join(rule, digest_key, None).unwrap_or(DigestRoute::Instant { rule }),
                None => DigestRoute::NoRule { digest_key },
            }
        }
        (None, outcome) => {
            let foldable = match outcome {
                Outcome::Defer { reason, .. } => *reason == policy::reason::QUIET_HOURS,
                Outcome::Suppress { reason } => *reason == policy::reason::CAP_REACHED,
                Outcome::Allow => false,
            };
            if !(foldable
                && planned.fold_deferred
                && p.fallbacks[i].is_none()
                && p.severity != Severity::Critical)
            {
                return DigestRoute::Direct;
            }
            rules::best_match(tenant_rules, &lookup(None))
                .and_then(|rule| {
                    let folded = format!("{}: {}", decision.code(), decision.why());
                    join(rule, None, Some(folded))
                })
                .unwrap_or(DigestRoute::Direct)
        }
    }
}

/// Policy checkpoint 1 for each channel of one planned recipient, in channel order, with
/// each channel's fallback wait as it will apply. The channels of one notification never count
/// against each other (caps and cooldowns leave the notification's own deliveries out), so all
/// can be decided before any is written.
///
/// A fallback waits for an in-app item to be read; when the in-app delivery is itself
/// suppressed there will be no item, so its fallbacks go without waiting.
async fn plan_time_decisions(
    conn: &mut crate::store::Conn,
    p: &PlannedRecipient,
    req: &TriggerRequest,
    category: &str,
    inputs: &PolicyInputs,
    now: chrono::DateTime<chrono::Utc>,
    scheduled: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<(Vec<Decision>, Vec<FallbackWait>), TriggerError> {
    let none = policy::decide::Inputs::default();
    let inputs = inputs
        .get(&(req.tenant.clone(), p.recipient.id.clone()))
        .unwrap_or(&none);
    let start = scheduled.unwrap_or(now);
    let decide = async |conn: &mut crate::store::Conn, i: usize, at| {
        let subject = policy::decide::Subject {
            tenant: &req.tenant,
            recipient: &p.recipient,
            notifier_key: &req.notifier,
            category,
            channel: p.channels[i],
            severity: p.severity,
            notification_id: &p.notification_id,
            notification_created_at: now,
            delivery_id: &p.delivery_ids[i],
            send_at: at,
            fallback_of: None,
        };
        policy::decide::decide(conn, Checkpoint::Plan, inputs, &subject, now).await
    };
    let mut fallbacks = p.fallbacks.clone();
    let in_app = p.channels.iter().position(|c| *c == Channel::InApp);
    if let Some(i) = in_app
        && fallbacks.iter().any(Option::is_some)
        && matches!(
            decide(conn, i, start).await?.outcome,
            Outcome::Suppress { .. }
        )
    {
        fallbacks = vec![None; fallbacks.len()];
    }
    let mut decisions = Vec::with_capacity(p.channels.len());
    for (i, fallback) in fallbacks.iter().enumerate() {
        decisions.push(decide(conn, i, send_at(fallback, start)).await?);
    }
    Ok((decisions, fallbacks))
}

/// On PostgreSQL, takes a transaction-scoped advisory lock per recipient whose caps or
/// cooldowns count past deliveries, so two triggers for the same recipient plan one after the
/// other and each counts what the other wrote (READ COMMITTED would otherwise let both pass a
/// cap of one). Locks are taken in sorted order, so concurrent batches cannot deadlock. SQLite
/// needs none: its single writer already serialises planning.
async fn lock_counted_recipients(
    tx: &mut crate::store::Conn,
    backend: store::Backend,
    inputs: &PolicyInputs,
) -> Result<(), TriggerError> {
    if backend != store::Backend::Postgres {
        return Ok(());
    }
    let mut keys: Vec<String> = inputs
        .iter()
        .filter(|(_, i)| i.counts_history())
        .map(|((tenant, recipient), _)| format!("{tenant}\u{1f}{recipient}"))
        .collect();
    keys.sort();
    for key in keys {
        sqlx::query("SELECT 1 FROM pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(key)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// The original of a request whose idempotency key turned out to be taken.
async fn duplicate_of(db: &Db, req: &TriggerRequest) -> Result<TriggerOutcome, TriggerError> {
    let key = req.idempotency_key.as_deref().unwrap_or_default();
    let existing = find_by_key(db, &req.tenant, key)
        .await?
        .ok_or_else(|| StoreError::Corrupt("idempotency conflict without a row".into()))?;
    summary(db, &existing, true).await
}

/// Validates a request and asks the notifier plugin for its recipients and channels. Writes
/// nothing: plugin calls may take milliseconds and must not hold a write transaction.
async fn plan<'r>(
    db: &Db,
    runtime: &PluginRuntime,
    registry: &Registry,
    req: &'r TriggerRequest,
) -> Result<Plan<'r>, TriggerError> {
    check_request(req)?;
    if let Some(key) = &req.idempotency_key
        && let Some(existing) = find_by_key(db, &req.tenant, key).await?
    {
        tracing::info!(event_id = %existing, "duplicate trigger");
        return Ok(Plan::Duplicate(existing));
    }

    let notifier = registry.notifier(&req.notifier)?;
    let description = notifier
        .description()
        .expect("notifiers are described at load");
    let payload = req.payload.to_string();
    let plan_err = |source| TriggerError::Plan {
        notifier: req.notifier.clone(),
        source,
    };

    // Recipients: deduplicated by id (first occurrence wins) and sorted, so the same payload
    // always plans the same notifications in the same order.
    let mut recipients = runtime
        .recipients(notifier, &payload, Reuse::Tenant(&req.tenant))
        .await
        .map_err(plan_err)?;
    recipients.sort_by(|a, b| a.id.cmp(&b.id));
    recipients.dedup_by(|a, b| a.id == b.id);
    if recipients.is_empty() {
        return Err(TriggerError::Invalid(format!(
            "notifier `{}` found no recipients in the payload",
            req.notifier
        )));
    }
    // Recipient ids come from the payload through the plugin: the same rule as any id.
    if let Some(e) = recipients
        .iter()
        .find_map(|r| crate::text::identifier("recipient id", &r.id).err())
    {
        return Err(TriggerError::Invalid(format!(
            "notifier `{}` returned a recipient id that {}",
            req.notifier, e.problem
        )));
    }
    if recipients.len() > MAX_RECIPIENTS {
        return Err(TriggerError::Invalid(format!(
            "notifier `{}` returned {} recipients; one trigger reaches at most {MAX_RECIPIENTS} (split the audience over several triggers)",
            req.notifier,
            recipients.len()
        )));
    }
    if recipients.iter().any(|r| r.id == policy::TENANT_DEFAULT) {
        return Err(TriggerError::Invalid(format!(
            "notifier `{}` returned a recipient with the id `*`, which names a tenant's policy defaults",
            req.notifier
        )));
    }
    let (base_severity, base_from) = match req.severity {
        Some(s) => (s, "from the trigger"),
        None => (description.severity, "the notifier's default"),
    };
    let mut planned = Vec::with_capacity(recipients.len());
    for recipient in recipients {
        let plan = runtime
            .channels(notifier, &payload, &recipient, Reuse::Tenant(&req.tenant))
            .await
            .map_err(plan_err)?;
        let mut channels = plan.channels;
        channels.sort();
        channels.dedup();
        let misplanned = |message: String| {
            plan_err(CallError {
                plugin: notifier.reference().to_string(),
                function: "channels",
                reason: crate::plugins::FailureReason::PluginError,
                message,
            })
        };
        if let Some(c) = channels.iter().find(|c| !description.channels.contains(c)) {
            return Err(misplanned(format!(
                "returned channel {c}, which its describe() does not declare"
            )));
        }
        // A workflow decides what is sent when: only its first step's delivery is planned now,
        // the rest when the run reaches them.
        let workflow = match &description.workflow {
            None => None,
            Some(wf) => {
                if !plan.held.is_empty() {
                    return Err(misplanned(
                        "held a channel for digest, but a workflow notifier's steps decide when each channel is sent".into(),
                    ));
                }
                let all = std::mem::take(&mut channels);
                let first = wf.steps[0].channel;
                if all.contains(&first) {
                    channels.push(first);
                }
                Some((store::new_id(), all))
            }
        };
        // The notifier may raise the severity for this recipient, never lower it.
        let (severity, severity_from) = match plan.severity {
            Some(s) if s > base_severity => (s, "raised by the notifier for this recipient"),
            _ => (base_severity, base_from),
        };
        let delivery_ids: Vec<String> = channels.iter().map(|_| store::new_id()).collect();
        // A fallback waits on this recipient's in-app delivery; without one it is not a
        // fallback, just a channel.
        let in_app = channels
            .iter()
            .position(|c| *c == Channel::InApp)
            .map(|i| delivery_ids[i].clone());
        let fallbacks: Vec<FallbackWait> = channels
            .iter()
            .map(|c| {
                let f = description.fallback_for(*c)?;
                let wait = chrono::Duration::milliseconds(f.after_ms as i64);
                in_app.clone().map(|id| (id, wait))
            })
            .collect();
        let held =
            held_channels(&channels, &fallbacks, &plan.held, severity).map_err(misplanned)?;
        planned.push(PlannedRecipient {
            notification_id: store::new_id(),
            delivery_ids,
            recipient,
            channels,
            severity,
            severity_from,
            fallbacks,
            held,
            workflow,
        });
    }

    // Only a workflow run or a digest bucket keeps them (a held delivery, or one deferred and
    // folded into a digest): most events need none.
    let pins = (description.workflow.is_some()
        || description.fold_deferred
        || planned.iter().any(|p| p.held.iter().any(Option::is_some)))
    .then(|| {
        crate::plugins::pins::Pins::current(registry, Some(notifier), &Channel::ALL).to_json()
    });
    Ok(Plan::New(PlannedEvent {
        req,
        plugin: notifier.reference().to_string(),
        category: description.category.clone(),
        payload,
        recipients: planned,
        fold_deferred: description.fold_deferred,
        workflow: description.workflow.clone(),
        pins,
    }))
}

/// Per channel, the digest key of a held channel: checks the notifier's holds against its
/// channels. A critical notification is never held.
fn held_channels(
    channels: &[Channel],
    fallbacks: &[FallbackWait],
    holds: &[crate::plugins::Hold],
    severity: Severity,
) -> Result<Vec<Option<Option<String>>>, String> {
    let mut held = vec![None; channels.len()];
    for h in holds {
        let Some(i) = channels.iter().position(|c| *c == h.channel) else {
            return Err(format!(
                "held {} for digest, which is not among the recipient's channels",
                h.channel
            ));
        };
        if fallbacks[i].is_some() {
            return Err(format!(
                "held {} for digest, which is a fallback channel (it waits on the in-app item instead)",
                h.channel
            ));
        }
        if held[i].is_some() {
            return Err(format!("held {} for digest twice", h.channel));
        }
        if let Some(k) = &h.digest_key
            && (k.is_empty() || k.len() > crate::plugins::MAX_DIGEST_KEY)
        {
            return Err(format!(
                "digest key of {} must be 1 to {} bytes, got {}",
                h.channel,
                crate::plugins::MAX_DIGEST_KEY,
                k.len()
            ));
        }
        held[i] = Some(h.digest_key.clone());
    }
    if severity == Severity::Critical {
        // Critical is never held back, by quiet hours or by a digest.
        held.iter_mut().for_each(|h| *h = None);
    }
    Ok(held)
}

/// Writes one planned event inside `tx`. `None` when its idempotency key was taken since it
/// was planned: then nothing was written.
async fn write(
    tx: &mut crate::store::Conn,
    p: &PlannedEvent<'_>,
    policy_inputs: &PolicyInputs,
    digest_rules: &DigestRules,
) -> Result<Option<TriggerOutcome>, TriggerError> {
    let event = p;
    let (req, plugin, category, planned) = (p.req, &p.plugin, &p.category, &p.recipients);
    let event_id = store::new_id();
    let now_time = store::now();
    let now = store::time_text(now_time);
    // A send time in the future makes every delivery a deferred job until then.
    let scheduled = req.deliver_at.filter(|at| *at > now_time);
    let inserted = sqlx::query(
        "INSERT INTO events (id, tenant, notifier_key, notifier_plugin, payload, idempotency_key, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(&event_id)
    .bind(&req.tenant)
    .bind(&req.notifier)
    .bind(plugin)
    .bind(&p.payload)
    .bind(&req.idempotency_key)
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        // Another trigger with the same key committed while this one was planning.
        return Ok(None);
    }
    // Every planning decision, attributed to the notifier build, written in one statement.
    let by = |kind, notification_id, delivery_id, reason, detail| NewTrace {
        tenant: &req.tenant,
        event_id: &event_id,
        notification_id,
        delivery_id,
        kind,
        reason,
        detail: Some(detail),
        plugin: Some(plugin.clone()),
        ..Default::default()
    };
    let mut story = vec![
        by(
            kind::EVENT_RECEIVED,
            None,
            None,
            None,
            format!(
                "notifier {} ({} category){}",
                req.notifier,
                category,
                req.idempotency_key
                    .as_ref()
                    .map(|k| format!(", idempotency key {k}"))
                    .unwrap_or_default()
            ),
        ),
        by(
            kind::RECIPIENTS_PLANNED,
            None,
            None,
            None,
            format!(
                "{} recipient(s): {}",
                planned.len(),
                planned
                    .iter()
                    .map(|p| p.recipient.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    ];
    // A workflow's (key, version) is immutable once a run used it: checked once per event.
    if let Some(wf) = &event.workflow {
        crate::workflows::definition::publish(tx, wf, plugin)
            .await
            .map_err(|e| match e {
                crate::workflows::definition::PublishError::Store(e) => TriggerError::Store(e),
                changed => TriggerError::Plan {
                    notifier: req.notifier.clone(),
                    source: CallError {
                        plugin: plugin.clone(),
                        function: "describe",
                        reason: crate::plugins::FailureReason::PluginError,
                        message: changed.to_string(),
                    },
                },
            })?;
    }
    let mut notifications = Vec::with_capacity(planned.len());
    for p in planned {
        let recipient_json =
            serde_json::to_string(&p.recipient).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO notifications (id, event_id, tenant, recipient_id, recipient, category, severity, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&p.notification_id)
        .bind(&event_id)
        .bind(&req.tenant)
        .bind(&p.recipient.id)
        .bind(&recipient_json)
        .bind(category)
        .bind(p.severity.as_str())
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        story.push(by(
            kind::NOTIFICATION_CREATED,
            Some(&p.notification_id),
            None,
            None,
            format!(
                "recipient {} ({} severity, {})",
                p.recipient.id, p.severity, p.severity_from
            ),
        ));
        // The run starts with its notification; its first step's delivery is written below.
        let run = match (&event.workflow, &p.workflow) {
            (Some(wf), Some((run_id, all))) => {
                runs::start(
                    tx,
                    &runs::Start {
                        id: run_id,
                        tenant: &req.tenant,
                        event_id: &event_id,
                        notification_id: &p.notification_id,
                        recipient_id: &p.recipient.id,
                        workflow: wf,
                        notifier_plugin: plugin,
                        pins: event.pins.as_deref(),
                        channels: all,
                        first_delivery: p.delivery_ids.first().map(String::as_str),
                    },
                )
                .await?;
                Some((run_id.as_str(), wf.steps[0].key.as_str()))
            }
            _ => None,
        };
        // Policy checkpoint 1, inside this transaction: what was planned before it counts.
        let (decisions, fallbacks) =
            plan_time_decisions(tx, p, req, category, policy_inputs, now_time, scheduled).await?;
        let mut deliveries = Vec::with_capacity(p.channels.len());
        for (i, ((channel, delivery_id), decision)) in p
            .channels
            .iter()
            .zip(&p.delivery_ids)
            .zip(decisions)
            .enumerate()
        {
            let wait = wait_of(&fallbacks[i], scheduled, now_time);
            let fallback_of = fallbacks[i].as_ref().map(|(id, _)| id.as_str());
            let mut standing = Standing::of(&decision, wait, now_time);
            // The digest side: hold it in a bucket, send it as its window's first, or say why
            // a held delivery goes on its own.
            let mut held_trace = None;
            let mut bucket = None;
            let mut digest_key = None;
            let mut full = false;
            let zone = policy_inputs
                .get(&(req.tenant.clone(), p.recipient.id.clone()))
                .map_or(chrono_tz::UTC, |i| i.zone());
            match digest_route(p, i, &decision, event, digest_rules, zone) {
                DigestRoute::Direct => {}
                DigestRoute::Instant { rule } => {
                    held_trace = Some((
                        buckets::reason::CADENCE_INSTANT,
                        format!(
                            "held for digest by the notifier and taken by rule {} v{}, but recipient {} chose instant delivery for category {category}: not held",
                            rule.spec.key, rule.spec.version, p.recipient.id
                        ),
                    ));
                }
                DigestRoute::NoRule { digest_key: key } => {
                    digest_key = key;
                    let detail = format!(
                        "held for digest by the notifier, but no digest rule of tenant {} takes {channel} of notifier {} (category {category}{}): sent on its own",
                        req.tenant,
                        req.notifier,
                        key.map(|k| format!(", digest key {k}")).unwrap_or_default()
                    );
                    if standing.status == "pending" {
                        standing.reason = Some(buckets::reason::NO_DIGEST_RULE);
                        standing.detail = Some(detail.clone());
                    }
                    held_trace = Some((buckets::reason::NO_DIGEST_RULE, detail));
                }
                DigestRoute::Join {
                    rule,
                    digest_key: key,
                    folded,
                    window,
                    cadence,
                } => {
                    digest_key = key;
                    let group_value =
                        buckets::group_value(rule.spec.group_by, &req.notifier, category, key);
                    let joined = buckets::join(
                        tx,
                        &Join {
                            tenant: &req.tenant,
                            rule,
                            recipient_id: &p.recipient.id,
                            channel: *channel,
                            group_value: &group_value,
                            window: &window,
                            at: scheduled.unwrap_or(now_time),
                            delivery_id,
                            pins: event.pins.as_deref(),
                        },
                    )
                    .await?;
                    let group = if group_value.is_empty() {
                        String::new()
                    } else {
                        format!(", group {group_value}")
                    };
                    let mut rule_name = format!("{} v{}", rule.spec.key, rule.spec.version);
                    if let Some(c) = cadence {
                        rule_name.push_str(&format!(
                            ", the recipient's {} cadence: {}",
                            c.kind(),
                            window.describe()
                        ));
                    }
                    if joined.first_now {
                        held_trace = Some((
                            buckets::reason::DIGEST_FIRST_NOW,
                            format!(
                                "the first item of digest bucket {} (rule {rule_name}{group}): not held, the rest of its window until {} is digested",
                                joined.bucket_id,
                                store::time_text(joined.window_end)
                            ),
                        ));
                    } else {
                        let (why, instead) = match &folded {
                            Some(policy) => (
                                buckets::reason::FOLDED_INTO_DIGEST,
                                format!(", folded in instead of: {policy}"),
                            ),
                            None => (buckets::reason::HELD_FOR_DIGEST, String::new()),
                        };
                        let detail = format!(
                            "in digest bucket {} (rule {rule_name}{group}, item {}) until {}{instead}",
                            joined.bucket_id,
                            joined.items,
                            store::time_text(joined.window_end)
                        );
                        standing = Standing {
                            status: "held",
                            reason: Some(why),
                            detail: Some(detail.clone()),
                            run_at: None,
                            trace: None,
                        };
                        held_trace = Some((why, detail));
                        full = joined.full;
                    }
                    bucket = Some(joined.bucket_id);
                }
            }
            let idempotency_key = idempotency_key_for(delivery_id);
            sqlx::query(
                "INSERT INTO deliveries (id, notification_id, event_id, tenant, channel, status, status_reason,
                                         status_detail, idempotency_key, planned_by, created_at, updated_at,
                                         fallback_of, digest_bucket_id, digest_key, workflow_run_id, workflow_step)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13, $14, $15, $16)",
            )
            .bind(delivery_id)
            .bind(&p.notification_id)
            .bind(&event_id)
            .bind(&req.tenant)
            .bind(channel.as_str())
            .bind(standing.status)
            .bind(standing.reason)
            .bind(&standing.detail)
            .bind(&idempotency_key)
            .bind(plugin)
            .bind(&now)
            .bind(fallback_of)
            .bind(bucket.as_deref())
            .bind(digest_key)
            .bind(run.map(|(id, _)| id))
            .bind(run.map(|(_, step)| step))
            .execute(&mut *tx)
            .await?;
            // A first step suppressed at plan time has its final outcome already.
            if let (Some((run_id, step)), "suppressed") = (run, standing.status) {
                runs::advance(
                    tx,
                    run_id,
                    step,
                    Some(delivery_id),
                    crate::workflows::StepOutcome::Suppressed,
                    format!(
                        "delivery {delivery_id} suppressed at plan time ({})",
                        standing.reason.unwrap_or_default()
                    ),
                )
                .await?;
            }
            // The job that will send it commits with it, or neither exists.
            if let Some(run_at) = standing.run_at {
                queue::enqueue(
                    tx,
                    NewJob {
                        kind: queue::job_kind::DELIVER,
                        subject_id: delivery_id,
                        tenant: &req.tenant,
                        run_at,
                        deferred: standing.reason.filter(|_| standing.status == "deferred"),
                    },
                )
                .await?;
            }
            if let (true, Some(b)) = (full, &bucket) {
                // The bucket reached its rule's max items with this member: emit it now.
                buckets::emit_in(tx, b, now_time, Some(buckets::closed_by::MAX_ITEMS)).await?;
            }
            story.push(by(
                kind::DELIVERY_PLANNED,
                Some(&p.notification_id),
                Some(delivery_id),
                Some("notifier_selected_channel"),
                format!(
                    "{channel} for recipient {}{}",
                    p.recipient.id,
                    match (&p.fallbacks[i], &fallbacks[i]) {
                        (Some(_), None) => {
                            ", a fallback of in-app sent without waiting: the in-app delivery is suppressed"
                        }
                        (Some(_), Some(_)) => ", a fallback of in-app",
                        _ => "",
                    }
                ),
            ));
            story.push(NewTrace {
                plugin: None,
                ..by(
                    kind::POLICY_CHECKED,
                    Some(&p.notification_id),
                    Some(delivery_id),
                    Some(decision.code()),
                    decision.to_string(),
                )
            });
            if let Some((why, detail)) = held_trace {
                story.push(NewTrace {
                    plugin: None,
                    ..by(
                        kind::DELIVERY_HELD,
                        Some(&p.notification_id),
                        Some(delivery_id),
                        Some(why),
                        detail,
                    )
                });
            }
            if let Some(k) = standing.trace {
                story.push(NewTrace {
                    plugin: None,
                    ..by(
                        k,
                        Some(&p.notification_id),
                        Some(delivery_id),
                        standing.reason,
                        standing.detail.clone().unwrap_or_default(),
                    )
                });
            }
            deliveries.push(DeliveryRecord {
                id: delivery_id.to_string(),
                notification_id: p.notification_id.clone(),
                event_id: event_id.clone(),
                tenant: req.tenant.clone(),
                recipient_id: p.recipient.id.clone(),
                channel: channel.as_str().to_string(),
                status: standing.status.to_string(),
                status_reason: standing.reason.map(str::to_string),
                status_detail: standing.detail.clone(),
                idempotency_key,
                planned_by: plugin.to_string(),
                rendered_by: None,
                sent_by: None,
                provider_message_id: None,
                attempts: 0,
                created_at: now.clone(),
                updated_at: now.clone(),
            });
        }
        // The order `summary` reads them back in.
        deliveries.sort_by(|a, b| a.channel.cmp(&b.channel));
        notifications.push(NotificationSummary {
            id: p.notification_id.clone(),
            recipient_id: p.recipient.id.clone(),
            deliveries,
        });
    }
    crate::endpoints::events::append_all(tx, story).await?;
    tracing::info!(%event_id, notifications = planned.len(), "event planned");
    // What was just written, without reading it back.
    Ok(Some(TriggerOutcome {
        event_id,
        duplicate: false,
        notifications,
    }))
}

/// Where a planned delivery starts, from its policy decision and any scheduled time.
struct Standing {
    status: &'static str,
    reason: Option<&'static str>,
    detail: Option<String>,
    /// When its job is due; `None`: no job (suppressed).
    run_at: Option<chrono::DateTime<chrono::Utc>>,
    /// A trace telling the start, beyond `delivery.planned` and `policy.checked`.
    trace: Option<&'static str>,
}

/// Why a delivery that the policy allows still waits: a scheduled send, or a fallback's wait
/// for the in-app item to be read.
struct Wait {
    until: chrono::DateTime<chrono::Utc>,
    reason: &'static str,
    /// Said after the time in the status detail.
    unless: Option<String>,
}

impl Standing {
    fn of(decision: &Decision, wait: Option<Wait>, now: chrono::DateTime<chrono::Utc>) -> Standing {
        match (&decision.outcome, wait) {
            (Outcome::Suppress { reason }, _) => Standing {
                status: "suppressed",
                reason: Some(reason),
                detail: Some(format!("at plan time: {}", decision.why())),
                run_at: None,
                trace: Some(kind::DELIVERY_SUPPRESSED),
            },
            (Outcome::Defer { reason, until }, _) => Standing {
                status: "deferred",
                reason: Some(reason),
                detail: Some(format!("until {}", store::time_text(*until))),
                run_at: Some(*until),
                trace: Some(kind::DELIVERY_DEFERRED),
            },
            (Outcome::Allow, Some(w)) => Standing {
                status: "deferred",
                reason: Some(w.reason),
                detail: Some(format!(
                    "until {}{}",
                    store::time_text(w.until),
                    w.unless.unwrap_or_default()
                )),
                run_at: Some(w.until),
                trace: Some(kind::DELIVERY_DEFERRED),
            },
            (Outcome::Allow, None) => Standing {
                status: "pending",
                reason: None,
                detail: None,
                run_at: Some(now),
                trace: None,
            },
        }
    }
}

async fn find_by_key(db: &Db, tenant: &str, key: &str) -> Result<Option<String>, TriggerError> {
    Ok(
        sqlx::query("SELECT id FROM events WHERE tenant = $1 AND idempotency_key = $2")
            .bind(tenant)
            .bind(key)
            .fetch_optional(db)
            .await?
            .map(|r| r.get("id")),
    )
}

/// The current state of an event: its notifications and their deliveries.
pub async fn summary(
    db: &Db,
    event_id: &str,
    duplicate: bool,
) -> Result<TriggerOutcome, TriggerError> {
    let rows = sqlx::query(
        "SELECT id, recipient_id FROM notifications WHERE event_id = $1 ORDER BY recipient_id",
    )
    .bind(event_id)
    .fetch_all(db)
    .await?;
    let deliveries = traces::deliveries_of_event(db, event_id).await?;
    let notifications = rows
        .iter()
        .map(|r| {
            let id: String = r.get("id");
            NotificationSummary {
                deliveries: deliveries
                    .iter()
                    .filter(|d| d.notification_id == id)
                    .cloned()
                    .collect(),
                recipient_id: r.get("recipient_id"),
                id,
            }
        })
        .collect();
    Ok(TriggerOutcome {
        event_id: event_id.to_string(),
        duplicate,
        notifications,
    })
}

//! Deciding: the plan-time policy (checkpoint 1) of each planned delivery, whether it waits,
//! and whether the digest side holds it. Read by the write and by the dry run alike.

use super::plan::{FallbackWait, PlannedEvent, PlannedRecipient};
use super::request::{TriggerError, TriggerRequest};
use crate::content::{Channel, Recipient};
use crate::deliveries::{Reason, Status};
use crate::digests::cadence::{self, Cadence};
use crate::digests::rules::{self, DigestRule, Lookup};
use crate::digests::window::Window;
use crate::policy::{self, Checkpoint, Decision, Outcome, Severity};
use crate::store::{self, Db};
use crate::traces::kind;
use std::collections::HashMap;

/// When a delivery would go out: after its fallback wait, if it has one, from `start`.
pub(super) fn send_at(
    fallback: &FallbackWait,
    start: chrono::DateTime<chrono::Utc>,
) -> chrono::DateTime<chrono::Utc> {
    fallback.as_ref().map_or(start, |(_, wait)| start + *wait)
}

/// Why a delivery waits even when the policy allows it: a fallback's wait for the in-app item
/// to be read, or a scheduled send.
pub(super) fn wait_of(
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
            reason: Reason::Scheduled.as_str(),
            unless: None,
        }),
        (None, None) => None,
    }
}

/// Policy inputs by (tenant, recipient id) for every recipient of the planned events.
pub(super) type PolicyInputs = HashMap<(String, String), policy::decide::Inputs>;

/// Reads the policy inputs of all planned recipients, a query per tenant, just before the
/// write transaction begins: that is what a read inside it would see under PostgreSQL's READ
/// COMMITTED, and it keeps SQLite's single writer lock shorter. The decisions themselves, and
/// the counts behind cooldowns and caps, are taken inside the transaction.
pub(super) async fn policy_inputs(
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
pub(super) struct DigestRules {
    pub(super) rules: HashMap<String, Vec<DigestRule>>,
    /// By (tenant, recipient id, category).
    pub(super) cadences: HashMap<(String, String, String), Cadence>,
}

pub(super) async fn digest_rules(
    db: &Db,
    planned: &[&PlannedEvent<'_>],
) -> Result<DigestRules, TriggerError> {
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
pub(super) enum DigestRoute<'a> {
    /// Not held for digest: the policy's standing stands.
    Direct,
    /// Held by the notifier, or folded instead of a quiet-hours or cap decision, and a rule
    /// takes it.
    Join(JoinRoute<'a>),
    /// Held by the notifier and a rule takes it, but the recipient chose `instant` for its
    /// category: sent at once.
    Instant { rule: &'a DigestRule },
    /// Held by the notifier, but no rule of the tenant takes it: sent on its own.
    NoRule { digest_key: Option<&'a str> },
}

/// A delivery joining a digest: `rule` takes it over `window` (the rule's, or the
/// recipient's cadence: `cadence` says which); `folded` is the policy decision it replaces.
pub(super) struct JoinRoute<'a> {
    pub(super) rule: &'a DigestRule,
    pub(super) digest_key: Option<&'a str>,
    pub(super) folded: Option<String>,
    pub(super) window: Window,
    pub(super) cadence: Option<Cadence>,
}

/// Routes one planned delivery: a held one joins its rule's bucket unless the policy
/// suppressed it; one that quiet hours would defer or a cap would suppress joins a digest
/// instead when the notifier allows folding and a rule takes it. Fallback channels and
/// critical notifications are never held.
pub(super) fn digest_route<'a>(
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
        Some(c) => Some(DigestRoute::Join(JoinRoute {
            rule,
            digest_key,
            folded,
            window: c.window(zone).unwrap_or_else(|| rule.spec.window.clone()),
            cadence: Some(c),
        })),
        None => Some(DigestRoute::Join(JoinRoute {
            rule,
            digest_key,
            folded,
            window: rule.spec.window.clone(),
            cadence: None,
        })),
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
pub(super) async fn plan_time_decisions(
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
pub(super) async fn lock_counted_recipients(
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

/// Where a planned delivery starts, from its policy decision and any scheduled time.
pub(super) struct Standing {
    pub(super) status: Status,
    pub(super) reason: Option<&'static str>,
    pub(super) detail: Option<String>,
    /// When its job is due; `None`: no job (suppressed).
    pub(super) run_at: Option<chrono::DateTime<chrono::Utc>>,
    /// A trace telling the start, beyond `delivery.planned` and `policy.checked`.
    pub(super) trace: Option<&'static str>,
}

/// Why a delivery that the policy allows still waits: a scheduled send, or a fallback's wait
/// for the in-app item to be read.
pub(super) struct Wait {
    pub(super) until: chrono::DateTime<chrono::Utc>,
    pub(super) reason: &'static str,
    /// Said after the time in the status detail.
    pub(super) unless: Option<String>,
}

impl Standing {
    pub(super) fn of(
        decision: &Decision,
        wait: Option<Wait>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Standing {
        match (&decision.outcome, wait) {
            (Outcome::Suppress { reason }, _) => Standing {
                status: Status::Suppressed,
                reason: Some(reason),
                detail: Some(format!("at plan time: {}", decision.why())),
                run_at: None,
                trace: Some(kind::DELIVERY_SUPPRESSED),
            },
            (Outcome::Defer { reason, until }, _) => Standing {
                status: Status::Deferred,
                reason: Some(reason),
                detail: Some(format!("until {}", store::time_text(*until))),
                run_at: Some(*until),
                trace: Some(kind::DELIVERY_DEFERRED),
            },
            (Outcome::Allow, Some(w)) => Standing {
                status: Status::Deferred,
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
                status: Status::Pending,
                reason: None,
                detail: None,
                run_at: Some(now),
                trace: None,
            },
        }
    }
}

//! The dry run: a trigger planned and decided as it would be, written nowhere.

use super::decide::{
    DigestRoute, JoinRoute, digest_route, digest_rules, plan_time_decisions, policy_inputs, wait_of,
};
use super::plan::{Plan, PlannedRecipient, plan};
use super::request::{TriggerError, TriggerRequest};
use crate::content::Channel;
use crate::digests::buckets;
use crate::plugins::preview::{RenderFailure, Rendered, render_one};
use crate::plugins::{PluginRuntime, Registry};
use crate::policy::{Decision, Outcome};
use crate::store::{self, Db};
use serde::Serialize;

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
    /// With `render`: the content the delivery would carry, built, rendered and validated
    /// now (a suppressed channel is not rendered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rendered: Option<Rendered>,
    /// With `render`: why it could not be, and at which step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub render_error: Option<RenderFailure>,
}

/// Plans a trigger and runs the plan-time policy, writing nothing. With `render`, each channel
/// that would be sent, deferred or held also carries its rendered content (or why it could
/// not be rendered): a preview, which calls the notifier's `build` and the renderer, and
/// sends nothing.
#[tracing::instrument(skip_all, fields(notifier = %req.notifier, tenant = %req.tenant, render))]
pub async fn dry_run(
    db: &Db,
    runtime: &PluginRuntime,
    registry: &Registry,
    req: &TriggerRequest,
    render: bool,
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
            let (held, digest) = digest_said(
                digest_route(p, i, &decision, &planned, &rules, zone),
                scheduled.unwrap_or(now),
            );
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
                rendered: None,
                render_error: None,
            });
        }
        if render {
            render_channels(
                runtime,
                registry,
                &planned.plugin,
                &planned.payload,
                p,
                &mut channels,
            )
            .await;
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

/// Renders every channel of one recipient that is not suppressed, as its delivery would be
/// rendered when sent: by the notifier build that planned it and the renderer it names (else
/// the default).
async fn render_channels(
    runtime: &PluginRuntime,
    registry: &Registry,
    notifier: &str,
    payload: &str,
    p: &PlannedRecipient,
    channels: &mut [DryRunChannel],
) {
    let failure = |message: String| RenderFailure {
        step: crate::plugins::preview::Step::Render,
        reason: "no_renderer".to_string(),
        message,
    };
    let (notifier, renderer) = match registry.build(notifier) {
        Some(n) => match registry.renderer_for(n) {
            Ok(r) => (n, r),
            Err(e) => {
                let e = failure(e.to_string());
                for c in channels.iter_mut().filter(|c| c.would != "suppress") {
                    c.render_error = Some(e.clone());
                }
                return;
            }
        },
        // The build just planned the event: it is in the registry, or planning failed first.
        None => return,
    };
    for c in channels.iter_mut().filter(|c| c.would != "suppress") {
        match render_one(
            runtime,
            notifier,
            renderer,
            payload,
            &p.recipient,
            c.channel,
        )
        .await
        {
            Ok(r) => c.rendered = Some(r),
            Err(e) => c.render_error = Some(e),
        }
    }
}

/// Whether a channel would be held for digest, and what the digest side would do, in words.
fn digest_said(route: DigestRoute, at: chrono::DateTime<chrono::Utc>) -> (bool, Option<String>) {
    match route {
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
        DigestRoute::Join(JoinRoute {
            rule,
            folded,
            window,
            cadence,
            ..
        }) => {
            let (_, end) = window.bucket_at(at);
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
    }
}

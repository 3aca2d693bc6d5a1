//! The pipeline of a `deliver` job: the batch's reads (deliveries, policy inputs, send-time
//! policy decision, a digest's items), then build → render → validate → send through the
//! plugins. It writes nothing to the database: everything it did and decided goes into a
//! [`Work`] for the completer.

use super::Executor;
use super::work::{Loaded, Preloaded, Prepared, Step, Verdict, Work, failed, retry};
use crate::content::{Channel, Content, Recipient, RenderRequest};
use crate::deliveries::reason;
use crate::deliveries::transitions::{self, Attempt};
use crate::digests::buckets::{self, DigestItems};
use crate::jobs::{Leased, job_kind};
use crate::plugins::assets::Assets;
use crate::plugins::pins;
use crate::plugins::{
    CallError, FailureReason, OutgoingMessage, Plugin, Registry, Reuse, SendError,
};
use crate::policy::{self, Checkpoint, Decision, Outcome};
use crate::store::{self, Conn, StoreError};
use crate::traces::kind;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The builds a delivery runs with.
struct Chosen<'r> {
    /// None for a digest: its items are built by their own notifiers.
    notifier: Option<&'r Plugin>,
    renderer: &'r Plugin,
    adapter: Option<&'r Plugin>,
}

impl Executor {
    /// Reads what a leased batch of jobs needs before any plugin runs: the deliveries, their
    /// recipients' policy inputs and the send-time policy decision, in a few statements for
    /// the whole batch rather than a few per job. Each job then runs with [`Executor::execute`].
    #[tracing::instrument(skip_all, fields(jobs = jobs.len()))]
    pub async fn prepare(&self, jobs: Vec<Leased>) -> Result<Vec<(Leased, Prepared)>, StoreError> {
        let ids: Vec<&str> = jobs
            .iter()
            .filter(|j| j.kind == job_kind::DELIVER)
            .map(|j| j.subject_id.as_str())
            .collect();
        if ids.is_empty() {
            return Ok(jobs
                .into_iter()
                .map(|j| (j, Prepared(Preloaded::NotDelivery)))
                .collect());
        }
        // One connection for every read, returned to the pool before any plugin runs.
        let mut conn = self.db.acquire().await?;
        let mut loaded: HashMap<String, Result<Loaded, StoreError>> =
            transitions::load_to_send(&mut conn, &ids)
                .await?
                .into_iter()
                .map(|(id, row)| (id, row.and_then(Loaded::parse)))
                .collect();
        let now = store::now();
        let mut by_tenant: HashMap<&str, Vec<&Recipient>> = HashMap::new();
        for d in loaded.values().flat_map(|d| d.as_ref().ok()) {
            by_tenant.entry(&d.tenant).or_default().push(&d.recipient);
        }
        // Policy inputs by tenant, then recipient.
        let mut inputs: HashMap<String, HashMap<String, policy::decide::Inputs>> = HashMap::new();
        for (tenant, recipients) in by_tenant {
            let of_tenant =
                policy::decide::Inputs::load_many(&mut conn, tenant, &recipients, now).await?;
            inputs.insert(tenant.to_string(), of_tenant);
        }
        let none = policy::decide::Inputs::default();
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            let prepared = if job.kind != job_kind::DELIVER {
                Preloaded::NotDelivery
            } else {
                self.faults.check_preparing(&job.tenant);
                match loaded.remove(&job.subject_id) {
                    None => Preloaded::Gone,
                    Some(Err(e)) => Preloaded::Failed(e),
                    Some(Ok(d)) => {
                        let i = inputs
                            .get(&d.tenant)
                            .and_then(|of_tenant| of_tenant.get(&d.recipient.id))
                            .unwrap_or(&none);
                        ready(&mut conn, d, i).await
                    }
                }
            };
            out.push((job, Prepared(prepared)));
        }
        Ok(out)
    }

    /// Runs a `deliver` job with what [`Executor::prepare`] read for it.
    pub(super) async fn deliver(&self, mut work: Work, prepared: Prepared) -> Work {
        let (d, decision, digest, decided_at) = match prepared.0 {
            Preloaded::Ready(ready) => *ready,
            Preloaded::Failed(e) => {
                work.verdict = Verdict::Fault {
                    detail: format!("preparing the job failed: {e}"),
                };
                return work;
            }
            Preloaded::Fault(detail) => {
                work.verdict = Verdict::Fault { detail };
                return work;
            }
            Preloaded::Gone | Preloaded::NotDelivery => {
                work.verdict = Verdict::Skip("the delivery is no longer waiting to be sent".into());
                return work;
            }
        };
        work.verdict = match &decision.outcome {
            Outcome::Allow => self.run(&mut work, &d, digest).await,
            Outcome::Suppress { reason } => Verdict::Suppressed {
                reason,
                detail: format!("at send time: {}", decision.why()),
            },
            Outcome::Defer { reason, until } => Verdict::Deferred {
                reason,
                until: *until,
            },
        };
        work.policy = Some((decision, decided_at));
        work.delivery = Some(d);
        work
    }

    /// Build → render → validate → send (or, in-app, only up to the content the commit
    /// writes to the inbox).
    async fn run(&self, work: &mut Work, d: &Loaded, digest: Option<DigestItems>) -> Verdict {
        let registry = self.registry.current();
        match self.run_with(work, d, &registry, digest).await {
            Ok(verdict) | Err(verdict) => verdict,
        }
    }

    async fn run_with(
        &self,
        work: &mut Work,
        d: &Loaded,
        registry: &Registry,
        digest: Option<DigestItems>,
    ) -> Result<Verdict, Verdict> {
        let chosen = choose(&mut work.steps, d, registry, digest.is_none())?;
        let (request, assets) = match (digest, chosen.notifier) {
            (None, Some(notifier)) => (
                self.build(work, d, notifier).await?,
                notifier.assets().clone(),
            ),
            (Some(items), _) => {
                let request = self.digest_request(d, registry, &items).await?;
                work.steps.push(Step {
                    at: store::now(),
                    kind: kind::DELIVERY_BUILT,
                    detail: format!(
                        "template {} for {}: a digest of {} item(s) of bucket {}, {} shown",
                        request.template,
                        request.channel,
                        items.count,
                        items.bucket.id,
                        items.first.len() + items.last.len()
                    ),
                    plugin: None,
                });
                // The `digest` template is no notifier's: it ships in the renderer's own
                // package.
                (request, chosen.renderer.assets().clone())
            }
            // Not reached: a delivery that is no digest had its notifier resolved above.
            (None, None) => {
                return Err(failed(
                    reason::NOTIFIER_MISSING,
                    d.notifier_key.clone(),
                    None,
                ));
            }
        };
        let content = self
            .render_valid(work, d, chosen.renderer, &request, &assets)
            .await?;
        if d.channel == Channel::InApp {
            // The inbox row is written by the commit, with the job's completion.
            return Ok(Verdict::Succeeded);
        }
        let Some(adapter) = chosen.adapter else {
            return Err(failed(
                reason::NO_ADAPTER,
                format!("no channel-adapter plugin serves {}", d.channel),
                None,
            ));
        };
        self.send(work, d, adapter, content).await
    }

    /// The render request of a plain delivery, built by its notifier.
    async fn build(
        &self,
        work: &mut Work,
        d: &Loaded,
        notifier: &Plugin,
    ) -> Result<RenderRequest, Verdict> {
        let request = self
            .runtime
            .build(
                notifier,
                &d.payload,
                &d.recipient,
                d.channel,
                Reuse::Tenant(&d.tenant),
            )
            .await
            .map_err(|e| call_failed(reason::BUILD_FAILED, e))?;
        work.steps.push(Step {
            at: store::now(),
            kind: kind::DELIVERY_BUILT,
            detail: format!("template {} for {}", request.template, request.channel),
            plugin: Some(notifier.reference().to_string()),
        });
        // The renderer reads the templates of the notifier whose request it renders.
        Ok(request)
    }

    /// Renders the request and checks the content against the channel's contract; the
    /// content is kept in `work` for the commit.
    async fn render_valid(
        &self,
        work: &mut Work,
        d: &Loaded,
        renderer: &Plugin,
        request: &RenderRequest,
        assets: &Arc<Assets>,
    ) -> Result<Content, Verdict> {
        let content = self
            .runtime
            .render(renderer, request, assets, Reuse::Tenant(&d.tenant))
            .await
            .map_err(|e| call_failed(reason::RENDER_FAILED, e))?;
        let rendered_by = renderer.reference().to_string();
        work.steps.push(Step {
            at: store::now(),
            kind: kind::DELIVERY_RENDERED,
            detail: format!(
                "{} content, {} bytes",
                content.channel(),
                content.approx_size()
            ),
            plugin: Some(rendered_by.clone()),
        });
        if let Err(invalid) = content.validate(d.channel) {
            return Err(failed(
                reason::CONTENT_INVALID,
                format!("{} {}", invalid.field, invalid.problem),
                Some(rendered_by),
            ));
        }
        work.steps.push(Step {
            at: store::now(),
            kind: kind::CONTENT_VALID,
            detail: format!("{} contract satisfied", d.channel),
            plugin: None,
        });
        work.content = Some((content.clone(), rendered_by));
        Ok(content)
    }

    /// The one-click unsubscribe headers of an email, when the engine knows its public URL.
    async fn unsubscribe_headers(&self, d: &Loaded) -> Result<Vec<(String, String)>, Verdict> {
        match (&self.unsubscribe, d.channel) {
            (Some(links), Channel::Email) => links
                .headers(&self.db, &d.tenant, &d.recipient.id, &d.category, &d.id)
                .await
                // Without the link the email would break RFC 8058's promise; it waits.
                .map_err(|e| Verdict::Retry {
                    reason: reason::UNSUBSCRIBE_LINK,
                    detail: format!("the unsubscribe link could not be signed: {e}"),
                    plugin: None,
                    retry_after: None,
                }),
            _ => Ok(Vec::new()),
        }
    }

    /// Sends the content through the adapter: the attempt goes into `work`, and what the
    /// provider answered decides the verdict.
    async fn send(
        &self,
        work: &mut Work,
        d: &Loaded,
        adapter: &Plugin,
        content: Content,
    ) -> Result<Verdict, Verdict> {
        let headers = self.unsubscribe_headers(d).await?;
        let message = OutgoingMessage {
            delivery_id: d.id.clone(),
            notification_id: d.notification_id.clone(),
            tenant: d.tenant.clone(),
            idempotency_key: d.idempotency_key.clone(),
            attempt: work.job.attempt as u32,
            channel: d.channel,
            recipient: d.recipient.clone(),
            content,
            headers,
        };
        let started_at = store::now();
        let clock = Instant::now();
        let result = self
            .runtime
            .send(adapter, &message, Reuse::Tenant(&d.tenant))
            .await;
        let duration_ms = clock.elapsed().as_millis() as i64;
        let sent_by = adapter.reference().to_string();
        work.sent_by = Some(sent_by.clone());
        let mut row = Attempt {
            adapter: sent_by.clone(),
            started_at,
            duration_ms,
            outcome: "succeeded",
            error: None,
            provider_message_id: None,
        };
        let verdict = match result {
            Ok(Ok(id)) => {
                row.provider_message_id = Some(id);
                Verdict::Succeeded
            }
            Ok(Err(e)) => {
                let detail = e.to_string();
                row.error = Some(detail.clone());
                match e {
                    SendError::Transient { .. } => {
                        row.outcome = "transient";
                        retry(reason::SEND_TRANSIENT, detail, Some(sent_by), None)
                    }
                    SendError::RateLimited { retry_after_ms, .. } => {
                        row.outcome = "rate_limited";
                        let after = Duration::from_millis(retry_after_ms);
                        retry(
                            reason::SEND_RATE_LIMITED,
                            detail,
                            Some(sent_by),
                            Some(after),
                        )
                    }
                    SendError::Permanent { .. } => {
                        row.outcome = "permanent";
                        failed(reason::SEND_PERMANENT, detail, Some(sent_by))
                    }
                }
            }
            Err(e) => {
                row.outcome = e.reason.as_str();
                row.error = Some(e.to_string());
                call_failed(reason::ADAPTER_FAILED, e)
            }
        };
        work.attempt = Some(row);
        Ok(verdict)
    }

    /// The render request of a digest delivery: each shown item is built by its notifier and
    /// rendered on the digest's channel, and its one-line summary goes into the `digest`
    /// template's data with the count, the rule, the group and the window.
    async fn digest_request(
        &self,
        d: &Loaded,
        registry: &Registry,
        items: &DigestItems,
    ) -> Result<RenderRequest, Verdict> {
        let mut shown = Vec::with_capacity(items.first.len() + items.last.len());
        for item in items.first.iter().chain(&items.last) {
            let notifier = registry.notifier(&item.notifier_key).map_err(|e| {
                failed(
                    reason::NOTIFIER_MISSING,
                    format!("digest item {}: {e}", item.delivery_id),
                    None,
                )
            })?;
            let request = self
                .runtime
                .build(
                    notifier,
                    &item.payload,
                    &item.recipient,
                    d.channel,
                    Reuse::Tenant(&d.tenant),
                )
                .await
                .map_err(|e| item_failed(reason::BUILD_FAILED, &item.delivery_id, e))?;
            // Rendered by the item's notifier's renderer, with its templates.
            let renderer = registry.renderer_for(notifier).map_err(|e| {
                failed(
                    reason::RENDER_FAILED,
                    format!("digest item {}: {e}", item.delivery_id),
                    None,
                )
            })?;
            let content = self
                .runtime
                .render(
                    renderer,
                    &request,
                    notifier.assets(),
                    Reuse::Tenant(&d.tenant),
                )
                .await
                .map_err(|e| item_failed(reason::RENDER_FAILED, &item.delivery_id, e))?;
            shown.push(serde_json::json!({
                "summary": content.summary(),
                "notifier": item.notifier_key,
                "category": item.category,
                "digest_key": item.digest_key,
                "at": item.created_at,
            }));
        }
        let last = shown.split_off(items.first.len());
        let b = &items.bucket;
        let data = serde_json::json!({
            "count": items.count,
            "first": shown,
            "more": items.count - (items.first.len() + items.last.len()) as i64,
            "last": last,
            "rule": b.rule_key,
            "group": b.group_value,
            "window": {"start": b.window_start, "end": b.window_end},
        });
        Ok(RenderRequest {
            template: "digest".to_string(),
            channel: d.channel,
            data: data.to_string(),
            locale: None,
        })
    }
}

/// The notifier (not for a digest), renderer and adapter a delivery runs with: a workflow
/// step or a digest uses the builds its run or bucket began with.
fn choose<'r>(
    steps: &mut Vec<Step>,
    d: &Loaded,
    registry: &'r Registry,
    with_notifier: bool,
) -> Result<Chosen<'r>, Verdict> {
    let notifier = if with_notifier {
        let current = registry.notifier(&d.notifier_key).ok();
        let Some(notifier) = pinned(
            steps,
            pins::choose(registry, d.pins.notifier.as_deref(), current),
        ) else {
            let e = registry
                .notifier(&d.notifier_key)
                .err()
                .map(|e| e.to_string());
            return Err(failed(
                reason::NOTIFIER_MISSING,
                e.unwrap_or_default(),
                None,
            ));
        };
        Some(notifier)
    } else {
        None
    };
    // The renderer the notifier's manifest names (else the default); a digest's own
    // `digest` template goes to the default renderer.
    let current = match notifier {
        Some(n) => registry.renderer_for(n),
        None => registry.renderer(),
    };
    let Some(renderer) = pinned(
        steps,
        pins::choose(
            registry,
            d.pins.renderer.as_deref(),
            current.as_ref().ok().copied(),
        ),
    ) else {
        let e = current.err().map(|e| e.to_string()).unwrap_or_default();
        return Err(failed(reason::RENDER_FAILED, e, None));
    };
    let current = registry.adapter_for(d.channel);
    let adapter = pinned(
        steps,
        pins::choose(
            registry,
            d.pins.adapters.get(&d.channel).map(String::as_str),
            current,
        ),
    );
    Ok(Chosen {
        notifier,
        renderer,
        adapter,
    })
}

/// A loaded delivery made ready to run: its send-time policy decision and, for a digest that
/// may go, its items.
async fn ready(conn: &mut Conn, d: Loaded, inputs: &policy::decide::Inputs) -> Preloaded {
    let decided_at = store::now();
    let decision = match check_policy(conn, &d, inputs).await {
        Ok(decision) => decision,
        Err(e) => return Preloaded::Failed(e),
    };
    let digest = match (&d.digest_of, &decision.outcome) {
        (Some(bucket), Outcome::Allow) => match buckets::items_of(conn, bucket).await {
            Ok(items) => Some(items),
            Err(crate::digests::BucketError::Store(e)) => return Preloaded::Failed(e),
            Err(other) => return Preloaded::Failed(StoreError::Corrupt(other.to_string())),
        },
        _ => None,
    };
    Preloaded::Ready(Box::new((d, decision, digest, decided_at)))
}

/// Policy checkpoint 2: every input read again, since any may have changed while the delivery
/// waited.
async fn check_policy(
    conn: &mut Conn,
    d: &Loaded,
    inputs: &policy::decide::Inputs,
) -> Result<Decision, StoreError> {
    let now = store::now();
    let subject = policy::decide::Subject {
        tenant: &d.tenant,
        recipient: &d.recipient,
        notifier_key: &d.notifier_key,
        category: &d.category,
        channel: d.channel,
        severity: d.severity,
        notification_id: &d.notification_id,
        notification_created_at: d.notification_created_at,
        delivery_id: &d.id,
        send_at: now,
        fallback_of: d.fallback_of.as_ref().map(|(id, at)| (id.as_str(), *at)),
    };
    policy::decide::decide(conn, Checkpoint::Send, inputs, &subject, now).await
}

/// The build [`pins::choose`] chose; a pin it could not honour is told in the story.
fn pinned<'a>(
    steps: &mut Vec<Step>,
    (plugin, lost): (Option<&'a Plugin>, Option<String>),
) -> Option<&'a Plugin> {
    if let Some(lost) = lost {
        steps.push(Step {
            at: store::now(),
            kind: kind::PIN_LOST,
            detail: lost,
            plugin: None,
        });
    }
    plugin
}

/// A digest item's plugin call failed: the digest fails (or retries) the same way, naming it.
fn item_failed(reason: &'static str, item: &str, e: CallError) -> Verdict {
    let mut v = call_failed(reason, e);
    if let Verdict::Failed { detail, .. } | Verdict::Retry { detail, .. } = &mut v {
        *detail = format!("digest item {item}: {detail}");
    }
    v
}

/// A plugin that trapped, timed out, ran out of memory or could not start may do better next
/// time: that is transient. Its own error or a denied capability will not change: permanent.
fn call_failed(reason: &'static str, e: CallError) -> Verdict {
    let transient = matches!(
        e.reason,
        FailureReason::Trap
            | FailureReason::Timeout
            | FailureReason::MemoryLimit
            | FailureReason::Instantiate
    );
    let (detail, plugin) = (e.to_string(), Some(e.plugin));
    if transient {
        retry(reason, detail, plugin, None)
    } else {
        failed(reason, detail, plugin)
    }
}

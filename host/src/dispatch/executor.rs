//! The executor: one leased delivery job through build → render → validate → send (or inbox),
//! then its outcome committed together with the job's completion.
//!
//! Durability rule: [`execute`] writes nothing. It calls the plugins and returns a [`Work`]:
//! everything that happened and what should follow. [`commit`] writes a batch of them in one
//! transaction, each only if its job's lease still holds (else the outcome is recorded as a
//! fact but changes nothing). A crash anywhere before that commit leaves the job leased; the
//! lease expires, another worker repeats the send under the same idempotency key, and the
//! provider drops the repeat.

use super::queue::{self, Leased, job_state};
use super::retry::RetryPolicy;
use crate::content::{Channel, Content, Recipient, RenderRequest};
use crate::digests::buckets::{self, DigestItems, Emission};
use crate::feedback;
use crate::inbox;
use crate::plugins::pins;
use crate::plugins::{
    CallError, FailureReason, LiveRegistry, OutgoingMessage, PluginRuntime, Registry, Reuse,
    SendError,
};
use crate::policy::{self, Checkpoint, Decision, Outcome, Severity};
use crate::store::{self, Conn, Db, StoreError};
use crate::traces::{self, NewTrace, kind};
use crate::workflows;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a delivery stands after one job run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Dispatched {
    pub delivery_id: String,
    pub status: String,
    pub reason: Option<String>,
    /// When the next try is due, for a delivery waiting to be retried.
    pub retry_at: Option<String>,
}

/// Stable status reasons (stored; do not rename).
pub mod reason {
    pub const NOTIFIER_MISSING: &str = "notifier_missing";
    pub const BUILD_FAILED: &str = "build_failed";
    pub const RENDER_FAILED: &str = "render_failed";
    pub const CONTENT_INVALID: &str = "content_invalid";
    pub const NO_ADAPTER: &str = "no_adapter";
    /// The one-click unsubscribe link of an email could not be made (a database error).
    pub const UNSUBSCRIBE_LINK: &str = "unsubscribe_link_failed";
    pub const SEND_PERMANENT: &str = "send_permanent";
    pub const SEND_TRANSIENT: &str = "send_transient";
    pub const SEND_RATE_LIMITED: &str = "send_rate_limited";
    pub const ADAPTER_FAILED: &str = "adapter_failed";
    pub const RETRIES_EXHAUSTED: &str = "retries_exhausted";
    pub const CANCELLED: &str = "cancelled_by_request";
    pub const SCHEDULED: &str = "scheduled";
}

/// Everything a job run needs; cheap to clone into each job's task.
#[derive(Clone)]
pub struct Executor {
    pub db: Db,
    pub runtime: Arc<PluginRuntime>,
    pub registry: LiveRegistry,
    pub retry: Arc<RetryPolicy>,
    /// When the engine knows its public URL, every email carries a one-click unsubscribe
    /// link under it (RFC 8058).
    pub unsubscribe: Option<crate::unsubscribe::Links>,
    /// Posts lifecycle events to the endpoints applications registered.
    pub endpoints: crate::endpoints::Sender,
}

/// The delivery a job is about, as loaded when its job ran.
struct Loaded {
    id: String,
    tenant: String,
    event_id: String,
    notification_id: String,
    channel: Channel,
    idempotency_key: String,
    notifier_key: String,
    payload: String,
    recipient: Recipient,
    category: String,
    severity: Severity,
    notification_created_at: DateTime<Utc>,
    /// A fallback's in-app delivery, and when its inbox item was read.
    fallback_of: Option<(String, Option<DateTime<Utc>>)>,
    /// A digest delivery's bucket.
    digest_of: Option<String>,
    /// A workflow step's delivery: its run and step.
    workflow: Option<(String, String)>,
    /// The builds its workflow run or digest bucket began with (none for other deliveries).
    pins: crate::plugins::pins::Pins,
}

/// A step worth telling in `explain`, kept until the commit.
struct Step {
    at: DateTime<Utc>,
    kind: &'static str,
    detail: String,
    plugin: Option<String>,
}

struct AttemptRow {
    adapter: String,
    started_at: DateTime<Utc>,
    duration_ms: i64,
    outcome: &'static str,
    error: Option<String>,
    provider_message_id: Option<String>,
}

enum Verdict {
    Succeeded,
    Failed {
        reason: &'static str,
        detail: String,
        plugin: Option<String>,
    },
    /// A failure worth another try, no earlier than `retry_after` if the provider gave one.
    Retry {
        reason: &'static str,
        detail: String,
        plugin: Option<String>,
        retry_after: Option<Duration>,
    },
    /// The delivery is no longer waiting (cancelled, finished, gone): drop the job.
    Skip(String),
    /// The send-time policy said no: no attempt, the adapter is not called.
    Suppressed {
        reason: &'static str,
        detail: String,
    },
    /// The send-time policy said not yet (quiet hours): the job waits until `until`, and this
    /// lease does not count as an attempt.
    Deferred {
        reason: &'static str,
        until: DateTime<Utc>,
    },
    /// A `digest_emit` job: the emission is written by the commit.
    Emit,
    /// A `workflow_wake` job: the run's move is written by the commit.
    Wake,
    /// An `endpoint_send` job: one post of a lifecycle event, written by the commit.
    Post(crate::endpoints::send::Attempted),
}

/// What one job run did and decided; written by [`commit`].
pub struct Work {
    job: Leased,
    delivery: Option<Loaded>,
    steps: Vec<Step>,
    content: Option<(Content, String)>,
    attempt: Option<AttemptRow>,
    sent_by: Option<String>,
    /// Policy checkpoint 2, taken before any plugin ran.
    policy: Option<Decision>,
    verdict: Verdict,
}

impl Executor {
    /// Runs one leased delivery job: plugin calls only, no writes.
    #[tracing::instrument(skip_all, fields(job = %job.id, delivery = %job.subject_id, attempt = job.attempt))]
    pub async fn execute(&self, job: Leased) -> Result<Work, StoreError> {
        let mut work = Work {
            delivery: None,
            steps: Vec::new(),
            content: None,
            attempt: None,
            sent_by: None,
            policy: None,
            verdict: Verdict::Succeeded,
            job,
        };
        if work.job.kind == queue::job_kind::DIGEST_EMIT {
            // Database work only, done inside the commit's transaction.
            work.verdict = Verdict::Emit;
            return Ok(work);
        }
        if work.job.kind == queue::job_kind::WORKFLOW_WAKE {
            work.verdict = Verdict::Wake;
            return Ok(work);
        }
        if work.job.kind == queue::job_kind::ENDPOINT_SEND {
            let attempted = self
                .endpoints
                .attempt(&self.db, &work.job.subject_id)
                .await?;
            work.verdict = Verdict::Post(attempted);
            return Ok(work);
        }
        if work.job.kind != queue::job_kind::DELIVER {
            work.verdict = Verdict::Skip(format!("unknown job kind `{}`", work.job.kind));
            return Ok(work);
        }
        // One connection for every read, returned to the pool before any plugin runs.
        let mut conn = self.db.acquire().await?;
        let Some(d) = load(&mut conn, &work.job.subject_id).await? else {
            work.verdict = Verdict::Skip("the delivery is no longer waiting to be sent".into());
            return Ok(work);
        };
        let decision = check_policy(&mut conn, &d).await?;
        let digest = match (&d.digest_of, &decision.outcome) {
            (Some(bucket), Outcome::Allow) => Some(
                buckets::items_of(&mut conn, bucket)
                    .await
                    .map_err(|e| match e {
                        crate::digests::BucketError::Store(e) => e,
                        other => StoreError::Corrupt(other.to_string()),
                    })?,
            ),
            _ => None,
        };
        drop(conn);
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
        work.policy = Some(decision);
        work.delivery = Some(d);
        Ok(work)
    }

    async fn run(&self, work: &mut Work, d: &Loaded, digest: Option<DigestItems>) -> Verdict {
        let registry = self.registry.current();
        // A workflow step or a digest uses the builds its run or bucket began with.
        let current = registry.renderer().ok();
        let Some(renderer) = pinned(
            &mut work.steps,
            pins::choose(&registry, d.pins.renderer.as_deref(), current),
        ) else {
            let e = registry
                .renderer()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            return failed(reason::RENDER_FAILED, e, None);
        };
        let current = registry.adapter_for(d.channel);
        let adapter = pinned(
            &mut work.steps,
            pins::choose(
                &registry,
                d.pins.adapters.get(&d.channel).map(String::as_str),
                current,
            ),
        );
        let request = match digest {
            None => {
                let current = registry.notifier(&d.notifier_key).ok();
                let Some(notifier) = pinned(
                    &mut work.steps,
                    pins::choose(&registry, d.pins.notifier.as_deref(), current),
                ) else {
                    let e = registry
                        .notifier(&d.notifier_key)
                        .err()
                        .map(|e| e.to_string());
                    return failed(reason::NOTIFIER_MISSING, e.unwrap_or_default(), None);
                };
                let request = match self
                    .runtime
                    .build(
                        notifier,
                        &d.payload,
                        &d.recipient,
                        d.channel,
                        Reuse::Tenant(&d.tenant),
                    )
                    .await
                {
                    Ok(r) => r,
                    Err(e) => return call_failed(reason::BUILD_FAILED, e),
                };
                work.steps.push(Step {
                    at: store::now(),
                    kind: kind::DELIVERY_BUILT,
                    detail: format!("template {} for {}", request.template, request.channel),
                    plugin: Some(notifier.reference().to_string()),
                });
                request
            }
            Some(items) => match self.digest_request(d, &registry, renderer, &items).await {
                Ok(request) => {
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
                    request
                }
                Err(verdict) => return verdict,
            },
        };

        let content = match self
            .runtime
            .render(renderer, &request, Reuse::Tenant(&d.tenant))
            .await
        {
            Ok(c) => c,
            Err(e) => return call_failed(reason::RENDER_FAILED, e),
        };
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
            return failed(
                reason::CONTENT_INVALID,
                format!("{} {}", invalid.field, invalid.problem),
                Some(rendered_by),
            );
        }
        work.steps.push(Step {
            at: store::now(),
            kind: kind::CONTENT_VALID,
            detail: format!("{} contract satisfied", d.channel),
            plugin: None,
        });
        work.content = Some((content.clone(), rendered_by));
        if d.channel == Channel::InApp {
            // The inbox row is written by the commit, with the job's completion.
            return Verdict::Succeeded;
        }

        let Some(adapter) = adapter else {
            return failed(
                reason::NO_ADAPTER,
                format!("no channel-adapter plugin serves {}", d.channel),
                None,
            );
        };
        let headers = match (&self.unsubscribe, d.channel) {
            (Some(links), Channel::Email) => match links
                .headers(&self.db, &d.tenant, &d.recipient.id, &d.category, &d.id)
                .await
            {
                Ok(h) => h,
                Err(e) => {
                    // Without the link the email would break RFC 8058's promise; it waits.
                    return Verdict::Retry {
                        reason: reason::UNSUBSCRIBE_LINK,
                        detail: format!("the unsubscribe link could not be signed: {e}"),
                        plugin: None,
                        retry_after: None,
                    };
                }
            },
            _ => Vec::new(),
        };
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
        let mut row = AttemptRow {
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
        verdict
    }

    /// The render request of a digest delivery: each shown item is built by its notifier and
    /// rendered on the digest's channel, and its one-line summary goes into the `digest`
    /// template's data with the count, the rule, the group and the window.
    async fn digest_request(
        &self,
        d: &Loaded,
        registry: &Registry,
        renderer: &crate::plugins::Plugin,
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
            let content = self
                .runtime
                .render(renderer, &request, Reuse::Tenant(&d.tenant))
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

    /// Writes a batch of job outcomes in one transaction; returns where each delivery stands.
    #[tracing::instrument(skip_all, fields(jobs = works.len()))]
    pub async fn commit(&self, works: Vec<Work>) -> Result<Vec<Dispatched>, StoreError> {
        if works.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(works.len());
        let mut tx = self.db.begin().await?;
        let mut rescheduled = false;
        for work in works {
            let (dispatched, again) = match work.verdict {
                Verdict::Post(attempted) => (
                    None,
                    crate::endpoints::send::commit(&mut tx, &self.endpoints, &work.job, attempted)
                        .await?,
                ),
                _ => commit_one(&mut tx, &self.retry, work).await?,
            };
            rescheduled |= again;
            out.extend(dispatched);
        }
        if rescheduled {
            queue::announce(&mut tx, store::backend(&self.db)).await?;
        }
        tx.commit().await?;
        Ok(out)
    }
}

/// The build [`pins::choose`] chose; a pin it could not honour is told in the story.
fn pinned<'a>(
    steps: &mut Vec<Step>,
    (plugin, lost): (Option<&'a crate::plugins::Plugin>, Option<String>),
) -> Option<&'a crate::plugins::Plugin> {
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

fn failed(reason: &'static str, detail: String, plugin: Option<String>) -> Verdict {
    Verdict::Failed {
        reason,
        detail,
        plugin,
    }
}

fn retry(
    reason: &'static str,
    detail: String,
    plugin: Option<String>,
    retry_after: Option<Duration>,
) -> Verdict {
    Verdict::Retry {
        reason,
        detail,
        plugin,
        retry_after,
    }
}

/// A plugin that trapped, timed out, ran out of memory or could not start may do better next
/// time: that is transient. Its own error or a denied capability will not change: permanent.
/// A digest item's plugin call failed: the digest fails (or retries) the same way, naming it.
fn item_failed(reason: &'static str, item: &str, e: CallError) -> Verdict {
    let mut v = call_failed(reason, e);
    if let Verdict::Failed { detail, .. } | Verdict::Retry { detail, .. } = &mut v {
        *detail = format!("digest item {item}: {detail}");
    }
    v
}

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

/// One job's outcome inside the batch transaction. Returns the delivery's new standing (none
/// when the job was only dropped) and whether the job was put back in the queue.
async fn commit_one(
    tx: &mut Conn,
    policy: &RetryPolicy,
    work: Work,
) -> Result<(Option<Dispatched>, bool), StoreError> {
    match work.verdict {
        Verdict::Emit => return commit_emit(tx, &work.job).await,
        Verdict::Wake => return commit_wake(tx, &work.job).await,
        _ => {}
    }
    let job = &work.job;
    let now = store::now();
    // First the lease: everything else is written only if this worker still holds the job.
    let mut retry_at = None;
    let verdict = match work.verdict {
        Verdict::Retry {
            reason,
            detail,
            plugin,
            retry_after,
        } => match policy.next_delay(job.attempt as u32, retry_after) {
            Some(delay) => {
                let at = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
                retry_at = Some(at);
                Verdict::Retry {
                    reason,
                    detail,
                    plugin,
                    retry_after,
                }
            }
            None => Verdict::Failed {
                reason: reason::RETRIES_EXHAUSTED,
                detail: format!(
                    "gave up after {} attempts; last: {reason}: {detail}",
                    job.attempt
                ),
                plugin,
            },
        },
        other => other,
    };
    let held = match (&verdict, retry_at) {
        (Verdict::Retry { detail, .. }, Some(at)) => {
            queue::reschedule(tx, job, at, job_state::RETRYING, None, Some(detail), false).await?
        }
        (Verdict::Deferred { reason, until }, _) => {
            queue::reschedule(
                tx,
                job,
                *until,
                job_state::DEFERRED,
                Some(reason),
                None,
                true,
            )
            .await?
        }
        _ => queue::finish(tx, job).await?,
    };

    let Some(d) = &work.delivery else {
        if let Verdict::Skip(why) = &verdict {
            tracing::info!(job = %job.id, %why, "job dropped");
        }
        return Ok((None, false));
    };
    let trace = |kind, reason: Option<&'static str>, detail: Option<String>| NewTrace {
        tenant: &d.tenant,
        event_id: &d.event_id,
        notification_id: Some(&d.notification_id),
        delivery_id: Some(&d.id),
        kind,
        reason,
        detail,
        ..Default::default()
    };
    let attempt_no = job.attempt;

    if !held {
        // The lease expired and another worker took the job (or it was cancelled). What this
        // worker did is still a fact worth keeping; its verdict is not.
        if let Some(a) = &work.attempt {
            insert_attempt(tx, &d.id, attempt_no, a).await?;
        }
        traces::append(
            tx,
            NewTrace {
                attempt: Some(attempt_no),
                ..trace(
                    kind::LEASE_LOST,
                    Some("lease_lost"),
                    Some(format!(
                        "worker {} lost its lease before committing; its outcome was not applied",
                        job.owner
                    )),
                )
            },
        )
        .await?;
        if let Some(a) = &work.attempt {
            claim_feedback(tx, d, a).await?;
        }
        tracing::warn!(job = %job.id, delivery = %d.id, "lease lost before commit");
        return Ok((None, false));
    }

    let mut leased = format!("attempt {attempt_no} leased by {}", job.owner);
    if let Some(previous) = &job.rescued_from {
        leased.push_str(&format!(", taken over from {previous} whose lease expired"));
    }
    if job.from_state == job_state::DEFERRED {
        leased.push_str(&format!(
            ", due after deferral ({})",
            job.reason.as_deref().unwrap_or("no reason")
        ));
    }
    // The whole story of this run goes in with one statement at the end.
    let mut story = vec![NewTrace {
        at: Some(job.leased_at),
        attempt: Some(attempt_no),
        ..trace(kind::DELIVERY_DISPATCHED, None, Some(leased))
    }];
    if let Some(decision) = &work.policy {
        story.push(NewTrace {
            attempt: Some(attempt_no),
            ..trace(
                kind::POLICY_CHECKED,
                Some(decision.code()),
                Some(decision.to_string()),
            )
        });
    }
    for step in &work.steps {
        story.push(NewTrace {
            at: Some(step.at),
            plugin: step.plugin.clone(),
            attempt: Some(attempt_no),
            ..trace(step.kind, None, Some(step.detail.clone()))
        });
    }
    let mut content_json = None;
    if let Some((content, rendered_by)) = &work.content {
        content_json = Some((
            serde_json::to_string(content).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            rendered_by.clone(),
        ));
        if d.channel == Channel::InApp && matches!(verdict, Verdict::Succeeded) {
            let item = inbox::write(
                tx,
                &d.tenant,
                &d.recipient.id,
                &d.notification_id,
                &d.id,
                content,
            )
            .await?;
            story.push(trace(
                kind::INBOX_WRITTEN,
                None,
                Some(format!("inbox item {item}")),
            ));
        }
    }
    if let Some(a) = &work.attempt {
        insert_attempt(tx, &d.id, attempt_no, a).await?;
        let summary = match (&a.provider_message_id, &a.error) {
            (Some(id), _) => format!(
                "{} in {} ms, provider message {id}",
                a.outcome, a.duration_ms
            ),
            (None, Some(e)) => format!("{} in {} ms: {e}", a.outcome, a.duration_ms),
            (None, None) => format!("{} in {} ms", a.outcome, a.duration_ms),
        };
        story.push(NewTrace {
            at: Some(a.started_at),
            attempt: Some(attempt_no),
            plugin: Some(a.adapter.clone()),
            ..trace(
                kind::ATTEMPT,
                Some(outcome_reason(a.outcome)),
                Some(summary),
            )
        });
    }
    let provider_message_id = work
        .attempt
        .as_ref()
        .and_then(|a| a.provider_message_id.clone());
    let (status, status_reason, detail, final_kind, plugin) = match verdict {
        Verdict::Succeeded => ("succeeded", None, None, kind::DELIVERY_SUCCEEDED, None),
        Verdict::Failed {
            reason,
            detail,
            plugin,
        } if reason == reason::RETRIES_EXHAUSTED => (
            "cancelled",
            Some(reason),
            Some(detail),
            kind::DELIVERY_CANCELLED,
            plugin,
        ),
        Verdict::Failed {
            reason,
            detail,
            plugin,
        } => (
            "failed",
            Some(reason),
            Some(detail),
            kind::DELIVERY_FAILED,
            plugin,
        ),
        Verdict::Retry {
            reason,
            detail,
            plugin,
            ..
        } => {
            let at = retry_at.expect("a retry has a time");
            (
                "pending",
                Some(reason),
                Some(format!(
                    "{detail}; attempt {} of {} at {}",
                    attempt_no + 1,
                    policy.max_attempts,
                    store::time_text(at)
                )),
                kind::RETRY_SCHEDULED,
                plugin,
            )
        }
        Verdict::Suppressed { reason, detail } => (
            "suppressed",
            Some(reason),
            Some(detail),
            kind::DELIVERY_SUPPRESSED,
            None,
        ),
        Verdict::Deferred { reason, until } => {
            retry_at = Some(until);
            (
                "deferred",
                Some(reason),
                Some(format!("until {}", store::time_text(until))),
                kind::DELIVERY_DEFERRED,
                None,
            )
        }
        Verdict::Skip(why) => {
            tracing::info!(job = %job.id, %why, "job dropped");
            return Ok((None, false));
        }
        // Handled by `commit_emit` and `commit_wake` before anything else, and by the
        // endpoints' own commit.
        Verdict::Emit | Verdict::Wake | Verdict::Post(_) => return Ok((None, false)),
    };
    // In-app deliveries are "sent" when their inbox item is written: caps count them too.
    let sent_at = (status == "succeeded").then(|| store::time_text(now));
    let (content, rendered_by) = content_json.unzip();
    sqlx::query(
        "UPDATE deliveries SET status = $1, status_reason = $2, status_detail = $3,
                sent_by = COALESCE($4, sent_by), provider_message_id = COALESCE($5, provider_message_id),
                attempts = attempts + $6, updated_at = $7,
                content = COALESCE($8, content), rendered_by = COALESCE($9, rendered_by),
                sent_at = COALESCE($11, sent_at)
         WHERE id = $10",
    )
    .bind(status)
    .bind(status_reason)
    .bind(&detail)
    .bind(&work.sent_by)
    .bind(&provider_message_id)
    .bind(work.attempt.is_some() as i64)
    .bind(store::time_text(now))
    .bind(content)
    .bind(rendered_by)
    .bind(&d.id)
    .bind(sent_at)
    .execute(&mut *tx)
    .await?;
    story.push(NewTrace {
        plugin,
        attempt: Some(attempt_no),
        ..trace(final_kind, status_reason, detail)
    });
    traces::append_all(tx, story).await?;
    if let Some(a) = &work.attempt {
        claim_feedback(tx, d, a).await?;
    }
    tracing::info!(delivery = %d.id, status, reason = ?status_reason, "delivery outcome");
    // A workflow step that reached its final outcome moves its run on, in this transaction.
    let mut moved = false;
    if let Some((run_id, step)) = &d.workflow
        && let Some(outcome) = workflows::runs::outcome_of(status, status_reason)
    {
        let evidence = format!(
            "delivery {} {status}{}",
            d.id,
            status_reason.map(|r| format!(" ({r})")).unwrap_or_default()
        );
        moved = workflows::runs::advance(tx, run_id, step, Some(&d.id), outcome, evidence)
            .await?
            .is_some_and(|m| m.enqueued);
    }
    Ok((
        Some(Dispatched {
            delivery_id: d.id.clone(),
            status: status.into(),
            reason: status_reason.map(str::to_string),
            retry_at: retry_at.map(store::time_text),
        }),
        retry_at.is_some() || moved,
    ))
}

/// Provider webhooks can beat this commit: events already waiting for the message this
/// attempt sent are attached to the delivery now, after the attempt's own traces.
async fn claim_feedback(tx: &mut Conn, d: &Loaded, a: &AttemptRow) -> Result<(), StoreError> {
    let Some(message_id) = &a.provider_message_id else {
        return Ok(());
    };
    let delivery = feedback::DeliveryRef {
        id: d.id.clone(),
        tenant: d.tenant.clone(),
        event_id: d.event_id.clone(),
        notification_id: d.notification_id.clone(),
        channel: d.channel,
        recipient: d.recipient.clone(),
    };
    feedback::claim_orphans(tx, &delivery, &a.adapter, message_id).await?;
    Ok(())
}

async fn insert_attempt(
    tx: &mut Conn,
    delivery_id: &str,
    attempt: i64,
    a: &AttemptRow,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO attempts (id, delivery_id, attempt, adapter, started_at, duration_ms, outcome, error, provider_message_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(store::new_id())
    .bind(delivery_id)
    .bind(attempt)
    .bind(&a.adapter)
    .bind(store::time_text(a.started_at))
    .bind(a.duration_ms)
    .bind(a.outcome)
    .bind(&a.error)
    .bind(&a.provider_message_id)
    .execute(&mut *tx)
    .await?;
    metrics::counter!(crate::metrics::ATTEMPTS, "outcome" => a.outcome).increment(1);
    Ok(())
}

fn outcome_reason(outcome: &str) -> &'static str {
    match outcome {
        "succeeded" => "sent",
        "transient" => "transient_error",
        "rate_limited" => "rate_limited",
        "permanent" => "permanent_error",
        _ => "plugin_failed",
    }
}

/// A `digest_emit` job: finishes it if this worker still holds it, then emits its bucket. A
/// bucket found not yet due (a clock ahead of this one wrote the job) gets a new job at its
/// window's end; one already emitted is left as it is.
async fn commit_emit(
    tx: &mut Conn,
    job: &Leased,
) -> Result<(Option<Dispatched>, bool), StoreError> {
    if !queue::finish(tx, job).await? {
        return Ok((None, false));
    }
    let emission = match buckets::emit_in(tx, &job.subject_id, store::now(), None).await {
        Ok(e) => e,
        Err(crate::digests::BucketError::Store(e)) => return Err(e),
        Err(e) => {
            tracing::warn!(job = %job.id, error = %e, "digest job dropped");
            return Ok((None, false));
        }
    };
    match emission {
        Emission::Emitted { .. } => Ok((None, true)),
        Emission::NotDue { window_end, .. } => {
            queue::enqueue(
                tx,
                queue::NewJob {
                    kind: queue::job_kind::DIGEST_EMIT,
                    subject_id: &job.subject_id,
                    tenant: &job.tenant,
                    run_at: store::parse_time(&window_end)?,
                    deferred: Some("digest_window"),
                },
            )
            .await?;
            Ok((None, false))
        }
        Emission::AlreadyEmitted { .. } | Emission::Empty { .. } => Ok((None, false)),
    }
}

/// A `workflow_wake` job: finishes it if this worker still holds it, then ends its run's
/// wait. A run found not yet due gets a new job at its wait's end; one no longer waiting (a
/// signal came first) is left as it is.
async fn commit_wake(
    tx: &mut Conn,
    job: &Leased,
) -> Result<(Option<Dispatched>, bool), StoreError> {
    if !queue::finish(tx, job).await? {
        return Ok((None, false));
    }
    match workflows::runs::wake(tx, &job.subject_id).await? {
        workflows::runs::Wake::Moved(m) => Ok((None, m.enqueued)),
        workflows::runs::Wake::NotDue(until) => {
            queue::enqueue(
                tx,
                queue::NewJob {
                    kind: queue::job_kind::WORKFLOW_WAKE,
                    subject_id: &job.subject_id,
                    tenant: &job.tenant,
                    run_at: until,
                    deferred: Some(workflows::runs::reason::WORKFLOW_WAIT),
                },
            )
            .await?;
            Ok((None, false))
        }
        workflows::runs::Wake::NotWaiting => Ok((None, false)),
    }
}

/// Policy checkpoint 2: every input read again, since any may have changed while the delivery
/// waited.
async fn check_policy(conn: &mut Conn, d: &Loaded) -> Result<Decision, StoreError> {
    let now = store::now();
    let inputs = policy::decide::Inputs::load(conn, &d.tenant, &d.recipient, now).await?;
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
    policy::decide::decide(conn, Checkpoint::Send, &inputs, &subject, now).await
}

/// The delivery behind a job, if it is still waiting to be sent.
async fn load(conn: &mut Conn, delivery_id: &str) -> Result<Option<Loaded>, StoreError> {
    let Some(r) = sqlx::query(
        "SELECT d.id, d.tenant, d.event_id, d.notification_id, d.channel, d.idempotency_key,
                e.notifier_key, e.payload, n.recipient, n.category, n.severity, n.created_at,
                d.fallback_of, i.read_at, d.digest_of, d.workflow_run_id, d.workflow_step,
                COALESCE(r.pins, b.pins) AS pins
         FROM deliveries d JOIN notifications n ON n.id = d.notification_id JOIN events e ON e.id = d.event_id
              LEFT JOIN inbox_items i ON i.delivery_id = d.fallback_of
              LEFT JOIN workflow_runs r ON r.id = d.workflow_run_id
              LEFT JOIN digest_buckets b ON b.id = d.digest_of
         WHERE d.id = $1 AND d.status IN ('pending', 'deferred')",
    )
    .bind(delivery_id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let channel: String = r.get("channel");
    let recipient: String = r.get("recipient");
    Ok(Some(Loaded {
        id: r.get("id"),
        tenant: r.get("tenant"),
        event_id: r.get("event_id"),
        notification_id: r.get("notification_id"),
        channel: channel
            .parse()
            .map_err(|e: crate::content::UnknownChannel| StoreError::Corrupt(e.to_string()))?,
        idempotency_key: r.get("idempotency_key"),
        notifier_key: r.get("notifier_key"),
        payload: r.get("payload"),
        recipient: serde_json::from_str(&recipient)
            .map_err(|e| StoreError::Corrupt(format!("recipient of {delivery_id}: {e}")))?,
        category: r.get("category"),
        severity: r
            .get::<String, _>("severity")
            .parse()
            .map_err(|e: policy::UnknownSeverity| StoreError::Corrupt(e.to_string()))?,
        notification_created_at: store::parse_time(&r.get::<String, _>("created_at"))?,
        fallback_of: match r.get::<Option<String>, _>("fallback_of") {
            None => None,
            Some(id) => {
                let read_at = r
                    .get::<Option<String>, _>("read_at")
                    .map(|t| store::parse_time(&t))
                    .transpose()?;
                Some((id, read_at))
            }
        },
        digest_of: r.get("digest_of"),
        workflow: r
            .get::<Option<String>, _>("workflow_run_id")
            .zip(r.get::<Option<String>, _>("workflow_step")),
        pins: crate::plugins::pins::Pins::from_json(r.get::<Option<String>, _>("pins").as_deref())
            .map_err(|e| StoreError::Corrupt(format!("pins of {delivery_id}: {e}")))?,
    }))
}

/// Why a delivery could not be cancelled or deferred.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("no delivery has the id `{0}`")]
    NotFound(String),
    #[error(
        "delivery `{id}` is {status}; only a pending or deferred delivery (or one held for digest, to cancel) can be {verb}"
    )]
    NotWaiting {
        id: String,
        status: String,
        verb: &'static str,
    },
    #[error(
        "delivery `{0}` is being sent right now (or has just been); look again when its attempt ends"
    )]
    InFlight(String),
    #[error("a deferral needs a reason")]
    NoReason,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ChangeError {
    fn from(e: sqlx::Error) -> Self {
        ChangeError::Store(e.into())
    }
}

/// Cancels a pending or deferred delivery: its job is removed, nothing is sent.
#[tracing::instrument(skip(db))]
pub async fn cancel(db: &Db, delivery_id: &str, why: &str) -> Result<Dispatched, ChangeError> {
    let d = waiting(db, delivery_id, "cancelled").await?;
    let mut tx = db.begin().await?;
    if d.held {
        // Out of its digest bucket: the bucket first, as joins and emissions lock it, and only
        // while it is open — once emitted, the delivery went out inside the digest.
        let left = sqlx::query(
            "UPDATE digest_buckets SET items = items - 1
             WHERE id = (SELECT digest_bucket_id FROM deliveries WHERE id = $1) AND status = 'open'",
        )
        .bind(&d.id)
        .execute(&mut *tx)
        .await?;
        if left.rows_affected() == 0 {
            return Err(ChangeError::NotWaiting {
                id: d.id,
                status: "digested".into(),
                verb: "cancelled",
            });
        }
    } else if !queue::remove(&mut tx, queue::job_kind::DELIVER, &d.id).await? {
        // The job goes first: if a worker holds it, the send is under way and cannot be stopped.
        return Err(ChangeError::InFlight(d.id));
    }
    set_waiting_status(&mut tx, &d, "cancelled", reason::CANCELLED, why).await?;
    traces::append(
        &mut tx,
        NewTrace {
            reason: Some(reason::CANCELLED),
            detail: Some(why.to_string()),
            ..d.trace(kind::DELIVERY_CANCELLED)
        },
    )
    .await?;
    if let Some(run) = &d.workflow_run_id {
        workflows::runs::step_cancelled(&mut tx, run, &d.id, why).await?;
    }
    tx.commit().await?;
    Ok(Dispatched {
        delivery_id: d.id,
        status: "cancelled".into(),
        reason: Some(reason::CANCELLED.into()),
        retry_at: None,
    })
}

/// Defers a pending or deferred delivery until `until`, with a reason that `explain` shows.
#[tracing::instrument(skip(db))]
pub async fn defer(
    db: &Db,
    delivery_id: &str,
    until: DateTime<Utc>,
    why: &str,
) -> Result<Dispatched, ChangeError> {
    if why.trim().is_empty() {
        return Err(ChangeError::NoReason);
    }
    let d = waiting(db, delivery_id, "deferred").await?;
    let mut tx = db.begin().await?;
    if !queue::defer(&mut tx, queue::job_kind::DELIVER, &d.id, until, why).await? {
        return Err(ChangeError::InFlight(d.id));
    }
    let detail = format!("until {}", store::time_text(until));
    set_waiting_status(&mut tx, &d, "deferred", why, &detail).await?;
    traces::append(
        &mut tx,
        NewTrace {
            reason: Some(why),
            detail: Some(detail),
            ..d.trace(kind::DELIVERY_DEFERRED)
        },
    )
    .await?;
    queue::announce(&mut tx, store::backend(db)).await?;
    tx.commit().await?;
    Ok(Dispatched {
        delivery_id: d.id,
        status: "deferred".into(),
        reason: Some(why.to_string()),
        retry_at: Some(store::time_text(until)),
    })
}

/// A delivery that is still waiting to be sent.
struct Waiting {
    id: String,
    tenant: String,
    event_id: String,
    notification_id: String,
    /// Held in a digest bucket (it has no job; only a cancel applies).
    held: bool,
    /// A workflow step's delivery: its run.
    workflow_run_id: Option<String>,
}

impl Waiting {
    fn trace(&self, kind: &'static str) -> NewTrace<'_> {
        NewTrace {
            tenant: &self.tenant,
            event_id: &self.event_id,
            notification_id: Some(&self.notification_id),
            delivery_id: Some(&self.id),
            kind,
            ..Default::default()
        }
    }
}

/// The delivery, if it is pending or deferred; why not otherwise.
async fn waiting(db: &Db, delivery_id: &str, verb: &'static str) -> Result<Waiting, ChangeError> {
    let row = sqlx::query(
        "SELECT id, tenant, event_id, notification_id, status, workflow_run_id FROM deliveries WHERE id = $1",
    )
    .bind(delivery_id)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| ChangeError::NotFound(delivery_id.to_string()))?;
    let status: String = row.get("status");
    let held = status == "held" && verb == "cancelled";
    if status != "pending" && status != "deferred" && !held {
        return Err(ChangeError::NotWaiting {
            id: delivery_id.to_string(),
            status,
            verb,
        });
    }
    Ok(Waiting {
        id: row.get("id"),
        tenant: row.get("tenant"),
        event_id: row.get("event_id"),
        notification_id: row.get("notification_id"),
        held,
        workflow_run_id: row.get("workflow_run_id"),
    })
}

async fn set_waiting_status(
    tx: &mut Conn,
    d: &Waiting,
    status: &str,
    reason: &str,
    detail: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE deliveries SET status = $1, status_reason = $2, status_detail = $3, updated_at = $4
         WHERE id = $5",
    )
    .bind(status)
    .bind(reason)
    .bind(detail)
    .bind(store::time_text(store::now()))
    .bind(&d.id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

//! The executor: one leased delivery job through build → render → validate → send (or inbox),
//! then its outcome committed together with the job's completion.
//!
//! Durability rule: [`execute`] writes nothing. It calls the plugins and returns a [`Work`]:
//! everything that happened and what should follow. [`commit`] writes a batch of them in one
//! transaction, each only if its job's lease still holds (else the outcome is recorded as a
//! fact but changes nothing). A crash anywhere before that commit leaves the job leased; the
//! lease expires, another worker repeats the send under the same idempotency key, and the
//! provider drops the repeat.

use crate::deliveries::reason;
use crate::jobs::{self as queue, Leased, job_state};
use super::retry::RetryPolicy;
use super::{Caught, caught};
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
use crate::traces::{NewTrace, kind};
use crate::workflows;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use std::collections::HashMap;
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
    /// Leases and commits of this process take turns through it (on SQLite).
    pub gate: queue::WriteGate,
    #[doc(hidden)]
    pub faults: super::Faults,
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
    /// belfry failed on the job (see [`reason::INTERNAL_ERROR`]): retried, or failed when no
    /// attempt is left; written by [`commit_fault`] from the job alone, since what failed may
    /// be the reading of its delivery.
    Fault {
        detail: String,
    },
}

/// What one job run did and decided; written by [`commit`].
pub struct Work {
    job: Leased,
    delivery: Option<Loaded>,
    steps: Vec<Step>,
    content: Option<(Content, String)>,
    attempt: Option<AttemptRow>,
    sent_by: Option<String>,
    /// Policy checkpoint 2, taken before any plugin ran, and when (its trace is dated then,
    /// not at the commit, so `explain` shows it before the build it preceded).
    policy: Option<(Decision, DateTime<Utc>)>,
    verdict: Verdict,
    /// When a retry or a deferral puts the job back in the queue; set by [`settle`].
    retry_at: Option<DateTime<Utc>>,
}

/// What [`Executor::prepare`] read for one job.
pub struct Prepared(Preloaded);

enum Preloaded {
    /// Not a delivery job: it reads what it needs itself.
    NotDelivery,
    /// The delivery is no longer waiting to be sent.
    Gone,
    /// The delivery, its send-time policy decision, and a digest's items.
    Ready(Box<(Loaded, Decision, Option<DigestItems>, DateTime<Utc>)>),
    /// Its rows could not be read, or its policy not decided: the job is a
    /// [`Verdict::Fault`], retried with the error as its reason.
    Failed(StoreError),
    /// Preparing it failed or panicked when tried alone: the job is a [`Verdict::Fault`].
    Fault(String),
}

impl Executor {
    /// Leases up to `limit` due jobs in `scope`, in this process's turn to write.
    pub async fn lease(
        &self,
        owner: &str,
        limit: usize,
        lease_for: Duration,
        scope: queue::Scope<'_>,
    ) -> Result<Vec<Leased>, StoreError> {
        let _turn = self.gate.enter(&self.db).await;
        queue::lease(&self.db, owner, limit, lease_for, scope).await
    }

    /// Reads what a leased batch of jobs needs before any plugin runs: the deliveries, their
    /// recipients' policy inputs and the send-time policy decision, in a few statements for
    /// the whole batch rather than a few per job. Each job then runs with [`execute`].
    #[tracing::instrument(skip_all, fields(jobs = jobs.len()))]
    pub async fn prepare(&self, jobs: Vec<Leased>) -> Result<Vec<(Leased, Prepared)>, StoreError> {
        let ids: Vec<&str> = jobs
            .iter()
            .filter(|j| j.kind == queue::job_kind::DELIVER)
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
        let mut loaded = load_all(&mut conn, &ids).await?;
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
            let prepared = if job.kind != queue::job_kind::DELIVER {
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

    /// [`prepare`] that one job cannot break for the others. When the batch fails or panics,
    /// each job is prepared alone, and one that still fails or panics is prepared as a
    /// [`Verdict::Fault`] with the reason; only a database that cannot be reached at all is an
    /// error (the caller gives the batch back), since then every job would fail alike.
    ///
    /// The batch is awaited under `catch_unwind` in the caller's task rather than in a task of
    /// its own: its jobs are needed again for the one-by-one retry, and a spawned task would
    /// have taken them with it.
    pub async fn prepare_each(
        &self,
        jobs: Vec<Leased>,
    ) -> Result<Vec<(Leased, Prepared)>, StoreError> {
        let why = match caught(self.prepare(jobs.clone())).await {
            Ok(prepared) => return Ok(prepared),
            Err(Caught::Failed(e)) if is_outage(&e) => return Err(e),
            Err(c) => c.describe("preparing the batch"),
        };
        tracing::error!(jobs = jobs.len(), %why, "preparing a batch failed; preparing its jobs one by one");
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            let detail = match caught(self.prepare(vec![job.clone()])).await {
                Ok(mut one) if one.len() == 1 => {
                    out.push(one.remove(0));
                    continue;
                }
                Ok(_) => "preparing the job lost it".to_string(),
                Err(c) => c.describe("preparing the job"),
            };
            tracing::error!(job = %job.id, tenant = %job.tenant, %detail, "a job could not be prepared");
            out.push((job, Prepared(Preloaded::Fault(detail))));
        }
        Ok(out)
    }

    /// [`execute`] whose error or panic is the job's own [`Verdict::Fault`], never the
    /// caller's: the worker goes on with its other jobs and commits this one's failure.
    pub async fn execute_caught(&self, job: Leased, prepared: Prepared) -> Work {
        let leased = job.clone();
        match caught(self.execute(job, prepared)).await {
            Ok(work) => work,
            Err(c) => Work::fault(leased, c.describe("running the job")),
        }
    }

    /// Runs one leased job with what [`prepare`] read for it: plugin calls only, no writes.
    #[tracing::instrument(skip_all, fields(job = %job.id, delivery = %job.subject_id, attempt = job.attempt))]
    pub async fn execute(&self, job: Leased, prepared: Prepared) -> Result<Work, StoreError> {
        let mut work = Work {
            delivery: None,
            steps: Vec::new(),
            content: None,
            attempt: None,
            sent_by: None,
            policy: None,
            verdict: Verdict::Succeeded,
            job,
            retry_at: None,
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
        let (d, decision, digest, decided_at) = match prepared.0 {
            Preloaded::Ready(ready) => *ready,
            Preloaded::Failed(e) => {
                work.verdict = Verdict::Fault {
                    detail: format!("preparing the job failed: {e}"),
                };
                return Ok(work);
            }
            Preloaded::Fault(detail) => {
                work.verdict = Verdict::Fault { detail };
                return Ok(work);
            }
            Preloaded::Gone | Preloaded::NotDelivery => {
                work.verdict = Verdict::Skip("the delivery is no longer waiting to be sent".into());
                return Ok(work);
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
        Ok(work)
    }

    async fn run(&self, work: &mut Work, d: &Loaded, digest: Option<DigestItems>) -> Verdict {
        let registry = self.registry.current();
        // A workflow step or a digest uses the builds its run or bucket began with.
        let notifier = match digest {
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
                Some(notifier)
            }
            Some(_) => None,
        };
        // The renderer the notifier's manifest names (else the default); a digest's own
        // `digest` template goes to the default renderer.
        let current = match notifier {
            Some(n) => registry.renderer_for(n),
            None => registry.renderer(),
        };
        let Some(renderer) = pinned(
            &mut work.steps,
            pins::choose(
                &registry,
                d.pins.renderer.as_deref(),
                current.as_ref().ok().copied(),
            ),
        ) else {
            let e = current.err().map(|e| e.to_string()).unwrap_or_default();
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
        let (request, assets) = match (digest, notifier) {
            (None, Some(notifier)) => {
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
                // The renderer reads the templates of the notifier whose request it renders.
                (request, notifier.assets().clone())
            }
            (Some(items), _) => match self.digest_request(d, &registry, &items).await {
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
                    // The `digest` template is no notifier's: it ships in the renderer's own
                    // package.
                    (request, renderer.assets().clone())
                }
                Err(verdict) => return verdict,
            },
            // Not reached: a delivery that is no digest had its notifier resolved above.
            (None, None) => {
                return failed(reason::NOTIFIER_MISSING, d.notifier_key.clone(), None);
            }
        };

        let content = match self
            .runtime
            .render(renderer, &request, &assets, Reuse::Tenant(&d.tenant))
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

    /// Writes a batch of job outcomes in one transaction; returns where each delivery stands,
    /// in the order given.
    ///
    /// A batch costs a handful of statements, not a handful per job: the jobs it finishes are
    /// deleted in one statement, and the attempts, delivery updates, traces and feedback
    /// look-ups of plain outcomes wait in [`Pending`] and go in together. Anything that reads
    /// what came before it (a workflow's next step, a digest emission, a lost lease) first
    /// writes what is waiting, so each job still sees the batch as if written one by one.
    ///
    /// One outcome that cannot be written (an error, a panic) does not hold back the others:
    /// the batch is then written job by job, and a job whose outcome still cannot be written
    /// is retried as a [`Verdict::Fault`] naming why. Only a database that cannot be reached
    /// is an error: nothing was written, and the jobs run again when their leases expire.
    ///
    /// `catch_unwind` (rather than a task of its own) keeps the outcomes here for the
    /// one-by-one retry; a panic drops the batch's transaction, which rolls it back.
    #[tracing::instrument(skip_all, fields(jobs = works.len()))]
    pub async fn commit(&self, mut works: Vec<Work>) -> Result<Vec<Dispatched>, StoreError> {
        if works.is_empty() {
            return Ok(Vec::new());
        }
        let why = match caught(self.commit_batch(&mut works)).await {
            Ok(out) => return Ok(out),
            Err(Caught::Failed(e)) if is_outage(&e) => return Err(e),
            Err(c) => c.describe("committing the batch"),
        };
        tracing::error!(jobs = works.len(), %why, "committing a batch failed; committing its jobs one by one");
        let mut out = Vec::with_capacity(works.len());
        for work in works {
            let mut one = [work];
            let detail = match caught(self.commit_batch(&mut one)).await {
                Ok(dispatched) => {
                    out.extend(dispatched);
                    continue;
                }
                Err(c) => c.describe("committing the job's outcome"),
            };
            let [work] = one;
            let job = work.job.id.clone();
            tracing::error!(%job, %detail, "a job's outcome could not be written; recording the failure instead");
            let mut fault = [Work::fault(work.job, detail)];
            if let Err(c) = caught(self.commit_batch(&mut fault)).await {
                let why = c.describe("recording the job's failure");
                tracing::error!(%job, %why, "a job's failure could not be recorded; it runs again when its lease expires");
            }
        }
        Ok(out)
    }

    /// One transaction for `works` (see [`Executor::commit`]). Safe to call again with the
    /// same outcomes after it failed: settling them again changes nothing that matters, and
    /// nothing of them is consumed.
    async fn commit_batch(&self, works: &mut [Work]) -> Result<Vec<Dispatched>, StoreError> {
        let _turn = self.gate.enter(&self.db).await;
        let mut tx = self.db.begin().await?;
        for work in works.iter_mut() {
            settle(&self.retry, work);
        }
        let works: &[Work] = works;
        let finishing: Vec<&Leased> = works
            .iter()
            .filter(|w| w.finishes_job())
            .map(|w| &w.job)
            .collect();
        let held = queue::finish_all(&mut tx, &finishing).await?;
        let mut out = Vec::with_capacity(works.len());
        let mut rescheduled = false;
        let mut pending = Pending::default();
        for work in works {
            let again = match &work.verdict {
                Verdict::Post(attempted) => {
                    // A copy: should this transaction fail, the outcome is committed again.
                    pending.flush(&mut tx).await?;
                    crate::endpoints::send::commit(
                        &mut tx,
                        &self.endpoints,
                        &work.job,
                        attempted.clone(),
                    )
                    .await?
                }
                Verdict::Emit => {
                    pending.flush(&mut tx).await?;
                    commit_emit(&mut tx, &work.job, held.contains(&work.job.id)).await?
                }
                Verdict::Wake => {
                    pending.flush(&mut tx).await?;
                    commit_wake(&mut tx, &work.job, held.contains(&work.job.id)).await?
                }
                Verdict::Fault { .. } => {
                    pending.flush(&mut tx).await?;
                    let (dispatched, again) =
                        commit_fault(&mut tx, &self.retry, work, &held).await?;
                    out.extend(dispatched);
                    again
                }
                _ => {
                    self.faults.check_committing(&work.job.tenant);
                    let (dispatched, again) =
                        commit_one(&mut tx, &mut pending, &self.retry, work, &held).await?;
                    out.extend(dispatched);
                    again
                }
            };
            rescheduled |= again;
        }
        pending.flush(&mut tx).await?;
        if rescheduled {
            queue::announce(&mut tx, store::backend(&self.db)).await?;
        }
        tx.commit().await?;
        Ok(out)
    }
}

impl Work {
    /// A job belfry failed on, with why (see [`reason::INTERNAL_ERROR`]).
    pub(crate) fn fault(job: Leased, detail: String) -> Work {
        Work {
            job,
            delivery: None,
            steps: Vec::new(),
            content: None,
            attempt: None,
            sent_by: None,
            policy: None,
            verdict: Verdict::Fault { detail },
            retry_at: None,
        }
    }

    /// Whether committing this job deletes it (rather than putting it back for later, or
    /// leaving it to its own commit).
    fn finishes_job(&self) -> bool {
        match &self.verdict {
            Verdict::Post(_) => false,
            Verdict::Retry { .. } | Verdict::Deferred { .. } | Verdict::Fault { .. } => {
                self.retry_at.is_none()
            }
            _ => true,
        }
    }
}

/// Turns a retry the policy has no more attempts for into the final failure, and fixes when
/// a retried or deferred job runs again.
fn settle(policy: &RetryPolicy, work: &mut Work) {
    let attempt = work.job.attempt;
    match std::mem::replace(&mut work.verdict, Verdict::Succeeded) {
        Verdict::Retry {
            reason,
            detail,
            plugin,
            retry_after,
        } => match policy.next_delay(attempt as u32, retry_after) {
            Some(delay) => {
                // A provider's retry-after is not bounded; ten years is as late as it gets.
                let at = crate::time_bounds::later(store::now(), delay);
                work.retry_at = Some(at);
                work.verdict = Verdict::Retry {
                    reason,
                    detail,
                    plugin,
                    retry_after,
                };
            }
            None => {
                work.verdict = Verdict::Failed {
                    reason: reason::RETRIES_EXHAUSTED,
                    detail: format!("gave up after {attempt} attempts; last: {reason}: {detail}"),
                    plugin,
                }
            }
        },
        Verdict::Deferred { reason, until } => {
            work.retry_at = Some(until);
            work.verdict = Verdict::Deferred { reason, until };
        }
        Verdict::Fault { detail } => {
            // A delivery ends failed when no attempt is left. Other jobs are never dropped:
            // a digest bucket, a workflow run or an endpoint message would be stranded
            // without one, so they keep trying at the longest wait.
            let delay = policy.next_delay(attempt as u32, None).or_else(|| {
                (work.job.kind != queue::job_kind::DELIVER).then_some(policy.max_delay)
            });
            work.retry_at = delay.map(|delay| crate::time_bounds::later(store::now(), delay));
            work.verdict = Verdict::Fault { detail };
        }
        other => work.verdict = other,
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

/// One delivery job's outcome inside the batch transaction. Returns the delivery's new
/// standing (none when the job was only dropped) and whether something was put in the queue.
async fn commit_one<'a>(
    tx: &mut Conn,
    pending: &mut Pending<'a>,
    policy: &RetryPolicy,
    work: &'a Work,
    finished: &std::collections::HashSet<String>,
) -> Result<(Option<Dispatched>, bool), StoreError> {
    let job = &work.job;
    let verdict = &work.verdict;
    // First the lease: everything else is written only if this worker still holds the job.
    let held = match (verdict, work.retry_at) {
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
        _ => finished.contains(&job.id),
    };

    let Some(d) = &work.delivery else {
        if let Verdict::Skip(why) = verdict {
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
            pending.attempts.push((&d.id, attempt_no, a));
        }
        pending.traces.push(NewTrace {
            attempt: Some(attempt_no),
            ..trace(
                kind::LEASE_LOST,
                Some("lease_lost"),
                Some(format!(
                    "worker {} lost its lease before committing; its outcome was not applied",
                    job.owner
                )),
            )
        });
        if let Some(a) = &work.attempt {
            pending.claims.push((d, a));
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
    // The whole story of this run goes in with the batch's traces.
    let mut story = vec![NewTrace {
        at: Some(job.leased_at),
        attempt: Some(attempt_no),
        ..trace(kind::DELIVERY_DISPATCHED, None, Some(leased))
    }];
    if let Some((decision, decided_at)) = &work.policy {
        story.push(NewTrace {
            at: Some(*decided_at),
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
            rendered_by.as_str(),
        ));
        if d.channel == Channel::InApp && matches!(verdict, Verdict::Succeeded) {
            // The inbox item is written now, after everything the batch holds so far.
            pending.flush(tx).await?;
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
        pending.attempts.push((&d.id, attempt_no, a));
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
    let retry_at = work.retry_at;
    let (status, status_reason, detail, final_kind, plugin) = match verdict {
        Verdict::Succeeded => ("succeeded", None, None, kind::DELIVERY_SUCCEEDED, None),
        Verdict::Failed {
            reason,
            detail,
            plugin,
        } if *reason == reason::RETRIES_EXHAUSTED => (
            "cancelled",
            Some(*reason),
            Some(detail.clone()),
            kind::DELIVERY_CANCELLED,
            plugin.clone(),
        ),
        Verdict::Failed {
            reason,
            detail,
            plugin,
        } => (
            "failed",
            Some(*reason),
            Some(detail.clone()),
            kind::DELIVERY_FAILED,
            plugin.clone(),
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
                Some(*reason),
                Some(format!(
                    "{detail}; attempt {} of {} at {}",
                    attempt_no + 1,
                    policy.max_attempts,
                    store::time_text(at)
                )),
                kind::RETRY_SCHEDULED,
                plugin.clone(),
            )
        }
        Verdict::Suppressed { reason, detail } => (
            "suppressed",
            Some(*reason),
            Some(detail.clone()),
            kind::DELIVERY_SUPPRESSED,
            None,
        ),
        Verdict::Deferred { reason, until } => (
            "deferred",
            Some(*reason),
            Some(format!("until {}", store::time_text(*until))),
            kind::DELIVERY_DEFERRED,
            None,
        ),
        Verdict::Skip(why) => {
            tracing::info!(job = %job.id, %why, "job dropped");
            return Ok((None, false));
        }
        // Handled by `commit_emit`, `commit_wake`, `commit_fault`, and by the endpoints' own
        // commit.
        Verdict::Emit | Verdict::Wake | Verdict::Post(_) | Verdict::Fault { .. } => {
            return Ok((None, false));
        }
    };
    // In-app deliveries are "sent" when their inbox item is written: caps count them too.
    let (content, rendered_by) = content_json.unzip();
    pending.updates.push(DeliveryUpdate {
        id: &d.id,
        status,
        reason: status_reason,
        detail: detail.clone(),
        sent_by: work.sent_by.as_deref(),
        provider_message_id: work
            .attempt
            .as_ref()
            .and_then(|a| a.provider_message_id.as_deref()),
        attempted: work.attempt.is_some() as i64,
        content,
        rendered_by,
        sent: status == "succeeded",
    });
    story.push(NewTrace {
        plugin,
        attempt: Some(attempt_no),
        ..trace(final_kind, status_reason, detail)
    });
    pending.traces.extend(story);
    if let Some(a) = &work.attempt {
        pending.claims.push((d, a));
    }
    tracing::info!(delivery = %d.id, status, reason = ?status_reason, "delivery outcome");
    // A workflow step that reached its final outcome moves its run on, in this transaction,
    // after its own outcome is written.
    let mut moved = false;
    if let Some((run_id, step)) = &d.workflow
        && let Some(outcome) = workflows::runs::outcome_of(status, status_reason)
    {
        pending.flush(tx).await?;
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

/// A job belfry failed on ([`Verdict::Fault`]): retried with the reason, or, for a delivery
/// with no attempt left, failed with it. The delivery's identity is read here, not taken from
/// the job's preparation: that may be what failed.
async fn commit_fault(
    tx: &mut Conn,
    policy: &RetryPolicy,
    work: &Work,
    finished: &std::collections::HashSet<String>,
) -> Result<(Option<Dispatched>, bool), StoreError> {
    let (job, retry_at) = (&work.job, work.retry_at);
    let Verdict::Fault { detail } = &work.verdict else {
        return Ok((None, false));
    };
    let held = match retry_at {
        Some(at) => {
            queue::reschedule(tx, job, at, job_state::RETRYING, None, Some(detail), false).await?
        }
        None => finished.contains(&job.id),
    };
    tracing::error!(job = %job.id, kind = %job.kind, tenant = %job.tenant, %detail, held, "job failed inside belfry");
    if !held || job.kind != queue::job_kind::DELIVER {
        return Ok((None, held && retry_at.is_some()));
    }
    let Some(row) = sqlx::query(
        "SELECT tenant, event_id, notification_id, status, workflow_run_id, workflow_step
         FROM deliveries WHERE id = $1",
    )
    .bind(&job.subject_id)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok((None, retry_at.is_some()));
    };
    let waiting: String = row.get("status");
    if waiting != "pending" && waiting != "deferred" {
        return Ok((None, retry_at.is_some()));
    }
    let (tenant, event_id, notification_id): (String, String, String) = (
        row.get("tenant"),
        row.get("event_id"),
        row.get("notification_id"),
    );
    let (status, final_kind, detail) = match retry_at {
        Some(at) => (
            "pending",
            kind::RETRY_SCHEDULED,
            format!(
                "{detail}; attempt {} of {} at {}",
                job.attempt + 1,
                policy.max_attempts,
                store::time_text(at)
            ),
        ),
        None => (
            "failed",
            kind::DELIVERY_FAILED,
            format!("gave up after {} attempts; last: {detail}", job.attempt),
        ),
    };
    let now = store::time_text(store::now());
    sqlx::query(
        "UPDATE deliveries SET status = $1, status_reason = $2, status_detail = $3, updated_at = $4
         WHERE id = $5",
    )
    .bind(status)
    .bind(reason::INTERNAL_ERROR)
    .bind(&detail)
    .bind(&now)
    .bind(&job.subject_id)
    .execute(&mut *tx)
    .await?;
    let trace = |kind, reason: Option<&'static str>, detail: String| NewTrace {
        tenant: &tenant,
        event_id: &event_id,
        notification_id: Some(&notification_id),
        delivery_id: Some(&job.subject_id),
        kind,
        reason,
        detail: Some(detail),
        attempt: Some(job.attempt),
        ..Default::default()
    };
    crate::endpoints::events::append_all(
        tx,
        vec![
            NewTrace {
                at: Some(job.leased_at),
                ..trace(
                    kind::DELIVERY_DISPATCHED,
                    None,
                    format!("attempt {} leased by {}", job.attempt, job.owner),
                )
            },
            trace(final_kind, Some(reason::INTERNAL_ERROR), detail.clone()),
        ],
    )
    .await?;
    // A workflow step that failed for good moves its run on, as any final outcome does.
    let mut moved = false;
    if let (Some(run_id), Some(step)) = (
        row.get::<Option<String>, _>("workflow_run_id"),
        row.get::<Option<String>, _>("workflow_step"),
    ) && let Some(outcome) = workflows::runs::outcome_of(status, Some(reason::INTERNAL_ERROR))
    {
        let evidence = format!(
            "delivery {} {status} ({})",
            job.subject_id,
            reason::INTERNAL_ERROR
        );
        moved =
            workflows::runs::advance(tx, &run_id, &step, Some(&job.subject_id), outcome, evidence)
                .await?
                .is_some_and(|m| m.enqueued);
    }
    Ok((
        Some(Dispatched {
            delivery_id: job.subject_id.clone(),
            status: status.into(),
            reason: Some(reason::INTERNAL_ERROR.into()),
            retry_at: retry_at.map(store::time_text),
        }),
        retry_at.is_some() || moved,
    ))
}

/// Whether an error says the database cannot be reached or is held by another writer, rather
/// than that one job's rows or statements failed: then trying the jobs one by one would only
/// fail as many times, each after its own wait.
fn is_outage(e: &StoreError) -> bool {
    match e {
        StoreError::Sql(
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed,
        ) => true,
        StoreError::Sql(sqlx::Error::Database(db)) => {
            let code = db.code().unwrap_or_default();
            // SQLite's codes are numbers (SQLITE_BUSY 5 and SQLITE_LOCKED 6, under any extended
            // code); PostgreSQL's are five-character SQLSTATEs: connection exceptions (08…) and
            // shutdowns (57P01–57P03).
            match code.parse::<i32>() {
                Ok(c) if code.len() < 5 => matches!(c & 0xff, 5 | 6),
                _ => code.starts_with("08") || code.starts_with("57P"),
            }
        }
        _ => false,
    }
}

/// A delivery's new standing, waiting in [`Pending`].
struct DeliveryUpdate<'a> {
    id: &'a str,
    status: &'static str,
    reason: Option<&'static str>,
    detail: Option<String>,
    sent_by: Option<&'a str>,
    provider_message_id: Option<&'a str>,
    /// 1 when this run made an attempt.
    attempted: i64,
    content: Option<String>,
    rendered_by: Option<&'a str>,
    /// Whether it was sent now (caps count it from `sent_at`).
    sent: bool,
}

/// Rows of a batch's outcomes not yet written: attempts, delivery updates, traces, and the
/// sends whose orphan feedback must be claimed. [`Pending::flush`] writes them in a few
/// statements, in that order, which is the order one job's rows were always written in.
#[derive(Default)]
struct Pending<'a> {
    attempts: Vec<(&'a str, i64, &'a AttemptRow)>,
    updates: Vec<DeliveryUpdate<'a>>,
    traces: Vec<NewTrace<'a>>,
    claims: Vec<(&'a Loaded, &'a AttemptRow)>,
}

impl Pending<'_> {
    /// Writes everything waiting.
    async fn flush(&mut self, tx: &mut Conn) -> Result<(), StoreError> {
        insert_attempts(tx, &std::mem::take(&mut self.attempts)).await?;
        update_deliveries(tx, &std::mem::take(&mut self.updates)).await?;
        crate::endpoints::events::append_all(tx, std::mem::take(&mut self.traces)).await?;
        let claims: Vec<(feedback::DeliveryRef, &str, &str)> = std::mem::take(&mut self.claims)
            .into_iter()
            .filter_map(|(d, a)| {
                a.provider_message_id
                    .as_deref()
                    .map(|m| (delivery_ref(d), a.adapter.as_str(), m))
            })
            .collect();
        feedback::claim_orphans_all(tx, &claims).await?;
        Ok(())
    }
}

fn delivery_ref(d: &Loaded) -> feedback::DeliveryRef {
    feedback::DeliveryRef {
        id: d.id.clone(),
        tenant: d.tenant.clone(),
        event_id: d.event_id.clone(),
        notification_id: d.notification_id.clone(),
        channel: d.channel,
        recipient: d.recipient.clone(),
    }
}

/// Rows per statement in the batch writes below: far under both backends' parameter limits.
const ROWS_PER_STATEMENT: usize = 200;

async fn insert_attempts(
    tx: &mut Conn,
    attempts: &[(&str, i64, &AttemptRow)],
) -> Result<(), StoreError> {
    for chunk in attempts.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO attempts (id, delivery_id, attempt, adapter, started_at, duration_ms, outcome, error, provider_message_id)
             VALUES {}",
            store::value_rows(store::backend_of(tx), chunk.len(), 9, 1)
        );
        let mut q = sqlx::query(&sql);
        for (delivery_id, attempt, a) in chunk {
            q = q
                .bind(store::new_id())
                .bind(*delivery_id)
                .bind(*attempt)
                .bind(&a.adapter)
                .bind(store::time_text(a.started_at))
                .bind(a.duration_ms)
                .bind(a.outcome)
                .bind(&a.error)
                .bind(&a.provider_message_id);
        }
        q.execute(&mut *tx).await?;
    }
    for (_, _, a) in attempts {
        metrics::counter!(crate::metrics::ATTEMPTS, "outcome" => a.outcome).increment(1);
    }
    Ok(())
}

/// Every delivery's new standing in one statement (per chunk): an `UPDATE … FROM` a table of
/// values, which both SQLite (3.33+) and PostgreSQL take. `attempted` is cast because a
/// VALUES column of parameters is typed only by what the driver binds: as written, the
/// statement is valid (and its plan can be checked, tests/query_plans.rs) without it.
async fn update_deliveries(
    tx: &mut Conn,
    updates: &[DeliveryUpdate<'_>],
) -> Result<(), StoreError> {
    let now = store::time_text(store::now());
    for chunk in updates.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "WITH v (id, status, status_reason, status_detail, sent_by, provider_message_id, attempted,
                     content, rendered_by, sent_at, updated_at) AS (VALUES {})
             UPDATE deliveries SET status = v.status, status_reason = v.status_reason,
                    status_detail = v.status_detail,
                    sent_by = COALESCE(v.sent_by, deliveries.sent_by),
                    provider_message_id = COALESCE(v.provider_message_id, deliveries.provider_message_id),
                    attempts = deliveries.attempts + CAST(v.attempted AS BIGINT), updated_at = v.updated_at,
                    content = COALESCE(v.content, deliveries.content),
                    rendered_by = COALESCE(v.rendered_by, deliveries.rendered_by),
                    sent_at = COALESCE(v.sent_at, deliveries.sent_at)
             FROM v WHERE deliveries.id = v.id",
            store::value_rows(store::backend_of(tx), chunk.len(), 11, 1)
        );
        let mut q = sqlx::query(&sql);
        for u in chunk {
            q = q
                .bind(u.id)
                .bind(u.status)
                .bind(u.reason)
                .bind(&u.detail)
                .bind(u.sent_by)
                .bind(u.provider_message_id)
                .bind(u.attempted)
                .bind(&u.content)
                .bind(u.rendered_by)
                .bind(u.sent.then_some(now.as_str()))
                .bind(&now);
        }
        q.execute(&mut *tx).await?;
    }
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
async fn commit_emit(tx: &mut Conn, job: &Leased, held: bool) -> Result<bool, StoreError> {
    if !held {
        return Ok(false);
    }
    let emission = match buckets::emit_in(tx, &job.subject_id, store::now(), None).await {
        Ok(e) => e,
        Err(crate::digests::BucketError::Store(e)) => return Err(e),
        Err(e) => {
            tracing::warn!(job = %job.id, error = %e, "digest job dropped");
            return Ok(false);
        }
    };
    match emission {
        Emission::Emitted { .. } => Ok(true),
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
            Ok(false)
        }
        Emission::AlreadyEmitted { .. } | Emission::Empty { .. } => Ok(false),
    }
}

/// A `workflow_wake` job: finishes it if this worker still holds it, then ends its run's
/// wait. A run found not yet due gets a new job at its wait's end; one no longer waiting (a
/// signal came first) is left as it is.
async fn commit_wake(tx: &mut Conn, job: &Leased, held: bool) -> Result<bool, StoreError> {
    if !held {
        return Ok(false);
    }
    match workflows::runs::wake(tx, &job.subject_id).await? {
        workflows::runs::Wake::Moved(m) => Ok(m.enqueued),
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
            Ok(false)
        }
        workflows::runs::Wake::NotWaiting => Ok(false),
    }
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

/// The deliveries behind a batch of jobs that are still waiting to be sent, by id; a row that
/// cannot be read is an error for its job alone.
async fn load_all(
    conn: &mut Conn,
    delivery_ids: &[&str],
) -> Result<HashMap<String, Result<Loaded, StoreError>>, StoreError> {
    let mut out = HashMap::with_capacity(delivery_ids.len());
    for chunk in delivery_ids.chunks(500) {
        let sql = format!(
            "SELECT d.id, d.tenant, d.event_id, d.notification_id, d.channel, d.idempotency_key,
                    e.notifier_key, e.payload, n.recipient, n.category, n.severity, n.created_at,
                    d.fallback_of, i.read_at, d.digest_of, d.workflow_run_id, d.workflow_step,
                    COALESCE(r.pins, b.pins) AS pins, d.status
             FROM deliveries d JOIN notifications n ON n.id = d.notification_id JOIN events e ON e.id = d.event_id
                  LEFT JOIN inbox_items i ON i.delivery_id = d.fallback_of
                  LEFT JOIN workflow_runs r ON r.id = d.workflow_run_id
                  LEFT JOIN digest_buckets b ON b.id = d.digest_of
             WHERE d.id IN ({})",
            store::placeholders(store::backend_of(conn), chunk.len(), 1)
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(*id);
        }
        // Whether each is still waiting is asked of the rows, not in the WHERE: a status
        // condition there let both planners walk `deliveries_status`, every pending delivery
        // (the whole backlog), instead of looking up these few ids.
        for r in q.fetch_all(&mut *conn).await? {
            let status: String = r.get("status");
            if status == "pending" || status == "deferred" {
                out.insert(r.get("id"), loaded_from_row(&r));
            }
        }
    }
    Ok(out)
}

fn loaded_from_row(r: &sqlx::any::AnyRow) -> Result<Loaded, StoreError> {
    let delivery_id: String = r.get("id");
    let channel: String = r.get("channel");
    let recipient: String = r.get("recipient");
    Ok(Loaded {
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
    })
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
    /// A deferral more than ten years away (or ago).
    #[error(transparent)]
    Bounds(#[from] crate::time_bounds::BoundsError),
    /// A reason holding NUL (see [`crate::text`]).
    #[error(transparent)]
    Text(#[from] crate::text::TextError),
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
    crate::text::free_text("reason", why)?;
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
    crate::endpoints::events::append(
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
    crate::text::free_text("reason", why)?;
    crate::time_bounds::instant("until", until, store::now())?;
    let d = waiting(db, delivery_id, "deferred").await?;
    let mut tx = db.begin().await?;
    if !queue::defer(&mut tx, queue::job_kind::DELIVER, &d.id, until, why).await? {
        return Err(ChangeError::InFlight(d.id));
    }
    let detail = format!("until {}", store::time_text(until));
    set_waiting_status(&mut tx, &d, "deferred", why, &detail).await?;
    crate::endpoints::events::append(
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

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::ConnectOptions;
    use std::str::FromStr;

    /// A database held by another writer (SQLite's SQLITE_BUSY) or out of reach is not one
    /// job's fault, so a failed batch is not retried job by job; a statement one job's rows
    /// break is.
    #[tokio::test]
    async fn a_busy_or_unreachable_database_is_an_outage_and_a_broken_row_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
            .unwrap()
            .busy_timeout(Duration::ZERO);
        let mut a = options.connect().await.unwrap();
        let mut b = options.connect().await.unwrap();
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .execute(&mut a)
            .await
            .unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut a)
            .await
            .unwrap();
        let busy = sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut b)
            .await
            .unwrap_err();
        assert!(is_outage(&StoreError::Sql(busy)));
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut a)
            .await
            .unwrap();
        let duplicate = sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut a)
            .await
            .unwrap_err();
        assert!(!is_outage(&StoreError::Sql(duplicate)));
        assert!(!is_outage(&StoreError::Corrupt("recipient".into())));
        assert!(is_outage(&StoreError::Sql(sqlx::Error::PoolTimedOut)));
    }
}

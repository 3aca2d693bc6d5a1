//! Writing: one planned event inside the trigger's transaction. The event, a notification
//! per recipient, a delivery and its job per channel, a workflow run where the notifier has
//! one, and the trace of every decision, appended in one statement at the end.

use super::decide::{
    DigestRoute, DigestRules, JoinRoute, PolicyInputs, Standing, digest_route, plan_time_decisions,
    wait_of,
};
use super::outcome::{NotificationSummary, TriggerOutcome};
use super::plan::{FallbackWait, PlannedEvent, PlannedRecipient};
use super::request::TriggerError;
use crate::content::Channel;
use crate::deliveries::{self, DeliveryRecord, NewDelivery, NewEvent, NewNotification, Status};
use crate::digests::buckets::{self, Join};
use crate::jobs::{self as queue, NewJob};
use crate::plugins::CallError;
use crate::policy::Decision;
use crate::store::{self, Conn, StoreError};
use crate::traces::{NewTrace, kind};
use crate::workflows::runs;
use chrono::{DateTime, Utc};

/// Writes one planned event inside `tx`. `None` when its idempotency key was taken since it
/// was planned: then nothing was written.
pub(super) async fn write(
    tx: &mut Conn,
    p: &PlannedEvent<'_>,
    policy_inputs: &PolicyInputs,
    digest_rules: &DigestRules,
) -> Result<Option<TriggerOutcome>, TriggerError> {
    let req = p.req;
    let now_time = store::now();
    let w = Writing {
        event: p,
        event_id: store::new_id(),
        now_time,
        now: store::time_text(now_time),
        // A send time in the future makes every delivery a deferred job until then.
        scheduled: req.deliver_at.filter(|at| *at > now_time),
        policy_inputs,
        digest_rules,
    };
    let inserted = deliveries::insert_event(
        tx,
        &NewEvent {
            id: &w.event_id,
            tenant: &req.tenant,
            notifier_key: &req.notifier,
            notifier_plugin: &p.plugin,
            payload: &p.payload,
            idempotency_key: req.idempotency_key.as_deref(),
            created_at: &w.now,
        },
    )
    .await?;
    if !inserted {
        // Another trigger with the same key committed while this one was planning.
        return Ok(None);
    }
    let mut story = w.opening();
    publish_workflow(tx, p).await?;
    let mut notifications = Vec::with_capacity(p.recipients.len());
    for r in &p.recipients {
        notifications.push(w.notification(tx, r, &mut story).await?);
    }
    crate::endpoints::events::append_all(tx, story).await?;
    tracing::info!(event_id = %w.event_id, notifications = p.recipients.len(), "event planned");
    // What was just written, without reading it back.
    Ok(Some(TriggerOutcome {
        event_id: w.event_id.clone(),
        duplicate: false,
        notifications,
    }))
}

/// A workflow's (key, version) is immutable once a run used it: checked once per event.
async fn publish_workflow(tx: &mut Conn, p: &PlannedEvent<'_>) -> Result<(), TriggerError> {
    let Some(wf) = &p.workflow else {
        return Ok(());
    };
    crate::workflows::definition::publish(tx, wf, &p.plugin)
        .await
        .map_err(|e| match e {
            crate::workflows::definition::PublishError::Store(e) => TriggerError::Store(e),
            changed => TriggerError::Plan {
                notifier: p.req.notifier.clone(),
                source: CallError {
                    plugin: p.plugin.clone(),
                    function: "describe",
                    reason: crate::plugins::FailureReason::PluginError,
                    message: changed.to_string(),
                },
            },
        })
}

/// One event being written: what each of its rows and traces shares.
struct Writing<'a> {
    event: &'a PlannedEvent<'a>,
    event_id: String,
    now_time: DateTime<Utc>,
    now: String,
    scheduled: Option<DateTime<Utc>>,
    policy_inputs: &'a PolicyInputs,
    digest_rules: &'a DigestRules,
}

/// One channel of one planned recipient, with its plan-time decision.
struct PlannedDelivery<'s> {
    p: &'s PlannedRecipient,
    /// The channel's index in the recipient's plan.
    i: usize,
    decision: Decision,
    /// Its fallback wait as it applies (none when the in-app delivery is suppressed).
    fallback: FallbackWait,
    /// The workflow run and step it is the first step of.
    run: Option<(&'s str, &'s str)>,
}

impl PlannedDelivery<'_> {
    fn id(&self) -> &str {
        &self.p.delivery_ids[self.i]
    }
    fn channel(&self) -> Channel {
        self.p.channels[self.i]
    }
}

/// What the digest side did with one delivery.
#[derive(Default)]
struct DigestSide<'s> {
    /// The reason and detail of its `delivery.held` trace: held, sent as its window's first,
    /// or why a held delivery goes on its own.
    held_trace: Option<(&'static str, String)>,
    bucket: Option<String>,
    digest_key: Option<&'s str>,
    /// The bucket reached its rule's max items with this delivery.
    full: bool,
}

impl<'a> Writing<'a> {
    /// A planning decision, attributed to the notifier build.
    fn trace<'s>(
        &'s self,
        kind: &'s str,
        notification_id: Option<&'s str>,
        delivery_id: Option<&'s str>,
        reason: Option<&'s str>,
        detail: String,
    ) -> NewTrace<'s> {
        NewTrace {
            tenant: &self.event.req.tenant,
            event_id: &self.event_id,
            notification_id,
            delivery_id,
            kind,
            reason,
            detail: Some(detail),
            plugin: Some(self.event.plugin.clone()),
            ..Default::default()
        }
    }

    /// A decision of one delivery that belfry made (policy, digests), not the notifier.
    fn belfry_trace<'s>(
        &'s self,
        kind: &'s str,
        d: &PlannedDelivery<'s>,
        reason: Option<&'s str>,
        detail: String,
    ) -> NewTrace<'s> {
        NewTrace {
            plugin: None,
            ..self.trace(
                kind,
                Some(&d.p.notification_id),
                Some(&d.p.delivery_ids[d.i]),
                reason,
                detail,
            )
        }
    }

    /// The event's first traces: received, and whom the notifier planned.
    fn opening(&self) -> Vec<NewTrace<'_>> {
        let (req, planned) = (self.event.req, &self.event.recipients);
        vec![
            self.trace(
                kind::EVENT_RECEIVED,
                None,
                None,
                None,
                format!(
                    "notifier {} ({} category){}",
                    req.notifier,
                    self.event.category,
                    req.idempotency_key
                        .as_ref()
                        .map(|k| format!(", idempotency key {k}"))
                        .unwrap_or_default()
                ),
            ),
            self.trace(
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
        ]
    }

    /// One recipient: its notification, its workflow run, and a delivery per channel.
    async fn notification<'s>(
        &'s self,
        tx: &mut Conn,
        p: &'s PlannedRecipient,
        story: &mut Vec<NewTrace<'s>>,
    ) -> Result<NotificationSummary, TriggerError> {
        let req = self.event.req;
        let recipient_json =
            serde_json::to_string(&p.recipient).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        deliveries::insert_notification(
            tx,
            &NewNotification {
                id: &p.notification_id,
                event_id: &self.event_id,
                tenant: &req.tenant,
                recipient_id: &p.recipient.id,
                recipient: &recipient_json,
                category: &self.event.category,
                severity: p.severity.as_str(),
                created_at: &self.now,
            },
        )
        .await?;
        story.push(self.trace(
            kind::NOTIFICATION_CREATED,
            Some(&p.notification_id),
            None,
            None,
            format!(
                "recipient {} ({} severity, {})",
                p.recipient.id, p.severity, p.severity_from
            ),
        ));
        let run = self.start_run(tx, p).await?;
        // Policy checkpoint 1, inside this transaction: what was planned before it counts.
        let (decisions, fallbacks) = plan_time_decisions(
            tx,
            p,
            req,
            &self.event.category,
            self.policy_inputs,
            self.now_time,
            self.scheduled,
        )
        .await?;
        let mut deliveries = Vec::with_capacity(p.channels.len());
        for ((i, decision), fallback) in decisions.into_iter().enumerate().zip(fallbacks) {
            let d = PlannedDelivery {
                p,
                i,
                decision,
                fallback,
                run,
            };
            deliveries.push(self.delivery(tx, d, story).await?);
        }
        // The order `summary` reads them back in.
        deliveries.sort_by(|a, b| a.channel.cmp(&b.channel));
        Ok(NotificationSummary {
            id: p.notification_id.clone(),
            recipient_id: p.recipient.id.clone(),
            deliveries,
        })
    }

    /// The run starts with its notification; its first step's delivery is written next.
    /// Returns the run's id and first step.
    async fn start_run<'s>(
        &'s self,
        tx: &mut Conn,
        p: &'s PlannedRecipient,
    ) -> Result<Option<(&'s str, &'s str)>, TriggerError> {
        let (Some(wf), Some((run_id, all))) = (&self.event.workflow, &p.workflow) else {
            return Ok(None);
        };
        runs::start(
            tx,
            &runs::Start {
                id: run_id,
                tenant: &self.event.req.tenant,
                event_id: &self.event_id,
                notification_id: &p.notification_id,
                recipient_id: &p.recipient.id,
                workflow: wf,
                notifier_plugin: &self.event.plugin,
                pins: self.event.pins.as_deref(),
                channels: all,
                first_delivery: p.delivery_ids.first().map(String::as_str),
            },
        )
        .await?;
        Ok(Some((run_id.as_str(), wf.steps[0].key.as_str())))
    }

    /// One delivery: where it starts (the policy's decision, a wait, the digest side), its
    /// row, what follows in the same transaction, and its traces.
    async fn delivery<'s>(
        &'s self,
        tx: &mut Conn,
        d: PlannedDelivery<'s>,
        story: &mut Vec<NewTrace<'s>>,
    ) -> Result<DeliveryRecord, TriggerError> {
        let req = self.event.req;
        let wait = wait_of(&d.fallback, self.scheduled, self.now_time);
        let mut standing = Standing::of(&d.decision, wait, self.now_time);
        let side = self.digest_side(tx, &d, &mut standing).await?;
        let idempotency_key = deliveries::insert_delivery(
            tx,
            &NewDelivery {
                id: d.id(),
                notification_id: &d.p.notification_id,
                event_id: &self.event_id,
                tenant: &req.tenant,
                channel: d.channel().as_str(),
                status: standing.status,
                reason: standing.reason,
                detail: standing.detail.as_deref(),
                planned_by: &self.event.plugin,
                created_at: &self.now,
                fallback_of: d.fallback.as_ref().map(|(id, _)| id.as_str()),
                digest_bucket_id: side.bucket.as_deref(),
                digest_key: side.digest_key,
                digest_of: None,
                workflow_run_id: d.run.map(|(id, _)| id),
                workflow_step: d.run.map(|(_, step)| step),
            },
        )
        .await?;
        self.follow_up(tx, &d, &standing, &side).await?;
        let record = DeliveryRecord {
            id: d.id().to_string(),
            notification_id: d.p.notification_id.clone(),
            event_id: self.event_id.clone(),
            tenant: req.tenant.clone(),
            recipient_id: d.p.recipient.id.clone(),
            channel: d.channel().as_str().to_string(),
            status: standing.status.as_str().to_string(),
            status_reason: standing.reason.map(str::to_string),
            status_detail: standing.detail.clone(),
            idempotency_key,
            planned_by: self.event.plugin.to_string(),
            rendered_by: None,
            content: None,
            sent_by: None,
            provider_message_id: None,
            attempts: 0,
            created_at: self.now.clone(),
            updated_at: self.now.clone(),
        };
        self.tell(story, d, standing, side.held_trace);
        Ok(record)
    }

    /// The digest side: hold the delivery in a bucket, send it as its window's first, or say
    /// why a held delivery goes on its own.
    async fn digest_side<'s>(
        &'s self,
        tx: &mut Conn,
        d: &PlannedDelivery<'s>,
        standing: &mut Standing,
    ) -> Result<DigestSide<'s>, TriggerError> {
        let req = self.event.req;
        let zone = self
            .policy_inputs
            .get(&(req.tenant.clone(), d.p.recipient.id.clone()))
            .map_or(chrono_tz::UTC, |i| i.zone());
        match digest_route(d.p, d.i, &d.decision, self.event, self.digest_rules, zone) {
            DigestRoute::Direct => Ok(DigestSide::default()),
            DigestRoute::Instant { rule } => Ok(DigestSide {
                held_trace: Some((
                    buckets::reason::CADENCE_INSTANT,
                    format!(
                        "held for digest by the notifier and taken by rule {} v{}, but recipient {} chose instant delivery for category {}: not held",
                        rule.spec.key, rule.spec.version, d.p.recipient.id, self.event.category
                    ),
                )),
                ..Default::default()
            }),
            DigestRoute::NoRule { digest_key } => {
                let detail = format!(
                    "held for digest by the notifier, but no digest rule of tenant {} takes {} of notifier {} (category {}{}): sent on its own",
                    req.tenant,
                    d.channel(),
                    req.notifier,
                    self.event.category,
                    digest_key
                        .map(|k| format!(", digest key {k}"))
                        .unwrap_or_default()
                );
                if standing.status == Status::Pending {
                    standing.reason = Some(buckets::reason::NO_DIGEST_RULE);
                    standing.detail = Some(detail.clone());
                }
                Ok(DigestSide {
                    held_trace: Some((buckets::reason::NO_DIGEST_RULE, detail)),
                    digest_key,
                    ..Default::default()
                })
            }
            DigestRoute::Join(join) => self.join_bucket(tx, d, join, standing).await,
        }
    }

    /// Joins the delivery to its rule's bucket: it is held there, unless it is the first of
    /// a first-now rule's window (then it goes now, and the rest of the window is held).
    async fn join_bucket<'s>(
        &'s self,
        tx: &mut Conn,
        d: &PlannedDelivery<'s>,
        join: JoinRoute<'s>,
        standing: &mut Standing,
    ) -> Result<DigestSide<'s>, TriggerError> {
        let req = self.event.req;
        let JoinRoute {
            rule,
            digest_key,
            folded,
            window,
            cadence,
        } = join;
        let group_value = buckets::group_value(
            rule.spec.group_by,
            &req.notifier,
            &self.event.category,
            digest_key,
        );
        let joined = buckets::join(
            tx,
            &Join {
                tenant: &req.tenant,
                rule,
                recipient_id: &d.p.recipient.id,
                channel: d.channel(),
                group_value: &group_value,
                window: &window,
                at: self.scheduled.unwrap_or(self.now_time),
                delivery_id: d.id(),
                pins: self.event.pins.as_deref(),
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
        let mut side = DigestSide {
            bucket: Some(joined.bucket_id.clone()),
            digest_key,
            ..Default::default()
        };
        if joined.first_now {
            side.held_trace = Some((
                buckets::reason::DIGEST_FIRST_NOW,
                format!(
                    "the first item of digest bucket {} (rule {rule_name}{group}): not held, the rest of its window until {} is digested",
                    joined.bucket_id,
                    store::time_text(joined.window_end)
                ),
            ));
            return Ok(side);
        }
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
        *standing = Standing {
            status: Status::Held,
            reason: Some(why),
            detail: Some(detail.clone()),
            run_at: None,
            trace: None,
        };
        side.held_trace = Some((why, detail));
        side.full = joined.full;
        Ok(side)
    }

    /// What commits with the delivery's row: a first workflow step suppressed at plan time
    /// moves its run on, the job that will send it, and a digest bucket it filled is emitted.
    async fn follow_up(
        &self,
        tx: &mut Conn,
        d: &PlannedDelivery<'_>,
        standing: &Standing,
        side: &DigestSide<'_>,
    ) -> Result<(), TriggerError> {
        // A first step suppressed at plan time has its final outcome already.
        if let (Some((run_id, step)), Status::Suppressed) = (d.run, standing.status) {
            runs::advance(
                tx,
                run_id,
                step,
                Some(d.id()),
                crate::workflows::StepOutcome::Suppressed,
                format!(
                    "delivery {} suppressed at plan time ({})",
                    d.id(),
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
                    subject_id: d.id(),
                    tenant: &self.event.req.tenant,
                    run_at,
                    deferred: standing
                        .reason
                        .filter(|_| standing.status == Status::Deferred),
                },
            )
            .await?;
        }
        if let (true, Some(b)) = (side.full, &side.bucket) {
            // The bucket reached its rule's max items with this member: emit it now.
            buckets::emit_in(tx, b, self.now_time, Some(buckets::closed_by::MAX_ITEMS)).await?;
        }
        Ok(())
    }

    /// The traces of one delivery: planned by the notifier, its policy check, the digest
    /// side's say, and how it starts.
    fn tell<'s>(
        &'s self,
        story: &mut Vec<NewTrace<'s>>,
        d: PlannedDelivery<'s>,
        standing: Standing,
        held_trace: Option<(&'static str, String)>,
    ) {
        let (p, i) = (d.p, d.i);
        story.push(self.trace(
            kind::DELIVERY_PLANNED,
            Some(&p.notification_id),
            Some(&p.delivery_ids[i]),
            Some("notifier_selected_channel"),
            format!(
                "{} for recipient {}{}",
                p.channels[i],
                p.recipient.id,
                match (&p.fallbacks[i], &d.fallback) {
                    (Some(_), None) => {
                        ", a fallback of in-app sent without waiting: the in-app delivery is suppressed"
                    }
                    (Some(_), Some(_)) => ", a fallback of in-app",
                    _ => "",
                }
            ),
        ));
        story.push(self.belfry_trace(
            kind::POLICY_CHECKED,
            &d,
            Some(d.decision.code()),
            d.decision.to_string(),
        ));
        if let Some((why, detail)) = held_trace {
            story.push(self.belfry_trace(kind::DELIVERY_HELD, &d, Some(why), detail));
        }
        if let Some(k) = standing.trace {
            story.push(self.belfry_trace(
                k,
                &d,
                standing.reason,
                standing.detail.unwrap_or_default(),
            ));
        }
    }
}

//! Planning: validates a request and asks the notifier plugin for its recipients and their
//! channels. Writes nothing: plugin calls may take milliseconds and must not hold a write
//! transaction.

use super::outcome::find_by_key;
use super::request::{TriggerError, TriggerRequest, check_request};
use crate::content::{Channel, Recipient};
use crate::plugins::{CallError, NotifierDescription, Plugin, PluginRuntime, Registry, Reuse};
use crate::policy::{self, Severity};
use crate::store::{self, Db};

pub(super) struct PlannedRecipient {
    pub(super) recipient: Recipient,
    pub(super) channels: Vec<Channel>,
    pub(super) notification_id: String,
    /// One per channel, in the same order.
    pub(super) delivery_ids: Vec<String>,
    /// The notification's severity and where it came from.
    pub(super) severity: Severity,
    pub(super) severity_from: &'static str,
    /// Per channel, in the same order: for a fallback channel, the in-app delivery it waits on
    /// and for how long (as declared; see [`plan_time_decisions`] for when it is dropped).
    pub(super) fallbacks: Vec<FallbackWait>,
    /// Per channel, in the same order: `Some(digest key)` when the notifier holds it for
    /// digest (never for a critical notification).
    pub(super) held: Vec<Option<Option<String>>>,
    /// A workflow notifier's run for this recipient: its id and every channel the notifier
    /// planned (`channels` then holds only the first step's, if planned).
    pub(super) workflow: Option<(String, Vec<Channel>)>,
}

/// A fallback channel's wait: the in-app delivery it waits on, and for how long.
pub(super) type FallbackWait = Option<(String, chrono::Duration)>;

/// The most recipients one trigger fans out to: the notifier is asked for recipients before
/// anything is written, so a bigger audience fails the trigger whole, and is split by the
/// caller into several triggers.
pub const MAX_RECIPIENTS: usize = 1000;

/// An event planned by its notifier, ready to be written.
pub(super) struct PlannedEvent<'r> {
    pub(super) req: &'r TriggerRequest,
    /// The notifier build, `name@version#hash12`.
    pub(super) plugin: String,
    pub(super) category: String,
    pub(super) payload: String,
    pub(super) recipients: Vec<PlannedRecipient>,
    /// The notifier lets deliveries that quiet hours or a cap hold back join a digest.
    pub(super) fold_deferred: bool,
    /// The notifier's workflow: one run per notification, starting at its first step.
    pub(super) workflow: Option<crate::workflows::Workflow>,
    /// The builds in force now, which a workflow run or a digest bucket this event starts
    /// keeps to the end (JSON of [`crate::plugins::pins::Pins`]; `None` when the event can
    /// start neither).
    pub(super) pins: Option<String>,
}

pub(super) enum Plan<'r> {
    New(PlannedEvent<'r>),
    /// The idempotency key was used before: the original event's id.
    Duplicate(String),
}

/// Validates a request and asks the notifier plugin for its recipients and channels. Writes
/// nothing: plugin calls may take milliseconds and must not hold a write transaction.
pub(super) async fn plan<'r>(
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
    let recipients = recipients_of(runtime, notifier, &payload, req).await?;
    let asking = Asking {
        runtime,
        notifier,
        description,
        payload: &payload,
        req,
    };
    let mut planned = Vec::with_capacity(recipients.len());
    for recipient in recipients {
        planned.push(asking.recipient(recipient).await?);
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

fn plan_error(req: &TriggerRequest, source: CallError) -> TriggerError {
    TriggerError::Plan {
        notifier: req.notifier.clone(),
        source,
    }
}

/// The notifier's recipients: deduplicated by id (first occurrence wins) and sorted, so the
/// same payload always plans the same notifications in the same order; at least one, at most
/// [`MAX_RECIPIENTS`], and each id by the rule for any id.
async fn recipients_of(
    runtime: &PluginRuntime,
    notifier: &Plugin,
    payload: &str,
    req: &TriggerRequest,
) -> Result<Vec<Recipient>, TriggerError> {
    let mut recipients = runtime
        .recipients(notifier, payload, Reuse::Tenant(&req.tenant))
        .await
        .map_err(|e| plan_error(req, e))?;
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
    Ok(recipients)
}

/// What asking the notifier about each recipient takes.
struct Asking<'a> {
    runtime: &'a PluginRuntime,
    notifier: &'a Plugin,
    description: &'a NotifierDescription,
    payload: &'a str,
    req: &'a TriggerRequest,
}

impl Asking<'_> {
    /// One recipient's plan: its channels (checked against the notifier's declaration), its
    /// severity, fallbacks, holds for digest and workflow run.
    async fn recipient(&self, recipient: Recipient) -> Result<PlannedRecipient, TriggerError> {
        let (req, description) = (self.req, self.description);
        let plan = self
            .runtime
            .channels(
                self.notifier,
                self.payload,
                &recipient,
                Reuse::Tenant(&req.tenant),
            )
            .await
            .map_err(|e| plan_error(req, e))?;
        let mut channels = plan.channels;
        channels.sort();
        channels.dedup();
        let misplanned = |message: String| {
            plan_error(
                req,
                CallError {
                    plugin: self.notifier.reference().to_string(),
                    function: "channels",
                    reason: crate::plugins::FailureReason::PluginError,
                    message,
                },
            )
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
        let (base_severity, base_from) = match req.severity {
            Some(s) => (s, "from the trigger"),
            None => (description.severity, "the notifier's default"),
        };
        // The notifier may raise the severity for this recipient, never lower it.
        let (severity, severity_from) = match plan.severity {
            Some(s) if s > base_severity => (s, "raised by the notifier for this recipient"),
            _ => (base_severity, base_from),
        };
        let delivery_ids: Vec<String> = channels.iter().map(|_| store::new_id()).collect();
        let fallbacks = fallbacks(description, &channels, &delivery_ids);
        let held =
            held_channels(&channels, &fallbacks, &plan.held, severity).map_err(misplanned)?;
        Ok(PlannedRecipient {
            notification_id: store::new_id(),
            delivery_ids,
            recipient,
            channels,
            severity,
            severity_from,
            fallbacks,
            held,
            workflow,
        })
    }
}

/// Per channel, its fallback wait: a fallback waits on this recipient's in-app delivery;
/// without one it is not a fallback, just a channel.
fn fallbacks(
    description: &NotifierDescription,
    channels: &[Channel],
    delivery_ids: &[String],
) -> Vec<FallbackWait> {
    let in_app = channels
        .iter()
        .position(|c| *c == Channel::InApp)
        .map(|i| delivery_ids[i].clone());
    channels
        .iter()
        .map(|c| {
            let f = description.fallback_for(*c)?;
            let wait = chrono::Duration::milliseconds(f.after_ms as i64);
            in_app.clone().map(|id| (id, wait))
        })
        .collect()
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

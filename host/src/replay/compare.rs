//! One recorded event run on both sides, and the differences between what each planned and
//! rendered.

use super::{Change, What};
use crate::content::{Channel, Content};
use crate::deliveries::reads::RecordedEvent;
use crate::plugins::contract::Hold;
use crate::plugins::workflow::Workflow;
use crate::plugins::{Plugin, PluginKind, PluginRuntime, Registry, Reuse, preview};
use crate::policy::Severity;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

pub(super) struct Replayer {
    pub(super) runtime: Arc<PluginRuntime>,
    pub(super) registry: Arc<Registry>,
    pub(super) candidate: Plugin,
}

/// What one event's replay found.
pub(super) struct EventOutcome {
    pub(super) baseline: String,
    pub(super) note: Option<String>,
    pub(super) changes: Vec<Change>,
    pub(super) candidate_failed: bool,
    pub(super) baseline_failed: bool,
}

/// The notifier and renderer one side runs with, or why it has none.
type Side<'a> = Result<(&'a Plugin, &'a Plugin), String>;

/// What one side planned and rendered for the event.
struct Run {
    /// Planning (recipients, channels) failed: nothing else is known.
    plan: Result<Plan, String>,
    content: BTreeMap<(String, Channel), Result<Content, String>>,
}

#[derive(Default)]
struct Plan {
    recipients: Vec<String>,
    per_recipient: BTreeMap<String, RecipientPlan>,
    workflow: Option<Workflow>,
}

#[derive(PartialEq)]
struct RecipientPlan {
    channels: Vec<Channel>,
    severity: Severity,
    held: Vec<Hold>,
}

impl Run {
    fn failed(&self) -> bool {
        self.plan.is_err() || self.content.values().any(Result::is_err)
    }
}

impl Replayer {
    pub(super) async fn event(&self, event: &RecordedEvent) -> EventOutcome {
        let (baseline, candidate, reference, note) = self.sides(event);
        let (before, after) = futures_util::join!(
            self.run(baseline, &event.payload),
            self.run(candidate, &event.payload)
        );
        EventOutcome {
            baseline: reference,
            note,
            candidate_failed: after.failed(),
            baseline_failed: before.failed(),
            changes: compare(&before, &after),
        }
    }

    /// Both sides for `event`, the baseline's reference, and a note when the baseline is not
    /// the build that ran.
    fn sides(&self, event: &RecordedEvent) -> (Side<'_>, Side<'_>, String, Option<String>) {
        let renderer_for = |notifier: &Plugin| {
            self.registry
                .renderer_for(notifier)
                .map_err(|e| e.to_string())
        };
        if self.candidate.kind() == PluginKind::Renderer {
            // The notifier in force plans both sides; only the renderer differs.
            let notifier = self
                .registry
                .notifier(&event.notifier_key)
                .map_err(|e| e.to_string());
            let baseline = notifier.clone().and_then(|n| Ok((n, renderer_for(n)?)));
            let reference = match &baseline {
                Ok((_, r)) => r.reference().to_string(),
                Err(_) => "(none)".to_string(),
            };
            let candidate = notifier.map(|n| (n, &self.candidate));
            return (baseline, candidate, reference, None);
        }
        let (notifier, note) = match self.registry.build(&event.notifier_plugin) {
            Some(recorded) => (Ok(recorded), None),
            None => match self.registry.notifier(&event.notifier_key) {
                Ok(current) => (
                    Ok(current),
                    Some(format!(
                        "recorded build {} not loaded; compared against the build in force, {}",
                        event.notifier_plugin,
                        current.reference()
                    )),
                ),
                Err(e) => (
                    Err(format!(
                        "recorded build {} not loaded, and {e}",
                        event.notifier_plugin
                    )),
                    None,
                ),
            },
        };
        let reference = match &notifier {
            Ok(n) => n.reference().to_string(),
            Err(_) => event.notifier_plugin.clone(),
        };
        let baseline = notifier.and_then(|n| Ok((n, renderer_for(n)?)));
        let candidate = renderer_for(&self.candidate).map(|r| (&self.candidate, r));
        (baseline, candidate, reference, note)
    }

    async fn run(&self, side: Side<'_>, payload: &str) -> Run {
        let mut run = Run {
            plan: Ok(Plan::default()),
            content: BTreeMap::new(),
        };
        let (notifier, renderer) = match side {
            Ok(side) => side,
            Err(e) => {
                run.plan = Err(e);
                return run;
            }
        };
        let plan = match self.plan(notifier, payload).await {
            Ok(plan) => plan,
            Err(e) => {
                run.plan = Err(e);
                return run;
            }
        };
        for (id, recipient_plan) in &plan.per_recipient {
            let Some(recipient) = plan.recipient(id) else {
                continue;
            };
            for &channel in &recipient_plan.channels {
                let content = preview::render_one(
                    &self.runtime,
                    notifier,
                    renderer,
                    payload,
                    recipient,
                    channel,
                )
                .await
                .map(|r| r.content)
                .map_err(|e| e.to_string());
                run.content.insert((id.clone(), channel), content);
            }
        }
        run.plan = Ok(plan.plan);
        run
    }

    /// Recipients and each one's channels, as trigger asks for them (sorted, deduplicated,
    /// severity never below the notifier's default).
    async fn plan(&self, notifier: &Plugin, payload: &str) -> Result<Planned, String> {
        let fresh = || Reuse::Fresh;
        let mut recipients = self
            .runtime
            .recipients(notifier, payload, fresh())
            .await
            .map_err(|e| e.to_string())?;
        recipients.sort_by(|a, b| a.id.cmp(&b.id));
        recipients.dedup_by(|a, b| a.id == b.id);
        let description = notifier.description();
        let default_severity = description.map(|d| d.severity).unwrap_or_default();
        let mut plan = Plan {
            recipients: recipients.iter().map(|r| r.id.clone()).collect(),
            per_recipient: BTreeMap::new(),
            workflow: description.and_then(|d| d.workflow.clone()),
        };
        for recipient in &recipients {
            let asked = self
                .runtime
                .channels(notifier, payload, recipient, fresh())
                .await
                .map_err(|e| format!("recipient {}: {e}", recipient.id))?;
            let mut channels = asked.channels;
            channels.sort();
            channels.dedup();
            let severity = asked
                .severity
                .filter(|s| *s > default_severity)
                .unwrap_or(default_severity);
            plan.per_recipient.insert(
                recipient.id.clone(),
                RecipientPlan {
                    channels,
                    severity,
                    held: asked.held,
                },
            );
        }
        Ok(Planned { plan, recipients })
    }
}

/// A plan with the recipients it was made for (rendering needs them whole).
struct Planned {
    plan: Plan,
    recipients: Vec<crate::content::Recipient>,
}

impl std::ops::Deref for Planned {
    type Target = Plan;
    fn deref(&self) -> &Plan {
        &self.plan
    }
}

impl Planned {
    fn recipient(&self, id: &str) -> Option<&crate::content::Recipient> {
        self.recipients.iter().find(|r| r.id == id)
    }
}

fn change(recipient: Option<&str>, channel: Option<Channel>, what: What) -> Change {
    Change {
        recipient: recipient.map(String::from),
        channel: channel.map(|c| c.to_string()),
        what,
        before: Value::Null,
        after: Value::Null,
    }
}

fn value(v: impl serde::Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// What differs between the baseline's run and the candidate's.
fn compare(before: &Run, after: &Run) -> Vec<Change> {
    let (b, a) = match (&before.plan, &after.plan) {
        (Ok(b), Ok(a)) => (b, a),
        (b, a) => {
            let (eb, ea) = (b.as_ref().err(), a.as_ref().err());
            if eb == ea {
                return Vec::new();
            }
            let mut c = change(None, None, What::Error);
            c.before = json!(eb);
            c.after = json!(ea);
            return vec![c];
        }
    };
    let mut changes = Vec::new();
    if a.recipients != b.recipients {
        let mut c = change(None, None, What::Recipients);
        c.before = json!(b.recipients);
        c.after = json!(a.recipients);
        changes.push(c);
    }
    if a.workflow != b.workflow {
        let mut c = change(None, None, What::Workflow);
        c.before = value(&b.workflow);
        c.after = value(&a.workflow);
        changes.push(c);
    }
    for (id, bp) in &b.per_recipient {
        let Some(ap) = a.per_recipient.get(id) else {
            continue;
        };
        let mut push = |what, before: Value, after: Value| {
            let mut c = change(Some(id), None, what);
            c.before = before;
            c.after = after;
            changes.push(c);
        };
        if ap.channels != bp.channels {
            push(What::Channels, value(&bp.channels), value(&ap.channels));
        }
        if ap.severity != bp.severity {
            push(What::Severity, value(bp.severity), value(ap.severity));
        }
        if ap.held != bp.held {
            push(What::Holds, value(&bp.held), value(&ap.held));
        }
    }
    // Content of the deliveries both sides plan; one planned on one side only is a channels
    // change already.
    for ((id, channel), bc) in &before.content {
        let Some(ac) = after.content.get(&(id.clone(), *channel)) else {
            continue;
        };
        let what = match (bc, ac) {
            (Ok(x), Ok(y)) if x == y => continue,
            (Err(x), Err(y)) if x == y => continue,
            (Ok(_), Ok(_)) => What::Content,
            _ => What::Error,
        };
        let mut c = change(Some(id), Some(*channel), what);
        (c.before, c.after) = match (bc, ac) {
            (Ok(x), Ok(y)) => (value(x), value(y)),
            (x, y) => (side_value(x), side_value(y)),
        };
        changes.push(c);
    }
    changes
}

/// Content as JSON, or a failure as `{"error": message}`.
fn side_value(r: &Result<Content, String>) -> Value {
    match r {
        Ok(c) => value(c),
        Err(e) => json!({ "error": e }),
    }
}

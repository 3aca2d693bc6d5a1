//! The `task-assigned` notifier (category `tasks`, severity `normal`, contract 1.0): belfry's
//! example of a workflow.
//!
//! Payload:
//! `{"task": {"id": "...", "title": "...", "url": "..."}, "assignee": {"id": "...",
//! "email": "...", "phone": "...", "name": "..."}, "assigned_by": {"name": "..."}}`.
//! `task.id`, `task.title`, `assignee.id` and `assigned_by.name` are required non-empty
//! strings; `task.url` and the assignee's `email`, `phone` and `name` are optional.
//!
//! One recipient, the assignee (with `{"name": ...}` as its data when given). Channels:
//! `in-app` always, `email` with an address, `sms` with a phone number.
//!
//! The workflow `task-assigned` v1:
//! 1. `inbox` (in-app), at once.
//! 2. `email`, one hour after the in-app item was written, unless the recipient reads it
//!    first (`notification.read` cancels the wait for good); a `task.escalate` signal sends it
//!    at once. Delivered or suppressed: the run stops. Permanently failed: go to `sms`.
//!    Any other failure (retries exhausted) falls through to the next step, `sms`, too.
//! 3. `sms`, at once.
//!
//! Every channel renders the `task-assigned` template with the data
//! `{"task_id", "task_title", "task_url", "assigned_by", "recipient_id", "name"}`.

use belfry_plugin_sdk::notifier::{
    Branch, Description, Guest, PlanError, RecipientPlan, Severity, Step, StepOutcome, StepTarget,
    StepWait, Workflow,
};
use belfry_plugin_sdk::payload::{
    PayloadError, optional_non_empty_string, parse_object, required_object, required_string,
};
use belfry_plugin_sdk::types::{Channel, Recipient, RenderRequest};
use serde_json::json;

const KEY: &str = "task-assigned";
const HOUR_MS: u64 = 3_600_000;

struct TaskAssigned;

impl Guest for TaskAssigned {
    fn describe() -> Description {
        Description {
            key: KEY.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            category: "tasks".to_string(),
            channels: vec![Channel::InApp, Channel::Email, Channel::Sms],
            description: "Tells someone a task was assigned to them: in-app at once, email an \
                          hour later unless read, sms if the email fails for good"
                .to_string(),
            severity: Severity::Normal,
            fallbacks: Vec::new(),
            fold_deferred: false,
            workflow: Some(Workflow {
                key: KEY.to_string(),
                version: "1".to_string(),
                steps: vec![
                    Step {
                        key: "inbox".to_string(),
                        channel: Channel::InApp,
                        wait: None,
                        on_outcome: Vec::new(),
                    },
                    Step {
                        key: "email".to_string(),
                        channel: Channel::Email,
                        wait: Some(StepWait {
                            after_ms: HOUR_MS,
                            cancel_on: vec!["notification.read".to_string()],
                            resume_on: vec!["task.escalate".to_string()],
                        }),
                        on_outcome: vec![
                            Branch {
                                outcome: StepOutcome::Delivered,
                                then: StepTarget::Stop,
                            },
                            Branch {
                                outcome: StepOutcome::Suppressed,
                                then: StepTarget::Stop,
                            },
                            Branch {
                                outcome: StepOutcome::PermanentlyFailed,
                                then: StepTarget::Goto("sms".to_string()),
                            },
                        ],
                    },
                    Step {
                        key: "sms".to_string(),
                        channel: Channel::Sms,
                        wait: None,
                        on_outcome: Vec::new(),
                    },
                ],
            }),
        }
    }

    fn recipients(payload: String) -> Result<Vec<Recipient>, PlanError> {
        let task = Task::parse(&payload)?;
        Ok(vec![Recipient {
            id: task.assignee_id,
            email: task.email,
            phone: task.phone,
            data: task.name.map(|n| json!({ "name": n }).to_string()),
        }])
    }

    fn channels(payload: String, recipient: Recipient) -> Result<RecipientPlan, PlanError> {
        Task::parse(&payload)?;
        let mut channels = vec![Channel::InApp];
        if recipient.email.as_deref().is_some_and(|e| !e.is_empty()) {
            channels.push(Channel::Email);
        }
        if recipient.phone.as_deref().is_some_and(|p| !p.is_empty()) {
            channels.push(Channel::Sms);
        }
        Ok(RecipientPlan {
            channels,
            severity: None,
            held: Vec::new(),
        })
    }

    fn build(
        payload: String,
        recipient: Recipient,
        channel: Channel,
    ) -> Result<RenderRequest, PlanError> {
        let task = Task::parse(&payload)?;
        if !matches!(channel, Channel::InApp | Channel::Email | Channel::Sms) {
            return Err(PlanError::Failed(
                "the task-assigned notifier uses in-app, email and sms only".to_string(),
            ));
        }
        let data = json!({
            "task_id": task.id,
            "task_title": task.title,
            "task_url": task.url,
            "assigned_by": task.assigned_by,
            "recipient_id": recipient.id,
            "name": task.name,
        });
        Ok(RenderRequest {
            template: KEY.to_string(),
            channel,
            data: data.to_string(),
            locale: None,
        })
    }
}

struct Task {
    id: String,
    title: String,
    url: Option<String>,
    assignee_id: String,
    email: Option<String>,
    phone: Option<String>,
    name: Option<String>,
    assigned_by: String,
}

impl Task {
    fn parse(payload: &str) -> Result<Self, PayloadError> {
        let payload = parse_object(payload)?;
        let task = required_object(&payload, "task", "task")?;
        let assignee = required_object(&payload, "assignee", "assignee")?;
        let by = required_object(&payload, "assigned_by", "assigned_by")?;
        Ok(Task {
            id: required_string(task, "id", "task.id")?,
            title: required_string(task, "title", "task.title")?,
            url: optional_non_empty_string(task, "url", "task.url")?,
            assignee_id: required_string(assignee, "id", "assignee.id")?,
            email: optional_non_empty_string(assignee, "email", "assignee.email")?,
            phone: optional_non_empty_string(assignee, "phone", "assignee.phone")?,
            name: optional_non_empty_string(assignee, "name", "assignee.name")?,
            assigned_by: required_string(by, "name", "assigned_by.name")?,
        })
    }
}

belfry_plugin_sdk::export_notifier!(TaskAssigned);

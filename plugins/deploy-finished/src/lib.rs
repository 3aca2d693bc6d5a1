//! The `deploy-finished` notifier (category `deploys`): the example that uses the `chat` and
//! `push` channels (Slack and ntfy, when routed to them).
//!
//! Payload: `{"service": "...", "version": "...", "status": "succeeded"|"failed",
//! "url": "https://...", "watchers": [{"id": "...", "ntfy_topic": "..."}]}`; `service`,
//! `status` and a non-empty `watchers` are required. Each watcher gets a chat message, and a
//! push too when it has an `ntfy_topic` (carried in the recipient's data, where the ntfy
//! adapter looks for it).

use belfry_plugin_sdk::notifier::{Description, Guest, PlanError, RecipientPlan, Severity};
use belfry_plugin_sdk::payload::{optional_non_empty_string, parse_object, required_string};
use belfry_plugin_sdk::types::{Channel, Recipient, RenderRequest};
use serde_json::{Value, json};

const KEY: &str = "deploy-finished";

struct DeployFinished;

impl Guest for DeployFinished {
    fn describe() -> Description {
        Description {
            key: KEY.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            category: "deploys".to_string(),
            channels: vec![Channel::Chat, Channel::Push],
            description: "Tells a team a deploy finished, by chat and push".to_string(),
            severity: Severity::Normal,
            fallbacks: Vec::new(),
            fold_deferred: false,
            workflow: None,
        }
    }

    fn recipients(payload: String) -> Result<Vec<Recipient>, PlanError> {
        let payload = parse_object(&payload)?;
        let watchers = payload
            .get("watchers")
            .and_then(Value::as_array)
            .filter(|w| !w.is_empty())
            .ok_or_else(|| {
                PlanError::InvalidPayload(
                    "missing field `watchers` (a non-empty list of {id, ntfy_topic?})".to_string(),
                )
            })?;
        let mut out = Vec::with_capacity(watchers.len());
        for (i, w) in watchers.iter().enumerate() {
            let w = w.as_object().ok_or_else(|| {
                PlanError::InvalidPayload(format!("`watchers[{i}]` must be an object"))
            })?;
            let id = required_string(w, "id", &format!("watchers[{i}].id"))?;
            let topic =
                optional_non_empty_string(w, "ntfy_topic", &format!("watchers[{i}].ntfy_topic"))?;
            out.push(Recipient {
                id,
                email: None,
                phone: None,
                data: topic.map(|t| json!({ "ntfy_topic": t }).to_string()),
            });
        }
        Ok(out)
    }

    fn channels(payload: String, recipient: Recipient) -> Result<RecipientPlan, PlanError> {
        parse_object(&payload)?;
        let mut channels = vec![Channel::Chat];
        if recipient
            .data
            .as_deref()
            .is_some_and(|d| d.contains("ntfy_topic"))
        {
            channels.push(Channel::Push);
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
        let payload = parse_object(&payload)?;
        if !matches!(channel, Channel::Chat | Channel::Push) {
            return Err(PlanError::Failed(
                "the deploy-finished notifier uses only chat and push".to_string(),
            ));
        }
        let service = required_string(&payload, "service", "service")?;
        let status = required_string(&payload, "status", "status")?;
        if status != "succeeded" && status != "failed" {
            return Err(PlanError::InvalidPayload(format!(
                "field `status` must be `succeeded` or `failed`, not `{status}`"
            )));
        }
        let version = optional_non_empty_string(&payload, "version", "version")?;
        let url = optional_non_empty_string(&payload, "url", "url")?;
        let data = json!({
            "service": service,
            "version": version,
            "status": status,
            "succeeded": status == "succeeded",
            "url": url,
            "watcher": recipient.id,
        });
        Ok(RenderRequest {
            template: KEY.to_string(),
            channel,
            data: data.to_string(),
            locale: None,
        })
    }
}

belfry_plugin_sdk::export_notifier!(DeployFinished);

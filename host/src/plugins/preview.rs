//! Build → render → validate for one recipient on one channel, outside any delivery: the
//! content a preview (`trigger --dry-run --render`) and a replay show. Dispatch runs the same
//! three steps inside a delivery, with a trace for each; here nothing is traced or written,
//! and each failure says at which step it happened.

use super::errors::CallError;
use super::plugin::Plugin;
use super::runtime::PluginRuntime;
use super::warm::Reuse;
use crate::content::{Channel, Content, RenderRequest};
use serde::Serialize;

/// What one delivery would carry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rendered {
    /// What the notifier asked its renderer for.
    pub request: RenderRequest,
    /// The content, valid for the channel.
    pub content: Content,
    /// The renderer's build, `name@version#hash`.
    pub rendered_by: String,
}

/// The step at which rendering stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Build,
    Render,
    Validate,
}

/// Why a delivery could not be rendered, in the words a delivery's own failure would use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{step:?} failed ({reason}): {message}")]
pub struct RenderFailure {
    pub step: Step,
    /// A call's failure reason (`plugin_error`, `timeout`, …), or `content_invalid`.
    pub reason: String,
    pub message: String,
}

impl RenderFailure {
    fn call(step: Step, e: CallError) -> RenderFailure {
        RenderFailure {
            step,
            reason: e.reason.as_str().to_string(),
            message: e.to_string(),
        }
    }
}

/// Builds the notifier's render request for `recipient` on `channel`, renders it with
/// `renderer` reading the notifier's own assets (as in a delivery), and checks the content
/// against the channel's contract. Fresh instances: a preview shares nothing with a tenant's
/// warm ones.
pub async fn render_one(
    runtime: &PluginRuntime,
    notifier: &Plugin,
    renderer: &Plugin,
    payload: &str,
    recipient: &crate::content::Recipient,
    channel: Channel,
) -> Result<Rendered, RenderFailure> {
    let request = runtime
        .build(notifier, payload, recipient, channel, Reuse::Fresh)
        .await
        .map_err(|e| RenderFailure::call(Step::Build, e))?;
    let content = runtime
        .render(renderer, &request, notifier.assets(), Reuse::Fresh)
        .await
        .map_err(|e| RenderFailure::call(Step::Render, e))?;
    content.validate(channel).map_err(|invalid| RenderFailure {
        step: Step::Validate,
        reason: "content_invalid".to_string(),
        message: format!("{} {}", invalid.field, invalid.problem),
    })?;
    Ok(Rendered {
        request,
        content,
        rendered_by: renderer.reference().to_string(),
    })
}

//! The typed calls: each plugin function in the engine's types, made once in contract 1.0's
//! terms on whichever version the plugin was built against (`versions.rs` dispatches), with
//! its output bounded and its failures named (`bounded.rs` runs it).

use super::assets;
use super::contract::{
    FeedbackEvent, NotifierDescription, OutgoingMessage, RecipientPlan, SendError,
    WebhookRejection, WebhookRequest,
};
use super::errors::{CallError, FailureReason};
use super::plugin::Plugin;
use super::runtime::PluginRuntime;
use super::state::{self, PluginState};
use super::versions::v1::{self, AdapterCalls, NotifierCalls, RendererCalls};
use super::versions::{self, Instance};
use super::warm::Reuse;
use crate::content::{Channel, Content, Recipient, RenderRequest};
use std::sync::Arc;
use wasmtime::Store;

impl PluginRuntime {
    pub(super) fn plugin_error(
        plugin: &Plugin,
        function: &'static str,
        message: String,
    ) -> CallError {
        CallError {
            plugin: plugin.reference().to_string(),
            function,
            reason: FailureReason::PluginError,
            // The guest's own words reach the host's log lines: kept to one line.
            message: state::one_line(&message).into_owned(),
        }
    }

    fn check_output(plugin: &Plugin, function: &'static str, size: usize) -> Result<(), CallError> {
        let limit = plugin.manifest().limits.output_bytes;
        if size > limit {
            return Err(CallError {
                plugin: plugin.reference().to_string(),
                function,
                reason: FailureReason::OutputTooLarge,
                message: format!("returned {size} bytes, the limit is {limit}"),
            });
        }
        Ok(())
    }

    fn wrong_kind(plugin: &Plugin, function: &'static str) -> CallError {
        CallError {
            plugin: plugin.reference().to_string(),
            function,
            reason: FailureReason::Instantiate,
            message: format!("`{function}` called on a {}", plugin.kind()),
        }
    }

    /// Runs `call` on an instance of a notifier, whichever contract it was built against
    /// (`versions.rs` dispatches to it in 1.0's terms), with the notifier's own assets.
    async fn notifier_call<R, T>(
        &self,
        plugin: &Plugin,
        function: &'static str,
        reuse: Reuse<'_>,
        call: impl AsyncFnOnce(
            &mut Store<PluginState>,
            &versions::NotifierInstance,
        ) -> wasmtime::Result<R>,
        finish: impl FnOnce(R) -> Result<T, CallError>,
    ) -> Result<T, CallError> {
        self.run(
            plugin,
            function,
            reuse,
            plugin.assets(),
            async move |store, inst| match inst {
                Instance::Notifier(n) => Ok(Some(call(store, n).await?)),
                _ => Ok(None),
            },
            |r| finish(r.ok_or_else(|| Self::wrong_kind(plugin, function))?),
        )
        .await
    }

    /// Runs `call` on an instance of a channel adapter. An adapter imports no `assets`.
    async fn adapter_call<R, T>(
        &self,
        plugin: &Plugin,
        function: &'static str,
        reuse: Reuse<'_>,
        call: impl AsyncFnOnce(
            &mut Store<PluginState>,
            &versions::AdapterInstance,
        ) -> wasmtime::Result<R>,
        finish: impl FnOnce(R) -> Result<T, CallError>,
    ) -> Result<T, CallError> {
        self.run(
            plugin,
            function,
            reuse,
            &assets::Assets::empty(),
            async move |store, inst| match inst {
                Instance::Adapter(a) => Ok(Some(call(store, a).await?)),
                _ => Ok(None),
            },
            |r| finish(r.ok_or_else(|| Self::wrong_kind(plugin, function))?),
        )
        .await
    }

    pub async fn describe(&self, plugin: &Plugin) -> Result<NotifierDescription, CallError> {
        self.describe_with(plugin, Reuse::Fresh).await
    }

    /// [`describe`](Self::describe) on the instance `reuse` says (a watched one, for
    /// `belfry plugin call`).
    pub async fn describe_with(
        &self,
        plugin: &Plugin,
        reuse: Reuse<'_>,
    ) -> Result<NotifierDescription, CallError> {
        self.notifier_call(
            plugin,
            "describe",
            reuse,
            async |store, n| n.describe(store).await,
            |d| Ok(v1::description_from_wit(d)),
        )
        .await
    }

    pub async fn recipients(
        &self,
        plugin: &Plugin,
        payload: &str,
        reuse: Reuse<'_>,
    ) -> Result<Vec<Recipient>, CallError> {
        let payload = payload.to_string();
        self.notifier_call(
            plugin,
            "recipients",
            reuse,
            async |store, n| n.recipients(store, &payload).await,
            |r| {
                let r = r.map_err(|e| {
                    Self::plugin_error(plugin, "recipients", v1::plan_error_message(e))
                })?;
                let size = r
                    .iter()
                    .map(|x| x.id.len() + x.data.as_ref().map_or(0, String::len) + 64)
                    .sum();
                Self::check_output(plugin, "recipients", size)?;
                Ok(r.into_iter().map(v1::recipient_from_wit).collect())
            },
        )
        .await
    }

    pub async fn channels(
        &self,
        plugin: &Plugin,
        payload: &str,
        recipient: &Recipient,
        reuse: Reuse<'_>,
    ) -> Result<RecipientPlan, CallError> {
        let wr = v1::recipient_to_wit(recipient);
        let payload = payload.to_string();
        self.notifier_call(
            plugin,
            "channels",
            reuse,
            async |store, n| n.channels(store, &payload, &wr).await,
            |r| {
                let plan = r.map_err(|e| {
                    Self::plugin_error(plugin, "channels", v1::plan_error_message(e))
                })?;
                Ok(v1::plan_from_wit(plan))
            },
        )
        .await
    }

    pub async fn build(
        &self,
        plugin: &Plugin,
        payload: &str,
        recipient: &Recipient,
        channel: Channel,
        reuse: Reuse<'_>,
    ) -> Result<RenderRequest, CallError> {
        let wr = v1::recipient_to_wit(recipient);
        let wc = v1::channel_to_wit(channel);
        let payload = payload.to_string();
        self.notifier_call(
            plugin,
            "build",
            reuse,
            async |store, n| n.build(store, &payload, &wr, wc).await,
            |r| {
                let r =
                    r.map_err(|e| Self::plugin_error(plugin, "build", v1::plan_error_message(e)))?;
                Self::check_output(plugin, "build", r.template.len() + r.data.len())?;
                Ok(v1::render_request_from_wit(r))
            },
        )
        .await
    }

    /// Renders `request` with `renderer`. `assets` are what the renderer reads through the
    /// contract's `assets` interface during this call: the package assets of the notifier
    /// that asked for the render (its templates and translations), and nothing else.
    pub async fn render(
        &self,
        renderer: &Plugin,
        request: &RenderRequest,
        assets: &Arc<assets::Assets>,
        reuse: Reuse<'_>,
    ) -> Result<Content, CallError> {
        let wr = v1::render_request_to_wit(request);
        self.run(
            renderer,
            "render",
            reuse,
            assets,
            async |store, inst| {
                let Instance::Renderer(r) = inst else {
                    return Ok(None);
                };
                Ok(Some(r.render(store, &wr).await?))
            },
            |r| {
                let r = r.ok_or_else(|| Self::wrong_kind(renderer, "render"))?;
                let content = r.map_err(|e| {
                    Self::plugin_error(renderer, "render", v1::render_error_message(e))
                })?;
                let content = v1::content_from_wit(content);
                Self::check_output(renderer, "render", content.approx_size())?;
                Ok(content)
            },
        )
        .await
    }

    /// Sends one message. The outer error is the call failing; the inner one is the
    /// adapter's own verdict (transient, rate-limited, permanent). An adapter built against an
    /// older contract gets what it can carry (a 0.1.0 adapter no `message.headers`).
    pub async fn send(
        &self,
        plugin: &Plugin,
        message: &OutgoingMessage,
        reuse: Reuse<'_>,
    ) -> Result<Result<String, SendError>, CallError> {
        let wm = v1::message_to_wit(message);
        self.adapter_call(
            plugin,
            "send",
            reuse,
            async |store, a| a.send(store, &wm).await,
            |r| {
                let r = v1::send_result_from_wit(r);
                if let Ok(id) = &r {
                    Self::check_output(plugin, "send", id.len())?;
                }
                Ok(r)
            },
        )
        .await
    }

    /// Hands a provider's webhook request to the adapter, which verifies it and turns it into
    /// feedback events. The outer error is the call failing; the inner one the adapter's
    /// refusal. A 0.1.0 adapter is given the path and query instead of the absolute URL.
    pub async fn handle_webhook(
        &self,
        plugin: &Plugin,
        request: &WebhookRequest,
    ) -> Result<Result<Vec<FeedbackEvent>, WebhookRejection>, CallError> {
        self.handle_webhook_with(plugin, request, Reuse::Fresh)
            .await
    }

    /// [`handle_webhook`](Self::handle_webhook) on the instance `reuse` says.
    pub async fn handle_webhook_with(
        &self,
        plugin: &Plugin,
        request: &WebhookRequest,
        reuse: Reuse<'_>,
    ) -> Result<Result<Vec<FeedbackEvent>, WebhookRejection>, CallError> {
        let wr = v1::webhook_request_to_wit(request);
        self.adapter_call(
            plugin,
            "handle-webhook",
            reuse,
            async |store, a| a.handle_webhook(store, &wr).await,
            |r| {
                let size: usize = r.as_ref().map_or(0, |events| {
                    events
                        .iter()
                        .map(|e| {
                            e.provider_event_id.len()
                                + e.provider_message_id.len()
                                + e.reason.as_ref().map_or(0, String::len)
                                + 16
                        })
                        .sum()
                });
                Self::check_output(plugin, "handle-webhook", size)?;
                Ok(v1::feedback_from_wit(r))
            },
        )
        .await
    }
}

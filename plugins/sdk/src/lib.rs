//! The Rust guest SDK for belfry's plugin contract 1.0 (`wit/plugin@1`, package
//! `belfry:plugin@1.0.0`).
//!
//! One crate for the three worlds. A plugin depends on it, implements one trait and exports
//! its type with one macro:
//!
//! ```ignore
//! use belfry_plugin_sdk::notifier::{Description, Guest, PlanError};
//! struct Welcome;
//! impl Guest for Welcome { /* describe, recipients, channels, build */ }
//! belfry_plugin_sdk::export_notifier!(Welcome);
//! ```
//!
//! - [`notifier`], [`renderer`] and [`adapter`]: each world's exported interface (the trait a
//!   plugin implements and its types); [`export_notifier!`], [`export_renderer!`] and
//!   [`export_adapter!`] export an implementation.
//! - [`types`] (channels, recipients, content), and the host interfaces [`log`], [`config`] and
//!   [`assets`]; [`Channel::as_str`] names a channel as the host and the manifests do.
//! - [`payload`]: reading a notifier's JSON payload, with errors that name the field
//!   (`PlanError::InvalidPayload`).
//! - [`http`]: outgoing HTTP over `wasi:http/outgoing-handler` with a `content-length`,
//!   timeouts, a bounded response, and the status → [`adapter::SendError`] mapping.
//! - [`standard_webhooks`], [`hmac_sha256`] and [`twilio`]: webhook signatures, signed and
//!   verified; [`webhooks`] checks them against a [`adapter::WebhookRequest`].
//! - [`settings`]: an adapter's config keys with errors naming the key; [`form`], [`time`].
//! - [`testing`]: builders for messages and webhook requests, signed webhooks, for unit tests
//!   on the host target.
//!
//! Everything but the calls into the host (`log`, `config`, `assets`, [`http::Request::send`])
//! also runs on the host target, so plugins unit-test their logic with
//! `cargo test -p NAME --target x86_64-unknown-linux-gnu`.

// The bindings, generated once per world. The notifier world's imports (types, log, config,
// assets) are the superset the other two worlds use, so the renderer and adapter bindings
// reuse its modules (`with`) and every world shares one `Channel`, one `Content`, one `log`.
// `pub_export_macro` keeps each world's exports out of the component until a plugin invokes
// that world's export macro: an adapter built on this crate exports `delivery` only.

/// Bindings of the `notifier` world (generated; see [`notifier`] for the exported interface).
#[doc(hidden)]
pub mod notifier_world {
    wit_bindgen::generate!({
        world: "belfry:plugin/notifier@1.0.0",
        path: "../../wit/plugin@1",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "belfry_plugin_sdk::notifier_world",
        additional_derives: [PartialEq, Eq],
    });
}

/// Bindings of the `renderer` world.
#[doc(hidden)]
pub mod renderer_world {
    wit_bindgen::generate!({
        world: "belfry:plugin/renderer@1.0.0",
        path: "../../wit/plugin@1",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "belfry_plugin_sdk::renderer_world",
        additional_derives: [PartialEq, Eq],
        with: {
            "belfry:plugin/types@1.0.0": crate::notifier_world::belfry::plugin::types,
            "belfry:plugin/log@1.0.0": crate::notifier_world::belfry::plugin::log,
            "belfry:plugin/config@1.0.0": crate::notifier_world::belfry::plugin::config,
            "belfry:plugin/assets@1.0.0": crate::notifier_world::belfry::plugin::assets,
        },
    });
}

/// Bindings of the `channel-adapter` world.
#[doc(hidden)]
pub mod adapter_world {
    wit_bindgen::generate!({
        world: "belfry:plugin/channel-adapter@1.0.0",
        path: "../../wit/plugin@1",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "belfry_plugin_sdk::adapter_world",
        additional_derives: [PartialEq, Eq],
        with: {
            "belfry:plugin/types@1.0.0": crate::notifier_world::belfry::plugin::types,
            "belfry:plugin/log@1.0.0": crate::notifier_world::belfry::plugin::log,
            "belfry:plugin/config@1.0.0": crate::notifier_world::belfry::plugin::config,
        },
    });
}

pub mod assets;
pub mod form;
pub mod hmac_sha256;
pub mod http;
pub mod payload;
pub mod settings;
pub mod standard_webhooks;
pub mod testing;
pub mod time;
pub mod twilio;
pub mod webhooks;

/// The contract's shared types: channels, recipients, render requests and content.
pub mod types {
    pub use crate::notifier_world::belfry::plugin::types::*;
}

/// The `notifications` interface a notifier exports: implement [`Guest`](notifier::Guest) and
/// export it with [`export_notifier!`].
pub mod notifier {
    pub use crate::notifier_world::exports::belfry::plugin::notifications::*;
    pub use crate::types::{Channel, Json, Recipient, RenderRequest};
}

/// The `rendering` interface a renderer exports: implement [`Guest`](renderer::Guest) and
/// export it with [`export_renderer!`].
pub mod renderer {
    pub use crate::renderer_world::exports::belfry::plugin::rendering::*;
    pub use crate::types::{Channel, Content, RenderRequest};
}

/// The `delivery` interface a channel adapter exports: implement [`Guest`](adapter::Guest)
/// and export it with [`export_adapter!`].
pub mod adapter {
    pub use crate::adapter_world::exports::belfry::plugin::delivery::*;
    pub use crate::types::{Channel, Content, Recipient};
}

/// Structured logging into the host's tracing, attributed to the calling plugin.
pub mod log {
    pub use crate::notifier_world::belfry::plugin::log::{Level, log};

    pub fn trace(message: &str) {
        log(Level::Trace, message);
    }
    pub fn debug(message: &str) {
        log(Level::Debug, message);
    }
    pub fn info(message: &str) {
        log(Level::Info, message);
    }
    pub fn warn(message: &str) {
        log(Level::Warn, message);
    }
    pub fn error(message: &str) {
        log(Level::Error, message);
    }
}

/// The plugin's configuration and secrets, as the operator set them for it.
pub mod config {
    pub use crate::notifier_world::belfry::plugin::config::get;
}

pub use types::{Channel, Content, Recipient, RenderRequest};

/// Exports `$ty`, which implements [`notifier::Guest`], as this component's notifier.
#[macro_export]
macro_rules! export_notifier {
    ($ty:ident) => {
        $crate::notifier_world::export!($ty with_types_in $crate::notifier_world);
    };
}

/// Exports `$ty`, which implements [`renderer::Guest`], as this component's renderer.
#[macro_export]
macro_rules! export_renderer {
    ($ty:ident) => {
        $crate::renderer_world::export!($ty with_types_in $crate::renderer_world);
    };
}

/// Exports `$ty`, which implements [`adapter::Guest`], as this component's channel adapter.
#[macro_export]
macro_rules! export_adapter {
    ($ty:ident) => {
        $crate::adapter_world::export!($ty with_types_in $crate::adapter_world);
    };
}

impl Channel {
    /// Every channel, in the contract's order.
    pub const ALL: [Channel; 6] = [
        Channel::Email,
        Channel::Sms,
        Channel::Push,
        Channel::Chat,
        Channel::InApp,
        Channel::Webhook,
    ];

    /// The channel's name as the host, the manifests and the HTTP API write it: `email`,
    /// `sms`, `push`, `chat`, `in-app`, `webhook`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Push => "push",
            Channel::Chat => "chat",
            Channel::InApp => "in-app",
            Channel::Webhook => "webhook",
        }
    }

    /// The channel named `name` (as [`as_str`](Self::as_str) writes it), if any.
    pub fn from_name(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Content {
    /// The channel this content is for.
    pub fn channel(&self) -> Channel {
        match self {
            Content::Email(_) => Channel::Email,
            Content::Sms(_) => Channel::Sms,
            Content::Push(_) => Channel::Push,
            Content::Chat(_) => Channel::Chat,
            Content::InApp(_) => Channel::InApp,
            Content::Webhook(_) => Channel::Webhook,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_round_trip() {
        for channel in Channel::ALL {
            assert_eq!(Channel::from_name(channel.as_str()), Some(channel));
            assert_eq!(channel.to_string(), channel.as_str());
        }
        assert_eq!(Channel::InApp.as_str(), "in-app");
        assert_eq!(Channel::from_name("in_app"), None);
    }

    #[test]
    fn content_knows_its_channel() {
        let sms = Content::Sms(types::SmsContent {
            text: "hi".to_string(),
        });
        assert_eq!(sms.channel(), Channel::Sms);
    }
}

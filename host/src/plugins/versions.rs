//! Every contract version this host loads, and all the per-version glue, from one list.
//!
//! 1.0 ([`v1`]) is the hub: the host's calls are made in its terms. Each older contract has a
//! `since_v0_N.rs` whose instances answer 1.0's calls ([`v1::NotifierCalls`],
//! [`v1::RendererCalls`], [`v1::AdapterCalls`]) by converting 1.0's arguments down into what
//! the old world takes and its answers up into 1.0's values.
//!
//! The `versions!` invocation at the bottom generates, from one list:
//! - the pre-instantiated and live instance enums (`Pre`, `Instance`, one variant per kind and
//!   version) and their instantiation;
//! - the dispatch of every call to the right version (`impl NotifierCalls for
//!   NotifierInstance`, ...), so `calls.rs` makes each call once, on a 1.0-shaped instance;
//! - [`Pre::new`], which picks the bindings for a manifest's `wit` (the versions a manifest may
//!   name are listed in `kinds.rs`, below the manifest and these bindings alike; a test here
//!   holds that list to this one);
//! - [`add_to_linker`]: every version's host imports (`log`, `config`, and 1.0's `assets`),
//!   each under its own versioned name;
//! - the `log`/`config` host traits of every older version, forwarded to 1.0's in
//!   `host_imports.rs`.
//!
//! **Adding a version.** No call arm, linker line or host-trait forwarding lives anywhere
//! else, so:
//! - a 1.x minor version edits `wit/plugin@1` in place (additively, `wit/README.md`) and bumps
//!   `v1::VERSION` (and its entry in `kinds::supported`), plus `host_imports.rs` when it adds
//!   a host function (its Rust). Plugins built for an earlier 1.x need no code: wasmtime
//!   matches their `@1.M` names to the host's `@1.N` ones, and `kinds::serves` accepts their
//!   manifests;
//! - an older-style version beside the hub (how 0.2 … 0.5 would be added now): its
//!   `since_*.rs` (bindings plus `NotifierCalls`/`RendererCalls`/`AdapterCalls` converting up),
//!   a `#[path] mod` line below and its name in the lists of the `versions!` invocation, in each
//!   kind it has a world for, newest first, and its version in `kinds::supported`;
//! - a new major version (2.0) becomes the hub: `v2.rs` (bindings, the `*Calls` traits and the
//!   conversions to the engine's types), `v1.rs` renamed `since_v1.rs` converting up into it,
//!   this list with `current: v2`, and `host_imports.rs` moved to 2.0's traits (1.x's `log`
//!   and `config` are then forwarded by this macro like 0.x's).

#![allow(non_camel_case_types)]

#[path = "since_v0_1.rs"]
pub mod since_v0_1;
#[path = "since_v0_2.rs"]
pub mod since_v0_2;
#[path = "since_v0_3.rs"]
pub mod since_v0_3;
#[path = "since_v0_4.rs"]
pub mod since_v0_4;
#[path = "since_v0_5.rs"]
pub mod since_v0_5;
#[path = "v1.rs"]
pub mod v1;

use super::kinds::{PluginKind, serves, supported};
use super::state::PluginState;
use v1::{AdapterCalls, NotifierCalls, RendererCalls};
use wasmtime::Store;
use wasmtime::component::{HasSelf, InstancePre, Linker};

macro_rules! versions {
    (
        current: $cur:ident;
        older: [$($old:ident),* $(,)?];
        notifier: [$($nv:ident = $nm:ident),* $(,)?];
        renderer: [$($rv:ident = $rm:ident),* $(,)?];
        channel_adapter: [$($av:ident = $am:ident),* $(,)?];
    ) => {
        /// A notifier's pre-instantiated component, by contract version.
        pub enum NotifierPre { $($nv($nm::NotifierPre<PluginState>)),* }
        /// A live notifier instance, by contract version.
        pub enum NotifierInstance { $($nv($nm::Notifier)),* }
        pub enum RendererPre { $($rv($rm::RendererPre<PluginState>)),* }
        pub enum RendererInstance { $($rv($rm::Renderer)),* }
        pub enum AdapterPre { $($av($am::ChannelAdapterPre<PluginState>)),* }
        pub enum AdapterInstance { $($av($am::ChannelAdapter)),* }

        /// A loaded plugin's pre-instantiated component, of its kind and contract version.
        pub enum Pre {
            Notifier(NotifierPre),
            Renderer(RendererPre),
            Adapter(AdapterPre),
        }

        /// A live instance of a plugin, of its kind and contract version.
        pub enum Instance {
            Notifier(NotifierInstance),
            Renderer(RendererInstance),
            Adapter(AdapterInstance),
        }

        impl Pre {
            /// The bindings of `kind` for a manifest's `wit`, type-checked against the
            /// component's exports.
            pub fn new(
                kind: PluginKind,
                wit: &str,
                pre: InstancePre<PluginState>,
            ) -> wasmtime::Result<Pre> {
                match kind {
                    PluginKind::Notifier => {
                        $(if serves($nm::VERSION, wit) {
                            return Ok(Pre::Notifier(NotifierPre::$nv($nm::NotifierPre::new(pre)?)));
                        })*
                    }
                    PluginKind::Renderer => {
                        $(if serves($rm::VERSION, wit) {
                            return Ok(Pre::Renderer(RendererPre::$rv($rm::RendererPre::new(pre)?)));
                        })*
                    }
                    PluginKind::ChannelAdapter => {
                        $(if serves($am::VERSION, wit) {
                            return Ok(Pre::Adapter(AdapterPre::$av($am::ChannelAdapterPre::new(pre)?)));
                        })*
                    }
                }
                Err(wasmtime::format_err!(
                    "this host has no {kind} bindings for belfry:plugin@{wit} (supported: {})",
                    supported(kind).join(", ")
                ))
            }

            pub async fn instantiate(
                &self,
                store: &mut Store<PluginState>,
            ) -> wasmtime::Result<Instance> {
                Ok(match self {
                    Pre::Notifier(p) => Instance::Notifier(match p {
                        $(NotifierPre::$nv(p) => NotifierInstance::$nv(p.instantiate_async(store).await?),)*
                    }),
                    Pre::Renderer(p) => Instance::Renderer(match p {
                        $(RendererPre::$rv(p) => RendererInstance::$rv(p.instantiate_async(store).await?),)*
                    }),
                    Pre::Adapter(p) => Instance::Adapter(match p {
                        $(AdapterPre::$av(p) => AdapterInstance::$av(p.instantiate_async(store).await?),)*
                    }),
                })
            }
        }

        impl NotifierCalls for NotifierInstance {
            async fn describe(
                &self,
                store: &mut Store<PluginState>,
            ) -> wasmtime::Result<v1::wit_notifications::Description> {
                match self { $(Self::$nv(i) => i.describe(store).await,)* }
            }
            async fn recipients(
                &self,
                store: &mut Store<PluginState>,
                payload: &String,
            ) -> wasmtime::Result<Result<Vec<v1::wit::Recipient>, v1::wit_notifications::PlanError>> {
                match self { $(Self::$nv(i) => i.recipients(store, payload).await,)* }
            }
            async fn channels(
                &self,
                store: &mut Store<PluginState>,
                payload: &String,
                recipient: &v1::wit::Recipient,
            ) -> wasmtime::Result<Result<v1::wit_notifications::RecipientPlan, v1::wit_notifications::PlanError>> {
                match self { $(Self::$nv(i) => i.channels(store, payload, recipient).await,)* }
            }
            async fn build(
                &self,
                store: &mut Store<PluginState>,
                payload: &String,
                recipient: &v1::wit::Recipient,
                channel: v1::wit::Channel,
            ) -> wasmtime::Result<Result<v1::wit::RenderRequest, v1::wit_notifications::PlanError>> {
                match self { $(Self::$nv(i) => i.build(store, payload, recipient, channel).await,)* }
            }
        }

        impl RendererCalls for RendererInstance {
            async fn render(
                &self,
                store: &mut Store<PluginState>,
                request: &v1::wit::RenderRequest,
            ) -> wasmtime::Result<Result<v1::wit::Content, v1::wit_rendering::RenderError>> {
                match self { $(Self::$rv(i) => i.render(store, request).await,)* }
            }
        }

        impl AdapterCalls for AdapterInstance {
            async fn send(
                &self,
                store: &mut Store<PluginState>,
                message: &v1::wit_delivery::Message,
            ) -> wasmtime::Result<Result<v1::wit_delivery::Receipt, v1::wit_delivery::SendError>> {
                match self { $(Self::$av(i) => i.send(store, message).await,)* }
            }
            async fn handle_webhook(
                &self,
                store: &mut Store<PluginState>,
                request: &v1::wit_delivery::WebhookRequest,
            ) -> wasmtime::Result<Result<Vec<v1::wit_delivery::FeedbackEvent>, v1::wit_delivery::WebhookError>> {
                match self { $(Self::$av(i) => i.handle_webhook(store, request).await,)* }
            }
        }

        /// The versions bound here, newest first: what `kinds::supported` must list.
        #[cfg(test)]
        fn bound(kind: PluginKind) -> &'static [&'static str] {
            match kind {
                PluginKind::Notifier => &[$($nm::VERSION),*],
                PluginKind::Renderer => &[$($rm::VERSION),*],
                PluginKind::ChannelAdapter => &[$($am::VERSION),*],
            }
        }

        /// Every version's host imports, each under its own versioned name (`log@0.2.0` and
        /// `log@1.0.0` are different imports to wasmtime; `types` holds no functions).
        pub fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
            $cur::wit_log::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |s| s)?;
            $cur::wit_config::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |s| s)?;
            $cur::wit_assets::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |s| s)?;
            $(
                $old::wit_log::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |s| s)?;
                $old::wit_config::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |s| s)?;
            )*
            Ok(())
        }

        // An older version's `log` and `config` are answered by the current version's host
        // code (`host_imports.rs`): same functions, other names.
        $(
            impl $old::wit_log::Host for PluginState {
                fn log(&mut self, level: $old::wit_log::Level, message: String) {
                    use $old::wit_log::Level as Old;
                    use $cur::wit_log::Level as New;
                    let level = match level {
                        Old::Trace => New::Trace,
                        Old::Debug => New::Debug,
                        Old::Info => New::Info,
                        Old::Warn => New::Warn,
                        Old::Error => New::Error,
                    };
                    $cur::wit_log::Host::log(self, level, message)
                }
            }
            impl $old::wit_config::Host for PluginState {
                fn get(&mut self, key: String) -> Option<String> {
                    $cur::wit_config::Host::get(self, key)
                }
            }
        )*
    };
}

versions! {
    current: v1;
    older: [since_v0_5, since_v0_4, since_v0_3, since_v0_2, since_v0_1];
    notifier: [
        V1 = v1,
        V0_4 = since_v0_4,
        V0_3 = since_v0_3,
        V0_2 = since_v0_2,
        V0_1 = since_v0_1,
    ];
    renderer: [V1 = v1, V0_1 = since_v0_1];
    channel_adapter: [V1 = v1, V0_5 = since_v0_5, V0_1 = since_v0_1];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_loads_1_0() {
        for kind in [
            PluginKind::Notifier,
            PluginKind::Renderer,
            PluginKind::ChannelAdapter,
        ] {
            assert!(super::super::kinds::accepts(kind, "1.0.0"), "{kind}");
            assert_eq!(supported(kind)[0], v1::VERSION);
        }
        use super::super::kinds::accepts;
        assert!(accepts(PluginKind::Notifier, "0.4.0"));
        assert!(!accepts(PluginKind::Renderer, "0.4.0"));
        assert!(accepts(PluginKind::ChannelAdapter, "0.5.0"));
    }

    #[test]
    fn the_bindings_are_the_supported_list() {
        for kind in [
            PluginKind::Notifier,
            PluginKind::Renderer,
            PluginKind::ChannelAdapter,
        ] {
            assert_eq!(bound(kind), supported(kind), "{kind}");
        }
    }
}

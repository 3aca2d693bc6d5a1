//! Which loaded plugin does what: notifiers by their `describe` key, the renderers by name
//! (and which one each notifier uses), and the adapter serving each channel — with why, so
//! `belfry plugin list`, `GET /v1/plugins` and the console can say it.
//!
//! A notifier naming a renderer that is not loaded does not make the registry fail to build:
//! the registry is rebuilt for every upload, on every node sharing the database (see
//! [`super::live`]), and a start-up replays every recorded upload, so one notifier must not be
//! able to stop an engine from starting or from taking later uploads. Its choice is recorded
//! as unresolved ([`RendererChoice::problem`], shown in every view), and its deliveries fail at
//! render with `render_failed` naming the missing renderer (in the delivery's story). A
//! renderer the *operator* names (`--renderer`) must exist: that is their configuration.

use super::kinds::PluginKind;
use super::plugin::Plugin;
use crate::content::Channel;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("unknown notifier `{key}` (loaded: {known})")]
    UnknownNotifier { key: String, known: String },
    #[error("two notifiers describe the key `{key}`: {first} and {second}")]
    DuplicateNotifier {
        key: String,
        first: String,
        second: String,
    },
    #[error("no renderer plugin is loaded")]
    NoRenderer,
    #[error(
        "notifier {notifier} names renderer `{name}` in its manifest, but no renderer plugin of that name is loaded (loaded: {known})"
    )]
    UnknownRenderer {
        notifier: String,
        name: String,
        known: String,
    },
    #[error("--renderer {name}: no renderer plugin of that name is loaded (loaded: {known})")]
    UnknownDefaultRenderer { name: String, known: String },
    #[error("route for {channel}: no channel-adapter plugin named `{name}` is loaded")]
    UnknownAdapter { channel: Channel, name: String },
    #[error("route for {channel}: plugin `{name}` is a {kind}, not a channel-adapter")]
    NotAnAdapter {
        channel: Channel,
        name: String,
        kind: PluginKind,
    },
}

/// A plugin of the operator's plugin directory that could not be loaded. It is skipped, so
/// the rest of belfry runs, and shown with its reason (`belfry plugin list`, `GET
/// /v1/plugins`, the console, `/readyz`) instead of failing every command.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BrokenPlugin {
    /// The file's stem (`NAME` of `NAME.wasm`): its manifest may be what is broken.
    pub name: String,
    pub path: PathBuf,
    /// Why it was not loaded.
    pub reason: String,
}

/// Why an adapter serves a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RouteReason {
    /// A first-party (bundled) adapter lists the channel: the out-of-the-box route.
    Default,
    /// An adapter of the plugin directory or an upload lists the channel (and does not opt out
    /// with `default_route = false`); the last loaded one wins.
    Declared,
    /// The operator routed the channel to it (`--route CHANNEL=ADAPTER`, `BELFRY_ROUTES`,
    /// `route` in the config file).
    Route,
}

impl RouteReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteReason::Default => "default",
            RouteReason::Declared => "declared",
            RouteReason::Route => "route",
        }
    }
}

impl std::fmt::Display for RouteReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An adapter a route passed over: it would serve the channel but for a later one.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Displaced {
    /// The adapter's plugin name.
    pub adapter: String,
    /// Its build, `name@version#hash`.
    pub reference: String,
    /// Why it served the channel before it was replaced.
    pub reason: RouteReason,
}

/// The adapter serving one channel, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RouteInfo {
    pub channel: Channel,
    /// The adapter's plugin name.
    pub adapter: String,
    /// Its build, `name@version#hash`.
    pub reference: String,
    pub reason: RouteReason,
    /// The adapters that served the channel before this one took it, oldest first.
    pub replaced: Vec<Displaced>,
}

impl RouteInfo {
    /// One line saying why: `chat: discord replaces log (declared by discord, loaded later)`.
    pub fn explain(&self) -> String {
        let why = match self.reason {
            RouteReason::Default => format!("first-party default of {}", self.adapter),
            RouteReason::Declared if self.replaced.is_empty() => {
                format!("declared by {}", self.adapter)
            }
            RouteReason::Declared => format!("declared by {}, loaded later", self.adapter),
            RouteReason::Route => format!("--route {}={}", self.channel, self.adapter),
        };
        match self.replaced.last() {
            None => format!("{}: {} ({why})", self.channel, self.adapter),
            Some(prev) => format!(
                "{}: {} replaces {} ({why})",
                self.channel, self.adapter, prev.adapter
            ),
        }
    }
}

/// How a notifier's renderer was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RendererReason {
    /// The notifier's manifest names it (`renderer = "NAME"`).
    Manifest,
    /// The host's default, chosen by the operator (`--renderer`, `BELFRY_RENDERER`).
    Operator,
    /// The host's default: the renderer named `templates` (the first-party one).
    Templates,
    /// The host's default: the only renderer loaded.
    Only,
    /// The host's default: the last renderer loaded (several, none named `templates`).
    LastLoaded,
}

impl RendererReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RendererReason::Manifest => "manifest",
            RendererReason::Operator => "operator",
            RendererReason::Templates => "templates",
            RendererReason::Only => "only",
            RendererReason::LastLoaded => "last-loaded",
        }
    }
}

impl std::fmt::Display for RendererReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The renderer one notifier uses, and why; or why it has none.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RendererChoice {
    /// The notifier's plugin name.
    pub notifier: String,
    /// Its `describe` key.
    pub key: String,
    /// The renderer's plugin name; `None` when it cannot be resolved (see `problem`).
    pub renderer: Option<String>,
    /// The renderer's build, `name@version#hash`.
    pub reference: Option<String>,
    pub reason: RendererReason,
    /// Why the notifier has no renderer: its deliveries fail at render, saying this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// What the operator chose for the registry: channel routes and the default renderer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Choices {
    /// Channel → adapter plugin name, overriding the manifests' `channels`.
    pub routes: BTreeMap<Channel, String>,
    /// The renderer (a plugin name) for notifiers that name none.
    pub renderer: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Registry {
    plugins: Vec<Plugin>,
    broken: Vec<BrokenPlugin>,
    notifiers: BTreeMap<String, Plugin>,
    /// Every renderer, by plugin name.
    renderers: BTreeMap<String, Plugin>,
    /// The default renderer's name and why it is the default.
    default_renderer: Option<(String, RendererReason)>,
    routes: BTreeMap<Channel, Plugin>,
    /// Why each route is what it is (same keys as `routes`).
    route_info: BTreeMap<Channel, RouteInfo>,
    /// Every build this process has had in force, by reference (`name@version#hash`),
    /// replaced ones included: workflow runs and digest buckets pinned to a build finish on it.
    builds: BTreeMap<String, Plugin>,
}

/// A first-party adapter: compiled into the binary.
fn is_first_party(p: &Plugin) -> bool {
    p.origin().starts_with("bundled:")
}

impl Registry {
    /// `routes` overrides the default choice of adapter per channel: the last loaded adapter
    /// whose manifest lists the channel and does not opt out with `default_route = false`.
    pub fn new(
        plugins: Vec<Plugin>,
        routes: &BTreeMap<Channel, String>,
    ) -> Result<Registry, RegistryError> {
        Registry::with_choices(
            plugins,
            &Choices {
                routes: routes.clone(),
                renderer: None,
            },
        )
    }

    /// [`Registry::new`] with every operator choice: routes and the default renderer.
    pub fn with_choices(
        plugins: Vec<Plugin>,
        choices: &Choices,
    ) -> Result<Registry, RegistryError> {
        let mut reg = Registry::default();
        let mut last_renderer: Option<String> = None;
        for p in &plugins {
            match p.kind() {
                PluginKind::Notifier => {
                    let key = p.description().map(|d| d.key.clone()).unwrap_or_default();
                    if let Some(first) = reg.notifiers.get(&key) {
                        return Err(RegistryError::DuplicateNotifier {
                            key,
                            first: first.reference().to_string(),
                            second: p.reference().to_string(),
                        });
                    }
                    reg.notifiers.insert(key, p.clone());
                }
                PluginKind::Renderer => {
                    reg.renderers.insert(p.name().to_string(), p.clone());
                    last_renderer = Some(p.name().to_string());
                }
                PluginKind::ChannelAdapter if p.manifest().default_route => {
                    let reason = if is_first_party(p) {
                        RouteReason::Default
                    } else {
                        RouteReason::Declared
                    };
                    for c in &p.manifest().channels {
                        reg.take_route(*c, p, reason);
                    }
                }
                PluginKind::ChannelAdapter => {}
            }
        }
        for (channel, name) in &choices.routes {
            let p = plugins.iter().find(|p| p.name() == name).ok_or_else(|| {
                RegistryError::UnknownAdapter {
                    channel: *channel,
                    name: name.clone(),
                }
            })?;
            if p.kind() != PluginKind::ChannelAdapter {
                return Err(RegistryError::NotAnAdapter {
                    channel: *channel,
                    name: name.clone(),
                    kind: p.kind(),
                });
            }
            reg.take_route(*channel, p, RouteReason::Route);
        }
        reg.default_renderer = match &choices.renderer {
            Some(name) if reg.renderers.contains_key(name) => {
                Some((name.clone(), RendererReason::Operator))
            }
            Some(name) => {
                return Err(RegistryError::UnknownDefaultRenderer {
                    name: name.clone(),
                    known: reg.renderer_names(),
                });
            }
            None if reg.renderers.contains_key("templates") => {
                Some(("templates".into(), RendererReason::Templates))
            }
            None if reg.renderers.len() == 1 => last_renderer.map(|n| (n, RendererReason::Only)),
            None => last_renderer.map(|n| (n, RendererReason::LastLoaded)),
        };
        reg.builds = plugins
            .iter()
            .map(|p| (p.reference().to_string(), p.clone()))
            .collect();
        reg.plugins = plugins;
        for choice in reg.renderer_choices() {
            if let Some(problem) = &choice.problem {
                tracing::warn!(notifier = %choice.notifier, %problem, "a notifier's renderer is not loaded; its deliveries will fail at render");
            }
        }
        Ok(reg)
    }

    /// `p` serves `channel` from now on, for `reason`; the adapter it replaces is remembered.
    fn take_route(&mut self, channel: Channel, p: &Plugin, reason: RouteReason) {
        let mut replaced = Vec::new();
        if let Some(prev) = self.route_info.remove(&channel) {
            replaced = prev.replaced;
            // An adapter taking a channel back (the operator routes it to the adapter it
            // declared it first) is not among what it replaced; the same adapter routed by the
            // operator too is one entry, with the stronger reason.
            replaced.retain(|d| d.adapter != p.name());
            if prev.adapter != p.name() {
                replaced.push(Displaced {
                    adapter: prev.adapter,
                    reference: prev.reference,
                    reason: prev.reason,
                });
            }
        }
        self.routes.insert(channel, p.clone());
        self.route_info.insert(
            channel,
            RouteInfo {
                channel,
                adapter: p.name().to_string(),
                reference: p.reference().to_string(),
                reason,
                replaced,
            },
        );
    }

    fn renderer_names(&self) -> String {
        let names: Vec<&str> = self.renderers.keys().map(String::as_str).collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }

    /// Keeps `older` builds reachable by reference (those in force win on a clash).
    pub fn remembering(mut self, older: impl IntoIterator<Item = Plugin>) -> Registry {
        for p in older {
            self.builds.entry(p.reference().to_string()).or_insert(p);
        }
        self
    }

    /// Records the plugins that could not be loaded, to be shown with the ones in force.
    pub fn with_broken(mut self, broken: Vec<BrokenPlugin>) -> Registry {
        self.broken = broken;
        self
    }

    /// The plugins that could not be loaded (see [`BrokenPlugin`]).
    pub fn broken(&self) -> &[BrokenPlugin] {
        &self.broken
    }

    /// Every build known, in force or replaced.
    pub fn builds(&self) -> impl Iterator<Item = &Plugin> {
        self.builds.values()
    }

    /// A build by its reference, in force or replaced.
    pub fn build(&self, reference: &str) -> Option<&Plugin> {
        self.builds.get(reference)
    }

    pub fn plugins(&self) -> &[Plugin] {
        &self.plugins
    }

    pub fn notifier(&self, key: &str) -> Result<&Plugin, RegistryError> {
        self.notifiers
            .get(key)
            .ok_or_else(|| RegistryError::UnknownNotifier {
                key: key.to_string(),
                known: self
                    .notifiers
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The default renderer: the operator's choice (`--renderer`), else the one named
    /// `templates`, else the only (or last loaded) renderer.
    pub fn renderer(&self) -> Result<&Plugin, RegistryError> {
        self.default_renderer
            .as_ref()
            .and_then(|(name, _)| self.renderers.get(name))
            .ok_or(RegistryError::NoRenderer)
    }

    /// The default renderer's name and why it is the default.
    pub fn default_renderer(&self) -> Option<(&str, RendererReason)> {
        self.default_renderer
            .as_ref()
            .map(|(name, why)| (name.as_str(), *why))
    }

    /// A renderer by plugin name.
    pub fn renderer_named(&self, name: &str) -> Option<&Plugin> {
        self.renderers.get(name)
    }

    /// The renderer `notifier` uses: the one its manifest names (`renderer = "NAME"`), else
    /// the default ([`Registry::renderer`]). A named renderer that is not loaded is an error
    /// naming both, never a silent fall-back to another renderer's templates.
    pub fn renderer_for(&self, notifier: &Plugin) -> Result<&Plugin, RegistryError> {
        match &notifier.manifest().renderer {
            Some(name) => self
                .renderers
                .get(name)
                .ok_or_else(|| RegistryError::UnknownRenderer {
                    notifier: notifier.reference().to_string(),
                    name: name.clone(),
                    known: self.renderer_names(),
                }),
            None => self.renderer(),
        }
    }

    /// For every notifier in force (by key), the renderer it uses and why.
    pub fn renderer_choices(&self) -> Vec<RendererChoice> {
        self.notifiers
            .iter()
            .map(|(key, n)| {
                let reason = match (&n.manifest().renderer, &self.default_renderer) {
                    (Some(_), _) => RendererReason::Manifest,
                    (None, Some((_, why))) => *why,
                    (None, None) => RendererReason::Only,
                };
                let (renderer, problem) = match self.renderer_for(n) {
                    Ok(r) => (Some(r), None),
                    Err(e) => (None, Some(e.to_string())),
                };
                RendererChoice {
                    notifier: n.name().to_string(),
                    key: key.clone(),
                    renderer: renderer.map(|r| r.name().to_string()),
                    reference: renderer.map(|r| r.reference().to_string()),
                    reason,
                    problem,
                }
            })
            .collect()
    }

    /// The adapter for a channel; `None` for in-app (the host's inbox) or an unrouted channel.
    pub fn adapter_for(&self, channel: Channel) -> Option<&Plugin> {
        self.routes.get(&channel)
    }

    /// Every routed channel: the adapter serving it, why, and what it replaced.
    pub fn routes(&self) -> impl Iterator<Item = &RouteInfo> {
        self.route_info.values()
    }

    /// The route of one channel, with why.
    pub fn route(&self, channel: Channel) -> Option<&RouteInfo> {
        self.route_info.get(&channel)
    }

    /// Logs (`warn`) every channel whose adapter this registry changes against `previous`:
    /// `chat: discord replaces log (declared by discord, loaded later)`. With no previous
    /// registry (start-up), every route that took a channel from another adapter is told, so
    /// an adapter in the plugin directory taking chat from `log` is never silent.
    pub fn announce_routes(&self, previous: Option<&Registry>) {
        for info in self.route_info.values() {
            let before = previous.and_then(|p| p.route_info.get(&info.channel));
            match (previous, before) {
                (None, _) if !info.replaced.is_empty() && info.reason != RouteReason::Route => {
                    tracing::warn!(channel = %info.channel, adapter = %info.adapter, reason = %info.reason, "{}", info.explain());
                }
                (None, _) if !info.replaced.is_empty() => {
                    tracing::info!(channel = %info.channel, adapter = %info.adapter, reason = %info.reason, "{}", info.explain());
                }
                (Some(_), Some(b)) if b.adapter != info.adapter => {
                    let what = match info.replaced.iter().rev().find(|d| d.adapter == b.adapter) {
                        Some(_) => info.explain(),
                        // The old adapter is gone (a package removed from a watched directory).
                        None => format!(
                            "{}: {} replaces {} ({} is no longer loaded; {})",
                            info.channel, info.adapter, b.adapter, b.adapter, info.reason
                        ),
                    };
                    tracing::warn!(channel = %info.channel, adapter = %info.adapter, reason = %info.reason, "{what}");
                }
                (Some(_), None) => {
                    tracing::info!(channel = %info.channel, adapter = %info.adapter, reason = %info.reason, "{}", info.explain());
                }
                _ => {}
            }
        }
        if let Some(previous) = previous {
            for gone in previous.route_info.values() {
                if !self.route_info.contains_key(&gone.channel) {
                    tracing::warn!(channel = %gone.channel, adapter = %gone.adapter, "{}: no adapter serves it any more ({} is no longer loaded)", gone.channel, gone.adapter);
                }
            }
        }
    }
}

/// The registry in force, replaceable while the engine runs (a plugin loaded over the API).
/// Each operation takes a [`LiveRegistry::current`] snapshot once and uses it throughout, so a
/// job renders and sends with one consistent set of plugins even if a load lands meanwhile.
#[derive(Clone)]
pub struct LiveRegistry(Arc<RwLock<Arc<Registry>>>);

impl LiveRegistry {
    pub fn new(registry: Registry) -> LiveRegistry {
        registry.announce_routes(None);
        LiveRegistry(Arc::new(RwLock::new(Arc::new(registry))))
    }

    pub fn current(&self) -> Arc<Registry> {
        // A poisoned lock only means a panic while swapping an `Arc`; the value is whole.
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Puts `registry` in force for every operation that starts from now on.
    /// Every channel whose adapter changes is logged ([`Registry::announce_routes`]).
    pub fn replace(&self, registry: Registry) {
        let mut slot = self.0.write().unwrap_or_else(|p| p.into_inner());
        registry.announce_routes(Some(&slot));
        *slot = Arc::new(registry);
    }
}

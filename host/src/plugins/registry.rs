//! Which loaded plugin does what: notifiers by their `describe` key, the renderer, and the
//! adapter serving each channel.

use super::{Plugin, PluginKind};
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

#[derive(Clone, Debug, Default)]
pub struct Registry {
    plugins: Vec<Plugin>,
    broken: Vec<BrokenPlugin>,
    notifiers: BTreeMap<String, Plugin>,
    renderer: Option<Plugin>,
    routes: BTreeMap<Channel, Plugin>,
    /// Every build this process has had in force, by reference (`name@version#hash`),
    /// replaced ones included: workflow runs and digest buckets pinned to a build finish on it.
    builds: BTreeMap<String, Plugin>,
}

impl Registry {
    /// `routes` overrides the default choice of adapter per channel: the last loaded adapter
    /// whose manifest lists the channel and does not opt out with `default_route = false`.
    pub fn new(
        plugins: Vec<Plugin>,
        routes: &BTreeMap<Channel, String>,
    ) -> Result<Registry, RegistryError> {
        let mut reg = Registry::default();
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
                PluginKind::Renderer => reg.renderer = Some(p.clone()),
                PluginKind::ChannelAdapter if p.manifest().default_route => {
                    for c in &p.manifest().channels {
                        reg.routes.insert(*c, p.clone());
                    }
                }
                PluginKind::ChannelAdapter => {}
            }
        }
        for (channel, name) in routes {
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
            reg.routes.insert(*channel, p.clone());
        }
        reg.builds = plugins
            .iter()
            .map(|p| (p.reference().to_string(), p.clone()))
            .collect();
        reg.plugins = plugins;
        Ok(reg)
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

    pub fn renderer(&self) -> Result<&Plugin, RegistryError> {
        self.renderer.as_ref().ok_or(RegistryError::NoRenderer)
    }

    /// The adapter for a channel; `None` for in-app (the host's inbox) or an unrouted channel.
    pub fn adapter_for(&self, channel: Channel) -> Option<&Plugin> {
        self.routes.get(&channel)
    }
}

/// The registry in force, replaceable while the engine runs (a plugin loaded over the API).
/// Each operation takes a [`LiveRegistry::current`] snapshot once and uses it throughout, so a
/// job renders and sends with one consistent set of plugins even if a load lands meanwhile.
#[derive(Clone)]
pub struct LiveRegistry(Arc<RwLock<Arc<Registry>>>);

impl LiveRegistry {
    pub fn new(registry: Registry) -> LiveRegistry {
        LiveRegistry(Arc::new(RwLock::new(Arc::new(registry))))
    }

    pub fn current(&self) -> Arc<Registry> {
        // A poisoned lock only means a panic while swapping an `Arc`; the value is whole.
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Puts `registry` in force for every operation that starts from now on.
    pub fn replace(&self, registry: Registry) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(registry);
    }
}

//! A loaded plugin: its build, manifest, grants and pre-instantiated component.

use super::assets;
use super::capabilities;
use super::contract::NotifierDescription;
use super::kinds::PluginKind;
use super::manifest::Manifest;
use super::reference::PluginRef;
use super::versions::Pre;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A loaded, pre-instantiated plugin. Cheap to clone.
#[derive(Clone)]
pub struct Plugin(pub(super) Arc<LoadedPlugin>);

pub(super) struct LoadedPlugin {
    pub(super) reference: PluginRef,
    pub(super) manifest: Manifest,
    pub(super) pre: Pre,
    pub(super) config: Arc<BTreeMap<String, String>>,
    /// The manifest's grants plus the operator's (`allow_http`, `allow_tcp`).
    pub(super) http: Arc<[capabilities::AuthorityPattern]>,
    pub(super) tcp: Arc<[capabilities::AuthorityPattern]>,
    pub(super) description: Option<NotifierDescription>,
    /// The package's read-only files (`assets/`): a notifier's templates and translations.
    pub(super) assets: Arc<assets::Assets>,
    /// Where the component came from: `bundled` or a path.
    pub(super) origin: String,
    /// Keeps materialised bundled files alive as long as the plugin.
    pub(super) _files: Option<Arc<tempfile::TempDir>>,
}

impl Plugin {
    /// The same loaded build (not merely the same hash: config and grants come with a load).
    pub(super) fn same_build(&self, other: &Plugin) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
    pub fn reference(&self) -> &PluginRef {
        &self.0.reference
    }
    pub fn manifest(&self) -> &Manifest {
        &self.0.manifest
    }
    pub fn kind(&self) -> PluginKind {
        self.0.manifest.kind
    }
    pub fn name(&self) -> &str {
        &self.0.manifest.name
    }
    pub fn origin(&self) -> &str {
        &self.0.origin
    }
    /// The package's assets; empty for a plugin that ships none.
    pub fn assets(&self) -> &Arc<assets::Assets> {
        &self.0.assets
    }
    /// Notifiers only: what `describe` returned at load time.
    pub fn description(&self) -> Option<&NotifierDescription> {
        self.0.description.as_ref()
    }
    /// Every authority the plugin may reach over HTTP: its manifest's and the operator's.
    pub fn granted_http(&self) -> &[capabilities::AuthorityPattern] {
        &self.0.http
    }
    /// Every `host:port` the plugin may connect to over TCP.
    pub fn granted_tcp(&self) -> &[capabilities::AuthorityPattern] {
        &self.0.tcp
    }
    /// Config keys the host will answer for this plugin (values are secrets; not exposed).
    pub fn config_keys(&self) -> Vec<String> {
        self.0.config.keys().cloned().collect()
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Plugin({})", self.0.reference)
    }
}

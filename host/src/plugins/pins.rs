//! Pins: the exact plugin builds a workflow run or a digest bucket began with.
//!
//! Loading a new version of a plugin affects what starts afterwards only. A run records the
//! notifier, renderer and adapter builds (by reference, `name@version#hash`) in force when it
//! started, and every step delivery is built, rendered and sent with those; a digest bucket
//! records the renderer and adapter of its channel when it opened, and its digest is rendered
//! and sent with those. The registry keeps every build it has had in force (replaced uploads
//! are reloaded from the database at start), so a pinned build stays loadable. A pin whose
//! build is gone (an older *bundled* plugin, after the binary was upgraded) falls back to the
//! build in force, and the delivery's story says so.

use super::plugin::Plugin;
use super::registry::Registry;
use crate::content::Channel;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pins {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renderer: Option<String>,
    /// Channel → adapter build.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub adapters: BTreeMap<Channel, String>,
}

impl Pins {
    /// What is in force now for `notifier` and `channels`. The renderer is the one that
    /// notifier uses ([`Registry::renderer_for`]: the one its manifest names, else the
    /// default), so a run keeps rendering with it even when the default changes later. A
    /// notifier whose renderer is not loaded pins none: its render fails, saying why.
    pub fn current(registry: &Registry, notifier: Option<&Plugin>, channels: &[Channel]) -> Pins {
        let renderer = match notifier {
            Some(n) => registry.renderer_for(n),
            None => registry.renderer(),
        };
        Pins {
            notifier: notifier.map(|n| n.reference().to_string()),
            renderer: renderer.ok().map(|r| r.reference().to_string()),
            adapters: channels
                .iter()
                .filter_map(|c| {
                    registry
                        .adapter_for(*c)
                        .map(|a| (*c, a.reference().to_string()))
                })
                .collect(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("pins serialize")
    }

    /// Pins as stored; `None` (a row from before pinning) pins nothing.
    pub fn from_json(text: Option<&str>) -> Result<Pins, serde_json::Error> {
        text.map(serde_json::from_str)
            .transpose()
            .map(Option::unwrap_or_default)
    }
}

/// The build to use: the pinned one if it is still known, else `current`. The second value
/// says why the pin was not honoured, for the delivery's story.
pub fn choose<'a>(
    registry: &'a Registry,
    pinned: Option<&str>,
    current: Option<&'a Plugin>,
) -> (Option<&'a Plugin>, Option<String>) {
    match pinned {
        None => (current, None),
        Some(reference) => match registry.build(reference) {
            Some(p) => (Some(p), None),
            None => (
                current,
                Some(format!(
                    "pinned build {reference} is no longer loaded; used {}",
                    current
                        .map(|c| c.reference().to_string())
                        .unwrap_or_else(|| "none".into())
                )),
            ),
        },
    }
}

//! What a component implements (its kind) and which contract versions this host loads for
//! each. It sits below both the manifest (which checks a manifest's `wit` against it) and the
//! bindings (`versions.rs`, which bind each listed version), so neither imports the other:
//! the bindings need the store's state, and the state needs the manifest.

/// What a component implements, named like its WIT world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    Notifier,
    Renderer,
    ChannelAdapter,
}

impl PluginKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Notifier => "notifier",
            PluginKind::Renderer => "renderer",
            PluginKind::ChannelAdapter => "channel-adapter",
        }
    }
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The contract versions a manifest of `kind` may name, newest first. `versions.rs` binds
/// exactly these (its test `the_bindings_are_the_supported_list` fails when the two part).
pub fn supported(kind: PluginKind) -> &'static [&'static str] {
    match kind {
        PluginKind::Notifier => &["1.0.0", "0.4.0", "0.3.0", "0.2.0", "0.1.0"],
        PluginKind::Renderer => &["1.0.0", "0.1.0"],
        PluginKind::ChannelAdapter => &["1.0.0", "0.5.0", "0.1.0"],
    }
}

/// Whether bindings for contract `binding` load a plugin whose manifest says `wit`. A 0.x
/// version serves only itself; a 1.x binding serves every 1.x up to its own (`1.0.0` now), so
/// a plugin built for 1.0 keeps loading on a 1.2 host with no host code for 1.0.
pub fn serves(binding: &str, wit: &str) -> bool {
    if binding == wit {
        return true;
    }
    let parse = |v: &str| -> Option<(u64, u64, u64)> {
        let mut parts = v.split('.').map(|p| p.parse::<u64>().ok());
        let out = (parts.next()??, parts.next()??, parts.next()??);
        parts.next().is_none().then_some(out)
    };
    match (parse(binding), parse(wit)) {
        (Some(b), Some(w)) => b.0 >= 1 && w.0 == b.0 && (w.1, w.2) <= (b.1, b.2),
        _ => false,
    }
}

/// Whether a manifest's `wit` is one this host loads for `kind`.
pub fn accepts(kind: PluginKind, wit: &str) -> bool {
    supported(kind).iter().any(|binding| serves(binding, wit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_1x_binding_serves_every_1x_up_to_its_own() {
        assert!(serves("1.0.0", "1.0.0"));
        assert!(serves("1.2.0", "1.0.0"));
        assert!(serves("1.2.0", "1.1.3"));
        assert!(!serves("1.0.0", "1.1.0"), "a plugin newer than the host");
        assert!(!serves("1.0.0", "2.0.0"));
        assert!(!serves("1.0.0", "0.4.0"));
        assert!(
            !serves("0.4.0", "0.3.0"),
            "0.x versions serve only themselves"
        );
        assert!(!serves("1.0.0", "1.0"));
        assert!(!serves("1.0.0", "1.0.0.0"));
    }
}

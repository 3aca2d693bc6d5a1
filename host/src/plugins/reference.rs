//! The identity of one plugin build, below everything that records or checks it.

/// The exact plugin build that did something: recorded on every delivery and trace entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct PluginRef {
    pub name: String,
    pub version: String,
    /// SHA-256 of the component bytes, hex.
    pub hash: String,
}

impl std::fmt::Display for PluginRef {
    /// `name@version#hash12`, the form stored in traces.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}@{}#{}",
            self.name,
            self.version,
            &self.hash[..12.min(self.hash.len())]
        )
    }
}

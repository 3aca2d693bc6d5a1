//! How a plugin call or load fails. Reason strings are stored and shown: they do not change.

use super::manifest::ManifestError;
use std::path::PathBuf;

/// Why a plugin call failed. The string forms are stable: they are stored and shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// CPU time or wall-clock limit reached.
    Timeout,
    /// The plugin asked for more memory than its limit.
    MemoryLimit,
    /// The guest trapped or panicked.
    Trap,
    /// The plugin returned its own error (invalid payload, missing template variable, ...).
    PluginError,
    /// The plugin tried something its manifest does not grant.
    CapabilityDenied,
    /// The plugin returned more than its output limit.
    OutputTooLarge,
    /// The component could not be instantiated.
    Instantiate,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Timeout => "timeout",
            FailureReason::MemoryLimit => "memory_limit",
            FailureReason::Trap => "trap",
            FailureReason::PluginError => "plugin_error",
            FailureReason::CapabilityDenied => "capability_denied",
            FailureReason::OutputTooLarge => "output_too_large",
            FailureReason::Instantiate => "instantiate",
        }
    }
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One plugin call failed. The host and other plugins are unaffected.
#[derive(Clone, Debug, thiserror::Error, serde::Serialize)]
#[error("plugin {plugin} `{function}` failed ({reason}): {message}")]
pub struct CallError {
    /// `name@version#hash12`.
    pub plugin: String,
    pub function: &'static str,
    pub reason: FailureReason,
    pub message: String,
}

/// A plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("plugin {origin}: {message}")]
    Invalid { origin: String, message: String },
    // The wrapped errors are part of the message (shown whole by the HTTP API), so they are not
    // also a `source`, which a cause chain would print a second time.
    #[error("plugin {origin}: cannot read {path}: {error}")]
    Io {
        origin: String,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("plugin {origin}: `describe` failed: {error}")]
    Describe { origin: String, error: CallError },
}

//! Replay through the engine: a candidate plugin loaded beside the registry (recorded nowhere,
//! in force nowhere) and recorded events run through it and the builds that planned them.

use super::Engine;
use crate::plugins::{LoadError, Plugin, package::Package};
use crate::replay::{self, ReplayError, ReplayOptions, ReplayReport};
use std::path::Path;

/// The origin a candidate is loaded under, in log lines and load errors.
const CANDIDATE_ORIGIN: &str = "replay candidate";

impl Engine {
    /// Loads `package` to be replayed: checked as an upload is, but neither recorded nor put
    /// in force.
    pub async fn load_candidate(&self, package: &Package) -> Result<Plugin, LoadError> {
        self.runtime
            .load_uploaded_package(package, CANDIDATE_ORIGIN.to_string())
            .await
    }

    /// [`Engine::load_candidate`] from a package folder, or a `.wasm` with its manifest
    /// `.toml` beside it (as `belfry plugin check` takes one).
    pub async fn load_candidate_path(&self, path: &Path) -> Result<Plugin, LoadError> {
        self.runtime.load_path(path).await
    }

    /// Runs the recorded events `options` select through `candidate` and through the builds
    /// that ran, with the registry in force now; writes and sends nothing.
    pub async fn replay(
        &self,
        candidate: &Plugin,
        options: &ReplayOptions,
    ) -> Result<ReplayReport, ReplayError> {
        let registry = self.registry.current();
        replay::replay(&self.db, &self.runtime, &registry, candidate, options).await
    }
}

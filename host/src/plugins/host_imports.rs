//! The host functions a plugin imports, in contract 1.0's terms (`log`, `config`, `assets`):
//! each converts the generated types and hands over to the store's state (`state.rs`). Older
//! contracts' `log` and `config` are forwarded here by `versions.rs`. Kept apart from the
//! state so that the state does not import the bindings, which name the state in every call.

use super::state::PluginState;
use super::versions::v1::{wit_assets, wit_config, wit_log};

impl wit_log::Host for PluginState {
    fn log(&mut self, level: wit_log::Level, message: String) {
        let level = match level {
            wit_log::Level::Trace => tracing::Level::TRACE,
            wit_log::Level::Debug => tracing::Level::DEBUG,
            wit_log::Level::Info => tracing::Level::INFO,
            wit_log::Level::Warn => tracing::Level::WARN,
            wit_log::Level::Error => tracing::Level::ERROR,
        };
        self.log_line(level, message)
    }
}

impl wit_config::Host for PluginState {
    fn get(&mut self, key: String) -> Option<String> {
        self.config_value(&key)
    }
}

impl wit_assets::Host for PluginState {
    fn read(&mut self, path: String) -> wasmtime::Result<Option<Vec<u8>>> {
        self.read_asset(&path)
    }

    fn list(&mut self, prefix: String) -> wasmtime::Result<Vec<String>> {
        self.list_assets(&prefix)
    }
}

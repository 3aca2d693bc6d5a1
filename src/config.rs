//! Configuration shared by the CLI commands: where the cache lives and how per-plugin config
//! is read from the environment and flags.

use belfry_host::plugins::PluginConfig;
use std::path::PathBuf;

/// `$BELFRY_CACHE_DIR`, else `$XDG_CACHE_HOME/belfry`, else `$HOME/.cache/belfry`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("BELFRY_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(dir).join("belfry"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("belfry"))
}

/// Plugin config from `BELFRY_PLUGIN__<NAME>__<KEY>=value` variables (name and key are
/// lower-cased, `_` in the name becomes `-`) and from `NAME.KEY=VALUE` flags, flags winning.
pub fn plugin_config(flags: &[String]) -> Result<PluginConfig, String> {
    let mut config = PluginConfig::new();
    for (var, value) in std::env::vars() {
        if let Some(rest) = var.strip_prefix("BELFRY_PLUGIN__")
            && let Some((name, key)) = rest.split_once("__")
        {
            config
                .entry(name.to_ascii_lowercase().replace('_', "-"))
                .or_default()
                .insert(key.to_ascii_lowercase(), value);
        }
    }
    for flag in flags {
        let (target, value) = flag
            .split_once('=')
            .ok_or_else(|| format!("--plugin-config `{flag}`: expected NAME.KEY=VALUE"))?;
        let (name, key) = target
            .split_once('.')
            .ok_or_else(|| format!("--plugin-config `{flag}`: expected NAME.KEY=VALUE"))?;
        if name.is_empty() || key.is_empty() {
            return Err(format!(
                "--plugin-config `{flag}`: empty plugin name or key"
            ));
        }
        config
            .entry(name.to_string())
            .or_default()
            .insert(key.to_string(), value.to_string());
    }
    Ok(config)
}

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

/// The settings a `belfry.toml` holds, as the `BELFRY_*` environment variables they stand
/// for: a top-level `key` is `BELFRY_KEY`, `key` in `[section]` is `BELFRY_SECTION_KEY`, and
/// `key` in `[plugin.NAME]` is `BELFRY_PLUGIN__NAME__KEY` (plugin configuration).
///
/// `known` is every variable the command line reads; a key standing for none of them is an
/// error naming it, so a misspelt setting is not silently ignored.
pub fn file_settings(
    path: &std::path::Path,
    known: &std::collections::BTreeSet<String>,
) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("config file {}: {e}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))?;
    let mut out = Vec::new();
    let var = |parts: &[&str]| {
        let mut name = String::from("BELFRY");
        for p in parts {
            name.push('_');
            name.push_str(&p.to_ascii_uppercase().replace('-', "_"));
        }
        name
    };
    let check = |key: &str, name: String| {
        if known.contains(&name) {
            Ok(name)
        } else {
            Err(format!(
                "config file {}: unknown setting `{key}` (see `belfry serve --help` or docs/operating.md)",
                path.display()
            ))
        }
    };
    for (key, value) in &table {
        match value {
            toml::Value::Table(section) if key == "plugin" => {
                for (plugin, settings) in section {
                    let toml::Value::Table(settings) = settings else {
                        return Err(format!(
                            "config file {}: `plugin.{plugin}` must be a table of settings",
                            path.display()
                        ));
                    };
                    for (k, v) in settings {
                        let name = format!(
                            "BELFRY_PLUGIN__{}__{}",
                            plugin.to_ascii_uppercase().replace('-', "_"),
                            k.to_ascii_uppercase()
                        );
                        out.push((name, scalar(path, &format!("plugin.{plugin}.{k}"), v)?));
                    }
                }
            }
            toml::Value::Table(section) => {
                for (k, v) in section {
                    let dotted = format!("{key}.{k}");
                    let name = check(&dotted, var(&[key, k]))?;
                    out.push((name, scalar(path, &dotted, v)?));
                }
            }
            v => {
                let name = check(key, var(&[key]))?;
                out.push((name, scalar(path, key, v)?));
            }
        }
    }
    Ok(out)
}

/// A setting's value as its environment variable would hold it.
fn scalar(path: &std::path::Path, key: &str, v: &toml::Value) -> Result<String, String> {
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        _ => Err(format!(
            "config file {}: `{key}` must be a string, number or boolean",
            path.display()
        )),
    }
}

/// Channel routes from `CHANNEL=ADAPTER` items (`--route`, `BELFRY_ROUTES`).
pub fn routes(
    items: &[String],
) -> Result<std::collections::BTreeMap<belfry_host::content::Channel, String>, String> {
    let mut out = std::collections::BTreeMap::new();
    for item in items.iter().map(|i| i.trim()).filter(|i| !i.is_empty()) {
        let (channel, adapter) = item
            .split_once('=')
            .ok_or_else(|| format!("route `{item}`: write CHANNEL=ADAPTER, e.g. email=resend"))?;
        let channel = channel
            .trim()
            .parse()
            .map_err(|_| format!("route `{item}`: `{channel}` is not a channel"))?;
        let adapter = adapter.trim();
        if adapter.is_empty() {
            return Err(format!("route `{item}`: no adapter named"));
        }
        if out.insert(channel, adapter.to_string()).is_some() {
            return Err(format!("route `{item}`: the channel is routed twice"));
        }
    }
    Ok(out)
}

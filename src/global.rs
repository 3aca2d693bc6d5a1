//! The options every subcommand takes (`belfry --help`), and the engine, runtime and endpoint
//! configuration built from them.

use anyhow::{Result, bail};
use belfry::EngineConfig;
use belfry::host::plugins::RuntimeConfig;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Clone)]
pub(crate) struct Global {
    /// A belfry.toml to read settings from [default: ./belfry.toml if it exists]. Flags win
    /// over environment variables, which win over the file.
    #[arg(long, global = true, env = "BELFRY_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Database URL.
    #[arg(
        long,
        global = true,
        env = "BELFRY_DATABASE_URL",
        default_value = "sqlite://belfry.db"
    )]
    pub(crate) database_url: String,
    /// Directory of extra plugins (package folders NAME/ with manifest.toml, plugin.wasm and
    /// assets/; or NAME.wasm with NAME.toml beside it), loaded after the bundled ones; a plugin
    /// with a bundled plugin's name replaces it.
    #[arg(long = "plugins", global = true, env = "BELFRY_PLUGINS")]
    pub(crate) plugins_dir: Option<PathBuf>,
    /// Cache for compiled plugins [default: $XDG_CACHE_HOME/belfry or ~/.cache/belfry].
    #[arg(long, global = true, env = "BELFRY_CACHE_DIR")]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Plugin configuration NAME.KEY=VALUE (repeatable); also BELFRY_PLUGIN__NAME__KEY=VALUE.
    #[arg(long = "plugin-config", global = true, value_name = "NAME.KEY=VALUE")]
    pub(crate) plugin_config: Vec<String>,
    /// Which adapter sends a channel, CHANNEL=ADAPTER (repeatable, or comma-separated in
    /// BELFRY_ROUTES), e.g. `email=resend`. Provider adapters serve a channel only when routed.
    #[arg(
        long = "route",
        global = true,
        env = "BELFRY_ROUTES",
        value_delimiter = ',',
        value_name = "CHANNEL=ADAPTER"
    )]
    pub(crate) routes: Vec<String>,
    /// The default renderer (a renderer plugin's name) for notifiers whose manifest names
    /// none [default: `templates`, else the only or last loaded renderer].
    #[arg(long, global = true, env = "BELFRY_RENDERER", value_name = "NAME")]
    pub(crate) renderer: Option<String>,
    /// With --plugins, `serve` and `worker` load changed packages of the directory while they
    /// run (looked at every 500 ms); one that fails to load is reported and its previous
    /// build stays in force.
    #[arg(long, global = true, env = "BELFRY_WATCH")]
    pub(crate) watch: bool,
    /// The base URL `belfry serve` is reached at by providers and recipients
    /// (`https://belfry.example.com`): signed provider webhook URLs are checked against it,
    /// and every email carries a one-click unsubscribe link under it. Without it, emails
    /// carry no unsubscribe link.
    #[arg(long, global = true, env = "BELFRY_PUBLIC_URL")]
    pub(crate) public_url: Option<String>,
    /// Non-public networks outbound webhook endpoints may reach (comma-separated IPs or
    /// CIDRs, e.g. `127.0.0.1,10.0.0.0/8`). Private, loopback and link-local addresses are
    /// refused otherwise.
    #[arg(
        long,
        global = true,
        env = "BELFRY_ENDPOINT_ALLOW_NETWORKS",
        value_delimiter = ',',
        value_name = "NETWORKS"
    )]
    pub(crate) endpoint_allow_networks: Vec<String>,
    /// Failed attempts in a row that disable an outbound webhook endpoint (it is enabled
    /// again by hand: `belfry endpoints enable`); 1–10000.
    #[arg(
        long,
        global = true,
        env = "BELFRY_ENDPOINT_DISABLE_AFTER",
        default_value_t = 20,
        value_parser = clap::value_parser!(u32).range(1..=10_000)
    )]
    pub(crate) endpoint_disable_after: u32,
    /// Seconds one outbound webhook attempt may take; 1–300.
    #[arg(
        long,
        global = true,
        env = "BELFRY_ENDPOINT_TIMEOUT_SECS",
        default_value_t = 15,
        value_parser = clap::value_parser!(u64).range(1..=300)
    )]
    pub(crate) endpoint_timeout_secs: u64,
    /// Calls one plugin instance may serve for the same tenant before it is replaced by a
    /// fresh one (0: a fresh instance for every call). An instance is also replaced after any
    /// failed call. 0–1000000.
    #[arg(
        long,
        global = true,
        env = "BELFRY_PLUGIN_REUSE",
        default_value_t = belfry::host::plugins::WarmConfig::default().max_calls,
        value_parser = clap::value_parser!(u32).range(0..=1_000_000)
    )]
    pub(crate) plugin_reuse: u32,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Log more (repeat for more); logs go to stderr. RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
}

pub(crate) fn engine_config(g: &Global) -> Result<EngineConfig> {
    Ok(EngineConfig {
        database_url: g.database_url.clone(),
        bundled: belfry::BUNDLED,
        plugins_dir: g.plugins_dir.clone(),
        cache_dir: g
            .cache_dir
            .clone()
            .or_else(belfry::config::default_cache_dir),
        plugin_config: belfry::config::plugin_config(&g.plugin_config)
            .map_err(anyhow::Error::msg)?,
        warm: warm_config(g),
        routes: belfry::config::routes(&g.routes).map_err(anyhow::Error::msg)?,
        renderer: g.renderer.clone(),
        // One-shot commands take the plugins as they are; `serve` and `worker` follow them.
        live: None,
        dispatch: Default::default(),
        public_url: g.public_url.clone(),
        endpoints: endpoints_config(g)?,
    })
}

/// `serve` and `worker` follow uploads made on other nodes, and with `--watch` the plugin
/// directory.
pub(crate) fn live_config(g: &Global) -> Result<belfry::host::plugins::live::LiveConfig> {
    if g.watch && g.plugins_dir.is_none() {
        bail!("--watch needs --plugins DIR: the directory to watch");
    }
    Ok(belfry::host::plugins::live::LiveConfig {
        watch: g.watch,
        ..Default::default()
    })
}

pub(crate) fn endpoints_config(g: &Global) -> Result<belfry::host::endpoints::EndpointsConfig> {
    let allow_networks = g
        .endpoint_allow_networks
        .iter()
        .filter(|n| !n.trim().is_empty())
        .map(|n| belfry::host::endpoints::AddressPolicy::parse_net(n))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("--endpoint-allow-networks: {e}"))?;
    if g.endpoint_disable_after == 0 {
        bail!("--endpoint-disable-after must be at least 1");
    }
    if g.endpoint_timeout_secs == 0 {
        bail!("--endpoint-timeout-secs must be at least 1");
    }
    Ok(belfry::host::endpoints::EndpointsConfig {
        allow_networks,
        disable_after: g.endpoint_disable_after,
        timeout: std::time::Duration::from_secs(g.endpoint_timeout_secs),
    })
}

pub(crate) fn g_cache(g: &Global) -> Option<PathBuf> {
    g.cache_dir
        .clone()
        .or_else(belfry::config::default_cache_dir)
}

pub(crate) fn runtime_config(g: &Global) -> Result<RuntimeConfig> {
    Ok(RuntimeConfig {
        cache_dir: g_cache(g),
        plugin_config: belfry::config::plugin_config(&g.plugin_config)
            .map_err(anyhow::Error::msg)?,
        warm: warm_config(g),
    })
}

pub(crate) fn warm_config(g: &Global) -> belfry::host::plugins::WarmConfig {
    belfry::host::plugins::WarmConfig {
        max_calls: g.plugin_reuse,
        ..Default::default()
    }
}

//! The `belfry` command line.

mod bench;
mod demo;
mod output;

use anyhow::{Context, Result, bail};
use belfry::host::plugins::{PluginRuntime, RuntimeConfig};
use belfry::{Engine, EngineConfig, TriggerRequest};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "belfry",
    version,
    about = "A durable, explainable notification engine extended with sandboxed WebAssembly plugins"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Global {
    /// Database URL.
    #[arg(
        long,
        global = true,
        env = "BELFRY_DATABASE_URL",
        default_value = "sqlite://belfry.db"
    )]
    database_url: String,
    /// Directory of extra plugins (NAME.wasm with NAME.toml beside it), loaded after the
    /// bundled ones; a plugin with a bundled plugin's name replaces it.
    #[arg(long = "plugins", global = true, env = "BELFRY_PLUGINS")]
    plugins_dir: Option<PathBuf>,
    /// Cache for compiled plugins [default: $XDG_CACHE_HOME/belfry or ~/.cache/belfry].
    #[arg(long, global = true, env = "BELFRY_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Plugin configuration NAME.KEY=VALUE (repeatable); also BELFRY_PLUGIN__NAME__KEY=VALUE.
    #[arg(long = "plugin-config", global = true, value_name = "NAME.KEY=VALUE")]
    plugin_config: Vec<String>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,
    /// Log more (repeat for more); logs go to stderr. RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole lifecycle on a fresh SQLite database with the bundled plugins and a
    /// local webhook receiver, then print the deliveries and one explanation.
    Demo {
        /// Keep the demo database at this path instead of a temporary directory.
        #[arg(long)]
        database: Option<PathBuf>,
    },
    /// Create or upgrade the database schema.
    Migrate,
    /// Trigger a notifier with a JSON payload, then dispatch its deliveries.
    Trigger {
        /// The notifier key, e.g. `welcome`.
        notifier: String,
        /// The event payload, a JSON object.
        #[arg(long)]
        data: String,
        #[arg(long, default_value = belfry::host::trigger::DEFAULT_TENANT)]
        tenant: String,
        /// Repeating a trigger with the same key writes nothing and returns the original ids.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Only plan: leave the deliveries pending.
        #[arg(long)]
        no_dispatch: bool,
    },
    /// Explain a delivery, notification or event: every decision, render, attempt and
    /// transition, in order, with plugin versions.
    Explain {
        /// A delivery, notification or event id.
        id: String,
    },
    /// Inspect plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Measure performance.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// List the bundled plugins and those in --plugins.
    List,
    /// Load a component, check its world, version and manifest, call `describe` for a
    /// notifier, and print what it is granted.
    Check {
        /// Path to the plugin's .wasm (its manifest NAME.toml must sit beside it).
        path: PathBuf,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// One renderer call on a fresh instance (and on a reused one) vs the same template
    /// rendered natively in Rust.
    Plugins {
        /// Calls per measurement.
        #[arg(long, default_value_t = 2000)]
        iterations: u32,
    },
}

fn main() {
    let cli = Cli::parse();
    init_tracing(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(cli)) {
        // One line on stderr, whole cause chain.
        eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
        std::process::exit(1);
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,belfry=info",
        2 => "debug,wasmtime=info,cranelift=info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn engine_config(g: &Global) -> Result<EngineConfig> {
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
        routes: Default::default(),
    })
}

async fn run(cli: Cli) -> Result<()> {
    let g = cli.global;
    match cli.command {
        Command::Demo { database } => demo::run(&g_cache(&g), database, g.json).await,
        Command::Migrate => {
            belfry::host::store::open(&g.database_url)
                .await
                .context("migrating")?;
            if g.json {
                println!(
                    "{}",
                    serde_json::json!({"migrated": true, "database_url": g.database_url})
                );
            } else {
                println!("database {} is up to date", g.database_url);
            }
            Ok(())
        }
        Command::Trigger {
            notifier,
            data,
            tenant,
            idempotency_key,
            no_dispatch,
        } => {
            let payload: serde_json::Value = serde_json::from_str(&data)
                .with_context(|| format!("--data is not valid JSON ({data})"))?;
            let engine = Engine::open(engine_config(&g)?).await?;
            let mut req = TriggerRequest::new(notifier, payload).tenant(tenant);
            if let Some(k) = idempotency_key {
                req = req.idempotency_key(k);
            }
            let mut outcome = engine.trigger(&req).await?;
            if !no_dispatch && !outcome.duplicate {
                engine.dispatch_event(&outcome.event_id).await?;
                outcome = belfry::TriggerOutcome {
                    duplicate: outcome.duplicate,
                    ..engine.event(&outcome.event_id).await?
                };
            }
            if g.json {
                println!("{}", serde_json::to_string_pretty(&outcome)?);
            } else {
                output::print_outcome(&outcome);
            }
            Ok(())
        }
        Command::Explain { id } => {
            let db = belfry::host::store::open(&g.database_url).await?;
            let explanation = belfry::host::traces::explain(&db, &id).await?;
            if g.json {
                println!("{}", serde_json::to_string_pretty(&explanation)?);
            } else {
                print!("{explanation}");
            }
            Ok(())
        }
        Command::Plugin { command } => match command {
            PluginCommand::List => {
                let runtime = PluginRuntime::new(runtime_config(&g)?)?;
                let plugins = belfry::host::plugins::load_all(
                    &runtime,
                    belfry::BUNDLED,
                    g.plugins_dir.as_deref(),
                )
                .await?;
                output::print_plugins(&plugins, g.json)
            }
            PluginCommand::Check { path } => {
                if path.extension().is_none_or(|e| e != "wasm") {
                    bail!(
                        "{}: expected a .wasm file with its manifest .toml beside it",
                        path.display()
                    );
                }
                let runtime = PluginRuntime::new(runtime_config(&g)?)?;
                let plugin = runtime.load_file(&path).await?;
                output::print_check(&plugin, g.json)
            }
        },
        Command::Bench { command } => match command {
            BenchCommand::Plugins { iterations } => bench::plugins(iterations, g.json).await,
        },
    }
}

fn g_cache(g: &Global) -> Option<PathBuf> {
    g.cache_dir
        .clone()
        .or_else(belfry::config::default_cache_dir)
}

fn runtime_config(g: &Global) -> Result<RuntimeConfig> {
    Ok(RuntimeConfig {
        cache_dir: g_cache(g),
        plugin_config: belfry::config::plugin_config(&g.plugin_config)
            .map_err(anyhow::Error::msg)?,
    })
}

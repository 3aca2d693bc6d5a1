//! The `belfry` command line: the commands and where each is handled.

mod bench;
mod bench_cli;
mod commands;
mod demo;
mod digest_bench;
mod digests_cli;
mod durations;
mod endpoints_cli;
mod global;
mod ids;
mod inbox_cli;
mod keys_cli;
mod output;
mod pack_cli;
mod plugin_call;
mod plugin_cli;
mod plugin_new;
mod plugin_replay;
mod plugin_test;
mod policy_cli;
mod queue_bench;
mod replay_bench;
mod serve_cli;
mod startup;
mod webhooks_cli;

use anyhow::Result;
use belfry::Engine;
use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "belfry",
    version,
    about = "A durable, explainable notification engine extended with sandboxed WebAssembly plugins"
)]
struct Cli {
    #[command(flatten)]
    global: global::Global,
    #[command(subcommand)]
    command: Command,
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
    Trigger(commands::TriggerArgs),
    /// Recipients' preferences per channel, category, notifier, or notifier on a channel.
    Prefs {
        #[command(subcommand)]
        command: policy_cli::PrefsCommand,
    },
    /// Recipients' time zone, quiet hours, severity floor, caps and cooldowns.
    Settings {
        #[command(subcommand)]
        command: policy_cli::SettingsCommand,
    },
    /// Addresses, or recipients on a channel, that must never be sent to.
    Suppressions {
        #[command(subcommand)]
        command: policy_cli::SuppressionsCommand,
    },
    /// Digest rules: upsert, get, list, match.
    Digests {
        #[command(subcommand)]
        command: digests_cli::DigestsCommand,
    },
    /// A recipient's in-app inbox: list items, mark one read.
    Inbox {
        #[command(subcommand)]
        command: inbox_cli::InboxCommand,
    },
    /// Send a signal: waiting workflow runs of the tenant whose recipient is ACTOR and that
    /// listen for NAME end their wait (for good with a cancel-on name, early with a resume-on
    /// name). Prints the runs it moved.
    Signal {
        actor: String,
        name: String,
        #[arg(long, default_value = belfry::host::trigger::DEFAULT_TENANT)]
        tenant: String,
        /// A JSON object; `{"notification_id": ID}` reaches only that notification's run.
        #[arg(long, default_value = "{}")]
        payload: String,
    },
    /// A workflow run and its transitions, by the run's id, its notification's, or one of its
    /// step deliveries'.
    Run { id: String },
    /// Serve the HTTP API (/v1), the inbox with its live stream, /healthz, /readyz,
    /// /metrics and the web console, with workers in the same process, until SIGTERM or
    /// SIGINT. Every setting is also a `BELFRY_*` variable and a belfry.toml key
    /// (docs/operating.md).
    Serve(serve_cli::ServeArgs),
    /// Provider webhooks received: replay one, purge old raw requests, list orphans, show a
    /// delivery's feedback.
    Webhooks {
        #[command(subcommand)]
        command: webhooks_cli::WebhooksCommand,
    },
    /// Outbound lifecycle webhooks of a tenant: add (prints the `whsec_` secret), list, get,
    /// enable, disable, remove, messages, events.
    Endpoints {
        #[command(subcommand)]
        command: endpoints_cli::EndpointsCommand,
    },
    /// API keys for `belfry serve`: create (the secret is printed once), list, revoke.
    Keys {
        #[command(subcommand)]
        command: keys_cli::KeysCommand,
    },
    /// Run workers only: lease due jobs from the database and send them, until SIGTERM or
    /// SIGINT (then stop leasing, let in-flight sends finish for --grace-secs, release the rest,
    /// exit 0). Any number of `belfry worker` processes may share one PostgreSQL database.
    Worker(serve_cli::WorkerArgs),
    /// Cancel a pending or deferred delivery: its job is removed and nothing is sent.
    Cancel {
        delivery_id: String,
        /// Why, for `explain`.
        #[arg(long, default_value = "cancelled from the command line")]
        reason: String,
    },
    /// Defer a pending or deferred delivery to a later time, with a reason.
    Defer {
        delivery_id: String,
        /// When to send it: an RFC 3339 time (2026-11-23T18:00:00Z) or a delay from now (90s,
        /// 15m, 2h).
        #[arg(long)]
        until: String,
        /// Why, for `explain`.
        #[arg(long)]
        reason: String,
    },
    /// Jobs in the queue by state.
    Queue,
    /// Explain a delivery, notification or event: every decision, render, attempt and
    /// transition, in order, with plugin versions.
    Explain {
        /// A delivery, notification or event id.
        id: String,
    },
    /// Inspect plugins.
    Plugin {
        #[command(subcommand)]
        command: plugin_cli::PluginCommand,
    },
    /// Measure performance.
    Bench {
        #[command(subcommand)]
        command: bench_cli::BenchCommand,
    },
}

fn main() {
    startup::quiet_on_closed_stdout();
    // Before clap has parsed anything, `--json` is looked for by hand.
    let json_early = std::env::args().any(|a| a == "--json");
    if let Err(e) = startup::load_config_file(Cli::command) {
        output::print_error(&anyhow::Error::msg(e), json_early);
        std::process::exit(2);
    }
    let matches = match Cli::command().try_get_matches() {
        Ok(matches) => matches,
        // Help and --version are not errors; a usage error under --json is one JSON object too.
        Err(e) if json_early && e.use_stderr() => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            let message = first.strip_prefix("error: ").unwrap_or(first).to_string();
            output::print_error(&anyhow::Error::msg(message), true);
            std::process::exit(2);
        }
        Err(e) => e.exit(),
    };
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // `bench` must know whether --database-url was given, not only its value (see `bench_url`).
    let database_url_given =
        matches.value_source("database_url") == Some(clap::parser::ValueSource::CommandLine);
    let json = cli.global.json;
    startup::init_tracing(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            output::print_error(
                &anyhow::Error::new(e).context("cannot start the async runtime"),
                json,
            );
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(cli, database_url_given)) {
        output::print_error(&e, json);
        std::process::exit(1);
    }
}

/// Whether a command only reads the database. Those never create one: run in the wrong folder,
/// they say there is no database instead of leaving an empty `belfry.db` behind.
fn only_reads(command: &Command) -> bool {
    use digests_cli::{CadenceCommand, DigestsCommand, RulesCommand};
    match command {
        Command::Queue | Command::Explain { .. } | Command::Run { .. } => true,
        Command::Keys { command } => matches!(command, keys_cli::KeysCommand::List { .. }),
        Command::Prefs { command } => matches!(command, policy_cli::PrefsCommand::Get(_)),
        Command::Settings { command } => matches!(command, policy_cli::SettingsCommand::Get(_)),
        Command::Suppressions { command } => {
            matches!(command, policy_cli::SuppressionsCommand::List { .. })
        }
        Command::Digests { command } => match command {
            DigestsCommand::Rules { command } => matches!(
                command,
                RulesCommand::Get { .. } | RulesCommand::List { .. } | RulesCommand::Match { .. }
            ),
            DigestsCommand::Cadence { command } => matches!(command, CadenceCommand::List { .. }),
            DigestsCommand::Buckets { .. } | DigestsCommand::Bucket { .. } => true,
            DigestsCommand::Emit { .. } => false,
        },
        Command::Inbox { command } => matches!(command, inbox_cli::InboxCommand::List { .. }),
        Command::Webhooks { command } => matches!(
            command,
            webhooks_cli::WebhooksCommand::Orphans { .. }
                | webhooks_cli::WebhooksCommand::Feedback { .. }
        ),
        Command::Endpoints { command } => matches!(
            command,
            endpoints_cli::EndpointsCommand::List { .. }
                | endpoints_cli::EndpointsCommand::Get { .. }
                | endpoints_cli::EndpointsCommand::Secret { .. }
                | endpoints_cli::EndpointsCommand::Messages { .. }
                | endpoints_cli::EndpointsCommand::Events
        ),
        _ => false,
    }
}

async fn run(cli: Cli, database_url_given: bool) -> Result<()> {
    let g = cli.global;
    if only_reads(&cli.command) {
        belfry::host::store::require_existing(&g.database_url)?;
    }
    match cli.command {
        Command::Demo { database } => demo::run(&global::g_cache(&g), database, g.json).await,
        Command::Migrate => commands::migrate(&g).await,
        Command::Trigger(args) => commands::trigger(&g, args).await,
        Command::Worker(args) => serve_cli::worker(&g, args).await,
        Command::Serve(args) => serve_cli::serve(&g, args).await,
        Command::Webhooks { mut command } => {
            let engine = Engine::open(global::engine_config(&g)?).await?;
            use webhooks_cli::WebhooksCommand as W;
            match &mut command {
                W::Replay { id } => *id = ids::resolve(engine.db(), id, &[ids::RECEIPT]).await?,
                W::Feedback { delivery_id, .. } => {
                    *delivery_id = ids::resolve(engine.db(), delivery_id, &[ids::DELIVERY]).await?
                }
                _ => {}
            }
            webhooks_cli::run(&engine, command, g.json).await
        }
        Command::Endpoints { mut command } => {
            let engine = Engine::open(global::engine_config(&g)?).await?;
            use endpoints_cli::EndpointsCommand as E;
            match &mut command {
                E::Get { id }
                | E::Secret { id }
                | E::Enable { id }
                | E::Recover { id }
                | E::Disable { id }
                | E::Remove { id }
                | E::Messages { id, .. } => {
                    *id = ids::resolve(engine.db(), id, &[ids::ENDPOINT]).await?
                }
                _ => {}
            }
            endpoints_cli::run(&engine, command, g.json).await
        }
        Command::Keys { mut command } => {
            let db = belfry::host::store::open(&g.database_url).await?;
            if let keys_cli::KeysCommand::Revoke { id } = &mut command {
                *id = ids::resolve(&db, id, &[ids::KEY]).await?;
            }
            keys_cli::run(&db, command, g.json).await
        }
        Command::Prefs { command } => {
            let db = belfry::host::store::open(&g.database_url).await?;
            policy_cli::prefs(&db, command, g.json).await
        }
        Command::Settings { command } => {
            let db = belfry::host::store::open(&g.database_url).await?;
            policy_cli::settings(&db, command, g.json).await
        }
        Command::Suppressions { command } => {
            let db = belfry::host::store::open(&g.database_url).await?;
            policy_cli::suppressions(&db, command, g.json).await
        }
        Command::Digests { mut command } => {
            let db = belfry::host::store::open(&g.database_url).await?;
            use digests_cli::DigestsCommand as D;
            if let D::Bucket { id, .. } | D::Emit { bucket: id, .. } = &mut command {
                *id = ids::resolve(&db, id, &[ids::BUCKET]).await?;
            }
            digests_cli::run(&db, command, g.json).await
        }
        Command::Inbox { mut command } => {
            let db = belfry::host::store::open(&g.database_url).await?;
            if let inbox_cli::InboxCommand::Read { item_id, .. } = &mut command {
                *item_id = ids::resolve(&db, item_id, &[ids::INBOX_ITEM]).await?;
            }
            inbox_cli::run(&db, command, g.json).await
        }
        Command::Cancel {
            delivery_id,
            reason,
        } => commands::cancel(&g, delivery_id, reason).await,
        Command::Defer {
            delivery_id,
            until,
            reason,
        } => commands::defer(&g, delivery_id, until, reason).await,
        Command::Queue => commands::queue(&g).await,
        Command::Signal {
            actor,
            name,
            tenant,
            payload,
        } => commands::signal(&g, actor, name, tenant, payload).await,
        Command::Run { id } => commands::workflow_run(&g, id).await,
        Command::Explain { id } => commands::explain(&g, id).await,
        Command::Plugin { command } => plugin_cli::run(&g, command).await,
        Command::Bench { command } => bench_cli::run(&g, command, database_url_given).await,
    }
}

//! The `belfry` command line.

mod bench;
mod demo;
mod digest_bench;
mod digests_cli;
mod endpoints_cli;
mod ids;
mod inbox_cli;
mod keys_cli;
mod output;
mod pack_cli;
mod policy_cli;
mod queue_bench;
mod webhooks_cli;

use anyhow::{Context, Result, bail};
use belfry::host::plugins::{PluginRuntime, RuntimeConfig};
use belfry::{Engine, EngineConfig, TriggerRequest};
use clap::{Args, CommandFactory, Parser, Subcommand};
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
    /// A belfry.toml to read settings from [default: ./belfry.toml if it exists]. Flags win
    /// over environment variables, which win over the file.
    #[arg(long, global = true, env = "BELFRY_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database URL.
    #[arg(
        long,
        global = true,
        env = "BELFRY_DATABASE_URL",
        default_value = "sqlite://belfry.db"
    )]
    database_url: String,
    /// Directory of extra plugins (package folders NAME/ with manifest.toml, plugin.wasm and
    /// assets/; or NAME.wasm with NAME.toml beside it), loaded after the bundled ones; a plugin
    /// with a bundled plugin's name replaces it.
    #[arg(long = "plugins", global = true, env = "BELFRY_PLUGINS")]
    plugins_dir: Option<PathBuf>,
    /// Cache for compiled plugins [default: $XDG_CACHE_HOME/belfry or ~/.cache/belfry].
    #[arg(long, global = true, env = "BELFRY_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Plugin configuration NAME.KEY=VALUE (repeatable); also BELFRY_PLUGIN__NAME__KEY=VALUE.
    #[arg(long = "plugin-config", global = true, value_name = "NAME.KEY=VALUE")]
    plugin_config: Vec<String>,
    /// Which adapter sends a channel, CHANNEL=ADAPTER (repeatable, or comma-separated in
    /// BELFRY_ROUTES), e.g. `email=resend`. Provider adapters serve a channel only when routed.
    #[arg(
        long = "route",
        global = true,
        env = "BELFRY_ROUTES",
        value_delimiter = ',',
        value_name = "CHANNEL=ADAPTER"
    )]
    routes: Vec<String>,
    /// The default renderer (a renderer plugin's name) for notifiers whose manifest names
    /// none [default: `templates`, else the only or last loaded renderer].
    #[arg(long, global = true, env = "BELFRY_RENDERER", value_name = "NAME")]
    renderer: Option<String>,
    /// With --plugins, `serve` and `worker` load changed packages of the directory while they
    /// run (looked at every 500 ms); one that fails to load is reported and its previous
    /// build stays in force.
    #[arg(long, global = true, env = "BELFRY_WATCH")]
    watch: bool,
    /// The base URL `belfry serve` is reached at by providers and recipients
    /// (`https://belfry.example.com`): signed provider webhook URLs are checked against it,
    /// and every email carries a one-click unsubscribe link under it. Without it, emails
    /// carry no unsubscribe link.
    #[arg(long, global = true, env = "BELFRY_PUBLIC_URL")]
    public_url: Option<String>,
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
    endpoint_allow_networks: Vec<String>,
    /// Failed attempts in a row that disable an outbound webhook endpoint (it is enabled
    /// again by hand: `belfry endpoints enable`); 1–10000.
    #[arg(
        long,
        global = true,
        env = "BELFRY_ENDPOINT_DISABLE_AFTER",
        default_value_t = 20,
        value_parser = clap::value_parser!(u32).range(1..=10_000)
    )]
    endpoint_disable_after: u32,
    /// Seconds one outbound webhook attempt may take; 1–300.
    #[arg(
        long,
        global = true,
        env = "BELFRY_ENDPOINT_TIMEOUT_SECS",
        default_value_t = 15,
        value_parser = clap::value_parser!(u64).range(1..=300)
    )]
    endpoint_timeout_secs: u64,
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
    plugin_reuse: u32,
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
        /// Plan and run the plan-time policy, print what would happen and why, write nothing.
        #[arg(long, conflicts_with = "no_dispatch")]
        dry_run: bool,
        /// low, normal, high or critical (critical bypasses preferences, cooldowns, caps and
        /// quiet hours, never a suppression). Default: the notifier's declared severity.
        #[arg(long)]
        severity: Option<belfry::host::policy::Severity>,
    },
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
    Serve(ServeArgs),
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
    Worker(WorkerArgs),
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
        command: PluginCommand,
    },
    /// Measure performance.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Args)]
struct WorkerArgs {
    /// Jobs in flight at once in this process; 1–1024.
    #[arg(long, env = "BELFRY_WORKER_CONCURRENCY", default_value_t = 8,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    concurrency: usize,
    /// Lease length in seconds: a job whose worker died is taken over after this. It must
    /// exceed the longest render plus send. 1–86400.
    #[arg(long, env = "BELFRY_WORKER_LEASE_SECS", default_value_t = 120.0,
        value_parser = |v: &str| seconds_between(v, 1.0, 86_400.0))]
    lease_secs: f64,
    /// Seconds shutdown waits for in-flight sends before releasing them; 0–3600.
    #[arg(long, env = "BELFRY_WORKER_GRACE_SECS", default_value_t = 10.0,
        value_parser = |v: &str| seconds_between(v, 0.0, 3_600.0))]
    grace_secs: f64,
    /// The polling backstop in milliseconds (wake-ups normally come sooner); 10–60000.
    #[arg(long, env = "BELFRY_WORKER_POLL_MS", default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(10..=60_000))]
    poll_ms: u64,
    #[command(flatten)]
    retry: RetryArgs,
}

#[derive(Args)]
struct ServeArgs {
    /// The address to listen on (port 0 picks a free one, printed at start).
    #[arg(long, env = "BELFRY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// The largest request body in bytes; bigger ones get 413. 1024–1073741824 (1 GiB).
    #[arg(long, env = "BELFRY_MAX_BODY_BYTES", default_value_t = 1 << 20,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=1 << 30))]
    max_body_bytes: usize,
    /// Requests per second per API key (0: unlimited); over it, 429 with Retry-After.
    /// 0–1000000.
    #[arg(long, env = "BELFRY_RATE_LIMIT_PER_SEC", default_value_t = 0,
        value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    rate_limit_per_sec: u32,
    /// The most requests a key may make in a burst before the rate applies (a bucket of this
    /// size refilled at the rate); a value below the rate means the rate. 0–1000000.
    #[arg(long, env = "BELFRY_RATE_LIMIT_BURST", default_value_t = 0,
        value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    rate_limit_burst: u32,
    /// How often an open inbox stream looks for new items, in milliseconds; 10–60000.
    #[arg(long, env = "BELFRY_INBOX_POLL_MS", default_value_t = 250,
        value_parser = clap::value_parser!(u64).range(10..=60_000))]
    inbox_poll_ms: u64,
    /// Days raw provider webhook requests are kept for `belfry webhooks replay` (0: forever);
    /// 0–3653 (ten years).
    #[arg(long, env = "BELFRY_WEBHOOK_RETENTION_DAYS", default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(0..=3_653))]
    webhook_retention_days: u32,
    /// The largest `POST /v1/plugins` body in bytes (a base64 component and its manifest);
    /// 1024–1073741824 (1 GiB).
    #[arg(long, env = "BELFRY_MAX_PLUGIN_BYTES", default_value_t = 64 << 20,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=1 << 30))]
    max_plugin_bytes: usize,
    /// Serve the API only (when `belfry worker` processes do the sending). The variable takes
    /// true/false, 1/0, yes/no, on/off.
    #[arg(long, env = "BELFRY_NO_WORKERS", value_parser = clap::builder::BoolishValueParser::new())]
    no_workers: bool,
    #[command(flatten)]
    worker: WorkerArgs,
}

#[derive(Args, Clone)]
struct RetryArgs {
    /// Attempts per delivery, the first included, before it is cancelled `retries_exhausted`;
    /// 1–100.
    #[arg(long, env = "BELFRY_RETRY_MAX_ATTEMPTS", default_value_t = 8,
        value_parser = clap::value_parser!(u32).range(1..=100))]
    max_attempts: u32,
    /// Seconds to wait after the first failure; doubled after each further one. 1–86400.
    #[arg(long, env = "BELFRY_RETRY_BASE_SECS", default_value_t = 20.0,
        value_parser = |v: &str| seconds_between(v, 1.0, 86_400.0))]
    retry_base_secs: f64,
    /// The longest wait between attempts, in seconds; 1–86400, and at least the base.
    #[arg(long, env = "BELFRY_RETRY_MAX_SECS", default_value_t = 600.0,
        value_parser = |v: &str| seconds_between(v, 1.0, 86_400.0))]
    retry_max_secs: f64,
}

impl RetryArgs {
    fn policy(&self) -> Result<belfry::host::dispatch::RetryPolicy> {
        let policy = belfry::host::dispatch::RetryPolicy {
            max_attempts: self.max_attempts,
            base: secs("retry-base-secs", self.retry_base_secs)?,
            max_delay: secs("retry-max-secs", self.retry_max_secs)?,
            ..Default::default()
        };
        policy.validate()?;
        Ok(policy)
    }
}

#[derive(Subcommand)]
enum PluginCommand {
    /// List the bundled plugins and those in --plugins.
    List,
    /// Load a component, check its world, version and manifest, call `describe` for a
    /// notifier, and print what it is granted.
    Check {
        /// A package folder (manifest.toml, plugin.wasm, assets/), or a plugin's .wasm with
        /// its manifest NAME.toml beside it.
        path: PathBuf,
    },
    /// Write one archive (gzip-compressed tar) of a plugin package folder (manifest.toml,
    /// plugin.wasm, assets/), for `POST /v1/plugins`; see docs/plugins/packages.md.
    Pack {
        /// The package folder; with --component, a plugin's source folder (its manifest.toml
        /// and assets/ are packed).
        dir: PathBuf,
        /// The component to pack instead of DIR/plugin.wasm (a build of a source folder).
        #[arg(long)]
        component: Option<PathBuf>,
        /// Where to write the archive [default: NAME-VERSION.tar.gz].
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// One renderer call on a fresh instance (and on a reused one) vs the same template
    /// rendered natively in Rust.
    Plugins {
        /// Calls per measurement; 1–1000000.
        #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        iterations: u32,
    },
    /// Triggers/s from 1 and 4 callers, engine vs raw SQL writing the same rows.
    Trigger(QueueBenchArgs),
    /// Burn-down of a pre-filled queue by 1, 2 and 4 workers, engine vs raw SQL leasing and
    /// completing the same rows in batches.
    Dispatch(QueueBenchArgs),
    /// Trigger commit → adapter call at 100 triggers/s: p50, p90, p99.
    Latency(QueueBenchArgs),
    /// Lateness of jobs scheduled over the next second.
    Schedule(QueueBenchArgs),
    /// All four queue scenarios.
    Queue(QueueBenchArgs),
    /// Held deliveries accumulated per second, and emission lag after a window ends.
    Digests(QueueBenchArgs),
    /// Triggers/s over HTTP (`belfry serve` on 127.0.0.1) vs the same triggers in-process.
    Http(QueueBenchArgs),
}

#[derive(Args)]
struct QueueBenchArgs {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: queue_bench::BenchBackend,
    /// The PostgreSQL server for --backend postgres (a fresh schema is used and dropped).
    #[arg(
        long,
        env = "BELFRY_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    postgres_url: String,
    /// 1–1000.
    #[arg(long, default_value_t = 5,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000))]
    repetitions: usize,
    /// Triggers or jobs per repetition; 1–1000000.
    #[arg(long, default_value_t = 500,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    size: usize,
    /// dispatch: also measure with this many deliveries already due (bulk-inserted), beside
    /// the empty queue, and print the ratio (0: the empty queue only). 0–10000000.
    #[arg(long, default_value_t = 0,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=10_000_000))]
    backlog: usize,
}

fn main() {
    quiet_on_closed_stdout();
    // Before clap has parsed anything, `--json` is looked for by hand.
    let json_early = std::env::args().any(|a| a == "--json");
    if let Err(e) = load_config_file() {
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
    init_tracing(cli.global.verbose);
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

/// Reads belfry.toml (from --config, BELFRY_CONFIG, or ./belfry.toml when present) into the
/// environment for every setting not already set there, so clap then applies flag > env >
/// file > default. Runs before the async runtime starts: no other thread exists yet, which is
/// what makes `set_var` sound.
fn load_config_file() -> std::result::Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let named = args.iter().enumerate().find_map(|(i, a)| {
        if a == "--config" {
            args.get(i + 1).cloned()
        } else {
            a.strip_prefix("--config=").map(str::to_string)
        }
    });
    let path = match named.or_else(|| std::env::var("BELFRY_CONFIG").ok()) {
        Some(p) => PathBuf::from(p),
        None if std::path::Path::new("belfry.toml").exists() => PathBuf::from("belfry.toml"),
        None => return Ok(()),
    };
    let mut known = std::collections::BTreeSet::new();
    collect_env(&Cli::command(), &mut known);
    for (var, value) in belfry::config::file_settings(&path, &known)? {
        if std::env::var_os(&var).is_none() {
            // SAFETY: single-threaded here, before the runtime or any thread is started.
            unsafe { std::env::set_var(var, value) };
        }
    }
    Ok(())
}

/// Every environment variable a command (and its subcommands) reads.
fn collect_env(cmd: &clap::Command, into: &mut std::collections::BTreeSet<String>) {
    for arg in cmd.get_arguments() {
        if let Some(env) = arg.get_env() {
            into.insert(env.to_string_lossy().into_owned());
        }
    }
    for sub in cmd.get_subcommands() {
        collect_env(sub, into);
    }
}

/// `belfry explain … | head` closes stdout early, and Rust ignores SIGPIPE, so the next
/// `println!` panics. Like `git log | head`, stop quietly instead: the reader has what it
/// wanted. Exits 141 (128 + SIGPIPE), what a shell reports for a command a pipe killed.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        // std's words for it: "failed printing to stdout: Broken pipe (os error 32)".
        let broken_pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        if message.starts_with("failed printing to stdout")
            && (message.contains(&std::io::Error::from_raw_os_error(32).to_string())
                || message.ends_with(&broken_pipe.to_string()))
        {
            std::process::exit(141);
        }
        default(info)
    }));
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        // sqlx's slow-statement warnings say only that the machine was busy (a SQLite writer
        // waiting its turn); they would break "errors are one line on stderr". `-v` shows them.
        0 => "warn,sqlx::query=error",
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
fn live_config(g: &Global) -> Result<belfry::host::plugins::live::LiveConfig> {
    if g.watch && g.plugins_dir.is_none() {
        bail!("--watch needs --plugins DIR: the directory to watch");
    }
    Ok(belfry::host::plugins::live::LiveConfig {
        watch: g.watch,
        ..Default::default()
    })
}

fn endpoints_config(g: &Global) -> Result<belfry::host::endpoints::EndpointsConfig> {
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

async fn run(cli: Cli, database_url_given: bool) -> Result<()> {
    let g = cli.global;
    if only_reads(&cli.command) {
        belfry::host::store::require_existing(&g.database_url)?;
    }
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
            dry_run,
            severity,
        } => {
            let payload: serde_json::Value = serde_json::from_str(&data)
                .with_context(|| format!("--data is not valid JSON ({data})"))?;
            let engine = Engine::open(engine_config(&g)?).await?;
            let mut req = TriggerRequest::new(notifier, payload).tenant(tenant);
            req.severity = severity;
            if let Some(k) = idempotency_key {
                req = req.idempotency_key(k);
            }
            if dry_run {
                let plan = engine.dry_run(&req).await?;
                return output::print_dry_run(&plan, g.json);
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
        Command::Worker(args) => worker(&g, args).await,
        Command::Serve(args) => serve(&g, args).await,
        Command::Webhooks { mut command } => {
            let engine = Engine::open(engine_config(&g)?).await?;
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
            let engine = Engine::open(engine_config(&g)?).await?;
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
        } => {
            let db = belfry::host::store::open(&g.database_url).await?;
            let delivery_id = ids::resolve(&db, &delivery_id, &[ids::DELIVERY]).await?;
            let d = belfry::host::dispatch::executor::cancel(&db, &delivery_id, &reason).await?;
            output::print_dispatched(&d, g.json)
        }
        Command::Defer {
            delivery_id,
            until,
            reason,
        } => {
            let until = parse_when("--until", &until)?;
            let db = belfry::host::store::open(&g.database_url).await?;
            let delivery_id = ids::resolve(&db, &delivery_id, &[ids::DELIVERY]).await?;
            let d =
                belfry::host::dispatch::executor::defer(&db, &delivery_id, until, &reason).await?;
            output::print_dispatched(&d, g.json)
        }
        Command::Queue => {
            let db = belfry::host::store::open(&g.database_url).await?;
            let stats = belfry::host::jobs::stats(&db).await?;
            if g.json {
                println!("{}", serde_json::to_string(&stats)?);
            } else {
                println!(
                    "available {}  deferred {}  retrying {}  running {}",
                    stats.available, stats.deferred, stats.retrying, stats.running
                );
            }
            Ok(())
        }
        Command::Signal {
            actor,
            name,
            tenant,
            payload,
        } => {
            let db = belfry::host::store::open(&g.database_url).await?;
            let payload: serde_json::Value =
                serde_json::from_str(&payload).context("--payload is not JSON")?;
            let out =
                belfry::host::workflows::signals::signal(&db, &tenant, &actor, &name, &payload)
                    .await?;
            if g.json {
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("signal {} `{name}` moved {} run(s)", out.id, out.runs.len());
                for r in &out.runs {
                    println!(
                        "  run {} (notification {}) before step {}: {:?}",
                        r.run_id, r.notification_id, r.step_key, r.effect
                    );
                }
            }
            Ok(())
        }
        Command::Run { id } => {
            let db = belfry::host::store::open(&g.database_url).await?;
            let id = ids::resolve(&db, &id, &[ids::RUN, ids::NOTIFICATION, ids::DELIVERY]).await?;
            let run = belfry::host::workflows::runs::record(&db, &id)
                .await?
                .with_context(|| {
                    format!("no workflow run, notification or step delivery has the id `{id}`")
                })?;
            if g.json {
                println!("{}", serde_json::to_string_pretty(&run)?);
            } else {
                print!("{run}");
            }
            Ok(())
        }
        Command::Explain { id } => {
            let db = belfry::host::store::open(&g.database_url).await?;
            let kinds = [ids::EVENT, ids::NOTIFICATION, ids::DELIVERY, ids::RUN];
            let id = ids::resolve(&db, &id, &kinds).await?;
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
                let loaded = belfry::host::plugins::load_all(
                    &runtime,
                    belfry::BUNDLED,
                    g.plugins_dir.as_deref(),
                )
                .await?;
                // Uploads recorded in the database are in force on every node that shares it:
                // list them as `serve` would, or the routes shown here could contradict
                // `/v1/plugins`. No database yet means nothing was uploaded; one that cannot be
                // opened is said, and the list is the rest.
                let mut plugins = loaded.plugins;
                if belfry::host::store::require_existing(&g.database_url).is_ok() {
                    let uploaded = async {
                        let db = belfry::host::store::open(&g.database_url).await?;
                        belfry::host::plugins::uploads::load_recorded(&db, &runtime).await
                    };
                    match uploaded.await {
                        Ok(uploaded) => {
                            plugins = belfry::host::plugins::uploads::apply(plugins, uploaded)
                        }
                        Err(e) => eprintln!(
                            "warning: plugins uploaded to {} are not shown: {e}",
                            g.database_url
                        ),
                    }
                }
                // The routes and renderer choices as `serve` would make them from these plugins.
                let registry = belfry::host::plugins::Registry::with_choices(
                    plugins,
                    &belfry::host::plugins::Choices {
                        routes: belfry::config::routes(&g.routes).map_err(anyhow::Error::msg)?,
                        renderer: g.renderer.clone(),
                    },
                )?
                .with_broken(loaded.broken);
                output::print_plugins(&registry, g.json)
            }
            PluginCommand::Check { path } => {
                if !path.is_dir() && path.extension().is_none_or(|e| e != "wasm") {
                    bail!(
                        "{}: expected a package folder, or a .wasm file with its manifest .toml \
                         beside it",
                        path.display()
                    );
                }
                let runtime = PluginRuntime::new(runtime_config(&g)?)?;
                let plugin = runtime.load_path(&path).await?;
                output::print_check(&plugin, g.json)
            }
            PluginCommand::Pack {
                dir,
                component,
                output,
            } => pack_cli::pack(&dir, component.as_deref(), output.as_deref(), g.json),
        },
        Command::Bench { command } => {
            let given = database_url_given.then_some(g.database_url.as_str());
            match command {
                BenchCommand::Plugins { iterations } => {
                    if let Some(url) = given {
                        bail!(
                            "bench plugins uses no database, so --database-url {} would be ignored: leave it out",
                            belfry::host::store::redact(url)
                        );
                    }
                    // The per-language rows run even when the render comparison fails.
                    let render = bench::plugins(iterations, g.json).await;
                    bench::languages(iterations, g.plugins_dir.as_deref(), g.json).await?;
                    render
                }
                BenchCommand::Trigger(a) => {
                    queue_bench_run(&["trigger"], bench_url(a, given).await?, g.json).await
                }
                BenchCommand::Dispatch(a) => {
                    queue_bench_run(&["dispatch"], bench_url(a, given).await?, g.json).await
                }
                BenchCommand::Latency(a) => {
                    queue_bench_run(&["latency"], bench_url(a, given).await?, g.json).await
                }
                BenchCommand::Schedule(a) => {
                    queue_bench_run(&["schedule"], bench_url(a, given).await?, g.json).await
                }
                BenchCommand::Queue(a) => {
                    let scenarios = ["trigger", "dispatch", "latency", "schedule"];
                    queue_bench_run(&scenarios, bench_url(a, given).await?, g.json).await
                }
                BenchCommand::Digests(a) => {
                    digest_bench::run(bench_url(a, given).await?, g.json).await
                }
                BenchCommand::Http(a) => {
                    queue_bench_run(&["http"], bench_url(a, given).await?, g.json).await
                }
            }
        }
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
        warm: warm_config(g),
    })
}

fn warm_config(g: &Global) -> belfry::host::plugins::WarmConfig {
    belfry::host::plugins::WarmConfig {
        max_calls: g.plugin_reuse,
        ..Default::default()
    }
}

/// `belfry serve`: the HTTP server and its workers until SIGTERM/SIGINT, then a graceful
/// stop (open requests finish, in-flight sends get their grace) and exit 0.
async fn serve(g: &Global, args: ServeArgs) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    if args.max_body_bytes < 1024 {
        bail!("--max-body-bytes must be at least 1024");
    }
    let workers = if args.no_workers {
        None
    } else {
        Some(worker_config(&args.worker)?)
    };
    let mut engine_config = engine_config(g)?;
    engine_config.dispatch.retry = args.worker.retry.policy()?;
    engine_config.live = Some(live_config(g)?);
    let engine = Engine::open(engine_config).await?;
    let config = belfry::serve::ServeConfig {
        listen: args.listen,
        max_body_bytes: args.max_body_bytes,
        max_plugin_bytes: args.max_plugin_bytes,
        rate_limit_per_sec: args.rate_limit_per_sec,
        rate_limit_burst: args.rate_limit_burst,
        inbox_poll: std::time::Duration::from_millis(args.inbox_poll_ms.max(10)),
        workers,
        public_url: g.public_url.clone(),
        webhook_retention_days: args.webhook_retention_days,
    };
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let running = belfry::serve::start(engine, config.clone())
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    // The address goes to stdout so a script (or a test) that asked for port 0 can read it.
    println!("belfry serve listening on http://{}", running.addr);
    eprintln!(
        "belfry serve on {}: workers {}",
        belfry::host::store::redact(&g.database_url),
        match &config.workers {
            Some(w) => format!("{} ({})", w.concurrency, w.owner),
            None => "none (--no-workers)".to_string(),
        }
    );
    let mut running = running;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        served = running.until_stopped() => {
            return served.context("serving stopped on its own");
        }
    }
    tracing::info!("signal received: stopping");
    running.shutdown().await.context("serving")?;
    eprintln!("belfry serve stopped");
    Ok(())
}

fn worker_config(args: &WorkerArgs) -> Result<belfry::host::dispatch::WorkerConfig> {
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    Ok(belfry::host::dispatch::WorkerConfig {
        concurrency: args.concurrency,
        lease_for: secs("lease-secs", args.lease_secs)?,
        grace: secs("grace-secs", args.grace_secs)?,
        poll: std::time::Duration::from_millis(args.poll_ms.max(1)),
        ..Default::default()
    })
}

/// `belfry worker`: workers until SIGTERM/SIGINT, then a graceful stop and exit 0.
async fn worker(g: &Global, args: WorkerArgs) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let config = worker_config(&args)?;
    let mut engine_config = engine_config(g)?;
    engine_config.dispatch.retry = args.retry.policy()?;
    engine_config.live = Some(live_config(g)?);
    let engine = Engine::open(engine_config).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("signal received: stopping");
        let _ = stop_tx.send(true);
    });
    eprintln!(
        "belfry worker {} on {}: concurrency {}",
        config.owner,
        belfry::host::store::redact(&g.database_url),
        config.concurrency
    );
    let report = engine.run_worker(config, stop_rx).await;
    if g.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        eprintln!(
            "belfry worker stopped: {} leased, {} succeeded, {} failed, {} to retry, {} cancelled, {} suppressed, {} deferred, {} dropped, {} released, {} errors, {} restarts",
            report.leased,
            report.succeeded,
            report.failed,
            report.retried,
            report.cancelled,
            report.suppressed,
            report.deferred,
            report.dropped,
            report.released,
            report.errors,
            report.restarts
        );
    }
    Ok(())
}

/// An RFC 3339 time, or a delay from now such as `90s`, `15m`, `2h`, `1d`, given as `flag`;
/// either within ten years of now ([`belfry::host::time_bounds`]).
fn parse_when(flag: &str, text: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    use belfry::host::time_bounds;
    let now = chrono::Utc::now();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time_bounds::instant(
            flag,
            t.with_timezone(&chrono::Utc),
            now,
        )?);
    }
    // A delay here is from now, forward, and names its unit.
    if text.ends_with(|c: char| c.is_ascii_digit()) {
        bail!("{flag} `{text}`: the unit must be s, m, h or d");
    }
    let secs = match duration_of(text) {
        Ok(secs) if secs >= 0 => time_bounds::span_secs(flag, secs, 0)?,
        Err(e @ DurationError::TooLong) => bail!("{flag} `{text}`: {e}"),
        _ => bail!("{flag} `{text}`: expected an RFC 3339 time or a delay like 90s, 15m, 2h, 1d"),
    };
    Ok(time_bounds::after(flag, now, secs)?)
}

/// `90s`, `15m`, `2h`, `1d` or plain seconds, as seconds given as `flag`. The sign is kept:
/// whether a value makes sense is for its consumer to say.
pub(crate) fn duration_secs(flag: &str, text: &str) -> Result<i64> {
    duration_of(text).map_err(|e| match e {
        DurationError::Syntax => {
            anyhow::anyhow!("{flag} `{text}`: expected a duration like 90s, 15m, 2h or 1d")
        }
        e => anyhow::anyhow!("{flag} `{text}`: {e}"),
    })
}

/// Why a duration's text was refused: a too-long one is said as such wherever it is given.
#[derive(Debug)]
enum DurationError {
    Syntax,
    Unit,
    TooLong,
}

impl std::fmt::Display for DurationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DurationError::Syntax => f.write_str("expected a number and a unit"),
            DurationError::Unit => f.write_str("the unit must be s, m, h or d"),
            DurationError::TooLong => write!(
                f,
                "too long (at most {} seconds, ten years)",
                belfry::host::time_bounds::MAX_SPAN_SECS
            ),
        }
    }
}

fn duration_of(text: &str) -> std::result::Result<i64, DurationError> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: i64 = number
        .parse()
        .map_err(|e: std::num::ParseIntError| match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                DurationError::TooLong
            }
            _ => DurationError::Syntax,
        })?;
    let per_unit: i64 = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(DurationError::Unit),
    };
    n.checked_mul(per_unit).ok_or(DurationError::TooLong)
}

/// The benchmarks run on databases of their own (a temporary SQLite file, or a fresh schema
/// on a PostgreSQL server, dropped afterwards), never on the one belfry serves. So a
/// `--database-url` given on the command line names that PostgreSQL server (it is a server
/// to borrow a schema from, like --postgres-url), and a SQLite one is refused rather than
/// ignored. (A URL from BELFRY_DATABASE_URL or belfry.toml is the deployment's, and unused.)
async fn bench_url(mut a: QueueBenchArgs, given: Option<&str>) -> Result<QueueBenchArgs> {
    if let Some(url) = given {
        bench_server(&mut a, url)?;
    }
    if matches!(a.backend, queue_bench::BenchBackend::Postgres) {
        // The benchmark's own pools would wait out their acquire timeout on a server that is
        // down, and then say only "pool timed out".
        belfry::host::store::check_connect(&a.postgres_url).await?;
    }
    Ok(a)
}

fn bench_server(a: &mut QueueBenchArgs, url: &str) -> Result<()> {
    match belfry::host::store::Backend::of_url(url)? {
        belfry::host::store::Backend::Postgres => {
            a.backend = queue_bench::BenchBackend::Postgres;
            a.postgres_url = url.to_string();
            Ok(())
        }
        belfry::host::store::Backend::Sqlite => bail!(
            "bench runs on a temporary SQLite database of its own, never on {}: leave out \
             --database-url (or give a postgres:// URL to benchmark on that server, in a \
             schema created and dropped for the run)",
            belfry::host::store::redact(url)
        ),
    }
}

async fn queue_bench_run(scenarios: &[&str], a: QueueBenchArgs, json: bool) -> Result<()> {
    if a.repetitions == 0 || a.size == 0 {
        bail!("--repetitions and --size must be at least 1");
    }
    queue_bench::run(
        scenarios,
        queue_bench::Options {
            backend: a.backend,
            postgres_url: a.postgres_url,
            repetitions: a.repetitions,
            size: a.size,
            json,
        },
        a.backlog,
    )
    .await
}

/// A number of seconds from `min` to `max` (a flag's documented range; clap names the flag).
fn seconds_between(v: &str, min: f64, max: f64) -> std::result::Result<f64, String> {
    let n: f64 = v
        .trim()
        .parse()
        .map_err(|_| format!("`{v}` is not a number of seconds"))?;
    if !(min..=max).contains(&n) {
        return Err(format!("{v} is not in {min}..={max} seconds"));
    }
    Ok(n)
}

/// A `--NAME` option given in seconds.
fn secs(name: &str, v: f64) -> Result<std::time::Duration> {
    std::time::Duration::try_from_secs_f64(v)
        .map_err(|_| anyhow::anyhow!("--{name} must be a number of seconds ≥ 0, got {v}"))
}

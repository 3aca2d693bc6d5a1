//! What `main` does before any command runs: belfry.toml into the environment, a quiet exit
//! on a closed stdout, and logging.

use std::path::PathBuf;

/// Reads belfry.toml (from --config, BELFRY_CONFIG, or ./belfry.toml when present) into the
/// environment for every setting not already set there, so clap then applies flag > env >
/// file > default. Runs before the async runtime starts: no other thread exists yet, which is
/// what makes `set_var` sound. `command`: the command line's definition, for the variables it
/// reads.
pub(crate) fn load_config_file(
    command: impl FnOnce() -> clap::Command,
) -> std::result::Result<(), String> {
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
    collect_env(&command(), &mut known);
    for (var, value) in belfry::config::file_settings(&path, &known)? {
        if std::env::var_os(&var).is_none() {
            // SAFETY: single-threaded here, before the runtime or any thread is started.
            unsafe { std::env::set_var(var, value) };
        }
    }
    Ok(())
}

/// Every environment variable a command (and its subcommands) reads.
pub(crate) fn collect_env(cmd: &clap::Command, into: &mut std::collections::BTreeSet<String>) {
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
pub(crate) fn quiet_on_closed_stdout() {
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

pub(crate) fn init_tracing(verbose: u8) {
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

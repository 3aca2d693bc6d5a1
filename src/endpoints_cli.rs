//! `belfry endpoints`: the outbound lifecycle webhooks of a tenant — register one (its secret
//! is printed), list, show, enable again after a run of failures and recover what it missed, disable, remove, and read
//! the messages sent to one with every try.

use anyhow::Result;
use belfry::host::Engine;
use belfry::host::endpoints::Endpoint;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum EndpointsCommand {
    /// Register an endpoint: belfry posts the events it subscribes to, signed per the Standard
    /// Webhooks spec with the `whsec_` secret printed here (also `belfry endpoints secret`).
    Add {
        url: String,
        /// Event patterns, comma-separated or repeated: `*`, a family (`delivery.*`) or a type
        /// (`inbox.read`).
        #[arg(long, required = true, value_name = "PATTERNS")]
        events: Vec<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long, default_value = belfry::host::trigger::DEFAULT_TENANT)]
        tenant: String,
    },
    /// A tenant's endpoints (every tenant's with --all-tenants).
    List {
        #[arg(long, default_value = belfry::host::trigger::DEFAULT_TENANT)]
        tenant: String,
        #[arg(long)]
        all_tenants: bool,
    },
    /// One endpoint.
    Get { id: String },
    /// The endpoint's signing secret.
    Secret { id: String },
    /// Enable an endpoint again (a run of failures disabled it, or someone did): its run of
    /// failures starts over and new events reach it.
    Enable { id: String },
    /// Send again the messages an endpoint missed while it was disabled (it must be enabled);
    /// each resumes its retry schedule where it was cut off.
    Recover { id: String },
    /// Stop posting to an endpoint until it is enabled again.
    Disable { id: String },
    /// Delete an endpoint with its messages.
    Remove { id: String },
    /// The newest messages sent (or owed) to an endpoint, with every try.
    Messages {
        id: String,
        /// 1–1000.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1_000))]
        limit: u32,
    },
    /// The event types endpoints can subscribe to.
    Events,
}

pub async fn run(engine: &Engine, command: EndpointsCommand, json: bool) -> Result<()> {
    match command {
        EndpointsCommand::Add {
            url,
            events,
            description,
            tenant,
        } => {
            let created = engine
                .add_endpoint(&tenant, &url, &events, description.as_deref())
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&created)?);
            } else {
                print_endpoint(&created.endpoint);
                println!("  secret   {}", created.secret);
            }
        }
        EndpointsCommand::List {
            tenant,
            all_tenants,
        } => {
            let list = engine
                .endpoints((!all_tenants).then_some(tenant.as_str()))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no endpoints");
            } else {
                list.iter().for_each(print_endpoint);
            }
        }
        EndpointsCommand::Get { id } => show(&engine.endpoint(None, &id).await?, json)?,
        EndpointsCommand::Secret { id } => {
            let secret = engine.endpoint_secret(None, &id).await?;
            if json {
                println!("{}", serde_json::json!({ "id": id, "secret": secret }));
            } else {
                println!("{secret}");
            }
        }
        EndpointsCommand::Enable { id } => {
            show(&engine.set_endpoint_enabled(None, &id, true).await?, json)?
        }
        EndpointsCommand::Recover { id } => {
            let n = engine.recover_endpoint(None, &id).await?;
            if json {
                println!("{}", serde_json::json!({ "id": id, "recovered": n }));
            } else {
                println!("queued {n} message(s) of endpoint {id} again");
            }
        }
        EndpointsCommand::Disable { id } => {
            show(&engine.set_endpoint_enabled(None, &id, false).await?, json)?
        }
        EndpointsCommand::Remove { id } => {
            engine.remove_endpoint(None, &id).await?;
            if json {
                println!("{}", serde_json::json!({ "removed": id }));
            } else {
                println!("removed endpoint {id}");
            }
        }
        EndpointsCommand::Messages { id, limit } => {
            let messages = engine.endpoint_messages(None, &id, limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&messages)?);
                return Ok(());
            }
            if messages.is_empty() {
                println!("no messages for endpoint {id}");
            }
            for m in messages {
                let why = m
                    .status_reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                let next = m
                    .next_attempt_at
                    .as_deref()
                    .map(|t| format!(", next try {t}"))
                    .unwrap_or_default();
                println!(
                    "{} {} {}{why}, {} tr{}{next}",
                    m.id,
                    m.event_type,
                    m.status,
                    m.attempts,
                    if m.attempts == 1 { "y" } else { "ies" }
                );
                for t in m.tries {
                    let answer = match (t.status_code, &t.error) {
                        (Some(code), None) => format!("{code}"),
                        (_, Some(e)) => e.clone(),
                        (None, None) => "-".into(),
                    };
                    println!(
                        "  try {} at {} in {} ms: {answer}",
                        t.attempt, t.started_at, t.duration_ms
                    );
                }
            }
        }
        EndpointsCommand::Events => {
            let all = belfry::host::endpoints::events::ALL;
            if json {
                println!("{}", serde_json::to_string_pretty(all)?);
            } else {
                all.iter().for_each(|t| println!("{t}"));
            }
        }
    }
    Ok(())
}

fn show(e: &Endpoint, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(e)?);
    } else {
        print_endpoint(e);
    }
    Ok(())
}

fn print_endpoint(e: &Endpoint) {
    let state = if e.enabled {
        "enabled".to_string()
    } else {
        format!(
            "disabled: {}",
            e.disabled_reason.as_deref().unwrap_or("no reason recorded")
        )
    };
    println!("{} {} (tenant {}, {state})", e.id, e.url, e.tenant);
    println!("  events   {}", e.events.join(", "));
    if let Some(d) = &e.description {
        println!("  about    {d}");
    }
    if e.failure_streak > 0 {
        println!("  failures {} in a row", e.failure_streak);
    }
}

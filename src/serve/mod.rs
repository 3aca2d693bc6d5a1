//! `belfry serve`: the JSON API under `/v1`, the inbox with its live stream, health, metrics,
//! and the web pages, over one [`Engine`]; the workers run beside it in the same process.
//!
//! The engine stays free of HTTP: this module only maps requests to engine calls and engine
//! errors to the one error shape ([`error::ApiError`]). Who may call what is decided by the
//! extractors in [`auth`], named in each handler's signature.
//!
//! Layout: one file of handlers per resource (events, deliveries, recipients, suppressions,
//! signals, plugins, inbox_tokens, inbox, tenants, keys, endpoints, webhooks, unsubscribe);
//! what they share underneath: [`state`] (what every handler sees), [`request`] (bodies,
//! limits, the tenant check), [`schemas`] (answer and error shapes), [`auth`], [`error`].
//! [`openapi`] imports handlers and schemas to build the document; nothing imports it but
//! the router here.

pub mod auth;
pub mod deliveries;
pub mod endpoints;
pub mod error;
pub mod events;
pub mod inbox;
pub mod inbox_tokens;
pub mod keys;
pub mod openapi;
pub mod pages;
pub mod plugins;
pub mod recipients;
pub mod request;
pub mod schemas;
pub mod signals;
pub mod state;
pub mod suppressions;
pub mod tenants;
pub mod unsubscribe;
pub mod webhooks;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use belfry_host::Engine;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use state::{AppState, ServeConfig};

/// The process-wide Prometheus recorder: installed once, shared by every server in the
/// process (tests start several).
fn prometheus() -> metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(&[
                    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                    2.5, 5.0,
                ])
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed by an embedding program; then ours
            // renders only what it was given, which `/metrics` still answers with.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The whole HTTP surface, for a given state.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/events", post(events::trigger).get(events::events))
        .route("/events/preview", post(events::preview))
        .route("/events/{id}", get(events::event))
        .route("/notifications/{id}", get(events::notification))
        .route("/deliveries", get(deliveries::deliveries))
        .route("/deliveries/{id}", get(deliveries::delivery))
        .route("/deliveries/{id}/explain", get(deliveries::explain))
        .route(
            "/deliveries/{id}/feedback",
            get(webhooks::delivery_feedback),
        )
        .route("/webhooks/{tenant}/{adapter}", post(webhooks::receive))
        .route("/endpoints", get(endpoints::list).post(endpoints::create))
        .route(
            "/endpoints/{id}",
            get(endpoints::get).delete(endpoints::remove),
        )
        .route("/endpoints/{id}/secret", get(endpoints::secret))
        .route("/endpoints/{id}/messages", get(endpoints::messages))
        .route("/endpoints/{id}/enable", post(endpoints::enable))
        .route("/endpoints/{id}/disable", post(endpoints::disable))
        .route("/endpoints/{id}/recover", post(endpoints::recover))
        .route(
            "/unsubscribe/{token}",
            post(unsubscribe::one_click).get(unsubscribe::page),
        )
        .route("/deliveries/{id}/cancel", post(deliveries::cancel))
        .route(
            "/recipients/{id}/preferences",
            get(recipients::preferences).put(recipients::set_preference),
        )
        .route(
            "/recipients/{id}/settings",
            get(recipients::settings).patch(recipients::set_settings),
        )
        .route(
            "/suppressions",
            get(suppressions::suppressions).post(suppressions::add_suppression),
        )
        .route(
            "/suppressions/{id}",
            delete(suppressions::remove_suppression),
        )
        .route("/signals", post(signals::signal))
        .route(
            "/plugins",
            get(plugins::plugins)
                .post(plugins::load_plugin)
                .layer(DefaultBodyLimit::max(state.config.max_plugin_bytes)),
        )
        .route(
            "/plugins/replay",
            post(plugins::replay).layer(DefaultBodyLimit::max(state.config.max_plugin_bytes)),
        )
        .route("/inbox/tokens", post(inbox_tokens::inbox_token))
        .route("/inbox", get(inbox::list))
        .route("/inbox/counts", get(inbox::counts))
        .route("/inbox/stream", get(inbox::stream))
        .route("/inbox/read-all", post(inbox::read_all))
        .route("/inbox/items/{id}/{action}", post(inbox::mark))
        .route(
            "/tenants",
            get(tenants::tenants).post(tenants::create_tenant),
        )
        .route("/keys", get(keys::keys).post(keys::create_key))
        .route("/keys/{id}/revoke", post(keys::revoke_key))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    Router::new()
        .nest("/v1", v1)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi_json))
        .route("/", get(pages::console))
        .route("/inbox", get(pages::inbox))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        // NUL in any path or query: 400 before routing (the one text rule, `error::refuse_nul`).
        .layer(axum::middleware::from_fn(error::refuse_nul))
        .with_state(state)
}

async fn not_found() -> error::ApiError {
    error::ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed() -> error::ApiError {
    error::ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}

/// Liveness: the process answers.
async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

/// Readiness: the database answers, every migration is applied, and every plugin of the
/// plugin directory loaded. A broken plugin is one the operator asked for and is missing (its
/// notifier unknown, its channel unrouted), so a rollout that shipped one should stop here,
/// before traffic moves to it; the plugins that did load still work meanwhile.
async fn readyz(State(state): State<AppState>) -> axum::response::Response {
    let broken = state.engine.registry().broken().to_vec();
    let ready = match state.engine.ready().await {
        Ok(()) if !broken.is_empty() => Err(format!(
            "plugins not loaded: {}",
            broken
                .iter()
                .map(|b| format!("{} ({})", b.name, b.reason))
                .collect::<Vec<_>>()
                .join("; ")
        )),
        other => other,
    };
    // A worker of this process whose loop died and waits to be restarted sends nothing.
    let ready = ready.and_then(|()| workers_down(&state).map_or(Ok(()), Err));
    match ready {
        Ok(()) => axum::Json(serde_json::json!({"status": "ready"})).into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "status": "not_ready",
                "reason": why,
                "broken_plugins": broken,
            })),
        )
            .into_response(),
    }
}

/// Why this process's workers are not all running, naming each that is down.
fn workers_down(state: &AppState) -> Option<String> {
    let down: Vec<String> = state
        .workers
        .iter()
        .filter_map(|(owner, health)| {
            health
                .down()
                .map(|why| format!("worker {owner} is down: {why}"))
        })
        .collect();
    (!down.is_empty()).then(|| down.join("; "))
}

async fn openapi_json() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        openapi::document(),
    )
}

async fn metrics_text(State(state): State<AppState>) -> axum::response::Response {
    if let Err(e) = state.engine.observe_metrics().await {
        return error::ApiError::internal(e).into_response();
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// A running server: its address, and how to stop it.
pub struct Running {
    pub addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    workers: Vec<tokio::task::JoinHandle<belfry_host::dispatch::WorkerReport>>,
}

impl Running {
    /// Stops accepting, lets open requests finish, stops the workers (which finish their
    /// in-flight sends within their grace), and waits for all of it.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.stop.send(true);
        // A task already awaited by `until_stopped` answers JoinError here; it was reported.
        let served = if self.task.is_finished() {
            Ok(())
        } else {
            self.task.await.unwrap_or(Ok(()))
        };
        for w in self.workers {
            let _ = w.await;
        }
        served
    }

    /// Waits until the server stops by itself (it does not, unless it fails). Cancel-safe:
    /// [`Running::shutdown`] may follow.
    pub async fn until_stopped(&mut self) -> std::io::Result<()> {
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

/// Binds `config.listen` (port 0 picks a free one) and serves until [`Running::shutdown`].
pub async fn start(engine: Engine, config: ServeConfig) -> std::io::Result<Running> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    let mut health = Vec::new();
    if let Some(wc) = config.workers.clone() {
        let engine = engine.clone();
        let rx = stop_rx.clone();
        health.push((wc.owner.clone(), wc.health.clone()));
        // `run_worker` restarts a loop that dies, and says so in `health` meanwhile.
        workers.push(tokio::spawn(async move { engine.run_worker(wc, rx).await }));
    }
    if config.webhook_retention_days > 0 {
        let engine = engine.clone();
        let days = config.webhook_retention_days;
        let mut rx = stop_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = rx.wait_for(|s| *s) => return,
                }
                match engine.purge_webhook_receipts(days).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(purged = n, days, "old webhook requests purged"),
                    Err(e) => tracing::warn!(error = %e, "purging old webhook requests failed"),
                }
            }
        });
    }
    let state = AppState {
        limits: Arc::new(state::Limits::new(
            config.rate_limit_per_sec,
            config.rate_limit_burst,
        )),
        config: Arc::new(config),
        engine,
        metrics: prometheus(),
        stopping: stop_rx.clone(),
        workers: Arc::new(health),
    };
    let app = router(state);
    let mut rx = stop_rx;
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await
    });
    Ok(Running {
        addr,
        stop,
        task,
        workers,
    })
}

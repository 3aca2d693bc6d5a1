//! What every handler sees: the engine, the server's configuration, and the per-key rate
//! limits; and the configuration `belfry serve` is started with.

use super::error::ApiError;
use axum::http::StatusCode;
use belfry_host::Engine;
use belfry_host::dispatch::{WorkerConfig, WorkerHealth};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Everything `belfry serve` is told (see `docs/operating.md` for the keys).
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    /// The largest JSON request body, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// The largest `POST /v1/plugins` body (a base64 component and its manifest).
    pub max_plugin_bytes: usize,
    /// Requests per second per API key (0: no limit), with this burst.
    pub rate_limit_per_sec: u32,
    pub rate_limit_burst: u32,
    /// How often a live inbox stream looks for changes.
    pub inbox_poll: Duration,
    /// Workers in this process (`None`: API only, for when `belfry worker` processes run).
    pub workers: Option<WorkerConfig>,
    /// The base URL providers and recipients reach this server at (`https://belfry.example.com`),
    /// when it differs from what requests say (a proxy in front). Signed webhook URLs
    /// (Twilio's) are checked against it.
    pub public_url: Option<String>,
    /// Days raw provider webhook requests are kept (0: forever); purged hourly.
    pub webhook_retention_days: u32,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 1 << 20,
            max_plugin_bytes: 64 << 20,
            rate_limit_per_sec: 0,
            rate_limit_burst: 0,
            inbox_poll: Duration::from_millis(250),
            workers: Some(WorkerConfig::default()),
            public_url: None,
            webhook_retention_days: 30,
        }
    }
}

/// What every handler sees.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub config: Arc<ServeConfig>,
    pub limits: Arc<Limits>,
    pub(super) metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Turns true at shutdown: open inbox streams end, so graceful shutdown is not held up
    /// by clients that never disconnect.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// The workers run in this process, by lease owner, for `/readyz`.
    pub(super) workers: Arc<Vec<(String, WorkerHealth)>>,
}

/// Requests per second per API key, with a burst; off when not configured.
pub struct Limits {
    limiter: Option<governor::DefaultKeyedRateLimiter<String>>,
}

impl Limits {
    pub fn new(per_sec: u32, burst: u32) -> Limits {
        let limiter = std::num::NonZeroU32::new(per_sec).map(|rate| {
            let burst = std::num::NonZeroU32::new(burst.max(per_sec)).unwrap_or(rate);
            governor::RateLimiter::keyed(governor::Quota::per_second(rate).allow_burst(burst))
        });
        Limits { limiter }
    }

    pub(super) fn check(&self, key_id: &str) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&key_id.to_string()).map_err(|not_until| {
            use governor::clock::{Clock, DefaultClock};
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "this key is over its request rate; retry in {} ms",
                    wait.as_millis()
                ),
            );
            e.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
            e
        })
    }
}

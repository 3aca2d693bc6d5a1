//! Plugins: the ones in force, and loading a plugin version at runtime (admin).

use super::auth::{Admin, AnyKey};
use super::error::ApiError;
use super::request::{Body, body};
use super::schemas::{
    BrokenPluginView, Capabilities, ErrorBody, KeyErrors, PluginList, PluginView,
};
use super::state::AppState;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use belfry_host::plugins::uploads::UploadError;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

fn plugin_view(p: &belfry_host::plugins::Plugin) -> PluginView {
    let m = p.manifest();
    PluginView {
        name: p.name().to_string(),
        version: m.version.clone(),
        kind: p.kind().to_string(),
        wit: m.wit.clone(),
        reference: p.reference().to_string(),
        description: m.description.clone(),
        origin: p.origin().to_string(),
        channels: m.channels.clone(),
        notifier: p.description().and_then(|d| serde_json::to_value(d).ok()),
        capabilities: Capabilities {
            http: m.http.iter().map(|h| h.to_string()).collect(),
            files: m.files.iter().map(|f| f.guest.clone()).collect(),
            memory_mib: (m.limits.memory_bytes >> 20) as u64,
            timeout_ms: m.limits.timeout_ms,
            output_bytes: m.limits.output_bytes as u64,
        },
        replaced: None,
    }
}

#[utoipa::path(
    get,
    path = "/v1/plugins",
    tag = "plugins",
    summary = "The plugins in force",
    responses(
        (status = 200, description = "", body = PluginList),
        (status = 401, description = "no API key, or an unknown or revoked one", body = ErrorBody),
        (status = 429, description = "over the key's request rate; `Retry-After` says when to retry", body = ErrorBody),
        (status = 500, description = "a fault of the server; the cause is in its log", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
/// The plugins in force; the same for every tenant, so any key may list them.
pub async fn plugins(State(state): State<AppState>, _key: AnyKey) -> Json<PluginList> {
    let registry = state.engine.registry();
    let plugins = registry.plugins().iter().map(plugin_view).collect();
    let broken = registry
        .broken()
        .iter()
        .map(|b| BrokenPluginView {
            name: b.name.clone(),
            path: b.path.display().to_string(),
            reason: b.reason.clone(),
        })
        .collect();
    Json(PluginList {
        plugins,
        broken,
        routes: registry.routes().cloned().collect(),
        renderers: registry.renderer_choices(),
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginUpload {
    /// The manifest's TOML text.
    manifest: String,
    /// The component's bytes, base64 (standard alphabet, padded).
    component: String,
}

/// A plugin package archive, as `belfry plugin pack` writes it: gzip-compressed tar holding
/// `manifest.toml`, `plugin.wasm` and `assets/**` (docs/plugins/packages.md).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct PluginArchive(#[allow(dead_code)] Vec<u8>);

/// Whether a `POST /v1/plugins` body is a package archive (else the JSON form).
fn is_archive(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    [
        "application/gzip",
        "application/x-gzip",
        "application/octet-stream",
    ]
    .iter()
    .any(|t| essence.eq_ignore_ascii_case(t))
}

/// A request's body read as a package archive: once, within the route's body limit
/// (`--max-plugin-bytes`), and unpacked within the package bounds; refused whole (422
/// `package_rejected`, naming the entry at fault) if anything in it is not a package's.
async fn read_archive(
    state: &AppState,
    request: axum::extract::Request,
) -> Result<belfry_host::plugins::package::Package, ApiError> {
    use axum::extract::FromRequest as _;
    let bytes = axum::body::Bytes::from_request(request, state)
        .await
        .map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", r.body_text())
            } else {
                ApiError::bad_request(r.body_text())
            }
        })?;
    let limits = belfry_host::plugins::package::Limits {
        archive_bytes: state.config.max_plugin_bytes as u64,
        ..Default::default()
    };
    // Inflating up to the unpacked bound is CPU work: kept off the async workers.
    tokio::task::spawn_blocking(move || {
        belfry_host::plugins::package::Package::from_archive(&bytes, &limits)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| {
        tracing::info!(error = %e, "plugin package refused");
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "package_rejected",
            format!("the package archive was refused: {e}"),
        )
    })
}

#[utoipa::path(
    post,
    path = "/v1/plugins",
    tag = "plugins",
    summary = "Load a plugin version at runtime (admin)",
    request_body(
        description = "A package archive (`Content-Type: application/octet-stream` or \
                       `application/gzip`), or the JSON form: a manifest and a base64 component, \
                       without assets.",
        content(
            (PluginUpload = "application/json"),
            (PluginArchive = "application/octet-stream"),
        ),
    ),
    responses(
        (status = 201, description = "in force for new work; `replaced` names what it replaced", body = PluginView),
        KeyErrors,
        (status = 409, description = "the change conflicts with the current state", body = ErrorBody),
        (status = 413, description = "the body is over the limit", body = ErrorBody),
        (status = 422, description = "well-formed but wrong: the message and `field` say what; `package_rejected` names the archive entry at fault", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
/// Loads a plugin version at runtime (admin only): checked like `belfry plugin check`, then in
/// force for every trigger and job that starts afterwards, and recorded so a restart keeps it.
/// A package archive brings its assets (templates, translations) with it; the archive is read
/// within bounds (its size, what it unpacks to, its entries) and refused whole, naming the entry
/// at fault, if anything in it is not a package's.
pub async fn load_plugin(
    State(state): State<AppState>,
    Admin(admin): Admin,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    use axum::extract::FromRequest as _;
    let (plugin, replaced) = if is_archive(request.headers()) {
        let package = read_archive(&state, request).await?;
        state.engine.load_package(&package, &admin.id).await?
    } else {
        use base64::Engine as _;
        let b = Body::<PluginUpload>::from_request(request, &state)
            .await
            .unwrap_or_else(|never| match never {});
        let b = body(b)?;
        let component = base64::engine::general_purpose::STANDARD
            .decode(b.component.trim())
            .map_err(|e| {
                ApiError::bad_request(format!("component is not base64: {e}")).field("component")
            })?;
        state
            .engine
            .load_plugin(&component, &b.manifest, &admin.id)
            .await?
    };
    let mut out = plugin_view(&plugin);
    out.replaced = Some(replaced.map(|p| p.reference().to_string()));
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReplayQuery {
    /// Only events recorded this long ago or later: a duration like `90m`, `24h` or `7d`
    /// (or plain seconds), or an RFC 3339 time.
    since: Option<String>,
    /// Only this tenant's events.
    tenant: Option<String>,
    /// The most events to replay, newest first (default 1000).
    #[param(minimum = 1, maximum = 100000)]
    limit: Option<i64>,
}

/// `since` as the earliest time to replay from: a positive duration back from now, or a time.
fn since_of(text: &str) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    use belfry_host::time_bounds;
    let bad = |message: String| {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_query", message).field("since")
    };
    let now = chrono::Utc::now();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return time_bounds::instant("since", t.with_timezone(&chrono::Utc), now)
            .map_err(|e| bad(e.to_string()));
    }
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let scale: i128 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    let number = digits.parse::<i128>().ok().filter(|_| digits.len() <= 20);
    let Some(number) = number.filter(|_| scale > 0) else {
        return Err(bad(format!(
            "since `{text}`: expected a duration like 90m, 24h or 7d, or an RFC 3339 time"
        )));
    };
    let secs =
        time_bounds::span_secs("since", number * scale, 1).map_err(|e| bad(e.to_string()))?;
    time_bounds::before("since", now, secs).map_err(|e| bad(e.to_string()))
}

#[utoipa::path(
    post,
    path = "/v1/plugins/replay",
    tag = "plugins",
    summary = "Replay recorded events through a candidate plugin (admin)",
    params(ReplayQuery),
    request_body(
        description = "The candidate: a package archive, as `belfry plugin pack` writes it. It is \
                       loaded to be compared only: neither recorded nor put in force.",
        content((PluginArchive = "application/octet-stream")),
    ),
    responses(
        (status = 200, description = "what differs between the candidate and the builds that ran; nothing was written or sent", body = belfry_host::replay::ReplayReport),
        KeyErrors,
        (status = 413, description = "the body is over the limit", body = ErrorBody),
        (status = 422, description = "not a package archive (`package_rejected` names the entry at fault), a plugin that does not load (`plugin_rejected`), or one a replay cannot compare, such as a channel adapter (`replay_refused`)", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
/// Runs the events the database recorded through a candidate build (admin only) and through
/// the build that planned each, and answers what differs: recipients, channels, severity,
/// holds, workflow, and each delivery's rendered content. Nothing is written or sent, and the
/// candidate is in force nowhere. A notifier replays the events of its key; a renderer those
/// of the notifiers that render with a renderer of its name.
pub async fn replay(
    State(state): State<AppState>,
    _admin: Admin,
    q: Result<Query<ReplayQuery>, axum::extract::rejection::QueryRejection>,
    request: axum::extract::Request,
) -> Result<Json<belfry_host::replay::ReplayReport>, ApiError> {
    use belfry_host::replay::{DEFAULT_LIMIT, MAX_LIMIT, ReplayError, ReplayOptions};
    let q = q?.0;
    let limit = match q.limit {
        None => DEFAULT_LIMIT,
        Some(n) if (1..=MAX_LIMIT as i64).contains(&n) => n as usize,
        Some(n) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_query",
                format!("limit must be 1 to {MAX_LIMIT}, got {n}"),
            )
            .field("limit"));
        }
    };
    if let Some(t) = &q.tenant {
        belfry_host::tenants::check_id(t)?;
    }
    let options = ReplayOptions {
        since: q.since.as_deref().map(since_of).transpose()?,
        tenant: q.tenant,
        limit,
    };
    // Checked before the body is read: a bad query costs no unpacking.
    let package = read_archive(&state, request).await?;
    let candidate = state
        .engine
        .load_candidate(&package)
        .await
        .map_err(|e| ApiError::from(UploadError::Load(e)))?;
    match state.engine.replay(&candidate, &options).await {
        Ok(report) => Ok(Json(report)),
        Err(ReplayError::Invalid(m)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "replay_refused",
            m,
        )),
        Err(ReplayError::Store(e)) => Err(e.into()),
    }
}

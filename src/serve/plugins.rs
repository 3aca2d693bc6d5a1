//! Plugins: the ones in force, and loading a plugin version at runtime (admin).

use super::auth::{Admin, AnyKey};
use super::error::ApiError;
use super::request::{Body, body};
use super::schemas::{
    BrokenPluginView, Capabilities, ErrorBody, KeyErrors, PluginList, PluginView,
};
use super::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;

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
        // Read once, within the route's body limit (`--max-plugin-bytes`).
        let bytes = axum::body::Bytes::from_request(request, &state)
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
        let package = tokio::task::spawn_blocking(move || {
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
        })?;
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

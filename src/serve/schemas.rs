//! The answer and error shapes of the HTTP API that are not engine types: what handlers
//! return and what the OpenAPI document (`super::openapi`) describes. Handlers and the
//! document both import from here; this module imports neither.

use belfry_host::deliveries::DeliveryRecord;
use belfry_host::explain::EventListing;
use belfry_host::inbox::{Counts, InboxItem};
use belfry_host::keys::ApiKey;
use belfry_host::policy::{Preference, Settings, Suppression};
use belfry_host::tenants::Tenant;
use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};

/// Every error under `/v1`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, for programs: `bad_request`, `unauthorized`, `not_found`, `invalid`…
    pub code: String,
    /// For people.
    pub message: String,
    /// The one field to blame, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// What any route taking an API key may answer besides its own outcomes (documentation only).
#[derive(IntoResponses)]
pub enum KeyErrors {
    #[response(
        status = 400,
        description = "bad input: malformed JSON or query, an unknown field, a bad cursor"
    )]
    BadRequest(ErrorBody),
    #[response(status = 401, description = "no API key, or an unknown or revoked one")]
    Unauthorized(ErrorBody),
    #[response(status = 403, description = "the key may not do this here")]
    Forbidden(ErrorBody),
    #[response(
        status = 429,
        description = "over the key's request rate; `Retry-After` says when to retry"
    )]
    RateLimited(ErrorBody),
    #[response(
        status = 500,
        description = "a fault of the server; the cause is in its log"
    )]
    Internal(ErrorBody),
}

/// What any inbox route may answer besides its own outcomes (documentation only).
#[derive(IntoResponses)]
pub enum InboxErrors {
    #[response(
        status = 400,
        description = "bad input: malformed JSON or query, an unknown field, a bad cursor"
    )]
    BadRequest(ErrorBody),
    #[response(status = 401, description = "no inbox token, or a bad or expired one")]
    Unauthorized(ErrorBody),
    #[response(
        status = 500,
        description = "a fault of the server; the cause is in its log"
    )]
    Internal(ErrorBody),
}

#[derive(Serialize, ToSchema)]
pub struct EventList {
    pub events: Vec<EventListing>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryPage {
    pub deliveries: Vec<DeliveryRecord>,
    /// Pass it back as `cursor` for the next (older) page; null on the last.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PreferenceList {
    pub recipient_id: String,
    pub preferences: Vec<Preference>,
}

#[derive(Serialize, ToSchema)]
pub struct SettingsView {
    pub recipient_id: String,
    /// What the recipient (or `*`, the tenant) set.
    pub own: Settings,
    /// What applies: the recipient's own over the tenant's defaults.
    pub effective: Settings,
}

#[derive(Serialize, ToSchema)]
pub struct EndpointList {
    pub endpoints: Vec<belfry_host::endpoints::Endpoint>,
}

#[derive(Serialize, ToSchema)]
pub struct EndpointSecret {
    pub id: String,
    /// `whsec_` and the base64 key, as Standard Webhooks libraries take it.
    pub secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct Recovered {
    pub id: String,
    /// Messages queued again.
    pub recovered: u64,
}

#[derive(Serialize, ToSchema)]
pub struct MessageList {
    pub messages: Vec<belfry_host::endpoints::Message>,
}

#[derive(Serialize, ToSchema)]
pub struct SuppressionList {
    pub suppressions: Vec<Suppression>,
}

#[derive(Serialize, ToSchema)]
pub struct Capabilities {
    /// Allowed outgoing HTTP hosts (`host[:port]` patterns).
    pub http: Vec<String>,
    /// Read-only directories, as the plugin sees them.
    pub files: Vec<String>,
    pub memory_mib: u64,
    pub timeout_ms: u64,
    pub output_bytes: u64,
}

#[derive(Serialize, ToSchema)]
pub struct PluginView {
    pub name: String,
    pub version: String,
    /// notifier, renderer or channel-adapter.
    pub kind: String,
    /// The WIT version of `belfry:plugin` it implements.
    pub wit: String,
    /// `NAME@VERSION#HASH`: the exact build, as deliveries record it.
    pub reference: String,
    pub description: String,
    pub origin: String,
    /// The channels an adapter serves.
    pub channels: Vec<belfry_host::content::Channel>,
    /// A notifier's own description (key, category, channels, workflow…).
    #[schema(value_type = Option<Object>)]
    pub notifier: Option<serde_json::Value>,
    pub capabilities: Capabilities,
    /// After a runtime load: the reference it replaced, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced: Option<Option<String>>,
}

/// What providers reported about one delivery.
#[derive(Serialize, ToSchema)]
pub struct FeedbackView {
    /// None until an event reached the delivery.
    pub projection: Option<belfry_host::feedback::Projection>,
    /// In the order they happened.
    pub events: Vec<belfry_host::feedback::LedgerEvent>,
}

#[derive(Serialize, ToSchema)]
pub struct PluginList {
    pub plugins: Vec<PluginView>,
    /// Plugins of the server's plugin directory that could not be loaded: skipped, with why.
    pub broken: Vec<BrokenPluginView>,
    /// Which adapter serves each channel, why (`default`: a first-party adapter lists it;
    /// `declared`: a plugin-directory or uploaded adapter lists it, the last loaded winning;
    /// `route`: the operator's `--route`), and the adapters it replaced.
    pub routes: Vec<belfry_host::plugins::RouteInfo>,
    /// Each notifier's renderer and why (`manifest`: the notifier names it; otherwise the
    /// host's default, chosen by `operator`, or `templates`, `only`, `last-loaded`); `problem`
    /// says why a notifier has none.
    pub renderers: Vec<belfry_host::plugins::RendererChoice>,
}

#[derive(Serialize, ToSchema)]
pub struct BrokenPluginView {
    /// The file's stem (`NAME` of `NAME.wasm`).
    pub name: String,
    /// The `.wasm` file, on the server.
    pub path: String,
    /// Why it was not loaded.
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct InboxTokenView {
    pub token: String,
    pub recipient_id: String,
    pub expires_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct TenantList {
    pub tenants: Vec<Tenant>,
}

#[derive(Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<ApiKey>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: ApiKey,
    /// Shown only in this answer; belfry keeps its hash.
    pub secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct InboxPage {
    pub items: Vec<InboxItem>,
    pub next_cursor: Option<String>,
    pub counts: Counts,
}

#[derive(Serialize, ToSchema)]
pub struct ReadAll {
    /// Items that were unread.
    pub changed: u64,
    pub counts: Counts,
}

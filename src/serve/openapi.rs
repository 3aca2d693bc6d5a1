//! The API's contract: the OpenAPI document served at `/openapi.json`, derived from the
//! handlers' `#[utoipa::path]` attributes and the types they take and answer with, and the
//! answer shapes that are not engine types.

use belfry_host::inbox::{Counts, InboxItem};
use belfry_host::keys::ApiKey;
use belfry_host::policy::{Preference, Settings, Suppression};
use belfry_host::tenants::Tenant;
use belfry_host::traces::{DeliveryRecord, EventListing};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

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

#[derive(OpenApi)]
#[openapi(
    info(
        title = "belfry",
        description = "A durable, explainable notification engine. API keys act in one tenant \
                       (an admin key names it with `Belfry-Tenant`); the inbox routes take an \
                       end user's inbox token instead. See docs/operating.md."
    ),
    paths(
        super::api::trigger,
        super::api::events,
        super::api::event,
        super::api::notification,
        super::api::deliveries,
        super::api::delivery,
        super::api::explain,
        super::api::cancel,
        super::api::preferences,
        super::api::set_preference,
        super::api::settings,
        super::api::set_settings,
        super::api::suppressions,
        super::api::add_suppression,
        super::api::remove_suppression,
        super::api::signal,
        super::api::plugins,
        super::api::load_plugin,
        super::api::inbox_token,
        super::api::create_tenant,
        super::api::tenants,
        super::api::create_key,
        super::api::keys,
        super::api::revoke_key,
        super::inbox::list,
        super::inbox::counts,
        super::inbox::mark,
        super::inbox::read_all,
        super::inbox::stream,
        super::webhooks::receive,
        super::endpoints::create,
        super::endpoints::list,
        super::endpoints::get,
        super::endpoints::secret,
        super::endpoints::enable,
        super::endpoints::disable,
        super::endpoints::recover,
        super::endpoints::remove,
        super::endpoints::messages,
        super::webhooks::delivery_feedback,
        super::unsubscribe::one_click,
        super::unsubscribe::page,
    ),
    modifiers(&Security)
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(what.to_string()))
                    .build(),
            )
        };
        components.add_security_scheme(
            "api_key",
            bearer("An API key, bfy_…, from `belfry keys create`"),
        );
        components.add_security_scheme(
            "inbox_token",
            bearer("An end user's inbox token from POST /v1/inbox/tokens (also ?token=)"),
        );
    }
}

/// The document, built once.
pub fn document() -> &'static str {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .expect("the OpenAPI document serialises")
    })
}

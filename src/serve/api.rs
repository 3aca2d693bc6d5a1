//! The tenant-scoped JSON API under `/v1`: events, notifications, deliveries, explain,
//! cancel, preferences, settings, suppressions, signals, plugins, inbox tokens; and the
//! operator endpoints (tenants, keys) behind an admin key.
//!
//! Every id a caller names is first checked to belong to the caller's tenant; another
//! tenant's ids answer 404 exactly as unknown ones do, so their existence is not disclosed.

use super::AppState;
use super::auth::{Admin, AnyKey, Caller};
use super::error::{ApiError, Path};
use super::openapi::{
    Capabilities, CreatedKey, DeliveryPage, ErrorBody, EventList, InboxTokenView, KeyErrors,
    KeyList, PluginList, PluginView, PreferenceList, SettingsView, SuppressionList, TenantList,
};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, extract::rejection::JsonRejection};
use belfry_host::content::Channel;
use belfry_host::dispatch::Dispatched;
use belfry_host::keys::ApiKey;
use belfry_host::policy::Suppression;
use belfry_host::policy::{
    Cap, PrefScope, SettingsPatch, Severity, SuppressionReason, SuppressionTarget,
};
use belfry_host::tenants::Tenant;
use belfry_host::traces::DeliveryFilter;
use belfry_host::traces::{DeliveryRecord, Explanation};
use belfry_host::trigger::NotificationSummary;
use belfry_host::workflows::SignalOutcome;
use belfry_host::{TriggerOutcome, TriggerRequest};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

/// A JSON body, with our error shape for malformed ones, held to the one text rule
/// ([`belfry_host::text`]): a NUL (`\u0000`) anywhere in it is refused (400, naming the
/// field) before it is parsed into the handler's type, for every route that takes a body.
pub struct Body<T>(Result<T, ApiError>);

pub fn body<T>(b: Body<T>) -> Result<T, ApiError> {
    b.0
}

impl<S, T> axum::extract::FromRequest<S> for Body<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request(
        request: axum::extract::Request,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let (parts, raw) = request.into_parts();
        // Read once, within the route's body limit; then parsed from the same bytes.
        let bytes = match axum::body::Bytes::from_request(
            axum::extract::Request::from_parts(parts.clone(), raw),
            state,
        )
        .await
        {
            Ok(bytes) => bytes,
            Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Ok(Body(Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    r.body_text(),
                ))));
            }
            Err(r) => return Ok(Body(Err(ApiError::bad_request(r.body_text())))),
        };
        if let Err(e) = refuse_nul(&bytes) {
            return Ok(Body(Err(e)));
        }
        let request = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
        let parsed: Result<Json<T>, JsonRejection> = Json::from_request(request, state).await;
        Ok(Body(parsed.map(|Json(t)| t).map_err(ApiError::from)))
    }
}

/// 400 when JSON text spells a NUL anywhere (see [`belfry_host::text::json_text_has_nul`]).
fn refuse_nul(raw: &[u8]) -> Result<(), ApiError> {
    if !belfry_host::text::json_text_has_nul(raw) {
        return Ok(());
    }
    let field = belfry_host::text::json_nul_field(raw);
    let e = ApiError::bad_request(format!(
        "{} must not contain NUL (\\u0000)",
        field.as_deref().unwrap_or("the body")
    ));
    Err(match field {
        Some(f) => e.field(f),
        None => e,
    })
}

/// `Absent` / `null` / a value, for patch bodies: absent leaves a field alone, null clears it.
fn double<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Answers 404 unless `id` is an event, notification, delivery or run of the caller's tenant.
async fn owned(state: &AppState, caller: &Caller, what: &str, id: &str) -> Result<(), ApiError> {
    match state.engine.tenant_of(id).await? {
        Some(t) if t == caller.tenant => Ok(()),
        _ => Err(ApiError::not_found(what, id)),
    }
}

// ---- events ------------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerBody {
    notifier: String,
    #[serde(default)]
    payload: Value,
    /// Also accepted as the `Idempotency-Key` header (the header wins).
    idempotency_key: Option<String>,
    /// RFC 3339; the deliveries are deferred until then.
    deliver_at: Option<chrono::DateTime<chrono::Utc>>,
    severity: Option<Severity>,
}

#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "events",
    summary = "Trigger a notifier",
    request_body = TriggerBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "repeating a key writes nothing and answers the original")),
    responses(
        (status = 201, description = "the event, its notifications and deliveries", body = TriggerOutcome),
        (status = 200, description = "a repeat of an idempotency key: the original ids, nothing written", body = TriggerOutcome),
        KeyErrors,
        (status = 413, description = "the body is over the limit", body = ErrorBody),
        (status = 422, description = "well-formed but wrong: the message and `field` say what", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn trigger(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    b: Body<TriggerBody>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    if !b.payload.is_object() {
        return Err(ApiError::invalid(
            "payload",
            "payload must be a JSON object",
        ));
    }
    let header_key = match headers.get("idempotency-key") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::bad_request("Idempotency-Key is not ASCII"))?
                .to_string(),
        ),
        None => None,
    };
    let mut req = TriggerRequest::new(b.notifier, b.payload).tenant(caller.tenant.clone());
    // Checked by the engine, by the rule the CLI and embedding programs meet too.
    req.idempotency_key = header_key.or(b.idempotency_key);
    req.deliver_at = b.deliver_at;
    req.severity = b.severity;
    // At most `trigger::MAX_RECIPIENTS` recipients: the engine refuses a bigger fan-out (422)
    // before writing anything.
    let outcome: TriggerOutcome = state.engine.trigger(&req).await?;
    let status = if outcome.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(outcome)).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    status: Option<String>,
    channel: Option<Channel>,
    recipient_id: Option<String>,
}

fn limit(q: Option<i64>) -> Result<i64, ApiError> {
    match q {
        None => Ok(50),
        Some(n) if (1..=belfry_host::traces::MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            format!(
                "limit must be between 1 and {}, got {n}",
                belfry_host::traces::MAX_PAGE
            ),
        )
        .field("limit")),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "events",
    summary = "Recent events, newest first",
    params(EventsQuery),
    responses(
        (status = 200, description = "", body = EventList),
        KeyErrors,
    ),
    security(("api_key" = [])),
)]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EventList>, ApiError> {
    let q = q?.0;
    let events = state
        .engine
        .recent_events(&caller.tenant, limit(q.limit)?)
        .await?;
    Ok(Json(EventList { events }))
}

#[utoipa::path(
    get,
    path = "/v1/events/{id}",
    tag = "events",
    summary = "An event and what it became",
    params(("id" = String, Path, description = "event id")),
    responses(
        (status = 200, description = "", body = TriggerOutcome),
        KeyErrors,
        (status = 404, description = "no such id in the caller's tenant", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn event(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TriggerOutcome>, ApiError> {
    owned(&state, &caller, "event", &id).await?;
    let outcome = state.engine.event(&id).await.map_err(|e| match e {
        belfry_host::trigger::TriggerError::Invalid(_) => ApiError::not_found("event", &id),
        e => e.into(),
    })?;
    Ok(Json(outcome))
}

#[utoipa::path(
    get,
    path = "/v1/notifications/{id}",
    tag = "events",
    summary = "A notification and its deliveries",
    params(("id" = String, Path, description = "notification id")),
    responses(
        (status = 200, description = "", body = NotificationSummary),
        KeyErrors,
        (status = 404, description = "no such id in the caller's tenant", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn notification(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    owned(&state, &caller, "notification", &id).await?;
    match state.engine.notification(&id).await? {
        Some(n) => Ok(Json(n).into_response()),
        None => Err(ApiError::not_found("notification", &id)),
    }
}

// ---- deliveries --------------------------------------------------------------------------

const STATUSES: &[&str] = &[
    "pending",
    "deferred",
    "held",
    "succeeded",
    "failed",
    "cancelled",
    "suppressed",
    "digested",
];

#[utoipa::path(
    get,
    path = "/v1/deliveries",
    tag = "deliveries",
    summary = "Deliveries, newest first, by cursor",
    params(ListQuery),
    responses(
        (status = 200, description = "", body = DeliveryPage),
        KeyErrors,
    ),
    security(("api_key" = [])),
)]
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let q = q?.0;
    if let Some(s) = &q.status
        && !STATUSES.contains(&s.as_str())
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            format!("status `{s}` is not one of {}", STATUSES.join(", ")),
        )
        .field("status"));
    }
    let cursor = match &q.cursor {
        Some(c) => Some(belfry_host::store::parse_cursor(c).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_cursor",
                format!("cursor `{c}` is not one this list handed out"),
            )
            .field("cursor")
        })?),
        None => None,
    };
    let filter = DeliveryFilter {
        status: q.status,
        channel: q.channel.map(|c| c.as_str().to_string()),
        recipient_id: q.recipient_id,
    };
    let (rows, next) = state
        .engine
        .deliveries(&caller.tenant, &filter, limit(q.limit)?, cursor)
        .await?;
    Ok(Json(DeliveryPage {
        deliveries: rows,
        next_cursor: next,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/deliveries/{id}",
    tag = "deliveries",
    summary = "One delivery",
    params(("id" = String, Path, description = "delivery id")),
    responses(
        (status = 200, description = "", body = DeliveryRecord),
        KeyErrors,
        (status = 404, description = "no such id in the caller's tenant", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn delivery(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    owned(&state, &caller, "delivery", &id).await?;
    match state.engine.delivery(&id).await? {
        Some(d) => Ok(Json(d).into_response()),
        None => Err(ApiError::not_found("delivery", &id)),
    }
}

#[utoipa::path(
    get,
    path = "/v1/deliveries/{id}/explain",
    tag = "deliveries",
    summary = "Why a delivery (notification, event) went as it did",
    params(("id" = String, Path, description = "delivery, notification or event id")),
    responses(
        (status = 200, description = "every decision, render, attempt and transition, in order", body = Explanation),
        KeyErrors,
        (status = 404, description = "no such id in the caller's tenant", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
/// Explains a delivery; also a notification or event id (the console links them all here).
pub async fn explain(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    owned(&state, &caller, "delivery", &id).await?;
    Ok(Json(state.engine.explain(&id).await?).into_response())
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    reason: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/deliveries/{id}/cancel",
    tag = "deliveries",
    summary = "Cancel a pending, deferred or held delivery",
    request_body = CancelBody,
    params(("id" = String, Path, description = "delivery id")),
    responses(
        (status = 200, description = "", body = Dispatched),
        KeyErrors,
        (status = 404, description = "no such id in the caller's tenant", body = ErrorBody),
        (status = 409, description = "the change conflicts with the current state", body = ErrorBody),
        (status = 413, description = "the body is over the limit", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    raw: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // The body is optional: an empty one cancels with a default reason.
    let b: CancelBody = if raw.is_empty() {
        CancelBody::default()
    } else {
        refuse_nul(&raw)?;
        serde_json::from_slice(&raw).map_err(|e| ApiError::bad_request(format!("body: {e}")))?
    };
    owned(&state, &caller, "delivery", &id).await?;
    let why = b
        .reason
        .unwrap_or_else(|| "cancelled over the HTTP API".into());
    let out = state.engine.cancel(&id, &why).await?;
    Ok(Json(out).into_response())
}

// ---- preferences and settings ------------------------------------------------------------

#[utoipa::path(
    get,
    path = "/v1/recipients/{id}/preferences",
    tag = "recipients",
    summary = "A recipient's preferences",
    params(("id" = String, Path, description = "recipient id, or * for the tenant's defaults")),
    responses(
        (status = 200, description = "", body = PreferenceList),
        KeyErrors,
    ),
    security(("api_key" = [])),
)]
pub async fn preferences(
    State(state): State<AppState>,
    caller: Caller,
    Path(recipient): Path<String>,
) -> Result<Json<PreferenceList>, ApiError> {
    let preferences = state.engine.preferences(&caller.tenant, &recipient).await?;
    Ok(Json(PreferenceList {
        recipient_id: recipient,
        preferences,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferenceBody {
    /// channel | category | notifier | notifier_channel
    scope: String,
    /// The channel, category or notifier key; `NOTIFIER/CHANNEL` for notifier_channel.
    target: String,
    /// `null` clears the preference.
    enabled: Option<bool>,
}

fn pref_scope(scope: &str, target: &str) -> Result<PrefScope, ApiError> {
    let channel = |t: &str| {
        t.parse::<Channel>()
            .map_err(|e| ApiError::invalid("target", e.to_string()))
    };
    Ok(match scope {
        "channel" => PrefScope::Channel(channel(target)?),
        "category" => PrefScope::Category(target.to_string()),
        "notifier" => PrefScope::Notifier(target.to_string()),
        "notifier_channel" => {
            let (n, c) = target.split_once('/').ok_or_else(|| {
                ApiError::invalid("target", "a notifier_channel target is NOTIFIER/CHANNEL")
            })?;
            PrefScope::NotifierChannel(n.to_string(), channel(c)?)
        }
        other => {
            return Err(ApiError::invalid(
                "scope",
                format!(
                    "scope `{other}` is not one of channel, category, notifier, notifier_channel"
                ),
            ));
        }
    })
}

#[utoipa::path(
    put,
    path = "/v1/recipients/{id}/preferences",
    tag = "recipients",
    summary = "Set or clear one preference",
    request_body = PreferenceBody,
    params(("id" = String, Path, description = "recipient id, or * for the tenant's defaults")),
    responses(
        (status = 200, description = "", body = PreferenceList),
        KeyErrors,
        (status = 413, description = "the body is over the limit", body = ErrorBody),
        (status = 422, description = "well-formed but wrong: the message and `field` say what", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn set_preference(
    State(state): State<AppState>,
    caller: Caller,
    Path(recipient): Path<String>,
    b: Body<PreferenceBody>,
) -> Result<Json<PreferenceList>, ApiError> {
    let b = body(b)?;
    let scope = pref_scope(&b.scope, &b.target)?;
    state
        .engine
        .set_preference(&caller.tenant, &recipient, &scope, b.enabled)
        .await?;
    preferences(State(state), caller, Path(recipient)).await
}

#[utoipa::path(
    get,
    path = "/v1/recipients/{id}/settings",
    tag = "recipients",
    summary = "A recipient's own and effective settings",
    params(("id" = String, Path, description = "recipient id, or * for the tenant's defaults")),
    responses(
        (status = 200, description = "", body = SettingsView),
        KeyErrors,
        (status = 422, description = "well-formed but wrong: the message and `field` say what", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn settings(
    State(state): State<AppState>,
    caller: Caller,
    Path(recipient): Path<String>,
) -> Result<Json<SettingsView>, ApiError> {
    let (own, effective) = state.engine.settings(&caller.tenant, &recipient).await?;
    Ok(Json(SettingsView {
        recipient_id: recipient,
        own,
        effective,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// `HH:MM`, inclusive.
    start: String,
    /// `HH:MM`, inclusive.
    end: String,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    #[serde(default, deserialize_with = "double")]
    time_zone: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    quiet_hours: Option<Option<QuietHours>>,
    #[serde(default, deserialize_with = "double")]
    severity_floor: Option<Option<Severity>>,
    /// Channel → cap (`{"max", "window_secs"}`), or `null` to remove it.
    #[serde(default)]
    #[schema(value_type = Object)]
    caps: std::collections::BTreeMap<Channel, Option<CapBody>>,
    /// Notifier key → seconds, or `null` to remove it.
    #[serde(default)]
    #[schema(value_type = Object)]
    cooldowns: std::collections::BTreeMap<String, Option<i64>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapBody {
    max: i64,
    window_secs: i64,
}

fn minute(field: &str, text: &str) -> Result<i64, ApiError> {
    let parsed = text.split_once(':').and_then(|(h, m)| {
        let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
        ((0..24).contains(&h) && (0..60).contains(&m) && text.len() == 5).then_some(h * 60 + m)
    });
    parsed.ok_or_else(|| ApiError::invalid(field, format!("`{text}` is not HH:MM (00:00–23:59)")))
}

#[utoipa::path(
    patch,
    path = "/v1/recipients/{id}/settings",
    tag = "recipients",
    summary = "Change settings: absent keeps, null clears",
    request_body = SettingsBody,
    params(("id" = String, Path, description = "recipient id, or * for the tenant's defaults")),
    responses(
        (status = 200, description = "", body = SettingsView),
        KeyErrors,
        (status = 413, description = "the body is over the limit", body = ErrorBody),
        (status = 422, description = "well-formed but wrong: the message and `field` say what", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn set_settings(
    State(state): State<AppState>,
    caller: Caller,
    Path(recipient): Path<String>,
    b: Body<SettingsBody>,
) -> Result<Json<SettingsView>, ApiError> {
    let b = body(b)?;
    let mut patch = SettingsPatch {
        time_zone: b.time_zone,
        severity_floor: b.severity_floor,
        ..Default::default()
    };
    patch.quiet_hours = match b.quiet_hours {
        None => None,
        Some(None) => Some(None),
        Some(Some(q)) => Some(Some((
            minute("quiet_hours.start", &q.start)?,
            minute("quiet_hours.end", &q.end)?,
        ))),
    };
    for (channel, cap) in b.caps {
        let cap = cap.map(|c| Cap::new(c.max, c.window_secs)).transpose()?;
        patch.caps.push((channel, cap));
    }
    patch.cooldowns = b.cooldowns.into_iter().collect();
    if patch.is_empty() {
        return Err(ApiError::invalid(
            "settings",
            "nothing to change: give at least one setting",
        ));
    }
    state
        .engine
        .set_settings(&caller.tenant, &recipient, &patch)
        .await?;
    settings(State(state), caller, Path(recipient)).await
}

// ---- suppressions ------------------------------------------------------------------------

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SuppressionQuery {
    #[serde(default)]
    include_expired: bool,
}

#[utoipa::path(
    get,
    path = "/v1/suppressions",
    tag = "suppressions",
    summary = "The tenant's suppressions",
    params(SuppressionQuery),
    responses(
        (status = 200, description = "", body = SuppressionList),
        KeyErrors,
    ),
    security(("api_key" = [])),
)]
pub async fn suppressions(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<SuppressionQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SuppressionList>, ApiError> {
    let q = q?.0;
    let list = state
        .engine
        .suppressions(&caller.tenant, q.include_expired)
        .await?;
    Ok(Json(SuppressionList { suppressions: list }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuppressionBody {
    /// An email address or phone number (every channel that sends to it)…
    address: Option<String>,
    /// …or one recipient on one channel.
    recipient_id: Option<String>,
    channel: Option<Channel>,
    #[serde(default = "manual")]
    reason: SuppressionReason,
    note: Option<String>,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

fn manual() -> SuppressionReason {
    SuppressionReason::Manual
}

#[utoipa::path(
    post,
    path = "/v1/suppressions",
    tag = "suppressions",
    summary = "Suppress an address, or a recipient on a channel",
    request_body = SuppressionBody,
    responses(
        (status = 201, description = "", body = Suppression),
        KeyErrors,
        (status = 413, description = "the body is over the limit", body = ErrorBody),
        (status = 422, description = "well-formed but wrong: the message and `field` say what", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn add_suppression(
    State(state): State<AppState>,
    caller: Caller,
    b: Body<SuppressionBody>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    let target = match (b.address, b.recipient_id, b.channel) {
        (Some(a), None, None) => SuppressionTarget::Address(a),
        (None, Some(id), Some(channel)) => SuppressionTarget::Recipient { id, channel },
        _ => {
            return Err(ApiError::invalid(
                "address",
                "give either `address`, or `recipient_id` with `channel`",
            ));
        }
    };
    let s = state
        .engine
        .add_suppression(
            &caller.tenant,
            &target,
            b.reason,
            b.note.as_deref(),
            b.expires_at,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(s)).into_response())
}

#[utoipa::path(
    delete,
    path = "/v1/suppressions/{id}",
    tag = "suppressions",
    summary = "Remove a suppression",
    params(("id" = String, Path, description = "suppression id")),
    responses(
        (status = 204, description = "removed"),
        KeyErrors,
        (status = 404, description = "no such id in the caller's tenant", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn remove_suppression(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.engine.remove_suppression(&caller.tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- signals -----------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalBody {
    actor: String,
    name: String,
    #[serde(default = "empty_object")]
    payload: Value,
}

fn empty_object() -> Value {
    json!({})
}

#[utoipa::path(
    post,
    path = "/v1/signals",
    tag = "workflows",
    summary = "Send a signal to an actor's waiting workflow runs",
    request_body = SignalBody,
    responses(
        (status = 200, description = "the runs it moved", body = SignalOutcome),
        KeyErrors,
        (status = 413, description = "the body is over the limit", body = ErrorBody),
        (status = 422, description = "well-formed but wrong: the message and `field` say what", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn signal(
    State(state): State<AppState>,
    caller: Caller,
    b: Body<SignalBody>,
) -> Result<Json<SignalOutcome>, ApiError> {
    let b = body(b)?;
    let out = state
        .engine
        .signal(&caller.tenant, &b.actor, &b.name, &b.payload)
        .await?;
    Ok(Json(out))
}

// ---- plugins -----------------------------------------------------------------------------

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
        .map(|b| super::openapi::BrokenPluginView {
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

// ---- inbox tokens ------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    recipient_id: String,
    #[serde(default = "hour")]
    ttl_secs: i64,
}

fn hour() -> i64 {
    3600
}

#[utoipa::path(
    post,
    path = "/v1/inbox/tokens",
    tag = "inbox",
    summary = "Mint an end user's inbox token",
    request_body = TokenBody,
    responses(
        (status = 201, description = "", body = InboxTokenView),
        KeyErrors,
        (status = 413, description = "the body is over the limit", body = ErrorBody),
        (status = 422, description = "well-formed but wrong: the message and `field` say what", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn inbox_token(
    State(state): State<AppState>,
    caller: Caller,
    b: Body<TokenBody>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    let (token, expires) = state
        .engine
        .mint_inbox_token(&caller.tenant, &b.recipient_id, b.ttl_secs)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(InboxTokenView {
            token,
            recipient_id: b.recipient_id,
            expires_at: belfry_host::store::time_text(expires),
        }),
    )
        .into_response())
}

// ---- operator endpoints ------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantBody {
    id: String,
}

#[utoipa::path(
    post,
    path = "/v1/tenants",
    tag = "operator",
    summary = "Create a tenant (admin)",
    request_body = TenantBody,
    responses(
        (status = 201, description = "", body = Tenant),
        KeyErrors,
        (status = 409, description = "the change conflicts with the current state", body = ErrorBody),
        (status = 413, description = "the body is over the limit", body = ErrorBody),
        (status = 422, description = "well-formed but wrong: the message and `field` say what", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn create_tenant(
    State(state): State<AppState>,
    _admin: Admin,
    b: Body<TenantBody>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    let (tenant, created) = state.engine.ensure_tenant(&b.id).await?;
    if !created {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("tenant `{}` already exists", b.id),
        )
        .field("id"));
    }
    Ok((StatusCode::CREATED, Json(tenant)).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/tenants",
    tag = "operator",
    summary = "Every tenant (admin)",
    responses(
        (status = 200, description = "", body = TenantList),
        (status = 401, description = "no API key, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "the key may not do this here", body = ErrorBody),
        (status = 429, description = "over the key's request rate; `Retry-After` says when to retry", body = ErrorBody),
        (status = 500, description = "a fault of the server; the cause is in its log", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn tenants(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<TenantList>, ApiError> {
    Ok(Json(TenantList {
        tenants: state.engine.tenants().await?,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyBody {
    /// The tenant the key acts in; absent for an admin key.
    tenant: Option<String>,
    name: String,
}

#[utoipa::path(
    post,
    path = "/v1/keys",
    tag = "operator",
    summary = "Create an API key (admin); the secret is in this answer only",
    request_body = KeyBody,
    responses(
        (status = 201, description = "", body = CreatedKey),
        KeyErrors,
        (status = 413, description = "the body is over the limit", body = ErrorBody),
        (status = 422, description = "well-formed but wrong: the message and `field` say what", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn create_key(
    State(state): State<AppState>,
    _admin: Admin,
    b: Body<KeyBody>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    let (key, secret) = state
        .engine
        .create_key(b.tenant.as_deref(), &b.name)
        .await?;
    Ok((StatusCode::CREATED, Json(CreatedKey { key, secret })).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/keys",
    tag = "operator",
    summary = "Every API key, never a secret (admin)",
    responses(
        (status = 200, description = "", body = KeyList),
        (status = 401, description = "no API key, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "the key may not do this here", body = ErrorBody),
        (status = 429, description = "over the key's request rate; `Retry-After` says when to retry", body = ErrorBody),
        (status = 500, description = "a fault of the server; the cause is in its log", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn keys(State(state): State<AppState>, _admin: Admin) -> Result<Json<KeyList>, ApiError> {
    Ok(Json(KeyList {
        keys: state.engine.keys(None).await?,
    }))
}

#[utoipa::path(
    post,
    path = "/v1/keys/{id}/revoke",
    tag = "operator",
    summary = "Revoke an API key (admin)",
    params(("id" = String, Path, description = "key id")),
    responses(
        (status = 200, description = "", body = ApiKey),
        (status = 401, description = "no API key, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "the key may not do this here", body = ErrorBody),
        (status = 404, description = "no such id in the caller's tenant", body = ErrorBody),
        (status = 429, description = "over the key's request rate; `Retry-After` says when to retry", body = ErrorBody),
        (status = 500, description = "a fault of the server; the cause is in its log", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn revoke_key(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<ApiKey>, ApiError> {
    Ok(Json(state.engine.revoke_key(&id).await?))
}

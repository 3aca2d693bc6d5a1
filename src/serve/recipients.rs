//! A recipient's preferences and settings (`*`: the tenant's defaults).

use super::auth::Caller;
use super::error::{ApiError, Path};
use super::request::{Body, body, double};
use super::schemas::{ErrorBody, KeyErrors, PreferenceList, SettingsView};
use super::state::AppState;
use axum::Json;
use axum::extract::State;
use belfry_host::content::Channel;
use belfry_host::policy::{Cap, PrefScope, SettingsPatch, Severity};
use serde::Deserialize;
use utoipa::ToSchema;

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

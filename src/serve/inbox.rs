//! The end user's inbox over HTTP: pages, counts, marks, and a live stream. Every route takes
//! an [`EndUser`] (an inbox token), never an API key, and acts only on that token's recipient.

use super::auth::EndUser;
use super::error::{ApiError, Path};
use super::schemas::{ErrorBody, InboxErrors, InboxPage, ReadAll};
use super::state::AppState;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use belfry_host::inbox::{Counts, Filter, InboxItem, Mark};
use serde::Deserialize;
use std::collections::HashSet;
use std::convert::Infallible;
use std::time::Duration;
use utoipa::IntoParams;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// all (default), unread, unseen or archived.
    #[serde(default)]
    #[param(value_type = Option<String>)]
    filter: Filter,
    limit: Option<i64>,
    cursor: Option<String>,
    /// The token may ride here (ignored: [`EndUser`] reads it).
    #[allow(dead_code)]
    token: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/inbox",
    tag = "inbox",
    summary = "The token holder's items, newest first, by cursor",
    params(PageQuery),
    responses(
        (status = 200, description = "", body = InboxPage),
        InboxErrors,
    ),
    security(("inbox_token" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    EndUser(who): EndUser,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<InboxPage>, ApiError> {
    let q = q?.0;
    let limit = match q.limit {
        None => 20,
        Some(n) if (1..=belfry_host::inbox::MAX_PAGE).contains(&n) => n,
        Some(n) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_query",
                format!(
                    "limit must be between 1 and {}, got {n}",
                    belfry_host::inbox::MAX_PAGE
                ),
            )
            .field("limit"));
        }
    };
    let page = state
        .engine
        .inbox_page(
            &who.tenant,
            &who.recipient_id,
            q.filter,
            limit,
            q.cursor.as_deref(),
        )
        .await?;
    let counts = state
        .engine
        .inbox_counts(&who.tenant, &who.recipient_id)
        .await?;
    Ok(Json(InboxPage {
        items: page.items,
        next_cursor: page.next_cursor,
        counts,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/inbox/counts",
    tag = "inbox",
    summary = "Unread and unseen counts",
    responses(
        (status = 200, description = "", body = Counts),
        InboxErrors,
    ),
    security(("inbox_token" = [])),
)]
pub async fn counts(
    State(state): State<AppState>,
    EndUser(who): EndUser,
) -> Result<Json<Counts>, ApiError> {
    Ok(Json(
        state
            .engine
            .inbox_counts(&who.tenant, &who.recipient_id)
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/inbox/items/{id}/{action}",
    tag = "inbox",
    summary = "Mark an item seen, read, unread or archived",
    params(("id" = String, Path, description = "inbox item id"), ("action" = String, Path, description = "seen, read, unread or archive")),
    responses(
        (status = 200, description = "", body = InboxItem),
        InboxErrors,
        (status = 404, description = "no such id in the caller's tenant", body = ErrorBody),
    ),
    security(("inbox_token" = [])),
)]
pub async fn mark(
    State(state): State<AppState>,
    EndUser(who): EndUser,
    Path((id, action)): Path<(String, String)>,
) -> Result<Json<InboxItem>, ApiError> {
    let how = match action.as_str() {
        "seen" => Mark::Seen,
        "read" => Mark::Read,
        "unread" => Mark::Unread,
        "archive" => Mark::Archived,
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no inbox action `{other}` (seen, read, unread, archive)"),
            ));
        }
    };
    Ok(Json(
        state
            .engine
            .mark_inbox(&who.tenant, &who.recipient_id, &id, how)
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/inbox/read-all",
    tag = "inbox",
    summary = "Mark every item read",
    responses(
        (status = 200, description = "", body = ReadAll),
        InboxErrors,
    ),
    security(("inbox_token" = [])),
)]
pub async fn read_all(
    State(state): State<AppState>,
    EndUser(who): EndUser,
) -> Result<Json<ReadAll>, ApiError> {
    let changed = state
        .engine
        .mark_all_read(&who.tenant, &who.recipient_id)
        .await?;
    let counts = state
        .engine
        .inbox_counts(&who.tenant, &who.recipient_id)
        .await?;
    Ok(Json(ReadAll { changed, counts }))
}

/// How many of the newest items a live stream compares each time: more new items than this
/// between two looks reach the client as a count change only (its list reloads on demand).
const STREAM_WINDOW: i64 = 50;

#[utoipa::path(
    get,
    path = "/v1/inbox/stream",
    tag = "inbox",
    summary = "Live updates (Server-Sent Events): `counts` and `item` events",
    responses(
        (status = 200, description = "text/event-stream"),
        InboxErrors,
    ),
    security(("inbox_token" = [])),
)]
/// Server-Sent Events: `counts` at once and whenever they change, `item` for each new item.
///
/// The stream reads the database every `poll` (the configured `inbox_poll_ms`), so it sees
/// items written by any process sharing the database, not only this one's workers. New items
/// are those among the newest [`STREAM_WINDOW`] whose ids it has not pushed, so an item that
/// commits after a newer one is still pushed.
pub async fn stream(
    State(state): State<AppState>,
    EndUser(who): EndUser,
) -> Result<Sse<impl tokio_stream::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let engine = state.engine.clone();
    let poll = state.config.inbox_poll;
    let mut stopping = state.stopping.clone();
    let ids =
        |items: &[InboxItem]| -> HashSet<String> { items.iter().map(|i| i.id.clone()).collect() };
    let mut known = ids(&engine
        .inbox_recent(&who.tenant, &who.recipient_id, STREAM_WINDOW)
        .await?);
    let mut counts = engine.inbox_counts(&who.tenant, &who.recipient_id).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(64);
    let first = Event::default()
        .event("counts")
        .json_data(counts)
        .map_err(ApiError::internal)?;
    let _ = tx.send(Ok(first)).await;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = tx.closed() => return,
                // Dropping `tx` ends the response, so shutdown need not wait for the client.
                _ = stopping.wait_for(|s| *s) => return,
            }
            let recent = match engine
                .inbox_recent(&who.tenant, &who.recipient_id, STREAM_WINDOW)
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "inbox stream: reading new items failed; retrying");
                    continue;
                }
            };
            // Oldest first, as they happened.
            for item in recent.iter().rev().filter(|i| !known.contains(&i.id)) {
                let Ok(event) = Event::default().event("item").json_data(item) else {
                    continue;
                };
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
            known = ids(&recent);
            match engine.inbox_counts(&who.tenant, &who.recipient_id).await {
                Ok(now) if now != counts => {
                    counts = now;
                    let Ok(event) = Event::default().event("counts").json_data(counts) else {
                        continue;
                    };
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "inbox stream: counting failed; retrying"),
            }
        }
    });
    Ok(Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

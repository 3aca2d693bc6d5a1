//! The web pages `belfry serve` answers with: the operator console at `/` and a demo inbox at
//! `/inbox`. Each is one HTML file with its script inline, compiled into the binary, so no
//! build step or asset directory is needed to run them. They call the same `/v1` API any
//! client does, with the key or token the user gives them.

use axum::http::header;
use axum::response::IntoResponse;

const CONSOLE: &str = include_str!("pages/console.html");
const INBOX: &str = include_str!("pages/inbox.html");

fn html(body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The pages load nothing from elsewhere; say so to the browser too.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:",
            ),
        ],
        body,
    )
}

pub async fn console() -> impl IntoResponse {
    html(CONSOLE)
}

pub async fn inbox() -> impl IntoResponse {
    html(INBOX)
}

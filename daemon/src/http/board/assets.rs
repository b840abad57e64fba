//! The board's page and assets, compiled into the binary. `/` logs in (a `?token=` query sets
//! the cookie and redirects without it) and serves the single page, with this daemon's CSRF
//! token and read-only flag in its `<meta>` tags; the script draws every view from `/api`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::Board;

const INDEX: &str = include_str!("../../../board/index.html");
const SCRIPT: &str = include_str!("../../../board/board.js");
const STYLE: &str = include_str!("../../../board/board.css");

pub(super) fn routes() -> Router<Arc<Board>> {
    Router::new()
        .route("/", get(index))
        .route(
            "/assets/board.js",
            get(|| asset("text/javascript; charset=utf-8", SCRIPT)),
        )
        .route(
            "/assets/board.css",
            get(|| asset("text/css; charset=utf-8", STYLE)),
        )
}

async fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[derive(Deserialize)]
struct Login {
    token: Option<String>,
}

async fn index(
    State(board): State<Arc<Board>>,
    Query(login): Query<Login>,
    headers: HeaderMap,
) -> Response {
    if let Some(token) = login.token {
        if !board.is_token(&token) {
            return forbidden("This login token is not this board's.");
        }
        let cookie = format!(
            "{}={}; Path=/; HttpOnly; SameSite=Strict",
            board.cookie, board.token
        );
        return (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, cookie),
                (header::LOCATION, "/".to_owned()),
            ],
        )
            .into_response();
    }
    if !board.logged_in(&headers) {
        return forbidden("This board needs its login token.");
    }
    let page = INDEX
        .replace("{{csrf}}", &board.csrf)
        .replace(
            "{{read_only}}",
            if board.read_only { "true" } else { "false" },
        )
        .replace("{{party}}", &html_escape(&board.server.status.party));
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                 frame-ancestors 'none'",
            ),
        ],
        Html(page),
    )
        .into_response()
}

fn forbidden(why: &str) -> Response {
    let page = format!(
        "<!doctype html><meta charset=utf-8><title>Consort board: log in</title>\
         <body style=\"font-family:sans-serif;margin:3em\"><h1>403</h1><p>{why}</p>\
         <p>Run <code>consort board</code> on the daemon's machine and open the URL it prints.</p>"
    );
    (StatusCode::FORBIDDEN, Html(page)).into_response()
}

/// `text` safe inside HTML text and attribute values.
pub(super) fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

//! The board: jobs, their DAGs, logs and plots, models, serving and partners in a browser, on
//! the board's listener (`[board] listen`, loopback) next to `/metrics`.
//!
//! - Login: a random token kept 0600 in the data directory (`board.token`); `consort board`
//!   prints `http://ADDR/?token=…`. Opening that URL sets an HttpOnly, SameSite=Strict cookie and
//!   redirects to the same page without the token. Every page and `/api` call needs the cookie
//!   (or `Authorization: Bearer TOKEN`); without it: 403. Assets and `/metrics` are open (the
//!   assets are the same in every binary; `/metrics` is what Prometheus scrapes on loopback).
//! - Actions (stop, rerun, approve, reject, promote, rollback) are POSTs that must carry the
//!   page's CSRF token in `X-Consort-Csrf` (a second random value, given to the page in its
//!   HTML); without it: 403. `[board] read_only` refuses them all.
//! - Every answer comes from the same control requests the CLI sends ([`api`]), so the board
//!   shows what `consort` shows and acts through the same actor messages.
//! - Live updates by server-sent events ([`events`]): a job's page follows the Scheduler's long
//!   poll (`JobWatch`); the jobs list is re-sent when it changes.
//! - Charts are SVGs drawn by `consort-plot`, as the CLI's `metric plot` and `job dag` draw them
//!   ([`charts`]). Every asset is compiled in ([`assets`]): no CDN, no network fetch.

mod api;
mod assets;
mod charts;
mod events;
mod token;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::server::ServerState;

pub(crate) use token::load_or_create as load_token;

/// Header that must carry the CSRF token on actions.
const CSRF_HEADER: &str = "x-consort-csrf";

/// What the board's handlers share.
pub(crate) struct Board {
    /// The control requests' handler state (the same as the socket's).
    pub(crate) server: Arc<ServerState>,
    /// The login token.
    token: String,
    /// The CSRF token given to pages.
    csrf: String,
    /// Refuse actions.
    read_only: bool,
    /// Name of the login cookie: `consort_board_PORT` (cookies do not tell ports apart, and
    /// one machine may run several daemons).
    cookie: String,
}

impl Board {
    /// A board for `server`, logging in with `token`.
    pub(crate) fn new(
        server: Arc<ServerState>,
        token: String,
        read_only: bool,
        port: u16,
    ) -> Board {
        Board {
            server,
            token,
            csrf: token::random_hex(),
            read_only,
            cookie: format!("consort_board_{port}"),
        }
    }

    fn is_token(&self, given: &str) -> bool {
        super::constant_time_eq(given.as_bytes(), self.token.as_bytes())
    }

    fn logged_in(&self, headers: &HeaderMap) -> bool {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| {
                c.trim()
                    .strip_prefix(self.cookie.as_str())?
                    .strip_prefix('=')
            })
            .next();
        [bearer, cookie]
            .into_iter()
            .flatten()
            .any(|given| self.is_token(given))
    }
}

/// The board's routes (pages, assets, `/api`), to be merged with `/metrics`.
pub(crate) fn router(board: Arc<Board>) -> Router {
    let api = api::routes()
        .merge(events::routes())
        .merge(charts::routes())
        .layer(middleware::from_fn_with_state(board.clone(), guard));
    Router::new()
        .merge(assets::routes())
        .nest("/api", api)
        .with_state(board)
}

/// Refuses `/api` calls without the login, and actions without the CSRF token or in
/// read-only mode.
async fn guard(State(board): State<Arc<Board>>, request: Request, next: Next) -> Response {
    if !board.logged_in(request.headers()) {
        return refuse(
            StatusCode::FORBIDDEN,
            "log in first: open the URL `consort board` prints",
        );
    }
    if request.method() != Method::GET {
        let csrf = request
            .headers()
            .get(CSRF_HEADER)
            .map(|v| super::constant_time_eq(v.as_bytes(), board.csrf.as_bytes()));
        if csrf != Some(true) {
            return refuse(
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token: actions come from the board's own pages",
            );
        }
        if board.read_only {
            return refuse(
                StatusCode::FORBIDDEN,
                "the board is read-only here ([board] read_only in the daemon's config)",
            );
        }
    }
    next.run(request).await
}

/// An error as JSON: `{"error": message, "code": status}`.
pub(crate) fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({"error": message.into(), "code": status.as_u16()})),
    )
        .into_response()
}

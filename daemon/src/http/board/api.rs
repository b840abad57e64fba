//! `/api`: each route is one control request — the same the CLI sends over the socket,
//! answered by the same handler ([`crate::server::handle`]) — and its answer as JSON.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use consort_protocol::serving::ServeRequest;
use consort_protocol::{ErrorCode, Request, Response as Answer};
use serde::Deserialize;

use super::{Board, refuse};

pub(super) fn routes() -> Router<Arc<Board>> {
    Router::new()
        .route("/status", get(|s| get_json(s, Request::Status)))
        .route("/jobs", get(|s| get_json(s, Request::JobList)))
        .route("/jobs/{job}", get(job))
        .route("/jobs/{job}/metrics", get(metrics))
        .route("/jobs/{job}/log", get(log))
        .route("/jobs/{job}/stop", post(stop))
        .route("/jobs/{job}/rerun", post(rerun))
        .route("/jobs/{job}/approve", post(approve))
        .route("/jobs/{job}/reject", post(reject))
        .route("/models", get(|s| get_json(s, Request::ModelList)))
        .route("/models/diff", get(diff))
        .route("/models/{model}/log", get(model_log))
        .route(
            "/serving",
            get(|s| get_json(s, Request::Serve(ServeRequest::List))),
        )
        .route("/serving/{service}", get(service))
        .route("/serving/{service}/stats", get(stats))
        .route("/serving/{service}/promote", post(promote))
        .route("/serving/{service}/rollback", post(rollback))
        .route("/partners", get(|s| get_json(s, Request::Peers)))
}

/// Asks the control handler; its error as the HTTP status that says the same.
pub(super) async fn ask(board: &Board, request: Request) -> Result<Answer, Response> {
    crate::server::handle(&board.server, request)
        .await
        .map_err(|e| {
            let status = match e.code {
                ErrorCode::NotFound => StatusCode::NOT_FOUND,
                ErrorCode::InvalidArgument => StatusCode::BAD_REQUEST,
                ErrorCode::Unreachable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            refuse(status, e.message)
        })
}

async fn get_json(State(board): State<Arc<Board>>, request: Request) -> Response {
    answer(&board, request).await
}

async fn answer(board: &Board, request: Request) -> Response {
    match ask(board, request).await {
        Ok(a) => Json(a).into_response(),
        Err(e) => e,
    }
}

async fn job(State(b): State<Arc<Board>>, Path(job): Path<String>) -> Response {
    answer(&b, Request::JobShow { job }).await
}

async fn metrics(State(b): State<Arc<Board>>, Path(job): Path<String>) -> Response {
    answer(&b, Request::MetricList { job }).await
}

#[derive(Deserialize)]
struct LogQuery {
    party: Option<String>,
}

async fn log(
    State(b): State<Arc<Board>>,
    Path(job): Path<String>,
    Query(q): Query<LogQuery>,
) -> Response {
    let party = q.party.filter(|p| !p.is_empty());
    answer(&b, Request::JobLog { job, party }).await
}

async fn stop(State(b): State<Arc<Board>>, Path(job): Path<String>) -> Response {
    answer(&b, Request::JobStop { job }).await
}

#[derive(Deserialize, Default)]
struct RerunBody {
    from: Option<String>,
}

async fn rerun(
    State(b): State<Arc<Board>>,
    Path(job): Path<String>,
    body: Option<Json<RerunBody>>,
) -> Response {
    let from = body.map(|Json(b)| b).unwrap_or_default().from;
    answer(&b, Request::JobRerun { job, from }).await
}

async fn approve(State(b): State<Arc<Board>>, Path(job): Path<String>) -> Response {
    answer(&b, Request::JobApprove { job }).await
}

#[derive(Deserialize)]
struct RejectBody {
    reason: String,
}

async fn reject(
    State(b): State<Arc<Board>>,
    Path(job): Path<String>,
    Json(body): Json<RejectBody>,
) -> Response {
    answer(
        &b,
        Request::JobReject {
            job,
            reason: body.reason,
        },
    )
    .await
}

#[derive(Deserialize)]
struct DiffQuery {
    a: String,
    b: String,
}

async fn diff(State(b): State<Arc<Board>>, Query(q): Query<DiffQuery>) -> Response {
    answer(&b, Request::ModelDiff { a: q.a, b: q.b }).await
}

async fn model_log(State(b): State<Arc<Board>>, Path(model): Path<String>) -> Response {
    let request = Request::ModelLog {
        model,
        branch: None,
        all: true,
    };
    answer(&b, request).await
}

async fn service(State(b): State<Arc<Board>>, Path(service): Path<String>) -> Response {
    answer(&b, Request::Serve(ServeRequest::Show { service })).await
}

async fn stats(State(b): State<Arc<Board>>, Path(service): Path<String>) -> Response {
    answer(&b, Request::Serve(ServeRequest::Stats { service })).await
}

#[derive(Deserialize)]
struct PromoteBody {
    version: String,
}

async fn promote(
    State(b): State<Arc<Board>>,
    Path(service): Path<String>,
    Json(body): Json<PromoteBody>,
) -> Response {
    let request = ServeRequest::Promote {
        service,
        version: body.version,
    };
    answer(&b, Request::Serve(request)).await
}

async fn rollback(State(b): State<Arc<Board>>, Path(service): Path<String>) -> Response {
    answer(&b, Request::Serve(ServeRequest::Rollback { service })).await
}

//! Server-sent events, so pages change without a reload: `/api/events/jobs` sends the jobs
//! list whenever a job is added or changes state; `/api/events/jobs/{job}` sends the job (its
//! tasks and every party's runs) at each new revision, following the Scheduler's long poll.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use consort_protocol::{JobInfo, Request, Response as Answer};
use futures::Stream;

use super::Board;
use super::api::ask;

/// How often the jobs list is compared with what was sent.
const LIST_EVERY: Duration = Duration::from_millis(500);
/// How long one long poll of a job waits at the Scheduler.
const WATCH_MS: u64 = 25_000;

pub(super) fn routes() -> Router<Arc<Board>> {
    Router::new()
        .route("/events/jobs", get(jobs))
        .route("/events/jobs/{job}", get(job))
}

fn sse(stream: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// What the list shows of each job: a new id, state or revision is a change.
fn fingerprint(jobs: &[JobInfo]) -> Vec<(String, String, u64)> {
    jobs.iter()
        .map(|j| (j.job_id.clone(), j.status.clone(), j.revision))
        .collect()
}

async fn jobs(State(board): State<Arc<Board>>) -> Response {
    let stream = futures::stream::unfold((board, None), |(board, sent)| async move {
        loop {
            let jobs = match ask(&board, Request::JobList).await {
                Ok(Answer::Jobs { jobs }) => jobs,
                _ => return None,
            };
            let now = fingerprint(&jobs);
            if sent.as_ref() != Some(&now) {
                let event = Event::default().event("jobs").json_data(&jobs).ok()?;
                return Some((Ok(event), (board, Some(now))));
            }
            tokio::time::sleep(LIST_EVERY).await;
        }
    });
    sse(stream)
}

async fn job(State(board): State<Arc<Board>>, Path(job): Path<String>) -> Response {
    // A job that does not exist is a 404, not an empty stream.
    if let Err(e) = ask(&board, Request::JobShow { job: job.clone() }).await {
        return e;
    }
    let stream = futures::stream::unfold((board, job, 0u64), |(board, job, seen)| async move {
        loop {
            let request = Request::JobWatch {
                job: job.clone(),
                revision: seen,
                timeout_ms: WATCH_MS,
                until_end: false,
            };
            match ask(&board, request).await {
                Ok(Answer::Job(info)) if info.revision != seen => {
                    let revision = info.revision;
                    let event = Event::default().event("job").json_data(&info).ok()?;
                    return Some((Ok(event), (board, job, revision)));
                }
                Ok(Answer::Job(_)) => continue,
                _ => return None,
            }
        }
    });
    sse(stream)
}

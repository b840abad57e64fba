//! Control-socket requests about jobs, answered by the Scheduler and the tracking store.

use consort_actors::scheduler::{Approve, JobError, List, Show, Stop, Submit};
use consort_protocol::{ControlError, ErrorCode, LogLineInfo, MetricInfo, Request, Response};

use crate::server::ServerState;

fn job_err(e: JobError) -> ControlError {
    let code = match e {
        JobError::Invalid(_) => ErrorCode::InvalidArgument,
        JobError::NotFound(_) => ErrorCode::NotFound,
        JobError::Conflict(_) => ErrorCode::InvalidArgument,
        JobError::Unavailable => ErrorCode::Internal,
    };
    ControlError::new(code, e.to_string())
}

fn mailbox_err(e: actix::MailboxError) -> ControlError {
    ControlError::new(ErrorCode::Internal, format!("scheduler unavailable: {e}"))
}

fn random_u32() -> u32 {
    // Job ids need uniqueness, not secrecy: time-seeded hashing of a fresh RandomState.
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() as u32
}

/// Answers one job request.
pub(crate) async fn handle(
    state: &ServerState,
    request: Request,
) -> Result<Response, ControlError> {
    let scheduler = &state.actors.scheduler;
    let done = |message: String| Ok(Response::Done { message });
    match request {
        Request::JobSubmit { spec } => {
            let job = scheduler
                .send(Submit {
                    spec,
                    random: random_u32(),
                })
                .await
                .map_err(mailbox_err)?
                .map_err(job_err)?;
            Ok(Response::JobSubmitted {
                job_id: job.to_string(),
            })
        }
        Request::JobShow { job } => {
            let info = scheduler
                .send(Show(job))
                .await
                .map_err(mailbox_err)?
                .map_err(job_err)?;
            Ok(Response::Job(info))
        }
        Request::JobList => Ok(Response::Jobs {
            jobs: scheduler.send(List).await.map_err(mailbox_err)?,
        }),
        Request::JobStop { job } => {
            scheduler
                .send(Stop(job.clone()))
                .await
                .map_err(mailbox_err)?
                .map_err(job_err)?;
            done(format!("job {job} is being stopped at every party"))
        }
        Request::JobApprove { job } => {
            scheduler
                .send(Approve {
                    job: job.clone(),
                    reject: None,
                })
                .await
                .map_err(mailbox_err)?
                .map_err(job_err)?;
            done(format!("job {job} approved"))
        }
        Request::JobReject { job, reason } => {
            scheduler
                .send(Approve {
                    job: job.clone(),
                    reject: Some(reason),
                })
                .await
                .map_err(mailbox_err)?
                .map_err(job_err)?;
            done(format!("job {job} rejected"))
        }
        Request::JobLog { job } => {
            let lines = state
                .tracking
                .lines(&job)
                .map_err(|e| ControlError::new(ErrorCode::Internal, e.to_string()))?
                .into_iter()
                .map(|l| LogLineInfo {
                    at_ms: l.at_ms,
                    task: l.task,
                    role: l.role,
                    attempt: l.attempt,
                    line: l.line,
                })
                .collect();
            Ok(Response::JobLog { lines })
        }
        Request::MetricList { job } => {
            let metrics = state
                .tracking
                .metrics(&job)
                .map_err(|e| ControlError::new(ErrorCode::Internal, e.to_string()))?
                .into_iter()
                .map(|(k, s)| MetricInfo {
                    task: k.task,
                    role: k.role,
                    namespace: k.namespace,
                    name: k.name,
                    points: s.points,
                })
                .collect();
            Ok(Response::Metrics { metrics })
        }
        other => Err(ControlError::new(
            ErrorCode::Internal,
            format!("not a job request: {other:?}"),
        )),
    }
}

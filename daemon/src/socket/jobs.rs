//! Control-socket requests about jobs, answered by the Scheduler and the Tracker.

use std::path::PathBuf;

use consort_actors::executor::{TaskAnswer, TaskAsk, TaskCall};
use consort_actors::scheduler::{Approve, JobError, List, Rerun, Show, Stop, Submit, Watch};
use consort_actors::tracker::{JobLog, Metrics};
use consort_protocol::{
    ControlError, ErrorCode, LogLineInfo, MetricInfo, Request, Response, TaskPart,
};

use crate::failure::{control_error, mailbox_error};
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
                    random: consort_protocol::clock::unique_u64() as u32,
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
        Request::JobWatch {
            job,
            revision,
            timeout_ms,
            until_end,
        } => {
            let info = scheduler
                .send(Watch {
                    job,
                    revision,
                    until_end,
                    timeout: std::time::Duration::from_millis(timeout_ms.min(60_000)),
                })
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
        Request::JobRerun { job, from } => {
            scheduler
                .send(Rerun {
                    job: job.clone(),
                    from,
                })
                .await
                .map_err(mailbox_err)?
                .map_err(job_err)?;
            done(format!("job {job} runs again at every party"))
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
        Request::JobLog { job, party } => {
            let stored = state
                .actors
                .tracker
                .send(JobLog { job, party })
                .await
                .map_err(|e| mailbox_error("tracker", e))?
                .map_err(control_error)?;
            let lines = stored
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
                .actors
                .tracker
                .send(Metrics { job })
                .await
                .map_err(|e| mailbox_error("tracker", e))?
                .map_err(control_error)?
                .into_iter()
                .map(|(k, s)| MetricInfo {
                    task: k.task,
                    role: k.role,
                    namespace: k.namespace,
                    name: k.name,
                    points: s.points,
                    meta: s.meta.map(Into::into),
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

/// Answers a script operator's call, identified by its task token: translated into a
/// [`TaskCall`] for the Executor, which owns the running tasks.
pub(crate) async fn handle_task(
    state: &ServerState,
    request: Request,
) -> Result<Response, ControlError> {
    let (token, ask) = match request {
        Request::TaskRemote {
            token,
            to,
            tag,
            data,
            path,
        } => {
            let path = path.map(absolute).transpose()?;
            (
                token,
                TaskAsk::Remote {
                    to,
                    tag,
                    data,
                    path,
                },
            )
        }
        Request::TaskGet {
            token,
            from,
            tag,
            into,
        } => {
            let into = into.map(absolute).transpose()?;
            (token, TaskAsk::Get { from, tag, into })
        }
        Request::TaskMetric {
            token,
            namespace,
            name,
            x,
            y,
        } => (
            token,
            TaskAsk::Metric {
                namespace,
                name,
                x,
                y,
            },
        ),
        Request::TaskMetricMeta {
            token,
            namespace,
            name,
            meta,
        } => {
            let meta = serde_json::from_str(&meta).map_err(|e| {
                ControlError::new(
                    ErrorCode::InvalidArgument,
                    format!("metadata is not JSON: {e}"),
                )
            })?;
            (
                token,
                TaskAsk::MetricMeta {
                    namespace,
                    name,
                    meta,
                },
            )
        }
        Request::TaskLog { token, text } => (token, TaskAsk::Log { text }),
        _ => return Err(ControlError::new(ErrorCode::Internal, "not a task request")),
    };
    let answer = state
        .actors
        .executor
        .send(TaskCall { token, ask })
        .await
        .map_err(|e| mailbox_error("executor", e))?
        .map_err(control_error)?;
    Ok(match answer {
        TaskAnswer::Done(message) => Response::Done { message },
        TaskAnswer::Received(parts) => Response::TaskData {
            parts: parts
                .into_iter()
                .map(|r| TaskPart {
                    from: r.from,
                    data: r.data,
                    path: r.path.map(|p| p.display().to_string()),
                })
                .collect(),
        },
    })
}

/// A path from a client (CLI, script operator): it must be absolute (the daemon's working
/// directory is not the client's).
pub(crate) fn absolute(p: String) -> Result<PathBuf, ControlError> {
    let path = PathBuf::from(&p);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(ControlError::new(
            ErrorCode::InvalidArgument,
            format!("'{p}' is not an absolute path"),
        ))
    }
}

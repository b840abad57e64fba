//! Control-socket requests about jobs, answered by the Scheduler and the Tracker.

use std::path::{Path, PathBuf};

use consort_actors::scheduler::{Approve, JobError, List, Rerun, Show, Stop, Submit, Watch};
use consort_actors::tracker::{JobLog, Metrics};
use consort_components::{Endpoint, Target, TaskContext, TaskError};
use consort_protocol::job::Role;
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

/// Resolves `ROLE`, `PARTY` or `ROLE@PARTY` among the task's endpoints.
fn parse_target(ctx: &dyn TaskContext, s: &str) -> Result<Target, ControlError> {
    let bad = |m: String| ControlError::new(ErrorCode::InvalidArgument, m);
    if let Some(role) = Role::parse(s) {
        return Ok(Target::Role(role));
    }
    let matches: Vec<Endpoint> = match s.split_once('@') {
        Some((role, party)) => ctx
            .endpoints()
            .iter()
            .filter(|e| e.role.as_str() == role && e.party.as_str() == party)
            .cloned()
            .collect(),
        None => ctx
            .endpoints()
            .iter()
            .filter(|e| e.party.as_str() == s)
            .cloned()
            .collect(),
    };
    match matches.as_slice() {
        [one] => Ok(Target::One(one.clone())),
        [] => Err(bad(format!(
            "'{s}' does not run this task (use ROLE, PARTY or ROLE@PARTY)"
        ))),
        _ => Err(bad(format!(
            "{s} runs this task in several roles; name one as ROLE@{s}"
        ))),
    }
}

/// Answers a script operator's call, identified by its task token.
pub(crate) async fn handle_task(
    state: &ServerState,
    request: Request,
) -> Result<Response, ControlError> {
    let token = match &request {
        Request::TaskRemote { token, .. }
        | Request::TaskGet { token, .. }
        | Request::TaskMetric { token, .. }
        | Request::TaskLog { token, .. }
        | Request::TaskMetricMeta { token, .. } => token.clone(),
        _ => return Err(ControlError::new(ErrorCode::Internal, "not a task request")),
    };
    let ctx = state
        .tokens
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&token)
        .cloned()
        .ok_or_else(|| {
            ControlError::new(
                ErrorCode::NotFound,
                "unknown or expired task token (CONSORT_TASK_TOKEN)",
            )
        })?;
    let task_err = |e: TaskError| ControlError::new(ErrorCode::Internal, e.to_string());
    // The calls block (network, mailbox waits): run them off the actor thread.
    let blocking = |f: Box<dyn FnOnce() -> Result<Response, ControlError> + Send>| async move {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| ControlError::new(ErrorCode::Internal, format!("task call failed: {e}")))?
    };
    match request {
        Request::TaskRemote {
            to,
            tag,
            data,
            path,
            ..
        } => {
            let target = parse_target(ctx.as_ref(), &to)?;
            let path = path.map(absolute).transpose()?;
            blocking(Box::new(move || {
                let len = match &path {
                    Some(p) => {
                        ctx.remote_file(&target, &tag, p).map_err(task_err)?;
                        std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
                    }
                    None => {
                        ctx.remote(&target, &tag, &data).map_err(task_err)?;
                        data.len() as u64
                    }
                };
                Ok(Response::Done {
                    message: format!("sent {len} bytes as '{tag}' to {to}"),
                })
            }))
            .await
        }
        Request::TaskGet {
            from, tag, into, ..
        } => {
            let target = parse_target(ctx.as_ref(), &from)?;
            let into = into.map(absolute).transpose()?;
            blocking(Box::new(move || {
                let Some(into) = into else {
                    let parts = ctx
                        .get(&target, &tag)
                        .map_err(task_err)?
                        .into_iter()
                        .map(|(e, data)| TaskPart {
                            from: e.to_string(),
                            data,
                            path: None,
                        })
                        .collect();
                    return Ok(Response::TaskData { parts });
                };
                let dir = into.parent().map(Path::to_owned).unwrap_or_default();
                let files = ctx.get_file(&target, &tag, &dir).map_err(task_err)?;
                let several = files.len() > 1;
                let mut parts = Vec::new();
                for (e, file) in files {
                    let dest = if several {
                        let mut p = into.as_os_str().to_owned();
                        p.push(format!(".{e}"));
                        PathBuf::from(p)
                    } else {
                        into.clone()
                    };
                    std::fs::rename(&file, &dest).map_err(|err| {
                        ControlError::new(
                            ErrorCode::Internal,
                            format!("cannot write {}: {err}", dest.display()),
                        )
                    })?;
                    parts.push(TaskPart {
                        from: e.to_string(),
                        data: Vec::new(),
                        path: Some(dest.display().to_string()),
                    });
                }
                Ok(Response::TaskData { parts })
            }))
            .await
        }
        Request::TaskMetric {
            namespace,
            name,
            x,
            y,
            ..
        } => {
            ctx.log_metric(&namespace, &name, &[(x, y)])
                .map_err(task_err)?;
            Ok(Response::Done {
                message: format!("{namespace}/{name} += ({x}, {y})"),
            })
        }
        Request::TaskMetricMeta {
            namespace,
            name,
            meta,
            ..
        } => {
            let meta: serde_json::Value = serde_json::from_str(&meta).map_err(|e| {
                ControlError::new(
                    ErrorCode::InvalidArgument,
                    format!("metadata is not JSON: {e}"),
                )
            })?;
            ctx.set_metric_meta(&namespace, &name, meta)
                .map_err(task_err)?;
            Ok(Response::Done {
                message: format!("{namespace}/{name} metadata set"),
            })
        }
        Request::TaskLog { text, .. } => {
            ctx.log(&text);
            Ok(Response::Done {
                message: "logged".into(),
            })
        }
        _ => Err(ControlError::new(ErrorCode::Internal, "not a task request")),
    }
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

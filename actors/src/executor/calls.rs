//! Calls of a running script operator into its task (send to and receive from the other
//! parties, metrics, log lines), identified by the task token the Executor gave the script.
//! The control socket only translates [`TaskCall`]s; the Executor, which owns the running
//! tasks, answers them, the blocking ones (network, mailbox waits) on a blocking thread.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix::{Handler, Message, ResponseFuture};
use consort_components::{Endpoint, Target, TaskContext};
use consort_protocol::job::Role;

use super::Executor;
use crate::Failure;

/// What a script asks of its task.
#[derive(Debug, Clone)]
pub enum TaskAsk {
    /// Send bytes, or a file, as `tag` to `to` (ROLE, PARTY or ROLE@PARTY).
    Remote {
        /// Addressee.
        to: String,
        /// Message tag.
        tag: String,
        /// The bytes (when no `path`).
        data: Vec<u8>,
        /// A file to send instead (absolute).
        path: Option<PathBuf>,
    },
    /// Receive `tag` from `from`, as bytes or into a file (absolute).
    Get {
        /// Sender (ROLE, PARTY or ROLE@PARTY).
        from: String,
        /// Message tag.
        tag: String,
        /// Where to put it (several senders: `<into>.<sender>`).
        into: Option<PathBuf>,
    },
    /// One point of a metric.
    Metric {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// x.
        x: f64,
        /// y.
        y: f64,
    },
    /// A metric's metadata.
    MetricMeta {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Metadata.
        meta: serde_json::Value,
    },
    /// A line of the task's log.
    Log {
        /// The line.
        text: String,
    },
}

/// What was received: per sender, the bytes or the file they were written to.
#[derive(Debug, Clone)]
pub struct Received {
    /// Sender endpoint (`role@party`).
    pub from: String,
    /// The bytes (empty when written to `path`).
    pub data: Vec<u8>,
    /// The file written.
    pub path: Option<PathBuf>,
}

/// The answer to a [`TaskCall`].
#[derive(Debug, Clone)]
pub enum TaskAnswer {
    /// Done; what was done, for the script's user.
    Done(String),
    /// What was received.
    Received(Vec<Received>),
}

/// A call of the script holding `token` into its running task.
#[derive(Message)]
#[rtype(result = "Result<TaskAnswer, Failure>")]
pub struct TaskCall {
    /// The task token (`CONSORT_TASK_TOKEN`).
    pub token: String,
    /// The call.
    pub ask: TaskAsk,
}

impl Handler<TaskCall> for Executor {
    type Result = ResponseFuture<Result<TaskAnswer, Failure>>;

    fn handle(&mut self, msg: TaskCall, _ctx: &mut Self::Context) -> Self::Result {
        let ctx = self.deps.as_ref().and_then(|d| {
            d.tokens
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&msg.token)
                .cloned()
        });
        Box::pin(async move {
            let ctx = ctx.ok_or_else(|| {
                Failure::NotFound("unknown or expired task token (CONSORT_TASK_TOKEN)".into())
            })?;
            crate::failure::blocking(move || answer(ctx, msg.ask)).await
        })
    }
}

fn answer(ctx: Arc<dyn TaskContext>, ask: TaskAsk) -> Result<TaskAnswer, Failure> {
    let failed = |e: consort_components::TaskError| Failure::Internal(e.to_string());
    match ask {
        TaskAsk::Remote {
            to,
            tag,
            data,
            path,
        } => {
            let target = parse_target(ctx.as_ref(), &to)?;
            let len = match &path {
                Some(p) => {
                    ctx.remote_file(&target, &tag, p).map_err(failed)?;
                    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
                }
                None => {
                    ctx.remote(&target, &tag, &data).map_err(failed)?;
                    data.len() as u64
                }
            };
            Ok(TaskAnswer::Done(format!(
                "sent {len} bytes as '{tag}' to {to}"
            )))
        }
        TaskAsk::Get { from, tag, into } => {
            let target = parse_target(ctx.as_ref(), &from)?;
            let Some(into) = into else {
                let parts = ctx
                    .get(&target, &tag)
                    .map_err(failed)?
                    .into_iter()
                    .map(|(e, data)| Received {
                        from: e.to_string(),
                        data,
                        path: None,
                    })
                    .collect();
                return Ok(TaskAnswer::Received(parts));
            };
            let dir = into.parent().map(Path::to_owned).unwrap_or_default();
            let files = ctx.get_file(&target, &tag, &dir).map_err(failed)?;
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
                    Failure::Internal(format!("cannot write {}: {err}", dest.display()))
                })?;
                parts.push(Received {
                    from: e.to_string(),
                    data: Vec::new(),
                    path: Some(dest),
                });
            }
            Ok(TaskAnswer::Received(parts))
        }
        TaskAsk::Metric {
            namespace,
            name,
            x,
            y,
        } => {
            ctx.log_metric(&namespace, &name, &[(x, y)])
                .map_err(failed)?;
            Ok(TaskAnswer::Done(format!(
                "{namespace}/{name} += ({x}, {y})"
            )))
        }
        TaskAsk::MetricMeta {
            namespace,
            name,
            meta,
        } => {
            ctx.set_metric_meta(&namespace, &name, meta)
                .map_err(failed)?;
            Ok(TaskAnswer::Done(format!("{namespace}/{name} metadata set")))
        }
        TaskAsk::Log { text } => {
            ctx.log(&text);
            Ok(TaskAnswer::Done("logged".into()))
        }
    }
}

/// `ROLE`, `PARTY` or `ROLE@PARTY` among the task's endpoints.
fn parse_target(ctx: &dyn TaskContext, s: &str) -> Result<Target, Failure> {
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
        [] => Err(Failure::Invalid(format!(
            "'{s}' does not run this task (use ROLE, PARTY or ROLE@PARTY)"
        ))),
        _ => Err(Failure::Invalid(format!(
            "{s} runs this task in several roles; name one as ROLE@{s}"
        ))),
    }
}

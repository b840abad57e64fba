//! Reading a finished run's output file for the socket ([`ReadOutput`]): the Executor owns the
//! task directories.

use std::path::PathBuf;

use actix::{Context, Handler, Message, ResponseFuture};
use consort_protocol::job::Role;
use consort_protocol::jobs::{JobId, valid_tag};

use super::{Executor, output_path};
use crate::failure::{Failure, blocking};

/// The newest attempt's output `name` of `task` at this party (guest first, then any role).
#[derive(Debug, Clone)]
pub struct ReadOutput {
    /// The job.
    pub job: String,
    /// The task.
    pub task: String,
    /// The output's name.
    pub name: String,
}

/// An output file and the run that wrote it.
#[derive(Debug, Clone)]
pub struct Output {
    /// Role of the run.
    pub role: String,
    /// Attempt.
    pub attempt: u32,
    /// The file's bytes.
    pub data: Vec<u8>,
}

impl Message for ReadOutput {
    type Result = Result<Output, Failure>;
}

/// Handler for [`ReadOutput`]: reads on a blocking thread.
impl Handler<ReadOutput> for Executor {
    type Result = ResponseFuture<Result<Output, Failure>>;

    fn handle(&mut self, msg: ReadOutput, _ctx: &mut Context<Self>) -> Self::Result {
        let work_dir = self.deps.as_ref().map(|d| d.work_dir.clone());
        Box::pin(async move {
            let work_dir = work_dir
                .ok_or_else(|| Failure::Internal("the executor is not configured".into()))?;
            blocking(move || read(&work_dir, &msg)).await
        })
    }
}

fn read(work_dir: &std::path::Path, msg: &ReadOutput) -> Result<Output, Failure> {
    let ReadOutput { job, task, name } = msg;
    let job =
        JobId::parse(job).ok_or_else(|| Failure::Invalid(format!("'{job}' is not a job id")))?;
    if !valid_tag(task) || !valid_tag(name) {
        return Err(Failure::Invalid("invalid task or output name".into()));
    }
    let not_found = || {
        Failure::NotFound(format!(
            "no output '{name}' of task {task} in job {job} at this party"
        ))
    };
    let task_dir: PathBuf = work_dir.join(job.as_str()).join(task);
    let mut attempts: Vec<u32> = std::fs::read_dir(&task_dir)
        .map_err(|_| not_found())?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    attempts.sort_unstable_by(|a, b| b.cmp(a));
    for attempt in attempts {
        for role in Role::ALL {
            let path =
                output_path(work_dir, &job, task, attempt, role, name).map_err(Failure::Invalid)?;
            if let Ok(data) = std::fs::read(&path) {
                return Ok(Output {
                    role: role.to_string(),
                    attempt,
                    data,
                });
            }
        }
    }
    Err(not_found())
}

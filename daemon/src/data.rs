//! Control-socket requests about this party's tables and models.

use consort_actors::executor::output_path;
use consort_actors::model_manager::{ListModels, ShowModel};
use consort_protocol::data::{CsvOptions, parse_csv};
use consort_protocol::jobs::valid_tag;
use consort_protocol::{ControlError, ErrorCode, Request, Response};
use consort_storage::valid_table_name;

use crate::failure::{control_error, mailbox_error};
use crate::server::ServerState;

fn internal(e: impl std::fmt::Display) -> ControlError {
    ControlError::new(ErrorCode::Internal, e.to_string())
}

fn invalid(message: impl Into<String>) -> ControlError {
    ControlError::new(ErrorCode::InvalidArgument, message)
}

/// Answers table and model requests (model ones by the ModelManager; file work runs on a
/// blocking thread).
pub(crate) async fn handle(
    state: &ServerState,
    request: Request,
) -> Result<Response, ControlError> {
    let manager = &state.actors.model_manager;
    let request = match request {
        Request::ModelList => {
            let models = manager
                .send(ListModels)
                .await
                .map_err(|e| mailbox_error("model manager", e))?
                .map_err(control_error)?;
            return Ok(Response::Models { models });
        }
        Request::ModelShow { model, version } => {
            let model = manager
                .send(ShowModel { model, version })
                .await
                .map_err(|e| mailbox_error("model manager", e))?
                .map_err(control_error)?;
            return Ok(Response::Model { model });
        }
        other => other,
    };
    let work_dir = std::path::PathBuf::from(&state.status.data_dir).join("jobs");
    let tables = state.tables.clone();
    let work = move || -> Result<Response, ControlError> {
        match request {
            Request::DataUpload {
                name,
                path,
                id_column,
                label_column,
                delimiter,
                replace,
            } => {
                if !valid_table_name(&name) {
                    return Err(invalid(format!(
                        "'{name}' is not a valid table name (1-64 of A-Z a-z 0-9 _ - ., not starting with '.')"
                    )));
                }
                if !replace && tables.meta(&name).map_err(internal)?.is_some() {
                    return Err(invalid(format!(
                        "table '{name}' exists; delete it first or upload with --replace"
                    )));
                }
                let file = std::fs::File::open(&path)
                    .map_err(|e| invalid(format!("cannot read {path}: {e}")))?;
                let opts = CsvOptions {
                    id_column,
                    label_column,
                    delimiter,
                };
                let data = parse_csv(std::io::BufReader::new(file), &opts)
                    .map_err(|e| invalid(format!("{path}: {e}; nothing was stored")))?;
                let meta = tables.put(&name, &data, &path).map_err(internal)?;
                Ok(Response::Table { table: meta })
            }
            Request::DataList => Ok(Response::Tables {
                tables: tables.list().map_err(internal)?,
            }),
            Request::DataShow { name, head } => {
                let not_found =
                    || ControlError::new(ErrorCode::NotFound, format!("no table '{name}' here"));
                let meta = tables
                    .meta(&name)
                    .map_err(internal)?
                    .ok_or_else(not_found)?;
                let data = tables.get(&name).map_err(internal)?.ok_or_else(not_found)?;
                let mut header = vec!["id".to_owned()];
                header.extend(data.label_name.clone());
                header.extend(data.feature_names.iter().cloned());
                let rows = (0..data.rows().min(head as usize))
                    .map(|i| {
                        let mut row = vec![data.ids[i].clone()];
                        if let Some(l) = &data.labels {
                            row.push(l[i].to_string());
                        }
                        row.extend(data.columns.iter().map(|c| c[i].to_string()));
                        row
                    })
                    .collect();
                Ok(Response::TableHead {
                    table: meta,
                    header,
                    rows,
                })
            }
            Request::DataDelete { name } => {
                let meta = tables.meta(&name).map_err(internal)?.ok_or_else(|| {
                    ControlError::new(ErrorCode::NotFound, format!("no table '{name}' here"))
                })?;
                tables.delete(&name).map_err(internal)?;
                Ok(Response::Table { table: meta })
            }
            Request::JobOutput { job, task, name } => job_output(&work_dir, &job, &task, &name),
            _ => Err(internal("not a data request")),
        }
    };
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| internal(format!("request failed: {e}")))?
}

/// The newest attempt's output `name` of `task` at this party (guest first, then any role).
fn job_output(
    work_dir: &std::path::Path,
    job: &str,
    task: &str,
    name: &str,
) -> Result<Response, ControlError> {
    let job = consort_protocol::jobs::JobId::parse(job)
        .ok_or_else(|| invalid(format!("'{job}' is not a job id")))?;
    if !valid_tag(task) || !valid_tag(name) {
        return Err(invalid("invalid task or output name"));
    }
    let not_found = || {
        ControlError::new(
            ErrorCode::NotFound,
            format!("no output '{name}' of task {task} in job {job} at this party"),
        )
    };
    let task_dir = work_dir.join(job.as_str()).join(task);
    let mut attempts: Vec<u32> = std::fs::read_dir(&task_dir)
        .map_err(|_| not_found())?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    attempts.sort_unstable_by(|a, b| b.cmp(a));
    for attempt in attempts {
        for role in consort_protocol::job::Role::ALL {
            let path = output_path(work_dir, &job, task, attempt, role, name).map_err(invalid)?;
            if let Ok(data) = std::fs::read(&path) {
                return Ok(Response::Output {
                    role: role.to_string(),
                    attempt,
                    data,
                });
            }
        }
    }
    Err(not_found())
}

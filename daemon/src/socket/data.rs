//! Control-socket requests about this party's tables, run outputs and models, translated into
//! messages to their owners: the TableKeeper, the Executor (task directories) and the
//! ModelManager.

use consort_actors::executor::ReadOutput;
use consort_actors::model_manager::{ListModels, ShowModel};
use consort_actors::table_keeper::{DeleteTable, ListTables, TableHead, UploadTable};
use consort_protocol::{ControlError, ErrorCode, Request, Response};

use crate::failure::{control_error, mailbox_error};
use crate::server::ServerState;

/// Answers table, output and model requests.
pub(crate) async fn handle(
    state: &ServerState,
    request: Request,
) -> Result<Response, ControlError> {
    let actors = &state.actors;
    let tables = |e| mailbox_error("table keeper", e);
    let models = |e| mailbox_error("model manager", e);
    match request {
        Request::DataUpload {
            name,
            path,
            id_column,
            label_column,
            delimiter,
            replace,
        } => {
            let upload = UploadTable {
                name,
                path,
                id_column,
                label_column,
                delimiter,
                replace,
            };
            let table = actors
                .tables
                .send(upload)
                .await
                .map_err(tables)?
                .map_err(control_error)?;
            Ok(Response::Table { table })
        }
        Request::DataList => Ok(Response::Tables {
            tables: actors
                .tables
                .send(ListTables)
                .await
                .map_err(tables)?
                .map_err(control_error)?,
        }),
        Request::DataShow { name, head } => {
            let head = actors
                .tables
                .send(TableHead {
                    name,
                    head: head as u64,
                })
                .await
                .map_err(tables)?
                .map_err(control_error)?;
            Ok(Response::TableHead {
                table: head.table,
                header: head.header,
                rows: head.rows,
            })
        }
        Request::DataDelete { name } => {
            let table = actors
                .tables
                .send(DeleteTable { name })
                .await
                .map_err(tables)?
                .map_err(control_error)?;
            Ok(Response::Table { table })
        }
        Request::JobOutput { job, task, name } => {
            let output = actors
                .executor
                .send(ReadOutput { job, task, name })
                .await
                .map_err(|e| mailbox_error("executor", e))?
                .map_err(control_error)?;
            Ok(Response::Output {
                role: output.role,
                attempt: output.attempt,
                data: output.data,
            })
        }
        Request::ModelList => Ok(Response::Models {
            models: actors
                .model_manager
                .send(ListModels)
                .await
                .map_err(models)?
                .map_err(control_error)?,
        }),
        Request::ModelShow { model, version } => Ok(Response::Model {
            model: actors
                .model_manager
                .send(ShowModel { model, version })
                .await
                .map_err(models)?
                .map_err(control_error)?,
        }),
        _ => Err(ControlError::new(ErrorCode::Internal, "not a data request")),
    }
}

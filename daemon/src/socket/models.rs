//! Control-socket requests about model history and agreement, translated into ModelManager
//! messages (the ModelManager coordinates tag, branch and rollback across the participants).

use actix::{Addr, Handler, Message};
use consort_actors::model_manager::{
    Agree, ModelDelete, ModelDiff, ModelExport, ModelImport, ModelLog, ModelReflog, Verify,
};
use consort_actors::model_rpc::RefMove;
use consort_actors::{Failure, ModelManager};
use consort_protocol::{ControlError, ErrorCode, Request, Response};

use crate::failure::{control_error, mailbox_error};
use crate::jobs::absolute;
use crate::server::ServerState;

/// Sends `msg` to the ModelManager; its answer, or the error as the control protocol says it.
async fn ask<M, T>(manager: &Addr<ModelManager>, msg: M) -> Result<T, ControlError>
where
    M: Message<Result = Result<T, Failure>> + Send + 'static,
    T: Send + 'static,
    ModelManager: Handler<M>,
{
    manager
        .send(msg)
        .await
        .map_err(|e| mailbox_error("model manager", e))?
        .map_err(control_error)
}

/// Answers model history and agreement requests.
pub(crate) async fn handle(
    state: &ServerState,
    request: Request,
) -> Result<Response, ControlError> {
    let manager = &state.actors.model_manager;
    let who = state.status.party.clone();
    Ok(match request {
        Request::ModelLog { model, branch, all } => Response::ModelLog {
            entries: ask(manager, ModelLog { model, branch, all }).await?,
        },
        Request::ModelReflog { model, reference } => Response::ModelReflog {
            entries: ask(manager, ModelReflog { model, reference }).await?,
        },
        Request::ModelDiff { a, b } => Response::ModelDiff(ask(manager, ModelDiff { a, b }).await?),
        Request::ModelExport { rev, path } => {
            let path = absolute(path)?;
            Response::ModelExported(ask(manager, ModelExport { rev, path }).await?)
        }
        Request::ModelImport { path } => {
            let path = absolute(path)?;
            Response::ModelImported(ask(manager, ModelImport { path }).await?)
        }
        Request::ModelDelete {
            model,
            version,
            force,
        } => Response::ModelDeleted(
            ask(
                manager,
                ModelDelete {
                    model,
                    version,
                    force,
                },
            )
            .await?,
        ),
        Request::ModelTag { rev, name, message } => {
            let model_id = rev.split('@').next().unwrap_or_default().to_owned();
            let op = RefMove::Tag {
                model_id,
                name,
                rev,
                message,
                who,
            };
            Response::ModelMoved(ask(manager, Agree(op)).await?)
        }
        Request::ModelBranch { model, name, from } => {
            let op = RefMove::Branch {
                model_id: model,
                name,
                from,
                who,
            };
            Response::ModelMoved(ask(manager, Agree(op)).await?)
        }
        Request::ModelRollback { model, to, branch } => {
            let op = RefMove::Rollback {
                model_id: model,
                branch,
                to,
                who,
            };
            Response::ModelMoved(ask(manager, Agree(op)).await?)
        }
        Request::ModelVerify { rev } => {
            Response::ModelVerified(ask(manager, Verify { rev }).await?)
        }
        _ => {
            return Err(ControlError::new(
                ErrorCode::Internal,
                "not a model request",
            ));
        }
    })
}

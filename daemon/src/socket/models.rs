//! Control-socket requests about model history and agreement, translated into ModelManager
//! messages (the ModelManager coordinates tag, branch and rollback across the participants).

use consort_actors::model_manager::{
    Agree, ModelDelete, ModelDiff, ModelExport, ModelImport, ModelLog, ModelReflog, Verify,
};
use consort_actors::model_rpc::RefMove;
use consort_protocol::{ControlError, ErrorCode, Request, Response};

use crate::failure::{control_error, mailbox_error};
use crate::jobs::absolute;
use crate::server::ServerState;

/// Answers model history and agreement requests.
pub(crate) async fn handle(
    state: &ServerState,
    request: Request,
) -> Result<Response, ControlError> {
    let manager = &state.actors.model_manager;
    let who = state.status.party.clone();
    let failed = |e| mailbox_error("model manager", e);
    Ok(match request {
        Request::ModelLog { model, branch, all } => Response::ModelLog {
            entries: manager
                .send(ModelLog { model, branch, all })
                .await
                .map_err(failed)?
                .map_err(control_error)?,
        },
        Request::ModelReflog { model, reference } => Response::ModelReflog {
            entries: manager
                .send(ModelReflog { model, reference })
                .await
                .map_err(failed)?
                .map_err(control_error)?,
        },
        Request::ModelDiff { a, b } => Response::ModelDiff(
            manager
                .send(ModelDiff { a, b })
                .await
                .map_err(failed)?
                .map_err(control_error)?,
        ),
        Request::ModelExport { rev, path } => {
            let path = absolute(path)?;
            Response::ModelExported(
                manager
                    .send(ModelExport { rev, path })
                    .await
                    .map_err(failed)?
                    .map_err(control_error)?,
            )
        }
        Request::ModelImport { path } => {
            let path = absolute(path)?;
            Response::ModelImported(
                manager
                    .send(ModelImport { path })
                    .await
                    .map_err(failed)?
                    .map_err(control_error)?,
            )
        }
        Request::ModelDelete {
            model,
            version,
            force,
        } => Response::ModelDeleted(
            manager
                .send(ModelDelete {
                    model,
                    version,
                    force,
                })
                .await
                .map_err(failed)?
                .map_err(control_error)?,
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
            Response::ModelMoved(
                manager
                    .send(Agree(op))
                    .await
                    .map_err(failed)?
                    .map_err(control_error)?,
            )
        }
        Request::ModelBranch { model, name, from } => {
            let op = RefMove::Branch {
                model_id: model,
                name,
                from,
                who,
            };
            Response::ModelMoved(
                manager
                    .send(Agree(op))
                    .await
                    .map_err(failed)?
                    .map_err(control_error)?,
            )
        }
        Request::ModelRollback { model, to, branch } => {
            let op = RefMove::Rollback {
                model_id: model,
                branch,
                to,
                who,
            };
            Response::ModelMoved(
                manager
                    .send(Agree(op))
                    .await
                    .map_err(failed)?
                    .map_err(control_error)?,
            )
        }
        Request::ModelVerify { rev } => Response::ModelVerified(
            manager
                .send(Verify { rev })
                .await
                .map_err(failed)?
                .map_err(control_error)?,
        ),
        _ => {
            return Err(ControlError::new(
                ErrorCode::Internal,
                "not a model request",
            ));
        }
    })
}

//! Control-socket requests about model history and agreement, translated into ModelManager
//! messages (the ModelManager coordinates tag, branch and rollback across the participants).

use consort_actors::model_manager::{
    Agree, ModelDelete, ModelDiff, ModelExport, ModelImport, ModelLog, ModelReflog, Verify,
};
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
    let reply = match request {
        Request::ModelLog { model, branch, all } => {
            manager.send(ModelLog { model, branch, all }).await
        }
        Request::ModelReflog { model, reference } => {
            manager.send(ModelReflog { model, reference }).await
        }
        Request::ModelDiff { a, b } => manager.send(ModelDiff { a, b }).await,
        Request::ModelExport { rev, path } => {
            let path = absolute(path)?;
            manager.send(ModelExport { rev, path }).await
        }
        Request::ModelImport { path } => {
            let path = absolute(path)?;
            manager.send(ModelImport { path }).await
        }
        Request::ModelDelete {
            model,
            version,
            force,
        } => {
            manager
                .send(ModelDelete {
                    model,
                    version,
                    force,
                })
                .await
        }
        Request::ModelTag { rev, name, message } => {
            let model_id = rev.split('@').next().unwrap_or_default().to_owned();
            let op = consort_actors::model_rpc::RefMove::Tag {
                model_id,
                name,
                rev,
                message,
                who,
            };
            manager.send(Agree(op)).await
        }
        Request::ModelBranch { model, name, from } => {
            let op = consort_actors::model_rpc::RefMove::Branch {
                model_id: model,
                name,
                from,
                who,
            };
            manager.send(Agree(op)).await
        }
        Request::ModelRollback { model, to, branch } => {
            let op = consort_actors::model_rpc::RefMove::Rollback {
                model_id: model,
                branch,
                to,
                who,
            };
            manager.send(Agree(op)).await
        }
        Request::ModelVerify { rev } => manager.send(Verify { rev }).await,
        _ => {
            return Err(ControlError::new(
                ErrorCode::Internal,
                "not a model request",
            ));
        }
    };
    let value = reply
        .map_err(|e| mailbox_error("model manager", e))?
        .map_err(control_error)?;
    Ok(Response::ModelJson { value })
}

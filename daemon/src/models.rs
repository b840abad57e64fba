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
    let kind = Kind::of(&request);
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
    kind.reply(value)
}

/// Which typed reply a model request gets.
#[derive(Clone, Copy)]
enum Kind {
    Log,
    Reflog,
    Diff,
    Export,
    Import,
    Delete,
    Moved,
    Verify,
    Other,
}

impl Kind {
    fn of(request: &Request) -> Self {
        match request {
            Request::ModelLog { .. } => Self::Log,
            Request::ModelReflog { .. } => Self::Reflog,
            Request::ModelDiff { .. } => Self::Diff,
            Request::ModelExport { .. } => Self::Export,
            Request::ModelImport { .. } => Self::Import,
            Request::ModelDelete { .. } => Self::Delete,
            Request::ModelTag { .. }
            | Request::ModelBranch { .. }
            | Request::ModelRollback { .. } => Self::Moved,
            Request::ModelVerify { .. } => Self::Verify,
            _ => Self::Other,
        }
    }

    /// The ModelManager's answer (the storage types' JSON form) as the protocol's typed reply:
    /// the protocol types mirror the storage ones field by field.
    fn reply(self, value: serde_json::Value) -> Result<Response, ControlError> {
        fn typed<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, ControlError> {
            serde_json::from_value(v)
                .map_err(|e| ControlError::new(ErrorCode::Internal, format!("model reply: {e}")))
        }
        Ok(match self {
            Self::Log => Response::ModelLog {
                entries: typed(value)?,
            },
            Self::Reflog => Response::ModelReflog {
                entries: typed(value)?,
            },
            Self::Diff => Response::ModelDiff(typed(value)?),
            Self::Export => Response::ModelExported(typed(value)?),
            Self::Import => Response::ModelImported(typed(value)?),
            Self::Delete => Response::ModelDeleted(typed(value)?),
            Self::Moved => Response::ModelMoved(typed(value)?),
            Self::Verify => Response::ModelVerified(typed(value)?),
            Self::Other => {
                return Err(ControlError::new(
                    ErrorCode::Internal,
                    "not a model request",
                ));
            }
        })
    }
}

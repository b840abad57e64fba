//! Control-socket requests about model history, and the coordinator side of agreement: a
//! tag, branch or rollback of a shared model is prepared at every participant, then committed;
//! if any refuses or cannot be reached, nothing changes anywhere.

use std::collections::BTreeSet;
use std::time::Duration;

use consort_actors::model_rpc::{MODEL_TOPIC, ModelAnswer, ModelRpc, PREPARED_FOR};
use consort_protocol::models::{ExportReport, MoveReport, PartyRevision, VerifyReport};
use consort_protocol::peer::{PeerRequestBody, PeerResponse};
use consort_protocol::{ControlError, ErrorCode, Request, Response};
use consort_storage::{Models, RefMove, StorageError};

use crate::jobs::absolute;
use crate::server::ServerState;

/// How long a participant may take to answer a phase.
const PHASE_DEADLINE: Duration = Duration::from_secs(5);

fn storage_err(e: StorageError) -> ControlError {
    let code = match &e {
        StorageError::ModelNotFound { .. }
        | StorageError::RevNotFound { .. }
        | StorageError::RefNotFound { .. } => ErrorCode::NotFound,
        StorageError::Open { .. } | StorageError::Db { .. } | StorageError::Io { .. } => {
            ErrorCode::Internal
        }
        _ => ErrorCode::InvalidArgument,
    };
    ControlError::new(code, e.to_string())
}

fn internal(e: impl std::fmt::Display) -> ControlError {
    ControlError::new(ErrorCode::Internal, e.to_string())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ControlError> + Send + 'static,
) -> Result<T, ControlError> {
    tokio::task::spawn_blocking(f).await.map_err(internal)?
}

/// The control protocol's mirror of a storage type (same fields; hashes as text, params as
/// [`consort_protocol::json_text::JsonText`]).
fn mirror<T: serde::de::DeserializeOwned>(v: impl serde::Serialize) -> Result<T, ControlError> {
    serde_json::from_value(serde_json::to_value(v).map_err(internal)?).map_err(internal)
}

/// The other parties of model `model_id` (per its newest version here).
fn participants(models: &Models, model_id: &str, me: &str) -> Result<Vec<String>, ControlError> {
    let versions = models.versions_of(model_id).map_err(storage_err)?;
    let newest = versions.last().ok_or_else(|| {
        ControlError::new(ErrorCode::NotFound, format!("no model {model_id} here"))
    })?;
    let parties: BTreeSet<String> = newest
        .parties
        .iter()
        .filter_map(|rp| rp.split_once(':').map(|(_, p)| p.to_owned()))
        .filter(|p| p != me)
        .collect();
    Ok(parties.into_iter().collect())
}

async fn ask(state: &ServerState, party: &str, rpc: &ModelRpc) -> Result<ModelAnswer, String> {
    let body = rmp_serde::to_vec_named(rpc).map_err(|e| e.to_string())?;
    let req = PeerRequestBody::App {
        topic: MODEL_TOPIC.to_owned(),
        body,
    };
    match state.net.request(party, req, PHASE_DEADLINE).await {
        Ok(PeerResponse::App { body }) => {
            rmp_serde::from_slice(&body).map_err(|e| format!("malformed answer: {e}"))
        }
        Ok(PeerResponse::Error { message }) => Err(message),
        Ok(other) => Err(format!("unexpected answer {other:?}")),
        Err(e) => Err(format!("unreachable: {e}")),
    }
}

/// Two-phase move: check here, prepare at every participant, then apply everywhere.
async fn agree(state: &ServerState, op: RefMove, model_id: &str) -> Result<Response, ControlError> {
    let me = state.status.party.clone();
    // The revision naming the moved ref, for `consort model verify`.
    let moved = match &op {
        RefMove::Tag { name, .. } | RefMove::Branch { name, .. } => format!("{model_id}@{name}"),
        RefMove::Rollback { branch, .. } => format!("{model_id}@{branch}"),
    };
    let (models, op2, mid) = (state.models.clone(), op.clone(), model_id.to_owned());
    let others = blocking(move || {
        models.check_move(&op2).map_err(storage_err)?;
        participants(&models, &mid, &me)
    })
    .await?;
    let tx: u64 = rand_tx();
    let prepare = ModelRpc::Prepare { tx, op: op.clone() };
    let answers = futures::future::join_all(others.iter().map(|p| ask(state, p, &prepare))).await;
    let mut problems = Vec::new();
    // Who holds the move prepared, and who may (no answer: the prepare may have arrived).
    let (mut prepared, mut unknown) = (Vec::new(), Vec::new());
    for (party, answer) in others.iter().zip(answers) {
        match answer {
            Ok(ModelAnswer::Ok) => prepared.push(party.clone()),
            Ok(ModelAnswer::Refused { reason }) => {
                problems.push(format!("{party} refused: {reason}"))
            }
            Ok(other) => problems.push(format!("{party} answered {other:?}")),
            Err(e) => {
                problems.push(format!("{party}: {e}"));
                unknown.push(party.clone());
            }
        }
    }
    if !problems.is_empty() {
        let abort = ModelRpc::Abort { tx };
        // Those that did not answer get the abort too, without waiting for them once more.
        if let Ok(body) = rmp_serde::to_vec_named(&abort) {
            for party in &unknown {
                let (net, party, body) = (state.net.clone(), party.clone(), body.clone());
                tokio::spawn(async move {
                    let req = PeerRequestBody::App {
                        topic: MODEL_TOPIC.to_owned(),
                        body,
                    };
                    let _ = net.request(&party, req, PHASE_DEADLINE).await;
                });
            }
        }
        let answers =
            futures::future::join_all(prepared.iter().map(|p| ask(state, p, &abort))).await;
        let (mut aborted, mut missed) = (Vec::new(), Vec::new());
        for (p, a) in prepared.iter().zip(answers) {
            match a {
                Ok(ModelAnswer::Ok) => aborted.push(p.clone()),
                Ok(other) => missed.push(format!("{p} (answered {other:?})")),
                Err(e) => missed.push(format!("{p} ({e})")),
            }
        }
        let mut message = format!("nothing changed anywhere: {}", problems.join("; "));
        if !aborted.is_empty() {
            message.push_str(&format!("; aborted at {}", aborted.join(", ")));
        }
        if !missed.is_empty() {
            message.push_str(&format!(
                "; the abort did not reach {}: the move stays prepared there, holding its ref, \
                 for at most {} s",
                missed.join("; "),
                PREPARED_FOR.as_secs()
            ));
        }
        if !unknown.is_empty() {
            message.push_str(&format!(
                "; abort sent to {} in case the prepare arrived",
                unknown.join(", ")
            ));
        }
        return Err(ControlError::new(ErrorCode::Unreachable, message));
    }
    let models = state.models.clone();
    let commit = blocking(move || models.apply_move(&op).map_err(storage_err)).await?;
    let done = ModelRpc::Commit { tx };
    let answers = futures::future::join_all(others.iter().map(|p| ask(state, p, &done))).await;
    let (mut confirmed, mut failed) = (Vec::new(), Vec::new());
    for (p, a) in others.iter().zip(answers) {
        match a {
            Ok(ModelAnswer::Ok) => confirmed.push(p.clone()),
            Ok(ModelAnswer::Refused { reason }) => failed.push(format!("{p} (refused: {reason})")),
            Ok(other) => failed.push(format!("{p} (answered {other:?})")),
            Err(e) => failed.push(format!("{p} ({e})")),
        }
    }
    if !failed.is_empty() {
        let also = if confirmed.is_empty() {
            String::new()
        } else {
            format!(" and at {} (confirmed)", confirmed.join(", "))
        };
        return Err(ControlError::new(
            ErrorCode::Unreachable,
            format!(
                "applied at {}{also}; not confirmed by {}: it may have applied it or may still \
                 hold it prepared (run `consort model verify {moved}`)",
                state.status.party,
                failed.join("; ")
            ),
        ));
    }
    let mut parties = vec![state.status.party.clone()];
    parties.extend(others);
    Ok(Response::ModelMoved(MoveReport {
        commit: commit.as_str().to_owned(),
        parties,
    }))
}

fn rand_tx() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Answers model history and agreement requests.
pub(crate) async fn handle(
    state: &ServerState,
    request: Request,
) -> Result<Response, ControlError> {
    let models = state.models.clone();
    let who = state.status.party.clone();
    match request {
        Request::ModelLog { model, branch, all } => {
            blocking(move || {
                let entries = models
                    .log(&model, branch.as_deref(), all)
                    .map_err(storage_err)?;
                Ok(Response::ModelLog {
                    entries: mirror(entries)?,
                })
            })
            .await
        }
        Request::ModelReflog { model, reference } => {
            blocking(move || {
                let r = reference.map(|r| {
                    if r.contains('/') {
                        r
                    } else {
                        format!("heads/{r}")
                    }
                });
                let entries = models.reflog(&model, r.as_deref()).map_err(storage_err)?;
                Ok(Response::ModelReflog {
                    entries: mirror(entries)?,
                })
            })
            .await
        }
        Request::ModelDiff { a, b } => {
            blocking(move || {
                let diff = models.diff(&a, &b).map_err(storage_err)?;
                Ok(Response::ModelDiff(mirror(diff)?))
            })
            .await
        }
        Request::ModelExport { rev, path } => {
            let path = absolute(path)?;
            blocking(move || {
                let tmp = path.with_extension("partial");
                let file = std::fs::File::create(&tmp)
                    .map_err(|e| internal(format!("cannot write {}: {e}", tmp.display())))?;
                let mut w = std::io::BufWriter::new(file);
                let (commit, bytes) = models.export(&rev, &mut w).map_err(storage_err)?;
                let file = w.into_inner().map_err(|e| internal(e.to_string()))?;
                file.sync_all().map_err(internal)?;
                std::fs::rename(&tmp, &path).map_err(internal)?;
                Ok(Response::ModelExported(ExportReport {
                    commit: commit.as_str().to_owned(),
                    bytes,
                    path: path.display().to_string(),
                }))
            })
            .await
        }
        Request::ModelImport { path } => {
            let path = absolute(path)?;
            blocking(move || {
                let file = std::fs::File::open(&path).map_err(|e| {
                    ControlError::new(
                        ErrorCode::InvalidArgument,
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                let report = models
                    .import(std::io::BufReader::new(file))
                    .map_err(storage_err)?;
                Ok(Response::ModelImported(mirror(report)?))
            })
            .await
        }
        Request::ModelDelete {
            model,
            version,
            force,
        } => {
            blocking(move || {
                let report = models
                    .delete(&model, &version, force)
                    .map_err(storage_err)?;
                Ok(Response::ModelDeleted(mirror(report)?))
            })
            .await
        }
        Request::ModelTag { rev, name, message } => {
            let model_id = rev.split('@').next().unwrap_or_default().to_owned();
            let op = RefMove::Tag {
                model_id: model_id.clone(),
                name,
                rev,
                message,
                who,
            };
            agree(state, op, &model_id).await
        }
        Request::ModelBranch { model, name, from } => {
            let op = RefMove::Branch {
                model_id: model.clone(),
                name,
                from,
                who,
            };
            agree(state, op, &model).await
        }
        Request::ModelRollback { model, to, branch } => {
            let op = RefMove::Rollback {
                model_id: model.clone(),
                branch,
                to,
                who,
            };
            agree(state, op, &model).await
        }
        Request::ModelVerify { rev } => {
            let model_id = rev.split('@').next().unwrap_or_default().to_owned();
            let (m2, r2, me) = (models.clone(), rev.clone(), who.clone());
            let (mine, others) = blocking(move || {
                let mine = m2.resolve(&r2).map_err(storage_err)?;
                Ok((mine, participants(&m2, &model_id, &me)?))
            })
            .await?;
            let mut parties = vec![PartyRevision {
                party: who,
                version: Some(mine.1.model_version.clone()),
                commit: Some(mine.0.as_str().to_owned()),
                error: None,
            }];
            let failed = |party: &String, error: String| PartyRevision {
                party: party.clone(),
                version: None,
                commit: None,
                error: Some(error),
            };
            // Parties naming another version than this one, or none.
            let mut differing = Vec::new();
            let q = ModelRpc::Resolve { rev: rev.clone() };
            let answers = futures::future::join_all(others.iter().map(|p| ask(state, p, &q))).await;
            for (party, answer) in others.iter().zip(answers) {
                match answer {
                    Ok(ModelAnswer::Resolved { version, commit }) => {
                        if version != mine.1.model_version {
                            differing.push(party.clone());
                        }
                        parties.push(PartyRevision {
                            party: party.clone(),
                            version: Some(version),
                            commit: Some(commit),
                            error: None,
                        });
                    }
                    Ok(ModelAnswer::Refused { reason }) => {
                        differing.push(party.clone());
                        parties.push(failed(party, reason));
                    }
                    Ok(other) => {
                        differing.push(party.clone());
                        parties.push(failed(party, format!("{other:?}")));
                    }
                    Err(e) => {
                        differing.push(party.clone());
                        parties.push(failed(party, e));
                    }
                }
            }
            let consistent = differing.is_empty();
            Ok(Response::ModelVerified(VerifyReport {
                rev,
                consistent,
                parties,
                differing,
            }))
        }
        _ => Err(internal("not a model request")),
    }
}

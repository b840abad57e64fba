//! The coordinator side of model agreement: a tag, branch or rollback of a shared model is
//! prepared at every participant, then committed; if any refuses or cannot be reached, nothing
//! changes anywhere. And [`Verify`]: which version a revision names at every participant.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use actix::{Context, Handler, Message, ResponseFuture};
use consort_protocol::models::{MoveReport, PartyRevision, VerifyReport};
use consort_protocol::peer::{PeerRequestBody, PeerResponse};
use consort_storage::{Models, RefMove};

use super::peer::model_of;
use super::{Inner, ModelManager};
use crate::failure::{Failure, blocking};
use crate::model_rpc::{MODEL_TOPIC, ModelAnswer, ModelRpc, PREPARED_FOR};

/// How long a participant may take to answer a phase.
const PHASE_DEADLINE: Duration = Duration::from_secs(5);

/// Moves a shared model's ref at every participant, or nowhere.
#[derive(Debug, Clone)]
pub struct Agree(pub RefMove);

impl Message for Agree {
    type Result = Result<MoveReport, Failure>;
}

/// Handler for [`Agree`]: check here, prepare at every participant, then apply everywhere.
impl Handler<Agree> for ModelManager {
    type Result = ResponseFuture<Result<MoveReport, Failure>>;

    fn handle(&mut self, msg: Agree, _ctx: &mut Context<Self>) -> Self::Result {
        let inner = self.inner();
        Box::pin(async move { agree(inner?, msg.0).await })
    }
}

/// Which version `ID@REV` names here and at every other participant.
#[derive(Debug, Clone)]
pub struct Verify {
    /// `ID@REV`.
    pub rev: String,
}

impl Message for Verify {
    type Result = Result<VerifyReport, Failure>;
}

/// Handler for [`Verify`].
impl Handler<Verify> for ModelManager {
    type Result = ResponseFuture<Result<VerifyReport, Failure>>;

    fn handle(&mut self, msg: Verify, _ctx: &mut Context<Self>) -> Self::Result {
        let inner = self.inner();
        Box::pin(async move { verify(inner?, msg.rev).await })
    }
}

/// The other parties of model `model_id` (per its newest version here).
fn participants(models: &Models, model_id: &str, me: &str) -> Result<Vec<String>, Failure> {
    let versions = models.versions_of(model_id)?;
    let newest = versions
        .last()
        .ok_or_else(|| Failure::NotFound(format!("no model {model_id} here")))?;
    let parties: BTreeSet<String> = newest
        .parties
        .iter()
        .filter_map(|rp| rp.split_once(':').map(|(_, p)| p.to_owned()))
        .filter(|p| p != me)
        .collect();
    Ok(parties.into_iter().collect())
}

async fn ask(inner: &Inner, party: &str, rpc: &ModelRpc) -> Result<ModelAnswer, String> {
    let body = rmp_serde::to_vec_named(rpc).map_err(|e| e.to_string())?;
    let req = PeerRequestBody::App {
        topic: MODEL_TOPIC.to_owned(),
        body,
    };
    match inner.deps.net.request(party, req, PHASE_DEADLINE).await {
        Ok(PeerResponse::App { body }) => {
            rmp_serde::from_slice(&body).map_err(|e| format!("malformed answer: {e}"))
        }
        Ok(PeerResponse::Error { message }) => Err(message),
        Ok(other) => Err(format!("unexpected answer {other:?}")),
        Err(e) => Err(format!("unreachable: {e}")),
    }
}

async fn agree(inner: Arc<Inner>, op: RefMove) -> Result<MoveReport, Failure> {
    let me = inner.deps.me.to_string();
    let model_id = model_of(&op).to_owned();
    // The revision naming the moved ref, for `consort model verify`.
    let moved = match &op {
        RefMove::Tag { name, .. } | RefMove::Branch { name, .. } => format!("{model_id}@{name}"),
        RefMove::Rollback { branch, .. } => format!("{model_id}@{branch}"),
    };
    let (models, op2, mid, me2) = (
        inner.deps.models.clone(),
        op.clone(),
        model_id.clone(),
        me.clone(),
    );
    let others = blocking(move || {
        models.check_move(&op2)?;
        participants(&models, &mid, &me2)
    })
    .await?;
    let tx: u64 = consort_protocol::clock::unique_u64();
    let prepare = ModelRpc::Prepare { tx, op: op.clone() };
    let answers = futures::future::join_all(others.iter().map(|p| ask(&inner, p, &prepare))).await;
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
        return Err(abort(&inner, tx, &problems, &prepared, &unknown).await);
    }
    let models = inner.deps.models.clone();
    let commit = blocking(move || Ok(models.apply_move(&op)?)).await?;
    let done = ModelRpc::Commit { tx };
    let answers = futures::future::join_all(others.iter().map(|p| ask(&inner, p, &done))).await;
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
        return Err(Failure::Unreachable(format!(
            "applied at {me}{also}; not confirmed by {}: it may have applied it or may still \
             hold it prepared (run `consort model verify {moved}`)",
            failed.join("; ")
        )));
    }
    let mut parties = vec![me];
    parties.extend(others);
    Ok(MoveReport {
        commit: commit.as_str().to_owned(),
        parties,
    })
}

/// Aborts a move some participant refused or did not answer; the error names who holds what.
async fn abort(
    inner: &Arc<Inner>,
    tx: u64,
    problems: &[String],
    prepared: &[String],
    unknown: &[String],
) -> Failure {
    let abort = ModelRpc::Abort { tx };
    // Those that did not answer get the abort too, without waiting for them once more.
    if let Ok(body) = rmp_serde::to_vec_named(&abort) {
        for party in unknown {
            let (net, party, body) = (inner.deps.net.clone(), party.clone(), body.clone());
            tokio::spawn(async move {
                let req = PeerRequestBody::App {
                    topic: MODEL_TOPIC.to_owned(),
                    body,
                };
                let _ = net.request(&party, req, PHASE_DEADLINE).await;
            });
        }
    }
    let answers = futures::future::join_all(prepared.iter().map(|p| ask(inner, p, &abort))).await;
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
    Failure::Unreachable(message)
}

async fn verify(inner: Arc<Inner>, rev: String) -> Result<VerifyReport, Failure> {
    let who = inner.deps.me.to_string();
    let model_id = rev.split('@').next().unwrap_or_default().to_owned();
    let (m2, r2, me) = (inner.deps.models.clone(), rev.clone(), who.clone());
    let (mine, others) = blocking(move || {
        let mine = m2.resolve(&r2)?;
        Ok((mine, participants(&m2, &model_id, &me)?))
    })
    .await?;
    let at = |party: &str, version: String, commit: String| PartyRevision {
        party: party.to_owned(),
        version: Some(version),
        commit: Some(commit),
        error: None,
    };
    let failed = |party: &str, error: String| PartyRevision {
        party: party.to_owned(),
        version: None,
        commit: None,
        error: Some(error),
    };
    let mut parties = vec![at(
        &who,
        mine.1.model_version.clone(),
        mine.0.as_str().to_owned(),
    )];
    // Parties naming another version than this one, or none.
    let mut differing = Vec::new();
    let q = ModelRpc::Resolve { rev: rev.clone() };
    let answers = futures::future::join_all(others.iter().map(|p| ask(&inner, p, &q))).await;
    for (party, answer) in others.iter().zip(answers) {
        match answer {
            Ok(ModelAnswer::Resolved { version, commit }) => {
                if version != mine.1.model_version {
                    differing.push(party.clone());
                }
                parties.push(at(party, version, commit));
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
    Ok(VerifyReport {
        rev,
        consistent,
        parties,
        differing,
    })
}

//! The participant side of model agreement: a partner asks us to prepare, commit or abort a
//! move of a shared model's ref, or which version a revision names here.
//!
//! A party answers only a participant of the model (one of the `role:party` entries of its
//! newest version here), and the move it records names the asking party as `who`, whatever the
//! message says.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix::{Context, Handler, ResponseFuture};
use consort_protocol::PartyName;
use consort_protocol::peer::PeerResponse;
use consort_storage::{Models, RefMove};

use super::ModelManager;
use crate::model_rpc::{ModelAnswer, ModelRpc, PREPARED_FOR};
use crate::network_actor::PeerRequest;

/// Most moves held prepared at once (bounds what partners can make us keep).
const MAX_PREPARED: usize = 1024;

/// Handler for a partner's [`PeerRequest`] on [`MODEL_TOPIC`](crate::model_rpc::MODEL_TOPIC):
/// answered on a blocking thread.
impl Handler<PeerRequest> for ModelManager {
    type Result = ResponseFuture<PeerResponse>;

    fn handle(&mut self, msg: PeerRequest, _ctx: &mut Context<Self>) -> Self::Result {
        let inner = self.inner();
        Box::pin(async move {
            let inner = match inner {
                Ok(i) => i,
                Err(e) => {
                    return PeerResponse::Error {
                        message: e.to_string(),
                    };
                }
            };
            tokio::task::spawn_blocking(move || {
                let deps = &inner.deps;
                handle(
                    &deps.models,
                    &inner.prepared,
                    &deps.me,
                    &msg.party,
                    &msg.body,
                )
            })
            .await
            .unwrap_or_else(|e| PeerResponse::Error {
                message: format!("handler failed: {e}"),
            })
        })
    }
}

/// A prepared move and when it was prepared, by coordinator and transaction.
type Held = HashMap<(PartyName, u64), (RefMove, Instant)>;

/// Moves prepared here, by coordinator and transaction.
#[derive(Debug, Clone, Default)]
pub(crate) struct Prepared(Arc<Mutex<Held>>);

pub(crate) fn model_of(op: &RefMove) -> &str {
    match op {
        RefMove::Tag { model_id, .. }
        | RefMove::Branch { model_id, .. }
        | RefMove::Rollback { model_id, .. } => model_id,
    }
}

/// The ref a move changes: (model, `heads/NAME` or `tags/NAME`).
fn ref_of(op: &RefMove) -> (&str, String) {
    match op {
        RefMove::Tag { model_id, name, .. } => (model_id, format!("tags/{name}")),
        RefMove::Branch { model_id, name, .. } => (model_id, format!("heads/{name}")),
        RefMove::Rollback {
            model_id, branch, ..
        } => (model_id, format!("heads/{branch}")),
    }
}

fn with_who(op: RefMove, who: String) -> RefMove {
    match op {
        RefMove::Tag {
            model_id,
            name,
            rev,
            message,
            ..
        } => RefMove::Tag {
            model_id,
            name,
            rev,
            message,
            who,
        },
        RefMove::Branch {
            model_id,
            name,
            from,
            ..
        } => RefMove::Branch {
            model_id,
            name,
            from,
            who,
        },
        RefMove::Rollback {
            model_id,
            branch,
            to,
            ..
        } => RefMove::Rollback {
            model_id,
            branch,
            to,
            who,
        },
    }
}

/// Whether `party` takes part in model `model_id` (per the newest version held here).
pub(crate) fn is_participant(models: &Models, model_id: &str, party: &PartyName) -> bool {
    models
        .versions_of(model_id)
        .ok()
        .and_then(|v| v.into_iter().last())
        .is_some_and(|v| {
            v.parties
                .iter()
                .any(|rp| rp.split_once(':').is_some_and(|(_, p)| p == party.as_str()))
        })
}

/// Answers a model-protocol request from `from` (the authenticated sender).
pub(crate) fn handle(
    models: &Models,
    prepared: &Prepared,
    me: &PartyName,
    from: &PartyName,
    body: &[u8],
) -> PeerResponse {
    let answer = match rmp_serde::from_slice::<ModelRpc>(body) {
        Err(e) => ModelAnswer::Refused {
            reason: format!("malformed model request: {e}"),
        },
        Ok(rpc) => answer(models, prepared, me, from, rpc),
    };
    match rmp_serde::to_vec_named(&answer) {
        Ok(body) => PeerResponse::App { body },
        Err(e) => PeerResponse::Error {
            message: e.to_string(),
        },
    }
}

fn refused(reason: impl Into<String>) -> ModelAnswer {
    ModelAnswer::Refused {
        reason: reason.into(),
    }
}

fn answer(
    models: &Models,
    prepared: &Prepared,
    me: &PartyName,
    from: &PartyName,
    rpc: ModelRpc,
) -> ModelAnswer {
    let mut held = prepared.0.lock().unwrap_or_else(|e| e.into_inner());
    held.retain(|_, (_, at)| at.elapsed() < PREPARED_FOR);
    match rpc {
        ModelRpc::Prepare { tx, op } => {
            let model = model_of(&op).to_owned();
            if !is_participant(models, &model, from) {
                return refused(format!(
                    "{from} is not a participant of model {model} at {me}"
                ));
            }
            if held.len() >= MAX_PREPARED {
                return refused(format!(
                    "{me} holds too many prepared moves; try again later"
                ));
            }
            let op = with_who(op, from.to_string());
            // A prepared move holds its ref until committed, aborted or expired: two
            // coordinators must not both be promised the same ref (both would apply here, in
            // whatever order their commits arrive, and the parties would end up disagreeing).
            let target = ref_of(&op);
            if let Some(((holder, _), _)) = held
                .iter()
                .find(|(key, (other, _))| **key != (from.clone(), tx) && ref_of(other) == target)
            {
                return refused(format!(
                    "{} of model {} is being moved by {holder} (prepared at {me}, not yet \
                     committed or aborted)",
                    target.1, target.0
                ));
            }
            match models.check_move(&op) {
                Ok(()) => {
                    held.insert((from.clone(), tx), (op, Instant::now()));
                    ModelAnswer::Ok
                }
                Err(e) => refused(e.to_string()),
            }
        }
        ModelRpc::Commit { tx } => match held.remove(&(from.clone(), tx)) {
            None => refused(format!(
                "no prepared move {tx} from {from} at {me} (expired?)"
            )),
            Some((op, _)) => match models.apply_move(&op) {
                Ok(_) => ModelAnswer::Ok,
                Err(e) => refused(e.to_string()),
            },
        },
        ModelRpc::Abort { tx } => {
            held.remove(&(from.clone(), tx));
            ModelAnswer::Ok
        }
        ModelRpc::Resolve { rev } => {
            let model = rev.split('@').next().unwrap_or_default().to_owned();
            if !is_participant(models, &model, from) {
                return refused(format!("{me} holds no model {model} shared with {from}"));
            }
            match models.resolve(&rev) {
                Ok((id, commit)) => ModelAnswer::Resolved {
                    version: commit.model_version,
                    commit: id.as_str().to_owned(),
                },
                Err(e) => refused(e.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use consort_storage::{ModelPart, ModelVersion, Store};

    fn party(s: &str) -> PartyName {
        PartyName::new(s).expect("party")
    }

    fn store_with_two_versions(dir: &std::path::Path) -> Models {
        let store = Store::temporary().expect("store");
        let models = Models::open(&store, dir).expect("models");
        for (v, bytes) in [("j0001", b"one".as_slice()), ("j0002", b"two".as_slice())] {
            let artifact = models.put_artifact(bytes).expect("artifact");
            models
                .put_version(&ModelVersion {
                    model_id: "m.1".into(),
                    version: v.into(),
                    name: "m".into(),
                    party: "bank-a".into(),
                    parties: vec!["guest:bank-a".into(), "host:insurer-b".into()],
                    created_at_ms: 0,
                    parts: vec![ModelPart {
                        task: "lr".into(),
                        component: "hetero_lr".into(),
                        role: "guest".into(),
                        artifact,
                        bytes: 3,
                        params: serde_json::json!({}),
                    }],
                    metrics: Default::default(),
                })
                .expect("version");
        }
        models
    }

    fn ask(models: &Models, prepared: &Prepared, from: &str, rpc: &ModelRpc) -> ModelAnswer {
        let body = rmp_serde::to_vec_named(rpc).expect("encode");
        match handle(models, prepared, &party("bank-a"), &party(from), &body) {
            PeerResponse::App { body } => rmp_serde::from_slice(&body).expect("answer"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn prepare_then_commit_moves_the_ref_and_records_the_sender() {
        let dir = tempfile::tempdir().expect("tmp");
        let (models, prepared) = (store_with_two_versions(dir.path()), Prepared::default());
        let op = RefMove::Rollback {
            model_id: "m.1".into(),
            branch: "main".into(),
            to: "j0001".into(),
            who: "somebody else".into(),
        };
        let prepare = ModelRpc::Prepare { tx: 7, op };
        assert_eq!(
            ask(&models, &prepared, "insurer-b", &prepare),
            ModelAnswer::Ok
        );
        // Nothing moves before the commit.
        let head = |m: &Models| m.resolve("m.1@main").expect("main").1.model_version;
        assert_eq!(head(&models), "j0002");
        // Another party cannot commit insurer-b's transaction.
        assert!(matches!(
            ask(&models, &prepared, "bank-a", &ModelRpc::Commit { tx: 7 }),
            ModelAnswer::Refused { .. }
        ));
        assert_eq!(
            ask(&models, &prepared, "insurer-b", &ModelRpc::Commit { tx: 7 }),
            ModelAnswer::Ok
        );
        assert_eq!(head(&models), "j0001");
        let reflog = models.reflog("m.1", Some("heads/main")).expect("reflog");
        assert_eq!(reflog[0].who, "insurer-b");
        // Resolve answers the version a revision names here.
        assert_eq!(
            ask(
                &models,
                &prepared,
                "insurer-b",
                &ModelRpc::Resolve {
                    rev: "m.1@main".into()
                }
            ),
            ModelAnswer::Resolved {
                version: "j0001".into(),
                commit: models
                    .resolve("m.1@main")
                    .expect("main")
                    .0
                    .as_str()
                    .to_owned(),
            }
        );
    }

    #[test]
    fn outsiders_aborts_and_bad_bytes_are_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let (models, prepared) = (store_with_two_versions(dir.path()), Prepared::default());
        let tag = ModelRpc::Prepare {
            tx: 1,
            op: RefMove::Tag {
                model_id: "m.1".into(),
                name: "good".into(),
                rev: "j0001".into(),
                message: String::new(),
                who: String::new(),
            },
        };
        assert!(matches!(
            ask(&models, &prepared, "clinic-c", &tag),
            ModelAnswer::Refused { reason } if reason.contains("not a participant")
        ));
        assert!(matches!(
            ask(
                &models,
                &prepared,
                "clinic-c",
                &ModelRpc::Resolve {
                    rev: "m.1@main".into()
                }
            ),
            ModelAnswer::Refused { .. }
        ));
        assert_eq!(ask(&models, &prepared, "insurer-b", &tag), ModelAnswer::Ok);
        assert_eq!(
            ask(&models, &prepared, "insurer-b", &ModelRpc::Abort { tx: 1 }),
            ModelAnswer::Ok
        );
        assert!(matches!(
            ask(&models, &prepared, "insurer-b", &ModelRpc::Commit { tx: 1 }),
            ModelAnswer::Refused { .. }
        ));
        assert!(models.resolve("m.1@good").is_err(), "aborted: no tag");
        let garbage = handle(
            &models,
            &prepared,
            &party("bank-a"),
            &party("insurer-b"),
            b"\xc1",
        );
        let PeerResponse::App { body } = garbage else {
            panic!("{garbage:?}")
        };
        assert!(matches!(
            rmp_serde::from_slice::<ModelAnswer>(&body).expect("answer"),
            ModelAnswer::Refused { .. }
        ));
    }

    #[test]
    fn a_prepared_move_holds_its_ref_until_committed_or_aborted() {
        let dir = tempfile::tempdir().expect("tmp");
        let (models, prepared) = (store_with_two_versions(dir.path()), Prepared::default());
        let rollback = |tx, to: &str| ModelRpc::Prepare {
            tx,
            op: RefMove::Rollback {
                model_id: "m.1".into(),
                branch: "main".into(),
                to: to.into(),
                who: String::new(),
            },
        };
        assert_eq!(
            ask(&models, &prepared, "insurer-b", &rollback(1, "j0001")),
            ModelAnswer::Ok
        );
        // The same prepare again (a retry) is fine; another move of main is not.
        assert_eq!(
            ask(&models, &prepared, "insurer-b", &rollback(1, "j0001")),
            ModelAnswer::Ok
        );
        assert!(matches!(
            ask(&models, &prepared, "insurer-b", &rollback(2, "j0002")),
            ModelAnswer::Refused { reason } if reason.contains("heads/main")
                && reason.contains("being moved by insurer-b")
        ));
        // Other refs are free.
        let tag = ModelRpc::Prepare {
            tx: 3,
            op: RefMove::Tag {
                model_id: "m.1".into(),
                name: "good".into(),
                rev: "j0001".into(),
                message: String::new(),
                who: String::new(),
            },
        };
        assert_eq!(ask(&models, &prepared, "insurer-b", &tag), ModelAnswer::Ok);
        assert_eq!(
            ask(&models, &prepared, "insurer-b", &ModelRpc::Abort { tx: 1 }),
            ModelAnswer::Ok
        );
        assert_eq!(
            ask(&models, &prepared, "insurer-b", &rollback(2, "j0001")),
            ModelAnswer::Ok
        );
        assert_eq!(
            ask(&models, &prepared, "insurer-b", &ModelRpc::Commit { tx: 2 }),
            ModelAnswer::Ok
        );
        assert_eq!(
            ask(&models, &prepared, "insurer-b", &rollback(4, "j0002")),
            ModelAnswer::Ok
        );
    }
}

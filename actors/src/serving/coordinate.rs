//! The guest's side of a service change (deploy, route, promote, rollback, undeploy): the new
//! state is built here, prepared at every host, then every party switches; one refusal or an
//! unreachable host aborts it everywhere and the old state stays, with the error naming the
//! party.

use std::sync::Arc;
use std::time::Duration;

use actix::{ActorFutureExt, Context, ResponseActFuture, WrapFuture};
use consort_protocol::PartyName;
use consort_protocol::peer::{PeerRequestBody, PeerResponse};
use consort_protocol::serving::{ServeRequest, ServeResponse, ServingOptions, valid_service_name};

use super::prepare::{Asker, prepare};
use super::rpc::{SERVING_TOPIC, ServeAnswer, ServeRpc, WireState};
use super::state::{Service, needed, persist};
use super::{Serving, ServingDeps};
use crate::failure::Failure;
use crate::model_manager::LoadForServing;

/// How long a host may take to answer a phase (it may load a model and index a table).
const PHASE_DEADLINE: Duration = Duration::from_secs(15);

/// What a change leaves: the service's new state (None: removed) and the parties that switched.
type Outcome = (Option<Service>, Vec<String>);

impl Serving {
    pub(super) fn change(
        &mut self,
        req: ServeRequest,
        _ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<ServeResponse, Failure>> {
        let name = match &req {
            ServeRequest::Deploy { service, .. }
            | ServeRequest::Undeploy { service }
            | ServeRequest::Route { service, .. }
            | ServeRequest::Promote { service, .. }
            | ServeRequest::Rollback { service } => service.clone(),
            _ => {
                return Box::pin(actix::fut::ready(Err(Failure::Internal(
                    "not a change".into(),
                ))));
            }
        };
        let early = (|| {
            if !valid_service_name(&name) {
                return Err(Failure::Invalid(format!(
                    "'{name}' is not a service name ([a-z0-9][a-z0-9_-]{{0,63}})"
                )));
            }
            if self.busy.contains(&name) {
                return Err(Failure::Invalid(format!(
                    "another change of service {name} is in progress"
                )));
            }
            if self.restoring.contains(&name) {
                return Err(Failure::Unreachable(format!(
                    "service {name} is still being restored; try again in a moment"
                )));
            }
            let deps = self.deps()?;
            let tree = self
                .deployments
                .clone()
                .ok_or_else(|| Failure::Internal("the deployments tree is not open".into()))?;
            Ok((deps, tree))
        })();
        let (deps, tree) = match early {
            Ok(x) => x,
            Err(e) => return Box::pin(actix::fut::ready(Err(e))),
        };
        let current = self.services.get(&name).cloned();
        self.busy.insert(name.clone());
        let n = name.clone();
        Box::pin(
            async move {
                let (wire, options) = plan(&deps, current.as_deref(), req).await?;
                let new = match &wire {
                    Some(w) => Some(
                        prepare(&deps, current.as_deref(), &n, w, &options, Asker::Here)
                            .await
                            .map_err(Failure::Invalid)?,
                    ),
                    None => None,
                };
                let hosts = match (&new, current.as_deref()) {
                    (Some(s), _) | (None, Some(s)) => s.asked_hosts().to_vec(),
                    (None, None) => Vec::new(),
                };
                two_phase(&deps, &n, wire, &hosts).await?;
                persist(tree, n.clone(), new.as_ref().map(|s| s.deployment())).await?;
                let mut parties = vec![deps.me.to_string()];
                parties.extend(hosts.iter().map(|h| h.to_string()));
                Ok::<Outcome, Failure>((new, parties))
            }
            .into_actor(self)
            .map(move |res, act, _| {
                act.busy.remove(&name);
                let (new, parties) = res?;
                let info = new.as_ref().map(|s| s.info());
                act.install(&name, new);
                tracing::info!(service = %name, "service changed at every party");
                Ok(match info {
                    Some(service) => ServeResponse::Service {
                        service: Box::new(service),
                    },
                    None => ServeResponse::Undeployed { parties },
                })
            }),
        )
    }
}

/// The state a request asks for (None: undeploy), and the options it keeps.
async fn plan(
    deps: &ServingDeps,
    current: Option<&Service>,
    req: ServeRequest,
) -> Result<(Option<WireState>, ServingOptions), Failure> {
    let missing = |name: &str| Failure::NotFound(format!("no service {name} here"));
    let state = |split: Vec<(String, u32)>, previous: Option<Vec<(String, u32)>>, model: &str| {
        Some(WireState {
            model_id: model.to_owned(),
            versions: needed(&split, &previous),
            split,
            previous,
        })
    };
    match req {
        ServeRequest::Deploy {
            service,
            model,
            options,
        } => {
            let (model_id, rev) = model.split_once('@').unwrap_or((model.as_str(), "main"));
            let found = deps
                .models
                .send(LoadForServing {
                    model_id: model_id.to_owned(),
                    rev: rev.to_owned(),
                })
                .await??;
            let v = found.version;
            match current {
                None => Ok((state(vec![(v, 100)], None, model_id), options)),
                Some(c) if c.model_id != model_id => Err(Failure::Invalid(format!(
                    "service {service} serves model {}; undeploy it first or choose another name",
                    c.model_id
                ))),
                Some(c) if c.versions.contains_key(&v) => Err(Failure::Invalid(format!(
                    "version {v} is already loaded in service {service}; route traffic to it \
                     with `consort serve route`"
                ))),
                Some(c) => {
                    let mut split = c.split.clone();
                    split.push((v, 0));
                    Ok((
                        state(split, c.previous.clone(), model_id),
                        c.options.clone(),
                    ))
                }
            }
        }
        ServeRequest::Route { service, split } => {
            let c = current.ok_or_else(|| missing(&service))?;
            if split.is_empty() {
                return Err(Failure::Invalid("the split names no version".into()));
            }
            let mut full = Vec::new();
            for (v, w) in split {
                let v = c.version_named(&v).unwrap_or(v);
                if full.iter().any(|(f, _)| *f == v) {
                    return Err(Failure::Invalid(format!("version {v} appears twice")));
                }
                full.push((v, w));
            }
            Ok((
                state(full, Some(c.split.clone()), &c.model_id),
                c.options.clone(),
            ))
        }
        ServeRequest::Promote { service, version } => {
            let c = current.ok_or_else(|| missing(&service))?;
            let v = c.version_named(&version).map_err(Failure::Invalid)?;
            Ok((
                state(vec![(v, 100)], Some(c.split.clone()), &c.model_id),
                c.options.clone(),
            ))
        }
        ServeRequest::Rollback { service } => {
            let c = current.ok_or_else(|| missing(&service))?;
            let previous = c.previous.clone().ok_or_else(|| {
                Failure::Invalid(format!(
                    "service {service} has no earlier split to roll back to"
                ))
            })?;
            Ok((
                state(previous, Some(c.split.clone()), &c.model_id),
                c.options.clone(),
            ))
        }
        ServeRequest::Undeploy { service } => {
            let c = current.ok_or_else(|| missing(&service))?;
            Ok((None, c.options.clone()))
        }
        _ => Err(Failure::Internal("not a change".into())),
    }
}

async fn ask(
    net: &crate::network::NetworkClient,
    party: &str,
    rpc: &ServeRpc,
) -> Result<ServeAnswer, String> {
    let body = rmp_serde::to_vec_named(rpc).map_err(|e| e.to_string())?;
    let req = PeerRequestBody::App {
        topic: SERVING_TOPIC.to_owned(),
        body,
    };
    match net.request(party, req, PHASE_DEADLINE).await {
        Ok(PeerResponse::App { body }) => {
            rmp_serde::from_slice(&body).map_err(|e| format!("malformed answer: {e}"))
        }
        Ok(PeerResponse::Error { message }) => Err(message),
        Ok(other) => Err(format!("unexpected answer {other:?}")),
        Err(e) => Err(format!("unreachable: {e}")),
    }
}

/// Prepares `wire` at every host, then commits it there; aborts everywhere on any problem.
async fn two_phase(
    deps: &Arc<ServingDeps>,
    name: &str,
    wire: Option<WireState>,
    hosts: &[PartyName],
) -> Result<(), Failure> {
    if hosts.is_empty() {
        return Ok(());
    }
    let tx = consort_protocol::clock::unique_u64();
    let prepare = ServeRpc::Prepare {
        tx,
        service: name.to_owned(),
        state: wire,
    };
    let answers =
        futures::future::join_all(hosts.iter().map(|h| ask(&deps.net, h.as_str(), &prepare))).await;
    let mut problems = Vec::new();
    let mut held = Vec::new();
    for (h, a) in hosts.iter().zip(answers) {
        match a {
            Ok(ServeAnswer::Ok) => held.push(h.clone()),
            Ok(ServeAnswer::Refused { reason }) => problems.push(format!("{h} refused: {reason}")),
            Ok(other) => problems.push(format!("{h} answered {other:?}")),
            // It may hold the state prepared: tell it to forget it too.
            Err(e) => {
                problems.push(format!("{h}: {e}"));
                held.push(h.clone());
            }
        }
    }
    if !problems.is_empty() {
        let abort = ServeRpc::Abort { tx };
        let _ = futures::future::join_all(held.iter().map(|h| ask(&deps.net, h.as_str(), &abort)))
            .await;
        return Err(Failure::Invalid(format!(
            "nothing changed anywhere: {}",
            problems.join("; ")
        )));
    }
    let commit = ServeRpc::Commit { tx };
    let answers =
        futures::future::join_all(hosts.iter().map(|h| ask(&deps.net, h.as_str(), &commit))).await;
    let failed: Vec<String> = hosts
        .iter()
        .zip(answers)
        .filter_map(|(h, a)| match a {
            Ok(ServeAnswer::Ok) => None,
            Ok(other) => Some(format!("{h} (answered {other:?})")),
            Err(e) => Some(format!("{h} ({e})")),
        })
        .collect();
    if !failed.is_empty() {
        return Err(Failure::Unreachable(format!(
            "prepared everywhere but not confirmed by {}; this party keeps its old state \
             (run `consort serve show {name}` at each party and repeat the change)",
            failed.join("; ")
        )));
    }
    Ok(())
}

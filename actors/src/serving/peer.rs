//! The host's side: a guest asks this party to prepare, commit or abort a service's new state,
//! or for its partial scores.
//!
//! A host answers only the guest of the model a service serves (checked against the model's
//! own `role:party` list, not the message), reveals only partial scores of a running
//! deployment, and at most its quota of them per minute.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::{ActorFutureExt, Context, Handler, ResponseActFuture, WrapFuture};
use consort_components::serving::HostValue;
use consort_protocol::PartyName;
use consort_protocol::peer::PeerResponse;
use consort_protocol::serving::ServingOptions;
use tracing::{info, warn};

use super::Serving;
use super::prepare::{Asker, prepare};
use super::rpc::{MAX_ID_BYTES, MAX_SCORE_IDS, ServeAnswer, ServeRpc};
use super::state::{Role, Service, Source, persist};
use crate::network_actor::PeerRequest;

/// How long a prepared state waits for its commit.
const PREPARED_FOR: Duration = Duration::from_secs(60);

/// Most states held prepared at once (bounds what partners can make us keep).
const MAX_PREPARED: usize = 16;

/// The default quota: partial scores per minute per service.
pub const DEFAULT_QUOTA_PER_MINUTE: u64 = 600_000;

/// A prepared state: the service, its new state (None: removed), when it was prepared.
type Held = (String, Option<Service>, Instant);

/// What the host side keeps.
#[derive(Default)]
pub(crate) struct PeerState {
    prepared: HashMap<(PartyName, u64), Held>,
    buckets: HashMap<String, Bucket>,
    refused: HashMap<String, u64>,
}

impl PeerState {
    /// Partial-score requests this party refused for `service` (its quota).
    pub(crate) fn refused(&self, service: &str) -> u64 {
        self.refused.get(service).copied().unwrap_or(0)
    }
}

/// A token bucket: `per_minute` ids a minute, bursting up to a minute's worth.
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self, n: usize, per_minute: u64) -> bool {
        let now = Instant::now();
        let cap = per_minute as f64;
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * cap / 60.0).min(cap);
        self.at = now;
        if self.tokens >= n as f64 {
            self.tokens -= n as f64;
            true
        } else {
            false
        }
    }
}

fn answer(a: ServeAnswer) -> PeerResponse {
    match rmp_serde::to_vec_named(&a) {
        Ok(body) => PeerResponse::App { body },
        Err(e) => PeerResponse::Error {
            message: format!("cannot encode the answer: {e}"),
        },
    }
}

fn refused(reason: impl Into<String>) -> PeerResponse {
    answer(ServeAnswer::Refused {
        reason: reason.into(),
    })
}

/// Handler for a partner's [`PeerRequest`] on [`SERVING_TOPIC`](super::rpc::SERVING_TOPIC).
impl Handler<PeerRequest> for Serving {
    type Result = ResponseActFuture<Self, PeerResponse>;

    fn handle(&mut self, msg: PeerRequest, _ctx: &mut Context<Self>) -> Self::Result {
        let ready = |r: PeerResponse| -> Self::Result { Box::pin(actix::fut::ready(r)) };
        let rpc: ServeRpc = match rmp_serde::from_slice(&msg.body) {
            Ok(r) => r,
            Err(e) => {
                return ready(PeerResponse::Error {
                    message: format!("malformed serving request: {e}"),
                });
            }
        };
        let from = msg.party;
        match rpc {
            ServeRpc::Score {
                service,
                version,
                ids,
            } => self.score(&from, &service, &version, ids),
            ServeRpc::Prepare { tx, service, state } => self.prepare_for(from, tx, service, state),
            ServeRpc::Commit { tx } => self.commit_for(from, tx),
            ServeRpc::Abort { tx } => {
                self.peer.prepared.remove(&(from, tx));
                ready(answer(ServeAnswer::Ok))
            }
        }
    }
}

/// The answer for a host's values: partial scores (LR) or directions (trees).
fn host_answer(values: Vec<Option<HostValue>>) -> ServeAnswer {
    if values.iter().any(|v| matches!(v, Some(HostValue::Dirs(_)))) {
        ServeAnswer::Directions {
            dirs: values
                .into_iter()
                .map(|v| match v {
                    Some(HostValue::Dirs(d)) => Some(serde_bytes::ByteBuf::from(d.to_vec())),
                    _ => None,
                })
                .collect(),
        }
    } else {
        ServeAnswer::Scores {
            partials: values
                .into_iter()
                .map(|v| match v {
                    Some(HostValue::Score(s)) => Some(s),
                    _ => None,
                })
                .collect(),
        }
    }
}

impl Serving {
    /// This host's partial scores of `ids`.
    fn score(
        &mut self,
        from: &PartyName,
        name: &str,
        version: &str,
        ids: Vec<String>,
    ) -> ResponseActFuture<Self, PeerResponse> {
        let answered = match self.check_score(from, name, version, &ids) {
            Ok(a) => a,
            Err(r) => return Box::pin(actix::fut::ready(r)),
        };
        let (part, source) = answered;
        match source {
            Source::Table(table) => {
                let values = ids
                    .iter()
                    .map(|id| table.row(id).and_then(|row| part.host_value(row).ok()))
                    .collect();
                Box::pin(actix::fut::ready(answer(host_answer(values))))
            }
            Source::Command(adapter, timeout) => {
                let name = name.to_owned();
                Box::pin(
                    async move {
                        match adapter.rows(ids, timeout).await {
                            Ok(rows) => {
                                let values = rows
                                    .iter()
                                    .map(|r| {
                                        let r = r.as_ref()?;
                                        part.host_value(|f| r.get(f).copied())
                                            .map_err(|e| {
                                                warn!(service = %name, error = %e, "feature adapter row unusable")
                                            })
                                            .ok()
                                    })
                                    .collect();
                                answer(host_answer(values))
                            }
                            Err(e) => refused(e),
                        }
                    }
                    .into_actor(self),
                )
            }
        }
    }

    /// Checks a partial-score request and takes it from the quota; the part and source that
    /// answer it, or the refusal.
    fn check_score(
        &mut self,
        from: &PartyName,
        name: &str,
        version: &str,
        ids: &[String],
    ) -> Result<
        (
            std::sync::Arc<consort_components::serving::ServedPart>,
            Source,
        ),
        PeerResponse,
    > {
        let me = self
            .deps
            .as_ref()
            .map(|d| d.me.to_string())
            .unwrap_or_default();
        let Some(s) = self.services.get(name) else {
            return Err(refused(format!("{me} serves no service {name}")));
        };
        if s.role != Role::Host || s.guest != *from {
            warn!(party = %from, service = %name, "partial scores asked by a party that is not the service's guest");
            return Err(refused(format!(
                "{from} is not the guest of service {name} at {me}"
            )));
        }
        if ids.len() > MAX_SCORE_IDS || ids.iter().any(|i| i.len() > MAX_ID_BYTES) {
            return Err(refused(format!(
                "at most {MAX_SCORE_IDS} ids of at most {MAX_ID_BYTES} bytes per request"
            )));
        }
        let Some(loaded) = s.versions.get(version) else {
            return Err(refused(format!(
                "{me} has no version {version} of service {name} loaded"
            )));
        };
        let Some(source) = s.source.clone() else {
            return Err(refused(format!(
                "{me} has no feature source for service {name}"
            )));
        };
        let per_minute = self
            .deps
            .as_ref()
            .and_then(|d| d.sources.get(name))
            .map(|c| c.quota_per_minute)
            .unwrap_or(DEFAULT_QUOTA_PER_MINUTE);
        let bucket = self.peer.buckets.entry(name.to_owned()).or_insert(Bucket {
            tokens: per_minute as f64,
            at: Instant::now(),
        });
        if !bucket.take(ids.len(), per_minute) {
            *self.peer.refused.entry(name.to_owned()).or_default() += 1;
            return Err(refused(format!(
                "{me}'s quota for service {name} ({per_minute} partial scores a minute) is spent"
            )));
        }
        Ok((loaded.part.clone(), source))
    }

    fn prepare_for(
        &mut self,
        from: PartyName,
        tx: u64,
        name: String,
        state: Option<super::rpc::WireState>,
    ) -> ResponseActFuture<Self, PeerResponse> {
        let ready = |r: PeerResponse| -> ResponseActFuture<Self, PeerResponse> {
            Box::pin(actix::fut::ready(r))
        };
        self.peer
            .prepared
            .retain(|_, (_, _, at)| at.elapsed() < PREPARED_FOR);
        if self.peer.prepared.len() >= MAX_PREPARED {
            return ready(refused("too many changes prepared here; try again later"));
        }
        let deps = match self.deps() {
            Ok(d) => d,
            Err(e) => return ready(refused(e.to_string())),
        };
        let current = self.services.get(&name).cloned();
        let Some(wire) = state else {
            // Removal: only the guest of the running service may ask it.
            return ready(match current {
                Some(c) if c.guest != from => refused(format!(
                    "{from} is not the guest of service {name} at {}",
                    deps.me
                )),
                _ => {
                    self.peer
                        .prepared
                        .insert((from, tx), (name, None, Instant::now()));
                    answer(ServeAnswer::Ok)
                }
            });
        };
        if let Some(c) = &current
            && c.guest != from
        {
            return ready(refused(format!(
                "service {name} at {} belongs to {}, not {from}",
                deps.me, c.guest
            )));
        }
        let asker = from.clone();
        Box::pin(
            async move {
                prepare(
                    &deps,
                    current.as_deref(),
                    &name,
                    &wire,
                    &ServingOptions::default(),
                    Asker::Partner(&asker),
                )
                .await
                .map(|s| (name, s))
            }
            .into_actor(self)
            .map(move |res, act, _| match res {
                Ok((name, s)) => {
                    act.peer
                        .prepared
                        .insert((from, tx), (name, Some(s), Instant::now()));
                    answer(ServeAnswer::Ok)
                }
                Err(reason) => refused(reason),
            }),
        )
    }

    fn commit_for(&mut self, from: PartyName, tx: u64) -> ResponseActFuture<Self, PeerResponse> {
        let Some((name, new, _)) = self.peer.prepared.remove(&(from, tx)) else {
            return Box::pin(actix::fut::ready(refused(format!(
                "nothing is prepared under transaction {tx} (it expired or was aborted)"
            ))));
        };
        let Some(tree) = self.deployments.clone() else {
            return Box::pin(actix::fut::ready(refused(
                "the deployments tree is not open",
            )));
        };
        let record = new.as_ref().map(|s| s.deployment());
        Box::pin(
            persist(tree, name.clone(), record)
            .into_actor(self)
            .map(move |res, act, _| match res {
                Ok(()) => {
                    info!(service = %name, removed = new.is_none(), "service changed by its guest");
                    act.install(&name, new);
                    answer(ServeAnswer::Ok)
                }
                Err(e) => refused(e.to_string()),
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quota_bursts_a_minute_then_refills_at_its_rate() {
        let mut b = Bucket {
            tokens: 120.0,
            at: Instant::now(),
        };
        assert!(b.take(100, 120));
        assert!(!b.take(21, 120), "only 20 left");
        assert!(b.take(20, 120));
        // 2 per second: half a second later, one more.
        b.at -= Duration::from_millis(600);
        assert!(b.take(1, 120));
        assert!(!b.take(1, 120));
        // Never more than a minute's worth, however long it waited.
        b.at -= Duration::from_secs(3600);
        assert!(!b.take(121, 120));
        assert!(b.take(120, 120));
    }
}

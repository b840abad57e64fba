//! The request path at the guest: route the id to a version, score the guest's part, ask each
//! host for its partial score (batched per host and version, with a deadline, through the
//! cache), combine, post-process. A homo LR service scores alone.
//!
//! The actor does the quick parts (routing, the guest's arithmetic, the cache) in its handler
//! and returns a future that waits for the hosts; the future reports back with [`Done`] so the
//! actor's statistics and cache learn the outcome.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{AsyncContext, Context, Handler, Message, ResponseFuture};
use consort_components::serving::{HostValue, ServingError};
use consort_protocol::PartyName;
use consort_protocol::peer::{PeerRequestBody, PeerResponse};
use consort_protocol::serving::{
    HostFailure, InferError, InferInput, InferOutput, PartyTiming, ServingOptions,
};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use lru::LruCache;
use tokio::sync::{mpsc, oneshot};

use super::Serving;
use super::rpc::{MAX_ID_BYTES, MAX_SCORE_IDS, SERVING_TOPIC, ServeAnswer, ServeRpc};
use super::state::{Role, Source, route};
use crate::network::NetworkClient;

/// One inference request.
#[derive(Debug, Clone)]
pub struct Infer {
    /// Service name.
    pub service: String,
    /// The request.
    pub input: InferInput,
}

impl Message for Infer {
    type Result = Result<InferOutput, InferError>;
}

/// Partial-score requests one host has in flight per version (the rest wait and go together).
const MAX_INFLIGHT: usize = 2;

/// Requests waiting for one host before new ones are refused.
const QUEUE: usize = 8192;

/// A host's answer for one id: its partial score or directions, or why there is none.
type HostResult = Result<HostValue, HostError>;

#[derive(Debug, Clone)]
enum HostError {
    /// The host does not know the id.
    UnknownId(String),
    /// The host refused, failed or was late.
    Down(String),
}

struct Pending {
    id: String,
    reply: oneshot::Sender<HostResult>,
}

/// (service, version, host).
type HostKey = (String, String, PartyName);

/// A host's answers by id, with when each was learnt.
type Cache = LruCache<String, (HostValue, Instant)>;

/// Batchers and caches, per service.
#[derive(Default)]
pub(crate) struct InferState {
    /// (service, version, host) → its batcher's queue.
    batchers: HashMap<HostKey, mpsc::Sender<Pending>>,
    /// (service, version, host) → id → (the host's answer, when it was learnt).
    caches: HashMap<HostKey, Cache>,
}

impl InferState {
    /// Drops the batchers and cache of a service whose state changed.
    pub(crate) fn forget(&mut self, service: &str) {
        self.batchers.retain(|(s, _, _), _| s != service);
        self.caches.retain(|(s, _, _), _| s != service);
    }
}

/// The outcome of one request, for the actor's statistics and cache.
pub(crate) struct Done {
    pub(crate) service: String,
    pub(crate) version: String,
    pub(crate) micros: u64,
    pub(crate) ok: bool,
    pub(crate) guest_only: bool,
    pub(crate) hits: u64,
    pub(crate) misses: u64,
    /// Host answers learnt: (host, id, answer).
    fresh: Vec<(PartyName, String, HostValue)>,
    cache_entries: usize,
    /// The score given, by id and request id (for feedback).
    pub(crate) kept: Option<(String, Option<String>, f64)>,
}

impl Message for Done {
    type Result = ();
}

impl Handler<Done> for Serving {
    type Result = ();

    fn handle(&mut self, d: Done, _ctx: &mut Context<Self>) {
        if d.cache_entries > 0 && self.services.contains_key(&d.service) {
            let cap = NonZeroUsize::new(d.cache_entries).unwrap_or(NonZeroUsize::MIN);
            for (host, id, v) in &d.fresh {
                self.infer
                    .caches
                    .entry((d.service.clone(), d.version.clone(), host.clone()))
                    .or_insert_with(|| LruCache::new(cap))
                    .put(id.clone(), (v.clone(), Instant::now()));
            }
        }
        self.stats.record(&d);
    }
}

/// Handler for [`Infer`].
impl Handler<Infer> for Serving {
    type Result = ResponseFuture<Result<InferOutput, InferError>>;

    fn handle(&mut self, msg: Infer, ctx: &mut Context<Self>) -> Self::Result {
        self.start_infer(msg, ctx)
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<InferOutput, InferError>>>>;

fn bad(message: String) -> InferError {
    InferError::BadRequest { message }
}

impl Serving {
    /// Starts one request: the quick parts here, the wait for the hosts in the returned future.
    pub(super) fn start_infer(&mut self, msg: Infer, ctx: &mut Context<Self>) -> Answer {
        let started = Instant::now();
        match self.begin(msg, started, ctx) {
            Ok(fut) => fut,
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }

    fn begin(
        &mut self,
        msg: Infer,
        started: Instant,
        ctx: &mut Context<Self>,
    ) -> Result<Answer, InferError> {
        let me = self
            .deps
            .as_ref()
            .map(|d| d.me.to_string())
            .unwrap_or_default();
        let Infer { service, input } = msg;
        let Some(svc) = self.services.get(&service).cloned() else {
            if self.restoring.contains(&service) {
                return Err(InferError::Unavailable {
                    message: format!("service {service} is still being restored at {me}"),
                    party: me,
                });
            }
            return Err(InferError::NotFound {
                message: format!("no service {service} here"),
            });
        };
        if svc.role == Role::Host {
            return Err(InferError::Internal {
                message: format!(
                    "{me} is a host of service {service}; its guest, {}, answers requests",
                    svc.guest
                ),
            });
        }
        if input.id.is_empty() || input.id.len() > MAX_ID_BYTES {
            return Err(bad(format!("an id is 1 to {MAX_ID_BYTES} bytes")));
        }
        let version = route(&svc.split, &input.id)
            .ok_or_else(|| InferError::Internal {
                message: format!("service {service} routes no traffic"),
            })?
            .to_owned();
        let loaded = svc
            .versions
            .get(&version)
            .ok_or_else(|| InferError::Internal {
                message: format!("version {version} of service {service} is not loaded"),
            })?;
        let opts = &svc.options;
        // The guest's features: the request's, else this party's source; then the declared
        // defaults and clipping.
        let row = match (&svc.source, input.features.is_empty()) {
            (Some(Source::Table(t)), true) => Some(
                t.row(&input.id)
                    .ok_or_else(|| bad(format!("{me} has no features for id {}", input.id)))?,
            ),
            _ => None,
        };
        let value = |name: &str| -> Option<f64> {
            let x = match &row {
                Some(r) => r(name),
                None => input.features.get(name).copied(),
            }
            .or_else(|| opts.defaults.get(name).copied())?;
            Some(match opts.clip.get(name) {
                Some((lo, hi)) => x.clamp(*lo, *hi),
                None => x,
            })
        };
        let missing = |e: ServingError| match e {
            ServingError::Missing(f) => bad(format!("feature '{f}' is missing (id {})", input.id)),
            other => InferError::Internal {
                message: other.to_string(),
            },
        };
        if svc.role == Role::Local {
            let score = loaded.part.local(value).map_err(missing)?;
            let out = finish(&input, &version, opts, score, false, Vec::new(), started);
            ctx.address()
                .do_send(done(&service, &version, Ok(&out), 0, 0, Vec::new(), opts));
            return Ok(Box::pin(std::future::ready(Ok(out))));
        }
        let guest_part = loaded.part.guest_value(value).map_err(missing)?;
        let part = loaded.part.clone();
        let guest_micros = started.elapsed().as_micros() as u64;
        // Each host: from the cache, or asked.
        let mut waits = Vec::new();
        let (mut hits, mut misses) = (0, 0);
        let ttl = Duration::from_millis(opts.cache_ttl_ms);
        for host in svc.asked_hosts() {
            let key = (service.clone(), version.clone(), host.clone());
            if opts.cache_ttl_ms > 0
                && let Some(cache) = self.infer.caches.get_mut(&key)
                && let Some((v, at)) = cache.get(input.id.as_str())
                && at.elapsed() < ttl
            {
                hits += 1;
                waits.push((host.clone(), Wait::Hit(v.clone())));
                continue;
            }
            misses += 1;
            let queue = self.batcher(&key, opts);
            let (reply, rx) = oneshot::channel();
            let pending = Pending {
                id: input.id.clone(),
                reply,
            };
            waits.push((
                host.clone(),
                match queue.try_send(pending) {
                    Ok(()) => Wait::Asked(rx),
                    Err(_) => Wait::Failed(format!("{host}: too many requests waiting")),
                },
            ));
        }
        let addr = ctx.address();
        let opts = opts.clone();
        let deadline = started + Duration::from_millis(opts.deadline_ms);
        Ok(Box::pin(async move {
            let mut parts = Vec::new();
            let mut timings = vec![PartyTiming {
                party: me.clone(),
                micros: guest_micros,
                cached: false,
            }];
            let mut fresh = Vec::new();
            let mut failure: Option<InferError> = None;
            for (host, wait) in waits {
                let asked = Instant::now();
                let got = match wait {
                    Wait::Hit(v) => {
                        timings.push(PartyTiming {
                            party: host.to_string(),
                            micros: 0,
                            cached: true,
                        });
                        parts.push((host, v));
                        continue;
                    }
                    Wait::Failed(m) => Err(HostError::Down(m)),
                    Wait::Asked(rx) => match tokio::time::timeout_at(deadline.into(), rx).await {
                        Ok(Ok(r)) => r,
                        Ok(Err(_)) => {
                            Err(HostError::Down(format!("{host}: the request was dropped")))
                        }
                        Err(_) => Err(HostError::Down(format!(
                            "{host} did not answer within {} ms",
                            opts.deadline_ms
                        ))),
                    },
                };
                match got {
                    Ok(v) => {
                        timings.push(PartyTiming {
                            party: host.to_string(),
                            micros: asked.elapsed().as_micros() as u64,
                            cached: false,
                        });
                        fresh.push((host.clone(), input.id.clone(), v.clone()));
                        parts.push((host, v));
                    }
                    Err(HostError::UnknownId(m)) => {
                        failure.get_or_insert(bad(m));
                    }
                    Err(HostError::Down(message)) => {
                        failure.get_or_insert(InferError::Unavailable {
                            message,
                            party: host.to_string(),
                        });
                    }
                }
            }
            let guest_only = match failure {
                None => opts.without_hosts,
                Some(InferError::Unavailable { .. })
                    if opts.on_host_failure == HostFailure::GuestOnly =>
                {
                    true
                }
                Some(e) => {
                    let micros = started.elapsed().as_micros() as u64;
                    let outcome = Err(micros);
                    addr.do_send(done(
                        &service, &version, outcome, hits, misses, fresh, &opts,
                    ));
                    return Err(e);
                }
            };
            let hosts: Vec<(&str, &HostValue)> = if guest_only {
                Vec::new()
            } else {
                parts.iter().map(|(h, v)| (h.as_str(), v)).collect()
            };
            let score = match part.score(&guest_part, &hosts) {
                Ok(s) => s,
                Err(e) => {
                    let micros = started.elapsed().as_micros() as u64;
                    addr.do_send(done(
                        &service,
                        &version,
                        Err(micros),
                        hits,
                        misses,
                        fresh,
                        &opts,
                    ));
                    return Err(InferError::Internal {
                        message: format!("version {version} of service {service}: {e}"),
                    });
                }
            };
            let out = finish(&input, &version, &opts, score, guest_only, timings, started);
            addr.do_send(done(
                &service,
                &version,
                Ok(&out),
                hits,
                misses,
                fresh,
                &opts,
            ));
            Ok(out)
        }))
    }

    /// The queue of the batcher for (service, version, host), started when first needed.
    fn batcher(
        &mut self,
        key: &(String, String, PartyName),
        opts: &ServingOptions,
    ) -> mpsc::Sender<Pending> {
        if let Some(q) = self.infer.batchers.get(key)
            && !q.is_closed()
        {
            return q.clone();
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        if let Some(deps) = &self.deps {
            let b = Batcher {
                net: deps.net.clone(),
                host: key.2.clone(),
                service: key.0.clone(),
                version: key.1.clone(),
                deadline: Duration::from_millis(opts.deadline_ms),
            };
            tokio::spawn(b.run(rx));
        }
        self.infer.batchers.insert(key.clone(), tx.clone());
        tx
    }
}

enum Wait {
    Hit(HostValue),
    Asked(oneshot::Receiver<HostResult>),
    Failed(String),
}

/// The report of a request: its answer, or the microseconds it took to fail.
fn done(
    service: &str,
    version: &str,
    outcome: Result<&InferOutput, u64>,
    hits: u64,
    misses: u64,
    fresh: Vec<(PartyName, String, HostValue)>,
    opts: &ServingOptions,
) -> Done {
    Done {
        service: service.to_owned(),
        version: version.to_owned(),
        micros: outcome.map_or_else(|micros| micros, |out| out.total_micros),
        ok: outcome.is_ok(),
        guest_only: outcome.is_ok_and(|out| out.guest_only),
        hits,
        misses,
        fresh: if opts.cache_ttl_ms > 0 {
            fresh
        } else {
            Vec::new()
        },
        cache_entries: if opts.cache_ttl_ms > 0 {
            opts.cache_entries
        } else {
            0
        },
        kept: outcome
            .ok()
            .map(|out| (out.id.clone(), out.request_id.clone(), out.score)),
    }
}

/// Post-processing: calibration, then the label.
fn finish(
    input: &InferInput,
    version: &str,
    opts: &ServingOptions,
    score: f64,
    guest_only: bool,
    timings: Vec<PartyTiming>,
    started: Instant,
) -> InferOutput {
    let score = match opts.calibration {
        Some((a, b)) => {
            let p = score.clamp(1e-15, 1.0 - 1e-15);
            let logit = (p / (1.0 - p)).ln();
            1.0 / (1.0 + (-(a * logit + b)).exp())
        }
        None => score,
    };
    InferOutput {
        id: input.id.clone(),
        request_id: input.request_id.clone(),
        score,
        label: opts.threshold.map(|t| i32::from(score >= t)),
        version: version.to_owned(),
        guest_only,
        timings,
        total_micros: started.elapsed().as_micros() as u64,
    }
}

/// Sends one host's partial-score requests for one version: the requests that arrive while
/// [`MAX_INFLIGHT`] are out go together in the next one.
struct Batcher {
    net: NetworkClient,
    host: PartyName,
    service: String,
    version: String,
    deadline: Duration,
}

impl Batcher {
    async fn run(self, mut rx: mpsc::Receiver<Pending>) {
        let this = Arc::new(self);
        let mut inflight = FuturesUnordered::new();
        loop {
            tokio::select! {
                p = rx.recv(), if inflight.len() < MAX_INFLIGHT => {
                    let Some(p) = p else { break };
                    let mut batch = vec![p];
                    while batch.len() < MAX_SCORE_IDS {
                        match rx.try_recv() {
                            Ok(p) => batch.push(p),
                            Err(_) => break,
                        }
                    }
                    inflight.push(this.clone().send(batch));
                }
                Some(()) = inflight.next(), if !inflight.is_empty() => {}
            }
        }
        while inflight.next().await.is_some() {}
    }

    async fn send(self: Arc<Self>, batch: Vec<Pending>) {
        let host = &self.host;
        let rpc = ServeRpc::Score {
            service: self.service.clone(),
            version: self.version.clone(),
            ids: batch.iter().map(|p| p.id.clone()).collect(),
        };
        let result: Result<Vec<Option<HostValue>>, String> = async {
            let body = rmp_serde::to_vec_named(&rpc).map_err(|e| e.to_string())?;
            let req = PeerRequestBody::App {
                topic: SERVING_TOPIC.to_owned(),
                body,
            };
            match self.net.request(host.as_str(), req, self.deadline).await {
                Ok(PeerResponse::App { body }) => match rmp_serde::from_slice(&body) {
                    Ok(ServeAnswer::Scores { partials }) if partials.len() == batch.len() => {
                        Ok(partials
                            .into_iter()
                            .map(|p| p.map(HostValue::Score))
                            .collect())
                    }
                    Ok(ServeAnswer::Directions { dirs }) if dirs.len() == batch.len() => Ok(dirs
                        .into_iter()
                        .map(|d| d.map(|d| HostValue::Dirs(d.into_vec().into())))
                        .collect()),
                    Ok(ServeAnswer::Refused { reason }) => Err(format!("{host} refused: {reason}")),
                    Ok(other) => Err(format!("{host} answered {other:?}")),
                    Err(e) => Err(format!("{host} sent a malformed answer: {e}")),
                },
                Ok(PeerResponse::Error { message }) => Err(format!("{host}: {message}")),
                Ok(other) => Err(format!("{host} answered {other:?}")),
                Err(e) => Err(format!("{host} is unreachable: {e}")),
            }
        }
        .await;
        match result {
            Ok(partials) => {
                for (p, v) in batch.into_iter().zip(partials) {
                    let r = v.ok_or_else(|| {
                        HostError::UnknownId(format!("{host} has no features for id {}", p.id))
                    });
                    let _ = p.reply.send(r);
                }
            }
            Err(e) => {
                for p in batch {
                    let _ = p.reply.send(Err(HostError::Down(e.clone())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_processing_calibrates_then_labels() {
        let input = InferInput {
            id: "7".into(),
            ..InferInput::default()
        };
        let opts = ServingOptions {
            calibration: Some((2.0, -0.5)),
            threshold: Some(0.6),
            ..ServingOptions::default()
        };
        let out = finish(&input, "v", &opts, 0.7, false, Vec::new(), Instant::now());
        let want = 1.0 / (1.0 + (-(2.0 * (0.7f64 / 0.3).ln() - 0.5)).exp());
        assert!((out.score - want).abs() < 1e-15);
        assert_eq!(out.label, Some(1));
        let plain = finish(
            &input,
            "v",
            &ServingOptions::default(),
            0.3,
            false,
            Vec::new(),
            Instant::now(),
        );
        assert_eq!((plain.score, plain.label), (0.3, None));
        // A saturated score stays finite through the logit.
        let edge = finish(&input, "v", &opts, 1.0, false, Vec::new(), Instant::now());
        assert!(edge.score.is_finite() && edge.score <= 1.0);
    }
}

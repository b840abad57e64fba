//! The inference APIs: HTTP/JSON ([`json`]) and gRPC ([`grpc`]), on one hyper stack, each
//! translating requests into [`Infer`](consort_actors::serving::Infer) and
//! [`ServeControl`](consort_actors::serving::ServeControl) messages for the Serving actor; and
//! the board's listener (`/metrics` for Prometheus so far, asking each actor for its numbers).
//!
//! They run on their own small multi-threaded tokio runtime, so parsing and writing requests
//! does not share a thread with the actors; the listeners are bound before the daemon says it
//! is ready, so a taken port fails the start with a clear error.

pub mod grpc;
pub mod json;
mod metrics;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use actix::Addr;
use anyhow::Context;
use consort_actors::Serving;
use consort_protocol::serving::InferError;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::serving_config::ServingApi;

/// Threads of the APIs' runtime.
const THREADS: usize = 2;

/// What both APIs need.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) serving: Addr<Serving>,
    pub(crate) token: Option<String>,
    pub(crate) max_body_bytes: usize,
    /// TLS, when configured.
    pub(crate) tls: Option<Arc<tls::Identity>>,
}

impl ApiState {
    /// Whether `header` (an `Authorization` value) carries the token, when one is asked.
    pub(crate) fn authorized(&self, header: Option<&str>) -> bool {
        match &self.token {
            None => true,
            Some(t) => header
                .and_then(|h| h.strip_prefix("Bearer "))
                .is_some_and(|given| constant_time_eq(given.as_bytes(), t.as_bytes())),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The addresses the APIs listen on.
#[derive(Debug, Clone, Default)]
pub struct Bound {
    /// HTTP.
    pub http: Option<SocketAddr>,
    /// gRPC.
    pub grpc: Option<SocketAddr>,
    /// The board's listener (`/metrics`).
    pub board: Option<SocketAddr>,
}

/// Binds the configured APIs (and the board's listener, `board`) and serves them on their own
/// runtime until `shutdown`.
pub fn start(
    api: &ServingApi,
    board: Option<SocketAddr>,
    actors: &consort_actors::Actors,
    shutdown: CancellationToken,
) -> anyhow::Result<Bound> {
    if api.http.is_none() && api.grpc.is_none() && board.is_none() {
        return Ok(Bound::default());
    }
    let serving: Addr<Serving> = actors.serving.clone();
    let bind = |addr: SocketAddr, what: &str| -> anyhow::Result<std::net::TcpListener> {
        let l = std::net::TcpListener::bind(addr)
            .with_context(|| format!("cannot listen on {addr} (serving.{what})"))?;
        l.set_nonblocking(true)?;
        Ok(l)
    };
    let http = api.http.map(|a| bind(a, "listen")).transpose()?;
    let grpc = api.grpc.map(|a| bind(a, "grpc_listen")).transpose()?;
    let board_listener = board
        .map(|a| {
            std::net::TcpListener::bind(a)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .with_context(|| format!("cannot listen on {a} (board.listen)"))
        })
        .transpose()?;
    let bound = Bound {
        http: http.as_ref().and_then(|l| l.local_addr().ok()),
        grpc: grpc.as_ref().and_then(|l| l.local_addr().ok()),
        board: board_listener.as_ref().and_then(|l| l.local_addr().ok()),
    };
    let actors = actors.clone();
    let tls = match &api.tls {
        Some((cert, key)) => Some(Arc::new(tls::load(cert, key)?)),
        None => None,
    };
    let state = ApiState {
        serving,
        token: api.token.clone(),
        max_body_bytes: api.max_body_bytes,
        tls,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(THREADS)
        .thread_name("consort-api")
        .enable_all()
        .build()
        .context("cannot start the inference APIs' runtime")?;
    std::thread::Builder::new()
        .name("consort-api".into())
        .spawn(move || {
            runtime.block_on(async move {
                let mut tasks = Vec::new();
                if let Some(l) = http {
                    let (state, stop) = (state.clone(), shutdown.clone());
                    tasks.push(tokio::spawn(async move {
                        if let Err(e) = json::serve(l, state, stop).await {
                            warn!(error = %e, "the HTTP inference API stopped");
                        }
                    }));
                }
                if let Some(l) = grpc {
                    let (state, stop) = (state.clone(), shutdown.clone());
                    tasks.push(tokio::spawn(async move {
                        if let Err(e) = grpc::serve(l, state, stop).await {
                            warn!(error = %e, "the gRPC inference API stopped");
                        }
                    }));
                }
                if let Some(l) = board_listener {
                    let stop = shutdown.clone();
                    tasks.push(tokio::spawn(async move {
                        if let Err(e) = metrics::serve(l, actors, stop).await {
                            warn!(error = %e, "the board listener stopped");
                        }
                    }));
                }
                for t in tasks {
                    let _ = t.await;
                }
            });
        })
        .context("cannot start the inference APIs' thread")?;
    info!(
        http = ?bound.http,
        grpc = ?bound.grpc,
        board = ?bound.board,
        tls = api.tls.is_some(),
        token = api.token.is_some(),
        "inference APIs listening"
    );
    Ok(bound)
}

/// The HTTP status of an inference error.
pub(crate) fn http_status(e: &InferError) -> u16 {
    match e {
        InferError::NotFound { .. } => 404,
        InferError::BadRequest { .. } => 400,
        InferError::Unavailable { .. } => 503,
        InferError::Internal { .. } => 500,
    }
}

//! The inference APIs: HTTP/JSON ([`json`]) and gRPC ([`grpc`]), on one hyper stack, each
//! translating requests into [`Infer`](consort_actors::serving::Infer) and
//! [`ServeControl`](consort_actors::serving::ServeControl) messages for the Serving actor; and
//! the board's listener: the [`board`] (pages and `/api`, answered by the control socket's own
//! handler) and `/metrics` for Prometheus (asking each actor for its numbers).
//!
//! They run on their own small multi-threaded tokio runtime, so parsing and writing requests
//! does not share a thread with the actors; the listeners are bound before the daemon says it
//! is ready, so a taken port fails the start with a clear error.

pub(crate) mod board;
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
    /// The board's listener (the board and `/metrics`).
    pub board: Option<SocketAddr>,
}

/// The bound listeners, before they serve.
pub struct Listeners {
    http: Option<std::net::TcpListener>,
    grpc: Option<std::net::TcpListener>,
    board: Option<std::net::TcpListener>,
    /// Their addresses.
    pub bound: Bound,
}

/// Binds the configured APIs and the board's listener (`board`), so a taken port fails the
/// start before anything serves.
pub fn bind(api: &ServingApi, board: Option<SocketAddr>) -> anyhow::Result<Listeners> {
    let bind = |addr: SocketAddr, what: &str| -> anyhow::Result<std::net::TcpListener> {
        let l = std::net::TcpListener::bind(addr)
            .with_context(|| format!("cannot listen on {addr} ({what})"))?;
        l.set_nonblocking(true)?;
        Ok(l)
    };
    let http = api.http.map(|a| bind(a, "serving.listen")).transpose()?;
    let grpc = api
        .grpc
        .map(|a| bind(a, "serving.grpc_listen"))
        .transpose()?;
    let board = board.map(|a| bind(a, "board.listen")).transpose()?;
    let bound = Bound {
        http: http.as_ref().and_then(|l| l.local_addr().ok()),
        grpc: grpc.as_ref().and_then(|l| l.local_addr().ok()),
        board: board.as_ref().and_then(|l| l.local_addr().ok()),
    };
    Ok(Listeners {
        http,
        grpc,
        board,
        bound,
    })
}

/// Serves the bound `listeners` on their own runtime until `shutdown`: the APIs as `api` says,
/// the board (when `board` is given) and `/metrics` on the board's listener.
pub(crate) fn start(
    listeners: Listeners,
    api: &ServingApi,
    board: Option<board::Board>,
    actors: &consort_actors::Actors,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Listeners {
        http,
        grpc,
        board: board_listener,
        bound,
    } = listeners;
    if http.is_none() && grpc.is_none() && board_listener.is_none() {
        return Ok(());
    }
    let serving: Addr<Serving> = actors.serving.clone();
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
                    let mut app = metrics::router(actors);
                    if let Some(b) = board {
                        app = app.merge(board::router(Arc::new(b)));
                    }
                    tasks.push(tokio::spawn(async move {
                        let served = match tokio::net::TcpListener::from_std(l) {
                            Ok(l) => {
                                axum::serve(l, app)
                                    .with_graceful_shutdown(async move { stop.cancelled().await })
                                    .await
                            }
                            Err(e) => Err(e),
                        };
                        if let Err(e) = served {
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
        "inference APIs and board listening"
    );
    Ok(())
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

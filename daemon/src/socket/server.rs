//! The control-socket server: accepts local clients and answers their requests.
//!
//! Each connection is a task: hello first (with a deadline), then requests in order. Any
//! protocol violation is answered with an error and the connection is closed; nothing a client
//! sends can stop the daemon. On shutdown the accept loop stops, idle connections close, and a
//! request being served is answered before its connection closes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use consort_actors::Actors;
use consort_protocol::{
    BoardInfo, CONTROL_PROTOCOL, CONTROL_PROTOCOL_VERSION, ClientMessage, ControlError, ErrorCode,
    FrameCodec, FrameError, Request, Response, ServerMessage, StatusInfo,
};
use futures::{SinkExt, StreamExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, warn};

use consort_actors::network_actor::partners::{GetReachability, ListenAddrs};

/// Most control connections served at once; further clients wait in the accept queue.
const MAX_CONNECTIONS: usize = 256;
/// A client must greet within this time.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

type Codec = FrameCodec<ClientMessage, ServerMessage>;
type Writer = FramedWrite<tokio::net::unix::OwnedWriteHalf, Codec>;

/// What request handlers need.
pub(crate) struct ServerState {
    /// Status fields fixed at start (uptime and stores are filled per request).
    pub status: StatusInfo,
    /// When the daemon started.
    pub started: Instant,
    /// The actors.
    pub actors: Actors,
    /// Cancelled to stop the daemon.
    pub shutdown: CancellationToken,
    /// Frame limit.
    pub max_frame_bytes: usize,
    /// Where the board is (for `consort board`).
    pub board: BoardInfo,
}

/// Accepts connections until shutdown; each is served on its own task tracked by `tasks`.
pub(crate) async fn serve(listener: UnixListener, state: Arc<ServerState>, tasks: TaskTracker) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut next_conn: u64 = 0;
    loop {
        let permit = tokio::select! {
            _ = state.shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = state.shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _)) => {
                next_conn += 1;
                let state = state.clone();
                let span = tracing::debug_span!("control", conn = next_conn);
                tasks.spawn(
                    async move {
                        serve_connection(stream, &state).await;
                        drop(permit);
                    }
                    .instrument(span),
                );
            }
            Err(e) => {
                // Usually EMFILE: back off instead of spinning.
                warn!(error = %e, "control socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    debug!("control socket no longer accepting");
}

async fn serve_connection(stream: UnixStream, state: &ServerState) {
    let (r, w) = stream.into_split();
    let codec = Codec::new(state.max_frame_bytes);
    let mut reader = FramedRead::new(r, codec.clone());
    let mut writer = FramedWrite::new(w, codec);

    let first = tokio::select! {
        _ = state.shutdown.cancelled() => return,
        m = tokio::time::timeout(HELLO_TIMEOUT, reader.next()) => m,
    };
    match first {
        Err(_) => {
            let err = ControlError::new(ErrorCode::HelloRequired, "no hello within 5 s");
            return fail(&mut writer, None, err).await;
        }
        Ok(None) => return,
        Ok(Some(Err(e))) => return fail(&mut writer, None, frame_error(&e)).await,
        Ok(Some(Ok(ClientMessage::Hello {
            protocol,
            version,
            client,
        }))) => {
            if protocol != CONTROL_PROTOCOL || version != CONTROL_PROTOCOL_VERSION {
                let err = ControlError::new(
                    ErrorCode::VersionMismatch,
                    format!(
                        "client speaks {protocol} v{version}, this daemon speaks \
                         {CONTROL_PROTOCOL} v{CONTROL_PROTOCOL_VERSION}; use matching consort and consortd versions"
                    ),
                );
                return fail(&mut writer, None, err).await;
            }
            debug!(%client, "client connected");
            let welcome = ServerMessage::Welcome {
                version: CONTROL_PROTOCOL_VERSION,
                daemon_version: state.status.version.clone(),
            };
            if writer.send(welcome).await.is_err() {
                return;
            }
        }
        Ok(Some(Ok(ClientMessage::Request { id, .. }))) => {
            let err = ControlError::new(
                ErrorCode::HelloRequired,
                "the first message must be a hello",
            );
            return fail(&mut writer, Some(id), err).await;
        }
    }

    loop {
        let next = tokio::select! {
            biased;
            _ = state.shutdown.cancelled() => return,
            m = reader.next() => m,
        };
        let (id, request) = match next {
            None => return,
            Some(Err(e)) => return fail(&mut writer, None, frame_error(&e)).await,
            Some(Ok(ClientMessage::Hello { .. })) => {
                let err = ControlError::new(ErrorCode::HelloRequired, "hello sent twice");
                return fail(&mut writer, None, err).await;
            }
            Some(Ok(ClientMessage::Request { id, request })) => (id, request),
        };
        let reply = match handle(state, request).await {
            Ok(response) => ServerMessage::Response { id, response },
            Err(error) => {
                let close = error.code == ErrorCode::UnknownRequest;
                let msg = ServerMessage::Error {
                    id: Some(id),
                    error,
                };
                if close {
                    let _ = writer.send(msg).await;
                    return;
                }
                msg
            }
        };
        let shutting_down = matches!(
            reply,
            ServerMessage::Response {
                response: Response::ShuttingDown,
                ..
            }
        );
        if let Err(e) = writer.send(reply).await {
            debug!(error = %e, "client went away before its answer");
            return;
        }
        if shutting_down {
            info!("shutdown requested over the control socket");
            state.shutdown.cancel();
            return;
        }
    }
}

/// Answers one control request: the socket's clients and the board's `/api` alike.
pub(crate) async fn handle(
    state: &ServerState,
    request: Request,
) -> Result<Response, ControlError> {
    match request {
        Request::Status => {
            let stores = state.actors.store_counts().await.map_err(|e| {
                ControlError::new(
                    ErrorCode::Internal,
                    format!("cannot read actor stores: {e}"),
                )
            })?;
            let listen = match state.actors.network.send(ListenAddrs).await {
                Ok(Ok(addrs)) => addrs.iter().map(|a| a.to_string()).collect(),
                _ => state.status.listen.clone(),
            };
            let reachability = match state.actors.network.send(GetReachability).await {
                Ok(Ok(r)) => Some(Box::new(crate::peers::reachability_info(r))),
                _ => None,
            };
            Ok(Response::Status(StatusInfo {
                uptime_s: state.started.elapsed().as_secs_f64(),
                stores,
                listen,
                reachability,
                ..state.status.clone()
            }))
        }
        Request::Shutdown => Ok(Response::ShuttingDown),
        Request::Peers
        | Request::Ping { .. }
        | Request::Doctor
        | Request::PartnerAdd { .. }
        | Request::PartnerRemove { .. }
        | Request::RecordPut { .. }
        | Request::RecordGet { .. }
        | Request::RecordList => crate::peers::handle(state, request).await,
        Request::JobSubmit { .. }
        | Request::JobShow { .. }
        | Request::JobWatch { .. }
        | Request::JobList
        | Request::JobStop { .. }
        | Request::JobRerun { .. }
        | Request::JobApprove { .. }
        | Request::JobReject { .. }
        | Request::JobLog { .. }
        | Request::MetricList { .. } => crate::jobs::handle(state, request).await,
        Request::DataUpload { .. }
        | Request::DataList
        | Request::DataShow { .. }
        | Request::DataDelete { .. }
        | Request::ModelList
        | Request::JobOutput { .. }
        | Request::ModelShow { .. } => crate::data::handle(state, request).await,
        Request::ModelLog { .. }
        | Request::ModelTag { .. }
        | Request::ModelBranch { .. }
        | Request::ModelRollback { .. }
        | Request::ModelDiff { .. }
        | Request::ModelExport { .. }
        | Request::ModelImport { .. }
        | Request::ModelDelete { .. }
        | Request::ModelVerify { .. }
        | Request::ModelReflog { .. } => crate::models::handle(state, request).await,
        Request::TaskRemote { .. }
        | Request::TaskGet { .. }
        | Request::TaskMetric { .. }
        | Request::TaskLog { .. }
        | Request::TaskMetricMeta { .. } => crate::jobs::handle_task(state, request).await,
        Request::Security => crate::security::handle(state).await,
        Request::Board => Ok(Response::Board(state.board.clone())),
        Request::Serve(r) => crate::serve::handle(state, r).await,
        Request::Unknown => Err(ControlError::new(
            ErrorCode::UnknownRequest,
            "unknown request; this consortd is older than the client",
        )),
    }
}

fn frame_error(e: &FrameError) -> ControlError {
    let code = match e {
        FrameError::TooLarge { .. } => ErrorCode::FrameTooLarge,
        _ => ErrorCode::BadFrame,
    };
    ControlError::new(code, e.to_string())
}

/// Answers with `error` and lets the connection close.
async fn fail(writer: &mut Writer, id: Option<u64>, error: ControlError) {
    debug!(code = ?error.code, message = %error.message, "closing control connection after error");
    let _ = writer.send(ServerMessage::Error { id, error }).await;
}

//! A client of the control socket, used by the `consort` CLI.

use std::path::{Path, PathBuf};
use std::time::Duration;

use consort_protocol::{
    CONTROL_PROTOCOL, CONTROL_PROTOCOL_VERSION, ClientMessage, ControlError, FrameCodec,
    FrameError, Request, Response, ServerMessage,
};
use futures::{SinkExt, StreamExt};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::{FramedRead, FramedWrite};

type Codec = FrameCodec<ServerMessage, ClientMessage>;

/// Errors talking to the daemon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Nothing answers on the socket.
    #[error("no consortd is answering on {socket} ({reason})")]
    NotRunning {
        /// The socket tried.
        socket: PathBuf,
        /// What connect said.
        reason: String,
    },
    /// The daemon answered with an error.
    #[error("consortd: {0}")]
    Daemon(#[from] ControlError),
    /// The connection broke or carried something unexpected.
    #[error("control connection to {socket}: {reason}")]
    Protocol {
        /// The socket.
        socket: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// An open, greeted connection to a daemon.
pub struct Client {
    socket: PathBuf,
    reader: FramedRead<OwnedReadHalf, Codec>,
    writer: FramedWrite<OwnedWriteHalf, Codec>,
    next_id: u64,
    /// The daemon's build version, from its welcome.
    pub daemon_version: String,
    timeout: Duration,
}

/// How long to wait for the daemon to answer a request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

impl Client {
    /// Connects to `socket` and exchanges hellos.
    pub async fn connect(socket: &Path) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(socket)
            .await
            .map_err(|e| ClientError::NotRunning {
                socket: socket.to_owned(),
                reason: e.to_string(),
            })?;
        let (r, w) = stream.into_split();
        let codec = Codec::default();
        let mut client = Self {
            socket: socket.to_owned(),
            reader: FramedRead::new(r, codec.clone()),
            writer: FramedWrite::new(w, codec),
            next_id: 1,
            daemon_version: String::new(),
            timeout: REQUEST_TIMEOUT,
        };
        client
            .send(ClientMessage::Hello {
                protocol: CONTROL_PROTOCOL.to_owned(),
                version: CONTROL_PROTOCOL_VERSION,
                client: format!("consort {}", env!("CARGO_PKG_VERSION")),
            })
            .await?;
        match client.recv().await? {
            ServerMessage::Welcome { daemon_version, .. } => {
                client.daemon_version = daemon_version;
                Ok(client)
            }
            ServerMessage::Error { error, .. } => Err(ClientError::Daemon(error)),
            other => Err(client.protocol(format!("expected a welcome, got {other:?}"))),
        }
    }

    fn protocol(&self, reason: String) -> ClientError {
        ClientError::Protocol {
            socket: self.socket.clone(),
            reason,
        }
    }

    async fn send(&mut self, msg: ClientMessage) -> Result<(), ClientError> {
        let r = self.writer.send(msg).await;
        r.map_err(|e: FrameError| self.protocol(e.to_string()))
    }

    async fn recv(&mut self) -> Result<ServerMessage, ClientError> {
        let limit = self.timeout;
        match tokio::time::timeout(limit, self.reader.next()).await {
            Err(_) => Err(self.protocol(format!("no answer within {}s", limit.as_secs()))),
            Ok(None) => Err(self.protocol("the daemon closed the connection".into())),
            Ok(Some(Err(e))) => Err(self.protocol(e.to_string())),
            Ok(Some(Ok(msg))) => Ok(msg),
        }
    }

    /// Sets how long to wait for each answer (long for calls that wait for partners).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Sends `request` and waits for its answer.
    pub async fn request(&mut self, request: Request) -> Result<Response, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(ClientMessage::Request { id, request }).await?;
        match self.recv().await? {
            ServerMessage::Response { id: got, response } if got == id => Ok(response),
            ServerMessage::Error { error, .. } => Err(ClientError::Daemon(error)),
            other => Err(self.protocol(format!("unexpected answer to request {id}: {other:?}"))),
        }
    }
}

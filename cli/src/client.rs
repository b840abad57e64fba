//! A client of the control socket: connect, greet, then typed calls.

use std::path::{Path, PathBuf};
use std::time::Duration;

use consort_protocol::call::Call;
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
    /// The daemon answered a request with the reply of another kind of request.
    #[error("unexpected answer from consortd to {request}: {reply}")]
    UnexpectedReply {
        /// The request's kind.
        request: String,
        /// The reply, as debug text.
        reply: String,
    },
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

    /// Sends a typed request and returns its reply; the one place a reply of the wrong kind is
    /// turned into an error.
    pub async fn call<C: Call>(&mut self, call: C) -> Result<C::Reply, ClientError> {
        let response = self.request(call.into()).await?;
        C::reply(response).map_err(|other| {
            let name = std::any::type_name::<C>();
            ClientError::UnexpectedReply {
                request: name.rsplit("::").next().unwrap_or(name).to_owned(),
                reply: format!("{other:?}"),
            }
        })
    }

    /// Sends `request` and waits for its answer, whatever its kind.
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

#[cfg(test)]
mod tests {
    use super::*;
    use consort_protocol::call;

    /// A daemon that greets, then answers every request with `ShuttingDown`.
    async fn odd_daemon(listener: tokio::net::UnixListener) {
        let (stream, _) = listener.accept().await.expect("accept");
        let (r, w) = stream.into_split();
        let codec = FrameCodec::<ClientMessage, ServerMessage>::default();
        let mut reader = FramedRead::new(r, codec.clone());
        let mut writer = FramedWrite::new(w, codec);
        while let Some(Ok(msg)) = reader.next().await {
            let answer = match msg {
                ClientMessage::Hello { .. } => ServerMessage::Welcome {
                    version: CONTROL_PROTOCOL_VERSION,
                    daemon_version: "test".into(),
                },
                ClientMessage::Request { id, .. } => ServerMessage::Response {
                    id,
                    response: Response::ShuttingDown,
                },
            };
            writer.send(answer).await.expect("send");
        }
    }

    #[test]
    fn a_reply_of_another_kind_is_one_typed_error() {
        let dir = std::env::temp_dir().join(format!("consort-cli-client-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let socket = dir.join("s.sock");
        let _ = std::fs::remove_file(&socket);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
            tokio::spawn(odd_daemon(listener));
            let mut client = Client::connect(&socket).await.expect("connect");
            // The reply it expects: typed.
            client
                .call(call::Shutdown {})
                .await
                .expect("shutdown reply");
            // Another kind: the one error, naming the request.
            match client.call(call::Status {}).await {
                Err(ClientError::UnexpectedReply { request, reply }) => {
                    assert_eq!(request, "Status");
                    assert_eq!(reply, "ShuttingDown");
                }
                other => panic!("{other:?}"),
            }
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
}

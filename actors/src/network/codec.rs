//! Request-response codec: one length-prefixed MessagePack message per stream direction,
//! with a size cap enforced before anything is buffered.

use std::io;

use consort_protocol::peer::{PeerRequest, PeerResponse};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// MessagePack codec for [`PeerRequest`] / [`PeerResponse`].
#[derive(Debug, Clone)]
pub struct MsgpackCodec {
    max: usize,
}

impl MsgpackCodec {
    /// A codec refusing messages over `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            max: max.min(u32::MAX as usize),
        }
    }
}

async fn read_msg<T: DeserializeOwned, R: AsyncRead + Unpin + Send>(
    io: &mut R,
    max: usize,
) -> io::Result<T> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("message of {len} bytes exceeds the limit of {max}"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    rmp_serde::from_slice(&buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

async fn write_msg<T: Serialize, W: AsyncWrite + Unpin + Send>(
    io: &mut W,
    msg: &T,
    max: usize,
) -> io::Result<()> {
    // The length prefix and the body in one buffer: one frame on the stream, not two.
    let mut buf = vec![0u8; 4];
    rmp_serde::encode::write_named(&mut buf, msg)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let len = buf.len() - 4;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("message of {len} bytes exceeds the limit of {max}"),
        ));
    }
    buf[..4].copy_from_slice(&(len as u32).to_be_bytes());
    io.write_all(&buf).await?;
    io.close().await
}

impl libp2p::request_response::Codec for MsgpackCodec {
    type Protocol = StreamProtocol;
    type Request = PeerRequest;
    type Response = PeerResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<PeerRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_msg(io, self.max).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<PeerResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_msg(io, self.max).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: PeerRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_msg(io, &req, self.max).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: PeerResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_msg(io, &res, self.max).await
    }
}

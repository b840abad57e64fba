//! Length-prefixed MessagePack frames.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of MessagePack. The length
//! is checked against a limit *before* anything is buffered, so a peer cannot make us allocate
//! more than the limit by announcing a huge frame. Decoding never panics: a bad frame is a
//! [`FrameError`], which the server answers with an error message and a closed connection.

use std::io;
use std::marker::PhantomData;

use bytes::{Buf, BufMut, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::codec::{Decoder, Encoder};

/// Default largest frame accepted on the control socket: 64 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

const HEADER: usize = 4;

/// What can go wrong while reading or writing frames.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The announced length exceeds the configured limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// Configured limit.
        max: usize,
    },
    /// The stream ended in the middle of a frame.
    #[error("connection closed in the middle of a frame ({buffered} bytes buffered)")]
    Truncated {
        /// How many bytes of the unfinished frame had arrived.
        buffered: usize,
    },
    /// The frame's body is not a valid message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A message could not be encoded (a bug, reported rather than panicking).
    #[error("cannot encode message: {0}")]
    Encode(String),
    /// The underlying stream failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A tokio-util codec that decodes `In` messages and encodes `Out` messages.
///
/// The server uses `FrameCodec<ClientMessage, ServerMessage>`, the client the reverse.
#[derive(Debug)]
pub struct FrameCodec<In, Out> {
    max: usize,
    _types: PhantomData<fn(Out) -> In>,
}

impl<In, Out> Clone for FrameCodec<In, Out> {
    fn clone(&self) -> Self {
        Self::new(self.max)
    }
}

impl<In, Out> FrameCodec<In, Out> {
    /// A codec that refuses frames longer than `max` bytes (in either direction).
    pub fn new(max: usize) -> Self {
        Self {
            max: max.min(u32::MAX as usize),
            _types: PhantomData,
        }
    }

    /// The configured frame limit.
    pub fn max_frame_bytes(&self) -> usize {
        self.max
    }
}

impl<In, Out> Default for FrameCodec<In, Out> {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_BYTES)
    }
}

/// Encodes one message as a complete frame (header + body).
pub fn encode_frame<T: Serialize>(msg: &T, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut buf = BytesMut::new();
    write_frame(msg, max, &mut buf)?;
    Ok(buf.to_vec())
}

/// Decodes the body of one frame (the bytes after the length header).
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    rmp_serde::from_slice(body).map_err(|e| FrameError::Malformed(e.to_string()))
}

fn write_frame<T: Serialize>(msg: &T, max: usize, dst: &mut BytesMut) -> Result<(), FrameError> {
    let body = rmp_serde::to_vec_named(msg).map_err(|e| FrameError::Encode(e.to_string()))?;
    if body.len() > max {
        return Err(FrameError::TooLarge {
            len: body.len(),
            max,
        });
    }
    dst.reserve(HEADER + body.len());
    // `max` is capped at u32::MAX in `new`, so the cast is lossless.
    dst.put_u32(body.len() as u32);
    dst.put_slice(&body);
    Ok(())
}

impl<In: DeserializeOwned, Out> Decoder for FrameCodec<In, Out> {
    type Item = In;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<In>, FrameError> {
        if src.len() < HEADER {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        if src.len() < HEADER + len {
            src.reserve(HEADER + len - src.len());
            return Ok(None);
        }
        src.advance(HEADER);
        let body = src.split_to(len);
        decode_body(&body).map(Some)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<In>, FrameError> {
        match self.decode(src)? {
            Some(msg) => Ok(Some(msg)),
            None if src.is_empty() => Ok(None),
            None => Err(FrameError::Truncated {
                buffered: src.len(),
            }),
        }
    }
}

impl<In, Out: Serialize> Encoder<Out> for FrameCodec<In, Out> {
    type Error = FrameError;

    fn encode(&mut self, msg: Out, dst: &mut BytesMut) -> Result<(), FrameError> {
        write_frame(&msg, self.max, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Msg {
        n: u32,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    }

    type Codec = FrameCodec<Msg, Msg>;

    #[test]
    fn round_trip_several_frames_in_one_buffer() {
        let mut codec = Codec::new(1024);
        let mut buf = BytesMut::new();
        for n in 0..3 {
            codec
                .encode(
                    Msg {
                        n,
                        data: vec![n as u8; n as usize],
                    },
                    &mut buf,
                )
                .expect("encode");
        }
        for n in 0..3 {
            let got = codec.decode(&mut buf).expect("decode").expect("a frame");
            assert_eq!(
                got,
                Msg {
                    n,
                    data: vec![n as u8; n as usize]
                }
            );
        }
        assert!(codec.decode(&mut buf).expect("decode").is_none());
    }

    #[test]
    fn partial_frame_waits_for_more_bytes() {
        let mut codec = Codec::new(1024);
        let frame = encode_frame(
            &Msg {
                n: 7,
                data: vec![1, 2, 3],
            },
            1024,
        )
        .expect("encode");
        let mut buf = BytesMut::new();
        for (i, byte) in frame.iter().enumerate() {
            assert!(
                codec.decode(&mut buf).expect("decode").is_none(),
                "early frame at {i}"
            );
            buf.put_u8(*byte);
        }
        assert_eq!(
            codec.decode(&mut buf).expect("decode").map(|m| m.n),
            Some(7)
        );
    }

    #[test]
    fn truncated_frame_at_eof_is_an_error() {
        let mut codec = Codec::new(1024);
        let frame = encode_frame(
            &Msg {
                n: 7,
                data: vec![1, 2, 3],
            },
            1024,
        )
        .expect("encode");
        let mut buf = BytesMut::from(&frame[..frame.len() - 1]);
        let err = codec.decode_eof(&mut buf).expect_err("truncated");
        assert!(matches!(err, FrameError::Truncated { .. }), "{err}");
        // A clean EOF between frames is not an error.
        assert!(
            codec
                .decode_eof(&mut BytesMut::new())
                .expect("clean eof")
                .is_none()
        );
    }

    #[test]
    fn oversized_frame_is_refused_before_buffering() {
        let mut codec = Codec::new(16);
        let mut buf = BytesMut::new();
        buf.put_u32(1 << 30);
        let err = codec.decode(&mut buf).expect_err("too large");
        assert!(
            matches!(err, FrameError::TooLarge { len, max: 16 } if len == 1 << 30),
            "{err}"
        );
        assert!(buf.capacity() < 1024, "must not reserve the announced size");
        let err = codec
            .encode(
                Msg {
                    n: 1,
                    data: vec![0; 64],
                },
                &mut BytesMut::new(),
            )
            .expect_err("too large to send");
        assert!(matches!(err, FrameError::TooLarge { .. }));
    }

    #[test]
    fn malformed_body_is_an_error_not_a_panic() {
        let mut codec = Codec::new(1024);
        for body in [
            &[0xc1u8][..],
            &[0x92, 0x01][..],
            b"not msgpack at all",
            &[][..],
        ] {
            let mut buf = BytesMut::new();
            buf.put_u32(body.len() as u32);
            buf.put_slice(body);
            let err = codec.decode(&mut buf).expect_err("malformed");
            assert!(matches!(err, FrameError::Malformed(_)), "{err}");
        }
    }

    #[test]
    fn bytes_fields_are_compact() {
        let frame = encode_frame(
            &Msg {
                n: 1,
                data: vec![0xff; 1000],
            },
            4096,
        )
        .expect("encode");
        // bin8/bin16 header + 1000 raw bytes, not 1000 msgpack integers (2 bytes each).
        assert!(frame.len() < 1100, "{} bytes", frame.len());
    }
}

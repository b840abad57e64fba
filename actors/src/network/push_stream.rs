//! Record pushes over one long-lived stream per partner.
//!
//! A push by request opened a substream per batch: a yamux stream, a protocol negotiation,
//! a timeout timer on each side (each one a wake-up of libp2p's timer thread when set and again
//! when dropped) and an answer that carried nothing. At 50 parties that was a large part of
//! what one step of a job cost. Now a daemon opens one stream to a partner for
//! [`PUSH_PROTOCOL`] when it first pushes to it and writes length-prefixed batches into it;
//! the partner reads them one at a time, each bounded before it is read, and hands each to
//! its event loop, which checks it as it checks a push by request. A stream that cannot be
//! opened or breaks is dropped, the batch it was writing goes by request (records are
//! versioned: one that arrives twice is kept once), and the next push opens another stream.
//! A partner that does not speak the protocol gets requests. A partner has one inbound
//! stream read at a time: a newer one replaces it.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use consort_protocol::peer::PackedRecords;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream, StreamProtocol};
use libp2p_stream::{Control, IncomingStreams, OpenStreamError};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tracing::debug;

/// The stream protocol of record pushes (versioned).
pub(crate) const PUSH_PROTOCOL: StreamProtocol = StreamProtocol::new("/consort/push/1");
/// Events from the stream tasks waiting for the event loop, at most.
const EVENTS: usize = 256;
/// Tries to open a partner's push stream before its batch goes by request.
const OPEN_TRIES: u32 = 4;

/// What the stream tasks tell the event loop.
#[derive(Debug)]
pub(crate) enum PushEvent {
    /// A batch of records from `peer`.
    Received { peer: PeerId, packed: PackedRecords },
    /// `peer` broke the framing (its stream is dropped).
    Refused { peer: PeerId, why: String },
    /// The batch handed to `peer`'s writer is written.
    Written { peer: PeerId },
    /// `peer`'s stream could not be opened or broke; `unsent` is the batch it was writing (it
    /// goes by request instead).
    Broken {
        peer: PeerId,
        unsupported: bool,
        unsent: Vec<u8>,
    },
}

/// The push streams of one daemon.
pub(crate) struct Pushes {
    control: Control,
    /// How long one batch may take to write (a partner that stops reading holds a writer).
    write_timeout: Duration,
    writers: HashMap<PeerId, mpsc::Sender<Vec<u8>>>,
    events_tx: mpsc::Sender<PushEvent>,
    /// Partners that do not speak [`PUSH_PROTOCOL`]: pushed to by request.
    pub(crate) by_request: HashSet<PeerId>,
}

impl Pushes {
    /// Starts accepting partners' push streams (frames of at most `max_frame` bytes); the
    /// events come on the returned receiver.
    pub(crate) fn start(
        mut control: Control,
        max_frame: usize,
        write_timeout: Duration,
    ) -> Result<(Self, mpsc::Receiver<PushEvent>), String> {
        let incoming = control
            .accept(PUSH_PROTOCOL)
            .map_err(|_| format!("{PUSH_PROTOCOL} is accepted twice"))?;
        let (events_tx, events) = mpsc::channel(EVENTS);
        tokio::spawn(accept(incoming, events_tx.clone(), max_frame));
        let pushes = Self {
            control,
            write_timeout,
            writers: HashMap::new(),
            events_tx,
            by_request: HashSet::new(),
        };
        Ok((pushes, events))
    }

    /// Hands `frame` to `peer`'s writer (opening its stream first if there is none). `Err`
    /// gives the frame back when the writer cannot take it now.
    pub(crate) fn send(&mut self, peer: PeerId, frame: Vec<u8>) -> Result<(), Vec<u8>> {
        let frame = match self.writers.get(&peer) {
            Some(writer) => match writer.try_send(frame) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Full(frame)) => return Err(frame),
                // It ended (its stream broke): a new one.
                Err(mpsc::error::TrySendError::Closed(frame)) => frame,
            },
            None => frame,
        };
        let writer = self.spawn_writer(peer);
        let sent = writer.try_send(frame).map_err(|e| match e {
            mpsc::error::TrySendError::Full(f) | mpsc::error::TrySendError::Closed(f) => f,
        });
        self.writers.insert(peer, writer);
        sent
    }

    fn spawn_writer(&self, peer: PeerId) -> mpsc::Sender<Vec<u8>> {
        // One batch at a time: the event loop hands over the next when this one is written.
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(write(
            self.control.clone(),
            peer,
            self.write_timeout,
            rx,
            self.events_tx.clone(),
        ));
        tx
    }

    /// `peer`'s stream broke: forgets its writer if that one has ended.
    pub(crate) fn broken(&mut self, peer: &PeerId, unsupported: bool) {
        if self.writers.get(peer).is_some_and(mpsc::Sender::is_closed) {
            self.writers.remove(peer);
        }
        if unsupported {
            self.by_request.insert(*peer);
        }
    }

    /// `peer`'s last connection closed: the next push opens a stream on the next one.
    pub(crate) fn disconnected(&mut self, peer: &PeerId) {
        self.writers.remove(peer);
    }

    /// `peer` is no partner any more.
    pub(crate) fn forget(&mut self, peer: &PeerId) {
        self.writers.remove(peer);
        self.by_request.remove(peer);
    }
}

/// Writes one partner's batches into its push stream, one at a time, until it breaks.
async fn write(
    mut control: Control,
    peer: PeerId,
    timeout: Duration,
    mut frames: mpsc::Receiver<Vec<u8>>,
    events: mpsc::Sender<PushEvent>,
) {
    let Some(mut frame) = frames.recv().await else {
        return;
    };
    let mut stream = match open(&mut control, peer, timeout).await {
        Ok(stream) => stream,
        Err(unsupported) => {
            // The batch goes by request instead.
            frames.close();
            let event = PushEvent::Broken {
                peer,
                unsupported,
                unsent: frame,
            };
            let _ = events.send(event).await;
            return;
        }
    };
    loop {
        let written = tokio::time::timeout(timeout, write_frame(&mut stream, &frame)).await;
        let event = match written.unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into())) {
            Ok(()) => PushEvent::Written { peer },
            Err(e) => {
                // Sent again by request: a partner that got part of it dropped that part, and
                // one that got all of it keeps what it holds already.
                debug!(%peer, error = %e, "push stream broke");
                frames.close();
                PushEvent::Broken {
                    peer,
                    unsupported: false,
                    unsent: frame,
                }
            }
        };
        let ended = matches!(event, PushEvent::Broken { .. });
        if events.send(event).await.is_err() || ended {
            return;
        }
        frame = match frames.recv().await {
            Some(frame) => frame,
            None => return,
        };
    }
}

/// Opens a push stream to `peer` and waits for the partner's reader to say it is there (a
/// partner drops streams it cannot take at once, e.g. when many open together): a few tries.
/// `Err(true)`: the partner does not speak [`PUSH_PROTOCOL`].
async fn open(control: &mut Control, peer: PeerId, timeout: Duration) -> Result<Stream, bool> {
    for attempt in 0..OPEN_TRIES {
        match control.open_stream(peer, PUSH_PROTOCOL).await {
            Ok(mut stream) => {
                let mut ready = [0u8; 1];
                match tokio::time::timeout(timeout, stream.read_exact(&mut ready)).await {
                    Ok(Ok(())) => return Ok(stream),
                    _ => debug!(%peer, attempt, "push stream not taken"),
                }
            }
            Err(OpenStreamError::UnsupportedProtocol(_)) => return Err(true),
            Err(e) => debug!(%peer, attempt, error = %e, "cannot open a push stream"),
        }
        tokio::time::sleep(Duration::from_millis(10 << attempt)).await;
    }
    Err(false)
}

async fn write_frame(stream: &mut Stream, frame: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(frame.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame too long"))?;
    stream.write_all(&len.to_be_bytes()).await?;
    stream.write_all(frame).await?;
    stream.flush().await
}

/// Accepts partners' push streams, one read at a time per partner.
async fn accept(mut incoming: IncomingStreams, events: mpsc::Sender<PushEvent>, max_frame: usize) {
    let mut readers: HashMap<PeerId, AbortHandle> = HashMap::new();
    while let Some((peer, stream)) = incoming.next().await {
        readers.retain(|_, r| !r.is_finished());
        let reader = tokio::spawn(read(peer, stream, events.clone(), max_frame));
        if let Some(older) = readers.insert(peer, reader.abort_handle()) {
            older.abort();
        }
    }
}

async fn read<S: AsyncRead + AsyncWrite + Unpin>(
    peer: PeerId,
    mut stream: S,
    events: mpsc::Sender<PushEvent>,
    max_frame: usize,
) {
    // Taken: the writer may start.
    if stream.write_all(&[1]).await.is_err() || stream.flush().await.is_err() {
        return;
    }
    loop {
        let mut len = [0u8; 4];
        if stream.read_exact(&mut len).await.is_err() {
            return; // closed
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > max_frame {
            let why = format!("push of {len} bytes (at most {max_frame})");
            let _ = events.send(PushEvent::Refused { peer, why }).await;
            return;
        }
        // Grows as the bytes arrive, not by what the length claims.
        let mut frame = Vec::new();
        match (&mut stream).take(len as u64).read_to_end(&mut frame).await {
            Ok(n) if n == len => {}
            _ => return, // closed mid-frame
        }
        let event = PushEvent::Received {
            peer,
            packed: PackedRecords(frame),
        };
        if events.send(event).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;

    /// A partner's end of a push stream: what it sent, and what it was told.
    struct Wire {
        input: futures::io::Cursor<Vec<u8>>,
        told: Vec<u8>,
    }

    impl AsyncRead for Wire {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<std::io::Result<usize>> {
            Pin::new(&mut self.input).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Wire {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.told.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn frame(bytes: &[u8]) -> Vec<u8> {
        let mut f = (bytes.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(bytes);
        f
    }

    /// What the reader makes of `input` (frames of at most 16 bytes).
    fn read_all(input: Vec<u8>) -> Vec<PushEvent> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (tx, mut rx) = mpsc::channel(16);
            let wire = Wire {
                input: futures::io::Cursor::new(input),
                told: Vec::new(),
            };
            read(PeerId::random(), wire, tx, 16).await;
            let mut events = Vec::new();
            while let Ok(e) = rx.try_recv() {
                events.push(e);
            }
            events
        })
    }

    #[test]
    fn frames_are_read_in_order() {
        let mut input = frame(b"first");
        input.extend(frame(b""));
        input.extend(frame(&[7; 16]));
        let got: Vec<Vec<u8>> = read_all(input)
            .into_iter()
            .map(|e| match e {
                PushEvent::Received { packed, .. } => packed.0,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(got, [b"first".to_vec(), Vec::new(), vec![7; 16]]);
    }

    #[test]
    fn a_frame_over_the_bound_is_refused_unread_and_ends_the_stream() {
        let mut input = frame(b"fine");
        // Claims 4 GiB - 1: refused on its length, before any of it is read.
        input.extend(u32::MAX.to_be_bytes());
        input.extend(frame(b"after"));
        let events = read_all(input);
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(matches!(&events[0], PushEvent::Received { packed, .. } if packed.0 == b"fine"));
        match &events[1] {
            PushEvent::Refused { why, .. } => assert!(why.contains("at most 16"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_frame_cut_short_is_dropped() {
        let mut input = frame(b"whole");
        input.extend(frame(b"0123456789")[..8].to_vec());
        let events = read_all(input);
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(matches!(&events[0], PushEvent::Received { packed, .. } if packed.0 == b"whole"));
    }
}

//! The data channel on real daemons: a large payload travels as 4 MiB chunks, each written at
//! its offset in the receiver's mailbox file and synced before it is acknowledged. These tests
//! break what that promises — the receiver dies, the link drops — and check that the payload
//! still arrives whole within the same attempt, with nothing acknowledged sent twice.
//!
//! The receivers run with the network actor's debug lines on: it logs `channel chunk stored`
//! for every chunk it has on disk, just before acknowledging it, which is how the tests count
//! what crossed the channel (and when).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consort_tests::{
    Federation, Party, assert_succeeds, connected_peers, files_under, submit, task_of, wait_for,
};

const T: Duration = Duration::from_secs(60);
const MIB: u64 = 1 << 20;
/// The payload: 64 MiB, sixteen chunks.
const SIZE_MB: u64 = 64;
const CHUNKS: usize = 16;
/// Chunks of one payload in flight at once (`WINDOW` in actors/src/executor/context.rs).
const WINDOW: usize = 4;
/// Daemon log filter: the receiver's stored chunks and the sender's request retries.
const CHANNEL_LOG: &str = "info,consort_actors::network_actor=debug,consort_actors::network=debug";

fn blob_job(fed: &Federation) -> String {
    // One retry allowed, so that a lost payload would show as attempt 2 rather than as a
    // failed job: the tests require attempt 1.
    fed.job_file(
        "blob.yaml",
        &format!(
            "name: blob\nparties: {{guest: [bank-a], host: [insurer-b]}}\nconf: {{auto_retries: 1}}\ntasks:\n  blob: {{component: blob, params: {{size_mb: {SIZE_MB}}}}}\n"
        ),
    )
}

/// The `key=` prefix of the payload's chunks (attempt 1) in the receiver's log.
fn payload_key(id: &str) -> String {
    format!("key={id}/blob/1/blob/guest@bank-a/host@insurer-b/")
}

/// Indices of the payload's chunks stored, in log order (repeats included).
fn chunks_stored(log: &str, key: &str) -> Vec<u32> {
    log.lines()
        .filter(|l| l.contains("channel chunk stored") && l.contains(key))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("chunk="))
                .and_then(|n| n.parse().ok())
        })
        .collect()
}

fn distinct(chunks: &[u32]) -> BTreeSet<u32> {
    chunks.iter().copied().collect()
}

fn wait_connected(fed: &Federation) {
    for p in &fed.parties {
        wait_for("partners connected", T, || {
            let peers = connected_peers(p);
            (peers.len() == fed.parties.len() - 1 && peers.iter().all(|(_, c)| *c)).then_some(())
        });
    }
}

/// Success at attempt 1 for both runs, in every party's view; the receiver counted and
/// hashed the whole payload; its mailbox and scratch space end up empty.
fn assert_delivered_in_attempt_1(fed: &Federation, id: &str) {
    for v in assert_succeeds(&fed.parties, id, T) {
        let blob = task_of(&v, "blob");
        for p in ["bank-a", "insurer-b"] {
            assert_eq!(blob["parties"][p]["attempt"], 1, "no retry expected: {v}");
            assert_eq!(blob["parties"][p]["state"], "success", "{v}");
        }
    }
    // The receiver checks the SHA-256 the guest sent and fails on a mismatch; it logs the
    // byte count only once the hash matched.
    let b = &fed.parties[1];
    let m = b
        .cli(&["--json", "metric", "get", id, "blob", "blob", "bytes"])
        .json();
    assert_eq!(m[0]["points"][0][1], (SIZE_MB * MIB) as f64, "{m}");
    wait_for("insurer-b's mailbox and job files emptied", T, || {
        let left: Vec<_> = files_under(&b.dir.join("mailbox"))
            .into_iter()
            .chain(files_under(&b.dir.join("jobs")))
            .filter(|p| !p.ends_with(".models-stored"))
            .collect();
        left.is_empty().then_some(())
    });
}

/// The receiver dies (SIGKILL) with part of the payload acknowledged. The run was only waiting
/// for the payload, so the restarted daemon starts it again in place, at the same attempt; the
/// sender keeps sending the chunks it has no acknowledgement for, and the payload completes
/// from the chunks that were on the receiver's disk plus those. A mailbox that lost
/// acknowledged chunks would never complete (the sender does not send them again); a daemon
/// that failed the run would show attempt 2.
#[test]
fn a_receiver_killed_mid_transfer_completes_the_payload_from_its_synced_chunks_in_the_same_attempt()
{
    let fed = Federation::init(&["bank-a", "insurer-b"]);
    fed.all_mutual();
    let (a, b) = (&fed.parties[0], &fed.parties[1]);
    let mut d = [a.start(), b.start_logging(CHANNEL_LOG)];
    wait_connected(&fed);
    let id = submit(a, &blob_job(&fed));
    let key = payload_key(&id);

    // Kill insurer-b once six chunks are on its disk (so at least two of them were
    // acknowledged: at most WINDOW were still in flight).
    wait_for("six chunks of the payload stored at insurer-b", T, || {
        (distinct(&chunks_stored(&d[1].log(), &key)).len() >= WINDOW + 2).then_some(())
    });
    d[1].kill9();
    let first_life = d[1].log();
    let before = distinct(&chunks_stored(&first_life, &key));
    assert!(
        before.len() < CHUNKS,
        "the payload was complete before the kill: {before:?}"
    );
    assert!(
        files_under(&b.dir.join("mailbox"))
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "part")),
        "no partial payload on insurer-b's disk after the kill"
    );

    d[1] = b.start_logging(CHANNEL_LOG);
    assert_delivered_in_attempt_1(&fed, &id);

    let second_life = d[1].log()[first_life.len()..].to_owned();
    assert!(
        second_life.contains("run resumed after a restart"),
        "{second_life}"
    );
    assert!(!second_life.contains("cut short"), "{second_life}");
    let after = chunks_stored(&second_life, &key);
    let after_set = distinct(&after);
    let all: BTreeSet<u32> = before.union(&after_set).copied().collect();
    assert_eq!(all.len(), CHUNKS, "before {before:?}, after {after:?}");
    // Only chunks whose acknowledgement the kill may have swallowed (at most the window in
    // flight) crossed the channel again; the rest came from the receiver's disk.
    let again: Vec<u32> = before.intersection(&after_set).copied().collect();
    assert!(
        again.len() <= WINDOW,
        "{} chunks stored before the kill were sent again: {again:?} (before {before:?}, after {after:?})",
        again.len()
    );
    assert!(
        after.len() < CHUNKS,
        "the restarted receiver was sent the whole payload again: {after:?}"
    );
    eprintln!(
        "stored before the kill: {before:?}; after the restart: {after:?} (again: {again:?})"
    );
}

/// What the proxy saw when it cut the link.
#[derive(Debug, Clone)]
struct Cut {
    /// Bytes forwarded from the sender to the receiver before the cut.
    bytes: u64,
    /// The receiver's log at that moment.
    receiver_log: String,
}

struct ProxyState {
    target: u16,
    threshold: u64,
    /// Bytes forwarded client → server, over every connection.
    upstream: AtomicU64,
    /// Connections accepted.
    accepted: AtomicU64,
    cut: Mutex<Option<Cut>>,
    /// Both sockets of every connection accepted before the cut.
    live: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
    snapshot: Box<dyn Fn() -> String + Send + Sync>,
}

/// A TCP proxy in front of a daemon's listen port. Once `threshold` bytes have gone from
/// client to server it drops every connection it carries (both sockets shut down, the bytes
/// just read never forwarded), once; later connections are forwarded untouched.
struct CuttingProxy {
    port: u16,
    state: Arc<ProxyState>,
}

impl CuttingProxy {
    fn start(
        target: u16,
        threshold: u64,
        snapshot: impl Fn() -> String + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(ProxyState {
            target,
            threshold,
            upstream: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            cut: Mutex::new(None),
            live: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            snapshot: Box::new(snapshot),
        });
        let s = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", s.target)) else {
                    continue;
                };
                s.accepted.fetch_add(1, Ordering::SeqCst);
                if s.cut.lock().unwrap().is_none() {
                    let mut live = s.live.lock().unwrap();
                    live.push(client.try_clone().unwrap());
                    live.push(server.try_clone().unwrap());
                }
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let up = s.clone();
                std::thread::spawn(move || pump(&up, client, server, true));
                let down = s.clone();
                std::thread::spawn(move || pump(&down, s2, c2, false));
            }
        });
        Self { port, state }
    }

    fn addr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.port)
    }

    fn cut(&self) -> Option<Cut> {
        self.state.cut.lock().unwrap().clone()
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies `from` into `to` until either end closes; the upstream direction counts its bytes
/// and cuts every connection when they reach the threshold.
fn pump(state: &ProxyState, mut from: TcpStream, mut to: TcpStream, upstream: bool) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if upstream {
            let before = state.upstream.fetch_add(n as u64, Ordering::SeqCst);
            if before + n as u64 >= state.threshold {
                let mut cut = state.cut.lock().unwrap();
                if cut.is_none() {
                    *cut = Some(Cut {
                        bytes: before,
                        receiver_log: (state.snapshot)(),
                    });
                    for s in state.live.lock().unwrap().drain(..) {
                        let _ = s.shutdown(Shutdown::Both);
                    }
                    break;
                }
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// The link (not a daemon) drops mid-payload: the sender dials insurer-b only through a proxy
/// that cuts every connection after 16 of the 64 MiB. The chunks in flight fail; the sender
/// sends them again over a new connection, and the payload completes in the same attempt.
#[test]
fn a_payload_cut_by_a_dropped_link_is_resent_and_completes_in_the_same_attempt() {
    let fed = Federation::init(&["bank-a", "insurer-b"]);
    let (a, b): (&Party, &Party) = (&fed.parties[0], &fed.parties[1]);
    let receiver_log = b.dir.parent().unwrap().join("insurer-b.log");
    let proxy = CuttingProxy::start(fed.ports[1], 16 * MIB, move || {
        std::fs::read_to_string(&receiver_log).unwrap_or_default()
    });
    // bank-a knows insurer-b only by the proxy's address; insurer-b has no address for bank-a,
    // so the first connection is the one bank-a dials, through the proxy.
    fed.append_config(
        0,
        &format!(
            "\n[[partners]]\nparty = \"insurer-b\"\npeer_id = \"{}\"\naddrs = [\"{}\"]\n",
            b.peer_id,
            proxy.addr()
        ),
    );
    fed.configure_partner(1, 0, false);
    let d = [a.start_logging(CHANNEL_LOG), b.start_logging(CHANNEL_LOG)];
    wait_connected(&fed);
    assert_eq!(proxy.state.accepted.load(Ordering::SeqCst), 1);
    let id = submit(a, &blob_job(&fed));
    let key = payload_key(&id);

    assert_delivered_in_attempt_1(&fed, &id);
    let cut = proxy.cut().expect("the proxy never cut the link");
    // The only link carried less than the payload before it dropped: the payload was
    // incomplete, as the receiver's log at that moment shows.
    assert!(cut.bytes < SIZE_MB * MIB, "{cut:?}");
    let before = distinct(&chunks_stored(&cut.receiver_log, &key));
    assert!(
        before.len() < CHUNKS,
        "the payload was complete before the cut: {before:?}"
    );
    let receiver = d[1].log();
    let after_cut = &receiver[cut.receiver_log.len()..];
    let after = chunks_stored(after_cut, &key);
    let all: BTreeSet<u32> = before.union(&distinct(&after)).copied().collect();
    assert_eq!(all.len(), CHUNKS, "before {before:?}, after {after:?}");
    assert!(!after.is_empty(), "nothing arrived after the cut");
    // The sender saw the link go and retried its requests to insurer-b.
    let sender = d[0].log();
    assert!(
        sender
            .lines()
            .any(|l| l.contains("partner disconnected") && l.contains("insurer-b")),
        "bank-a never saw the link drop"
    );
    assert!(
        sender
            .lines()
            .any(|l| l.contains("request failed; retrying") && l.contains("insurer-b")),
        "bank-a never retried a request to insurer-b"
    );
    eprintln!(
        "cut after {:.1} MiB with chunks {before:?} stored; after the cut: {after:?}; {} connection(s) through the proxy",
        cut.bytes as f64 / MIB as f64,
        proxy.state.accepted.load(Ordering::SeqCst)
    );
}

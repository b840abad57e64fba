//! Partner-network benchmarks: two or three real swarms in this process, talking over loopback
//! TCP with Noise and yamux (each on its own thread and runtime, as in the daemon).
//!
//! - connection time: from start until every partner is identified;
//! - gossip delivery latency among 3 parties (publish at one, stored at another), p50/p99;
//! - request-response throughput with 1 MiB payloads (echo, 4 in flight), next to plain tokio
//!   TCP on loopback moving the same frames in the same run.
//!
//! Run: `cargo bench -p consort-actors --bench network`.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use consort_actors::network::{self, Network, NetworkConfig, NetworkEvent, Partner};
use consort_protocol::PartyName;
use consort_protocol::peer::{PeerRequestBody, PeerResponse};
use consort_storage::{RecordStore, Store};
use libp2p::identity::Keypair;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIB: usize = 1024 * 1024;

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

struct Node {
    net: Network,
}

fn start_nodes(n: usize) -> (Vec<Node>, Instant) {
    let keys: Vec<Keypair> = (0..n).map(|_| Keypair::generate_ed25519()).collect();
    let ports: Vec<u16> = (0..n)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        })
        .collect();
    let names: Vec<PartyName> = (0..n)
        .map(|i| PartyName::new(&format!("p{i}")).unwrap())
        .collect();
    let started = Instant::now();
    let nodes = (0..n)
        .map(|i| {
            let partners = (0..n)
                .filter(|j| *j != i)
                .map(|j| Partner {
                    party: names[j].clone(),
                    peer_id: keys[j].public().to_peer_id(),
                    addrs: vec![format!("/ip4/127.0.0.1/tcp/{}", ports[j]).parse().unwrap()],
                    source: "config",
                })
                .collect();
            let cfg = NetworkConfig {
                party: names[i].clone(),
                key: keys[i].clone(),
                listen: vec![format!("/ip4/127.0.0.1/tcp/{}", ports[i]).parse().unwrap()],
                federation: "bench".into(),
                mdns: false,
                kademlia: true,
                max_message_bytes: 64 * MIB,
                request_timeout: Duration::from_secs(30),
                redial_max: Duration::from_secs(2),
                antientropy: Duration::from_secs(3600),
                records_per_partner: network::MAX_RECORDS_PER_ORIGIN,
                record_bytes_per_partner: network::MAX_BYTES_PER_ORIGIN,
                relay: None,
                nat: network::NatMode::Public,
            };
            let records = RecordStore::open(&Store::temporary().unwrap()).unwrap();
            Node {
                net: network::start(cfg, partners, records).unwrap(),
            }
        })
        .collect();
    (nodes, started)
}

async fn wait_connected(nodes: &mut [Node], n: usize) {
    for node in nodes.iter_mut() {
        let mut up = 0;
        while up < n - 1 {
            if let Some(NetworkEvent::PartnerConnected(_)) = node.net.events.recv().await {
                up += 1;
            }
        }
    }
}

async fn tcp_baseline(frames: usize, in_flight: usize) -> f64 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut handles = Vec::new();
        for _ in 0..in_flight {
            let (mut s, _) = listener.accept().await.unwrap();
            s.set_nodelay(true).unwrap();
            handles.push(tokio::spawn(async move {
                let mut buf = vec![0u8; MIB];
                while s.read_exact(&mut buf).await.is_ok() {
                    if s.write_all(&buf).await.is_err() {
                        break;
                    }
                }
            }));
        }
        for h in handles {
            let _ = h.await;
        }
    });
    let t = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..in_flight {
        let per = frames / in_flight;
        clients.push(tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.set_nodelay(true).unwrap();
            let mut buf = vec![7u8; MIB];
            for _ in 0..per {
                s.write_all(&buf).await.unwrap();
                s.read_exact(&mut buf).await.unwrap();
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    server.abort();
    (2 * frames * MIB) as f64 / secs / 1e6
}

async fn rr_throughput(client: &network::NetworkClient, frames: usize, in_flight: usize) -> f64 {
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..in_flight {
        let client = client.clone();
        let per = frames / in_flight;
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                let body = PeerRequestBody::Echo {
                    data: vec![7u8; MIB],
                };
                match client
                    .request("p1", body, Duration::from_secs(30))
                    .await
                    .unwrap()
                {
                    PeerResponse::Echo { data } => assert_eq!(data.len(), MIB),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (2 * frames * MIB) as f64 / t.elapsed().as_secs_f64() / 1e6
}

/// Bytes per second that one core seals and opens with ChaCha20-Poly1305 (Noise's cipher), in
/// 64 KiB frames as Noise uses them.
fn aead_rate() -> f64 {
    use chacha20poly1305::aead::{AeadInPlace, KeyInit};
    let cipher = chacha20poly1305::ChaCha20Poly1305::new(&[7u8; 32].into());
    let nonce = [0u8; 12].into();
    let mut buf = vec![1u8; 65_519];
    let t = Instant::now();
    let mut bytes = 0usize;
    while t.elapsed() < Duration::from_secs(1) {
        let tag = cipher
            .encrypt_in_place_detached(&nonce, b"", &mut buf)
            .unwrap();
        cipher
            .decrypt_in_place_detached(&nonce, b"", &mut buf, &tag)
            .unwrap();
        bytes += buf.len();
    }
    // One seal plus one open per byte moved.
    bytes as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    let aead = aead_rate();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut nodes, started) = start_nodes(3);
        wait_connected(&mut nodes, 3).await;
        let connect_ms = started.elapsed().as_secs_f64() * 1e3;

        // Gossip latency: publish at p0, observe the store at p1 and p2.
        let mut lat = Vec::new();
        for i in 0..200 {
            let t = Instant::now();
            nodes[0].net.client.put_record(format!("k{i}"), vec![1; 64], Default::default()).await.unwrap();
            for node in nodes[1..].iter_mut() {
                loop {
                    if let Some(NetworkEvent::RecordsUpdated(rs)) = node.net.events.recv().await
                        && rs.iter().any(|r| r.key == format!("k{i}"))
                    {
                        break;
                    }
                }
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        let (g50, g99) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99));

        let frames = 256;
        let rr = rr_throughput(&nodes[0].net.client, frames, 4).await;
        let rr16 = rr_throughput(&nodes[0].net.client, frames, 16).await;
        let tcp = tcp_baseline(frames, 4).await;
        let tcp1 = tcp_baseline(frames, 1).await;

        println!("| measure | result | baseline in the same run | ratio |");
        println!("|---|---|---|---|");
        println!("| 3 partners all identified after start | {connect_ms:.0} ms | | |");
        println!("| gossip delivery, publish → stored at a partner (400 deliveries) | p50 {g50:.2} ms, p99 {g99:.2} ms | | |");
        println!(
            "| request-response echo, 1 MiB payloads, 4 in flight ({frames} round trips) | {rr:.0} MB/s | plain tokio TCP echo of 1 MiB frames: {tcp:.0} MB/s | {:.0}% |",
            100.0 * rr / tcp
        );
        println!(
            "| request-response echo, 1 MiB payloads, 16 in flight | {rr16:.0} MB/s | plain TCP, one connection, one frame at a time: {tcp1:.0} MB/s | {:.0}% |",
            100.0 * rr16 / tcp1
        );
        // Each echoed byte is sealed once and opened once in each direction; with two cores
        // doing nothing else, the cipher alone caps the echo at about `aead` bytes/s.
        println!(
            "| ceiling set by the cipher: ChaCha20-Poly1305 seal+open on one core, 64 KiB frames | {:.0} MB/s | plain TCP, 4 in flight: {tcp:.0} MB/s | {:.0}% |",
            aead / 1e6,
            100.0 * aead / 1e6 / tcp
        );
        for n in &nodes {
            n.net.client.shutdown().await;
        }
    });
}

//! Clients of the inference APIs for the serving tests and benchmark: HTTP/1.1 through hyper
//! (one kept-alive connection per client), and the gRPC client generated from the daemon's
//! `proto/inference.proto`.

use std::net::SocketAddr;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::*;

pub use consort_daemon::http::grpc::pb;

/// One HTTP/1.1 connection (async), for load generators.
pub struct HttpConn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    token: Option<String>,
}

impl HttpConn {
    /// Connects to `addr`; requests carry `token` as a bearer token when given.
    pub async fn connect(addr: SocketAddr, token: Option<String>) -> std::io::Result<Self> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self {
            sender,
            host: addr.to_string(),
            token,
        })
    }

    /// Connects over TLS, trusting only `ca_pem`, to `localhost` at `addr`.
    pub async fn connect_tls(
        addr: SocketAddr,
        ca_pem: &[u8],
        token: Option<String>,
    ) -> std::io::Result<Self> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem) {
            roots
                .add(c.map_err(std::io::Error::other)?)
                .map_err(std::io::Error::other)?;
        }
        let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let name =
            rustls::pki_types::ServerName::try_from("localhost").map_err(std::io::Error::other)?;
        let tls = connector.connect(name, tcp).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self {
            sender,
            host: format!("localhost:{}", addr.port()),
            token,
        })
    }

    /// GETs `path`; the status and the body's bytes.
    pub async fn get(&mut self, path: &str) -> Result<(u16, Bytes), String> {
        let req = hyper::Request::get(path).header("host", &self.host);
        self.send(req, Bytes::new()).await
    }

    /// POSTs `body` (JSON) to `path`; the status and the body's bytes.
    pub async fn post(&mut self, path: &str, body: Vec<u8>) -> Result<(u16, Bytes), String> {
        let mut req = hyper::Request::post(path)
            .header("host", &self.host)
            .header("content-type", "application/json");
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        self.send(req, Bytes::from(body)).await
    }

    async fn send(
        &mut self,
        req: hyper::http::request::Builder,
        body: Bytes,
    ) -> Result<(u16, Bytes), String> {
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, bytes))
    }
}

/// A blocking HTTP client for tests: a connection and its own runtime.
pub struct Http {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    token: Option<String>,
    conn: Option<HttpConn>,
}

impl Http {
    /// A client of `addr` (connects on first use, and again after a failure).
    pub fn new(addr: SocketAddr, token: Option<&str>) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Self {
            rt,
            addr,
            token: token.map(str::to_owned),
            conn: None,
        }
    }

    /// POSTs raw bytes; the status and the body as JSON (Null when it is not JSON), or why
    /// there is no answer.
    pub fn post_raw(&mut self, path: &str, body: Vec<u8>) -> Result<(u16, Value), String> {
        let (addr, token) = (self.addr, self.token.clone());
        let conn = self.conn.take();
        let (conn, result) = self.rt.block_on(async move {
            let mut conn = match conn {
                Some(c) => c,
                None => match HttpConn::connect(addr, token).await {
                    Ok(c) => c,
                    Err(e) => return (None, Err(format!("connect: {e}"))),
                },
            };
            let r = conn.post(path, body).await;
            (r.is_ok().then_some(conn), r)
        });
        self.conn = conn;
        let (status, bytes) = result?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// POSTs a JSON value.
    pub fn post(&mut self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, body.to_string().into_bytes())
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }
}

const T: Duration = Duration::from_secs(120);

/// The breast pipeline every serving test and the benchmark train: scaled hetero LR.
pub const TRAIN: &str = "name: breast-lr
parties: {guest: [bank-a], host: [insurer-b], arbiter: [bank-a]}
tasks:
  reader:
    component: reader
    role_params: {guest: {table: breast_guest}, host: {table: breast_host}}
  psi:
    component: psi
    inputs: {data: reader.data}
  scale:
    component: feature_scale
    inputs: {data: psi.data}
  lr:
    component: hetero_lr
    inputs: {train_data: scale.data}
    params: {max_iter: 10, batch_size: 300, learning_rate: 0.15, alpha: 0.001, key_bits: 512}
";

/// Two parties (bank-a guest, insurer-b host), bank-a's APIs on `http` and `grpc`, and
/// `guest_extra` and `host_extra` appended to their configs (their feature sources).
pub struct Setup {
    pub fed: Federation,
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    /// bank-a's board listener (`/metrics`).
    pub board: SocketAddr,
}

pub fn setup(guest_extra: &str, host_extra: &str) -> Setup {
    let fed = Federation::init(&["bank-a", "insurer-b"]);
    fed.all_mutual();
    for i in 0..2 {
        fed.edit_config(i, "# \"*\" = [\"*\"]", "\"*\" = [\"*\"]");
    }
    let (http, grpc, board) = (free_port(), free_port(), free_port());
    fed.append_config(
        0,
        &format!(
            "\n[board]\nlisten = \"127.0.0.1:{board}\"\n\
             [serving]\nlisten = \"127.0.0.1:{http}\"\ngrpc_listen = \"127.0.0.1:{grpc}\"\n"
        ),
    );
    fed.append_config(0, guest_extra);
    fed.append_config(1, host_extra);
    Setup {
        fed,
        http: SocketAddr::from(([127, 0, 0, 1], http)),
        grpc: SocketAddr::from(([127, 0, 0, 1], grpc)),
        board: SocketAddr::from(([127, 0, 0, 1], board)),
    }
}

pub fn start(fed: &Federation) -> Vec<Daemon> {
    let d: Vec<Daemon> = fed.parties.iter().map(|p| p.start()).collect();
    wait_connected(fed);
    d
}

pub fn wait_connected(fed: &Federation) {
    for (p, other) in [(&fed.parties[0], "insurer-b"), (&fed.parties[1], "bank-a")] {
        wait_for("partners connected", T, || {
            connected_peers(p)
                .iter()
                .any(|(q, c)| q == other && *c)
                .then_some(())
        });
    }
}

/// Trains once; the model id and version.
pub fn train(fed: &Federation) -> (String, String) {
    let id = submit(&fed.parties[0], &fed.job_file("train.yaml", TRAIN));
    assert_succeeds(&fed.parties, &id, T);
    let model = wait_for("the model at both parties", T, || {
        let lists: Vec<Value> = fed
            .parties
            .iter()
            .map(|p| p.cli(&["--json", "model", "list"]).json())
            .collect();
        let has = |l: &Value| {
            l.as_array()
                .and_then(|a| a.iter().find(|m| m["version"] == id.as_str()))
                .map(|m| m["model_id"].as_str().unwrap_or("").to_owned())
        };
        match (has(&lists[0]), has(&lists[1])) {
            (Some(a), Some(b)) if a == b => Some(a),
            _ => None,
        }
    });
    (model, id)
}

/// One of the guest's breast rows: id, features, label.
pub type GuestRow = (String, serde_json::Map<String, Value>, u8);

/// The guest's breast rows.
pub fn guest_rows() -> Vec<GuestRow> {
    let file = std::fs::File::open(example_data("breast_hetero_guest.csv")).unwrap();
    let d = consort_protocol::data::parse_csv(file, &Default::default()).unwrap();
    let labels = d.labels.clone().unwrap();
    (0..d.ids.len())
        .map(|i| {
            let f = d
                .feature_names
                .iter()
                .zip(&d.columns)
                .map(|(n, c)| (n.clone(), json!(c[i])))
                .collect();
            (d.ids[i].clone(), f, labels[i] as u8)
        })
        .collect()
}

/// The batch predict job's scores at the guest, by id.
pub fn predict_scores(fed: &Federation, model: &str, version: &str) -> HashMap<String, f64> {
    let predict = format!(
        "name: breast-lr-predict
parties: {{guest: [bank-a], host: [insurer-b], arbiter: [bank-a]}}
tasks:
  reader:
    component: reader
    role_params: {{guest: {{table: breast_guest}}, host: {{table: breast_host}}}}
  psi:
    component: psi
    inputs: {{data: reader.data}}
  scale:
    component: feature_scale
    inputs: {{data: psi.data}}
    model: {{id: {model}, version: {version}}}
  lr:
    component: hetero_lr
    inputs: {{test_data: scale.data}}
    model: {{id: {model}, version: {version}}}
"
    );
    let pid = submit(&fed.parties[0], &fed.job_file("predict.yaml", &predict));
    assert_succeeds(&fed.parties, &pid, T);
    let out = fed.parties[0].cli(&["job", "output", &pid, "lr", "predict_output"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("id,y,score"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_owned(), f[2].parse::<f64>().unwrap())
        })
        .collect()
}

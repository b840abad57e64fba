//! Clients of the inference APIs for the serving tests and benchmark: HTTP/1.1 through hyper
//! (one kept-alive connection per client), and the gRPC client generated from the daemon's
//! `proto/inference.proto`.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;

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

    /// POSTs `body` (JSON) to `path`; the status and the body's bytes.
    pub async fn post(&mut self, path: &str, body: Vec<u8>) -> Result<(u16, Bytes), String> {
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let mut req = hyper::Request::post(path)
            .header("host", &self.host)
            .header("content-type", "application/json");
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
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

//! A host's feature adapter: a long-running command the host registers, speaking JSON lines,
//! or an HTTP endpoint.
//!
//! Both take `{"ids": ["a", "b", ...]}` and answer `{"rows": [{"x0": 1.5, ...}, null, ...]}`:
//! one object of features (or null: unknown id) per id, in order. A command gets the request
//! as one line on its stdin and answers one line on its stdout; it starts at deploy, serves
//! every version of the service, and is started again after it fails, times out or exits; it
//! stops with the service (its stderr goes to the daemon's log). An endpoint gets the request
//! as the body of a `POST` and answers it as the body of a 200.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

/// Longest answer line read from an adapter.
const MAX_LINE: u64 = 64 << 20;

/// One id's features, by name.
pub(crate) type Row = HashMap<String, f64>;

type Reply = Result<Vec<Option<Row>>, String>;

pub(crate) struct Ask {
    ids: Vec<String>,
    timeout: Duration,
    reply: oneshot::Sender<Reply>,
}

/// A running adapter.
#[derive(Debug)]
pub(crate) enum Adapter {
    /// A command (its task owns the process).
    Command(mpsc::Sender<Ask>),
    /// An HTTP endpoint: where to POST, and the client (kept-alive connections).
    Http(Box<(hyper::Uri, HttpClient)>),
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
>;

#[derive(Deserialize)]
struct Answer {
    rows: Vec<Option<Row>>,
}

impl Adapter {
    /// Starts the task serving `command` for `service` (the process itself starts on first
    /// use, so a deploy does not wait for it).
    pub(crate) fn start(service: &str, command: Vec<String>) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(run(service.to_owned(), command, rx));
        Arc::new(Self::Command(tx))
    }

    /// An adapter at `url` (`http://HOST:PORT/PATH`).
    pub(crate) fn http(url: &str) -> Result<Arc<Self>, String> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| format!("feature adapter url '{url}': {e}"))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(format!(
                "feature adapter url '{url}' is not http://HOST[:PORT]/PATH"
            ));
        }
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        Ok(Arc::new(Self::Http(Box::new((uri, client)))))
    }

    /// The features of `ids`, or why there are none (within `timeout`).
    pub(crate) async fn rows(&self, ids: Vec<String>, timeout: Duration) -> Reply {
        let tx = match self {
            Self::Command(tx) => tx,
            Self::Http(endpoint) => {
                let (uri, client) = &**endpoint;
                return match tokio::time::timeout(timeout, post(client, uri, &ids)).await {
                    Ok(r) => r,
                    Err(_) => Err(format!(
                        "the feature endpoint did not answer within {} ms",
                        timeout.as_millis()
                    )),
                };
            }
        };
        let (reply, rx) = oneshot::channel();
        tx.send(Ask {
            ids,
            timeout,
            reply,
        })
        .await
        .map_err(|_| "the feature adapter stopped".to_owned())?;
        rx.await
            .map_err(|_| "the feature adapter stopped".to_owned())?
    }
}

async fn post(client: &HttpClient, uri: &hyper::Uri, ids: &[String]) -> Reply {
    use http_body_util::BodyExt;
    let body = serde_json::to_vec(&serde_json::json!({ "ids": ids }))
        .map_err(|e| format!("cannot encode the request: {e}"))?;
    let req = hyper::Request::post(uri.clone())
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| format!("the feature endpoint {uri} failed: {e}"))?;
    let status = resp.status();
    let bytes = http_body_util::Limited::new(resp.into_body(), MAX_LINE as usize)
        .collect()
        .await
        .map_err(|e| format!("reading the feature endpoint's answer: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("the feature endpoint {uri} answered {status}"));
    }
    check(serde_json::from_slice(&bytes), ids.len())
}

/// An answer with one row per id.
fn check(answer: Result<Answer, serde_json::Error>, ids: usize) -> Reply {
    let a = answer
        .map_err(|e| format!("the feature adapter's answer is not {{\"rows\": [...]}}: {e}"))?;
    if a.rows.len() != ids {
        return Err(format!(
            "the feature adapter answered {} rows for {ids} ids",
            a.rows.len()
        ));
    }
    Ok(a.rows)
}

struct Process {
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

fn spawn(command: &[String]) -> Result<Process, String> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| "the adapter command is empty".to_owned())?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start the feature adapter {program}: {e}"))?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err("the feature adapter has no stdin/stdout".into());
    };
    Ok(Process {
        _child: child,
        stdin,
        stdout: BufReader::new(stdout),
    })
}

async fn exchange(p: &mut Process, ids: &[String]) -> Reply {
    let mut line = serde_json::to_vec(&serde_json::json!({ "ids": ids }))
        .map_err(|e| format!("cannot encode the request: {e}"))?;
    line.push(b'\n');
    p.stdin
        .write_all(&line)
        .await
        .map_err(|e| format!("cannot write to the feature adapter: {e}"))?;
    p.stdin
        .flush()
        .await
        .map_err(|e| format!("cannot write to the feature adapter: {e}"))?;
    let mut answer = Vec::new();
    let n = (&mut p.stdout)
        .take(MAX_LINE)
        .read_until(b'\n', &mut answer)
        .await
        .map_err(|e| format!("cannot read from the feature adapter: {e}"))?;
    if n == 0 {
        return Err("the feature adapter exited".into());
    }
    if !answer.ends_with(b"\n") {
        return Err(format!(
            "the feature adapter's answer exceeds {MAX_LINE} bytes"
        ));
    }
    check(serde_json::from_slice(&answer), ids.len())
}

async fn run(service: String, command: Vec<String>, mut rx: mpsc::Receiver<Ask>) {
    let mut process: Option<Process> = None;
    while let Some(ask) = rx.recv().await {
        let deadline = tokio::time::Instant::now() + ask.timeout;
        // A process kept from earlier requests may have exited since: then one more try on
        // a fresh one, within the same time limit.
        let mut result = Err(String::new());
        for _ in 0..2 {
            let fresh = process.is_none();
            let p = match process.as_mut() {
                Some(p) => p,
                None => match spawn(&command) {
                    Ok(p) => process.insert(p),
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                },
            };
            result = match tokio::time::timeout_at(deadline, exchange(p, &ask.ids)).await {
                Ok(r) => r,
                Err(_) => Err(format!(
                    "the feature adapter did not answer within {} ms",
                    ask.timeout.as_millis()
                )),
            };
            if result.is_ok() {
                break;
            }
            // A failed, late or confused process is not reused (it is killed as it drops).
            process = None;
            if fresh || tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        if let Err(e) = &result {
            warn!(%service, error = %e, "feature adapter failed; it starts again on next use");
        }
        let _ = ask.reply.send(result);
    }
    debug!(%service, "feature adapter stopped");
}

//! A host feature adapter for the serving tests, and a reference for writing one: serves the
//! features of a CSV file (an `id` column and numeric features) by id, speaking the JSON-lines
//! protocol of `[serving.sources.NAME] command = [...]`: one request line `{"ids": [...]}` in,
//! one answer line `{"rows": [{feature: value, ...} | null, ...]}` out, until stdin closes.
//!
//! `csv_features FILE [--exit-after N]`: with `--exit-after`, it exits after N answers (to test
//! that the daemon starts it again). `csv_features FILE --http ADDR`: the same as an HTTP
//! endpoint (`POST` any path with the request as the body), printing `listening` when ready.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use serde_json::{Map, Value, json};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The features of each id in a request, by name (null for an unknown id).
struct Table {
    data: consort_protocol::data::Dataset,
    rows: HashMap<String, usize>,
}

impl Table {
    fn answer(&self, request: &[u8]) -> Result<Value, Error> {
        let request: Value = serde_json::from_slice(request)?;
        let ids = request["ids"].as_array().ok_or("no ids")?;
        let rows: Vec<Value> = ids
            .iter()
            .map(|id| match id.as_str().and_then(|id| self.rows.get(id)) {
                Some(&i) => Value::Object(
                    self.data
                        .feature_names
                        .iter()
                        .zip(&self.data.columns)
                        .map(|(name, c)| (name.clone(), json!(c[i])))
                        .collect::<Map<_, _>>(),
                ),
                None => Value::Null,
            })
            .collect();
        Ok(json!({ "rows": rows }))
    }
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let file = args
        .first()
        .ok_or("usage: csv_features FILE [--exit-after N | --http ADDR]")?;
    let (exit_after, http) = match args.get(1).map(String::as_str) {
        Some("--exit-after") => (
            Some(args.get(2).ok_or("--exit-after N")?.parse::<usize>()?),
            None,
        ),
        Some("--http") => (None, Some(args.get(2).ok_or("--http ADDR")?.clone())),
        _ => (None, None),
    };
    let opts = consort_protocol::data::CsvOptions {
        label_column: None,
        ..Default::default()
    };
    let data = consort_protocol::data::parse_csv(std::fs::File::open(file)?, &opts)?;
    let rows = data
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), i))
        .collect();
    let table = std::sync::Arc::new(Table { data, rows });
    if let Some(addr) = http {
        return serve(&addr, table);
    }
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for (n, line) in stdin.lock().lines().enumerate() {
        writeln!(out, "{}", table.answer(line?.as_bytes())?)?;
        out.flush()?;
        if exit_after.is_some_and(|k| n + 1 >= k) {
            break;
        }
    }
    Ok(())
}

/// Answers POSTs on `addr` until killed.
fn serve(addr: &str, table: std::sync::Arc<Table>) -> Result<(), Error> {
    use http_body_util::{BodyExt, Full};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        println!("listening");
        loop {
            let (tcp, _) = listener.accept().await?;
            let table = table.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let table = table.clone();
                        async move {
                            let body = req.into_body().collect().await?.to_bytes();
                            let (status, text) = match table.answer(&body) {
                                Ok(v) => (200, v.to_string()),
                                Err(e) => (400, e.to_string()),
                            };
                            Ok::<_, hyper::Error>(
                                hyper::Response::builder()
                                    .status(status)
                                    .body(Full::new(bytes::Bytes::from(text)))
                                    .unwrap_or_default(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                    .await;
            });
        }
    })
}

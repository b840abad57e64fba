//! The demo's last act: the trained model deployed online at both parties and every id of the
//! guest's file scored through the serving path (guest part + the host's partial score).

use std::path::Path;
use std::time::Instant;

use consort_protocol::call;
use consort_protocol::data::{CsvOptions, parse_csv};
use consort_protocol::serving::{InferInput, ServeRequest, ServeResponse, ServingOptions};
use serde_json::{Value, json};

use super::demo::{DemoError, ask, err, step};
use crate::client::Client;

/// The service the demo deploys.
pub(super) const SERVICE: &str = "demo";

/// Deploys `model@version` as [`SERVICE`] and scores every row of `guest_csv` online; a
/// summary for `--json`.
pub(super) async fn online(
    client: &mut Client,
    model: &str,
    version: &str,
    guest_csv: &Path,
    json: bool,
) -> Result<Value, DemoError> {
    step(
        json,
        &format!(
            "bank-a deploys {model}@{version} online as service '{SERVICE}' (both parties load their part, then switch)"
        ),
    );
    let deploy = ServeRequest::Deploy {
        service: SERVICE.into(),
        model: format!("{model}@{version}"),
        options: ServingOptions {
            threshold: Some(0.5),
            ..ServingOptions::default()
        },
    };
    ask(client, call::Serve(deploy)).await?;
    let file = std::fs::File::open(guest_csv)
        .map_err(|e| err(format!("cannot read {}: {e}", guest_csv.display())))?;
    let data = parse_csv(file, &CsvOptions::default())
        .map_err(|e| err(format!("{}: {e}", guest_csv.display())))?;
    let rows = InferInput::rows_of(&data);
    step(
        json,
        &format!(
            "scoring the {} ids of bank-a's file online: bank-a's features in each request, insurer-b's partial score by id",
            rows.len()
        ),
    );
    let t = Instant::now();
    let answer = ask(
        client,
        call::Serve(ServeRequest::Predict {
            service: SERVICE.into(),
            rows,
        }),
    )
    .await?;
    let took = t.elapsed().as_secs_f64();
    let ServeResponse::Predictions { items } = answer else {
        return Err(err(format!("unexpected answer {answer:?}")));
    };
    let scored: Vec<_> = items.iter().filter_map(|i| i.as_ref().ok()).collect();
    if scored.len() != items.len() {
        let first = items.iter().find_map(|i| i.as_ref().err());
        return Err(err(format!(
            "{} of {} ids were not scored online: {}",
            items.len() - scored.len(),
            items.len(),
            first.map(|e| e.to_string()).unwrap_or_default()
        )));
    }
    let mut micros: Vec<u64> = scored.iter().map(|o| o.total_micros).collect();
    micros.sort_unstable();
    let p50 = micros.get(micros.len() / 2).copied().unwrap_or(0);
    if !json {
        for o in scored.iter().take(3) {
            let parts: Vec<String> = o
                .timings
                .iter()
                .map(|t| format!("{} {} µs", t.party, t.micros))
                .collect();
            println!(
                "          id {:>4} → score {:.4}, label {}  ({})",
                o.id,
                o.score,
                o.label.unwrap_or(0),
                parts.join(", ")
            );
        }
        println!(
            "          {} ids in {:.0} ms, sent together (bank-a asks insurer-b for its partial \
             scores in batches)",
            scored.len(),
            took * 1e3
        );
    }
    Ok(json!({"service": SERVICE, "scored": scored.len(), "seconds": took, "p50_micros": p50}))
}

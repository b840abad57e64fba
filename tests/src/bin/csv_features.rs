//! A host feature adapter for the serving tests, and a reference for writing one: serves the
//! features of a CSV file (an `id` column and numeric features) by id, speaking the JSON-lines
//! protocol of `[serving.sources.NAME] command = [...]`: one request line `{"ids": [...]}` in,
//! one answer line `{"rows": [{feature: value, ...} | null, ...]}` out, until stdin closes.
//!
//! `csv_features FILE [--exit-after N]`: with `--exit-after`, it exits after N answers (to test
//! that the daemon starts it again).

use std::collections::HashMap;
use std::io::{BufRead, Write};

use serde_json::{Map, Value, json};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let file = args
        .first()
        .ok_or("usage: csv_features FILE [--exit-after N]")?;
    let exit_after: Option<usize> = match args.get(1).map(String::as_str) {
        Some("--exit-after") => Some(args.get(2).ok_or("--exit-after N")?.parse()?),
        _ => None,
    };
    let opts = consort_protocol::data::CsvOptions {
        label_column: None,
        ..Default::default()
    };
    let data = consort_protocol::data::parse_csv(std::fs::File::open(file)?, &opts)?;
    let rows: HashMap<&str, usize> = data
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for (n, line) in stdin.lock().lines().enumerate() {
        let request: Value = serde_json::from_str(&line?)?;
        let ids = request["ids"].as_array().ok_or("no ids")?;
        let answer: Vec<Value> = ids
            .iter()
            .map(|id| match id.as_str().and_then(|id| rows.get(id)) {
                Some(&i) => Value::Object(
                    data.feature_names
                        .iter()
                        .zip(&data.columns)
                        .map(|(name, c)| (name.clone(), json!(c[i])))
                        .collect::<Map<_, _>>(),
                ),
                None => Value::Null,
            })
            .collect();
        writeln!(out, "{}", json!({ "rows": answer }))?;
        out.flush()?;
        if exit_after.is_some_and(|k| n + 1 >= k) {
            break;
        }
    }
    Ok(())
}

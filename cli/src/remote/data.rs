//! `consort data ...` and `consort model ...`: this party's tables and model versions.

use std::path::PathBuf;

use consort_protocol::call;
use consort_protocol::models::{ModelDiffInfo, ModelLogEntry, ReflogInfo, VerifyReport};
use consort_protocol::{ModelInfo, TableInfo};

use crate::args::{DataCommand, ModelCommand};
use crate::failure::{Failure, fail};
use crate::output::print_json;
use crate::target::Target;

fn print_table_info(t: &TableInfo) {
    println!(
        "{}  {} rows  {} features{}  ({} bytes, from {})",
        t.name,
        t.rows,
        t.features.len(),
        t.label
            .as_ref()
            .map(|l| format!("  label '{l}'"))
            .unwrap_or_default(),
        t.bytes,
        t.source
    );
}

/// Runs `consort data ...`.
pub(crate) async fn run_data(target: &Target, cmd: DataCommand, json: bool) -> Result<(), Failure> {
    match cmd {
        DataCommand::Upload {
            file,
            name,
            id_column,
            label_column,
            delimiter,
            replace,
        } => {
            let delimiter = match delimiter.as_str() {
                "\\t" | "\t" => b'\t',
                d if d.len() == 1 => d.as_bytes()[0],
                d => {
                    return Err(fail(
                        "invalid_argument",
                        format!("--delimiter '{d}' is not one character"),
                    ));
                }
            };
            let path = std::fs::canonicalize(&file)
                .map_err(|e| fail("io", format!("cannot read {}: {e}", file.display())))?;
            let mut client = target.connect().await?;
            let table = client
                .call(call::DataUpload {
                    name,
                    path: path.display().to_string(),
                    id_column,
                    label_column: Some(label_column),
                    delimiter,
                    replace,
                })
                .await?;
            if json {
                print_json(&table);
            } else {
                print!("stored ");
                print_table_info(&table);
            }
        }
        DataCommand::List => {
            let mut client = target.connect().await?;
            let tables = client.call(call::DataList {}).await?;
            if json {
                print_json(&tables);
            } else if tables.is_empty() {
                println!("no tables (consort data upload FILE --name NAME)");
            } else {
                for t in &tables {
                    print_table_info(t);
                }
            }
        }
        DataCommand::Show { name, head } => {
            let mut client = target.connect().await?;
            let h = client.call(call::DataShow { name, head }).await?;
            if json {
                print_json(&h);
            } else {
                print_table_info(&h.table);
                println!("{}", h.header.join("\t"));
                for r in &h.rows {
                    println!("{}", r.join("\t"));
                }
            }
        }
        DataCommand::Delete { name } => {
            let mut client = target.connect().await?;
            let table = client.call(call::DataDelete { name }).await?;
            if json {
                print_json(&table);
            } else {
                println!("deleted table {}", table.name);
            }
        }
    }
    Ok(())
}

fn print_model(m: &ModelInfo, long: bool) {
    let metrics: Vec<String> = m
        .metrics
        .iter()
        .filter(|(k, _)| long || k.contains("/evaluation/auc") || k.ends_with("/evaluation/ks"))
        .map(|(k, v)| format!("{k}={v:.4}"))
        .collect();
    println!(
        "{}@{}  {}  parts: {}  {}",
        m.model_id,
        m.version,
        m.party,
        m.parts
            .iter()
            .map(|p| format!("{}:{}", p.task, p.role))
            .collect::<Vec<_>>()
            .join(","),
        metrics.join(" ")
    );
    if long {
        println!(
            "  job {} ({}), parties {}",
            m.version,
            m.name,
            m.parties.join(", ")
        );
        for p in &m.parts {
            println!(
                "  {} ({}) as {}: {} bytes, sha256 {}\n    params {}",
                p.task, p.component, p.role, p.bytes, p.artifact, p.params
            );
        }
    }
}

/// Runs `consort model ...`.
pub(crate) async fn run_model(
    target: &Target,
    cmd: ModelCommand,
    json: bool,
) -> Result<(), Failure> {
    let abs = |p: &PathBuf| -> Result<String, Failure> {
        let p = if p.is_absolute() {
            p.clone()
        } else {
            std::env::current_dir()
                .map_err(|e| fail("io", e.to_string()))?
                .join(p)
        };
        Ok(p.display().to_string())
    };
    // Arguments are checked before connecting.
    let (export, import) = match &cmd {
        ModelCommand::Export { output, .. } => (Some(abs(output)?), None),
        ModelCommand::Import { file } => (None, Some(abs(file)?)),
        ModelCommand::Delete { model, .. } if !model.contains('@') => {
            return Err(fail(
                "invalid_argument",
                "name the version: ID@VERSION".into(),
            ));
        }
        _ => (None, None),
    };
    let mut client = target.connect().await?;
    match cmd {
        ModelCommand::List => {
            let models = client.call(call::ModelList {}).await?;
            if json {
                print_json(&models);
            } else if models.is_empty() {
                println!("no models yet (a successful training job stores one)");
            } else {
                for m in &models {
                    print_model(m, false);
                }
            }
        }
        ModelCommand::Show { model } => {
            let request = match model.split_once('@') {
                Some((id, v)) => call::ModelShow {
                    model: id.to_owned(),
                    version: Some(v.to_owned()),
                },
                None => call::ModelShow {
                    model,
                    version: None,
                },
            };
            let model = client.call(request).await?;
            if json {
                print_json(&model);
            } else {
                print_model(&model, true);
            }
        }
        ModelCommand::Log { model, branch, all } => {
            let entries = client.call(call::ModelLog { model, branch, all }).await?;
            print_or(json, &entries, print_log);
        }
        ModelCommand::Reflog { model, reference } => {
            let entries = client.call(call::ModelReflog { model, reference }).await?;
            print_or(json, &entries, print_reflog);
        }
        ModelCommand::Diff { a, b } => {
            let diff = client.call(call::ModelDiff { a, b }).await?;
            print_or(json, &diff, print_diff);
        }
        ModelCommand::Verify { rev } => {
            let report = client.call(call::ModelVerify { rev }).await?;
            print_or(json, &report, print_verify);
            if !report.consistent {
                return Err(Failure {
                    code: "inconsistent",
                    message: "the parties do not agree on this revision".into(),
                    exit: 1,
                    reported: json,
                });
            }
        }
        ModelCommand::Tag { rev, name, message } => {
            let moved = client.call(call::ModelTag { rev, name, message }).await?;
            print_or(json, &moved, print_pretty);
        }
        ModelCommand::Branch { model, name, from } => {
            let moved = client.call(call::ModelBranch { model, name, from }).await?;
            print_or(json, &moved, print_pretty);
        }
        ModelCommand::Rollback { model, to, branch } => {
            let moved = client
                .call(call::ModelRollback { model, to, branch })
                .await?;
            print_or(json, &moved, print_pretty);
        }
        ModelCommand::Export { rev, .. } => {
            let path = export.unwrap_or_default();
            let report = client.call(call::ModelExport { rev, path }).await?;
            print_or(json, &report, print_pretty);
        }
        ModelCommand::Import { .. } => {
            let path = import.unwrap_or_default();
            let report = client.call(call::ModelImport { path }).await?;
            print_or(json, &report, print_pretty);
        }
        ModelCommand::Delete { model, force } => {
            let (model, version) = model.split_once('@').unwrap_or_default();
            let request = call::ModelDelete {
                model: model.to_owned(),
                version: version.to_owned(),
                force,
            };
            let report = client.call(request).await?;
            print_or(json, &report, print_pretty);
        }
    }
    Ok(())
}

/// `value` as JSON, or for a human.
fn print_or<T: serde::Serialize>(json: bool, value: &T, human: fn(&T)) {
    if json {
        print_json(value);
    } else {
        human(value);
    }
}

/// The JSON document, for replies without a human form of their own.
fn print_pretty<T: serde::Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// First 12 characters of a hash.
fn short(hash: &str) -> String {
    hash.chars().take(12).collect()
}

fn print_log(entries: &Vec<ModelLogEntry>) {
    for e in entries {
        let mut names: Vec<String> = e.branches.clone();
        names.extend(e.tags.iter().map(|t| format!("tag: {t}")));
        let refs = if names.is_empty() {
            String::new()
        } else {
            format!(" ({})", names.join(", "))
        };
        println!(
            "{} {}{refs}  {}",
            short(&e.id),
            e.commit.model_version,
            e.commit.message
        );
    }
}

fn print_reflog(entries: &Vec<ReflogInfo>) {
    for e in entries {
        println!(
            "{} {} → {}  by {}: {}",
            e.ref_name,
            e.old.as_deref().map_or("(new)".to_owned(), short),
            e.new.as_deref().map_or("(deleted)".to_owned(), short),
            e.who,
            e.why
        );
    }
}

fn print_verify(v: &VerifyReport) {
    for p in &v.parties {
        match &p.error {
            Some(e) => println!("{:<12} ✗ {e}", p.party),
            None => println!(
                "{:<12} {} ({})",
                p.party,
                p.version.as_deref().unwrap_or(""),
                short(p.commit.as_deref().unwrap_or(""))
            ),
        }
    }
    println!(
        "{}",
        if v.consistent {
            "consistent"
        } else {
            "NOT consistent"
        }
    );
}

fn print_diff(d: &ModelDiffInfo) {
    println!("{} → {}", short(&d.a), short(&d.b));
    let mut any = false;
    let mut line = |section: &str, key: &str, old: String, new: String| {
        any = true;
        println!("  {section:<9} {key:<40} {old} → {new}");
    };
    let none = || "—".to_owned();
    for c in &d.params {
        // A param shows as JSON, a string param as its first 12 characters.
        let val = |x: &Option<consort_protocol::json_text::JsonText>| match x
            .as_ref()
            .and_then(|t| t.value())
        {
            None | Some(serde_json::Value::Null) => none(),
            Some(serde_json::Value::String(t)) => t.chars().take(12).collect(),
            Some(other) => other.to_string(),
        };
        line("params", &c.key, val(&c.old), val(&c.new));
    }
    for c in &d.metrics {
        let val = |x: Option<f64>| x.map_or_else(none, |v| serde_json::json!(v).to_string());
        line("metrics", &c.key, val(c.old), val(c.new));
    }
    for c in &d.artifacts {
        let val = |x: &Option<String>| x.as_deref().map_or_else(none, short);
        line("artifacts", &c.key, val(&c.old), val(&c.new));
    }
    if !any {
        println!("  no differences in params, metrics or artifacts");
    }
}

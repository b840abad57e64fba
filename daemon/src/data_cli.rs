//! `consort data ...` and `consort model ...`.

use std::path::PathBuf;

use clap::Subcommand;
use consort_protocol::{ModelInfo, Request, Response, TableInfo};

use crate::cli::{Failure, Target, print_json, unexpected};

/// `consort data ...`
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Store a CSV file (with a header) as a table of this party: an id column, an optional
    /// label column, every other column a numeric feature. Errors name the line and column;
    /// nothing is stored on error.
    Upload {
        /// The CSV file.
        file: PathBuf,
        /// Table name (what jobs name in `reader`'s `table` param).
        #[arg(long)]
        name: String,
        /// The id column (the key PSI matches across parties).
        #[arg(long, default_value = "id")]
        id_column: String,
        /// The label column; a file without it (a host's) has no label.
        #[arg(long, default_value = "y")]
        label_column: String,
        /// Field delimiter (one character; `\t` for tabs).
        #[arg(long, default_value = ",")]
        delimiter: String,
        /// Replace a table of the same name.
        #[arg(long)]
        replace: bool,
    },
    /// List this party's tables.
    List,
    /// Show a table's schema and first rows.
    Show {
        /// Table name.
        name: String,
        /// Rows to show.
        #[arg(long, default_value_t = 5)]
        head: u32,
    },
    /// Delete a table.
    Delete {
        /// Table name.
        name: String,
    },
}

/// `consort model ...`
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Every model version stored at this party (one per successful training job).
    List,
    /// One version: parts, params, metrics, job. `ID` alone shows the newest version.
    Show {
        /// `MODEL_ID@VERSION` or `MODEL_ID`.
        model: String,
    },
}

fn fail(code: &'static str, message: String) -> Failure {
    Failure {
        code,
        message,
        exit: 1,
        reported: false,
    }
}

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
    let request = match cmd {
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
            Request::DataUpload {
                name,
                path: path.display().to_string(),
                id_column,
                label_column: Some(label_column),
                delimiter,
                replace,
            }
        }
        DataCommand::List => Request::DataList,
        DataCommand::Show { name, head } => Request::DataShow { name, head },
        DataCommand::Delete { name } => Request::DataDelete { name },
    };
    let deleting = matches!(request, Request::DataDelete { .. });
    let mut client = target.connect().await?;
    match client.request(request).await? {
        Response::Table { table } => {
            if json {
                print_json(&table);
            } else if deleting {
                println!("deleted table {}", table.name);
            } else {
                print!("stored ");
                print_table_info(&table);
            }
        }
        Response::Tables { tables } => {
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
        Response::TableHead {
            table,
            header,
            rows,
        } => {
            if json {
                print_json(&serde_json::json!({"table": table, "header": header, "rows": rows}));
            } else {
                print_table_info(&table);
                println!("{}", header.join("\t"));
                for r in &rows {
                    println!("{}", r.join("\t"));
                }
            }
        }
        other => return Err(unexpected(&other)),
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
    let request = match cmd {
        ModelCommand::List => Request::ModelList,
        ModelCommand::Show { model } => match model.split_once('@') {
            Some((id, v)) => Request::ModelShow {
                model: id.to_owned(),
                version: Some(v.to_owned()),
            },
            None => Request::ModelShow {
                model,
                version: None,
            },
        },
    };
    let mut client = target.connect().await?;
    match client.request(request).await? {
        Response::Models { models } => {
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
        Response::Model { model } => {
            if json {
                print_json(&model);
            } else {
                print_model(&model, true);
            }
        }
        other => return Err(unexpected(&other)),
    }
    Ok(())
}

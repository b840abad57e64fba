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
    /// One version: parts, params, metrics, job. `ID@REV` where REV is a version (job id),
    /// a tag, a branch, `BRANCH~N` or a commit hash prefix; `ID` alone is `ID@main`.
    Show {
        /// `MODEL_ID[@REV]`.
        model: String,
    },
    /// History, newest first: one line per commit with its branch and tag names.
    Log {
        /// Model id.
        model: String,
        /// This branch (default main).
        #[arg(long)]
        branch: Option<String>,
        /// Every commit of the model, on any branch.
        #[arg(long)]
        all: bool,
    },
    /// Tag a revision at every participant (agreed in two phases; nothing changes anywhere
    /// if one refuses or is unreachable).
    Tag {
        /// `ID@REV`.
        rev: String,
        /// Tag name.
        name: String,
        /// Message.
        #[arg(short, long, default_value = "")]
        message: String,
    },
    /// Create a branch at every participant (two phases).
    Branch {
        /// Model id.
        model: String,
        /// Branch name.
        name: String,
        /// Start from this revision (default: the head of main).
        #[arg(long)]
        from: Option<String>,
    },
    /// Move a branch to a revision at every participant (two phases); the move is in the
    /// reflog and another rollback undoes it.
    Rollback {
        /// Model id.
        model: String,
        /// Target revision.
        #[arg(long)]
        to: String,
        /// Branch to move.
        #[arg(long, default_value = "main")]
        branch: String,
    },
    /// Differences between two revisions: params, metrics, artifact hashes.
    Diff {
        /// `ID@REV`.
        a: String,
        /// `ID@REV`.
        b: String,
    },
    /// Write this party's part of `ID@REV` to one checksummed archive.
    Export {
        /// `ID@REV`.
        rev: String,
        /// Archive file.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Verify an archive and store it (identical commit hash and artifacts).
    Import {
        /// Archive file.
        file: PathBuf,
    },
    /// Delete a version here; refused while a branch or tag points at it unless --force.
    Delete {
        /// `ID@VERSION`.
        model: String,
        /// Delete even if refs point at it.
        #[arg(long)]
        force: bool,
    },
    /// Ask every participant which version `ID@REV` names there: consistent, or who differs.
    Verify {
        /// `ID@REV`.
        rev: String,
    },
    /// Every move of the model's branches and tags (who, when, why), newest first.
    Reflog {
        /// Model id.
        model: String,
        /// Only this ref (`main`, `heads/main`, `tags/v1`).
        #[arg(long = "ref")]
        reference: Option<String>,
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
    let kind = match &cmd {
        ModelCommand::Log { .. } => "log",
        ModelCommand::Reflog { .. } => "reflog",
        ModelCommand::Verify { .. } => "verify",
        ModelCommand::Diff { .. } => "diff",
        _ => "other",
    };
    let request = match cmd {
        ModelCommand::Log { model, branch, all } => Request::ModelLog { model, branch, all },
        ModelCommand::Tag { rev, name, message } => Request::ModelTag { rev, name, message },
        ModelCommand::Branch { model, name, from } => Request::ModelBranch { model, name, from },
        ModelCommand::Rollback { model, to, branch } => {
            Request::ModelRollback { model, to, branch }
        }
        ModelCommand::Diff { a, b } => Request::ModelDiff { a, b },
        ModelCommand::Export { rev, output } => Request::ModelExport {
            rev,
            path: abs(&output)?,
        },
        ModelCommand::Import { file } => Request::ModelImport { path: abs(&file)? },
        ModelCommand::Delete { model, force } => {
            let Some((model, version)) = model.split_once('@') else {
                return Err(fail(
                    "invalid_argument",
                    "name the version: ID@VERSION".into(),
                ));
            };
            Request::ModelDelete {
                model: model.to_owned(),
                version: version.to_owned(),
                force,
            }
        }
        ModelCommand::Verify { rev } => Request::ModelVerify { rev },
        ModelCommand::Reflog { model, reference } => Request::ModelReflog { model, reference },
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
        Response::ModelJson { value } => {
            if json {
                print_json(&value);
            } else {
                print_history(kind, &value);
            }
            if kind == "verify" && value["consistent"] != true {
                return Err(Failure {
                    code: "inconsistent",
                    message: "the parties do not agree on this revision".into(),
                    exit: 1,
                    reported: json,
                });
            }
        }
        other => return Err(unexpected(&other)),
    }
    Ok(())
}

/// Human lines for the JSON answers of the history commands.
fn print_history(kind: &str, v: &serde_json::Value) {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
    let short = |v: &serde_json::Value| s(v).chars().take(12).collect::<String>();
    match kind {
        "log" => {
            for e in v.as_array().into_iter().flatten() {
                let mut names: Vec<String> = Vec::new();
                for b in e["branches"].as_array().into_iter().flatten() {
                    names.push(s(b));
                }
                for t in e["tags"].as_array().into_iter().flatten() {
                    names.push(format!("tag: {}", s(t)));
                }
                let refs = if names.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", names.join(", "))
                };
                println!(
                    "{} {}{refs}  {}",
                    short(&e["id"]),
                    s(&e["commit"]["model_version"]),
                    s(&e["commit"]["message"])
                );
            }
        }
        "reflog" => {
            for e in v.as_array().into_iter().flatten() {
                println!(
                    "{} {} → {}  by {}: {}",
                    s(&e["ref_name"]),
                    if e["old"].is_null() {
                        "(new)".to_owned()
                    } else {
                        short(&e["old"])
                    },
                    if e["new"].is_null() {
                        "(deleted)".to_owned()
                    } else {
                        short(&e["new"])
                    },
                    s(&e["who"]),
                    s(&e["why"])
                );
            }
        }
        "verify" => {
            for p in v["parties"].as_array().into_iter().flatten() {
                match p.get("error") {
                    Some(e) => println!("{:<12} ✗ {}", s(&p["party"]), s(e)),
                    None => println!(
                        "{:<12} {} ({})",
                        s(&p["party"]),
                        s(&p["version"]),
                        short(&p["commit"])
                    ),
                }
            }
            println!(
                "{}",
                if v["consistent"] == true {
                    "consistent"
                } else {
                    "NOT consistent"
                }
            );
        }
        "diff" => {
            println!("{} → {}", short(&v["a"]), short(&v["b"]));
            let mut any = false;
            for section in ["params", "metrics", "artifacts"] {
                for c in v[section].as_array().into_iter().flatten() {
                    any = true;
                    let val = |x: &serde_json::Value| match x {
                        serde_json::Value::Null => "—".to_owned(),
                        serde_json::Value::String(t) => t.chars().take(12).collect(),
                        other => other.to_string(),
                    };
                    println!(
                        "  {section:<9} {:<40} {} → {}",
                        s(&c["key"]),
                        val(&c["old"]),
                        val(&c["new"])
                    );
                }
            }
            if !any {
                println!("  no differences in params, metrics or artifacts");
            }
        }
        _ => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
    }
}

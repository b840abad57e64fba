//! `consort serve ...`: deployments, routing, scoring and their statistics.

use std::io::Write;

use consort_protocol::call::Serve;
use consort_protocol::data::{CsvOptions, parse_csv};
use consort_protocol::serving::{
    HostFailure, InferInput, ServeRequest, ServeResponse, ServiceInfo, ServingOptions, Split,
};

use crate::failure::{Failure, fail};
use crate::output::print_json;
use crate::serve_args::{OnHostFailure, ServeCommand};
use crate::target::Target;

/// Rows per predict request.
const CHUNK: usize = 1024;

fn bad(message: String) -> Failure {
    fail("invalid_argument", message)
}

fn number(s: &str, what: &str) -> Result<f64, Failure> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| bad(format!("{what}: '{s}' is not a number")))
}

/// `VERSION=WEIGHT,...`
fn parse_split(s: &str) -> Result<Split, Failure> {
    s.split(',')
        .map(|part| {
            let (v, w) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("--split: '{part}' is not VERSION=WEIGHT")))?;
            let w: u32 = w
                .trim()
                .parse()
                .map_err(|_| bad(format!("--split: weight '{w}' is not a whole number")))?;
            Ok((v.trim().to_owned(), w))
        })
        .collect()
}

fn options(cmd: &ServeCommand) -> Result<ServingOptions, Failure> {
    let ServeCommand::Deploy {
        threshold,
        defaults,
        clip,
        calibrate,
        on_host_failure,
        deadline_ms,
        cache_ttl_ms,
        cache_entries,
        without_hosts,
        ..
    } = cmd
    else {
        return Ok(ServingOptions::default());
    };
    let mut o = ServingOptions {
        threshold: *threshold,
        on_host_failure: match on_host_failure {
            OnHostFailure::Fail => HostFailure::Fail,
            OnHostFailure::GuestOnly => HostFailure::GuestOnly,
        },
        deadline_ms: *deadline_ms,
        cache_ttl_ms: *cache_ttl_ms,
        cache_entries: *cache_entries,
        without_hosts: *without_hosts,
        ..ServingOptions::default()
    };
    if *deadline_ms == 0 || *deadline_ms > 60_000 {
        return Err(bad(format!(
            "--deadline-ms {deadline_ms} is out of range (1 ..= 60000)"
        )));
    }
    if *cache_entries == 0 || *cache_entries > 10_000_000 {
        return Err(bad(format!(
            "--cache-entries {cache_entries} is out of range"
        )));
    }
    for d in defaults {
        let (f, v) = d
            .split_once('=')
            .ok_or_else(|| bad(format!("--default '{d}' is not FEATURE=VALUE")))?;
        o.defaults.insert(f.to_owned(), number(v, "--default")?);
    }
    for c in clip {
        let (f, range) = c
            .split_once('=')
            .and_then(|(f, r)| r.split_once(':').map(|r| (f, r)))
            .ok_or_else(|| bad(format!("--clip '{c}' is not FEATURE=LOW:HIGH")))?;
        let (lo, hi) = (number(range.0, "--clip")?, number(range.1, "--clip")?);
        if lo > hi {
            return Err(bad(format!("--clip '{c}': LOW is above HIGH")));
        }
        o.clip.insert(f.to_owned(), (lo, hi));
    }
    if let Some(c) = calibrate {
        let (a, b) = c
            .split_once(',')
            .ok_or_else(|| bad(format!("--calibrate '{c}' is not A,B")))?;
        o.calibration = Some((number(a, "--calibrate")?, number(b, "--calibrate")?));
    }
    Ok(o)
}

fn print_service(s: &ServiceInfo) {
    println!(
        "service {}  (model {}, this party: {})",
        s.name, s.model_id, s.role
    );
    println!(
        "  guest {}  hosts {}",
        s.guest,
        if s.hosts.is_empty() {
            "-".into()
        } else {
            s.hosts.join(", ")
        }
    );
    for v in &s.versions {
        println!(
            "  {:>3}%  {}  commit {}",
            v.weight,
            v.version,
            &v.commit[..v.commit.len().min(12)]
        );
    }
    if let Some(p) = &s.previous {
        let p: Vec<String> = p.iter().map(|(v, w)| format!("{v}={w}")).collect();
        println!("  rollback to: {}", p.join(","));
    }
    let o = &s.options;
    let mut extras = Vec::new();
    if let Some(t) = o.threshold {
        extras.push(format!("threshold {t}"));
    }
    if let Some((a, b)) = o.calibration {
        extras.push(format!("calibration a={a} b={b}"));
    }
    if !o.defaults.is_empty() {
        extras.push(format!("{} defaults", o.defaults.len()));
    }
    if !o.clip.is_empty() {
        extras.push(format!("{} clipped", o.clip.len()));
    }
    extras.push(format!("deadline {} ms", o.deadline_ms));
    extras.push(if o.cache_ttl_ms > 0 {
        format!("cache {} ms × {}", o.cache_ttl_ms, o.cache_entries)
    } else {
        "no cache".into()
    });
    if o.without_hosts {
        extras.push("without hosts (guest's part alone)".into());
    }
    if o.on_host_failure == HostFailure::GuestOnly {
        extras.push("guest-only on host failure".into());
    }
    println!("  {}", extras.join(", "));
}

async fn ask(target: &Target, req: ServeRequest) -> Result<ServeResponse, Failure> {
    let mut client = target.connect().await?;
    client.set_timeout(std::time::Duration::from_secs(120));
    Ok(client.call(Serve(req)).await?)
}

fn unexpected(r: &ServeResponse) -> Failure {
    fail("protocol", format!("unexpected answer {r:?}"))
}

/// Runs `consort serve ...`.
pub(crate) async fn run(target: &Target, cmd: ServeCommand, json: bool) -> Result<(), Failure> {
    let req = match &cmd {
        ServeCommand::Deploy { model, service, .. } => ServeRequest::Deploy {
            service: service.clone(),
            model: model.clone(),
            options: options(&cmd)?,
        },
        ServeCommand::List => ServeRequest::List,
        ServeCommand::Show { service } => ServeRequest::Show {
            service: service.clone(),
        },
        ServeCommand::Undeploy { service } => ServeRequest::Undeploy {
            service: service.clone(),
        },
        ServeCommand::Route { service, split } => ServeRequest::Route {
            service: service.clone(),
            split: parse_split(split)?,
        },
        ServeCommand::Promote { service, version } => ServeRequest::Promote {
            service: service.clone(),
            version: version.clone(),
        },
        ServeCommand::Rollback { service } => ServeRequest::Rollback {
            service: service.clone(),
        },
        ServeCommand::Stats { service } => ServeRequest::Stats {
            service: service.clone(),
        },
        ServeCommand::Feedback {
            service,
            file,
            id_column,
            label_column,
        } => {
            let f = std::fs::File::open(file)
                .map_err(|e| fail("io", format!("cannot read {}: {e}", file.display())))?;
            let opts = CsvOptions {
                id_column: id_column.clone(),
                label_column: Some(label_column.clone()),
                delimiter: b',',
            };
            let data = parse_csv(f, &opts).map_err(|e| bad(format!("{}: {e}", file.display())))?;
            let labels = data
                .labels
                .ok_or_else(|| bad(format!("{} has no column '{label_column}'", file.display())))?;
            let mut pairs = Vec::with_capacity(labels.len());
            for (id, y) in data.ids.into_iter().zip(labels) {
                if y != 0.0 && y != 1.0 {
                    return Err(bad(format!("label of id {id} is {y}, not 0 or 1")));
                }
                pairs.push((id, y as u8));
            }
            ServeRequest::Feedback {
                service: service.clone(),
                labels: pairs,
            }
        }
        ServeCommand::Predict {
            service,
            input,
            output,
            id_column,
        } => return predict(target, service, input, output.as_deref(), id_column, json).await,
    };
    let answer = ask(target, req).await?;
    if json {
        print_json(&answer);
        return Ok(());
    }
    match (&cmd, &answer) {
        (_, ServeResponse::Service { service }) => {
            match cmd {
                ServeCommand::Deploy { .. } => println!("deployed at {}", parties(service)),
                ServeCommand::Route { .. }
                | ServeCommand::Promote { .. }
                | ServeCommand::Rollback { .. } => {
                    println!("routed at {}", parties(service))
                }
                _ => {}
            }
            print_service(service);
        }
        (_, ServeResponse::Services { services }) if services.is_empty() => {
            println!("no services (consort serve deploy MODEL@REV --service NAME)")
        }
        (_, ServeResponse::Services { services }) => {
            for s in services {
                print_service(s);
            }
        }
        (_, ServeResponse::Undeployed { parties }) => {
            println!("undeployed at {}", parties.join(", "))
        }
        (_, ServeResponse::Feedback(r)) => {
            println!(
                "{} labels joined to their scores, {} unmatched",
                r.matched, r.unmatched
            )
        }
        (_, ServeResponse::Stats(s)) => {
            println!(
                "{:<24} {:>6} {:>9} {:>7} {:>9} {:>9} {:>9} {:>8} {:>7} {:>7}",
                "version",
                "weight",
                "requests",
                "errors",
                "p50 µs",
                "p99 µs",
                "cache hit",
                "labelled",
                "AUC",
                "KS"
            );
            for v in &s.versions {
                let hit = if v.cache_hits + v.cache_misses == 0 {
                    "-".into()
                } else {
                    format!(
                        "{:.1}%",
                        100.0 * v.cache_hits as f64 / (v.cache_hits + v.cache_misses) as f64
                    )
                };
                let opt =
                    |x: Option<f64>| x.map(|x| format!("{x:.4}")).unwrap_or_else(|| "-".into());
                println!(
                    "{:<24} {:>5}% {:>9} {:>7} {:>9} {:>9} {:>9} {:>8} {:>7} {:>7}",
                    v.version,
                    v.weight,
                    v.requests,
                    v.errors,
                    v.p50_micros,
                    v.p99_micros,
                    hit,
                    v.labelled,
                    opt(v.auc),
                    opt(v.ks)
                );
            }
            if s.quota_refused > 0 {
                println!(
                    "partial-score requests refused by quota: {}",
                    s.quota_refused
                );
            }
        }
        (_, other) => return Err(unexpected(other)),
    }
    Ok(())
}

fn parties(s: &ServiceInfo) -> String {
    let mut p = vec![s.guest.clone()];
    p.extend(s.hosts.iter().cloned());
    p.join(", ")
}

async fn predict(
    target: &Target,
    service: &str,
    input: &std::path::Path,
    output: Option<&std::path::Path>,
    id_column: &str,
    json: bool,
) -> Result<(), Failure> {
    let f = std::fs::File::open(input)
        .map_err(|e| fail("io", format!("cannot read {}: {e}", input.display())))?;
    let opts = CsvOptions {
        id_column: id_column.to_owned(),
        label_column: None,
        delimiter: b',',
    };
    let data = parse_csv(f, &opts).map_err(|e| bad(format!("{}: {e}", input.display())))?;
    let rows = InferInput::rows_of(&data);
    // --json without -o: the answers as one JSON document instead of CSV.
    let as_json = json && output.is_none();
    let mut out: Box<dyn Write> = match output {
        None if as_json => Box::new(std::io::sink()),
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p)
                .map_err(|e| fail("io", format!("cannot write {}: {e}", p.display())))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let io = |e: std::io::Error| fail("io", format!("cannot write the scores: {e}"));
    writeln!(out, "id,score,label,version,guest_only,error").map_err(io)?;
    let (total, mut done, mut failed) = (rows.len(), 0usize, 0usize);
    let mut all = Vec::new();
    for chunk in rows.chunks(CHUNK) {
        let answer = ask(
            target,
            ServeRequest::Predict {
                service: service.to_owned(),
                rows: chunk.to_vec(),
            },
        )
        .await?;
        let ServeResponse::Predictions { items } = answer else {
            return Err(unexpected(&answer));
        };
        for (row, item) in chunk.iter().zip(&items) {
            match item {
                Ok(o) => writeln!(
                    out,
                    "{},{},{},{},{},",
                    o.id,
                    o.score,
                    o.label.map(|l| l.to_string()).unwrap_or_default(),
                    o.version,
                    o.guest_only
                ),
                Err(e) => {
                    failed += 1;
                    writeln!(
                        out,
                        "{},,,,,\"{}\"",
                        row.id,
                        e.to_string().replace('"', "'")
                    )
                }
            }
            .map_err(io)?;
        }
        done += chunk.len();
        if output.is_some() && !json {
            eprint!("\rscored {done}/{total}");
        }
        if as_json {
            all.extend(items);
        }
    }
    out.flush().map_err(io)?;
    if output.is_some() && !json {
        eprintln!();
    }
    if as_json {
        print_json(&all);
    } else if json {
        print_json(&serde_json::json!({"rows": total, "failed": failed}));
    }
    if failed > 0 {
        return Err(fail(
            "partial",
            format!("{failed} of {total} rows were not scored (see the error column)"),
        ));
    }
    Ok(())
}

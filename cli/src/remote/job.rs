//! `consort job`, `metric` and `task`: federated jobs, their metrics, and script operators.

use std::time::{Duration, Instant};

use consort_protocol::JobInfo;
use consort_protocol::call;

use crate::args::{JobCommand, MetricCommand, TaskCommand};
use crate::client::Client;
use crate::failure::Failure;
use crate::local::validate::{self, load_plan, print_errors, problems};
use crate::output::print_json;
use crate::target::Target;

fn fail(code: &'static str, message: String, exit: u8) -> Failure {
    Failure {
        code,
        message,
        exit,
        reported: false,
    }
}

async fn show(client: &mut Client, id: &str) -> Result<JobInfo, Failure> {
    let job = id.to_owned();
    Ok(client.call(call::JobShow { job }).await?)
}

fn is_final(status: &str) -> bool {
    matches!(status, "success" | "failed" | "canceled" | "rejected")
}

/// Exit code of a finished job: 0 on success, 1 otherwise.
fn outcome(info: &JobInfo, json_out: bool) -> Result<(), Failure> {
    if json_out {
        print_json(info);
    } else {
        print_job(info);
    }
    if info.status == "success" {
        Ok(())
    } else {
        let why = info.reason.clone().unwrap_or_default();
        Err(Failure {
            code: "job_failed",
            message: format!("job {} {}: {why}", info.job_id, info.status),
            exit: 1,
            reported: json_out,
        })
    }
}

/// Follows the job until it ends (or `timeout`), printing task changes when `progress`. The
/// daemon answers each watch when the job changed, so this does not poll.
async fn wait(
    client: &mut Client,
    id: &str,
    timeout: Option<u64>,
    json_out: bool,
    progress: bool,
) -> Result<(), Failure> {
    let deadline = timeout.map(|s| Instant::now() + Duration::from_secs(s));
    let mut seen: std::collections::BTreeMap<String, String> = Default::default();
    let mut revision = 0;
    loop {
        let left = deadline.map_or(WATCH_MS, |d| {
            (d.saturating_duration_since(Instant::now()).as_millis() as u64).min(WATCH_MS)
        });
        let info = client
            .call(call::JobWatch {
                job: id.to_owned(),
                revision,
                timeout_ms: left,
                // Without progress to print, only the end matters.
                until_end: !progress || json_out,
            })
            .await?;
        revision = info.revision;
        if progress && !json_out {
            for t in &info.tasks {
                if seen.get(&t.name) != Some(&t.status) {
                    println!("  {:<20} {}", t.name, t.status);
                    seen.insert(t.name.clone(), t.status.clone());
                }
            }
        }
        if is_final(&info.status) {
            return outcome(&info, json_out);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(fail(
                "timeout",
                format!(
                    "job {id} is still {} after {}s",
                    info.status,
                    timeout.unwrap_or(0)
                ),
                2,
            ));
        }
    }
}

/// Longest single watch: the daemon answers at least this often, so a dead daemon is noticed.
const WATCH_MS: u64 = 30_000;

fn print_job(info: &JobInfo) {
    println!(
        "job {}  {}  status: {}  initiator: {}",
        info.job_id, info.name, info.status, info.initiator
    );
    if let Some(r) = &info.reason {
        println!("reason: {r}");
    }
    let parties: Vec<String> = {
        let mut all: Vec<String> = info.parties.values().flatten().cloned().collect();
        all.sort();
        all.dedup();
        all
    };
    if info.tasks.is_empty() {
        return;
    }
    print!("{:<20} {:<12} {:<9}", "task", "component", "status");
    for p in &parties {
        print!(" {p:<22}");
    }
    println!();
    for t in &info.tasks {
        print!("{:<20} {:<12} {:<9}", t.name, t.component, t.status);
        for p in &parties {
            let cell = match t.parties.get(p) {
                None => "-".to_owned(),
                Some(r) => {
                    let elapsed = r.elapsed_s.map(|e| format!(" {e:.2}s")).unwrap_or_default();
                    format!("{}#{}{elapsed}", r.state, r.attempt)
                }
            };
            print!(" {cell:<22}");
        }
        println!();
        for (p, r) in &t.parties {
            if let Some(e) = &r.error {
                println!("    {p}: {e}");
            }
        }
    }
}

/// `consort job ...`
pub(crate) async fn run(target: &Target, cmd: JobCommand, json_out: bool) -> Result<(), Failure> {
    match cmd {
        JobCommand::Validate { file } => validate::run(&file, json_out),
        JobCommand::Submit {
            file,
            wait: wait_end,
            timeout,
        } => {
            // Validate here first: a bad file gets every problem, and nothing is created.
            if let Err(errors) = load_plan(&file) {
                print_errors(&errors, json_out);
                return Err(Failure {
                    code: "invalid_job",
                    message: format!(
                        "{} is not a valid job ({}); nothing was submitted",
                        file.display(),
                        problems(errors.len())
                    ),
                    exit: 1,
                    reported: json_out,
                });
            }
            let spec = std::fs::read_to_string(&file).map_err(|e| {
                fail(
                    "invalid_job",
                    format!("cannot read {}: {e}", file.display()),
                    1,
                )
            })?;
            let mut client = target.connect().await?;
            let job_id = client.call(call::JobSubmit { spec }).await?;
            if !wait_end {
                if json_out {
                    println!("{}", serde_json::json!({ "job_id": job_id }));
                } else {
                    println!("{job_id}");
                }
                return Ok(());
            }
            if !json_out {
                println!("submitted {job_id}");
            }
            wait(&mut client, &job_id, timeout, json_out, true).await
        }
        JobCommand::Show { id } => {
            let mut client = target.connect().await?;
            let info = show(&mut client, &id).await?;
            if json_out {
                print_json(&info);
            } else {
                print_job(&info);
            }
            Ok(())
        }
        JobCommand::Dag { id, output } => {
            let mut client = target.connect().await?;
            let info = show(&mut client, &id).await?;
            super::plot::dag(&info, &output, json_out)
        }
        JobCommand::List { status } => {
            let mut client = target.connect().await?;
            let mut jobs = client.call(call::JobList {}).await?;
            if let Some(s) = &status {
                jobs.retain(|j| &j.status == s);
            }
            if json_out {
                print_json(&jobs);
            } else {
                for j in &jobs {
                    println!(
                        "{}  {:<9} {:<24} initiator {}",
                        j.job_id, j.status, j.name, j.initiator
                    );
                }
            }
            Ok(())
        }
        JobCommand::Wait { id, timeout } => {
            let mut client = target.connect().await?;
            wait(&mut client, &id, timeout, json_out, false).await
        }
        JobCommand::Stop { id } => simple(target, call::JobStop { job: id }, json_out).await,
        JobCommand::Output {
            id,
            task,
            name,
            output,
        } => {
            let mut client = target.connect().await?;
            let request = call::JobOutput {
                job: id,
                task,
                name,
            };
            let data = client.call(request).await?.data;
            let text = match consort_protocol::data::Dataset::from_bytes(&data) {
                Ok(d) => d.to_csv().into_bytes(),
                Err(_) => data,
            };
            match output {
                Some(path) => std::fs::write(&path, &text)
                    .map_err(|e| fail("io", format!("cannot write {}: {e}", path.display()), 1))?,
                None => {
                    use std::io::Write;
                    let _ = std::io::stdout().write_all(&text);
                }
            }
            Ok(())
        }
        JobCommand::Rerun { id, from } => {
            simple(target, call::JobRerun { job: id, from }, json_out).await
        }
        JobCommand::Approve { id } => simple(target, call::JobApprove { job: id }, json_out).await,
        JobCommand::Reject { id, reason } => {
            simple(target, call::JobReject { job: id, reason }, json_out).await
        }
        JobCommand::Log {
            id,
            task,
            party,
            follow,
        } => {
            let mut client = target.connect().await?;
            let mut printed = 0usize;
            let mut finishing = false;
            loop {
                let request = call::JobLog {
                    job: id.clone(),
                    party: party.clone(),
                };
                let mut lines = client.call(request).await?;
                if let Some(t) = &task {
                    lines.retain(|l| &l.task == t);
                }
                if json_out && !follow {
                    print_json(&lines);
                    return Ok(());
                }
                for l in lines.iter().skip(printed) {
                    if json_out {
                        println!("{}", serde_json::to_string(l).unwrap_or_default());
                    } else {
                        println!(
                            "{} {}#{} {}: {}",
                            l.at_ms, l.task, l.attempt, l.role, l.line
                        );
                    }
                }
                printed = printed.max(lines.len());
                if !follow || finishing {
                    return Ok(());
                }
                // One more round after the job ends, for its last lines.
                finishing = show(&mut client, &id)
                    .await
                    .is_ok_and(|j| is_final(&j.status));
                if !finishing {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }
}

/// A job command answered by what was done.
async fn simple<C: call::Call<Reply = String>>(
    target: &Target,
    request: C,
    json_out: bool,
) -> Result<(), Failure> {
    let mut client = target.connect().await?;
    let message = client.call(request).await?;
    if json_out {
        println!("{}", serde_json::json!({"ok": true, "message": message}));
    } else {
        println!("{message}");
    }
    Ok(())
}

/// `consort metric ...`
pub(crate) async fn run_metric(
    target: &Target,
    cmd: MetricCommand,
    json_out: bool,
) -> Result<(), Failure> {
    let id = match &cmd {
        MetricCommand::List { id, .. }
        | MetricCommand::Get { id, .. }
        | MetricCommand::Plot { id, .. } => id.clone(),
    };
    let mut client = target.connect().await?;
    let metrics = client.call(call::MetricList { job: id.clone() }).await?;
    match cmd {
        MetricCommand::List { task, .. } => {
            let rows: Vec<_> = metrics
                .iter()
                .filter(|m| task.as_ref().is_none_or(|t| &m.task == t))
                .collect();
            if json_out {
                let out: Vec<_> = rows
                    .iter()
                    .map(|m| serde_json::json!({"task": m.task, "role": m.role, "namespace": m.namespace, "name": m.name, "points": m.points.len()}))
                    .collect();
                print_json(&out);
            } else {
                for m in rows {
                    println!(
                        "{} {} {} {} ({} points)",
                        m.task,
                        m.role,
                        m.namespace,
                        m.name,
                        m.points.len()
                    );
                }
            }
            Ok(())
        }
        MetricCommand::Get {
            task,
            namespace,
            name,
            ..
        } => {
            let found: Vec<_> = metrics
                .into_iter()
                .filter(|m| m.task == task && m.namespace == namespace && m.name == name)
                .collect();
            if found.is_empty() {
                return Err(fail(
                    "not_found",
                    format!("no metric {namespace}/{name} for task {task} of job {id} here"),
                    1,
                ));
            }
            if json_out {
                let out: Vec<_> = found
                    .iter()
                    .map(|m| serde_json::json!({"task": m.task, "role": m.role, "namespace": m.namespace, "name": m.name, "points": m.points, "meta": m.meta}))
                    .collect();
                print_json(&out);
            } else {
                for m in &found {
                    for (x, y) in &m.points {
                        println!("{} {x} {y}", m.role);
                    }
                }
            }
            Ok(())
        }
        MetricCommand::Plot {
            task,
            name,
            output,
            width,
            height,
            ..
        } => super::plot::metric(
            &metrics,
            &id,
            &task,
            &name,
            &output,
            (width, height),
            json_out,
        ),
    }
}

/// `consort task ...`, called by script operators.
pub(crate) async fn run_task(target: &Target, cmd: TaskCommand) -> Result<(), Failure> {
    let mut client = target.connect().await?;
    match cmd {
        TaskCommand::Remote {
            to,
            tag,
            file,
            token,
        } => {
            // The daemon streams the file itself (large payloads never pass through here).
            let path = std::fs::canonicalize(&file)
                .map_err(|e| fail("io", format!("cannot read {}: {e}", file.display()), 1))?;
            if !path.is_file() {
                return Err(fail("io", format!("{} is not a file", file.display()), 1));
            }
            client.set_timeout(Duration::from_secs(7 * 24 * 3600));
            client
                .call(call::TaskRemote {
                    token,
                    to,
                    tag,
                    data: Vec::new(),
                    path: Some(path.display().to_string()),
                })
                .await?;
        }
        TaskCommand::Get {
            from,
            tag,
            output,
            token,
        } => {
            // Waiting for a partner can take as long as the task may run.
            client.set_timeout(Duration::from_secs(7 * 24 * 3600));
            // With --output the daemon writes the file(s) itself, streaming.
            let into = match &output {
                None => None,
                Some(path) => Some(absolute_output(path)?),
            };
            let parts = client
                .call(call::TaskGet {
                    token,
                    from,
                    tag,
                    into,
                })
                .await?;
            if output.is_none() {
                use std::io::Write;
                for part in &parts {
                    let _ = std::io::stdout().write_all(&part.data);
                }
            }
        }
        TaskCommand::Metric {
            namespace,
            name,
            x,
            y,
            token,
        } => {
            client
                .call(call::TaskMetric {
                    token,
                    namespace,
                    name,
                    x,
                    y,
                })
                .await?;
        }
        TaskCommand::Log { text, token } => {
            client.call(call::TaskLog { token, text }).await?;
        }
        TaskCommand::MetricMeta {
            namespace,
            name,
            meta,
            token,
        } => {
            client
                .call(call::TaskMetricMeta {
                    token,
                    namespace,
                    name,
                    meta,
                })
                .await?;
        }
    }
    Ok(())
}

/// `--output` as an absolute path (the daemon writes it; its working directory is not ours).
fn absolute_output(path: &std::path::Path) -> Result<String, Failure> {
    let abs = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .map_err(|e| fail("io", format!("cannot resolve {}: {e}", path.display()), 1))?
            .join(path)
    };
    Ok(abs.display().to_string())
}

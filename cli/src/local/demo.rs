//! `consort demo`: the first thing a newcomer runs.
//!
//! It starts real daemons as child processes in a temporary directory and talks to them over
//! their sockets, exactly as an operator would: two or three organizations become partners,
//! upload their halves of a vertically split data set, and train a logistic regression together
//! (reader → ECDH-PSI → Paillier hetero LR → evaluation), then stop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use consort_protocol::JobInfo;
use consort_protocol::call::{self, Call};
use serde_json::json;

use crate::args::DemoArgs;
use crate::client::Client;
use consort_protocol::layout as paths;

/// A failed demo step.
#[derive(Debug, thiserror::Error)]
#[error("demo: {0}")]
pub struct DemoError(pub(super) String);

pub(super) fn err(msg: impl Into<String>) -> DemoError {
    DemoError(msg.into())
}

/// Finds `consortd`: next to this executable first, then on PATH.
fn consortd_path() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("consortd")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("consortd"))
}

struct Running {
    child: Option<Child>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub(super) fn step(json: bool, text: &str) {
    if !json {
        println!("▸ {text}");
    }
}

const BREAST_GUEST: &str = include_str!("../../../examples/data/breast_hetero_guest.csv");
const BREAST_HOST: &str = include_str!("../../../examples/data/breast_hetero_host.csv");

/// One demo party: its daemon and a client on its socket.
struct Party {
    name: &'static str,
    dir: PathBuf,
    log: PathBuf,
    running: Running,
    client: Client,
    peer_id: String,
    listen: Vec<String>,
}

pub(super) async fn ask<C: Call>(client: &mut Client, request: C) -> Result<C::Reply, DemoError> {
    client.call(request).await.map_err(|e| err(e.to_string()))
}

/// `consortd init` + `consortd run` of one party; every table may be used with every partner.
async fn start_party(
    consortd: &Path,
    base: &Path,
    name: &'static str,
    extra_config: &str,
) -> Result<Party, DemoError> {
    let dir = base.join(name);
    let out = Command::new(consortd)
        .args([
            "init",
            "--party",
            name,
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--dir",
        ])
        .arg(&dir)
        .output()
        .map_err(|e| {
            err(format!(
                "cannot run {}: {e} (build it with `cargo build --release`)",
                consortd.display()
            ))
        })?;
    if !out.status.success() {
        return Err(err(format!(
            "consortd init failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let config = dir.join(paths::CONFIG_FILE);
    let text = std::fs::read_to_string(&config)
        .map_err(|e| err(format!("cannot read {}: {e}", config.display())))?;
    let text =
        text.replacen("[policy.tables]\n", "[policy.tables]\n\"*\" = [\"*\"]\n", 1) + extra_config;
    std::fs::write(&config, text)
        .map_err(|e| err(format!("cannot write {}: {e}", config.display())))?;
    let log = base.join(format!("{name}.log"));
    let log_file = std::fs::File::create(&log)
        .map_err(|e| err(format!("cannot create {}: {e}", log.display())))?;
    let child = Command::new(consortd)
        .arg("run")
        .arg("--dir")
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| err(format!("cannot start consortd: {e}")))?;
    let mut running = Running { child: Some(child) };
    let socket = dir.join(paths::SOCKET_FILE);
    let mut client = connect_with_deadline(&socket, &mut running, &log).await?;
    let status = ask(&mut client, call::Status {}).await?;
    Ok(Party {
        name,
        dir,
        log,
        running,
        client,
        peer_id: status.peer_id,
        listen: status.listen,
    })
}

fn data_files(args: &DemoArgs, base: &Path) -> Result<(PathBuf, PathBuf), DemoError> {
    if args.data == "breast" && args.data_dir.is_none() {
        let (g, h) = (base.join("breast_guest.csv"), base.join("breast_host.csv"));
        std::fs::write(&g, BREAST_GUEST).map_err(|e| err(e.to_string()))?;
        std::fs::write(&h, BREAST_HOST).map_err(|e| err(e.to_string()))?;
        return Ok((g, h));
    }
    let dir = args.data_dir.clone().ok_or_else(|| {
        err(format!(
            "--data {} needs --data-dir DIR holding {0}_hetero_guest.csv and {0}_hetero_host.csv",
            args.data
        ))
    })?;
    let g = dir.join(format!("{}_hetero_guest.csv", args.data));
    let h = dir.join(format!("{}_hetero_host.csv", args.data));
    for f in [&g, &h] {
        if !f.is_file() {
            return Err(err(format!("{} not found", f.display())));
        }
    }
    Ok((g, h))
}

fn job_spec(args: &DemoArgs, arbiter: &str) -> String {
    // FATE's example settings for hetero LR on breast; mini-batches of 1000 on default_credit.
    let batch = if args.data == "breast" { 300 } else { 1000 };
    let (lr, iters) = if args.data == "breast" {
        (0.1, 10)
    } else {
        (0.15, 5)
    };
    format!(
        "name: {data}-hetero-lr
parties: {{guest: [bank-a], host: [insurer-b], arbiter: [{arbiter}]}}
tasks:
  reader:
    component: reader
    role_params: {{guest: {{table: {data}_guest}}, host: {{table: {data}_host}}}}
  psi:
    component: psi
    inputs: {{data: reader.data}}
  lr:
    component: hetero_lr
    inputs: {{train_data: psi.data}}
    params: {{max_iter: {iters}, batch_size: {batch}, learning_rate: {lr}, alpha: 0.001, key_bits: {bits}}}
  eval:
    component: evaluation
    roles: [guest]
    inputs: {{data: lr.train_output}}
",
        data = args.data,
        bits = args.key_bits,
    )
}

/// Runs the demo; prints progress (or one JSON document with `json`).
pub async fn run(args: &DemoArgs, json: bool) -> Result<(), DemoError> {
    let started = Instant::now();
    let base = std::env::temp_dir().join(format!("consort-demo-{}", std::process::id()));
    std::fs::create_dir_all(&base)
        .map_err(|e| err(format!("cannot create {}: {e}", base.display())))?;
    let consortd = consortd_path();
    let names: &[&'static str] = if args.parties == 3 {
        &["bank-a", "insurer-b", "clinic-c"]
    } else {
        &["bank-a", "insurer-b"]
    };
    let (guest_csv, host_csv) = data_files(args, &base).inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&base);
    })?;

    step(
        json,
        &format!("starting {} daemons in {}", names.len(), base.display()),
    );
    let mut parties = Vec::new();
    for name in names {
        // insurer-b serves its features for the online step from the table it uploads.
        let extra = if *name == "insurer-b" {
            format!(
                "\n[serving.sources.{}]\ntable = \"{}_host\"\n",
                super::demo_online::SERVICE,
                args.data
            )
        } else {
            String::new()
        };
        parties.push(start_party(&consortd, &base, name, &extra).await?);
    }
    step(
        json,
        "making them partners (each lists the others' PeerId and address)",
    );
    let roster: Vec<(String, String, Vec<String>)> = parties
        .iter()
        .map(|p| (p.name.to_owned(), p.peer_id.clone(), p.listen.clone()))
        .collect();
    for p in parties.iter_mut() {
        for (name, peer_id, addrs) in &roster {
            if name != p.name {
                let add = call::PartnerAdd {
                    party: name.clone(),
                    peer_id: peer_id.clone(),
                    addrs: addrs.clone(),
                };
                ask(&mut p.client, add).await?;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for p in parties.iter_mut() {
        loop {
            let peers = ask(&mut p.client, call::Peers {}).await?;
            if peers.iter().filter(|x| x.connected).count() == names.len() - 1 {
                break;
            }
            if Instant::now() > deadline {
                return Err(err(format!(
                    "{} did not connect to its partners in 30 s; see {}",
                    p.name,
                    p.log.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    for (i, (csv, role)) in [(&guest_csv, "guest"), (&host_csv, "host")]
        .into_iter()
        .enumerate()
    {
        let table = format!("{}_{role}", args.data);
        let upload = call::DataUpload {
            name: table.clone(),
            path: csv.display().to_string(),
            id_column: "id".into(),
            label_column: Some("y".into()),
            delimiter: b',',
            replace: true,
        };
        let t = ask(&mut parties[i].client, upload).await?;
        step(
            json,
            &format!(
                "{} uploaded table {table}: {} rows, {} features{}",
                parties[i].name,
                t.rows,
                t.features.len(),
                if t.label.is_some() {
                    " and the label"
                } else {
                    ""
                }
            ),
        );
    }

    let arbiter = if args.parties == 3 {
        "clinic-c"
    } else {
        "bank-a"
    };
    let spec = job_spec(args, arbiter);
    step(
        json,
        &format!(
            "bank-a submits reader → psi → hetero_lr ({}-bit Paillier) → evaluation; guest bank-a, host insurer-b, arbiter {arbiter}",
            args.key_bits
        ),
    );
    let submitted = Instant::now();
    let job = ask(&mut parties[0].client, call::JobSubmit { spec }).await?;
    let info = follow(&mut parties[0].client, &job, json).await?;
    let job_s = submitted.elapsed().as_secs_f64();
    if info.status != "success" {
        return Err(err(format!(
            "job {job} ended {}: {}; logs: consort --dir {} job log {job}",
            info.status,
            info.tasks
                .iter()
                .flat_map(|t| t.parties.iter().filter_map(|(p, r)| r
                    .error
                    .as_ref()
                    .map(|e| format!("{} at {p}: {e}", t.name))))
                .collect::<Vec<_>>()
                .join("; "),
            parties[0].dir.display()
        )));
    }
    let metrics = ask(
        &mut parties[0].client,
        call::MetricList { job: job.clone() },
    )
    .await?;
    let scalar = |ns: &str, name: &str| {
        metrics
            .iter()
            .find(|m| m.namespace == ns && m.name == name)
            .and_then(|m| m.points.last().map(|p| p.1))
    };
    let (auc, ks, rows) = (
        scalar("evaluation", "auc"),
        scalar("evaluation", "ks"),
        scalar("psi", "intersection_size"),
    );
    // The model version is stored right after success; give it a moment.
    let mut model = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while model.is_none() && Instant::now() < deadline {
        let models = ask(&mut parties[0].client, call::ModelList {}).await?;
        model = models.into_iter().find(|m| m.version == job);
        if model.is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let model_id = model
        .as_ref()
        .map(|m| m.model_id.clone())
        .unwrap_or_default();

    if !json {
        println!();
        println!(
            "  AUC {:.4}   KS {:.4}   on {} intersected samples",
            auc.unwrap_or(f64::NAN),
            ks.unwrap_or(f64::NAN),
            rows.unwrap_or(0.0)
        );
        println!(
            "  job {job}: submit → success in {job_s:.2} s ({:.2} s in all)",
            started.elapsed().as_secs_f64()
        );
        println!("  model {model_id}@{job} (each party holds only its own weights)");
    }
    let online =
        super::demo_online::online(&mut parties[0].client, &model_id, &job, &guest_csv, json)
            .await?;

    let dirs: Vec<String> = parties
        .iter()
        .map(|p| p.dir.display().to_string())
        .collect();
    if args.keep {
        for p in parties.iter_mut() {
            if let Some(child) = p.running.child.take() {
                // Detach: the daemons outlive this command.
                std::mem::forget(child);
            }
        }
        if json {
            println!(
                "{}",
                json!({"job_id": job, "status": info.status, "auc": auc, "ks": ks, "intersection": rows, "job_s": job_s, "model_id": model_id, "model_version": job, "online": online, "kept": true, "dirs": dirs})
            );
        } else {
            println!("\nThe daemons keep running. Talk to each with:");
            for p in &parties {
                println!(
                    "  consort --dir {} job show {job}      # {}, log: {}",
                    p.dir.display(),
                    p.name,
                    p.log.display()
                );
            }
            println!("Stop them with `consort --dir DIR shutdown`.");
        }
        return Ok(());
    }
    step(json, "shutting the daemons down");
    for p in parties.iter_mut() {
        ask(&mut p.client, call::Shutdown {}).await?;
    }
    let mut pids = Vec::new();
    for p in parties.iter_mut() {
        pids.push(p.running.child.as_ref().map(|c| c.id()).unwrap_or(0));
        let code = wait_child(&mut p.running, Duration::from_secs(30)).await?;
        if code != Some(0) {
            return Err(err(format!(
                "{} exited with {code:?}; see {}",
                p.name,
                p.log.display()
            )));
        }
    }
    let _ = std::fs::remove_dir_all(&base);
    let elapsed_s = started.elapsed().as_secs_f64();
    if json {
        println!(
            "{}",
            json!({"job_id": job, "status": info.status, "auc": auc, "ks": ks, "intersection": rows, "job_s": job_s, "elapsed_s": elapsed_s, "model_id": model_id, "model_version": job, "online": online, "kept": false, "pids": pids, "dirs": dirs})
        );
    } else {
        println!("done in {elapsed_s:.2} s.");
    }
    Ok(())
}

/// Polls the job until it ends, printing each task as it starts and ends at every party.
async fn follow(client: &mut Client, job: &str, json: bool) -> Result<JobInfo, DemoError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut epochs_shown = 0;
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let info = ask(
            client,
            call::JobShow {
                job: job.to_owned(),
            },
        )
        .await?;
        // The training loss, epoch by epoch, as the guest logs it (read after the task states,
        // printed before them, so an epoch never shows after its task ended).
        let metrics = if json {
            Vec::new()
        } else {
            let job = job.to_owned();
            ask(client, call::MetricList { job }).await?
        };
        if let Some(loss) = metrics
            .iter()
            .find(|m| m.namespace == "train" && m.name == "loss" && m.role == "guest")
        {
            for (x, y) in loss.points.iter().skip(epochs_shown) {
                println!("          epoch {:>3}  loss {y:.4}", *x as u64 + 1);
            }
            epochs_shown = epochs_shown.max(loss.points.len());
        }
        for t in &info.tasks {
            for (party, run) in &t.parties {
                if (run.state == "running" || run.state == "success" || run.state == "failed")
                    && seen.insert((t.name.clone(), party.clone(), run.state.clone()))
                    && !json
                {
                    let took = match (run.state.as_str(), run.elapsed_s) {
                        ("running", _) | (_, None) => String::new(),
                        (_, Some(s)) => format!(" in {s:.2} s"),
                    };
                    println!(
                        "    {:<5} {:<8} at {party}: {}{took}",
                        t.name, t.component, run.state
                    );
                }
            }
        }
        if matches!(
            info.status.as_str(),
            "success" | "failed" | "canceled" | "rejected"
        ) {
            return Ok(info);
        }
        if Instant::now() > deadline {
            return Err(err(format!("job {job} did not finish within an hour")));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn connect_with_deadline(
    socket: &Path,
    running: &mut Running,
    log: &Path,
) -> Result<Client, DemoError> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(child) = running.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            return Err(err(format!(
                "consortd exited early ({status}); see {}",
                log.display()
            )));
        }
        match Client::connect(socket).await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() >= deadline => {
                return Err(err(format!("consortd did not answer within 20 s: {e}")));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn wait_child(running: &mut Running, timeout: Duration) -> Result<Option<i32>, DemoError> {
    let deadline = Instant::now() + timeout;
    let child = running.child.as_mut().ok_or_else(|| err("no daemon"))?;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| err(e.to_string()))? {
            running.child = None;
            return Ok(status.code());
        }
        if Instant::now() >= deadline {
            return Err(err("consortd did not exit within 30 s"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

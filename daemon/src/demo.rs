//! `consort demo`: the first thing a newcomer runs.
//!
//! It starts real daemons as child processes in a temporary directory and talks to them over
//! their sockets, exactly as an operator would. Today it shows one party's life cycle (init,
//! run, status, shutdown); the federated-learning issue grows it into a multi-party job.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use consort_protocol::{Request, Response};
use serde_json::json;

use crate::client::Client;
use crate::paths;

/// Options of `consort demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Leave the daemon running and print how to talk to it.
    #[arg(long)]
    pub keep: bool,
}

/// A failed demo step.
#[derive(Debug, thiserror::Error)]
#[error("demo: {0}")]
pub struct DemoError(String);

fn err(msg: impl Into<String>) -> DemoError {
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

fn step(json: bool, text: &str) {
    if !json {
        println!("▸ {text}");
    }
}

/// Runs the demo; prints progress (or one JSON document with `json`).
pub async fn run(args: &DemoArgs, json: bool) -> Result<(), DemoError> {
    let started = Instant::now();
    let base = std::env::temp_dir().join(format!("consort-demo-{}", std::process::id()));
    let dir = base.join("demo-a");
    let consortd = consortd_path();

    step(
        json,
        &format!("initialising party demo-a in {}", dir.display()),
    );
    let out = Command::new(&consortd)
        .args([
            "init",
            "--party",
            "demo-a",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--json",
            "--dir",
        ])
        .arg(&dir)
        .output()
        .map_err(|e| {
            err(format!(
                "cannot run {}: {e} (build it with `cargo build -p consort-daemon`)",
                consortd.display()
            ))
        })?;
    if !out.status.success() {
        return Err(err(format!(
            "consortd init failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }

    step(json, "starting consortd");
    let log_path = base.join("demo-a.log");
    let log = std::fs::File::create(&log_path)
        .map_err(|e| err(format!("cannot create {}: {e}", log_path.display())))?;
    let child = Command::new(&consortd)
        .arg("run")
        .arg("--dir")
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| err(format!("cannot start consortd: {e}")))?;
    let mut running = Running { child: Some(child) };
    let socket = dir.join(paths::SOCKET_FILE);
    let mut client = connect_with_deadline(&socket, &mut running, &log_path).await?;
    let ready_ms = started.elapsed().as_millis();

    let status = match client
        .request(Request::Status)
        .await
        .map_err(|e| err(e.to_string()))?
    {
        Response::Status(s) => s,
        other => return Err(err(format!("unexpected answer {other:?}"))),
    };
    step(
        json,
        &format!(
            "party {} is up as {} (ready after {ready_ms} ms)",
            status.party, status.peer_id
        ),
    );

    if args.keep {
        if let Some(child) = running.child.take() {
            // Detach: the daemon outlives this command.
            std::mem::forget(child);
        }
        if json {
            println!(
                "{}",
                json!({"status": status, "kept": true, "dir": dir, "log": log_path})
            );
        } else {
            println!("\nThe daemon keeps running. Talk to it with:");
            println!("  consort --dir {} status", dir.display());
            println!("  consort --dir {} shutdown", dir.display());
            println!("Its log: {}", log_path.display());
        }
        return Ok(());
    }

    step(json, "shutting down");
    let _ = client
        .request(Request::Shutdown)
        .await
        .map_err(|e| err(e.to_string()))?;
    let code = wait_child(&mut running, Duration::from_secs(30)).await?;
    if code != Some(0) {
        return Err(err(format!(
            "consortd exited with {code:?}; see {}",
            log_path.display()
        )));
    }
    let _ = std::fs::remove_dir_all(&base);
    let elapsed_s = started.elapsed().as_secs_f64();
    if json {
        println!(
            "{}",
            json!({"status": status, "kept": false, "elapsed_s": elapsed_s})
        );
    } else {
        println!("done in {elapsed_s:.2} s: init, run, status and a clean shutdown of one party.");
    }
    Ok(())
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

//! Script operators: locally registered commands that take part in a task like a built-in
//! component, through `consort task remote/get/metric/log` over the control socket.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use consort_components::{TaskContext, TaskError};

use super::context::{ChannelCtx, output_path};

/// A registered operator (`[operators.NAME]` of consort.toml).
#[derive(Debug, Clone)]
pub struct OperatorSpec {
    /// Program and arguments.
    pub command: Vec<String>,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
    /// Kill after this long.
    pub timeout: Option<Duration>,
}

/// Running script tasks by token: how `consort task ...` calls find their task.
pub type TaskTokens = Arc<Mutex<HashMap<String, Arc<dyn TaskContext>>>>;

fn random_token() -> String {
    let mut bytes = [0u8; 16];
    let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if filled.is_err() {
        // Fall back to hashing the time and the address of a stack value.
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(Instant::now().elapsed().as_nanos());
        bytes[..8].copy_from_slice(&h.finish().to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn pipe_to_log(
    stream: impl Read + Send + 'static,
    ctx: Arc<ChannelCtx>,
    prefix: &'static str,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            ctx.log(&format!("{prefix}{line}"));
        }
    })
}

/// Runs operator `op` for the run behind `ctx`; the exit code decides success.
pub(super) fn run(
    ctx: &Arc<ChannelCtx>,
    op: &OperatorSpec,
    socket: &Path,
    tokens: &TaskTokens,
    work_dir: &Path,
) -> Result<(), TaskError> {
    let io = |what: &str, e: std::io::Error| TaskError::Failed(format!("{what}: {e}"));
    let me = ctx.me().clone();
    let job = ctx.job();
    let attempt = ctx.attempt();
    let out_dir_of = |name: &str| output_path(work_dir, job, ctx.task(), attempt, me.role, name);
    let task_dir: PathBuf = out_dir_of("run");
    let _ = std::fs::remove_dir_all(&task_dir);
    std::fs::create_dir_all(task_dir.join("inputs")).map_err(|e| io("task directory", e))?;
    std::fs::create_dir_all(task_dir.join("outputs")).map_err(|e| io("task directory", e))?;
    for (name, path) in ctx.input_files() {
        if path.exists() {
            std::fs::copy(path, task_dir.join("inputs").join(name)).map_err(|e| io("input", e))?;
        }
    }
    let params = task_dir.join("params.json");
    let json =
        serde_json::to_vec_pretty(ctx.params()).map_err(|e| TaskError::Failed(e.to_string()))?;
    std::fs::write(&params, json).map_err(|e| io("params", e))?;

    let token = random_token();
    let shared: Arc<dyn TaskContext> = ctx.clone();
    tokens
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(token.clone(), shared);
    let result = (|| {
        let (program, args) = op
            .command
            .split_first()
            .ok_or_else(|| TaskError::Failed("empty command".into()))?;
        let mut child = Command::new(program)
            .args(args)
            .current_dir(&task_dir)
            .envs(&op.env)
            .env("CONSORT_JOB_ID", job.as_str())
            .env("CONSORT_TASK", ctx.task())
            .env("CONSORT_ATTEMPT", attempt.to_string())
            .env("CONSORT_ROLE", me.role.as_str())
            .env("CONSORT_PARTY", me.party.as_str())
            .env("CONSORT_TASK_DIR", &task_dir)
            .env("CONSORT_PARAMS", &params)
            .env("CONSORT_SOCKET", socket)
            .env("CONSORT_TASK_TOKEN", &token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| io(&format!("cannot start {program}"), e))?;
        let readers: Vec<_> = [
            child.stdout.take().map(|s| pipe_to_log(s, ctx.clone(), "")),
            child
                .stderr
                .take()
                .map(|s| pipe_to_log(s, ctx.clone(), "stderr: ")),
        ]
        .into_iter()
        .flatten()
        .collect();
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| io("wait", e))? {
                break Ok(status);
            }
            let op_timeout = op.timeout.is_some_and(|t| started.elapsed() > t);
            if ctx.is_cancelled() || op_timeout {
                // The child leads its own process group (process_group(0)): kill it all.
                let pid = rustix::process::Pid::from_child(&child);
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                let _ = child.wait();
                break Err(if op_timeout {
                    TaskError::Failed(format!(
                        "operator timed out after {} s",
                        op.timeout.map(|t| t.as_secs()).unwrap_or(0)
                    ))
                } else if ctx.timed_out() {
                    TaskError::Failed("timed out (conf.task_timeout_s)".into())
                } else {
                    TaskError::Cancelled
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }?;
        for r in readers {
            let _ = r.join();
        }
        if !status.success() {
            return Err(TaskError::Failed(format!(
                "{program} exited with {status}; see `consort job log`"
            )));
        }
        // Publish what the script wrote to outputs/ as the run's outputs.
        for entry in std::fs::read_dir(task_dir.join("outputs")).map_err(|e| io("outputs", e))? {
            let entry = entry.map_err(|e| io("outputs", e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let data = std::fs::read(entry.path()).map_err(|e| io("output", e))?;
            ctx.output(&name, &data)?;
        }
        Ok(())
    })();
    tokens
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&token);
    result
}

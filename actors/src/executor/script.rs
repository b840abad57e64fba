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
use consort_protocol::names;
use consort_storage::resolve_inside;

use super::context::{ChannelCtx, OwnDir, own_dir};

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
    // The task directory sits next to the run's outputs (`out/`), not among them.
    let task_dir: PathBuf = own_dir(work_dir, job, ctx.task(), attempt, me.role, OwnDir::Script)
        .map_err(TaskError::Failed)?;
    let _ = std::fs::remove_dir_all(&task_dir);
    std::fs::create_dir_all(task_dir.join("inputs")).map_err(|e| io("task directory", e))?;
    std::fs::create_dir_all(task_dir.join("outputs")).map_err(|e| io("task directory", e))?;
    for (name, path) in ctx.input_files() {
        copy_input(work_dir, &task_dir.join("inputs"), name, path)?;
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
        publish_outputs(ctx.as_ref(), &task_dir)?;
        Ok(())
    })();
    tokens
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&token);
    result
}

/// Copies input `name` (the file at `source`) to `inputs/<name>`. The name was checked when the
/// job was planned; it is checked again here, as it becomes a file name. An input that an
/// upstream run left under `work_dir` is read only if it resolves inside `work_dir`.
fn copy_input(work_dir: &Path, inputs: &Path, name: &str, source: &Path) -> Result<(), TaskError> {
    let dest = names::join_inside(inputs, name).ok_or_else(|| {
        let why = names::check("input name", name)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        TaskError::Failed(why)
    })?;
    let source = match source.strip_prefix(work_dir) {
        Ok(relative) => match resolve_inside(work_dir, relative) {
            Ok(p) => p,
            // Not written upstream (an optional output): the script sees no file.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(TaskError::Failed(format!("input '{name}': {e}"))),
        },
        // A stored model's artifact: the model store's own file.
        Err(_) if source.exists() => source.to_owned(),
        Err(_) => return Ok(()),
    };
    std::fs::copy(&source, &dest)
        .map(|_| ())
        .map_err(|e| TaskError::Failed(format!("input '{name}': {e}")))
}

/// Publishes what the script left in `outputs/` as the run's outputs: regular files only (a
/// link or a directory is skipped with a log line), each name under the one name rule.
fn publish_outputs(ctx: &dyn TaskContext, task_dir: &Path) -> Result<(), TaskError> {
    let io = |what: &str, e: std::io::Error| TaskError::Failed(format!("{what}: {e}"));
    let outputs = task_dir.join("outputs");
    // The script may have replaced outputs/ itself by a link: never follow it.
    let meta = std::fs::symlink_metadata(&outputs).map_err(|e| io("outputs", e))?;
    if !meta.is_dir() {
        return Err(TaskError::Failed(
            "outputs/ is not a directory (a link?)".into(),
        ));
    }
    for entry in std::fs::read_dir(&outputs).map_err(|e| io("outputs", e))? {
        let entry = entry.map_err(|e| io("outputs", e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            ctx.log(&format!(
                "outputs/{}: skipped, the name is not UTF-8",
                entry.file_name().to_string_lossy()
            ));
            continue;
        };
        if let Err(e) = names::check("output name", &name) {
            return Err(TaskError::Failed(format!("outputs/: {e}")));
        }
        // DirEntry::file_type does not follow links.
        let kind = entry.file_type().map_err(|e| io("outputs", e))?;
        if !kind.is_file() {
            ctx.log(&format!(
                "outputs/{name}: skipped, not a regular file (a link, a directory...)"
            ));
            continue;
        }
        let Some(data) = read_regular_no_follow(&entry.path()).map_err(|e| io("output", e))? else {
            ctx.log(&format!(
                "outputs/{name}: skipped, not a regular file (a link, a directory...)"
            ));
            continue;
        };
        ctx.output(&name, &data)?;
    }
    Ok(())
}

/// The content of `path` if it is a regular file, opened without following a link (a process
/// the script left behind could swap the file for a link after the check above) and without
/// blocking on a FIFO.
fn read_regular_no_follow(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        // ELOOP: the last component is a link.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if !file.metadata()?.is_file() {
        return Ok(None);
    }
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    Ok(Some(data))
}

#[cfg(test)]
mod tests {
    use consort_components::{Endpoint, Target};
    use consort_protocol::job::{Params, Role};

    use super::*;

    /// Records outputs and log lines; nothing else is used by `publish_outputs`.
    struct Recorder {
        me: Endpoint,
        params: Params,
        outputs: Mutex<BTreeMap<String, Vec<u8>>>,
        log: Mutex<Vec<String>>,
    }

    impl Recorder {
        fn new() -> Self {
            Self {
                me: Endpoint {
                    role: Role::Guest,
                    party: consort_protocol::PartyName::new("a").expect("party"),
                },
                params: Params::new(),
                outputs: Mutex::default(),
                log: Mutex::default(),
            }
        }
    }

    impl TaskContext for Recorder {
        fn job_id(&self) -> &str {
            "j"
        }
        fn task(&self) -> &str {
            "t"
        }
        fn me(&self) -> &Endpoint {
            &self.me
        }
        fn params(&self) -> &Params {
            &self.params
        }
        fn endpoints(&self) -> &[Endpoint] {
            std::slice::from_ref(&self.me)
        }
        fn input(&self, _: &str) -> Result<Option<Vec<u8>>, TaskError> {
            Ok(None)
        }
        fn output(&self, name: &str, data: &[u8]) -> Result<(), TaskError> {
            let mut outputs = self.outputs.lock().expect("lock");
            outputs.insert(name.to_owned(), data.to_vec());
            Ok(())
        }
        fn remote(&self, _: &Target, _: &str, _: &[u8]) -> Result<(), TaskError> {
            Err(TaskError::Failed("no channel".into()))
        }
        fn get(&self, _: &Target, _: &str) -> Result<Vec<(Endpoint, Vec<u8>)>, TaskError> {
            Err(TaskError::Failed("no channel".into()))
        }
        fn log_metric(&self, _: &str, _: &str, _: &[(f64, f64)]) -> Result<(), TaskError> {
            Ok(())
        }
        fn set_metric_meta(&self, _: &str, _: &str, _: serde_json::Value) -> Result<(), TaskError> {
            Ok(())
        }
        fn log(&self, line: &str) {
            self.log.lock().expect("lock").push(line.to_owned());
        }
        fn is_cancelled(&self) -> bool {
            false
        }
    }

    #[test]
    fn a_link_left_in_outputs_is_skipped_not_followed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let secret = tmp.path().join("identity.key");
        std::fs::write(&secret, b"secret").expect("write");
        let task_dir = tmp.path().join("run");
        let out = task_dir.join("outputs");
        std::fs::create_dir_all(&out).expect("mkdir");
        std::fs::write(out.join("result"), b"42").expect("write");
        std::os::unix::fs::symlink(&secret, out.join("leak")).expect("symlink");
        std::os::unix::fs::symlink(tmp.path(), out.join("up")).expect("symlink");
        std::fs::create_dir(out.join("sub")).expect("mkdir");

        let ctx = Recorder::new();
        publish_outputs(&ctx, &task_dir).expect("published");
        let outputs = ctx.outputs.lock().expect("lock");
        assert_eq!(outputs.keys().collect::<Vec<_>>(), ["result"]);
        assert_eq!(outputs["result"], b"42");
        let log = ctx.log.lock().expect("lock");
        for skipped in ["leak", "up", "sub"] {
            assert!(
                log.iter()
                    .any(|l| l.starts_with(&format!("outputs/{skipped}: skipped"))),
                "{skipped} in {log:?}"
            );
        }
    }

    #[test]
    fn outputs_replaced_by_a_link_or_badly_named_are_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).expect("mkdir");
        std::fs::write(elsewhere.join("passwd"), b"root").expect("write");
        let task_dir = tmp.path().join("run");
        std::fs::create_dir(&task_dir).expect("mkdir");
        std::os::unix::fs::symlink(&elsewhere, task_dir.join("outputs")).expect("symlink");
        let ctx = Recorder::new();
        let err = publish_outputs(&ctx, &task_dir).expect_err("link");
        assert!(err.to_string().contains("not a directory"), "{err}");
        assert!(ctx.outputs.lock().expect("lock").is_empty());

        std::fs::remove_file(task_dir.join("outputs")).expect("rm");
        std::fs::create_dir(task_dir.join("outputs")).expect("mkdir");
        std::fs::write(task_dir.join("outputs/my file.csv"), b"x").expect("write");
        let err = publish_outputs(&ctx, &task_dir).expect_err("bad name");
        assert!(err.to_string().contains("invalid output name"), "{err}");
    }

    #[test]
    fn reading_an_output_never_follows_a_link() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let secret = tmp.path().join("identity.key");
        std::fs::write(&secret, b"secret").expect("write");
        let out = tmp.path().join("outputs");
        std::fs::create_dir(&out).expect("mkdir");
        std::fs::write(out.join("ok"), b"data").expect("write");
        std::os::unix::fs::symlink(&secret, out.join("leak")).expect("symlink");
        std::fs::create_dir(out.join("dir")).expect("mkdir");
        assert_eq!(
            read_regular_no_follow(&out.join("ok")).expect("read"),
            Some(b"data".to_vec())
        );
        assert_eq!(
            read_regular_no_follow(&out.join("leak")).expect("link"),
            None
        );
        assert_eq!(read_regular_no_follow(&out.join("dir")).expect("dir"), None);
    }

    #[test]
    fn inputs_are_copied_only_under_plain_names_and_from_inside_work_dir() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let work = tmp.path().join("jobs");
        let up = work.join("j/t/0/guest/out");
        std::fs::create_dir_all(&up).expect("mkdir");
        std::fs::write(up.join("data"), b"rows").expect("write");
        std::fs::write(tmp.path().join("identity.key"), b"secret").expect("write");
        std::os::unix::fs::symlink(tmp.path().join("identity.key"), up.join("leak"))
            .expect("symlink");
        let inputs = tmp.path().join("inputs");
        std::fs::create_dir(&inputs).expect("mkdir");

        copy_input(&work, &inputs, "train", &up.join("data")).expect("copied");
        assert_eq!(std::fs::read(inputs.join("train")).expect("read"), b"rows");
        copy_input(&work, &inputs, "absent", &up.join("nothing")).expect("absent is fine");
        assert!(!inputs.join("absent").exists());
        for bad in ["../x", "/etc/x", "..", "a/b"] {
            let err = copy_input(&work, &inputs, bad, &up.join("data")).expect_err(bad);
            assert!(err.to_string().contains("invalid input name"), "{err}");
        }
        let err = copy_input(&work, &inputs, "leak", &up.join("leak")).expect_err("link out");
        assert!(err.to_string().contains("outside"), "{err}");
        assert!(!inputs.join("leak").exists());
    }
}

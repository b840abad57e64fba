//! The Executor: runs this party's part of tasks. Built-in components run on their own threads
//! (never on an actor's thread) with a [`ChannelCtx`](context::ChannelCtx) backed by the data
//! channel, the mailbox and the tracking store. It reports every end to the Scheduler.
//!
//! Messages: [`StartRun`], [`CancelRun`], [`CleanUp`], [`CleanUpJob`] (from the Scheduler),
//! [`ReadOutput`] (a task's output, for `job output`), [`TaskCall`] (a running script
//! operator's calls into its task, by task token), [`StoreStats`].

mod calls;
mod context;
mod outputs;
mod script;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix::{Actor, AsyncContext, Context, Handler, Message, Recipient};
use consort_components::{Endpoint, TaskContext, TaskError};
use consort_protocol::PartyName;
use consort_protocol::job::Params;
use consort_protocol::jobs::JobId;
use consort_storage::{Mailbox, Store, Tables, TreeName};
use tracing::{info, warn};

use crate::network::NetworkClient;
use crate::scheduler::derive::RunKey;
use crate::stats::{self, StoreStats};

pub use calls::{Received, TaskAnswer, TaskAsk, TaskCall};
pub use context::{OwnDir, output_path, own_dir, run_dir, waiting_marker};
pub use outputs::{Output, ReadOutput};
pub use script::{OperatorSpec, TaskTokens};

/// Runs this party's role of tasks on threads, with the data channel.
pub struct Executor {
    store: Store,
    deps: Option<ExecDeps>,
    running: BTreeMap<(JobId, RunKey), Arc<AtomicBool>>,
}

/// What running tasks needs (absent in a store-only Executor).
#[derive(Clone)]
pub struct ExecDeps {
    /// This party.
    pub me: PartyName,
    /// The network (for `remote`).
    pub net: NetworkClient,
    /// Incoming channel messages.
    pub mailbox: Mailbox,
    /// Appends task logs and metrics (the Tracker's one writer handle).
    pub logs: crate::tracker::LogWriter,
    /// Where task outputs are written (`<data dir>/jobs`).
    pub work_dir: PathBuf,
    /// Registered script operators.
    pub operators: BTreeMap<String, OperatorSpec>,
    /// The control socket scripts call back on.
    pub socket: PathBuf,
    /// Tokens of running script tasks.
    pub tokens: TaskTokens,
    /// This party's tables (for `reader`).
    pub tables: Tables,
    /// `[policy.tables]`: table → parties whose jobs may read it (`"*"`: every table/partner).
    pub table_policy: BTreeMap<String, Vec<String>>,
}

impl Executor {
    /// Trees this actor owns.
    pub const TREES: &'static [TreeName] = &[TreeName::Runs, TreeName::Mailbox];

    /// An executor over `store` that cannot run tasks (tests, tools).
    pub fn new(store: Store) -> Self {
        Self {
            store,
            deps: None,
            running: BTreeMap::new(),
        }
    }

    /// An executor that runs tasks.
    pub fn with_deps(store: Store, deps: ExecDeps) -> Self {
        Self {
            store,
            deps: Some(deps),
            running: BTreeMap::new(),
        }
    }
}

impl Actor for Executor {
    type Context = Context<Self>;
}

/// Counts the records in this actor's trees.
impl Handler<StoreStats> for Executor {
    type Result = <StoreStats as actix::Message>::Result;

    fn handle(&mut self, _msg: StoreStats, _ctx: &mut Context<Self>) -> Self::Result {
        stats::count("executor", &self.store, Self::TREES)
    }
}

/// The parties among `others` that `[policy.tables]` (`policy`) does not let read `table`:
/// the table's own entry, else the `"*"` entry, names them or `"*"`.
pub fn tables_refused<'a>(
    policy: &BTreeMap<String, Vec<String>>,
    table: &str,
    others: impl Iterator<Item = &'a PartyName>,
) -> Vec<String> {
    let allowed = policy.get(table).or_else(|| policy.get("*"));
    others
        .filter(|p| !allowed.is_some_and(|a| a.iter().any(|x| x == "*" || x == p.as_str())))
        .map(|p| p.to_string())
        .collect()
}

/// Start one run.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartRun {
    /// Job.
    pub job: JobId,
    /// Which run.
    pub key: RunKey,
    /// Component name.
    pub component: String,
    /// Merged params.
    pub params: Params,
    /// Every endpoint running the task.
    pub endpoints: Vec<Endpoint>,
    /// Every party of the job (the table policy is checked against them when a table is read).
    pub participants: Vec<PartyName>,
    /// Input name → file written by the upstream run at this party.
    pub inputs: BTreeMap<String, PathBuf>,
    /// `conf.task_timeout_s`.
    pub timeout: Duration,
    /// Who hears the end.
    pub reply_to: Recipient<RunFinished>,
}

/// Cancel one run (no-op if it is not running).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CancelRun {
    /// Job.
    pub job: JobId,
    /// Which run.
    pub key: RunKey,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// Success.
    Success,
    /// Failure, with the reason.
    Failed(String),
    /// Cancelled.
    Canceled,
}

/// A run ended (sent to the Scheduler).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RunFinished {
    /// Job.
    pub job: JobId,
    /// Which run.
    pub key: RunKey,
    /// How.
    pub end: RunEnd,
}

/// Stop tracking a finished run.
#[derive(Message)]
#[rtype(result = "()")]
struct Forget(JobId, RunKey);

/// Starts the run on its own thread.
impl Handler<StartRun> for Executor {
    type Result = ();

    fn handle(&mut self, msg: StartRun, ctx: &mut Context<Self>) {
        let job = msg.job.clone();
        let key = msg.key.clone();
        let Some(deps) = self.deps.clone() else {
            msg.reply_to.do_send(RunFinished {
                job,
                key,
                end: RunEnd::Failed("executor not configured".into()),
            });
            return;
        };
        let builtin = consort_components::component(&msg.component);
        let operator = msg
            .component
            .strip_prefix("script:")
            .and_then(|s| deps.operators.get(s).cloned());
        if builtin.is_none() && operator.is_none() {
            let end = RunEnd::Failed(format!(
                "component '{}' is not available at {}",
                msg.component, deps.me
            ));
            msg.reply_to.do_send(RunFinished { job, key, end });
            return;
        }
        let cancel = Arc::new(AtomicBool::new(false));
        self.running
            .insert((job.clone(), key.clone()), cancel.clone());
        let me_addr = ctx.address();
        let reply = msg.reply_to.clone();
        info!(job = %job, task = %key.task, attempt = key.attempt, role = %key.role, "run started");
        let spawned = std::thread::Builder::new()
            .name(format!("task-{}", key.task))
            .spawn(move || {
                let started = Instant::now();
                let ctx = context::ChannelCtx::new(&deps, &msg, cancel.clone(), started).map(Arc::new);
                let outcome = match &ctx {
                    Err(e) => Err(e.clone()),
                    Ok(ctx) => {
                        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            match (&operator, builtin) {
                                (Some(op), _) => script::run(ctx, op, &deps.socket, &deps.tokens, &deps.work_dir),
                                (None, Some(f)) => f(ctx.as_ref()),
                                (None, None) => Err(TaskError::Failed("no component".into())),
                            }
                        }));
                        let timed_out = ctx.timed_out();
                        match r {
                            Err(_) => Err(TaskError::Failed("the component panicked".into())),
                            Ok(Err(_)) if timed_out => Err(TaskError::Failed(format!(
                                "timed out after {} s (conf.task_timeout_s)",
                                msg.timeout.as_secs()
                            ))),
                            Ok(r) => r,
                        }
                    }
                };
                let end = match outcome {
                    Ok(()) => RunEnd::Success,
                    Err(TaskError::Cancelled) => RunEnd::Canceled,
                    Err(e) => {
                        // The reason goes into a replicated task record: partners see it. Our
                        // paths stay here, in full, in the local task log.
                        let reason = e.to_string();
                        if let Ok(ctx) = &ctx {
                            ctx.log(&format!("failed: {reason}"));
                        }
                        warn!(job = %msg.job, task = %msg.key.task, role = %msg.key.role, error = %reason, "run failed");
                        let data_dir = deps.work_dir.parent().unwrap_or(&deps.work_dir);
                        RunEnd::Failed(scrub_paths(&reason, data_dir))
                    }
                };
                clean_up(&deps, &msg.job, &msg.key);
                info!(job = %msg.job, task = %msg.key.task, role = %msg.key.role, ?end, elapsed_ms = started.elapsed().as_millis() as u64, "run ended");
                me_addr.do_send(Forget(msg.job.clone(), msg.key.clone()));
                msg.reply_to.do_send(RunFinished { job: msg.job, key: msg.key, end });
            });
        if let Err(e) = spawned {
            warn!(error = %e, "cannot start a task thread");
            self.running.remove(&(job.clone(), key.clone()));
            reply.do_send(RunFinished {
                job,
                key,
                end: RunEnd::Failed(format!("cannot start a thread: {e}")),
            });
        }
    }
}

/// `msg` with every occurrence of our data directory (as configured, and as resolved through
/// links) replaced by `<data>`: what partners see of a failure names no local path.
pub fn scrub_paths(msg: &str, data_dir: &Path) -> String {
    let mut dirs = vec![data_dir.to_path_buf()];
    if let Ok(canonical) = data_dir.canonicalize()
        && canonical != data_dir
    {
        dirs.push(canonical);
    }
    // Longest first, so that one directory inside the other is replaced whole.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.as_os_str().len()));
    let mut out = msg.to_owned();
    for dir in dirs {
        let dir = dir.to_string_lossy();
        let dir = dir.trim_end_matches('/');
        // Never "/" or "" (a relative or root data dir would scrub every slash).
        if dir.is_empty() || !dir.starts_with('/') {
            continue;
        }
        out = out.replace(dir, "<data>");
    }
    out
}

/// Flags the run as cancelled; the component stops at its next check.
/// Whatever a run did not take (a failed attempt's messages, chunks of a payload that never
/// completed) goes, with its scratch files.
fn clean_up(deps: &ExecDeps, job: &JobId, key: &RunKey) {
    let prefix = format!("{job}/{}/{}/", key.task, key.attempt);
    let to = format!("{}@{}", key.role, key.party);
    if let Err(e) = deps.mailbox.clear(&prefix, Some(&to)) {
        warn!(error = %e, "cannot clear the run's mailbox");
    }
    if let Ok(scratch) = own_dir(
        &deps.work_dir,
        job,
        &key.task,
        key.attempt,
        key.role,
        OwnDir::Scratch,
    ) {
        let _ = std::fs::remove_dir_all(scratch);
    }
    if let Ok(marker) = waiting_marker(&deps.work_dir, job, &key.task, key.attempt, key.role) {
        let _ = std::fs::remove_file(marker);
    }
}

/// Whether a run that a restart cut short was only waiting for its first message (a built-in
/// component that had sent, taken, logged and written nothing): it may start again in place,
/// at the same attempt, and find in the mailbox what its senders delivered before the crash.
pub fn resumable(work_dir: &Path, job: &JobId, key: &RunKey) -> bool {
    waiting_marker(work_dir, job, &key.task, key.attempt, key.role).is_ok_and(|p| p.is_file())
}

/// Clean up after a run that a restart cut short (it never ended in this process).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CleanUp {
    /// Job.
    pub job: JobId,
    /// Which run.
    pub key: RunKey,
}

impl Handler<CleanUp> for Executor {
    type Result = ();

    fn handle(&mut self, msg: CleanUp, _ctx: &mut Context<Self>) {
        if let Some(deps) = &self.deps {
            let deps = deps.clone();
            // Removing files and sled entries: not on the actor's thread.
            actix::spawn(async move {
                let _ =
                    tokio::task::spawn_blocking(move || clean_up(&deps, &msg.job, &msg.key)).await;
            });
        }
    }
}

/// A job ended here: drop whatever is left of it in the mailbox (messages of stale attempts,
/// chunks of payloads that never completed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CleanUpJob(pub JobId);

impl Handler<CleanUpJob> for Executor {
    type Result = ();

    fn handle(&mut self, msg: CleanUpJob, _ctx: &mut Context<Self>) {
        if let Some(deps) = &self.deps {
            let mailbox = deps.mailbox.clone();
            actix::spawn(async move {
                let job = msg.0;
                let cleared = tokio::task::spawn_blocking(move || mailbox.clear_job(&job)).await;
                if let Ok(Err(e)) = cleared {
                    warn!(error = %e, "cannot clear a finished job's mailbox");
                }
            });
        }
    }
}

impl Handler<CancelRun> for Executor {
    type Result = ();

    fn handle(&mut self, msg: CancelRun, _ctx: &mut Context<Self>) {
        if let Some(flag) = self.running.get(&(msg.job, msg.key)) {
            flag.store(true, Ordering::SeqCst);
        }
    }
}

/// Forgets a finished run.
impl Handler<Forget> for Executor {
    type Result = ();

    fn handle(&mut self, msg: Forget, _ctx: &mut Context<Self>) {
        self.running.remove(&(msg.0, msg.1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_paths_hides_the_data_directory() {
        let data = Path::new("/var/lib/consort");
        assert_eq!(
            scrub_paths(
                "cannot read /var/lib/consort/jobs/j1/t/0/guest/out/data: No such file; \
                 copy of /var/lib/consort/mailbox/x failed",
                data
            ),
            "cannot read <data>/jobs/j1/t/0/guest/out/data: No such file; \
             copy of <data>/mailbox/x failed"
        );
        assert_eq!(
            scrub_paths("at /var/lib/consort", Path::new("/var/lib/consort/")),
            "at <data>"
        );
        assert_eq!(scrub_paths("no path here: a/b", data), "no path here: a/b");
        assert_eq!(scrub_paths("/etc/x", Path::new("/")), "/etc/x");
        assert_eq!(scrub_paths("/etc/x", Path::new("")), "/etc/x");
    }

    #[test]
    fn scrub_paths_also_hides_the_resolved_directory() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).expect("mkdir");
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let canonical = real.canonicalize().expect("canonical");
        let msg = format!(
            "{}/jobs/x and {}/jobs/y",
            link.display(),
            canonical.display()
        );
        assert_eq!(scrub_paths(&msg, &link), "<data>/jobs/x and <data>/jobs/y");
    }
}

//! An in-memory multi-party harness: runs every party's part of a task on its own thread in
//! this process, with a shared mailbox standing in for the data channel. For unit tests of
//! components (and of anything that needs a TaskContext without a network).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use consort_protocol::job::{Params, PlannedTask};

use crate::context::{Endpoint, Target, TaskContext, TaskError};
use crate::registry::ComponentFn;

type Key = (Endpoint, Endpoint, String);

#[derive(Default)]
struct Mailbox {
    queues: Mutex<HashMap<Key, VecDeque<Vec<u8>>>>,
    arrived: Condvar,
}

/// One metric series: namespace, name, points.
pub type MetricSeries = (String, String, Vec<(f64, f64)>);

/// What one endpoint's run produced.
#[derive(Debug)]
pub struct RunResult {
    /// Who ran.
    pub endpoint: Endpoint,
    /// How it ended.
    pub result: Result<(), TaskError>,
    /// Outputs by name.
    pub outputs: BTreeMap<String, Vec<u8>>,
    /// Metrics logged.
    pub metrics: Vec<MetricSeries>,
    /// Log lines.
    pub log: Vec<String>,
}

struct MemCtx<'a> {
    job_id: &'a str,
    task: &'a str,
    me: Endpoint,
    params: Params,
    endpoints: &'a [Endpoint],
    inputs: BTreeMap<String, Vec<u8>>,
    outputs: Mutex<BTreeMap<String, Vec<u8>>>,
    metrics: Mutex<Vec<MetricSeries>>,
    log: Mutex<Vec<String>>,
    mailbox: &'a Mailbox,
    cancel: &'a AtomicBool,
    get_timeout: Duration,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking component thread must not hide the other parties' results.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TaskContext for MemCtx<'_> {
    fn job_id(&self) -> &str {
        self.job_id
    }
    fn task(&self) -> &str {
        self.task
    }
    fn me(&self) -> &Endpoint {
        &self.me
    }
    fn params(&self) -> &Params {
        &self.params
    }
    fn endpoints(&self) -> &[Endpoint] {
        self.endpoints
    }
    fn input(&self, name: &str) -> Result<Option<Vec<u8>>, TaskError> {
        Ok(self.inputs.get(name).cloned())
    }
    fn output(&self, name: &str, data: &[u8]) -> Result<(), TaskError> {
        lock(&self.outputs).insert(name.to_owned(), data.to_vec());
        Ok(())
    }
    fn remote(&self, to: &Target, tag: &str, data: &[u8]) -> Result<(), TaskError> {
        let mut queues = lock(&self.mailbox.queues);
        for dest in self.resolve(to) {
            queues
                .entry((self.me.clone(), dest, tag.to_owned()))
                .or_default()
                .push_back(data.to_vec());
        }
        self.mailbox.arrived.notify_all();
        Ok(())
    }
    fn get(&self, from: &Target, tag: &str) -> Result<Vec<(Endpoint, Vec<u8>)>, TaskError> {
        let deadline = Instant::now() + self.get_timeout;
        let mut out = Vec::new();
        for src in self.resolve(from) {
            let key = (src.clone(), self.me.clone(), tag.to_owned());
            let mut queues = lock(&self.mailbox.queues);
            loop {
                if let Some(data) = queues.get_mut(&key).and_then(|q| q.pop_front()) {
                    out.push((src.clone(), data));
                    break;
                }
                if self.cancel.load(Ordering::SeqCst) {
                    return Err(TaskError::Cancelled);
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(TaskError::Channel(format!(
                        "nothing from {src} under '{tag}' in time"
                    )));
                }
                queues = self
                    .mailbox
                    .arrived
                    .wait_timeout(queues, left.min(Duration::from_millis(50)))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        Ok(out)
    }
    fn log_metric(
        &self,
        namespace: &str,
        name: &str,
        points: &[(f64, f64)],
    ) -> Result<(), TaskError> {
        lock(&self.metrics).push((namespace.to_owned(), name.to_owned(), points.to_vec()));
        Ok(())
    }
    fn set_metric_meta(
        &self,
        namespace: &str,
        name: &str,
        meta: serde_json::Value,
    ) -> Result<(), TaskError> {
        self.log(&format!("meta {namespace}/{name}: {meta}"));
        Ok(())
    }
    fn log(&self, line: &str) {
        lock(&self.log).push(line.to_owned());
    }
    fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }
}

/// Runs every run of `task` with component `f`, each on its own thread; returns when all end.
/// `inputs` gives each endpoint's input bytes by name; `cancel` can be set from outside.
pub fn run_task(
    job_id: &str,
    task: &PlannedTask,
    f: ComponentFn,
    inputs: &BTreeMap<Endpoint, BTreeMap<String, Vec<u8>>>,
    cancel: &Arc<AtomicBool>,
) -> Vec<RunResult> {
    let endpoints: Vec<Endpoint> = task
        .runs
        .iter()
        .map(|r| Endpoint {
            role: r.role,
            party: r.party.clone(),
        })
        .collect();
    let mailbox = Mailbox::default();
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = task
            .runs
            .iter()
            .zip(&endpoints)
            .map(|(run, me)| {
                let ctx = MemCtx {
                    job_id,
                    task: &task.name,
                    me: me.clone(),
                    params: run.params.clone(),
                    endpoints: &endpoints,
                    inputs: inputs.get(me).cloned().unwrap_or_default(),
                    outputs: Mutex::default(),
                    metrics: Mutex::default(),
                    log: Mutex::default(),
                    mailbox: &mailbox,
                    cancel: cancel.as_ref(),
                    get_timeout: Duration::from_secs(30),
                };
                scope.spawn(move || {
                    let result = f(&ctx);
                    RunResult {
                        endpoint: ctx.me.clone(),
                        result,
                        outputs: std::mem::take(&mut *lock(&ctx.outputs)),
                        metrics: std::mem::take(&mut *lock(&ctx.metrics)),
                        log: std::mem::take(&mut *lock(&ctx.log)),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(&endpoints)
            .map(|(h, e)| {
                h.join().unwrap_or_else(|_| RunResult {
                    endpoint: e.clone(),
                    result: Err(TaskError::Failed("component panicked".into())),
                    outputs: BTreeMap::new(),
                    metrics: Vec::new(),
                    log: Vec::new(),
                })
            })
            .collect()
    });
    // The runs' scratch files (the contexts use the default directory) go with the run.
    for e in &endpoints {
        let _ = std::fs::remove_dir_all(crate::context::default_scratch_dir(job_id, &task.name, e));
    }
    results
}

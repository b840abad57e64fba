//! The Scheduler: authority over this party's task states, deriving every job's state from the
//! replicated records of all parties.
//!
//! It owns no coordinator role: it reads records (its own and its partners'), decides what this
//! party may do next — accept a proposal, start a run, cancel a moot run — and writes its own
//! records. Every party runs the same code on the same records and reaches the same job state.

pub mod derive;
mod model_checks;
#[cfg(test)]
mod order_tests;
mod view;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient, ResponseActFuture,
    WrapFuture,
};
use consort_protocol::JobInfo;
use consort_protocol::PartyName;
use consort_protocol::audience::Audience;
use consort_protocol::job::{JobPlan, JobSpec, Role, validate};
use consort_protocol::jobs::{
    Decision, DecisionRecord, JobId, JobRecord, RECORD_VERSION, RecordKey, RerunRecord, RunState,
    StopRecord, TaskStateRecord, decision_key, job_key, rerun_key, stop_key, task_key,
};
use consort_protocol::peer::Record;
use consort_storage::{RecordStore, Store, Tables, Tree, TreeName};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::executor::{CancelRun, Executor, RunEnd, RunFinished, StartRun, output_path};
use crate::model_manager::{CommitJob, ResolveInput};
use crate::network::NetworkClient;
use crate::stats::{self, StoreStats};
use derive::{JobView, RunKey};
use model_checks::DataChecks;

/// What this party accepts (`[policy]` and `[operators]` of consort.toml).
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Parties whose proposals are considered; `*` for every partner.
    pub accept_from: Vec<String>,
    /// Components partners may run here; empty: every built-in.
    pub components: Vec<String>,
    /// Hold proposals for `consort job approve`.
    pub manual_approval: bool,
    /// Names of locally registered script operators.
    pub operators: Vec<String>,
    /// Table → parties whose jobs may read it (`"*"`: any partner); `"*"` as a table name
    /// covers every table. A table not covered may only be used in jobs of this party alone.
    pub tables: BTreeMap<String, Vec<String>>,
}

/// Everything the Scheduler needs at run time.
pub struct SchedulerDeps {
    /// This party.
    pub me: PartyName,
    /// Network, for writing records.
    pub net: NetworkClient,
    /// Replicated records (read at start).
    pub records: RecordStore,
    /// The executor.
    pub executor: actix::Addr<Executor>,
    /// Policy.
    pub policy: Policy,
    /// Where outputs live (`<data dir>/jobs`).
    pub work_dir: PathBuf,
    /// This party's tables (checked at acceptance).
    pub tables: Tables,
    /// The ModelManager: which artifact a task's `model:` gives a run here.
    pub model_inputs: Recipient<ResolveInput>,
    /// The ModelManager: store a successful job's models.
    pub commit_models: Recipient<CommitJob>,
}

/// How a job record of ours travels: by way of the job's hub (its initiator), lazily or not.
struct Route {
    hub: PartyName,
    lazy: bool,
}

/// Who first proposed a job id here. A job id belongs to that initiator for good: a later
/// `job/<id>` record from anybody else is refused, also after a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct JobClaim {
    initiator: PartyName,
}

impl consort_storage::Record for JobClaim {
    const KIND: &'static str = "job claim";
    const VERSION: u16 = 1;
}

/// The job authority of this party.
pub struct Scheduler {
    store: Store,
    /// Job id → its initiator (the `jobs` tree), written off this thread.
    claims: Option<Tree<JobClaim>>,
    /// The claims held, read at start-up with the records and kept up to date here: deciding
    /// whether a job id is free needs no store read on this thread.
    claimed: std::collections::HashMap<JobId, PartyName>,
    deps: Option<SchedulerDeps>,
    views: BTreeMap<JobId, JobView>,
    running: BTreeSet<(JobId, RunKey)>,
    /// Successful jobs whose models were stored (or found stored) in this process.
    committed: BTreeSet<JobId>,
    /// Proposals waiting for the ModelManager's answer about their model inputs (`None`), or
    /// with it (decided at the next tick).
    model_checks: BTreeMap<JobId, Option<DataChecks>>,
    /// Finished jobs whose leftover mailbox entries were dropped in this process.
    cleaned: BTreeSet<JobId>,
    /// Jobs whose view was just created: their records already in the store (those that
    /// arrived before the job record) are to be read, off this thread.
    to_load: Vec<JobId>,
    /// A resync is under way (one at a time).
    resyncing: bool,
    /// Jobs a resync found over, at the revision it found them so: the next resync does not
    /// derive their status again unless their view changed (it grows with the jobs held).
    over_at: std::collections::HashMap<JobId, u64>,
    /// Records a resync found before their event: `(origin, key, version)` → when. An event
    /// still on its way clears its entry; one that never comes is reported as lost.
    found_early: std::collections::HashMap<(PartyName, String, u64), std::time::Instant>,
    /// `job watch` askers: job, the revision they saw, and whom to wake once it changes.
    watchers: Vec<(JobId, Wanted, tokio::sync::oneshot::Sender<()>)>,
}

impl Scheduler {
    /// Trees this actor owns.
    pub const TREES: &'static [TreeName] = &[TreeName::Jobs, TreeName::Tasks];

    /// A scheduler that only answers store statistics (tests, tools).
    pub fn new(store: Store) -> Self {
        Self {
            store,
            claims: None,
            claimed: Default::default(),
            deps: None,
            views: BTreeMap::new(),
            running: BTreeSet::new(),
            committed: BTreeSet::new(),
            model_checks: BTreeMap::new(),
            cleaned: BTreeSet::new(),
            to_load: Vec::new(),
            resyncing: false,
            over_at: Default::default(),
            found_early: Default::default(),
            watchers: Vec::new(),
        }
    }

    /// A working scheduler.
    pub fn with_deps(store: Store, deps: SchedulerDeps) -> Self {
        let claims = store
            .tree(TreeName::Jobs)
            .map_err(|e| warn!(error = %e, "cannot open the job claims"))
            .ok();
        Self {
            store,
            claims,
            claimed: Default::default(),
            deps: Some(deps),
            views: BTreeMap::new(),
            running: BTreeSet::new(),
            committed: BTreeSet::new(),
            model_checks: BTreeMap::new(),
            cleaned: BTreeSet::new(),
            to_load: Vec::new(),
            resyncing: false,
            over_at: Default::default(),
            found_early: Default::default(),
            watchers: Vec::new(),
        }
    }
}

use consort_protocol::clock::now_ms;

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(v).unwrap_or_default()
}

/// Parses and validates a job file (bounded by the job DSL's own limits).
fn plan_of(spec: &str) -> Result<JobPlan, String> {
    JobSpec::parse(spec).map_err(|e| e.0).and_then(|spec| {
        validate(&spec, &consort_components::schema).map_err(|errs| {
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        })
    })
}

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Bursts of records (many jobs at once) must queue, not bounce.
        ctx.set_mailbox_capacity(4096);
        // Safety net: re-read the records of unfinished jobs from the store now and then, so
        // a record whose event was missed still moves its job on. Keyed by job, off this
        // thread, and only newer versions change anything.
        ctx.run_interval(RESYNC_EVERY, |act, ctx| act.resync(ctx));
        let Some(deps) = &self.deps else { return };
        // The store is read on a blocking thread; no message is handled until it is folded in.
        let records = deps.records.clone();
        let claims = self.claims.clone();
        ctx.wait(
            async move {
                tokio::task::spawn_blocking(move || {
                    let claimed = claims.map(|t| {
                        t.scan_prefix("")
                            .filter_map(|c| {
                                let (k, c) = c.ok()?;
                                let id = JobId::parse(std::str::from_utf8(&k).ok()?)?;
                                Some((id, c.initiator))
                            })
                            .collect()
                    });
                    (records.all(), claimed)
                })
                .await
            }
            .into_actor(self)
            .map(|loaded, act, ctx| match loaded {
                Ok((all, claimed)) => {
                    act.claimed = claimed.unwrap_or_default();
                    match all {
                        Ok(all) => act.load_all(all, ctx),
                        Err(e) => warn!(error = %e, "cannot load records"),
                    }
                }
                Err(e) => warn!(error = %e, "cannot load records"),
            }),
        );
    }
}

/// Period of the scheduler's re-read of unfinished jobs' records.
const RESYNC_EVERY: Duration = Duration::from_secs(2);
/// A record a resync found whose event has not come this long after was lost.
const LOST_AFTER: Duration = Duration::from_secs(30);

impl Scheduler {
    /// Folds the whole store in at start-up, then acts on every job.
    fn load_all(&mut self, all: Vec<Record>, ctx: &mut Context<Self>) {
        let Some(deps) = &self.deps else { return };
        let me = deps.me.clone();
        let work_dir = deps.work_dir.clone();
        // Job records first, then the rest, so that every record finds its job.
        let (jobs, rest): (Vec<Record>, Vec<Record>) =
            all.into_iter().partition(|r| r.key.starts_with("job/"));
        for r in jobs.iter().chain(rest.iter()) {
            self.apply(r);
        }
        // Everything held is folded in already.
        self.to_load.clear();
        // A run of ours still marked running was cut short by a restart: it failed, unless it
        // was only waiting for its first message (then it starts again, at the same attempt).
        let stale: Vec<(JobId, RunKey)> = self
            .views
            .iter()
            .flat_map(|(job, v)| {
                v.runs
                    .iter()
                    .filter(|(k, r)| k.party == me && r.state == RunState::Running)
                    .map(move |(k, _)| (job.clone(), k.clone()))
            })
            .collect();
        for (job, key) in stale {
            let resume = crate::executor::resumable(&work_dir, &job, &key)
                && self.views.get(&job).is_some_and(|v| !v.is_moot(&key));
            if resume {
                info!(%job, task = %key.task, attempt = key.attempt, "run resumed after a restart: it was waiting for its first message");
                self.start(ctx, &job, key);
            } else {
                self.fail_cut_short(ctx, &job, &key);
            }
        }
        let jobs: Vec<JobId> = self.views.keys().cloned().collect();
        for job in jobs {
            self.tick(ctx, &job);
        }
        info!(jobs = self.views.len(), "scheduler started");
    }

    /// Reads the held records of jobs whose view was just created (records that arrived
    /// before their job record), on a blocking thread, and folds them in.
    fn load_new(&mut self, ctx: &mut Context<Self>) {
        let Some(deps) = &self.deps else { return };
        for job in std::mem::take(&mut self.to_load) {
            let records = deps.records.clone();
            let id = job.clone();
            ctx.spawn(
                async move { tokio::task::spawn_blocking(move || records.of_job(id.as_str())).await }
                    .into_actor(self)
                    .map(move |held, act, ctx| {
                        match held {
                            Ok(Ok(held)) => {
                                for r in &held {
                                    act.apply(r);
                                }
                            }
                            Ok(Err(e)) => warn!(%job, error = %e, "cannot read a job's records"),
                            Err(e) => warn!(%job, error = %e, "cannot read a job's records"),
                        }
                        act.tick(ctx, &job);
                    }),
            );
        }
    }

    fn resync(&mut self, ctx: &mut Context<Self>) {
        if self.resyncing {
            return;
        }
        // Events lag the store under load; one missing for long was lost on the way.
        let now = std::time::Instant::now();
        self.found_early.retain(|(origin, key, version), at| {
            let lost = now.duration_since(*at) > LOST_AFTER;
            if lost {
                warn!(%origin, %key, version, "a record's event never reached the scheduler; the resync brought it");
            }
            !lost
        });
        let mut active = Vec::new();
        for (job, view) in &self.views {
            if self.over_at.get(job) == Some(&view.revision) {
                continue;
            }
            if view.status().is_final() {
                self.over_at.insert(job.clone(), view.revision);
            } else {
                active.push(job.clone());
            }
        }
        if active.is_empty() {
            return;
        }
        let Some(deps) = &self.deps else { return };
        let records = deps.records.clone();
        self.resyncing = true;
        ctx.spawn(
            async move {
                tokio::task::spawn_blocking(move || {
                    active
                        .into_iter()
                        .map(|job| {
                            let held = records.of_job(job.as_str());
                            (job, held)
                        })
                        .collect::<Vec<_>>()
                })
                .await
            }
            .into_actor(self)
            .map(|held, act, ctx| {
                act.resyncing = false;
                let Ok(held) = held else { return };
                for (job, records) in held {
                    match records {
                        Ok(records) => {
                            for r in &records {
                                let theirs = act.deps.as_ref().is_some_and(|d| d.me != r.origin);
                                // Only a record that changed the view had not come by event.
                                let before = act.views.get(&job).map(|v| v.revision);
                                act.apply(r);
                                let changed = act.views.get(&job).map(|v| v.revision) != before;
                                if changed && theirs && act.found_early.len() < 10_000 {
                                    act.found_early.insert(
                                        (r.origin.clone(), r.key.clone(), r.version),
                                        std::time::Instant::now(),
                                    );
                                }
                            }
                        }
                        Err(e) => warn!(%job, error = %e, "cannot read a job's records"),
                    }
                    act.tick(ctx, &job);
                }
            }),
        );
    }

    /// Folds one record into the views. Returns the job it concerns. A record that does not
    /// fit the job (a job id taken by another initiator, a job this party is not in, a record
    /// from a party outside the job or for a run the plan does not give it) is ignored.
    ///
    /// A record replaces only an older version of itself: records may reach the view in any
    /// order (events, the load of a new job, resyncs) and the newest always stays. This
    /// party's own records are written into the view first (`local`); a copy of one from the
    /// store or a partner is only taken when the view has none (after a restart).
    fn apply(&mut self, r: &Record) -> Option<JobId> {
        self.fold(r, false)
    }

    fn fold(&mut self, r: &Record, local: bool) -> Option<JobId> {
        let key = RecordKey::parse(&r.key)?;
        let job = key.job().clone();
        if let RecordKey::Job(id) = &key {
            return self.apply_job(r, id);
        }
        let own = self.deps.as_ref().is_some_and(|d| d.me == r.origin);
        let view = self.views.get_mut(&job)?;
        if !view.takes_part(&r.origin) {
            warn!(%job, origin = %r.origin, key = %r.key, "record from a party outside the job ignored");
            return None;
        }
        let slot = (r.origin.clone(), r.key.clone());
        let held = view.versions.get(&slot).copied();
        let version = if local {
            held.map_or(0, |h| h.saturating_add(1)).max(now_ms())
        } else {
            match held {
                Some(_) if own => return None,
                Some(h) if h >= r.version => return None,
                _ => r.version,
            }
        };
        match key {
            RecordKey::Job(_) => {}
            RecordKey::Decision(_) => {
                let rec: DecisionRecord = rmp_serde::from_slice(&r.value).ok()?;
                view.decisions.insert(r.origin.clone(), rec.decision);
            }
            RecordKey::Stop(_) => {
                let rec: StopRecord = rmp_serde::from_slice(&r.value).ok()?;
                view.stops.insert(r.origin.clone(), rec);
            }
            RecordKey::Rerun(_) => {
                let rec: RerunRecord = rmp_serde::from_slice(&r.value).ok()?;
                view.reruns.insert(r.origin.clone(), rec);
            }
            RecordKey::Task {
                task,
                attempt,
                role,
                ..
            } => {
                if !view.has_run(&task, role, &r.origin) {
                    warn!(%job, origin = %r.origin, %task, %role, "state of a run the plan does not have ignored");
                    return None;
                }
                let rec: TaskStateRecord = rmp_serde::from_slice(&r.value).ok()?;
                let k = RunKey {
                    task,
                    attempt,
                    role,
                    party: r.origin.clone(),
                };
                view.runs.insert(k, rec);
            }
        }
        view.versions.insert(slot, version);
        view.revision += 1;
        Some(job)
    }

    /// A `job/<id>` record: a new view if the id is free (or already this initiator's) and
    /// this party takes part.
    fn apply_job(&mut self, r: &Record, id: &JobId) -> Option<JobId> {
        let rec: JobRecord = rmp_serde::from_slice(&r.value).ok()?;
        if &rec.job_id != id || rec.initiator != r.origin {
            return None;
        }
        if let Some(view) = self.views.get(id) {
            if view.job.initiator != r.origin {
                warn!(job = %id, initiator = %view.job.initiator, claimant = %r.origin, "a partner tried to take over a job id; ignored");
            }
            return Some(id.clone());
        }
        let me = self.deps.as_ref()?.me.clone();
        let mut plan = plan_of(&rec.spec);
        if let Ok(p) = &plan {
            if !p.runs_any(&me) {
                debug!(job = %id, "a job this party is not in was ignored");
                return None;
            }
            let addressed: BTreeSet<&PartyName> = r.audience.iter().collect();
            if p.participants().iter().collect::<BTreeSet<_>>() != addressed {
                plan = Err("the job record is not addressed to exactly the job's parties".into());
            }
        }
        if !self.claim(id, &r.origin) {
            return None;
        }
        let view = JobView::new(rec, plan, r.audience.clone());
        // A new view counts its revisions from the start again.
        self.over_at.remove(id);
        self.views.insert(id.clone(), view);
        // Records that arrived before the job record are in the store: read them off this
        // thread (by the job index) before the next tick.
        self.to_load.push(id.clone());
        Some(id.clone())
    }

    /// Binds `job` to `initiator` for good, unless another initiator holds it already. The
    /// claim is stored (and flushed) on a blocking thread.
    fn claim(&mut self, job: &JobId, initiator: &PartyName) -> bool {
        match self.claimed.get(job) {
            Some(held) if held == initiator => true,
            Some(held) => {
                warn!(%job, initiator = %held, claimant = %initiator, "a partner tried to take over a job id; ignored");
                false
            }
            None => {
                self.claimed.insert(job.clone(), initiator.clone());
                if let Some(claims) = self.claims.clone() {
                    let (job, claim) = (
                        job.clone(),
                        JobClaim {
                            initiator: initiator.clone(),
                        },
                    );
                    tokio::task::spawn_blocking(move || {
                        if let Err(e) = claims
                            .put(job.as_str(), &claim)
                            .and_then(|()| claims.flush())
                        {
                            warn!(%job, error = %e, "cannot store a job claim");
                        }
                    });
                }
                true
            }
        }
    }

    /// Writes one of our records: into our view at once (so the next decision sees it), then
    /// signed, stored and gossiped by the network.
    /// The record goes to the job's participants only.
    fn write(&mut self, ctx: &mut Context<Self>, job: &JobId, key: String, value: Vec<u8>) {
        self.write_lazy(ctx, job, key, value, false);
    }

    /// [`Self::write`], sent only after a moment if `lazy` (and not at all if a newer
    /// version follows by then). Partners get it by way of the job's initiator, its hub.
    fn write_lazy(
        &mut self,
        ctx: &mut Context<Self>,
        job: &JobId,
        key: String,
        value: Vec<u8>,
        lazy: bool,
    ) {
        let Some(view) = self.views.get(job) else {
            return self.write_to(ctx, key, value, Audience::default(), None);
        };
        let audience = view.audience();
        let route = Route {
            hub: view.job.initiator.clone(),
            lazy,
        };
        self.write_to(ctx, key, value, audience, Some(route));
    }

    fn write_to(
        &mut self,
        ctx: &mut Context<Self>,
        key: String,
        value: Vec<u8>,
        audience: Audience,
        route: Option<Route>,
    ) {
        let Some(deps) = &self.deps else { return };
        let me = deps.me.clone();
        let net = deps.net.clone();
        let local = Record {
            origin: me,
            key: key.clone(),
            version: 0,
            written_at_ms: now_ms(),
            value: value.clone(),
            audience: audience.clone(),
            signature: Vec::new(),
        };
        self.fold(&local, true);
        ctx.spawn(
            async move {
                let written = match route {
                    Some(Route { hub, lazy }) => {
                        net.put_job_record(key.clone(), value, audience, hub, lazy)
                            .await
                    }
                    None => net.put_record(key.clone(), value, audience).await,
                };
                if let Err(e) = written {
                    warn!(%key, error = %e, "cannot write a record");
                }
            }
            .into_actor(self),
        );
    }

    /// A run of ours that a previous process left running: it failed.
    fn fail_cut_short(&mut self, ctx: &mut Context<Self>, job: &JobId, key: &RunKey) {
        warn!(%job, task = %key.task, attempt = key.attempt, "run was cut short by a restart");
        let why = "consortd restarted while the run was in progress".to_owned();
        self.write_run(ctx, job, key, RunState::Failed, Some(why));
        if let Some(deps) = &self.deps {
            deps.executor.do_send(crate::executor::CleanUp {
                job: job.clone(),
                key: key.clone(),
            });
        }
    }

    fn write_run(
        &mut self,
        ctx: &mut Context<Self>,
        job: &JobId,
        key: &RunKey,
        state: RunState,
        error: Option<String>,
    ) {
        let started = self
            .views
            .get(job)
            .and_then(|v| v.runs.get(key))
            .and_then(|r| r.started_at_ms)
            .or_else(|| (state == RunState::Running).then(now_ms));
        let rec = TaskStateRecord {
            v: RECORD_VERSION,
            state,
            started_at_ms: started,
            ended_at_ms: state.is_final().then(now_ms),
            error,
        };
        // A run's start need not reach partners at once: if the run ends soon, its end
        // replaces it unsent.
        self.write_lazy(
            ctx,
            job,
            task_key(job, &key.task, key.attempt, key.role),
            encode(&rec),
            state == RunState::Running,
        );
    }

    fn decide(&self, view: &JobView, models: &DataChecks) -> Decision {
        match &view.plan {
            Ok(plan) => self.decide_plan(view.job.initiator.as_str(), plan, models),
            Err(e) => Decision::Rejected {
                reason: format!("invalid job: {e}"),
            },
        }
    }

    /// This party's answer to `plan` proposed by `initiator`, by its policy.
    fn decide_plan(&self, initiator: &str, plan: &JobPlan, models: &DataChecks) -> Decision {
        let Some(deps) = &self.deps else {
            return Decision::Rejected {
                reason: "not configured".into(),
            };
        };
        let policy = &deps.policy;
        if initiator != deps.me.as_str()
            && !policy
                .accept_from
                .iter()
                .any(|p| p == "*" || p == initiator)
        {
            return Decision::Rejected {
                reason: format!("{} does not accept jobs from {initiator}", deps.me),
            };
        }
        for task in &plan.tasks {
            if !task.runs.iter().any(|r| r.party == deps.me) {
                continue;
            }
            if let Some(op) = task.component.strip_prefix("script:") {
                if !policy.operators.iter().any(|o| o == op) {
                    return Decision::Rejected {
                        reason: format!(
                            "{} has no script operator '{op}' registered (task {})",
                            deps.me, task.name
                        ),
                    };
                }
            } else if !policy.components.is_empty() && !policy.components.contains(&task.component)
            {
                return Decision::Rejected {
                    reason: format!(
                        "{} does not allow component {} (task {})",
                        deps.me, task.component, task.name
                    ),
                };
            }
        }
        if let Err(reason) = self.check_data(plan, models) {
            return Decision::Rejected { reason };
        }
        if policy.manual_approval && initiator != deps.me.as_str() {
            Decision::AwaitingApproval
        } else {
            Decision::Accepted
        }
    }

    /// The tables and models a job would use here exist, and the policy lets the job's other
    /// parties take part in a job that reads these tables. `models`: the ModelManager's
    /// answers about the job's model inputs.
    fn check_data(&self, plan: &JobPlan, models: &DataChecks) -> Result<(), String> {
        let Some(deps) = &self.deps else {
            return Ok(());
        };
        let me = &deps.me;
        let others: Vec<PartyName> = plan
            .participants()
            .into_iter()
            .filter(|p| p != me)
            .collect();
        for task in &plan.tasks {
            for run in task.runs.iter().filter(|r| &r.party == me) {
                if task.component == "reader" {
                    let Some(table) = run.params.get("table").and_then(|v| v.as_str()) else {
                        continue;
                    };
                    match models.tables.get(table) {
                        Some(Ok(true)) => {}
                        Some(Ok(false)) => {
                            return Err(format!(
                                "{me} has no table '{table}' (task {})",
                                task.name
                            ));
                        }
                        Some(Err(e)) => {
                            return Err(format!("{me} cannot read table '{table}': {e}"));
                        }
                        None => return Err(format!("{me}: table '{table}' not checked")),
                    }
                    let refused =
                        crate::executor::tables_refused(&deps.policy.tables, table, others.iter());
                    if !refused.is_empty() {
                        return Err(format!(
                            "{me} does not let table '{table}' be used in jobs with {} (policy.tables)",
                            refused.join(", ")
                        ));
                    }
                }
                if task.model.is_some() {
                    models
                        .models
                        .get(&(task.name.clone(), run.role))
                        .cloned()
                        .unwrap_or_else(|| Err(format!("{me}: model input not checked")))?;
                }
            }
        }
        Ok(())
    }

    /// Asks the ModelManager to store this party's parts of a successful job's models (once;
    /// idempotent).
    fn commit_models(&mut self, job: &JobId) {
        let Some(deps) = &self.deps else { return };
        let Some(view) = self.views.get(job) else {
            return;
        };
        let Ok(plan) = &view.plan else { return };
        if !self.committed.insert(job.clone()) {
            return;
        }
        let mut runs = Vec::new();
        for task in &plan.tasks {
            for run in task.runs.iter().filter(|r| r.party == deps.me) {
                let Ok(path) = output_path(
                    &deps.work_dir,
                    job,
                    &task.name,
                    view.attempt_of(&task.name),
                    run.role,
                    "model",
                ) else {
                    continue;
                };
                runs.push((task.name.clone(), task.component.clone(), run.clone(), path));
            }
        }
        let parties: Vec<String> = plan
            .parties
            .iter()
            .flat_map(|(role, ps)| ps.iter().map(move |p| format!("{role}:{p}")))
            .collect();
        let target = plan.conf.model.clone();
        deps.commit_models.do_send(CommitJob {
            job: job.clone(),
            name: plan.name.clone(),
            parties,
            runs,
            branch: target
                .as_ref()
                .and_then(|t| t.branch.clone())
                .unwrap_or_else(|| "main".to_owned()),
            message: target.and_then(|t| t.message),
            marker: deps.work_dir.join(job.as_str()).join(".models-stored"),
        });
    }

    /// The ModelManager's answers about `job`'s model inputs, once they are in. The first call
    /// asks (and answers `None`); the answer arrives as another tick.
    fn model_checks(&mut self, ctx: &mut Context<Self>, job: &JobId) -> Option<DataChecks> {
        let deps = self.deps.as_ref()?;
        let wanted = match self.views.get(job).map(|v| &v.plan) {
            Some(Ok(plan)) => model_checks::wanted(plan, &deps.me),
            _ => Default::default(),
        };
        if wanted.is_empty() {
            return Some(DataChecks::default());
        }
        match self.model_checks.get(job) {
            Some(Some(_)) => return self.model_checks.remove(job).flatten(),
            Some(None) => return None,
            None => {}
        }
        self.model_checks.insert(job.clone(), None);
        let (models, tables, job) = (deps.model_inputs.clone(), deps.tables.clone(), job.clone());
        ctx.spawn(
            model_checks::check(models, tables, wanted)
                .into_actor(self)
                .map(move |checks, act, ctx| {
                    act.model_checks.insert(job.clone(), Some(checks));
                    act.tick(ctx, &job);
                }),
        );
        None
    }

    /// Decides what this party does next for `job`, then wakes whoever watches it.
    fn tick(&mut self, ctx: &mut Context<Self>, job: &JobId) {
        self.step(ctx, job);
        if !self.watchers.is_empty() {
            let views = &self.views;
            self.watchers.retain_mut(|(j, wanted, tx)| {
                !tx.is_closed() && (j != job || views.get(j).is_some_and(|v| !wanted.met(v)))
            });
            // Dropping a watcher's sender is what wakes it.
        }
    }

    fn step(&mut self, ctx: &mut Context<Self>, job: &JobId) {
        self.load_new(ctx);
        let Some(deps) = &self.deps else { return };
        let me = deps.me.clone();
        let Some(view) = self.views.get(job) else {
            return;
        };
        // A job this build cannot validate is refused if it is addressed to us.
        if !view.takes_part(&me) {
            return;
        }
        if !view.decisions.contains_key(&me) {
            let Some(models) = self.model_checks(ctx, job) else {
                return;
            };
            let Some(view) = self.views.get(job) else {
                return;
            };
            let decision = self.decide(view, &models);
            info!(%job, ?decision, "proposal decided");
            let rec = DecisionRecord {
                v: RECORD_VERSION,
                decision,
            };
            self.write(ctx, job, decision_key(job), encode(&rec));
        }
        let Some(view) = self.views.get(job) else {
            return;
        };
        // Cancel runs that no longer matter.
        let moot: Vec<RunKey> = self
            .running
            .iter()
            .filter(|(j, k)| j == job && view.is_moot(k))
            .map(|(_, k)| k.clone())
            .collect();
        for key in moot {
            if let Some(deps) = &self.deps {
                deps.executor.do_send(CancelRun {
                    job: job.clone(),
                    key,
                });
            }
        }
        let Some(view) = self.views.get(job) else {
            return;
        };
        let starts = view.runnable(&me);
        let succeeded = view.status() == derive::JobStatus::Success;
        let finished = view.status().is_final();
        for key in starts {
            self.start(ctx, job, key);
        }
        if succeeded && !self.committed.contains(job) {
            self.commit_models(job);
        }
        if finished
            && self.cleaned.insert(job.clone())
            && let Some(deps) = &self.deps
        {
            deps.executor
                .do_send(crate::executor::CleanUpJob(job.clone()));
        }
    }

    fn start(&mut self, ctx: &mut Context<Self>, job: &JobId, key: RunKey) {
        let Some(deps) = &self.deps else { return };
        let Some(view) = self.views.get(job) else {
            return;
        };
        let Ok(plan) = &view.plan else { return };
        let Some(task) = plan.tasks.iter().find(|t| t.name == key.task) else {
            return;
        };
        let Some(run) = task
            .runs
            .iter()
            .find(|r| r.role == key.role && r.party == key.party)
        else {
            return;
        };
        let endpoints = task
            .runs
            .iter()
            .map(|r| consort_components::Endpoint {
                role: r.role,
                party: r.party.clone(),
            })
            .collect();
        // Inputs: the upstream output written at this party, by the same role if it ran it.
        let mut inputs = BTreeMap::new();
        for (name, (up, output)) in &task.inputs {
            let Some(up_task) = plan.tasks.iter().find(|t| &t.name == up) else {
                continue;
            };
            let roles: Vec<_> = up_task
                .runs
                .iter()
                .filter(|r| r.party == deps.me)
                .map(|r| r.role)
                .collect();
            let role = if roles.contains(&key.role) {
                Some(key.role)
            } else {
                roles.first().copied()
            };
            if let Some(role) = role {
                let attempt = view.attempt_of(up);
                if let Ok(path) = output_path(&deps.work_dir, job, up, attempt, role, output) {
                    inputs.insert(name.clone(), path);
                }
            }
        }
        let model = task.model.clone().map(|model| ResolveInput {
            model,
            task: task.name.clone(),
            role: key.role,
            participants: plan.participants().into_iter().collect(),
        });
        let msg = StartRun {
            job: job.clone(),
            key: key.clone(),
            component: task.component.clone(),
            params: run.params.clone(),
            endpoints,
            participants: plan.participants().into_iter().collect(),
            inputs,
            timeout: Duration::from_secs(plan.conf.task_timeout_s),
            reply_to: ctx.address().recipient(),
        };
        let executor = deps.executor.clone();
        let models = deps.model_inputs.clone();
        self.running.insert((job.clone(), key.clone()));
        self.write_run(ctx, job, &key, RunState::Running, None);
        let Some(model) = model else {
            executor.do_send(msg);
            return;
        };
        // The model's artifact first (the ModelManager reads its store off this thread).
        let job = job.clone();
        ctx.spawn(
            async move { model_checks::resolve(&models, model).await }
                .into_actor(self)
                .map(move |path, act, _ctx| {
                    let mut msg = msg;
                    match path {
                        Ok(path) => {
                            msg.inputs.insert("model".to_owned(), path);
                        }
                        Err(e) => warn!(%job, task = %key.task, error = %e, "model input missing"),
                    }
                    executor.do_send(msg);
                    // Stopped while the model was looked up: the executor knows the run now.
                    if act.views.get(&job).is_some_and(|v| v.is_moot(&key)) {
                        executor.do_send(CancelRun { job, key });
                    }
                }),
        );
    }
}

/// Counts the records in this actor's trees.
impl Handler<StoreStats> for Scheduler {
    type Result = <StoreStats as actix::Message>::Result;

    fn handle(&mut self, _msg: StoreStats, _ctx: &mut Context<Self>) -> Self::Result {
        stats::count("scheduler", &self.store, Self::TREES)
    }
}

/// Replicated records changed (from the network; those of one message together).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordsChanged(pub Vec<Record>);

/// Folds the records in, then acts once on each job they concern.
impl Handler<RecordsChanged> for Scheduler {
    type Result = ();

    fn handle(&mut self, msg: RecordsChanged, ctx: &mut Context<Self>) {
        let mut jobs = BTreeSet::new();
        for r in &msg.0 {
            jobs.extend(self.record_changed(ctx, r));
        }
        for job in jobs {
            self.tick(ctx, &job);
        }
    }
}

impl Scheduler {
    /// Folds one record from the network in; the job it changed.
    fn record_changed(&mut self, ctx: &mut Context<Self>, r: &Record) -> Option<JobId> {
        if !self.found_early.is_empty() {
            self.found_early
                .remove(&(r.origin.clone(), r.key.clone(), r.version));
        }
        let job = self.apply(r)?;
        // A partner handed back one of our own runs as running, which this process is not
        // running: it was cut short by a crash before it reached our disk.
        if let Some(deps) = &self.deps
            && r.origin == deps.me
            && let Some(RecordKey::Task {
                task,
                attempt,
                role,
                ..
            }) = RecordKey::parse(&r.key)
        {
            let key = RunKey {
                task,
                attempt,
                role,
                party: deps.me.clone(),
            };
            let running = self
                .views
                .get(&job)
                .and_then(|v| v.runs.get(&key))
                .is_some_and(|r| r.state == RunState::Running);
            if running && !self.running.contains(&(job.clone(), key.clone())) {
                self.fail_cut_short(ctx, &job, &key);
            }
        }
        Some(job)
    }
}

/// Records the end of one of our runs.
impl Handler<RunFinished> for Scheduler {
    type Result = ();

    fn handle(&mut self, msg: RunFinished, ctx: &mut Context<Self>) {
        self.running.remove(&(msg.job.clone(), msg.key.clone()));
        let (state, error) = match msg.end {
            RunEnd::Success => (RunState::Success, None),
            RunEnd::Failed(e) => (RunState::Failed, Some(e)),
            RunEnd::Canceled => (RunState::Canceled, None),
        };
        self.write_run(ctx, &msg.job, &msg.key, state, error);
        self.tick(ctx, &msg.job);
    }
}

/// Errors of job commands, for the control socket.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    /// The job file is invalid (one entry per problem).
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// No such job here.
    #[error("no job '{0}' here")]
    NotFound(String),
    /// The command does not apply in the job's state.
    #[error("{0}")]
    Conflict(String),
    /// The scheduler is not configured.
    #[error("the scheduler is not running")]
    Unavailable,
}

/// Submit a job; this party becomes its initiator.
#[derive(Message)]
#[rtype(result = "Result<JobId, JobError>")]
pub struct Submit {
    /// Job file text.
    pub spec: String,
    /// Random bits for the id.
    pub random: u32,
}

/// Checks the job against the partner list and this party's own policy, then writes it.
impl Handler<Submit> for Scheduler {
    type Result = ResponseActFuture<Self, Result<JobId, JobError>>;

    fn handle(&mut self, msg: Submit, _ctx: &mut Context<Self>) -> Self::Result {
        let Some(deps) = &self.deps else {
            return Box::pin(actix::fut::ready(Err(JobError::Unavailable)));
        };
        let (net, models, tables) = (
            deps.net.clone(),
            deps.model_inputs.clone(),
            deps.tables.clone(),
        );
        // The job's model inputs here, for this party's own policy (a job file that does not
        // validate is refused by `submit` before they matter).
        let wanted = JobSpec::parse(&msg.spec)
            .ok()
            .and_then(|spec| validate(&spec, &consort_components::schema).ok())
            .map(|plan| model_checks::wanted(&plan, &deps.me))
            .unwrap_or_default();
        Box::pin(
            async move {
                let peers = net.peers().await;
                (peers, model_checks::check(models, tables, wanted).await)
            }
            .into_actor(self)
            .map(move |(peers, checks), act, ctx| {
                let partners: BTreeSet<PartyName> = peers
                    .map_err(|e| JobError::Conflict(format!("cannot read the partners: {e}")))?
                    .into_iter()
                    .map(|p| p.party)
                    .collect();
                act.submit(ctx, msg, &partners, &checks)
            }),
        )
    }
}

impl Scheduler {
    fn submit(
        &mut self,
        ctx: &mut Context<Self>,
        msg: Submit,
        partners: &BTreeSet<PartyName>,
        models: &DataChecks,
    ) -> Result<JobId, JobError> {
        let me = self.deps.as_ref().ok_or(JobError::Unavailable)?.me.clone();
        let spec = JobSpec::parse(&msg.spec).map_err(|e| JobError::Invalid(vec![e.0]))?;
        let plan = validate(&spec, &consort_components::schema)
            .map_err(|errs| JobError::Invalid(errs.iter().map(|e| e.to_string()).collect()))?;
        if !plan.runs_any(&me) {
            return Err(JobError::Invalid(vec![format!(
                "parties: the initiator ({me}) must take part in the job"
            )]));
        }
        let strangers: Vec<String> = plan
            .participants()
            .into_iter()
            .filter(|p| *p != me && !partners.contains(p))
            .map(|p| p.to_string())
            .collect();
        if !strangers.is_empty() {
            return Err(JobError::Invalid(vec![format!(
                "parties: {} {} not a partner of {me} (see `consort partner add`)",
                strangers.join(", "),
                if strangers.len() == 1 { "is" } else { "are" }
            )]));
        }
        if let Decision::Rejected { reason } = self.decide_plan(me.as_str(), &plan, models) {
            return Err(JobError::Invalid(vec![format!(
                "this party's own policy refuses the job: {reason}"
            )]));
        }
        let job_id = JobId::mint(now_ms(), msg.random);
        let rec = JobRecord {
            v: RECORD_VERSION,
            job_id: job_id.clone(),
            initiator: me,
            spec: msg.spec,
            submitted_at_ms: now_ms(),
        };
        info!(job = %job_id, name = %plan.name, "job submitted");
        let audience = plan.participants().into_iter().collect();
        // The initiator is its own job's hub: this goes to every party directly.
        self.write_to(ctx, job_key(&job_id), encode(&rec), audience, None);
        self.tick(ctx, &job_id);
        Ok(job_id)
    }
}

/// Cancel a job everywhere.
#[derive(Message)]
#[rtype(result = "Result<(), JobError>")]
pub struct Stop(pub String);

impl Handler<Stop> for Scheduler {
    type Result = Result<(), JobError>;

    fn handle(&mut self, msg: Stop, ctx: &mut Context<Self>) -> Self::Result {
        let me = self.deps.as_ref().ok_or(JobError::Unavailable)?.me.clone();
        let job = JobId::parse(&msg.0).ok_or_else(|| JobError::NotFound(msg.0.clone()))?;
        let view = self
            .views
            .get(&job)
            .ok_or_else(|| JobError::NotFound(msg.0.clone()))?;
        if view.status().is_final() {
            return Err(JobError::Conflict(format!(
                "job {job} is already {}",
                view.status().as_str()
            )));
        }
        let rec = StopRecord {
            v: RECORD_VERSION,
            reason: format!("stopped by {me}"),
            epoch: view.epoch(),
        };
        self.write(ctx, &job, stop_key(&job), encode(&rec));
        self.tick(ctx, &job);
        Ok(())
    }
}

/// Answer a proposal held for manual approval.
#[derive(Message)]
#[rtype(result = "Result<(), JobError>")]
pub struct Approve {
    /// Job id.
    pub job: String,
    /// `None` approves; `Some(reason)` rejects.
    pub reject: Option<String>,
}

impl Handler<Approve> for Scheduler {
    type Result = Result<(), JobError>;

    fn handle(&mut self, msg: Approve, ctx: &mut Context<Self>) -> Self::Result {
        let me = self.deps.as_ref().ok_or(JobError::Unavailable)?.me.clone();
        let job = JobId::parse(&msg.job).ok_or_else(|| JobError::NotFound(msg.job.clone()))?;
        let view = self
            .views
            .get(&job)
            .ok_or_else(|| JobError::NotFound(msg.job.clone()))?;
        if view.decisions.get(&me) != Some(&Decision::AwaitingApproval) {
            return Err(JobError::Conflict(format!(
                "job {job} is not waiting for this party's approval"
            )));
        }
        let decision = match msg.reject {
            None => Decision::Accepted,
            Some(reason) => Decision::Rejected {
                reason: format!("{me}: {reason}"),
            },
        };
        self.write(
            ctx,
            &job,
            decision_key(&job),
            encode(&DecisionRecord {
                v: RECORD_VERSION,
                decision,
            }),
        );
        self.tick(ctx, &job);
        Ok(())
    }
}

/// Run a failed or canceled job again, reusing the outputs of tasks that succeeded.
#[derive(Message)]
#[rtype(result = "Result<(), JobError>")]
pub struct Rerun {
    /// Job id.
    pub job: String,
    /// Rerun this task and everything downstream (default: every task that did not succeed).
    pub from: Option<String>,
}

impl Handler<Rerun> for Scheduler {
    type Result = Result<(), JobError>;

    fn handle(&mut self, msg: Rerun, ctx: &mut Context<Self>) -> Self::Result {
        let job = JobId::parse(&msg.job).ok_or_else(|| JobError::NotFound(msg.job.clone()))?;
        let view = self
            .views
            .get(&job)
            .ok_or_else(|| JobError::NotFound(msg.job.clone()))?;
        let status = view.status();
        if !matches!(
            status,
            derive::JobStatus::Failed | derive::JobStatus::Canceled
        ) {
            return Err(JobError::Conflict(format!(
                "job {job} is {}; only failed or canceled jobs can be rerun",
                status.as_str()
            )));
        }
        let plan = view
            .plan
            .as_ref()
            .map_err(|e| JobError::Conflict(e.clone()))?;
        let names: Vec<String> = match &msg.from {
            Some(from) => {
                if !plan.tasks.iter().any(|t| &t.name == from) {
                    return Err(JobError::Invalid(vec![format!(
                        "--from: no task '{from}' in job {job}"
                    )]));
                }
                view.downstream(from)
            }
            None => plan
                .tasks
                .iter()
                .filter(|t| view.outcome(&t.name) != derive::TaskOutcome::Success)
                .map(|t| t.name.clone())
                .collect(),
        };
        let tasks = names
            .iter()
            .map(|t| (t.clone(), view.last_attempt(t) + 1))
            .collect();
        let rec = RerunRecord {
            v: RECORD_VERSION,
            epoch: view.epoch() + 1,
            tasks,
        };
        info!(%job, tasks = names.len(), epoch = rec.epoch, "job rerun");
        self.write(ctx, &job, rerun_key(&job), encode(&rec));
        self.tick(ctx, &job);
        Ok(())
    }
}

/// Show one job.
#[derive(Message)]
#[rtype(result = "Result<JobInfo, JobError>")]
pub struct Show(pub String);

/// Shows what is known: a run last reported running by a partner that is unreachable now
/// shows `unreachable since T`, not a state nobody can vouch for.
impl Handler<Show> for Scheduler {
    type Result = ResponseActFuture<Self, Result<JobInfo, JobError>>;

    fn handle(&mut self, msg: Show, _ctx: &mut Context<Self>) -> Self::Result {
        self.show(msg.0)
    }
}

/// The job once its view differs from `revision`, or as it is after `timeout`.
#[derive(Message)]
#[rtype(result = "Result<JobInfo, JobError>")]
pub struct Watch {
    /// Job id.
    pub job: String,
    /// The revision the asker saw.
    pub revision: u64,
    /// Wait for the job's end rather than for any change.
    pub until_end: bool,
    /// How long to wait for a change.
    pub timeout: Duration,
}

/// What a `job watch` asker waits for.
#[derive(Debug, Clone, Copy)]
struct Wanted {
    /// The revision it saw.
    revision: u64,
    /// Only the job's end.
    until_end: bool,
}

impl Wanted {
    fn met(&self, view: &JobView) -> bool {
        if self.until_end {
            view.status().is_final()
        } else {
            view.revision != self.revision
        }
    }
}

/// Most `job watch` askers waiting at once; more are answered at once.
const MAX_WATCHERS: usize = 1024;

impl Handler<Watch> for Scheduler {
    type Result = ResponseActFuture<Self, Result<JobInfo, JobError>>;

    fn handle(&mut self, msg: Watch, _ctx: &mut Context<Self>) -> Self::Result {
        let wanted = Wanted {
            revision: msg.revision,
            until_end: msg.until_end,
        };
        let unchanged = JobId::parse(&msg.job)
            .filter(|id| self.views.get(id).is_some_and(|v| !wanted.met(v)))
            .filter(|_| self.watchers.len() < MAX_WATCHERS);
        let Some(id) = unchanged else {
            return self.show(msg.job);
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.watchers.retain(|(_, _, tx)| !tx.is_closed());
        self.watchers.push((id, wanted, tx));
        let job = msg.job;
        Box::pin(
            async move {
                let _ = tokio::time::timeout(msg.timeout, rx).await;
            }
            .into_actor(self)
            .then(move |(), act, _ctx| act.show(job)),
        )
    }
}

impl Scheduler {
    /// The job's info, with partners' reachability asked of the network first.
    fn show(&self, job: String) -> ResponseActFuture<Self, Result<JobInfo, JobError>> {
        let net = self.deps.as_ref().map(|d| d.net.clone());
        Box::pin(
            async move {
                match net {
                    Some(net) => net.away().await.unwrap_or_default(),
                    None => BTreeMap::new(),
                }
            }
            .into_actor(self)
            .map(move |away, act, _ctx| {
                let id = JobId::parse(&job).ok_or_else(|| JobError::NotFound(job.clone()))?;
                let view = act
                    .views
                    .get(&id)
                    .ok_or_else(|| JobError::NotFound(job.clone()))?;
                Ok(view::job_info_with(view, true, &away))
            }),
        )
    }
}

/// List every job, newest first.
#[derive(Message)]
#[rtype(result = "Vec<JobInfo>")]
pub struct List;

impl Handler<List> for Scheduler {
    type Result = actix::MessageResult<List>;

    fn handle(&mut self, _msg: List, _ctx: &mut Context<Self>) -> Self::Result {
        actix::MessageResult(
            self.views
                .values()
                .rev()
                .map(|v| view::job_info(v, false))
                .collect(),
        )
    }
}

/// How long this party's finished runs took: (component, seconds), one per task of every job
/// held (a party with two roles counts its least advanced run), for `/metrics`.
#[derive(Message)]
#[rtype(result = "Vec<(String, f64)>")]
pub struct TaskDurations;

impl Handler<TaskDurations> for Scheduler {
    type Result = actix::MessageResult<TaskDurations>;

    fn handle(&mut self, _msg: TaskDurations, _ctx: &mut Context<Self>) -> Self::Result {
        let Some(me) = self.deps.as_ref().map(|d| d.me.to_string()) else {
            return actix::MessageResult(Vec::new());
        };
        let mut out = Vec::new();
        for v in self.views.values() {
            for t in view::job_info(v, true).tasks {
                if let Some(run) = t.parties.get(&me)
                    && matches!(run.state.as_str(), "success" | "failed")
                    && let Some(s) = run.elapsed_s
                {
                    out.push((t.component.clone(), s));
                }
            }
        }
        actix::MessageResult(out)
    }
}

/// May `from` (as `from_role`) send data-channel messages to this party's `to_role` run of
/// `task` (attempt `attempt`) of `job`? Only for a job this party accepted and that is still
/// going, for a run the plan gives both ends, at the task's current or next attempt.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct AdmitChannel {
    /// Job.
    pub job: JobId,
    /// Task.
    pub task: String,
    /// Attempt.
    pub attempt: u32,
    /// Sender (already bound to its PeerId by the network).
    pub from: PartyName,
    /// Sender's role.
    pub from_role: Role,
    /// Receiving role here.
    pub to_role: Role,
}

impl Handler<AdmitChannel> for Scheduler {
    type Result = Result<(), String>;

    fn handle(&mut self, msg: AdmitChannel, _ctx: &mut Context<Self>) -> Self::Result {
        let me = self
            .deps
            .as_ref()
            .ok_or("the scheduler is not running")?
            .me
            .clone();
        let job = &msg.job;
        let view = self
            .views
            .get(job)
            .ok_or_else(|| format!("no job {job} with {} here", msg.from))?;
        if view.status().is_final() {
            return Err(format!("job {job} is {}", view.status().as_str()));
        }
        if view.decisions.get(&me) != Some(&Decision::Accepted) {
            return Err(format!("{me} has not accepted job {job}"));
        }
        if !view.has_run(&msg.task, msg.from_role, &msg.from) {
            return Err(format!(
                "{} does not run task '{}' as {} in job {job}",
                msg.from, msg.task, msg.from_role
            ));
        }
        if !view.has_run(&msg.task, msg.to_role, &me) {
            return Err(format!(
                "{me} does not run task '{}' as {} in job {job}",
                msg.task, msg.to_role
            ));
        }
        let current = view.attempt_of(&msg.task).max(1);
        if msg.attempt < current || msg.attempt > current + 1 {
            return Err(format!(
                "task '{}' of job {job} is at attempt {current}, not {}",
                msg.task, msg.attempt
            ));
        }
        Ok(())
    }
}

/// Does `party` take part in `job` here (job-scoped requests from partners: logs, ...)?
#[derive(Message)]
#[rtype(result = "bool")]
pub struct TakesPart {
    /// Job.
    pub job: JobId,
    /// The asking party.
    pub party: PartyName,
}

impl Handler<TakesPart> for Scheduler {
    type Result = bool;

    fn handle(&mut self, msg: TakesPart, _ctx: &mut Context<Self>) -> bool {
        self.views
            .get(&msg.job)
            .is_some_and(|v| v.takes_part(&msg.party))
    }
}

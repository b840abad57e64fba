//! Job state derived from replicated records. Pure: every party computes the same answer from
//! the same records, which is what makes scheduling work without a coordinator.

use std::collections::BTreeMap;

use consort_protocol::PartyName;
use consort_protocol::audience::Audience;
use consort_protocol::job::{JobPlan, PlannedTask, Role};
use consort_protocol::jobs::{
    Decision, JobRecord, RerunRecord, RunState, StopRecord, TaskStateRecord,
};
use serde::{Deserialize, Serialize};

/// Identifies one run: a task attempt at one party in one role.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunKey {
    /// Task name.
    pub task: String,
    /// Attempt, from 1.
    pub attempt: u32,
    /// Role.
    pub role: Role,
    /// Party.
    pub party: PartyName,
}

/// Overall state of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for every participant's decision.
    Pending,
    /// Accepted everywhere; tasks run.
    Running,
    /// Every task succeeded at every party.
    Success,
    /// A task failed after its retries.
    Failed,
    /// Stopped by `consort job stop`.
    Canceled,
    /// A participant refused it.
    Rejected,
}

impl JobStatus {
    /// Whether the job is over.
    pub fn is_final(self) -> bool {
        !matches!(self, JobStatus::Pending | JobStatus::Running)
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Success => "success",
            JobStatus::Failed => "failed",
            JobStatus::Canceled => "canceled",
            JobStatus::Rejected => "rejected",
        }
    }
}

/// How a task stands at its current attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    /// Not finished (or being retried).
    InProgress,
    /// Every run succeeded.
    Success,
    /// A run failed and no retry is left.
    Failed {
        /// Who failed.
        party: PartyName,
        /// Why.
        error: String,
    },
}

/// Everything known about one job.
#[derive(Debug, Clone)]
pub struct JobView {
    /// The initiator's record.
    pub job: JobRecord,
    /// The plan, as this party validated the spec (an error if it could not).
    pub plan: Result<JobPlan, String>,
    /// Each participant's decision.
    pub decisions: BTreeMap<PartyName, Decision>,
    /// Every run state seen.
    pub runs: BTreeMap<RunKey, TaskStateRecord>,
    /// Stop requests, by party.
    pub stops: BTreeMap<PartyName, StopRecord>,
    /// Rerun requests, by party (the highest epoch counts).
    pub reruns: BTreeMap<PartyName, RerunRecord>,
    /// The parties records of this job go to: the plan's participants, or the parties the
    /// initiator addressed the job record to when the plan is invalid.
    pub audience: Audience,
    /// The version of every record folded in, by origin and key: a record only replaces an
    /// older one, so the order records arrive in (events, loads, resyncs) does not matter.
    pub versions: BTreeMap<(PartyName, String), u64>,
    /// Counts the records folded in: changes whenever the view does.
    pub revision: u64,
}

impl JobView {
    /// A view with only the job record, which was addressed to `addressed`.
    pub fn new(job: JobRecord, plan: Result<JobPlan, String>, addressed: Audience) -> Self {
        let audience = match &plan {
            Ok(plan) => plan.participants().into_iter().collect(),
            Err(_) => addressed,
        };
        Self {
            job,
            plan,
            decisions: BTreeMap::new(),
            runs: BTreeMap::new(),
            stops: BTreeMap::new(),
            reruns: BTreeMap::new(),
            audience,
            versions: BTreeMap::new(),
            revision: 1,
        }
    }

    /// Whether `party` takes part in the job: a participant of the plan or, for a job this
    /// party could not validate, a party its record was addressed to.
    pub fn takes_part(&self, party: &PartyName) -> bool {
        match &self.plan {
            Ok(plan) => plan.runs_any(party),
            Err(_) => self.audience.contains(party),
        }
    }

    /// Whether the plan has `party` run `task` as `role`.
    pub fn has_run(&self, task: &str, role: Role, party: &PartyName) -> bool {
        self.task(task)
            .is_some_and(|t| t.runs.iter().any(|r| r.role == role && &r.party == party))
    }

    /// The parties records of this job go to: the participants (the record's audience when
    /// the plan is invalid).
    pub fn audience(&self) -> Audience {
        self.audience.clone()
    }

    /// The rerun in force: the highest epoch (ties: the first party by name).
    pub fn rerun(&self) -> Option<&RerunRecord> {
        let mut best: Option<&RerunRecord> = None;
        for r in self.reruns.values() {
            if best.is_none_or(|b| r.epoch > b.epoch) {
                best = Some(r);
            }
        }
        best
    }

    /// How many reruns the job has had.
    pub fn epoch(&self) -> u32 {
        self.rerun().map(|r| r.epoch).unwrap_or(0)
    }

    /// The first attempt that counts for `task` (later than 1 after a rerun of it).
    pub fn base_attempt(&self, task: &str) -> u32 {
        self.rerun()
            .and_then(|r| r.tasks.get(task).copied())
            .unwrap_or(1)
    }

    /// Stop requests of the current epoch.
    pub fn active_stop(&self) -> Option<&StopRecord> {
        let epoch = self.epoch();
        self.stops.values().find(|s| s.epoch >= epoch)
    }

    fn task(&self, name: &str) -> Option<&PlannedTask> {
        self.plan
            .as_ref()
            .ok()?
            .tasks
            .iter()
            .find(|t| t.name == name)
    }

    fn retries(&self) -> u32 {
        self.plan.as_ref().map(|p| p.conf.auto_retries).unwrap_or(0)
    }

    /// The recorded runs of `task` (keys are ordered by task first, and attempts start at
    /// 1: attempt 0 sorts before all of them).
    fn runs_of<'a>(
        &'a self,
        task: &'a str,
    ) -> impl Iterator<Item = (&'a RunKey, &'a TaskStateRecord)> + 'a {
        let from = RunKey {
            task: task.to_owned(),
            attempt: 0,
            role: Role::Guest,
            party: self.job.initiator.clone(),
        };
        self.runs
            .range(from..)
            .take_while(move |(k, _)| k.task == task)
    }

    fn highest_attempt(&self, task: &str) -> u32 {
        let base = self.base_attempt(task);
        self.runs_of(task)
            .map(|(k, _)| k.attempt)
            .filter(|a| *a >= base)
            .max()
            .unwrap_or(base)
    }

    fn first_failure(&self, task: &str, attempt: u32) -> Option<(PartyName, String)> {
        self.runs_of(task)
            .filter(|(k, r)| k.attempt == attempt && r.state == RunState::Failed)
            .map(|(k, r)| (k.party.clone(), r.error.clone().unwrap_or_default()))
            .next()
    }

    /// The highest attempt of `task` ever recorded (0 if none).
    pub fn last_attempt(&self, task: &str) -> u32 {
        self.runs_of(task)
            .map(|(k, _)| k.attempt)
            .max()
            .unwrap_or(0)
    }

    /// Tasks downstream of `task` (inputs or `depends_on`, transitively), with `task` itself.
    pub fn downstream(&self, task: &str) -> Vec<String> {
        let Ok(plan) = &self.plan else {
            return Vec::new();
        };
        let mut out = vec![task.to_owned()];
        // The plan is in dependency order: one pass collects the closure.
        for t in &plan.tasks {
            if t.upstream.iter().any(|u| out.contains(u)) && !out.contains(&t.name) {
                out.push(t.name.clone());
            }
        }
        out
    }

    /// The attempt the task is at now: the highest seen, or the next one if that one failed
    /// somewhere and a retry is left.
    pub fn attempt_of(&self, task: &str) -> u32 {
        let a = self.highest_attempt(task);
        let used = a - self.base_attempt(task);
        if self.first_failure(task, a).is_some() && used < self.retries() {
            a + 1
        } else {
            a
        }
    }

    /// The state of one run, if recorded.
    pub fn run(
        &self,
        task: &str,
        attempt: u32,
        role: Role,
        party: &PartyName,
    ) -> Option<&TaskStateRecord> {
        self.runs.get(&RunKey {
            task: task.to_owned(),
            attempt,
            role,
            party: party.clone(),
        })
    }

    /// How the task stands.
    pub fn outcome(&self, task: &str) -> TaskOutcome {
        match self.task(task) {
            Some(planned) => self.outcome_of(planned),
            None => TaskOutcome::InProgress,
        }
    }

    /// How `planned` stands, in one pass over its recorded runs (this runs for every task
    /// on every change of a job: at 50 parties a task has 50 runs an attempt).
    fn outcome_of(&self, planned: &PlannedTask) -> TaskOutcome {
        let base = self.base_attempt(&planned.name);
        // The highest attempt at or above the base, its first failure and its successes
        // (runs are ordered by attempt, then role and party: the first failure is the one
        // `first_failure` names).
        let (mut top, mut failure, mut succeeded) = (base, None, 0usize);
        for (k, r) in self.runs_of(&planned.name) {
            if k.attempt < top {
                continue;
            }
            if k.attempt > top {
                (top, failure, succeeded) = (k.attempt, None, 0);
            }
            match r.state {
                RunState::Failed if failure.is_none() => failure = Some((k, r)),
                RunState::Success => succeeded += 1,
                _ => {}
            }
        }
        let Some((k, r)) = failure else {
            // Only runs the plan has are recorded, once each: counting them is enough.
            return if succeeded == planned.runs.len() {
                TaskOutcome::Success
            } else {
                TaskOutcome::InProgress
            };
        };
        if top - base < self.retries() {
            // Retried: the next attempt has no runs yet.
            return TaskOutcome::InProgress;
        }
        TaskOutcome::Failed {
            party: k.party.clone(),
            error: r.error.clone().unwrap_or_default(),
        }
    }

    /// Every task's outcome, in plan order.
    fn outcomes(&self, plan: &JobPlan) -> Vec<TaskOutcome> {
        plan.tasks.iter().map(|t| self.outcome_of(t)).collect()
    }

    /// Every participant of the plan.
    pub fn participants(&self) -> Vec<PartyName> {
        self.plan
            .as_ref()
            .map(|p| p.participants().into_iter().collect())
            .unwrap_or_default()
    }

    /// The job's state.
    pub fn status(&self) -> JobStatus {
        match &self.plan {
            Ok(plan) => self.status_with(plan, &self.outcomes(plan)),
            Err(_) => JobStatus::Rejected,
        }
    }

    /// The job's state, given its tasks' `outcomes` (plan order).
    fn status_with(&self, plan: &JobPlan, outcomes: &[TaskOutcome]) -> JobStatus {
        if self
            .decisions
            .values()
            .any(|d| matches!(d, Decision::Rejected { .. }))
        {
            return JobStatus::Rejected;
        }
        if outcomes.iter().all(|o| *o == TaskOutcome::Success) {
            return JobStatus::Success;
        }
        if outcomes
            .iter()
            .any(|o| matches!(o, TaskOutcome::Failed { .. }))
        {
            return JobStatus::Failed;
        }
        if self.active_stop().is_some() {
            return JobStatus::Canceled;
        }
        let all_accepted = plan
            .parties
            .values()
            .flatten()
            .all(|p| self.decisions.get(p) == Some(&Decision::Accepted));
        if all_accepted {
            JobStatus::Running
        } else {
            JobStatus::Pending
        }
    }

    /// Runs of `me` that may start now: every upstream task succeeded everywhere, and this
    /// attempt of the run has not been recorded yet.
    pub fn runnable(&self, me: &PartyName) -> Vec<RunKey> {
        let Ok(plan) = &self.plan else {
            return Vec::new();
        };
        let outcomes = self.outcomes(plan);
        if self.status_with(plan, &outcomes) != JobStatus::Running {
            return Vec::new();
        }
        let outcome = |name: &str| {
            plan.tasks
                .iter()
                .position(|t| t.name == name)
                .map_or(&TaskOutcome::InProgress, |i| &outcomes[i])
        };
        let mut out = Vec::new();
        for (task, now) in plan.tasks.iter().zip(&outcomes) {
            let ready = task
                .upstream
                .iter()
                .all(|u| *outcome(u) == TaskOutcome::Success);
            if !ready || *now != TaskOutcome::InProgress {
                continue;
            }
            let a = self.attempt_of(&task.name);
            for run in task.runs.iter().filter(|r| &r.party == me) {
                if self.run(&task.name, a, run.role, me).is_none() {
                    out.push(RunKey {
                        task: task.name.clone(),
                        attempt: a,
                        role: run.role,
                        party: me.clone(),
                    });
                }
            }
        }
        out
    }

    /// Whether a run of this party that is in progress should be cancelled: the job is over,
    /// or its task moved on to a later attempt, or failed elsewhere.
    pub fn is_moot(&self, key: &RunKey) -> bool {
        self.status().is_final()
            || self.attempt_of(&key.task) > key.attempt
            || self.first_failure(&key.task, key.attempt).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use consort_protocol::job::{ComponentSchema, JobSpec, Ports, validate};
    use consort_protocol::jobs::JobId;

    fn schema(name: &str) -> Option<ComponentSchema> {
        Some(ComponentSchema {
            name: name.into(),
            roles: Role::ALL.to_vec(),
            inputs: Ports::Any,
            outputs: Ports::Any,
            params: None,
        })
    }

    fn p(s: &str) -> PartyName {
        PartyName::new(s).expect("name")
    }

    fn view(retries: u32) -> JobView {
        let spec = format!(
            "name: j\nparties: {{guest: [a], host: [b]}}\nconf: {{auto_retries: {retries}}}\ntasks:\n  one: {{component: x}}\n  two: {{component: x, depends_on: [one]}}\n"
        );
        let plan = validate(&JobSpec::parse(&spec).expect("parse"), &schema)
            .map_err(|_| "invalid".to_owned());
        let job = JobRecord {
            v: 1,
            job_id: JobId::mint(1, 1),
            initiator: p("a"),
            spec,
            submitted_at_ms: 1,
        };
        JobView::new(job, plan, Audience::default())
    }

    fn set(v: &mut JobView, task: &str, attempt: u32, role: Role, party: &str, state: RunState) {
        let error = (state == RunState::Failed).then(|| format!("{party} broke"));
        v.runs.insert(
            RunKey {
                task: task.into(),
                attempt,
                role,
                party: p(party),
            },
            TaskStateRecord {
                v: 1,
                state,
                started_at_ms: Some(1),
                ended_at_ms: None,
                error,
            },
        );
    }

    fn accept_all(v: &mut JobView) {
        v.decisions.insert(p("a"), Decision::Accepted);
        v.decisions.insert(p("b"), Decision::Accepted);
    }

    #[test]
    fn a_task_whose_parts_are_all_canceled_shows_canceled_not_waiting() {
        let mut v = view(0);
        accept_all(&mut v);
        // `one` failed at a, so b's part was canceled: `two` never started anywhere.
        set(&mut v, "one", 1, Role::Guest, "a", RunState::Failed);
        set(&mut v, "one", 1, Role::Host, "b", RunState::Canceled);
        assert_eq!(v.status(), JobStatus::Failed);
        let info = super::super::view::job_info(&v, true);
        let status = |t: &str| {
            info.tasks
                .iter()
                .find(|x| x.name == t)
                .map(|x| x.status.clone())
                .expect("task")
        };
        assert_eq!(status("one"), "failed");
        assert_eq!(status("two"), "canceled");
    }

    #[test]
    fn a_run_at_an_unreachable_party_shows_unreachable_since_then() {
        let mut v = view(0);
        accept_all(&mut v);
        set(&mut v, "one", 1, Role::Guest, "a", RunState::Running);
        set(&mut v, "one", 1, Role::Host, "b", RunState::Running);
        // 2026-11-30 12:00:00 UTC
        let away = BTreeMap::from([(p("b"), Some(1_796_040_000_000))]);
        let info = super::super::view::job_info_with(&v, true, &away);
        let one = info.tasks.iter().find(|t| t.name == "one").expect("task");
        assert_eq!(one.status, "running");
        assert_eq!(one.parties["a"].state, "running");
        assert_eq!(one.parties["b"].state, "unreachable");
        assert_eq!(
            one.parties["b"].error.as_deref(),
            Some("unreachable since 2026-11-30 12:00:00 UTC (last state: running)")
        );
        // Reachable again: its last state.
        let info = super::super::view::job_info(&v, true);
        assert_eq!(info.tasks[0].parties["b"].state, "running");
    }

    #[test]
    fn pending_until_everyone_accepts_then_runs_in_order() {
        let mut v = view(0);
        v.decisions.insert(p("a"), Decision::Accepted);
        assert_eq!(v.status(), JobStatus::Pending);
        assert!(v.runnable(&p("a")).is_empty());
        v.decisions.insert(p("b"), Decision::Accepted);
        assert_eq!(v.status(), JobStatus::Running);
        let r = v.runnable(&p("a"));
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].task.as_str(), r[0].attempt, r[0].role),
            ("one", 1, Role::Guest)
        );
        // `two` waits until `one` succeeded at both parties.
        set(&mut v, "one", 1, Role::Guest, "a", RunState::Success);
        assert!(v.runnable(&p("a")).is_empty());
        set(&mut v, "one", 1, Role::Host, "b", RunState::Success);
        assert_eq!(v.runnable(&p("b"))[0].task, "two");
        set(&mut v, "two", 1, Role::Guest, "a", RunState::Success);
        set(&mut v, "two", 1, Role::Host, "b", RunState::Success);
        assert_eq!(v.status(), JobStatus::Success);
    }

    #[test]
    fn rejection_anywhere_rejects_the_job() {
        let mut v = view(0);
        v.decisions.insert(p("a"), Decision::Accepted);
        v.decisions.insert(
            p("b"),
            Decision::Rejected {
                reason: "no".into(),
            },
        );
        assert_eq!(v.status(), JobStatus::Rejected);
    }

    #[test]
    fn failure_without_retries_fails_the_job_and_makes_other_runs_moot() {
        let mut v = view(0);
        accept_all(&mut v);
        set(&mut v, "one", 1, Role::Guest, "a", RunState::Running);
        set(&mut v, "one", 1, Role::Host, "b", RunState::Failed);
        assert_eq!(v.status(), JobStatus::Failed);
        assert_eq!(
            v.outcome("one"),
            TaskOutcome::Failed {
                party: p("b"),
                error: "b broke".into()
            }
        );
        let running = RunKey {
            task: "one".into(),
            attempt: 1,
            role: Role::Guest,
            party: p("a"),
        };
        assert!(v.is_moot(&running));
    }

    #[test]
    fn a_failed_attempt_is_retried_everywhere() {
        let mut v = view(1);
        accept_all(&mut v);
        set(&mut v, "one", 1, Role::Guest, "a", RunState::Canceled);
        set(&mut v, "one", 1, Role::Host, "b", RunState::Failed);
        assert_eq!(v.status(), JobStatus::Running);
        assert_eq!(v.attempt_of("one"), 2);
        assert_eq!(v.runnable(&p("a"))[0].attempt, 2);
        assert_eq!(v.runnable(&p("b"))[0].attempt, 2);
        // The second failure is final.
        set(&mut v, "one", 2, Role::Host, "b", RunState::Failed);
        assert_eq!(v.attempt_of("one"), 2);
        assert_eq!(v.status(), JobStatus::Failed);
    }

    #[test]
    fn a_rerun_restarts_only_the_named_tasks_at_a_new_attempt() {
        let mut v = view(0);
        accept_all(&mut v);
        set(&mut v, "one", 1, Role::Guest, "a", RunState::Success);
        set(&mut v, "one", 1, Role::Host, "b", RunState::Success);
        set(&mut v, "two", 1, Role::Guest, "a", RunState::Canceled);
        set(&mut v, "two", 1, Role::Host, "b", RunState::Failed);
        assert_eq!(v.status(), JobStatus::Failed);
        assert_eq!(
            v.downstream("one"),
            vec!["one".to_owned(), "two".to_owned()]
        );
        let tasks = [("two".to_owned(), v.last_attempt("two") + 1)].into();
        v.reruns.insert(
            p("a"),
            RerunRecord {
                v: 1,
                epoch: 1,
                tasks,
            },
        );
        assert_eq!(v.status(), JobStatus::Running);
        assert_eq!(v.attempt_of("one"), 1, "succeeded upstream is reused");
        assert_eq!(v.attempt_of("two"), 2);
        let r = v.runnable(&p("b"));
        assert_eq!((r[0].task.as_str(), r[0].attempt), ("two", 2));
        set(&mut v, "two", 2, Role::Guest, "a", RunState::Success);
        set(&mut v, "two", 2, Role::Host, "b", RunState::Success);
        assert_eq!(v.status(), JobStatus::Success);
    }

    #[test]
    fn a_rerun_lifts_an_older_stop() {
        let mut v = view(0);
        accept_all(&mut v);
        v.stops.insert(
            p("b"),
            StopRecord {
                v: 1,
                reason: "operator".into(),
                epoch: 0,
            },
        );
        assert_eq!(v.status(), JobStatus::Canceled);
        let tasks = [("one".to_owned(), 1), ("two".to_owned(), 1)].into();
        v.reruns.insert(
            p("b"),
            RerunRecord {
                v: 1,
                epoch: 1,
                tasks,
            },
        );
        assert_eq!(v.status(), JobStatus::Running);
        v.stops.insert(
            p("a"),
            StopRecord {
                v: 1,
                reason: "again".into(),
                epoch: 1,
            },
        );
        assert_eq!(v.status(), JobStatus::Canceled);
    }

    #[test]
    fn stop_cancels() {
        let mut v = view(0);
        accept_all(&mut v);
        v.stops.insert(
            p("b"),
            StopRecord {
                v: 1,
                reason: "operator".into(),
                epoch: 0,
            },
        );
        assert_eq!(v.status(), JobStatus::Canceled);
        assert!(v.runnable(&p("a")).is_empty());
    }
}

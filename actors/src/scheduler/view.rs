//! How a job looks from the CLI: [`JobInfo`] built from a [`JobView`].

use std::collections::BTreeMap;

use consort_protocol::jobs::{Decision, RunState};
use consort_protocol::{JobInfo, PartyRunInfo, TaskInfo};

use super::derive::{JobStatus, JobView, TaskOutcome};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Why the job ended other than successfully, naming the party.
fn reason(view: &JobView, status: JobStatus) -> Option<String> {
    match status {
        JobStatus::Rejected => {
            if let Err(e) = &view.plan {
                return Some(format!("invalid here: {e}"));
            }
            view.decisions.iter().find_map(|(party, d)| match d {
                Decision::Rejected { reason } => Some(format!("rejected by {party}: {reason}")),
                _ => None,
            })
        }
        JobStatus::Failed => {
            let plan = view.plan.as_ref().ok()?;
            plan.tasks.iter().find_map(|t| match view.outcome(&t.name) {
                TaskOutcome::Failed { party, error } => {
                    Some(format!("task {} failed at {party}: {error}", t.name))
                }
                _ => None,
            })
        }
        JobStatus::Canceled => view.active_stop().map(|s| s.reason.clone()),
        JobStatus::Pending => {
            let waiting: Vec<String> = view
                .participants()
                .into_iter()
                .filter(|p| !matches!(view.decisions.get(p), Some(Decision::Accepted)))
                .map(|p| match view.decisions.get(&p) {
                    Some(Decision::AwaitingApproval) => format!("{p} (awaiting manual approval)"),
                    _ => p.to_string(),
                })
                .collect();
            Some(format!("waiting for: {}", waiting.join(", ")))
        }
        _ => None,
    }
}

/// The CLI's view of a job (`with_tasks` false for listings).
pub fn job_info(view: &JobView, with_tasks: bool) -> JobInfo {
    let status = view.status();
    let mut parties = BTreeMap::new();
    let mut name = String::new();
    let mut tasks = Vec::new();
    if let Ok(plan) = &view.plan {
        name = plan.name.clone();
        for (role, ps) in &plan.parties {
            parties.insert(role.to_string(), ps.iter().map(|p| p.to_string()).collect());
        }
        if with_tasks {
            for t in &plan.tasks {
                let attempt = view.attempt_of(&t.name);
                let mut per_party: BTreeMap<String, PartyRunInfo> = BTreeMap::new();
                for run in &t.runs {
                    let rec = view.run(&t.name, attempt, run.role, &run.party);
                    let state = rec.map(|r| r.state).unwrap_or(match status {
                        JobStatus::Canceled | JobStatus::Failed | JobStatus::Rejected => {
                            RunState::Canceled
                        }
                        _ => RunState::Waiting,
                    });
                    let info = PartyRunInfo {
                        state: state.as_str().to_owned(),
                        attempt,
                        started_at: rec.and_then(|r| r.started_at_ms),
                        elapsed_s: rec.and_then(|r| {
                            let start = r.started_at_ms?;
                            let end = r.ended_at_ms.unwrap_or_else(now_ms);
                            Some(end.saturating_sub(start) as f64 / 1e3)
                        }),
                        error: rec.and_then(|r| r.error.clone()),
                    };
                    // A party with two roles shows its least advanced run.
                    let entry = per_party
                        .entry(run.party.to_string())
                        .or_insert_with(|| info.clone());
                    if rank(&info.state) < rank(&entry.state) {
                        *entry = info;
                    }
                }
                let task_status = match view.outcome(&t.name) {
                    TaskOutcome::Success => "success",
                    TaskOutcome::Failed { .. } => "failed",
                    TaskOutcome::InProgress if per_party.values().any(|r| r.state == "running") => {
                        "running"
                    }
                    // Nothing is left to run: every part was canceled (or never started in a
                    // job that is over).
                    TaskOutcome::InProgress
                        if !per_party.is_empty()
                            && per_party.values().all(|r| r.state == "canceled") =>
                    {
                        "canceled"
                    }
                    TaskOutcome::InProgress if status == JobStatus::Canceled => "canceled",
                    TaskOutcome::InProgress => "waiting",
                };
                tasks.push(TaskInfo {
                    name: t.name.clone(),
                    component: t.component.clone(),
                    status: task_status.to_owned(),
                    parties: per_party,
                });
            }
        }
    }
    JobInfo {
        job_id: view.job.job_id.to_string(),
        name,
        status: status.as_str().to_owned(),
        initiator: view.job.initiator.to_string(),
        parties,
        submitted_at_ms: view.job.submitted_at_ms,
        reason: reason(view, status),
        tasks,
    }
}

fn rank(state: &str) -> u8 {
    match state {
        "failed" => 0,
        "canceled" => 1,
        "waiting" => 2,
        "running" => 3,
        _ => 4,
    }
}

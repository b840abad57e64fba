//! How a job looks from the CLI: [`JobInfo`] built from a [`JobView`].

use std::collections::BTreeMap;

use consort_protocol::jobs::{Decision, RunState};
use consort_protocol::{JobInfo, PartyName, PartyRunInfo, TaskInfo};

use super::derive::{JobStatus, JobView, TaskOutcome};

use consort_protocol::clock::now_ms;

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

/// `ms` since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The CLI's view of a job (`with_tasks` false for listings).
pub fn job_info(view: &JobView, with_tasks: bool) -> JobInfo {
    job_info_with(view, with_tasks, &BTreeMap::new())
}

/// Like [`job_info`], knowing which partners are unreachable now (and since when, Unix ms, if
/// they were ever heard from): a run such a party last reported running shows `unreachable`
/// instead of its last state, which nobody can vouch for.
pub fn job_info_with(
    view: &JobView,
    with_tasks: bool,
    away: &BTreeMap<PartyName, Option<u64>>,
) -> JobInfo {
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
                    let mut info = PartyRunInfo {
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
                    if state == RunState::Running
                        && let Some(since) = away.get(&run.party)
                    {
                        info.state = "unreachable".to_owned();
                        info.elapsed_s = None;
                        info.error = Some(match since {
                            Some(t) => {
                                format!("unreachable since {} (last state: running)", utc(*t))
                            }
                            None => "unreachable (last state: running)".to_owned(),
                        });
                    }
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
                    TaskOutcome::InProgress
                        if per_party
                            .values()
                            .any(|r| r.state == "running" || r.state == "unreachable") =>
                    {
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
                    upstream: t.upstream.iter().cloned().collect(),
                    params: t
                        .runs
                        .iter()
                        .map(|r| {
                            let params = serde_json::Value::Object(
                                r.params
                                    .iter()
                                    .map(|(k, v)| (k.clone(), v.clone()))
                                    .collect(),
                            );
                            (format!("{}@{}", r.role, r.party), params.into())
                        })
                        .collect(),
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
        revision: view.revision,
        ended_at_ms: if status.is_final() {
            view.runs.values().filter_map(|r| r.ended_at_ms).max()
        } else {
            None
        },
    }
}

fn rank(state: &str) -> u8 {
    match state {
        "failed" => 0,
        "canceled" => 1,
        "waiting" => 2,
        "running" | "unreachable" => 3,
        _ => 4,
    }
}

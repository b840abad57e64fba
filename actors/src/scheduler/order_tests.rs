//! The Scheduler's view does not depend on the order records reach it: events, the load of a
//! new job's held records and resyncs may deliver one key's versions in any order.

use std::time::{Duration, Instant};

use actix::Actor;
use consort_protocol::PartyName;
use consort_protocol::jobs::{
    Decision, DecisionRecord, JobId, JobRecord, RECORD_VERSION, decision_key, job_key,
};
use consort_protocol::peer::Record;
use consort_storage::{RecordStore, Store, Tables};

use super::{Policy, RecordsChanged, Scheduler, SchedulerDeps, Show};
use crate::executor::Executor;
use crate::model_manager::{CommitJob, ResolveInput};
use crate::network::{Command, NetworkClient};

/// Stands in for the ModelManager: these jobs name no model and commit none.
struct NoModels;

impl Actor for NoModels {
    type Context = actix::Context<Self>;
}

impl actix::Handler<ResolveInput> for NoModels {
    type Result = Result<std::path::PathBuf, String>;

    fn handle(&mut self, _: ResolveInput, _: &mut Self::Context) -> Self::Result {
        Err("no models in this test".into())
    }
}

impl actix::Handler<CommitJob> for NoModels {
    type Result = Result<(), crate::failure::Failure>;

    fn handle(&mut self, _: CommitJob, _: &mut Self::Context) -> Self::Result {
        Ok(())
    }
}

fn p(s: &str) -> PartyName {
    PartyName::new(s).expect("name")
}

fn record(origin: &str, key: String, version: u64, value: Vec<u8>) -> Record {
    Record {
        origin: p(origin),
        key,
        version,
        written_at_ms: version,
        value,
        audience: vec![p("a"), p("b")].into(),
        signature: Vec::new(),
    }
}

fn decision(job: &JobId, version: u64, decision: Decision) -> Record {
    let value = rmp_serde::to_vec_named(&DecisionRecord {
        v: RECORD_VERSION,
        decision,
    })
    .expect("encode");
    record("b", decision_key(job), version, value)
}

/// Answers the Scheduler's network commands: no partner connected, every write stored.
fn fake_network() -> NetworkClient {
    let (client, mut commands) = NetworkClient::detached();
    actix::spawn(async move {
        while let Some(c) = commands.recv().await {
            match c {
                Command::Peers { reply } => {
                    let _ = reply.send(Vec::new());
                }
                Command::PutRecord {
                    key,
                    value,
                    audience,
                    reply,
                    ..
                } => {
                    let r = Record {
                        origin: p("a"),
                        key,
                        version: 1,
                        written_at_ms: 1,
                        value,
                        audience,
                        signature: Vec::new(),
                    };
                    let _ = reply.send(Ok(r));
                }
                _ => {}
            }
        }
    });
    client
}

async fn status(s: &actix::Addr<Scheduler>, job: &JobId, want: &str) -> String {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let got = s
            .send(Show(job.to_string()))
            .await
            .expect("mailbox")
            .map(|i| i.status)
            .unwrap_or_else(|e| e.to_string());
        if got == want || Instant::now() > until {
            return got;
        }
        actix::clock::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_rt::test]
async fn an_older_version_arriving_late_does_not_replace_a_newer_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::temporary().expect("store");
    let records = RecordStore::open(&store).expect("records");
    let deps = SchedulerDeps {
        me: p("a"),
        net: fake_network(),
        records: records.clone(),
        executor: Executor::new(store.clone()).start(),
        policy: Policy {
            accept_from: vec!["*".into()],
            ..Policy::default()
        },
        work_dir: dir.path().join("jobs"),
        tables: Tables::open(&store, &dir.path().join("tables")).expect("tables"),
        model_inputs: NoModels.start().recipient(),
        commit_models: NoModels.start().recipient(),
    };
    let scheduler = Scheduler::with_deps(store.clone(), deps).start();
    let job = JobId::mint(1_000, 7);
    let spec = "name: j\nparties: {guest: [b], host: [a]}\ntasks:\n  t: {component: noop}\n";
    let job_rec = record(
        "b",
        job_key(&job),
        1,
        rmp_serde::to_vec_named(&JobRecord {
            v: RECORD_VERSION,
            job_id: job.clone(),
            initiator: p("b"),
            spec: spec.into(),
            submitted_at_ms: 1,
        })
        .expect("encode"),
    );
    // b first accepted (version 1), then took it back (version 2). The store keeps version 2;
    // the events come the other way round, the newer one before the job record itself.
    let (accepted, rejected) = (
        decision(&job, 1, Decision::Accepted),
        decision(
            &job,
            2,
            Decision::Rejected {
                reason: "b: no".into(),
            },
        ),
    );
    records.apply(&rejected).expect("store");
    scheduler
        .send(RecordsChanged(vec![rejected.clone()]))
        .await
        .expect("mailbox");
    records.apply(&job_rec).expect("store");
    scheduler
        .send(RecordsChanged(vec![job_rec]))
        .await
        .expect("mailbox");
    // The held rejection is read by the job index when the job record comes.
    assert_eq!(status(&scheduler, &job, "rejected").await, "rejected");
    // A late copy of the older version changes nothing (handled once `send` returns).
    scheduler
        .send(RecordsChanged(vec![accepted]))
        .await
        .expect("mailbox");
    let now = scheduler
        .send(Show(job.to_string()))
        .await
        .expect("mailbox")
        .expect("job");
    assert_eq!(now.status, "rejected", "{now:?}");
}

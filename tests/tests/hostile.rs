//! A partner is authenticated, not trusted: each test has a hostile partner (a real libp2p node
//! with its own identity, listed as a partner, see `consort_tests::hostile`) try one attack
//! class on real daemons, and checks that the party it targets refuses it, writes nothing
//! outside its data directory's own places and stays up.

#![allow(clippy::unwrap_used)]
use std::time::Duration;

use consort_protocol::PartyName;
use consort_protocol::job::Role;
use consort_protocol::jobs::{
    CHANNEL_TOPIC, ChannelMessage, ChunkPart, JobId, LOGS_TOPIC, RECORD_VERSION,
};
use consort_protocol::peer::PeerResponse;
use consort_tests::hostile::{Hostile, now_ms, peak_rss};
use consort_tests::*;

const T: Duration = Duration::from_secs(60);
/// Sorts before every honest party's name: records are applied in origin order at start-up.
const MALLORY: &str = "aaa-mallory";

/// `names` as partners of each other, plus Mallory as everybody's partner; started.
fn with_mallory(names: &[&str], extra: &[(usize, &str)]) -> (Federation, Vec<Daemon>, Hostile) {
    with_mallory_and(names, extra, |_| {})
}

fn with_mallory_and(
    names: &[&str],
    extra: &[(usize, &str)],
    prepare: impl Fn(&Federation),
) -> (Federation, Vec<Daemon>, Hostile) {
    let fed = Federation::init(names);
    fed.all_mutual();
    let targets: Vec<(&Party, String)> = fed
        .parties
        .iter()
        .enumerate()
        .map(|(i, p)| (p, fed.addr(i)))
        .collect();
    let m = Hostile::start(MALLORY, &targets);
    for i in 0..names.len() {
        fed.append_config(i, &m.partner_toml());
    }
    for (i, text) in extra {
        fed.append_config(*i, text);
    }
    prepare(&fed);
    let daemons = start_all(&fed);
    (fed, daemons, m)
}

/// Starts every daemon and waits until each sees every partner connected, Mallory included.
fn start_all(fed: &Federation) -> Vec<Daemon> {
    let daemons: Vec<Daemon> = fed.parties.iter().map(|p| p.start()).collect();
    for p in &fed.parties {
        wait_for("partners connected", T, || {
            let peers = connected_peers(p);
            (peers.iter().filter(|(_, c)| *c).count() == fed.parties.len()).then_some(())
        });
    }
    daemons
}

fn job_id() -> JobId {
    JobId::mint(now_ms(), std::process::id())
}

/// The job at `party` once it has ended (or been decided against).
fn ended(party: &Party, id: &str) -> serde_json::Value {
    wait_job_state(party, id, &["rejected", "success", "failed", "canceled"], T)
}

fn alive(d: &mut Daemon, p: &Party) {
    assert!(d.try_exit().is_none(), "{} died:\n{}", p.name, d.log());
    assert_eq!(p.cli(&["status"]).code, Some(0));
}

#[test]
fn names_in_a_partners_job_are_never_paths() {
    let evil = std::env::temp_dir().join(format!("consort-evil-{}", std::process::id()));
    let _ = std::fs::remove_file(&evil);
    let op = "\n[operators.prep]\ncommand = [\"sh\", \"-c\", \"echo owned > outputs/x\"]\n";
    let (fed, mut d, m) = with_mallory(&["insurer-b"], &[(0, op)]);
    let b = &fed.parties[0];
    let key_before = std::fs::read(b.dir.join("identity.key")).unwrap();
    // An absolute input name (copied to that path by the old executor), an output part that
    // climbs out of the job directory, and a psi input reaching for a table file.
    let specs = [
        format!(
            "name: evil\nparties: {{guest: [{MALLORY}], host: [insurer-b]}}\ntasks:\n  t1: {{component: \"script:prep\"}}\n  t2: {{component: \"script:prep\", inputs: {{\"{}\": t1.x}}}}\n",
            evil.display()
        ),
        format!(
            "name: evil\nparties: {{guest: [{MALLORY}], host: [insurer-b]}}\ntasks:\n  t1: {{component: \"script:prep\"}}\n  t2: {{component: \"script:prep\", inputs: {{k: \"t1.../../../../../identity.key\"}}}}\n"
        ),
        format!(
            "name: evil\nparties: {{guest: [{MALLORY}], host: [insurer-b]}}\ntasks:\n  t1: {{component: \"script:prep\"}}\n  t2: {{component: psi, inputs: {{data: \"t1.../../../../tables/secret.table\"}}}}\n"
        ),
    ];
    for spec in &specs {
        let id = job_id();
        let rec = m.job_record(&id, spec, &[MALLORY, "insurer-b"]);
        m.push("insurer-b", vec![rec]).unwrap();
        let v = ended(b, id.as_str());
        assert_eq!(v["status"], "rejected", "{v}");
        let reason = v["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("invalid"), "{reason}");
        assert!(reason.contains("tasks.t2.inputs"), "{reason}");
    }
    assert!(
        !evil.exists(),
        "a file was written outside the data directory"
    );
    assert_eq!(
        std::fs::read(b.dir.join("identity.key")).unwrap(),
        key_before
    );
    // No run of any of these jobs started at insurer-b.
    assert!(!b.dir.join("jobs").exists() || dir_is_empty_of_runs(&b.dir.join("jobs")));
    alive(&mut d[0], b);
    // An honest initiator refuses the same file at submit, naming the key.
    let out = b.cli(&["job", "submit", &fed.job_file("evil.yaml", &specs[1])]);
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("tasks.t2.inputs.k"), "{out:?}");
}

fn dir_is_empty_of_runs(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).unwrap().all(|e| {
        let p = e.unwrap().path();
        !p.is_dir() || std::fs::read_dir(&p).unwrap().next().is_none()
    })
}

#[test]
fn a_yaml_alias_bomb_is_refused_in_little_memory() {
    let (fed, mut d, m) = with_mallory(&["insurer-b"], &[]);
    let b = &fed.parties[0];
    // 9 levels of 10 aliases each: 10^9 values once expanded, in about 40 KB.
    let mut bomb = format!(
        "name: bomb\nparties: {{guest: [{MALLORY}], host: [insurer-b]}}\ntasks:\n  t:\n    component: noop\n    params:\n      l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n"
    );
    for i in 1..9 {
        let refs = vec![format!("*l{}", i - 1); 10].join(", ");
        bomb.push_str(&format!("      l{i}: &l{i} [{refs}]\n"));
    }
    while bomb.len() < 40_000 {
        bomb.push_str(&format!(
            "      p{}: [*l8, *l8, *l8, *l8, *l8, *l8, *l8, *l8]\n",
            bomb.len()
        ));
    }
    let id = job_id();
    m.push(
        "insurer-b",
        vec![m.job_record(&id, &bomb, &[MALLORY, "insurer-b"])],
    )
    .unwrap();
    let v = ended(b, id.as_str());
    assert_eq!(v["status"], "rejected", "{v}");
    assert!(
        v["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("anchors and aliases"),
        "{v}"
    );
    let peak = peak_rss(d[0].pid());
    assert!(peak < 100 << 20, "peak RSS {peak} bytes");
    alive(&mut d[0], b);
    // The record is stored: a restart parses it again, in as little memory.
    d[0].kill9();
    d[0] = b.start();
    assert_eq!(ended(b, id.as_str())["status"], "rejected");
    let peak = peak_rss(d[0].pid());
    assert!(peak < 100 << 20, "peak RSS after restart {peak} bytes");
    // The initiator's own daemon refuses the file at submit.
    let out = b.cli(&["job", "submit", &fed.job_file("bomb.yaml", &bomb)]);
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("anchors and aliases"), "{out:?}");
    alive(&mut d[0], b);
}

#[test]
fn a_partner_outside_a_job_cannot_see_stop_rerun_or_feed_it() {
    let fed = Federation::init(&["bank-a", "insurer-b", "clinic-c"]);
    fed.all_mutual();
    let targets: Vec<(&Party, String)> = (0..2).map(|i| (&fed.parties[i], fed.addr(i))).collect();
    let m = Hostile::start(MALLORY, &targets);
    for i in 0..2 {
        fed.append_config(i, &m.partner_toml());
    }
    fed.edit_config(1, "share_logs_with = []", "share_logs_with = [\"*\"]");
    let mut d: Vec<Daemon> = fed.parties.iter().map(|p| p.start()).collect();
    for (i, p) in fed.parties.iter().enumerate() {
        let want = if i < 2 { 3 } else { 2 };
        wait_for("partners connected", T, || {
            let peers = connected_peers(p);
            (peers.iter().filter(|(_, c)| *c).count() == want).then_some(())
        });
    }
    let (a, b, c) = (&fed.parties[0], &fed.parties[1], &fed.parties[2]);
    let file = fed.job_file(
        "nap.yaml",
        "name: nap\nparties: {guest: [bank-a], host: [insurer-b]}\ntasks:\n  first: {component: noop}\n  nap: {component: sleep, roles: [host], depends_on: [first], params: {seconds: 2}}\n",
    );
    let id = submit(a, &file);
    let job = JobId::parse(&id).unwrap();
    wait_for("nap running at insurer-b", T, || {
        (task_of(&job_show(b, &id), "nap")["parties"]["insurer-b"]["state"] == "running")
            .then_some(())
    });
    // Mallory learned the id somehow; it writes stop, rerun, a rejection and a failed run,
    // addressed as if it took part.
    let aud = [MALLORY, "bank-a", "insurer-b"];
    let stop = m.signed(
        &format!("stop/{id}"),
        rmp_serde::to_vec_named(&consort_protocol::jobs::StopRecord {
            v: RECORD_VERSION,
            reason: "stopped by mallory".into(),
            epoch: 0,
        })
        .unwrap(),
        &aud,
    );
    let reject = m.signed(
        &format!("decision/{id}"),
        rmp_serde::to_vec_named(&consort_protocol::jobs::DecisionRecord {
            v: RECORD_VERSION,
            decision: consort_protocol::jobs::Decision::Rejected {
                reason: "mallory says no".into(),
            },
        })
        .unwrap(),
        &aud,
    );
    let failed = m.signed(
        &format!("task/{id}/nap/1/host"),
        rmp_serde::to_vec_named(&consort_protocol::jobs::TaskStateRecord {
            v: RECORD_VERSION,
            state: consort_protocol::jobs::RunState::Failed,
            started_at_ms: None,
            ended_at_ms: None,
            error: Some("mallory failed it".into()),
        })
        .unwrap(),
        &aud,
    );
    for party in ["bank-a", "insurer-b"] {
        m.push(party, vec![stop.clone(), reject.clone(), failed.clone()])
            .unwrap();
    }
    // Channel messages for the job, for a job that does not exist, and one announcing 50 GiB.
    let msg = |job: &JobId, part: Option<ChunkPart>, payload: Vec<u8>| ChannelMessage {
        v: RECORD_VERSION,
        job: job.clone(),
        task: "nap".into(),
        attempt: 1,
        tag: "x".into(),
        from_role: Role::Guest,
        from: PartyName::new(MALLORY).unwrap(),
        to_role: Role::Host,
        to: PartyName::new("insurer-b").unwrap(),
        seq: 0,
        payload,
        part,
    };
    let huge = ChunkPart {
        index: 0,
        count: 12_800,
        total: 50 << 30,
        offset: 0,
    };
    let fake = job_id();
    for (what, m_) in [
        ("in the job", msg(&job, None, b"hi".to_vec())),
        ("no such job", msg(&fake, None, b"hi".to_vec())),
        ("50 GiB", msg(&fake, Some(huge), vec![0; 16])),
    ] {
        let answer = m
            .app(
                "insurer-b",
                CHANNEL_TOPIC,
                rmp_serde::to_vec_named(&m_).unwrap(),
            )
            .unwrap();
        assert!(
            matches!(answer, PeerResponse::Error { .. }),
            "{what}: {answer:?}"
        );
    }
    // Its logs are shared with every partner, but only for jobs they take part in.
    let logs = m
        .app("insurer-b", LOGS_TOPIC, id.as_bytes().to_vec())
        .unwrap();
    match logs {
        PeerResponse::Error { message } => assert!(message.contains("no part"), "{message}"),
        other => panic!("logs of a job mallory is not in: {other:?}"),
    }
    // The job goes on as if Mallory had said nothing.
    let views = assert_succeeds(&fed.parties[..2], &id, T);
    for v in &views {
        assert!(!v.to_string().contains("mallory"), "{v}");
    }
    // Neither clinic-c nor Mallory ever saw the job.
    let list = c.cli(&["--json", "job", "list"]).json();
    assert!(!list.to_string().contains(&id), "{list}");
    let records = c.cli(&["--json", "record", "list"]).json();
    assert!(!records.to_string().contains(&id), "{records}");
    assert!(m.holds(&id).iter().all(|r| r.origin.as_str() == MALLORY));
    // Nothing of Mallory's reached insurer-b's mailbox.
    let mailbox = b.dir.join("mailbox");
    assert!(!mailbox.join(fake.as_str()).exists());
    for (i, p) in fed.parties.iter().enumerate() {
        alive(&mut d[i], p);
    }
}

#[test]
fn a_job_id_cannot_be_taken_over_by_another_partner() {
    let (fed, mut d, m) = with_mallory(&["bank-a", "insurer-b"], &[]);
    let (a, b) = (&fed.parties[0], &fed.parties[1]);
    let file = fed.job_file(
        "j.yaml",
        "name: mine\nparties: {guest: [bank-a], host: [insurer-b]}\ntasks:\n  only: {component: noop}\n",
    );
    let id = submit(a, &file);
    assert_succeeds(&fed.parties, &id, T);
    // Mallory proposes another spec under the same id, to insurer-b.
    let spec = format!(
        "name: theirs\nparties: {{guest: [{MALLORY}], host: [insurer-b]}}\ntasks:\n  other: {{component: noop}}\n"
    );
    let rec = m.job_record(&JobId::parse(&id).unwrap(), &spec, &[MALLORY, "insurer-b"]);
    m.push("insurer-b", vec![rec]).unwrap();
    let check = |v: &serde_json::Value| {
        assert_eq!(v["initiator"], "bank-a", "{v}");
        assert_eq!(v["name"], "mine", "{v}");
        assert_eq!(v["status"], "success", "{v}");
    };
    // The record is stored (it is validly signed), but it does not take the job over ...
    wait_for("mallory's record at insurer-b", T, || {
        let r = b.cli(&["--json", "record", "get", MALLORY, &format!("job/{id}")]);
        (r.code == Some(0) && !r.json().is_null()).then_some(())
    });
    check(&job_show(b, &id));
    // ... not even after a restart, when records are applied in origin order (Mallory first).
    // A clean stop, so that Mallory's record is surely on disk when the daemon comes back.
    assert_eq!(b.cli(&["shutdown"]).code, Some(0));
    d[1].wait_exit(T);
    d[1] = b.start();
    let r = b.cli(&["--json", "record", "get", MALLORY, &format!("job/{id}")]);
    assert_eq!(
        r.code,
        Some(0),
        "mallory's record survived the restart: {r:?}"
    );
    check(&ended(b, &id));
    alive(&mut d[1], b);
}

#[test]
fn a_partner_cannot_flood_the_replicated_store() {
    let fed = Federation::init(&["insurer-b"]);
    let targets = vec![(&fed.parties[0], fed.addr(0))];
    let m = Hostile::start(MALLORY, &targets);
    fed.append_config(0, &m.partner_toml());
    fed.edit_config(0, "[network]\n", "[network]\nrecords_per_partner = 20\n");
    let mut d = start_all(&fed);
    let b = &fed.parties[0];
    let wait_connected = || {
        wait_for("mallory connected", T, || {
            connected_peers(b)
                .iter()
                .any(|(p, c)| p == MALLORY && *c)
                .then_some(())
        })
    };
    wait_connected();
    // 30 small records: the quota keeps 20.
    let records: Vec<_> = (0..30)
        .map(|i| m.signed(&format!("flood/{i}"), vec![1; 10], &[]))
        .collect();
    m.push("insurer-b", records).unwrap();
    // A value over the cap, and a job record addressed to everybody.
    let big = m.signed("big", vec![0; 2 << 20], &[]);
    let _ = m.push("insurer-b", vec![big]);
    let job = m.signed(&format!("job/{}", job_id()), vec![1], &[]);
    m.push("insurer-b", vec![job]).unwrap();
    let held = |b: &Party| {
        let all = b.cli(&["--json", "record", "list"]).json();
        all.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["origin"] == MALLORY)
            .count()
    };
    wait_for("the flood to be counted", T, || {
        let peers = b.cli(&["--json", "peers"]).json();
        let mallory = peers
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["party"] == MALLORY)
            .cloned()
            .unwrap();
        (mallory["rejected_messages"].as_u64().unwrap_or(0) >= 12).then_some(())
    });
    assert_eq!(held(b), 20);
    // The quota holds across a restart.
    assert_eq!(b.cli(&["shutdown"]).code, Some(0));
    d[0].wait_exit(T);
    d[0] = b.start();
    wait_connected();
    let more: Vec<_> = (30..40)
        .map(|i| m.signed(&format!("flood/{i}"), vec![1; 10], &[]))
        .collect();
    m.push("insurer-b", more).unwrap();
    assert_eq!(held(b), 20);
    alive(&mut d[0], b);
}

#[test]
fn catch_up_pages_through_more_records_than_one_digest_holds() {
    let fed = Federation::init(&["bank-a", "insurer-b"]);
    fed.all_mutual();
    let m = Hostile::start(MALLORY, &[(&fed.parties[0], fed.addr(0))]);
    for i in 0..2 {
        fed.append_config(i, &m.partner_toml());
    }
    let a = &fed.parties[0];
    let _da = a.start();
    wait_for("mallory connected to bank-a", T, || {
        connected_peers(a)
            .iter()
            .any(|(p, c)| p == MALLORY && *c)
            .then_some(())
    });
    // 5000 records (more than one 4096-entry digest page), all at bank-a.
    for batch in 0..50 {
        let records: Vec<_> = (0..100)
            .map(|i| m.signed(&format!("r/{batch}/{i}"), vec![7; 8], &[]))
            .collect();
        m.push("bank-a", records).unwrap();
    }
    let count = |p: &Party| {
        p.cli(&["--json", "record", "list"])
            .json()
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["origin"] == MALLORY)
            .count()
    };
    wait_for("bank-a holds 5000", T, || (count(a) == 5000).then_some(()));
    // insurer-b starts afterwards and catches up with bank-a alone (Mallory never dials it).
    let b = &fed.parties[1];
    let _db = b.start();
    wait_for("insurer-b caught up", T, || {
        (count(b) == 5000).then_some(())
    });
}

#[test]
fn bad_job_files_are_refused_at_submit_and_create_nothing() {
    let fed = Federation::init(&["bank-a", "insurer-b"]);
    fed.all_mutual();
    fed.edit_config(0, "components = []", "components = [\"noop\"]");
    let _d = fed.start_connected();
    let a = &fed.parties[0];
    let cases = [
        (
            "name: dup\nparties: {guest: [bank-a], host: [insurer-b]}\ntasks:\n  t: {component: noop}\n  t: {component: noop}\n",
            "duplicate key 't' (first at line 4)",
        ),
        (
            "name: stranger\nparties: {guest: [bank-a], host: [zed-c]}\ntasks:\n  t: {component: noop}\n",
            "zed-c is not a partner of bank-a",
        ),
        (
            "name: own\nparties: {guest: [bank-a], host: [insurer-b]}\ntasks:\n  t: {component: sleep, params: {seconds: 1}}\n",
            "own policy refuses the job",
        ),
    ];
    for (spec, message) in cases {
        let out = a.cli(&["job", "submit", &fed.job_file("bad.yaml", spec)]);
        assert_ne!(out.code, Some(0), "{spec}");
        assert!(out.stderr.contains(message), "{message}: {out:?}");
    }
    assert_eq!(
        a.cli(&["--json", "job", "list"]).json(),
        serde_json::json!([])
    );
    let records = a.cli(&["--json", "record", "list"]).json();
    assert!(!records.to_string().contains("job/"), "{records}");
}

#[test]
fn a_model_is_used_only_in_jobs_of_the_parties_that_trained_it() {
    // Every table is shared with every partner: only the model's own rule stands in the way.
    let (fed, mut d, m) = with_mallory_and(&["bank-a", "insurer-b"], &[], |fed| {
        for i in 0..2 {
            fed.edit_config(i, "# \"*\" = [\"*\"]", "\"*\" = [\"*\"]");
        }
    });
    upload_breast_hetero(&fed);
    let train = fed.job_file(
        "scale.yaml",
        "name: scale\nparties: {guest: [bank-a], host: [insurer-b]}\ntasks:\n  reader: {component: reader, role_params: {guest: {table: breast_guest}, host: {table: breast_host}}}\n  fs: {component: feature_scale, inputs: {data: reader.data}}\n",
    );
    let id = submit(&fed.parties[0], &train);
    assert_succeeds(&fed.parties, &id, T);
    let b = &fed.parties[1];
    let models = wait_for("the model at insurer-b", T, || {
        let v = b.cli(&["--json", "model", "list"]).json();
        (!v.as_array().unwrap().is_empty()).then_some(v)
    });
    let model = models[0]["model_id"].as_str().unwrap().to_owned();
    // Mallory asks insurer-b to apply insurer-b's part of that model in a job with Mallory.
    let spec = format!(
        "name: steal\nparties: {{guest: [{MALLORY}], host: [insurer-b]}}\ntasks:\n  reader: {{component: reader, role_params: {{guest: {{table: t}}, host: {{table: breast_host}}}}}}\n  fs: {{component: feature_scale, inputs: {{data: reader.data}}, model: {{id: {model}}}}}\n"
    );
    let steal = job_id();
    m.push(
        "insurer-b",
        vec![m.job_record(&steal, &spec, &[MALLORY, "insurer-b"])],
    )
    .unwrap();
    let v = ended(b, steal.as_str());
    assert_eq!(v["status"], "rejected", "{v}");
    assert!(
        v["reason"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("was not trained with {MALLORY}")),
        "{v}"
    );
    alive(&mut d[1], b);
}

/// A forged record (another partner's name, Mallory's signature) and a tampered one (Mallory's
/// own, changed after signing) are refused by the network layer, whether pushed or relayed,
/// alone or amid good records,
/// and counted against Mallory in `peers --json`; the honest records stay as they were.
#[test]
fn forged_and_tampered_records_are_refused_and_counted_against_the_sender() {
    let (fed, mut d, m) = with_mallory(&["bank-a", "insurer-b"], &[]);
    let (a, b) = (&fed.parties[0], &fed.parties[1]);
    assert_eq!(a.cli(&["record", "put", "greeting", "hello"]).code, Some(0));
    let value_at_b = |origin: &str, key: &str| {
        let out = b.cli(&["--json", "record", "get", origin, key]);
        (out.code == Some(0)).then(|| out.json()["value"].as_str().unwrap().to_owned())
    };
    wait_for("bank-a's record at insurer-b", T, || {
        value_at_b("bank-a", "greeting").filter(|v| v == "hello")
    });
    let peers_at_b = || -> Vec<consort_protocol::control::PeerInfo> {
        // The JSON round-trips into the protocol's own type.
        serde_json::from_value(b.cli(&["--json", "peers"]).json()).unwrap()
    };
    let rejected = |party: &str| {
        peers_at_b()
            .into_iter()
            .find(|p| p.party == party)
            .unwrap()
            .rejected_messages
    };
    assert_eq!(rejected(MALLORY), 0);

    let forged = m.forged("bank-a", "greeting", b"evil".to_vec());
    let mut tampered = m.signed("note", b"signed".to_vec(), &[]);
    tampered.value = b"changed".to_vec();
    // Amid a good record of Mallory's: the push's signatures are checked as one batch, which
    // fails, and then one by one; the good record is kept, the two bad ones are not.
    let amid = m.signed("amid", b"fine".to_vec(), &[]);
    let _ = m.push("insurer-b", vec![forged, amid, tampered]);
    wait_for("two refusals counted against mallory", T, || {
        (rejected(MALLORY) >= 2).then_some(())
    });
    wait_for("mallory's good record of that push", T, || {
        value_at_b(MALLORY, "amid")
    });
    // A genuine record of Mallory's goes through afterwards: the count is exact, not growing.
    m.push("insurer-b", vec![m.signed("genuine", b"ok".to_vec(), &[])])
        .unwrap();
    wait_for("mallory's genuine record", T, || {
        value_at_b(MALLORY, "genuine")
    });
    assert_eq!(rejected(MALLORY), 2);
    assert_eq!(rejected("bank-a"), 0);
    assert_eq!(value_at_b("bank-a", "greeting").as_deref(), Some("hello"));
    assert_eq!(value_at_b(MALLORY, "note"), None);
    // The honest partner's ping round trip is reported.
    let rtt = wait_for("a ping round trip to bank-a", T, || {
        peers_at_b()
            .into_iter()
            .find(|p| p.party == "bank-a")
            .and_then(|p| p.rtt_ms)
    });
    assert!(rtt > 0.0, "{rtt}");
    alive(&mut d[1], b);
}

/// Anti-entropy by job sums is partner-driven: Mallory asks with no sums (everything), with a
/// made-up sum for a job it is not in, with an inverted range and with an oversized page.
/// It only ever gets records it may see, a malformed page is refused, and bank-a stays up.
#[test]
fn sums_from_a_partner_yield_only_what_it_may_see_and_bad_pages_are_refused() {
    use consort_protocol::peer::{DIGEST_PAGE_ENTRIES, JobSum, PeerRequestBody};
    let (fed, mut d, m) = with_mallory(&["bank-a", "insurer-b"], &[]);
    let a = &fed.parties[0];
    let file = fed.job_file(
        "two.yaml",
        "name: two\nparties: {guest: [bank-a], host: [insurer-b]}\ntasks:\n  t: {component: noop}\n",
    );
    let id = submit(a, &file);
    assert_eq!(ended(a, &id)["status"], "success");
    // A record Mallory may see, so that an answer is not empty by accident.
    let public = m.signed("note/mallory", vec![1; 4], &[]);
    m.push("bank-a", vec![public]).unwrap();
    wait_for("bank-a holds mallory's note", T, || {
        a.cli(&["--json", "record", "list"])
            .json()
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["origin"] == MALLORY)
            .then_some(())
    });
    let ask = |sums: Vec<JobSum>, after: Option<&str>, until: Option<&str>| {
        m.request(
            "bank-a",
            PeerRequestBody::Sums {
                sums,
                after: after.map(str::to_owned),
                until: until.map(str::to_owned),
            },
        )
        .unwrap()
    };
    let keys = |resp: PeerResponse| match resp {
        PeerResponse::Records { records, .. } => records
            .into_iter()
            .map(|r| (r.origin.to_string(), r.key))
            .collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    // Everything it may see: its own note, nothing of the job.
    let all = keys(ask(Vec::new(), None, None));
    assert!(all.iter().any(|(_, k)| k == "note/mallory"), "{all:?}");
    assert!(!all.iter().any(|(_, k)| k.contains(&id)), "{all:?}");
    // A sum for the job it is not in changes nothing.
    let probe = vec![JobSum {
        job: id.clone(),
        hash: 1,
    }];
    let probed = keys(ask(probe, None, None));
    assert!(!probed.iter().any(|(_, k)| k.contains(&id)), "{probed:?}");
    // An inverted range is empty, not a crash.
    assert!(keys(ask(Vec::new(), Some("z"), Some("a"))).is_empty());
    // An oversized page is refused.
    let big: Vec<JobSum> = (0..=DIGEST_PAGE_ENTRIES)
        .map(|i| JobSum {
            job: format!("j{i:020x}"),
            hash: 1,
        })
        .collect();
    assert!(matches!(ask(big, None, None), PeerResponse::Error { .. }));
    alive(&mut d[0], a);
}

/// A job's initiator is the hub of its records: it relays a participant's records of that job
/// to the job's other parties (one message per party per step instead of one per pair). A
/// participant cannot use it to reach anybody else: Mallory pushes bank-a a record of
/// bank-a's job addressed to clinic-c too, who is not in the job, and pushes insurer-b (not
/// the initiator) a record of that job. Anti-entropy is off, so only pushes and relays move
/// records; pushes to one party go in order, so once a later, legitimate relay has reached a
/// party, an earlier one would have too.
#[test]
fn a_jobs_initiator_relays_its_records_to_that_jobs_parties_only() {
    let (fed, mut d, m) = with_mallory_and(&["bank-a", "insurer-b", "clinic-c"], &[], |fed| {
        for i in 0..3 {
            fed.edit_config(i, "antientropy_s = 3", "antientropy_s = 3600");
        }
    });
    let (a, b, c) = (&fed.parties[0], &fed.parties[1], &fed.parties[2]);
    let job = |at: &Party, name: &str, hosts: &str| {
        let spec = format!(
            "name: {name}\nparties: {{guest: [{}], host: [{hosts}]}}\ntasks:\n  t: {{component: noop}}\n",
            at.name
        );
        submit(at, &fed.job_file(&format!("{name}.yaml"), &spec))
    };
    let one = job(a, "one", &format!("insurer-b, {MALLORY}"));
    let two = job(a, "two", &format!("clinic-c, {MALLORY}"));
    let three = job(b, "three", &format!("bank-a, {MALLORY}"));
    let held_from = |p: &Party, origin: &str, key: &str| {
        p.cli(&["--json", "record", "get", origin, key]).code == Some(0)
    };
    let held = |p: &Party, key: &str| held_from(p, MALLORY, key);
    // A hub relays for the jobs whose record it holds as their initiator.
    for (hub, id) in [(a, &one), (a, &two), (b, &three)] {
        wait_for("the job record in the initiator's store", T, || {
            held_from(hub, &hub.name, &format!("job/{id}")).then_some(())
        });
    }

    // To the hub alone, addressed to clinic-c as well as to the job's parties.
    let aud_one = [MALLORY, "bank-a", "insurer-b", "clinic-c"];
    let note = |key: String, aud: &[&str]| m.signed(&key, b"x".to_vec(), aud);
    m.push("bank-a", vec![note(format!("decision/{one}"), &aud_one)])
        .unwrap();
    // To a party that is not the job's initiator.
    m.push("insurer-b", vec![note(format!("stop/{one}"), &aud_one)])
        .unwrap();
    // Then legitimate relays to clinic-c (by bank-a) and to bank-a (by insurer-b).
    m.push(
        "bank-a",
        vec![note(
            format!("decision/{two}"),
            &[MALLORY, "bank-a", "clinic-c"],
        )],
    )
    .unwrap();
    m.push(
        "insurer-b",
        vec![note(
            format!("decision/{three}"),
            &[MALLORY, "bank-a", "insurer-b"],
        )],
    )
    .unwrap();

    wait_for("relayed by bank-a to insurer-b", T, || {
        held(b, &format!("decision/{one}")).then_some(())
    });
    wait_for("relayed by bank-a to clinic-c", T, || {
        held(c, &format!("decision/{two}")).then_some(())
    });
    wait_for("relayed by insurer-b to bank-a", T, || {
        held(a, &format!("decision/{three}")).then_some(())
    });
    assert!(
        !held(c, &format!("decision/{one}")),
        "bank-a relayed a record of job one to clinic-c, who is not in it"
    );
    assert!(
        !held(a, &format!("stop/{one}")),
        "insurer-b relayed a record of a job it did not initiate"
    );
    for (i, p) in [a, b, c].into_iter().enumerate() {
        alive(&mut d[i], p);
    }
}

//! Federated jobs on real daemons: proposal, decentralized scheduling, failure, stop, restarts.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use consort_tests::{
    Federation, assert_succeeds, job_show, submit, task_of, wait_for, wait_job_state,
};

const T: Duration = Duration::from_secs(60);

fn three() -> Federation {
    let fed = Federation::init(&["bank-a", "insurer-b", "clinic-c"]);
    fed.all_mutual();
    fed
}

fn example(name: &str) -> String {
    format!("{}/../examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn a_three_party_dag_succeeds_with_the_same_state_everywhere() {
    let fed = three();
    let _d = fed.start_connected();
    let a = &fed.parties[0];
    let out = a.cli(&[
        "job",
        "submit",
        &example("smoke.yaml"),
        "--wait",
        "--timeout",
        "60",
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let id = out
        .stdout
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("submitted ")
        .to_owned();
    for p in &fed.parties {
        let v = wait_job_state(p, &id, &["success"], T);
        let tasks = v["tasks"].as_array().unwrap();
        assert_eq!(tasks.len(), 8);
        assert!(tasks.iter().all(|t| t["status"] == "success"), "{v}");
        assert_eq!(v["initiator"], "bank-a");
    }
    // The guest's sum was checked against `expect` and logged as a metric.
    let m = a
        .cli(&["--json", "metric", "get", &id, "sum", "sum", "total"])
        .json();
    assert_eq!(m[0]["points"][0][1], 7.0);
    let waited = a.cli(&["job", "wait", &id]);
    assert_eq!(waited.code, Some(0));
}

#[test]
fn a_failing_task_fails_the_job_everywhere_with_party_and_message() {
    let fed = three();
    let _d = fed.start_connected();
    let file = fed.job_file(
        "fail.yaml",
        "name: failing\nparties: {guest: [bank-a], host: [insurer-b, clinic-c]}\ntasks:\n  ok: {component: noop}\n  boom: {component: fail, roles: [host], depends_on: [ok], party_params: {clinic-c: {message: disk on fire}}}\n  never: {component: noop, depends_on: [boom]}\n",
    );
    let id = submit(&fed.parties[0], &file);
    for p in &fed.parties {
        let v = wait_job_state(p, &id, &["failed"], T);
        let reason = v["reason"].as_str().unwrap();
        assert!(reason.contains("task boom failed at"), "{reason}");
        let boom = task_of(&v, "boom");
        assert_eq!(boom["status"], "failed");
        // Both hosts fail; whichever failure arrives first fails the job, the other follows.
        let c = wait_for("clinic-c's failure", T, || {
            let c = task_of(&job_show(p, &id), "boom")["parties"]["clinic-c"].clone();
            (c["state"] == "failed").then_some(c)
        });
        assert_eq!(c["error"], "disk on fire");
        let never = task_of(&v, "never");
        assert!(
            never["parties"]
                .as_object()
                .unwrap()
                .values()
                .all(|r| r["state"] != "success")
        );
    }
    let waited = fed.parties[1].cli(&["job", "wait", &id]);
    assert_eq!(waited.code, Some(1), "{waited:?}");
}

/// Registers at every party of `fed` the script operator `hold`: it starts a background
/// `sleep 600`, writes its own pid and the background one's to `<pids>/<party>.pids`, and waits.
/// Returns the pid directory.
fn register_hold_operator(fed: &Federation) -> std::path::PathBuf {
    let pids = std::path::PathBuf::from(fed.job_file("pids", "")).with_extension("d");
    std::fs::create_dir_all(&pids).unwrap();
    let script = fed.job_file(
        "hold.sh",
        "sleep 600 &\necho \"$$ $!\" > \"$PIDS/$CONSORT_PARTY.tmp\"\nmv \"$PIDS/$CONSORT_PARTY.tmp\" \"$PIDS/$CONSORT_PARTY.pids\"\nwait\n",
    );
    for i in 0..fed.parties.len() {
        fed.append_config(
            i,
            &format!(
                "\n[operators.hold]\ncommand = [\"sh\", \"{script}\"]\nenv = {{ PIDS = \"{}\" }}\n",
                pids.display()
            ),
        );
    }
    pids
}

/// The pids `hold` wrote at `party` (the shell, then its background `sleep`), once written.
fn held_pids(pids: &std::path::Path, party: &str) -> Option<Vec<u32>> {
    let text = std::fs::read_to_string(pids.join(format!("{party}.pids"))).ok()?;
    let v: Vec<u32> = text
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    assert!(v.len() == 2 && v.iter().all(|p| *p > 1), "{text:?}");
    Some(v)
}

/// Whether `pid` is still a live process running our script or its `sleep` (a zombie, or a pid
/// reused by an unrelated program, does not count).
fn still_running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // Field 3, after the parenthesised command name, is the state.
    let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline);
    state != Some(Some('Z')) && (cmdline.contains("sleep") || cmdline.contains("hold.sh"))
}

#[test]
fn stop_cancels_a_sleeping_job_everywhere_within_2_s_and_kills_the_processes() {
    let fed = three();
    let pids = register_hold_operator(&fed);
    let _d = fed.start_connected();
    let file = fed.job_file(
        "sleep.yaml",
        "name: sleepy\nparties: {guest: [bank-a], host: [insurer-b, clinic-c]}\ntasks:\n  nap: {component: sleep, params: {seconds: 600}}\n  held: {component: \"script:hold\"}\n  after: {component: noop, depends_on: [nap, held]}\n",
    );
    let id = submit(&fed.parties[0], &file);
    let names = ["bank-a", "insurer-b", "clinic-c"];
    for p in &fed.parties {
        wait_for("nap and held running everywhere", T, || {
            let v = job_show(p, &id);
            let all = ["nap", "held"].iter().all(|t| {
                let t = task_of(&v, t);
                names.iter().all(|q| t["parties"][q]["state"] == "running")
            });
            all.then_some(())
        });
    }
    let held: Vec<u32> = names
        .iter()
        .flat_map(|q| wait_for("the script's pids", T, || held_pids(&pids, q)))
        .collect();
    assert!(held.iter().all(|p| still_running(*p)), "{held:?}");

    // Stop from a non-initiator; one window, from the stop to the last party's last cancel.
    let stopped = Instant::now();
    let out = fed.parties[2].cli(&["job", "stop", &id]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let mut pending: Vec<&consort_tests::Party> = fed.parties.iter().collect();
    wait_for(
        "every run canceled at every party",
        Duration::from_secs(2),
        || {
            // A run is recorded canceled only once its component has returned (the built-in
            // sleep's thread) or its process group was killed and reaped (the script).
            pending.retain(|p| {
                let v = job_show(p, &id);
                let runs_canceled = ["nap", "held"].iter().all(|t| {
                    let t = task_of(&v, t);
                    names.iter().all(|q| t["parties"][q]["state"] == "canceled")
                });
                !(v["status"] == "canceled" && runs_canceled)
            });
            pending.is_empty().then_some(())
        },
    );
    let took = stopped.elapsed();
    eprintln!("canceled at all 3 parties {took:?} after the stop");
    // The scripts and their background children are gone at every party.
    let alive: Vec<u32> = held.iter().copied().filter(|p| still_running(*p)).collect();
    assert!(alive.is_empty(), "still running after the stop: {alive:?}");
    assert_eq!(fed.parties[0].cli(&["job", "wait", &id]).code, Some(1));
}

fn kill_during_sleep(retries: u32) -> (Federation, String, Vec<consort_tests::Daemon>) {
    let fed = three();
    let mut d = fed.start_connected();
    let file = fed.job_file(
        "retry.yaml",
        &format!(
            "name: retry\nparties: {{guest: [bank-a], host: [insurer-b, clinic-c]}}\nconf: {{auto_retries: {retries}}}\ntasks:\n  nap: {{component: sleep, params: {{seconds: 3}}}}\n  after: {{component: relay, depends_on: [nap]}}\n"
        ),
    );
    let id = submit(&fed.parties[0], &file);
    let b = &fed.parties[1];
    // Wait until the initiator has heard that insurer-b runs it: then insurer-b's own record
    // of the run is on its disk (records are flushed before they are published).
    wait_for("nap running at insurer-b, as seen by bank-a", T, || {
        let nap = task_of(&job_show(&fed.parties[0], &id), "nap");
        (nap["parties"]["insurer-b"]["state"] == "running").then_some(())
    });

    d[1].kill9();
    d[1] = b.start();
    (fed, id, d)
}

#[test]
fn a_killed_party_restarts_and_the_task_is_retried() {
    let (fed, id, _d) = kill_during_sleep(1);
    for p in &fed.parties {
        let v = wait_job_state(p, &id, &["success"], T);
        let nap = task_of(&v, "nap");
        assert_eq!(nap["parties"]["insurer-b"]["attempt"], 2, "{v}");
    }
}

#[test]
fn without_retries_a_killed_party_fails_the_job_everywhere() {
    let (fed, id, _d) = kill_during_sleep(0);
    for p in &fed.parties {
        let v = wait_job_state(p, &id, &["failed"], T);
        let reason = v["reason"].as_str().unwrap();
        assert!(
            reason.contains("insurer-b") && reason.contains("restarted"),
            "{reason}"
        );
    }
}

#[test]
fn the_job_completes_after_the_initiator_comes_back() {
    let fed = three();
    // The hosts' task runs until the test opens a gate: the initiator is certainly away while
    // it runs, whatever the machine's speed.
    let gate = std::path::PathBuf::from(fed.job_file("gate", "")).with_extension("open");
    let script = fed.job_file("gate.sh", "while [ ! -e \"$GATE\" ]; do sleep 0.02; done\n");
    for i in 0..3 {
        fed.append_config(
            i,
            &format!(
                "\n[operators.gate]\ncommand = [\"sh\", \"{script}\"]\nenv = {{ GATE = \"{}\" }}\n",
                gate.display()
            ),
        );
    }
    let mut d = fed.start_connected();
    let file = fed.job_file(
        "long.yaml",
        "name: long\nparties: {guest: [bank-a], host: [insurer-b, clinic-c]}\ntasks:\n  first: {component: noop}\n  nap: {component: \"script:gate\", roles: [host], depends_on: [first]}\n  last: {component: relay, depends_on: [nap]}\n",
    );
    let a = &fed.parties[0];
    let id = submit(a, &file);
    let nap_state = |p: &consort_tests::Party, q: &str| {
        task_of(&job_show(p, &id), "nap")["parties"][q]["state"].clone()
    };
    wait_for("nap running at both hosts", T, || {
        let b = &fed.parties[1];
        (nap_state(b, "insurer-b") == "running" && nap_state(b, "clinic-c") == "running")
            .then_some(())
    });
    // The initiator goes away (cleanly) while the hosts run, and comes back after they finish.
    assert_eq!(a.cli(&["shutdown"]).code, Some(0));
    d[0].wait_exit(T);
    for q in ["insurer-b", "clinic-c"] {
        assert_eq!(nap_state(&fed.parties[1], q), "running", "{q}");
    }
    std::fs::write(&gate, "").unwrap();
    wait_for("nap done at the hosts", T, || {
        let v = job_show(&fed.parties[1], &id);
        (task_of(&v, "nap")["status"] == "success").then_some(())
    });
    assert!(d[0].try_exit().is_some(), "the initiator stayed away");
    d[0] = a.start();
    for p in &fed.parties {
        wait_job_state(p, &id, &["success"], T);
    }
}

#[test]
fn an_unregistered_script_operator_is_rejected_with_the_reason_at_the_initiator() {
    let fed = three();
    // bank-a registers `prep`; insurer-b does not.
    fed.append_config(0, "\n[operators.prep]\ncommand = [\"true\"]\n");
    let _d = fed.start_connected();
    let file = fed.job_file(
        "script.yaml",
        "name: scripted\nparties: {guest: [bank-a], host: [insurer-b]}\ntasks:\n  prep: {component: \"script:prep\"}\n",
    );
    let id = submit(&fed.parties[0], &file);
    let v = wait_job_state(&fed.parties[0], &id, &["rejected"], T);
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.contains("rejected by insurer-b") && reason.contains("script operator 'prep'"),
        "{reason}"
    );
    wait_job_state(&fed.parties[1], &id, &["rejected"], T);
}

#[test]
fn an_invalid_job_creates_nothing() {
    let fed = Federation::init(&["bank-a"]);
    let _d = fed.parties[0].start();
    let file = fed.job_file(
        "bad.yaml",
        "name: j\nparties: {guest: [bank-a]}\ntasks:\n  x: {component: nope}\n",
    );
    let out = fed.parties[0].cli(&["job", "submit", &file]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .contains("tasks.x.component: unknown component 'nope'"),
        "{}",
        out.stderr
    );
    let list = fed.parties[0].cli(&["--json", "job", "list"]).json();
    assert_eq!(list.as_array().unwrap().len(), 0);
}

#[test]
fn twenty_jobs_submitted_at_once_across_three_parties_all_succeed() {
    let fed = three();
    let _d = fed.start_connected();
    let file = fed.job_file(
        "small.yaml",
        "name: small\nparties: {guest: [bank-a], host: [insurer-b, clinic-c]}\ntasks:\n  a: {component: relay}\n  b: {component: sum, depends_on: [a], params: {value: 1}, role_params: {guest: {expect: 3}}}\n",
    );
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let p = &fed.parties[i % 3];
                let f = file.clone();
                s.spawn(move || submit(p, &f))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for id in &ids {
        for p in &fed.parties {
            wait_job_state(p, id, &["success"], Duration::from_secs(60));
        }
    }
}

#[test]
fn a_large_payload_streams_through_the_data_channel_in_chunks() {
    let fed = Federation::init(&["bank-a", "insurer-b"]);
    fed.all_mutual();
    // Peer messages are capped at 8 MiB here, so only a chunked transfer can deliver 40 MiB.
    for i in 0..2 {
        fed.edit_config(
            i,
            "antientropy_s = 3",
            "antientropy_s = 3\nmax_message_bytes = 8388608",
        );
    }
    let _d = fed.start_connected();
    // 40 MiB: ten 4 MiB chunks, several in flight, hashed at both ends.
    let file = fed.job_file(
        "blob.yaml",
        "name: blob\nparties: {guest: [bank-a], host: [insurer-b]}\ntasks:\n  blob: {component: blob, params: {size_mb: 40}}\n",
    );
    let id = submit(&fed.parties[0], &file);
    assert_succeeds(&fed.parties, &id, T);
    let m = fed.parties[1]
        .cli(&["--json", "metric", "get", &id, "blob", "blob", "bytes"])
        .json();
    assert_eq!(m[0]["points"][0][1], 40.0 * 1048576.0, "{m}");
    // Nothing is left behind in the receiver's mailbox or scratch space (the job directory
    // keeps only its bookkeeping marker).
    let leftovers: Vec<_> = walk(&fed.parties[1].dir.join("mailbox"))
        .into_iter()
        .chain(walk(&fed.parties[1].dir.join("jobs")))
        .filter(|p| p.is_file() && !p.ends_with(".models-stored"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn a_script_operator_exchanges_a_file_and_logs_a_metric() {
    let fed = Federation::init(&["bank-a", "insurer-b"]);
    fed.all_mutual();
    // insurer-b shares its task logs with bank-a; bank-a shares with nobody.
    fed.edit_config(1, "share_logs_with = []", "share_logs_with = [\"bank-a\"]");
    let script = fed.job_file(
        "greet.sh",
        r#"set -e
echo "hello from $CONSORT_PARTY" > mine.txt
if [ "$CONSORT_ROLE" = guest ]; then OTHER=host; else OTHER=guest; fi
"$CONSORT_BIN" task remote --to "$OTHER" --tag greet mine.txt
"$CONSORT_BIN" task get --from "$OTHER" --tag greet -o theirs.txt
grep -q "hello from" theirs.txt
# A payload larger than one channel chunk, streamed by the daemons from and into files.
head -c 9437184 /dev/urandom > big.bin
sha256sum < big.bin | cut -d' ' -f1 > big.sha
"$CONSORT_BIN" task remote --to "$OTHER" --tag big big.bin
"$CONSORT_BIN" task remote --to "$OTHER" --tag big.sha big.sha
"$CONSORT_BIN" task get --from "$OTHER" --tag big -o big.theirs
"$CONSORT_BIN" task get --from "$OTHER" --tag big.sha -o big.theirs.sha
test "$(sha256sum < big.theirs | cut -d' ' -f1)" = "$(cat big.theirs.sha)"
test "$(wc -c < big.theirs)" -eq 9437184
"$CONSORT_BIN" task metric script bytes 0 "$(wc -c < theirs.txt)"
"$CONSORT_BIN" task metric-meta script bytes '{"unit": "bytes"}'
"$CONSORT_BIN" task log "got: $(cat theirs.txt)"
cp theirs.txt outputs/greeting
echo "done as $CONSORT_ROLE"
"#,
    );
    let consort = consort_tests::bin("consort");
    for i in 0..2 {
        fed.append_config(
            i,
            &format!(
                "\n[operators.greet]\ncommand = [\"sh\", \"{script}\"]\nenv = {{ CONSORT_BIN = \"{}\" }}\n",
                consort.display()
            ),
        );
    }
    let _d = fed.start_connected();
    let file = fed.job_file(
        "script.yaml",
        "name: greeting\nparties: {guest: [bank-a], host: [insurer-b]}\ntasks:\n  greet: {component: \"script:greet\"}\n",
    );
    let id = submit(&fed.parties[0], &file);
    assert_succeeds(&fed.parties, &id, T);
    // bank-a received "hello from insurer-b\n": 21 bytes.
    let m = fed.parties[0]
        .cli(&["--json", "metric", "get", &id, "greet", "script", "bytes"])
        .json();
    assert_eq!(m[0]["points"][0][1], 21.0, "{m}");
    assert_eq!(m[0]["meta"]["unit"], "bytes", "{m}");
    let log = fed.parties[1].cli(&["job", "log", &id]);
    assert!(
        log.stdout.contains("got: hello from bank-a"),
        "{}",
        log.stdout
    );
    assert!(
        log.stdout.contains("done as host"),
        "stdout goes to the task log: {}",
        log.stdout
    );
    // Another party's logs, by request, where its policy allows.
    let remote = fed.parties[0].cli(&["job", "log", &id, "--party", "insurer-b", "--follow"]);
    assert_eq!(remote.code, Some(0), "{remote:?}");
    assert!(
        remote.stdout.contains("got: hello from bank-a"),
        "{}",
        remote.stdout
    );
    let refused = fed.parties[1].cli(&["job", "log", &id, "--party", "bank-a"]);
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("does not share its logs with insurer-b"),
        "{}",
        refused.stderr
    );
}

#[test]
fn a_task_running_too_long_times_out_and_fails_the_job() {
    let fed = Federation::init(&["bank-a", "insurer-b"]);
    fed.all_mutual();
    let _d = fed.start_connected();
    let file = fed.job_file(
        "slow.yaml",
        "name: slow\nparties: {guest: [bank-a], host: [insurer-b]}\nconf: {task_timeout_s: 1}\ntasks:\n  nap: {component: sleep, params: {seconds: 60}}\n",
    );
    let id = submit(&fed.parties[0], &file);
    for p in &fed.parties {
        let v = wait_job_state(p, &id, &["failed"], T);
        let reason = v["reason"].as_str().unwrap();
        assert!(reason.contains("timed out"), "{reason}");
    }
}

#[test]
fn a_script_operator_running_too_long_is_killed_with_its_process_group() {
    let fed = Federation::init(&["bank-a", "insurer-b"]);
    fed.all_mutual();
    let pids = register_hold_operator(&fed);
    let _d = fed.start_connected();
    let file = fed.job_file(
        "slow.yaml",
        "name: slow\nparties: {guest: [bank-a], host: [insurer-b]}\nconf: {task_timeout_s: 2}\ntasks:\n  held: {component: \"script:hold\"}\n",
    );
    let id = submit(&fed.parties[0], &file);
    let held: Vec<u32> = ["bank-a", "insurer-b"]
        .iter()
        .flat_map(|q| wait_for("the script's pids", T, || held_pids(&pids, q)))
        .collect();
    for p in &fed.parties {
        let v = wait_job_state(p, &id, &["failed"], T);
        let reason = v["reason"].as_str().unwrap();
        assert!(reason.contains("timed out"), "{reason}");
    }
    // Each run is recorded as ended only once its process group was killed and reaped; at
    // least one ended by the timeout (the other may be canceled when the job fails).
    let v = wait_for("both runs ended", T, || {
        let v = job_show(&fed.parties[0], &id);
        let runs = &task_of(&v, "held")["parties"];
        let ended = ["bank-a", "insurer-b"]
            .iter()
            .all(|q| runs[q]["state"] == "failed" || runs[q]["state"] == "canceled");
        ended.then_some(v)
    });
    let runs = &task_of(&v, "held")["parties"];
    let timed_out = ["bank-a", "insurer-b"]
        .iter()
        .filter(|q| {
            runs[q]["error"]
                .as_str()
                .is_some_and(|e| e.contains("timed out"))
        })
        .count();
    assert!(timed_out >= 1, "{v}");
    let alive: Vec<u32> = held.iter().copied().filter(|p| still_running(*p)).collect();
    assert!(
        alive.is_empty(),
        "still running after the timeout: {alive:?}"
    );
}

#[test]
fn manual_approval_holds_the_job_until_an_operator_decides() {
    let fed = Federation::init(&["bank-a", "insurer-b"]);
    fed.all_mutual();
    fed.edit_config(1, "manual_approval = false", "manual_approval = true");
    let _d = fed.start_connected();
    let file = fed.job_file(
        "ok.yaml",
        "name: ok\nparties: {guest: [bank-a], host: [insurer-b]}\ntasks:\n  r: {component: relay}\n",
    );
    let (a, b) = (&fed.parties[0], &fed.parties[1]);
    let first = submit(a, &file);
    let v = wait_for("held for approval", T, || {
        let v = job_show(a, &first);
        v["reason"]
            .as_str()
            .is_some_and(|r| r.contains("awaiting manual approval"))
            .then_some(v)
    });
    assert_eq!(v["status"], "pending");
    assert_eq!(b.cli(&["job", "approve", &first]).code, Some(0));
    wait_job_state(a, &first, &["success"], T);

    let second = submit(a, &file);
    wait_for("second held", T, || {
        (job_show(b, &second)["status"] == "pending").then_some(())
    });
    wait_for("decision recorded", T, || {
        let out = b.cli(&["job", "reject", &second, "--reason", "not this quarter"]);
        (out.code == Some(0)).then_some(())
    });
    let v = wait_job_state(a, &second, &["rejected"], T);
    assert!(
        v["reason"].as_str().unwrap().contains("not this quarter"),
        "{v}"
    );
    // Approving a job that is not waiting is refused, and changes nothing.
    let out = b.cli(&["job", "approve", &first]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "job {first} is not waiting for this party's approval"
        )),
        "{}",
        out.stderr
    );
    assert_eq!(job_show(b, &first)["status"], "success");
    assert_eq!(job_show(b, &second)["status"], "rejected");
}

#[test]
fn a_stopped_job_reruns_reusing_what_succeeded() {
    let fed = Federation::init(&["bank-a", "insurer-b"]);
    fed.all_mutual();
    let _d = fed.start_connected();
    let file = fed.job_file(
        "rerun.yaml",
        "name: rerun\nparties: {guest: [bank-a], host: [insurer-b]}\ntasks:\n  first: {component: relay}\n  nap: {component: sleep, depends_on: [first], params: {seconds: 1}}\n  last: {component: relay, depends_on: [nap]}\n",
    );
    let (a, b) = (&fed.parties[0], &fed.parties[1]);
    let id = submit(a, &file);
    wait_for("nap running", T, || {
        (task_of(&job_show(a, &id), "nap")["status"] == "running").then_some(())
    });
    assert_eq!(a.cli(&["job", "stop", &id]).code, Some(0));
    wait_job_state(b, &id, &["canceled"], T);
    // Rerun from the other party.
    let out = b.cli(&["job", "rerun", &id]);
    assert_eq!(out.code, Some(0), "{out:?}");
    for p in &fed.parties {
        let v = wait_job_state(p, &id, &["success"], T);
        assert_eq!(
            task_of(&v, "first")["parties"]["bank-a"]["attempt"],
            1,
            "reused: {v}"
        );
        assert_eq!(
            task_of(&v, "nap")["parties"]["insurer-b"]["attempt"],
            2,
            "{v}"
        );
        assert_eq!(task_of(&v, "last")["parties"]["bank-a"]["state"], "success");
    }
    // Rerun from a task, on a finished job, is refused; from an unknown task too.
    let out = a.cli(&["job", "rerun", &id, "--from", "nap"]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("only failed or canceled jobs"),
        "{}",
        out.stderr
    );
}

/// `job watch` is a long poll: answered at once when the asker's revision is out of date, at
/// the job's end when that is what it waits for, and, when nothing changes, only at its
/// timeout (with the same revision). `job wait` is built on it.
#[test]
fn job_watch_answers_at_a_change_or_the_end_and_otherwise_waits() {
    use consort_protocol::{JobInfo, Request, Response};
    let fed = Federation::init(&["bank-a", "insurer-b"]);
    fed.all_mutual();
    let _d = fed.start_connected();
    let a = &fed.parties[0];
    let file = fed.job_file(
        "nap.yaml",
        "name: nap\nparties: {guest: [bank-a], host: [insurer-b]}\ntasks:\n  first: {component: noop}\n  nap: {component: sleep, roles: [host], depends_on: [first], params: {seconds: 1}}\n  last: {component: noop, depends_on: [nap]}\n",
    );
    let id = submit(a, &file);
    let mut conn = consort_tests::RawConn::open(&a.socket());
    let mut watch = |revision: u64, timeout_ms: u64, until_end: bool| -> (JobInfo, Duration) {
        let t = Instant::now();
        let request = Request::JobWatch {
            job: id.clone(),
            revision,
            timeout_ms,
            until_end,
        };
        match conn.call(request) {
            Some(Response::Job(info)) => (info, t.elapsed()),
            other => panic!("{other:?}"),
        }
    };
    // Out of date (0: never seen): at once, long before the timeout.
    let (first, took) = watch(0, 30_000, false);
    assert_ne!(first.revision, 0);
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        !["success", "failed"].contains(&first.status.as_str()),
        "{first:?}"
    );
    // Until the end: one answer, the final state.
    let (end, _) = watch(first.revision, 60_000, true);
    assert_eq!(end.status, "success", "{end:?}");
    assert_ne!(end.revision, first.revision);
    // Nothing changes any more: the answer comes at the timeout, with the same revision.
    let (same, took) = watch(end.revision, 400, false);
    assert_eq!(same.revision, end.revision);
    assert!(took >= Duration::from_millis(400), "{took:?}");
    // An unknown job is an error, not a wait.
    assert!(
        conn.call(Request::JobWatch {
            job: "j00000000000000000000".into(),
            revision: 0,
            timeout_ms: 60_000,
            until_end: true,
        })
        .is_none()
    );
}

/// Six parties, more than the hub gathers relays for: the initiator holds each step's records
/// until every party's is in (or none came for a moment, as in the steps only some parties
/// run), and the job still succeeds with the same state everywhere — every party's data
/// exchanged with every other, steps at the guest alone and at the hosts alone included. The
/// periodic anti-entropy is off (an hour), so every record of the job travels by push and relay.
#[test]
fn a_six_party_job_through_the_gathering_hub_succeeds_everywhere() {
    let names = [
        "bank-a",
        "insurer-b",
        "clinic-c",
        "bank-d",
        "insurer-e",
        "clinic-f",
    ];
    let fed = Federation::init(&names);
    fed.all_mutual();
    for i in 0..names.len() {
        fed.edit_config(i, "antientropy_s = 3", "antientropy_s = 3600");
    }
    let _d = fed.start_connected();
    let a = &fed.parties[0];
    let spec = format!(
        "name: six\nparties:\n  guest: [{}]\n  host: [{}]\ntasks:\n  \
         start: {{component: noop}}\n  \
         guest_only: {{component: noop, roles: [guest], depends_on: [start]}}\n  \
         hosts_only: {{component: noop, roles: [host], depends_on: [guest_only]}}\n  \
         relay: {{component: relay, depends_on: [hosts_only]}}\n  \
         end: {{component: noop, depends_on: [relay]}}\n",
        names[0],
        names[1..].join(", ")
    );
    let file = a.dir.join("six.yaml");
    std::fs::write(&file, spec).unwrap();
    let id = submit(a, file.to_str().unwrap());
    for p in &fed.parties {
        let v = wait_job_state(p, &id, &["success"], T);
        let tasks = v["tasks"].as_array().unwrap();
        assert_eq!(tasks.len(), 5, "{v}");
        assert!(tasks.iter().all(|t| t["status"] == "success"), "{v}");
        assert_eq!(v["initiator"], "bank-a");
    }
}

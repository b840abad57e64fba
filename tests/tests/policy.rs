//! `[policy.tables]` on real daemons: a per-table entry names the partners a table may be used
//! with, overrides the `"*"` default, and an unlisted table stays private; checked at submit
//! for the initiator's own tables and at acceptance by every other party for theirs.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use consort_tests::{Federation, Party, assert_succeeds, job_show, submit, wait_job_state};

const T: Duration = Duration::from_secs(60);

fn upload(fed: &Federation, i: usize, table: &str) {
    let csv = fed.job_file(&format!("{table}.csv"), "id,x0\n1,0.5\n2,1.5\n3,2.5\n");
    let out = fed.parties[i].cli(&["data", "upload", &csv, "--name", table]);
    assert_eq!(out.code, Some(0), "{out:?}");
}

/// A reader job: bank-a reads `guest_table`; each host reads the table given for it.
fn reader_job(fed: &Federation, name: &str, guest_table: &str, hosts: &[(&str, &str)]) -> String {
    let host_names: Vec<&str> = hosts.iter().map(|(h, _)| *h).collect();
    let party_params: Vec<String> = hosts
        .iter()
        .map(|(h, t)| format!("{h}: {{table: {t}}}"))
        .collect();
    fed.job_file(
        &format!("{name}.yaml"),
        &format!(
            "name: {name}\nparties: {{guest: [bank-a], host: [{}]}}\ntasks:\n  read:\n    component: reader\n    role_params: {{guest: {{table: {guest_table}}}}}\n    party_params: {{{}}}\n",
            host_names.join(", "),
            party_params.join(", ")
        ),
    )
}

fn jobs(p: &Party) -> serde_json::Value {
    p.cli(&["--json", "job", "list"]).json()
}

#[test]
fn per_table_and_per_partner_entries_decide_who_may_use_a_table() {
    let fed = Federation::init(&["bank-a", "insurer-b", "clinic-c"]);
    fed.all_mutual();
    // bank-a: shared_t with insurer-b only, open_t with anybody, secret_t with nobody (no entry
    // and no "*"). insurer-b: everything with anybody, except b_t with bank-a only.
    fed.edit_config(
        0,
        "# breast_guest = [\"insurer-b\"]",
        "shared_t = [\"insurer-b\"]\nopen_t = [\"*\"]",
    );
    fed.edit_config(
        1,
        "# \"*\" = [\"*\"]",
        "\"*\" = [\"*\"]\nb_t = [\"bank-a\"]",
    );
    fed.edit_config(2, "# \"*\" = [\"*\"]", "\"*\" = [\"*\"]");
    let _d = fed.start_connected();
    for t in ["shared_t", "open_t", "secret_t"] {
        upload(&fed, 0, t);
    }
    upload(&fed, 1, "b_t");
    upload(&fed, 1, "any_t");
    upload(&fed, 2, "c_t");
    let a = &fed.parties[0];

    // Allowed by the per-table entry.
    let ok = submit(
        a,
        &reader_job(&fed, "shared-b", "shared_t", &[("insurer-b", "any_t")]),
    );
    assert_succeeds(&fed.parties[..2], &ok, T);

    // The same table with a partner its entry does not name, and a table with no entry: both
    // refused at submit, with the table and the partner named, and nothing created.
    let before = jobs(a);
    for (file, table, partner) in [
        (
            reader_job(&fed, "shared-c", "shared_t", &[("clinic-c", "c_t")]),
            "shared_t",
            "clinic-c",
        ),
        (
            reader_job(&fed, "secret-b", "secret_t", &[("insurer-b", "any_t")]),
            "secret_t",
            "insurer-b",
        ),
    ] {
        let out = a.cli(&["job", "submit", &file]);
        assert_eq!(out.code, Some(1), "{out:?}");
        let expected = format!("does not let table '{table}' be used in jobs with {partner}");
        assert!(out.stderr.contains(&expected), "{expected}: {}", out.stderr);
        assert_eq!(jobs(a), before, "nothing created");
    }

    // insurer-b's entry for b_t overrides its "*": a job with clinic-c in it is rejected by
    // insurer-b, naming the table and clinic-c; the same table in a job with bank-a alone runs.
    let three = submit(
        a,
        &reader_job(
            &fed,
            "b-with-c",
            "open_t",
            &[("insurer-b", "b_t"), ("clinic-c", "c_t")],
        ),
    );
    for p in &fed.parties {
        let v = wait_job_state(p, &three, &["rejected", "success", "failed"], T);
        assert_eq!(v["status"], "rejected", "{}: {v}", p.name);
    }
    let reason = job_show(a, &three)["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.contains("rejected by insurer-b")
            && reason.contains("does not let table 'b_t' be used in jobs with clinic-c"),
        "{reason}"
    );
    let two = submit(
        a,
        &reader_job(&fed, "b-alone", "open_t", &[("insurer-b", "b_t")]),
    );
    assert_succeeds(&fed.parties[..2], &two, T);
}

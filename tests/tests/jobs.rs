//! Job files through the real CLI.

#![allow(clippy::unwrap_used)]

use consort_tests::consort;

fn example(name: &str) -> String {
    format!("{}/../examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn validate_prints_the_plan_in_dependency_order() {
    let out = consort(&["--json", "job", "validate", &example("smoke.yaml")]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let plan = out.json();
    let order: Vec<&str> = plan["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(order.len(), 8);
    let pos = |n: &str| order.iter().position(|t| *t == n).unwrap();
    assert!(
        pos("start") < pos("relay")
            && pos("relay") < pos("pause")
            && pos("pause") < pos("relay_again")
    );
    assert_eq!(pos("done"), 7);
    let human = consort(&["job", "validate", &example("smoke.yaml")]);
    assert_eq!(human.code, Some(0));
    assert!(
        human.stdout.starts_with("job 'smoke' is valid: 8 tasks"),
        "{}",
        human.stdout
    );
}

#[test]
fn every_example_job_file_is_valid() {
    let dir = format!("{}/../examples", env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let out = consort(&["job", "validate", path.to_str().unwrap()]);
            assert_eq!(out.code, Some(0), "{}: {out:?}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 7, "{checked} example files");
}

#[test]
fn invalid_job_files_name_each_problem_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "name: j\nparties: {guest: [a], host: [a, a]}\ntasks:\n  x: {component: nope}\n  y: {component: noop, inputs: {data: psi2.data}}\n",
    )
    .unwrap();
    let out = consort(&["job", "validate", bad.to_str().unwrap()]);
    assert_eq!(out.code, Some(1), "{out:?}");
    for expected in [
        "parties.host[1]: party 'a' is listed twice in role host",
        "tasks.x.component: unknown component 'nope'",
        "tasks.y.inputs.data: no task 'psi2'",
    ] {
        assert!(
            out.stderr.contains(expected),
            "missing {expected:?} in {}",
            out.stderr
        );
    }
    let out = consort(&["--json", "job", "validate", bad.to_str().unwrap()]);
    assert_eq!(out.code, Some(1));
    assert_eq!(out.json()["errors"].as_array().unwrap().len(), 3);

    std::fs::write(&bad, "name: j\ntasks: [unclosed\n").unwrap();
    let out = consort(&["job", "validate", bad.to_str().unwrap()]);
    assert_eq!(out.code, Some(1));
    // The file, the place and the parser's reason; one problem.
    let path = bad.to_str().unwrap();
    assert!(
        out.stderr
            .contains(&format!("{path}: line 3, column 1: invalid YAML"))
            && out.stderr.contains("expected ',' or ']'"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("is not a valid job (1 problem)"),
        "{}",
        out.stderr
    );
    let out = consort(&["job", "validate", "/nonexistent.yaml"]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("cannot read") && out.stderr.contains("/nonexistent.yaml"),
        "{}",
        out.stderr
    );
}

use serde_json::json;

use super::*;

fn registry(name: &str) -> Option<ComponentSchema> {
    let all = vec![Role::Guest, Role::Host, Role::Arbiter];
    match name {
        "reader" => Some(ComponentSchema {
            name: name.into(),
            roles: vec![Role::Guest, Role::Host],
            inputs: Ports::Named(vec![]),
            outputs: Ports::Named(vec!["data"]),
            params: Some(vec![ParamSpec::required("table", ParamType::Str)]),
        }),
        "psi" => Some(ComponentSchema {
            name: name.into(),
            roles: vec![Role::Guest, Role::Host],
            inputs: Ports::Named(vec!["data"]),
            outputs: Ports::Named(vec!["data"]),
            params: Some(vec![]),
        }),
        "hetero_lr" => Some(ComponentSchema {
            name: name.into(),
            roles: all,
            inputs: Ports::Named(vec!["train_data"]),
            outputs: Ports::Named(vec!["train_output", "model"]),
            params: Some(vec![
                ParamSpec::with_default("max_iter", ParamType::Int, json!(10)),
                ParamSpec::with_default("learning_rate", ParamType::Float, json!(0.1)),
            ]),
        }),
        "evaluation" => Some(ComponentSchema {
            name: name.into(),
            roles: vec![Role::Guest, Role::Host],
            inputs: Ports::Named(vec!["data"]),
            outputs: Ports::Named(vec!["metrics"]),
            params: Some(vec![]),
        }),
        "noop" => Some(ComponentSchema {
            name: name.into(),
            roles: all,
            inputs: Ports::Any,
            outputs: Ports::Named(vec!["data"]),
            params: Some(vec![]),
        }),
        n if n.starts_with("script:") => Some(ComponentSchema {
            name: name.into(),
            roles: all,
            inputs: Ports::Any,
            outputs: Ports::Any,
            params: None,
        }),
        _ => None,
    }
}

const EXAMPLE: &str = r#"
name: breast-hetero-lr
parties:
  guest: [bank-a]
  host: [insurer-b]
  arbiter: [bank-a]
conf:
  auto_retries: 1
tasks:
  reader:
    component: reader
    roles: [guest, host]
    role_params:
      guest: {table: breast_guest}
      host:  {table: breast_host}
  psi:
    component: psi
    inputs: {data: reader.data}
  lr:
    component: hetero_lr
    inputs: {train_data: psi.data}
    params: {max_iter: 30, learning_rate: 0.15}
    party_params:
      insurer-b: {max_iter: 31}
  eval:
    component: evaluation
    roles: [guest]
    inputs: {data: lr.train_output}
"#;

fn errors(text: &str) -> Vec<String> {
    let spec = JobSpec::parse(text).expect("parses");
    validate(&spec, &registry)
        .expect_err("invalid")
        .into_iter()
        .map(|e| e.to_string())
        .collect()
}

fn with(task_yaml: &str) -> String {
    format!("name: j\nparties:\n  guest: [a]\n  host: [b]\ntasks:\n{task_yaml}")
}

#[test]
fn the_issue_example_plans_in_order_with_merged_params() {
    let spec = JobSpec::parse(EXAMPLE).expect("parses");
    let plan = validate(&spec, &registry).expect("valid");
    let order: Vec<_> = plan.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(order, ["reader", "psi", "lr", "eval"]);
    assert_eq!(plan.conf.auto_retries, 1);
    assert_eq!(plan.participants().len(), 2);
    let lr = &plan.tasks[2];
    // bank-a runs lr twice (guest and arbiter); insurer-b once as host.
    assert_eq!(lr.runs.len(), 3);
    let host = lr
        .runs
        .iter()
        .find(|r| r.role == Role::Host)
        .expect("host run");
    assert_eq!(
        host.params["max_iter"],
        json!(31),
        "party_params override params"
    );
    assert_eq!(host.params["learning_rate"], json!(0.15));
    let reader = &plan.tasks[0];
    let guest = reader
        .runs
        .iter()
        .find(|r| r.role == Role::Guest)
        .expect("guest run");
    assert_eq!(
        guest.params["table"],
        json!("breast_guest"),
        "role_params apply"
    );
    assert_eq!(plan.tasks[3].runs.len(), 1, "eval runs at the guest only");
    assert_eq!(
        lr.inputs["train_data"],
        ("psi".to_owned(), "data".to_owned())
    );
}

#[test]
fn json_is_accepted_too() {
    let text =
        r#"{"name": "j", "parties": {"guest": ["a"]}, "tasks": {"n": {"component": "noop"}}}"#;
    let plan = validate(&JobSpec::parse(text).expect("parses"), &registry).expect("valid");
    assert_eq!(plan.tasks.len(), 1);
}

#[test]
fn each_problem_is_named_by_its_key() {
    let cases: &[(&str, &str)] = &[
        (
            "  x:\n    component: frobnicate\n",
            "tasks.x.component: unknown component 'frobnicate'",
        ),
        (
            "  x:\n    component: noop\n    inputs: {data: psi2.data}\n",
            "tasks.x.inputs.data: no task 'psi2'",
        ),
        (
            "  r:\n    component: reader\n    params: {table: t}\n  x:\n    component: noop\n    inputs: {data: r.nope}\n",
            "tasks.x.inputs.data: task 'r' (reader) has no output 'nope'",
        ),
        (
            "  x:\n    component: noop\n    inputs: {data: plain}\n",
            "tasks.x.inputs.data: 'plain' is not <task>.<output>",
        ),
        (
            "  x:\n    component: noop\n    roles: [arbiter]\n",
            "tasks.x.roles[0]: role 'arbiter' is not in parties",
        ),
        (
            "  x:\n    component: reader\n    roles: [guest]\n    params: {table: 5}\n",
            "tasks.x.params.table: expected a string, got 5",
        ),
        (
            "  x:\n    component: reader\n    params: {table: t, colour: red}\n",
            "tasks.x.params.colour: unknown parameter",
        ),
        (
            "  x:\n    component: reader\n",
            "tasks.x.params.table: required parameter missing for a as guest",
        ),
        (
            "  x:\n    component: noop\n    depends_on: [ghost]\n",
            "tasks.x.depends_on[0]: no task 'ghost'",
        ),
        (
            "  x:\n    component: noop\n    party_params: {zed: {}}\n",
            "tasks.x.party_params.zed: party 'zed' does not run this task",
        ),
        (
            "  x:\n    component: noop\n    depends_on: [y]\n  y:\n    component: noop\n    depends_on: [x]\n",
            "tasks: cycle",
        ),
    ];
    for (task, expected) in cases {
        let errs = errors(&with(task));
        assert!(
            errs.iter().any(|e| e.starts_with(expected)),
            "expected {expected:?} in {errs:?}"
        );
    }
}

#[test]
fn party_and_role_problems() {
    let errs =
        errors("name: j\nparties:\n  guest: [a, a]\n  boss: [b]\ntasks:\n  x: {component: noop}\n");
    assert!(
        errs.contains(&"parties.guest[1]: party 'a' is listed twice in role guest".to_owned()),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("parties.boss: unknown role 'boss'")),
        "{errs:?}"
    );
    let errs = errors("name: j\nparties:\n  guest: [Bad_Name]\ntasks:\n  x: {component: noop}\n");
    assert!(
        errs.iter()
            .any(|e| e.starts_with("parties.guest[0]: invalid party name")),
        "{errs:?}"
    );
}

#[test]
fn several_problems_are_all_reported() {
    let errs = errors(&with(
        "  x:\n    component: nope\n  y:\n    component: noop\n    inputs: {data: z.data}\n",
    ));
    assert_eq!(errs.len(), 2, "{errs:?}");
}

#[test]
fn unknown_keys_and_bad_yaml_are_parse_errors_with_a_location() {
    let err = JobSpec::parse("name: j\nparties: {guest: [a]}\ntasks: {}\nconfx: 1\n")
        .expect_err("unknown key");
    assert!(err.0.contains("confx"), "{err}");
    let err = JobSpec::parse("name: j\ntasks:\n  x: {component: noop\n").expect_err("bad yaml");
    assert!(err.0.contains("line"), "{err}");
    let err = JobSpec::parse(
        "name: j\nparties: {guest: [a]}\ntasks:\n  x: {component: noop, retries: 2}\n",
    )
    .expect_err("unknown task key");
    assert!(err.0.contains("retries"), "{err}");
}

#[test]
fn names_that_would_be_paths_are_rejected_for_script_operators_too() {
    let producer = "  a:\n    component: script:gen\n";
    let cases: &[(&str, &str)] = &[
        (
            "  x:\n    component: script:echo\n    inputs: {\"/etc/passwd\": a.b}\n",
            "tasks.x.inputs./etc/passwd: invalid input name '/etc/passwd': it must not contain '/'",
        ),
        (
            "  x:\n    component: script:echo\n    inputs: {\"../x\": a.b}\n",
            "tasks.x.inputs.../x: invalid input name '../x': it must not start with '.'",
        ),
        (
            "  x:\n    component: script:echo\n    inputs: {x: a.../../../etc}\n",
            "tasks.x.inputs.x: invalid output name '../../../etc': it must not start with '.'",
        ),
        (
            "  x:\n    component: script:echo\n    inputs: {x: a.../../../../identity.key}\n",
            "tasks.x.inputs.x: invalid output name '../../../../identity.key'",
        ),
        (
            "  x:\n    component: noop\n    inputs: {\"a b\": a.data}\n",
            "tasks.x.inputs.a b: invalid input name 'a b': only ASCII letters",
        ),
        (
            "  x:\n    component: script:echo\n    inputs: {x: \"a.\"}\n",
            "tasks.x.inputs.x: invalid output name '': it is empty",
        ),
    ];
    for (task, expected) in cases {
        let errs = errors(&with(&format!("{producer}{task}")));
        assert!(
            errs.iter().any(|e| e.starts_with(expected)),
            "expected {expected:?} in {errs:?}"
        );
    }
    // Plain names of any kind pass for a script operator.
    let ok = with(&format!(
        "{producer}  x:\n    component: script:echo\n    inputs: {{train.csv: a.out-1}}\n"
    ));
    let plan = validate(&JobSpec::parse(&ok).expect("parses"), &registry).expect("valid");
    assert_eq!(
        plan.tasks[1].inputs["train.csv"],
        ("a".to_owned(), "out-1".to_owned())
    );
}

#[test]
fn task_names_model_refs_and_branches_follow_the_name_rule() {
    let errs = errors(&with("  \"..\":\n    component: noop\n"));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("tasks...: invalid task name '..'")),
        "{errs:?}"
    );
    let errs = errors(&with("  a.b:\n    component: noop\n"));
    assert!(
        errs.iter()
            .any(|e| e == "tasks.a.b: invalid task name 'a.b': it must not contain '.'"),
        "{errs:?}"
    );
    let errs = errors(&with(
        "  x:\n    component: noop\n    model: {id: ../m, version: /v, rev: \"../main~2\"}\n",
    ));
    for key in [
        "tasks.x.model.id",
        "tasks.x.model.version",
        "tasks.x.model.rev",
    ] {
        assert!(
            errs.iter()
                .any(|e| e.starts_with(&format!("{key}: invalid"))),
            "{key} in {errs:?}"
        );
    }
    let errs = errors(
        "name: j\nparties: {guest: [a]}\nconf: {model: {branch: ../b}}\ntasks:\n  x: {component: noop}\n",
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("conf.model.branch: invalid branch '../b'")),
        "{errs:?}"
    );
    let errs = errors("name: /j\nparties: {guest: [a]}\ntasks:\n  x: {component: noop}\n");
    assert!(
        errs.iter().any(|e| e.starts_with("name: invalid job name")),
        "{errs:?}"
    );
    let ok = with("  x:\n    component: noop\n    model: {id: m.0123456789, rev: main~2}\n");
    validate(&JobSpec::parse(&ok).expect("parses"), &registry).expect("valid");
}

//! `consort job validate`: checks a job file without a daemon (also before `job submit`).

use std::path::Path;

use consort_protocol::job::{JobPlan, JobSpec, ValidationError, validate};
use serde_json::json;

use crate::failure::Failure;

/// Reads and validates a job file; every problem is returned.
pub fn load_plan(path: &Path) -> Result<JobPlan, Vec<ValidationError>> {
    let one = |message: String| {
        vec![ValidationError {
            path: path.display().to_string(),
            message,
        }]
    };
    let text = std::fs::read_to_string(path).map_err(|e| one(format!("cannot read: {e}")))?;
    let spec = JobSpec::parse(&text).map_err(|e| one(e.0))?;
    validate(&spec, &consort_components::schema)
}

/// Prints a plan for a human (or as JSON).
pub fn print_plan(plan: &JobPlan, json_out: bool) {
    if json_out {
        match serde_json::to_string_pretty(plan) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: cannot render JSON: {e}"),
        }
        return;
    }
    let parties: Vec<String> = plan
        .parties
        .iter()
        .map(|(role, ps)| {
            let names: Vec<&str> = ps.iter().map(|p| p.as_str()).collect();
            format!("{role}: {}", names.join(", "))
        })
        .collect();
    println!(
        "job '{}' is valid: {} tasks; {}",
        plan.name,
        plan.tasks.len(),
        parties.join("; ")
    );
    for (i, t) in plan.tasks.iter().enumerate() {
        let runs: Vec<String> = t
            .runs
            .iter()
            .map(|r| format!("{}@{}", r.role, r.party))
            .collect();
        let after = if t.upstream.is_empty() {
            String::new()
        } else {
            format!(
                " after {}",
                t.upstream.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        };
        println!(
            "{:>3}. {} ({}){after} — {}",
            i + 1,
            t.name,
            t.component,
            runs.join(" ")
        );
    }
}

/// Prints validation errors: one line each on stderr, or one JSON document on stdout.
pub fn print_errors(errors: &[ValidationError], json_out: bool) {
    if json_out {
        println!(
            "{}",
            json!({"error": {"code": "invalid_job", "message": problems(errors.len())}, "errors": errors})
        );
    }
    for e in errors {
        eprintln!("error: {e}");
    }
}

/// `consort job validate FILE`.
pub(crate) fn run(file: &Path, json_out: bool) -> Result<(), Failure> {
    match load_plan(file) {
        Ok(plan) => {
            print_plan(&plan, json_out);
            Ok(())
        }
        Err(errors) => {
            print_errors(&errors, json_out);
            Err(Failure {
                code: "invalid_job",
                message: format!(
                    "{} is not a valid job ({})",
                    file.display(),
                    problems(errors.len())
                ),
                exit: 1,
                reported: json_out,
            })
        }
    }
}

/// "1 problem", "3 problems".
pub(crate) fn problems(n: usize) -> String {
    if n == 1 {
        "1 problem".to_owned()
    } else {
        format!("{n} problems")
    }
}

//! Validation of a [`JobSpec`] into a [`JobPlan`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::schema::ComponentSchema;
use super::{JobConf, JobSpec, ModelRef, Params, Role};
use crate::ids::PartyName;
use crate::names;

/// One problem in a job file, at a key path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationError {
    /// Key path, e.g. `tasks.lr.inputs.train_data`.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// One party's part of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRun {
    /// The party.
    pub party: PartyName,
    /// The role it plays in this run.
    pub role: Role,
    /// Merged parameters: defaults < params < role_params < party_params.
    pub params: Params,
}

/// A validated task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedTask {
    /// Task name.
    pub name: String,
    /// Component name.
    pub component: String,
    /// Input name → (upstream task, its output).
    pub inputs: BTreeMap<String, (String, String)>,
    /// Every task that must succeed first (inputs and `depends_on`).
    pub upstream: BTreeSet<String>,
    /// Who runs it, in which role, with which params.
    pub runs: Vec<TaskRun>,
    /// Model used by the task.
    pub model: Option<ModelRef>,
}

/// A validated job: tasks in dependency order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobPlan {
    /// Job (model) name.
    pub name: String,
    /// Role → parties.
    pub parties: BTreeMap<Role, Vec<PartyName>>,
    /// Job settings.
    pub conf: JobConf,
    /// Tasks, each after all of its upstream tasks.
    pub tasks: Vec<PlannedTask>,
}

impl JobPlan {
    /// Every party taking part, once.
    pub fn participants(&self) -> BTreeSet<PartyName> {
        self.parties.values().flatten().cloned().collect()
    }

    /// Whether `party` holds any role in the job.
    pub fn runs_any(&self, party: &PartyName) -> bool {
        self.parties.values().flatten().any(|p| p == party)
    }
}

struct Errors(Vec<ValidationError>);

impl Errors {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ValidationError {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Checks `spec` against the component schemas `registry` knows, reporting every problem.
pub fn validate(
    spec: &JobSpec,
    registry: &dyn Fn(&str) -> Option<ComponentSchema>,
) -> Result<JobPlan, Vec<ValidationError>> {
    let mut errs = Errors(Vec::new());
    if let Err(e) = names::check("job name", &spec.name) {
        errs.add("name", e.to_string());
    }

    // parties
    let mut parties: BTreeMap<Role, Vec<PartyName>> = BTreeMap::new();
    if spec.parties.is_empty() {
        errs.add("parties", "at least one role with one party is required");
    }
    for (role_name, list) in &spec.parties {
        let path = format!("parties.{role_name}");
        let Some(role) = Role::parse(role_name) else {
            errs.add(
                path,
                format!("unknown role '{role_name}' (roles: guest, host, arbiter)"),
            );
            continue;
        };
        if list.is_empty() {
            errs.add(&path, "lists no party");
        }
        let mut seen = BTreeSet::new();
        for (i, p) in list.iter().enumerate() {
            match PartyName::new(p) {
                Err(e) => errs.add(format!("{path}[{i}]"), e.to_string()),
                Ok(name) if !seen.insert(name.clone()) => errs.add(
                    format!("{path}[{i}]"),
                    format!("party '{p}' is listed twice in role {role}"),
                ),
                Ok(name) => parties.entry(role).or_default().push(name),
            }
        }
    }
    if spec.conf.task_timeout_s == 0 {
        errs.add("conf.task_timeout_s", "must be at least 1");
    }
    if let Some(branch) = spec.conf.model.as_ref().and_then(|m| m.branch.as_ref())
        && let Err(e) = names::check("branch", branch)
    {
        errs.add("conf.model.branch", e.to_string());
    }

    // tasks
    if spec.tasks.is_empty() {
        errs.add("tasks", "at least one task is required");
    }
    let schemas: BTreeMap<&str, ComponentSchema> = spec
        .tasks
        .iter()
        .filter_map(|(name, t)| registry(&t.component).map(|s| (name.as_str(), s)))
        .collect();
    let mut planned: BTreeMap<String, PlannedTask> = BTreeMap::new();
    for (name, task) in &spec.tasks {
        let path = format!("tasks.{name}");
        match names::check("task name", name) {
            Err(e) => errs.add(&path, e.to_string()),
            // '.' separates the task from the output in `<task>.<output>`.
            Ok(()) if name.contains('.') => errs.add(
                &path,
                format!("invalid task name '{name}': it must not contain '.'"),
            ),
            Ok(()) => {}
        }
        let Some(schema) = schemas.get(name.as_str()) else {
            errs.add(
                format!("{path}.component"),
                format!("unknown component '{}'", task.component),
            );
            continue;
        };

        // roles
        let roles: Vec<Role> = match &task.roles {
            None => schema
                .roles
                .iter()
                .copied()
                .filter(|r| parties.contains_key(r))
                .collect(),
            Some(list) => {
                let mut out = Vec::new();
                for (i, r) in list.iter().enumerate() {
                    let rpath = format!("{path}.roles[{i}]");
                    match Role::parse(r) {
                        None => errs.add(rpath, format!("unknown role '{r}'")),
                        Some(role) if !schema.roles.contains(&role) => errs.add(
                            rpath,
                            format!("component {} does not run as {role}", schema.name),
                        ),
                        Some(role) if !parties.contains_key(&role) => {
                            errs.add(rpath, format!("role '{role}' is not in parties"))
                        }
                        Some(role) if out.contains(&role) => {
                            errs.add(rpath, format!("role '{role}' listed twice"))
                        }
                        Some(role) => out.push(role),
                    }
                }
                out
            }
        };
        if roles.is_empty() && !parties.is_empty() {
            errs.add(
                format!("{path}.roles"),
                format!("no role of this job can run component {}", schema.name),
            );
        }

        // inputs and dependencies
        let mut inputs = BTreeMap::new();
        let mut upstream = BTreeSet::new();
        for (input, source) in &task.inputs {
            let ipath = format!("{path}.inputs.{input}");
            // Input and output names become file names: checked for every component, also
            // those that accept any name (`Ports::Any`, script operators).
            if let Err(e) = names::check("input name", input) {
                errs.add(ipath, e.to_string());
                continue;
            }
            if !schema.inputs.has(input) {
                errs.add(
                    &ipath,
                    format!("component {} has no input '{input}'", schema.name),
                );
            }
            let Some((up, output)) = source.split_once('.') else {
                errs.add(ipath, format!("'{source}' is not <task>.<output>"));
                continue;
            };
            if let Err(e) = names::check("output name", output) {
                errs.add(ipath, e.to_string());
                continue;
            }
            match (spec.tasks.get(up), schemas.get(up)) {
                (None, _) => errs.add(ipath, format!("no task '{up}'")),
                (Some(_), Some(up_schema)) if !up_schema.outputs.has(output) => errs.add(
                    ipath,
                    format!("task '{up}' ({}) has no output '{output}'", up_schema.name),
                ),
                _ if up == name => errs.add(ipath, "a task cannot consume its own output"),
                _ => {
                    inputs.insert(input.clone(), (up.to_owned(), output.to_owned()));
                    upstream.insert(up.to_owned());
                }
            }
        }
        for (i, dep) in task.depends_on.iter().enumerate() {
            let dpath = format!("{path}.depends_on[{i}]");
            if dep == name {
                errs.add(dpath, "a task cannot depend on itself");
            } else if !spec.tasks.contains_key(dep) {
                errs.add(dpath, format!("no task '{dep}'"));
            } else {
                upstream.insert(dep.clone());
            }
        }

        if let Some(model) = &task.model {
            check_model_ref(&mut errs, &format!("{path}.model"), model);
        }

        // params
        let runs = plan_runs(&mut errs, &path, schema, task, &roles, &parties);
        planned.insert(
            name.clone(),
            PlannedTask {
                name: name.clone(),
                component: task.component.clone(),
                inputs,
                upstream,
                runs,
                model: task.model.clone(),
            },
        );
    }

    let order = topological_order(&planned, &mut errs);
    if !errs.0.is_empty() {
        return Err(errs.0);
    }
    let tasks = order
        .into_iter()
        .filter_map(|n| planned.remove(&n))
        .collect();
    Ok(JobPlan {
        name: spec.name.clone(),
        parties,
        conf: spec.conf.clone(),
        tasks,
    })
}

/// A model reference names a model id, a version (a job id) and a revision (`REF[~N]`).
fn check_model_ref(errs: &mut Errors, path: &str, model: &ModelRef) {
    if let Err(e) = names::check_len("model id", &model.id, names::MODEL_ID_MAX_LEN) {
        errs.add(format!("{path}.id"), e.to_string());
    }
    if let Some(version) = &model.version
        && let Err(e) = names::check("model version", version)
    {
        errs.add(format!("{path}.version"), e.to_string());
    }
    if let Some(rev) = &model.rev {
        let base = rev.split('~').next().unwrap_or_default();
        if let Err(e) = names::check("revision", base) {
            errs.add(format!("{path}.rev"), e.to_string());
        }
    }
}

fn check_params(errs: &mut Errors, path: &str, schema: &ComponentSchema, params: &Params) {
    let Some(specs) = &schema.params else { return };
    for (key, value) in params {
        match specs.iter().find(|p| p.name == key) {
            None => errs.add(
                format!("{path}.{key}"),
                format!("unknown parameter of component {}", schema.name),
            ),
            Some(p) if !p.ty.accepts(value) => errs.add(
                format!("{path}.{key}"),
                format!("expected {}, got {value}", p.ty.name()),
            ),
            Some(_) => {}
        }
    }
}

fn plan_runs(
    errs: &mut Errors,
    path: &str,
    schema: &ComponentSchema,
    task: &super::TaskSpec,
    roles: &[Role],
    parties: &BTreeMap<Role, Vec<PartyName>>,
) -> Vec<super::validate::TaskRun> {
    check_params(errs, &format!("{path}.params"), schema, &task.params);
    for (role_name, params) in &task.role_params {
        let rpath = format!("{path}.role_params.{role_name}");
        match Role::parse(role_name) {
            Some(r) if roles.contains(&r) => check_params(errs, &rpath, schema, params),
            _ => errs.add(rpath, format!("task does not run as '{role_name}'")),
        }
    }
    for (party, params) in &task.party_params {
        let ppath = format!("{path}.party_params.{party}");
        let runs_here = roles.iter().any(|r| {
            parties
                .get(r)
                .is_some_and(|ps| ps.iter().any(|p| p.as_str() == party))
        });
        if runs_here {
            check_params(errs, &ppath, schema, params);
        } else {
            errs.add(ppath, format!("party '{party}' does not run this task"));
        }
    }
    let mut runs = Vec::new();
    for role in roles {
        for party in parties.get(role).into_iter().flatten() {
            let mut merged = Params::new();
            for p in schema.params.iter().flatten() {
                if let Some(d) = &p.default {
                    merged.insert(p.name.to_owned(), d.clone());
                }
            }
            merged.extend(task.params.clone());
            if let Some(rp) = task.role_params.get(role.as_str()) {
                merged.extend(rp.clone());
            }
            if let Some(pp) = task.party_params.get(party.as_str()) {
                merged.extend(pp.clone());
            }
            for p in schema.params.iter().flatten().filter(|p| p.required) {
                if !merged.contains_key(p.name) {
                    errs.add(
                        format!("{path}.params.{}", p.name),
                        format!("required parameter missing for {party} as {role}"),
                    );
                }
            }
            runs.push(TaskRun {
                party: party.clone(),
                role: *role,
                params: merged,
            });
        }
    }
    runs
}

/// Kahn's algorithm, reporting one cycle if there is any.
fn topological_order(tasks: &BTreeMap<String, PlannedTask>, errs: &mut Errors) -> Vec<String> {
    let mut indegree: BTreeMap<&str, usize> = tasks
        .iter()
        .map(|(n, t)| {
            (
                n.as_str(),
                t.upstream.iter().filter(|u| tasks.contains_key(*u)).count(),
            )
        })
        .collect();
    let mut ready: Vec<&str> = indegree
        .iter()
        .filter(|(_, d)| **d == 0)
        .map(|(n, _)| *n)
        .collect();
    let mut order = Vec::new();
    while let Some(n) = ready.pop() {
        order.push(n.to_owned());
        for (m, t) in tasks {
            if t.upstream.contains(n)
                && let Some(d) = indegree.get_mut(m.as_str())
            {
                *d -= 1;
                if *d == 0 {
                    ready.push(m);
                }
            }
        }
        ready.sort_unstable_by(|a, b| b.cmp(a));
    }
    if order.len() < tasks.len() {
        // Walk upstream edges from a task left over until one repeats: that is a cycle.
        let left: BTreeSet<&str> = indegree
            .iter()
            .filter(|(_, d)| **d > 0)
            .map(|(n, _)| *n)
            .collect();
        if let Some(start) = left.iter().next() {
            let mut path = vec![*start];
            let mut cur = *start;
            let next_of = |t: &str| {
                tasks.get(t).and_then(|t| {
                    t.upstream
                        .iter()
                        .map(String::as_str)
                        .find(|u| left.contains(u))
                })
            };
            while let Some(next) = next_of(cur) {
                if let Some(pos) = path.iter().position(|p| *p == next) {
                    let mut cycle: Vec<&str> = path[pos..].to_vec();
                    cycle.reverse();
                    cycle.push(next);
                    errs.add("tasks", format!("cycle: {}", cycle.join(" → ")));
                    break;
                }
                path.push(next);
                cur = next;
            }
        }
    }
    order
}

//! The job DSL: a DAG of tasks in YAML (or JSON), run by every party at once.
//!
//! Parsing happens in two stages. [`JobSpec::parse`] reads the document strictly (unknown keys
//! are errors). [`validate`] then checks it against the component schemas and returns a
//! [`JobPlan`]: tasks in dependency order, with the parties that run each one and the params
//! each party gets (schema defaults < `params` < `role_params` < `party_params`). Every problem
//! is reported, each naming its key path, e.g. `tasks.lr.inputs.train_data: no task 'psi2'`.

mod guard;
mod schema;
mod validate;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use guard::{MAX_DEPTH, MAX_JOB_BYTES, MAX_NODES};
pub use schema::{ComponentSchema, ParamSpec, ParamType, Ports};
pub use validate::{JobPlan, PlannedTask, TaskRun, ValidationError, validate};

#[cfg(test)]
mod tests;

/// A parameter value (any JSON/YAML value).
pub type Value = serde_json::Value;
/// Parameters by name.
pub type Params = BTreeMap<String, Value>;

/// The roles of a federated job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Holds the labels; usually the initiator of training.
    Guest,
    /// Holds features only.
    Host,
    /// A helper that holds keys or aggregates (no data of its own).
    Arbiter,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Guest, Role::Host, Role::Arbiter];

    /// The role's name in job files.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Guest => "guest",
            Role::Host => "host",
            Role::Arbiter => "arbiter",
        }
    }

    /// Parses a role name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job file as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Model name; the model id derives from it and the parties.
    pub name: String,
    /// Role → parties. A party may hold several roles.
    pub parties: BTreeMap<String, Vec<String>>,
    /// Job-wide settings.
    #[serde(default)]
    pub conf: JobConf,
    /// Tasks by name.
    pub tasks: BTreeMap<String, TaskSpec>,
}

/// `conf:` of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobConf {
    /// How many times a failed federated task is restarted (at every party).
    #[serde(default)]
    pub auto_retries: u32,
    /// A task running longer than this fails.
    #[serde(default = "default_task_timeout_s")]
    pub task_timeout_s: u64,
    /// Where a training job commits its model.
    #[serde(default)]
    pub model: Option<ModelConf>,
}

impl Default for JobConf {
    fn default() -> Self {
        Self {
            auto_retries: 0,
            task_timeout_s: default_task_timeout_s(),
            model: None,
        }
    }
}

fn default_task_timeout_s() -> u64 {
    3600
}

/// `conf.model:` of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConf {
    /// Branch to commit to (default `main`).
    #[serde(default)]
    pub branch: Option<String>,
    /// Commit message.
    #[serde(default)]
    pub message: Option<String>,
}

/// One task of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Component name (`noop`, `psi`, `script:NAME`, ...).
    pub component: String,
    /// Roles that run it; default: every role of the job the component supports.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// Input name → `<task>.<output>`.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// Tasks that must succeed first without passing data.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Parameters for every party.
    #[serde(default)]
    pub params: Params,
    /// Parameters by role (override `params`).
    #[serde(default)]
    pub role_params: BTreeMap<String, Params>,
    /// Parameters by party (override `role_params`).
    #[serde(default)]
    pub party_params: BTreeMap<String, Params>,
    /// A trained model this task uses (predict mode, warm start).
    #[serde(default)]
    pub model: Option<ModelRef>,
}

/// Reference to a stored model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRef {
    /// Model id.
    pub id: String,
    /// Exact version (job id).
    #[serde(default)]
    pub version: Option<String>,
    /// Any revision (`TAG`, `BRANCH`, `BRANCH~N`).
    #[serde(default)]
    pub rev: Option<String>,
}

/// A job file that could not be read at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl JobSpec {
    /// Parses YAML or JSON (JSON is YAML). Errors name the line and the key.
    ///
    /// Files larger than [`MAX_JOB_BYTES`], nested deeper than [`MAX_DEPTH`], with more than
    /// [`MAX_NODES`] values, with anchors, aliases or tags, a repeated key or several documents
    /// are refused before they are deserialized.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        guard::check(text).map_err(ParseError)?;
        serde_yaml_ng::from_str(text).map_err(|e| ParseError(e.to_string()))
    }
}

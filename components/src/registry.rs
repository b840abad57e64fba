//! The built-in components: their schemas and entry points.

use consort_protocol::job::{ComponentSchema, ParamSpec, ParamType, Ports, Role};
use serde_json::json;

use crate::context::{TaskContext, TaskError};
use crate::testing;
use crate::{feature_scale, homo_lr, psi};

/// A component's entry point.
pub type ComponentFn = fn(&dyn TaskContext) -> Result<(), TaskError>;

/// Names of the components this build runs.
pub const BUILTIN_COMPONENTS: &[&str] = &[
    "noop",
    "sleep",
    "fail",
    "relay",
    "sum",
    "blob",
    "reader",
    "hetero_lr",
    "hetero_secureboost",
    "evaluation",
    "psi",
    "homo_lr",
    "feature_scale",
];

/// The schema of component `name`: a built-in, or `script:NAME` (a script operator: any role,
/// inputs, outputs and params; whether a party has registered it is checked by that party).
pub fn schema(name: &str) -> Option<ComponentSchema> {
    let all = Role::ALL.to_vec();
    if let Some(op) = name.strip_prefix("script:") {
        let ok = !op.is_empty()
            && op
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        return ok.then(|| ComponentSchema {
            name: name.to_owned(),
            roles: all,
            inputs: Ports::Any,
            outputs: Ports::Any,
            params: None,
        });
    }
    let s =
        |roles: Vec<Role>, inputs: Ports, outputs: Ports, params: Vec<ParamSpec>| ComponentSchema {
            name: name.to_owned(),
            roles,
            inputs,
            outputs,
            params: Some(params),
        };
    Some(match name {
        "noop" => s(all, Ports::Any, Ports::Named(vec!["data"]), vec![]),
        "sleep" => s(
            all,
            Ports::Any,
            Ports::Named(vec![]),
            vec![ParamSpec::required("seconds", ParamType::Float)],
        ),
        "fail" => s(
            all,
            Ports::Any,
            Ports::Named(vec![]),
            vec![ParamSpec::with_default(
                "message",
                ParamType::Str,
                json!("failed on purpose"),
            )],
        ),
        "relay" => s(all, Ports::Any, Ports::Named(vec![]), vec![]),
        "sum" => s(
            all,
            Ports::Any,
            Ports::Named(vec![]),
            vec![
                ParamSpec::required("value", ParamType::Float),
                ParamSpec::optional("expect", ParamType::Float),
            ],
        ),
        "reader" => s(
            vec![Role::Guest, Role::Host],
            Ports::Named(vec![]),
            Ports::Named(vec!["data"]),
            vec![ParamSpec::required("table", ParamType::Str)],
        ),
        "blob" => s(
            all,
            Ports::Any,
            Ports::Named(vec![]),
            vec![
                ParamSpec::required("size_mb", ParamType::Int),
                ParamSpec::with_default("seed", ParamType::Int, json!(7)),
            ],
        ),
        "hetero_lr" => s(
            vec![Role::Guest, Role::Host, Role::Arbiter],
            Ports::Named(vec!["train_data", "test_data", "model"]),
            Ports::Named(vec!["model", "train_output", "predict_output"]),
            vec![
                ParamSpec::with_default("max_iter", ParamType::Int, json!(30)),
                ParamSpec::optional("epochs", ParamType::Int),
                ParamSpec::with_default("batch_size", ParamType::Int, json!(-1)),
                ParamSpec::with_default("learning_rate", ParamType::Float, json!(0.15)),
                ParamSpec::with_default("alpha", ParamType::Float, json!(0.01)),
                ParamSpec::with_default("tol", ParamType::Float, json!(1e-4)),
                ParamSpec::with_default("early_stop", ParamType::Str, json!("diff")),
                ParamSpec::with_default("key_bits", ParamType::Int, json!(2048)),
                ParamSpec::with_default("seed", ParamType::Int, json!(42)),
                ParamSpec::with_default("fit_intercept", ParamType::Bool, json!(true)),
                ParamSpec::with_default("warm_start", ParamType::Bool, json!(false)),
            ],
        ),
        "hetero_secureboost" => s(
            vec![Role::Guest, Role::Host],
            Ports::Named(vec!["train_data", "validate_data", "test_data", "model"]),
            Ports::Named(vec!["model", "train_output", "predict_output"]),
            vec![
                ParamSpec::with_default("num_trees", ParamType::Int, json!(3)),
                ParamSpec::with_default("max_depth", ParamType::Int, json!(3)),
                ParamSpec::with_default("learning_rate", ParamType::Float, json!(0.3)),
                ParamSpec::with_default("max_bin", ParamType::Int, json!(32)),
                ParamSpec::with_default("l2", ParamType::Float, json!(0.1)),
                ParamSpec::with_default("min_child_weight", ParamType::Float, json!(1.0)),
                ParamSpec::with_default("min_sample_split", ParamType::Int, json!(2)),
                ParamSpec::with_default("min_leaf_node", ParamType::Int, json!(1)),
                ParamSpec::with_default("min_impurity_split", ParamType::Float, json!(1e-2)),
                ParamSpec::with_default("objective", ParamType::Str, json!("binary:bce")),
                ParamSpec::with_default("goss", ParamType::Bool, json!(false)),
                ParamSpec::with_default("top_rate", ParamType::Float, json!(0.2)),
                ParamSpec::with_default("other_rate", ParamType::Float, json!(0.1)),
                ParamSpec::with_default("key_bits", ParamType::Int, json!(2048)),
                ParamSpec::with_default("seed", ParamType::Int, json!(42)),
                ParamSpec::with_default("warm_start", ParamType::Bool, json!(false)),
                ParamSpec::with_default("early_stopping_rounds", ParamType::Int, json!(0)),
            ],
        ),
        "evaluation" => s(
            all,
            Ports::Named(vec!["data"]),
            Ports::Named(vec!["report"]),
            vec![ParamSpec::with_default(
                "threshold",
                ParamType::Float,
                json!(0.5),
            )],
        ),
        "psi" => s(
            vec![Role::Guest, Role::Host],
            Ports::Named(vec!["data"]),
            Ports::Named(vec!["data"]),
            vec![ParamSpec::with_default(
                "chunk",
                ParamType::Int,
                json!(psi::DEFAULT_CHUNK),
            )],
        ),
        "homo_lr" => s(
            all,
            Ports::Named(vec!["train_data", "test_data", "model"]),
            Ports::Named(vec![
                "model",
                "train_output",
                "predict_output",
                "local_models",
                "global_models",
            ]),
            homo_lr::params(),
        ),
        "feature_scale" => s(
            all,
            Ports::Named(vec!["data", "model"]),
            Ports::Named(vec!["data", "model"]),
            vec![ParamSpec::with_default(
                "method",
                ParamType::Str,
                json!("min_max"),
            )],
        ),
        _ => return None,
    })
}

/// The entry point of built-in component `name`.
pub fn component(name: &str) -> Option<ComponentFn> {
    Some(match name {
        "noop" => testing::noop,
        "sleep" => testing::sleep,
        "fail" => testing::fail,
        "relay" => testing::relay,
        "sum" => testing::sum,
        "blob" => crate::blob::blob,
        "reader" => crate::reader::reader,
        "hetero_lr" => crate::hetero_lr::hetero_lr,
        "hetero_secureboost" => crate::secureboost::hetero_secureboost,
        "evaluation" => crate::evaluation::evaluation,
        "psi" => psi::psi,
        "homo_lr" => homo_lr::homo_lr,
        "feature_scale" => feature_scale::feature_scale,
        _ => return None,
    })
}

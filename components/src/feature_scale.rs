//! `feature_scale`: per-party feature scaling, local (no communication). Any role.
//!
//! Param `method`: `"min_max"` (default; `x' = (x − min) / (max − min)`) or `"standard"`
//! (`x' = (x − mean) / std`, population standard deviation).
//!
//! * TRAIN mode (input `model` not wired): fits on input `data`, writes output `data` (scaled)
//!   and output `model` (MessagePack [`FeatureScaleModel`]).
//! * PREDICT mode (input `model` wired): scales input `data` with the fitted parameters, writes
//!   output `data`.
//!
//! Every column is scaled as `x' = (x − offset) / scale`. A constant column (zero range or zero
//! standard deviation) gets `scale = 1`, so it becomes 0 (min_max) or 0 (standard) instead of a
//! division by zero. Ids, labels and columns the model does not know pass through unchanged.

use consort_protocol::data::Dataset;
use serde::{Deserialize, Serialize};

use crate::context::{TaskContext, TaskError};

/// Version of [`FeatureScaleModel`].
const VERSION: u16 = 1;

/// Fitted scaling parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureScaleModel {
    /// Format version.
    pub v: u16,
    /// `min_max` or `standard`.
    pub method: String,
    /// Scaled columns, by name.
    pub feature_names: Vec<String>,
    /// Per column: subtracted first (the minimum or the mean).
    pub offset: Vec<f64>,
    /// Per column: divided by next (the range or the standard deviation; 1 when that is 0).
    pub scale: Vec<f64>,
}

fn fail(msg: impl Into<String>) -> TaskError {
    TaskError::Failed(format!("feature_scale: {}", msg.into()))
}

/// Fits `method` on `data`.
pub fn fit(data: &Dataset, method: &str) -> Result<FeatureScaleModel, TaskError> {
    let mut offset = Vec::with_capacity(data.cols());
    let mut scale = Vec::with_capacity(data.cols());
    for col in &data.columns {
        let finite = col.iter().copied().filter(|x| x.is_finite());
        let (o, s) = match method {
            "min_max" => {
                let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
                    (lo.min(x), hi.max(x))
                });
                if lo > hi {
                    (0.0, 1.0) // no finite value
                } else {
                    (lo, hi - lo)
                }
            }
            "standard" => {
                let vals: Vec<f64> = finite.collect();
                if vals.is_empty() {
                    (0.0, 1.0)
                } else {
                    let n = vals.len() as f64;
                    let mean = vals.iter().sum::<f64>() / n;
                    let var = vals.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
                    (mean, var.sqrt())
                }
            }
            other => {
                return Err(TaskError::Param(
                    "method".into(),
                    format!("'{other}' is not min_max or standard"),
                ));
            }
        };
        offset.push(o);
        // Constant columns: no division by zero (nor by a rounding-noise range).
        scale.push(if s > f64::EPSILON * o.abs().max(1.0) {
            s
        } else {
            1.0
        });
    }
    Ok(FeatureScaleModel {
        v: VERSION,
        method: method.to_owned(),
        feature_names: data.feature_names.clone(),
        offset,
        scale,
    })
}

/// Scales the columns of `data` that `model` knows; returns the scaled copy and how many
/// columns passed through unchanged.
pub fn apply(model: &FeatureScaleModel, data: &Dataset) -> Result<(Dataset, usize), TaskError> {
    if model.offset.len() != model.feature_names.len()
        || model.scale.len() != model.feature_names.len()
    {
        return Err(fail("model has inconsistent lengths"));
    }
    let mut out = data.clone();
    let mut scaled = 0;
    for (k, name) in model.feature_names.iter().enumerate() {
        let Some(j) = out.feature_names.iter().position(|n| n == name) else {
            return Err(fail(format!(
                "input 'data' has no column '{name}' that the model scales"
            )));
        };
        let (o, s) = (model.offset[k], model.scale[k]);
        for x in &mut out.columns[j] {
            *x = (*x - o) / s;
        }
        scaled += 1;
    }
    let passed = out.cols() - scaled;
    Ok((out, passed))
}

/// The `feature_scale` component (see the module docs).
pub fn feature_scale(ctx: &dyn TaskContext) -> Result<(), TaskError> {
    let bytes = ctx
        .input("data")?
        .ok_or_else(|| fail("input 'data' is not wired"))?;
    let data = Dataset::from_bytes(&bytes).map_err(|e| fail(format!("input 'data': {e}")))?;
    let (model, fitted) = match ctx.input("model")? {
        Some(m) => {
            let model: FeatureScaleModel = rmp_serde::from_slice(&m)
                .map_err(|e| fail(format!("input 'model' is not a feature_scale model: {e}")))?;
            if model.v != VERSION {
                return Err(fail(format!("model version {} is not {VERSION}", model.v)));
            }
            (model, false)
        }
        None => {
            let method = ctx
                .params()
                .get("method")
                .and_then(|v| v.as_str())
                .unwrap_or("min_max");
            (fit(&data, method)?, true)
        }
    };
    let (out, passed) = apply(&model, &data)?;
    ctx.output("data", &out.to_bytes().map_err(|e| fail(e.to_string()))?)?;
    if fitted {
        let m = rmp_serde::to_vec_named(&model).map_err(|e| fail(e.to_string()))?;
        ctx.output("model", &m)?;
    }
    ctx.log(&format!(
        "feature_scale: {} {} rows × {} columns ({}){}",
        if fitted {
            "fitted and scaled"
        } else {
            "scaled"
        },
        data.rows(),
        model.feature_names.len(),
        model.method,
        if passed > 0 {
            format!(", {passed} other column(s) unchanged")
        } else {
            String::new()
        }
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use consort_protocol::job::Role;

    use super::*;
    use crate::test_util::{ep, output_dataset, plan, read_csv, run};

    fn data() -> Dataset {
        Dataset::new(
            vec!["a".into(), "b".into(), "c".into(), "d".into()],
            vec!["x".into(), "k".into(), "z".into()],
            vec![
                vec![1.0, 3.0, 5.0, 7.0],
                vec![4.0, 4.0, 4.0, 4.0],
                vec![-2.0, 0.0, 2.0, 0.0],
            ],
            Some(("y".into(), vec![0.0, 1.0, 0.0, 1.0])),
        )
        .expect("dataset")
    }

    fn run_one(method: Option<&str>, ins: BTreeMap<String, Vec<u8>>) -> crate::harness::RunResult {
        let params = method
            .map(|m| format!("    params: {{method: {m}}}\n"))
            .unwrap_or_default();
        let task = plan(
            "  guest: [a]\n",
            &format!("    component: feature_scale\n{params}"),
        );
        let mut results = run(&task, &BTreeMap::from([(ep(Role::Guest, "a"), ins)]));
        results.remove(0)
    }

    #[test]
    fn min_max_is_the_default_and_handles_constant_columns() {
        let r = run_one(
            None,
            BTreeMap::from([("data".to_owned(), data().to_bytes().expect("bytes"))]),
        );
        assert_eq!(r.result, Ok(()));
        let out = output_dataset(&r, "data");
        assert_eq!(out.columns[0], vec![0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]);
        assert_eq!(out.columns[1], vec![0.0; 4], "constant column → 0, no NaN");
        assert_eq!(out.columns[2], vec![0.0, 0.5, 1.0, 0.5]);
        assert_eq!(out.ids, data().ids);
        assert_eq!(out.labels, data().labels);
        let model: FeatureScaleModel = rmp_serde::from_slice(&r.outputs["model"]).expect("model");
        assert_eq!(model.method, "min_max");
        assert_eq!(model.offset, vec![1.0, 4.0, -2.0]);
        assert_eq!(model.scale, vec![6.0, 1.0, 4.0]);
    }

    #[test]
    fn standard_gives_zero_mean_unit_variance() {
        let breast = read_csv("../examples/data/breast_homo_guest.csv");
        let m = fit(&breast, "standard").expect("fit");
        let (out, passed) = apply(&m, &breast).expect("apply");
        assert_eq!(passed, 0);
        for col in &out.columns {
            let n = col.len() as f64;
            let mean = col.iter().sum::<f64>() / n;
            let var = col.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
            assert!(
                mean.abs() < 1e-9 && (var - 1.0).abs() < 1e-9,
                "{mean} {var}"
            );
        }
        let (c, _) = apply(&fit(&data(), "standard").expect("fit"), &data()).expect("apply");
        assert_eq!(c.columns[1], vec![0.0; 4]);
        assert!(c.columns.iter().flatten().all(|x| x.is_finite()));
    }

    #[test]
    fn predict_mode_reuses_the_fitted_parameters() {
        let train = run_one(
            Some("min_max"),
            BTreeMap::from([("data".to_owned(), data().to_bytes().expect("bytes"))]),
        );
        let model = train.outputs["model"].clone();
        let new = Dataset::new(
            vec!["e".into()],
            vec!["x".into(), "k".into(), "z".into()],
            vec![vec![13.0], vec![5.0], vec![0.0]],
            None,
        )
        .expect("dataset");
        let r = run_one(
            Some("standard"), // ignored: the model decides
            BTreeMap::from([
                ("data".to_owned(), new.to_bytes().expect("bytes")),
                ("model".to_owned(), model),
            ]),
        );
        assert_eq!(r.result, Ok(()));
        assert!(!r.outputs.contains_key("model"));
        let out = output_dataset(&r, "data");
        assert_eq!(out.columns, vec![vec![2.0], vec![1.0], vec![0.5]]);
    }

    #[test]
    fn bad_method_and_missing_column_fail_clearly() {
        let r = run_one(
            Some("log"),
            BTreeMap::from([("data".to_owned(), data().to_bytes().expect("bytes"))]),
        );
        assert!(
            matches!(&r.result, Err(TaskError::Param(p, _)) if p == "method"),
            "{:?}",
            r.result
        );
        let m = fit(&data(), "min_max").expect("fit");
        let other = Dataset::new(vec!["a".into()], vec!["q".into()], vec![vec![1.0]], None)
            .expect("dataset");
        let err = apply(&m, &other).expect_err("missing column");
        assert!(err.to_string().contains("no column 'x'"), "{err}");
        let r = run_one(None, BTreeMap::new());
        assert!(r.result.is_err());
    }
}

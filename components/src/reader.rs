//! `reader`: a party's table → the dataset its downstream tasks read. Runs at every role that
//! has data; each party names its own table (`role_params` / `party_params`).

use crate::context::{TaskContext, TaskError};

/// The `reader` component: param `table`, output `data`.
pub fn reader(ctx: &dyn TaskContext) -> Result<(), TaskError> {
    let name = ctx
        .params()
        .get("table")
        .and_then(|v| v.as_str())
        .ok_or_else(|| TaskError::Param("table".into(), "missing or not a string".into()))?;
    let data = ctx.table(name)?;
    let bytes = data
        .to_bytes()
        .map_err(|e| TaskError::Failed(format!("table '{name}': {e}")))?;
    ctx.output("data", &bytes)?;
    ctx.log(&format!(
        "reader: table '{name}': {} rows, {} features{}",
        data.rows(),
        data.cols(),
        match &data.label_name {
            Some(l) => format!(", label '{l}'"),
            None => String::new(),
        }
    ));
    ctx.log_metric("reader", "rows", &[(0.0, data.rows() as f64)])?;
    Ok(())
}

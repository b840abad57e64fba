//! stub
use consort_protocol::job::ParamSpec;
use crate::context::{TaskContext, TaskError};
/// Params.
pub fn params() -> Vec<ParamSpec> { vec![] }
/// Stub.
pub fn homo_lr(_ctx: &dyn TaskContext) -> Result<(), TaskError> { Err(TaskError::Failed("todo".into())) }

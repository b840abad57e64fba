//! stub
use crate::context::{TaskContext, TaskError};
/// Stub.
pub fn feature_scale(_ctx: &dyn TaskContext) -> Result<(), TaskError> {
    Err(TaskError::Failed("todo".into()))
}

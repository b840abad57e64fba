//! What a component declares: roles, inputs, outputs, params with types and defaults.

use super::{Role, Value};

/// Type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// A whole number.
    Int,
    /// Any number.
    Float,
    /// true / false.
    Bool,
    /// Text.
    Str,
    /// Anything (script operators).
    Any,
}

impl ParamType {
    /// Whether `v` has this type.
    pub fn accepts(self, v: &Value) -> bool {
        match self {
            ParamType::Int => v.as_i64().is_some() || v.as_u64().is_some(),
            ParamType::Float => v.is_number(),
            ParamType::Bool => v.is_boolean(),
            ParamType::Str => v.is_string(),
            ParamType::Any => true,
        }
    }

    /// Name for error messages.
    pub fn name(self) -> &'static str {
        match self {
            ParamType::Int => "an integer",
            ParamType::Float => "a number",
            ParamType::Bool => "true or false",
            ParamType::Str => "a string",
            ParamType::Any => "any value",
        }
    }
}

/// One declared parameter.
#[derive(Debug, Clone)]
pub struct ParamSpec {
    /// Name.
    pub name: &'static str,
    /// Type.
    pub ty: ParamType,
    /// Default; `None` with `required` false means "absent".
    pub default: Option<Value>,
    /// Must be given (after merging) for every party that runs the task.
    pub required: bool,
}

impl ParamSpec {
    /// A required parameter.
    pub fn required(name: &'static str, ty: ParamType) -> Self {
        Self {
            name,
            ty,
            default: None,
            required: true,
        }
    }

    /// An optional parameter with a default.
    pub fn with_default(name: &'static str, ty: ParamType, default: Value) -> Self {
        Self {
            name,
            ty,
            default: Some(default),
            required: false,
        }
    }

    /// An optional parameter without a default.
    pub fn optional(name: &'static str, ty: ParamType) -> Self {
        Self {
            name,
            ty,
            default: None,
            required: false,
        }
    }
}

/// Declared input or output names.
#[derive(Debug, Clone)]
pub enum Ports {
    /// Exactly these names.
    Named(Vec<&'static str>),
    /// Any name (script operators).
    Any,
}

impl Ports {
    /// Whether `name` is declared.
    pub fn has(&self, name: &str) -> bool {
        match self {
            Ports::Named(names) => names.contains(&name),
            Ports::Any => true,
        }
    }
}

/// A component's schema.
#[derive(Debug, Clone)]
pub struct ComponentSchema {
    /// Name in job files.
    pub name: String,
    /// Roles it can run in.
    pub roles: Vec<Role>,
    /// Input names.
    pub inputs: Ports,
    /// Output names.
    pub outputs: Ports,
    /// Parameters; `None` accepts any parameter (script operators).
    pub params: Option<Vec<ParamSpec>>,
}

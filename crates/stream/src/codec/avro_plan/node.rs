//! What a plan is made of: the [`Node`]s a writer schema compiles to, and [`PlanError`], the
//! error of a datum that does not decode. Compiling is `compile`'s, decoding `datum`'s.

use serde::de;

/// Why a datum did not decode with a plan (the caller reports it with the schema id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError(pub(super) String);

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlanError {}

impl de::Error for PlanError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        PlanError(msg.to_string())
    }
}

pub(super) fn err<T>(msg: impl Into<String>) -> Result<T, PlanError> {
    Err(PlanError(msg.into()))
}

/// Nesting deeper than this (only possible with recursive schemas) is refused, not recursed.
pub(super) const MAX_DEPTH: usize = 256;

#[derive(Debug)]
pub(super) enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array(usize),
    Map(usize),
    Union(Vec<usize>),
    Record(Vec<(String, usize)>),
    Enum(Vec<String>),
    Fixed(usize),
    /// A named type used by reference (how recursive schemas are written).
    Ref(usize),
}

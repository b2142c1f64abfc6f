//! Avro binary read straight into serde types, directed by the writer schema.
//!
//! `apache_avro` reads a datum into a generic `Value` tree and deserialises the target type
//! from that tree: two passes and an allocation per field, on every record. A [`Plan`] is the
//! writer schema compiled once per schema id (named types resolved, records flattened to field
//! lists); [`Plan::decode`] walks it over the bytes and hands each value to the target type's
//! visitor as it is read. The result matches `apache_avro::from_value` on the writer schema:
//! record fields are matched by name (fields the type does not name are skipped without
//! allocating), `["null", T]` unions become `Option<T>`, enum symbols become unit variants or
//! strings, `int`/`long` logical types their numbers. Schemas with logical types it does not
//! cover (decimal, big-decimal, uuid, duration) get no plan, and the caller keeps the `Value`
//! path for them.

mod compile;
mod datum;
mod node;

use apache_avro::schema::{ResolvedSchema, Schema};
use compile::Compiler;
use datum::Datum;
pub use node::PlanError;
use node::{err, Node};
use serde::Deserialize;
use std::collections::HashMap;

/// A writer schema compiled for decoding; node 0 is the root.
#[derive(Debug)]
pub struct Plan {
    nodes: Vec<Node>,
}

impl Plan {
    /// The plan for `schema`, or `None` when it uses a type the plan does not cover.
    pub fn compile(schema: &Schema) -> Option<Plan> {
        let resolved = ResolvedSchema::new(schema).ok()?;
        let names = resolved
            .get_names()
            .iter()
            .map(|(n, s)| (n.clone(), *s))
            .collect();
        let mut compiler = Compiler {
            names,
            refs: HashMap::new(),
            nodes: Vec::new(),
        };
        let root = compiler.compile(schema)?;
        debug_assert_eq!(root, 0);
        Some(Plan {
            nodes: compiler.nodes,
        })
    }

    /// Decodes one datum that must fill `bytes` exactly.
    pub fn decode<'de, T: Deserialize<'de>>(&self, bytes: &'de [u8]) -> Result<T, PlanError> {
        let mut input = bytes;
        let value = T::deserialize(Datum {
            nodes: &self.nodes,
            node: 0,
            input: &mut input,
            depth: 0,
        })?;
        if !input.is_empty() {
            return err(format!("{} trailing bytes after the record", input.len()));
        }
        Ok(value)
    }
}

#[cfg(test)]
pub(crate) mod tests;

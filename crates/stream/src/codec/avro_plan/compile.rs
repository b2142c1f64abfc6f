//! Compiling a writer schema to a flat list of [`Node`]s: named types resolved, records
//! flattened to field lists, references kept as indices (recursive schemas). Types a plan
//! does not cover (decimal, big-decimal, uuid, duration) make compiling fail. Decoding is
//! `datum`'s.

use super::node::Node;
use apache_avro::schema::{Name, Schema};
use std::collections::HashMap;

pub(super) struct Compiler<'s> {
    pub(super) names: HashMap<Name, &'s Schema>,
    pub(super) refs: HashMap<Name, usize>,
    pub(super) nodes: Vec<Node>,
}

impl<'s> Compiler<'s> {
    fn push(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    pub(super) fn compile(&mut self, schema: &'s Schema) -> Option<usize> {
        let node = match schema {
            Schema::Null => Node::Null,
            Schema::Boolean => Node::Boolean,
            Schema::Int | Schema::Date | Schema::TimeMillis => Node::Int,
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => Node::Long,
            Schema::Float => Node::Float,
            Schema::Double => Node::Double,
            Schema::Bytes => Node::Bytes,
            Schema::String => Node::String,
            Schema::Fixed(f) => Node::Fixed(f.size),
            Schema::Enum(e) => Node::Enum(e.symbols.clone()),
            Schema::Array(a) => {
                let slot = self.push(Node::Null);
                self.nodes[slot] = Node::Array(self.compile(&a.items)?);
                return Some(slot);
            }
            Schema::Map(m) => {
                let slot = self.push(Node::Null);
                self.nodes[slot] = Node::Map(self.compile(&m.types)?);
                return Some(slot);
            }
            Schema::Union(u) => {
                let slot = self.push(Node::Null);
                let branches = u
                    .variants()
                    .iter()
                    .map(|s| self.compile(s))
                    .collect::<Option<Vec<_>>>()?;
                self.nodes[slot] = Node::Union(branches);
                return Some(slot);
            }
            Schema::Record(r) => {
                let slot = self.push(Node::Null);
                let mut fields = Vec::with_capacity(r.fields.len());
                for f in &r.fields {
                    fields.push((f.name.clone(), self.compile(&f.schema)?));
                }
                self.nodes[slot] = Node::Record(fields);
                return Some(slot);
            }
            Schema::Ref { name } => {
                if let Some(&slot) = self.refs.get(name) {
                    return Some(slot);
                }
                let target = *self.names.get(name)?;
                let slot = self.push(Node::Null);
                self.refs.insert(name.clone(), slot);
                let inner = self.compile(target)?;
                self.nodes[slot] = Node::Ref(inner);
                return Some(slot);
            }
            Schema::Decimal(_) | Schema::BigDecimal | Schema::Uuid(_) | Schema::Duration(_) => {
                return None
            }
        };
        Some(self.push(node))
    }
}

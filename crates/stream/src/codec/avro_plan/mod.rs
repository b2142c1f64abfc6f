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

use apache_avro::schema::{Name, ResolvedSchema, Schema};
use serde::de::value::{BorrowedStrDeserializer, StrDeserializer};
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::Deserialize;
use std::collections::HashMap;

/// Why a datum did not decode with a plan (the caller reports it with the schema id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError(String);

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

fn err<T>(msg: impl Into<String>) -> Result<T, PlanError> {
    Err(PlanError(msg.into()))
}

/// Nesting deeper than this (only possible with recursive schemas) is refused, not recursed.
const MAX_DEPTH: usize = 256;

#[derive(Debug)]
enum Node {
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

/// A writer schema compiled for decoding; node 0 is the root.
#[derive(Debug)]
pub struct Plan {
    nodes: Vec<Node>,
}

struct Compiler<'s> {
    names: HashMap<Name, &'s Schema>,
    refs: HashMap<Name, usize>,
    nodes: Vec<Node>,
}

impl<'s> Compiler<'s> {
    fn push(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn compile(&mut self, schema: &'s Schema) -> Option<usize> {
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

fn take<'de>(input: &mut &'de [u8], n: usize) -> Result<&'de [u8], PlanError> {
    if input.len() < n {
        return err(format!(
            "datum ends early: {n} bytes needed, {} left",
            input.len()
        ));
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

/// A zig-zag varint `long` (at most 10 bytes).
fn read_long(input: &mut &[u8]) -> Result<i64, PlanError> {
    let mut raw: u64 = 0;
    for i in 0..10 {
        let Some((&b, rest)) = input.split_first() else {
            return err("datum ends inside a varint");
        };
        *input = rest;
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    err("varint longer than 10 bytes")
}

fn read_int(input: &mut &[u8]) -> Result<i32, PlanError> {
    let v = read_long(input)?;
    i32::try_from(v).map_err(|_| PlanError(format!("int out of range: {v}")))
}

fn read_len(input: &mut &[u8]) -> Result<usize, PlanError> {
    let n = read_long(input)?;
    usize::try_from(n).map_err(|_| PlanError(format!("negative length {n}")))
}

fn read_bytes<'de>(input: &mut &'de [u8]) -> Result<&'de [u8], PlanError> {
    let n = read_len(input)?;
    take(input, n)
}

fn read_str<'de>(input: &mut &'de [u8]) -> Result<&'de str, PlanError> {
    let b = read_bytes(input)?;
    std::str::from_utf8(b).map_err(|e| PlanError(format!("string is not UTF-8: {e}")))
}

/// The item count of the next array/map block (0 ends the sequence). A negative count is
/// followed by the block's size in bytes, which is read and not needed.
fn read_block(input: &mut &[u8]) -> Result<usize, PlanError> {
    let n = read_long(input)?;
    if n < 0 {
        read_long(input)?;
    }
    usize::try_from(n.unsigned_abs()).map_err(|_| PlanError(format!("block count {n}")))
}

fn read_index(input: &mut &[u8], len: usize, what: &str) -> Result<usize, PlanError> {
    let i = read_long(input)?;
    match usize::try_from(i) {
        Ok(i) if i < len => Ok(i),
        _ => err(format!("{what} index {i} out of range (0..{len})")),
    }
}

/// The depth one level below `depth`, unless that is past [`MAX_DEPTH`].
fn deeper(depth: usize) -> Result<usize, PlanError> {
    if depth >= MAX_DEPTH {
        return err(format!("datum nested deeper than {MAX_DEPTH} levels"));
    }
    Ok(depth + 1)
}

/// One value of node `node` at the front of `input`.
struct Datum<'p, 'i, 'de> {
    nodes: &'p [Node],
    node: usize,
    input: &'i mut &'de [u8],
    depth: usize,
}

impl<'p, 'i, 'de> Datum<'p, 'i, 'de> {
    fn child<'j>(&'j mut self, node: usize) -> Result<Datum<'p, 'j, 'de>, PlanError> {
        Ok(Datum {
            nodes: self.nodes,
            node,
            depth: deeper(self.depth)?,
            input: self.input,
        })
    }

    /// Reads past the value without building anything (fields the target type ignores).
    fn skip(&mut self) -> Result<(), PlanError> {
        match &self.nodes[self.node] {
            Node::Null => Ok(()),
            Node::Boolean => take(self.input, 1).map(drop),
            Node::Int | Node::Long => read_long(self.input).map(drop),
            Node::Float => take(self.input, 4).map(drop),
            Node::Double => take(self.input, 8).map(drop),
            Node::Bytes | Node::String => read_bytes(self.input).map(drop),
            Node::Fixed(n) => take(self.input, *n).map(drop),
            Node::Enum(symbols) => read_index(self.input, symbols.len(), "enum").map(drop),
            Node::Union(branches) => {
                let b = branches[read_index(self.input, branches.len(), "union")?];
                self.child(b)?.skip()
            }
            Node::Record(fields) => {
                for &(_, f) in fields {
                    self.child(f)?.skip()?;
                }
                Ok(())
            }
            Node::Array(item) => {
                let item = *item;
                loop {
                    let n = read_block(self.input)?;
                    if n == 0 {
                        return Ok(());
                    }
                    for _ in 0..n {
                        self.child(item)?.skip()?;
                    }
                }
            }
            Node::Map(value) => {
                let value = *value;
                loop {
                    let n = read_block(self.input)?;
                    if n == 0 {
                        return Ok(());
                    }
                    for _ in 0..n {
                        read_bytes(self.input)?;
                        self.child(value)?.skip()?;
                    }
                }
            }
            Node::Ref(target) => {
                let target = *target;
                self.child(target)?.skip()
            }
        }
    }

    /// The union's chosen branch (or the referenced type), if this node is one.
    fn branch(&mut self) -> Result<Option<usize>, PlanError> {
        match &self.nodes[self.node] {
            Node::Union(branches) => Ok(Some(
                branches[read_index(self.input, branches.len(), "union")?],
            )),
            Node::Ref(target) => Ok(Some(*target)),
            _ => Ok(None),
        }
    }
}

impl<'de> de::Deserializer<'de> for Datum<'_, '_, 'de> {
    type Error = PlanError;

    fn deserialize_any<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, PlanError> {
        match &self.nodes[self.node] {
            Node::Null => visitor.visit_unit(),
            Node::Boolean => match take(self.input, 1)?[0] {
                0 => visitor.visit_bool(false),
                1 => visitor.visit_bool(true),
                b => err(format!("boolean byte {b}")),
            },
            Node::Int => visitor.visit_i32(read_int(self.input)?),
            Node::Long => visitor.visit_i64(read_long(self.input)?),
            Node::Float => {
                let b = take(self.input, 4)?;
                visitor.visit_f32(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            Node::Double => {
                let b = take(self.input, 8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                visitor.visit_f64(f64::from_le_bytes(a))
            }
            Node::Bytes => visitor.visit_borrowed_bytes(read_bytes(self.input)?),
            Node::Fixed(n) => visitor.visit_borrowed_bytes(take(self.input, *n)?),
            Node::String => visitor.visit_borrowed_str(read_str(self.input)?),
            Node::Enum(symbols) => {
                let i = read_index(self.input, symbols.len(), "enum")?;
                visitor.visit_str(&symbols[i])
            }
            Node::Record(fields) => visitor.visit_map(Fields {
                nodes: self.nodes,
                fields,
                next: 0,
                depth: deeper(self.depth)?,
                input: self.input,
            }),
            node @ (Node::Array(value) | Node::Map(value)) => {
                let blocks = Blocks {
                    nodes: self.nodes,
                    value: *value,
                    left: 0,
                    done: false,
                    depth: deeper(self.depth)?,
                    input: self.input,
                };
                match node {
                    Node::Array(_) => visitor.visit_seq(blocks),
                    _ => visitor.visit_map(blocks),
                }
            }
            Node::Union(_) | Node::Ref(_) => match self.branch()? {
                Some(b) => self.child(b)?.deserialize_any(visitor),
                None => unreachable!("unions and refs have a branch"),
            },
        }
    }

    fn deserialize_option<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, PlanError> {
        match &self.nodes[self.node] {
            Node::Null => visitor.visit_none(),
            Node::Union(_) | Node::Ref(_) => {
                let b = self.branch()?.unwrap_or(self.node);
                match self.nodes[b] {
                    Node::Null => visitor.visit_none(),
                    _ => visitor.visit_some(self.child(b)?),
                }
            }
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, PlanError> {
        match &self.nodes[self.node] {
            Node::Enum(symbols) => {
                let i = read_index(self.input, symbols.len(), "enum")?;
                let symbol: StrDeserializer<'_, PlanError> =
                    symbols[i].as_str().into_deserializer();
                visitor.visit_enum(symbol)
            }
            Node::String => {
                let symbol: BorrowedStrDeserializer<'de, PlanError> =
                    BorrowedStrDeserializer::new(read_str(self.input)?);
                visitor.visit_enum(symbol)
            }
            Node::Union(_) | Node::Ref(_) => match self.branch()? {
                Some(b) => self.child(b)?.deserialize_enum(name, variants, visitor),
                None => unreachable!("unions and refs have a branch"),
            },
            other => err(format!("enum {name} from an Avro {other:?}")),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, PlanError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(
        mut self,
        visitor: V,
    ) -> Result<V::Value, PlanError> {
        self.skip()?;
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

/// A record's fields, in writer order, as a serde map keyed by field name.
struct Fields<'p, 'i, 'de> {
    nodes: &'p [Node],
    fields: &'p [(String, usize)],
    next: usize,
    input: &'i mut &'de [u8],
    depth: usize,
}

impl<'de> de::MapAccess<'de> for Fields<'_, '_, 'de> {
    type Error = PlanError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, PlanError> {
        match self.fields.get(self.next) {
            None => Ok(None),
            Some((name, _)) => {
                let key: StrDeserializer<'_, PlanError> = name.as_str().into_deserializer();
                seed.deserialize(key).map(Some)
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, PlanError> {
        let Some(&(_, node)) = self.fields.get(self.next) else {
            return err("record value asked for past its last field");
        };
        self.next += 1;
        seed.deserialize(Datum {
            nodes: self.nodes,
            node,
            input: self.input,
            depth: self.depth,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.fields.len() - self.next)
    }
}

/// An array (as a serde seq) or a map (as a serde map), read block by block.
struct Blocks<'p, 'i, 'de> {
    nodes: &'p [Node],
    value: usize,
    left: usize,
    done: bool,
    input: &'i mut &'de [u8],
    depth: usize,
}

impl<'de> Blocks<'_, '_, 'de> {
    /// Whether another item follows, reading the next block header when one ends.
    fn more(&mut self) -> Result<bool, PlanError> {
        while self.left == 0 && !self.done {
            self.left = read_block(self.input)?;
            self.done = self.left == 0;
        }
        Ok(!self.done)
    }

    fn item<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, PlanError> {
        self.left -= 1;
        seed.deserialize(Datum {
            nodes: self.nodes,
            node: self.value,
            input: self.input,
            depth: self.depth,
        })
    }
}

impl<'de> de::SeqAccess<'de> for Blocks<'_, '_, 'de> {
    type Error = PlanError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, PlanError> {
        if !self.more()? {
            return Ok(None);
        }
        self.item(seed).map(Some)
    }
}

impl<'de> de::MapAccess<'de> for Blocks<'_, '_, 'de> {
    type Error = PlanError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, PlanError> {
        if !self.more()? {
            return Ok(None);
        }
        let key = BorrowedStrDeserializer::<PlanError>::new(read_str(self.input)?);
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, PlanError> {
        if self.left == 0 {
            return err("map value asked for without a key");
        }
        self.item(seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::Value;
    use serde::Serialize;
    use std::collections::BTreeMap;

    fn encode(schema: &Schema, value: Value) -> Vec<u8> {
        apache_avro::writer::datum::GenericDatumWriter::builder(schema)
            .build()
            .expect("writer")
            .write_value_to_vec(value)
            .expect("value fits the schema")
    }

    /// Decodes with the plan and, independently, with apache_avro's Value path.
    fn both<T: serde::de::DeserializeOwned>(schema: &Schema, bytes: &[u8]) -> (T, T) {
        let plan = Plan::compile(schema).expect("schema is covered");
        let fast: T = plan.decode(bytes).expect("plan decodes");
        let value = apache_avro::reader::datum::GenericDatumReader::builder(schema)
            .build()
            .expect("reader")
            .read_value(&mut &bytes[..])
            .expect("decodes");
        let slow: T = apache_avro::from_value(&value).expect("from_value");
        (fast, slow)
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Colour {
        Red,
        DarkGreen,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Inner {
        n: i64,
        tags: Vec<String>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Everything {
        b: bool,
        i: i32,
        l: i64,
        f: f32,
        d: f64,
        s: String,
        raw: serde_bytes_like::Raw,
        opt_none: Option<i32>,
        opt_some: Option<String>,
        colour: Colour,
        inner: Inner,
        counts: BTreeMap<String, i64>,
        ts: i64,
    }

    /// `bytes` through serde without pulling in serde_bytes.
    mod serde_bytes_like {
        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        #[derive(Debug, PartialEq)]
        pub struct Raw(pub Vec<u8>);

        impl Serialize for Raw {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for Raw {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'v> serde::de::Visitor<'v> for V {
                    type Value = Raw;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("bytes")
                    }
                    fn visit_bytes<E>(self, v: &[u8]) -> Result<Raw, E> {
                        Ok(Raw(v.to_vec()))
                    }
                    fn visit_seq<A: serde::de::SeqAccess<'v>>(
                        self,
                        mut seq: A,
                    ) -> Result<Raw, A::Error> {
                        let mut out = Vec::new();
                        while let Some(b) = seq.next_element::<u8>()? {
                            out.push(b);
                        }
                        Ok(Raw(out))
                    }
                }
                d.deserialize_bytes(V)
            }
        }
    }

    const EVERYTHING: &str = r#"{"type": "record", "name": "everything", "namespace": "t", "fields": [
        {"name": "b", "type": "boolean"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "s", "type": "string"},
        {"name": "raw", "type": "bytes"},
        {"name": "opt_none", "type": ["null", "int"]},
        {"name": "opt_some", "type": ["null", "string"]},
        {"name": "colour", "type": {"type": "enum", "name": "colour", "symbols": ["red", "dark_green"]}},
        {"name": "inner", "type": {"type": "record", "name": "inner", "fields": [
            {"name": "n", "type": "long"},
            {"name": "tags", "type": {"type": "array", "items": "string"}}]}},
        {"name": "counts", "type": {"type": "map", "values": "long"}},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "extra", "type": ["null", "inner"]}
    ]}"#;

    fn everything_value() -> Value {
        Value::Record(vec![
            ("b".into(), Value::Boolean(true)),
            ("i".into(), Value::Int(-40_380)),
            ("l".into(), Value::Long(i64::MIN + 1)),
            ("f".into(), Value::Float(-3.5)),
            ("d".into(), Value::Double(1e300)),
            ("s".into(), Value::String("O'Hare – Blue".into())),
            ("raw".into(), Value::Bytes(vec![0, 255, 7])),
            ("opt_none".into(), Value::Union(0, Box::new(Value::Null))),
            (
                "opt_some".into(),
                Value::Union(1, Box::new(Value::String("b".into()))),
            ),
            ("colour".into(), Value::Enum(1, "dark_green".into())),
            (
                "inner".into(),
                Value::Record(vec![
                    ("n".into(), Value::Long(7)),
                    (
                        "tags".into(),
                        Value::Array(vec![Value::String("x".into()), Value::String("".into())]),
                    ),
                ]),
            ),
            (
                "counts".into(),
                Value::Map(
                    [
                        ("a".to_string(), Value::Long(1)),
                        ("b".into(), Value::Long(-2)),
                    ]
                    .into_iter()
                    .collect(),
                ),
            ),
            ("ts".into(), Value::TimestampMillis(1_795_579_509_340)),
            (
                "extra".into(),
                Value::Union(
                    1,
                    Box::new(Value::Record(vec![
                        ("n".into(), Value::Long(1)),
                        ("tags".into(), Value::Array(vec![])),
                    ])),
                ),
            ),
        ])
    }

    #[test]
    fn every_covered_type_decodes_as_apache_avro_does() {
        let schema = Schema::parse_str(EVERYTHING).unwrap();
        let bytes = encode(&schema, everything_value());
        let (fast, slow): (Everything, Everything) = both(&schema, &bytes);
        assert_eq!(fast, slow);
        assert_eq!(fast.s, "O'Hare – Blue");
        assert_eq!(fast.colour, Colour::DarkGreen);
        assert_eq!(fast.opt_some.as_deref(), Some("b"));
        assert_eq!(fast.inner.tags, vec!["x".to_string(), String::new()]);
        assert_eq!(fast.counts.get("b"), Some(&-2));
        assert_eq!(fast.raw.0, vec![0, 255, 7]);
    }

    #[test]
    fn fields_the_type_does_not_name_are_skipped() {
        #[derive(Debug, PartialEq, Deserialize)]
        struct Few {
            i: i32,
            ts: i64,
        }
        let schema = Schema::parse_str(EVERYTHING).unwrap();
        let bytes = encode(&schema, everything_value());
        let (fast, slow): (Few, Few) = both(&schema, &bytes);
        assert_eq!(fast, slow);
        assert_eq!(
            fast,
            Few {
                i: -40_380,
                ts: 1_795_579_509_340
            }
        );
    }

    /// Shapes of typical event schemas (ints, strings, optional unions, a float and an enum),
    /// with types of the test's own: the core knows no application's schemas.
    const VISIT_VALUE: &str = r#"{"type": "record", "name": "visit", "fields": [
        {"name": "place_id", "type": "int"},
        {"name": "visitor", "type": "string"},
        {"name": "door", "type": "string"},
        {"name": "route", "type": "string"},
        {"name": "state", "type": "string"},
        {"name": "prev_place_id", "type": ["null", "int"], "default": null},
        {"name": "prev_door", "type": ["null", "string"], "default": null}]}"#;
    const ENTRY_VALUE: &str = r#"{"type": "record", "name": "entry", "fields": [
        {"name": "place_id", "type": "int"},
        {"name": "place_name", "type": "string"},
        {"name": "route", "type": "string"}]}"#;
    const READING_VALUE: &str = r#"{"type": "record", "name": "reading", "fields": [
        {"name": "temperature", "type": "float"},
        {"name": "sky", "type": {"type": "enum", "name": "sky",
            "symbols": ["clear", "partly_cloudy", "overcast"]}}]}"#;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Visit {
        place_id: i32,
        visitor: String,
        door: String,
        route: String,
        state: String,
        prev_place_id: Option<i32>,
        prev_door: Option<String>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Entry {
        place_id: i32,
        place_name: String,
        route: String,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Sky {
        Clear,
        PartlyCloudy,
        Overcast,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
    struct Reading {
        temperature: f32,
        sky: Sky,
    }

    #[test]
    fn event_schemas_decode_like_apache_avro() {
        let schema = Schema::parse_str(VISIT_VALUE).unwrap();
        let visit = Visit {
            place_id: 40_380,
            visitor: "BL010".into(),
            door: "a".into(),
            route: "blue".into(),
            state: "on_time".into(),
            prev_place_id: None,
            prev_door: Some("b".into()),
        };
        let value = apache_avro::to_value(&visit)
            .unwrap()
            .resolve(&schema)
            .unwrap();
        let bytes = encode(&schema, value);
        let (fast, slow): (Visit, Visit) = both(&schema, &bytes);
        assert_eq!(fast, visit);
        assert_eq!(slow, visit);

        let schema = Schema::parse_str(ENTRY_VALUE).unwrap();
        let entry = Entry {
            place_id: 40_890,
            place_name: "O'Hare".into(),
            route: "blue".into(),
        };
        let value = apache_avro::to_value(&entry)
            .unwrap()
            .resolve(&schema)
            .unwrap();
        let bytes = encode(&schema, value);
        let (fast, _): (Entry, Entry) = both(&schema, &bytes);
        assert_eq!(fast, entry);

        let schema = Schema::parse_str(READING_VALUE).unwrap();
        let reading = Reading {
            temperature: 61.5,
            sky: Sky::PartlyCloudy,
        };
        let value = apache_avro::to_value(reading)
            .unwrap()
            .resolve(&schema)
            .unwrap();
        let bytes = encode(&schema, value);
        let (fast, _): (Reading, Reading) = both(&schema, &bytes);
        assert_eq!(fast, reading);
    }

    #[test]
    fn recursive_schemas_decode() {
        #[derive(Debug, PartialEq, Deserialize)]
        struct Node {
            v: i32,
            next: Option<Box<Node>>,
        }
        let schema = Schema::parse_str(
            r#"{"type": "record", "name": "node", "fields": [
                {"name": "v", "type": "int"}, {"name": "next", "type": ["null", "node"]}]}"#,
        )
        .unwrap();
        let leaf = Value::Record(vec![
            ("v".into(), Value::Int(2)),
            ("next".into(), Value::Union(0, Box::new(Value::Null))),
        ]);
        let list = Value::Record(vec![
            ("v".into(), Value::Int(1)),
            ("next".into(), Value::Union(1, Box::new(leaf))),
        ]);
        let bytes = encode(&schema, list);
        let (fast, slow): (Node, Node) = both(&schema, &bytes);
        assert_eq!(fast, slow);
        assert_eq!(fast.next.as_ref().map(|n| n.v), Some(2));
    }

    #[test]
    fn bad_bytes_are_errors_not_panics() {
        let schema = Schema::parse_str(ENTRY_VALUE).unwrap();
        let plan = Plan::compile(&schema).unwrap();
        let good = encode(
            &schema,
            Value::Record(vec![
                ("place_id".into(), Value::Int(40_380)),
                ("place_name".into(), Value::String("Clark/Lake".into())),
                ("route".into(), Value::String("blue".into())),
            ]),
        );
        // Every truncation fails, and so does a trailing byte.
        for n in 0..good.len() {
            assert!(plan.decode::<Entry>(&good[..n]).is_err(), "{n}");
        }
        let mut long = good.clone();
        long.push(0);
        let e = plan.decode::<Entry>(&long).unwrap_err();
        assert!(e.to_string().contains("trailing"), "{e}");
        // A length past the end, a varint that never ends, invalid UTF-8.
        assert!(plan.decode::<Entry>(&[0xf8, 0xf6, 0x04, 0x7e]).is_err());
        assert!(plan.decode::<Entry>(&[0xff; 12]).is_err());
        let e = plan
            .decode::<Entry>(&[0xf8, 0xf6, 0x04, 0x02, 0xff, 0x00])
            .unwrap_err();
        assert!(e.to_string().contains("UTF-8"), "{e}");
        // An int beyond i32.
        let e = plan
            .decode::<Entry>(&[0xfe, 0xff, 0xff, 0xff, 0x1f, 0x00, 0x00])
            .unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
    }

    #[test]
    fn deep_recursion_is_refused() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Node {
            v: i32,
            next: Option<Box<Node>>,
        }
        let schema = Schema::parse_str(
            r#"{"type": "record", "name": "node", "fields": [
                {"name": "v", "type": "int"}, {"name": "next", "type": ["null", "node"]}]}"#,
        )
        .unwrap();
        let plan = Plan::compile(&schema).unwrap();
        // v=0, next=branch 1, repeated far past the depth limit.
        let bytes: Vec<u8> = std::iter::repeat_n([0u8, 2u8], 100_000).flatten().collect();
        let e = plan.decode::<Node>(&bytes).unwrap_err();
        assert!(e.to_string().contains("deeper"), "{e}");
    }

    #[test]
    fn uncovered_logical_types_get_no_plan() {
        let schema = Schema::parse_str(
            r#"{"type": "record", "name": "r", "fields": [
                {"name": "id", "type": {"type": "string", "logicalType": "uuid"}}]}"#,
        )
        .unwrap();
        assert!(Plan::compile(&schema).is_none());
    }
}

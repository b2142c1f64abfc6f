//! Decoding: a [`Datum`] walks a plan's nodes over the Avro bytes and hands each value to the
//! target type's serde visitor as it is read ([`Fields`] for records, [`Blocks`] for arrays
//! and maps), with the primitive readers they share. Bad bytes are errors, never panics.
//! Building the plan is `compile`'s.

use super::node::{err, Node, PlanError, MAX_DEPTH};
use serde::de::value::{BorrowedStrDeserializer, StrDeserializer};
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

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
pub(super) struct Datum<'p, 'i, 'de> {
    pub(super) nodes: &'p [Node],
    pub(super) node: usize,
    pub(super) input: &'i mut &'de [u8],
    pub(super) depth: usize,
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

//! The plan decodes like apache-avro, and bad bytes are errors.

use super::*;
use apache_avro::types::Value;
use serde::Serialize;
use std::collections::BTreeMap;

/// The Avro binary of `value` (no frame), written by apache-avro.
pub(crate) fn encode(schema: &Schema, value: Value) -> Vec<u8> {
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

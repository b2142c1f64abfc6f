//! Unit tests of the registry's parts that the HTTP tests (`tests/platform/schema_registry.rs`)
//! cannot reach one at a time: path decoding, schema identity, level names.

use apache_avro::Schema;

use super::request::decode_segments;
use super::state::{schema_identity, Level};

#[test]
fn segments_are_percent_decoded() {
    assert_eq!(
        decode_segments("/subjects/a%2Fb.c/versions/"),
        Some(vec![
            "subjects".to_owned(),
            "a/b.c".to_owned(),
            "versions".to_owned()
        ])
    );
    assert_eq!(decode_segments("/"), Some(vec![]));
    assert_eq!(decode_segments("/subjects/%zz"), None);
    assert_eq!(decode_segments("/subjects/%2"), None);
    assert_eq!(decode_segments("/subjects/%FF"), None);
}

#[test]
fn identity_ignores_formatting_but_not_defaults_or_logical_types() {
    let id = |s: &str| {
        Schema::parse_str(s)
            .map_err(|e| e.to_string())
            .and_then(|s| schema_identity(&s))
    };
    let a = id(r#"{"type":"record","name":"R","fields":[{"name":"x","type":"long"}]}"#);
    let b = id(r#"{ "fields": [ {"type": "long", "name": "x"} ], "name": "R", "type": "record" }"#);
    let c = id(r#"{"type":"record","name":"R","fields":[{"name":"x","type":"long","default":0}]}"#);
    let d = id(
        r#"{"type":"record","name":"R","fields":[{"name":"x","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#,
    );
    assert!(a.is_ok());
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_ne!(a, d);
}

#[test]
fn levels_parse_case_insensitively() {
    assert_eq!(Level::parse("full_transitive"), Some(Level::FullTransitive));
    assert_eq!(Level::parse("NONE"), Some(Level::None));
    assert_eq!(Level::parse("sideways"), None);
}

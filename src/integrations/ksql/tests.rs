//! Unit tests of the ksqlDB integration: the statements file, statement forms and their errors,
//! reading `/query` rows.

use super::client::parse_rows;
use super::*;
use crate::transit::models::TurnstileSummary;

#[test]
fn turnstile_sql_has_the_stream_then_the_table() {
    let s = parse_statements(TURNSTILE_SQL, TURNSTILE_SQL_NAME).unwrap();
    let what: Vec<(Kind, &str)> = s.iter().map(|s| (s.kind, s.name.as_str())).collect();
    assert_eq!(
        what,
        vec![(Kind::Stream, "TURNSTILE"), (Kind::Table, SUMMARY_TABLE)]
    );
    assert!(s[1]
        .text
        .starts_with("CREATE TABLE IF NOT EXISTS turnstile_summary"));
    assert!(s[1].text.ends_with("EMIT CHANGES;"));
    assert!(!s[1].text.contains("--"));
}

#[test]
fn statement_forms_and_errors() {
    let s = parse_statements(
        "create or replace source table `Mixed` (a INT) WITH (KAFKA_TOPIC='x;y');\n-- done\n",
        "f.sql",
    )
    .unwrap();
    assert_eq!((s[0].kind, s[0].name.as_str()), (Kind::Table, "Mixed"));
    assert!(s[0].text.ends_with("'x;y');"));
    let e = parse_statements("CREATE STREAM a (x INT);\nDROP TABLE b;", "f.sql")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "f.sql statement 2: `DROP TABLE b` is not a CREATE STREAM or CREATE TABLE statement"
    );
    let e = parse_statements("CREATE STREAM a (x INT)", "f.sql")
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not end with ';'"), "{e}");
    assert!(parse_statements("-- nothing\n", "f.sql").is_err());
}

#[test]
fn rows_are_read_and_errors_reported() {
    let v: serde_json::Value = serde_json::from_str(
        r#"[{"header":{"queryId":"q","schema":"`STATION_ID` INTEGER, `COUNT` BIGINT"}},
                {"row":{"columns":[40380,12]}},{"row":{"columns":[40010,3]}},{"finalMessage":"done"}]"#,
    )
    .unwrap();
    assert_eq!(
        parse_rows(&v).unwrap(),
        vec![
            TurnstileSummary {
                station_id: 40010,
                count: 3
            },
            TurnstileSummary {
                station_id: 40380,
                count: 12
            }
        ]
    );
    let bad: serde_json::Value = serde_json::from_str(r#"[{"row":{"columns":["x",1]}}]"#).unwrap();
    assert!(parse_rows(&bad).unwrap_err().contains("integers"));
    let err: serde_json::Value =
        serde_json::from_str(r#"[{"errorMessage":{"message":"boom"}}]"#).unwrap();
    assert_eq!(parse_rows(&err).unwrap_err(), "boom");
    assert!(KsqlClient::new("ksqldb:8088", None)
        .err()
        .unwrap()
        .is_config());
}

//! The parser's unit tests: ksqlDB statement forms, pull queries, and the refusals with their
//! reasons.

use super::*;

fn one(sql: &str) -> Statement {
    let mut p = parse(sql).unwrap();
    assert_eq!(p.len(), 1, "{sql}");
    p.remove(0).statement
}

fn error(sql: &str) -> String {
    parse(sql).unwrap_err().message
}

#[test]
fn ksqldb_statements() {
    assert_eq!(
        one("show tables;"),
        Statement::ShowTables { extended: false }
    );
    assert_eq!(
        one("LIST STREAMS EXTENDED"),
        Statement::ShowStreams { extended: true }
    );
    assert_eq!(
        one("DESCRIBE turnstile_summary EXTENDED;"),
        Statement::Describe {
            source: "TURNSTILE_SUMMARY".into(),
            extended: true
        }
    );
    let p = parse("SHOW STREAMS; -- comment\n SHOW TABLES;").unwrap();
    assert_eq!(p[0].text, "SHOW STREAMS;");
    assert_eq!(p[1].text, "SHOW TABLES;");
    assert!(error("   ; -- nothing").contains("no statement"));
}

#[test]
fn pull_queries() {
    let Statement::Pull(q) = one(
        "SELECT `STATION_ID`, count AS n FROM turnstile_hourly WHERE station_id IN (1, -2) \
         AND 5 <= WINDOWSTART AND (WINDOWEND BETWEEN '2026-11-24T13:00:00' AND 9) LIMIT 3",
    ) else {
        panic!("not a query")
    };
    assert_eq!(q.source, "TURNSTILE_HOURLY");
    assert_eq!(
        q.columns,
        Some(vec![
            ("STATION_ID".into(), "STATION_ID".into()),
            ("COUNT".into(), "N".into())
        ])
    );
    assert_eq!(
        q.conditions,
        vec![
            Condition::In("STATION_ID".into(), vec![Literal::Int(1), Literal::Int(-2)]),
            Condition::Compare("WINDOWSTART".into(), Cmp::GtEq, Literal::Int(5)),
            Condition::Between(
                "WINDOWEND".into(),
                Literal::Text("2026-11-24T13:00:00".into()),
                Literal::Int(9)
            ),
        ]
    );
    assert_eq!(q.limit, Some(3));
    let Statement::Pull(q) = one("select * from `turnstile_summary`") else {
        panic!("not a query")
    };
    assert_eq!((q.source.as_str(), q.columns), ("turnstile_summary", None));
}

#[test]
fn refusals_say_why() {
    for (sql, says) in [
        (
            "SELECT * FROM A JOIN B ON A.X = B.X",
            "joins are not supported",
        ),
        ("SELECT * FROM T EMIT CHANGES;", "push queries"),
        (
            "CREATE STREAM S (A INT) WITH (KAFKA_TOPIC='s');",
            "CREATE statements",
        ),
        ("INSERT INTO T VALUES (1)", "INSERT statements"),
        (
            "SELECT * FROM T WHERE A = 1 OR A = 2",
            "OR is not supported",
        ),
        ("SELECT COUNT(*) FROM T", "expected a column name"),
        ("SELECT * FROM T WHERE A LIKE 'x'", "unsupported"),
        ("SELECT * FROM T GROUP BY A", "GROUP BY"),
        (
            "SELECT * FROM T WHERE A = 99999999999999999999",
            "not a 64-bit integer",
        ),
        ("SELEC * FROM T", "cannot parse"),
        ("SELECT * FROM T; x", "cannot parse"),
        ("SELECT * FROM T ORDER BY A", "ORDER BY"),
        ("SHOW QUERIES", "STREAMS and TABLES only"),
    ] {
        let e = error(sql);
        assert!(e.contains(says), "{sql}: {e}");
    }
    let many = (0..=MAX_IN_VALUES)
        .map(|i| i.to_string())
        .collect::<Vec<_>>();
    let e = error(&format!("SELECT * FROM T WHERE K IN ({})", many.join(",")));
    assert!(e.contains("at most 1000"), "{e}");
    let e = error(&format!(
        "SELECT * FROM T WHERE K = 1{}",
        " ".repeat(MAX_STATEMENT_BYTES)
    ));
    assert!(e.contains("at most 16384"), "{e}");
    let deep = format!(
        "SELECT * FROM T WHERE {}K = 1{}",
        "(".repeat(500),
        ")".repeat(500)
    );
    assert!(error(&deep).contains("cannot parse"));
}

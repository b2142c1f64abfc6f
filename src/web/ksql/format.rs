//! ksqlDB's answer formats for a pull query's [`ResultSet`]: `/query`'s JSON array (a
//! `header` with the schema, then one `row` per row), `/query-stream`'s newline-delimited
//! form (a header object with column names and types, then one JSON array per row) and its
//! single-array `application/json` form; and the bordered tables the ksqlDB CLI prints, for
//! `worker query`.

use super::execute::ResultSet;
use serde_json::{json, Value as Json};

/// A query id for a header (pull queries have no lasting id; this one names the answer in
/// logs only).
pub fn query_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "pull_{}_{}",
        crate::stream::now_ms(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `/query` with `application/vnd.ksql.v1+json`.
pub fn query_v1(r: &ResultSet, query_id: &str) -> String {
    let mut items = vec![json!({"header": {"queryId": query_id, "schema": r.schema()}})];
    items.extend(r.rows.iter().map(|row| json!({"row": {"columns": row}})));
    Json::Array(items).to_string()
}

fn stream_header(r: &ResultSet, query_id: &str) -> Json {
    json!({
        "queryId": query_id,
        "columnNames": r.columns.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        "columnTypes": r.columns.iter().map(|(_, c)| c.ty.as_str()).collect::<Vec<_>>(),
    })
}

/// `/query-stream` with `application/vnd.ksqlapi.delimited.v1`: header, then rows, one per line.
pub fn query_stream_delimited(r: &ResultSet, query_id: &str) -> String {
    let mut out = stream_header(r, query_id).to_string();
    out.push('\n');
    for row in &r.rows {
        out.push_str(&Json::Array(row.clone()).to_string());
        out.push('\n');
    }
    out
}

/// `/query-stream` with `application/json`: one array, header first.
pub fn query_stream_json(r: &ResultSet, query_id: &str) -> String {
    let mut items = vec![stream_header(r, query_id)];
    items.extend(r.rows.iter().map(|row| Json::Array(row.clone())));
    Json::Array(items).to_string()
}

/// Column names from a `/query` header schema ("`A` INTEGER KEY, `B` BIGINT").
pub fn schema_names(schema: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = schema;
    while let Some(start) = rest.find('`') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('`') else { break };
        names.push(after[..end].to_string());
        rest = after[end + 1..]
            .split_once(',')
            .map(|(_, r)| r)
            .unwrap_or("");
    }
    names
}

fn cell(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => "null".into(),
        other => other.to_string(),
    }
}

/// A bordered table as the ksqlDB CLI prints one.
pub fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .chain(std::iter::once(&header[i]))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
                + 1
        })
        .collect();
    let border = || {
        let mut s = String::from("+");
        for w in &widths {
            s.push_str(&"-".repeat(*w));
            s.push('+');
        }
        s.push('\n');
        s
    };
    let line = |cells: &[String]| {
        let mut s = String::from("|");
        for (i, w) in widths.iter().enumerate() {
            let c = cells.get(i).map(String::as_str).unwrap_or("");
            s.push_str(&format!("{c:<w$}|"));
        }
        s.push('\n');
        s
    };
    let mut out = border();
    out.push_str(&line(header));
    out.push_str(&border());
    for r in rows {
        out.push_str(&line(r));
    }
    out.push_str(&border());
    out
}

/// `/query`'s answer as a table, then "Query terminated" as the CLI ends a pull query.
pub fn query_table(answer: &Json) -> Option<String> {
    let items = answer.as_array()?;
    let schema = items.first()?.get("header")?.get("schema")?.as_str()?;
    let header = schema_names(schema);
    let rows: Vec<Vec<String>> = items
        .iter()
        .filter_map(|i| i.get("row")?.get("columns")?.as_array())
        .map(|cols| cols.iter().map(cell).collect())
        .collect();
    Some(format!("{}Query terminated\n", table(&header, &rows)))
}

/// `/ksql`'s entities (SHOW STREAMS / SHOW TABLES / DESCRIBE) as tables.
pub fn entities_table(answer: &Json) -> Option<String> {
    let mut out = String::new();
    for e in answer.as_array()? {
        for field in ["streams", "tables"] {
            if let Some(list) = e.get(field).and_then(Json::as_array) {
                let header: Vec<String> = [
                    if field == "streams" {
                        "Stream Name"
                    } else {
                        "Table Name"
                    },
                    "Kafka Topic",
                    "Key Format",
                    "Value Format",
                    "Windowed",
                ]
                .map(String::from)
                .to_vec();
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|s| {
                        ["name", "topic", "keyFormat", "valueFormat", "isWindowed"]
                            .iter()
                            .map(|k| s.get(*k).map(cell).unwrap_or_default())
                            .collect()
                    })
                    .collect();
                out.push_str(&table(&header, &rows));
            }
        }
        if let Some(d) = e.get("sourceDescription") {
            out.push_str(&format!(
                "Name                 : {}\n",
                d.get("name").map(cell).unwrap_or_default()
            ));
            if let Some(w) = d.get("windowType").and_then(Json::as_str) {
                out.push_str(&format!("Window type          : {w}\n"));
            }
            let rows: Vec<Vec<String>> = d
                .get("fields")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
                .map(|f| {
                    let ty = f["schema"]["type"].as_str().unwrap_or("").to_string();
                    let key = if f.get("type").and_then(Json::as_str) == Some("KEY") {
                        " (primary key)"
                    } else {
                        ""
                    };
                    vec![cell(&f["name"]), format!("{ty}{key}")]
                })
                .collect();
            out.push_str(&table(&["Field".into(), "Type".into()], &rows));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::ksql::catalog::{Column, Role, SqlType};

    fn set() -> ResultSet {
        let c = |name, ty, key, role| Column {
            name,
            ty,
            key,
            role,
        };
        ResultSet {
            columns: vec![
                (
                    "STATION_ID".into(),
                    c("STATION_ID", SqlType::Integer, true, Role::Station),
                ),
                ("N".into(), c("COUNT", SqlType::Bigint, false, Role::Count)),
            ],
            rows: vec![vec![json!(40380), json!(12)], vec![json!(40010), json!(3)]],
        }
    }

    #[test]
    fn formats_round_trip() {
        let r = set();
        let v1: Json = serde_json::from_str(&query_v1(&r, "q")).unwrap();
        assert_eq!(
            v1[0]["header"]["schema"],
            "`STATION_ID` INTEGER KEY, `N` BIGINT"
        );
        assert_eq!(v1[2]["row"]["columns"], json!([40010, 3]));
        assert_eq!(
            schema_names(v1[0]["header"]["schema"].as_str().unwrap()),
            vec!["STATION_ID", "N"]
        );
        let lines: Vec<Json> = query_stream_delimited(&r, "q")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["columnTypes"], json!(["INTEGER", "BIGINT"]));
        assert_eq!(lines[1], json!([40380, 12]));
        let one: Json = serde_json::from_str(&query_stream_json(&r, "q")).unwrap();
        assert_eq!(one[0]["columnNames"], json!(["STATION_ID", "N"]));
        assert_eq!(one.as_array().unwrap().len(), 3);
        let t = query_table(&v1).unwrap();
        assert_eq!(
            t,
            "+-----------+---+\n|STATION_ID |N  |\n+-----------+---+\n|40380      |12 |\n|40010      |3  |\n+-----------+---+\nQuery terminated\n"
        );
    }
}

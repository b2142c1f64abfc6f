//! The worker's ksqlDB-compatible endpoint (`src/web/ksql/`), end to end: a real ksqlDB client
//! library from PyPI (ksql-python-ng, installed by scripts/test.sh) runs statements and pull
//! queries against a running worker, and the rows equal the counts read independently from
//! the topic; the README's curl examples run as written; the CLI prints the table; a second
//! worker in `--ksql-url` mode reads the first's endpoint and shows the first's native counts;
//! and a few thousand fuzzed statements never get a 5xx or a hang.

#[path = "../common/mod.rs"]
mod common;

use common::*;
use cta_stream::runner::WorkerIntegrations;
use cta_stream::stream::testing::eventually;
use cta_stream::stream::Shutdown;
use cta_stream::transit::simulation;
use cta_stream::transit::stations::Dataset;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::time::Duration;

// 2026-11-24 07:00 Chicago (13:00 UTC), the time the README's window example names.
const START_MS: i64 = 1_795_957_200_000;
const HOUR_MS: i64 = 3_600_000;

/// A broker with the topics, the simulation run to the end, and the counts read back from the
/// topic: per station, and per station and hour.
async fn simulated(
    app_ids: &[&str],
    steps: u64,
) -> (TestEnv, BTreeMap<i32, i64>, BTreeMap<(i32, i64), i64>) {
    let env = env().await;
    env.create_topics(&common::cta_topics_of(app_ids, 4), 4)
        .await;
    simulation::run(
        Dataset::builtin(),
        sim_config_at(7, steps, START_MS),
        &env.kafka,
        &env.registry,
        Shutdown::new(),
    )
    .await
    .unwrap();
    let mut hourly = BTreeMap::new();
    let mut counts = BTreeMap::new();
    for (id, ts) in turnstile_entries(&env).await {
        *counts.entry(id).or_insert(0) += 1;
        *hourly.entry((id, ts - ts.rem_euclid(HOUR_MS))).or_insert(0) += 1;
    }
    assert!(counts.len() > 50, "{}", counts.len());
    (env, counts, hourly)
}

async fn post(url: &str, body: &str, accept: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().post(url).body(body.to_string());
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let r = tokio::time::timeout(Duration::from_secs(20), req.send())
        .await
        .expect("request hung")
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// `/query` rows of a v1 answer.
fn rows(answer: &Json) -> Vec<Json> {
    answer
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i.get("row").map(|r| r["columns"].clone()))
        .collect()
}

/// The Python interpreter of the virtualenv scripts/test.sh makes with the ksqlDB client.
fn ksql_python() -> std::path::PathBuf {
    let path = std::env::var_os("CTA_KSQL_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_default();
            std::path::Path::new(&home).join(".cache/cta-stream/ksql-venv/bin/python")
        });
    let ok = std::process::Command::new(&path)
        .args(["-c", "import ksql"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "no ksqlDB client library at {}: run scripts/test.sh (it makes the virtualenv with ksql-python-ng) or set CTA_KSQL_PYTHON",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ksqldb_client_library_reads_the_native_tables() {
    let app = "cta-ksql-api";
    let (env, counts, hourly) = simulated(&[app], 12).await;
    let dir = tempfile::tempdir().unwrap();
    let worker = spawn_worker(&env, dir.path(), app).await;
    wait_for_counts(&worker.base, &counts, Duration::from_secs(60)).await;

    let station = 40380;
    assert!(counts.contains_key(&station));
    let some: Vec<i32> = counts
        .keys()
        .copied()
        .step_by(9)
        .take(5)
        .chain([1])
        .collect();
    let some_list = some
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/e2e/ksql/pull_queries.py"
    );
    let out = tokio::process::Command::new(ksql_python())
        .args([
            script,
            &worker.base,
            &station.to_string(),
            &some_list,
            &START_MS.to_string(),
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "client script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Json = serde_json::from_slice(&out.stdout).unwrap();

    assert_eq!(got["version"], env!("CARGO_PKG_VERSION"));
    let names = |v: &Json, field: &str| -> Vec<String> {
        v[0][field]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(&got["tables"], "tables"),
        [
            "TURNSTILE_SUMMARY",
            "TURNSTILE_HOURLY",
            "TURNSTILE_RECENT",
            "STATIONS",
            "TRAIN_POSITIONS",
            "WEATHER"
        ]
    );
    assert_eq!(got["tables"][0]["@type"], "tables");
    assert_eq!(names(&got["streams"], "streams"), ["TURNSTILE"]);
    let d = &got["describe"][0]["sourceDescription"];
    assert_eq!(d["windowType"], "TUMBLING");
    assert_eq!(
        d["fields"][0],
        json!({"name": "STATION_ID", "schema": {"type": "INTEGER", "fields": null, "memberSchema": null}, "type": "KEY"})
    );

    // Every station's count, as read from the topic.
    let all = &got["all"];
    assert_eq!(
        all[0]["header"]["schema"],
        "`STATION_KEY` INTEGER KEY, `STATION_ID` INTEGER, `COUNT` BIGINT"
    );
    let table: BTreeMap<i32, i64> = rows(all)
        .iter()
        .map(|r| {
            assert_eq!(r[0], r[1], "STATION_ID is the key's value copy");
            (r[0].as_i64().unwrap() as i32, r[2].as_i64().unwrap())
        })
        .collect();
    assert_eq!(table, counts);
    assert_eq!(
        rows(&got["one"]),
        vec![json!([station, station, counts[&station]])]
    );
    // IN: the stations that have entries, in key order; station 1 has none.
    let expected_in: Vec<Json> = some
        .iter()
        .filter_map(|id| counts.get(id).map(|c| json!([id, c])))
        .collect();
    assert_eq!(rows(&got["in"]), expected_in);
    assert_eq!(
        got["in"][0]["header"]["schema"],
        "`STATION_ID` INTEGER, `COUNT` BIGINT"
    );
    let expected_hourly: Vec<Json> = hourly
        .iter()
        .filter(|((id, start), _)| *id == station && *start >= START_MS)
        .map(|((id, start), c)| json!([id, start, start + HOUR_MS, c]))
        .collect();
    assert!(!expected_hourly.is_empty());
    assert_eq!(rows(&got["hourly"]), expected_hourly);

    let e = &got["errors"];
    assert_eq!(e["ddl"]["code"], 40001, "{e}");
    assert!(
        e["ddl"]["message"]
            .as_str()
            .unwrap()
            .contains("CREATE statements are not supported"),
        "{e}"
    );
    assert_eq!(e["unknown"]["code"], 40001, "{e}");
    assert!(
        e["unknown"]["message"]
            .as_str()
            .unwrap()
            .contains("NOPE does not exist"),
        "{e}"
    );
    let non_key = e["non_key"]["message"].as_str().unwrap();
    assert!(
        non_key.starts_with("HTTP error encountered: 400"),
        "{non_key}"
    );
    assert!(non_key.contains("non-key column"), "{non_key}");

    entity_tables(&worker.base).await;
    readme_examples(&worker.base, &counts, &hourly).await;
    cli_prints_a_table(&worker.base, station, counts[&station]).await;
    worker.stop().await;
}

/// `/query` on STATIONS, TRAIN_POSITIONS and WEATHER: the stations equal the built-in dataset's,
/// every train of the simulation has one row (its latest sighting), key conditions select,
/// a condition on a non-key column or of the wrong type is refused.
async fn entity_tables(base: &str) {
    let query = |sql: String| async move {
        let body = json!({ "ksql": sql }).to_string();
        let (status, text) = post(&format!("{base}/query"), &body, None).await;
        let answer: Json = serde_json::from_str(&text).unwrap_or(Json::Null);
        (status, answer)
    };
    let (status, blue) = query("SELECT * FROM STATIONS WHERE LINE = 'blue';".into()).await;
    assert_eq!(status, 200, "{blue}");
    assert_eq!(
        blue[0]["header"]["schema"],
        "`LINE` STRING KEY, `STATION_ID` INTEGER KEY, `STATION_NAME` STRING, `STOP_ORDER` INTEGER"
    );
    let mut want: Vec<(i32, String)> = Dataset::builtin()
        .rows()
        .iter()
        .filter(|r| r.line.as_str() == "blue")
        .map(|r| (r.station_id, r.station_name.clone()))
        .collect();
    want.sort();
    let got: Vec<(i32, String)> = rows(&blue)
        .iter()
        .map(|r| {
            assert_eq!(r[0], "blue");
            (
                r[1].as_i64().unwrap() as i32,
                r[2].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, want);

    let (status, trains) = query("SELECT * FROM TRAIN_POSITIONS;".into()).await;
    assert_eq!(status, 200, "{trains}");
    let all = rows(&trains);
    let ids: Vec<&str> = all.iter().map(|r| r[0].as_str().unwrap()).collect();
    // Ten trains per line (the simulation's default), each once, in key order.
    let mut want_ids: Vec<String> = ["BL", "GL", "RL"]
        .iter()
        .flat_map(|p| (1..=10).map(move |n| format!("{p}{n:03}")))
        .collect();
    want_ids.sort();
    assert_eq!(ids, want_ids);
    for r in &all {
        let line = match &r[0].as_str().unwrap()[..2] {
            "BL" => "blue",
            "RL" => "red",
            _ => "green",
        };
        assert_eq!(r[1], line, "{r}");
        // The station's name, joined from the stations table: the dataset's, or null when
        // the arrival came before the station's row.
        if !r[6].is_null() {
            let want = Dataset::builtin()
                .rows()
                .iter()
                .find(|s| s.line.as_str() == line && Some(s.station_id as i64) == r[2].as_i64())
                .map(|s| (s.station_name.clone(), s.order as i32));
            let got = (
                r[6].as_str().unwrap().to_string(),
                r[7].as_i64().unwrap() as i32,
            );
            assert_eq!(Some(got), want, "{r}");
        }
    }
    let sql = "SELECT TRAIN_ID, STATION_ID FROM TRAIN_POSITIONS WHERE TRAIN_ID IN ('RL002', 'BL001', 'XX9');";
    let (status, two) = query(sql.into()).await;
    assert_eq!(status, 200, "{two}");
    let pick = |id: &str| all.iter().find(|r| r[0] == id).map(|r| json!([r[0], r[2]]));
    assert_eq!(
        rows(&two),
        vec![pick("BL001").unwrap(), pick("RL002").unwrap()]
    );

    let sql = "SELECT ID, STATUS FROM WEATHER WHERE ID = 'latest';";
    let (status, weather) = query(sql.into()).await;
    assert_eq!(status, 200, "{weather}");
    let w = rows(&weather);
    assert_eq!(w.len(), 1, "{weather}");
    assert!(w[0][1].as_str().is_some_and(|s| !s.is_empty()), "{weather}");

    for (sql, says) in [
        (
            "SELECT * FROM STATIONS WHERE STATION_NAME = 'Austin';",
            "non-key column",
        ),
        (
            "SELECT * FROM STATIONS WHERE STATION_ID = 'x';",
            "'x' is a string",
        ),
        (
            "SELECT * FROM TRAIN_POSITIONS WHERE TRAIN_ID = 7;",
            "7 is a number",
        ),
    ] {
        let (status, e) = query(sql.into()).await;
        assert_eq!(status, 400, "{sql}: {e}");
        assert!(
            e["message"].as_str().unwrap_or("").contains(says),
            "{sql}: {e}"
        );
    }
}

/// The ```sh blocks of the README's ksqlDB section, each run with `sh -c` against `base`.
async fn readme_examples(
    base: &str,
    counts: &BTreeMap<i32, i64>,
    hourly: &BTreeMap<(i32, i64), i64>,
) {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("## Query with ksqlDB clients")
        .nth(1)
        .expect("README has the ksqlDB section")
        .split("\n## ")
        .next()
        .unwrap();
    let blocks: Vec<&str> = section
        .split("```sh\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert_eq!(blocks.len(), 5, "README examples changed: update this test");
    let host = base.trim_start_matches("http://");
    let mut outputs = Vec::new();
    for b in &blocks {
        let cmd = b.replace("localhost:8889", host);
        let out = tokio::process::Command::new("sh")
            .args(["-c", &cmd])
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push(String::from_utf8(out.stdout).unwrap());
    }
    let json = |s: &str| -> Json { serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}")) };
    let tables = json(&outputs[0]);
    assert_eq!(tables[0]["tables"].as_array().unwrap().len(), 6, "{tables}");
    let fields: Vec<Json> = json(&outputs[1])[0]["sourceDescription"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].clone())
        .collect();
    assert_eq!(
        fields,
        [json!("STATION_KEY"), json!("STATION_ID"), json!("COUNT")]
    );
    assert_eq!(
        rows(&json(&outputs[2])),
        vec![json!([40380, 40380, counts[&40380]])]
    );
    let mut lines = outputs[3].lines();
    let header = json(lines.next().unwrap());
    assert_eq!(
        header["columnNames"],
        json!(["STATION_ID", "WINDOWSTART", "WINDOWEND", "COUNT"])
    );
    let got: Vec<Json> = lines.map(json).collect();
    let expected: Vec<Json> = hourly
        .iter()
        .filter(|((id, start), _)| (*id == 40380 || *id == 40010) && *start >= START_MS)
        .map(|((id, start), c)| json!([id, start, start + HOUR_MS, c]))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
    let err = json(&outputs[4]);
    assert_eq!(err["@type"], "statement_error");
    assert_eq!(err["error_code"], 40001);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .starts_with("WHERE on COUNT, a non-key column, is not supported"),
        "{err}"
    );
}

async fn cli_prints_a_table(base: &str, station: i32, count: i64) {
    let run = |args: Vec<String>| async move {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_worker"))
            .args(&args)
            .output()
            .await
            .unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let sql = format!("SELECT * FROM TURNSTILE_SUMMARY WHERE STATION_ID = {station}");
    let (code, out, err) = run(vec![
        "query".into(),
        sql.clone(),
        "--url".into(),
        base.into(),
    ])
    .await;
    assert_eq!(code, Some(0), "{err}");
    let c = count.to_string();
    let w = c.len().max(5) + 1;
    let border = format!("+------------+-----------+{}+\n", "-".repeat(w));
    assert_eq!(
        out,
        format!(
            "{border}|STATION_KEY |STATION_ID |{:<w$}|\n{border}|{station:<12}|{station:<11}|{c:<w$}|\n{border}Query terminated\n",
            "COUNT"
        )
    );
    let (code, out, _) = run(vec![
        "query".into(),
        sql,
        "--json".into(),
        "--url".into(),
        base.into(),
    ])
    .await;
    assert_eq!(code, Some(0));
    let v: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(rows(&v), vec![json!([station, station, count])]);
    let (code, out, _) = run(vec![
        "query".into(),
        "SHOW TABLES".into(),
        "--url".into(),
        base.into(),
    ])
    .await;
    assert_eq!(code, Some(0));
    assert!(
        out.contains("|TURNSTILE_HOURLY ") && out.contains("Table Name"),
        "{out}"
    );
    // The old form still works.
    let (code, out, _) = run(vec![
        "query".into(),
        "turnstile".into(),
        "--station".into(),
        station.to_string(),
        "--url".into(),
        base.into(),
    ])
    .await;
    assert_eq!(code, Some(0));
    assert_eq!(
        out,
        format!(
            "{:>10}  {:>10}\n{station:>10}  {count:>10}\n",
            "STATION_ID", "COUNT"
        )
    );
    // A statement the server refuses: its message, exit 1.
    let (code, _, err) = run(vec![
        "query".into(),
        "SELECT * FROM A JOIN B ON A.X = B.X".into(),
        "--url".into(),
        base.into(),
    ])
    .await;
    assert_eq!(code, Some(1));
    assert!(err.contains("joins are not supported"), "{err}");
}

/// Per-station entries and the total the page shows.
fn page_counts(html: &str) -> (BTreeMap<i32, i64>, i64) {
    let mut out = BTreeMap::new();
    // Table rows only: the line diagrams carry data-station attributes too.
    for part in html.split("<tr data-station=\"").skip(1) {
        let id: i32 = part.split('"').next().unwrap().parse().unwrap();
        let entries = part
            .split("class=\"num entries\">")
            .nth(1)
            .and_then(|s| s.split('<').next())
            .unwrap();
        let n: i64 = entries.trim().parse().unwrap();
        if n > 0 {
            out.insert(id, n);
        }
    }
    let total = html
        .split("id=\"total-entries\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (out, total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ksql_mode_worker_reads_another_workers_endpoint() {
    let (native_app, ksql_app) = ("cta-ksql-native", "cta-ksql-reader");
    let (env, counts, _) = simulated(&[native_app, ksql_app], 8).await;
    let dir = tempfile::tempdir().unwrap();
    let native = spawn_worker(&env, &dir.path().join("n"), native_app).await;
    wait_for_counts(&native.base, &counts, Duration::from_secs(60)).await;
    // The second worker counts nothing itself: its TURNSTILE_SUMMARY is the first's endpoint.
    let reader = spawn_worker_with(
        &env,
        &dir.path().join("k"),
        ksql_app,
        WorkerIntegrations {
            ksql_url: Some(native.base.clone()),
            ksql_auth: None,
        },
    )
    .await;
    wait_for_counts(&reader.base, &counts, Duration::from_secs(60)).await;
    let some_station = *counts.keys().nth(3).unwrap();
    for path in [
        "/api/turnstile".to_string(),
        format!("/api/turnstile/{some_station}"),
        "/api/turnstile/1".to_string(),
        "/api/turnstile/abc".to_string(),
    ] {
        let a = reqwest::get(format!("{}{path}", native.base))
            .await
            .unwrap();
        let b = reqwest::get(format!("{}{path}", reader.base))
            .await
            .unwrap();
        assert_eq!(a.status(), b.status(), "{path}");
        assert_eq!(a.text().await.unwrap(), b.text().await.unwrap(), "{path}");
    }
    // The page shows the same entries, once the stations are in.
    let total: i64 = counts.values().sum();
    eventually(
        &format!(
            "the page shows {total} entries at {} stations",
            counts.len()
        ),
        Duration::from_secs(60),
        async || {
            let html = reqwest::get(format!("{}/", reader.base))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let (stations, page_total) = page_counts(&html);
            if page_total == total && stations == counts {
                Ok(())
            } else {
                Err(format!(
                    "page total {page_total}, {} stations with entries",
                    stations.len()
                ))
            }
        },
    )
    .await;
    reader.stop().await;
    native.stop().await;
}

/// Statements that must each answer 400 with ksqlDB's error object, and what the message says.
fn bad_statements() -> Vec<(&'static str, String, &'static str)> {
    let many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    vec![
        ("/query", "SELEC * FROM TURNSTILE_SUMMARY;".into(), "cannot parse"),
        ("/query", "SELECT * FROM NOPE;".into(), "NOPE does not exist"),
        ("/query", "SELECT NOPE FROM TURNSTILE_SUMMARY;".into(), "column 'NOPE' cannot be resolved"),
        ("/query", "SELECT * FROM TURNSTILE_SUMMARY WHERE COUNT > 3;".into(), "non-key column"),
        ("/query", format!("SELECT * FROM TURNSTILE_SUMMARY WHERE STATION_ID IN ({});", many.join(",")), "at most 1000"),
        ("/query", format!("SELECT * FROM TURNSTILE_SUMMARY WHERE STATION_ID = 1{};", " ".repeat(17 * 1024)), "at most 16384"),
        ("/query", "SELECT * FROM TURNSTILE_SUMMARY A JOIN TURNSTILE_HOURLY B ON A.STATION_ID = B.STATION_ID;".into(), "joins are not supported"),
        ("/query", "SELECT * FROM TURNSTILE_SUMMARY EMIT CHANGES;".into(), "push queries"),
        ("/query", "SELECT * FROM TURNSTILE EMIT CHANGES;".into(), "push queries"),
        ("/query", "SELECT * FROM TURNSTILE;".into(), "is a stream"),
        ("/query", "SELECT * FROM TURNSTILE_SUMMARY WHERE STATION_ID = 'x';".into(), "is a string"),
        ("/query", "SELECT * FROM TURNSTILE_SUMMARY WHERE STATION_ID = 1 OR STATION_ID = 2;".into(), "OR is not supported"),
        ("/query", "SHOW TABLES;".into(), "go to /ksql"),
        ("/query-stream", "SELECT * FROM TURNSTILE_HOURLY WHERE WINDOWSTART >= 'noon';".into(), "not a timestamp"),
        ("/ksql", "CREATE TABLE T AS SELECT STATION_ID, COUNT(*) FROM TURNSTILE GROUP BY STATION_ID EMIT CHANGES;".into(), "push queries"),
        ("/ksql", "CREATE STREAM S (A INT) WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON');".into(), "CREATE statements are not supported"),
        ("/ksql", "DROP TABLE TURNSTILE_SUMMARY;".into(), "DROP statements are not supported"),
        ("/ksql", "SELECT * FROM TURNSTILE_SUMMARY;".into(), "run on /query"),
        ("/ksql", "DESCRIBE NOPE;".into(), "NOPE does not exist"),
        ("/ksql", "SHOW QUERIES;".into(), "STREAMS and TABLES only"),
    ]
}

fn body_for(path: &str, statement: &str) -> String {
    let field = if path == "/query-stream" {
        "sql"
    } else {
        "ksql"
    };
    json!({ field: statement }).to_string()
}

fn check_error(path: &str, status: u16, body: &str) -> Json {
    assert_eq!(status, 400, "{path}: {body}");
    let v: Json =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"));
    assert!(
        v["@type"] == "statement_error" || v["@type"] == "generic_error",
        "{path}: {v}"
    );
    assert!(
        v["error_code"]
            .as_u64()
            .is_some_and(|c| (40000..40100).contains(&c)),
        "{v}"
    );
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    v
}

/// Statements a fuzzer starts from.
const SEEDS: [&str; 10] = [
    "SELECT * FROM TURNSTILE_SUMMARY;",
    "SELECT * FROM TURNSTILE_SUMMARY WHERE STATION_ID = 40380;",
    "SELECT STATION_ID, COUNT FROM TURNSTILE_SUMMARY WHERE STATION_KEY IN (40380, 40010, 1);",
    "SELECT * FROM TURNSTILE_HOURLY WHERE STATION_ID = 40380 AND WINDOWSTART >= '2026-11-24T13:00:00' AND WINDOWEND <= 1795967200000;",
    "SELECT WINDOWSTART AS S, COUNT FROM TURNSTILE_RECENT WHERE WINDOWSTART BETWEEN 0 AND 9999999999999 LIMIT 3;",
    "SHOW TABLES; SHOW STREAMS;",
    "DESCRIBE TURNSTILE_RECENT EXTENDED;",
    "LIST TABLES;",
    "SELECT `STATION_ID`, `COUNT` FROM `TURNSTILE_SUMMARY` WHERE `STATION_KEY` = 40380;",
    "select * from turnstile_summary where (station_id = -5) and station_id in (1, 2);",
];

const PIECES: [&str; 24] = [
    "'",
    "`",
    "\"",
    "(",
    ")",
    ";",
    ",",
    "--",
    "/*",
    "*/",
    " AND ",
    " OR ",
    " WHERE ",
    " IN (",
    "= ",
    "EMIT CHANGES",
    "JOIN",
    "99999999999999999999",
    "-",
    "\u{0}",
    "é",
    "\\",
    " SELECT ",
    "'2026-",
];

fn mutate(rng: &mut impl Rng, s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    for _ in 0..rng.random_range(1..6) {
        let at = rng.random_range(0..=chars.len());
        match rng.random_range(0..5) {
            0 if !chars.is_empty() => {
                let end = (at + rng.random_range(1..8)).min(chars.len());
                chars.drain(at.min(end)..end);
            }
            1 => {
                let p = PIECES[rng.random_range(0..PIECES.len())];
                chars.splice(at..at, p.chars());
            }
            2 => chars.insert(
                at,
                char::from_u32(rng.random_range(0..0x3000)).unwrap_or('?'),
            ),
            3 => {
                let other = SEEDS[rng.random_range(0..SEEDS.len())];
                let cut = rng.random_range(0..other.len());
                if other.is_char_boundary(cut) {
                    chars.splice(at..at, other[cut..].chars());
                }
            }
            _ => {
                if let Some(c) = chars.get_mut(at) {
                    *c = c.to_ascii_lowercase();
                }
            }
        }
    }
    chars.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_and_fuzzed_statements_get_ksqldb_errors_never_a_5xx() {
    let app = "cta-ksql-fuzz";
    let (env, counts, _) = simulated(&[app], 3).await;
    let dir = tempfile::tempdir().unwrap();
    let worker = spawn_worker(&env, dir.path(), app).await;
    wait_for_counts(&worker.base, &counts, Duration::from_secs(60)).await;
    let base = worker.base.clone();

    for (path, statement, says) in bad_statements() {
        let (status, body) =
            post(&format!("{base}{path}"), &body_for(path, &statement), None).await;
        let v = check_error(path, status, &body);
        assert!(
            v["message"].as_str().unwrap().contains(says),
            "{statement:.80}: {v}"
        );
        if v["@type"] == "statement_error" {
            assert!(v["statementText"].is_string(), "{v}");
        }
    }
    // Bodies that are no statement at all.
    let big = format!("{{\"ksql\": \"{}\"}}", "x".repeat(100 * 1024));
    for (path, body) in [
        ("/ksql", "not json".to_string()),
        ("/query", "{\"ksql\": 5}".to_string()),
        ("/query-stream", String::new()),
        ("/query", big),
    ] {
        let (status, text) = post(&format!("{base}{path}"), &body, None).await;
        let v = check_error(path, status, &text);
        assert_eq!(v["error_code"], 40000, "{v}");
    }
    // /query-stream with application/json: one array, header first.
    let (status, text) = post(
        &format!("{base}/query-stream"),
        &body_for("/query-stream", "SELECT * FROM TURNSTILE_SUMMARY LIMIT 2;"),
        Some("application/json"),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let v: Json = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v[0]["columnNames"],
        json!(["STATION_KEY", "STATION_ID", "COUNT"])
    );
    let first: Vec<Json> = counts
        .iter()
        .take(2)
        .map(|(id, c)| json!([id, id, c]))
        .collect();
    assert_eq!(v.as_array().unwrap()[1..], first[..]);

    // Fuzz: mutated statements on every route; no answer may be a 5xx, none may hang.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(16);
    let paths = ["/ksql", "/query", "/query-stream"];
    let (mut ok, mut refused) = (0, 0);
    for i in 0..3000 {
        let seed = SEEDS[rng.random_range(0..SEEDS.len())];
        let statement = match i % 50 {
            0 => format!(
                "SELECT * FROM TURNSTILE_SUMMARY WHERE STATION_ID IN ({});",
                "1,".repeat(rng.random_range(900..2500)) + "1"
            ),
            1 => format!(
                "SELECT * FROM TURNSTILE_SUMMARY WHERE {}STATION_ID = 1{};",
                "(".repeat(rng.random_range(1..200)),
                ")".repeat(rng.random_range(1..200))
            ),
            2 => "SELECT ".repeat(rng.random_range(1..4000)),
            _ => mutate(&mut rng, seed),
        };
        let path = paths[rng.random_range(0..paths.len())];
        let body = if i % 97 == 0 {
            statement.clone()
        } else {
            body_for(path, &statement)
        };
        let (status, text) = post(&format!("{base}{path}"), &body, None).await;
        assert!(
            status < 500,
            "{path} {statement:.200}: {status} {text:.300}"
        );
        if status == 200 {
            ok += 1;
            for line in text.lines() {
                serde_json::from_str::<Json>(line)
                    .unwrap_or_else(|e| panic!("{path} {statement:.200}: {e}: {line:.200}"));
            }
        } else {
            refused += 1;
            check_error(path, status, &text);
        }
    }
    assert!(ok > 50 && refused > 1000, "ok {ok}, refused {refused}");
    // Still answering.
    let (status, _) = post(
        &format!("{base}/query"),
        &body_for("/query", SEEDS[1]),
        None,
    )
    .await;
    assert_eq!(status, 200);
    worker.stop().await;
}

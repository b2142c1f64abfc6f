//! The real-stack integrations against local stubs of the systems that cannot run here (Kafka
//! Connect, REST Proxy, ksqlDB), each stub checking what it receives against the system's
//! documented API; and the binaries' configuration errors (one line naming the flag, exit 2).

#[path = "../common/mod.rs"]
mod common;
mod stub;

use common::*;
use cta_stream::runner::{run_simulation, SimIntegrations, WorkerIntegrations};
use cta_stream::stream::testing::eventually;
use cta_stream::stream::Shutdown;
use cta_stream::transit::models::WeatherStatus;
use cta_stream::transit::simulation::{self, SimConfig, Simulation};
use cta_stream::transit::stations::Dataset;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WEATHER_TOPIC: &str = "org.chicago.cta.weather.v1";
const STATIONS_TOPIC: &str = "org.chicago.cta.stations";
// 2026-11-24 07:00 Chicago.
const START_MS: i64 = 1_795_957_200_000;

fn sim_config(seed: u64, steps: u64) -> SimConfig {
    sim_config_at(seed, steps, START_MS)
}

async fn setup(app_ids: &[&str]) -> TestEnv {
    let env = env().await;
    env.create_topics(&common::cta_topics_of(app_ids, 4), 4)
        .await;
    env
}

/// Runs a built binary to completion; returns (exit code, stdout, stderr).
async fn run_bin(name: &str, args: &[String]) -> (i32, String, String) {
    let path = match name {
        "simulation" => env!("CARGO_BIN_EXE_simulation"),
        "worker" => env!("CARGO_BIN_EXE_worker"),
        _ => env!("CARGO_BIN_EXE_cta"),
    };
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(path)
            .args(args)
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .env("CTA_PLATFORM_FILE", "/nonexistent/cta-test-platform.json")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("binary did not finish in 120 s")
    .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn connect_args(env: &TestEnv) -> Vec<String> {
    vec![
        "--brokers".into(),
        env.kafka.brokers.clone(),
        "--schema-registry-url".into(),
        env.registry.url.clone(),
    ]
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The error line of a failed binary: stderr must be exactly one line.
fn one_error_line(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one line on stderr, got:\n{stderr}"
    );
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0].to_string()
}

// ---------------------------------------------------------------------------------------------
// REST Proxy

fn symbol(s: WeatherStatus) -> &'static str {
    match s {
        WeatherStatus::Sunny => "sunny",
        WeatherStatus::PartlyCloudy => "partly_cloudy",
        WeatherStatus::Cloudy => "cloudy",
        WeatherStatus::Windy => "windy",
        WeatherStatus::Precipitation => "precipitation",
    }
}

/// A JSON number as Avro's JSON encoding writes a float (always with a fraction).
fn float_json(v: f32) -> String {
    if v.fract() == 0.0 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

fn canonical(schema_json: &str) -> String {
    apache_avro::Schema::parse_str(schema_json)
        .unwrap()
        .canonical_form()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn weather_goes_through_the_rest_proxy_v2_api() {
    let env = setup(&[]).await;
    let config = sim_config(7, 30);
    // The readings the simulation makes: one per simulated hour (07:00, 08:00, 09:00).
    let mut sim = Simulation::new(Dataset::builtin(), &config);
    let expected: Vec<(i64, f32, &str)> = (0..30)
        .filter_map(|_| {
            let out = sim.step();
            out.weather
                .map(|w| (out.time_ms, w.temperature, symbol(w.status)))
        })
        .collect();
    assert_eq!(expected.len(), 3);

    let key_canonical = canonical(include_str!("../../avro/weather_key.avsc"));
    let value_canonical = canonical(include_str!("../../avro/weather_value.avsc"));
    let seen = Arc::new(AtomicUsize::new(0));
    let problems: Arc<Mutex<Vec<String>>> = Arc::default();
    let (seen2, problems2, exp) = (seen.clone(), problems.clone(), expected.clone());
    let stub = stub::start(move |req| {
        let i = seen2.fetch_add(1, Ordering::SeqCst);
        let bad = |m: String| problems2.lock().unwrap().push(format!("request {i}: {m}"));
        if req.method != "POST" || req.path != format!("/topics/{WEATHER_TOPIC}") {
            bad(format!("{} {}", req.method, req.path));
        }
        if req.header("content-type") != Some("application/vnd.kafka.avro.v2+json") {
            bad(format!("content-type {:?}", req.header("content-type")));
        }
        if req.header("accept") != Some("application/vnd.kafka.v2+json") {
            bad(format!("accept {:?}", req.header("accept")));
        }
        let body = String::from_utf8_lossy(&req.body).into_owned();
        let Some(&(ts, t, st)) = exp.get(i) else {
            bad("more requests than weather readings".into());
            return (500, "{}".into());
        };
        let records = format!(
            r#""records":[{{"key":{{"timestamp":{ts}}},"value":{{"temperature":{},"status":"{st}"}}}}]"#,
            float_json(t)
        );
        let want = if i == 0 {
            // The schemas travel as JSON strings; they must be the project's schemas.
            let v = req.json();
            let ks = v["key_schema"].as_str().unwrap_or("{}").to_string();
            let vs = v["value_schema"].as_str().unwrap_or("{}").to_string();
            if canonical(&ks) != key_canonical || canonical(&vs) != value_canonical {
                bad(format!("schemas differ from avro/weather_*.avsc: {ks} / {vs}"));
            }
            format!(
                r#"{{"key_schema":{},"value_schema":{},{records}}}"#,
                serde_json::to_string(&ks).unwrap(),
                serde_json::to_string(&vs).unwrap()
            )
        } else {
            format!(r#"{{"key_schema_id":21,"value_schema_id":22,{records}}}"#)
        };
        if body != want {
            bad(format!("body\n  got  {body}\n  want {want}"));
        }
        (
            200,
            format!(
                r#"{{"key_schema_id":21,"value_schema_id":22,"offsets":[{{"partition":0,"offset":{i},"error_code":null,"error":null}}]}}"#
            ),
        )
    })
    .await;

    let report = run_simulation(
        Dataset::builtin(),
        config,
        &env.kafka,
        &env.registry,
        SimIntegrations {
            rest_proxy_url: Some(stub.url.clone()),
            ..Default::default()
        },
        Shutdown::new(),
    )
    .await
    .unwrap();
    let problems = problems.lock().unwrap().clone();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    assert_eq!(report.produced[WEATHER_TOPIC], 3);
    // Nothing went to the weather topic directly; the other topics still got their records.
    assert!(read_all(&env.kafka.brokers, WEATHER_TOPIC).is_empty());
    assert!(report.produced["org.chicago.cta.turnstile.v1"] > 0);
    assert_eq!(
        read_all(&env.kafka.brokers, "org.chicago.cta.turnstile.v1").len() as u64,
        report.produced["org.chicago.cta.turnstile.v1"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rest_proxy_error_stops_the_simulation_with_its_message() {
    let env = setup(&[]).await;
    let stub = stub::start(|_| {
        (
            422,
            r#"{"error_code":42203,"message":"Conversion of JSON to Avro failed:\nbad field"}"#
                .into(),
        )
    })
    .await;
    let mut a = connect_args(&env);
    a.extend(args(&["--steps", "3", "--sleep", "0", "--seed", "1"]));
    a.extend(["--rest-proxy-url".to_string(), stub.url.clone()]);
    let (code, _, stderr) = run_bin("simulation", &a).await;
    assert_eq!(code, 1, "{stderr}");
    let line = one_error_line(&stderr);
    assert!(
        line.contains(&format!(
            "REST Proxy POST {}/topics/{WEATHER_TOPIC}: HTTP 422: Conversion of JSON to Avro failed: bad field (error code 42203)",
            stub.url
        )),
        "{line}"
    );
    assert_eq!(stub.requests().len(), 1);

    // A malformed URL is a configuration error, before anything is produced.
    let mut a = connect_args(&env);
    a.extend(args(&[
        "--steps",
        "1",
        "--rest-proxy-url",
        "rest-proxy:8082",
    ]));
    let (code, _, stderr) = run_bin("simulation", &a).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(one_error_line(&stderr).contains("--rest-proxy-url 'rest-proxy:8082'"));
}

// ---------------------------------------------------------------------------------------------
// Kafka Connect

fn expected_connector_config() -> serde_json::Value {
    serde_json::json!({
        "connector.class": "io.confluent.connect.jdbc.JdbcSourceConnector",
        "tasks.max": "1",
        "connection.url": "jdbc:postgresql://db.internal:5432/cta",
        "connection.user": "cta_admin",
        "connection.password": "s3cret-pw",
        "table.whitelist": "stations",
        "mode": "incrementing",
        "incrementing.column.name": "stop_id",
        "topic.prefix": "org.chicago.cta.",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "false",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
        "batch.max.rows": "500",
        "poll.interval.ms": "60000",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connect_registers_the_jdbc_source_once() {
    let env = setup(&[]).await;
    let exists = Arc::new(AtomicBool::new(false));
    let problems: Arc<Mutex<Vec<String>>> = Arc::default();
    let (exists2, problems2) = (exists.clone(), problems.clone());
    let stub = stub::start(move |req| match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/connectors/stations") => {
            if exists2.load(Ordering::SeqCst) {
                (
                    200,
                    r#"{"name":"stations","config":{},"tasks":[],"type":"source"}"#.into(),
                )
            } else {
                (
                    404,
                    r#"{"error_code":404,"message":"Connector stations not found"}"#.into(),
                )
            }
        }
        ("PUT", "/connectors/stations/config") => {
            if req.header("content-type") != Some("application/json") {
                problems2
                    .lock()
                    .unwrap()
                    .push(format!("content-type {:?}", req.header("content-type")));
            }
            if req.json() != expected_connector_config() {
                problems2
                    .lock()
                    .unwrap()
                    .push(format!("config {}", String::from_utf8_lossy(&req.body)));
            }
            exists2.store(true, Ordering::SeqCst);
            (
                201,
                format!(
                    r#"{{"name":"stations","config":{},"tasks":[],"type":"source"}}"#,
                    expected_connector_config()
                ),
            )
        }
        _ => (
            404,
            r#"{"error_code":404,"message":"no such resource"}"#.into(),
        ),
    })
    .await;
    let run = |url: String| {
        let mut a = connect_args(&env);
        a.extend(args(&["--steps", "1", "--sleep", "0", "--seed", "3"]));
        a.extend(args(&[
            "--connect-url",
            &url,
            "--connect-jdbc-url",
            "jdbc:postgresql://db.internal:5432/cta",
            "--connect-jdbc-password",
            "s3cret-pw",
        ]));
        a
    };
    let (code, stdout, stderr) = run_bin("simulation", &run(stub.url.clone())).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("1 steps"), "{stdout}");
    assert!(!stderr.contains("s3cret-pw"), "password leaked: {stderr}");
    let methods: Vec<String> = stub
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        methods,
        vec![
            "GET /connectors/stations",
            "PUT /connectors/stations/config"
        ]
    );
    let p = problems.lock().unwrap().clone();
    assert!(p.is_empty(), "{p:?}");
    // Connect publishes the stations now; the simulation did not.
    assert!(read_all(&env.kafka.brokers, STATIONS_TOPIC).is_empty());
    assert!(!read_all(&env.kafka.brokers, "org.chicago.cta.turnstile.v1").is_empty());

    // Second run: the connector exists and is left alone.
    let (code, _, stderr) = run_bin("simulation", &run(stub.url.clone())).await;
    assert_eq!(code, 0, "{stderr}");
    let methods: Vec<String> = stub
        .requests()
        .iter()
        .skip(2)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(methods, vec!["GET /connectors/stations"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connect_error_stops_before_anything_is_produced() {
    let env = setup(&[]).await;
    let stub = stub::start(|req| match req.method.as_str() {
        "GET" => (404, r#"{"error_code":404,"message":"Connector stations not found"}"#.into()),
        _ => (
            400,
            r#"{"error_code":400,"message":"Connector configuration is invalid and contains the following 1 error(s):\nInvalid value for connection.url"}"#.into(),
        ),
    })
    .await;
    let mut a = connect_args(&env);
    a.extend(args(&[
        "--steps",
        "1",
        "--sleep",
        "0",
        "--connect-url",
        &stub.url,
    ]));
    let (code, _, stderr) = run_bin("simulation", &a).await;
    assert_eq!(code, 1, "{stderr}");
    let line = one_error_line(&stderr);
    assert!(
        line.contains(&format!(
            "Kafka Connect PUT {}/connectors/stations/config: HTTP 400: Connector configuration is invalid and contains the following 1 error(s): Invalid value for connection.url",
            stub.url
        )),
        "{line}"
    );
    for t in [
        "org.chicago.cta.turnstile.v1",
        STATIONS_TOPIC,
        WEATHER_TOPIC,
    ] {
        assert!(
            read_all(&env.kafka.brokers, t).is_empty(),
            "{t} got records"
        );
    }
    // Connect not running at all: the URL is named.
    let dead = format!("http://{}", free_addr());
    let mut a = connect_args(&env);
    a.extend(args(&["--steps", "1", "--connect-url", &dead]));
    let (code, _, stderr) = run_bin("simulation", &a).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(one_error_line(&stderr).contains(&format!("Kafka Connect at {dead} is unreachable")));
}

// ---------------------------------------------------------------------------------------------
// ksqlDB

/// The CREATE TABLE statement of ksql/turnstile.sql, cut out of the file by hand.
fn create_table_statement() -> String {
    let sql = include_str!("../../ksql/turnstile.sql");
    let start = sql.find("CREATE TABLE").unwrap();
    let end = start + sql[start..].find(';').unwrap();
    sql[start..=end].to_string()
}

/// A ksqlDB stand-in: the TURNSTILE stream exists, the table does not; answers pull queries on
/// TURNSTILE_SUMMARY from `counts`. Anything else is answered with a statement error and noted.
fn ksql_stub_handler(
    counts: Arc<Mutex<BTreeMap<i32, i64>>>,
    problems: Arc<Mutex<Vec<String>>>,
    fail_create: bool,
) -> impl Fn(&stub::Request) -> (u16, String) + Send + Sync + 'static {
    let create = create_table_statement();
    move |req| {
        let v = req.json();
        let stmt = v["ksql"].as_str().unwrap_or("").to_string();
        let props = v["streamsProperties"].clone();
        if req.header("content-type") != Some("application/vnd.ksql.v1+json")
            || req.header("accept") != Some("application/vnd.ksql.v1+json")
        {
            problems
                .lock()
                .unwrap()
                .push(format!("headers {:?}", req.headers));
        }
        let error = |m: &str| {
            (
                400,
                serde_json::json!({"@type": "statement_error", "error_code": 40001,
                    "message": m, "statementText": stmt, "entities": []})
                .to_string(),
            )
        };
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/ksql") if stmt == "SHOW STREAMS;" => (
                200,
                r#"[{"@type":"streams","statementText":"SHOW STREAMS;","streams":[{"type":"STREAM","name":"TURNSTILE","topic":"org.chicago.cta.turnstile.v1","keyFormat":"KAFKA","valueFormat":"AVRO","isWindowed":false}],"warnings":[]}]"#.into(),
            ),
            ("POST", "/ksql") if stmt == "SHOW TABLES;" => (
                200,
                r#"[{"@type":"tables","statementText":"SHOW TABLES;","tables":[],"warnings":[]}]"#
                    .into(),
            ),
            ("POST", "/ksql") if stmt == create => {
                if props != serde_json::json!({"ksql.streams.auto.offset.reset": "earliest"}) {
                    problems.lock().unwrap().push(format!("properties {props}"));
                }
                if fail_create {
                    return error("Invalid config variable(s) in the WITH clause:\nKEY_FORMAT");
                }
                (
                    200,
                    serde_json::json!([{"@type": "currentStatus", "statementText": stmt,
                        "commandId": "table/`TURNSTILE_SUMMARY`/create",
                        "commandStatus": {"status": "SUCCESS", "message": "Created query with ID CTAS_TURNSTILE_SUMMARY_1"},
                        "commandSequenceNumber": 2, "warnings": []}])
                    .to_string(),
                )
            }
            ("POST", "/query") => {
                let all = "SELECT `STATION_ID`, `COUNT` FROM `TURNSTILE_SUMMARY`;";
                let one_prefix = "SELECT `STATION_ID`, `COUNT` FROM `TURNSTILE_SUMMARY` WHERE `STATION_KEY` = ";
                let counts = counts.lock().unwrap();
                let rows: Vec<(i32, i64)> = if stmt == all {
                    counts.iter().map(|(k, v)| (*k, *v)).collect()
                } else if let Some(id) = stmt
                    .strip_prefix(one_prefix)
                    .and_then(|r| r.strip_suffix(';'))
                    .and_then(|r| r.parse::<i32>().ok())
                {
                    counts.get(&id).map(|c| (id, *c)).into_iter().collect()
                } else {
                    problems.lock().unwrap().push(format!("query {stmt}"));
                    return error("unexpected query");
                };
                let mut out = vec![serde_json::json!({"header": {"queryId": "query_1",
                    "schema": "`STATION_ID` INTEGER, `COUNT` BIGINT"}})];
                out.extend(
                    rows.into_iter()
                        .map(|(k, c)| serde_json::json!({"row": {"columns": [k, c]}})),
                );
                (200, serde_json::Value::Array(out).to_string())
            }
            _ => {
                problems
                    .lock()
                    .unwrap()
                    .push(format!("{} {} {stmt}", req.method, req.path));
                error("unexpected statement")
            }
        }
    }
}

async fn get_text(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn stations_loaded(base: &str) -> bool {
    let v = match reqwest::get(format!("{base}/api/status")).await {
        Ok(r) if r.status() == 200 => r.json::<serde_json::Value>().await.unwrap_or_default(),
        _ => return false,
    };
    v["lines"].as_array().is_some_and(|l| {
        l.iter()
            .all(|l| l["stations"].as_array().is_some_and(|s| !s.is_empty()))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ksql_mode_answers_like_the_native_worker() {
    let (ksql_app, native_app) = ("cta-ksql-mode", "cta-native-mode");
    let env = setup(&[ksql_app, native_app]).await;
    simulation::run(
        Dataset::builtin(),
        sim_config(42, 12),
        &env.kafka,
        &env.registry,
        Shutdown::new(),
    )
    .await
    .unwrap();
    // What ksqlDB would compute from the topic, counted independently.
    let expected = count_turnstile(&env).await;
    assert!(expected.len() > 50, "{}", expected.len());
    let counts = Arc::new(Mutex::new(expected.clone()));
    let problems: Arc<Mutex<Vec<String>>> = Arc::default();
    let stub = stub::start(ksql_stub_handler(counts, problems.clone(), false)).await;

    let dir = tempfile::tempdir().unwrap();
    let ksql_worker = spawn_worker_with(
        &env,
        &dir.path().join("k"),
        ksql_app,
        WorkerIntegrations {
            ksql_url: Some(stub.url.clone()),
            ksql_auth: None,
        },
    )
    .await;
    let ksql_base = ksql_worker.base.clone();
    wait_for_counts(&ksql_base, &expected, Duration::from_secs(60)).await;
    eventually(
        "the stations loaded, on every line",
        Duration::from_secs(60),
        async || {
            if stations_loaded(&ksql_base).await {
                Ok(())
            } else {
                Err("no answer, or a line without stations")
            }
        },
    )
    .await;
    // In ksqlDB mode the worker counts nothing itself: TURNSTILE_SUMMARY is ksqlDB's.
    assert!(read_all(&env.kafka.brokers, "TURNSTILE_SUMMARY").is_empty());
    let reqs: Vec<String> = stub
        .requests()
        .iter()
        .filter(|r| r.path == "/ksql")
        .map(|r| r.json()["ksql"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        reqs,
        vec![
            "SHOW STREAMS;".to_string(),
            "SHOW TABLES;".to_string(),
            create_table_statement()
        ]
    );

    let native_worker = spawn_worker(&env, &dir.path().join("n"), native_app).await;
    let native_base = native_worker.base.clone();
    wait_for_counts(&native_base, &expected, Duration::from_secs(60)).await;
    let some_station = *expected.keys().nth(7).unwrap();
    for path in [
        "/api/turnstile".to_string(),
        format!("/api/turnstile/{some_station}"),
        "/api/turnstile/1".to_string(),
        "/api/turnstile/abc".to_string(),
    ] {
        let native = get_text(&format!("{native_base}{path}")).await;
        let ksql = get_text(&format!("{ksql_base}{path}")).await;
        assert_eq!(ksql, native, "{path}");
    }
    let (status, one) = get_json(&format!("{ksql_base}/api/turnstile/{some_station}")).await;
    assert_eq!(status, 200);
    assert_eq!(one["COUNT"].as_i64(), Some(expected[&some_station]));
    let p = problems.lock().unwrap().clone();
    assert!(p.is_empty(), "{p:?}");

    // ksqlDB gone: the API says so instead of inventing numbers.
    drop(stub);
    let (status, v) = get_json(&format!("{ksql_base}/api/turnstile")).await;
    assert_eq!(status, 503, "{v}");
    assert!(v["error"].as_str().unwrap().contains("ksqlDB"), "{v}");

    ksql_worker.stop().await;
    native_worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ksql_statement_error_stops_the_worker_with_its_message() {
    let env = setup(&["cta-ksql-err"]).await;
    let problems: Arc<Mutex<Vec<String>>> = Arc::default();
    let stub = stub::start(ksql_stub_handler(Arc::default(), problems.clone(), true)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut a = connect_args(&env);
    a.extend(args(&[
        "--app-id",
        "cta-ksql-err",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--web-addr",
        &free_addr().to_string(),
        "--ksql-url",
        &stub.url,
    ]));
    let (code, _, stderr) = run_bin("worker", &a).await;
    assert_eq!(code, 1, "{stderr}");
    let line = one_error_line(&stderr);
    assert!(
        line.contains(&format!(
            "ksqlDB {}/ksql: `CREATE TABLE IF NOT EXISTS turnstile_summary` failed: HTTP 400: Invalid config variable(s) in the WITH clause: KEY_FORMAT",
            stub.url
        )),
        "{line}"
    );
    let p = problems.lock().unwrap().clone();
    assert!(p.is_empty(), "{p:?}");

    // A malformed URL is a configuration error.
    let mut a = connect_args(&env);
    a.extend(args(&[
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--ksql-url",
        "ksqldb:8088",
    ]));
    let (code, _, stderr) = run_bin("worker", &a).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        one_error_line(&stderr).contains("--ksql-url 'ksqldb:8088'"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// Configuration errors of the binaries

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_errors_are_one_line_naming_the_flag_exit_2() {
    let dead = free_addr();
    let base = args(&[
        "--brokers",
        &dead.to_string(),
        "--schema-registry-url",
        &format!("http://{dead}"),
    ]);
    let with = |extra: &[&str]| {
        let mut a = base.clone();
        a.extend(args(extra));
        a
    };
    for bin in ["simulation", "worker"] {
        let (code, _, stderr) = run_bin(bin, &with(&["-X", "no.such.property=1"])).await;
        assert_eq!(code, 2, "{bin}: {stderr}");
        assert_eq!(
            one_error_line(&stderr),
            "error: -X no.such.property: No such configuration property: \"no.such.property\""
        );

        let (code, _, stderr) = run_bin(bin, &with(&["-X", "acks=lots"])).await;
        assert_eq!(code, 2, "{bin}: {stderr}");
        let line = one_error_line(&stderr);
        assert!(line.starts_with("error: -X acks: Invalid value"), "{line}");
        assert!(!line.contains("lots"), "values are not echoed: {line}");

        // The registry is checked at start.
        let (code, _, stderr) = run_bin(bin, &base).await;
        assert_eq!(code, 2, "{bin}: {stderr}");
        let line = one_error_line(&stderr);
        assert!(
            line.starts_with(&format!(
                "error: --schema-registry-url http://{dead}: cannot reach the schema registry"
            )),
            "{line}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let props = dir.path().join("client.properties");
    std::fs::write(
        &props,
        "# Confluent Cloud style\nsecurity.protocol=SASL_SSL\nsasl.mechanisms : PLAIN\nsasl.username=KEY\nsasl.password=SECRET\nsasl.mechanizm=PLAIN\n",
    )
    .unwrap();
    let (code, _, stderr) = run_bin(
        "simulation",
        &with(&["--kafka-properties-file", props.to_str().unwrap()]),
    )
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        one_error_line(&stderr),
        format!(
            "error: --kafka-properties-file {} line 6 sasl.mechanizm: No such configuration property: \"sasl.mechanizm\"",
            props.display()
        )
    );
    // Properties fine one by one but not together (a CA file that is not there).
    let (code, _, stderr) = run_bin(
        "worker",
        &with(&[
            "-X",
            "security.protocol=SSL",
            "-X",
            "ssl.ca.location=/nonexistent/ca.pem",
        ]),
    )
    .await;
    assert_eq!(code, 2, "{stderr}");
    let line = one_error_line(&stderr);
    assert!(
        line.contains("-X / --kafka-properties-file") && line.contains("ssl.ca.location"),
        "{line}"
    );

    let (code, _, stderr) = run_bin(
        "worker",
        &with(&["--schema-registry-ca", props.to_str().unwrap()]),
    )
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(one_error_line(&stderr).starts_with(&format!(
        "error: --schema-registry-ca {}: not a PEM certificate",
        props.display()
    )));
}

// ---------------------------------------------------------------------------------------------
// Schema Registry over TLS with a private CA (--schema-registry-ca)

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Stops the TLS server when the test ends, also on failure.
struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_tls_trusts_the_given_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=cta test CA",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    let addr = free_addr();
    // `openssl s_server -www` answers any GET with 200: enough for the start-up check.
    let _server = Child(
        std::process::Command::new("openssl")
            .current_dir(d)
            .args([
                "s_server",
                "-accept",
                &addr.to_string(),
                "-cert",
                "server.pem",
                "-key",
                "server.key",
                "-www",
                "-quiet",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    eventually("s_server listens", Duration::from_secs(20), async || {
        std::net::TcpStream::connect(addr)
    })
    .await;
    let url = format!("https://{addr}");

    let mut registry = cta_stream::stream::RegistryConfig::new(url.clone());
    let err = cta_stream::endpoints::check_registry(&registry)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "--schema-registry-url {url}: cannot reach the schema registry"
        )),
        "{err}"
    );
    assert!(err.contains("certificate"), "{err}");
    registry.ca_file = Some(d.join("ca.pem"));
    cta_stream::endpoints::check_registry(&registry)
        .await
        .unwrap();
    // The encoder's client is built the same way.
    registry.settings().unwrap();
}

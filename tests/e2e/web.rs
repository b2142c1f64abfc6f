//! The web layer against a running worker on loopback: `/metrics` checked against counts read
//! independently from the topics, HTML escaping of values that came from Kafka, the server's
//! limits, and a bounded fuzz run of odd paths and query strings.

#[path = "../common/mod.rs"]
mod common;

use common::*;
use cta_stream::stream::testing::{eventually, unique_name};
use cta_stream::transit::models::topics;
use cta_stream::transit::simulation::{self, SimConfig};
use cta_stream::transit::stations::Dataset;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const EVIL: &str = "<script>alert(1)</script> & Co";
const EVIL_ID: i32 = 99_999;

fn sim_config(seed: u64, steps: u64, start_ms: i64) -> SimConfig {
    SimConfig {
        time_step: Duration::from_secs(300),
        sleep: Duration::ZERO,
        steps: Some(steps),
        seed,
        trains_per_line: 4,
        partitions: 4,
        start_ms,
        publish_stations: true,
    }
}

/// Polls `/metrics` until `done` holds for a scrape (bounded), and returns that scrape.
async fn scrape_until(
    base: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(&prometheus_parse::Scrape) -> bool,
) -> prometheus_parse::Scrape {
    eventually(&format!("metrics show {what}"), timeout, async || {
        let s = scrape(base).await;
        if done(&s) {
            return Ok(s);
        }
        // The last scrape's own samples (not the HTTP ones).
        Err(s
            .samples
            .into_iter()
            .filter(|x| x.metric.starts_with("cta_") && !x.metric.starts_with("cta_http"))
            .map(|x| (x.metric, x.labels, x.value))
            .collect::<Vec<_>>())
    })
    .await
}

/// Decodes HTML character references (named for the five specials, and numeric).
fn decode_entities(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest.find(';').expect("unterminated character reference");
        let name = &rest[1..end];
        let c = match name {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            n if n.starts_with("#x") || n.starts_with("#X") => {
                char::from_u32(u32::from_str_radix(&n[2..], 16).unwrap()).unwrap()
            }
            n if n.starts_with('#') => char::from_u32(n[1..].parse().unwrap()).unwrap(),
            other => panic!("unknown entity {other}"),
        };
        out.push(c);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn http_total(s: &prometheus_parse::Scrape) -> f64 {
    samples(s, "cta_http_requests_total")
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

fn http_count(s: &prometheus_parse::Scrape, route: &str, status: &str) -> f64 {
    sample(
        s,
        "cta_http_requests_total",
        &[("route", route), ("status", status), ("method", "GET")],
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_match_independent_counts_and_values_are_escaped() {
    let env = env().await;
    let app_id = unique_name("cta-web-metrics");
    create_all_topics(&env, &app_id).await;
    env.create_topics(&[format!("{}.dlq", topics::TURNSTILE)], 4)
        .await;
    let report = simulation::run(
        Dataset::builtin(),
        sim_config(11, 4, 1_795_957_200_000),
        &env.kafka,
        &env.registry,
        cta_stream::stream::Shutdown::new(),
    )
    .await
    .unwrap();
    assert_eq!(report.steps, 4);
    let expected = count_turnstile(&env).await;
    assert!(expected.values().sum::<i64>() > 1000);
    // One record no decoder accepts: skipped, counted, dead-lettered.
    produce_raw(&env.kafka.brokers, topics::TURNSTILE, None, b"not avro");
    // A station whose name is markup.
    produce_raw(
        &env.kafka.brokers,
        topics::STATIONS,
        None,
        &station_row_json(EVIL_ID, EVIL, 999),
    );
    let on_topic = read_all(&env.kafka.brokers, topics::TURNSTILE).len() as f64;
    assert_eq!(on_topic, expected.values().sum::<i64>() as f64 + 1.0);

    let dir = tempfile::tempdir().unwrap();
    let w = spawn_worker(&env, dir.path(), &app_id).await;
    wait_for_counts(&w.base, &expected, Duration::from_secs(90)).await;

    // Everything consumed and checkpointed: consumed equals what is on the topic, lag is 0.
    let s = scrape_until(
        &w.base,
        "all records consumed with no lag",
        Duration::from_secs(60),
        |s| {
            sample(
                s,
                "cta_records_consumed_total",
                &[("topic", topics::TURNSTILE)],
            ) == Some(on_topic)
                && samples(s, "cta_consumer_lag").count() == 16
                && samples(s, "cta_consumer_lag")
                    .all(|x| x.value == prometheus_parse::Value::Gauge(0.0))
                && sample(s, "cta_table_entries", &[("table", "stations")]).unwrap_or(0.0) > 0.0
        },
    )
    .await;
    assert_eq!(sample(&s, "cta_decode_errors_total", &[]), Some(1.0));
    assert_eq!(sample(&s, "cta_dead_lettered_total", &[]), Some(1.0));
    assert_eq!(
        sample(
            &s,
            "cta_records_produced_total",
            &[("topic", &format!("{}.dlq", topics::TURNSTILE))]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&s, "cta_table_entries", &[("table", "turnstile-summary")]),
        Some(expected.len() as f64)
    );
    assert!(sample(&s, "cta_commits_total", &[]).unwrap() >= 1.0);
    assert_eq!(sample(&s, "cta_recovering", &[]), Some(0.0));
    assert!(sample(&s, "cta_restore_done_records", &[]).is_some());
    assert!(sample(&s, "cta_restore_total_records", &[]).is_some());
    // On a fresh cluster the changelog holds exactly what this worker produced. Lag 0 above
    // means the checkpoint covering every record (and its changelog records) is done.
    if env.platform.is_some() {
        for topic in [topics::TURNSTILE_SUMMARY, topics::STATIONS_TABLE] {
            let written = read_all(&env.kafka.brokers, topic).len() as f64;
            assert!(written > 0.0, "{topic} is empty");
            scrape_until(
                &w.base,
                &format!("{written} records produced to {topic}"),
                Duration::from_secs(30),
                |s| sample(s, "cta_records_produced_total", &[("topic", topic)]) == Some(written),
            )
            .await;
        }
    }

    // HTTP counters grow by exactly the requests made (the scrape counts itself afterwards).
    let before = scrape(&w.base).await;
    let sid = *expected.keys().next().unwrap();
    for _ in 0..3 {
        assert_eq!(get_json(&format!("{}/api/turnstile", w.base)).await.0, 200);
    }
    assert_eq!(
        get_json(&format!("{}/api/turnstile/{sid}", w.base)).await.0,
        200
    );
    for bad in ["abc", "99999999999999999999", "1.5"] {
        assert_eq!(
            get_json(&format!("{}/api/turnstile/{bad}", w.base)).await.0,
            400
        );
    }
    for unknown in ["nope", "api/nope", "static/../Cargo.toml"] {
        assert_eq!(get_json(&format!("{}/{unknown}", w.base)).await.0, 404);
    }
    let page = reqwest::get(&w.base).await.unwrap().text().await.unwrap();
    let after = scrape(&w.base).await;
    let series = |s: &prometheus_parse::Scrape| {
        samples(s, "cta_http_requests_total")
            .map(|x| (format!("{:?}", x.labels), format!("{:?}", x.value)))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        http_total(&after) - http_total(&before),
        12.0,
        "before {:?}\nafter {:?}",
        series(&before),
        series(&after)
    );
    assert_eq!(
        http_count(&after, "/api/turnstile", "200") - http_count(&before, "/api/turnstile", "200"),
        3.0
    );
    assert_eq!(
        http_count(&after, "/api/turnstile/:station_id", "200")
            - http_count(&before, "/api/turnstile/:station_id", "200"),
        1.0
    );
    assert_eq!(
        http_count(&after, "/api/turnstile/:station_id", "400")
            - http_count(&before, "/api/turnstile/:station_id", "400"),
        3.0
    );
    assert_eq!(
        http_count(&after, "unmatched", "404") - http_count(&before, "unmatched", "404"),
        3.0
    );
    assert_eq!(
        http_count(&after, "/metrics", "200") - http_count(&before, "/metrics", "200"),
        1.0
    );
    assert_eq!(
        http_count(&after, "/", "200") - http_count(&before, "/", "200"),
        1.0
    );
    let latency_count = |s: &prometheus_parse::Scrape| {
        sample(
            s,
            "cta_http_request_duration_seconds_count",
            &[("route", "/api/turnstile")],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(latency_count(&after) - latency_count(&before), 3.0);

    // The markup in the station name reaches the page as text, escaped; the API keeps it.
    let marker = format!("<tr data-station=\"{EVIL_ID}\">");
    let mut page = page;
    if !page.contains(&marker) {
        page = eventually(
            &format!("station {EVIL_ID} reaches the page"),
            Duration::from_secs(30),
            async || {
                let page = reqwest::get(&w.base).await.unwrap().text().await.unwrap();
                if page.contains(&marker) {
                    Ok(page)
                } else {
                    Err(format!("a page of {} bytes without {marker}", page.len()))
                }
            },
        )
        .await;
    }
    let row = &page[page.find(&marker).unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    let cell = row
        .split("<td>")
        .nth(1)
        .and_then(|c| c.split("</td>").next())
        .unwrap();
    assert!(
        !cell.contains('<') && !cell.contains('>') && !cell.contains('"'),
        "markup not escaped: {row}"
    );
    assert_eq!(decode_entities(cell), EVIL, "{row}");
    assert!(!page.contains("<script>alert(1)"), "raw markup on the page");
    assert_eq!(
        page.matches("<script").count(),
        1,
        "only the page's own script"
    );
    let (_, status) = get_json(&format!("{}/api/status", w.base)).await;
    let names: Vec<&str> = status["lines"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["stations"].as_array().unwrap())
        .filter_map(|s| s["station_name"].as_str())
        .collect();
    assert!(names.contains(&EVIL));
    w.stop().await;
}

/// One raw HTTP/1.1 exchange: status code and body (None when no status line came back).
/// Event streams are cut after their head.
async fn raw_request(
    addr: std::net::SocketAddr,
    method: &str,
    target: &[u8],
) -> Option<(u16, Vec<u8>)> {
    let mut req = Vec::new();
    req.extend_from_slice(method.as_bytes());
    req.push(b' ');
    req.extend_from_slice(target);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(&req).await.ok()?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                break buf.windows(4).position(|w| w == b"\r\n\r\n")?;
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
        if head.contains("text/event-stream") || method == "HEAD" {
            return Some((status, Vec::new()));
        }
        let mut body = buf[head_end + 4..].to_vec();
        loop {
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        Some((status, body))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .ok()
        .flatten()
}

const SEGMENTS: &[&str] = &[
    "",
    ".",
    "..",
    "...",
    "%2e%2e",
    "%2E%2E",
    "%2e%2e%2f",
    "..%2f",
    "%2f",
    "%2F",
    "%5c",
    "..\\",
    "%00",
    "%",
    "%zz",
    "%252e%252e",
    "static",
    "api",
    "turnstile",
    "status",
    "metrics",
    "health",
    "style.css",
    "live.js",
    "style.css%00.js",
    "Cargo.toml",
    "src",
    "etc",
    "passwd",
    "web",
    "mod.rs",
    "0",
    "-1",
    "2147483647",
    "2147483648",
    "-2147483649",
    "99999999999999999999999999",
    "1e9",
    "0x10",
    "1.5",
    "NaN",
    "%C3%A9",
    "\u{e9}",
    "\u{1F687}",
    "%F0%9F%9A%87",
    "%ff%fe",
    "a;b",
    "~",
    "*",
    "%20",
    "+",
    "'",
    "\"",
    "<x>",
    "%3Cscript%3E",
    "{id}",
    "//",
    "index.html",
];
const ROOTS: &[&str] = &[
    "/",
    "/api/turnstile/",
    "/api/",
    "/static/",
    "/static/%2e%2e/",
    "/static/..%2f",
    "//",
    "/api/turnstile",
    "/metrics",
    "/health",
    "/api/status",
    "/api/events",
    "/static/style.css",
];
const QUERY_PARTS: &[&str] = &[
    "",
    "a=1",
    "station_id=-1",
    "station_id=99999999999999999999",
    "x=%00",
    "%=%",
    "&&",
    "=",
    "q=\u{e9}",
    "path=../../etc/passwd",
    "a[]=1",
    "limit=18446744073709551616",
    "a=%zz",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fuzzed_paths_never_fail_the_server() {
    use rand::{Rng, SeedableRng};
    let env = env().await;
    let app_id = unique_name("cta-web-fuzz");
    create_all_topics(&env, &app_id).await;
    simulation::run(
        Dataset::builtin(),
        sim_config(5, 1, 1_795_957_200_000),
        &env.kafka,
        &env.registry,
        cta_stream::stream::Shutdown::new(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let w = spawn_worker(&env, dir.path(), &app_id).await;
    // While it restores its tables the worker answers 503 "recovering" on purpose; fuzz the
    // steady state.
    eventually(
        "the worker answers /api/turnstile with 200 (ready)",
        Duration::from_secs(60),
        async || match reqwest::get(format!("{}/api/turnstile", w.base)).await {
            Ok(r) if r.status() == 200 => Ok(()),
            Ok(r) => Err(r.status().to_string()),
            Err(e) => Err(e.to_string()),
        },
    )
    .await;
    let assets = [
        include_str!("../../static/style.css").as_bytes(),
        include_str!("../../static/live.js").as_bytes(),
    ];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20_261_124);
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut static_served = 0;
    const N: usize = 3000;
    for i in 0..N {
        let mut target = String::from(ROOTS[rng.random_range(0..ROOTS.len())]);
        for j in 0..rng.random_range(0..5) {
            if j > 0 || !target.ends_with('/') {
                target.push('/');
            }
            target.push_str(SEGMENTS[rng.random_range(0..SEGMENTS.len())]);
        }
        if rng.random_bool(0.4) {
            target.push('?');
            for k in 0..rng.random_range(1..4) {
                if k > 0 {
                    target.push('&');
                }
                target.push_str(QUERY_PARTS[rng.random_range(0..QUERY_PARTS.len())]);
            }
        }
        if i % 100 == 0 {
            // Now and then a huge path.
            target.push_str(&"a/".repeat(5000));
        }
        let method = match rng.random_range(0..20) {
            0 => "HEAD",
            1 => "POST",
            2 => "DELETE",
            3 => "OPTIONS",
            _ => "GET",
        };
        match raw_request(w.addr, method, target.as_bytes()).await {
            None => failures.push(format!("{method} {target}: no answer")),
            Some((status, body)) => {
                *statuses.entry(status).or_default() += 1;
                if status >= 500 {
                    failures.push(format!(
                        "{method} {target}: {status} {}",
                        String::from_utf8_lossy(&body)
                    ));
                }
                if target.starts_with("/static") && status == 200 && method == "GET" {
                    static_served += 1;
                    if !assets.contains(&body.as_slice()) {
                        failures.push(format!("{target}: served something else under /static/"));
                    }
                }
                let text = String::from_utf8_lossy(&body);
                if text.contains("[package]")
                    || text.contains("root:x:0")
                    || text.contains("pub fn ")
                {
                    failures.push(format!("{target}: leaked a file"));
                }
            }
        }
    }
    eprintln!("fuzz: {N} requests, statuses {statuses:?}, /static/ assets served {static_served}");
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    // The run reached real routes, not only errors.
    assert!(
        statuses.get(&200).copied().unwrap_or(0) > 100,
        "{statuses:?}"
    );
    assert!(
        statuses.get(&404).copied().unwrap_or(0) > 100,
        "{statuses:?}"
    );
    assert!(static_served > 0);
    // The server is still healthy.
    assert_eq!(get_json(&format!("{}/api/status", w.base)).await.0, 200);
    w.stop().await;
}

/// A web server over empty tables (no Kafka needed), with the given limits.
async fn bare_server(
    limits: cta_stream::web::WebLimits,
) -> (
    std::net::SocketAddr,
    cta_stream::stream::Shutdown,
    tempfile::TempDir,
) {
    use cta_stream::stream::{AppConfig, KafkaConfig, RegistryConfig};
    let dir = tempfile::tempdir().unwrap();
    let config = AppConfig::new("cta-web-bare", KafkaConfig::new("127.0.0.1:9"), dir.path());
    let (app, tables) =
        cta_stream::transit::build_worker(config, &RegistryConfig::new("http://127.0.0.1:9"))
            .unwrap();
    let state = cta_stream::web::WebState::new(tables, app.status());
    let shutdown = cta_stream::stream::Shutdown::new();
    let (addr, _task) = cta_stream::web::serve_with(
        "127.0.0.1:0".parse().unwrap(),
        state,
        shutdown.clone(),
        limits,
    )
    .await
    .unwrap();
    (addr, shutdown, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_and_body_limits_answer_4xx() {
    let (addr, shutdown, _dir) = bare_server(cta_stream::web::WebLimits::default()).await;
    let send = |raw: Vec<u8>| async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(&raw).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
        let text = String::from_utf8_lossy(&out).to_string();
        text.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
    };
    let ok = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec();
    assert_eq!(send(ok).await, Some(200));
    // 100 header fields (limit 64).
    let mut many = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".to_vec();
    for i in 0..100 {
        many.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(send(many).await, Some(431));
    // One 32 KiB header (limit 16 KiB in all).
    let mut big = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 32 * 1024));
    big.extend_from_slice(b"\r\n\r\n");
    assert_eq!(send(big).await, Some(431));
    // A declared 1 MiB body (limit 16 KiB), refused before it is sent.
    let body =
        b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1048576\r\n\r\n"
            .to_vec();
    assert_eq!(send(body).await, Some(413));
    // A small body to a GET-only route is a 405, not a failure.
    let small =
        b"POST /api/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
            .to_vec();
    assert_eq!(send(small).await, Some(405));
    shutdown.trigger();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_queues_extra_clients() {
    let limits = cta_stream::web::WebLimits {
        max_connections: 4,
        header_read_timeout: Duration::from_secs(60),
        ..Default::default()
    };
    let (addr, shutdown, _dir) = bare_server(limits).await;
    // Four idle connections take every slot (each served once, kept alive).
    let mut idle = Vec::new();
    for _ in 0..4 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        idle.push(s);
    }
    // A fifth client connects (kernel backlog) but gets no answer while they stay open.
    let mut fifth = tokio::net::TcpStream::connect(addr).await.unwrap();
    fifth
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let waited =
        tokio::time::timeout(Duration::from_millis(1500), fifth.read_to_end(&mut buf)).await;
    assert!(
        waited.is_err() && buf.is_empty(),
        "fifth connection served over the limit"
    );
    // Closing one frees a slot: the fifth is served.
    drop(idle.pop());
    tokio::time::timeout(Duration::from_secs(30), fifth.read_to_end(&mut buf))
        .await
        .expect("fifth connection never served")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    shutdown.trigger();
}

//! End to end on the embedded platform (or any broker via CTA_TEST_BROKERS): simulation →
//! Kafka → worker tables → JSON API, page and CLI; counts checked against the records read
//! back independently from the topic; then a worker restart keeps them exact.

#[path = "../common/mod.rs"]
mod common;

use common::*;
use cta_stream::stream::testing::unique_name;
use cta_stream::stream::Shutdown;
use cta_stream::transit::simulation::{self, SimConfig};
use cta_stream::transit::stations::Dataset;
use std::collections::BTreeMap;
use std::time::Duration;

fn sim_config(seed: u64, steps: u64, start_ms: i64) -> SimConfig {
    SimConfig {
        time_step: Duration::from_secs(300),
        sleep: Duration::ZERO,
        steps: Some(steps),
        seed,
        trains_per_line: 10,
        partitions: 4,
        start_ms,
        publish_stations: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pipeline_counts_are_exact_across_restart() {
    let env = env().await;
    let app_id = unique_name("cta-test");
    create_all_topics(&env, &app_id).await;
    let ds = Dataset::builtin();
    // 2026-11-29 07:00 Chicago (a Sunday morning), fixed for a reproducible run.
    let start = 1_795_957_200_000;
    let report = simulation::run(
        ds.clone(),
        sim_config(42, 12, start),
        &env.kafka,
        &env.registry,
        Shutdown::new(),
    )
    .await
    .unwrap();
    assert_eq!(report.steps, 12);

    let expected = count_turnstile(&env).await;
    let produced: i64 = expected.values().sum();
    assert!(
        produced > 10_000,
        "an hour of Sunday morning should give many entries, got {produced}"
    );
    // The simulation's own tally agrees with what is on the topic.
    let sim_tally: std::collections::BTreeMap<i32, i64> = report
        .turnstile_per_station
        .iter()
        .map(|(k, v)| (*k, *v as i64))
        .collect();
    assert_eq!(sim_tally, expected);

    let dir = tempfile::tempdir().unwrap();
    let worker = spawn_worker(&env, dir.path(), &app_id).await;
    let base = worker.base.clone();
    wait_for_counts(&base, &expected, Duration::from_secs(90)).await;

    // One station, unknown station, bad id.
    let (&sid, &count) = expected.iter().next().unwrap();
    let (status, one) = get_json(&format!("{base}/api/turnstile/{sid}")).await;
    assert_eq!(status, 200);
    assert_eq!(one["COUNT"].as_i64(), Some(count));
    assert_eq!(
        get_json(&format!("{base}/api/turnstile/12345")).await.0,
        404
    );
    assert_eq!(get_json(&format!("{base}/api/turnstile/abc")).await.0, 400);
    assert_eq!(get_json(&format!("{base}/no/such/path")).await.0, 404);

    // The CLI shows the same numbers.
    let cli = cta_stream::web::client::query_turnstile(&base, Some(sid), false)
        .await
        .unwrap();
    assert!(
        cli.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == [sid.to_string(), count.to_string()]),
        "{cli}"
    );

    // Every station of every line is on the page, with the API's figures.
    let mut page = String::new();
    for _ in 0..50 {
        page = reqwest::get(&base).await.unwrap().text().await.unwrap();
        let text = unescape_html(&page);
        if ds.rows().iter().all(|r| text.contains(&r.station_name))
            && text.contains("Weather: ")
            && !text.contains("no reading yet")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = unescape_html(&page);
    for r in ds.rows() {
        assert!(
            text.contains(&format!("<td>{}</td>", r.station_name)),
            "page lacks {}",
            r.station_name
        );
    }
    assert!(
        page.contains("O&#x27;Hare") || page.contains("O&#39;Hare"),
        "apostrophe escaped"
    );
    assert!(
        text.contains(&format!("id=\"total-entries\">{produced}<")),
        "page total"
    );
    assert!(text.contains(&format!("<tr data-station=\"{sid}\">")));
    for line in ["line-blue", "line-red", "line-green"] {
        assert!(text.contains(line));
    }
    assert!(
        !text.contains("http://") || text.matches("http://").count() == 0,
        "no outside assets"
    );
    // Trains are shown on platforms.
    let (_, status) = get_json(&format!("{base}/api/status")).await;
    let trains: usize = status["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["trains"].as_array().unwrap().len())
        .sum();
    assert_eq!(trains, 30, "10 trains per line seen");

    // Stop; start again on the same data dir: counts stay exact.
    worker.stop().await;
    let worker = spawn_worker(&env, dir.path(), &app_id).await;
    let base = worker.base.clone();
    wait_for_counts(&base, &expected, Duration::from_secs(60)).await;

    // Windowed counts: entries per station per hour, and the newest 15-minute window, as
    // counted from the records' timestamps.
    let entries = turnstile_entries(&env).await;
    let mut hourly: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for (id, ts) in &entries {
        *hourly
            .entry((*id as i64, ts - ts.rem_euclid(3_600_000)))
            .or_default() += 1;
    }
    let (_, api_hourly) = get_json(&format!("{base}/api/turnstile/hourly")).await;
    let got: BTreeMap<(i64, i64), i64> = api_hourly
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                (
                    w["STATION_ID"].as_i64().unwrap(),
                    w["WINDOW_START"].as_i64().unwrap(),
                ),
                w["COUNT"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, hourly);
    let (_, recent) = get_json(&format!("{base}/api/turnstile/recent/{sid}")).await;
    let newest = recent.as_array().unwrap().last().unwrap().clone();
    let start = newest["WINDOW_START"].as_i64().unwrap();
    assert_eq!(newest["WINDOW_END"].as_i64().unwrap() - start, 15 * 60_000);
    let in_window = entries
        .iter()
        .filter(|(id, ts)| *id == sid && *ts >= start && *ts < start + 15 * 60_000)
        .count();
    assert_eq!(newest["COUNT"].as_i64().unwrap(), in_window as i64);

    // More records while it runs: it continues exactly.
    simulation::run(
        ds,
        sim_config(7, 6, start + 12 * 300_000),
        &env.kafka,
        &env.registry,
        Shutdown::new(),
    )
    .await
    .unwrap();
    let expected2 = count_turnstile(&env).await;
    assert!(expected2.values().sum::<i64>() > produced);
    wait_for_counts(&base, &expected2, Duration::from_secs(90)).await;
    worker.stop().await;
}

//! Metrics that move: `cta_consumer_lag` says how far the worker is behind while it works
//! through a backlog and returns to 0 once it has caught up; a cold restore's
//! `cta_restore_done_records` / `cta_restore_total_records` end equal to the changelogs'
//! length, read independently from their watermarks.

#[path = "../common/mod.rs"]
mod common;

use common::*;
use cta_stream::stream::testing::{eventually, unique_name};
use cta_stream::transit::models::topics;
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::time::Duration;

/// Below the worker's `commit_every` (1M), so the backlog is checkpointed by the
/// 3 s commit interval (the worker started without the checkpoint when caught up): the lag
/// stays visible for that long.
const BACKLOG: usize = 60_000;

fn turnstile_lag(s: &prometheus_parse::Scrape) -> Option<f64> {
    let lags: Vec<f64> = samples(s, "cta_consumer_lag")
        .filter(|x| x.labels.get("topic") == Some(topics::TURNSTILE))
        .map(|x| match x.value {
            prometheus_parse::Value::Gauge(v) => v,
            ref other => panic!("lag not a gauge: {other:?}"),
        })
        .collect();
    (lags.len() == 4).then(|| lags.iter().sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lag_rises_with_a_backlog_and_returns_to_zero_and_restore_counts_the_changelog() {
    let env = env().await;
    let app_id = unique_name("metrics");
    create_all_topics(&env, &app_id).await;
    let producer = TurnstileProducer::new(&env).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
    let mut expected = BTreeMap::new();
    producer.send(BACKLOG, &mut rng, &mut expected);

    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let base = format!("http://{addr}");
    let mut child = spawn_worker_binary_with(
        &env,
        dir.path(),
        &app_id,
        addr,
        "3s",
        &ONLY_TIMED_CHECKPOINTS,
    );
    // Scrape from the moment the worker answers until it has caught up.
    let mut lags = Vec::new();
    eventually(
        "the turnstile lag returns to 0",
        Duration::from_secs(60),
        async || {
            if let Err(e) = reqwest::get(format!("{base}/metrics")).await {
                return Err(format!("lags {lags:?}, then no answer: {e}"));
            }
            let s = scrape(&base).await;
            if let Some(lag) = turnstile_lag(&s) {
                lags.push(lag);
                if lag == 0.0 {
                    return Ok(());
                }
            }
            Err(format!("lags {lags:?}"))
        },
    )
    .await;
    eprintln!(
        "turnstile lag over {} scrapes: first {:?}, max {:?}",
        lags.len(),
        lags.first(),
        lags.iter().cloned().fold(0.0, f64::max)
    );
    assert!(
        lags.iter().any(|&l| l > 0.0),
        "lag above 0 while the backlog was worked through: {lags:?}"
    );
    assert!(
        lags.iter().all(|&l| l <= BACKLOG as f64),
        "never more than the backlog: {lags:?}"
    );
    assert!(
        lags.windows(2).all(|w| w[1] <= w[0]),
        "lag only falls while nothing new arrives: {lags:?}"
    );
    wait_for_counts(&base, &expected, Duration::from_secs(30)).await;
    let s = scrape(&base).await;
    assert_eq!(
        sample(
            &s,
            "cta_records_consumed_total",
            &[("topic", topics::TURNSTILE)]
        ),
        Some(BACKLOG as f64)
    );
    assert_eq!(turnstile_lag(&s), Some(0.0));

    // New records: lag shows them until the checkpoint covers them.
    producer.send(5_000, &mut rng, &mut expected);
    wait_for_counts(&base, &expected, Duration::from_secs(30)).await;
    eventually(
        "the turnstile lag returns to 0 again",
        Duration::from_secs(30),
        async || {
            let lag = turnstile_lag(&scrape(&base).await);
            if lag == Some(0.0) {
                Ok(())
            } else {
                Err(lag)
            }
        },
    )
    .await;
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());

    // Cold restore: a new data dir rebuilds every table from its changelog.
    let length = changelog_offsets(&env, &app_id);
    assert!(length > 0);
    let cold = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let base = format!("http://{addr}");
    let mut child = spawn_worker_binary(&env, cold.path(), &app_id, addr, "3s");
    // (done, total, recovering) at each scrape.
    let mut seen = Vec::new();
    eventually(
        &format!("the restore counters reach {length}, not recovering"),
        Duration::from_secs(60),
        async || {
            if let Err(e) = reqwest::get(format!("{base}/metrics")).await {
                return Err(format!("{seen:?}, then no answer: {e}"));
            }
            let s = scrape(&base).await;
            let done = sample(&s, "cta_restore_done_records", &[]).unwrap();
            let total = sample(&s, "cta_restore_total_records", &[]).unwrap();
            let recovering = sample(&s, "cta_recovering", &[]).unwrap();
            seen.push((done, total, recovering));
            assert!(done <= total, "restored more than announced: {seen:?}");
            if done == length as f64 && total == length as f64 && recovering == 0.0 {
                Ok(())
            } else {
                Err(format!("{seen:?}"))
            }
        },
    )
    .await;
    eprintln!(
        "cold restore of {length} changelog records; counters seen: {:?}",
        &seen[..seen.len().min(8)]
    );
    wait_for_counts(&base, &expected, Duration::from_secs(30)).await;
    child.kill().unwrap();
    child.wait().unwrap();
}

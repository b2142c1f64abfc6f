//! Turnstile entries keyed as the original CTA project's producers key them (Avro key
//! `{timestamp}`, the original value schema with `station_id` a string, on a 5-partition
//! topic), counted by a worker with `--turnstile-keys other`: each entry is re-keyed by station
//! through the repartition topic, and `/api/turnstile` equals the tally of what was produced;
//! then the same through at least 10 kill -9 restarts and a cold restore.

#[path = "../common/mod.rs"]
mod common;

use common::kills::*;
use common::*;
use cta_stream::stream::table::route::partition_for;
use cta_stream::stream::testing::unique_name;
use cta_stream::transit::models::topics;
use rand::SeedableRng;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The original project's turnstile topic has 5 partitions.
const PARTITIONS: i32 = 5;

const OTHER_KEYS: &[&str] = &["--turnstile-keys", "other"];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn entries_keyed_by_timestamp_are_counted_exactly_per_station() {
    let env = env().await;
    let app_id = unique_name("rekey");
    create_all_topics_with(&env, &app_id, PARTITIONS).await;
    let producer = TurnstileProducer::original(&env).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(14);
    let mut expected = BTreeMap::new();
    producer.send(20_000, &mut rng, &mut expected);
    // Read back independently: the counts per station equal the tally, and a station's
    // entries are spread over the partitions (Kafka's partitioner on the timestamp keys).
    let mut avro = IndependentAvro::new(&env.registry.url);
    let mut on_topic: BTreeMap<i32, i64> = BTreeMap::new();
    let mut spread: BTreeMap<i32, BTreeSet<i32>> = BTreeMap::new();
    for (k, v) in read_all(&env.kafka.brokers, topics::TURNSTILE) {
        let id = match &avro.decode(&v.unwrap()).await["station_id"] {
            apache_avro::types::Value::String(s) => s.parse::<i32>().unwrap(),
            other => panic!("station_id {other:?}"),
        };
        *on_topic.entry(id).or_default() += 1;
        spread
            .entry(id)
            .or_default()
            .insert(partition_for(&k.unwrap(), PARTITIONS));
    }
    assert_eq!(on_topic, expected);
    let spread_out = spread.values().filter(|ps| ps.len() > 1).count();
    assert!(spread_out * 2 > spread.len(), "{spread:?}");

    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut child = spawn_worker_binary_with(&env, dir.path(), &app_id, addr, "200ms", OTHER_KEYS);
    let base = format!("http://{addr}");
    wait_for_counts(&base, &expected, Duration::from_secs(120)).await;
    // More while it runs, then the same again.
    producer.send(5_000, &mut rng, &mut expected);
    wait_for_counts(&base, &expected, Duration::from_secs(60)).await;
    // Each station's count is whole in one partition (the repartition topic's by station id).
    let (status, one) = get_json(&format!("{base}/tables/turnstile-summary/40380")).await;
    assert_eq!(status, 200);
    let copies = one.as_array().unwrap();
    assert_eq!(copies.len(), 1, "{one}");
    assert_eq!(
        copies[0]["value"]["COUNT"].as_i64(),
        expected.get(&40380).copied()
    );
    let repartition = format!("{app_id}-turnstile-by-station-repartition");
    assert_eq!(
        read_all(&env.kafka.brokers, &repartition).len() as i64,
        expected.values().sum::<i64>(),
        "one repartition record per entry"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repartitioned_counts_are_exact_after_repeated_kill_9() {
    let plan = KillPlan {
        records: 120_000,
        chunk: 3_000,
        kills: 10,
        worker_flags: OTHER_KEYS,
    };
    let env = env().await;
    let app_id = unique_name("rekey-crash");
    create_all_topics_with(&env, &app_id, PARTITIONS).await;
    let producer = TurnstileProducer::original(&env).await;
    let expected = kill_run_is_exact(&env, &app_id, plan, producer, 7).await;
    // Every entry went through the repartition topic at least once; the ones killed workers
    // re-keyed again were skipped downstream (the counts above are exact).
    let produced = expected.values().sum::<i64>();
    let topic = &cta_stream::transit::repartition_topics(&app_id)[0];
    let repartitioned = read_all(&env.kafka.brokers, topic).len() as i64;
    eprintln!("{produced} entries, {repartitioned} repartition records");
    assert!(repartitioned >= produced, "{repartitioned} < {produced}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repartition_topic_with_another_partition_count_is_refused_at_start() {
    use cta_stream::stream::kafka::{ensure_topics, TopicSpec};
    let env = env().await;
    let app_id = unique_name("rekey-wrong");
    let repartition = cta_stream::transit::repartition_topics(&app_id)[0].clone();
    // Created by hand on either broker: the embedded one first (no CreateTopics there).
    let specs = [(topics::TURNSTILE, PARTITIONS), (repartition.as_str(), 3)];
    for (name, partitions) in specs {
        env.create_topics(&[name.to_string()], partitions).await;
        let spec = TopicSpec {
            name: name.to_string(),
            partitions,
            compacted: false,
        };
        ensure_topics(&env.kafka, &[spec]).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let output = worker_binary(&env, dir.path(), &app_id, free_addr(), "200ms")
        .args(OTHER_KEYS)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let waiting = tokio::task::spawn_blocking(move || output.wait_with_output());
    let output = tokio::time::timeout(Duration::from_secs(90), waiting)
        .await
        .expect("the worker did not stop")
        .unwrap()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let want = format!("repartition topic {repartition} has 3 partitions but needs {PARTITIONS}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(&want)).collect();
    assert!(!lines.is_empty(), "{stderr}");
}

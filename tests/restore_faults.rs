//! Restores that cannot find what they expect end in the documented behaviour:
//!
//! - a changelog missing while the group has committed progress: logged, the table starts from
//!   what remains (nothing) and the worker resumes at the committed offsets, so it counts
//!   exactly the entries after them;
//! - a restore that stops receiving records (the broker goes down mid-restore): the worker
//!   stops with one error naming the partition and offset, within the stall timeout (30 s)
//!   plus the consumer's close, instead of hanging; with the broker back a restart is exact.
//!
//! Uses the embedded broker's fault injection; skipped when `CTA_TEST_BROKERS` is set.

mod common;

use common::*;
use cta_stream::transit::models::topics;
use rand::SeedableRng;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn embedded_only() -> bool {
    if std::env::var_os("CTA_TEST_BROKERS").is_some() {
        eprintln!("skipped: needs the embedded broker, and CTA_TEST_BROKERS points elsewhere");
        return false;
    }
    true
}

/// Commits the turnstile topic's current ends as the group `group`'s offsets, as a worker
/// that had processed everything would have.
fn commit_ends(brokers: &str, group: &str) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    let mut total = 0;
    for p in 0..4 {
        let (_, hi) = c
            .fetch_watermarks(topics::TURNSTILE, p, Duration::from_secs(10))
            .unwrap();
        total += hi;
        tpl.add_partition_offset(topics::TURNSTILE, p, Offset::Offset(hi))
            .unwrap();
    }
    c.commit(&tpl, CommitMode::Sync).unwrap();
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_changelog_is_logged_and_the_worker_resumes_at_the_committed_offsets() {
    if !embedded_only() {
        return;
    }
    let env = env().await;
    let app_id = format!("missing-{}", std::process::id());
    create_all_topics(&env, &app_id);
    let producer = TurnstileProducer::new(&env).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(31);
    let mut before = BTreeMap::new();
    producer.send(8_000, &mut rng, &mut before);
    // The group has processed those 8k, but its changelog holds nothing.
    assert_eq!(commit_ends(&env.kafka.brokers, &app_id), 8_000);
    assert!(read_all(&env.kafka.brokers, topics::TURNSTILE_SUMMARY).is_empty());
    let mut after = BTreeMap::new();
    producer.send(3_000, &mut rng, &mut after);

    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let log_path = dir.path().join("worker.log");
    let mut child = worker_binary(&env, dir.path(), &app_id, addr, "200ms")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    // Only what came after the committed offsets is counted.
    wait_for_counts(&format!("http://{addr}"), &after, Duration::from_secs(60)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap();
    let missing: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("the changelog is missing"))
        .collect();
    assert!(
        missing.len() == 4 && missing.iter().all(|l| l.contains(topics::TURNSTILE_SUMMARY)),
        "one warning per turnstile partition naming its changelog; log:\n{log}"
    );
    eprintln!("worker said: {}", missing[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_restore_stops_the_worker_naming_the_offset() {
    if !embedded_only() {
        return;
    }
    let env = env().await;
    let app_id = format!("stall-{}", std::process::id());
    create_all_topics(&env, &app_id);
    let producer = TurnstileProducer::new(&env).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(32);
    let mut expected = BTreeMap::new();
    producer.send(10_000, &mut rng, &mut expected);

    // A worker writes the changelog, then stops.
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut child = spawn_worker_binary(&env, dir.path(), &app_id, addr, "200ms");
    wait_for_counts(&format!("http://{addr}"), &expected, Duration::from_secs(60)).await;
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());

    // A long changelog: each partition's records again and again (values are absolute
    // counts, so replaying them changes nothing), for a restore that lasts a while.
    let records = read_all_at(&env.kafka.brokers, topics::TURNSTILE_SUMMARY);
    assert!(!records.is_empty());
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &env.kafka.brokers)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let copies = 600_000 / records.len();
    for _ in 0..copies {
        for (partition, key, value, header) in &records {
            let mut rec: BaseRecord<'_, [u8], [u8]> =
                BaseRecord::to(topics::TURNSTILE_SUMMARY).partition(*partition);
            rec = rec.key(key.as_slice()).payload(value.as_slice());
            if let Some(h) = header {
                rec = rec.headers(OwnedHeaders::new().insert(Header {
                    key: "cta-stream.source-offset",
                    value: Some(h.as_slice()),
                }));
            }
            while let Err((e, r)) = p.send(rec) {
                assert!(
                    matches!(e, rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull)),
                    "{e}"
                );
                p.poll(Duration::from_millis(10));
                rec = r;
            }
        }
    }
    p.flush(Duration::from_secs(60)).unwrap();
    let length = changelog_offsets(&env, &app_id);
    eprintln!("changelog of {length} records");

    // A cold restore; the broker goes down while it runs.
    let cold = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let base = format!("http://{addr}");
    let log_path = cold.path().join("worker.log");
    let mut child = worker_binary(&env, cold.path(), &app_id, addr, "200ms")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never saw the restore running"
        );
        if let Ok(r) = reqwest::get(format!("{base}/metrics")).await {
            if r.status().is_success() {
                let s = scrape(&base).await;
                let done = sample(&s, "cta_restore_done_records", &[]).unwrap_or(0.0);
                if sample(&s, "cta_recovering", &[]) == Some(1.0) && done < length as f64 / 2.0 {
                    eprintln!("restore running: {done} of {length} records");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let broker = &env.platform.as_ref().expect("embedded platform").broker;
    broker.broker_down(1).unwrap();
    let down = Instant::now();
    let status = wait_exit(&mut child, Duration::from_secs(75)).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("the worker hangs in a restore that receives nothing")
    });
    let took = down.elapsed();
    broker.broker_up(1).unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(status.code(), Some(1), "exit code; log:\n{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line; log:\n{log}");
    eprintln!("worker stopped {took:?} after the broker went down: {}", errors[0]);
    assert!(
        errors[0].contains("stalled at offset") && errors[0].contains(topics::TURNSTILE_SUMMARY),
        "names the changelog and the offset: {}",
        errors[0]
    );

    // Broker back: a restart restores everything and counts exactly.
    let addr = free_addr();
    let mut child = spawn_worker_binary(&env, cold.path(), &app_id, addr, "200ms");
    wait_for_counts(&format!("http://{addr}"), &expected, Duration::from_secs(120)).await;
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Every record of `topic`: partition, key, value and source-offset header.
fn read_all_at(brokers: &str, topic: &str) -> Vec<(i32, Vec<u8>, Vec<u8>, Option<Vec<u8>>)> {
    use rdkafka::message::{Headers, Message};
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "stall-reader")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    let mut total = 0;
    for p in 0..4 {
        let (lo, hi) = c
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .unwrap();
        total += hi - lo;
        tpl.add_partition_offset(topic, p, Offset::Offset(lo)).unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (out.len() as i64) < total {
        assert!(Instant::now() < deadline, "timed out reading {topic}");
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            let header = m.headers().and_then(|hs| {
                hs.iter()
                    .find(|h| h.key == "cta-stream.source-offset")
                    .and_then(|h| h.value.map(<[u8]>::to_vec))
            });
            out.push((
                m.partition(),
                m.key().unwrap_or_default().to_vec(),
                m.payload().unwrap_or_default().to_vec(),
                header,
            ));
        }
    }
    out
}

//! Restores that do not find what they expect end in the documented behaviour (README,
//! "Failure behaviour"):
//!
//! - a changelog truncated past a store's checkpoint: a warning per partition naming where the
//!   store is and where the log now starts, and the store restored from what remains (here
//!   what was lost held nothing the store lacked, so the counts are exact);
//! - a changelog missing while the group has committed progress: a warning per partition, the
//!   table starts empty and the worker resumes at the committed offsets, so it counts exactly
//!   the entries after them;
//! - a restore that receives nothing: one error line naming the changelog partition and the
//!   offset it waited at, exit 1 once the stall timeout (30 s) has passed, never a hang; once
//!   the broker serves again a restart restores everything.
//!
//! The stalled restore needs the embedded broker's fault injection and skips elsewhere; the
//! truncation uses DeleteRecords on other brokers and the embedded broker's log limit (it keeps
//! the last 5 MiB of each partition) on the mock, which has no DeleteRecords.

#[path = "../common/mod.rs"]
mod common;

use common::*;
use cta_stream::stream::testing::unique_name;
use cta_stream::transit::models::topics;
use rand::SeedableRng;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 4;

/// (low, high) watermarks of each partition of `topic`.
fn watermarks(env: &TestEnv, topic: &str) -> Vec<(i64, i64)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &env.kafka.brokers)
        .create()
        .unwrap();
    (0..PARTITIONS)
        .map(|p| {
            c.fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap()
        })
        .collect()
}

/// The worker binary with its stderr in `log`; returns it and its web base URL.
fn start_logged(env: &TestEnv, dir: &Path, app_id: &str, log: &Path) -> (Child, String) {
    let addr = free_addr();
    let child = worker_binary(env, dir, app_id, addr, "200ms")
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    (child, format!("http://{addr}"))
}

/// SIGTERM, and the worker's clean exit.
fn stop(mut child: Child) {
    // SAFETY: signalling a child process this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_exit(&mut child, Duration::from_secs(30)).expect("worker did not stop");
    assert!(status.success(), "worker exit {status}");
}

/// The lines of the worker log at `log` containing `needle`, without terminal colours.
fn log_lines(log: &Path, needle: &str) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(strip_colours)
        .filter(|l| l.contains(needle))
        .collect()
}

/// `line` without ANSI escape sequences (ESC '[' ... letter).
fn strip_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for e in chars.by_ref() {
                if e.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Makes each partition of `topic` start after `past[p]`: appends keyless filler records (a
/// restore skips them as bad records) and has the broker drop the log's head. Returns the new
/// low watermarks.
async fn truncate_past(env: &TestEnv, topic: &str, past: &[i64]) -> Vec<i64> {
    const FILLER: usize = 12;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &env.kafka.brokers)
        .set("message.max.bytes", "1000000")
        .create()
        .unwrap();
    // 12 x 512 KiB: past the embedded broker's 5 MiB per partition.
    let payload = vec![b'x'; 512 << 10];
    for p in 0..PARTITIONS {
        for _ in 0..FILLER {
            let record: FutureRecord<'_, (), [u8]> =
                FutureRecord::to(topic).partition(p).payload(&payload);
            producer
                .send(record, Duration::from_secs(30))
                .await
                .map_err(|(e, _)| e)
                .unwrap();
        }
    }
    if env.platform.is_none() {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &env.kafka.brokers)
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for (p, (_, high)) in watermarks(env, topic).into_iter().enumerate() {
            tpl.add_partition_offset(topic, p as i32, Offset::Offset(high - FILLER as i64 / 2))
                .unwrap();
        }
        admin
            .delete_records(&tpl, &AdminOptions::new())
            .await
            .unwrap();
    }
    let lows: Vec<i64> = watermarks(env, topic).iter().map(|w| w.0).collect();
    for (p, low) in lows.iter().enumerate() {
        assert!(
            *low > past[p],
            "partition {p} of {topic} still starts at {low}, not past {}",
            past[p]
        );
    }
    lows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_changelog_truncated_past_the_local_checkpoint_is_restored_from_what_remains() {
    let env = env().await;
    let app_id = unique_name("truncated");
    create_all_topics(&env, &app_id).await;
    let producer = TurnstileProducer::new(&env).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(30);
    let mut expected = BTreeMap::new();
    producer.send(6_000, &mut rng, &mut expected);

    // Worker A counts the first entries and stops: its stores' changelog checkpoints are at
    // most the changelog's ends now.
    let a_dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let (a, base) = start_logged(&env, a_dir.path(), &app_id, &logs.path().join("a1.log"));
    wait_for_counts(&base, &expected, Duration::from_secs(60)).await;
    stop(a);
    let checkpoints: Vec<i64> = watermarks(&env, topics::TURNSTILE_SUMMARY)
        .iter()
        .map(|w| w.1)
        .collect();

    // Worker B takes over with a cold restore of the whole changelog; the changelog then loses
    // its head, past A's checkpoints; B counts more, its records land after the cut.
    let b_dir = tempfile::tempdir().unwrap();
    let (b, base) = start_logged(&env, b_dir.path(), &app_id, &logs.path().join("b.log"));
    wait_for_counts(&base, &expected, Duration::from_secs(60)).await;
    let lows = truncate_past(&env, topics::TURNSTILE_SUMMARY, &checkpoints).await;
    eprintln!("A's checkpoints at {checkpoints:?}; the changelog now starts at {lows:?}");
    producer.send(4_000, &mut rng, &mut expected);
    wait_for_counts(&base, &expected, Duration::from_secs(60)).await;
    stop(b);

    // A restarts on its own stores: each turnstile partition says the changelog was cut past
    // its checkpoint and is restored from what remains, which holds every count B changed.
    let log = logs.path().join("a2.log");
    let (mut a, base) = start_logged(&env, a_dir.path(), &app_id, &log);
    wait_for_counts(&base, &expected, Duration::from_secs(90)).await;
    assert_eq!(count_turnstile(&env).await, expected);
    a.kill().unwrap();
    a.wait().unwrap();
    let warned = log_lines(&log, "changelog truncated before the local checkpoint");
    for (p, low) in lows.iter().enumerate() {
        let line = warned
            .iter()
            .find(|l| {
                l.contains(topics::TURNSTILE_SUMMARY) && l.contains(&format!("partition={p} "))
            })
            .unwrap_or_else(|| panic!("no truncation warning for partition {p}: {warned:#?}"));
        assert!(
            line.ends_with(&format!("log_starts_at={low}")),
            "names where the log starts ({low}): {line}"
        );
        let store_at: i64 = line
            .split("store_at=")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no store_at in {line}"));
        assert!(
            store_at <= checkpoints[p] && store_at < *low,
            "store_at {store_at}: {line}"
        );
    }
    eprintln!("worker said: {}", warned[0]);
}

/// Commits the turnstile topic's current ends as the group `group`'s offsets, as a worker that
/// had processed everything would have. Returns them, per partition.
fn commit_ends(env: &TestEnv, group: &str) -> Vec<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &env.kafka.brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    let mut ends = Vec::new();
    for (p, (_, high)) in watermarks(env, topics::TURNSTILE).into_iter().enumerate() {
        ends.push(high);
        tpl.add_partition_offset(topics::TURNSTILE, p as i32, Offset::Offset(high))
            .unwrap();
    }
    c.commit(&tpl, CommitMode::Sync).unwrap();
    ends
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_changelog_is_logged_and_the_worker_resumes_at_the_committed_offsets() {
    let env = env().await;
    let app_id = unique_name("missing");
    create_all_topics(&env, &app_id).await;
    let producer = TurnstileProducer::new(&env).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(31);
    let mut before = BTreeMap::new();
    producer.send(8_000, &mut rng, &mut before);
    // The group has processed those 8k, but its changelog holds nothing.
    let committed = commit_ends(&env, &app_id);
    assert_eq!(committed.iter().sum::<i64>(), 8_000);
    assert!(read_all(&env.kafka.brokers, topics::TURNSTILE_SUMMARY).is_empty());
    let mut after = BTreeMap::new();
    producer.send(3_000, &mut rng, &mut after);

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("worker.log");
    let (mut child, base) = start_logged(&env, dir.path(), &app_id, &log);
    // Only what came after the committed offsets is counted.
    wait_for_counts(&base, &after, Duration::from_secs(60)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let missing = log_lines(&log, "the changelog is missing");
    for (p, at) in committed.iter().enumerate() {
        assert!(
            missing.iter().any(|l| l.contains(topics::TURNSTILE_SUMMARY)
                && l.contains(&format!("partition={p} "))
                && l.ends_with(&format!("committed={at}"))),
            "a warning for turnstile partition {p} naming its changelog and the committed \
             offset {at}: {missing:#?}"
        );
    }
    eprintln!("worker said: {}", missing[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restore_that_receives_nothing_stops_the_worker_naming_the_offset() {
    let env = env().await;
    let Some(platform) = env.platform.as_ref() else {
        eprintln!("skipped: needs the embedded broker's fault injection (CTA_TEST_BROKERS is set)");
        return;
    };
    let app_id = unique_name("stall");
    create_all_topics(&env, &app_id).await;
    let producer = TurnstileProducer::new(&env).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(32);
    let mut expected = BTreeMap::new();
    producer.send(10_000, &mut rng, &mut expected);

    // A worker writes the changelogs, then stops.
    let first = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let (w, base) = start_logged(&env, first.path(), &app_id, &logs.path().join("first.log"));
    wait_for_counts(&base, &expected, Duration::from_secs(60)).await;
    stop(w);
    let changelogs = cta_stream::transit::changelog_topics(&app_id);
    let marks: BTreeMap<(String, i32), (i64, i64)> = changelogs
        .iter()
        .flat_map(|t| {
            watermarks(&env, t)
                .into_iter()
                .enumerate()
                .map(move |(p, w)| ((t.clone(), p as i32), w))
        })
        .collect();

    // Every fetch fails (a retriable error: consumers retry without a record) while a cold
    // worker restores.
    platform.broker.fail_fetches(100_000);
    let cold = tempfile::tempdir().unwrap();
    let log = logs.path().join("cold.log");
    let started = Instant::now();
    let (mut child, _) = start_logged(&env, cold.path(), &app_id, &log);
    let status = wait_exit(&mut child, Duration::from_secs(90)).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("the worker hangs in a restore that receives nothing")
    });
    let took = started.elapsed();
    platform.broker.clear_fetch_failures();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(1), "exit code; log:\n{text}");
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line; log:\n{text}");
    let line = errors[0];
    eprintln!("worker stopped after {took:?}: {line}");
    assert!(took >= Duration::from_secs(30), "before the stall timeout");
    // "changelog <topic>: restore of partition <p> stalled at offset <o> of <high> ..."
    let (topic, p, offset, high) = parse_stall(line).unwrap_or_else(|| panic!("{line}"));
    let (low, end) = marks
        .get(&(topic.clone(), p))
        .unwrap_or_else(|| panic!("{topic} [{p}] is no changelog of {app_id}: {line}"));
    assert!(end > low, "a partition with records to restore: {line}");
    assert_eq!(
        (offset, high),
        (*low, *end),
        "a cold restore waits at the log's start, short of its end"
    );

    // Fetches served again: a restart restores everything and counts exactly.
    let (mut child, base) =
        start_logged(&env, cold.path(), &app_id, &logs.path().join("again.log"));
    wait_for_counts(&base, &expected, Duration::from_secs(90)).await;
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Topic, partition, offset and end from the stall error line.
fn parse_stall(line: &str) -> Option<(String, i32, i64, i64)> {
    let rest = line.split("changelog ").nth(1)?;
    let (topic, rest) = rest.split_once(": restore of partition ")?;
    let (p, rest) = rest.split_once(" stalled at offset ")?;
    let (offset, rest) = rest.split_once(" of ")?;
    let high = rest.split(|c: char| !c.is_ascii_digit()).next()?;
    Some((
        topic.to_string(),
        p.parse().ok()?,
        offset.parse().ok()?,
        high.parse().ok()?,
    ))
}

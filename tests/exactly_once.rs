//! Exactly-once outputs with Kafka transactions (`worker --processing-guarantee exactly-once`)
//! on a broker that honours `read_committed` (noida-db; the embedded mock does not): the
//! worker is killed with SIGKILL several times while turnstile entries stream in and restarted
//! each time. A downstream `read_committed` reader of the TURNSTILE_SUMMARY changelog then
//! sees every station's count rise strictly, one output per committed checkpoint and none
//! twice, ending at the count of what was produced; the API's counts are exact too.
//!
//! Needs `noida-db` on PATH (`scripts/test.sh` installs it with pip). Without it the test is
//! skipped with a message, unless `CI` is set.

mod common;

use common::*;
use cta_stream::platform::Platform;
use cta_stream::stream::kafka::{ensure_topics, TopicSpec};
use cta_stream::stream::{KafkaConfig, RegistryConfig};
use cta_stream::transit::models::topics;
use rand::{Rng, SeedableRng};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message};
use std::collections::{BTreeMap, HashSet};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KILLS: usize = 8;
const CHUNK: usize = 400;

/// A noida-db Kafka broker on a free port, stopped on drop.
struct Noida {
    child: Child,
    brokers: String,
    _dir: tempfile::TempDir,
}

impl Noida {
    fn start() -> Option<Self> {
        let found = Command::new("noida-db")
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            assert!(
                std::env::var_os("CI").is_none(),
                "noida-db is not installed (scripts/test.sh installs it with pip)"
            );
            eprintln!("SKIPPED: noida-db not found (pip install noida-db)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_addr().port();
        let child = Command::new("noida-db")
            .args([
                "start",
                "--only",
                "kafka",
                "--kafka-port",
                &port.to_string(),
            ])
            .arg("--data-dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // `noida-db` is a Python launcher that runs the broker as its child: give both a
            // process group of their own, so dropping this kills the broker too.
            .process_group(0)
            .spawn()
            .expect("start noida-db");
        let brokers = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&brokers).is_err() {
            assert!(Instant::now() < deadline, "noida-db did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(Noida {
            child,
            brokers,
            _dir: dir,
        })
    }
}

impl Drop for Noida {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) of the process group created at spawn.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// Every record of `topic` a reader with `isolation` sees, read to the end of each partition.
fn read_to_end(brokers: &str, topic: &str, isolation: &str) -> Vec<KeyValue> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "downstream-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", isolation)
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let partitions = md.topics()[0].partitions().len() as i32;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut done = HashSet::new();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while done.len() < partitions as usize {
        assert!(Instant::now() < deadline, "timed out reading {topic}");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push((m.key().map(|k| k.to_vec()), m.payload().map(|v| v.to_vec()))),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                done.insert(p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// Per station, the counts in the order the changelog carries them.
fn summary_sequences(records: &[KeyValue]) -> BTreeMap<i64, Vec<i64>> {
    let mut seqs: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (_, v) in records {
        // The table's value, ksqlDB's TURNSTILE_SUMMARY row: {"STATION_ID": .., "COUNT": ..}.
        let v: serde_json::Value =
            serde_json::from_slice(v.as_deref().expect("no tombstones")).unwrap();
        seqs.entry(v["STATION_ID"].as_i64().unwrap())
            .or_default()
            .push(v["COUNT"].as_i64().unwrap());
    }
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "on this machine no noida-db release runs it: 0.2.3 needs glibc 2.39, and with \
            0.1.3-0.2.2 the worker restarted after the first kill -9 never gets partitions \
            (2026-12-02); run with --ignored where a broker expires dead group members"]
async fn read_committed_readers_see_each_output_once_across_kill_9() {
    let Some(noida) = Noida::start() else {
        return;
    };
    // The registry of the embedded platform; the broker is noida-db's.
    let platform = Platform::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let env = TestEnv {
        platform: None,
        kafka: KafkaConfig::new(noida.brokers.clone()),
        registry: RegistryConfig::new(platform.registry_url.clone()),
    };
    let specs: Vec<TopicSpec> = cta_stream::transit::simulation::topic_specs(4);
    ensure_topics(&env.kafka, &specs).await.unwrap();
    let app_id = format!("eos-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    // Static membership: a restarted worker takes its partitions back at once (noida-db, like
    // a Kafka broker, would otherwise wait for the killed member's rebalance timeout).
    let instance = format!("group.instance.id={app_id}-worker");
    let eos = ["--processing-guarantee", "exactly-once", "-X", &instance];

    // Entries stream in all along, so the kills land while transactions are open.
    let stop = Arc::new(AtomicBool::new(false));
    let producing = {
        let (env, stop) = (env.clone_clients(), stop.clone());
        tokio::spawn(async move {
            let producer = TurnstileProducer::new(&env).await;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
            let mut tally = BTreeMap::new();
            while !stop.load(Ordering::SeqCst) {
                producer.send(CHUNK, &mut rng, &mut tally);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tally
        })
    };
    let mut kill_rng = rand_chacha::ChaCha8Rng::seed_from_u64(2027);
    for kill in 0..KILLS {
        let addr = free_addr();
        let mut child = spawn_worker_binary_with(&env, dir.path(), &app_id, addr, "100ms", &eos);
        wait_assigned(&format!("http://{addr}"), Duration::from_secs(90)).await;
        let wait = Duration::from_millis(kill_rng.random_range(50..1500));
        tokio::time::sleep(wait).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        eprintln!("kill {kill} after {wait:?}");
    }
    stop.store(true, Ordering::SeqCst);
    let expected: BTreeMap<i32, i64> = producing.await.unwrap();

    // An undisturbed run reaches the exact counts and stops cleanly.
    let addr = free_addr();
    let mut child = spawn_worker_binary_with(&env, dir.path(), &app_id, addr, "100ms", &eos);
    wait_for_counts(
        &format!("http://{addr}"),
        &expected,
        Duration::from_secs(180),
    )
    .await;
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success(), "graceful stop exits 0");

    // What a downstream read_committed consumer sees on the output topic.
    let committed = read_to_end(
        &env.kafka.brokers,
        topics::TURNSTILE_SUMMARY,
        "read_committed",
    );
    let seqs = summary_sequences(&committed);
    let finals: BTreeMap<i32, i64> = seqs
        .iter()
        .map(|(s, v)| (*s as i32, *v.last().unwrap()))
        .collect();
    assert_eq!(finals, expected, "last committed output per station");
    for (station, counts) in &seqs {
        assert!(
            counts.windows(2).all(|w| w[0] < w[1]),
            "station {station}: an output seen twice or out of order: {counts:?}"
        );
    }
    // For the record: what the kills left in aborted transactions.
    let all = read_to_end(
        &env.kafka.brokers,
        topics::TURNSTILE_SUMMARY,
        "read_uncommitted",
    );
    eprintln!(
        "changelog records: {} committed, {} including aborted transactions; {} entries produced",
        committed.len(),
        all.len(),
        expected.values().sum::<i64>()
    );
    platform.stop().await;
}

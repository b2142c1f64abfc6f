//! Chaos with three workers: a 16-partition turnstile topic receives 1M entries at a steady
//! rate while, every few seconds, a random worker is killed (SIGKILL) or stopped (SIGTERM) and
//! restarted on its data dir; one of the three keeps standby copies, and a fourth worker joins
//! for a while and leaves. At the end every worker's `/api/turnstile` (its own partitions plus
//! the others', routed) equals the producer's own tally of what it sent: no entry lost or
//! doubled. Topics are created with 16 partitions on the embedded broker, or through the
//! admin API on another (`CTA_TEST_BROKERS`). A second test adds pauses past the session
//! timeout (SIGSTOP, then SIGCONT) to the kills and stops.

#[path = "../common/mod.rs"]
mod common;

use common::*;
use cta_stream::stream::testing::unique_name;
use cta_stream::transit::models::topics;
use rand::{Rng, SeedableRng};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use std::collections::BTreeMap;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ENTRIES: usize = 1_000_000;
const PARTITIONS: i32 = 16;
/// Entries per chunk and pause between chunks: ~8k entries/s, ~2 min for the million.
const CHUNK: usize = 2_000;
const PAUSE: Duration = Duration::from_millis(200);
const MIN_EVENTS: usize = 20;

struct Worker {
    dir: tempfile::TempDir,
    base: String,
    child: Option<Child>,
    standby: bool,
    /// Where every run of this worker writes its output (kept after a failure, named in its
    /// report).
    log: std::path::PathBuf,
}

impl Worker {
    fn start(&mut self, env: &TestEnv, app_id: &str) {
        let addr = free_addr();
        self.base = format!("http://{addr}");
        let standby = ["--standby-replicas", "1"];
        let extra: &[&str] = if self.standby { &standby } else { &[] };
        let mut cmd = worker_binary(env, self.dir.path(), app_id, addr, "200ms");
        cmd.args(extra);
        self.child = Some(
            log_to(&mut cmd, &self.log)
                .spawn()
                .expect("start worker binary"),
        );
    }

    /// Freezes the worker (SIGSTOP) for `d`, then lets it go on (SIGCONT).
    async fn pause(&mut self, d: Duration) {
        let pid = self.child.as_ref().expect("running").id() as i32;
        // SAFETY: signalling a child process this test started.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        tokio::time::sleep(d).await;
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGCONT) };
    }

    /// SIGKILL, or SIGTERM and a graceful stop (exit 0 within 10 s).
    fn stop(&mut self, kill: bool) {
        let mut child = self.child.take().expect("running");
        if kill {
            child.kill().unwrap();
            child.wait().unwrap();
        } else {
            // SAFETY: signalling a child process this test started.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let status = wait_exit(&mut child, Duration::from_secs(10)).unwrap_or_else(|| {
                let _ = child.kill();
                panic!("graceful stop took over 10 s")
            });
            assert!(status.success(), "graceful stop: {status}");
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn worker(logs: &std::path::Path, name: &str, standby: bool) -> Worker {
    Worker {
        dir: tempfile::tempdir().unwrap(),
        base: String::new(),
        child: None,
        standby,
        log: logs.join(format!("{name}.log")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_workers_stay_exact_through_kills_stops_and_a_fourth_joining() {
    chaos(Events::KillsAndStops).await
}

/// The same with a third kind of event: a worker frozen (SIGSTOP) for 4-7 s, past its 3 s
/// session timeout, then let go on (SIGCONT) without a restart, as a long pause would: the group
/// removes it meanwhile, and it wakes up still holding work for partitions that moved on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_workers_stay_exact_through_kills_stops_and_pauses_past_the_session_timeout() {
    chaos(Events::KillsStopsAndPauses).await
}

/// What the chaos loop does to the workers.
#[derive(Clone, Copy, PartialEq)]
enum Events {
    KillsAndStops,
    KillsStopsAndPauses,
}

async fn chaos(kinds: Events) {
    let env = env().await;
    let app_id = unique_name("chaos");
    let sources = cta_stream::transit::simulation::topic_specs(PARTITIONS);
    if env.platform.is_some() {
        // The mock has no CreateTopics: every topic of the pipeline is made here.
        env.create_topics(&cta_topics(&app_id, PARTITIONS), PARTITIONS)
            .await;
        env.create_topics(&[cta_stream::stream::names::directory_topic(&app_id)], 1)
            .await;
    } else {
        // The workers create their changelogs, output topic and directory like the sources.
        cta_stream::stream::kafka::ensure_topics(&env.kafka, &sources)
            .await
            .unwrap();
    }

    let done = Arc::new(AtomicBool::new(false));
    let producing = {
        let (env, done) = (env.clone_clients(), done.clone());
        tokio::spawn(async move {
            let producer = TurnstileProducer::new(&env).await;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1_000_000);
            let mut tally = BTreeMap::new();
            let mut sent = 0;
            while sent < ENTRIES {
                let n = CHUNK.min(ENTRIES - sent);
                producer.send(n, &mut rng, &mut tally);
                sent += n;
                tokio::time::sleep(PAUSE).await;
            }
            done.store(true, Ordering::SeqCst);
            tally
        })
    };

    let started = Instant::now();
    // Each worker's output in a file of its own, for a failure's reader.
    let logs = std::env::temp_dir().join(&app_id);
    std::fs::create_dir_all(&logs).unwrap();
    let mut workers = vec![
        worker(&logs, "worker-0", false),
        worker(&logs, "worker-1", false),
        worker(&logs, "worker-2-standby", true),
    ];
    for w in workers.iter_mut() {
        w.start(&env, &app_id);
    }
    let mut fourth = worker(&logs, "worker-3-fourth", false);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut events = Vec::new();
    while !done.load(Ordering::SeqCst) || events.len() < MIN_EVENTS {
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "chaos loop over time after {} events",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(rng.random_range(2_000..5_000))).await;
        let i = rng.random_range(0..workers.len());
        if kinds == Events::KillsStopsAndPauses && rng.random_ratio(1, 3) {
            let pause = Duration::from_millis(rng.random_range(4_000..7_000));
            workers[i].pause(pause).await;
            events.push((i, "SIGSTOP"));
        } else {
            let kill = rng.random_bool(0.5);
            workers[i].stop(kill);
            workers[i].start(&env, &app_id);
            events.push((i, if kill { "SIGKILL" } else { "SIGTERM" }));
        }
        match events.len() {
            5 => fourth.start(&env, &app_id),
            12 => fourth.stop(false),
            _ => {}
        }
    }
    let expected = producing.await.unwrap();
    assert_eq!(expected.values().sum::<i64>(), ENTRIES as i64);
    assert!(fourth.child.is_none(), "the fourth worker left");
    eprintln!(
        "{} events in {:?}: {events:?}",
        events.len(),
        started.elapsed()
    );
    assert!(events.iter().any(|e| e.1 == "SIGKILL") && events.iter().any(|e| e.1 == "SIGTERM"));
    assert!(kinds == Events::KillsAndStops || events.iter().any(|e| e.1 == "SIGSTOP"));
    assert!(
        events.iter().any(|e| e.0 == 2),
        "the worker with standby copies was among those stopped"
    );
    for w in &workers {
        if !counts_arrive(&w.base, &expected, Duration::from_secs(120)).await {
            let total = |m: &BTreeMap<i32, i64>| m.values().sum::<i64>();
            let mut report = String::new();
            for (i, w) in workers.iter().enumerate() {
                let got = api_turnstile(&w.base).await.unwrap_or_default();
                let (_, status) = get_json(&format!("{}/api/status?scope=local", w.base)).await;
                report += &format!(
                    "worker {i} at {} (output in {}): total {}, assigned {}\n",
                    w.base,
                    w.log.display(),
                    total(&got),
                    status["worker"]["assigned"]
                );
            }
            let committed = group_committed(&env, &app_id, topics::TURNSTILE);
            for (p, high) in topic_ends(&env, topics::TURNSTILE) {
                report += &format!(
                    "partition {p}: end {high}, group committed {:?}\n",
                    committed.get(&p)
                );
            }
            let changelog = changelog_turnstile(&env);
            let off: Vec<_> = expected
                .iter()
                .filter(|(k, v)| changelog.get(k) != Some(v))
                .map(|(k, v)| (k, *v, changelog.get(k).copied()))
                .collect();
            report += &format!(
                "changelog total {}, stations off there: {off:?}\n",
                total(&changelog)
            );
            let stations: Vec<i32> = off.iter().map(|(k, _, _)| **k).collect();
            report += &audit(&env, &stations).await;
            panic!(
                "worker at {} never showed the {} entries produced:\n{report}",
                w.base,
                total(&expected)
            );
        }
    }
    eprintln!(
        "all three workers answer the exact counts after {:?}",
        started.elapsed()
    );
    // Kept only for a failure's reader.
    let _ = std::fs::remove_dir_all(&logs);
}

/// Whether the worker at `base` answers exactly `expected` within `timeout`.
async fn counts_arrive(base: &str, expected: &BTreeMap<i32, i64>, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if api_turnstile(base).await.as_ref() == Some(expected) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// One record with its headers as text.
struct Logged {
    partition: i32,
    offset: i64,
    key: Vec<u8>,
    value: Vec<u8>,
    headers: Vec<(String, String)>,
}

/// Every record of `topic` up to its current end, with headers.
fn read_logged(brokers: &str, topic: &str) -> Vec<Logged> {
    use rdkafka::message::{Headers, Message};
    use rdkafka::{Offset, TopicPartitionList};
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "chaos-audit")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut out = Vec::new();
    for p in 0..PARTITIONS {
        let (low, high) = c
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .unwrap();
        if high <= low {
            continue;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, p, Offset::Offset(low))
            .unwrap();
        c.assign(&tpl).unwrap();
        let mut next = low;
        while next < high {
            let Some(m) = c.poll(Duration::from_millis(500)) else {
                continue;
            };
            let m = m.unwrap();
            next = m.offset() + 1;
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            let v = h.value.map(|v| String::from_utf8_lossy(v).to_string());
                            (h.key.to_string(), v.unwrap_or_default())
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Logged {
                partition: p,
                offset: m.offset(),
                key: m.key().unwrap_or_default().to_vec(),
                value: m.payload().unwrap_or_default().to_vec(),
                headers,
            });
        }
    }
    out
}

/// For a failure report: each changelog record of `stations` checked against the source. A
/// record with source-offset header h should hold the station's count among the partition's
/// records below h; the lines show which do not, and the last records of each station.
async fn audit(env: &TestEnv, stations: &[i32]) -> String {
    use cta_stream::stream::names::{HEADER_SOURCE_OFFSET, HEADER_WRITER_EPOCH};
    let producer = TurnstileProducer::new(env).await;
    let n = cta_stream::transit::stations::Dataset::builtin()
        .rows()
        .len();
    let by_key: std::collections::HashMap<Vec<u8>, i32> = (0..n)
        .map(|i| {
            let (id, k, _) = producer.valid(i);
            (k, id)
        })
        .collect();
    // (partition, station) -> offsets holding an entry of that station
    let mut offsets: BTreeMap<(i32, i32), Vec<i64>> = BTreeMap::new();
    for r in read_logged(&env.kafka.brokers, topics::TURNSTILE) {
        if let Some(s) = by_key.get(&r.key) {
            offsets.entry((r.partition, *s)).or_default().push(r.offset);
        }
    }
    let header = |r: &Logged, k: &str| -> i64 {
        r.headers
            .iter()
            .find(|h| h.0 == k)
            .and_then(|h| h.1.parse().ok())
            .unwrap_or(-1)
    };
    let mut out = String::new();
    let mut bad = 0;
    let mut lines: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for r in read_logged(&env.kafka.brokers, topics::TURNSTILE_SUMMARY) {
        let v: serde_json::Value = serde_json::from_slice(&r.value).unwrap_or_default();
        let station = v["STATION_ID"].as_i64().unwrap_or(-1) as i32;
        let count = v["COUNT"].as_i64().unwrap_or(-1);
        let h = header(&r, HEADER_SOURCE_OFFSET);
        let truth = offsets
            .get(&(r.partition, station))
            .map_or(0, |o| o.partition_point(|x| *x < h) as i64);
        let epoch = header(&r, HEADER_WRITER_EPOCH);
        let line =
            format!(
            "  p{} @{} station {station} count {count} truth {truth} header {h} epoch {epoch}{}",
            r.partition,
            r.offset,
            if count == truth { "" } else { "  <-- inconsistent" }
        );
        if count != truth {
            bad += 1;
            if bad <= 20 {
                out += &line;
                out += "\n";
            }
        }
        if stations.contains(&station) {
            lines.entry(station).or_default().push(line);
        }
    }
    out = format!("audit: {bad} changelog records inconsistent with the source\n{out}");
    for (station, l) in lines {
        out += &format!("last changelog records of station {station}:\n");
        for line in &l[l.len().saturating_sub(12)..] {
            out += line;
            out += "\n";
        }
    }
    out
}

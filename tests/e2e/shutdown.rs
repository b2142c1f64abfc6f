//! Shutdown of the worker binary while turnstile entries stream in.
//!
//! SIGTERM, then Ctrl-C (SIGINT): each exits 0 within the 5 s deadline after a last
//! checkpoint. The commit interval is longer than the run, so that checkpoint is what commits:
//! the group's committed offsets, the offsets in the closed RocksDB stores and the changelog's
//! counts agree, and cover every entry the worker showed before the signal.
//!
//! Then, with the broker down so the last checkpoint cannot finish (embedded broker only): a
//! second signal exits at once (130), and a single signal ends at the deadline (exit 1, one
//! line saying so). Neither corrupts anything: a final restart ends with exact counts.

#[path = "../common/mod.rs"]
mod common;

use common::*;
use cta_stream::stream::table::store::{PartitionStore, StoreIdentity};
use cta_stream::stream::testing::{eventually, unique_name};
use cta_stream::stream::GRACEFUL_DEADLINE;
use cta_stream::transit::models::topics;
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longer than the test, and no checkpoint when caught up: the only checkpoints are the ones
/// shutdown runs.
const COMMIT_INTERVAL: &str = "10m";

/// Produces turnstile entries in small chunks until stopped; returns the per-station tally.
struct Flow {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<BTreeMap<i32, i64>>,
}

impl Flow {
    fn start(env: &TestEnv, seed: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let env2 = TestEnv {
            platform: None,
            kafka: env.kafka.clone(),
            registry: env.registry.clone(),
        };
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let producer = TurnstileProducer::new(&env2).await;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut tally = BTreeMap::new();
            while !s.load(Ordering::SeqCst) {
                producer.send(300, &mut rng, &mut tally);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tally
        });
        Self { stop, task }
    }

    async fn finish(self) -> BTreeMap<i32, i64> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

fn add(into: &mut BTreeMap<i32, i64>, from: BTreeMap<i32, i64>) {
    for (k, v) in from {
        *into.entry(k).or_insert(0) += v;
    }
}

async fn api_total(base: &str) -> i64 {
    api_turnstile(base)
        .await
        .map(|m| m.values().sum())
        .unwrap_or(0)
}

/// Waits until the worker's count is above `before` (records are flowing into it); returns
/// the count. Take `before` ahead of sending: the worker may count a batch before this looks.
async fn wait_counting(base: &str, before: i64) -> i64 {
    eventually(
        &format!("the worker at {base} counts more than {before}"),
        Duration::from_secs(60),
        async || {
            let now = api_total(base).await;
            if now > before {
                Ok(now)
            } else {
                Err(now)
            }
        },
    )
    .await
}

fn signal(child: &std::process::Child, sig: i32) {
    // SAFETY: plain kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as i32, sig) };
    assert_eq!(rc, 0, "kill({sig})");
}

/// Source offsets in the turnstile table's stores (the worker must have closed them).
fn stored_offsets(dir: &Path, app_id: &str) -> BTreeMap<i32, i64> {
    let table = cta_stream::transit::tables::TURNSTILE;
    (0..4)
        .filter_map(|p| {
            let path = dir.join(app_id).join(table).join(p.to_string());
            if !path.exists() {
                return None;
            }
            let identity = StoreIdentity {
                app_id: app_id.to_string(),
                table: table.to_string(),
                partition: p,
                partitions: 4,
            };
            let store = PartitionStore::open(&path, &identity).expect("store opens after exit");
            store.offsets().unwrap().source.map(|o| (p, o))
        })
        .collect()
}

/// One graceful stop by `sig`; returns the committed total.
async fn graceful(env: &TestEnv, dir: &Path, app_id: &str, sig: i32, name: &str) -> i64 {
    let addr = free_addr();
    let base = format!("http://{addr}");
    let mut child = spawn_worker_binary_with(
        env,
        dir,
        app_id,
        addr,
        COMMIT_INTERVAL,
        &ONLY_TIMED_CHECKPOINTS,
    );
    wait_assigned(&base, Duration::from_secs(60)).await;
    let before = api_total(&base).await;
    wait_counting(&base, before).await;
    let shown = api_total(&base).await;
    let sent = Instant::now();
    signal(&child, sig);
    let status = wait_exit(&mut child, GRACEFUL_DEADLINE * 2).unwrap_or_else(|| {
        let _ = child.kill();
        panic!(
            "{name}: worker still running {:?} after the signal",
            GRACEFUL_DEADLINE * 2
        )
    });
    let took = sent.elapsed();
    assert!(
        status.success(),
        "{name}: graceful stop exits 0, got {status}"
    );
    assert!(took < GRACEFUL_DEADLINE, "{name}: stopped in {took:?}");

    let committed = group_committed(env, app_id, topics::TURNSTILE);
    let committed_total: i64 = committed.values().sum();
    let stored = stored_offsets(dir, app_id);
    let changelog_total: i64 = changelog_turnstile(env).values().sum();
    eprintln!(
        "{name}: exit 0 in {took:?}; shown before the signal {shown}, committed {committed_total}, changelog {changelog_total}"
    );
    assert_eq!(
        committed.len(),
        4,
        "{name}: every partition committed: {committed:?}"
    );
    assert_eq!(stored, committed, "{name}: stores and group offsets agree");
    assert_eq!(
        changelog_total, committed_total,
        "{name}: the changelog holds exactly the committed entries"
    );
    assert!(
        committed_total >= shown,
        "{name}: the last checkpoint covers what was shown before the signal ({committed_total} < {shown})"
    );
    committed_total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signals_stop_the_worker_cleanly_and_state_stays_exact() {
    let env = env().await;
    let app_id = unique_name("shutdown");
    create_all_topics(&env, &app_id).await;
    let dir = tempfile::tempdir().unwrap();
    let mut expected = BTreeMap::new();

    let flow = Flow::start(&env, 1);
    let first = graceful(&env, dir.path(), &app_id, libc::SIGTERM, "SIGTERM").await;
    let second = graceful(&env, dir.path(), &app_id, libc::SIGINT, "Ctrl-C").await;
    assert!(
        second > first,
        "the second run counted more ({first} → {second})"
    );
    add(&mut expected, flow.finish().await);

    match env.platform.as_ref() {
        None => eprintln!(
            "skipped the second-signal and deadline checks: they take the embedded broker down, and CTA_TEST_BROKERS points elsewhere"
        ),
        Some(platform) => {
            let broker = &platform.broker;
            let producer = TurnstileProducer::new(&env).await;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);

            // A second signal while the last checkpoint waits for the brokers: out at once.
            let addr = free_addr();
            let base = format!("http://{addr}");
            let mut child = spawn_worker_binary_with(
                &env,
                dir.path(),
                &app_id,
                addr,
                COMMIT_INTERVAL,
                &ONLY_TIMED_CHECKPOINTS,
            );
            wait_assigned(&base, Duration::from_secs(60)).await;
            let before = api_total(&base).await;
            producer.send(20_000, &mut rng, &mut expected);
            wait_counting(&base, before).await;
            broker.broker_down(1).unwrap();
            signal(&child, libc::SIGTERM);
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert!(
                child.try_wait().unwrap().is_none(),
                "the last checkpoint cannot finish with the broker down"
            );
            let sent = Instant::now();
            signal(&child, libc::SIGINT);
            let status = wait_exit(&mut child, Duration::from_secs(3)).expect("second signal exits");
            let took = sent.elapsed();
            eprintln!("second signal: exit {status} in {took:?}");
            assert_eq!(status.code(), Some(130), "second signal exits 130");
            assert!(took < Duration::from_secs(1), "second signal exits at once: {took:?}");
            broker.broker_up(1).unwrap();

            // One signal, and the checkpoint cannot finish: the deadline ends the process.
            let addr = free_addr();
            let base = format!("http://{addr}");
            let log_path = dir.path().join("deadline.log");
            let log = std::fs::File::create(&log_path).unwrap();
            let mut child = worker_binary(&env, dir.path(), &app_id, addr, COMMIT_INTERVAL)
                .args(ONLY_TIMED_CHECKPOINTS)
                .stderr(log)
                .spawn()
                .unwrap();
            wait_assigned(&base, Duration::from_secs(60)).await;
            let before = api_total(&base).await;
            producer.send(20_000, &mut rng, &mut expected);
            wait_counting(&base, before).await;
            broker.broker_down(1).unwrap();
            let sent = Instant::now();
            signal(&child, libc::SIGTERM);
            let status = wait_exit(&mut child, GRACEFUL_DEADLINE * 2).unwrap_or_else(|| {
                let _ = child.kill();
                panic!("no exit {:?} after the signal", GRACEFUL_DEADLINE * 2)
            });
            let took = sent.elapsed();
            broker.broker_up(1).unwrap();
            let log = std::fs::read_to_string(&log_path).unwrap();
            eprintln!("deadline: exit {status} in {took:?}");
            assert_eq!(status.code(), Some(1), "deadline exit code; log:\n{log}");
            assert!(
                took >= GRACEFUL_DEADLINE && took < GRACEFUL_DEADLINE + Duration::from_secs(2),
                "exit at the deadline, took {took:?}"
            );
            assert!(
                log.lines()
                    .any(|l| l.contains("graceful shutdown did not finish within 5s")),
                "the log says why:\n{log}"
            );
        }
    }

    // Nothing was corrupted on the way: a restart ends with exact counts.
    let addr = free_addr();
    let base = format!("http://{addr}");
    let mut child = spawn_worker_binary(&env, dir.path(), &app_id, addr, "200ms");
    wait_for_counts(&base, &expected, Duration::from_secs(120)).await;
    let on_topic = count_turnstile(&env).await;
    assert_eq!(on_topic, expected, "the topic holds what was produced");
    eprintln!(
        "restart: counts exact, {} entries",
        expected.values().sum::<i64>()
    );
    signal(&child, libc::SIGTERM);
    let status = wait_exit(&mut child, GRACEFUL_DEADLINE).expect("exits");
    assert!(status.success(), "{status}");
}

//! Chaos with three workers: a 16-partition turnstile topic receives 1M entries at a steady
//! rate while, every few seconds, a random worker is killed (SIGKILL) or stopped (SIGTERM) and
//! restarted on its data dir; one of the three keeps standby copies, and a fourth worker joins
//! for a while and leaves. At the end every worker's `/api/turnstile` (its own partitions plus
//! the others', routed) equals the count of what was produced: no entry lost or doubled.

mod common;

use common::*;
use rand::{Rng, SeedableRng};
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
}

impl Worker {
    fn start(&mut self, env: &TestEnv, app_id: &str) {
        let addr = free_addr();
        self.base = format!("http://{addr}");
        let standby = ["--standby-replicas", "1"];
        let extra: &[&str] = if self.standby { &standby } else { &[] };
        self.child = Some(spawn_worker_binary_with(
            env,
            self.dir.path(),
            app_id,
            addr,
            "200ms",
            extra,
        ));
    }

    /// SIGKILL, or SIGTERM and a graceful stop (exit 0 within 10 s).
    fn stop(&mut self, kill: bool) {
        let mut child = self.child.take().expect("running");
        if kill {
            child.kill().unwrap();
            child.wait().unwrap();
        } else {
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

fn worker(standby: bool) -> Worker {
    Worker {
        dir: tempfile::tempdir().unwrap(),
        base: String::new(),
        child: None,
        standby,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_workers_stay_exact_through_kills_stops_and_a_fourth_joining() {
    let env = env().await;
    if env.platform.is_none() {
        eprintln!("skipped: the chaos run creates its 16-partition topics on the embedded broker");
        return;
    }
    let app_id = format!("chaos-{}", std::process::id());
    let mut names: Vec<String> = cta_stream::transit::simulation::topic_specs(4)
        .into_iter()
        .map(|t| t.name)
        .collect();
    names.extend(cta_stream::transit::changelog_topics(&app_id));
    env.create_topics(&names, PARTITIONS);
    env.create_topics(&[format!("{app_id}-workers")], 1);

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
    let mut workers = vec![worker(false), worker(false), worker(true)];
    for w in workers.iter_mut() {
        w.start(&env, &app_id);
    }
    let mut fourth = worker(false);
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
        let kill = rng.random_bool(0.5);
        workers[i].stop(kill);
        workers[i].start(&env, &app_id);
        events.push((i, if kill { "SIGKILL" } else { "SIGTERM" }));
        match events.len() {
            5 => fourth.start(&env, &app_id),
            12 => fourth.stop(false),
            _ => {}
        }
    }
    let expected = producing.await.unwrap();
    assert_eq!(expected.values().sum::<i64>(), ENTRIES as i64);
    eprintln!(
        "{} events in {:?}: {events:?}",
        events.len(),
        started.elapsed()
    );
    assert!(events.iter().any(|e| e.1 == "SIGKILL") && events.iter().any(|e| e.1 == "SIGTERM"));
    for w in &workers {
        wait_for_counts(&w.base, &expected, Duration::from_secs(120)).await;
    }
    eprintln!("all three workers answer the exact counts after {:?}", started.elapsed());
}

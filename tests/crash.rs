//! Exactly-once state without broker transactions: the worker binary is killed with SIGKILL
//! at random moments while turnstile entries stream in, restarted each time; at the end the
//! per-station counts equal the counts of what was produced. Then a worker with an empty data
//! dir rebuilds the same counts from the changelog alone (records of checkpoints that never
//! completed are not applied).

mod common;

use common::*;
use cta_stream::transit::models::topics;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RECORDS: usize = 200_000;
const KILLS: usize = 12;
const CHUNK: usize = 4_000;

/// Checkpoint interval of the worker processes.
const COMMIT_INTERVAL: &str = "50ms";

/// Produces `RECORDS` entries in chunks, and on until the kill loop is done, so every kill
/// lands while records are still arriving; returns the per-station tally.
async fn produce(env: &TestEnv, seed: u64, kills: Arc<AtomicUsize>) -> BTreeMap<i32, i64> {
    let producer = TurnstileProducer::new(env).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut tally = BTreeMap::new();
    let mut chunk = 0;
    while chunk * CHUNK < RECORDS || kills.load(Ordering::SeqCst) < KILLS {
        chunk += 1;
        producer.send(CHUNK, &mut rng, &mut tally);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counts_are_exact_after_repeated_kill_9() {
    let env = env().await;
    let app_id = format!("crash-{}", std::process::id());
    create_all_topics(&env, &app_id);
    let dir = tempfile::tempdir().unwrap();
    let kill_count = Arc::new(AtomicUsize::new(0));
    let producing = {
        let env2 = env.clone_clients();
        let k = kill_count.clone();
        tokio::spawn(async move { produce(&env2, 99, k).await })
    };

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2026);
    let mut kills = 0;
    let mut committed_at_kills = Vec::new();
    let started = Instant::now();
    while kills < KILLS || !producing.is_finished() {
        let addr = free_addr();
        let mut child = spawn_worker_binary(&env, dir.path(), &app_id, addr, COMMIT_INTERVAL);
        // Kill at a random moment after the worker owns its partitions (before that, a kill
        // would only test start-up).
        let t0 = Instant::now();
        wait_assigned(&format!("http://{addr}"), Duration::from_secs(60)).await;
        eprintln!("kill {kills}: assigned after {:?}", t0.elapsed());
        let wait = Duration::from_millis(rng.random_range(20..1500));
        tokio::time::sleep(wait).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        kill_count.store(kills, Ordering::SeqCst);
        committed_at_kills.push(
            group_committed(&env, &app_id, topics::TURNSTILE)
                .values()
                .sum::<i64>(),
        );
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "kill loop took too long"
        );
    }
    let expected = producing.await.unwrap();
    let produced = expected.values().sum::<i64>();
    assert!(produced >= RECORDS as i64, "{produced}");
    assert!(kills >= KILLS, "{kills} kills");
    // The kills landed while work was in progress: the group's committed position moved
    // between kills several times, and was short of the end at most of them.
    eprintln!("group committed offsets at each kill: {committed_at_kills:?}");
    let advanced = committed_at_kills
        .windows(2)
        .filter(|w| w[1] > w[0])
        .count();
    assert!(
        advanced >= KILLS - 2,
        "worker made progress between kills: {committed_at_kills:?}"
    );
    assert!(
        committed_at_kills
            .iter()
            .filter(|&&c| c > 0 && c < produced)
            .count()
            >= KILLS - 1,
        "kills mid-stream: {committed_at_kills:?}"
    );

    // A last, undisturbed run must reach exactly the produced counts.
    let addr = free_addr();
    let mut child = spawn_worker_binary(&env, dir.path(), &app_id, addr, COMMIT_INTERVAL);
    wait_for_counts(
        &format!("http://{addr}"),
        &expected,
        Duration::from_secs(120),
    )
    .await;
    // No double counting shows up later either.
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_for_counts(&format!("http://{addr}"), &expected, Duration::from_secs(5)).await;
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful stop exits 0, got {status}");

    // Cold restore from the changelog alone (which holds records of killed, never-completed
    // checkpoints too) gives the same exact counts.
    let cold = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut child = spawn_worker_binary(&env, cold.path(), &app_id, addr, COMMIT_INTERVAL);
    wait_for_counts(
        &format!("http://{addr}"),
        &expected,
        Duration::from_secs(120),
    )
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
}

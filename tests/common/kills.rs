//! kill -9 runs shared by the crash tests: entries produced in chunks until the kills are done,
//! worker binaries killed at random moments after they own their partitions, then an
//! undisturbed run and a cold restore that must both reach the produced counts exactly.

use super::*;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Checkpoint interval of the killed worker processes.
pub const COMMIT_INTERVAL: &str = "50ms";

/// What a kill run does: how many records at least, in which chunks, how many kills, and the
/// worker's extra flags.
#[derive(Clone, Copy)]
pub struct KillPlan<'a> {
    pub records: usize,
    pub chunk: usize,
    pub kills: usize,
    pub worker_flags: &'a [&'a str],
}

/// Produces `plan.records` entries with `producer` in chunks, and on until `kills` reaches
/// `plan.kills`, so every kill lands while records are still arriving; returns the tally.
pub async fn produce_until_killed(
    producer: TurnstileProducer,
    plan: KillPlan<'_>,
    seed: u64,
    kills: Arc<AtomicUsize>,
) -> BTreeMap<i32, i64> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut tally = BTreeMap::new();
    let mut chunk = 0;
    while chunk * plan.chunk < plan.records || kills.load(Ordering::SeqCst) < plan.kills {
        chunk += 1;
        producer.send(plan.chunk, &mut rng, &mut tally);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    tally
}

/// Starts the worker binary in `dir` and SIGKILLs it at a random moment after it owns its
/// partitions, again and again until `plan.kills` kills are done and `producing` finished;
/// returns the group's committed offset of `topic` (summed) at each kill.
pub async fn kill_repeatedly<T>(
    env: &TestEnv,
    dir: &std::path::Path,
    app_id: &str,
    plan: KillPlan<'_>,
    kill_count: &AtomicUsize,
    producing: &tokio::task::JoinHandle<T>,
    topic: &str,
) -> Vec<i64> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2026);
    let mut kills = 0;
    let mut committed_at_kills = Vec::new();
    let started = Instant::now();
    while kills < plan.kills || !producing.is_finished() {
        let addr = free_addr();
        let mut child =
            spawn_worker_binary_with(env, dir, app_id, addr, COMMIT_INTERVAL, plan.worker_flags);
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
        committed_at_kills.push(group_committed(env, app_id, topic).values().sum::<i64>());
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "kill loop took too long"
        );
    }
    committed_at_kills
}

/// The kills landed while work was in progress: the group's committed position moved between
/// kills several times, and was short of the end at most of them.
pub fn assert_killed_mid_stream(committed_at_kills: &[i64], produced: i64, kills: usize) {
    eprintln!("group committed offsets at each kill: {committed_at_kills:?}");
    let advanced = committed_at_kills
        .windows(2)
        .filter(|w| w[1] > w[0])
        .count();
    assert!(
        advanced >= kills - 2,
        "worker made progress between kills: {committed_at_kills:?}"
    );
    assert!(
        committed_at_kills
            .iter()
            .filter(|&&c| c > 0 && c < produced)
            .count()
            >= kills - 1,
        "kills mid-stream: {committed_at_kills:?}"
    );
}

/// A last, undisturbed run in `dir` reaches exactly `expected` and stays there, stops on
/// SIGTERM with exit 0; then a worker with an empty data dir rebuilds the same counts from the
/// changelogs alone (which hold records of killed, never-completed checkpoints too).
pub async fn assert_exact_after_kills(
    env: &TestEnv,
    dir: &std::path::Path,
    app_id: &str,
    plan: KillPlan<'_>,
    expected: &BTreeMap<i32, i64>,
) {
    let spawn = |dir: &std::path::Path, addr| {
        spawn_worker_binary_with(env, dir, app_id, addr, COMMIT_INTERVAL, plan.worker_flags)
    };
    let addr = free_addr();
    let mut child = spawn(dir, addr);
    let base = format!("http://{addr}");
    wait_for_counts(&base, expected, Duration::from_secs(120)).await;
    // No double counting shows up later either.
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_for_counts(&base, expected, Duration::from_secs(5)).await;
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful stop exits 0, got {status}");

    let cold = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut child = spawn(cold.path(), addr);
    wait_for_counts(
        &format!("http://{addr}"),
        expected,
        Duration::from_secs(120),
    )
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The whole kill run for `app_id` (its topics created): `producer` streams entries while the
/// worker is killed `plan.kills` times or more, then the counts must be exact (see
/// [`assert_exact_after_kills`]), and the kills must have landed mid-stream. Returns the
/// tally of what was produced.
pub async fn kill_run_is_exact(
    env: &TestEnv,
    app_id: &str,
    plan: KillPlan<'static>,
    producer: TurnstileProducer,
    seed: u64,
) -> BTreeMap<i32, i64> {
    let dir = tempfile::tempdir().unwrap();
    let kill_count = Arc::new(AtomicUsize::new(0));
    let producing = tokio::spawn(produce_until_killed(
        producer,
        plan,
        seed,
        kill_count.clone(),
    ));
    let turnstile = cta_stream::transit::models::topics::TURNSTILE;
    let committed_at_kills = kill_repeatedly(
        env,
        dir.path(),
        app_id,
        plan,
        &kill_count,
        &producing,
        turnstile,
    )
    .await;
    let expected = producing.await.unwrap();
    let produced = expected.values().sum::<i64>();
    assert!(produced >= plan.records as i64, "{produced}");
    assert!(
        committed_at_kills.len() >= plan.kills,
        "{committed_at_kills:?}"
    );
    assert_killed_mid_stream(&committed_at_kills, produced, plan.kills);
    assert_exact_after_kills(env, dir.path(), app_id, plan, &expected).await;
    expected
}

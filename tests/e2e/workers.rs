//! Two worker processes in one group share the partitions; each answers for every station by
//! asking the other for the partitions it owns; when one is killed the survivor restores the
//! orphaned partitions from their changelogs and the counts stay exact. Run with classic
//! groups (eager assignment) and with KIP-848 groups (`group.protocol=consumer`: incremental
//! assignment, revoked stores closed at once, added ones restored, the rest untouched).

#[path = "../common/mod.rs"]
mod common;

use common::*;
use cta_stream::stream::testing::{eventually, unique_name};
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::time::Duration;

/// Checkpoint interval of the worker processes.
const COMMIT_INTERVAL: &str = "100ms";

/// Topics of `app_id` (its directory included) and `n` turnstile entries drawn with `seed`.
async fn app_with_entries(
    env: &TestEnv,
    app_id: &str,
    seed: u64,
    n: usize,
) -> (
    TurnstileProducer,
    rand_chacha::ChaCha8Rng,
    BTreeMap<i32, i64>,
) {
    create_all_topics(env, app_id).await;
    env.create_topics(&[cta_stream::stream::names::directory_topic(app_id)], 1)
        .await;
    let producer = TurnstileProducer::new(env).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut expected = BTreeMap::new();
    producer.send(n, &mut rng, &mut expected);
    (producer, rng, expected)
}

/// Waits until both workers own some of the 16 source partitions (4 topics x 4) and
/// together all of them.
async fn wait_shared(base_a: &str, base_b: &str) {
    eventually(
        "both workers own partitions, all 16 together",
        Duration::from_secs(60),
        async || {
            let (na, nb) = (assigned_count(base_a).await, assigned_count(base_b).await);
            if na > 0 && nb > 0 && na + nb == 16 {
                Ok(())
            } else {
                Err(format!("{na} + {nb}"))
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_share_route_and_fail_over() {
    share_route_and_fail_over(GroupProtocol::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_share_route_and_fail_over_with_kip848_groups() {
    share_route_and_fail_over(GroupProtocol::Consumer).await;
}

async fn share_route_and_fail_over(protocol: GroupProtocol) {
    let env = env().await;
    if protocol == GroupProtocol::Consumer && env.platform.is_none() {
        eprintln!("skipped: KIP-848 groups are checked on the embedded broker only (the broker under test may not speak them)");
        return;
    }
    let app_id = unique_name(&format!("pair-{protocol:?}"));
    let (producer, mut rng, mut expected) = app_with_entries(&env, &app_id, 5, 40_000).await;

    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (addr_a, addr_b) = (free_addr(), free_addr());
    let (base_a, base_b) = (format!("http://{addr_a}"), format!("http://{addr_b}"));
    let spawn = |dir: &std::path::Path, addr| {
        worker_binary_in(&env, dir, &app_id, addr, COMMIT_INTERVAL, protocol)
            .spawn()
            .expect("start worker binary")
    };
    let mut a = spawn(dir_a.path(), addr_a);
    let mut b = spawn(dir_b.path(), addr_b);

    wait_shared(&base_a, &base_b).await;
    // Either worker answers for all stations, exactly.
    wait_for_counts(&base_a, &expected, Duration::from_secs(60)).await;
    wait_for_counts(&base_b, &expected, Duration::from_secs(30)).await;
    // Each one's local part is a proper subset, and together they are the whole.
    let (la, lb) = (
        local_turnstile(&base_a).await.unwrap(),
        local_turnstile(&base_b).await.unwrap(),
    );
    assert!(!la.is_empty() && !lb.is_empty());
    assert!(
        la.keys().all(|k| !lb.contains_key(k)),
        "a station lives in one partition"
    );
    let mut union = la.clone();
    union.extend(lb.clone());
    assert_eq!(union, expected);
    // Asked for a station B owns, A answers B's number.
    let (&sid, &count) = lb.iter().next().unwrap();
    let (status, one) = get_json(&format!("{base_a}/api/turnstile/{sid}")).await;
    assert_eq!(status, 200);
    assert_eq!(one["COUNT"].as_i64(), Some(count));
    assert_eq!(
        get_json(&format!("{base_a}/api/turnstile/{sid}?scope=local"))
            .await
            .0,
        404
    );
    // The core's generic table views, mounted by the worker: the list on either worker is the
    // whole table, and B's station read on A comes from B (the table is scattered: a list).
    for base in [&base_a, &base_b] {
        let (status, list) = get_json(&format!("{base}/tables/turnstile-summary")).await;
        assert_eq!(status, 200, "{list}");
        let viewed: BTreeMap<i32, i64> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["key"].as_i64().unwrap() as i32,
                    e["value"]["COUNT"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(viewed, expected, "/tables/turnstile-summary on {base}");
    }
    let (status, copies) = get_json(&format!("{base_a}/tables/turnstile-summary/{sid}")).await;
    assert_eq!(status, 200, "{copies}");
    let copies = copies.as_array().unwrap();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(copies[0]["value"]["COUNT"].as_i64(), Some(count));
    let url = format!("{base_a}/tables/turnstile-summary/{sid}?scope=local");
    assert_eq!(get_json(&url).await, (200, serde_json::json!([])));
    let url = format!("{base_a}/tables/turnstile-summary/49999");
    assert_eq!(get_json(&url).await.0, 404);

    // The page on either worker shows the whole total.
    let total: i64 = expected.values().sum();
    for base in [&base_a, &base_b] {
        let page = reqwest::get(base.as_str())
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            page.contains(&format!("id=\"total-entries\">{total}<")),
            "page on {base}"
        );
    }

    // Kill B; more entries arrive; A takes over B's partitions with exact counts.
    b.kill().unwrap();
    b.wait().unwrap();
    producer.send(10_000, &mut rng, &mut expected);
    wait_for_counts(&base_a, &expected, Duration::from_secs(90)).await;
    assert_eq!(assigned_count(&base_a).await, 16);
    assert_eq!(local_turnstile(&base_a).await.unwrap(), expected);
    a.kill().unwrap();
    a.wait().unwrap();
}

/// With `--standby-replicas 1`, A keeps warm copies of B's partitions; when B is killed, A
/// takes them over without replaying their changelogs (the copies were caught up), and the
/// counts stay exact. Without the copies, A would replay what B wrote since A last held them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standby_copies_make_fail_over_replay_nothing() {
    let env = env().await;
    if env.platform.is_none() {
        eprintln!("skipped: checked with KIP-848 groups on the embedded broker only");
        return;
    }
    let app_id = unique_name("standby");
    let (producer, mut rng, mut expected) = app_with_entries(&env, &app_id, 8, 20_000).await;

    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (addr_a, addr_b) = (free_addr(), free_addr());
    let (base_a, base_b) = (format!("http://{addr_a}"), format!("http://{addr_b}"));
    let log_a = dir_a.path().join("worker.log");
    let mut a = worker_binary_in(
        &env,
        dir_a.path(),
        &app_id,
        addr_a,
        COMMIT_INTERVAL,
        GroupProtocol::Consumer,
    )
    .args(["--standby-replicas", "1"])
    .env("RUST_LOG", "info,librdkafka=error")
    .stderr(std::fs::File::create(&log_a).unwrap())
    .spawn()
    .expect("start worker A");
    let mut b = worker_binary_in(
        &env,
        dir_b.path(),
        &app_id,
        addr_b,
        COMMIT_INTERVAL,
        GroupProtocol::Consumer,
    )
    .args(["--standby-replicas", "1"])
    .spawn()
    .expect("start worker B");

    wait_shared(&base_a, &base_b).await;
    // B now writes changelog records for its partitions that A's old stores never saw.
    for _ in 0..3 {
        producer.send(5_000, &mut rng, &mut expected);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_for_counts(&base_a, &expected, Duration::from_secs(60)).await;
    // A keeps copies of B's partitions and catches them up (every 0.5 s).
    eventually(
        "A keeps a standby copy",
        Duration::from_secs(30),
        async || {
            let log = std::fs::read_to_string(&log_a).unwrap_or_default();
            if log.contains("keeping a standby copy") {
                Ok(())
            } else {
                Err(format!(
                    "A's log has {} lines, the last: {:?}",
                    log.lines().count(),
                    log.lines().last()
                ))
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let before_kill = std::fs::read_to_string(&log_a).unwrap().len();
    b.kill().unwrap();
    b.wait().unwrap();
    producer.send(5_000, &mut rng, &mut expected);
    wait_for_counts(&base_a, &expected, Duration::from_secs(90)).await;
    assert_eq!(assigned_count(&base_a).await, 16);
    assert_eq!(local_turnstile(&base_a).await.unwrap(), expected);
    a.kill().unwrap();
    a.wait().unwrap();

    let log = std::fs::read_to_string(&log_a).unwrap();
    let after = &log[before_kill..];
    assert!(
        after.contains("standby copy handed to the owner"),
        "A took B's partitions over from its copies; log after the kill:\n{after}"
    );
    let replays: Vec<&str> = after
        .lines()
        .filter(|l| l.contains("restoring from changelog"))
        .collect();
    assert!(
        replays.is_empty(),
        "the copies were current, nothing to replay; replays after the kill:\n{}",
        replays.join("\n")
    );
}

/// Standby copies stay exact through kill -9 while records stream in: each round kills one
/// worker in the middle of a burst (its last checkpoint possibly half done), the other takes
/// its partitions over from its copies, the killed one restarts on its data dir; at the end
/// the counts equal the produced ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standby_copies_stay_exact_through_kills_under_load() {
    let env = env().await;
    if env.platform.is_none() {
        eprintln!("skipped: checked with KIP-848 groups on the embedded broker only");
        return;
    }
    let app_id = unique_name("standby-kill");
    let (producer, mut rng, mut expected) = app_with_entries(&env, &app_id, 9, 5_000).await;
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let addrs = [free_addr(), free_addr()];
    let bases = addrs.map(|a| format!("http://{a}"));
    let spawn = |i: usize| {
        worker_binary_in(
            &env,
            dirs[i].path(),
            &app_id,
            addrs[i],
            COMMIT_INTERVAL,
            GroupProtocol::Consumer,
        )
        .args(["--standby-replicas", "1"])
        .spawn()
        .expect("start worker")
    };
    let mut workers = [spawn(0), spawn(1)];
    wait_shared(&bases[0], &bases[1]).await;
    for round in 0..4 {
        let victim = round % 2;
        // Let the survivor's copies catch up on part of the burst, not necessarily all.
        for chunk in 0..10 {
            producer.send(300, &mut rng, &mut expected);
            tokio::time::sleep(Duration::from_millis(40)).await;
            if chunk == 6 {
                workers[victim].kill().unwrap();
                workers[victim].wait().unwrap();
            }
        }
        let survivor = &bases[1 - victim];
        wait_for_counts(survivor, &expected, Duration::from_secs(90)).await;
        workers[victim] = spawn(victim);
        wait_shared(&bases[0], &bases[1]).await;
    }
    wait_for_counts(&bases[0], &expected, Duration::from_secs(60)).await;
    let mut union = local_turnstile(&bases[0]).await.unwrap();
    union.extend(local_turnstile(&bases[1]).await.unwrap());
    assert_eq!(union, expected);
    for w in workers.iter_mut() {
        w.kill().unwrap();
        w.wait().unwrap();
    }
}

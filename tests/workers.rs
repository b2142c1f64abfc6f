//! Two worker processes in one group share the partitions; each answers for every station by
//! asking the other for the partitions it owns; when one is killed the survivor restores the
//! orphaned partitions from their changelogs and the counts stay exact. Run with classic
//! groups (eager assignment) and with KIP-848 groups (`group.protocol=consumer`: incremental
//! assignment, revoked stores closed at once, added ones restored, the rest untouched).

mod common;

use common::*;
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Checkpoint interval of the worker processes.
const COMMIT_INTERVAL: &str = "100ms";

async fn local_counts(base: &str) -> Option<BTreeMap<i32, i64>> {
    let v: Vec<serde_json::Value> = reqwest::get(format!("{base}/api/turnstile?scope=local"))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    Some(
        v.iter()
            .map(|o| {
                (
                    o["STATION_ID"].as_i64().unwrap() as i32,
                    o["COUNT"].as_i64().unwrap(),
                )
            })
            .collect(),
    )
}

async fn assigned(base: &str) -> usize {
    match reqwest::get(format!("{base}/api/status?scope=local")).await {
        Ok(r) => r
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v["worker"]["assigned"].as_array().map(|a| a.len()))
            .unwrap_or(0),
        Err(_) => 0,
    }
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
    let app_id = format!("pair-{protocol:?}-{}", std::process::id());
    create_all_topics(&env, &app_id);
    env.create_topics(&[format!("{app_id}-workers")], 1);
    let producer = TurnstileProducer::new(&env).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut expected = BTreeMap::new();
    producer.send(40_000, &mut rng, &mut expected);

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

    // Both own some of the 16 source partitions (4 topics x 4).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (na, nb) = (assigned(&base_a).await, assigned(&base_b).await);
        if na > 0 && nb > 0 && na + nb == 16 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "partitions never shared: {na} + {nb}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Either worker answers for all stations, exactly.
    wait_for_counts(&base_a, &expected, Duration::from_secs(60)).await;
    wait_for_counts(&base_b, &expected, Duration::from_secs(30)).await;
    // Each one's local part is a proper subset, and together they are the whole.
    let (la, lb) = (
        local_counts(&base_a).await.unwrap(),
        local_counts(&base_b).await.unwrap(),
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
    assert_eq!(assigned(&base_a).await, 16);
    assert_eq!(local_counts(&base_a).await.unwrap(), expected);
    a.kill().unwrap();
    a.wait().unwrap();
}

//! Global tables on a broker: two workers of one group share a 4-partition topic, each counting
//! the partitions it owns into a table; each also keeps a global copy of that table, which
//! must end equal to the counts of everything produced, on both workers. Then one worker stops
//! and restarts on its data dir (its copy restored from the changelog on start, only the
//! tail replayed: the copy counts the changelog records it read, checked against the
//! changelog's length), more records arrive, and both copies end equal to the new totals.

mod common;

use common::*;
use cta_stream_core::testing::{eventually, unique_name};
use cta_stream_core::{App, AppConfig, GlobalTable, Shutdown, Table};
use std::collections::BTreeMap;
use std::time::Duration;

struct Worker {
    _guard: StopOnDrop,
    table: Table<String, i64>,
    global: GlobalTable<String, i64>,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<cta_stream_core::Result<()>>,
}

fn start(env: &TestEnv, app_id: &str, topic: &str, dir: &std::path::Path) -> Worker {
    let mut config = AppConfig::new(app_id, env.kafka.clone(), dir);
    config.commit_interval = Duration::from_millis(100);
    let mut app = App::new(config);
    let table = app.table_on::<String, i64>("counts", topic);
    let global = app.global_table(&table);
    let t = table.clone();
    app.agent_fn(topic, move |r| {
        let key: String = cta_stream_core::codec::json::decode(r.payload)?;
        t.update(r, key, |n| n.unwrap_or(0) + 1)
    });
    let shutdown = Shutdown::new();
    let task = tokio::spawn(app.run(shutdown.clone()));
    Worker {
        _guard: StopOnDrop(shutdown.clone()),
        table,
        global,
        shutdown,
        task,
    }
}

fn totals(items: Vec<(i32, String, i64)>) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for (_, k, v) in items {
        *m.entry(k).or_insert(0) += v;
    }
    m
}

/// Waits until `w`'s global copy equals `expected`, holding all 4 partitions.
async fn wait_global(w: &Worker, expected: &BTreeMap<String, i64>, who: &str) {
    let what = format!(
        "{who}'s global copy totalling {}",
        expected.values().sum::<i64>()
    );
    eventually(&what, Duration::from_secs(60), async || {
        let got = totals(w.global.items().unwrap());
        let held = w.global.partitions();
        if &got == expected && held == [0, 1, 2, 3] {
            Ok(())
        } else {
            Err((got.values().sum::<i64>(), held))
        }
    })
    .await
}

/// The records `topic`'s 4 partitions hold (the embedded broker deletes none).
fn changelog_len(env: &TestEnv, topic: &str) -> u64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &env.kafka.brokers)
        .create()
        .unwrap();
    (0..4)
        .map(|p| {
            let (low, high) = c
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap();
            (high - low) as u64
        })
        .sum()
}

async fn stop(w: Worker) {
    w.shutdown.trigger();
    w.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_worker_holds_the_whole_table() {
    let env = env();
    let id = unique_name("g");
    let topic = format!("global-src-{id}");
    let app_id = format!("global-app-{id}");
    env.create_topics(
        &[
            topic.clone(),
            cta_stream_core::names::changelog_topic(&app_id, "counts"),
        ],
        4,
    );
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(&env, &app_id, &topic, dir_a.path());
    let b = start(&env, &app_id, &topic, dir_b.path());
    let mut expected = produce(&env.kafka.brokers, &topic, 20_000, 64);
    wait_global(&a, &expected, "a").await;
    wait_global(&b, &expected, "b").await;
    // Each worker's own table holds only what it owns; together they hold everything.
    let mut own = totals(a.table.items().unwrap());
    for (k, v) in totals(b.table.items().unwrap()) {
        *own.entry(k).or_insert(0) += v;
    }
    assert_eq!(own, expected, "the owners' tables, summed");
    // A cold start reads the whole changelog into the copy.
    let changelog = cta_stream_core::names::changelog_topic(&app_id, "counts");
    let whole = changelog_len(&env, &changelog);
    assert_eq!(
        b.global.restored(),
        whole,
        "b's copy read the whole changelog"
    );

    stop(b).await;
    let more = produce(&env.kafka.brokers, &topic, 5_000, 64);
    for (k, v) in more {
        *expected.entry(k).or_insert(0) += v;
    }
    let b = start(&env, &app_id, &topic, dir_b.path());
    wait_global(&a, &expected, "a").await;
    wait_global(&b, &expected, "b after its restart").await;
    // A warm restart reads only what the changelog gained while b was away.
    let tail = changelog_len(&env, &changelog) - whole;
    // (How many records each part holds depends on the checkpoints taken, not on the records
    // produced; a full replay would read `whole + tail`.)
    assert!(tail > 0 && whole > 0, "tail {tail} of {whole}");
    assert_eq!(
        b.global.restored(),
        tail,
        "b's copy after its restart read only the tail"
    );
    stop(a).await;
    stop(b).await;
}

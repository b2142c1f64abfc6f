//! Windowed tables on a real broker: out-of-order records inside the grace period are counted,
//! records beyond it are dropped, expired windows are deleted from the store and tombstoned in
//! the changelog; hopping windows count a record in every window containing it. Session
//! windows merge across a bridging record, and a worker on an empty data dir restores them
//! from the changelog.

mod common;

use common::*;
use cta_stream_core::testing::{eventually, read_topic, unique_name};
use cta_stream_core::{
    Agent, App, AppConfig, Record, Result as SResult, Session, SessionTable, Sessions, Shutdown,
    TableSpec, WindowKey, WindowedTable, Windows,
};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use std::time::Duration;

struct Counter {
    topic: String,
    tumbling: WindowedTable<String, i64>,
    hopping: WindowedTable<String, i64>,
}

impl Agent for Counter {
    fn name(&self) -> &str {
        "window-counter"
    }
    fn topic(&self) -> &str {
        &self.topic
    }
    fn process(&mut self, r: &Record<'_>) -> SResult<()> {
        let key: String = cta_stream_core::codec::json::decode(r.payload)?;
        self.tumbling
            .update(r, key.clone(), |c| c.unwrap_or(0) + 1)?;
        self.hopping.update(r, key, |c| c.unwrap_or(0) + 1)
    }
}

fn produce(brokers: &str, topic: &str, events: &[(&str, i64)]) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    for (k, t) in events {
        let payload = serde_json::to_vec(k).unwrap();
        p.send(
            BaseRecord::to(topic)
                .partition(0)
                .key(k.as_bytes())
                .payload(&payload)
                .timestamp(*t),
        )
        .unwrap();
        // Keep the order: one in flight at a time.
        p.flush(Duration::from_secs(10)).unwrap();
    }
}

fn windows_of(t: &WindowedTable<String, i64>) -> Vec<(String, i64, i64)> {
    t.items()
        .unwrap()
        .into_iter()
        .map(|(WindowKey { key, start }, v)| (key, start, v))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_late_and_expired_windows() {
    let env = env();
    let id = unique_name("t");
    let topic = format!("win-src-{id}");
    let app_id = format!("win-app-{id}");
    let changelog = cta_stream_core::names::changelog_topic(&app_id, "tumbling");
    let mut names = vec![topic.clone(), changelog.clone()];
    for t in ["tumbling-stream-time", "hopping", "hopping-stream-time"] {
        names.push(cta_stream_core::names::changelog_topic(&app_id, t));
    }
    env.create_topics(&names, 1);

    let base = 1_800_000_000_000i64; // a multiple of 10 s
    let s = |secs: f64| base + (secs * 1000.0) as i64;
    produce(
        &env.kafka.brokers,
        &topic,
        &[
            ("a", s(1.0)),
            ("a", s(3.0)),
            ("b", s(11.0)), // stream time 11
            ("a", s(5.0)),  // out of order, window [0,10) closes at 10+2=12 > 11: counted
            ("a", s(13.0)), // stream time 13
            ("a", s(4.0)),  // window [0,10) closed (12 <= 13): late, dropped
            ("b", s(25.0)), // stream time 25: window [0,10) expires (end 10 + retention 12 <= 25)
        ],
    );

    let dir = tempfile::tempdir().unwrap();
    let mut config = AppConfig::new(&app_id, env.kafka.clone(), dir.path());
    config.commit_interval = Duration::from_millis(100);
    let mut app = App::new(config);
    let spec = |name: &str| TableSpec {
        name: name.into(),
        source_topic: topic.clone(),
        changelog_topic: None,
    };
    let tumbling = app.windowed_table(
        spec("tumbling"),
        Windows::tumbling(Duration::from_secs(10))
            .grace(Duration::from_secs(2))
            .retention(Duration::from_secs(12)),
    );
    let hopping = app.windowed_table(
        spec("hopping"),
        Windows::hopping(Duration::from_secs(10), Duration::from_secs(5))
            .grace(Duration::from_secs(100))
            .retention(Duration::from_secs(1000)),
    );
    app.agent(Counter {
        topic: topic.clone(),
        tumbling: tumbling.clone(),
        hopping: hopping.clone(),
    });
    let status = app.status();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(app.run(shutdown.clone()));
    let _guard = StopOnDrop(shutdown.clone());

    let b = |secs: i64| base + secs * 1000;
    let expected_tumbling = vec![
        ("a".to_string(), b(10), 1),
        ("b".to_string(), b(10), 1),
        ("b".to_string(), b(20), 1),
    ];
    eventually(
        "7 records in the tumbling windows",
        Duration::from_secs(30),
        async || {
            let got = windows_of(&tumbling);
            let consumed = status.consumed.load(std::sync::atomic::Ordering::Relaxed);
            if consumed >= 7 && got == expected_tumbling {
                Ok(())
            } else {
                Err((consumed, got))
            }
        },
    )
    .await;
    assert_eq!(tumbling.late_records(), 1, "the record at 4 s was late");
    // Hopping (size 10, step 5, generous grace): each record is in two windows.
    // a: 1,3,5,13 ; 4 (not late here) ; b: 11, 25
    let mut expected_hopping = vec![
        ("a".to_string(), b(-5), 3), // 1,3,4
        ("a".to_string(), b(0), 4),  // 1,3,5,4
        ("a".to_string(), b(5), 2),  // 5,13? no: [5,15) has 5 and 13 -> 2
        ("a".to_string(), b(10), 1), // 13
        ("b".to_string(), b(5), 1),  // 11
        ("b".to_string(), b(10), 1), // 11
        ("b".to_string(), b(20), 1), // 25
        ("b".to_string(), b(25), 1), // 25
    ];
    expected_hopping.sort();
    assert_eq!(windows_of(&hopping), expected_hopping);
    assert_eq!(hopping.late_records(), 0);

    shutdown.trigger();
    task.await.unwrap().unwrap();

    // The expired window [0,10) of "a" ends with a tombstone in the changelog.
    let records = read_topic(&env.kafka.brokers, &changelog).unwrap();
    let a0 = serde_json::to_vec(&WindowKey {
        key: "a".to_string(),
        start: b(0),
    })
    .unwrap();
    let last_a0 = records
        .iter()
        .rev()
        .find(|r| r.key.as_deref() == Some(&a0[..]))
        .expect("window [0,10) of a in changelog");
    assert!(last_a0.value.is_none(), "expired window tombstoned");
}

struct SessionWorker {
    table: SessionTable<String, i64>,
    status: std::sync::Arc<cta_stream_core::Status>,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<SResult<()>>,
}

/// A worker counting `topic`'s records in 5 s sessions, its stores in `dir`.
fn session_worker(
    env: &TestEnv,
    app_id: &str,
    topic: &str,
    dir: &std::path::Path,
) -> SessionWorker {
    let mut config = AppConfig::new(app_id, env.kafka.clone(), dir);
    config.commit_interval = Duration::from_millis(100);
    let mut app = App::new(config);
    let sessions = Sessions::with_gap(Duration::from_secs(5)).grace(Duration::from_secs(100));
    let table = app.session_table_on::<String, i64>("visits", topic, sessions);
    let t = table.clone();
    app.agent_fn(topic, move |r| {
        let key: String = cta_stream_core::codec::json::decode(r.payload)?;
        t.update(r, key, |c| c.unwrap_or(0) + 1, |a, b| a + b)
    });
    let status = app.status();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(app.run(shutdown.clone()));
    SessionWorker {
        table,
        status,
        shutdown,
        task,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_merge_and_are_restored_from_the_changelog() {
    let env = env();
    let id = unique_name("s");
    let topic = format!("session-src-{id}");
    let app_id = format!("session-app-{id}");
    let names: Vec<String> = std::iter::once(topic.clone())
        .chain(
            ["visits", "visits-stream-time"]
                .iter()
                .map(|t| cta_stream_core::names::changelog_topic(&app_id, t)),
        )
        .collect();
    env.create_topics(&names, 1);
    let base = 1_800_000_000_000i64;
    let s = |secs: i64| base + secs * 1000;
    // a: 1, 3 | 12 — then 7, within 5 s of both: one session [1, 12] of 4. b: one at 2.
    let events = [
        ("a", s(1)),
        ("b", s(2)),
        ("a", s(3)),
        ("a", s(12)),
        ("a", s(7)),
    ];
    produce(&env.kafka.brokers, &topic, &events);
    let want = vec![
        (
            "a".to_string(),
            Session {
                start: s(1),
                end: s(12),
                value: 4,
            },
        ),
        (
            "b".to_string(),
            Session {
                start: s(2),
                end: s(2),
                value: 1,
            },
        ),
    ];
    for (round, consumed) in [("counted", 5), ("restored on an empty data dir", 0)] {
        let dir = tempfile::tempdir().unwrap();
        let w = session_worker(&env, &app_id, &topic, dir.path());
        let _guard = StopOnDrop(w.shutdown.clone());
        eventually(round, Duration::from_secs(30), async || {
            let got = w.table.items().unwrap();
            if got == want {
                Ok(())
            } else {
                Err(got)
            }
        })
        .await;
        // The second worker reads nothing from the source (its offsets were committed): the
        // sessions came from the changelog.
        let read = w.status.consumed.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(read, consumed, "{round}");
        w.shutdown.trigger();
        w.task.await.unwrap().unwrap();
    }
}

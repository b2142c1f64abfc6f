//! Exactly-once outputs with Kafka transactions (`worker --processing-guarantee exactly-once`)
//! on a broker that honours `read_committed` (noida-db; the embedded mock does not): the
//! worker is killed with SIGKILL several times while turnstile entries stream in and restarted
//! each time. A downstream `read_committed` reader of the TURNSTILE_SUMMARY changelog then
//! sees every station's count rise strictly, one output per committed checkpoint and none
//! twice, ending at the count of what was produced; the API's counts are exact too.
//!
//! noida-db never expires a dead group member (nor replaces a restarted static one), so the
//! tests restart the broker (SIGTERM, same data dir: logs, offsets and open transactions kept,
//! the members gone) before a killed or stopped worker's partitions must go to another
//! process; the producer of entries pauses meanwhile.
//!
//! Needs `noida-db` on PATH (`scripts/test.sh` installs it with pip). Without it the test is
//! skipped with a message, unless `CI` is set.

#[path = "../common/mod.rs"]
mod common;

use common::local_broker::{env_on, LocalBroker};
use common::*;
use cta_stream::stream::testing::unique_name;
use cta_stream::transit::models::topics;
use rand::{Rng, SeedableRng};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Kills at least; more (up to [`MAX_KILLS`]) until one lands inside an open transaction.
const KILLS: usize = 8;
const MAX_KILLS: usize = 24;
const CHUNK: usize = 400;

/// A record's partition and offset.
type At = (i32, i64);

/// Every record of `topic` a reader with `isolation` sees, read to the end of each partition
/// (for `read_committed`, the end is the last stable offset: an open transaction's records
/// are not reached).
fn read_to_end(brokers: &str, topic: &str, isolation: &str) -> Vec<KeyValue> {
    read_at(brokers, topic, isolation)
        .into_iter()
        .map(|(_, kv)| kv)
        .collect()
}

/// [`read_to_end`] with each record's partition and offset.
fn read_at(brokers: &str, topic: &str, isolation: &str) -> Vec<(At, KeyValue)> {
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
            Some(Ok(m)) => out.push((
                (m.partition(), m.offset()),
                (m.key().map(|k| k.to_vec()), m.payload().map(|v| v.to_vec())),
            )),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                done.insert(p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// Freezes the worker `pid` (SIGSTOP) at random moments until `topic` has an open
/// transaction while it is frozen: some partition's last stable offset (the end a
/// `read_committed` reader is given) is below its high watermark. Leaves it frozen then and
/// says after how many tries; otherwise lets it run again and gives up after `tries`.
fn freeze_inside_transaction(
    brokers: &str,
    topic: &str,
    pid: u32,
    tries: usize,
    rng: &mut impl Rng,
) -> String {
    let client = |isolation: &str| -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "transaction-probe")
            .set("isolation.level", isolation)
            .create()
            .unwrap()
    };
    let (uncommitted, committed) = (client("read_uncommitted"), client("read_committed"));
    let partitions = uncommitted
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap()
        .topics()[0]
        .partitions()
        .len() as i32;
    let t = Duration::from_secs(5);
    for attempt in 1..=tries {
        std::thread::sleep(Duration::from_millis(rng.random_range(0..60)));
        // SAFETY: plain kill(2) of the worker's process.
        unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
        let open = (0..partitions).find(|&p| {
            let (_, high) = uncommitted.fetch_watermarks(topic, p, t).unwrap();
            let (_, stable) = committed.fetch_watermarks(topic, p, t).unwrap();
            stable < high
        });
        if let Some(p) = open {
            return format!("frozen inside a transaction (partition {p}) at try {attempt}");
        }
        unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    }
    format!("no transaction open in {tries} freezes")
}

/// Where the records of `topic` are that a `read_committed` reader does not see yet (or
/// never will): those of open and aborted transactions.
fn not_committed(brokers: &str, topic: &str) -> BTreeSet<At> {
    let all: BTreeSet<At> = read_at(brokers, topic, "read_uncommitted")
        .into_iter()
        .map(|(at, _)| at)
        .collect();
    let committed: BTreeSet<At> = read_at(brokers, topic, "read_committed")
        .into_iter()
        .map(|(at, _)| at)
        .collect();
    all.difference(&committed).copied().collect()
}

/// The committed outputs end at `expected` per station, and each station's count rises
/// strictly: no output seen twice or out of order.
fn assert_each_output_once(committed: &[KeyValue], expected: &BTreeMap<i32, i64>) {
    let seqs = summary_sequences(committed);
    let finals: BTreeMap<i32, i64> = seqs
        .iter()
        .map(|(s, v)| (*s as i32, *v.last().unwrap()))
        .collect();
    assert_eq!(&finals, expected, "last committed output per station");
    for (station, counts) in &seqs {
        assert!(
            counts.windows(2).all(|w| w[0] < w[1]),
            "station {station}: an output seen twice or out of order: {counts:?}"
        );
    }
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

/// Starts an exactly-once worker whose output (info) goes to `<logs>/worker-<n>.log`.
fn spawn_logged(
    env: &TestEnv,
    dir: &std::path::Path,
    app_id: &str,
    addr: std::net::SocketAddr,
    logs: &std::path::Path,
    n: usize,
) -> std::process::Child {
    let mut cmd = worker_binary(env, dir, app_id, addr, "100ms");
    cmd.args(["--processing-guarantee", "exactly-once"]);
    log_to(&mut cmd, &logs.join(format!("worker-{n}.log")))
        .spawn()
        .expect("start worker binary")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_committed_readers_see_each_output_once_across_kill_9() {
    let Some(mut noida) = LocalBroker::noida() else {
        return;
    };
    // The registry of the embedded platform; the broker is noida-db's.
    let (platform, env) = env_on(&noida).await;
    let app_id = unique_name("eos");
    let dir = tempfile::tempdir().unwrap();
    // Each worker's log, kept when the test fails (named in its output), removed otherwise.
    let logs = std::env::temp_dir().join(&app_id);
    std::fs::create_dir_all(&logs).unwrap();
    eprintln!("worker logs in {}", logs.display());

    // Entries stream in all along, so the kills land while transactions are open; the producer
    // pauses while the broker restarts (`gate`).
    let stop = Arc::new(AtomicBool::new(false));
    let gate = Arc::new(tokio::sync::Mutex::new(()));
    let producing = {
        let (env, stop, gate) = (env.clone_clients(), stop.clone(), gate.clone());
        tokio::spawn(async move {
            let producer = TurnstileProducer::new(&env).await;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
            let mut tally = BTreeMap::new();
            while !stop.load(Ordering::SeqCst) {
                let _open = gate.lock().await;
                producer.send(CHUNK, &mut rng, &mut tally);
                drop(_open);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tally
        })
    };
    let mut kill_rng = rand_chacha::ChaCha8Rng::seed_from_u64(2027);
    let mut left_open: Vec<BTreeSet<At>> = Vec::new();
    let mut kill = 0;
    while kill < KILLS || (left_open.iter().all(BTreeSet::is_empty) && kill < MAX_KILLS) {
        let addr = free_addr();
        let mut child = spawn_logged(&env, dir.path(), &app_id, addr, &logs, kill);
        wait_assigned(&format!("http://{addr}"), Duration::from_secs(90)).await;
        // A transaction is open only while a checkpoint writes it (a few ms of each 100 ms):
        // even kills come at a random time, odd ones once the worker, frozen at random
        // moments, was caught with a transaction open (the kills go on, up to MAX_KILLS,
        // until one left an open transaction).
        let when = if kill % 2 == 0 {
            let wait = Duration::from_millis(kill_rng.random_range(50..1500));
            tokio::time::sleep(wait).await;
            format!("after {wait:?}")
        } else {
            let (brokers, pid) = (env.kafka.brokers.clone(), child.id());
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(kill as u64);
            tokio::task::spawn_blocking(move || {
                freeze_inside_transaction(&brokers, topics::TURNSTILE_SUMMARY, pid, 200, &mut rng)
            })
            .await
            .unwrap()
        };
        child.kill().unwrap(); // SIGKILL (a frozen process too)
        child.wait().unwrap();
        // Changelog records the killed worker left in its open transaction: not visible to
        // read_committed now (the transaction is neither committed nor aborted until the
        // restart fences the killed producer), and not left by an earlier kill.
        let mut open = not_committed(&env.kafka.brokers, topics::TURNSTILE_SUMMARY);
        for earlier in &left_open {
            open.retain(|at| !earlier.contains(at));
        }
        eprintln!(
            "kill {kill} {when}: {} changelog records in its open transaction",
            open.len()
        );
        left_open.push(open);
        // noida-db never expires the killed worker's member: restart the broker (its data
        // kept, the open transaction included) so the restart gets the partitions.
        let _paused = gate.lock().await;
        noida.restart();
        kill += 1;
    }
    stop.store(true, Ordering::SeqCst);
    let expected: BTreeMap<i32, i64> = producing.await.unwrap();
    // The broker kept every entry it acknowledged across its restarts: a shortfall below is
    // the worker's.
    assert_eq!(
        count_turnstile(&env).await,
        expected,
        "entries on the topic (read back) against entries produced"
    );

    // An undisturbed run reaches the exact counts and stops cleanly.
    let addr = free_addr();
    let mut child = spawn_logged(&env, dir.path(), &app_id, addr, &logs, kill);
    wait_for_counts(
        &format!("http://{addr}"),
        &expected,
        Duration::from_secs(180),
    )
    .await;
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success(), "graceful stop exits 0");
    // No broker restart here: a worker stopped with SIGTERM leaves the group (it unsubscribes
    // before it closes), so the cold restore below, another member, gets every partition.

    // What a downstream read_committed consumer sees on the output topic.
    let committed = read_to_end(
        &env.kafka.brokers,
        topics::TURNSTILE_SUMMARY,
        "read_committed",
    );
    assert_each_output_once(&committed, &expected);
    // What each kill left in its open transaction either all committed later (the kill came
    // after the commit was asked for) or all aborted, never visible to read_committed; and at
    // least one kill landed inside a transaction carrying changelog records.
    let visible: BTreeSet<At> = read_at(
        &env.kafka.brokers,
        topics::TURNSTILE_SUMMARY,
        "read_committed",
    )
    .into_iter()
    .map(|(at, _)| at)
    .collect();
    let mut aborted = 0;
    for (kill, open) in left_open.iter().enumerate() {
        let seen = open.iter().filter(|at| visible.contains(at)).count();
        assert!(
            seen == 0 || seen == open.len(),
            "kill {kill}: {seen} of the {} records of one transaction are visible",
            open.len()
        );
        if seen == 0 && !open.is_empty() {
            aborted += 1;
        }
    }
    let per_kill: Vec<usize> = left_open.iter().map(BTreeSet::len).collect();
    assert!(
        aborted >= 1,
        "no kill landed inside an open transaction with changelog records: {per_kill:?}"
    );
    let all = read_to_end(
        &env.kafka.brokers,
        topics::TURNSTILE_SUMMARY,
        "read_uncommitted",
    );
    eprintln!(
        "changelog records: {} committed, {} including aborted transactions; {} entries produced; {aborted} of {kill} kills aborted an open transaction (records per kill {per_kill:?})",
        committed.len(),
        all.len(),
        expected.values().sum::<i64>()
    );

    // A cold restore reads the changelogs read_committed: markers and aborted records are
    // skipped, yet its progress counters end at the changelogs' length in offsets.
    let cold = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let base = format!("http://{addr}");
    let mut child = spawn_logged(&env, cold.path(), &app_id, addr, &logs, kill + 1);
    wait_for_counts(&base, &expected, Duration::from_secs(120)).await;
    let length = changelog_offsets(&env, &app_id);
    let s = scrape(&base).await;
    assert_eq!(
        (
            sample(&s, "cta_restore_done_records", &[]),
            sample(&s, "cta_restore_total_records", &[])
        ),
        (Some(length as f64), Some(length as f64)),
        "restore progress of {length} changelog offsets ({} records read_committed)",
        committed.len()
    );
    child.kill().unwrap();
    child.wait().unwrap();
    platform.stop().await;
    let _ = std::fs::remove_dir_all(&logs);
}

/// A transaction that cannot commit: a second worker started with the first one's
/// transactional id (what a restarted instance does) fences the first one's producer. The
/// first worker's next transaction fails: it stops and exits non-zero with one error line, and
/// commits nothing more, and its error line says it was fenced; the second one, restarted
/// after a broker restart (noida-db never expires the first one's member), counts everything.
/// A restart of the first one (its own data dir, whose store is only written after a
/// transaction commits) resumes from the last committed transaction: the counts are exact and
/// a `read_committed` reader sees each station's count rise strictly, none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fenced_worker_exits_non_zero_and_a_restart_resumes() {
    let Some(mut noida) = LocalBroker::noida() else {
        return;
    };
    let (platform, env) = env_on(&noida).await;
    let app_id = unique_name("fenced");
    let eos = ["--processing-guarantee", "exactly-once"];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

    let stop = Arc::new(AtomicBool::new(false));
    let producing = {
        let (env, stop) = (env.clone_clients(), stop.clone());
        tokio::spawn(async move {
            let producer = TurnstileProducer::new(&env).await;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
            let mut tally = BTreeMap::new();
            while !stop.load(Ordering::SeqCst) {
                producer.send(CHUNK, &mut rng, &mut tally);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tally
        })
    };

    let addr_a = free_addr();
    let log_a = dir_b.path().join("worker-a.log");
    let mut a = worker_binary(&env, dir_a.path(), &app_id, addr_a, "100ms")
        .args(eos)
        .stderr(std::fs::File::create(&log_a).unwrap())
        .spawn()
        .unwrap();
    wait_assigned(&format!("http://{addr_a}"), Duration::from_secs(90)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // B: A's transactional id (copied from A's data dir), its own data dir and member id.
    let txn_file = format!("{app_id}.transactional-id");
    std::fs::copy(dir_a.path().join(&txn_file), dir_b.path().join(&txn_file)).unwrap();
    let addr_b = free_addr();
    let mut b = spawn_worker_binary_with(&env, dir_b.path(), &app_id, addr_b, "100ms", &eos);
    let status = wait_exit(&mut a, Duration::from_secs(90)).unwrap_or_else(|| {
        let _ = a.kill();
        let _ = b.kill();
        panic!("the fenced worker kept running")
    });
    let log = std::fs::read_to_string(&log_a).unwrap();
    assert_eq!(status.code(), Some(1), "fenced worker's exit; log:\n{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line; log:\n{log}");
    eprintln!("fenced worker said: {}", errors[0]);
    assert!(
        errors[0].to_lowercase().contains("fenced"),
        "says it was fenced: {}",
        errors[0]
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let expected: BTreeMap<i32, i64> = producing.await.unwrap();
    unsafe { libc::kill(b.id() as i32, libc::SIGTERM) };
    assert!(b.wait().unwrap().success(), "B stops cleanly");

    // noida-db never expires A's member (A, fenced, did not leave), so B gets A's partitions
    // only after a broker restart; B restarted then counts everything.
    noida.restart();
    let addr_b = free_addr();
    let mut b = spawn_worker_binary_with(&env, dir_b.path(), &app_id, addr_b, "100ms", &eos);
    wait_for_counts(
        &format!("http://{addr_b}"),
        &expected,
        Duration::from_secs(120),
    )
    .await;
    unsafe { libc::kill(b.id() as i32, libc::SIGTERM) };
    assert!(
        b.wait().unwrap().success(),
        "B stops cleanly (and leaves the group)"
    );

    // A restarted on its own data dir resumes from the last committed transaction.
    let addr = free_addr();
    let mut again = spawn_worker_binary_with(&env, dir_a.path(), &app_id, addr, "100ms", &eos);
    wait_for_counts(
        &format!("http://{addr}"),
        &expected,
        Duration::from_secs(120),
    )
    .await;
    unsafe { libc::kill(again.id() as i32, libc::SIGTERM) };
    assert!(again.wait().unwrap().success(), "restart stops cleanly");

    let committed = read_to_end(
        &env.kafka.brokers,
        topics::TURNSTILE_SUMMARY,
        "read_committed",
    );
    assert_each_output_once(&committed, &expected);
    platform.stop().await;
}

/// Commits an aborted transaction that claims `offsets` of the turnstile topic for the group
/// `app_id`, with one changelog record per partition of the turnstile count table saying its
/// checkpoint covers them: what a worker killed inside a checkpoint leaves behind once its
/// transaction is aborted. Kafka drops the offsets with the transaction; noida-db 0.2.2 keeps
/// them as the group's (`scripts/checks/noida_txn_offsets.py`).
fn abort_a_checkpoint_claiming(brokers: &str, app_id: &str, offsets: &BTreeMap<i32, i64>) {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let timeout = Duration::from_secs(30);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("transactional.id", format!("{app_id}-aborted-checkpoint"))
        .create()
        .unwrap();
    let group: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", app_id)
        .create()
        .unwrap();
    producer.init_transactions(timeout).unwrap();
    producer.begin_transaction().unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for (&p, &offset) in offsets {
        let header = offset.to_string();
        let headers = OwnedHeaders::new().insert(Header {
            key: cta_stream::stream::names::HEADER_SOURCE_OFFSET,
            value: Some(header.as_bytes()),
        });
        producer
            .send(
                BaseRecord::to(topics::TURNSTILE_SUMMARY)
                    .partition(p)
                    .key("{\"STATION_ID\":0}")
                    .payload("{\"STATION_ID\":0,\"COUNT\":1000000}")
                    .headers(headers),
            )
            .map_err(|(e, _)| e)
            .unwrap();
        tpl.add_partition_offset(topics::TURNSTILE, p, rdkafka::Offset::Offset(offset))
            .unwrap();
    }
    producer.flush(timeout).unwrap();
    let metadata = group.group_metadata().unwrap();
    producer
        .send_offsets_to_transaction(&tpl, &metadata, timeout)
        .unwrap();
    producer.abort_transaction(timeout).unwrap();
}

/// A restarted worker resumes where its committed changelog shows its tables are, not at a
/// group offset that came with a transaction that never committed: the worker counts 2,000
/// entries and stops; 1,000 more arrive; a checkpoint claiming them is aborted (its changelog
/// records and its offsets). A restart counts all 3,000. On noida-db 0.2.2, which keeps the
/// aborted transaction's offsets as the group's, a restart that trusted them counted 2,000.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_offset_left_by_an_aborted_transaction_skips_nothing() {
    let Some(noida) = LocalBroker::noida() else {
        return;
    };
    let (_platform, env) = env_on(&noida).await;
    let app_id = unique_name("aborted-offsets");
    let eos = ["--processing-guarantee", "exactly-once"];
    let dir = tempfile::tempdir().unwrap();
    let producer = TurnstileProducer::new(&env).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(31);
    let mut expected = BTreeMap::new();
    producer.send(2000, &mut rng, &mut expected);

    let run_until_exact = |expected: BTreeMap<i32, i64>| {
        let (env, dir, app_id) = (
            env.clone_clients(),
            dir.path().to_path_buf(),
            app_id.clone(),
        );
        async move {
            let addr = free_addr();
            let mut w = KillOnDrop(spawn_worker_binary_with(
                &env, &dir, &app_id, addr, "100ms", &eos,
            ));
            wait_for_counts(
                &format!("http://{addr}"),
                &expected,
                Duration::from_secs(120),
            )
            .await;
            unsafe { libc::kill(w.0.id() as i32, libc::SIGTERM) };
            assert!(w.0.wait().unwrap().success(), "stops cleanly");
        }
    };
    run_until_exact(expected.clone()).await;
    let counted = group_committed(&env, &app_id, topics::TURNSTILE);
    assert_eq!(
        counted.values().sum::<i64>(),
        2000,
        "committed after the first run"
    );

    producer.send(1000, &mut rng, &mut expected);
    let ends = topic_ends(&env, topics::TURNSTILE);
    assert_eq!(ends.values().sum::<i64>(), 3000);
    abort_a_checkpoint_claiming(&env.kafka.brokers, &app_id, &ends);
    eprintln!(
        "group offsets after the aborted checkpoint: {:?} (committed before: {counted:?})",
        group_committed(&env, &app_id, topics::TURNSTILE)
    );
    run_until_exact(expected).await;
}

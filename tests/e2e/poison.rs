//! Poison records: 10k records the worker cannot use (bad magic byte, unknown schema id,
//! truncated Avro, empty value, JSON instead of Avro, a station id out of range) mixed into 100k
//! good ones. The worker keeps going, dead-letters exactly the 10k with the reasons, and counts
//! the good ones exactly. Each dead letter carries the poisoned record's key and bytes, and its
//! `source.partition` / `source.offset` headers point at that record (read back and compared).

#[path = "../common/mod.rs"]
mod common;

use common::*;
use cta_stream::stream::testing::{eventually, unique_name};
use rand::{Rng, SeedableRng};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

const GOOD: usize = 100_000;
const BAD: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_records_go_to_the_dead_letter_topic() {
    let env = env().await;
    let app_id = unique_name("poison");
    create_all_topics(&env, &app_id).await;
    env.create_topics(&["org.chicago.cta.turnstile.v1.dlq".to_string()], 4)
        .await;

    let producer = TurnstileProducer::new(&env).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut expected: BTreeMap<i32, i64> = BTreeMap::new();
    let mut bad_kinds: HashMap<&str, usize> = HashMap::new();
    let total = GOOD + BAD;
    let mut bad_left = BAD;
    for i in 0..total {
        let (id, k, v) = producer.valid(rng.random_range(0..1000));
        // Spread the poison evenly through the stream.
        if bad_left > 0 && rng.random_range(0..(total - i)) < bad_left {
            bad_left -= 1;
            let kind = ["magic", "schema", "truncated", "empty", "json", "range"][i % 6];
            *bad_kinds.entry(kind).or_default() += 1;
            let mut bad = v.clone();
            match kind {
                "magic" => bad[0] = 1,
                "schema" => bad[1..5].copy_from_slice(&4_000_000u32.to_be_bytes()),
                "truncated" => bad.truncate(bad.len() - 2),
                "json" => bad = br#"{"station_id": 40380}"#.to_vec(),
                "range" => {
                    // A valid record for station 12 (zig-zag varint of 12 is 24).
                    bad = v[..5].to_vec();
                    bad.push(24);
                    bad.extend_from_slice(&v[5 + 3..]);
                }
                _ => {}
            }
            if kind == "empty" {
                producer.send_raw(&k, None);
            } else {
                producer.send_raw(&k, Some(&bad));
            }
        } else {
            producer.send_raw(&k, Some(&v));
            *expected.entry(id).or_insert(0) += 1;
        }
    }
    producer.send(0, &mut rng, &mut expected); // waits for delivery
    assert_eq!(expected.values().sum::<i64>(), GOOD as i64);

    let dir = tempfile::tempdir().unwrap();
    let worker = spawn_worker(&env, dir.path(), &app_id).await;
    let base = worker.base.clone();
    wait_for_counts(&base, &expected, Duration::from_secs(120)).await;

    // Exactly the poison is in the DLQ, with reasons and source coordinates.
    let dlq = eventually(
        &format!("{BAD} records in the DLQ"),
        Duration::from_secs(30),
        async || {
            let recs = read_dlq(&env.kafka.brokers);
            if recs.len() >= BAD {
                Ok(recs)
            } else {
                Err(format!("{} records", recs.len()))
            }
        },
    )
    .await;
    assert_eq!(dlq.len(), BAD);
    // The poison as it sits on the source topic, found independently of the worker: every
    // record whose value is not one of the valid encodings.
    let valid: HashSet<Vec<u8>> = (0..1000).map(|i| producer.valid(i).2).collect();
    let source = read_records(&env.kafka.brokers, "org.chicago.cta.turnstile.v1");
    assert_eq!(source.len(), GOOD + BAD);
    let poisoned: BTreeMap<(i32, i64), &Rec> = source
        .iter()
        .filter(|r| r.value.as_ref().is_none_or(|v| !valid.contains(v)))
        .map(|r| ((r.partition, r.offset), r))
        .collect();
    assert_eq!(poisoned.len(), BAD, "poison found on the source topic");
    // Each dead letter points at a poisoned record and carries its exact key and bytes.
    let mut pointed = BTreeMap::new();
    for d in &dlq {
        let h = &d.headers;
        assert_eq!(h["source.topic"], "org.chicago.cta.turnstile.v1");
        let at = (
            h["source.partition"].parse::<i32>().unwrap(),
            h["source.offset"].parse::<i64>().unwrap(),
        );
        let src = poisoned
            .get(&at)
            .unwrap_or_else(|| panic!("dead letter points at {at:?}, not a poisoned record"));
        assert_eq!(d.value, src.value, "payload of the record at {at:?}");
        assert_eq!(d.key, src.key, "key of the record at {at:?}");
        assert!(
            pointed.insert(at, ()).is_none(),
            "{at:?} dead-lettered twice"
        );
    }
    assert_eq!(
        pointed.len(),
        BAD,
        "every poisoned record dead-lettered once"
    );
    let mut reasons: HashMap<String, usize> = HashMap::new();
    for d in &dlq {
        let h = &d.headers;
        let e = &h["error"];
        let kind = if e.contains("magic") {
            "magic"
        } else if e.contains("unknown schema") {
            "schema"
        } else if e.contains("no value") {
            "empty"
        } else if e.contains("out of range") {
            "range"
        } else {
            "avro" // truncated body
        };
        *reasons.entry(kind.to_string()).or_default() += 1;
    }
    // JSON bytes start with `{`, not the magic byte 0.
    assert_eq!(reasons["magic"], bad_kinds["magic"] + bad_kinds["json"]);
    assert_eq!(reasons["schema"], bad_kinds["schema"]);
    assert_eq!(reasons["empty"], bad_kinds["empty"]);
    assert_eq!(reasons["range"], bad_kinds["range"]);
    assert_eq!(reasons["avro"], bad_kinds["truncated"]);
    let (_, status) = get_json(&format!("{base}/api/status")).await;
    assert_eq!(status["worker"]["dead_lettered"].as_u64(), Some(BAD as u64));

    worker.stop().await;
}

/// A record read back with its coordinates and headers.
struct Rec {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: HashMap<String, String>,
}

/// Every DLQ record.
fn read_dlq(brokers: &str) -> Vec<Rec> {
    read_records(brokers, "org.chicago.cta.turnstile.v1.dlq")
}

/// Every record of `topic`'s 4 partitions, read to the high watermarks.
fn read_records(brokers: &str, topic: &str) -> Vec<Rec> {
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "dlq-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    let mut total = 0;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..4 {
        let (lo, hi) = c
            .fetch_watermarks(topic, p, Duration::from_secs(5))
            .unwrap_or((0, 0));
        total += hi - lo;
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (out.len() as i64) < total && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            let mut headers = HashMap::new();
            if let Some(hs) = m.headers() {
                for x in hs.iter() {
                    headers.insert(
                        x.key.to_string(),
                        String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned(),
                    );
                }
            }
            out.push(Rec {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers,
            });
        }
    }
    out
}

//! [`TurnstileProducer`]: turnstile entries produced as the simulation or the original CTA
//! project's producers write them, with a tally of what was sent.

use super::TestEnv;
use std::collections::BTreeMap;
use std::time::Duration;

/// Produces turnstile entries like the simulation does (Avro, keyed by station), or like the
/// original CTA project's producers ([`TurnstileProducer::original`]), for stations of the
/// built-in dataset chosen at random.
pub struct TurnstileProducer {
    producer: cta_stream::stream::kafka::TrackedProducer,
    encoded: Vec<(i32, Vec<u8>, Vec<u8>)>,
    /// Keys by send time instead: the key schema's registry frame header.
    timestamp_key: Option<Vec<u8>>,
}

/// The original project's turnstile value: `station_id` is a string there.
#[derive(serde::Serialize)]
struct OriginalTurnstileValue<'a> {
    station_id: String,
    station_name: &'a str,
    line: &'a str,
}

/// The original project's turnstile schemas as it registers them (written out here): key
/// `{timestamp}` (ms), value with three string fields, under its topic's subjects.
const ORIGINAL_TOPIC: &str = "org.chicago.cta.turstile.v1";
const ORIGINAL_KEY_SCHEMA: &str = r#"{"type":"record","name":"turnstile.key","namespace":"com.udacity","fields":[{"name":"timestamp","type":"long"}]}"#;
const ORIGINAL_VALUE_SCHEMA: &str = r#"{"type":"record","name":"turnstile.value","namespace":"com.udacity","fields":[{"name":"station_id","type":"string"},{"name":"station_name","type":"string"},{"name":"line","type":"string"}]}"#;

impl TurnstileProducer {
    /// Entries as the original CTA project's producers write them: Avro key `{timestamp}` (the
    /// send time in ms), the value schema they register (`station_id` a string); so a station's
    /// entries land in every partition.
    pub async fn original(env: &TestEnv) -> Self {
        use cta_stream::stream::codec::confluent::SubjectSchema;
        let encoder = cta_stream::stream::AvroEncoder::new(&env.registry).unwrap();
        let kschema = SubjectSchema::new(ORIGINAL_TOPIC, true, ORIGINAL_KEY_SCHEMA).unwrap();
        let vschema = SubjectSchema::new(ORIGINAL_TOPIC, false, ORIGINAL_VALUE_SCHEMA).unwrap();
        let key = cta_stream::transit::models::TimestampKey { timestamp: 0 };
        let framed_key = encoder.encode(&key, &kschema).await.unwrap();
        let mut encoded = Vec::new();
        for s in cta_stream::transit::stations::Dataset::builtin().rows() {
            let value = OriginalTurnstileValue {
                station_id: s.station_id.to_string(),
                station_name: &s.station_name,
                line: s.line.as_str(),
            };
            let v = encoder.encode(&value, &vschema).await.unwrap();
            encoded.push((s.station_id, Vec::new(), v));
        }
        Self {
            producer: cta_stream::stream::kafka::tracked_producer(&env.kafka).unwrap(),
            encoded,
            timestamp_key: Some(framed_key[..5].to_vec()),
        }
    }

    /// The key to send `station_key` with: itself, or the send time in the original's form.
    fn key_of(&self, station_key: &[u8]) -> Vec<u8> {
        let Some(header) = &self.timestamp_key else {
            return station_key.to_vec();
        };
        // The record's one field, an Avro long: zigzag, then base-128 varint.
        let now = cta_stream::stream::now_ms();
        let mut z = ((now << 1) ^ (now >> 63)) as u64;
        let mut key = header.clone();
        while z >= 0x80 {
            key.push((z as u8 & 0x7f) | 0x80);
            z >>= 7;
        }
        key.push(z as u8);
        key
    }

    pub async fn new(env: &TestEnv) -> Self {
        use cta_stream::stream::codec::confluent::SubjectSchema;
        use cta_stream::transit::models::{schemas, topics, TurnstileEntry, TurnstileKey};
        let encoder = cta_stream::stream::AvroEncoder::new(&env.registry).unwrap();
        let kschema = SubjectSchema::new(topics::TURNSTILE, true, schemas::TURNSTILE_KEY).unwrap();
        let vschema =
            SubjectSchema::new(topics::TURNSTILE, false, schemas::TURNSTILE_VALUE).unwrap();
        let mut encoded = Vec::new();
        for s in cta_stream::transit::stations::Dataset::builtin().rows() {
            let k = encoder
                .encode(
                    &TurnstileKey {
                        station_id: s.station_id,
                    },
                    &kschema,
                )
                .await
                .unwrap();
            let e = TurnstileEntry {
                station_id: s.station_id,
                station_name: s.station_name.clone(),
                line: s.line.as_str().into(),
            };
            let v = encoder.encode(&e, &vschema).await.unwrap();
            encoded.push((s.station_id, k, v));
        }
        Self {
            producer: cta_stream::stream::kafka::tracked_producer(&env.kafka).unwrap(),
            encoded,
            timestamp_key: None,
        }
    }

    /// Sends one raw record to the turnstile topic (not waited for).
    pub fn send_raw(&self, key: &[u8], value: Option<&[u8]>) {
        cta_stream::stream::kafka::send_blocking(
            &self.producer,
            cta_stream::transit::models::topics::TURNSTILE,
            None,
            Some(key),
            value,
            None,
            None,
        )
        .unwrap();
    }

    /// The encoded (key, value) of a valid entry for the i-th station of the dataset.
    pub fn valid(&self, i: usize) -> (i32, Vec<u8>, Vec<u8>) {
        self.encoded[i % self.encoded.len()].clone()
    }

    /// Sends `n` entries and waits for their delivery, adding them to `tally`.
    pub fn send(&self, n: usize, rng: &mut impl rand::Rng, tally: &mut BTreeMap<i32, i64>) {
        for _ in 0..n {
            let (id, k, v) = &self.encoded[rng.random_range(0..self.encoded.len())];
            cta_stream::stream::kafka::send_blocking(
                &self.producer,
                cta_stream::transit::models::topics::TURNSTILE,
                None,
                Some(&self.key_of(k)),
                Some(v),
                None,
                None,
            )
            .unwrap();
            *tally.entry(*id).or_insert(0) += 1;
        }
        tokio::task::block_in_place(|| {
            cta_stream::stream::kafka::flush(&self.producer, Duration::from_secs(60))
        })
        .unwrap();
    }
}

//! The benchmark's input: N turnstile entries as the simulation writes them (Avro, Confluent
//! wire format through [`AvroEncoder`] and the project's turnstile schemas, keyed by station),
//! stations drawn from the built-in dataset weighted by their average weekday entries, with a
//! fixed seed. Also the exact per-station counts, to check the worker against.

use crate::measure::{PhaseCost, PhaseMeter};
use crate::{BenchError, Result};
use cta_stream::stream::codec::confluent::SubjectSchema;
use cta_stream::stream::kafka::{flush, send_blocking, tracked_producer};
use cta_stream::stream::{AvroEncoder, KafkaConfig, RegistryConfig, StreamError};
use cta_stream::transit::models::{
    schemas, topics, TurnstileEntry, TurnstileKey, TurnstileSummary,
};
use cta_stream::transit::stations::Dataset;
use rand::distr::weighted::WeightedIndex;
use rand::distr::Distribution;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rdkafka::producer::Producer;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// What was produced.
#[derive(Debug, Clone, Serialize)]
pub struct Produced {
    pub records: u64,
    /// Entries per station id: what the turnstile table must hold afterwards.
    pub per_station: BTreeMap<i32, i64>,
    pub cost: PhaseCost,
}

/// Encoded key and value of one dataset row.
pub(crate) struct Encoded {
    pub station_id: i32,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// Encodes one entry per dataset row (the same bytes the simulation sends for that station).
pub(crate) async fn encode_rows(
    registry: &RegistryConfig,
    dataset: &Dataset,
) -> Result<Vec<Encoded>> {
    let encoder = AvroEncoder::new(registry)?;
    let key_schema = SubjectSchema::new(topics::TURNSTILE, true, schemas::TURNSTILE_KEY)?;
    let value_schema = SubjectSchema::new(topics::TURNSTILE, false, schemas::TURNSTILE_VALUE)?;
    let mut out = Vec::with_capacity(dataset.rows().len());
    for row in dataset.rows() {
        let entry = TurnstileEntry {
            station_id: row.station_id,
            station_name: row.station_name.clone(),
            line: row.line.as_str().to_string(),
        };
        let key = TurnstileKey {
            station_id: row.station_id,
        };
        out.push(Encoded {
            station_id: row.station_id,
            key: encoder.encode(&key, &key_schema).await?,
            value: encoder.encode(&entry, &value_schema).await?,
        });
    }
    Ok(out)
}

/// How stations are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Draw {
    /// In proportion to average weekday entries, as the simulation does.
    Ridership,
    /// Every dataset row equally often (more distinct stations per checkpoint).
    Uniform,
}

/// Produces `records` turnstile entries to the turnstile topic and waits for every delivery.
pub async fn produce_turnstile(
    kafka: &KafkaConfig,
    registry: &RegistryConfig,
    dataset: &Dataset,
    records: u64,
    seed: u64,
    draw: Draw,
    partition_of: Option<&BTreeMap<i32, i32>>,
) -> Result<Produced> {
    let rows = encode_rows(registry, dataset).await?;
    let partitions: Vec<Option<i32>> = rows
        .iter()
        .map(|r| partition_of.and_then(|m| m.get(&r.station_id).copied()))
        .collect();
    let weights: Vec<u32> = dataset
        .rows()
        .iter()
        .map(|r| match draw {
            Draw::Ridership => r.avg_weekday.max(1),
            Draw::Uniform => 1,
        })
        .collect();
    let dist = WeightedIndex::new(&weights)
        .map_err(|e| BenchError::Invalid(format!("station weights: {e}")))?;
    let kafka = kafka.clone();
    tokio::task::spawn_blocking(move || -> Result<Produced> {
        let meter = PhaseMeter::start();
        let producer = tracked_producer(&kafka)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut per_station: BTreeMap<i32, i64> = BTreeMap::new();
        let ts = cta_stream::stream::now_ms();
        for _ in 0..records {
            let i = dist.sample(&mut rng);
            let row = &rows[i];
            send_blocking(
                &producer,
                topics::TURNSTILE,
                partitions[i],
                Some(&row.key),
                Some(&row.value),
                None,
                Some(ts),
            )?;
            *per_station.entry(row.station_id).or_default() += 1;
        }
        flush(&producer, Duration::from_secs(300))?;
        let delivered = producer.context().delivered();
        if delivered != records {
            return Err(BenchError::Invalid(format!(
                "produced {records} records but {delivered} were acknowledged"
            )));
        }
        Ok(Produced {
            records,
            per_station,
            cost: meter.read(),
        })
    })
    .await
    .map_err(|e| StreamError::Config(format!("producer task failed: {e}")))?
}

/// A partition per station id of the dataset: stations in id order, dealt round-robin.
pub fn station_partitions(dataset: &Dataset, partitions: i32) -> BTreeMap<i32, i32> {
    let ids: std::collections::BTreeSet<i32> =
        dataset.rows().iter().map(|r| r.station_id).collect();
    ids.into_iter()
        .enumerate()
        .map(|(i, id)| (id, (i as i32) % partitions.max(1)))
        .collect()
}

/// FNV-1a over the sorted (station, count) pairs: equal maps give equal checksums.
pub fn counts_checksum(counts: &BTreeMap<i32, i64>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in counts {
        for b in k.to_le_bytes().iter().chain(v.to_le_bytes().iter()) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The turnstile table's rows as a map.
pub fn as_map(rows: &[TurnstileSummary]) -> BTreeMap<i32, i64> {
    rows.iter().map(|s| (s.station_id, s.count)).collect()
}

/// `Ok` when the maps are equal, else the first differences (station, expected, got).
pub fn compare_counts(
    expected: &BTreeMap<i32, i64>,
    got: &BTreeMap<i32, i64>,
) -> std::result::Result<(), String> {
    if expected == got {
        return Ok(());
    }
    let mut diffs = Vec::new();
    for k in expected.keys().chain(got.keys()) {
        let (e, g) = (expected.get(k), got.get(k));
        if e != g && !diffs.iter().any(|(d, _, _)| d == k) {
            diffs.push((*k, e.copied(), g.copied()));
        }
    }
    diffs.sort();
    let shown: Vec<String> = diffs
        .iter()
        .take(8)
        .map(|(k, e, g)| format!("station {k}: expected {e:?}, got {g:?}"))
        .collect();
    Err(format!(
        "expected {} entries over {} stations, got {} over {} ({} stations differ; {})",
        expected.values().sum::<i64>(),
        expected.len(),
        got.values().sum::<i64>(),
        got.len(),
        diffs.len(),
        shown.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_tells_maps_apart() {
        let a: BTreeMap<i32, i64> = [(1, 5), (2, 7)].into_iter().collect();
        let b: BTreeMap<i32, i64> = [(1, 5), (2, 8)].into_iter().collect();
        let c: BTreeMap<i32, i64> = [(1, 7), (2, 5)].into_iter().collect();
        assert_eq!(counts_checksum(&a), counts_checksum(&a.clone()));
        assert_ne!(counts_checksum(&a), counts_checksum(&b));
        assert_ne!(counts_checksum(&a), counts_checksum(&c));
    }

    #[test]
    fn stations_are_dealt_over_all_partitions() {
        let ds = Dataset::builtin();
        let m = station_partitions(&ds, 4);
        let ids: std::collections::BTreeSet<i32> = ds.rows().iter().map(|r| r.station_id).collect();
        assert_eq!(m.len(), ids.len());
        for p in 0..4 {
            let n = m.values().filter(|v| **v == p).count();
            assert!(
                n >= ids.len() / 4 && n <= ids.len() / 4 + 1,
                "partition {p}: {n}"
            );
        }
    }

    #[test]
    fn compare_names_the_differences() {
        let a: BTreeMap<i32, i64> = [(1, 5), (2, 7)].into_iter().collect();
        let b: BTreeMap<i32, i64> = [(1, 5), (3, 7)].into_iter().collect();
        assert!(compare_counts(&a, &a).is_ok());
        let e = compare_counts(&a, &b).unwrap_err();
        assert!(e.contains("2 stations differ"), "{e}");
        assert!(e.contains("station 2: expected Some(7), got None"), "{e}");
        assert!(e.contains("station 3: expected None, got Some(7)"), "{e}");
    }
}

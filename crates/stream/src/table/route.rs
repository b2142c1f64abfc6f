//! Which partition of a table holds a key, for reads outside an agent (`get(key)` from a web
//! handler or any other thread), and the read itself.
//!
//! A table is partitioned like its source topic: partition N holds what the records of source
//! partition N wrote. For a table keyed like its source (a count per record key, say), the
//! partition of a key is where the producer put records with that key. The producer side is
//! Kafka's default partitioner: murmur2 of the key bytes, positive, modulo the partition count
//! (Java clients; librdkafka's `partitioner=murmur2_random`). So the table needs the key bytes
//! the source's producers used ([`Table::with_source_key`]; by default the UTF-8 of a string
//! key, the JSON of any other) and the partition count, which it learns when the runtime opens
//! its first partition.
//!
//! A table whose keys are not its source records' keys (stations keyed by id from rows keyed by
//! stop, a train's latest sighting from arrivals keyed by station) is declared
//! [`Table::scattered`]: any partition may hold a key, several may hold copies, and reads by key
//! look in every partition ([`Table::entries_of`]) instead of asking the partitioner.
//!
//! What this module does not do: ask another worker. A key whose partition is not open here
//! reads as absent; [`crate::view`] routes such reads to the owning worker.

use super::{Table, TableKey, TableValue};
use crate::error::Result;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, RwLock};

/// How a table key becomes the key bytes its source topic's records carry.
pub type SourceKeyFn<K> = Arc<dyn Fn(&K) -> Vec<u8> + Send + Sync>;

/// Routing facts of a table, shared by its clones and its standby handle.
pub(crate) struct Routing<K> {
    /// Partitions of the source topic; 0 until a partition was opened.
    partitions: AtomicI32,
    source_key: RwLock<Option<SourceKeyFn<K>>>,
    /// Keys are not the source records' keys: no partitioner routing.
    scattered: AtomicBool,
}

impl<K> Default for Routing<K> {
    fn default() -> Self {
        Self {
            partitions: AtomicI32::new(0),
            source_key: RwLock::new(None),
            scattered: AtomicBool::new(false),
        }
    }
}

impl<K> Routing<K> {
    /// The runtime opened a partition of a source topic with `partitions` partitions.
    pub(crate) fn saw_partitions(&self, partitions: i32) {
        self.partitions.store(partitions, Ordering::Relaxed);
    }
}

/// Kafka's murmur2 hash (`org.apache.kafka.common.utils.Utils.murmur2`), seed 0x9747b28c.
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner gives a record with `key` among `partitions`.
pub fn partition_for(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// Default source key bytes: a key that serializes to a JSON string is its UTF-8 text (what a
/// string serializer writes), any other key its JSON.
pub fn default_source_key<K: serde::Serialize>(key: &K) -> Vec<u8> {
    match serde_json::to_value(key) {
        Ok(serde_json::Value::String(s)) => s.into_bytes(),
        Ok(other) => other.to_string().into_bytes(),
        Err(_) => Vec::new(),
    }
}

impl<K: TableKey, V: TableValue> Table<K, V> {
    /// Says how the source topic's producers encoded the keys (for [`Table::partition_of`]);
    /// e.g. `|id: &i32| id.to_be_bytes().to_vec()` for Kafka's IntegerSerializer.
    pub fn with_source_key(self, f: impl Fn(&K) -> Vec<u8> + Send + Sync + 'static) -> Self {
        *self
            .inner
            .routing
            .source_key
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(f));
        self
    }

    /// Declares that this table's keys are not the keys of its source topic's records, so the
    /// partitioner cannot say where a key is: reads by key look in every partition, and the
    /// table views answer every copy of a key.
    pub fn scattered(self) -> Self {
        self.inner.routing.scattered.store(true, Ordering::Relaxed);
        self
    }

    /// Whether the table was declared [`Table::scattered`].
    pub fn is_scattered(&self) -> bool {
        self.inner.routing.scattered.load(Ordering::Relaxed)
    }

    /// Partitions of the source topic, once the runtime opened one of them.
    pub fn partition_count(&self) -> Option<i32> {
        match self.inner.routing.partitions.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }

    /// The source key bytes of `key`.
    pub fn source_key_bytes(&self, key: &K) -> Vec<u8> {
        let f = self
            .inner
            .routing
            .source_key
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match f {
            Some(f) => f(key),
            None => default_source_key(key),
        }
    }

    /// The partition holding `key` (`None` until the partition count is known, and for a
    /// [`Table::scattered`] table).
    pub fn partition_of(&self, key: &K) -> Option<i32> {
        if self.is_scattered() {
            return None;
        }
        let n = self.partition_count()?;
        Some(partition_for(&self.source_key_bytes(key), n))
    }

    /// Whether `partition` is open on this worker (owned, or being restored).
    pub fn holds_partition(&self, partition: i32) -> bool {
        self.parts().map.contains_key(&partition)
    }

    /// The value of `key` from the partition the partitioner gives it, committed or pending,
    /// from any thread. `None` when the key is absent or its partition is not on this worker
    /// (see [`Table::holds_partition`]). For a [`Table::scattered`] table: the copy in the
    /// lowest-numbered partition of this worker that has one ([`Table::entries_of`] has them all).
    pub fn value(&self, key: &K) -> Result<Option<V>> {
        if self.is_scattered() {
            return Ok(self.entries_of(key)?.into_iter().next().map(|(_, v)| v));
        }
        let Some(p) = self.partition_of(key) else {
            return Ok(None);
        };
        let mut parts = self.parts();
        match parts.map.get_mut(&p) {
            Some(part) => Self::lookup(part, key),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka_test_vectors() {
        // From Kafka's UtilsTest.testMurmur2 (computed by the Java implementation).
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (data, want) in cases {
            assert_eq!(murmur2(data), want, "{}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn partitions_are_positive_hash_modulo_count() {
        // -973932308 & 0x7fffffff = 1173551340; 1173551340 % 7 = 3 (done by hand).
        assert_eq!(partition_for(b"21", 7), 3);
        for key in [&b"x"[..], b"", b"abcd", b"hello world"] {
            let p = partition_for(key, 5);
            assert!((0..5).contains(&p));
        }
        assert_eq!(default_source_key(&"wörd".to_string()), "wörd".as_bytes());
        assert_eq!(default_source_key(&40_380), b"40380");
    }
}

//! Tables: typed key/value state partitioned like the source topic that feeds them, each
//! partition a RocksDB store ([`store`]) whose every change also goes to a changelog topic.
//!
//! Unlike Faust's `table[k] = v`, a write here does nothing visible at once: it lands in the
//! partition's write cache (as Kafka Streams' record cache), and the checkpoint
//! ([`crate::stream::checkpoint`]) later sends the latest value per key to the changelog and
//! writes it to RocksDB together with the source offset, in one batch. So a hot key updated a
//! thousand times between commits costs one changelog record and one RocksDB write.
//!
//! Writes for a record the store already reflects (offset below the stored source offset) are
//! ignored, which makes re-processing after a crash idempotent.

pub mod recovery;
pub mod store;

use crate::stream::codec::json;
use crate::stream::error::{Result, StreamError};
use crate::stream::record::Record;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use store::{Change, PartitionStore, StoreIdentity, StoreOffsets};

/// Key bounds for tables.
pub trait TableKey:
    Serialize + DeserializeOwned + Hash + Eq + Ord + Clone + Send + 'static
{
}
impl<T: Serialize + DeserializeOwned + Hash + Eq + Ord + Clone + Send + 'static> TableKey for T {}
/// Value bounds for tables.
pub trait TableValue: Serialize + DeserializeOwned + Clone + Send + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Send + 'static> TableValue for T {}

/// How a table is declared.
#[derive(Debug, Clone)]
pub struct TableSpec {
    pub name: String,
    /// The topic whose records update this table; table partition N follows its partition N.
    pub source_topic: String,
    /// Overrides the default changelog name `{app_id}-{name}-changelog`.
    pub changelog_topic: Option<String>,
}

/// What the runtime needs from any table, whatever its key and value types.
pub trait TableRuntime: Send + Sync {
    fn name(&self) -> &str;
    fn source_topic(&self) -> &str;
    fn changelog_topic(&self) -> &str;
    /// Opens the partition's store (if not open yet) and returns its offsets.
    fn open_partition(&self, partition: i32, partitions: i32) -> Result<StoreOffsets>;
    /// Offsets of an open partition's store.
    fn offsets(&self, partition: i32) -> Result<StoreOffsets>;
    fn close_partition(&self, partition: i32);
    fn open_partitions(&self) -> Vec<i32>;
    /// Applies restored changelog entries straight to the store.
    fn restore_batch(
        &self,
        partition: i32,
        changes: &[Change],
        offsets: StoreOffsets,
    ) -> Result<()>;
    /// The pending changes of a partition, serialized in the order they were first made.
    fn pending(&self, partition: i32) -> Vec<Change>;
    /// Writes `changes` (from [`TableRuntime::pending`]) with the offsets in one batch and
    /// clears the cache. Nothing may write to the table between the two calls.
    fn commit_partition(
        &self,
        partition: i32,
        changes: &[Change],
        offsets: StoreOffsets,
    ) -> Result<()>;
    /// Number of keys (store plus cache) across open partitions.
    fn entry_count(&self) -> usize;
}

struct Part<K, V> {
    store: PartitionStore,
    /// Latest value per key since the last commit; `None` is a delete.
    dirty: HashMap<K, Option<V>>,
    /// Insertion order of `dirty`, so the changelog carries changes in the order they happened.
    order: Vec<K>,
    /// The store reflects source offsets below this; writes from older records are ignored.
    stored_source: i64,
}

struct Inner<K, V> {
    name: String,
    app_id: String,
    source_topic: String,
    changelog_topic: String,
    dir: PathBuf,
    parts: Mutex<HashMap<i32, Part<K, V>>>,
}

/// A typed table. Clones share the same state.
pub struct Table<K, V> {
    inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for Table<K, V> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

fn decode_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

impl<K: TableKey, V: TableValue> Table<K, V> {
    pub(crate) fn new(app_id: &str, data_dir: &std::path::Path, spec: TableSpec) -> Self {
        let changelog_topic = spec
            .changelog_topic
            .unwrap_or_else(|| crate::stream::names::changelog_topic(app_id, &spec.name));
        Self {
            inner: Arc::new(Inner {
                dir: data_dir.join(app_id).join(&spec.name),
                name: spec.name,
                app_id: app_id.to_string(),
                source_topic: spec.source_topic,
                changelog_topic,
                parts: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn parts(&self) -> MutexGuard<'_, HashMap<i32, Part<K, V>>> {
        // Nothing panics while holding this lock; a poisoned guard still holds consistent data.
        self.inner.parts.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    fn lookup(part: &Part<K, V>, key: &K) -> Result<Option<V>> {
        if let Some(v) = part.dirty.get(key) {
            return Ok(v.clone());
        }
        let kb = json::encode(key);
        Ok(part.store.get(&kb)?.and_then(|b| decode_bytes(&b)))
    }

    /// The value for `key` in the record's partition.
    pub fn get(&self, record: &Record<'_>, key: &K) -> Result<Option<V>> {
        let parts = self.parts();
        match parts.get(&record.partition) {
            Some(part) => Self::lookup(part, key),
            None => Ok(None),
        }
    }

    /// Sets `key` in the record's partition.
    pub fn put(&self, record: &Record<'_>, key: K, value: V) -> Result<()> {
        self.write(record, key, Some(value))
    }

    /// Deletes `key` in the record's partition (a tombstone in the changelog).
    pub fn delete(&self, record: &Record<'_>, key: K) -> Result<()> {
        self.write(record, key, None)
    }

    /// Reads, transforms and writes `key` in one step.
    pub fn update(
        &self,
        record: &Record<'_>,
        key: K,
        f: impl FnOnce(Option<V>) -> V,
    ) -> Result<()> {
        let mut parts = self.parts();
        let part = self.part_mut(&mut parts, record.partition)?;
        if record.offset < part.stored_source {
            return Ok(());
        }
        let old = Self::lookup(part, &key)?;
        let new = f(old);
        Self::set_dirty(part, key, Some(new));
        Ok(())
    }

    fn part_mut<'a>(
        &self,
        parts: &'a mut HashMap<i32, Part<K, V>>,
        partition: i32,
    ) -> Result<&'a mut Part<K, V>> {
        parts
            .get_mut(&partition)
            .ok_or_else(|| StreamError::Changelog {
                topic: self.inner.changelog_topic.clone(),
                reason: format!(
                    "partition {partition} of table '{}' is not open",
                    self.inner.name
                ),
            })
    }

    fn set_dirty(part: &mut Part<K, V>, key: K, value: Option<V>) {
        match part.dirty.get_mut(&key) {
            Some(slot) => *slot = value,
            None => {
                part.order.push(key.clone());
                part.dirty.insert(key, value);
            }
        }
    }

    fn write(&self, record: &Record<'_>, key: K, value: Option<V>) -> Result<()> {
        let mut parts = self.parts();
        let part = self.part_mut(&mut parts, record.partition)?;
        if record.offset < part.stored_source {
            return Ok(());
        }
        Self::set_dirty(part, key, value);
        Ok(())
    }

    /// Every value stored under `key`, one per partition that has it (a table fed by a topic not
    /// keyed by the table key can hold the same key in several partitions).
    pub fn get_all(&self, key: &K) -> Result<Vec<V>> {
        let parts = self.parts();
        let mut out = Vec::new();
        for part in parts.values() {
            if let Some(v) = Self::lookup(part, key)? {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// All entries of one open partition (store merged with pending writes), sorted by key.
    pub fn partition_items(&self, partition: i32) -> Result<Vec<(K, V)>> {
        let parts = self.parts();
        match parts.get(&partition) {
            Some(part) => Self::merged(part),
            None => Ok(Vec::new()),
        }
    }

    fn merged(part: &Part<K, V>) -> Result<Vec<(K, V)>> {
        let mut merged: BTreeMap<K, V> = BTreeMap::new();
        for (kb, vb) in part.store.items()? {
            if let (Some(k), Some(v)) = (decode_bytes::<K>(&kb), decode_bytes::<V>(&vb)) {
                merged.insert(k, v);
            }
        }
        for (k, v) in &part.dirty {
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        Ok(merged.into_iter().collect())
    }

    /// All entries of all open partitions, as (partition, key, value), sorted by key.
    pub fn items(&self) -> Result<Vec<(i32, K, V)>> {
        let parts = self.parts();
        let mut out = Vec::new();
        for (p, part) in parts.iter() {
            out.extend(Self::merged(part)?.into_iter().map(|(k, v)| (*p, k, v)));
        }
        out.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        Ok(out)
    }

    /// Type-erased handle for the runtime.
    pub fn runtime(&self) -> Arc<dyn TableRuntime> {
        Arc::new(self.clone())
    }
}

impl<K: TableKey, V: TableValue> TableRuntime for Table<K, V> {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn source_topic(&self) -> &str {
        &self.inner.source_topic
    }

    fn changelog_topic(&self) -> &str {
        &self.inner.changelog_topic
    }

    fn open_partition(&self, partition: i32, partitions: i32) -> Result<StoreOffsets> {
        let mut parts = self.parts();
        if let Some(part) = parts.get(&partition) {
            return part.store.offsets();
        }
        let identity = StoreIdentity {
            app_id: self.inner.app_id.clone(),
            table: self.inner.name.clone(),
            partition,
            partitions,
        };
        let store = PartitionStore::open(&self.inner.dir.join(partition.to_string()), &identity)?;
        let offsets = store.offsets()?;
        parts.insert(
            partition,
            Part {
                store,
                dirty: HashMap::new(),
                order: Vec::new(),
                stored_source: offsets.source.unwrap_or(0),
            },
        );
        Ok(offsets)
    }

    fn offsets(&self, partition: i32) -> Result<StoreOffsets> {
        let mut parts = self.parts();
        self.part_mut(&mut parts, partition)?.store.offsets()
    }

    fn close_partition(&self, partition: i32) {
        self.parts().remove(&partition);
    }

    fn open_partitions(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self.parts().keys().copied().collect();
        v.sort_unstable();
        v
    }

    fn restore_batch(
        &self,
        partition: i32,
        changes: &[Change],
        offsets: StoreOffsets,
    ) -> Result<()> {
        let mut parts = self.parts();
        let part = self.part_mut(&mut parts, partition)?;
        part.store.commit(changes, offsets)?;
        if let Some(s) = offsets.source {
            part.stored_source = s;
        }
        Ok(())
    }

    fn pending(&self, partition: i32) -> Vec<Change> {
        let parts = self.parts();
        let Some(part) = parts.get(&partition) else {
            return Vec::new();
        };
        part.order
            .iter()
            .filter_map(|k| {
                part.dirty
                    .get(k)
                    .map(|v| (json::encode(k), v.as_ref().map(|v| json::encode(v))))
            })
            .collect()
    }

    fn commit_partition(
        &self,
        partition: i32,
        changes: &[Change],
        offsets: StoreOffsets,
    ) -> Result<()> {
        let mut parts = self.parts();
        let part = self.part_mut(&mut parts, partition)?;
        part.store.commit(changes, offsets)?;
        part.dirty.clear();
        part.order.clear();
        if let Some(s) = offsets.source {
            part.stored_source = s;
        }
        Ok(())
    }

    fn entry_count(&self) -> usize {
        self.items().map(|v| v.len()).unwrap_or(0)
    }
}

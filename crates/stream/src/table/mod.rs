//! Tables: typed key/value state partitioned like the source topic that feeds them, each
//! partition a RocksDB store ([`store`]) whose every change also goes to a changelog topic.
//!
//! Unlike Faust's `table[k] = v`, a write here does nothing visible at once: it lands in the
//! partition's write cache (as Kafka Streams' record cache), and the checkpoint
//! ([`crate::checkpoint`]) later sends the latest value per key to the changelog and
//! writes it to RocksDB together with the source offset, in one batch. So a hot key updated a
//! thousand times between commits costs one changelog record and one RocksDB write.
//!
//! Writes for a record the store already reflects (offset below the stored source offset) are
//! ignored, which makes re-processing after a crash idempotent.
//!
//! Reads never go to RocksDB on the record path: each partition keeps a decoded copy of its
//! committed entries (loaded from the store on first use, updated by every commit, dropped by a
//! restore), so a key missing from the write cache is found, or known absent, in memory.
//! Partitions larger than [`COMMITTED_COPY_MAX_KEYS`] read RocksDB instead. Whole-table reads
//! ([`Table::items`]) are kept as a snapshot until the table changes.

mod read;
pub(crate) mod recovery;
pub mod route;
mod runtime;
pub mod store;

use crate::codec::json;
use crate::error::{Result, StreamError};
use crate::record::{At, Record};
use crate::FastMap;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::hash_map::Entry;
use std::collections::BTreeMap;
use std::hash::Hash;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use store::{Change, PartitionStore, StoreOffsets};

/// Key bounds for tables.
pub trait TableKey:
    Serialize + DeserializeOwned + Hash + Eq + Ord + Clone + Send + Sync + 'static
{
}
impl<T: Serialize + DeserializeOwned + Hash + Eq + Ord + Clone + Send + Sync + 'static> TableKey
    for T
{
}
/// Value bounds for tables (shared read snapshots need `Sync`).
pub trait TableValue: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> TableValue for T {}

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
    /// Why a changelog entry (key, value or tombstone) cannot be an entry of this table, if
    /// it cannot: the restore skips such records instead of writing them to the store.
    fn check_change(&self, key: &[u8], value: Option<&[u8]>) -> std::result::Result<(), String>;
    /// Counts `n` changelog records a restore read for this table ([`Table::restored`]).
    fn note_restored(&self, n: u64);
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
    /// The writer epoch this worker puts on the partition's changelog records: the one its
    /// restore proposed, once the group confirmed this worker as the owner
    /// ([`TableRuntime::confirm_writer`]); 0 before that and for a partition not open.
    fn writer_epoch(&self, partition: i32) -> i64;
    /// Makes `epoch` the partition's writer epoch (the group confirmed this worker owns it).
    fn confirm_writer(&self, partition: i32, epoch: i64);
    /// Number of keys (store plus cache) across open partitions.
    fn entry_count(&self) -> usize;
    /// A second handle on the same stores with partitions of its own (none open): what a
    /// standby replica keeps warm while the table itself serves the owned partitions. A
    /// partition's store can be open in only one of them at a time.
    fn standby_handle(&self) -> Arc<dyn TableRuntime>;
}

/// A partition keeps its committed entries in memory up to this many keys; a larger one reads
/// RocksDB for keys not in the write cache.
pub const COMMITTED_COPY_MAX_KEYS: usize = 100_000;

/// The committed entries of a partition, decoded, as the store holds them.
enum CommittedCopy<K, V> {
    /// Not read yet (or dropped after a restore wrote the store directly).
    Unloaded,
    Loaded(BTreeMap<K, V>),
    /// More than [`COMMITTED_COPY_MAX_KEYS`]: the store is read instead.
    TooLarge,
}

struct Partition<K, V> {
    store: PartitionStore,
    /// Latest value per key since the last commit; `None` is a delete.
    dirty: FastMap<K, Option<V>>,
    /// Insertion order of `dirty`, so the changelog carries changes in the order they happened.
    order: Vec<K>,
    /// The store reflects source offsets below this; writes from older records are ignored.
    stored_source: i64,
    /// The store's writer epoch ([`StoreOffsets::epoch`]).
    epoch: i64,
    /// The epoch this worker writes with ([`TableRuntime::writer_epoch`]).
    writer: i64,
    committed: CommittedCopy<K, V>,
}

/// Every entry of a table as (partition, key, value), sorted by key.
pub type Entries<K, V> = Arc<Vec<(i32, K, V)>>;

/// The partitions of a table, and what whole-table reads last returned.
struct Partitions<K, V> {
    map: FastMap<i32, Partition<K, V>>,
    /// Bumped by every change of what [`Table::items`] returns.
    version: u64,
    /// [`Table::items`] as of `version`.
    snapshot: Option<(u64, Entries<K, V>)>,
}

struct Inner<K, V> {
    name: String,
    app_id: String,
    source_topic: String,
    changelog_topic: String,
    dir: PathBuf,
    parts: Mutex<Partitions<K, V>>,
    routing: Arc<route::Routing<K>>,
    /// Changelog records restores have read for this handle's stores since it was made.
    restored: std::sync::atomic::AtomicU64,
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

/// Why `bytes` are not the JSON of a `T`.
fn decode_error<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> std::result::Result<(), String> {
    serde_json::from_slice::<T>(bytes)
        .map(drop)
        .map_err(|e| format!("{what} does not decode: {e}"))
}

impl<K, V> Partitions<K, V> {
    /// No partition open yet (a new table, or a table's standby handle).
    fn none_open() -> Mutex<Self> {
        Mutex::new(Partitions {
            map: FastMap::default(),
            version: 0,
            snapshot: None,
        })
    }
}

impl<K: TableKey, V: TableValue> Table<K, V> {
    pub(crate) fn new(app_id: &str, data_dir: &std::path::Path, spec: TableSpec) -> Self {
        let changelog_topic = spec
            .changelog_topic
            .unwrap_or_else(|| crate::names::changelog_topic(app_id, &spec.name));
        Self {
            inner: Arc::new(Inner {
                dir: data_dir.join(app_id).join(&spec.name),
                name: spec.name,
                app_id: app_id.to_string(),
                source_topic: spec.source_topic,
                changelog_topic,
                parts: Partitions::none_open(),
                routing: Arc::default(),
                restored: Default::default(),
            }),
        }
    }

    fn parts(&self) -> MutexGuard<'_, Partitions<K, V>> {
        // Nothing panics while holding this lock; a poisoned guard still holds consistent data.
        self.inner.parts.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// How many changelog records restores (start-up, rebalance, standby or global copy
    /// following) have read for this table since the app was built: after a warm restart,
    /// only the changelog's tail.
    pub fn restored(&self) -> u64 {
        self.inner
            .restored
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The committed entries of a partition, read from the store on first use; `None` when
    /// the partition is too large to keep in memory.
    fn committed_copy<'a>(
        store: &PartitionStore,
        committed: &'a mut CommittedCopy<K, V>,
    ) -> Result<Option<&'a mut BTreeMap<K, V>>> {
        if let CommittedCopy::Unloaded = committed {
            let mut map = BTreeMap::new();
            let mut too_large = false;
            for (kb, vb) in store.items()? {
                if map.len() >= COMMITTED_COPY_MAX_KEYS {
                    too_large = true;
                    break;
                }
                if let (Some(k), Some(v)) = (decode_bytes::<K>(&kb), decode_bytes::<V>(&vb)) {
                    map.insert(k, v);
                }
            }
            *committed = if too_large {
                CommittedCopy::TooLarge
            } else {
                CommittedCopy::Loaded(map)
            };
        }
        Ok(match committed {
            CommittedCopy::Loaded(map) => Some(map),
            _ => None,
        })
    }

    /// The committed value of `key` (ignoring the write cache).
    fn committed_value(
        store: &PartitionStore,
        committed: &mut CommittedCopy<K, V>,
        key: &K,
    ) -> Result<Option<V>> {
        match Self::committed_copy(store, committed)? {
            Some(map) => Ok(map.get(key).cloned()),
            None => Ok(store
                .get(&json::encode(key))?
                .and_then(|b| decode_bytes(&b))),
        }
    }

    fn lookup(part: &mut Partition<K, V>, key: &K) -> Result<Option<V>> {
        if let Some(v) = part.dirty.get(key) {
            return Ok(v.clone());
        }
        Self::committed_value(&part.store, &mut part.committed, key)
    }

    /// The value for `key` in the record's partition.
    pub fn get(&self, record: &Record<'_>, key: &K) -> Result<Option<V>> {
        let mut parts = self.parts();
        match parts.map.get_mut(&record.partition) {
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
        let parts = &mut *parts;
        let part = self.part_mut(&mut parts.map, record.partition)?;
        if record.offset < part.stored_source {
            return Ok(());
        }
        Self::update_in(part, key, f)?;
        parts.version += 1;
        Ok(())
    }

    /// [`Table::update`] for several keys of the record's partition, under one lock.
    pub fn update_each(
        &self,
        record: &Record<'_>,
        keys: impl IntoIterator<Item = K>,
        f: impl Fn(Option<V>) -> V,
    ) -> Result<()> {
        let mut parts = self.parts();
        let parts = &mut *parts;
        let part = self.part_mut(&mut parts.map, record.partition)?;
        if record.offset < part.stored_source {
            return Ok(());
        }
        for key in keys {
            Self::update_in(part, key, &f)?;
            parts.version += 1;
        }
        Ok(())
    }

    /// [`Table::update`] of each `(record position, key)` in order, under one lock: what an
    /// agent that gathers a batch's writes applies at its end ([`crate::Agent::end_batch`]).
    /// `f` gets the key with its old value. The same as one `update` per item: a position the
    /// store already reflects changes nothing, and an item of a partition that is not open is
    /// an error (the items before it are applied).
    pub fn update_batch(&self, items: &[(At, K)], f: impl Fn(&K, Option<V>) -> V) -> Result<()> {
        let mut parts = self.parts();
        let parts = &mut *parts;
        // Items come in runs of one partition (a fetch brings each partition's records
        // together): the partition is looked up once per run.
        for run in items.chunk_by(|a, b| a.0.partition == b.0.partition) {
            let part = self.part_mut(&mut parts.map, run[0].0.partition)?;
            for (at, key) in run {
                if at.offset < part.stored_source {
                    continue;
                }
                Self::update_in(part, key.clone(), |old| f(key, old))?;
                parts.version += 1;
            }
        }
        Ok(())
    }

    /// The source offset below which the partition's store already reflects every record
    /// (writes from those records are ignored); 0 for a partition not open.
    pub(crate) fn reflected_below(&self, partition: i32) -> i64 {
        self.parts()
            .map
            .get(&partition)
            .map_or(0, |part| part.stored_source)
    }

    /// Read-modify-write of one key in the write cache, hashing the key once when it is there.
    fn update_in(part: &mut Partition<K, V>, key: K, f: impl FnOnce(Option<V>) -> V) -> Result<()> {
        match part.dirty.entry(key) {
            Entry::Occupied(mut e) => {
                let slot = e.get_mut();
                *slot = Some(f(slot.take()));
            }
            Entry::Vacant(e) => {
                let old = Self::committed_value(&part.store, &mut part.committed, e.key())?;
                part.order.push(e.key().clone());
                e.insert(Some(f(old)));
            }
        }
        Ok(())
    }

    fn part_mut<'a>(
        &self,
        parts: &'a mut FastMap<i32, Partition<K, V>>,
        partition: i32,
    ) -> Result<&'a mut Partition<K, V>> {
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

    fn set_dirty(part: &mut Partition<K, V>, key: K, value: Option<V>) {
        match part.dirty.entry(key) {
            Entry::Occupied(mut e) => *e.get_mut() = value,
            Entry::Vacant(e) => {
                part.order.push(e.key().clone());
                e.insert(value);
            }
        }
    }

    fn write(&self, record: &Record<'_>, key: K, value: Option<V>) -> Result<()> {
        let mut parts = self.parts();
        let parts = &mut *parts;
        let part = self.part_mut(&mut parts.map, record.partition)?;
        if record.offset < part.stored_source {
            return Ok(());
        }
        Self::set_dirty(part, key, value);
        parts.version += 1;
        Ok(())
    }

    /// Type-erased handle for the runtime.
    pub fn runtime(&self) -> Arc<dyn TableRuntime> {
        Arc::new(self.clone())
    }
}

#[cfg(test)]
mod tests;

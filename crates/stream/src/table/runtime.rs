//! How the runtime drives a table whatever its key and value types: the [`TableRuntime`]
//! implementation of [`Table`] (open and close partitions, restore batches, hand the pending
//! changes to the checkpoint and commit them, the copies standby replicas and global tables keep). Typed reads and writes are
//! the parent module's; the commit order is [`crate::checkpoint`]'s.

use super::store::{Change, PartitionStore, StoreIdentity, StoreOffsets};
use super::*;

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
        self.inner.routing.saw_partitions(partitions);
        if let Some(part) = self.parts().map.get(&partition) {
            return part.store.offsets();
        }
        let identity = StoreIdentity {
            app_id: self.inner.app_id.clone(),
            table: self.inner.name.clone(),
            partition,
            partitions,
        };
        // Opened without the table lock, so an assignment opens a table's partitions in
        // parallel (RocksDB's own LOCK file refuses a second open of the same store).
        let store = PartitionStore::open(&self.inner.dir.join(partition.to_string()), &identity)?;
        let offsets = store.offsets()?;
        let mut parts = self.parts();
        if let Some(part) = parts.map.get(&partition) {
            return part.store.offsets();
        }
        parts.map.insert(
            partition,
            Partition {
                store,
                dirty: FastMap::default(),
                order: Vec::new(),
                stored_source: offsets.source.unwrap_or(0),
                epoch: offsets.epoch.unwrap_or(0),
                writer: 0,
                committed: CommittedCopy::Unloaded,
            },
        );
        parts.version += 1;
        Ok(offsets)
    }

    fn offsets(&self, partition: i32) -> Result<StoreOffsets> {
        let mut parts = self.parts();
        self.part_mut(&mut parts.map, partition)?.store.offsets()
    }

    fn close_partition(&self, partition: i32) {
        let mut parts = self.parts();
        if parts.map.remove(&partition).is_some() {
            parts.version += 1;
        }
    }

    fn open_partitions(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self.parts().map.keys().copied().collect();
        v.sort_unstable();
        v
    }

    fn check_change(&self, key: &[u8], value: Option<&[u8]>) -> std::result::Result<(), String> {
        decode_error::<K>("key", key)?;
        match value {
            Some(v) => decode_error::<V>("value", v),
            None => Ok(()),
        }
    }

    fn note_restored(&self, n: u64) {
        self.inner
            .restored
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    fn restore_batch(
        &self,
        partition: i32,
        changes: &[Change],
        offsets: StoreOffsets,
    ) -> Result<()> {
        let mut parts = self.parts();
        let parts = &mut *parts;
        let part = self.part_mut(&mut parts.map, partition)?;
        part.store.commit(changes, offsets)?;
        if !changes.is_empty() {
            // Written behind the committed copy's back: read the store again when next needed.
            part.committed = CommittedCopy::Unloaded;
        }
        if let Some(s) = offsets.source {
            part.stored_source = s;
        }
        if let Some(e) = offsets.epoch {
            part.epoch = e;
        }
        parts.version += 1;
        Ok(())
    }

    fn pending(&self, partition: i32) -> Vec<Change> {
        let parts = self.parts();
        let Some(part) = parts.map.get(&partition) else {
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
        let parts = &mut *parts;
        let part = self.part_mut(&mut parts.map, partition)?;
        part.store.commit(changes, offsets)?;
        // `changes` are the cache's entries serialized (nothing wrote in between), so the
        // committed copy takes the cached values as they are.
        let mut too_large = false;
        if let CommittedCopy::Loaded(map) = &mut part.committed {
            for (k, v) in part.dirty.drain() {
                match v {
                    Some(v) => map.insert(k, v),
                    None => map.remove(&k),
                };
            }
            too_large = map.len() > COMMITTED_COPY_MAX_KEYS;
        }
        if too_large {
            part.committed = CommittedCopy::TooLarge;
        }
        part.dirty.clear();
        part.order.clear();
        if let Some(s) = offsets.source {
            part.stored_source = s;
        }
        if let Some(e) = offsets.epoch {
            part.epoch = e;
        }
        parts.version += 1;
        Ok(())
    }

    fn standby_handle(&self) -> Arc<dyn TableRuntime> {
        Arc::new(self.copy_at(self.inner.dir.clone()))
    }

    fn writer_epoch(&self, partition: i32) -> i64 {
        self.parts().map.get(&partition).map_or(0, |p| p.writer)
    }

    fn confirm_writer(&self, partition: i32, epoch: i64) {
        if let Some(p) = self.parts().map.get_mut(&partition) {
            p.writer = epoch;
        }
    }

    fn entry_count(&self) -> usize {
        self.items_shared().map(|v| v.len()).unwrap_or(0)
    }
}

impl<K: TableKey, V: TableValue> Table<K, V> {
    /// Another handle on this table with no partition open, its stores under `dir`: for
    /// copies kept by following the changelog (a standby's at the owner's own paths, a global
    /// table's at paths of its own).
    fn copy_at(&self, dir: PathBuf) -> Table<K, V> {
        let i = &self.inner;
        Table {
            inner: Arc::new(Inner {
                name: i.name.clone(),
                app_id: i.app_id.clone(),
                source_topic: i.source_topic.clone(),
                changelog_topic: i.changelog_topic.clone(),
                dir,
                parts: Partitions::none_open(),
                routing: i.routing.clone(),
                restored: Default::default(),
            }),
        }
    }

    /// The copy of every partition a global table keeps ([`crate::global`]), in
    /// `{data_dir}/{app_id}/{name}.global`.
    pub(crate) fn global_copy(&self) -> Table<K, V> {
        let dir = self
            .inner
            .dir
            .with_file_name(crate::names::global_copy_dir(&self.inner.name));
        self.copy_at(dir)
    }
}

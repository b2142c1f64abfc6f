//! Whole-key and whole-table reads, outside an agent's record: every partition's copy of a
//! key, one partition's entries, every entry (a snapshot kept until the table changes). Each
//! merges the committed state with the pending writes, as agents see it.

use super::{decode_bytes, Entries, Partition, Table, TableKey, TableValue};
use crate::error::Result;
use std::collections::BTreeMap;
use std::sync::Arc;

impl<K: TableKey, V: TableValue> Table<K, V> {
    /// Every value stored under `key`, one per partition that has it (a table fed by a topic not
    /// keyed by the table key can hold the same key in several partitions).
    pub fn get_all(&self, key: &K) -> Result<Vec<V>> {
        Ok(self.entries_of(key)?.into_iter().map(|(_, v)| v).collect())
    }

    /// [`Table::get_all`] with the partition of each value, by partition.
    pub fn entries_of(&self, key: &K) -> Result<Vec<(i32, V)>> {
        let mut parts = self.parts();
        let mut out = Vec::new();
        for (partition, part) in parts.map.iter_mut() {
            if let Some(v) = Self::lookup(part, key)? {
                out.push((*partition, v));
            }
        }
        out.sort_by_key(|(p, _)| *p);
        Ok(out)
    }

    /// All entries of one open partition (store merged with pending writes), sorted by key.
    pub fn partition_items(&self, partition: i32) -> Result<Vec<(K, V)>> {
        let mut parts = self.parts();
        match parts.map.get_mut(&partition) {
            Some(part) => Self::merged(part),
            None => Ok(Vec::new()),
        }
    }

    fn merged(part: &mut Partition<K, V>) -> Result<Vec<(K, V)>> {
        let mut merged: BTreeMap<K, V> =
            match Self::committed_copy(&part.store, &mut part.committed)? {
                Some(map) => map.clone(),
                None => {
                    let mut m = BTreeMap::new();
                    for (kb, vb) in part.store.items()? {
                        if let (Some(k), Some(v)) = (decode_bytes::<K>(&kb), decode_bytes::<V>(&vb))
                        {
                            m.insert(k, v);
                        }
                    }
                    m
                }
            };
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
        Ok(self.items_shared()?.as_ref().clone())
    }

    /// [`Table::items`] without copying: the same snapshot is returned until the table
    /// changes.
    pub fn items_shared(&self) -> Result<Entries<K, V>> {
        let mut parts = self.parts();
        let parts = &mut *parts;
        if let Some((version, snapshot)) = &parts.snapshot {
            if *version == parts.version {
                return Ok(snapshot.clone());
            }
        }
        let mut out = Vec::new();
        for (p, part) in parts.map.iter_mut() {
            out.extend(Self::merged(part)?.into_iter().map(|(k, v)| (*p, k, v)));
        }
        out.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        let snapshot = Arc::new(out);
        parts.snapshot = Some((parts.version, snapshot.clone()));
        Ok(snapshot)
    }
}

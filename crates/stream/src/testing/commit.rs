//! The driver's checkpoint and crash: the steps of [`crate::checkpoint`] with the
//! driver's in-memory topics in place of Kafka (output records, such as closed windows, go
//! with the changelogs), and a restart that keeps only what a checkpoint completed.

use super::TestDriver;
use crate::error::Result;
use crate::names::HEADER_SOURCE_OFFSET;
use crate::table::route::partition_for;
use crate::table::store::{Change, StoreOffsets};

impl TestDriver {
    /// Commits what was processed, in the worker's order: each open table partition's cached
    /// changes go to its changelog (with the source-offset header), the outputs are flushed,
    /// then each store is written with its changes and offsets.
    pub fn checkpoint(&mut self) -> Result<()> {
        let mut prepared = Vec::new();
        for table in &self.tables {
            for p in table.open_partitions() {
                let tp = (table.source_topic().to_string(), p);
                let Some(&source) = self.positions.get(&tp) else {
                    continue;
                };
                let changes = table.pending(p);
                let header = (
                    HEADER_SOURCE_OFFSET.to_string(),
                    source.to_string().into_bytes(),
                );
                for (k, v) in &changes {
                    self.outputs.send(
                        table.changelog_topic(),
                        p,
                        Some(k.clone()),
                        v.clone(),
                        vec![header.clone()],
                    );
                }
                prepared.push((table.clone(), p, source, changes));
            }
        }
        for e in self.outbox.take() {
            let n = self.partition_count(&e.topic);
            self.outputs.send(
                &e.topic,
                partition_for(&e.key, n),
                Some(e.key),
                Some(e.value),
                Vec::new(),
            );
        }
        self.outputs.flush();
        for (table, p, source, changes) in prepared {
            let changelog = if changes.is_empty() {
                None
            } else {
                self.outputs.last_offset(table.changelog_topic(), p)
            };
            let offsets = StoreOffsets {
                source: Some(source),
                changelog,
                epoch: None,
            };
            table.commit_partition(p, &changes, offsets)?;
        }
        self.committed = self.positions.clone();
        self.since_checkpoint = 0;
        self.last_checkpoint_ms = self.clock_ms;
        self.follow_globals()
    }

    /// Applies to each global copy the flushed changelog records it has not taken yet, as a
    /// worker's follower does once a checkpoint is committed.
    fn follow_globals(&mut self) -> Result<()> {
        for g in &self.globals {
            let topic = g.changelog_topic();
            let n = self.partitions.get(g.source_topic()).copied().unwrap_or(1);
            for p in 0..n {
                let Some(last) = self.outputs.last_offset(topic, p) else {
                    continue;
                };
                let after = g.offsets(p)?.changelog;
                if after.is_some_and(|a| a >= last) {
                    continue;
                }
                let changes: Vec<Change> = self
                    .outputs
                    .flushed
                    .iter()
                    .filter(|o| o.topic == topic && o.partition == p)
                    .filter(|o| after.is_none_or(|a| o.offset > a))
                    .filter_map(|o| Some((o.key.clone()?, o.value.clone())))
                    .collect();
                let offsets = StoreOffsets {
                    source: None,
                    changelog: Some(last),
                    epoch: None,
                };
                g.restore_batch(p, &changes, offsets)?;
            }
        }
        Ok(())
    }

    /// A kill -9 and a restart: the tables' write caches and the outputs not yet flushed are
    /// lost, the stores keep their last checkpoint, and every source partition is read again
    /// from the offset its stores hold up to the end of what was fed.
    pub fn crash(&mut self) -> Result<()> {
        for t in &self.tables {
            for p in t.open_partitions() {
                t.close_partition(p);
            }
        }
        self.outputs.pending.clear();
        self.outbox.clear();
        self.timers.reset();
        self.since_checkpoint = 0;
        self.last_checkpoint_ms = self.clock_ms;
        self.open_tables()?;
        // Source partitions no table reads resume at the offset the last checkpoint committed
        // to the group.
        let mut fed: Vec<_> = self.topics.keys().cloned().collect();
        fed.sort();
        for tp in fed {
            let committed = self.committed.get(&tp).copied().unwrap_or(0);
            self.positions.entry(tp.clone()).or_insert(committed);
            self.catch_up(&tp)?;
        }
        self.fire_timers()
    }
}

//! Windowed tables: counts (or any value) per key per time window, Kafka Streams' semantics.
//!
//! - Tumbling windows of `size`, or hopping windows of `size` advancing by `step`; a record
//!   belongs to every window `[start, start + size)` that contains its event time (the record
//!   timestamp).
//! - Stream time is the largest event time seen in the partition. A record whose window has
//!   closed (`end + grace <= stream time`) is late: dropped and counted, never added.
//! - Windows are kept for `retention` after their end (at least `grace`), then deleted from the
//!   store and the changelog (tombstones), checked each time stream time passes a step.
//! - Stream time is itself kept in a table (same source, same checkpoint), so re-processing
//!   after a crash drops exactly the records the first run dropped.
//! - Optionally each window is emitted once to a topic when it closes ([`crate::emit`],
//!   declared with [`crate::App::emit_final`]); the mark of what was emitted is kept in the
//!   same stream-time table.

use crate::emit::{ClosedWindow, EmitFinal};
use crate::error::{Result, StreamError};
use crate::record::Record;
use crate::table::{Table, TableKey, TableRuntime, TableValue};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Window shape and lifetime, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    pub size_ms: i64,
    pub step_ms: i64,
    pub grace_ms: i64,
    pub retention_ms: i64,
}

fn ms(d: Duration) -> i64 {
    d.as_millis().clamp(1, i64::MAX as u128) as i64
}

impl Windows {
    pub fn tumbling(size: Duration) -> Self {
        Self::hopping(size, size)
    }

    pub fn hopping(size: Duration, step: Duration) -> Self {
        let (size_ms, step_ms) = (ms(size), ms(step).min(ms(size)));
        Self {
            size_ms,
            step_ms,
            grace_ms: 0,
            retention_ms: 0,
        }
    }

    /// How long after a window's end late records are still accepted.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace_ms = grace.as_millis() as i64;
        self
    }

    /// How long after its end a window is kept (never less than the grace period).
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention_ms = retention.as_millis() as i64;
        self
    }

    fn keep_ms(&self) -> i64 {
        self.retention_ms.max(self.grace_ms)
    }

    /// Starts of the windows containing `t`, oldest first.
    pub fn starts(&self, t: i64) -> Vec<i64> {
        self.starts_iter(t).collect()
    }

    /// [`Windows::starts`] without allocating.
    pub fn starts_iter(&self, t: i64) -> impl Iterator<Item = i64> {
        let last = self.latest_start(t);
        // Windows `last - j * step` for j = 0.. while the start is after `t - size`.
        let n = (self.size_ms - (t - last) + self.step_ms - 1) / self.step_ms;
        let step = self.step_ms;
        (0..n).rev().map(move |j| last - j * step)
    }

    /// Start of the newest window containing `t`.
    pub fn latest_start(&self, t: i64) -> i64 {
        t - t.rem_euclid(self.step_ms)
    }
}

/// Key of a windowed table entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WindowKey<K> {
    pub key: K,
    /// Window start, ms since the epoch; the end is `start + size`.
    pub start: i64,
}

const STREAM_TIME: &str = "stream_time";
/// Key (in the stream-time table) of the start of the newest window emitted as closed.
const EMITTED_THROUGH: &str = "emitted_through";

/// A table of values per key per window.
pub struct WindowedTable<K, V> {
    table: Table<WindowKey<K>, V>,
    /// The stream-time key, allocated once.
    time_key: String,
    /// The emitted-through key, allocated once.
    mark_key: String,
    time: Table<String, i64>,
    windows: Windows,
    late: Arc<AtomicU64>,
    /// Where closed windows go, when emitted (shared by the clones, set once).
    emit: Arc<OnceLock<EmitFinal<K, V>>>,
}

impl<K, V> Clone for WindowedTable<K, V> {
    fn clone(&self) -> Self {
        Self {
            table: self.table.clone(),
            time_key: self.time_key.clone(),
            mark_key: self.mark_key.clone(),
            time: self.time.clone(),
            windows: self.windows,
            late: self.late.clone(),
            emit: self.emit.clone(),
        }
    }
}

impl<K: TableKey, V: TableValue> WindowedTable<K, V> {
    /// `table` holds the windows, `time` the per-partition stream time; both must be fed by the
    /// same source topic (use [`crate::App::windowed_table`]).
    pub fn new(table: Table<WindowKey<K>, V>, time: Table<String, i64>, windows: Windows) -> Self {
        Self {
            table,
            time_key: STREAM_TIME.to_string(),
            mark_key: EMITTED_THROUGH.to_string(),
            time,
            windows,
            late: Arc::default(),
            emit: Arc::default(),
        }
    }

    pub(crate) fn set_emit(&self, emit: EmitFinal<K, V>) -> Result<()> {
        let topic = emit.topic.clone();
        self.emit.set(emit).map_err(|_| {
            StreamError::Config(format!(
                "windowed table '{}' already emits its closed windows; not also to '{topic}'",
                self.table.name()
            ))
        })
    }

    /// The topic feeding the table.
    pub fn source_topic(&self) -> &str {
        TableRuntime::source_topic(&self.table)
    }

    pub fn windows(&self) -> Windows {
        self.windows
    }

    /// Records dropped because their window had closed.
    pub fn late_records(&self) -> u64 {
        self.late.load(Ordering::Relaxed)
    }

    /// Applies `f` to the value of every open window of `key` containing the record's time.
    pub fn update(&self, record: &Record<'_>, key: K, f: impl Fn(Option<V>) -> V) -> Result<()> {
        let t = record.timestamp.unwrap_or_else(crate::now_ms);
        let previous = self.time.get(record, &self.time_key)?;
        let stream_time = previous.map_or(t, |p| p.max(t));
        if previous != Some(stream_time) {
            self.time.put(record, self.time_key.clone(), stream_time)?;
        }
        let w = self.windows;
        let open = |start: &i64| {
            let open = start + w.size_ms + w.grace_ms > stream_time;
            if !open {
                self.late.fetch_add(1, Ordering::Relaxed);
            }
            open
        };
        let keys = w.starts_iter(t).filter(open).map(|start| WindowKey {
            key: key.clone(),
            start,
        });
        self.table.update_each(record, keys, f)?;
        if previous != Some(stream_time) {
            if let Some(emit) = self.emit.get() {
                self.emit_closed(record, stream_time, emit)?;
            }
        }
        // Expire when stream time crosses a step boundary.
        let crossed =
            previous.is_some_and(|p| p.div_euclid(w.step_ms) != stream_time.div_euclid(w.step_ms));
        if crossed {
            self.expire(record, stream_time)?;
        }
        Ok(())
    }

    /// Hands the windows of the record's partition that closed since the last call (end plus
    /// grace at or behind `stream_time`) to `emit`, oldest first, and moves the mark on.
    fn emit_closed(
        &self,
        record: &Record<'_>,
        stream_time: i64,
        emit: &EmitFinal<K, V>,
    ) -> Result<()> {
        let w = self.windows;
        // The newest window start s with s + size + grace <= stream time.
        let closed_through = w.latest_start(stream_time - w.size_ms - w.grace_ms);
        let mark = self.time.get(record, &self.mark_key)?;
        if mark.is_some_and(|m| m >= closed_through) {
            return Ok(());
        }
        let mut closed: Vec<(WindowKey<K>, V)> = self
            .table
            .partition_items(record.partition)?
            .into_iter()
            .filter(|(k, _)| k.start <= closed_through && mark.is_none_or(|m| k.start > m))
            .collect();
        closed.sort_by(|a, b| {
            a.0.start
                .cmp(&b.0.start)
                .then_with(|| a.0.key.cmp(&b.0.key))
        });
        for (k, v) in &closed {
            emit.emit(&ClosedWindow {
                key: &k.key,
                start: k.start,
                end: k.start + w.size_ms,
                value: v,
            });
        }
        self.time.put(record, self.mark_key.clone(), closed_through)
    }

    fn expire(&self, record: &Record<'_>, stream_time: i64) -> Result<()> {
        let w = self.windows;
        for (k, _) in self.table.partition_items(record.partition)? {
            if k.start + w.size_ms + w.keep_ms() <= stream_time {
                self.table.delete(record, k)?;
            }
        }
        Ok(())
    }

    /// Every stored window, across partitions, as (partition, key, value) sorted by key; the
    /// same snapshot until the table changes.
    pub fn items_shared(&self) -> Result<crate::table::Entries<WindowKey<K>, V>> {
        self.table.items_shared()
    }

    /// Every stored window, across partitions: (key, start, value).
    pub fn items(&self) -> Result<Vec<(WindowKey<K>, V)>> {
        Ok(self
            .table
            .items()?
            .into_iter()
            .map(|(_, k, v)| (k, v))
            .collect())
    }

    /// The value of `key` in the window starting at `start`.
    pub fn get(&self, key: &K, start: i64) -> Result<Option<V>> {
        Ok(self
            .table
            .get_all(&WindowKey {
                key: key.clone(),
                start,
            })?
            .into_iter()
            .next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_and_hopping_starts() {
        let t = Windows::tumbling(Duration::from_secs(10));
        assert_eq!(t.starts(0), vec![0]);
        assert_eq!(t.starts(9_999), vec![0]);
        assert_eq!(t.starts(10_000), vec![10_000]);
        assert_eq!(t.starts(-1), vec![-10_000]);
        let h = Windows::hopping(Duration::from_secs(15 * 60), Duration::from_secs(5 * 60));
        let m = 60_000;
        assert_eq!(h.starts(7 * m), vec![-5 * m, 0, 5 * m]);
        assert_eq!(h.starts(15 * m), vec![5 * m, 10 * m, 15 * m]);
        assert_eq!(h.latest_start(14 * m), 10 * m);
        // Every window returned contains t, and no other window does.
        for t in [0, 1, 299_999, 300_000, 899_999, 1_234_567] {
            for s in h.starts(t) {
                assert!(s <= t && t < s + h.size_ms);
            }
            assert_eq!(h.starts(t).len(), 3);
        }
    }
}

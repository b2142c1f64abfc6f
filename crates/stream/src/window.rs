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
use crate::record::{At, Record};
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

/// What one record does to its partition's stream time.
struct Step {
    stream_time: i64,
    /// Stream time moved forward (or was first set).
    moved: bool,
    /// It crossed a step boundary: time to expire old windows.
    crossed: bool,
}

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
        let step = self.step(previous, t);
        if step.moved {
            self.time
                .put(record, self.time_key.clone(), step.stream_time)?;
        }
        let keys = self
            .open_starts(t, step.stream_time)
            .map(|start| WindowKey {
                key: key.clone(),
                start,
            });
        self.table.update_each(record, keys, f)?;
        self.after_update(record, &step)
    }

    /// [`WindowedTable::update`] of each `(record position, key)` in order: what an agent
    /// that gathers a batch's writes applies at its end ([`crate::Agent::end_batch`]). The
    /// same windows, late records, emitted and expired windows as one `update` per item (a
    /// record the store already reflects changes nothing), with the stream time read once per
    /// partition and the windows written under one lock between the points where stream time
    /// closes or expires windows. `f` gets the key (not the window) with the window's old
    /// value.
    pub fn update_batch(&self, items: &[(At, K)], f: impl Fn(&K, Option<V>) -> V) -> Result<()> {
        let topic = self.source_topic();
        let f = |k: &WindowKey<K>, old: Option<V>| f(&k.key, old);
        let emitting = self.emit.get().is_some();
        let mut gathered: Vec<(At, WindowKey<K>)> = Vec::with_capacity(items.len());
        for run in items.chunk_by(|a, b| a.0.partition == b.0.partition) {
            let first = run[0].0.record(topic);
            let mut stream_time = self.time.get(&first, &self.time_key)?;
            let mut stored = stream_time;
            // The start of the newest window emitted as closed, when emitting.
            let mut mark = match emitting {
                true => self.time.get(&first, &self.mark_key)?,
                false => None,
            };
            let mut write = |at: At, gathered: &mut Vec<_>, now: i64| -> Result<()> {
                if stored != Some(now) {
                    self.time
                        .put(&at.record(topic), self.time_key.clone(), now)?;
                    stored = Some(now);
                }
                self.table.update_batch(gathered, f)?;
                gathered.clear();
                Ok(())
            };
            // Records the store already reflects change nothing (as in `update`, where the
            // table ignores their writes before it looks at their windows).
            let reflected = self.table.reflected_below(run[0].0.partition);
            for (at, key) in run.iter().filter(|(at, _)| at.offset >= reflected) {
                let t = at.timestamp.unwrap_or_else(crate::now_ms);
                let step = self.step(stream_time, t);
                stream_time = Some(step.stream_time);
                let windows = self.open_starts(t, step.stream_time);
                gathered.extend(windows.map(|start| {
                    let key = key.clone();
                    (*at, WindowKey { key, start })
                }));
                let closes = emitting && step.moved && self.emit_due(mark, step.stream_time);
                if closes || step.crossed {
                    // Emitting and expiring read the windows as this record leaves them.
                    let record = at.record(topic);
                    write(*at, &mut gathered, step.stream_time)?;
                    self.after_update(&record, &step)?;
                    if closes {
                        mark = self.time.get(&record, &self.mark_key)?;
                    }
                }
            }
            if let (Some((at, _)), Some(now)) = (run.last(), stream_time) {
                write(*at, &mut gathered, now)?;
            }
        }
        Ok(())
    }

    /// Where a record at event time `t` takes the partition's stream time from `previous`.
    fn step(&self, previous: Option<i64>, t: i64) -> Step {
        let stream_time = previous.map_or(t, |p| p.max(t));
        let step_ms = self.windows.step_ms;
        Step {
            stream_time,
            moved: previous != Some(stream_time),
            // Windows expire when stream time crosses a step boundary.
            crossed: previous
                .is_some_and(|p| p.div_euclid(step_ms) != stream_time.div_euclid(step_ms)),
        }
    }

    /// Starts of the windows containing `t` still open at `stream_time`; the others are
    /// counted as late and left out.
    fn open_starts(&self, t: i64, stream_time: i64) -> impl Iterator<Item = i64> + '_ {
        let w = self.windows;
        w.starts_iter(t).filter(move |start| {
            let open = start + w.size_ms + w.grace_ms > stream_time;
            if !open {
                self.late.fetch_add(1, Ordering::Relaxed);
            }
            open
        })
    }

    /// After a record's windows were written: emits the windows its stream time closed (when
    /// emitting) and expires old ones (when it crossed a step).
    fn after_update(&self, record: &Record<'_>, step: &Step) -> Result<()> {
        if step.moved {
            if let Some(emit) = self.emit.get() {
                self.emit_closed(record, step.stream_time, emit)?;
            }
        }
        if step.crossed {
            self.expire(record, step.stream_time)?;
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
        let mark = self.time.get(record, &self.mark_key)?;
        if !self.emit_due(mark, stream_time) {
            return Ok(());
        }
        let closed_through = self.closed_through(stream_time);
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

    /// The newest window start s with s + size + grace <= stream time.
    fn closed_through(&self, stream_time: i64) -> i64 {
        let w = self.windows;
        w.latest_start(stream_time - w.size_ms - w.grace_ms)
    }

    /// Whether windows closed since `mark` (the newest start emitted) at `stream_time`.
    fn emit_due(&self, mark: Option<i64>, stream_time: i64) -> bool {
        mark.is_none_or(|m| m < self.closed_through(stream_time))
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
    use crate::emit::Outbox;
    use crate::table::store::StoreOffsets;
    use crate::table::TableSpec;

    /// A windowed table in `dir` over two open partitions (hopping, 1 s every 0.5 s, grace
    /// 0.3 s, kept 2 s), emitting its closed windows to an outbox of its own when `emitting`.
    fn counting(
        dir: &std::path::Path,
        emitting: bool,
    ) -> (WindowedTable<String, i64>, Arc<Outbox>) {
        let spec = |name: &str| TableSpec {
            name: name.into(),
            source_topic: "src".into(),
            changelog_topic: None,
        };
        let table = Table::new("app", dir, spec("w"));
        let time = Table::new("app", dir, spec("w-time"));
        for p in 0..2 {
            table.open_partition(p, 2).unwrap();
            time.open_partition(p, 2).unwrap();
        }
        let windows = Windows::hopping(Duration::from_millis(1000), Duration::from_millis(500))
            .grace(Duration::from_millis(300))
            .retention(Duration::from_millis(2000));
        let w = WindowedTable::new(table, time, windows);
        let outbox = Arc::new(Outbox::default());
        if !emitting {
            return (w, outbox);
        }
        w.set_emit(EmitFinal {
            topic: "closed".into(),
            outbox: outbox.clone(),
            encode: Arc::new(|c: &ClosedWindow<'_, String, i64>| {
                (
                    c.key.as_bytes().to_vec(),
                    format!("{} {} {}", c.start, c.end, c.value).into_bytes(),
                )
            }),
        })
        .unwrap();
        (w, outbox)
    }

    /// Commits both tables' partitions: the store then reflects source offsets below `next`.
    fn commit(w: &WindowedTable<String, i64>, next: [i64; 2]) {
        let tables: [&dyn TableRuntime; 2] = [&w.table, &w.time];
        for t in tables {
            for p in 0..2 {
                let changes = t.pending(p);
                let source = Some(next[p as usize]);
                let offsets = StoreOffsets {
                    source,
                    ..StoreOffsets::default()
                };
                t.commit_partition(p, &changes, offsets).unwrap();
            }
        }
    }

    /// Everything observable: the windows, the late count, the pending changelog of both
    /// tables, the emitted windows.
    fn state(w: &WindowedTable<String, i64>, outbox: &Outbox) -> impl PartialEq + std::fmt::Debug {
        let pending: Vec<_> = (0..2)
            .map(|p| (w.table.pending(p), w.time.pending(p)))
            .collect();
        let emitted: Vec<_> = outbox
            .take()
            .into_iter()
            .map(|e| (e.topic, e.key, e.value, e.timestamp))
            .collect();
        (w.items().unwrap(), w.late_records(), pending, emitted)
    }

    /// Where two states' debug texts part (they are long), with some context.
    fn divergence(a: &impl std::fmt::Debug, b: &impl std::fmt::Debug) -> String {
        let (a, b) = (format!("{a:?}"), format!("{b:?}"));
        let at = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
        let around = |s: &str| {
            s.get(at.saturating_sub(200)..(at + 200).min(s.len()))
                .map(str::to_string)
        };
        format!("per record …{:?}… batched …{:?}…", around(&a), around(&b))
    }

    #[test]
    fn a_batch_does_what_one_update_per_record_does() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut draw = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..20 {
            // Records of two partitions in runs, event times drifting forward with jumps
            // back (some beyond the grace period), so windows close, are emitted and expire.
            let mut items: Vec<(At, String)> = Vec::new();
            let (mut next, mut clock) = ([0i64; 2], 10_000i64);
            while items.len() < 400 {
                let partition = draw(2) as i32;
                for _ in 0..1 + draw(12) {
                    clock += draw(120) as i64;
                    let timestamp = clock - draw(900) as i64;
                    let offset = next[partition as usize];
                    next[partition as usize] += 1;
                    let at = At {
                        partition,
                        offset,
                        timestamp: Some(timestamp),
                    };
                    items.push((at, format!("k{}", draw(5))));
                }
            }
            // The first half, committed; then everything again from a quarter in (what a
            // restart re-reads: the records the store reflects change nothing).
            let (half, quarter) = (items.len() / 2, items.len() / 4);
            let committed = [0, 1].map(|p| {
                let last = items[..half].iter().rev().find(|(a, _)| a.partition == p);
                last.map_or(0, |(a, _)| a.offset + 1)
            });
            let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
            // Half the rounds emit closed windows (emitting reads the windows mid-batch).
            let emitting = round % 2 == 0;
            let (one, one_out) = counting(dirs[0].path(), emitting);
            let (batched, batched_out) = counting(dirs[1].path(), emitting);
            let inc = |c: Option<i64>| c.unwrap_or(0) + 1;
            for (i, part) in [&items[..half], &items[quarter..]].into_iter().enumerate() {
                for (at, key) in part {
                    one.update(&at.record("src"), key.clone(), inc).unwrap();
                }
                let mut rest = part;
                while !rest.is_empty() {
                    let (batch, after) = rest.split_at((1 + draw(60) as usize).min(rest.len()));
                    batched.update_batch(batch, |_, c| inc(c)).unwrap();
                    rest = after;
                }
                let (a, b) = (state(&one, &one_out), state(&batched, &batched_out));
                assert!(a == b, "round {round}, part {i}: {}", divergence(&a, &b));
                if i == 0 {
                    commit(&one, committed);
                    commit(&batched, committed);
                }
            }
            assert!(
                one.late_records() > 0,
                "round {round}: no late record drawn"
            );
        }
    }

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

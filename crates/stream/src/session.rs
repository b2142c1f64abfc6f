//! Session windows (Kafka Streams' `SessionWindows`): the records of a key that follow each
//! other by at most `gap` of event time form one session.
//!
//! - A session is `[start, end]`, the event times of its first and last record. A record at
//!   `t` joins every session of its key with `start - gap <= t <= end + gap`; when it bridges
//!   several they become one, their values combined with the caller's `merge` before the
//!   record is added.
//! - Stream time is the largest event time seen in the partition, kept in a table as for
//!   [`crate::window`]. A record whose session (after merging) ends `grace` or more before
//!   stream time is late: dropped and counted, never added (Kafka Streams' rule).
//! - A session is final once `end + gap + grace` is behind stream time: no record that is not
//!   late can reach it. Final sessions are kept `retention` longer, then deleted, checked each
//!   time stream time passes a multiple of the gap.
//! - A key's sessions are one table entry (a list by start), so an update reads and writes
//!   one row, and the changelog carries each key's list. Re-processing after a crash drops
//!   and merges exactly as the first run did (stream time is checkpointed with the sessions).

use crate::error::Result;
use crate::record::Record;
use crate::table::{Table, TableKey, TableValue};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Session shape and lifetime, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sessions {
    pub gap_ms: i64,
    pub grace_ms: i64,
    pub retention_ms: i64,
}

impl Sessions {
    /// Sessions closed by `gap` without a record.
    pub fn with_gap(gap: Duration) -> Self {
        Self {
            gap_ms: (gap.as_millis() as i64).max(1),
            grace_ms: 0,
            retention_ms: 0,
        }
    }

    /// How far behind stream time a session may end and still take records.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace_ms = grace.as_millis() as i64;
        self
    }

    /// How long a final session is kept before it is deleted.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention_ms = retention.as_millis() as i64;
        self
    }

    /// Whether `s` can still change at `stream_time`.
    pub fn is_final<V>(&self, s: &Session<V>, stream_time: i64) -> bool {
        s.end + self.gap_ms + self.grace_ms < stream_time
    }
}

/// One session of a key: its first and last record's event times and its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session<V> {
    pub start: i64,
    pub end: i64,
    pub value: V,
}

const STREAM_TIME: &str = "stream_time";

/// A table of sessions per key ([`crate::App::session_table`]).
pub struct SessionTable<K, V> {
    table: Table<K, Vec<Session<V>>>,
    time: Table<String, i64>,
    /// The stream-time key, allocated once.
    time_key: String,
    sessions: Sessions,
    late: Arc<AtomicU64>,
}

impl<K, V> Clone for SessionTable<K, V> {
    fn clone(&self) -> Self {
        Self {
            table: self.table.clone(),
            time: self.time.clone(),
            time_key: self.time_key.clone(),
            sessions: self.sessions,
            late: self.late.clone(),
        }
    }
}

impl<K: TableKey, V: TableValue> SessionTable<K, V> {
    /// `table` holds each key's sessions, `time` the per-partition stream time; both fed by
    /// the same source topic.
    pub(crate) fn new(
        table: Table<K, Vec<Session<V>>>,
        time: Table<String, i64>,
        sessions: Sessions,
    ) -> Self {
        Self {
            table,
            time,
            time_key: STREAM_TIME.to_string(),
            sessions,
            late: Arc::default(),
        }
    }

    pub fn sessions_config(&self) -> Sessions {
        self.sessions
    }

    /// Records dropped as late.
    pub fn late_records(&self) -> u64 {
        self.late.load(Ordering::Relaxed)
    }

    /// Adds the record to its key's session: `add` takes the session's value (`None` for a
    /// new session) and returns the new one; `merge` combines two sessions' values when the
    /// record bridges them (older first).
    pub fn update(
        &self,
        record: &Record<'_>,
        key: K,
        add: impl Fn(Option<V>) -> V,
        merge: impl Fn(V, V) -> V,
    ) -> Result<()> {
        let t = record.timestamp.unwrap_or_else(crate::now_ms);
        let previous = self.time.get(record, &self.time_key)?;
        let stream_time = previous.map_or(t, |p| p.max(t));
        if previous != Some(stream_time) {
            self.time.put(record, self.time_key.clone(), stream_time)?;
        }
        let gap = self.sessions.gap_ms;
        let list = self.table.get(record, &key)?.unwrap_or_default();
        let (near, mut rest): (Vec<_>, Vec<_>) = list
            .into_iter()
            .partition(|s| s.start - gap <= t && t <= s.end + gap);
        let start = near.iter().map(|s| s.start).fold(t, i64::min);
        let end = near.iter().map(|s| s.end).fold(t, i64::max);
        if end + self.sessions.grace_ms < stream_time {
            self.late.fetch_add(1, Ordering::Relaxed);
        } else {
            let merged = near.into_iter().map(|s| s.value).reduce(&merge);
            let value = add(merged);
            let at = rest.partition_point(|s| s.start < start);
            rest.insert(at, Session { start, end, value });
            self.table.put(record, key, rest)?;
        }
        let crossed = previous.is_some_and(|p| p.div_euclid(gap) != stream_time.div_euclid(gap));
        if crossed {
            self.expire(record, stream_time)?;
        }
        Ok(())
    }

    /// Deletes the sessions of the record's partition kept `retention` past final.
    fn expire(&self, record: &Record<'_>, stream_time: i64) -> Result<()> {
        let horizon = stream_time - self.sessions.retention_ms;
        for (key, list) in self.table.partition_items(record.partition)? {
            let n = list.len();
            let kept: Vec<Session<V>> = list
                .into_iter()
                .filter(|s| !self.sessions.is_final(s, horizon))
                .collect();
            match kept.len() {
                0 => self.table.delete(record, key)?,
                k if k < n => self.table.put(record, key, kept)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// The sessions of `key`, across partitions, by start.
    pub fn sessions(&self, key: &K) -> Result<Vec<Session<V>>> {
        let mut all: Vec<Session<V>> = self.table.get_all(key)?.into_iter().flatten().collect();
        all.sort_by_key(|s| s.start);
        Ok(all)
    }

    /// Every stored session, as (key, session), by key then start.
    pub fn items(&self) -> Result<Vec<(K, Session<V>)>> {
        let mut all: Vec<(K, Session<V>)> = self
            .table
            .items()?
            .into_iter()
            .flat_map(|(_, k, list)| list.into_iter().map(move |s| (k.clone(), s)))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.start.cmp(&b.1.start)));
        Ok(all)
    }
}

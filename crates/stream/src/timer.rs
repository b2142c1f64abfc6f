//! Timers: callbacks an app runs on a schedule instead of per record, for state that changes
//! with time passing rather than with a record arriving (Faust's `app.timer`, Kafka Streams'
//! punctuators).
//!
//! - [`Schedule::WallClock`]: every `interval` of real time (Faust's `app.timer(interval)`).
//! - [`Schedule::StreamTime`]: every time stream time crosses a multiple of `interval` (Kafka
//!   Streams' `PunctuationType.STREAM_TIME`). Stream time here is the largest event time
//!   (record timestamp) this worker has seen on the timer's topic, across the partitions it
//!   owns: a partition that receives little (a topic keyed by timestamp puts each instant's
//!   records in one partition) is not held back by it. It only moves with records: no record,
//!   no tick, and it is not kept across restarts (the first record after a start fires once).
//!
//! A timer is declared on a source topic and runs once per partition of that topic this
//! worker owns, on the poll thread between batches: it never races the agents on a table,
//! and it stops on a partition when the partition goes to another worker. Its callback gets a
//! [`Tick`]; table writes made with [`Tick::record`] go to the partition's write cache and are
//! checkpointed (changelog, store, offsets) exactly like an agent's writes, so a crash loses
//! them only with the records processed since the last checkpoint. A partition's timers start
//! once it has a position (it was resumed from a checkpoint or has had its first record).
//! Write callbacks so that running one twice, or late, does no harm: a restart re-runs the
//! schedule from the records read again, and wall-clock ticks are not replayed.
//!
//! An error of kind [`crate::ErrorKind::Data`] from a callback is logged and the schedule goes
//! on; any other stops the worker, as from an agent.

use crate::app::App;
use crate::error::{ErrorKind, Result};
use crate::record::Record;
use std::collections::HashMap;
use std::time::Duration;

/// When a timer fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every interval of wall-clock time (the first one interval after the partition is seen).
    WallClock(Duration),
    /// Every time the topic's stream time crosses a multiple of the interval (and once at the
    /// first record after a start).
    StreamTime(Duration),
}

impl Schedule {
    fn interval_ms(&self) -> i64 {
        let d = match self {
            Schedule::WallClock(d) | Schedule::StreamTime(d) => d,
        };
        d.as_millis().clamp(1, i64::MAX as u128) as i64
    }
}

/// One firing of a timer on one partition.
pub struct Tick<'a> {
    /// The timer's source topic.
    pub topic: &'a str,
    pub partition: i32,
    /// Wall-clock ms since the epoch for [`Schedule::WallClock`]; the stream time (event
    /// time) for [`Schedule::StreamTime`].
    pub time_ms: i64,
    record: Record<'a>,
}

impl<'a> Tick<'a> {
    /// A record without key or value standing for this tick, at the partition's next offset
    /// and with `time_ms` as its timestamp: pass it to table reads and writes
    /// ([`crate::Table::get`], [`crate::Table::put`], ...), which then go to this partition's
    /// write cache. [`crate::Table::partition_items`] with [`Tick::partition`] lists the
    /// partition's entries.
    pub fn record(&self) -> &Record<'a> {
        &self.record
    }
}

type Callback = Box<dyn FnMut(&Tick<'_>) -> Result<()> + Send>;

/// A declared timer and where its schedule stands per partition.
struct Timer {
    topic: String,
    schedule: Schedule,
    callback: Callback,
    /// Wall clock: the next due time. Stream time: the last interval number fired.
    due: HashMap<i32, i64>,
}

/// An app's timers and the stream time of their topics (owned by the poll loop, or by the
/// test driver).
#[derive(Default)]
pub(crate) struct Timers {
    timers: Vec<Timer>,
    stream_time: HashMap<String, i64>,
}

/// A partition a timer may run on: (topic, partition, next offset to process).
pub(crate) type Owned = (String, i32, i64);

impl Timers {
    pub(crate) fn add(
        &mut self,
        topic: String,
        schedule: Schedule,
        callback: impl FnMut(&Tick<'_>) -> Result<()> + Send + 'static,
    ) {
        self.timers.push(Timer {
            topic,
            schedule,
            callback: Box::new(callback),
            due: HashMap::new(),
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.timers.is_empty()
    }

    /// Whether any timer runs on `topic`.
    pub(crate) fn on_topic(&self, topic: &str) -> bool {
        self.timers.iter().any(|t| t.topic == topic)
    }

    /// A record of `topic` at event time `timestamp` was processed.
    pub(crate) fn observe(&mut self, topic: &str, timestamp: i64) {
        match self.stream_time.get_mut(topic) {
            Some(t) => *t = (*t).max(timestamp),
            None => {
                self.stream_time.insert(topic.to_string(), timestamp);
            }
        }
    }

    /// Forgets every schedule and stream time (a restart).
    pub(crate) fn reset(&mut self) {
        self.stream_time.clear();
        for t in &mut self.timers {
            t.due.clear();
        }
    }

    /// The stream time of `topic` (largest event time seen), if any record was seen.
    pub(crate) fn stream_time(&self, topic: &str) -> Option<i64> {
        self.stream_time.get(topic).copied()
    }

    /// Runs every timer that is due on the partitions in `owned`, in declaration order;
    /// returns how many callbacks ran (their writes wait for a checkpoint). Forgets the
    /// schedule of partitions not in `owned`.
    pub(crate) fn fire(&mut self, wall_ms: i64, owned: &[Owned]) -> Result<u64> {
        let mut fired = 0;
        for timer in &mut self.timers {
            let interval = timer.schedule.interval_ms();
            timer
                .due
                .retain(|p, _| owned.iter().any(|o| o.0 == timer.topic && o.1 == *p));
            for (topic, partition, next) in owned.iter().filter(|o| o.0 == timer.topic) {
                let time_ms = match timer.schedule {
                    Schedule::WallClock(_) => {
                        let due = timer.due.entry(*partition).or_insert(wall_ms + interval);
                        if wall_ms < *due {
                            continue;
                        }
                        *due = wall_ms + interval;
                        wall_ms
                    }
                    Schedule::StreamTime(_) => {
                        let Some(st) = self.stream_time.get(topic).copied() else {
                            continue;
                        };
                        let n = st.div_euclid(interval);
                        if timer.due.get(partition).is_some_and(|last| *last >= n) {
                            continue;
                        }
                        timer.due.insert(*partition, n);
                        st
                    }
                };
                let tick = Tick {
                    topic,
                    partition: *partition,
                    time_ms,
                    record: Record {
                        topic,
                        partition: *partition,
                        offset: *next,
                        timestamp: Some(time_ms),
                        key: None,
                        payload: None,
                    },
                };
                fired += 1;
                if let Err(e) = (timer.callback)(&tick) {
                    if e.kind() != ErrorKind::Data {
                        return Err(e);
                    }
                    tracing::warn!(topic = %topic, partition, error = %e, "timer callback failed; the schedule goes on");
                }
            }
        }
        Ok(fired)
    }
}

impl App {
    /// Runs `callback` on `schedule` for every partition of `topic` this worker owns (see
    /// the module docs of [`crate::timer`]): Faust's `app.timer` with
    /// [`Schedule::WallClock`], Kafka Streams' stream-time punctuator with
    /// [`Schedule::StreamTime`].
    pub fn timer(
        &mut self,
        topic: &str,
        schedule: Schedule,
        callback: impl FnMut(&Tick<'_>) -> Result<()> + Send + 'static,
    ) {
        self.timers.add(topic.to_string(), schedule, callback);
    }
}

//! Rebuilding a table partition from its changelog.
//!
//! The store holds (data, source offset S, changelog offset C) written together. The group's
//! committed source offset X may be ahead of S when another worker processed the partition
//! meanwhile (or the local store is older than the log, or another table's store of the same
//! source partition got further: the caller passes the furthest as X). The partition is
//! brought to `target = max(S, X)` by replaying the changelog after C, applying only records whose
//! source-offset header is at or below `target`: records beyond it came from a checkpoint that
//! never completed, and re-processing the source will write them again. Changelog values are
//! absolute, so replaying a record twice changes nothing. The source resumes at `target`,
//! unless no table's committed changelog shows it and a record of a transaction that did not
//! commit claims it: then where the tables are ([`tail`]: a broker that kept an aborted
//! transaction's offsets as the group's).
//!
//! Writer epochs fence zombies. A worker the group removed (it missed a rebalance) may still
//! flush one checkpoint's changelog records after another worker took its partitions over;
//! landing after the new owner's records, their older values would win. Every owner's
//! restore therefore proposes a writer epoch above every epoch it read and above the clock in
//! milliseconds ([`owner_epoch`]), and a replay skips any record whose epoch is below one it
//! has already seen. The epoch counts only once the group confirmed this worker as the owner,
//! after the restore (the rebalance code commits the restored offsets first): a worker frozen
//! during a rebalance may wake and restore for an assignment the group has already given to
//! another worker, and the epoch it would take then is above the rightful owner's. Such an
//! epoch is never written anywhere: the store keeps only the highest epoch read from the
//! changelog (and, after each committed checkpoint, the confirmed epoch its records carry).
//! So a later owner's epoch, taken after the group moved on from the last confirmed one, is
//! always above it (one clock: the workers' clocks are assumed to agree to within a
//! rebalance). A record without the header (written before the epochs existed, or by another
//! tool) is never skipped for it. A warm restart with nothing after C
//! reads no changelog record at all, so its cost does not grow with the changelog.

mod batch;
mod parallel;
mod run;
mod tail;

use crate::config::KafkaConfig;
use crate::error::{Result, StreamError};
use crate::kafka::watermarks;
use crate::names;
use crate::sensor::Status;
use crate::table::store::StoreOffsets;
use crate::table::TableRuntime;
pub use batch::RestoreReport;
use batch::{Pending, Skipped};
pub use parallel::parallel_map;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::ClientContext;
use rdkafka::{Offset, TopicPartitionList};
use run::{log_done, Run, Taken};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
pub use tail::Unread;

/// How long a restore may go without receiving a record before it is reported as stalled.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);
const BATCH: usize = 20_000;

/// Reads changelog partitions. One per worker, reused across restores.
pub struct Restorer {
    consumer: BaseConsumer<RestoreContext>,
    /// Watermarks fetched ahead by [`Restorer::prefetch_watermarks`], taken by `restore`.
    prefetched: std::sync::Mutex<HashMap<(String, i32), (i64, i64)>>,
    /// The restore consumer's configuration, for the `read_uncommitted` reader [`tail`] makes
    /// when a restore needs it.
    config: rdkafka::ClientConfig,
    uncommitted: OnceLock<BaseConsumer<RestoreContext>>,
}

/// How [`Restorer::replay`] treats a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// The owner's restore at assignment: everything up to the committed offset.
    Restore,
    /// A standby copy's catch-up: up to the first checkpoint not committed yet.
    Follow,
}

/// The epoch an owner writes with after reading up to `seen` (once the group confirms it):
/// above it and above the clock.
fn owner_epoch(seen: i64) -> i64 {
    seen.saturating_add(1).max(crate::now_ms())
}

/// Client context of the restore consumer: the end-of-partition events it asks for are how a
/// restore knows it is done, not errors to log.
pub struct RestoreContext;

impl ClientContext for RestoreContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let eof = matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if !eof {
            tracing::error!(%error, reason, "restore consumer error");
        }
    }
}

impl ConsumerContext for RestoreContext {}

impl Restorer {
    pub fn new(kafka: &KafkaConfig, app_id: &str) -> Result<Self> {
        // The end of a changelog is where the consumer reports EOF: the high watermark, or
        // for read_committed the last stable offset (transaction markers occupy offsets but
        // are never delivered, so counting up to the high watermark could wait forever).
        let mut config = kafka.restore_consumer(&names::restore_group(app_id));
        config.set("enable.partition.eof", "true");
        let consumer: BaseConsumer<RestoreContext> = config
            .create_with_context(RestoreContext)
            .map_err(StreamError::kafka("create restore consumer"))?;
        Ok(Self {
            consumer,
            prefetched: Default::default(),
            config,
            uncommitted: OnceLock::new(),
        })
    }

    /// Fetches the watermarks of these changelog partitions concurrently, for the `restore`
    /// calls that follow (an assignment of many partitions otherwise waits for one round trip
    /// after another). Failures are left for `restore` to meet and report.
    pub fn prefetch_watermarks(&self, partitions: &[(String, i32)]) {
        let marks = parallel_map(partitions, |(t, p)| watermarks(&self.consumer, t, *p).ok());
        let mut cache = self.prefetched.lock().unwrap_or_else(|p| p.into_inner());
        // Whatever an earlier assignment fetched and did not use is out of date now.
        cache.clear();
        for (k, m) in partitions.iter().zip(marks) {
            if let Some(m) = m {
                cache.insert(k.clone(), m);
            }
        }
    }

    /// Brings `table`'s open `partition` up to `max(store offset, committed)`. Returns what it
    /// read, and the source offset the partition's changelog shows the table now reflects
    /// (which the store keeps); where the source resumes is [`Restorer::resume_at`]'s.
    ///
    /// [`Replay::Follow`] is a standby's catch-up: it stops before the first record of a
    /// checkpoint beyond `committed` instead of reading past it. Such a checkpoint may still
    /// complete (its owner commits the offsets a moment later): the next catch-up, or the
    /// restore of whoever takes the partition over, must still find its records after the
    /// store's changelog offset. It logs quietly: standbys catch up every few hundred ms.
    pub fn replay(
        &self,
        table: &dyn TableRuntime,
        partition: i32,
        committed: Option<i64>,
        status: &Status,
        mode: Replay,
    ) -> Result<RestoreReport> {
        let follow = mode == Replay::Follow;
        let topic = table.changelog_topic().to_string();
        let offsets = table.offsets(partition)?;
        let stored = offsets.source.unwrap_or(0);
        let target = committed.unwrap_or(0).max(stored);
        let mut report = RestoreReport {
            source_offset: stored,
            epoch: offsets.epoch.unwrap_or(0),
            ..Default::default()
        };
        // The owner proposes its epoch once everything written before is read; the store
        // keeps what was read.
        let propose = |report: &mut RestoreReport| {
            if !follow {
                report.owner_epoch = owner_epoch(report.epoch);
            }
        };
        let Some((start, high)) = self.range_to_read(table, partition, &topic, offsets, target)
        else {
            propose(&mut report);
            table.restore_batch(
                partition,
                &[],
                StoreOffsets {
                    source: Some(report.source_offset),
                    changelog: None,
                    epoch: Some(report.epoch),
                },
            )?;
            return Ok(report);
        };
        let run = Run {
            table,
            partition,
            topic: &topic,
            target,
            follow,
            status,
            start,
            high,
            began: Instant::now(),
        };
        self.begin(&run)?;
        let (next, mut batch) = self.read_changelog(&run, &mut report)?;
        table.note_restored(report.read);
        let _ = self.consumer.unassign();
        if !follow {
            // Offsets that carry no record for a reader (transaction markers, records of
            // aborted transactions, compacted-away records) count as restored too, so the
            // progress ends at its total.
            let gaps = ((next.max(high) - start) as u64).saturating_sub(report.read);
            status.restore_done.fetch_add(gaps, Ordering::Relaxed);
            if next < high {
                report.unread = Some(Unread { from: next, high });
            }
        }
        let changes = batch.take(table, Skipped::new(&topic, partition, status), &mut report);
        propose(&mut report);
        table.restore_batch(
            partition,
            &changes,
            StoreOffsets {
                source: Some(report.source_offset),
                changelog: Some(next - 1),
                epoch: Some(report.epoch),
            },
        )?;
        log_done(&run, &report);
        Ok(report)
    }

    /// Announces `run` and assigns the changelog partition at `run.start`.
    fn begin(&self, run: &Run<'_>) -> Result<()> {
        run.announce();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(run.topic, run.partition, Offset::Offset(run.start))
            .map_err(StreamError::kafka("assign changelog"))?;
        self.consumer
            .assign(&tpl)
            .map_err(StreamError::kafka("assign changelog"))?;
        Ok(())
    }

    /// The changelog offsets `[start, high)` a replay must read, or `None` when there is
    /// nothing to read: the changelog cannot be read (local state is kept as is), or it holds
    /// nothing after the store's changelog offset. A changelog truncated before that offset is
    /// read from what remains.
    fn range_to_read(
        &self,
        table: &dyn TableRuntime,
        partition: i32,
        topic: &str,
        offsets: StoreOffsets,
        target: i64,
    ) -> Option<(i64, i64)> {
        let prefetched = self
            .prefetched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(topic.to_string(), partition));
        let marks = match prefetched {
            Some(m) => Ok(m),
            None => watermarks(&self.consumer, topic, partition),
        };
        let (low, high) = match marks {
            Ok(w) => w,
            Err(e) => {
                if offsets.changelog.is_some() || target > 0 {
                    tracing::warn!(table = table.name(), partition, %topic, error = %e, "changelog not readable; keeping local state as is");
                }
                return None;
            }
        };
        let mut start = offsets.changelog.map(|c| c + 1).unwrap_or(low);
        if start < low {
            tracing::warn!(table = table.name(), partition, %topic, store_at = start, log_starts_at = low,
                "changelog truncated before the local checkpoint; restoring from what remains");
            start = low;
        }
        if start >= high {
            if offsets.changelog.is_none() && target > 0 {
                tracing::warn!(table = table.name(), partition, %topic, committed = target,
                    "changelog is empty but the source has committed progress: the changelog is missing; state starts empty");
            }
            return None;
        }
        Some((start, high))
    }

    /// Reads the assigned changelog partition from `run.start` up to `run.high` (following: up
    /// to the first record of a checkpoint beyond `run.target`), writing the records that apply
    /// to the store in batches of [`BATCH`]. Returns the next offset to read and the last
    /// batch, which the caller writes with the final offsets. A read that receives nothing for
    /// [`STALL_TIMEOUT`] is an error naming the offset, never a hang.
    fn read_changelog(&self, run: &Run<'_>, report: &mut RestoreReport) -> Result<(i64, Pending)> {
        let (partition, high) = (run.partition, run.high);
        let mut last_progress = Instant::now();
        let mut last_record = Instant::now();
        let mut batch = Pending::default();
        let mut next = run.start;
        let reading = format!("restore of partition {partition}");
        while next < high {
            let at = (next, high);
            let polled = poll_changelog(&self.consumer, run.topic, partition, at, last_record);
            let m = match polled.map_err(|stalled| stalled.error(&reading)) {
                Err(e) => {
                    let _ = self.consumer.unassign();
                    return Err(e);
                }
                Ok(Polled::Again) => continue,
                // What is left in `batch` is written with the final offsets by the caller.
                Ok(Polled::End) => break,
                Ok(Polled::Record(m)) => m,
            };
            last_record = Instant::now();
            match run.take(&m, &mut batch, report) {
                Taken::NotYetCommitted => break,
                Taken::Fenced => {
                    next = m.offset() + 1;
                    continue;
                }
                Taken::Read => next = m.offset() + 1,
            }
            if batch.len() >= BATCH || next >= high {
                let skipped = Skipped::new(run.topic, partition, run.status);
                let changes = batch.take(run.table, skipped, report);
                let offsets = StoreOffsets {
                    source: None,
                    changelog: Some(m.offset()),
                    epoch: Some(report.epoch),
                };
                run.table.restore_batch(partition, &changes, offsets)?;
            }
            if last_progress.elapsed() >= Duration::from_secs(2) {
                last_progress = Instant::now();
                run.log_progress(next);
            }
        }
        Ok((next, batch))
    }
}

/// What one poll of a changelog partition gave.
enum Polled<'c> {
    Record(BorrowedMessage<'c>),
    /// The partition's end (EOF: the high watermark, or for `read_committed` the last stable
    /// offset).
    End,
    /// Nothing yet, or a read error (logged): poll again.
    Again,
}

/// A changelog read that received nothing for [`STALL_TIMEOUT`].
struct Stalled {
    topic: String,
    next: i64,
    high: i64,
}

impl Stalled {
    /// The error naming what was `reading` and the offset it waited at.
    fn error(self, reading: &str) -> StreamError {
        let (next, high, secs) = (self.next, self.high, STALL_TIMEOUT.as_secs());
        StreamError::Changelog {
            topic: self.topic,
            reason: format!("{reading} stalled at offset {next} of {high} (no record for {secs}s); is the broker up?"),
        }
    }
}

/// One poll of `consumer`, assigned `topic`'s `partition` and waiting for offset `next` of
/// `high`; nothing since `last_record` for [`STALL_TIMEOUT`] is [`Stalled`], never a hang.
fn poll_changelog<'c>(
    consumer: &'c BaseConsumer<RestoreContext>,
    topic: &str,
    partition: i32,
    (next, high): (i64, i64),
    last_record: Instant,
) -> std::result::Result<Polled<'c>, Stalled> {
    Ok(match consumer.poll(Duration::from_millis(200)) {
        None if last_record.elapsed() > STALL_TIMEOUT => {
            let topic = topic.to_string();
            return Err(Stalled { topic, next, high });
        }
        None => Polled::Again,
        Some(Err(KafkaError::PartitionEOF(p))) if p == partition => Polled::End,
        Some(Err(e)) => {
            tracing::warn!(topic, partition, error = %e, "changelog read error; retrying");
            Polled::Again
        }
        Some(Ok(m)) => Polled::Record(m),
    })
}

//! One replay of a changelog partition ([`Run`]): what it reads, up to where, for which table;
//! what each record it reads does ([`Run::take`]); and what it says while it goes.

use super::batch::{Pending, RestoreReport, Skipped};
use crate::names::{HEADER_SOURCE_OFFSET, HEADER_WRITER_EPOCH};
use crate::sensor::Status;
use crate::table::TableRuntime;
use rdkafka::message::{Headers, Message};
use std::sync::atomic::Ordering;
use std::time::Instant;

#[derive(Clone, Copy)]
pub(super) struct Run<'a> {
    pub(super) table: &'a dyn TableRuntime,
    pub(super) partition: i32,
    pub(super) topic: &'a str,
    /// The source offset the restored state reflects: records of later checkpoints do not apply.
    pub(super) target: i64,
    /// A standby's catch-up ([`super::Replay::Follow`]).
    pub(super) follow: bool,
    pub(super) status: &'a Status,
    pub(super) start: i64,
    pub(super) high: i64,
    pub(super) began: Instant,
}

/// What a changelog record did to the replay.
pub(super) enum Taken {
    /// Read: applied into the batch, or skipped (a later checkpoint's, or without a key).
    Read,
    /// A zombie's record: its writer lost the partition to a later epoch. Read, not applied.
    Fenced,
    /// Following only: the first record of a checkpoint not committed yet. Not read; the
    /// catch-up stops before it.
    NotYetCommitted,
}

/// A changelog header holding a decimal number.
pub(super) fn header_i64<M: Message>(m: &M, key: &str) -> Option<i64> {
    let headers = m.headers()?;
    headers
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|s| s.parse().ok())
}

impl Run<'_> {
    /// Takes one changelog record `m` into `batch` (or not), counting it in `report` and in
    /// the restore progress.
    pub(super) fn take<M: Message>(
        &self,
        m: &M,
        batch: &mut Pending,
        report: &mut RestoreReport,
    ) -> Taken {
        let epoch = header_i64(m, HEADER_WRITER_EPOCH);
        let fenced = epoch.is_some_and(|e| e < report.epoch);
        let source = header_i64(m, HEADER_SOURCE_OFFSET);
        let applies = source.is_none_or(|s| s <= self.target);
        if self.follow && !applies && !fenced {
            return Taken::NotYetCommitted;
        }
        report.read += 1;
        self.status.restore_done.fetch_add(1, Ordering::Relaxed);
        if fenced {
            report.skipped += 1;
            report.fenced += 1;
            return Taken::Fenced;
        }
        report.epoch = report.epoch.max(epoch.unwrap_or(0));
        if let Some(s) = source.filter(|_| applies) {
            // A checkpoint's record: the state reflects the source up to where it covers.
            report.source_offset = report.source_offset.max(s);
        }
        match (applies, m.key()) {
            (false, _) => report.skipped += 1,
            (true, Some(k)) => {
                batch.push(m.offset(), k, m.payload());
                report.applied += 1;
            }
            (true, None) => {
                let bad = Skipped::new(self.topic, self.partition, self.status);
                bad.record(m.offset(), "no key", report);
            }
        }
        Taken::Read
    }

    /// Counts the records to read and says so (standbys quietly).
    pub(super) fn announce(&self) {
        let total = (self.high - self.start) as u64;
        self.status
            .restore_total
            .fetch_add(total, Ordering::Relaxed);
        if self.follow {
            tracing::debug!(
                table = self.table.name(),
                partition = self.partition,
                topic = self.topic,
                from = self.start,
                to = self.high,
                records = total,
                target_source_offset = self.target,
                "standby catching up"
            );
        } else {
            // Cleared by the caller once every partition of the assignment is ready.
            self.status.recovering.store(true, Ordering::Relaxed);
            tracing::info!(
                table = self.table.name(),
                partition = self.partition,
                topic = self.topic,
                from = self.start,
                to = self.high,
                records = total,
                target_source_offset = self.target,
                "restoring from changelog"
            );
        }
    }

    pub(super) fn log_progress(&self, next: i64) {
        let done = (next - self.start) as f64;
        let rate = done / self.began.elapsed().as_secs_f64().max(1e-3);
        let eta = (self.high - next) as f64 / rate.max(1.0);
        tracing::info!(
            table = self.table.name(),
            partition = self.partition,
            done = done as u64,
            total = (self.high - self.start) as u64,
            rate = rate as u64,
            eta_s = format!("{eta:.1}"),
            "restore progress"
        );
    }
}

/// Says a replay is done: a restore at info level, a standby's catch-up at debug.
pub(super) fn log_done(run: &Run<'_>, report: &RestoreReport) {
    let (table, partition) = (run.table, run.partition);
    if run.follow {
        tracing::debug!(
            table = table.name(),
            partition,
            read = report.read,
            "standby caught up"
        );
        return;
    }
    let secs = run.began.elapsed().as_secs_f64();
    tracing::info!(
        table = table.name(),
        partition,
        read = report.read,
        applied = report.applied,
        skipped = report.skipped,
        undecodable = report.undecodable,
        fenced = report.fenced,
        secs = format!("{secs:.2}"),
        rate = (report.read as f64 / secs.max(1e-3)) as u64,
        "restore done"
    );
}

//! A restore's batches: the changelog records read since the last write to the store, kept
//! as the latest good entry per key ([`Pending`]), the records that cannot be entries of the
//! table, logged and counted ([`Skipped`]), and the tally of a restore ([`RestoreReport`]).
//! Reading the changelog and deciding what applies is the parent module's.

use crate::sensor::Status;
use crate::table::store::Change;
use crate::table::TableRuntime;
use std::sync::atomic::Ordering;

/// What a restore did.
#[derive(Debug, Clone, Copy, Default)]
pub struct RestoreReport {
    pub read: u64,
    pub applied: u64,
    /// Records not applied: beyond the committed source offset, or not entries of the table.
    pub skipped: u64,
    /// Of `skipped`, those without a key or whose key or value does not decode (logged with
    /// their offsets). A record superseded by a later one of its key in the same batch is
    /// never decoded, so never counted here.
    pub undecodable: u64,
    /// Of `skipped`, records of a writer epoch below one read before them: written by a
    /// worker that kept going after it lost the partition.
    pub fenced: u64,
    /// The source offset the table's state is shown to reflect: the highest source-offset
    /// header of the records applied, or the store's own offset if higher. The source may
    /// resume beyond it ([`super::Restorer::resume_at`]): checkpoints after it may have
    /// changed nothing in this table.
    pub source_offset: i64,
    /// Changelog offsets after the last record read for which a `read_committed` reader
    /// received no record (an owner's restore only): transaction markers, and the records of
    /// open or aborted transactions.
    pub unread: Option<super::Unread>,
    /// The highest writer epoch read (or the store's): what the store keeps as its fence.
    pub epoch: i64,
    /// After an owner's restore ([`super::Replay::Restore`]), the epoch it may write with once
    /// the group confirms it owns the partition ([`super::owner_epoch`]); a standby's, 0.
    pub owner_epoch: i64,
}

/// Changelog records read since the last write to the store. Only the latest entry of each
/// key reaches the store (the state is the same: a batch's earlier values of a key would be
/// overwritten within the same write), so only those are decoded and written.
#[derive(Default)]
pub(super) struct Pending {
    records: Vec<(i64, Change)>,
}

impl Pending {
    pub(super) fn push(&mut self, offset: i64, key: &[u8], value: Option<&[u8]>) {
        self.records
            .push((offset, (key.to_vec(), value.map(<[u8]>::to_vec))));
    }

    pub(super) fn len(&self) -> usize {
        self.records.len()
    }

    /// Empties the batch into the changes to write: per key, the latest record that is an
    /// entry of `table` (a key's latest good value survives a bad record after it).
    pub(super) fn take(
        &mut self,
        table: &dyn TableRuntime,
        bad: Skipped<'_>,
        report: &mut RestoreReport,
    ) -> Vec<Change> {
        let mut keep: Vec<usize> = Vec::new();
        {
            let mut done: std::collections::HashSet<&[u8], foldhash::fast::RandomState> =
                Default::default();
            for (i, (offset, (k, v))) in self.records.iter().enumerate().rev() {
                if done.contains(k.as_slice()) {
                    continue;
                }
                match table.check_change(k, v.as_deref()) {
                    Ok(()) => {
                        done.insert(k);
                        keep.push(i);
                    }
                    Err(reason) => {
                        report.applied -= 1;
                        bad.record(*offset, &reason, report);
                    }
                }
            }
        }
        let changes = keep
            .iter()
            .rev()
            .map(|&i| std::mem::take(&mut self.records[i].1))
            .collect();
        self.records.clear();
        changes
    }
}

/// Where a restore logs and counts the changelog records it cannot apply.
pub(super) struct Skipped<'a> {
    topic: &'a str,
    partition: i32,
    status: &'a Status,
}

impl<'a> Skipped<'a> {
    pub(super) fn new(topic: &'a str, partition: i32, status: &'a Status) -> Self {
        Self {
            topic,
            partition,
            status,
        }
    }

    pub(super) fn record(&self, offset: i64, reason: &str, report: &mut RestoreReport) {
        tracing::warn!(
            topic = self.topic,
            partition = self.partition,
            offset,
            reason,
            "changelog record skipped: not an entry of its table"
        );
        report.skipped += 1;
        report.undecodable += 1;
        self.status
            .changelog_skipped
            .fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Table, TableSpec};

    #[test]
    fn a_batch_writes_each_keys_latest_good_entry() {
        let dir = tempfile::tempdir().unwrap();
        let table: Table<String, i64> = Table::new(
            "app",
            dir.path(),
            TableSpec {
                name: "t".into(),
                source_topic: "src".into(),
                changelog_topic: None,
            },
        );
        let status = Status::default();
        let mut report = RestoreReport::default();
        let mut batch = Pending::default();
        let records: [(&str, Option<&str>); 7] = [
            ("\"a\"", Some("1")),
            ("\"b\"", Some("2")),
            ("\"a\"", Some("3")),
            ("\"a\"", Some("not a count")), // a keeps 3
            ("\"b\"", None),                // b deleted
            ("no json", Some("1")),         // key of no table entry
            ("\"c\"", Some("x")),           // c never had a good value
        ];
        for (offset, (k, v)) in records.iter().enumerate() {
            batch.push(offset as i64, k.as_bytes(), v.map(str::as_bytes));
            report.applied += 1;
        }
        let changes = batch.take(&table, Skipped::new("c", 0, &status), &mut report);
        let entry =
            |k: &str, v: Option<&str>| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec()));
        assert_eq!(
            changes,
            vec![entry("\"a\"", Some("3")), entry("\"b\"", None)]
        );
        assert_eq!(report.undecodable, 3);
        assert_eq!(report.skipped, 3);
        assert_eq!(report.applied, 4, "7 read, 3 bad");
        assert_eq!(status.changelog_skipped.load(Ordering::Relaxed), 3);
        assert_eq!(batch.len(), 0, "emptied for the next batch");
    }
}

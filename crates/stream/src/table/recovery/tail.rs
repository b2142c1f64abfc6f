//! Whether a group offset is proven: the check a restore makes before it resumes beyond every
//! table's committed changelog.
//!
//! A checkpoint in exactly-once mode sends its changelog records and then its source offsets
//! in one transaction, so once that transaction commits, the changelog holds records whose
//! source-offset header equals the group's new offset (when the checkpoint changed any of the
//! partition's tables). Kafka keeps the offsets of a transaction pending until it commits and
//! drops them when it aborts; a broker that shows them earlier, or keeps them after an abort
//! (noida-db 0.2.2 does both: `scripts/checks/noida_txn_offsets.py`), hands a restarted worker
//! an offset past records whose effect no committed changelog record carries. Resuming there
//! would lose them. So when no table's replay reached the group's offset, the restore reads
//! what a `read_committed` reader did not receive after its last record (the records of open
//! and aborted transactions, with `read_uncommitted`): a record there that claims a source
//! offset beyond what the tables reflect means the group's offset came with it, and the
//! partition resumes where the tables are instead.

use super::run::header_i64;
use super::{poll_changelog, Polled, RestoreReport, Restorer};
use crate::error::{Result, StreamError};
use crate::kafka::watermarks;
use crate::names::HEADER_SOURCE_OFFSET;
use crate::table::store::StoreOffsets;
use crate::table::TableRuntime;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::Instant;

/// Changelog offsets a `read_committed` replay did not receive a record for, `[from, high)`:
/// transaction markers, and the records of open or aborted transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unread {
    pub from: i64,
    pub high: i64,
}

impl Restorer {
    /// Where a source `partition` resumes once each of its tables was replayed up to `target`
    /// (`replays`: each table with its [`Restorer::replay`] report): at `target`, unless no
    /// table's changelog shows it and a record that did not commit claims a source offset
    /// between what they show and `target`; then where the tables are. Every store whose
    /// offset is below the answer takes it (its table has no committed change between).
    pub fn resume_at(
        &self,
        partition: i32,
        target: i64,
        replays: &[(Arc<dyn TableRuntime>, RestoreReport)],
    ) -> Result<i64> {
        let reflected = replays.iter().map(|(_, r)| r.source_offset).max();
        let resume = match reflected {
            Some(reflected) if reflected < target => {
                let claimed = self.claim_between(partition, reflected, target, replays)?;
                if let Some((table, claim)) = claimed {
                    tracing::warn!(table, partition, group_offset = target, uncommitted_claim = claim, resume_at = reflected,
                        "the group's committed offset is not shown by any committed changelog record, and a checkpoint that did not commit claimed it (a broker that keeps an aborted transaction's offsets); resuming where the tables are");
                    reflected
                } else {
                    target
                }
            }
            _ => target,
        };
        for (table, report) in replays {
            if report.source_offset < resume {
                let offsets = StoreOffsets {
                    source: Some(resume),
                    ..StoreOffsets::default()
                };
                table.restore_batch(partition, &[], offsets)?;
            }
        }
        Ok(resume)
    }

    /// The first table (and its claim) whose changelog holds a record a `read_committed`
    /// reader did not receive, claiming a source offset in `(reflected, target]`.
    fn claim_between<'a>(
        &self,
        partition: i32,
        reflected: i64,
        target: i64,
        replays: &'a [(Arc<dyn TableRuntime>, RestoreReport)],
    ) -> Result<Option<(&'a str, i64)>> {
        for (table, report) in replays {
            let Some(unread) = report.unread else {
                continue;
            };
            let changelog = table.changelog_topic();
            let claim = self.uncommitted_claim(changelog, partition, unread, reflected, target)?;
            if let Some(claim) = claim {
                return Ok(Some((table.name(), claim)));
            }
        }
        Ok(None)
    }

    /// The highest source offset in `(reflected, target]` claimed by a record of `changelog`'s
    /// `partition` at `unread` (which a `read_committed` reader does not receive).
    fn uncommitted_claim(
        &self,
        changelog: &str,
        partition: i32,
        unread: Unread,
        reflected: i64,
        target: i64,
    ) -> Result<Option<i64>> {
        let consumer = self.uncommitted_reader()?;
        let (_, high) = watermarks(consumer, changelog, partition)?;
        let high = high.max(unread.high);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(changelog, partition, Offset::Offset(unread.from))
            .map_err(StreamError::kafka("assign changelog"))?;
        consumer
            .assign(&tpl)
            .map_err(StreamError::kafka("assign changelog"))?;
        let claims = (reflected, target);
        let claim = read_claims(consumer, changelog, partition, unread.from, high, claims);
        let _ = consumer.unassign();
        claim
    }

    /// The restore's second consumer, `read_uncommitted`, made on first use: most workers
    /// never need it.
    fn uncommitted_reader(&self) -> Result<&BaseConsumer<super::RestoreContext>> {
        if let Some(c) = self.uncommitted.get() {
            return Ok(c);
        }
        let consumer = self
            .config
            .clone()
            .set("isolation.level", "read_uncommitted")
            .create_with_context(super::RestoreContext)
            .map_err(StreamError::kafka("create restore consumer"))?;
        Ok(self.uncommitted.get_or_init(|| consumer))
    }
}

/// Reads `[from, high)` and returns the highest source-offset header in `(above, upto]`.
fn read_claims(
    consumer: &BaseConsumer<super::RestoreContext>,
    changelog: &str,
    partition: i32,
    from: i64,
    high: i64,
    (above, upto): (i64, i64),
) -> Result<Option<i64>> {
    let mut claim = None;
    let mut next = from;
    let mut last_record = Instant::now();
    let reading = format!("reading partition {partition}'s uncommitted records");
    while next < high {
        let polled = poll_changelog(consumer, changelog, partition, (next, high), last_record);
        let m = match polled.map_err(|stalled| stalled.error(&reading))? {
            Polled::Again => continue,
            Polled::End => break,
            Polled::Record(m) => m,
        };
        last_record = Instant::now();
        next = m.offset() + 1;
        let claimed =
            header_i64(&m, HEADER_SOURCE_OFFSET).filter(|s| (above + 1..=upto).contains(s));
        if let Some(s) = claimed {
            claim = Some(claim.map_or(s, |c: i64| c.max(s)));
        }
    }
    Ok(claim)
}

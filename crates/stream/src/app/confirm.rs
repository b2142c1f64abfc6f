//! After an assignment's restores, before its first record: asking the group whether this
//! worker still owns what it restored. A worker frozen during a rebalance (a long GC-like
//! pause, SIGSTOP, a swapped-out VM) can wake inside the assignment of a generation the group
//! has already replaced and restore partitions another worker owns by now. Its restores
//! proposed writer epochs from the clock, above the rightful owner's
//! ([`crate::table::recovery`]): used, they would fence the owner's changelog records. So the
//! epochs count only once the group answers a commit of the offsets the restored partitions
//! resume at (the group's own, or further where a store is ahead of it) as to a member: a
//! commit carries the member's generation, which the group refuses from a member it removed.
//! A later owner of these partitions restores only after the group moved on from that answer,
//! so its epoch, from the clock then, is above the one confirmed here.

use super::rebalance::Resume;
use super::state::WorkerState;
use crate::checkpoint::fenced;
use crate::error::{Result, StreamError};
use crate::kafka::watermarks;
use crate::table::TableRuntime;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tries of the confirming commit when the group answers with anything but a refusal (a
/// coordinator moving, a timeout), and the pause between them.
const TRIES: usize = 5;
const PAUSE: Duration = Duration::from_millis(200);

/// The writer epoch one table partition's restore proposed.
pub(super) struct Proposed {
    pub(super) table: Arc<dyn TableRuntime>,
    pub(super) partition: i32,
    pub(super) epoch: i64,
}

impl WorkerState {
    /// Commits the offsets the restored partitions resume at. Taken: the proposed epochs
    /// become the writer epochs and this returns true. Refused (this worker is not the owner
    /// any more), or not answered after [`TRIES`]: nothing restored is used, the worker drops
    /// its work and ignores records until the group assigns partitions again (as after a
    /// refused checkpoint), and this returns false.
    pub(super) fn confirm_ownership<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        resume: &Resume,
        proposed: &[Proposed],
    ) -> Result<bool> {
        let mut last: Option<String> = None;
        for attempt in 1..=TRIES {
            match commit_resume_offsets(consumer, resume) {
                Answer::Member => {
                    last = None;
                    break;
                }
                Answer::Removed(e) => {
                    last = Some(e);
                    break;
                }
                Answer::Unknown(e) => {
                    last = Some(e);
                    if attempt < TRIES {
                        std::thread::sleep(PAUSE);
                    }
                }
            }
        }
        if let Some(e) = last {
            tracing::warn!(error = e, "the group did not confirm this worker owns the partitions it just restored (it was removed during the rebalance, or the group did not answer): the assignment is not used, records are ignored until the next one");
            self.drop_uncommitted();
            self.fenced_since = Some(Instant::now());
            return Ok(false);
        }
        for p in proposed {
            p.table.confirm_writer(p.partition, p.epoch);
        }
        Ok(true)
    }
}

/// What the group answered to the confirming commit.
enum Answer {
    /// Taken, or refused because the group is rebalancing: either way the group still counts
    /// this worker as a member of the generation that gave it the partitions (a removed member
    /// hears UnknownMemberId or IllegalGeneration), so no one else owns them yet.
    Member,
    /// This worker is not a member of that generation any more.
    Removed(String),
    /// No answer that tells (a timeout, a coordinator moving): worth another try.
    Unknown(String),
}

fn commit_resume_offsets<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    resume: &Resume,
) -> Answer {
    let answer = offsets_to_commit(consumer, resume).and_then(|offsets| {
        if offsets.count() == 0 {
            return Ok(());
        }
        consumer
            .commit(&offsets, CommitMode::Sync)
            .map_err(StreamError::kafka("confirm ownership"))
    });
    let e = match answer {
        Ok(()) => return Answer::Member,
        Err(e) => e,
    };
    match &e {
        StreamError::Kafka { source, .. } => match source.rdkafka_error_code() {
            Some(RDKafkaErrorCode::RebalanceInProgress) => Answer::Member,
            Some(code) if fenced(code) => Answer::Removed(e.to_string()),
            _ => Answer::Unknown(e.to_string()),
        },
        _ => Answer::Unknown(e.to_string()),
    }
}

/// The offsets to commit: where each partition resumes; a partition that starts at the
/// beginning (no offset anywhere) at its log start.
fn offsets_to_commit<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    resume: &Resume,
) -> Result<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    for ((topic, p), offset) in resume {
        let at = match offset {
            Offset::Offset(o) => *o,
            _ => watermarks(consumer, topic, *p)?.0,
        };
        tpl.add_partition_offset(topic, *p, Offset::Offset(at))
            .map_err(StreamError::kafka("confirm ownership"))?;
    }
    Ok(tpl)
}

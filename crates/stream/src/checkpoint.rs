//! The one commit procedure. Every durable step happens here, in this order:
//!
//! 1. collect each open table partition's cached changes (latest value per key);
//! 2. send them to the table's changelog partition, each with headers carrying the source
//!    offset this checkpoint covers and the partition's writer epoch; the app's output
//!    records (closed windows, [`crate::emit`]) go with them;
//! 3. flush the producer (changelog and dead-letter records): on any delivery failure stop
//!    here, nothing below happens and the source will be re-read; in exactly-once mode
//!    ([`Sink`]), add the source offsets to the transaction and commit it;
//! 4. at least once: commit the source offsets to the consumer group and wait for the answer.
//!    A refused commit stops the checkpoint here, so a store never gets ahead of the group:
//!    the next owner of a partition starts at the group's offset, and a store ahead of it
//!    would, when the partition comes back, mix this worker's later work with the other's.
//!    Refused because the group no longer counts this worker as the owner (it missed a
//!    rebalance or its session, and another worker may have its partitions):
//!    [`Outcome::Fenced`]; for any other reason (a rebalance in progress, a timeout):
//!    [`Outcome::NotCommitted`], and the write caches stay for the next checkpoint;
//! 5. write each partition's changes to RocksDB in one batch together with the source offset,
//!    the last changelog offset and the writer epoch the group confirmed (the warm-restart
//!    checkpoint).

use crate::emit::Outbox;
use crate::error::{Result, StreamError};
use crate::kafka::{flush, send_blocking};
use crate::names::{HEADER_SOURCE_OFFSET, HEADER_WRITER_EPOCH};
use crate::record::Positions;
use crate::sensor::Status;
use crate::sink::Sink;
use crate::table::store::{Change, StoreOffsets};
use crate::table::TableRuntime;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

/// What a checkpoint achieved.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Outputs, offsets and stores are committed.
    Committed,
    /// The group did not take the offsets (outputs are flushed, stores not written): the
    /// write caches stay and the next checkpoint sends them again.
    NotCommitted(rdkafka::error::KafkaError),
    /// The group refused the offsets with this code: the worker is not a member of the
    /// generation that owns its partitions any more. Nothing was written to the stores; the
    /// caller drops the uncommitted state.
    Fenced(RDKafkaErrorCode),
}

/// Group errors that mean another member may own this worker's partitions now.
pub(crate) fn fenced(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::UnknownMemberId
            | RDKafkaErrorCode::IllegalGeneration
            | RDKafkaErrorCode::FencedInstanceId
            | RDKafkaErrorCode::FencedMemberEpoch
    )
}

/// Runs steps 1–5 for every open partition of `tables`.
pub fn checkpoint<C: ConsumerContext>(
    tables: &[Arc<dyn TableRuntime>],
    outbox: &Outbox,
    positions: &Positions,
    sink: &mut Sink,
    consumer: &BaseConsumer<C>,
    status: &Status,
) -> Result<Outcome> {
    // 1 + 2
    let producer = sink.producer()?;
    let prepared = send_changes(tables, positions, producer)?;
    let emitted = outbox.take();
    for e in &emitted {
        send_blocking(
            producer,
            &e.topic,
            None,
            Some(&e.key),
            Some(&e.value),
            None,
            Some(e.timestamp),
        )?;
    }
    // 3
    flush(producer, FLUSH_TIMEOUT)?;
    let offsets = offset_list(positions)?;
    let in_transaction = sink.commit(consumer, &offsets)?;
    for p in &prepared {
        status.add_produced(p.table.changelog_topic(), p.changes.len() as u64);
    }
    for e in &emitted {
        status.add_produced(&e.topic, 1);
    }
    // 4
    if !in_transaction && offsets.count() > 0 {
        if let Err(e) = consumer.commit(&offsets, CommitMode::Sync) {
            return Ok(match e.rdkafka_error_code() {
                Some(code) if fenced(code) => Outcome::Fenced(code),
                _ => Outcome::NotCommitted(e),
            });
        }
    }
    // 5
    write_stores(&prepared, sink)?;
    status.record_positions(positions);
    status.commits.fetch_add(1, Ordering::Relaxed);
    status
        .last_commit_ms
        .store(crate::now_ms(), Ordering::Relaxed);
    Ok(Outcome::Committed)
}

/// One table partition's part of a checkpoint: its changes, sent to the changelog, and the
/// source offset they cover.
struct Prepared {
    table: Arc<dyn TableRuntime>,
    partition: i32,
    source: i64,
    changes: Vec<Change>,
}

/// Steps 1 and 2: each open partition's cached changes to its changelog partition, with the
/// source offset and writer epoch headers. Partitions without a position are left alone.
fn send_changes(
    tables: &[Arc<dyn TableRuntime>],
    positions: &Positions,
    producer: &crate::kafka::TrackedProducer,
) -> Result<Vec<Prepared>> {
    let mut prepared = Vec::new();
    for table in tables {
        for p in table.open_partitions() {
            let Some(&source) = positions.get(table.source_topic()).and_then(|m| m.get(&p)) else {
                continue;
            };
            let changes = table.pending(p);
            let header = source.to_string();
            let epoch = table.writer_epoch(p).to_string();
            for (k, v) in &changes {
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: HEADER_SOURCE_OFFSET,
                        value: Some(header.as_bytes()),
                    })
                    .insert(Header {
                        key: HEADER_WRITER_EPOCH,
                        value: Some(epoch.as_bytes()),
                    });
                send_blocking(
                    producer,
                    table.changelog_topic(),
                    Some(p),
                    Some(k),
                    v.as_deref(),
                    Some(headers),
                    None,
                )?;
            }
            prepared.push(Prepared {
                table: table.clone(),
                partition: p,
                source,
                changes,
            });
        }
    }
    Ok(prepared)
}

/// Step 5: each partition's changes to RocksDB in one batch with the source offset and the
/// last changelog offset the producer saw delivered.
fn write_stores(prepared: &[Prepared], sink: &Sink) -> Result<()> {
    for p in prepared {
        let changelog = if p.changes.is_empty() {
            None
        } else {
            sink.tracker()
                .context()
                .last_offset(p.table.changelog_topic(), p.partition)
        };
        p.table.commit_partition(
            p.partition,
            &p.changes,
            StoreOffsets {
                source: Some(p.source),
                changelog,
                // Committed under it: the store's fence from now on.
                epoch: Some(p.table.writer_epoch(p.partition)).filter(|e| *e > 0),
            },
        )?;
    }
    Ok(())
}

fn offset_list(positions: &Positions) -> Result<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    for (topic, p, off) in positions
        .iter()
        .flat_map(|(t, m)| m.iter().map(move |(p, o)| (t, p, o)))
    {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*off))
            .map_err(StreamError::kafka("commit offsets"))?;
    }
    Ok(tpl)
}

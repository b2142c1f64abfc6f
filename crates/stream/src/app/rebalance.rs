//! Rebalances: what happens when the group assigns partitions to this worker or takes them
//! away. On assignment, stores of partitions no longer owned close, the added partitions'
//! stores open and their changelogs are replayed ([`crate::table::recovery`]) before the source
//! is fetched, the group confirms this worker still owns them (`confirm`), and each source
//! partition resumes at the offset stored with the data. On
//! revocation, everything processed so far is checkpointed first. The directory advert and
//! standby copies follow the assignment. The poll loop itself is `runtime`'s.

use super::confirm::Proposed;
use super::state::WorkerState;
use crate::error::{Result, StreamError};
use crate::fetch::FetchHandle;
use crate::kafka::committed_offsets;
use crate::table::recovery::{parallel_map, Replay};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// Where each assigned source partition resumes.
pub(super) type Resume = HashMap<(String, i32), Offset>;

impl WorkerState {
    /// Restores every table partition of the `added` source partitions and returns where each
    /// of them resumes. With the eager protocol `added` is the whole new assignment (partitions
    /// kept from before keep their open stores); with the incremental one (KIP-848's
    /// `group.protocol=consumer`, or `cooperative-sticky`) it adds to what this worker owns.
    pub(super) fn on_assign<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        added: &[(String, i32)],
        incremental: bool,
    ) -> Result<Resume> {
        self.status.assignment_began_now();
        self.fenced_since = None;
        // A standby copy of an added partition is closed so its store can open as ours.
        if let Some(s) = &self.standby {
            s.release(added);
        }
        let assigned = self.assignment_after(added, incremental);
        let committed = match committed_offsets(consumer, added) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "could not read committed offsets; using local stores only");
                HashMap::new()
            }
        };
        self.close_unowned(&assigned);
        // `recovering` is raised by the restorer only when changelog records must be replayed,
        // so a rebalance with warm stores does not make queries wait.
        let started = Instant::now();
        self.open_stores(consumer, added, started)?;
        let (resume, proposed) = self.restore(consumer, added, &committed)?;
        // The global copies, restored meanwhile on their own thread, before any record.
        if let Some(globals) = self.globals_ready.take() {
            globals.wait();
        }
        let owner = self.confirm_ownership(consumer, &resume, &proposed)?;
        self.status.recovering.store(false, Ordering::Relaxed);
        if !owner {
            return Ok(resume);
        }
        tracing::info!(partitions = assigned.len(), added = added.len(), secs = format!("{:.3}", started.elapsed().as_secs_f64()), app_id = %self.app_id, "partitions assigned and tables ready");
        self.status.set_assigned(assigned.clone());
        if let Some(d) = &self.directory {
            d.publish(self.advert_producer(), &self.app_id, assigned)?;
        }
        Ok(resume)
    }

    /// What this worker owns once `added` is assigned: with the incremental protocol, what it
    /// owned plus `added`; with the eager one, `added` alone.
    fn assignment_after(&self, added: &[(String, i32)], incremental: bool) -> Vec<(String, i32)> {
        let mut assigned: Vec<(String, i32)> = if incremental {
            self.owned.clone()
        } else {
            Vec::new()
        };
        for a in added {
            if !assigned.contains(a) {
                assigned.push(a.clone());
            }
        }
        assigned
    }

    /// Closes the stores of partitions this worker no longer owns (standby copies may follow
    /// them from now on) and records `assigned` as owned.
    fn close_unowned(&mut self, assigned: &[(String, i32)]) {
        let keep: HashSet<(String, i32)> = assigned.iter().cloned().collect();
        self.owned = assigned.to_vec();
        let mut closed: Vec<(String, i32)> = Vec::new();
        for t in &self.tables {
            for p in t.open_partitions() {
                let sp = (t.source_topic().to_string(), p);
                if !keep.contains(&sp) {
                    t.close_partition(p);
                    if !closed.contains(&sp) {
                        closed.push(sp);
                    }
                }
            }
        }
        if let Some(s) = &self.standby {
            s.resume(&closed);
        }
    }

    /// Opens the stores of the `added` partitions' tables and asks for their changelogs'
    /// watermarks, concurrently: one after the other, an assignment of 36 table partitions
    /// spent most of its time waiting.
    fn open_stores<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        added: &[(String, i32)],
        started: Instant,
    ) -> Result<()> {
        let mut to_open = Vec::new();
        for (topic, p) in added {
            let n = self.partitions_of(consumer, topic)?;
            for t in &self.tables {
                if t.source_topic() == topic {
                    to_open.push((t.clone(), *p, n));
                }
            }
        }
        tracing::debug!(
            secs = started.elapsed().as_secs_f64(),
            "assignment: partition counts known"
        );
        for r in parallel_map(&to_open, |(t, p, n)| t.open_partition(*p, *n)) {
            r?;
        }
        tracing::debug!(
            secs = started.elapsed().as_secs_f64(),
            stores = to_open.len(),
            "assignment: stores open"
        );
        let changelogs: Vec<(String, i32)> = to_open
            .iter()
            .map(|(t, p, _)| (t.changelog_topic().to_string(), *p))
            .collect();
        self.restorer.prefetch_watermarks(&changelogs);
        tracing::debug!(
            secs = started.elapsed().as_secs_f64(),
            "assignment: changelog watermarks known"
        );
        Ok(())
    }

    /// Replays the changelogs of the `added` partitions' tables up to the furthest offset the
    /// partition's stores or the group's committed offset reflect, and returns where each
    /// source partition resumes (that offset, unless the changelogs show it came with a
    /// transaction that did not commit: [`crate::table::recovery::Restorer::resume_at`]; else
    /// the beginning) and the writer epochs the restores proposed.
    fn restore<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        added: &[(String, i32)],
        committed: &HashMap<(String, i32), i64>,
    ) -> Result<(Resume, Vec<Proposed>)> {
        let mut resume = HashMap::new();
        let mut proposed = Vec::new();
        for (topic, p) in added {
            let key = (topic.clone(), *p);
            let committed = committed.get(&key).copied();
            let tables: Vec<_> = self
                .tables
                .iter()
                .filter(|t| t.source_topic() == topic)
                .cloned()
                .collect();
            let n = self.partitions_of(consumer, topic)?;
            // Every table of the partition is brought to the furthest checkpoint any of its
            // stores (or the group) reflects. A checkpoint flushes all its changelog records
            // before its first store write, so a store that a failed checkpoint left behind
            // (a full disk, a kill between two stores' writes) catches up from its changelog;
            // resuming at the laggard instead would count that checkpoint's records twice in
            // the stores that have them.
            let mut target = committed;
            for t in &tables {
                t.open_partition(*p, n)?;
                if let Some(s) = t.offsets(*p)?.source {
                    target = Some(target.map_or(s, |c| c.max(s)));
                }
            }
            let mut replays = Vec::new();
            for t in tables {
                let report =
                    self.restorer
                        .replay(t.as_ref(), *p, target, &self.status, Replay::Restore)?;
                proposed.push(Proposed {
                    table: t.clone(),
                    partition: *p,
                    epoch: report.owner_epoch,
                });
                replays.push((t, report));
            }
            let start = if replays.is_empty() {
                committed
            } else {
                let target = target.unwrap_or(0);
                Some(self.restorer.resume_at(*p, target, &replays)?)
            };
            let offset = match start {
                Some(o) => {
                    self.positions
                        .entry(key.0.clone())
                        .or_default()
                        .insert(key.1, o);
                    Offset::Offset(o)
                }
                None => Offset::Beginning,
            };
            resume.insert(key, offset);
        }
        Ok((resume, proposed))
    }

    /// Checkpoints everything processed so far before `revoked` move to another worker. Eager
    /// protocol: the whole assignment goes (stores stay open until the next assignment shows
    /// which are still ours). Incremental: only `revoked` go; their stores close now.
    pub(super) fn on_revoke<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        revoked: &[(String, i32)],
        incremental: bool,
        lost: bool,
    ) -> Result<()> {
        if lost || self.fenced_since.is_some() {
            // Another member may own them already: checkpointing now would put work done
            // after the hand-over into the changelog and the stores.
            if self.fenced_since.is_none() {
                tracing::warn!(partitions = revoked.len(), "partitions lost (this worker was removed from the group); dropping its uncommitted work");
            }
            self.drop_uncommitted();
            if let Some(d) = &self.directory {
                d.publish(self.advert_producer(), &self.app_id, Vec::new())?;
            }
            return Ok(());
        }
        let r = self.checkpoint(consumer);
        if !incremental {
            if matches!(r, Ok(false)) {
                // Not committed: the partitions' next owner starts at the group's offsets,
                // so the work after them goes (the stores keep the last checkpoint).
                self.drop_uncommitted();
            }
            self.positions.clear();
            self.owned.clear();
            self.status.set_assigned(Vec::new());
            return r.map(|_| ());
        }
        for (topic, p) in revoked {
            if let Some(m) = self.positions.get_mut(topic) {
                m.remove(p);
            }
            for t in &self.tables {
                if t.source_topic() == topic {
                    t.close_partition(*p);
                }
            }
        }
        if let Some(s) = &self.standby {
            s.resume(revoked);
        }
        self.owned.retain(|a| !revoked.contains(a));
        self.status.set_assigned(self.owned.clone());
        if let Some(d) = &self.directory {
            d.publish(self.advert_producer(), &self.app_id, self.owned.clone())?;
        }
        r.map(|_| ())
    }
}

/// The group consumer's context: librdkafka calls [`ConsumerContext::rebalance`] on the poll
/// thread, which assigns and revokes through the shared [`WorkerState`].
pub(super) struct ConductorContext {
    pub(super) state: Mutex<WorkerState>,
    /// Where assigned partitions are forwarded (set once the consumer exists).
    pub(super) fetch: OnceLock<FetchHandle>,
    /// Set with `WorkerState::fatal`, so the poll loop checks for it without taking the lock.
    pub(super) failed: AtomicBool,
    /// Incremental (cooperative) rebalancing, from the configuration. Not asked of the
    /// consumer inside the callback: `rebalance_protocol()` there can block for good while the
    /// consumer is closing.
    pub(super) incremental: bool,
    /// Partitions assigned or revoked since the poll loop last dropped their drained records.
    pub(super) reassigned: Mutex<Reassigned>,
}

/// What rebalance callbacks assigned or revoked (`all` after an unassign of everything).
#[derive(Default)]
pub(super) struct Reassigned {
    all: bool,
    partitions: Vec<(String, i32)>,
}

impl ConductorContext {
    pub(super) fn with_state<T>(&self, f: impl FnOnce(&mut WorkerState) -> Result<T>) -> Result<T> {
        // The state is only used from the poll thread (loop and callbacks); the mutex makes
        // that sharing explicit and is never contended.
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// Releases the records of `batch` that belong to partitions a rebalance callback assigned
    /// or revoked since the last call. The poll loop drains a batch before it serves the
    /// consumer's queue (the agents process the previous one meanwhile), so such records were
    /// fetched for an assignment that is over: a revoked partition is another worker's now,
    /// and an assigned one is fetched again from where it resumes. librdkafka drops them itself
    /// only when they are still queued.
    pub(super) fn drop_reassigned(&self, batch: &mut crate::fetch::Batch) {
        let reassigned = {
            let mut g = self.reassigned.lock().unwrap_or_else(|p| p.into_inner());
            if !g.all && g.partitions.is_empty() {
                return;
            }
            std::mem::take(&mut *g)
        };
        let before = batch.len();
        if reassigned.all {
            batch.clear();
        } else {
            use rdkafka::message::Message;
            batch.retain(|m| {
                !reassigned
                    .partitions
                    .iter()
                    .any(|(t, p)| *p == m.partition() && t == m.topic())
            });
        }
        if batch.len() < before {
            tracing::debug!(
                dropped = before - batch.len(),
                "records drained before a rebalance, of partitions it assigned or revoked"
            );
        }
    }

    fn note_reassigned(&self, partitions: &[(String, i32)], all: bool) {
        let mut g = self.reassigned.lock().unwrap_or_else(|p| p.into_inner());
        g.all |= all;
        g.partitions.extend_from_slice(partitions);
    }

    /// A rebalance callback failed: the poll loop stops with `e` after this poll.
    fn fail(&self, e: StreamError) {
        let _ = self.with_state(|state| {
            state.fatal = Some(e);
            Ok(())
        });
        self.failed.store(true, Ordering::Relaxed);
    }
}

impl ClientContext for ConductorContext {}

fn partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

impl ConsumerContext for ConductorContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let incremental = self.incremental;
                let added = partitions(tpl);
                self.note_reassigned(&added, false);
                let result = self.with_state(|s| s.on_assign(consumer, &added, incremental));
                match result {
                    Ok(resume) => {
                        for ((t, p), o) in resume {
                            if let Err(e) = tpl.set_partition_offset(&t, p, o) {
                                tracing::error!(topic = %t, partition = p, error = %e, "cannot set start offset");
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "assignment failed");
                        let _ = self.with_state(|state| {
                            state.status.recovering.store(false, Ordering::Relaxed);
                            Ok(())
                        });
                        self.fail(e);
                    }
                }
                // Forwarding first: librdkafka cleared it when these partitions last stopped,
                // and it must be in place before their first fetch.
                if let Some(fetch) = self.fetch.get() {
                    fetch.attach(consumer, tpl);
                }
                let assigned = if incremental {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = assigned {
                    tracing::error!(error = %e, "assign failed");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let incremental = self.incremental;
                let revoked = partitions(tpl);
                self.note_reassigned(&revoked, !incremental);
                let lost = consumer.assignment_lost();
                if let Err(e) =
                    self.with_state(|s| s.on_revoke(consumer, &revoked, incremental, lost))
                {
                    tracing::error!(error = %e, "checkpoint on revoke failed");
                    self.fail(e);
                }
                let unassigned = if incremental {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = unassigned {
                    tracing::error!(error = %e, "unassign failed");
                }
            }
            other => {
                tracing::error!(error = ?other, "rebalance error");
                self.note_reassigned(&[], true);
                let _ = consumer.unassign();
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, _: &Rebalance<'_>) {}
}

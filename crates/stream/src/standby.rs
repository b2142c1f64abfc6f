//! Standby replicas (Kafka Streams' `num.standby.replicas`): warm copies of partitions this
//! worker does not own, kept by following their changelogs, so that taking one over replays
//! only the last moments instead of the whole changelog.
//!
//! Who keeps which copy comes from the directory (every worker's owned partitions): for a
//! partition owned by W, the live workers other than W, in id order, starting at the
//! partition number, take the first `replicas` places. Every worker computes the same answer
//! from the same adverts; nothing else is coordinated.
//!
//! A copy is the partition's own store (the path the owner would use) opened through the
//! table's [standby handle](crate::table::TableRuntime::standby_handle), caught up every
//! [`ROUND`] with [`Restorer::replay`] (`Replay::Follow`): it applies changelog records only up to the group's
//! committed source offset and stops before the first record beyond it, so a copy never holds
//! a checkpoint that might still be replayed differently. When the partition is assigned to
//! this worker, [`Standby::release`] closes the copy first (a RocksDB store has one opener)
//! and the assignment's restore continues from the copy's changelog offset.

use crate::config::KafkaConfig;
use crate::directory::Directory;
use crate::error::{Result, StreamError};
use crate::kafka::{committed_offsets, partition_count};
use crate::names;
use crate::sensor::Status;
use crate::shutdown::Shutdown;
use crate::table::recovery::{Replay, Restorer};
use crate::table::TableRuntime;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often copies catch up.
pub const ROUND: Duration = Duration::from_millis(500);

type SourcePartition = (String, i32);

struct State {
    handles: Vec<Arc<dyn TableRuntime>>,
    /// Source partitions this worker owns now: never opened as copies.
    owned: HashSet<SourcePartition>,
    /// Source partitions whose copies are open.
    open: HashSet<SourcePartition>,
}

impl State {
    fn close(&mut self, sp: &SourcePartition) {
        for t in &self.handles {
            if t.source_topic() == sp.0 {
                t.close_partition(sp.1);
            }
        }
        self.open.remove(sp);
    }
}

/// The standby replicas of one worker; the thread stops with the worker's shutdown.
pub struct Standby {
    state: Arc<Mutex<State>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Standby {
    /// Starts keeping `replicas` copies of each partition of `tables` among the workers in
    /// `directory`.
    pub fn start(
        kafka: &KafkaConfig,
        app_id: &str,
        tables: &[Arc<dyn TableRuntime>],
        directory: Directory,
        replicas: u32,
        shutdown: Shutdown,
    ) -> Result<Self> {
        let state = Arc::new(Mutex::new(State {
            handles: tables.iter().map(|t| t.standby_handle()).collect(),
            owned: HashSet::new(),
            open: HashSet::new(),
        }));
        // Reads the group's committed offsets (never subscribes, so never joins the group).
        let offsets: BaseConsumer = kafka
            .restore_consumer(app_id)
            .create()
            .map_err(StreamError::kafka("create standby offsets consumer"))?;
        let restorer = Restorer::new(kafka, &names::standby_app_id(app_id))?;
        let follower = Follower {
            state: state.clone(),
            directory,
            replicas: replicas as usize,
            offsets,
            restorer,
            status: Status::default(),
            counts: HashMap::new(),
        };
        let thread = std::thread::Builder::new()
            .name("standby".into())
            .spawn(move || follower.run(shutdown))
            .map_err(|e| StreamError::Config(format!("cannot start the standby thread: {e}")))?;
        Ok(Self {
            state,
            thread: Mutex::new(Some(thread)),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Before this worker opens `assigned` as their owner: closes their copies (waiting for a
    /// catch-up in progress) and keeps them closed until [`Standby::resume`].
    pub fn release(&self, assigned: &[SourcePartition]) {
        let mut state = self.state();
        for sp in assigned {
            state.owned.insert(sp.clone());
            if state.open.contains(sp) {
                state.close(sp);
                tracing::info!(topic = %sp.0, partition = sp.1, "standby copy handed to the owner");
            }
        }
    }

    /// This worker closed its stores of `closed`: they may be kept as copies again.
    pub fn resume(&self, closed: &[SourcePartition]) {
        let mut state = self.state();
        for sp in closed {
            state.owned.remove(sp);
        }
    }

    /// Waits for the thread (after the shutdown it was started with).
    pub fn join(&self) {
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

struct Follower {
    state: Arc<Mutex<State>>,
    directory: Directory,
    replicas: usize,
    offsets: BaseConsumer,
    restorer: Restorer,
    /// The copies' own counters (the worker's status reports only its owned partitions).
    status: Status,
    counts: HashMap<String, i32>,
}

/// The partitions `me` keeps copies of: for each owned partition, the first `replicas` live
/// workers other than its owner, in id order, starting at the partition number.
pub fn standby_partitions(
    owners: &HashMap<SourcePartition, String>,
    me: &str,
    replicas: usize,
) -> BTreeSet<SourcePartition> {
    let live: BTreeSet<&str> = owners.values().map(String::as_str).collect();
    let mut mine = BTreeSet::new();
    for (sp, owner) in owners {
        if owner == me {
            continue;
        }
        let others: Vec<&str> = live.iter().copied().filter(|w| w != owner).collect();
        if others.is_empty() {
            continue;
        }
        let start = sp.1.unsigned_abs() as usize;
        let chosen =
            (0..replicas.min(others.len())).any(|i| others[(start + i) % others.len()] == me);
        if chosen {
            mine.insert(sp.clone());
        }
    }
    mine
}

impl Follower {
    fn run(mut self, shutdown: Shutdown) {
        while !shutdown.is_triggered() {
            if let Err(e) = self.round() {
                tracing::warn!(error = %e, "standby catch-up failed; retrying");
            }
            let until = std::time::Instant::now() + ROUND;
            while !shutdown.is_triggered() && std::time::Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for sp in state.open.clone() {
            state.close(&sp);
        }
    }

    fn round(&mut self) -> Result<()> {
        let owners: HashMap<SourcePartition, String> = self
            .directory
            .owners()
            .into_iter()
            .map(|(sp, advert)| (sp, advert.worker_id))
            .collect();
        let wanted = standby_partitions(&owners, self.directory.worker_id(), self.replicas);
        let committed = self.committed(&wanted);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for sp in state.open.clone() {
            if !wanted.contains(&sp) || state.owned.contains(&sp) {
                state.close(&sp);
            }
        }
        for sp in wanted {
            if state.owned.contains(&sp) {
                continue;
            }
            let n = match self.counts.get(&sp.0) {
                Some(n) => *n,
                None => {
                    let n = partition_count(self.offsets.client(), &sp.0)?.unwrap_or(0);
                    self.counts.insert(sp.0.clone(), n);
                    n
                }
            };
            let handles: Vec<Arc<dyn TableRuntime>> = state
                .handles
                .iter()
                .filter(|t| t.source_topic() == sp.0)
                .cloned()
                .collect();
            if !state.open.contains(&sp) {
                tracing::info!(topic = %sp.0, partition = sp.1, "keeping a standby copy");
            }
            for t in handles {
                t.open_partition(sp.1, n)?;
                state.open.insert(sp.clone());
                self.restorer.replay(
                    t.as_ref(),
                    sp.1,
                    committed.get(&sp).copied(),
                    &self.status,
                    Replay::Follow,
                )?;
            }
        }
        Ok(())
    }

    /// The group's committed offsets of `partitions` (missing ones: none committed yet).
    fn committed(&self, partitions: &BTreeSet<SourcePartition>) -> HashMap<SourcePartition, i64> {
        if partitions.is_empty() {
            return HashMap::new();
        }
        committed_offsets(&self.offsets, partitions).unwrap_or_else(|e| {
            tracing::debug!(error = %e, "committed offsets unavailable; copies wait");
            HashMap::new()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(pairs: &[(i32, &str)]) -> HashMap<SourcePartition, String> {
        pairs
            .iter()
            .map(|(p, w)| (("t".to_string(), *p), w.to_string()))
            .collect()
    }

    #[test]
    fn every_partition_gets_its_replicas_on_other_workers() {
        let o = owners(&[(0, "a"), (1, "b"), (2, "c"), (3, "a"), (4, "b"), (5, "c")]);
        for replicas in 1..=3 {
            let mut holders: HashMap<i32, Vec<&str>> = HashMap::new();
            for w in ["a", "b", "c"] {
                for sp in standby_partitions(&o, w, replicas) {
                    holders.entry(sp.1).or_default().push(w);
                }
            }
            for p in 0..6 {
                let h = holders.get(&p).cloned().unwrap_or_default();
                // Never the owner; as many as asked for, up to the other workers (2).
                assert!(
                    !h.contains(&o[&("t".to_string(), p)].as_str()),
                    "{p}: {h:?}"
                );
                assert_eq!(h.len(), replicas.min(2), "{p}: {h:?}");
            }
        }
    }

    #[test]
    fn a_lone_worker_keeps_no_copies() {
        let o = owners(&[(0, "a"), (1, "a")]);
        assert!(standby_partitions(&o, "a", 1).is_empty());
        assert!(
            standby_partitions(&o, "b", 1).is_empty(),
            "b owns nothing: not live"
        );
    }
}

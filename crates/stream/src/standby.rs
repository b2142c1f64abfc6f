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
//! [`ROUND`](crate::follow::ROUND) by the follower standby copies and global tables share ([`crate::follow`]), which
//! applies changelog records only up to the group's committed source offset. When the partition is assigned to
//! this worker, [`Standby::release`] closes the copy first (a RocksDB store has one opener)
//! and the assignment's restore continues from the copy's changelog offset.

use crate::config::KafkaConfig;
use crate::directory::Directory;
use crate::error::Result;
use crate::follow::{lock, Copies, CopyState, Follower, SourcePartition};
use crate::names;
use crate::shutdown::Shutdown;
use crate::table::TableRuntime;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The standby replicas of one worker; the thread stops with the worker's shutdown.
pub struct Standby {
    state: Arc<Mutex<CopyState>>,
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
        let state = CopyState::new(tables.iter().map(|t| t.standby_handle()).collect());
        let copies = Copies::Standby {
            directory,
            replicas: replicas as usize,
        };
        let restore_as = names::standby_app_id(app_id);
        let follower = Follower::new(kafka, app_id, &restore_as, state.clone(), copies)?;
        let thread = follower.spawn("standby", shutdown, |_| {})?;
        Ok(Self {
            state,
            thread: Mutex::new(Some(thread)),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CopyState> {
        lock(&self.state)
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

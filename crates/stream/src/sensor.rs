//! What the runtime reports about itself: counters, the recovery state and whether the brokers
//! answer (see [`crate::health`]), read by the web layer (page banners,
//! `/api/status`) and by tests. Plain atomics; no locking on the hot path except the per-topic
//! map, touched once per poll batch.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Default)]
pub struct Status {
    pub recovering: AtomicBool,
    pub restore_done: AtomicU64,
    pub restore_total: AtomicU64,
    pub consumed: AtomicU64,
    pub decode_errors: AtomicU64,
    /// Changelog records a restore skipped because they are not entries of their table.
    pub changelog_skipped: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub commits: AtomicU64,
    /// Milliseconds since the epoch of the last successful checkpoint.
    pub last_commit_ms: AtomicI64,
    pub running: AtomicBool,
    /// Milliseconds since the epoch since when the brokers have been unreachable (0: they
    /// answer). Set and cleared by [`crate::health`]'s probe.
    brokers_unreachable_since_ms: AtomicI64,
    /// Milliseconds since the epoch of the last time the brokers answered the probe.
    brokers_last_seen_ms: AtomicI64,
    per_topic: Mutex<BTreeMap<String, u64>>,
    assigned: Mutex<Vec<(String, i32)>>,
    /// Records this process produced, per topic (changelog and dead-letter records).
    produced_per_topic: Mutex<BTreeMap<String, u64>>,
    /// Next source offset to process per (topic, partition), as of the last checkpoint.
    positions: Mutex<BTreeMap<(String, i32), i64>>,
    /// Milestones of a start, for benchmarks: topics checked and consumer subscribed, first
    /// assignment callback entered, first record handed to the agents.
    subscribed: std::sync::OnceLock<std::time::Instant>,
    assignment_began: std::sync::OnceLock<std::time::Instant>,
    first_record: std::sync::OnceLock<std::time::Instant>,
}

/// A copy of [`Status`] for display.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StatusSnapshot {
    pub running: bool,
    pub recovering: bool,
    pub restore_done: u64,
    pub restore_total: u64,
    pub consumed: u64,
    pub decode_errors: u64,
    #[serde(default)]
    pub changelog_skipped: u64,
    pub dead_lettered: u64,
    pub commits: u64,
    pub last_commit_ms: i64,
    pub consumed_per_topic: BTreeMap<String, u64>,
    pub assigned: Vec<(String, i32)>,
    pub produced_per_topic: BTreeMap<String, u64>,
    /// The brokers do not answer, so what the tables show may be out of date.
    #[serde(default)]
    pub stale: bool,
    /// Since when the brokers have not answered (ms since the epoch); `None` while they do.
    #[serde(default)]
    pub stale_since_ms: Option<i64>,
    /// When the brokers last answered (ms since the epoch; 0 before the first answer).
    #[serde(default)]
    pub brokers_last_seen_ms: i64,
}

impl Status {
    pub fn add_consumed(&self, topic: &str, n: u64) {
        self.consumed.fetch_add(n, Ordering::Relaxed);
        let mut m = self.per_topic.lock().unwrap_or_else(|p| p.into_inner());
        match m.get_mut(topic) {
            Some(c) => *c += n,
            None => {
                m.insert(topic.to_string(), n);
            }
        }
    }

    /// Runtime hook: the poll loop got its first record now. Later calls change nothing.
    pub fn first_record_seen(&self) {
        self.first_record.get_or_init(std::time::Instant::now);
    }

    /// When the first record reached the agents, if one has.
    pub fn first_record_at(&self) -> Option<std::time::Instant> {
        self.first_record.get().copied()
    }

    /// Runtime hook: topics checked, consumer subscribed (the group join starts).
    pub fn subscribed_now(&self) {
        self.subscribed.get_or_init(std::time::Instant::now);
    }

    pub fn subscribed_at(&self) -> Option<std::time::Instant> {
        self.subscribed.get().copied()
    }

    /// Runtime hook: an assignment callback began (the first one ends the group join).
    pub fn assignment_began_now(&self) {
        self.assignment_began.get_or_init(std::time::Instant::now);
    }

    pub fn assignment_began_at(&self) -> Option<std::time::Instant> {
        self.assignment_began.get().copied()
    }

    /// Metrics hook: `n` records this process produced to `topic`. The checkpoint calls it for
    /// changelog records once its flush succeeded; the dead-letter path once per record it
    /// sends (delivered by the next checkpoint's flush, which fails if it was not). Read by the
    /// web layer's `/metrics`.
    pub fn add_produced(&self, topic: &str, n: u64) {
        if n == 0 {
            return;
        }
        let mut m = self
            .produced_per_topic
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match m.get_mut(topic) {
            Some(c) => *c += n,
            None => {
                m.insert(topic.to_string(), n);
            }
        }
    }

    /// Metrics hook: the next source offset to process per (topic, partition), recorded by the
    /// checkpoint once it has committed them. The web layer's `/metrics` computes consumer lag
    /// as the partition's high watermark minus this position, for assigned partitions only.
    pub fn record_positions(&self, positions: &crate::record::Positions) {
        let mut m = self.positions.lock().unwrap_or_else(|p| p.into_inner());
        for (topic, parts) in positions {
            for (p, v) in parts {
                m.insert((topic.clone(), *p), *v);
            }
        }
    }

    /// Positions recorded by [`Status::record_positions`] for the partitions assigned now.
    pub fn assigned_positions(&self) -> Vec<((String, i32), Option<i64>)> {
        let assigned = self
            .assigned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let positions = self.positions.lock().unwrap_or_else(|p| p.into_inner());
        assigned
            .into_iter()
            .map(|k| {
                let pos = positions.get(&k).copied();
                (k, pos)
            })
            .collect()
    }

    /// Health hook: the brokers did not answer at `now_ms`. The first failure after an answer
    /// starts the stale period; later ones keep its start.
    pub fn brokers_unreachable(&self, now_ms: i64) {
        let _ = self.brokers_unreachable_since_ms.compare_exchange(
            0,
            now_ms.max(1),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Health hook: the brokers answered at `now_ms`; ends a stale period.
    pub fn brokers_reachable(&self, now_ms: i64) {
        self.brokers_last_seen_ms.store(now_ms, Ordering::Relaxed);
        self.brokers_unreachable_since_ms
            .store(0, Ordering::Relaxed);
    }

    /// Since when the brokers have been unreachable, if they are.
    pub fn stale_since_ms(&self) -> Option<i64> {
        match self.brokers_unreachable_since_ms.load(Ordering::Relaxed) {
            0 => None,
            t => Some(t),
        }
    }

    pub fn set_assigned(&self, assigned: Vec<(String, i32)>) {
        *self.assigned.lock().unwrap_or_else(|p| p.into_inner()) = assigned;
    }

    pub fn snapshot(&self) -> StatusSnapshot {
        StatusSnapshot {
            running: self.running.load(Ordering::Relaxed),
            recovering: self.recovering.load(Ordering::Relaxed),
            restore_done: self.restore_done.load(Ordering::Relaxed),
            restore_total: self.restore_total.load(Ordering::Relaxed),
            consumed: self.consumed.load(Ordering::Relaxed),
            decode_errors: self.decode_errors.load(Ordering::Relaxed),
            changelog_skipped: self.changelog_skipped.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            last_commit_ms: self.last_commit_ms.load(Ordering::Relaxed),
            consumed_per_topic: self
                .per_topic
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            assigned: self
                .assigned
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            produced_per_topic: self
                .produced_per_topic
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            stale: self.stale_since_ms().is_some(),
            stale_since_ms: self.stale_since_ms(),
            brokers_last_seen_ms: self.brokers_last_seen_ms.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_period_starts_at_the_first_failure_and_ends_at_an_answer() {
        let s = Status::default();
        assert_eq!(s.snapshot().stale_since_ms, None);
        s.brokers_unreachable(1_000);
        s.brokers_unreachable(5_000);
        let snap = s.snapshot();
        assert!(snap.stale);
        assert_eq!(snap.stale_since_ms, Some(1_000));
        s.brokers_reachable(9_000);
        let snap = s.snapshot();
        assert!(!snap.stale);
        assert_eq!(snap.stale_since_ms, None);
        assert_eq!(snap.brokers_last_seen_ms, 9_000);
        s.brokers_unreachable(12_000);
        assert_eq!(s.snapshot().stale_since_ms, Some(12_000));
    }
}

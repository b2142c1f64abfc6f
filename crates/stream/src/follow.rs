//! Copies of table partitions kept by following their changelogs: the loop that standby
//! replicas ([`crate::standby`]: some of the partitions other workers own) and global tables
//! ([`crate::global`]: every partition, on every worker) share.
//!
//! Every [`ROUND`], a [`Follower`] reads the group's committed source offsets and catches each
//! wanted copy up with [`Restorer::replay`] (`Replay::Follow`): it applies changelog records
//! only up to the committed offset and stops before the first record beyond it, so a copy
//! never holds a checkpoint that might still be replayed differently. Which partitions are
//! wanted is the only difference between the two kinds ([`Copies`]).

use crate::config::KafkaConfig;
use crate::directory::Directory;
use crate::error::{Result, StreamError};
use crate::kafka::{committed_offsets, partition_count};
use crate::sensor::Status;
use crate::shutdown::Shutdown;
use crate::standby::standby_partitions;
use crate::table::recovery::{parallel_map, Replay, Restorer};
use crate::table::TableRuntime;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often copies catch up.
pub const ROUND: Duration = Duration::from_millis(500);

pub(crate) type SourcePartition = (String, i32);

/// Which partitions a [`Follower`] keeps copies of.
pub(crate) enum Copies {
    /// Standby replicas: `replicas` copies of each partition among the live workers of the
    /// directory, never of a partition this worker owns.
    Standby {
        directory: Directory,
        replicas: usize,
    },
    /// Every partition of each table's source topic (global tables).
    All,
}

impl Copies {
    fn kind(&self) -> &'static str {
        match self {
            Copies::Standby { .. } => "standby",
            Copies::All => "global",
        }
    }
}

/// The copies' handles and which are open, shared with the worker (which may take a
/// standby copy's partition over).
pub(crate) struct CopyState {
    pub(crate) handles: Vec<Arc<dyn TableRuntime>>,
    /// Source partitions this worker owns now: never opened as copies.
    pub(crate) owned: HashSet<SourcePartition>,
    /// Source partitions whose copies are open.
    pub(crate) open: HashSet<SourcePartition>,
}

impl CopyState {
    pub(crate) fn new(handles: Vec<Arc<dyn TableRuntime>>) -> Arc<Mutex<Self>> {
        Arc::new(Mutex::new(Self {
            handles,
            owned: HashSet::new(),
            open: HashSet::new(),
        }))
    }

    pub(crate) fn close(&mut self, sp: &SourcePartition) {
        for t in &self.handles {
            if t.source_topic() == sp.0 {
                t.close_partition(sp.1);
            }
        }
        self.open.remove(sp);
    }
}

pub(crate) fn lock(state: &Mutex<CopyState>) -> MutexGuard<'_, CopyState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) struct Follower {
    state: Arc<Mutex<CopyState>>,
    copies: Copies,
    offsets: BaseConsumer,
    restorer: Restorer,
    /// The copies' own counters (the worker's status reports only its owned partitions).
    status: Status,
    counts: HashMap<String, i32>,
}

impl Follower {
    /// A follower of `state`'s handles for the group `app_id`, restoring under
    /// `restore_app_id` (its restore consumer's group).
    pub(crate) fn new(
        kafka: &KafkaConfig,
        app_id: &str,
        restore_app_id: &str,
        state: Arc<Mutex<CopyState>>,
        copies: Copies,
    ) -> Result<Self> {
        // Reads the group's committed offsets (never subscribes, so never joins the group).
        let offsets: BaseConsumer = kafka
            .restore_consumer(app_id)
            .create()
            .map_err(StreamError::kafka("create offsets consumer"))?;
        Ok(Self {
            state,
            copies,
            offsets,
            restorer: Restorer::new(kafka, restore_app_id)?,
            status: Status::default(),
            counts: HashMap::new(),
        })
    }

    /// Runs rounds on a thread named `name` until `shutdown`, then closes the copies. The
    /// first round's result is shown to `after_first` (whatever it is, the rounds go on).
    pub(crate) fn spawn(
        mut self,
        name: &str,
        shutdown: Shutdown,
        after_first: impl FnOnce(&Result<()>) + Send + 'static,
    ) -> Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut after_first = Some(after_first);
                while !shutdown.is_triggered() {
                    let result = self.round(&shutdown);
                    if let Some(f) = after_first.take() {
                        f(&result);
                    }
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "copies' catch-up failed; retrying");
                    }
                    let until = Instant::now() + ROUND;
                    while !shutdown.is_triggered() && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                let mut state = lock(&self.state);
                for sp in state.open.clone() {
                    state.close(&sp);
                }
            })
            .map_err(|e| StreamError::Config(format!("cannot start the {name} thread: {e}")))
    }

    /// Opens the wanted copies, closes the others, and catches the open ones up. Nothing is
    /// caught up while the group's committed offsets cannot be read (the brokers are away):
    /// the round ends there, so a worker stopping meanwhile waits for one request at most.
    /// Stops between partitions once `shutdown` is triggered.
    pub(crate) fn round(&mut self, shutdown: &Shutdown) -> Result<()> {
        let wanted = self.wanted()?;
        let Some(committed) = self.committed(&wanted) else {
            return Ok(());
        };
        let shared = self.state.clone();
        let mut state = lock(&shared);
        for sp in state.open.clone() {
            if !wanted.contains(&sp) || state.owned.contains(&sp) {
                state.close(&sp);
            }
        }
        let changelogs: Vec<(String, i32)> = wanted
            .iter()
            .filter(|sp| !state.owned.contains(*sp))
            .flat_map(|sp| {
                let of_topic = state.handles.iter().filter(|t| t.source_topic() == sp.0);
                of_topic.map(|t| (t.changelog_topic().to_string(), sp.1))
            })
            .collect();
        // One round trip for all of them instead of one after another.
        self.restorer.prefetch_watermarks(&changelogs);
        // The stores of new copies open side by side, as an assignment's do: one after the
        // other, a start's eight global partitions waited 0.3-0.8 s on the disk's syncs.
        // Each opened store is marked open at once, so the end of the thread closes it.
        let mut to_open = Vec::new();
        for sp in wanted.iter().filter(|sp| !state.open.contains(*sp)) {
            if state.owned.contains(sp) {
                continue;
            }
            let n = self.partitions_of(&sp.0)?;
            for t in state.handles.iter().filter(|t| t.source_topic() == sp.0) {
                to_open.push((t.clone(), sp.clone(), n));
            }
        }
        let opened = parallel_map(&to_open, |(t, sp, n)| t.open_partition(sp.1, *n));
        let mut failed = None;
        for ((_, sp, _), result) in to_open.into_iter().zip(opened) {
            match result {
                Ok(_) => {
                    if !state.open.contains(&sp) {
                        let kind = self.copies.kind();
                        tracing::info!(topic = %sp.0, partition = sp.1, "keeping a {kind} copy");
                        state.open.insert(sp);
                    }
                }
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        for sp in wanted {
            if shutdown.is_triggered() {
                break;
            }
            if state.owned.contains(&sp) {
                continue;
            }
            let n = self.partitions_of(&sp.0)?;
            let handles: Vec<Arc<dyn TableRuntime>> = state
                .handles
                .iter()
                .filter(|t| t.source_topic() == sp.0)
                .cloned()
                .collect();
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

    fn wanted(&mut self) -> Result<BTreeSet<SourcePartition>> {
        match &self.copies {
            Copies::Standby {
                directory,
                replicas,
            } => {
                let owners: HashMap<SourcePartition, String> = directory
                    .owners()
                    .into_iter()
                    .map(|(sp, advert)| (sp, advert.worker_id))
                    .collect();
                Ok(standby_partitions(
                    &owners,
                    directory.worker_id(),
                    *replicas,
                ))
            }
            Copies::All => {
                let topics: BTreeSet<String> = lock(&self.state)
                    .handles
                    .iter()
                    .map(|t| t.source_topic().to_string())
                    .collect();
                let mut all = BTreeSet::new();
                for topic in topics {
                    let n = self.partitions_of(&topic)?;
                    all.extend((0..n).map(|p| (topic.clone(), p)));
                }
                Ok(all)
            }
        }
    }

    /// Partitions of `topic` (0 while the broker does not know it; asked again next time).
    fn partitions_of(&mut self, topic: &str) -> Result<i32> {
        if let Some(n) = self.counts.get(topic) {
            return Ok(*n);
        }
        let n = partition_count(self.offsets.client(), topic)?.unwrap_or(0);
        if n > 0 {
            self.counts.insert(topic.to_string(), n);
        }
        Ok(n)
    }

    /// The group's committed offsets of `partitions` (missing ones: none committed yet), or
    /// `None` when they cannot be read.
    fn committed(
        &self,
        partitions: &BTreeSet<SourcePartition>,
    ) -> Option<HashMap<SourcePartition, i64>> {
        if partitions.is_empty() {
            return Some(HashMap::new());
        }
        match committed_offsets(&self.offsets, partitions) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::debug!(error = %e, "committed offsets unavailable; copies wait");
                None
            }
        }
    }
}

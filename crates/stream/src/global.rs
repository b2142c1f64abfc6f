//! Global tables (Faust's `GlobalTable`, Kafka Streams' `GlobalKTable`): a read-only copy of a
//! whole table that every worker holds, whichever partitions it owns, so any worker answers
//! for any key from local state.
//!
//! ```
//! # use cta_stream_core::{App, testing::TestDriver};
//! let mut app = App::new(TestDriver::config("stations"));
//! let stations = app.table_on::<i32, String>("stations", "station-rows");
//! let everywhere = app.global_table(&stations);
//! # let _ = everywhere;
//! ```
//!
//! The table itself is written by agents on the owners of its partitions, as any table; the
//! copy follows the table's changelog, every partition of it, into stores of its own
//! (`{name}.global` next to the table's folder), with the loop standby replicas use
//! ([`crate::follow`]): it applies only checkpoints the group has committed, so it lags the
//! owner by up to a commit interval plus a round (500 ms), and never shows a change a crash
//! could still undo. On start the worker brings the copy up to the committed offsets before
//! it processes anything (a warm restart replays only the changelog's tail); then it is
//! followed live. A gap in the changelog (truncated before the copy's offset) is logged and
//! the copy restored from what remains, as any restore is.
//!
//! The test driver keeps the copy too: each of its checkpoints applies the flushed changelog
//! records to it.

use crate::error::Result;
use crate::follow::{Copies, CopyState, Follower};
use crate::names;
use crate::shutdown::Shutdown;
use crate::table::{Entries, Table, TableKey, TableRuntime, TableValue};
use crate::KafkaConfig;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

/// A table every worker holds whole ([`crate::App::global_table`]). Read-only; clones share the
/// same copy.
pub struct GlobalTable<K, V> {
    copy: Table<K, V>,
}

impl<K, V> Clone for GlobalTable<K, V> {
    fn clone(&self) -> Self {
        Self {
            copy: self.copy.clone(),
        }
    }
}

impl<K: TableKey, V: TableValue> GlobalTable<K, V> {
    pub(crate) fn of(table: &Table<K, V>) -> Self {
        Self {
            copy: table.global_copy(),
        }
    }

    /// The handle the runtime follows the changelog with.
    pub(crate) fn runtime(&self) -> Arc<dyn TableRuntime> {
        self.copy.runtime()
    }

    pub fn name(&self) -> &str {
        self.copy.name()
    }

    /// The value of `key` as of the latest committed checkpoint this copy has followed.
    pub fn value(&self, key: &K) -> Result<Option<V>> {
        self.copy.value(key)
    }

    /// Every value held under `key`, one per partition that has it (see [`Table::get_all`]).
    pub fn get_all(&self, key: &K) -> Result<Vec<V>> {
        self.copy.get_all(key)
    }

    /// Every entry, as (partition, key, value), sorted by key.
    pub fn items(&self) -> Result<Vec<(i32, K, V)>> {
        self.copy.items()
    }

    /// [`GlobalTable::items`] without copying, until the copy changes.
    pub fn items_shared(&self) -> Result<Entries<K, V>> {
        self.copy.items_shared()
    }

    /// How many changelog records this worker's copy has read since the app was built (a warm
    /// restart replays only what the changelog gained while the worker was away).
    pub fn restored(&self) -> u64 {
        self.copy.restored()
    }

    /// The partitions the copy holds (all of the source topic's, once followed).
    pub fn partitions(&self) -> Vec<i32> {
        let mut p = self.copy.open_partitions();
        p.sort_unstable();
        p
    }
}

/// Word that the global copies have been brought up to the group's committed offsets once:
/// the worker waits for it before it processes anything ([`GlobalsReady::wait`]), so the
/// restore runs while the worker joins its group and opens its own stores.
pub(crate) struct GlobalsReady(mpsc::Receiver<()>);

impl GlobalsReady {
    /// Blocks until the first catch-up has ended: done, failed (the copies follow on and
    /// a warning says so), or cut short by the worker's shutdown.
    pub(crate) fn wait(self) {
        let _ = self.0.recv();
    }
}

/// Brings the global copies up to the group's committed offsets, then follows them, on a
/// thread until `shutdown`. `None` when the app has no global table.
pub(crate) fn follow(
    kafka: &KafkaConfig,
    app_id: &str,
    copies: &[Arc<dyn TableRuntime>],
    shutdown: Shutdown,
) -> Result<Option<(JoinHandle<()>, GlobalsReady)>> {
    if copies.is_empty() {
        return Ok(None);
    }
    let state = CopyState::new(copies.to_vec());
    let restore_as = names::global_app_id(app_id);
    let follower = Follower::new(kafka, app_id, &restore_as, state, Copies::All)?;
    let began = std::time::Instant::now();
    let tables = copies.len();
    let (done, ready) = mpsc::sync_channel(1);
    let thread = follower.spawn("global", shutdown, move |first| {
        if first.is_ok() {
            tracing::info!(
                tables,
                secs = format!("{:.2}", began.elapsed().as_secs_f64()),
                "global tables restored"
            );
        }
        let _ = done.send(());
    })?;
    Ok(Some((thread, GlobalsReady(ready))))
}

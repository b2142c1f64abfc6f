//! The app: declares tables and agents, then runs them in one consumer group.
//!
//! This file owns the builder (what an app is made of). The rest of the app's life is in the
//! submodules, one concern each:
//! - [`config`]: the settings ([`AppConfig`]);
//! - `runtime`: the worker thread: one group consumer polled on a dedicated thread (Faust's
//!   conductor; `poll`), each record routed by topic to its agents (`routing`) on a thread of
//!   their own (`agents`), a checkpoint
//!   ([`crate::checkpoint`]) every `commit_interval` or `commit_every` records, and once caught
//!   up (`checkpoint_when_idle`); the timers
//!   ([`crate::timer`]) run between batches, and output records ([`crate::emit`]) wait in the
//!   outbox for the checkpoint;
//! - `rebalance`: assignment and revocation: on assignment each table partition is restored
//!   ([`crate::table::recovery`]) before its source partition is fetched, and the source resumes
//!   at the offset stored with the data;
//! - `state`: what the poll loop and the rebalance callbacks share;
//! - `dead_letter`: records an agent cannot decode, sent to `<topic>.dlq`.
//!
//! Not here: the commit order (`checkpoint`), stores and recovery (`table`), Kafka settings
//! (`crate::config`).

mod agents;
mod config;
mod confirm;
mod dead_letter;
mod poll;
mod rebalance;
mod routing;
mod runtime;
mod state;

pub use config::AppConfig;

use crate::agent::Agent;
use crate::directory::Directory;
use crate::emit::Outbox;
use crate::global::GlobalTable;
use crate::names;
use crate::repartition::RepartitionSpec;
use crate::sensor::Status;
use crate::session::{SessionTable, Sessions};
use crate::table::{Table, TableKey, TableRuntime, TableSpec, TableValue};
use crate::timer::Timers;
use crate::window::{WindowedTable, Windows};
use std::collections::HashSet;
use std::sync::Arc;

/// An app: its tables and agents, run in one consumer group by [`App::run`] (in `runtime`).
pub struct App {
    pub(crate) config: AppConfig,
    directory: Option<Directory>,
    pub(crate) agents: Vec<Box<dyn Agent>>,
    pub(crate) tables: Vec<Arc<dyn TableRuntime>>,
    /// Copies of whole tables every worker keeps ([`crate::global`]).
    pub(crate) globals: Vec<Arc<dyn TableRuntime>>,
    /// Repartition topics declared by `group_by` ([`crate::repartition`]).
    pub(crate) repartitions: Vec<RepartitionSpec>,
    /// Timers on source partitions ([`crate::timer`]), run by the poll loop.
    pub(crate) timers: Timers,
    /// Records for output topics (closed windows, [`crate::emit`]), sent by the checkpoint.
    pub(crate) outbox: Arc<Outbox>,
    /// Output topics to create: (topic, source topic whose partition count it takes).
    pub(crate) outputs: Vec<(String, String)>,
    status: Arc<Status>,
}

impl App {
    pub fn new(config: AppConfig) -> Self {
        Self {
            directory: config.advertise_url.as_deref().map(Directory::new),
            config,
            agents: Vec::new(),
            tables: Vec::new(),
            globals: Vec::new(),
            repartitions: Vec::new(),
            timers: Timers::default(),
            outbox: Arc::default(),
            outputs: Vec::new(),
            status: Arc::default(),
        }
    }

    pub fn config(&self) -> &AppConfig {
        &self.config
    }

    /// Declares a table; the returned handle is for agents (writes) and queries (reads).
    pub fn table<K: TableKey, V: TableValue>(&mut self, spec: TableSpec) -> Table<K, V> {
        let t = Table::new(&self.config.app_id, &self.config.data_dir, spec);
        self.tables.push(t.runtime());
        t
    }

    /// Declares a windowed table (and the small table keeping its stream time) on `spec`'s
    /// source topic.
    pub fn windowed_table<K: TableKey, V: TableValue>(
        &mut self,
        spec: TableSpec,
        windows: Windows,
    ) -> WindowedTable<K, V> {
        let (table, time) = self.table_with_stream_time(spec);
        WindowedTable::new(table, time, windows)
    }

    /// The table `spec` names and the table of its partitions' stream time (same source).
    fn table_with_stream_time<K: TableKey, V: TableValue>(
        &mut self,
        spec: TableSpec,
    ) -> (Table<K, V>, Table<String, i64>) {
        let time_spec = TableSpec {
            name: names::stream_time_table(&spec.name),
            source_topic: spec.source_topic.clone(),
            changelog_topic: None,
        };
        (self.table(spec), self.table(time_spec))
    }

    /// A table of session windows per key ([`crate::session`]), with its stream time kept in
    /// a table of its own, as for [`App::windowed_table`].
    pub fn session_table<K: TableKey, V: TableValue>(
        &mut self,
        spec: TableSpec,
        sessions: Sessions,
    ) -> SessionTable<K, V> {
        let (table, time) = self.table_with_stream_time(spec);
        SessionTable::new(table, time, sessions)
    }

    /// Keeps a copy of the whole of `table` on every worker, followed from its changelog
    /// ([`crate::global`]): read it anywhere, whichever partitions this worker owns.
    pub fn global_table<K: TableKey, V: TableValue>(
        &mut self,
        table: &Table<K, V>,
    ) -> GlobalTable<K, V> {
        let global = GlobalTable::of(table);
        self.globals.push(global.runtime());
        global
    }

    pub fn agent(&mut self, agent: impl Agent + 'static) {
        self.agents.push(Box::new(agent));
    }

    pub fn status(&self) -> Arc<Status> {
        self.status.clone()
    }

    /// The worker directory, when `advertise_url` is set.
    pub fn directory(&self) -> Option<Directory> {
        self.directory.clone()
    }

    /// Source topics, in declaration order without duplicates.
    pub fn source_topics(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        self.agents
            .iter()
            .map(|a| a.topic().to_string())
            .filter(|t| seen.insert(t.clone()))
            .collect()
    }
}

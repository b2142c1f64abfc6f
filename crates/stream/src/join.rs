//! Stream-table joins (Kafka Streams' `KStream#leftJoin` with a `KTable` or a `GlobalKTable`):
//! each record of a topic is handed to a closure together with the table's current row for a
//! key the record names.
//!
//! ```
//! # use cta_stream_core::{App, testing::TestDriver};
//! let mut app = App::new(TestDriver::config("enrich"));
//! let names = app.table_on::<i32, String>("names", "name-rows");
//! let names = app.global_table(&names);
//! app.join("visits", &names, |r| Ok(r.key_str()?.parse().unwrap_or(0)), |r, name: Option<String>| {
//!     // `name` is None while the table has no row for the id.
//!     Ok(())
//! });
//! ```
//!
//! What a record sees: the row as the table holds it when the record is processed; a join
//! looks up, it never waits or buffers. A record that arrives before its row gets `None` (a
//! left join: the closure decides whether to drop it, as an inner join would, or to go on
//! without the row), and is not joined again when the row comes; a row that changes later does
//! not change what earlier records saw. With a [`GlobalTable`] the row is the latest committed
//! checkpoint this worker's copy has followed (up to a commit interval plus 500 ms behind the
//! owner; see [`crate::global`]); with a [`Table`] it is the table's value in the record's own
//! partition, writes not yet committed included, so the table must be co-partitioned with the
//! stream (fed by the same topic, or one with the same partition count and keys).

use crate::app::App;
use crate::error::Result;
use crate::global::GlobalTable;
use crate::record::Record;
use crate::table::{Table, TableKey, TableValue};

/// A table a stream can be joined with ([`App::join`]).
pub trait JoinTable<K, V>: Send + 'static {
    /// The row for `key` as `record` sees it, if any.
    fn lookup(&self, record: &Record<'_>, key: &K) -> Result<Option<V>>;
}

/// Co-partitioned: the row in the record's partition of the table.
impl<K: TableKey, V: TableValue> JoinTable<K, V> for Table<K, V> {
    fn lookup(&self, record: &Record<'_>, key: &K) -> Result<Option<V>> {
        self.get(record, key)
    }
}

/// Any partition: the worker's copy of the whole table.
impl<K: TableKey, V: TableValue> JoinTable<K, V> for GlobalTable<K, V> {
    fn lookup(&self, _record: &Record<'_>, key: &K) -> Result<Option<V>> {
        self.value(key)
    }
}

impl App {
    /// Joins `topic` with `table`: for each record, `key` names the table key to look up and
    /// `f` runs with the record and the row (`None` when there is none; see the module's
    /// semantics). An error from `key` or `f` of kind Data dead-letters the record, as in any
    /// agent.
    pub fn join<K, V, T>(
        &mut self,
        topic: impl Into<String>,
        table: &T,
        key: impl Fn(&Record<'_>) -> Result<K> + Send + 'static,
        mut f: impl FnMut(&Record<'_>, Option<V>) -> Result<()> + Send + 'static,
    ) where
        T: JoinTable<K, V> + Clone,
    {
        let table = table.clone();
        self.agent_fn(topic, move |r| {
            let k = key(r)?;
            let row = table.lookup(r, &k)?;
            f(r, row)
        });
    }
}

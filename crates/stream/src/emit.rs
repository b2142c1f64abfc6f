//! Emit-final windows (Kafka Streams' `suppress(untilWindowCloses)`, Quix's `.final()`): each
//! window of a [`WindowedTable`] is written to an output topic once, when it closes, with its
//! final value.
//!
//! A window closes when its partition's stream time reaches its end plus the grace period:
//! from then on the table drops records for it as late, so the value cannot change. The
//! windowed table checks this whenever a record moves stream time on, and hands every newly
//! closed window of the partition (oldest first) to the app's [`Outbox`], together with a mark
//! "closed windows emitted up to start S" kept in the table's stream-time table. The
//! checkpoint ([`crate::checkpoint`]) sends the outbox with the changelog records, before the
//! flush, and writes the mark to the store with the data:
//!
//! - exactly once (`Guarantee::ExactlyOnce`): the emitted records, the mark's changelog record
//!   and the source offsets commit in one transaction; a crash aborts all three and the
//!   records read again emit the windows again in the next one, so a `read_committed` reader
//!   sees each window once;
//! - at least once (the default): a crash after the flush and before the store write emits
//!   that checkpoint's windows a second time on restart; otherwise each window once.

use crate::app::App;
use crate::error::Result;
use crate::table::{TableKey, TableValue};
use crate::window::WindowedTable;
use std::sync::{Arc, Mutex};

/// One output record waiting for the next checkpoint.
pub(crate) struct Emit {
    pub(crate) topic: String,
    pub(crate) key: Vec<u8>,
    pub(crate) value: Vec<u8>,
    pub(crate) timestamp: i64,
}

/// Output records produced by the record path, sent by the next checkpoint (in its
/// transaction under exactly-once). Lost, with the write caches, by a crash.
#[derive(Default)]
pub(crate) struct Outbox {
    pending: Mutex<Vec<Emit>>,
}

impl Outbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Emit>> {
        // Nothing panics while holding this lock; a poisoned guard still holds whole records.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn push(&self, emit: Emit) {
        self.lock().push(emit);
    }

    /// Everything pending, in the order pushed.
    pub(crate) fn take(&self) -> Vec<Emit> {
        std::mem::take(&mut *self.lock())
    }

    /// Drops what is pending (the driver's crash).
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}

/// A closed window as the encoder sees it.
#[derive(Debug, Clone, Copy)]
pub struct ClosedWindow<'a, K, V> {
    pub key: &'a K,
    /// Window start and end (exclusive), ms since the epoch.
    pub start: i64,
    pub end: i64,
    pub value: &'a V,
}

/// Turns a closed window into the output record's key and value bytes.
pub type WindowEncoder<K, V> = dyn Fn(&ClosedWindow<'_, K, V>) -> (Vec<u8>, Vec<u8>) + Send + Sync;

/// Where a windowed table's closed windows go.
pub(crate) struct EmitFinal<K, V> {
    pub(crate) topic: String,
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) encode: Arc<WindowEncoder<K, V>>,
}

impl<K, V> EmitFinal<K, V> {
    pub(crate) fn emit(&self, window: &ClosedWindow<'_, K, V>) {
        let (key, value) = (self.encode)(window);
        self.outbox.push(Emit {
            topic: self.topic.clone(),
            key,
            value,
            timestamp: window.end,
        });
    }
}

impl App {
    /// Writes every window of `table` to `topic` once it has closed (end plus grace behind
    /// the partition's stream time), with its final value, keyed and encoded by `encode`.
    /// The topic is created with the source topic's partition count; records go to the
    /// partition of their key. Exactly once under `Guarantee::ExactlyOnce`, at least once
    /// otherwise (see the module docs). A table emits to one topic; a second call replaces
    /// nothing and returns an error.
    pub fn emit_final<K: TableKey, V: TableValue>(
        &mut self,
        table: &WindowedTable<K, V>,
        topic: &str,
        encode: impl Fn(&ClosedWindow<'_, K, V>) -> (Vec<u8>, Vec<u8>) + Send + Sync + 'static,
    ) -> Result<()> {
        table.set_emit(EmitFinal {
            topic: topic.to_string(),
            outbox: self.outbox.clone(),
            encode: Arc::new(encode),
        })?;
        self.outputs
            .push((topic.to_string(), table.source_topic().to_string()));
        Ok(())
    }
}

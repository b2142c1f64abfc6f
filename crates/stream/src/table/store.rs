//! One RocksDB database per table partition. Data lives in the default column family; the
//! `meta` family holds, written in the same batch as the data, the source offset the data
//! reflects, the last changelog offset applied, and the store's identity (app, table,
//! partition) so a foreign or mismatched directory is refused rather than trusted.

use crate::error::{Result, StreamError};
use crate::names::{
    CF_META, META_CHANGELOG_OFFSET, META_IDENTITY, META_SOURCE_OFFSET, META_WRITER_EPOCH,
};
use rocksdb::{ColumnFamilyDescriptor, IteratorMode, Options, WriteBatch, WriteOptions, DB};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a store directory belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreIdentity {
    pub app_id: String,
    pub table: String,
    pub partition: i32,
    pub partitions: i32,
}

/// Offsets stored atomically with the data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreOffsets {
    /// Next source offset to process; everything before it is reflected in the data.
    pub source: Option<i64>,
    /// Last changelog offset whose effect is in the data.
    pub changelog: Option<i64>,
    /// The highest writer epoch among the changelog records up to `changelog`: those read
    /// into the data, and this worker's own (confirmed) epoch once a checkpoint committed
    /// under it; a restore skips later records below it (see
    /// [`crate::names::HEADER_WRITER_EPOCH`]).
    pub epoch: Option<i64>,
}

/// Write buffer (memtable) size of a store's data and of its metadata: many small stores,
/// each flushed to disk when its memtable fills.
const DATA_WRITE_BUFFER: usize = 4 << 20;
const META_WRITE_BUFFER: usize = 1 << 20;

/// RocksDB memory shared by every store of the process, so it does not grow with the number
/// of table partitions: one block cache, and one budget for all memtables (when the total
/// passes it, the largest memtable is flushed; writes never stall for it).
mod memory {
    use rocksdb::{BlockBasedOptions, Cache, Options, WriteBufferManager};
    use std::sync::OnceLock;

    /// All memtables of the process together.
    pub const WRITE_BUFFERS_TOTAL: usize = 32 << 20;
    /// The block cache for reads of flushed data.
    pub const BLOCK_CACHE: usize = 16 << 20;

    struct Shared {
        cache: Cache,
        buffers: WriteBufferManager,
    }

    fn shared() -> &'static Shared {
        static SHARED: OnceLock<Shared> = OnceLock::new();
        SHARED.get_or_init(|| Shared {
            cache: Cache::new_lru_cache(BLOCK_CACHE),
            buffers: WriteBufferManager::new_write_buffer_manager(WRITE_BUFFERS_TOTAL, false),
        })
    }

    /// Puts a database on the shared memtable budget.
    pub fn share(opts: &mut Options) {
        opts.set_write_buffer_manager(&shared().buffers);
    }

    /// Options of a column family: its write buffer, at most two memtables, the shared cache.
    pub fn family(write_buffer: usize) -> Options {
        let mut opts = Options::default();
        opts.set_write_buffer_size(write_buffer);
        opts.set_max_write_buffer_number(2);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&shared().cache);
        opts.set_block_based_table_factory(&table);
        opts
    }
}

/// A change to write: key bytes and the new value bytes, `None` to delete.
pub type Change = (Vec<u8>, Option<Vec<u8>>);

pub struct PartitionStore {
    db: DB,
    path: PathBuf,
}

impl PartitionStore {
    /// Opens (creating if needed) the store at `path`, refusing one that belongs to another
    /// app, table, partition or partition count.
    pub fn open(path: &Path, identity: &StoreIdentity) -> Result<Self> {
        std::fs::create_dir_all(path).map_err(|source| StreamError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_keep_log_file_num(2);
        memory::share(&mut opts);
        // No preallocation (fallocate): RocksDB would reserve about 1.1 x the largest write
        // buffer ahead for each store's write-ahead log, which with a few dozen stores can be
        // more than a small data dir has, and a disk that fills up would go unnoticed until a
        // log outgrew its reservation. Without it a full disk
        // fails the next write, which stops the worker before that checkpoint commits.
        let opts = opts
            .get_options_from_string("allow_fallocate=false")
            .map_err(|source| StreamError::Store {
                path: path.to_path_buf(),
                source,
            })?;
        // Column families take their own options (not the database's): without them each
        // family had RocksDB's default 64 MiB write buffer.
        let cfs = vec![
            ColumnFamilyDescriptor::new(
                rocksdb::DEFAULT_COLUMN_FAMILY_NAME,
                memory::family(DATA_WRITE_BUFFER),
            ),
            ColumnFamilyDescriptor::new(CF_META, memory::family(META_WRITE_BUFFER)),
        ];
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(|source| {
            if source.kind() == rocksdb::ErrorKind::Corruption {
                StreamError::StoreCorrupt {
                    path: path.to_path_buf(),
                    cause: source,
                }
            } else {
                StreamError::Store {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        let store = Self {
            db,
            path: path.to_path_buf(),
        };
        match store.get_meta(META_IDENTITY)? {
            None => {
                let mut b = WriteBatch::default();
                b.put_cf(
                    store.meta_cf()?,
                    META_IDENTITY,
                    serde_json::to_vec(identity).unwrap_or_default(),
                );
                store.write(b)?;
            }
            Some(bytes) => {
                let found: StoreIdentity = serde_json::from_slice(&bytes).map_err(|e| StreamError::StoreMismatch {
                    path: path.to_path_buf(),
                    reason: format!("unreadable identity ({e}); delete the directory or run with --reset-state to rebuild it from the changelog"),
                })?;
                if &found != identity {
                    return Err(StreamError::StoreMismatch {
                        path: path.to_path_buf(),
                        reason: format!(
                            "belongs to app '{}' table '{}' partition {}/{} but this worker is app '{}' table '{}' partition {}/{}; use another --data-dir, or run with --reset-state to rebuild it from the changelog",
                            found.app_id, found.table, found.partition, found.partitions,
                            identity.app_id, identity.table, identity.partition, identity.partitions
                        ),
                    });
                }
            }
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn meta_cf(&self) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(CF_META)
            .ok_or_else(|| StreamError::StoreMismatch {
                path: self.path.clone(),
                reason: "missing meta column family".into(),
            })
    }

    fn store_err(&self) -> impl Fn(rocksdb::Error) -> StreamError + '_ {
        move |source| StreamError::Store {
            path: self.path.clone(),
            source,
        }
    }

    fn get_meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db
            .get_cf(self.meta_cf()?, key)
            .map_err(self.store_err())
    }

    fn meta_i64(&self, key: &[u8]) -> Result<Option<i64>> {
        Ok(self
            .get_meta(key)?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map(i64::from_be_bytes))
    }

    pub fn offsets(&self) -> Result<StoreOffsets> {
        Ok(StoreOffsets {
            source: self.meta_i64(META_SOURCE_OFFSET)?,
            changelog: self.meta_i64(META_CHANGELOG_OFFSET)?,
            epoch: self.meta_i64(META_WRITER_EPOCH)?,
        })
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get(key).map_err(self.store_err())
    }

    /// All key/value pairs, in key order.
    pub fn items(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.db
            .iterator(IteratorMode::Start)
            .map(|r| {
                r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(self.store_err())
            })
            .collect()
    }

    /// Writes changes and offsets in one atomic batch.
    pub fn commit(&self, changes: &[Change], offsets: StoreOffsets) -> Result<()> {
        let mut b = WriteBatch::default();
        for (k, v) in changes {
            match v {
                Some(v) => b.put(k, v),
                None => b.delete(k),
            }
        }
        let meta = self.meta_cf()?;
        if let Some(s) = offsets.source {
            b.put_cf(meta, META_SOURCE_OFFSET, s.to_be_bytes());
        }
        if let Some(c) = offsets.changelog {
            b.put_cf(meta, META_CHANGELOG_OFFSET, c.to_be_bytes());
        }
        if let Some(e) = offsets.epoch {
            b.put_cf(meta, META_WRITER_EPOCH, e.to_be_bytes());
        }
        self.write(b)
    }

    fn write(&self, b: WriteBatch) -> Result<()> {
        // WAL on, no fsync: survives kill -9 (the OS keeps the log); after a machine crash the
        // store may be older, and recovery replays the changelog tail to catch up. The batch
        // is appended to the WAL by this call (not by a background flush), so a disk that is
        // full or read-only fails it here, before the checkpoint commits any offset.
        let mut wo = WriteOptions::default();
        wo.set_sync(false);
        self.db.write_opt(b, &wo).map_err(self.store_err())
    }
}

impl Drop for PartitionStore {
    /// A graceful close writes the memtables out, so the next open does not replay the write
    /// log (a 1M-record store took 0.35 s longer to reopen without this). After kill -9 the
    /// log is replayed as usual.
    fn drop(&mut self) {
        if let Err(e) = self.db.flush() {
            tracing::warn!(path = %self.path.display(), error = %e, "store flush on close failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(p: i32) -> StoreIdentity {
        StoreIdentity {
            app_id: "app".into(),
            table: "t".into(),
            partition: p,
            partitions: 4,
        }
    }

    #[test]
    fn data_and_offsets_persist_together() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = PartitionStore::open(dir.path(), &ident(1)).unwrap();
            assert_eq!(s.offsets().unwrap(), StoreOffsets::default());
            s.commit(
                &[
                    (b"a".to_vec(), Some(b"1".to_vec())),
                    (b"b".to_vec(), Some(b"2".to_vec())),
                ],
                StoreOffsets {
                    source: Some(10),
                    changelog: Some(3),
                    epoch: None,
                },
            )
            .unwrap();
            s.commit(
                &[(b"a".to_vec(), None)],
                StoreOffsets {
                    source: Some(12),
                    changelog: Some(4),
                    epoch: None,
                },
            )
            .unwrap();
        }
        let s = PartitionStore::open(dir.path(), &ident(1)).unwrap();
        assert_eq!(
            s.offsets().unwrap(),
            StoreOffsets {
                source: Some(12),
                changelog: Some(4),
                epoch: None,
            }
        );
        assert_eq!(s.get(b"a").unwrap(), None);
        assert_eq!(s.items().unwrap(), vec![(b"b".to_vec(), b"2".to_vec())]);
    }

    /// Garbage in CURRENT or in the MANIFEST it names: refused, saying how to rebuild.
    #[test]
    fn corrupt_store_is_refused_with_the_way_out() {
        for damaged in ["CURRENT", "MANIFEST"] {
            let dir = tempfile::tempdir().unwrap();
            {
                let s = PartitionStore::open(dir.path(), &ident(1)).unwrap();
                s.commit(
                    &[(b"a".to_vec(), Some(b"1".to_vec()))],
                    StoreOffsets {
                        source: Some(1),
                        changelog: None,
                        epoch: None,
                    },
                )
                .unwrap();
            }
            let file = if damaged == "CURRENT" {
                dir.path().join("CURRENT")
            } else {
                let current = std::fs::read_to_string(dir.path().join("CURRENT")).unwrap();
                dir.path().join(current.trim())
            };
            std::fs::write(&file, b"\x00garbage, not a RocksDB file\xff").unwrap();
            let err = PartitionStore::open(dir.path(), &ident(1)).err().unwrap();
            assert!(
                matches!(err, StreamError::StoreCorrupt { .. }),
                "{damaged}: {err:?}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains(&dir.path().display().to_string())
                    && msg.contains("is corrupt")
                    && msg.contains("--reset-state")
                    && !msg.contains('\n'),
                "{damaged}: {msg}"
            );
        }
    }

    #[test]
    fn foreign_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(PartitionStore::open(dir.path(), &ident(1)).unwrap());
        let err = PartitionStore::open(dir.path(), &ident(2)).err().unwrap();
        let msg = err.to_string();
        assert!(
            msg.contains("partition 1/4") && msg.contains("--reset-state"),
            "{msg}"
        );
    }
}

//! Reserved names: internal topic names, record header names and store metadata keys.
//! Everything the core writes that another process (or a later version) must recognise is
//! spelled here once.

/// Faust's changelog naming, `{app_id}-{table}-changelog`, so an app seeded by Faust or by
/// this worker finds the same topic.
pub fn changelog_topic(app_id: &str, table: &str) -> String {
    format!("{app_id}-{table}-changelog")
}

/// Dead-letter topic of a source topic.
pub fn dlq_topic(source_topic: &str) -> String {
    format!("{source_topic}.dlq")
}

/// Header on every changelog record: the source offset (next offset to read) that the
/// checkpoint containing this record covers. Recovery applies a changelog record only when
/// this is at or below the offset the restored state is known to reflect.
pub const HEADER_SOURCE_OFFSET: &str = "cta-stream.source-offset";

/// Dead-letter headers.
pub const HEADER_DLQ_ERROR: &str = "error";
pub const HEADER_DLQ_TOPIC: &str = "source.topic";
pub const HEADER_DLQ_PARTITION: &str = "source.partition";
pub const HEADER_DLQ_OFFSET: &str = "source.offset";

/// Metadata keys in a partition store's `meta` column family.
pub const META_SOURCE_OFFSET: &[u8] = b"source_offset";
pub const META_CHANGELOG_OFFSET: &[u8] = b"changelog_offset";
pub const META_IDENTITY: &[u8] = b"identity";

/// Column family holding store metadata (the data lives in the default family).
pub const CF_META: &str = "meta";

//! Reserved names: internal topics, consumer groups and client ids, files, record headers and
//! store metadata keys. Everything the core writes that another process (or a later version)
//! must recognise is spelled here once; what the names are used for is the other modules'.

/// Faust's changelog naming, `{app_id}-{table}-changelog`, so an app seeded by Faust or by
/// this worker finds the same topic.
pub fn changelog_topic(app_id: &str, table: &str) -> String {
    format!("{app_id}-{table}-changelog")
}

/// The app's directory topic: every worker's advert of its partitions and query URL.
pub fn directory_topic(app_id: &str) -> String {
    format!("{app_id}-workers")
}

/// Group id of the assign-only consumer that reads the directory topic.
pub fn directory_group(app_id: &str) -> String {
    format!("{app_id}-directory")
}

/// The small table keeping a windowed table's stream time (it has its own changelog).
pub fn stream_time_table(table: &str) -> String {
    format!("{table}-stream-time")
}

/// Faust's and Kafka Streams' repartition topic naming, `{app_id}-{name}-repartition`: where
/// records re-keyed by a `group_by` go, consumed by the app's downstream agents.
pub fn repartition_topic(app_id: &str, name: &str) -> String {
    format!("{app_id}-{name}-repartition")
}

/// The small table keeping, per repartition topic partition, the highest upstream offset
/// applied per upstream partition (it has its own changelog).
pub fn repartition_seen_table(name: &str) -> String {
    format!("{name}-repartition-seen")
}

/// Group id of the assign-only consumer that restores changelogs (it never joins the group).
pub fn restore_group(app_id: &str) -> String {
    format!("{app_id}-restore")
}

/// The app id standby copies restore under, so their restore consumer's group is
/// `{app_id}-standby-restore`.
pub fn standby_app_id(app_id: &str) -> String {
    format!("{app_id}-standby")
}

/// The app id global tables' copies restore under (restore consumer group
/// `{app_id}-global-restore`).
pub fn global_app_id(app_id: &str) -> String {
    format!("{app_id}-global")
}

/// The folder (next to the table's own) holding a global table's copy of every partition.
pub fn global_copy_dir(table: &str) -> String {
    format!("{table}.global")
}

/// File in the data dir keeping the worker's transactional id across restarts.
pub fn transactional_id_file(app_id: &str) -> String {
    format!("{app_id}.transactional-id")
}

/// File in the data dir keeping the worker's static group member id across restarts.
pub fn group_instance_id_file(app_id: &str) -> String {
    format!("{app_id}.group-instance-id")
}

/// A new id kept in the data dir (transactional or group member): the app id and a random
/// suffix.
pub fn kept_id(app_id: &str, suffix: u64) -> String {
    format!("{app_id}-{suffix:016x}")
}

/// Dead-letter topic of a source topic.
pub fn dlq_topic(source_topic: &str) -> String {
    format!("{source_topic}.dlq")
}

/// Header on every changelog record: the source offset (next offset to read) that the
/// checkpoint containing this record covers. Recovery applies a changelog record only when
/// this is at or below the offset the restored state is known to reflect.
pub const HEADER_SOURCE_OFFSET: &str = "cta-stream.source-offset";

/// Header on every changelog record: the writer epoch of the worker that owned the partition
/// when it wrote the record. Each owner takes an epoch above every one its restore saw, so a
/// record with a lower epoch after a higher one came from a worker that kept writing after it
/// lost the partition (a zombie), and recovery skips it.
pub const HEADER_WRITER_EPOCH: &str = "cta-stream.writer-epoch";

/// Dead-letter headers.
pub const HEADER_DLQ_ERROR: &str = "error";
pub const HEADER_DLQ_TOPIC: &str = "source.topic";
pub const HEADER_DLQ_PARTITION: &str = "source.partition";
pub const HEADER_DLQ_OFFSET: &str = "source.offset";

/// Metadata keys in a partition store's `meta` column family.
pub const META_SOURCE_OFFSET: &[u8] = b"source_offset";
pub const META_CHANGELOG_OFFSET: &[u8] = b"changelog_offset";
pub const META_WRITER_EPOCH: &[u8] = b"writer_epoch";
pub const META_IDENTITY: &[u8] = b"identity";

/// Column family holding store metadata (the data lives in the default family).
pub const CF_META: &str = "meta";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_ones_other_processes_expect() {
        // Faust's changelog naming and the topics an operator sees in a listing.
        assert_eq!(changelog_topic("cta", "weather"), "cta-weather-changelog");
        assert_eq!(dlq_topic("turnstile"), "turnstile.dlq");
        assert_eq!(directory_topic("cta"), "cta-workers");
        assert_eq!(restore_group(&standby_app_id("cta")), "cta-standby-restore");
        assert_eq!(stream_time_table("hourly"), "hourly-stream-time");
        assert_eq!(
            repartition_topic("cta", "by-station"),
            "cta-by-station-repartition"
        );
        assert_eq!(
            repartition_seen_table("by-station"),
            "by-station-repartition-seen"
        );
        assert_eq!(kept_id("cta", 255), "cta-00000000000000ff");
        assert_eq!(transactional_id_file("cta"), "cta.transactional-id");
        assert_eq!(group_instance_id_file("cta"), "cta.group-instance-id");
    }
}

//! The benchmark programs measure real work: the throughput run's produced counts agree with
//! the topic read back independently, the worker's table agrees with both, a non-empty topic is
//! refused, and the recovery run restores exact counts from a seeded changelog.
//! Speed is never asserted.

#[path = "../common/mod.rs"]
mod common;

use common::{count_turnstile, embedded_env};
use cta_stream_bench::env::BrokerChoice;
use cta_stream_bench::recovery::{self, Build, RecoveryOptions};
use cta_stream_bench::throughput::{self, ThroughputOptions};
use cta_stream_bench::workload::counts_checksum;
use cta_stream_bench::BenchError;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throughput_counts_match_the_topic_and_a_full_topic_is_refused() {
    let env = embedded_env().await;
    let choice = BrokerChoice::External {
        kafka: env.kafka.clone(),
        registry: env.registry.clone(),
    };
    let dir = tempfile::tempdir().unwrap();
    let opts = ThroughputOptions {
        records: 12_345,
        seed: 3,
        partitions: 4,
        work_dir: dir.path().to_path_buf(),
        keep_data: false,
        timeout: Duration::from_secs(120),
        perf_control: None,
        commit_interval: None,
        commit_every: None,
        agents_inline: false,
    };
    let report = throughput::run(&choice, &opts).await.unwrap();

    let on_topic = count_turnstile(&env).await;
    assert_eq!(on_topic.values().sum::<i64>(), 12_345);
    assert_eq!(report.produce.per_station, on_topic);
    // The table's checksum equals the checksum of the independently counted topic.
    assert_eq!(report.table_checksum, counts_checksum(&on_topic));
    assert_eq!(report.expected_checksum, report.table_checksum);
    assert!(
        report.produce.per_station.len() > 50,
        "stations drawn from the dataset"
    );
    assert!(report.raw.records_per_sec > 0.0 && report.worker.records_per_sec > 0.0);
    assert!(report.worker.commits >= 1);
    // The batch ratio is taken against the faster of the two batch consumer runs.
    let (before, after) = (&report.raw_batch, &report.raw_batch_after);
    assert!(before.records_per_sec_from_first > 0.0 && after.records_per_sec_from_first > 0.0);
    let strongest = before
        .records_per_sec_from_first
        .max(after.records_per_sec_from_first);
    let expected = report.worker.records_per_sec_from_first / strongest;
    assert!(
        (report.ratio_batch - expected).abs() < 1e-9,
        "ratio_batch {} against the faster batch run: {expected}",
        report.ratio_batch
    );

    // A second run on the same broker would count old records: refused.
    let again = throughput::run(&choice, &opts).await;
    match again {
        Err(BenchError::TopicNotEmpty { records, .. }) => assert_eq!(records, 12_345),
        other => panic!("expected TopicNotEmpty, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recovery_restores_exact_counts_from_a_seeded_changelog() {
    let dir = tempfile::tempdir().unwrap();
    let opts = RecoveryOptions {
        lengths: vec![3_000],
        restarts: 1,
        cold: true,
        build: Build::Seeded,
        source_records: 5_000,
        commit_every: 300,
        seed: 5,
        work_dir: dir.path().to_path_buf(),
        keep_data: false,
        timeout: Duration::from_secs(120),
        kafka_extra: Vec::new(),
    };
    // Counts are compared inside the run (an error on any difference); check what it read.
    let report = recovery::run(&opts).await.unwrap();
    let l = &report.lengths[0];
    assert_eq!(l.generated.seeded_records, 3_000);
    assert!(l.generated.changelog_records >= 3_000);
    assert_eq!(l.warm.len(), 1);
    assert_eq!(
        l.warm[0].restored_records, 0,
        "a warm restart reads no changelog"
    );
    let cold = l.cold.as_ref().unwrap();
    // Every record of the seeded TURNSTILE_SUMMARY changelog is restored; the worker's
    // windowed tables on the same topic restore their own (smaller) changelogs on top.
    assert!(
        cold.restored_records as i64 >= l.generated.changelog_records,
        "{} < {}",
        cold.restored_records,
        l.generated.changelog_records
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_run_counts_every_round_exactly() {
    use cta_stream_bench::memory::{self, MemoryOptions};
    let env = embedded_env().await;
    let choice = BrokerChoice::External {
        kafka: env.kafka.clone(),
        registry: env.registry.clone(),
    };
    let dir = tempfile::tempdir().unwrap();
    let opts = MemoryOptions {
        records: 25_000,
        chunk: 10_000,
        seed: 5,
        partitions: 4,
        work_dir: dir.path().to_path_buf(),
        timeout: Duration::from_secs(120),
    };
    // The run itself fails unless the table equals the produced counts after the last round.
    let report = memory::run(&choice, &opts).await.unwrap();
    let rounds: Vec<u64> = report.samples.iter().map(|s| s.records).collect();
    assert_eq!(rounds, vec![10_000, 20_000, 25_000]);
    assert!(report.samples.iter().all(|s| s.rss_kib.is_some()));
    // Read back independently: the topic holds every record of every round.
    let on_topic = count_turnstile(&env).await;
    assert_eq!(on_topic.values().sum::<i64>(), 25_000);
}

//! `bench recovery`: how long a worker takes to be ready again.
//!
//! For each changelog length L (10k and 1M by default), on a fresh embedded platform:
//!
//! 1. **build the changelog** behind a checkpoint, one of two ways:
//!    - `seeded` (default): write L records straight to the `TURNSTILE_SUMMARY` changelog in the
//!      worker's own format (JSON key and `{"STATION_ID","COUNT"}` value, the source-offset
//!      header at 0, each station in the partition its source records use), then run the real
//!      worker over fresh source records: its first start restores the L records, its
//!      checkpoints append its own, and its graceful stop leaves the store's checkpoint at the
//!      end of the log. Fast whatever L is.
//!    - `worker`: run the real worker over source records with a small `commit_every` until its
//!      own checkpoints have written L records. Each checkpoint writes at most the stations of
//!      the partitions it touched (about 24 when records arrive one partition at a time) and
//!      waits for a producer flush, so long changelogs take long to build this way.
//! 2. **warm restart** (same data dir, same app id), several times: time from start to
//!    "partitions assigned and tables ready" (`Status::recovering` false, assignment non-empty),
//!    split into the group join (start → the assignment callback begins) and the assignment
//!    itself (open stores, check changelogs), and to counts available. A warm restart should
//!    read nothing of the changelog, whatever its length.
//! 3. **cold restore**: empty data dir, same app id, so every table partition is rebuilt from
//!    the changelog; records/s and records per CPU-second from `Status::restore_done`, and the
//!    counts must be exact the moment the worker is ready (before it consumed any source
//!    record).
//!
//! Always on the embedded platform: each length needs its own empty changelog topic, and the
//! turnstile changelog's name does not depend on the app id.

use crate::env::{unique, BenchEnv, BrokerChoice, ScratchDir};
use crate::measure::{MachineInfo, PhaseCost, PhaseMeter};
use crate::worker::{wait_for, RunningWorker};
use crate::workload::{as_map, compare_counts, produce_turnstile, station_partitions, Draw};
use crate::{rate, thousands, BenchError, Result};
use cta_stream::stream::codec::json;
use cta_stream::stream::kafka::{flush, send_blocking, tracked_producer};
use cta_stream::stream::names::HEADER_SOURCE_OFFSET;
use cta_stream::stream::AppConfig;
use cta_stream::stream::StreamError;
use cta_stream::transit::models::topics;
use cta_stream::transit::models::TurnstileSummary;
use cta_stream::transit::stations::Dataset;
use rdkafka::message::{Header, OwnedHeaders};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct RecoveryOptions {
    /// Changelog lengths to test warm restarts with.
    pub lengths: Vec<u64>,
    /// Warm restarts per length.
    pub restarts: u32,
    /// Also measure a cold restore for each length.
    pub cold: bool,
    pub build: Build,
    /// `seeded`: source records the worker processes on top of the seeded history.
    pub source_records: u64,
    /// `worker`: checkpoint every this many records while building the changelog.
    pub commit_every: u64,
    pub seed: u64,
    pub work_dir: PathBuf,
    pub keep_data: bool,
    pub timeout: Duration,
    /// librdkafka properties added to every client (e.g. `session.timeout.ms`).
    pub kafka_extra: Vec<(String, String)>,
}

/// How the changelog is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Build {
    Seeded,
    Worker,
}

#[derive(Debug, Clone, Serialize)]
pub struct Generated {
    pub build: Build,
    /// Records written straight to the changelog (`seeded`).
    pub seeded_records: u64,
    pub source_records: u64,
    pub changelog_records: i64,
    pub checkpoints: u64,
    pub secs: f64,
    pub store_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct WarmRestart {
    /// Start → the assignment callback began (first seen `recovering`): group join and
    /// rebalance.
    pub assignment_began_secs: f64,
    /// Start → topics checked and consumer subscribed (what precedes the join).
    pub subscribed_secs: f64,
    /// Start → ready.
    pub ready_secs: f64,
    pub counts_secs: f64,
    pub restored_records: u64,
    pub cost: PhaseCost,
}

#[derive(Debug, Clone, Serialize)]
pub struct ColdRestore {
    pub changelog_records: i64,
    pub restored_records: u64,
    /// Start → ready (includes group join).
    pub ready_secs: f64,
    /// First seen recovering → ready (0 when the restore was too quick to be seen).
    pub restore_secs: f64,
    pub records_per_sec: f64,
    pub records_per_sec_end_to_end: f64,
    pub records_per_cpu_sec: f64,
    pub records_per_cpu_sec_without_broker: f64,
    pub cost: PhaseCost,
}

#[derive(Debug, Clone, Serialize)]
pub struct LengthResult {
    pub target_changelog_records: u64,
    pub generated: Generated,
    pub warm: Vec<WarmRestart>,
    pub cold: Option<ColdRestore>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecoveryReport {
    pub machine: MachineInfo,
    pub broker: String,
    pub kafka_extra: Vec<(String, String)>,
    pub lengths: Vec<LengthResult>,
}

pub async fn run(opts: &RecoveryOptions) -> Result<RecoveryReport> {
    if opts.lengths.is_empty() || opts.lengths.contains(&0) {
        return Err(BenchError::Invalid(
            "changelog lengths must be at least 1".into(),
        ));
    }
    let machine = MachineInfo::now();
    let mut lengths = Vec::new();
    let mut broker = String::new();
    for (i, &len) in opts.lengths.iter().enumerate() {
        let mut env = BenchEnv::start(&BrokerChoice::embedded()).await?;
        env.kafka.extra.extend(opts.kafka_extra.iter().cloned());
        broker = env.describe();
        let result = one_length(&env, opts, len, opts.seed + 1000 * i as u64).await;
        env.stop().await;
        lengths.push(result?);
    }
    Ok(RecoveryReport {
        machine,
        broker,
        kafka_extra: opts.kafka_extra.clone(),
        lengths,
    })
}

async fn one_length(
    env: &BenchEnv,
    opts: &RecoveryOptions,
    len: u64,
    seed: u64,
) -> Result<LengthResult> {
    let app_id = unique("cta-bench-recovery");
    env.create_worker_topics(&app_id, PARTITIONS).await?;
    let data = ScratchDir::new(&opts.work_dir, &app_id, opts.keep_data)?;
    let (generated, expected) = match opts.build {
        Build::Seeded => seeded(env, opts, &app_id, &data, len, seed).await?,
        Build::Worker => generate(env, opts, &app_id, &data, len, seed).await?,
    };
    tracing::info!(
        changelog = generated.changelog_records,
        source = generated.source_records,
        "changelog built"
    );
    let mut warm = Vec::new();
    for _ in 0..opts.restarts {
        warm.push(warm_restart(env, opts, &app_id, &data, &expected).await?);
    }
    let cold = if opts.cold {
        let empty = ScratchDir::new(&opts.work_dir, &format!("{app_id}-cold"), opts.keep_data)?;
        Some(
            cold_restore(
                env,
                opts,
                &app_id,
                &empty,
                &expected,
                generated.changelog_records,
            )
            .await?,
        )
    } else {
        None
    };
    Ok(LengthResult {
        target_changelog_records: len,
        generated,
        warm,
        cold,
    })
}

const PARTITIONS: i32 = 4;

/// Writes `len` changelog records in the worker's format (see the module doc), then runs the
/// worker over `opts.source_records` fresh source records and stops it gracefully.
async fn seeded(
    env: &BenchEnv,
    opts: &RecoveryOptions,
    app_id: &str,
    data: &ScratchDir,
    len: u64,
    seed: u64,
) -> Result<(Generated, BTreeMap<i32, i64>)> {
    let began = Instant::now();
    let dataset = Dataset::builtin();
    let partition_of = station_partitions(&dataset, PARTITIONS);
    let history = {
        let (kafka, map) = (env.kafka.clone(), partition_of.clone());
        tokio::task::spawn_blocking(move || seed_changelog(&kafka, &map, len))
            .await
            .map_err(|e| StreamError::Config(format!("seeding task failed: {e}")))??
    };
    let produced = produce_turnstile(
        &env.kafka,
        &env.registry,
        &dataset,
        opts.source_records,
        seed,
        Draw::Ridership,
        Some(&partition_of),
    )
    .await?;
    let mut expected = history.clone();
    for (k, v) in &produced.per_station {
        *expected.entry(*k).or_default() += v;
    }
    let total = expected_total(&expected);
    let n = produced.records as i64;
    let mut w = RunningWorker::start(
        AppConfig::new(app_id, env.kafka.clone(), &data.path),
        &env.registry,
    )?;
    wait_for(
        "seeded history: first run",
        opts.timeout,
        Duration::from_millis(20),
        &mut w,
        |w| Ok(w.durable_source_offsets()? >= n && w.turnstile_total()? == total),
        |w| {
            format!(
                "stored source offsets {:?} of {n}, table total {:?} of {total}",
                w.durable_source_offsets().unwrap_or(-1),
                w.turnstile_total().unwrap_or(-1)
            )
        },
    )
    .await?;
    let got = as_map(&w.tables.turnstile_all()?);
    let checkpoints = w.status.snapshot().commits;
    w.stop().await?;
    compare_counts(&expected, &got).map_err(|detail| BenchError::Mismatch {
        phase: "seeded history: first run",
        detail,
    })?;
    let changelog = tokio::task::block_in_place(|| env.topic_records(topics::TURNSTILE_SUMMARY))?;
    Ok((
        Generated {
            build: Build::Seeded,
            seeded_records: len,
            source_records: produced.records,
            changelog_records: changelog,
            checkpoints,
            secs: began.elapsed().as_secs_f64(),
            store_bytes: data.size_bytes(),
        },
        expected,
    ))
}

/// Writes `len` turnstile changelog records, stations round-robin, each station's count
/// rising by one per record, into the station's partition, with the source-offset header at 0
/// (state from before the first source record). Returns each station's last count.
fn seed_changelog(
    kafka: &cta_stream::stream::KafkaConfig,
    partition_of: &BTreeMap<i32, i32>,
    len: u64,
) -> Result<BTreeMap<i32, i64>> {
    let producer = tracked_producer(kafka)?;
    let stations: Vec<(i32, i32)> = partition_of.iter().map(|(s, p)| (*s, *p)).collect();
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    if stations.is_empty() {
        return Ok(last);
    }
    for i in 0..len {
        let (station_id, partition) = stations[(i % stations.len() as u64) as usize];
        let count = last.get(&station_id).copied().unwrap_or(0) + 1;
        last.insert(station_id, count);
        let headers = OwnedHeaders::new().insert(Header {
            key: HEADER_SOURCE_OFFSET,
            value: Some(b"0".as_slice()),
        });
        send_blocking(
            &producer,
            topics::TURNSTILE_SUMMARY,
            Some(partition),
            Some(&json::encode(&station_id)),
            Some(&json::encode(&TurnstileSummary { station_id, count })),
            Some(headers),
            None,
        )?;
    }
    flush(&producer, Duration::from_secs(300))?;
    Ok(last)
}

/// Runs the worker with frequent checkpoints over fresh records until the changelog holds at
/// least `len` records; returns what it built and the counts the table must hold.
async fn generate(
    env: &BenchEnv,
    opts: &RecoveryOptions,
    app_id: &str,
    data: &ScratchDir,
    len: u64,
    seed: u64,
) -> Result<(Generated, BTreeMap<i32, i64>)> {
    let began = Instant::now();
    let mut config = AppConfig::new(app_id, env.kafka.clone(), &data.path);
    config.commit_every = opts.commit_every.max(1);
    let mut w = RunningWorker::start(config, &env.registry)?;
    let dataset = Dataset::builtin();
    let mut expected: BTreeMap<i32, i64> = BTreeMap::new();
    let mut source = 0u64;
    let mut changelog = 0i64;
    let mut chunk = (len / 2).max(1_000);
    for round in 0..50u64 {
        let p = produce_turnstile(
            &env.kafka,
            &env.registry,
            &dataset,
            chunk,
            seed + round,
            Draw::Uniform,
            None,
        )
        .await?;
        for (k, v) in &p.per_station {
            *expected.entry(*k).or_default() += v;
        }
        source += p.records;
        let n = source as i64;
        wait_for(
            "building the changelog",
            opts.timeout,
            Duration::from_millis(20),
            &mut w,
            |w| Ok(w.durable_source_offsets()? >= n),
            |w| {
                format!(
                    "stored source offsets {:?} of {n}",
                    w.durable_source_offsets().unwrap_or(-1)
                )
            },
        )
        .await?;
        changelog = tokio::task::block_in_place(|| env.topic_records(topics::TURNSTILE_SUMMARY))?;
        tracing::info!(
            round,
            source,
            changelog,
            target = len,
            "building the changelog"
        );
        if changelog >= len as i64 {
            break;
        }
        let per_record = (changelog.max(1) as f64) / source as f64;
        let missing = (len as i64 - changelog) as f64;
        chunk = ((missing / per_record) * 1.05).ceil().max(1_000.0) as u64;
    }
    let checkpoints = w.status.snapshot().commits;
    w.stop().await?;
    let changelog_final =
        tokio::task::block_in_place(|| env.topic_records(topics::TURNSTILE_SUMMARY))?;
    if changelog_final < len as i64 {
        return Err(BenchError::Invalid(format!(
            "changelog reached only {changelog_final} of {len} records (last seen {changelog}); lower --commit-every"
        )));
    }
    Ok((
        Generated {
            build: Build::Worker,
            seeded_records: 0,
            source_records: source,
            changelog_records: changelog_final,
            checkpoints,
            secs: began.elapsed().as_secs_f64(),
            store_bytes: data.size_bytes(),
        },
        expected,
    ))
}

fn expected_total(expected: &BTreeMap<i32, i64>) -> i64 {
    expected.values().sum()
}

async fn warm_restart(
    env: &BenchEnv,
    opts: &RecoveryOptions,
    app_id: &str,
    data: &ScratchDir,
    expected: &BTreeMap<i32, i64>,
) -> Result<WarmRestart> {
    let total = expected_total(expected);
    let meter = PhaseMeter::start();
    let mut w = RunningWorker::start(
        AppConfig::new(app_id, env.kafka.clone(), &data.path),
        &env.registry,
    )?;
    let every = Duration::from_millis(1);
    let mut began: Option<Instant> = None;
    let ready = wait_for(
        "warm restart",
        opts.timeout,
        every,
        &mut w,
        |w| {
            if began.is_none() && w.recovering() {
                began = Some(Instant::now());
            }
            Ok(w.ready())
        },
        |_| "not ready".into(),
    )
    .await?;
    let counts = wait_for(
        "warm restart",
        opts.timeout,
        every,
        &mut w,
        |w| Ok(w.turnstile_total()? == total),
        |w| {
            format!(
                "table total {:?} of {total}",
                w.turnstile_total().unwrap_or(-1)
            )
        },
    )
    .await?;
    let cost = meter.read();
    let got = as_map(&w.tables.turnstile_all()?);
    let restored = w.status.snapshot().restore_done;
    let w_status = w.status.clone();
    w.stop().await?;
    compare_counts(expected, &got).map_err(|detail| BenchError::Mismatch {
        phase: "warm restart",
        detail,
    })?;
    let start = meter.started();
    let began = w_status.assignment_began_at().or(began);
    let subscribed = w_status.subscribed_at().unwrap_or(start);
    Ok(WarmRestart {
        subscribed_secs: subscribed.duration_since(start).as_secs_f64(),
        assignment_began_secs: began.unwrap_or(ready).duration_since(start).as_secs_f64(),
        ready_secs: ready.duration_since(start).as_secs_f64(),
        counts_secs: counts.duration_since(start).as_secs_f64(),
        restored_records: restored,
        cost,
    })
}

async fn cold_restore(
    env: &BenchEnv,
    opts: &RecoveryOptions,
    app_id: &str,
    empty: &ScratchDir,
    expected: &BTreeMap<i32, i64>,
    changelog_records: i64,
) -> Result<ColdRestore> {
    let meter = PhaseMeter::start();
    let mut w = RunningWorker::start(
        AppConfig::new(app_id, env.kafka.clone(), &empty.path),
        &env.registry,
    )?;
    let mut restore_began: Option<Instant> = None;
    let ready = wait_for(
        "cold restore",
        opts.timeout,
        Duration::from_millis(2),
        &mut w,
        |w| {
            if restore_began.is_none() && w.recovering() {
                restore_began = Some(Instant::now());
            }
            Ok(w.ready())
        },
        |w| {
            let s = w.status.snapshot();
            format!("restored {} of {}", s.restore_done, s.restore_total)
        },
    )
    .await?;
    let cost = meter.read();
    // At ready the table holds exactly what the changelog restored: the source is fetched only
    // after the assignment callback returns.
    let got = as_map(&w.tables.turnstile_all()?);
    let snap = w.status.snapshot();
    w.stop().await?;
    compare_counts(expected, &got).map_err(|detail| BenchError::Mismatch {
        phase: "cold restore (counts at ready)",
        detail,
    })?;
    let start = meter.started();
    let restored = snap.restore_done;
    let restore_secs = restore_began.map_or(0.0, |b| ready.duration_since(b).as_secs_f64());
    let cpu = cost.cpu.total();
    let cpu_nb = cost.cpu_without_broker();
    Ok(ColdRestore {
        changelog_records,
        restored_records: restored,
        ready_secs: ready.duration_since(start).as_secs_f64(),
        restore_secs,
        records_per_sec: if restore_secs > 0.0 {
            restored as f64 / restore_secs
        } else {
            0.0
        },
        records_per_sec_end_to_end: rate(restored, ready.duration_since(start)),
        records_per_cpu_sec: if cpu > 0.0 {
            restored as f64 / cpu
        } else {
            0.0
        },
        records_per_cpu_sec_without_broker: if cpu_nb > 0.0 {
            restored as f64 / cpu_nb
        } else {
            0.0
        },
        cost,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "== recovery")?;
        writeln!(f, "machine: {}", self.machine)?;
        writeln!(f, "broker:  {}", self.broker)?;
        for l in &self.lengths {
            let g = &l.generated;
            writeln!(
                f,
                "changelog {} records (target {}), built {}: {} seeded + the worker over {} source records in {} checkpoints, {:.1} s; store {:.1} MiB",
                thousands(g.changelog_records as f64),
                thousands(l.target_changelog_records as f64),
                match g.build {
                    Build::Seeded => "seeded",
                    Build::Worker => "by the worker",
                },
                thousands(g.seeded_records as f64),
                thousands(g.source_records as f64),
                g.checkpoints,
                g.secs,
                g.store_bytes as f64 / 1048576.0
            )?;
            let ready: Vec<String> = l
                .warm
                .iter()
                .map(|w| {
                    format!(
                        "{:.3} (start {:.3} + join {:.3} + assign {:.3})",
                        w.ready_secs,
                        w.subscribed_secs,
                        w.assignment_began_secs - w.subscribed_secs,
                        w.ready_secs - w.assignment_began_secs
                    )
                })
                .collect();
            let counts: Vec<String> = l
                .warm
                .iter()
                .map(|w| format!("{:.3}", w.counts_secs))
                .collect();
            let restored: u64 = l.warm.iter().map(|w| w.restored_records).sum();
            writeln!(
                f,
                "  warm restart: ready median {:.3} s [{}], counts available median {:.3} s [{}], changelog records read {}",
                median(l.warm.iter().map(|w| w.ready_secs).collect()),
                ready.join(", "),
                median(l.warm.iter().map(|w| w.counts_secs).collect()),
                counts.join(", "),
                restored
            )?;
            if let Some(c) = &l.cold {
                write_cold(f, c)?;
            }
        }
        Ok(())
    }
}

fn write_cold(f: &mut fmt::Formatter<'_>, c: &ColdRestore) -> fmt::Result {
    writeln!(
        f,
        "  cold restore of {} changelog records ({} read): ready after {:.3} s (restore {:.3} s)",
        thousands(c.changelog_records as f64),
        thousands(c.restored_records as f64),
        c.ready_secs,
        c.restore_secs
    )?;
    writeln!(
        f,
        "    {} records/s during the restore ({} end to end); {} records per CPU-second ({} without the broker thread); CPU {:.2} s (user {:.2}, sys {:.2}, broker thread {:.2}); peak RSS {}",
        thousands(c.records_per_sec),
        thousands(c.records_per_sec_end_to_end),
        thousands(c.records_per_cpu_sec),
        thousands(c.records_per_cpu_sec_without_broker),
        c.cost.cpu.total(),
        c.cost.cpu.user,
        c.cost.cpu.sys,
        c.cost.broker_thread_cpu_secs,
        crate::measure::mib(c.cost.peak_rss_kib)
    )?;
    writeln!(f, "    counts exact at ready")
}

//! `GET /metrics` in the Prometheus text format (the `prometheus` crate's encoder).
//!
//! Two kinds of series:
//! - read at scrape time from the runtime's [`Status`] and the tables: records consumed per
//!   source topic, records produced per topic (changelog and dead-letter records), consumer
//!   lag per assigned partition, entries per table, restore progress, decode errors,
//!   dead-lettered records, checkpoints;
//! - recorded by the server as requests finish: requests by route, method and status, and a
//!   latency histogram by route (time until the answer's head is ready; for the event stream,
//!   until it starts). Requests hyper refuses before any route sees them (malformed, headers
//!   over the limit) are not counted.
//!
//! Consumer lag is the partition's high watermark (asked of the cluster at scrape time, when
//! the state was built [`Metrics::new`] with a Kafka config) minus the next offset to process as
//! of the last checkpoint (`Status::record_positions`), or minus the low watermark when the
//! partition has no checkpoint yet.

use crate::stream::table::TableRuntime;
use crate::stream::{KafkaConfig, Status, StatusSnapshot};
use crate::transit::agents::{TransitTables, TurnstileCounts};
use crate::web::routes::{RouteLabel, UNMATCHED};
use prometheus::proto::MetricFamily;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use rdkafka::consumer::BaseConsumer;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Time budget of one scrape's watermark requests, and of each one.
const LAG_BUDGET: Duration = Duration::from_secs(3);
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics: {0}")]
    Prometheus(#[from] prometheus::Error),
    #[error("metrics: state store: {0}")]
    Store(#[from] crate::stream::StreamError),
}

pub struct Metrics {
    status: Arc<Status>,
    tables: TransitTables,
    kafka: Option<KafkaConfig>,
    /// Client for high watermarks, made on first use.
    watermarks: Mutex<Option<BaseConsumer>>,
    http: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
}

impl Metrics {
    pub fn new(status: Arc<Status>, tables: TransitTables, kafka: Option<KafkaConfig>) -> Self {
        let http = Registry::new();
        // Constant names and label sets (not input): these constructors cannot fail.
        let http_requests = IntCounterVec::new(
            Opts::new(
                "cta_http_requests_total",
                "HTTP requests answered, by route template, method and status code",
            ),
            &["route", "method", "status"],
        )
        .expect("constant metric definition");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "cta_http_request_duration_seconds",
                "Time until the answer's head was ready, by route template",
            ),
            &["route"],
        )
        .expect("constant metric definition");
        for c in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
        ] {
            if let Err(e) = http.register(c) {
                tracing::error!(error = %e, "cannot register HTTP metrics");
            }
        }
        Self {
            status,
            tables,
            kafka,
            watermarks: Mutex::new(None),
            http,
            http_requests,
            http_duration,
        }
    }

    /// Records one answered request.
    pub fn observe_http(
        &self,
        method: &warp::http::Method,
        resp: &warp::reply::Response,
        elapsed: Duration,
    ) {
        let route = resp
            .extensions()
            .get::<RouteLabel>()
            .map_or(UNMATCHED, |r| r.0);
        // Only standard methods become label values, so clients cannot grow the series.
        let method = match method.as_str() {
            m @ ("GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS") => m,
            _ => "other",
        };
        self.http_requests
            .with_label_values(&[route, method, resp.status().as_str()])
            .inc();
        self.http_duration
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    /// The whole exposition, in the text format. Blocking (reads tables, asks the cluster for
    /// watermarks): call it off the async threads.
    pub fn render(&self) -> Result<String, MetricsError> {
        let mut families = self.runtime_families()?;
        families.extend(self.http.gather());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        Ok(prometheus::TextEncoder::new().encode_to_string(&families)?)
    }

    /// The series read at scrape time (see the module doc), in one registry per scrape.
    fn runtime_families(&self) -> Result<Vec<MetricFamily>, MetricsError> {
        let reg = Registry::new();
        let snap = self.status.snapshot();
        register_per_topic(&reg, &snap)?;
        reg.register(Box::new(self.lag_gauges()?))?;
        reg.register(Box::new(self.table_entries()?))?;
        register_progress(&reg, &snap)?;
        register_arrival_checks(&reg, &self.tables.arrival_checks)?;
        Ok(reg.gather())
    }

    /// Consumer lag per assigned source partition.
    fn lag_gauges(&self) -> Result<IntGaugeVec, prometheus::Error> {
        let lag = IntGaugeVec::new(
            Opts::new(
                "cta_consumer_lag",
                "High watermark minus the next offset to process (as of the last checkpoint), per assigned source partition",
            ),
            &["topic", "partition"],
        )?;
        for ((topic, partition), n) in self.lag() {
            lag.with_label_values(&[topic.as_str(), &partition.to_string()])
                .set(n);
        }
        Ok(lag)
    }

    /// Keys per table on this worker.
    fn table_entries(&self) -> Result<IntGaugeVec, prometheus::Error> {
        let entries = IntGaugeVec::new(
            Opts::new(
                "cta_table_entries",
                "Keys per table, across the partitions this worker holds",
            ),
            &["table"],
        )?;
        let t = &self.tables;
        let mut sizes = vec![
            (t.stations.name(), t.stations.entry_count()),
            (t.trains.name(), t.trains.entry_count()),
            (t.weather.name(), t.weather.entry_count()),
        ];
        if let TurnstileCounts::Native(turnstile) = &t.turnstile {
            sizes.push((turnstile.name(), turnstile.entry_count()));
        }
        for (name, n) in sizes {
            entries.with_label_values(&[name]).set(n as i64);
        }
        Ok(entries)
    }

    /// Lag per assigned partition, skipping partitions whose watermarks cannot be read within
    /// the budget (they are then absent from the scrape, not reported as 0).
    fn lag(&self) -> Vec<((String, i32), i64)> {
        let Some(kafka) = &self.kafka else {
            return Vec::new();
        };
        let assigned = self.status.assigned_positions();
        if assigned.is_empty() {
            return Vec::new();
        }
        let mut guard = self.watermarks.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            match kafka.admin().create::<BaseConsumer>() {
                Ok(c) => *guard = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: cannot create watermark client");
                    return Vec::new();
                }
            }
        }
        let Some(client) = guard.as_ref() else {
            return Vec::new();
        };
        let started = Instant::now();
        let mut out = Vec::new();
        for ((topic, partition), position) in assigned {
            if started.elapsed() > LAG_BUDGET {
                tracing::warn!("metrics: watermark requests over budget; lag left incomplete");
                break;
            }
            match rdkafka::consumer::Consumer::fetch_watermarks(
                client,
                &topic,
                partition,
                WATERMARK_TIMEOUT,
            ) {
                Ok((low, high)) => {
                    let from = position.unwrap_or(low).max(low);
                    out.push(((topic, partition), (high - from).max(0)));
                }
                Err(e) => {
                    tracing::debug!(%topic, partition, error = %e, "metrics: no watermarks")
                }
            }
        }
        out
    }
}

/// Records consumed and produced, per topic.
fn register_per_topic(reg: &Registry, snap: &StatusSnapshot) -> Result<(), prometheus::Error> {
    let consumed = IntCounterVec::new(
        Opts::new(
            "cta_records_consumed_total",
            "Records the worker consumed, per source topic",
        ),
        &["topic"],
    )?;
    for (t, n) in &snap.consumed_per_topic {
        consumed.with_label_values(&[t]).inc_by(*n);
    }
    reg.register(Box::new(consumed))?;

    let produced = IntCounterVec::new(
        Opts::new(
            "cta_records_produced_total",
            "Records the worker produced, per topic (table changelogs, dead-letter topics)",
        ),
        &["topic"],
    )?;
    for (t, n) in &snap.produced_per_topic {
        produced.with_label_values(&[t]).inc_by(*n);
    }
    reg.register(Box::new(produced))?;
    Ok(())
}

/// How often arrivals placed a train without confirming where it came from.
fn register_arrival_checks(
    reg: &Registry,
    checks: &crate::transit::agents::ArrivalChecks,
) -> Result<(), prometheus::Error> {
    use std::sync::atomic::Ordering::Relaxed;
    for (name, help, v) in [
        (
            "cta_arrivals_without_previous_total",
            "Arrivals without prev_station_id / prev_direction (the train is placed, nothing cleared)",
            checks.without_previous.load(Relaxed),
        ),
        (
            "cta_arrivals_first_seen_total",
            "Arrivals of a train with no earlier sighting in this worker's partitions",
            checks.first_seen.load(Relaxed),
        ),
        (
            "cta_arrivals_station_unknown_total",
            "Arrivals joined before their station's row reached this worker (no name, no order)",
            checks.station_unknown.load(Relaxed),
        ),
    ] {
        let c = IntCounter::new(name, help)?;
        c.inc_by(v);
        reg.register(Box::new(c))?;
    }
    Ok(())
}

/// Restore progress, run state, last checkpoint and the record and checkpoint counters.
fn register_progress(reg: &Registry, snap: &StatusSnapshot) -> Result<(), prometheus::Error> {
    let gauge = |name: &str, help: &str, v: i64| -> Result<IntGauge, prometheus::Error> {
        let g = IntGauge::new(name, help)?;
        g.set(v);
        Ok(g)
    };
    let counter = |name: &str, help: &str, v: u64| -> Result<IntCounter, prometheus::Error> {
        let c = IntCounter::new(name, help)?;
        c.inc_by(v);
        Ok(c)
    };
    reg.register(Box::new(gauge(
        "cta_restore_done_records",
        "Changelog records restored into tables so far",
        snap.restore_done as i64,
    )?))?;
    reg.register(Box::new(gauge(
        "cta_restore_total_records",
        "Changelog records to restore, as known so far",
        snap.restore_total as i64,
    )?))?;
    reg.register(Box::new(gauge(
        "cta_recovering",
        "1 while tables are being restored from their changelogs",
        i64::from(snap.recovering),
    )?))?;
    reg.register(Box::new(gauge(
        "cta_worker_running",
        "1 while the worker's poll loop runs",
        i64::from(snap.running),
    )?))?;
    reg.register(Box::new(gauge(
        "cta_brokers_unreachable",
        "1 while the brokers do not answer (the tables are stale)",
        i64::from(snap.stale),
    )?))?;
    reg.register(Box::new(gauge(
        "cta_last_commit_timestamp_seconds",
        "Unix time of the last checkpoint (0: none yet)",
        snap.last_commit_ms / 1000,
    )?))?;
    reg.register(Box::new(counter(
        "cta_changelog_records_skipped_total",
        "Changelog records a restore skipped (no key, or key or value not of the table)",
        snap.changelog_skipped,
    )?))?;
    reg.register(Box::new(counter(
        "cta_decode_errors_total",
        "Records that could not be decoded or were out of range (skipped)",
        snap.decode_errors,
    )?))?;
    reg.register(Box::new(counter(
        "cta_dead_lettered_total",
        "Skipped records sent to a dead-letter topic",
        snap.dead_lettered,
    )?))?;
    reg.register(Box::new(counter(
        "cta_commits_total",
        "Checkpoints completed (changelog flushed, stores written, offsets committed)",
        snap.commits,
    )?))?;
    Ok(())
}

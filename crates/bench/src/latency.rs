//! `bench latency`: how long a turnstile entry takes from its produce to its count in
//! `GET /api/turnstile/{station}` and in the status page's live stream (`GET /api/events`),
//! while a steady background load of other stations' entries arrives at a chosen rate.
//!
//! Set-up: the embedded platform (or an external broker), one simulated step so the stations
//! are in the tables, the worker and its web server in this process, caught up. Then, per
//! rate: a producer thread sends entries of every station but the probe station at the rate
//! (paced each millisecond); a probe task sends one entry of the probe station, polls
//! `/api/turnstile/{probe}` every millisecond until its count includes it (the API latency),
//! and goes on to the next probe; a reader of `/api/events` notes when each live event
//! arrives and the probe station's count it carries (the live-page latency: the first event
//! whose count includes the probe). At the end the whole turnstile table must equal the
//! counts produced (exit 1 otherwise).

use crate::env::{unique, BenchEnv, BrokerChoice};
use crate::measure::MachineInfo;
use crate::simspeed::WEEKDAY_MIDNIGHT_MS;
use crate::worker::{filled_worker, wait_for, Fill};
use crate::workload::{as_map, compare_counts, encode_rows, Encoded};
use crate::{thousands, BenchError, Result};
use cta_stream::stream::kafka::{tracked_producer, TrackedProducer};
use cta_stream::stream::Shutdown;
use cta_stream::transit::models::topics;
use cta_stream::transit::stations::Dataset;
use rdkafka::producer::{BaseRecord, Producer};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct LatencyOptions {
    /// Background records per second, one run each.
    pub rates: Vec<u64>,
    /// How long each rate runs.
    pub duration: Duration,
    /// Probes sent per second (each waits for the previous one to be seen).
    pub probes_per_sec: u32,
    pub work_dir: PathBuf,
    pub timeout: Duration,
}

/// Latency percentiles of one path, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub samples: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    fn of(mut us: Vec<u64>) -> Self {
        us.sort_unstable();
        let at = |q: f64| crate::quantile_ms(&us, q);
        Self {
            samples: us.len(),
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}

/// One rate's run.
#[derive(Debug, Clone, Serialize)]
pub struct RateResult {
    pub target_per_sec: u64,
    pub achieved_per_sec: f64,
    pub background_records: u64,
    pub api: Percentiles,
    pub live: Percentiles,
    /// Live events received during the run.
    pub live_events: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyReport {
    pub machine: MachineInfo,
    pub broker: String,
    pub probe_station: i32,
    pub commit_interval_ms: u64,
    pub results: Vec<RateResult>,
    pub counts_exact: bool,
}

pub async fn run(choice: &BrokerChoice, opts: &LatencyOptions) -> Result<LatencyReport> {
    if opts.rates.is_empty() || opts.duration.is_zero() || opts.probes_per_sec == 0 {
        return Err(BenchError::Invalid(
            "--rates, --duration-secs and --probes-per-sec must be positive".into(),
        ));
    }
    let machine = MachineInfo::now();
    let env = BenchEnv::start(choice).await?;
    let result = run_on(&env, opts, machine).await;
    env.stop().await;
    result
}

async fn run_on(
    env: &BenchEnv,
    opts: &LatencyOptions,
    machine: MachineInfo,
) -> Result<LatencyReport> {
    env.require_empty(topics::TURNSTILE)?;
    let app_id = unique("cta-bench-latency");
    env.create_worker_topics(&app_id, 4).await?;
    let dataset = Dataset::builtin();
    let mut kafka = env.kafka.clone();
    if env.is_embedded() {
        // As the demo and `worker` on the embedded platform run (the other benchmarks keep the
        // 100 ms that suits throughput; see `KafkaConfig::short_fetch_wait`).
        kafka.short_fetch_wait();
    }
    // One simulated step: stations, trains and weather in the tables, as on a live page.
    let fill = Fill {
        steps: 1,
        seed: 5,
        start_ms: WEEKDAY_MIDNIGHT_MS + 8 * 3_600_000,
    };
    let (mut w, _data, _) =
        filled_worker(env, &app_id, kafka, fill, &opts.work_dir, opts.timeout).await?;
    let mut expected = as_map(&w.tables.turnstile_all()?);
    let commit_interval_ms = w.commit_interval.as_millis() as u64;

    let shutdown = Shutdown::new();
    let (addr, server) = w.serve_web(&shutdown).await?;
    let rows = Arc::new(encode_rows(&env.registry, &dataset).await?);
    // The busiest station on a line the page shows: its row is in every live event.
    let probe = rows
        .iter()
        .zip(dataset.rows())
        .max_by_key(|(_, d)| d.avg_weekday)
        .map(|(r, _)| r.station_id)
        .ok_or_else(|| BenchError::Invalid("the dataset has no stations".into()))?;
    let producer = Arc::new(tracked_producer(&env.kafka)?);
    let outcome = async {
        let mut results = Vec::new();
        for &rate in &opts.rates {
            tracing::info!(rate, "latency run");
            let r = run_rate(addr, &producer, &rows, probe, rate, opts, &mut expected).await?;
            results.push(r);
        }
        Ok::<_, BenchError>(results)
    }
    .await;
    shutdown.trigger();
    let _ = server.await;
    let results = match outcome {
        Ok(r) => r,
        Err(e) => {
            let _ = w.stop().await;
            return Err(e);
        }
    };
    // Every entry counted once: the table equals what was produced.
    let expected_total: i64 = expected.values().sum();
    wait_for(
        "worker catching up with the load",
        opts.timeout,
        Duration::from_millis(50),
        &mut w,
        |w| Ok(w.turnstile_total()? >= expected_total),
        |w| {
            format!(
                "{:?} of {expected_total} entries counted",
                w.turnstile_total()
            )
        },
    )
    .await?;
    let counted = as_map(&w.tables.turnstile_all()?);
    w.stop().await?;
    compare_counts(&expected, &counted).map_err(|detail| BenchError::Mismatch {
        phase: "latency",
        detail,
    })?;
    Ok(LatencyReport {
        machine,
        broker: env.describe(),
        probe_station: probe,
        commit_interval_ms,
        results,
        counts_exact: true,
    })
}

/// What the live-stream reader saw: (arrival, the probe station's count in the event).
type Timeline = Arc<Mutex<Vec<(Instant, i64)>>>;

async fn run_rate(
    addr: SocketAddr,
    producer: &Arc<TrackedProducer>,
    rows: &Arc<Vec<Encoded>>,
    probe: i32,
    rate: u64,
    opts: &LatencyOptions,
    expected: &mut BTreeMap<i32, i64>,
) -> Result<RateResult> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| BenchError::Invalid(format!("http client: {e}")))?;
    let base = format!("http://{addr}");
    let mut seen = probe_count(&client, &base, probe).await?;
    if seen != expected.get(&probe).copied().unwrap_or(0) {
        return Err(BenchError::Mismatch {
            phase: "latency",
            detail: format!("probe station {probe} shows {seen} before the run"),
        });
    }

    // The live stream, read from its own task.
    let timeline: Timeline = Arc::default();
    let reading = Arc::new(AtomicBool::new(true));
    let reader = tokio::spawn(read_live(
        client.clone(),
        format!("{base}/api/events"),
        probe,
        timeline.clone(),
        reading.clone(),
    ));

    // The background load, on a thread of its own.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let load = {
        let (producer, rows, stop, sent) =
            (producer.clone(), rows.clone(), stop.clone(), sent.clone());
        std::thread::Builder::new()
            .name("bench-latency-load".into())
            .spawn(move || background(&producer, &rows, probe, rate, &stop, &sent))
            .map_err(|e| BenchError::Io {
                what: "start the load thread".into(),
                source: e,
            })?
    };

    let probe_row = rows
        .iter()
        .find(|r| r.station_id == probe)
        .ok_or_else(|| BenchError::Invalid(format!("no row for station {probe}")))?;
    let started = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / opts.probes_per_sec as f64);
    let mut probes: Vec<(Instant, i64)> = Vec::new();
    let mut api_us = Vec::new();
    let mut failure = None;
    while started.elapsed() < opts.duration {
        let next = Instant::now() + gap;
        let t0 = Instant::now();
        if let Err(e) = producer.send(
            BaseRecord::<[u8], [u8]>::to(topics::TURNSTILE)
                .key(&probe_row.key[..])
                .payload(&probe_row.value[..])
                .timestamp(cta_stream::stream::now_ms()),
        ) {
            failure = Some(BenchError::Invalid(format!("probe produce: {}", e.0)));
            break;
        }
        let want = seen + 1;
        let deadline = t0 + Duration::from_secs(10);
        loop {
            match probe_count(&client, &base, probe).await {
                Ok(n) if n >= want => {
                    seen = n;
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
            if Instant::now() > deadline {
                failure = Some(BenchError::Timeout {
                    phase: "probe visible in /api/turnstile",
                    after: Duration::from_secs(10),
                    detail: format!("station {probe}, count {seen}, waiting for {want}"),
                });
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if failure.is_some() {
            break;
        }
        api_us.push(t0.elapsed().as_micros() as u64);
        probes.push((t0, want));
        tokio::time::sleep_until(next.into()).await;
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let per_station = load
        .join()
        .map_err(|_| BenchError::Invalid("load thread panicked".into()))??;
    // Give the live stream time to show the last probe (its tick is at most a second).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    reading.store(false, Ordering::Relaxed);
    reader.abort();
    if let Some(e) = failure {
        return Err(e);
    }
    let background_records = sent.load(Ordering::Relaxed);
    for (station, n) in per_station {
        *expected.entry(station).or_default() += n;
    }
    *expected.entry(probe).or_default() += probes.len() as i64;

    let timeline = timeline.lock().map(|t| t.clone()).unwrap_or_default();
    let live_us = probes
        .iter()
        .filter_map(|(t0, want)| {
            timeline
                .iter()
                .find(|(at, n)| at >= t0 && n >= want)
                .map(|(at, _)| at.duration_since(*t0).as_micros() as u64)
        })
        .collect::<Vec<_>>();
    Ok(RateResult {
        target_per_sec: rate,
        achieved_per_sec: crate::rate(background_records, elapsed),
        background_records,
        api: Percentiles::of(api_us),
        live: Percentiles::of(live_us),
        live_events: timeline.len() as u64,
    })
}

/// Sends entries of every station but `probe` at `rate` per second until `stop`; returns the
/// entries sent per station.
fn background(
    producer: &TrackedProducer,
    rows: &[Encoded],
    probe: i32,
    rate: u64,
    stop: &AtomicBool,
    sent: &AtomicU64,
) -> Result<BTreeMap<i32, i64>> {
    let others: Vec<&Encoded> = rows.iter().filter(|r| r.station_id != probe).collect();
    let mut per_station = BTreeMap::new();
    let started = Instant::now();
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        while n < due {
            let row = others[(n % others.len() as u64) as usize];
            let record = BaseRecord::<[u8], [u8]>::to(topics::TURNSTILE)
                .key(&row.key[..])
                .payload(&row.value[..])
                .timestamp(cta_stream::stream::now_ms());
            match producer.send(record) {
                Ok(()) => {
                    n += 1;
                    *per_station.entry(row.station_id).or_insert(0) += 1;
                }
                Err((e, _)) => {
                    // Local queue full: let librdkafka deliver, then try again.
                    tracing::debug!(error = %e, "load produce waits");
                    producer.poll(Duration::from_millis(1));
                }
            }
        }
        sent.store(n, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(1));
    }
    producer
        .flush(Duration::from_secs(60))
        .map_err(|e| BenchError::Invalid(format!("load flush: {e}")))?;
    Ok(per_station)
}

/// The probe station's count in `/api/turnstile/{probe}` (0 while it has none).
async fn probe_count(client: &reqwest::Client, base: &str, probe: i32) -> Result<i64> {
    let url = format!("{base}/api/turnstile/{probe}");
    let resp = client
        .get(&url)
        .send()
        .await
        .map_err(|e| BenchError::Invalid(format!("GET {url}: {e}")))?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(0);
    }
    let body: serde_json::Value = resp
        .json()
        .await
        .map_err(|e| BenchError::Invalid(format!("GET {url}: {e}")))?;
    body.get("COUNT")
        .and_then(|c| c.as_i64())
        .ok_or_else(|| BenchError::Invalid(format!("GET {url}: no COUNT in {body}")))
}

/// Reads the live stream, noting each event's arrival and the probe station's count in it.
async fn read_live(
    client: reqwest::Client,
    url: String,
    probe: i32,
    timeline: Timeline,
    reading: Arc<AtomicBool>,
) {
    let Ok(mut resp) = client
        .get(&url)
        .timeout(Duration::from_secs(3600))
        .send()
        .await
    else {
        tracing::warn!(%url, "live stream unavailable");
        return;
    };
    let mut buf = String::new();
    while reading.load(Ordering::Relaxed) {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            _ => return,
        };
        let at = Instant::now();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        // Events end with a blank line; their data is one `data:` line of JSON.
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            for line in event.lines() {
                let Some(data) = line.strip_prefix("data:") else {
                    continue;
                };
                if let Some(n) = station_entries(data.trim(), probe) {
                    if let Ok(mut t) = timeline.lock() {
                        t.push((at, n));
                    }
                }
            }
        }
    }
}

/// A station's entries in a live event (the page's view model as JSON).
fn station_entries(json: &str, station: i32) -> Option<i64> {
    let page: serde_json::Value = serde_json::from_str(json).ok()?;
    page.get("lines")?
        .as_array()?
        .iter()
        .flat_map(|l| {
            l.get("stations")
                .and_then(|s| s.as_array())
                .into_iter()
                .flatten()
        })
        .filter(|s| s.get("station_id").and_then(|v| v.as_i64()) == Some(station as i64))
        .filter_map(|s| s.get("entries").and_then(|v| v.as_i64()))
        .max()
}

impl fmt::Display for LatencyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.machine)?;
        writeln!(
            f,
            "broker: {}; probe station {}; checkpoint every {} ms",
            self.broker, self.probe_station, self.commit_interval_ms
        )?;
        writeln!(
            f,
            "produce → visible, ms        API p50 / p99 / max (n)        live page p50 / p99 / max (n)"
        )?;
        for r in &self.results {
            writeln!(
                f,
                "{:>9}/s (got {:>9}/s)  {:>6.1} / {:>6.1} / {:>6.1} ({:>3})   {:>6.1} / {:>6.1} / {:>6.1} ({:>3}, {} events)",
                thousands(r.target_per_sec as f64),
                thousands(r.achieved_per_sec),
                r.api.p50_ms,
                r.api.p99_ms,
                r.api.max_ms,
                r.api.samples,
                r.live.p50_ms,
                r.live.p99_ms,
                r.live.max_ms,
                r.live.samples,
                r.live_events,
            )?;
        }
        writeln!(f, "counts exact: {}", self.counts_exact)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_sample_at_or_above_the_rank() {
        let p = Percentiles::of((1..=100).map(|i| i * 1000).collect());
        assert_eq!(
            (p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms),
            (50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(Percentiles::of(vec![]).samples, 0);
    }

    #[test]
    fn station_entries_reads_the_largest_row_of_the_station() {
        let json = r#"{"lines":[{"stations":[{"station_id":1,"entries":5},{"station_id":2,"entries":7}]},
            {"stations":[{"station_id":1,"entries":6}]}]}"#;
        assert_eq!(station_entries(json, 1), Some(6));
        assert_eq!(station_entries(json, 3), None);
    }
}

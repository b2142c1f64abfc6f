//! The simulation: a clock that advances `time_step` per step and, each step, moves the
//! trains, draws turnstile entries and (once per simulated hour) the weather, and produces all
//! of it to Kafka as Confluent-framed Avro. At start it publishes the station rows as Kafka
//! Connect's JDBC source would (JSON, schemas off).
//!
//! [`run_with`] takes [`SimHooks`]: station rows read elsewhere (e.g. from Postgres) to publish
//! instead of the dataset's, and a [`WeatherSink`] that carries the weather instead of the Kafka
//! producer (e.g. the Confluent REST Proxy). The domain only defines the seams; the outside
//! systems live in `crate::integrations`.

pub mod trains;
pub mod turnstiles;
pub mod weather;

use crate::stream::codec::confluent::SubjectSchema;
use crate::stream::kafka::{ensure_topics, flush, tracked_producer, TopicSpec, TrackedProducer};
use crate::stream::{AvroEncoder, KafkaConfig, RegistryConfig, Result, Shutdown, StreamError};
use crate::transit::models::{
    schemas, topics, Arrival, TimestampKey, TurnstileEntry, TurnstileKey, Weather,
};
use crate::transit::stations::{ConnectStationRow, Dataset};
use chrono::{DateTime, Datelike, NaiveDateTime, Timelike};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::BaseRecord;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long the simulation waits before retrying a record its producer's full queue refused.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(10);

/// Chicago local time as a fixed UTC-6 offset (the simulation ignores daylight saving).
pub const CHICAGO_OFFSET_MS: i64 = -6 * 3600 * 1000;

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Simulated time per step.
    pub time_step: Duration,
    /// Real time to sleep between steps.
    pub sleep: Duration,
    /// Stop after this many steps (run until shutdown when `None`).
    pub steps: Option<u64>,
    pub seed: u64,
    pub trains_per_line: usize,
    /// Partitions of the topics the simulation creates.
    pub partitions: i32,
    /// Simulated start, ms since the epoch.
    pub start_ms: i64,
    /// Publish the station rows at start (off when Kafka Connect does it).
    pub publish_stations: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            time_step: Duration::from_secs(300),
            sleep: Duration::from_secs(5),
            steps: None,
            seed: 0,
            trains_per_line: 10,
            partitions: 4,
            start_ms: crate::stream::now_ms(),
            publish_stations: true,
        }
    }
}

/// What one step produced.
#[derive(Debug, Clone, Default)]
pub struct StepOutput {
    pub time_ms: i64,
    pub arrivals: Vec<Arrival>,
    pub turnstile: Vec<TurnstileEntry>,
    pub weather: Option<Weather>,
}

/// The simulated world, independent of Kafka.
pub struct Simulation {
    dataset: Dataset,
    fleet: trains::Fleet,
    weather: weather::WeatherModel,
    rng: ChaCha8Rng,
    clock_ms: i64,
    step_ms: i64,
    last_weather_hour: Option<i64>,
}

fn local(ms: i64) -> NaiveDateTime {
    DateTime::from_timestamp_millis(ms + CHICAGO_OFFSET_MS)
        .unwrap_or_default()
        .naive_utc()
}

impl Simulation {
    pub fn new(dataset: Dataset, config: &SimConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let t = local(config.start_ms);
        let weather = weather::WeatherModel::new(t.month(), t.hour(), &mut rng);
        Self {
            fleet: trains::Fleet::new(&dataset, config.trains_per_line),
            dataset,
            weather,
            rng,
            clock_ms: config.start_ms,
            step_ms: config.time_step.as_millis().max(1) as i64,
            last_weather_hour: None,
        }
    }

    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// Where every train stands now: the ground truth the status page must show.
    pub fn train_positions(&self) -> Vec<trains::TrainPosition> {
        self.fleet.positions()
    }

    /// Advances the clock one step.
    pub fn step(&mut self) -> StepOutput {
        let now = self.clock_ms;
        let t = local(now);
        let arrivals = self.fleet.step(&mut self.rng);
        let day = turnstiles::day_type(t);
        let step_minutes = self.step_ms as f64 / 60_000.0;
        let mut turnstile = Vec::new();
        for row in self.dataset.rows() {
            let expected =
                turnstiles::expected_entries(row.average_entries(day), t.hour(), step_minutes);
            let n = turnstiles::draw(expected, &mut self.rng);
            for _ in 0..n {
                turnstile.push(TurnstileEntry {
                    station_id: row.station_id,
                    station_name: row.station_name.clone(),
                    line: row.line.as_str().to_string(),
                });
            }
        }
        let hour = now.div_euclid(3_600_000);
        let weather = if self.last_weather_hour != Some(hour) {
            self.last_weather_hour = Some(hour);
            Some(self.weather.step(t.month(), t.hour(), &mut self.rng))
        } else {
            None
        };
        self.clock_ms += self.step_ms;
        StepOutput {
            time_ms: now,
            arrivals,
            turnstile,
            weather,
        }
    }
}

/// Records produced per topic.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    pub steps: u64,
    pub produced: BTreeMap<String, u64>,
    pub turnstile_per_station: BTreeMap<i32, u64>,
    /// Where every train stood after the last step.
    pub train_positions: Vec<trains::TrainPosition>,
}

/// An encoded key and value.
type EncodedPair = (Vec<u8>, Vec<u8>);

/// Encodes and produces simulation output.
pub struct SimProducer {
    producer: TrackedProducer,
    encoder: AvroEncoder,
    arrival_key: SubjectSchema,
    arrival_value: SubjectSchema,
    turnstile_key: SubjectSchema,
    turnstile_value: SubjectSchema,
    weather_key: SubjectSchema,
    weather_value: SubjectSchema,
}

impl SimProducer {
    pub fn new(kafka: &KafkaConfig, registry: &RegistryConfig) -> Result<Self> {
        Ok(Self {
            producer: tracked_producer(kafka)?,
            encoder: AvroEncoder::new(registry)?,
            arrival_key: SubjectSchema::new(topics::ARRIVALS, true, schemas::ARRIVAL_KEY)?,
            arrival_value: SubjectSchema::new(topics::ARRIVALS, false, schemas::ARRIVAL_VALUE)?,
            turnstile_key: SubjectSchema::new(topics::TURNSTILE, true, schemas::TURNSTILE_KEY)?,
            turnstile_value: SubjectSchema::new(
                topics::TURNSTILE,
                false,
                schemas::TURNSTILE_VALUE,
            )?,
            weather_key: SubjectSchema::new(topics::WEATHER, true, schemas::WEATHER_KEY)?,
            weather_value: SubjectSchema::new(topics::WEATHER, false, schemas::WEATHER_VALUE)?,
        })
    }

    /// Sends one record. While the producer's bounded queue is full (the brokers are slow or
    /// away) the simulation waits here, asynchronously: it neither drops records nor grows
    /// without bound, and it never blocks the runtime's threads (a blocked worker thread can
    /// stall other tasks, such as a web server in the same process).
    async fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
        ts: Option<i64>,
    ) -> Result<()> {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).payload(value);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(ts) = ts {
            record = record.timestamp(ts);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    tokio::time::sleep(QUEUE_FULL_BACKOFF).await;
                }
                Err((source, _)) => {
                    return Err(StreamError::Kafka {
                        op: "produce",
                        source,
                    })
                }
            }
        }
    }

    /// Publishes the station rows as the JDBC source connector would.
    pub async fn publish_stations(&self, dataset: &Dataset) -> Result<u64> {
        self.publish_station_rows(&dataset.connect_rows()).await
    }

    /// Publishes the given station rows (JSON, schemas off, no key), as the JDBC source would.
    pub async fn publish_station_rows(&self, rows: &[ConnectStationRow]) -> Result<u64> {
        for r in rows {
            self.send(
                topics::STATIONS,
                None,
                &crate::stream::codec::json::encode(r),
                None,
            )
            .await?;
        }
        Ok(rows.len() as u64)
    }

    pub async fn produce_step(&self, out: &StepOutput, report: &mut SimReport) -> Result<()> {
        let ts = Some(out.time_ms);
        let tkey = TimestampKey {
            timestamp: out.time_ms,
        };
        let arrival_key = self.encoder.encode(&tkey, &self.arrival_key).await?;
        for a in &out.arrivals {
            let v = self.encoder.encode(a, &self.arrival_value).await?;
            self.send(topics::ARRIVALS, Some(&arrival_key), &v, ts)
                .await?;
        }
        *report.produced.entry(topics::ARRIVALS.into()).or_default() += out.arrivals.len() as u64;
        // Entries of one station in a step are identical records: encode each once.
        let mut encoded: BTreeMap<(i32, &str), EncodedPair> = BTreeMap::new();
        for e in &out.turnstile {
            let slot = match encoded.entry((e.station_id, e.line.as_str())) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    let key = TurnstileKey {
                        station_id: e.station_id,
                    };
                    let k = self.encoder.encode(&key, &self.turnstile_key).await?;
                    let val = self.encoder.encode(e, &self.turnstile_value).await?;
                    v.insert((k, val))
                }
            };
            self.send(topics::TURNSTILE, Some(&slot.0), &slot.1, ts)
                .await?;
            *report
                .turnstile_per_station
                .entry(e.station_id)
                .or_default() += 1;
        }
        *report.produced.entry(topics::TURNSTILE.into()).or_default() += out.turnstile.len() as u64;
        if let Some(w) = &out.weather {
            let k = self.encoder.encode(&tkey, &self.weather_key).await?;
            let v = self.encoder.encode(w, &self.weather_value).await?;
            self.send(topics::WEATHER, Some(&k), &v, ts).await?;
            *report.produced.entry(topics::WEATHER.into()).or_default() += 1;
        }
        Ok(())
    }

    pub fn flush(&self) -> Result<()> {
        flush(&self.producer, Duration::from_secs(60))
    }
}

/// The topics the simulation writes, with `partitions` each.
pub fn topic_specs(partitions: i32) -> Vec<TopicSpec> {
    [
        topics::ARRIVALS,
        topics::TURNSTILE,
        topics::WEATHER,
        topics::STATIONS,
    ]
    .iter()
    .map(|t| TopicSpec {
        name: t.to_string(),
        partitions,
        compacted: false,
    })
    .collect()
}

/// Why a [`WeatherSink`] could not deliver a reading (one line, naming the system).
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Carries weather readings somewhere other than the simulation's Kafka producer.
pub trait WeatherSink: Send + Sync {
    /// Where the readings go, for errors and logs (e.g. the REST Proxy URL).
    fn describe(&self) -> String;
    /// Delivers one reading; returns once it is acknowledged.
    fn send<'a>(
        &'a self,
        key: &'a TimestampKey,
        value: &'a Weather,
    ) -> futures::future::BoxFuture<'a, std::result::Result<(), SinkError>>;
}

/// Optional replacements for parts of the simulation's output.
#[derive(Default)]
pub struct SimHooks {
    /// Station rows to publish at start instead of the dataset's (when
    /// [`SimConfig::publish_stations`] is on), e.g. read from Postgres.
    pub station_rows: Option<Vec<ConnectStationRow>>,
    /// Send weather here instead of producing it to Kafka.
    pub weather: Option<Box<dyn WeatherSink>>,
}

/// Errors of [`run_with`].
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error("weather via {sink}: {reason}")]
    Weather { sink: String, reason: String },
}

/// Runs the simulation until `steps` are done or `shutdown`, then flushes.
pub async fn run(
    dataset: Dataset,
    config: SimConfig,
    kafka: &KafkaConfig,
    registry: &RegistryConfig,
    shutdown: Shutdown,
) -> Result<SimReport> {
    match run_with(
        dataset,
        config,
        kafka,
        registry,
        SimHooks::default(),
        shutdown,
    )
    .await
    {
        Ok(r) => Ok(r),
        Err(SimError::Stream(e)) => Err(e),
        // Without hooks there is no sink; keep the message if that ever changes.
        Err(e @ SimError::Weather { .. }) => Err(StreamError::Config(e.to_string())),
    }
}

/// [`run`] with some output replaced by `hooks`.
pub async fn run_with(
    dataset: Dataset,
    config: SimConfig,
    kafka: &KafkaConfig,
    registry: &RegistryConfig,
    hooks: SimHooks,
    shutdown: Shutdown,
) -> std::result::Result<SimReport, SimError> {
    ensure_topics(kafka, &topic_specs(config.partitions)).await?;
    let producer = SimProducer::new(kafka, registry)?;
    let mut sim = Simulation::new(dataset, &config);
    let mut report = SimReport::default();
    if config.publish_stations {
        let n = match &hooks.station_rows {
            Some(rows) => producer.publish_station_rows(rows).await?,
            None => producer.publish_stations(sim.dataset()).await?,
        };
        report.produced.insert(topics::STATIONS.into(), n);
    }
    let started = Instant::now();
    let mut last_log = Instant::now();
    while config.steps.is_none_or(|n| report.steps < n) && !shutdown.is_triggered() {
        let mut out = sim.step();
        let diverted = match &hooks.weather {
            Some(sink) => out.weather.take().map(|w| (sink, w)),
            None => None,
        };
        producer.produce_step(&out, &mut report).await?;
        if let Some((sink, w)) = diverted {
            let key = TimestampKey {
                timestamp: out.time_ms,
            };
            sink.send(&key, &w).await.map_err(|e| SimError::Weather {
                sink: sink.describe(),
                reason: e.to_string(),
            })?;
            *report.produced.entry(topics::WEATHER.into()).or_default() += 1;
        }
        report.steps += 1;
        if last_log.elapsed() >= Duration::from_secs(10) || config.steps == Some(report.steps) {
            last_log = Instant::now();
            let total: u64 = report.produced.values().sum();
            tracing::info!(steps = report.steps, records = total, rate = (total as f64 / started.elapsed().as_secs_f64().max(1e-3)) as u64,
                sim_time = %local(out.time_ms).format("%Y-%m-%d %H:%M"), "simulation progress");
        }
        if !config.sleep.is_zero() && config.steps.is_none_or(|n| report.steps < n) {
            tokio::select! {
                _ = tokio::time::sleep(config.sleep) => {}
                _ = shutdown.wait() => {}
            }
        }
    }
    report.train_positions = sim.train_positions();
    let p = producer;
    tokio::task::spawn_blocking(move || p.flush())
        .await
        .map_err(|e| StreamError::Config(format!("flush task failed: {e}")))??;
    tracing::info!(steps = report.steps, produced = ?report.produced, "simulation done; producer flushed");
    Ok(report)
}

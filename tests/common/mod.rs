//! Shared test harness: a broker and registry (the embedded platform by default, or any
//! Kafka-protocol broker from `CTA_TEST_BROKERS` + `CTA_TEST_SCHEMA_REGISTRY_URL`), and an
//! independent reader that counts records straight off a topic with apache-avro.
#![allow(dead_code)]

pub mod kills;
pub mod noida;
pub mod stepped;

use apache_avro::types::Value;
use cta_stream::platform::Platform;
use cta_stream::stream::{KafkaConfig, RegistryConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

pub struct TestEnv {
    pub platform: Option<Platform>,
    pub kafka: KafkaConfig,
    pub registry: RegistryConfig,
}

pub async fn env() -> TestEnv {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    match (
        std::env::var("CTA_TEST_BROKERS"),
        std::env::var("CTA_TEST_SCHEMA_REGISTRY_URL"),
    ) {
        (Ok(b), Ok(u)) => TestEnv {
            platform: None,
            kafka: KafkaConfig::new(b),
            registry: RegistryConfig::new(u),
        },
        _ => {
            let platform = Platform::start("127.0.0.1:0".parse().unwrap(), None)
                .await
                .unwrap();
            let mut kafka = KafkaConfig::new(platform.broker.bootstrap_servers());
            // As the demo and `cta platform` discovery do: the mock has no CreateTopics.
            kafka.topics_created_on_first_use();
            let registry = RegistryConfig::new(platform.registry_url.clone());
            TestEnv {
                platform: Some(platform),
                kafka,
                registry,
            }
        }
    }
}

impl TestEnv {
    /// The same broker and registry, for another task (the platform stays with `self`).
    pub fn clone_clients(&self) -> TestEnv {
        TestEnv {
            platform: None,
            kafka: self.kafka.clone(),
            registry: self.registry.clone(),
        }
    }

    /// Creates topics on the embedded broker (a real broker gets them from the code under test).
    pub fn create_topics(&self, names: &[String], partitions: i32) {
        if let Some(p) = &self.platform {
            for n in names {
                p.broker.create_topic(n, partitions).unwrap();
            }
        }
    }
}

/// A simulation of `steps` 5-minute steps from `start_ms`, as fast as it goes.
pub fn sim_config_at(
    seed: u64,
    steps: u64,
    start_ms: i64,
) -> cta_stream::transit::simulation::SimConfig {
    cta_stream::transit::simulation::SimConfig {
        time_step: Duration::from_secs(300),
        sleep: Duration::ZERO,
        steps: Some(steps),
        seed,
        start_ms,
        ..Default::default()
    }
}

pub fn free_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Every record of `topic` from the beginning to the current end: (key, value) bytes.
/// A record's key and value bytes.
pub type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

pub fn read_all(brokers: &str, topic: &str) -> Vec<KeyValue> {
    read_all_timed(brokers, topic)
        .into_iter()
        .map(|(k, v, _)| (k, v))
        .collect()
}

/// A record's key, value and timestamp.
pub type Timed = (Option<Vec<u8>>, Option<Vec<u8>>, i64);

/// Every record of `topic` from the beginning to the current end, with timestamps.
pub fn read_all_timed(brokers: &str, topic: &str) -> Vec<Timed> {
    cta_stream::stream::testing::read_topic(brokers, topic)
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp.unwrap_or(0)))
        .collect()
}

/// Decodes Confluent-framed Avro with apache-avro, fetching writer schemas over plain HTTP.
pub struct IndependentAvro {
    url: String,
    schemas: HashMap<u32, apache_avro::Schema>,
}

impl IndependentAvro {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.trim_end_matches('/').to_string(),
            schemas: HashMap::new(),
        }
    }

    pub async fn decode(&mut self, bytes: &[u8]) -> BTreeMap<String, Value> {
        assert_eq!(bytes[0], 0, "magic byte");
        let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap());
        if !self.schemas.contains_key(&id) {
            let body: serde_json::Value = reqwest::get(format!("{}/schemas/ids/{id}", self.url))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let schema = apache_avro::Schema::parse_str(body["schema"].as_str().unwrap()).unwrap();
            self.schemas.insert(id, schema);
        }
        let mut body = &bytes[5..];
        match apache_avro::reader::datum::GenericDatumReader::builder(&self.schemas[&id])
            .build()
            .unwrap()
            .read_value(&mut body)
            .unwrap()
        {
            Value::Record(fields) => fields.into_iter().collect(),
            other => panic!("not a record: {other:?}"),
        }
    }
}

/// Per-station turnstile entries counted straight from the topic.
pub async fn count_turnstile(env: &TestEnv) -> BTreeMap<i32, i64> {
    let mut counts = BTreeMap::new();
    for (id, _) in turnstile_entries(env).await {
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

/// (station id, event time) of every turnstile entry on the topic.
pub async fn turnstile_entries(env: &TestEnv) -> Vec<(i32, i64)> {
    let mut avro = IndependentAvro::new(&env.registry.url);
    let mut out = Vec::new();
    for (_, v, ts) in read_all_timed(&env.kafka.brokers, "org.chicago.cta.turnstile.v1") {
        let rec = avro.decode(&v.unwrap()).await;
        match rec["station_id"] {
            Value::Int(id) => out.push((id, ts)),
            ref other => panic!("station_id {other:?}"),
        }
    }
    out
}

/// GETs JSON.
pub async fn get_json(url: &str) -> (u16, serde_json::Value) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// The turnstile table from the API as station → count.
pub async fn api_turnstile(base: &str) -> Option<BTreeMap<i32, i64>> {
    let r = reqwest::get(format!("{base}/api/turnstile")).await.ok()?;
    let v: Vec<serde_json::Value> = r.json().await.ok()?;
    Some(
        v.iter()
            .map(|o| {
                (
                    o["STATION_ID"].as_i64().unwrap() as i32,
                    o["COUNT"].as_i64().unwrap(),
                )
            })
            .collect(),
    )
}

/// Polls until the API's turnstile table equals `expected`, or panics with the difference.
pub async fn wait_for_counts(base: &str, expected: &BTreeMap<i32, i64>, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(got) = api_turnstile(base).await {
            if &got == expected {
                return;
            }
            last = Some(got);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let got = last.unwrap_or_default();
    let diff: Vec<_> = expected
        .iter()
        .filter(|(k, v)| got.get(k) != Some(v))
        .map(|(k, v)| (k, *v, got.get(k).copied()))
        .take(10)
        .collect();
    panic!(
        "counts differ after {timeout:?}: expected total {}, got {}; first differences (station, expected, got): {diff:?}",
        expected.values().sum::<i64>(),
        got.values().sum::<i64>()
    );
}

/// Undoes askama's HTML escaping.
pub fn unescape_html(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Triggers a shutdown when dropped, so a failing assertion does not leave a worker thread
/// running (and the test process hanging).
pub struct StopOnDrop(pub cta_stream::stream::Shutdown);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.trigger();
    }
}

/// Produces turnstile entries like the simulation does (Avro, keyed by station), or like the
/// original CTA project's producers ([`TurnstileProducer::original`]), for stations of the
/// built-in dataset chosen at random.
pub struct TurnstileProducer {
    producer: cta_stream::stream::kafka::TrackedProducer,
    encoded: Vec<(i32, Vec<u8>, Vec<u8>)>,
    /// Keys by send time instead: the key schema's registry frame header.
    timestamp_key: Option<Vec<u8>>,
}

/// The original project's turnstile value: `station_id` is a string there.
#[derive(serde::Serialize)]
struct OriginalTurnstileValue<'a> {
    station_id: String,
    station_name: &'a str,
    line: &'a str,
}

/// The original project's turnstile schemas as it registers them (written out here): key
/// `{timestamp}` (ms), value with three string fields, under its topic's subjects.
const ORIGINAL_TOPIC: &str = "org.chicago.cta.turstile.v1";
const ORIGINAL_KEY_SCHEMA: &str = r#"{"type":"record","name":"turnstile.key","namespace":"com.udacity","fields":[{"name":"timestamp","type":"long"}]}"#;
const ORIGINAL_VALUE_SCHEMA: &str = r#"{"type":"record","name":"turnstile.value","namespace":"com.udacity","fields":[{"name":"station_id","type":"string"},{"name":"station_name","type":"string"},{"name":"line","type":"string"}]}"#;

impl TurnstileProducer {
    /// Entries as the original CTA project's producers write them: Avro key `{timestamp}` (the
    /// send time in ms), the value schema they register (`station_id` a string); so a station's
    /// entries land in every partition.
    pub async fn original(env: &TestEnv) -> Self {
        use cta_stream::stream::codec::confluent::SubjectSchema;
        let encoder = cta_stream::stream::AvroEncoder::new(&env.registry).unwrap();
        let kschema = SubjectSchema::new(ORIGINAL_TOPIC, true, ORIGINAL_KEY_SCHEMA).unwrap();
        let vschema = SubjectSchema::new(ORIGINAL_TOPIC, false, ORIGINAL_VALUE_SCHEMA).unwrap();
        let key = cta_stream::transit::models::TimestampKey { timestamp: 0 };
        let framed_key = encoder.encode(&key, &kschema).await.unwrap();
        let mut encoded = Vec::new();
        for s in cta_stream::transit::stations::Dataset::builtin().rows() {
            let value = OriginalTurnstileValue {
                station_id: s.station_id.to_string(),
                station_name: &s.station_name,
                line: s.line.as_str(),
            };
            let v = encoder.encode(&value, &vschema).await.unwrap();
            encoded.push((s.station_id, Vec::new(), v));
        }
        Self {
            producer: cta_stream::stream::kafka::tracked_producer(&env.kafka).unwrap(),
            encoded,
            timestamp_key: Some(framed_key[..5].to_vec()),
        }
    }

    /// The key to send `station_key` with: itself, or the send time in the original's form.
    fn key_of(&self, station_key: &[u8]) -> Vec<u8> {
        let Some(header) = &self.timestamp_key else {
            return station_key.to_vec();
        };
        // The record's one field, an Avro long: zigzag, then base-128 varint.
        let now = cta_stream::stream::now_ms();
        let mut z = ((now << 1) ^ (now >> 63)) as u64;
        let mut key = header.clone();
        while z >= 0x80 {
            key.push((z as u8 & 0x7f) | 0x80);
            z >>= 7;
        }
        key.push(z as u8);
        key
    }

    pub async fn new(env: &TestEnv) -> Self {
        use cta_stream::stream::codec::confluent::SubjectSchema;
        use cta_stream::transit::models::{schemas, topics, TurnstileEntry, TurnstileKey};
        let encoder = cta_stream::stream::AvroEncoder::new(&env.registry).unwrap();
        let kschema = SubjectSchema::new(topics::TURNSTILE, true, schemas::TURNSTILE_KEY).unwrap();
        let vschema =
            SubjectSchema::new(topics::TURNSTILE, false, schemas::TURNSTILE_VALUE).unwrap();
        let mut encoded = Vec::new();
        for s in cta_stream::transit::stations::Dataset::builtin().rows() {
            let k = encoder
                .encode(
                    &TurnstileKey {
                        station_id: s.station_id,
                    },
                    &kschema,
                )
                .await
                .unwrap();
            let e = TurnstileEntry {
                station_id: s.station_id,
                station_name: s.station_name.clone(),
                line: s.line.as_str().into(),
            };
            let v = encoder.encode(&e, &vschema).await.unwrap();
            encoded.push((s.station_id, k, v));
        }
        Self {
            producer: cta_stream::stream::kafka::tracked_producer(&env.kafka).unwrap(),
            encoded,
            timestamp_key: None,
        }
    }

    /// Sends one raw record to the turnstile topic (not waited for).
    pub fn send_raw(&self, key: &[u8], value: Option<&[u8]>) {
        cta_stream::stream::kafka::send_blocking(
            &self.producer,
            cta_stream::transit::models::topics::TURNSTILE,
            None,
            Some(key),
            value,
            None,
            None,
        )
        .unwrap();
    }

    /// The encoded (key, value) of a valid entry for the i-th station of the dataset.
    pub fn valid(&self, i: usize) -> (i32, Vec<u8>, Vec<u8>) {
        self.encoded[i % self.encoded.len()].clone()
    }

    /// Sends `n` entries and waits for their delivery, adding them to `tally`.
    pub fn send(&self, n: usize, rng: &mut impl rand::Rng, tally: &mut BTreeMap<i32, i64>) {
        for _ in 0..n {
            let (id, k, v) = &self.encoded[rng.random_range(0..self.encoded.len())];
            cta_stream::stream::kafka::send_blocking(
                &self.producer,
                cta_stream::transit::models::topics::TURNSTILE,
                None,
                Some(&self.key_of(k)),
                Some(v),
                None,
                None,
            )
            .unwrap();
            *tally.entry(*id).or_insert(0) += 1;
        }
        tokio::task::block_in_place(|| {
            cta_stream::stream::kafka::flush(&self.producer, Duration::from_secs(60))
        })
        .unwrap();
    }
}

/// A worker (tables + web server) running in this process.
pub struct RunningWorker {
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub shutdown: cta_stream::stream::Shutdown,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningWorker {
    /// Whether the worker has ended (stopped or failed) on its own.
    pub fn has_ended(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    pub async fn stop(mut self) {
        self.shutdown.trigger();
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }
}

impl Drop for RunningWorker {
    /// A failing test still stops its worker, so the runtime can shut down.
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Starts a worker with its web server on a free loopback port.
pub async fn spawn_worker(env: &TestEnv, dir: &std::path::Path, app_id: &str) -> RunningWorker {
    spawn_worker_with(env, dir, app_id, Default::default()).await
}

/// [`spawn_worker`] with outside systems (ksqlDB) taking over part of the work.
#[allow(dead_code)]
pub async fn spawn_worker_with(
    env: &TestEnv,
    dir: &std::path::Path,
    app_id: &str,
    integrations: cta_stream::runner::WorkerIntegrations,
) -> RunningWorker {
    use cta_stream::runner::{run_worker_with, WorkerOptions};
    let addr = free_addr();
    let opts = WorkerOptions {
        app_id: app_id.to_string(),
        data_dir: dir.to_path_buf(),
        web_addr: addr,
        commit_interval: Duration::from_millis(200),
        advertise_url: None,
        guarantee: Default::default(),
        standby_replicas: 0,
        turnstile_keys: Default::default(),
    };
    let shutdown = cta_stream::stream::Shutdown::new();
    let (kafka, registry, s) = (env.kafka.clone(), env.registry.clone(), shutdown.clone());
    let task = tokio::spawn(async move {
        run_worker_with(opts, kafka, registry, integrations, s)
            .await
            .expect("worker failed");
    });
    // The server binds before the worker starts polling; wait until it answers.
    let base = format!("http://{addr}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if reqwest::get(format!("{base}/health")).await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "worker web server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    RunningWorker {
        base,
        addr,
        shutdown,
        task: Some(task),
    }
}

/// Topics the simulation writes plus the worker's changelogs, created on the embedded broker.
pub fn create_all_topics(env: &TestEnv, app_id: &str) {
    create_all_topics_with(env, app_id, 4);
}

/// [`create_all_topics`] with `partitions` each (the worker's changelog, repartition and
/// output topics too).
pub fn create_all_topics_with(env: &TestEnv, app_id: &str, partitions: i32) {
    env.create_topics(&cta_topics(app_id, partitions), partitions);
}

/// Every topic of a CTA pipeline of `app_id`: the simulation's and every topic the worker
/// writes (the mock has no CreateTopics; a missing one costs each worker start 15 s).
pub fn cta_topics(app_id: &str, partitions: i32) -> Vec<String> {
    cta_topics_of(&[app_id], partitions)
}

/// [`cta_topics`] of several apps sharing one broker, each topic once.
pub fn cta_topics_of(app_ids: &[&str], partitions: i32) -> Vec<String> {
    let mut topics: Vec<String> = cta_stream::transit::simulation::topic_specs(partitions)
        .into_iter()
        .map(|t| t.name)
        .collect();
    for a in app_ids {
        topics.extend(cta_stream::transit::worker_topics(a));
    }
    topics.sort();
    topics.dedup();
    topics
}

/// Sends one record with a plain producer (as another system would) and waits for delivery.
pub fn produce_raw(brokers: &str, topic: &str, key: Option<&[u8]>, payload: &[u8]) {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).payload(payload);
    if let Some(k) = key {
        rec = rec.key(k);
    }
    p.send(rec).map_err(|(e, _)| e).unwrap();
    p.flush(Duration::from_secs(30)).unwrap();
}

/// A station row as the JDBC source connector would publish it, on the Blue Line.
pub fn station_row_json(station_id: i32, name: &str, order: i32) -> Vec<u8> {
    serde_json::to_vec(&cta_stream::transit::stations::ConnectStationRow {
        stop_id: station_id + 1,
        direction_id: "N".into(),
        stop_name: format!("{name} (test-bound)"),
        station_name: name.to_string(),
        station_descriptive_name: name.to_string(),
        station_id,
        order,
        red: false,
        blue: true,
        green: false,
    })
    .unwrap()
}

/// `/metrics`, parsed with an independent Prometheus text parser.
pub async fn scrape(base: &str) -> prometheus_parse::Scrape {
    let r = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(ct.starts_with("text/plain"), "content type {ct}");
    let text = r.text().await.unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// The value of the sample `name` whose labels include all of `labels` (None if absent).
pub fn sample(
    scrape: &prometheus_parse::Scrape,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            other => panic!("{name}: not a scalar: {other:?}"),
        })
}

/// Every sample named `name`, with its labels.
pub fn samples<'a>(
    scrape: &'a prometheus_parse::Scrape,
    name: &'a str,
) -> impl Iterator<Item = &'a prometheus_parse::Sample> + 'a {
    scrape.samples.iter().filter(move |s| s.metric == name)
}

/// Starts the `worker` binary against `env`, with its own data dir and web address. A killed
/// worker's group session ends after 3 s, so restarts and fail-overs are not held up by it.
pub fn spawn_worker_binary(
    env: &TestEnv,
    dir: &std::path::Path,
    app_id: &str,
    addr: std::net::SocketAddr,
    commit_interval: &str,
) -> std::process::Child {
    worker_binary(env, dir, app_id, addr, commit_interval)
        .spawn()
        .expect("start worker binary")
}

/// [`spawn_worker_binary`] with more flags.
pub fn spawn_worker_binary_with(
    env: &TestEnv,
    dir: &std::path::Path,
    app_id: &str,
    addr: std::net::SocketAddr,
    commit_interval: &str,
    extra: &[&str],
) -> std::process::Child {
    worker_binary(env, dir, app_id, addr, commit_interval)
        .args(extra)
        .spawn()
        .expect("start worker binary")
}

/// How the worker processes form their consumer group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupProtocol {
    /// Classic groups (JoinGroup/SyncGroup, eager assignment), short session timeout.
    Classic,
    /// KIP-848 (`group.protocol=consumer`): incremental assignment, session timeout set by
    /// the broker.
    Consumer,
}

/// The command [`spawn_worker_binary`] runs, to add flags or capture its output.
pub fn worker_binary(
    env: &TestEnv,
    dir: &std::path::Path,
    app_id: &str,
    addr: std::net::SocketAddr,
    commit_interval: &str,
) -> std::process::Command {
    worker_binary_in(
        env,
        dir,
        app_id,
        addr,
        commit_interval,
        GroupProtocol::Classic,
    )
}

/// [`worker_binary`] with the group protocol chosen.
pub fn worker_binary_in(
    env: &TestEnv,
    dir: &std::path::Path,
    app_id: &str,
    addr: std::net::SocketAddr,
    commit_interval: &str,
    protocol: GroupProtocol,
) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_worker"));
    cmd.args(["--brokers", &env.kafka.brokers])
        .args(["--schema-registry-url", &env.registry.url])
        .args(["--app-id", app_id])
        .arg("--data-dir")
        .arg(dir)
        .args(["--web-addr", &addr.to_string()])
        .args(["--commit-interval", commit_interval]);
    match protocol {
        // A killed worker's partitions move on after the session timeout: short on the
        // embedded broker, Kafka's minimum (group.min.session.timeout.ms) elsewhere.
        GroupProtocol::Classic => cmd.args([
            "-X",
            if env.platform.is_some() {
                "session.timeout.ms=3000"
            } else {
                "session.timeout.ms=6000"
            },
            "-X",
            "heartbeat.interval.ms=500",
        ]),
        GroupProtocol::Consumer => cmd.args(["-X", "group.protocol=consumer"]),
    };
    cmd.env("RUST_LOG", "warn,librdkafka=error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    cmd
}

/// Waits up to `timeout` for a child process to exit; `None` if it is still running.
pub fn wait_exit(
    child: &mut std::process::Child,
    timeout: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The consumer group's committed offset per partition of `topic` (partitions without one are
/// left out).
pub fn group_committed(env: &TestEnv, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &env.kafka.brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..md.topics()[0].partitions().len() as i32 {
        tpl.add_partition(topic, p);
    }
    c.committed_offsets(tpl, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .filter_map(|e| {
            e.offset()
                .to_raw()
                .filter(|o| *o >= 0)
                .map(|o| (e.partition(), o))
        })
        .collect()
}

/// The turnstile counts the changelog says were checkpointed: the latest `COUNT` per station
/// in `TURNSTILE_SUMMARY`, read back with a plain consumer.
pub fn changelog_turnstile(env: &TestEnv) -> BTreeMap<i32, i64> {
    let mut latest = BTreeMap::new();
    for (_, v) in read_all(
        &env.kafka.brokers,
        cta_stream::transit::models::topics::TURNSTILE_SUMMARY,
    ) {
        let v: serde_json::Value = serde_json::from_slice(&v.unwrap()).unwrap();
        latest.insert(
            v["STATION_ID"].as_i64().unwrap() as i32,
            v["COUNT"].as_i64().unwrap(),
        );
    }
    latest
}

/// Waits until the worker at `base` owns partitions (its tables are restored).
pub async fn wait_assigned(base: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(format!("{base}/api/status?scope=local")).await {
            if let Ok(v) = r.json::<serde_json::Value>().await {
                if v["worker"]["assigned"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
                {
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("worker at {base} never got partitions");
}

/// The turnstile table's source offsets summed over its 4 partition stores in `dir` (what the
/// last completed checkpoint covers), read with the worker stopped.
pub fn stored_total(dir: &std::path::Path, app_id: &str) -> i64 {
    use cta_stream::stream::table::store::{PartitionStore, StoreIdentity};
    let table = cta_stream::transit::tables::TURNSTILE;
    (0..4)
        .map(|p| {
            let identity = StoreIdentity {
                app_id: app_id.to_string(),
                table: table.to_string(),
                partition: p,
                partitions: 4,
            };
            let path = dir.join(app_id).join(table).join(p.to_string());
            let store = PartitionStore::open(&path, &identity).unwrap();
            store.offsets().unwrap().source.unwrap_or(0)
        })
        .sum()
}

/// Offsets on every changelog of `app_id` (high minus low watermark, summed over 4
/// partitions each): what a cold restore reads through.
pub fn changelog_offsets(env: &TestEnv, app_id: &str) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &env.kafka.brokers)
        .create()
        .unwrap();
    let mut n = 0;
    for t in cta_stream::transit::changelog_topics(app_id) {
        for p in 0..4 {
            let (lo, hi) = c.fetch_watermarks(&t, p, Duration::from_secs(10)).unwrap();
            n += hi - lo;
        }
    }
    n
}

/// How many source partitions the worker at `base` owns (0 while it does not answer).
pub async fn assigned_count(base: &str) -> usize {
    match reqwest::get(format!("{base}/api/status?scope=local")).await {
        Ok(r) => r
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v["worker"]["assigned"].as_array().map(|a| a.len()))
            .unwrap_or(0),
        Err(_) => 0,
    }
}

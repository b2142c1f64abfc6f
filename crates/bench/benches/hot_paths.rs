//! Criterion benches of the worker's and the web layer's hot paths (see BENCHMARKS.md):
//! Avro decode (the core's decoder and its apache-avro steps), table update and the store part
//! of a checkpoint, changelog encoding, the status page and the JSON API.
//!
//! `Table::new` is crate-private, so tables come from `App::table` (which only creates the
//! handle; nothing connects to Kafka) and partitions are opened through the public
//! `TableRuntime` trait.

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::Schema;
use askama::Template;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use cta_stream::platform::Platform;
use cta_stream::stream::codec::confluent::SubjectSchema;
use cta_stream::stream::codec::json;
use cta_stream::stream::table::store::StoreOffsets;
use cta_stream::stream::table::{TableKey, TableRuntime, TableValue};
use cta_stream::stream::{
    Agent, App, AppConfig, AvroDecoder, AvroEncoder, KafkaConfig, Record, RegistryConfig, Status,
    TableSpec, WindowedTable, Windows, FETCH_BATCH,
};
use cta_stream::transit::agents::{
    checked_station, TransitTables, TurnstileAgent, TurnstileCounts,
};
use cta_stream::transit::models::{
    schemas, topics, Arrival, Station, StationKey, TurnstileEntry, TurnstileStation,
    TurnstileSummary,
};
use cta_stream::transit::stations::Dataset;
use cta_stream::web::templates::StatusPage;
use cta_stream_bench::fixtures;
use std::time::{Duration, Instant};

fn record(partition: i32, offset: i64) -> Record<'static> {
    Record {
        topic: "bench",
        partition,
        offset,
        timestamp: Some(1_795_500_000_000),
        key: None,
        payload: None,
    }
}

fn avro(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let platform = rt
        .block_on(Platform::start("127.0.0.1:0".parse().expect("addr"), None))
        .expect("embedded platform");
    let registry = RegistryConfig::new(platform.registry_url.clone());
    let encoder = AvroEncoder::new(&registry).expect("encoder");
    let ts_schema =
        SubjectSchema::new(topics::TURNSTILE, false, schemas::TURNSTILE_VALUE).expect("schema");
    let ar_schema =
        SubjectSchema::new(topics::ARRIVALS, false, schemas::ARRIVAL_VALUE).expect("schema");
    let turnstile = rt
        .block_on(encoder.encode(&fixtures::sample_turnstile_entry(), &ts_schema))
        .expect("encode");
    let arrival = rt
        .block_on(encoder.encode(&fixtures::sample_arrival(), &ar_schema))
        .expect("encode");
    let decoder = {
        let _g = rt.enter();
        AvroDecoder::new(&registry).expect("decoder")
    };
    // Fill the decoder's schema cache (outside the runtime: a miss blocks on it).
    let _: TurnstileEntry = decoder.decode(Some(&turnstile)).expect("decode");
    let _: Arrival = decoder.decode(Some(&arrival)).expect("decode");

    let mut g = c.benchmark_group("avro_decode");
    g.bench_function("AvroDecoder::decode turnstile", |b| {
        b.iter(|| {
            let v: TurnstileEntry = decoder.decode(Some(black_box(&turnstile))).expect("decode");
            v
        })
    });
    g.bench_function(
        "AvroDecoder::decode turnstile, station only (what counting reads)",
        |b| {
            b.iter(|| {
                let v: TurnstileStation =
                    decoder.decode(Some(black_box(&turnstile))).expect("decode");
                v
            })
        },
    );
    g.bench_function("AvroDecoder::decode arrival", |b| {
        b.iter(|| {
            let v: Arrival = decoder.decode(Some(black_box(&arrival))).expect("decode");
            v
        })
    });
    // The steps inside AvroDecoder::decode, for the turnstile record.
    let schema = Schema::parse_str(schemas::TURNSTILE_VALUE).expect("schema");
    let body = &turnstile[5..];
    g.bench_function("step: GenericDatumReader build (once per schema id)", |b| {
        b.iter(|| {
            GenericDatumReader::builder(black_box(&schema))
                .build()
                .expect("reader")
        })
    });
    let reader = GenericDatumReader::builder(&schema)
        .build()
        .expect("reader");
    g.bench_function("step: read_value with a built reader", |b| {
        b.iter(|| {
            let mut r = black_box(body);
            reader.read_value(&mut r).expect("read")
        })
    });
    let value = reader.read_value(&mut &body[..]).expect("read");
    g.bench_function("step: from_value into TurnstileEntry", |b| {
        b.iter(|| apache_avro::from_value::<TurnstileEntry>(black_box(&value)).expect("from"))
    });
    g.finish();
    agent(c, &rt, &encoder, &ts_schema, &decoder);
    rt.block_on(platform.stop());
}

/// One turnstile record through the counting agent: decode, the summary count and the hourly
/// and recent windows (the poll loop's work per record, without librdkafka's).
fn agent(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    encoder: &AvroEncoder,
    schema: &SubjectSchema,
    decoder: &AvroDecoder,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let payloads: Vec<Vec<u8>> = fixtures::turnstile_rows(&Dataset::builtin())
        .iter()
        .map(|r| {
            let entry = TurnstileEntry {
                station_id: r.station_id,
                ..fixtures::sample_turnstile_entry()
            };
            rt.block_on(encoder.encode(&entry, schema)).expect("encode")
        })
        .collect();
    let mut agent = TurnstileAgent::new(tables(dir.path()), decoder.clone());
    let mut offset = 0i64;
    // One record per millisecond of event time (stream time moves with every record, as it
    // does in a run), in runs of 1,024 records per partition, as fetches bring them.
    let next = |offset: &mut i64| {
        *offset += 1;
        let payload = &payloads[(*offset as usize) % payloads.len()];
        Record {
            payload: Some(black_box(payload)),
            timestamp: Some(1_795_500_000_000 + *offset),
            ..record((*offset / 1024 % 4) as i32, *offset)
        }
    };
    let mut g = c.benchmark_group("agent");
    // The agent as it was before it gathered a batch's counts: each record's writes at once,
    // one lock and look-up per table write (on tables of their own).
    let other = tempfile::tempdir().expect("tempdir");
    let per_record = tables(other.path());
    let summary = per_record
        .turnstile
        .native()
        .expect("native counts")
        .clone();
    g.bench_function(
        "turnstile counts written per record (decode + summary + 2 windowed tables)",
        |b| {
            b.iter(|| {
                let r = next(&mut offset);
                let station_id = checked_station(decoder, &r).expect("decode");
                summary
                    .update(&r, station_id, |old| TurnstileSummary {
                        station_id,
                        count: old.map_or(0, |o| o.count) + 1,
                    })
                    .expect("summary");
                let inc = |c: Option<i64>| c.unwrap_or(0) + 1;
                let hourly = &per_record.turnstile_hourly;
                hourly.update(&r, station_id, inc).expect("hourly");
                let recent = &per_record.turnstile_recent;
                recent.update(&r, station_id, inc).expect("recent")
            })
        },
    );
    g.bench_function(
        "TurnstileAgent, batches of 1 (decode + summary + 2 windowed tables)",
        |b| {
            b.iter(|| {
                agent.process(&next(&mut offset)).expect("process");
                agent.end_batch().expect("end_batch")
            })
        },
    );
    // The worker's batches (`FETCH_BATCH` records).
    let batch = FETCH_BATCH as u64;
    g.throughput(Throughput::Elements(batch));
    g.bench_function(
        "TurnstileAgent, the worker's batches (decode + summary + 2 windowed tables)",
        |b| {
            b.iter(|| {
                for _ in 0..batch {
                    agent.process(&next(&mut offset)).expect("process");
                }
                agent.end_batch().expect("end_batch")
            })
        },
    );
    g.finish();
}

/// The worker's tables in a scratch dir, with all four partitions open.
fn tables(dir: &std::path::Path) -> TransitTables {
    let config = AppConfig::new("bench", KafkaConfig::new("127.0.0.1:9"), dir);
    let mut app = App::new(config);
    let spec = |name: &str| TableSpec {
        name: name.to_string(),
        source_topic: format!("bench-{name}"),
        changelog_topic: None,
    };
    let stations = app.table(spec("stations"));
    let weather = app.table(spec("weather"));
    let t = TransitTables {
        stations_everywhere: app.global_table(&stations),
        weather_everywhere: app.global_table(&weather),
        stations,
        trains: app.table(spec("train-positions")),
        turnstile: TurnstileCounts::Native(app.table(spec("turnstile-summary"))),
        turnstile_hourly: windowed(
            &mut app,
            "turnstile-hourly",
            Windows::tumbling(Duration::from_secs(3600)),
        ),
        turnstile_recent: windowed(
            &mut app,
            "turnstile-recent",
            Windows::hopping(Duration::from_secs(900), Duration::from_secs(300)),
        ),
        weather,
        arrival_checks: Default::default(),
    };
    for p in 0..4 {
        TableRuntime::open_partition(&t.stations, p, 4).expect("open");
        TableRuntime::open_partition(&t.trains, p, 4).expect("open");
        TableRuntime::open_partition(summary(&t), p, 4).expect("open");
        TableRuntime::open_partition(&t.weather, p, 4).expect("open");
    }
    t
}

/// A windowed table whose window and stream-time tables have all four partitions open.
fn windowed<K: TableKey, V: TableValue>(
    app: &mut App,
    name: &str,
    windows: Windows,
) -> WindowedTable<K, V> {
    let spec = |name: String| TableSpec {
        name,
        source_topic: "bench-turnstile".to_string(),
        changelog_topic: None,
    };
    let table = app.table(spec(name.to_string()));
    let time = app.table(spec(format!("{name}-time")));
    for p in 0..4 {
        TableRuntime::open_partition(&table, p, 4).expect("open");
        TableRuntime::open_partition(&time, p, 4).expect("open");
    }
    WindowedTable::new(table, time, windows)
}

/// The turnstile summary table of [`tables`].
fn summary(t: &TransitTables) -> &cta_stream::stream::Table<i32, TurnstileSummary> {
    t.turnstile
        .native()
        .expect("the bench tables count natively")
}

fn commit_all<R: TableRuntime>(t: &R, offset: i64) {
    for p in t.open_partitions() {
        let changes = t.pending(p);
        t.commit_partition(
            p,
            &changes,
            StoreOffsets {
                source: Some(offset),
                changelog: None,
                epoch: None,
            },
        )
        .expect("commit");
    }
}

/// Fills the tables with what a simulated day leaves in them (every station, a train at most
/// platforms, all turnstile counts), committed to RocksDB.
fn populate(t: &TransitTables, ds: &Dataset) {
    let status = fixtures::full_status(ds);
    let mut i = 0i64;
    for line in &status.lines {
        for s in &line.stations {
            let p = (s.station_id % 4).abs();
            let r = record(p, i);
            i += 1;
            let key = StationKey {
                line: line.line.as_str().to_string(),
                station_id: s.station_id,
            };
            let st = Station {
                station_id: s.station_id,
                station_name: s.station_name.clone(),
                order: s.order,
                line: key.line.clone(),
            };
            t.stations.put(&r, key, st).expect("put");
        }
        for tr in &line.trains {
            let r = record(1, i);
            i += 1;
            t.trains
                .put(&r, tr.train_id.clone(), tr.clone())
                .expect("put");
        }
    }
    for row in fixtures::turnstile_rows(ds) {
        let r = record((row.station_id % 4).abs(), i);
        i += 1;
        summary(t).put(&r, row.station_id, row).expect("put");
    }
    if let Some(w) = status.weather {
        t.weather
            .put(&record(0, i), "latest".to_string(), w)
            .expect("put");
    }
    commit_all(&t.stations, i + 1);
    commit_all(&t.trains, i + 1);
    commit_all(summary(t), i + 1);
    commit_all(&t.weather, i + 1);
}

fn table(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = tables(dir.path());
    let ids: Vec<i32> = fixtures::turnstile_rows(&Dataset::builtin())
        .iter()
        .map(|r| r.station_id)
        .filter(|id| id % 4 == 0)
        .collect();
    let mut g = c.benchmark_group("table");
    let mut offset = 1i64;
    g.bench_function("update: key in the write cache", |b| {
        b.iter(|| {
            offset += 1;
            let id = ids[(offset as usize) % ids.len()];
            summary(&t)
                .update(&record(0, offset), id, |old| TurnstileSummary {
                    station_id: id,
                    count: old.map_or(0, |o| o.count) + 1,
                })
                .expect("update")
        })
    });
    g.bench_function("update: first after a checkpoint (RocksDB read)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                commit_all(summary(&t), offset);
                offset += 1;
                let id = ids[(offset as usize) % ids.len()];
                let r = record(0, offset);
                let began = Instant::now();
                summary(&t)
                    .update(&r, id, |old| TurnstileSummary {
                        station_id: id,
                        count: old.map_or(0, |o| o.count) + 1,
                    })
                    .expect("update");
                total += began.elapsed();
            }
            total
        })
    });
    g.bench_function(
        format!(
            "checkpoint store part: pending + commit of {} keys",
            ids.len()
        ),
        |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    for &id in &ids {
                        offset += 1;
                        summary(&t)
                            .update(&record(0, offset), id, |old| TurnstileSummary {
                                station_id: id,
                                count: old.map_or(0, |o| o.count) + 1,
                            })
                            .expect("update");
                    }
                    let began = Instant::now();
                    let changes = TableRuntime::pending(summary(&t), 0);
                    TableRuntime::commit_partition(
                        summary(&t),
                        0,
                        &changes,
                        StoreOffsets {
                            source: Some(offset + 1),
                            changelog: Some(offset),
                            epoch: None,
                        },
                    )
                    .expect("commit");
                    total += began.elapsed();
                }
                total
            })
        },
    );
    g.finish();
}

fn changelog(c: &mut Criterion) {
    let rows = fixtures::turnstile_rows(&Dataset::builtin());
    let mut g = c.benchmark_group("changelog_encode");
    g.bench_function(
        format!("serde_json key+value of {} summaries", rows.len()),
        |b| {
            b.iter(|| {
                black_box(&rows)
                    .iter()
                    .map(|r| (json::encode(&r.station_id), Some(json::encode(r))))
                    .collect::<Vec<_>>()
            })
        },
    );
    g.finish();
}

fn web(c: &mut Criterion) {
    let ds = Dataset::builtin();
    let status = fixtures::full_status(&ds);
    let rows = fixtures::turnstile_rows(&ds);
    let dir = tempfile::tempdir().expect("tempdir");
    let t = tables(dir.path());
    populate(&t, &ds);
    let snapshot = Status::default().snapshot();

    let mut g = c.benchmark_group("web");
    g.bench_function(
        "page: StatusPage::from_status + render (all stations)",
        |b| {
            b.iter(|| {
                StatusPage::from_status(black_box(&status))
                    .render()
                    .expect("render")
            })
        },
    );
    g.bench_function("page: TransitTables::status (query behind GET /)", |b| {
        b.iter(|| t.status(snapshot.clone()).expect("status"))
    });
    g.bench_function("page: query + render (GET / without HTTP)", |b| {
        b.iter(|| {
            let s = t.status(snapshot.clone()).expect("status");
            StatusPage::from_status(&s).render().expect("render")
        })
    });
    g.bench_function(
        format!("api: serde_json::to_vec of {} rows", rows.len()),
        |b| b.iter(|| serde_json::to_vec(black_box(&rows)).expect("json")),
    );
    g.bench_function(
        "api: TransitTables::turnstile_all (query behind GET /api/turnstile)",
        |b| b.iter(|| t.turnstile_all().expect("query")),
    );
    g.bench_function(
        "api: query + serialize (GET /api/turnstile without HTTP)",
        |b| b.iter(|| serde_json::to_vec(&t.turnstile_all().expect("query")).expect("json")),
    );
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(40)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = hot_paths;
    config = config();
    targets = avro, table, changelog, web
}
criterion_main!(hot_paths);

//! Unit tests of the worker's agents on the stream core's test driver: records in, tables and
//! dead letters out, no broker. Behaviour is checked through the tables the page reads.
//!
//! Avro records need a Schema Registry: the embedded platform's in-process registry (an HTTP
//! server on loopback, no Kafka) registers the schemas, the real `AvroEncoder` frames the
//! records and the agents' real `AvroDecoder` reads them back.

use crate::platform::schema_registry::SchemaRegistry;
use crate::stream::codec::confluent::SubjectSchema;
use crate::stream::testing::{TestDriver, TestRecord, START_MS};
use crate::stream::{AvroEncoder, RegistryConfig};
use crate::transit::agents::{TransitTables, WEATHER_KEY};
use crate::transit::models::*;
use crate::transit::stations::ConnectStationRow;
use crate::transit::{build_worker_with, TurnstileKeys};
use serde::Serialize;

struct Fixture {
    rt: tokio::runtime::Runtime,
    encoder: AvroEncoder,
    driver: TestDriver,
    tables: TransitTables,
    _stop_registry: tokio::sync::oneshot::Sender<()>,
}

const MIN: i64 = 60_000;

fn fixture() -> Fixture {
    fixture_with(TurnstileKeys::Station, &[])
}

/// The worker with turnstile records keyed as `keys` says, topics with these partition counts.
fn fixture_with(keys: TurnstileKeys, partitions: &[(&str, i32)]) -> Fixture {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let registry = SchemaRegistry::open(None).unwrap();
    let serving = registry.serve("127.0.0.1:0".parse().unwrap(), async move {
        let _ = stopped.await;
    });
    let (addr, _) = rt.block_on(serving).unwrap();
    let registry = RegistryConfig::new(format!("http://{addr}"));
    // The agents' decoder keeps the runtime's handle for registry look-ups.
    let (app, tables) = {
        let _in_runtime = rt.enter();
        let config = TestDriver::config("cta-agents");
        build_worker_with(config, &registry, None, keys).unwrap()
    };
    Fixture {
        encoder: AvroEncoder::new(&registry).unwrap(),
        driver: TestDriver::with_partitions(app, partitions).unwrap(),
        tables,
        rt,
        _stop_registry: stop,
    }
}

impl Fixture {
    fn avro<T: Serialize>(&self, topic: &str, avsc: &str, value: &T) -> Vec<u8> {
        let schema = SubjectSchema::new(topic, false, avsc).unwrap();
        self.rt
            .block_on(self.encoder.encode(value, &schema))
            .unwrap()
    }

    fn turnstile(&mut self, station_id: i32, at_ms: i64) {
        let entry = TurnstileEntry {
            station_id,
            station_name: "Clark/Lake".into(),
            line: "blue".into(),
        };
        let value = self.avro(topics::TURNSTILE, schemas::TURNSTILE_VALUE, &entry);
        let key = station_id.to_string();
        let record = TestRecord::new(topics::TURNSTILE)
            .key(key)
            .value(value)
            .at(at_ms);
        self.driver.pipe(record).unwrap();
    }

    fn arrival(&mut self, train: &str, station_id: i32, direction: &str, at_ms: i64) {
        let arrival = Arrival {
            station_id,
            train_id: train.into(),
            direction: direction.into(),
            line: "red".into(),
            train_status: train_status::IN_SERVICE.into(),
            prev_station_id: None,
            prev_direction: None,
        };
        let value = self.avro(topics::ARRIVALS, schemas::ARRIVAL_VALUE, &arrival);
        let record = TestRecord::new(topics::ARRIVALS).value(value).at(at_ms);
        self.driver.pipe(record).unwrap();
    }

    fn dead_letter_errors(&mut self, topic: &str) -> Vec<String> {
        self.driver.checkpoint().unwrap();
        let names = crate::stream::names::HEADER_DLQ_ERROR;
        self.driver
            .dead_letters(topic)
            .iter()
            .map(|o| o.header(names).unwrap_or_default().to_string())
            .collect()
    }
}

fn station_row(station_id: i32, name: &str, lines: [bool; 3]) -> ConnectStationRow {
    ConnectStationRow {
        stop_id: 30_000 + station_id % 1000,
        direction_id: "N".into(),
        stop_name: format!("{name} (Northbound)"),
        station_name: name.into(),
        station_descriptive_name: format!("{name} (Red Line)"),
        station_id,
        order: 3,
        red: lines[0],
        blue: lines[1],
        green: lines[2],
    }
}

#[test]
fn station_rows_become_stations_of_our_lines_only() {
    let mut f = fixture();
    let rows = [
        station_row(40_380, "Clark/Lake", [false, true, false]),
        station_row(41_450, "Chicago", [true, false, false]),
        // A Brown Line stop: none of the three lines, so not kept.
        station_row(41_500, "Montrose", [false, false, false]),
    ];
    for row in &rows {
        let record = TestRecord::new(topics::STATIONS).json(row);
        f.driver.pipe(record).unwrap();
    }
    let stations: Vec<(StationKey, Station)> = f
        .tables
        .stations
        .items()
        .unwrap()
        .into_iter()
        .map(|(_, k, v)| (k, v))
        .collect();
    let station = |line: &str, id: i32, name: &str| {
        let key = StationKey {
            line: line.into(),
            station_id: id,
        };
        let value = Station {
            station_id: id,
            station_name: name.into(),
            order: 3,
            line: line.into(),
        };
        (key, value)
    };
    let want = vec![
        station("blue", 40_380, "Clark/Lake"),
        station("red", 41_450, "Chicago"),
    ];
    assert_eq!(stations, want);
}

#[test]
fn arrivals_keep_each_trains_latest_sighting() {
    let mut f = fixture();
    f.arrival("T1", 41_450, "a", START_MS);
    f.arrival("T2", 41_450, "b", START_MS + MIN);
    f.arrival("T1", 40_330, "a", START_MS + 2 * MIN);
    let at = |f: &Fixture, train: &str| {
        let seen = f.tables.trains.get_all(&train.to_string()).unwrap();
        seen.into_iter()
            .map(|s| (s.station_id, s.direction, s.timestamp))
            .collect::<Vec<_>>()
    };
    // Keyed by train: T1's second arrival replaces its first, nothing stays behind at 41450 a.
    assert_eq!(
        at(&f, "T1"),
        vec![(40_330, "a".to_string(), START_MS + 2 * MIN)]
    );
    assert_eq!(
        at(&f, "T2"),
        vec![(41_450, "b".to_string(), START_MS + MIN)]
    );
    assert!(at(&f, "T3").is_empty());
    let checks = &f.tables.arrival_checks;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    // Three arrivals without prev_*; two of them the first sighting of their train.
    assert_eq!(load(&checks.without_previous), 3);
    assert_eq!(load(&checks.first_seen), 2);
}

#[test]
fn turnstile_entries_count_per_station_hour_and_recent_window() {
    let mut f = fixture();
    let clark = 40_380;
    for minute in [10, 50, 61, 62, 70] {
        f.turnstile(clark, START_MS + minute * MIN);
    }
    f.turnstile(41_450, START_MS + 70 * MIN);
    // Minute 40 after stream time 70: the first hour closed at 60 + 5 minutes' grace.
    f.turnstile(clark, START_MS + 40 * MIN);
    let counts = f.tables.turnstile.native().unwrap();
    let total = |id: i32| {
        counts
            .get_all(&id)
            .unwrap()
            .iter()
            .map(|s| s.count)
            .sum::<i64>()
    };
    assert_eq!(
        (total(clark), total(41_450)),
        (6, 1),
        "the total counts late entries too"
    );
    let hourly = &f.tables.turnstile_hourly;
    assert_eq!(hourly.get(&clark, START_MS).unwrap(), Some(2));
    assert_eq!(hourly.get(&clark, START_MS + 60 * MIN).unwrap(), Some(3));
    assert!(hourly.late_records() >= 1);
    // Recent: 15-minute windows every 5; windows ending a minute (grace) before stream time
    // go. Left for minute 70: starts 55 {61, 62}, 60 {61, 62, 70}, 65 {70}, 70 {70}.
    let recent = &f.tables.turnstile_recent;
    let left: Vec<(i64, i64)> = recent
        .items()
        .unwrap()
        .into_iter()
        .filter(|(k, _)| k.key == clark)
        .map(|(k, n)| ((k.start - START_MS) / MIN, n))
        .collect();
    assert_eq!(left, vec![(55, 2), (60, 3), (65, 1), (70, 1)]);
}

#[test]
fn weather_keeps_the_latest_reading() {
    let mut f = fixture();
    let reading = |t: f32, s: WeatherStatus| Weather {
        temperature: t,
        status: s,
    };
    for (i, w) in [
        reading(31.5, WeatherStatus::Windy),
        reading(33.0, WeatherStatus::Sunny),
    ]
    .iter()
    .enumerate()
    {
        let value = f.avro(topics::WEATHER, schemas::WEATHER_VALUE, w);
        let at = START_MS + i as i64 * MIN;
        f.driver
            .pipe(TestRecord::new(topics::WEATHER).value(value).at(at))
            .unwrap();
    }
    let latest = f.tables.weather.get_all(&WEATHER_KEY.to_string()).unwrap();
    let want = WeatherReading {
        temperature: 33.0,
        status: WeatherStatus::Sunny,
        timestamp: START_MS + MIN,
    };
    assert_eq!(latest, vec![want]);
}

#[test]
fn bad_records_go_to_dead_letters_and_change_no_table() {
    let mut f = fixture();
    f.turnstile(123, START_MS);
    let hot = reading_value(&f, 500.0);
    f.driver
        .pipe(TestRecord::new(topics::WEATHER).value(hot))
        .unwrap();
    f.driver
        .pipe(TestRecord::new(topics::WEATHER).value(b"not avro"))
        .unwrap();
    f.arrival("T9", 41_450, "x", START_MS);
    assert_eq!(f.driver.dead_lettered(), 4);
    let turnstile = f.dead_letter_errors(topics::TURNSTILE);
    assert!(turnstile[0].contains("station_id 123"), "{turnstile:?}");
    let weather = f.dead_letter_errors(topics::WEATHER);
    assert!(weather[0].contains("temperature 500"), "{weather:?}");
    assert!(weather[1].contains("magic"), "{weather:?}");
    let arrivals = f.dead_letter_errors(topics::ARRIVALS);
    assert!(arrivals[0].contains("direction 'x'"), "{arrivals:?}");
    assert!(f.tables.weather.items().unwrap().is_empty());
    assert!(f.tables.trains.items().unwrap().is_empty());
    assert!(f
        .tables
        .turnstile
        .native()
        .unwrap()
        .items()
        .unwrap()
        .is_empty());
}

fn reading_value(f: &Fixture, temperature: f32) -> Vec<u8> {
    let w = Weather {
        temperature,
        status: WeatherStatus::Cloudy,
    };
    f.avro(topics::WEATHER, schemas::WEATHER_VALUE, &w)
}

#[test]
fn a_crash_between_checkpoints_neither_loses_nor_double_counts_entries() {
    let mut f = fixture();
    let clark = 40_380;
    for minute in 0..4 {
        f.turnstile(clark, START_MS + minute * MIN);
    }
    f.driver.checkpoint().unwrap();
    for minute in 4..7 {
        f.turnstile(clark, START_MS + minute * MIN);
    }
    f.driver.crash().unwrap();
    let counts = f.tables.turnstile.native().unwrap();
    let total: i64 = counts
        .get_all(&clark)
        .unwrap()
        .iter()
        .map(|s| s.count)
        .sum();
    assert_eq!(total, 7);
    assert_eq!(
        f.tables.turnstile_hourly.get(&clark, START_MS).unwrap(),
        Some(7)
    );
    f.driver.checkpoint().unwrap();
    let summary = f.driver.produced(topics::TURNSTILE_SUMMARY);
    let last = summary
        .last()
        .unwrap()
        .json_value::<TurnstileSummary>()
        .unwrap();
    assert_eq!(last.count, 7);
}

/// A turnstile value as the original CTA project's producers register it: `station_id` is a
/// string there.
#[derive(Serialize)]
struct OriginalEntry {
    station_id: String,
    station_name: String,
    line: String,
}

/// That value schema, written out here (namespace and name as there, three string fields).
const ORIGINAL_VALUE_SCHEMA: &str = r#"{"type":"record","name":"turnstile.value","namespace":"com.udacity",
  "fields":[{"name":"station_id","type":"string"},{"name":"station_name","type":"string"},{"name":"line","type":"string"}]}"#;

#[test]
fn entries_keyed_by_timestamp_as_the_original_producers_write_them_count_exactly_by_station() {
    use crate::stream::table::route::partition_for;
    use std::collections::{BTreeMap, BTreeSet};
    let mut f = fixture_with(TurnstileKeys::Other, &[(topics::TURNSTILE, 5)]);
    let key_schema = SubjectSchema::new(topics::TURNSTILE, true, schemas::ARRIVAL_KEY).unwrap();
    let stations = [40380, 40010, 41420];
    let mut want: BTreeMap<i32, i64> = BTreeMap::new();
    let mut spread: BTreeMap<i32, BTreeSet<i32>> = BTreeMap::new();
    let original = |id: &str| OriginalEntry {
        station_id: id.into(),
        station_name: "Clark/Lake".into(),
        line: "blue".into(),
    };
    for i in 0..150_i64 {
        let id = stations[(i * i % 7) as usize % 3];
        let value = f.avro(
            topics::TURNSTILE,
            ORIGINAL_VALUE_SCHEMA,
            &original(&id.to_string()),
        );
        let ts = START_MS + i * 1_000;
        let key =
            f.rt.block_on(
                f.encoder
                    .encode(&TimestampKey { timestamp: ts }, &key_schema),
            )
            .unwrap();
        spread.entry(id).or_default().insert(partition_for(&key, 5));
        let record = TestRecord::new(topics::TURNSTILE)
            .key(key)
            .value(value)
            .at(ts);
        f.driver.pipe(record).unwrap();
        *want.entry(id).or_default() += 1;
    }
    // A value whose station id is no number goes to the dead letters with the reason.
    let bad = f.avro(topics::TURNSTILE, ORIGINAL_VALUE_SCHEMA, &original("Clark"));
    f.driver
        .pipe(TestRecord::new(topics::TURNSTILE).key("k").value(bad))
        .unwrap();
    assert!(spread.values().all(|ps| ps.len() > 1), "{spread:?}");
    let got: BTreeMap<i32, i64> = f
        .tables
        .turnstile_all()
        .unwrap()
        .into_iter()
        .map(|s| (s.station_id, s.count))
        .collect();
    assert_eq!(got, want);
    // Each station's count is whole in the one partition its id routes to.
    let table = f.tables.turnstile.native().unwrap();
    for (id, n) in &want {
        let copies = table.entries_of(id).unwrap();
        let p = partition_for(id.to_string().as_bytes(), 5);
        assert_eq!(copies.len(), 1, "{id}: {copies:?}");
        assert_eq!((copies[0].0, copies[0].1.count), (p, *n));
    }
    let hourly: i64 = f
        .tables
        .turnstile_windows(crate::transit::queries::Window::Hourly, None)
        .unwrap()
        .iter()
        .map(|w| w.count)
        .sum();
    assert_eq!(hourly, want.values().sum::<i64>());
    let errors = f.dead_letter_errors(topics::TURNSTILE);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains("'Clark' is not a station id"),
        "{errors:?}"
    );
}

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

mod trains;
mod turnstile;
mod weather;

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

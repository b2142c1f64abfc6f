//! The worker's agents: station rows → stations table; arrivals, joined with the stations
//! for the station's name and order → each train's latest position (the page places trains
//! from it: a train stands at the platform of its latest arrival, so the platform it left is
//! free again); turnstile entries → per-station count
//! (ksqlDB's TURNSTILE_SUMMARY); weather → latest reading.

use crate::stream::codec::json;
use crate::stream::{
    Agent, At, AvroDecoder, DecodeError, GlobalTable, JoinTable, Record, Result, Table, Tick,
    WindowedTable,
};
use crate::transit::lines::Line;
use crate::transit::models::*;
use crate::transit::source::TurnstileSource;
use crate::transit::stations::ConnectStationRow;
use std::sync::Arc;

/// The tables the agents keep, shared with the query side.
#[derive(Clone)]
pub struct TransitTables {
    pub stations: Table<StationKey, Station>,
    /// Every worker's copy of the whole stations table ([`GlobalTable`]): the page lists every
    /// station whichever partitions this worker owns.
    pub stations_everywhere: GlobalTable<StationKey, Station>,
    /// Each train's latest arrival, by train id. Keyed by train (not by platform), so a train
    /// leaving a platform and arriving at the next cannot leave a stale occupant behind, even
    /// when the two arrivals sit in partitions of different workers: readers take the latest
    /// sighting of each train by event time and place it.
    pub trains: Table<String, TrainSighting>,
    pub turnstile: TurnstileCounts,
    /// Entries per station per hour (tumbling, by event time).
    pub turnstile_hourly: WindowedTable<i32, i64>,
    /// Entries per station in the last 15 minutes, every 5 (hopping).
    pub turnstile_recent: WindowedTable<i32, i64>,
    pub weather: Table<String, WeatherReading>,
    /// Every worker's copy of the whole weather table.
    pub weather_everywhere: GlobalTable<String, WeatherReading>,
    /// Arrivals whose previous platform could not be confirmed (see [`ArrivalsAgent`]).
    pub arrival_checks: Arc<ArrivalChecks>,
}

/// Counts of arrivals that place their train without confirming where it came from: the
/// train is placed all the same (its latest arrival is where it stands) and nothing else is
/// cleared; these counters say how often the input lacked what the original project's line
/// model reads (`prev_station_id` / `prev_direction`).
#[derive(Debug, Default)]
pub struct ArrivalChecks {
    /// No previous platform given (a train's first arrival, or a producer that omits it).
    pub without_previous: std::sync::atomic::AtomicU64,
    /// A train this worker has no earlier sighting of, in the partitions it holds.
    pub first_seen: std::sync::atomic::AtomicU64,
    /// An arrival at a station the stations table had no row for (yet) when it was joined.
    pub station_unknown: std::sync::atomic::AtomicU64,
}

/// Where the per-station turnstile counts (TURNSTILE_SUMMARY) come from.
#[derive(Clone)]
pub enum TurnstileCounts {
    /// Counted by this worker's [`TurnstileAgent`] into a table with changelog TURNSTILE_SUMMARY.
    Native(Table<i32, TurnstileSummary>),
    /// Counted elsewhere (ksqlDB runs `ksql/turnstile.sql`) and read through this source.
    External(Arc<dyn TurnstileSource>),
}

impl TurnstileCounts {
    /// The worker's own table, unless an outside source keeps the counts.
    pub fn native(&self) -> Option<&Table<i32, TurnstileSummary>> {
        match self {
            TurnstileCounts::Native(table) => Some(table),
            TurnstileCounts::External(_) => None,
        }
    }
}

/// CTA map station ids ("4xxxx"); anything else is out of range.
const STATION_IDS: std::ops::Range<i32> = 40_000..50_000;

/// Key of the single weather entry.
pub const WEATHER_KEY: &str = "latest";

fn event_time(record: &Record<'_>) -> i64 {
    record.timestamp.unwrap_or_else(crate::stream::now_ms)
}

pub struct StationsAgent {
    pub tables: TransitTables,
}

impl Agent for StationsAgent {
    fn name(&self) -> &str {
        "stations"
    }
    fn topic(&self) -> &str {
        topics::STATIONS
    }
    fn process(&mut self, record: &Record<'_>) -> Result<()> {
        let row: ConnectStationRow = json::decode(record.payload)?;
        let line = match (row.red, row.blue, row.green) {
            (true, _, _) => Line::Red,
            (_, true, _) => Line::Blue,
            (_, _, true) => Line::Green,
            _ => return Ok(()), // a stop of another line: not ours
        };
        let station = Station {
            station_id: row.station_id,
            station_name: row.station_name,
            order: row.order,
            line: line.as_str().to_string(),
        };
        let key = StationKey {
            line: station.line.clone(),
            station_id: station.station_id,
        };
        self.tables.stations.put(record, key, station)
    }
}

pub struct ArrivalsAgent {
    pub tables: TransitTables,
    pub decoder: AvroDecoder,
}

impl Agent for ArrivalsAgent {
    fn name(&self) -> &str {
        "arrivals"
    }
    fn topic(&self) -> &str {
        topics::ARRIVALS
    }
    fn process(&mut self, record: &Record<'_>) -> Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        let a: Arrival = self.decoder.decode(record.payload)?;
        for d in std::iter::once(&a.direction).chain(a.prev_direction.as_ref()) {
            if d != "a" && d != "b" {
                return Err(DecodeError::OutOfRange(format!("direction '{d}'")).into());
            }
        }
        let checks = &self.tables.arrival_checks;
        if a.prev_station_id.is_none() || a.prev_direction.is_none() {
            checks.without_previous.fetch_add(1, Relaxed);
            tracing::debug!(train = %a.train_id, "arrival without a previous platform");
        }
        if self.tables.trains.get_all(&a.train_id)?.is_empty() {
            checks.first_seen.fetch_add(1, Relaxed);
            tracing::debug!(train = %a.train_id, "first arrival of a train seen here");
        }
        // Joined with the stations (this worker's copy of the whole table): the station's
        // name and stop order travel with the sighting; None while the row is not there yet.
        let key = StationKey {
            line: a.line.clone(),
            station_id: a.station_id,
        };
        let station = self.tables.stations_everywhere.lookup(record, &key)?;
        if station.is_none() {
            checks.station_unknown.fetch_add(1, Relaxed);
        }
        let sighting = TrainSighting {
            station_name: station.as_ref().map(|s| s.station_name.clone()),
            order: station.map(|s| s.order),
            train_id: a.train_id.clone(),
            line: a.line,
            station_id: a.station_id,
            direction: a.direction,
            train_status: a.train_status,
            timestamp: event_time(record),
            not_reporting: false,
        };
        self.tables.trains.put(record, a.train_id, sighting)
    }
}

/// How long (event time) a train may go without an arrival before it is shown as not
/// reporting.
pub const NOT_REPORTING_AFTER_MS: i64 = 15 * 60_000;

/// The stream-time timer on arrivals (run per partition as simulated time passes): marks each
/// train sighting of the partition that is [`NOT_REPORTING_AFTER_MS`] or more behind the
/// arrivals' stream time as not reporting. A train's next arrival writes a fresh sighting
/// without the mark. Marking twice changes nothing, so a replay after a restart is harmless.
pub fn mark_not_reporting(trains: &Table<String, TrainSighting>, tick: &Tick<'_>) -> Result<()> {
    for (id, s) in trains.partition_items(tick.partition)? {
        if !s.not_reporting && tick.time_ms - s.timestamp >= NOT_REPORTING_AFTER_MS {
            let marked = TrainSighting {
                not_reporting: true,
                ..s
            };
            trains.put(tick.record(), id, marked)?;
        }
    }
    Ok(())
}

/// The station of a turnstile entry whose station id is a CTA map id (anything else is a data
/// error).
pub fn checked_station(decoder: &AvroDecoder, record: &Record<'_>) -> Result<i32> {
    let e: TurnstileStation = decoder.decode(record.payload)?;
    if !STATION_IDS.contains(&e.station_id) {
        return Err(DecodeError::OutOfRange(format!(
            "station_id {} is not a CTA map id (4xxxx)",
            e.station_id
        ))
        .into());
    }
    Ok(e.station_id)
}

/// Counts entries per station (TURNSTILE_SUMMARY, hourly and recent windows), from the turnstile
/// topic, or from the repartition topic its records were re-keyed into by station. Each record
/// is decoded and checked as it comes (a bad one is dead-lettered on its own); the counts of a
/// batch are written together at its end, one lock per table instead of one per write.
pub struct TurnstileAgent {
    tables: TransitTables,
    decoder: AvroDecoder,
    /// This batch's entries: where each record sits, and its station.
    entries: Vec<(At, i32)>,
}

impl TurnstileAgent {
    pub fn new(tables: TransitTables, decoder: AvroDecoder) -> Self {
        Self {
            tables,
            decoder,
            entries: Vec::new(),
        }
    }

    fn count(&self) -> Result<()> {
        let entries = &self.entries;
        // With ksqlDB keeping TURNSTILE_SUMMARY, only the windows are counted here.
        if let TurnstileCounts::Native(summary) = &self.tables.turnstile {
            summary.update_batch(entries, |&station_id, old| TurnstileSummary {
                station_id,
                count: old.map_or(0, |o| o.count) + 1,
            })?;
        }
        let inc = |_: &i32, c: Option<i64>| c.unwrap_or(0) + 1;
        self.tables.turnstile_hourly.update_batch(entries, inc)?;
        self.tables.turnstile_recent.update_batch(entries, inc)
    }
}

impl Agent for TurnstileAgent {
    fn name(&self) -> &str {
        "turnstile"
    }
    fn topic(&self) -> &str {
        topics::TURNSTILE
    }
    fn process(&mut self, record: &Record<'_>) -> Result<()> {
        let station_id = checked_station(&self.decoder, record)?;
        self.entries.push((record.at(), station_id));
        Ok(())
    }
    fn end_batch(&mut self) -> Result<()> {
        let counted = self.count();
        self.entries.clear();
        counted
    }
}

pub struct WeatherAgent {
    pub tables: TransitTables,
    pub decoder: AvroDecoder,
}

impl Agent for WeatherAgent {
    fn name(&self) -> &str {
        "weather"
    }
    fn topic(&self) -> &str {
        topics::WEATHER
    }
    fn process(&mut self, record: &Record<'_>) -> Result<()> {
        let w: Weather = self.decoder.decode(record.payload)?;
        if !w.temperature.is_finite() || !(-80.0..=130.0).contains(&w.temperature) {
            return Err(DecodeError::OutOfRange(format!("temperature {}", w.temperature)).into());
        }
        let reading = WeatherReading {
            temperature: w.temperature,
            status: w.status,
            timestamp: event_time(record),
        };
        self.tables
            .weather
            .put(record, WEATHER_KEY.to_string(), reading)
    }
}

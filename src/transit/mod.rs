//! The CTA domain: stations and lines, the records on the wire, the simulation that produces
//! them, and the worker that turns them into tables. Uses [`crate::stream`]; knows nothing of
//! the web layer or the embedded platform.

pub mod agents;
#[cfg(test)]
mod agents_tests;
pub mod lines;
pub mod models;
pub mod queries;
pub mod simulation;
pub mod source;
pub mod stations;

use crate::stream::codec::json;
use crate::stream::emit::ClosedWindow;
use crate::stream::{
    names, App, AppConfig, AvroDecoder, RegistryConfig, Repartition, Result, Schedule, TableSpec,
    Windows,
};
use agents::*;
use models::topics;
use models::WindowCount;
use std::time::Duration;

/// Table names (each table's store folder and default changelog `{app_id}-{name}-changelog`).
pub mod tables {
    pub const STATIONS: &str = "stations";
    pub const TRAINS: &str = "train-positions";
    pub const TURNSTILE: &str = "turnstile-summary";
    pub const TURNSTILE_HOURLY: &str = "turnstile-hourly";
    pub const TURNSTILE_RECENT: &str = "turnstile-recent";
    pub const WEATHER: &str = "weather";
}

/// (table, source topic, changelog override) of every plain table.
const TABLES: [(&str, &str, Option<&str>); 4] = [
    (
        tables::STATIONS,
        topics::STATIONS,
        Some(topics::STATIONS_TABLE),
    ),
    (tables::TRAINS, topics::ARRIVALS, None),
    (
        tables::TURNSTILE,
        topics::TURNSTILE,
        Some(topics::TURNSTILE_SUMMARY),
    ),
    (tables::WEATHER, topics::WEATHER, None),
];

/// Windowed tables: (table, windows).
fn windowed() -> [(&'static str, Windows); 2] {
    let min = |m: u64| Duration::from_secs(m * 60);
    [
        (
            tables::TURNSTILE_HOURLY,
            Windows::tumbling(min(60))
                .grace(min(5))
                .retention(min(24 * 60)),
        ),
        (
            tables::TURNSTILE_RECENT,
            Windows::hopping(min(15), min(5)).grace(min(1)),
        ),
    ]
}

fn spec(name: &str) -> TableSpec {
    let (_, source, changelog) =
        TABLES
            .iter()
            .find(|t| t.0 == name)
            .copied()
            .unwrap_or((name, topics::TURNSTILE, None));
    TableSpec {
        name: name.to_string(),
        source_topic: source.to_string(),
        changelog_topic: changelog.map(str::to_string),
    }
}

/// How the turnstile topic's records are keyed, which decides where entries are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TurnstileKeys {
    /// By station (this project's simulation, Avro `{station_id}`): a station's entries are in
    /// one partition and are counted where they are read.
    #[default]
    Station,
    /// By anything else (the original project's producers, Avro `{timestamp}`): entries are
    /// re-keyed by station through the repartition topic
    /// `{app_id}-turnstile-by-station-repartition` and counted from there.
    Other,
}

/// Name of the turnstile re-keying (its repartition topic and seen-offsets table).
pub const TURNSTILE_BY_STATION: &str = "turnstile-by-station";

/// The internal topics [`TurnstileKeys::Other`] adds: the repartition topic and the changelog
/// of its seen-offsets table (a host creates them with the turnstile topic's partition count).
pub fn repartition_topics(app_id: &str) -> Vec<String> {
    vec![
        names::repartition_topic(app_id, TURNSTILE_BY_STATION),
        names::changelog_topic(app_id, &names::repartition_seen_table(TURNSTILE_BY_STATION)),
    ]
}

/// Changelog topics of the worker's tables (so a host can create them with the source topics'
/// partition count).
pub fn changelog_topics(app_id: &str) -> Vec<String> {
    let named = |n: &str| crate::stream::names::changelog_topic(app_id, n);
    let mut out: Vec<String> = TABLES
        .iter()
        .map(|(name, _, changelog)| changelog.map(str::to_string).unwrap_or_else(|| named(name)))
        .collect();
    for (name, _) in windowed() {
        out.push(named(name));
        out.push(named(&crate::stream::names::stream_time_table(name)));
    }
    out
}

/// Topics the worker writes besides its changelogs (closed hourly windows), so a host can
/// create them.
pub fn output_topics() -> Vec<String> {
    vec![topics::TURNSTILE_HOURLY.to_string()]
}

/// Every topic the worker writes besides the source topics (changelogs, repartition topics,
/// outputs), for a host that creates them with the source topics' partition count.
pub fn worker_topics(app_id: &str) -> Vec<String> {
    let mut out = changelog_topics(app_id);
    out.extend(repartition_topics(app_id));
    out.extend(output_topics());
    out
}

/// Declares the CTA tables and agents on a new app. Returns the app and the table handles the
/// web layer reads.
pub fn build_worker(config: AppConfig, registry: &RegistryConfig) -> Result<(App, TransitTables)> {
    build_worker_with(config, registry, None, TurnstileKeys::Station)
}

/// [`build_worker`], with the turnstile counts read from `external_turnstile` (ksqlDB) when
/// given: then this worker does not write TURNSTILE_SUMMARY (it still counts the windows).
/// With [`TurnstileKeys::Other`] the turnstile tables are fed by the repartition topic.
pub fn build_worker_with(
    config: AppConfig,
    registry: &RegistryConfig,
    external_turnstile: Option<std::sync::Arc<dyn queries::TurnstileSource>>,
    keys: TurnstileKeys,
) -> Result<(App, TransitTables)> {
    let mut app = App::new(config);
    let decoder = AvroDecoder::new(registry)?;
    let by_station = rekey_turnstile(&mut app, &decoder, keys);
    let tables = declare_tables(&mut app, by_station.as_ref(), external_turnstile);
    declare_agents(&mut app, &tables, decoder, by_station.as_ref());
    emit_closed_hours(&mut app, &tables)?;
    // Every simulated minute of arrivals: trains not seen for 15 are marked not reporting.
    let trains = tables.trains.clone();
    app.timer(
        topics::ARRIVALS,
        Schedule::StreamTime(Duration::from_secs(60)),
        move |tick| mark_not_reporting(&trains, tick),
    );
    Ok((app, tables))
}

/// With [`TurnstileKeys::Other`], the re-keying of the turnstile topic by station.
fn rekey_turnstile(
    app: &mut App,
    decoder: &AvroDecoder,
    keys: TurnstileKeys,
) -> Option<Repartition> {
    match keys {
        TurnstileKeys::Station => None,
        TurnstileKeys::Other => {
            let decoder = decoder.clone();
            Some(
                app.group_by(TURNSTILE_BY_STATION, topics::TURNSTILE, move |r| {
                    // The key the tables route by: the station id's JSON (its digits).
                    let id = checked_station(&decoder, r)?;
                    Ok(Some(id.to_string().into_bytes()))
                }),
            )
        }
    }
}

/// Declares the worker's tables; the turnstile ones read `by_station`'s topic when given, and
/// the turnstile counts come from `external_turnstile` when given.
fn declare_tables(
    app: &mut App,
    by_station: Option<&Repartition>,
    external_turnstile: Option<std::sync::Arc<dyn queries::TurnstileSource>>,
) -> TransitTables {
    // The turnstile tables follow the topic their agent reads.
    let spec = |name: &str| {
        let mut s = spec(name);
        if let Some(r) = by_station {
            if s.source_topic == topics::TURNSTILE {
                s.source_topic = r.topic().to_string();
            }
        }
        s
    };
    let [(hourly_name, hourly_windows), (recent_name, recent_windows)] = windowed();
    // Keyed by station and by train, fed by rows and arrivals keyed otherwise: any
    // partition may hold a key (see `Table::scattered`).
    let stations = app.table(spec(tables::STATIONS)).scattered();
    let weather = app.table(spec(tables::WEATHER)).scattered();
    TransitTables {
        stations_everywhere: app.global_table(&stations),
        weather_everywhere: app.global_table(&weather),
        stations,
        trains: app.table(spec(tables::TRAINS)).scattered(),
        turnstile: match external_turnstile {
            Some(source) => TurnstileCounts::External(source),
            // Keyed by station id; the records' keys are Avro-framed (registry schema id
            // inside), not bytes the table can rebuild from the id alone.
            None => TurnstileCounts::Native(app.table(spec(tables::TURNSTILE)).scattered()),
        },
        turnstile_hourly: app.windowed_table(spec(hourly_name), hourly_windows),
        turnstile_recent: app.windowed_table(spec(recent_name), recent_windows),
        weather,
        arrival_checks: Default::default(),
    }
}

/// Declares the four agents; the turnstile one reads through `by_station` when given.
fn declare_agents(
    app: &mut App,
    tables: &TransitTables,
    decoder: AvroDecoder,
    by_station: Option<&Repartition>,
) {
    app.agent(StationsAgent {
        tables: tables.clone(),
    });
    app.agent(ArrivalsAgent {
        tables: tables.clone(),
        decoder: decoder.clone(),
    });
    let turnstile = TurnstileAgent::new(tables.clone(), decoder.clone());
    match by_station {
        Some(r) => app.agent(r.agent(turnstile)),
        None => app.agent(turnstile),
    }
    app.agent(WeatherAgent {
        tables: tables.clone(),
        decoder,
    });
}

/// Each hourly window once it has closed (its 5 minutes of grace passed), to
/// TURNSTILE_HOURLY.
fn emit_closed_hours(app: &mut App, tables: &TransitTables) -> Result<()> {
    app.emit_final(
        &tables.turnstile_hourly,
        topics::TURNSTILE_HOURLY,
        |w: &ClosedWindow<'_, i32, i64>| {
            let row = WindowCount {
                station_id: *w.key,
                window_start: w.start,
                window_end: w.end,
                count: *w.value,
            };
            (json::encode(w.key), json::encode(&row))
        },
    )
}

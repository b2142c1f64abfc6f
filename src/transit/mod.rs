//! The CTA domain: stations and lines, the records on the wire, the simulation that produces
//! them, and the worker that turns them into tables. Uses [`crate::stream`]; knows nothing of
//! the web layer or the embedded platform.

pub mod agents;
pub mod lines;
pub mod models;
pub mod queries;
pub mod simulation;
pub mod stations;

use crate::stream::{App, AppConfig, AvroDecoder, RegistryConfig, Result, TableSpec};
use agents::*;
use models::topics;

/// Changelog topics of the worker's tables (so a host can create them with the source topics'
/// partition count).
pub fn changelog_topics(app_id: &str) -> Vec<String> {
    vec![
        topics::STATIONS_TABLE.to_string(),
        crate::stream::names::changelog_topic(app_id, "platform-arrivals"),
        crate::stream::names::changelog_topic(app_id, "train-positions"),
        topics::TURNSTILE_SUMMARY.to_string(),
        crate::stream::names::changelog_topic(app_id, "weather"),
    ]
}

/// Declares the CTA tables and agents on a new app. Returns the app and the table handles the
/// web layer reads.
pub fn build_worker(config: AppConfig, registry: &RegistryConfig) -> Result<(App, TransitTables)> {
    let mut app = App::new(config);
    let spec = |name: &str, source: &str, changelog: Option<&str>| TableSpec {
        name: name.to_string(),
        source_topic: source.to_string(),
        changelog_topic: changelog.map(str::to_string),
    };
    let tables = TransitTables {
        stations: app.table(spec(
            "stations",
            topics::STATIONS,
            Some(topics::STATIONS_TABLE),
        )),
        platforms: app.table(spec("platform-arrivals", topics::ARRIVALS, None)),
        trains: app.table(spec("train-positions", topics::ARRIVALS, None)),
        turnstile: app.table(spec(
            "turnstile-summary",
            topics::TURNSTILE,
            Some(topics::TURNSTILE_SUMMARY),
        )),
        weather: app.table(spec("weather", topics::WEATHER, None)),
    };
    let decoder = AvroDecoder::new(registry)?;
    app.agent(StationsAgent {
        tables: tables.clone(),
    });
    app.agent(ArrivalsAgent {
        tables: tables.clone(),
        decoder: decoder.clone(),
    });
    app.agent(TurnstileAgent {
        tables: tables.clone(),
        decoder: decoder.clone(),
    });
    app.agent(WeatherAgent {
        tables: tables.clone(),
        decoder,
    });
    Ok((app, tables))
}

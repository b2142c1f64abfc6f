//! The rows of each kind of table, read across the workers through [`crate::web::cluster`]
//! and cut by the query's [`Filter`]: turnstile counts (per station, per window) and the
//! entity tables built from the app-wide status (stations, trains, weather).
//!
//! Not here: which rows the WHERE clause admits (`filter`), the limit (`run`).

use super::super::catalog::{Column, Entity, Role, Source};
use super::super::ApiError;
use super::filter::{field_text, key_names, Filter};
use crate::transit::queries::{TransitStatus, Window};
use crate::web::{cluster, WebState};
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;

/// The rows of an entity table, column name → value, from the app-wide status (the page's
/// view: stations of the three lines, each train's latest sighting, the latest weather).
fn entity_rows(entity: Entity, status: &TransitStatus) -> Vec<BTreeMap<&'static str, Json>> {
    let row = |pairs: Vec<(&'static str, Json)>| pairs.into_iter().collect();
    let lines = status.lines.iter();
    match entity {
        Entity::Stations => lines
            .flat_map(|l| l.stations.iter().map(move |s| (l.line.as_str(), s)))
            .map(|(line, s)| {
                row(vec![
                    ("LINE", json!(line)),
                    ("STATION_ID", json!(s.station_id)),
                    ("STATION_NAME", json!(s.station_name)),
                    ("STOP_ORDER", json!(s.order)),
                ])
            })
            .collect(),
        Entity::Trains => lines
            .flat_map(|l| l.trains.iter())
            .map(|t| {
                row(vec![
                    ("TRAIN_ID", json!(t.train_id)),
                    ("LINE", json!(t.line)),
                    ("STATION_ID", json!(t.station_id)),
                    ("DIRECTION", json!(t.direction)),
                    ("TRAIN_STATUS", json!(t.train_status)),
                    ("EVENT_TIME", json!(t.timestamp)),
                    ("STATION_NAME", json!(t.station_name)),
                    ("STOP_ORDER", json!(t.order)),
                ])
            })
            .collect(),
        Entity::Weather => status
            .weather
            .iter()
            .map(|w| {
                row(vec![
                    ("ID", json!(crate::transit::agents::WEATHER_KEY)),
                    ("TEMPERATURE", json!(w.temperature)),
                    ("STATUS", json!(w.status)),
                    ("EVENT_TIME", json!(w.timestamp)),
                ])
            })
            .collect(),
    }
}

/// One answer row: each output column's value, as `value` gives it.
fn project(columns: &[(String, Column)], value: impl Fn(&Column) -> Json) -> Vec<Json> {
    columns.iter().map(|(_, c)| value(c)).collect()
}

/// The value of a column of a turnstile table by its role; other roles are null.
fn counted_value(role: Role, station: i32, start: i64, end: i64, count: i64) -> Json {
    match role {
        Role::Station => station.into(),
        Role::WindowStart => start.into(),
        Role::WindowEnd => end.into(),
        Role::Count => count.into(),
        Role::Field | Role::Other => Json::Null,
    }
}

/// Rows of TURNSTILE_SUMMARY: counts per station.
pub(super) async fn summary_rows(
    state: &WebState,
    columns: &[(String, Column)],
    f: &Filter,
) -> Result<Vec<Vec<Json>>, ApiError> {
    let found = cluster::turnstile(state, f.single_station(), false)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(found
        .into_iter()
        .filter(|r| f.wants_station(r.station_id))
        .map(|r| {
            project(columns, |c| {
                counted_value(c.role, r.station_id, 0, 0, r.count)
            })
        })
        .collect())
}

/// Rows of a windowed turnstile table: counts per station and window, within the bounds.
pub(super) async fn window_rows(
    state: &WebState,
    window: Window,
    columns: &[(String, Column)],
    f: &Filter,
) -> Result<Vec<Vec<Json>>, ApiError> {
    let found = cluster::windows(state, window, f.single_station(), false)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(found
        .into_iter()
        .filter(|w| {
            f.wants_station(w.station_id)
                && f.start.contains(w.window_start)
                && f.end.contains(w.window_end)
        })
        .map(|w| {
            project(columns, |c| {
                counted_value(c.role, w.station_id, w.window_start, w.window_end, w.count)
            })
        })
        .collect())
}

/// Rows of an entity table, sorted by key as the other tables' rows are.
pub(super) async fn entity_table_rows(
    state: &WebState,
    source: &Source,
    entity: Entity,
    columns: &[(String, Column)],
    f: &Filter,
) -> Result<Vec<Vec<Json>>, ApiError> {
    let status = cluster::status(state, false)
        .await
        .map_err(ApiError::unavailable)?;
    let mut found = entity_rows(entity, &status);
    found.retain(|r| f.admits(r));
    let keys = key_names(source);
    let key_of = |r: &BTreeMap<&str, Json>| -> Vec<String> {
        keys.iter()
            .map(|k| r.get(k).map(field_text).unwrap_or_default())
            .collect()
    };
    found.sort_by_key(|r| key_of(r));
    Ok(found
        .iter()
        .map(|r| project(columns, |c| r.get(c.name).cloned().unwrap_or(Json::Null)))
        .collect())
}

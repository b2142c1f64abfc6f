//! Runs a pull query: resolves its columns against the [`catalog`], turns the WHERE clause
//! into a key set and window bounds (a condition on any other column is refused, as ksqlDB
//! refuses one on a non-key column), and reads the rows through the same cross-worker
//! answers as the JSON API ([`crate::web::cluster`]), so each row comes from the worker that
//! owns its partition.

use super::catalog::{self, Column, Data, Entity, Role, Source, SqlType};
use super::parse::{Cmp, Condition, Literal, PullQuery};
use super::ApiError;
use crate::transit::queries::TransitStatus;
use crate::web::{cluster, WebState};
use serde_json::{json, Value as Json};
use std::collections::{BTreeMap, BTreeSet};

/// A pull query's answer: the output columns (name, column) and the rows.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultSet {
    pub columns: Vec<(String, Column)>,
    pub rows: Vec<Vec<Json>>,
}

impl ResultSet {
    /// The `schema` string of ksqlDB's `/query` header: "`A` INTEGER KEY, `B` BIGINT".
    pub fn schema(&self) -> String {
        self.columns
            .iter()
            .map(|(n, c)| {
                let key = if c.key { " KEY" } else { "" };
                format!("`{n}` {}{key}", c.ty.as_str())
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Inclusive range of an i64 column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    lo: i64,
    hi: i64,
}

impl Default for Range {
    fn default() -> Self {
        Range {
            lo: i64::MIN,
            hi: i64::MAX,
        }
    }
}

impl Range {
    fn apply(&mut self, op: Cmp, v: i64) {
        match op {
            Cmp::Eq => {
                self.lo = self.lo.max(v);
                self.hi = self.hi.min(v);
            }
            Cmp::Lt => self.hi = self.hi.min(v.saturating_sub(1)),
            Cmp::LtEq => self.hi = self.hi.min(v),
            Cmp::Gt => self.lo = self.lo.max(v.saturating_add(1)),
            Cmp::GtEq => self.lo = self.lo.max(v),
        }
    }

    fn contains(&self, v: i64) -> bool {
        self.lo <= v && v <= self.hi
    }
}

/// What the WHERE clause asks for.
#[derive(Debug, Default)]
struct Filter {
    /// `None`: every station.
    stations: Option<BTreeSet<i32>>,
    start: Range,
    end: Range,
    /// Key columns of an entity table: the values each may take (`=` and `IN`).
    fields: BTreeMap<&'static str, BTreeSet<String>>,
}

impl Filter {
    fn admits(&self, row: &BTreeMap<&'static str, Json>) -> bool {
        self.fields.iter().all(|(name, allowed)| {
            row.get(name)
                .is_some_and(|v| allowed.contains(&field_text(v)))
        })
    }
}

/// A row value as the text a key condition compares with (`'red'` and `40380` alike).
fn field_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A literal for a key column of an entity table, checked against the column's type.
fn field_value(v: &Literal, column: &Column, text: &str) -> Result<String, ApiError> {
    match (v, column.ty) {
        (Literal::Int(n), SqlType::Integer | SqlType::Bigint) => Ok(n.to_string()),
        (Literal::Text(s), SqlType::String) => Ok(s.clone()),
        (Literal::Int(n), ty) => Err(ApiError::statement(
            format!("{} is {}; {n} is a number", column.name, ty.as_str()),
            text,
        )),
        (Literal::Text(s), ty) => Err(ApiError::statement(
            format!("{} is {}; '{s}' is a string", column.name, ty.as_str()),
            text,
        )),
    }
}

fn resolve<'a>(
    source: &Source,
    all: &'a [Column],
    name: &str,
    text: &str,
) -> Result<&'a Column, ApiError> {
    all.iter().find(|c| c.name == name).ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|c| c.name).collect();
        ApiError::statement(
            format!(
                "column '{name}' cannot be resolved: {} has {}",
                source.name,
                names.join(", ")
            ),
            text,
        )
    })
}

fn station_id(v: &Literal, column: &str, text: &str) -> Result<i32, ApiError> {
    match v {
        Literal::Int(n) => i32::try_from(*n).map_err(|_| {
            ApiError::statement(
                format!("{column} is an INTEGER; {n} is out of its range"),
                text,
            )
        }),
        Literal::Text(s) => Err(ApiError::statement(
            format!("{column} is an INTEGER; '{s}' is a string"),
            text,
        )),
    }
}

/// Window bounds: epoch milliseconds, or a timestamp string ('2026-11-24T07:00:00', UTC unless
/// it names a zone).
fn time_ms(v: &Literal, column: &str, text: &str) -> Result<i64, ApiError> {
    match v {
        Literal::Int(n) => Ok(*n),
        Literal::Text(s) => parse_time(s).ok_or_else(|| {
            ApiError::statement(
                format!("{column}: '{s}' is not a timestamp such as '2026-11-24T07:00:00' or epoch milliseconds"),
                text,
            )
        }),
    }
}

fn parse_time(s: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

/// The values a key condition admits (`=` one, `IN` a list), each read by `value`.
fn key_set<T: Ord>(
    c: &Condition,
    column: &Column,
    text: &str,
    value: impl Fn(&Literal) -> Result<T, ApiError>,
) -> Result<BTreeSet<T>, ApiError> {
    match c {
        Condition::Compare(_, Cmp::Eq, v) => Ok([value(v)?].into()),
        Condition::In(_, vs) => vs.iter().map(value).collect(),
        _ => Err(ApiError::statement(
            format!("the key {} takes = and IN only", column.name),
            text,
        )),
    }
}

fn filter(source: &Source, all: &[Column], q: &PullQuery, text: &str) -> Result<Filter, ApiError> {
    let mut f = Filter::default();
    for c in &q.conditions {
        let column = resolve(source, all, c.column(), text)?;
        match column.role {
            Role::Station => {
                let ids = key_set(c, column, text, |v| station_id(v, column.name, text))?;
                f.stations = Some(match f.stations.take() {
                    Some(prev) => prev.intersection(&ids).copied().collect(),
                    None => ids,
                });
            }
            Role::WindowStart | Role::WindowEnd => {
                let range = if column.role == Role::WindowStart {
                    &mut f.start
                } else {
                    &mut f.end
                };
                match c {
                    Condition::Compare(_, op, v) => range.apply(*op, time_ms(v, column.name, text)?),
                    Condition::Between(_, lo, hi) => {
                        range.apply(Cmp::GtEq, time_ms(lo, column.name, text)?);
                        range.apply(Cmp::LtEq, time_ms(hi, column.name, text)?);
                    }
                    Condition::In(..) => {
                        return Err(ApiError::statement(
                            format!("{} takes =, <, <=, >, >= and BETWEEN", column.name),
                            text,
                        ))
                    }
                }
            }
            Role::Field if column.key => {
                let values = key_set(c, column, text, |v| field_value(v, column, text))?;
                let merged = match f.fields.remove(column.name) {
                    Some(prev) => prev.intersection(&values).cloned().collect(),
                    None => values,
                };
                f.fields.insert(column.name, merged);
            }
            Role::Count | Role::Field | Role::Other => {
                return Err(ApiError::statement(
                    format!(
                        "WHERE on {}, a non-key column, is not supported: pull queries on {} filter on the key {}{}",
                        column.name,
                        source.name,
                        key_name(source),
                        if matches!(source.data, Data::Windowed(_)) {
                            " and WINDOWSTART / WINDOWEND bounds"
                        } else {
                            ""
                        }
                    ),
                    text,
                ))
            }
        }
    }
    Ok(f)
}

fn key_name(s: &Source) -> String {
    let keys: Vec<&str> = s.columns.iter().filter(|c| c.key).map(|c| c.name).collect();
    keys.join(", ")
}

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

/// Runs `q` across the app's workers.
pub async fn run(state: &WebState, q: &PullQuery, text: &str) -> Result<ResultSet, ApiError> {
    let source = catalog::find(&q.source).ok_or_else(|| {
        ApiError::statement(
            format!(
                "{} does not exist; the tables are {}",
                q.source,
                catalog::table_names()
            ),
            text,
        )
    })?;
    if source.is_stream() {
        return Err(ApiError::statement(
            format!(
                "{} is a stream: this server answers pull queries on tables ({})",
                source.name,
                catalog::table_names()
            ),
            text,
        ));
    }
    let all = source.query_columns();
    let columns: Vec<(String, Column)> = match &q.columns {
        None => all.iter().map(|c| (c.name.to_string(), *c)).collect(),
        Some(list) => list
            .iter()
            .map(|(c, alias)| resolve(source, &all, c, text).map(|col| (alias.clone(), *col)))
            .collect::<Result<_, _>>()?,
    };
    let f = filter(source, &all, q, text)?;
    if let Some(r) = super::recovering(state) {
        return Err(r);
    }
    let one = f
        .stations
        .as_ref()
        .filter(|s| s.len() == 1)
        .and_then(|s| s.first().copied());
    let wanted = |id: i32| f.stations.as_ref().is_none_or(|s| s.contains(&id));
    let limit = q.limit.unwrap_or(usize::MAX);
    let mut rows = Vec::new();
    if f.stations.as_ref().is_some_and(|s| s.is_empty()) || limit == 0 {
        return Ok(ResultSet { columns, rows });
    }
    let value = |role: Role, station: i32, start: i64, end: i64, count: i64| -> Json {
        match role {
            Role::Station => station.into(),
            Role::WindowStart => start.into(),
            Role::WindowEnd => end.into(),
            Role::Count => count.into(),
            Role::Field | Role::Other => Json::Null,
        }
    };
    match source.data {
        Data::Summary => {
            let found = cluster::turnstile(state, one, false)
                .await
                .map_err(ApiError::unavailable)?;
            for r in found.into_iter().filter(|r| wanted(r.station_id)) {
                rows.push(
                    columns
                        .iter()
                        .map(|(_, c)| value(c.role, r.station_id, 0, 0, r.count))
                        .collect(),
                );
            }
        }
        Data::Windowed(window) => {
            let found = cluster::windows(state, window, one, false)
                .await
                .map_err(ApiError::unavailable)?;
            for w in found.into_iter().filter(|w| {
                wanted(w.station_id)
                    && f.start.contains(w.window_start)
                    && f.end.contains(w.window_end)
            }) {
                rows.push(
                    columns
                        .iter()
                        .map(|(_, c)| {
                            value(c.role, w.station_id, w.window_start, w.window_end, w.count)
                        })
                        .collect(),
                );
            }
        }
        Data::Entities(entity) => {
            let status = cluster::status(state, false)
                .await
                .map_err(ApiError::unavailable)?;
            let mut found = entity_rows(entity, &status);
            found.retain(|r| f.admits(r));
            // Sorted by key, as the other tables' rows are.
            let keys: Vec<&str> = source
                .columns
                .iter()
                .filter(|c| c.key)
                .map(|c| c.name)
                .collect();
            let key_of = |r: &BTreeMap<&str, Json>| -> Vec<String> {
                keys.iter()
                    .map(|k| r.get(k).map(field_text).unwrap_or_default())
                    .collect()
            };
            found.sort_by_key(|r| key_of(r));
            for r in found {
                rows.push(
                    columns
                        .iter()
                        .map(|(_, c)| r.get(c.name).cloned().unwrap_or(Json::Null))
                        .collect(),
                );
            }
        }
        Data::Stream => {}
    }
    rows.truncate(limit);
    Ok(ResultSet { columns, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_times() {
        let mut r = Range::default();
        r.apply(Cmp::GtEq, 10);
        r.apply(Cmp::Lt, 20);
        assert!(r.contains(10) && r.contains(19) && !r.contains(20) && !r.contains(9));
        r.apply(Cmp::Eq, 25);
        assert!(!r.contains(25));
        assert_eq!(parse_time("1970-01-01T00:00:01"), Some(1000));
        assert_eq!(parse_time("1970-01-01T00:00:01.5"), Some(1500));
        assert_eq!(parse_time("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_time("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_time("yesterday"), None);
    }
}

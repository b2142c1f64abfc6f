//! A pull query's WHERE clause as a [`Filter`]: the stations asked for, window bounds, and the
//! values an entity table's key columns may take. Literals are checked against their column's
//! type; a condition on a non-key column is refused, as ksqlDB refuses one.
//!
//! Not here: reading the rows the filter admits (`rows`).

use super::super::catalog::{Column, Data, Role, Source, SqlType};
use super::super::parse::{Cmp, Condition, Literal, PullQuery};
use super::super::ApiError;
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};

/// Inclusive range of an i64 column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Range {
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

    pub(super) fn contains(&self, v: i64) -> bool {
        self.lo <= v && v <= self.hi
    }
}

/// What the WHERE clause asks for.
#[derive(Debug, Default)]
pub(super) struct Filter {
    /// `None`: every station.
    pub(super) stations: Option<BTreeSet<i32>>,
    pub(super) start: Range,
    pub(super) end: Range,
    /// Key columns of an entity table: the values each may take (`=` and `IN`).
    fields: BTreeMap<&'static str, BTreeSet<String>>,
}

impl Filter {
    /// The one station asked for, when exactly one is.
    pub(super) fn single_station(&self) -> Option<i32> {
        self.stations
            .as_ref()
            .filter(|s| s.len() == 1)
            .and_then(|s| s.first().copied())
    }

    /// Whether the key conditions admit `station`.
    pub(super) fn wants_station(&self, station: i32) -> bool {
        self.stations.as_ref().is_none_or(|s| s.contains(&station))
    }

    pub(super) fn admits(&self, row: &BTreeMap<&'static str, Json>) -> bool {
        self.fields.iter().all(|(name, allowed)| {
            row.get(name)
                .is_some_and(|v| allowed.contains(&field_text(v)))
        })
    }
}

/// A row value as the text a key condition compares with (`'red'` and `40380` alike).
pub(super) fn field_text(v: &Json) -> String {
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

pub(super) fn resolve<'a>(
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

pub(super) fn filter(
    source: &Source,
    all: &[Column],
    q: &PullQuery,
    text: &str,
) -> Result<Filter, ApiError> {
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
    key_names(s).join(", ")
}

/// The names of a source's key columns, in order.
pub(super) fn key_names(s: &Source) -> Vec<&'static str> {
    s.columns.iter().filter(|c| c.key).map(|c| c.name).collect()
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

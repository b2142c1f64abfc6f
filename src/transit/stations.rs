//! The station dataset: one CSV (`data/stations.csv`, built in; or the user's own file with the
//! same columns), from which the simulation, the Postgres `load_stations.sql` and the station
//! rows published to Kafka are all derived.

use crate::transit::lines::{Direction, Line};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The built-in dataset, compiled in from `data/stations.csv`.
pub const BUILTIN_CSV: &str = include_str!("../../data/stations.csv");

/// One station of one line, as in the CSV.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StationRow {
    pub line: Line,
    pub order: u32,
    #[serde(default)]
    pub branch: String,
    pub station_id: i32,
    pub station_name: String,
    pub station_descriptive_name: String,
    pub stop_id_a: i32,
    pub stop_id_b: i32,
    pub direction_id_a: String,
    pub direction_id_b: String,
    pub avg_weekday: u32,
    pub avg_saturday: u32,
    pub avg_sunday_holiday: u32,
}

/// A station row as Kafka Connect's JDBC source (JsonConverter, schemas off) publishes the
/// Postgres `stations` table: one row per stop (platform).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectStationRow {
    pub stop_id: i32,
    pub direction_id: String,
    pub stop_name: String,
    pub station_name: String,
    pub station_descriptive_name: String,
    pub station_id: i32,
    pub order: i32,
    pub red: bool,
    pub blue: bool,
    pub green: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{source_name}: cannot read: {reason}")]
    Read { source_name: String, reason: String },
    #[error("{source_name} line {line}: {reason}")]
    Row {
        source_name: String,
        line: u64,
        reason: String,
    },
    #[error("{source_name}: {reason}")]
    Invalid { source_name: String, reason: String },
}

/// A validated dataset.
#[derive(Debug, Clone)]
pub struct Dataset {
    rows: Vec<StationRow>,
}

/// Day types of the ridership averages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayType {
    Weekday,
    Saturday,
    SundayHoliday,
}

impl StationRow {
    pub fn average_entries(&self, day: DayType) -> u32 {
        match day {
            DayType::Weekday => self.avg_weekday,
            DayType::Saturday => self.avg_saturday,
            DayType::SundayHoliday => self.avg_sunday_holiday,
        }
    }

    pub fn stop_id(&self, d: Direction) -> i32 {
        match d {
            Direction::A => self.stop_id_a,
            Direction::B => self.stop_id_b,
        }
    }
}

impl Dataset {
    pub fn builtin() -> Self {
        // The built-in file is checked by tests; failing here is a build defect.
        Self::parse(BUILTIN_CSV, "built-in data/stations.csv").unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn load(path: &Path) -> Result<Self, DatasetError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| DatasetError::Read {
            source_name: name.clone(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, &name)
    }

    pub fn parse(text: &str, source_name: &str) -> Result<Self, DatasetError> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let mut rows = Vec::new();
        for rec in reader.deserialize::<StationRow>() {
            let row = rec.map_err(|e| DatasetError::Row {
                source_name: source_name.to_string(),
                line: e.position().map(|p| p.line()).unwrap_or(0),
                reason: e.to_string(),
            })?;
            rows.push(row);
        }
        let ds = Dataset { rows };
        ds.validate(source_name)?;
        Ok(ds)
    }

    fn validate(&self, source_name: &str) -> Result<(), DatasetError> {
        let invalid = |reason: String| DatasetError::Invalid {
            source_name: source_name.to_string(),
            reason,
        };
        if self.rows.is_empty() {
            return Err(invalid("no stations".into()));
        }
        let mut stops = BTreeMap::new();
        let mut ids = BTreeMap::new();
        for r in &self.rows {
            if r.station_name.is_empty() {
                return Err(invalid(format!("station {} has no name", r.station_id)));
            }
            if r.order == 0 {
                return Err(invalid(format!("{} order must start at 1", r.station_name)));
            }
            for stop in [r.stop_id_a, r.stop_id_b] {
                if let Some(prev) = stops.insert(stop, r.station_name.clone()) {
                    return Err(invalid(format!(
                        "stop id {stop} used by both {prev} and {}",
                        r.station_name
                    )));
                }
            }
            if ids.insert((r.line, r.station_id), ()).is_some() {
                return Err(invalid(format!(
                    "station id {} twice on the {} line",
                    r.station_id, r.line
                )));
            }
        }
        for line in Line::ALL {
            for route in self.routes(line) {
                for (i, r) in route.iter().enumerate() {
                    if r.order as usize != i + 1 {
                        return Err(invalid(format!(
                            "{} line: {} has order {} but is station {} of its route",
                            line,
                            r.station_name,
                            r.order,
                            i + 1
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    pub fn rows(&self) -> &[StationRow] {
        &self.rows
    }

    /// Rows of one line: trunk in order, then each branch in order.
    pub fn line(&self, line: Line) -> Vec<&StationRow> {
        let mut v: Vec<&StationRow> = self.rows.iter().filter(|r| r.line == line).collect();
        v.sort_by(|a, b| a.branch.cmp(&b.branch).then(a.order.cmp(&b.order)));
        v
    }

    /// The routes trains of `line` run: the trunk followed by each branch (a line without
    /// branches has one route).
    pub fn routes(&self, line: Line) -> Vec<Vec<&StationRow>> {
        let rows = self.line(line);
        let trunk: Vec<&StationRow> = rows
            .iter()
            .copied()
            .filter(|r| r.branch.is_empty())
            .collect();
        let mut branches: Vec<&str> = rows
            .iter()
            .filter(|r| !r.branch.is_empty())
            .map(|r| r.branch.as_str())
            .collect();
        branches.dedup();
        if branches.is_empty() {
            return if trunk.is_empty() {
                Vec::new()
            } else {
                vec![trunk]
            };
        }
        branches
            .into_iter()
            .map(|b| {
                let mut route = trunk.clone();
                route.extend(rows.iter().copied().filter(|r| r.branch == b));
                route
            })
            .collect()
    }

    /// The rows the JDBC source connector publishes: two per station (one per platform).
    pub fn connect_rows(&self) -> Vec<ConnectStationRow> {
        let mut out = Vec::with_capacity(self.rows.len() * 2);
        for r in &self.rows {
            let routes = self.routes(r.line);
            let ends = |d: Direction| -> String {
                // Name the terminal(s) a train in direction d heads for.
                let mut names: Vec<&str> = routes
                    .iter()
                    .filter(|route| route.iter().any(|s| s.station_id == r.station_id))
                    .filter_map(|route| match d {
                        Direction::A => route.first(),
                        Direction::B => route.last(),
                    })
                    .map(|s| s.station_name.as_str())
                    .collect();
                names.dedup();
                names.join(" & ")
            };
            for (d, stop, dir) in [
                (Direction::A, r.stop_id_a, &r.direction_id_a),
                (Direction::B, r.stop_id_b, &r.direction_id_b),
            ] {
                out.push(ConnectStationRow {
                    stop_id: stop,
                    direction_id: dir.clone(),
                    stop_name: format!("{} ({}-bound)", r.station_name, ends(d)),
                    station_name: r.station_name.clone(),
                    station_descriptive_name: r.station_descriptive_name.clone(),
                    station_id: r.station_id,
                    order: r.order as i32,
                    red: r.line == Line::Red,
                    blue: r.line == Line::Blue,
                    green: r.line == Line::Green,
                });
            }
        }
        out.sort_by_key(|r| r.stop_id);
        out
    }

    /// `load_stations.sql`: creates and fills the Postgres `stations` table the JDBC source
    /// connector reads. Generated from the dataset (`cta stations-sql`), checked by a test.
    pub fn to_sql(&self) -> String {
        fn q(s: &str) -> String {
            format!("'{}'", s.replace('\'', "''"))
        }
        let mut sql = String::from(
            "-- Generated from data/stations.csv by `cargo run --release --bin cta -- stations-sql`; do not edit.\n\
             -- Creates and fills the table Kafka Connect's JDBC source publishes to org.chicago.cta.stations.\n\
             DROP TABLE IF EXISTS stations;\n\
             CREATE TABLE stations (\n    stop_id INTEGER PRIMARY KEY,\n    direction_id VARCHAR(1) NOT NULL,\n    stop_name VARCHAR(100) NOT NULL,\n    station_name VARCHAR(100) NOT NULL,\n    station_descriptive_name VARCHAR(200) NOT NULL,\n    station_id INTEGER NOT NULL,\n    \"order\" INTEGER,\n    red BOOLEAN NOT NULL,\n    blue BOOLEAN NOT NULL,\n    green BOOLEAN NOT NULL\n);\n\
             INSERT INTO stations (stop_id, direction_id, stop_name, station_name, station_descriptive_name, station_id, \"order\", red, blue, green) VALUES\n",
        );
        let rows = self.connect_rows();
        for (i, r) in rows.iter().enumerate() {
            sql.push_str(&format!(
                "    ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}){}\n",
                r.stop_id,
                q(&r.direction_id),
                q(&r.stop_name),
                q(&r.station_name),
                q(&r.station_descriptive_name),
                r.station_id,
                r.order,
                r.red,
                r.blue,
                r.green,
                if i + 1 == rows.len() { ";" } else { "," }
            ));
        }
        sql
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_dataset_has_the_three_lines_in_order() {
        let ds = Dataset::builtin();
        let blue = ds.routes(Line::Blue);
        assert_eq!(blue.len(), 1);
        assert_eq!(blue[0].first().unwrap().station_name, "O'Hare");
        assert_eq!(blue[0].last().unwrap().station_name, "Forest Park");
        let red = ds.routes(Line::Red);
        assert_eq!(red[0].first().unwrap().station_name, "Howard");
        assert_eq!(red[0].last().unwrap().station_name, "95th/Dan Ryan");
        let green = ds.routes(Line::Green);
        assert_eq!(green.len(), 2);
        let ends: Vec<&str> = green
            .iter()
            .map(|r| r.last().unwrap().station_name.as_str())
            .collect();
        assert!(
            ends.contains(&"Ashland/63rd") && ends.contains(&"Cottage Grove"),
            "{ends:?}"
        );
        assert_eq!(green[0].first().unwrap().station_name, "Harlem/Lake");
        for r in ds.rows() {
            assert!((40000..50000).contains(&r.station_id), "{}", r.station_name);
            assert!(r.avg_weekday > 0);
        }
    }

    #[test]
    fn bad_csv_gives_line_numbered_error() {
        let mut text = BUILTIN_CSV.lines().take(3).collect::<Vec<_>>().join("\n");
        text.push_str("\nblue,3,,notanumber,X,X,1,2,N,S,1,1,1\n");
        let err = Dataset::parse(&text, "mine.csv").unwrap_err().to_string();
        assert!(err.starts_with("mine.csv line 4"), "{err}");
    }

    #[test]
    fn connect_rows_two_per_station_and_sql_escapes_quotes() {
        let ds = Dataset::builtin();
        let rows = ds.connect_rows();
        assert_eq!(rows.len(), ds.rows().len() * 2);
        let ohare: Vec<_> = rows.iter().filter(|r| r.station_name == "O'Hare").collect();
        assert_eq!(ohare.len(), 2);
        assert!(ohare.iter().all(|r| r.blue && !r.red && !r.green));
        assert!(
            ohare
                .iter()
                .any(|r| r.stop_name == "O'Hare (Forest Park-bound)"),
            "{ohare:?}"
        );
        let sql = ds.to_sql();
        assert!(sql.contains("'O''Hare'"));
        assert_eq!(sql.matches("\n    (").count(), rows.len());
    }

    #[test]
    fn load_stations_sql_is_generated_from_the_csv() {
        let committed = include_str!("../../load_stations.sql");
        assert_eq!(
            committed,
            Dataset::builtin().to_sql(),
            "regenerate with `cargo run --release --bin cta -- stations-sql > load_stations.sql`"
        );
    }
}

//! Read models over the worker's tables, for the page, the JSON API and the command line.
//! Tables fed by topics not keyed by the table key (arrivals and weather are keyed by time) can
//! hold a key in several partitions; these queries take the latest by event time.
//!
//! The turnstile counts come from the worker's own table or, in ksqlDB mode, from a
//! [`TurnstileSource`] that covers the whole app; the answers across workers
//! (`crate::web::cluster`) read whichever is in use, so the API looks the same.

use crate::stream::WindowedTable;
use crate::stream::{Result, StatusSnapshot};
use crate::transit::agents::{TransitTables, TurnstileCounts, WEATHER_KEY};
use crate::transit::lines::Line;
use crate::transit::models::{TrainSighting, TurnstileSummary, WeatherReading, WindowCount};
pub use crate::transit::source::{QueryError, TurnstileSource};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct StationStatus {
    pub station_id: i32,
    pub station_name: String,
    pub order: i32,
    pub direction_a: Option<TrainSighting>,
    pub direction_b: Option<TrainSighting>,
    pub entries: i64,
    /// Entries in the current hour (the newest hourly window).
    pub entries_this_hour: i64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct LineStatus {
    pub line: Line,
    pub title: String,
    pub color: String,
    pub stations: Vec<StationStatus>,
    pub trains: Vec<TrainSighting>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct TransitStatus {
    pub weather: Option<WeatherReading>,
    pub lines: Vec<LineStatus>,
    pub total_entries: i64,
    pub worker: StatusSnapshot,
}

fn latest(a: Option<TrainSighting>, b: TrainSighting) -> Option<TrainSighting> {
    match a {
        Some(a) if a.timestamp >= b.timestamp => Some(a),
        _ => Some(b),
    }
}

/// Which windowed turnstile table to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Hourly,
    Recent,
}

fn window_counts(t: &WindowedTable<i32, i64>, station: Option<i32>) -> Result<Vec<WindowCount>> {
    let size = t.windows().size_ms;
    let mut sums: BTreeMap<(i32, i64), i64> = BTreeMap::new();
    for (_, k, v) in t.items_shared()?.iter() {
        if station.is_none_or(|s| s == k.key) {
            *sums.entry((k.key, k.start)).or_default() += v;
        }
    }
    Ok(sums
        .into_iter()
        .map(|((station_id, start), count)| WindowCount {
            station_id,
            window_start: start,
            window_end: start + size,
            count,
        })
        .collect())
}

impl TransitTables {
    /// Windowed entry counts, for all stations or one, ordered by station then window.
    pub fn turnstile_windows(
        &self,
        window: Window,
        station: Option<i32>,
    ) -> Result<Vec<WindowCount>> {
        match window {
            Window::Hourly => window_counts(&self.turnstile_hourly, station),
            Window::Recent => window_counts(&self.turnstile_recent, station),
        }
    }

    /// Per-station entry counts this worker keeps, by station id (none when an outside
    /// [`TurnstileSource`] keeps them).
    pub fn turnstile_all(&self) -> Result<Vec<TurnstileSummary>> {
        let TurnstileCounts::Native(table) = &self.turnstile else {
            return Ok(Vec::new());
        };
        let mut sums: BTreeMap<i32, i64> = BTreeMap::new();
        for (_, k, v) in table.items_shared()?.iter() {
            *sums.entry(*k).or_default() += v.count;
        }
        Ok(sums
            .into_iter()
            .map(|(station_id, count)| TurnstileSummary { station_id, count })
            .collect())
    }

    /// One station's count as this worker keeps it (see [`Self::turnstile_all`]).
    pub fn turnstile_one(&self, station_id: i32) -> Result<Option<TurnstileSummary>> {
        let TurnstileCounts::Native(table) = &self.turnstile else {
            return Ok(None);
        };
        let vals = table.get_all(&station_id)?;
        if vals.is_empty() {
            return Ok(None);
        }
        Ok(Some(TurnstileSummary {
            station_id,
            count: vals.iter().map(|v| v.count).sum(),
        }))
    }

    pub fn weather(&self) -> Result<Option<WeatherReading>> {
        Ok(self
            .weather
            .get_all(&WEATHER_KEY.to_string())?
            .into_iter()
            .max_by_key(|w| w.timestamp))
    }

    /// Everything the status page shows.
    pub fn status(&self, worker: StatusSnapshot) -> Result<TransitStatus> {
        let counts: HashMap<i32, i64> = self
            .turnstile_all()?
            .into_iter()
            .map(|s| (s.station_id, s.count))
            .collect();
        let hourly = self.turnstile_windows(Window::Hourly, None)?;
        let current_hour = hourly.iter().map(|w| w.window_start).max();
        let this_hour: HashMap<i32, i64> = hourly
            .iter()
            .filter(|w| Some(w.window_start) == current_hour)
            .map(|w| (w.station_id, w.count))
            .collect();
        let mut platforms: HashMap<(String, i32, String), TrainSighting> = HashMap::new();
        for (_, k, v) in self.platforms.items()? {
            let key = (k.line, k.station_id, k.direction);
            let cur = platforms.remove(&key);
            if let Some(best) = latest(cur, v) {
                platforms.insert(key, best);
            }
        }
        let mut trains: BTreeMap<String, TrainSighting> = BTreeMap::new();
        for (_, k, v) in self.trains.items()? {
            let cur = trains.remove(&k);
            if let Some(best) = latest(cur, v) {
                trains.insert(k, best);
            }
        }
        let mut stations: BTreeMap<(String, i32), StationStatus> = BTreeMap::new();
        for (_, k, s) in self.stations.items()? {
            let take = |d: &str| {
                platforms
                    .get(&(k.line.clone(), k.station_id, d.to_string()))
                    .cloned()
            };
            stations.insert(
                (k.line.clone(), k.station_id),
                StationStatus {
                    station_id: s.station_id,
                    station_name: s.station_name.clone(),
                    order: s.order,
                    direction_a: take("a"),
                    direction_b: take("b"),
                    entries: counts.get(&s.station_id).copied().unwrap_or(0),
                    entries_this_hour: this_hour.get(&s.station_id).copied().unwrap_or(0),
                },
            );
        }
        let lines = Line::ALL
            .iter()
            .map(|&line| {
                let mut st: Vec<StationStatus> = stations
                    .iter()
                    .filter(|((l, _), _)| l == line.as_str())
                    .map(|(_, s)| s.clone())
                    .collect();
                st.sort_by(|a, b| {
                    a.order
                        .cmp(&b.order)
                        .then(a.station_name.cmp(&b.station_name))
                });
                LineStatus {
                    line,
                    title: line.title().to_string(),
                    color: line.color().to_string(),
                    stations: st,
                    trains: trains
                        .values()
                        .filter(|t| t.line == line.as_str())
                        .cloned()
                        .collect(),
                }
            })
            .collect();
        Ok(TransitStatus {
            weather: self.weather()?,
            lines,
            total_entries: counts.values().sum(),
            worker,
        })
    }
}

/// Puts counts kept outside the workers (ksqlDB) into a status: each station's entries and
/// the total.
pub fn set_counts(status: &mut TransitStatus, counts: &[TurnstileSummary]) {
    let by_station: HashMap<i32, i64> = counts.iter().map(|c| (c.station_id, c.count)).collect();
    for line in &mut status.lines {
        for s in &mut line.stations {
            s.entries = by_station.get(&s.station_id).copied().unwrap_or(0);
        }
    }
    status.total_entries = counts.iter().map(|c| c.count).sum();
}

fn later(a: Option<TrainSighting>, b: Option<TrainSighting>) -> Option<TrainSighting> {
    match (a, b) {
        (Some(a), Some(b)) => latest(Some(a), b),
        (a, b) => a.or(b),
    }
}

/// Merges the status of several workers, each owning some partitions: counts add up (a
/// station's entries live in one partition, so at most one worker has them), trains and
/// weather take the latest sighting. The worker counters are this worker's.
pub fn merge_status(mut mine: TransitStatus, others: Vec<TransitStatus>) -> TransitStatus {
    for other in others {
        mine.weather = match (mine.weather, other.weather) {
            (Some(a), Some(b)) => Some(if b.timestamp > a.timestamp { b } else { a }),
            (a, b) => a.or(b),
        };
        mine.total_entries += other.total_entries;
        for ol in other.lines {
            let Some(ml) = mine.lines.iter_mut().find(|l| l.line == ol.line) else {
                mine.lines.push(ol);
                continue;
            };
            for os in ol.stations {
                match ml
                    .stations
                    .iter_mut()
                    .find(|s| s.station_id == os.station_id)
                {
                    Some(ms) => {
                        ms.entries += os.entries;
                        ms.entries_this_hour += os.entries_this_hour;
                        ms.direction_a = later(ms.direction_a.take(), os.direction_a);
                        ms.direction_b = later(ms.direction_b.take(), os.direction_b);
                    }
                    None => ml.stations.push(os),
                }
            }
            for ot in ol.trains {
                match ml.trains.iter_mut().find(|t| t.train_id == ot.train_id) {
                    Some(mt) if mt.timestamp >= ot.timestamp => {}
                    Some(mt) => *mt = ot,
                    None => ml.trains.push(ot),
                }
            }
            ml.stations.sort_by(|a, b| {
                a.order
                    .cmp(&b.order)
                    .then(a.station_name.cmp(&b.station_name))
            });
            ml.trains.sort_by(|a, b| a.train_id.cmp(&b.train_id));
        }
    }
    mine
}

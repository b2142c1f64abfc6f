//! Read models over the worker's tables, for the page, the JSON API and the command line.
//! Tables fed by topics not keyed by the table key (arrivals and weather are keyed by time) can
//! hold a key in several partitions; these queries take the latest by event time. Stations
//! and weather are read from the worker's copies of the whole tables (global tables), so every
//! worker lists every station; counts and trains are the worker's own partitions', added up
//! across workers by `crate::web::cluster`.
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
    /// The train standing at the platform in direction `a` (toward the first station), if
    /// any: placed by [`place_trains`] from the trains' latest arrivals, never stored.
    pub direction_a: Option<TrainSighting>,
    /// The train standing at the platform in direction `b` (toward increasing order).
    pub direction_b: Option<TrainSighting>,
    pub entries: i64,
    /// Entries in the current hour (the newest hourly window of the whole app).
    pub entries_this_hour: i64,
    /// Entries per hourly window: (window start in ms, count), oldest first.
    #[serde(default)]
    pub hourly: Vec<(i64, i64)>,
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
    /// Start of the newest hourly window any station has (ms), the right end of the page's
    /// 24-hour sparklines.
    #[serde(default)]
    pub latest_hour: Option<i64>,
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

    /// The latest weather reading, from this worker's copy of the whole table.
    pub fn weather(&self) -> Result<Option<WeatherReading>> {
        Ok(self
            .weather_everywhere
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
        let mut hourly: HashMap<i32, Vec<(i64, i64)>> = HashMap::new();
        for w in self.turnstile_windows(Window::Hourly, None)? {
            hourly
                .entry(w.station_id)
                .or_default()
                .push((w.window_start, w.count));
        }
        let mut trains: BTreeMap<String, TrainSighting> = BTreeMap::new();
        for (_, k, v) in self.trains.items()? {
            let cur = trains.remove(&k);
            if let Some(best) = latest(cur, v) {
                trains.insert(k, best);
            }
        }
        let mut stations: BTreeMap<(String, i32), StationStatus> = BTreeMap::new();
        // Every station, from this worker's copy of the whole table; the counts are its own.
        for (_, k, s) in self.stations_everywhere.items()? {
            stations.insert(
                (k.line.clone(), k.station_id),
                StationStatus {
                    station_id: s.station_id,
                    station_name: s.station_name.clone(),
                    order: s.order,
                    direction_a: None,
                    direction_b: None,
                    entries: counts.get(&s.station_id).copied().unwrap_or(0),
                    entries_this_hour: 0,
                    hourly: hourly.get(&s.station_id).cloned().unwrap_or_default(),
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
        let mut status = TransitStatus {
            weather: self.weather()?,
            lines,
            total_entries: counts.values().sum(),
            latest_hour: None,
            worker,
        };
        finish(&mut status);
        Ok(status)
    }
}

/// Derives what a status shows from what it holds: the current hour's entries per station
/// and which train stands at which platform. Run on one worker's status and again after
/// merging several (a platform's occupant is only known once every train's latest sighting is).
pub fn finish(status: &mut TransitStatus) {
    status.latest_hour = status
        .lines
        .iter()
        .flat_map(|l| &l.stations)
        .flat_map(|s| s.hourly.iter().map(|(start, _)| *start))
        .max();
    for line in &mut status.lines {
        for s in &mut line.stations {
            s.entries_this_hour = s
                .hourly
                .iter()
                .filter(|(start, _)| Some(*start) == status.latest_hour)
                .map(|(_, n)| n)
                .sum();
        }
        place_trains(line);
    }
}

/// Puts each train at the platform of its latest arrival, so the platform it left shows no
/// train. A train out of service is not shown at a platform; a train at a station the
/// stations table does not have yet is kept (in `trains`) and placed once the row arrives.
/// Two trains claiming one platform: the later arrival stands there.
pub fn place_trains(line: &mut LineStatus) {
    let mut at: HashMap<i32, usize> = HashMap::new();
    for (i, s) in line.stations.iter_mut().enumerate() {
        s.direction_a = None;
        s.direction_b = None;
        at.insert(s.station_id, i);
    }
    for t in &line.trains {
        if t.train_status == crate::transit::models::train_status::OUT_OF_SERVICE {
            continue;
        }
        let Some(&i) = at.get(&t.station_id) else {
            continue;
        };
        let st = &mut line.stations[i];
        let slot = match t.direction.as_str() {
            "a" => &mut st.direction_a,
            "b" => &mut st.direction_b,
            _ => continue,
        };
        if slot.as_ref().is_none_or(|cur| t.timestamp > cur.timestamp) {
            *slot = Some(t.clone());
        }
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

/// Merges the status of several workers, each owning some partitions: counts add up (a
/// station's entries live in one partition, so at most one worker has them), trains and
/// weather take the latest sighting, and trains are placed again from the merged sightings. The worker counters are this worker's.
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
                        ms.hourly = add_windows(&ms.hourly, &os.hourly);
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
    finish(&mut mine);
    mine
}

/// Window counts of two workers added per window start, oldest first.
fn add_windows(a: &[(i64, i64)], b: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut sums: BTreeMap<i64, i64> = BTreeMap::new();
    for (start, n) in a.iter().chain(b) {
        *sums.entry(*start).or_default() += n;
    }
    sums.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transit::models::train_status;

    fn station(id: i32, order: i32) -> StationStatus {
        StationStatus {
            station_id: id,
            station_name: format!("S{id}"),
            order,
            direction_a: None,
            direction_b: None,
            entries: 0,
            entries_this_hour: 0,
            hourly: Vec::new(),
        }
    }

    fn seen(train: &str, at: i32, dir: &str, status: &str, ts: i64) -> TrainSighting {
        TrainSighting {
            train_id: train.into(),
            line: "blue".into(),
            station_id: at,
            direction: dir.into(),
            train_status: status.into(),
            timestamp: ts,
            not_reporting: false,
            station_name: None,
            order: None,
        }
    }

    /// One worker's view: the given stations, trains and hourly counts.
    fn worker(trains: Vec<TrainSighting>, hourly: &[(i32, i64, i64)]) -> TransitStatus {
        let mut stations: Vec<StationStatus> = (1..=4).map(|i| station(40_000 + i, i)).collect();
        for &(id, start, n) in hourly {
            if let Some(s) = stations.iter_mut().find(|s| s.station_id == id) {
                s.hourly.push((start, n));
            }
        }
        let mut status = TransitStatus {
            weather: None,
            lines: vec![LineStatus {
                line: Line::Blue,
                title: "Blue Line".into(),
                color: "#00f".into(),
                stations,
                trains,
            }],
            total_entries: 0,
            latest_hour: None,
            worker: crate::stream::Status::default().snapshot(),
        };
        finish(&mut status);
        status
    }

    fn occupied(s: &TransitStatus) -> Vec<(i32, &'static str, String)> {
        let mut out = Vec::new();
        for st in &s.lines[0].stations {
            for (dir, t) in [("a", &st.direction_a), ("b", &st.direction_b)] {
                if let Some(t) = t {
                    out.push((st.station_id, dir, t.train_id.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn a_train_stands_only_at_its_latest_platform_after_merging_workers() {
        let ok = train_status::IN_SERVICE;
        // Worker 1 saw BL001 at 40001 (older) and BL002; worker 2 saw BL001 move on to 40002.
        let w1 = worker(
            vec![
                seen("BL001", 40_001, "b", ok, 10),
                seen("BL002", 40_004, "a", ok, 12),
            ],
            &[(40_001, 0, 5), (40_001, 3_600_000, 2)],
        );
        assert_eq!(
            occupied(&w1),
            [(40_001, "b", "BL001".into()), (40_004, "a", "BL002".into())]
        );
        let w2 = worker(
            vec![seen("BL001", 40_002, "b", ok, 20)],
            &[(40_001, 3_600_000, 3)],
        );
        let merged = merge_status(w1, vec![w2]);
        assert_eq!(
            occupied(&merged),
            [(40_002, "b", "BL001".into()), (40_004, "a", "BL002".into())],
            "the platform BL001 left is free"
        );
        let s1 = &merged.lines[0].stations[0];
        assert_eq!(s1.hourly, [(0, 5), (3_600_000, 5)]);
        assert_eq!(
            (merged.latest_hour, s1.entries_this_hour),
            (Some(3_600_000), 5)
        );
    }

    #[test]
    fn out_of_service_trains_and_unknown_stations_are_not_placed() {
        let status = worker(
            vec![
                seen("BL001", 40_001, "a", train_status::OUT_OF_SERVICE, 1),
                seen("BL002", 40_002, "a", train_status::BROKEN_DOWN, 1),
                // Its station row has not arrived: kept, not shown.
                seen("BL003", 40_999, "b", train_status::IN_SERVICE, 1),
            ],
            &[],
        );
        assert_eq!(occupied(&status), [(40_002, "a", "BL002".into())]);
        assert_eq!(status.lines[0].trains.len(), 3);
    }
}

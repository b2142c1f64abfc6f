//! In-memory inputs for the criterion benches: a status with every station of the built-in
//! dataset (trains at most platforms, weather, counts), the turnstile table as the API returns
//! it, and sample wire records.

use cta_stream::stream::Status;
use cta_stream::transit::lines::Line;
use cta_stream::transit::models::{
    train_status, Arrival, TrainSighting, TurnstileEntry, TurnstileSummary, WeatherReading,
    WeatherStatus,
};
use cta_stream::transit::queries::{LineStatus, StationStatus, TransitStatus};
use cta_stream::transit::stations::Dataset;
use std::collections::BTreeMap;

/// Start of the oldest hourly window of the fixture's sparklines.
const HOUR_0: i64 = 1_795_417_200_000;

fn sighting(line: Line, station_id: i32, direction: &str, n: usize) -> TrainSighting {
    TrainSighting {
        train_id: format!("{}{:03}", line.train_prefix(), n),
        line: line.as_str().to_string(),
        station_id,
        direction: direction.to_string(),
        train_status: if n.is_multiple_of(7) {
            train_status::BROKEN_DOWN
        } else {
            train_status::IN_SERVICE
        }
        .to_string(),
        timestamp: 1_795_500_000_000 + n as i64,
        not_reporting: false,
        station_name: None,
        order: None,
    }
}

/// What the page shows for a busy moment: every station, a train at two thirds of the
/// platforms, ten trains per line, the weather, and a count at every station.
pub fn full_status(dataset: &Dataset) -> TransitStatus {
    let mut total = 0;
    let lines: Vec<LineStatus> = Line::ALL
        .iter()
        .map(|&line| {
            let stations: Vec<StationStatus> = dataset
                .line(line)
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let entries = i64::from(r.avg_weekday);
                    total += entries;
                    StationStatus {
                        station_id: r.station_id,
                        station_name: r.station_name.clone(),
                        order: r.order as i32,
                        direction_a: (i % 3 != 0).then(|| sighting(line, r.station_id, "a", i)),
                        direction_b: (i % 3 != 1).then(|| sighting(line, r.station_id, "b", i + 1)),
                        entries,
                        entries_this_hour: entries / 20,
                        hourly: (0..24)
                            .map(|h| (HOUR_0 + h * 3_600_000, entries / 20 + h))
                            .collect(),
                    }
                })
                .collect();
            let trains = stations
                .iter()
                .take(10)
                .enumerate()
                .map(|(i, s)| sighting(line, s.station_id, "a", i))
                .collect();
            LineStatus {
                line,
                title: line.title().to_string(),
                color: line.color().to_string(),
                stations,
                trains,
            }
        })
        .collect();
    TransitStatus {
        weather: Some(WeatherReading {
            temperature: 41.5,
            status: WeatherStatus::PartlyCloudy,
            timestamp: 1_795_500_000_000,
        }),
        lines,
        total_entries: total,
        latest_hour: Some(HOUR_0 + 23 * 3_600_000),
        worker: Status::default().snapshot(),
    }
}

/// The turnstile table as `GET /api/turnstile` returns it: one row per station id.
pub fn turnstile_rows(dataset: &Dataset) -> Vec<TurnstileSummary> {
    let mut by_station: BTreeMap<i32, i64> = BTreeMap::new();
    for r in dataset.rows() {
        *by_station.entry(r.station_id).or_default() += i64::from(r.avg_weekday) * 30;
    }
    by_station
        .into_iter()
        .map(|(station_id, count)| TurnstileSummary { station_id, count })
        .collect()
}

pub fn sample_arrival() -> Arrival {
    Arrival {
        station_id: 40380,
        train_id: "BL007".into(),
        direction: "a".into(),
        line: "blue".into(),
        train_status: train_status::IN_SERVICE.into(),
        prev_station_id: Some(40370),
        prev_direction: Some("a".into()),
    }
}

pub fn sample_turnstile_entry() -> TurnstileEntry {
    TurnstileEntry {
        station_id: 40380,
        station_name: "Clark/Lake".into(),
        line: "blue".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_status_has_every_station_once() {
        let ds = Dataset::builtin();
        let s = full_status(&ds);
        let n: usize = s.lines.iter().map(|l| l.stations.len()).sum();
        assert_eq!(n, ds.rows().len());
        let want: i64 = ds.rows().iter().map(|r| i64::from(r.avg_weekday)).sum();
        assert_eq!(s.total_entries, want);
        let ids: std::collections::BTreeSet<i32> = ds.rows().iter().map(|r| r.station_id).collect();
        assert_eq!(turnstile_rows(&ds).len(), ids.len());
    }
}

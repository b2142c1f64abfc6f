//! Station rows, arrivals and their join with the stations.

use super::*;

#[test]
fn station_rows_become_stations_of_our_lines_only() {
    let mut f = fixture();
    let rows = [
        station_row(40_380, "Clark/Lake", [false, true, false]),
        station_row(41_450, "Chicago", [true, false, false]),
        // A Brown Line stop: none of the three lines, so not kept.
        station_row(41_500, "Montrose", [false, false, false]),
    ];
    for row in &rows {
        let record = TestRecord::new(topics::STATIONS).json(row);
        f.driver.pipe(record).unwrap();
    }
    let stations: Vec<(StationKey, Station)> = f
        .tables
        .stations
        .items()
        .unwrap()
        .into_iter()
        .map(|(_, k, v)| (k, v))
        .collect();
    let station = |line: &str, id: i32, name: &str| {
        let key = StationKey {
            line: line.into(),
            station_id: id,
        };
        let value = Station {
            station_id: id,
            station_name: name.into(),
            order: 3,
            line: line.into(),
        };
        (key, value)
    };
    let want = vec![
        station("blue", 40_380, "Clark/Lake"),
        station("red", 41_450, "Chicago"),
    ];
    assert_eq!(stations, want);
}

#[test]
fn arrivals_keep_each_trains_latest_sighting() {
    let mut f = fixture();
    f.arrival("T1", 41_450, "a", START_MS);
    f.arrival("T2", 41_450, "b", START_MS + MIN);
    f.arrival("T1", 40_330, "a", START_MS + 2 * MIN);
    let at = |f: &Fixture, train: &str| {
        let seen = f.tables.trains.get_all(&train.to_string()).unwrap();
        seen.into_iter()
            .map(|s| (s.station_id, s.direction, s.timestamp))
            .collect::<Vec<_>>()
    };
    // Keyed by train: T1's second arrival replaces its first, nothing stays behind at 41450 a.
    assert_eq!(
        at(&f, "T1"),
        vec![(40_330, "a".to_string(), START_MS + 2 * MIN)]
    );
    assert_eq!(
        at(&f, "T2"),
        vec![(41_450, "b".to_string(), START_MS + MIN)]
    );
    assert!(at(&f, "T3").is_empty());
    let checks = &f.tables.arrival_checks;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    // Three arrivals without prev_*; two of them the first sighting of their train.
    assert_eq!(load(&checks.without_previous), 3);
    assert_eq!(load(&checks.first_seen), 2);
}

#[test]
fn arrivals_carry_their_stations_name_once_the_row_is_committed() {
    let mut f = fixture();
    let sighting = |f: &Fixture, train: &str| {
        let seen = f.tables.trains.get_all(&train.to_string()).unwrap();
        let s = seen.into_iter().next().unwrap();
        (s.station_name, s.order)
    };
    // An arrival before any station row: nothing to join.
    f.arrival("T1", 41_450, "a", START_MS);
    assert_eq!(sighting(&f, "T1"), (None, None));
    let row = station_row(41_450, "Chicago", [true, false, false]);
    f.driver
        .pipe(TestRecord::new(topics::STATIONS).json(&row))
        .unwrap();
    // The row is in the stations table, not yet in the copy the join reads (a global table
    // applies committed checkpoints only).
    f.arrival("T2", 41_450, "b", START_MS + MIN);
    assert_eq!(sighting(&f, "T2"), (None, None));
    f.driver.checkpoint().unwrap();
    f.arrival("T2", 41_450, "b", START_MS + 2 * MIN);
    assert_eq!(sighting(&f, "T2"), (Some("Chicago".to_string()), Some(3)));
    // An earlier sighting keeps what it was joined with; a station the table lacks joins
    // nothing (40_330 is not among the rows).
    assert_eq!(sighting(&f, "T1"), (None, None));
    f.arrival("T1", 40_330, "a", START_MS + 3 * MIN);
    assert_eq!(sighting(&f, "T1"), (None, None));
    let unknown = &f.tables.arrival_checks.station_unknown;
    assert_eq!(unknown.load(std::sync::atomic::Ordering::Relaxed), 3);
}

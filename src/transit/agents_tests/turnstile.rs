//! Turnstile entries: counts, windows, crashes, the original project's keys.

use super::*;

#[test]
fn turnstile_entries_count_per_station_hour_and_recent_window() {
    let mut f = fixture();
    let clark = 40_380;
    for minute in [10, 50, 61, 62, 70] {
        f.turnstile(clark, START_MS + minute * MIN);
    }
    f.turnstile(41_450, START_MS + 70 * MIN);
    // Minute 40 after stream time 70: the first hour closed at 60 + 5 minutes' grace.
    f.turnstile(clark, START_MS + 40 * MIN);
    let counts = f.tables.turnstile.native().unwrap();
    let total = |id: i32| {
        counts
            .get_all(&id)
            .unwrap()
            .iter()
            .map(|s| s.count)
            .sum::<i64>()
    };
    assert_eq!(
        (total(clark), total(41_450)),
        (6, 1),
        "the total counts late entries too"
    );
    let hourly = &f.tables.turnstile_hourly;
    assert_eq!(hourly.get(&clark, START_MS).unwrap(), Some(2));
    assert_eq!(hourly.get(&clark, START_MS + 60 * MIN).unwrap(), Some(3));
    assert!(hourly.late_records() >= 1);
    // Recent: 15-minute windows every 5; windows ending a minute (grace) before stream time
    // go. Left for minute 70: starts 55 {61, 62}, 60 {61, 62, 70}, 65 {70}, 70 {70}.
    let recent = &f.tables.turnstile_recent;
    let left: Vec<(i64, i64)> = recent
        .items()
        .unwrap()
        .into_iter()
        .filter(|(k, _)| k.key == clark)
        .map(|(k, n)| ((k.start - START_MS) / MIN, n))
        .collect();
    assert_eq!(left, vec![(55, 2), (60, 3), (65, 1), (70, 1)]);
}

#[test]
fn a_crash_between_checkpoints_neither_loses_nor_double_counts_entries() {
    let mut f = fixture();
    let clark = 40_380;
    for minute in 0..4 {
        f.turnstile(clark, START_MS + minute * MIN);
    }
    f.driver.checkpoint().unwrap();
    for minute in 4..7 {
        f.turnstile(clark, START_MS + minute * MIN);
    }
    f.driver.crash().unwrap();
    let counts = f.tables.turnstile.native().unwrap();
    let total: i64 = counts
        .get_all(&clark)
        .unwrap()
        .iter()
        .map(|s| s.count)
        .sum();
    assert_eq!(total, 7);
    assert_eq!(
        f.tables.turnstile_hourly.get(&clark, START_MS).unwrap(),
        Some(7)
    );
    f.driver.checkpoint().unwrap();
    let summary = f.driver.produced(topics::TURNSTILE_SUMMARY);
    let last = summary
        .last()
        .unwrap()
        .json_value::<TurnstileSummary>()
        .unwrap();
    assert_eq!(last.count, 7);
}

/// A turnstile value as the original CTA project's producers register it: `station_id` is a
/// string there.
#[derive(Serialize)]
struct OriginalEntry {
    station_id: String,
    station_name: String,
    line: String,
}

/// That value schema, written out here (namespace and name as there, three string fields).
const ORIGINAL_VALUE_SCHEMA: &str = r#"{"type":"record","name":"turnstile.value","namespace":"com.udacity",
  "fields":[{"name":"station_id","type":"string"},{"name":"station_name","type":"string"},{"name":"line","type":"string"}]}"#;

#[test]
fn entries_keyed_by_timestamp_as_the_original_producers_write_them_count_exactly_by_station() {
    use crate::stream::table::route::partition_for;
    use std::collections::{BTreeMap, BTreeSet};
    let mut f = fixture_with(TurnstileKeys::Other, &[(topics::TURNSTILE, 5)]);
    let key_schema = SubjectSchema::new(topics::TURNSTILE, true, schemas::ARRIVAL_KEY).unwrap();
    let stations = [40380, 40010, 41420];
    let mut want: BTreeMap<i32, i64> = BTreeMap::new();
    let mut spread: BTreeMap<i32, BTreeSet<i32>> = BTreeMap::new();
    let original = |id: &str| OriginalEntry {
        station_id: id.into(),
        station_name: "Clark/Lake".into(),
        line: "blue".into(),
    };
    for i in 0..150_i64 {
        let id = stations[(i * i % 7) as usize % 3];
        let value = f.avro(
            topics::TURNSTILE,
            ORIGINAL_VALUE_SCHEMA,
            &original(&id.to_string()),
        );
        let ts = START_MS + i * 1_000;
        let key =
            f.rt.block_on(
                f.encoder
                    .encode(&TimestampKey { timestamp: ts }, &key_schema),
            )
            .unwrap();
        spread.entry(id).or_default().insert(partition_for(&key, 5));
        let record = TestRecord::new(topics::TURNSTILE)
            .key(key)
            .value(value)
            .at(ts);
        f.driver.pipe(record).unwrap();
        *want.entry(id).or_default() += 1;
    }
    // A value whose station id is no number goes to the dead letters with the reason.
    let bad = f.avro(topics::TURNSTILE, ORIGINAL_VALUE_SCHEMA, &original("Clark"));
    f.driver
        .pipe(TestRecord::new(topics::TURNSTILE).key("k").value(bad))
        .unwrap();
    assert!(spread.values().all(|ps| ps.len() > 1), "{spread:?}");
    let got: BTreeMap<i32, i64> = f
        .tables
        .turnstile_all()
        .unwrap()
        .into_iter()
        .map(|s| (s.station_id, s.count))
        .collect();
    assert_eq!(got, want);
    // Each station's count is whole in the one partition its id routes to.
    let table = f.tables.turnstile.native().unwrap();
    for (id, n) in &want {
        let copies = table.entries_of(id).unwrap();
        let p = partition_for(id.to_string().as_bytes(), 5);
        assert_eq!(copies.len(), 1, "{id}: {copies:?}");
        assert_eq!((copies[0].0, copies[0].1.count), (p, *n));
    }
    let hourly: i64 = f
        .tables
        .turnstile_windows(crate::transit::queries::Window::Hourly, None)
        .unwrap()
        .iter()
        .map(|w| w.count)
        .sum();
    assert_eq!(hourly, want.values().sum::<i64>());
    let errors = f.dead_letter_errors(topics::TURNSTILE);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains("'Clark' is not a station id"),
        "{errors:?}"
    );
}

/// An entry under a schema whose `line` is no string, or that has no `station_name`: a data
/// error, dead-lettered and counted nowhere (the counting keeps only the station id, but
/// checks the rest of the entry as a whole decode would).
#[test]
fn entries_without_a_station_name_or_with_a_line_that_is_no_string_are_dead_lettered() {
    let mut f = fixture();
    let clark = 40_380;
    f.turnstile(clark, START_MS);
    let line_int = r#"{"type":"record","name":"turnstile_value","namespace":"com.udacity",
      "fields":[{"name":"station_id","type":"int"},{"name":"station_name","type":"string"},
      {"name":"line","type":"int"}]}"#;
    let no_name = r#"{"type":"record","name":"turnstile_value","namespace":"com.udacity",
      "fields":[{"name":"station_id","type":"int"},{"name":"line","type":"string"}]}"#;
    #[derive(Serialize)]
    struct LineInt {
        station_id: i32,
        station_name: String,
        line: i32,
    }
    #[derive(Serialize)]
    struct NoName {
        station_id: i32,
        line: String,
    }
    // Registered under subjects of their own (the turnstile subject only takes compatible
    // changes); the decoder finds a schema by the id in the frame.
    let bad = [
        f.avro(
            "turnstile-line-int",
            line_int,
            &LineInt {
                station_id: clark,
                station_name: "Clark/Lake".into(),
                line: 3,
            },
        ),
        f.avro(
            "turnstile-no-name",
            no_name,
            &NoName {
                station_id: clark,
                line: "blue".into(),
            },
        ),
    ];
    for value in bad {
        f.driver
            .pipe(TestRecord::new(topics::TURNSTILE).key("k").value(value))
            .unwrap();
    }
    f.turnstile(clark, START_MS + MIN);
    let counts = f.tables.turnstile_all().unwrap();
    assert_eq!(
        counts
            .iter()
            .map(|s| (s.station_id, s.count))
            .collect::<Vec<_>>(),
        vec![(clark, 2)]
    );
    assert_eq!(
        f.tables.turnstile_hourly.get(&clark, START_MS).unwrap(),
        Some(2)
    );
    let errors = f.dead_letter_errors(topics::TURNSTILE);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[1].contains("station_name"), "{errors:?}");
}

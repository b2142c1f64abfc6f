//! The driver's tests of timers and emit-final windows: schedules checked against times
//! computed here, timer writes checkpointed and lost like agent writes, and each closed window
//! emitted once with the count of the records fed for it.

use super::*;
use crate::emit::ClosedWindow;
use crate::timer::{Schedule, Tick};
use crate::{Table, Windows};
use std::collections::BTreeMap;
use std::time::Duration;

const MIN: i64 = 60_000;

/// An app whose timer on `events` counts its ticks per partition in the table `ticks` (key:
/// the partition) and remembers the tick times it saw.
fn ticking(schedule: Schedule) -> (App, Table<i32, Vec<i64>>) {
    let mut app = App::new(TestDriver::config("ticks"));
    let ticks = app.table_on::<i32, Vec<i64>>("ticks", "events");
    let t = ticks.clone();
    app.agent_fn("events", |_| Ok(()));
    app.timer("events", schedule, move |tick: &Tick<'_>| {
        let r = tick.record();
        t.update(r, tick.partition, |v| {
            let mut v = v.unwrap_or_default();
            v.push(tick.time_ms);
            v
        })
    });
    (app, ticks)
}

fn tick_times(t: &Table<i32, Vec<i64>>) -> BTreeMap<i32, Vec<i64>> {
    t.items()
        .unwrap()
        .into_iter()
        .map(|(_, k, v)| (k, v))
        .collect()
}

#[test]
fn wall_clock_timers_fire_every_interval_on_each_owned_partition() {
    let (app, ticks) = ticking(Schedule::WallClock(Duration::from_secs(10)));
    let mut driver = TestDriver::with_partitions(app, &[("events", 2)]).unwrap();
    // Due 10 s after the partitions were first seen (START_MS), then 10 s after each tick.
    let mut clock = START_MS;
    let mut due = START_MS + 10_000;
    let mut want: Vec<i64> = Vec::new();
    for secs in [9, 1, 4, 5, 25, 3, 10] {
        driver.advance_time(Duration::from_secs(secs)).unwrap();
        clock += secs as i64 * 1000;
        if clock >= due {
            want.push(clock);
            due = clock + 10_000;
        }
    }
    assert_eq!(want.len(), 3, "the schedule above ticks at 10, 44 and 57 s");
    let got = tick_times(&ticks);
    assert_eq!(got, BTreeMap::from([(0, want.clone()), (1, want.clone())]));
    // Stream time does not move wall-clock timers.
    driver
        .advance_stream_time("events", START_MS + 600 * MIN)
        .unwrap();
    assert_eq!(tick_times(&ticks)[&0], want);
}

#[test]
fn stream_time_timers_fire_as_event_time_crosses_each_interval() {
    let (app, ticks) = ticking(Schedule::StreamTime(Duration::from_secs(60)));
    let mut driver = TestDriver::with_partitions(app, &[("events", 2)]).unwrap();
    // Wall-clock time alone fires nothing.
    driver.advance_time(Duration::from_secs(3600)).unwrap();
    assert!(tick_times(&ticks).is_empty());
    // Event times (s after START_MS, which is a whole minute), each into partition 0 or 1.
    let feed = [
        (5, 0),
        (30, 1),
        (59, 0),
        (61, 1),
        (20, 0),
        (185, 0),
        (190, 1),
        (240, 1),
    ];
    let mut want: Vec<i64> = Vec::new();
    let mut stream_time: Option<i64> = None;
    for (s, p) in feed {
        let t = START_MS + s * 1000;
        driver
            .pipe(TestRecord::new("events").partition(p).at(t))
            .unwrap();
        // Stream time is the latest event time on the topic; a tick at the first record and
        // whenever it enters a new minute.
        let before = stream_time;
        let now = before.map_or(t, |b: i64| b.max(t));
        stream_time = Some(now);
        if before.is_none_or(|b| b.div_euclid(MIN) < now.div_euclid(MIN)) {
            want.push(now);
        }
    }
    assert_eq!(want.len(), 4, "0:05, 1:01, 3:05, 4:00");
    assert_eq!(driver.stream_time("events"), stream_time);
    assert_eq!(
        tick_times(&ticks),
        BTreeMap::from([(0, want.clone()), (1, want)])
    );
    driver
        .advance_stream_time("events", START_MS + 5 * MIN)
        .unwrap();
    assert_eq!(tick_times(&ticks)[&1].last(), Some(&(START_MS + 5 * MIN)));
}

#[test]
fn timer_writes_are_checkpointed_like_agent_writes_and_lost_with_the_cache() {
    let (mut app, ticks) = ticking(Schedule::WallClock(Duration::from_secs(10)));
    app.config.commit_interval = Duration::from_secs(3600);
    app.config.commit_every = 1_000_000;
    let mut driver = TestDriver::new(app).unwrap();
    driver.pipe(TestRecord::new("events").key("x")).unwrap();
    driver.advance_time(Duration::from_secs(10)).unwrap();
    let first = vec![START_MS + 10_000];
    assert_eq!(tick_times(&ticks)[&0], first);
    assert!(driver.changelog("ticks").is_empty(), "not yet checkpointed");
    driver.checkpoint().unwrap();
    let log = driver.changelog("ticks");
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].json_value::<Vec<i64>>(), Some(first.clone()));
    // The tick's record stands at the next offset (1): the changelog names it as the source.
    assert_eq!(log[0].header(names::HEADER_SOURCE_OFFSET), Some("1"));
    // A second tick, not checkpointed, is lost by a crash; the first is kept.
    driver.advance_time(Duration::from_secs(10)).unwrap();
    assert_eq!(tick_times(&ticks)[&0].len(), 2);
    driver.crash().unwrap();
    assert_eq!(tick_times(&ticks)[&0], first);
    // After the restart the schedule starts over from the driver's clock.
    driver.advance_time(Duration::from_secs(9)).unwrap();
    assert_eq!(tick_times(&ticks)[&0], first);
    driver.advance_time(Duration::from_secs(1)).unwrap();
    assert_eq!(tick_times(&ticks)[&0].len(), 2);
}

/// A windowed count per key (tumbling hours, 5 minutes grace) whose closed windows go to
/// `hourly-final` as `key` → `[start, end, count]`.
fn hourly_final(config: AppConfig) -> App {
    let mut app = App::new(config);
    let windows = Windows::tumbling(Duration::from_secs(3600))
        .grace(Duration::from_secs(300))
        .retention(Duration::from_secs(24 * 3600));
    let hourly = app.windowed_table_on::<String, i64>("hourly", "clicks", windows);
    let t = hourly.clone();
    app.agent_fn("clicks", move |r| {
        t.update(r, r.key_str()?.to_string(), |n| n.unwrap_or(0) + 1)
    });
    app.emit_final(
        &hourly,
        "hourly-final",
        |w: &ClosedWindow<'_, String, i64>| {
            (
                w.key.as_bytes().to_vec(),
                crate::codec::json::encode(&(w.start, w.end, *w.value)),
            )
        },
    )
    .unwrap();
    assert!(
        app.emit_final(&hourly, "elsewhere", |_| (Vec::new(), Vec::new()))
            .is_err(),
        "one emit topic per table"
    );
    app
}

/// Clicks over six hours: (key, minutes after START_MS), in time order except within the
/// grace period, so none is late.
fn clicks() -> Vec<(&'static str, i64)> {
    let mut out = Vec::new();
    for m in (0..360).step_by(7) {
        out.push((["a", "b", "c"][(m / 7 % 3) as usize], m));
        if m % 60 == 1 {
            // Just after an hour's end, one more for the previous hour (within its grace).
            out.push(("a", m - 3));
        }
    }
    out
}

/// What the output topic holds: (key, start) → counts emitted, in output order.
fn emitted(driver: &TestDriver) -> Vec<(String, i64, i64, i64)> {
    driver
        .produced("hourly-final")
        .iter()
        .map(|o| {
            let (start, end, n) = o.json_value::<(i64, i64, i64)>().unwrap();
            (
                String::from_utf8(o.key.clone().unwrap()).unwrap(),
                start,
                end,
                n,
            )
        })
        .collect()
}

/// The windows closed at stream time `last` (end + grace at or before it) and the records
/// fed for each: computed from the input alone.
fn expected_final(feed: &[(&str, i64)], last: i64) -> BTreeMap<(String, i64), i64> {
    let mut out = BTreeMap::new();
    for (k, m) in feed {
        let start = START_MS + m.div_euclid(60) * 60 * MIN;
        if start + 65 * MIN <= last {
            *out.entry((k.to_string(), start)).or_insert(0) += 1;
        }
    }
    out
}

fn pipe_clicks(driver: &mut TestDriver, feed: &[(&str, i64)]) {
    for (k, m) in feed {
        driver
            .pipe(TestRecord::new("clicks").key(k).at(START_MS + m * MIN))
            .unwrap();
    }
}

#[test]
fn closed_windows_are_emitted_once_with_their_final_counts() {
    let mut driver =
        TestDriver::with_partitions(hourly_final(TestDriver::config("f")), &[("clicks", 3)])
            .unwrap();
    let feed = clicks();
    pipe_clicks(&mut driver, &feed);
    driver.checkpoint().unwrap();
    let out = emitted(&driver);
    let mut got: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for (k, start, end, n) in &out {
        assert_eq!(end - start, 60 * MIN);
        assert!(
            got.insert((k.clone(), *start), *n).is_none(),
            "{k} {start} twice"
        );
    }
    // Each key lives in one partition, whose stream time is its own latest record.
    let mut want = BTreeMap::new();
    for key in ["a", "b", "c"] {
        let p = partition_for(key.as_bytes(), 3);
        let last = feed
            .iter()
            .filter(|(k, _)| partition_for(k.as_bytes(), 3) == p)
            .map(|(_, m)| START_MS + m * MIN)
            .max()
            .unwrap();
        let mine: Vec<_> = feed.iter().filter(|(k, _)| *k == key).copied().collect();
        want.extend(expected_final(&mine, last));
    }
    assert!(want.len() >= 12, "several hours of three keys closed");
    assert_eq!(got, want);
    // Emitted to the key's partition, oldest window first within a partition.
    for o in driver.produced("hourly-final") {
        let key = o.key.as_deref().unwrap();
        assert_eq!(o.partition, partition_for(key, 3));
    }
    // Nothing more is emitted until stream time closes another window.
    driver.checkpoint().unwrap();
    assert_eq!(emitted(&driver).len(), out.len());
}

#[test]
fn a_crash_before_the_checkpoint_emits_the_lost_windows_again_and_no_other() {
    let mut config = TestDriver::config("f");
    config.commit_every = 1_000_000;
    config.commit_interval = Duration::from_secs(3600);
    let mut driver = TestDriver::new(hourly_final(config)).unwrap();
    let feed = clicks();
    let (early, late) = feed.split_at(feed.len() / 2);
    pipe_clicks(&mut driver, early);
    driver.checkpoint().unwrap();
    let after_first = emitted(&driver).len();
    assert!(after_first > 0);
    // The second half closes more windows; the crash loses them before any checkpoint.
    pipe_clicks(&mut driver, late);
    assert_eq!(
        emitted(&driver).len(),
        after_first,
        "sent by a checkpoint only"
    );
    driver.crash().unwrap();
    driver.checkpoint().unwrap();
    let out = emitted(&driver);
    let mut got: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for (k, start, _, n) in out {
        assert!(
            got.insert((k.clone(), start), n).is_none(),
            "{k} {start} twice"
        );
    }
    let last = feed.iter().map(|(_, m)| START_MS + m * MIN).max().unwrap();
    assert_eq!(got, expected_final(&feed, last));
}

//! The driver's own tests: a word count and a windowed count driven through it, checked
//! against counts computed here from the input.

use super::*;
use crate::names::HEADER_SOURCE_OFFSET;
use crate::{Table, Windows};
use std::collections::BTreeMap;
use std::time::Duration;

const WORDS: &str = "a b a c b a d a";

/// A word-count app: (app, counts table).
fn word_count(config: AppConfig) -> (App, Table<String, u64>) {
    let mut app = App::new(config);
    let counts = app.table_on::<String, u64>("counts", "words");
    let t = counts.clone();
    app.agent_fn("words", move |r| {
        t.update(r, r.key_str()?.to_string(), |n| n.unwrap_or(0) + 1)
    });
    (app, counts)
}

fn expected_counts(words: &[&str]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for w in words {
        *m.entry(w.to_string()).or_default() += 1;
    }
    m
}

fn table_counts(t: &Table<String, u64>) -> BTreeMap<String, u64> {
    t.items()
        .unwrap()
        .into_iter()
        .map(|(_, k, v)| (k, v))
        .collect()
}

fn pipe_words(driver: &mut TestDriver, words: &[&str]) {
    for w in words {
        driver
            .pipe(TestRecord::new("words").key(w).value(w))
            .unwrap();
    }
}

#[test]
fn counts_land_in_the_key_partition_and_read_back_by_key() {
    let (app, counts) = word_count(TestDriver::config("wc"));
    let mut driver = TestDriver::with_partitions(app, &[("words", 4)]).unwrap();
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    pipe_words(&mut driver, &words);
    let want = expected_counts(&words);
    assert_eq!(table_counts(&counts), want);
    for (word, n) in &want {
        // Kafka's partitioner on the raw key bytes, computed apart from the table.
        let p = partition_for(word.as_bytes(), 4);
        assert_eq!(counts.partition_of(word), Some(p));
        let in_p = counts.partition_items(p).unwrap();
        assert!(
            in_p.contains(&(word.clone(), *n)),
            "{word} not in partition {p}"
        );
        assert_eq!(counts.value(word).unwrap(), Some(*n));
        let fed = words
            .iter()
            .filter(|w| partition_for(w.as_bytes(), 4) == p)
            .count();
        assert_eq!(driver.position("words", p), Some(fed as i64));
    }
    assert_eq!(counts.value(&"zebra".to_string()).unwrap(), None);
}

#[test]
fn checkpoints_write_changelogs_and_a_crash_keeps_exactly_the_committed_state() {
    let mut config = TestDriver::config("wc");
    config.commit_every = 1_000;
    let (app, counts) = word_count(config);
    let mut driver = TestDriver::new(app).unwrap();
    pipe_words(&mut driver, &["a", "b", "a"]);
    assert!(
        driver.changelog("counts").is_empty(),
        "nothing flushed before a checkpoint"
    );
    driver.checkpoint().unwrap();
    // Latest value per changed key, in first-change order, each naming the source offset 3.
    let log: Vec<(String, u64, &str)> = driver
        .changelog("counts")
        .iter()
        .map(|o| {
            let k = o.json_key::<String>().unwrap();
            (
                k,
                o.json_value::<u64>().unwrap(),
                o.header(HEADER_SOURCE_OFFSET).unwrap(),
            )
        })
        .collect();
    assert_eq!(log, vec![("a".into(), 2, "3"), ("b".into(), 1, "3")]);
    // Two more, not committed; the crash loses the cache and re-reads them from offset 3.
    pipe_words(&mut driver, &["c", "a"]);
    driver.crash().unwrap();
    assert_eq!(
        table_counts(&counts),
        expected_counts(&["a", "b", "a", "c", "a"])
    );
    assert_eq!(driver.position("words", 0), Some(5));
    driver.checkpoint().unwrap();
    driver.crash().unwrap();
    assert_eq!(
        table_counts(&counts),
        expected_counts(&["a", "b", "a", "c", "a"])
    );
    assert_eq!(
        driver.changelog("counts").len(),
        4,
        "a=2, b=1, then c=1, a=3"
    );
}

#[test]
fn time_and_record_counts_trigger_checkpoints_like_the_poll_loop() {
    let mut config = TestDriver::config("wc");
    config.commit_every = 3;
    config.commit_interval = Duration::from_secs(10);
    let (app, _counts) = word_count(config);
    let mut driver = TestDriver::new(app).unwrap();
    pipe_words(&mut driver, &["a", "b"]);
    assert!(driver.changelog("counts").is_empty());
    pipe_words(&mut driver, &["c"]);
    assert_eq!(
        driver.changelog("counts").len(),
        3,
        "the third record checkpoints"
    );
    pipe_words(&mut driver, &["d"]);
    driver.advance_time(Duration::from_secs(9)).unwrap();
    assert_eq!(driver.changelog("counts").len(), 3);
    driver.advance_time(Duration::from_secs(1)).unwrap();
    assert_eq!(
        driver.changelog("counts").len(),
        4,
        "10 s after the last checkpoint"
    );
    assert_eq!(driver.now_ms(), START_MS + 10_000);
}

#[test]
fn bad_records_are_dead_lettered_with_their_source() {
    let (app, counts) = word_count(TestDriver::config("wc"));
    let mut driver = TestDriver::new(app).unwrap();
    driver
        .pipe(TestRecord::new("words").value("no key"))
        .unwrap();
    driver
        .pipe(TestRecord::new("words").key([0xff, 0xfe]))
        .unwrap();
    driver.pipe(TestRecord::new("words").key("ok")).unwrap();
    assert_eq!(driver.dead_lettered(), 2);
    assert!(
        driver.dead_letters("words").is_empty(),
        "flushed at the checkpoint"
    );
    driver.checkpoint().unwrap();
    let dlq = driver.dead_letters("words");
    assert_eq!(dlq.len(), 2);
    assert_eq!(dlq[0].value.as_deref(), Some(&b"no key"[..]));
    assert_eq!(dlq[1].header(names::HEADER_DLQ_OFFSET), Some("1"));
    assert_eq!(dlq[1].header(names::HEADER_DLQ_TOPIC), Some("words"));
    assert!(dlq[1]
        .header(names::HEADER_DLQ_ERROR)
        .unwrap()
        .contains("UTF-8"));
    assert_eq!(table_counts(&counts), expected_counts(&["ok"]));
}

#[test]
fn windowed_counts_follow_event_time_and_drop_late_records() {
    let mut app = App::new(TestDriver::config("clicks"));
    let minute = Duration::from_secs(60);
    let windows = Windows::tumbling(minute)
        .grace(Duration::from_secs(5))
        .retention(minute * 60);
    let per_minute = app.windowed_table_on::<String, u64>("per-minute", "clicks", windows);
    let t = per_minute.clone();
    app.agent_fn("clicks", move |r| {
        t.update(r, r.key_str()?.to_string(), |n| n.unwrap_or(0) + 1)
    });
    let mut driver = TestDriver::new(app).unwrap();
    let at = |s: i64| START_MS + s * 1000;
    for s in [1, 30, 59, 61, 64] {
        driver
            .pipe(TestRecord::new("clicks").key("u").at(at(s)))
            .unwrap();
    }
    // Stream time 64 s: window [0, 60) is open until 65 s, so a record at 10 s still counts.
    driver
        .pipe(TestRecord::new("clicks").key("u").at(at(10)))
        .unwrap();
    driver
        .pipe(TestRecord::new("clicks").key("u").at(at(70)))
        .unwrap();
    // Stream time 70 s: [0, 60) closed; this one is late.
    driver
        .pipe(TestRecord::new("clicks").key("u").at(at(20)))
        .unwrap();
    // Records without a timestamp take the driver's clock.
    driver.advance_time(minute * 3).unwrap();
    driver.pipe(TestRecord::new("clicks").key("u")).unwrap();
    let u = "u".to_string();
    assert_eq!(per_minute.get(&u, at(0)).unwrap(), Some(4));
    assert_eq!(per_minute.get(&u, at(60)).unwrap(), Some(3));
    assert_eq!(per_minute.get(&u, at(180)).unwrap(), Some(1));
    assert_eq!(per_minute.late_records(), 1);
    driver.checkpoint().unwrap();
    driver.crash().unwrap();
    assert_eq!(per_minute.get(&u, at(0)).unwrap(), Some(4));
    assert_eq!(per_minute.items().unwrap().len(), 3);
}

#[test]
fn a_global_table_holds_every_partition_once_checkpointed_and_keeps_it_across_a_crash() {
    let (mut app, counts) = word_count(TestDriver::config("global"));
    let global = app.global_table(&counts);
    let mut driver = TestDriver::with_partitions(app, &[("words", 3)]).unwrap();
    let words: Vec<&str> = WORDS.split(' ').collect();
    pipe_words(&mut driver, &words);
    // Followed from the changelog: nothing before a checkpoint, everything after.
    assert!(global.items().unwrap().is_empty());
    driver.checkpoint().unwrap();
    let expected = expected_counts(&words);
    let held: BTreeMap<String, u64> = global
        .items()
        .unwrap()
        .into_iter()
        .map(|(_, k, v)| (k, v))
        .collect();
    assert_eq!(held, expected);
    assert_eq!(global.partitions(), vec![0, 1, 2]);
    assert_eq!(global.value(&"a".to_string()).unwrap(), Some(4));
    // Uncommitted work is not shown, and a crash keeps what was followed.
    pipe_words(&mut driver, &["a", "e"]);
    driver.crash().unwrap();
    assert_eq!(global.value(&"a".to_string()).unwrap(), Some(4));
    assert_eq!(global.value(&"e".to_string()).unwrap(), None);
    driver.checkpoint().unwrap();
    assert_eq!(global.value(&"a".to_string()).unwrap(), Some(5));
    assert_eq!(global.value(&"e".to_string()).unwrap(), Some(1));
}

/// What each visit saw: (id, name), in order.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(i32, Option<String>)>>>;

/// Visits of ids joined with a global table of names fed by `name-rows` (key: id): what each
/// visit saw, in order.
fn visits_joined_with_names() -> (App, Seen) {
    let mut app = App::new(TestDriver::config("join"));
    let names = app.table_on::<i32, String>("names", "name-rows");
    let rows = names.clone();
    app.agent_fn("name-rows", move |r| {
        let id: i32 = r.key_str()?.parse().unwrap_or(-1);
        rows.put(r, id, r.value_str()?.to_string())
    });
    let everywhere = app.global_table(&names);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    app.join(
        "visits",
        &everywhere,
        |r| Ok(r.key_str()?.parse::<i32>().unwrap_or(-1)),
        move |r, name: Option<String>| {
            let id = r.key_str()?.parse().unwrap_or(-1);
            log.lock().unwrap().push((id, name));
            Ok(())
        },
    );
    (app, seen)
}

#[test]
fn a_join_with_a_global_table_sees_committed_rows_and_none_before_them() {
    let (app, seen) = visits_joined_with_names();
    let mut driver = TestDriver::with_partitions(app, &[("name-rows", 3), ("visits", 2)]).unwrap();
    let visit = |id: &str| TestRecord::new("visits").key(id).value("");
    // Before its row: None, and not joined again when the row comes.
    driver.pipe(visit("7")).unwrap();
    driver
        .pipe(TestRecord::new("name-rows").key("7").value("Clark/Lake"))
        .unwrap();
    // The row is not committed yet: the global copy does not have it.
    driver.pipe(visit("7")).unwrap();
    driver.checkpoint().unwrap();
    driver.pipe(visit("7")).unwrap();
    driver.pipe(visit("8")).unwrap();
    let clark = Some("Clark/Lake".to_string());
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(7, None), (7, None), (7, clark), (8, None)]
    );
}

#[test]
fn a_join_with_a_co_partitioned_table_sees_the_record_partition_s_row_at_once() {
    let mut app = App::new(TestDriver::config("join-local"));
    let last = app.table_on::<String, String>("last", "events");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    // Each event sees the previous event of its key, then becomes the row.
    let writer = last.clone();
    app.join(
        "events",
        &last,
        |r| Ok(r.key_str()?.to_string()),
        move |r, prev: Option<String>| {
            log.lock().unwrap().push(prev);
            writer.put(r, r.key_str()?.to_string(), r.value_str()?.to_string())
        },
    );
    let mut driver = TestDriver::with_partitions(app, &[("events", 4)]).unwrap();
    for (k, v) in [("a", "1"), ("b", "2"), ("a", "3"), ("a", "4")] {
        driver
            .pipe(TestRecord::new("events").key(k).value(v))
            .unwrap();
    }
    let s = |v: &str| Some(v.to_string());
    assert_eq!(*seen.lock().unwrap(), vec![None, None, s("1"), s("3")]);
}

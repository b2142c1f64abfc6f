//! `group_by` on the driver: records keyed by one thing, counted by another through the
//! repartition topic; checked against tallies computed here from the input.

use super::*;
use crate::repartition::Repartition;
use crate::Table;

/// Clicks keyed by event id with the user as value, counted per user: (app, repartition,
/// counts).
fn clicks_per_user(
    config: AppConfig,
    partitions: Option<i32>,
) -> (App, Repartition, Table<String, u64>) {
    let mut app = App::new(config);
    let key = |r: &Record<'_>| -> Result<Option<Vec<u8>>> {
        let user = r.value_str()?;
        Ok((!user.is_empty()).then(|| user.as_bytes().to_vec()))
    };
    let by_user = match partitions {
        Some(n) => app.group_by_into("by-user", "clicks", n, key),
        None => app.group_by("by-user", "clicks", key),
    };
    let counts = app.table_on::<String, u64>("per-user", by_user.topic());
    let t = counts.clone();
    app.agent(
        by_user.agent_fn(move |r| t.update(r, r.key_str()?.to_string(), |n| n.unwrap_or(0) + 1)),
    );
    (app, by_user, counts)
}

/// `n` clicks: event ids as keys (so any partition), users cycling through five.
fn clicks(from: usize, n: usize) -> Vec<(String, String)> {
    (from..from + n)
        .map(|i| (format!("event-{i}"), format!("user-{}", (i * 7) % 5)))
        .collect()
}

fn tally(clicks: &[(String, String)]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for (_, user) in clicks {
        *m.entry(user.clone()).or_default() += 1;
    }
    m
}

fn pipe_clicks(driver: &mut TestDriver, clicks: &[(String, String)]) {
    for (id, user) in clicks {
        driver
            .pipe(TestRecord::new("clicks").key(id).value(user))
            .unwrap();
    }
}

fn counts_of(t: &Table<String, u64>) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for (_, k, v) in t.items().unwrap() {
        *m.entry(k).or_default() += v;
    }
    m
}

#[test]
fn records_keyed_otherwise_are_counted_exactly_in_their_new_key_partition() {
    let (app, by_user, counts) = clicks_per_user(TestDriver::config("rk"), None);
    assert_eq!(by_user.topic(), "rk-by-user-repartition");
    let mut driver = TestDriver::with_partitions(app, &[("clicks", 3)]).unwrap();
    let input = clicks(0, 60);
    pipe_clicks(&mut driver, &input);
    // Each user's clicks were spread over the source partitions...
    let spread = (0..3)
        .filter(|p| !driver.records("clicks", *p).is_empty())
        .count();
    assert_eq!(spread, 3);
    // ... and each user is in one repartition partition (3, as the source), the one Kafka's
    // partitioner gives its name, holding its whole count.
    let want = tally(&input);
    assert_eq!(counts_of(&counts), want);
    for (user, n) in &want {
        let p = partition_for(user.as_bytes(), 3);
        assert_eq!(
            counts
                .partition_items(p)
                .unwrap()
                .iter()
                .find(|(k, _)| k == user)
                .map(|e| e.1),
            Some(*n)
        );
        assert_eq!(counts.value(user).unwrap(), Some(*n));
        let routed = driver.records(by_user.topic(), p);
        assert!(routed
            .iter()
            .all(|r| partition_for(r.key.as_deref().unwrap(), 3) == p));
    }
    let total: usize = (0..3)
        .map(|p| driver.records(by_user.topic(), p).len())
        .sum();
    assert_eq!(total, input.len(), "one repartition record per click");
    assert_eq!(by_user.duplicates_skipped(), 0);
}

#[test]
fn an_upstream_crash_before_its_commit_produces_again_and_nothing_counts_twice() {
    let mut config = TestDriver::config("rk");
    config.commit_every = 1_000_000;
    let (app, by_user, counts) = clicks_per_user(config, None);
    let mut driver = TestDriver::with_partitions(app, &[("clicks", 2)]).unwrap();
    let first = clicks(0, 40);
    pipe_clicks(&mut driver, &first);
    driver.checkpoint().unwrap();
    let second = clicks(40, 25);
    pipe_clicks(&mut driver, &second);
    let repartitioned =
        |d: &TestDriver| -> usize { (0..2).map(|p| d.records(by_user.topic(), p).len()).sum() };
    assert_eq!(repartitioned(&driver), 65);
    // The 25 uncommitted clicks are re-keyed and produced again by the restarted upstream.
    driver.crash().unwrap();
    assert_eq!(repartitioned(&driver), 90);
    assert_eq!(by_user.duplicates_skipped(), 25);
    let all: Vec<_> = first.iter().chain(&second).cloned().collect();
    assert_eq!(counts_of(&counts), tally(&all));
    // Once more after a checkpoint: nothing is re-produced, nothing changes.
    driver.checkpoint().unwrap();
    driver.crash().unwrap();
    assert_eq!(repartitioned(&driver), 90);
    assert_eq!(counts_of(&counts), tally(&all));
    // The seen-offsets table went to its changelog with the counts.
    let seen = driver.changelog(&names::repartition_seen_table("by-user"));
    assert!(!seen.is_empty());
}

#[test]
fn a_key_function_that_fails_or_finds_no_key_dead_letters_the_record_with_the_reason() {
    let (app, by_user, counts) = clicks_per_user(TestDriver::config("rk"), None);
    let mut driver = TestDriver::new(app).unwrap();
    driver
        .pipe(TestRecord::new("clicks").key("e1").value("user-1"))
        .unwrap();
    driver
        .pipe(TestRecord::new("clicks").key("e2").value(""))
        .unwrap();
    driver
        .pipe(TestRecord::new("clicks").key("e3").value([0xff, 0xfe]))
        .unwrap();
    driver
        .pipe(TestRecord::new("clicks").key("e4").value("user-1"))
        .unwrap();
    driver.checkpoint().unwrap();
    assert_eq!(driver.dead_lettered(), 2);
    let dlq = driver.dead_letters("clicks");
    assert_eq!(dlq.len(), 2);
    assert_eq!(dlq[0].header(names::HEADER_DLQ_OFFSET), Some("1"));
    let reason = dlq[0].header(names::HEADER_DLQ_ERROR).unwrap();
    assert!(
        reason.contains("key function returned none") && reason.contains(by_user.topic()),
        "{reason}"
    );
    assert!(dlq[1]
        .header(names::HEADER_DLQ_ERROR)
        .unwrap()
        .contains("UTF-8"));
    assert_eq!(dlq[1].value.as_deref(), Some(&[0xff, 0xfe][..]));
    assert_eq!(driver.records(by_user.topic(), 0).len(), 2);
    assert_eq!(
        counts_of(&counts),
        BTreeMap::from([("user-1".to_string(), 2)])
    );
}

#[test]
fn a_chosen_partition_count_and_a_foreign_record_on_the_repartition_topic() {
    let (app, by_user, counts) = clicks_per_user(TestDriver::config("rk"), Some(5));
    let mut driver = TestDriver::with_partitions(app, &[("clicks", 2)]).unwrap();
    let input = clicks(0, 30);
    pipe_clicks(&mut driver, &input);
    for (user, n) in tally(&input) {
        let p = partition_for(user.as_bytes(), 5);
        assert!(driver.records(by_user.topic(), p).len() as u64 >= n);
        assert_eq!(counts.value(&user).unwrap(), Some(n));
    }
    // A record written there by something else (no upstream frame) is a data error.
    driver
        .pipe(
            TestRecord::new(by_user.topic())
                .key("user-1")
                .value("plain"),
        )
        .unwrap();
    driver.checkpoint().unwrap();
    let dlq = driver.dead_letters(by_user.topic());
    assert_eq!(dlq.len(), 1);
    assert!(dlq[0]
        .header(names::HEADER_DLQ_ERROR)
        .unwrap()
        .contains("not a repartition record"));
    assert_eq!(counts_of(&counts), tally(&input));
}

//! The driver's tests of session windows: sessions, merges, late records and expiry checked
//! against the event times fed, and the sessions checkpointed and lost like any table write.

use super::*;
use crate::session::{Session, SessionTable, Sessions};
use std::time::Duration;

const MIN: i64 = 60_000;

/// Sessions of 5-minute gaps (grace 1 minute, kept 20 minutes past final) whose value lists
/// the minutes of their records in the order they were added.
fn sessions() -> (TestDriver, SessionTable<String, Vec<i64>>) {
    let mut app = App::new(TestDriver::config("visits"));
    let shape = Sessions::with_gap(Duration::from_secs(300))
        .grace(Duration::from_secs(60))
        .retention(Duration::from_secs(1200));
    let table = app.session_table_on::<String, Vec<i64>>("visits", "clicks", shape);
    let t = table.clone();
    app.agent_fn("clicks", move |r| {
        let minute = (r.timestamp.unwrap_or(START_MS) - START_MS) / MIN;
        let add = |v: Option<Vec<i64>>| {
            let mut v = v.unwrap_or_default();
            v.push(minute);
            v
        };
        t.update(r, r.key_str()?.to_string(), add, |mut a, b| {
            a.extend(b);
            a
        })
    });
    (TestDriver::new(app).unwrap(), table)
}

fn click(driver: &mut TestDriver, user: &str, minute: i64) {
    let record = TestRecord::new("clicks")
        .key(user)
        .at(START_MS + minute * MIN);
    driver.pipe(record).unwrap();
}

fn session(start: i64, end: i64, minutes: &[i64]) -> Session<Vec<i64>> {
    Session {
        start: START_MS + start * MIN,
        end: START_MS + end * MIN,
        value: minutes.to_vec(),
    }
}

#[test]
fn records_a_gap_apart_form_sessions_and_a_record_between_two_merges_them() {
    let (mut driver, table) = sessions();
    // Stream time is the partition's: v's record comes before u's at 12 (after it, a session
    // ending at 1 would be late).
    click(&mut driver, "u", 0);
    click(&mut driver, "v", 1);
    click(&mut driver, "u", 3);
    click(&mut driver, "u", 12);
    // [0, 3] and [12, 12] are 9 minutes apart: two sessions.
    let u = "u".to_string();
    let two = vec![session(0, 3, &[0, 3]), session(12, 12, &[12])];
    assert_eq!(table.sessions(&u).unwrap(), two);
    // Minute 7 is within 5 of both: one session, the older's values first.
    click(&mut driver, "u", 7);
    let merged = session(0, 12, &[0, 3, 12, 7]);
    assert_eq!(table.sessions(&u).unwrap(), vec![merged.clone()]);
    let v = table.sessions(&"v".to_string()).unwrap();
    assert_eq!(v, vec![session(1, 1, &[1])]);
    click(&mut driver, "u", 30);
    // Stream time 30: a record at 22 would make a session ending 8 minutes back, beyond the
    // 1-minute grace: late, dropped.
    click(&mut driver, "u", 22);
    assert_eq!(table.late_records(), 1);
    // At 29 it joins [30, 30] (within the gap) and the session ends at 30: not late.
    click(&mut driver, "u", 29);
    let want = vec![merged, session(29, 30, &[30, 29])];
    assert_eq!(table.sessions(&u).unwrap(), want);
    // v's session ([1, 1]) was final at 7 and is deleted 20 minutes on: stream time 30
    // passed a multiple of the gap after 27.
    assert!(table.sessions(&"v".to_string()).unwrap().is_empty());
}

#[test]
fn sessions_are_checkpointed_like_table_writes_and_expire_after_retention() {
    let (mut driver, table) = sessions();
    let u = "u".to_string();
    click(&mut driver, "u", 0);
    click(&mut driver, "v", 2);
    driver.checkpoint().unwrap();
    click(&mut driver, "u", 4);
    // A crash loses what the checkpoint did not take; the source delivers it again, and the
    // record is in the session once.
    driver.crash().unwrap();
    assert_eq!(table.sessions(&u).unwrap(), vec![session(0, 4, &[0, 4])]);
    // Final once end + gap + grace is behind stream time (v: 8, u: 10), deleted 20 minutes
    // later, looked at as stream time passes a multiple of the gap.
    let keys = |t: &SessionTable<String, Vec<i64>>| -> Vec<String> {
        t.items().unwrap().into_iter().map(|(k, _)| k).collect()
    };
    click(&mut driver, "w", 27);
    assert_eq!(keys(&table), ["u", "v", "w"]);
    click(&mut driver, "w", 30);
    assert_eq!(keys(&table), ["u", "w"]);
    click(&mut driver, "w", 35);
    assert_eq!(keys(&table), ["w"]);
    let w = table.sessions(&"w".to_string()).unwrap();
    assert_eq!(w, vec![session(27, 35, &[27, 30, 35])]);
}

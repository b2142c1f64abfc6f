//! The worker's timer and emit-final windows on a broker (the embedded one unless
//! `CTA_TEST_BROKERS` is set):
//! - a train whose arrivals the test stops producing is shown "not reporting" (API and page)
//!   once 15 simulated minutes of arrivals have passed without it, not before, and every other
//!   train is marked exactly when the arrivals produced say it went 15 minutes unseen;
//! - every closed hourly turnstile window reaches `org.chicago.cta.turnstile.hourly.v1` once,
//!   its COUNT equal to the entries read back from the turnstile topic for that station and
//!   hour.

#[path = "../common/mod.rs"]
mod common;

use common::stepped::SteppedSim;
use common::*;
use cta_stream::stream::testing::{eventually, unique_name};
use cta_stream::transit::models::topics;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const MIN: i64 = 60_000;

async fn fresh_app(env: &TestEnv, tag: &str) -> String {
    let app_id = unique_name(&format!("cta-timers-{tag}"));
    create_all_topics(env, &app_id).await;
    app_id
}

/// The simulation, stepped by the test, which can hold back one train's arrivals; it keeps
/// what it produced: each train's latest arrival time and the latest event time of all.
struct Stepper {
    inner: SteppedSim,
    silenced: Option<String>,
    last_seen: BTreeMap<String, i64>,
    stream_time: i64,
    /// Trains in the step just produced.
    last_step: Vec<(String, String)>,
}

impl Stepper {
    async fn new(env: &TestEnv, start_ms: i64) -> Self {
        Self {
            inner: SteppedSim::new(env, 5, start_ms).await,
            silenced: None,
            last_seen: BTreeMap::new(),
            stream_time: i64::MIN,
            last_step: Vec::new(),
        }
    }

    async fn steps(&mut self, n: usize) {
        let Self {
            inner,
            silenced,
            last_seen,
            stream_time,
            last_step,
        } = self;
        inner
            .steps_with(n, |out| {
                if let Some(s) = silenced.as_ref() {
                    out.arrivals.retain(|a| &a.train_id != s);
                }
                last_step.clear();
                for a in &out.arrivals {
                    last_seen.insert(a.train_id.clone(), out.time_ms);
                    *stream_time = (*stream_time).max(out.time_ms);
                    last_step.push((a.train_id.clone(), a.train_status.clone()));
                }
            })
            .await;
    }

    /// Trains 15 simulated minutes or more behind the latest arrival produced.
    fn expected_not_reporting(&self) -> BTreeSet<String> {
        self.last_seen
            .iter()
            .filter(|(_, t)| self.stream_time - **t >= 15 * MIN)
            .map(|(id, _)| id.clone())
            .collect()
    }
}

/// From `/api/status`: each train's latest sighting time, and the trains marked not reporting.
fn api_trains(status: &Value) -> (BTreeMap<String, i64>, BTreeSet<String>) {
    let (mut seen, mut marked) = (BTreeMap::new(), BTreeSet::new());
    for line in status["lines"].as_array().into_iter().flatten() {
        for t in line["trains"].as_array().into_iter().flatten() {
            let id = t["train_id"].as_str().unwrap_or_default().to_string();
            seen.insert(id.clone(), t["timestamp"].as_i64().unwrap_or(0));
            if t["not_reporting"].as_bool() == Some(true) {
                marked.insert(id);
            }
        }
    }
    (seen, marked)
}

/// From the page's tables: every train shown at a platform, and whether its cell says it is
/// not reporting.
fn page_trains(page: &str) -> BTreeMap<String, bool> {
    let mut out = BTreeMap::new();
    for dir in ["a", "b"] {
        for cell in page.split(&format!("<td class=\"dir-{dir}\">")).skip(1) {
            let cell = cell.split("</td>").next().unwrap_or_default();
            if cell == "---" {
                continue;
            }
            let id = cell.split('>').nth(1).unwrap().split('<').next().unwrap();
            out.insert(id.to_string(), cell.contains("not reporting"));
        }
    }
    out
}

async fn fetch(url: &str) -> Option<String> {
    let r = reqwest::get(url).await.ok()?;
    r.status().is_success().then_some(())?;
    r.text().await.ok()
}

/// Waits until the worker has every arrival produced (the API's sightings are the produced
/// ones) and marks exactly the expected trains, in the API and on the page, and still does
/// a moment later.
async fn wait_for_marks(base: &str, sim: &Stepper) {
    let want = sim.expected_not_reporting();
    let mut last = String::new();
    let mut agreed = 0;
    eventually(
        &format!(
            "marked exactly {want:?} (stream time {}) three times in a row",
            sim.stream_time
        ),
        Duration::from_secs(60),
        async || {
            // The answers that agree are this far apart at least: it still holds a moment later.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let (Some(status), Some(page)) = (
                fetch(&format!("{base}/api/status")).await,
                fetch(base).await,
            ) else {
                return Err(last.clone());
            };
            let (seen, marked) = api_trains(&serde_json::from_str(&status).unwrap_or_default());
            let shown = page_trains(&page);
            let page_ok = !shown.is_empty()
                && shown
                    .iter()
                    .all(|(id, not_reporting)| *not_reporting == want.contains(id));
            if seen == sim.last_seen && marked == want && page_ok {
                agreed += 1;
                return if agreed == 3 {
                    Ok(())
                } else {
                    Err(last.clone())
                };
            }
            agreed = 0;
            last = format!(
                "API marked {marked:?}, page {shown:?}, caught up: {}",
                seen == sim.last_seen
            );
            Err(last.clone())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_train_that_stops_reporting_is_marked_after_15_simulated_minutes_and_no_other() {
    let env = env().await;
    let app_id = fresh_app(&env, "silent").await;
    let dir = tempfile::tempdir().unwrap();
    // 2026-11-30 06:00 Chicago.
    let mut sim = Stepper::new(&env, 1_796_040_000_000).await;
    let worker = spawn_worker(&env, dir.path(), &app_id).await;
    sim.steps(6).await;
    wait_for_marks(&worker.base, &sim).await;
    // Silence a train that just arrived somewhere in service.
    let silent = sim
        .last_step
        .iter()
        .find(|(_, status)| status == "in_service")
        .map(|(id, _)| id.clone())
        .expect("a train in service moved in the last step");
    let silent_since = sim.last_seen[&silent];
    sim.silenced = Some(silent.clone());
    // Two 5-minute steps: 10 simulated minutes without it, not marked yet.
    sim.steps(2).await;
    assert_eq!(sim.stream_time - silent_since, 10 * MIN);
    assert!(!sim.expected_not_reporting().contains(&silent));
    wait_for_marks(&worker.base, &sim).await;
    // The third: 15 minutes.
    sim.steps(1).await;
    assert_eq!(sim.stream_time - silent_since, 15 * MIN);
    assert!(sim.expected_not_reporting().contains(&silent));
    wait_for_marks(&worker.base, &sim).await;
    let page = fetch(&worker.base).await.unwrap();
    assert_eq!(
        page_trains(&page).get(&silent),
        Some(&true),
        "{silent} is on the page, marked"
    );
    // It reports again: the mark goes.
    sim.silenced = None;
    sim.steps(1).await;
    wait_for_marks(&worker.base, &sim).await;
    worker.stop().await;
}

/// (station, window start) → COUNT of every record on the hourly topic whose window starts
/// within [from, to), in the order read; panics on a record that is not the documented JSON.
fn emitted(env: &TestEnv, from: i64, to: i64) -> Vec<((i32, i64), i64)> {
    let mut out = Vec::new();
    for (key, value, _) in read_all_timed(&env.kafka.brokers, topics::TURNSTILE_HOURLY) {
        let v: Value = serde_json::from_slice(&value.unwrap()).unwrap();
        let station = v["STATION_ID"].as_i64().unwrap() as i32;
        let start = v["WINDOW_START"].as_i64().unwrap();
        assert_eq!(v["WINDOW_END"].as_i64().unwrap(), start + 60 * MIN, "{v}");
        let key: i32 = serde_json::from_slice(&key.unwrap()).unwrap();
        assert_eq!(key, station);
        if (from..to).contains(&start) {
            out.push(((station, start), v["COUNT"].as_i64().unwrap()));
        }
    }
    out
}

/// What the turnstile topic says the hourly windows must be, read back from it.
struct HourlyTruth {
    /// Entries per (station, window start).
    counts: BTreeMap<(i32, i64), i64>,
    /// Windows that must have been emitted: closed by their station's own latest entry (its
    /// partition's stream time is at least that).
    must: BTreeSet<(i32, i64)>,
    /// The latest entry of all: no window may be emitted before this closes it.
    latest: i64,
}

impl HourlyTruth {
    async fn read(env: &TestEnv) -> Self {
        let entries = turnstile_entries(env).await;
        let hour = |t: i64| t - t.rem_euclid(60 * MIN);
        let mut counts: BTreeMap<(i32, i64), i64> = BTreeMap::new();
        let mut station_last: BTreeMap<i32, i64> = BTreeMap::new();
        for (station, t) in &entries {
            *counts.entry((*station, hour(*t))).or_insert(0) += 1;
            let last = station_last.entry(*station).or_insert(*t);
            *last = (*last).max(*t);
        }
        let must = counts
            .keys()
            .filter(|(s, h)| h + 65 * MIN <= station_last[s])
            .copied()
            .collect();
        let latest = entries.iter().map(|(_, t)| *t).max().unwrap();
        Self {
            counts,
            must,
            latest,
        }
    }

    /// Waits until every window that must be out is on the topic (within `range` of window
    /// starts); returns what the topic then holds.
    async fn wait_emitted(&self, env: &TestEnv, range: (i64, i64)) -> Vec<((i32, i64), i64)> {
        assert!(
            self.must.len() > 100,
            "two closed hours of most stations: {}",
            self.must.len()
        );
        eventually(
            "every closed window on the topic",
            Duration::from_secs(90),
            async || {
                let out = emitted(env, range.0, range.1);
                let missing: Vec<(i32, i64)> = self
                    .must
                    .iter()
                    .filter(|w| !out.iter().any(|(o, _)| o == *w))
                    .copied()
                    .collect();
                if missing.is_empty() {
                    Ok(out)
                } else {
                    Err(format!("missing windows: {missing:?}"))
                }
            },
        )
        .await
    }

    /// Every window in `out` was closed and has the count of its entries; returns how many
    /// were emitted more than once.
    fn check(&self, out: &[((i32, i64), i64)]) -> usize {
        let mut once = BTreeSet::new();
        let mut again = 0;
        for (window, count) in out {
            if !once.insert(*window) {
                again += 1;
            }
            assert!(
                window.1 + 65 * MIN <= self.latest,
                "{window:?} emitted before it closed"
            );
            assert_eq!(self.counts.get(window), Some(count), "{window:?}");
        }
        again
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_closed_hourly_window_is_emitted_once_with_the_count_of_its_entries() {
    let env = env().await;
    let app_id = fresh_app(&env, "hourly").await;
    let dir = tempfile::tempdir().unwrap();
    // 2026-11-24 06:00 Chicago (a Tuesday), whole hours in UTC as in Chicago.
    let start = 1_795_953_600_000;
    let mut sim = Stepper::new(&env, start).await;
    let worker = spawn_worker(&env, dir.path(), &app_id).await;
    // 06:00 to 08:55: entries in three hours.
    sim.steps(36).await;
    let truth = HourlyTruth::read(&env).await;
    let range = (start, start + 24 * 60 * MIN);
    truth.wait_emitted(&env, range).await;
    // Let any further checkpoint go out, then check every window emitted.
    tokio::time::sleep(Duration::from_secs(2)).await;
    worker.stop().await;
    let out = emitted(&env, range.0, range.1);
    assert_eq!(truth.check(&out), 0, "no window twice without a crash");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_loses_no_closed_window_and_never_emits_a_wrong_count() {
    use rand::Rng;
    let env = env().await;
    let app_id = fresh_app(&env, "kills").await;
    let dir = tempfile::tempdir().unwrap();
    // 2026-11-25 06:00 Chicago (a Wednesday).
    let start = 1_795_608_000_000;
    let mut sim = Stepper::new(&env, start).await;
    let addr = free_addr();
    let base = format!("http://{addr}");
    let mut rng = rand::rng();
    // Six kills while three hours of entries arrive, 6 steps (30 simulated minutes) at a time.
    for _ in 0..6 {
        let mut child = spawn_worker_binary(&env, dir.path(), &app_id, addr, "100ms");
        wait_assigned(&base, Duration::from_secs(60)).await;
        sim.steps(6).await;
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..800))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let mut child = spawn_worker_binary(&env, dir.path(), &app_id, addr, "100ms");
    wait_assigned(&base, Duration::from_secs(60)).await;
    let truth = HourlyTruth::read(&env).await;
    let range = (start, start + 24 * 60 * MIN);
    truth.wait_emitted(&env, range).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let out = emitted(&env, range.0, range.1);
    let again = truth.check(&out);
    eprintln!(
        "{} windows emitted, {again} of them again after a kill (at least once)",
        out.len() - again
    );
}

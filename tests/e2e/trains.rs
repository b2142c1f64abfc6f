//! Ground truth for the status page: the simulation knows where every train stands, so after
//! it has run, the page (the SVG diagram and the table of the HTML, and `/api/status`) must
//! show each train in service at its platform and direction, and no other platform occupied.
//! Checked on one worker, on two workers sharing the partitions (a train's arrivals land in
//! partitions of both), across kill -9 restarts of the worker binary and on a cold restore.

#[path = "../common/mod.rs"]
mod common;

use common::stepped::SteppedSim;
use common::*;
use cta_stream::stream::testing::{eventually, unique_name};
use cta_stream::transit::models::train_status;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

/// An occupied platform: (line, station, direction, train).
type Occupied = BTreeSet<(String, i32, String, String)>;

/// The simulation stepped by the test, so it can ask where the trains are between steps.
struct Stepper(SteppedSim);

impl Stepper {
    async fn new(env: &TestEnv, seed: u64) -> Self {
        // 2026-11-30 06:00 Chicago, fixed for a reproducible run.
        Self(SteppedSim::new(env, seed, 1_796_040_000_000).await)
    }

    /// Runs `n` steps and waits until every record is acknowledged.
    async fn steps(&mut self, n: usize) {
        self.0.steps_with(n, |_| {}).await;
    }

    /// Where the simulation says the trains in service stand.
    fn truth(&self) -> Occupied {
        self.0
            .sim
            .train_positions()
            .into_iter()
            .filter(|p| p.status != train_status::OUT_OF_SERVICE)
            .map(|p| {
                (
                    p.line.as_str().to_string(),
                    p.station_id,
                    p.direction.as_str().to_string(),
                    p.train_id,
                )
            })
            .collect()
    }
}

/// The platforms `/api/status` shows occupied.
fn shown_in_api(status: &Value) -> Occupied {
    let mut out = Occupied::new();
    for line in status["lines"].as_array().into_iter().flatten() {
        let slug = line["line"].as_str().unwrap_or_default().to_string();
        for st in line["stations"].as_array().into_iter().flatten() {
            for dir in ["a", "b"] {
                if let Some(t) = st[format!("direction_{dir}")]["train_id"].as_str() {
                    let id = st["station_id"].as_i64().unwrap() as i32;
                    out.insert((slug.clone(), id, dir.to_string(), t.to_string()));
                }
            }
        }
    }
    out
}

/// The value of attribute `name` in the tag text `tag`.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    tag[start..].find('"').map(|end| &tag[start..start + end])
}

/// The platforms the HTML page shows occupied: (from the SVG markers, from the table rows).
fn shown_in_html(page: &str) -> (Occupied, Occupied) {
    let (mut svg, mut table) = (Occupied::new(), Occupied::new());
    for section in page.split("<section class=\"line\" id=\"line-").skip(1) {
        let slug = section.split('"').next().unwrap().to_string();
        for tag in section.split("<g class=\"marker ").skip(1) {
            let tag = tag.split('>').next().unwrap();
            let station: i32 = attr(tag, "data-station").unwrap().parse().unwrap();
            let dir = attr(tag, "data-direction").unwrap().to_string();
            let train = attr(tag, "data-train").unwrap().to_string();
            svg.insert((slug.clone(), station, dir, train));
        }
        for row in section.split("<tr data-station=\"").skip(1) {
            let station: i32 = row.split('"').next().unwrap().parse().unwrap();
            for dir in ["a", "b"] {
                let cell = row
                    .split(&format!("<td class=\"dir-{dir}\">"))
                    .nth(1)
                    .and_then(|c| c.split("</td>").next())
                    .unwrap();
                if cell == "---" {
                    continue;
                }
                let id = cell.split('>').nth(1).unwrap().split('<').next().unwrap();
                table.insert((slug.clone(), station, dir.to_string(), id.to_string()));
            }
        }
    }
    (svg, table)
}

/// The body of a successful GET, or `None` while the server does not answer.
async fn fetch(url: &str) -> Option<String> {
    let r = reqwest::get(url).await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.text().await.ok()
}

/// How what a worker shows differs from the truth, one line each for its API, its diagrams
/// (SVG) and its table.
struct Differences(String);

impl std::fmt::Debug for Differences {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Differences {
    /// `shown`: the API's, the SVG's and the table's occupied platforms.
    fn of(truth: &Occupied, shown: &(Occupied, Occupied, Occupied)) -> Self {
        let missing: Vec<_> = truth.difference(&shown.0).collect();
        let extra: Vec<_> = shown.0.difference(truth).collect();
        Differences(format!(
            "\nAPI missing {missing:?}\nAPI extra {extra:?}\nSVG {:?}\ntable {:?}",
            shown.1.symmetric_difference(truth).collect::<Vec<_>>(),
            shown.2.symmetric_difference(truth).collect::<Vec<_>>()
        ))
    }
}

/// Waits until the worker at `base` shows exactly `truth`, in its API and its page.
async fn wait_for_truth(base: &str, truth: &Occupied, timeout: Duration) {
    let mut last = (Occupied::new(), Occupied::new(), Occupied::new());
    eventually(
        &format!("{base} shows the trains where they are"),
        timeout,
        async || {
            // A restarting worker refuses connections for a moment: not yet, not a failure.
            let Some(status) = fetch(&format!("{base}/api/status")).await else {
                return Err(Differences::of(truth, &last));
            };
            let api = shown_in_api(&serde_json::from_str(&status).unwrap_or_default());
            if &api == truth {
                let Some(page) = fetch(base).await else {
                    return Err(Differences::of(truth, &last));
                };
                let (svg, table) = shown_in_html(&page);
                if &svg == truth && &table == truth {
                    return Ok(());
                }
                last = (api, svg, table);
            } else {
                last.0 = api;
            }
            Err(Differences::of(truth, &last))
        },
    )
    .await
}

/// A worker process killed (SIGKILL) when dropped, also when the test fails.
struct Killed(std::process::Child);

impl Killed {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn fresh_app(env: &TestEnv, tag: &str) -> String {
    let app_id = unique_name(&format!("cta-trains-{tag}"));
    create_all_topics(env, &app_id).await;
    app_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_worker_shows_every_train_where_the_simulation_has_it() {
    let env = env().await;
    let app_id = fresh_app(&env, "one").await;
    let mut sim = Stepper::new(&env, 11).await;
    let dir = tempfile::tempdir().unwrap();
    let worker = spawn_worker(&env, dir.path(), &app_id).await;
    sim.steps(25).await;
    let truth = sim.truth();
    assert_eq!(
        truth.len(),
        30,
        "the simulation's trains never leave service: {truth:?}"
    );
    wait_for_truth(&worker.base, &truth, Duration::from_secs(60)).await;
    // Arrivals are joined with the worker's copy of the stations: once every station is in
    // it, each later arrival carries its station's name and stop order.
    wait_for_every_station(&worker.base).await;
    // The trains move on: a later snapshot is right again, and differs.
    sim.steps(7).await;
    let later = sim.truth();
    assert_ne!(later, truth, "trains moved");
    wait_for_truth(&worker.base, &later, Duration::from_secs(60)).await;
    let moved: BTreeSet<&String> = later
        .difference(&truth)
        .map(|(_, _, _, train)| train)
        .collect();
    assert!(!moved.is_empty());
    let (_, status) = get_json(&format!("{}/api/status", worker.base)).await;
    let dataset = cta_stream::transit::stations::Dataset::builtin();
    for t in status["lines"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["trains"].as_array().unwrap())
    {
        let id = t["train_id"].as_str().unwrap().to_string();
        let row = dataset
            .rows()
            .iter()
            .find(|r| r.line.as_str() == t["line"] && i64::from(r.station_id) == t["station_id"]);
        let want = row.map(|r| (Value::from(r.station_name.clone()), Value::from(r.order)));
        let got = (t["station_name"].clone(), t["order"].clone());
        if moved.contains(&id) || !got.0.is_null() {
            assert_eq!(Some(got), want, "{id}: {t}");
        }
    }
    worker.stop().await;
}

/// Every (line, station id) of the built-in dataset.
fn dataset_stations() -> BTreeSet<(String, i64)> {
    let dataset = cta_stream::transit::stations::Dataset::builtin();
    dataset
        .rows()
        .iter()
        .map(|r| (r.line.as_str().to_string(), i64::from(r.station_id)))
        .collect()
}

/// Every (line, station id) a status lists.
fn listed_stations(status: &Value) -> BTreeSet<(String, i64)> {
    status["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| {
            let line = l["line"].as_str().unwrap_or_default().to_string();
            l["stations"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |s| (line.clone(), s["station_id"].as_i64().unwrap_or(-1)))
        })
        .collect()
}

/// Waits until the worker lists every station of the dataset from its own copy.
async fn wait_for_every_station(base: &str) {
    let want = dataset_stations();
    eventually(
        "every station in the worker's copy",
        Duration::from_secs(30),
        async || {
            let (_, local) = get_json(&format!("{base}/api/status?scope=local")).await;
            let listed = listed_stations(&local);
            if listed == want {
                Ok(())
            } else {
                Err(listed.len())
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_sharing_the_partitions_both_show_the_truth() {
    let env = env().await;
    let app_id = fresh_app(&env, "two").await;
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // One joins, then the other: a single rebalance shares the partitions (two classic-group
    // members joining at once can rebalance for a long time on a busy machine).
    let w1 = spawn_worker(&env, d1.path(), &app_id).await;
    wait_assigned(&w1.base, Duration::from_secs(90)).await;
    let w2 = spawn_worker(&env, d2.path(), &app_id).await;
    let mut sim = Stepper::new(&env, 12).await;
    sim.steps(30).await;
    wait_assigned(&w2.base, Duration::from_secs(90)).await;
    let truth = sim.truth();
    for w in [&w1, &w2] {
        wait_for_truth(&w.base, &truth, Duration::from_secs(60)).await;
    }
    // The generic view of the train-keyed table, asked on one worker, gathers every worker's
    // sightings of a train; the latest one is where the simulation has it.
    for (line, station_id, direction, train_id) in &truth {
        let (status, copies) =
            get_json(&format!("{}/tables/train-positions/{train_id}", w1.base)).await;
        assert_eq!(status, 200, "{train_id}: {copies}");
        let latest = copies
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["value"])
            .max_by_key(|v| v["timestamp"].as_i64())
            .unwrap();
        let seen = (
            latest["line"].as_str().unwrap(),
            latest["station_id"].as_i64().unwrap() as i32,
            latest["direction"].as_str().unwrap(),
        );
        assert_eq!(
            seen,
            (line.as_str(), *station_id, direction.as_str()),
            "{train_id}"
        );
    }
    // Each holds part of the arrivals: neither alone knows every train's latest platform.
    let (_, local) = get_json(&format!("{}/api/status?scope=local", w1.base)).await;
    let owned = local["worker"]["assigned"].as_array().map_or(0, Vec::len);
    assert!(owned > 0, "worker 1 owns partitions: {}", local["worker"]);
    // ...but each lists every station of every line and the weather from its own copy of the
    // whole stations and weather tables (global tables), without asking the other.
    let want = dataset_stations();
    for w in [&w1, &w2] {
        let what = format!("every station and the weather on {} alone", w.base);
        eventually(&what, Duration::from_secs(30), async || {
            let (_, local) = get_json(&format!("{}/api/status?scope=local", w.base)).await;
            let listed = listed_stations(&local);
            match listed == want && local["weather"].is_object() {
                true => Ok(()),
                false => Err((listed.len(), local["weather"].clone())),
            }
        })
        .await;
    }
    w1.stop().await;
    w2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trains_stay_where_they_are_across_kill_9_and_a_cold_restore() {
    let env = env().await;
    let app_id = fresh_app(&env, "kill").await;
    let mut sim = Stepper::new(&env, 13).await;
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let base = format!("http://{addr}");
    let start =
        |dir: &std::path::Path| Killed(spawn_worker_binary(&env, dir, &app_id, addr, "200ms"));
    let mut worker = start(dir.path());
    for round in 0..3 {
        sim.steps(10).await;
        if round == 0 {
            wait_for_truth(&base, &sim.truth(), Duration::from_secs(90)).await;
        } else {
            // Let it take part of the new steps in, then kill it mid-flight.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        worker.kill();
        worker = start(dir.path());
    }
    sim.steps(5).await;
    let truth = sim.truth();
    wait_for_truth(&base, &truth, Duration::from_secs(90)).await;
    worker.kill();
    // A new worker with an empty data dir restores the tables from their changelogs.
    let cold = tempfile::tempdir().unwrap();
    let _fresh = start(cold.path());
    wait_for_truth(&base, &truth, Duration::from_secs(90)).await;
}

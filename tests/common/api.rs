//! A worker as its HTTP API shows it: JSON, the turnstile table, the partitions it owns,
//! `/metrics` parsed; and the waits for what it shows.

use cta_stream::stream::testing::eventually;
use std::collections::BTreeMap;
use std::time::Duration;

/// GETs JSON.
pub async fn get_json(url: &str) -> (u16, serde_json::Value) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// The turnstile table from the API as station → count.
pub async fn api_turnstile(base: &str) -> Option<BTreeMap<i32, i64>> {
    turnstile_at(&format!("{base}/api/turnstile")).await
}

/// The worker's own part of the turnstile table (`?scope=local`) as station → count.
pub async fn local_turnstile(base: &str) -> Option<BTreeMap<i32, i64>> {
    turnstile_at(&format!("{base}/api/turnstile?scope=local")).await
}

async fn turnstile_at(url: &str) -> Option<BTreeMap<i32, i64>> {
    let r = reqwest::get(url).await.ok()?;
    let v: Vec<serde_json::Value> = r.json().await.ok()?;
    Some(
        v.iter()
            .map(|o| {
                (
                    o["STATION_ID"].as_i64().unwrap() as i32,
                    o["COUNT"].as_i64().unwrap(),
                )
            })
            .collect(),
    )
}

/// How the API's turnstile table differed from the expected one.
#[derive(Debug)]
pub struct CountsDiff {
    pub expected_total: i64,
    /// `None` while the API has not answered.
    pub got_total: Option<i64>,
    /// (station, expected, got), the first 10.
    pub first_differences: Vec<(i32, i64, Option<i64>)>,
}

impl CountsDiff {
    fn of(expected: &BTreeMap<i32, i64>, got: Option<&BTreeMap<i32, i64>>) -> Self {
        let empty = BTreeMap::new();
        let table = got.unwrap_or(&empty);
        CountsDiff {
            expected_total: expected.values().sum(),
            got_total: got.map(|g| g.values().sum()),
            first_differences: expected
                .iter()
                .filter(|(k, v)| table.get(k) != Some(v))
                .map(|(k, v)| (*k, *v, table.get(k).copied()))
                .take(10)
                .collect(),
        }
    }
}

/// Polls until the API's turnstile table equals `expected`, or panics with the difference
/// (to the last table the API answered).
pub async fn wait_for_counts(base: &str, expected: &BTreeMap<i32, i64>, timeout: Duration) {
    let mut last = None;
    eventually(
        &format!("the turnstile counts at {base} equal the expected"),
        timeout,
        async || match api_turnstile(base).await {
            Some(got) if &got == expected => Ok(()),
            Some(got) => Err(CountsDiff::of(expected, Some(last.insert(got)))),
            None => Err(CountsDiff::of(expected, last.as_ref())),
        },
    )
    .await
}

/// Undoes askama's HTML escaping.
pub fn unescape_html(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Waits until the worker at `base` owns partitions (its tables are restored).
pub async fn wait_assigned(base: &str, timeout: Duration) {
    eventually(
        &format!("the worker at {base} gets partitions"),
        timeout,
        async || {
            let r = reqwest::get(format!("{base}/api/status?scope=local"))
                .await
                .map_err(|e| e.to_string())?;
            let v = r
                .json::<serde_json::Value>()
                .await
                .map_err(|e| e.to_string())?;
            let assigned = &v["worker"]["assigned"];
            match assigned.as_array() {
                Some(a) if !a.is_empty() => Ok(()),
                _ => Err(format!("assigned: {assigned}")),
            }
        },
    )
    .await
}

/// How many source partitions the worker at `base` owns (0 while it does not answer).
pub async fn assigned_count(base: &str) -> usize {
    match reqwest::get(format!("{base}/api/status?scope=local")).await {
        Ok(r) => r
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v["worker"]["assigned"].as_array().map(|a| a.len()))
            .unwrap_or(0),
        Err(_) => 0,
    }
}

/// `/metrics`, parsed with an independent Prometheus text parser.
pub async fn scrape(base: &str) -> prometheus_parse::Scrape {
    let r = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(ct.starts_with("text/plain"), "content type {ct}");
    let text = r.text().await.unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// The value of the sample `name` whose labels include all of `labels` (None if absent).
pub fn sample(
    scrape: &prometheus_parse::Scrape,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            other => panic!("{name}: not a scalar: {other:?}"),
        })
}

/// Every sample named `name`, with its labels.
pub fn samples<'a>(
    scrape: &'a prometheus_parse::Scrape,
    name: &'a str,
) -> impl Iterator<Item = &'a prometheus_parse::Sample> + 'a {
    scrape.samples.iter().filter(move |s| s.metric == name)
}

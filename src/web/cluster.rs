//! Answers that span workers. A worker owns some partitions; for the others it asks the
//! workers that own them (found in the stream core's [`Directory`]) for their local answer
//! (`?scope=local`) and merges. With one worker, or `scope=local`, only local state is read.
//! Turnstile counts kept outside the workers (ksqlDB) already cover the app and are read
//! from there once.

use crate::stream::Directory;
use crate::transit::agents::TurnstileCounts;
use crate::transit::models::{TurnstileSummary, WindowCount};
use crate::transit::queries::{QueryError, TransitStatus, TurnstileSource, Window};
use crate::web::WebState;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("state store: {0}")]
    Local(#[from] crate::stream::StreamError),
    #[error("worker {url} (owner of some partitions) did not answer: {reason}")]
    Peer { url: String, reason: String },
    #[error("turnstile counts unavailable ({0}; see the worker log)")]
    Source(String),
}

impl From<QueryError> for ClusterError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Store(e) => ClusterError::Local(e),
            QueryError::Source(reason) => ClusterError::Source(reason),
        }
    }
}

/// Every station's count from an outside source, or one station's.
async fn external_counts(
    source: &dyn TurnstileSource,
    station: Option<i32>,
) -> Result<Vec<TurnstileSummary>, ClusterError> {
    Ok(match station {
        Some(id) => source.one(id).await?.into_iter().collect(),
        None => source.all().await?,
    })
}

async fn from_peers<T: DeserializeOwned>(
    dir: &Option<Directory>,
    path: &str,
) -> Result<Vec<T>, ClusterError> {
    let Some(dir) = dir else {
        return Ok(Vec::new());
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .map_err(|e| ClusterError::Peer {
            url: String::new(),
            reason: e.to_string(),
        })?;
    let mut out = Vec::new();
    for url in dir.peer_urls() {
        let sep = if path.contains('?') { '&' } else { '?' };
        let full = format!("{}{path}{sep}scope=local", url.trim_end_matches('/'));
        let err = |reason: String| ClusterError::Peer {
            url: url.clone(),
            reason,
        };
        let resp = client
            .get(&full)
            .send()
            .await
            .map_err(|e| err(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(err(format!("HTTP {}", resp.status())));
        }
        out.push(resp.json::<T>().await.map_err(|e| err(e.to_string()))?);
    }
    Ok(out)
}

/// Per-station counts of the whole app.
pub async fn turnstile(
    s: &WebState,
    station: Option<i32>,
    local: bool,
) -> Result<Vec<TurnstileSummary>, ClusterError> {
    if let TurnstileCounts::External(source) = &s.tables.turnstile {
        let mut rows = external_counts(source.as_ref(), station).await?;
        rows.sort_by_key(|r| r.station_id);
        return Ok(rows);
    }
    let mut all = match station {
        Some(id) => s.tables.turnstile_one(id)?.into_iter().collect(),
        None => s.tables.turnstile_all()?,
    };
    if !local {
        // Peers answer the whole table locally; filter here so a missing station is not an error.
        for part in from_peers::<Vec<TurnstileSummary>>(&s.directory, "/api/turnstile").await? {
            all.extend(
                part.into_iter()
                    .filter(|r| station.is_none_or(|id| id == r.station_id)),
            );
        }
    }
    let mut sums: BTreeMap<i32, i64> = BTreeMap::new();
    for r in all {
        *sums.entry(r.station_id).or_default() += r.count;
    }
    Ok(sums
        .into_iter()
        .map(|(station_id, count)| TurnstileSummary { station_id, count })
        .collect())
}

/// Windowed counts of the whole app.
pub async fn windows(
    s: &WebState,
    window: Window,
    station: Option<i32>,
    local: bool,
) -> Result<Vec<WindowCount>, ClusterError> {
    let mut all = s.tables.turnstile_windows(window, station)?;
    if !local {
        let path = match (window, station) {
            (Window::Hourly, None) => "/api/turnstile/hourly".to_string(),
            (Window::Hourly, Some(id)) => format!("/api/turnstile/hourly/{id}"),
            (Window::Recent, None) => "/api/turnstile/recent".to_string(),
            (Window::Recent, Some(id)) => format!("/api/turnstile/recent/{id}"),
        };
        for part in from_peers::<Vec<WindowCount>>(&s.directory, &path).await? {
            all.extend(part);
        }
    }
    let mut sums: BTreeMap<(i32, i64), WindowCount> = BTreeMap::new();
    for w in all {
        sums.entry((w.station_id, w.window_start))
            .and_modify(|c| c.count += w.count)
            .or_insert(w);
    }
    Ok(sums.into_values().collect())
}

/// Everything the page shows, across workers.
pub async fn status(s: &WebState, local: bool) -> Result<TransitStatus, ClusterError> {
    let mine = s.tables.status(s.status.snapshot())?;
    let mut merged = if local {
        mine
    } else {
        let others = from_peers::<TransitStatus>(&s.directory, "/api/status").await?;
        crate::transit::queries::merge_status(mine, others)
    };
    if let TurnstileCounts::External(source) = &s.tables.turnstile {
        let counts = external_counts(source.as_ref(), None).await?;
        crate::transit::queries::set_counts(&mut merged, &counts);
    }
    Ok(merged)
}

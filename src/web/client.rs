//! Command-line client of the JSON API (`worker query ...`), so the CLI shows exactly what the
//! page and API show.

use crate::transit::models::TurnstileSummary;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no worker answering at {url}: {reason} (start one with `worker`, or pass --url)")]
    Unreachable { url: String, reason: String },
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: unexpected answer: {reason}")]
    Body { url: String, reason: String },
}

/// Fetches the turnstile table (or one station) and formats it.
pub async fn query_turnstile(
    base: &str,
    station: Option<i32>,
    json: bool,
) -> Result<String, ClientError> {
    let url = match station {
        Some(id) => format!("{}/api/turnstile/{id}", base.trim_end_matches('/')),
        None => format!("{}/api/turnstile", base.trim_end_matches('/')),
    };
    let resp = reqwest::get(&url)
        .await
        .map_err(|e| ClientError::Unreachable {
            url: url.clone(),
            reason: e.to_string(),
        })?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| ClientError::Body {
        url: url.clone(),
        reason: e.to_string(),
    })?;
    if !status.is_success() {
        return Err(ClientError::Status {
            url,
            status: status.as_u16(),
            body,
        });
    }
    if json {
        return Ok(format!("{body}\n"));
    }
    let rows: Vec<TurnstileSummary> = if station.is_some() {
        serde_json::from_str::<TurnstileSummary>(&body).map(|r| vec![r])
    } else {
        serde_json::from_str(&body)
    }
    .map_err(|e| ClientError::Body {
        url: url.clone(),
        reason: e.to_string(),
    })?;
    let mut out = format!("{:>10}  {:>10}\n", "STATION_ID", "COUNT");
    for r in &rows {
        out.push_str(&format!("{:>10}  {:>10}\n", r.station_id, r.count));
    }
    Ok(out)
}
